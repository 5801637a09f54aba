/* common/models/decoder.c: the triplane MLP decoder (see decoder.h). */
#include "common/models/decoder.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "common/rng.h"
#include "formats/safetensors.h"
#include "kernels/act.h"
#include "kernels/elementwise.h"
#include "kernels/freq_encode.h"
#include "kernels/linear.h"
#include "kernels/triplane.h"

static const char *const k_names[RHD_DEC_NPARAM] = {"sigma_net.0.weight", "sigma_net.0.bias",   "sigma_net.2.weight",
                                                    "sigma_net.2.bias",   "color_net.0.weight", "color_net.1.weight",
                                                    "color_net.2.weight"};

void rhd_decoder_cfg_default(rhd_decoder_cfg *c) {
    c->C = 32;
    c->hidden = 128;
    c->geo = 128;
    c->degree = 2;
    c->agg = RHD_PLANE_MEAN;
}

int rhd_decoder_init(rhd_decoder *d, const rhd_decoder_cfg *cfg, rhd_ctx *ctx, int with_grad, rhd_err *e) {
    memset(d, 0, sizeof *d);
    if (cfg->C < 4 || cfg->C % 4) return rhd_errf(e, "decoder: %d triplane channels, expected a multiple of 4", cfg->C);
    if (cfg->hidden < 1 || cfg->geo < 0 || cfg->degree < 0)
        return rhd_errf(e, "decoder: hidden %d, geo %d, degree %d, expected positive sizes", cfg->hidden, cfg->geo,
                        cfg->degree);
    if (cfg->agg < 0 || cfg->agg >= RHD_PLANE_AGG_COUNT)
        return rhd_errf(e, "decoder: plane aggregation %d, expected mean, product or offset-product", cfg->agg);
    d->cfg = *cfg;
    d->Cc = cfg->C * 3 / 4, d->Cd = cfg->C / 4;
    d->Ec = rhd_freq_encode_dim(d->Cc, cfg->degree);
    d->Ed = rhd_freq_encode_dim(d->Cd, cfg->degree);
    d->Edir = rhd_freq_encode_dim(3, cfg->degree);
    d->Cin = d->Ec + cfg->geo + d->Edir;
    int h = cfg->hidden;
    int64_t shapes[RHD_DEC_NPARAM][2] = {{h, d->Ed}, {h, 0}, {1 + cfg->geo, h}, {1 + cfg->geo, 0},
                                         {h, d->Cin}, {h, h}, {3, h}};
    int ndims[RHD_DEC_NPARAM] = {2, 1, 2, 1, 2, 2, 2};
    rhd_params_init(&d->P);
    for (int i = 0; i < RHD_DEC_NPARAM; i++) rhd_params_add(&d->P, k_names[i], ndims[i], shapes[i]);
    rhd_params_alloc(&d->P, ctx, with_grad, with_grad);
    return 0;
}

void rhd_decoder_free(rhd_decoder *d) { rhd_params_free(&d->P); }

void rhd_decoder_init_weights(rhd_decoder *d, uint64_t seed) {
    /* fan_in of each tensor: the weight's input width (biases share their weight's) */
    int fan[RHD_DEC_NPARAM] = {d->Ed, d->Ed, d->cfg.hidden, d->cfg.hidden, d->Cin, d->cfg.hidden, d->cfg.hidden};
    float *host = rhd_xmalloc(sizeof(float) * (size_t)d->P.total);
    memset(host, 0, sizeof(float) * (size_t)d->P.total);
    for (int i = 0; i < RHD_DEC_NPARAM; i++) {
        float k = 1.f / sqrtf((float)fan[i]);
        float *p = host + d->P.info[i].offset;
        for (int64_t j = 0; j < d->P.info[i].numel; j++)
            p[j] = (2.f * rhd_rng_uniform(seed, RHD_STREAM(RHD_STREAM_PARAM_INIT, i), (uint64_t)j) - 1.f) * k;
    }
    rhd_buf_upload(d->P.ctx, d->P.data, host, sizeof(float) * (size_t)d->P.total);
    free(host);
}

