#!/usr/bin/env python3
"""tests/ref/ref_upsampler.py DIR: an independent PyTorch reference of the TriplaneUpsampler for
tests/models/test_upsampler.c, written from the spec (shared/spec/diffusion.md §2.4, §2.5, §5.1-§5.3,
§7.6, §7.12, §10.1, §10.2, §10.4, §10.10) with modules whose state-dict names are the original's,
loaded with load_state_dict(strict=True) so that the names and shapes the C side registered are
checked as well.

Reads DIR/cfg.json (the C config's fields), DIR/params.safetensors, DIR/{x,t,ref,low,dy}.npy; runs
the forward in float32 on the CPU and the backward of sum(y * dy); writes DIR/y.npy, DIR/dx.npy,
DIR/dlow.npy and DIR/grads.safetensors (every parameter's gradient, by name)."""
import json
import math
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file


def silu(x):  # §10.10: x * sigmoid(x)
    return x * torch.sigmoid(x)


class Aware3D(nn.Module):
    """Conv3DAware (§2.4) on a rolled (N, C, R, 3R) map."""

    def __init__(self, c, co):
        super().__init__()
        self.out_layers1 = nn.Conv2d(3 * c, co, 3, padding=1)
        self.out_layers2 = nn.Conv2d(3 * c, co, 3, padding=1)
        self.out_layers3 = nn.Conv2d(3 * c, co, 3, padding=1)

    def forward(self, x):
        R = x.shape[2]
        p0, p1, p2 = x[..., :R], x[..., R:2 * R], x[..., 2 * R:]
        rw = [p.mean(dim=2) for p in (p0, p1, p2)]  # column profiles (N, C, R) indexed by j
        rh = [p.mean(dim=3) for p in (p0, p1, p2)]  # row profiles indexed by i
        col = lambda v: v[:, :, None, :].expand(-1, -1, R, -1)  # depends on the column
        row = lambda v: v[:, :, :, None].expand(-1, -1, -1, R)  # depends on the row
        a = self.out_layers1(torch.cat([p0, col(rw[1]), row(rw[2])], 1))
        b = self.out_layers2(torch.cat([col(rw[0]), p1, row(rh[2])], 1))
        c = self.out_layers3(torch.cat([col(rh[0]), row(rh[1]), p2], 1))
        return torch.cat([a, b, c], 3)


class Res(nn.Module):
    """ResnetBlock_u (§5.2): GN eps 1e-6, additive time embedding, 3D-aware second conv."""

    def __init__(self, cin, cout, temb, cfg):
        super().__init__()
        g, eps = cfg["groups"], cfg["eps"]
        self.norm1 = nn.GroupNorm(g, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        if temb:
            self.temb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(g, cout, eps=eps)
        self.conv2 = Aware3D(cout, cout)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)
        self.cin, self.cout = cin, cout

    def forward(self, x, temb):
        h = self.conv1(silu(self.norm1(x)))
        if hasattr(self, "temb_proj"):
            h = h + self.temb_proj(silu(temb))[:, :, None, None]
        h = self.conv2(silu(self.norm2(h)))
        return (self.nin_shortcut(x) if self.cin != self.cout else x) + h


class Cross(nn.Module):
    """CrossAttention_u (§5.2) written generally: keys and values only from the encoder tokens."""

    def __init__(self, c, cfg):
        super().__init__()
        self.norm = nn.GroupNorm(cfg["groups"], c, eps=cfg["attn_eps"])
        self.qkv = nn.Conv1d(c, c, 1)
        self.encoder_kv = nn.Conv1d(c, 2 * c, 1)
        self.norm_encoder = nn.GroupNorm(cfg["groups"], c, eps=cfg["attn_eps"])
        self.proj_out = nn.Conv1d(c, c, 1)
        self.heads = c // cfg["head_ch"]

    def forward(self, x, enc):
        N, C, H, W = x.shape
        h, d = self.heads, C // self.heads
        q = self.qkv(self.norm(x.reshape(N, C, H * W))).reshape(N, h, d, H * W)
        kv = self.encoder_kv(self.norm_encoder(enc)).reshape(N, h, 2 * d, -1)
        k, v = kv[:, :, :d], kv[:, :, d:]
        s = d ** -0.25
        w = torch.softmax(torch.einsum("nhdt,nhds->nhts", q * s, k * s), dim=-1)
        o = torch.einsum("nhts,nhds->nhdt", w, v).reshape(N, C, H * W)
        return x + self.proj_out(o).reshape(N, C, H, W)


class Pool(nn.Module):
    """AttentionPooling (§2.5): no output projection."""

    def __init__(self, e, heads):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.zeros(1, e))
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(e, e), nn.Linear(e, e), nn.Linear(e, e)
        self.heads = heads

    def forward(self, x):  # (N, L, E)
        N, L, E = x.shape
        h, dh = self.heads, E // self.heads
        cls = x.mean(dim=1, keepdim=True) + self.positional_embedding[None]
        S = torch.cat([cls, x], 1)
        q = self.q_proj(cls).reshape(N, 1, h, dh)
        k, v = self.k_proj(S).reshape(N, L + 1, h, dh), self.v_proj(S).reshape(N, L + 1, h, dh)
        s = dh ** -0.25
        w = torch.softmax(torch.einsum("nqhd,nkhd->nhqk", q * s, k * s), dim=-1)
        return torch.einsum("nhqk,nkhd->nqhd", w, v).reshape(N, E)


class Level(nn.Module):
    pass


