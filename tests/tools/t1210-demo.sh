#!/usr/bin/env bash
# tests/tools/t1210-demo.sh: the outputs of `make demo` (pipelines/demo.sh, build/demo/ or
# $RHD_DEMO_OUT) are there and sane; not its timing. The demo takes minutes, more than make test's
# budget allows, so this test does not run it: it checks a finished demo and skips when there is
# none (CI: `make demo && make test`, or `make demo && RHD_BUILD=build bash tests/tools/t1210-demo.sh`).
#   every file of the run (the base model and the upsampler); the samples upsampled ([3,8,32,32],
#   the upsampler named in their metadata); the generated avatars' contact sheets PNGs; for each sampled portrait
#   (avatar_100, avatar_101) the PSNR of the generated and of the fitted avatar finite, the fitted one
#   above FIT_MIN, the generated one above GEN_MIN, and the generated one clearly closer to its own
#   avatar than to the other (own > other + MARGIN, the other's PSNR from rhd-render of the sample
#   against the other avatar's held-out views with the demo's render options): the portrait decides
#   the avatar. Measured: MEASURED below. The training loss fell; a rerun of make is empty (make -q).
. "$RHD_ROOT/tests/tools/lib.sh"
D=${RHD_DEMO_OUT:-$RHD_ROOT/build/demo}
if [ ! -f "$D/metrics.json" ]; then
    skip "no finished demo in $D (run make demo first)"
    done_testing; exit
fi
FIT_MIN=15 GEN_MIN=16 MARGIN=3
MEASURED="2026-12-07 (OpenBLAS SkylakeX kernels): fitted 22.11 / 22.75 dB, generated (base 16 x 16, upsampled to 32) 21.30 / 21.60 dB, generated vs the other avatar 12.83 / 11.87 dB (avatar_100 / avatar_101)"
missing=""
for f in features/avatar_100.safetensors features/avatar_101.safetensors plan.json fit/stage1.jsonl fit/decoder.safetensors \
         fit/triplanes/avatar_100.safetensors fit/triplanes/avatar_101.safetensors pairs.txt base/checkpoint.safetensors \
         base/train_log.jsonl base/loss.png upsample/checkpoint.safetensors upsample/train.json report.md report.html \
         $(for a in avatar_100 avatar_101; do echo samples/$a.safetensors eval/sample/$a/metrics.json eval/sample/$a/contact_sheet.png \
           eval/fitted/$a/contact_sheet.png turntables/$a/rgb_0000.png meshes/$a.ply; done); do
    [ -s "$D/$f" ] || missing="$missing $f"
done
check "every output of the demo (missing:${missing:- none})" test -z "$missing"
check "the samples went through the upsampler: [3,8,32,32] planes whose rhd.config names it" python3 -c "
import json, struct, sys
for a in ['avatar_100', 'avatar_101']:
    b = open('$D/samples/' + a + '.safetensors', 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
    assert h['planes']['shape'] == [3, 8, 32, 32] and 'upsample' in json.loads(h['__metadata__']['rhd.config']), (a, h['planes'])"
check "the contact sheets are PNGs" bash -c "for a in avatar_100 avatar_101; do head -c 8 '$D/eval/sample/'\$a/contact_sheet.png | od -An -tx1 | grep -q '89 50 4e 47' || exit 1; done"
# each sample against the other avatar's held-out views, as the demo renders against the own ones
for a in avatar_100 avatar_101; do
    o=avatar_101; [ $a = avatar_101 ] && o=avatar_100
    # shellcheck disable=SC2046
    "$RHD_BIN/rhd-render" -q --decoder "$D/fit/decoder.safetensors" --data "$RHD_ROOT/tests/data/mini/$o" \
        $(cat "$D/.opts/render.txt") --metrics --no-images "$D/samples/$a.safetensors" > "$T/other_$a.json" 2> "$T/other_$a.err" ||
        sed 's/^/#   /' "$T/other_$a.err"
done
out=$(python3 - "$D" "$T" $FIT_MIN $GEN_MIN $MARGIN <<'EOF'
import json, math, sys
d, t = sys.argv[1], sys.argv[2]
fit_min, gen_min, margin = map(float, sys.argv[3:6])
ok, parts = True, []
for a in ["avatar_100", "avatar_101"]:
    m = json.load(open(d + "/metrics.json"))["avatars"][a]
    s, f = m["sample"]["psnr"], m["fitted"]["psnr"]
    try:
        o = json.load(open(f"{t}/other_{a}.json"))["mean"]["psnr"]
    except Exception:
        o = float("nan")
    parts.append(f"{a}: generated {s:.2f} dB, fitted {f:.2f} dB, generated vs the other avatar {o:.2f} dB")
    ok &= all(map(math.isfinite, (s, f, o))) and f > fit_min and s > gen_min and s > o + margin
log = [json.loads(l) for l in open(d + "/base/train_log.jsonl") if l.strip()]
parts.append(f"x0 MSE {log[0]['mse']:.4f} -> {log[-1]['mse']:.4f}")
ok &= log[-1]["mse"] < log[0]["mse"]
print("; ".join(parts))
sys.exit(0 if ok else 1)
EOF
) && rc=0 || rc=$?
_tap $rc "metrics: $out (finite, fitted > $FIT_MIN dB, generated > $GEN_MIN dB, own > other + $MARGIN dB, the loss fell; measured $MEASURED)"
check "make -q: the demo is up to date" bash -c "cd '$RHD_ROOT' && bash pipelines/demo.sh -q"
done_testing
