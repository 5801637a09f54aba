#!/usr/bin/env python3
"""tests/ref/ref_attn.py: independent PyTorch references for kernels/attention, kernels/embed and
kernels/resample, written from the spec (diffusion.md §1.2, §2.1, §2.3-§2.5, §5; fitting.md §10.2),
not from the C code.

Usage: ref_attn.py <op> <dir> [key=value ...]
       ref_attn.py jobs <file>      one "<op> <dir> key=value ..." job per line (one torch start)
Reads the inputs <dir>/<name>.npy (float32) the C test wrote, computes the forward in float64
(unless stated) and the backward by autograd with the upstream gradient <dir>/dy.npy, and writes
<dir>/<name>.npy results as float32.

ops:
  core     q k v [B,H,Tq,d], dy; scale=    -> y, lse, dq, dk, dv   (matmul + softmax)
  block    qkv [B,3C,T], ekv [B,2C,Te] (optional), dy; heads=
                                           -> y, dqkv, dekv         (QKVAttention with encoder_kv)
  pool     x [B,L,W], pos, wq, bq, wk, bk, wv, bv, dy; heads=
                                           -> y, dx, dpos, dwq, ...  (AttentionPooling)
  embed    t [B]; dim=                     -> y (float64), y32 (the original's float32 arithmetic)
  resampling ops write y, dx (float64) and y32, dx32 (torch's float32 arithmetic):
  nearest  x, dy                           -> y, dx   (F.interpolate nearest, scale 2)
  avgpool  x, dy                           -> y, dx   (F.avg_pool2d 2)
  bilinear x, dy; h= w= ac=0|1             -> y, dx   (F.interpolate bilinear)
  bicubic  x, dy; h= w= ac=0|1             -> y, dx   (F.interpolate bicubic, torch's a = -0.75)
  pixshuf  x, dy; r=                       -> y, dx   (F.pixel_shuffle)
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def load(d, name, required=True):
    p = os.path.join(d, name + ".npy")
    if not os.path.exists(p):
        if required:
            sys.exit(f"ref_attn: {p}: missing input")
        return None
    return torch.from_numpy(np.load(p).astype(np.float64)).requires_grad_(True)


def save(d, name, t):
    np.save(os.path.join(d, name + ".npy"), np.ascontiguousarray(t.detach().to(torch.float32).numpy()))


def core(d, a):
    q, k, v, dy = (load(d, n) for n in ("q", "k", "v", "dy"))
    scale = float(a["scale"])
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    p = torch.softmax(s, dim=-1)
    y = torch.matmul(p, v)
    y.backward(dy)
    save(d, "y", y)
    save(d, "lse", torch.logsumexp(s, dim=-1))
    for n, t in (("dq", q), ("dk", k), ("dv", v)):
        save(d, n, t.grad)


def qkv_attention(qkv, ekv, heads):
    """The UNet's QKVAttention (§2.4): head-major channels, encoder keys/values first."""
    bs, width, length = qkv.shape
    ch = width // (3 * heads)
    q, k, v = qkv.reshape(bs * heads, ch * 3, length).split(ch, dim=1)
    if ekv is not None:
        ek, ev = ekv.reshape(bs * heads, ch * 2, -1).split(ch, dim=1)
        k = torch.cat([ek, k], dim=-1)
        v = torch.cat([ev, v], dim=-1)
    scale = 1 / math.sqrt(math.sqrt(ch))
    w = torch.einsum("bct,bcs->bts", q * scale, k * scale)
    w = torch.softmax(w, dim=-1)
    out = torch.einsum("bts,bcs->bct", w, v)
    return out.reshape(bs, -1, length)


def block(d, a):
    qkv, dy = load(d, "qkv"), load(d, "dy")
    ekv = load(d, "ekv", required=False)
    y = qkv_attention(qkv, ekv, int(a["heads"]))
    y.backward(dy)
    save(d, "y", y)
    save(d, "dqkv", qkv.grad)
    if ekv is not None:
        save(d, "dekv", ekv.grad)


