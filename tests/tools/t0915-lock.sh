#!/usr/bin/env bash
# One writer per run directory (common/fs.h rhd_lock_dir): while `rhd-fit --stage 1 -o RUN` runs,
# a second one on RUN (--resume, --force or plain) exits 1 naming the holder's pid and RUN/.lock, and
# changes nothing (checked on a run held still by flock(1)); after the holder is killed (kill -9), the stale .lock is harmless: --resume
# continues. The lock is taken before anything in RUN is looked at.
. "$RHD_ROOT/tests/tools/lib.sh"
MINI=$RHD_ROOT/tests/data/mini
TINY="--triplane-res 8 --triplane-channels 4 --grid-size 8 --rays 16 --max-steps 2 --dist-points 8 --train-views 0-1 --eval-views 100 --threads 1 --warmup 1"
printf 'avatar_100\n' >"$T/list.txt"
run rhd-schedule fit --list "$T/list.txt" --rounds 2 --steps 2000 -o "$T/plan.json"
expect_rc 0 "plan: one avatar, 2 rounds of 2000 steps (long enough to be interrupted)"
S1="--stage 1 --plan $T/plan.json --data $MINI $TINY"

"$RHD_BIN/rhd-fit" $S1 -o "$T/run" >/dev/null 2>"$T/a.err" &
pid=$!
for _ in $(seq 1 200); do [ -s "$T/run/.lock" ] && break; sleep 0.05; done
check "the running fit wrote its pid to RUN/.lock" grep -qx "$pid" "$T/run/.lock"
run rhd-fit $S1 --resume -o "$T/run"
expect_rc 1 "a second rhd-fit --resume on the same run"
expect_err "run: in use by another process \(pid $pid, .*run/\.lock\), expected one writer per directory" "names the holder's pid and the lock file"
run rhd-fit $S1 --force -o "$T/run"
expect_rc 1 "a second rhd-fit --force on the same run"
expect_err "in use by another process \(pid $pid" "--force does not start over under a running fit"
check "the first fit is still running" kill -0 "$pid"
kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
check "after kill -9 the lock file stays (stale)" test -e "$T/run/.lock"
run rhd-fit $S1 --resume --max-entries 1 -o "$T/run"
expect_rc 0 "--resume after the holder was killed: the stale lock is harmless"
check "the resumed run committed an entry" test -e "$T/run/checkpoint.safetensors"
"$RHD_BIN/rhd-fit" $S1 --resume -o "$T/run" >/dev/null 2>&1 &
p2=$!
for _ in $(seq 1 200); do grep -qx "$p2" "$T/run/.lock" 2>/dev/null && break; sleep 0.05; done
check "a new holder's pid replaces the stale one" grep -qx "$p2" "$T/run/.lock"
kill -9 "$p2" 2>/dev/null; wait "$p2" 2>/dev/null

# a refused writer changes nothing: a finished run held by another process (flock(1) here, so
# that the run itself stands still), then rhd-fit --force, --resume and plain on it
if command -v flock >/dev/null 2>&1; then
    run rhd-schedule fit --list "$T/list.txt" --rounds 1 --steps 2 -o "$T/short.json"
    run rhd-fit --stage 1 --plan "$T/short.json" --data "$MINI" $TINY -o "$T/still"
    snap() { (cd "$T/still" && find . -type f | sort | xargs -r sha256sum); }
    before=$(snap)
    flock "$T/still/.lock" sleep 60 &
    holder=$!
    for _ in $(seq 1 100); do flock -n "$T/still/.lock" true 2>/dev/null || break; sleep 0.05; done
    for how in --force --resume ""; do
        run rhd-fit --stage 1 --plan "$T/short.json" --data "$MINI" $TINY $how -o "$T/still"
        expect_rc 1 "rhd-fit ${how:-(plain)} on a run another process holds"
    done
    expect_err "still: in use by another process" "says the directory is in use"
    check "the refused writers changed nothing in RUN" test "$before" = "$(snap)"
    kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
else
    skip "flock(1) not found (util-linux): the unchanged-run check is not made"
fi
done_testing
