/* common/models/nn.c: the run context, parameter loading and the leaf blocks (contracts in nn.h). */
#include "common/models/nn.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/rng.h"
#include "kernels/act.h"
#include "kernels/conv2d.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/norm.h"
#include "kernels/pool.h"
#include "kernels/resample.h"

/* ---- run context ----------------------------------------------------------------------------- */

void rhd_nn_init(rhd_nn *r, rhd_ctx *ctx, rhd_params *p) {
    memset(r, 0, sizeof *r);
    r->ctx = ctx;
    r->p = p;
    r->arena = &r->own;
    r->own.ctx = ctx;
}

void rhd_nn_use_arena(rhd_nn *r, rhd_arena *a) {
    RHD_ASSERT(a->ctx == r->ctx);
    r->arena = a;
    r->base = rhd_arena_mark(a);
}

void rhd_nn_free(rhd_nn *r) {
    if (r->own.base) rhd_arena_free(&r->own);
    free(r->tape);
    memset(r, 0, sizeof *r);
}

void rhd_nn_reserve(rhd_nn *r, size_t bytes) {
    if (r->arena != &r->own) {
        if (r->arena->cap - r->base < bytes)
            rhd_fatal_at(__FILE__, __LINE__, "nn: the caller's arena has %zu bytes free, the pass needs %zu",
                         r->arena->cap - r->base, bytes);
        return;
    }
    if (r->own.base && r->own.cap >= bytes) return;
    if (r->own.base) rhd_arena_free(&r->own);
    rhd_arena_init(&r->own, r->ctx, bytes);
}

void rhd_nn_begin(rhd_nn *r, int train) {
    rhd_arena_release(r->arena, r->base);
    r->ntape = 0;
    r->rng_offset = 0;
    r->train = train;
    r->nosave = 0;
    r->dry = 0;
}

size_t rhd_nn_plan(rhd_nn *r, rhd_nn_pass pass, void *user) {
    int train = r->train;
    r->dry = 1;
    r->used = r->peak = 0;
    r->ntape = 0;
    r->rng_offset = 0;
    pass(r, user);
    r->dry = 0;
    r->ntape = 0;
    r->rng_offset = 0;
    r->train = train;
    size_t bytes = r->peak + 256;
    rhd_nn_reserve(r, bytes);
    return bytes;
}

float *rhd_nn_alloc(rhd_nn *r, size_t nfloats) {
    if (!r->dry) return rhd_arena_floats(r->arena, nfloats);
    r->used = ((r->used + 255) & ~(size_t)255) + nfloats * sizeof(float);
    if (r->used > r->peak) r->peak = r->used;
    return NULL;
}

size_t rhd_nn_mark(const rhd_nn *r) { return r->dry ? r->used : rhd_arena_mark(r->arena); }

void rhd_nn_release(rhd_nn *r, size_t mark) {
    if (r->dry) r->used = mark;
    else rhd_arena_release(r->arena, mark);
}

void rhd_nn_push(rhd_nn *r, int tag, const float *ptr, uint64_t u) {
    if (r->ntape == r->tape_cap) {
        r->tape_cap = r->tape_cap ? 2 * r->tape_cap : 256;
        r->tape = rhd_xrealloc(r->tape, sizeof *r->tape * (size_t)r->tape_cap);
    }
    r->tape[r->ntape++] = (rhd_nn_tape_entry){tag, ptr, u};
}

const float *rhd_nn_pop(rhd_nn *r, int tag, uint64_t *u) {
    if (r->ntape <= 0) rhd_fatal_at(__FILE__, __LINE__, "nn tape: pop of tag %d from an empty tape (a backward without its forward)", tag);
    const rhd_nn_tape_entry *t = &r->tape[--r->ntape];
    if (t->tag != tag)
        rhd_fatal_at(__FILE__, __LINE__, "nn tape: popped tag %d, expected %d (backward calls out of reverse order)",
                     t->tag, tag);
    if (u) *u = t->u;
    return t->ptr;
}

const float *rhd_nn_w(const rhd_nn *r, int i) { return i < 0 ? NULL : rhd_param(r->p, i); }
float *rhd_nn_g(const rhd_nn *r, int i) {
    RHD_ASSERT(i < 0 || r->p->grad);
    return i < 0 ? NULL : rhd_param_grad(r->p, i);
}

/* ---- parameters ------------------------------------------------------------------------------ */

