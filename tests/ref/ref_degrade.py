#!/usr/bin/env python3
"""tests/ref/ref_degrade.py DIR: independent references for common/degrade (spec diffusion.md
§5.6), for tests/models/test_degrade.c. Everything in float64 NumPy/SciPy written from the
documented semantics (OpenCV's resize, BSRGAN's imresize_np), SciPy's own convolve and
multivariate normal, PyTorch's bicubic interpolate.

DIR/cases.txt, one case per line (inputs DIR/in_K.npy (C,H,W) float32; output DIR/out_K.npy):
  kiso K SIZE SIGMA                 fspecial('gaussian') kernel (SIZE,SIZE)
  kaniso K SIZE THETA L1 L2         BSRGAN anisotropic_Gaussian kernel (scipy.stats pdf)
  blur K SIZE                       scipy.ndimage.convolve(in, DIR/k_K.npy, mode="mirror") per channel
  cv K OW OH INTERP                 cv2.resize semantics, INTER_LINEAR (1) or INTER_CUBIC (2)
  imresize K SCALE                  BSRGAN imresize_np(img, SCALE, antialiasing=True)
  bicubic K OW OH                   torch F.interpolate(mode="bicubic", align_corners=False)
  chain K PLANFILE                  the whole chain with the choices of DIR/PLANFILE (json) and the
                                    noise field DIR/noise_K.npy
"""
import json
import math
import sys

import numpy as np
import scipy.ndimage
import scipy.stats


def k_iso(size, sigma):
    c = (size - 1) / 2.0
    x, y = np.meshgrid(np.arange(size) - c, np.arange(size) - c)
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(float).eps * h.max()] = 0
    return h / h.sum()


def k_aniso(size, theta, l1, l2):
    v = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) @ np.array([1.0, 0.0])
    V = np.array([[v[0], v[1]], [v[1], -v[0]]])
    S = V @ np.diag([l1, l2]) @ np.linalg.inv(V)
    center = size / 2.0 + 0.5
    k = np.zeros((size, size))
    for y in range(size):
        for x in range(size):
            k[y, x] = scipy.stats.multivariate_normal.pdf([x - center + 1, y - center + 1], mean=[0, 0], cov=S)
    return k / k.sum()


def blur(img, k):
    return np.stack([scipy.ndimage.convolve(img[c].astype(np.float64), k, mode="mirror") for c in range(img.shape[0])])


def cv_axis(n_in, n_out, interp):
    """(n_out, n_in) matrix of OpenCV's resize along one axis."""
    M = np.zeros((n_out, n_in))
    scale = 1.0 / (n_out / n_in)
    for d in range(n_out):
        f = np.float32((d + 0.5) * scale - 0.5)
        s = int(np.floor(f))
        f = float(f - np.float32(s))
        if interp == 1:
            if s < 0:
                f, s = 0.0, 0
            if s >= n_in - 1:
                f, s = 0.0, n_in - 1
            M[d, s] += 1 - f
            M[d, min(s + 1, n_in - 1)] += f
        else:
            A = -0.75
            w = [((A * (f + 1) - 5 * A) * (f + 1) + 8 * A) * (f + 1) - 4 * A,
                 ((A + 2) * f - (A + 3)) * f * f + 1,
                 ((A + 2) * (1 - f) - (A + 3)) * (1 - f) * (1 - f) + 1]
            w.append(1 - sum(w))
            for k in range(4):
                M[d, min(max(s - 1 + k, 0), n_in - 1)] += w[k]
    return M


def cv_resize(img, ow, oh, interp):
    My, Mx = cv_axis(img.shape[1], oh, interp), cv_axis(img.shape[2], ow, interp)
    return np.einsum("ia,cab,jb->cij", My, img.astype(np.float64), Mx)


