#!/usr/bin/env bash
# rhd-render --list FILE -o OUTROOT (batch mode, tools/rhd-render.md): the two fitted avatars of
# tests/data/train, each from its own tests/data/mini cameras (DATA_DIR), rendered into OUTROOT/NAME/
# with frames, depth, contact sheet, mesh and metrics.json the same bytes as a single
# `rhd-render -o OUTROOT/NAME` per avatar (its --metrics stdout = metrics.json); one JSON line per
# item; done items skipped on rerun, redone with --force or when the triplane is newer; killed at
# each crash point (RHD_CRASH_AFTER=N: before and after each done.json) and at random instants, every
# item marked done is complete and a rerun gives the uninterrupted run's bytes; a bad list
# line is a usage error naming FILE:LINE; a missing, a corrupt and an empty (all-zero) triplane fail
# their items, named, while the others render, exit 1; --rank/--world, $SLURM_* and
# `mpirun -np 2` give the files of one rank. Then `mpirun -np 2 rhd-sample` (it shards the same way)
# and $SLURM_* give the samples of one rank. Small renders: 2 views at 1/4 size, grid 32, 64 steps, 1 thread.
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}
FIX=$RHD_ROOT/tests/data/train MINI=$RHD_ROOT/tests/data/mini
export OPENBLAS_NUM_THREADS=1
cd "$T"
cp "$FIX"/avatar_10[01].npy .
touch -d '1 minute ago' avatar_10[01].npy # done.json is strictly newer
R=(--decoder "$FIX/decoder.safetensors" --views 0-1 --downscale 4 --grid-size 32 --max-steps 64 --warmup 2 --threads 1
   --depth --metrics --mesh-res 12)
printf '# name  triplane  data (relative paths: from this file'"'"'s folder)\navatar_100 avatar_100.npy %s/avatar_100\n\n' "$MINI" >list.txt
printf 'avatar_101\tavatar_101.npy\t%s/avatar_101   # the second\n' "$MINI" >>list.txt
# the same files, the same bytes, but the locks and the done markers (their lines hold the seconds)
same_items() { # a b
    local x y; x=$(cd "$1" && find . -type f ! -name .lock ! -name done.json | sort); y=$(cd "$2" && find . -type f ! -name .lock ! -name done.json | sort)
    [ -n "$x" ] && [ "$x" = "$y" ] || { echo "#   files: $(echo $x) / $(echo $y)"; return 1; }
    for f in $x; do cmp -s "$1/$f" "$2/$f" || { echo "#   $f differs"; return 1; }; done
}

# ---- the batch against one run per avatar --------------------------------------------------------
t0=$(date +%s%N)
RHD_CRASH_TRACE=1 run rhd-render "${R[@]}" --contact-sheet sheet.png --mesh mesh.ply --list list.txt -o b
ms=$((($(date +%s%N) - t0) / 1000000)) npoints=$(printf '%s\n' "$err" | grep -c 'crash point')
expect_rc 0 "--list: two items, each with its DATA_DIR ($npoints crash points, $ms ms)"
printf '%s\n' "$out" >b.jsonl
for a in avatar_100 avatar_101; do
    mkdir -p one/$a
    "$RHD_BIN/rhd-render" "${R[@]}" --data "$MINI/$a" --contact-sheet one/$a/sheet.png --mesh one/$a/mesh.ply -o one/$a $a.npy \
        >one/$a/metrics.json 2>one.err || echo "# single run of $a failed: $(head -3 one.err)"
done
check "OUTROOT/NAME/: rgb, depth, sheet, mesh, metrics.json the bytes of a single run -o OUTROOT/NAME (its stdout)" same_items b one
check "done.json and the stdout: one line per item (name, status ok, seconds, output, frames, mean = metrics.json's)" "$PY" -c "
import json
ls = [json.loads(l) for l in open('b.jsonl')]
assert [l['name'] for l in ls] == ['avatar_100', 'avatar_101'], ls
for l in ls:
    m = json.load(open(f'b/{l[\"name\"]}/metrics.json'))
    assert l['status'] == 'ok' and l['seconds'] > 0 and l['output'] == 'b/' + l['name'] and l['frames'] == 2, l
    assert l['mean'] == m['mean'] and l['count'] == m['count'] == 2, (l, m['mean'])
    assert json.loads(open(l['output'] + '/done.json').read()) == l
    print('#', l['name'], 'PSNR %.3f SSIM %.4f' % (l['mean']['psnr'], l['mean']['ssim']), '%.2f s' % l['seconds'])
"

