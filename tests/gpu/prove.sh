#!/usr/bin/env bash
# tests/gpu/prove.sh PREFIX CUDA_HOME DRY_LOG BUILD: the proof of the dry rehearsal
# (tests/gpu/run.sh --dry). Checks that every header and library the build used came from
#  - the repository (its tracked folders, which travel, and the build folder BUILD),
#  - the prefix the carried Debian packages were unpacked into (PREFIX),
#  - CUDA (the folders CUDA_HOME's links were merged from: CUDA_HOME/sources),
#  - the C library and the compiler itself: headers of the Debian packages libc6-dev and
#    linux-libc-dev, gcc's own folder (omp.h, stddef.h...), the C++ library headers; the libc,
#    libm, libgcc, libgomp, libstdc++ and crt*.o files; the GPU driver's libcuda.so.1,
#  and from nothing else: anything else would be missing on the bare GPU machine. Headers are read
#  from the complete dependency lists dry-cc.sh wrote (DRY_LOG/deps), libraries from the linker's
#  --trace (DRY_LOG/link) and from ldd of every program built (BUILD/{bin,tests,bench}).
# Prints what it checked; exit 1 naming each file found outside, with its Debian package.
set -u
PREFIX=$(readlink -f "$1") HOME_CUDA=$(readlink -f "$2") LOG=$3 BUILD=$4
ROOT=$(pwd -P)
W=$(mktemp -d /tmp/rhd-prove.XXXXXX)
trap 'rm -rf "$W"' EXIT

command -v dpkg-query >/dev/null || { echo "prove: error: dpkg-query not found: cannot tell the C library's headers from others (run on Debian)"; exit 1; }
ls "$LOG"/deps/*.d >/dev/null 2>&1 || { echo "prove: error: no dependency lists in $LOG/deps (was the build run through dry-cc.sh?)"; exit 1; }

# the allowed folders, one a line (realpath, with a trailing /)
{
    # the repository's tracked folders (they travel) and this build's folder; not all of the
    # checkout: its ignored folders (build/, build-cuda/, a venv) stay behind
    if top=$(git ls-files 2>/dev/null | cut -d/ -f1 | sort -u) && [ -n "$top" ]; then
        for t in $top; do [ -d "$t" ] && printf '%s/%s/\n' "$ROOT" "$t"; done
    else
        printf '%s/\n' "$ROOT"
    fi
    printf '%s/\n' "$(readlink -f "$BUILD")" "$PREFIX"
    while read -r s; do [ -n "$s" ] && printf '%s/\n' "$(readlink -f "$s")"; done < "$HOME_CUDA/sources"
    gccdir=$(dirname "$(gcc -print-file-name=include)")
    printf '%s/\n' "$(readlink -f "$gccdir")"
    for d in /usr/include/c++ /usr/include/x86_64-linux-gnu/c++; do [ -d "$d" ] && printf '%s/\n' "$(readlink -f "$d")"; done
} | sort -u > "$W/dirs"
# the C library's headers (realpath)
dpkg -L libc6-dev linux-libc-dev 2>/dev/null | grep '\.h$' | xargs -d '\n' realpath -m -- | sort -u > "$W/libc"
[ -s "$W/libc" ] || { echo "prove: error: dpkg -L libc6-dev linux-libc-dev listed no header"; exit 1; }

# headers: "path<TAB>output that used it", unique by path
for d in "$LOG"/deps/*.d; do
    tr -d '\\' < "$d" | tr -s ' \t' '\n\n' | awk 'NF && /:$/ && u == "" { u = substr($0, 1, length($0) - 1); next }
                                                 NF && $0 !~ /:$/ { print $0 "\t" u }'
done | sort -t "$(printf '\t')" -k1,1 -u > "$W/h.raw"
cut -f1 "$W/h.raw" | xargs -d '\n' realpath -m -- > "$W/h.real"
cut -f2 "$W/h.raw" | paste "$W/h.real" - | sort -t "$(printf '\t')" -k1,1 -u > "$W/h"

# libraries: from the link traces, then ldd of every program
for t in "$LOG"/link/*.trace; do
    [ -f "$t" ] || continue
    awk '
        /^#output / { u = substr($0, 9); next }
        /^-l[^ ]* \(.*\)$/ { sub(/^[^(]*\(/, ""); sub(/\)$/, ""); print $0 "\t" u; next }
        /^\(.*\)/ { s = $0; sub(/^\(/, "", s); sub(/\).*/, "", s); print s "\t" u; next }
        /^[^ ]+$/ { print $0 "\t" u }' "$t"
