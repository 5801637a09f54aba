/* kernels/rays.h: camera rays through pixel centres, random pixel selection and near/far against
 * the scene box (fitting.md §1.2, §2.1, §2.2).
 *
 * Mirrors get_rays (Renderer/nerf/utils.py) and near_far_from_aabb (Renderer/raymarching).
 *
 * Inputs that are not tensors (the pose and the intrinsics) are host values on every backend:
 *   c2w  float[12]   the 3x4 camera-to-world matrix P[0:3,0:4], row-major, already converted to the
 *                    world frame (§1.3: OpenCV camera, column 0 image-right, column 1 image-down,
 *                    column 2 forward); formats/dataset.h produces it.
 *   intr {fx, fy, cx, cy} in pixels (§1.2: cx = W/2, cy = H/2, no half-pixel shift).
 * Tensors (device pointers on CUDA):
 *   pix     [N] int32    flat pixel index k = v*W + u
 *   rays_o  [N, 3]       origin, P[0:3,3] for every ray
 *   rays_d  [N, 3]       unit direction in the world frame
 *   rgb     [N, Ch]      gathered pixels; img [H*W, Ch] pixel-major (formats/png.h layout)
 *   nears, fars [N]
 *
 * Arithmetic (fp32, one rounding per operation, no fused multiply-add on either backend, so CPU,
 * CUDA and the NumPy reference agree bit for bit):
 *   x = ((u + 0.5) - cx)/fx,  y = ((v + 0.5) - cy)/fy,  n = sqrt((x*x + y*y) + 1)
 *   d_cam = (x/n, y/n, 1/n);  d_a = (P[a][0]*d_cam0 + P[a][1]*d_cam1) + P[a][2]*d_cam2
 * The direction is not renormalised after the rotation (§2.1: it stays unit length).
 *
 * Training pixels (§2.1): N indices uniform in [0, W*H) with replacement. Pixel j of a draw takes
 * the 32-bit Philox word j of (seed, stream): x = lane j%4 of rhd_rng_block(seed, stream, j/4),
 * and k = (x * W*H) >> 32 (multiply-shift; the bias is below W*H/2^32). The fitting loop uses
 * stream = RHD_STREAM(RHD_STREAM_RAYS, step), step = the subject's global step, and folds the
 * subject into the seed. Eval/test (§2.1): every pixel in row-major order (pix = NULL below).
 *
 * near/far (§2.2), per axis a in the order x, y, z: t1 = (lo_a - o_a)/d_a, t2 = (hi_a - o_a)/d_a
 * with IEEE division (d_a = 0 gives +-inf), swapped so that t1 <= t2. near = max of the t1, far =
 * min of the t2, and if the running interval is ever empty (near > t2_a or t1_a > far) the ray
 * misses: near = far = FLT_MAX. Finally near = max(near, min_near) (0.2); far is not clamped.
 *
 * Contract: every output is written (=); nothing is accumulated. Each ray is independent, so the
 * CPU result does not depend on the thread count. */
#ifndef RHD_KERNELS_RAYS_H
#define RHD_KERNELS_RAYS_H
#include <float.h>
#include <math.h>
#include <stdint.h>
#include "common/backend.h"
#include "common/hd.h"
#include "common/rng.h"

typedef struct rhd_intrinsics {
    float fx, fy, cx, cy;
} rhd_intrinsics;

/* fp32 operations that nvcc may not contract into a fused multiply-add (the host compiler is
 * run in ISO C mode, which does not contract either). Shared with occgrid.h and march.h. */
#if defined(__CUDA_ARCH__)
#define RHD_FMUL(a, b) __fmul_rn((a), (b))
#define RHD_FADD(a, b) __fadd_rn((a), (b))
#define RHD_FSUB(a, b) __fsub_rn((a), (b))
#else
#define RHD_FMUL(a, b) ((float)(a) * (float)(b))
#define RHD_FADD(a, b) ((float)(a) + (float)(b))
#define RHD_FSUB(a, b) ((float)(a) - (float)(b))
#endif

