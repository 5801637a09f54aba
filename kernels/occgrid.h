/* kernels/occgrid.h: the occupancy (density) grid of the ray marcher: Morton layout, untrained
 * cells, the EMA-max update and the bitfield (fitting.md §3.1-§3.4, §3.6, §3.7 step counters).
 *
 * Mirrors NeRFRenderer.mark_untrained_grid / update_extra_state / reset_extra_state
 * (Renderer/nerf/renderer.py) and morton3D / packbits (Renderer/raymarching).
 *
 * The grid never calls the decoder. One update is four calls:
 *   n = rhd_occgrid_begin_update(ctx, g, seed)        full or partial, decided by iter_density
 *   for chunks [q0, q0+m) of [0, n):
 *     rhd_occgrid_queries(ctx, g, xyz, cells, q0, m)  query positions [m,3] and cell indices [m]
 *     sigma = density(xyz) * density_scale            the caller (decoder lives elsewhere)
 *     rhd_occgrid_apply(ctx, g, sigma, cells, q0, m)  EMA-max of the queried cells
 *   rhd_occgrid_end_update(ctx, g)                    mean density, bitfield, counters
 * Chunks may come in any order and any size; rhd_occgrid_update() runs the loop over a callback.
 *
 * State (ctx side = device memory on CUDA):
 *   density  [C, H^3] float   cell (ix,iy,iz) of cascade c at c*H^3 + Morton(ix,iy,iz), where
 *                             bit 3b of the code is bit b of ix, bit 3b+1 of iy, bit 3b+2 of iz
 *   bitfield [C*H^3/8] uint8  byte n, bit i: the cell with linear index 8n+i is occupied
 *   host scalars: mean_density, iter_density, step_counter[16][2] (samples requested, rays),
 *   local_step, mean_count.
 *
 * Cell centre (§3.2), cascade c: b_c = min(2^c, bound), hgs_c = b_c/H (both in double, as the
 * original's Python), s_c = (float)(b_c - hgs_c); coordinate i in [0, H-1]:
 *   x_i = ((float)(2i)/(float)(H-1) - 1) * s_c                           (fp32, no FMA)
 * Query point = x + ((u*2 - 1) * (float)hgs_c) per axis, u ~ U[0,1).
 *
 * Random numbers (Philox, common/rng.h), per update: stream = RHD_STREAM(RHD_STREAM_GRID,
 * iter_density), seed from the caller (fold the subject in). Query q of the update uses
 *   block 2q   lanes 0,1,2: the jitter u of x, y, z (rhd_u32_to_unit)
 *   block 2q+1 lanes 0,1,2: a random cell's ix, iy, iz = (lane * H) >> 32        (partial, random)
 *              lane 0:      occupied cell occ_c[(lane * n_occ_c) >> 32]           (partial, occupied)
 *
 * Query list of one update:
 *   full (iter_density < full_updates, 16): q = c*H^3 + m for every cascade c and Morton code m;
 *     cells[q] = q. Every cell exactly once.
 *   partial: per cascade c, in order: N = H^3/4 random cells (with replacement), then N cells
 *     drawn with replacement from occ_c = the cells of cascade c whose density > 0 at
 *     begin_update, in increasing index order (torch.nonzero). If occ_c is empty, that half is
 *     left out (the original crashes there, §12.12). Duplicates: the query with the highest q
 *     wins (the last write of tmp_grid[indices] = sigmas).
 *
 * apply (§3.4 step 4): for each winning query with s = sigma: if density >= 0 and s >= 0:
 *   density = max(density*decay, s). Cells not queried, and cells at -1, are left as they are.
 * end_update (§3.4 steps 5-7): mean_density = mean over all C*H^3 cells of max(density, 0)
 *   (double, fixed pairwise-chunk order: chunks of 256 summed left to right, level by level, so
 *   CPU and CUDA give the same double); iter_density += 1; thr = (float)min(mean, density_thresh);
 *   bit = density > thr (strict); if local_step > 0: mean_count = (int64)(sum_{k<n} step_counter
 *   [k][0] / n) with n = min(16, local_step), then local_step = 0.
 * mark_untrained (§3.3): cell centres (no jitter) of every cascade; pose P (3x4 c2w, R = P[:,0:3],
 *   t = P[:,3]); X_cam_k = (R[0][k]*e0 + R[1][k]*e1) + R[2][k]*e2 with e = X - t; seen iff
 *   X_cam.z > 0, |X_cam.x| < kx*X_cam.z + m and |X_cam.y| < ky*X_cam.z + m, where
 *   kx = (float)((double)cx/fx), ky = (float)((double)cy/fy), m = (float)(2*hgs_c). Cells no pose
 *   sees get density -1 (others are left as they are).
 *
 * Contract: density and bitfield are written in place; all outputs are deterministic and do not
 * depend on the thread count (no float atomics; the winners are the highest query per cell, by an
 * integer atomicMax on CUDA and by a scan in query order over cell ranges on the CPU). CUDA and
 * CPU give bit-identical grids and bitfields. */
