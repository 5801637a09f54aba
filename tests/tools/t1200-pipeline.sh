#!/usr/bin/env bash
# tests/tools/t1200-pipeline.sh: pipelines/rodinhd.mk on a copy of tests/data/mini at tiny sizes
# (16 x 16 x 8 triplanes, a few fitting and training steps, one held-out avatar, avatar_101):
#   1. make -n prints the plan (every tool) and runs nothing;
#   2. a stage-1 run killed part way (RHD_CRASH_AFTER, the run's crash hook, after the first of
#      two entries is committed) is resumed by the next make: its stdout starts at entry 1;
#   3. the whole pipeline: every target made (features, plan, fit, stage 2, pairs, checkpoint,
#      sample, renders, contact sheets, turntable frames, mesh, report), metrics finite;
#   4. a rerun makes nothing (make -q);
#   5. touching avatar_101's portrait re-makes its features, stage-2 fit, sample, renders and
#      the report only (make -n): not stage 1, not the training, not avatar_100's features;
#   6. changing SAMPLE_OPTS re-makes the sample and what reads it only, rewrites only the sample
#      stamp (.opts/sample.txt), and a rerun with the new option makes nothing.
. "$RHD_ROOT/tests/tools/lib.sh"
cp -r "$RHD_ROOT/tests/data/mini" "$T/data"
O=$T/o
MK=(make --no-print-directory -f "$RHD_ROOT/pipelines/rodinhd.mk" RHD_BIN="$RHD_BIN" DATA="$T/data" OUT="$O"
    HELDOUT=avatar_101 THREADS=1 PYTHON=python3
    PLAN_OPTS="--rounds 2 --steps 4" SIZE_OPTS="--triplane-res 16 --triplane-channels 8"
    FIT_OPTS="--rays 128 --grid-size 16 --max-steps 32 --train-views 0-23 --eval-views 100"
    STAGE2_OPTS="--steps 4 --rays 128 --grid-size 16 --max-steps 32 --train-views 0-23 --eval-views 100"
    MODEL_CONFIG='{"in_channels": 8, "out_channels": 16, "image_size": 16, "latent_size": 8, "patch": 8, "model_channels": 16, "channel_mult": [1, 2], "groups": 8, "num_head_channels": 16, "attention_resolutions": [8]}'
    TRAIN_OPTS="--batch 1 --steps 2 --save-every 1 --log-every 1"
    RENDER_OPTS="--grid-size 16 --max-steps 32 --downscale 4" EVAL_VIEWS=100 FRAMES=2 MESH_RES=16 MESH_THRESHOLD=1e-4)
cd "$T"
# make with the variables above; stdout in $out and $T/mk.out, stderr in $err
mk() { out=$("${MK[@]}" "$@" 2>"$T/.stderr") && rc=0 || rc=$?; err=$(cat "$T/.stderr"); printf '%s\n' "$out" > "$T/mk.out"; }

# ---- 1. the plan ----
mk -n
expect_rc 0 "make -n"
for w in rhd-encode rhd-schedule "rhd-fit -q --stage 1" "rhd-fit -q --stage 2" rhd-train rhd-sample "rhd-render.*--metrics" "--orbit" "--mesh" report.py; do
    expect_out "$w" "make -n shows $w"
done
check "make -n ran nothing (no features/, no plan.json)" test ! -e "$O/features" -a ! -e "$O/plan.json"

# ---- 2. a killed stage 1 resumes ----
RHD_CRASH_AFTER=10 "${MK[@]}" fit > crash.out 2>&1
check "stage 1 killed at its 10th file operation: make fails" test $? -ne 0
check "killed: a committed checkpoint, no stage1.jsonl" test -f "$O/fit/checkpoint.safetensors" -a ! -e "$O/fit/stage1.jsonl"

# ---- 3. everything ----
start=$(date +%s)
mk -j2
expect_rc 0 "make -j2: the whole pipeline ($(( $(date +%s) - start )) s)"
[ "$rc" = 0 ] || printf '#   %s\n' "$err" | tail -20
check "the resumed stage 1 printed entries from 1 on (not 0): it continued the killed run" \
    bash -c "! grep -q '\"entry\": 0' '$O/fit/stage1.jsonl' && grep -q '\"entry\": 1' '$O/fit/stage1.jsonl'"
missing=""
for f in features/avatar_100.safetensors features/avatar_101.safetensors plan.json fit/stage1.jsonl \
         fit/decoder.safetensors fit/triplanes/avatar_100.safetensors stage2/avatar_101.safetensors pairs.txt \
         base/train.json base/checkpoint.safetensors base/train_log.jsonl base/loss.png samples/avatar_101.safetensors \
         eval/sample/avatar_101/metrics.json eval/sample/avatar_101/contact_sheet.png eval/fitted/avatar_101/metrics.json \
         eval/fitted/avatar_101/contact_sheet.png turntables/avatar_101/rgb_0000.png turntables/avatar_101/rgb_0001.png \
         meshes/avatar_101.ply report.md report.html metrics.json; do
    [ -s "$O/$f" ] || missing="$missing $f"
