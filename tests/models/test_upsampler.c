/* tests/models/test_upsampler.c: the TriplaneUpsampler (common/models/upsampler.h) against the
 * independent PyTorch reference tests/ref/ref_upsampler.py, weights shared through a safetensors
 * file that the reference loads with load_state_dict(strict=True):
 *   - the official configuration's size without allocating: 80,433,056 parameters (spec §5.1);
 *   - forward, dx, dlow and every parameter gradient at a small config (batch 2, planes 8 from a 4x4
 *     condition, so the bicubic resize, both strided downs and both align_corners ups run), errors
 *     printed per output and the worst tensor;
 *   - §10.2: the never-trained cross-attention tensors get exactly zero gradient;
 *   - central finite differences on dx, dlow and some parameters;
 *   - gradient checkpointing of every ResnetBlock: bitwise the same output and gradients;
 *   - state dicts with a missing, an extra or a wrongly shaped tensor are refused by name;
 *   - JSON overrides and presets; CUDA against the CPU where a device exists. */
#include "refcheck.h"
#include "common/models/upsampler.h"
#include "formats/params_io.h"

enum { N = 2, R = 8, RL = 4 };

typedef struct inputs {
    float *x, *t, *ref, *low, *dy;
    long nx, nref, nlow;
} inputs;

typedef struct outputs {
    float *y, *dx, *dlow, *grad;
} outputs;

static rhd_ups_config k_cfg;


/* One training pass on m's context: outputs downloaded. */
static void step(rhd_upsampler *m, const inputs *in, outputs *o) {
    rhd_ctx *ctx = m->base.params.ctx;
    float *x = th_up(ctx, in->x, in->nx), *t = th_up(ctx, in->t, N), *ref = th_up(ctx, in->ref, in->nref);
    float *low = th_up(ctx, in->low, in->nlow), *dy = th_up(ctx, in->dy, in->nx);
    rhd_ups_io io = {.N = N, .R = R, .r = RL, .x = x, .t = t, .ref = ref, .low = low, .dy = dy};
    rhd_nn_model_zero_grad(&m->base);
    rhd_nn_model_forward(&m->base, &io, 1);
    rhd_nn_model_backward(&m->base, &io);
    o->y = th_down(ctx, io.y, in->nx), o->dx = th_down(ctx, io.dx, in->nx), o->dlow = th_down(ctx, io.dlow, in->nlow);
    o->grad = th_down(ctx, m->base.params.grad, m->base.params.total);
    rhd_buf_free(ctx, x), rhd_buf_free(ctx, t), rhd_buf_free(ctx, ref), rhd_buf_free(ctx, low), rhd_buf_free(ctx, dy);
}

static void out_free(outputs *o) { free(o->y), free(o->dx), free(o->dlow), free(o->grad); }

typedef struct fd {
    rhd_upsampler *m;
    inputs *in;
} fd;

static double fd_loss(void *u) {
    fd *f = u;
    rhd_ups_io io = {.N = N, .R = R, .r = RL, .x = f->in->x, .t = f->in->t, .ref = f->in->ref, .low = f->in->low};
    rhd_nn_model_forward(&f->m->base, &io, 0);
    double s = 0;
    for (long i = 0; i < f->in->nx; i++) s += (double)io.y[i] * f->in->dy[i];
    return s;
}

static rhd_upsampler *create(rhd_ctx *ctx, const rhd_ups_config *c, const rhd_st *st) {
    rhd_err e;
    rhd_upsampler *m = rhd_ups_create(c, ctx, st, "", 1, &e);
    if (!m) th_diag("%s", e.msg), exit(1);
    return m;
}

