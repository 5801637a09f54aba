#!/usr/bin/env python3
"""tests/fuzz/corpus_model_files.py OUTDIR [PLAN]: the seed corpus of fuzz_checkpoint (committed under
tests/fuzz/corpus/checkpoint/; rerun to regenerate): small valid model files of the fitting stage
(formats/decoder.md, checkpoint.md, iwc.md, triplane.md) with a 4-channel decoder of hidden width
4 and geometry width 2, so that each is a few kB; the fit checkpoint stores PLAN's text (a plan of
rhd-schedule fit; without it a stand-in). Plain Python: safetensors written by hand.
tests/fuzz/corpus_model_files.py --noise OUTDIR: the seed corpus of fuzz_noise (tests/fuzz/corpus/noise/):
noise files of rhd-sample --save-noise (formats/noise.md) for two portraits of a [2, 2, 6] sample: with
and without rhd.names, u and the upsampler's up.* tensors, and one with a z.<k> too many."""
import json, os, random, struct, sys

def write_st(path, tensors, meta):
    """tensors: {name: (shape, [floats])} as F32, in the reference writer's order (by name)."""
    header, blob = {"__metadata__": meta}, b""
    for name in sorted(tensors):
        shape, vals = tensors[name]
        data = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + blob)

rng = random.Random(7)

def noise_corpus(out):
    def t(shape):
        return (shape, [rng.gauss(0, 1) for _ in range(numel(shape))])
    meta = {"rhd.kind": "noise", "rhd.version": "1", "rhd.tool": "rhd-sample 0.1.0"}
    named = dict(meta, **{"rhd.names": json.dumps(["p0", "p1"])})
    base = {"x_T": t([2, 2, 2, 6]), "z.0": t([2, 2, 2, 6]), "z.1": t([2, 2, 2, 6])}
    up = {"up.x_T": t([2, 2, 4, 12]), "up.z.0": t([2, 2, 4, 12]), "up.u": t([2, 4, 2, 2])}
    os.makedirs(out, exist_ok=True)
    write_st(f"{out}/base.safetensors", dict(base, u=t([2, 4, 2, 2])), named)
    write_st(f"{out}/by_order.safetensors", base, meta)
    write_st(f"{out}/upsampled.safetensors", dict(base, u=t([2, 4, 2, 2]), **up), named)
    write_st(f"{out}/extra_step.safetensors", dict(base, **{"z.2": t([2, 2, 2, 6])}), dict(meta, **{"rhd.names": '["p1"]'}))
C, HID, GEO = 4, 4, 2
shapes = {"sigma_net.0.weight": [HID, 5 * C // 4], "sigma_net.0.bias": [HID], "sigma_net.2.weight": [1 + GEO, HID],
          "sigma_net.2.bias": [1 + GEO], "color_net.0.weight": [HID, 5 * 3 * C // 4 + GEO + 15],
          "color_net.1.weight": [HID, HID], "color_net.2.weight": [3, HID]}
def numel(s):
    n = 1
    for d in s: n *= d
    return n
def tensors(prefix="", lo=-0.5, hi=0.5):
    return {prefix + k: (s, [rng.uniform(lo, hi) for _ in range(numel(s))]) for k, s in shapes.items()}
base = {"rhd.version": "1", "rhd.tool": "rhd-fit 0.1.0", "rhd.device": "cpu"}
plan = {"rhd.kind": "plan", "rhd.version": 1, "rhd.tool": "rhd-schedule 0.1.0", "order": "round-robin", "seed": 0,
        "rounds": 1, "iwc_weight": 0.1, "decoder_decay_steps": 15000, "avatars": ["a"],
        "entries": [{"round": 0, "avatars": ["a"], "steps": 2, "first_step": 0}]}
if sys.argv[1] == "--noise":
    noise_corpus(sys.argv[2])
    sys.exit(0)
out = sys.argv[1]
plan_text = open(sys.argv[2]).read() if len(sys.argv) > 2 else json.dumps(plan)
os.makedirs(out, exist_ok=True)
write_st(f"{out}/decoder.safetensors", tensors(), dict(base, **{"rhd.kind": "decoder", "rhd.triplane_res": "8"}))
ck = dict(tensors(), **tensors("adam.m."), **tensors("adam.v.", 0, 0.1))
write_st(f"{out}/fit_checkpoint.safetensors", ck, dict(base, **{
    "rhd.kind": "checkpoint", "rhd.model": "fit", "rhd.step": "2", "rhd.entries_done": "1", "rhd.seed": "0",
    "rhd.plan": plan_text, "rhd.records": '[{"entry":0,"round":0,"avatar":"a","psnr":14.4}]'}))
write_st(f"{out}/unet_checkpoint.safetensors", tensors(), dict(base, **{"rhd.kind": "checkpoint", "rhd.model": "base",
                                                                        "rhd.step": "5"}))
write_st(f"{out}/iwc.safetensors", dict(tensors("fisher.", 0, 1), **tensors("optpar.")), dict(base, **{
    "rhd.kind": "iwc", "rhd.avatar": "a", "rhd.round": "0", "rhd.entry": "0", "rhd.fisher_steps": "1"}))
write_st(f"{out}/triplane.safetensors", {"planes": ([3, C, 4, 4], [rng.uniform(-1, 1) for _ in range(3 * C * 16)])},
         dict(base, **{"rhd.kind": "triplane", "rhd.avatar": "a", "rhd.seed": "0", "rhd.entry": "0"}))
