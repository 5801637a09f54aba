#!/usr/bin/env bash
# pipelines/forgetting.sh: the forgetting experiment of tools/rhd-fit.md, from scratch.
#
# Stage 1 on the first NAV avatars of DATA with each method below (the same sizes, the same number
# of optimiser steps and rays in all, the same decoder lr schedule), then:
#   - per avatar, the PSNR on held-out views 100-119 right after its last visit (the entry's JSON
#     line: a fresh warmed grid, as rhd-render) and with the final decoder (the forgetting report);
#   - stage 2 of one held-out avatar (avatar NAV+1 of DATA, not in stage 1) with each method's
#     decoder frozen (STAGE2_STEPS steps; 0 skips it).
# Writes OUT/<method>/ (run, plan, JSON lines, wall time) and OUT/table.md; with --update-doc FILE
# replaces the block between "<!-- forgetting:begin -->" and "<!-- forgetting:end -->" of FILE by
# the table, the command and the sizes (tools/rhd-fit.md is written this way, never by hand).
#
#   pipelines/forgetting.sh [--update-doc tools/rhd-fit.md]      (make forgetting)
#   env: BIN DATA OUT NAV ROUNDS STEPS W_NORM STAGE2_STEPS THREADS SIZE EVAL (views, 100-119),
#        METHODS (a subset, e.g. "sequential joint": run only these; --table-only then tabulates
#        every method found in OUT, so that two subsets can run side by side into one OUT)
# Methods (ROUNDS rounds of STEPS steps per avatar visit, i.e. ROUNDS*STEPS steps per avatar):
#   sequential        one visit of ROUNDS*STEPS steps per avatar, no IWC
#   replay            ROUNDS round-robin rounds of STEPS steps, no IWC
#   replay+iwc-orig   the same with the original's IWC: weight 0.1, last-batch Fisher of the full
#                     loss, each avatar's own state (--iwc-fisher original --iwc-scope own)
#   replay+iwc-norm   the same with the normalized Fisher (16 batches, each tensor mean 1) and
#                     every stored state (--iwc-fisher normalized --iwc-scope all), weight W_NORM
#   interleaved-2     ROUNDS rounds of groups of 2 avatars sharing each step's rays (2*STEPS steps)
#   joint             one group of all NAV avatars, one visit of NAV*ROUNDS*STEPS steps
set -euo pipefail
BIN=${BIN:-${RHD_BUILD:-build}/bin}
DATA=${DATA:-../shared/data/blender-avatars-dev}
OUT=${OUT:-build/forgetting}
NAV=${NAV:-4}
ROUNDS=${ROUNDS:-4}
STEPS=${STEPS:-30}
W_NORM=${W_NORM:-0.01}
STAGE2_STEPS=${STAGE2_STEPS:-100}
THREADS=${THREADS:-1}
SIZE=${SIZE:---triplane-res 32 --triplane-channels 16 --grid-size 32 --rays 256 --max-steps 64}
METHODS=${METHODS:-sequential replay replay+iwc-orig replay+iwc-norm interleaved-2 joint}
DOC= TABLE_ONLY=0
while [ $# -gt 0 ]; do
    case $1 in
        --update-doc) DOC=${2:?--update-doc needs a file}; shift 2 ;;
        --table-only) TABLE_ONLY=1; shift ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "forgetting.sh: error: unexpected argument '$1', expected --update-doc FILE or --table-only" >&2; exit 2 ;;
    esac
