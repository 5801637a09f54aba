/* kernels/occgrid.cu: CUDA occupancy grid (contract in occgrid.h). The host-side bookkeeping
 * (plans, counters, thresholds) is in occgrid.c; these launchers do the per-cell work with the
 * same per-element helpers as the CPU reference. Deterministic: the occupied list comes from an
 * exclusive scan (cub), the winners from an integer atomicMax, and the mean from the fixed
 * chunk order of occgrid.h, so the results are bit-identical to the CPU. */
#include "kernels/occgrid.h"
#include "common/cuda_check.h"
#include <cub/cub.cuh>

#define SUM_CHUNK 256

typedef struct {
    float s[RHD_OCC_MAX_CASCADES], m[RHD_OCC_MAX_CASCADES]; /* per cascade: centre scale, margin */
} cascade_consts;

static __global__ void mark_kernel(float *density, int H, int64_t H3, int64_t n_cells, cascade_consts k,
                                   const float *poses, int n_poses, float kx, float ky) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_cells; i += (int64_t)gridDim.x * blockDim.x) {
        int c = (int)(i / H3);
        uint32_t id[3];
        rhd_morton3_inv((uint32_t)(i - c * H3), &id[0], &id[1], &id[2]);
        float X[3];
        for (int a = 0; a < 3; a++) X[a] = RHD_FMUL(rhd_occ_unit_centre(id[a], H), k.s[c]);
        int seen = 0;
        for (int p = 0; p < n_poses && !seen; p++) seen = rhd_occ_seen(poses + 12 * p, X, kx, ky, k.m[c]);
        if (!seen) density[i] = -1.f;
    }
}

static __global__ void occ_flags_kernel(int32_t *flags, const float *density, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        flags[i] = density[i] > 0.f;
}

static __global__ void occ_scatter_kernel(int32_t *occ, const int32_t *pos, const float *density, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        if (density[i] > 0.f) occ[pos[i]] = (int32_t)i;
}

static __global__ void winners_kernel(int32_t *winner, int32_t *qcells, const int32_t *occ, rhd_occ_plan p,
                                      int64_t nq) {
    for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; q < nq; q += (int64_t)gridDim.x * blockDim.x) {
        int32_t cell = rhd_occ_select(&p, occ, q);
        qcells[q] = cell;
        atomicMax(&winner[cell], (int)q);
    }
}

static __global__ void queries_kernel(float *xyz, int32_t *cells, const int32_t *qcells, rhd_occ_plan p, int64_t q0,
                                      int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int32_t cell = p.full ? (int32_t)(q0 + i) : qcells[q0 + i];
        rhd_occ_point(&p, cell, q0 + i, xyz + 3 * i);
        if (cells) cells[i] = cell;
    }
}

static __global__ void apply_kernel(float *density, const int32_t *winner, const float *sigma, const int32_t *cells,
                                    int64_t q0, int64_t n, int full, float decay) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int32_t cell = cells[i];
        if (!full && winner[cell] != (int32_t)(q0 + i)) continue;
        density[cell] = rhd_occ_ema(density[cell], sigma[i], decay);
    }
}

/* One level of the mean: out[k] = sum of in[k*256 .. k*256+255] left to right (level 0 reads
 * max(density, 0)). */
static __global__ void sum_level0_kernel(double *out, const float *density, int64_t n, int64_t m) {
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < m; k += (int64_t)gridDim.x * blockDim.x) {
        double s = 0;
        int64_t end = (k + 1) * SUM_CHUNK < n ? (k + 1) * SUM_CHUNK : n;
        for (int64_t i = k * SUM_CHUNK; i < end; i++) s += density[i] > 0.f ? (double)density[i] : 0.0;
        out[k] = s;
    }
}

static __global__ void sum_level_kernel(double *out, const double *in, int64_t n, int64_t m) {
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < m; k += (int64_t)gridDim.x * blockDim.x) {
        double s = 0;
        int64_t end = (k + 1) * SUM_CHUNK < n ? (k + 1) * SUM_CHUNK : n;
        for (int64_t i = k * SUM_CHUNK; i < end; i++) s += in[i];
        out[k] = s;
    }
}

static __global__ void bitfield_kernel(uint8_t *bits, const float *density, int64_t nb, float thr) {
    for (int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; b < nb; b += (int64_t)gridDim.x * blockDim.x)
        bits[b] = rhd_occ_byte(density, b, thr);
}

// launchers

extern "C" void rhd_occgrid_mark_untrained_cuda(rhd_ctx *ctx, rhd_occgrid *g, const float *poses, int n_poses,
                                                float kx, float ky) {
    cudaStream_t st = RHD_CUDA_STREAM(ctx);
    float *dposes = NULL;
    if (n_poses > 0) {
        dposes = (float *)rhd_ctx_workspace(ctx, sizeof(float) * 12 * (size_t)n_poses);
        CUDA_CHECK(cudaMemcpyAsync(dposes, poses, sizeof(float) * 12 * (size_t)n_poses, cudaMemcpyHostToDevice, st));
    }
    cascade_consts k;
    memset(&k, 0, sizeof k);
    for (int c = 0; c < g->cfg.C; c++) {
        double b = ldexp(1.0, c);
        if (b > g->cfg.bound) b = g->cfg.bound;
        double hgs = b / g->cfg.H;
        k.s[c] = (float)(b - hgs), k.m[c] = (float)(2 * hgs);
    }
    int64_t H3 = (int64_t)g->cfg.H * g->cfg.H * g->cfg.H;
    mark_kernel<<<rhd_grid1d(g->n_cells, 256), 256, 0, st>>>(g->density, g->cfg.H, H3, g->n_cells, k, dposes, n_poses,
                                                              kx, ky);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaStreamSynchronize(st)); /* the poses live in the shared workspace */
}

