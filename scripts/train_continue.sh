#!/usr/bin/env bash
# Train the shipped default in one long schedule that survives every stop (EXPERIMENT, default lite1_long4;
# each long experiment is one run with its own schedule, named by its model.scheduler.run).
#   nohup scripts/train_continue.sh [extra Hydra overrides] &
# The run's whole state (weights, optimizer, schedule, step; the data stream follows the step) lives under
# $VIHTR_CACHE_DIR/runs/<name>/<experiment>/ (default ~/.cache/vihtr), outside the work tree. Where it starts,
# first that exists:
#   1. that state (checkpoints/last.ckpt): it resumes where it stopped, with no new warm-up;
#   2. the committed release $RELEASE (default models/<name>): its weights, at the step of the schedule its
#      config.json records (metadata.schedule.step) when the release came from this run
#      (metadata.schedule.run); from another run or from before the long schedules, at step 0 of this one;
#   3. neither: the experiment from ImageNet weights.
# It says which in the log: $LOGS/<name>-<date>.log (default logs/long/). Pause it with kill -STOP <pid>, go on with -CONT.
# A checkpoint at every validation (trainer.val_check_interval); the three most recent are kept. A release:
#   python scripts/release.py export $STATE/checkpoints/step*.ckpt /tmp/candidate --decode-method ctc --domain auto
#   python scripts/release.py score /tmp/candidate models/<name>
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${NAME:-vihtr-lite1}
EXPERIMENT=${EXPERIMENT:-lite1_long4}
RELEASE=${RELEASE:-models/$NAME}
CACHE=${VIHTR_CACHE_DIR:-$HOME/.cache/vihtr}
STATE=${STATE:-$CACHE/runs/$NAME/$EXPERIMENT}
PY=${PY:-.venv/bin/python}
LOGS=${LOGS:-logs/long}
mkdir -p "$LOGS" "$STATE"
LOG=$LOGS/$NAME-$(date +%Y%m%d-%H%M).log
ARGS=(experiment="$EXPERIMENT" hydra.run.dir="$STATE")
if [[ -f $STATE/checkpoints/last.ckpt ]]; then
  START=$("$PY" -c "import torch; c = torch.load('$STATE/checkpoints/last.ckpt', map_location='cpu', weights_only=False); print(c['global_step'] + int((c['hyper_parameters'].get('scheduler') or {}).get('start_step') or 0))")
  echo "resuming $STATE/checkpoints/last.ckpt at step $START of the schedule" | tee -a "$LOG"
  # the run's own settings (its start step among them) come from the config it was started with
  ARGS+=(ckpt_path="$STATE/checkpoints/last.ckpt" model.scheduler.start_step="$(cat "$STATE/start_step")")
elif [[ -f $RELEASE/weights.pt ]]; then
  START=$("$PY" -c "
import json
schedule = json.load(open('$RELEASE/config.json'))['metadata'].get('schedule') or {}
print(schedule.get('step') or 0 if schedule.get('run') == '$EXPERIMENT' else 0)")
  echo "no state under $STATE: continuing from the release $RELEASE at step $START of $EXPERIMENT's schedule" | tee -a "$LOG"
  echo "$START" > "$STATE/start_step"
  ARGS+=(model.init_from="$RELEASE/weights.pt" model.scheduler.start_step="$START")
else
  echo "no state and no release: starting $EXPERIMENT from its initial weights" | tee -a "$LOG"
  echo 0 > "$STATE/start_step"
fi
"$PY" src/train.py "${ARGS[@]}" "$@" >> "$LOG" 2>&1
echo "schedule finished: $STATE/checkpoints" | tee -a "$LOG"
