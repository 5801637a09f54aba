/* kernels/losses.cu: CUDA losses (contract in losses.h). Each kernel writes one double partial
 * per block (fixed grid for a given size) and a single block adds the partials in a fixed order,
 * so the loss value is deterministic; the gradient is elementwise. */
#include "kernels/losses.h"
#include "common/cuda_check.h"
#include "kernels/reduce_cuda.h"

#define RED_GRID_MAX 1024

static unsigned red_grid(int64_t n) {
    unsigned g = rhd_grid1d(n, RHD_RED_BLOCK);
    return g > RED_GRID_MAX ? RED_GRID_MAX : g;
}


/* out[k] = sum of part[k*np .. k*np+np-1] for k < nsum, one block. */
static __global__ void sum_partials_kernel(double *out, const double *part, int np, int nsum) {
    for (int k = 0; k < nsum; k++) {
        double s = 0;
        for (int i = threadIdx.x; i < np; i += RHD_RED_BLOCK) s += part[(int64_t)k * np + i];
        s = rhd_block_sum(s);
        if (threadIdx.x == 0) out[k] = s;
    }
}

static __global__ void mse_kernel(double *part, float *dx, const float *x, const float *y, int64_t n, float coef) {
    double s = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float d = x[i] - y[i];
        double dd = (double)x[i] - y[i];
        s += dd * dd;
        if (dx) dx[i] = coef * d;
    }
    s = rhd_block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

static __global__ void l1_kernel(double *part, float *dx, const float *x, int64_t n, float coef, int clamp) {
    double s = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float v = rhd_loss_read(x[i], clamp);
        s += fabs((double)v);
        if (dx && rhd_loss_passes(x[i], clamp)) dx[i] += coef * rhd_loss_sign(v);
    }
    s = rhd_block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

static __global__ void tv_kernel(double *part, float *dx, const float *x, int C, int H, int W, float kh, float kw,
                                 int clamp) {
    const int64_t n = (int64_t)C * H * W, HW = (int64_t)H * W;
    double s_h = 0, s_w = 0;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = e / HW, r = e - c * HW;
        int i = (int)(r / W), j = (int)(r - (int64_t)i * W);
        const float *xp = x + c * HW;
        float v = rhd_loss_read(x[e], clamp);
        if (i < H - 1) {
            double d = (double)rhd_loss_read(x[e + W], clamp) - v;
            s_h += d * d;
        }
        if (j < W - 1) {
            double d = (double)rhd_loss_read(x[e + 1], clamp) - v;
            s_w += d * d;
        }
        if (dx && rhd_loss_passes(x[e], clamp)) dx[e] += rhd_tv_grad_at(xp, i, j, H, W, kh, kw, clamp);
    }
    s_h = rhd_block_sum(s_h);
    s_w = rhd_block_sum(s_w);
    if (threadIdx.x == 0) part[blockIdx.x] = s_h, part[gridDim.x + blockIdx.x] = s_w;
}

static __global__ void iwc_kernel(double *part, float *dtheta, const float *theta, const float *F, const float *opt,
                           int64_t n, double w) {
    double s = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        s += rhd_iwc_at(dtheta, theta, F, opt, i, w);
    s = rhd_block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

/* Run the final sums and bring them to the host. */
static void finish(rhd_ctx *ctx, double *ws, unsigned grid, int nsum, double *host) {
    double *out = ws + (int64_t)nsum * grid;
    sum_partials_kernel<<<1, RHD_RED_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(out, ws, (int)grid, nsum);
    CUDA_CHECK(cudaGetLastError());
    rhd_buf_download(ctx, host, out, sizeof(double) * nsum);
}

// launchers

extern "C" double rhd_loss_mse_cuda(rhd_ctx *ctx, float *dx, const float *x, const float *y, int64_t n, float coef) {
    unsigned grid = red_grid(n);
    double *ws = (double *)rhd_ctx_workspace(ctx, sizeof(double) * (grid + 1));
    mse_kernel<<<grid, RHD_RED_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(ws, dx, x, y, n, coef);
    CUDA_CHECK(cudaGetLastError());
    double s;
    finish(ctx, ws, grid, 1, &s);
    return s;
}

extern "C" double rhd_loss_l1_cuda(rhd_ctx *ctx, float *dx, const float *x, int64_t n, float coef, int clamp) {
    unsigned grid = red_grid(n);
    double *ws = (double *)rhd_ctx_workspace(ctx, sizeof(double) * (grid + 1));
    l1_kernel<<<grid, RHD_RED_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(ws, dx, x, n, coef, clamp);
    CUDA_CHECK(cudaGetLastError());
    double s;
    finish(ctx, ws, grid, 1, &s);
    return s;
}

extern "C" void rhd_loss_tv_cuda(rhd_ctx *ctx, double *sh, double *sw, float *dx, const float *x, int C, int H, int W,
                                 float kh, float kw, int clamp) {
    unsigned grid = red_grid((int64_t)C * H * W);
    double *ws = (double *)rhd_ctx_workspace(ctx, sizeof(double) * 2 * (grid + 1));
    tv_kernel<<<grid, RHD_RED_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(ws, dx, x, C, H, W, kh, kw, clamp);
    CUDA_CHECK(cudaGetLastError());
    double s[2];
    finish(ctx, ws, grid, 2, s);
    *sh = s[0], *sw = s[1];
}

extern "C" double rhd_loss_iwc_cuda(rhd_ctx *ctx, float *dtheta, const float *theta, const float *F, const float *opt,
                                    int64_t n, double w) {
    unsigned grid = red_grid(n);
    double *ws = (double *)rhd_ctx_workspace(ctx, sizeof(double) * (grid + 1));
    iwc_kernel<<<grid, RHD_RED_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(ws, dtheta, theta, F, opt, n, w);
    CUDA_CHECK(cudaGetLastError());
    double s;
    finish(ctx, ws, grid, 1, &s);
    return s;
}
