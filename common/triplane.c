/* common/triplane.c: see triplane.h. */
#include "common/triplane.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int64_t rhd_triplane_numel_of(int C, int R) { return (int64_t)3 * C * R * R; }

const char *rhd_triplane_layout_name(rhd_triplane_layout l) {
    return l == RHD_TRIPLANE_ROLLED ? "rolled [C,R,3R]" : "planes [3,C,R,R]";
}

rhd_triplane rhd_triplane_view(float *planes, int C, int R, int clamp, rhd_ctx *ctx) {
    rhd_triplane t = {planes, C, R, RHD_TRIPLANE_PLANES, clamp, ctx, 0};
    return t;
}

void rhd_triplane_alloc(rhd_triplane *t, int C, int R, int clamp, rhd_ctx *ctx) {
    *t = rhd_triplane_view(NULL, C, R, clamp, ctx);
    t->planes = ctx ? rhd_buf_alloc(ctx, rhd_triplane_bytes(t)) : rhd_xmalloc(rhd_triplane_bytes(t));
    t->owned = 1;
}

void rhd_triplane_free(rhd_triplane *t) {
    if (t->owned) {
        if (t->ctx) rhd_buf_free(t->ctx, t->planes);
        else free(t->planes);
    }
    memset(t, 0, sizeof *t);
}

void rhd_triplane_to_ctx(rhd_triplane *dst, const rhd_triplane *src, rhd_ctx *ctx) {
    RHD_ASSERT(!src->ctx && "rhd_triplane_to_ctx: the source must be host memory");
    *dst = *src;
    dst->owned = 0;
    if (!ctx || ctx->backend == RHD_BACKEND_CPU) {
        dst->ctx = ctx; /* the CPU backend's side is host memory */
        return;
    }
    rhd_triplane_alloc(dst, src->C, src->R, src->clamp, ctx);
    dst->layout = src->layout;
    rhd_buf_upload(ctx, dst->planes, src->planes, rhd_triplane_bytes(src));
}

void rhd_triplane_download(rhd_triplane *host, const rhd_triplane *dev) {
    if (!dev->owned || dev->planes == host->planes) return;
    RHD_ASSERT(host->C == dev->C && host->R == dev->R && host->layout == dev->layout);
    rhd_buf_download(dev->ctx, host->planes, dev->planes, rhd_triplane_bytes(host));
}

void rhd_triplane_roll(float *dst, const float *src, int C, int R) {
    size_t r = (size_t)R;
    for (int p = 0; p < 3; p++)
        for (int c = 0; c < C; c++)
            for (size_t i = 0; i < r; i++)
                memcpy(&dst[((size_t)c * r + i) * 3 * r + (size_t)p * r], &src[(((size_t)p * C + c) * r + i) * r],
                       sizeof(float) * r);
}

void rhd_triplane_unroll(float *dst, const float *src, int C, int R) {
    size_t r = (size_t)R;
    for (int p = 0; p < 3; p++)
        for (int c = 0; c < C; c++)
            for (size_t i = 0; i < r; i++)
                memcpy(&dst[(((size_t)p * C + c) * r + i) * r], &src[((size_t)c * r + i) * 3 * r + (size_t)p * r],
                       sizeof(float) * r);
}

void rhd_triplane_set_layout(rhd_triplane *t, rhd_triplane_layout layout) {
    RHD_ASSERT(!t->ctx || t->ctx->backend == RHD_BACKEND_CPU);
    if (t->layout == layout) return;
    float *tmp = rhd_xmalloc(rhd_triplane_bytes(t));
    if (layout == RHD_TRIPLANE_ROLLED) rhd_triplane_roll(tmp, t->planes, t->C, t->R);
    else rhd_triplane_unroll(tmp, t->planes, t->C, t->R);
    memcpy(t->planes, tmp, rhd_triplane_bytes(t));
    free(tmp);
    t->layout = layout;
}

int rhd_triplane_check_finite(const rhd_triplane *t, const char *name, const char *tensor, rhd_err *e) {
    RHD_ASSERT(!t->ctx || t->ctx->backend == RHD_BACKEND_CPU);
    int64_t n = rhd_triplane_numel(t), R = t->R, C = t->C;
    for (int64_t k = 0; k < n; k++) {
        if (isfinite(t->planes[k])) continue;
        if (t->layout == RHD_TRIPLANE_ROLLED)
            return rhd_errf(e, "%s: tensor '%s' holds %g at [%lld,%lld,%lld] (rolled [C,R,3R]), expected finite values",
                            name, tensor, t->planes[k], (long long)(k / (3 * R * R)), (long long)(k / (3 * R) % R),
                            (long long)(k % (3 * R)));
        return rhd_errf(e, "%s: tensor '%s' holds %g at [%lld,%lld,%lld,%lld], expected finite values", name, tensor,
                        t->planes[k], (long long)(k / (C * R * R)), (long long)(k / (R * R) % C), (long long)(k / R % R),
                        (long long)(k % R));
    }
    return 0;
}
