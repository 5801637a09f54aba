#!/usr/bin/env bash
# Crash safety of rhd-sample batches (skip-done semantics, tests/tools/lib_crash.sh): two portraits
# into -o DIR with --save-trajectory (the trajectory is written before the sample, whose presence
# marks the portrait done), killed at every file operation (RHD_CRASH_AFTER=N) and at random
# instants (kill -9), then rerun as started: every output byte-identical to the uninterrupted run,
# no torn file under a final name, no leftover .tmp. Then the same for --npy outputs. The tiny base
# checkpoint of t1100-sample.sh (R 8, 8 channels), --steps 2.
. "$RHD_ROOT/tests/tools/lib.sh"
. "$RHD_ROOT/tests/tools/lib_crash.sh"
PY=${RHD_PY:-python3}
seed=${RHD_CRASH_SEED:-${RHD_TEST_SEED:-$$}}
echo "# random kill instants and features from seed $seed (RHD_CRASH_SEED)"
RANDOM=$seed
mkdir -p "$T/m"
cp "$RHD_ROOT/tests/data/sample/base.json" "$T/m/"
"$PY" "$RHD_ROOT/tests/ref/ref_sample.py" make "$T/m" base 5 >/dev/null &&
  "$PY" "$RHD_ROOT/pipelines/convert_checkpoint.py" "$T/m/base.pt" --config "$T/m/base.json" -o "$T/base.safetensors" >/dev/null
check "tiny base checkpoint (ref_sample.py, convert_checkpoint.py)" test -f "$T/base.safetensors"
"$PY" "$RHD_ROOT/tests/tools/tiny_features.py" $((seed % 2**32)) "$T" p0 p1
touch -d '1 minute ago' "$T"/p0.safetensors "$T"/p1.safetensors "$T/base.safetensors" # outputs are strictly newer

for mode in safetensors npy; do
    extra=(--save-trajectory); [ $mode = npy ] && extra=(--npy)
    SAMPLE=("$RHD_BIN/rhd-sample" --base "$T/base.safetensors" --steps 2 --seed 3 --batch 2 --threads 1 -q "${extra[@]}"
            "$T/p0.safetensors" "$T/p1.safetensors" -o)
    t0=$(date +%s.%N)
    RHD_CRASH_TRACE=1 "${SAMPLE[@]}" "$T/ref-$mode" >/dev/null 2>"$T/ref-$mode.trace"
    rc=$?; expect_rc 0 "rhd-sample ${extra[*]} uninterrupted ($(grep -c 'crash point' "$T/ref-$mode.trace") crash points)"
    check "the uninterrupted $mode run wrote two samples" test "$(ls "$T/ref-$mode" | grep -c "^p[01]\.$mode$")" = 2
    kill_matrix "sample-$mode" "$T/ref-$mode" "$(ms_since "$t0")" "${SAMPLE[@]}"
done
done_testing
