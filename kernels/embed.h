/* kernels/embed.h: sinusoidal timestep embedding (timestep_embedding of
 * pretrained_diffusion/nn.py; spec diffusion.md §2.3, §5.3).
 *
 *   half = dim / 2 (dim even),  f_i = exp(-ln(10000) i / half),  i = 0 .. half-1
 *   y[b, i] = cos(t[b] f_i),  y[b, half + i] = sin(t[b] f_i)      (the cos block FIRST)
 * t [B] is the float timestep the model receives (already rescaled by the caller, §3.6);
 * y [B, dim] is written (=). Arithmetic follows the original's float32 steps: f_i = exp(i *
 * (float)-ln(10000) / half), argument t f_i rounded to float, then cosf/sinf. The original computes
 * the f_i with torch.exp on the CPU, whose vectorised kernel is SLEEF's 1-ulp expf, not correctly
 * rounded: rhd_expf_torch below reproduces it bit for bit (a correctly rounded exp differs in about
 * 1 f_i of 10 by one ulp, which t up to 999 turns into embedding errors of 3e-5; spec §10.4).
 * There is no backward: t is data, not a learned quantity, and nothing upstream of it needs a
 * gradient (the learned layers after the embedding take y as their input). */
#ifndef RHD_KERNELS_EMBED_H
#define RHD_KERNELS_EMBED_H
#include <stdint.h>
#include <math.h>
#include "common/backend.h"
#include "common/hd.h"

#ifdef __cplusplus
extern "C" {
#endif
/* y [B, dim] <- t [B]. */
void rhd_timestep_embed_forward(rhd_ctx *ctx, float *y, const float *t, int B, int dim);
#ifdef RHD_CUDA
void rhd_timestep_embed_forward_cuda(rhd_ctx *ctx, float *y, const float *t, int B, int dim);
#endif
#ifdef __cplusplus
}
#endif

/* exp(d) as PyTorch's CPU kernel computes it (ATen's Vectorized<float>::exp = SLEEF's expf_u10):
 * q = rint(d / ln 2), s = d - q ln 2 in two fused steps (ln 2 split hi + lo), a degree-6
 * polynomial in s by fused multiply-adds, scaled by 2^q. Matches torch.exp on every float of
 * [-104, 104] tried (tests/kernels/test_embed.c compares 2^16 of them). */
RHD_HD static inline float rhd_expf_torch(float d) {
    float q = rintf(d * 1.44269504088896341f);
    float s = fmaf(q, -0.693145751953125f, d);
    s = fmaf(q, -1.428606765330187045e-6f, s);
    float u = 0.000198527617612853646278381f;
    u = fmaf(u, s, 0.00139304355252534151077271f);
    u = fmaf(u, s, 0.00833336077630519866943359f);
    u = fmaf(u, s, 0.0416664853692054748535156f);
    u = fmaf(u, s, 0.166666671633720397949219f);
    u = fmaf(u, s, 0.5f);
    u = 1.0f + fmaf(s * s, u, s);
    u = ldexpf(u, (int)q);
    return d < -104.f ? 0.f : d > 104.f ? INFINITY : u;
}

/* Element j of the embedding of timestep t. */
RHD_HD static inline float rhd_timestep_embed_elem(float t, int j, int dim) {
    int half = dim / 2, i = j < half ? j : j - half;
    float e = (float)i * -9.210340371976184f; /* -ln(10000) rounded to float, as torch does */
    float f = rhd_expf_torch(e / (float)half);
    float arg = t * f;
    return j < half ? cosf(arg) : sinf(arg);
}
#endif
