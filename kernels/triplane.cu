/* kernels/triplane.cu: CUDA triplane sampling (contract in triplane.h).
 * The planes are transposed channel-last ([3,C,R,R] -> [3,R,R,C]) into the workspace, so one
 * warp (one point, 32 channels) reads a tap's channels in one coalesced 128-byte access; the
 * backward accumulates channel-last with atomicAdd and transposes back into dplanes (+=). */
#include "kernels/triplane.h"
#include "common/cuda_check.h"

#define TILE 32
#define TILE_ROWS 8

/* out [3, RR, C] = clamp?(in [3, C, RR]), tiled through shared memory (both sides coalesced). */
static __global__ void pack_kernel(float *out, const float *in, int C, int64_t RR, int clamp) {
    __shared__ float tile[TILE][TILE + 1];
    const int64_t x0 = (int64_t)blockIdx.x * TILE;
    const int c0 = blockIdx.y * TILE, p = blockIdx.z;
    for (int k = threadIdx.y; k < TILE; k += TILE_ROWS) {
        int c = c0 + k;
        int64_t x = x0 + threadIdx.x;
        if (c < C && x < RR) tile[k][threadIdx.x] = rhd_triplane_read(in[((int64_t)p * C + c) * RR + x], clamp);
    }
    __syncthreads();
    for (int k = threadIdx.y; k < TILE; k += TILE_ROWS) {
        int64_t x = x0 + k;
        int c = c0 + threadIdx.x;
        if (c < C && x < RR) out[((int64_t)p * RR + x) * C + c] = tile[threadIdx.x][k];
    }
}

/* dplanes [3, C, RR] += acc [3, RR, C] where the clamp rule lets the gradient through. */
static __global__ void unpack_add_kernel(float *dplanes, const float *acc, const float *planes, int C, int64_t RR,
                                         int clamp) {
    __shared__ float tile[TILE][TILE + 1];
    const int64_t x0 = (int64_t)blockIdx.x * TILE;
    const int c0 = blockIdx.y * TILE, p = blockIdx.z;
    for (int k = threadIdx.y; k < TILE; k += TILE_ROWS) {
        int64_t x = x0 + k;
        int c = c0 + threadIdx.x;
        if (c < C && x < RR) tile[threadIdx.x][k] = acc[((int64_t)p * RR + x) * C + c];
    }
    __syncthreads();
    for (int k = threadIdx.y; k < TILE; k += TILE_ROWS) {
        int c = c0 + k;
        int64_t x = x0 + threadIdx.x;
        if (c < C && x < RR) {
            int64_t at = ((int64_t)p * C + c) * RR + x;
            if (rhd_triplane_grad_passes(clamp ? planes[at] : 0.f, clamp)) dplanes[at] += tile[k][threadIdx.x];
        }
    }
}

/* One thread per (point, channel); packed is [3, R, R, C]; splanes [3, N, C] written when given
 * (product aggregations). */
static __global__ void forward_kernel(float *feats, const float *points, const float *packed, int64_t N, int C, int R,
                                      int agg, float *splanes) {
    const int64_t total = N * C;
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total; k += (int64_t)gridDim.x * blockDim.x) {
        int64_t n = k / C;
        int c = (int)(k - n * C);
        float x[3] = {points[3 * n], points[3 * n + 1], points[3 * n + 2]}, s[3];
        feats[k] = rhd_triplane_sample_packed(x, packed, C, R, c, agg, s);
        if (splanes)
            for (int p = 0; p < 3; p++) splanes[p * total + k] = s[p];
    }
}