/* Unit direction of the ray through the centre of pixel (u, v). */
RHD_HD static inline void rhd_ray_dir(float d[3], const float *c2w, rhd_intrinsics in, int64_t u, int64_t v) {
    float x = RHD_FSUB(RHD_FADD((float)u, 0.5f), in.cx) / in.fx;
    float y = RHD_FSUB(RHD_FADD((float)v, 0.5f), in.cy) / in.fy;
    float n = sqrtf(RHD_FADD(RHD_FADD(RHD_FMUL(x, x), RHD_FMUL(y, y)), 1.f));
    float c0 = x / n, c1 = y / n, c2 = 1.f / n;
    for (int a = 0; a < 3; a++) {
        const float *r = c2w + 4 * a;
        d[a] = RHD_FADD(RHD_FADD(RHD_FMUL(r[0], c0), RHD_FMUL(r[1], c1)), RHD_FMUL(r[2], c2));
    }
}

/* Flat pixel index j of a random draw over npix pixels (see above). */
RHD_HD static inline int32_t rhd_ray_pixel(uint64_t seed, uint64_t stream, int64_t j, int64_t npix) {
    rhd_u32x4 b = rhd_rng_block(seed, stream, (uint64_t)j >> 2);
    return (int32_t)(((uint64_t)b.v[j & 3] * (uint64_t)npix) >> 32);
}

/* Slab test against [-bound, bound]^3; writes near, far (FLT_MAX for both on a miss). */
RHD_HD static inline void rhd_ray_near_far(float *near_out, float *far_out, const float *o, const float *d,
                                           float bound, float min_near) {
    float near = 0.f, far = 0.f;
    for (int a = 0; a < 3; a++) {
        float t1 = RHD_FSUB(-bound, o[a]) / d[a];
        float t2 = RHD_FSUB(bound, o[a]) / d[a];
        if (t1 > t2) {
            float s = t1;
            t1 = t2;
            t2 = s;
        }
        if (a == 0) {
            near = t1, far = t2;
            continue;
        }
        if (near > t2 || t1 > far) {
            *near_out = *far_out = FLT_MAX;
            return;
        }
        if (t1 > near) near = t1;
        if (t2 < far) far = t2;
    }
    if (near < min_near) near = min_near;
    *near_out = near;
    *far_out = far;
}

#ifdef __cplusplus
extern "C" {
#endif
/* pix[j] = a random pixel of W*H (see above), j = 0..N-1. */
void rhd_rays_random_pixels(rhd_ctx *ctx, int32_t *pix, int64_t N, int W, int H, uint64_t seed, uint64_t stream);
/* Rays of pixels pix[0..N-1], or, with pix = NULL, of the pixels first .. first+N-1 in row-major
 * order (eval: first = 0, N = W*H, or chunks of it). */
void rhd_rays_generate(rhd_ctx *ctx, float *rays_o, float *rays_d, const int32_t *pix, const float c2w[12],
                       rhd_intrinsics intr, int W, int64_t first, int64_t N);
/* rgb[j, c] = img[pix[j], c] for c < Ch (img is [H*W, Ch], pixel-major). */
void rhd_rays_gather(rhd_ctx *ctx, float *rgb, const float *img, const int32_t *pix, int64_t N, int Ch);
/* near/far of N rays against [-bound, bound]^3 (§2.2). */
void rhd_rays_near_far(rhd_ctx *ctx, float *nears, float *fars, const float *rays_o, const float *rays_d, int64_t N,
                       float bound, float min_near);
#ifdef RHD_CUDA
void rhd_rays_random_pixels_cuda(rhd_ctx *ctx, int32_t *pix, int64_t N, int W, int H, uint64_t seed,
                                 uint64_t stream);
void rhd_rays_generate_cuda(rhd_ctx *ctx, float *rays_o, float *rays_d, const int32_t *pix, const float c2w[12],
                            rhd_intrinsics intr, int W, int64_t first, int64_t N);
void rhd_rays_gather_cuda(rhd_ctx *ctx, float *rgb, const float *img, const int32_t *pix, int64_t N, int Ch);
void rhd_rays_near_far_cuda(rhd_ctx *ctx, float *nears, float *fars, const float *rays_o, const float *rays_d,
                            int64_t N, float bound, float min_near);
#endif
#ifdef __cplusplus
}
#endif
#endif
