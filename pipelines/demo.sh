#!/usr/bin/env bash
# pipelines/demo.sh: the README's main job on the bundled data (tests/data/mini: two avatars,
# views 0-23 for training and 100,105,110,115 held out). It runs the stages that exist so far and
# writes everything under build/demo/. Each stage added to the suite is added here.
set -euo pipefail
BUILD=${RHD_BUILD:-build}
BIN=$BUILD/bin
DATA=tests/data/mini
OUT=build/demo
mkdir -p "$OUT"
echo "demo: inputs: $DATA ($(ls -d $DATA/avatar_* | wc -l) avatars)"
for a in "$DATA"/avatar_*; do
    name=$(basename "$a")
    # the portrait (view 0): format, statistics and a preview
    "$BIN/rhd-inspect" "$a/img_proc_fg_000000.png"
    "$BIN/rhd-inspect" -q --png "$OUT/$name.portrait.png" "$a/img_proc_fg_000000.png" > /dev/null
done
echo "demo: wrote $(ls "$OUT"/*.png | wc -l) pictures under $OUT/"
