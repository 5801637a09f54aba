/* common/models/nn_blocks.c: the composite blocks: Conv3DAware, the ResBlock family and the
 * timestep-embedding MLP (contracts in nn.h; spec diffusion.md §2.3, §2.4, §5.2). */
#include "common/models/nn.h"
#include <stdio.h>
#include <string.h>
#include "kernels/aware3d.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/embed.h"

static void sub(char *buf, size_t n, const char *prefix, const char *name) {
    int k = snprintf(buf, n, "%s%s%s", prefix, *prefix ? "." : "", name);
    RHD_ASSERT(k > 0 && (size_t)k < n);
}

/* ---- Conv3DAware ----------------------------------------------------------------------------- */

void rhd_nn_aware3d_init(rhd_params *p, rhd_nn_aware3d *a, const char *prefix, int C, int Co) {
    a->C = C, a->Co = Co;
    for (int q = 0; q < 3; q++) {
        char name[RHD_PARAM_NAME_MAX], leaf[32];
        snprintf(leaf, sizeof leaf, "out_layers%d", q + 1);
        sub(name, sizeof name, prefix, leaf);
        rhd_nn_conv_init(p, &a->conv[q], name, 3 * C, Co, 3, 1, 1, 1);
    }
}

void rhd_nn_aware3d_forward(rhd_nn *r, const rhd_nn_aware3d *a, float *y, const float *x, int N, int R) {
    size_t at = rhd_nn_mark(r);
    size_t plane_in = (size_t)N * 3 * a->C * R * R, plane_out = (size_t)N * a->Co * R * R;
    float *Y = rhd_nn_alloc(r, 3 * plane_in); /* (3,N,3C,R,R), the convs' inputs */
    size_t tmp = rhd_nn_mark(r);
    float *prof = rhd_nn_alloc(r, (size_t)N * 6 * a->C * R), *o = rhd_nn_alloc(r, plane_out);
    if (!r->dry) {
        rhd_aware3d_profiles(r->ctx, prof, x, N, a->C, R);
        rhd_aware3d_assemble(r->ctx, Y, x, prof, N, a->C, R);
    }
    for (int q = 0; q < 3; q++) {
        rhd_nn_conv_forward(r, &a->conv[q], o, r->dry ? NULL : Y + q * plane_in, N, R, R); /* (N,Co,R,R) */
        if (!r->dry) rhd_copy_cols(r->ctx, y + (int64_t)q * R, 3L * R, o, R, R, (int64_t)N * a->Co * R);
    }
    rhd_nn_release(r, rhd_nn_saving(r) ? tmp : at);
}

void rhd_nn_aware3d_backward(rhd_nn *r, const rhd_nn_aware3d *a, float *dx, const float *dy, int N, int R) {
    size_t at = rhd_nn_mark(r);
    size_t plane_in = (size_t)N * 3 * a->C * R * R, plane_out = (size_t)N * a->Co * R * R;
    float *dY = rhd_nn_alloc(r, 3 * plane_in), *g = rhd_nn_alloc(r, plane_out);
    float *dprof = rhd_nn_alloc(r, (size_t)N * 6 * a->C * R);
    for (int q = 2; q >= 0; q--) {
        if (!r->dry) rhd_copy_cols(r->ctx, g, R, dy + (int64_t)q * R, 3L * R, R, (int64_t)N * a->Co * R);
        rhd_nn_conv_backward(r, &a->conv[q], r->dry ? NULL : dY + q * plane_in, g, N, R, R);
    }
    if (!r->dry && dx) rhd_aware3d_assemble_backward(r->ctx, dx, dprof, dY, N, a->C, R);
    rhd_nn_release(r, at);
}

/* ---- ResBlock -------------------------------------------------------------------------------- */

