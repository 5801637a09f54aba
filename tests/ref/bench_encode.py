#!/usr/bin/env python3
"""tests/ref/bench_encode.py SPEC OUT: diffusers timings for tests/bench/bench_encode.c.

SPEC has one line per measurement: "<id> <batch> <H> <W> <reps>". Each times vae.encoder(x) of a
diffusers AutoencoderKL with the SDXL config (random weights; the cost does not depend on them),
fp32, torch.no_grad, on the CPU with $RHD_BENCH_THREADS threads (default 2): one warm-up, then the
best of <reps>. Writes "<id> <best ms>" lines to OUT."""
import os
import sys
import time

import torch
from diffusers import AutoencoderKL

torch.set_num_threads(int(os.environ.get("RHD_BENCH_THREADS", "2")))
torch.manual_seed(0)
vae = AutoencoderKL(down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                    block_out_channels=[128, 256, 512, 512], layers_per_block=2, latent_channels=4,
                    norm_num_groups=32, sample_size=1024).eval()
enc = vae.encoder
with open(sys.argv[2], "w") as out:
    for line in open(sys.argv[1]):
        f = line.split()
        if not f:
            continue
        k, b, h, w, reps = f[0], int(f[1]), int(f[2]), int(f[3]), int(f[4])
        x = torch.rand(b, 3, h, w) * 2 - 1
        with torch.no_grad():
            enc(x)
            best = float("inf")
            for _ in range(reps):
                t0 = time.perf_counter()
                enc(x)
                best = min(best, time.perf_counter() - t0)
        out.write(f"{k} {best * 1e3:.3f}\n")
        out.flush()
