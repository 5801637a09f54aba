#!/usr/bin/env bash
# tests/bench/run.sh: run every CPU benchmark ($RHD_BUILD/bench/bench_*). Each prints our time,
# the PyTorch time on the same shapes, precision (fp32) and thread count, and the ratio.
set -u
BUILD=${RHD_BUILD:-build}
export RHD_ROOT=$(pwd)
export RHD_PY=${RHD_PY:-python3}
export RHD_BENCH_THREADS=${RHD_BENCH_THREADS:-2}
export OMP_NUM_THREADS=$RHD_BENCH_THREADS OPENBLAS_NUM_THREADS=$RHD_BENCH_THREADS
export RHD_TEST_TMP=$(mktemp -d /tmp/rhd-bench.XXXXXX)
trap 'rm -rf "$RHD_TEST_TMP"' EXIT
status=0
for b in "$BUILD"/bench/bench_*; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b") (threads: $RHD_BENCH_THREADS)"
    "$b" || status=1
done
exit $status
