/* kernels/embed.h: sinusoidal timestep embedding (timestep_embedding of
 * pretrained_diffusion/nn.py; spec diffusion.md §2.3, §5.3).
 *
 *   half = dim / 2 (dim even),  f_i = exp(-ln(10000) i / half),  i = 0 .. half-1
 *   y[b, i] = cos(t[b] f_i),  y[b, half + i] = sin(t[b] f_i)      (the cos block FIRST)
 * t [B] is the float timestep the model receives (already rescaled by the caller, §3.6);
 * y [B, dim] is written (=). Arithmetic follows the original's float32 steps: f_i = expf(i *
 * (float)-ln(10000) / half), argument t f_i rounded to float, then cosf/sinf.
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

/* Element j of the embedding of timestep t. */
RHD_HD static inline float rhd_timestep_embed_elem(float t, int j, int dim) {
    int half = dim / 2, i = j < half ? j : j - half;
    float e = (float)i * -9.210340371976184f; /* -ln(10000) rounded to float, as torch does */
    float f = expf(e / (float)half);
    float arg = t * f;
    return j < half ? cosf(arg) : sinf(arg);
}
#endif
