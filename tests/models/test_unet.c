/* tests/models/test_unet.c: the base UNet of common/models/unet.h.
 *   - the official config (preset and a JSON file) counts 366,823,360 parameters (spec §2.7);
 *   - at two small configs exercising every block kind (3D-aware ResBlocks, down/up ResBlocks,
 *     joint attention with each token set, skip concatenation, the global embedding; the second
 *     with other groups/heads/levels and checkpointing), the forward output, dx and the gradient of
 *     every parameter against tests/ref/ref_unet.py (an independent PyTorch implementation loaded
 *     with strict=True from the same random weights); gradients compared per tensor with a floor
 *     relative to the tensor group's scale (§10.3's analytically zero gradients);
 *   - finite-difference spot checks of dx and some parameters;
 *   - bad input: missing, extra, wrong-shaped tensors, wrong feature shapes or count, a triplane
 *     that does not fit, a bad JSON key: errors naming the tensor;
 *   - CUDA against the CPU where a device exists. */
#include "refcheck.h"
#include "common/models/unet.h"
#include "common/rng.h"
#include "formats/params_io.h"

enum { N = 2 };

typedef struct data {
    rhd_unet_config c;
    float *x, *t, *ref, *F[3], *dy;
    long nx, ny, nref, nF[3];
} data;

static void data_make(data *d, const rhd_unet_config *c) {
    d->c = *c;
    const long R = c->image_size;
    d->nx = N * c->in_channels * R * 3 * R, d->ny = N * c->out_channels * R * 3 * R;
    d->nref = (long)N * c->latent_ch * c->latent_size * c->latent_size;
    d->x = th_randn(d->nx, 1), d->t = th_randu(N, 0, 999), d->ref = th_randn(d->nref, 1), d->dy = th_randn(d->ny, 1);
    for (int i = 0; i < 3; i++) {
        d->nF[i] = (long)N * c->feat_ch[i] * c->feat_size[i] * c->feat_size[i];
        d->F[i] = th_randn(d->nF[i], 1);
    }
}

static void data_free(data *d) {
    free(d->x), free(d->t), free(d->ref), free(d->dy);
    for (int i = 0; i < 3; i++) free(d->F[i]);
}