class Upsampler(nn.Module):
    def __init__(self, c):
        super().__init__()
        nf, mult, nb, T = c["n_feats"], c["ch_mult"], c["num_res_blocks"], c["temb_dim"]
        E, Cb = c["embed_dim"], c["n_feats"] * c["ch_mult"][-1]
        self.c = c
        self.time_embed = nn.Sequential(nn.Linear(c["temb_ch"], T), nn.SiLU(), nn.Linear(T, T))
        self.input_layer = nn.ModuleList([nn.Conv2d(c["in_ch"], nf, 3, padding=1), Res(nf, nf, T, c)])
        ch = nf + c["cond_ch"]
        chs = [ch]
        self.down = nn.ModuleList()
        for i, m in enumerate(mult):
            lv = Level()
            lv.block = nn.ModuleList()
            for j in range(nb):
                lv.block.append(Res(ch, nf * m, T, c))
                ch = nf * m
                chs.append(ch)
            if i < len(mult) - 1:
                lv.downsample = Level()
                lv.downsample.conv = nn.Conv2d(ch, ch, 3, stride=2)
                chs.append(ch)
            self.down.append(lv)
        body = []
        for g in range(c["n_resblocks"] // 2):
            body += [Res(ch, ch, T, c), Cross(ch, c), Res(ch, ch, T, c)]
        self.body = nn.ModuleList(body)
        ups = [None] * len(mult)
        for i in reversed(range(len(mult))):
            lv = Level()
            lv.block = nn.ModuleList()
            for j in range(nb + 1):
                lv.block.append(Res(ch + chs.pop(), nf * mult[i], T, c))
                ch = nf * mult[i]
            if i > 0:
                lv.upsample = Level()
                lv.upsample.conv = nn.Conv2d(ch, ch, 3, padding=1)
            ups[i] = lv
        self.up = nn.ModuleList(ups)  # stored finest first, run coarsest first
        self.tail = nn.ModuleList([Res(ch + nf + c["cond_ch"], nf, T, c), Res(nf, c["out_ch"], T, c)])
        self.out = Res(c["out_ch"] + c["cond_ch"], c["out_ch"], 0, c)
        self.conv1 = nn.Conv2d(c["latent_ch"], E, c["patch"], stride=c["patch"], bias=False)
        self.encoder_proj = nn.Linear(E, Cb)
        self.encoder_pooling = nn.Sequential(nn.LayerNorm(E, eps=c["ln_eps"]), Pool(E, c["pool_heads"]),
                                             nn.Linear(E, T), nn.LayerNorm(T, eps=c["ln_eps"]))

    def temb(self, t):  # §2.3, §10.4: fp32, cos first
        half = self.c["temb_ch"] // 2
        freqs = torch.exp(torch.tensor(-math.log(10000), dtype=torch.float32) * torch.arange(half, dtype=torch.float32) / half)
        a = t.float()[:, None] * freqs[None]
        return torch.cat([torch.cos(a), torch.sin(a)], 1)

    def forward(self, x, t, ref, low):
        c = self.c
        R, r = x.shape[2], low.shape[2]
        planes = [low[..., p * r:(p + 1) * r] for p in range(3)]  # per sample (§7.6)
        if r != R:
            planes = [F.interpolate(p, size=(R, R), mode="bicubic", align_corners=False) for p in planes]
        lr = torch.cat(planes, 3)
        emb = self.time_embed[2](F.silu(self.time_embed[0](self.temb(t))))  # time_embed is nn.SiLU, not §10.10's
        tok = self.conv1(c["latent_scale"] * ref).flatten(2).transpose(1, 2)  # (N, L, E)
        emb = emb + self.encoder_pooling(tok)
        enc = self.encoder_proj(tok).transpose(1, 2)  # (N, Cb, L), before the LN
        s = self.input_layer[1](self.input_layer[0](x), emb)
        X = torch.cat([s, lr], 1)
        hs, h = [X], X
        for lv in self.down:
            for b in lv.block:
                h = b(h, emb)
                hs.append(h)
            if hasattr(lv, "downsample"):
                h = lv.downsample.conv(F.pad(h, (0, 1, 0, 1)))
                hs.append(h)
        for m in self.body:
            h = m(h, enc) if isinstance(m, Cross) else m(h, emb)
        for lv in reversed(self.up):
            for b in lv.block:
                h = b(torch.cat([h, hs.pop()], 1), emb)
            if hasattr(lv, "upsample"):
                h = lv.upsample.conv(F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=True))
        h = self.tail[0](torch.cat([h, X], 1), emb)
        h = self.tail[1](h, emb)
        return self.out(torch.cat([h, lr], 1), None)


def main():
    d = sys.argv[1]
    torch.set_num_threads(2)
    with open(f"{d}/cfg.json") as f:
        cfg = json.load(f)
    m = Upsampler(cfg)
    m.load_state_dict(load_file(f"{d}/params.safetensors"), strict=True)
    ld = lambda n: torch.from_numpy(np.load(f"{d}/{n}.npy"))
    x, t, ref, low, dy = (ld(n) for n in ("x", "t", "ref", "low", "dy"))
    x.requires_grad_(True), low.requires_grad_(True)
    y = m(x, t, ref, low)
    (y * dy).sum().backward()
    np.save(f"{d}/y.npy", y.detach().numpy().astype(np.float32))
    np.save(f"{d}/dx.npy", x.grad.numpy().astype(np.float32))
    np.save(f"{d}/dlow.npy", low.grad.numpy().astype(np.float32))
    save_file({k: p.grad.contiguous() for k, p in m.named_parameters()}, f"{d}/grads.safetensors")
    print(f"ref_upsampler: {sum(p.numel() for p in m.parameters())} parameters, "
          f"{len(m.state_dict())} tensors, y {tuple(y.shape)}")


if __name__ == "__main__":
    main()
