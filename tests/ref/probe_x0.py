#!/usr/bin/env python3
"""tests/ref/probe_x0.py CKPT WEIGHTS PAIRS [LABEL]: how well a trained base model reads x0 back along the
chain, through the independent PyTorch reference network (ref_unet.py, loaded strict from the rhd
checkpoint's WEIGHTS: model or ema) and its rhd.config (network, diffusion pred and schedule).

For each pair of PAIRS (rhd-train's list: TRIPLANE FEATURES, relative to its folder; triplanes
area-downsampled to the network's size as rhd-train does) and each t of TS: x_t = sqrt(abar) x0 +
sqrt(1 - abar) eps (eps fixed by the seed), the network's x0 estimate (clipped to [-1, 1], as the
sampler) under the pair's own condition (latent mean, the three feature maps) and under every other
pair's. Prints one Markdown table: rms error of x0 against the pair's own x0 with its own condition,
with another pair's condition, and the rms distance between the pairs' x0 (what "no information"
costs). With LABEL: one row instead, "| LABEL | own / another's at each t | apart |" (--header prints the
header of such rows). Used by pipelines/pred_compare.sh."""
import json
import os
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_diffusion import Chain, x0_from_pred  # noqa: E402
from ref_unet import UNet  # noqa: E402

TS = [100, 200, 400, 600, 800]


def load_triplane(path, R):
    x = np.load(path) if path.endswith(".npy") else load_file(path)["planes"]
    x = x.astype(np.float64).reshape(3, -1, x.shape[-2], x.shape[-1])
    f = x.shape[-1] // R
    x = x.reshape(3, x.shape[1], R, f, R, f).mean(axis=(3, 5))
    return torch.from_numpy(np.concatenate(list(x), axis=2)).float()[None]  # rolled [1, C, R, 3R]


def main():
    if sys.argv[1:] == ["--header"]:
        print("| model | " + " | ".join(f"t = {t}" for t in TS) + " | the avatars apart |")
        print("|---|" + "---|" * (len(TS) + 1))
        return
    if len(sys.argv) not in (4, 5) or sys.argv[2] not in ("model", "ema"):
        sys.exit("usage: probe_x0.py CKPT model|ema PAIRS [LABEL] | probe_x0.py --header")
    ck, wts, pairs = sys.argv[1:4]
    label = sys.argv[4] if len(sys.argv) == 5 else None
    torch.set_num_threads(int(os.environ.get("PROBE_THREADS", "2")))
    f = safe_open(ck, "np")
    cfg = json.loads(f.metadata()["rhd.config"])
    net, diff = cfg["model"], cfg["diffusion"]
    m = UNet(net)
    sd = {}
    for k in f.keys():
        if wts == "ema" and k.startswith("ema."):
            sd[k[4:]] = torch.from_numpy(f.get_tensor(k))
        elif wts == "model" and not k.startswith(("ema", "adam.")):
            sd[k] = torch.from_numpy(f.get_tensor(k))
    m.load_state_dict(sd, strict=True)
    m.eval()
    root = os.path.dirname(os.path.abspath(pairs))
    items = []
    for line in open(pairs):
        w = line.split()
        if not w or w[0].startswith("#"):
            continue
        fe = load_file(os.path.join(root, w[1]))
        ref = torch.from_numpy(fe["moments"][: net["latent_channels"]])[None]
        feats = [torch.from_numpy(fe[f"ms_feature.{i}"])[None] for i in range(3)]
        items.append((os.path.basename(w[1]).split(".")[0], load_triplane(os.path.join(root, w[0]), net["image_size"]), ref, feats))
    ch = Chain(diff["schedule"], diff["steps"])
    g = torch.Generator().manual_seed(0)
    rms = lambda a, b: float((a - b).pow(2).mean().sqrt())  # noqa: E731
    gap = np.mean([rms(a[1], b[1]) for i, a in enumerate(items) for b in items[i + 1:]])
    if not label:
        print("| t | abar | x0 rms error, own condition | x0 rms error, another's condition | pairs apart (rms) |")
        print("|---|---|---|---|---|")
    cells = []
    C = net["in_channels"]
    with torch.no_grad():
        for t in TS:
            own, other = [], []
            for i, (_, x0, _, _) in enumerate(items):
                eps = torch.randn(x0.shape, generator=g)
                xt = float(ch.sqrt_ab[t]) * x0 + float(ch.sqrt_1mab[t]) * eps
                tm = torch.tensor([float(t) * 1000.0 / ch.T_orig])
                for j, (_, _, ref, feats) in enumerate(items):
                    out = m(xt, tm, ref, feats)[:, :C]
                    x0h = x0_from_pred(ch, diff["pred"], xt.double(), out.double(), torch.tensor([t])).clamp(-1, 1).float()
                    (own if i == j else other).append(rms(x0h, x0))
            cells.append(f"{np.mean(own):.3f} / {np.mean(other):.3f}")
            if not label:
                print(f"| {t} | {ch.ab[t]:.3g} | {np.mean(own):.3f} | {np.mean(other):.3f} | {gap:.3f} |")
    if label:
        print(f"| {label} | " + " | ".join(cells) + f" | {gap:.3f} |")


if __name__ == "__main__":
    main()
