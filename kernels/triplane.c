/* kernels/triplane.c: CPU reference of triplane sampling (see triplane.h for the contract) and
 * the backend dispatch. */
#include "kernels/triplane.h"
#include "common/err.h"
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Rows per work item of the CPU backward (a fixed number, so the work split never depends on the
 * thread count). */
#define TRIPLANE_ROW_BLOCK 8

static inline int point_taps(const float *points, int64_t n, int p, int R, rhd_bilinear_taps *t) {
    float a, b;
    rhd_triplane_project(points + 3 * n, p, &a, &b);
    return rhd_bilinear_taps_at(a, b, R, t);
}

const char *rhd_plane_agg_name(int agg) {
    return agg == RHD_PLANE_PRODUCT ? "product" : agg == RHD_PLANE_OFFSET_PRODUCT ? "offset-product" : "mean";
}

int rhd_plane_agg_parse(const char *name) {
    for (int a = 0; a < RHD_PLANE_AGG_COUNT; a++)
        if (!strcmp(name, rhd_plane_agg_name(a))) return a;
    return -1;
}

/* The per-plane samples of a product aggregation: feats[n, c] from s[3], kept in splanes [3, N, C]
 * when given. */
static inline void store_product(float *feats, float *splanes, int64_t N, int64_t n, int C, int c, int agg,
                                 const float *sp) {
    feats[n * C + c] = rhd_plane_combine(agg, sp);
    if (splanes)
        for (int p = 0; p < 3; p++) splanes[((int64_t)p * N + n) * C + c] = sp[p];
}

/* f[c] = agg(s0[c], s1[c], s2[c]) with agg a constant in each loop, so the loop vectorises. */
#define COMBINE_ROW(AGG)                                                                                              \
    _Pragma("omp simd") for (int c = 0; c < C; c++) {                                                                \
        float v[3] = {s0[c], s1[c], s2[c]};                                                                           \
        f[c] = rhd_plane_combine(AGG, v);                                                                             \
    }
static void combine_row(float *f, const float *s0, const float *s1, const float *s2, int C, int agg) {
    if (agg == RHD_PLANE_PRODUCT) COMBINE_ROW(RHD_PLANE_PRODUCT)
    else COMBINE_ROW(RHD_PLANE_OFFSET_PRODUCT)
}

/* Direct forward: reads the [3,C,R,R] planes in place (C cache lines per tap, 1 plane apart). */
static void forward_direct(float *feats, const float *points, const float *planes, int64_t N, int C, int R, int clamp,
                           int agg, float *splanes) {
    const int64_t RR = (int64_t)R * R;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        rhd_bilinear_taps t[3];
        int ok[3];
        for (int p = 0; p < 3; p++) ok[p] = point_taps(points, n, p, R, &t[p]);
        float *f = feats + n * C;
        if (agg != RHD_PLANE_MEAN) {
            for (int c = 0; c < C; c++) {
                float sp[3];
                for (int p = 0; p < 3; p++)
                    sp[p] = ok[p] ? rhd_bilinear_sample(planes + ((int64_t)p * C + c) * RR, R, &t[p], clamp) : 0.f;
                store_product(feats, splanes, N, n, C, c, agg, sp);
            }
            continue;
        }
        for (int c = 0; c < C; c++) {
            float s = 0.f;
            for (int p = 0; p < 3; p++)
                if (ok[p]) s += rhd_bilinear_sample(planes + ((int64_t)p * C + c) * RR, R, &t[p], clamp);
            f[c] = s / 3.f;
        }
    }
}

/* packed [3,R,R,C] = clamp?(planes [3,C,R,R]), transposed in 32 x 32 tiles. */
static void pack_channel_last(float *packed, const float *planes, int C, int R, int clamp) {
    const int64_t RR = (int64_t)R * R;
#pragma omp parallel for schedule(static) collapse(2)
    for (int p = 0; p < 3; p++)
        for (int64_t x0 = 0; x0 < RR; x0 += 32)
            for (int c0 = 0; c0 < C; c0 += 32)
                for (int64_t x = x0; x < x0 + 32 && x < RR; x++)
                    for (int c = c0; c < c0 + 32 && c < C; c++)
                        packed[((int64_t)p * RR + x) * C + c] = rhd_triplane_read(planes[((int64_t)p * C + c) * RR + x], clamp);
}

/* Packed forward: each tap is C contiguous floats. Per channel the arithmetic is the direct
 * path's (the same products and sums in the same order), so the results are bit-identical. */
