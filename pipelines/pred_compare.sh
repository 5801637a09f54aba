#!/usr/bin/env bash
# pipelines/pred_compare.sh: what the base model's prediction target (rhd-train --pred) does to a
# small model trained on a few avatars: the table of tools/rhd-train.md "Prediction target".
#
# Takes a finished demo run (DEMO=build/demo: make demo, which it runs first when missing): its two
# fitted avatars, portrait features, network config and training options. For each --pred in PREDS
# it trains the base model with the demo's options (only --pred differs), samples a triplane from
# each training portrait with the demo's sampling options, and renders every sample against the
# held-out views of every avatar with the demo's render options. A sample that reproduces its own
# avatar scores high against it and low against the other. Writes OUT/<pred>/ (run, samples) and
# OUT/table.md; with --update-doc FILE replaces (pipelines/doc_block.py) the block between "<!-- pred:begin -->" and
# "<!-- pred:end -->" of FILE by the table (tools/rhd-train.md is written this way, never by hand).
#
#   pipelines/pred_compare.sh [--update-doc tools/rhd-train.md]      (make pred-compare)
# With a Python that has PyTorch (PY: the test venv's by default), also the rms error of each model's
# x0 estimate along the chain under the portrait's own condition and another's (tests/ref/probe_x0.py).
#   env: BIN DEMO OUT PREDS (default "eps xstart v") DATA (the demo's data, tests/data/mini) PY
set -euo pipefail
BIN=${BIN:-${RHD_BUILD:-build}/bin}
DEMO=${DEMO:-${RHD_BUILD:-build}/demo}
OUT=${OUT:-${RHD_BUILD:-build}/pred-compare}
PREDS=${PREDS:-eps xstart v}
DATA=${DATA:-tests/data/mini}
PY=${PY:-${RHD_BUILD:-build}/venv/bin/python}
"$PY" -c 'import torch' 2>/dev/null || PY=
DOC=
while [ $# -gt 0 ]; do
    case $1 in
        --update-doc) DOC=${2:?--update-doc needs a file}; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "pred_compare.sh: error: unexpected argument '$1', expected --update-doc FILE" >&2; exit 2 ;;
    esac
done
if [ ! -f "$DEMO/metrics.json" ]; then
    echo "pred_compare: $DEMO/metrics.json missing: making the demo first" >&2
    DEMO_OUT=$DEMO RHD_BUILD=${RHD_BUILD:-build} bash pipelines/demo.sh >&2
fi
O=$DEMO/.opts
for f in "$O/train.txt" "$O/sample.txt" "$O/render.txt" "$O/model.json" "$DEMO/pairs.txt" "$DEMO/fit/decoder.safetensors"; do
    [ -f "$f" ] || { echo "pred_compare.sh: error: $f missing, expected a finished demo run in DEMO=$DEMO" >&2; exit 1; }
done
AV=(); while read -r tri feat; do AV+=("$(basename "$feat" .safetensors)"); done < <(grep -v '^#' "$DEMO/pairs.txt")
TRAIN=$(sed -e 's/--pred [a-z]*//' "$O/train.txt")
SAMPLE=$(cat "$O/sample.txt") RENDER=$(cat "$O/render.txt")
mkdir -p "$OUT"
psnr() { # sample triplane, ground-truth avatar -> mean PSNR on the demo's views
    "$BIN/rhd-render" -q --decoder "$DEMO/fit/decoder.safetensors" --data "$DATA/$2" $RENDER --metrics --no-images "$1" |
        tr -d '\n' | sed -n 's/.*"mean": *{"psnr": *\([0-9.eE+-]*\).*/\1/p' | awk '{printf "%.2f", $1}'
}
rows=() probe=()
for a in "${AV[@]}"; do   # the upper bound: the fitted triplane itself
    r="| fitted triplane (upper bound) | $a |"
    for g in "${AV[@]}"; do r="$r $(psnr "$DEMO/fit/triplanes/$a.safetensors" "$g") |"; done
    rows+=("$r |")
