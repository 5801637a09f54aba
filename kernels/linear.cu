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
    cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N, opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (batch == 1)
        CUBLAS_CHECK(cublasSgemm(RHD_CUBLAS(ctx), opB, opA, N, M, K, &alpha, B, (int)ldb, A, (int)lda, &beta, C, (int)ldc));
    else
        CUBLAS_CHECK(cublasSgemmStridedBatched(RHD_CUBLAS(ctx), opB, opA, N, M, K, &alpha, B, (int)ldb, strideB, A,
                                               (int)lda, strideA, &beta, C, (int)ldc, strideC, batch));
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
