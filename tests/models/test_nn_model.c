/* tests/models/test_nn_model.c: the one model lifecycle of common/models/nn.h on a miniature
 * diffusion UNet built from the blocks (timestep MLP, conv in, a 3D-aware ResBlock with dropout, a
 * down ResBlock, joint attention with encoder tokens, an up ResBlock, GN-SiLU-conv out):
 *   - create from a config and a state dict (names under a prefix), every tensor loaded by name;
 *     a state dict of another config is refused naming the first mismatching tensor;
 *   - the training pass (dry-run sized arena, forward, backward through the tape) against central
 *     finite differences of sum(y * dy) for the input, the encoder tokens and some parameters;
 *   - checkpointing every ResBlock and attention block: bitwise the same output and gradients, and
 *     a smaller planned arena; the same bits on 1 and 4 threads; inference plans less than training;
 *   - CUDA against the CPU where a device exists. */
#include <omp.h>
#include "refcheck.h"
#include "common/models/nn.h"
#include "formats/params_io.h"

typedef struct mini_cfg {
    int in_ch, ch, tch, emb, enc_ch, heads;
    float dropout;
    int checkpoint;
} mini_cfg;

typedef struct mini {
    rhd_nn_model base; /* first: the lifecycle's part */
    mini_cfg cfg;
    rhd_nn_temb temb;
    rhd_nn_conv conv_in, conv_out;
    rhd_nn_resblock r1, r2, r3;
    rhd_nn_attn at;
    rhd_nn_groupnorm norm_out;
} mini;

typedef struct mini_io {
    int N, R, Te;               /* x (N,in,R,3R), t (N), enc (N,enc_ch,Te) */
    const float *x, *t, *enc, *dy;
    float *y, *dx, *denc;       /* y, dx, denc taken from the run's arena */
    float *h[6], *emb, *demb;   /* saved activations of the assembly */
} mini_io;

static int mini_build(rhd_nn_model *mm, const void *cfgp, rhd_err *e) {
    mini *m = (mini *)mm;
    const mini_cfg *c = cfgp;
    if (c->ch % 4) return rhd_errf(e, "mini: ch %d, expected a multiple of 4 (GroupNorm groups)", c->ch);
    m->cfg = *c;
    rhd_params *p = &mm->params;
    rhd_nn_temb_init(p, &m->temb, "time_embed", c->tch, c->emb);
    rhd_nn_conv_init(p, &m->conv_in, "input_blocks.0.0", c->in_ch, c->ch, 3, 1, 1, 1);
    rhd_nn_resblock_cfg rc = {.cin = c->ch, .cout = c->ch, .emb = c->emb, .temb = RHD_NN_TEMB_SCALE_SHIFT, .aware3d = 1,
                              .groups = 4, .eps = 1e-5f, .dropout = c->dropout, .checkpoint = c->checkpoint,
                              .names = RHD_NN_NAMES_UNET};
    rhd_nn_resblock_init(p, &m->r1, "input_blocks.1.0", &rc);
    rc.aware3d = 0, rc.updown = RHD_NN_DOWN;
    rhd_nn_resblock_init(p, &m->r2, "input_blocks.2.0", &rc);
    rhd_nn_attn_cfg ac = {.kind = RHD_NN_ATTN_JOINT, .C = c->ch, .heads = c->heads, .enc_ch = c->enc_ch, .groups = 4,
                          .eps = 1e-5f, .checkpoint = c->checkpoint};
    rhd_nn_attn_init(p, &m->at, "input_blocks.2.1", &ac);
    rc.updown = RHD_NN_UP;
    rhd_nn_resblock_init(p, &m->r3, "output_blocks.0.0", &rc);
    rhd_nn_groupnorm_init(p, &m->norm_out, "out.0", c->ch, 4, 1e-5f);
    rhd_nn_conv_init(p, &m->conv_out, "out.2", c->ch, c->in_ch, 3, 1, 1, 1);
    return 0;
}