#ifndef RHD_KERNELS_OCCGRID_H
#define RHD_KERNELS_OCCGRID_H
#include <math.h>
#include <stdint.h>
#include "common/backend.h"
#include "common/hd.h"
#include "common/rng.h"
#include "kernels/rays.h"

#define RHD_OCC_MAX_CASCADES 8

typedef struct rhd_occgrid_cfg {
    int H;                /* grid_size: 256 in fitting and test, 128 in the upsample trainer; a power of two */
    int C;                /* cascades: rhd_occgrid_cascades(bound), 1 for bound 1 */
    float bound;          /* the scene box [-bound, bound]^3 */
    float decay;          /* 0.95 */
    float density_thresh; /* 10: the bit threshold is min(mean density, this) */
    int full_updates;     /* 16: updates while iter_density < this are full */
} rhd_occgrid_cfg;

/* What one update queries; passed by value to the kernels. */
typedef struct rhd_occ_plan {
    int H, C, full;
    uint64_t seed, stream;
    int64_t n_random;                          /* N = H^3/4 per cascade (partial) */
    int64_t q_begin[RHD_OCC_MAX_CASCADES + 1]; /* queries of cascade c: [q_begin[c], q_begin[c+1]) */
    int64_t occ_begin[RHD_OCC_MAX_CASCADES];   /* occ_c = occ[occ_begin[c] .. + occ_n[c]) */
    int64_t occ_n[RHD_OCC_MAX_CASCADES];
    float scale[RHD_OCC_MAX_CASCADES]; /* s_c = b_c - hgs_c */
    float hgs[RHD_OCC_MAX_CASCADES];   /* hgs_c = b_c / H */
} rhd_occ_plan;

typedef struct rhd_occgrid {
    rhd_occgrid_cfg cfg;
    int64_t n_cells;       /* C*H^3 */
    float *density;        /* [C, H^3] ctx side */
    uint8_t *bitfield;     /* [C*H^3/8] ctx side */
    double mean_density;
    int iter_density;
    int64_t step_counter[16][2];
    int64_t local_step;
    int64_t mean_count;
    /* the update in progress */
    int updating;
    int64_t n_queries;
    rhd_occ_plan plan;
    int32_t *occ;    /* [C*H^3] ctx side: the occupied cells of every cascade, ascending */
    int32_t *winner; /* [C*H^3] ctx side: the winning query of each cell (partial updates) */
    int32_t *qcells; /* [C*H^3/2] ctx side: the cell of each query (partial updates) */
    double *sums;    /* ctx side: mean reduction partials */
} rhd_occgrid;

/* ---- per-element helpers (CPU and CUDA) ---- */

RHD_HD static inline uint32_t rhd_morton_spread(uint32_t x) { /* 10 bits -> every third bit */
    x &= 0x3ffu;
    x = (x | (x << 16)) & 0x030000FFu;
    x = (x | (x << 8)) & 0x0300F00Fu;
    x = (x | (x << 4)) & 0x030C30C3u;
    x = (x | (x << 2)) & 0x09249249u;
    return x;
}
RHD_HD static inline uint32_t rhd_morton_compact(uint32_t x) {
    x &= 0x09249249u;
    x = (x | (x >> 2)) & 0x030C30C3u;
    x = (x | (x >> 4)) & 0x0300F00Fu;
    x = (x | (x >> 8)) & 0x030000FFu;
    x = (x | (x >> 16)) & 0x000003FFu;
    return x;
}
/* Morton code of (x, y, z), each < 1024. */
RHD_HD static inline uint32_t rhd_morton3(uint32_t x, uint32_t y, uint32_t z) {
    return rhd_morton_spread(x) | (rhd_morton_spread(y) << 1) | (rhd_morton_spread(z) << 2);
}
RHD_HD static inline void rhd_morton3_inv(uint32_t m, uint32_t *x, uint32_t *y, uint32_t *z) {
    *x = rhd_morton_compact(m);
    *y = rhd_morton_compact(m >> 1);
    *z = rhd_morton_compact(m >> 2);
}

