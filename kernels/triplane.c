/* kernels/triplane.c: CPU reference of triplane sampling (see triplane.h for the contract) and
 * the backend dispatch. */
#include "kernels/triplane.h"
#include "common/err.h"
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static inline int point_taps(const float *points, int64_t n, int p, int R, rhd_bilinear_taps *t) {
    float a, b;
    rhd_triplane_project(points + 3 * n, p, &a, &b);
    return rhd_bilinear_taps_at(a, b, R, t);
}

static void triplane_forward_cpu(float *feats, const float *points, const float *planes, int64_t N, int C, int R,
                                 int clamp) {
    const int64_t RR = (int64_t)R * R;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        rhd_bilinear_taps t[3];
        int ok[3];
        for (int p = 0; p < 3; p++) ok[p] = point_taps(points, n, p, R, &t[p]);
        float *f = feats + n * C;
        for (int c = 0; c < C; c++) {
            float s = 0.f;
            for (int p = 0; p < 3; p++)
                if (ok[p]) s += rhd_bilinear_sample(planes + ((int64_t)p * C + c) * RR, R, &t[p], clamp);
            f[c] = s / 3.f;
        }
    }
}

/* dplanes row (p, i): add the taps of point n that lie on row i (top: the i0 taps, bottom: the
 * i1 taps). */
static inline void scatter_row(float *dplanes, const float *dfeats, const float *planes, int64_t n, int p, int C,
                               int R, const rhd_bilinear_taps *t, int top, int clamp) {
    const int64_t RR = (int64_t)R * R;
    int i = top ? t->i0 : t->i1;
    float wa = top ? t->w00 : t->w10, wb = top ? t->w01 : t->w11;
    const float *g = dfeats + n * C;
    for (int c = 0; c < C; c++) {
        int64_t row = ((int64_t)p * C + c) * RR + (int64_t)i * R;
        float gm = g[c] * RHD_TRIPLANE_MEAN;
        if (!clamp || rhd_triplane_grad_passes(planes[row + t->j0], clamp)) dplanes[row + t->j0] += wa * gm;
        if (!clamp || rhd_triplane_grad_passes(planes[row + t->j1], clamp)) dplanes[row + t->j1] += wb * gm;
    }
}

static void triplane_backward_cpu(float *dplanes, const float *dfeats, const float *points, const float *planes,
                                  int64_t N, int C, int R, int clamp) {
    /* 1. stable counting sort of the (point, plane) pairs by key = p*R + i0, over contiguous point
     *    chunks (chunk t before chunk t+1), so the order inside a bucket is the point order
     *    whatever the number of threads. */
    const int64_t K = 3 * (int64_t)R;
    int nt_max = 1;
#ifdef _OPENMP
    nt_max = omp_get_max_threads();
#endif
    int64_t *hist = rhd_xcalloc((size_t)nt_max * K, sizeof *hist);
    int64_t *start = rhd_xmalloc(sizeof *start * (K + 1));
    int64_t *idx = rhd_xmalloc(sizeof *idx * (size_t)(3 * N > 0 ? 3 * N : 1));
#pragma omp parallel num_threads(nt_max)
    {
        int tid = 0, nt = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num(), nt = omp_get_num_threads();
#endif
        int64_t n0 = N * tid / nt, n1 = N * (tid + 1) / nt;
        int64_t *h = hist + (int64_t)tid * K;
        for (int64_t n = n0; n < n1; n++)
            for (int p = 0; p < 3; p++) {
                rhd_bilinear_taps t;
                if (point_taps(points, n, p, R, &t)) h[p * R + t.i0]++;
            }
#pragma omp barrier
#pragma omp single
        {
            int64_t run = 0;
            for (int64_t k = 0; k < K; k++) {
                start[k] = run;
                for (int tt = 0; tt < nt; tt++) {
                    int64_t cnt = hist[(int64_t)tt * K + k];
                    hist[(int64_t)tt * K + k] = run;
                    run += cnt;
                }
            }
            start[K] = run;
        }
        for (int64_t n = n0; n < n1; n++)
            for (int p = 0; p < 3; p++) {
                rhd_bilinear_taps t;
                if (point_taps(points, n, p, R, &t)) idx[h[p * R + t.i0]++] = n;
            }
    }
    /* 2. each (plane, row) is written by one thread: the lower taps of bucket i-1, then the upper
     *    taps of bucket i (and its lower taps when they are clamped onto row i = R-1). */
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t k = 0; k < K; k++) {
        int p = (int)(k / R), i = (int)(k % R);
        if (i > 0)
            for (int64_t e = start[k - 1]; e < start[k]; e++) {
                int64_t n = idx[e];
                rhd_bilinear_taps t;
                if (!point_taps(points, n, p, R, &t)) continue; /* not reached: bucketed points are in range */
                scatter_row(dplanes, dfeats, planes, n, p, C, R, &t, 0, clamp);
            }
        for (int64_t e = start[k]; e < start[k + 1]; e++) {
            int64_t n = idx[e];
            rhd_bilinear_taps t;
            if (!point_taps(points, n, p, R, &t)) continue;
            scatter_row(dplanes, dfeats, planes, n, p, C, R, &t, 1, clamp);
            if (t.i1 == i) scatter_row(dplanes, dfeats, planes, n, p, C, R, &t, 0, clamp);
        }
    }
    free(idx);
    free(start);
    free(hist);
}

void rhd_triplane_forward(rhd_ctx *ctx, float *feats, const float *points, const float *planes, int64_t N, int C,
                          int R, int clamp) {
    RHD_ASSERT(N >= 0 && C > 0 && R > 0);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_triplane_forward_cuda(ctx, feats, points, planes, N, C, R, clamp);
        return;
    }
#endif
    triplane_forward_cpu(feats, points, planes, N, C, R, clamp);
}

void rhd_triplane_backward(rhd_ctx *ctx, float *dplanes, const float *dfeats, const float *points,
                           const float *planes, int64_t N, int C, int R, int clamp) {
    RHD_ASSERT(N >= 0 && C > 0 && R > 0);
    RHD_ASSERT(!clamp || planes);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_triplane_backward_cuda(ctx, dplanes, dfeats, points, planes, N, C, R, clamp);
        return;
    }
#endif
    triplane_backward_cpu(dplanes, dfeats, points, planes, N, C, R, clamp);
}
