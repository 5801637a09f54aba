#!/usr/bin/env python3
"""pipelines/report.py: one page for a pipelines/rodinhd.mk run (Python 3 standard library only).

    python3 pipelines/report.py --out OUT [--samples "a b"] [--heldout "a"] [--data DIR]

Reads what every stage left under OUT/ (fit/stage1.jsonl, stage2/*.log.json, base/train.json and
train_log.jsonl, samples/*.log.json, eval/{sample,fitted}/<a>/metrics.json, turntables/, meshes/)
and writes OUT/report.md, OUT/report.html (the same tables, images inline) and OUT/metrics.json:
per sampled avatar the mean PSNR/SSIM (and LPIPS when measured) of the generated avatar against
the ground-truth views and of its fitted triplane (the upper bound), and their means. A missing
file is reported as missing, never an error: the page is useful for a partial run too.
"""
import argparse
import html
import json
import os
import struct
import sys


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_jsonl(path):
    rows = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        rows.append(json.loads(line))
                    except ValueError:
                        pass
    except OSError:
        return None
    return rows


def fmt(x, digits=2):
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return f"{x:.{digits}f}"
    return "-" if x is None else str(x)


def metric_means(path):
    m = read_json(path)
    if not m or not isinstance(m.get("mean"), dict):
        return None
    return {k: m["mean"].get(k) for k in ("psnr", "ssim", "lpips") if k in m["mean"]}


