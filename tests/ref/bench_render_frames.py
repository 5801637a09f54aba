#!/usr/bin/env python3
"""tests/ref/bench_render_frames.py DIR S0 S1 [reps] [T_thresh]: PyTorch timings for
tests/bench/bench_render_frames.c. For each frame size S it decodes the samples our renderer
decoded (DIR/xyz_S.npy [M,3] world positions in [-1,1]^3, d0_S.npy [M], per ray in march order:
rays_S.npy [N,2] int32 (offset, count), dirs_S.npy [N,3] the ray directions) with the decoder of
fitting.md §5 (DIR/<state-dict name>.npy, DIR/planes.npy [3,C,R,R], no clamp), and composites
them with the renderer's early stop: a ray's sample is composited while the transmittance before
the previous one was >= T_thresh (1e-4), a slot with delta0 = 0 ends the ray, white background.

Written the way a PyTorch user would: F.grid_sample over the three planes (align_corners=True),
torch.cat of sin/cos, F.linear, decoding in chunks of 128K samples under torch.no_grad(), then a
vectorised compositing over the packed rays (segment cumsum of sigma*delta, index_add_). fp32,
CPU, torch.set_num_threads($RHD_BENCH_THREADS, default 2). One warm-up frame (the smaller size),
then the best of `reps` per size. Prints "frame<S> <wall ms> <cpu ms>" lines and, as "# " lines,
the largest difference from our image (DIR/img_S.npy) as a check that the workloads are equal."""
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

CHUNK = 1 << 17


def freq(x):
    return torch.cat([x, torch.sin(x), torch.cos(x), torch.sin(2 * x), torch.cos(2 * x)], dim=-1)


class Decoder:
    def __init__(self, d):
        def t(name):
            return torch.from_numpy(np.load(os.path.join(d, name + ".npy")))

        self.planes = t("planes")
        self.s0w, self.s0b, self.s2w, self.s2b = (t(n) for n in ("sigma_net.0.weight", "sigma_net.0.bias",
                                                                  "sigma_net.2.weight", "sigma_net.2.bias"))
        self.c0w, self.c1w, self.c2w = (t(n) for n in ("color_net.0.weight", "color_net.1.weight", "color_net.2.weight"))
        C = self.planes.shape[1]
        self.cc = C * 3 // 4

    def __call__(self, x, dirs):
        """x [n,3] in [-1,1]^3, dirs [n,3] -> sigma [n], rgb [n,3]"""
        n = x.shape[0]
        grid = torch.stack([x[:, [0, 1]], x[:, [0, 2]], x[:, [1, 2]]]).view(3, 1, n, 2)
        feat = F.grid_sample(self.planes, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        feat = feat.mean(0)[:, 0, :].t()  # [n, C]
        h = F.linear(F.softplus(F.linear(freq(feat[:, self.cc:]), self.s0w, self.s0b)), self.s2w, self.s2b)
        sigma = torch.exp(h[:, 0])
        z = torch.cat([freq(feat[:, :self.cc]), h[:, 1:], freq(dirs)], dim=-1)
        rgb = torch.sigmoid(F.linear(F.relu(F.linear(F.relu(F.linear(z, self.c0w)), self.c1w)), self.c2w))
        return sigma, rgb


def render(dec, xyz, d0, rays, dirs, T_thresh):
    N, M = rays.shape[0], xyz.shape[0]
    counts = rays[:, 1].long()
    ray_of = torch.repeat_interleave(torch.arange(N), counts)  # [M]
    sigma, rgb = torch.empty(M), torch.empty(M, 3)
    with torch.no_grad():
        for a in range(0, M, CHUNK):
            b = min(a + CHUNK, M)
            sigma[a:b], rgb[a:b] = dec(xyz[a:b], dirs[ray_of[a:b]])
        start, has = rays[:, 0].long(), counts > 0

        def exclusive(v):  # per ray: the sum of v over the ray's earlier samples
            c = torch.cumsum(v, 0) - v
            base = torch.zeros(N, dtype=v.dtype)
            base[has] = c[start[has]]
            return c - base[ray_of]

        tau = (sigma * d0).double()
        T = torch.exp(-exclusive(tau)).float()  # transmittance before each sample
        alpha = 1 - torch.exp(-sigma * d0)
        # a sample is composited while the ray runs: no earlier sample of the ray ended it (T below
        # the threshold before that sample, or an empty slot)
        ended = ((T < T_thresh) | (d0 == 0)).long()
        keep = (exclusive(ended) == 0) & (d0 != 0)
        w = torch.where(keep, alpha * T, torch.zeros(()))
        img = torch.zeros(N, 3).index_add_(0, ray_of, w[:, None] * rgb)
        acc = torch.zeros(N).index_add_(0, ray_of, w)
        return img + (1 - acc)[:, None]


def main():
    d, sizes = sys.argv[1], [int(a) for a in sys.argv[2:4]]
    reps = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    T_thresh = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-4
    torch.set_num_threads(int(os.environ.get("RHD_BENCH_THREADS", "2")))
    dec = Decoder(d)

    def load(name, S):
        return torch.from_numpy(np.load(os.path.join(d, "%s_%d.npy" % (name, S))))

    warm = True
    for S in sizes:
        args = (dec, load("xyz", S), load("d0", S), load("rays", S), load("dirs", S), T_thresh)
        if warm:
            render(*args)
            warm = False
        best, cpu = float("inf"), 0.0
        for _ in range(reps):
            t0, c0 = time.perf_counter(), time.process_time()
            img = render(*args)
            dt = time.perf_counter() - t0
            if dt < best:
                best, cpu = dt, time.process_time() - c0
        ours = load("img", S)
        diff = (img - ours).abs()
        print("# torch %dx%d: %d samples, max |torch - ours| %.3g (mean %.3g)" % (S, S, args[1].shape[0],
                                                                                 diff.max().item(), diff.mean().item()))
        print("frame%d %.3f %.3f" % (S, best * 1e3, cpu * 1e3))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
