/* kernels/occgrid.c: CPU reference of the occupancy grid (contract in occgrid.h), the host-side
 * bookkeeping shared by both backends, and the backend dispatch. */
#include "kernels/occgrid.h"
#include "common/err.h"
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define SUM_CHUNK 256

rhd_occgrid_cfg rhd_occgrid_cfg_default(void) {
    rhd_occgrid_cfg c = {256, 1, 1.f, 0.95f, 10.f, 16};
    return c;
}

int rhd_occgrid_cascades(float bound) {
    int c = 1 + (int)ceil(log2((double)bound));
    return c < 1 ? 1 : c;
}

static int64_t sums_size(int64_t n) {
    int64_t total = 0;
    while (n > 1) {
        n = (n + SUM_CHUNK - 1) / SUM_CHUNK;
        total += n;
    }
    return total + 1;
}

int rhd_occgrid_init(rhd_ctx *ctx, rhd_occgrid *g, const rhd_occgrid_cfg *cfg, rhd_err *e) {
    memset(g, 0, sizeof *g);
    if (cfg->H < 2 || cfg->H > 1024 || (cfg->H & (cfg->H - 1)))
        return rhd_errf(e, "occupancy grid: grid size %d, expected a power of two in 2..1024 (Morton addressing)",
                        cfg->H);
    if (cfg->C < 1 || cfg->C > RHD_OCC_MAX_CASCADES)
        return rhd_errf(e, "occupancy grid: %d cascades, expected 1..%d", cfg->C, RHD_OCC_MAX_CASCADES);
    int64_t H3 = (int64_t)cfg->H * cfg->H * cfg->H;
    if ((int64_t)cfg->C * H3 >= ((int64_t)1 << 31))
        return rhd_errf(e, "occupancy grid: %d cascades of %d^3 cells, expected fewer than 2^31 cells", cfg->C, cfg->H);
    if (!(cfg->bound > 0)) return rhd_errf(e, "occupancy grid: bound %g, expected > 0", (double)cfg->bound);
    if (!(cfg->decay >= 0) || cfg->full_updates < 0)
        return rhd_errf(e, "occupancy grid: decay %g, full_updates %d, expected >= 0", (double)cfg->decay, cfg->full_updates);
    g->cfg = *cfg;
    g->n_cells = cfg->C * H3;
    g->density = rhd_buf_alloc(ctx, sizeof(float) * (size_t)g->n_cells);
    g->bitfield = rhd_buf_alloc(ctx, (size_t)g->n_cells / 8);
    g->occ = rhd_buf_alloc(ctx, sizeof(int32_t) * (size_t)g->n_cells);
    g->winner = rhd_buf_alloc(ctx, sizeof(int32_t) * (size_t)g->n_cells);
    g->qcells = rhd_buf_alloc(ctx, sizeof(int32_t) * (size_t)(g->n_cells / 2));
    g->sums = rhd_buf_alloc(ctx, sizeof(double) * (size_t)sums_size(g->n_cells));
    rhd_occgrid_reset(ctx, g);
    return 0;
}

void rhd_occgrid_free(rhd_ctx *ctx, rhd_occgrid *g) {
    rhd_buf_free(ctx, g->density);
    rhd_buf_free(ctx, g->bitfield);
    rhd_buf_free(ctx, g->occ);
    rhd_buf_free(ctx, g->winner);
    rhd_buf_free(ctx, g->qcells);
    rhd_buf_free(ctx, g->sums);
    memset(g, 0, sizeof *g);
}

void rhd_occgrid_reset(rhd_ctx *ctx, rhd_occgrid *g) {
    rhd_buf_zero(ctx, g->density, sizeof(float) * (size_t)g->n_cells);
    rhd_buf_zero(ctx, g->bitfield, (size_t)g->n_cells / 8);
    g->mean_density = 0;
    g->iter_density = 0;
    memset(g->step_counter, 0, sizeof g->step_counter);
    g->local_step = 0;
    g->mean_count = 0;
    g->updating = 0;
}

