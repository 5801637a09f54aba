#!/usr/bin/env bash
# tests/tools/t0600-render.sh: rhd-render end to end on the mini dataset with a random decoder and
# a small random triplane (made here with safetensors/numpy): frames, depth, opacity, metrics JSON
# (with LPIPS from random lpips-package weights), contact sheet, mesh, the .npy layouts, the spiral;
# and bad inputs with their exit codes.
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}
D=$RHD_ROOT/tests/data/mini/avatar_100
"$PY" - "$T" <<'PYEOF'
import sys, json, numpy as np
from safetensors.numpy import save_file
t = sys.argv[1]
rng = np.random.default_rng(0)
def U(shape, fan):  # nn.Linear default init
    b = 1 / np.sqrt(fan); return rng.uniform(-b, b, shape).astype(np.float32)
dec = {"sigma_net.0.weight": U((128, 40), 40), "sigma_net.0.bias": U((128,), 40),
       "sigma_net.2.weight": U((129, 128), 128), "sigma_net.2.bias": U((129,), 128),
       "color_net.0.weight": U((128, 263), 263), "color_net.1.weight": U((128, 128), 128),
       "color_net.2.weight": U((3, 128), 128)}
dec["sigma_net.2.bias"][0] = 4.0   # density about e^4 = 55 everywhere: something to see
meta = {"rhd.kind": "decoder", "rhd.version": "1", "rhd.tool": "test",
        "rhd.config": json.dumps({"triplane_channels": 32, "triplane_res": 16})}
save_file(dec, f"{t}/dec.safetensors", metadata=meta)
dead = dict(dec); dead["sigma_net.2.bias"] = dec["sigma_net.2.bias"].copy(); dead["sigma_net.2.bias"][0] = -60.0
save_file(dead, f"{t}/dead.safetensors", metadata=meta)          # density ~e^-60: nothing to see
planes = rng.uniform(-1, 1, (3, 32, 16, 16)).astype(np.float32)
save_file({"planes": planes}, f"{t}/tri.safetensors", metadata={"rhd.kind": "triplane", "rhd.version": "1", "rhd.tool": "test"})
np.save(f"{t}/tri5.npy", planes.reshape(3, 1, 32, 16, 16))
np.save(f"{t}/strip.npy", np.concatenate(list(planes), axis=2))          # [32, 16, 48]
np.save(f"{t}/low.npy", planes[:, :, ::2, ::2].copy())                  # [3, 32, 8, 8]: rendered at 8
np.save(f"{t}/bad.npy", np.zeros((5, 7), np.float32))
np.save(f"{t}/c16.npy", planes[:, :16].copy())                        # [3, 16, 16, 16]: other channels
PYEOF
check "fixtures written" test -f "$T/dec.safetensors" -a -f "$T/strip.npy"
sed 's/"focal_length": *[0-9.eE+-]*/"focal_length": NaN/' "$D/metadata_000001.json" >"$T/nan.json"
cp "$D/metadata_000001.json" "$T/cam.json"

run rhd-render --help
expect_rc 0 "--help"
run rhd-render --data "$D" -o "$T/o" "$T/tri.safetensors"
expect_rc 2 "missing --decoder"
expect_err "expected --decoder FILE" "missing --decoder says so"
run rhd-render --decoder "$T/nope.safetensors" --data "$D" -o "$T/o" "$T/tri.safetensors"
expect_rc 1 "decoder file missing"
expect_err "nope.safetensors" "missing decoder file named"
run rhd-render --decoder "$T/dec.safetensors" --data "$D" -o "$T/o" "$T/dec.safetensors"
expect_rc 1 "a decoder given as the triplane"
expect_err "an rhd 'decoder' file, expected a triplane" "wrong kind of triplane named"
run rhd-render --decoder "$T/dec.safetensors" --data "$D" -o "$T/o" "$T/bad.npy"
expect_rc 1 "a 2-D .npy as the triplane"
expect_err "shape \[5,7\], expected a triplane" "bad .npy layout explained"
run rhd-render --decoder "$T/dec.safetensors" --data "$D" -o "$T/o" "$T/c16.npy"
expect_rc 1 "a triplane with other channels than the decoder"
expect_err "c16.npy: a triplane with 16 channels \[3,16,16,16\], expected 32" "its channels and shape named"
run rhd-render --decoder "$T/dec.safetensors" --camera "$T/nan.json" -o "$T/o" "$T/tri.safetensors"
expect_rc 1 "camera JSON with a NaN"
expect_err "nan.json" "NaN camera file named"
run rhd-render --decoder "$T/dec.safetensors" --no-images --mesh "$T/m.ply" --mesh-res 100000 "$T/tri.safetensors"
expect_rc 2 "absurd --mesh-res"
expect_err "mesh-res" "--mesh-res range error"
run rhd-render --decoder "$T/dec.safetensors" --spiral --orbit -o "$T/o" "$T/tri.safetensors"
expect_rc 2 "two camera sources"
run rhd-render --decoder "$T/dec.safetensors" --spiral --metrics -o "$T/o" "$T/tri.safetensors"
expect_rc 2 "--metrics without ground truth"

