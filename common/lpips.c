/* common/lpips.c: LPIPS (alex, vgg; lpips 0.1.4, version 0.1), see lpips.h. */
#include "common/lpips.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/pool.h"

/* ---- the backbones: lpips.pretrained_networks' slices of torchvision's `features` ---------------- */

typedef struct {
    const char *name;
    int cin, cout, k, stride, pad, pool_k, pool_s, layer, last;
} conv_spec;

static const conv_spec k_alex[] = {
    {"net.slice1.0", 3, 64, 11, 4, 2, 0, 0, 0, 1},
    {"net.slice2.3", 64, 192, 5, 1, 2, 3, 2, 1, 1},
    {"net.slice3.6", 192, 384, 3, 1, 1, 3, 2, 2, 1},
    {"net.slice4.8", 384, 256, 3, 1, 1, 0, 0, 3, 1},
    {"net.slice5.10", 256, 256, 3, 1, 1, 0, 0, 4, 1},
};

static const conv_spec k_vgg[] = {
    {"net.slice1.0", 3, 64, 3, 1, 1, 0, 0, 0, 0},
    {"net.slice1.2", 64, 64, 3, 1, 1, 0, 0, 0, 1},
    {"net.slice2.5", 64, 128, 3, 1, 1, 2, 2, 1, 0},
    {"net.slice2.7", 128, 128, 3, 1, 1, 0, 0, 1, 1},
    {"net.slice3.10", 128, 256, 3, 1, 1, 2, 2, 2, 0},
    {"net.slice3.12", 256, 256, 3, 1, 1, 0, 0, 2, 0},
    {"net.slice3.14", 256, 256, 3, 1, 1, 0, 0, 2, 1},
    {"net.slice4.17", 256, 512, 3, 1, 1, 2, 2, 3, 0},
    {"net.slice4.19", 512, 512, 3, 1, 1, 0, 0, 3, 0},
    {"net.slice4.21", 512, 512, 3, 1, 1, 0, 0, 3, 1},
    {"net.slice5.24", 512, 512, 3, 1, 1, 2, 2, 4, 0},
    {"net.slice5.26", 512, 512, 3, 1, 1, 0, 0, 4, 0},
    {"net.slice5.28", 512, 512, 3, 1, 1, 0, 0, 4, 1},
};

/* lpips.ScalingLayer's buffers */
static const float k_shift[3] = {-.030f, -.088f, -.188f}, k_scale[3] = {.458f, .448f, .450f};

const char *rhd_lpips_net_name(rhd_lpips_net net) { return net == RHD_LPIPS_VGG ? "vgg" : "alex"; }

/* ---- loading ------------------------------------------------------------------------------------- */

/* Copy tensor `name` (float dtype, the given shape, finite) into host memory dst. `what` says
 * what the tensor is, for messages. */
static int get_tensor(const rhd_st *st, const char *name, const char *alt, int ndim, const int64_t *shape, float *dst,
                      const char *what, rhd_err *e) {
    char got[96], want[96];
    rhd_shape_str(shape, ndim, want, sizeof want);
    const rhd_st_tensor *t = rhd_st_find(st, name);
    if (!t && alt) t = rhd_st_find(st, alt);
    if (!t)
        return rhd_errf(e, "%s: tensor '%s'%s%s%s is missing, expected %s (%s)", st->name, name, alt ? " (or '" : "",
                        alt ? alt : "", alt ? "')" : "", want, what);
    if (!rhd_shape_eq(t->shape, t->ndim, shape, ndim))
        return rhd_errf(e, "%s: tensor '%s' has shape %s, expected %s (%s)", st->name, t->name,
                        rhd_shape_str(t->shape, t->ndim, got, sizeof got), want, what);
    if (t->dtype != RHD_F32 && t->dtype != RHD_F16 && t->dtype != RHD_BF16 && t->dtype != RHD_F64)
        return rhd_errf(e, "%s: tensor '%s' has dtype %s, expected F32, F16, BF16 or F64", st->name, t->name,
                        rhd_dtype_name(t->dtype));
    rhd_st_to_f32(t, dst);
    for (int64_t i = 0; i < t->numel; i++)
        if (!isfinite(dst[i]))
            return rhd_errf(e, "%s: tensor '%s' holds a non-finite value at flat index %lld, expected finite weights",
                            st->name, t->name, (long long)i);
    return 0;
}