/* Cascade constants in double, as the original computes them in Python. */
static void cascade_consts(const rhd_occgrid_cfg *cfg, int c, double *b, double *hgs) {
    double bc = ldexp(1.0, c);
    if (bc > cfg->bound) bc = cfg->bound;
    *b = bc;
    *hgs = bc / cfg->H;
}

void rhd_occgrid_mark_untrained(rhd_ctx *ctx, rhd_occgrid *g, const float *poses, int n_poses, rhd_intrinsics intr) {
    RHD_ASSERT(n_poses >= 0 && !g->updating);
    float kx = (float)((double)intr.cx / intr.fx), ky = (float)((double)intr.cy / intr.fy);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_occgrid_mark_untrained_cuda(ctx, g, poses, n_poses, kx, ky);
        return;
    }
#endif
    int H = g->cfg.H;
    int64_t H3 = (int64_t)H * H * H;
    for (int c = 0; c < g->cfg.C; c++) {
        double b, hgs;
        cascade_consts(&g->cfg, c, &b, &hgs);
        float s = (float)(b - hgs), m = (float)(2 * hgs);
        float *dens = g->density + c * H3;
#pragma omp parallel for schedule(static)
        for (int64_t cell = 0; cell < H3; cell++) {
            uint32_t id[3];
            rhd_morton3_inv((uint32_t)cell, &id[0], &id[1], &id[2]);
            float X[3];
            for (int a = 0; a < 3; a++) X[a] = RHD_FMUL(rhd_occ_unit_centre(id[a], H), s);
            int seen = 0;
            for (int p = 0; p < n_poses && !seen; p++) seen = rhd_occ_seen(poses + 12 * p, X, kx, ky, m);
            if (!seen) dens[cell] = -1.f;
        }
    }
}

/* ---- one update ---- */

/* CPU: the occupied cells of every cascade in increasing order (counted per fixed block, then
 * written at the block's offset, so the order does not depend on the thread count). */
static void occupied_cpu(rhd_occgrid *g) {
    int64_t n = g->n_cells, H3 = n / g->cfg.C;
    const int64_t B = 1 << 16;
    int64_t nb = (n + B - 1) / B;
    int64_t *cnt = rhd_xcalloc((size_t)nb + 1, sizeof(int64_t));
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        int64_t k = 0, end = (b + 1) * B < n ? (b + 1) * B : n;
        for (int64_t i = b * B; i < end; i++) k += g->density[i] > 0.f;
        cnt[b + 1] = k;
    }
    for (int64_t b = 0; b < nb; b++) cnt[b + 1] += cnt[b];
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        int64_t k = cnt[b], end = (b + 1) * B < n ? (b + 1) * B : n;
        for (int64_t i = b * B; i < end; i++)
            if (g->density[i] > 0.f) g->occ[k++] = (int32_t)i;
    }
    /* cascade boundaries are multiples of H3; count below each boundary */
    for (int c = 0; c < g->cfg.C; c++) {
        int64_t lo = 0, hi = cnt[nb];
        /* first position in occ with index >= c*H3 (occ is sorted) */
        while (lo < hi) {
            int64_t mid = (lo + hi) / 2;
            if (g->occ[mid] < c * H3) lo = mid + 1;
            else hi = mid;
        }
        g->plan.occ_begin[c] = lo;
    }
    for (int c = 0; c < g->cfg.C; c++)
        g->plan.occ_n[c] = (c + 1 < g->cfg.C ? g->plan.occ_begin[c + 1] : cnt[nb]) - g->plan.occ_begin[c];
    free(cnt);
}

/* CPU: the cell of every query, then winner[cell] = the highest query index that hits it. Each
 * thread scans all queries in order and keeps the cells of its own index range, so no atomics
 * are needed and the result does not depend on the thread count. */
