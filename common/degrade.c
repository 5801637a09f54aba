/* common/degrade.c: the BSRGAN-light low-resolution synthesis (see degrade.h). */
#include "common/degrade.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "common/backend.h"
#include "common/rng.h"
#include "kernels/resample.h"

const char *rhd_degrade_kind_name(rhd_degrade_kind k) {
    return k == RHD_DEGRADE_STRONG ? "strong" : k == RHD_DEGRADE_NONE ? "none" : k == RHD_DEGRADE_AREA ? "area" : "normal";
}

int rhd_degrade_kind_parse(const char *s, rhd_degrade_kind *k, const char *what, rhd_err *e) {
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, rhd_degrade_kind_name((rhd_degrade_kind)i))) {
            *k = (rhd_degrade_kind)i;
            return 0;
        }
    return rhd_errf(e, "%s: degradation '%s', expected normal, strong, none or area", what, s);
}

/* ---- kernels ---- */

static void normalise(double *k, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += k[i];
    if (s != 0)
        for (int i = 0; i < n; i++) k[i] /= s;
}

void rhd_blur_kernel_iso(double *k, int size, double sigma) {
    double c = (size - 1) / 2.0, mx = 0;
    if (sigma < 1e-4) sigma = 1e-4;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            double dx = x - c, dy = y - c;
            k[y * size + x] = exp(-(dx * dx + dy * dy) / (2 * sigma * sigma));
            if (k[y * size + x] > mx) mx = k[y * size + x];
        }
    for (int i = 0; i < size * size; i++)
        if (k[i] < DBL_EPSILON * mx) k[i] = 0;
    normalise(k, size * size);
}

void rhd_blur_kernel_aniso(double *k, int size, double theta, double l1, double l2) {
    if (l1 < 1e-4) l1 = 1e-4;
    if (l2 < 1e-4) l2 = 1e-4;
    /* v = R(theta) e_x; V = [[v0, v1], [v1, -v0]] is symmetric and its own inverse (V V = |v|^2 I =
     * I), so Sigma = V D V and Sigma^-1 = V D^-1 V */
    double v0 = cos(theta), v1 = sin(theta);
    double a = v0 * v0 / l1 + v1 * v1 / l2, b = v0 * v1 / l1 - v0 * v1 / l2, d = v1 * v1 / l1 + v0 * v0 / l2;
    double c = (size - 1) / 2.0;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            double px = x - c, py = y - c;
            k[y * size + x] = exp(-0.5 * (a * px * px + 2 * b * px * py + d * py * py));
        }
    normalise(k, size * size); /* the density's constant cancels */
}

/* reflection about the edge pixels' centres (scipy "mirror") */
static int mirror(int i, int n) {
    if (n == 1) return 0;
    int p = 2 * (n - 1);
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - i;
}

void rhd_blur_mirror(float *out, const float *in, int C, int H, int W, const double *k, int size) {
    int h = size / 2;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        const float *src = in + (size_t)c * H * W;
        float *dst = out + (size_t)c * H * W;
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                double s = 0;
                for (int a = 0; a < size; a++) {
                    const float *row = src + (size_t)mirror(i + h - a, H) * W;
                    for (int b = 0; b < size; b++) s += k[a * size + b] * row[mirror(j + h - b, W)];
                }
                dst[(size_t)i * W + j] = (float)s;
            }
    }
}

/* ---- separable resampling through per-axis tap tables ---- */

typedef struct {
    int n, taps;   /* outputs, taps per output */
    int *idx;      /* [n*taps] source indices (already inside [0, in)) */
    double *w;     /* [n*taps] */
} axis_taps;

static void taps_alloc(axis_taps *t, int n, int taps) {
    t->n = n, t->taps = taps;
    t->idx = rhd_xmalloc(sizeof(int) * (size_t)n * taps);
    t->w = rhd_xmalloc(sizeof(double) * (size_t)n * taps);
}
static void taps_free(axis_taps *t) { free(t->idx), free(t->w); }

static int clampi(int i, int n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }

/* OpenCV's coordinates and coefficients (imgproc/resize.cpp, float arithmetic) */
static void cv_taps(axis_taps *t, int in, int out, rhd_cv_interp interp) {
    double scale = 1.0 / ((double)out / in);
    int K = interp == RHD_CV_CUBIC ? 4 : 2;
    taps_alloc(t, out, K);
    for (int d = 0; d < out; d++) {
        float f = (float)((d + 0.5) * scale - 0.5);
        int s = (int)floorf(f);
        f -= (float)s;
        int *ix = t->idx + (size_t)d * K;
        double *w = t->w + (size_t)d * K;
        if (K == 2) {
            if (s < 0) f = 0, s = 0;
            if (s >= in - 1) f = 0, s = in - 1;
            ix[0] = s, ix[1] = clampi(s + 1, in);
            w[0] = 1.f - f, w[1] = f;
        } else {
            const float A = -0.75f, x = f;
            float c0 = ((A * (x + 1) - 5 * A) * (x + 1) + 8 * A) * (x + 1) - 4 * A;
            float c1 = ((A + 2) * x - (A + 3)) * x * x + 1;
            float c2 = ((A + 2) * (1 - x) - (A + 3)) * (1 - x) * (1 - x) + 1;
            w[0] = c0, w[1] = c1, w[2] = c2, w[3] = 1.f - c0 - c1 - c2;
            for (int k = 0; k < 4; k++) ix[k] = clampi(s - 1 + k, in);
        }
    }
}

/* MATLAB's bicubic (a = -0.5) */
static double cubic_m(double x) {
    double a = fabs(x), a2 = a * a, a3 = a2 * a;
    if (a <= 1) return 1.5 * a3 - 2.5 * a2 + 1;
    if (a <= 2) return -0.5 * a3 + 2.5 * a2 - 4 * a + 2;
    return 0;
}

/* symmetric reflection of a 0-based index (edge repeated: -1 -> 0, n -> n-1) */
static int symmetric(int i, int n) {
    int p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
}

static void imresize_taps(axis_taps *t, int in, int out, double scale) {
    double kw = 4.0, ks = 1.0;
    if (scale < 1) kw = 4.0 / scale, ks = scale;
    int P = (int)ceil(kw) + 2;
    taps_alloc(t, out, P);
    for (int o = 0; o < out; o++) {
        double u = (o + 1) / scale + 0.5 * (1 - 1 / scale);
        double left = floor(u - kw / 2);
        int *ix = t->idx + (size_t)o * P;
        double *w = t->w + (size_t)o * P, s = 0;
        for (int p = 0; p < P; p++) {
            double j = left + p; /* 1-based */
            w[p] = ks * cubic_m((u - j) * ks);
            s += w[p];
            ix[p] = symmetric((int)j - 1, in);
        }
        for (int p = 0; p < P; p++) w[p] /= s;
    }
}

/* out [C,oh,ow] = rows by ty, then columns by tx */
static void resample2d(float *out, const float *in, int C, int h, int w, const axis_taps *ty, const axis_taps *tx) {
    int oh = ty->n, ow = tx->n;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        float *mid = rhd_xmalloc(sizeof(float) * (size_t)oh * w);
        const float *src = in + (size_t)c * h * w;
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < w; j++) {
                double s = 0;
                for (int k = 0; k < ty->taps; k++)
                    s += ty->w[(size_t)i * ty->taps + k] * src[(size_t)ty->idx[(size_t)i * ty->taps + k] * w + j];
                mid[(size_t)i * w + j] = (float)s;
            }
        float *dst = out + (size_t)c * oh * ow;
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                double s = 0;
                for (int k = 0; k < tx->taps; k++)
                    s += tx->w[(size_t)j * tx->taps + k] * mid[(size_t)i * w + tx->idx[(size_t)j * tx->taps + k]];
                dst[(size_t)i * ow + j] = (float)s;
            }
        free(mid);
    }
}

void rhd_cv_resize(float *out, int ow, int oh, const float *in, int C, int w, int h, rhd_cv_interp interp) {
    RHD_ASSERT(ow >= 1 && oh >= 1 && w >= 1 && h >= 1);
    axis_taps ty, tx;
    cv_taps(&ty, h, oh, interp);
    cv_taps(&tx, w, ow, interp);
    resample2d(out, in, C, h, w, &ty, &tx);
    taps_free(&ty), taps_free(&tx);
}

int rhd_imresize_size(int n, double scale) { return (int)ceil(n * scale); }

void rhd_imresize(float *out, const float *in, int C, int h, int w, double scale) {
    axis_taps ty, tx;
    imresize_taps(&ty, h, rhd_imresize_size(h, scale), scale);
    imresize_taps(&tx, w, rhd_imresize_size(w, scale), scale);
    resample2d(out, in, C, h, w, &ty, &tx);
    taps_free(&ty), taps_free(&tx);
}

