/* kernels/norm.cu: group and layer normalisation on CUDA (see norm.h for the contract).
 *
 * Sums run in double per thread and are combined in a fixed order (warp butterflies and fixed
 * trees), never with atomics, so every result is reproducible run to run. GroupNorm rows (one
 * group of one sample, contiguous in NCHW) are split over several blocks for the statistics so
 * that a UNet level with N*G = 32 rows still fills the device. */
#include "kernels/norm.h"
#include "common/cuda_check.h"

#define GN_CHUNK 8192 /* values per block in the GroupNorm statistics pass */

/* Sum of a double over a warp, the same value in every lane (butterfly, fixed order). */
static __device__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sums of a and b over a block of up to 1024 threads (a multiple of 32); the result is valid in
 * thread 0. */
static __device__ void block_sum2(double &a, double &b) {
    __shared__ double sa[32], sb[32];
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    a = warp_sum(a), b = warp_sum(b);
    if (lane == 0) sa[wid] = a, sb[wid] = b;
    __syncthreads();
    if (wid == 0) {
        a = lane < nw ? sa[lane] : 0.0, b = lane < nw ? sb[lane] : 0.0;
        a = warp_sum(a), b = warp_sum(b);
    }
}

// GroupNorm

/* part[(row*nchunk + chunk)*2 + {0,1}] = sum, sum of squares of one chunk of one row.
 * grid (rows, nchunk) */
static __global__ void gn_stats_partial_kernel(double *part, const float *x, int64_t L, int nchunk) {
    int64_t row = blockIdx.x;
    int ch = blockIdx.y;
    int64_t beg = (int64_t)ch * GN_CHUNK, end = beg + GN_CHUNK < L ? beg + GN_CHUNK : L;
    const float *xr = x + row * L;
    double s = 0, s2 = 0;
    for (int64_t i = beg + threadIdx.x; i < end; i += blockDim.x) {
        double v = xr[i];
        s += v, s2 += v * v;
    }
    block_sum2(s, s2);
    if (threadIdx.x == 0) part[(row * nchunk + ch) * 2] = s, part[(row * nchunk + ch) * 2 + 1] = s2;
}

static __global__ void gn_stats_final_kernel(float *mean, float *rstd, const double *part, int64_t rows, int nchunk,
                                             int64_t L, float eps) {
    int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (r >= rows) return;
    double s = 0, s2 = 0;
    for (int k = 0; k < nchunk; k++) s += part[(r * nchunk + k) * 2], s2 += part[(r * nchunk + k) * 2 + 1];
    double m = s / L, var = s2 / L - m * m;
    if (var < 0) var = 0;
    mean[r] = (float)m;
    rstd[r] = (float)(1.0 / sqrt(var + (double)eps));
}

static __global__ void gn_apply_kernel(float *y, const float *x, const float *mean, const float *rstd,
                                       const float *gamma, const float *beta, int C, int64_t HW, int Cg, int64_t total) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t nc = i / HW;
        int c = (int)(nc % C);
        int64_t r = (nc / C) * (C / Cg) + c / Cg;
        float a = gamma ? rstd[r] * gamma[c] : rstd[r], b = beta ? beta[c] : 0.0f;
        y[i] = (x[i] - mean[r]) * a + b;
    }
}

/* sums[nc*2 + {0,1}] = sum dy, sum dy*x over the HW positions of (n, c); one block each */
static __global__ void gn_bwd_chan_kernel(double *sums, const float *dy, const float *x, int64_t HW) {
    int64_t nc = blockIdx.x;
    const float *d = dy + nc * HW, *xc = x + nc * HW;
    double s = 0, sx = 0;
    for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) s += d[i], sx += (double)d[i] * xc[i];
    block_sum2(s, sx);
    if (threadIdx.x == 0) sums[nc * 2] = s, sums[nc * 2 + 1] = sx;
}

/* Per group row: coef[r*2] = -rstd*mean(g), coef[r*2+1] = -rstd^2*mean(g*xhat), g = dy*gamma */
static __global__ void gn_bwd_rows_kernel(float *coef, const double *sums, const float *mean, const float *rstd,
                                          const float *gamma, int64_t rows, int C, int G, int64_t HW) {
    int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (r >= rows) return;
    int Cg = C / G;
    int64_t n = r / G, c0 = (r % G) * Cg;
    double m = mean[r], rs = rstd[r], A = 0, B = 0, L = (double)Cg * HW;
    for (int k = 0; k < Cg; k++) {
        double ga = gamma ? gamma[c0 + k] : 1.0;
        const double *sc = sums + 2 * (n * C + c0 + k);
        A += ga * sc[0];
        B += ga * (sc[1] - m * sc[0]) * rs;
    }
    coef[r * 2] = (float)(-rs * A / L);
    coef[r * 2 + 1] = (float)(-rs * rs * B / L);
}

