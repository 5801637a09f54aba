/* kernels/resample.c: CPU reference of the resampling ops (contract in resample.h) and the
 * backend dispatch. Every loop writes each output element from exactly one thread in a fixed
 * order, so results do not depend on the thread count. */
#include "kernels/resample.h"
#include <stdlib.h>
#include <string.h>

/* ---- nearest x2 and 2x2 average pooling ------------------------------------------------------- */

static void nearest2x_forward_cpu(float *y, const float *x, int64_t planes, int H, int W) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < planes * H; r++) { /* input row r of plane r / H */
        const float *xr = x + r * W;
        float *y0 = y + r * 4 * W, *y1 = y0 + 2 * W; /* output rows 2i and 2i+1 of that plane */
        for (int j = 0; j < W; j++) y0[2 * j] = y0[2 * j + 1] = xr[j];
        memcpy(y1, y0, sizeof(float) * 2 * W);
    }
}

static void nearest2x_backward_cpu(float *dx, const float *dy, int64_t planes, int H, int W) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < planes * H; r++) {
        const float *d0 = dy + r * 4 * W, *d1 = d0 + 2 * W;
        float *g = dx + r * W;
        for (int j = 0; j < W; j++) g[j] = (d0[2 * j] + d0[2 * j + 1]) + (d1[2 * j] + d1[2 * j + 1]);
    }
}

static void avgpool_forward_cpu(float *y, const float *x, int64_t planes, int H, int W) {
    int Ho = H / 2, Wo = W / 2;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < planes * Ho; r++) { /* output row i = r % Ho of plane p = r / Ho */
        int64_t p = r / Ho, i = r % Ho;
        const float *x0 = x + (p * H + 2 * i) * W, *x1 = x0 + W;
        float *yr = y + r * Wo;
        for (int j = 0; j < Wo; j++) yr[j] = ((x0[2 * j] + x0[2 * j + 1]) + (x1[2 * j] + x1[2 * j + 1])) * 0.25f;
    }
}

static void avgpool_backward_cpu(float *dx, const float *dy, int64_t planes, int H, int W) {
    int Ho = H / 2, Wo = W / 2;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < planes * H; r++) { /* input row i = r % H of plane p = r / H */
        int64_t p = r / H, i = r % H;
        float *g = dx + r * W;
        if (i >= 2 * Ho) { /* odd H: the last row is not pooled */
            memset(g, 0, sizeof(float) * W);
            continue;
        }
        const float *d = dy + (p * Ho + i / 2) * Wo;
        for (int j = 0; j < Wo; j++) g[2 * j] = g[2 * j + 1] = d[j] * 0.25f;
        if (W % 2) g[W - 1] = 0.0f;
    }
}

/* ---- bilinear / bicubic resize ---------------------------------------------------------------- */

typedef struct {
    int ntaps;
    int *idx;  /* [out][ntaps] */
    float *w;  /* [out][ntaps] */
} axis_taps;

static axis_taps axis_taps_make(rhd_resize_mode mode, int align_corners, int in, int out) {
    axis_taps a;
    a.ntaps = mode == RHD_RESIZE_BICUBIC ? 4 : 2;
    a.idx = rhd_xmalloc(sizeof(int) * 4 * out);
    a.w = rhd_xmalloc(sizeof(float) * 4 * out);
    float scale = rhd_resize_scale(in, out, align_corners);
    for (int o = 0; o < out; o++) {
        int idx[4];
        float w[4];
        int n = rhd_resize_taps(mode, align_corners, o, in, scale, idx, w);
        for (int t = 0; t < n; t++) a.idx[o * a.ntaps + t] = idx[t], a.w[o * a.ntaps + t] = w[t];
    }
    return a;
}

static void axis_taps_free(axis_taps *a) {
    free(a->idx);
    free(a->w);
}