# incomplete data: view 1 without its metadata is an error naming it, or left out with --skip-incomplete
mkdir -p "$T/inc" && cp -r "$D" "$T/inc/" && rm "$T/inc/avatar_100/metadata_000001.json"
R="--decoder $T/dec.safetensors --views 0-1 --downscale 8 --grid-size 16 --warmup 1 --max-steps 16"
run rhd-render $R --data "$T/inc/avatar_100" -o "$T/inc_o" "$T/tri.safetensors"
expect_rc 1 "a view lacking its metadata"
expect_err "1 of 2 requested views have no metadata_%06d.json file: views 1 .*--skip-incomplete" "names the view and the option"
run rhd-render $R --data "$T/inc/avatar_100" --skip-incomplete -o "$T/inc_o" "$T/tri.safetensors"
expect_rc 0 "--skip-incomplete renders the others"
expect_err "leaving out 1 incomplete view with no metadata_%06d.json file \(--skip-incomplete\): 1" "and lists what it leaves out"
check "one frame rendered" test -f "$T/inc_o/rgb_0000.png" -a ! -e "$T/inc_o/rgb_0001.png"

# views 0-1 at 1/8 resolution: frames, depth, opacity, metrics JSON, contact sheet
run rhd-render -q --decoder "$T/dec.safetensors" --data "$D" --views 0-1 --downscale 8 --grid-size 32 --warmup 2 --max-steps 96 \
    --depth --opacity --metrics --contact-sheet "$T/sheet.png" -o "$T/o" "$T/tri.safetensors"
expect_rc 0 "render views 0-1 with metrics"
expect_out '"count": 2' "metrics JSON holds two views"
printf '%s' "$out" >"$T/metrics.json"
check "metrics JSON parses, PSNR and SSIM finite" "$PY" -c "
import json,math,sys; j=json.load(open('$T/metrics.json'))
assert [v['view'] for v in j['views']]==[0,1]
assert all(math.isfinite(v['psnr']) and -1<=v['ssim']<=1 for v in j['views'])
assert abs(j['mean']['psnr']-sum(v['psnr'] for v in j['views'])/2)<1e-9
assert j['device']=='cpu', j.get('device')"
check "rgb, depth and opacity frames written" test -f "$T/o/rgb_0000.png" -a -f "$T/o/depth_0001.png" -a -f "$T/o/opacity_0001.png"
check "contact sheet written" test -s "$T/sheet.png"
check "depth PNG is 16-bit gray" "$PY" -c "
import png; r=png.Reader('$T/o/depth_0000.png'); w,h,rows,info=r.read(); assert info['bitdepth']==16 and info['greyscale']"

# LPIPS: random alex weights written by the lpips package (tests/ref/ref_metrics.py lpips), 32x32 renders
mkdir -p "$T/lp"
"$PY" -c "
import numpy as np; z = np.zeros((1, 32, 32, 3), np.float32)
np.save('$T/lp/pred.npy', z); np.save('$T/lp/gt.npy', z)"
check "LPIPS weights written by the lpips package" "$PY" "$RHD_ROOT/tests/ref/ref_metrics.py" lpips "$T/lp" alex 7
"$PY" -c "
from safetensors.numpy import load_file, save_file
w = load_file('$T/lp/weights.safetensors'); del w['lin3.model.1.weight']; save_file(w, '$T/lp/nohead.safetensors')"
R="--decoder $T/dec.safetensors --data $D --views 0-1 --grid-size 32 --warmup 2 --max-steps 96 --no-images"
run rhd-render -q $R --downscale 4 --metrics --lpips "$T/lp/weights.safetensors" "$T/tri.safetensors"
expect_rc 0 "metrics with --lpips"
printf '%s' "$out" >"$T/metrics_lp.json"
check "LPIPS per view and mean in the metrics JSON, lpips_net alex" "$PY" -c "
import json,math; j=json.load(open('$T/metrics_lp.json'))
v=[x['lpips'] for x in j['views']]
assert len(v)==2 and all(math.isfinite(x) and x>0 for x in v), v
assert abs(j['mean']['lpips']-sum(v)/2)<1e-12 and j['lpips_net']=='alex'
assert all(math.isfinite(x['psnr']) for x in j['views'])"
check "pipelines/lpips_weights.py writes weights (official heads, random backbone)" \
    "$PY" "$RHD_ROOT/pipelines/lpips_weights.py" --random-backbone -o "$T/lp/pipe.safetensors"
