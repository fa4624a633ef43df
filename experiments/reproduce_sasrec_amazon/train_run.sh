# Sourced by run.sh and tune.sh: train_run RUN_DIR VRS_TRAIN_ARGS... trains one run in RUN_DIR,
# continuing it from its latest epoch when it has a checkpoint, adds the time spent to
# RUN_DIR/wall_seconds (a call killed together with its shell is counted up to its last saved
# epoch), records the commit of this checkout in RUN_DIR/commit (one line per commit that trained
# it: record_commit RUN_DIR, also for runs made by other commands), and returns vrs-train's exit
# status (143: stopped by SIGTERM, continue by calling it again).
# Sourcing it also puts this checkout first on PYTHONPATH, so every vrs command of the calling script
# runs this checkout's code and configs: a worktree that links another checkout's .venv would
# otherwise import the package that venv's editable install points at, not the commit it records.
VRS_CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PYTHONPATH="$VRS_CHECKOUT${PYTHONPATH:+:$PYTHONPATH}"
record_commit() {  # record_commit RUN_DIR: this checkout's commit, once, in RUN_DIR/commit
  local commit
  commit=$(git -C "$VRS_CHECKOUT" rev-parse HEAD 2>/dev/null || echo unknown)
  mkdir -p "$1"
  grep -qx "$commit" "$1/commit" 2>/dev/null || echo "$commit" >> "$1/commit"
}
train_run() {
  local run=$1 resume=null start rc=0 before
  shift
  record_commit "$run"
  [[ -f "$run/checkpoints/resume.ckpt" || -f "$run/checkpoints/last.ckpt" ]] && resume=last
  before=$(cat "$run/wall_seconds" 2>/dev/null || echo 0)
  if [[ -f "$run/.started" && -f "$run/checkpoints/resume.ckpt" ]]; then
    # The previous call was killed with its shell (no time recorded): count it up to its last saved
    # epoch (the resume checkpoint's time), which is where this call continues from.
    local lost=$(( $(stat -c %Y "$run/checkpoints/resume.ckpt") - $(cat "$run/.started") ))
    if (( lost > 0 )); then
      before=$(( before + lost ))
      echo "$before" > "$run/wall_seconds"
    fi
  fi
  start=$(date +%s)
  echo "$start" > "$run/.started"
  "$BIN/vrs-train" "$@" hydra.run.dir="$run" resume="$resume" || rc=$?
  echo $(( before + $(date +%s) - start )) > "$run/wall_seconds"
  rm -f "$run/.started"
  return "$rc"
}
