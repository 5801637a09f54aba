# tests/tools/lib_mpi_train.sh: `mpirun -np 2 rhd-train` against one process, shared by t1000 (base)
# and t1010 (upsample). Sourced after lib.sh; run in the test's temp folder.
#   mpi_train_check "LABEL" ARGS...   ARGS: rhd-train's options without -o (both runs get the same)
# Builds an MPI rhd-train with mpicc (skips without OpenMPI, and on a CUDA build), runs it as one
# process into one/ and as two ranks into two/, and checks the checkpoints are the same bytes.
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
