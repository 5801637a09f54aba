"""tests/ref/bench_train_upsample.py TRI FEAT VIEWDIR R P GRID SAMPLES REPS: PyTorch timings for
tests/bench/bench_train_upsample.c: one optimiser step of the upsampler's training (spec
diffusion.md §5.4) at the small preset (ref_upsampler.py's network, n_feats 32), fp32, batch 1, on
torch.set_num_threads($RHD_BENCH_THREADS, default 2):
  data: the pair's triplane (TRI/avatar_100.safetensors) and moments (FEAT/), held in memory; the
        view VIEWDIR/img_proc_fg_000000.png read with PIL every step, Lanczos-resized by 4 (the
        original's dataset), composited on white, a P x P crop;
  t uniform in 0..99, ref = mean + std * U[0,1), eps; low = bicubic of HR to R/4 (--degradation
  none), rolled; x_t = q_sample (T = 100 sigmoid); x0_hat = net(x_t, t, ref, low); x0 MSE;
  the rendering loss: x0_hat unrolled (not clamped, as the original); 16 density evaluations of the whole
  GRID^3 occupancy grid (jittered cell centres, no gradient: the original's grid updates); the
  decoder (ref_render_loss.py's decode, the weights of TRI/../../dec.safetensors) at SAMPLES points
  (our march's count, drawn uniformly: PyTorch has no ray marcher), composited over the P*P rays,
  clamped, L1 against the crop;
  backward; gradient norm; torch.optim.AdamW (lr 1e-5); one EMA (0.9999).
Prints "train_upsample_step_small <best ms> <cpu ms>"."""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_train import best_of, finish_step  # noqa: E402
from ref_fit import freq, sample  # noqa: E402
from ref_render_loss import decode, sigmoid_abar  # noqa: E402
from ref_upsampler import Upsampler  # noqa: E402

SMALL = {"in_ch": 32, "out_ch": 32, "cond_ch": 32, "n_feats": 32, "ch_mult": [1, 2, 4], "num_res_blocks": 2,
         "n_resblocks": 6, "temb_ch": 32, "temb_dim": 128, "latent_ch": 4, "latent_size": 16, "patch": 16,
         "embed_dim": 32, "pool_heads": 8, "latent_scale": 0.13025, "groups": 32, "eps": 1e-6, "attn_eps": 1e-5,
         "ln_eps": 1e-5, "head_ch": 32}


def main():
    tri, feat, views = sys.argv[1:4]
    R, P, G, S, reps = (int(a) for a in sys.argv[4:9])
    torch.set_num_threads(int(os.environ.get("RHD_BENCH_THREADS", "2")))
    torch.manual_seed(0)
    m = Upsampler(SMALL).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    ema = [p.detach().clone() for p in m.parameters()]
    hr = load_file(f"{tri}/avatar_100.safetensors")["planes"].float()  # [3,C,R,R]
    mom = load_file(f"{feat}/avatar_100.safetensors")["moments"].float()  # [8,16,16]
    W = {k: v.float() for k, v in load_file(f"{os.path.dirname(tri)}/dec.safetensors").items()}
    C, r = hr.shape[1], R // 4
    abar = sigmoid_abar()
    roll = lambda p: torch.cat([p[:, k] for k in range(3)], -1)  # [N,3,C,r,r] -> [N,C,r,3r]
    x0 = roll(hr[None])
    rays = P * P
    per = max(1, S // rays)
    cc = C * 3 // 4

    def density(T, xyz):
        f = sample(T, xyz)
        h = F.linear(F.softplus(F.linear(freq(f[:, cc:]), W["sigma_net.0.weight"], W["sigma_net.0.bias"])),
                     W["sigma_net.2.weight"], W["sigma_net.2.bias"])
        return torch.exp(h[:, 0].clamp(max=15))

    def gt_patch():
        im = Image.open(f"{views}/img_proc_fg_000000.png").convert("RGBA")
        im = im.resize((im.width // 4, im.height // 4), Image.LANCZOS)
        a = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)
        rgb = a[..., :3] * a[..., 3:] + (1 - a[..., 3:])
        return rgb[:P, :P].reshape(-1, 3)

    def step():
        gt = gt_patch()
        t = torch.randint(0, 100, (1,))
        std = torch.exp(0.5 * mom[4:].clamp(-30, 20))
        ref = (mom[:4] + std * torch.rand(4, 16, 16))[None]
        eps = torch.randn_like(x0)
        low = roll(F.interpolate(hr.reshape(1, 3 * C, R, R), size=(r, r), mode="bicubic",
                                 align_corners=False).reshape(1, 3, C, r, r))
        a = float(np.float32(math.sqrt(abar[int(t)]))), float(np.float32(math.sqrt(1 - abar[int(t)])))
        xt = a[0] * x0 + a[1] * eps
        opt.zero_grad(set_to_none=False)
        y = m(xt, t.float(), ref, low)
        rec = ((y - x0) ** 2).mean()
        T = torch.stack([y[0, :, :, k * R:(k + 1) * R] for k in range(3)])  # unclamped, as the original
        with torch.no_grad():  # 16 grid updates over every cell
            cells = torch.stack(torch.meshgrid(*[torch.arange(G)] * 3, indexing="ij"), -1).reshape(-1, 3).float()
            for _ in range(16):
                density(T, (cells + torch.rand_like(cells)) / G * 2 - 1)
        xyz = torch.rand(rays * per, 3) * 2 - 1
        dirs = F.normalize(torch.randn(rays, 3), dim=-1).repeat_interleave(per, 0)
        sigma, rgb = decode(T, W, xyz, dirs, C)
        alpha = 1 - torch.exp(-sigma.reshape(rays, per) * (2.0 / per))
        Tb = torch.cumprod(torch.cat([torch.ones(rays, 1), 1 - alpha[:, :-1]], 1), 1)
        w = alpha * Tb
        pred = (w[..., None] * rgb.reshape(rays, per, 3)).sum(1) + (1 - w.sum(1, keepdim=True))
        l1 = (pred.clamp(0, 1) - gt).abs().mean()
        (rec + l1).backward()
        finish_step(m, opt, ema)

    wall, cpu = best_of(step, reps)
    print(f"# torch: {sum(p.numel() for p in m.parameters())} parameters, {rays} rays x {per} samples decoded, "
          f"grid {G}^3 x 16 density evaluations")
    print(f"train_upsample_step_small {wall:.3f} {cpu:.3f}")


if __name__ == "__main__":
    main()
