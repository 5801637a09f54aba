"""tests/ref/ref_ply.py: read a PLY with the plyfile package (an independent reader) for
test_mesh.c.

  ref_ply.py FILE.ply DIR
      writes DIR/info.npy float32 [n_vertex, n_face, binary_little_endian (1/0)],
      DIR/xyz.npy (nv, 3), DIR/rgb.npy (nv, 3) (the uchar values as floats) and
      DIR/faces.npy (nf, 3) (indices as floats; the test meshes are small).
"""
import sys

import numpy as np
from plyfile import PlyData


def main():
    ply = PlyData.read(sys.argv[1])
    d = sys.argv[2]
    v, f = ply["vertex"], ply["face"]
    np.save(f"{d}/info.npy", np.array([v.count, f.count, ply.byte_order == "<" and not ply.text], np.float32))
    np.save(f"{d}/xyz.npy", np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float32))
    np.save(f"{d}/rgb.npy", np.stack([v["red"], v["green"], v["blue"]], 1).astype(np.float32))
    faces = np.stack([np.asarray(t, dtype=np.int64) for t in f["vertex_indices"]]) if f.count else np.zeros((0, 3))
    np.save(f"{d}/faces.npy", faces.astype(np.float32))


if __name__ == "__main__":
    main()
