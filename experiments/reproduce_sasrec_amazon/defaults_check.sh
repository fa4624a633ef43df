#!/usr/bin/env bash
# Do the Beauty choice's values suit vrs's defaults? The demo (experiment=demo: the synthetic
# catalogue, frozen image + text features, concat fusion, user=sasrec, full softmax, width 64) with
# its dropout as today (0.2) and as sasrec_amazon_v3's (0.5), and 0.5 at v3's width 256; validation
# only (test=false), seeds $SEEDS. From the repository root:
#   bash experiments/reproduce_sasrec_amazon/defaults_check.sh
#   ARMS="demo_d05" SEEDS="0" bash experiments/reproduce_sasrec_amazon/defaults_check.sh
# Runs go to $OUT/<arm>/synthetic/seed<S>; summarize.py reads them (README.md, Commands);
# finished runs are skipped, interrupted ones continue from their latest epoch (train_run.sh).
set -euo pipefail
OUT=${OUT:-runs/reproduce_sasrec_amazon/defaults}
BIN=${BIN:-.venv/bin}
SEEDS=${SEEDS:-"0 1 2"}
DATA=${DATA:-data/synthetic}  # data=synthetic generates it there when missing, else reuses it
# shellcheck source=train_run.sh
source "$(dirname "$0")/train_run.sh"
ORDER=(demo_d02 demo_d05 demo_d05_w256)
declare -A GRID=(
  [demo_d02]="user.dropout=0.2"
  [demo_d05]="user.dropout=0.5"
  [demo_d05_w256]="user.dropout=0.5 model.dim=256"
)
ARMS=${ARMS:-"${ORDER[*]}"}
for arm in $ARMS; do
  [[ -v "GRID[$arm]" ]] || { echo "unknown arm $arm (known: ${ORDER[*]})" >&2; exit 2; }
done
for arm in $ARMS; do
  for seed in $SEEDS; do
    run="$OUT/$arm/synthetic/seed$seed"
    if [[ -f "$run/metrics.json" ]]; then echo "done: $run"; continue; fi
    # shellcheck disable=SC2086  # the overrides are words
    train_run "$run" experiment=demo data.root="$DATA" ${GRID[$arm]} seed="$seed" test=false
  done
done
