#!/usr/bin/env bash
# tests/gpu/dry-cc.sh COMPILER ARGS...: the compiler wrapper of the dry rehearsal
# (tests/gpu/run.sh --dry passes CC, CXX and NVCC as "bash tests/gpu/dry-cc.sh <compiler>").
# Runs the compiler as asked, and records under $RHD_DRY_LOG what the proof (prove.sh) checks:
#  - for every source compiled, ALL the headers it used (a second, preprocessing-only pass with
#    -M: the Makefile's -MMD leaves out the headers found in system folders, which are exactly
#    the ones that matter here) -> $RHD_DRY_LOG/deps/<output>.d
#  - for every link, the files the linker loaded (--trace) -> $RHD_DRY_LOG/link/<output>.trace
# With RHD_DRY_REUSE, fresh CUDA objects of an earlier build are reused (see below).
set -u
cc=$1; shift
: "${RHD_DRY_LOG:?dry-cc.sh: RHD_DRY_LOG is not set}"
nvcc=0
case ${cc##*/} in nvcc*) nvcc=1 ;; esac
out= compile=0 srcs=0 pre=()
prev=
for a in "$@"; do
    case $prev in
        -o) out=$a; prev=; continue ;;
        -MF|-MT|-MQ|-Xlinker) prev=; continue ;;
    esac
    case $a in
        -o|-MF|-MT|-MQ|-Xlinker) prev=$a ;;
        -c) compile=1 ;;
        -MMD|-MD|-MP|-l*|-L*|-Wl,*|*.a|*.o|*.so) ;;
        *.c|*.cpp|*.cu) srcs=$((srcs + 1)); pre+=("$a") ;;
        *) pre+=("$a") ;;
    esac
done
name=$(printf '%s' "${out:-a.out}" | tr '/' '_')
mkdir -p "$RHD_DRY_LOG/deps" "$RHD_DRY_LOG/link"
if [ "$srcs" -gt 0 ]; then
    "$cc" "${pre[@]}" -M -MF "$RHD_DRY_LOG/deps/$name.d" -MT "${out:-a.out}" > /dev/null || {
        echo "dry-cc.sh: the dependency pass of $* failed" >&2; exit 1; }
fi
if [ "$compile" = 1 ]; then
    # RHD_DRY_REUSE=DIR (CI: build-cuda, just built): a CUDA object of DIR newer than every file
    # its dependency pass listed is copied instead of compiled again. The proof is unaffected: the
    # headers come from the dependency pass above, with this build's flags, and the libraries from
    # the links, which resolve them with this build's flags whatever the objects.
    if [ "$nvcc" = 1 ] && [ -n "${RHD_DRY_REUSE:-}" ] && [ -n "${RHD_DRY_BUILD:-}" ] && [ -n "$out" ]; then
        old=$RHD_DRY_REUSE/${out#"$RHD_DRY_BUILD"/}
        if [ "$old" != "$RHD_DRY_REUSE/$out" ] && [ -f "$old" ]; then
            fresh=1
            for dep in $(tr -d '\\' < "$RHD_DRY_LOG/deps/$name.d" | tr -s ' \t' '\n\n' | grep -v ':$'); do
                [ "$old" -nt "$dep" ] || { fresh=0; break; }
            done
            if [ "$fresh" = 1 ]; then
                cp -p "$old" "$out" && echo "$out <- $old" >> "$RHD_DRY_LOG/reused" && exit 0
            fi
        fi
    fi
    "$cc" "$@" || exit $?
else
    # a link (maybe with a compile in the same command, as the tools' rule does)
    if [ "$nvcc" = 1 ]; then trace=(-Xlinker --trace); else trace=(-Wl,--trace); fi
    echo "#output ${out:-a.out}" > "$RHD_DRY_LOG/link/$name.trace"
    "$cc" "$@" "${trace[@]}" >> "$RHD_DRY_LOG/link/$name.trace" || exit $?
fi
exit 0
