#!/usr/bin/env python3
"""tests/ref/bench_dense.py: the PyTorch side of tests/bench/bench_dense.c.

A server on stdin/stdout, one command per line, one answer per line:
  setup <op> key=value ...   build the tensors of an op; answers 0
  fwd | bwd                  run the op once (forward without autograd; backward as
                             autograd.grad of the forward output with a random upstream gradient,
                             for every input that takes part in training, the same gradients the
                             C side computes); answers the wall time in ms
Ops: linear (N in out bias), conv2d (Cin Cout H W k; N = 1, stride 1, padding k//2, with bias),
groupnorm (N C H W G, eps 1e-5), silu (C H W). fp32, $RHD_BENCH_THREADS threads (default 2).
RHD_BENCH_CLOCK=cpu: process CPU time instead of wall time."""
import os
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(int(os.environ.get("RHD_BENCH_THREADS", "2")))
torch.manual_seed(0)


def make(op, p):
    """returns (forward closure, backward closure)"""
    g = torch.randn
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
        x = (g(p["C"], p["H"], p["W"]) * 2).requires_grad_()
        leaves = [x]
        fwd = lambda: F.silu(x)
    else:
        raise SystemExit("bench_dense.py: unknown op " + op)
    with torch.no_grad():
        dy = torch.randn_like(fwd())
    y = fwd()
    bwd = lambda: torch.autograd.grad(y, leaves, dy, retain_graph=True)
    return fwd, bwd


CLOCK = time.process_time if os.environ.get("RHD_BENCH_CLOCK") == "cpu" else time.perf_counter


def timed_ms(f):
    t0 = CLOCK()
    f()
    return (CLOCK() - t0) * 1e3


def main():
    fwd = bwd = None
    for line in sys.stdin:
        w = line.split()
        if not w:
            continue
        if w[0] == "setup":
            fwd = bwd = None  # free the previous op's tensors first
            fwd, bwd = make(w[1], {k: int(v) for k, v in (x.split("=") for x in w[2:])})
            answer = 0
        elif w[0] == "fwd":
            with torch.no_grad():
                answer = timed_ms(fwd)
        elif w[0] == "bwd":
            answer = timed_ms(bwd)
        else:
            raise SystemExit("bench_dense.py: unknown command " + w[0])
        sys.stdout.write("%.4f\n" % answer)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
