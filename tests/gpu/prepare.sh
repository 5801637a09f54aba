#!/usr/bin/env bash
# tests/gpu/prepare.sh [CARRY]: run on the development (or CI) machine, which reaches Debian's
# archive. Downloads the Debian packages the CUDA build and the GPU tests need (tests/gpu/lib.sh:
# GPU_DEBS, `apt-get download`, amd64: the GPU machine is x86-64) and fallback cuDNN/cuBLAS
# headers into one git-ignored folder (default gpu-carry/), writes CARRY/MANIFEST (package,
# version, sha256), checks the folder is well under the 64 MiB that may travel, and prints the
# folder to bring along and the one command to run on the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/gpu/lib.sh
CARRY=${1:-$GPU_CARRY_DEFAULT}
LIMIT_MB=40   # of the 64 MiB that may travel: the source tree needs the rest
die() { echo "prepare: error: $*" >&2; exit 1; }

case $CARRY in /*|../*|*/../*) die "$CARRY: expected a folder inside the repository (it travels with the tree)" ;; esac
git check-ignore -q "$CARRY/" || die "$CARRY: not ignored by git; expected a git-ignored folder (see .gitignore)"
command -v apt-get >/dev/null || die "apt-get not found: this script needs a Debian machine"

rm -rf "$CARRY.tmp" && mkdir -p "$CARRY.tmp/debs" "$CARRY.tmp/cuda-include"
names=()
for p in "${GPU_DEBS[@]}"; do names+=("$p:amd64"); done
download() { (cd "$CARRY.tmp/debs" && apt-get download -q "${names[@]}") > "$CARRY.tmp/apt.log" 2>&1; }
# a fresh machine may have no package lists yet: as root, update them once and try again
download || { [ "$(id -u)" = 0 ] && apt-get update -qq > /dev/null 2>&1 && download; } || {
    cat "$CARRY.tmp/apt.log" >&2
    die "apt-get download ${GPU_DEBS[*]} failed (after 'apt-get update'? network to Debian's archive?)"; }
for p in "${GPU_DEBS[@]}"; do
    ls "$CARRY.tmp/debs/${p}_"*_amd64.deb >/dev/null 2>&1 || die "package $p: no ${p}_*_amd64.deb was downloaded"
done

# the fallback CUDA headers: from the CUDA this machine builds with (make CUDA=1's CUDA_HOME)
cuda=${CUDA_HOME:-/usr/local/cuda}
nh=0
for g in $GPU_CUDA_HDRS; do
    for h in "$cuda"/include/$g; do [ -f "$h" ] && cp -L "$h" "$CARRY.tmp/cuda-include/" && nh=$((nh + 1)); done
done
[ "$nh" -gt 0 ] || echo "prepare: warning: no cuDNN/cuBLAS headers under $cuda/include; the GPU machine's wheels must have them" >&2

{
    echo "# tests/gpu/prepare.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ): package version sha256"
    for f in "$CARRY.tmp"/debs/*.deb; do
        printf '%s %s %s\n' "$(dpkg-deb -f "$f" Package)" "$(dpkg-deb -f "$f" Version)" "$(sha256sum < "$f" | cut -c1-64)"
    done
    if [ "$nh" -gt 0 ]; then
        ver=$(sed -n 's/^#define CUDNN_\(MAJOR\|MINOR\|PATCHLEVEL\) *\([0-9]*\).*/\2/p' "$CARRY.tmp/cuda-include/cudnn_version.h" 2>/dev/null | paste -sd.)
        echo "# cuda-include/: $nh headers from $cuda/include (cuDNN ${ver:-?})"
    fi
} > "$CARRY.tmp/MANIFEST"
rm -f "$CARRY.tmp/apt.log"
rm -rf "$CARRY" && mv "$CARRY.tmp" "$CARRY"

kb=$(du -sk "$CARRY" | cut -f1)
tree_kb=$(git ls-files -z --cached --others --exclude-standard | du -ck --files0-from=- 2>/dev/null | tail -1 | cut -f1)
[ "$kb" -lt $((LIMIT_MB * 1024)) ] || die "$CARRY is $((kb / 1024)) MiB, expected under $LIMIT_MB MiB"
[ $((kb + tree_kb)) -lt $((60 * 1024)) ] || die "$CARRY ($((kb / 1024)) MiB) + the tree ($((tree_kb / 1024)) MiB) is over 60 MiB; 64 MiB may travel"

cmd="bash tests/gpu/run.sh --carry $CARRY"
[ ${#cmd} -lt 2000 ] || die "the GPU command is ${#cmd} characters, expected under 2000"
sed 's/^/  /' "$CARRY/MANIFEST"
echo "carry: $CARRY ($kb KiB; with the tree $(((kb + tree_kb) / 1024)) MiB of 64)"
echo "command (${#cmd} characters): $cmd"