done
check "every target made (missing:${missing:- none})" test -z "$missing"
check "pairs.txt: the training avatar only, paths relative to OUT" \
    test "$(cat "$O/pairs.txt")" = "fit/triplanes/avatar_100.safetensors features/avatar_100.safetensors"
check "metrics.json: finite PSNR of the sample and of the fitted triplane of avatar_101" python3 -c "
import json, math; m = json.load(open('$O/metrics.json'))['avatars']['avatar_101']
print(m); assert m['held_out'] and all(math.isfinite(m[k]['psnr']) and m[k]['psnr'] > 5 for k in ('sample', 'fitted'))"
check "report.md: both contact sheets and the loss curve linked" \
    bash -c "grep -q 'eval/sample/avatar_101/contact_sheet.png' '$O/report.md' && grep -q 'base/loss.png' '$O/report.md'"

# ---- 4. nothing to do ----
mk -q
expect_rc 0 "make -q after the run: up to date"

# ---- 5. touching an input ----
touch "$T/data/avatar_101/img_proc_fg_000000.png"
mk -n
check "touched avatar_101's portrait: its features re-made" grep -q "features/avatar_101.safetensors $T/data/avatar_101/img_proc_fg_000000.png" "$T/mk.out"
check "... its stage-2 fit, sample and renders re-made" \
    bash -c "grep -q -- '--stage 2' '$T/mk.out' && grep -q rhd-sample '$T/mk.out' && grep -q -- '--orbit' '$T/mk.out'"
check "... not stage 1, not the training, not avatar_100's features" \
    bash -c "! grep -q -- '--stage 1' '$T/mk.out' && ! grep -q rhd-train '$T/mk.out' && ! grep -q 'features/avatar_100' '$T/mk.out'"
mk -j2
expect_rc 0 "the re-make after the touch"

# ---- 6. changing an option ----
fit_stamp=$(stat -c %Y.%y "$O/.opts/fit.txt")
mk -n SAMPLE_OPTS="--weights model --steps 3"
check "SAMPLE_OPTS changed: rhd-sample and the sample's renders planned" \
    bash -c "grep -q rhd-sample '$T/mk.out' && grep -q 'eval/sample' '$T/mk.out'"
check "... nothing before the sample, nor the fitted triplane's render" \
    bash -c "! grep -q -E 'rhd-encode|rhd-fit|rhd-train|rhd-schedule|eval/fitted' '$T/mk.out'"
mk SAMPLE_OPTS="--weights model --steps 3"
expect_rc 0 "make with the new sample option"
check "the sample stamp holds the new option; the fit stamp was not rewritten" \
    bash -c "grep -q -- '--steps 3' '$O/.opts/sample.txt' && test '$fit_stamp' = \"\$(stat -c %Y.%y '$O/.opts/fit.txt')\""
mk -q SAMPLE_OPTS="--weights model --steps 3"
expect_rc 0 "make -q with the new option: up to date"
# ---- 7. UPSAMPLE=1: the upsampler trained and sampled through ----
UP=(UPSAMPLE=1 SAMPLE_OPTS="--weights model --steps 3 --up-steps 2 --up-res 16"
    UPSAMPLE_CONFIG='{"in_ch": 8, "out_ch": 8, "cond_ch": 8, "n_feats": 16, "groups": 8, "temb_ch": 16, "temb_dim": 64, "embed_dim": 16, "pool_heads": 4, "latent_size": 8, "patch": 8, "head_ch": 16, "num_res_blocks": 1, "n_resblocks": 2}'
    UPSAMPLE_OPTS="--resolution 16 --batch 1 --steps 2 --save-every 1 --log-every 1 --patch 8 --grid-size 16 --max-steps 32 --view-range 1-23")
mk -n "${UP[@]}"
check "UPSAMPLE=1: rhd-train --model upsample and the sample through it planned, not the base training" \
    bash -c "grep -q -- '--model upsample' '$T/mk.out' && grep -q -- '--upsample' '$T/mk.out' && ! grep -q -- '--model base' '$T/mk.out'"
mk -j2 "${UP[@]}"
expect_rc 0 "make UPSAMPLE=1"
[ "$rc" = 0 ] || printf '#   %s\n' "$err" | tail -20
check "UPSAMPLE=1: the upsampler's checkpoint and log, the upsampled sample's renders and metrics" \
    test -s "$O/upsample/checkpoint.safetensors" -a -s "$O/upsample/train.json" -a -s "$O/eval/sample/avatar_101/metrics.json"
check "UPSAMPLE=1: the sample records the upsampler (rhd.config 'upsample') and has the upsampled shape [3,8,16,16]" "${RHD_PY:-python3}" -c "
import json
from safetensors import safe_open
f = safe_open('$O/samples/avatar_101.safetensors', 'np'); md = f.metadata()
assert 'upsample' in json.loads(md['rhd.config']), md
assert f.get_tensor('planes').shape == (3, 8, 16, 16), f.get_tensor('planes').shape"
mk -q "${UP[@]}"
expect_rc 0 "make -q UPSAMPLE=1: up to date"
done_testing
