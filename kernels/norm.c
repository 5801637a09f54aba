/* kernels/norm.c: group and layer normalisation, CPU reference (double accumulators) and dispatch. */
#include "kernels/norm.h"
#include <math.h>
#include <stdlib.h>

/* sum and sum of squares of n floats, in double (the simd reduction order is fixed at compile
 * time, so the result is the same on every run and for every thread count) */
static void sum_sq(const float *x, int64_t n, double *s_out, double *s2_out) {
    double s = 0, s2 = 0;
#pragma omp simd reduction(+ : s, s2)
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        s += v;
        s2 += v * v;
    }
    *s_out = s, *s2_out = s2;
}

/* mean and 1/sqrt(biased variance + eps) of n values from their sums */
static void finish_stats(double s, double s2, int64_t n, float eps, float *mean, float *rstd) {
    double m = s / n, var = s2 / n - m * m;
    if (var < 0) var = 0;
    *mean = (float)m;
    *rstd = (float)(1.0 / sqrt(var + eps));
}

// GroupNorm

static void groupnorm_forward_cpu(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                                  const float *beta, int N, int C, int64_t HW, int G, float eps) {
    const int Cg = C / G;
    const int64_t L = Cg * HW, rows = (int64_t)N * G;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * L;
        float *yr = y + r * L, m, rs;
        double s, s2;
        sum_sq(xr, L, &s, &s2);
        finish_stats(s, s2, L, eps, &m, &rs);
        if (mean) mean[r] = m;
        if (rstd) rstd[r] = rs;
        for (int k = 0; k < Cg; k++) {
            int c = (int)(r % G) * Cg + k;
            float a = gamma ? rs * gamma[c] : rs, b = beta ? beta[c] : 0.0f;
            const float *xc = xr + k * HW;
            float *yc = yr + k * HW;
            for (int64_t i = 0; i < HW; i++) yc[i] = (xc[i] - m) * a + b;
        }
    }
}

/* With g = dy * gamma and xhat = (x - mean) * rstd over one group of L values:
 *   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  dgamma[c] += sum dy*xhat,  dbeta[c] += sum dy.
 * Pass 1 sums dy and dy*x per (n, c) in double; the group sums and the parameter gradients are
 * assembled from those, so x and dy are read twice in all. */
static void groupnorm_backward_cpu(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                   const float *mean, const float *rstd, const float *gamma, int N, int C, int64_t HW,
                                   int G) {
    const int Cg = C / G;
    const int64_t L = Cg * HW, NC = (int64_t)N * C;
    double *sums = rhd_xmalloc(sizeof(double) * 2 * NC); /* (N,C) pairs: sum dy, sum dy*x */
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < NC; nc++) {
        const float *dyc = dy + nc * HW, *xc = x + nc * HW;
        double s = 0, sx = 0;
#pragma omp simd reduction(+ : s, sx)
        for (int64_t i = 0; i < HW; i++) {
            s += dyc[i];
            sx += (double)dyc[i] * xc[i];
        }
        sums[2 * nc] = s, sums[2 * nc + 1] = sx;
    }
    if (dx) {
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < (int64_t)N * G; r++) {
            const int64_t n = r / G, c0 = (r % G) * Cg;
            const double m = mean[r], rs = rstd[r];
            double A = 0, B = 0; /* sum g, sum g*xhat over the group */
            for (int k = 0; k < Cg; k++) {
                const double ga = gamma ? gamma[c0 + k] : 1.0, *sc = sums + 2 * (n * C + c0 + k);
                A += ga * sc[0];
                B += ga * (sc[1] - m * sc[0]) * rs;
            }
            /* dx = rs*gamma*dy - rs*A/L - (x - m)*rs^2*B/L */
            const float k0 = (float)(-rs * A / L), k2 = (float)(-rs * rs * B / L), mf = mean[r];
            for (int k = 0; k < Cg; k++) {
                const float k1 = (float)(rs * (gamma ? gamma[c0 + k] : 1.0f));
                const int64_t off = (r * Cg + k) * HW;
                for (int64_t i = 0; i < HW; i++) dx[off + i] = k1 * dy[off + i] + k2 * (x[off + i] - mf) + k0;
            }
        }
    }
    if (dgamma || dbeta) {
#pragma omp parallel for schedule(static)
        for (int c = 0; c < C; c++) {
            double sg = 0, sb = 0;
            for (int n = 0; n < N; n++) {
                const int64_t r = (int64_t)n * G + c / Cg;
                const double *sc = sums + 2 * ((int64_t)n * C + c);
                sg += (sc[1] - (double)mean[r] * sc[0]) * rstd[r];
                sb += sc[0];
            }
            if (dgamma) dgamma[c] += (float)sg;
            if (dbeta) dbeta[c] += (float)sb;
        }
    }
    free(sums);
}