run rhd-render -q $R --downscale 4 --metrics --lpips "$T/lp/pipe.safetensors" "$T/tri.safetensors"
expect_rc 0 "metrics with --lpips weights from pipelines/lpips_weights.py"
expect_out '"lpips_net": "alex"' "LPIPS computed with the pipeline's file"
run rhd-render -q $R --downscale 4 --lpips "$T/lp/weights.safetensors" "$T/tri.safetensors"
expect_rc 2 "--lpips without --metrics"
expect_err "--lpips adds LPIPS to the metrics JSON: it needs --metrics" "--lpips needs --metrics, says so"
run rhd-render -q $R --downscale 4 --metrics --lpips "$T/lp/nohead.safetensors" "$T/tri.safetensors"
expect_rc 1 "LPIPS weights without a head"
expect_err "nohead.safetensors: tensor 'lin3.model.1.weight' .*is missing, expected \[1,256,1,1\]" "missing LPIPS tensor named"
run rhd-render -q $R --downscale 4 --metrics --lpips "$T/dec.safetensors" "$T/tri.safetensors"
expect_rc 1 "a decoder given as LPIPS weights"
expect_err "dec.safetensors: an rhd 'decoder' file, expected LPIPS weights" "wrong kind of LPIPS file named"
run rhd-render -q $R --downscale 8 --metrics --lpips "$T/lp/weights.safetensors" "$T/tri.safetensors"
expect_rc 2 "16x16 images with LPIPS alex"
expect_err "image is 16x16, expected at least 31x31" "LPIPS minimum size explained"

# the .npy layouts render the same pixels as the safetensors file
for f in tri5 strip; do
    run rhd-render -q --decoder "$T/dec.safetensors" --data "$D" --views 0 --downscale 8 --grid-size 32 --warmup 2 --max-steps 96 -o "$T/$f" "$T/$f.npy"
    expect_rc 0 "render from $f.npy"
    check "$f.npy gives the same frame" cmp "$T/$f/rgb_0000.png" "$T/o/rgb_0000.png"
done
run rhd-render --decoder "$T/dec.safetensors" --data "$D" --views 0 --downscale 8 --grid-size 32 --warmup 2 --max-steps 96 -o "$T/low" "$T/low.npy"
expect_rc 0 "a lower-resolution triplane renders"
check "at its own resolution: no resize without --triplane-res (rhd-fit's evaluation)" sh -c '! grep -q resizing "$1"' _ "$T/.stderr"

run rhd-render --decoder "$T/dec.safetensors" --data "$D" --views 0 --downscale 8 --grid-size 32 --warmup 2 --max-steps 96 --triplane-res 12 -o "$T/low12" "$T/low.npy"
expect_rc 0 "--triplane-res (the option name rhd-fit uses) asks for a resize"
expect_err "resizing the triplane from 8 to 12" "resize to --triplane-res announced"
"$PY" - "$T" <<'PYEOF'
import sys
from safetensors import safe_open
from safetensors.numpy import save_file
t = sys.argv[1]
with safe_open(f"{t}/dec.safetensors", "np") as f:
    d = {k: f.get_tensor(k) for k in f.keys()}; m = f.metadata()