static __global__ void gn_bwd_dx_kernel(float *dx, const float *dy, const float *x, const float *mean,
                                        const float *rstd, const float *gamma, const float *coef, int C, int64_t HW,
                                        int Cg, int64_t total) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t nc = i / HW;
        int c = (int)(nc % C);
        int64_t r = (nc / C) * (C / Cg) + c / Cg;
        float k1 = gamma ? rstd[r] * gamma[c] : rstd[r];
        dx[i] = k1 * dy[i] + coef[r * 2 + 1] * (x[i] - mean[r]) + coef[r * 2];
    }
}

static __global__ void gn_bwd_param_kernel(float *dgamma, float *dbeta, const double *sums, const float *mean,
                                           const float *rstd, int N, int C, int G) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    int Cg = C / G;
    double sg = 0, sb = 0;
    for (int n = 0; n < N; n++) {
        int64_t r = (int64_t)n * G + c / Cg;
        const double *sc = sums + 2 * ((int64_t)n * C + c);
        sg += (sc[1] - (double)mean[r] * sc[0]) * rstd[r];
        sb += sc[0];
    }
    if (dgamma) dgamma[c] += (float)sg;
    if (dbeta) dbeta[c] += (float)sb;
}

// LayerNorm: one warp per row

static __global__ void ln_forward_kernel(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                                         const float *beta, int64_t N, int D, float eps) {
    int64_t n = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (n >= N) return;
    const float *xr = x + n * D;
    double s = 0, s2 = 0;
    for (int d = lane; d < D; d += 32) {
        double v = xr[d];
        s += v, s2 += v * v;
    }
    s = warp_sum(s), s2 = warp_sum(s2);
    double md = s / D, var = s2 / D - md * md;
    if (var < 0) var = 0;
    float m = (float)md, rs = (float)(1.0 / sqrt(var + (double)eps));
    if (lane == 0) {
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = rs;
    }
    float *yr = y + n * D;
    for (int d = lane; d < D; d += 32) yr[d] = (xr[d] - m) * rs * (gamma ? gamma[d] : 1.0f) + (beta ? beta[d] : 0.0f);
}

static __global__ void ln_backward_dx_kernel(float *dx, const float *dy, const float *x, const float *mean,
                                             const float *rstd, const float *gamma, int64_t N, int D) {
    int64_t n = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (n >= N) return;
    const float *dyr = dy + n * D, *xr = x + n * D;
    float m = mean[n], rs = rstd[n];
    double A = 0, B = 0;
    for (int d = lane; d < D; d += 32) {
        double g = (double)dyr[d] * (gamma ? gamma[d] : 1.0f);
        A += g, B += g * ((xr[d] - m) * rs);
    }
    A = warp_sum(A), B = warp_sum(B);
    float a = (float)(A / D), b = (float)(B / D);
    float *dxr = dx + n * D;
    for (int d = lane; d < D; d += 32) {
        float g = dyr[d] * (gamma ? gamma[d] : 1.0f), xhat = (xr[d] - m) * rs;
        dxr[d] = rs * (g - a - xhat * b);
    }
}

/* dgamma[d] += sum_n dy*xhat, dbeta[d] += sum_n dy; a block owns 32 columns, 32 x 32 threads */
static __global__ void ln_backward_param_kernel(float *dgamma, float *dbeta, const float *dy, const float *x,
                                                const float *mean, const float *rstd, int64_t N, int D) {
    __shared__ double pg[32][33], pb[32][33];
    int d = blockIdx.x * 32 + threadIdx.x;
    double sg = 0, sb = 0;
    if (d < D)
        for (int64_t n = threadIdx.y; n < N; n += blockDim.y) {
            float g = dy[n * D + d];
            sg += (double)g * ((x[n * D + d] - mean[n]) * rstd[n]);
            sb += g;
        }
    pg[threadIdx.y][threadIdx.x] = sg, pb[threadIdx.y][threadIdx.x] = sb;
    __syncthreads();
    if (threadIdx.y == 0 && d < D) {
        double tg = 0, tb = 0;
        for (int k = 0; k < (int)blockDim.y; k++) tg += pg[k][threadIdx.x], tb += pb[k][threadIdx.x];
        if (dgamma) dgamma[d] += (float)tg;
        if (dbeta) dbeta[d] += (float)tb;
    }
}

