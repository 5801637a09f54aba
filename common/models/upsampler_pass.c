/* common/models/upsampler_pass.c: the TriplaneUpsampler's forward and backward over an rhd_nn run
 * context (the skip structure of spec diffusion.md §5.3; see upsampler.md). Every buffer of the
 * forward stays in the run's arena until the next pass (the blocks save pointers to their inputs). */
#include <string.h>
#include "common/models/upsampler.h"
#include "kernels/attention.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/resample.h"

static float *zalloc(rhd_nn *r, size_t n) {
    float *p = rhd_nn_alloc(r, n);
    if (!r->dry) rhd_buf_zero(r->ctx, p, sizeof(float) * n);
    return p;
}

/* y (N, ca + cb, HW) = [a (N, ca, HW), b (N, cb, HW)] along the channels. */
static void concat(rhd_nn *r, float *y, const float *a, int ca, const float *b, int cb, int N, int64_t HW) {
    if (r->dry) return;
    rhd_copy_cols(r->ctx, y, (int64_t)(ca + cb) * HW, a, (int64_t)ca * HW, (int64_t)ca * HW, N);
    rhd_copy_cols(r->ctx, y + (int64_t)ca * HW, (int64_t)(ca + cb) * HW, b, (int64_t)cb * HW, (int64_t)cb * HW, N);
}

/* The adjoint: da (N,ca,HW) written, db (N,cb,HW) ACCUMULATED (a temporary, then an add). */
static void concat_back(rhd_nn *r, float *da, float *db, const float *dy, int ca, int cb, int N, int64_t HW) {
    const size_t mk = rhd_nn_mark(r);
    float *t = rhd_nn_alloc(r, (size_t)N * cb * HW);
    if (!r->dry) {
        rhd_copy_cols(r->ctx, da, (int64_t)ca * HW, dy, (int64_t)(ca + cb) * HW, (int64_t)ca * HW, N);
        rhd_copy_cols(r->ctx, t, (int64_t)cb * HW, dy + (int64_t)ca * HW, (int64_t)(ca + cb) * HW, (int64_t)cb * HW, N);
        rhd_add_forward(r->ctx, db, db, t, (int64_t)N * cb * HW);
    }
    rhd_nn_release(r, mk);
}

/* The low-res condition per sample and plane: bicubic (align_corners False) r x r -> R x R. With
 * back = 0: lr (N,C,R,3R) from low (N,C,r,3r); with back = 1: dlow written from dlr. */
static void resize_planes(rhd_nn *r, float *lr, float *low, int N, int C, int R, int rr, int back) {
    const size_t mk = rhd_nn_mark(r);
    float *a = rhd_nn_alloc(r, (size_t)N * C * rr * rr), *b = rhd_nn_alloc(r, (size_t)N * C * R * R);
    if (!r->dry) {
        const int64_t rows_in = (int64_t)N * C * rr, rows_out = (int64_t)N * C * R;
        for (int p = 0; p < 3; p++) {
            if (!back) {
                rhd_copy_cols(r->ctx, a, rr, low + (int64_t)p * rr, 3L * rr, rr, rows_in);
                if (rr == R) rhd_copy_cols(r->ctx, lr + (int64_t)p * R, 3L * R, a, R, R, rows_out);
                else {
                    rhd_resize_forward(r->ctx, b, a, N, C, rr, rr, R, R, RHD_RESIZE_BICUBIC, 0);
                    rhd_copy_cols(r->ctx, lr + (int64_t)p * R, 3L * R, b, R, R, rows_out);
                }
            } else {
                rhd_copy_cols(r->ctx, b, R, lr + (int64_t)p * R, 3L * R, R, rows_out);
                if (rr == R) rhd_copy_cols(r->ctx, low + (int64_t)p * rr, 3L * rr, b, rr, rr, rows_in);
                else {
                    rhd_resize_backward(r->ctx, a, b, N, C, rr, rr, R, R, RHD_RESIZE_BICUBIC, 0);
                    rhd_copy_cols(r->ctx, low + (int64_t)p * rr, 3L * rr, a, rr, rr, rows_in);
                }
            }
        }
    }
    rhd_nn_release(r, mk);
}

/* ---- the global image embedding (§2.5 with the upsampler's widths, §5.3 step 3) ---------------- */

