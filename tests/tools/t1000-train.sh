#!/usr/bin/env bash
# tests/tools/t1000-train.sh: rhd-train --model base on the two fitted dev avatars
# (tests/data/train: stage-1 fits of tests/data/mini at 32 x 32 channels) with features of
# rhd-encode (random weights, 64 px portraits of view 0), at a tiny UNet config:
#   1. bad pair lists and options: exit 1 (runtime) / 2 (usage) with messages naming the file;
#   2. overfitting: the eps MSE of the log's last steps is below a fraction of the first steps' (the
#      MSE, not the loss: the VB term jumps by ~3 whenever t = 0 is drawn, the decoder NLL);
#   3. resume after a kill part way (RHD_CRASH_AFTER, the run's crash hook) ends in the same
#      checkpoint and log bytes as an uninterrupted run;
#   4. mpirun -np 2 gives the same checkpoint bytes as one process with the same global batch
#      (skipped without mpirun/mpicc; the MPI binary is linked here from build/librhd.a and
#      common/dist.c compiled with mpicc -DRHD_MPI, as make MPI=1 does);
#   5. the examples of --help run (the mpirun one only where MPI is).
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}
FIX=$RHD_ROOT/tests/data/train MINI=$RHD_ROOT/tests/data/mini
OVERFIT_STEPS=40 OVERFIT_MAX=0.85 OVERFIT_MEASURED="0.755 (seed 0), 0.763 (seed 1)"   # eps MSE: mean of the last 8 steps / the first 8

cd "$T"
. "$RHD_ROOT/tests/tools/lib_train.sh"
train_fixture
printf 'tri/avatar_100.npy feat/avatar_100.safetensors\n# a comment\n\ntri/avatar_101.npy feat/avatar_101.safetensors\n' > pairs.txt
# the tiny network: the small preset with 16 base channels, attention at 16 and 8, 8x8 latents
echo '{"latent_size": 8, "patch": 8, "model_channels": 16, "groups": 8, "num_head_channels": 16, "attention_resolutions": [16, 8]}' > tiny.json
TR="--model base --preset small --model-config tiny.json --threads 1 -q"

# ---- 1. bad input ----
run rhd-train --help
expect_rc 0 "--help"
expect_out "mpirun -np 2" "--help shows examples"
run rhd-train $TR --data pairs.txt
expect_rc 2 "no -o"
expect_err "expected -o RUN" "no -o: message"
run rhd-train $TR --data pairs.txt --triplanes tri --features feat -o r
expect_rc 2 "--data and --triplanes together"
run rhd-train $TR --data pairs.txt --batch 3 --micro-batch 2 -o r
expect_rc 2 "--micro-batch not dividing --batch"
expect_err "micro-batch 2 does not divide --batch 3" "micro-batch: message"
echo '{"latent_size": 8, "patch": 8, "model_channels": -4}' > neg.json
run rhd-train --model base --preset small --model-config neg.json --data pairs.txt -o rneg
expect_rc 2 "a --model-config field out of range"
expect_err "--model-config neg.json: model_channels is -4, expected >= 1" "names the file and the field, once"
check "no run folder for a bad --model-config" test ! -e rneg
printf '{"latent_size": 8,\n "patch": 8' > trunc.json
run rhd-train --model base --preset small --model-config trunc.json --data pairs.txt -o rneg
expect_rc 2 "a truncated --model-config"
expect_err "trunc.json: not valid JSON \(at line 2, column [0-9]+\)" "says where the JSON breaks"
printf 'tri/avatar_100.npy feat/avatar_100.safetensors\ntri/avatar_102.npy feat/avatar_101.safetensors\n' > missing.txt
run rhd-train $TR --data missing.txt --steps 1 -o r1
expect_rc 1 "a pair with a missing triplane"
expect_err "avatar_102.npy" "missing triplane: named"
printf 'tri/avatar_100.npy\n' > onefield.txt
run rhd-train $TR --data onefield.txt --steps 1 -o r1 --force
expect_rc 1 "a list line with one path"
expect_err "onefield.txt:1: 1 field, expected two paths" "one path: message with the line"
"$PY" - <<'EOF'
import numpy as np
a = np.load("tri/avatar_100.npy").astype(np.float32)
np.save("c16.npy", a[:, :, :16])
b = a.copy(); b[1, 0, 3, 4, 5] = np.nan
np.save("nan.npy", b)
EOF
printf 'c16.npy feat/avatar_100.safetensors\n' > c16.txt
run rhd-train $TR --data c16.txt --steps 1 -o r1 --force
expect_rc 1 "a triplane with 16 channels"
expect_err "c16.npy.*16 channels.*expected 32" "16 channels: named with both counts"
run rhd-train $TR --data c16.txt --steps 1 -o new/nested/r1
expect_rc 1 "a refused run into a new nested folder"
check "the folders it made for the refused run are removed again" test ! -e new
printf 'nan.npy feat/avatar_100.safetensors\n' > nan.txt
run rhd-train $TR --data nan.txt --steps 1 -o r1 --force
expect_rc 1 "a triplane with a NaN"
expect_err "nan.npy.*(NaN|nan|finite)" "NaN: named"
printf 'tri/avatar_100.npy feat/avatar_101.safetensors\n' > f128.txt
run rhd-train --model base --preset small --threads 1 -q --data f128.txt --steps 1 -o r1 --force
expect_rc 1 "64 px features for a config that wants 128 px ones"
expect_err "avatar_101.safetensors: tensor 'moments' has shape \[8,8,8\], expected \[8,16,16\]" "features: tensor and shapes named"
mkdir -p onlytri && cp tri/avatar_100.npy onlytri/
run rhd-train $TR --triplanes onlytri --features feat --steps 1 -o r1 --force
expect_rc 1 "--features folder with a file the triplanes lack"
expect_err "avatar_101.safetensors: no triplane" "unmatched features: named"

