# tests/gpu/lib.sh: shared by tests/gpu/prepare.sh, run.sh and prove.sh (sourced, not run).
#
# The GPU machine is bare and offline: nvcc, gcc, a python3 with PyTorch and NVIDIA's libraries as
# pip wheels, none of Debian's -dev packages. prepare.sh downloads the Debian packages below into
# one folder (the "carry" folder, git-ignored) that travels with the tree; run.sh unpacks them into
# a private prefix with `dpkg -x` (never over /) and builds against it.

# The Debian packages the build and the GPU tests need, with why. The -dev packages give the
# headers and the link-time .so names; the runtime packages the .so files those point at, and
# what they need in turn (libpng16 -> libz, OpenBLAS -> libgfortran -> libquadmath). png.h does
# not include zlib.h, so zlib's headers are not needed. libopenblas-dev is only a metapackage
# choosing a variant: the pthread variant is the one Debian installs by default.
GPU_DEBS=(
    libpng-dev libpng16-16 zlib1g      # png.h, -lpng
    libcjson-dev libcjson1             # cjson/cJSON.h, -lcjson
    libopenblas-pthread-dev            # cblas.h, -lopenblas (openblas-pthread/)
    libopenblas0-pthread libgfortran5 libquadmath0
)
# cuDNN and cuBLAS headers: the image's wheels (nvidia-cudnn-cu13, nvidia-cublas) ship them, and
# they are used first; copies from this machine's CUDA travel as a fallback (about 1 MB). NCCL is
# not used by any source, so no NCCL header travels.
GPU_CUDA_HDRS='cudnn*.h cublas*.h'
GPU_CARRY_DEFAULT=gpu-carry   # relative to the repository root; listed in .gitignore
GPU_ARCH_TRIPLET=x86_64-linux-gnu

gpu_now() { date +%s; }

# gpu_unpack CARRY PREFIX: every .deb of CARRY/debs into PREFIX (dpkg -x, or ar + tar where dpkg
# is missing); absolute symlinks inside are re-pointed into the prefix so nothing leads back to /.
gpu_unpack() {
    local carry=$1 prefix=$2 deb n=0
    rm -rf "$prefix" && mkdir -p "$prefix" || return 1
    for deb in "$carry"/debs/*.deb; do
        [ -f "$deb" ] || continue
        if command -v dpkg-deb >/dev/null; then
            dpkg-deb -x "$deb" "$prefix" || { echo "unpack: dpkg -x $deb failed" >&2; return 1; }
        else
            local m
            m=$(ar t "$deb" | grep '^data\.tar') || { echo "unpack: $deb has no data.tar" >&2; return 1; }
            ar p "$deb" "$m" | tar -x -a -f - -C "$prefix" 2>/dev/null ||
                ar p "$deb" "$m" | tar -xJ -C "$prefix" || { echo "unpack: $deb failed" >&2; return 1; }
        fi
        n=$((n + 1))
    done
    [ "$n" -gt 0 ] || { echo "unpack: no .deb in $carry/debs (run tests/gpu/prepare.sh first)" >&2; return 1; }
    local l t
    while IFS= read -r -d '' l; do
        t=$(readlink "$l")
        case $t in /*) ln -sfn "$prefix$t" "$l" ;; esac
    done < <(find "$prefix" -type l -print0)
    echo "$n"
}

# The include and library folders of an unpacked prefix, first those that exist.
gpu_prefix_incdirs() {
    local p=$1 d
    for d in usr/include usr/include/$GPU_ARCH_TRIPLET usr/include/$GPU_ARCH_TRIPLET/openblas-pthread; do
        [ -d "$p/$d" ] && printf '%s\n' "$p/$d"
    done
}
gpu_prefix_libdirs() {
    local p=$1 d
    for d in usr/lib/$GPU_ARCH_TRIPLET usr/lib/$GPU_ARCH_TRIPLET/openblas-pthread lib/$GPU_ARCH_TRIPLET; do
        [ -d "$p/$d" ] && printf '%s\n' "$p/$d"
    done
}
# EXTRA_CPPFLAGS / EXTRA_LDFLAGS for the Makefile. DT_RPATH (--disable-new-dtags), not RUNPATH:
# RUNPATH would not apply to what the prefix's libraries load in turn (libpng16 -> libz).
gpu_cppflags() { local d; for d in $(gpu_prefix_incdirs "$1"); do printf -- '-I%s ' "$d"; done; }
gpu_ldflags() {
    local d
    printf -- '-Wl,--disable-new-dtags '
    for d in $(gpu_prefix_libdirs "$1"); do printf -- '-L%s -Wl,-rpath,%s ' "$d" "$d"; done
}

# Python site-packages folders that may hold NVIDIA's wheels (nvidia/<lib>/{include,lib}).
gpu_site_dirs() {
    local py
    for py in python3 /opt/torch/.venv/bin/python3; do
        command -v "$py" >/dev/null 2>&1 || [ -x "$py" ] || continue
        "$py" -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null
    done
    ls -d /opt/torch/.venv/lib/python3*/site-packages 2>/dev/null
    [ -z "${RHD_GPU_SITE_DIRS:-}" ] || printf '%s\n' "$RHD_GPU_SITE_DIRS" | tr ':' '\n'   # more (tests)
}

