#!/usr/bin/env python3
"""tests/ref/ref_nn.py jobs FILE: the PyTorch reference of the building blocks of
common/models/nn.h, for tests/models/test_nn*.c. Each line of FILE is "BLOCK DIR key=value ...".

Every block is written here from the spec (shared/spec/diffusion.md §2.3, §2.4, §5.2, §10.7) with
torch modules whose state-dict names are the original's, so load_state_dict(strict=True) also checks
the names and shapes the C side registered. Reads DIR/params.safetensors, DIR/x.npy (and emb.npy,
enc.npy, t.npy, mask.npy where the block takes them) and DIR/dy.npy; runs the forward in float32 on
the CPU and the backward of sum(y * dy); writes DIR/y.npy, DIR/dx.npy (demb.npy, denc.npy) and
DIR/grads.safetensors (the gradient of every parameter, by name).

Blocks and keys: conv (cin cout k stride pad down bias), gn (C G eps silu), ln (D eps), linear (in out),
silu, relu, maxpool (k s), resample (kind: avgpool|nearest|bilinear), aware3d (C Co), resblock (names: unet|upsampler|vae,
cin cout emb temb: none|scale_shift|add, updown: plain|down|up, aware3d, force_skip, groups, eps,
dropout), attn (kind: joint|cross, C heads enc_ch groups enc_groups eps), temb (ch E)."""
import math
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file


def silu(x):
    return x * torch.sigmoid(x)


class Conv(nn.Module):
    def __init__(self, cin, cout, k, stride, pad, down, bias):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, 0 if down else pad, bias=bool(bias))
        self.down = down

    def forward(self, x):
        if self.down:  # diffusers Downsample2D / Downsample_u: one zero column right, one row below
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Aware3D(nn.Module):
    """Conv3DAware (spec §2.4) on a rolled [N, C, R, 3R] map."""

    def __init__(self, C, Co):
        super().__init__()
        self.out_layers1 = nn.Conv2d(3 * C, Co, 3, 1, 1)
        self.out_layers2 = nn.Conv2d(3 * C, Co, 3, 1, 1)
        self.out_layers3 = nn.Conv2d(3 * C, Co, 3, 1, 1)

    def forward(self, x):
        R = x.shape[2]
        p0, p1, p2 = x[..., :R], x[..., R:2 * R], x[..., 2 * R:]
        rw = [p.mean(dim=2) for p in (p0, p1, p2)]  # [N, C, R] indexed by column j
        rh = [p.mean(dim=3) for p in (p0, p1, p2)]  # [N, C, R] indexed by row i

        def bycol(v):
            return v[:, :, None, :].expand(-1, -1, R, -1)

        def byrow(v):
            return v[:, :, :, None].expand(-1, -1, -1, R)
        i0 = torch.cat([p0, bycol(rw[1]), byrow(rw[2])], 1)
        i1 = torch.cat([bycol(rw[0]), p1, byrow(rh[2])], 1)
        i2 = torch.cat([bycol(rh[0]), byrow(rh[1]), p2], 1)
        return torch.cat([self.out_layers1(i0), self.out_layers2(i1), self.out_layers3(i2)], 3)


class Dropout(nn.Module):
    """Inverted dropout with a given keep mask: x * keep * fp32(1/(1-p))."""

    def __init__(self, p):
        super().__init__()
        self.p = p
        self.mask = None

    def forward(self, x):
        if self.p == 0 or self.mask is None:
            return x
        return x * self.mask * torch.tensor(1.0 / (1.0 - self.p), dtype=torch.float32)


