#!/usr/bin/env bash
# Every numeric option of every tool: a bad value is refused with an example ("e.g. --steps 50"),
# and that example must itself be accepted (inside the option's range). Each option is given the
# example followed by an unknown option: the parser must complain about the unknown option, not
# about the example.
. "$RHD_ROOT/tests/tools/lib.sh"
# in the temp folder: an option that takes a file name (rhd-schedule noise --png) writes "not-a-number"
cd "$T"
cmds=("rhd-inspect" "rhd-encode" "rhd-schedule fit" "rhd-schedule show" "rhd-schedule noise" "rhd-fit" "rhd-render")
for c in "${cmds[@]}"; do
    read -r tool sub <<<"$c"
    [ -x "$RHD_BIN/$tool" ] || { skip "$tool not built"; continue; }
    help=$("$RHD_BIN/$tool" $sub --help 2>&1)
    opts=$(printf '%s\n' "$help" | sed -nE 's/^ +(-[a-zA-Z], )?--([a-z0-9-]+) [A-Z][A-Z,:|]*.*/\2/p' | sort -u)
    nnum=0 bad=""
    for o in $opts; do
        msg=$("$RHD_BIN/$tool" $sub --"$o" not-a-number 2>&1 >/dev/null)
        printf '%s' "$msg" | grep -qE "takes (an integer|a finite number)" || continue
        nnum=$((nnum + 1))
        ex=$(printf '%s' "$msg" | sed -nE "s/.*\(e\.g\. --$o ([^)]*)\).*/\1/p")
        [ -n "$ex" ] || { bad="$bad --$o(no example)"; continue; }
        msg2=$("$RHD_BIN/$tool" $sub --"$o" "$ex" --no-such-option-zz 2>&1 >/dev/null)
        printf '%s' "$msg2" | grep -q "unknown option '--no-such-option-zz'" || bad="$bad --$o($ex: ${msg2%%$'\n'*})"
    done
    if [ -z "$bad" ]; then _tap 0 "$c: the examples of its $nnum numeric options are accepted"
    else _tap 1 "$c: examples refused:$bad"; fi
done
run rhd-encode --device tpu --weights random:1 -o "$T/x" "$T/x.png"
expect_rc 2 "--device tpu is a usage error"
expect_err "--device takes cpu, cuda, cuda:N or auto \(e.g. --device cpu\), got 'tpu'" "naming the choices"
printf '{"device": "gpu"}' > "$T/c.json"
run rhd-encode --config "$T/c.json" --weights random:1 -o "$T/x" "$T/x.png"
expect_rc 2 "a bad device in --config too"
done_testing