int rhd_nn_load_params(rhd_params *p, const rhd_st *st, const char *prefix, rhd_err *e) {
    RHD_ASSERT(p->data);
    for (int i = 0; i < p->n; i++) {
        const rhd_param_info *t = &p->info[i];
        char name[2 * RHD_PARAM_NAME_MAX], got[128], want[128];
        snprintf(name, sizeof name, "%s%s", prefix ? prefix : "", t->name);
        rhd_shape_str(t->shape, t->ndim, want, sizeof want);
        const rhd_st_tensor *s = rhd_st_find(st, name);
        if (!s) return rhd_errf(e, "%s: tensor '%s' is missing, expected %s", st->name, name, want);
        if (!rhd_shape_eq(s->shape, s->ndim, t->shape, t->ndim))
            return rhd_errf(e, "%s: tensor '%s' has shape %s, expected %s", st->name, name,
                            rhd_shape_str(s->shape, s->ndim, got, sizeof got), want);
        if (s->dtype != RHD_F32 && s->dtype != RHD_F16 && s->dtype != RHD_BF16 && s->dtype != RHD_F64)
            return rhd_errf(e, "%s: tensor '%s' has dtype %s, expected F32, F16, BF16 or F64", st->name, name,
                            rhd_dtype_name(s->dtype));
        float *host = rhd_xmalloc(sizeof(float) * (size_t)t->numel);
        rhd_st_to_f32(s, host);
        for (int64_t k = 0; k < t->numel; k++)
            if (!isfinite(host[k])) {
                free(host);
                return rhd_errf(e, "%s: tensor '%s' holds a non-finite value at flat index %lld, expected finite values",
                                st->name, name, (long long)k);
            }
        rhd_buf_upload(p->ctx, rhd_param(p, i), host, sizeof(float) * (size_t)t->numel);
        free(host);
    }
    return 0;
}

static int add(rhd_params *p, const char *prefix, const char *suffix, int ndim, int64_t s0, int64_t s1, int64_t s2,
               int64_t s3) {
    char name[RHD_PARAM_NAME_MAX];
    int n = snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "", suffix);
    RHD_ASSERT(n > 0 && n < (int)sizeof name);
    const int64_t shape[4] = {s0, s1, s2, s3};
    return rhd_params_add(p, name, ndim, shape);
}

/* ---- conv ------------------------------------------------------------------------------------ */

void rhd_nn_conv_init(rhd_params *p, rhd_nn_conv *c, const char *prefix, int cin, int cout, int k, int stride, int pad,
                      int bias) {
    *c = (rhd_nn_conv){-1, -1, cin, cout, k, stride, pad, pad, pad, pad};
    c->w = add(p, prefix, "weight", 4, cout, cin, k, k);
    if (bias) c->b = add(p, prefix, "bias", 1, cout, 0, 0, 0);
}

void rhd_nn_conv_init_down(rhd_params *p, rhd_nn_conv *c, const char *prefix, int ch) {
    rhd_nn_conv_init(p, c, prefix, ch, ch, 3, 2, 0, 1);
    c->pad_b = c->pad_r = 1;
}

void rhd_nn_conv1x1_init_shaped(rhd_params *p, rhd_nn_conv *c, const char *prefix, int cin, int cout, int wdim) {
    RHD_ASSERT(wdim == 2 || wdim == 3 || wdim == 4);
    *c = (rhd_nn_conv){-1, -1, cin, cout, 1, 1, 0, 0, 0, 0};
    c->w = add(p, prefix, "weight", wdim, cout, cin, 1, 1);
    c->b = add(p, prefix, "bias", 1, cout, 0, 0, 0);
}

static rhd_conv2d_desc conv_desc(const rhd_nn_conv *c, int N, int H, int W) {
    return (rhd_conv2d_desc){N, c->cin, H, W, c->cout, c->k, c->k, c->stride, c->stride,
                             c->pad_t, c->pad_b, c->pad_l, c->pad_r};
}

void rhd_nn_conv_out_size(const rhd_nn_conv *c, int H, int W, int *OH, int *OW) {
    rhd_conv2d_desc d = conv_desc(c, 1, H, W);
    *OH = rhd_conv2d_out_h(&d);
    *OW = rhd_conv2d_out_w(&d);
}

