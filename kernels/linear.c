/* kernels/linear.c: linear layers and matrix products, CPU reference (OpenBLAS) and dispatch. */
#include "kernels/linear.h"
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Work split of a CPU GEMM. The split depends on the shape only, never on the thread count:
 * OpenBLAS rounds an entry of C differently depending on the shape of the call it is part of,
 * so a split that followed the thread count would make results depend on it. */
#define GEMM_PARALLEL_MIN_MACS (1L << 18) /* below this, one call on the calling thread */
#define GEMM_MAX_SLABS 8                  /* C is cut into 2, 4 or 8 slabs of rows or columns, */
#define GEMM_SLAB_MIN 256                 /* each at least this wide where possible */
#define GEMM_KCHUNK 1024                  /* few slabs and a long K: K is cut into chunks */
#define GEMM_MAX_KCHUNKS 16

static void sgemm1(int transA, int transB, int M, int N, int K, float alpha, const float *A, int64_t lda, const float *B,
                   int64_t ldb, float beta, float *C, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K, alpha,
                A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

void rhd_sgemm_cpu(int transA, int transB, int M, int N, int K, float alpha, const float *A, int64_t lda, const float *B,
                   int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* no product: C = beta C (sgemm would leave C alone for K = 0) */
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) C[(int64_t)m * ldc + n] = beta == 0.0f ? 0.0f : beta * C[(int64_t)m * ldc + n];
        return;
    }
    int nested = 0; /* inside a parallel region (even a one-thread one): one call, as documented */
#ifdef _OPENMP
    nested = omp_get_level() > 0;
#endif
    if (nested || (double)M * N * K < GEMM_PARALLEL_MIN_MACS) {
        sgemm1(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* Slabs along the longer side of C, the other side whole. OpenBLAS repacks the shared
     * operand for every slab (the packing costs about what 25 multiply-adds per value do), so
     * slabs are wide; their count is a power of two so that 2 or 4 threads share them evenly. */
    const int split_n = N >= M, len = split_n ? N : M;
    int nsplit = len >= GEMM_SLAB_MIN ? 2 : 1; /* halves of at least GEMM_SLAB_MIN / 2 */
    while (nsplit < GEMM_MAX_SLABS && len / (2 * nsplit) >= GEMM_SLAB_MIN) nsplit *= 2;
    const int slab = ((len + nsplit - 1) / nsplit + 15) / 16 * 16, nslab = (len + slab - 1) / slab;
    int nk = 1;
    if (nslab < 4 && K >= 2 * GEMM_KCHUNK) nk = K / GEMM_KCHUNK < GEMM_MAX_KCHUNKS ? K / GEMM_KCHUNK : GEMM_MAX_KCHUNKS;
    if (nk == 1) {
#pragma omp parallel for schedule(dynamic, 1)
        for (int t = 0; t < nslab; t++) {
            int64_t lo = (int64_t)t * slab, n = lo + slab < len ? slab : len - lo;
            if (split_n) /* columns [lo, lo+n) of C and of op(B) */
                sgemm1(transA, transB, M, (int)n, K, alpha, A, lda, transB ? B + lo * ldb : B + lo, ldb, beta, C + lo,
                       ldc);
            else /* rows [lo, lo+n) of C and of op(A) */
                sgemm1(transA, transB, (int)n, N, K, alpha, transA ? A + lo : A + lo * lda, lda, B, ldb, beta,
                       C + lo * ldc, ldc);
        }
        return;
    }
    /* C is small and K long (a weight gradient over a big batch): products of K chunks into
     * scratch, then added in chunk order. */
    const int64_t MN = (int64_t)M * N;
    float *part = rhd_xmalloc(sizeof(float) * nk * MN);
#pragma omp parallel for schedule(dynamic, 1)
    for (int c = 0; c < nk; c++) {
        int64_t k0 = (int64_t)K * c / nk, k1 = (int64_t)K * (c + 1) / nk;
        sgemm1(transA, transB, M, N, (int)(k1 - k0), alpha, transA ? A + k0 * lda : A + k0, lda,
               transB ? B + k0 : B + k0 * ldb, ldb, 0.0f, part + c * MN, N);
    }
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            float s = part[(int64_t)m * N + n];
            for (int c = 1; c < nk; c++) s += part[c * MN + (int64_t)m * N + n];
            float *o = C + (int64_t)m * ldc + n;
            *o = beta == 0.0f ? s : beta * *o + s;
        }
    free(part);
}

/* Batches of small products run one product per thread; large ones split each product. */
static void matmul_cpu(float *C, const float *A, const float *B, int batch, int M, int N, int K, int transA, int transB,
                       float alpha, float beta, int64_t lda, int64_t sA, int64_t ldb, int64_t sB, int64_t ldc, int64_t sC) {
    if (batch > 1 && (double)M * N * K < 4.0 * GEMM_PARALLEL_MIN_MACS) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < batch; i++)
            rhd_sgemm_cpu(transA, transB, M, N, K, alpha, A + i * sA, lda, B + i * sB, ldb, beta, C + i * sC, ldc);
        return;
    }
    for (int i = 0; i < batch; i++)
        rhd_sgemm_cpu(transA, transB, M, N, K, alpha, A + i * sA, lda, B + i * sB, ldb, beta, C + i * sC, ldc);
}

