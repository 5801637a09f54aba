/* common/models/unet_run.c: the base UNet's forward and backward over the blocks (spec §2.5-§2.7),
 * the conditioning sample (§1.4), input checks and the activation-memory measurement. */
#include "common/models/unet.h"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "common/rng.h"
#include "kernels/attention.h"
#include "kernels/elementwise.h"

enum { TAG_POOL = RHD_NN_TAG_USER + 11 };

static int64_t fsz(int N, int C, int H) { return (int64_t)N * C * H * 3 * H; }

static int tokens_of(const rhd_unet_config *c, int i) {
    int o = c->feat_size[i] / c->feat_kernel[i];
    return o * o;
}

/* Height after a layer. */
static int layer_out_h(const rhd_unet *m, const rhd_unet_layer *L, int H) {
    if (L->kind != RHD_UNET_L_RES) return H;
    int ud = m->res[L->index].cfg.updown;
    return ud == RHD_NN_DOWN ? H / 2 : ud == RHD_NN_UP ? 2 * H : H;
}

static int layer_out_c(const rhd_unet *m, const rhd_unet_layer *L) {
    return L->kind == RHD_UNET_L_RES ? m->res[L->index].cfg.cout : m->attn[L->index].cfg.C;
}

static float *block_forward(rhd_nn *r, const rhd_unet *m, const rhd_unet_block *b, const float *x, rhd_unet_io *io) {
    const int N = io->N;
    int H = b->H;
    float *y = NULL;
    for (int k = 0; k < b->nlayer; k++) {
        const rhd_unet_layer *L = &b->layer[k];
        int Ho = layer_out_h(m, L, H);
        y = rhd_nn_alloc(r, (size_t)fsz(N, layer_out_c(m, L), Ho));
        if (L->kind == RHD_UNET_L_RES) {
            rhd_nn_resblock_forward(r, &m->res[L->index], y, x, io->emb, N, H, 3 * H);
        } else {
            int f = b->feat, Te = f >= 0 ? tokens_of(&m->cfg, f) : 0;
            rhd_nn_attn_forward(r, &m->attn[L->index], y, x, f >= 0 ? io->tok[f] : NULL, N, H * 3 * H, Te);
        }
        x = y, H = Ho;
    }
    return y;
}

/* The global embedding (§2.5) added to io->emb. */
static void global_forward(rhd_nn *r, const rhd_unet *m, rhd_unet_io *io) {
    const rhd_unet_config *c = &m->cfg;
    const int N = io->N, W = c->pool_width, ls = c->latent_size, Lt = (ls / c->patch) * (ls / c->patch);
    const int64_t nz = (int64_t)N * c->latent_ch * ls * ls;
    float *z = rhd_nn_alloc(r, (size_t)nz), *pe = rhd_nn_alloc(r, (size_t)N * W * Lt);
    float *tk = rhd_nn_alloc(r, (size_t)N * W * Lt), *ln = rhd_nn_alloc(r, (size_t)N * W * Lt);
    float *pooled = rhd_nn_alloc(r, (size_t)N * W), *lin = rhd_nn_alloc(r, (size_t)N * m->emb);
    float *g = rhd_nn_alloc(r, (size_t)N * m->emb);
    if (!r->dry) rhd_scale(r->ctx, z, io->ref, c->latent_scale, nz);
    rhd_nn_conv_forward(r, &m->patch, pe, z, N, ls, ls);
    if (!r->dry) rhd_transpose_forward(r->ctx, tk, pe, N, W, Lt); /* (N,W,Lt) -> (N,Lt,W) */
    rhd_nn_layernorm_forward(r, &m->ln_tok, ln, tk, (int64_t)N * Lt);
    if (rhd_nn_saving(r)) rhd_nn_push(r, TAG_POOL, ln, 0);
    if (!r->dry)
        rhd_attention_pool_forward(r->ctx, pooled, ln, rhd_nn_w(r, m->pool_pos), rhd_nn_w(r, m->pool_q[0]),
                                   rhd_nn_w(r, m->pool_q[1]), rhd_nn_w(r, m->pool_k[0]), rhd_nn_w(r, m->pool_k[1]),
                                   rhd_nn_w(r, m->pool_v[0]), rhd_nn_w(r, m->pool_v[1]), N, Lt, W, c->pool_heads);
    rhd_nn_linear_forward(r, &m->pool_lin, lin, pooled, N);
    rhd_nn_layernorm_forward(r, &m->ln_out, g, lin, N);
    rhd_nn_add_forward(r, io->emb, io->emb, g, (int64_t)N * m->emb);
}