class Page:
    """Markdown lines and HTML fragments built side by side."""

    def __init__(self):
        self.md, self.html = [], []

    def heading(self, text):
        self.md += [f"## {text}", ""]
        self.html.append(f"<h2>{html.escape(text)}</h2>")

    def para(self, text):
        self.md += [text, ""]
        self.html.append(f"<p>{html.escape(text)}</p>")

    def table(self, head, rows):
        self.md.append("| " + " | ".join(head) + " |")
        self.md.append("|" + "---|" * len(head))
        for r in rows:
            self.md.append("| " + " | ".join(r) + " |")
        self.md.append("")
        h = "".join(f"<th>{html.escape(c)}</th>" for c in head)
        b = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        self.html.append(f"<table><tr>{h}</tr>{b}</table>")

    def image(self, out, rel, caption):
        if os.path.exists(os.path.join(out, rel)):
            self.md += [f"![{caption}]({rel})", ""]
            self.html.append(f'<figure><img src="{html.escape(rel)}" alt="{html.escape(caption)}">'
                             f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        else:
            self.para(f"{caption}: missing ({rel})")


def fit_section(page, out):
    page.heading("Fitting (rhd-fit)")
    rows = read_jsonl(os.path.join(out, "fit", "stage1.jsonl"))
    if rows is None:
        page.para("stage 1: fit/stage1.jsonl missing")
    else:
        entries = [r for r in rows if "entry" in r]
        page.table(["entry", "round", "avatar", "held-out PSNR (dB)"],
                   [[str(r.get("entry")), str(r.get("round")), str(r.get("avatar")), fmt(r.get("psnr"))]
                    for r in entries[-12:]])
        if len(entries) > 12:
            page.para(f"(the last 12 of {len(entries)} entries)")
        rep = [r["report"] for r in rows if "report" in r]
        if rep:
            page.para("stage-1 forgetting report: " + json.dumps(rep[-1], sort_keys=True)[:800])
    s2 = sorted(f for f in os.listdir(os.path.join(out, "stage2")) if f.endswith(".log.json")) \
        if os.path.isdir(os.path.join(out, "stage2")) else []
    if s2:
        page.table(["stage-2 avatar", "output"],
                   [[f[:-len(".log.json")], json.dumps(read_jsonl(os.path.join(out, "stage2", f)))[:200]] for f in s2])


def checkpoint_pred(path):
    """The prediction target (eps, xstart, v) recorded in a checkpoint's rhd.config, or None."""
    try:
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            if n > 100 << 20:
                return None
            meta = json.loads(f.read(n)).get("__metadata__", {})
        return json.loads(meta.get("rhd.config", "{}")).get("diffusion", {}).get("pred")
    except Exception:  # a corrupt or foreign file: the column keeps the original's label
        return None


def train_section(page, out):
    page.heading("Training (rhd-train)")
    for model in ("base", "upsample"):
        d = os.path.join(out, model)
        if not os.path.isdir(d):
            continue
        done = read_json(os.path.join(d, "train.json"))
        log = read_jsonl(os.path.join(d, "train_log.jsonl")) or []
        page.para(f"{model}: " + (f"{done.get('steps')} steps, checkpoint {done.get('checkpoint')}"
                                  if done else "not finished (train.json missing)"))
        if log:
            first, last = log[0], log[-1]
            pred = checkpoint_pred(os.path.join(d, "checkpoint.safetensors")) or "eps"
            page.table(["", "step", "loss", f"{pred} MSE", "VB"],
                       [[w, str(r.get("step")), fmt(r.get("loss"), 4), fmt(r.get("mse"), 4), fmt(r.get("vb"), 4)]
                        for w, r in (("first log line", first), ("last log line", last))])
        page.image(out, f"{model}/loss.png", f"{model} loss curve")


def eval_section(page, out, samples, heldout):
    page.heading("Generated avatars against ground truth (rhd-sample, rhd-render)")
    page.para("sample: the avatar generated from its portrait; fitted: its fitted triplane, the upper "
              "bound of what the model can reproduce. Means over the held-out views.")
    summary, rows = {"avatars": {}}, []
    for a in samples:
        rec = {}
        for kind in ("sample", "fitted"):
            rec[kind] = metric_means(os.path.join(out, "eval", kind, a, "metrics.json"))
        log = read_jsonl(os.path.join(out, "samples", a + ".log.json")) or []
        rec["sample_seconds"] = log[0].get("seconds") if log else None
        rec["held_out"] = a in heldout
        summary["avatars"][a] = rec
        for kind in ("sample", "fitted"):
            m = rec[kind] or {}
            rows.append([a, "held out" if rec["held_out"] else "trained on", kind, fmt(m.get("psnr")),
                         fmt(m.get("ssim"), 4), fmt(m.get("lpips"), 4)])
    page.table(["avatar", "", "triplane", "PSNR (dB)", "SSIM", "LPIPS"], rows)
    for kind in ("sample", "fitted"):
        vals = [r[kind] for r in summary["avatars"].values() if r[kind]]
        summary["mean_" + kind] = {k: sum(v[k] for v in vals if v.get(k) is not None) / len(vals)
                                   for k in ("psnr", "ssim", "lpips") if vals and all(v.get(k) is not None for v in vals)}
    for a in samples:
        page.image(out, f"eval/sample/{a}/contact_sheet.png", f"{a}: ground truth | generated")
        page.image(out, f"eval/fitted/{a}/contact_sheet.png", f"{a}: ground truth | fitted (upper bound)")
        tdir = os.path.join(out, "turntables", a)
        frames = sorted(f for f in os.listdir(tdir) if f.endswith(".png")) if os.path.isdir(tdir) else []
        mesh = f"meshes/{a}.ply"
        page.para(f"{a}: turntable {len(frames)} frames in turntables/{a}/; mesh {mesh}"
                  + ("" if os.path.exists(os.path.join(out, mesh)) else " (missing)"))
        if frames:
            page.image(out, f"turntables/{a}/{frames[len(frames) // 2]}", f"{a}: a turntable frame")
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="the pipeline's OUT folder")
    ap.add_argument("--samples", default="", help="sampled avatars (space-separated)")
    ap.add_argument("--heldout", default="", help="held-out avatars (space-separated)")
    ap.add_argument("--data", default="", help="the data folder (shown)")
    a = ap.parse_args()
    if not os.path.isdir(a.out):
        print(f"report.py: --out {a.out}: not a folder, expected the pipeline's OUT", file=sys.stderr)
        return 1
    samples, heldout = a.samples.split(), a.heldout.split()
    page = Page()
    page.para(f"data: {a.data or '?'}; sampled: {' '.join(samples) or 'none'}; held out: {' '.join(heldout) or 'none'}")
    opts = os.path.join(a.out, ".opts")
    if os.path.isdir(opts):
        page.heading("Options (OUT/.opts)")
        rows = []
        for f in sorted(os.listdir(opts)):
            with open(os.path.join(opts, f)) as fh:
                rows.append([f, fh.read().strip()[:300]])
        page.table(["stage", "options"], rows)
    fit_section(page, a.out)
    train_section(page, a.out)
    summary = eval_section(page, a.out, samples, heldout)
    title = "RodinHD pipeline report"
    for name, text in (("report.md", "\n".join([f"# {title}", ""] + page.md)),
                       ("report.html", "<!doctype html><meta charset=utf-8><title>%s</title><style>"
                        "body{font-family:sans-serif;max-width:60em}td,th{border:1px solid #ccc;padding:2px 6px}"
                        "table{border-collapse:collapse}img{max-width:100%%}</style><h1>%s</h1>\n%s\n"
                        % (title, title, "\n".join(page.html))),
                       ("metrics.json", json.dumps(summary, indent=1, sort_keys=True) + "\n")):
        tmp = os.path.join(a.out, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(a.out, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
