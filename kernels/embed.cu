/* kernels/embed.cu: CUDA sinusoidal timestep embedding (contract in embed.h). */
#include "kernels/embed.h"
#include "common/cuda_check.h"

static __global__ void timestep_embed_kernel(float *y, const float *t, int B, int dim) {
    int64_t n = (int64_t)B * dim;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = rhd_timestep_embed_elem(t[i / dim], (int)(i % dim), dim);
}

// launchers

extern "C" void rhd_timestep_embed_forward_cuda(rhd_ctx *ctx, float *y, const float *t, int B, int dim) {
    int64_t n = (int64_t)B * dim;
    if (n == 0) return;
    timestep_embed_kernel<<<rhd_grid1d(n, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(y, t, B, dim);
    CUDA_CHECK(cudaGetLastError());
}