void rhd_nn_conv_forward(rhd_nn *r, const rhd_nn_conv *c, float *y, const float *x, int N, int H, int W) {
    if (rhd_nn_saving(r)) rhd_nn_push(r, RHD_NN_TAG_CONV, x, 0);
    if (r->dry) return;
    rhd_conv2d_desc d = conv_desc(c, N, H, W);
    rhd_conv2d_forward(r->ctx, y, x, rhd_nn_w(r, c->w), rhd_nn_w(r, c->b), &d);
}

void rhd_nn_conv_backward(rhd_nn *r, const rhd_nn_conv *c, float *dx, const float *dy, int N, int H, int W) {
    const float *x = rhd_nn_pop(r, RHD_NN_TAG_CONV, NULL);
    if (r->dry) return;
    rhd_conv2d_desc d = conv_desc(c, N, H, W);
    rhd_conv2d_backward(r->ctx, dx, rhd_nn_g(r, c->w), rhd_nn_g(r, c->b), dy, x, rhd_nn_w(r, c->w), &d);
}

/* ---- norms ----------------------------------------------------------------------------------- */

void rhd_nn_groupnorm_init(rhd_params *p, rhd_nn_groupnorm *g, const char *prefix, int C, int G, float eps) {
    RHD_ASSERT(G >= 1 && C % G == 0);
    g->C = C, g->G = G, g->eps = eps;
    g->w = add(p, prefix, "weight", 1, C, 0, 0, 0);
    g->b = add(p, prefix, "bias", 1, C, 0, 0, 0);
}

void rhd_nn_groupnorm_forward(rhd_nn *r, const rhd_nn_groupnorm *g, float *y, const float *x, int N, int64_t HW, int silu) {
    size_t at = rhd_nn_mark(r);
    float *mean = rhd_nn_alloc(r, (size_t)N * g->G), *rstd = rhd_nn_alloc(r, (size_t)N * g->G);
    float *gn = silu && rhd_nn_saving(r) ? rhd_nn_alloc(r, (size_t)N * g->C * HW) : y; /* SiLU's input */
    if (!r->dry) {
        rhd_groupnorm_forward(r->ctx, gn, mean, rstd, x, rhd_nn_w(r, g->w), rhd_nn_w(r, g->b), N, g->C, HW, g->G, g->eps);
        if (silu) rhd_act_forward(r->ctx, y, gn, (int64_t)N * g->C * HW, RHD_ACT_SILU);
    }
    if (!rhd_nn_saving(r)) {
        rhd_nn_release(r, at);
        return;
    }
    rhd_nn_push(r, RHD_NN_TAG_GN, x, 0);
    rhd_nn_push(r, RHD_NN_TAG_GN, mean, 0);
    rhd_nn_push(r, RHD_NN_TAG_GN, rstd, 0);
    if (silu) rhd_nn_push(r, RHD_NN_TAG_GN, gn, 1);
}

void rhd_nn_groupnorm_backward(rhd_nn *r, const rhd_nn_groupnorm *g, float *dx, const float *dy, int N, int64_t HW,
                               int silu) {
    const float *gn = silu ? rhd_nn_pop(r, RHD_NN_TAG_GN, NULL) : NULL;
    const float *rstd = rhd_nn_pop(r, RHD_NN_TAG_GN, NULL), *mean = rhd_nn_pop(r, RHD_NN_TAG_GN, NULL);
    const float *x = rhd_nn_pop(r, RHD_NN_TAG_GN, NULL);
    size_t at = rhd_nn_mark(r);
    int64_t n = (int64_t)N * g->C * HW;
    const float *d = dy;
    if (silu) {
        float *t = rhd_nn_alloc(r, (size_t)n);
        if (!r->dry) rhd_act_backward(r->ctx, t, dy, gn, n, RHD_ACT_SILU);
        d = t;
    }
    if (!r->dry)
        rhd_groupnorm_backward(r->ctx, dx, rhd_nn_g(r, g->w), rhd_nn_g(r, g->b), d, x, mean, rstd, rhd_nn_w(r, g->w), N,
                               g->C, HW, g->G);
    rhd_nn_release(r, at);
}

void rhd_nn_layernorm_init(rhd_params *p, rhd_nn_layernorm *l, const char *prefix, int D, float eps) {
    l->D = D, l->eps = eps;
    l->w = add(p, prefix, "weight", 1, D, 0, 0, 0);
    l->b = add(p, prefix, "bias", 1, D, 0, 0, 0);
}

