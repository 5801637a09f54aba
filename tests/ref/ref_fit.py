#!/usr/bin/env python3
"""tests/ref/ref_fit.py: an independent PyTorch implementation of the triplane decoder and the
training compositing (spec fitting.md §4-§6), used by tests/models/test_renderer.c.

Usage: ref_fit.py render <dir> <C> <R> <clamp> <T_thresh> [<agg>]
(agg: how the three planes' samples combine: mean, the original's and the default, product or
offset-product, (1+a)(1+b)(1+c)-1)
Inputs (<dir>/*.npy, float32): planes [3,C,R,R], xyz [M,3] (sampler coordinates), dirs [M,3],
delta0 [M], rays [N,2] (offset, count as floats), gt [N,3], and the decoder tensors under their
state-dict names (sigma_net.0.weight.npy, ...). Outputs: pred [N,3], loss [1], dplanes [3,C,R,R]
and d_<name> for every decoder tensor. Autograd does every derivative: grid_sample with
align_corners=True on each plane, torch.clamp, F.linear, F.softplus, exp with a clamped backward
(trunc_exp), sigmoid and an explicit per-ray compositing loop with early termination."""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_dense import TruncExp  # noqa: E402  (one definition for both references)

NAMES = ["sigma_net.0.weight", "sigma_net.0.bias", "sigma_net.2.weight", "sigma_net.2.bias",
         "color_net.0.weight", "color_net.1.weight", "color_net.2.weight"]


def freq(x, degree=2):
    out = [x]
    for f in range(degree):
        out += [torch.sin(x * 2.0 ** f), torch.cos(x * 2.0 ** f)]
    return torch.cat(out, dim=-1)


def sample(planes, x, agg="mean"):
    # planes [3,C,R,R]; x [M,3] in [-1,1]; plane projections (x,y), (x,z), (y,z); (a,b) -> (col,row)
    coords = [x[:, [0, 1]], x[:, [0, 2]], x[:, [1, 2]]]
    feats = []
    for p in range(3):
        g = coords[p].view(1, 1, -1, 2)
        f = F.grid_sample(planes[p:p + 1], g, mode="bilinear", padding_mode="zeros", align_corners=True)
        feats.append(f[0, :, 0, :].t())
    a, b, c = feats
    if agg == "product":
        return a * b * c
    if agg == "offset-product":
        return (1 + a) * (1 + b) * (1 + c) - 1
    assert agg == "mean", agg
    return (a + b + c) / 3


def main():
    op, d = sys.argv[1], sys.argv[2]
    assert op == "render"
    C, R, clamp, T_thresh = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
    agg = sys.argv[7] if len(sys.argv) > 7 else "mean"
    ld = lambda n: torch.from_numpy(np.load(os.path.join(d, n + ".npy"))).double()
    planes = ld("planes").requires_grad_(True)
    xyz, dirs, delta0, rays, gt = ld("xyz"), ld("dirs"), ld("delta0"), ld("rays").long(), ld("gt")
    W = {n: ld(n).requires_grad_(True) for n in NAMES}
    T = planes.clamp(-1, 1) if clamp else planes
    feat = sample(T, xyz, agg)
    cc = C * 3 // 4
    h = F.linear(F.softplus(F.linear(freq(feat[:, cc:]), W["sigma_net.0.weight"], W["sigma_net.0.bias"])),
                 W["sigma_net.2.weight"], W["sigma_net.2.bias"])
    sigma = TruncExp.apply(h[:, 0])
    x = torch.cat([freq(feat[:, :cc]), h[:, 1:], freq(dirs)], dim=-1)
    z0 = F.linear(x, W["color_net.0.weight"])
    z1 = F.linear(F.relu(z0), W["color_net.1.weight"])
    kink = min(z0.abs().min().item(), z1.abs().min().item())  # the ReLU input nearest its kink
    rgb = torch.sigmoid(F.linear(F.relu(z1), W["color_net.2.weight"]))
    preds = []
    for r in range(rays.shape[0]):
        off, cnt = int(rays[r, 0]), int(rays[r, 1])
        Tr = torch.ones((), dtype=torch.float64)
        acc = torch.zeros(3, dtype=torch.float64)
        A = torch.zeros((), dtype=torch.float64)
        for k in range(off, off + cnt):
            alpha = 1 - torch.exp(-sigma[k] * delta0[k])
            w = alpha * Tr
            acc = acc + w * rgb[k]
            A = A + w
            Tr = Tr * (1 - alpha)
            if float(Tr) < T_thresh:
                break
        preds.append(acc + (1 - A) * 1.0)
    pred = torch.stack(preds)
    loss = ((pred - gt) ** 2).mean()
    loss.backward()
    sv = lambda n, t: np.save(os.path.join(d, n + ".npy"), t.detach().numpy().astype(np.float32))
    sv("pred", pred)
    sv("loss", loss.reshape(1))
    sv("dplanes", planes.grad)
    sv("kink", torch.tensor([kink]))
    for n in NAMES:
        sv("d_" + n, W[n].grad)


if __name__ == "__main__":
    main()
