/* tests/gpu/ceilings.cu: measure the card's ceilings that the GPU benchmarks are compared with:
 * device-memory bandwidth (a streaming copy), fp32 FMA throughput (a register-resident FMA
 * chain), cuBLAS SGEMM throughput with TF32 off (pedantic fp32) and on, and the bf16 tensor-core
 * GEMM (bf16 inputs, fp32 accumulation and output, as --bf16 runs it: the peak issue 11's training
 * step goal is a fraction of). Prints one
 * "ceiling | value | unit" table. Built by `make CUDA=1 ceilings`; run by tests/gpu/run.sh. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, __LINE__, #x); exit(3); } } while (0)

__global__ void copy_kernel(const float4 *__restrict__ a, float4 *__restrict__ b, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) b[i] = a[i];
}

__global__ void fma_kernel(float *out, int iters, float a, float b) {
    float x0 = threadIdx.x, x1 = x0 + 1, x2 = x0 + 2, x3 = x0 + 3, x4 = x0 + 4, x5 = x0 + 5, x6 = x0 + 6, x7 = x0 + 7;
    for (int i = 0; i < iters; i++) {
        x0 = fmaf(x0, a, b); x1 = fmaf(x1, a, b); x2 = fmaf(x2, a, b); x3 = fmaf(x3, a, b);
        x4 = fmaf(x4, a, b); x5 = fmaf(x5, a, b); x6 = fmaf(x6, a, b); x7 = fmaf(x7, a, b);
    }
    if (x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 == 1234.5f) out[0] = x0; /* keep the work alive */
}

static float time_ms(cudaEvent_t a, cudaEvent_t b) {
    float ms;
    CK(cudaEventElapsedTime(&ms, a, b));
    return ms;
}

int main(void) {
    cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, 0));
    printf("device | %s | sm_%d%d, %d SMs, %.1f GiB\n", p.name, p.major, p.minor, p.multiProcessorCount, p.totalGlobalMem / 1073741824.0);
    cudaEvent_t t0, t1;
    CK(cudaEventCreate(&t0));
    CK(cudaEventCreate(&t1));
    size_t n = (size_t)1 << 28; /* 1 GiB per buffer */
    float4 *a, *b;
    CK(cudaMalloc(&a, n * 4));
    CK(cudaMalloc(&b, n * 4));
    CK(cudaMemset(a, 0, n * 4));
    size_t n4 = n / 4;
    float best = 1e30f;
    for (int r = 0; r < 5; r++) {
        CK(cudaEventRecord(t0));
        copy_kernel<<<p.multiProcessorCount * 8, 512>>>(a, b, n4);
        CK(cudaEventRecord(t1));
        CK(cudaEventSynchronize(t1));
        float ms = time_ms(t0, t1);
        if (ms < best) best = ms;
    }
    printf("memory bandwidth (copy, read+write) | %.0f | GB/s\n", 2.0 * n * 4 / (best * 1e-3) / 1e9);
    int iters = 4096, blocks = p.multiProcessorCount * 16, threads = 256;
    best = 1e30f;
    for (int r = 0; r < 5; r++) {
        CK(cudaEventRecord(t0));
        fma_kernel<<<blocks, threads>>>((float *)b, iters, 0.999f, 0.001f);
        CK(cudaEventRecord(t1));
        CK(cudaEventSynchronize(t1));
        float ms = time_ms(t0, t1);
        if (ms < best) best = ms;
    }
    printf("fp32 FMA throughput | %.1f | TFLOP/s\n", 2.0 * 8 * iters * (double)blocks * threads / (best * 1e-3) / 1e12);
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) { fprintf(stderr, "cublasCreate failed\n"); return 3; }
    int m = 8192;
    float *A, *B, *C, one = 1, zero = 0;
    CK(cudaMalloc(&A, (size_t)m * m * 4));
    CK(cudaMalloc(&B, (size_t)m * m * 4));
    CK(cudaMalloc(&C, (size_t)m * m * 4));
    CK(cudaMemset(A, 0x3f, (size_t)m * m * 4)); /* 0x3f3f3f3f: ~0.75 as fp32 and as bf16, not zeros (whose GEMMs draw less power) */
    CK(cudaMemset(B, 0x3f, (size_t)m * m * 4));
    for (int tf32 = 0; tf32 < 2; tf32++) {
        cublasSetMathMode(h, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH);
        best = 1e30f;
        for (int r = 0; r < 4; r++) {
            CK(cudaEventRecord(t0));
            cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, m, m, &one, A, m, B, m, &zero, C, m);
            CK(cudaEventRecord(t1));
            CK(cudaEventSynchronize(t1));
            float ms = time_ms(t0, t1);
            if (r > 0 && ms < best) best = ms;
        }
        printf("cuBLAS SGEMM 8192^3 (%s) | %.1f | TFLOP/s\n", tf32 ? "TF32" : "fp32", 2.0 * m * m * (double)m / (best * 1e-3) / 1e12);
    }
    /* bf16 x bf16 -> fp32 C, fp32 compute: A and B reuse the first half of the fp32 buffers */
    cublasSetMathMode(h, CUBLAS_DEFAULT_MATH);
    best = 1e30f;
    for (int r = 0; r < 4; r++) {
        CK(cudaEventRecord(t0));
        cublasStatus_t st = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, m, m, &one, A, CUDA_R_16BF, m, B, CUDA_R_16BF, m,
                                         &zero, C, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        CK(cudaEventRecord(t1));
        CK(cudaEventSynchronize(t1));
        if (st != CUBLAS_STATUS_SUCCESS) { fprintf(stderr, "cublasGemmEx (bf16) failed: %d\n", (int)st); return 3; }
        float ms = time_ms(t0, t1);
        if (r > 0 && ms < best) best = ms;
    }
    printf("cuBLAS GEMM 8192^3 (bf16 in, fp32 accumulate) | %.1f | TFLOP/s\n", 2.0 * m * m * (double)m / (best * 1e-3) / 1e12);
    return 0;
}