static void winners_cpu(rhd_occgrid *g) {
    const rhd_occ_plan *p = &g->plan;
    int64_t nq = g->n_queries, n = g->n_cells;
#pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < nq; q++) g->qcells[q] = rhd_occ_select(p, g->occ, q);
    memset(g->winner, 0xff, sizeof(int32_t) * (size_t)n);
#pragma omp parallel
    {
        int t = 0, T = 1;
#ifdef _OPENMP
        t = omp_get_thread_num(), T = omp_get_num_threads();
#endif
        int64_t lo = n * t / T, hi = n * (t + 1) / T;
        for (int64_t q = 0; q < nq; q++) {
            int32_t c = g->qcells[q];
            if (c >= lo && c < hi) g->winner[c] = (int32_t)q;
        }
    }
}

int64_t rhd_occgrid_begin_update(rhd_ctx *ctx, rhd_occgrid *g, uint64_t seed) {
    RHD_ASSERT(!g->updating);
    const rhd_occgrid_cfg *cfg = &g->cfg;
    rhd_occ_plan *p = &g->plan;
    memset(p, 0, sizeof *p);
    int64_t H3 = (int64_t)cfg->H * cfg->H * cfg->H;
    p->H = cfg->H, p->C = cfg->C;
    p->full = g->iter_density < cfg->full_updates;
    p->seed = seed;
    p->stream = RHD_STREAM(RHD_STREAM_GRID, (uint32_t)g->iter_density);
    p->n_random = H3 / 4;
    for (int c = 0; c < cfg->C; c++) {
        double b, hgs;
        cascade_consts(cfg, c, &b, &hgs);
        p->scale[c] = (float)(b - hgs);
        p->hgs[c] = (float)hgs;
    }
    if (p->full) {
        for (int c = 0; c <= cfg->C; c++) p->q_begin[c] = c * H3;
    } else {
#ifdef RHD_CUDA
        if (ctx->backend == RHD_BACKEND_CUDA) rhd_occgrid_occupied_cuda(ctx, g);
        else
#endif
            occupied_cpu(g);
        p->q_begin[0] = 0;
        for (int c = 0; c < cfg->C; c++) p->q_begin[c + 1] = p->q_begin[c] + p->n_random + (p->occ_n[c] > 0 ? p->n_random : 0);
    }
    g->n_queries = p->q_begin[cfg->C];
    RHD_ASSERT(g->n_queries < ((int64_t)1 << 31) && (p->full || g->n_queries <= g->n_cells / 2));
    if (!p->full) {
#ifdef RHD_CUDA
        if (ctx->backend == RHD_BACKEND_CUDA) rhd_occgrid_winners_cuda(ctx, g);
        else
#endif
            winners_cpu(g);
    }
    g->updating = 1;
    return g->n_queries;
}

void rhd_occgrid_queries(rhd_ctx *ctx, rhd_occgrid *g, float *xyz, int32_t *cells, int64_t q0, int64_t n) {
    RHD_ASSERT(g->updating && q0 >= 0 && n >= 0 && q0 + n <= g->n_queries);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_occgrid_queries_cuda(ctx, g, xyz, cells, q0, n);
        return;
    }
#endif
    const rhd_occ_plan *p = &g->plan;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        int32_t cell = p->full ? (int32_t)(q0 + i) : g->qcells[q0 + i];
        rhd_occ_point(p, cell, q0 + i, xyz + 3 * i);
        if (cells) cells[i] = cell;
    }
}

void rhd_occgrid_apply(rhd_ctx *ctx, rhd_occgrid *g, const float *sigma, const int32_t *cells, int64_t q0, int64_t n) {
    RHD_ASSERT(g->updating && q0 >= 0 && n >= 0 && q0 + n <= g->n_queries);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_occgrid_apply_cuda(ctx, g, sigma, cells, q0, n);
        return;
    }
#endif
    int full = g->plan.full;
    float decay = g->cfg.decay;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        int32_t cell = cells[i];
        RHD_ASSERT(cell >= 0 && cell < g->n_cells);
        if (!full && g->winner[cell] != (int32_t)(q0 + i)) continue;
        g->density[cell] = rhd_occ_ema(g->density[cell], sigma[i], decay);
    }
}