static void global_forward(rhd_nn *r, const rhd_upsampler *m, rhd_ups_io *io) {
    const rhd_ups_config *c = &m->cfg;
    const int N = io->N, E = c->embed_dim, S = c->latent_size;
    io->z = rhd_nn_alloc(r, (size_t)N * c->latent_ch * S * S);
    io->tok = rhd_nn_alloc(r, (size_t)N * E), io->ln0 = rhd_nn_alloc(r, (size_t)N * E);
    io->pooled = rhd_nn_alloc(r, (size_t)N * E);
    io->g1 = rhd_nn_alloc(r, (size_t)N * c->temb_dim), io->g = rhd_nn_alloc(r, (size_t)N * c->temb_dim);
    io->enc = rhd_nn_alloc(r, (size_t)N * m->enc_proj.out);
    if (!r->dry) rhd_scale(r->ctx, io->z, io->ref, c->latent_scale, (int64_t)N * c->latent_ch * S * S);
    rhd_nn_conv_forward(r, &m->patch, io->tok, io->z, N, S, S); /* (N,E,1,1): one token */
    rhd_nn_layernorm_forward(r, &m->ln0, io->ln0, io->tok, N);
    if (!r->dry)
        rhd_attention_pool_forward(r->ctx, io->pooled, io->ln0, rhd_nn_w(r, m->pool_pos), rhd_nn_w(r, m->pool_w[0]),
                                   rhd_nn_w(r, m->pool_b[0]), rhd_nn_w(r, m->pool_w[1]), rhd_nn_w(r, m->pool_b[1]),
                                   rhd_nn_w(r, m->pool_w[2]), rhd_nn_w(r, m->pool_b[2]), N, 1, E, c->pool_heads);
    rhd_nn_linear_forward(r, &m->pool_lin, io->g1, io->pooled, N);
    rhd_nn_layernorm_forward(r, &m->ln3, io->g, io->g1, N);
    rhd_nn_add_forward(r, io->emb, io->emb, io->g, (int64_t)N * c->temb_dim);
    rhd_nn_linear_forward(r, &m->enc_proj, io->enc, io->tok, N); /* cross-attention token, before the LN */
}

/* demb: the gradient of emb + g (read); denc: of the token. */
static void global_backward(rhd_nn *r, const rhd_upsampler *m, rhd_ups_io *io, const float *demb, const float *denc) {
    const rhd_ups_config *c = &m->cfg;
    const int N = io->N, E = c->embed_dim, S = c->latent_size;
    const size_t mk = rhd_nn_mark(r);
    float *dtok = rhd_nn_alloc(r, (size_t)N * E), *dtok2 = rhd_nn_alloc(r, (size_t)N * E);
    float *dpool = rhd_nn_alloc(r, (size_t)N * E), *dln0 = rhd_nn_alloc(r, (size_t)N * E);
    float *dg1 = rhd_nn_alloc(r, (size_t)N * c->temb_dim);
    rhd_nn_linear_backward(r, &m->enc_proj, dtok, denc, N);
    rhd_nn_layernorm_backward(r, &m->ln3, dg1, demb, N);
    rhd_nn_linear_backward(r, &m->pool_lin, dpool, dg1, N);
    if (!r->dry) {
        rhd_attention_pool_backward(r->ctx, dln0, rhd_nn_g(r, m->pool_pos), rhd_nn_g(r, m->pool_w[0]),
                                    rhd_nn_g(r, m->pool_b[0]), rhd_nn_g(r, m->pool_w[1]), rhd_nn_g(r, m->pool_b[1]),
                                    rhd_nn_g(r, m->pool_w[2]), rhd_nn_g(r, m->pool_b[2]), dpool, io->ln0,
                                    rhd_nn_w(r, m->pool_pos), rhd_nn_w(r, m->pool_w[0]), rhd_nn_w(r, m->pool_b[0]),
                                    rhd_nn_w(r, m->pool_w[1]), rhd_nn_w(r, m->pool_b[1]), rhd_nn_w(r, m->pool_w[2]),
                                    rhd_nn_w(r, m->pool_b[2]), N, 1, E, c->pool_heads);
    }
    rhd_nn_layernorm_backward(r, &m->ln0, dtok2, dln0, N);
    rhd_nn_add_forward(r, dtok, dtok, dtok2, (int64_t)N * E);
    rhd_nn_conv_backward(r, &m->patch, NULL, dtok, N, S, S);
    rhd_nn_release(r, mk);
}

/* ---- the cross-attention with its one encoder token (§5.2, §7.7, §10.2) -----------------------
 * The softmax over a single key is identically 1, so the block adds the same vector to every
 * position: y = x + proj_out(v), v the value half of encoder_kv(norm_encoder(enc)). Computed as that
 * per-sample bias on the block's own tensors (norm and qkv are registered, loaded and saved but not
 * used; the key rows of encoder_kv get an exactly zero gradient, as in the original). The buffers
 * stay in the arena until the backward. */
