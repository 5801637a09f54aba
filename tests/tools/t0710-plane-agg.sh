#!/usr/bin/env bash
# tests/tools/t0710-plane-agg.sh: the plane aggregation of the decoder (rhd-fit --plane-agg,
# kernels/triplane.h), end to end on the bundled mini set at a tiny size:
#   1. stage 1 with --plane-agg offset-product writes it into the decoder and the checkpoint
#      (metadata rhd.plane_agg); a decoder without the key (the original's, converted) is the mean;
#   2. stage 2 takes the decoder's aggregation: a fit that beats the background-only PSNR; a
#      --plane-agg that contradicts the decoder (command line or --config) is an error naming the
#      file and both values;
#   3. rhd-render reads it too: its PSNR of the stage-2 triplane equals rhd-fit's within 0.05 dB,
#      and rendering with the key removed (read as the mean) gives another, much worse, image;
#   4. a bad rhd.plane_agg value is an error naming the file, the key and the values expected;
#      --plane-agg with an unknown name is a usage error.
# And a stage-1 resume with another --plane-agg is refused (the checkpoint's options).
# About 60 s of CPU time (2 threads).
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}
MINI=$RHD_ROOT/tests/data/mini
meta() { "$PY" -c "
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
print(json.loads(b[8:8 + n]).get('__metadata__', {}).get(sys.argv[2], '(absent)'))" "$1" "$2"; }
# copy a safetensors file with metadata key $3 set to $4 (or removed when $4 is empty)
set_meta() { "$PY" -c "
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n]); m = h.setdefault('__metadata__', {})
if sys.argv[4]: m[sys.argv[3]] = sys.argv[4]
else: m.pop(sys.argv[3], None)
t = json.dumps(h).encode(); t += b' ' * (-len(t) % 8)
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(t)) + t + b[8 + n:])" "$@"; }
R="--grid-size 16 --max-steps 32 --threads 2"
S1="--triplane-res 16 --triplane-channels 8 $R --rays 256 --train-views 0-23 --eval-views 100"
S2="--triplane-res 32 $R --rays 256 --train-views 0-23 --eval-views 100 --steps 150"

# --- 1. stage 1 records the aggregation -----------------------------------------------------------
run rhd-schedule fit -q --avatars avatar_101 --rounds 2 --steps 60 --refit-steps 0 -o "$T/plan.json"
expect_rc 0 "plan: two visits of avatar_101"
run rhd-fit -q --stage 1 --plan "$T/plan.json" --data "$MINI" $S1 --plane-agg offset-product --max-entries 1 -o "$T/fit"
expect_rc 0 "stage 1 with --plane-agg offset-product, the first entry"
run rhd-fit -q --stage 1 --plan "$T/plan.json" --data "$MINI" $S1 -o "$T/fit" --resume
expect_rc 1 "resuming it without --plane-agg is refused"
expect_err '--plane-agg is "offset-product" in the checkpoint, "mean" now' "the message names the option and both values"
run rhd-fit -q --stage 1 --plan "$T/plan.json" --data "$MINI" $S1 --plane-agg offset-product -o "$T/fit" --resume
expect_rc 0 "resuming it with --plane-agg offset-product finishes the plan"
DEC=$T/fit/decoder.safetensors
check "the decoder says rhd.plane_agg = offset-product" test "$(meta "$DEC" rhd.plane_agg)" = offset-product
check "the checkpoint says it too" test "$(meta "$T/fit/checkpoint.safetensors" rhd.plane_agg)" = offset-product

# --- 2. stage 2 takes it from the decoder -----------------------------------------------------------
run rhd-fit -q --stage 2 --decoder "$DEC" --data "$MINI" --avatar avatar_100 $S2 -o "$T/s2.safetensors"
expect_rc 0 "stage 2 with the offset-product decoder"
psnr=$(json "$out" psnr 2>/dev/null || echo 0)
bg=$(json "$out" psnr_background 2>/dev/null || echo 0)
echo "# stage 2: $psnr dB, background only $bg dB"
check "stage 2 PSNR $psnr beats the background-only $bg by 3 dB" awk -v p="$psnr" -v b="$bg" 'BEGIN { exit !(p > b + 3) }'
run rhd-fit -q --stage 2 --decoder "$DEC" --data "$MINI" --avatar avatar_100 $S2 --plane-agg product -o "$T/x.safetensors"
expect_rc 1 "stage 2 with a --plane-agg the decoder contradicts fails"
expect_err "a decoder fitted with --plane-agg offset-product, expected product" "the message names both"
expect_err "decoder.safetensors" "and the decoder file"
check "nothing written" test ! -e "$T/x.safetensors"
echo '{"plane-agg": "mean"}' > "$T/agg.json"
run rhd-fit -q --stage 2 --decoder "$DEC" --data "$MINI" --avatar avatar_100 $S2 --config "$T/agg.json" -o "$T/x.safetensors"
expect_rc 1 "... and so does one given in a --config file"
expect_err "a decoder fitted with --plane-agg offset-product, expected mean" "the message names both"
check "nothing written" test ! -e "$T/x.safetensors"

# --- 3. rhd-render reads it ---------------------------------------------------------------------
run rhd-render -q --decoder "$DEC" --data "$MINI/avatar_100" --views 100 $R --metrics --no-images "$T/s2.safetensors"
expect_rc 0 "rhd-render --metrics of the stage-2 triplane"
rpsnr=$(printf '%s' "$out" | "$PY" -c "import json,sys; print(json.load(sys.stdin)['mean']['psnr'])" 2>/dev/null || echo 0)
echo "# rhd-fit $psnr dB, rhd-render $rpsnr dB"
check "rhd-render $rpsnr dB = rhd-fit $psnr dB within 0.05 dB" awk -v a="$rpsnr" -v b="$psnr" 'BEGIN { d = a - b; exit !(d < 0.05 && d > -0.05) }'
set_meta "$DEC" "$T/mean.safetensors" rhd.plane_agg ""
check "a decoder without rhd.plane_agg reads as the mean" test "$(meta "$T/mean.safetensors" rhd.plane_agg)" = "(absent)"
run rhd-render -q --decoder "$T/mean.safetensors" --data "$MINI/avatar_100" --views 100 $R --metrics --no-images "$T/s2.safetensors"
expect_rc 0 "rhd-render with the key removed"
mpsnr=$(printf '%s' "$out" | "$PY" -c "import json,sys; print(json.load(sys.stdin)['mean']['psnr'])" 2>/dev/null || echo 0)
check "... renders another image (PSNR $mpsnr dB, not $rpsnr): the key is what rhd-render used" \
    awk -v a="$mpsnr" -v b="$rpsnr" 'BEGIN { exit !(a < b - 3) }'

# --- 4. bad values ---------------------------------------------------------------------
set_meta "$DEC" "$T/bad.safetensors" rhd.plane_agg sum
run rhd-render -q --decoder "$T/bad.safetensors" --data "$MINI/avatar_100" --views 100 $R --metrics --no-images "$T/s2.safetensors"
expect_rc 1 "a decoder with rhd.plane_agg 'sum' is refused"
expect_err "bad.safetensors: metadata rhd.plane_agg is 'sum', expected mean, product or offset-product" "naming file, key and values"
run rhd-fit -q --stage 1 --plan "$T/plan.json" --data "$MINI" $S1 --plane-agg max -o "$T/fit2"
expect_rc 2 "--plane-agg max is a usage error"
expect_err "plane-agg" "naming the option"
done_testing
