/* kernels/elementwise.h: residual adds and batched 2-D transposes, fp32.
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
 * Exact on every backend (no arithmetic but one rounding per add), so CPU and CUDA agree bit for
 * bit. */
#ifndef RHD_KERNELS_ELEMENTWISE_H
#define RHD_KERNELS_ELEMENTWISE_H
#include "common/backend.h"

#ifdef __cplusplus
extern "C" {
#endif
/* y (n) = a (n) + b (n) */
void rhd_add_forward(rhd_ctx *ctx, float *y, const float *a, const float *b, long n);
/* da (n) = dy; db (n) = dy */
void rhd_add_backward(rhd_ctx *ctx, float *da, float *db, const float *dy, long n);
/* y (B,C,R) = x (B,R,C) transposed per batch item */
void rhd_transpose_forward(rhd_ctx *ctx, float *y, const float *x, int B, long R, long C);
/* dx (B,R,C) = dy (B,C,R) transposed per batch item */
void rhd_transpose_backward(rhd_ctx *ctx, float *dx, const float *dy, int B, long R, long C);

#ifdef RHD_CUDA
void rhd_add_forward_cuda(rhd_ctx *ctx, float *y, const float *a, const float *b, long n);
void rhd_transpose_forward_cuda(rhd_ctx *ctx, float *y, const float *x, int B, long R, long C);
#endif
#ifdef __cplusplus
}
#endif
#endif
