/* kernels/losses.h: fitting losses with their gradients (fitting.md §7.1-§7.2).
 *
 * Mirrors Renderer/nerf/utils.py (the Trainer's train_step: MSE on the composited rgb, then the
 * L1 and TV regularisers of the clamped triplane in Renderer/TriplaneFit/network.py).
 *
 * Every function returns the loss (double, accumulated in double in a fixed order, so the value
 * is the same for any thread count, and deterministic on CUDA as well) and, when the gradient
 * pointer is non-NULL, writes or accumulates `scale * dloss/dx`:
 *
 *   rhd_loss_mse   loss = mean((x - y)^2) over n values                  dx  = (written)
 *   rhd_loss_l1    loss = mean(|X|) over n values                         dx += (accumulated)
 *   rhd_loss_tv    one plane X [C,H,W]:                                   dx += (accumulated)
 *                  TV(X) = 2 * ( sum (X[c,i+1,j]-X[c,i,j])^2 / (C*(H-1)*W)
 *                              + sum (X[c,i,j+1]-X[c,i,j])^2 / (C*H*(W-1)) )
 *                  (the first sum runs along rows/height, the second along columns/width; a term
 *                  whose count is 0, i.e. H == 1 or W == 1, is 0)
 *   rhd_loss_triplane_l1   planes [3,C,R,R]: sum_p mean|T_p| (a sum of per-plane means)   +=
 *   rhd_loss_triplane_tv   planes [3,C,R,R]: sum_p RHD_TV_INNER * TV(T_p)                +=
 *   rhd_loss_iwc   identity-aware weight consolidation of one stored state (§7.4):
 *                  loss = w * sum F (theta - theta*)^2 over n parameters     dtheta += 2 w F (theta - theta*)
 *                  (the difference in double, the gradient rounded once to float)
 *
 * X = clamp(x, -1, 1) when clamp != 0 (the regularisers act on the clamped triplane); the
 * gradient of an element with |x| > 1 is then dropped (|x| == 1 passes), as torch.clamp. The L1
 * gradient uses sign(0) = 0 (torch.abs). On CUDA the partial sums live in the context workspace
 * (rhd_ctx_workspace), so no argument may live there, and the call synchronises to return the
 * value. The MSE gradient is the start of the backward pass, so it
 * is written; the regularisers add into a triplane gradient that sampling also fills.
 */
#ifndef RHD_KERNELS_LOSSES_H
#define RHD_KERNELS_LOSSES_H
#include <math.h>
#include <stdint.h>
#include "common/backend.h"
#include "common/hd.h"

/* The hard-coded factor inside the original's TV term (§7.2, §12.14). */
#define RHD_TV_INNER 1e-2

RHD_HD static inline float rhd_loss_read(float x, int clamp) {
    if (!clamp) return x;
    return x < -1.f ? -1.f : (x > 1.f ? 1.f : x);
}
RHD_HD static inline int rhd_loss_passes(float x, int clamp) { return !clamp || fabsf(x) <= 1.f; }
RHD_HD static inline float rhd_loss_sign(float x) { return x > 0.f ? 1.f : (x < 0.f ? -1.f : 0.f); }

/* The TV gradient of element (i, j) of one channel plane X (H x W, row-major, x points at it),
 * without the mask: kh * (d_up - d_down) + kw * (d_left - d_right), kh and kw being the
 * coefficients of the row and column sums (see losses.c). */
RHD_HD static inline float rhd_tv_grad_at(const float *x, int i, int j, int H, int W, float kh, float kw, int clamp) {
    float xc = rhd_loss_read(x[(int64_t)i * W + j], clamp), g = 0.f;
    if (i > 0) g += kh * (xc - rhd_loss_read(x[(int64_t)(i - 1) * W + j], clamp));
    if (i < H - 1) g -= kh * (rhd_loss_read(x[(int64_t)(i + 1) * W + j], clamp) - xc);
    if (j > 0) g += kw * (xc - rhd_loss_read(x[(int64_t)i * W + j - 1], clamp));
    if (j < W - 1) g -= kw * (rhd_loss_read(x[(int64_t)i * W + j + 1], clamp) - xc);
    return g;
}

#ifdef __cplusplus
extern "C" {
#endif
double rhd_loss_mse(rhd_ctx *ctx, float *dx, const float *x, const float *y, int64_t n, float scale);
double rhd_loss_l1(rhd_ctx *ctx, float *dx, const float *x, int64_t n, float scale, int clamp);
double rhd_loss_tv(rhd_ctx *ctx, float *dx, const float *x, int C, int H, int W, float scale, int clamp);
double rhd_loss_triplane_l1(rhd_ctx *ctx, float *dplanes, const float *planes, int C, int R, float scale, int clamp);
double rhd_loss_triplane_tv(rhd_ctx *ctx, float *dplanes, const float *planes, int C, int R, float scale, int clamp);
double rhd_loss_iwc(rhd_ctx *ctx, float *dtheta, const float *theta, const float *F, const float *opt, int64_t n, double w);
#ifdef RHD_CUDA
/* The CUDA halves return the raw sums (sum (x-y)^2, sum |X|, and the two TV sums) and apply the
 * gradient coefficients computed by the dispatchers. */
double rhd_loss_mse_cuda(rhd_ctx *ctx, float *dx, const float *x, const float *y, int64_t n, float coef);
double rhd_loss_l1_cuda(rhd_ctx *ctx, float *dx, const float *x, int64_t n, float coef, int clamp);
void rhd_loss_tv_cuda(rhd_ctx *ctx, double *sh, double *sw, float *dx, const float *x, int C, int H, int W, float kh,
                      float kw, int clamp);
double rhd_loss_iwc_cuda(rhd_ctx *ctx, float *dtheta, const float *theta, const float *F, const float *opt, int64_t n,
                         double w);
#endif
/* One IWC element: adds its gradient and returns F d^2 (shared by both backends). */
RHD_HD static inline double rhd_iwc_at(float *dtheta, const float *theta, const float *F, const float *opt, int64_t i,
                                       double w) {
    double d = (double)theta[i] - opt[i];
    if (dtheta) dtheta[i] += (float)(2.0 * w * F[i] * d);
    return F[i] * d * d;
}
#ifdef __cplusplus
}
#endif
#endif
