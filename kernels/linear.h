/* kernels/linear.h: fully connected layers and (batched) matrix products, fp32, row-major.
 *
 * Mirrors torch.nn.functional.linear (y = x W^T + b, W stored [out, in] as in every checkpoint:
 * the decoder MLP of Renderer/TriplaneFit/network.py, the UNet's embedding and attention
 * projections of pretrained_diffusion/unet.py) and torch.matmul on strided batches (attention).
 * CPU: OpenBLAS cblas_sgemm. CUDA: cuBLAS (pedantic fp32 unless ctx->allow_tf32); row-major
 * products are computed as the column-major product of the transposes (operands swapped).
 *
 * Contract:
 *   rhd_linear_forward   y = x W^T + b                                       (=)
 *   rhd_linear_backward  dx = dy W (=);  dW += dy^T x;  db += sum over rows of dy
 *                        any of dx, dW, db may be NULL (not wanted); b may be NULL (no bias).
 *   rhd_matmul*          C = alpha op(A) op(B) + beta C, op(X) = X or X^T per flag; with
 *                        beta = 0, C is written without being read (NaNs in C do not leak).
 *
 *
 * CPU threading: every CPU GEMM of the suite goes through rhd_sgemm_cpu, which runs OpenBLAS
 * single-threaded on pieces of C handed out to the OpenMP threads. OpenBLAS's own pthread pool
 * and the OpenMP pool of the other kernels would otherwise compete for the cores (a 3x3 conv,
 * OpenMP im2col then threaded sgemm, ran several times slower with two pools on 2 cores). The
 * pieces depend on the shape only, and the bias gradient sums rows in a fixed order in double,
 * so results do not depend on the thread count. */
#ifndef RHD_KERNELS_LINEAR_H
#define RHD_KERNELS_LINEAR_H
#include <stdint.h>
#include "common/backend.h"

#ifdef __cplusplus
extern "C" {
#endif
/* y (N,out) = x (N,in) W (out,in)^T + b (out) */
void rhd_linear_forward(rhd_ctx *ctx, float *y, const float *x, const float *W, const float *b, int N, int in, int out);
/* The same where each row is a sample of a batch (the networks' linear layers): on the CPU every
 * row is computed alone in a fixed order, so a sample's row does not depend on the rows beside it
 * (OpenBLAS runs GEMM rows in pairs and a leftover odd row through another kernel whose sums round
 * differently: an unguided or upsampled sample changed in the last bits with its batch). Slower
 * than the GEMM for many rows; the decoder's points keep rhd_linear_forward. CUDA: as
 * rhd_linear_forward. */
void rhd_linear_forward_rows(rhd_ctx *ctx, float *y, const float *x, const float *W, const float *b, int N, int in,
                             int out);
/* dx (N,in) = dy (N,out) W;  dW (out,in) += dy^T x;  db (out) += sum_n dy[n,:] */
void rhd_linear_backward(rhd_ctx *ctx, float *dx, float *dW, float *db, const float *dy, const float *x, const float *W,
                         int N, int in, int out);

/* C (M,N) = alpha op(A) op(B) + beta C for contiguous matrices: op(A) is (M,K), op(B) is (K,N);
 * A is stored (M,K) or, with transA, (K,M); B is stored (K,N) or, with transB, (N,K). */
void rhd_matmul(rhd_ctx *ctx, float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB,
                float alpha, float beta);

/* The same for `batch` products C[i] = alpha op(A[i]) op(B[i]) + beta C[i], where X[i] starts at
 * X + i * strideX and rows of X are ldX floats apart (ldX >= the stored row length). Strides
 * may be 0 (one operand shared by the whole batch), e.g. per-head attention over a head-major
 * [T, 3C] qkv buffer: A = q of head h at qkv + 3*d*h, lda = 3C, strideA = 3*d. */
void rhd_matmul_strided_batched(rhd_ctx *ctx, float *C, const float *A, const float *B, int batch, int M, int N, int K,
                                int transA, int transB, float alpha, float beta, int64_t lda, int64_t strideA, int64_t ldb,
                                int64_t strideB, int64_t ldc, int64_t strideC);

/* The CPU GEMM behind every op (row-major, BLAS argument order): C (M,N) = alpha op(A) op(B) +
 * beta C. Cuts C into slabs of 128 rows or columns (and a long K into chunks when C is small),
 * each piece one single-threaded cblas_sgemm on an OpenMP thread; inside an OpenMP parallel
 * region it runs on the calling thread. The first call sets OpenBLAS to one thread for the whole
 * process: call this, not cblas_sgemm, so that the two thread pools never meet. */
void rhd_sgemm_cpu(int transA, int transB, int M, int N, int K, float alpha, const float *A, int64_t lda, const float *B,
                   int64_t ldb, float beta, float *C, int64_t ldc);

#ifdef RHD_CUDA
void rhd_linear_forward_cuda(rhd_ctx *ctx, float *y, const float *x, const float *W, const float *b, int N, int in, int out);
void rhd_linear_backward_cuda(rhd_ctx *ctx, float *dx, float *dW, float *db, const float *dy, const float *x,
                              const float *W, int N, int in, int out);
void rhd_matmul_strided_batched_cuda(rhd_ctx *ctx, float *C, const float *A, const float *B, int batch, int M, int N,
                                     int K, int transA, int transB, float alpha, float beta, int64_t lda, int64_t strideA,
                                     int64_t ldb, int64_t strideB, int64_t ldc, int64_t strideC);
/* Every cuBLAS product of the project (linear layers, matmuls, attention) goes through this one
 * call, in cuBLAS's column-major convention: C = alpha op(A) op(B) + beta C for `batch` matrices
 * at strides sA, sB, sC. SGEMM (pedantic fp32, or TF32 under --tf32); with ctx->allow_bf16 (--bf16)
 * A and B are rounded to bf16 into ctx->scratch16 and multiplied on the bf16 tensor cores with
 * fp32 accumulation into the fp32 C (cublasGemmStridedBatchedEx, CUBLAS_COMPUTE_32F). */
void rhd_cuda_gemm(rhd_ctx *ctx, int transa, int transb, int m, int n, int k, float alpha, const float *A, int64_t lda,
                   int64_t sA, const float *B, int64_t ldb, int64_t sB, float beta, float *C, int64_t ldc, int64_t sC,
                   int batch);
#endif
#ifdef __cplusplus
}
#endif
#endif
