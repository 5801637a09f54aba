/* common/backend_cuda.cu: the CUDA half of the backend context: device selection, stream,
 * cuBLAS/cuDNN handles (TF32 off unless ctx->allow_tf32), buffers. */
#include "common/backend.h"
#include "common/cuda_check.h"
#include "common/tensor.h"
#include <stdio.h>

extern "C" int rhd_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no device" error */
        return 0;
    }
    return n;
}

extern "C" int rhd_cuda_open(rhd_ctx *ctx, int device, rhd_err *e) {
    int n = rhd_cuda_device_count();
    if (n == 0) return rhd_errf(e, "--device cuda: no CUDA device is present (use --device cpu)");
    if (device >= n) return rhd_errf(e, "--device cuda:%d: only %d CUDA device(s) present", device, n);
    CUDA_CHECK(cudaSetDevice(device));
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    ctx->device = device;
    snprintf(ctx->name, sizeof ctx->name, "cuda:%d %.100s (sm_%d%d)", device, prop.name, prop.major, prop.minor);
    cudaStream_t s;
    CUDA_CHECK(cudaStreamCreate(&s));
    ctx->stream = s;
    cublasHandle_t h;
    CUBLAS_CHECK(cublasCreate(&h));
    CUBLAS_CHECK(cublasSetStream(h, s));
    ctx->cublas = h;
    rhd_cuda_set_math(ctx);
    cudnnHandle_t d;
    CUDNN_CHECK(cudnnCreate(&d));
    CUDNN_CHECK(cudnnSetStream(d, s));
    ctx->cudnn = d;
    return 0;
}

/* Strict fp32 is pedantic math (no tensor cores in SGEMM). --bf16 needs the default math, under
 * which the bf16 GemmEx calls take the tensor cores and SGEMM still computes in fp32 (TF32 only
 * with CUBLAS_TF32_TENSOR_OP_MATH, i.e. --tf32). */
extern "C" void rhd_cuda_set_math(rhd_ctx *ctx) {
    cublasMath_t m = ctx->allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : ctx->allow_bf16 ? CUBLAS_DEFAULT_MATH : CUBLAS_PEDANTIC_MATH;
    CUBLAS_CHECK(cublasSetMathMode((cublasHandle_t)ctx->cublas, m));
}

extern "C" void *rhd_cuda_scratch16(rhd_ctx *ctx, size_t bytes) {
    if (bytes > ctx->scratch16_bytes) {
        if (ctx->scratch16) CUDA_CHECK(cudaFree(ctx->scratch16));
        ctx->scratch16 = NULL;
        size_t grow = bytes + bytes / 4;
        ctx->scratch16 = rhd_cuda_alloc(grow);
        ctx->scratch16_bytes = grow;
    }
    return ctx->scratch16;
}

extern "C" void rhd_cuda_close(rhd_ctx *ctx) {
    if (ctx->workspace) cudaFree(ctx->workspace);
    if (ctx->scratch16) cudaFree(ctx->scratch16);
    if (ctx->cudnn) cudnnDestroy((cudnnHandle_t)ctx->cudnn);
    if (ctx->cublas) cublasDestroy((cublasHandle_t)ctx->cublas);
    if (ctx->stream) cudaStreamDestroy((cudaStream_t)ctx->stream);
}

extern "C" void *rhd_cuda_alloc(size_t bytes) {
    void *p = NULL;
    cudaError_t err = cudaMalloc(&p, bytes ? bytes : 1);
    if (err == cudaErrorMemoryAllocation) rhd_oom_at(__FILE__, __LINE__, bytes, "device memory");
    if (err != cudaSuccess)
        rhd_fatal_at(__FILE__, __LINE__, "CUDA error '%s' allocating %zu bytes", cudaGetErrorString(err), bytes);
    return p;
}

extern "C" void rhd_cuda_free(void *p) { CUDA_CHECK(cudaFree(p)); }

extern "C" void rhd_cuda_memset0(rhd_ctx *ctx, void *p, size_t bytes) {
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, RHD_CUDA_STREAM(ctx)));
}

extern "C" void rhd_cuda_copy(rhd_ctx *ctx, void *dst, const void *src, size_t bytes, int kind) {
    cudaMemcpyKind k = kind == 0 ? cudaMemcpyHostToDevice : kind == 1 ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, k, RHD_CUDA_STREAM(ctx)));
    if (kind == 1) CUDA_CHECK(cudaStreamSynchronize(RHD_CUDA_STREAM(ctx)));
}

extern "C" void rhd_cuda_sync(rhd_ctx *ctx) { CUDA_CHECK(cudaStreamSynchronize(RHD_CUDA_STREAM(ctx))); }

/* the element conversions are common/tensor.h's, shared with the host (safetensors' bf16) */
static __global__ void to_bf16_kernel(uint16_t *d, const float *s, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        d[i] = rhd_float_to_bf16(s[i]);
}

static __global__ void from_bf16_kernel(float *d, const uint16_t *s, int64_t n, int acc) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        d[i] = acc ? d[i] + rhd_bf16_to_float(s[i]) : rhd_bf16_to_float(s[i]);
}

extern "C" void rhd_cuda_to_bf16(rhd_ctx *ctx, void *dst, const float *src, int64_t n) {
    if (n <= 0) return;
    to_bf16_kernel<<<rhd_grid1d(n, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>((uint16_t *)dst, src, n);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_cuda_from_bf16(rhd_ctx *ctx, float *dst, const void *src, int64_t n, int accumulate) {
    if (n <= 0) return;
    from_bf16_kernel<<<rhd_grid1d(n, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(dst, (const uint16_t *)src, n, accumulate);
    CUDA_CHECK(cudaGetLastError());
}
