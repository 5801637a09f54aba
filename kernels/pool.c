/* kernels/pool.c: CPU reference of 2-D max pooling (contract in pool.h) and the backend dispatch.
 * Each (n,c) plane belongs to one thread and is walked in a fixed order, so results do not
 * depend on the thread count. */
#include "kernels/pool.h"

int rhd_maxpool2d_out(int in, int k, int s, int p) {
    int span = in + 2 * p - k;
    return span < 0 ? 0 : span / s + 1;
}

int rhd_maxpool2d_check(int H, int W, int k, int s, int p, rhd_err *e) {
    if (k < 1 || s < 1) return rhd_errf(e, "max pooling: kernel %d, stride %d, expected both >= 1", k, s);
    if (p < 0 || p > k / 2)
        return rhd_errf(e, "max pooling: padding %d, expected 0 to %d (half the kernel %d)", p, k / 2, k);
    if (H < 1 || W < 1 || rhd_maxpool2d_out(H, k, s, p) < 1 || rhd_maxpool2d_out(W, k, s, p) < 1)
        return rhd_errf(e, "max pooling: input %dx%d (WxH), expected at least %dx%d for kernel %d, padding %d", W, H,
                        k - 2 * p, k - 2 * p, k, p);
    return 0;
}

static void maxpool_forward_cpu(float *y, int32_t *idx, const float *x, int64_t planes, int H, int W, int k, int s,
                                int p) {
    int OH = rhd_maxpool2d_out(H, k, s, p), OW = rhd_maxpool2d_out(W, k, s, p);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < planes * OH; r++) { /* output row i = r % OH of plane q = r / OH */
        int64_t q = r / OH;
        int i = (int)(r % OH);
        const float *xp = x + q * H * W;
        for (int j = 0; j < OW; j++) {
            int32_t at;
            y[r * OW + j] = rhd_maxpool_window(xp, H, W, k, s, p, i, j, &at);
            if (idx) idx[r * OW + j] = at;
        }
    }
}

static void maxpool_backward_cpu(float *dx, const float *dy, const int32_t *idx, int64_t planes, int H, int W, int k,
                                 int s, int p) {
    int OH = rhd_maxpool2d_out(H, k, s, p), OW = rhd_maxpool2d_out(W, k, s, p);
    int64_t no = (int64_t)OH * OW;
#pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < planes; q++) {
        float *g = dx + q * H * W;
        const float *d = dy + q * no;
        const int32_t *ip = idx + q * no;
        for (int64_t o = 0; o < no; o++) g[ip[o]] += d[o];
    }
}

static void check_args(int N, int C, int H, int W, int k, int s, int p) {
    RHD_ASSERT(N >= 0 && C >= 0 && k >= 1 && s >= 1 && p >= 0 && p <= k / 2);
    RHD_ASSERT(rhd_maxpool2d_out(H, k, s, p) >= 1 && rhd_maxpool2d_out(W, k, s, p) >= 1);
}

void rhd_maxpool2d_forward(rhd_ctx *ctx, float *y, int32_t *idx, const float *x, int N, int C, int H, int W, int k,
                           int s, int p) {
    check_args(N, C, H, W, k, s, p);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_maxpool2d_forward_cuda(ctx, y, idx, x, N, C, H, W, k, s, p);
        return;
    }
#endif
    maxpool_forward_cpu(y, idx, x, (int64_t)N * C, H, W, k, s, p);
}

void rhd_maxpool2d_backward(rhd_ctx *ctx, float *dx, const float *dy, const int32_t *idx, int N, int C, int H, int W,
                            int k, int s, int p) {
    check_args(N, C, H, W, k, s, p);
    RHD_ASSERT(idx);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_maxpool2d_backward_cuda(ctx, dx, dy, idx, N, C, H, W, k, s, p);
        return;
    }
#endif
    maxpool_backward_cpu(dx, dy, idx, (int64_t)N * C, H, W, k, s, p);
}