# gpu_cuda_home HOME CARRY: make HOME a CUDA_HOME of symbolic links (include/, lib64/) merged from,
# in this order: the toolkit of the nvcc on PATH (or $CUDA_HOME, /usr/local/cuda), the NVIDIA
# wheels of python3's site-packages, CARRY/cuda-include. The first source of a name wins. Wheels
# ship only lib<x>.so.<N>, so the lib<x>.so names the linker wants are added. Prints the source
# folders (one a line) to HOME/sources; fails naming what is missing.
gpu_cuda_home() {
    local home=$1 carry=$2 nv top s e sp
    rm -rf "$home" && mkdir -p "$home/include" "$home/lib64" || return 1
    nv=$(command -v nvcc 2>/dev/null || true)
    [ -z "$nv" ] && for s in "${CUDA_HOME:-}" /usr/local/cuda; do
        [ -n "$s" ] && [ -x "$s/bin/nvcc" ] && nv=$s/bin/nvcc && break
    done
    if [ -z "$nv" ]; then
        for sp in $(gpu_site_dirs); do
            for s in "$sp"/nvidia/*/bin/nvcc; do [ -x "$s" ] && nv=$s && break 2; done
        done
    fi
    [ -n "$nv" ] || { echo "cuda: no nvcc on PATH, in \$CUDA_HOME, /usr/local/cuda or the NVIDIA wheels" >&2; return 1; }
    top=$(cd "$(dirname "$(readlink -f "$nv")")/.." && pwd)
    echo "$(dirname "$(readlink -f "$nv")")" > "$home/nvcc-bin"
    local inc=() lib=()
    for s in "$top" "${CUDA_HOME:-}"; do
        [ -n "$s" ] && [ -d "$s" ] || continue
        inc+=("$s/include" "$s/targets/x86_64-linux/include")
        lib+=("$s/lib64" "$s/lib" "$s/targets/x86_64-linux/lib")
    done
    for sp in $(gpu_site_dirs); do
        for s in "$sp"/nvidia/*/; do inc+=("${s}include"); lib+=("${s}lib"); done
    done
    inc+=("$carry/cuda-include")
    : > "$home/sources"
    for s in "${inc[@]}"; do
        [ -d "$s" ] || continue
        readlink -f "$s" >> "$home/sources"
        for e in "$s"/*; do [ -e "$e" ] && [ ! -e "$home/include/${e##*/}" ] && ln -s "$(readlink -f "$e")" "$home/include/${e##*/}"; done
    done
    for s in "${lib[@]}"; do
        [ -d "$s" ] || continue
        readlink -f "$s" >> "$home/sources"
        for e in "$s"/*; do [ -e "$e" ] && [ ! -e "$home/lib64/${e##*/}" ] && ln -s "$(readlink -f "$e")" "$home/lib64/${e##*/}"; done
    done
    for e in "$home"/lib64/lib*.so.[0-9]*; do
        [ -e "$e" ] || continue
        s=${e%%.so.*}.so
        [ -e "$s" ] || ln -s "$(readlink -f "$e")" "$s"
    done
    sort -u -o "$home/sources" "$home/sources"
    local miss=()
    for s in include/cuda_runtime.h include/cublas_v2.h include/cudnn.h lib64/libcudart.so lib64/libcublas.so lib64/libcudnn.so; do
        [ -e "$home/$s" ] || miss+=("$s")
    done
    [ ${#miss[@]} -eq 0 ] || { echo "cuda: not found in the toolkit ($top), the wheels or $carry/cuda-include: ${miss[*]}" >&2; return 1; }
}
