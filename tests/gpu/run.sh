#!/usr/bin/env bash
# tests/gpu/run.sh [--carry DIR] [--reuse | --dry [--no-cuda]]: the GPU check.
#
# On a bare, offline GPU machine (one command, under 9 minutes; see the README's "GPU check"):
#  1. unpacks the Debian packages of the carry folder (tests/gpu/prepare.sh made it) into a
#     private prefix, build-gpu/prefix (dpkg -x, never over /), and merges the CUDA toolkit of the
#     nvcc on PATH with the NVIDIA wheels of python3 into build-gpu/cuda (tests/gpu/lib.sh);
#  2. builds `make CUDA=1` into build-gpu/ against them (EXTRA_CPPFLAGS, EXTRA_LDFLAGS, CUDA_HOME);
#  3. runs only what needs the GPU, each part under its own `timeout`: the card's ceilings
#     (tests/gpu/ceilings.cu), every test binary that compares the CUDA backend with the CPU one,
#     the tool tests tests/tools/t0650-cuda.sh and t0655-cuda-diffusion.sh (--device cuda end to
#     end: fit, render, train, sample), the benchmarks with
#     RHD_BENCH_DEVICE=cuda (and the render one again through the per-layer decoder path), then
#     the fused attention kernels under compute-sanitizer racecheck / synccheck / memcheck (if the
#     toolkit has it);
#  4. writes $OUT/results.md (one table row per part, then the details) and the raw logs: env.txt,
#     build.log, tests.log, tools.log, ceilings.txt, bench.txt (7 files). A part that fails or
#     runs out of time is a row of the table; the others still run.
# Exit status 0 when every part passed.
#
# --dry (here and in CI, no GPU): steps 1-2 into build-gpu-dry/ (make -j$RHD_JOBS, default 2),
# every compile and link going through tests/gpu/dry-cc.sh, then tests/gpu/prove.sh proves that
# every header and library the build used came from the prefix, CUDA, the C library or the
# compiler: a package missing from the carry folder fails here, not on the GPU machine.
# --no-cuda: the dry rehearsal of the CPU build only (build-gpu-dry-cpu/; tests/gpu/check-dry.sh).
# --reuse-cuda-objects DIR (with --dry; CI: build-cuda): copy the CUDA objects of DIR that are
# newer than every file their dependency pass lists instead of compiling them again (nvcc is most
# of the rehearsal's time; the proof does not depend on who compiled the objects: dry-cc.sh).
# --reuse (not with --dry): keep build-gpu/ from an earlier run (a warm machine) and let make
# rebuild only what changed.
{ # the whole script is read before it runs: editing it meanwhile cannot change a run
set -u
cd "$(dirname "$0")/../.."
. tests/gpu/lib.sh
ROOT=$(pwd)
CARRY=$GPU_CARRY_DEFAULT DRY=0 CUDA=1 REUSE=0
while [ $# -gt 0 ]; do
    case $1 in
        --carry) CARRY=${2:?--carry needs a folder}; shift ;;
        --dry) DRY=1 ;;
        --no-cuda) CUDA=0 ;;
        --reuse) REUSE=1 ;;
        --reuse-cuda-objects) export RHD_DRY_REUSE=${2:?--reuse-cuda-objects needs a build folder}; shift ;;
        -h|--help) sed -n '2,/^{/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "tests/gpu/run.sh: error: $1: unknown option, expected --carry DIR, --reuse, --dry, --no-cuda or --reuse-cuda-objects DIR" >&2; exit 2 ;;
    esac
    shift
