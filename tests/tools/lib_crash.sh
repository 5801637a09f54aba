# tests/tools/lib_crash.sh: the crash-safety helpers of the batch tests (t0920, t0925), sourced
# after lib.sh. A tool's run into an output directory is killed at every file operation
# (RHD_CRASH_AFTER=N: the N-th point _exit(137)s, a point before a write leaving a torn
# <name>.tmp first; the points are listed by an uninterrupted RHD_CRASH_TRACE=1 run in REF.trace)
# and at random instants (kill -9 after RANDOM % DUR_MS ms: set RANDOM from a printed seed), then
# rerun as it was started: every output must be byte-identical to the uninterrupted run REF, no
# leftovers, and after every kill each output visible under its final name is complete.

# no file under its final name is torn: each one present equals the uninterrupted run's
visible_complete() { # dir ref
    local f bad=""
    for f in "$1"/*.safetensors "$1"/*.npy; do [ -e "$f" ] || continue; cmp -s "$f" "$2/$(basename "$f")" || bad="$bad $(basename "$f")"; done
    [ -z "$bad" ] || { echo "#   torn or different under the final name:$bad"; return 1; }
}
same_dir() { # dir ref: the same files, the same bytes, no .tmp
    local bad=""
    [ "$(cd "$1" && ls)" = "$(cd "$2" && ls)" ] || bad="files: $(cd "$1" && ls | tr '\n' ' ')"
    diff -rq "$1" "$2" >/dev/null || bad="$bad bytes"
    [ -z "$bad" ] || { echo "#   $1: $bad"; return 1; }
}
# kill_matrix NAME REF_DIR DUR_MS CMD...: CMD gets "OUT" appended as its last argument (the output dir)
kill_matrix() {
    local name=$1 ref=$2 dur=$3; shift 3
    local npoints N d r1 r2 i ms pid
    npoints=$(grep -c "crash point" "$ref.trace")
    for N in $(seq 1 "$npoints"); do
        d=$T/$name-k$N
        RHD_CRASH_AFTER=$N "$@" "$d" >/dev/null 2>&1; r1=$?
        visible_complete "$d" "$ref"; local vis=$?
        "$@" "$d" >/dev/null 2>"$d.err"; r2=$?
        if [ "$r1" = 137 ] && [ "$vis" = 0 ] && [ "$r2" = 0 ] && same_dir "$d" "$ref"; then
            _tap 0 "$name killed at point $N ($(grep "crash point $N:" "$ref.trace" | sed 's/.*crash point [0-9]*: //; s#'"$ref"'/##')), rerun: same bytes"
        else _tap 1 "$name killed at point $N: exit $r1 then $r2 (expected 137, 0), visible outputs complete: $vis"; tail -3 "$d.err" | sed 's/^/#   /'; fi
    done
    for i in 1 2 3; do
        d=$T/$name-r$i
        ms=$((RANDOM % (dur > 1 ? dur : 1)))
        "$@" "$d" >/dev/null 2>&1 &
        pid=$!
        sleep "$(awk -v m="$ms" 'BEGIN{printf "%.3f", m/1000}')"
        kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; r1=$?
        visible_complete "$d" "$ref"; vis=$?
        "$@" "$d" >/dev/null 2>"$d.err"; r2=$?
        if [ "$vis" = 0 ] && [ "$r2" = 0 ] && same_dir "$d" "$ref"; then _tap 0 "$name kill -9 after $ms ms (exit $r1), rerun: same bytes"
        else _tap 1 "$name kill -9 after $ms ms: visible outputs complete: $vis, rerun exit $r2"; tail -3 "$d.err" | sed 's/^/#   /'; fi
    done
}
ms_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%d", (b-a)*1000}'; }
