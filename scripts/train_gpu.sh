#!/usr/bin/env bash
# Train on a lent GPU machine, several runs side by side on its one GPU (README, "Training on a GPU").
#   scripts/train_gpu.sh STEPS MINUTES NAME:EXPERIMENT:INIT_WEIGHTS [...] [-- Hydra overrides for every run]
#   e.g. scripts/train_gpu.sh 6000 7 vihtr-lite1:lite1_ctc:models/vihtr-lite1/weights.pt
# MINUTES counts from the start of fitting: keep ~2 minutes of a 10-minute command for start-up and export
# (a first try at 8 of 10 was killed before it exported anything).
# Each run starts from INIT_WEIGHTS with a new warm-up + cosine schedule of STEPS steps, stops after MINUTES
# at the latest (Lightning max_time: a lent machine's command has a time limit), averages its last
# validation snapshots and exports them as an fp16 release to gpu/out/NAME (the next call's INIT_WEIGHTS if
# the machine is still warm) and to $OUT/NAME with its train.log and metrics.csv (what comes back).
# Prepared on the CPU first (nothing can be fetched there): scripts/pack_data.py -> data/packed (the real
# data, ~31 MB), data/folds (make folds) and the wheels the machine lacks in .whl/ (make gpu-wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:?usage: scripts/train_gpu.sh STEPS MINUTES NAME:EXPERIMENT:INIT [...] [-- overrides]}
MINUTES=${2:?minutes}
shift 2
RUNS=()
while [[ $# -gt 0 && $1 != -- ]]; do RUNS+=("$1"); shift; done
[[ $# -gt 0 ]] && shift
PY=${PY:-python3}
TRAINER=${TRAINER:-gpu}  # cpu: a smoke test of this script on a machine without one
OUT=${OUT:-gpu/returned}
LOGS=${LOGS:-logs/gpu}  # run folders
EXPORT=${EXPORT:-gpu/out}  # releases kept on the machine (the next call's INIT_WEIGHTS while it stays warm)
export VIHTR_DATA_ROOT=${VIHTR_DATA_ROOT:-$PWD/data/packed}
export PYTHONUNBUFFERED=1
if [[ -d .whl ]] && ! "$PY" -c "import hydra, albumentations, editdistance, vietnamadminunits" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}
# data loading is most of the work on the CPU side: the cores, less one per run, split between the runs
WORKERS=$(( ($(nproc) - ${#RUNS[@]}) / ${#RUNS[@]} ))
(( WORKERS >= 1 )) || WORKERS=1
PIDS=()
for run in "${RUNS[@]}"; do
  IFS=: read -r NAME EXPERIMENT INIT <<< "$run"
  DIR=$LOGS/$NAME-$(date +%Y%m%d-%H%M)
  mkdir -p "$DIR"
  echo "$NAME: $EXPERIMENT from $INIT, $STEPS steps or $MINUTES min, $WORKERS workers -> $DIR"
  "$PY" src/train.py experiment="$EXPERIMENT" trainer="$TRAINER" logger=csv hydra.run.dir="$DIR" \
    callbacks.progress_bar=null test=false torch_threads=2 data.pin_memory=true \
    model.init_from="$INIT" data.num_workers="$WORKERS" data.width_multiple=128 \
    data.sources.vnondb.path="$VIHTR_DATA_ROOT/vnondb/lines.npz.xz" \
    trainer.max_steps="$STEPS" trainer.max_time="$(printf "00:00:%02d:00" "$MINUTES")" "$@" > "$DIR/train.log" 2>&1 &
  PIDS+=("$!:$NAME:$DIR")
done
STATUS=0
for entry in "${PIDS[@]}"; do
  IFS=: read -r PID NAME DIR <<< "$entry"
  if wait "$PID"; then
    "$PY" scripts/release.py export "$DIR/checkpoints/averaged.ckpt" "$EXPORT/$NAME" \
      --notes "trained on a lent GPU: $DIR"
    mkdir -p "$OUT/$NAME"
    cp "$EXPORT/$NAME"/{weights.pt,config.json} "$DIR/train.log" "$OUT/$NAME/"
    cp "$(find "$DIR" -name metrics.csv | head -1)" "$OUT/$NAME/"
    grep -E "val/cer|Epoch|max_time|averaged" "$DIR/train.log" | tail -3 || true
  else
    STATUS=1
    echo "$NAME failed:"; tail -30 "$DIR/train.log"
  fi
done
exit $STATUS