void rhd_unet__forward(rhd_nn *r, const rhd_nn_model *mm, void *iop) {
    const rhd_unet *m = (const rhd_unet *)mm;
    const rhd_unet_config *c = &m->cfg;
    rhd_unet_io *io = iop;
    const int N = io->N, R = c->image_size;
    io->emb = rhd_nn_alloc(r, (size_t)N * m->emb);
    rhd_nn_temb_forward(r, &m->temb, io->emb, io->t, N);
    global_forward(r, m, io);
    for (int i = 0; i < RHD_UNET_FEATS; i++) {
        const int S = c->feat_size[i];
        float *fn = rhd_nn_alloc(r, (size_t)N * c->feat_ch[i] * S * S);
        io->tok[i] = rhd_nn_alloc(r, (size_t)N * c->xf_width * tokens_of(c, i));
        rhd_nn_groupnorm_forward(r, &m->feat_norm[i], fn, io->F[i], N, (int64_t)S * S, 0);
        rhd_nn_conv_forward(r, &m->feat_proj[i], io->tok[i], fn, N, S, S);
    }
    io->h0 = io->hs[0] = rhd_nn_alloc(r, (size_t)fsz(N, c->model_channels, R));
    rhd_nn_conv_forward(r, &m->conv_in, io->h0, io->x, N, R, 3 * R);
    const float *cur = io->h0;
    int C = c->model_channels;
    for (int bi = 0; bi < m->nin; bi++) cur = io->hs[bi + 1] = block_forward(r, m, &m->blk[bi], cur, io);
    cur = block_forward(r, m, &m->blk[m->nin], cur, io);
    C = m->blk[m->nin].cout;
    for (int j = 0; j < m->nout; j++) {
        const rhd_unet_block *b = &m->blk[m->nin + 1 + j];
        const int64_t hw = (int64_t)b->H * 3 * b->H;
        float *cat = io->cat[j] = rhd_nn_alloc(r, (size_t)fsz(N, b->cin, b->H));
        if (!r->dry) {
            rhd_copy_cols(r->ctx, cat, b->cin * hw, cur, C * hw, C * hw, N);
            rhd_copy_cols(r->ctx, cat + C * hw, b->cin * hw, io->hs[m->nin - j], b->skip_ch * hw, b->skip_ch * hw, N);
        }
        cur = block_forward(r, m, b, cat, io);
        C = b->cout;
    }
    float *a = rhd_nn_alloc(r, (size_t)fsz(N, C, R));
    io->y = rhd_nn_alloc(r, (size_t)fsz(N, c->out_channels, R));
    rhd_nn_groupnorm_forward(r, &m->norm_out, a, cur, N, (int64_t)R * 3 * R, 1);
    rhd_nn_conv_forward(r, &m->conv_out, io->y, a, N, R, 3 * R);
}

