#!/usr/bin/env python3
"""tests/ref/ref_render_loss.py: the upsampler's rendering loss (spec diffusion.md §5.4) in PyTorch
float64 autograd, for tests/models/test_render_loss.c and test_upsampler_train.c.

  ref_render_loss.py weights DIR SEED
      a random LPIPS-VGG (lpips 0.1.4, pretrained=False, pnet_rand=True, heads U[0, 0.1)) saved as
      DIR/weights.safetensors (the state dict rhd_lpips_load reads)
  ref_render_loss.py loss DIR C R CLAMP T_THRESH W_L1 W_LPIPS P
      inputs (DIR/*.npy, float32): planes [3,C,R,R], xyz [M,3] (sampler coordinates), dirs [M,3],
      delta0 [M], rays [N,2] (offset, count), gt [N,3] (N = P*P, row-major patch), the decoder
      tensors by state-dict name; the decoder of ref_fit.py and the compositing with early termination, then
      pred = clamp(rgb, 0, 1), loss = W_L1 mean|pred - gt| + W_LPIPS lpips(pred, gt, normalize=True).
      Outputs: pred [N,3] (before the clamp), loss [3] = (loss, l1, lpips), dplanes [3,C,R,R].
  ref_render_loss.py gt DIR DS
      the ground truth of the original's upsample dataset (read_meta): DIR/rgba8.npy (uint8
      [H,W,4]) resized by Pillow's LANCZOS to (W/DS, H/DS), ToTensor (fp32 / 255), rgb a + 1 - a in
      fp32 -> DIR/gt.npy [h*w, 3]
  ref_render_loss.py step DIR SF RENDER T_THRESH W_L1 W_LPIPS P [CLAMP]
      one upsampler training step (common/models/upsampler_train.h) with the degradation `none`:
      DIR/cfg.json + params.safetensors (ref_upsampler.py's network), hr [N,3,C,R,R], ref, t [N],
      eps [N,C,R,3R]; low = torch bicubic of hr to R/SF, rolled; x_t = q_sample (T = 100 sigmoid
      schedule computed here in float64, coefficients rounded to float32); y = net(x_t, t, ref, low);
      loss = mean (y - x0)^2 (+ with RENDER = 1, N = 1: the rendering loss of unroll(y), as it is (the
      original, spec diffusion.md §5.4 "not clipped") or with CLAMP = 1 clamped to [-1, 1], at the
      kept march samples xyz, dirs, delta0, rays with gt and the decoder tensors).
      Outputs: loss [3] = (loss, rec, render), grads.safetensors (every parameter's gradient)."""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_dense import TruncExp  # noqa: E402
from ref_fit import NAMES, freq, sample  # noqa: E402


def lpips_model():
    import PIL
    if not hasattr(PIL, "PILLOW_VERSION"):  # torchvision 0.2.2 imports this old name
        PIL.PILLOW_VERSION = PIL.__version__
    import lpips
    return lpips.LPIPS(net="vgg", pretrained=False, pnet_rand=True, verbose=False)


def weights(d, seed):
    from safetensors.torch import save_file
    torch.manual_seed(seed)
    m = lpips_model().eval()
    with torch.no_grad():
        for lin in m.lins:
            lin.model[1].weight.copy_(torch.rand_like(lin.model[1].weight) * 0.1)
    sd = {k: v.contiguous() for k, v in m.state_dict().items() if not k.startswith("lins.")}
    save_file(sd, f"{d}/weights.safetensors")


def load_lpips(d):
    from safetensors.torch import load_file
    m = lpips_model()
    sd = load_file(f"{d}/weights.safetensors")
    for k in range(5):
        sd[f"lins.{k}.model.1.weight"] = sd[f"lin{k}.model.1.weight"]
    m.load_state_dict(sd, strict=False)
    return m.double().eval()


def decode(planes, W, xyz, dirs, C):
    """the decoder of fitting.md §5 (as ref_fit.py): sigma [M], rgb [M,3]"""
    feat = sample(planes, xyz)
    cc = C * 3 // 4
    h = F.linear(F.softplus(F.linear(freq(feat[:, cc:]), W["sigma_net.0.weight"], W["sigma_net.0.bias"])),
                 W["sigma_net.2.weight"], W["sigma_net.2.bias"])
    x = torch.cat([freq(feat[:, :cc]), h[:, 1:], freq(dirs)], dim=-1)
    x = F.relu(F.linear(x, W["color_net.0.weight"]))
    x = F.relu(F.linear(x, W["color_net.1.weight"]))
    return TruncExp.apply(h[:, 0]), torch.sigmoid(F.linear(x, W["color_net.2.weight"]))


def composite(sigma, rgb, delta0, rays, T_thresh):
    preds = []
    for r in range(rays.shape[0]):
        off, cnt = int(rays[r, 0]), int(rays[r, 1])
        if cnt == 0:
            preds.append(torch.ones(3, dtype=torch.float64))
            continue
        alpha = 1 - torch.exp(-sigma[off:off + cnt] * delta0[off:off + cnt])
        Tb = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - alpha, 0)[:-1]])
        w = alpha * Tb * (Tb.detach() >= T_thresh)  # a ray stops after the sample that takes T below
        preds.append((w[:, None] * rgb[off:off + cnt]).sum(0) + (1 - w.sum()))
    return torch.stack(preds)


def render(planes, W, xyz, dirs, delta0, rays, C, T_thresh):
    sigma, rgb = decode(planes, W, xyz, dirs, C)
    return composite(sigma, rgb, delta0, rays, T_thresh)