int rhd_decoder_cfg_from_st(rhd_decoder_cfg *c, const rhd_st *st, rhd_err *e) {
    rhd_decoder_cfg_default(c);
    const rhd_st_tensor *s0 = rhd_st_find(st, "sigma_net.0.weight"), *s2 = rhd_st_find(st, "sigma_net.2.weight"),
                        *c0 = rhd_st_find(st, "color_net.0.weight");
    if (!s0 && !s2 && !c0)
        return rhd_errf(e, "%s: no decoder tensors (sigma_net.0.weight, sigma_net.2.weight, color_net.0.weight), "
                           "expected a decoder or fit checkpoint", st->name);
    const rhd_st_tensor *need[3] = {s0, s2, c0};
    const char *names[3] = {"sigma_net.0.weight", "sigma_net.2.weight", "color_net.0.weight"};
    for (int i = 0; i < 3; i++) {
        char sh[128];
        if (!need[i]) return rhd_errf(e, "%s: tensor '%s' is missing, expected a decoder's", st->name, names[i]);
        if (need[i]->ndim != 2)
            return rhd_errf(e, "%s: tensor '%s' has shape %s, expected a matrix [out, in]", st->name, names[i],
                            rhd_shape_str(need[i]->shape, need[i]->ndim, sh, sizeof sh));
    }
    int width = 1 + 2 * c->degree;
    c->hidden = (int)s0->shape[0];
    if (s0->shape[1] % width)
        return rhd_errf(e, "%s: sigma_net.0.weight has %lld inputs, expected a multiple of %d", st->name,
                        (long long)s0->shape[1], width);
    c->C = (int)(s0->shape[1] / width) * 4;
    c->geo = (int)s2->shape[0] - 1;
    long long cin = (long long)width * (c->C * 3 / 4) + c->geo + 3 * width;
    if (s2->shape[1] != c->hidden)
        return rhd_errf(e, "%s: tensor 'sigma_net.2.weight' has %lld inputs, expected %d (the rows of sigma_net.0.weight)",
                        st->name, (long long)s2->shape[1], c->hidden);
    if (c0->shape[1] != cin)
        return rhd_errf(e, "%s: color_net.0.weight has %lld inputs, expected %lld for %d channels and %d geometry features",
                        st->name, (long long)c0->shape[1], cin, c->C, c->geo);
    const char *agg = rhd_st_meta(st, "rhd.plane_agg");
    if (agg && (c->agg = rhd_plane_agg_parse(agg)) < 0)
        return rhd_errf(e, "%s: metadata rhd.plane_agg is '%s', expected mean, product or offset-product", st->name, agg);
    return 0;
}

void rhd_decoder_cfg_to_meta(const rhd_decoder_cfg *c, rhd_st_writer *w) {
    rhd_st_set_meta(w, "rhd.plane_agg", rhd_plane_agg_name(c->agg));
}

/* ---- activations (on the context's side) ---- */

static void grow(rhd_ctx *ctx, float **p, int64_t n) {
    rhd_buf_free(ctx, *p);
    *p = rhd_buf_alloc(ctx, sizeof(float) * (size_t)(n > 0 ? n : 1));
}

#define ACTS_ALL(a)                                                                                                   \
    {&(a)->feat, &(a)->fc,   &(a)->fd,     &(a)->ec,     &(a)->ed,   &(a)->edir,  &(a)->h1,  &(a)->a1,  &(a)->h2,     \
     &(a)->cin,  &(a)->c1,   &(a)->r1,     &(a)->c2,     &(a)->r2,   &(a)->c3,    &(a)->dbuf_a, &(a)->dbuf_b,         \
     &(a)->dcin, &(a)->dfeat, &(a)->dfc,   &(a)->dfd,    &(a)->dh2,  &(a)->tmp,   &(a)->splanes}

