#!/usr/bin/env bash
# Runs the baseline zoo (README.md beside this file): every MODEL on every DATASET under vrs's
# protocol, SEEDS seeds for the trained ones, then writes results.csv and prints the table. From the
# repository root:
#   bash experiments/baselines/run.sh                                 # everything (days on 2 cores)
#   DATASETS=ml100k MODELS="gru4rec_allwin bert4rec_allwin" SEEDS=0 \
#     EXTRA="callbacks.early_stopping.patience=30" bash experiments/baselines/run.sh
# Datasets: synthetic (generated into SYNTHETIC on first use), hm and ml100k (folders under DATA,
# experiments/real_images/prepare.sh), beauty (BEAUTY; vrs-prepare source=amazon_seq, no photos:
# the image models skip it). Image and text features come from the feature cache (FEATURES; the
# first run fills it). Trained models: early stopping on validation NDCG@10, test at the best
# validation epoch; finished runs are skipped, interrupted ones continue (train_run.sh).
# popularity is evaluated once (seed 0); category_interest, whose classifier is trained, once per seed.
# Every run folder gets wall_seconds and commit as train_run writes them. The reference implementations run
# from benchmarks/*_reference.py (README.md lists their commands).
set -euo pipefail
set -f  # overrides such as [val,test] are words, not patterns
DATA=${DATA:-data/real_images}
SYNTHETIC=${SYNTHETIC:-data/synthetic}
BEAUTY=${BEAUTY:-data/amazon/Beauty}
OUT=${OUT:-runs/baselines}
BIN=${BIN:-.venv/bin}
SEEDS=${SEEDS:-"0 1 2"}
DATASETS=${DATASETS:-"synthetic hm ml100k beauty"}
FEATURES=${FEATURES:-cache/features}
EXTRA=${EXTRA:-}  # more overrides for every trained model
ORDER=(popularity category_interest bpr_mf vbpr vbpr_paper lightgcn lightgcn_recbole freedom freedom_paper gru4rec bert4rec fused)
MODELS=${MODELS:-"${ORDER[*]}"}
IMAGE_MODELS=" vbpr vbpr_paper freedom freedom_paper category_interest "
# shellcheck source=../reproduce_sasrec_amazon/train_run.sh
source "$(dirname "$0")/../reproduce_sasrec_amazon/train_run.sh"
declare -A TRAINED=(
  [bpr_mf]="experiment=bpr_mf"
  [vbpr]="experiment=vbpr"
  [vbpr_paper]="experiment=vbpr_paper"
  [lightgcn]="experiment=lightgcn"
  [lightgcn_recbole]="experiment=lightgcn_recbole"
  [freedom]="experiment=freedom"
  [freedom_paper]="experiment=freedom_paper"
  [gru4rec]="experiment=gru4rec_amazon"
  [bert4rec]="experiment=bert4rec_amazon"
  [fused]="experiment=demo"  # synthetic only; elsewhere the table picks its study's runs (README)
)
# category_interest's visual-similarity weight (and recency) per dataset: the best validation NDCG@10
# of a seed-0 sweep (README beside this file, 27th session).
declare -A CATEGORY_INTEREST=(
  [synthetic]="model.visual_weight=0.01 model.interest.half_life=null"
  [hm]="model.visual_weight=1"
  [ml100k]="model.visual_weight=10"
)
# On the photo datasets every model's lists also get their visual intra-list diversity
# (ild_visual_k: one frozen image encoder for all, its features from the cache); data.load_images=true
# since the ID-only experiments turn images off. VISUAL= (empty) leaves the metric out (H&M's
# 17,033 photos took 6.5 minutes to encode at 224 px, one thread beside two other jobs, 27th session).
VISUAL=${VISUAL-encoder@diversity_encoder=effnet}
data_overrides() {  # data_overrides DATASET: the data options of that dataset
  case $1 in
    synthetic) echo "data=synthetic data.root=$SYNTHETIC data.load_images=true $VISUAL" ;;
    hm | ml100k) echo "data=canonical data.root=$DATA/$1 data.load_images=true $VISUAL" ;;
    beauty) echo "data=canonical data.root=$BEAUTY data.load_images=false" ;;
    *) echo "unknown dataset $1 (known: synthetic hm ml100k beauty)" >&2; return 2 ;;
  esac
}
evaluate() {  # evaluate RUN_DIR OVERRIDES...: a model vrs-eval fits itself, in one call
  local run=$1 start
  shift
  [[ -f "$run/metrics.json" ]] && { echo "done: $run"; return 0; }
  record_commit "$run"
  start=$(date +%s)
  "$BIN/vrs-eval" "$@" feature_cache="$FEATURES" 'stages=[val,test]' logger=none hydra.run.dir="$run"
  echo $(( $(date +%s) - start )) > "$run/wall_seconds"
}
for name in $DATASETS; do
  data=$(data_overrides "$name")
  for model in $MODELS; do
    if [[ $name == beauty && $IMAGE_MODELS == *" $model "* ]]; then
      echo "skipped: $model on beauty (no photos)"
      continue
    fi
    if [[ $model == fused && $name != synthetic ]]; then
      echo "skipped: fused on $name (vrs's best fused model there is its study's: summarize.py --pick)"
      continue
    fi
    case $model in
      popularity)
        # shellcheck disable=SC2086  # the overrides are words
        evaluate "$OUT/popularity/$name/seed0" model=popularity $data ;;
      category_interest)
        # LeNet-5 trained on the synthetic shapes; on photos a frozen EfficientNet-Lite0 with a new head.
        if [[ $name == synthetic ]]; then enc="encoder=lenet"; else
          enc="encoder=effnet model.classifier.train_encoder=false"; fi
        enc="$enc ${CATEGORY_INTEREST[$name]:-}"
        for seed in $SEEDS; do
          # shellcheck disable=SC2086
          evaluate "$OUT/category_interest/$name/seed$seed" model=category_interest $enc $data seed="$seed"
        done ;;
      *)
        # MODEL_allwin: every training event a target once per epoch (data.train_windows=all) rather
        # than each user's last max_len + 1 events only, as RecBole's sequential models train
        # (MovieLens users average 106 events).
        base=${model%_allwin} more=
        [[ $base != "$model" ]] && more=data.train_windows=all
        [[ -v "TRAINED[$base]" ]] ||
          { echo "unknown model $model (known: ${ORDER[*]}, each trained one also as MODEL_allwin)" >&2; exit 2; }
        for seed in $SEEDS; do
          run="$OUT/$model/$name/seed$seed"
          if [[ -f "$run/metrics.json" ]]; then echo "done: $run"; continue; fi
          # shellcheck disable=SC2086
          train_run "$run" ${TRAINED[$base]} $data feature_cache="$FEATURES" seed="$seed" logger=csv $more $EXTRA
        done ;;
    esac
  done
done
"$BIN/python" "$(dirname "$0")/summarize.py" "$OUT"
