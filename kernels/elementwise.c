/* kernels/elementwise.c: residual add, batched transpose and glue moves, CPU reference and dispatch (see
 * elementwise.h). */
#include "kernels/elementwise.h"
#include <string.h>

/* Tile edge of the CPU transpose: a 32x32 float tile of source and destination stays in L1. */
#define TILE 32

static void add_cpu(float *y, const float *a, const float *b, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

static void transpose_cpu(float *y, const float *x, int B, int64_t R, int64_t C) {
    int64_t tr = (R + TILE - 1) / TILE, tc = (C + TILE - 1) / TILE;
#pragma omp parallel for schedule(static) collapse(2)
    for (int b = 0; b < B; b++)
        for (int64_t t = 0; t < tr * tc; t++) {
            int64_t r0 = t / tc * TILE, c0 = t % tc * TILE;
            int64_t r1 = r0 + TILE < R ? r0 + TILE : R, c1 = c0 + TILE < C ? c0 + TILE : C;
            const float *xb = x + (int64_t)b * R * C;
            float *yb = y + (int64_t)b * R * C;
            for (int64_t c = c0; c < c1; c++)
                for (int64_t r = r0; r < r1; r++) yb[c * R + r] = xb[r * C + c];
        }
}

void rhd_add_forward(rhd_ctx *ctx, float *y, const float *a, const float *b, int64_t n) {
    RHD_ASSERT(n >= 0);
    if (n == 0) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_add_forward_cuda(ctx, y, a, b, n); return; }
#endif
    add_cpu(y, a, b, n);
}

void rhd_add_backward(rhd_ctx *ctx, float *da, float *db, const float *dy, int64_t n) {
    RHD_ASSERT(n >= 0);
    if (n == 0) return;
    if (da && da != dy) rhd_buf_copy(ctx, da, dy, sizeof(float) * (size_t)n);
    if (db && db != dy) rhd_buf_copy(ctx, db, dy, sizeof(float) * (size_t)n);
}

void rhd_transpose_forward(rhd_ctx *ctx, float *y, const float *x, int B, int64_t R, int64_t C) {
    RHD_ASSERT(B >= 0 && R >= 0 && C >= 0 && (y != x || B * R * C == 0));
    if ((int64_t)B * R * C == 0) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_transpose_forward_cuda(ctx, y, x, B, R, C); return; }
#endif
    transpose_cpu(y, x, B, R, C);
}

void rhd_transpose_backward(rhd_ctx *ctx, float *dx, const float *dy, int B, int64_t R, int64_t C) {
    rhd_transpose_forward(ctx, dx, dy, B, C, R);
}

void rhd_copy_cols(rhd_ctx *ctx, float *y, int64_t ldy, const float *x, int64_t ldx, int64_t width, int64_t rows) {
    RHD_ASSERT(width >= 0 && rows >= 0 && ldy >= width && ldx >= width);
    if (width == 0 || rows == 0) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_copy_cols_cuda(ctx, y, ldy, x, ldx, width, rows); return; }
#endif
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) memcpy(y + r * ldy, x + r * ldx, sizeof(float) * (size_t)width);
}

void rhd_scale(rhd_ctx *ctx, float *y, const float *x, float s, int64_t n) {
    RHD_ASSERT(n >= 0);
    if (n == 0) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_scale_cuda(ctx, y, x, s, n); return; }
#endif
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = s * x[i];
}

void rhd_sqr_acc(rhd_ctx *ctx, float *y, const float *x, float d, int64_t n) {
    RHD_ASSERT(n >= 0);
    if (n == 0) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_sqr_acc_cuda(ctx, y, x, d, n); return; }
#endif
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] += x[i] * x[i] / d;
}
