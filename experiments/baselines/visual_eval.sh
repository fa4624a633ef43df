#!/usr/bin/env bash
# Adds visual intra-list diversity (test ild_visual_k) to finished trained runs of the photo
# datasets that lack it: each checkpoint is evaluated again on test with one frozen image encoder
# for diversity, into RUN/visual (the run's own files are left as they are); summarize.py reads
# ild_visual_10 from there. From the repository root:
#   FEATURES=cache/features bash experiments/baselines/visual_eval.sh RUN_ROOT...
#   MODELS="concat_noid_cmws gated_allwin" bash experiments/baselines/visual_eval.sh STUDY_ROOT  # some only
set -euo pipefail
set -f  # [test] is a word, not a pattern
BIN=${BIN:-.venv/bin}
FEATURES=${FEATURES:-cache/features}
ENCODER=${ENCODER:-effnet}
MODELS=${MODELS:-*}  # model folder names (shell patterns); every one by default
(( $# )) || { echo "usage: visual_eval.sh RUN_ROOT..." >&2; exit 2; }
for root in "$@"; do
  runs=()
  for model in $MODELS; do
    set +f
    runs+=("$root"/$model/{synthetic,hm,ml100k}/seed*)
    set -f
  done
  for run in "${runs[@]}"; do
    [[ -f $run/metrics.json && -f $run/checkpoints/last.ckpt ]] || continue  # unfinished, or not trained
    grep -q '"test/ild_visual_10"' "$run/metrics.json" && continue
    [[ -f $run/visual/metrics.json ]] && { echo "done: $run/visual"; continue; }
    "$BIN/vrs-eval" run_dir="$run" encoder@diversity_encoder="$ENCODER" feature_cache="$FEATURES" \
      data.load_images=true 'stages=[test]' logger=none hydra.run.dir="$run/visual"
  done
done