class ResBlock(nn.Module):
    def __init__(self, names, cin, cout, emb, temb, updown, aware3d, force_skip, groups, eps, dropout):
        super().__init__()
        self.names, self.temb, self.updown = names, temb, updown
        conv2 = Aware3D(cout, cout) if aware3d else nn.Conv2d(cout, cout, 3, 1, 1)
        skip = nn.Conv2d(cin, cout, 1) if (cin != cout or force_skip) else nn.Identity()
        embout = 2 * cout if temb == "scale_shift" else cout
        self.drop = Dropout(dropout)
        if names == "unet":
            self.in_layers = nn.Sequential(nn.GroupNorm(groups, cin, eps), nn.SiLU(), nn.Conv2d(cin, cout, 3, 1, 1))
            if temb != "none":
                self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb, embout))
            self.out_layers = nn.Sequential(nn.GroupNorm(groups, cout, eps), nn.SiLU(), self.drop, conv2)
            self.skip_connection = skip
        else:
            self.norm1 = nn.GroupNorm(groups, cin, eps)
            self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
            if temb != "none":
                setattr(self, "temb_proj" if names == "upsampler" else "time_emb_proj", nn.Linear(emb, embout))
            self.norm2 = nn.GroupNorm(groups, cout, eps)
            self.conv2 = conv2
            if not isinstance(skip, nn.Identity):
                setattr(self, "nin_shortcut" if names == "upsampler" else "conv_shortcut", skip)
            self._skip = [skip]  # a plain list: not registered a second time

    def parts(self):
        if self.names == "unet":
            emb = self.emb_layers[1] if self.temb != "none" else None
            return (self.in_layers[0], self.in_layers[2], emb, self.out_layers[0], self.out_layers[3],
                    self.skip_connection)
        emb = None
        if self.temb != "none":
            emb = self.temb_proj if self.names == "upsampler" else self.time_emb_proj
        return self.norm1, self.conv1, emb, self.norm2, self.conv2, self._skip[0]

    def forward(self, x, emb):
        norm1, conv1, lin, norm2, conv2, skip = self.parts()
        a = F.silu(norm1(x))
        if self.updown == "down":
            a, x = F.avg_pool2d(a, 2), F.avg_pool2d(x, 2)
        elif self.updown == "up":
            a, x = F.interpolate(a, scale_factor=2, mode="nearest"), F.interpolate(x, scale_factor=2, mode="nearest")
        h = conv1(a)
        if self.temb == "scale_shift":
            e = lin(F.silu(emb))[:, :, None, None]
            scale, shift = torch.chunk(e, 2, dim=1)
            h = F.silu(norm2(h) * (1 + scale) + shift)
        elif self.temb == "add":
            h = h + lin(F.silu(emb))[:, :, None, None]
            h = F.silu(norm2(h))
        else:
            h = F.silu(norm2(h))
        h = conv2(self.drop(h))
        return skip(x) + h


class Attn(nn.Module):
    """AttentionBlock (joint: encoder keys first, then the self keys) or CrossAttention_u."""

    def __init__(self, kind, C, heads, enc_ch, groups, enc_groups, eps):
        super().__init__()
        self.kind, self.heads = kind, heads
        self.norm = nn.GroupNorm(groups, C, eps)
        self.qkv = nn.Conv1d(C, 3 * C if kind == "joint" else C, 1)
        if enc_ch:
            self.encoder_kv = nn.Conv1d(enc_ch, 2 * C, 1)
        if kind == "cross":
            self.norm_encoder = nn.GroupNorm(enc_groups, enc_ch, eps)
        self.proj_out = nn.Conv1d(C, C, 1)

    def forward(self, x, enc):
        N, C, H, W = x.shape
        h = self.norm(x).reshape(N, C, H * W)
        Hh = self.heads
        d = C // Hh
        s = 1 / math.sqrt(math.sqrt(d))
        if self.kind == "joint":
            qkv = self.qkv(h).reshape(N * Hh, 3 * d, H * W)
            q, k, v = qkv.split(d, dim=1)
            if enc is not None:
                ekv = self.encoder_kv(enc).reshape(N * Hh, 2 * d, -1)
                ek, ev = ekv.split(d, dim=1)
                k, v = torch.cat([ek, k], 2), torch.cat([ev, v], 2)
        else:
            q = self.qkv(h).reshape(N * Hh, d, H * W)
            ekv = self.encoder_kv(self.norm_encoder(enc)).reshape(N * Hh, 2 * d, -1)
            k, v = ekv.split(d, dim=1)
        w = torch.softmax(torch.einsum("bct,bcs->bts", q * s, k * s).float(), dim=-1)
        a = torch.einsum("bts,bcs->bct", w, v).reshape(N, C, H * W)
        return x + self.proj_out(a).reshape(N, C, H, W)


