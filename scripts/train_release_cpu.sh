#!/usr/bin/env bash
# How models/extra/vihtr-b1 and vihtr-b2 were trained (superseded by experiment=lite1_ctc and
# scripts/train_continue.sh): the recipe is conf/experiment/cpu_release.yaml; this only names the run.
#   scripts/train_release_cpu.sh b1 logs/release/b1 2400 01:22:00 [more Hydra overrides]
set -euo pipefail
cd "$(dirname "$0")/.."
BACKBONE=${1:-b1}
OUT=${2:-logs/release/$BACKBONE}
STEPS=${3:-2400}
MAX_TIME=${4:-01:22:00}
.venv/bin/python src/train.py experiment=cpu_release backbone="$BACKBONE" hydra.run.dir="$OUT" \
  trainer.max_steps="$STEPS" trainer.max_time="00:$MAX_TIME" "${@:5}"