static const char *const k_names[3][6] = {
    /* norm1, conv1, emb, norm2, conv2, skip */
    {"in_layers.0", "in_layers.2", "emb_layers.1", "out_layers.0", "out_layers.3", "skip_connection"},
    {"norm1", "conv1", "temb_proj", "norm2", "conv2", "nin_shortcut"},
    {"norm1", "conv1", "time_emb_proj", "norm2", "conv2", "conv_shortcut"},
};

void rhd_nn_resblock_init(rhd_params *p, rhd_nn_resblock *b, const char *prefix, const rhd_nn_resblock_cfg *cfg) {
    memset(b, 0, sizeof *b);
    b->cfg = *cfg;
    RHD_ASSERT(cfg->names >= 0 && cfg->names <= 2 && cfg->groups >= 1);
    RHD_ASSERT(cfg->updown == RHD_NN_PLAIN || cfg->cin == cfg->cout);
    RHD_ASSERT((cfg->temb == RHD_NN_TEMB_NONE) == (cfg->emb == 0));
    const char *const *nm = k_names[cfg->names];
    char name[RHD_PARAM_NAME_MAX];
    b->emb = (rhd_nn_linear){-1, -1, 0, 0};
    b->skip = (rhd_nn_conv){-1, -1};
    sub(name, sizeof name, prefix, nm[0]);
    rhd_nn_groupnorm_init(p, &b->norm1, name, cfg->cin, cfg->groups, cfg->eps);
    sub(name, sizeof name, prefix, nm[1]);
    rhd_nn_conv_init(p, &b->conv1, name, cfg->cin, cfg->cout, 3, 1, 1, 1);
    if (cfg->temb != RHD_NN_TEMB_NONE) {
        sub(name, sizeof name, prefix, nm[2]);
        rhd_nn_linear_init(p, &b->emb, name, cfg->emb, cfg->temb == RHD_NN_TEMB_SCALE_SHIFT ? 2 * cfg->cout : cfg->cout, 1);
    }
    sub(name, sizeof name, prefix, nm[3]);
    rhd_nn_groupnorm_init(p, &b->norm2, name, cfg->cout, cfg->groups, cfg->eps);
    sub(name, sizeof name, prefix, nm[4]);
    if (cfg->aware3d) rhd_nn_aware3d_init(p, &b->conv2a, name, cfg->cout, cfg->cout);
    else rhd_nn_conv_init(p, &b->conv2, name, cfg->cout, cfg->cout, 3, 1, 1, 1);
    if (cfg->cin != cfg->cout || cfg->force_skip) {
        sub(name, sizeof name, prefix, nm[5]);
        rhd_nn_conv_init(p, &b->skip, name, cfg->cin, cfg->cout, 1, 1, 0, 1);
    }
}

void rhd_nn_resblock_out_size(const rhd_nn_resblock *b, int H, int W, int *OH, int *OW) {
    *OH = H, *OW = W;
    if (b->cfg.updown == RHD_NN_DOWN) rhd_nn_resample_size(RHD_NN_AVGPOOL2, H, W, OH, OW);
    if (b->cfg.updown == RHD_NN_UP) rhd_nn_resample_size(RHD_NN_NEAREST2, H, W, OH, OW);
}

static rhd_nn_resample_kind updown_kind(const rhd_nn_resblock *b) {
    return b->cfg.updown == RHD_NN_DOWN ? RHD_NN_AVGPOOL2 : RHD_NN_NEAREST2;
}

