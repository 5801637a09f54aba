#!/usr/bin/env bash
# tests/tools/t1020-upsample-overfit.sh: does a small upsampler trained on one dev avatar render
# better than the bicubic upsampling of its own input? rhd-train --model upsample (8 channels,
# n_feats 16, no rendering loss) on avatar_100's 8-channel fit of tests/data/train-c8 at
# resolution 32, the condition a precomputed --low-res folder of its 8 x 8 planes (4 x 4 block
# means, numpy); rhd-sample --upsample --low-res on that folder; rhd-render (train-c8's decoder,
# views 0 and 100 of tests/data/mini, grid 32, 64 march steps) of three triplanes against the
# ground-truth views: the upsampled sample, the 8 x 8 planes resized bicubically to 32
# (rhd-render --triplane-res 32) and the 32 x 32 fit itself (the target of the training).
#
# Asserted: every stage exits 0, the renders are finite and written, the HR fit renders above the
# bicubic input, and the upsampled sample renders above the bicubic input. Measured (2026-12-06,
# 2 threads, OMP_WAIT_POLICY=passive, a busy 2-core machine; training about 0.25 s a step):
#   HR fit 17.91 dB, bicubic 8 -> 32 17.11 dB (plane MSE against the fit 0.01457);
#   upsampled, lr 2e-3, --weights model, --up-time-scale raw (the training's time scale):
#     100 steps seed 0: 17.53 dB (plane MSE 0.01384);
#     150 steps seed 0: 18.09 dB (0.01283; training x0 MSE 0.049 at step 10 -> 0.013 at 150);
#     150 steps RHD_TEST_SEED=1 (training and sampling): 18.32 dB (0.01255);
#     150 steps RHD_TEST_SEED=777: 17.97 dB (0.01237) (after linear layers became row-invariant).
# The sample renders a little above the fit itself: the fit (100 steps of rhd-fit) is not the
# ground truth either (why the sample gains on it was not investigated).
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}
C8=$RHD_ROOT/tests/data/train-c8 MINI=$RHD_ROOT/tests/data/mini
STEPS=150 LR=2e-3 SEED=${RHD_TEST_SEED:-0}   # the training and sampling seed: fresh each run (tests/run.sh)
cd "$T"
mkdir -p tri low
cp "$C8/avatar_100.npy" tri/
check "low-res folder: avatar_100's planes as 4 x 4 block means [3,8,8,8] (numpy)" "$PY" -c "
import numpy as np
a = np.load('tri/avatar_100.npy').astype(np.float32).reshape(3, 8, 32, 32)
np.save('low/avatar_100.npy', a.reshape(3, 8, 8, 4, 8, 4).mean(axis=(3, 5)))
"
run rhd-encode -q --weights random:1 --size 64 --threads 2 -o feat/avatar_100.safetensors "$MINI/avatar_100/img_proc_fg_000000.png"
expect_rc 0 "rhd-encode: avatar_100's features (random weights, 64 px)"
echo 'tri/avatar_100.npy feat/avatar_100.safetensors' > one.txt
echo '{"in_ch": 8, "out_ch": 8, "cond_ch": 8, "n_feats": 16, "groups": 8, "temb_ch": 16, "temb_dim": 64, "embed_dim": 16,
 "pool_heads": 4, "latent_size": 8, "patch": 8, "head_ch": 16, "num_res_blocks": 1, "n_resblocks": 2}' > ups.json
run rhd-train --model upsample --preset small --model-config ups.json --resolution 32 --data one.txt --low-res low \
    --render-weight 0 --lpips-weight 0 --batch 1 --steps "$STEPS" --lr $LR --seed "$SEED" --save-every 100000 --threads 2 -q -o run
expect_rc 0 "rhd-train --model upsample: $STEPS steps on avatar_100 with --low-res low, lr $LR, seed $SEED"
run rhd-sample -q --upsample run/checkpoint.safetensors --weights model --low-res low --up-time-scale raw --seed "$SEED" \
    --threads 2 -o up feat/avatar_100.safetensors
expect_rc 0 "rhd-sample --upsample --low-res low: the upsampled triplane"

psnr() { # NAME ARGS...: render views 0 and 100, print the mean PSNR
    local name=$1; shift
    run rhd-render -q --decoder "$C8/decoder.safetensors" --data "$MINI/avatar_100" --views 0,100 --grid-size 32 \
        --max-steps 64 --metrics --threads 2 -o "v_$name" "$@"
    [ "$rc" = 0 ] && [ -s "v_$name/rgb_0000.png" ] && [ -s "v_$name/rgb_0100.png" ] &&
        printf '%s' "$out" | "$PY" -c 'import json, math, sys; p = json.load(sys.stdin)["mean"]["psnr"]; assert math.isfinite(p); print("%.2f" % p)'
}
p_up=$(psnr up up/avatar_100.safetensors) && _tap 0 "upsampled sample rendered: $p_up dB" || _tap 1 "upsampled sample: no finite render"
p_bic=$(psnr bic low/avatar_100.npy --triplane-res 32) && _tap 0 "bicubic 8 -> 32 rendered: $p_bic dB" || _tap 1 "bicubic: no finite render"
p_hr=$(psnr hr tri/avatar_100.npy) && _tap 0 "HR fit rendered: $p_hr dB" || _tap 1 "HR fit: no finite render"
mse=$("$PY" -c "
import numpy as np
from safetensors.numpy import load_file
hr = np.load('tri/avatar_100.npy').astype(np.float32).reshape(3, 8, 32, 32)
s = load_file('up/avatar_100.safetensors')['planes']
print('%.5f' % ((s - hr) ** 2).mean())")
echo "# PSNR views 0,100: upsampled $p_up dB, bicubic input $p_bic dB, HR fit $p_hr dB; plane MSE of the sample $mse ($STEPS steps)"
if awk -v a="$p_hr" -v b="$p_bic" 'BEGIN { exit !(a > b) }'; then _tap 0 "the HR fit renders above the bicubic input ($p_hr > $p_bic dB)"
else _tap 1 "the HR fit ($p_hr dB) does not render above the bicubic input ($p_bic dB)"; fi
if awk -v a="$p_up" -v b="$p_bic" 'BEGIN { exit !(a > b) }'; then _tap 0 "the upsampled sample renders above the bicubic input ($p_up > $p_bic dB)"
else _tap 1 "the upsampled sample ($p_up dB) does not render above the bicubic input ($p_bic dB; measured: header)"; fi
done_testing