static void resize_forward_cpu(float *y, const float *x, int64_t planes, int Hi, int Wi, int Ho, int Wo,
                               rhd_resize_mode mode, int align_corners) {
    axis_taps ax = axis_taps_make(mode, align_corners, Wi, Wo), ay = axis_taps_make(mode, align_corners, Hi, Ho);
    int nt = ax.ntaps;
#pragma omp parallel
    {
        float *tmp = rhd_xmalloc(sizeof(float) * (size_t)Hi * Wo); /* the plane resized along W only */
#pragma omp for schedule(static)
        for (int64_t p = 0; p < planes; p++) {
            const float *xp = x + p * Hi * Wi;
            float *yp = y + p * Ho * Wo;
            for (int i = 0; i < Hi; i++) {
                const float *xr = xp + (int64_t)i * Wi;
                float *tr = tmp + (int64_t)i * Wo;
                for (int o = 0; o < Wo; o++) {
                    const int *id = ax.idx + o * nt;
                    const float *w = ax.w + o * nt;
                    float s = w[0] * xr[id[0]];
                    for (int t = 1; t < nt; t++) s += w[t] * xr[id[t]];
                    tr[o] = s;
                }
            }
            for (int o = 0; o < Ho; o++) {
                float *yr = yp + (int64_t)o * Wo;
                const int *id = ay.idx + o * nt;
                const float *w = ay.w + o * nt;
                const float *t0 = tmp + (int64_t)id[0] * Wo;
                for (int j = 0; j < Wo; j++) yr[j] = w[0] * t0[j];
                for (int t = 1; t < nt; t++) {
                    const float *tt = tmp + (int64_t)id[t] * Wo;
                    float wt = w[t];
                    for (int j = 0; j < Wo; j++) yr[j] += wt * tt[j];
                }
            }
        }
        free(tmp);
    }
    axis_taps_free(&ax);
    axis_taps_free(&ay);
}

/* The transpose of resize_forward_cpu: vertical scatter into a [Hi, Wo] buffer, then horizontal
 * scatter into dx, each plane owned by one thread. */
static void resize_backward_cpu(float *dx, const float *dy, int64_t planes, int Hi, int Wi, int Ho, int Wo,
                                rhd_resize_mode mode, int align_corners) {
    axis_taps ax = axis_taps_make(mode, align_corners, Wi, Wo), ay = axis_taps_make(mode, align_corners, Hi, Ho);
    int nt = ax.ntaps;
#pragma omp parallel
    {
        float *tmp = rhd_xmalloc(sizeof(float) * (size_t)Hi * Wo);
#pragma omp for schedule(static)
        for (int64_t p = 0; p < planes; p++) {
            const float *dyp = dy + p * Ho * Wo;
            float *dxp = dx + p * Hi * Wi;
            memset(tmp, 0, sizeof(float) * (size_t)Hi * Wo);
            for (int o = 0; o < Ho; o++) {
                const float *gr = dyp + (int64_t)o * Wo;
                for (int t = 0; t < nt; t++) {
                    float *tr = tmp + (int64_t)ay.idx[o * nt + t] * Wo;
                    float wt = ay.w[o * nt + t];
                    for (int j = 0; j < Wo; j++) tr[j] += wt * gr[j];
                }
            }
            for (int i = 0; i < Hi; i++) {
                const float *tr = tmp + (int64_t)i * Wo;
                float *gr = dxp + (int64_t)i * Wi;
                memset(gr, 0, sizeof(float) * Wi);
                for (int o = 0; o < Wo; o++) {
                    const int *id = ax.idx + o * nt;
                    const float *w = ax.w + o * nt;
                    for (int t = 0; t < nt; t++) gr[id[t]] += w[t] * tr[o];
                }
            }
        }
        free(tmp);
    }
    axis_taps_free(&ax);
    axis_taps_free(&ay);
}

/* ---- pixel shuffle ---------------------------------------------------------------------------- */

/* dir 0: y [N,C,Hr,Wr] <- x [N,Cr^2,H,W]; dir 1: x <- y. */
static void pixel_shuffle_cpu(float *y, float *x, int64_t NC, int H, int W, int r, int dir) {
    int64_t Wr = (int64_t)W * r;
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < NC * H * r; row++) { /* output row hr = row % (H r) of plane row / (H r) */
        int64_t p = row / ((int64_t)H * r), hr = row % ((int64_t)H * r);
        int64_t h = hr / r, i = hr % r;
        float *yr = y + (p * H * r + hr) * Wr;
        for (int j = 0; j < r; j++) {
            float *xr = x + ((p * r * r + i * r + j) * H + h) * W;
            if (dir == 0)
                for (int w = 0; w < W; w++) yr[(int64_t)w * r + j] = xr[w];
            else
                for (int w = 0; w < W; w++) xr[w] = yr[(int64_t)w * r + j];
        }
    }
}

