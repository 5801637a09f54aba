/* kernels/aware3d.c: the 3D-aware convolution's glue, CPU reference and dispatch (aware3d.h). */
#include "kernels/aware3d.h"

void rhd_aware3d_profiles(rhd_ctx *ctx, float *prof, const float *x, int N, int C, int R) {
    RHD_ASSERT(N >= 1 && C >= 1 && R >= 1);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_aware3d_profiles_cuda(ctx, prof, x, N, C, R); return; }
#endif
#pragma omp parallel for schedule(static) collapse(4)
    for (int n = 0; n < N; n++)
        for (int p = 0; p < 3; p++)
            for (int k = 0; k < 2; k++)
                for (int c = 0; c < C; c++)
                    for (int r = 0; r < R; r++)
                        prof[((((int64_t)n * 3 + p) * 2 + k) * C + c) * R + r] = rhd_aware3d_profile_elem(x, C, R, n, p, k, c, r);
}

void rhd_aware3d_assemble(rhd_ctx *ctx, float *Y, const float *x, const float *prof, int N, int C, int R) {
    RHD_ASSERT(N >= 1 && C >= 1 && R >= 1);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_aware3d_assemble_cuda(ctx, Y, x, prof, N, C, R); return; }
#endif
#pragma omp parallel for schedule(static) collapse(4)
    for (int q = 0; q < 3; q++)
        for (int n = 0; n < N; n++)
            for (int b = 0; b < 3; b++)
                for (int c = 0; c < C; c++) {
                    float *y = Y + ((((int64_t)q * N + n) * 3 + b) * C + c) * R * R;
                    for (int i = 0; i < R; i++)
                        for (int j = 0; j < R; j++)
                            y[(int64_t)i * R + j] = rhd_aware3d_input_elem(x, prof, N, C, R, q, n, b, c, i, j);
                }
}

void rhd_aware3d_assemble_backward(rhd_ctx *ctx, float *dx, float *dprof, const float *dY, int N, int C, int R) {
    RHD_ASSERT(N >= 1 && C >= 1 && R >= 1);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_aware3d_assemble_backward_cuda(ctx, dx, dprof, dY, N, C, R); return; }
#endif
#pragma omp parallel for schedule(static) collapse(4)
    for (int n = 0; n < N; n++)
        for (int p = 0; p < 3; p++)
            for (int k = 0; k < 2; k++)
                for (int c = 0; c < C; c++)
                    for (int r = 0; r < R; r++)
                        dprof[((((int64_t)n * 3 + p) * 2 + k) * C + c) * R + r] = rhd_aware3d_dprofile_elem(dY, N, C, R, n, p, k, c, r);
#pragma omp parallel for schedule(static) collapse(2)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < R; i++)
                for (int col = 0; col < 3 * R; col++)
                    dx[(((int64_t)n * C + c) * R + i) * 3 * R + col] = rhd_aware3d_dx_elem(dY, dprof, N, C, R, n, c, i, col);
}
