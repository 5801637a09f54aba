/* kernels/march.h: ray marching through the occupancy bitfield, for training (two passes, packed
 * samples) and inference (alive rays, a few samples per ray per iteration) (fitting.md §3.5-§3.8).
 *
 * Mirrors march_rays_train and march_rays of Renderer/raymarching, and the inference loop of
 * NeRFRenderer.run_cuda (Renderer/nerf/renderer.py).
 *
 * Step size (§3.5), fp32: dt_min = (2*sqrt3)/max_steps, dt_max = (2*sqrt3*2^(C-1))/H,
 *   dt(t) = min(max(t*dt_gamma, dt_min), dt_max)   (dt_gamma = 0 in the scripts: dt = dt_min)
 * Sample position and occupancy (§3.6): p_a = clamp(o_a + t*d_a, -bound, bound);
 *   level = max(e(max_a |p_a|), e((dt*H)*0.5)) each clamped to [0, C-1], e = frexpf's exponent;
 *   mb = min(2^level, bound); n_a = (int)clamp((0.5*(p_a/mb + 1))*H, 0, H-1);
 *   occupied iff bit level*H^3 + Morton(nx, ny, nz) of the bitfield is set (occgrid.h layout).
 * One march from t with a far limit and a sample budget (§3.7, the loop shared by all passes):
 *   last = t; while t < far and count < budget:
 *     dt = dt(t); if occupied(p(t)): emit (p, d, delta0 = dt, delta1 = (t+dt) - last), t += dt,
 *     last = t; else: tb_a = (((n_a + 0.5 + 0.5*sign(d_a))/H*2 - 1)*mb - p_a)/d_a (sign from
 *     copysign, IEEE division, NaN ignored by fminf), tt = t + max(0, min_a tb_a), then
 *     repeat t += dt(t) until t >= tt, so t stays on the lattice t0 + k*dt.
 *   Guard (not in the original, cannot trigger for cameras near the box): if t + dt(t) == t in the
 *   skip loop (t beyond 2^24*dt), the march ends.
 * All fp32, one rounding per operation, no FMA (kernels/rays.h), so CPU, CUDA and the NumPy
 * reference give identical samples.
 *
 * Noise (§3.7): with perturb, ray r's noise is the uniform rhd_rng_uniform(seed, stream, r) in
 * [0, 1); the fitting loop uses stream = RHD_STREAM(RHD_STREAM_MARCH, step), the seed with the
 * subject folded in. t0 = near + dt(near)*noise. Without perturb, t0 = near.
 *
 * Training march, two passes (§3.7):
 *   rhd_march_train_count: rays[r] = (offset, count): count = the samples of ray r (at most
 *     max_steps), offset = the sum of the counts of rays 0..r-1 (ray order, so the compaction is
 *     deterministic on both backends, not in atomic order); returns the total requested.
 *   M = rhd_march_capacity(total, mean_count, force_all_rays): the sample buffer size. With
 *     force_all_rays (the default of the tools, §12.10) or mean_count <= 0: M = total, no ray is
 *     dropped. Otherwise M = mean_count + 128 - mean_count % 128 (always 1..128 more, as the
 *     original), and a ray with offset + count > M is dropped: its slot becomes (kept, 0), where
 *     kept = the samples written, so it renders as background. Because offsets follow ray order,
 *     the dropped rays are the last ones (the original drops rays in atomic, i.e. random, order).
 *   rhd_march_train_write: writes the samples of the kept rays at their offsets and returns kept;
 *     samples kept .. M-1 are zeroed. Record the step with rhd_occgrid_record_step(g, total, N).
 * Sample layout (consumed by kernels/composite.h): xyz [M,3] (clamped positions), dirs [M,3],
 *   delta0 [M] (dt, for alpha), delta1 [M] (for depth), rays [N,2] int32 (offset, count).
 *
 * Inference march (§3.8), driven by the caller:
 *   alive = 0..N-1 (n_alive = N), t_cur = nears, step = 0       rhd_march_infer_begin(...)
 *   while step < max_steps and n_alive > 0:
 *     n_step = rhd_march_infer_n_step(N, n_alive)             max(min(N / n_alive, 8), 1)
 *     rhd_march_infer(...)                                    [n_alive*n_step] slots, zeroed first
 *     sigma, rgb = decoder(xyz, dirs); composite the slots of each ray in order (§6.2), setting
 *       stop[i] = 1 when ray i stops early (a slot with delta0 == 0, or T < T_thresh)
 *     n_alive = rhd_march_infer_advance(...)                  drop stopped rays, advance t_cur
 *     step += n_step
 *   rhd_march_infer: alive ray i (ray id alive[i]) marches from t_cur[alive[i]] (with the ray's
 *     noise when perturb and first, else none) with budget n_step; its samples fill slots
 *     i*n_step .. i*n_step + n_step-1 in order; unused slots stay zero (delta0 = 0).
 *   rhd_march_infer_advance: ray i survives iff stop is NULL or stop[i] == 0, and every one of its
 *     slots has delta0 != 0; a survivor's t_cur becomes ((t_cur + delta1_0) + delta1_1) + ...
 *     over its slots; the alive list is compacted in order; returns the new n_alive.
 *
 * Contract: all outputs are written (=); t_cur and alive are updated in place by advance only.
 * Each ray is independent; scans are exclusive sums in ray order; nothing depends on the thread
 * count. Host return values (totals, n_alive) synchronise the CUDA stream. */
