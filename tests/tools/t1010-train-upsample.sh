#!/usr/bin/env bash
# tests/tools/t1010-train-upsample.sh: rhd-train --model upsample on the two fitted dev avatars
# (tests/data/train, 32 x 32 channels at resolution 32) with features of rhd-encode (random
# weights, 64 px portraits), a tiny upsampler config, a random decoder (made here) and the views of
# tests/data/mini for the rendering loss:
#   1. bad options and inputs: exit 2 (usage) / 1 (runtime) with messages naming the option or file;
#   2. overfitting one avatar without the rendering loss: the x0 MSE of the last steps is below a
#      fraction of the first steps' (measured numbers below);
#   3. the rendering loss (L1, and L1 + LPIPS-VGG with random lpips-package weights): loss finite,
#      render term (the log's "vb") > 0;
#   4. resume after a kill part way (RHD_CRASH_AFTER) ends in the same checkpoint and log bytes;
#   5. the checkpoint's metadata, and rhd-sample --upsample reads it after a tiny base model
#      (skipped where rhd-sample is not built);
#   6. mpirun -np 2 with the rendering loss gives the same checkpoint bytes as one process (skipped
#      without mpirun/mpicc; the MPI binary is linked here as t1000-train.sh does);
#   7. the worked example of tools/rhd-train.md;
#   8. --low-res: a folder of 8 x 8 low-res triplanes (numpy block means of the fixture, + 0.5) trains
#      to other parameters than the synthesised condition and is recorded in rhd.config; a folder
#      with a missing file, 16 channels, side 16 or a NaN is refused before the first step naming
#      the file; the activation-memory line of that run is > 0 and, with the parameter memory,
#      below its measured peak RSS;
#   9. --resume with another --degradation, --patch or --render-clamp is refused naming the option,
#      and a checkpoint from before an option existed (its key absent) says so and what to do;
#  10. --factor: recorded, refused on resume when changed, the low-res side R/F checked, and
#      rhd-sample's default output side F times its input's.
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}
FIX=$RHD_ROOT/tests/data/train MINI=$RHD_ROOT/tests/data/mini
OVERFIT_STEPS=24 OVERFIT_MAX=0.6 OVERFIT_MEASURED="0.213 (seed 0), 0.302 (seed 1)"   # x0 MSE: mean of the last 8 steps / the first 8

cd "$T"
. "$RHD_ROOT/tests/tools/lib_train.sh"
train_fixture
printf 'tri/avatar_100.npy feat/avatar_100.safetensors\n' > one.txt
"$PY" - <<'EOF'
import json, numpy as np
from safetensors.numpy import save_file
rng = np.random.default_rng(0)
def U(shape, fan):  # nn.Linear default init
    b = 1 / np.sqrt(fan); return rng.uniform(-b, b, shape).astype(np.float32)
def decoder(C):
    ind, inc = 5 * C // 4, 5 * 3 * C // 4 + 128 + 15
    d = {"sigma_net.0.weight": U((128, ind), ind), "sigma_net.0.bias": U((128,), ind),
         "sigma_net.2.weight": U((129, 128), 128), "sigma_net.2.bias": U((129,), 128),
         "color_net.0.weight": U((128, inc), inc), "color_net.1.weight": U((128, 128), 128),
         "color_net.2.weight": U((3, 128), 128)}
    d["sigma_net.2.bias"][0] = 4.0   # density about e^4 everywhere: every patch sees the triplane
    return d
for C, name in ((32, "dec"), (16, "dec16")):
    save_file(decoder(C), f"{name}.safetensors", metadata={"rhd.kind": "decoder", "rhd.version": "1", "rhd.tool": "test",
              "rhd.config": json.dumps({"triplane_channels": C, "triplane_res": 32})})
a = np.load("tri/avatar_100.npy").astype(np.float32)
np.save("c16.npy", a[:, :, :16])
EOF
check "random decoders written" test -f dec.safetensors -a -f dec16.safetensors
mkdir -p lp && check "LPIPS-VGG weights written by the lpips package" "$PY" "$RHD_ROOT/tests/ref/ref_render_loss.py" weights lp 7
# the tiny upsampler: 16 features, one res block per level, one body group, 8x8 latents
echo '{"n_feats": 16, "groups": 8, "temb_ch": 16, "temb_dim": 64, "embed_dim": 16, "pool_heads": 4, "latent_size": 8, "patch": 8, "head_ch": 16, "num_res_blocks": 1, "n_resblocks": 2}' > ups.json
U="--model upsample --preset small --model-config ups.json --resolution 32 --threads 1 -q"
RL="--decoder dec.safetensors --views $MINI --patch 16 --grid-size 16 --max-steps 32"

