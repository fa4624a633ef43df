# Sourced by run.sh and tune.sh: train_run RUN_DIR VRS_TRAIN_ARGS... trains one run in RUN_DIR,
# continuing it from its latest epoch when it has a checkpoint, adds the time spent to
# RUN_DIR/wall_seconds, and returns vrs-train's exit status (143: stopped by SIGTERM, continue by
# calling it again).
train_run() {
  local run=$1 resume=null start rc=0 before
  shift
  [[ -f "$run/checkpoints/resume.ckpt" || -f "$run/checkpoints/last.ckpt" ]] && resume=last
  start=$(date +%s)
  "$BIN/vrs-train" "$@" hydra.run.dir="$run" resume="$resume" || rc=$?
  before=$(cat "$run/wall_seconds" 2>/dev/null || echo 0)
  echo $(( before + $(date +%s) - start )) > "$run/wall_seconds"
  return "$rc"
}