static void cross_forward(rhd_nn *r, const rhd_nn_attn *a, float *y, const float *x, const float *enc, int N,
                          int64_t T) {
    const int C = a->cfg.C, d = C / a->cfg.heads;
    float *e1 = rhd_nn_alloc(r, (size_t)N * C), *kv = rhd_nn_alloc(r, (size_t)N * 2 * C);
    float *v = rhd_nn_alloc(r, (size_t)N * C), *o = rhd_nn_alloc(r, (size_t)N * C);
    rhd_nn_groupnorm_forward(r, &a->norm_enc, e1, enc, N, 1, 0);
    rhd_nn_conv_forward(r, &a->ekv, kv, e1, N, 1, 1);
    if (!r->dry)
        for (int h = 0; h < a->cfg.heads; h++)
            rhd_copy_cols(r->ctx, v + (int64_t)h * d, C, kv + (int64_t)h * 2 * d + d, 2L * C, d, N);
    rhd_nn_conv_forward(r, &a->proj, o, v, N, 1, 1);
    if (!r->dry) rhd_modulate_forward(r->ctx, y, x, NULL, o, C, N, C, T);
}

/* dx written; denc accumulated. */
static void cross_backward(rhd_nn *r, const rhd_nn_attn *a, float *dx, float *denc, const float *dy, int N, int64_t T) {
    const int C = a->cfg.C, d = C / a->cfg.heads;
    const size_t mk = rhd_nn_mark(r);
    float *dout = rhd_nn_alloc(r, (size_t)N * C), *dv = rhd_nn_alloc(r, (size_t)N * C);
    float *dkv = zalloc(r, (size_t)N * 2 * C), *de1 = rhd_nn_alloc(r, (size_t)N * C);
    float *de = rhd_nn_alloc(r, (size_t)N * C);
    if (!r->dry) rhd_modulate_backward(r->ctx, dx, NULL, dout, dy, dy, NULL, C, N, C, T);
    rhd_nn_conv_backward(r, &a->proj, dv, dout, N, 1, 1);
    if (!r->dry)
        for (int h = 0; h < a->cfg.heads; h++)
            rhd_copy_cols(r->ctx, dkv + (int64_t)h * 2 * d + d, 2L * C, dv + (int64_t)h * d, C, d, N);
    rhd_nn_conv_backward(r, &a->ekv, de1, dkv, N, 1, 1);
    rhd_nn_groupnorm_backward(r, &a->norm_enc, de, de1, N, 1, 0);
    rhd_nn_add_forward(r, denc, denc, de, (int64_t)N * C);
    rhd_nn_release(r, mk);
}

/* ---- forward --------------------------------------------------------------------------------- */

static float *res_fwd(rhd_nn *r, const rhd_nn_resblock *b, const float *x, const float *emb, int N, int H) {
    float *y = rhd_nn_alloc(r, (size_t)N * b->cfg.cout * H * 3 * H);
    rhd_nn_resblock_forward(r, b, y, x, emb, N, H, 3 * H);
    return y;
}

static float *cat_fwd(rhd_nn *r, const float *a, int ca, const float *b, int cb, int N, int H) {
    float *y = rhd_nn_alloc(r, (size_t)N * (ca + cb) * H * 3 * H);
    concat(r, y, a, ca, b, cb, N, (int64_t)H * 3 * H);
    return y;
}

static void push(rhd_ups_io *io, float *h, int ch, int H) {
    RHD_ASSERT(io->nskip < RHD_UPS_MAX_SKIPS);
    io->skip[io->nskip] = h, io->skip_ch[io->nskip] = ch, io->skip_h[io->nskip++] = H;
}

