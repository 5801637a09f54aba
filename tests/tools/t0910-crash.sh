#!/usr/bin/env bash
# Crash safety of rhd-fit as a property (formats/run.md): a stage-1 run killed at every file
# operation (RHD_CRASH_AFTER=N: the N-th point _exit(137)s, a point before a write leaving a torn
# .tmp first) and at random instants (kill -9), then resumed with --resume, ends with the same
# bytes as an uninterrupted run (triplanes, IWC states, decoder, checkpoint, the report line) and
# no leftovers; --resume refuses a missing, corrupt or stale file of a visited avatar, naming it;
# stage 2 killed before or after its output is redone or skipped (--force refits) to the same bytes.
# Tiny sizes: one avatar, two rounds of 2 steps.
. "$RHD_ROOT/tests/tools/lib.sh"
MINI=$RHD_ROOT/tests/data/mini
TINY="--triplane-res 8 --triplane-channels 4 --grid-size 8 --rays 16 --max-steps 2 --dist-points 8 --train-views 0-1 --eval-views 100 --threads 1 --warmup 1"
FIT="$RHD_BIN/rhd-fit"
FILES="triplanes/avatar_100.safetensors iwc/avatar_100.safetensors decoder.safetensors checkpoint.safetensors"
printf 'avatar_100\n' >"$T/list.txt"
run rhd-schedule fit --list "$T/list.txt" --rounds 2 --steps 2 --refit-steps 0 -o "$T/plan.json"
expect_rc 0 "plan: one avatar, 2 rounds"
S1="--stage 1 --plan $T/plan.json --data $MINI $TINY"

# the uninterrupted run, its crash points listed
t0=$(date +%s.%N)
expect_rc_of() { rc=$1; expect_rc "$2" "$3"; }
RHD_CRASH_TRACE=1 "$FIT" $S1 -o "$T/full" >"$T/full.out" 2>"$T/full.err"
expect_rc_of $? 0 "stage 1 uninterrupted"
t1=$(date +%s.%N)
npoints=$(grep -c "crash point" "$T/full.err")
check "the run has crash points ($npoints)" test "$npoints" -ge 20
report=$(grep '^{"report"' "$T/full.out")

# same bytes as the uninterrupted run, nothing left over
same_run() {
    local d=$1 bad=""
    for f in $FILES; do cmp -s "$T/full/$f" "$d/$f" || bad="$bad $f"; done
    [ -z "$(find "$d" -name '*.tmp' -o -name pending)" ] || bad="$bad leftovers:$(find "$d" -name '*.tmp' -o -name pending | tr '\n' ' ')"
    grep -qF "$report" "$d.out" || bad="$bad report-line"
    [ -z "$bad" ] || { echo "#   $d differs:$bad"; return 1; }
}

# every crash point: killed there, resumed, compared
for N in $(seq 1 "$npoints"); do
    d=$T/k$N
    RHD_CRASH_AFTER=$N "$FIT" $S1 -o "$d" >/dev/null 2>"$d.err1"
    r1=$?
    what=$(grep "crash point $N:" "$T/full.err" | sed 's/.*crash point [0-9]*: //; s#'"$T/full"'#RUN#')
    "$FIT" $S1 --resume -o "$d" >"$d.out" 2>"$d.err2"
    r2=$?
    if [ "$r1" = 137 ] && [ "$r2" = 0 ] && same_run "$d"; then _tap 0 "killed at point $N ($what), resumed: same bytes"; else
        _tap 1 "killed at point $N ($what): exit $r1 then $r2, expected 137 then 0 and the same bytes"; sed 's/^/#   /' "$d.err2" | tail -3; fi
    rm -rf "$d"
done

