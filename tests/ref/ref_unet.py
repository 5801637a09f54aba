#!/usr/bin/env python3
"""tests/ref/ref_unet.py: an independent PyTorch reference of the RodinHD base UNet (spec
diffusion.md §1.4, §2.3-§2.7, §10.4), for tests/models/test_unet.c.

  ref_unet.py run DIR       reads DIR/config.json (the C config's JSON field names), DIR/params.safetensors
                            (loaded with load_state_dict(strict=True): every name and shape), x.npy t.npy
                            ref.npy F0.npy F1.npy F2.npy dy.npy; runs the forward in float64 (the
                            fp32 timestep embedding of §10.4 cast up) and the backward of sum(y * dy); writes y.npy, dx.npy, grads.safetensors.
  ref_unet.py statedict DIR writes DIR/model.pt: the state dict of this module with random weights
                            (prefixed 'decoder.', as the released checkpoints), and DIR/y_pt.npy: its
                            forward output on the inputs of DIR (for the conversion test).
Dropout is not modelled (the tests run with dropout 0: its mask is checked in test_nn)."""
import json
import math
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file


def gn(C, G, eps):
    return nn.GroupNorm(G, C, eps=eps)


def conv3(cin, cout):
    return nn.Conv2d(cin, cout, 3, 1, 1)


class Aware3D(nn.Module):
    """§2.4 Conv3DAware on a rolled [C, R, 3R] map."""

    def __init__(self, C, Co):
        super().__init__()
        self.out_layers1, self.out_layers2, self.out_layers3 = conv3(3 * C, Co), conv3(3 * C, Co), conv3(3 * C, Co)

    def forward(self, x):
        R = x.shape[2]
        p0, p1, p2 = x[..., :R], x[..., R:2 * R], x[..., 2 * R:]
        rw = lambda p: p.mean(dim=2)  # [N,C,R] indexed by column j
        rh = lambda p: p.mean(dim=3)  # [N,C,R] indexed by row i
        col = lambda v: v[:, :, None, :].expand(-1, -1, R, -1)
        row = lambda v: v[:, :, :, None].expand(-1, -1, -1, R)
        a = self.out_layers1(torch.cat([p0, col(rw(p1)), row(rw(p2))], 1))
        b = self.out_layers2(torch.cat([col(rw(p0)), p1, row(rh(p2))], 1))
        c = self.out_layers3(torch.cat([col(rh(p0)), row(rh(p1)), p2], 1))
        return torch.cat([a, b, c], 3)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, emb, G, eps, updown, aware):
        super().__init__()
        self.in_layers = nn.Sequential(gn(cin, G, eps), nn.SiLU(), conv3(cin, cout))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb, 2 * cout))
        self.out_layers = nn.Sequential(gn(cout, G, eps), nn.SiLU(), nn.Dropout(0.0),
                                        Aware3D(cout, cout) if aware else conv3(cout, cout))
        self.skip_connection = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)
        self.updown = updown

    def forward(self, x, emb):
        h = self.in_layers[1](self.in_layers[0](x))
        if self.updown == "down":
            h, x = F.avg_pool2d(h, 2), F.avg_pool2d(x, 2)
        elif self.updown == "up":
            h, x = F.interpolate(h, scale_factor=2, mode="nearest"), F.interpolate(x, scale_factor=2, mode="nearest")
        h = self.in_layers[2](h)
        s = self.emb_layers(emb)[:, :, None, None]
        scale, shift = s.chunk(2, dim=1)
        h = self.out_layers[0](h) * (1 + scale) + shift
        h = self.out_layers[3](self.out_layers[2](self.out_layers[1](h)))
        return self.skip_connection(x) + h


