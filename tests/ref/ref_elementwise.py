#!/usr/bin/env python3
"""tests/ref/ref_elementwise.py DIR: torch references for kernels/elementwise (add, transpose).
Reads DIR/a.npy, DIR/b.npy (same shape) and DIR/x.npy (B, R, C); writes DIR/add.npy = a + b and
DIR/xt.npy = x.transpose(1, 2) (B, C, R), float32."""
import sys
import numpy as np
import torch

d = sys.argv[1]
a, b, x = (torch.from_numpy(np.load(f"{d}/{n}.npy")) for n in ("a", "b", "x"))
np.save(f"{d}/add.npy", (a + b).numpy())
np.save(f"{d}/xt.npy", x.transpose(1, 2).contiguous().numpy())
