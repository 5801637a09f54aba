/* kernels/elementwise.h: residual adds, batched 2-D transposes and the small glue moves of the
 * decoder and renderer (strided column copies, scaling, squared accumulation), fp32.
 *
 * The glue between the dense ops of the model assemblies: the residual connections of the VAE
 * encoder's ResnetBlock2D and mid attention (diffusers `out = shortcut + h`, script/myvae.py) and
 * the channels-first <-> tokens-first reshapes around an attention block ([C, H*W] feature maps
 * vs [T, C] token matrices).
 *
 * Contract (every output is written, =):
 *   rhd_add_forward        y[i] = a[i] + b[i], i < n;  y may alias a or b.
 *   rhd_add_backward       da[i] = dy[i], db[i] = dy[i]; either may be NULL (not wanted) and
 *                          either may alias dy.
 *   rhd_transpose_forward  y[b][c][r] = x[b][r][c] for x (B, R, C), y (B, C, R); no aliasing.
 *                          Its adjoint is the transpose with R and C swapped:
 *   rhd_transpose_backward dx (B, R, C) = transpose of dy (B, C, R).
 *   rhd_copy_cols          y[r*ldy + c] = x[r*ldx + c] for r < rows, c < width (a column block of
 *                          one row-major matrix into another: feature splits and concatenations);
 *                          y and x must not overlap.
 *   rhd_scale              y[i] = s * x[i]; y may alias x.
 *   rhd_sqr_acc            y[i] += x[i] * x[i] / d (running means of squared gradients).
 * Exact on every backend (the same float operations per element in the same order), so CPU and
 * CUDA agree bit for bit. */
#ifndef RHD_KERNELS_ELEMENTWISE_H
#define RHD_KERNELS_ELEMENTWISE_H
#include <stdint.h>
#include "common/backend.h"

#ifdef __cplusplus
extern "C" {
#endif
/* y (n) = a (n) + b (n) */
void rhd_add_forward(rhd_ctx *ctx, float *y, const float *a, const float *b, int64_t n);
/* da (n) = dy; db (n) = dy */
void rhd_add_backward(rhd_ctx *ctx, float *da, float *db, const float *dy, int64_t n);
/* y (B,C,R) = x (B,R,C) transposed per batch item */
void rhd_transpose_forward(rhd_ctx *ctx, float *y, const float *x, int B, int64_t R, int64_t C);
/* dx (B,R,C) = dy (B,C,R) transposed per batch item */
void rhd_transpose_backward(rhd_ctx *ctx, float *dx, const float *dy, int B, int64_t R, int64_t C);
/* y[r, 0:width] (row stride ldy) = x[r, 0:width] (row stride ldx), r < rows */
void rhd_copy_cols(rhd_ctx *ctx, float *y, int64_t ldy, const float *x, int64_t ldx, int64_t width, int64_t rows);
/* y (n) = s * x (n) */
void rhd_scale(rhd_ctx *ctx, float *y, const float *x, float s, int64_t n);
/* y (n) += x (n)^2 / d */
void rhd_sqr_acc(rhd_ctx *ctx, float *y, const float *x, float d, int64_t n);

#ifdef RHD_CUDA
void rhd_add_forward_cuda(rhd_ctx *ctx, float *y, const float *a, const float *b, int64_t n);
void rhd_transpose_forward_cuda(rhd_ctx *ctx, float *y, const float *x, int B, int64_t R, int64_t C);
void rhd_copy_cols_cuda(rhd_ctx *ctx, float *y, int64_t ldy, const float *x, int64_t ldx, int64_t width, int64_t rows);
void rhd_scale_cuda(rhd_ctx *ctx, float *y, const float *x, float s, int64_t n);
void rhd_sqr_acc_cuda(rhd_ctx *ctx, float *y, const float *x, float d, int64_t n);
#endif
#ifdef __cplusplus
}
#endif
#endif
