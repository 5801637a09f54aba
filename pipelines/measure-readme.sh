#!/usr/bin/env bash
# pipelines/measure-readme.sh [--demo] [--test]: measure the timings the README states, on this
# machine, and print them as lines to paste (with the machine: cores, load average).
#   (always)  each command of the README's runnable sh blocks (tests/tools/t0850-readme.sh runs
#             them too), timed one by one in a scratch directory
#   --demo    `make demo`'s cost from a built tree: pipelines/demo.sh traced, each tool call timed,
#             the stage-1 fit apart (build/demo/ is rewritten)
#   --test    `make test` (the whole suite) wall time
# Run from the repository root after `make`.
set -u
BIN=$(cd "${RHD_BUILD:-build}/bin" && pwd)
demo=0 full=0
for a in "$@"; do
    case $a in --demo) demo=1 ;; --test) full=1 ;; *) echo "usage: pipelines/measure-readme.sh [--demo] [--test]" >&2; exit 2 ;; esac
done
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b - a}'; }
echo "# machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%d)"

# the README's sh blocks: every command not marked [long]/[gpu]/[network]/[cluster]
work=$(mktemp -d /tmp/measure-readme.XXXXXX)
trap 'rm -rf "$work"' EXIT
ln -s "$PWD/tests" "$work/tests"
awk '/^```sh$/{b=1; next} /^```$/{b=0} b' README.md | sed -e ':a' -e '/\\$/N; s/\\\n//; ta' |
    grep -v '^\s*#' | grep -v '\[\(long\|gpu\|network\|cluster\)\]' | grep -v '^\s*$' > "$work/cmds"
root=(); [ "$(id -u)" = 0 ] && root=(--allow-run-as-root)
while IFS= read -r cmd; do
    cmd=${cmd%% #*}
    case $cmd in mpirun*) cmd="mpirun --oversubscribe ${root[*]} ${cmd#mpirun}" ;; esac
    t0=$(now)
    (cd "$work" && PATH="$BIN:$PATH" bash -c "$cmd" </dev/null >/dev/null 2>&1); rc=$?
    echo "README command (exit $rc): $(secs "$t0" "$(now)") s: ${cmd:0:100}"
done < "$work/cmds"

if [ "$demo" = 1 ]; then
    t0=$(now)
    PS4='+TRACE $(date +%s.%N) ' RHD_BUILD=${RHD_BUILD:-build} bash -x pipelines/demo.sh > "$work/demo.out" 2> "$work/demo.trace"
    rc=$?
    t1=$(now)
    # each traced command's start; its duration runs to the next one's start
    grep '^+TRACE' "$work/demo.trace" | awk -v end="$t1" '
        { t[NR] = $2; $1 = ""; $2 = ""; c[NR] = $0 }
        END { for (i = 1; i <= NR; i++) { d = (i < NR ? t[i + 1] : end) - t[i];
              if (c[i] ~ /bin\/rhd-/) { split(c[i], w, " "); n = w[1]; sub(/.*\//, "", n);
                  if (c[i] ~ /--stage 1/) n = n " --stage 1"; s[n] += d } }
              for (n in s) printf "make demo: %s: %.0f s\n", n, s[n] }' | sort
    echo "make demo (exit $rc, after a build): $(secs "$t0" "$t1") s in all"
fi
if [ "$full" = 1 ]; then
    t0=$(now)
    make test > "$work/test.out" 2>&1
    rc=$?
    echo "make test (exit $rc): $(secs "$t0" "$(now)") s; $(tail -1 "$work/test.out")"
fi
