/* kernels/elementwise.cu: residual add, batched transpose and glue moves on CUDA (see elementwise.h). */
#include "kernels/elementwise.h"
#include "common/cuda_check.h"

#define TILE 32
#define ROWS 8 /* a 32x8 thread block moves a 32x32 tile, 4 rows per thread */

static __global__ void add_kernel(float *y, const float *a, const float *b, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = a[i] + b[i];
}

/* One block per 32x32 tile of one batch item: coalesced reads along C, coalesced writes along R
 * through a padded shared tile (no bank conflicts). grid = (tiles along C, tiles along R, B). */
static __global__ void transpose_kernel(float *y, const float *x, int64_t R, int64_t C) {
    __shared__ float tile[TILE][TILE + 1];
    const float *xb = x + (int64_t)blockIdx.z * R * C;
    float *yb = y + (int64_t)blockIdx.z * R * C;
    int64_t c = (int64_t)blockIdx.x * TILE + threadIdx.x;
    for (int j = threadIdx.y; j < TILE; j += ROWS) {
        int64_t r = (int64_t)blockIdx.y * TILE + j;
        if (r < R && c < C) tile[j][threadIdx.x] = xb[r * C + c];
    }
    __syncthreads();
    int64_t r = (int64_t)blockIdx.y * TILE + threadIdx.x;
    for (int j = threadIdx.y; j < TILE; j += ROWS) {
        int64_t cc = (int64_t)blockIdx.x * TILE + j;
        if (r < R && cc < C) yb[cc * R + r] = tile[threadIdx.x][j];
    }
}

static __global__ void copy_cols_kernel(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t width, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / width, c = i % width;
        y[r * ldy + c] = x[r * ldx + c];
    }
}

static __global__ void scale_kernel(float *y, const float *x, float s, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = s * x[i];
}

static __global__ void sqr_acc_kernel(float *y, const float *x, float d, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] += x[i] * x[i] / d;
}

// launchers

extern "C" void rhd_add_forward_cuda(rhd_ctx *ctx, float *y, const float *a, const float *b, int64_t n) {
    add_kernel<<<rhd_grid1d(n, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(y, a, b, n);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_transpose_forward_cuda(rhd_ctx *ctx, float *y, const float *x, int B, int64_t R, int64_t C) {
    RHD_ASSERT((C + TILE - 1) / TILE <= 0x7fffffffL && (R + TILE - 1) / TILE <= 65535 && B <= 65535);
    dim3 grid((unsigned)((C + TILE - 1) / TILE), (unsigned)((R + TILE - 1) / TILE), (unsigned)B);
    transpose_kernel<<<grid, dim3(TILE, ROWS), 0, RHD_CUDA_STREAM(ctx)>>>(y, x, R, C);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_copy_cols_cuda(rhd_ctx *ctx, float *y, int64_t ldy, const float *x, int64_t ldx, int64_t width, int64_t rows) {
    int64_t n = width * rows;
    copy_cols_kernel<<<rhd_grid1d(n, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(y, ldy, x, ldx, width, n);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_scale_cuda(rhd_ctx *ctx, float *y, const float *x, float s, int64_t n) {
    scale_kernel<<<rhd_grid1d(n, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(y, x, s, n);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_sqr_acc_cuda(rhd_ctx *ctx, float *y, const float *x, float d, int64_t n) {
    sqr_acc_kernel<<<rhd_grid1d(n, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(y, x, d, n);
    CUDA_CHECK(cudaGetLastError());
}