static void write_cfg(const char *dir, const rhd_ups_config *c) {
    char path[1200];
    snprintf(path, sizeof path, "%s/cfg.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) th_diag("cannot write %s", path), exit(1);
    fprintf(f, "{\"in_ch\":%d,\"out_ch\":%d,\"cond_ch\":%d,\"n_feats\":%d,\"ch_mult\":[", c->in_ch, c->out_ch,
            c->cond_ch, c->n_feats);
    for (int i = 0; i < c->nlevels; i++) fprintf(f, "%s%d", i ? "," : "", c->ch_mult[i]);
    fprintf(f, "],\"num_res_blocks\":%d,\"n_resblocks\":%d,\"temb_ch\":%d,\"temb_dim\":%d,\"latent_ch\":%d,"
               "\"latent_size\":%d,\"patch\":%d,\"embed_dim\":%d,\"pool_heads\":%d,\"latent_scale\":%.9g,"
               "\"groups\":%d,\"eps\":%.9g,\"attn_eps\":%.9g,\"ln_eps\":%.9g,\"head_ch\":%d}\n",
            c->num_res_blocks, c->n_resblocks, c->temb_ch, c->temb_dim, c->latent_ch, c->latent_size, c->patch,
            c->embed_dim, c->pool_heads, c->latent_scale, c->groups, c->eps, c->attn_eps, c->ln_eps, c->head_ch);
    fclose(f);
}

/* A state dict of m's table with one change: drop tensor `drop`, add an extra one, or reshape. */
static int write_st(const rhd_params *p, const char *path, const char *drop, const char *extra) {
    rhd_st_writer w;
    rhd_err e;
    rhd_st_writer_init(&w);
    for (int i = 0; i < p->n; i++) {
        const rhd_param_info *t = &p->info[i];
        if (drop && !strcmp(t->name, drop)) continue;
        rhd_st_add_f32(&w, t->name, RHD_F32, t->ndim, t->shape, p->data + t->offset);
    }
    if (extra) {
        int64_t s1[1] = {4};
        rhd_st_add_f32(&w, extra, RHD_F32, 1, s1, p->data);
    }
    int rc = rhd_st_write(&w, path, &e);
    if (rc) th_diag("%s", e.msg);
    rhd_st_writer_free(&w);
    return rc;
}

/* Every parameter gradient against the reference's, per tensor, relative to the larger of the
 * tensor's and 1e-3 of the largest gradient (floors the analytically zero ones, §10.3). */
static void compare_grads(const rhd_params *p, const float *g, const rhd_st *ref, double tol) {
    double gmax = 0, worst = 0;
    int worst_i = -1, missing = 0;
    for (long i = 0; i < p->total; i++) gmax = fmax(gmax, fabs(g[i]));
    for (int i = 0; i < p->n; i++) {
        const rhd_param_info *t = &p->info[i];
        const rhd_st_tensor *rt = rhd_st_find(ref, t->name);
        if (!rt || rt->numel != t->numel) { missing++; continue; }
        float *rv = malloc(sizeof(float) * t->numel);
        rhd_st_to_f32(rt, rv);
        double scale = 1e-3 * gmax, err = 0;
        for (long k = 0; k < t->numel; k++) scale = fmax(scale, fabs(rv[k]));
        for (long k = 0; k < t->numel; k++) err = fmax(err, fabs(g[t->offset + k] - rv[k]));
        if (err / scale > worst) worst = err / scale, worst_i = i;
        free(rv);
    }
    th_ok(!missing && worst <= tol, "every parameter gradient (%d tensors) vs PyTorch: worst max|err|/scale %.2e at %s "
          "(tol %.0e, %d missing)", p->n, worst, worst_i >= 0 ? p->info[worst_i].name : "-", tol, missing);
}

/* §10.2: body.*.norm.*, body.*.qkv.* and the key half of body.*.encoder_kv get exactly zero. */
static void zero_grads(const rhd_upsampler *m, const float *g) {
    const rhd_params *p = &m->base.params;
    long nz = 0, checked = 0;
    for (int gi = 0; gi < m->cfg.n_resblocks / 2; gi++) {
        const rhd_nn_attn *a = &m->body_attn[gi];
        int ids[4] = {a->norm.w, a->norm.b, a->qkv.w, a->qkv.b};
        for (int k = 0; k < 4; k++) {
            const rhd_param_info *t = &p->info[ids[k]];
            for (long q = 0; q < t->numel; q++) nz += g[t->offset + q] != 0.f, checked++;
        }
        const int C = a->cfg.C, d = C / a->cfg.heads;
        const rhd_param_info *w = &p->info[a->ekv.w], *b = &p->info[a->ekv.b];
        for (int row = 0; row < 2 * C; row++) {
            if (row % (2 * d) >= d) continue; /* value rows */
            for (int q = 0; q < C; q++) nz += g[w->offset + (long)row * C + q] != 0.f, checked++;
            nz += g[b->offset + row] != 0.f, checked++;
        }
    }
    th_ok(nz == 0 && checked > 0, "never-trained cross-attention tensors (norm, qkv, key half of encoder_kv): "
          "%ld of %ld gradient entries nonzero", nz, checked);
}

static void test_configs(void) {
    rhd_ups_config c;
    int64_t np;
    int nt;
    rhd_ups_config_official(&c);
    rhd_ups_count(&c, &np, &nt);
    th_ok(np == 80433056 && nt == 438, "official config: %lld parameters (expected 80,433,056), %d tensors "
          "(expected 438 = spec §5.1; §10.1 says 436)", (long long)np, nt);
    rhd_err e;
    int rc = rhd_ups_config_preset(&c, "small", &e);
    th_ok(rc == 0 && c.n_feats == 32, "preset small: n_feats %d", c.n_feats);
    th_ok(rhd_ups_config_preset(&c, "tiny", &e) < 0 && strstr(e.msg, "'tiny'"), "unknown preset: %s", e.msg);
    const char *js = "{\"n_feats\": 32, \"ch_mult\": [1, 4], \"checkpoint\": 1}";
    rhd_ups_config_official(&c);
    th_ok(rhd_ups_config_from_json(&c, js, strlen(js), "o.json", &e) == 0 && c.nlevels == 2 && c.ch_mult[1] == 4 &&
              c.checkpoint == 1 && c.n_feats == 32, "JSON overrides applied");
    const char *bad[] = {"{\"n_feat\": 32}", "{\"n_feats\": 33}", "{\"eps\": \"x\"}", "[1]"};
    const char *want[] = {"unknown key 'n_feat'", "multiple of groups", "'eps' is not a number", "not a JSON object"};
    for (int i = 0; i < 4; i++) {
        rhd_ups_config_official(&c);
        int rc = rhd_ups_config_from_json(&c, bad[i], strlen(bad[i]), "o.json", &e);
        th_ok(rc < 0 && strstr(e.msg, want[i]) && strstr(e.msg, "o.json"), "bad overrides %s: %s", bad[i],
              rc < 0 ? e.msg : "(accepted)");
    }
    rhd_ups_config_official(&c);
    th_ok(rhd_ups_check_size(&c, 6, 4, &e) < 0 && strstr(e.msg, "multiple of 4"), "plane size 6 refused: %s", e.msg);
}

static void test_bad_state_dicts(rhd_ctx *cpu, const rhd_upsampler *src, const char *dir) {
    char path[1200];
    rhd_err e;
    struct { const char *drop, *extra, *want; } k[] = {
        {"body.1.proj_out.weight", NULL, "body.1.proj_out.weight"},
        {NULL, "down.0.block.0.extra.bias", "'down.0.block.0.extra.bias' is not a parameter"},
    };
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/bad%d.safetensors", dir, i);
        if (write_st(&src->base.params, path, k[i].drop, k[i].extra)) exit(1);
        rhd_st *st;
        if (rhd_st_open(path, &st, &e)) th_diag("%s", e.msg), exit(1);
        rhd_upsampler *m = rhd_ups_create(&k_cfg, cpu, st, "", 0, &e);
        th_ok(!m && strstr(e.msg, k[i].want), "state dict with %s refused: %s", k[i].drop ? "a missing tensor" :
              "an extra tensor", m ? "(accepted)" : e.msg);
        if (m) rhd_nn_model_free(&m->base);
        rhd_st_close(st);
    }
    snprintf(path, sizeof path, "%s/params.safetensors", dir);
    rhd_st *st;
    if (rhd_st_open(path, &st, &e)) th_diag("%s", e.msg), exit(1);
    rhd_ups_config c = k_cfg;
    c.embed_dim = 64;
    rhd_upsampler *m = rhd_ups_create(&c, cpu, st, "", 0, &e);
    th_ok(!m && strstr(e.msg, "conv1.weight"), "state dict of another embed_dim refused by name: %s",
          m ? "(accepted)" : e.msg);
    if (m) rhd_nn_model_free(&m->base);
    rhd_st_close(st);
}

