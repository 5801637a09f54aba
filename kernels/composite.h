/* kernels/composite.h: volume compositing of packed ray samples for training, forward and
 * backward (fitting.md §6.1 and §6.3).
 *
 * Mirrors composite_rays_train_forward/backward of Renderer/raymarching (as called by
 * Renderer/nerf/renderer.py in training).
 *
 * Shapes:
 *   rays   [n_rays, 2] int32   (offset, count): ray r owns samples offset .. offset+count-1 of
 *                              the packed buffer, in marching order; count may be 0; rays may
 *                              come in any order and need not cover every sample, but no two
 *                              rays may share a sample
 *   sigma  [M], rgb [M, 3], delta0 [M] (step used for alpha), delta1 [M] (step used for depth)
 *   nears, fars [n_rays]       optional (NULL): depth normalisation below
 *   pred   [n_rays, 3], A [n_rays], depth [n_rays], n_used [n_rays] int32
 *
 * Per ray, samples in order, fp32: T = 1; for each sample k:
 *   alpha = 1 - exp(-sigma_k*delta0_k); w = alpha*T; rgb += w*c_k; A += w; s += delta1_k;
 *   depth_acc += w*s; T *= 1 - alpha; then stop if T < T_thresh (checked AFTER the update).
 * pred = rgb + (1 - A)*bg. n_used = the number of samples composited (count, or fewer after an
 * early stop). depth = clamp(depth_acc - near, 0)/(far - near) when nears and fars are given
 * (0 where far <= near, i.e. rays that miss the box), else depth_acc itself. As in the
 * original, s sums delta1 and so is measured from the ray's first position t0, not from 0:
 * subtracting near reproduces §12.11's inconsistency; pass NULL to get the raw weighted s.
 *
 * Backward (the ray is re-run with the same stop): with g = dL/dpred and
 * dL/dA_total = dA - sum_c g_c*bg_c (dA optional, NULL = 0), at sample k after its update:
 *   drgb_k   = g * w_k
 *   dsigma_k = delta0_k * ( sum_c g_c*(T_after*c_k,c - (rgb_final_c - rgb_acc_c)) + dL/dA_total*(1 - A_final) )
 * Depth gets no gradient.
 *
 * Contract:
 *   forward:  pred, A, depth, n_used written (=); A, depth and n_used may be NULL (not computed).
 *   backward: dsigma [M] and drgb [M,3] are written (=) over ALL M samples: samples after a
 *             ray's stop and samples no ray covers get 0.
 *   CPU and CUDA run the same per-sample helpers below in fp32; each ray is independent, so the
 *   CPU result does not depend on the thread count.
 *
 * Inference (§6.2, composite_rays of the original), one march iteration at a time (kernels/march.h
 * describes the loop): the n_step slots of alive ray i (id alive[i]) are slots i*n_step + k.
 *   rhd_composite_infer: per alive ray, slots in order: stop at a slot with delta0 == 0 (the ray
 *     left the box); T = 1 - A[ray]; w = (1 - exp(-sigma*delta0)) * T; t += delta1 (t starts at
 *     t_cur[ray]); A[ray] += w; dacc[ray] += w*t; rgb[ray] += w*c; then stop if T < T_thresh
 *     (the T before the slot, as the original). stop[i] is written (=); rgb [N,3], A [N] and
 *     dacc [N] accumulate (+=) across iterations (zero them before the first); dacc may be NULL.
 *   rhd_composite_infer_finish: over all N rays, pred = rgb + (1 - A) * bg (when pred != NULL)
 *     and depth = max(dacc - near, 0) / (far - near), 0 where far <= near or A == 0 (when depth
 *     != NULL; dacc, nears and fars then required).
 */
#ifndef RHD_KERNELS_COMPOSITE_H
#define RHD_KERNELS_COMPOSITE_H
#include <math.h>
#include <stdint.h>
#include "common/backend.h"
#include "common/hd.h"

typedef struct rhd_composite_cfg {
    float bg[3];    /* background colour (white by default) */
    float T_thresh; /* early termination threshold (1e-4 in training and inference) */
} rhd_composite_cfg;

static inline rhd_composite_cfg rhd_composite_cfg_default(void) {
    rhd_composite_cfg c = {{1.f, 1.f, 1.f}, 1e-4f};
    return c;
}

