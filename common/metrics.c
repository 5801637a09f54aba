/* common/metrics.c: PSNR, SSIM and the metrics table/JSON (see metrics.h). */
#include "common/metrics.h"
#include "common/models/renderer.h"
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

double rhd_mse(const float *pred, const float *gt, int64_t n) {
    /* fixed blocks summed in order: deterministic for any thread count */
    enum { BLK = 4096 };
    int64_t nb = (n + BLK - 1) / BLK;
    double *part = rhd_xcalloc(nb ? nb : 1, sizeof(double));
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        int64_t lo = b * BLK, hi = lo + BLK < n ? lo + BLK : n;
        double s = 0;
        for (int64_t i = lo; i < hi; i++) {
            double d = (double)pred[i] - (double)gt[i];
            s += d * d;
        }
        part[b] = s;
    }
    double s = 0;
    for (int64_t b = 0; b < nb; b++) s += part[b];
    free(part);
    return n > 0 ? s / (double)n : 0.0;
}

double rhd_image_psnr(const float *pred, const float *gt, int H, int W) {
    return rhd_psnr(pred, gt, (int64_t)H * W * 3); /* the renderer's: rhd-fit and rhd-render agree */
}

void rhd_ssim_window(double w[RHD_SSIM_WIN]) {
    double s = 0;
    for (int i = 0; i < RHD_SSIM_WIN; i++) {
        double c = i - RHD_SSIM_WIN / 2;
        w[i] = exp(-(c * c) / (2.0 * RHD_SSIM_SIGMA * RHD_SSIM_SIGMA));
        s += w[i];
    }
    for (int i = 0; i < RHD_SSIM_WIN; i++) w[i] /= s;
}

int rhd_image_ssim(const float *pred, const float *gt, int H, int W, double *out, rhd_err *e) {
    const int K = RHD_SSIM_WIN;
    if (H < K || W < K)
        return rhd_errf(e, "SSIM: image is %dx%d, expected at least %dx%d (the Gaussian window)", W, H, K, K);
    const double C1 = 0.01 * 0.01, C2 = 0.03 * 0.03;
    double w[RHD_SSIM_WIN];
    rhd_ssim_window(w);
    int OW = W - K + 1, OH = H - K + 1;
    /* horizontally filtered moments: 5 planes (x, y, xx, yy, xy) of H x OW */
    double *hf = rhd_xmalloc(sizeof(double) * 5 * (size_t)H * OW);
    double *rowsum = rhd_xmalloc(sizeof(double) * OH);
    double total = 0;
    for (int c = 0; c < 3; c++) {
#pragma omp parallel for schedule(static)
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < OW; x++) {
                double m[5] = {0, 0, 0, 0, 0};
                for (int k = 0; k < K; k++) {
                    int64_t i = ((int64_t)y * W + x + k) * 3 + c;
                    double a = pred[i], b = gt[i];
                    m[0] += w[k] * a;
                    m[1] += w[k] * b;
                    m[2] += w[k] * a * a;
                    m[3] += w[k] * b * b;
                    m[4] += w[k] * a * b;
                }
                for (int q = 0; q < 5; q++) hf[((size_t)q * H + y) * OW + x] = m[q];
            }
        }
#pragma omp parallel for schedule(static)
        for (int y = 0; y < OH; y++) {
            double s = 0;
            for (int x = 0; x < OW; x++) {
                double m[5] = {0, 0, 0, 0, 0};
                for (int k = 0; k < K; k++)
                    for (int q = 0; q < 5; q++) m[q] += w[k] * hf[((size_t)q * H + y + k) * OW + x];
                double mu1 = m[0], mu2 = m[1];
                double s11 = m[2] - mu1 * mu1, s22 = m[3] - mu2 * mu2, s12 = m[4] - mu1 * mu2;
                double cs = (2 * s12 + C2) / (s11 + s22 + C2);
                s += (2 * mu1 * mu2 + C1) / (mu1 * mu1 + mu2 * mu2 + C1) * cs;
            }
            rowsum[y] = s;
        }
        double sc = 0;
        for (int y = 0; y < OH; y++) sc += rowsum[y];
        total += sc / ((double)OH * OW);
    }
    free(hf);
    free(rowsum);
    *out = total / 3.0;
    return 0;
}

/* --- table -------------------------------------------------------------------------------------- */

void rhd_metrics_init(rhd_metrics_table *t) { memset(t, 0, sizeof *t); }

void rhd_metrics_free(rhd_metrics_table *t) {
    free(t->rows);
    memset(t, 0, sizeof *t);
}

void rhd_metrics_add(rhd_metrics_table *t, int view, double psnr, double ssim, double lpips) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->rows = rhd_xrealloc(t->rows, sizeof(rhd_metrics_row) * t->cap);
    }
    t->rows[t->n++] = (rhd_metrics_row){view, psnr, ssim, lpips};
}

static double mean_of(const rhd_metrics_table *t, size_t off) {
    double s = 0;
    int n = 0;
    for (int i = 0; i < t->n; i++) {
        double v = *(const double *)((const char *)&t->rows[i] + off);
        if (isnan(v)) continue;
        s += v;
        n++;
    }
    return n ? s / n : NAN;
}

void rhd_metrics_mean(const rhd_metrics_table *t, double *psnr, double *ssim, double *lpips) {
    if (psnr) *psnr = mean_of(t, offsetof(rhd_metrics_row, psnr));
    if (ssim) *ssim = mean_of(t, offsetof(rhd_metrics_row, ssim));
    if (lpips) *lpips = mean_of(t, offsetof(rhd_metrics_row, lpips));
}

/* ', "key": value' for a non-NaN value; +-inf as null with "<key>_inf": true. */
static void put_num(FILE *f, int *first, const char *key, double v) {
    if (isnan(v)) return;
    fprintf(f, "%s\"%s\": ", *first ? "" : ", ", key);
    *first = 0;
    if (isfinite(v)) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.15g", v); /* the shortest of 15 or 17 digits that round-trips */
        if (strtod(buf, NULL) != v) snprintf(buf, sizeof buf, "%.17g", v);
        fputs(buf, f);
    }
    else fprintf(f, "null, \"%s_inf\": true", key);
}

int rhd_metrics_write_json(const rhd_metrics_table *t, FILE *f) {
    fprintf(f, "{\"views\": [");
    for (int i = 0; i < t->n; i++) {
        const rhd_metrics_row *r = &t->rows[i];
        int first = 0;
        fprintf(f, "%s\n  {\"view\": %d", i ? "," : "", r->view);
        put_num(f, &first, "psnr", r->psnr);
        put_num(f, &first, "ssim", r->ssim);
        put_num(f, &first, "lpips", r->lpips);
        fprintf(f, "}");
    }
    double p, s, l;
    rhd_metrics_mean(t, &p, &s, &l);
    int first = 1;
    fprintf(f, "%s],\n \"mean\": {", t->n ? "\n" : "");
    put_num(f, &first, "psnr", p);
    put_num(f, &first, "ssim", s);
    put_num(f, &first, "lpips", l);
    fprintf(f, "}, \"count\": %d", t->n);
    if (t->lpips_net && !isnan(l)) fprintf(f, ", \"lpips_net\": \"%s\"", t->lpips_net);
    if (t->device) fprintf(f, ", \"device\": \"%s\"", t->device);
    fprintf(f, "}\n");
    return ferror(f) ? -1 : 0;
}
