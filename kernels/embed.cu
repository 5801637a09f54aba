/* kernels/embed.cu: CUDA sinusoidal timestep embedding (contract in embed.h). */
#include "kernels/embed.h"
#include "common/cuda_check.h"

static __global__ void timestep_embed_kernel(float *y, const float *t, int B, int dim) {
    long n = (long)B * dim;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] = rhd_timestep_embed_elem(t[i / dim], (int)(i % dim), dim);
}

// launchers

extern "C" void rhd_timestep_embed_forward_cuda(rhd_ctx *ctx, float *y, const float *t, int B, int dim) {
    long n = (long)B * dim;
    if (n == 0) return;
    timestep_embed_kernel<<<rhd_grid1d(n, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(y, t, B, dim);
    CUDA_CHECK(cudaGetLastError());
}