def patch_loss(pred, gt, P, w1, w2, lp):
    pc = pred.clamp(0, 1)
    l1 = (pc - gt).abs().mean()
    img = lambda t: t.reshape(P, P, 3).permute(2, 0, 1)[None]
    lv = lp(img(pc), img(gt), normalize=True).reshape(())
    return w1 * l1 + w2 * lv, l1, lv


def loss(d, C, R, clamp, T_thresh, w1, w2, P):
    ld = lambda n: torch.from_numpy(np.load(os.path.join(d, n + ".npy"))).double()
    planes = ld("planes").requires_grad_(True)
    xyz, dirs, delta0, rays, gt = ld("xyz"), ld("dirs"), ld("delta0"), ld("rays").long(), ld("gt")
    W = {n: ld(n) for n in NAMES}
    T = planes.clamp(-1, 1) if clamp else planes
    pred = render(T, W, xyz, dirs, delta0, rays, C, T_thresh)
    L, l1, lv = patch_loss(pred, gt, P, w1, w2, load_lpips(d))
    L.backward()
    sv = lambda n, t: np.save(os.path.join(d, n + ".npy"), np.asarray(t.detach().numpy(), dtype=np.float32))
    sv("pred", pred)
    sv("loss", torch.stack([L, l1, lv]))
    sv("dplanes", planes.grad)


def sigmoid_abar(T=100, start=0.0, end=3.0, tau=0.1):
    sig = lambda x: 1 / (1 + np.exp(-x))
    vs, ve = sig(start / tau), sig(end / tau)
    a = lambda t: (ve - sig((t * (end - start) + start) / tau)) / (ve - vs)
    betas = np.array([min(1 - a((i + 1) / T) / a(i / T), 0.999) for i in range(T)])
    return np.cumprod(1 - betas)


def step(d, sf, render_on, T_thresh, w1, w2, P, clamp=0):
    import json
    from safetensors.torch import load_file, save_file
    from ref_upsampler import Upsampler
    torch.set_num_threads(2)
    cfg = json.load(open(f"{d}/cfg.json"))
    m = Upsampler(cfg)
    m.load_state_dict(load_file(f"{d}/params.safetensors"), strict=True)
    ld = lambda n: torch.from_numpy(np.load(os.path.join(d, n + ".npy")))
    hr, ref, t, eps = ld("hr"), ld("ref"), ld("t"), ld("eps")
    N, _, C, R, _ = hr.shape
    roll = lambda p: torch.cat([p[:, k] for k in range(3)], -1)  # [N,3,C,r,r] -> [N,C,r,3r]
    x0 = roll(hr)
    r = R // sf
    low = F.interpolate(hr.reshape(N, 3 * C, R, R), size=(r, r), mode="bicubic", align_corners=False)
    low = roll(low.reshape(N, 3, C, r, r))
    abar = sigmoid_abar()
    ti = t.long()
    ca = torch.tensor([np.float32(np.sqrt(abar[i])) for i in ti]).view(N, 1, 1, 1)
    cb = torch.tensor([np.float32(np.sqrt(1 - abar[i])) for i in ti]).view(N, 1, 1, 1)
    xt = ca * x0 + cb * eps
    y = m(xt, t, ref, low)
    rec = ((y - x0) ** 2).mean()
    total = rec.double()
    rend = torch.zeros((), dtype=torch.float64)
    if render_on:
        T = torch.stack([y[0, :, :, k * R:(k + 1) * R] for k in range(3)]).double()
        if clamp:
            T = T.clamp(-1, 1)
        W = {n: ld(n).double() for n in NAMES}
        xyz, dirs, delta0, rays, gt = ld("xyz").double(), ld("dirs").double(), ld("delta0").double(), ld("rays").long(), ld("gt").double()
        sigma, rgb = decode(T, W, xyz, dirs, C)
        pred = composite(sigma, rgb, delta0, rays, T_thresh)
        rend, _, _ = patch_loss(pred, gt, P, w1, w2, load_lpips(d))
        total = total + rend
    total.backward()
    np.save(f"{d}/loss.npy", np.array([float(total), float(rec), float(rend)], dtype=np.float32))
    save_file({k: p.grad.contiguous() for k, p in m.named_parameters()}, f"{d}/grads.safetensors")


def gt(d, ds):
    from PIL import Image
    a = np.load(f"{d}/rgba8.npy")
    H, W = a.shape[:2]
    w, h = int(W / ds), int(H / ds)
    img = np.asarray(Image.fromarray(a, "RGBA").resize((w, h), Image.LANCZOS))
    x = torch.from_numpy(img.copy()).permute(2, 0, 1).float().div(255).reshape(4, -1).T  # ToTensor, (h*w, 4)
    rgb = x[:, :3] * x[:, 3:] + (1 - x[:, 3:])
    np.save(f"{d}/gt.npy", rgb.numpy().astype(np.float32))


def main():
    op, d = sys.argv[1], sys.argv[2]
    if op == "weights":
        weights(d, int(sys.argv[3]))
    elif op == "loss":
        a = sys.argv[3:]
        loss(d, int(a[0]), int(a[1]), int(a[2]), float(a[3]), float(a[4]), float(a[5]), int(a[6]))
    elif op == "gt":
        gt(d, int(sys.argv[3]))
    elif op == "step":
        a = sys.argv[3:]
        step(d, int(a[0]), int(a[1]), float(a[2]), float(a[3]), float(a[4]), int(a[5]), int(a[6]) if len(a) > 6 else 0)
    else:
        sys.exit(f"ref_render_loss.py: unknown op {op}")


if __name__ == "__main__":
    main()
