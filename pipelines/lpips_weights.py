#!/usr/bin/env python3
"""pipelines/lpips_weights.py: save the official pretrained LPIPS weights as the safetensors file
that rhd-render --lpips reads (formats/lpips.md).

Run it once on a machine where the `lpips` package and torchvision's ImageNet weights can be had
(the first run downloads torchvision's AlexNet or VGG16 into the torch hub cache; the LPIPS heads
ship inside the lpips package):

    pip install lpips==0.1.4 safetensors      # with torch and torchvision
    python3 pipelines/lpips_weights.py -o lpips_alex.safetensors             # AlexNet (default)
    python3 pipelines/lpips_weights.py --net vgg -o lpips_vgg.safetensors    # VGG16
    rhd-render ... --metrics --lpips lpips_alex.safetensors ...

What it writes: lpips.LPIPS(net=NET, version="0.1", pretrained=True).state_dict() without the
duplicate "lins.K.*" names (the same tensors as "linK.*"), as float32 safetensors:
  net.sliceK.I.weight / .bias     the backbone convs (torchvision's `features`)
  linK.model.1.weight             [1, C_K, 1, 1], the learned heads (K = 0..4)
  scaling_layer.shift / .scale    [1, 3, 1, 1]
with metadata rhd.kind=lpips, rhd.version=1, lpips.net, lpips.version=0.1, lpips.package (the
installed lpips version), torchvision (its version) and rhd.tool.

--random-backbone keeps the official heads but a randomly initialised backbone (no download): only
for trying the script and the file format offline; its distances mean nothing.
"""
import argparse
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", choices=("alex", "vgg"), default="alex", help="backbone (default alex)")
    ap.add_argument("-o", "--output", required=True, help="the safetensors file to write")
    ap.add_argument("--random-backbone", action="store_true",
                    help="random backbone weights (offline trial only; the heads stay official)")
    args = ap.parse_args()

    import PIL
    if not hasattr(PIL, "PILLOW_VERSION"):  # torchvision < 0.5 imports this old name
        PIL.PILLOW_VERSION = PIL.__version__
    import torch
    import torchvision
    import lpips
    from safetensors.torch import load_file, save_file

    try:
        from importlib.metadata import version as dist_version
        version = dist_version("lpips")
    except Exception:  # not installed as a distribution
        version = "unknown"
    if version not in ("0.1.4", "unknown"):
        print(f"lpips_weights: warning: lpips {version} installed; rhd follows 0.1.4", file=sys.stderr)
    model = lpips.LPIPS(net=args.net, version="0.1", pretrained=True, pnet_rand=args.random_backbone,
                        verbose=False).eval()
    sd = {k: v.detach().to(torch.float32).contiguous()
          for k, v in model.state_dict().items() if not k.startswith("lins.")}

    # the layout rhd expects: five heads and the backbone's first conv
    first = sd.get("net.slice1.0.weight")
    want_first = {"alex": (64, 3, 11, 11), "vgg": (64, 3, 3, 3)}[args.net]
    if first is None or tuple(first.shape) != want_first:
        sys.exit(f"lpips_weights: net.slice1.0.weight is {None if first is None else tuple(first.shape)}, "
                 f"expected {want_first}")
    chns = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}[args.net]
    for k, c in enumerate(chns):
        w = sd.get(f"lin{k}.model.1.weight")
        if w is None or tuple(w.shape) != (1, c, 1, 1):
            sys.exit(f"lpips_weights: lin{k}.model.1.weight is {None if w is None else tuple(w.shape)}, "
                     f"expected (1, {c}, 1, 1)")
        if not args.random_backbone and float(w.abs().sum()) == 0:
            sys.exit(f"lpips_weights: lin{k}.model.1.weight is all zero: the pretrained heads did not load")

    meta = {"rhd.kind": "lpips", "rhd.version": "1", "lpips.net": args.net, "lpips.version": "0.1",
            "lpips.package": version, "torchvision": torchvision.__version__,
            "rhd.tool": "pipelines/lpips_weights.py" + (" --random-backbone" if args.random_backbone else "")}
    tmp = args.output + ".tmp"
    save_file(sd, tmp, metadata=meta)
    back = load_file(tmp)
    if set(back) != set(sd) or any(not torch.equal(back[k], sd[k]) for k in sd):
        os.remove(tmp)
        sys.exit(f"lpips_weights: {tmp}: the file does not read back as written")
    os.replace(tmp, args.output)
    n = sum(v.numel() for v in sd.values())
    print(f"lpips_weights: {args.output}: LPIPS {args.net} v0.1, {len(sd)} tensors, {n} parameters"
          + (" (random backbone)" if args.random_backbone else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