/* Cell-centre coordinate of index i (before the cascade scale). */
RHD_HD static inline float rhd_occ_unit_centre(uint32_t i, int H) {
    return RHD_FSUB((float)(2 * i) / (float)(H - 1), 1.f);
}

/* Cascade of query q. */
RHD_HD static inline int rhd_occ_cascade(const rhd_occ_plan *p, int64_t q) {
    int c = 0;
    while (c + 1 < p->C && q >= p->q_begin[c + 1]) c++;
    return c;
}

/* The cell of query q of a partial update: the global index c*H^3 + Morton. */
RHD_HD static inline int32_t rhd_occ_select(const rhd_occ_plan *p, const int32_t *occ, int64_t q) {
    int64_t H3 = (int64_t)p->H * p->H * p->H;
    int c = rhd_occ_cascade(p, q);
    rhd_u32x4 r = rhd_rng_block(p->seed, p->stream, 2 * (uint64_t)q + 1);
    if (q - p->q_begin[c] < p->n_random) {
        uint32_t ix = (uint32_t)(((uint64_t)r.v[0] * (uint32_t)p->H) >> 32);
        uint32_t iy = (uint32_t)(((uint64_t)r.v[1] * (uint32_t)p->H) >> 32);
        uint32_t iz = (uint32_t)(((uint64_t)r.v[2] * (uint32_t)p->H) >> 32);
        return (int32_t)(c * H3 + rhd_morton3(ix, iy, iz));
    }
    int64_t k = (int64_t)(((uint64_t)r.v[0] * (uint64_t)p->occ_n[c]) >> 32);
    return occ[p->occ_begin[c] + k];
}

/* The jittered query point xyz[3] of query q at `cell` (q itself in a full update). */
RHD_HD static inline void rhd_occ_point(const rhd_occ_plan *p, int32_t cell, int64_t q, float *xyz) {
    int64_t H3 = (int64_t)p->H * p->H * p->H;
    int c = (int)(cell / H3);
    uint32_t id[3];
    rhd_morton3_inv((uint32_t)(cell - c * H3), &id[0], &id[1], &id[2]);
    rhd_u32x4 u = rhd_rng_block(p->seed, p->stream, 2 * (uint64_t)q);
    for (int a = 0; a < 3; a++) {
        float j = RHD_FMUL(RHD_FSUB(RHD_FMUL(rhd_u32_to_unit(u.v[a]), 2.f), 1.f), p->hgs[c]);
        xyz[a] = RHD_FADD(RHD_FMUL(rhd_occ_unit_centre(id[a], p->H), p->scale[c]), j);
    }
}

/* §3.4 step 4 for one cell. */
RHD_HD static inline float rhd_occ_ema(float grid, float sigma, float decay) {
    if (grid >= 0.f && sigma >= 0.f) return fmaxf(RHD_FMUL(grid, decay), sigma);
    return grid;
}

/* §3.3: does the camera (P, kx, ky) see the point X (margin m)? */
RHD_HD static inline int rhd_occ_seen(const float *P, const float *X, float kx, float ky, float m) {
    float e0 = RHD_FSUB(X[0], P[3]), e1 = RHD_FSUB(X[1], P[7]), e2 = RHD_FSUB(X[2], P[11]);
    float c[3];
    for (int k = 0; k < 3; k++)
        c[k] = RHD_FADD(RHD_FADD(RHD_FMUL(P[k], e0), RHD_FMUL(P[4 + k], e1)), RHD_FMUL(P[8 + k], e2));
    return c[2] > 0.f && fabsf(c[0]) < RHD_FADD(RHD_FMUL(kx, c[2]), m) && fabsf(c[1]) < RHD_FADD(RHD_FMUL(ky, c[2]), m);
}