/* The forward's saved activations for M points. */
static void acts_reserve(rhd_ctx *ctx, const rhd_decoder *d, rhd_decoder_acts *a, int64_t M) {
    if (a->ctx && a->ctx != ctx) rhd_decoder_acts_free(a);
    a->ctx = ctx;
    if (d->cfg.agg != RHD_PLANE_MEAN && a->cap_s < M) {
        grow(ctx, &a->splanes, 3 * M * d->cfg.C);
        a->cap_s = M;
    }
    if (M <= a->cap) return;
    int h = d->cfg.hidden, g1 = 1 + d->cfg.geo;
    grow(ctx, &a->feat, M * d->cfg.C), grow(ctx, &a->fc, M * d->Cc), grow(ctx, &a->fd, M * d->Cd);
    grow(ctx, &a->ec, M * d->Ec), grow(ctx, &a->ed, M * d->Ed), grow(ctx, &a->edir, M * d->Edir);
    grow(ctx, &a->h1, M * h), grow(ctx, &a->a1, M * h), grow(ctx, &a->h2, M * g1), grow(ctx, &a->cin, M * d->Cin);
    grow(ctx, &a->c1, M * h), grow(ctx, &a->r1, M * h), grow(ctx, &a->c2, M * h), grow(ctx, &a->r2, M * h);
    grow(ctx, &a->c3, M * 3);
    a->cap = M;
}

/* The backward's buffers, only when a backward runs (inference never pays for them). */
static void acts_reserve_backward(rhd_ctx *ctx, const rhd_decoder *d, rhd_decoder_acts *a, int64_t M) {
    RHD_ASSERT(a->ctx == ctx && M <= a->cap);
    if (M <= a->cap_b) return;
    int h = d->cfg.hidden, g1 = 1 + d->cfg.geo;
    int64_t wide = h;
    if (g1 > wide) wide = g1;
    if (d->Ec > wide) wide = d->Ec;
    if (d->Ed > wide) wide = d->Ed;
    grow(ctx, &a->dbuf_a, M * wide), grow(ctx, &a->dbuf_b, M * wide), grow(ctx, &a->dcin, M * d->Cin);
    grow(ctx, &a->dfeat, M * d->cfg.C), grow(ctx, &a->dfc, M * d->Cc), grow(ctx, &a->dfd, M * d->Cd);
    grow(ctx, &a->dh2, M * g1), grow(ctx, &a->tmp, M);
    a->cap_b = M;
}

void rhd_decoder_acts_free(rhd_decoder_acts *a) {
    if (a->ctx) {
        float **all[] = ACTS_ALL(a);
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) rhd_buf_free(a->ctx, *all[i]);
        rhd_buf_free(a->ctx, a->wt);
        rhd_buf_free(a->ctx, a->packed);
    }
    memset(a, 0, sizeof *a);
}

/* feat [M,C] -> fc [M,Cc], fd [M,Cd] */
static void split_feat(rhd_ctx *ctx, const rhd_decoder *d, rhd_decoder_acts *a, int64_t M, int want_colour) {
    int C = d->cfg.C, Cc = d->Cc, Cd = d->Cd;
    if (want_colour) rhd_copy_cols(ctx, a->fc, Cc, a->feat, C, Cc, M);
    rhd_copy_cols(ctx, a->fd, Cd, a->feat + Cc, C, Cd, M);
}

/* The density branch up to h1 = sigma_net.0(enc(fd)) and a1 = softplus(h1). */
static void density_trunk(rhd_ctx *ctx, const rhd_decoder *d, rhd_decoder_acts *a, const float *points,
                          const float *planes, int R, int clamp, int64_t M, int want_colour, const float *packed) {
    if (packed)
        rhd_triplane_forward_packed(ctx, a->feat, points, packed, M, d->cfg.C, R, d->cfg.agg);
    else
        rhd_triplane_forward(ctx, a->feat, points, planes, M, d->cfg.C, R, clamp, d->cfg.agg, a->splanes);
    split_feat(ctx, d, a, M, want_colour);
    rhd_freq_encode_forward(ctx, a->ed, a->fd, M, d->Cd, d->cfg.degree);
    rhd_linear_forward(ctx, a->h1, a->ed, rhd_param(&d->P, RHD_DEC_S0W), rhd_param(&d->P, RHD_DEC_S0B), (int)M, d->Ed,
                       d->cfg.hidden);
    rhd_act_forward(ctx, a->a1, a->h1, (int64_t)(M * d->cfg.hidden), RHD_ACT_SOFTPLUS);
}