class Attn(nn.Module):
    """§2.4 joint self + cross attention."""

    def __init__(self, C, heads, xf, G, eps):
        super().__init__()
        self.norm = gn(C, G, eps)
        self.qkv = nn.Conv1d(C, 3 * C, 1)
        self.encoder_kv = nn.Conv1d(xf, 2 * C, 1)
        self.proj_out = nn.Conv1d(C, C, 1)
        self.heads = heads

    def forward(self, x, enc):
        N, C, H, W = x.shape
        h = x.reshape(N, C, H * W)
        qkv = self.qkv(self.norm(h)).reshape(N * self.heads, 3 * C // self.heads, H * W)
        d = C // self.heads
        q, k, v = qkv.split(d, dim=1)
        if enc is not None:
            ekv = self.encoder_kv(enc).reshape(N * self.heads, 2 * d, -1)
            ek, ev = ekv.split(d, dim=1)
            k, v = torch.cat([ek, k], 2), torch.cat([ev, v], 2)
        sc = 1 / math.sqrt(math.sqrt(d))
        w = torch.softmax(torch.einsum("bct,bcs->bts", q * sc, k * sc), dim=-1)
        a = torch.einsum("bts,bcs->bct", w, v).reshape(N, C, H * W)
        return x + self.proj_out(a).reshape(N, C, H, W)


class Pool(nn.Module):
    """§2.5 AttentionPooling without an output projection."""

    def __init__(self, W, heads):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.zeros(1, W))
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(W, W), nn.Linear(W, W), nn.Linear(W, W)
        self.heads = heads

    def forward(self, x):  # x [N, L, W]
        N, L, W = x.shape
        s = torch.cat([x.mean(1, keepdim=True) + self.positional_embedding[None], x], 1)  # [N, L+1, W]
        dh = W // self.heads
        q = self.q_proj(s[:, :1]).reshape(N, 1, self.heads, dh).transpose(1, 2)
        k = self.k_proj(s).reshape(N, L + 1, self.heads, dh).transpose(1, 2)
        v = self.v_proj(s).reshape(N, L + 1, self.heads, dh).transpose(1, 2)
        p = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(dh), dim=-1)
        return (p @ v).transpose(1, 2).reshape(N, W)


def timestep_embedding(t, dim):
    half = dim // 2
    freqs = torch.exp(torch.tensor(-math.log(10000), dtype=torch.float32) * torch.arange(half, dtype=torch.float32) / half)
    a = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(a), torch.sin(a)], 1)


