"""Independent writer/reader for the safetensors and .npy tests (the PyPI safetensors package,
numpy and torch). Usage:
  st_ref.py write DIR SEED   write DIR/py.safetensors (every dtype, metadata) and DIR/ref_<name>.npy
                             (float64 copies of the values), plus .npy files of every kind numpy
                             writes: DIR/np_<kind>.npy and DIR/np_<kind>.f64.npy
  st_ref.py check FILE DIR   load FILE (written by rhd) with safetensors and compare each tensor
                             with DIR/ref_<name>.npy; check the metadata in DIR/meta.json
  st_ref.py npycheck DIR     load DIR/c_*.npy (written by rhd) with numpy, compare with
                             DIR/c_*.ref.npy (float64 of the same values written by the test)
"""
import json
import os
import sys

import numpy as np
import torch
import safetensors.torch as st


def write(d, seed):
    g = torch.Generator().manual_seed(seed)
    t = {
        "f32": torch.randn(2, 3, 5, generator=g),
        "f16": torch.randn(7, generator=g).half(),
        "bf16": torch.randn(3, 4, generator=g).bfloat16(),
        "f64": torch.randn(1, 2, 3, 4, generator=g).double(),
        "i32": torch.randint(-1000, 1000, (6,), generator=g, dtype=torch.int32),
        "i64": torch.randint(-10**6, 10**6, (2, 2), generator=g, dtype=torch.int64),
        "u8": torch.randint(0, 256, (9,), generator=g, dtype=torch.uint8),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        "name with \"quotes\" and é": torch.ones(2),
    }
    st.save_file(t, os.path.join(d, "py.safetensors"), metadata={"rhd.kind": "test", "note": "a \"quoted\" value\n"})
    for k, v in t.items():
        safe = k.encode("utf-8").hex()
        np.save(os.path.join(d, "ref_%s.npy" % safe), v.double().numpy())
    rng = np.random.default_rng(seed)
    arrays = {
        "f4": rng.standard_normal((3, 4, 5)).astype("<f4"),
        "f2": rng.standard_normal((7,)).astype("<f2"),
        "f8": rng.standard_normal((2, 2)).astype("<f8"),
        "i4": rng.integers(-5, 5, (4,)).astype("<i4"),
        "i8": rng.integers(-5, 5, (2, 3)).astype("<i8"),
        "u1": rng.integers(0, 255, (5,)).astype("|u1"),
        "scalar": np.array(2.5, dtype="<f4"),
        "empty": np.zeros((0, 3), dtype="<f4"),
        "big": rng.standard_normal((3, 1, 8, 4, 4)).astype("<f4"),
    }
    for k, a in arrays.items():
        np.save(os.path.join(d, "np_%s.npy" % k), a)
        np.save(os.path.join(d, "np_%s.f64.npy" % k), a.astype(np.float64))
    a = arrays["f4"]
    for ver in ((2, 0), (3, 0)):
        with open(os.path.join(d, "np_v%d.npy" % ver[0]), "wb") as f:
            np.lib.format.write_array(f, a, version=ver)
    np.save(os.path.join(d, "np_v.f64.npy"), a.astype(np.float64))
    np.save(os.path.join(d, "np_fortran.npy"), np.asfortranarray(rng.standard_normal((3, 4)).astype("<f4")))
    np.save(os.path.join(d, "np_bigendian.npy"), rng.standard_normal((3,)).astype(">f4"))
    np.save(os.path.join(d, "np_object.npy"), np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(os.path.join(d, "np_complex.npy"), np.zeros(3, dtype=np.complex64))


def check(path, d):
    loaded = st.load_file(path)
    with open(os.path.join(d, "meta.json")) as f:
        want_meta = json.load(f)
    from safetensors import safe_open
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    bad = 0
    if meta != want_meta:
        print("# metadata differs: %r vs %r" % (meta, want_meta))
        bad += 1
    names = sorted(fn[4:-4] for fn in os.listdir(d) if fn.startswith("ref_") and fn.endswith(".npy"))
    want_names = sorted(bytes.fromhex(h).decode("utf-8") for h in names)
    if sorted(loaded) != want_names:
        print("# tensor names differ: %r vs %r" % (sorted(loaded), want_names))
        bad += 1
    for h in names:
        k = bytes.fromhex(h).decode("utf-8")
        ref = np.load(os.path.join(d, "ref_%s.npy" % h))
        got = loaded[k].double().numpy()
        if got.shape != ref.shape or not np.array_equal(got, ref):
            print("# tensor %r differs (shape %s vs %s)" % (k, got.shape, ref.shape))
            bad += 1
    print("# python safetensors read %d tensors from %s, %d problems" % (len(loaded), path, bad))
    sys.exit(1 if bad else 0)


def npycheck(d):
    bad = n = 0
    for fn in sorted(os.listdir(d)):
        if fn.startswith("c_") and fn.endswith(".npy") and not fn.endswith(".ref.npy"):
            a = np.load(os.path.join(d, fn))
            ref = np.load(os.path.join(d, fn[:-4] + ".ref.npy"))
            n += 1
            if a.shape != ref.shape or not np.array_equal(a.astype(np.float64), ref):
                print("# %s differs: %s %s vs %s" % (fn, a.dtype, a.shape, ref.shape))
                bad += 1
    print("# numpy read %d files written by rhd, %d problems" % (n, bad))
    sys.exit(1 if bad or n == 0 else 0)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "write":
        write(sys.argv[2], int(sys.argv[3]))
    elif cmd == "check":
        check(sys.argv[2], sys.argv[3])
    elif cmd == "npycheck":
        npycheck(sys.argv[2])
    else:
        sys.exit("unknown command " + cmd)