/* The forward, sampling the planes or (packed != NULL) their prepared channels-last copy. */
static void forward_impl(rhd_ctx *ctx, const rhd_decoder *d, rhd_decoder_acts *a, float *sigma, float *rgb,
                         const float *points, const float *dirs, const float *planes, int R, int clamp, int64_t M,
                         const float *packed) {
    acts_reserve(ctx, d, a, M);
    if (M == 0) return;
    int h = d->cfg.hidden, g1 = 1 + d->cfg.geo;
    density_trunk(ctx, d, a, points, planes, R, clamp, M, 1, packed);
    rhd_linear_forward(ctx, a->h2, a->a1, rhd_param(&d->P, RHD_DEC_S2W), rhd_param(&d->P, RHD_DEC_S2B), (int)M, h, g1);
    rhd_freq_encode_forward(ctx, a->ec, a->fc, M, d->Cc, d->cfg.degree);
    rhd_freq_encode_forward(ctx, a->edir, dirs, M, 3, d->cfg.degree);
    int Ec = d->Ec, geo = d->cfg.geo, Edir = d->Edir, Cin = d->Cin;
    /* cin = [enc(fc) | geo | enc(d)]; sigma = trunc_exp(h2[:, 0]) */
    rhd_copy_cols(ctx, a->cin, Cin, a->ec, Ec, Ec, M);
    rhd_copy_cols(ctx, a->cin + Ec, Cin, a->h2 + 1, g1, geo, M);
    rhd_copy_cols(ctx, a->cin + Ec + geo, Cin, a->edir, Edir, Edir, M);
    rhd_copy_cols(ctx, sigma, 1, a->h2, g1, 1, M);
    rhd_act_forward(ctx, sigma, sigma, (int64_t)M, RHD_ACT_TRUNC_EXP);
    rhd_linear_forward(ctx, a->c1, a->cin, rhd_param(&d->P, RHD_DEC_C0W), NULL, (int)M, Cin, h);
    rhd_act_forward(ctx, a->r1, a->c1, (int64_t)(M * h), RHD_ACT_RELU);
    rhd_linear_forward(ctx, a->c2, a->r1, rhd_param(&d->P, RHD_DEC_C1W), NULL, (int)M, h, h);
    rhd_act_forward(ctx, a->r2, a->c2, (int64_t)(M * h), RHD_ACT_RELU);
    rhd_linear_forward(ctx, a->c3, a->r2, rhd_param(&d->P, RHD_DEC_C2W), NULL, (int)M, h, 3);
    rhd_act_forward(ctx, rgb, a->c3, (int64_t)(M * 3), RHD_ACT_SIGMOID);
}

void rhd_decoder_forward(rhd_ctx *ctx, const rhd_decoder *d, rhd_decoder_acts *a, float *sigma, float *rgb,
                         const float *points, const float *dirs, const float *planes, int R, int clamp, int64_t M) {
    forward_impl(ctx, d, a, sigma, rgb, points, dirs, planes, R, clamp, M, NULL);
}

static float *pgrad(rhd_decoder *d, int i, int want) { return want ? rhd_param_grad(&d->P, i) : NULL; }

/* From dh1 (in a->dbuf_a, pre-softplus already applied) down to dplanes; dfc may be NULL. */
static void density_trunk_backward(rhd_ctx *ctx, rhd_decoder *d, rhd_decoder_acts *a, float *dplanes,
                                   const float *dfc_or_null, const float *points, const float *planes, int R, int clamp,
                                   int64_t M, int want) {
    rhd_linear_backward(ctx, dplanes ? a->dbuf_b : NULL, pgrad(d, RHD_DEC_S0W, want), pgrad(d, RHD_DEC_S0B, want),
                        a->dbuf_a, a->ed, rhd_param(&d->P, RHD_DEC_S0W), (int)M, d->Ed, d->cfg.hidden);
    if (!dplanes) return;
    rhd_freq_encode_backward(ctx, a->dfd, a->dbuf_b, a->fd, M, d->Cd, d->cfg.degree);
    int C = d->cfg.C, Cc = d->Cc, Cd = d->Cd;
    if (dfc_or_null)
        rhd_copy_cols(ctx, a->dfeat, C, dfc_or_null, Cc, Cc, M);
    else
        rhd_buf_zero(ctx, a->dfeat, sizeof(float) * (size_t)(M * C));
    rhd_copy_cols(ctx, a->dfeat + Cc, C, a->dfd, Cd, Cd, M);
    rhd_triplane_backward(ctx, dplanes, a->dfeat, points, planes, M, C, R, clamp, d->cfg.agg, a->splanes);
}

