#!/usr/bin/env bash
# Malformed stage-1 checkpoints (formats/checkpoint.md, rhd.model fit) and decoder files, as
# `rhd-fit --resume`, `rhd-fit --stage 2 --decoder` and rhd-inspect meet them: every one is refused
# with exit 1 and a message naming the file and the field or tensor (a table: case, what is
# changed, the expected message), and the run directory is left as it was. Each case is made from
# a real checkpoint of a tiny run (Python safetensors), changing one thing. And the --report error
# exit that leaked (seen under make SAN=1).
. "$RHD_ROOT/tests/tools/lib.sh"
MINI=$RHD_ROOT/tests/data/mini
PY=${RHD_PY:-python3}
TINY="--triplane-res 8 --triplane-channels 4 --grid-size 8 --rays 16 --max-steps 2 --dist-points 8 --train-views 0-1 --eval-views 100 --threads 1 --warmup 1"
printf 'avatar_100\n' >"$T/list.txt"
run rhd-schedule fit --list "$T/list.txt" --rounds 2 --steps 2 --refit-steps 0 -o "$T/plan.json"
run rhd-schedule fit --list "$T/list.txt" --rounds 3 --steps 2 --refit-steps 0 -o "$T/plan3.json"
S1="--stage 1 --plan $T/plan.json --data $MINI $TINY"
run rhd-fit $S1 --max-entries 1 -o "$T/run"
expect_rc 0 "a run with one of two entries done"
CK=$T/run/checkpoint.safetensors

# mutate NAME CHANGE: $T/cases/NAME.safetensors = the checkpoint with one change (Python expression
# over t: tensors, m: metadata)
"$PY" - "$CK" "$T/cases" "$T/plan3.json" <<'PYEOF'
import os, sys, json, numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file
src, out, plan3 = sys.argv[1:4]
os.makedirs(out, exist_ok=True)
with safe_open(src, "np") as f:
    T0 = {k: f.get_tensor(k) for k in f.keys()}
    M0 = f.metadata()
def case(name, fn):
    t, m = {k: v.copy() for k, v in T0.items()}, dict(M0)
    fn(t, m)
    save_file(t, f"{out}/{name}.safetensors", metadata=m)
def nan(t, m): t["adam.v.color_net.1.weight"][1, 2] = np.nan
def inf(t, m): t["sigma_net.0.bias"][0] = np.inf
case("nan_moment", nan)
case("inf_param", inf)
case("missing_moment", lambda t, m: t.pop("adam.m.sigma_net.0.bias"))
case("missing_param", lambda t, m: t.pop("color_net.1.weight"))
case("shape", lambda t, m: t.update({"adam.m.color_net.2.weight": np.zeros((4, 128), np.float32)}))
case("dtype", lambda t, m: t.update({"adam.v.sigma_net.2.bias": t["adam.v.sigma_net.2.bias"].astype(np.float64)}))
case("model_base", lambda t, m: m.update({"rhd.model": "base"}))
case("kind_triplane", lambda t, m: m.update({"rhd.kind": "triplane"}))
case("entries_text", lambda t, m: m.update({"rhd.entries_done": "one"}))
case("entries_negative", lambda t, m: m.update({"rhd.entries_done": "-1"}))
case("entries_beyond", lambda t, m: m.update({"rhd.entries_done": "7"}))
case("no_seed", lambda t, m: m.pop("rhd.seed"))
case("seed_text", lambda t, m: m.update({"rhd.seed": "0x"}))
case("no_plan", lambda t, m: m.pop("rhd.plan"))
case("other_plan", lambda t, m: m.update({"rhd.plan": open(plan3).read()}))
case("no_step", lambda t, m: m.pop("rhd.step"))
case("records_not_json", lambda t, m: m.update({"rhd.records": "[{"}))
case("param_shape", lambda t, m: t.update({"color_net.2.weight": np.zeros((4, 128), np.float32)}))
PYEOF
check "the malformed checkpoints were made" test -f "$T/cases/records_not_json.safetensors"