static void forward_packed(float *feats, const float *points, const float *packed, int64_t N, int C, int R, int agg,
                           float *splanes) {
    const int64_t RR = (int64_t)R * R;
#pragma omp parallel
    {
    float *tmp = agg != RHD_PLANE_MEAN && !splanes ? rhd_xmalloc(sizeof(float) * 3 * (size_t)C) : NULL;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        float *f = feats + n * C;
        if (agg != RHD_PLANE_MEAN) {
            /* the three planes' samples, each a vector over the channels (the same sums per channel
             * as rhd_packed_sample), into splanes or a per-point buffer, then combined */
            float *s[3];
            for (int p = 0; p < 3; p++) {
                s[p] = splanes ? splanes + ((int64_t)p * N + n) * C : tmp + (int64_t)p * C;
                rhd_bilinear_taps t;
                if (!point_taps(points, n, p, R, &t)) {
                    for (int c = 0; c < C; c++) s[p][c] = 0.f;
                    continue;
                }
                const float *base = packed + (int64_t)p * RR * C;
                const float *a = base + ((int64_t)t.i0 * R + t.j0) * C, *b = base + ((int64_t)t.i0 * R + t.j1) * C;
                const float *d = base + ((int64_t)t.i1 * R + t.j0) * C, *e = base + ((int64_t)t.i1 * R + t.j1) * C;
                float *sp = s[p];
#pragma omp simd
                for (int c = 0; c < C; c++) sp[c] = t.w00 * a[c] + t.w01 * b[c] + t.w10 * d[c] + t.w11 * e[c];
            }
            combine_row(f, s[0], s[1], s[2], C, agg);
            continue;
        }
        for (int c = 0; c < C; c++) f[c] = 0.f;
        for (int p = 0; p < 3; p++) {
            rhd_bilinear_taps t;
            if (!point_taps(points, n, p, R, &t)) continue;
            const float *base = packed + (int64_t)p * RR * C;
            const float *a = base + ((int64_t)t.i0 * R + t.j0) * C, *b = base + ((int64_t)t.i0 * R + t.j1) * C;
            const float *d = base + ((int64_t)t.i1 * R + t.j0) * C, *e = base + ((int64_t)t.i1 * R + t.j1) * C;
#pragma omp simd
            for (int c = 0; c < C; c++) f[c] += t.w00 * a[c] + t.w01 * b[c] + t.w10 * d[c] + t.w11 * e[c];
        }
        for (int c = 0; c < C; c++) f[c] = f[c] / 3.f;
    }
    free(tmp);
    }
}

/* Workspace on the CPU side, with transparent huge pages asked for: the gathers touch the whole
 * 96 MiB table at random, and 4 KiB pages make nearly every tap a TLB miss. */
static float *cpu_workspace(rhd_ctx *ctx, size_t bytes) {
    float *w = rhd_ctx_workspace(ctx, bytes);
#ifdef MADV_HUGEPAGE
    uintptr_t a = ((uintptr_t)w + 4095) & ~(uintptr_t)4095, b = ((uintptr_t)w + bytes) & ~(uintptr_t)4095;
    if (b > a) madvise((void *)a, b - a, MADV_HUGEPAGE); /* a hint; failure is harmless */
#endif
    return w;
}

void rhd_triplane_forward_cpu(rhd_ctx *ctx, float *feats, const float *points, const float *planes, int64_t N, int C,
                              int R, int clamp, int agg, float *splanes, int strategy) {
    RHD_ASSERT(ctx->backend == RHD_BACKEND_CPU);
    if (strategy == RHD_TRIPLANE_AUTO) strategy = N * 16 >= (int64_t)R * R ? RHD_TRIPLANE_PACKED : RHD_TRIPLANE_DIRECT;
    if (strategy == RHD_TRIPLANE_DIRECT) {
        forward_direct(feats, points, planes, N, C, R, clamp, agg, splanes);
        return;
    }
    float *packed = cpu_workspace(ctx, sizeof(float) * 3 * (size_t)C * R * R);
    pack_channel_last(packed, planes, C, R, clamp);
    forward_packed(feats, points, packed, N, C, R, agg, splanes);
}

/* One (point, plane) pair of the backward, bucketed by (plane, row i0): the point and its taps
 * on that plane (the rows follow from the bucket). */
typedef struct tap_entry {
    int32_t n, j0, j1;
    float w00, w01, w10, w11;
} tap_entry;

/* What the scatter of plane p needs: dfeats [N, C] and, under a product, the forward's samples. */
typedef struct scatter_src {
    const float *dfeats, *splanes;
    int64_t N;
    int C, agg, p;
} scatter_src;

