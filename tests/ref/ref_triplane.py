#!/usr/bin/env python3
"""tests/ref/ref_triplane.py DIR C R: NumPy reference for the triplane layouts (spec diffusion.md
§2.1 roll-out, §6 plane split) and the triplane .npy files, for tests/unit/test_triplane_type.c.

Reads DIR/T.npy [3,C,R,R] and DIR/X.npy [C,R,3R] (float32). Writes
  roll.npy      T rolled out: planes side by side along the width, X[c, i, p*R + j] = T[p, c, i, j]
  unroll.npy    X split into three along the width and stacked on the plane axis: [3,C,R,R]
  np5.npy       T as the original's fitting/base-sampling file: float16 [3,1,C,R,R]
  npstrip.npy   T as the upsampler's file: float32 rolled [C,R,3R]
  npnan.npy     T [3,C,R,R] with a NaN at [1,2,3,4]
and checks the files the C side wrote (DIR/c_planes.npy, DIR/c_rolled.npy): writes
  c_planes_back.npy  c_planes.npy reshaped by NumPy to [3,C,R,R]
  c_rolled_back.npy  c_rolled.npy split by NumPy into [3,C,R,R]
  c_shapes.npy       int32: the two files' shapes as NumPy reads them (5 + 3 values)."""
import sys
import numpy as np


def roll(t):
    return np.concatenate(list(t), axis=2)  # [C, R, 3R]


def unroll(x, r):
    return np.stack(np.split(x, 3, axis=2))  # [3, C, R, R]


def main():
    d, C, R = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    t = np.load(f"{d}/T.npy")
    x = np.load(f"{d}/X.npy")
    assert t.shape == (3, C, R, R) and x.shape == (C, R, 3 * R)
    # an independent second formula for the roll-out: X[c, i, p*R + j] = T[p, c, i, j]
    alt = t.transpose(1, 2, 0, 3).reshape(C, R, 3 * R)
    assert np.array_equal(alt, roll(t))
    np.save(f"{d}/roll.npy", np.ascontiguousarray(roll(t)))
    np.save(f"{d}/unroll.npy", np.ascontiguousarray(unroll(x, R)))
    np.save(f"{d}/np5.npy", t.reshape(3, 1, C, R, R).astype(np.float16))
    np.save(f"{d}/npstrip.npy", np.ascontiguousarray(roll(t)))
    bad = t.copy()
    bad[1, 2, 3, 4] = np.nan
    np.save(f"{d}/npnan.npy", bad)
    cp = np.load(f"{d}/c_planes.npy")
    cr = np.load(f"{d}/c_rolled.npy")
    np.save(f"{d}/c_planes_back.npy", np.ascontiguousarray(cp.reshape(3, C, R, R)).astype(np.float32))
    np.save(f"{d}/c_rolled_back.npy", np.ascontiguousarray(unroll(cr, R)).astype(np.float32))
    np.save(f"{d}/c_shapes.npy", np.array(list(cp.shape) + list(cr.shape), np.int32))


if __name__ == "__main__":
    main()
