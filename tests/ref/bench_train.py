"""tests/ref/bench_train.py: PyTorch timings for tests/bench/bench_train.c: one optimiser step of the
base model's training at the small preset, global batch 2, fp32, on torch.set_num_threads(
$RHD_BENCH_THREADS, default 2): draw t, the null-condition drop (p 0.2), the conditioning sample
(mean + std * U[0,1)), eps; q_sample; forward (ref_unet.py's model, dropout 0.1, training mode);
the hybrid loss (ref_diffusion.py's terms); backward; gradient norm; torch.optim.AdamW (lr 1e-5);
one EMA (0.9999). Prints "train_step_small <best ms> <cpu ms>"."""
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_unet import SMALL  # noqa: E402
from ref_diffusion import Chain, disc_gauss_loglik, ex, learned_lv, mean_flat, normal_kl, x0_from_pred  # noqa: E402
from ref_unet import UNet  # noqa: E402


def finish_step(m, opt, ema):
    """The rest of an rhd-train step after backward: the norm (clip at inf), AdamW, EMA 0.9999."""
    torch.nn.utils.clip_grad_norm_(m.parameters(), float("inf"))
    opt.step()
    with torch.no_grad():
        for e, p in zip(ema, m.parameters()):
            e.mul_(0.9999).add_(p, alpha=1e-4)


def best_of(step, reps):
    """One warm-up call of step, then the best (wall ms, CPU ms) of reps timed calls."""
    def timed():
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        return (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3
    step()
    return min(timed() for _ in range(reps))


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    torch.set_num_threads(int(os.environ.get("RHD_BENCH_THREADS", "2")))
    torch.manual_seed(0)
    m = UNet(SMALL).train()
    drops = [mod for mod in m.modules() if isinstance(mod, torch.nn.Dropout)]
    for mod in drops:  # ref_unet builds them with p = 0; ours runs 0.1
        mod.p = 0.1
    opt = torch.optim.AdamW(m.parameters(), lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    ema = [p.detach().clone() for p in m.parameters()]
    ch = Chain("cosine_light", 1000)
    N, R, C = 2, 32, 32
    x0 = torch.randn(N, C, R, 3 * R) * 0.3
    moments = torch.randn(N, 8, 16, 16)
    feats = [torch.randn(N, 128, 32, 32), torch.randn(N, 256, 16, 16), torch.randn(N, 512, 8, 8)]

    def step():
        t = torch.randint(0, 1000, (N,))
        drop = torch.rand(N) < 0.2
        std = torch.exp(0.5 * moments[:, 4:].clamp(-30, 20))
        ref = moments[:, :4] + std * torch.rand(N, 4, 16, 16)
        ref = torch.where(drop.view(-1, 1, 1, 1), torch.ones_like(ref), ref)
        fs = [torch.where(drop.view(-1, 1, 1, 1), torch.ones_like(f), f) for f in feats]
        eps = torch.randn_like(x0)
        xt = ex(ch.sqrt_ab, t, 4) * x0 + ex(ch.sqrt_1mab, t, 4) * eps
        opt.zero_grad(set_to_none=False)
        out = m(xt, t.float(), ref, fs).reshape(N, 2 * C, -1)
        x03, xt3, eps3 = x0.reshape(N, C, -1), xt.reshape(N, C, -1), eps.reshape(N, C, -1)
        pred = out[:, :C]
        mse = mean_flat((eps3 - pred) ** 2)
        mp = ex(ch.coef1, t) * x0_from_pred(ch, "eps", xt3, pred.detach(), t) + ex(ch.coef2, t) * xt3
        lp = learned_lv(ch, out[:, C:], t)
        pm = ex(ch.coef1, t) * x03 + ex(ch.coef2, t) * xt3
        kl = mean_flat(normal_kl(pm, ex(ch.post_lv_clipped, t), mp, lp)) / np.log(2.0)
        nll = mean_flat(-disc_gauss_loglik(x03, mp, 0.5 * lp)) / np.log(2.0)
        (mse + torch.where(t == 0, nll, kl)).mean().backward()
        finish_step(m, opt, ema)

    wall, cpu = best_of(step, reps)
    print(f"train_step_small {wall:.3f} {cpu:.3f}")

if __name__ == "__main__":
    main()