// LayerNorm

static void layernorm_forward_cpu(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                                  const float *beta, int64_t N, int D, float eps) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * D;
        float *yr = y + n * D, m, rs;
        double s, s2;
        sum_sq(xr, D, &s, &s2);
        finish_stats(s, s2, D, eps, &m, &rs);
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = rs;
        for (int d = 0; d < D; d++) yr[d] = (xr[d] - m) * rs * (gamma ? gamma[d] : 1.0f) + (beta ? beta[d] : 0.0f);
    }
}

static void layernorm_backward_cpu(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                   const float *mean, const float *rstd, const float *gamma, int64_t N, int D) {
    if (dx) {
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            const float *dyr = dy + n * D, *xr = x + n * D, m = mean[n], rs = rstd[n];
            double A = 0, B = 0; /* sum g, sum g*xhat with g = dy*gamma */
#pragma omp simd reduction(+ : A, B)
            for (int d = 0; d < D; d++) {
                double g = (double)dyr[d] * (gamma ? gamma[d] : 1.0f);
                A += g;
                B += g * ((xr[d] - m) * rs);
            }
            const float a = (float)(A / D), b = (float)(B / D);
            float *dxr = dx + n * D;
            for (int d = 0; d < D; d++) {
                float g = dyr[d] * (gamma ? gamma[d] : 1.0f), xhat = (xr[d] - m) * rs;
                dxr[d] = rs * (g - a - xhat * b);
            }
        }
    }
    if (dgamma || dbeta) { /* column sums: each thread owns a block of columns, rows in order */
        enum { CB = 64 };
        const int nb = (D + CB - 1) / CB;
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < nb; blk++) {
            const int d0 = blk * CB, d1 = d0 + CB < D ? d0 + CB : D;
            double sg[CB] = {0}, sb[CB] = {0};
            for (int64_t n = 0; n < N; n++) {
                const float *dyr = dy + n * D, *xr = x + n * D, m = mean[n], rs = rstd[n];
                for (int d = d0; d < d1; d++) {
                    sg[d - d0] += (double)dyr[d] * ((xr[d] - m) * rs);
                    sb[d - d0] += dyr[d];
                }
            }
            for (int d = d0; d < d1; d++) {
                if (dgamma) dgamma[d] += (float)sg[d - d0];
                if (dbeta) dbeta[d] += (float)sb[d - d0];
            }
        }
    }
}

// dispatch

void rhd_groupnorm_forward(rhd_ctx *ctx, float *y, float *mean, float *rstd, const float *x, const float *gamma,
                           const float *beta, int N, int C, int64_t HW, int G, float eps) {
    RHD_ASSERT(N >= 0 && C > 0 && HW > 0 && G > 0 && C % G == 0 && eps >= 0);
    if (N == 0) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_groupnorm_forward_cuda(ctx, y, mean, rstd, x, gamma, beta, N, C, HW, G, eps);
        return;
    }
#endif
    groupnorm_forward_cpu(y, mean, rstd, x, gamma, beta, N, C, HW, G, eps);
}

void rhd_groupnorm_backward(rhd_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                            const float *mean, const float *rstd, const float *gamma, int N, int C, int64_t HW, int G) {
    RHD_ASSERT(N >= 0 && C > 0 && HW > 0 && G > 0 && C % G == 0);
    if (N == 0 || (!dx && !dgamma && !dbeta)) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_groupnorm_backward_cuda(ctx, dx, dgamma, dbeta, dy, x, mean, rstd, gamma, N, C, HW, G);
        return;
    }
#endif
    groupnorm_backward_cpu(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, N, C, HW, G);
}

void rhd_layernorm_forward(rhd_ctx *ctx, float *y, float *mean, float *rstd, const float *x, const float *gamma,
                           const float *beta, int64_t N, int D, float eps) {
    RHD_ASSERT(N >= 0 && D > 0 && eps >= 0);
    if (N == 0) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_layernorm_forward_cuda(ctx, y, mean, rstd, x, gamma, beta, N, D, eps);
        return;
    }
#endif
    layernorm_forward_cpu(y, mean, rstd, x, gamma, beta, N, D, eps);
}

void rhd_layernorm_backward(rhd_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                            const float *mean, const float *rstd, const float *gamma, int64_t N, int D) {
    RHD_ASSERT(N >= 0 && D > 0);
    if (N == 0 || (!dx && !dgamma && !dbeta)) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_layernorm_backward_cuda(ctx, dx, dgamma, dbeta, dy, x, mean, rstd, gamma, N, D);
        return;
    }
#endif
    layernorm_backward_cpu(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, N, D);
}