void rhd_nn_layernorm_forward(rhd_nn *r, const rhd_nn_layernorm *l, float *y, const float *x, int64_t N) {
    size_t at = rhd_nn_mark(r);
    float *mean = rhd_nn_alloc(r, (size_t)N), *rstd = rhd_nn_alloc(r, (size_t)N);
    if (!r->dry) rhd_layernorm_forward(r->ctx, y, mean, rstd, x, rhd_nn_w(r, l->w), rhd_nn_w(r, l->b), N, l->D, l->eps);
    if (!rhd_nn_saving(r)) {
        rhd_nn_release(r, at);
        return;
    }
    rhd_nn_push(r, RHD_NN_TAG_LN, x, 0);
    rhd_nn_push(r, RHD_NN_TAG_LN, mean, 0);
    rhd_nn_push(r, RHD_NN_TAG_LN, rstd, 0);
}

void rhd_nn_layernorm_backward(rhd_nn *r, const rhd_nn_layernorm *l, float *dx, const float *dy, int64_t N) {
    const float *rstd = rhd_nn_pop(r, RHD_NN_TAG_LN, NULL), *mean = rhd_nn_pop(r, RHD_NN_TAG_LN, NULL);
    const float *x = rhd_nn_pop(r, RHD_NN_TAG_LN, NULL);
    if (!r->dry)
        rhd_layernorm_backward(r->ctx, dx, rhd_nn_g(r, l->w), rhd_nn_g(r, l->b), dy, x, mean, rstd, rhd_nn_w(r, l->w), N,
                               l->D);
}

/* ---- linear, SiLU, dropout, resampling, add ------------------------------------------------- */

void rhd_nn_linear_init(rhd_params *p, rhd_nn_linear *l, const char *prefix, int in, int out, int bias) {
    *l = (rhd_nn_linear){-1, -1, in, out};
    l->w = add(p, prefix, "weight", 2, out, in, 0, 0);
    if (bias) l->b = add(p, prefix, "bias", 1, out, 0, 0, 0);
}

void rhd_nn_linear_forward(rhd_nn *r, const rhd_nn_linear *l, float *y, const float *x, int N) {
    if (rhd_nn_saving(r)) rhd_nn_push(r, RHD_NN_TAG_LINEAR, x, 0);
    if (!r->dry) rhd_linear_forward_rows(r->ctx, y, x, rhd_nn_w(r, l->w), rhd_nn_w(r, l->b), N, l->in, l->out);
}

void rhd_nn_linear_backward(rhd_nn *r, const rhd_nn_linear *l, float *dx, const float *dy, int N) {
    const float *x = rhd_nn_pop(r, RHD_NN_TAG_LINEAR, NULL);
    if (!r->dry)
        rhd_linear_backward(r->ctx, dx, rhd_nn_g(r, l->w), rhd_nn_g(r, l->b), dy, x, rhd_nn_w(r, l->w), N, l->in, l->out);
}

/* SiLU and ReLU: the input is saved for the backward under the activation's own tag. */
static void act_forward(rhd_nn *r, float *y, const float *x, int64_t n, rhd_act a, int tag) {
    if (rhd_nn_saving(r)) {
        RHD_ASSERT(y != x || r->dry);
        rhd_nn_push(r, tag, x, 0);
    }
    if (!r->dry) rhd_act_forward(r->ctx, y, x, n, a);
}

static void act_backward(rhd_nn *r, float *dx, const float *dy, int64_t n, rhd_act a, int tag) {
    const float *x = rhd_nn_pop(r, tag, NULL);
    if (!r->dry) rhd_act_backward(r->ctx, dx, dy, x, n, a);
}

void rhd_nn_silu_forward(rhd_nn *r, float *y, const float *x, int64_t n) { act_forward(r, y, x, n, RHD_ACT_SILU, RHD_NN_TAG_SILU); }
void rhd_nn_silu_backward(rhd_nn *r, float *dx, const float *dy, int64_t n) { act_backward(r, dx, dy, n, RHD_ACT_SILU, RHD_NN_TAG_SILU); }
void rhd_nn_relu_forward(rhd_nn *r, float *y, const float *x, int64_t n) { act_forward(r, y, x, n, RHD_ACT_RELU, RHD_NN_TAG_RELU); }
void rhd_nn_relu_backward(rhd_nn *r, float *dx, const float *dy, int64_t n) { act_backward(r, dx, dy, n, RHD_ACT_RELU, RHD_NN_TAG_RELU); }

