"""Independent NumPy implementation of the diffusion noise schedules, respacing and DDIM steps,
written from shared/spec/diffusion.md §3.1, §3.4, §3.8 and §3.10 (vectorised, unlike the C code).

Usage: ref_schedule.py JOBS OUTDIR
JOBS is a text file, one job per line:
  ID table SCHEDULE T [RESPACING]   -> OUTDIR/ID.npy, float64 [len(TABLES) + 1, T'] with the rows of
                                      TABLES in order and timestep_map as the last row
  ID space T SPEC                   -> a line "ID ok s0 s1 ..." or "ID error" in OUTDIR/results.txt
  ID ddim T S                       -> the same for the DDIM "dpm" timesteps
  ID betas SCHEDULE T               -> "ID ok" / "ID error" (whether the schedule is valid)
"""
import math
import os
import sys

import numpy as np

TABLES = [
    "betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev", "alphas_cumprod_next",
    "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
    "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
    "fixed_large_variance", "fixed_large_log_variance", "snr",
]


def cumulative(name, t):
    """a(t) for t an array in [0, 1]."""
    if name == "squaredcos_cap_v2":
        return np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2
    if name in ("cosine", "cosine_light"):
        s, e, tau = 0.2, 1.0, (5.0 if name == "cosine" else 3.0)
        vs = np.cos(s * np.pi / 2) ** (2 * tau)
        ve = np.cos(e * np.pi / 2) ** (2 * tau)
        return (ve - np.cos((t * (e - s) + s) * np.pi / 2) ** (2 * tau)) / (ve - vs)
    if name == "sigmoid":
        s, e, tau = 0.0, 3.0, 0.1
        sig = lambda x: 1.0 / (1.0 + np.exp(-x))
        return (sig(e / tau) - sig((t * (e - s) + s) / tau)) / (sig(e / tau) - sig(s / tau))
    raise ValueError(name)


def betas_of(name, T):
    if name == "linear":
        scale = 1000 / T
        b = np.linspace(scale * 1e-4, scale * 0.02, T, dtype=np.float64)
    else:
        i = np.arange(T, dtype=np.float64)
        b = np.minimum(1 - cumulative(name, (i + 1) / T) / cumulative(name, i / T), 0.999)
    if not ((b > 0).all() and (b <= 1).all()):
        raise ValueError("betas out of (0, 1]")
    return b


def tables(b):
    T = len(b)
    if T < 2:
        raise ValueError("T < 2")
    a = 1 - b
    ab = np.cumprod(a)
    prev = np.concatenate([[1.0], ab[:-1]])
    nxt = np.concatenate([ab[1:], [0.0]])
    var = b * (1 - prev) / (1 - ab)
    large = np.concatenate([[var[1]], b[1:]])
    out = {
        "betas": b, "alphas": a, "alphas_cumprod": ab, "alphas_cumprod_prev": prev,
        "alphas_cumprod_next": nxt, "sqrt_alphas_cumprod": np.sqrt(ab),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1 - ab), "log_one_minus_alphas_cumprod": np.log(1 - ab),
        "sqrt_recip_alphas_cumprod": np.sqrt(1 / ab), "sqrt_recipm1_alphas_cumprod": np.sqrt(1 / ab - 1),
        "posterior_variance": var,
        "posterior_log_variance_clipped": np.log(np.concatenate([[var[1]], var[1:]])),
        "posterior_mean_coef1": b * np.sqrt(prev) / (1 - ab),
        "posterior_mean_coef2": (1 - prev) * np.sqrt(a) / (1 - ab),
        "fixed_large_variance": large, "fixed_large_log_variance": np.log(large),
        "snr": ab / (1 - ab),
    }
    return np.stack([out[k] for k in TABLES])


def space(T, spec):
    """Sorted list of kept steps (spec §3.8)."""
    if spec.startswith("ddim"):
        want = int(spec[4:])
        if want < 1:
            raise ValueError("ddim count")
        for stride in range(1, T + 1):
            if len(range(0, T, stride)) == want:
                return list(range(0, T, stride))
        raise ValueError("no stride")
    counts = [int(x) for x in spec.split(",")]
    if any(c < 0 for c in counts):
        raise ValueError("negative")
    k = len(counts)
    base, extra = divmod(T, k)
    kept, start = [], 0
    for j, n in enumerate(counts):
        size = base + (1 if j < extra else 0)
        if n > size:
            raise ValueError("section too small")
        if n > 0:
            offs = np.zeros(n)
            if n > 1:
                stride = (size - 1) / (n - 1)
                acc = 0.0
                for q in range(n):  # running float sum, then round half to even
                    offs[q] = acc
                    acc += stride
            kept += [start + int(round(x)) for x in offs]
        start += size
    if not kept:
        raise ValueError("empty")
    return sorted(set(kept))


def ddim(T, S):
    if S < 1 or S > T:
        raise ValueError("S")
    c = T // S
    ts = np.arange(T - 1, 0, -c)[::-1]
    if len(ts) == 0:
        raise ValueError("empty")
    return [int(x) for x in ts]


def main():
    jobs, outdir = sys.argv[1], sys.argv[2]
    np.seterr(divide="ignore", over="ignore")  # beta = 1 (linear, T = 20) gives abar = 0 and infinities
    lines = []
    for line in open(jobs):
        f = line.split()
        if not f:
            continue
        jid, kind = f[0], f[1]
        try:
            if kind == "table":
                name, T = f[2], int(f[3])
                b = betas_of(name, T)
                tmap = np.arange(T)
                if len(f) > 4:
                    use = space(T, f[4])
                    ab = np.cumprod(1 - b)[use]
                    b = 1 - ab / np.concatenate([[1.0], ab[:-1]])
                    tmap = np.array(use)
                arr = np.concatenate([tables(b), tmap[None, :].astype(np.float64)])
                np.save(os.path.join(outdir, jid + ".npy"), arr)
                lines.append("%s ok" % jid)
            elif kind == "space":
                lines.append("%s ok %s" % (jid, " ".join(map(str, space(int(f[2]), f[3])))))
            elif kind == "ddim":
                lines.append("%s ok %s" % (jid, " ".join(map(str, ddim(int(f[2]), int(f[3]))))))
            elif kind == "betas":
                betas_of(f[2], int(f[3]))
                lines.append("%s ok" % jid)
            else:
                raise SystemExit("unknown job kind " + kind)
        except ValueError:
            lines.append("%s error" % jid)
    with open(os.path.join(outdir, "results.txt"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
