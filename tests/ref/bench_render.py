#!/usr/bin/env python3
"""tests/ref/bench_render.py: PyTorch timings for tests/bench/bench_render.c, same shapes, fp32,
CPU, torch.set_num_threads($RHD_BENCH_THREADS, default 2). Prints "<key> <wall ms> <cpu ms>" lines
(the best of `reps` runs after a warm-up, and the process CPU time of that run). The computations are written the way a PyTorch user would:
grid_sample over the 3 planes in one batched call, torch.cat of sin/cos, vectorised compositing
with the same early-stop mask, autograd for the backward passes, torch.optim.Adam."""
import os
import sys
import time

import torch
import torch.nn.functional as F


def best(fn, reps):
    """Best wall time (ms) of `reps` runs after a warm-up, with the process CPU time of that run."""
    fn()
    t, c = float("inf"), 0.0
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        dt = time.perf_counter() - t0
        if dt < t:
            t, c = dt, time.process_time() - c0
    return t * 1e3, c * 1e3


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    torch.set_num_threads(int(os.environ.get("RHD_BENCH_THREADS", "2")))
    torch.manual_seed(0)
    out = {}

    # triplane sampling [3,32,512,512] at 1M points (in range, no clamp), mean over the planes
    C, R, N = 32, 512, 1 << 20
    planes = (torch.randn(3, C, R, R) * 0.5).requires_grad_(True)
    g = torch.randn(C, N)
    # 1M uniformly random points, then 8192 rays x 128 consecutive samples (dt = 2 sqrt3/1024)
    o = torch.rand(8192, 1, 3) * 2 - 1
    d = torch.nn.functional.normalize(torch.randn(8192, 1, 3), dim=-1)
    rays = torch.clamp(o + torch.arange(128).view(1, -1, 1) * 0.0033829117 * d, -1, 1).view(N, 3)
    for key, pts in (("", torch.rand(N, 3) * 2 - 1), ("_rays", rays)):
        grid = torch.stack([pts[:, [0, 1]], pts[:, [0, 2]], pts[:, [1, 2]]]).view(3, 1, N, 2)

        def fwd():
            return F.grid_sample(planes, grid, mode="bilinear", padding_mode="zeros", align_corners=True).mean(0)[:, 0, :]

        with torch.no_grad():
            out["triplane_fwd" + key] = best(fwd, reps)
        feats = fwd()
        out["triplane_bwd" + key] = best(lambda: torch.autograd.grad(feats, planes, g, retain_graph=True), reps)
        del feats
        if key == "_rays":  # rhd-fit --plane-agg offset-product: (1+s0)(1+s1)(1+s2) - 1

            def fwd_op():
                s = F.grid_sample(planes, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[:, :, 0, :]
                return (1 + s[0]) * (1 + s[1]) * (1 + s[2]) - 1

            with torch.no_grad():
                out["triplane_fwd_op" + key] = best(fwd_op, reps)
            feats = fwd_op()
            out["triplane_bwd_op" + key] = best(lambda: torch.autograd.grad(feats, planes, g, retain_graph=True), reps)
            del feats

    # L1 + TV regularisers of the clamped triplane, loss and gradient
    def reg():
        T = torch.clamp(planes, -1, 1)
        loss = 0
        for p in range(3):
            X = T[p]
            h = ((X[:, 1:, :] - X[:, :-1, :]) ** 2).sum() / (C * (R - 1) * R)
            w = ((X[:, :, 1:] - X[:, :, :-1]) ** 2).sum() / (C * R * (R - 1))
            loss = loss + 1e-4 * X.abs().mean() + 2e-2 * 1e-2 * 2 * (h + w)
        torch.autograd.grad(loss, planes)

    out["reg"] = best(reg, reps)

    # Adam over the triplane (25.2M parameters)
    p = torch.nn.Parameter(planes.detach().clone())
    p.grad = torch.randn_like(p)
    opt = torch.optim.Adam([p], lr=2e-2, betas=(0.9, 0.99), eps=1e-8)
    out["adam"] = best(opt.step, reps)
    del p, opt, planes

    # frequency encoding 1M x 35, degree 2
    x = (torch.rand(N, 35) * 2 - 1).requires_grad_(True)
    dy = torch.randn(N, 175)

    def enc():
        return torch.cat([x, torch.sin(x), torch.cos(x), torch.sin(2 * x), torch.cos(2 * x)], -1)

    with torch.no_grad():
        out["freq_fwd"] = best(enc, reps)
    y = enc()
    out["freq_bwd"] = best(lambda: torch.autograd.grad(y, x, dy, retain_graph=True), reps)
    del x, y, dy

    # compositing 8192 rays x 64 samples with the early-stop mask (T before the sample >= 1e-4)
    Rn, S = 8192, 64
    sigma = (torch.rand(Rn, S) * 50).requires_grad_(True)
    rgb = torch.rand(Rn, S, 3).requires_grad_(True)
    dt = torch.full((Rn, S), 0.0033829117)
    gp = torch.randn(Rn, 3)

    def comp():
        alpha = 1 - torch.exp(-sigma * dt)
        T = torch.cumprod(1 - alpha, 1)
        T_before = torch.cat([torch.ones(Rn, 1), T[:, :-1]], 1)
        w = alpha * T_before * (T_before >= 1e-4)
        img = (w[..., None] * rgb).sum(1)
        A = w.sum(1)
        depth = (w * torch.cumsum(dt, 1)).sum(1)
        return img + (1 - A)[:, None], A, depth

    with torch.no_grad():
        out["comp_fwd"] = best(comp, reps)
    pred = comp()[0]
    out["comp_bwd"] = best(lambda: torch.autograd.grad(pred, [sigma, rgb], gp, retain_graph=True), reps)

    for k, (t, c) in out.items():
        print(k, "%.3f %.3f" % (t, c))


if __name__ == "__main__":
    main()
