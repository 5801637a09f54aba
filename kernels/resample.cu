/* kernels/resample.cu: CUDA resampling ops (contract in resample.h). One thread per output
 * element in forward; the backwards of nearest x2, average pooling and pixel shuffle gather (one
 * thread per input element, same summation order as the CPU); the resize backward scatters
 * with atomicAdd into a zeroed dx. Taps come from rhd_resize_taps, shared with the CPU. */
#include "kernels/resample.h"
#include "common/cuda_check.h"

#define RS_BLOCK 256
#define GRID_STRIDE(i, n) for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

static __global__ void nearest2x_fwd_kernel(float *y, const float *x, int64_t planes, int H, int W) {
    int64_t Wo = 2L * W, Ho = 2L * H;
    GRID_STRIDE(i, planes * Ho * Wo) {
        int64_t j = i % Wo, r = i / Wo; /* r = p * Ho + oi */
        int64_t p = r / Ho, oi = r % Ho;
        y[i] = x[(p * H + oi / 2) * W + j / 2];
    }
}

static __global__ void nearest2x_bwd_kernel(float *dx, const float *dy, int64_t planes, int H, int W) {
    GRID_STRIDE(i, planes * H * W) {
        int64_t j = i % W, r = i / W; /* r = p * H + row: output rows 2r, 2r+1 of the flattened planes */
        const float *d0 = dy + r * 4 * W, *d1 = d0 + 2 * W;
        dx[i] = (d0[2 * j] + d0[2 * j + 1]) + (d1[2 * j] + d1[2 * j + 1]);
    }
}

static __global__ void avgpool_fwd_kernel(float *y, const float *x, int64_t planes, int H, int W) {
    int Ho = H / 2, Wo = W / 2;
    GRID_STRIDE(i, planes * Ho * Wo) {
        int64_t j = i % Wo, r = i / Wo;
        int64_t p = r / Ho, oi = r % Ho;
        const float *x0 = x + (p * H + 2 * oi) * W, *x1 = x0 + W;
        y[i] = ((x0[2 * j] + x0[2 * j + 1]) + (x1[2 * j] + x1[2 * j + 1])) * 0.25f;
    }
}

static __global__ void avgpool_bwd_kernel(float *dx, const float *dy, int64_t planes, int H, int W) {
    int Ho = H / 2, Wo = W / 2;
    GRID_STRIDE(i, planes * H * W) {
        int64_t j = i % W, r = i / W;
        int64_t p = r / H, row = r % H;
        dx[i] = (row < 2 * Ho && j < 2 * Wo) ? dy[(p * Ho + row / 2) * Wo + j / 2] * 0.25f : 0.0f;
    }
}

static __global__ void resize_fwd_kernel(float *y, const float *x, int64_t planes, int Hi, int Wi, int Ho, int Wo,
                                         rhd_resize_mode mode, int ac) {
    float sy = rhd_resize_scale(Hi, Ho, ac), sx = rhd_resize_scale(Wi, Wo, ac);
    GRID_STRIDE(i, planes * Ho * Wo) {
        int ox = (int)(i % Wo);
        int64_t r = i / Wo;
        int oy = (int)(r % Ho);
        int64_t p = r / Ho;
        int iy[4], ix[4];
        float wy[4], wx[4];
        int n = rhd_resize_taps(mode, ac, oy, Hi, sy, iy, wy);
        rhd_resize_taps(mode, ac, ox, Wi, sx, ix, wx);
        const float *xp = x + p * Hi * Wi;
        float acc = 0.0f;
        for (int a = 0; a < n; a++) { /* horizontal first, then vertical, as the CPU */
            const float *row = xp + (int64_t)iy[a] * Wi;
            float h = wx[0] * row[ix[0]];
            for (int b = 1; b < n; b++) h += wx[b] * row[ix[b]];
            acc = a == 0 ? wy[0] * h : acc + wy[a] * h;
        }
        y[i] = acc;
    }
}

static __global__ void resize_bwd_kernel(float *dx, const float *dy, int64_t planes, int Hi, int Wi, int Ho, int Wo,
                                         rhd_resize_mode mode, int ac) {
    float sy = rhd_resize_scale(Hi, Ho, ac), sx = rhd_resize_scale(Wi, Wo, ac);
    GRID_STRIDE(i, planes * Ho * Wo) {
        int ox = (int)(i % Wo);
        int64_t r = i / Wo;
        int oy = (int)(r % Ho);
        int64_t p = r / Ho;
        int iy[4], ix[4];
        float wy[4], wx[4];
        int n = rhd_resize_taps(mode, ac, oy, Hi, sy, iy, wy);
        rhd_resize_taps(mode, ac, ox, Wi, sx, ix, wx);
        float g = dy[i];
        float *dp = dx + p * Hi * Wi;
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++) atomicAdd(dp + (int64_t)iy[a] * Wi + ix[b], wx[b] * (wy[a] * g));
    }
}

