/* kernels/composite.cu: CUDA training compositing (contract in composite.h), one thread per ray,
 * running the same per-sample helpers as the CPU reference. */
#include "kernels/composite.h"
#include "common/cuda_check.h"

static __global__ void composite_forward_kernel(float *pred, float *A, float *depth, int32_t *n_used,
                                                const float *sigma, const float *rgb, const float *delta0,
                                                const float *delta1, const int32_t *rays, const float *nears,
                                                const float *fars, int64_t n_rays, rhd_composite_cfg cfg) {
    for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < n_rays; r += (int64_t)gridDim.x * blockDim.x) {
        rhd_ray_acc a;
        int used = rhd_composite_ray(&a, sigma, rgb, delta0, delta1, rays[2 * r], rays[2 * r + 1], cfg.T_thresh);
        for (int c = 0; c < 3; c++) pred[3 * r + c] = a.rgb[c] + (1.f - a.A) * cfg.bg[c];
        if (A) A[r] = a.A;
        if (depth) depth[r] = rhd_composite_depth(a.depth, nears, fars, r);
        if (n_used) n_used[r] = used;
    }
}

static __global__ void composite_backward_kernel(float *dsigma, float *drgb, const float *dpred, const float *dA,
                                                 const float *sigma, const float *rgb, const float *delta0,
                                                 const int32_t *rays, int64_t n_rays, rhd_composite_cfg cfg) {
    for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < n_rays; r += (int64_t)gridDim.x * blockDim.x)
        rhd_composite_ray_backward(dsigma, drgb, sigma, rgb, delta0, rays[2 * r], rays[2 * r + 1], dpred + 3 * r,
                                   dA ? dA[r] : 0.f, cfg.bg, cfg.T_thresh);
}

// launchers

extern "C" void rhd_composite_forward_cuda(rhd_ctx *ctx, float *pred, float *A, float *depth, int32_t *n_used,
                                           const float *sigma, const float *rgb, const float *delta0,
                                           const float *delta1, const int32_t *rays, const float *nears,
                                           const float *fars, int64_t n_rays, rhd_composite_cfg cfg) {
    if (n_rays == 0) return;
    composite_forward_kernel<<<rhd_grid1d(n_rays, 128), 128, 0, RHD_CUDA_STREAM(ctx)>>>(
        pred, A, depth, n_used, sigma, rgb, delta0, delta1, rays, nears, fars, n_rays, cfg);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_composite_backward_cuda(rhd_ctx *ctx, float *dsigma, float *drgb, const float *dpred,
                                            const float *dA, const float *sigma, const float *rgb,
                                            const float *delta0, const int32_t *rays, int64_t n_rays, int64_t M,
                                            rhd_composite_cfg cfg) {
    CUDA_CHECK(cudaMemsetAsync(dsigma, 0, sizeof(float) * (size_t)M, RHD_CUDA_STREAM(ctx)));
    CUDA_CHECK(cudaMemsetAsync(drgb, 0, sizeof(float) * 3 * (size_t)M, RHD_CUDA_STREAM(ctx)));
    if (n_rays == 0) return;
    composite_backward_kernel<<<rhd_grid1d(n_rays, 128), 128, 0, RHD_CUDA_STREAM(ctx)>>>(
        dsigma, drgb, dpred, dA, sigma, rgb, delta0, rays, n_rays, cfg);
    CUDA_CHECK(cudaGetLastError());
}