void rhd_nn_maxpool_forward(rhd_nn *r, float *y, const float *x, int N, int C, int H, int W, int k, int s) {
    int OH = rhd_maxpool2d_out(H, k, s, 0), OW = rhd_maxpool2d_out(W, k, s, 0);
    int32_t *idx = NULL;
    if (rhd_nn_saving(r)) { /* int32 indices in float-sized arena slots */
        idx = (int32_t *)rhd_nn_alloc(r, (size_t)N * C * OH * OW);
        rhd_nn_push(r, RHD_NN_TAG_MAXPOOL, (const float *)idx, 0);
    }
    if (!r->dry) rhd_maxpool2d_forward(r->ctx, y, idx, x, N, C, H, W, k, s, 0);
}

void rhd_nn_maxpool_backward(rhd_nn *r, float *dx, const float *dy, int N, int C, int H, int W, int k, int s) {
    const int32_t *idx = (const int32_t *)rhd_nn_pop(r, RHD_NN_TAG_MAXPOOL, NULL);
    if (r->dry || !dx) return;
    rhd_buf_zero(r->ctx, dx, sizeof(float) * (size_t)N * C * H * W);
    rhd_maxpool2d_backward(r->ctx, dx, dy, idx, N, C, H, W, k, s, 0);
}

void rhd_nn_dropout_forward(rhd_nn *r, float *y, const float *x, int64_t n, float p) {
    uint64_t off = r->rng_offset;
    if (r->train) r->rng_offset += (uint64_t)n;
    if (rhd_nn_saving(r)) rhd_nn_push(r, RHD_NN_TAG_DROPOUT, NULL, off);
    if (r->dry) return;
    if (r->train) rhd_dropout_forward(r->ctx, y, x, n, p, r->seed, r->stream, off);
    else if (y != x) rhd_buf_copy(r->ctx, y, x, sizeof(float) * (size_t)n);
}

void rhd_nn_dropout_backward(rhd_nn *r, float *dx, const float *dy, int64_t n, float p) {
    uint64_t off;
    rhd_nn_pop(r, RHD_NN_TAG_DROPOUT, &off);
    if (!r->dry) rhd_dropout_backward(r->ctx, dx, dy, n, p, r->seed, r->stream, off);
}

void rhd_nn_resample_size(rhd_nn_resample_kind k, int H, int W, int *OH, int *OW) {
    *OH = k == RHD_NN_AVGPOOL2 ? H / 2 : 2 * H;
    *OW = k == RHD_NN_AVGPOOL2 ? W / 2 : 2 * W;
}

void rhd_nn_resample_forward(rhd_nn *r, rhd_nn_resample_kind k, float *y, const float *x, int N, int C, int H, int W) {
    if (r->dry) return;
    if (k == RHD_NN_AVGPOOL2) rhd_avgpool2x2_forward(r->ctx, y, x, N, C, H, W);
    else if (k == RHD_NN_NEAREST2) rhd_upsample_nearest2x_forward(r->ctx, y, x, N, C, H, W);
    else rhd_resize_forward(r->ctx, y, x, N, C, H, W, 2 * H, 2 * W, RHD_RESIZE_BILINEAR, 1);
}

void rhd_nn_resample_backward(rhd_nn *r, rhd_nn_resample_kind k, float *dx, const float *dy, int N, int C, int H,
                              int W) {
    if (r->dry || !dx) return;
    if (k == RHD_NN_AVGPOOL2) rhd_avgpool2x2_backward(r->ctx, dx, dy, N, C, H, W);
    else if (k == RHD_NN_NEAREST2) rhd_upsample_nearest2x_backward(r->ctx, dx, dy, N, C, H, W);
    else rhd_resize_backward(r->ctx, dx, dy, N, C, H, W, 2 * H, 2 * W, RHD_RESIZE_BILINEAR, 1);
}

void rhd_nn_add_forward(rhd_nn *r, float *y, const float *a, const float *b, int64_t n) {
    if (!r->dry) rhd_add_forward(r->ctx, y, a, b, n);
}

void rhd_nn_add_backward(rhd_nn *r, float *da, float *db, const float *dy, int64_t n) {
    if (!r->dry) rhd_add_backward(r->ctx, da, db, dy, n);
}
