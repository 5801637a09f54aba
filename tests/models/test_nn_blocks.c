/* tests/models/test_nn_blocks.c: the composite blocks of common/models/nn.h against PyTorch
 * (tests/ref/ref_nn.py, written from spec diffusion.md §2.4, §5.2), finite differences, thread
 * counts, checkpointing and CUDA (tests/nn_case.h):
 *   - Conv3DAware on a rolled [N,C,R,3R] map;
 *   - the ResBlock family: the base UNet's scale-shift block (plain with a 1x1 skip and dropout,
 *     down, up, 3D-aware), the upsampler's additive-temb block (3D-aware, dropout, eps 1e-6) and
 *     its temb-less out block, the VAE's ResnetBlock2D;
 *   - the joint self + cross AttentionBlock with encoder tokens (and without), the cross-only
 *     CrossAttention_u with one and with three encoder tokens;
 *   - a gradient-checkpointed chain (ResBlock -> attention -> ResBlock sharing one embedding) gives
 *     bitwise the plain chain's gradients, and the tape is empty after the backward. */
#include "nn_case.h"

/* ---- Conv3DAware ----------------------------------------------------------------------------- */

static void a3_build(nc_case *c, rhd_params *p) { rhd_nn_aware3d_init(p, &c->b.a3, "", c->iv[1], c->iv[2]); }
static void a3_fwd(rhd_nn *r, nc_case *c, float *y, float *const *in) {
    rhd_nn_aware3d_forward(r, &c->b.a3, y, in[0], c->iv[0], c->iv[3]);
}
static void a3_bwd(rhd_nn *r, nc_case *c, float *const *din, const float *dy) {
    rhd_nn_aware3d_backward(r, &c->b.a3, din[0], dy, c->iv[0], c->iv[3]);
}
static nc_case a3_case(int N, int C, int Co, int R) {
    nc_case c = {.build = a3_build, .fwd = a3_fwd, .bwd = a3_bwd, .iv = {N, C, Co, R}};
    snprintf(c.name, sizeof c.name, "conv3daware %d->%d on %dx%dx%dx%d", C, Co, N, C, R, 3 * R);
    strcpy(c.block, "aware3d");
    snprintf(c.args, sizeof c.args, "C=%d Co=%d", C, Co);
    nc_input(&c, "x", 1, 4, N, C, R, 3 * R);
    nc_output(&c, 4, N, Co, R, 3 * R);
    return c;
}

/* ---- ResBlock ---------------------------------------------------------------------------------- */

static void rb_build(nc_case *c, rhd_params *p) {
    rhd_nn_resblock_cfg cfg = c->rcfg;
    cfg.checkpoint = c->ckpt;
    rhd_nn_resblock_init(p, &c->b.rb, "", &cfg);
}
static void rb_fwd(rhd_nn *r, nc_case *c, float *y, float *const *in) {
    rhd_nn_resblock_forward(r, &c->b.rb, y, in[0], c->rcfg.emb ? in[1] : NULL, c->iv[0], c->iv[1], c->iv[2]);
}
static void rb_bwd(rhd_nn *r, nc_case *c, float *const *din, const float *dy) {
    rhd_nn_resblock_backward(r, &c->b.rb, din[0], c->rcfg.emb ? din[1] : NULL, dy, c->iv[0], c->iv[1], c->iv[2]);
}
static nc_case rb_case(const char *label, rhd_nn_resblock_cfg cfg, int N, int H, int W) {
    static const char *names[] = {"unet", "upsampler", "vae"}, *temb[] = {"none", "scale_shift", "add"},
                      *ud[] = {"plain", "down", "up"};
    nc_case c = {.build = rb_build, .fwd = rb_fwd, .bwd = rb_bwd, .iv = {N, H, W}, .can_ckpt = 1};
    c.rcfg = cfg;
    snprintf(c.name, sizeof c.name, "resblock %s %d->%d on %dx%dx%dx%d", label, cfg.cin, cfg.cout, N, cfg.cin, H, W);
    strcpy(c.block, "resblock");
    snprintf(c.args, sizeof c.args,
             "names=%s cin=%d cout=%d emb=%d temb=%s updown=%s aware3d=%d force_skip=%d groups=%d eps=%.9g dropout=%.9g",
             names[cfg.names], cfg.cin, cfg.cout, cfg.emb, temb[cfg.temb], ud[cfg.updown], cfg.aware3d, cfg.force_skip,
             cfg.groups, cfg.eps, cfg.dropout);
    nc_input(&c, "x", 1, 4, N, cfg.cin, H, W);
    if (cfg.emb) nc_input(&c, "emb", 1, 2, N, cfg.emb, 0, 0);
    int OH = cfg.updown == RHD_NN_DOWN ? H / 2 : cfg.updown == RHD_NN_UP ? 2 * H : H;
    int OW = cfg.updown == RHD_NN_DOWN ? W / 2 : cfg.updown == RHD_NN_UP ? 2 * W : W;
    nc_output(&c, 4, N, cfg.cout, OH, OW);
    c.dropout = cfg.dropout;
    int64_t ds[4] = {N, cfg.cout, OH, OW};
    memcpy(c.drop_shape, ds, sizeof ds);
    return c;
}