#ifndef RHD_KERNELS_MARCH_H
#define RHD_KERNELS_MARCH_H
#include <float.h>
#include <math.h>
#include <stdint.h>
#include "common/backend.h"
#include "common/hd.h"
#include "common/rng.h"
#include "kernels/occgrid.h"
#include "kernels/rays.h"

#define RHD_SQRT3_F 1.7320508075688772f

typedef struct rhd_march_cfg {
    float bound;     /* the scene box [-bound, bound]^3 (1) */
    int H;           /* occupancy grid size, a power of two (256 in fitting, 128 in the upsample trainer) */
    int C;           /* cascades (1) */
    int max_steps;   /* 1024 */
    float dt_gamma;  /* 0 in the scripts (main.py's default is 1/128) */
    int perturb;     /* noise per ray (training: 1; inference: 0) */
    uint64_t seed;   /* noise: rhd_rng_uniform(seed, stream, ray) */
    uint64_t stream; /* RHD_STREAM(RHD_STREAM_MARCH, step) */
} rhd_march_cfg;

static inline rhd_march_cfg rhd_march_cfg_default(void) {
    rhd_march_cfg c = {1.f, 256, 1, 1024, 0.f, 0, 0, RHD_STREAM(RHD_STREAM_MARCH, 0)};
    return c;
}

/* Constants of one march, derived once from the cfg. */
typedef struct rhd_march_k {
    float bound, dt_gamma, dt_min, dt_max, Hf;
    int H, C;
    int64_t H3;
} rhd_march_k;

RHD_HD static inline rhd_march_k rhd_march_consts(const rhd_march_cfg *c) {
    rhd_march_k k;
    k.bound = c->bound, k.dt_gamma = c->dt_gamma, k.H = c->H, k.C = c->C;
    k.Hf = (float)c->H;
    k.H3 = (int64_t)c->H * c->H * c->H;
    k.dt_min = (2.f * RHD_SQRT3_F) / (float)c->max_steps;
    k.dt_max = (2.f * RHD_SQRT3_F * (float)(1 << (c->C - 1))) / (float)c->H;
    return k;
}

RHD_HD static inline float rhd_march_dt(const rhd_march_k *k, float t) {
    return fminf(fmaxf(RHD_FMUL(t, k->dt_gamma), k->dt_min), k->dt_max);
}

