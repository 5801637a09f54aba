#!/usr/bin/env python3
"""tests/ref/ref_dense.py: independent PyTorch references for the dense kernels (kernels/linear,
conv2d, norm, act), in float64 with autograd for the gradients.

usage: ref_dense.py DIR [DIR...]

Each DIR holds case.txt ("<op> key=value ...") and the float32 inputs as .npy; the script writes
the reference outputs there as float32 .npy. Ops and files:
  linear    x (N,in) W (out,in) [b (out)] dy (N,out)      -> y dx dW [db]        bias=0|1
  matmul    A B C0 (batched, stored as in the C call)     -> C                   batch M N K ta tb alpha beta
  conv2d    x W [b] dy (NCHW)                             -> y dx dW [db]        sh sw pt pb pl pr bias=0|1
  groupnorm x (N,C,HW) gamma beta dy                      -> y mean rstd dx dgamma dbeta   G eps
  layernorm x (N,D) gamma beta dy                         -> y mean rstd dx dgamma dbeta   eps
  act       x dy                                          -> y dx                act=<name>
The upstream gradient dy defines the loss sum(y * dy), so every gradient is d(loss)/d(input)."""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)


def load(d, name):
    return torch.from_numpy(np.load(os.path.join(d, name + ".npy")).astype(np.float64))


def save(d, name, t):
    np.save(os.path.join(d, name + ".npy"), t.detach().numpy().astype(np.float32))


def leaf(d, name):
    return load(d, name).requires_grad_(True)


class TruncExp(torch.autograd.Function):
    """exp forward; the backward clamps the argument to [-15, 15] (Renderer/nerf)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.exp(x.clamp(-15, 15))


ACTS = {
    "identity": lambda x: x,
    "relu": F.relu,
    "silu": F.silu,
    "softplus": lambda x: F.softplus(x, beta=1, threshold=20),
    "sigmoid": torch.sigmoid,
    "trunc_exp": TruncExp.apply,
}


def backprop(y, d, grads):
    """loss = sum(y * dy); save the gradient of every named leaf"""
    (y * load(d, "dy")).sum().backward()
    for name, t in grads.items():
        save(d, name, t.grad)


def run_linear(d, p):
    x, W = leaf(d, "x"), leaf(d, "W")
    grads = {"dx": x, "dW": W}
    b = None
    if int(p.get("bias", "1")):
        b = leaf(d, "b")
        grads["db"] = b
    y = F.linear(x, W, b)
    save(d, "y", y)
    backprop(y, d, grads)


def run_matmul(d, p):
    batch, M, N, K = (int(p[k]) for k in ("batch", "M", "N", "K"))
    ta, tb = int(p["ta"]), int(p["tb"])
    alpha, beta = float(p["alpha"]), float(p["beta"])
    A = load(d, "A").reshape(batch, *((K, M) if ta else (M, K)))
    B = load(d, "B").reshape(batch, *((N, K) if tb else (K, N)))
    C0 = load(d, "C0").reshape(batch, M, N)
    opA = A.transpose(1, 2) if ta else A
    opB = B.transpose(1, 2) if tb else B
    C = alpha * torch.matmul(opA, opB) + (beta * C0 if beta != 0 else 0)
    save(d, "C", C)


def run_conv2d(d, p):
    sh, sw, pt, pb, pl, pr = (int(p[k]) for k in ("sh", "sw", "pt", "pb", "pl", "pr"))
    x, W = leaf(d, "x"), leaf(d, "W")
    grads = {"dx": x, "dW": W}
    b = None
    if int(p.get("bias", "1")):
        b = leaf(d, "b")
        grads["db"] = b
    y = F.conv2d(F.pad(x, (pl, pr, pt, pb)), W, b, stride=(sh, sw))
    save(d, "y", y)
    backprop(y, d, grads)


def run_groupnorm(d, p):
    G, eps = int(p["G"]), float(p["eps"])
    x, gamma, beta = leaf(d, "x"), leaf(d, "gamma"), leaf(d, "beta")
    y = F.group_norm(x, G, gamma, beta, eps)
    xg = x.detach().reshape(x.shape[0], G, -1)
    save(d, "y", y)
    save(d, "mean", xg.mean(-1))
    save(d, "rstd", 1 / torch.sqrt(xg.var(-1, unbiased=False) + eps))
    backprop(y, d, {"dx": x, "dgamma": gamma, "dbeta": beta})


def run_layernorm(d, p):
    eps = float(p["eps"])
    x, gamma, beta = leaf(d, "x"), leaf(d, "gamma"), leaf(d, "beta")
    y = F.layer_norm(x, (x.shape[-1],), gamma, beta, eps)
    xd = x.detach()
    save(d, "y", y)
    save(d, "mean", xd.mean(-1))
    save(d, "rstd", 1 / torch.sqrt(xd.var(-1, unbiased=False) + eps))
    backprop(y, d, {"dx": x, "dgamma": gamma, "dbeta": beta})


def run_act(d, p):
    x = leaf(d, "x")
    y = ACTS[p["act"]](x)
    save(d, "y", y)
    backprop(y, d, {"dx": x})


OPS = {"linear": run_linear, "matmul": run_matmul, "conv2d": run_conv2d, "groupnorm": run_groupnorm,
       "layernorm": run_layernorm, "act": run_act}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for d in sys.argv[1:]:
        with open(os.path.join(d, "case.txt")) as f:
            words = f.read().split()
        op, params = words[0], dict(w.split("=", 1) for w in words[1:])
        OPS[op](d, params)


if __name__ == "__main__":
    main()