/* dx (the block's input gradient, =) from dy; demb and dtok accumulated. */
static void block_backward(rhd_nn *r, const rhd_unet *m, const rhd_unet_block *b, float *dx, const float *dy,
                           float *demb, float *const *dtok, int N) {
    int Hs[4];
    Hs[0] = b->H;
    for (int k = 0; k < b->nlayer; k++) Hs[k + 1] = layer_out_h(m, &b->layer[k], Hs[k]);
    size_t mark = rhd_nn_mark(r);
    for (int k = b->nlayer - 1; k >= 0; k--) {
        const rhd_unet_layer *L = &b->layer[k];
        const int H = Hs[k];
        int cin = L->kind == RHD_UNET_L_RES ? m->res[L->index].cfg.cin : m->attn[L->index].cfg.C;
        float *d = k == 0 ? dx : rhd_nn_alloc(r, (size_t)fsz(N, cin, H));
        if (L->kind == RHD_UNET_L_RES) {
            rhd_nn_resblock_backward(r, &m->res[L->index], d, demb, dy, N, H, 3 * H);
        } else {
            int f = b->feat, Te = f >= 0 ? tokens_of(&m->cfg, f) : 0;
            rhd_nn_attn_backward(r, &m->attn[L->index], d, f >= 0 ? dtok[f] : NULL, dy, N, H * 3 * H, Te);
        }
        dy = d;
    }
    rhd_nn_release(r, mark);
}

static void global_backward(rhd_nn *r, const rhd_unet *m, const float *demb, int N) {
    const rhd_unet_config *c = &m->cfg;
    const int W = c->pool_width, ls = c->latent_size, Lt = (ls / c->patch) * (ls / c->patch);
    size_t mark = rhd_nn_mark(r);
    float *dlin = rhd_nn_alloc(r, (size_t)N * m->emb), *dpool = rhd_nn_alloc(r, (size_t)N * W);
    float *dln = rhd_nn_alloc(r, (size_t)N * W * Lt), *dtk = rhd_nn_alloc(r, (size_t)N * W * Lt);
    float *dpe = rhd_nn_alloc(r, (size_t)N * W * Lt);
    rhd_nn_layernorm_backward(r, &m->ln_out, dlin, demb, N);
    rhd_nn_linear_backward(r, &m->pool_lin, dpool, dlin, N);
    const float *ln = rhd_nn_pop(r, TAG_POOL, NULL);
    if (!r->dry)
        rhd_attention_pool_backward(r->ctx, dln, rhd_nn_g(r, m->pool_pos), rhd_nn_g(r, m->pool_q[0]),
                                    rhd_nn_g(r, m->pool_q[1]), rhd_nn_g(r, m->pool_k[0]), rhd_nn_g(r, m->pool_k[1]),
                                    rhd_nn_g(r, m->pool_v[0]), rhd_nn_g(r, m->pool_v[1]), dpool, ln,
                                    rhd_nn_w(r, m->pool_pos), rhd_nn_w(r, m->pool_q[0]), rhd_nn_w(r, m->pool_q[1]),
                                    rhd_nn_w(r, m->pool_k[0]), rhd_nn_w(r, m->pool_k[1]), rhd_nn_w(r, m->pool_v[0]),
                                    rhd_nn_w(r, m->pool_v[1]), N, Lt, W, c->pool_heads);
    rhd_nn_layernorm_backward(r, &m->ln_tok, dtk, dln, (int64_t)N * Lt);
    if (!r->dry) rhd_transpose_backward(r->ctx, dpe, dtk, N, W, Lt);
    rhd_nn_conv_backward(r, &m->patch, NULL, dpe, N, ls, ls);
    rhd_nn_release(r, mark);
}

static void zero(rhd_nn *r, float *p, int64_t n) {
    if (!r->dry) rhd_buf_zero(r->ctx, p, sizeof(float) * (size_t)n);
}