class TimeEmbed(nn.Module):
    def __init__(self, ch, E):
        super().__init__()
        self.time_embed = nn.Sequential(nn.Linear(ch, E), nn.SiLU(), nn.Linear(E, E))
        self.ch = ch

    def forward(self, t):
        half = self.ch // 2  # §10.4: fp32 steps, the cos block first
        freqs = torch.exp(torch.tensor(-math.log(10000), dtype=torch.float32) *
                          torch.arange(half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        return self.time_embed(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


def load(d, name):
    try:
        return torch.from_numpy(np.load(f"{d}/{name}.npy"))
    except FileNotFoundError:
        return None


def build(block, o):
    i, f, s = (lambda k, dflt=0: int(o.get(k, dflt))), (lambda k, dflt=0.0: float(o.get(k, dflt))), o.get
    if block == "conv":
        return Conv(i("cin"), i("cout"), i("k"), i("stride"), i("pad"), i("down"), i("bias", 1))
    if block == "gn":
        m = nn.GroupNorm(i("G"), i("C"), f("eps"))
        return m
    if block == "ln":
        return nn.LayerNorm(i("D"), f("eps"))
    if block == "linear":
        return nn.Linear(i("in"), i("out"))
    if block in ("silu", "relu", "maxpool", "resample"):
        return nn.Module()
    if block == "aware3d":
        return Aware3D(i("C"), i("Co"))
    if block == "resblock":
        return ResBlock(s("names"), i("cin"), i("cout"), i("emb"), s("temb"), s("updown"), i("aware3d"),
                        i("force_skip"), i("groups"), f("eps"), f("dropout"))
    if block == "attn":
        return Attn(s("kind"), i("C"), i("heads"), i("enc_ch"), i("groups"), i("enc_groups"), f("eps"))
    if block == "temb":
        return TimeEmbed(i("ch"), i("E"))
    raise SystemExit(f"ref_nn.py: unknown block '{block}'")


def run(block, d, o):
    m = build(block, o)
    params = load_file(f"{d}/params.safetensors") if any(True for _ in m.parameters()) else {}
    m.load_state_dict(params, strict=True)
    x, emb, enc, t, mask, dy = (load(d, k) for k in ("x", "emb", "enc", "t", "mask", "dy"))
    for v in (x, emb, enc):
        if v is not None:
            v.requires_grad_(True)
    if block == "resblock":
        m.drop.mask = mask
        y = m(x, emb)
    elif block == "attn":
        y = m(x, enc)
    elif block == "temb":
        y = m(t)
    elif block == "gn":
        y = m(x)
        if int(o.get("silu", 0)):
            y = F.silu(y)
    elif block == "silu":
        y = F.silu(x)
    elif block == "relu":
        y = F.relu(x)
    elif block == "maxpool":
        y = F.max_pool2d(x, int(o["k"]), int(o["s"]))
    elif block == "resample":
        kind = o["kind"]
        if kind == "avgpool":
            y = F.avg_pool2d(x, 2)
        elif kind == "nearest":
            y = F.interpolate(x, scale_factor=2, mode="nearest")
        else:
            y = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
    else:
        y = m(x)
    (y * dy).sum().backward()
    np.save(f"{d}/y.npy", y.detach().numpy().astype(np.float32))
    for name, v in (("dx", x), ("demb", emb), ("denc", enc)):
        if v is not None and v.grad is not None:
            np.save(f"{d}/{name}.npy", v.grad.numpy().astype(np.float32))
    grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)).contiguous() for n, p in m.named_parameters()}
    if grads:
        save_file(grads, f"{d}/grads.safetensors")


def main():
    torch.set_num_threads(1)
    if len(sys.argv) != 3 or sys.argv[1] != "jobs":
        raise SystemExit(__doc__)
    for line in open(sys.argv[2]):
        w = line.split()
        if w:
            run(w[0], w[1], dict(kv.split("=", 1) for kv in w[2:]))


if __name__ == "__main__":
    main()
