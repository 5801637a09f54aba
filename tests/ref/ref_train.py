#!/usr/bin/env python3
"""tests/ref/ref_train.py DIR: one training micro-batch of the base model in PyTorch, float64, from
the independent references: the network of ref_unet.py (loaded strict from DIR/params.safetensors)
in float64, and the diffusion math of ref_diffusion.py (q_sample, the hybrid loss: eps MSE + VB
with the prediction detached, the discretised decoder NLL at t = 0, x T/1000) in fp32 in the
original's order, as the original computes it: the decoder NLL at t = 0 is ill-conditioned (a
variance of ~1e-5), so a float64 loss differs from any fp32 implementation by ~1e-3 there.

Inputs (DIR): config.json (the UNet config), params.safetensors, x0, eps, ref, F0..F2 (float32),
t (int32 [N]), tm (the network's time input, float32 [N]), w (float64 [N]: the loss is
mean(w * (mse + vb))), pred.txt (optional: eps, the original, xstart or v: what the network predicts,
hence the MSE's target and how the VB term reads x0). Outputs: y (the network output), terms (float64 [N,3]: mse, vb, loss),
loss (float64 [1]), grads.safetensors (every parameter's gradient)."""
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_diffusion import Chain, disc_gauss_loglik, ex, learned_lv, mean_flat, normal_kl, x0_from_pred  # noqa: E402
from ref_unet import UNet  # noqa: E402


def load(d, name, dtype=np.float64):
    return torch.from_numpy(np.load(f"{d}/{name}.npy").astype(dtype))


def main():
    d = sys.argv[1]
    torch.set_num_threads(1)
    c = json.load(open(f"{d}/config.json"))
    m = UNet(c)
    m.load_state_dict(load_file(f"{d}/params.safetensors"), strict=True)
    m.double()
    ch = Chain("cosine_light", 1000)
    t = torch.from_numpy(np.load(f"{d}/t.npy").astype(np.int64))
    x0, eps = load(d, "x0", np.float32), load(d, "eps", np.float32)
    xt = ex(ch.sqrt_ab, t, 4) * x0 + ex(ch.sqrt_1mab, t, 4) * eps  # fp32, as the original
    out = m(xt.double(), load(d, "tm"), load(d, "ref"), [load(d, f"F{i}") for i in range(3)]).float()
    C = x0.shape[1]
    N = x0.shape[0]
    flat = lambda a: a.reshape(N, a.shape[1], -1)  # noqa: E731  [N, C, HW] as the loss sees it
    out3, x03, xt3, eps3 = flat(out), flat(x0), flat(xt), flat(eps)
    kind = open(f"{d}/pred.txt").read().strip() if os.path.exists(f"{d}/pred.txt") else "eps"
    target = {"eps": eps3, "xstart": x03, "v": ex(ch.sqrt_ab, t) * eps3 - ex(ch.sqrt_1mab, t) * x03}[kind]
    pred = out3[:, :C]
    mse = mean_flat((target - pred) ** 2)
    frozen = pred.detach()
    x0h = x0_from_pred(ch, kind, xt3, frozen, t)
    mp = ex(ch.coef1, t) * x0h + ex(ch.coef2, t) * xt3
    lp = learned_lv(ch, out3[:, C:], t)
    post_mean = ex(ch.coef1, t) * x03 + ex(ch.coef2, t) * xt3
    kl = mean_flat(normal_kl(post_mean, ex(ch.post_lv_clipped, t), mp, lp)) / np.log(2.0)
    nll = mean_flat(-disc_gauss_loglik(x03, mp, 0.5 * lp)) / np.log(2.0)
    vb = torch.where(t == 0, nll, kl) * (ch.T / 1000.0)
    loss = mse + vb
    total = (loss * load(d, "w")).mean()
    total.backward()
    print(f"ref_train: pred {kind}, loss {total.item():.6f}, {sum(p.numel() for p in m.parameters())} parameters, network float64, loss fp32")
    np.save(f"{d}/y.npy", out.detach().float().numpy())
    np.save(f"{d}/terms.npy", torch.stack([mse, vb, loss], 1).detach().double().numpy())
    np.save(f"{d}/loss.npy", np.array([total.item()]))
    save_file({k: (p.grad if p.grad is not None else torch.zeros_like(p)).float().contiguous()
               for k, p in m.named_parameters()}, f"{d}/grads.safetensors")


if __name__ == "__main__":
    main()
