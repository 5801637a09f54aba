/* kernels/freq_encode.cu: CUDA frequency encoding (contract in freq_encode.h), one thread per
 * input value. */
#include "kernels/freq_encode.h"
#include "common/cuda_check.h"

static __global__ void freq_encode_forward_kernel(float *y, const float *x, int64_t N, int D, int degree) {
    const int Dout = rhd_freq_encode_dim(D, degree);
    const int64_t total = N * D;
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total; k += (int64_t)gridDim.x * blockDim.x) {
        int64_t n = k / D;
        int d = (int)(k - n * D);
        rhd_freq_encode_value(y + n * Dout, x[k], d, D, degree);
    }
}

static __global__ void freq_encode_backward_kernel(float *dx, const float *dy, const float *x, int64_t N, int D,
                                                   int degree) {
    const int Dout = rhd_freq_encode_dim(D, degree);
    const int64_t total = N * D;
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total; k += (int64_t)gridDim.x * blockDim.x) {
        int64_t n = k / D;
        int d = (int)(k - n * D);
        dx[k] = rhd_freq_encode_grad(dy + n * Dout, x[k], d, D, degree);
    }
}

// launchers

extern "C" void rhd_freq_encode_forward_cuda(rhd_ctx *ctx, float *y, const float *x, int64_t N, int D, int degree) {
    if (N == 0) return;
    freq_encode_forward_kernel<<<rhd_grid1d(N * D, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(y, x, N, D, degree);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_freq_encode_backward_cuda(rhd_ctx *ctx, float *dx, const float *dy, const float *x, int64_t N,
                                              int D, int degree) {
    if (N == 0) return;
    freq_encode_backward_kernel<<<rhd_grid1d(N * D, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(dx, dy, x, N, D, degree);
    CUDA_CHECK(cudaGetLastError());
}