# ---- skip on rerun, --force, a newer triplane ----------------------------------------------------
stamp() { stat -c %Y.%y "$@" | tr '\n' ' '; }
before=$(stamp b/*/rgb_0000.png b/*/done.json)
run rhd-render "${R[@]}" --contact-sheet sheet.png --mesh mesh.ply --list list.txt -o b
expect_rc 0 "rerun"
check "rerun: both items done, skipped (status skipped), nothing rewritten" test "$(printf '%s' "$out" | grep -c '"status":"skipped"'):$(stamp b/*/rgb_0000.png b/*/done.json)" = "2:$before"
touch avatar_101.npy
run rhd-render "${R[@]}" --contact-sheet sheet.png --mesh mesh.ply --list list.txt -o b
check "a triplane newer than its done.json is rendered again, the other skipped" test "$(printf '%s' "$out" | grep -o '"name":"[a-z_0-9]*","status":"[a-z]*"' | tr '\n' ' ')" = '"name":"avatar_100","status":"skipped" "name":"avatar_101","status":"ok" '
run rhd-render "${R[@]}" --contact-sheet sheet.png --mesh mesh.ply --list list.txt -o b --force
check "--force: both rendered again (status ok)" test "$(printf '%s' "$out" | grep -c '"status":"ok"')" = 2
check "--force: the same bytes" same_items b one

