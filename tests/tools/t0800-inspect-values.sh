#!/usr/bin/env bash
# rhd-inspect on bad values and bad paths: a 'planes' tensor of the wrong shape for --png (it once
# read past the tensor), statistics of all-Inf, all-NaN, huge-constant and NaN/Inf-sprinkled
# tensors against numpy, NaN/Inf failing the schema check unless --allow-nonfinite, a directory
# given as FILE, and a --png output that is an input or cannot be written (refused before work).
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}
seed=${RHD_SEED:-$(date +%s)}
echo "# seed $seed"

"$PY" - "$T" "$seed" <<'PYEOF'
import json, sys, numpy as np, torch, safetensors.numpy as stn
d, seed = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(seed)
np.seterr(all="ignore")
meta = {"rhd.kind": "triplane", "rhd.version": "1", "rhd.tool": "test"}
stn.save_file({"planes": rng.standard_normal((1, 8, 16, 16)).astype(np.float32)}, d + "/p1.safetensors", metadata=meta)
stn.save_file({"planes": rng.standard_normal((3, 8, 16, 12)).astype(np.float32)}, d + "/p2.safetensors")
stn.save_file({"planes": rng.standard_normal((3, 4, 8, 8)).astype(np.float32)}, d + "/ok.safetensors", metadata=meta)
x = rng.standard_normal(100000).astype(np.float32) * 3 + 1
for v, k in ((np.nan, 7), (np.inf, 5), (-np.inf, 3)):
    x[rng.choice(x.size, k, replace=False)] = v
t = {
    "allinf": np.full(1000, np.inf, np.float32),
    "allnan": np.full(10, np.nan, np.float32),
    "mixinf": np.array([np.inf, -np.inf] * 4, np.float32),
    "huge": np.full(200000, 3.0e38, np.float32),
    "huge64": np.full(1000, 1e300),
    "offset64": 1e6 + rng.standard_normal(3000) * 1e-3,
    "halfmax": np.full(70000, 65504, np.float16),
    "sprinkled": x,
}
stn.save_file(t, d + "/vals.safetensors")
tp = rng.standard_normal((3, 4, 8, 8)).astype(np.float32); tp[2, 1, 3, 4] = np.nan; tp[0, 0, 0, 5] = -np.inf
stn.save_file({"planes": tp}, d + "/nan.safetensors", metadata=meta)
ref = {}
for k, a in t.items():
    v = a.astype(np.float64).ravel(); f = v[np.isfinite(v)]
    ref[k] = {"nan": int(np.isnan(v).sum()), "posinf": int((v == np.inf).sum()), "neginf": int((v == -np.inf).sum()),
              "min": f.min() if f.size else None, "max": f.max() if f.size else None,
              "mean": f.mean() if f.size else None, "std": f.std() if f.size else None}
    if f.size and (f == f[0]).all():  # a constant: exact answers (numpy's std of 1e300s overflows)
        ref[k]["mean"], ref[k]["std"] = f[0], 0.0
json.dump(ref, open(d + "/ref.json", "w"))
PYEOF

# --- item 1: --png on a planes tensor that is not a triplane
for f in p1 p2; do
    run rhd-inspect --png "$T/$f.png" "$T/$f.safetensors"
    expect_rc 1 "--png with a planes tensor of the wrong shape ($f) fails cleanly, no crash"
    expect_err "tensor 'planes': shape \[[0-9,]+\], expected a triplane \[3,C,R,R\]" "the message gives the shape found and expected"
    check "no preview written for $f" test ! -e "$T/$f.png"
done
run rhd-inspect --png "$T/ok.png" "$T/ok.safetensors"
expect_rc 0 "a [3,4,8,8] triplane still previews"