static void mini_forward(rhd_nn *r, const rhd_nn_model *mm, void *iop) {
    const mini *m = (const mini *)mm;
    mini_io *io = iop;
    const int N = io->N, R = io->R, C = m->cfg.ch;
    const long n0 = (long)N * C * R * 3 * R, n1 = n0 / 4;
    io->emb = rhd_nn_alloc(r, (size_t)N * m->cfg.emb);
    rhd_nn_temb_forward(r, &m->temb, io->emb, io->t, N);
    long sz[6] = {n0, n0, n1, n1, n0, n0};
    for (int i = 0; i < 6; i++) io->h[i] = rhd_nn_alloc(r, (size_t)sz[i]);
    io->y = rhd_nn_alloc(r, (size_t)N * m->cfg.in_ch * R * 3 * R);
    rhd_nn_conv_forward(r, &m->conv_in, io->h[0], io->x, N, R, 3 * R);
    rhd_nn_resblock_forward(r, &m->r1, io->h[1], io->h[0], io->emb, N, R, 3 * R);
    rhd_nn_resblock_forward(r, &m->r2, io->h[2], io->h[1], io->emb, N, R, 3 * R);
    rhd_nn_attn_forward(r, &m->at, io->h[3], io->h[2], io->enc, N, (R / 2) * (3 * R / 2), io->Te);
    rhd_nn_resblock_forward(r, &m->r3, io->h[4], io->h[3], io->emb, N, R / 2, 3 * R / 2);
    rhd_nn_groupnorm_forward(r, &m->norm_out, io->h[5], io->h[4], N, (long)R * 3 * R, 1);
    rhd_nn_conv_forward(r, &m->conv_out, io->y, io->h[5], N, R, 3 * R);
}

static void mini_backward(rhd_nn *r, const rhd_nn_model *mm, void *iop) {
    const mini *m = (const mini *)mm;
    mini_io *io = iop;
    const int N = io->N, R = io->R, C = m->cfg.ch;
    const long n0 = (long)N * C * R * 3 * R, n1 = n0 / 4;
    io->dx = rhd_nn_alloc(r, (size_t)N * m->cfg.in_ch * R * 3 * R);
    io->denc = rhd_nn_alloc(r, (size_t)N * m->cfg.enc_ch * io->Te);
    io->demb = rhd_nn_alloc(r, (size_t)N * m->cfg.emb);
    float *a = rhd_nn_alloc(r, (size_t)n0), *b = rhd_nn_alloc(r, (size_t)n0);
    if (!r->dry) {
        rhd_buf_zero(r->ctx, io->denc, sizeof(float) * N * m->cfg.enc_ch * io->Te);
        rhd_buf_zero(r->ctx, io->demb, sizeof(float) * N * m->cfg.emb);
    }
    rhd_nn_conv_backward(r, &m->conv_out, a, io->dy, N, R, 3 * R);
    rhd_nn_groupnorm_backward(r, &m->norm_out, b, a, N, (long)R * 3 * R, 1);
    rhd_nn_resblock_backward(r, &m->r3, a, io->demb, b, N, R / 2, 3 * R / 2); /* a: (N,C,R/2,3R/2) */
    rhd_nn_attn_backward(r, &m->at, b, io->denc, a, N, (R / 2) * (3 * R / 2), io->Te);
    rhd_nn_resblock_backward(r, &m->r2, a, io->demb, b, N, R, 3 * R);
    rhd_nn_resblock_backward(r, &m->r1, b, io->demb, a, N, R, 3 * R);
    rhd_nn_conv_backward(r, &m->conv_in, io->dx, b, N, R, 3 * R);
    rhd_nn_temb_backward(r, &m->temb, io->demb, N);
    (void)n1;
}

static const rhd_nn_model_ops mini_ops = {"mini", sizeof(mini), mini_build, mini_forward, mini_backward};

enum { N = 2, R = 4, TE = 3 };
static const mini_cfg k_cfg = {4, 16, 8, 24, 12, 2, 0.1f, 0};

typedef struct inputs {
    float *x, *t, *enc, *dy;
    long nx, ny, nenc;
} inputs;

typedef struct outputs {
    float *y, *dx, *denc, *grad;
    size_t arena;
} outputs;

