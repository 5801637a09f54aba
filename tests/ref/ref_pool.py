#!/usr/bin/env python3
"""tests/ref/ref_pool.py: PyTorch reference for kernels/pool (max pooling), for test_pool.c.

Usage: ref_pool.py maxpool <dir> k=K s=S p=P
       ref_pool.py jobs <file>      one "maxpool <dir> k= s= p=" job per line (one torch start)
Reads <dir>/x.npy (N,C,H,W) and <dir>/dy.npy (N,C,OH,OW), float32, and writes, from
torch.nn.MaxPool2d(K, S, P, return_indices=True) (dilation 1, ceil_mode False) in float32:
  y.npy    the pooled maps
  idx.npy  the argmax indices (h*W + w within each plane), as float32 (exact below 2^24)
  dx.npy   the input gradient by autograd for the upstream gradient dy
"""
import os
import sys

import numpy as np
import torch


def maxpool(d, a):
    x = torch.from_numpy(np.load(os.path.join(d, "x.npy"))).requires_grad_(True)
    dy = torch.from_numpy(np.load(os.path.join(d, "dy.npy")))
    pool = torch.nn.MaxPool2d(int(a["k"]), int(a["s"]), int(a["p"]), return_indices=True)
    y, idx = pool(x)
    if tuple(y.shape) != tuple(dy.shape):
        sys.exit(f"ref_pool: {d}: output shape {tuple(y.shape)}, dy has {tuple(dy.shape)}")
    y.backward(dy)
    np.save(os.path.join(d, "y.npy"), y.detach().numpy())
    np.save(os.path.join(d, "idx.npy"), idx.numpy().astype(np.float32))
    np.save(os.path.join(d, "dx.npy"), x.grad.numpy())


def run(op, d, args):
    a = dict(kv.split("=", 1) for kv in args)
    if op != "maxpool":
        sys.exit(f"ref_pool: unknown op '{op}', expected maxpool")
    maxpool(d, a)


def main():
    torch.set_num_threads(1)
    if len(sys.argv) >= 3 and sys.argv[1] == "jobs":
        with open(sys.argv[2]) as f:
            for line in f:
                if line.strip():
                    op, d, *args = line.split()
                    run(op, d, args)
    elif len(sys.argv) >= 3:
        run(sys.argv[1], sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
