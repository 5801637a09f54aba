#!/usr/bin/env bash
# pipelines/demo.sh (`make demo`): the README's main job, a portrait in and a 3D avatar out, by
# pipelines/rodinhd.mk on the bundled data (tests/data/mini: avatar_100 and avatar_101, views 0-23
# for fitting, 100,105,110,115 held out) at a CPU size; everything under build/demo/ (OUT):
#   features/            rhd-encode with RANDOM weights (random:1: the SDXL-VAE weights are a
#                        download the demo cannot make; WEIGHTS=DIR for real features)
#   plan.json, fit/      rhd-schedule fit + rhd-fit stage 1: the decoder and both avatars' triplanes
#                        (32 x 32 x 8 channels, one round of 300 steps
#                        mixing both avatars' rays in every step)
#   base/                rhd-train: a small base model (32 model channels over the planes' 8: a
#                        network narrower than its input cannot denoise it, tools/rhd-train.md;
#                        16 x 16 planes: the fitted 32 planes area-downsampled; trained to predict
#                        x0, tools/rhd-train.md "Prediction target") on the two avatars; loss.png
#   upsample/            rhd-train --model upsample: a small upsampler 16 -> 32 (--factor 2), its
#                        condition the fits' 2 x 2 block means (--degradation area: what the base
#                        model learns to sample), x0 loss only (no rendering loss: CPU budget)
#   samples/avatar_10N   rhd-sample from each portrait's features: base 16 x 16, then upsampled to 32
#   eval/sample/avatar_100/contact_sheet.png   ground truth | generated avatar, held-out views
#   eval/fitted/avatar_100/contact_sheet.png   ground truth | fitted triplane (the upper bound)
#   turntables/, meshes/, report.md, report.html, metrics.json
# The model has seen both avatars: the demo shows that it reproduces an avatar from its portrait,
# not that it generalises (that needs thousands of avatars and GPUs; see pipelines/rodinhd.md).
# Rerunning resumes / makes nothing; DEMO_JOBS (2) sets make -j; extra arguments go to make.
set -euo pipefail
BUILD=${RHD_BUILD:-build}
OUT=${DEMO_OUT:-build/demo}
start=$(date +%s)
make --no-print-directory -f pipelines/rodinhd.mk -j"${DEMO_JOBS:-2}" RHD_BIN="$BUILD/bin" DATA=tests/data/mini OUT="$OUT" \
    SAMPLE="avatar_100 avatar_101" THREADS=${DEMO_THREADS:-2} \
    PLAN_OPTS="--rounds 1 --steps 300 --order interleaved --group 2 --refit-steps 0" \
    SIZE_OPTS="--triplane-res 32 --triplane-channels 8" \
    FIT_OPTS="--rays 256 --grid-size 32 --max-steps 64 --train-views 0-23 --eval-views 100,110" \
    MODEL_CONFIG='{"image_size": 16, "in_channels": 8, "out_channels": 16, "latent_size": 8, "patch": 8, "model_channels": 32, "channel_mult": [1, 2], "groups": 8, "num_head_channels": 16, "attention_resolutions": [8]}' \
    TRAIN_OPTS="--pred xstart --batch 2 --steps ${DEMO_STEPS:-800} --lr 1e-3 --clip-grad 1 --ema 0.99 --log-every 10 --save-every 50" \
    UPSAMPLE=1 UPSAMPLE_CONFIG='{"in_ch": 8, "out_ch": 8, "cond_ch": 8, "n_feats": 16, "groups": 8, "temb_ch": 16, "temb_dim": 64, "embed_dim": 16, "pool_heads": 4, "latent_size": 8, "patch": 8, "head_ch": 16, "num_res_blocks": 1, "n_resblocks": 2}' \
    UPSAMPLE_OPTS="--resolution 32 --factor 2 --degradation area --render-weight 0 --lpips-weight 0 --batch 2 --steps ${DEMO_UP_STEPS:-600} --lr 2e-3 --ema 0.99 --log-every 10 --save-every 100" \
    SAMPLE_OPTS="--weights ema" RENDER_OPTS="--grid-size 32 --max-steps 64 --triplane-res 32" \
    FRAMES=12 MESH_RES=64 "$@"
echo "demo: done in $(( $(date +%s) - start )) s; $OUT/report.md; the generated avatar beside its ground truth:"
echo "demo:   $OUT/eval/sample/avatar_100/contact_sheet.png (the fitted triplane: $OUT/eval/fitted/avatar_100/)"
tr -d '\n' < "$OUT/metrics.json" | grep -o '"mean_[a-z]*": {[^}]*}' | sed 's/^/demo: /' || true
