/* kernels/dropout.c: dropout and modulation, CPU reference and dispatch (contracts in dropout.h). */
#include "kernels/dropout.h"
#include <string.h>

static void dropout_cpu(float *y, const float *x, int64_t n, float p, uint64_t seed, uint64_t stream, uint64_t offset) {
    float s = rhd_dropout_scale(p);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = rhd_dropout_elem(x[i], p, s, seed, stream, offset + (uint64_t)i);
}

void rhd_dropout_forward(rhd_ctx *ctx, float *y, const float *x, int64_t n, float p, uint64_t seed, uint64_t stream,
                         uint64_t offset) {
    RHD_ASSERT(n >= 0 && p >= 0.0f && p < 1.0f);
    if (n == 0) return;
    if (p == 0.0f) {
        if (y != x) rhd_buf_copy(ctx, y, x, sizeof(float) * (size_t)n);
        return;
    }
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_dropout_forward_cuda(ctx, y, x, n, p, seed, stream, offset); return; }
#endif
    dropout_cpu(y, x, n, p, seed, stream, offset);
}

void rhd_dropout_backward(rhd_ctx *ctx, float *dx, const float *dy, int64_t n, float p, uint64_t seed, uint64_t stream,
                          uint64_t offset) {
    rhd_dropout_forward(ctx, dx, dy, n, p, seed, stream, offset); /* the same mask and scale */
}

void rhd_modulate_forward(rhd_ctx *ctx, float *y, const float *x, const float *scale, const float *shift, int64_t ld,
                          int N, int C, int64_t HW) {
    RHD_ASSERT(N >= 0 && C >= 0 && HW >= 0 && shift && ld >= C);
    if ((int64_t)N * C * HW == 0) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_modulate_forward_cuda(ctx, y, x, scale, shift, ld, N, C, HW); return; }
#endif
#pragma omp parallel for schedule(static) collapse(2)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            float a = scale ? scale[n * ld + c] : 0.0f, b = shift[n * ld + c];
            const float *xp = x + ((int64_t)n * C + c) * HW;
            float *yp = y + ((int64_t)n * C + c) * HW;
            if (scale)
                for (int64_t i = 0; i < HW; i++) yp[i] = rhd_modulate_elem(xp[i], a, b);
            else
                for (int64_t i = 0; i < HW; i++) yp[i] = xp[i] + b;
        }
}

void rhd_modulate_backward(rhd_ctx *ctx, float *dx, float *dscale, float *dshift, const float *dy, const float *x,
                           const float *scale, int64_t ld, int N, int C, int64_t HW) {
    RHD_ASSERT(N >= 0 && C >= 0 && HW >= 0 && ld >= C && (!dscale || scale));
    if ((int64_t)N * C * HW == 0) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_modulate_backward_cuda(ctx, dx, dscale, dshift, dy, x, scale, ld, N, C, HW);
        return;
    }
#endif
#pragma omp parallel for schedule(static) collapse(2)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const float *g = dy + ((int64_t)n * C + c) * HW, *xp = x + ((int64_t)n * C + c) * HW;
            double sa = 0, sb = 0;
            for (int64_t i = 0; i < HW; i++) sa += (double)g[i] * xp[i], sb += g[i];
            /* the sums read dy before dx (which may alias it) is written */
            if (dx) {
                float m = scale ? 1.0f + scale[n * ld + c] : 1.0f;
                float *d = dx + ((int64_t)n * C + c) * HW;
                for (int64_t i = 0; i < HW; i++) d[i] = g[i] * m;
            }
            if (dscale) dscale[n * ld + c] = (float)sa;
            if (dshift) dshift[n * ld + c] = (float)sb;
        }
}
