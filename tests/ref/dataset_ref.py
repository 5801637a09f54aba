"""tests/ref/dataset_ref.py: an independent NumPy reading of the RodinHD dataset (spec/fitting.md §1)
for test_dataset.c. It parses the metadata JSON and the PNGs itself (json, pypng).

  dataset_ref.py poses DIR OUT VIEWS DIVISOR SCALE OX OY OZ
      OUT.npy float64 (n, 4, 4): the converted c2w of views VIEWS (comma list) of subject DIR,
      written as matrix products: P = Q @ M' @ F, where M' is M with its translation divided by
      DIVISOR, Q permutes the world axes (new x = old y, new y = old z, new z = old x) and
      F = diag(1, -1, -1, 1) flips the camera's y and z; then P[:3, 3] = SCALE*P[:3, 3] + offset.
  dataset_ref.py intrinsics DIR OUT SQUARE
      OUT.npy float64 [fx, fy, cx, cy, W, H] from view 0 (SQUARE 1: fy = fx, else fl/sw*H).
  dataset_ref.py gt DIR OUT VIEWS BR BG BB
      OUT.npy float32 (n, H, W, 3): rgb*a + bg*(1-a) of each view's PNG (RGB PNGs as they are).
"""
import json
import sys

import numpy as np
import png


def camera(d, v):
    with open(f"{d}/metadata_{v:06d}.json") as f:
        return json.load(f)["cameras"][0]


def poses(d, views, div, scale, offset):
    Q = np.zeros((4, 4))
    Q[0, 1] = Q[1, 2] = Q[2, 0] = Q[3, 3] = 1.0
    F = np.diag([1.0, -1.0, -1.0, 1.0])
    out = []
    for v in views:
        M = np.array(camera(d, v)["transformation"], dtype=np.float64)
        M[:3, 3] /= div
        P = Q @ M @ F
        P[:3, 3] = scale * P[:3, 3] + offset
        out.append(P)
    return np.stack(out)


def intrinsics(d, square):
    c = camera(d, 0)
    W, H = c["resolution"]
    fx = c["focal_length"] / c["sensor_width"] * W
    fy = fx if square else c["focal_length"] / c["sensor_width"] * H
    return np.array([fx, fy, W / 2, H / 2, W, H], dtype=np.float64)


def gt(d, views, bg):
    out = []
    for v in views:
        w, h, rows, info = png.Reader(filename=f"{d}/img_proc_fg_{v:06d}.png").asDirect()
        assert info["bitdepth"] == 8 and not info["greyscale"], f"view {v}: expected an 8-bit RGB(A) PNG"
        a = np.array([list(r) for r in rows], dtype=np.float32).reshape(h, w, info["planes"]) / np.float32(255)
        if info["alpha"]:
            rgb = a[..., :3] * a[..., 3:] + bg * (np.float32(1) - a[..., 3:])
        else:
            rgb = a[..., :3]
        out.append(rgb.astype(np.float32))
    return np.stack(out)


def main():
    cmd, d, out = sys.argv[1], sys.argv[2], sys.argv[3]
    if cmd == "poses":
        views = [int(x) for x in sys.argv[4].split(",")]
        div, scale = float(sys.argv[5]), float(sys.argv[6])
        offset = np.array([float(x) for x in sys.argv[7:10]])
        np.save(out, poses(d, views, div, scale, offset))
    elif cmd == "intrinsics":
        np.save(out, intrinsics(d, sys.argv[4] == "1"))
    elif cmd == "gt":
        views = [int(x) for x in sys.argv[4].split(",")]
        bg = np.array([float(x) for x in sys.argv[5:8]], dtype=np.float32)
        np.save(out, gt(d, views, bg))
    else:
        sys.exit(f"dataset_ref.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