void rhd_add_noise(float *x, int C, int H, int W, rhd_noise_mode mode, int level, uint64_t seed, uint64_t stream,
                   uint64_t offset) {
    if (mode == RHD_NOISE_NONE) return;
    float std = (float)(level / 255.0);
    int64_t HW = (int64_t)H * W, n = mode == RHD_NOISE_ELEMENT ? (int64_t)C * HW : HW;
    float *z = rhd_xmalloc(sizeof(float) * (size_t)n);
    rhd_rng_fill_normal(z, n, seed, stream, offset, 0.f, std);
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        const float *zc = mode == RHD_NOISE_ELEMENT ? z + (size_t)c * HW : z;
        float *xc = x + (size_t)c * HW;
        for (int64_t i = 0; i < HW; i++) xc[i] += zc[i];
    }
    free(z);
}

/* ---- the chain ---- */

void rhd_degrade_draw(rhd_degrade_plan *p, rhd_degrade_kind kind, int H, int W, int sf, uint64_t seed,
                      uint64_t stream, uint64_t offset) {
    memset(p, 0, sizeof *p);
    p->kind = kind, p->H = H, p->W = W, p->sf = sf;
    p->seed = seed, p->stream = stream, p->noise_offset = offset + 64;
    for (int i = 0; i < 7; i++) p->order[i] = i;
    if (kind == RHD_DEGRADE_NONE || kind == RHD_DEGRADE_AREA) return;
    float u[24];
    rhd_rng_fill_uniform(u, 24, seed, stream, offset, 0.f, 1.f);
    int s = sf;
    if (u[0] < 0.2f && sf == 4) { /* the original: `if sf == 4 and random() < 0.2`, halve, then the remaining 2 */
        p->halve = u[1] < 0.5f ? (u[2] < 0.5f ? RHD_HALVE_CV_LINEAR : RHD_HALVE_CV_CUBIC) : RHD_HALVE_IMRESIZE;
        s = sf / 2;
    }
    for (int i = 6; i >= 1; i--) { /* Fisher-Yates */
        int j = (int)(u[3 + (6 - i)] * (i + 1));
        if (j > i) j = i;
        int t = p->order[i];
        p->order[i] = p->order[j], p->order[j] = t;
    }
    int i2 = 0, i3 = 0;
    for (int i = 0; i < 7; i++) {
        if (p->order[i] == 2) i2 = i;
        if (p->order[i] == 3) i3 = i;
    }
    if (i3 < i2) p->order[i2] = 3, p->order[i3] = 2;
    p->blur = u[10] < (kind == RHD_DEGRADE_STRONG ? 0.5f : 0.25f);
    p->blur_aniso = u[11] < 0.4f;
    if (p->blur_aniso) {
        p->ksize = 3 + (u[12] < 0.5f ? 0 : 1);
        double wd2 = (4.0 + s) / 4;
        p->theta = u[13] * M_PI, p->l1 = u[14] * wd2, p->l2 = u[15] * wd2;
    } else {
        p->ksize = 5 + (int)(u[12] * 3 > 2 ? 2 : u[12] * 3);
        p->sigma = u[16] * (2.0 + 0.2 * s) / 4;
    }
    p->s2 = 1.8 + u[17] * (1.3 * s - 1.8);
    p->interp2 = u[18] < 0.5f ? RHD_CV_LINEAR : RHD_CV_CUBIC;
    p->interp3 = u[19] < 0.5f ? RHD_CV_LINEAR : RHD_CV_CUBIC;
    int lo = kind == RHD_DEGRADE_STRONG ? 20 : 5, hi = kind == RHD_DEGRADE_STRONG ? 80 : 25;
    p->noise_level = lo + (int)(u[20] * (hi - lo + 1));
    if (p->noise_level > hi) p->noise_level = hi;
    p->noise = u[21] < 0.4f ? RHD_NOISE_ELEMENT : u[21] < 0.8f ? RHD_NOISE_SHARED : RHD_NOISE_NONE;
}

void rhd_degrade_out_size(const rhd_degrade_plan *p, int *oh, int *ow) {
    if (p->kind == RHD_DEGRADE_NONE || p->kind == RHD_DEGRADE_AREA || p->halve == RHD_HALVE_NONE) {
        *oh = (int)(p->H * (1.0 / p->sf)), *ow = (int)(p->W * (1.0 / p->sf));
        return;
    }
    int h = p->halve == RHD_HALVE_IMRESIZE ? rhd_imresize_size(p->H, 0.5) : (int)(0.5 * p->H);
    int w = p->halve == RHD_HALVE_IMRESIZE ? rhd_imresize_size(p->W, 0.5) : (int)(0.5 * p->W);
    *oh = (int)(h * (2.0 / p->sf)), *ow = (int)(w * (2.0 / p->sf)); /* sf 4: h * 0.5, as the original */
}