static void ups_forward(rhd_nn *r, const rhd_nn_model *mm, void *iop) {
    const rhd_upsampler *m = (const rhd_upsampler *)mm;
    const rhd_ups_config *c = &m->cfg;
    rhd_ups_io *io = iop;
    const int N = io->N, F = c->n_feats, L = c->nlevels, nb = c->num_res_blocks;
    int H = io->R;
    io->nskip = 0;
    io->lr = rhd_nn_alloc(r, (size_t)N * c->cond_ch * H * 3 * H);
    resize_planes(r, io->lr, (float *)io->low, N, c->cond_ch, H, io->r, 0);
    io->emb = rhd_nn_alloc(r, (size_t)N * c->temb_dim);
    rhd_nn_temb_forward(r, &m->temb, io->emb, io->t, N);
    global_forward(r, m, io);
    const float *emb = io->emb, *enc = io->enc;
    io->h0 = rhd_nn_alloc(r, (size_t)N * F * H * 3 * H);
    rhd_nn_conv_forward(r, &m->conv_in, io->h0, io->x, N, H, 3 * H);
    io->s = res_fwd(r, &m->in_res, io->h0, emb, N, H);
    io->X = cat_fwd(r, io->s, F, io->lr, c->cond_ch, N, H);
    float *h = io->X;
    int ch = F + c->cond_ch;
    push(io, h, ch, H);
    for (int i = 0; i < L; i++) {
        for (int j = 0; j < nb; j++) {
            h = res_fwd(r, &m->down[i][j], h, emb, N, H), ch = m->down[i][j].cfg.cout;
            push(io, h, ch, H);
        }
        if (i < L - 1) {
            float *y = rhd_nn_alloc(r, (size_t)N * ch * (H / 2) * 3 * (H / 2));
            rhd_nn_conv_forward(r, &m->down_conv[i], y, h, N, H, 3 * H);
            h = y, H /= 2;
            push(io, h, ch, H);
        }
    }
    const int T = H * 3 * H;
    for (int g = 0; g < c->n_resblocks / 2; g++) {
        h = res_fwd(r, &m->body_res[g][0], h, emb, N, H);
        float *y = rhd_nn_alloc(r, (size_t)N * ch * T);
        cross_forward(r, &m->body_attn[g], y, h, enc, N, T);
        h = res_fwd(r, &m->body_res[g][1], y, emb, N, H);
    }
    int k = io->nskip;
    for (int i = L - 1; i >= 0; i--) {
        for (int j = 0; j <= nb; j++) {
            k--;
            float *cat = cat_fwd(r, h, ch, io->skip[k], io->skip_ch[k], N, H);
            h = res_fwd(r, &m->up[i][j], cat, emb, N, H), ch = m->up[i][j].cfg.cout;
        }
        if (i > 0) {
            float *u = rhd_nn_alloc(r, (size_t)N * ch * (2 * H) * 3 * (2 * H));
            rhd_nn_resample_forward(r, RHD_NN_BILINEAR2, u, h, N, ch, H, 3 * H);
            H *= 2;
            h = rhd_nn_alloc(r, (size_t)N * ch * H * 3 * H);
            rhd_nn_conv_forward(r, &m->up_conv[i], h, u, N, H, 3 * H);
        }
    }
    RHD_ASSERT(k == 0 && H == io->R);
    float *cat = cat_fwd(r, h, ch, io->X, F + c->cond_ch, N, H);
    h = res_fwd(r, &m->tail[0], cat, emb, N, H);
    h = res_fwd(r, &m->tail[1], h, emb, N, H);
    cat = cat_fwd(r, h, c->out_ch, io->lr, c->cond_ch, N, H);
    io->y = res_fwd(r, &m->out, cat, NULL, N, H);
}

/* ---- backward -------------------------------------------------------------------------------- */

/* dx of a ResnetBlock (fresh from the arena) from dy. */
static float *res_bwd(rhd_nn *r, const rhd_nn_resblock *b, float *demb, const float *dy, int N, int H) {
    float *dx = rhd_nn_alloc(r, (size_t)N * b->cfg.cin * H * 3 * H);
    rhd_nn_resblock_backward(r, b, dx, b->emb.w >= 0 ? demb : NULL, dy, N, H, 3 * H);
    return dx;
}

/* Split a concatenation's gradient: the first part returned (fresh), the second added to *acc. */
static float *cat_bwd(rhd_nn *r, const float *dy, int ca, float *acc, int cb, int N, int H) {
    float *da = rhd_nn_alloc(r, (size_t)N * ca * H * 3 * H);
    concat_back(r, da, acc, dy, ca, cb, N, (int64_t)H * 3 * H);
    return da;
}

