/* kernels/triplane.cu: CUDA triplane sampling (contract in triplane.h). One thread per
 * (point, channel); the channel index is the fastest, so a warp covers one point's channels and
 * writes feats coalesced. The backward scatters with atomicAdd. */
#include "kernels/triplane.h"
#include "common/cuda_check.h"

static __global__ void triplane_forward_kernel(float *feats, const float *points, const float *planes, int64_t N,
                                               int C, int R, int clamp) {
    const int64_t RR = (int64_t)R * R, total = N * C;
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total; k += (int64_t)gridDim.x * blockDim.x) {
        int64_t n = k / C;
        int c = (int)(k - n * C);
        float x[3] = {points[3 * n], points[3 * n + 1], points[3 * n + 2]};
        float s = 0.f;
        for (int p = 0; p < 3; p++) {
            float a, b;
            rhd_bilinear_taps t;
            rhd_triplane_project(x, p, &a, &b);
            if (rhd_bilinear_taps_at(a, b, R, &t)) s += rhd_bilinear_sample(planes + ((int64_t)p * C + c) * RR, R, &t, clamp);
        }
        feats[k] = s / 3.f;
    }
}

static __device__ inline void scatter_tap(float *dplanes, const float *planes, int64_t at, float w, float gm, int clamp) {
    if (!clamp || rhd_triplane_grad_passes(planes[at], clamp)) atomicAdd(dplanes + at, w * gm);
}

static __global__ void triplane_backward_kernel(float *dplanes, const float *dfeats, const float *points,
                                                const float *planes, int64_t N, int C, int R, int clamp) {
    const int64_t RR = (int64_t)R * R, total = N * C;
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total; k += (int64_t)gridDim.x * blockDim.x) {
        int64_t n = k / C;
        int c = (int)(k - n * C);
        float x[3] = {points[3 * n], points[3 * n + 1], points[3 * n + 2]};
        float gm = dfeats[k] * RHD_TRIPLANE_MEAN;
        for (int p = 0; p < 3; p++) {
            float a, b;
            rhd_bilinear_taps t;
            rhd_triplane_project(x, p, &a, &b);
            if (!rhd_bilinear_taps_at(a, b, R, &t)) continue;
            int64_t base = ((int64_t)p * C + c) * RR, r0 = base + (int64_t)t.i0 * R, r1 = base + (int64_t)t.i1 * R;
            scatter_tap(dplanes, planes, r0 + t.j0, t.w00, gm, clamp);
            scatter_tap(dplanes, planes, r0 + t.j1, t.w01, gm, clamp);
            scatter_tap(dplanes, planes, r1 + t.j0, t.w10, gm, clamp);
            scatter_tap(dplanes, planes, r1 + t.j1, t.w11, gm, clamp);
        }
    }
}

// launchers

extern "C" void rhd_triplane_forward_cuda(rhd_ctx *ctx, float *feats, const float *points, const float *planes,
                                          int64_t N, int C, int R, int clamp) {
    if (N == 0) return;
    triplane_forward_kernel<<<rhd_grid1d(N * C, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(feats, points, planes, N, C, R, clamp);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_triplane_backward_cuda(rhd_ctx *ctx, float *dplanes, const float *dfeats, const float *points,
                                           const float *planes, int64_t N, int C, int R, int clamp) {
    if (N == 0) return;
    triplane_backward_kernel<<<rhd_grid1d(N * C, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(dplanes, dfeats, points, planes,
                                                                                       N, C, R, clamp);
    CUDA_CHECK(cudaGetLastError());
}
