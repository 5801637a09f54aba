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
# Methods (ROUNDS rounds of STEPS steps per avatar visit, i.e. ROUNDS*STEPS steps per avatar); the
# first six use the original's plan (--round-lr original --refit-steps 0), the last three the
# refit round (rhd-schedule fit's default: every round at lr0, then each avatar alone for STEPS
# steps with the decoder frozen; ROUNDS-1 training rounds, so that the cost is the same):
#   sequential        one visit of ROUNDS*STEPS steps per avatar, no IWC
#   replay            ROUNDS round-robin rounds of STEPS steps, no IWC
#   replay+iwc-orig   the same with the original's IWC: weight 0.1, last-batch Fisher of the full
#                     loss, each avatar's own state (--iwc-fisher original --iwc-scope own)
#   replay+iwc-norm   the same with the normalized Fisher (16 batches, each tensor mean 1) and
#                     every stored state (--iwc-fisher normalized --iwc-scope all), weight W_NORM
#   interleaved-2     ROUNDS rounds of groups of 2 avatars sharing each step's rays (2*STEPS steps)
#   joint             one group of all NAV avatars, one visit of NAV*ROUNDS*STEPS steps
#   sequential+refit  one visit of (ROUNDS-1)*STEPS steps per avatar, then the refit round
#   replay+refit      ROUNDS-1 round-robin rounds of STEPS steps, then the refit round (the default plan)
#   interleaved-4+refit  ROUNDS-1 rounds of groups of 4 avatars (4*STEPS steps), then the refit round
set -euo pipefail
BIN=${BIN:-${RHD_BUILD:-build}/bin}
DATA=${DATA:-../shared/data/blender-avatars-dev}
OUT=${OUT:-build/forgetting}
NAV=${NAV:-8}
ROUNDS=${ROUNDS:-4}
STEPS=${STEPS:-30}
W_NORM=${W_NORM:-0.01}
STAGE2_STEPS=${STAGE2_STEPS:-100}
THREADS=${THREADS:-1}
SIZE=${SIZE:---triplane-res 32 --triplane-channels 16 --grid-size 32 --rays 256 --max-steps 64}
ALL_METHODS="sequential replay replay+iwc-orig replay+iwc-norm interleaved-2 joint sequential+refit replay+refit interleaved-4+refit"
METHODS=${METHODS:-$ALL_METHODS}
. "$(dirname "$0")/lib.sh"
experiment_args forgetting.sh "$@"
dev_avatars forgetting.sh "$((NAV + 1))" NAV+1
AV=("${ALL[@]:0:NAV}")
HELD=${ALL[$NAV]}
CSV=$(IFS=,; echo "${AV[*]}")
TOTAL=$((NAV * ROUNDS * STEPS))
EVAL=${EVAL:-100-119}
COMMON="--data $DATA $SIZE --train-views 0-99 --eval-views $EVAL --threads $THREADS"
echo "forgetting: ${#ALL[@]} avatars in $DATA; stage 1 on ${AV[*]}, stage 2 on $HELD; $TOTAL steps per method -> $OUT"
mkdir -p "$OUT"

SCHED_COMMON="--avatars $CSV --decoder-decay-steps $TOTAL -q"
ORIG="--round-lr original --refit-steps 0"
method() { # name, schedule options, fit options
    local name=$1 sched=$2 fitopt=$3 d=$OUT/$1
    [ "$TABLE_ONLY" = 0 ] && [[ " $METHODS " == *" $name "* ]] || return 0
    mkdir -p "$d"
    # shellcheck disable=SC2086
    "$BIN/rhd-schedule" fit $SCHED_COMMON $sched -o "$d/plan.json"
    local t0; t0=$(date +%s%N)
    # shellcheck disable=SC2086
    "$BIN/rhd-fit" --stage 1 --plan "$d/plan.json" $COMMON $fitopt --force -q -o "$d/run" > "$d/stage1.jsonl"
    echo $(( ($(date +%s%N) - t0) / 1000000 )) > "$d/stage1.ms"
    rm -f "$d/stage2.json"
    if [ "$STAGE2_STEPS" -gt 0 ]; then
        # shellcheck disable=SC2086
        "$BIN/rhd-fit" --stage 2 --decoder "$d/run/decoder.safetensors" --avatar "$HELD" --steps "$STAGE2_STEPS" \
            $COMMON --force -q -o "$d/stage2_$HELD.safetensors" > "$d/stage2.json" || true
    fi
    echo "forgetting: $name: stage 1 $(cat "$d/stage1.ms") ms; $(tail -n 1 "$d/stage1.jsonl")"
}
method sequential "$ORIG --rounds 1 --steps $((ROUNDS * STEPS)) --iwc-weight 0" ""
method replay "$ORIG --rounds $ROUNDS --steps $STEPS --iwc-weight 0" ""
method replay+iwc-orig "$ORIG --rounds $ROUNDS --steps $STEPS --iwc-weight 0.1" "--iwc-fisher original --iwc-scope own"
method replay+iwc-norm "$ORIG --rounds $ROUNDS --steps $STEPS --iwc-weight $W_NORM" "--iwc-fisher normalized --iwc-scope all"
method interleaved-2 "$ORIG --rounds $ROUNDS --steps $((2 * STEPS)) --order interleaved --group 2 --iwc-weight 0" ""
method joint "$ORIG --rounds 1 --steps $TOTAL --order interleaved --group $NAV --iwc-weight 0" ""
method sequential+refit "--rounds 1 --steps $(((ROUNDS - 1) * STEPS)) --refit-steps $STEPS --iwc-weight 0" ""
method replay+refit "--rounds $((ROUNDS - 1)) --steps $STEPS --iwc-weight 0" ""
method interleaved-4+refit "--rounds $((ROUNDS - 1)) --steps $((4 * STEPS)) --refit-steps $STEPS --order interleaved --group 4 --iwc-weight 0" ""

