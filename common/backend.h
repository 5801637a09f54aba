/* common/backend.h: the run-time backend context (--device cpu|cuda|auto).
 *
 * The CPU backend is always built. `make CUDA=1` adds the CUDA backend (-DRHD_CUDA); the device is
 * then chosen at run time. Kernels dispatch per op on ctx->backend, so each model assembly exists
 * once and a test can run both backends side by side. On the CUDA backend every tensor pointer
 * handed to a kernel is a device pointer; rhd_buf_* below allocate and copy on the context's side. */
#ifndef RHD_BACKEND_H
#define RHD_BACKEND_H
#include <stddef.h>
#include <stdint.h>
#include "common/err.h"

typedef enum { RHD_BACKEND_CPU = 0, RHD_BACKEND_CUDA = 1 } rhd_backend;

typedef struct rhd_ctx {
    rhd_backend backend;
    int device;            /* CUDA device ordinal */
    int allow_tf32;        /* 0 unless asked: tests and references compare in strict fp32 */
    int allow_bf16;        /* 0 unless asked: convolutions and matmuls on bf16 tensor cores */
    void *stream;          /* cudaStream_t */
    void *cublas;          /* cublasHandle_t */
    void *cudnn;           /* cudnnHandle_t */
    void *workspace;       /* device scratch for cuDNN/cuBLAS, grown on demand */
    size_t workspace_bytes;
    void *scratch16;       /* device scratch for the bf16 copies of --bf16 operands (apart from the */
    size_t scratch16_bytes;/* workspace, which a caller may be holding data in), grown on demand */
    char name[160];        /* "cpu (2 threads, OpenBLAS SkylakeX)" or "cuda:0 NVIDIA H200" */
} rhd_ctx;

#ifdef __cplusplus
extern "C" {
#endif
/* device: "cpu", "cuda", "cuda:N" or "auto" (CUDA when compiled in and a device answers).
 * A CPU build asked for cuda fails with a message saying how to rebuild. */
rhd_ctx *rhd_ctx_open(const char *device, rhd_err *e);
void rhd_ctx_close(rhd_ctx *ctx);
const char *rhd_backend_name(rhd_backend b);
/* --tf32: let cuBLAS and cuDNN use TF32 tensor cores (10-bit mantissa products, fp32 sums and
 * storage) on this context from now on; off (pedantic fp32) by default. The CPU backend has no such
 * mode: there it changes nothing (same bits). The context's name then ends in ", TF32". */
void rhd_ctx_set_tf32(rhd_ctx *ctx, int on);
/* --bf16: convolutions (cuDNN) and matrix products (cuBLAS: linear layers, attention) round their
 * two inputs to bf16 (8-bit mantissa) and run on bf16 tensor cores with fp32 accumulation, as
 * PyTorch's autocast does; the products' results are fp32 for cuBLAS and bf16-rounded for cuDNN
 * (its bf16 convolutions write bf16), then widened. Parameters, gradients, optimiser state,
 * normalisations, softmax and every other op stay fp32. Off by default; the CPU backend has no
 * such mode (same bits). The context's name then ends in ", BF16". */
void rhd_ctx_set_bf16(rhd_ctx *ctx, int on);
/* What output metadata records as the device: "cpu", or "cuda:N <card>" (no thread count, so that
 * files stay byte-identical whatever the thread count). */
const char *rhd_ctx_device_label(const rhd_ctx *ctx);
/* 1 if this build has the CUDA backend and a device is present. */
int rhd_cuda_available(void);
/* The OpenBLAS kernels in use ("SkylakeX", "Haswell", ...). common/blas_core.c makes a process
 * whose OpenBLAS did not know the CPU (and fell back to SSE3 "Prescott") restart with the kernels
 * the CPU can run, before main; OPENBLAS_CORETYPE or RHD_BLAS_CORE=keep turn that off. */
const char *rhd_blas_core(void);

/* Buffers on the context's side (host memory for CPU, device memory for CUDA). Allocation
 * failures are fatal with the size in the message. */
void *rhd_buf_alloc(rhd_ctx *ctx, size_t bytes);
void rhd_buf_free(rhd_ctx *ctx, void *p);
void rhd_buf_zero(rhd_ctx *ctx, void *p, size_t bytes);
void rhd_buf_upload(rhd_ctx *ctx, void *dst, const void *host_src, size_t bytes);
void rhd_buf_download(rhd_ctx *ctx, void *host_dst, const void *src, size_t bytes);
void rhd_buf_copy(rhd_ctx *ctx, void *dst, const void *src, size_t bytes);
void rhd_ctx_sync(rhd_ctx *ctx);
/* Device scratch of at least `bytes` (owned by the context, valid until the next call). */
void *rhd_ctx_workspace(rhd_ctx *ctx, size_t bytes);

#ifdef RHD_CUDA
/* Implemented in common/backend_cuda.cu. */
int rhd_cuda_open(rhd_ctx *ctx, int device, rhd_err *e);
void rhd_cuda_close(rhd_ctx *ctx);
int rhd_cuda_device_count(void);
void rhd_cuda_set_math(rhd_ctx *ctx);  /* the cuBLAS handle's math mode from allow_tf32 / allow_bf16 */
/* ctx->scratch16 grown to at least `bytes` (device memory, valid until the next call). */
void *rhd_cuda_scratch16(rhd_ctx *ctx, size_t bytes);
/* dst[i] = bf16 bits of src[i] (rhd_float_to_bf16: round to nearest even; dst: n uint16_t); and
 * back: dst[i] = src[i] (accumulate: +=), widened exactly (rhd_bf16_to_float). */
void rhd_cuda_to_bf16(rhd_ctx *ctx, void *dst, const float *src, int64_t n);
void rhd_cuda_from_bf16(rhd_ctx *ctx, float *dst, const void *src, int64_t n, int accumulate);
void *rhd_cuda_alloc(size_t bytes);
void rhd_cuda_free(void *p);
void rhd_cuda_memset0(rhd_ctx *ctx, void *p, size_t bytes);
void rhd_cuda_copy(rhd_ctx *ctx, void *dst, const void *src, size_t bytes, int kind); /* 0 h2d, 1 d2h, 2 d2d */
void rhd_cuda_sync(rhd_ctx *ctx);
#endif
#ifdef __cplusplus
}
#endif
#endif
