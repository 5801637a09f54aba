/* kernels/rays.cu: CUDA ray generation and near/far (contract in rays.h), one thread per ray,
 * running the same per-ray helpers as the CPU reference. */
#include "kernels/rays.h"
#include "common/cuda_check.h"

typedef struct {
    float m[12];
} pose34;

static __global__ void random_pixels_kernel(int32_t *pix, int64_t N, int64_t npix, uint64_t seed, uint64_t stream) {
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < N; j += (int64_t)gridDim.x * blockDim.x)
        pix[j] = rhd_ray_pixel(seed, stream, j, npix);
}

static __global__ void generate_kernel(float *rays_o, float *rays_d, const int32_t *pix, pose34 P, rhd_intrinsics in,
                                       int W, int64_t first, int64_t N) {
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < N; j += (int64_t)gridDim.x * blockDim.x) {
        int64_t k = pix ? pix[j] : first + j;
        rhd_ray_dir(rays_d + 3 * j, P.m, in, k % W, k / W);
        rays_o[3 * j] = P.m[3], rays_o[3 * j + 1] = P.m[7], rays_o[3 * j + 2] = P.m[11];
    }
}

static __global__ void gather_kernel(float *rgb, const float *img, const int32_t *pix, int64_t N, int Ch) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < N * Ch; i += (int64_t)gridDim.x * blockDim.x)
        rgb[i] = img[(int64_t)pix[i / Ch] * Ch + i % Ch];
}

static __global__ void near_far_kernel(float *nears, float *fars, const float *rays_o, const float *rays_d, int64_t N,
                                       float bound, float min_near) {
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < N; j += (int64_t)gridDim.x * blockDim.x)
        rhd_ray_near_far(nears + j, fars + j, rays_o + 3 * j, rays_d + 3 * j, bound, min_near);
}

// launchers

extern "C" void rhd_rays_random_pixels_cuda(rhd_ctx *ctx, int32_t *pix, int64_t N, int W, int H, uint64_t seed,
                                            uint64_t stream) {
    if (N == 0) return;
    random_pixels_kernel<<<rhd_grid1d(N, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(pix, N, (int64_t)W * H, seed, stream);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_rays_generate_cuda(rhd_ctx *ctx, float *rays_o, float *rays_d, const int32_t *pix,
                                       const float c2w[12], rhd_intrinsics intr, int W, int64_t first, int64_t N) {
    if (N == 0) return;
    pose34 P;
    for (int i = 0; i < 12; i++) P.m[i] = c2w[i];
    generate_kernel<<<rhd_grid1d(N, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(rays_o, rays_d, pix, P, intr, W, first, N);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_rays_gather_cuda(rhd_ctx *ctx, float *rgb, const float *img, const int32_t *pix, int64_t N, int Ch) {
    if (N == 0) return;
    gather_kernel<<<rhd_grid1d(N * Ch, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(rgb, img, pix, N, Ch);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_rays_near_far_cuda(rhd_ctx *ctx, float *nears, float *fars, const float *rays_o,
                                       const float *rays_d, int64_t N, float bound, float min_near) {
    if (N == 0) return;
    near_far_kernel<<<rhd_grid1d(N, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(nears, fars, rays_o, rays_d, N, bound, min_near);
    CUDA_CHECK(cudaGetLastError());
}
