#!/usr/bin/env bash
# rhd-train and rhd-sample on the CUDA backend against the CPU, end to end: a tiny base UNet
# (attention at 16 and 8, the 3D-aware level, portrait cross-attention) trained 2 steps from the
# same seed on both devices must log the same losses and gradient norms (relative 1e-6: the device
# sums in another order), and its samples (ddim-dpm, 2 steps, guidance 1.3: the conditional and the
# null-condition calls) from the same noise must agree (nmse 1e-8). Then --bf16 on the device: a
# training step's gradient norm within 5% of fp32's, and not equal (the option took effect).
# Skipped where the build has no CUDA backend or the machine no device; the CUDA emulation
# (tests/emu, `make CUDA=emu test-emu`) runs it without a GPU.
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}

needs_cuda

# pycheck WHAT <<'PY' ... PY: a Python check (stdin); its printed line joins the TAP line
pycheck() { local what=$1 res rc; res=$("$PY" - 2>&1) && rc=0 || rc=$?; _tap $rc "$what: $(printf '%s' "$res" | tail -1)"; }

cd "$T"
. "$RHD_ROOT/tests/tools/lib_train.sh"
train_fixture
echo '{"latent_size": 8, "patch": 8, "model_channels": 16, "groups": 8, "num_head_channels": 16, "attention_resolutions": [16, 8]}' > tiny.json
TR="--model base --preset small --model-config tiny.json --threads 2 -q --data pairs.txt --batch 2 --steps 2 --log-every 1 --save-every 2 --seed 5"
for d in cpu cuda; do
    run rhd-train $TR --device $d -o "r_$d"
    expect_rc 0 "rhd-train 2 steps with --device $d"
done
pycheck "same losses, MSEs, VB terms and gradient norms on both devices (relative 1e-6)" <<'PY'
import json, sys
a = [json.loads(l) for l in open("r_cpu/train_log.jsonl")]
b = [json.loads(l) for l in open("r_cuda/train_log.jsonl")]
worst = 0.0
for x, y in zip(a, b):
    for k in ("loss", "mse", "vb", "grad_norm"):
        worst = max(worst, abs(x[k] - y[k]) / max(abs(x[k]), 1e-12))
print("worst relative difference %.3g" % worst)
sys.exit(0 if len(a) == len(b) == 2 and worst < 1e-6 else 1)
PY
S="--base r_cpu/checkpoint.safetensors --weights model --steps 2 --guidance 1.3 --seed 3 --batch 2 --threads 2 -q"
for d in cpu cuda; do
    run rhd-sample $S --device $d -o "s_$d" feat/avatar_100.safetensors feat/avatar_101.safetensors
    expect_rc 0 "rhd-sample with --device $d"
done
pycheck "samples of both devices agree (nmse 1e-8)" <<'PY'
import json, struct, sys
import numpy as np
def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], dtype=np.float32)
    return out
worst = 0.0
for a in ("avatar_100", "avatar_101"):
    x, y = load(f"s_cpu/{a}.safetensors"), load(f"s_cuda/{a}.safetensors")
    for k in x:
        d = float(np.sum((x[k].astype(np.float64) - y[k]) ** 2) / max(np.sum(x[k].astype(np.float64) ** 2), 1e-30))
        worst = max(worst, d)
print("worst nmse %.3g" % worst)
sys.exit(0 if worst < 1e-8 else 1)
PY
run rhd-train ${TR/--steps 2/--steps 1} --device cuda --bf16 -o r_bf16
expect_rc 0 "rhd-train one step with --device cuda --bf16"
pycheck "--bf16 gradient norm within 5% of fp32's, and not the same bits (bf16 took effect)" <<'PY'
import json, sys
a = json.loads(open("r_cuda/train_log.jsonl").readline())
b = json.loads(open("r_bf16/train_log.jsonl").readline())
ga, gb = a["grad_norm"], b["grad_norm"]
print("grad norm fp32 %.7g, bf16 %.7g; loss fp32 %.7g, bf16 %.7g" % (ga, gb, a["loss"], b["loss"]))
sys.exit(0 if abs(ga - gb) <= 0.05 * abs(ga) and ga != gb else 1)
PY
done_testing
