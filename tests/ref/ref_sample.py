#!/usr/bin/env python3
"""tests/ref/ref_sample.py: the original's sampling algorithm as an independent PyTorch reference,
for tests/models/test_sample.c: the networks of ref_unet.py / ref_upsampler.py, the DDIM "dpm"
sampler of spec diffusion.md §3.10 (coefficients in fp32 from the float64 tables, §10.5), the
classifier-free guidance of §3.9 (batch [x; x], null condition = all-ones ref and features, eps
channels guided) and the conditioning sample of §1.4 (ref = mean + exp(0.5 clamp(logvar)) u), with
every noise tensor taken from a noise file (formats/noise.md: x_T, z.<k> one per step even where
sigma = 0, u; "up." for the upsampler) in the original's order (§10.6).

  ref_sample.py make DIR KIND SEED   DIR/KIND.json (the network config) -> DIR/KIND.pt: a torch.save'd
                                     state dict of the reference network with PyTorch's default init
                                     (torch.manual_seed(SEED)), for pipelines/convert_checkpoint.py
  ref_sample.py sample DIR [TAG]     DIR/job.json: stage (base|upsample), cfg, ckpt (safetensors),
                                     features [paths], rows (of the noise file), noise, guidance, eta, steps, T, schedule, clip,
                                     low (npy [P,C,r,3r], upsample; rounded to float16 first, as the
                                     original's base_sample.py saves LR/<name>.npy and
                                     upsample_sample.py conditions on that file, unless
                                     "low_fp16": false), R -> DIR/y.npy [P,C,R,3R] (DIR/y_TAG.npy
                                     with TAG); base with clipping also DIR/margin.npy [1]: the
                                     least |x - sqrt(1 - abar) e| of the first step, whose sign
                                     decides the clipped x0 there (sqrt(abar) is 7e-11 at t = 999)
The networks and the sampler arithmetic run in fp32, as the original's."""
import json
import os
import sys

import numpy as np
import torch
from safetensors.numpy import load_file as np_load
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_diffusion import Chain  # noqa: E402
from ref_schedule import ddim  # noqa: E402
import ref_unet  # noqa: E402
import ref_upsampler  # noqa: E402


def build(kind, cfg):
    return ref_unet.UNet(cfg) if kind == "base" else ref_upsampler.Upsampler(cfg)


def make(d, kind, seed):
    cfg = json.load(open(f"{d}/{kind}.json"))
    torch.manual_seed(seed)
    m = build(kind, cfg)
    torch.save({k: v.contiguous() for k, v in m.state_dict().items()}, f"{d}/{kind}.pt")
    print(f"ref_sample: {kind} network, {sum(p.numel() for p in m.parameters())} parameters -> {d}/{kind}.pt")


def ref_from_u(moments, u):  # §1.4
    C = moments.shape[1] // 2
    mean, lv = moments[:, :C], moments[:, C:].clamp(-30, 20)
    return mean + torch.exp(0.5 * lv) * u


def sample(d, tag=""):
    job = json.load(open(f"{d}/job.json"))
    base = job["stage"] == "base"
    pre = "" if base else "up."
    m = build(job["stage"], json.load(open(job["cfg"])))
    m.load_state_dict(load_file(job["ckpt"]), strict=True)
    m.eval()  # fp32, as the original samples
    noise = np_load(job["noise"])
    rows = job.get("rows", list(range(len(job["features"]))))  # the portraits' rows of the noise file
    nz = lambda name: torch.from_numpy(noise[pre + name][rows])  # noqa: E731
    feats = [np_load(p) for p in job["features"]]
    moments = torch.from_numpy(np.stack([f["moments"] for f in feats]))
    ref = ref_from_u(moments, nz("u"))
    F = [torch.from_numpy(np.stack([f[f"ms_feature.{i}"] for f in feats])) for i in range(3)] if base else None
    low = None if base else torch.from_numpy(np.load(job["low"]))
    if low is not None and job.get("low_fp16", True):
        low = low.half().float()
    B = moments.shape[0]
    s = job["guidance"]

    def net(x, tm, null):  # the conditional network on a batch with null flags
        n = torch.tensor(null, dtype=torch.bool)[:, None, None, None]
        idx = [b % B for b in range(x.shape[0])]
        r = torch.where(n, torch.ones_like(ref[idx]), ref[idx])
        with torch.no_grad():
            if base:
                f = [torch.where(n, torch.ones_like(Fi[idx]), Fi[idx]) for Fi in F]
                y = m(x, tm, r, f)
            else:
                y = m(x, tm, r, low[idx])  # the null keeps the low-res condition
        return y.float()

    def guided(x, tm):  # §3.9
        if s == 1.0:
            return net(x, tm, [0] * B)
        o = net(torch.cat([x, x]), torch.cat([tm, tm]), [0] * B + [1] * B)
        c, u = o[:B], o[B:]
        g = job["C"] if base else o.shape[1]
        return torch.cat([u[:, :g] + s * (c[:, :g] - u[:, :g]), c[:, g:]], 1)

    ch = Chain(job["schedule"], job["T"])
    C = job["C"]
    ts = ddim(ch.T, job["steps"])
    a = ch.ab[ts]
    ap = np.concatenate([[1.0], ch.ab[ts[:-1]]])
    sig = job["eta"] * np.sqrt((1 - ap) / (1 - a)) * np.sqrt(1 - a / ap)
    x = nz("x_T").float()
    full = lambda v: torch.full((B, 1, 1, 1), float(v))  # noqa: E731  fp32 of the float64 value
    for j, i in enumerate(reversed(range(len(ts)))):
        t = ts[i]
        out = guided(x, torch.full((B,), float(t)) * float(1000.0 / ch.T_orig))
        a_t, a_prev, sigma_t, s1 = full(a[i]), full(ap[i]), full(sig[i]), full(np.sqrt(1.0 - a[i]))
        if base:  # eps model
            e = out[:, :C]
            x0 = (x - s1 * e) / a_t.sqrt()
        else:  # x0 model: eps from the unclipped x0 with the full tables
            x0 = out[:, :C]
            e = (full(ch.sqrt_recip[t]) * x - x0) / full(ch.sqrt_recipm1[t])
        if job["clip"]:
            if base and j == 0:
                np.save(f"{d}/margin.npy", np.array([(x - s1 * e).abs().min().item()], dtype=np.float32))
            x0 = x0.clamp(-1, 1)
        z = nz(f"z.{j}").float()
        x = a_prev.sqrt() * x0 + (1.0 - a_prev - sigma_t ** 2).clamp(min=0).sqrt() * e + sigma_t * z
    np.save(f"{d}/y{'_' + tag if tag else ''}.npy", x.numpy())
    print(f"ref_sample: {job['stage']} {len(ts)} steps, guidance {s}, eta {job['eta']}, batch {B}, |x| max {x.abs().max():.4g}")


def main():
    torch.set_num_threads(2)
    if len(sys.argv) == 5 and sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) in (3, 4) and sys.argv[1] == "sample":
        sample(sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else "")
    else:
        sys.exit("usage: ref_sample.py make DIR base|upsample SEED | sample DIR")


if __name__ == "__main__":
    main()
