#!/usr/bin/env bash
# Every documented example runs. The examples of a tool are the lines after "examples:" (or
# "example:") in its --help text (and in each subcommand's --help) and the lines of the ```sh
# block under "## EXAMPLES" in its manual page tools/<tool>.md; a line ending in '\' continues on the next,
# text after " # " is a comment. Each runs with bash in a scratch directory that holds
# the bundled data and the files examples_fixture.py makes (tiny weights named sdxl-vae, avatar
# lists, a triplane), tools first on PATH, in document order (later examples may read what
# earlier ones wrote) and fails if any command of its pipeline fails (a reader that stops early,
# "| head", is fine). An example whose first command is not installed (mpirun) is skipped.
# RHD_EXAMPLE_TOOLS picks the tools (default: rhd-encode rhd-schedule rhd-inspect; add rhd-fit,
# rhd-render once their examples run on the bundled data).
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}
tools=${RHD_EXAMPLE_TOOLS:-rhd-encode rhd-schedule rhd-inspect}
W="$T/work"
mkdir -p "$W/tests/data"
ln -s "$RHD_ROOT/tests/data/mini" "$W/tests/data/mini"
ln -s "$RHD_ROOT/tests/data/mini" "$W/avatars"
ln -s "$RHD_ROOT/pipelines" "$W/pipelines"
"$PY" "$RHD_ROOT/tests/tools/examples_fixture.py" "$W" || { echo "Bail out! examples_fixture.py failed"; exit 1; }

# examples of one tool, one per line, from its --help texts and its manual page
examples_of() {
    local tool=$1 subs="" s
    [ "$tool" = rhd-schedule ] && subs="fit show noise"
    for s in ${subs:-""}; do
        "$RHD_BIN/$tool" $s --help | awk '/^examples?:/ {on = 1; next} on && /^  / {print} on && !/^  / {on = 0}'
    done
    awk '/^## EXAMPLES/ {sec = 1; next} /^## / {sec = 0} sec && /^```/ {code = !code; next} sec && code {print}' \
        "$RHD_ROOT/tools/$tool.md"
}
join_lines() { # continuation lines, comments and blank lines
    sed -e 's/^ *//' | awk '{ if (sub(/\\$/, "")) { acc = acc $0 " "; next } print acc $0; acc = "" }' |
        sed -e 's/  *# .*$//' -e '/^#/d' -e '/^ *$/d'
}
# mpirun examples: as root OpenMPI wants its confirmation, and -np 4 on fewer cores oversubscription
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1
for tool in $tools; do
    [ -x "$RHD_BIN/$tool" ] || { skip "$tool not built"; continue; }
    examples_of "$tool" | join_lines > "$T/$tool.examples"
    check "$tool documents examples" test -s "$T/$tool.examples"
    while IFS= read -r ex; do
        first=${ex%% *}
        if ! PATH="$RHD_BIN:$PATH" command -v "$first" >/dev/null; then skip "$first not installed: $ex"; continue; fi
        if (cd "$W" && PATH="$RHD_BIN:$PATH" RHD_DEVICE=cpu timeout 300 bash -c "$ex"'
                s=("${PIPESTATUS[@]}"); for r in "${s[@]}"; do [ "$r" = 0 ] || [ "$r" = 141 ] || exit "$r"; done' \
                < /dev/null > "$T/ex.out" 2> "$T/ex.err"); then
            _tap 0 "$tool: $ex"
        else
            _tap 1 "$tool: $ex (exit $?)"; sed 's/^/#   /' "$T/ex.err" | tail -4
        fi
    done < "$T/$tool.examples"
done
done_testing
