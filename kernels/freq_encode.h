/* kernels/freq_encode.h: frequency (positional) encoding, forward and backward (fitting.md §5.1).
 *
 * Mirrors the FreqEncoder of Renderer/freqencoder (used for the colour features 24 -> 120, the
 * density features 8 -> 40 and the view direction 3 -> 15 with degree 2).
 *
 * Shapes: x [N, D] -> y [N, D*(1 + 2*degree)], laid out block-wise along the last axis:
 *   [ x | sin(2^0 x) | cos(2^0 x) | sin(2^1 x) | cos(2^1 x) | ... | cos(2^(degree-1) x) ]
 * Block b covers y[:, b*D:(b+1)*D]: block 0 is the identity, block 1+2f is sin(2^f x) and block
 * 2+2f is cos(2^f x). The frequencies are 2^f with no factor pi; the multiplication by 2^f is exact.
 * The original evaluates cos as a fast sin(z + pi/2); here sinf/cosf of fp32 z are used (both
 * within a few ulp), so results agree with torch.sin/torch.cos to ~1e-7.
 *
 * Contract:
 *   forward:  y is written (=).
 *   backward: dx is written (=): dx = dy_id + sum_f 2^f * (dy_sin_f * cos(2^f x) - dy_cos_f * sin(2^f x)).
 */
#ifndef RHD_KERNELS_FREQ_ENCODE_H
#define RHD_KERNELS_FREQ_ENCODE_H
#include <math.h>
#include <stdint.h>
#include "common/backend.h"
#include "common/hd.h"

/* Output width for D inputs at `degree` frequencies. */
RHD_HD static inline int rhd_freq_encode_dim(int D, int degree) { return D * (1 + 2 * degree); }

/* Forward of one input value x (column d of its row): writes the 1 + 2*degree outputs of column d
 * into the row y (block stride D); the strided form puts output j at y[j * stride] (feature-major
 * tiles of the fused decoder). */
RHD_HD static inline void rhd_freq_encode_value_strided(float *y, int64_t stride, float x, int d, int D, int degree) {
    y[d * stride] = x;
    float scale = 1.f;
    for (int f = 0; f < degree; f++, scale *= 2.f) {
        float z = x * scale;
        y[((1 + 2 * f) * D + d) * stride] = sinf(z);
        y[((2 + 2 * f) * D + d) * stride] = cosf(z);
    }
}
RHD_HD static inline void rhd_freq_encode_value(float *y, float x, int d, int D, int degree) {
    rhd_freq_encode_value_strided(y, 1, x, d, D, degree);
}

/* Backward of one input value: the gradient of x from the row dy (block stride D). */
RHD_HD static inline float rhd_freq_encode_grad(const float *dy, float x, int d, int D, int degree) {
    float g = dy[d];
    float scale = 1.f;
    for (int f = 0; f < degree; f++, scale *= 2.f) {
        float z = x * scale;
        g += scale * (dy[(1 + 2 * f) * D + d] * cosf(z) - dy[(2 + 2 * f) * D + d] * sinf(z));
    }
    return g;
}

#ifdef __cplusplus
extern "C" {
#endif
void rhd_freq_encode_forward(rhd_ctx *ctx, float *y, const float *x, int64_t N, int D, int degree);
void rhd_freq_encode_backward(rhd_ctx *ctx, float *dx, const float *dy, const float *x, int64_t N, int D, int degree);
#ifdef RHD_CUDA
void rhd_freq_encode_forward_cuda(rhd_ctx *ctx, float *y, const float *x, int64_t N, int D, int degree);
void rhd_freq_encode_backward_cuda(rhd_ctx *ctx, float *dx, const float *dy, const float *x, int64_t N, int D,
                                   int degree);
#endif
#ifdef __cplusplus
}
#endif
#endif
