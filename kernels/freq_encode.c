/* kernels/freq_encode.c: CPU reference of the frequency encoding (contract in freq_encode.h) and
 * the backend dispatch. Rows are independent, so any OpenMP schedule gives the same result. */
#include "kernels/freq_encode.h"
#include "common/err.h"

void rhd_freq_encode_forward(rhd_ctx *ctx, float *y, const float *x, int64_t N, int D, int degree) {
    RHD_ASSERT(N >= 0 && D > 0 && degree >= 0);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_freq_encode_forward_cuda(ctx, y, x, N, D, degree);
        return;
    }
#endif
    const int Dout = rhd_freq_encode_dim(D, degree);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int d = 0; d < D; d++) rhd_freq_encode_value(y + n * Dout, x[n * D + d], d, D, degree);
}

void rhd_freq_encode_backward(rhd_ctx *ctx, float *dx, const float *dy, const float *x, int64_t N, int D, int degree) {
    RHD_ASSERT(N >= 0 && D > 0 && degree >= 0);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_freq_encode_backward_cuda(ctx, dx, dy, x, N, D, degree);
        return;
    }
#endif
    const int Dout = rhd_freq_encode_dim(D, degree);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int d = 0; d < D; d++) dx[n * D + d] = rhd_freq_encode_grad(dy + n * Dout, x[n * D + d], d, D, degree);
}
