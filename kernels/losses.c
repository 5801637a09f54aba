/* kernels/losses.c: CPU reference of the fitting losses (contract in losses.h) and the backend
 * dispatch. Sums are taken in double over fixed chunks (independent of the thread count), and the
 * chunk partials are added in chunk order. */
#include "kernels/losses.h"
#include "common/err.h"
#include <stdlib.h>

#define LOSS_CHUNK 8192

static int64_t n_chunks(int64_t n) { return (n + LOSS_CHUNK - 1) / LOSS_CHUNK; }

static double sum_in_order(const double *part, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += part[i];
    return s;
}

/* total = the sum over i < n of what BODY adds to the double `s`, taken over fixed chunks of
 * LOSS_CHUNK elements whose partials are added in chunk order (independent of the threads). */
#define CHUNKED_SUM(total, n, i, BODY)                                                                                \
    do {                                                                                                              \
        int64_t nc_ = n_chunks(n);                                                                                    \
        double *part_ = rhd_xmalloc(sizeof(double) * (size_t)nc_);                                                    \
        _Pragma("omp parallel for schedule(static)") for (int64_t k_ = 0; k_ < nc_; k_++) {                           \
            int64_t i1_ = (k_ + 1) * LOSS_CHUNK < (n) ? (k_ + 1) * LOSS_CHUNK : (n);                                  \
            double s = 0;                                                                                             \
            for (int64_t i = k_ * LOSS_CHUNK; i < i1_; i++) { BODY }                                                  \
            part_[k_] = s;                                                                                            \
        }                                                                                                             \
        total = sum_in_order(part_, nc_);                                                                             \
        free(part_);                                                                                                  \
    } while (0)

double rhd_loss_mse(rhd_ctx *ctx, float *dx, const float *x, const float *y, int64_t n, float scale) {
    RHD_ASSERT(n > 0);
    float coef = (float)(2.0 * scale / (double)n);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) return rhd_loss_mse_cuda(ctx, dx, x, y, n, coef) / (double)n;
#endif
    double sum;
    CHUNKED_SUM(sum, n, i, {
        float d = x[i] - y[i];
        double dd = (double)x[i] - y[i];
        s += dd * dd;
        if (dx) dx[i] = coef * d;
    });
    return sum / (double)n;
}

double rhd_loss_l1(rhd_ctx *ctx, float *dx, const float *x, int64_t n, float scale, int clamp) {
    RHD_ASSERT(n > 0);
    float coef = (float)(scale / (double)n);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) return rhd_loss_l1_cuda(ctx, dx, x, n, coef, clamp) / (double)n;
#endif
    double sum;
    CHUNKED_SUM(sum, n, i, {
        float v = rhd_loss_read(x[i], clamp);
        s += fabs((double)v);
        if (dx && rhd_loss_passes(x[i], clamp)) dx[i] += coef * rhd_loss_sign(v);
    });
    return sum / (double)n;
}

double rhd_loss_tv(rhd_ctx *ctx, float *dx, const float *x, int C, int H, int W, float scale, int clamp) {
    RHD_ASSERT(C > 0 && H > 0 && W > 0);
    /* TV = 2*(S_h/nh + S_w/nw); d/dx of 2*d^2/nh is 4*d/nh */
    double nh = (double)C * (H - 1) * W, nw = (double)C * H * (W - 1);
    float kh = nh > 0 ? (float)(4.0 * scale / nh) : 0.f, kw = nw > 0 ? (float)(4.0 * scale / nw) : 0.f;
    double sh, sw;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_loss_tv_cuda(ctx, &sh, &sw, dx, x, C, H, W, kh, kw, clamp);
        return 2.0 * ((nh > 0 ? sh / nh : 0.0) + (nw > 0 ? sw / nw : 0.0));
    }
#endif
    int64_t rows = (int64_t)C * H;
    double *part = rhd_xmalloc(sizeof(double) * 2 * (size_t)rows);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int i = (int)(r % H);
        const float *xp = x + (r - i) * W; /* channel plane */
        const float *row = x + r * W;
        double s_h = 0, s_w = 0;
        for (int j = 0; j < W; j++) {
            float v = rhd_loss_read(row[j], clamp);
            if (i < H - 1) {
                double d = (double)rhd_loss_read(row[j + W], clamp) - v;
                s_h += d * d;
            }
            if (j < W - 1) {
                double d = (double)rhd_loss_read(row[j + 1], clamp) - v;
                s_w += d * d;
            }
            if (dx && rhd_loss_passes(row[j], clamp)) dx[r * W + j] += rhd_tv_grad_at(xp, i, j, H, W, kh, kw, clamp);
        }
        part[2 * r] = s_h, part[2 * r + 1] = s_w;
    }
    sh = sw = 0;
    for (int64_t r = 0; r < rows; r++) sh += part[2 * r], sw += part[2 * r + 1];
    free(part);
    return 2.0 * ((nh > 0 ? sh / nh : 0.0) + (nw > 0 ? sw / nw : 0.0));
}

double rhd_loss_triplane_l1(rhd_ctx *ctx, float *dplanes, const float *planes, int C, int R, float scale, int clamp) {
    int64_t n = (int64_t)C * R * R;
    double loss = 0;
    for (int p = 0; p < 3; p++) loss += rhd_loss_l1(ctx, dplanes ? dplanes + p * n : NULL, planes + p * n, n, scale, clamp);
    return loss;
}

double rhd_loss_triplane_tv(rhd_ctx *ctx, float *dplanes, const float *planes, int C, int R, float scale, int clamp) {
    int64_t n = (int64_t)C * R * R;
    double loss = 0;
    for (int p = 0; p < 3; p++)
        loss += RHD_TV_INNER * rhd_loss_tv(ctx, dplanes ? dplanes + p * n : NULL, planes + p * n, C, R, R,
                                           (float)(scale * RHD_TV_INNER), clamp);
    return loss;
}

double rhd_loss_iwc(rhd_ctx *ctx, float *dtheta, const float *theta, const float *F, const float *opt, int64_t n,
                    double w) {
    RHD_ASSERT(n >= 0);
    if (n == 0) return 0;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) return w * rhd_loss_iwc_cuda(ctx, dtheta, theta, F, opt, n, w);
#endif
    double sum;
    CHUNKED_SUM(sum, n, i, { s += rhd_iwc_at(dtheta, theta, F, opt, i, w); });
    return w * sum;
}
