#!/usr/bin/env python3
"""tests/tools/tiny_features.py SEED DIR NAME...: random features files (formats/features.md) for the
tiny sample configs of tests/data/sample: `moments` [8,16,16] (logvar rows around -1) and
`ms_feature.0..2` [16,8,8], [16,4,4], [16,2,2], drawn in this order from numpy's default_rng(SEED);
with --bad FILE also a copy of the last one whose ms_feature.1 is cut to [16,2,4] (wrong shape)."""
import sys

import numpy as np
from safetensors.numpy import save_file

args = sys.argv[1:]
bad = None
if args[:1] == ["--bad"]:
    bad, args = args[1], args[2:]
seed, out, names = int(args[0]), args[1], args[2:]
g = np.random.default_rng(seed)
meta = {"rhd.kind": "features", "rhd.version": "1"}
for name in names:
    m = g.standard_normal((8, 16, 16)).astype(np.float32)
    m[4:] = -1 + 0.5 * m[4:]
    t = {"moments": m}
    for i, s in enumerate([8, 4, 2]):
        t[f"ms_feature.{i}"] = g.standard_normal((16, s, s)).astype(np.float32)
    save_file(t, f"{out}/{name}.safetensors", metadata=meta)
if bad:
    t["ms_feature.1"] = t["ms_feature.1"][:, :2]
    save_file(t, bad, metadata=meta)
