#!/usr/bin/env python3
"""tests/ref/ref_march.py: an independent NumPy reference for rays, near/far, the occupancy grid,
the training and inference marches and the spiral camera path, written from fitting.md §1.2-§3.8
and §10.3 (and the numbering conventions documented in kernels/rays.h, occgrid.h, march.h).

fp32 arithmetic is done one operation at a time on np.float32 values (no fused multiply-add), so
the results must agree with the C code bit for bit. The marches are plain per-ray Python loops.

Usage: ref_march.py <op> <dir> [args...] [+ <op> <dir> [args...] ...]
Inputs are <dir>/<name>.npy written by the C test; outputs are written to <dir>/<name>.npy.
  rays <dir> <W> <H> <seed> <stream> <N> <first> <Ne>
        pose [12], intr [4] -> pix [N] int32, o [N,3], d [N,3] (training pixels),
                               eo [Ne,3], ed [Ne,3] (eval pixels first .. first+Ne-1)
  nearfar <dir> <bound> <min_near>     o, d [N,3] -> near, far [N]
  morton <dir>                         xyz [N,3] int32 -> code [N] int32
  grid_seq <dir> <H> <C> <bound> <decay> <thresh> <full_updates> <seed> <steps> <sphere|zero> <mark>
        [poses [P,12], intr [4] when mark] -> marked [C*H^3] (after mark_untrained, or zeros), then
        for each update k = 0..steps-1: xyz_k [Q,3], cells_k [Q] int32 (the queries), sigma_k [Q]
        (the density at xyz_k), grid_k [C*H^3], bits_k [C*H^3/8] uint8, mean_k [2] (hi, lo)
  march_train <dir> <H> <C> <bound> <max_steps> <dt_gamma> <perturb> <seed> <stream> <mc0,mc1,...>
        o, d [N,3], bits -> for each mean_count mc_i (0: no budget, every ray kept):
           rays_i [N,2] int32, sizes_i [3] int64 (total, M, kept), xyz_i [M,3], dirs_i [M,3],
           delta0_i [M], delta1_i [M]
  march_infer <dir> <H> <C> <bound> <max_steps> <dt_gamma> <perturb> <seed> <stream> <stop_mod>
        o, d [N,3], bits -> the concatenation over iterations of xyz, dirs, delta0, delta1, alive
           (the alive list each iteration marched), nstep [iters] int32, t_cur [N]
  spiral <dir> <n> <bound>             -> c2w [n,12] (the original's, det -1) float64
"""
import os
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore", category=RuntimeWarning)
F = np.float32
MASK = np.uint64(0xFFFFFFFF)


def load(d, name):
    return np.load(os.path.join(d, name + ".npy"))


def save(d, name, a):
    np.save(os.path.join(d, name + ".npy"), a)


# ---------------------------------------------------------------- Philox-4x32-10 (common/rng.h)

def philox(seed, stream, blocks):
    """The four 32-bit words of counter blocks `blocks` (uint64 array) of (seed, stream)."""
    blocks = np.asarray(blocks, dtype=np.uint64)
    seed, stream = np.uint64(seed), np.uint64(stream)
    c0 = blocks & MASK
    c1 = blocks >> np.uint64(32)
    c2 = np.full_like(blocks, stream & MASK)
    c3 = np.full_like(blocks, stream >> np.uint64(32))
    k0, k1 = int(seed & MASK), int(seed >> np.uint64(32))
    for _ in range(10):
        p0 = c0 * np.uint64(0xD2511F53)
        p1 = c2 * np.uint64(0xCD9E8D57)
        hi0, lo0 = p0 >> np.uint64(32), p0 & MASK
        hi1, lo1 = p1 >> np.uint64(32), p1 & MASK
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
        k0 = (k0 + 0x9E3779B9) & 0xFFFFFFFF
        k1 = (k1 + 0xBB67AE85) & 0xFFFFFFFF
    return np.stack([c0, c1, c2, c3], axis=-1)  # [..., 4] uint64 holding 32-bit words