save_file(d, f"{t}/dec_typed.safetensors", metadata={**m, "rhd.triplane_res": "8"})
d["sigma_net.0.bias"][3] = float("inf")
save_file(d, f"{t}/dec_inf.safetensors", metadata=m)
PYEOF
run rhd-render --decoder "$T/dec_typed.safetensors" --data "$D" --views 0 --downscale 8 --grid-size 32 --warmup 2 --max-steps 96 -o "$T/typed" "$T/tri.safetensors"
expect_rc 0 "a decoder with typed rhd.triplane_res 8"
check "the triplane still renders at its own 16 (the decoder's resolution is no resize request)" sh -c '! grep -q resizing "$1"' _ "$T/.stderr"
run rhd-render --decoder "$T/dec_inf.safetensors" --data "$D" --views 0 -o "$T/inf" "$T/tri.safetensors"
expect_rc 1 "a decoder holding an infinity"
expect_err "dec_inf.safetensors: tensor 'sigma_net.0.bias' holds a non-finite value" "names the file and the tensor"

# turntables and a camera JSON
run rhd-render -q --decoder "$T/dec.safetensors" --spiral --frames 3 --size 16 --grid-size 32 --warmup 2 --max-steps 96 --rgba -o "$T/sp" "$T/tri.safetensors"
expect_rc 0 "spiral, 3 frames, RGBA"
check "three RGBA spiral frames" test -f "$T/sp/rgba_0002.png"
run rhd-render -q --decoder "$T/dec.safetensors" --orbit --elevation 20 --frames 2 --size 16 --grid-size 32 --warmup 2 --max-steps 96 -o "$T/ob" "$T/tri.safetensors"
expect_rc 0 "orbit"
run rhd-render -q --decoder "$T/dec.safetensors" --camera "$T/cam.json" --downscale 8 --grid-size 32 --warmup 2 --max-steps 96 -o "$T/cj" "$T/tri.safetensors"
expect_rc 0 "camera JSON"
check "camera JSON frame equals view 1 of the dataset render" cmp "$T/cj/rgb_0000.png" "$T/o/rgb_0001.png"

# an empty render (no pixel with opacity > 0) is an error, not a white frame and exit 0
run rhd-render -q --decoder "$T/dead.safetensors" --data "$D" --views 0 --downscale 8 --grid-size 16 --warmup 1 --max-steps 16 -o "$T/dead_o" "$T/tri.safetensors"
expect_rc 1 "an empty render"
expect_err "tri.safetensors: an empty render \(no pixel of the 1 frames has opacity > 0\): the decoder .*dead.safetensors gives this triplane no density" "says so, naming the decoder"

# a size the machine cannot hold: a runtime error naming the bytes (exit 1), not an internal one;
# under a 2 GB address-space limit (not with the sanitizers, which reserve far more)
if [ "${SAN:-0}" != 1 ]; then
    out=$( (ulimit -v 2000000; exec "$RHD_BIN/rhd-render" -q --decoder "$T/dec.safetensors" --spiral --frames 1 --size 16 \
        --grid-size 8 --max-steps 8 --triplane-res 4096 -o "$T/oom" "$T/tri.safetensors") 2>"$T/.stderr") && rc=0 || rc=$?
    err=$(cat "$T/.stderr")
    expect_rc 1 "out of memory (--triplane-res 4096 under ulimit -v 2 GB)"
    expect_err "out of memory: [0-9]+ bytes \([0-9.]+ GiB\) of host memory could not be allocated" "says so, with the bytes"
fi

# mesh; an empty one (no density above the threshold) is an error naming the largest density
run rhd-render -q --decoder "$T/dec.safetensors" --no-images --mesh "$T/m0.ply" --mesh-res 16 --mesh-threshold 1e30 "$T/tri.safetensors"
expect_rc 1 "an empty mesh"
expect_err "m0.ply: .*tri.safetensors: no density above --mesh-threshold 1e\+30 in the box at --mesh-res 16 \(the largest is [0-9.e+]+\), so no surface" "says why, with the largest density"
check "no PLY written for an empty mesh" test ! -e "$T/m0.ply"
run rhd-render -q --decoder "$T/dec.safetensors" --no-images --mesh "$T/m.ply" --mesh-res 24 --mesh-threshold 20 "$T/tri.safetensors"
expect_rc 0 "mesh"
check "PLY opens in plyfile with vertices and faces" "$PY" -c "
from plyfile import PlyData; p=PlyData.read('$T/m.ply'); assert p['vertex'].count>0 and p['face'].count>0
assert set(p['vertex'].data.dtype.names)=={'x','y','z','red','green','blue'}"
done_testing