RHD_HD static inline int rhd_march_mip(float x, int C) {
    int e;
    frexpf(x, &e);
    return e < 0 ? 0 : e > C - 1 ? C - 1 : e;
}

RHD_HD static inline float rhd_march_clampf(float v, float lo, float hi) { return fminf(fmaxf(v, lo), hi); }

/* March one ray from *t (the noise already added) towards far, emitting at most `budget` samples
 * into xyz/dirs/delta0/delta1 (all NULL: count only). Returns the count; *t is left where the
 * march stopped. */
RHD_HD static inline int rhd_march_ray(float *xyz, float *dirs, float *delta0, float *delta1, float *t_io, float far,
                                       int budget, const float *o, const float *d, const uint8_t *bits,
                                       const rhd_march_k *k) {
    float t = *t_io, last = t;
    int n = 0;
    while (t < far && n < budget) {
        float p[3];
        for (int a = 0; a < 3; a++) p[a] = rhd_march_clampf(RHD_FADD(o[a], RHD_FMUL(t, d[a])), -k->bound, k->bound);
        float dt = rhd_march_dt(k, t);
        int level = 0;
        if (k->C > 1) {
            float mx = fmaxf(fabsf(p[0]), fmaxf(fabsf(p[1]), fabsf(p[2])));
            int l1 = rhd_march_mip(mx, k->C), l2 = rhd_march_mip(RHD_FMUL(RHD_FMUL(dt, k->Hf), 0.5f), k->C);
            level = l1 > l2 ? l1 : l2;
        }
        float mb = fminf(ldexpf(1.f, level), k->bound);
        int nv[3];
        for (int a = 0; a < 3; a++)
            nv[a] = (int)rhd_march_clampf(RHD_FMUL(RHD_FMUL(0.5f, RHD_FADD(p[a] / mb, 1.f)), k->Hf), 0.f, k->Hf - 1.f);
        int64_t idx = level * k->H3 + rhd_morton3((uint32_t)nv[0], (uint32_t)nv[1], (uint32_t)nv[2]);
        if (bits[idx >> 3] & (1u << (idx & 7))) {
            t = RHD_FADD(t, dt);
            if (xyz) {
                for (int a = 0; a < 3; a++) xyz[3 * n + a] = p[a], dirs[3 * n + a] = d[a];
                delta0[n] = dt;
                delta1[n] = RHD_FSUB(t, last);
            }
            last = t;
            n++;
        } else {
            float tmin = INFINITY;
            for (int a = 0; a < 3; a++) {
                float side = RHD_FADD(RHD_FADD((float)nv[a], 0.5f), RHD_FMUL(0.5f, copysignf(1.f, d[a])));
                float edge = RHD_FSUB(RHD_FMUL(RHD_FSUB(RHD_FMUL(side / k->Hf, 2.f), 1.f), mb), p[a]);
                tmin = fminf(tmin, edge / d[a]);
            }
            float tt = RHD_FADD(t, fmaxf(0.f, tmin));
            do {
                float tn = RHD_FADD(t, rhd_march_dt(k, t));
                if (tn == t) { /* no progress possible: end the march */
                    t = far;
                    break;
                }
                t = tn;
            } while (t < tt);
        }
    }
    *t_io = t;
    return n;
}

/* Start of ray r's march: near plus the noise step (§3.7). */
RHD_HD static inline float rhd_march_t0(const rhd_march_cfg *c, const rhd_march_k *k, float near, int64_t r) {
    if (!c->perturb) return near;
    float u = rhd_rng_uniform(c->seed, c->stream, (uint64_t)r);
    return RHD_FADD(near, RHD_FMUL(rhd_march_dt(k, near), u));
}

/* Inference: the number of slots per alive ray (§3.8 step 1). */
static inline int rhd_march_infer_n_step(int64_t n_total, int64_t n_alive) {
    int64_t s = n_alive > 0 ? n_total / n_alive : 1;
    if (s > 8) s = 8;
    if (s < 1) s = 1;
    return (int)s;
}

