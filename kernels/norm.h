/* kernels/norm.h: group normalisation and layer normalisation, fp32 with saved statistics.
 *
 * Mirrors torch.nn.functional.group_norm (GN(32) with eps 1e-6 in the VAE encoder of
 * script/myvae.py, eps 1e-5 in the UNet of pretrained_diffusion/unet.py and its feature
 * tokenisers) and torch.nn.functional.layer_norm over the last dimension (the image-embedding
 * path of the UNet). Statistics use the biased variance: rstd = 1 / sqrt(var + eps).
 *
 * GroupNorm: x (N,C,HW) with C divisible by G; group g of sample n is channels
 * [g*C/G, (g+1)*C/G), i.e. the contiguous run of (C/G)*HW values starting at (n*G + g)*(C/G)*HW.
 *   forward   y = (x - mean[n,g]) * rstd[n,g] * gamma[c] + beta[c]   (=; mean, rstd (N,G) =)
 * LayerNorm: x (N,D), normalised over D:
 *   forward   y = (x - mean[n]) * rstd[n] * gamma[d] + beta[d]       (=; mean, rstd (N) =)
 * Both backward passes take the saved mean/rstd and write dx (=), accumulate dgamma, dbeta (+=);
 * gamma/beta may be NULL (no affine: gamma 1, beta 0), and so may dx, dgamma, dbeta (not wanted).
 * CPU: double accumulators, fixed summation orders (results independent of the thread count).
 * CUDA: per-thread double partial sums combined in a fixed tree (deterministic as well). */
#ifndef RHD_KERNELS_NORM_H
#define RHD_KERNELS_NORM_H
#include <stdint.h>
#include "common/backend.h"

#ifdef __cplusplus
extern "C" {
#endif
/* y (N,C,HW); mean, rstd (N,G); from x (N,C,HW), gamma, beta (C) */
void rhd_groupnorm_forward(rhd_ctx *ctx, float *y, float *mean, float *rstd, const float *x, const float *gamma,
                           const float *beta, int N, int C, int64_t HW, int G, float eps);
/* dx (N,C,HW) =; dgamma, dbeta (C) +=; from dy, x (N,C,HW), mean, rstd (N,G), gamma (C) */
void rhd_groupnorm_backward(rhd_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                            const float *mean, const float *rstd, const float *gamma, int N, int C, int64_t HW, int G);

/* y (N,D); mean, rstd (N); from x (N,D), gamma, beta (D) */
void rhd_layernorm_forward(rhd_ctx *ctx, float *y, float *mean, float *rstd, const float *x, const float *gamma,
                           const float *beta, int64_t N, int D, float eps);
/* dx (N,D) =; dgamma, dbeta (D) +=; from dy, x (N,D), mean, rstd (N), gamma (D) */
void rhd_layernorm_backward(rhd_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                            const float *mean, const float *rstd, const float *gamma, int64_t N, int D);

#ifdef RHD_CUDA
void rhd_groupnorm_forward_cuda(rhd_ctx *ctx, float *y, float *mean, float *rstd, const float *x, const float *gamma,
                                const float *beta, int N, int C, int64_t HW, int G, float eps);
void rhd_groupnorm_backward_cuda(rhd_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                 const float *mean, const float *rstd, const float *gamma, int N, int C, int64_t HW, int G);
void rhd_layernorm_forward_cuda(rhd_ctx *ctx, float *y, float *mean, float *rstd, const float *x, const float *gamma,
                                const float *beta, int64_t N, int D, float eps);
void rhd_layernorm_backward_cuda(rhd_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                 const float *mean, const float *rstd, const float *gamma, int64_t N, int D);
#endif
#ifdef __cplusplus
}
#endif
#endif
