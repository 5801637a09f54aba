"""tests/ref/bench_fit.py N S C R [reps]: time one fitting training step in PyTorch CPU fp32 (the
decoder of fitting.md §5 on N x S packed samples of a [3,C,R,R] triplane, vectorised compositing,
MSE, backward into the triplane and the decoder) on $RHD_BENCH_THREADS threads; prints
"fit_step <wall ms> <cpu ms>", the best of `reps` (3) runs after a warm-up and the process CPU
time of that run. Used by tests/bench/bench_fit.c."""
import os
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(int(os.environ.get("RHD_BENCH_THREADS", "2")))


def freq(x):
    return torch.cat([x, torch.sin(x), torch.cos(x), torch.sin(2 * x), torch.cos(2 * x)], dim=-1)


def main():
    N, S, C, R = (int(a) for a in sys.argv[1:5])
    reps = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    M = N * S
    g = torch.Generator().manual_seed(0)
    planes = (0.1 * torch.randn(3, C, R, R, generator=g)).requires_grad_(True)
    xyz = torch.rand(M, 3, generator=g) * 1.8 - 0.9
    dirs = torch.tensor([0.0, 0.6, 0.8]).expand(M, 3)
    gt = torch.rand(N, 3, generator=g)
    cc, cd = C * 3 // 4, C // 4
    lin = lambda o, i, b=True: torch.nn.Linear(i, o, bias=b)
    s0, s2 = lin(128, 5 * cd), lin(129, 128)
    c0, c1, c2 = lin(128, 5 * cc + 128 + 15, False), lin(128, 128, False), lin(3, 128, False)
    params = list(s0.parameters()) + list(s2.parameters()) + list(c0.parameters()) + list(c1.parameters()) + list(c2.parameters())

    def step():
        T = planes.clamp(-1, 1)
        coords = [xyz[:, [0, 1]], xyz[:, [0, 2]], xyz[:, [1, 2]]]
        feat = sum(F.grid_sample(T[p:p + 1], coords[p].view(1, 1, -1, 2), align_corners=True)[0, :, 0, :].t()
                   for p in range(3)) / 3
        h = s2(F.softplus(s0(freq(feat[:, cc:]))))
        sigma = torch.exp(h[:, 0])
        x = torch.cat([freq(feat[:, :cc]), h[:, 1:], freq(dirs)], dim=-1)
        rgb = torch.sigmoid(c2(F.relu(c1(F.relu(c0(x))))))
        alpha = 1 - torch.exp(-sigma.view(N, S) * 0.0033829117)
        trans = torch.cumprod(torch.cat([torch.ones(N, 1), 1 - alpha[:, :-1]], dim=1), dim=1)
        w = alpha * trans
        pred = (w.unsqueeze(-1) * rgb.view(N, S, 3)).sum(1) + (1 - w.sum(1, keepdim=True))
        loss = ((pred - gt) ** 2).mean()
        for p in params + [planes]:
            p.grad = None
        loss.backward()

    step()
    best, cpu = 1e30, 0.0
    for _ in range(reps):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        step()
        if time.perf_counter() - wall0 < best:
            best, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print("fit_step %.3f %.3f" % (best * 1e3, cpu * 1e3))


if __name__ == "__main__":
    main()