#ifdef __cplusplus
extern "C" {
#endif
/* Sample buffer capacity (§3.7). */
int64_t rhd_march_capacity(int64_t total, int64_t mean_count, int force_all_rays);

/* Pass 1: rays [N,2] = (offset, count); returns the total count. rays_o, rays_d [N,3];
 * nears, fars [N]; bitfield [C*H^3/8]. */
int64_t rhd_march_train_count(rhd_ctx *ctx, int32_t *rays, const float *rays_o, const float *rays_d,
                              const float *nears, const float *fars, const uint8_t *bitfield, int64_t N,
                              const rhd_march_cfg *cfg);
/* Pass 2: samples into xyz [M,3], dirs [M,3], delta0 [M], delta1 [M]; dropped rays' slots become
 * (kept, 0); returns kept (the samples written). */
int64_t rhd_march_train_write(rhd_ctx *ctx, float *xyz, float *dirs, float *delta0, float *delta1, int32_t *rays,
                              const float *rays_o, const float *rays_d, const float *nears, const float *fars,
                              const uint8_t *bitfield, int64_t N, int64_t M, const rhd_march_cfg *cfg);

/* Inference march of the alive rays: xyz, dirs [n_alive*n_step, 3], delta0, delta1
 * [n_alive*n_step]; alive [n_alive] ray ids; t_cur, fars [N]; rays_o, rays_d [N,3]. Noise only
 * when cfg->perturb and first. */
void rhd_march_infer(rhd_ctx *ctx, float *xyz, float *dirs, float *delta0, float *delta1, const int32_t *alive,
                     const float *t_cur, const float *rays_o, const float *rays_d, const float *fars,
                     const uint8_t *bitfield, int64_t n_alive, int n_step, int first, const rhd_march_cfg *cfg);
/* alive [N] = 0..N-1, t_cur [N] = nears [N]. */
void rhd_march_infer_begin(rhd_ctx *ctx, int32_t *alive, float *t_cur, const float *nears, int64_t N);
/* Drop stopped rays and advance t_cur (see above); stop [n_alive] uint8 or NULL. Returns n_alive. */
int64_t rhd_march_infer_advance(rhd_ctx *ctx, int32_t *alive, float *t_cur, const uint8_t *stop,
                                const float *delta0, const float *delta1, int64_t n_alive, int n_step);

#ifdef RHD_CUDA
int64_t rhd_march_train_count_cuda(rhd_ctx *ctx, int32_t *rays, const float *rays_o, const float *rays_d,
                                   const float *nears, const float *fars, const uint8_t *bitfield, int64_t N,
                                   rhd_march_cfg cfg);
int64_t rhd_march_train_write_cuda(rhd_ctx *ctx, float *xyz, float *dirs, float *delta0, float *delta1, int32_t *rays,
                                   const float *rays_o, const float *rays_d, const float *nears, const float *fars,
                                   const uint8_t *bitfield, int64_t N, int64_t M, rhd_march_cfg cfg);
void rhd_march_infer_cuda(rhd_ctx *ctx, float *xyz, float *dirs, float *delta0, float *delta1, const int32_t *alive,
                          const float *t_cur, const float *rays_o, const float *rays_d, const float *fars,
                          const uint8_t *bitfield, int64_t n_alive, int n_step, int first, rhd_march_cfg cfg);
void rhd_march_iota_cuda(rhd_ctx *ctx, int32_t *alive, int64_t N);
int64_t rhd_march_infer_advance_cuda(rhd_ctx *ctx, int32_t *alive, float *t_cur, const uint8_t *stop,
                                     const float *delta0, const float *delta1, int64_t n_alive, int n_step);
#endif
#ifdef __cplusplus
}
#endif
#endif
