#!/usr/bin/env bash
# tests/deps.sh build|test|all: make sure the Debian packages the build (and the tests) need are
# present. As root, missing ones are installed with apt-get; otherwise the exact apt-get line is
# printed and the script fails.
set -u
what=${1:-build}
build_pkgs=(gcc make libpng-dev libcjson-dev libopenblas-dev)
# openmpi: the sharded runs of t0920 (mpirun -np 2); the tools link no MPI library
test_pkgs=(python3-venv python3-numpy python3-torch python3-torchvision clang libclang-rt-14-dev libopenmpi-dev openmpi-bin)
check() { # pkg -> 0 if installed
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}
want=()
case $what in
    build) want=("${build_pkgs[@]}") ;;
    test) want=("${test_pkgs[@]}") ;;
    all) want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
    *) echo "usage: tests/deps.sh build|test|all" >&2; exit 2 ;;
esac
missing=()
for p in "${want[@]}"; do check "$p" || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v dpkg-query >/dev/null; then
    echo "deps: cannot check packages (no dpkg); need: ${want[*]}" >&2
    exit 0
fi
if [ "$(id -u)" = 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2 || {
        echo "deps: error: apt-get install ${missing[*]} failed" >&2; exit 1; }
    exit 0
fi
echo "deps: error: missing Debian packages: ${missing[*]}" >&2
echo "deps: run: sudo apt-get install -y ${missing[*]}" >&2
exit 1