/* CPU: mean of max(density, 0) in the fixed chunk order of occgrid.h. */
static double mean_cpu(rhd_occgrid *g) {
    int64_t n = g->n_cells;
    int64_t m = (n + SUM_CHUNK - 1) / SUM_CHUNK;
    double *lvl = g->sums;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < m; k++) {
        double s = 0;
        int64_t end = (k + 1) * SUM_CHUNK < n ? (k + 1) * SUM_CHUNK : n;
        for (int64_t i = k * SUM_CHUNK; i < end; i++) s += g->density[i] > 0.f ? (double)g->density[i] : 0.0;
        lvl[k] = s;
    }
    while (m > 1) {
        int64_t m2 = (m + SUM_CHUNK - 1) / SUM_CHUNK;
        double *next = lvl + m;
        for (int64_t k = 0; k < m2; k++) {
            double s = 0;
            int64_t end = (k + 1) * SUM_CHUNK < m ? (k + 1) * SUM_CHUNK : m;
            for (int64_t i = k * SUM_CHUNK; i < end; i++) s += lvl[i];
            next[k] = s;
        }
        lvl = next, m = m2;
    }
    return lvl[0] / (double)n;
}

float rhd_occgrid_threshold(const rhd_occgrid *g) {
    double t = g->mean_density < g->cfg.density_thresh ? g->mean_density : g->cfg.density_thresh;
    return (float)t;
}

void rhd_occgrid_end_update(rhd_ctx *ctx, rhd_occgrid *g) {
    RHD_ASSERT(g->updating);
    g->updating = 0;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) g->mean_density = rhd_occgrid_mean_cuda(ctx, g);
    else
#endif
        g->mean_density = mean_cpu(g);
    g->iter_density += 1;
    float thr = rhd_occgrid_threshold(g);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) rhd_occgrid_bitfield_cuda(ctx, g, thr);
    else
#endif
    {
        int64_t nb = g->n_cells / 8;
#pragma omp parallel for schedule(static)
        for (int64_t b = 0; b < nb; b++) g->bitfield[b] = rhd_occ_byte(g->density, b, thr);
    }
    if (g->local_step > 0) {
        int64_t n = g->local_step < 16 ? g->local_step : 16;
        double s = 0;
        for (int64_t k = 0; k < n; k++) s += (double)g->step_counter[k][0];
        g->mean_count = (int64_t)(s / (double)n);
        g->local_step = 0;
    }
}

void rhd_occgrid_update(rhd_ctx *ctx, rhd_occgrid *g, uint64_t seed, int64_t chunk, rhd_density_fn fn, void *user) {
    RHD_ASSERT(chunk > 0);
    int64_t n = rhd_occgrid_begin_update(ctx, g, seed);
    int64_t m = n < chunk ? n : chunk;
    float *xyz = rhd_buf_alloc(ctx, sizeof(float) * 3 * (size_t)m);
    float *sigma = rhd_buf_alloc(ctx, sizeof(float) * (size_t)m);
    int32_t *cells = rhd_buf_alloc(ctx, sizeof(int32_t) * (size_t)m);
    for (int64_t q0 = 0; q0 < n; q0 += chunk) {
        int64_t k = n - q0 < chunk ? n - q0 : chunk;
        rhd_occgrid_queries(ctx, g, xyz, cells, q0, k);
        fn(ctx, sigma, xyz, k, user);
        rhd_occgrid_apply(ctx, g, sigma, cells, q0, k);
    }
    rhd_occgrid_end_update(ctx, g);
    rhd_buf_free(ctx, xyz);
    rhd_buf_free(ctx, sigma);
    rhd_buf_free(ctx, cells);
}

void rhd_occgrid_record_step(rhd_occgrid *g, int64_t samples_requested, int64_t n_rays) {
    int64_t k = g->local_step % 16;
    g->step_counter[k][0] = samples_requested;
    g->step_counter[k][1] = n_rays;
    g->local_step += 1;
}
