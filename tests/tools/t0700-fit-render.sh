#!/usr/bin/env bash
# tests/tools/t0700-fit-render.sh: quality of a real fit, end to end on the bundled mini data set
# (tests/data/mini: views 0-23 train, 100/105/110/115 held out).
#   1. rhd-fit stage 1 fits avatar_101 alone (triplane 3x32x32x32, grid 32, 1024 rays per step);
#      rhd-render renders its held-out views with the fitted triplane and decoder: the mean PSNR
#      beats a threshold set from measurement, the SSIM is sane, the frames, a contact sheet, an
#      orbit turntable showing the avatar and a mesh (opened with plyfile) come out.
#   2. rhd-fit stage 2 fits avatar_100 with that decoder frozen: its held-out PSNR beats a
#      threshold set from measurement (issue 5: t0500's stage-2 check uses a barely trained
#      decoder and a 14 dB floor; this one uses a decoder trained on a whole avatar).
# Thresholds sit about 1.4 dB below the lowest of three seeds (a run is bit-reproducible on the CPU
# for a given seed and any thread count; the margin covers other seeds and compilers). With the
# shared dev set ($RHD_SHARED/data/blender-avatars-dev) the fitted avatar is also judged on all 20
# of its held-out views (100-119); without it that check is skipped. About 100 s of CPU time
# (stage 1 45 s, stage 2 35 s, renders 20 s), under a minute on 2 free cores.
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}
MINI=$RHD_ROOT/tests/data/mini
HELD=100,105,110,115
SIZE="--triplane-res 32 --triplane-channels 32 --grid-size 32 --max-steps 64 --threads 2"
FIT="$SIZE --rays 1024 --train-views 0-23 --eval-views $HELD"
REND="--grid-size 32 --max-steps 64 --threads 2"
S1_STEPS=400 S2_STEPS=300
# measured with seed 0 (and the range over seeds 0-2), 2026-11-29
S1_MIN=26.0 S1_MEASURED="27.76, seeds 0-2: 27.45-27.87"   # rhd-render, avatar_101, mean of 4 held-out views
S2_MIN=22.5 S2_MEASURED="24.26, seeds 0-2: 23.89-24.26"   # stage 2 with the frozen decoder, avatar_100
SSIM_MIN=0.88 SSIM_MEASURED="0.916, seeds 0-2: 0.916-0.917"
DEV_MEASURED="28.15"                                        # the same fit on the dev set's views 100-119

# the mean PSNR / SSIM of a metrics JSON (rhd-render --metrics) on stdout
mean_of() { "$PY" -c "import json,sys; print('%.4f' % json.load(open(sys.argv[1]))['mean'][sys.argv[2]])" "$1" "$2"; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }

# --- 1. stage 1 on avatar_101, rendered at its held-out views -------------------------------------
run rhd-schedule fit -q --avatars avatar_101 --rounds 1 --steps $S1_STEPS -o "$T/plan.json"
expect_rc 0 "plan: one visit of avatar_101, $S1_STEPS steps"
run rhd-fit -q --stage 1 --plan "$T/plan.json" --data "$MINI" $FIT -o "$T/fit"
expect_rc 0 "stage 1: avatar_101, $S1_STEPS steps x 1024 rays"
DEC=$T/fit/decoder.safetensors TRI=$T/fit/triplanes/avatar_101.safetensors
run rhd-render -q --decoder "$DEC" --data "$MINI/avatar_101" --views $HELD $REND --metrics \
    --contact-sheet "$T/sheet.png" -o "$T/held" "$TRI"
expect_rc 0 "rhd-render: held-out views of the fitted avatar with --metrics"
printf '%s' "$out" >"$T/metrics.json"
psnr=$(mean_of "$T/metrics.json" psnr 2>/dev/null || echo 0)
ssim=$(mean_of "$T/metrics.json" ssim 2>/dev/null || echo 0)
check "held-out PSNR of the fitted avatar $psnr >= $S1_MIN dB (measured $S1_MEASURED)" ge "$psnr" $S1_MIN
check "held-out SSIM $ssim >= $SSIM_MIN (measured $SSIM_MEASURED), every view finite and in [0,1]" "$PY" -c "
import json, math, sys
j = json.load(open(sys.argv[1])); v = j['views']
assert [x['view'] for x in v] == [100, 105, 110, 115] and j['count'] == 4
assert all(math.isfinite(x['psnr']) and 0 <= x['ssim'] <= 1 for x in v)
assert j['mean']['ssim'] >= float(sys.argv[2])" "$T/metrics.json" $SSIM_MIN
check "a frame per held-out view" test -s "$T/held/rgb_0100.png" -a -s "$T/held/rgb_0105.png" -a -s "$T/held/rgb_0110.png" -a -s "$T/held/rgb_0115.png"
check "contact sheet: a PNG holding 4 rows of gt | render" "$PY" -c "
import png, sys
w, h, _, _ = png.Reader(sys.argv[1]).read()
assert w >= 2 * 128 and h >= 4 * 128, (w, h)" "$T/sheet.png"