/* Running state of one ray. */
typedef struct rhd_ray_acc {
    float T;      /* transmittance after the samples so far */
    float rgb[3]; /* sum of w*c */
    float A;      /* sum of w (opacity) */
    float s;      /* sum of delta1 (distance marched, for depth) */
    float depth;  /* sum of w*s */
} rhd_ray_acc;

RHD_HD static inline void rhd_ray_acc_init(rhd_ray_acc *a) {
    a->T = 1.f;
    a->rgb[0] = a->rgb[1] = a->rgb[2] = 0.f;
    a->A = a->s = a->depth = 0.f;
}

/* Composite one sample; returns its weight w. The caller stops after it if a->T < T_thresh. */
RHD_HD static inline float rhd_composite_step(rhd_ray_acc *a, float sigma, const float *c, float delta0, float delta1) {
    float alpha = 1.f - expf(-sigma * delta0);
    float w = alpha * a->T;
    a->rgb[0] += w * c[0];
    a->rgb[1] += w * c[1];
    a->rgb[2] += w * c[2];
    a->A += w;
    a->s += delta1;
    a->depth += w * a->s;
    a->T *= 1.f - alpha;
    return w;
}

/* Gradients of one sample, called right after rhd_composite_step on the same accumulator a (so
 * a->T is T_after and a->rgb the running sum including this sample). fin is the final state of
 * the ray, g = dL/dpred, dA_total = dL/dA including the background term. */
RHD_HD static inline float rhd_composite_dsigma(const rhd_ray_acc *a, const rhd_ray_acc *fin, const float *c,
                                                float delta0, const float *g, float dA_total) {
    float s = g[0] * (a->T * c[0] - (fin->rgb[0] - a->rgb[0])) + g[1] * (a->T * c[1] - (fin->rgb[1] - a->rgb[1])) +
              g[2] * (a->T * c[2] - (fin->rgb[2] - a->rgb[2]));
    return delta0 * (s + dA_total * (1.f - fin->A));
}

/* dL/dA_total of a ray: the upstream dA (0 if none) minus the background term of pred. */
RHD_HD static inline float rhd_composite_dA_total(const float *g, float dA, const float *bg) {
    return dA - (g[0] * bg[0] + g[1] * bg[1] + g[2] * bg[2]);
}

/* Normalised depth (see above); raw depth_acc when near/far are not given. */
RHD_HD static inline float rhd_composite_depth(float depth_acc, const float *nears, const float *fars, int64_t r) {
    if (!nears || !fars) return depth_acc;
    float near = nears[r], far = fars[r];
    if (!(far > near)) return 0.f;
    float d = depth_acc - near;
    return (d > 0.f ? d : 0.f) / (far - near);
}

/* Composite the samples off .. off+count-1 of one ray into a (initialised here), stopping
 * after the first sample that leaves T < T_thresh; returns the number of samples used. delta1
 * may be NULL (depth not needed). */
RHD_HD static inline int rhd_composite_ray(rhd_ray_acc *a, const float *sigma, const float *rgb, const float *delta0,
                                           const float *delta1, int64_t off, int count, float T_thresh) {
    rhd_ray_acc_init(a);
    for (int k = 0; k < count; k++) {
        int64_t i = off + k;
        rhd_composite_step(a, sigma[i], rgb + 3 * i, delta0[i], delta1 ? delta1[i] : 0.f);
        if (a->T < T_thresh) return k + 1;
    }
    return count;
}

/* Backward of one ray: fills dsigma and drgb of its first n_used samples (the others are left
 * to the caller, who zeroes them). */
RHD_HD static inline void rhd_composite_ray_backward(float *dsigma, float *drgb, const float *sigma, const float *rgb,
                                                     const float *delta0, int64_t off, int count, const float *g,
                                                     float dA, const float *bg, float T_thresh) {
    rhd_ray_acc fin, a;
    int used = rhd_composite_ray(&fin, sigma, rgb, delta0, 0, off, count, T_thresh);
    float dA_total = rhd_composite_dA_total(g, dA, bg);
    rhd_ray_acc_init(&a);
    for (int k = 0; k < used; k++) {
        int64_t i = off + k;
        const float *c = rgb + 3 * i;
        float w = rhd_composite_step(&a, sigma[i], c, delta0[i], 0.f);
        drgb[3 * i] = g[0] * w;
        drgb[3 * i + 1] = g[1] * w;
        drgb[3 * i + 2] = g[2] * w;
        dsigma[i] = rhd_composite_dsigma(&a, &fin, c, delta0[i], g, dA_total);
    }
}

