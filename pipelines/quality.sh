#!/usr/bin/env bash
# pipelines/quality.sh: held-out quality of stage 2 against its cost, the table of tools/rhd-fit.md
# "Presets" (issue 15's measure: PSNR on views 100-119 of avatars stage 1 did not see).
#
# Stage 1: one decoder fitted on the first NAV avatars of DATA (joint: one interleaved group of
# all of them, the forgetting experiment's best method; S1_STEPS steps with S1_OPTS, by default
# the quality preset's sizes, on S1_THREADS threads).
# Stage 2: the next HELD avatars of DATA, which stage 1 did not see, fitted with that decoder
# frozen under each setting below; their PSNR on views 100-119 at the views' 128x128, as rhd-render
# computes it, and the wall time per avatar. Writes OUT/ and OUT/table.md; with --update-doc FILE
# replaces the block between "<!-- quality:begin -->" and "<!-- quality:end -->" of FILE.
#
#   pipelines/quality.sh [--table-only] [--update-doc tools/rhd-fit.md]      (make quality)
#   env: BIN DATA OUT NAV (8) HELD (3) S1_STEPS (4000) S1_OPTS (--preset quality) S1_THREADS (2)
#        THREADS (1 per stage-2 run) JOBS (2 stage-2 runs at a time)
#        REGIONS (quality: the setting whose error is split by region; empty: none) RHD_PY (numpy+Pillow)
#        BLOCK (quality: the doc block --update-doc replaces)
#   --table-only: no fitting, only the tables again from the results already in OUT
#        SETTINGS (of the names below; default: fast r64-1500 quality; a run adds its rows to the
#        table of OUT, whose other rows stay from earlier runs with the same stage 1)
# Settings (stage 2 options):
#   fast            --preset fast (3x16x32x32 triplane, 256 rays, 64 march steps, 300 steps)
#   r64-1500        --triplane-res 64 --rays 1024 --grid-size 64 --max-steps 128 --steps 1500
#   quality         --preset quality (3x16x64x64 at the decoder's channels, 1024 rays, grid 64,
#                   128 march steps, 4000 steps)
#   r128-quality    --preset quality --triplane-res 128
#   r128-8k         --preset quality --triplane-res 128 --steps 8000
set -euo pipefail
BIN=${BIN:-${RHD_BUILD:-build}/bin}
DATA=${DATA:-../shared/data/blender-avatars-dev}
OUT=${OUT:-${RHD_BUILD:-build}/quality}
NAV=${NAV:-8}
HELD=${HELD:-3}
S1_STEPS=${S1_STEPS:-4000}
S1_OPTS=${S1_OPTS:---preset quality}
S1_THREADS=${S1_THREADS:-2}
THREADS=${THREADS:-1}
JOBS=${JOBS:-2}
ALL_SETTINGS="fast r64-1500 quality r128-quality r128-8k"
SETTINGS=${SETTINGS:-fast r64-1500 quality}
REGIONS=${REGIONS-quality}
BLOCK=${BLOCK:-quality}
PY=${RHD_PY:-${RHD_BUILD:-build}/venv/bin/python}
. "$(dirname "$0")/lib.sh"
experiment_args quality.sh "$@"
dev_avatars quality.sh "$((NAV + HELD))" NAV+HELD
AV=("${ALL[@]:0:NAV}")
HO=("${ALL[@]:NAV:HELD}")
CSV=$(IFS=,; echo "${AV[*]}")
mkdir -p "$OUT"
echo "quality: stage 1 on ${AV[*]} ($S1_STEPS steps, joint); stage 2 on ${HO[*]} -> $OUT" >&2

opts_of() {
    case $1 in
        fast) echo "--preset fast" ;;
        r64-1500) echo "--triplane-res 64 --rays 1024 --grid-size 64 --max-steps 128 --steps 1500" ;;
        quality) echo "--preset quality" ;;
        r128-quality) echo "--preset quality --triplane-res 128" ;;
        r128-8k) echo "--preset quality --triplane-res 128 --steps 8000" ;;
        *) echo "quality.sh: error: unknown setting '$1', expected one of $ALL_SETTINGS" >&2; return 1 ;;
    esac
}
for s in $SETTINGS; do opts_of "$s" > /dev/null; done

DEC=$OUT/stage1/run/decoder.safetensors
if [ "$TABLE_ONLY" = 1 ] && [ ! -f "$DEC" ]; then
    echo "quality.sh: error: --table-only: $DEC: no such file, expected an earlier run in OUT=$OUT" >&2; exit 1
fi
if [ ! -f "$DEC" ]; then
    mkdir -p "$OUT/stage1"
    "$BIN/rhd-schedule" fit -q --avatars "$CSV" --rounds 1 --steps "$S1_STEPS" --order interleaved --group "$NAV" \
        --refit-steps 0 --iwc-weight 0 -o "$OUT/stage1/plan.json"
    t0=$(date +%s%N)
    # shellcheck disable=SC2086
    "$BIN/rhd-fit" --stage 1 --plan "$OUT/stage1/plan.json" --data "$DATA" $S1_OPTS --train-views 0-99 \
        --eval-views 100-119 --threads "$S1_THREADS" --force -q -o "$OUT/stage1/run" > "$OUT/stage1/stage1.jsonl"
    echo $(( ($(date +%s%N) - t0) / 1000000 )) > "$OUT/stage1/ms"
fi

