#!/usr/bin/env python3
"""tests/ref/bench_march.py: timings of the NumPy reference (tests/ref/ref_march.py) for
tests/bench/bench_march.c. Prints "<key> <ms>" lines, already scaled to the C benchmark's sizes:
the reference is far too slow at full size, so it runs
  march_train   the per-ray Python loop on the first 64 of the 8192 rays, x128
  grid_full_*   a full update at H = 128 (2.1M cells), x8
  grid_partial  a partial update at H = 128 after 16 full ones, x8
  mark          mark_untrained with the 300 cameras at H = 64, x64
Linear scaling is exact for the grid work (per cell) and approximate for the march (per ray).
NumPy runs single-threaded; torch.set_num_threads($RHD_BENCH_THREADS) would not change it.
Usage: bench_march.py <dir> [reps] with <dir>/bits.npy (256^3 bitfield), o.npy, d.npy, poses.npy."""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_march as R  # noqa: E402

F = np.float32


def best(fn, reps):
    t = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t * 1e3


def main():
    d = sys.argv[1]
    reps = min(int(sys.argv[2]) if len(sys.argv) > 2 else 3, 2)
    out = {}

    # training march, 64 rays of the 8192, the scripts' settings (H 256, dt_gamma 0, noise on)
    bits, o, dd = R.load(d, "bits"), R.load(d, "o"), R.load(d, "d")
    mr = R.Marcher(bits, 256, 1, 1.0, 1024, 0.0)
    stream = (5 << 32) | 0

    def march():
        n = 0
        for r in range(64):
            near, far = R.near_far_one(o[r], dd[r], F(1), F(0.2))
            t0 = near + mr.dt(near) * R.noise_of(1, 1, stream, r)
            s, _ = mr.march(o[r], dd[r], t0, far, 1024)
            n += len(s)
        return n

    out["march_train"] = best(march, 1) * 128

    # a full update at H = 128
    H, C = 128, 1
    grid = np.zeros(C * H ** 3, dtype=F)
    q = {}

    def queries():
        q["xyz"], q["cells"] = R.grid_queries(grid, H, C, 1.0, True, 7, (6 << 32) | 0)

    tq = best(queries, reps)
    sigma = R.sphere_density(q["xyz"])
    ta = best(lambda: R.grid_apply(grid.copy(), q["cells"], sigma, F(0.95), 10.0), reps)
    out["grid_full_q"], out["grid_full_a"], out["grid_full"] = tq * 8, ta * 8, (tq + ta) * 8

    # 16 full updates, then time a partial one
    for k in range(16):
        R.grid_update(grid, H, C, 1.0, F(0.95), 10.0, 16, k, 7, "sphere")

    # time the queries and the apply, not the density
    t_best = float("inf")
    for _ in range(reps):
        g = grid.copy()
        t0 = time.perf_counter()
        xyz, cells = R.grid_queries(g, H, C, 1.0, False, 7, (6 << 32) | 16)
        t1 = time.perf_counter()
        s = R.sphere_density(xyz)
        t2 = time.perf_counter()
        R.grid_apply(g, cells, s, F(0.95), 10.0)
        t3 = time.perf_counter()
        t_best = min(t_best, (t1 - t0) + (t3 - t2))
    out["grid_partial"] = t_best * 1e3 * 8

    # mark_untrained at H = 64 with the 300 cameras
    poses = R.load(d, "poses").astype(F)
    intr = np.array([711.1, 711.1, 256.0, 256.0], dtype=F)
    out["mark"] = best(lambda: R.mark_untrained(poses, intr, 64, 1, 1.0), 1) * 64

    for k, v in out.items():
        print(k, "%.3f" % v)


if __name__ == "__main__":
    main()
