/* kernels/composite.c: CPU reference of training compositing (contract in composite.h) and the
 * backend dispatch. One ray per iteration; rays are independent. */
#include "kernels/composite.h"
#include "common/err.h"
#include <string.h>

static void check_rays(const int32_t *rays, int64_t n_rays, int64_t M) {
    for (int64_t r = 0; r < n_rays; r++) {
        int64_t off = rays[2 * r], cnt = rays[2 * r + 1];
        RHD_ASSERT(off >= 0 && cnt >= 0 && off + cnt <= M);
    }
}

void rhd_composite_forward(rhd_ctx *ctx, float *pred, float *A, float *depth, int32_t *n_used, const float *sigma,
                           const float *rgb, const float *delta0, const float *delta1, const int32_t *rays,
                           const float *nears, const float *fars, int64_t n_rays, int64_t M,
                           const rhd_composite_cfg *cfg) {
    RHD_ASSERT(n_rays >= 0 && M >= 0);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_composite_forward_cuda(ctx, pred, A, depth, n_used, sigma, rgb, delta0, delta1, rays, nears, fars, n_rays,
                                   *cfg);
        return;
    }
#endif
    check_rays(rays, n_rays, M);
    const float *bg = cfg->bg;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n_rays; r++) {
        rhd_ray_acc a;
        int used = rhd_composite_ray(&a, sigma, rgb, delta0, delta1, rays[2 * r], rays[2 * r + 1], cfg->T_thresh);
        for (int c = 0; c < 3; c++) pred[3 * r + c] = a.rgb[c] + (1.f - a.A) * bg[c];
        if (A) A[r] = a.A;
        if (depth) depth[r] = rhd_composite_depth(a.depth, nears, fars, r);
        if (n_used) n_used[r] = used;
    }
}

void rhd_composite_backward(rhd_ctx *ctx, float *dsigma, float *drgb, const float *dpred, const float *dA,
                            const float *sigma, const float *rgb, const float *delta0, const int32_t *rays,
                            int64_t n_rays, int64_t M, const rhd_composite_cfg *cfg) {
    RHD_ASSERT(n_rays >= 0 && M >= 0);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_composite_backward_cuda(ctx, dsigma, drgb, dpred, dA, sigma, rgb, delta0, rays, n_rays, M, *cfg);
        return;
    }
#endif
    check_rays(rays, n_rays, M);
    if (M > 0) { /* no sample in the box (every ray missed it): the buffers may be NULL */
        memset(dsigma, 0, sizeof(float) * (size_t)M);
        memset(drgb, 0, sizeof(float) * 3 * (size_t)M);
    }
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n_rays; r++)
        rhd_composite_ray_backward(dsigma, drgb, sigma, rgb, delta0, rays[2 * r], rays[2 * r + 1], dpred + 3 * r,
                                   dA ? dA[r] : 0.f, cfg->bg, cfg->T_thresh);
}

void rhd_composite_infer(rhd_ctx *ctx, float *rgb, float *A, float *dacc, uint8_t *stop, const int32_t *alive,
                         const float *t_cur, const float *sigma, const float *c, const float *delta0,
                         const float *delta1, int64_t n_alive, int n_step, float T_thresh) {
    RHD_ASSERT(n_alive >= 0 && n_step >= 1);
    if (n_alive == 0) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_composite_infer_cuda(ctx, rgb, A, dacc, stop, alive, t_cur, sigma, c, delta0, delta1, n_alive, n_step,
                                 T_thresh);
        return;
    }
#endif
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n_alive; i++) {
        int32_t ray = alive[i];
        int64_t s = i * n_step;
        stop[i] = rhd_composite_infer_ray(rgb + 3 * (int64_t)ray, A + ray, dacc ? dacc + ray : NULL, sigma + s, c + 3 * s,
                                          delta0 + s, delta1 + s, t_cur[ray], n_step, T_thresh);
    }
}

void rhd_composite_infer_finish(rhd_ctx *ctx, float *pred, float *depth, const float *rgb, const float *A,
                                const float *dacc, const float *nears, const float *fars, const float bg[3], int64_t N) {
    RHD_ASSERT(N >= 0 && (!depth || (dacc && nears && fars)));
    if (N == 0) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_composite_infer_finish_cuda(ctx, pred, depth, rgb, A, dacc, nears, fars, bg, N);
        return;
    }
#endif
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) rhd_composite_infer_finish_at(pred, depth, rgb, A, dacc, nears, fars, bg, i);
}
