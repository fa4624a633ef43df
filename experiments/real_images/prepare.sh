#!/usr/bin/env bash
# Writes the two prepared datasets of the real-photo study (protocol: README.md beside this file):
#   OUT/hm      H&M purchases: rows identical in (customer, article, day) collapsed, customers with at
#               least 3 remaining purchases, every article kept (1,094 users, 28,117 events, 17,033 items)
#   OUT/ml100k  MovieLens-100K with posters: every user and item (943 users, 1,682 items)
# From the repository root:  bash experiments/real_images/prepare.sh data/real_images
# SHARED (default ../shared/data) holds the source folders; IMAGE_MODE=symlink links the photos
# instead of copying them. Rerunning reuses what an earlier run wrote from the same sources.
set -euo pipefail
OUT=${1:?usage: prepare.sh OUT}
BIN=${BIN:-.venv/bin}
SHARED=${SHARED:-../shared/data}
IMAGE_MODE=${IMAGE_MODE:-copy}
"$BIN/vrs-prepare" source=hm in_dir="$SHARED/hm-fashion-sample" out_dir="$OUT/hm" image_mode="$IMAGE_MODE" \
  preprocess.dedup=same_time preprocess.min_user_events=3 preprocess.drop_unused_items=false
"$BIN/vrs-prepare" source=movielens100k in_dir="$SHARED/movielens-100k-posters" out_dir="$OUT/ml100k" \
  image_mode="$IMAGE_MODE" preprocess.drop_unused_items=false
