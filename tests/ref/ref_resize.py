#!/usr/bin/env python3
"""tests/ref/ref_resize.py DIR: Pillow's LANCZOS resize and the portrait preprocessing of the
original (spec diffusion.md §1.1), for tests/unit/test_resize.c.

DIR/cases.txt has one case per line:
  array K OW OH      DIR/in_K.npy (H, W, 4) float32 holding 8-bit values 0..255
  png K OW OH PATH   the PNG file PATH, opened by Pillow as the original does
For each case it writes DIR/out_K.npy (OH, OW, 4) float32 0..255, the RGBA result of
Image.resize((OW, OH), Image.LANCZOS), and DIR/x_K.npy (3, OH, OW) float32, the encoder input:
v = p/255, rgb*a + (1 - a), 2*rgb - 1, all in float32."""
import sys
import numpy as np
from PIL import Image


def encoder_input(rgba_u8):
    v = rgba_u8.astype(np.float32) / np.float32(255)
    rgb, a = v[..., :3], v[..., 3:4]
    comp = rgb * a + (np.float32(1) - a)
    x = np.float32(2) * comp - np.float32(1)
    return np.ascontiguousarray(x.transpose(2, 0, 1)).astype(np.float32)


def main():
    d = sys.argv[1]
    for line in open(f"{d}/cases.txt"):
        f = line.split()
        if not f:
            continue
        kind, k, ow, oh = f[0], f[1], int(f[2]), int(f[3])
        if kind == "array":
            a = np.load(f"{d}/in_{k}.npy")
            img = Image.fromarray(a.astype(np.uint8), "RGBA")
        else:
            img = Image.open(f[4])
            img.load()
            assert img.mode == "RGBA", img.mode
        out = np.array(img.resize((ow, oh), Image.LANCZOS))
        assert out.dtype == np.uint8 and out.shape == (oh, ow, 4)
        np.save(f"{d}/out_{k}.npy", out.astype(np.float32))
        np.save(f"{d}/x_{k}.npy", encoder_input(out))


if __name__ == "__main__":
    main()