def cubic_m(x):
    a = np.abs(x)
    return (1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1) + (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * ((a > 1) & (a <= 2))


def imresize_axis(n_in, scale):
    n_out = math.ceil(n_in * scale)
    kw = 4.0 / scale if scale < 1 else 4.0
    M = np.zeros((n_out, n_in))
    for o in range(1, n_out + 1):
        u = o / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - kw / 2)
        idx = np.arange(left, left + math.ceil(kw) + 2)
        w = scale * cubic_m((u - idx) * scale) if scale < 1 else cubic_m(u - idx)
        w = w / w.sum()
        for j, wj in zip(idx, w):
            j0 = j - 1  # 0-based, reflected with the edge repeated
            while j0 < 0 or j0 >= n_in:
                j0 = -1 - j0 if j0 < 0 else 2 * n_in - 1 - j0
            M[o - 1, j0] += wj
    return M


def imresize(img, scale):
    My, Mx = imresize_axis(img.shape[1], scale), imresize_axis(img.shape[2], scale)
    return np.einsum("ia,cab,jb->cij", My, img.astype(np.float64), Mx)


def bicubic(img, ow, oh):
    import torch
    t = torch.from_numpy(img.astype(np.float64))[None]
    return torch.nn.functional.interpolate(t, size=(oh, ow), mode="bicubic", align_corners=False)[0].numpy()


def chain(img, plan, noise):
    x = img.astype(np.float64)
    if plan["kind"] == "area":
        s = plan["sf"]
        C, H, W = img.shape
        return img.astype(np.float64).reshape(C, H // s, s, W // s, s).mean(axis=(2, 4))
    if plan["kind"] == "none":
        return bicubic(img, plan["W"] // plan["sf"], plan["H"] // plan["sf"])
    sf = plan["sf"]
    halve = plan["halve"]
    if halve == 3:  # the original (sf 4) then resizes by the remaining 2; other factors (forced plans) by sf / 2
        x = imresize(x, 0.5)
        sf = sf / 2
    elif halve in (1, 2):
        x = cv_resize(x, int(0.5 * x.shape[2]), int(0.5 * x.shape[1]), halve)
        sf = sf / 2
    a, b = x.shape[2], x.shape[1]
    for op in plan["order"]:
        if op == 0 and plan["blur"]:
            if plan["aniso"]:
                k = k_aniso(plan["ksize"], plan["theta"], plan["l1"], plan["l2"])
            else:
                k = k_iso(plan["ksize"], plan["sigma"])
            x = blur(x, k)
        elif op == 2:
            a, b = x.shape[2], x.shape[1]
            s = plan["s2"]
            x = cv_resize(x, int(1 / s * a), int(1 / s * b), plan["interp2"])
        elif op == 3:
            x = cv_resize(x, int(1 / sf * a), int(1 / sf * b), plan["interp3"])
        elif op == 4 and plan["noise"]:
            x = x + noise.astype(np.float64)  # (C,h,w) or (1,h,w)
    return x


def main():
    d = sys.argv[1]
    with open(f"{d}/cases.txt") as cases:
        rows = [line.split() for line in cases if line.strip()]
    for f in rows:
        kind, k = f[0], f[1]
        if kind == "kiso":
            out = k_iso(int(f[2]), float(f[3]))
        elif kind == "kaniso":
            out = k_aniso(int(f[2]), float(f[3]), float(f[4]), float(f[5]))
        else:
            img = np.load(f"{d}/in_{k}.npy")
            if kind == "blur":
                out = blur(img, np.load(f"{d}/k_{k}.npy").astype(np.float64))
            elif kind == "cv":
                out = cv_resize(img, int(f[2]), int(f[3]), int(f[4]))
            elif kind == "imresize":
                out = imresize(img, float(f[2]))
            elif kind == "bicubic":
                out = bicubic(img, int(f[2]), int(f[3]))
            elif kind == "chain":
                plan = json.load(open(f"{d}/{f[2]}"))
                noise = np.load(f"{d}/noise_{k}.npy") if plan["noise"] else None
                out = chain(img, plan, noise)
            else:
                raise SystemExit(f"ref_degrade.py: unknown case kind '{kind}'")
        np.save(f"{d}/out_{k}.npy", np.asarray(out, dtype=np.float32))


if __name__ == "__main__":
    main()
