#!/usr/bin/env bash
# Train the shipped default a little further, in a run that may outlive this session.
#   scripts/train_continue.sh STEPS [extra Hydra overrides]      e.g.  nohup scripts/train_continue.sh 3000 &
# Where it starts, first that exists:
#   1. logs/continue/<name>/checkpoints/last.ckpt: an interrupted run of this script; it resumes with its
#      optimizer, schedule and data position (Lightning), and STEPS is ignored;
#   2. the committed release $RELEASE (default models/<name>): its weights, with a new warm-up + cosine
#      schedule of STEPS steps at LR (default 5e-4, half the first run's);
#   3. neither: the experiment from ImageNet weights (the first run).
# Logs: logs/continue/<name>/ (train.log, csv/, wandb/ offline). Afterwards score and release:
#   python scripts/release.py export logs/continue/<name>/checkpoints/averaged.ckpt /tmp/candidate
#   python scripts/release.py score /tmp/candidate models/<name>
# The fast shape (models/extra/vihtr-lite1-fast, conf/experiment/lite1_fast.yaml):
#   NAME=vihtr-lite1-fast EXPERIMENT=lite1_fast RELEASE=models/extra/vihtr-lite1-fast LR=2e-4 \
#     nohup scripts/train_continue.sh 3000 &
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:?usage: scripts/train_continue.sh STEPS [overrides]}
shift
NAME=${NAME:-vihtr-lite1}
EXPERIMENT=${EXPERIMENT:-lite1_ctc}
LR=${LR:-5e-4}
RELEASE=${RELEASE:-models/$NAME}
# the synthetic lines the releases were trained on: continuing them on the `form` lines read 0.23-0.25 points
# worse on Kalapa at 400 steps, on two seeds (models/README.md, "Synthetic lines"); SYNTH_STYLE=form to try
SYNTH_STYLE=${SYNTH_STYLE:-v1}
RUN=logs/continue/$NAME
PY=${PY:-.venv/bin/python}
ARGS=(experiment="$EXPERIMENT" hydra.run.dir="$RUN" callbacks.progress_bar=null synth_style="$SYNTH_STYLE")
if [[ -f $RUN/checkpoints/last.ckpt ]]; then
  echo "resuming $RUN/checkpoints/last.ckpt"
  ARGS+=(ckpt_path="$RUN/checkpoints/last.ckpt")
  STEPS=$("$PY" -c "import json,sys; print(json.load(open('$RUN/steps.json'))['max_steps'])")
elif [[ -f $RELEASE/weights.pt ]]; then
  echo "continuing from the release $RELEASE"
  ARGS+=(model.init_from="$RELEASE/weights.pt" model.optimizer.lr="$LR")
else
  echo "starting $EXPERIMENT from its initial weights"
fi
mkdir -p "$RUN"
echo "{\"max_steps\": $STEPS}" > "$RUN/steps.json"
"$PY" src/train.py "${ARGS[@]}" trainer.max_steps="$STEPS" "$@"
# finished: keep the run under its date, so the next call does not resume a completed schedule
DONE="$RUN-$(date +%Y%m%d-%H%M)"
mv "$RUN" "$DONE"
echo "done: $DONE/checkpoints/averaged.ckpt"
