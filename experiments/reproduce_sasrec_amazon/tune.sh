#!/usr/bin/env bash
# Tunes the ID-only configuration on Beauty's validation split (test is never computed here): each arm
# is sasrec_amazon plus Hydra overrides, seed 0, early stopping on val NDCG@10. From the repo root:
#   bash experiments/reproduce_sasrec_amazon/tune.sh                    # every arm
#   ARMS="lr3e-3_do0.5" bash experiments/reproduce_sasrec_amazon/tune.sh  # one arm
# Finished arms are skipped, interrupted ones continue from their latest epoch.
# `summarize.py --tune` ranks them.
set -euo pipefail
OUT=${OUT:-runs/reproduce_sasrec_amazon/tune}
BIN=${BIN:-.venv/bin}
# shellcheck source=train_run.sh
source "$(dirname "$0")/train_run.sh"
DATA=${DATA:-data/amazon/Beauty}
declare -A GRID=(
  [lr1e-3_do0.3]="model.optimizer.lr=0.001 user.dropout=0.3"
  [lr3e-3_do0.5]="model.optimizer.lr=0.003 user.dropout=0.5"
  [lr1e-3_do0.5_bs128]="model.optimizer.lr=0.001 user.dropout=0.5 data.batch_size=128"
)
ARMS=${ARMS:-"${!GRID[*]}"}
for arm in $ARMS; do
  [[ -n "${GRID[$arm]:-}" ]] || { echo "unknown arm $arm (known: ${!GRID[*]})" >&2; exit 2; }
  run="$OUT/$arm/Beauty/seed0"
  if [[ -f "$run/metrics.json" ]]; then echo "done: $run"; continue; fi
  rc=0
  # shellcheck disable=SC2086  # the overrides are words
  train_run "$run" experiment=sasrec_amazon data.root="$DATA" seed=0 test=false ${GRID[$arm]} || rc=$?
  (( rc == 0 )) || exit "$rc"  # stopped (kill -TERM on vrs-train) or failed: rerun to continue
done
