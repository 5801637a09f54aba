/* kernels/linear.cu: linear layers and matrix products on CUDA (cuBLAS, row-major by operand swap). */
#include "kernels/linear.h"
#include "common/cuda_check.h"

/* y[n, :] = b for every row n */
static __global__ void fill_rows_kernel(float *y, const float *b, int64_t rows, int cols) {
    int64_t total = rows * cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = b[i % cols];
}

/* db[c] += sum_r dy[r, c]: a block owns 32 columns; its 32 x 32 threads stride over the rows in
 * double, then one fixed-order sum per column (deterministic). */
static __global__ void col_sum_acc_kernel(float *db, const float *dy, int rows, int cols) {
    __shared__ double part[32][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    double s = 0;
    if (c < cols)
        for (int r = threadIdx.y; r < rows; r += blockDim.y) s += dy[(int64_t)r * cols + c];
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        double t = 0;
        for (int k = 0; k < (int)blockDim.y; k++) t += part[k][threadIdx.x];
        db[c] += (float)t;
    }
}

static __global__ void scale_kernel(float *c, int M, int N, int64_t ldc, float beta) {
    int64_t total = (int64_t)M * N;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        float *p = c + (i / N) * ldc + i % N;
        *p = beta == 0.0f ? 0.0f : beta * *p;
    }
}

/* Elements an operand of `batch` column-major matrices spans: rows x cols stored with leading
 * dimension ld, matrix i at i * stride. */
static int64_t operand_extent(int64_t rows, int64_t cols, int64_t ld, int64_t stride, int batch) {
    if (rows == 0 || cols == 0) return 0;
    return (int64_t)(batch - 1) * stride + ld * (cols - 1) + rows;
}

extern "C" void rhd_cuda_gemm(rhd_ctx *ctx, int transa, int transb, int m, int n, int k, float alpha, const float *A,
                              int64_t lda, int64_t sA, const float *B, int64_t ldb, int64_t sB, float beta, float *C,
                              int64_t ldc, int64_t sC, int batch) {
    cublasOperation_t opA = transa ? CUBLAS_OP_T : CUBLAS_OP_N, opB = transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (!ctx->allow_bf16) {
        if (batch == 1)
            CUBLAS_CHECK(cublasSgemm(RHD_CUBLAS(ctx), opA, opB, m, n, k, &alpha, A, (int)lda, B, (int)ldb, &beta, C, (int)ldc));
        else
            CUBLAS_CHECK(cublasSgemmStridedBatched(RHD_CUBLAS(ctx), opA, opB, m, n, k, &alpha, A, (int)lda, sA, B, (int)ldb,
                                                   sB, &beta, C, (int)ldc, sC, batch));
        return;
    }
    /* --bf16: both operands rounded into the bf16 scratch (their whole strided extent), fp32 out */
    int64_t nA = operand_extent(transa ? k : m, transa ? m : k, lda, sA, batch);
    int64_t nB = operand_extent(transb ? n : k, transb ? k : n, ldb, sB, batch);
    int64_t offB = (nA + 127) & ~(int64_t)127;
    char *s = (char *)rhd_cuda_scratch16(ctx, 2 * (size_t)(offB + nB) + 256);
    void *A16 = s, *B16 = s + 2 * offB;
    rhd_cuda_to_bf16(ctx, A16, A, nA);
    rhd_cuda_to_bf16(ctx, B16, B, nB);
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(RHD_CUBLAS(ctx), opA, opB, m, n, k, &alpha, A16, CUDA_R_16BF, (int)lda, sA,
                                            B16, CUDA_R_16BF, (int)ldb, sB, &beta, C, CUDA_R_32F, (int)ldc, sC, batch,
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// launchers

extern "C" void rhd_matmul_strided_batched_cuda(rhd_ctx *ctx, float *C, const float *A, const float *B, int batch,
                                                int M, int N, int K, int transA, int transB, float alpha, float beta,
                                                int64_t lda, int64_t strideA, int64_t ldb, int64_t strideB, int64_t ldc,
                                                int64_t strideC) {
    if (K == 0) { /* no product: C = beta C */
        for (int i = 0; i < batch; i++)
            scale_kernel<<<rhd_grid1d((int64_t)M * N, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(C + i * strideC, M, N, ldc, beta);
        CUDA_CHECK(cudaGetLastError());
        return;
    }
    /* Row-major C (M,N) is column-major C^T (N,M) = op(B)^T op(A)^T, and a row-major X with
     * leading dimension ld is the column-major X^T with the same ld: pass B first, then A. */
    rhd_cuda_gemm(ctx, transB, transA, N, M, K, alpha, B, ldb, strideB, A, lda, strideA, beta, C, ldc, strideC, batch);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_linear_forward_cuda(rhd_ctx *ctx, float *y, const float *x, const float *W, const float *b, int N,
                                        int in, int out) {
    if (b) {
        fill_rows_kernel<<<rhd_grid1d((int64_t)N * out, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(y, b, N, out);
        CUDA_CHECK(cudaGetLastError());
    }
    rhd_matmul_strided_batched_cuda(ctx, y, x, W, 1, N, out, in, 0, 1, 1.0f, b ? 1.0f : 0.0f, in, 0, in, 0, out, 0);
}

extern "C" void rhd_linear_backward_cuda(rhd_ctx *ctx, float *dx, float *dW, float *db, const float *dy, const float *x,
                                         const float *W, int N, int in, int out) {
    if (dx) rhd_matmul_strided_batched_cuda(ctx, dx, dy, W, 1, N, in, out, 0, 0, 1.0f, 0.0f, out, 0, in, 0, in, 0);
    if (dW) rhd_matmul_strided_batched_cuda(ctx, dW, dy, x, 1, out, in, N, 1, 0, 1.0f, 1.0f, out, 0, in, 0, in, 0);
    if (db) {
        col_sum_acc_kernel<<<(out + 31) / 32, dim3(32, 32), 0, RHD_CUDA_STREAM(ctx)>>>(db, dy, N, out);
        CUDA_CHECK(cudaGetLastError());
    }
}