/* One alive ray's slots of an inference iteration; returns stop. */
RHD_HD static inline uint8_t rhd_composite_infer_ray(float *rgb, float *A, float *dacc, const float *sigma,
                                                     const float *c, const float *delta0, const float *delta1, float t,
                                                     int n_step, float T_thresh) {
    for (int k = 0; k < n_step; k++) {
        if (delta0[k] == 0.f) return 1;
        float T = 1.f - *A;
        float w = (1.f - expf(-sigma[k] * delta0[k])) * T;
        t += delta1[k];
        *A += w;
        if (dacc) *dacc += w * t;
        for (int j = 0; j < 3; j++) rgb[j] += w * c[3 * k + j];
        if (T < T_thresh) return 1;
    }
    return 0;
}

RHD_HD static inline void rhd_composite_infer_finish_at(float *pred, float *depth, const float *rgb, const float *A,
                                                        const float *dacc, const float *nears, const float *fars,
                                                        const float *bg, int64_t i) {
    if (pred)
        for (int j = 0; j < 3; j++) pred[3 * i + j] = rgb[3 * i + j] + (1.f - A[i]) * bg[j];
    if (depth) {
        float range = fars[i] - nears[i], dd = dacc[i] - nears[i];
        depth[i] = range > 0 && A[i] > 0 ? fmaxf(dd, 0.f) / range : 0.f;
    }
}

#ifdef __cplusplus
extern "C" {
#endif
void rhd_composite_infer(rhd_ctx *ctx, float *rgb, float *A, float *dacc, uint8_t *stop, const int32_t *alive,
                         const float *t_cur, const float *sigma, const float *c, const float *delta0,
                         const float *delta1, int64_t n_alive, int n_step, float T_thresh);
void rhd_composite_infer_finish(rhd_ctx *ctx, float *pred, float *depth, const float *rgb, const float *A,
                                const float *dacc, const float *nears, const float *fars, const float bg[3], int64_t N);
void rhd_composite_forward(rhd_ctx *ctx, float *pred, float *A, float *depth, int32_t *n_used, const float *sigma,
                           const float *rgb, const float *delta0, const float *delta1, const int32_t *rays,
                           const float *nears, const float *fars, int64_t n_rays, int64_t M,
                           const rhd_composite_cfg *cfg);
void rhd_composite_backward(rhd_ctx *ctx, float *dsigma, float *drgb, const float *dpred, const float *dA,
                            const float *sigma, const float *rgb, const float *delta0, const int32_t *rays,
                            int64_t n_rays, int64_t M, const rhd_composite_cfg *cfg);
#ifdef RHD_CUDA
void rhd_composite_infer_cuda(rhd_ctx *ctx, float *rgb, float *A, float *dacc, uint8_t *stop, const int32_t *alive,
                              const float *t_cur, const float *sigma, const float *c, const float *delta0,
                              const float *delta1, int64_t n_alive, int n_step, float T_thresh);
void rhd_composite_infer_finish_cuda(rhd_ctx *ctx, float *pred, float *depth, const float *rgb, const float *A,
                                     const float *dacc, const float *nears, const float *fars, const float bg[3],
                                     int64_t N);
void rhd_composite_forward_cuda(rhd_ctx *ctx, float *pred, float *A, float *depth, int32_t *n_used,
                                const float *sigma, const float *rgb, const float *delta0, const float *delta1,
                                const int32_t *rays, const float *nears, const float *fars, int64_t n_rays,
                                rhd_composite_cfg cfg);
void rhd_composite_backward_cuda(rhd_ctx *ctx, float *dsigma, float *drgb, const float *dpred, const float *dA,
                                 const float *sigma, const float *rgb, const float *delta0, const int32_t *rays,
                                 int64_t n_rays, int64_t M, rhd_composite_cfg cfg);
#endif
#ifdef __cplusplus
}
#endif
#endif
