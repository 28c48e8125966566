#!/usr/bin/env bash
# How models/extra/vihtr-b1 and vihtr-b2 were trained (superseded by experiment=lite1_ctc, scripts/train_continue.sh) (2-core CPU, no GPU was available): one backbone per call.
#   scripts/train_release_cpu.sh b1 logs/release/b1 2400 01:22:00
# Held out: Kalapa writer fold 0 and VNOnDB writer fold 0 (validation and scores), never trained on.
# Data: real Kalapa + rendered VNOnDB lines of folds 1-4 (augmented), synthetic addresses and word lines.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKBONE=${1:-b1}
OUT=${2:-logs/release/$BACKBONE}
STEPS=${3:-2400}
MAX_TIME=${4:-01:22:00}
.venv/bin/python src/train.py experiment=cpu_small backbone="$BACKBONE" data=pretrain fold=0 'logger=[wandb,csv]' \
  hydra.run.dir="$OUT" torch_threads=2 \
  'data.augment={_target_:vihtr.data.augment.LineAugment,strength:0.5}' \
  data.train_weights.kalapa=0.45 data.train_weights.vnondb=0.2 data.train_weights.synth_address=0.3 \
  data.train_weights.synth_corpus=0 data.train_weights.synth_words=0.05 \
  data.num_workers=1 data.val_size_per_source=400 data.samples_per_epoch=8000 \
  image.height=32 image.max_width=512 \
  model.net.d_model=256 model.net.nhead=8 model.net.ffn_dim=1024 model.net.decoder_layers=2 \
  model.optimizer.lr=1.5e-3 model.scheduler.name=cosine model.scheduler.warmup_steps=150 \
  trainer.max_steps="$STEPS" trainer.max_epochs=-1 "+trainer.max_time=00:$MAX_TIME" \
  trainer.val_check_interval=300 trainer.check_val_every_n_epoch=null \
  callbacks.checkpoint_averaging.last_k=3 callbacks.model_checkpoint.save_top_k=2 "${@:5}"