/* The forward proper; saves per rhd_nn_saving(r). */
static void resblock_fwd(rhd_nn *r, const rhd_nn_resblock *b, float *y, const float *x, const float *emb, int N, int H,
                         int W) {
    const rhd_nn_resblock_cfg *c = &b->cfg;
    int OH, OW;
    rhd_nn_resblock_out_size(b, H, W, &OH, &OW);
    int64_t nin = (int64_t)N * c->cin * H * W, nmid = (int64_t)N * c->cin * OH * OW, nout = (int64_t)N * c->cout * OH * OW;
    int64_t ohw = (int64_t)OH * OW;
    int save = rhd_nn_saving(r);
    size_t at = rhd_nn_mark(r);
    float *proj = NULL;
    if (c->temb != RHD_NN_TEMB_NONE) { /* emb_layers = SiLU, Linear */
        float *e = rhd_nn_alloc(r, (size_t)N * c->emb);
        proj = rhd_nn_alloc(r, (size_t)N * b->emb.out);
        rhd_nn_silu_forward(r, e, emb, (int64_t)N * c->emb);
        rhd_nn_linear_forward(r, &b->emb, proj, e, N);
    }
    /* Allocation order keeps inference small: what lives to the end first (x', h, o), then each
     * stage's temporaries, released after it when nothing is saved. */
    const float *xs = x;
    if (c->updown != RHD_NN_PLAIN) {
        float *u = rhd_nn_alloc(r, (size_t)nmid);
        rhd_nn_resample_forward(r, updown_kind(b), u, x, N, c->cin, H, W);
        xs = u;
    }
    float *h = rhd_nn_alloc(r, (size_t)nout), *o = rhd_nn_alloc(r, (size_t)nout);
    size_t stage = rhd_nn_mark(r);
    float *a = rhd_nn_alloc(r, (size_t)nin);
    rhd_nn_groupnorm_forward(r, &b->norm1, a, x, N, (int64_t)H * W, 1);
    const float *a2 = a;
    if (c->updown != RHD_NN_PLAIN) {
        float *t = rhd_nn_alloc(r, (size_t)nmid);
        rhd_nn_resample_forward(r, updown_kind(b), t, a, N, c->cin, H, W);
        a2 = t;
    }
    rhd_nn_conv_forward(r, &b->conv1, h, a2, N, OH, OW);
    if (!save) rhd_nn_release(r, stage);
    float *s = rhd_nn_alloc(r, (size_t)nout);
    if (c->temb == RHD_NN_TEMB_SCALE_SHIFT) { /* SiLU(GN2(h) (1 + scale) + shift) */
        float *g = rhd_nn_alloc(r, (size_t)nout), *m = rhd_nn_alloc(r, (size_t)nout);
        rhd_nn_groupnorm_forward(r, &b->norm2, g, h, N, ohw, 0);
        if (!r->dry) rhd_modulate_forward(r->ctx, m, g, proj, proj + c->cout, 2L * c->cout, N, c->cout, ohw);
        if (save) {
            rhd_nn_push(r, RHD_NN_TAG_RESBLOCK, proj, 0);
            rhd_nn_push(r, RHD_NN_TAG_RESBLOCK, g, 0);
        }
        rhd_nn_silu_forward(r, s, m, nout);
    } else {
        float *h2 = h;
        if (c->temb == RHD_NN_TEMB_ADD) {
            h2 = rhd_nn_alloc(r, (size_t)nout);
            if (!r->dry) rhd_modulate_forward(r->ctx, h2, h, NULL, proj, c->cout, N, c->cout, ohw);
        }
        rhd_nn_groupnorm_forward(r, &b->norm2, s, h2, N, ohw, 1);
    }
    const float *dd = s;
    if (c->dropout > 0 && r->train) {
        float *t = rhd_nn_alloc(r, (size_t)nout);
        rhd_nn_dropout_forward(r, t, s, nout, c->dropout);
        dd = t;
    }
    if (c->aware3d) rhd_nn_aware3d_forward(r, &b->conv2a, o, dd, N, OH);
    else rhd_nn_conv_forward(r, &b->conv2, o, dd, N, OH, OW);
    if (!save) rhd_nn_release(r, stage);
    if (b->skip.w >= 0) { /* skip(x') + h, the original's order; the skip conv writes y itself */
        rhd_nn_conv_forward(r, &b->skip, y, xs, N, OH, OW);
        rhd_nn_add_forward(r, y, y, o, nout);
    } else {
        rhd_nn_add_forward(r, y, xs, o, nout);
    }
    if (!save) rhd_nn_release(r, at);
}