/* alex or vgg from net.slice1.0.weight (and the metadata, if any) */
static int detect_net(const rhd_st *st, rhd_lpips_net *net, rhd_err *e) {
    const char *kind = rhd_st_meta(st, "rhd.kind");
    if (kind && strcmp(kind, "lpips"))
        return rhd_errf(e, "%s: an rhd '%s' file, expected LPIPS weights (rhd.kind 'lpips', formats/lpips.md)", st->name,
                        kind);
    const char *fv = rhd_st_meta(st, "rhd.version");
    if (kind && fv && atoi(fv) > 1)
        return rhd_errf(e, "%s: rhd.version %s of the lpips layout, expected 1 (written by a newer rhd)", st->name, fv);
    const char *ver = rhd_st_meta(st, "lpips.version");
    if (ver && strcmp(ver, "0.1"))
        return rhd_errf(e, "%s: LPIPS version '%s', expected '0.1' (version 0.0 has no input scaling)", st->name, ver);
    for (int i = 0; i < st->n; i++)
        if (!strncmp(st->t[i].name, "net.slice6.", 11))
            return rhd_errf(e, "%s: tensor '%s': a SqueezeNet LPIPS (seven slices), expected alex or vgg", st->name,
                            st->t[i].name);
    const rhd_st_tensor *t = rhd_st_find(st, "net.slice1.0.weight");
    if (!t)
        return rhd_errf(e, "%s: tensor 'net.slice1.0.weight' is missing, expected an LPIPS state dict (net.sliceK.I.weight/"
                           "bias, linK.model.1.weight; pipelines/lpips_weights.py writes one)", st->name);
    const int64_t alex[4] = {64, 3, 11, 11}, vgg[4] = {64, 3, 3, 3};
    char got[96];
    if (rhd_shape_eq(t->shape, t->ndim, alex, 4)) *net = RHD_LPIPS_ALEX;
    else if (rhd_shape_eq(t->shape, t->ndim, vgg, 4)) *net = RHD_LPIPS_VGG;
    else
        return rhd_errf(e, "%s: tensor 'net.slice1.0.weight' has shape %s, expected [64,3,11,11] (alex) or [64,3,3,3] (vgg)",
                        st->name, rhd_shape_str(t->shape, t->ndim, got, sizeof got));
    const char *mnet = rhd_st_meta(st, "lpips.net");
    if (mnet && strcmp(mnet, rhd_lpips_net_name(*net)))
        return rhd_errf(e, "%s: metadata lpips.net is '%s' but the tensors are those of %s, expected them to agree",
                        st->name, mnet, rhd_lpips_net_name(*net));
    return 0;
}

