#!/usr/bin/env python3
"""tests/ref/ref_render_loss.py: the upsampler's rendering loss (spec diffusion.md §5.4) in PyTorch
float64 autograd, for tests/models/test_render_loss.c and test_upsampler_train.c.

  ref_render_loss.py weights DIR SEED
      a random LPIPS-VGG (lpips 0.1.4, pretrained=False, pnet_rand=True, heads U[0, 0.1)) saved as
      DIR/weights.safetensors (the state dict rhd_lpips_load reads)
  ref_render_loss.py loss DIR C R CLAMP T_THRESH W_L1 W_LPIPS P
      inputs (DIR/*.npy, float32): planes [3,C,R,R], xyz [M,3] (sampler coordinates), dirs [M,3],
      delta0 [M], rays [N,2] (offset, count), gt [N,3] (N = P*P, row-major patch), the decoder
      tensors by state-dict name; the decoder and the per-ray compositing of ref_fit.py, then
      pred = clamp(rgb, 0, 1), loss = W_L1 mean|pred - gt| + W_LPIPS lpips(pred, gt, normalize=True).
      Outputs: pred [N,3] (before the clamp), loss [3] = (loss, l1, lpips), dplanes [3,C,R,R]."""
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


def render(planes, W, xyz, dirs, delta0, rays, C, T_thresh):
    feat = sample(planes, xyz)
    cc = C * 3 // 4
    h = F.linear(F.softplus(F.linear(freq(feat[:, cc:]), W["sigma_net.0.weight"], W["sigma_net.0.bias"])),
                 W["sigma_net.2.weight"], W["sigma_net.2.bias"])
    sigma = TruncExp.apply(h[:, 0])
    x = torch.cat([freq(feat[:, :cc]), h[:, 1:], freq(dirs)], dim=-1)
    x = F.relu(F.linear(x, W["color_net.0.weight"]))
    x = F.relu(F.linear(x, W["color_net.1.weight"]))
    rgb = torch.sigmoid(F.linear(x, W["color_net.2.weight"]))
    preds = []
    for r in range(rays.shape[0]):
        off, cnt = int(rays[r, 0]), int(rays[r, 1])
        Tr = torch.ones((), dtype=torch.float64)
        acc = torch.zeros(3, dtype=torch.float64)
        A = torch.zeros((), dtype=torch.float64)
        for k in range(off, off + cnt):
            alpha = 1 - torch.exp(-sigma[k] * delta0[k])
            w = alpha * Tr
            acc = acc + w * rgb[k]
            A = A + w
            Tr = Tr * (1 - alpha)
            if float(Tr) < T_thresh:
                break
        preds.append(acc + (1 - A))
    return torch.stack(preds)


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


def main():
    op, d = sys.argv[1], sys.argv[2]
    if op == "weights":
        weights(d, int(sys.argv[3]))
    elif op == "loss":
        a = sys.argv[3:]
        loss(d, int(a[0]), int(a[1]), int(a[2]), float(a[3]), float(a[4]), float(a[5]), int(a[6]))
    else:
        sys.exit(f"ref_render_loss.py: unknown op {op}")


if __name__ == "__main__":
    main()
