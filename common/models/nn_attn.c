/* common/models/nn_attn.c: the attention blocks (contracts in nn.h): the base UNet's joint self +
 * cross AttentionBlock (spec diffusion.md §2.4) and the upsampler's cross-only CrossAttention_u
 * (§5.2), composed from kernels/norm, conv2d (the 1x1 conv1d projections), attention and
 * elementwise. */
#include "common/models/nn.h"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "kernels/attention.h"
#include "kernels/elementwise.h"

static void sub(char *buf, size_t n, const char *prefix, const char *name) {
    int k = snprintf(buf, n, "%s%s%s", prefix, *prefix ? "." : "", name);
    RHD_ASSERT(k > 0 && (size_t)k < n);
}

void rhd_nn_attn_init(rhd_params *p, rhd_nn_attn *a, const char *prefix, const rhd_nn_attn_cfg *cfg) {
    memset(a, 0, sizeof *a);
    a->cfg = *cfg;
    const int C = cfg->C;
    RHD_ASSERT(cfg->heads >= 1 && C % cfg->heads == 0);
    RHD_ASSERT(cfg->kind == RHD_NN_ATTN_JOINT || cfg->enc_ch > 0);
    char name[RHD_PARAM_NAME_MAX];
    a->norm_enc = (rhd_nn_groupnorm){-1, -1, 0, 1, 0};
    a->ekv = (rhd_nn_conv){-1, -1};
    sub(name, sizeof name, prefix, "norm");
    rhd_nn_groupnorm_init(p, &a->norm, name, C, cfg->groups, cfg->eps);
    sub(name, sizeof name, prefix, "qkv");
    rhd_nn_conv1x1_init_shaped(p, &a->qkv, name, C, cfg->kind == RHD_NN_ATTN_JOINT ? 3 * C : C, 3);
    if (cfg->enc_ch > 0) {
        sub(name, sizeof name, prefix, "encoder_kv");
        rhd_nn_conv1x1_init_shaped(p, &a->ekv, name, cfg->enc_ch, 2 * C, 3);
    }
    if (cfg->kind == RHD_NN_ATTN_CROSS) {
        sub(name, sizeof name, prefix, "norm_encoder");
        rhd_nn_groupnorm_init(p, &a->norm_enc, name, cfg->enc_ch, cfg->enc_groups, cfg->eps);
    }
    sub(name, sizeof name, prefix, "proj_out");
    rhd_nn_conv1x1_init_shaped(p, &a->proj, name, C, C, 3);
}

/* att (N,C,T) = the heads' outputs merged, from GN(x) and the encoder tokens. */
static void joint_core(rhd_nn *r, const rhd_nn_attn *a, float *att, const float *n, const float *enc, int N, int T,
                       int Te) {
    const int C = a->cfg.C;
    float *qkv = rhd_nn_alloc(r, (size_t)N * 3 * C * T), *ekv = NULL;
    rhd_nn_conv_forward(r, &a->qkv, qkv, n, N, 1, T);
    if (Te > 0) {
        ekv = rhd_nn_alloc(r, (size_t)N * 2 * C * Te);
        rhd_nn_conv_forward(r, &a->ekv, ekv, enc, N, 1, Te);
    }
    float *lse = rhd_nn_alloc(r, (size_t)N * a->cfg.heads * T);
    if (!r->dry) rhd_attention_block_forward(r->ctx, att, lse, qkv, ekv, N, C, a->cfg.heads, T, Te);
    if (rhd_nn_saving(r)) {
        rhd_nn_push(r, RHD_NN_TAG_ATTN, qkv, 0);
        rhd_nn_push(r, RHD_NN_TAG_ATTN, ekv, 0);
        rhd_nn_push(r, RHD_NN_TAG_ATTN, att, 0);
        rhd_nn_push(r, RHD_NN_TAG_ATTN, lse, 0);
    }
}

static void joint_core_bwd(rhd_nn *r, const rhd_nn_attn *a, float *dn, float *denc, const float *datt, int N, int T,
                           int Te) {
    const int C = a->cfg.C;
    const float *lse = rhd_nn_pop(r, RHD_NN_TAG_ATTN, NULL), *att = rhd_nn_pop(r, RHD_NN_TAG_ATTN, NULL);
    const float *ekv = rhd_nn_pop(r, RHD_NN_TAG_ATTN, NULL), *qkv = rhd_nn_pop(r, RHD_NN_TAG_ATTN, NULL);
    size_t at = rhd_nn_mark(r);
    float *dqkv = rhd_nn_alloc(r, (size_t)N * 3 * C * T);
    float *dekv = Te > 0 ? rhd_nn_alloc(r, (size_t)N * 2 * C * Te) : NULL;
    if (!r->dry)
        rhd_attention_block_backward(r->ctx, dqkv, dekv, datt, qkv, ekv, att, lse, N, C, a->cfg.heads, T, Te);
    if (Te > 0) {
        float *de = rhd_nn_alloc(r, (size_t)N * a->cfg.enc_ch * Te);
        rhd_nn_conv_backward(r, &a->ekv, de, dekv, N, 1, Te);
        if (denc) rhd_nn_add_forward(r, denc, denc, de, (int64_t)N * a->cfg.enc_ch * Te);
    }
    rhd_nn_conv_backward(r, &a->qkv, dn, dqkv, N, 1, T);
    rhd_nn_release(r, at);
}

