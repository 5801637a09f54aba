#!/usr/bin/env bash
# tests/fuzz/run.sh: run every libFuzzer target ($FUZZ_BUILD/fuzz_*) for FUZZ_SECONDS each on a
# copy of its seed corpus (tests/fuzz/corpus/<name>/). A crash leaves its input in
# $FUZZ_BUILD/crashes/<name>/ and fails the run. Prints "N passed, N failed".
set -u
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
secs=${FUZZ_SECONDS:-60}
pass=0 fail=0 k=0
for f in "$FUZZ_BUILD"/fuzz_*; do
    [ -x "$f" ] || continue
    k=$((k + 1))
    name=$(basename "$f"); name=${name#fuzz_}
    work="$FUZZ_BUILD/corpus-work/$name"; crashes="$FUZZ_BUILD/crashes/$name"
    mkdir -p "$work" "$crashes"
    [ -d "tests/fuzz/corpus/$name" ] && cp -n tests/fuzz/corpus/"$name"/* "$work"/ 2>/dev/null
    if "$f" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -artifact_prefix="$crashes/" \
            -print_final_stats=1 "$work" > "$FUZZ_BUILD/$name.log" 2>&1; then
        echo "ok $k - fuzz_$name: $(grep -m1 -oE 'stat::number_of_executed_units: *[0-9]+' "$FUZZ_BUILD/$name.log" | grep -oE '[0-9]+$') runs in ${secs}s, no crash"
        pass=$((pass + 1))
    else
        echo "not ok $k - fuzz_$name: crash, see $FUZZ_BUILD/$name.log and $crashes/"
        tail -30 "$FUZZ_BUILD/$name.log"
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