# turntable: a 6-frame orbit at 64x64 (measured: 17-20% of the pixels show the avatar in each
# frame, successive frames differ by 6-8 grey levels on average)
run rhd-render -q --decoder "$DEC" --orbit --frames 6 --size 64 $REND -o "$T/orbit" "$TRI"
expect_rc 0 "rhd-render --orbit: a 6-frame turntable"
check "turntable: 6 frames, each showing the avatar (5-60% of the pixels off white), the view turning" "$PY" -c "
import sys
import numpy as np, png
ims = []
for f in range(6):
    w, h, rows, _ = png.Reader('%s/rgb_%04d.png' % (sys.argv[1], f)).asRGB8()
    a = np.array([list(r) for r in rows], float).reshape(h, w, 3); ims.append(a)
    fg = (a.min(2) < 235).mean()
    assert (w, h) == (64, 64) and 0.05 <= fg <= 0.6, (f, w, h, fg)
for f in range(1, 6):
    assert np.abs(ims[f] - ims[f - 1]).mean() > 2, f" "$T/orbit"

# mesh: marching cubes of the fitted density (measured at 48^3: 1986 vertices, 3968 faces,
# extent 0.62 x 1.27 x 0.83)
run rhd-render -q --decoder "$DEC" --no-images --mesh "$T/avatar.ply" --mesh-res 48 --threads 2 "$TRI"
expect_rc 0 "rhd-render --mesh of the fitted avatar"
check "mesh: plyfile opens it; an avatar-sized, coloured surface inside the box" "$PY" -c "
import sys
import numpy as np
from plyfile import PlyData
p = PlyData.read(sys.argv[1]); v = p['vertex'].data
assert p['vertex'].count > 500 and p['face'].count > 1000, (p['vertex'].count, p['face'].count)
xyz = np.stack([v['x'], v['y'], v['z']], 1); ext = xyz.max(0) - xyz.min(0)
assert np.all(np.abs(xyz) <= 1.0 + 1e-5) and 0.4 < ext.min() and ext.max() < 1.8, ext
rgb = np.stack([v['red'], v['green'], v['blue']], 1).astype(float)
assert rgb.std(0).max() > 5, rgb.std(0)" "$T/avatar.ply"

# --- 2. stage 2 on avatar_100 with the decoder of avatar_101, frozen ------------------------------
run rhd-fit -q --stage 2 --decoder "$DEC" --data "$MINI" --avatar avatar_100 --steps $S2_STEPS $FIT -o "$T/s2.safetensors"
expect_rc 0 "stage 2: avatar_100 with the frozen decoder, $S2_STEPS steps"
s2=$(printf '%s' "$out" | sed -n 's/.*"psnr": \([0-9.]*\).*/\1/p')
check "stage-2 held-out PSNR $s2 >= $S2_MIN dB (measured $S2_MEASURED)" ge "${s2:-0}" $S2_MIN

# --- 3. the dev set, when present: the same fit judged on all 20 held-out views -------------------
DEV=$RHD_SHARED/data/blender-avatars-dev
if [ -d "$DEV/avatar_101" ]; then
    run rhd-render -q --decoder "$DEC" --data "$DEV/avatar_101" --views 100-119 $REND --metrics --no-images "$TRI"
    expect_rc 0 "dev set: rhd-render of views 100-119"
    printf '%s' "$out" >"$T/dev.json"
    dpsnr=$(mean_of "$T/dev.json" psnr 2>/dev/null || echo 0)
    check "dev set: PSNR on the 20 held-out views $dpsnr >= $S1_MIN dB (measured $DEV_MEASURED)" ge "$dpsnr" $S1_MIN
else
    n=$((n + 1)); echo "ok $n # SKIP no dev set at \$RHD_SHARED/data/blender-avatars-dev"
fi
done_testing
