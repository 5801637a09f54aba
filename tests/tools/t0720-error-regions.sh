#!/usr/bin/env bash
# pipelines/error_regions.py (the region tables of pipelines/quality.sh) on synthetic views whose
# answer is known: random sizes of the three alpha regions, a known error in each, against the
# shares and PSNRs computed here in float64; a size mismatch and a bad argument fail loudly.
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}
SEED=${RHD_TEST_SEED:-$RANDOM}
mkdir -p "$T/gt" "$T/r"
want=$("$PY" - "$T" "$SEED" <<'EOF'
import sys, numpy as np
from PIL import Image
t, seed = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(seed)
se, n = np.zeros(3), np.zeros(3)
for v in (100, 101):
    H, W = 24, 32
    a = rng.choice([0, 128, 255], size=(H, W), p=[0.6, 0.1, 0.3]).astype(np.uint8)
    rgb = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    Image.fromarray(np.dstack([rgb, a]), "RGBA").save("%s/gt/img_proc_fg_%06d.png" % (t, v))
    af = a[..., None] / 255.0
    comp = rgb / 255.0 * af + (1 - af)
    r = np.clip(np.round(comp * 255) + rng.integers(-20, 21, size=comp.shape), 0, 255).astype(np.uint8)
    Image.fromarray(r, "RGB").save("%s/r/rgb_%04d.png" % (t, v))
    e = ((comp - r / 255.0) ** 2).mean(-1)
    for k, m in enumerate([a == 0, a == 128, a == 255]):
        se[k] += e[m].sum(); n[k] += m.sum()
tot = se.sum()
print("PSNR %.2f" % (-10 * np.log10(tot / n.sum())))
for k in range(3):
    print("%.1f%%, %.1f%%, %.2f, %.2f" % (100 * n[k] / n.sum(), 100 * se[k] / tot, -10 * np.log10(se[k] / n[k]),
                                           -10 * np.log10((tot - se[k]) / n.sum())))
EOF
)
echo "# seed $SEED; expected: $(echo "$want" | tr '\n' ';')"
out=$("$PY" "$RHD_ROOT/pipelines/error_regions.py" "x:$T/gt:$T/r:100-101" 2>&1) && rc=0 || rc=$?
expect_rc 0 "error_regions.py on two synthetic views"
echo "# got: $out"
k=0
while IFS= read -r line; do
    case $k in
        0) check "pooled ${line}" grep -q "x: ${line};" <<<"$out" ;;
        1) check "background: ${line}" grep -qF "background ${line}" <<<"$out" ;;
        2) check "fractional alpha: ${line}" grep -qF "fractional ${line}" <<<"$out" ;;
        3) check "opaque: ${line}" grep -qF "opaque ${line}" <<<"$out" ;;
    esac
    k=$((k + 1))
done <<<"$want"
"$PY" -c "
from PIL import Image; Image.new('RGB', (8, 8)).save('$T/r/rgb_0100.png')"
err=$("$PY" "$RHD_ROOT/pipelines/error_regions.py" "x:$T/gt:$T/r:100" 2>&1) && rc=0 || rc=$?
expect_rc 1 "a render of another size"
expect_err "view 100: ground truth 32x24, render 8x8" "the message names the view and both sizes"
err=$("$PY" "$RHD_ROOT/pipelines/error_regions.py" "x:$T/gt" 2>&1) && rc=0 || rc=$?
expect_rc 2 "an argument without a render folder"
expect_err "expected NAME:GT_DIR:RENDER_DIR" "the message says what is expected"
done_testing
