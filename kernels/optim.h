/* kernels/optim.h: optimiser steps over flat fp32 buffers (fitting.md §8, diffusion.md §3.11):
 * Adam and AdamW in PyTorch's form, the EMA of parameters, the global gradient norm and clipping.
 *
 * Mirrors torch.optim.Adam / torch.optim.AdamW (torch 1.13, single-tensor path),
 * guided_diffusion's update_ema and torch.nn.utils.clip_grad_norm_.
 *
 * Buffers are flat (common/params.h: param, grad, m, v share offsets); a parameter group with its
 * own lr/eps is a contiguous range [off, off+n) of them (rhd_params_range below). The alignment
 * padding between tensors is zero in every buffer and stays zero under all the updates here.
 *
 * Adam step t (t >= 1, the count of steps taken including this one), per element:
 *   g = grad (+ weight_decay * p for Adam's L2 form; AdamW instead first does p *= 1 - lr*weight_decay)
 *   m = beta1*m + (1-beta1)*g;   v = beta2*v + (1-beta2)*g^2
 *   p -= (lr/(1-beta1^t)) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)
 * The bias corrections, lr/(1-beta1^t) and sqrt(1-beta2^t) are computed in double from the double
 * hyper-parameters (as Python does) and rounded to fp32 once; the elementwise math is fp32.
 *
 * Contract: param, m, v updated in place; grad read only (Adam's L2 term is not written back).
 *   rhd_ema_update:  ema = rate*ema + (1-rate)*param                           (in place)
 *   rhd_grad_norm:   sqrt(sum grad^2), accumulated in double in a fixed order (deterministic for
 *                    any thread count, and on CUDA)
 *   rhd_clip_grad_norm: norm as above; if max_norm/(norm + 1e-6) < 1, grad *= that factor
 *                    (torch's clip_coef); returns the norm before clipping. On CUDA both use the
 *                    context workspace for the partial sums and synchronise to return the norm.
 */
#ifndef RHD_KERNELS_OPTIM_H
#define RHD_KERNELS_OPTIM_H
#include <math.h>
#include <stdint.h>
#include "common/backend.h"
#include "common/hd.h"
#include "common/params.h"

typedef struct rhd_adam_cfg {
    double lr, beta1, beta2, eps, weight_decay;
    int decoupled; /* 0: Adam (L2 weight decay added to the gradient), 1: AdamW (decoupled) */
} rhd_adam_cfg;

/* torch.optim.Adam defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay. */
static inline rhd_adam_cfg rhd_adam_cfg_default(void) {
    rhd_adam_cfg c = {1e-3, 0.9, 0.999, 1e-8, 0.0, 0};
    return c;
}

/* The per-step scalars, rounded to fp32 as the elementwise kernels use them. */
typedef struct rhd_adam_scalars {
    float beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay;
    float step_size;  /* lr / (1 - beta1^t) */
    float bc2_sqrt;   /* sqrt(1 - beta2^t) */
    float decay;      /* AdamW: 1 - lr*weight_decay; Adam: 1 */
    int l2;           /* Adam with weight_decay != 0 */
} rhd_adam_scalars;

RHD_HD static inline void rhd_adam_update(float *p, float *m, float *v, float g, const rhd_adam_scalars *s) {
    float pv = *p;
    if (s->l2) g = g + s->weight_decay * pv;
    pv = pv * s->decay;
    float mv = *m * s->beta1 + s->one_minus_beta1 * g;
    float vv = *v * s->beta2 + s->one_minus_beta2 * (g * g);
    float denom = sqrtf(vv) / s->bc2_sqrt + s->eps;
    *p = pv - s->step_size * (mv / denom);
    *m = mv, *v = vv;
}

/* A group of consecutive tensors first..last of a parameter table as a flat range. */
static inline void rhd_params_range(const rhd_params *P, int first, int last, int64_t *off, int64_t *n) {
    *off = P->info[first].offset;
    *n = P->info[last].offset + P->info[last].numel - *off;
}

#ifdef __cplusplus
extern "C" {
#endif
rhd_adam_scalars rhd_adam_scalars_for(const rhd_adam_cfg *cfg, int64_t step);
void rhd_adam_step(rhd_ctx *ctx, float *param, float *m, float *v, const float *grad, int64_t n,
                   const rhd_adam_cfg *cfg, int64_t step);
void rhd_ema_update(rhd_ctx *ctx, float *ema, const float *param, int64_t n, double rate);
double rhd_grad_norm(rhd_ctx *ctx, const float *grad, int64_t n);
double rhd_clip_grad_norm(rhd_ctx *ctx, float *grad, int64_t n, double max_norm);
#ifdef RHD_CUDA
void rhd_adam_step_cuda(rhd_ctx *ctx, float *param, float *m, float *v, const float *grad, int64_t n,
                        rhd_adam_scalars s);
void rhd_ema_update_cuda(rhd_ctx *ctx, float *ema, const float *param, int64_t n, float rate, float one_minus_rate);
double rhd_sum_squares_cuda(rhd_ctx *ctx, const float *x, int64_t n);
#endif
#ifdef __cplusplus
}
#endif
#endif