done > "$W/l.raw"
nprog=0
for p in "$BUILD"/bin/* "$BUILD"/tests/* "$BUILD"/bench/*; do
    [ -f "$p" ] && [ -x "$p" ] || continue
    nprog=$((nprog + 1))
    ldd "$p" 2>/dev/null | awk -v u="ldd $(basename "$p")" '
        / => not found/ { print "NOT-FOUND:" $1 "\t" u; next }
        / => \// { print $3 "\t" u; next }
        /^\t\// { print $1 "\t" u }'
done >> "$W/l.raw"
grep -v '^NOT-FOUND:' "$W/l.raw" | sort -t "$(printf '\t')" -k1,1 -u > "$W/l.sorted" || true
cut -f1 "$W/l.sorted" | xargs -d '\n' realpath -m -- > "$W/l.real" 2>/dev/null
cut -f2 "$W/l.sorted" | paste "$W/l.real" - | sort -t "$(printf '\t')" -k1,1 -u > "$W/l"

classify() { # kind file -> the lines outside
    awk -F '\t' -v kind="$1" -v dirs="$W/dirs" -v libc="$W/libc" '
        BEGIN { while ((getline d < dirs) > 0) D[++nd] = d; while ((getline h < libc) > 0) L[h] = 1 }
        {
            p = $1; ok = 0
            for (i = 1; i <= nd && !ok; i++) if (index(p, D[i]) == 1) ok = 1
            if (!ok && kind == "header" && (p in L)) ok = 1
            if (!ok && kind == "library") {
                n = p; sub(/.*\//, "", n)
                if (n ~ /^(libc|libm|libmvec|libpthread|libdl|librt|libutil|ld-linux-x86-64|libgcc|libgcc_s|libgomp|libstdc\+\+|libatomic|libc_nonshared)([.-]|$)/ ||
                    n ~ /^(Scrt1|crt1|crti|crtn|crtbegin[ST]?|crtend[S]?)\.o$/ || n ~ /^libcuda\.so/ ||
                    p ~ /^\/tmp\/(cc[^\/]*|tmpxft[^\/]*)\.o$/) ok = 1
            }
            if (!ok) print
        }' "$2"
}
classify header "$W/h" > "$W/h.bad"
classify library "$W/l" > "$W/l.bad"
grep '^NOT-FOUND:' "$W/l.raw" | grep -v '^NOT-FOUND:libcuda\.so' | sed 's/^NOT-FOUND://' | sort -u > "$W/nf" || true

nh=$(wc -l < "$W/h") nl=$(wc -l < "$W/l") nd=$(ls "$LOG"/deps/*.d | wc -l)
echo "proof: $nh distinct headers used by $nd compiles, $nl distinct libraries and objects from the link traces and ldd of $nprog programs"
echo "proof: allowed outside the repository: the prefix $PREFIX, CUDA ($(wc -l < "$HOME_CUDA/sources") folders), the C library and the compiler"
echo "proof: from the prefix: $(grep -c "^$PREFIX/" "$W/h") headers: $(grep "^$PREFIX/" "$W/h" | cut -f1 | sed "s|^$PREFIX/||" | paste -sd' ')"
echo "proof: from the prefix: $(grep -c "^$PREFIX/" "$W/l") libraries: $(grep "^$PREFIX/" "$W/l" | cut -f1 | sed "s|^$PREFIX/||" | paste -sd' ')"
owner() { dpkg -S "$1" 2>/dev/null | head -1 | cut -d: -f1 || true; }
bad=0
while IFS=$(printf '\t') read -r p u; do
    [ -n "$p" ] || continue
    pkg=$(owner "$p"); [ -z "$pkg" ] && pkg=$(owner "${p#/usr}")
    echo "prove: error: header $p (Debian package ${pkg:-unknown}), used by $u, is outside the prefix: the GPU machine has no such file; add ${pkg:-its package} to GPU_DEBS in tests/gpu/lib.sh"
    bad=1
done < "$W/h.bad"
while IFS=$(printf '\t') read -r p u; do
    [ -n "$p" ] || continue
    pkg=$(owner "$p"); [ -z "$pkg" ] && pkg=$(owner "${p#/usr}")
    echo "prove: error: library $p (Debian package ${pkg:-unknown}), used by $u, is outside the prefix: the GPU machine has no such file; add ${pkg:-its package} to GPU_DEBS in tests/gpu/lib.sh"
    bad=1
done < "$W/l.bad"
while IFS=$(printf '\t') read -r n u; do
    [ -n "$n" ] || continue
    echo "prove: error: library $n, needed by $u, was not found at all"
    bad=1
done < "$W/nf"
[ "$bad" = 0 ] && echo "proof: ok: nothing outside the prefix, CUDA, the C library and the compiler"
exit $bad
