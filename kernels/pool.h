/* kernels/pool.h: 2-D max pooling, NCHW, fp32, forward and backward.
 *
 * Mirrors torch.nn.MaxPool2d(kernel_size=k, stride=s, padding=p) with dilation 1 and
 * ceil_mode False, and F.max_pool2d_with_indices for the argmax. Used by the LPIPS backbones
 * (common/lpips.h): AlexNet's k3 s2 and VGG16's k2 s2.
 *
 * Shapes (PyTorch order): x (N,C,H,W); y and idx (N,C,OH,OW) with
 *   OH = (H + 2p - k) / s + 1,  OW = (W + 2p - k) / s + 1   (floor division),
 * k >= 1, s >= 1, 0 <= p <= k/2 (PyTorch's rule, so every window holds at least one element of
 * x) and OH, OW >= 1 (rhd_maxpool2d_check says so in words).
 * Padding is -infinity: it is never chosen.
 * Contract:
 *   forward   y[n,c,i,j] = max of x over the window (=); idx[n,c,i,j] = h*W + w, the position of
 *             that maximum in its own (n,c) plane (=, torch's indices); idx may be NULL.
 *             The window is scanned row by row, left to right; a value replaces the running
 *             maximum when it is greater or NaN (torch's rule): on ties the FIRST maximum wins,
 *             and a NaN propagates.
 *   backward  dx[n,c, idx[n,c,i,j]] += dy[n,c,i,j]   (+=: dx is not cleared; zero it first for a
 *             plain gradient). idx is the forward's.
 * CPU: (n,c) planes in parallel, each plane's outputs in row-major order: deterministic.
 * CUDA: one thread per output in forward; the backward GATHERS: one thread per element of x adds,
 * in the same row-major order of the outputs whose window covers it, the dy whose idx points at
 * it, so CPU and CUDA give the same bits and no atomics are needed. */
#ifndef RHD_KERNELS_POOL_H
#define RHD_KERNELS_POOL_H
#include <stdint.h>
#include "common/backend.h"
#include "common/hd.h"

#ifdef __cplusplus
extern "C" {
#endif
/* Output size along one axis: (in + 2p - k) / s + 1 (may be < 1 for too small an input). */
int rhd_maxpool2d_out(int in, int k, int s, int p);
/* 0 if the pooling is usable on an H x W input, else -1 with a message naming what is wrong. */
int rhd_maxpool2d_check(int H, int W, int k, int s, int p, rhd_err *e);

/* y (N,C,OH,OW) =, idx (N,C,OH,OW) = (or NULL)  from x (N,C,H,W) */
void rhd_maxpool2d_forward(rhd_ctx *ctx, float *y, int32_t *idx, const float *x, int N, int C, int H, int W, int k,
                           int s, int p);
/* dx (N,C,H,W) += scattered dy (N,C,OH,OW) through idx (N,C,OH,OW) */
void rhd_maxpool2d_backward(rhd_ctx *ctx, float *dx, const float *dy, const int32_t *idx, int N, int C, int H, int W,
                            int k, int s, int p);

#ifdef RHD_CUDA
void rhd_maxpool2d_forward_cuda(rhd_ctx *ctx, float *y, int32_t *idx, const float *x, int N, int C, int H, int W,
                                int k, int s, int p);
void rhd_maxpool2d_backward_cuda(rhd_ctx *ctx, float *dx, const float *dy, const int32_t *idx, int N, int C, int H,
                                 int W, int k, int s, int p);
#endif
#ifdef __cplusplus
}
#endif

/* ---- per-window helpers shared by the CPU loops and the CUDA kernels ------------------------- */

/* Max of the window of output (i, j) over one plane xp (H x W); *at = its h*W + w. */
RHD_HD static inline float rhd_maxpool_window(const float *xp, int H, int W, int k, int s, int p, int i, int j,
                                              int32_t *at) {
    int h0 = i * s - p, w0 = j * s - p;
    int h1 = h0 + k < H ? h0 + k : H, w1 = w0 + k < W ? w0 + k : W;
    h0 = h0 > 0 ? h0 : 0;
    w0 = w0 > 0 ? w0 : 0;
    float m = xp[h0 * W + w0]; /* p <= k/2: the window holds at least this element */
    int32_t a = h0 * W + w0;
    for (int h = h0; h < h1; h++)
        for (int w = w0; w < w1; w++) {
            float v = xp[h * W + w];
            if (v > m || v != v) m = v, a = h * W + w;
        }
    *at = a;
    return m;
}

/* The range [*lo, *hi] of output rows (or columns) whose window covers input row (column) h;
 * empty when *lo > *hi. */
RHD_HD static inline void rhd_maxpool_cover(int h, int out, int k, int s, int p, int *lo, int *hi) {
    int a = h + p - (k - 1); /* smallest i*s with i*s + k - 1 >= h + p */
    *lo = a <= 0 ? 0 : (a + s - 1) / s;
    int b = (h + p) / s;
    *hi = b < out - 1 ? b : out - 1;
}
#endif
