#!/usr/bin/env bash
# rhd-encode: the dev-set portraits (or the committed mini fixture) encoded with random SDXL
# weights give features files rhd-inspect shows with the documented shapes; batching and -o give
# the same numbers; f16 storage; skip-if-newer and --force; sharding by rank; -o -; precise errors
# and exit codes for bad portraits, bad weights folders and bad usage. Most cases use a tiny
# AutoencoderKL written here with numpy (fast); the model itself is checked against diffusers in
# tests/models/test_vae_encoder.c.
. "$RHD_ROOT/tests/tools/lib.sh"
PY=${RHD_PY:-python3}
mini="$RHD_ROOT/tests/data/mini"
dev="${RHD_SHARED:-$RHD_ROOT/../shared}/data/blender-avatars-dev"
[ -f "$dev/avatar_100/img_proc_fg_000000.png" ] || dev=$mini

# ---- SDXL architecture, random weights, on the data set -----------------------------------
run rhd-encode --weights random:1 --data "$dev" --out-dir "$T/feat" --batch 4
expect_rc 0 "encode $(basename "$dev") with --weights random:1"
expect_err "warning: --weights random:1: the encoder has RANDOM weights" "random weights are announced"
nav=$(ls -d "$dev"/*/ | wc -l)
check "one features file per avatar ($nav)" test "$(ls "$T/feat" | wc -l)" -eq "$nav"
run rhd-inspect --kind features --json "$T"/feat/*.safetensors
expect_rc 0 "rhd-inspect --kind features accepts every file"
check "documented shapes: moments [8,16,16], ms_feature.0/1/2 [128,64,64] [256,32,32] [512,16,16]; metadata" "$PY" -c "
import json, sys
for line in sys.argv[1].splitlines():
    o = json.loads(line)
    shapes = {t['name']: t['shape'] for t in o['tensors']}
    assert shapes == {'moments': [8, 16, 16], 'ms_feature.0': [128, 64, 64], 'ms_feature.1': [256, 32, 32],
                      'ms_feature.2': [512, 16, 16]}, shapes
    assert all(t['dtype'] == 'F32' and t['nan'] == 0 and t['inf'] == 0 and t['std'] > 0 for t in o['tensors'])
    m = o['metadata']
    assert m['rhd.kind'] == 'features' and m['rhd.weights'].startswith('random:1 ') and 'RANDOM' in m['rhd.weights']
    assert m['rhd.input'].endswith('/img_proc_fg_000000.png') and json.loads(m['rhd.preprocess'])['method'] == 'pillow'
" "$out"

# one portrait with -o (batch of one) gives the same numbers as the batched run
one="$dev/avatar_101/img_proc_fg_000000.png"
run rhd-encode --weights random:1 --threads 1 -o "$T/one.safetensors" "$one"
expect_rc 0 "encode one portrait with -o on one thread"
check "-o run on one thread equals the batched --data run on all threads bit for bit" "$PY" -c "
import sys, numpy as np
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
" "$T/one.safetensors" "$T/feat/avatar_101.safetensors"

# ---- a tiny AutoencoderKL folder (diffusers layout), and broken variants --------------------
"$PY" - "$T" <<'PYEOF'
import json, os, sys
import numpy as np
from safetensors.numpy import save_file
d = sys.argv[1]
C, L, G = [8, 16, 16, 16], 1, 4
cfg = {"_class_name": "AutoencoderKL", "_diffusers_version": "0.27.2", "act_fn": "silu", "block_out_channels": C,
       "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4, "in_channels": 3,
       "out_channels": 3, "latent_channels": 4, "layers_per_block": L, "norm_num_groups": G, "sample_size": 128}
rng = np.random.default_rng(3)
t = {}
def conv(name, co, ci, k):
    t[name + ".weight"] = (rng.standard_normal((co, ci, k, k)) / np.sqrt(ci * k * k)).astype(np.float32)
    t[name + ".bias"] = (0.1 * rng.standard_normal(co)).astype(np.float32)
def norm(name, c):
    t[name + ".weight"] = (1 + 0.1 * rng.standard_normal(c)).astype(np.float32)
    t[name + ".bias"] = (0.1 * rng.standard_normal(c)).astype(np.float32)
def resnet(p, ci, co):
    norm(p + ".norm1", ci); conv(p + ".conv1", co, ci, 3); norm(p + ".norm2", co); conv(p + ".conv2", co, co, 3)
    if ci != co: conv(p + ".conv_shortcut", co, ci, 1)
conv("encoder.conv_in", C[0], 3, 3)
for i in range(4):
    for j in range(L):
        resnet(f"encoder.down_blocks.{i}.resnets.{j}", C[i - 1] if (i and not j) else C[i], C[i])
    if i < 3: conv(f"encoder.down_blocks.{i}.downsamplers.0.conv", C[i], C[i], 3)
resnet("encoder.mid_block.resnets.0", C[3], C[3]); resnet("encoder.mid_block.resnets.1", C[3], C[3])
norm("encoder.mid_block.attentions.0.group_norm", C[3])
for n in ("to_q", "to_k", "to_v", "to_out.0"):
    t[f"encoder.mid_block.attentions.0.{n}.weight"] = (rng.standard_normal((C[3], C[3])) / 4).astype(np.float32)
    t[f"encoder.mid_block.attentions.0.{n}.bias"] = (0.1 * rng.standard_normal(C[3])).astype(np.float32)
norm("encoder.conv_norm_out", C[3]); conv("encoder.conv_out", 8, C[3], 3)
t["quant_conv.weight"] = np.zeros((8, 8, 1, 1), np.float32)   # not part of the encoder: ignored
def folder(name, tensors, config):
    os.makedirs(f"{d}/{name}", exist_ok=True)
    json.dump(config, open(f"{d}/{name}/config.json", "w"))
    save_file(tensors, f"{d}/{name}/diffusion_pytorch_model.safetensors")
folder("tiny", t, cfg)
folder("missing", {k: v for k, v in t.items() if k != "encoder.down_blocks.2.resnets.0.conv2.weight"}, cfg)
folder("shape", dict(t, **{"encoder.conv_out.weight": np.zeros((8, 16, 1, 1), np.float32)}), cfg)
folder("attnblock", t, dict(cfg, down_block_types=["DownEncoderBlock2D", "AttnDownEncoderBlock2D"] + ["DownEncoderBlock2D"] * 2))
os.makedirs(f"{d}/pipeline/vae")                                     # a whole pipeline folder: vae/ inside
for f in ("config.json", "diffusion_pytorch_model.safetensors"):
    os.link(f"{d}/tiny/{f}", f"{d}/pipeline/vae/{f}")
# bad portraits
from PIL import Image
import png
os.makedirs(f"{d}/bad", exist_ok=True)
open(f"{d}/bad/text.png", "w").write("not a png\n")
Image.new("RGB", (64, 64), (10, 20, 30)).save(f"{d}/bad/rgb.png")
Image.new("L", (64, 64), 100).save(f"{d}/bad/gray.png")
Image.new("RGBA", (12, 40), (10, 20, 30, 255)).save(f"{d}/bad/tiny.png")
rows = [[v for x in range(32) for v in (x * 2000, 0, 65535, 65535)] for y in range(32)]
png.Writer(32, 32, bitdepth=16, greyscale=False, alpha=True).write(open(f"{d}/bad/deep.png", "wb"), rows)
PYEOF
check "tiny weights written" test -f "$T/tiny/diffusion_pytorch_model.safetensors"

# a copy of two avatars' portraits, so that mtimes can be changed (no camera metadata needed)
for a in avatar_100 avatar_101; do
    mkdir -p "$T/data/$a"
    cp "$mini/$a/img_proc_fg_000000.png" "$T/data/$a/"
done
mkdir -p "$T/data/not_an_avatar"
run rhd-encode --weights "$T/tiny" --data "$T/data" --out-dir "$T/tf"
expect_rc 0 "encode with a diffusers weights folder"
expect_err "2 feature files written" "both avatars written"
check "rhd.weights is the weights file's SHA-256" "$PY" -c "
import hashlib, sys
from safetensors import safe_open
m = safe_open(sys.argv[1], 'np').metadata()
assert m['rhd.weights'] == 'sha256:' + hashlib.sha256(open(sys.argv[2], 'rb').read()).hexdigest(), m['rhd.weights']
" "$T/tf/avatar_100.safetensors" "$T/tiny/diffusion_pytorch_model.safetensors"
run rhd-inspect --kind features --json "$T/tf/avatar_100.safetensors"
expect_out '"name":"ms_feature.0","dtype":"F32","shape":\[8,64,64\]' "tiny config: F0 [8,64,64] (channels from config.json)"
m100=$(stat -c %y "$T/tf/avatar_100.safetensors")
run rhd-encode --weights "$T/tiny" --data "$T/data" --out-dir "$T/tf"
expect_rc 0 "second run"
expect_err "2 avatars up to date, skipped" "outputs newer than their inputs are skipped"
check "a skipped output is left untouched" test "$(stat -c %y "$T/tf/avatar_100.safetensors")" = "$m100"
touch -d "@$(($(date +%s) + 5))" "$T/data/avatar_101/img_proc_fg_000000.png"
run rhd-encode --weights "$T/tiny" --data "$T/data" --out-dir "$T/tf"
expect_err "1 avatar up to date, skipped" "a portrait newer than its output is redone"
expect_err "1 feature file written" "only that one"
run rhd-encode --weights "$T/tiny" --data "$T/data" --out-dir "$T/tf" --force
expect_err "2 feature files written" "--force redoes every avatar"
touch -d "@$(($(date +%s) + 10))" "$T/tiny/diffusion_pytorch_model.safetensors"
run rhd-encode --weights "$T/tiny" --data "$T/data" --out-dir "$T/tf"
expect_err "2 feature files written" "newer weights redo every avatar"

# sharding, list file, stdout, f16, the pipeline folder
run rhd-encode --weights "$T/tiny" --data "$T/data" --out-dir "$T/shard" --rank 1 --world 2
expect_rc 0 "--rank 1 --world 2"
check "rank 1 of 2 takes avatar 1 only" test "$(ls "$T/shard")" = "avatar_101.safetensors"
OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=2 run rhd-encode --weights "$T/tiny" --data "$T/data" --out-dir "$T/shard0"
check "MPI environment: rank 0 of 2 takes avatar 0 only" test "$(ls "$T/shard0")" = "avatar_100.safetensors"
echo avatar_101 > "$T/list.txt"
run rhd-encode --weights "$T/pipeline" --data "$T/data" --list "$T/list.txt" --out-dir "$T/listed" --dtype f16
expect_rc 0 "--list, --dtype f16, a pipeline folder holding vae/"
run rhd-inspect --json "$T/listed/avatar_101.safetensors"
expect_out '"name":"moments","dtype":"F16","shape":\[8,16,16\]' "f16 tensors"
check "f16 file equals the f32 one to f16 precision" "$PY" -c "
import sys, numpy as np
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
for k in a:
    assert a[k].dtype == np.float16 and np.array_equal(a[k], b[k].astype(np.float16)), k
" "$T/listed/avatar_101.safetensors" "$T/tf/avatar_101.safetensors"
out=$("$RHD_BIN/rhd-encode" -q --weights "$T/tiny" -o - "$T/data/avatar_100/img_proc_fg_000000.png" > "$T/stdout.safetensors"; echo $?)
check "-o - writes the file to stdout" test "$out" = 0
run rhd-inspect --kind features "$T/stdout.safetensors"
expect_rc 0 "the stdout file is a valid features file"

# ---- bad portraits: exit 1 and a precise message; the good ones are still written ----------
run rhd-encode --weights "$T/tiny" --out-dir "$T/b" "$T/bad/text.png" "$T/data/avatar_100/img_proc_fg_000000.png"
expect_rc 1 "not a PNG"
expect_err "text.png: not a PNG \(bad signature\)" "not-a-PNG message"
check "the good portrait next to it is still encoded" test -f "$T/b/avatar_100.safetensors"
run rhd-encode --weights "$T/tiny" --out-dir "$T/b" "$T/bad/deep.png"
expect_rc 1 "16-bit portrait"
expect_err "deep.png: 16-bit RGBA PNG, expected 8-bit RGBA" "16-bit message"
run rhd-encode --weights "$T/tiny" --out-dir "$T/b" "$T/bad/gray.png"
expect_rc 1 "gray portrait"
expect_err "gray.png: 8-bit gray PNG, expected 8-bit RGBA" "gray message"
run rhd-encode --weights "$T/tiny" --out-dir "$T/b" "$T/bad/rgb.png"
expect_rc 1 "portrait without alpha"
expect_err "rgb.png: 8-bit RGB PNG, expected 8-bit RGBA" "no-alpha message"
run rhd-encode --weights "$T/tiny" --out-dir "$T/b" "$T/bad/tiny.png"
expect_rc 1 "tiny portrait"
expect_err "tiny.png: image is 12x40, expected at least 16x16 pixels" "tiny-image message"
run rhd-encode --weights "$T/tiny" --out-dir "$T/b" "$T/bad/none.png"
expect_rc 1 "missing portrait"
expect_err "none.png: .*No such file" "missing-file message"

# ---- bad weights: exit 1 ---------------------------------------------------------------------
p="$T/data/avatar_100/img_proc_fg_000000.png"
run rhd-encode --weights "$T/missing" -o "$T/x.safetensors" "$p"
expect_rc 1 "weights missing a tensor"
expect_err "missing/diffusion_pytorch_model.safetensors: tensor 'encoder.down_blocks.2.resnets.0.conv2.weight' is missing, expected \[16,16,3,3\]" "missing-tensor message"
run rhd-encode --weights "$T/shape" -o "$T/x.safetensors" "$p"
expect_rc 1 "weights with a wrong shape"
expect_err "shape/diffusion_pytorch_model.safetensors: tensor 'encoder.conv_out.weight' has shape \[8,16,1,1\], expected \[8,16,3,3\]" "wrong-shape message"
run rhd-encode --weights "$T/attnblock" -o "$T/x.safetensors" "$p"
expect_rc 1 "a config it cannot build"
expect_err "attnblock/config.json: down_block_types\[1\] is 'AttnDownEncoderBlock2D', expected 'DownEncoderBlock2D'" "config message"
mkdir -p "$T/empty"
run rhd-encode --weights "$T/tiny" --data "$T/empty" --out-dir "$T/y"
expect_rc 1 "--data without avatars"
expect_err "--data .*/empty: no avatars found, expected subdirectories holding img_proc_fg_000000.png" "no-avatar message"
run rhd-encode --weights "$T/nowhere" -o "$T/x.safetensors" "$p"
expect_rc 1 "no weights folder"
expect_err "nowhere/config.json not found" "missing-folder message"
check "no output was left behind by the failures" test ! -e "$T/x.safetensors"

# ---- usage errors: exit 2 --------------------------------------------------------------------
run rhd-encode -o "$T/x.safetensors" "$p"
expect_rc 2 "no --weights"
expect_err "--weights is required" "usage message"
run rhd-encode --weights random:x -o "$T/x.safetensors" "$p"
expect_rc 2 "--weights random:x"
expect_err "random:SEED takes a non-negative integer seed" "seed message"
run rhd-encode --weights "$T/tiny" -o "$T/x.safetensors" "$p" "$T/data/avatar_101/img_proc_fg_000000.png"
expect_rc 2 "-o with two portraits"
expect_err "-o names one output file, got 2 portraits; use --out-dir DIR" "-o message"
run rhd-encode --weights "$T/tiny" --out-dir "$T/y" --data "$T/data" "$p"
expect_rc 2 "--data and portraits together"
run rhd-encode --weights "$T/tiny" --out-dir "$T/y" --data "$T/data" --rank 2 --world 2
expect_rc 2 "--rank out of range"
expect_err "--rank 2 is out of range for --world 2" "rank message"
run rhd-encode --weights "$T/tiny" --out-dir "$T/y" --size 100 "$p"
expect_rc 2 "--size not a multiple of 8"
run rhd-encode --weights "$T/tiny" "$p"
expect_rc 2 "no output given"
run rhd-encode --help
expect_rc 0 "--help"
expect_out "usage: rhd-encode" "--help on stdout"
done_testing
