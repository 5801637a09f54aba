/* kernels/optim.c: CPU reference of the optimiser steps (contract in optim.h) and the backend
 * dispatch. */
#include "kernels/optim.h"
#include "kernels/elementwise.h"
#include "common/err.h"
#include <stdlib.h>

#define NORM_CHUNK 8192

rhd_adam_scalars rhd_adam_scalars_for(const rhd_adam_cfg *cfg, int64_t step) {
    RHD_ASSERT(step >= 1);
    rhd_adam_scalars s;
    double bc1 = 1.0 - pow(cfg->beta1, (double)step), bc2 = 1.0 - pow(cfg->beta2, (double)step);
    s.beta1 = (float)cfg->beta1, s.one_minus_beta1 = (float)(1.0 - cfg->beta1);
    s.beta2 = (float)cfg->beta2, s.one_minus_beta2 = (float)(1.0 - cfg->beta2);
    s.eps = (float)cfg->eps;
    s.weight_decay = (float)cfg->weight_decay;
    s.step_size = (float)(cfg->lr / bc1);
    s.bc2_sqrt = (float)sqrt(bc2);
    s.decay = cfg->decoupled ? (float)(1.0 - cfg->lr * cfg->weight_decay) : 1.f;
    s.l2 = !cfg->decoupled && cfg->weight_decay != 0.0;
    return s;
}

void rhd_adam_step(rhd_ctx *ctx, float *param, float *m, float *v, const float *grad, int64_t n,
                   const rhd_adam_cfg *cfg, int64_t step) {
    RHD_ASSERT(n >= 0);
    rhd_adam_scalars s = rhd_adam_scalars_for(cfg, step);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_adam_step_cuda(ctx, param, m, v, grad, n, s);
        return;
    }
#endif
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) rhd_adam_update(param + i, m + i, v + i, grad[i], &s);
}

void rhd_ema_update(rhd_ctx *ctx, float *ema, const float *param, int64_t n, double rate) {
    RHD_ASSERT(n >= 0);
    float r = (float)rate, omr = (float)(1.0 - rate);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_ema_update_cuda(ctx, ema, param, n, r, omr);
        return;
    }
#endif
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) ema[i] = ema[i] * r + omr * param[i];
}

double rhd_grad_norm(rhd_ctx *ctx, const float *grad, int64_t n) {
    RHD_ASSERT(n >= 0);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) return sqrt(rhd_sum_squares_cuda(ctx, grad, n));
#endif
    int64_t nc = (n + NORM_CHUNK - 1) / NORM_CHUNK;
    double *part = rhd_xmalloc(sizeof(double) * (size_t)(nc ? nc : 1));
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < nc; k++) {
        int64_t i1 = (k + 1) * NORM_CHUNK < n ? (k + 1) * NORM_CHUNK : n;
        double s = 0;
        for (int64_t i = k * NORM_CHUNK; i < i1; i++) s += (double)grad[i] * grad[i];
        part[k] = s;
    }
    double s = 0;
    for (int64_t k = 0; k < nc; k++) s += part[k];
    free(part);
    return sqrt(s);
}

double rhd_clip_grad_norm(rhd_ctx *ctx, float *grad, int64_t n, double max_norm) {
    double norm = rhd_grad_norm(ctx, grad, n);
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        rhd_scale(ctx, grad, grad, (float)coef, (int64_t)n);
    }
    return norm;
}
