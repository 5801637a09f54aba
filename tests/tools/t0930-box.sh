#!/usr/bin/env bash
# Bring-your-own-data checks (tools/bring-your-own-data.md): rhd-fit warns, naming the avatar and
# how far out, when an avatar's views leave the scene box [-B,B]^3 (formats/dataset.h
# rhd_dataset_box_check), and --offset X,Y,Z moves the cameras. The numbers of the warning (share
# of foreground rays missing the box and by how far, cameras inside the box, how far the visual
# hull leaves it) are compared with an independent NumPy computation (tests/ref/dataset_ref.py's
# poses and PNG reading, the same 8 views and pixel grid) on the bundled avatars under random
# pose settings from the test seed.
. "$RHD_ROOT/tests/tools/lib.sh"
MINI=$RHD_ROOT/tests/data/mini
PY=${RHD_PY:-python3}
TINY="--triplane-res 8 --triplane-channels 4 --grid-size 8 --rays 16 --max-steps 2 --dist-points 8 --train-views 0-1 --eval-views 100 --threads 1 --warmup 1"
printf 'avatar_100\n' >"$T/list.txt"
run rhd-schedule fit --list "$T/list.txt" --rounds 1 --steps 1 -o "$T/plan.json"
run rhd-fit --stage 1 --plan "$T/plan.json" --data "$MINI" $TINY -o "$T/s1"
expect_rc 0 "stage 1 with the bundled data's settings"
check "no box warning for the bundled data (divisor 23, scale 0.6)" test -z "$(printf '%s' "$err" | grep 'scene box')"
S2="--stage 2 --decoder $T/s1/decoder.safetensors --data $MINI --steps 1 --collapse-opacity 0 $TINY"