/* Add the taps of entry e on one of its rows (top: the i0 taps, else the i1 taps) into the
 * channel-last row accumulator acc [R, C]; widen the touched column range [*jlo, *jhi]. */
static inline void scatter_row(float *acc, const scatter_src *src, const tap_entry *e, int top, int *jlo, int *jhi) {
    const int C = src->C;
    float wa = top ? e->w00 : e->w10, wb = top ? e->w01 : e->w11;
    const float *g = src->dfeats + (int64_t)e->n * C;
    float *a = acc + (int64_t)e->j0 * C, *b = acc + (int64_t)e->j1 * C;
    if (src->agg == RHD_PLANE_MEAN) {
        for (int c = 0; c < C; c++) {
            float gm = g[c] * RHD_TRIPLANE_MEAN;
            a[c] += wa * gm;
            b[c] += wb * gm;
        }
    } else { /* the other two planes' samples, q < r */
        const float *s0 = src->splanes + (int64_t)e->n * C, *s1 = s0 + src->N * C, *s2 = s1 + src->N * C;
        const float *sq = src->p == 0 ? s1 : s0, *sr = src->p == 2 ? s1 : s2;
        if (src->agg == RHD_PLANE_PRODUCT) {
#pragma omp simd
            for (int c = 0; c < C; c++) {
                float gm = g[c] * rhd_plane_factor2(RHD_PLANE_PRODUCT, sq[c], sr[c]);
                a[c] += wa * gm;
                b[c] += wb * gm;
            }
        } else {
#pragma omp simd
            for (int c = 0; c < C; c++) {
                float gm = g[c] * rhd_plane_factor2(RHD_PLANE_OFFSET_PRODUCT, sq[c], sr[c]);
                a[c] += wa * gm;
                b[c] += wb * gm;
            }
        }
    }
    if (e->j0 < *jlo) *jlo = e->j0;
    if (e->j1 > *jhi) *jhi = e->j1;
}

/* How many entries ahead the scatter prefetches dfeats (its one random read). */
#define TRIPLANE_PREFETCH 8

static void triplane_backward_cpu(float *dplanes, const float *dfeats, const float *points, const float *planes,
                                  int64_t N, int C, int R, int clamp, int agg, const float *splanes) {
    RHD_ASSERT(N < INT32_MAX);
    /* 1. stable counting sort of the (point, plane) pairs by key = p*R + i0, over contiguous point
     *    chunks (chunk t before chunk t+1), so the order inside a bucket is the point order
     *    whatever the number of threads. */
    const int64_t K = 3 * (int64_t)R, RR = (int64_t)R * R;
    int nt_max = 1;
#ifdef _OPENMP
    nt_max = omp_get_max_threads();
#endif
    int64_t *hist = rhd_xcalloc((size_t)nt_max * K, sizeof *hist);
    int64_t *start = rhd_xmalloc(sizeof *start * (K + 1));
    tap_entry *ent = rhd_xmalloc(sizeof *ent * (size_t)(3 * N > 0 ? 3 * N : 1));
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
                if (point_taps(points, n, p, R, &t))
                    ent[h[p * R + t.i0]++] = (tap_entry){(int32_t)n, t.j0, t.j1, t.w00, t.w01, t.w10, t.w11};
            }
    }
    /* 2. rows are processed in fixed blocks of TRIPLANE_ROW_BLOCK rows of one plane, each block by
     *    one thread. Row i receives, in this order, the lower taps of bucket i-1 and then, entry by
     *    entry, the upper taps of bucket i (plus its lower taps when they are clamped onto the same
     *    row, i = R-1); the sum is formed from zero in a channel-last row buffer and then added to
     *    dplanes, masked by the clamp rule. Walking a block's buckets in row order, each entry is
     *    read once: its upper taps go to the current row, its lower taps to the next row's buffer
     *    (the block's first row re-reads the lower taps of the bucket before it). The order of
     *    additions into every texel is fixed, so any thread count gives the same bits. */
    const int nblk = (R + TRIPLANE_ROW_BLOCK - 1) / TRIPLANE_ROW_BLOCK;
