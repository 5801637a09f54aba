#!/usr/bin/env python3
"""tests/ref/ref_diffusion.py JOB DIR...: an independent PyTorch/NumPy reference of the Gaussian
diffusion math and samplers, written from shared/spec/diffusion.md §3.3-§3.10 and §10.5-§10.6
(the original code is not available): float64 numpy tables, each coefficient rounded to fp32 when
applied to a tensor, fp32 tensor arithmetic in the original's operation order.

Each DIR/params.json holds one job's parameters; inputs and outputs are .npy files in DIR.
  loss     x0, eps, out [B,C_out,HW] -> xt, post_mean, terms (float64 [B,3]: mse, vb, loss),
           loss (float64 [1]), dout (autograd of the fp32 batch loss wrt out)
  sample   x_T, z_0..z_{n-1} [B,C,HW] -> x (final), traj [n,B,C,HW] (x after each step),
           with the toy denoiser out[b,c,p] = a[c] x[b, c % C, p] + (tt[c] t_model + (u or k)[c])
  tsampler history [T,10] (float64), count [T] (int32) -> probs (float64 [T]) as resample.py
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_schedule import betas_of, ddim, space  # noqa: E402  (the independent schedule reference)


class Chain:
    """float64 tables of a (possibly respaced) chain (spec §3.1, §3.8)."""

    def __init__(self, name, T, respacing=""):
        b = betas_of(name, T)
        self.T_orig = T
        tmap = np.arange(T)
        if respacing:
            use = space(T, respacing)
            ab = np.cumprod(1 - b)[use]
            b = 1 - ab / np.concatenate([[1.0], ab[:-1]])
            tmap = np.array(use)
        self.timestep_map = tmap
        self.T = len(b)
        self.betas = b
        a = 1 - b
        self.ab = np.cumprod(a)
        self.ab_prev = np.concatenate([[1.0], self.ab[:-1]])
        self.sqrt_ab = np.sqrt(self.ab)
        self.sqrt_1mab = np.sqrt(1 - self.ab)
        self.sqrt_recip = np.sqrt(1 / self.ab)
        self.sqrt_recipm1 = np.sqrt(1 / self.ab - 1)
        var = b * (1 - self.ab_prev) / (1 - self.ab)
        self.post_var = var
        self.post_lv_clipped = np.log(np.concatenate([[var[1]], var[1:]]))
        self.coef1 = b * np.sqrt(self.ab_prev) / (1 - self.ab)
        self.coef2 = (1 - self.ab_prev) * np.sqrt(a) / (1 - self.ab)
        self.log_betas = np.log(b)
        self.fixed_large_lv = np.log(np.concatenate([[var[1]], b[1:]]))

    def model_t(self, t, B, scale):
        """_WrappedModel: map, then float() * scale (fp32)."""
        s = (1000.0 / self.T_orig) if scale <= 0 else scale
        return torch.tensor([int(self.timestep_map[t])] * B).float() * s


def ex(arr, t, ndim=3):
    """_extract_into_tensor: float64 entry -> fp32, broadcast over [B, C, HW]."""
    t = torch.as_tensor(t)
    v = torch.from_numpy(np.asarray(arr, dtype=np.float64))[t].float()
    return v.view(-1, *([1] * (ndim - 1)))


def mean_flat(x):
    return x.mean(dim=list(range(1, x.ndim)))


def normal_kl(m1, lv1, m2, lv2):
    return 0.5 * (-1.0 + lv2 - lv1 + torch.exp(lv1 - lv2) + ((m1 - m2) ** 2) * torch.exp(-lv2))


def approx_cdf(x):
    return 0.5 * (1.0 + torch.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * torch.pow(x, 3))))


def disc_gauss_loglik(x, means, log_scales):
    c = x - means
    inv = torch.exp(-log_scales)
    cdf_plus = approx_cdf(inv * (c + 1.0 / 255))
    cdf_min = approx_cdf(inv * (c - 1.0 / 255))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_1m_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    delta = cdf_plus - cdf_min
    return torch.where(x < -0.999, log_cdf_plus,
                       torch.where(x > 0.999, log_1m_cdf_min, torch.log(delta.clamp(min=1e-12))))


def x0_from_pred(ch, pred, x, out, t):
    if pred == "xstart":
        return out
    if pred == "v":
        return ex(ch.sqrt_ab, t) * x - ex(ch.sqrt_1mab, t) * out
    return ex(ch.sqrt_recip, t) * x - ex(ch.sqrt_recipm1, t) * out


def learned_lv(ch, v, t):
    frac = (v + 1) / 2
    return frac * ex(ch.log_betas, t) + (1 - frac) * ex(ch.post_lv_clipped, t)


def job_loss(d, p):
    ch = Chain(p["schedule"], p["T"], p.get("respacing", ""))
    C, pred, learned = p["C"], p["pred"], p["var"] == "learned_range"
    t = torch.tensor(p["t"])
    w = torch.tensor(p["w"], dtype=torch.float64)
    x0 = torch.from_numpy(np.load(f"{d}/x0.npy"))
    eps = torch.from_numpy(np.load(f"{d}/eps.npy"))
    out = torch.from_numpy(np.load(f"{d}/out.npy")).requires_grad_(True)
    xt = ex(ch.sqrt_ab, t) * x0 + ex(ch.sqrt_1mab, t) * eps
    post_mean = ex(ch.coef1, t) * x0 + ex(ch.coef2, t) * xt
    predc = out[:, :C]
    target = {"eps": eps, "xstart": x0, "v": ex(ch.sqrt_ab, t) * eps - ex(ch.sqrt_1mab, t) * x0}[pred]
    mse = mean_flat((target - predc) ** 2)
    vb = torch.zeros_like(mse)
    if learned:
        frozen = predc.detach()
        v = out[:, C:]
        x0h = x0_from_pred(ch, pred, xt, frozen, t)
        mp = ex(ch.coef1, t) * x0h + ex(ch.coef2, t) * xt
        lp = learned_lv(ch, v, t)
        kl = mean_flat(normal_kl(post_mean, ex(ch.post_lv_clipped, t), mp, lp)) / np.log(2.0)
        nll = mean_flat(-disc_gauss_loglik(x0, mp, 0.5 * lp)) / np.log(2.0)
        vb = torch.where(t == 0, nll, kl) * (ch.T / 1000.0)
    loss = mse + vb
    total = (loss.double() * w).mean()
    total.backward()
    np.save(f"{d}/xt.npy", xt.detach().numpy())
    np.save(f"{d}/post_mean.npy", post_mean.detach().numpy())
    np.save(f"{d}/terms.npy", torch.stack([mse, vb, loss], 1).detach().double().numpy())
    np.save(f"{d}/loss.npy", np.array([total.item()]))
    np.save(f"{d}/dout.npy", out.grad.numpy().astype(np.float32))


def toy_model(p, x, tm, null):
    C = p["C"]
    a, tt, k, u = (torch.tensor(p[n], dtype=torch.float32)[None, :, None] for n in ("a", "tt", "k", "u"))
    C_out = a.shape[1]
    xx = x[:, [c % C for c in range(C_out)]]
    off = torch.where(torch.tensor(null)[:, None, None].bool(), u, k)
    return a * xx + (tt * tm[:, None, None] + off)


def guided(p, x, tm):
    B, s = x.shape[0], p["guidance"]
    if s == 1.0:
        return toy_model(p, x, tm, [0] * B)
    o = toy_model(p, torch.cat([x, x]), torch.cat([tm, tm]), [0] * B + [1] * B)
    c, u = o[:B], o[B:]
    g = p["C_guided"]
    e = u[:, :g] + s * (c[:, :g] - u[:, :g])
    return torch.cat([e, c[:, g:]], 1)


def job_sample(d, p):
    ch = Chain(p["schedule"], p["T"], p.get("respacing", ""))
    C, pred, clip, kind = p["C"], p["pred"], p["clip"], p["kind"]
    learned = p["var"] == "learned_range"
    x = torch.from_numpy(np.load(f"{d}/x_T.npy"))
    B = x.shape[0]
    traj = []
    if kind == "ddim-dpm":
        ts = ddim(ch.T, p["steps"])
        a = ch.ab[ts]
        ap = np.concatenate([[1.0], ch.ab[ts[:-1]]])
        sig = p["eta"] * np.sqrt((1 - ap) / (1 - a)) * np.sqrt(1 - a / ap)
        s1ma = np.sqrt(1.0 - a)
        order = list(reversed(range(len(ts))))
        steps = [ts[i] for i in order]
    else:
        steps = list(reversed(range(ch.T)))
    for j, t in enumerate(steps):
        z = torch.from_numpy(np.load(f"{d}/z_{j}.npy"))
        out = guided(p, x, ch.model_t(t, B, p["time_scale"]))
        tb = torch.tensor([t] * B)
        if kind == "ddim-dpm":
            i = order[j]
            full = lambda v: torch.full((B, 1, 1), float(v))  # noqa: E731  (fp32)
            a_t, a_prev, sigma_t, s1 = full(a[i]), full(ap[i]), full(sig[i]), full(s1ma[i])
            if pred == "eps":
                e = out[:, :C]
                x0 = (x - s1 * e) / a_t.sqrt()
            elif pred == "xstart":
                x0 = out[:, :C]
                e = (ex(ch.sqrt_recip, tb) * x - x0) / ex(ch.sqrt_recipm1, tb)
            else:  # v with the sampler's own sqrt(a), sqrt(1 - a)
                x0 = a_t.sqrt() * x - s1 * out[:, :C]
                e = a_t.sqrt() * out[:, :C] + s1 * x
            if clip:
                x0 = x0.clamp(-1, 1)
            dir_xt = (1.0 - a_prev - sigma_t ** 2).clamp(min=0).sqrt() * e
            x = a_prev.sqrt() * x0 + dir_xt + sigma_t * z * 1.0
        elif kind == "ddim":
            x0 = x0_from_pred(ch, pred, x, out[:, :C], tb)
            if clip:
                x0 = x0.clamp(-1, 1)
            e = (ex(ch.sqrt_recip, tb) * x - x0) / ex(ch.sqrt_recipm1, tb)
            ab, abp = ex(ch.ab, tb), ex(ch.ab_prev, tb)
            sigma = p["eta"] * torch.sqrt((1 - abp) / (1 - ab)) * torch.sqrt(1 - ab / abp)
            mean_pred = x0 * torch.sqrt(abp) + torch.sqrt((1 - abp - sigma ** 2).clamp(min=0)) * e
            nonzero = (tb != 0).float().view(-1, 1, 1)
            x = mean_pred + nonzero * sigma * z
        else:  # ddpm
            if learned:
                lv = learned_lv(ch, out[:, C:], tb)
            else:
                lv = ex(ch.fixed_large_lv, tb).expand(x.shape)
            x0 = x0_from_pred(ch, pred, x, out[:, :C], tb)
            if clip:
                x0 = x0.clamp(-1, 1)
            mean = ex(ch.coef1, tb) * x0 + ex(ch.coef2, tb) * x
            nonzero = (tb != 0).float().view(-1, 1, 1)
            x = mean + nonzero * torch.exp(0.5 * lv) * z
        traj.append(x.clone())
    np.save(f"{d}/x.npy", x.numpy())
    np.save(f"{d}/traj.npy", torch.stack(traj).numpy())


def job_tsampler(d, p):
    """resample.py LossSecondMomentResampler.weights()."""
    hist = np.load(f"{d}/history.npy")
    count = np.load(f"{d}/count.npy")
    T = hist.shape[0]
    if not (count == 10).all():
        probs = np.ones(T) / T
    else:
        w = np.sqrt(np.mean(hist ** 2, axis=-1))
        w /= np.sum(w)
        w *= 1 - 0.001
        w += 0.001 / len(w)
        probs = w
    np.save(f"{d}/probs.npy", probs)


def main():
    job = sys.argv[1]
    torch.set_num_threads(1)
    for d in sys.argv[2:]:  # one job per folder, several folders per run (one interpreter start)
        with open(f"{d}/params.json") as fh:
            p = json.load(fh)
        {"loss": job_loss, "sample": job_sample, "tsampler": job_tsampler}[job](d, p)


if __name__ == "__main__":
    main()