int main(void) {
    rhd_ctx *cpu, *gpu;
    th_open_backends(&cpu, &gpu);
    rhd_ups_config_small(&k_cfg);
    test_configs();

    inputs in = {0};
    in.nx = (long)N * k_cfg.in_ch * R * 3 * R, in.nref = (long)N * k_cfg.latent_ch * 16 * 16;
    in.nlow = (long)N * k_cfg.cond_ch * RL * 3 * RL;
    in.x = th_randn(in.nx, 1), in.t = th_randu(N, 0, 99), in.ref = th_randn(in.nref, 4);
    in.low = th_randn(in.nlow, 0.5f), in.dy = th_randn(in.nx, 1);

    rhd_upsampler *src = create(cpu, &k_cfg, NULL);
    float *w = th_randn(src->base.params.total, 0.05f);
    rhd_buf_upload(cpu, src->base.params.data, w, sizeof(float) * src->base.params.total);
    const char *dir = th_subdir("upsampler");
    char path[1200];
    snprintf(path, sizeof path, "%s/params.safetensors", dir);
    th_ok(write_st(&src->base.params, path, NULL, NULL) == 0, "small upsampler state dict written (%d tensors, %lld "
          "parameters)", src->base.params.n, (long long)rhd_params_count(&src->base.params));
    write_cfg(dir, &k_cfg);
    test_bad_state_dicts(cpu, src, dir);
    rhd_st *st;
    rhd_err e;
    if (rhd_st_open(path, &st, &e)) th_diag("%s", e.msg), exit(1);
    rhd_upsampler *m = create(cpu, &k_cfg, st);

    outputs o, ck;
    step(m, &in, &o);
    int64_t sx[4] = {N, k_cfg.in_ch, R, 3 * R}, sref[4] = {N, k_cfg.latent_ch, 16, 16}, st1[1] = {N};
    int64_t slow[4] = {N, k_cfg.cond_ch, RL, 3 * RL};
    th_save(dir, "x", in.x, 4, sx), th_save(dir, "t", in.t, 1, st1), th_save(dir, "ref", in.ref, 4, sref);
    th_save(dir, "low", in.low, 4, slow), th_save(dir, "dy", in.dy, 4, sx);
    if (th_ref("ref_upsampler.py", "%s", dir) == 0) {
        float *y = th_load(dir, "y", in.nx), *dx = th_load(dir, "dx", in.nx), *dlow = th_load(dir, "dlow", in.nlow);
        th_close("upsampler y vs PyTorch", o.y, y, in.nx, 1e-9);
        th_close("upsampler dx vs PyTorch", o.dx, dx, in.nx, 1e-9);
        th_close("upsampler dlow vs PyTorch", o.dlow, dlow, in.nlow, 1e-9);
        snprintf(path, sizeof path, "%s/grads.safetensors", dir);
        rhd_st *gs;
        if (rhd_st_open(path, &gs, &e) == 0) {
            compare_grads(&m->base.params, o.grad, gs, 2e-3);
            rhd_st_close(gs);
        } else {
            th_ok(0, "reference gradients: %s", e.msg);
        }
        free(y), free(dx), free(dlow);
    } else {
        th_ok(0, "the PyTorch reference ran");
    }
    zero_grads(m, o.grad);

    fd f = {m, &in};
    th_fd_check("upsampler dx", fd_loss, &f, in.x, o.dx, in.nx, 4, 1e-2, 2e-2, 3e-2);
    th_fd_check("upsampler dlow", fd_loss, &f, in.low, o.dlow, in.nlow, 4, 1e-2, 2e-2, 3e-2);
    const char *names[] = {"conv1.weight", "encoder_pooling.1.v_proj.weight", "body.1.proj_out.bias",
                           "up.1.upsample.conv.weight", "down.0.downsample.conv.bias",
                           "tail.0.conv2.out_layers2.weight", "out.nin_shortcut.weight", "time_embed.0.weight"};
    for (int k = 0; k < 8; k++) {
        int i = rhd_params_find(&m->base.params, names[k]);
        const rhd_param_info *t = &m->base.params.info[i];
        char what[160];
        snprintf(what, sizeof what, "upsampler d[%s]", names[k]);
        th_fd_check(what, fd_loss, &f, m->base.params.data + t->offset, o.grad + t->offset, t->numel, 3, 2e-2, 2e-2,
                    3e-2);
    }

    rhd_ups_config cc = k_cfg;
    cc.checkpoint = 1;
    rhd_upsampler *mc = create(cpu, &cc, st);
    step(mc, &in, &ck);
    const long P = m->base.params.total;
    int same = !memcmp(ck.y, o.y, sizeof(float) * in.nx) && !memcmp(ck.dx, o.dx, sizeof(float) * in.nx) &&
               !memcmp(ck.dlow, o.dlow, sizeof(float) * in.nlow) && !memcmp(ck.grad, o.grad, sizeof(float) * P);
    th_ok(same, "checkpointing every ResnetBlock: output, dx, dlow and every gradient bit-identical");
    th_ok(mc->base.run.arena->cap < m->base.run.arena->cap, "checkpointed arena %zu bytes < plain %zu",
          mc->base.run.arena->cap, m->base.run.arena->cap);
    if (gpu) {
        outputs g;
        rhd_upsampler *mg = create(gpu, &k_cfg, st);
        step(mg, &in, &g);
        th_close("upsampler cuda~cpu y", g.y, o.y, in.nx, 1e-8);
        th_close("upsampler cuda~cpu dx", g.dx, o.dx, in.nx, 1e-8);
        th_close("upsampler cuda~cpu dlow", g.dlow, o.dlow, in.nlow, 1e-8);
        th_close("upsampler cuda~cpu parameter gradients", g.grad, o.grad, P, 1e-8);
        out_free(&g);
        rhd_nn_model_free(&mg->base);
    } else {
        th_skip("upsampler cuda~cpu: no CUDA device");
    }
    out_free(&o), out_free(&ck);
    rhd_nn_model_free(&m->base), rhd_nn_model_free(&mc->base), rhd_nn_model_free(&src->base);
    rhd_st_close(st);
    free(w), free(in.x), free(in.t), free(in.ref), free(in.low), free(in.dy);
    if (gpu) rhd_ctx_close(gpu);
    rhd_ctx_close(cpu);
    return th_done();
}