done
[ -d "$DATA" ] || { echo "forgetting.sh: error: DATA=$DATA: no such directory, expected the dev set" >&2; exit 1; }
mapfile -t ALL < <(for d in "$DATA"/*/; do [ -f "$d/metadata_000000.json" ] && basename "$d"; done | sort)
if [ "${#ALL[@]}" -lt $((NAV + 1)) ]; then
    echo "forgetting.sh: error: $DATA holds ${#ALL[@]} avatars, expected at least NAV+1 = $((NAV + 1))" >&2; exit 1
fi
AV=("${ALL[@]:0:NAV}")
HELD=${ALL[$NAV]}
CSV=$(IFS=,; echo "${AV[*]}")
TOTAL=$((NAV * ROUNDS * STEPS))
EVAL=${EVAL:-100-119}
COMMON="--data $DATA $SIZE --train-views 0-99 --eval-views $EVAL --threads $THREADS"
echo "forgetting: ${#ALL[@]} avatars in $DATA; stage 1 on ${AV[*]}, stage 2 on $HELD; $TOTAL steps per method -> $OUT"
mkdir -p "$OUT"

SCHED_COMMON="--avatars $CSV --decoder-decay-steps $TOTAL -q"
method() { # name, schedule options, fit options
    local name=$1 sched=$2 fitopt=$3 d=$OUT/$1
    [ "$TABLE_ONLY" = 0 ] && [[ " $METHODS " == *" $name "* ]] || return 0
    mkdir -p "$d"
    # shellcheck disable=SC2086
    "$BIN/rhd-schedule" fit $SCHED_COMMON $sched -o "$d/plan.json"
    local t0; t0=$(date +%s%N)
    # shellcheck disable=SC2086
    "$BIN/rhd-fit" --stage 1 --plan "$d/plan.json" $COMMON $fitopt --entry-eval last --force -q -o "$d/run" > "$d/stage1.jsonl"
    echo $(( ($(date +%s%N) - t0) / 1000000 )) > "$d/stage1.ms"
    rm -f "$d/stage2.json"
    if [ "$STAGE2_STEPS" -gt 0 ]; then
        # shellcheck disable=SC2086
        "$BIN/rhd-fit" --stage 2 --decoder "$d/run/decoder.safetensors" --avatar "$HELD" --steps "$STAGE2_STEPS" \
            $COMMON --force -q -o "$d/stage2_$HELD.safetensors" > "$d/stage2.json" || true
    fi
    echo "forgetting: $name: stage 1 $(cat "$d/stage1.ms") ms; $(tail -n 1 "$d/stage1.jsonl")"
}
method sequential "--rounds 1 --steps $((ROUNDS * STEPS)) --iwc-weight 0" ""
method replay "--rounds $ROUNDS --steps $STEPS --iwc-weight 0" ""
method replay+iwc-orig "--rounds $ROUNDS --steps $STEPS --iwc-weight 0.1" "--iwc-fisher original --iwc-scope own"
method replay+iwc-norm "--rounds $ROUNDS --steps $STEPS --iwc-weight $W_NORM" "--iwc-fisher normalized --iwc-scope all"
method interleaved-2 "--rounds $ROUNDS --steps $((2 * STEPS)) --order interleaved --group 2 --iwc-weight 0" ""
method joint "--rounds 1 --steps $TOTAL --order interleaved --group $NAV --iwc-weight 0" ""

CMD="pipelines/forgetting.sh (NAV=$NAV ROUNDS=$ROUNDS STEPS=$STEPS W_NORM=$W_NORM STAGE2_STEPS=$STAGE2_STEPS THREADS=$THREADS)"
python3 - "$OUT" "$CMD" "$SIZE" "$DATA" "${#ALL[@]}" "$HELD" "$STAGE2_STEPS" "${AV[@]}" > "$OUT/table.md" <<'EOF'
import json, os, sys
out, cmd, size, data, nall, held, s2steps = sys.argv[1:8]
avs = sys.argv[8:]
methods = ["sequential", "replay", "replay+iwc-orig", "replay+iwc-norm", "interleaved-2", "joint"]
rows = []
for m in methods:
    if not os.path.exists(os.path.join(out, m, "stage1.ms")):
        continue  # not run (METHODS)
    last, final = {}, {}
    for line in open(os.path.join(out, m, "stage1.jsonl")):
        j = json.loads(line)
        if "report" in j:
            final = j["report"]["psnr"]
        elif "avatar" in j:
            last[j["avatar"]] = j["psnr"]  # the last entry that visited it
    secs = float(open(os.path.join(out, m, "stage1.ms")).read()) / 1000
    s2 = None
    p = os.path.join(out, m, "stage2.json")
    if os.path.exists(p) and os.path.getsize(p):
        j = json.loads(open(p).read().splitlines()[-1])
        s2 = "%.2f" % j["psnr"] if j["status"] == "ok" else "collapsed"
    loss = {a: last[a] - final[a] for a in avs}
    rows.append((m, last, final, loss, secs, s2))
s2on = s2steps != "0"
s2h = " stage 2 %s |" % held if s2on else ""
print("| method | " + " | ".join(avs) + " | mean final | mean loss | %s's loss | worst loss |%s stage-1 wall |" % (avs[0], s2h))
print("|---|" + "---|" * (len(avs) + 5 + s2on))
for m, last, final, loss, secs, s2 in rows:
    cells = ["%.2f (%.2f)" % (final[a], last[a]) for a in avs]
    mean_f = sum(final[a] for a in avs) / len(avs)
    mean_l = sum(loss.values()) / len(avs)
    s2c = " %s |" % (s2 or "-") if s2on else ""
    print("| %s | %s | **%.2f** | %.2f | %.2f | %.2f |%s %.0f s |" % (
        m, " | ".join(cells), mean_f, mean_l, loss[avs[0]], max(loss.values()), s2c, secs))
print()
s2t = ("Stage 2: %s (held out, %s steps) with the method's decoder frozen. " % (held, s2steps)) if s2on else ""
print("Cells: PSNR (dB) on the held-out views with the final decoder (after the avatar's last visit). "
      "Loss = after its last visit - final. " + s2t + 
      "Data: the first %d of the %s avatars in %s. Sizes: `%s`, training views 0-99. "
      "Wall times measured by the script (`nice`d, on a shared machine: compare them with each other only). "
      "Generated by `%s`." % (len(avs), nall, data, size, cmd))
EOF
cat "$OUT/table.md"
if [ -n "$DOC" ]; then
    python3 - "$DOC" "$OUT/table.md" <<'EOF'
import sys
doc, table = sys.argv[1], open(sys.argv[2]).read()
s = open(doc).read()
b, e = "<!-- forgetting:begin -->", "<!-- forgetting:end -->"
if b not in s or e not in s:
    sys.exit("forgetting.sh: error: %s: no %s ... %s block, expected one to replace" % (doc, b, e))
i, j = s.index(b) + len(b), s.index(e)
open(doc + ".tmp", "w").write(s[:i] + "\n" + table + s[j:])
import os; os.replace(doc + ".tmp", doc)
print("forgetting.sh: updated %s" % doc, file=sys.stderr)
EOF
fi