static void resblock_bwd(rhd_nn *r, const rhd_nn_resblock *b, float *dx, float *demb, const float *dy, int N, int H,
                         int W) {
    const rhd_nn_resblock_cfg *c = &b->cfg;
    int OH, OW;
    rhd_nn_resblock_out_size(b, H, W, &OH, &OW);
    int64_t nin = (int64_t)N * c->cin * H * W, nmid = (int64_t)N * c->cin * OH * OW, nout = (int64_t)N * c->cout * OH * OW;
    int64_t ohw = (int64_t)OH * OW;
    size_t at = rhd_nn_mark(r);
    const float *dxs = dy; /* gradient of x' (identity skip) */
    if (b->skip.w >= 0) {
        float *t = rhd_nn_alloc(r, (size_t)nmid);
        rhd_nn_conv_backward(r, &b->skip, t, dy, N, OH, OW);
        dxs = t;
    }
    float *dd = rhd_nn_alloc(r, (size_t)nout), *dh = rhd_nn_alloc(r, (size_t)nout);
    if (c->aware3d) rhd_nn_aware3d_backward(r, &b->conv2a, dd, dy, N, OH);
    else rhd_nn_conv_backward(r, &b->conv2, dd, dy, N, OH, OW);
    if (c->dropout > 0 && r->train) rhd_nn_dropout_backward(r, dd, dd, nout, c->dropout);
    float *dproj = c->temb != RHD_NN_TEMB_NONE ? rhd_nn_alloc(r, (size_t)N * b->emb.out) : NULL;
    if (c->temb == RHD_NN_TEMB_SCALE_SHIFT) {
        float *dm = rhd_nn_alloc(r, (size_t)nout);
        rhd_nn_silu_backward(r, dm, dd, nout);
        const float *g = rhd_nn_pop(r, RHD_NN_TAG_RESBLOCK, NULL); /* GN2's output */
        const float *proj = rhd_nn_pop(r, RHD_NN_TAG_RESBLOCK, NULL);
        if (!r->dry)
            rhd_modulate_backward(r->ctx, dm, dproj, dproj + c->cout, dm, g, proj, 2L * c->cout, N, c->cout, ohw);
        rhd_nn_groupnorm_backward(r, &b->norm2, dh, dm, N, ohw, 0);
    } else {
        rhd_nn_groupnorm_backward(r, &b->norm2, dh, dd, N, ohw, 1);
        if (c->temb == RHD_NN_TEMB_ADD && !r->dry)
            rhd_modulate_backward(r->ctx, NULL, NULL, dproj, dh, dh, NULL, c->cout, N, c->cout, ohw);
    }
    float *da = rhd_nn_alloc(r, (size_t)nmid);
    rhd_nn_conv_backward(r, &b->conv1, da, dh, N, OH, OW);
    float *dxskip = (float *)dxs;
    if (c->updown != RHD_NN_PLAIN) {
        float *t = rhd_nn_alloc(r, (size_t)nin), *u = rhd_nn_alloc(r, (size_t)nin);
        rhd_nn_resample_backward(r, updown_kind(b), t, da, N, c->cin, H, W);
        rhd_nn_resample_backward(r, updown_kind(b), u, dxs, N, c->cin, H, W);
        da = t, dxskip = u;
    }
    rhd_nn_groupnorm_backward(r, &b->norm1, dx, da, N, (int64_t)H * W, 1);
    if (dx) rhd_nn_add_forward(r, dx, dx, dxskip, nin);
    if (c->temb != RHD_NN_TEMB_NONE) {
        float *de = rhd_nn_alloc(r, (size_t)N * c->emb);
        rhd_nn_linear_backward(r, &b->emb, de, dproj, N);
        rhd_nn_silu_backward(r, de, de, (int64_t)N * c->emb);
        if (demb) rhd_nn_add_forward(r, demb, demb, de, (int64_t)N * c->emb);
    }
    rhd_nn_release(r, at);
}

