#!/usr/bin/env python3
"""tests/ref/ref_vae.py DIR CONFIG SEED [options]  (or: ref_vae.py jobs FILE, one such command line
per line of FILE, so that diffusers is imported once): the encoder reference, diffusers' own
AutoencoderKL (the module RodinHD's script/myvae.py wraps), for tests/models/test_vae_encoder.c.

CONFIG is "sdxl" (stabilityai/stable-diffusion-xl-base-1.0 vae) or a JSON object of AutoencoderKL
arguments overriding it. Builds the model, draws random weights from SEED (PyTorch's default
initialisation, then GroupNorm weights 1 + 0.1 N(0,1) and biases 0.1 N(0,1) so the affine terms
matter), writes DIR/config.json (save_config) and DIR/diffusion_pytorch_model.safetensors, reads
DIR/x.npy (N, 3, H, W) and writes, computed in float32 on the CPU:
  DIR/moments.npy  vae.encoder(x): conv_out's output, no quant_conv       (N, 8, H/8, W/8)
  DIR/f0.npy, f1.npy, f2.npy   outputs of encoder.down_blocks[0..2], after their downsamplers
Options:
  --fp16          store the weights as F16 (the reference then runs with the F16-rounded values)
  --encoder-only  store only the encoder.* tensors (default: the whole AutoencoderKL state dict)
  --old-names     store the mid attention as query/key/value/proj_attn 1x1 convs [C, C, 1, 1]
  --no-mid-attn   build the encoder without the mid attention (mid_block_add_attention false)
  --threads N     torch threads (default 2)"""
import argparse
import json
import os
import shlex
import sys

import numpy as np
import torch
from safetensors.torch import save_file

from diffusers import AutoencoderKL
from diffusers.models.autoencoders.vae import Encoder

SDXL = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
            up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512],
            layers_per_block=2, act_fn="silu", latent_channels=4, norm_num_groups=32,
            sample_size=1024, scaling_factor=0.13025, force_upcast=True)


def run(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("config")
    ap.add_argument("seed", type=int)
    ap.add_argument("--fp16", action="store_true")
    ap.add_argument("--encoder-only", action="store_true")
    ap.add_argument("--old-names", action="store_true")
    ap.add_argument("--no-mid-attn", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    cfg = dict(SDXL)
    if a.config != "sdxl":
        cfg.update(json.loads(a.config))
    vae = AutoencoderKL(**cfg).eval()
    if a.no_mid_attn:  # AutoencoderKL 0.27 does not pass this option on; build the Encoder itself
        vae.encoder = Encoder(in_channels=cfg["in_channels"], out_channels=cfg["latent_channels"],
                              down_block_types=cfg["down_block_types"],
                              block_out_channels=cfg["block_out_channels"],
                              layers_per_block=cfg["layers_per_block"], act_fn=cfg["act_fn"],
                              norm_num_groups=cfg["norm_num_groups"], double_z=True,
                              mid_block_add_attention=False).eval()
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if "norm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
            if a.fp16:
                p.copy_(p.half().float())

    os.makedirs(a.dir, exist_ok=True)
    vae.save_config(a.dir)
    if a.no_mid_attn:
        with open(f"{a.dir}/config.json") as f:
            c = json.load(f)
        c["mid_block_add_attention"] = False
        with open(f"{a.dir}/config.json", "w") as f:
            json.dump(c, f, indent=2)
    sd = {k: v.detach().contiguous() for k, v in vae.state_dict().items()}
    if a.encoder_only:
        sd = {k: v for k, v in sd.items() if k.startswith("encoder.")}
    if a.old_names:
        ren = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
        out = {}
        for k, v in sd.items():
            for new, old in ren.items():
                tag = f".attentions.0.{new}."
                if tag in k:
                    k = k.replace(tag, f".attentions.0.{old}.")
                    if k.endswith("weight"):
                        v = v.reshape(v.shape[0], v.shape[1], 1, 1)
            out[k] = v.contiguous()
        sd = out
    if a.fp16:
        sd = {k: v.half() for k, v in sd.items()}
    save_file(sd, f"{a.dir}/diffusion_pytorch_model.safetensors", metadata={"format": "pt"})

    x = torch.from_numpy(np.load(f"{a.dir}/x.npy")).float()
    feats = {}
    hooks = [vae.encoder.down_blocks[i].register_forward_hook(
        lambda mod, inp, out, i=i: feats.__setitem__(i, out.detach().clone())) for i in range(3)]
    with torch.no_grad():
        moments = vae.encoder(x)
    for h in hooks:
        h.remove()
    np.save(f"{a.dir}/moments.npy", moments.numpy().astype(np.float32))
    for i in range(3):
        np.save(f"{a.dir}/f{i}.npy", feats[i].numpy().astype(np.float32))


if __name__ == "__main__":
    if sys.argv[1] == "jobs":
        for line in open(sys.argv[2]):
            if line.strip():
                run(shlex.split(line))
    else:
        run(sys.argv[1:])