// launchers

extern "C" void rhd_groupnorm_forward_cuda(rhd_ctx *ctx, float *y, float *mean, float *rstd, const float *x,
                                           const float *gamma, const float *beta, int N, int C, int64_t HW, int G,
                                           float eps) {
    const int Cg = C / G;
    const int64_t L = Cg * HW, rows = (int64_t)N * G, total = (int64_t)N * C * HW;
    const int nchunk = (int)((L + GN_CHUNK - 1) / GN_CHUNK);
    size_t part_bytes = sizeof(double) * 2 * rows * nchunk, stat_bytes = (mean && rstd) ? 0 : sizeof(float) * 2 * rows;
    char *ws = (char *)rhd_ctx_workspace(ctx, part_bytes + stat_bytes);
    double *part = (double *)ws;
    float *m = mean ? mean : (float *)(ws + part_bytes), *rs = rstd ? rstd : (float *)(ws + part_bytes) + rows;
    cudaStream_t st = RHD_CUDA_STREAM(ctx);
    RHD_ASSERT(nchunk <= 65535 && rows <= 0x7fffffffL);
    gn_stats_partial_kernel<<<dim3((unsigned)rows, nchunk), 256, 0, st>>>(part, x, L, nchunk);
    gn_stats_final_kernel<<<(unsigned)((rows + 127) / 128), 128, 0, st>>>(m, rs, part, rows, nchunk, L, eps);
    gn_apply_kernel<<<rhd_grid1d(total, 256), 256, 0, st>>>(y, x, m, rs, gamma, beta, C, HW, Cg, total);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_groupnorm_backward_cuda(rhd_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy,
                                            const float *x, const float *mean, const float *rstd, const float *gamma,
                                            int N, int C, int64_t HW, int G) {
    const int Cg = C / G;
    const int64_t NC = (int64_t)N * C, rows = (int64_t)N * G, total = NC * HW;
    size_t sums_bytes = sizeof(double) * 2 * NC;
    char *ws = (char *)rhd_ctx_workspace(ctx, sums_bytes + sizeof(float) * 2 * rows);
    double *sums = (double *)ws;
    float *coef = (float *)(ws + sums_bytes);
    cudaStream_t st = RHD_CUDA_STREAM(ctx);
    RHD_ASSERT(NC <= 0x7fffffffL);
    gn_bwd_chan_kernel<<<(unsigned)NC, 256, 0, st>>>(sums, dy, x, HW);
    if (dx) {
        gn_bwd_rows_kernel<<<(unsigned)((rows + 127) / 128), 128, 0, st>>>(coef, sums, mean, rstd, gamma, rows, C, G, HW);
        gn_bwd_dx_kernel<<<rhd_grid1d(total, 256), 256, 0, st>>>(dx, dy, x, mean, rstd, gamma, coef, C, HW, Cg, total);
    }
    if (dgamma || dbeta) gn_bwd_param_kernel<<<(C + 127) / 128, 128, 0, st>>>(dgamma, dbeta, sums, mean, rstd, N, C, G);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_layernorm_forward_cuda(rhd_ctx *ctx, float *y, float *mean, float *rstd, const float *x,
                                           const float *gamma, const float *beta, int64_t N, int D, float eps) {
    ln_forward_kernel<<<(unsigned)((N + 7) / 8), 256, 0, RHD_CUDA_STREAM(ctx)>>>(y, mean, rstd, x, gamma, beta, N, D, eps);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_layernorm_backward_cuda(rhd_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy,
                                            const float *x, const float *mean, const float *rstd, const float *gamma,
                                            int64_t N, int D) {
    cudaStream_t st = RHD_CUDA_STREAM(ctx);
    if (dx) ln_backward_dx_kernel<<<(unsigned)((N + 7) / 8), 256, 0, st>>>(dx, dy, x, mean, rstd, gamma, N, D);
    if (dgamma || dbeta)
        ln_backward_param_kernel<<<(D + 31) / 32, dim3(32, 32), 0, st>>>(dgamma, dbeta, dy, x, mean, rstd, N, D);
    CUDA_CHECK(cudaGetLastError());
}