#pragma omp parallel
    {
        float *cur = rhd_xcalloc((size_t)R * C, sizeof(float)), *next = rhd_xcalloc((size_t)R * C, sizeof(float));
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = 0; b < 3LL * nblk; b++) {
            int p = (int)(b / nblk), i0 = (int)(b % nblk) * TRIPLANE_ROW_BLOCK;
            const scatter_src src = {dfeats, splanes, N, C, agg, p};
            int i1 = i0 + TRIPLANE_ROW_BLOCK < R ? i0 + TRIPLANE_ROW_BLOCK : R;
            int clo = R, chi = -1, nlo = R, nhi = -1; /* touched columns of cur and next */
            int64_t e0 = i0 > 0 ? start[(int64_t)p * R + i0 - 1] : start[(int64_t)p * R + i0];
            int64_t e1 = start[(int64_t)p * R + i1];
            for (int64_t e = e0; e < start[(int64_t)p * R + i0]; e++) {
                if (e + TRIPLANE_PREFETCH < e1) __builtin_prefetch(dfeats + (int64_t)ent[e + TRIPLANE_PREFETCH].n * C);
                scatter_row(cur, &src, &ent[e], 0, &clo, &chi);
            }
            for (int i = i0; i < i1; i++) {
                int64_t k = (int64_t)p * R + i;
                for (int64_t e = start[k]; e < start[k + 1]; e++) {
                    if (e + TRIPLANE_PREFETCH < e1) __builtin_prefetch(dfeats + (int64_t)ent[e + TRIPLANE_PREFETCH].n * C);
                    scatter_row(cur, &src, &ent[e], 1, &clo, &chi);
                    if (i == R - 1) scatter_row(cur, &src, &ent[e], 0, &clo, &chi); /* i1 clamped to i0 */
                    else scatter_row(next, &src, &ent[e], 0, &nlo, &nhi);
                }
                if (chi >= clo) {
                    for (int c = 0; c < C; c++) {
                        int64_t row = ((int64_t)p * C + c) * RR + (int64_t)i * R;
                        for (int j = clo; j <= chi; j++)
                            if (rhd_triplane_grad_passes(clamp ? planes[row + j] : 0.f, clamp))
                                dplanes[row + j] += cur[(int64_t)j * C + c];
                    }
                    memset(cur + (int64_t)clo * C, 0, sizeof(float) * (size_t)(chi - clo + 1) * C);
                }
                float *tmp = cur;
                cur = next, next = tmp;
                clo = nlo, chi = nhi, nlo = R, nhi = -1;
            }
            if (chi >= clo) memset(cur + (int64_t)clo * C, 0, sizeof(float) * (size_t)(chi - clo + 1) * C);
        }
        free(cur);
        free(next);
    }
    free(ent);
    free(start);
    free(hist);
}

void rhd_triplane_pack(rhd_ctx *ctx, float *packed, const float *planes, int C, int R, int clamp) {
    RHD_ASSERT(C > 0 && R > 0);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_triplane_pack_cuda(ctx, packed, planes, C, R, clamp);
        return;
    }
#endif
    pack_channel_last(packed, planes, C, R, clamp);
}

void rhd_triplane_forward_packed(rhd_ctx *ctx, float *feats, const float *points, const float *packed, int64_t N, int C,
                                 int R, int agg) {
    RHD_ASSERT(N >= 0 && C > 0 && R > 0 && agg >= 0 && agg < RHD_PLANE_AGG_COUNT);
    if (N == 0) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_triplane_forward_packed_cuda(ctx, feats, points, packed, N, C, R, agg, NULL);
        return;
    }
#endif
    forward_packed(feats, points, packed, N, C, R, agg, NULL);
}

void rhd_triplane_forward(rhd_ctx *ctx, float *feats, const float *points, const float *planes, int64_t N, int C,
                          int R, int clamp, int agg, float *splanes) {
    RHD_ASSERT(N >= 0 && C > 0 && R > 0 && agg >= 0 && agg < RHD_PLANE_AGG_COUNT);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_triplane_forward_cuda(ctx, feats, points, planes, N, C, R, clamp, agg, splanes);
        return;
    }
#endif
    rhd_triplane_forward_cpu(ctx, feats, points, planes, N, C, R, clamp, agg, splanes, RHD_TRIPLANE_AUTO);
}

void rhd_triplane_backward(rhd_ctx *ctx, float *dplanes, const float *dfeats, const float *points,
                           const float *planes, int64_t N, int C, int R, int clamp, int agg, const float *splanes) {
    RHD_ASSERT(N >= 0 && C > 0 && R > 0 && agg >= 0 && agg < RHD_PLANE_AGG_COUNT);
    RHD_ASSERT(!clamp || planes);
    RHD_ASSERT(agg == RHD_PLANE_MEAN || splanes || N == 0);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_triplane_backward_cuda(ctx, dplanes, dfeats, points, planes, N, C, R, clamp, agg, splanes);
        return;
    }
#endif
    triplane_backward_cpu(dplanes, dfeats, points, planes, N, C, R, clamp, agg, splanes);
}
