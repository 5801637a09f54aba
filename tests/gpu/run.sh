#!/usr/bin/env bash
# tests/gpu/run.sh: the GPU check, run on a machine with an NVIDIA GPU (sm_90).
#  1. builds the CUDA variant (make CUDA=1) and its tests;
#  2. runs every test binary: each op/model test compares the CUDA backend with the CPU reference
#     in the same process (these are SKIPs on machines without a GPU);
#  3. measures the card's ceilings (tests/gpu/ceilings.cu);
#  4. times the ops at model sizes on the GPU (the bench programs with RHD_BENCH_DEVICE=cuda).
# Results go to $OUT (default build-cuda/gpu-results): results.md (one table), the raw logs.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-build-cuda/gpu-results}
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
jobs=$(nproc)
{ make -j"$jobs" CUDA=1 tests-build && make -j"$jobs" CUDA=1 build-cuda/bench/ceilings benches; } > "$OUT/build.log" 2>&1 || {
    echo "build failed, see $OUT/build.log"; tail -40 "$OUT/build.log"; exit 1; }
export RHD_BUILD=build-cuda RHD_ROOT=$(pwd)
export RHD_PY=${RHD_PY:-$(pwd)/build/venv/bin/python}
[ -x "$RHD_PY" ] || RHD_PY=python3
status=0
RHD_BUILD=build-cuda bash tests/run.sh > "$OUT/tests.log" 2>&1 || status=1
build-cuda/bench/ceilings > "$OUT/ceilings.txt" 2>&1 || status=1
: > "$OUT/bench.txt"
for b in build-cuda/bench/bench_*; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b") (cuda)" >> "$OUT/bench.txt"
    RHD_BENCH_DEVICE=cuda RHD_BENCH_NO_TORCH=1 "$b" >> "$OUT/bench.txt" 2>&1 || status=1
done
# the render benchmark again through the per-layer decoder path: what the fused kernel gains
if [ -x build-cuda/bench/bench_render_frames ]; then
    echo "== bench_render_frames (cuda, RHD_NO_FUSED=1: per-layer decoder)" >> "$OUT/bench.txt"
    RHD_NO_FUSED=1 RHD_BENCH_DEVICE=cuda RHD_BENCH_NO_TORCH=1 build-cuda/bench/bench_render_frames >> "$OUT/bench.txt" 2>&1 || status=1
fi
{
    echo "# GPU results ($(date -u +%Y-%m-%d), $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1))"
    echo
    echo "## Tests (CUDA backend against the CPU reference)"
    echo
    echo '```'
    grep -E '^(not ok|ok .*cuda|ok .*CUDA|[0-9]+ passed)' "$OUT/tests.log" | head -200
    echo '```'
    echo
    echo "## Ceilings of the card"
    echo
    echo "| ceiling | value | unit |"
    echo "|---|---|---|"
    sed 's/^/| /; s/$/ |/' "$OUT/ceilings.txt"
    echo
    echo "## Op timings at model sizes"
    echo
    echo '```'
    cat "$OUT/bench.txt"
    echo '```'
} > "$OUT/results.md"
cat "$OUT/results.md"
exit $status
