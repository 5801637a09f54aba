/* kernels/resample.h: resampling ops on NCHW maps, forward and backward.
 * Mirrors the resamplers of pretrained_diffusion/unet.py (2x2 average pooling and nearest x2 in
 * the up/down ResBlocks, spec diffusion.md §2.1, §2.4), upsample_model.py (bilinear x2 with
 * align_corners = True on the whole rolled-out map, §5.2, §7.12; bicubic resize of the low-res
 * planes, §5.3), the fitter's test-mode bicubic upsampling (fitting.md §10.2) and PixelShuffle.
 * All are linear maps; every backward writes its dx (=), never accumulates.
 *
 *   nearest2x   y [N,C,2H,2W],   y[n,c,i,j] = x[n,c,i/2,j/2]                 (F.interpolate nearest, x2)
 *   avgpool2x2  y [N,C,H/2,W/2], mean of each 2x2 block; odd H or W: the last row/column is
 *               dropped (F.avg_pool2d(x, 2)), and gets a zero gradient
 *   resize      y [N,C,Ho,Wo] from x [N,C,Hi,Wi], any sizes >= 1, separable, per axis
 *               (PyTorch's F.interpolate conventions, float32 coordinates):
 *                 align_corners 1: src = o (in-1)/(out-1)   (0 when out = 1)
 *                 align_corners 0: src = (o + 0.5) in/out - 0.5
 *               bilinear: src clamped at 0 (align_corners 0), taps floor(src) and the next one
 *                 (the last index repeats at the border), weights 1-l, l.
 *               bicubic (Keys, a = -0.75): taps floor(src)-1 .. floor(src)+2 with indices clamped
 *                 to [0, in-1] (border replicate), no antialias, no output clamp.
 *   pixel_shuffle y [N,C,H r,W r] from x [N,C r^2,H,W]: y[n,c,h r+i,w r+j] = x[n,c r^2+i r+j,h,w]
 *
 * CPU: planes (n, c) in parallel; the resize runs horizontally then vertically through a
 * per-thread buffer, and its backward is the transpose in the reverse order, each plane owned by
 * one thread: deterministic, no atomics. CUDA: one thread per output element in forward; the
 * resize backward scatters with atomicAdd (order-dependent rounding), the other backwards gather. */
#ifndef RHD_KERNELS_RESAMPLE_H
#define RHD_KERNELS_RESAMPLE_H
#include <math.h>
#include "common/backend.h"
#include "common/hd.h"

typedef enum { RHD_RESIZE_BILINEAR = 1, RHD_RESIZE_BICUBIC = 2 } rhd_resize_mode;