# ---- 1. bad input ----
run rhd-train $U --data pairs.txt --steps 1 -o r1
expect_rc 2 "render loss without --decoder"
expect_err "needs --decoder FILE" "no --decoder: message names the option"
run rhd-train $U --data pairs.txt --decoder dec.safetensors --views "$MINI" --steps 1 -o r1
expect_rc 2 "LPIPS weight 0.5 without --lpips"
expect_err "lpips-weight 0.5 needs --lpips FILE" "no --lpips: message names the option"
run rhd-train $U --data pairs.txt --decoder dec.safetensors --lpips-weight 0 --steps 1 -o r1
expect_rc 2 "render loss without --views"
expect_err "needs --views DIR" "no --views: message"
run rhd-train --model base --data pairs.txt --decoder dec.safetensors --steps 1 -o r1
expect_rc 2 "--decoder with --model base"
expect_err "decoder is an option of --model upsample" "--decoder with base: message"
run rhd-train $U --data pairs.txt --render-weight 0 --lpips-weight 0 --uncond-p 0.2 --steps 1 -o r1
expect_rc 2 "--uncond-p with the upsampler"
run rhd-train $U --data pairs.txt --render-weight 0 --lpips-weight 0 --resolution 30 --steps 1 -o r1
expect_rc 2 "--resolution not a multiple of 4"
run rhd-train $U --data pairs.txt --render-weight 0 --lpips-weight 0 --render-clamp --steps 1 -o r1
expect_rc 2 "--render-clamp without a rendering loss"
expect_err "render-clamp: there is no rendering loss" "--render-clamp: message names the option"
printf 'c16.npy feat/avatar_100.safetensors\n' > c16.txt
run rhd-train $U --data c16.txt --render-weight 0 --lpips-weight 0 --steps 1 -o r1 --force
expect_rc 1 "a triplane with 16 channels"
expect_err "c16.npy.*16 channels.*expected 32" "16 channels: named with both counts"
run rhd-train $U --data pairs.txt $RL --decoder dec16.safetensors --lpips-weight 0 --steps 1 -o r1 --force
expect_rc 1 "a decoder of 16 channels for a 32-channel upsampler"
expect_err "decoder reads 16 channels, the upsampler predicts 32" "decoder channels: both counts named"
run rhd-train $U --data pairs.txt $RL --views feat --lpips-weight 0 --steps 1 -o r1 --force
expect_rc 1 "--views without the avatars' folders"
expect_err "views feat.*avatar_10[01]" "missing views: folder and pair named"
run rhd-train $U --data pairs.txt $RL --lpips-weight 0 --view-range 7 --steps 1 -o r1 --force
expect_rc 2 "bad --view-range"