def pool(d, a):
    names = ("x", "pos", "wq", "bq", "wk", "bk", "wv", "bv", "dy")
    x, pos, wq, bq, wk, bk, wv, bv, dy = (load(d, n) for n in names)
    heads = int(a["heads"])
    bs, length, width = x.shape
    dh = width // heads

    def shape(t):  # [bs, n, width] -> [bs*heads, dh, n]
        t = t.view(bs, -1, heads, dh).transpose(1, 2)
        return t.reshape(bs * heads, -1, dh).transpose(1, 2)

    cls = x.mean(dim=1, keepdim=True) + pos.view(1, 1, width)
    seq = torch.cat([cls, x], dim=1)
    q = shape(F.linear(cls, wq, bq))
    k = shape(F.linear(seq, wk, bk))
    v = shape(F.linear(seq, wv, bv))
    scale = 1 / math.sqrt(math.sqrt(dh))
    w = torch.softmax(torch.einsum("bct,bcs->bts", q * scale, k * scale), dim=-1)
    out = torch.einsum("bts,bcs->bct", w, v).reshape(bs, -1, 1).transpose(1, 2)[:, 0, :]
    out.backward(dy)
    save(d, "y", out)
    for n, t in zip(names[:-1], (x, pos, wq, bq, wk, bk, wv, bv)):
        save(d, "d" + n, t.grad)


def embed(d, a):
    t = load(d, "t").detach()
    dim = int(a["dim"])
    half = dim // 2
    # float64, straight from the formula
    f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    arg = t[:, None] * f[None]
    save(d, "y", torch.cat([torch.cos(arg), torch.sin(arg)], dim=-1))
    # the original's float32 arithmetic (improved-diffusion timestep_embedding)
    f32 = torch.exp(-math.log(10000) * torch.arange(start=0, end=half, dtype=torch.float32) / half)
    arg32 = t.to(torch.float32)[:, None] * f32[None]
    save(d, "y32", torch.cat([torch.cos(arg32), torch.sin(arg32)], dim=-1))


def resample_op(x, op, a):
    if op == "nearest":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    if op == "avgpool":
        return F.avg_pool2d(x, 2)
    if op in ("bilinear", "bicubic"):
        return F.interpolate(x, size=(int(a["h"]), int(a["w"])), mode=op, align_corners=bool(int(a["ac"])))
    if op == "pixshuf":
        return F.pixel_shuffle(x, int(a["r"]))
    sys.exit(f"ref_attn: unknown op '{op}'")


def resample(d, op, a):
    """float64 (y, dx) and torch's own float32 arithmetic (y32, dx32: float32 source coordinates
    and weights, as our kernels compute them)."""
    x, dy = load(d, "x"), load(d, "dy")
    y = resample_op(x, op, a)
    y.backward(dy)
    save(d, "y", y)
    save(d, "dx", x.grad)
    x32 = x.detach().to(torch.float32).requires_grad_(True)
    y32 = resample_op(x32, op, a)
    y32.backward(dy.detach().to(torch.float32))
    save(d, "y32", y32)
    save(d, "dx32", x32.grad)


def run(op, d, args):
    a = dict(kv.split("=", 1) for kv in args)
    if op == "core":
        core(d, a)
    elif op == "block":
        block(d, a)
    elif op == "pool":
        pool(d, a)
    elif op == "embed":
        embed(d, a)
    elif op == "expf":
        save(d, "y", torch.exp(load(d, "x").detach().to(torch.float32)))
    else:
        resample(d, op, a)


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: ref_attn.py <op> <dir> [key=value ...] | ref_attn.py jobs <file>")
    torch.set_num_threads(int(os.environ.get("RHD_REF_THREADS", "2")))
    if sys.argv[1] == "jobs":
        with open(sys.argv[2]) as f:
            for line in f:
                w = line.split()
                if w:
                    run(w[0], w[1], w[2:])
    else:
        run(sys.argv[1], sys.argv[2], sys.argv[3:])


if __name__ == "__main__":
    main()
