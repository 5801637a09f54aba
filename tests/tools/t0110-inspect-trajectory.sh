#!/usr/bin/env bash
# rhd-inspect on rhd-sample's --save-trajectory output (kind trajectory: x0 [n,3,C,R,R], the clipped
# x0 prediction after each step, and up.x0 with --upsample): the schema check passes, and --png
# draws one row of three planes per step, all projected on the principal components of the last
# row (the final x0) with its percentile ranges. Checked against an independent numpy rendering of
# the same rule (PCA by numpy.linalg.eigh), against rhd-inspect's preview of the sample itself
# (the last x0 is the sample at eta 1: the rows must be equal), the stacked picture of x0 and up.x0,
# and a trajectory of the wrong shape (exit 1 naming the tensor).
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}
mkdir -p "$T/m"
# the tiny base (R 8, 8 channels) and upsampler (8 -> 32) of t1100-sample.sh
cp "$RHD_ROOT/tests/data/sample/base.json" "$T/m/"
cp "$RHD_ROOT/tests/data/sample/upsample.json" "$T/m/"
SEED=${RHD_TEST_SEED:-0}
echo "# seed $SEED (the features and the sampling noise)"
"$PY" "$RHD_ROOT/tests/ref/ref_sample.py" make "$T/m" base 5 >/dev/null &&
  "$PY" "$RHD_ROOT/tests/ref/ref_sample.py" make "$T/m" upsample 6 >/dev/null &&
  "$PY" "$RHD_ROOT/pipelines/convert_checkpoint.py" "$T/m/base.pt" --config "$T/m/base.json" -o "$T/base.safetensors" >/dev/null &&
  "$PY" "$RHD_ROOT/pipelines/convert_checkpoint.py" "$T/m/upsample.pt" --model upsample --config "$T/m/upsample.json" -o "$T/up.safetensors" >/dev/null
check "tiny base and upsampler checkpoints (ref_sample.py, convert_checkpoint.py)" test -f "$T/up.safetensors"
"$PY" "$RHD_ROOT/tests/tools/tiny_features.py" $((SEED % 2**32)) "$T" p0
run rhd-sample --base "$T/base.safetensors" --steps 4 --seed $((SEED % 1000)) --save-trajectory -q -o "$T/s" "$T/p0.safetensors"
expect_rc 0 "rhd-sample --save-trajectory (S = 4)"
run rhd-inspect "$T/s/p0.trajectory.safetensors"
expect_rc 0 "rhd-inspect: the trajectory file"
expect_out "kind: trajectory \(schema ok\)" "its kind is known and its schema passes"
run rhd-inspect --png "$T/traj.png" "$T/s/p0.trajectory.safetensors"
expect_rc 0 "--png of the trajectory"
run rhd-inspect --png "$T/final.png" "$T/s/p0.safetensors"
expect_rc 0 "--png of the sample"

# the rule "every row is projected with the same map" checked without redoing the PCA (whose
# power iteration may settle differently from numpy's eigh where eigenvalues are close): each colour
# channel of the last row is an affine function of the x0 channels, fitted by least squares on its
# pixels off the clamp; that one map, clamped, must give every other row to within 0.02
WHAT="the preview is one row per step, each row the last row's affine colour map of that step's x0 (max error <= 0.02), the last row equal to the sample's own preview"
if msg=$("$PY" -c "
import numpy as np, png
from safetensors.numpy import load_file
def read(p):
    w, h, rows, _ = png.Reader(filename=p).asRGB8()
    return np.array([list(r) for r in rows], np.float64).reshape(h, w, 3) / 255
x = load_file('$T/s/p0.trajectory.safetensors')['x0'].astype(np.float64)
n, _, C, R, _ = x.shape
img, fin = read('$T/traj.png'), read('$T/final.png')
assert img.shape == (n * (R + 2) - 2, 3 * R + 4, 3), (img.shape, x.shape)
px = lambda t: np.c_[np.clip(t, -1e30, 1e30).transpose(0, 2, 3, 1).reshape(-1, C), np.ones(3 * R * R)]
row = lambda r: np.concatenate([img[r * (R + 2):r * (R + 2) + R, pl * (R + 2):pl * (R + 2) + R] for pl in range(3)]).reshape(-1, 3)
X, Y = px(x[-1]), row(n - 1)
worst = 0
for q in range(3):
    m = (Y[:, q] > 0.02) & (Y[:, q] < 0.98)
    assert m.sum() > 3 * (C + 1), 'too few unclamped pixels in channel %d' % q
    A = np.linalg.lstsq(X[m], Y[m, q], rcond=None)[0]
    for r in range(n):
        worst = max(worst, np.abs(np.clip(px(x[r]) @ A, 0, 1) - row(r)[:, q]).max())
for r in range(n - 1):
    assert (img[r * (R + 2) + R:(r + 1) * (R + 2)] == 1).all(), 'gap row %d not white' % r
print('# %d steps, R %d, C %d: max error of the last row\'s colour map on the other rows %.4f' % (n, R, C, worst))
assert worst <= 0.02, worst
assert (img[-R:] == fin).all(), 'the last row differs from the preview of the sample'
assert np.abs(img[:R] - img[-R:]).max() > 0.1, 'the first and the last step look the same'
" 2>&1); then printf '%s\n' "$msg"; _tap 0 "$WHAT"; else printf '%s\n' "$msg" | tail -3 | sed 's/^/#   /'; _tap 1 "$WHAT"; fi

run rhd-sample --base "$T/base.safetensors" --upsample "$T/up.safetensors" --steps 2 --up-steps 2 --save-trajectory -q -o "$T/hr" "$T/p0.safetensors"
expect_rc 0 "rhd-sample --upsample --save-trajectory"
run rhd-inspect --png "$T/hr.png" "$T/hr/p0.trajectory.safetensors"
expect_rc 0 "--png of a trajectory with x0 and up.x0"
check "x0 (R 8) and up.x0 (R 32) stacked: width 3*32+4, height (2*10-2) + 4 + (2*34-2)" "$PY" -c "
import png
w, h, _, _ = png.Reader(filename='$T/hr.png').asRGB8()
assert (w, h) == (100, 18 + 4 + 66), (w, h)
"

"$PY" -c "
from safetensors.numpy import load_file, save_file
from safetensors import safe_open
with safe_open('$T/s/p0.trajectory.safetensors', 'np') as f: meta = f.metadata()
x = load_file('$T/s/p0.trajectory.safetensors')['x0']
save_file({'x0': x[:, :2].copy()}, '$T/bad.safetensors', metadata=meta)
"
run rhd-inspect --png "$T/bad.png" "$T/bad.safetensors"
expect_rc 1 "a trajectory with 2 planes"
expect_err "x0" "the schema error names the tensor"
done_testing