/* ---- attention ----------------------------------------------------------------------------------- */

static void at_build(nc_case *c, rhd_params *p) {
    rhd_nn_attn_cfg cfg = c->acfg;
    cfg.checkpoint = c->ckpt;
    rhd_nn_attn_init(p, &c->b.at, "", &cfg);
}
static void at_fwd(rhd_nn *r, nc_case *c, float *y, float *const *in) {
    rhd_nn_attn_forward(r, &c->b.at, y, in[0], c->iv[3] ? in[1] : NULL, c->iv[0], c->iv[1] * c->iv[2], c->iv[3]);
}
static void at_bwd(rhd_nn *r, nc_case *c, float *const *din, const float *dy) {
    rhd_nn_attn_backward(r, &c->b.at, din[0], c->iv[3] ? din[1] : NULL, dy, c->iv[0], c->iv[1] * c->iv[2], c->iv[3]);
}
static nc_case at_case(rhd_nn_attn_cfg cfg, int N, int H, int W, int Te) {
    nc_case c = {.build = at_build, .fwd = at_fwd, .bwd = at_bwd, .iv = {N, H, W, Te}, .can_ckpt = 1};
    if (!Te) cfg.enc_ch = 0; /* no encoder_kv at all */
    /* a group of the encoder norm holds 4 channels x Te tokens: with one token, so curved that no
     * step separates truncation from fp32 rounding; that case is checked against PyTorch only */
    if (cfg.kind == RHD_NN_ATTN_CROSS) c.fd_h = 1e-2f, c.no_fd = Te == 1 ? 2 : 0;
    c.acfg = cfg;
    snprintf(c.name, sizeof c.name, "attention %s C=%d heads=%d with %d encoder tokens of %d on %dx%d",
             cfg.kind == RHD_NN_ATTN_JOINT ? "joint" : "cross", cfg.C, cfg.heads, Te, cfg.enc_ch, H, W);
    strcpy(c.block, "attn");
    snprintf(c.args, sizeof c.args, "kind=%s C=%d heads=%d enc_ch=%d groups=%d enc_groups=%d eps=%.9g",
             cfg.kind == RHD_NN_ATTN_JOINT ? "joint" : "cross", cfg.C, cfg.heads, Te ? cfg.enc_ch : 0, cfg.groups,
             cfg.enc_groups, cfg.eps);
    nc_input(&c, "x", 1, 4, N, cfg.C, H, W);
    if (Te) nc_input(&c, "enc", 1, 3, N, cfg.enc_ch, Te, 0);
    nc_output(&c, 4, N, cfg.C, H, W);
    return c;
}

