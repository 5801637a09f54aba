/* kernels/diffusion.c: CPU reference of the diffusion element math (contract in diffusion.h) and
 * the backend dispatch. Loss sums are taken in double over fixed chunks added in chunk order, so
 * they do not depend on the thread count. */
#include "kernels/diffusion.h"
#include "common/err.h"
#include "common/rng.h"
#include <stdlib.h>

#define DIFF_CHUNK 8192

void rhd_diff_q_sample(rhd_ctx *ctx, float *xt, const float *x0, const float *eps, int64_t n, float ca, float cb) {
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_diff_q_sample_cuda(ctx, xt, x0, eps, n, ca, cb); return; }
#endif
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) xt[i] = rhd_q_sample_at(ca, cb, x0[i], eps[i]);
}

void rhd_diff_cfg(rhd_ctx *ctx, float *g, const float *c, const float *u, int64_t n, float s) {
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_diff_cfg_cuda(ctx, g, c, u, n, s); return; }
#endif
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) g[i] = rhd_cfg_at(c[i], u[i], s);
}

void rhd_diff_ddim_step(rhd_ctx *ctx, float *xp, float *x0, const float *x, const float *out, const float *z,
                        int64_t n, const rhd_ddim_coef *k) {
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_diff_ddim_step_cuda(ctx, xp, x0, x, out, z, n, k); return; }
#endif
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float p;
        float r = rhd_ddim_at(k, x[i], out[i], z[i], &p);
        if (x0) x0[i] = p;
        xp[i] = r;
    }
}

void rhd_diff_ddpm_step(rhd_ctx *ctx, float *xp, float *x0, const float *x, const float *out, const float *v,
                        const float *z, int64_t n, const rhd_ddpm_coef *k) {
    RHD_ASSERT(k->var != RHD_VAR_LEARNED_RANGE || v);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_diff_ddpm_step_cuda(ctx, xp, x0, x, out, v, z, n, k); return; }
#endif
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float p;
        float r = rhd_ddpm_at(k, x[i], out[i], v ? v[i] : 0.f, z[i], &p);
        if (x0) x0[i] = p;
        xp[i] = r;
    }
}

void rhd_diff_loss(rhd_ctx *ctx, double *mse, double *vb, float *dpred, float *dv, const float *x0, const float *xt,
                   const float *eps, const float *pred, const float *v, int64_t n, const rhd_loss_coef *k) {
    RHD_ASSERT(n > 0 && (!k->learned || v));
    double se = 0, sv = 0;
    if (dv && !k->learned) rhd_buf_zero(ctx, dv, sizeof(float) * (size_t)n);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_diff_loss_cuda(ctx, &se, &sv, dpred, dv, x0, xt, eps, pred, v, n, k);
        *mse = se / (double)n;
        *vb = sv / (double)n;
        return;
    }
#endif
    int64_t nc = (n + DIFF_CHUNK - 1) / DIFF_CHUNK;
    double *part = rhd_xmalloc(sizeof(double) * 2 * (size_t)nc);
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nc; c++) {
        int64_t i1 = (c + 1) * DIFF_CHUNK < n ? (c + 1) * DIFF_CHUNK : n;
        double s1 = 0, s2 = 0;
        for (int64_t i = c * DIFF_CHUNK; i < i1; i++) {
            float gp = 0, gv = 0;
            rhd_loss_at(k, x0[i], xt[i], eps[i], pred[i], v ? v[i] : 0.f, &s1, &s2, &gp, &gv);
            if (dpred) dpred[i] = gp;
            if (dv && k->learned) dv[i] = gv;
        }
        part[2 * c] = s1, part[2 * c + 1] = s2;
    }
    for (int64_t c = 0; c < nc; c++) se += part[2 * c], sv += part[2 * c + 1];
    free(part);
    *mse = se / (double)n;
    *vb = sv / (double)n;
}

void rhd_diff_randn(rhd_ctx *ctx, float *out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_diff_randn_cuda(ctx, out, n, seed, stream, offset); return; }
#endif
    rhd_rng_fill_normal(out, n, seed, stream, offset, 0.f, 1.f);
}