/* One thread per (point, channel): acc [3, R, R, C] += d agg/d s_p * w * dfeats. */
static __global__ void backward_kernel(float *acc, const float *dfeats, const float *points, int64_t N, int C, int R,
                                       int agg, const float *splanes) {
    const int64_t RR = (int64_t)R * R, total = N * C;
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total; k += (int64_t)gridDim.x * blockDim.x) {
        int64_t n = k / C;
        int c = (int)(k - n * C);
        float x[3] = {points[3 * n], points[3 * n + 1], points[3 * n + 2]};
        float s[3] = {0.f, 0.f, 0.f};
        if (agg != RHD_PLANE_MEAN)
            for (int p = 0; p < 3; p++) s[p] = splanes[p * total + k];
        for (int p = 0; p < 3; p++) {
            float gm = dfeats[k] * rhd_plane_factor(agg, p, s);
            float a, b;
            rhd_bilinear_taps t;
            rhd_triplane_project(x, p, &a, &b);
            if (!rhd_bilinear_taps_at(a, b, R, &t)) continue;
            float *base = acc + (int64_t)p * RR * C + c;
            atomicAdd(base + ((int64_t)t.i0 * R + t.j0) * C, t.w00 * gm);
            atomicAdd(base + ((int64_t)t.i0 * R + t.j1) * C, t.w01 * gm);
            atomicAdd(base + ((int64_t)t.i1 * R + t.j0) * C, t.w10 * gm);
            atomicAdd(base + ((int64_t)t.i1 * R + t.j1) * C, t.w11 * gm);
        }
    }
}

// launchers

static dim3 tile_grid(int C, int64_t RR) {
    return dim3((unsigned)((RR + TILE - 1) / TILE), (unsigned)((C + TILE - 1) / TILE), 3);
}

extern "C" void rhd_triplane_pack_cuda(rhd_ctx *ctx, float *packed, const float *planes, int C, int R, int clamp) {
    const int64_t RR = (int64_t)R * R;
    pack_kernel<<<tile_grid(C, RR), dim3(TILE, TILE_ROWS), 0, RHD_CUDA_STREAM(ctx)>>>(packed, planes, C, RR, clamp);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_triplane_forward_packed_cuda(rhd_ctx *ctx, float *feats, const float *points, const float *packed,
                                                 int64_t N, int C, int R, int agg, float *splanes) {
    if (agg == RHD_PLANE_MEAN) splanes = NULL;
    forward_kernel<<<rhd_grid1d(N * C, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(feats, points, packed, N, C, R, agg,
                                                                            splanes);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_triplane_forward_cuda(rhd_ctx *ctx, float *feats, const float *points, const float *planes,
                                          int64_t N, int C, int R, int clamp, int agg, float *splanes) {
    if (N == 0) return;
    const int64_t RR = (int64_t)R * R;
    float *packed = (float *)rhd_ctx_workspace(ctx, sizeof(float) * 3 * (size_t)C * RR);
    rhd_triplane_pack_cuda(ctx, packed, planes, C, R, clamp);
    rhd_triplane_forward_packed_cuda(ctx, feats, points, packed, N, C, R, agg, splanes);
}

extern "C" void rhd_triplane_backward_cuda(rhd_ctx *ctx, float *dplanes, const float *dfeats, const float *points,
                                           const float *planes, int64_t N, int C, int R, int clamp, int agg,
                                           const float *splanes) {
    if (N == 0) return;
    const int64_t RR = (int64_t)R * R;
    size_t bytes = sizeof(float) * 3 * (size_t)C * RR;
    float *acc = (float *)rhd_ctx_workspace(ctx, bytes);
    CUDA_CHECK(cudaMemsetAsync(acc, 0, bytes, RHD_CUDA_STREAM(ctx)));
    backward_kernel<<<rhd_grid1d(N * C, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(acc, dfeats, points, N, C, R, agg,
                                                                             splanes);
    CUDA_CHECK(cudaGetLastError());
    unpack_add_kernel<<<tile_grid(C, RR), dim3(TILE, TILE_ROWS), 0, RHD_CUDA_STREAM(ctx)>>>(dplanes, acc, planes, C, RR,
                                                                                           clamp);
    CUDA_CHECK(cudaGetLastError());
}