class UNet(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        mc, E, G, eps = c["model_channels"], 4 * c["model_channels"], c["groups"], c["eps"]
        xf, hc = c["xf_width"], c["num_head_channels"]
        self.time_embed = nn.Sequential(nn.Linear(mc, E), nn.SiLU(), nn.Linear(E, E))
        W = c["pool_width"]
        self.conv1 = nn.Conv2d(c["latent_channels"], W, c["patch"], c["patch"], bias=False)
        self.encoder_pooling = nn.Sequential(nn.LayerNorm(W), Pool(W, c["pool_heads"]), nn.Linear(W, E), nn.LayerNorm(E))
        for fc, k, sfx in zip(c["feature_channels"], c["feature_kernels"], ["128", "64", "32"]):
            setattr(self, "norm" + sfx, nn.GroupNorm(c["feature_groups"], fc, eps=1e-5))
            setattr(self, "vae_ms_feature_proj_" + sfx, nn.Conv2d(fc, xf, k, k, bias=False))
        attn_h = set(c["attention_resolutions"])
        H = c["image_size"]
        self.input_blocks = nn.ModuleList([nn.ModuleList([nn.Conv2d(c["in_channels"], mc, 3, 1, 1)])])
        self.in_h = [H]
        chans, ch = [mc], mc
        mult = c["channel_mult"]
        for lvl, m in enumerate(mult):
            for _ in range(c["num_res_blocks"]):
                layers = [ResBlock(ch, m * mc, E, G, eps, None, lvl < c["aware3d_levels"])]
                ch = m * mc
                if H in attn_h:
                    layers.append(Attn(ch, ch // hc, xf, G, eps))
                self.input_blocks.append(nn.ModuleList(layers))
                self.in_h.append(H)
                chans.append(ch)
            if lvl + 1 < len(mult):
                self.input_blocks.append(nn.ModuleList([ResBlock(ch, ch, E, G, eps, "down", False)]))
                self.in_h.append(H)
                chans.append(ch)
                H //= 2
        self.mid_h = H
        self.middle_block = nn.ModuleList([ResBlock(ch, ch, E, G, eps, None, False), Attn(ch, ch // hc, xf, G, eps),
                                           ResBlock(ch, ch, E, G, eps, None, False)])
        self.output_blocks = nn.ModuleList()
        self.out_h = []
        for lvl in reversed(range(len(mult))):
            for i in range(c["num_res_blocks"] + 1):
                skip = chans.pop()
                layers = [ResBlock(ch + skip, mc * mult[lvl], E, G, eps, None, lvl < c["aware3d_levels"])]
                ch = mc * mult[lvl]
                if H in attn_h:
                    layers.append(Attn(ch, ch // hc, xf, G, eps))
                self.out_h.append(H)
                if lvl and i == c["num_res_blocks"]:
                    layers.append(ResBlock(ch, ch, E, G, eps, "up", False))
                    H *= 2
                self.output_blocks.append(nn.ModuleList(layers))
        self.out = nn.Sequential(nn.GroupNorm(G, ch, eps=eps), nn.SiLU(), nn.Conv2d(ch, c["out_channels"], 3, 1, 1))

    def run_block(self, block, h, emb, tokens, H):
        for layer in block:
            if isinstance(layer, ResBlock):
                h = layer(h, emb)
            elif isinstance(layer, Attn):
                h = layer(h, tokens.get(H))
            else:
                h = layer(h)
        return h

    def forward(self, x, t, ref, feats):
        c = self.c
        emb = self.time_embed(timestep_embedding(t, c["model_channels"]).to(x.dtype))  # fp32 embedding (§10.4)
        z = self.conv1(c["latent_scale"] * ref).flatten(2).transpose(1, 2)
        emb = emb + self.encoder_pooling(z)
        tokens = {}
        for f, sfx, hk in zip(feats, ["128", "64", "32"], c["feature_heights"]):
            tokens[hk] = getattr(self, "vae_ms_feature_proj_" + sfx)(getattr(self, "norm" + sfx)(f)).flatten(2)
        hs, h = [], x
        for block, H in zip(self.input_blocks, self.in_h):
            h = self.run_block(block, h, emb, tokens, H)
            hs.append(h)
        h = self.run_block(self.middle_block, h, emb, tokens, self.mid_h)
        for block, H in zip(self.output_blocks, self.out_h):
            h = self.run_block(block, torch.cat([h, hs.pop()], 1), emb, tokens, H)
        return self.out(h)


def npy(d, name):
    return torch.from_numpy(np.load(f"{d}/{name}.npy").astype(np.float32))


def inputs(d):
    return npy(d, "x").requires_grad_(True), npy(d, "t"), npy(d, "ref"), [npy(d, f"F{i}") for i in range(3)]


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("run", "statedict"):
        sys.exit("usage: ref_unet.py run|statedict DIR")
    d = sys.argv[2]
    torch.set_num_threads(2)
    c = json.load(open(f"{d}/config.json"))
    m = UNet(c)
    x, t, ref, feats = inputs(d)
    if sys.argv[1] == "statedict":
        g = torch.Generator().manual_seed(int(c.get("seed", 1)))
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.15)
        torch.save({"decoder." + k: v for k, v in m.state_dict().items()}, f"{d}/model.pt")
        with torch.no_grad():
            np.save(f"{d}/y_pt.npy", m(x, t, ref, feats).numpy())
        return
    sd = load_file(f"{d}/params.safetensors")
    m.load_state_dict({k[8:] if k.startswith("decoder.") else k: v for k, v in sd.items()}, strict=True)
    print(f"ref_unet: {sum(p.numel() for p in m.parameters())} parameters, {len(m.state_dict())} tensors, float64")
    m.double()  # the reference runs in float64: the comparison measures the C side's fp32 error
    x = x.detach().double().requires_grad_(True)
    y = m(x, t, ref.double(), [f.double() for f in feats])
    (y * npy(d, "dy").double()).sum().backward()
    np.save(f"{d}/y.npy", y.detach().float().numpy())
    np.save(f"{d}/dx.npy", x.grad.float().numpy())
    save_file({k: (p.grad if p.grad is not None else torch.zeros_like(p)).float().contiguous() for k, p in m.named_parameters()}, f"{d}/grads.safetensors")


if __name__ == "__main__":
    main()
