"""tests/tools/examples_fixture.py DIR: the files the documented examples name, in DIR, for
tests/tools/t0830-examples.sh. Besides DIR/tests/data/mini (a link to the bundled data) the
examples use:
  avatars -> tests/data/mini           a dataset root
  sdxl-vae/, sdxl-base/vae/            a tiny diffusers AutoencoderKL folder (block_out_channels
                                       [8,16,16,16]) standing in for the SDXL VAE
  stage1.txt, train.txt                avatar lists (avatar_100, avatar_101)
  triplanes/avatar_100.safetensors     a small triplane [3,8,16,16]; avatar_100.npy its
                                       [3,1,8,16,16] .npy form
"""
import json, os, sys
import numpy as np
from safetensors.numpy import save_file

d = sys.argv[1]
rng = np.random.default_rng(11)
C, L, G = [8, 16, 16, 16], 1, 4
cfg = {"_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": C,
       "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
       "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": L,
       "norm_num_groups": G, "sample_size": 128}
t = {}


def conv(name, co, ci, k):
    t[name + ".weight"] = (rng.standard_normal((co, ci, k, k)) / np.sqrt(ci * k * k)).astype(np.float32)
    t[name + ".bias"] = (0.1 * rng.standard_normal(co)).astype(np.float32)


def norm(name, c):
    t[name + ".weight"] = (1 + 0.1 * rng.standard_normal(c)).astype(np.float32)
    t[name + ".bias"] = (0.1 * rng.standard_normal(c)).astype(np.float32)


def resnet(p, ci, co):
    norm(p + ".norm1", ci), conv(p + ".conv1", co, ci, 3), norm(p + ".norm2", co), conv(p + ".conv2", co, co, 3)
    if ci != co:
        conv(p + ".conv_shortcut", co, ci, 1)


conv("encoder.conv_in", C[0], 3, 3)
for i in range(4):
    for j in range(L):
        resnet(f"encoder.down_blocks.{i}.resnets.{j}", C[i - 1] if (i and not j) else C[i], C[i])
    if i < 3:
        conv(f"encoder.down_blocks.{i}.downsamplers.0.conv", C[i], C[i], 3)
for r in range(2):
    resnet(f"encoder.mid_block.resnets.{r}", C[3], C[3])
norm("encoder.mid_block.attentions.0.group_norm", C[3])
for n in ("to_q", "to_k", "to_v", "to_out.0"):
    t[f"encoder.mid_block.attentions.0.{n}.weight"] = (rng.standard_normal((C[3], C[3])) / 4).astype(np.float32)
    t[f"encoder.mid_block.attentions.0.{n}.bias"] = (0.1 * rng.standard_normal(C[3])).astype(np.float32)
norm("encoder.conv_norm_out", C[3])
conv("encoder.conv_out", 2 * cfg["latent_channels"], C[3], 3)
for w in ("sdxl-vae", "sdxl-base/vae"):
    os.makedirs(f"{d}/{w}", exist_ok=True)
    json.dump(cfg, open(f"{d}/{w}/config.json", "w"))
    save_file(t, f"{d}/{w}/diffusion_pytorch_model.safetensors")
for f in ("stage1.txt", "train.txt"):
    open(f"{d}/{f}", "w").write("avatar_100\navatar_101\n")
os.makedirs(f"{d}/triplanes", exist_ok=True)
planes = rng.standard_normal((3, 8, 16, 16)).astype(np.float32)
save_file({"planes": planes}, f"{d}/triplanes/avatar_100.safetensors",
          metadata={"rhd.kind": "triplane", "rhd.version": "1", "rhd.tool": "examples_fixture.py"})
np.save(f"{d}/avatar_100.npy", planes.reshape(3, 1, 8, 16, 16))
