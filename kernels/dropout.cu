/* kernels/dropout.cu: CUDA dropout and modulation (contracts in dropout.h). */
#include "kernels/dropout.h"
#include "common/cuda_check.h"

static __global__ void dropout_kernel(float *y, const float *x, int64_t n, float p, float s, uint64_t seed,
                                      uint64_t stream, uint64_t offset) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = rhd_dropout_elem(x[i], p, s, seed, stream, offset + (uint64_t)i);
}

static __global__ void modulate_kernel(float *y, const float *x, const float *scale, const float *shift, int64_t ld,
                                       int C, int64_t HW, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t nc = i / HW;
        int64_t k = nc / C * ld + nc % C;
        y[i] = scale ? rhd_modulate_elem(x[i], scale[k], shift[k]) : __fadd_rn(x[i], shift[k]);
    }
}

/* One block per (n, c): double partial sums per thread, combined in a fixed tree; then dx. */
static __global__ void modulate_backward_kernel(float *dx, float *dscale, float *dshift, const float *dy,
                                                const float *x, const float *scale, int64_t ld, int C, int64_t HW) {
    __shared__ double sa[256], sb[256];
    int64_t nc = blockIdx.x, k = nc / C * ld + nc % C;
    const float *g = dy + nc * HW, *xp = x + nc * HW;
    double a = 0, b = 0;
    for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) a += (double)g[i] * xp[i], b += g[i];
    sa[threadIdx.x] = a, sb[threadIdx.x] = b;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sa[threadIdx.x] += sa[threadIdx.x + s], sb[threadIdx.x] += sb[threadIdx.x + s];
        __syncthreads();
    }
    if (dx) {
        float m = scale ? __fadd_rn(1.0f, scale[k]) : 1.0f;
        for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) dx[nc * HW + i] = __fmul_rn(g[i], m);
    }
    if (threadIdx.x == 0) {
        if (dscale) dscale[k] = (float)sa[0];
        if (dshift) dshift[k] = (float)sb[0];
    }
}

// launchers

extern "C" void rhd_dropout_forward_cuda(rhd_ctx *ctx, float *y, const float *x, int64_t n, float p, uint64_t seed,
                                         uint64_t stream, uint64_t offset) {
    dropout_kernel<<<rhd_grid1d(n, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(y, x, n, p, rhd_dropout_scale(p), seed, stream,
                                                                         offset);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_modulate_forward_cuda(rhd_ctx *ctx, float *y, const float *x, const float *scale,
                                          const float *shift, int64_t ld, int N, int C, int64_t HW) {
    int64_t n = (int64_t)N * C * HW;
    modulate_kernel<<<rhd_grid1d(n, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(y, x, scale, shift, ld, C, HW, n);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_modulate_backward_cuda(rhd_ctx *ctx, float *dx, float *dscale, float *dshift, const float *dy,
                                           const float *x, const float *scale, int64_t ld, int N, int C, int64_t HW) {
    modulate_backward_kernel<<<(unsigned)((int64_t)N * C), 256, 0, RHD_CUDA_STREAM(ctx)>>>(dx, dscale, dshift, dy, x,
                                                                                        scale, ld, C, HW);
    CUDA_CHECK(cudaGetLastError());
}
