#!/usr/bin/env python3
"""pipelines/convert_checkpoint.py: the original RodinHD .pt checkpoints (model or EMA state dicts of
the base diffusion network or the upsampler) -> the safetensors `checkpoint` file of
formats/checkpoint.md, which common/models/unet.h loads by name.

    python3 pipelines/convert_checkpoint.py ema_0.9999_500000.pt -o base.ckpt.safetensors
    python3 pipelines/convert_checkpoint.py model500000.pt --model base --config base.json -o base.safetensors

What it does: torch.load(map_location="cpu") (a state dict, or a dict holding one under
"state_dict", "model" or "ema"); drops the "decoder." prefix of the released module unless
--keep-prefix; casts every floating tensor to float32 (contiguous); refuses non-finite values and
non-tensor entries (naming them); writes metadata rhd.kind=checkpoint, rhd.version=1, rhd.model,
rhd.step (--step, else the last number in the file name, else 0), rhd.tool, rhd.source (the input's
file name) and rhd.config (the text of --config, when given). Exit status 0 ok, 1 bad input,
2 usage. Needs torch and safetensors (the test venv has both)."""
import argparse
import json
import os
import re
import sys


def fail(msg, code=1):
    print(f"convert_checkpoint.py: error: {msg}", file=sys.stderr)
    sys.exit(code)


def state_dict_of(obj, path):
    import torch
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "ema"):
            if key in obj and isinstance(obj[key], dict):
                return state_dict_of(obj[key], path)
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)][:3] if isinstance(obj, dict) else []
    fail(f"{path}: not a state dict (entries that are not tensors: {bad or type(obj).__name__}), "
         "expected a dict of tensors such as the original's model*.pt or ema_*.pt")


def main():
    ap = argparse.ArgumentParser(description="original .pt checkpoint -> rhd safetensors checkpoint")
    ap.add_argument("input")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--model", default="base", choices=["base", "upsample"])
    ap.add_argument("--step", type=int, default=None)
    ap.add_argument("--config", default=None, help="a JSON file of the model config, stored as rhd.config")
    ap.add_argument("--keep-prefix", action="store_true", help="keep the 'decoder.' prefix of the names")
    a = ap.parse_args()
    import torch
    from safetensors.torch import save_file
    if not os.path.isfile(a.input):
        fail(f"{a.input}: no such file, expected an original .pt checkpoint", 2)
    try:
        obj = torch.load(a.input, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - reported with the file name
        fail(f"{a.input}: cannot be read by torch.load ({type(e).__name__}: {e}), expected a .pt state dict")
    sd = state_dict_of(obj, a.input)
    out = {}
    for k, v in sd.items():
        name = k if a.keep_prefix or not k.startswith("decoder.") else k[len("decoder."):]
        if v.is_floating_point():
            v = v.float()
            if not torch.isfinite(v).all():
                fail(f"{a.input}: tensor '{k}' holds non-finite values, expected finite weights")
        if name in out:
            fail(f"{a.input}: two tensors map to '{name}' (with and without 'decoder.'), expected one")
        out[name] = v.contiguous()
    step = a.step
    if step is None:
        nums = re.findall(r"\d+", os.path.basename(a.input))
        step = int(nums[-1]) if nums else 0
    meta = {"rhd.kind": "checkpoint", "rhd.version": "1", "rhd.model": a.model, "rhd.step": str(step),
            "rhd.tool": "convert_checkpoint.py", "rhd.source": os.path.basename(a.input)}
    if a.config:
        try:
            text = open(a.config).read()
            json.loads(text)
        except (OSError, ValueError) as e:
            fail(f"{a.config}: {e}, expected a JSON model config", 2)
        meta["rhd.config"] = text
    tmp = a.output + ".tmp"
    save_file(out, tmp, metadata=meta)
    os.replace(tmp, a.output)
    n = sum(v.numel() for v in out.values())
    print(f"{a.output}: {len(out)} tensors, {n} parameters (model {a.model}, step {step})")


if __name__ == "__main__":
    main()