done
[ "$CUDA" = 1 ] || [ "$DRY" = 1 ] || { echo "tests/gpu/run.sh: error: --no-cuda: only with --dry" >&2; exit 2; }
[ "$REUSE" = 0 ] || [ "$DRY" = 0 ] || { echo "tests/gpu/run.sh: error: --reuse: not with --dry (the proof needs a fresh build)" >&2; exit 2; }
[ -d "$CARRY/debs" ] || { echo "tests/gpu/run.sh: error: $CARRY/debs: no such folder; run 'bash tests/gpu/prepare.sh' first and carry its folder" >&2; exit 2; }
CARRY=$(cd "$CARRY" && pwd)
if [ "$DRY" = 1 ]; then B=build-gpu-dry; [ "$CUDA" = 1 ] || B=build-gpu-dry-cpu; else B=build-gpu; fi
B=${RHD_GPU_BUILD:-$B}
case $B in */*|..*|[!b]*) ;; build-*) B_OK=1 ;; esac
[ "${B_OK:-0}" = 1 ] || { echo "tests/gpu/run.sh: error: RHD_GPU_BUILD=$B: expected a folder of the repository named build-*" >&2; exit 2; }
[ "$REUSE" = 1 ] || rm -rf "$B"   # a fresh build: nothing may come from an earlier one
OUT=${OUT:-$B/results}
mkdir -p "$OUT" "$B"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/{results.md,env.txt,build.log,tests.log,tools.log,ceilings.txt,bench.txt,proof.txt}
PREFIX=$ROOT/$B/prefix CUDA_DIR=$ROOT/$B/cuda
T0=$(gpu_now)
# the whole command: under 9 minutes on the GPU machine; the dry rehearsal (2 busy cores in CI)
# has no such limit, only a guard against a hang
if [ "$DRY" = 1 ]; then DEADLINE=$((T0 + ${RHD_GPU_BUDGET_S:-2400})); BUILD_S=${RHD_BUILD_BUDGET_S:-2000}
else DEADLINE=$((T0 + ${RHD_GPU_BUDGET_S:-530})); BUILD_S=${RHD_BUILD_BUDGET_S:-270}; fi
RESERVE=15                                     # seconds kept for writing the results
WORK=$(mktemp -d /tmp/rhd-check.XXXXXX)   # (no "gpu" in the name: failed lines are classified by it)
trap 'rm -rf "$WORK"' EXIT
ROWS=$WORK/rows
: > "$ROWS"
status=0 LAST=

# part NAME BUDGET LOG [GROUP_END] -- CMD...: run CMD under timeout, appending its output to
# $OUT/LOG; one row of the results table: name, result, seconds, budget, TAP counts, log.
# PART_OPTIONAL=1 (set by the caller): no time left is a SKIP row that does not fail the check.
# Exit status 9 is compute-sanitizer's finding: a FAIL whatever the TAP lines say.
part() {
    local name=$1 budget=$2 log=$3 gend=${4:-0}; shift 4
    [ "${1:-}" = -- ] && shift
    local now b rc t1 res p f s
    now=$(gpu_now)
    b=$((DEADLINE - RESERVE - now)); [ "$budget" -lt "$b" ] && b=$budget
    [ "$gend" -gt 0 ] && [ $((gend - now)) -lt "$b" ] && b=$((gend - now))
    if [ "$b" -lt 3 ]; then
        if [ "${PART_OPTIONAL:-0}" = 1 ]; then
            printf '%s\tSKIP (out of time, optional)\t0\t%s\t\t\t\t%s\n' "$name" "$budget" "$log" >> "$ROWS"
            return 0
        fi
        printf '%s\tSKIP (out of time)\t0\t%s\t\t\t\t%s\n' "$name" "$budget" "$log" >> "$ROWS"
        status=1; return 1
    fi
    echo "== $name (budget ${b}s)" >> "$OUT/$log"
    timeout -k 5 "$b" "$@" > "$WORK/part.out" 2>&1; rc=$?
    t1=$(gpu_now)
    cat "$WORK/part.out" >> "$OUT/$log"
    p=$(grep -cE '^ok [0-9]+' "$WORK/part.out"); s=$(grep -cE '^ok [0-9]+.*# SKIP' "$WORK/part.out")
    f=$(grep -cE '^not ok [0-9]+' "$WORK/part.out")
    p=$((p - s))
    # a failed check is a CUDA one when its line names cuda/gpu; the others compare the CPU with
    # the reference scripts run by this machine's python3 (not the test venv): reported, but they
    # do not fail the GPU check (make test covers them)
    fc=$(grep -E '^not ok [0-9]+' "$WORK/part.out" | grep -ciE 'cuda|gpu')
    case $rc in
        0) res=ok ;;
        124|137) res="TIMEOUT (${b}s)" ;;
        *) res="FAIL (exit $rc)" ;;
    esac
    if [ "$f" -gt 0 ] && [ "$rc" != 124 ] && [ "$rc" != 137 ] && [ "$rc" != 9 ]; then
        if [ "$fc" -gt 0 ]; then res="FAIL ($fc CUDA not ok)"; else res="ok on CUDA ($f reference not ok)"; fi
    fi
    grep -qiE "skip: device .* does not open|no CUDA device|no CUDA-capable device" "$WORK/part.out" && [ "$p" -eq 0 ] && res="$res, no device"
    grep -E '^not ok [0-9]+' "$WORK/part.out" | grep -iE 'cuda|gpu' | sed "s|^|$name: |" >> "$WORK/failures"
    grep -E '^not ok [0-9]+' "$WORK/part.out" | grep -viE 'cuda|gpu' | sed "s|^|$name: |" >> "$WORK/reffailures"
    [ $((p + f + s)) -eq 0 ] && p= f= s=
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$res" $((t1 - now)) "$b" "$p" "$f" "$s" "$log" >> "$ROWS"
    case $res in ok|"ok on CUDA"*|"SKIP (out of time, optional)") ;; *) status=1 ;; esac
    LAST=$res
    return 0
}

# ---- 1. the prefix and CUDA
{
    echo "# GPU check environment ($(date -u +%Y-%m-%dT%H:%M:%SZ), $([ "$DRY" = 1 ] && echo dry rehearsal || echo GPU run))"
    echo "host: $(uname -srm); cores: $(nproc)"
    echo "gcc: $(gcc --version 2>&1 | head -1)"
    echo "nvcc: $(nvcc --version 2>&1 | tail -2 | head -1)"
    echo "python3: $(command -v python3) $(python3 -c 'import torch, numpy; print("torch", torch.__version__, "numpy", numpy.__version__)' 2>&1 | tail -1)"
    echo; echo "## nvidia-smi"; nvidia-smi 2>&1 | head -20
    echo; echo "## carried packages ($CARRY/MANIFEST)"; cat "$CARRY/MANIFEST" 2>&1
} > "$OUT/env.txt"
unpack() {
    local n
    n=$(gpu_unpack "$CARRY" "$PREFIX") || return 1
    echo "unpacked $n packages into $PREFIX"
    gpu_cuda_home "$CUDA_DIR" "$CARRY" || return 1
    echo "CUDA_HOME=$CUDA_DIR merged from:"; sed 's/^/  /' "$CUDA_DIR/sources"
    local h
    for h in include/cuda_runtime.h include/cublas_v2.h include/cudnn.h lib64/libcudart.so lib64/libcublas.so lib64/libcudnn.so; do
        echo "  $h -> $(readlink -f "$CUDA_DIR/$h")"
    done
}
export CARRY PREFIX CUDA_DIR GPU_ARCH_TRIPLET
export -f unpack gpu_unpack gpu_cuda_home gpu_site_dirs
part "unpack the prefix, find CUDA" 60 env.txt 0 -- bash -c unpack
[ -f "$CUDA_DIR/nvcc-bin" ] && export PATH="$(cat "$CUDA_DIR/nvcc-bin"):$PATH"

# ---- 2. the build
CPPX=$(gpu_cppflags "$PREFIX") LDX=$(gpu_ldflags "$PREFIX")
# nvcc searches only its own toolkit's include/, while cudnn.h may be in a wheel: name the merged
# CUDA_HOME for nvcc too (the Makefile passes CUDA_HOME/include to cc only)
[ "$CUDA" = 1 ] && CPPX="$CPPX-I$CUDA_DIR/include"
MK=(make -k CUDA="$CUDA" BUILD="$B" DEPS_OK="$B/.deps-skip" CUDA_HOME="$CUDA_DIR"
    EXTRA_CPPFLAGS="$CPPX" EXTRA_LDFLAGS="$LDX")
if [ "$DRY" = 1 ]; then
    export RHD_DRY_LOG=$ROOT/$B/dry-log RHD_DRY_BUILD=$B
    rm -rf "$RHD_DRY_LOG"
    W="bash $ROOT/tests/gpu/dry-cc.sh"
    MK+=(-j"${RHD_JOBS:-2}" CC="$W ${CC:-cc}" CXX="$W ${CXX:-g++}" NVCC="$W nvcc")
else
    MK+=(-j"$(nproc)")
fi
TARGETS=(all)
[ "$CUDA" = 1 ] && TARGETS=(tests-build benches "$B/bench/ceilings")
touch "$B/.deps-skip"
{ echo "EXTRA_CPPFLAGS=$CPPX"; echo "EXTRA_LDFLAGS=$LDX"; } >> "$OUT/env.txt"
part "build (make CUDA=$CUDA ${TARGETS[*]})" "$BUILD_S" build.log 0 -- "${MK[@]}" "${TARGETS[@]}"
if [ -x "$B/bin/rhd-fit" ]; then
    { echo; echo "## ldd $B/bin/rhd-fit"; ldd "$B/bin/rhd-fit" 2>&1; } >> "$OUT/env.txt"
fi

if [ "$DRY" = 1 ]; then
    # ---- the proof
    if [ "$LAST" = ok ]; then
        part "proof: headers and libraries from the prefix" 120 proof.txt 0 -- bash tests/gpu/prove.sh "$PREFIX" "$CUDA_DIR" "$RHD_DRY_LOG" "$B"
    else
        printf 'proof: headers and libraries from the prefix\tSKIP (the build failed: nothing to prove)\t0\t120\t\t\t\tproof.txt\n' >> "$ROWS"
        echo "the build failed: nothing to prove (see build.log)" > "$OUT/proof.txt"
    fi
else
    # ---- 3. what needs the GPU
    export RHD_BUILD=$B RHD_ROOT=$ROOT RHD_BIN=$ROOT/$B/bin RHD_DEVICE=cpu RHD_PROGRESS_INTERVAL=1000
    export RHD_SHARED=${RHD_SHARED:-$(cd .. && pwd)/shared} OMP_WAIT_POLICY=passive
    export RHD_TEST_TMP=$WORK/tmp; mkdir -p "$RHD_TEST_TMP"
    RHD_PY=${RHD_PY:-$ROOT/build/venv/bin/python}; [ -x "$RHD_PY" ] || RHD_PY=python3
    export RHD_PY
    : > "$OUT/ceilings.txt"
    part ceilings 40 ceilings.txt 0 -- "$B/bench/ceilings"
    gend=$(($(gpu_now) + ${RHD_TESTS_BUDGET_S:-170}))
    for t in "$B"/tests/test_*; do
        [ -x "$t" ] || continue
        n=${t##*/}
        src=$(ls tests/*/"$n".c tests/*/"$n".cpp 2>/dev/null | head -1)
        grep -qE 'th_open_backends|rhd_cuda_available|"cuda"' "$src" 2>/dev/null || continue
        part "$n" 60 tests.log "$gend" -- "$t"
    done
    part t0650-cuda.sh 100 tools.log 0 -- bash tests/tools/t0650-cuda.sh
    part t0655-cuda-diffusion.sh 60 tools.log 0 -- bash tests/tools/t0655-cuda-diffusion.sh
    export RHD_BENCH_DEVICE=cuda RHD_BENCH_NO_TORCH=1
    gend=$(($(gpu_now) + ${RHD_BENCH_BUDGET_S:-200}))
    for b in "$B"/bench/bench_*; do
        [ -x "$b" ] || continue
        to=60; [ "${b##*/}" = bench_unet ] && to=150   # the official config at batch 3: 2 passes x 3 precisions
        part "${b##*/} (cuda)" "$to" bench.txt "$gend" -- "$b"
    done
    [ -x "$B/bench/bench_render_frames" ] &&
        part "bench_render_frames (cuda, RHD_NO_FUSED=1: per-layer decoder)" 60 bench.txt "$gend" -- env RHD_NO_FUSED=1 "$B/bench/bench_render_frames"
    # the hand-written shared-memory kernels under compute-sanitizer, where the toolkit has it: the
    # fused attention's small cases (test_attention_emu runs them on the device too)
    san=$(command -v compute-sanitizer || ls "$CUDA_DIR"/bin/compute-sanitizer "$(dirname "$(command -v nvcc)")"/compute-sanitizer 2>/dev/null | head -1)
    for tool in racecheck synccheck memcheck; do
        if [ -z "$san" ] || [ ! -x "$B/tests/test_attention_emu" ]; then
            why="no compute-sanitizer"; [ -n "$san" ] && why="no $B/tests/test_attention_emu"
            printf '%s\tSKIP (%s)\t0\t45\t\t\t\t%s\n' "compute-sanitizer --tool $tool" "$why" tests.log >> "$ROWS"
            continue
        fi
        PART_OPTIONAL=1 part "compute-sanitizer --tool $tool: test_attention_emu" 45 tests.log 0 -- "$san" --tool "$tool" --error-exitcode 9 "$B/tests/test_attention_emu"
    done