# --- item 4: statistics against numpy (double precision, finite values; counts of NaN, +Inf, -Inf)
run rhd-inspect --json "$T/vals.safetensors"
expect_rc 0 "inspect the value tensors"
for k in allinf allnan mixinf huge huge64 offset64 halfmax sprinkled; do
    check "statistics of '$k' match numpy" "$PY" -c "
import json, sys
o = json.loads(sys.argv[1]); r = json.load(open(sys.argv[2]))[sys.argv[3]]
t = [t for t in o['tensors'] if t['name'] == sys.argv[3]][0]
for c in 'nan', 'posinf', 'neginf':
    assert t[c] == r[c], (c, t[c], r[c])
assert t['inf'] == r['posinf'] + r['neginf']
for s in 'min', 'max', 'mean', 'std':
    if r[s] is None: assert t[s] is None, (s, t[s]); continue
    tol = 1e-15 * abs(r['mean']) + 1e-9 * abs(r[s]) if s == 'std' else 1e-12 * max(1, abs(r[s]))
    assert abs(t[s] - r[s]) <= tol, (s, t[s], r[s])
" "$out" "$T/ref.json" "$k"
done
run rhd-inspect "$T/vals.safetensors"
expect_out "allinf +F32 +\[1000\] +min - +max - +mean - +std - +nan 0 \+inf 1000 -inf 0" "all-Inf: no statistic, the counts"
expect_out "huge +F32 +\[200000\] +min 3e\+38 +max 3e\+38 +mean 3e\+38 +std 0 " "a huge constant has std 0"
expect_out "allnan .* nan 10 \+inf 0 -inf 0" "all-NaN counts"

# NaN/Inf in an rhd file fail its schema check unless allowed
run rhd-inspect "$T/nan.safetensors"
expect_rc 1 "a triplane with NaN and -Inf fails"
expect_err "nan.safetensors: tensor 'planes': 1 NaN, 0 \+Inf, 1 -Inf of 768 values \(first at flat index 5\), expected finite values" \
    "the message names file, tensor, counts and the first index"
expect_out "kind: triplane \(schema error: .*NaN" "the text output says the schema check failed"
run rhd-inspect --kind triplane --no-stats "$T/nan.safetensors"
expect_rc 1 "the value check also runs with --no-stats"
run rhd-inspect --allow-nonfinite --json "$T/nan.safetensors"
expect_rc 0 "--allow-nonfinite inspects it"
expect_out '"valid":true.*"nan":1,"inf":1,"posinf":0,"neginf":1' "and reports the counts"

# --- item 10: a directory as FILE
mkdir -p "$T/adir.safetensors"
run rhd-inspect "$T/adir.safetensors"
expect_rc 1 "a directory as FILE"
expect_err "adir.safetensors: is a directory, expected a file" "says it is a directory"

# --- item 5 and 6: the preview may not replace an input, and must be writable, checked before work
cp "$T/ok.safetensors" "$T/keep.safetensors"
sum=$(cksum < "$T/keep.safetensors")
run rhd-inspect --png "$T/keep.safetensors" "$T/keep.safetensors"
expect_rc 2 "--png X X is a usage error"
expect_err "--png .*keep.safetensors: the same file as the input .*keep.safetensors" "naming both"
ln -sf keep.safetensors "$T/alias.png"; mkdir -p "$T/sub"
run rhd-inspect --png "$T/sub/../alias.png" "$T/keep.safetensors"
expect_rc 2 "the same file through a symlink and a .. path"
check "the input is untouched" test "$(cksum < "$T/keep.safetensors")" = "$sum"
run rhd-inspect --png "$T/keep.safetensors/x.png" "$T/ok.safetensors"
expect_rc 1 "a preview under a regular file"
expect_err "is not a directory" "says why"
check "nothing was inspected before the failure" test -z "$out"
run rhd-inspect --png "$T/adir.safetensors" "$T/ok.safetensors"
expect_rc 1 "a directory as the preview path"
expect_err "--png .*adir.safetensors: is a directory, expected a file path" "says so"
done_testing