def to_unit(x):
    return ((x >> np.uint64(8)).astype(np.float64) * 2.0 ** -24).astype(F)


def words(seed, stream, idx):
    """Word i of (seed, stream): lane i % 4 of block i // 4."""
    idx = np.asarray(idx, dtype=np.uint64)
    b = philox(seed, stream, idx >> np.uint64(2))
    return np.take_along_axis(b, (idx & np.uint64(3)).astype(np.int64)[..., None], axis=-1)[..., 0]


def mulshift(x, n):
    """(x * n) >> 32 for 32-bit x and n < 2^32."""
    return ((x * np.uint64(n)) >> np.uint64(32)).astype(np.int64)


# ---------------------------------------------------------------- rays and near/far (§2.1, §2.2)

def ray_dirs(P, intr, pix, W):
    fx, fy, cx, cy = [F(v) for v in intr]
    u = (pix % W).astype(F)
    v = (pix // W).astype(F)
    x = ((u + F(0.5)) - cx) / fx
    y = ((v + F(0.5)) - cy) / fy
    n = np.sqrt((x * x + y * y) + F(1))
    dc = [x / n, y / n, F(1) / n]
    R = P.reshape(3, 4).astype(F)
    d = np.stack([(R[a, 0] * dc[0] + R[a, 1] * dc[1]) + R[a, 2] * dc[2] for a in range(3)], axis=-1)
    o = np.broadcast_to(R[:, 3], d.shape).copy()
    return o, d.astype(F)


def op_rays(d, W, H, seed, stream, N, first, Ne):
    W, H, N, first, Ne = int(W), int(H), int(N), int(first), int(Ne)
    P, intr = load(d, "pose"), load(d, "intr")
    pix = mulshift(words(int(seed), int(stream), np.arange(N)), W * H)
    o, dd = ray_dirs(P, intr, pix, W)
    save(d, "pix", pix.astype(np.int32))
    save(d, "o", o)
    save(d, "d", dd)
    eo, ed = ray_dirs(P, intr, np.arange(first, first + Ne), W)
    save(d, "eo", eo)
    save(d, "ed", ed)


FLT_MAX = F(np.finfo(np.float32).max)


def near_far_one(o, dd, bound, min_near):
    near = far = None
    for a in range(3):  # x, y, z in this order
        t1 = (F(-bound) - o[a]) / dd[a]
        t2 = (F(bound) - o[a]) / dd[a]
        if t1 > t2:
            t1, t2 = t2, t1
        if a == 0:
            near, far = t1, t2
            continue
        if near > t2 or t1 > far:  # the interval became empty: a miss
            return FLT_MAX, FLT_MAX
        if t1 > near:
            near = t1
        if t2 < far:
            far = t2
    if near < min_near:
        near = F(min_near)
    return near, far


def op_nearfar(d, bound, min_near):
    o, dd = load(d, "o"), load(d, "d")
    res = [near_far_one(o[i], dd[i], F(bound), F(min_near)) for i in range(o.shape[0])]
    save(d, "near", np.array([r[0] for r in res], dtype=F))
    save(d, "far", np.array([r[1] for r in res], dtype=F))


# ---------------------------------------------------------------- Morton codes and the grid (§3)

def morton(x, y, z):
    code = np.zeros(np.shape(x), dtype=np.int64)
    for b in range(10):
        code |= ((np.asarray(x) >> b) & 1) << (3 * b)
        code |= ((np.asarray(y) >> b) & 1) << (3 * b + 1)
        code |= ((np.asarray(z) >> b) & 1) << (3 * b + 2)
    return code


def morton_inv(code):
    code = np.asarray(code, dtype=np.int64)
    out = [np.zeros_like(code) for _ in range(3)]
    for b in range(10):
        for a in range(3):
            out[a] |= ((code >> (3 * b + a)) & 1) << b
    return out


def op_morton(d):
    xyz = load(d, "xyz").astype(np.int64)
    save(d, "code", morton(xyz[:, 0], xyz[:, 1], xyz[:, 2]).astype(np.int32))


def cascade(c, bound, H):
    b = min(2.0 ** c, bound)
    hgs = b / H
    return b, hgs


def centres(idx, H, scale):
    """Cell-centre coordinate (2i/(H-1) - 1) * scale in fp32 (§3.2)."""
    return ((F(2) * idx.astype(F)) / F(H - 1) - F(1)) * F(scale)


def mark_untrained(poses, intr, H, C, bound):
    fx, fy, cx, cy = [float(F(v)) for v in intr]
    kx, ky = F(cx / fx), F(cy / fy)
    H3 = H ** 3
    grid = np.zeros(C * H3, dtype=F)
    for c in range(C):
        b, hgs = cascade(c, bound, H)
        ix, iy, iz = morton_inv(np.arange(H3))
        X = [centres(i, H, b - hgs) for i in (ix, iy, iz)]
        m = F(2 * hgs)
        seen = np.zeros(H3, dtype=bool)
        for P in poses:
            R = P.reshape(3, 4)
            e = [X[a] - R[a, 3] for a in range(3)]
            cam = [(R[0, k] * e[0] + R[1, k] * e[1]) + R[2, k] * e[2] for k in range(3)]  # R^T (X - t)
            seen |= (cam[2] > 0) & (np.abs(cam[0]) < kx * cam[2] + m) & (np.abs(cam[1]) < ky * cam[2] + m)
        grid[c * H3:(c + 1) * H3][~seen] = -1
    return grid


def sphere_density(x):
    """The synthetic density of the tests: a ball of radius 0.45 at (0.1, 0, -0.05), peak 40."""
    c = np.array([0.1, 0.0, -0.05], dtype=F)
    r = np.sqrt(np.sum((x - c) ** 2, axis=1, dtype=F))
    return (F(40) * np.maximum(F(0), F(1) - r / F(0.45))).astype(F)


def grid_queries(grid, H, C, bound, full, seed, stream):
    H3 = H ** 3
    if full:
        cells = np.arange(C * H3, dtype=np.int64)
    else:
        N = H3 // 4
        parts, q = [], 0
        for c in range(C):
            sel = philox(seed, stream, 2 * np.arange(q, q + N, dtype=np.uint64) + 1)
            ix, iy, iz = (mulshift(sel[:, a], H) for a in range(3))
            parts.append(c * H3 + morton(ix, iy, iz))
            q += N
            occ = np.nonzero(grid[c * H3:(c + 1) * H3] > 0)[0] + c * H3  # ascending
            if len(occ) > 0:  # no occupied cell: that half is left out (the original crashes)
                sel = philox(seed, stream, 2 * np.arange(q, q + N, dtype=np.uint64) + 1)
                parts.append(occ[mulshift(sel[:, 0], len(occ))])
                q += N
        cells = np.concatenate(parts)
    Q = len(cells)
    casc = cells // H3
    ix, iy, iz = morton_inv(cells % H3)
    u = to_unit(philox(seed, stream, 2 * np.arange(Q, dtype=np.uint64)))
    xyz = np.zeros((Q, 3), dtype=F)
    for c in range(C):
        b, hgs = cascade(c, bound, H)
        sel = casc == c
        for a, i in enumerate((ix, iy, iz)):
            jit = (u[sel, a] * F(2) - F(1)) * F(hgs)
            xyz[sel, a] = centres(i[sel], H, b - hgs) + jit
    return xyz, cells


def grid_update(grid, H, C, bound, decay, thresh, full_updates, it, seed, dens):
    """One update_extra_state (§3.4) of grid (in place); returns xyz, cells, sigma, bits, mean."""
    stream = (6 << 32) | it  # RHD_STREAM(RHD_STREAM_GRID, iter_density)
    xyz, cells = grid_queries(grid, H, C, bound, it < full_updates, seed, stream)
    sigma = sphere_density(xyz) if dens == "sphere" else np.zeros(len(xyz), dtype=F)
    bits, mean = grid_apply(grid, cells, sigma, decay, thresh)
    return xyz, cells, sigma, bits, mean


def grid_apply(grid, cells, sigma, decay, thresh):
    """Steps 4-6 of §3.4 on grid (in place): returns the bitfield and the mean density."""
    # tmp grid: the last query of each cell wins
    tmp = np.full(len(grid), -1, dtype=F)
    _, first_rev = np.unique(cells[::-1], return_index=True)
    last = len(cells) - 1 - first_rev
    tmp[cells[last]] = sigma[last]
    ok = (grid >= 0) & (tmp >= 0)
    grid[ok] = np.maximum(grid[ok] * decay, tmp[ok])
    mean = float(np.mean(np.maximum(grid, 0).astype(np.float64)))
    thr = F(min(mean, thresh))
    bits = np.packbits((grid > thr).astype(np.uint8), bitorder="little")
    return bits, mean


def op_grid_seq(d, H, C, bound, decay, thresh, full_updates, seed, steps, dens, mark):
    H, C, bound, decay, thresh = int(H), int(C), float(bound), F(decay), float(thresh)
    full_updates, seed, steps = int(full_updates), int(seed), int(steps)
    if int(mark):
        grid = mark_untrained(load(d, "poses").astype(F), load(d, "intr"), H, C, bound)
    else:
        grid = np.zeros(C * H ** 3, dtype=F)
    save(d, "marked", grid)
    for k in range(steps):
        xyz, cells, sigma, bits, mean = grid_update(grid, H, C, bound, decay, thresh, full_updates, k, seed, dens)
        save(d, "xyz_%d" % k, xyz)
        save(d, "cells_%d" % k, cells.astype(np.int32))
        save(d, "sigma_%d" % k, sigma)
        save(d, "grid_%d" % k, grid)
        save(d, "bits_%d" % k, bits)
        hi = F(mean)
        save(d, "mean_%d" % k, np.array([hi, F(mean - float(hi))], dtype=F))


# ---------------------------------------------------------------- marching (§3.5-§3.8)

def fminf(a, b):  # C fminf: a NaN operand is ignored
    if a != a:
        return b
    if b != b:
        return a
    return a if a <= b else b


def fmaxf(a, b):
    if a != a:
        return b
    if b != b:
        return a
    return a if a >= b else b


def _spread(x):
    """Bit b of x moved to bit 3b (the Morton interleave of one axis), by the definition."""
    return sum(((x >> b) & 1) << (3 * b) for b in range(10))


SPREAD = [_spread(x) for x in range(1024)]


class Marcher:
    """The per-ray march of §3.5-§3.7 on np.float32 scalars (one rounding per operation)."""

    def __init__(self, bits, H, C, bound, max_steps, dt_gamma):
        self.bits = bytes(np.asarray(bits, dtype=np.uint8))
        self.H, self.C, self.bound = int(H), int(C), F(bound)
        self.Hf = F(H)
        self.Hm1 = F(H) - F(1)
        self.H3 = int(H) ** 3
        self.dt_gamma = F(dt_gamma)
        sqrt3 = F(1.7320508075688772)
        self.dt_min = (F(2) * sqrt3) / F(max_steps)
        self.dt_max = (F(2) * sqrt3 * F(2 ** (int(C) - 1))) / F(H)
        self.dt_const = self.dt(F(0)) if self.dt_gamma == 0 else None

    def dt(self, t):
        if self.dt_gamma == 0 and getattr(self, "dt_const", None) is not None:
            return self.dt_const  # t*0 is 0 (or NaN, ignored by fmaxf): the clamp is constant
        return fminf(fmaxf(t * self.dt_gamma, self.dt_min), self.dt_max)

    def mip(self, x):
        e = int(np.frexp(F(x))[1])
        return min(max(e, 0), self.C - 1)

    def occupied(self, p, dt):
        if self.C > 1:
            level = max(self.mip(max(abs(p[0]), abs(p[1]), abs(p[2]))), self.mip((dt * self.Hf) * F(0.5)))
        else:
            level = 0  # both exponents are clamped to [0, C-1] = [0, 0]
        mb = fminf(F(2.0 ** level), self.bound)
        n = [int(fminf(fmaxf((F(0.5) * (pa / mb + F(1))) * self.Hf, F(0)), self.Hm1)) for pa in p]
        idx = level * self.H3 + (SPREAD[n[0]] | (SPREAD[n[1]] << 1) | (SPREAD[n[2]] << 2))
        return (self.bits[idx >> 3] >> (idx & 7)) & 1, n, mb

    def march(self, o, d, t, far, budget):
        """Samples of one ray from t: (list of (p, dt, delta1)), t at the end."""
        out, last = [], t
        while t < far and len(out) < budget:
            p = [fminf(fmaxf(o[a] + t * d[a], -self.bound), self.bound) for a in range(3)]
            dt = self.dt(t)
            occ, n, mb = self.occupied(p, dt)
            if occ:
                t = t + dt
                out.append((p, dt, t - last))
                last = t
            else:
                tmin = F(np.inf)
                for a in range(3):
                    side = (F(n[a]) + F(0.5)) + F(0.5) * F(np.copysign(1.0, d[a]))
                    edge = ((side / self.Hf) * F(2) - F(1)) * mb - p[a]
                    tmin = fminf(tmin, edge / d[a])
                tt = t + fmaxf(F(0), tmin)
                while True:
                    tn = t + self.dt(t)
                    if tn == t:  # guard of march.h: no progress
                        t = far
                        break
                    t = tn
                    if not t < tt:
                        break
        return out, t


def noise_of(perturb, seed, stream, r):
    if not perturb:
        return F(0)
    return to_unit(words(seed, stream, np.array([r]))[0:1])[0]


def march_args(a):
    H, C, bound, max_steps, dt_gamma, perturb, seed, stream = a[:8]
    return (int(H), int(C), float(bound), int(max_steps), float(dt_gamma), int(perturb), int(seed), int(stream))


def op_march_train(d, *a):
    H, C, bound, max_steps, dt_gamma, perturb, seed, stream = march_args(a)
    mean_counts = [int(x) for x in a[8].split(",")]
    o, dd, bits = load(d, "o"), load(d, "d"), load(d, "bits")
    mr = Marcher(bits, H, C, bound, max_steps, dt_gamma)
    per_ray = []
    for r in range(o.shape[0]):
        near, far = near_far_one(o[r], dd[r], F(bound), F(0.2))
        t0 = near + mr.dt(near) * noise_of(perturb, seed, stream, r)
        s, _ = mr.march(o[r], dd[r], t0, far, max_steps)
        per_ray.append(s)
    counts = np.array([len(s) for s in per_ray], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    total = int(counts.sum())
    for i, mean_count in enumerate(mean_counts):
        # the sample budget: mean_count rounded up to the next multiple of 128, always + 1..128
        M = total if mean_count <= 0 else mean_count + 128 - mean_count % 128
        keep = offsets + counts <= M
        kept = int(counts[keep].sum())
        rays = np.stack([offsets, counts], axis=1)
        rays[~keep] = [kept, 0]
        xyz = np.zeros((M, 3), dtype=F)
        dirs = np.zeros((M, 3), dtype=F)
        d0 = np.zeros(M, dtype=F)
        d1 = np.zeros(M, dtype=F)
        for r in range(o.shape[0]):
            if not keep[r]:
                continue
            for k, (p, dt, dl) in enumerate(per_ray[r]):
                j = offsets[r] + k
                xyz[j], dirs[j], d0[j], d1[j] = p, dd[r], dt, dl
        save(d, "rays_%d" % i, rays.astype(np.int32))
        save(d, "sizes_%d" % i, np.array([total, M, kept], dtype=np.int64))
        for name, arr in (("xyz", xyz), ("dirs", dirs), ("delta0", d0), ("delta1", d1)):
            save(d, "%s_%d" % (name, i), arr)


def op_march_infer(d, *a):
    """The inference driver of §3.8 with a synthetic compositor: ray i of the alive list stops
    early when it has a slot with delta0 == 0, or (stop_mod > 0) when iteration >= 1 and
    ray id % stop_mod == 2."""
    H, C, bound, max_steps, dt_gamma, perturb, seed, stream = march_args(a)
    stop_mod = int(a[8])
    o, dd, bits = load(d, "o"), load(d, "d"), load(d, "bits")
    mr = Marcher(bits, H, C, bound, max_steps, dt_gamma)
    N = o.shape[0]
    nf = [near_far_one(o[r], dd[r], F(bound), F(0.2)) for r in range(N)]
    t_cur = [nf[r][0] for r in range(N)]
    alive = list(range(N))
    step, it = 0, 0
    X, D, D0, D1, AL, NS = [], [], [], [], [], []
    while step < max_steps and alive:
        n_step = max(min(N // len(alive), 8), 1)
        NS.append(n_step)
        AL.extend(alive)
        nxt = []
        for r in alive:
            t = t_cur[r]
            if perturb and it == 0:
                t = t + mr.dt(t) * noise_of(perturb, seed, stream, r)
            s, _ = mr.march(o[r], dd[r], t, nf[r][1], n_step)
            slots = [(p, dd[r], dt, dl) for (p, dt, dl) in s]
            slots += [([F(0)] * 3, [F(0)] * 3, F(0), F(0))] * (n_step - len(s))
            for p, di, dt, dl in slots:
                X.append(p), D.append(di), D0.append(dt), D1.append(dl)
            stop = len(s) < n_step or (stop_mod > 0 and it >= 1 and r % stop_mod == 2)
            if not stop:
                for (_, _, dl) in s:
                    t_cur[r] = t_cur[r] + dl
                nxt.append(r)
        alive = nxt
        step += n_step
        it += 1
    save(d, "xyz", np.array(X, dtype=F).reshape(-1, 3))
    save(d, "dirs", np.array(D, dtype=F).reshape(-1, 3))
    save(d, "delta0", np.array(D0, dtype=F))
    save(d, "delta1", np.array(D1, dtype=F))
    save(d, "alive", np.array(AL, dtype=np.int32))
    save(d, "nstep", np.array(NS, dtype=np.int32))
    save(d, "t_cur", np.array(t_cur, dtype=F))


# ---------------------------------------------------------------- the spiral (§10.3)

def op_spiral(d, n, bound):
    n, bound = int(n), float(bound)
    r = 1.45 * np.linalg.norm([bound, bound, bound])
    a = np.array([0, 0.4, 0.0])
    u = np.array([0, -1.0, 0])
    out = np.zeros((n, 3, 4))
    for t in range(n):
        theta = -3.14 / 2 + 0.35 * np.sin(2 * 3.14 * t / n)
        phi = 3.14 / 2 + 0.3 * np.cos(2 * 3.14 * t / n)
        phi = np.clip(phi, 1e-5, np.pi - 1e-5)
        A = np.arccos(1 - 2 * phi / np.pi)
        pos = r * np.array([np.sin(A) * np.sin(np.pi - theta), np.cos(A), np.sin(A) * np.cos(np.pi - theta)])
        z = (a - pos) / (np.linalg.norm(a - pos) + 1e-8)
        x = np.cross(z, u)
        x = x / (np.linalg.norm(x) + 1e-8)
        y = np.cross(x, z)
        y = y / (np.linalg.norm(y) + 1e-8)
        out[t, :, 0], out[t, :, 1], out[t, :, 2], out[t, :, 3] = x, y, z, pos
    save(d, "c2w", out.reshape(n, 12))


OPS = {"rays": op_rays, "nearfar": op_nearfar, "morton": op_morton, "grid_seq": op_grid_seq,
       "march_train": op_march_train, "march_infer": op_march_infer, "spiral": op_spiral}


def main(argv):
    jobs, cur = [], []
    for x in argv:
        if x == "+":
            jobs.append(cur)
            cur = []
        else:
            cur.append(x)
    jobs.append(cur)
    for job in jobs:
        if len(job) < 2 or job[0] not in OPS:
            sys.exit("usage: ref_march.py <op> <dir> [args...] [+ ...]; ops: " + ", ".join(OPS))
        OPS[job[0]](*job[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
