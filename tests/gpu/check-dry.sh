#!/usr/bin/env bash
# tests/gpu/check-dry.sh [CARRY]: the dry rehearsal's proof must be able to fail (TAP).
# Copies the carry folder without libcjson-dev (a header package) and zlib1g (the runtime library
# libpng16 loads in turn), runs the CPU dry rehearsal on it (tests/gpu/run.sh --dry --no-cuda,
# into build-gpu-dry-neg/), and expects it to fail naming the system's cjson/cJSON.h with its
# package, and the system's libz.so.1 with zlib1g. On this machine both exist in /usr, so the build
# itself succeeds: only the proof can catch them. Then the full carry folder must pass, and the
# merge of CUDA must work on a layout like the GPU machine's (below).
set -u
cd "$(dirname "$0")/../.."
. tests/gpu/lib.sh
CARRY=${1:-$GPU_CARRY_DEFAULT}
n=0 failed=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi; }
[ -d "$CARRY/debs" ] || { echo "Bail out! $CARRY/debs: no such folder; run tests/gpu/prepare.sh first"; exit 1; }
tmp=$(mktemp -d build-gpu-neg-carry.XXXXXX)   # inside the tree: ignored by /build-*/
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
mkdir -p "$tmp/debs" && cp -r "$CARRY/cuda-include" "$CARRY/MANIFEST" "$tmp/" 2>/dev/null
for f in "$CARRY"/debs/*.deb; do
    case ${f##*/} in libcjson-dev_*|zlib1g_*) ;; *) cp "$f" "$tmp/debs/" ;; esac
done

RHD_GPU_BUILD=build-gpu-dry-neg OUT=$tmp/out bash tests/gpu/run.sh --dry --no-cuda --carry "$tmp" > "$tmp/log" 2>&1
rc=$?
proof=$(cat "$tmp/out/proof.txt" 2>/dev/null)
tap $([ "$rc" -ne 0 ]; echo $?) "the rehearsal without libcjson-dev and zlib1g fails (exit $rc)"
tap $(printf '%s' "$proof" | grep -q 'header /usr/include/cjson/cJSON.h (Debian package libcjson-dev)'; echo $?) \
    "the proof names /usr/include/cjson/cJSON.h and libcjson-dev"
tap $(printf '%s' "$proof" | grep -Eq 'library /usr/lib/x86_64-linux-gnu/libz\.so[.0-9]* \(Debian package zlib1g\), used by ldd '; echo $?) \
    "the proof names the system's libz.so.1 and zlib1g (found by ldd)"
printf '%s\n' "$proof" | grep '^prove: error' | cut -c1-300 | sed 's/^/# /' | head -8
rm -rf build-gpu-dry-neg

RHD_GPU_BUILD=build-gpu-dry-neg OUT=$tmp/out2 bash tests/gpu/run.sh --dry --no-cuda --carry "$CARRY" > "$tmp/log2" 2>&1
rc=$?
tap "$rc" "the rehearsal with the whole carry folder passes (exit $rc)"
[ "$rc" = 0 ] || sed 's/^/# /' "$tmp/out2/proof.txt" 2>/dev/null | head -8
rm -rf build-gpu-dry-neg

# CUDA as the GPU machine may lay it out: a toolkit without cuDNN, cuDNN only in a wheel that
# ships lib<x>.so.<N> alone; gpu_cuda_home must take cudnn.h and libcudnn from the wheel and add
# the lib<x>.so names the linker wants, and fail naming what is found nowhere.
f=$tmp/fake
mkdir -p "$f/tk/bin" "$f/tk/include" "$f/tk/lib64" "$f/site/nvidia/cudnn/include" "$f/site/nvidia/cudnn/lib"
printf '#!/bin/sh\nexit 0\n' > "$f/tk/bin/nvcc" && chmod +x "$f/tk/bin/nvcc"
touch "$f/tk/include/cuda_runtime.h" "$f/tk/include/cublas_v2.h" "$f/tk/lib64/libcudart.so.13" "$f/tk/lib64/libcublas.so.13"
touch "$f/site/nvidia/cudnn/include/cudnn.h" "$f/site/nvidia/cudnn/lib/libcudnn.so.9" "$f/site/nvidia/cudnn/lib/libcudnn_graph.so.9"
mkdir -p "$f/carry/cuda-include"
merge() { PATH="$f/tk/bin:$PATH" CUDA_HOME= RHD_GPU_SITE_DIRS="$f/site" bash -c '. tests/gpu/lib.sh; gpu_cuda_home "$1" "$2"' _ "$f/home" "$f/carry" 2>&1; }
msg=$(merge); rc=$?
tap "$rc" "CUDA merged from a toolkit without cuDNN and a cuDNN wheel (exit $rc${msg:+: $msg})"
tap $([ "$(readlink -f "$f/home/include/cudnn.h")" = "$(readlink -f "$f/site/nvidia/cudnn/include/cudnn.h")" ]; echo $?) \
    "cudnn.h taken from the wheel"
tap $([ "$(readlink -f "$f/home/lib64/libcudnn.so")" = "$(readlink -f "$f/site/nvidia/cudnn/lib/libcudnn.so.9")" ] &&
      [ -e "$f/home/lib64/libcudnn_graph.so.9" ] && [ -e "$f/home/lib64/libcublas.so" ]; echo $?) \
    "libcudnn.so -> the wheel's libcudnn.so.9, its sub-libraries beside it, libcublas.so added"
rm -rf "$f/site/nvidia/cudnn/include"
msg=$(merge); rc=$?
tap $([ "$rc" -ne 0 ] && printf '%s' "$msg" | grep -q 'include/cudnn.h'; echo $?) \
    "without cudnn.h anywhere the merge fails naming it: $msg"
echo '/* carried */' > "$f/carry/cuda-include/cudnn.h"
msg=$(merge); rc=$?
tap $([ "$rc" = 0 ] && [ "$(readlink -f "$f/home/include/cudnn.h")" = "$(readlink -f "$f/carry/cuda-include/cudnn.h")" ]; echo $?) \
    "then the carried cudnn.h is used (exit $rc)"
echo "1..$n"
[ "$failed" = 0 ]