void rhd_decoder_backward(rhd_ctx *ctx, rhd_decoder *d, rhd_decoder_acts *a, float *dplanes, const float *dsigma,
                          const float *drgb, const float *points, const float *planes, int R, int clamp, int64_t M,
                          int want) {
    if (M == 0) return;
    acts_reserve_backward(ctx, d, a, M);
    int h = d->cfg.hidden, g1 = 1 + d->cfg.geo, Cin = d->Cin, Ec = d->Ec, geo = d->cfg.geo;
    float *dc3 = a->dh2; /* [M,3] scratch before dh2 is needed */
    rhd_act_backward(ctx, dc3, drgb, a->c3, (int64_t)(M * 3), RHD_ACT_SIGMOID);
    rhd_linear_backward(ctx, a->dbuf_a, pgrad(d, RHD_DEC_C2W, want), NULL, dc3, a->r2, rhd_param(&d->P, RHD_DEC_C2W),
                        (int)M, h, 3);
    rhd_act_backward(ctx, a->dbuf_a, a->dbuf_a, a->c2, (int64_t)(M * h), RHD_ACT_RELU);
    rhd_linear_backward(ctx, a->dbuf_b, pgrad(d, RHD_DEC_C1W, want), NULL, a->dbuf_a, a->r1,
                        rhd_param(&d->P, RHD_DEC_C1W), (int)M, h, h);
    rhd_act_backward(ctx, a->dbuf_b, a->dbuf_b, a->c1, (int64_t)(M * h), RHD_ACT_RELU);
    rhd_linear_backward(ctx, a->dcin, pgrad(d, RHD_DEC_C0W, want), NULL, a->dbuf_b, a->cin,
                        rhd_param(&d->P, RHD_DEC_C0W), (int)M, Cin, h);
    /* dh2 = [dsigma * trunc_exp'(h2[:, 0]) | d geo]; d enc(fc) made contiguous in dbuf_b */
    if (dsigma) {
        rhd_copy_cols(ctx, a->tmp, 1, a->h2, g1, 1, M);
        rhd_act_backward(ctx, a->tmp, dsigma, a->tmp, (int64_t)M, RHD_ACT_TRUNC_EXP);
    } else {
        rhd_buf_zero(ctx, a->tmp, sizeof(float) * (size_t)M);
    }
    rhd_copy_cols(ctx, a->dh2, g1, a->tmp, 1, 1, M);
    rhd_copy_cols(ctx, a->dh2 + 1, g1, a->dcin + Ec, Cin, geo, M);
    rhd_copy_cols(ctx, a->dbuf_b, Ec, a->dcin, Cin, Ec, M);
    if (dplanes) rhd_freq_encode_backward(ctx, a->dfc, a->dbuf_b, a->fc, M, d->Cc, d->cfg.degree);
    rhd_linear_backward(ctx, a->dbuf_a, pgrad(d, RHD_DEC_S2W, want), pgrad(d, RHD_DEC_S2B, want), a->dh2, a->a1,
                        rhd_param(&d->P, RHD_DEC_S2W), (int)M, h, g1);
    rhd_act_backward(ctx, a->dbuf_a, a->dbuf_a, a->h1, (int64_t)(M * h), RHD_ACT_SOFTPLUS);
    density_trunk_backward(ctx, d, a, dplanes, a->dfc, points, planes, R, clamp, M, want);
}

static void density_impl(rhd_ctx *ctx, const rhd_decoder *d, rhd_decoder_acts *a, float *sigma, const float *points,
                         const float *planes, int R, int clamp, int64_t M, const float *packed) {
    acts_reserve(ctx, d, a, M);
    if (M == 0) return;
    density_trunk(ctx, d, a, points, planes, R, clamp, M, 0, packed);
    /* only output 0 of sigma_net.2: its weight row 0 and bias 0 */
    rhd_linear_forward(ctx, a->h2, a->a1, rhd_param(&d->P, RHD_DEC_S2W), rhd_param(&d->P, RHD_DEC_S2B), (int)M,
                       d->cfg.hidden, 1);
    rhd_act_forward(ctx, sigma, a->h2, (int64_t)M, RHD_ACT_TRUNC_EXP);
}

