/* kernels/rays.c: CPU reference of ray generation and near/far (contract in rays.h) and the
 * backend dispatch. One ray per iteration; rays are independent. */
#include "kernels/rays.h"
#include "common/err.h"

void rhd_rays_random_pixels(rhd_ctx *ctx, int32_t *pix, int64_t N, int W, int H, uint64_t seed, uint64_t stream) {
    RHD_ASSERT(N >= 0 && W > 0 && H > 0 && (int64_t)W * H <= INT32_MAX);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_rays_random_pixels_cuda(ctx, pix, N, W, H, seed, stream);
        return;
    }
#endif
    int64_t npix = (int64_t)W * H;
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < N; j++) pix[j] = rhd_ray_pixel(seed, stream, j, npix);
}

void rhd_rays_generate(rhd_ctx *ctx, float *rays_o, float *rays_d, const int32_t *pix, const float c2w[12],
                       rhd_intrinsics intr, int W, int64_t first, int64_t N) {
    RHD_ASSERT(N >= 0 && W > 0 && first >= 0);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_rays_generate_cuda(ctx, rays_o, rays_d, pix, c2w, intr, W, first, N);
        return;
    }
#endif
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < N; j++) {
        int64_t k = pix ? pix[j] : first + j;
        rhd_ray_dir(rays_d + 3 * j, c2w, intr, k % W, k / W);
        rays_o[3 * j] = c2w[3], rays_o[3 * j + 1] = c2w[7], rays_o[3 * j + 2] = c2w[11];
    }
}

void rhd_rays_gather(rhd_ctx *ctx, float *rgb, const float *img, const int32_t *pix, int64_t N, int Ch) {
    RHD_ASSERT(N >= 0 && Ch > 0);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_rays_gather_cuda(ctx, rgb, img, pix, N, Ch);
        return;
    }
#endif
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < N; j++)
        for (int c = 0; c < Ch; c++) rgb[j * Ch + c] = img[(int64_t)pix[j] * Ch + c];
}

void rhd_rays_near_far(rhd_ctx *ctx, float *nears, float *fars, const float *rays_o, const float *rays_d, int64_t N,
                       float bound, float min_near) {
    RHD_ASSERT(N >= 0 && bound > 0);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_rays_near_far_cuda(ctx, nears, fars, rays_o, rays_d, N, bound, min_near);
        return;
    }
#endif
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < N; j++) rhd_ray_near_far(nears + j, fars + j, rays_o + 3 * j, rays_d + 3 * j, bound, min_near);
}