#ifdef __cplusplus
extern "C" {
#endif
/* y [N,C,2H,2W] <- x [N,C,H,W];  dx [N,C,H,W] <- dy [N,C,2H,2W]. */
void rhd_upsample_nearest2x_forward(rhd_ctx *ctx, float *y, const float *x, int N, int C, int H, int W);
void rhd_upsample_nearest2x_backward(rhd_ctx *ctx, float *dx, const float *dy, int N, int C, int H, int W);
/* y [N,C,H/2,W/2] <- x [N,C,H,W];  dx [N,C,H,W] <- dy. H, W are the INPUT sizes. */
void rhd_avgpool2x2_forward(rhd_ctx *ctx, float *y, const float *x, int N, int C, int H, int W);
void rhd_avgpool2x2_backward(rhd_ctx *ctx, float *dx, const float *dy, int N, int C, int H, int W);
/* y [N,C,Ho,Wo] <- x [N,C,Hi,Wi];  dx [N,C,Hi,Wi] <- dy [N,C,Ho,Wo]. */
void rhd_resize_forward(rhd_ctx *ctx, float *y, const float *x, int N, int C, int Hi, int Wi, int Ho, int Wo,
                        rhd_resize_mode mode, int align_corners);
void rhd_resize_backward(rhd_ctx *ctx, float *dx, const float *dy, int N, int C, int Hi, int Wi, int Ho, int Wo,
                         rhd_resize_mode mode, int align_corners);
/* y [N,C,H r,W r] <- x [N,C r^2,H,W] (C = output channels);  dx <- dy. */
void rhd_pixel_shuffle_forward(rhd_ctx *ctx, float *y, const float *x, int N, int C, int H, int W, int r);
void rhd_pixel_shuffle_backward(rhd_ctx *ctx, float *dx, const float *dy, int N, int C, int H, int W, int r);

#ifdef RHD_CUDA
void rhd_upsample_nearest2x_forward_cuda(rhd_ctx *ctx, float *y, const float *x, int N, int C, int H, int W);
void rhd_upsample_nearest2x_backward_cuda(rhd_ctx *ctx, float *dx, const float *dy, int N, int C, int H, int W);
void rhd_avgpool2x2_forward_cuda(rhd_ctx *ctx, float *y, const float *x, int N, int C, int H, int W);
void rhd_avgpool2x2_backward_cuda(rhd_ctx *ctx, float *dx, const float *dy, int N, int C, int H, int W);
void rhd_resize_forward_cuda(rhd_ctx *ctx, float *y, const float *x, int N, int C, int Hi, int Wi, int Ho, int Wo,
                             rhd_resize_mode mode, int align_corners);
void rhd_resize_backward_cuda(rhd_ctx *ctx, float *dx, const float *dy, int N, int C, int Hi, int Wi, int Ho, int Wo,
                              rhd_resize_mode mode, int align_corners);
void rhd_pixel_shuffle_forward_cuda(rhd_ctx *ctx, float *y, const float *x, int N, int C, int H, int W, int r);
void rhd_pixel_shuffle_backward_cuda(rhd_ctx *ctx, float *dx, const float *dy, int N, int C, int H, int W, int r);
#endif
#ifdef __cplusplus
}
#endif

/* ---- per-axis taps, shared by the CPU loops and the CUDA kernels ---------------------------- */

/* Source step per output index along one axis (PyTorch's area_pixel_compute_scale). */
RHD_HD static inline float rhd_resize_scale(int in, int out, int align_corners) {
    if (align_corners) return out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
    return (float)in / (float)out;
}

/* Keys cubic convolution, a = -0.75: for |s| <= 1 and for 1 < |s| < 2. */
RHD_HD static inline float rhd_cubic_near(float s) {
    const float a = -0.75f;
    return ((a + 2.0f) * s - (a + 3.0f)) * s * s + 1.0f;
}
RHD_HD static inline float rhd_cubic_far(float s) {
    const float a = -0.75f;
    return ((a * s - 5.0f * a) * s + 8.0f * a) * s - 4.0f * a;
}

/* The input indices idx[] and weights w[] that output index o reads along one axis; returns the
 * number of taps (2 bilinear, 4 bicubic). Indices are always within [0, in-1]. */
RHD_HD static inline int rhd_resize_taps(rhd_resize_mode mode, int align_corners, int o, int in, float scale,
                                         int idx[4], float w[4]) {
#ifdef __CUDA_ARCH__ /* no fused multiply-add here: the same source coordinate as the CPU */
    float src = align_corners ? __fmul_rn(scale, (float)o) : __fsub_rn(__fmul_rn(scale, (float)o + 0.5f), 0.5f);
#else
    float src = align_corners ? scale * (float)o : scale * ((float)o + 0.5f) - 0.5f;
#endif
    if (mode == RHD_RESIZE_BILINEAR) {
        if (src < 0.0f) src = 0.0f;
        int i0 = (int)src;
        if (i0 > in - 1) i0 = in - 1;
        float l = src - (float)i0;
        idx[0] = i0;
        idx[1] = i0 < in - 1 ? i0 + 1 : i0;
        w[0] = 1.0f - l;
        w[1] = l;
        return 2;
    }
    float f = floorf(src);
    float t = src - f;
    int i0 = (int)f - 1;
    w[0] = rhd_cubic_far(t + 1.0f);
    w[1] = rhd_cubic_near(t);
    w[2] = rhd_cubic_near(1.0f - t);
    w[3] = rhd_cubic_far((1.0f - t) + 1.0f);
    for (int k = 0; k < 4; k++) {
        int i = i0 + k;
        idx[k] = i < 0 ? 0 : i > in - 1 ? in - 1 : i;
    }
    return 4;
}
#endif
