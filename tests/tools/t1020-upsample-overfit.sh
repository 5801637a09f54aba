#!/usr/bin/env bash
# tests/tools/t1020-upsample-overfit.sh: does a small upsampler trained on one dev avatar move its
# input toward the target it learned? rhd-train --model upsample (8 channels, n_feats 16, no
# rendering loss) on avatar_100's 8-channel fit of tests/data/train-c8 at resolution 32, the
# condition a precomputed --low-res folder of its 8 x 8 planes (4 x 4 block means, numpy);
# rhd-sample --upsample --low-res on that folder; rhd-render (train-c8's decoder, 10 views of
# tests/data/mini, grid 32, 64 march steps) of three triplanes: the upsampled sample, the 8 x 8
# planes resized bicubically to 32 (rhd-render --triplane-res 32) and the 32 x 32 fit itself (the
# training target).
#
# Asserted: every stage exits 0, the renders are finite and written, and against the HR fit (the
# target): the sample's plane MSE is at least 10% below the bicubic input's, and its renders are
# closer to the HR fit's renders (RGB PSNR over the views) than the bicubic input's are.
# Against the ground-truth views only printed: the fit (100 steps of rhd-fit at 32) is so coarse
# that its bicubic blur renders about as well as the fit itself (18.20 vs 18.12 dB on these
# views), so it cannot tell an upsampler from a blur (the earlier check on views 0 and 100, where
# the fit led by 0.8 dB, failed on 2 seeds of 10 at 150 steps).
# Measured (2026-12-07, 2 threads, busy 2-core machine, about 0.1 s a training step), 300 steps,
# lr 2e-3, --weights model, --up-time-scale raw: plane MSE of the sample against the fit
# 0.0099-0.0115 over 14 seeds (bicubic 0.0146); at 150 steps 0.0122-0.0134.
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}
C8=$RHD_ROOT/tests/data/train-c8 MINI=$RHD_ROOT/tests/data/mini
STEPS=300 LR=2e-3 SEED=${RHD_TEST_SEED:-0}   # the training and sampling seed: fresh each run (tests/run.sh)
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

VIEWS=0,4,8,12,16,20,100,105,110,115
psnr() { # NAME ARGS...: render the views, print the mean PSNR
    local name=$1; shift
    run rhd-render -q --decoder "$C8/decoder.safetensors" --data "$MINI/avatar_100" --views $VIEWS --grid-size 32 \
        --max-steps 64 --metrics --threads 2 -o "v_$name" "$@"
    [ "$rc" = 0 ] && [ -s "v_$name/rgb_0000.png" ] && [ -s "v_$name/rgb_0100.png" ] &&
        printf '%s' "$out" | "$PY" -c 'import json, math, sys; p = json.load(sys.stdin)["mean"]["psnr"]; assert math.isfinite(p); print("%.2f" % p)'
}
p_up=$(psnr up up/avatar_100.safetensors) && _tap 0 "upsampled sample rendered: $p_up dB" || _tap 1 "upsampled sample: no finite render"
p_bic=$(psnr bic low/avatar_100.npy --triplane-res 32) && _tap 0 "bicubic 8 -> 32 rendered: $p_bic dB" || _tap 1 "bicubic: no finite render"
p_hr=$(psnr hr tri/avatar_100.npy) && _tap 0 "HR fit rendered: $p_hr dB" || _tap 1 "HR fit: no finite render"
# the target is the HR fit the upsampler was trained on: plane MSE against it, and the renders
# against the HR fit's renders (RGB PSNR over the views, each view's PNG)
read -r mse_up mse_bic p_up_hr p_bic_hr < <("$PY" -c "
import numpy as np, torch
import torch.nn.functional as F
from PIL import Image
from safetensors.numpy import load_file
hr = np.load('tri/avatar_100.npy').astype(np.float32).reshape(3, 8, 32, 32)
low = torch.from_numpy(np.load('low/avatar_100.npy'))
bic = F.interpolate(low, size=(32, 32), mode='bicubic', align_corners=False).numpy()
up = load_file('up/avatar_100.safetensors')['planes']
def psnr(a):
    e = [np.mean((np.asarray(Image.open('v_%s/rgb_%04d.png' % (a, v)), np.float64)[..., :3] / 255
                  - np.asarray(Image.open('v_hr/rgb_%04d.png' % v), np.float64)[..., :3] / 255) ** 2)
         for v in map(int, '$VIEWS'.split(','))]
    return 10 * np.log10(1 / np.mean(e))
print('%.5f %.5f %.2f %.2f' % (((up - hr) ** 2).mean(), ((bic - hr) ** 2).mean(), psnr('up'), psnr('bic')))" ||
    echo fail fail fail fail)
echo "# against the ground-truth views $VIEWS: upsampled $p_up dB, bicubic input $p_bic dB, HR fit $p_hr dB"
echo "# against the HR fit: plane MSE upsampled $mse_up, bicubic $mse_bic; renders upsampled $p_up_hr dB, bicubic $p_bic_hr dB ($STEPS steps)"
if awk -v a="$mse_up" -v b="$mse_bic" 'BEGIN { exit !(a + 0 == a && b + 0 == b && a < 0.9 * b) }'; then
    _tap 0 "the upsampled planes are closer to the HR fit than the bicubic input's, by 10% of MSE ($mse_up < 0.9 x $mse_bic)"
else _tap 1 "the upsampled planes' MSE against the HR fit ($mse_up) is not 10% below the bicubic input's ($mse_bic)"; fi
if awk -v a="$p_up_hr" -v b="$p_bic_hr" 'BEGIN { exit !(a + 0 == a && b + 0 == b && a > b) }'; then
    _tap 0 "the upsampled sample's renders are closer to the HR fit's than the bicubic input's ($p_up_hr > $p_bic_hr dB)"
else _tap 1 "the upsampled sample's renders ($p_up_hr dB against the HR fit's) are not closer than the bicubic input's ($p_bic_hr dB)"; fi
done_testing
