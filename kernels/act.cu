/* kernels/act.cu: elementwise activations on CUDA (the math is the RHD_HD helpers of act.h). */
#include "kernels/act.h"
#include "common/cuda_check.h"

template <int A>
static __global__ void act_forward_kernel(float *y, const float *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = rhd_act_apply((rhd_act)A, x[i]);
}

template <int A>
static __global__ void act_backward_kernel(float *dx, const float *dy, const float *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dx[i] = dy[i] * rhd_act_grad((rhd_act)A, x[i]);
}

// launchers

template <int A>
static void act_forward_launch(rhd_ctx *ctx, float *y, const float *x, int64_t n) {
    act_forward_kernel<A><<<rhd_grid1d(n, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(y, x, n);
}
template <int A>
static void act_backward_launch(rhd_ctx *ctx, float *dx, const float *dy, const float *x, int64_t n) {
    act_backward_kernel<A><<<rhd_grid1d(n, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(dx, dy, x, n);
}

extern "C" void rhd_act_forward_cuda(rhd_ctx *ctx, float *y, const float *x, int64_t n, rhd_act a) {
    switch (a) {
    case RHD_ACT_RELU: act_forward_launch<RHD_ACT_RELU>(ctx, y, x, n); break;
    case RHD_ACT_SILU: act_forward_launch<RHD_ACT_SILU>(ctx, y, x, n); break;
    case RHD_ACT_SOFTPLUS: act_forward_launch<RHD_ACT_SOFTPLUS>(ctx, y, x, n); break;
    case RHD_ACT_SIGMOID: act_forward_launch<RHD_ACT_SIGMOID>(ctx, y, x, n); break;
    case RHD_ACT_TRUNC_EXP: act_forward_launch<RHD_ACT_TRUNC_EXP>(ctx, y, x, n); break;
    default: act_forward_launch<RHD_ACT_IDENTITY>(ctx, y, x, n); break;
    }
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_act_backward_cuda(rhd_ctx *ctx, float *dx, const float *dy, const float *x, int64_t n, rhd_act a) {
    switch (a) {
    case RHD_ACT_RELU: act_backward_launch<RHD_ACT_RELU>(ctx, dx, dy, x, n); break;
    case RHD_ACT_SILU: act_backward_launch<RHD_ACT_SILU>(ctx, dx, dy, x, n); break;
    case RHD_ACT_SOFTPLUS: act_backward_launch<RHD_ACT_SOFTPLUS>(ctx, dx, dy, x, n); break;
    case RHD_ACT_SIGMOID: act_backward_launch<RHD_ACT_SIGMOID>(ctx, dx, dy, x, n); break;
    case RHD_ACT_TRUNC_EXP: act_backward_launch<RHD_ACT_TRUNC_EXP>(ctx, dx, dy, x, n); break;
    default: act_backward_launch<RHD_ACT_IDENTITY>(ctx, dx, dy, x, n); break;
    }
    CUDA_CHECK(cudaGetLastError());
}