static void ups_backward(rhd_nn *r, const rhd_nn_model *mm, void *iop) {
    const rhd_upsampler *m = (const rhd_upsampler *)mm;
    const rhd_ups_config *c = &m->cfg;
    rhd_ups_io *io = iop;
    const int N = io->N, F = c->n_feats, L = c->nlevels, nb = c->num_res_blocks, R = io->R;
    const int cx = F + c->cond_ch;
    io->dx = rhd_nn_alloc(r, (size_t)N * c->in_ch * R * 3 * R);
    io->dlow = rhd_nn_alloc(r, (size_t)N * c->cond_ch * io->r * 3 * io->r);
    float *demb = zalloc(r, (size_t)N * c->temb_dim), *denc = zalloc(r, (size_t)N * m->enc_proj.out);
    float *dlr = zalloc(r, (size_t)N * c->cond_ch * R * 3 * R);
    float *dskip[RHD_UPS_MAX_SKIPS];
    for (int k = 0; k < io->nskip; k++)
        dskip[k] = zalloc(r, (size_t)N * io->skip_ch[k] * io->skip_h[k] * 3 * io->skip_h[k]);
    /* out, tail */
    int H = R;
    float *d = res_bwd(r, &m->out, NULL, io->dy, N, H);
    d = cat_bwd(r, d, c->out_ch, dlr, c->cond_ch, N, H);
    d = res_bwd(r, &m->tail[1], demb, d, N, H);
    d = res_bwd(r, &m->tail[0], demb, d, N, H);
    int ch = m->tail[0].cfg.cin - cx;
    d = cat_bwd(r, d, ch, dskip[0], cx, N, H);
    /* decoder, finest level first (the reverse of the forward); its pops in reverse: 0, 1, ... */
    int k = 0;
    for (int i = 0; i < L; i++) {
        if (i > 0) {
            float *du = rhd_nn_alloc(r, (size_t)N * ch * H * 3 * H);
            rhd_nn_conv_backward(r, &m->up_conv[i], du, d, N, H, 3 * H);
            H /= 2;
            d = rhd_nn_alloc(r, (size_t)N * ch * H * 3 * H);
            rhd_nn_resample_backward(r, RHD_NN_BILINEAR2, d, du, N, ch, H, 3 * H);
        }
        for (int j = nb; j >= 0; j--, k++) {
            d = res_bwd(r, &m->up[i][j], demb, d, N, H);
            ch = m->up[i][j].cfg.cin - io->skip_ch[k];
            RHD_ASSERT(io->skip_h[k] == H);
            d = cat_bwd(r, d, ch, dskip[k], io->skip_ch[k], N, H);
        }
    }
    RHD_ASSERT(k == io->nskip);
    /* body */
    const int T = H * 3 * H;
    for (int g = c->n_resblocks / 2 - 1; g >= 0; g--) {
        d = res_bwd(r, &m->body_res[g][1], demb, d, N, H);
        float *dy = rhd_nn_alloc(r, (size_t)N * ch * T);
        cross_backward(r, &m->body_attn[g], dy, denc, d, N, T);
        d = res_bwd(r, &m->body_res[g][0], demb, dy, N, H);
    }
    /* encoder, last pushed first: the gradient of each pushed tensor is its own plus the skip's */
    k = io->nskip - 1;
    for (int i = L - 1; i >= 0; i--) {
        if (i < L - 1) {
            rhd_nn_add_forward(r, d, d, dskip[k--], (int64_t)N * ch * H * 3 * H);
            float *dd = rhd_nn_alloc(r, (size_t)N * ch * (2 * H) * 3 * (2 * H));
            H *= 2;
            rhd_nn_conv_backward(r, &m->down_conv[i], dd, d, N, H, 3 * H);
            d = dd;
        }
        for (int j = nb - 1; j >= 0; j--) {
            rhd_nn_add_forward(r, d, d, dskip[k--], (int64_t)N * ch * H * 3 * H);
            d = res_bwd(r, &m->down[i][j], demb, d, N, H);
            ch = m->down[i][j].cfg.cin;
        }
    }
    RHD_ASSERT(k == 0 && H == R && ch == cx);
    rhd_nn_add_forward(r, dskip[0], dskip[0], d, (int64_t)N * cx * H * 3 * H);
    /* X = [s, lr] */
    d = cat_bwd(r, dskip[0], F, dlr, c->cond_ch, N, H);
    d = res_bwd(r, &m->in_res, demb, d, N, H);
    rhd_nn_conv_backward(r, &m->conv_in, io->dx, d, N, H, 3 * H);
    global_backward(r, m, io, demb, denc);
    rhd_nn_temb_backward(r, &m->temb, demb, N);
    resize_planes(r, dlr, io->dlow, N, c->cond_ch, R, io->r, 1);
}

const rhd_nn_model_ops rhd_upsampler_ops = {"upsampler", sizeof(rhd_upsampler), rhd_ups_build, ups_forward,
                                            ups_backward};
