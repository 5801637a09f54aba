#!/usr/bin/env bash
# tests/tools/t1210-demo.sh: the outputs of `make demo` (pipelines/demo.sh, build/demo/ or
# $RHD_DEMO_OUT) are there and sane; not its timing. The demo takes minutes, more than make test's
# budget allows, so this test does not run it: it checks a finished demo and skips when there is
# none (CI: `make demo && make test`, or `make demo && RHD_BUILD=build bash tests/tools/t1210-demo.sh`).
#   every file of the run; the generated avatar's contact sheet a PNG; PSNR of the generated and of
#   the fitted avatar_100 finite, the fitted one above 15 dB (measured 21.9 dB), the generated one
#   above 10 dB (measured 13.1 dB: a dark blob where the bust is, not yet the avatar, see the README;
#   below 10 dB the check is a TAP TODO);
#   the training loss fell; a rerun of make is empty (make -q).
. "$RHD_ROOT/tests/tools/lib.sh"
D=${RHD_DEMO_OUT:-$RHD_ROOT/build/demo}
if [ ! -f "$D/metrics.json" ]; then
    skip "no finished demo in $D (run make demo first)"
    done_testing; exit
fi
missing=""
for f in features/avatar_100.safetensors features/avatar_101.safetensors plan.json fit/stage1.jsonl fit/decoder.safetensors \
         fit/triplanes/avatar_100.safetensors fit/triplanes/avatar_101.safetensors pairs.txt base/checkpoint.safetensors \
         base/train_log.jsonl base/loss.png samples/avatar_100.safetensors eval/sample/avatar_100/metrics.json \
         eval/sample/avatar_100/contact_sheet.png eval/fitted/avatar_100/contact_sheet.png turntables/avatar_100/rgb_0000.png \
         meshes/avatar_100.ply report.md report.html; do
    [ -s "$D/$f" ] || missing="$missing $f"
done
check "every output of the demo (missing:${missing:- none})" test -z "$missing"
check "the contact sheet is a PNG" bash -c "head -c 8 '$D/eval/sample/avatar_100/contact_sheet.png' | od -An -tx1 | grep -q '89 50 4e 47'"
out=$(python3 - "$D" <<'EOF'
import json, math, sys
d = sys.argv[1]
m = json.load(open(d + "/metrics.json"))["avatars"]["avatar_100"]
s, f = m["sample"]["psnr"], m["fitted"]["psnr"]
log = [json.loads(l) for l in open(d + "/base/train_log.jsonl") if l.strip()]
print(f"generated {s:.2f} dB, fitted {f:.2f} dB, eps MSE {log[0]['mse']:.3f} -> {log[-1]['mse']:.3f}")
ok = math.isfinite(s) and math.isfinite(f) and f > 15 and log[-1]["mse"] < log[0]["mse"]
sys.exit(1 if not ok else 0 if s > 10 else 3)
EOF
) && rc=0 || rc=$?
if [ "$rc" = 3 ]; then   # known: at the demo's 800 steps the model does not reproduce avatar_100 yet (README)
    n=$((n + 1)); echo "not ok $n - the generated avatar above 10 dB: $out # TODO the demo's model is under-trained (README)"
else
    _tap $rc "metrics: $out (finite, fitted > 15 dB, generated > 10 dB, the loss fell)"
fi
check "make -q: the demo is up to date" bash -c "cd '$RHD_ROOT' && bash pipelines/demo.sh -q"
done_testing