CMD="pipelines/forgetting.sh (NAV=$NAV ROUNDS=$ROUNDS STEPS=$STEPS W_NORM=$W_NORM STAGE2_STEPS=$STAGE2_STEPS THREADS=$THREADS)"
python3 - "$OUT" "$CMD" "$SIZE" "$DATA" "${#ALL[@]}" "$HELD" "$STAGE2_STEPS" "$ALL_METHODS" "${AV[@]}" > "$OUT/table.md" <<'EOF'
import json, os, sys
out, cmd, size, data, nall, held, s2steps, methods = sys.argv[1:9]
avs = sys.argv[9:]
rows = []
for m in methods.split():
    if not os.path.exists(os.path.join(out, m, "stage1.ms")):
        continue  # not run (METHODS)
    plan = json.load(open(os.path.join(out, m, "plan.json")))
    trains = [e["decoder_lr"] > 0 for e in plan["entries"]]
    last, trained, final = {}, {}, {}
    for line in open(os.path.join(out, m, "stage1.jsonl")):
        j = json.loads(line)
        if "report" in j:
            final = j["report"]["psnr"]
        elif "avatar" in j:
            last[j["avatar"]] = j["psnr"]  # the last entry that visited it
            if trains[j["entry"]]:
                trained[j["avatar"]] = j["psnr"]  # the last one that also trained the decoder
    secs = float(open(os.path.join(out, m, "stage1.ms")).read()) / 1000
    s2 = None
    p = os.path.join(out, m, "stage2.json")
    if os.path.exists(p) and os.path.getsize(p):
        j = json.loads(open(p).read().splitlines()[-1])
        s2 = "%.2f" % j["psnr"] if j["status"] == "ok" else "collapsed"
    rows.append((m, last, trained, final, secs, s2))
s2on = s2steps != "0"
s2h = " stage 2 %s |" % held if s2on else ""
print("| method | " + " | ".join(avs) + " | mean final | worst loss | mean loss | decoder forgetting (mean, worst) |%s stage-1 wall |" % s2h)
print("|---|" + "---|" * (len(avs) + 5 + s2on))
for m, last, trained, final, secs, s2 in rows:
    loss = {a: last[a] - final[a] for a in avs}
    forget = {a: trained[a] - final[a] for a in avs}
    cells = ["%.2f (%.2f)" % (final[a], last[a]) for a in avs]
    s2c = " %s |" % (s2 or "-") if s2on else ""
    print("| %s | %s | **%.2f** | %.2f | %.2f | %.2f, %.2f |%s %.0f s |" % (
        m, " | ".join(cells), sum(final.values()) / len(avs), max(loss.values()), sum(loss.values()) / len(avs),
        sum(forget.values()) / len(avs), max(forget.values()), s2c, secs))
print()
s2t = ("Stage 2: %s (held out, %s steps) with the method's decoder frozen. " % (held, s2steps)) if s2on else ""
print("Cells: PSNR (dB) on the held-out views with the final decoder (after the avatar's last visit). "
      "Loss = after its last visit - final (what an avatar loses once it is no longer visited). "
      "Decoder forgetting = after its last visit that trained the decoder - with the final decoder, before any refit "
      "(without a refit round, the loss; with one, negative where the refit gained more than the decoder forgot). "
      + s2t +
      "Data: the first %d of the %s avatars in %s. Sizes: `%s`, training views 0-99. "
      "Wall times measured by the script (compare them with each other only). "
      "Generated by `%s`." % (len(avs), nall, data, size, cmd))
EOF
cat "$OUT/table.md"
[ -z "$DOC" ] || python3 "$(dirname "$0")/doc_block.py" "$DOC" forgetting "$OUT/table.md" forgetting.sh