void rhd_nn_resblock_forward(rhd_nn *r, const rhd_nn_resblock *b, float *y, const float *x, const float *emb, int N,
                             int H, int W) {
    if (!(b->cfg.checkpoint && rhd_nn_saving(r))) {
        resblock_fwd(r, b, y, x, emb, N, H, W);
        return;
    }
    rhd_nn_push(r, RHD_NN_TAG_RESBLOCK, x, r->rng_offset);
    rhd_nn_push(r, RHD_NN_TAG_RESBLOCK, emb, 0);
    r->nosave++;
    resblock_fwd(r, b, y, x, emb, N, H, W);
    r->nosave--;
}

void rhd_nn_resblock_backward(rhd_nn *r, const rhd_nn_resblock *b, float *dx, float *demb, const float *dy, int N,
                              int H, int W) {
    if (!b->cfg.checkpoint) {
        resblock_bwd(r, b, dx, demb, dy, N, H, W);
        return;
    }
    uint64_t off, now = r->rng_offset;
    const float *emb = rhd_nn_pop(r, RHD_NN_TAG_RESBLOCK, NULL);
    const float *x = rhd_nn_pop(r, RHD_NN_TAG_RESBLOCK, &off);
    size_t at = rhd_nn_mark(r);
    int OH, OW;
    rhd_nn_resblock_out_size(b, H, W, &OH, &OW);
    float *y = rhd_nn_alloc(r, (size_t)N * b->cfg.cout * OH * OW);
    r->rng_offset = off; /* the same dropout mask as the forward */
    resblock_fwd(r, b, y, x, emb, N, H, W);
    r->rng_offset = now;
    resblock_bwd(r, b, dx, demb, dy, N, H, W);
    rhd_nn_release(r, at);
}

/* ---- timestep-embedding MLP ----------------------------------------------------------------- */

void rhd_nn_temb_init(rhd_params *p, rhd_nn_temb *t, const char *prefix, int ch, int E) {
    char name[RHD_PARAM_NAME_MAX];
    t->ch = ch, t->E = E;
    sub(name, sizeof name, prefix, "0");
    rhd_nn_linear_init(p, &t->l1, name, ch, E, 1);
    sub(name, sizeof name, prefix, "2");
    rhd_nn_linear_init(p, &t->l2, name, E, E, 1);
}

void rhd_nn_temb_forward(rhd_nn *r, const rhd_nn_temb *t, float *emb, const float *ts, int N) {
    size_t at = rhd_nn_mark(r);
    float *sinus = rhd_nn_alloc(r, (size_t)N * t->ch);
    float *h = rhd_nn_alloc(r, (size_t)N * t->E), *s = rhd_nn_alloc(r, (size_t)N * t->E);
    if (!r->dry) rhd_timestep_embed_forward(r->ctx, sinus, ts, N, t->ch);
    rhd_nn_linear_forward(r, &t->l1, h, sinus, N);
    rhd_nn_silu_forward(r, s, h, (int64_t)N * t->E);
    rhd_nn_linear_forward(r, &t->l2, emb, s, N);
    if (!rhd_nn_saving(r)) rhd_nn_release(r, at);
}

void rhd_nn_temb_backward(rhd_nn *r, const rhd_nn_temb *t, const float *demb, int N) {
    size_t at = rhd_nn_mark(r);
    float *ds = rhd_nn_alloc(r, (size_t)N * t->E);
    rhd_nn_linear_backward(r, &t->l2, ds, demb, N);
    rhd_nn_silu_backward(r, ds, ds, (int64_t)N * t->E);
    rhd_nn_linear_backward(r, &t->l1, NULL, ds, N);
    rhd_nn_release(r, at);
}