/* The cross-only core: queries from GN(x), keys and values only from GN(enc). */
static void cross_core(rhd_nn *r, const rhd_nn_attn *a, float *att, const float *n, const float *enc, int N, int T,
                       int Te) {
    const int C = a->cfg.C, Hh = a->cfg.heads, d = C / Hh, Ce = a->cfg.enc_ch;
    const int64_t rows = (int64_t)N * Hh * Te;
    float *qc = rhd_nn_alloc(r, (size_t)N * C * T), *en = rhd_nn_alloc(r, (size_t)N * Ce * Te);
    float *ekv = rhd_nn_alloc(r, (size_t)N * 2 * C * Te);
    rhd_nn_conv_forward(r, &a->qkv, qc, n, N, 1, T);
    rhd_nn_groupnorm_forward(r, &a->norm_enc, en, enc, N, Te, 0);
    rhd_nn_conv_forward(r, &a->ekv, ekv, en, N, 1, Te);
    float *q = rhd_nn_alloc(r, (size_t)N * C * T), *kv = rhd_nn_alloc(r, (size_t)rows * 2 * d);
    float *k = rhd_nn_alloc(r, (size_t)rows * d), *v = rhd_nn_alloc(r, (size_t)rows * d);
    float *o = rhd_nn_alloc(r, (size_t)N * C * T), *lse = rhd_nn_alloc(r, (size_t)N * Hh * T);
    if (!r->dry) {
        rhd_attn_merge_heads_backward(r->ctx, q, qc, N, Hh, d, T);       /* [N,C,T] -> [N,H,T,d] */
        rhd_attn_merge_heads_backward(r->ctx, kv, ekv, N, Hh, 2 * d, Te); /* [N,H,Te,2d]: k | v */
        rhd_copy_cols(r->ctx, k, d, kv, 2L * d, d, rows);
        rhd_copy_cols(r->ctx, v, d, kv + d, 2L * d, d, rows);
        rhd_attention_forward(r->ctx, o, lse, q, k, v, N, Hh, T, Te, d, 1.0f / sqrtf((float)d));
        rhd_attn_merge_heads(r->ctx, att, o, N, Hh, d, T);
    }
    if (rhd_nn_saving(r)) {
        rhd_nn_push(r, RHD_NN_TAG_ATTN, q, 0);
        rhd_nn_push(r, RHD_NN_TAG_ATTN, k, 0);
        rhd_nn_push(r, RHD_NN_TAG_ATTN, v, 0);
        rhd_nn_push(r, RHD_NN_TAG_ATTN, o, 0);
        rhd_nn_push(r, RHD_NN_TAG_ATTN, lse, 0);
    }
}

static void cross_core_bwd(rhd_nn *r, const rhd_nn_attn *a, float *dn, float *denc, const float *datt, int N, int T,
                           int Te) {
    const int C = a->cfg.C, Hh = a->cfg.heads, d = C / Hh, Ce = a->cfg.enc_ch;
    const int64_t rows = (int64_t)N * Hh * Te;
    const float *lse = rhd_nn_pop(r, RHD_NN_TAG_ATTN, NULL), *o = rhd_nn_pop(r, RHD_NN_TAG_ATTN, NULL);
    const float *v = rhd_nn_pop(r, RHD_NN_TAG_ATTN, NULL), *k = rhd_nn_pop(r, RHD_NN_TAG_ATTN, NULL);
    const float *q = rhd_nn_pop(r, RHD_NN_TAG_ATTN, NULL);
    size_t at = rhd_nn_mark(r);
    float *dout = rhd_nn_alloc(r, (size_t)N * C * T), *dq = rhd_nn_alloc(r, (size_t)N * C * T);
    float *dk = rhd_nn_alloc(r, (size_t)rows * d), *dv = rhd_nn_alloc(r, (size_t)rows * d);
    float *dkv = rhd_nn_alloc(r, (size_t)rows * 2 * d), *dekv = rhd_nn_alloc(r, (size_t)N * 2 * C * Te);
    float *dqc = rhd_nn_alloc(r, (size_t)N * C * T);
    if (!r->dry) {
        rhd_attn_merge_heads_backward(r->ctx, dout, datt, N, Hh, d, T);
        rhd_attention_backward(r->ctx, dq, dk, dv, dout, q, k, v, o, lse, N, Hh, T, Te, d, 1.0f / sqrtf((float)d));
        rhd_copy_cols(r->ctx, dkv, 2L * d, dk, d, d, rows);
        rhd_copy_cols(r->ctx, dkv + d, 2L * d, dv, d, d, rows);
        rhd_attn_merge_heads(r->ctx, dekv, dkv, N, Hh, 2 * d, Te);
        rhd_attn_merge_heads(r->ctx, dqc, dq, N, Hh, d, T);
    }
    float *den = rhd_nn_alloc(r, (size_t)N * Ce * Te), *de = rhd_nn_alloc(r, (size_t)N * Ce * Te);
    rhd_nn_conv_backward(r, &a->ekv, den, dekv, N, 1, Te);
    rhd_nn_groupnorm_backward(r, &a->norm_enc, de, den, N, Te, 0);
    if (denc) rhd_nn_add_forward(r, denc, denc, de, (int64_t)N * Ce * Te);
    rhd_nn_conv_backward(r, &a->qkv, dn, dqc, N, 1, T);
    rhd_nn_release(r, at);
}