# the reference: every number the warning states, computed in NumPy
ref() { # avatar divisor scale ox oy oz bound
    "$PY" - "$MINI/$1" "$2" "$3" "$4" "$5" "$6" "$7" "$RHD_ROOT/tests/ref" <<'PYEOF'
import os, sys
import numpy as np
d, div, scale, ox, oy, oz, B = sys.argv[1], *map(float, sys.argv[2:8])
sys.path.insert(0, sys.argv[8])
import dataset_ref as R
views = sorted(int(f[9:15]) for f in os.listdir(d) if f.startswith("metadata_")
               and os.path.exists(f"{d}/img_proc_fg_{f[9:15]}.png"))
views = [views[k * len(views) // min(8, len(views))] for k in range(min(8, len(views)))]
P = R.poses(d, views, div, scale, np.array([ox, oy, oz]))
fx, fy, cx, cy, W, H = R.intrinsics(d, False)
W, H = int(W), int(H)
s = max(1, W // 128)
fg = miss = inside = 0
gap = 0.0
masks = []
for P_, v in zip(P, views):
    import png
    w, h, rows, info = png.Reader(filename=f"{d}/img_proc_fg_{v:06d}.png").asRGBA8()
    a = np.array([list(r) for r in rows], dtype=np.float64).reshape(h, w, 4)[..., 3] / 255
    o, Rm = P_[:3, 3], P_[:3, :3]
    inside += bool(np.all(np.abs(o) < B))
    ys, xs = np.mgrid[s // 2:H:s, s // 2:W:s]
    sel = a[ys, xs] > 0.5
    dirs = np.stack([(xs[sel] + 0.5 - cx) / fx, (ys[sel] + 0.5 - cy) / fy, np.ones(sel.sum())], 1) @ Rm.T
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-B - o) / dirs, (B - o) / dirs
    lo = np.maximum(np.nanmax(np.minimum(t1, t2), 1), 0)
    hi = np.nanmin(np.maximum(t1, t2), 1)
    m = lo > hi
    fg += sel.sum(); miss += m.sum()
    if m.any():
        dd = dirs[m]
        t = np.maximum(-(dd @ o) / (dd * dd).sum(1), 0)
        p = o + t[:, None] * dd
        gap = max(gap, np.sqrt((np.maximum(np.abs(p) - B, 0) ** 2).sum(1)).max())
    masks.append((P_, a[s // 2::s, s // 2::s][:H // s, :W // s] > 0.5))
g = B * (3 * np.arange(33) / 32 - 1.5)
X = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
ex = np.sqrt((np.maximum(np.abs(X) - B, 0) ** 2).sum(1))
keep = ex > 0
for P_, mk in masks:
    c = (X - P_[:3, 3]) @ P_[:3, :3]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.floor((fx * c[:, 0] / c[:, 2] + cx) / s); w_ = np.floor((fy * c[:, 1] / c[:, 2] + cy) / s)
    ok = (c[:, 2] > 1e-9) & (u >= 0) & (w_ >= 0) & (u < mk.shape[1]) & (w_ < mk.shape[0])
    hit = np.zeros(len(X), bool)
    hit[ok] = mk[w_[ok].astype(int), u[ok].astype(int)]
    keep &= hit
print(f"{100 * miss / fg:.1f} {gap:.3g} {inside} {ex[keep].max() if keep.any() else 0:.3g}")
PYEOF
}
# the C numbers, from the warning (0 for a part it does not state)
warned() {
    local pct gap cams hull
    pct=$(printf '%s' "$err" | sed -n 's/.*: \([0-9.]*\)% of its foreground pixels.*/\1/p'); gap=$(printf '%s' "$err" | sed -n 's/.*miss the box, by up to \([0-9.e+-]*\) .*/\1/p')
    cams=$(printf '%s' "$err" | sed -n 's/.* \([0-9]*\) cameras\{0,1\} \(are\|is\) inside the box.*/\1/p'); hull=$(printf '%s' "$err" | sed -n 's/.*parts of it up to \([0-9.e+-]*\) outside.*/\1/p')
    echo "${pct:-0.0} ${gap:-0} ${cams:-0} ${hull:-0}"
}
RANDOM=${RHD_TEST_SEED:-$$}
echo "# pose settings from RHD_TEST_SEED=${RHD_TEST_SEED:-$$}"
cases="23 0.6 0 0 0 1;23 2 0 0 0 1;23 0.3 0 0 0 1;23 0.6 0.8 0 0 1;23 0.6 0 0 0 0.5"
for i in 1 2; do
    sc=$((40 + RANDOM % 100))
    cases="$cases;$((15 + RANDOM % 20)) $((sc / 100)).$((sc % 100)) 0.$((RANDOM % 9)) -0.$((RANDOM % 6)) 0.$((RANDOM % 4)) 1"
done
for k in $(seq 1 7); do
    read -r dv sc ox oy oz bd <<<"$(printf '%s' "$cases" | cut -d';' -f"$k")"
    avs=avatar_100; [ "$k" -gt 5 ] && avs="avatar_100 avatar_101" # the fixed cases on one avatar, the random ones on both
    for av in $avs; do
        run rhd-fit $S2 --avatar "$av" --translation-divisor "$dv" --pose-scale "$sc" --offset "$ox,$oy,$oz" --bound "$bd" -o "$T/o/$av.safetensors" --force
        want=$(ref "$av" "$dv" "$sc" "$ox" "$oy" "$oz" "$bd") got=$(warned)
        label="$av divisor $dv scale $sc offset $ox,$oy,$oz bound $bd"
        if [ "$rc" = 0 ] && [ "$got" = "$want" ]; then _tap 0 "$label: miss%, gap, cameras inside, hull = $got (NumPy: $want)"
        else _tap 1 "$label: exit $rc, warning says '$got', NumPy '$want'"; printf '#   %s\n' "$err" | head -3; fi
        if [ "$want" != "0.0 0 0 0" ]; then
            expect_err "warning: $av: the avatar leaves the scene box \[-$bd,$bd\]\^3 .* expected it inside: change --translation-divisor" "$label: the warning names the avatar, the box and what to change"
        fi
    done
done
run rhd-fit $S2 --avatar avatar_100 --offset 1,2 -o "$T/o/x.safetensors"
expect_rc 2 "--offset 1,2"
expect_err "--offset takes three numbers \(e.g. --offset 0,-0.1,0\), got '1,2'" "names the option and the value"
run rhd-render --decoder "$T/s1/decoder.safetensors" --data "$MINI/avatar_100" --views 0 --offset 0,0,x -o "$T/r"
expect_rc 2 "rhd-render --offset 0,0,x"
done_testing