/* Device copies of the inputs, a training step, host copies of the results. */
static void step(rhd_nn_model *m, const inputs *in, outputs *o, int train) {
    rhd_ctx *ctx = m->params.ctx;
    float *d[4];
    const float *h[4] = {in->x, in->t, in->enc, in->dy};
    long n[4] = {in->nx, N, in->nenc, in->ny};
    for (int i = 0; i < 4; i++) {
        d[i] = rhd_buf_alloc(ctx, sizeof(float) * n[i]);
        rhd_buf_upload(ctx, d[i], h[i], sizeof(float) * n[i]);
    }
    mini_io io = {N, R, TE, d[0], d[1], d[2], d[3]};
    if (train) rhd_nn_model_zero_grad(m);
    m->run.seed = th_seed(), m->run.stream = RHD_STREAM(RHD_STREAM_DROPOUT, 1);
    rhd_nn_model_forward(m, &io, train);
    o->y = malloc(sizeof(float) * in->ny);
    rhd_buf_download(ctx, o->y, io.y, sizeof(float) * in->ny);
    o->arena = m->run.arena->cap;
    o->dx = o->denc = o->grad = NULL;
    if (train) {
        rhd_nn_model_backward(m, &io);
        o->dx = malloc(sizeof(float) * in->nx), o->denc = malloc(sizeof(float) * in->nenc);
        o->grad = malloc(sizeof(float) * m->params.total);
        rhd_buf_download(ctx, o->dx, io.dx, sizeof(float) * in->nx);
        rhd_buf_download(ctx, o->denc, io.denc, sizeof(float) * in->nenc);
        rhd_buf_download(ctx, o->grad, m->params.grad, sizeof(float) * m->params.total);
    }
    for (int i = 0; i < 4; i++) rhd_buf_free(ctx, d[i]);
}

static void out_free(outputs *o) { free(o->y), free(o->dx), free(o->denc), free(o->grad); }

static rhd_nn_model *create(rhd_ctx *ctx, const mini_cfg *c, const rhd_st *st) {
    rhd_err e;
    rhd_nn_model *m = rhd_nn_model_create(&mini_ops, c, ctx, st, "model.", 1, &e);
    if (!m) th_diag("%s", e.msg), exit(1);
    return m;
}

static int same(const char *what, const outputs *a, const outputs *b, const inputs *in, int64_t ptotal) {
    int bad = memcmp(a->y, b->y, sizeof(float) * in->ny) || memcmp(a->dx, b->dx, sizeof(float) * in->nx) ||
              memcmp(a->denc, b->denc, sizeof(float) * in->nenc) || memcmp(a->grad, b->grad, sizeof(float) * ptotal);
    return th_ok(!bad, "%s: output, dx, denc and every parameter gradient bit-identical", what);
}

/* finite differences on the CPU */
typedef struct fd {
    rhd_nn_model *m;
    inputs *in;
} fd;

static double fd_loss(void *u) {
    fd *f = u;
    outputs o;
    mini_io io = {N, R, TE, f->in->x, f->in->t, f->in->enc, f->in->dy};
    f->m->run.seed = th_seed(), f->m->run.stream = RHD_STREAM(RHD_STREAM_DROPOUT, 1);
    rhd_nn_model_forward(f->m, &io, 1); /* training mode: the same dropout mask */
    double s = 0;
    for (long i = 0; i < f->in->ny; i++) s += (double)io.y[i] * f->in->dy[i];
    f->m->run.ntape = 0;
    (void)o;
    return s;
}

