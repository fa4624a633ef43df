#!/usr/bin/env bash
# Runs the real-photo study's arms (README.md beside this file) on the prepared datasets, then writes
# results.csv and the table. From the repository root, after prepare.sh:
#   bash experiments/real_images/run.sh                                    # every arm (hours on 2 cores)
#   DATASETS=hm ARMS="concat concat_cm" SEEDS=0 bash experiments/real_images/run.sh
#   DATASETS=ml100k ARMS="gated_allwin late_allwin" bash experiments/real_images/run.sh  # any ARM_allwin
# Frozen EfficientNet-Lite0 + MiniLM features come from the feature cache (FEATURES; vrs-extract
# fills it, or the first run does). Trained arms: early stopping on validation NDCG@10, test at the
# best validation epoch, one run per seed; finished runs are skipped, interrupted ones continue
# (train_run.sh). Baselines are deterministic: one run each; content_profile runs every WINDOWS value
# and the table keeps the one with the best validation NDCG@10.
set -euo pipefail
set -f  # no pathname expansion: overrides such as [image,text] are words, not patterns
DATA=${DATA:-data/real_images}
OUT=${OUT:-runs/real_images}
BIN=${BIN:-.venv/bin}
SEEDS=${SEEDS:-"0 1 2"}
DATASETS=${DATASETS:-"hm ml100k"}
FEATURES=${FEATURES:-cache/features}
# More overrides for every trained arm, e.g. EXTRA="callbacks.early_stopping.patience=30" (MovieLens).
EXTRA=${EXTRA:-}
WINDOWS=${WINDOWS:-"1 2 3 5"}
# content_profile_white: the profile on whitened features (model.whiten), every WHITEN x WINDOWS value.
WHITEN=${WHITEN:-"0.1 0.03 0.01"}
# content_profile_session: the whitened profile of the recent items at most GAP timestamp units older
# than the latest (model.session_gap; H&M's timestamps are days, MovieLens' seconds), every WHITEN x
# GAPS x SESSION_WINDOWS value.
GAPS=${GAPS:-"0 86400 259200"}
SESSION_WINDOWS=${SESSION_WINDOWS:-"2 3 5 10"}
ORDER=(popularity visual_profile content_profile content_profile_white content_profile_session id_only image_only text_only concat gated cross_attention late
  concat_nodrop concat_cm concat_noid concat_noid_cm concat_noid_cmfull concat_aux concat_cm_aux finetune_top
  concat_cmw concat_noid_cmw concat_noid_cmws id_only_defaults concat_defaults id_only_allwin concat_allwin
  id_only_len200 concat_len200)
