#!/usr/bin/env bash
# pipelines/demo.sh: the README's main job on the bundled data (tests/data/mini: avatar_100 and
# avatar_101, views 0-23 for training and 100,105,110,115 held out). Small sizes so that it runs in
# about 2 minutes on 2 CPU cores; everything goes under build/demo/:
#   features/                 rhd-encode: portrait features (random weights, see below)
#   plan.json                 rhd-schedule fit: the task-replay plan (4 interleaved rounds)
#   fit/                      rhd-fit stage 1: decoder, triplanes, IWC states, checkpoint
#   contact_sheet.png         held-out views: ground truth | render, per avatar (forgetting report)
#   render/                   rhd-render of avatar_100: held-out views, metrics.json, a turntable,
#                             a mesh (avatar_100.ply)
#   noise_schedules.png       rhd-schedule noise: the diffusion schedules of the base and upsampler
#   *.portrait.png            rhd-inspect previews of the portraits
set -euo pipefail
BUILD=${RHD_BUILD:-build}
BIN=$BUILD/bin
DATA=tests/data/mini
OUT=build/demo
SIZE="--triplane-res 32 --triplane-channels 16 --grid-size 32 --rays 1024 --max-steps 64"
mkdir -p "$OUT"
echo "demo: inputs: $DATA ($(ls -d $DATA/avatar_* | wc -l) avatars); outputs: $OUT/"
for a in "$DATA"/avatar_*; do
    "$BIN/rhd-inspect" -q --png "$OUT/$(basename "$a").portrait.png" "$a/img_proc_fg_000000.png" > /dev/null
done
# portrait features (random encoder weights: the real SDXL-VAE weights are a download the demo
# cannot make; pass --weights DIR with diffusers' vae folder for real features)
"$BIN/rhd-encode" -q --weights random:1 --data "$DATA" --out-dir "$OUT/features"
"$BIN/rhd-inspect" --kind features --no-stats "$OUT"/features/*.safetensors
# interleaved replay: at this tiny size a round-robin visit of one avatar visibly shifts the
# other's colours (forgetting; see tools/rhd-fit.md), mixing both avatars' rays in every step does not
"$BIN/rhd-schedule" fit --data "$DATA" --rounds 4 --steps 300 --order interleaved --group 2 -o "$OUT/plan.json"
"$BIN/rhd-fit" --stage 1 --plan "$OUT/plan.json" --data "$DATA" $SIZE --train-views 0-23 \
    --eval-views 100,105,110,115 --force -o "$OUT/fit" --contact-sheet "$OUT/contact_sheet.png"
mkdir -p "$OUT/render"
"$BIN/rhd-render" --decoder "$OUT/fit/decoder.safetensors" --data "$DATA/avatar_100" --views 100,105,110,115 \
    --grid-size 32 --max-steps 64 --metrics --contact-sheet "$OUT/render/contact_sheet.png" \
    --mesh "$OUT/render/avatar_100.ply" --mesh-res 64 -o "$OUT/render" \
    "$OUT/fit/triplanes/avatar_100.safetensors" > "$OUT/render/metrics.json"
echo "demo: held-out metrics of avatar_100: $(cat "$OUT/render/metrics.json" | tr -d '\n' | grep -oE '"mean[^}]*')"
"$BIN/rhd-render" --decoder "$OUT/fit/decoder.safetensors" --data "$DATA/avatar_100" --orbit --frames 12 \
    --grid-size 32 --max-steps 64 -o "$OUT/render/turntable" "$OUT/fit/triplanes/avatar_100.safetensors"
"$BIN/rhd-schedule" noise --schedule cosine_light,sigmoid --steps 1000 --png "$OUT/noise_schedules.png" > /dev/null
echo "demo: done; look at $OUT/contact_sheet.png and $OUT/render/"
