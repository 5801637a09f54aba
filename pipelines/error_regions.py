#!/usr/bin/env python3
"""pipelines/error_regions.py: where the squared error of rendered views lies.

    error_regions.py [--markdown] NAME:GT_DIR:RENDER_DIR[:VIEWS] ...

GT_DIR holds a subject's dataset views (img_proc_fg_%06d.png, RGBA, straight alpha), RENDER_DIR
rhd-render's frames of the same views (rgb_%04d.png). The ground truth is composited on white, as
rhd-fit and rhd-render score it. Pixels are split by the ground truth's alpha: background
(alpha < 0.01), fractional (0.01 <= alpha < 0.99: the silhouette, mostly hair strands thinner than a
pixel) and opaque (the rest). For each subject and region: its share of the pixels, its share of
the squared error and the PSNR within it; also what the whole image's PSNR would be if that region
were perfect. VIEWS: e.g. 100-119 (default). Needs numpy and Pillow (the test venv).
"""
import sys

import numpy as np
from PIL import Image

REGIONS = ("background", "fractional", "opaque")


def parse_views(s):
    out = []
    for part in s.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def region_errors(gt_dir, render_dir, views):
    se = dict.fromkeys(REGIONS, 0.0)
    n = dict.fromkeys(REGIONS, 0)
    for v in views:
        g = np.asarray(Image.open("%s/img_proc_fg_%06d.png" % (gt_dir, v)).convert("RGBA"), np.float64) / 255
        r = np.asarray(Image.open("%s/rgb_%04d.png" % (render_dir, v)).convert("RGB"), np.float64) / 255
        if g.shape[:2] != r.shape[:2]:
            sys.exit("error_regions.py: view %d: ground truth %dx%d, render %dx%d, expected the same size"
                     % (v, g.shape[1], g.shape[0], r.shape[1], r.shape[0]))
        a = g[..., 3]
        e = ((g[..., :3] * a[..., None] + (1 - a[..., None]) - r) ** 2).mean(-1)
        masks = {"background": a < 0.01, "fractional": (a >= 0.01) & (a < 0.99), "opaque": a >= 0.99}
        for k, m in masks.items():
            se[k] += float(e[m].sum())
            n[k] += int(m.sum())
    return se, n


def psnr(mse):
    return float("inf") if mse <= 0 else -10 * np.log10(mse)


def main(argv):
    md = "--markdown" in argv
    args = [a for a in argv if a != "--markdown"]
    if not args or any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        return 0 if args else 2
    rows = []
    for spec in args:
        parts = spec.split(":")
        if len(parts) not in (3, 4):
            print("error_regions.py: error: '%s': expected NAME:GT_DIR:RENDER_DIR[:VIEWS]" % spec, file=sys.stderr)
            return 2
        views = parse_views(parts[3]) if len(parts) == 4 else list(range(100, 120))
        se, n = region_errors(parts[1], parts[2], views)
        rows.append((parts[0], se, n))
    if md:
        print("| avatar | PSNR | " + " | ".join("%s: pixels, error, PSNR, PSNR if perfect" % k for k in REGIONS) + " |")
        print("|---|---|" + "---|" * len(REGIONS))
    for name, se, n in rows:
        tot, cnt = sum(se.values()), sum(n.values())
        cells = []
        for k in REGIONS:
            cells.append("%.1f%%, %.1f%%, %.2f, %.2f" % (100 * n[k] / cnt, 100 * se[k] / tot if tot else 0,
                                                         psnr(se[k] / max(n[k], 1)), psnr((tot - se[k]) / cnt)))
        if md:
            print("| %s | %.2f | %s |" % (name, psnr(tot / cnt), " | ".join(cells)))
        else:
            print("%s: PSNR %.2f; %s" % (name, psnr(tot / cnt), "; ".join("%s %s" % (k, c) for k, c in zip(REGIONS, cells))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