ARMS=${ARMS:-"${ORDER[*]}"}
# shellcheck source=../reproduce_sasrec_amazon/train_run.sh
source "$(dirname "$0")/../reproduce_sasrec_amazon/train_run.sh"
COMMON="data=canonical feature_cache=$FEATURES encoder=effnet_minilm"
# The trained arms keep the model defaults their rows were made with (vrs's before 2026-12).
TRAINED="$COMMON user=sasrec_v1 model.init=default model.optimizer.weight_decay=0.01 model.optimizer.betas=[0.9,0.999]"
FROZEN="$TRAINED encoder.finetune.freeze=true"
declare -A GRID=(
  [id_only]="$FROZEN fusion=id_only"
  [image_only]="$FROZEN fusion=image_only"
  [text_only]="$FROZEN fusion=text_only"
  [concat]="$FROZEN fusion=concat"
  [gated]="$FROZEN fusion=gated"
  [cross_attention]="$FROZEN fusion=cross_attention"
  [late]="$FROZEN fusion=late"
  [concat_nodrop]="$FROZEN fusion=concat model.modality_dropout=0"
  [concat_cm]="$FROZEN fusion=concat model.content_match={modalities:[image,text],window:1}"
  # No item-ID embedding: a cold item's ID vector only ever learns to score low (it is a negative in
  # every softmax and never a target), which the content part then has to outweigh.
  [concat_noid]="$FROZEN fusion=concat model.use_id=false"
  [concat_noid_cm]="$FROZEN fusion=concat model.use_id=false model.content_match={modalities:[image,text],window:1}"
  # The content term on every feature column (dim null) rather than its 128 leading principal
  # directions: the content profile's own signal, exactly.
  [concat_noid_cmfull]="$FROZEN fusion=concat model.use_id=false model.content_match={modalities:[image,text],window:1,dim:null}"
  # An auxiliary category cross-entropy on the fused item vector (H&M: product type), so the content
  # path carries the category for cold items; weight 0.5 set a priori.
  [concat_aux]="$FROZEN fusion=concat model.aux_category_weight=0.5"
  [concat_cm_aux]="$FROZEN fusion=concat model.content_match={modalities:[image,text],window:1} model.aux_category_weight=0.5"
  # The content term on whitened features, with the whitened profile's best validation settings on
  # H&M (whiten 0.01, window 2; every feature column: whitened features have no leading directions).
  [concat_cmw]="$FROZEN fusion=concat model.content_match={modalities:[image,text],window:2,dim:null,whiten:0.01}"
  [concat_noid_cmw]="$FROZEN fusion=concat model.use_id=false model.content_match={modalities:[image,text],window:2,dim:null,whiten:0.01}"
  # The same on the latest day's items (session_gap 0 on H&M's day timestamps), with the session
  # profile's best validation settings on H&M (whiten 0.1, window 3).
  [concat_noid_cmws]="$FROZEN fusion=concat model.use_id=false model.content_match={modalities:[image,text],window:3,dim:null,whiten:0.1,session_gap:0}"
  # vrs's sequence-model defaults since 2026-12 (user=sasrec and model=fused as the Amazon study chose
  # them on Beauty validation) instead of the earlier ones the other trained arms keep.
  [id_only_defaults]="$COMMON encoder.finetune.freeze=true fusion=id_only"
  [concat_defaults]="$COMMON encoder.finetune.freeze=true fusion=concat"
  # Histories of up to 200 events rather than 50 (MovieLens users average 106 events; SASRec's
  # MovieLens-1M setting), usually run as ARM_allwin.
  [id_only_len200]="$FROZEN fusion=id_only data.max_len=200"
  [concat_len200]="$FROZEN fusion=concat data.max_len=200"
  # The image tower's last block (and its 1x1 head) trains with the model; the text tower stays
  # frozen. The frozen stages run once per catalogue (their output is kept), the top at every step;
  # while encoder weights train, the loss takes in-batch negatives (encoder.finetune.negatives).
  [finetune_top]="$TRAINED fusion=concat encoder.finetune.freeze=false encoder.finetune.trainable_layers={image:1,text:0}"
)
evaluate() {  # evaluate RUN_DIR OVERRIDES...: a baseline, once
  local run=$1
  shift
  [[ -f "$run/metrics.json" ]] && { echo "done: $run"; return 0; }
  # shellcheck disable=SC2086  # the overrides are words
  "$BIN/vrs-eval" "$@" 'stages=[val,test]' logger=none hydra.run.dir="$run"
}
for name in $DATASETS; do
  root="$DATA/$name"
  for arm in $ARMS; do
    case $arm in
      popularity) evaluate "$OUT/popularity/$name/seed0" model=popularity data=canonical data.root="$root" \
        data.load_images=false ;;
      visual_profile) evaluate "$OUT/visual_profile/$name/seed0" model=visual_profile $COMMON data.root="$root" ;;
      content_profile)
        for w in $WINDOWS; do
          evaluate "$OUT/content_profile_w$w/$name/seed0" model=content_profile model.window="$w" $COMMON \
            data.root="$root"
        done ;;
      content_profile_white)
        for wh in $WHITEN; do
          for w in $WINDOWS; do
            evaluate "$OUT/content_profile_white${wh}_w$w/$name/seed0" model=content_profile model.window="$w" \
              model.whiten="$wh" $COMMON data.root="$root"
          done
        done ;;
      content_profile_session)
        for wh in $WHITEN; do
          for gap in $GAPS; do
            for w in $SESSION_WINDOWS; do
              evaluate "$OUT/content_profile_session_white${wh}_gap${gap}_w$w/$name/seed0" model=content_profile \
                model.window="$w" model.whiten="$wh" model.session_gap="$gap" $COMMON data.root="$root"
            done
          done
        done ;;
      *)
        # ARM_allwin: the trained arm with every train event a target once per epoch
        # (data.train_windows=all) rather than each user's last 51 events only (MovieLens users
        # average 106 events).
        base=${arm%_allwin} more=
        [[ $base != "$arm" && ! -v "GRID[$arm]" ]] && more=data.train_windows=all
        [[ -v "GRID[$base]" || -v "GRID[$arm]" ]] ||
          { echo "unknown arm $arm (known: ${ORDER[*]}, each trained one also as ARM_allwin)" >&2; exit 2; }
        overrides=${GRID[$arm]:-${GRID[$base]} $more}
        for seed in $SEEDS; do
          run="$OUT/$arm/$name/seed$seed"
          if [[ -f "$run/metrics.json" ]]; then echo "done: $run"; continue; fi
          # shellcheck disable=SC2086
          train_run "$run" $overrides data.root="$root" seed="$seed" logger=csv $EXTRA
        done ;;
    esac
  done
done
"$BIN/python" "$(dirname "$0")/summarize.py" "$OUT"