static void attn_fwd(rhd_nn *r, const rhd_nn_attn *a, float *y, const float *x, const float *enc, int N, int T, int Te) {
    const int C = a->cfg.C;
    const int64_t n = (int64_t)N * C * T;
    size_t at = rhd_nn_mark(r);
    float *nx = rhd_nn_alloc(r, (size_t)n), *att = rhd_nn_alloc(r, (size_t)n);
    rhd_nn_groupnorm_forward(r, &a->norm, nx, x, N, T, 0);
    if (a->cfg.kind == RHD_NN_ATTN_JOINT) joint_core(r, a, att, nx, enc, N, T, Te);
    else cross_core(r, a, att, nx, enc, N, T, Te);
    float *o = rhd_nn_alloc(r, (size_t)n);
    rhd_nn_conv_forward(r, &a->proj, o, att, N, 1, T);
    rhd_nn_add_forward(r, y, x, o, n); /* x + h */
    if (!rhd_nn_saving(r)) rhd_nn_release(r, at);
}

static void attn_bwd(rhd_nn *r, const rhd_nn_attn *a, float *dx, float *denc, const float *dy, int N, int T, int Te) {
    const int C = a->cfg.C;
    const int64_t n = (int64_t)N * C * T;
    size_t at = rhd_nn_mark(r);
    float *datt = rhd_nn_alloc(r, (size_t)n), *dn = rhd_nn_alloc(r, (size_t)n);
    rhd_nn_conv_backward(r, &a->proj, datt, dy, N, 1, T);
    if (a->cfg.kind == RHD_NN_ATTN_JOINT) joint_core_bwd(r, a, dn, denc, datt, N, T, Te);
    else cross_core_bwd(r, a, dn, denc, datt, N, T, Te);
    rhd_nn_groupnorm_backward(r, &a->norm, dx, dn, N, T, 0);
    if (dx) rhd_nn_add_forward(r, dx, dx, dy, n);
    rhd_nn_release(r, at);
}

void rhd_nn_attn_forward(rhd_nn *r, const rhd_nn_attn *a, float *y, const float *x, const float *enc, int N, int T,
                         int Te) {
    RHD_ASSERT(Te >= 0 && (Te == 0 || a->ekv.w >= 0) && (a->cfg.kind == RHD_NN_ATTN_JOINT || Te > 0));
    if (!(a->cfg.checkpoint && rhd_nn_saving(r))) {
        attn_fwd(r, a, y, x, enc, N, T, Te);
        return;
    }
    rhd_nn_push(r, RHD_NN_TAG_ATTN, x, 0);
    rhd_nn_push(r, RHD_NN_TAG_ATTN, enc, 0);
    r->nosave++;
    attn_fwd(r, a, y, x, enc, N, T, Te);
    r->nosave--;
}

void rhd_nn_attn_backward(rhd_nn *r, const rhd_nn_attn *a, float *dx, float *denc, const float *dy, int N, int T,
                          int Te) {
    if (!a->cfg.checkpoint) {
        attn_bwd(r, a, dx, denc, dy, N, T, Te);
        return;
    }
    const float *enc = rhd_nn_pop(r, RHD_NN_TAG_ATTN, NULL), *x = rhd_nn_pop(r, RHD_NN_TAG_ATTN, NULL);
    size_t at = rhd_nn_mark(r);
    float *y = rhd_nn_alloc(r, (size_t)N * a->cfg.C * T);
    attn_fwd(r, a, y, x, enc, N, T, Te);
    attn_bwd(r, a, dx, denc, dy, N, T, Te);
    rhd_nn_release(r, at);
}
