#!/usr/bin/env bash
# Runs the study: converts the S3-Rec files, trains every (configuration, dataset, seed), then writes
# the table and the plot. From the repository root:
#   bash experiments/reproduce_sasrec_amazon/run.sh                       # everything (hours on 2 cores)
#   DATASETS="Beauty" SEEDS="0" CONFIGS="sasrec_amazon" bash experiments/reproduce_sasrec_amazon/run.sh
# Finished runs (metrics.json) are skipped; interrupted ones, and ones stopped for time (a `stopped`
# file), continue from their latest epoch; their wall_seconds adds the new part to the time recorded.
# To stop for time: kill -TERM the vrs-train process; its best checkpoint so far is then evaluated.
set -euo pipefail
DATA_IN=${DATA_IN:-../shared/data/amazon-seq}
DATASETS=${DATASETS:-"Beauty Sports_and_Outdoors Toys_and_Games"}
SEEDS=${SEEDS:-"0 1 2"}
CONFIGS=${CONFIGS:-"sasrec_amazon_tuned sasrec_amazon_attr_tuned"}  # a priori: sasrec_amazon[_attr]
OUT=${OUT:-runs/reproduce_sasrec_amazon}
BIN=${BIN:-.venv/bin}
# shellcheck source=train_run.sh
source "$(dirname "$0")/train_run.sh"

for name in $DATASETS; do
  "$BIN/vrs-prepare" source=amazon_seq in_dir="$DATA_IN" name="$name" out_dir="data/amazon/$name" >/dev/null
  # The popularity baseline (training-split counts), same protocol; deterministic, so one run.
  pop="$OUT/popularity/$name/seed0"
  [[ -f "$pop/metrics.json" ]] || "$BIN/vrs-eval" model=popularity data=canonical data.root="data/amazon/$name" \
    data.load_images=false stages=[val,test] hydra.run.dir="$pop"
  for config in $CONFIGS; do
    for seed in $SEEDS; do
      run="$OUT/$config/$name/seed$seed"
      # A run stopped for time (a `stopped` file beside its interim metrics.json) is continued.
      if [[ -f "$run/metrics.json" && ! -f "$run/stopped" ]]; then echo "done: $run"; continue; fi
      rc=0
      train_run "$run" experiment="$config" data.root="data/amazon/$name" seed="$seed" || rc=$?
      if (( rc == 143 )); then
        # Stopped for time (kill -TERM on vrs-train): interim numbers from the best-validation checkpoint,
        # marked by a `stopped` file; rerunning this script continues the run.
        best=$(ls "$run"/checkpoints/epoch_*.ckpt | tail -1)
        "$BIN/vrs-eval" ckpt_path="$best" data=canonical data.root="data/amazon/$name" data.load_images=false \
          'stages=[val,test]' logger=none hydra.run.dir="$run/eval"
        cp "$run/eval/metrics.json" "$run/metrics.json"
        echo "stopped for time on $(date -u +%F); $(basename "$best") (best validation so far) evaluated" \
          "with vrs-eval; rerun run.sh to continue" > "$run/stopped"
      fi
      (( rc == 0 )) || exit "$rc"  # stopped or failed: the time so far is kept; rerun to continue
      rm -f "$run/stopped"  # trained to early stopping (or max_epochs) now
    done
  done
done
"$BIN/python" experiments/reproduce_sasrec_amazon/summarize.py "$OUT"
