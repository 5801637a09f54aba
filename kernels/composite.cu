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

static __global__ void composite_infer_kernel(float *rgb, float *A, float *dacc, uint8_t *stop, const int32_t *alive,
                                              const float *t_cur, const float *sigma, const float *c,
                                              const float *delta0, const float *delta1, int64_t n_alive, int n_step,
                                              float T_thresh) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_alive; i += (int64_t)gridDim.x * blockDim.x) {
        int32_t ray = alive[i];
        int64_t s = i * n_step;
        stop[i] = rhd_composite_infer_ray(rgb + 3 * (int64_t)ray, A + ray, dacc ? dacc + ray : NULL, sigma + s,
                                          c + 3 * s, delta0 + s, delta1 + s, t_cur[ray], n_step, T_thresh);
    }
}

struct bg3 {
    float v[3];
};

static __global__ void composite_infer_finish_kernel(float *pred, float *depth, const float *rgb, const float *A,
                                                     const float *dacc, const float *nears, const float *fars, bg3 bg,
                                                     int64_t N) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < N; i += (int64_t)gridDim.x * blockDim.x)
        rhd_composite_infer_finish_at(pred, depth, rgb, A, dacc, nears, fars, bg.v, i);
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

extern "C" void rhd_composite_infer_cuda(rhd_ctx *ctx, float *rgb, float *A, float *dacc, uint8_t *stop,
                                         const int32_t *alive, const float *t_cur, const float *sigma, const float *c,
                                         const float *delta0, const float *delta1, int64_t n_alive, int n_step,
                                         float T_thresh) {
    composite_infer_kernel<<<rhd_grid1d(n_alive, 128), 128, 0, RHD_CUDA_STREAM(ctx)>>>(
        rgb, A, dacc, stop, alive, t_cur, sigma, c, delta0, delta1, n_alive, n_step, T_thresh);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_composite_infer_finish_cuda(rhd_ctx *ctx, float *pred, float *depth, const float *rgb,
                                                const float *A, const float *dacc, const float *nears,
                                                const float *fars, const float bg[3], int64_t N) {
    bg3 b = {{bg[0], bg[1], bg[2]}};
    composite_infer_finish_kernel<<<rhd_grid1d(N, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(pred, depth, rgb, A, dacc,
                                                                                         nears, fars, b, N);
    CUDA_CHECK(cudaGetLastError());
}