# random instants: kill -9 while it runs, resume
seed=${RHD_CRASH_SEED:-$$}
echo "# random kill instants from seed $seed (RHD_CRASH_SEED)"
RANDOM=$seed
dur_ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%d", (b-a)*1000}')
for i in 1 2 3; do
    d=$T/r$i
    ms=$((RANDOM % (dur_ms > 1 ? dur_ms : 1)))
    "$FIT" $S1 -o "$d" >/dev/null 2>&1 &
    pid=$!
    sleep "$(awk -v m="$ms" 'BEGIN{printf "%.3f", m/1000}')"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    r1=$?
    if [ -e "$d/checkpoint.safetensors" ] || [ "$r1" != 0 ]; then
        "$FIT" $S1 --resume -o "$d" >"$d.out" 2>"$d.err2"
        r2=$?
    else r2=0; cp "$T/full.out" "$d.out"; fi
    if [ "$r2" = 0 ] && same_run "$d"; then _tap 0 "kill -9 after $ms ms (exit $r1), resumed: same bytes"; else
        _tap 1 "kill -9 after $ms ms: resume exit $r2, expected 0 and the same bytes"; sed 's/^/#   /' "$d.err2" | tail -3; fi
done

# --resume never refits a visited avatar silently: missing, corrupt, stale files are errors naming them
"$FIT" $S1 --max-entries 1 -o "$T/one" >/dev/null 2>&1
cp -r "$T/one" "$T/miss"; rm "$T/miss/triplanes/avatar_100.safetensors"
run rhd-fit $S1 --resume -o "$T/miss"
expect_rc 1 "--resume with a visited avatar's triplane missing"
expect_err "miss/triplanes/avatar_100.safetensors: missing, expected the triplane of avatar_100 written by entry 0" "names the missing triplane"
cp -r "$T/one" "$T/missi"; rm "$T/missi/iwc/avatar_100.safetensors"
run rhd-fit $S1 --resume -o "$T/missi"
expect_rc 1 "--resume with a visited avatar's IWC state missing"
expect_err "missi/iwc/avatar_100.safetensors: missing" "names the missing IWC file"
cp -r "$T/one" "$T/bad"; head -c 300 "$T/one/iwc/avatar_100.safetensors" >"$T/bad/iwc/avatar_100.safetensors"
run rhd-fit $S1 --resume -o "$T/bad"
expect_rc 1 "--resume with a truncated IWC file"
expect_err "bad/iwc/avatar_100.safetensors" "names the truncated IWC file"
cp -r "$T/one" "$T/stale"; cp "$T/full/triplanes/avatar_100.safetensors" "$T/stale/triplanes/"
run rhd-fit $S1 --resume -o "$T/stale"
expect_rc 1 "--resume with a triplane of a later entry"
expect_err "stale/triplanes/avatar_100.safetensors: written by entry 1, expected entry 0" "names the stale triplane"
run rhd-fit $S1 --resume -o "$T/nowhere/x"
expect_rc 0 "--resume of a run never committed starts it"
mkdir -p "$T/other"; echo x >"$T/other/notes.txt"
run rhd-fit $S1 --resume -o "$T/other"
expect_rc 1 "--resume of a directory that is not a run"
expect_err "no checkpoint to resume" "says there is no checkpoint"

# stage 2: killed before (a torn .tmp) or after its output, rerun
S2="--stage 2 --decoder $T/full/decoder.safetensors --data $MINI --avatar avatar_100 --steps 2 $TINY"
"$FIT" $S2 -o "$T/s2/ref.safetensors" >/dev/null 2>&1
RHD_CRASH_AFTER=1 "$FIT" $S2 -o "$T/s2/a.safetensors" >/dev/null 2>&1
r1=$?
check "stage 2 killed while writing: exit $r1, no output, a torn temp file" test "$r1" = 137 -a ! -e "$T/s2/a.safetensors" -a -e "$T/s2/a.safetensors.tmp"
run rhd-fit $S2 -o "$T/s2/a.safetensors"
expect_rc 0 "stage 2 rerun"
check "stage 2 rerun gives the same triplane" cmp "$T/s2/ref.safetensors" "$T/s2/a.safetensors"
RHD_CRASH_AFTER=2 "$FIT" $S2 -o "$T/s2/b.safetensors" >/dev/null 2>&1
run rhd-fit $S2 -o "$T/s2/b.safetensors"
expect_rc 0 "stage 2 rerun after its output was written"
expect_err "b.safetensors exists: skipped" "an existing output is skipped"
check "the skipped output is the full one" cmp "$T/s2/ref.safetensors" "$T/s2/b.safetensors"
run rhd-fit $S2 --force -o "$T/s2/b.safetensors"
expect_rc 0 "stage 2 --force refits"
check "--force refits to the same bytes" cmp "$T/s2/ref.safetensors" "$T/s2/b.safetensors"
done_testing
