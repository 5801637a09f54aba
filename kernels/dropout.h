/* kernels/dropout.h: inverted dropout driven by the Philox stream, and the per-channel modulation
 * of the ResBlocks (spec diffusion.md §2.4 step 5, §5.2, §10.7).
 *
 * Dropout (torch.nn.functional.dropout, training mode), element-wise over a flat array:
 *   keep[i] = rhd_rng_uniform(seed, stream, offset + i) >= p        (P(keep) = 1 - p, 2^-24 steps)
 *   y[i]    = keep[i] ? x[i] * s : 0,   s = fp32(1 / (1 - p))       (1.1111112f for p = 0.1)
 * The mask is never stored: the backward regenerates it from (seed, stream, offset), so
 *   dx[i]   = keep[i] ? dy[i] * s : 0.
 * Element i depends only on (seed, stream, offset + i): the same mask on any thread count and on
 * both backends. p = 0 is the identity (y = x copied), p must be < 1. y may alias x, dx dy.
 *
 * Modulation (the time embedding entering a ResBlock), x, y (N,C,HW):
 *   y[n,c,i] = x[n,c,i] * (1 + scale[n*ld + c]) + shift[n*ld + c]   scale-shift norm (§2.4)
 *   y[n,c,i] = x[n,c,i] + shift[n*ld + c]                          scale NULL: additive (§5.2)
 * evaluated in that order in fp32 (1 + scale rounded, the product rounded, then the sum), as
 * torch does. ld is the row stride of the [N, ld] embedding projection (2C for scale-shift with
 * scale = proj, shift = proj + C; C for the additive form).
 * Backward: dx = dy * (1 + scale) (=); dscale[n*ld+c] = sum_i dy x (=), dshift[n*ld+c] = sum_i dy
 * (=), sums in double in index order; any of dx, dscale, dshift may be NULL. y may alias x, dx dy. */
#ifndef RHD_KERNELS_DROPOUT_H
#define RHD_KERNELS_DROPOUT_H
#include <stdint.h>
#include "common/backend.h"
#include "common/hd.h"
#include "common/rng.h"

#ifdef __cplusplus
extern "C" {
#endif
/* y (n) = dropout(x (n)) with the mask of elements offset .. offset+n-1 of (seed, stream) */
void rhd_dropout_forward(rhd_ctx *ctx, float *y, const float *x, int64_t n, float p, uint64_t seed, uint64_t stream,
                         uint64_t offset);
/* dx (n) = the same mask and scale applied to dy (n) */
void rhd_dropout_backward(rhd_ctx *ctx, float *dx, const float *dy, int64_t n, float p, uint64_t seed, uint64_t stream,
                          uint64_t offset);

/* y (N,C,HW) = x * (1 + scale) + shift, or x + shift when scale is NULL */
void rhd_modulate_forward(rhd_ctx *ctx, float *y, const float *x, const float *scale, const float *shift, int64_t ld,
                          int N, int C, int64_t HW);
/* dx (N,C,HW) =, dscale, dshift (N rows of stride ld) = */
void rhd_modulate_backward(rhd_ctx *ctx, float *dx, float *dscale, float *dshift, const float *dy, const float *x,
                           const float *scale, int64_t ld, int N, int C, int64_t HW);

#ifdef RHD_CUDA
void rhd_dropout_forward_cuda(rhd_ctx *ctx, float *y, const float *x, int64_t n, float p, uint64_t seed,
                              uint64_t stream, uint64_t offset);
void rhd_modulate_forward_cuda(rhd_ctx *ctx, float *y, const float *x, const float *scale, const float *shift,
                               int64_t ld, int N, int C, int64_t HW);
void rhd_modulate_backward_cuda(rhd_ctx *ctx, float *dx, float *dscale, float *dshift, const float *dy,
                                const float *x, const float *scale, int64_t ld, int N, int C, int64_t HW);
#endif
#ifdef __cplusplus
}
#endif

/* ---- per-element math shared by the CPU loops and the CUDA kernels -------------------------- */

/* fp32(1 / (1 - p)) */
RHD_HD static inline float rhd_dropout_scale(float p) { return (float)(1.0 / (1.0 - (double)p)); }

/* Element i of the dropout of v (input or upstream gradient). */
RHD_HD static inline float rhd_dropout_elem(float v, float p, float s, uint64_t seed, uint64_t stream, uint64_t i) {
    return rhd_rng_uniform(seed, stream, i) >= p ? v * s : 0.0f;
}

/* x (1 + a) + b in separately rounded fp32 steps (no fused multiply-add on the device). */
RHD_HD static inline float rhd_modulate_elem(float x, float a, float b) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(__fmul_rn(x, __fadd_rn(1.0f, a)), b);
#else
    return x * (1.0f + a) + b;
#endif
}
#endif
