#!/usr/bin/env bash
# Crash safety of the batch tools (skip-done semantics): rhd-encode --out-dir and rhd-fit --stage 2
# over --list, killed at every file operation (RHD_CRASH_AFTER=N: the N-th point _exit(137)s, a
# point before a write leaving a torn <name>.tmp first) and at random instants (kill -9), then
# rerun as they were started: every output byte-identical to an uninterrupted run, no leftovers,
# and after every kill each output visible under its final name is complete (the uninterrupted
# run's bytes), never a half-written one. Then sharding: `mpirun -np 2` of each tool (avatar i to
# rank i mod 2) gives the same files as one rank. Tiny sizes: two avatars.
. "$RHD_ROOT/tests/tools/lib.sh"
. "$RHD_ROOT/tests/tools/lib_crash.sh" # visible_complete, same_dir, kill_matrix, ms_since
MINI=$RHD_ROOT/tests/data/mini
TINY="--triplane-res 8 --triplane-channels 4 --grid-size 8 --rays 16 --max-steps 2 --dist-points 8 --train-views 0-1 --eval-views 100 --threads 1 --warmup 1"
printf 'avatar_100\navatar_101\n' >"$T/list.txt"
seed=${RHD_CRASH_SEED:-${RHD_TEST_SEED:-$$}}
echo "# random kill instants from seed $seed (RHD_CRASH_SEED)"
RANDOM=$seed

# ---- rhd-encode --out-dir over the bundled avatars (random weights at 16 px: fast)
ENC=("$RHD_BIN/rhd-encode" --weights random:1 --data "$MINI" --size 16 --batch 1 --threads 1 -q --out-dir)
t0=$(date +%s.%N)
RHD_CRASH_TRACE=1 "${ENC[@]}" "$T/enc" 2>"$T/enc.trace"
rc=$?; expect_rc 0 "rhd-encode uninterrupted ($(grep -c 'crash point' "$T/enc.trace") crash points)"
kill_matrix encode "$T/enc" "$(ms_since "$t0")" "${ENC[@]}"

# ---- rhd-fit --stage 2 over --list (a decoder from a 2-step stage 1)
run rhd-schedule fit --list "$T/list.txt" --rounds 1 --steps 2 -o "$T/plan.json"
run rhd-fit --stage 1 --plan "$T/plan.json" --data "$MINI" $TINY -o "$T/s1"
expect_rc 0 "stage 1: a decoder"
S2=("$RHD_BIN/rhd-fit" --stage 2 --decoder "$T/s1/decoder.safetensors" --data "$MINI" --list "$T/list.txt" --steps 2
    --collapse-opacity 0 $TINY -o)
t0=$(date +%s.%N)
RHD_CRASH_TRACE=1 "${S2[@]}" "$T/s2" >/dev/null 2>"$T/s2.trace"
rc=$?; expect_rc 0 "stage 2 over two avatars uninterrupted ($(grep -c 'crash point' "$T/s2.trace") crash points)"
kill_matrix stage2 "$T/s2" "$(ms_since "$t0")" "${S2[@]}"

# ---- sharding: mpirun -np 2 gives the files of one rank
if ! command -v mpirun >/dev/null 2>&1; then
    skip "mpirun not found (tests/deps.sh test installs openmpi-bin): sharded runs not checked"
else
    MPI=(mpirun -np 2 --oversubscribe)
    [ "$(id -u)" = 0 ] && MPI+=(--allow-run-as-root)
    "${MPI[@]}" "${ENC[@]}" "$T/enc-mpi" >"$T/mpi.out" 2>&1
    rc=$?; expect_rc 0 "mpirun -np 2 rhd-encode"
    check "rhd-encode on 2 ranks: the files of 1 rank" same_dir "$T/enc-mpi" "$T/enc"
    "${MPI[@]}" "${S2[@]}" "$T/s2-mpi" >"$T/mpi.out" 2>&1
    rc=$?; expect_rc 0 "mpirun -np 2 rhd-fit --stage 2 --list"
    check "rhd-fit --stage 2 on 2 ranks: the files of 1 rank" same_dir "$T/s2-mpi" "$T/s2"
    err=$(cat "$T/mpi.out"); expect_err "rank 1 of 2: 1 of 2 avatars" "each rank takes its share"
fi
run rhd-fit --stage 2 --decoder "$T/s1/decoder.safetensors" --data "$MINI" --list "$T/list.txt" --rank 2 --world 2 -o "$T/x"
expect_rc 2 "--rank 2 --world 2"
expect_err "--rank 2 is out of range for --world 2, expected 0..1" "names the range"
OMPI_COMM_WORLD_RANK=x OMPI_COMM_WORLD_SIZE=2 run rhd-encode --weights random:1 --data "$MINI" --out-dir "$T/x"
expect_rc 2 "a malformed \$OMPI_COMM_WORLD_RANK"
expect_err 'OMPI_COMM_WORLD_RANK=x: expected an integer' "names the variable"
SLURM_PROCID=1 SLURM_NTASKS=2 run rhd-fit --stage 2 --decoder "$T/s1/decoder.safetensors" --data "$MINI" --list "$T/list.txt" \
    --steps 2 --collapse-opacity 0 $TINY -o "$T/slurm"
check "srun's \$SLURM_PROCID/\$SLURM_NTASKS shard too (rank 1 of 2: avatar_101 only)" test "$(ls "$T/slurm")" = "avatar_101.safetensors"
done_testing