int main(void) {
    rhd_ctx *cpu, *gpu;
    th_open_backends(&cpu, &gpu);
    inputs in = {0};
    in.nx = in.ny = (long)N * k_cfg.in_ch * R * 3 * R, in.nenc = (long)N * k_cfg.enc_ch * TE;
    in.x = th_randn(in.nx, 1), in.t = th_randu(N, 0, 999), in.enc = th_randn(in.nenc, 1), in.dy = th_randn(in.ny, 1);

    /* a state dict with random weights, written under the prefix "model." */
    rhd_nn_model *src = create(cpu, &k_cfg, NULL);
    float *w = th_randn(src->params.total, 0.15f);
    rhd_buf_upload(cpu, src->params.data, w, sizeof(float) * src->params.total);
    const char *dir = th_subdir("model");
    char path[1200];
    snprintf(path, sizeof path, "%s/mini.safetensors", dir);
    rhd_st_writer wr;
    rhd_err e;
    rhd_st_writer_init(&wr);
    rhd_params_to_writer(&src->params, RHD_PBUF_DATA, "model.", &wr);
    th_ok(rhd_st_write(&wr, path, &e) == 0, "state dict of the mini UNet written (%d tensors, %lld parameters)",
          src->params.n, (long long)rhd_params_count(&src->params));
    rhd_st_writer_free(&wr);
    rhd_st *st;
    if (rhd_st_open(path, &st, &e)) th_diag("%s", e.msg), exit(1);
    rhd_nn_model *m = create(cpu, &k_cfg, st);
    int eq = 1;
    for (int i = 0; i < m->params.n; i++)
        eq &= !memcmp(rhd_param(&m->params, i), rhd_param(&src->params, i), sizeof(float) * m->params.info[i].numel);
    th_ok(eq, "create from the state dict: every tensor loaded by name");
    mini_cfg other = k_cfg;
    other.ch = 20;
    rhd_nn_model *bad = rhd_nn_model_create(&mini_ops, &other, cpu, st, "model.", 1, &e);
    th_ok(!bad && strstr(e.msg, "'model.input_blocks.0.0.weight' has shape [16,4,3,3], expected [20,4,3,3]"),
          "a state dict of another config is refused by name: %s", bad ? "(accepted)" : e.msg);
    rhd_nn_model_free(src);
    free(w);

    outputs plain, ck, one, four, inf;
    step(m, &in, &plain, 1);
    fd f = {m, &in};
    th_fd_check("mini UNet dx", fd_loss, &f, in.x, plain.dx, in.nx, 12, 3e-2, 2e-2, 1e-2);
    th_fd_check("mini UNet denc", fd_loss, &f, in.enc, plain.denc, in.nenc, 8, 3e-2, 2e-2, 1e-2);
    const char *names[] = {"time_embed.0.weight", "input_blocks.1.0.out_layers.3.out_layers2.weight",
                           "input_blocks.2.1.encoder_kv.weight", "output_blocks.0.0.emb_layers.1.bias", "out.2.bias"};
    for (int k = 0; k < 5; k++) {
        int i = rhd_params_find(&m->params, names[k]);
        const rhd_param_info *t = &m->params.info[i];
        char what[160];
        snprintf(what, sizeof what, "mini UNet d[%s]", names[k]);
        th_fd_check(what, fd_loss, &f, m->params.data + t->offset, plain.grad + t->offset, t->numel, 6, 3e-2, 2e-2,
                    1e-2);
    }
    mini_cfg cc = k_cfg;
    cc.checkpoint = 1;
    rhd_nn_model *mc = create(cpu, &cc, st);
    step(mc, &in, &ck, 1);
    same("checkpointed vs plain", &ck, &plain, &in, m->params.total);
    th_ok(ck.arena < plain.arena, "the planned arena with checkpointing (%zu bytes) is smaller than without (%zu)",
          ck.arena, plain.arena);
    omp_set_num_threads(1);
    step(m, &in, &one, 1);
    omp_set_num_threads(4);
    step(m, &in, &four, 1);
    omp_set_num_threads(omp_get_num_procs());
    same("1 vs 4 threads", &one, &four, &in, m->params.total);
    same("1 thread vs default", &one, &plain, &in, m->params.total);
    rhd_nn_model *mi = create(cpu, &k_cfg, st);
    step(mi, &in, &inf, 0);
    th_ok(inf.arena < plain.arena, "inference plans a smaller arena (%zu bytes) than training (%zu)", inf.arena,
          plain.arena);
    if (gpu) {
        outputs g;
        rhd_nn_model *mg = create(gpu, &k_cfg, st);
        step(mg, &in, &g, 1);
        th_close("mini UNet cuda~cpu y", g.y, plain.y, in.ny, 1e-8);
        th_close("mini UNet cuda~cpu dx", g.dx, plain.dx, in.nx, 1e-8);
        th_close("mini UNet cuda~cpu denc", g.denc, plain.denc, in.nenc, 1e-8);
        th_close("mini UNet cuda~cpu parameter gradients", g.grad, plain.grad, m->params.total, 1e-8);
        out_free(&g);
        rhd_nn_model_free(mg);
    } else {
        th_skip("mini UNet cuda~cpu: no CUDA device");
    }
    out_free(&plain), out_free(&ck), out_free(&one), out_free(&four), out_free(&inf);
    rhd_nn_model_free(m), rhd_nn_model_free(mc), rhd_nn_model_free(mi);
    rhd_st_close(st);
    free(in.x), free(in.t), free(in.enc), free(in.dy);
    if (gpu) rhd_ctx_close(gpu);
    rhd_ctx_close(cpu);
    return th_done();
}
