# tests/tools/lib.sh: TAP helpers for the tool tests (jq/git style). Source it from a test:
#   . "$RHD_ROOT/tests/tools/lib.sh"
#   run rhd-inspect --json x      # runs $RHD_BIN/rhd-inspect, captures $out, $err, $rc
#   expect_rc 0 "what"            # ok/not ok on the exit status
#   expect_err "pattern" "what"   # stderr matches the extended regex
#   expect_out "pattern" "what"   # stdout matches
#   check "what" test-command...  # ok if the command succeeds
#   skip "why"                    # one SKIPped test
#   json "$out" key               # prints the value of key in the last JSON line of the text
#   done_testing                  # prints the plan, exits 1 if anything failed
set -u
: "${RHD_BIN:?run through tests/run.sh (RHD_BIN unset)}"
T=$(mktemp -d "${RHD_TEST_TMP:-/tmp}/tool.XXXXXX")
export LC_ALL=C
n=0 failed=0 out="" err="" rc=0
run() {
    local tool=$1; shift
    out=$("$RHD_BIN/$tool" "$@" 2>"$T/.stderr") && rc=0 || rc=$?
    err=$(cat "$T/.stderr")
}
_tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi; }
expect_rc() {
    local want=$1 what=$2
    if [ "$rc" = "$want" ]; then _tap 0 "$what (exit $rc)"; else
        _tap 1 "$what: exit $rc, expected $want"; printf '#   stderr: %s\n' "$err" | head -5; fi
}
expect_err() {
    if printf '%s' "$err" | grep -Eq -- "$1"; then _tap 0 "$2: $(printf '%s' "$err" | head -1)"; else
        _tap 1 "$2: stderr does not match /$1/"; printf '#   stderr: %s\n' "$err" | head -5; fi
}
expect_out() {
    if printf '%s' "$out" | grep -Eq -- "$1"; then _tap 0 "$2"; else
        _tap 1 "$2: stdout does not match /$1/"; printf '#   stdout: %s\n' "$out" | head -5; fi
}
skip() { n=$((n + 1)); echo "ok $n # SKIP $1"; }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then _tap 0 "$what"; else _tap 1 "$what"; fi; }
json() { printf '%s' "$1" | "${RHD_PY:-python3}" -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])[sys.argv[1]])" "$2"; }
done_testing() { echo "1..$n"; rm -rf "$T"; [ "$failed" -eq 0 ]; }
# needs_cuda: ends the test as one skip where this build has no CUDA backend or the machine no
# device (probed with a --device cuda call that fails either way: its message says which)
needs_cuda() {
    run rhd-render --device cuda --decoder "$T/none" --spiral --no-images "$T/none"
    if printf '%s' "$err" | grep -Eq "no CUDA backend|no CUDA device|CUDA device\(s\) present"; then
        skip "CUDA: $(printf '%s' "$err" | head -1 | sed 's/^rhd-render: error: //')"
        done_testing
        exit $?
    fi
}