void rhd_unet__backward(rhd_nn *r, const rhd_nn_model *mm, void *iop) {
    const rhd_unet *m = (const rhd_unet *)mm;
    const rhd_unet_config *c = &m->cfg;
    rhd_unet_io *io = iop;
    const int N = io->N, R = c->image_size;
    io->dx = rhd_nn_alloc(r, (size_t)fsz(N, c->in_channels, R));
    float *demb = rhd_nn_alloc(r, (size_t)N * m->emb), *dtok[RHD_UNET_FEATS], *gs[RHD_UNET_MAX_BLOCKS];
    zero(r, demb, (int64_t)N * m->emb);
    for (int i = 0; i < RHD_UNET_FEATS; i++) {
        int64_t n = (int64_t)N * c->xf_width * tokens_of(c, i);
        zero(r, dtok[i] = rhd_nn_alloc(r, (size_t)n), n);
    }
    gs[0] = rhd_nn_alloc(r, (size_t)fsz(N, c->model_channels, R));
    for (int k = 0; k < m->nin; k++) gs[k + 1] = rhd_nn_alloc(r, (size_t)fsz(N, m->blk[k].cout, m->blk[k].Hout));
    /* two gradient buffers of the largest map (ping-pong) */
    int64_t big = fsz(N, c->out_channels, R);
    for (int bi = 0; bi < m->nin + 1 + m->nout; bi++) {
        const rhd_unet_block *b = &m->blk[bi];
        big = fsz(N, b->cin, b->H) > big ? fsz(N, b->cin, b->H) : big;
        big = fsz(N, b->cout, b->Hout) > big ? fsz(N, b->cout, b->Hout) : big;
    }
    float *pa = rhd_nn_alloc(r, (size_t)big), *pb = rhd_nn_alloc(r, (size_t)big), *t;
    const int Cl = m->blk[m->nin + m->nout].cout;
    rhd_nn_conv_backward(r, &m->conv_out, pa, io->dy, N, R, 3 * R);
    rhd_nn_groupnorm_backward(r, &m->norm_out, pb, pa, N, (int64_t)R * 3 * R, 1);
    (void)Cl;
    for (int j = m->nout - 1; j >= 0; j--) { /* pb: dy of output block j */
        const rhd_unet_block *b = &m->blk[m->nin + 1 + j];
        const int64_t hw = (int64_t)b->H * 3 * b->H, C = b->cin - b->skip_ch;
        block_backward(r, m, b, pa, pb, demb, dtok, N); /* pa: d(cat) */
        if (!r->dry) {
            rhd_copy_cols(r->ctx, pb, C * hw, pa, b->cin * hw, C * hw, N);
            rhd_copy_cols(r->ctx, gs[m->nin - j], b->skip_ch * hw, pa + C * hw, b->cin * hw, b->skip_ch * hw, N);
        }
    }
    block_backward(r, m, &m->blk[m->nin], pa, pb, demb, dtok, N);
    t = pa, pa = pb, pb = t; /* pb: dy of the last input block */
    for (int k = m->nin - 1; k >= 0; k--) {
        const rhd_unet_block *b = &m->blk[k];
        rhd_nn_add_forward(r, pb, pb, gs[k + 1], fsz(N, b->cout, b->Hout));
        block_backward(r, m, b, pa, pb, demb, dtok, N);
        t = pa, pa = pb, pb = t;
    }
    rhd_nn_add_forward(r, pb, pb, gs[0], fsz(N, c->model_channels, R));
    rhd_nn_conv_backward(r, &m->conv_in, io->dx, pb, N, R, 3 * R);
    for (int i = RHD_UNET_FEATS - 1; i >= 0; i--) {
        const int S = c->feat_size[i];
        size_t mark = rhd_nn_mark(r);
        float *dfn = rhd_nn_alloc(r, (size_t)N * c->feat_ch[i] * S * S);
        rhd_nn_conv_backward(r, &m->feat_proj[i], dfn, dtok[i], N, S, S);
        rhd_nn_groupnorm_backward(r, &m->feat_norm[i], NULL, dfn, N, (int64_t)S * S, 0);
        rhd_nn_release(r, mark);
    }
    global_backward(r, m, demb, N);
    rhd_nn_temb_backward(r, &m->temb, demb, N);
}