/* db (cols) += sum over rows of dy (rows, cols); columns split over threads, rows summed in
 * order in double, so the result does not depend on the thread count. */
static void col_sum_acc_cpu(float *db, const float *dy, int rows, int cols) {
    enum { CB = 64 };
    int nb = (cols + CB - 1) / CB;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nb; blk++) {
        int c0 = blk * CB, c1 = c0 + CB < cols ? c0 + CB : cols;
        double acc[CB] = {0};
        for (int r = 0; r < rows; r++) {
            const float *row = dy + (int64_t)r * cols;
            for (int c = c0; c < c1; c++) acc[c - c0] += row[c];
        }
        for (int c = c0; c < c1; c++) db[c] += (float)acc[c - c0];
    }
}

/* rhd_linear_forward_rows on the CPU: each output a dot product of 8 interleaved partial sums
 * added in a fixed order (vectorisable, the same whatever N and the thread count), the bias last. */
static float dot8(const float *a, const float *w, int n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) s[l] += a[i + l] * w[i + l];
    for (int l = 0; i < n; i++, l++) s[l] += a[i] * w[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static void linear_rows_cpu(float *y, const float *x, const float *W, const float *b, int N, int in, int out) {
#pragma omp parallel for schedule(static)
    for (int o = 0; o < out; o++)
        for (int64_t n = 0; n < N; n++) {
            const float d = dot8(x + n * in, W + (int64_t)o * in, in);
            y[n * out + o] = b ? d + b[o] : d;
        }
}

static void linear_forward_cpu(float *y, const float *x, const float *W, const float *b, int N, int in, int out) {
    if (b) {
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < N; n++) memcpy(y + n * out, b, sizeof(float) * out);
    }
    matmul_cpu(y, x, W, 1, N, out, in, 0, 1, 1.0f, b ? 1.0f : 0.0f, in, 0, in, 0, out, 0);
}

static void linear_backward_cpu(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W,
                                int N, int in, int out) {
    if (dx) matmul_cpu(dx, dy, W, 1, N, in, out, 0, 0, 1.0f, 0.0f, out, 0, in, 0, in, 0);
    if (dW) matmul_cpu(dW, dy, x, 1, out, in, N, 1, 0, 1.0f, 1.0f, out, 0, in, 0, in, 0);
    if (db) col_sum_acc_cpu(db, dy, N, out);
}

/* The two forwards differ only on the CPU: the GEMM, or each row alone (row-invariant). */
static void linear_forward(rhd_ctx *ctx, float *y, const float *x, const float *W, const float *b, int N, int in,
                           int out, int rows) {
    RHD_ASSERT(N >= 0 && in > 0 && out > 0);
    if (N == 0) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_linear_forward_cuda(ctx, y, x, W, b, N, in, out); return; }
#endif
    if (rows) linear_rows_cpu(y, x, W, b, N, in, out);
    else linear_forward_cpu(y, x, W, b, N, in, out);
}

void rhd_linear_forward(rhd_ctx *ctx, float *y, const float *x, const float *W, const float *b, int N, int in, int out) {
    linear_forward(ctx, y, x, W, b, N, in, out, 0);
}

void rhd_linear_forward_rows(rhd_ctx *ctx, float *y, const float *x, const float *W, const float *b, int N, int in,
                             int out) {
    linear_forward(ctx, y, x, W, b, N, in, out, 1);
}

void rhd_linear_backward(rhd_ctx *ctx, float *dx, float *dW, float *db, const float *dy, const float *x, const float *W,
                         int N, int in, int out) {
    RHD_ASSERT(N >= 0 && in > 0 && out > 0);
    if (N == 0) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_linear_backward_cuda(ctx, dx, dW, db, dy, x, W, N, in, out); return; }
#endif
    linear_backward_cpu(dx, dW, db, dy, x, W, N, in, out);
}

void rhd_matmul_strided_batched(rhd_ctx *ctx, float *C, const float *A, const float *B, int batch, int M, int N, int K,
                                int transA, int transB, float alpha, float beta, int64_t lda, int64_t strideA, int64_t ldb,
                                int64_t strideB, int64_t ldc, int64_t strideC) {
    RHD_ASSERT(batch >= 0 && M >= 0 && N >= 0 && K >= 0);
    RHD_ASSERT(lda >= (transA ? M : K) && ldb >= (transB ? K : N) && ldc >= N);
    RHD_ASSERT(lda >= 1 && ldb >= 1 && ldc >= 1);
    if (batch == 0 || M == 0 || N == 0) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_matmul_strided_batched_cuda(ctx, C, A, B, batch, M, N, K, transA, transB, alpha, beta, lda, strideA, ldb,
                                        strideB, ldc, strideC);
        return;
    }
#endif
    matmul_cpu(C, A, B, batch, M, N, K, transA, transB, alpha, beta, lda, strideA, ldb, strideB, ldc, strideC);
}

void rhd_matmul(rhd_ctx *ctx, float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB,
                float alpha, float beta) {
    int64_t lda = transA ? M : K, ldb = transB ? K : N, ldc = N;
    rhd_matmul_strided_batched(ctx, C, A, B, 1, M, N, K, transA, transB, alpha, beta, lda > 1 ? lda : 1, 0,
                               ldb > 1 ? ldb : 1, 0, ldc > 1 ? ldc : 1, 0);
}