static int build_cases(nc_case *cs) {
    int n = 0;
    cs[n++] = a3_case(2, 3, 4, 5);
    rhd_nn_resblock_cfg base = {.cin = 8, .cout = 16, .emb = 12, .temb = RHD_NN_TEMB_SCALE_SHIFT, .groups = 4,
                                .eps = 1e-5f, .dropout = 0.1f, .names = RHD_NN_NAMES_UNET};
    cs[n++] = rb_case("unet scale-shift skip dropout", base, 2, 4, 6);
    rhd_nn_resblock_cfg c = base;
    c.cin = c.cout = 8, c.updown = RHD_NN_DOWN, c.dropout = 0;
    cs[n++] = rb_case("unet down", c, 2, 4, 6);
    c.updown = RHD_NN_UP, c.dropout = 0.1f;
    cs[n++] = rb_case("unet up dropout", c, 1, 3, 5);
    c.updown = RHD_NN_PLAIN, c.aware3d = 1;
    cs[n++] = rb_case("unet 3d-aware dropout", c, 2, 4, 12);
    rhd_nn_resblock_cfg u = {.cin = 8, .cout = 16, .emb = 12, .temb = RHD_NN_TEMB_ADD, .aware3d = 1, .groups = 4,
                             .eps = 1e-6f, .dropout = 0.1f, .names = RHD_NN_NAMES_UPSAMPLER};
    cs[n++] = rb_case("upsampler additive 3d-aware dropout", u, 2, 3, 9);
    u.cin = 16, u.cout = 8, u.emb = 0, u.temb = RHD_NN_TEMB_NONE, u.dropout = 0;
    cs[n++] = rb_case("upsampler out (no temb)", u, 1, 3, 9);
    rhd_nn_resblock_cfg v = {.cin = 8, .cout = 16, .groups = 4, .eps = 1e-6f, .names = RHD_NN_NAMES_VAE};
    cs[n++] = rb_case("vae", v, 2, 5, 4);
    rhd_nn_attn_cfg j = {.kind = RHD_NN_ATTN_JOINT, .C = 16, .heads = 2, .enc_ch = 12, .groups = 4, .eps = 1e-5f};
    cs[n++] = at_case(j, 2, 3, 4, 5);
    cs[n++] = at_case(j, 1, 3, 5, 0);
    rhd_nn_attn_cfg x = {.kind = RHD_NN_ATTN_CROSS, .C = 16, .heads = 2, .enc_ch = 16, .groups = 4, .enc_groups = 4,
                         .eps = 1e-5f};
    cs[n++] = at_case(x, 2, 3, 4, 1);
    cs[n++] = at_case(x, 2, 2, 3, 3);
    return n;
}

/* ---- a checkpointed chain: ResBlock(emb) -> attention(enc) -> ResBlock(emb) ----------------- */

typedef struct chain {
    rhd_nn_resblock b1, b2;
    rhd_nn_attn at;
} chain;

static void chain_build(chain *ch, rhd_params *p, int ckpt) {
    rhd_nn_resblock_cfg c = {.cin = 8, .cout = 16, .emb = 12, .temb = RHD_NN_TEMB_SCALE_SHIFT, .groups = 4, .eps = 1e-5f,
                             .dropout = 0.1f, .checkpoint = ckpt, .names = RHD_NN_NAMES_UNET};
    rhd_nn_resblock_init(p, &ch->b1, "b1", &c);
    rhd_nn_attn_cfg a = {.kind = RHD_NN_ATTN_JOINT, .C = 16, .heads = 2, .enc_ch = 12, .groups = 4, .eps = 1e-5f,
                         .checkpoint = ckpt};
    rhd_nn_attn_init(p, &ch->at, "at", &a);
    c.cin = 16, c.updown = RHD_NN_DOWN;
    rhd_nn_resblock_init(p, &ch->b2, "b2", &c);
}

typedef struct chain_run {
    chain ch;
    const float *x, *emb, *enc, *dy;
    float *y, *dx, *demb, *denc;
} chain_run;

enum { CN = 2, CH = 4, CW = 6, CT = 5 };

static void chain_pass(rhd_nn *r, void *u) {
    chain_run *s = u;
    long n1 = (long)CN * 16 * CH * CW;
    float *h1 = rhd_nn_alloc(r, n1), *h2 = rhd_nn_alloc(r, n1);
    s->y = rhd_nn_alloc(r, n1 / 4);
    rhd_nn_resblock_forward(r, &s->ch.b1, h1, s->x, s->emb, CN, CH, CW);
    rhd_nn_attn_forward(r, &s->ch.at, h2, h1, s->enc, CN, CH * CW, CT);
    rhd_nn_resblock_forward(r, &s->ch.b2, s->y, h2, s->emb, CN, CH, CW);
    float *d2 = rhd_nn_alloc(r, n1), *d1 = rhd_nn_alloc(r, n1);
    s->dx = rhd_nn_alloc(r, (size_t)CN * 8 * CH * CW);
    s->demb = rhd_nn_alloc(r, CN * 12), s->denc = rhd_nn_alloc(r, CN * 12 * CT);
    if (!r->dry) {
        rhd_buf_zero(r->ctx, s->demb, sizeof(float) * CN * 12);
        rhd_buf_zero(r->ctx, s->denc, sizeof(float) * CN * 12 * CT);
    }
    rhd_nn_resblock_backward(r, &s->ch.b2, d2, s->demb, s->dy, CN, CH, CW);
    rhd_nn_attn_backward(r, &s->ch.at, d1, s->denc, d2, CN, CH * CW, CT);
    rhd_nn_resblock_backward(r, &s->ch.b1, s->dx, s->demb, d1, CN, CH, CW);
}