void rhd_decoder_density(rhd_ctx *ctx, const rhd_decoder *d, rhd_decoder_acts *a, float *sigma, const float *points,
                         const float *planes, int R, int clamp, int64_t M) {
    density_impl(ctx, d, a, sigma, points, planes, R, clamp, M, NULL);
}

void rhd_decoder_density_backward(rhd_ctx *ctx, rhd_decoder *d, rhd_decoder_acts *a, float *dplanes,
                                  const float *dsigma, const float *points, const float *planes, int R, int clamp,
                                  int64_t M, int want) {
    if (M == 0) return;
    acts_reserve_backward(ctx, d, a, M);
    int h = d->cfg.hidden;
    rhd_act_backward(ctx, a->dh2, dsigma, a->h2, (int64_t)M, RHD_ACT_TRUNC_EXP);
    rhd_linear_backward(ctx, a->dbuf_a, pgrad(d, RHD_DEC_S2W, want), pgrad(d, RHD_DEC_S2B, want), a->dh2, a->a1,
                        rhd_param(&d->P, RHD_DEC_S2W), (int)M, h, 1);
    rhd_act_backward(ctx, a->dbuf_a, a->dbuf_a, a->h1, (int64_t)(M * h), RHD_ACT_SOFTPLUS);
    density_trunk_backward(ctx, d, a, dplanes, NULL, points, planes, R, clamp, M, want);
}

void rhd_decoder_infer_prepare(rhd_ctx *ctx, const rhd_decoder *d, rhd_decoder_acts *a, const float *planes, int R,
                               int clamp) {
    a->prep_valid = 0;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        if (!getenv("RHD_NO_FUSED")) rhd_decoder_infer_prepare_cuda(ctx, d, a, planes, R, clamp);
        return;
    }
#endif
    /* CPU: the channels-last planes, sampled by every infer call until the release */
    if (a->ctx && a->ctx != ctx) rhd_decoder_acts_free(a);
    a->ctx = ctx;
    int64_t np = rhd_triplane_numel_of(d->cfg.C, R);
    if (a->packed_cap < np) {
        rhd_buf_free(ctx, a->packed);
        a->packed = rhd_buf_alloc(ctx, sizeof(float) * (size_t)np);
        a->packed_cap = np;
    }
    rhd_triplane_pack(ctx, a->packed, planes, d->cfg.C, R, clamp);
    a->prep_planes = planes, a->prep_R = R, a->prep_clamp = clamp, a->prep_valid = 1;
}

void rhd_decoder_infer_release(rhd_decoder_acts *a) { a->prep_valid = 0; }

void rhd_decoder_infer(rhd_ctx *ctx, const rhd_decoder *d, rhd_decoder_acts *a, float *sigma, float *rgb,
                       const float *points, const float *dirs, const float *planes, int R, int clamp, int64_t M) {
    if (M == 0) return;
    int prepared = a->prep_valid && a->ctx == ctx && a->prep_planes == planes && a->prep_R == R && a->prep_clamp == clamp;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        if (!prepared) rhd_decoder_infer_prepare(ctx, d, a, planes, R, clamp);
        if (a->prep_valid) {
            rhd_decoder_infer_cuda(ctx, d, a, sigma, rgb, points, dirs, M);
            if (!prepared) rhd_decoder_infer_release(a);
            return;
        }
        prepared = 0; /* the per-layer path on the planes */
    }
#endif
    const float *packed = prepared ? a->packed : NULL;
    if (rgb)
        forward_impl(ctx, d, a, sigma, rgb, points, dirs, planes, R, clamp, M, packed);
    else
        density_impl(ctx, d, a, sigma, points, planes, R, clamp, M, packed);
}

double rhd_decoder_flops_per_sample(const rhd_decoder *d) {
    double h = d->cfg.hidden, g1 = 1 + d->cfg.geo;
    return 2.0 * (d->Ed * h + h * g1 + d->Cin * h + h * h + h * 3) + h + g1;
}
