"""tests/ref/bench_unet.py: PyTorch timings for tests/bench/bench_unet.c: one training step
(zero grads, forward, backward of sum(y * dy)) of the small UNet preset at batch 2, fp32, on
torch.set_num_threads($RHD_BENCH_THREADS, default 2), with the model of tests/ref/ref_unet.py
(dropout 0.1 as the preset, training mode). Prints "train_small <best ms> <cpu ms>"."""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_unet import UNet  # noqa: E402

SMALL = {"image_size": 32, "in_channels": 32, "out_channels": 64, "model_channels": 32, "channel_mult": [1, 2, 2],
         "num_res_blocks": 1, "attention_resolutions": [32, 16, 8], "num_head_channels": 32, "aware3d_levels": 1,
         "groups": 32, "eps": 1e-5, "xf_width": 32, "latent_channels": 4, "latent_scale": 0.13025, "patch": 16,
         "pool_width": 64, "pool_heads": 8, "feature_groups": 32, "feature_channels": [128, 256, 512],
         "feature_kernels": [16, 8, 4], "feature_heights": [32, 16, 8]}


def main():
    torch.set_num_threads(int(os.environ.get("RHD_BENCH_THREADS", "2")))
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    torch.manual_seed(0)
    m = UNet(SMALL)
    for mod in m.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.1
    m.train()
    N, R = 2, 32
    x, t = torch.randn(N, 32, R, 3 * R), torch.rand(N) * 999
    ref = torch.randn(N, 4, 16, 16)
    feats = [torch.randn(N, 128, 32, 32), torch.randn(N, 256, 16, 16), torch.randn(N, 512, 8, 8)]
    dy = torch.randn(N, 64, R, 3 * R)

    def step():
        m.zero_grad(set_to_none=False)
        (m(x, t, ref, feats) * dy).sum().backward()

    step()
    best, best_cpu = float("inf"), 0.0
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        dt = (time.perf_counter() - t0) * 1e3
        if dt < best:
            best, best_cpu = dt, (time.process_time() - c0) * 1e3
    print(f"train_small {best:.3f} {best_cpu:.3f}")


if __name__ == "__main__":
    main()