/* one step of the chain: *cur [C,*h,*w] replaced by the result in *spare (swapped) */
static void swap_bufs(float **cur, float **spare) {
    float *t = *cur;
    *cur = *spare, *spare = t;
}

void rhd_degrade_apply(const rhd_degrade_plan *p, float *out, const float *in, int C) {
    int h = p->H, w = p->W, oh, ow;
    rhd_degrade_out_size(p, &oh, &ow);
    if (p->kind == RHD_DEGRADE_AREA) { /* sf x sf block means (the input's side a multiple of sf) */
        RHD_ASSERT(oh * p->sf == h && ow * p->sf == w);
        const double inv = 1.0 / ((double)p->sf * p->sf);
        for (int c = 0; c < C; c++)
            for (int y = 0; y < oh; y++)
                for (int x = 0; x < ow; x++) {
                    double s = 0;
                    for (int dy = 0; dy < p->sf; dy++)
                        for (int dx = 0; dx < p->sf; dx++) s += in[((size_t)c * h + y * p->sf + dy) * w + x * p->sf + dx];
                    out[((size_t)c * oh + y) * ow + x] = (float)(s * inv);
                }
        return;
    }
    if (p->kind == RHD_DEGRADE_NONE) {
        rhd_ctx cpu = {RHD_BACKEND_CPU};
        rhd_resize_forward(&cpu, out, in, 1, C, h, w, oh, ow, RHD_RESIZE_BICUBIC, 0);
        return;
    }
    size_t cap = (size_t)C * h * w;
    float *cur = rhd_xmalloc(sizeof(float) * cap), *spare = rhd_xmalloc(sizeof(float) * cap);
    memcpy(cur, in, sizeof(float) * cap);
    double sf = p->sf;
    if (p->halve == RHD_HALVE_IMRESIZE) {
        rhd_imresize(spare, cur, C, h, w, 0.5);
        h = rhd_imresize_size(h, 0.5), w = rhd_imresize_size(w, 0.5), sf = p->sf / 2.0;
        swap_bufs(&cur, &spare);
    } else if (p->halve != RHD_HALVE_NONE) {
        int nh = (int)(0.5 * h), nw = (int)(0.5 * w);
        rhd_cv_resize(spare, nw, nh, cur, C, w, h, p->halve == RHD_HALVE_CV_CUBIC ? RHD_CV_CUBIC : RHD_CV_LINEAR);
        h = nh, w = nw, sf = p->sf / 2.0;
        swap_bufs(&cur, &spare);
    }
    int a = w, b = h;
    for (int i = 0; i < 7; i++) {
        int op = p->order[i];
        if (op == 0 && p->blur) {
            double k[64 * 64];
            RHD_ASSERT(p->ksize >= 1 && p->ksize <= 64);
            if (p->blur_aniso) rhd_blur_kernel_aniso(k, p->ksize, p->theta, p->l1, p->l2);
            else rhd_blur_kernel_iso(k, p->ksize, p->sigma);
            rhd_blur_mirror(spare, cur, C, h, w, k, p->ksize);
            swap_bufs(&cur, &spare);
        } else if (op == 2) {
            a = w, b = h;
            int nw = (int)(1.0 / p->s2 * w), nh = (int)(1.0 / p->s2 * h);
            nw = nw < 1 ? 1 : nw, nh = nh < 1 ? 1 : nh;
            rhd_cv_resize(spare, nw, nh, cur, C, w, h, p->interp2);
            w = nw, h = nh;
            swap_bufs(&cur, &spare);
        } else if (op == 3) {
            int nw = (int)(1.0 / sf * a), nh = (int)(1.0 / sf * b);
            rhd_cv_resize(spare, nw, nh, cur, C, w, h, p->interp3);
            w = nw, h = nh;
            swap_bufs(&cur, &spare);
        } else if (op == 4) {
            rhd_add_noise(cur, C, h, w, p->noise, p->noise_level, p->seed, p->stream, p->noise_offset);
        }
    }
    RHD_ASSERT(h == oh && w == ow);
    memcpy(out, cur, sizeof(float) * (size_t)C * h * w);
    free(cur), free(spare);
}