/* y [NC, H r, W r] <- x [NC r^2, H, W], one thread per y element (dir 0); dir 1: x <- y, one
 * thread per x element. */
static __global__ void pixel_shuffle_kernel(float *y, float *x, int64_t NC, int H, int W, int r, int dir) {
    int64_t Wr = (int64_t)W * r, Hr = (int64_t)H * r;
    GRID_STRIDE(i, NC * Hr * Wr) {
        if (dir == 0) {
            int64_t ow = i % Wr, t = i / Wr;
            int64_t oh = t % Hr, p = t / Hr;
            int64_t ch = p * r * r + (oh % r) * r + ow % r;
            y[i] = x[(ch * H + oh / r) * W + ow / r];
        } else {
            int64_t w = i % W, t = i / W;
            int64_t h = t % H, ch = t / H; /* ch = p r^2 + a r + b */
            int64_t p = ch / ((int64_t)r * r), a = ch / r % r, b = ch % r;
            x[i] = y[((p * Hr) + h * r + a) * Wr + w * r + b];
        }
    }
}

// launchers

extern "C" void rhd_upsample_nearest2x_forward_cuda(rhd_ctx *ctx, float *y, const float *x, int N, int C, int H,
                                                    int W) {
    int64_t planes = (int64_t)N * C, n = planes * 4 * H * W;
    if (n == 0) return;
    nearest2x_fwd_kernel<<<rhd_grid1d(n, RS_BLOCK), RS_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(y, x, planes, H, W);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_upsample_nearest2x_backward_cuda(rhd_ctx *ctx, float *dx, const float *dy, int N, int C, int H,
                                                     int W) {
    int64_t planes = (int64_t)N * C, n = planes * H * W;
    if (n == 0) return;
    nearest2x_bwd_kernel<<<rhd_grid1d(n, RS_BLOCK), RS_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(dx, dy, planes, H, W);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_avgpool2x2_forward_cuda(rhd_ctx *ctx, float *y, const float *x, int N, int C, int H, int W) {
    int64_t planes = (int64_t)N * C, n = planes * (H / 2) * (W / 2);
    if (n == 0) return;
    avgpool_fwd_kernel<<<rhd_grid1d(n, RS_BLOCK), RS_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(y, x, planes, H, W);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_avgpool2x2_backward_cuda(rhd_ctx *ctx, float *dx, const float *dy, int N, int C, int H, int W) {
    int64_t planes = (int64_t)N * C, n = planes * H * W;
    if (n == 0) return;
    avgpool_bwd_kernel<<<rhd_grid1d(n, RS_BLOCK), RS_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(dx, dy, planes, H, W);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_resize_forward_cuda(rhd_ctx *ctx, float *y, const float *x, int N, int C, int Hi, int Wi, int Ho,
                                        int Wo, rhd_resize_mode mode, int align_corners) {
    int64_t planes = (int64_t)N * C, n = planes * Ho * Wo;
    if (n == 0) return;
    resize_fwd_kernel<<<rhd_grid1d(n, RS_BLOCK), RS_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(y, x, planes, Hi, Wi, Ho, Wo,
                                                                                     mode, align_corners);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_resize_backward_cuda(rhd_ctx *ctx, float *dx, const float *dy, int N, int C, int Hi, int Wi,
                                         int Ho, int Wo, rhd_resize_mode mode, int align_corners) {
    int64_t planes = (int64_t)N * C, n = planes * Ho * Wo;
    if (planes == 0) return;
    CUDA_CHECK(cudaMemsetAsync(dx, 0, sizeof(float) * planes * Hi * Wi, RHD_CUDA_STREAM(ctx)));
    resize_bwd_kernel<<<rhd_grid1d(n, RS_BLOCK), RS_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(dx, dy, planes, Hi, Wi, Ho, Wo,
                                                                                     mode, align_corners);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_pixel_shuffle_forward_cuda(rhd_ctx *ctx, float *y, const float *x, int N, int C, int H, int W,
                                               int r) {
    int64_t NC = (int64_t)N * C, n = NC * H * W * r * r;
    if (n == 0) return;
    pixel_shuffle_kernel<<<rhd_grid1d(n, RS_BLOCK), RS_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(y, (float *)x, NC, H, W, r, 0);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_pixel_shuffle_backward_cuda(rhd_ctx *ctx, float *dx, const float *dy, int N, int C, int H, int W,
                                                int r) {
    int64_t NC = (int64_t)N * C, n = NC * H * W * r * r;
    if (n == 0) return;
    pixel_shuffle_kernel<<<rhd_grid1d(n, RS_BLOCK), RS_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>((float *)dy, dx, NC, H, W, r, 1);
    CUDA_CHECK(cudaGetLastError());
}