int rhd_lpips_load_st(rhd_lpips *l, rhd_ctx *ctx, const rhd_st *st, rhd_err *e) {
    memset(l, 0, sizeof *l);
    if (detect_net(st, &l->net, e)) return -1;
    const conv_spec *spec = l->net == RHD_LPIPS_VGG ? k_vgg : k_alex;
    l->nconv = l->net == RHD_LPIPS_VGG ? (int)(sizeof k_vgg / sizeof k_vgg[0]) : (int)(sizeof k_alex / sizeof k_alex[0]);
    l->ctx = ctx;
    const char *net = rhd_lpips_net_name(l->net);
    rhd_params_init(&l->params);
    size_t big = 0;
    for (int i = 0; i < l->nconv; i++) {
        const conv_spec *s = &spec[i];
        rhd_lpips_conv *c = &l->conv[i];
        *c = (rhd_lpips_conv){s->name, s->cin, s->cout, s->k, s->stride, s->pad, s->pool_k, s->pool_s, s->layer, s->last};
        rhd_nn_conv_init(&l->params, &c->blk, s->name, s->cin, s->cout, s->k, s->stride, s->pad, 1);
        if (s->last) l->chns[s->layer] = s->cout;
        size_t n = (size_t)s->cout * s->cin * s->k * s->k;
        big = n > big ? n : big;
    }
    rhd_params_alloc(&l->params, ctx, 0, 0);
    rhd_nn_init(&l->run, ctx, &l->params);
    float *host = rhd_xmalloc(sizeof(float) * big);
    char name[64], what[96];
    int rc = 0;
    for (int i = 0; i < l->nconv && !rc; i++) {
        const conv_spec *s = &spec[i];
        const rhd_nn_conv *blk = &l->conv[i].blk;
        int64_t ws[4] = {s->cout, s->cin, s->k, s->k}, bs[1] = {s->cout};
        snprintf(what, sizeof what, "the %s backbone's conv %d->%d k%d", net, s->cin, s->cout, s->k);
        snprintf(name, sizeof name, "%s.weight", s->name);
        rc = get_tensor(st, name, NULL, 4, ws, host, what, e);
        if (!rc) rhd_buf_upload(ctx, rhd_param(&l->params, blk->w), host, sizeof(float) * (size_t)s->cout * s->cin * s->k * s->k);
        snprintf(name, sizeof name, "%s.bias", s->name);
        if (!rc) rc = get_tensor(st, name, NULL, 1, bs, host, what, e);
        if (!rc) rhd_buf_upload(ctx, rhd_param(&l->params, blk->b), host, sizeof(float) * s->cout);
    }
    free(host);
    for (int k = 0; k < RHD_LPIPS_LAYERS && !rc; k++) {
        char alt[64];
        int64_t ls[4] = {1, l->chns[k], 1, 1};
        l->lin[k] = rhd_xmalloc(sizeof(float) * l->chns[k]);
        snprintf(name, sizeof name, "lin%d.model.1.weight", k);
        snprintf(alt, sizeof alt, "lins.%d.model.1.weight", k);
        snprintf(what, sizeof what, "the %s head of layer %d", net, k);
        rc = get_tensor(st, name, alt, 4, ls, l->lin[k], what, e);
    }
    memcpy(l->shift, k_shift, sizeof k_shift);
    memcpy(l->scale, k_scale, sizeof k_scale);
    const int64_t s3[4] = {1, 3, 1, 1};
    if (!rc && rhd_st_find(st, "scaling_layer.shift"))
        rc = get_tensor(st, "scaling_layer.shift", NULL, 4, s3, l->shift, "lpips' ScalingLayer", e);
    if (!rc && rhd_st_find(st, "scaling_layer.scale"))
        rc = get_tensor(st, "scaling_layer.scale", NULL, 4, s3, l->scale, "lpips' ScalingLayer", e);
    for (int c = 0; c < 3 && !rc; c++)
        if (l->scale[c] == 0)
            rc = rhd_errf(e, "%s: tensor 'scaling_layer.scale' holds %g, expected a non-zero scale", st->name,
                          l->scale[c]);
    if (rc) {
        rhd_lpips_free(l);
        return -1;
    }
    return 0;
}

int rhd_lpips_load(rhd_lpips *l, rhd_ctx *ctx, const char *path, rhd_err *e) {
    rhd_st *st;
    memset(l, 0, sizeof *l);
    if (rhd_st_open(path, &st, e)) return -1;
    int rc = rhd_lpips_load_st(l, ctx, st, e);
    rhd_st_close(st);
    return rc;
}

void rhd_lpips_free(rhd_lpips *l) {
    if (l->ctx) {
        rhd_nn_free(&l->run);
        rhd_params_free(&l->params);
    }
    for (int k = 0; k < RHD_LPIPS_LAYERS; k++) free(l->lin[k]);
    free(l->host);
    memset(l, 0, sizeof *l);
}

/* ---- shapes ---------------------------------------------------------------------------------------- */

/* 1 if an axis of n pixels keeps at least one through every pooling and conv of the backbone
 * (each op acts on the two axes independently). */
static int axis_ok(const rhd_lpips *l, int n) {
    for (int i = 0; i < l->nconv; i++) {
        const rhd_lpips_conv *c = &l->conv[i];
        if (c->pool_k) n = rhd_maxpool2d_out(n, c->pool_k, c->pool_s, 0);
        if (n < 1) return 0;
        int span = n + 2 * c->pad - c->k;
        if (span < 0) return 0;
        n = span / c->stride + 1;
    }
    return 1;
}