fi

# ---- 4. results.md
gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
{
    echo "# GPU check$([ "$DRY" = 1 ] && echo ' (dry rehearsal, no GPU)'): $(date -u +%Y-%m-%d), ${gpu:-no GPU}, $(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/nvcc \1/p'), $(($(gpu_now) - T0)) s"
    echo
    echo "Result: $([ "$status" = 0 ] && echo 'every part passed' || echo 'FAILED: see the rows not marked ok')."
    echo
    echo "| part | result | s | budget s | passed | failed | skipped | log |"
    echo "|---|---|---:|---:|---:|---:|---:|---|"
    awk -F '\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8 }' "$ROWS"
    if [ -s "$WORK/failures" ]; then
        echo; echo "## Failed checks"; echo; echo '```'; head -100 "$WORK/failures"; echo '```'
    fi
    if [ -s "$WORK/reffailures" ]; then
        echo; echo "## Failed reference checks (CPU against this machine's python3, not the test venv; not counted)"
        echo; echo '```'; head -40 "$WORK/reffailures"; echo '```'
    fi
    if [ "$DRY" = 1 ]; then
        [ -s "$RHD_DRY_LOG/reused" ] && { echo; echo "CUDA objects reused from ${RHD_DRY_REUSE:-}: $(wc -l < "$RHD_DRY_LOG/reused")"; }
        echo; echo "## Proof"; echo; echo '```'; grep -E '^(proof|prove)' "$OUT/proof.txt" 2>/dev/null | cut -c1-400 | head -60; echo '```'
    else
        echo; echo "## Ceilings of the card"; echo
        echo "| ceiling | value | unit |"; echo "|---|---|---|"
        grep ' | ' "$OUT/ceilings.txt" | sed 's/^/| /; s/$/ |/'
        echo; echo "## CUDA-vs-CPU checks"; echo; echo '```'
        grep -hE '^(not )?ok [0-9]+.*(cuda|CUDA|GPU|gpu)' "$OUT/tests.log" "$OUT/tools.log" 2>/dev/null | head -300
        echo '```'
        echo; echo "## GPU timings (RHD_BENCH_DEVICE=cuda)"; echo; echo '```'; grep -v '^== ' "$OUT/bench.txt" 2>/dev/null; echo '```'
    fi
} > "$OUT/results.md"
for f in "$OUT"/*; do   # what comes back: 16 MiB a file at most
    [ "$(stat -c %s "$f")" -gt 15000000 ] && { tail -c 15000000 "$f" > "$f.t" && mv "$f.t" "$f"; }
done
cat "$OUT/results.md"
echo "(results and logs in $OUT)"
exit $status
}
