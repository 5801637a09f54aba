# tests/tools/lib_train.sh: what t1000 (base) and t1010 (upsample) share. Sourced after lib.sh; run
# in the test's temp folder.
#   train_fixture      tri/ (the two bundled fitted triplanes), feat/ (their portraits' features,
#                      rhd-encode random:1 at 64 px) and pairs.txt listing both pairs
#   resume_check N ARGS...   rhd-train ARGS into whole/, the same killed at crash point N
#                      (RHD_CRASH_AFTER) into part/, then --resume: checkpoint and log cmp-identical
#   mpi_train_check    `mpirun -np 2 rhd-train` against one process:
#   mpi_train_check "LABEL" ARGS...   ARGS: rhd-train's options without -o (both runs get the same)
# Builds an MPI rhd-train with mpicc (skips without OpenMPI, and on a CUDA build), runs it as one
# process into one/ and as two ranks into two/, and checks the checkpoints are the same bytes.
train_fixture() {
    mkdir -p tri && cp "$RHD_ROOT"/tests/data/train/avatar_10[01].npy tri/
    run rhd-encode -q --weights random:1 --data "$RHD_ROOT/tests/data/mini" --out-dir feat --size 64 --batch 2 --threads 1
    expect_rc 0 "rhd-encode: features of the two portraits (64 px, random weights)"
    printf 'tri/avatar_100.npy feat/avatar_100.safetensors\ntri/avatar_101.npy feat/avatar_101.safetensors\n' > pairs.txt
}

resume_check() {
    local pt=$1 rc; shift
    run rhd-train "$@" -o whole
    expect_rc 0 "resume: the uninterrupted run"
    RHD_CRASH_AFTER=$pt "$RHD_BIN/rhd-train" "$@" -o part >/dev/null 2>&1 && rc=0 || rc=$?
    [ "$rc" = 137 ] && _tap 0 "resume: killed part way (exit 137)" || _tap 1 "resume: the kill hook did not fire (exit $rc)"
    run rhd-train "$@" -o part --resume
    expect_rc 0 "resume: --resume finishes the run"
    check "resume: final checkpoint bit-identical to the uninterrupted run" cmp whole/checkpoint.safetensors part/checkpoint.safetensors
    check "resume: log identical" cmp whole/train_log.jsonl part/train_log.jsonl
}

mpi_train_check() {
    local label=$1; shift
    local SANFLAGS= ROOT_OK= BUILD_DIR r1 r2
    [ "${SAN:-0}" = 1 ] && SANFLAGS="-fsanitize=address,undefined" && export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" # OpenMPI's own
    if ! command -v mpirun >/dev/null || ! command -v mpicc >/dev/null; then
        skip "mpirun -np 2: mpirun/mpicc not found (install openmpi-bin libopenmpi-dev)"; return
    fi
    if [ "${CUDA:-0}" = 1 ]; then skip "mpirun -np 2: checked on the CPU build (this one links the CUDA libraries)"; return; fi
    BUILD_DIR=$(dirname "$RHD_BIN")
    if ! mpicc -std=c11 -O2 -fopenmp $SANFLAGS -D_GNU_SOURCE -DRHD_MPI -I"$RHD_ROOT" "$RHD_ROOT/common/dist.c" \
        "$RHD_ROOT/tools/rhd-train.c" "$BUILD_DIR/librhd.a" -lpng -lcjson -lopenblas -lm -o rhd-train-mpi 2>mpicc.err; then
        _tap 1 "mpicc could not build the MPI rhd-train"; head -5 mpicc.err | sed 's/^/#   /'; return
    fi
    [ "$(id -u)" = 0 ] && ROOT_OK="--allow-run-as-root"
    ./rhd-train-mpi "$@" -o one >one.out 2>&1 && r1=0 || r1=$?
    mpirun $ROOT_OK --oversubscribe -np 2 ./rhd-train-mpi "$@" -o two >two.out 2>&1 && r2=0 || r2=$?
    [ "$r1$r2" = 00 ] && _tap 0 "mpirun -np 2 and one process ran$label" || { _tap 1 "mpi runs: exit $r1 / $r2"; tail -5 two.out | sed 's/^/#   /'; }
    check "mpirun -np 2: checkpoint bit-identical to one process (global batch 2, micro-batch 1)" cmp one/checkpoint.safetensors two/checkpoint.safetensors
}
