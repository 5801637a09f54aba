#!/usr/bin/env python3
"""tests/ref/ref_render.py: independent PyTorch references for the fitting-side kernels
(kernels/triplane, freq_encode, composite, losses, optim), written from fitting.md §4-§8.

Usage: ref_render.py <op> <dir> [args...] [+ <op> <dir> [args...] ...]: several jobs in one run
(a '+' separates them) so that a test pays for one torch import. Inputs are <dir>/<name>.npy written by the C test,
outputs are written to <dir>/<name>.npy (float32). Ops:
  triplane <dir> <clamp> <agg>     planes, points, dfeats, dplanes0 -> feats, dplanes (agg: mean,
                                   product or offset-product of the three planes' samples)
  freq <dir> <degree>              x, dy -> y, dx
  composite <dir> <T_thresh> <bg_r> <bg_g> <bg_b> <use_dA> <use_nearfar>
                                   sigma, rgb, delta0, delta1, rays, dpred [, dA] [, nears, fars]
                                   -> pred, A, depth, n_used, dsigma, drgb
  losses <dir> <clamp> <s_mse> <s_l1> <s_tv>
                                   x, y, planes, X, g0, gX0 -> mse (loss as (hi, lo), see save_scalar), mse_dx, tl1, tl1_grad,
                                   ttv, ttv_grad, tv, tv_grad (the _grad outputs include g0, since
                                   the regulariser gradients are accumulated)
  adam <dir> <mode> <lr> <b1> <b2> <eps> <wd>
                                   p0, grads [S, n] -> p, m, v after S steps of torch.optim.Adam/AdamW
  clip <dir> <max_norm> <sizes,...>
                                   g -> norm (hi, lo), g_clipped (torch.nn.utils.clip_grad_norm_ over
                                   the tensors of the given sizes, taken consecutively from g)
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def load(d, name):
    return torch.from_numpy(np.load(os.path.join(d, name + ".npy")))


def save_scalar(d, name, x):
    """A float64 scalar as two float32 values (hi, lo) with hi + lo == x to ~1e-14."""
    hi = np.float32(x)
    lo = np.float32(float(x) - float(hi))
    save(d, name, np.array([hi, lo], dtype=np.float32))


def save(d, name, t):
    a = t.detach().cpu().numpy() if torch.is_tensor(t) else np.asarray(t)
    np.save(os.path.join(d, name + ".npy"), np.ascontiguousarray(a, dtype=np.float32))


# --- §4 triplane sampling -------------------------------------------------------------------------
def triplane(d, clamp, agg):
    planes = load(d, "planes").clone().requires_grad_(True)  # [3, C, R, R]
    points = load(d, "points")  # [N, 3]
    dfeats = load(d, "dfeats")  # [N, C]
    dplanes0 = load(d, "dplanes0")
    T = torch.clamp(planes, -1.0, 1.0) if clamp else planes
    axes = [(0, 1), (0, 2), (1, 2)]  # plane 0 (x, y), plane 1 (x, z), plane 2 (y, z)
    samples = []
    for p, (ia, ib) in enumerate(axes):
        a, b = points[:, ia], points[:, ib]
        u, v = (a + 1) / 2, (b + 1) / 2
        inside = (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)  # NaN compares false: outside
        # grid_sample with align_corners=True is exactly §4's bilinear rule for in-range points
        # (on the u=1 / v=1 edge the extra tap has weight 0 and zero padding adds nothing).
        # Out-of-range planes must give 0 for the whole plane (not torch's per-tap zero padding),
        # so they are fed a harmless coordinate and masked.
        grid = torch.stack([torch.where(inside, a, torch.zeros_like(a)), torch.where(inside, b, torch.zeros_like(b))], -1)
        f = F.grid_sample(T[p:p + 1], grid.view(1, 1, -1, 2), mode="bilinear", padding_mode="zeros",
                          align_corners=True)  # [1, C, 1, N]
        f = f[0, :, 0, :].t()  # [N, C]
        samples.append(torch.where(inside[:, None], f, torch.zeros_like(f)))
    s0, s1, s2 = samples
    if agg == "mean":
        feats = (s0 + s1 + s2) / 3
    elif agg == "product":
        feats = s0 * s1 * s2
    elif agg == "offset-product":
        feats = (1 + s0) * (1 + s1) * (1 + s2) - 1
    else:
        sys.exit("ref_render.py: unknown aggregation '%s'" % agg)
    (feats * dfeats).sum().backward()
    save(d, "feats", feats)
    save(d, "dplanes", dplanes0 + planes.grad)


# --- §5.1 frequency encoding ----------------------------------------------------------------------
def freq(d, degree):
    x = load(d, "x").clone().requires_grad_(True)
    dy = load(d, "dy")
    parts = [x]
    for f in range(degree):
        parts += [torch.sin(x * 2.0 ** f), torch.cos(x * 2.0 ** f)]
    y = torch.cat(parts, -1)
    (y * dy).sum().backward()
    save(d, "y", y)
    save(d, "dx", x.grad)


# --- §6.1 / §6.3 training compositing -------------------------------------------------------------
def composite(d, T_thresh, bg, use_dA, use_nearfar):
    sigma = load(d, "sigma").clone().requires_grad_(True)
    rgb = load(d, "rgb").clone().requires_grad_(True)
    delta0, delta1 = load(d, "delta0"), load(d, "delta1")
    rays = load(d, "rays").long()
    dpred = load(d, "dpred")
    dA = load(d, "dA") if use_dA else torch.zeros(rays.shape[0])
    bg = torch.tensor(bg, dtype=torch.float32)
    preds, As, depths, used = [], [], [], []
    for r in range(rays.shape[0]):
        off, cnt = int(rays[r, 0]), int(rays[r, 1])
        T = torch.ones(())
        acc = torch.zeros(3)
        A = torch.zeros(())
        s = torch.zeros(())
        depth = torch.zeros(())
        n = 0
        for k in range(off, off + cnt):
            alpha = 1 - torch.exp(-sigma[k] * delta0[k])
            w = alpha * T
            acc = acc + w * rgb[k]
            A = A + w
            s = s + delta1[k]
            depth = depth + w * s
            T = T * (1 - alpha)
            n += 1
            if T.item() < T_thresh:  # checked after the update (§6.1)
                break
        preds.append(acc + (1 - A) * bg)
        As.append(A)
        depths.append(depth.detach())
        used.append(n)
    pred = torch.stack(preds).reshape(-1, 3)
    A = torch.stack(As)
    depth = torch.stack(depths)
    if use_nearfar:
        nears, fars = load(d, "nears"), load(d, "fars")
        ok = fars > nears
        depth = torch.where(ok, torch.clamp(depth - nears, min=0) / torch.where(ok, fars - nears, torch.ones_like(fars)),
                            torch.zeros_like(depth))
    loss = (pred * dpred).sum() + (A * dA).sum()
    if loss.requires_grad:
        dsigma, drgb = torch.autograd.grad(loss, [sigma, rgb], allow_unused=True)
    else:  # no ray has a sample
        dsigma = drgb = None
    save(d, "pred", pred)
    save(d, "A", A)
    save(d, "depth", depth)
    save(d, "n_used", torch.tensor(used, dtype=torch.float32))
    save(d, "dsigma", dsigma if dsigma is not None else torch.zeros_like(sigma))
    save(d, "drgb", drgb if drgb is not None else torch.zeros_like(rgb))


# --- §7.1 / §7.2 losses (float64, so the loss values are accurate references) ---------------------
def tv_of(X):  # X [C, H, W]: the original's TV with its scaling (batch 1)
    C, H, W = X.shape
    h = ((X[:, 1:, :] - X[:, :-1, :]) ** 2).sum()
    w = ((X[:, :, 1:] - X[:, :, :-1]) ** 2).sum()
    nh, nw = C * (H - 1) * W, C * H * (W - 1)
    return 2 * ((h / nh if nh else 0 * h) + (w / nw if nw else 0 * w))


def losses(d, clamp, s_mse, s_l1, s_tv):
    x = load(d, "x").double().requires_grad_(True)
    y = load(d, "y").double()
    mse = F.mse_loss(x, y)
    (mse * s_mse).backward()
    save_scalar(d, "mse", mse.item())
    save(d, "mse_dx", x.grad)

    g0 = load(d, "g0").double()  # the accumulated gradients start from g0
    planes = load(d, "planes").double().requires_grad_(True)
    T = torch.clamp(planes, -1, 1) if clamp else planes
    tl1 = sum(T[p].abs().mean() for p in range(3))
    (tl1 * s_l1).backward()
    save_scalar(d, "tl1", tl1.item())
    save(d, "tl1_grad", g0 + planes.grad)

    planes.grad = None
    T = torch.clamp(planes, -1, 1) if clamp else planes
    ttv = sum(1e-2 * tv_of(T[p]) for p in range(3))
    (ttv * s_tv).backward()
    save_scalar(d, "ttv", ttv.item())
    save(d, "ttv_grad", g0 + planes.grad)

    X = load(d, "X").double().requires_grad_(True)
    gX0 = load(d, "gX0").double()
    tv = tv_of(torch.clamp(X, -1, 1) if clamp else X)
    (tv * s_tv).backward()
    save_scalar(d, "tv", tv.item())
    save(d, "tv_grad", gX0 + X.grad)


# --- §8 optimisers --------------------------------------------------------------------------------
def adam(d, mode, lr, b1, b2, eps, wd):
    p = torch.nn.Parameter(load(d, "p0").clone())
    grads = load(d, "grads")
    cls = torch.optim.AdamW if mode == "adamw" else torch.optim.Adam
    opt = cls([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, foreach=False)
    for s in range(grads.shape[0]):
        p.grad = grads[s].clone()
        opt.step()
    st = opt.state[p]
    save(d, "p", p)
    save(d, "m", st["exp_avg"])
    save(d, "v", st["exp_avg_sq"])


def clip(d, max_norm, sizes):
    g = load(d, "g")
    params, o = [], 0
    for n in sizes:
        t = torch.nn.Parameter(torch.zeros(n))
        t.grad = g[o:o + n].clone()
        params.append(t)
        o += n
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    save_scalar(d, "norm", float(norm))
    save(d, "g_clipped", torch.cat([t.grad for t in params]))


def run(op, d, args):
    if op == "triplane":
        triplane(d, int(args[0]), args[1])
    elif op == "freq":
        freq(d, int(args[0]))
    elif op == "composite":
        composite(d, float(args[0]), [float(a) for a in args[1:4]], int(args[4]), int(args[5]))
    elif op == "losses":
        losses(d, int(args[0]), float(args[1]), float(args[2]), float(args[3]))
    elif op == "adam":
        adam(d, args[0], *[float(a) for a in args[1:6]])
    elif op == "clip":
        clip(d, float(args[0]), [int(s) for s in args[1].split(",")])
    else:
        sys.exit("ref_render.py: unknown op '%s'" % op)


def main():
    torch.set_num_threads(1)
    job = []
    for a in sys.argv[1:] + ["+"]:
        if a != "+":
            job.append(a)
        elif job:
            run(job[0], job[1], job[2:])
            job = []


if __name__ == "__main__":
    main()