extern "C" void rhd_occgrid_occupied_cuda(rhd_ctx *ctx, rhd_occgrid *g) {
    cudaStream_t st = RHD_CUDA_STREAM(ctx);
    int64_t n = g->n_cells, H3 = n / g->cfg.C;
    int32_t *flags = g->occ, *pos = g->winner; /* both are rewritten before they are read again */
    occ_flags_kernel<<<rhd_grid1d(n, 256), 256, 0, st>>>(flags, g->density, n);
    CUDA_CHECK(cudaGetLastError());
    size_t tb = 0;
    CUDA_CHECK(cub::DeviceScan::ExclusiveSum(NULL, tb, flags, pos, (int)n, st));
    void *tmp = rhd_ctx_workspace(ctx, tb);
    CUDA_CHECK(cub::DeviceScan::ExclusiveSum(tmp, tb, flags, pos, (int)n, st));
    /* counts below each cascade boundary, and the total */
    int32_t bound_pos[RHD_OCC_MAX_CASCADES + 1], last_flag = 0;
    for (int c = 0; c < g->cfg.C; c++)
        CUDA_CHECK(cudaMemcpyAsync(&bound_pos[c], pos + c * H3, sizeof(int32_t), cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaMemcpyAsync(&bound_pos[g->cfg.C], pos + n - 1, sizeof(int32_t), cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaMemcpyAsync(&last_flag, flags + n - 1, sizeof(int32_t), cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    bound_pos[g->cfg.C] += last_flag;
    occ_scatter_kernel<<<rhd_grid1d(n, 256), 256, 0, st>>>(g->occ, pos, g->density, n);
    CUDA_CHECK(cudaGetLastError());
    for (int c = 0; c < g->cfg.C; c++) {
        g->plan.occ_begin[c] = bound_pos[c];
        g->plan.occ_n[c] = bound_pos[c + 1] - bound_pos[c];
    }
}

extern "C" void rhd_occgrid_winners_cuda(rhd_ctx *ctx, rhd_occgrid *g) {
    cudaStream_t st = RHD_CUDA_STREAM(ctx);
    CUDA_CHECK(cudaMemsetAsync(g->winner, 0xff, sizeof(int32_t) * (size_t)g->n_cells, st));
    winners_kernel<<<rhd_grid1d(g->n_queries, 256), 256, 0, st>>>(g->winner, g->qcells, g->occ, g->plan,
                                                                   g->n_queries);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_occgrid_queries_cuda(rhd_ctx *ctx, rhd_occgrid *g, float *xyz, int32_t *cells, int64_t q0, int64_t n) {
    if (n == 0) return;
    queries_kernel<<<rhd_grid1d(n, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(xyz, cells, g->qcells, g->plan, q0, n);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_occgrid_apply_cuda(rhd_ctx *ctx, rhd_occgrid *g, const float *sigma, const int32_t *cells,
                                       int64_t q0, int64_t n) {
    if (n == 0) return;
    apply_kernel<<<rhd_grid1d(n, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(g->density, g->winner, sigma, cells, q0, n,
                                                                       g->plan.full, g->cfg.decay);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" double rhd_occgrid_mean_cuda(rhd_ctx *ctx, rhd_occgrid *g) {
    cudaStream_t st = RHD_CUDA_STREAM(ctx);
    int64_t n = g->n_cells, m = (n + SUM_CHUNK - 1) / SUM_CHUNK;
    double *lvl = g->sums;
    sum_level0_kernel<<<rhd_grid1d(m, 128), 128, 0, st>>>(lvl, g->density, n, m);
    CUDA_CHECK(cudaGetLastError());
    while (m > 1) {
        int64_t m2 = (m + SUM_CHUNK - 1) / SUM_CHUNK;
        sum_level_kernel<<<rhd_grid1d(m2, 128), 128, 0, st>>>(lvl + m, lvl, m, m2);
        CUDA_CHECK(cudaGetLastError());
        lvl += m, m = m2;
    }
    double s = 0;
    CUDA_CHECK(cudaMemcpyAsync(&s, lvl, sizeof(double), cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    return s / (double)n;
}

extern "C" void rhd_occgrid_bitfield_cuda(rhd_ctx *ctx, rhd_occgrid *g, float thr) {
    int64_t nb = g->n_cells / 8;
    bitfield_kernel<<<rhd_grid1d(nb, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(g->bitfield, g->density, nb, thr);
    CUDA_CHECK(cudaGetLastError());
}
