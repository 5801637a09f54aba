"""tests/ref/ref_metrics.py: independent references for common/metrics and common/lpips
(test_metrics.c).

  ref_metrics.py ssim DIR
      reads DIR/pred.npy and DIR/gt.npy, float32 (N, H, W, 3); writes DIR/psnr.npy (N,) computed
      with NumPy in float64 (-10 log10 mean((pred-gt)^2), no clamp) and DIR/ssim.npy (N,) from
      pytorch_msssim.ssim(X, Y, data_range=1, size_average=False) in float64 (window 11,
      sigma 1.5, K = (0.01, 0.03), valid filtering), averaged over channels.
  ref_metrics.py lpips DIR NET SEED
      builds lpips.LPIPS(net=NET, pretrained=False, pnet_rand=True) (no downloads: random
      backbone, torch's default init under manual_seed(SEED)), gives the linear heads random
      non-negative weights, writes the state dict (without the duplicate 'lins.*' names) to
      DIR/weights.safetensors, and writes DIR/lpips.npy (N,) = model(pred, gt, normalize=True)
      for DIR/pred.npy and DIR/gt.npy in [0,1].
"""
import sys

import numpy as np
import torch


def nchw(a):
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


def main():
    mode, d = sys.argv[1], sys.argv[2]
    pred = np.load(f"{d}/pred.npy")
    gt = np.load(f"{d}/gt.npy")
    if mode == "ssim":
        from pytorch_msssim import ssim
        p64, g64 = pred.astype(np.float64), gt.astype(np.float64)
        mse = ((p64 - g64) ** 2).reshape(len(p64), -1).mean(axis=1)
        np.save(f"{d}/psnr.npy", (-10.0 * np.log10(mse)).astype(np.float32))
        s = ssim(nchw(p64), nchw(g64), data_range=1.0, size_average=False)
        np.save(f"{d}/ssim.npy", s.numpy().astype(np.float32))
    elif mode == "lpips":
        net, seed = sys.argv[3], int(sys.argv[4])
        import PIL
        if not hasattr(PIL, "PILLOW_VERSION"):  # torchvision 0.2.2 imports this old name
            PIL.PILLOW_VERSION = PIL.__version__
        import lpips
        from safetensors.torch import save_file
        torch.manual_seed(seed)
        m = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False).eval()
        with torch.no_grad():
            for k, lin in enumerate(m.lins):
                w = lin.model[1].weight
                w.copy_(torch.rand_like(w) * 0.1)
        sd = {k: v.contiguous() for k, v in m.state_dict().items() if not k.startswith("lins.")}
        save_file(sd, f"{d}/weights.safetensors")
        with torch.no_grad():
            out = m(nchw(pred), nchw(gt), normalize=True)
        np.save(f"{d}/lpips.npy", out.reshape(-1).numpy().astype(np.float32))
    else:
        sys.exit(f"ref_metrics.py: unknown mode {mode}")


if __name__ == "__main__":
    main()
