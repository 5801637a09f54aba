#!/usr/bin/env bash
# tests/gpu/check-dry.sh [CARRY]: the dry rehearsal's proof must be able to fail (TAP).
# Copies the carry folder without libcjson-dev (a header package) and zlib1g (the runtime library
# libpng16 loads in turn), runs the CPU dry rehearsal on it (tests/gpu/run.sh --dry --no-cuda,
# into build-gpu-dry-neg/), and expects it to fail naming the system's cjson/cJSON.h with its
# package, and the system's libz.so.1 with zlib1g. On this machine both exist in /usr, so the build
# itself succeeds: only the proof can catch them. Then the full carry folder must pass.
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
echo "1..$n"
[ "$failed" = 0 ]
