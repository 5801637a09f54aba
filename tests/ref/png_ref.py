"""tests/ref/png_ref.py: an independent PNG writer and reader (pypng, pure Python) for test_png.c.

  png_ref.py write DIR SEED CASE...   CASE = name:ctype:depth:trns:W:H:interlace
      writes DIR/<name>.png with pypng (ctype: gray, graya, rgb, rgba, pal; trns 1: a tRNS chunk)
      and DIR/<name>_want.npy, float32 (H, W, 4): the RGBA in [0,1] a reader must produce
      (gray copied to R,G,B; v / (2^depth - 1); alpha 1 when absent, 0 for the tRNS colour).
  png_ref.py read DIR CASE...         CASE = name:channels:depth:mode (mode round or trunc)
      reads DIR/<name>.png with pypng, checks its format (bit depth, planes, greyscale, alpha),
      writes DIR/<name>_got.npy (the decoded integers) and DIR/<name>_want.npy (the integers the
      documented quantisation of DIR/<name>_in.npy gives), both float32 (H, W, channels).
Exits 1 with a message when a file's format is not the expected one.
"""
import sys

import numpy as np
import png


def write_case(d, rng, spec):
    name, ctype, depth, trns, w, h, inter = spec.split(":")
    depth, trns, w, h, inter = int(depth), int(trns) == 1, int(w), int(h), int(inter) == 1
    maxv = (1 << depth) - 1
    want = np.ones((h, w, 4), np.float64)
    kw = dict(bitdepth=depth, interlace=inter)
    if ctype == "pal":
        npal = 1 << depth
        pal = rng.integers(0, 256, size=(npal, 4))
        if not trns:
            pal[:, 3] = 255
        idx = rng.integers(0, npal, size=(h, w))
        entries = [tuple(int(v) for v in (p if trns else p[:3])) for p in pal]
        rows = idx
        want[...] = pal[idx] / 255.0
        kw["palette"] = entries
    else:
        planes = {"gray": 1, "graya": 2, "rgb": 3, "rgba": 4}[ctype]
        v = rng.integers(0, maxv + 1, size=(h, w, planes))
        if trns:
            key = v[0, 0].copy()
            v[h // 2, :] = key  # the transparent colour appears on a whole row too
            hit = np.all(v == key, axis=2)
            kw["transparent"] = int(key[0]) if planes == 1 else tuple(int(k) for k in key)
        rows = v.reshape(h, w * planes)
        f = v / maxv
        if planes <= 2:
            want[..., 0:3] = f[..., 0:1]
            if planes == 2:
                want[..., 3] = f[..., 1]
        else:
            want[..., 0:planes] = f
        if trns:
            want[..., 3] = np.where(hit, 0.0, 1.0)
        kw["greyscale"] = planes <= 2
        kw["alpha"] = planes in (2, 4)
    wr = png.Writer(w, h, **kw)
    with open(f"{d}/{name}.png", "wb") as fh:
        wr.write(fh, [list(map(int, r)) for r in rows])
    np.save(f"{d}/{name}_want.npy", want.astype(np.float32))


def quantise(x, maxv, mode):
    x = np.nan_to_num(x.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    x = np.clip(x, np.float32(0), np.float32(1))
    if mode == "trunc":  # a float32 product, truncated, as numpy's (pred*255).astype(np.uint8)
        return np.floor(x * np.float32(maxv)).astype(np.float64)
    return np.floor(x.astype(np.float64) * maxv + 0.5)


def read_case(d, spec):
    name, ch, depth, mode = spec.split(":")
    ch, depth = int(ch), int(depth)
    w, h, rows, info = png.Reader(filename=f"{d}/{name}.png").read()
    planes = info["planes"]
    ok = (info["bitdepth"] == depth and planes == ch and info["greyscale"] == (ch <= 2)
          and info["alpha"] == (ch in (2, 4)))
    if not ok:
        print(f"{name}.png: pypng reads bitdepth {info['bitdepth']} planes {planes} greyscale {info['greyscale']} "
              f"alpha {info['alpha']}, expected {depth}-bit with {ch} channels", file=sys.stderr)
        sys.exit(1)
    got = np.array([list(r) for r in rows], dtype=np.float64).reshape(h, w, planes)
    x = np.load(f"{d}/{name}_in.npy").reshape(h, w, ch)
    np.save(f"{d}/{name}_got.npy", got.astype(np.float32))
    np.save(f"{d}/{name}_want.npy", quantise(x, (1 << depth) - 1, mode).astype(np.float32))


def main():
    cmd, d = sys.argv[1], sys.argv[2]
    if cmd == "write":
        rng = np.random.default_rng(int(sys.argv[3]))
        for spec in sys.argv[4:]:
            write_case(d, rng, spec)
    elif cmd == "read":
        for spec in sys.argv[3:]:
            read_case(d, spec)
    else:
        sys.exit(f"png_ref.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