run_one() { # setting avatar
    local s=$1 a=$2 d=$OUT/$1
    mkdir -p "$d"
    local t0; t0=$(date +%s%N)
    # shellcheck disable=SC2046
    "$BIN/rhd-fit" --stage 2 --decoder "$DEC" --data "$DATA" --avatar "$a" $(opts_of "$s") --train-views 0-99 \
        --eval-views 100-119 --threads "$THREADS" --force -q -o "$d/$a.safetensors" > "$d/$a.json" || true
    echo $(( ($(date +%s%N) - t0) / 1000000 )) > "$d/$a.ms"
    echo "quality: $s $a: $(cat "$d/$a.json")" >&2
}
export -f run_one opts_of
export BIN DATA OUT DEC THREADS JOBS ALL_SETTINGS
if [ "$TABLE_ONLY" = 0 ]; then
    for s in $SETTINGS; do for a in "${HO[@]}"; do echo "$s $a"; done; done | xargs -r -P "$JOBS" -L 1 bash -c 'run_one "$0" "$1"'
fi

CMD="pipelines/quality.sh (NAV=$NAV HELD=$HELD S1_STEPS=$S1_STEPS S1_OPTS='$S1_OPTS' S1_THREADS=$S1_THREADS THREADS=$THREADS JOBS=$JOBS)"
python3 - "$OUT" "$CMD" "$DATA" "$ALL_SETTINGS" "$S1_OPTS" "${HO[@]}" > "$OUT/table.md" <<'EOF'
import json, os, re, sys
out, cmd, data, settings, s1opts = sys.argv[1:6]
held = sys.argv[6:]
desc = {"fast": "`--preset fast`: 3x16x32x32, 256 rays, grid 32, 64 march steps, 300 steps",
        "r64-1500": "3x16x64x64, 1024 rays, grid 64, 128 march steps, 1500 steps",
        "quality": "`--preset quality`: 3x16x64x64, 1024 rays, grid 64, 128 march steps, 4000 steps",
        "r128-quality": "`--preset quality --triplane-res 128`: 3x16x128x128, the rest as quality",
        "r128-8k": "`--preset quality --triplane-res 128 --steps 8000`: 3x16x128x128, 8000 steps"}
# stage 2 fits planes of the decoder's channel count (stage 1's --triplane-channels; the presets' 16)
ch = re.search(r"--triplane-channels[ =](\d+)", s1opts)
desc = {k: v.replace("3x16x", "3x%sx" % (ch.group(1) if ch else "16")) for k, v in desc.items()}
s1 = [json.loads(l) for l in open(os.path.join(out, "stage1", "stage1.jsonl")) if l.strip()]
rep = [l for l in s1 if "report" in l][0]["report"]
print("| stage 2 setting | " + " | ".join(held) + " | mean | wall per avatar |")
print("|---|" + "---|" * (len(held) + 2))
for s in settings.split():
    d = os.path.join(out, s)
    if not os.path.isdir(d):
        continue
    cells, ps, secs = [], [], []
    for a in held:
        j = json.loads(open(os.path.join(d, a + ".json")).read().splitlines()[-1])
        ok = j["status"] == "ok"
        cells.append("%.2f" % j["psnr"] if ok else j["status"])
        if ok:
            ps.append(j["psnr"])
        secs.append(float(open(os.path.join(d, a + ".ms")).read()) / 1000)
    mean = "**%.2f**" % (sum(ps) / len(ps)) if len(ps) == len(held) else "-"
    print("| %s | %s | %s | %.0f s |" % (desc[s], " | ".join(cells), mean, sum(secs) / len(secs)))
print()
print("PSNR (dB) on views 100-119 (128x128) of avatars stage 1 did not see, stage 2 with the decoder frozen. "
      "The decoder: stage 1 joint on %d avatars (%s .. %s), `%s`, one interleaved group, %s in %.0f s (mean %.2f dB on "
      "their own views 100-119). Data: %s. Stage 2: %s thread(s) per run, %s run(s) at a time on the 2-core machine. "
      "Generated by `%s`." % (len(rep["psnr"]), min(rep["psnr"]), max(rep["psnr"]), s1opts,
                              "%d steps" % json.load(open(os.path.join(out, "stage1", "plan.json")))["entries"][0]["steps"],
                              float(open(os.path.join(out, "stage1", "ms")).read()) / 1000, rep["mean"], data,
                              os.environ["THREADS"], os.environ["JOBS"], cmd))
EOF
# where the error of the REGIONS setting lies: its triplanes rendered by rhd-render on the same views
# (the stage-2 evaluation's grid and march), split by the ground truth's alpha (error_regions.py)
if [ -n "$REGIONS" ] && [ -d "$OUT/$REGIONS" ]; then
    args=()
    for a in "${HO[@]}"; do
        # shellcheck disable=SC2046
        march="--grid-size 64 --max-steps 128"   # the presets' (fast: 32 and 64)
        [ "$REGIONS" = fast ] && march="--grid-size 32 --max-steps 64"
        # shellcheck disable=SC2086
        "$BIN/rhd-render" --decoder "$DEC" --data "$DATA/$a" --views 100-119 $march --threads 2 -q --force \
            -o "$OUT/regions/$a" "$OUT/$REGIONS/$a.safetensors" > /dev/null
        args+=("$a:$DATA/$a:$OUT/regions/$a:100-119")
    done
    { echo; echo "Where the squared error of the \`$REGIONS\` setting lies (views 100-119 pooled; regions by the ground truth's alpha:"
      echo "background < 0.01, fractional 0.01-0.99, the silhouette's sub-pixel hair strands, opaque the rest; each cell:"
      echo "share of the pixels, share of the squared error, PSNR within the region, the whole image's PSNR were that region"
      echo "perfect). Generated by the same script (pipelines/error_regions.py)."; echo
      "$PY" "$(dirname "$0")/error_regions.py" --markdown "${args[@]}"; } >> "$OUT/table.md"
fi
cat "$OUT/table.md"
[ -z "$DOC" ] || python3 "$(dirname "$0")/doc_block.py" "$DOC" "$BLOCK" "$OUT/table.md" quality.sh