done
if [ -n "$PY" ]; then   # the fits at the model's size (2 x 2 means, rhd-train's area filter): the model's ceiling
    R=$(tr -d ' \n' < "$O/model.json" | sed -n 's/.*"image_size":\([0-9]*\).*/\1/p')
    mkdir -p "$OUT/fit-at-model-size"
    for a in "${AV[@]}"; do
        "$PY" - "$DEMO/fit/triplanes/$a.safetensors" "$OUT/fit-at-model-size/$a.safetensors" "$R" <<'PYEOF'
import sys
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file
src, dst, R = sys.argv[1], sys.argv[2], int(sys.argv[3])
f = safe_open(src, "np")
x = f.get_tensor("planes").astype(np.float64)
k = x.shape[-1] // R
y = x.reshape(3, x.shape[1], R, k, R, k).mean(axis=(3, 5)).astype(np.float32)
save_file({"planes": np.ascontiguousarray(y)}, dst, metadata=f.metadata())
PYEOF
        r="| fitted triplane at the model's ${R} x ${R} (the model's ceiling) | $a |"
        for g in "${AV[@]}"; do r="$r $(psnr "$OUT/fit-at-model-size/$a.safetensors" "$g") |"; done
        rows+=("$r |")
    done
fi
for p in $PREDS; do
    d=$OUT/$p
    start=$(date +%s)
    # shellcheck disable=SC2086
    "$BIN/rhd-train" -q --model base --model-config "$O/model.json" --data "$DEMO/pairs.txt" $TRAIN --pred "$p" --force -o "$d/run" > /dev/null
    secs=$(( $(date +%s) - start ))
    # shellcheck disable=SC2086
    "$BIN/rhd-sample" -q --base "$d/run/checkpoint.safetensors" $SAMPLE --force -o "$d/samples" \
        $(for a in "${AV[@]}"; do printf '%s ' "$DEMO/features/$a.safetensors"; done) > /dev/null
    for a in "${AV[@]}"; do
        r="| \`--pred $p\` sample | $a |"
        for g in "${AV[@]}"; do r="$r $(psnr "$d/samples/$a.safetensors" "$g") |"; done
        rows+=("$r ${secs} s |")
    done
    [ -z "$PY" ] || probe+=("$("$PY" tests/ref/probe_x0.py "$d/run/checkpoint.safetensors" "$(sed -n 's/.*--weights \([a-z]*\).*/\1/p' <<< "$SAMPLE")" "$DEMO/pairs.txt" "\`--pred $p\`")")
    echo "pred_compare: --pred $p done (${secs} s of training)" >&2
done
{
    hdr="| triplane | from portrait of |"; sep="|---|---|"
    for g in "${AV[@]}"; do hdr="$hdr PSNR vs $g (dB) |"; sep="$sep---|"; done
    echo "$hdr training wall |"; echo "$sep---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Made by \`make pred-compare\` (pipelines/pred_compare.sh) on $(date -u +%Y-%m-%d), $(nproc) cores: the demo's"
    echo "fits, features, network ($(tr -d '\n' < "$O/model.json")) and training options ($(tr -d '\n' < "$O/train.txt" | sed 's/--pred [a-z]* //')),"
    echo "only \`--pred\` changed; sampling \`$SAMPLE\`; PSNR of the render against the ground truth of the"
    echo "held-out views ($RENDER)."
    if [ ${#probe[@]} -gt 0 ]; then
        echo
        echo "The rms error of each model's x0 estimate (clipped) against the avatar's own x0 at the model's"
        echo "size, under the portrait's own condition / the other portrait's, and the rms distance between the two"
        echo "avatars' x0, what an estimate that ignores the portrait costs (tests/ref/probe_x0.py, the sampled weights):"
        echo
        "$PY" tests/ref/probe_x0.py --header
        printf '%s\n' "${probe[@]}"
    fi
} > "$OUT/table.md"
cat "$OUT/table.md"
[ -z "$DOC" ] || python3 "$(dirname "$0")/doc_block.py" "$DOC" pred "$OUT/table.md" pred_compare.sh