# ---- 2. overfitting two avatars ----
run rhd-train $TR --data pairs.txt --batch 2 --steps $OVERFIT_STEPS --lr 2e-3 --log-every 1 --save-every 100 -o fit
expect_rc 0 "overfit: $OVERFIT_STEPS steps at batch 2"
ratio=$("$PY" -c '
import json, sys
L = [json.loads(l)["mse"] for l in open("fit/train_log.jsonl")]
print("%.3f %.4f %.4f %d" % (sum(L[-8:]) / sum(L[:8]), sum(L[:8]) / 8, sum(L[-8:]) / 8, len(L)))')
set -- $ratio
if awk -v r="$1" -v m=$OVERFIT_MAX 'BEGIN { exit !(r < m) }'; then _tap 0 "overfit: eps MSE ratio last 8 / first 8 steps $1 < $OVERFIT_MAX (MSE $2 -> $3, $4 log lines; measured $OVERFIT_MEASURED)"
else _tap 1 "overfit: eps MSE ratio $1 (MSE $2 -> $3), expected < $OVERFIT_MAX (measured $OVERFIT_MEASURED)"; fi
check "overfit: loss.png written" test -s fit/loss.png

# ---- 3. resume after a kill ----
RS="$TR --data pairs.txt --batch 2 --micro-batch 1 --steps 6 --save-every 2 --log-every 1 --ema 0.9999,0.99 --timestep-sampler loss-second-moment"
# crash points: checkpoint of step 0 (2 points), then per step 1 point (+2 at each save): step 3 = point 7
resume_check 7 $RS
run rhd-train $RS --lr 1e-4 -o part --resume
expect_rc 1 "resume with another --lr"
expect_err "training option 'lr'" "resume: the differing option is named"
run rhd-train $RS --pred xstart -o part --resume
expect_rc 1 "resume with another --pred"
expect_err "diffusion is .*\"pred\":\"eps\".* in the checkpoint, .*\"pred\":\"xstart\".* now" "resume: the differing prediction is named"
run rhd-train $TR --data pairs.txt --pred v --batch 2 --steps 1 --save-every 1 -o predv
expect_rc 0 "--pred v: one step"
check "--pred v: rhd.config records diffusion pred v (rhd-sample reads it)" grep -qF '\"pred\":\"v\"' predv/checkpoint.safetensors
run rhd-train --model upsample --preset small --threads 1 -q --data pairs.txt --pred xstart -o up
expect_rc 2 "--pred with --model upsample"
expect_err "predicts x0" "--pred with upsample: message"

# ---- 4. MPI ----
mpi_train_check "" $TR --data pairs.txt --batch 2 --micro-batch 1 --steps 3 --save-every 3 --log-every 1 --uncond-p 0.5

# ---- 5. the --help examples ----
mkdir -p build-mpi/bin && [ -x rhd-train-mpi ] && ln -sf ../../rhd-train-mpi build-mpi/bin/rhd-train
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
"$RHD_BIN/rhd-train" --help | awk '/^examples/ {on = 1; next} on && /^  / {print}' |
    sed -e ':a' -e '/\\$/N; s/\\\n *//; ta' > examples.txt
while IFS= read -r ex; do
    case "$ex" in mpirun*) [ -x build-mpi/bin/rhd-train ] && command -v mpirun >/dev/null || { skip "example needs MPI: $ex"; continue; } ;; esac
    PATH="$RHD_BIN:$PATH" bash -c "$ex" >ex.out 2>&1 && _tap 0 "example runs: $ex" || { _tap 1 "example fails: $ex"; tail -3 ex.out | sed 's/^/#   /'; }
done < examples.txt
check "three examples found" test "$(wc -l < examples.txt)" = 3
done_testing