int rhd_lpips_check_size(const rhd_lpips *l, int H, int W, rhd_err *e) {
    if (axis_ok(l, H) && axis_ok(l, W)) return 0;
    int m = 1;
    while (!axis_ok(l, m)) m++;
    return rhd_errf(e, "LPIPS (%s): image is %dx%d, expected at least %dx%d", rhd_lpips_net_name(l->net), W, H, m, m);
}

/* ---- the head ---------------------------------------------------------------------------------------- */

/* mean over the P positions of sum_c w[c] (f0/(|f0|+eps) - f1/(|f1|+eps))^2 for f (2,C,P) on the
 * host. Positions in fixed blocks, block sums added in order: deterministic. */
static double head(const float *f, const float *w, int C, int64_t P) {
    enum { BLK = 128 };
    int64_t nb = (P + BLK - 1) / BLK;
    double *part = rhd_xmalloc(sizeof(double) * nb);
    const float *f0 = f, *f1 = f + (size_t)C * P;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        int64_t p0 = b * BLK, n = P - p0 < BLK ? P - p0 : BLK;
        double s0[BLK], s1[BLK], d[BLK];
        for (int64_t q = 0; q < n; q++) s0[q] = s1[q] = d[q] = 0;
        for (int c = 0; c < C; c++) {
            const float *a = f0 + (size_t)c * P + p0, *z = f1 + (size_t)c * P + p0;
            for (int64_t q = 0; q < n; q++) s0[q] += (double)a[q] * a[q], s1[q] += (double)z[q] * z[q];
        }
        for (int64_t q = 0; q < n; q++) {
            s0[q] = 1.0 / (sqrt(s0[q]) + RHD_LPIPS_EPS);
            s1[q] = 1.0 / (sqrt(s1[q]) + RHD_LPIPS_EPS);
        }
        for (int c = 0; c < C; c++) {
            const float *a = f0 + (size_t)c * P + p0, *z = f1 + (size_t)c * P + p0;
            double wc = w[c];
            for (int64_t q = 0; q < n; q++) {
                double t = a[q] * s0[q] - z[q] * s1[q];
                d[q] += wc * t * t;
            }
        }
        double s = 0;
        for (int64_t q = 0; q < n; q++) s += d[q];
        part[b] = s;
    }
    double s = 0;
    for (int64_t b = 0; b < nb; b++) s += part[b];
    free(part);
    return s / (double)P;
}

/* ---- forward ------------------------------------------------------------------------------------------ */

/* The largest activation (2 images) and the largest feature map of an H x W pair. */
static void act_sizes(const rhd_lpips *l, int H, int W, size_t *need, size_t *feat) {
    int h = H, w = W;
    *need = (size_t)2 * 3 * H * W, *feat = 0;
    for (int i = 0; i < l->nconv; i++) {
        const rhd_lpips_conv *c = &l->conv[i];
        if (c->pool_k) h = rhd_maxpool2d_out(h, c->pool_k, c->pool_s, 0), w = rhd_maxpool2d_out(w, c->pool_k, c->pool_s, 0);
        h = (h + 2 * c->pad - c->k) / c->stride + 1;
        w = (w + 2 * c->pad - c->k) / c->stride + 1;
        size_t n = (size_t)2 * c->cout * h * w;
        if (n > *need) *need = n;
        if (c->last && n > *feat) *feat = n;
    }
}

typedef struct lpips_io {
    rhd_lpips *l;
    const float *x0, *x1;
    int H, W;
    int64_t cs, ys, xs;
    double layer[RHD_LPIPS_LAYERS];
} lpips_io;

/* One evaluation as a pass of l->run: the input batch, the backbone (ping-pong activations), the
 * heads on the host. A dry run only sizes the arena. */
