#!/usr/bin/env bash
# The examples of `rhd-fit --help` and `rhd-render --help` run, in order, against the bundled data
# (tests/data/mini) from a scratch folder; each must exit 0. Examples under a heading that says
# "not bundled" are listed as SKIPs. The "Examples" blocks of tools/rhd-fit.md and
# tools/rhd-render.md must be the same commands (so the man pages cannot rot either).
# EXAMPLES-HARNESS: rhd-fit rhd-render (to join the generic --help/man-page example runner).
. "$RHD_ROOT/tests/tools/lib.sh"
W=$T/work
mkdir -p "$W/tests/data"
ln -s "$RHD_ROOT/tests/data/mini" "$W/tests/data/mini"
export PATH="$RHD_BIN:$PATH"

# one command per line, continuations joined; "#SKIP " before the commands under a "not bundled" heading
help_examples() {
    "$RHD_BIN/$1" --help | awk '
        /^examples/ { on = 1; next }
        on && /^[^ ]/ { skip = ($0 ~ /not bundled/) }
        on && /^  / {
            line = $0; sub(/^ +/, "", line)
            cmd = cont ? cmd " " line : line
            if (cmd ~ /\\$/) { sub(/ *\\$/, "", cmd); cont = 1 }
            else { print (skip ? "#SKIP " : "") cmd; cmd = ""; cont = 0 }
        }'
}
# the ```sh block after "## Examples" of a man page, continuations joined
md_examples() {
    awk '/^## Examples/ { on = 1 } on && /^```sh/ { inb = 1; next } inb && /^```/ { exit }
         inb && !/^#/ && NF { line = $0; sub(/^ +/, "", line); cmd = cont ? cmd " " line : line
                      if (cmd ~ /\\$/) { sub(/ *\\$/, "", cmd); cont = 1 } else { print cmd; cmd = ""; cont = 0 } }' "$1"
}

for tool in rhd-fit rhd-render; do
    help_examples "$tool" >"$T/$tool.help"
    check "$tool --help has examples ($(grep -c . "$T/$tool.help"))" test -s "$T/$tool.help"
    md_examples "$RHD_ROOT/tools/$tool.md" >"$T/$tool.md.ex"
    if sed 's/^#SKIP //' "$T/$tool.help" | diff - "$T/$tool.md.ex" >"$T/$tool.diff"; then _tap 0 "tools/$tool.md's Examples are the --help examples"; else
        _tap 1 "tools/$tool.md's Examples differ from --help's"; sed 's/^/#   /' "$T/$tool.diff" | head -8; fi
    while IFS= read -r cmd; do
        case $cmd in "#SKIP "*) skip "needs files not bundled: ${cmd#\#SKIP }"; continue ;; esac
        (cd "$W" && eval "$cmd") >"$T/ex.out" 2>"$T/ex.err"
        r=$?
        if [ "$r" = 0 ]; then _tap 0 "example runs: $cmd"; else
            _tap 1 "example exits $r: $cmd"; sed 's/^/#   /' "$T/ex.err" | tail -3; fi
    done <"$T/$tool.help"
done
check "the examples wrote their outputs" test -s "$W/fit1/decoder.safetensors" -a -s "$W/avatar_101.safetensors" -a -s "$W/report.png" -a -s "$W/sheet.png" -a -s "$W/a.ply"
done_testing
