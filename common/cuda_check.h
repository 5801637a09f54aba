/* common/cuda_check.h: check macros for CUDA, cuBLAS and cuDNN calls (only in .cu files).
 * A failure is an internal error: "<prog>: fatal: CUDA error 'out of memory' in <stmt> at
 * file:line", exit 3, temp files removed. */
#ifndef RHD_CUDA_CHECK_H
#define RHD_CUDA_CHECK_H
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <cudnn.h>
#include "common/err.h"

#define CUDA_CHECK(stmt)                                                                          \
    do {                                                                                          \
        cudaError_t err_ = (stmt);                                                                \
        if (err_ != cudaSuccess)                                                                  \
            rhd_fatal_at(__FILE__, __LINE__, "CUDA error '%s' in %s", cudaGetErrorString(err_), #stmt); \
    } while (0)

#define CUBLAS_CHECK(stmt)                                                                        \
    do {                                                                                          \
        cublasStatus_t st_ = (stmt);                                                              \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                         \
            rhd_fatal_at(__FILE__, __LINE__, "cuBLAS error %d (%s) in %s", (int)st_,               \
                         cublasGetStatusString(st_), #stmt);                                      \
    } while (0)

#define CUDNN_CHECK(stmt)                                                                         \
    do {                                                                                          \
        cudnnStatus_t st_ = (stmt);                                                               \
        if (st_ != CUDNN_STATUS_SUCCESS)                                                          \
            rhd_fatal_at(__FILE__, __LINE__, "cuDNN error '%s' in %s", cudnnGetErrorString(st_), #stmt); \
    } while (0)

#define RHD_CUDA_STREAM(ctx) ((cudaStream_t)(ctx)->stream)
#define RHD_CUBLAS(ctx) ((cublasHandle_t)(ctx)->cublas)
#define RHD_CUDNN(ctx) ((cudnnHandle_t)(ctx)->cudnn)

/* Grid size for n elements at `block` threads, capped for grid-stride loops. */
static inline unsigned rhd_grid1d(long long n, int block) {
    long long g = (n + block - 1) / block;
    if (g < 1) g = 1;
    if (g > 65535LL * 32) g = 65535LL * 32;
    return (unsigned)g;
}
#endif