static void pass(rhd_nn *r, void *user) {
    lpips_io *io = user;
    rhd_lpips *l = io->l;
    rhd_ctx *ctx = r->ctx;
    const int H = io->H, W = io->W;
    size_t need, feat;
    act_sizes(l, H, W, &need, &feat);
    size_t at = rhd_nn_mark(r);
    float *cur = rhd_nn_alloc(r, need), *nxt = rhd_nn_alloc(r, need);
    if (!r->dry) {
        /* the input batch (2,3,H,W): x -> 2x - 1 -> (x - shift) / scale, in float as torch does */
        size_t nin = (size_t)2 * 3 * H * W;
        float *in = ctx->backend == RHD_BACKEND_CPU ? cur : rhd_xmalloc(sizeof(float) * nin);
        for (int n = 0; n < 2; n++)
            for (int c = 0; c < 3; c++) {
                const float *src = (n ? io->x1 : io->x0) + c * io->cs;
                float *dst = in + ((size_t)n * 3 + c) * H * W;
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++) {
                        float v = 2.0f * src[y * io->ys + x * io->xs] - 1.0f;
                        dst[(size_t)y * W + x] = (v - l->shift[c]) / l->scale[c];
                    }
            }
        if (ctx->backend != RHD_BACKEND_CPU) {
            rhd_buf_upload(ctx, cur, in, sizeof(float) * nin);
            free(in);
        }
    }
    int C = 3, h = H, w = W;
    for (int i = 0; i < l->nconv; i++) {
        const rhd_lpips_conv *c = &l->conv[i];
        float *t;
        if (c->pool_k) {
            rhd_nn_maxpool_forward(r, nxt, cur, 2, C, h, w, c->pool_k, c->pool_s);
            h = rhd_maxpool2d_out(h, c->pool_k, c->pool_s, 0), w = rhd_maxpool2d_out(w, c->pool_k, c->pool_s, 0);
            t = cur, cur = nxt, nxt = t;
        }
        rhd_nn_conv_forward(r, &c->blk, nxt, cur, 2, h, w);
        rhd_nn_conv_out_size(&c->blk, h, w, &h, &w);
        C = c->cout;
        t = cur, cur = nxt, nxt = t;
        size_t n = (size_t)2 * C * h * w;
        rhd_nn_relu_forward(r, cur, cur, (int64_t)n);
        if (c->last && !r->dry) {
            const float *f = cur;
            if (ctx->backend != RHD_BACKEND_CPU) {
                rhd_buf_download(ctx, l->host, cur, sizeof(float) * n);
                f = l->host;
            }
            io->layer[c->layer] = head(f, l->lin[c->layer], C, (int64_t)h * w);
        }
    }
    rhd_nn_release(r, at);
}

/* x0, x1 at (c, y, x) = base[c*cs + y*ys + x*xs] */
static int eval_strided(rhd_lpips *l, const float *x0, const float *x1, int H, int W, int64_t cs, int64_t ys, int64_t xs,
                        double *out, rhd_err *e) {
    if (rhd_lpips_check_size(l, H, W, e)) return -1;
    size_t need, feat;
    act_sizes(l, H, W, &need, &feat);
    if (l->ctx->backend != RHD_BACKEND_CPU && feat > l->host_floats) {
        free(l->host);
        l->host = rhd_xmalloc(sizeof(float) * feat);
        l->host_floats = feat;
    }
    lpips_io io = {l, x0, x1, H, W, cs, ys, xs, {0}};
    l->run.train = 0;
    rhd_nn_plan(&l->run, pass, &io); /* sizes the arena (kept when large enough) */
    rhd_nn_begin(&l->run, 0);
    pass(&l->run, &io);
    double s = 0;
    for (int k = 0; k < RHD_LPIPS_LAYERS; k++) s += io.layer[k];
    *out = s;
    return 0;
}

int rhd_lpips_eval(rhd_lpips *l, const float *x0, const float *x1, int H, int W, double *out, rhd_err *e) {
    return eval_strided(l, x0, x1, H, W, (int64_t)H * W, W, 1, out, e);
}

int rhd_lpips_eval_hwc(rhd_lpips *l, const float *x0, const float *x1, int H, int W, double *out, rhd_err *e) {
    return eval_strided(l, x0, x1, H, W, 1, (int64_t)W * 3, 3, out, e);
}