void rhd_unet_forward(rhd_unet *m, rhd_unet_io *io, int train) { rhd_nn_model_forward(&m->base, io, train); }
void rhd_unet_backward(rhd_unet *m, rhd_unet_io *io) { rhd_nn_model_backward(&m->base, io); }

size_t rhd_unet_arena_bytes(rhd_unet *m, int N, int train) {
    rhd_nn *r = &m->base.run;
    rhd_unet_io io = {.N = N};
    int tr = r->train;
    r->train = train, r->dry = 1, r->used = r->peak = 0, r->ntape = 0, r->rng_offset = 0;
    rhd_unet__forward(r, &m->base, &io);
    if (train) rhd_unet__backward(r, &m->base, &io);
    r->dry = 0, r->ntape = 0, r->rng_offset = 0, r->train = tr;
    return r->peak;
}

static int shape_is(const int64_t *got, const int64_t *want, const char *what, rhd_err *e) {
    for (int i = 0; i < 4; i++)
        if (got[i] != want[i])
            return rhd_errf(e, "%s has shape [%lld,%lld,%lld,%lld], expected [%lld,%lld,%lld,%lld]", what,
                            (long long)got[0], (long long)got[1], (long long)got[2], (long long)got[3],
                            (long long)want[0], (long long)want[1], (long long)want[2], (long long)want[3]);
    return 0;
}

int rhd_unet_check_inputs(const rhd_unet_config *c, const int64_t x[4], const int64_t ref[4],
                          const int64_t F[RHD_UNET_FEATS][4], int nfeat, rhd_err *e) {
    const int64_t N = x[0], R = c->image_size;
    int64_t wx[4] = {N, c->in_channels, R, 3 * R};
    if (x[2] * 3 != x[3] || x[2] != R)
        return rhd_errf(e, "triplane x has shape [%lld,%lld,%lld,%lld], expected a rolled-out [N,%d,%d,%d] "
                           "(plane side image_size %d, planes side by side)", (long long)x[0], (long long)x[1],
                        (long long)x[2], (long long)x[3], c->in_channels, c->image_size, 3 * c->image_size, c->image_size);
    if (shape_is(x, wx, "triplane x", e)) return -1;
    int64_t wr[4] = {N, c->latent_ch, c->latent_size, c->latent_size};
    if (shape_is(ref, wr, "conditioning latent ref", e)) return -1;
    if (nfeat != RHD_UNET_FEATS)
        return rhd_errf(e, "%d feature maps given, expected %d (F0, F1, F2)", nfeat, RHD_UNET_FEATS);
    for (int i = 0; i < RHD_UNET_FEATS; i++) {
        int64_t wf[4] = {N, c->feat_ch[i], c->feat_size[i], c->feat_size[i]};
        char what[32];
        snprintf(what, sizeof what, "feature map F%d", i);
        if (shape_is(F[i], wf, what, e)) return -1;
    }
    return 0;
}

void rhd_unet_cond_sample(float *ref, const float *moments, int N, int C, int L, rhd_unet_noise kind, uint64_t seed,
                          uint64_t stream, uint64_t offset) {
    const int64_t per = (int64_t)C * L * L;
    for (int n = 0; n < N; n++)
        for (int64_t i = 0; i < per; i++) {
            const float *mo = moments + (int64_t)n * 2 * per;
            float lv = fminf(fmaxf(mo[per + i], -30.f), 20.f), sd = expf(0.5f * lv);
            uint64_t k = offset + (uint64_t)n * per + (uint64_t)i;
            float u = kind == RHD_UNET_NOISE_UNIFORM ? rhd_rng_uniform(seed, stream, k)
                      : kind == RHD_UNET_NOISE_NORMAL ? rhd_rng_normal(seed, stream, k) : 0.f;
            ref[(int64_t)n * per + i] = mo[i] + sd * u;
        }
}