# ---- 2. overfitting one avatar (x0 MSE) ----
run rhd-train $U --data one.txt --render-weight 0 --lpips-weight 0 --batch 1 --steps $OVERFIT_STEPS --lr 2e-3 --log-every 1 --save-every 1000 -o fit
expect_rc 0 "overfit: $OVERFIT_STEPS steps on avatar_100, no rendering loss"
ratio=$("$PY" -c '
import json
L = [json.loads(l)["mse"] for l in open("fit/train_log.jsonl")]
print("%.3f %.4f %.4f %d" % (sum(L[-8:]) / sum(L[:8]), sum(L[:8]) / 8, sum(L[-8:]) / 8, len(L)))')
set -- $ratio
if awk -v r="$1" -v m=$OVERFIT_MAX 'BEGIN { exit !(r < m) }'; then _tap 0 "overfit: x0 MSE ratio last 8 / first 8 steps $1 < $OVERFIT_MAX (MSE $2 -> $3, $4 log lines; measured $OVERFIT_MEASURED)"
else _tap 1 "overfit: x0 MSE ratio $1 (MSE $2 -> $3), expected < $OVERFIT_MAX (measured $OVERFIT_MEASURED)"; fi

# ---- 3. the rendering loss ----
run rhd-train $U --data pairs.txt $RL --lpips-weight 0 --batch 2 --steps 2 --lr 1e-4 --log-every 1 -o rl1
expect_rc 0 "rendering loss (L1 only): 2 steps at batch 2"
run rhd-train $U --data one.txt $RL --lpips lp/weights.safetensors --patches 2 --batch 1 --steps 1 --lr 1e-4 --log-every 1 -o rl2
expect_rc 0 "rendering loss (L1 + 0.5 LPIPS-VGG, 2 patches): 1 step"
for r in rl1 rl2; do
    v=$("$PY" -c '
import json, math, sys
L = [json.loads(l) for l in open(sys.argv[1] + "/train_log.jsonl")]
ok = all(math.isfinite(l["loss"]) and l["vb"] > 0 and abs(l["loss"] - l["mse"] - l["vb"]) < 1e-9 * max(1, l["loss"]) for l in L)
print("%d %s" % (ok, " ".join("%.4g+%.4g" % (l["mse"], l["vb"]) for l in L)))' $r)
    set -- $v; ok=$1; shift
    [ "$ok" = 1 ] && _tap 0 "$r: losses finite, render term > 0, loss = mse + render (x0 MSE + render: $*)" || _tap 1 "$r: log $*"
done

# ---- 4. resume after a kill ----
RS="$U --data pairs.txt $RL --lpips-weight 0 --batch 2 --micro-batch 1 --steps 3 --save-every 2 --log-every 1 --ema 0.9999,0.99"
# crash points: checkpoint of step 0 (2 points), then per step 1 point (+2 at each save): step 3 = point 7,
# before the last save: the resumed run redoes step 3 from the checkpoint of step 2
resume_check 7 $RS

# ---- 5. the checkpoint and rhd-sample ----
meta=$("$PY" -c '
import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); m = h["__metadata__"]
c = json.loads(m["rhd.config"]); d = c["diffusion"]
ok = m["rhd.model"] == "upsample" and d["steps"] == 100 and d["schedule"] == "sigmoid" and d["pred"] == "xstart" \
    and d["var"] == "fixed_large" and c["model"]["n_feats"] == 16 and "input_layer.0.weight" in h and "ema.out.conv1.weight" in h
print(int(ok), m["rhd.model"], json.dumps(d))' whole/checkpoint.safetensors)
set -- $meta; [ "$1" = 1 ] && _tap 0 "checkpoint: rhd.model $2, diffusion ${*:3}, official tensor names" || _tap 1 "checkpoint metadata: $*"
if [ -x "$RHD_BIN/rhd-sample" ]; then
    echo '{"latent_size": 8, "patch": 8, "model_channels": 16, "groups": 8, "num_head_channels": 16, "attention_resolutions": [16, 8]}' > tiny.json
    run rhd-train --model base --preset small --model-config tiny.json --data pairs.txt --batch 1 --steps 1 --threads 1 -q -o base
    expect_rc 0 "a tiny base model for the two-stage sampling"
    run rhd-sample --base base/checkpoint.safetensors --upsample whole/checkpoint.safetensors --steps 2 --up-steps 2 --up-res 32 --up-time-scale train --threads 1 -q -o hr feat/avatar_100.safetensors
    expect_rc 0 "rhd-sample --base ... --upsample CKPT (--up-time-scale train: the checkpoint's raw t) reads the upsampler checkpoint"
    check "rhd-sample: the upsampled triplane written" test -s hr/avatar_100.safetensors
else
    skip "rhd-sample --upsample: rhd-sample not built"
fi

# ---- 6. MPI ----
mpi_train_check " (rendering loss on)" $U --data pairs.txt $RL --lpips-weight 0 --batch 2 --micro-batch 1 --steps 1 --save-every 1 --log-every 1

# ---- 7. the worked example of tools/rhd-train.md ----
ex=$(sed -n '/^## The upsample model/,/^## /p' "$RHD_ROOT/tools/rhd-train.md" | sed -n '/^```sh/,/^```/p' | grep -v '^```' |
    sed -e ':a' -e '/\\$/N; s/\\\n *//; ta' | grep '^rhd-train')
[ -n "$ex" ] && while IFS= read -r line; do
    PATH="$RHD_BIN:$PATH" MINI=$MINI bash -c "$line" >ex.out 2>&1 && _tap 0 "rhd-train.md example runs: $line" || { _tap 1 "example fails: $line"; tail -3 ex.out | sed 's/^/#   /'; }
done <<<"$ex" || _tap 1 "rhd-train.md: no upsample example found"

# ---- 8. --low-res ----
"$PY" - <<'EOF'
import os, numpy as np
for d in ("low", "lowmiss", "lowc", "lowside", "lownan"): os.makedirs(d, exist_ok=True)
for n in ("avatar_100", "avatar_101"):
    a = np.load("tri/%s.npy" % n).astype(np.float32).reshape(3, 32, 32, 32)
    lo = a.reshape(3, 32, 8, 4, 8, 4).mean(axis=(3, 5)) + 0.5   # [3,32,8,8], not what the degradation makes
    np.save("low/%s.npy" % n, lo)
    last = n == "avatar_101"   # the bad folders are bad at the second pair
    np.save("lowc/%s.npy" % n, lo[:, :16] if last else lo)
    np.save("lowside/%s.npy" % n, a.reshape(3, 32, 16, 2, 16, 2).mean(axis=(3, 5)) if last else lo)
    bad = lo.copy(); bad[1, 3, 2, 5] = np.nan
    np.save("lownan/%s.npy" % n, bad if last else lo)
    if not last: np.save("lowmiss/%s.npy" % n, lo)
EOF
LR="--data pairs.txt --render-weight 0 --lpips-weight 0 --batch 2 --steps 2 --lr 1e-3 --save-every 1000"
mem=$("$PY" -c '
import re, resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KB -> MB
a = re.search(r"activation memory ([0-9.]+) MB", p.stderr); w = re.search(r"EMA: ([0-9.]+) MB", p.stderr)
print(p.returncode, a.group(1) if a else -1, w.group(1) if w else -1, "%.1f" % rss)' \
    "$RHD_BIN/rhd-train" ${U% -q} $LR --low-res low -o lowrun)
set -- $mem
[ "$1" = 0 ] && _tap 0 "--low-res low: 2 steps at batch 2 (exit 0)" || _tap 1 "--low-res low: exit $1"
awk -v a="$2" -v w="$3" -v r="$4" 'BEGIN { exit !(a > 0 && a + w <= r) }' &&
    _tap 0 "activation memory estimate $2 MB > 0; with parameters, gradients, Adam and EMA ($3 MB) below the measured peak RSS $4 MB" ||
    _tap 1 "activation memory estimate $2 MB, parameter memory $3 MB, peak RSS $4 MB: expected 0 < estimate and the sum <= RSS"
run rhd-train $U $LR -o lowsyn
expect_rc 0 "the same run with the synthesised condition"
v=$("$PY" -c '
import json, struct, sys
import numpy as np
from safetensors.numpy import load_file
def cfg(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
    return json.loads(json.loads(b[8:8 + n])["__metadata__"]["rhd.config"])["train"]
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
names = [k for k in a if not k.startswith(("ema", "adam"))]
diff = max(float(np.abs(a[k] - b[k]).max()) for k in names)
print("%d %.3e %s %s" % (len(names), diff, cfg(sys.argv[1])["low_res"], json.dumps(cfg(sys.argv[2])["low_res"])))' lowrun/checkpoint.safetensors lowsyn/checkpoint.safetensors)
set -- $v
awk -v d="$2" 'BEGIN { exit !(d > 0) }' && [ "$3" = low ] &&
    _tap 0 "--low-res: parameters after 2 steps differ from the synthesised condition's (max |diff| $2 over $1 tensors); rhd.config train.low_res '$3' (synthesised: $4)" ||
    _tap 1 "--low-res vs synthesised: $*"
# folder ; what is wrong ; the message expected ; what it names
while IFS=';' read -r dir what msg names; do
    run rhd-train $U $LR --low-res "$dir" -o lowbad --force
    expect_rc 1 "--low-res: $what"
    expect_err "$msg" "$names"
done <<'EOF3'
lowmiss;a folder without avatar_101;low-res lowmiss: no avatar_101.safetensors or avatar_101.npy;missing low-res file: folder and pair named
lowc;a file of 16 channels;lowc/avatar_101.npy: a low-res triplane \[3,16,8,8\], expected \[3,32,8,8\];16 channels: the file and both shapes named
lowside;a file of side 16 for --resolution 32;lowside/avatar_101.npy: a low-res triplane \[3,32,16,16\], expected \[3,32,8,8\];side 16: the file and both shapes named
lownan;a file with a NaN;lownan/avatar_101.npy.*(NaN|nan|finite);NaN: the file named
EOF3
check "refused before the first step: no checkpoint written" test ! -e lowbad/checkpoint.safetensors

# ---- 9. resume with other upsample options ----
run rhd-train $RS --degradation strong -o whole --resume
expect_rc 1 "resume with another --degradation"
expect_err "training option 'degradation' is \"normal\" in the checkpoint, \"strong\" now" "resume: --degradation named with both values"
run rhd-train $RS --patch 8 -o whole --resume
expect_rc 1 "resume with another --patch"
expect_err "training option 'patch' is 16 in the checkpoint, 8 now" "resume: --patch named with both values"
run rhd-train $RS --render-clamp -o whole --resume
expect_rc 1 "resume with --render-clamp (the run rendered x0_hat unclamped)"
expect_err "training option 'render_clamp' is false in the checkpoint, true now" "resume: render_clamp named with both values"
"$PY" - whole/checkpoint.safetensors whole/old.safetensors <<'PYEOF'
import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
c = json.loads(h["__metadata__"]["rhd.config"]); del c["train"]["render_clamp"]
h["__metadata__"]["rhd.config"] = json.dumps(c)
s = json.dumps(h).encode(); s += b" " * (-len(s) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(s)) + s + b[8 + n:])
PYEOF
mkdir -p old && cp whole/old.safetensors old/checkpoint.safetensors && cp whole/*.json old/ 2>/dev/null; cp whole/log.* old/ 2>/dev/null
run rhd-train $RS -o old --resume
expect_rc 1 "resume of a checkpoint written before --render-clamp existed (no train.render_clamp)"
expect_err "training option 'render_clamp' is absent in the checkpoint .written by an earlier rhd-train" "the message says why"
expect_err "start over with --force" "... and what to do"
# ---- 10. --factor ----
run rhd-train $RS --factor 2 -o whole --resume
expect_rc 1 "resume with another --factor"
expect_err "training option 'factor' is 4 in the checkpoint, 2 now" "resume: --factor named with both values"
run rhd-train $U --factor 3 $LR -o f3
expect_rc 2 "--factor 3 (not a power of two)"
expect_err "factor 3: expected a power of two" "--factor 3: message"
"$PY" -c "
import os, numpy as np
os.makedirs('low16', exist_ok=True)
for n in ('avatar_100', 'avatar_101'):
    a = np.load('tri/%s.npy' % n).astype(np.float32).reshape(3, 32, 32, 32)
    np.save('low16/%s.npy' % n, a.reshape(3, 32, 16, 2, 16, 2).mean(axis=(3, 5)))"
run rhd-train $U --factor 2 $LR -o f2
expect_rc 0 "--factor 2: the synthesised condition at 16 for 32"
run rhd-train $U --factor 2 $LR --low-res low16 -o f2low
expect_rc 0 "--factor 2 --low-res: 16 x 16 conditions for 32"
run rhd-train $U --factor 2 $LR --low-res low -o f2bad
expect_rc 1 "--factor 2 --low-res with 8 x 8 files (expected 16)"
check "--factor 2: the checkpoint records train.factor 2" grep -qF '\"factor\":2' f2/checkpoint.safetensors
if [ -x "$RHD_BIN/rhd-sample" ]; then
    run rhd-sample --upsample f2/checkpoint.safetensors --low-res low16 --up-steps 2 --threads 1 -q -o f2s feat/avatar_100.safetensors
    expect_rc 0 "rhd-sample --upsample (factor 2) --low-res low16"
    check "rhd-sample: a factor-2 upsampler's default output side is 2 x 16 = 32" "$PY" -c "
from safetensors.numpy import load_file
assert load_file('f2s/avatar_100.safetensors')['planes'].shape == (3, 32, 32, 32)"
else
    skip "rhd-sample --upsample (factor 2): rhd-sample not built"
fi
done_testing