static void data_save(const data *d, const char *dir) {
    const rhd_unet_config *c = &d->c;
    int64_t R = c->image_size, sx[4] = {N, c->in_channels, R, 3 * R}, sy[4] = {N, c->out_channels, R, 3 * R};
    int64_t st[1] = {N}, sr[4] = {N, c->latent_ch, c->latent_size, c->latent_size};
    th_save(dir, "x", d->x, 4, sx), th_save(dir, "dy", d->dy, 4, sy), th_save(dir, "t", d->t, 1, st);
    th_save(dir, "ref", d->ref, 4, sr);
    for (int i = 0; i < 3; i++) {
        int64_t sf[4] = {N, c->feat_ch[i], c->feat_size[i], c->feat_size[i]};
        char nm[8];
        snprintf(nm, sizeof nm, "F%d", i);
        th_save(dir, nm, d->F[i], 4, sf);
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
#define ARR(a, n) fprintf(f, "["), ({ for (int i_ = 0; i_ < (n); i_++) fprintf(f, "%s%d", i_ ? "," : "", (a)[i_]); }), fprintf(f, "]")
    fprintf(f, "{\"image_size\":%d,\"in_channels\":%d,\"out_channels\":%d,\"model_channels\":%d,\"channel_mult\":",
            c->image_size, c->in_channels, c->out_channels, c->model_channels);
    ARR(c->channel_mult, c->nlevels);
    fprintf(f, ",\"num_res_blocks\":%d,\"attention_resolutions\":", c->num_res_blocks);
    ARR(c->attn_res, c->nattn);
    fprintf(f, ",\"num_head_channels\":%d,\"aware3d_levels\":%d,\"groups\":%d,\"eps\":%g,\"xf_width\":%d,"
               "\"latent_channels\":%d,\"latent_scale\":%.9g,\"patch\":%d,\"pool_width\":%d,\"pool_heads\":%d,"
               "\"feature_groups\":%d,\"feature_channels\":", c->num_head_channels, c->aware3d_levels, c->groups,
            c->eps, c->xf_width, c->latent_ch, c->latent_scale, c->patch, c->pool_width, c->pool_heads, c->feat_groups);
    ARR(c->feat_ch, 3);
    fprintf(f, ",\"feature_kernels\":");
    ARR(c->feat_kernel, 3);
    fprintf(f, ",\"feature_heights\":");
    ARR(c->feat_height, 3);
    fprintf(f, "}\n");
#undef ARR
    fclose(f);
}

typedef struct result {
    float *y, *dx, *grad;
} result;

static void result_free(result *o) { free(o->y), free(o->dx), free(o->grad); }

/* One training pass (forward + backward of sum(y * dy)) on m's context. */
static void pass(rhd_unet *m, const data *d, result *o) {
    rhd_ctx *ctx = m->base.params.ctx;
    const float *h[8] = {d->x, d->t, d->ref, d->F[0], d->F[1], d->F[2], d->dy};
    long n[8] = {d->nx, N, d->nref, d->nF[0], d->nF[1], d->nF[2], d->ny};
    float *dv[8];
    for (int i = 0; i < 7; i++) {
        dv[i] = rhd_buf_alloc(ctx, sizeof(float) * n[i]);
        rhd_buf_upload(ctx, dv[i], h[i], sizeof(float) * n[i]);
    }
    rhd_unet_io io = {.N = N, .x = dv[0], .t = dv[1], .ref = dv[2], .F = {dv[3], dv[4], dv[5]}, .dy = dv[6]};
    rhd_nn_model_zero_grad(&m->base);
    m->base.run.seed = 7, m->base.run.stream = RHD_STREAM(RHD_STREAM_DROPOUT, 1);
    rhd_unet_forward(m, &io, 1);
    rhd_unet_backward(m, &io);
    o->y = malloc(sizeof(float) * d->ny), o->dx = malloc(sizeof(float) * d->nx);
    o->grad = malloc(sizeof(float) * m->base.params.total);
    rhd_buf_download(ctx, o->y, io.y, sizeof(float) * d->ny);
    rhd_buf_download(ctx, o->dx, io.dx, sizeof(float) * d->nx);
    rhd_buf_download(ctx, o->grad, m->base.params.grad, sizeof(float) * m->base.params.total);
    for (int i = 0; i < 7; i++) rhd_buf_free(ctx, dv[i]);
}

static double maxabs(const float *a, long n) {
    double m = 0;
    for (long i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* group of a name: without its last two components ("a.b.c.weight" -> "a.b") */
static void group_of(const char *name, char *g, size_t n) {
    snprintf(g, n, "%s", name);
    for (int k = 0; k < 2; k++) {
        char *dot = strrchr(g, '.');
        if (dot) *dot = 0;
    }
}

static void compare_grads(const char *what, const rhd_params *p, const float *grad, const rhd_st *ref) {
    double worst = 0;
    const char *wname = "";
    int missing = 0;
    for (int i = 0; i < p->n; i++) {
        const rhd_param_info *t = &p->info[i];
        const rhd_st_tensor *rt = rhd_st_find(ref, t->name);
        if (!rt || rt->numel != t->numel) { missing++; continue; }
        float *gr = malloc(sizeof(float) * t->numel);
        rhd_st_to_f32(rt, gr);
        char g[RHD_PARAM_NAME_MAX], g2[RHD_PARAM_NAME_MAX];
        group_of(t->name, g, sizeof g);
        double gscale = 0;
        for (int j = 0; j < p->n; j++) {
            group_of(p->info[j].name, g2, sizeof g2);
            if (strcmp(g, g2)) continue;
            const rhd_st_tensor *r2 = rhd_st_find(ref, p->info[j].name);
            if (!r2) continue;
            float *tmp = malloc(sizeof(float) * r2->numel);
            rhd_st_to_f32(r2, tmp);
            gscale = fmax(gscale, maxabs(tmp, r2->numel));
            free(tmp);
        }
        double err = 0;
        for (long k = 0; k < t->numel; k++) err = fmax(err, fabs(grad[t->offset + k] - gr[k]));
        double rel = err / fmax(fmax(maxabs(gr, t->numel), 1e-2 * gscale), 1e-30);
        if (rel > worst) worst = rel, wname = t->name;
        free(gr);
    }
    th_ok(!missing && worst < 1e-2, "%s: gradients of all %d parameter tensors vs PyTorch: worst max-abs error relative to "
          "max(tensor scale, 1e-2 group scale) %.2e (%s), tol 1e-2, %d missing", what, p->n, worst, wname, missing);
}

static rhd_unet *random_model(rhd_ctx *ctx, const rhd_unet_config *c, const char *dir, const char *prefix) {
    rhd_err e;
    rhd_unet *m = rhd_unet_create(c, ctx, NULL, 1, &e);
    if (!m) th_diag("%s", e.msg), exit(1);
    float *w = th_randn(m->base.params.total, 0.15f);
    rhd_buf_upload(ctx, m->base.params.data, w, sizeof(float) * m->base.params.total);
    free(w);
    rhd_st_writer wr;
    rhd_st_writer_init(&wr);
    rhd_params_to_writer(&m->base.params, RHD_PBUF_DATA, prefix, &wr);
    char path[1200];
    snprintf(path, sizeof path, "%s/params.safetensors", dir);
    if (rhd_st_write(&wr, path, &e)) th_diag("%s", e.msg), exit(1);
    rhd_st_writer_free(&wr);
    return m;
}

typedef struct fdctx {
    rhd_unet *m;
    data *d;
} fdctx;

static double fd_loss(void *u) {
    fdctx *f = u;
    rhd_unet_io io = {.N = N, .x = f->d->x, .t = f->d->t, .ref = f->d->ref, .F = {f->d->F[0], f->d->F[1], f->d->F[2]}};
    rhd_unet_forward(f->m, &io, 0);
    double s = 0;
    for (long i = 0; i < f->d->ny; i++) s += (double)io.y[i] * f->d->dy[i];
    return s;
}

/* A state dict with one change; the create must fail naming `want`. */
static void bad_st(rhd_ctx *cpu, const rhd_unet_config *c, const rhd_unet *m, const char *dir, const char *drop,
                   const char *extra, const char *reshape, const char *what, const char *want) {
    rhd_st_writer wr;
    rhd_err e = {0};
    rhd_st_writer_init(&wr);
    const rhd_params *p = &m->base.params;
    for (int i = 0; i < p->n; i++) {
        const rhd_param_info *t = &p->info[i];
        if (drop && !strcmp(t->name, drop)) continue;
        int64_t shape[RHD_MAX_DIMS];
        memcpy(shape, t->shape, sizeof(int64_t) * t->ndim);
        int ndim = t->ndim;
        if (reshape && !strcmp(t->name, reshape)) shape[0] = 1, shape[1] = t->numel / 1, ndim = 2;
        rhd_st_add_f32(&wr, t->name, RHD_F32, ndim, shape, rhd_param(p, i));
    }
    float one = 1;
    int64_t s1[1] = {1};
    if (extra) rhd_st_add_f32(&wr, extra, RHD_F32, 1, s1, &one);
    char path[1200];
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    rhd_st_write(&wr, path, &e);
    rhd_st_writer_free(&wr);
    rhd_st *st;
    if (rhd_st_open(path, &st, &e)) { th_ok(0, "%s: %s", what, e.msg); return; }
    rhd_unet *b = rhd_unet_create(c, cpu, st, 0, &e);
    th_ok(!b && strstr(e.msg, want), "%s is refused naming it: %s", what, b ? "(accepted)" : e.msg);
    rhd_unet_free(b);
    rhd_st_close(st);
}

static void bad_inputs(rhd_ctx *cpu, const rhd_unet_config *c, const rhd_unet *m, const char *dir) {
    bad_st(cpu, c, m, dir, "middle_block.1.qkv.weight", NULL, NULL, "a state dict without middle_block.1.qkv.weight",
           "middle_block.1.qkv.weight");
    bad_st(cpu, c, m, dir, NULL, "input_blocks.1.0.extra", NULL, "a state dict with an extra tensor",
           "input_blocks.1.0.extra");
    bad_st(cpu, c, m, dir, NULL, NULL, "conv1.weight", "a wrong-shaped conv1.weight", "conv1.weight");
    rhd_err e = {0};
    const int64_t R = c->image_size;
    int64_t x[4] = {N, c->in_channels, R, 3 * R}, ref[4] = {N, c->latent_ch, c->latent_size, c->latent_size}, F[3][4];
    for (int i = 0; i < 3; i++) F[i][0] = N, F[i][1] = c->feat_ch[i], F[i][2] = F[i][3] = c->feat_size[i];
    th_ok(!rhd_unet_check_inputs(c, x, ref, F, 3, &e), "the right input shapes pass the check");
    F[1][2] = F[1][3] = 2 * c->feat_size[1];
    th_ok(rhd_unet_check_inputs(c, x, ref, F, 3, &e) && strstr(e.msg, "feature map F1"), "a wrong-shaped F1: %s", e.msg);
    F[1][2] = F[1][3] = c->feat_size[1];
    th_ok(rhd_unet_check_inputs(c, x, ref, F, 2, &e) && strstr(e.msg, "expected 3"), "two feature maps: %s", e.msg);
    x[2] = 2 * R, x[3] = 6 * R;
    th_ok(rhd_unet_check_inputs(c, x, ref, F, 3, &e) && strstr(e.msg, "triplane x"), "a triplane of another size: %s", e.msg);
    rhd_unet_config j = *c;
    const char *bad = "{\"channel_mul\": [1,2]}";
    th_ok(rhd_unet_config_from_json(&j, bad, strlen(bad), "bad.json", &e) && strstr(e.msg, "channel_mul"),
          "an unknown JSON key: %s", e.msg);
}

/* pipelines/convert_checkpoint.py on a PyTorch state dict of the reference model ('decoder.' names,
 * saved with torch.save): the converted file loads and gives the reference's forward output. */
static void check_convert(rhd_ctx *cpu, const data *d, const char *dir) {
    const char *py = getenv("RHD_PY"), *root = getenv("RHD_ROOT");
    if (th_ref("ref_unet.py", "statedict %s", dir) ||
        th_sh("%s %s/pipelines/convert_checkpoint.py %s/model.pt -o %s/conv.safetensors --step 7 >/dev/null",
              py && *py ? py : "python3", root && *root ? root : ".", dir, dir)) {
        th_ok(0, "convert_checkpoint.py on the reference's model.pt ran");
        return;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/conv.safetensors", dir);
    rhd_st *st;
    rhd_err e = {0};
    if (rhd_st_open(path, &st, &e)) { th_ok(0, "%s", e.msg); return; }
    const char *kind = rhd_st_meta(st, "rhd.kind"), *step = rhd_st_meta(st, "rhd.step");
    rhd_unet *m = rhd_unet_create(&d->c, cpu, st, 0, &e);
    th_ok(m && kind && !strcmp(kind, "checkpoint") && step && !strcmp(step, "7"),
          "the converted checkpoint (kind %s, step %s) loads by name: %s", kind ? kind : "-", step ? step : "-",
          m ? "ok" : e.msg);
    if (m) {
        rhd_unet_io io = {.N = N, .x = d->x, .t = d->t, .ref = d->ref, .F = {d->F[0], d->F[1], d->F[2]}};
        rhd_unet_forward(m, &io, 0);
        float *y = th_load(dir, "y_pt", d->ny);
        if (y) th_close("converted checkpoint: inference forward vs the PyTorch module's", io.y, y, d->ny, 1e-8);
        free(y);
        rhd_unet_free(m);
    }
    rhd_st_close(st);
}

static void check_config(rhd_ctx *cpu, rhd_ctx *gpu, const char *name, const rhd_unet_config *c, const char *prefix,
                         int fd) {
    const char *dir = th_subdir(name);
    data d;
    data_make(&d, c);
    data_save(&d, dir);
    rhd_unet *src = random_model(cpu, c, dir, prefix);
    char path[1200];
    snprintf(path, sizeof path, "%s/params.safetensors", dir);
    rhd_st *st;
    rhd_err e;
    if (rhd_st_open(path, &st, &e)) th_diag("%s", e.msg), exit(1);
    rhd_unet *m = rhd_unet_create(c, cpu, st, 1, &e);
    th_ok(m != NULL, "%s: created from a state dict with prefix '%s' (%d tensors, %lld parameters): %s", name, prefix,
          src->base.params.n, (long long)rhd_params_count(&src->base.params), m ? "ok" : e.msg);
    if (!m) exit(1);
    th_diag("%s: activation arena for a training pass at batch %d: %.1f MB", name, N,
            rhd_unet_arena_bytes(m, N, 1) / 1e6);
    result o;
    pass(m, &d, &o);
    if (th_ref("ref_unet.py", "run %s", dir) == 0) {
        float *y = th_load(dir, "y", d.ny), *dx = th_load(dir, "dx", d.nx);
        th_close("forward y vs PyTorch", o.y, y, d.ny, 1e-8);
        th_close("dx vs PyTorch", o.dx, dx, d.nx, 1e-8);
        snprintf(path, sizeof path, "%s/grads.safetensors", dir);
        rhd_st *g;
        if (rhd_st_open(path, &g, &e)) th_ok(0, "%s", e.msg);
        else compare_grads(name, &m->base.params, o.grad, g), rhd_st_close(g);
        free(y), free(dx);
    } else {
        th_ok(0, "%s: reference ran", name);
    }
    if (fd && !getenv("UNET_NO_FD")) {
        fdctx f = {m, &d};
        th_fd_check("UNet dx", fd_loss, &f, d.x, o.dx, d.nx, 6, 2e-2, 3e-2, 0.05 * maxabs(o.dx, d.nx));
        /* the first tensor whose name contains each of these */
        const char *names[] = {"time_embed.0.weight", "out_layers2.weight", "encoder_kv.weight", "q_proj.weight",
                               "vae_ms_feature_proj_32.weight", "output_blocks.", "out.2.bias"};
        for (int k = 0; k < 7; k++) {
            int i = -1;
            for (int j = 0; j < m->base.params.n && i < 0; j++)
                if (strstr(m->base.params.info[j].name, names[k]) && (k != 5 || strstr(m->base.params.info[j].name, "in_layers.2.weight")))
                    i = j;
            if (i < 0) { th_ok(0, "a parameter named *%s* exists", names[k]); continue; }
            const rhd_param_info *t = &m->base.params.info[i];
            char what[160];
            snprintf(what, sizeof what, "UNet d[%s]", t->name);
            /* at the entry with the largest gradient: fp32 noise of the loss is ~1e-4, i.e. ~1e-3 on the
             * difference quotient at h 5e-2, hence the floor 1e-2 and tol 5e-2 (a largest gradient of
             * 0.012 missed 3e-2 with floor 1e-3 by its noise alone, seed 1942767943; a gradient off by 2x
             * still scores ~0.25); small gradients are checked against PyTorch above */
            long am = 0;
            for (long q = 0; q < t->numel; q++)
                if (fabsf(o.grad[t->offset + q]) > fabsf(o.grad[t->offset + am])) am = q;
            th_fd_check(what, fd_loss, &f, m->base.params.data + t->offset + am, o.grad + t->offset + am, 1, 1, 5e-2,
                        5e-2, 1e-2);
        }
    }
    if (gpu) {
        rhd_unet *mg = rhd_unet_create(c, gpu, st, 1, &e);
        /* strict fp32; --tf32: products rounded to a 10-bit mantissa (relative ~5e-4 each), fp32
         * sums, the normalized squared error stays around 1e-6 through the network; --bf16: conv
         * and matmul inputs rounded to an 8-bit mantissa (16x TF32's squared error), conv outputs
         * too, the rest fp32: tolerances 10x TF32's */
        static const struct { const char *tag; int tf32, bf16; double ty, tg; } modes[] = {
            {"cuda", 0, 0, 1e-8, 1e-8}, {"cuda TF32", 1, 0, 1e-4, 1e-3}, {"cuda BF16", 0, 1, 1e-3, 1e-2}};
        for (int k = 0; k < 3; k++) {
            char what[64];
            result og;
            rhd_ctx_set_tf32(gpu, modes[k].tf32);
            rhd_ctx_set_bf16(gpu, modes[k].bf16);
            pass(mg, &d, &og);
            snprintf(what, sizeof what, "%s~cpu y", modes[k].tag);
            th_close(what, og.y, o.y, d.ny, modes[k].ty);
            snprintf(what, sizeof what, "%s~cpu dx", modes[k].tag);
            th_close(what, og.dx, o.dx, d.nx, modes[k].tg);
            snprintf(what, sizeof what, "%s~cpu parameter gradients", modes[k].tag);
            th_close(what, og.grad, o.grad, m->base.params.total, modes[k].tg);
            result_free(&og);
        }
        rhd_ctx_set_tf32(gpu, 0);
        rhd_ctx_set_bf16(gpu, 0);
        rhd_unet_free(mg);
    } else {
        th_skip("%s cuda~cpu: no CUDA device", name);
    }
    if (fd) bad_inputs(cpu, c, m, dir), check_convert(cpu, &d, dir);
    result_free(&o);
    rhd_unet_free(m), rhd_unet_free(src);
    rhd_st_close(st);
    data_free(&d);
}

/* §1.4: ref = mean + exp(0.5 clamp(logvar, -30, 20)) U for the three noise kinds, against the
 * formula in double with the Philox draws. */
static void check_cond_sample(void) {
    const int C = 4, L = 16;
    const long per = (long)C * L * L;
    float *mo = th_randn(2 * N * per, 3), *ref = malloc(sizeof(float) * N * per);
    mo[per] = 40, mo[per + 1] = -50; /* clamped logvars */
    const char *kn[3] = {"uniform", "normal", "none"};
    for (int k = 0; k < 3; k++) {
        rhd_unet_cond_sample(ref, mo, N, C, L, (rhd_unet_noise)k, 5, 9, 100);
        double worst = 0, umin = 1e9, umax = -1e9;
        for (int n = 0; n < N; n++)
            for (long i = 0; i < per; i++) {
                const float *m = mo + (long)n * 2 * per;
                double lv = fmin(fmax(m[per + i], -30), 20), sd = exp(0.5 * lv);
                long j = (long)n * per + i;
                double u = k == 0 ? rhd_rng_uniform(5, 9, 100 + j) : k == 1 ? rhd_rng_normal(5, 9, 100 + j) : 0;
                worst = fmax(worst, fabs(ref[j] - (m[i] + sd * u)) / (1 + fabs(m[i]) + sd));
                umin = fmin(umin, u), umax = fmax(umax, u);
            }
        th_ok(worst < 1e-6 && (k != 0 || (umin >= 0 && umax < 1)),
              "conditioning sample, %s noise: max rel err %.2e vs the formula, draws in [%.3f, %.3f]", kn[k], worst,
              umin, umax);
    }
    free(mo), free(ref);
}

int main(void) {
    rhd_ctx *cpu, *gpu;
    th_open_backends(&cpu, &gpu);
    rhd_unet_config off;
    rhd_err e = {0};
    rhd_unet_config_official(&off);
    int64_t n = rhd_unet_param_count(&off, &e);
    th_ok(n == 366823360, "official config: %lld parameters, expected 366,823,360", (long long)n);
    double mac = rhd_unet_macs(&off);
    th_ok(mac == 952423174400.0, "official config: %.0f MAC per forward at batch 1, expected spec §9's 952,423,174,400", mac);
    rhd_unet_config j;
    rhd_unet_config_small(&j);
    const char *js = "{\"preset\": \"official\"}";
    int bad = rhd_unet_config_from_json(&j, js, strlen(js), "official.json", &e);
    int64_t nj = bad ? -1 : rhd_unet_param_count(&j, &e);
    th_ok(nj == 366823360, "a JSON config {\"preset\":\"official\"} builds the official network (%lld parameters)",
          (long long)nj);

    check_cond_sample();
    rhd_unet_config a;
    rhd_unet_config_small(&a);
    a.dropout = 0; /* dropout's mask is checked in test_nn */
    check_config(cpu, gpu, "small", &a, "decoder.", 0);
    rhd_unet_config b = a;
    const char *jb = "{\"channel_mult\":[1,1,2],\"num_res_blocks\":2,\"groups\":8,\"num_head_channels\":16,"
                     "\"aware3d_levels\":2,\"attention_resolutions\":[16,8],\"xf_width\":24,\"model_channels\":16,"
                     "\"checkpoint\":1,\"out_channels\":32}";
    th_ok(!rhd_unet_config_from_json(&b, jb, strlen(jb), "b.json", &e), "second config from JSON overrides: %s",
          e.msg);
    check_config(cpu, gpu, "small2", &b, "", 1);
    if (gpu) rhd_ctx_close(gpu);
    rhd_ctx_close(cpu);
    return th_done();
}
