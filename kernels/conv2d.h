/* kernels/conv2d.h: 2-D convolution (cross-correlation), NCHW, fp32, groups = 1, dilation 1.
 *
 * Mirrors torch.nn.functional.conv2d(F.pad(x, (left, right, top, bottom)), W, b, stride): the
 * zero padding is given per side so that the VAE downsampler of script/myvae.py (diffusers
 * Downsample2D: pad right and bottom by one, then conv3x3 stride 2, padding 0) is one call.
 * Used for the VAE encoder's 3x3 and 1x1 convs, the UNet's 3x3/1x1 convs (pretrained_diffusion/
 * unet.py) and the patch embeddings (16x16/s16, 8x8/s8, 4x4/s4).
 *
 * Shapes (PyTorch order): x (N,Cin,H,W), W (Cout,Cin,KH,KW), b (Cout), y (N,Cout,OH,OW) with
 *   OH = (H + pad_t + pad_b - KH) / stride_h + 1,  OW = (W + pad_l + pad_r - KW) / stride_w + 1.
 * Contract:
 *   forward   y = conv(x, W) + b                                     (=; b may be NULL)
 *   backward  dx = conv_transpose(dy, W)  (=);  dW += corr(x, dy);  db += sum over N,OH,OW of dy
 *             any of dx, dW, db may be NULL (not wanted).
 * CPU: im2col over bands of output rows + sgemm (rhd_sgemm_cpu), one image at a time. The input
 * gradient of a stride-1 conv is the forward conv of dy with the flipped, transposed kernel;
 * strided convs scatter it back per input channel. Every sum has a fixed order, so results do
 * not depend on the thread count. CUDA: cuDNN (algorithms from the cudnnGet*_v7 heuristics, FMA-only
 * math unless ctx->allow_tf32; deterministic algorithms preferred for the backward passes);
 * asymmetric padding goes through an explicitly padded copy in the context workspace. */
#ifndef RHD_KERNELS_CONV2D_H
#define RHD_KERNELS_CONV2D_H
#include "common/backend.h"

typedef struct rhd_conv2d_desc {
    int N, Cin, H, W;            /* input x (N,Cin,H,W) */
    int Cout, KH, KW;            /* weight (Cout,Cin,KH,KW) */
    int stride_h, stride_w;
    int pad_t, pad_b, pad_l, pad_r; /* zeros added above, below, left and right of x */
} rhd_conv2d_desc;

#ifdef __cplusplus
extern "C" {
#endif
/* The common square case: k x k kernel, the same stride both ways, `pad` zeros on every side. */
rhd_conv2d_desc rhd_conv2d_square(int N, int Cin, int H, int W, int Cout, int k, int stride, int pad);
int rhd_conv2d_out_h(const rhd_conv2d_desc *d);
int rhd_conv2d_out_w(const rhd_conv2d_desc *d);
/* 0 if the description is usable (positive sizes, non-negative padding, output at least 1x1),
 * else -1 with a message naming the offending field. */
int rhd_conv2d_check(const rhd_conv2d_desc *d, rhd_err *e);

/* y (N,Cout,OH,OW) = conv(x (N,Cin,H,W), W (Cout,Cin,KH,KW)) + b (Cout) */
void rhd_conv2d_forward(rhd_ctx *ctx, float *y, const float *x, const float *W, const float *b,
                        const rhd_conv2d_desc *d);
/* dx (N,Cin,H,W) =;  dW (Cout,Cin,KH,KW) +=;  db (Cout) +=;  from dy (N,Cout,OH,OW) */
void rhd_conv2d_backward(rhd_ctx *ctx, float *dx, float *dW, float *db, const float *dy, const float *x,
                         const float *W, const rhd_conv2d_desc *d);

#ifdef RHD_CUDA
void rhd_conv2d_forward_cuda(rhd_ctx *ctx, float *y, const float *x, const float *W, const float *b,
                             const rhd_conv2d_desc *d);
void rhd_conv2d_backward_cuda(rhd_ctx *ctx, float *dx, float *dW, float *db, const float *dy, const float *x,
                              const float *W, const rhd_conv2d_desc *d);
#endif
#ifdef __cplusplus
}
#endif
#endif
