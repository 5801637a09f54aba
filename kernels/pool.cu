/* kernels/pool.cu: CUDA 2-D max pooling (contract in pool.h). Forward: one thread per output,
 * the window scan of rhd_maxpool_window (shared with the CPU). Backward: one thread per input
 * element gathers the dy of the outputs whose window covers it and whose idx points at it, in
 * row-major output order: the CPU's summation order, no atomics. */
#include "kernels/pool.h"
#include "common/cuda_check.h"

#define POOL_BLOCK 256
#define GRID_STRIDE(i, n) for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

static __global__ void maxpool_fwd_kernel(float *y, int32_t *idx, const float *x, int64_t planes, int H, int W, int k,
                                          int s, int p, int OH, int OW) {
    GRID_STRIDE(o, planes * OH * OW) {
        int j = (int)(o % OW);
        int64_t r = o / OW;
        int i = (int)(r % OH);
        int64_t q = r / OH;
        int32_t at;
        y[o] = rhd_maxpool_window(x + q * H * W, H, W, k, s, p, i, j, &at);
        if (idx) idx[o] = at;
    }
}

static __global__ void maxpool_bwd_kernel(float *dx, const float *dy, const int32_t *idx, int64_t planes, int H, int W,
                                          int k, int s, int p, int OH, int OW) {
    GRID_STRIDE(e, planes * H * W) {
        int w = (int)(e % W);
        int64_t r = e / W;
        int h = (int)(r % H);
        int64_t q = r / H;
        int i0, i1, j0, j1;
        rhd_maxpool_cover(h, OH, k, s, p, &i0, &i1);
        rhd_maxpool_cover(w, OW, k, s, p, &j0, &j1);
        const float *d = dy + q * OH * OW;
        const int32_t *ip = idx + q * OH * OW;
        int32_t me = h * W + w;
        float acc = dx[e];
        for (int i = i0; i <= i1; i++)
            for (int j = j0; j <= j1; j++)
                if (ip[i * OW + j] == me) acc += d[i * OW + j];
        dx[e] = acc;
    }
}

// launchers

extern "C" void rhd_maxpool2d_forward_cuda(rhd_ctx *ctx, float *y, int32_t *idx, const float *x, int N, int C, int H,
                                           int W, int k, int s, int p) {
    int OH = rhd_maxpool2d_out(H, k, s, p), OW = rhd_maxpool2d_out(W, k, s, p);
    int64_t planes = (int64_t)N * C, n = planes * OH * OW;
    if (n == 0) return;
    maxpool_fwd_kernel<<<rhd_grid1d(n, POOL_BLOCK), POOL_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(y, idx, x, planes, H, W, k,
                                                                                          s, p, OH, OW);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_maxpool2d_backward_cuda(rhd_ctx *ctx, float *dx, const float *dy, const int32_t *idx, int N, int C,
                                            int H, int W, int k, int s, int p) {
    int OH = rhd_maxpool2d_out(H, k, s, p), OW = rhd_maxpool2d_out(W, k, s, p);
    int64_t planes = (int64_t)N * C, n = planes * H * W;
    if (n == 0) return;
    maxpool_bwd_kernel<<<rhd_grid1d(n, POOL_BLOCK), POOL_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(dx, dy, idx, planes, H, W,
                                                                                          k, s, p, OH, OW);
    CUDA_CHECK(cudaGetLastError());
}
