#!/usr/bin/env python3
"""tests/ref/bench_dense.py: PyTorch timings for tests/bench/bench_dense.c.

usage: bench_dense.py SPEC OUT

SPEC has one line per measurement: "<id> <op> fwd|bwd <reps> key=value ...", op one of linear
(N in out bias), conv2d (Cin Cout H W k; N = 1, stride 1, padding k//2, with bias), groupnorm
(N C H W G, eps 1e-5) and silu (C H W). Backward is autograd.grad of the forward output with a
random upstream gradient, for every input that takes part in training (the same gradients the C
side computes). Writes "<id> <best ms>" lines to OUT. Threads: $RHD_BENCH_THREADS (default 2)."""
import os
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(int(os.environ.get("RHD_BENCH_THREADS", "2")))
torch.manual_seed(0)


def make(op, p):
    """returns (forward closure, backward closure)"""
    g = lambda *s: torch.randn(*s)
    if op == "linear":
        N, i, o, bias = p["N"], p["in"], p["out"], p["bias"]
        x, W = g(N, i).requires_grad_(), (g(o, i) * 0.05).requires_grad_()
        b = (g(o) * 0.1).requires_grad_() if bias else None
        leaves = [x, W] + ([b] if bias else [])
        fwd = lambda: F.linear(x, W, b)
    elif op == "conv2d":
        k = p["k"]
        x = g(1, p["Cin"], p["H"], p["W"]).requires_grad_()
        W = (g(p["Cout"], p["Cin"], k, k) * 0.02).requires_grad_()
        b = (g(p["Cout"]) * 0.1).requires_grad_()
        leaves = [x, W, b]
        fwd = lambda: F.conv2d(x, W, b, padding=k // 2)
    elif op == "groupnorm":
        x = g(p["N"], p["C"], p["H"], p["W"]).requires_grad_()
        gamma, beta = g(p["C"]).requires_grad_(), g(p["C"]).requires_grad_()
        leaves = [x, gamma, beta]
        fwd = lambda: F.group_norm(x, p["G"], gamma, beta, 1e-5)
    elif op == "silu":
        x = g(p["C"], p["H"], p["W"]).mul(2).requires_grad_()
        leaves = [x]
        fwd = lambda: F.silu(x)
    else:
        raise SystemExit("bench_dense.py: unknown op " + op)
    with torch.no_grad():
        dy = torch.randn_like(fwd())
    y = fwd()
    bwd = lambda: torch.autograd.grad(y, leaves, dy, retain_graph=True)
    return fwd, bwd


def best_ms(f, reps):
    f()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    out = []
    with open(sys.argv[1]) as f:
        for line in f:
            w = line.split()
            if not w:
                continue
            ident, op, direction, reps = w[0], w[1], w[2], int(w[3])
            p = {k: int(v) for k, v in (x.split("=") for x in w[4:])}
            fwd, bwd = make(op, p)
            if direction == "fwd":
                with torch.no_grad():
                    ms = best_ms(fwd, reps)
            else:
                ms = best_ms(bwd, reps)
            out.append("%s %.4f\n" % (ident, ms))
    with open(sys.argv[2], "w") as f:
        f.writelines(out)


if __name__ == "__main__":
    main()