/* ---- public ----------------------------------------------------------------------------------- */

void rhd_upsample_nearest2x_forward(rhd_ctx *ctx, float *y, const float *x, int N, int C, int H, int W) {
    RHD_ASSERT(N >= 0 && C >= 0 && H >= 1 && W >= 1);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_upsample_nearest2x_forward_cuda(ctx, y, x, N, C, H, W);
        return;
    }
#endif
    nearest2x_forward_cpu(y, x, (int64_t)N * C, H, W);
}

void rhd_upsample_nearest2x_backward(rhd_ctx *ctx, float *dx, const float *dy, int N, int C, int H, int W) {
    RHD_ASSERT(N >= 0 && C >= 0 && H >= 1 && W >= 1);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_upsample_nearest2x_backward_cuda(ctx, dx, dy, N, C, H, W);
        return;
    }
#endif
    nearest2x_backward_cpu(dx, dy, (int64_t)N * C, H, W);
}

void rhd_avgpool2x2_forward(rhd_ctx *ctx, float *y, const float *x, int N, int C, int H, int W) {
    RHD_ASSERT(N >= 0 && C >= 0 && H >= 2 && W >= 2);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_avgpool2x2_forward_cuda(ctx, y, x, N, C, H, W);
        return;
    }
#endif
    avgpool_forward_cpu(y, x, (int64_t)N * C, H, W);
}

void rhd_avgpool2x2_backward(rhd_ctx *ctx, float *dx, const float *dy, int N, int C, int H, int W) {
    RHD_ASSERT(N >= 0 && C >= 0 && H >= 2 && W >= 2);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_avgpool2x2_backward_cuda(ctx, dx, dy, N, C, H, W);
        return;
    }
#endif
    avgpool_backward_cpu(dx, dy, (int64_t)N * C, H, W);
}

void rhd_resize_forward(rhd_ctx *ctx, float *y, const float *x, int N, int C, int Hi, int Wi, int Ho, int Wo,
                        rhd_resize_mode mode, int align_corners) {
    RHD_ASSERT(N >= 0 && C >= 0 && Hi >= 1 && Wi >= 1 && Ho >= 1 && Wo >= 1);
    RHD_ASSERT(mode == RHD_RESIZE_BILINEAR || mode == RHD_RESIZE_BICUBIC);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_resize_forward_cuda(ctx, y, x, N, C, Hi, Wi, Ho, Wo, mode, align_corners);
        return;
    }
#endif
    resize_forward_cpu(y, x, (int64_t)N * C, Hi, Wi, Ho, Wo, mode, align_corners);
}

void rhd_resize_backward(rhd_ctx *ctx, float *dx, const float *dy, int N, int C, int Hi, int Wi, int Ho, int Wo,
                         rhd_resize_mode mode, int align_corners) {
    RHD_ASSERT(N >= 0 && C >= 0 && Hi >= 1 && Wi >= 1 && Ho >= 1 && Wo >= 1);
    RHD_ASSERT(mode == RHD_RESIZE_BILINEAR || mode == RHD_RESIZE_BICUBIC);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_resize_backward_cuda(ctx, dx, dy, N, C, Hi, Wi, Ho, Wo, mode, align_corners);
        return;
    }
#endif
    resize_backward_cpu(dx, dy, (int64_t)N * C, Hi, Wi, Ho, Wo, mode, align_corners);
}

void rhd_pixel_shuffle_forward(rhd_ctx *ctx, float *y, const float *x, int N, int C, int H, int W, int r) {
    RHD_ASSERT(N >= 0 && C >= 0 && H >= 1 && W >= 1 && r >= 1);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_pixel_shuffle_forward_cuda(ctx, y, x, N, C, H, W, r);
        return;
    }
#endif
    pixel_shuffle_cpu(y, (float *)x, (int64_t)N * C, H, W, r, 0);
}

void rhd_pixel_shuffle_backward(rhd_ctx *ctx, float *dx, const float *dy, int N, int C, int H, int W, int r) {
    RHD_ASSERT(N >= 0 && C >= 0 && H >= 1 && W >= 1 && r >= 1);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_pixel_shuffle_backward_cuda(ctx, dx, dy, N, C, H, W, r);
        return;
    }
#endif
    pixel_shuffle_cpu((float *)dy, dx, (int64_t)N * C, H, W, r, 1);
}
