/* kernels/reduce_cuda.h: deterministic block reductions for CUDA kernels (only for .cu files).
 * rhd_block_sum adds one double per thread over a block of RHD_RED_BLOCK threads in a fixed tree
 * order, so a sum does not depend on scheduling (losses and gradient norms are bit-reproducible
 * on the device). The result is valid in every thread after the call. */
#ifndef RHD_REDUCE_CUDA_H
#define RHD_REDUCE_CUDA_H
#define RHD_RED_BLOCK 256

static __device__ double rhd_block_sum(double v) {
    __shared__ double buf[RHD_RED_BLOCK];
    buf[threadIdx.x] = v;
    __syncthreads();
    for (int s = RHD_RED_BLOCK / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
        __syncthreads();
    }
    double r = buf[0];
    __syncthreads();
    return r;
}
#endif
