#!/usr/bin/env bash
# rhd-inspect: kinds, statistics against numpy, JSON output, previews, schema failures, exit
# codes and messages for bad input.
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}
mini="$RHD_ROOT/tests/data/mini/avatar_100"

# files written by the Python safetensors package and numpy, with known statistics
"$PY" - "$T" <<'PYEOF'
import json, sys, numpy as np, torch, safetensors.torch as st
d = sys.argv[1]
g = torch.Generator().manual_seed(7)
planes = torch.randn(3, 8, 16, 16, generator=g)
planes[0, 0, 0, 0] = float("nan"); planes[1, 0, 0, 0] = float("inf")
st.save_file({"planes": planes}, d + "/tp.safetensors", metadata={"rhd.kind": "triplane", "rhd.version": "1", "rhd.tool": "test"})
st.save_file({"planes": planes[:2].contiguous()}, d + "/bad.safetensors", metadata={"rhd.kind": "triplane", "rhd.version": "1"})
st.save_file({"a": torch.arange(12.).reshape(3, 4), "b": torch.ones(2, 5, 5).half()}, d + "/plain.safetensors")
np.save(d + "/tp.npy", planes.numpy().reshape(3, 1, 8, 16, 16))
v = planes.double().numpy().ravel(); f = v[np.isfinite(v)]
json.dump({"min": f.min(), "max": f.max(), "mean": f.mean(), "std": f.std()}, open(d + "/stats.json", "w"))
PYEOF

run rhd-inspect --allow-nonfinite --json "$T/tp.safetensors"
expect_rc 0 "inspect a triplane written by the Python safetensors package (NaN/Inf allowed)"
check "JSON: kind, shape, nan/inf counts and statistics match numpy" "$PY" -c "
import json, sys
o = json.loads(sys.argv[1]); s = json.load(open(sys.argv[2])); t = o['tensors'][0]
assert o['kind'] == 'triplane' and o['valid'] and t['shape'] == [3, 8, 16, 16] and t['nan'] == 1 and t['inf'] == 1
for k in 'min', 'max', 'mean', 'std':
    assert abs(t[k] - s[k]) <= 1e-9 * max(1, abs(s[k])), (k, t[k], s[k])
" "$out" "$T/stats.json"
run rhd-inspect --allow-nonfinite "$T/tp.safetensors" "$T/plain.safetensors" "$T/tp.npy" "$mini/img_proc_fg_000000.png"
expect_rc 0 "text output for safetensors, npy and PNG together"
expect_out "planes +F32 +\[3,8,16,16\].*nan 1 \+inf 1 -inf 0" "text shows shape and NaN/Inf counts"
expect_out "b +F16 +\[2,5,5\] +min 1 +max 1" "F16 tensor statistics"
expect_out "png, 128x128, RGBA, 8-bit, alpha" "PNG format line"
expect_out "kind: triplane \(schema ok\)" "schema ok line"

run rhd-inspect --allow-nonfinite --png "$T/planes.png" "$T/tp.safetensors"
expect_rc 0 "triplane preview"
run rhd-inspect --json "$T/planes.png"
expect_out '"width":52,"height":16' "the preview is a 3-plane strip (3x16 + 2 gaps of 2) x 16"
run rhd-inspect --png "$T/grid.png" "$T/plain.safetensors"
expect_rc 0 "feature-grid preview"
run rhd-inspect --png "$T/img.png" "$mini/img_proc_fg_000000.png"
expect_rc 0 "image preview"

run rhd-inspect "$T/bad.safetensors"
expect_rc 1 "a file failing its schema"
expect_err "bad.safetensors: tensor 'planes' has shape \[2,8,16,16\], expected \[3,C,R,R\]" "schema message"
run rhd-inspect --kind decoder --no-stats "$T/tp.safetensors"
expect_rc 1 "--kind decoder on a triplane"
expect_err "rhd.kind is 'triplane', expected 'decoder'" "kind mismatch message"

head -c 100 "$T/tp.safetensors" > "$T/trunc.safetensors"
run rhd-inspect "$T/trunc.safetensors" "$T/tp.safetensors"
expect_rc 1 "a truncated file among good ones"
expect_err "trunc.safetensors: safetensors header length [0-9]+ exceeds the file size 100" "truncation message"
expect_out "tp.safetensors: safetensors" "the good file is still shown"
run rhd-inspect "$T/missing.safetensors"
expect_rc 1 "missing file"
expect_err "missing.safetensors: cannot open: No such file" "missing-file message"
echo "hello" > "$T/text.txt"
run rhd-inspect "$T/text.txt"
expect_rc 1 "a text file"
expect_err "not a safetensors, .npy or PNG file" "unknown-format message"
run rhd-inspect
expect_rc 2 "no FILE"
expect_err "expected at least one FILE" "usage message"
run rhd-inspect --png a.png "$T/tp.npy" "$T/tp.npy"
expect_rc 2 "--png with two files"
run rhd-inspect --threads -3 "$T/tp.npy"
expect_rc 2 "negative --threads"
expect_err "--threads takes an integer in \[0, 4096\]" "range message"
run rhd-inspect --bogus x
expect_rc 2 "unknown option"
expect_err "unknown option '--bogus'" "unknown-option message"
run rhd-inspect --help
expect_rc 0 "--help"
expect_out "usage: rhd-inspect" "--help prints the usage on stdout"
printf '{"json": true, "no-stats": true}' > "$T/cfg.json"
run rhd-inspect --config "$T/cfg.json" "$T/tp.safetensors"
expect_out '^\{"file":.*"tensors":\[\{"name":"planes","dtype":"F32","shape":\[3,8,16,16\]\}\]\}$' "--config sets --json and --no-stats"
printf '{"jsn": true}' > "$T/cfg2.json"
run rhd-inspect --config "$T/cfg2.json" "$T/tp.safetensors"
expect_rc 2 "unknown config key"
expect_err "unknown key 'jsn'" "config key message"
ls "$T"/*.tmp >/dev/null 2>&1 && leftover=1 || leftover=0
check "no temp files left behind" test "$leftover" = 0
done_testing
