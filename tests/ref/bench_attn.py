#!/usr/bin/env python3
"""tests/ref/bench_attn.py: PyTorch timings for tests/bench/bench_attn.c, same shapes, fp32,
torch.set_num_threads($RHD_BENCH_THREADS, default 2). Prints "<key> <best ms>" lines.

Attention follows the original's QKVAttention (reshape, einsum with q and k scaled by d^-1/4,
softmax, einsum); the VAE mid attention is matmul + softmax over one head. Backward rows time
autograd's backward alone (forward done beforehand, graph retained)."""
import math
import os
import time

import torch
import torch.nn.functional as F


def best_ms(fn, min_runs=3, max_runs=20, budget_ms=2000):
    fn()  # warm-up
    best, total, r = float("inf"), 0.0, 0
    while r < max_runs and (r < min_runs or total < budget_ms):
        t0 = time.perf_counter()
        fn()
        t = (time.perf_counter() - t0) * 1e3
        best, total, r = min(best, t), total + t, r + 1
    return best


def qkv_attention(qkv, ekv, heads):
    bs, width, length = qkv.shape
    ch = width // (3 * heads)
    q, k, v = qkv.reshape(bs * heads, ch * 3, length).split(ch, dim=1)
    ek, ev = ekv.reshape(bs * heads, ch * 2, -1).split(ch, dim=1)
    k = torch.cat([ek, k], dim=-1)
    v = torch.cat([ev, v], dim=-1)
    scale = 1 / math.sqrt(math.sqrt(ch))
    w = torch.softmax(torch.einsum("bct,bcs->bts", q * scale, k * scale).float(), dim=-1)
    return torch.einsum("bts,bcs->bct", w, v).reshape(bs, -1, length)


def main():
    torch.set_num_threads(int(os.environ.get("RHD_BENCH_THREADS", "2")))
    torch.manual_seed(0)
    rows = []
    for key, c, h, t in (("attn384", 384, 6, 32 * 96), ("attn576", 576, 9, 16 * 48), ("attn768", 768, 12, 8 * 24)):
        qkv = torch.randn(1, 3 * c, t, requires_grad=True)
        ekv = torch.randn(1, 2 * c, 16, requires_grad=True)
        with torch.no_grad():
            rows.append((key + "_f", best_ms(lambda: qkv_attention(qkv, ekv, h))))
        y = qkv_attention(qkv, ekv, h)
        dy = torch.randn_like(y)
        rows.append((key + "_b", best_ms(lambda: torch.autograd.grad(y, (qkv, ekv), dy, retain_graph=True))))

    q, k, v = (torch.randn(1, 256, 512) for _ in range(3))
    with torch.no_grad():
        rows.append(("vae_f", best_ms(lambda: torch.softmax(q @ k.transpose(1, 2) / math.sqrt(512), dim=-1) @ v)))

    with torch.no_grad():
        x = torch.randn(3, 32, 128, 128)
        rows.append(("bicubic_f", best_ms(lambda: F.interpolate(x, size=(512, 512), mode="bicubic", align_corners=False))))
    x = torch.randn(1, 64, 128, 384, requires_grad=True)
    with torch.no_grad():
        rows.append(("bilinear_f", best_ms(lambda: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True))))
    y = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
    dy = torch.randn_like(y)
    rows.append(("bilinear_b", best_ms(lambda: torch.autograd.grad(y, x, dy, retain_graph=True))))

    x = torch.randn(1, 192, 128, 384, requires_grad=True)
    with torch.no_grad():
        rows.append(("avg_f", best_ms(lambda: F.avg_pool2d(x, 2))))
        rows.append(("near_f", best_ms(lambda: F.interpolate(x, scale_factor=2, mode="nearest"))))
    y = F.avg_pool2d(x, 2)
    dy = torch.randn_like(y)
    rows.append(("avg_b", best_ms(lambda: torch.autograd.grad(y, x, dy, retain_graph=True))))
    y = F.interpolate(x, scale_factor=2, mode="nearest")
    dy = torch.randn_like(y)
    rows.append(("near_b", best_ms(lambda: torch.autograd.grad(y, x, dy, retain_graph=True))))

    tt = torch.rand(6) * 1000

    def embed():
        f = torch.exp(-math.log(10000) * torch.arange(start=0, end=96, dtype=torch.float32) / 96)
        a = tt[:, None] * f[None]
        return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)

    rows.append(("embed", best_ms(embed)))
    for key, ms in rows:
        print(f"{key} {ms:.6f}")


if __name__ == "__main__":
    main()
