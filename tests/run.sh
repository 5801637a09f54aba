#!/usr/bin/env bash
# tests/run.sh: run every test of the suite and summarise.
# Runs the C unit tests ($RHD_BUILD/tests/test_*), then the tool tests (tests/tools/t*.sh), each
# producing TAP. Prints each test's output, then one closing line: "N passed, N failed, N skipped"
# (and ", N todo" when a test marks a known gap `not ok ... # TODO`, which is not a failure).
# Exit status 1 if anything failed or a test program crashed.
set -u
BUILD=${RHD_BUILD:-build}
export RHD_BUILD=$BUILD
mkdir -p "$BUILD/bin"
export RHD_BIN=$(cd "$BUILD/bin" && pwd)
export RHD_ROOT=$(pwd)
export RHD_PY=${RHD_PY:-python3}
export RHD_SHARED=${RHD_SHARED:-$(cd .. && pwd)/shared}
export RHD_TEST_TMP=$(mktemp -d /tmp/rhd-tests.XXXXXX)
# fresh random inputs every run, from one printed seed: RHD_TEST_SEED=N make test replays a run
export RHD_TEST_SEED=${RHD_TEST_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "# random inputs of this run: RHD_TEST_SEED=$RHD_TEST_SEED"
export RHD_PROGRESS_INTERVAL=1000
# the tools' --device defaults to auto (a GPU when there is one); the tool tests mean the CPU
# reference unless they say --device cuda (t0650), e.g. for the bit-identical resume checks
export RHD_DEVICE=cpu
# idle OpenMP threads sleep instead of spinning: on a small, busy machine spinning costs a lot
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
trap 'rm -rf "$RHD_TEST_TMP"' EXIT
pass=0 fail=0 skip=0 todo=0 broken=0
# Tests run RHD_TEST_JOBS at a time (default: the CPU count, at most 4; each test has its own
# scratch folder); their outputs are printed whole and in the order below as each one finishes.
JOBS=${RHD_TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}
[ "$JOBS" -gt 4 ] 2>/dev/null && JOBS=4
[ "$JOBS" -ge 1 ] 2>/dev/null || JOBS=1
OUTD=$RHD_TEST_TMP/.out
mkdir -p "$OUTD"
names=() ncmd=0 running=0
start_one() { # name, command...: run it in the background, its output into $OUTD/<index>
    local i=$ncmd
    names[i]=$1; shift
    ncmd=$((ncmd + 1))
    while [ "$running" -ge "$JOBS" ]; do wait -n 2>/dev/null; running=$(jobs -rp | wc -l); flush_done; done
    ( "$@" >"$OUTD/$i.out" 2>&1; echo $? >"$OUTD/$i.rc.tmp"; mv "$OUTD/$i.rc.tmp" "$OUTD/$i.rc" ) &
    running=$(jobs -rp | wc -l)
}
next=0
flush_done() { # print the finished tests at the head of the order
    while [ "$next" -lt "$ncmd" ] && [ -f "$OUTD/$next.rc" ]; do report_one "$next"; next=$((next + 1)); done
}
report_one() { # index: wait for its result, print it, count it
    local i=$1
    while [ ! -f "$OUTD/$i.rc" ]; do wait -n 2>/dev/null || sleep 0.2; done
    local name=${names[i]} out rc
    echo "# --- $name"
    out=$(cat "$OUTD/$i.out"); rc=$(cat "$OUTD/$i.rc")
    printf '%s\n' "$out"
    local p f s d
    p=$(printf '%s\n' "$out" | grep -cE '^ok [0-9]+' || true)
    s=$(printf '%s\n' "$out" | grep -cE '^ok [0-9]+.*# SKIP' || true)
    f=$(printf '%s\n' "$out" | grep -E '^not ok [0-9]+' | grep -cvE '# TODO' || true)
    # a failing TODO test (TAP: a known gap, named in the test) is counted apart, not as a failure
    d=$(printf '%s\n' "$out" | grep -E '^not ok [0-9]+' | grep -cE '# TODO' || true)
    pass=$((pass + p - s)); skip=$((skip + s)); fail=$((fail + f)); todo=$((todo + d))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "not ok - $name exited with status $rc without a failing test (crash?)"
        fail=$((fail + 1)); broken=1
    fi
}
t0=$(date +%s)
echo "# $JOBS tests at a time (RHD_TEST_JOBS)"
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    start_one "$(basename "$t")" "$t"
done
# RHD_TOOL_TESTS: which tool tests (a glob under tests/tools/; default all; test-emu: the CUDA ones)
for t in tests/tools/${RHD_TOOL_TESTS:-t[0-9]*.sh}; do
    [ -f "$t" ] || continue
    start_one "$(basename "$t")" bash "$t"
done
# a brief fuzzing pass of every libFuzzer target (make fuzz runs them longer)
if ls "${FUZZ_BUILD:-build-fuzz}"/fuzz_* >/dev/null 2>&1; then
    start_one "fuzz (${RHD_FUZZ_SECONDS:-5}s each)" env FUZZ_SECONDS=${RHD_FUZZ_SECONDS:-5} bash tests/fuzz/run.sh
fi
for ((; next < ncmd; next++)); do report_one "$next"; done
echo "# took $(( $(date +%s) - t0 ))s"
t=""; [ "$todo" -gt 0 ] && t=", $todo todo (known gaps, named above)"
echo "$pass passed, $fail failed, $skip skipped$t"
[ "$fail" -eq 0 ] && [ "$broken" -eq 0 ]