static void chain_run_on(rhd_ctx *ctx, int ckpt, const float *params, int64_t total, float *const *in, float **out,
                         size_t *arena) {
    rhd_params p;
    rhd_params_init(&p);
    chain_run s = {0};
    chain_build(&s.ch, &p, ckpt);
    rhd_params_alloc(&p, ctx, 1, 0);
    RHD_ASSERT(p.total == total);
    rhd_buf_upload(ctx, p.data, params, sizeof(float) * total);
    s.x = in[0], s.emb = in[1], s.enc = in[2], s.dy = in[3];
    rhd_nn r;
    rhd_nn_init(&r, ctx, &p);
    r.seed = th_seed(), r.stream = RHD_STREAM(RHD_STREAM_DROPOUT, 5), r.train = 1;
    *arena = rhd_nn_plan(&r, chain_pass, &s);
    rhd_nn_begin(&r, 1);
    chain_pass(&r, &s);
    th_ok(r.ntape == 0, "chain%s: the tape is empty after the backward", ckpt ? " (checkpointed)" : "");
    long sizes[5] = {(long)CN * 16 * CH * CW / 4, (long)CN * 8 * CH * CW, CN * 12, CN * 12 * CT, total};
    const float *src[5] = {s.y, s.dx, s.demb, s.denc, p.grad};
    for (int i = 0; i < 5; i++) {
        out[i] = malloc(sizeof(float) * sizes[i]);
        memcpy(out[i], src[i], sizeof(float) * sizes[i]);
    }
    rhd_nn_free(&r);
    rhd_params_free(&p);
}

static void check_chain(rhd_ctx *cpu) {
    rhd_params p;
    rhd_params_init(&p);
    chain ch;
    chain_build(&ch, &p, 0);
    float *params = th_randn(p.total, 0.2f);
    int64_t total = p.total;
    rhd_params_free(&p);
    float *in[4] = {th_randn((long)CN * 8 * CH * CW, 1), th_randn(CN * 12, 1), th_randn(CN * 12 * CT, 1),
                    th_randn((long)CN * 16 * CH * CW / 4, 1)};
    float *plain[5], *ck[5];
    size_t a0, a1;
    chain_run_on(cpu, 0, params, total, in, plain, &a0);
    chain_run_on(cpu, 1, params, total, in, ck, &a1);
    long sizes[5] = {(long)CN * 16 * CH * CW / 4, (long)CN * 8 * CH * CW, CN * 12, CN * 12 * CT, total};
    const char *names[5] = {"y", "dx", "demb", "denc", "parameter gradients"};
    for (int i = 0; i < 5; i++) {
        char what[96];
        snprintf(what, sizeof what, "chain checkpointed = plain: %s", names[i]);
        th_same_bytes(what, ck[i], plain[i], sizes[i], sizeof(float));
        free(plain[i]), free(ck[i]);
    }
    th_ok(a1 < a0, "chain: the dry run sizes the checkpointed pass smaller (%zu bytes) than the plain one (%zu)", a1, a0);
    for (int i = 0; i < 4; i++) free(in[i]);
    free(params);
}

int main(void) {
    rhd_ctx *cpu, *gpu;
    th_open_backends(&cpu, &gpu);
    nc_case cs[16];
    memset(cs, 0, sizeof cs);
    int n = build_cases(cs);
    nc_check_all(cpu, gpu, cs, n, "block");
    check_chain(cpu);
    if (gpu) rhd_ctx_close(gpu);
    rhd_ctx_close(cpu);
    return th_done();
}