# name | expected message (extended regex; the file's path is checked too)
table='nan_moment|tensor .adam.v.color_net.1.weight. holds a non-finite value
inf_param|tensor .sigma_net.0.bias. holds a non-finite value
missing_moment|adam.m.sigma_net.0.bias.*missing|missing.*adam.m.sigma_net.0.bias
missing_param|color_net.1.weight.*missing|missing.*color_net.1.weight
shape|adam.m.color_net.2.weight.*\[4,128\].*expected \[3,128\]
model_base|a .base. checkpoint, expected a fit checkpoint
kind_triplane|triplane.*expected .*checkpoint
entries_text|rhd.entries_done.*one
entries_negative|rhd.entries_done.*-1
entries_beyond|7 entries done, expected at most the plan.s 2
no_seed|rhd.seed is missing
seed_text|rhd.seed is .0x., expected an unsigned integer
no_plan|rhd.plan is missing
other_plan|written for another plan
no_step|lacks the metadata key .rhd.step.
records_not_json|metadata rhd.records is not a JSON array
param_shape|color_net.2.weight.*\[4,128\]'
snap() { (cd "$1" && find . -type f ! -name .lock | sort | xargs sha256sum); }
while IFS='|' read -r name want; do
    d=$T/r-$name
    cp -r "$T/run" "$d"
    cp "$T/cases/$name.safetensors" "$d/checkpoint.safetensors"
    before=$(snap "$d")
    run rhd-fit $S1 --resume -o "$d"
    if [ "$rc" = 1 ] && printf '%s' "$err" | grep -q "r-$name/checkpoint.safetensors" && printf '%s' "$err" | grep -Eq -- "$want"; then
        _tap 0 "--resume, checkpoint $name: exit 1, $(printf '%s' "$err" | head -1 | sed 's#.*/r-##')"
    else _tap 1 "--resume, checkpoint $name: exit $rc, expected 1 and /$want/ naming the file"; printf '#   %s\n' "$err" | head -3; fi
    check "--resume, checkpoint $name: the run directory is unchanged" test "$before" = "$(snap "$d")"
done <<<"$table"

# F64 moments are read as F32 (exact for values written as F32): the run resumes to the same bytes
d=$T/r-dtype; cp -r "$T/run" "$d"; cp "$T/cases/dtype.safetensors" "$d/checkpoint.safetensors"
cp -r "$T/run" "$T/r-ref"
run rhd-fit $S1 --resume -o "$T/r-ref"
run rhd-fit $S1 --resume -o "$d"
expect_rc 0 "--resume, F64 Adam moments"
check "resumes to the same decoder as the F32 checkpoint" cmp "$T/r-ref/decoder.safetensors" "$d/decoder.safetensors"

# the same files as a decoder (stage 2 and --report read the parameters only) and in rhd-inspect
for name in nan_moment shape inf_param missing_param param_shape; do
    run rhd-fit --stage 2 --decoder "$T/cases/$name.safetensors" --data "$MINI" --avatar avatar_100 --steps 1 $TINY -o "$T/s2-$name.safetensors"
    if [ "$name" = nan_moment ] || [ "$name" = shape ]; then
        expect_rc 0 "stage 2 --decoder, checkpoint $name: the Adam moments are not read (only the parameters)"
    else
        expect_rc 1 "stage 2 --decoder, checkpoint $name"
        expect_err "cases/$name.safetensors" "names the file"
        check "no output for $name" test ! -e "$T/s2-$name.safetensors"
    fi
done
run rhd-inspect "$T/cases/nan_moment.safetensors"
expect_rc 1 "rhd-inspect: a NaN in a checkpoint fails the check"
expect_err "adam.v.color_net.1.weight" "names the tensor"
run rhd-inspect --allow-nonfinite --json "$T/cases/nan_moment.safetensors"
expect_rc 0 "rhd-inspect --allow-nonfinite shows it"
expect_out '"name":"adam.v.color_net.1.weight".*"nan":1' "counting one NaN"
# --report failing on its second avatar (a truncated triplane after a good one): exit 1 naming the
# file, and nothing leaked on that exit (checked by LeakSanitizer under make SAN=1 test)
mkdir -p "$T/rep"
cp "$T/run/triplanes/avatar_100.safetensors" "$T/rep/avatar_100.safetensors"
head -c 200 "$T/run/triplanes/avatar_100.safetensors" >"$T/rep/avatar_101.safetensors"
run rhd-fit --report --decoder "$T/run/decoder.safetensors" --triplanes "$T/rep" --data "$MINI" --grid-size 8 --max-steps 2 \
    --eval-views 100 --warmup 1 --contact-sheet "$T/rep.png"
expect_rc 1 "--report with a truncated triplane of the second avatar"
expect_err "rep/avatar_101.safetensors: .*truncated" "names the truncated triplane"
check "no leak reported on the error exit (LeakSanitizer under SAN=1)" test -z "$(printf '%s' "$err" | grep -i 'LeakSanitizer\|AddressSanitizer')"
check "no contact sheet written" test ! -e "$T/rep.png"
mkdir -p "$T/dirck/checkpoint.safetensors"
run rhd-fit $S1 --resume -o "$T/dirck"
expect_rc 1 "a directory named checkpoint.safetensors"
expect_err "checkpoint.safetensors: is a directory|checkpoint.safetensors.*directory" "says it is a directory"
done_testing
