/* kernels/optim.cu: CUDA optimiser steps (contract in optim.h). The norm reduces to one double
 * partial per block (fixed grid for a given n), then one block adds them in a fixed order. */
#include "kernels/optim.h"
#include "common/cuda_check.h"
#include "kernels/reduce_cuda.h"

#define RED_GRID_MAX 1024

static __global__ void adam_kernel(float *param, float *m, float *v, const float *grad, int64_t n, rhd_adam_scalars s) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        rhd_adam_update(param + i, m + i, v + i, grad[i], &s);
}

static __global__ void ema_kernel(float *ema, const float *param, int64_t n, float r, float omr) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        ema[i] = ema[i] * r + omr * param[i];
}



static __global__ void sum_squares_kernel(double *part, const float *x, int64_t n) {
    double s = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        s += (double)x[i] * x[i];
    s = rhd_block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

static __global__ void sum_partials_kernel(double *out, const double *part, int np) {
    double s = 0;
    for (int i = threadIdx.x; i < np; i += RHD_RED_BLOCK) s += part[i];
    s = rhd_block_sum(s);
    if (threadIdx.x == 0) *out = s;
}

// launchers

extern "C" void rhd_adam_step_cuda(rhd_ctx *ctx, float *param, float *m, float *v, const float *grad, int64_t n,
                                   rhd_adam_scalars s) {
    if (n == 0) return;
    adam_kernel<<<rhd_grid1d(n, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(param, m, v, grad, n, s);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_ema_update_cuda(rhd_ctx *ctx, float *ema, const float *param, int64_t n, float rate,
                                    float one_minus_rate) {
    if (n == 0) return;
    ema_kernel<<<rhd_grid1d(n, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(ema, param, n, rate, one_minus_rate);
    CUDA_CHECK(cudaGetLastError());
}


extern "C" double rhd_sum_squares_cuda(rhd_ctx *ctx, const float *x, int64_t n) {
    unsigned grid = rhd_grid1d(n, RHD_RED_BLOCK);
    if (grid > RED_GRID_MAX) grid = RED_GRID_MAX;
    double *ws = (double *)rhd_ctx_workspace(ctx, sizeof(double) * (grid + 1));
    sum_squares_kernel<<<grid, RHD_RED_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(ws, x, n);
    CUDA_CHECK(cudaGetLastError());
    sum_partials_kernel<<<1, RHD_RED_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(ws + grid, ws, (int)grid);
    CUDA_CHECK(cudaGetLastError());
    double s;
    rhd_buf_download(ctx, &s, ws + grid, sizeof(double));
    return s;
}