/* One byte of the bitfield. */
RHD_HD static inline uint8_t rhd_occ_byte(const float *density, int64_t n, float thr) {
    uint8_t b = 0;
    for (int i = 0; i < 8; i++)
        if (density[8 * n + i] > thr) b |= (uint8_t)(1u << i);
    return b;
}

#ifdef __cplusplus
extern "C" {
#endif
rhd_occgrid_cfg rhd_occgrid_cfg_default(void);
/* 1 + ceil(log2(bound)), at least 1 (§3.1). */
int rhd_occgrid_cascades(float bound);
/* Allocate (ctx side) and reset. -1 with a message for a bad configuration (H not a power of two
 * in [2,1024]: Morton codes of a non-power-of-two grid overrun H^3; C not in [1, 8]; C*H^3 >= 2^31;
 * bound <= 0). */
int rhd_occgrid_init(rhd_ctx *ctx, rhd_occgrid *g, const rhd_occgrid_cfg *cfg, rhd_err *e);
void rhd_occgrid_free(rhd_ctx *ctx, rhd_occgrid *g);
/* reset_extra_state: zero the grid, bitfield, mean_density, iter_density, step counters,
 * mean_count and local_step. */
void rhd_occgrid_reset(rhd_ctx *ctx, rhd_occgrid *g);
/* §3.3, once per subject at the start of training: poses [n_poses][12] (host), 3x4 c2w. */
void rhd_occgrid_mark_untrained(rhd_ctx *ctx, rhd_occgrid *g, const float *poses, int n_poses, rhd_intrinsics intr);

/* Start an update: returns the number of queries. */
int64_t rhd_occgrid_begin_update(rhd_ctx *ctx, rhd_occgrid *g, uint64_t seed);
/* Queries q0 .. q0+n-1: xyz [n,3], cells [n] int32 (ctx side). */
void rhd_occgrid_queries(rhd_ctx *ctx, rhd_occgrid *g, float *xyz, int32_t *cells, int64_t q0, int64_t n);
/* EMA-max of the queried cells with their densities sigma [n] (ctx side). */
void rhd_occgrid_apply(rhd_ctx *ctx, rhd_occgrid *g, const float *sigma, const int32_t *cells, int64_t q0, int64_t n);
void rhd_occgrid_end_update(rhd_ctx *ctx, rhd_occgrid *g);

/* sigma[n] = density of the points xyz[n,3] (ctx side), times density_scale. */
typedef void (*rhd_density_fn)(rhd_ctx *ctx, float *sigma, const float *xyz, int64_t n, void *user);
/* One whole update over fn in chunks of at most `chunk` queries (buffers allocated here). */
void rhd_occgrid_update(rhd_ctx *ctx, rhd_occgrid *g, uint64_t seed, int64_t chunk, rhd_density_fn fn, void *user);

/* After each training march (§3.7): step_counter[local_step % 16] = (samples requested, rays),
 * local_step += 1. */
void rhd_occgrid_record_step(rhd_occgrid *g, int64_t samples_requested, int64_t n_rays);
/* Bitfield threshold of the last update: (float)min(mean_density, density_thresh). */
float rhd_occgrid_threshold(const rhd_occgrid *g);

#ifdef RHD_CUDA
void rhd_occgrid_mark_untrained_cuda(rhd_ctx *ctx, rhd_occgrid *g, const float *poses, int n_poses, float kx, float ky);
void rhd_occgrid_occupied_cuda(rhd_ctx *ctx, rhd_occgrid *g); /* fills occ and plan.occ_begin/occ_n */
void rhd_occgrid_winners_cuda(rhd_ctx *ctx, rhd_occgrid *g);  /* fills qcells and winner */
void rhd_occgrid_queries_cuda(rhd_ctx *ctx, rhd_occgrid *g, float *xyz, int32_t *cells, int64_t q0, int64_t n);
void rhd_occgrid_apply_cuda(rhd_ctx *ctx, rhd_occgrid *g, const float *sigma, const int32_t *cells, int64_t q0,
                            int64_t n);
double rhd_occgrid_mean_cuda(rhd_ctx *ctx, rhd_occgrid *g);
void rhd_occgrid_bitfield_cuda(rhd_ctx *ctx, rhd_occgrid *g, float thr);
#endif
#ifdef __cplusplus
}
#endif
#endif