# ---- killed at every crash point and at random instants, then rerun: the uninterrupted run's bytes ---
seed=${RHD_CRASH_SEED:-${RHD_TEST_SEED:-$$}}
echo "# random kill instants from seed $seed (RHD_CRASH_SEED)"
RANDOM=$seed
K=("$RHD_BIN/rhd-render" "${R[@]}" -q --contact-sheet sheet.png --mesh mesh.ply --list list.txt -o)
done_complete() { # dir: every item marked done holds the uninterrupted run's files
    local d; for d in "$1"/*/; do [ ! -f "$d/done.json" ] || same_items "$d" "b/$(basename "$d")" || return 1; done
}
for i in $(seq 1 "$npoints") r1 r2; do
    case $i in
        r*) w=$((RANDOM % (ms > 1 ? ms : 1)))
            "${K[@]}" k$i >/dev/null 2>&1 & pid=$!
            sleep "$(awk -v m="$w" 'BEGIN{printf "%.3f", m/1000}')"; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null; r1=$?
            what="kill -9 after $w ms (exit $r1)" ;;
        *) RHD_CRASH_AFTER=$i "${K[@]}" k$i >/dev/null 2>&1; r1=$?
            what="killed at crash point $i (exit $r1, expected 137)"; [ $r1 = 137 ] || r1=bad ;;
    esac
    done_complete k$i >/dev/null; vis=$?
    "${K[@]}" k$i >/dev/null 2>k.err; r2=$?
    if [ "$r1" != bad ] && [ $vis = 0 ] && [ $r2 = 0 ] && same_items k$i b; then _tap 0 "$what: every item marked done complete; rerun: the same bytes"
    else _tap 1 "$what: items marked done complete: $vis, rerun exit $r2"; tail -3 k.err | sed 's/^/#   /'; fi
done

# ---- the list's grammar: a bad line is a usage error naming FILE:LINE ------------------------------
bad() { # line want what
    printf 'avatar_100 avatar_100.npy\n%b\n' "$1" >bad.txt
    run rhd-render "${R[@]}" --data "$MINI/avatar_100" --list bad.txt -o bad
    expect_rc 2 "$3"
    expect_err "$2" "$3: the message"
}
bad 'avatar_101' "bad.txt:2: 'avatar_101' has 1 field, expected NAME TRIPLANE \[DATA_DIR\]" "a line of one field"
bad 'a b c d' "bad.txt:2: 'a b c d' has 4 fields, expected NAME TRIPLANE \[DATA_DIR\]" "a line of four fields"
bad '# ok\nx/y t.npy' "bad.txt:3: NAME 'x/y' is no folder name .*contains '/'" "a NAME with a slash"
bad 'avatar_100 avatar_101.npy' "bad.txt:2: NAME 'avatar_100' is already on line 1, expected unique names" "a repeated NAME"
check "no output for a bad list" test ! -e bad
printf '# nothing\n\n' >empty.txt
run rhd-render "${R[@]}" --data "$MINI/avatar_100" --list empty.txt -o bad
expect_rc 2 "a list of comments only"
expect_err "empty.txt: no items \(only blank lines and comments\)" "says so"
printf 'avatar_100 avatar_100.npy\n' >nodata.txt
run rhd-render "${R[@]}" --list nodata.txt -o bad
expect_rc 2 "an item without DATA_DIR and no --data (--metrics needs the ground truth)"
expect_err "nodata.txt:1: item avatar_100 has no DATA_DIR and no --data was given" "names the line"
run rhd-render --decoder "$FIX/decoder.safetensors" --threads 1 -q --no-images --mesh mesh.ply --mesh-res 12 --list nodata.txt -o meshonly
expect_rc 0 "the same list for meshes only (--no-images --mesh): no cameras needed"
check "the mesh: the bytes of the first batch's" cmp meshonly/avatar_100/mesh.ply b/avatar_100/mesh.ply
run rhd-render "${R[@]}" --list list.txt -o bad avatar_100.npy
expect_rc 2 "--list and a TRIPLANE argument"

# ---- failing items: named, the others rendered, exit 1 at the end ----------------------------------
"$PY" -c "import numpy as np; np.save('zero.npy', np.zeros((3, 1, 32, 32, 32), np.float16))"
echo 'not a triplane' >corrupt.npy
printf 'missing nope.npy\ncorrupt corrupt.npy\nzero zero.npy\navatar_101 avatar_101.npy %s/avatar_101\n' "$MINI" >fail.txt
run rhd-render "${R[@]}" --data "$MINI/avatar_100" --list fail.txt -o f
expect_rc 1 "a missing, a corrupt and an all-zero triplane among four items"
expect_err "item missing \(line 1\): .*nope.npy: cannot open" "the missing triplane named"
expect_err "item corrupt \(line 2\): .*corrupt.npy" "the corrupt triplane named"
expect_err "item zero \(line 3\): .*zero.npy: an empty render" "the empty render named"
expect_err "3 of 4 items of this rank failed: missing, corrupt, zero" "the summary names the three"
check "the good item rendered as in the first batch, the failed ones not marked done" \
    test -f f/avatar_101/done.json -a ! -e f/missing/done.json -a ! -e f/corrupt/done.json -a ! -e f/zero/done.json
check "the good item's frames: the same bytes" cmp f/avatar_101/rgb_0001.png b/avatar_101/rgb_0001.png
expect_out '"name":"zero","status":"failed","output":"f/zero","error":"' "a failed item's JSON line (status failed, error)"

# ---- sharding: --rank/--world, $SLURM_*, mpirun -np 2 ---------------------------------------------
BATCH=("$RHD_BIN/rhd-render" "${R[@]}" --contact-sheet sheet.png --mesh mesh.ply --list list.txt -o)
"${BATCH[@]}" s --rank 0 --world 2 >s0.out 2>s.err
check "--rank 0 --world 2: avatar_100 only" test "$(ls s)" = avatar_100
"${BATCH[@]}" s --rank 1 --world 2 >s1.out 2>>s.err
check "--rank 1 --world 2 then: both, the bytes of one rank" same_items s b
check "each marked done" test -f s/avatar_100/done.json -a -f s/avatar_101/done.json
SLURM_PROCID=1 SLURM_NTASKS=2 "${BATCH[@]}" slurm >/dev/null 2>&1
check "srun's \$SLURM_PROCID/\$SLURM_NTASKS: rank 1 of 2 renders avatar_101 only" test "$(ls slurm)" = avatar_101
run rhd-render "${R[@]}" --list list.txt -o x --rank 2 --world 2
expect_rc 2 "--rank 2 --world 2"
expect_err "--rank 2 is out of range for --world 2, expected 0..1" "names the range"
if ! command -v mpirun >/dev/null 2>&1; then
    skip "mpirun not found (tests/deps.sh test installs openmpi-bin): mpirun -np 2 not checked"
else
    MPI=(mpirun -np 2 --oversubscribe)
    [ "$(id -u)" = 0 ] && MPI+=(--allow-run-as-root)
    "${MPI[@]}" "${BATCH[@]}" mpi >mpi.out 2>mpi.err
    rc=$?; err=$(cat mpi.err); expect_rc 0 "mpirun -np 2 rhd-render --list"
    check "rhd-render --list on 2 ranks: the files of 1 rank" same_items mpi b
    check "each marked done" test -f mpi/avatar_100/done.json -a -f mpi/avatar_101/done.json
    expect_err "rank 1 of 2: 1 of 2 items" "each rank takes its share"
    check "one JSON line per item over the two ranks" test "$(grep -c '"status":"ok"' mpi.out)" = 2
fi

# ---- rhd-sample on 2 ranks (the tiny base of t1100-sample.sh; it shards with the same rhd_shard) ---
mkdir -p m
cp "$RHD_ROOT/tests/data/sample/base.json" m/
"$PY" "$RHD_ROOT/tests/ref/ref_sample.py" make m base 5 >/dev/null &&
    "$PY" "$RHD_ROOT/pipelines/convert_checkpoint.py" m/base.pt --config m/base.json -o base.safetensors >/dev/null
"$PY" "$RHD_ROOT/tests/tools/tiny_features.py" 11 . p0 p1 p2
SAMPLE=("$RHD_BIN/rhd-sample" --base base.safetensors --steps 2 --seed 3 --batch 1 --threads 1 -q p0.safetensors
        p1.safetensors p2.safetensors -o)
"${SAMPLE[@]}" smp1 >/dev/null 2>smp.err
rc=$?; err=$(cat smp.err); expect_rc 0 "rhd-sample: three portraits on one rank"
SLURM_PROCID=1 SLURM_NTASKS=2 "${SAMPLE[@]}" smp-slurm >/dev/null 2>&1
check "rhd-sample under srun's \$SLURM_PROCID=1 \$SLURM_NTASKS=2: p1 only" test "$(ls smp-slurm)" = p1.safetensors
if ! command -v mpirun >/dev/null 2>&1; then
    skip "mpirun not found: rhd-sample on 2 ranks not checked"
else
    "${MPI[@]}" "${SAMPLE[@]}" smp2 >/dev/null 2>smp.err
    rc=$?; err=$(cat smp.err); expect_rc 0 "mpirun -np 2 rhd-sample"
    check "rhd-sample on 2 ranks: the samples of 1 rank (same files, same bytes)" same_items smp2 smp1
fi
done_testing
