"""tests/ref/bench_sample.py: PyTorch timings for tests/bench/bench_sample.c: one base sample of the
small UNet preset (the model of tests/ref/ref_unet.py, fp32, no_grad): 10 DDIM "dpm" steps, each
the network on the doubled batch [x; x] with [cond; ones] and the guided eps, eta 1, on
torch.set_num_threads($RHD_BENCH_THREADS, default 2). Prints "sample_small <best ms> <cpu ms>"."""
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_unet import SMALL  # noqa: E402
from ref_diffusion import Chain  # noqa: E402
from ref_schedule import ddim  # noqa: E402
from ref_unet import UNet  # noqa: E402


def main():
    torch.set_num_threads(int(os.environ.get("RHD_BENCH_THREADS", "2")))
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    torch.manual_seed(0)
    m = UNet(SMALL).eval()
    ref = torch.randn(1, 4, 16, 16)
    feats = [torch.randn(1, 128, 32, 32), torch.randn(1, 256, 16, 16), torch.randn(1, 512, 8, 8)]
    ch = Chain("cosine_light", 1000)
    ts = ddim(1000, 10)
    a = ch.ab[ts]
    ap = np.concatenate([[1.0], ch.ab[ts[:-1]]])
    sig = np.sqrt((1 - ap) / (1 - a)) * np.sqrt(1 - a / ap)
    r2 = torch.cat([ref, torch.ones_like(ref)])
    f2 = [torch.cat([f, torch.ones_like(f)]) for f in feats]

    def sample():
        x = torch.randn(1, 32, 32, 96)
        for i in reversed(range(len(ts))):
            with torch.no_grad():
                o = m(torch.cat([x, x]), torch.full((2,), float(ts[i])), r2, f2)
            e = o[1:, :32] + 1.3 * (o[:1, :32] - o[1:, :32])
            x0 = ((x - float(np.sqrt(1 - a[i])) * e) / float(np.sqrt(a[i]))).clamp(-1, 1)
            x = float(np.sqrt(ap[i])) * x0 + float(np.sqrt(max(0, 1 - ap[i] - sig[i] ** 2))) * e + float(sig[i]) * torch.randn_like(x)
        return x

    sample()
    best, best_cpu = float("inf"), 0.0
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        sample()
        dt = (time.perf_counter() - t0) * 1e3
        if dt < best:
            best, best_cpu = dt, (time.process_time() - c0) * 1e3
    print(f"sample_small {best:.3f} {best_cpu:.3f}")


if __name__ == "__main__":
    main()
