/* tests/models/test_vae_encoder.c: the SDXL-VAE encoder (common/models/vae_encoder.h) against
 * diffusers' AutoencoderKL (tests/ref/ref_vae.py) with the same random weights, exchanged through
 * the very files rhd-encode reads (config.json + diffusion_pytorch_model.safetensors).
 *
 * Checks: config.json parsing and its refusals; the SDXL parameter count and cost of spec §1.2;
 * every output (moments, F0, F1, F2) against diffusers within a normalised error of 1e-8 (relative
 * RMS error 1e-4) at
 *   - a reduced config ([32,64,64,64], 2 layers, 8 groups), batch 2, 64x96, F32 whole state dict;
 *   - a reduced config with 1 layer, 16 groups, old attention names as [C,C,1,1] 1x1 convs, F16
 *     encoder-only weights, 32x48; and one without the mid attention;
 *   - the SDXL config at 128x128 on one dev-set portrait (preprocessed as rhd-encode does), F16
 *     encoder-only weights (about 68 GFLOP on our side and again in diffusers);
 * batching (two portraits at once = one at a time); the loader's messages for a missing tensor and
 * a wrong shape; the deterministic random initialisation; and CUDA against the CPU when a device
 * is present. */
#include "refcheck.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/image_resize.h"
#include "common/models/vae_encoder.h"
#include "formats/png.h"

#define TOL 1e-8 /* normalised squared error: relative RMS error 1e-4 */

static rhd_ctx *g_cpu, *g_gpu;

/* Load DIR/config.json and DIR/diffusion_pytorch_model.safetensors into m on ctx. */
static int load_dir(rhd_vae_encoder *m, rhd_ctx *ctx, const char *dir, rhd_err *e) {
    char path[1200];
    char *text;
    size_t n;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (rhd_read_file(path, &text, &n, e)) return -1;
    rhd_vae_config cfg;
    int rc = rhd_vae_config_from_json(&cfg, text, n, path, e);
    free(text);
    if (rc) return -1;
    rhd_vae_encoder_init(m, &cfg);
    rhd_vae_encoder_alloc(m, ctx);
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    rhd_st *st;
    if (rhd_st_open(path, &st, e)) return -1;
    rc = rhd_vae_encoder_load(m, st, e);
    rhd_st_close(st);
    return rc;
}

typedef struct {
    float *out[4]; /* moments, f0, f1, f2 (host) */
    long n[4];
} outputs;

static void outputs_free(outputs *o) {
    for (int i = 0; i < 4; i++) free(o->out[i]);
}

/* Run the encoder on ctx for x (N,3,H,W) on the host. */
static void run(rhd_ctx *ctx, const rhd_vae_encoder *m, const float *x, int N, int H, int W, outputs *o) {
    int64_t s[4][3];
    rhd_vae_encoder_shapes(m, H, W, s);
    float *dev[4], *dx;
    for (int i = 0; i < 4; i++) {
        o->n[i] = (long)N * s[i][0] * s[i][1] * s[i][2];
        dev[i] = rhd_buf_alloc(ctx, sizeof(float) * o->n[i]);
        o->out[i] = malloc(sizeof(float) * o->n[i]);
    }
    size_t nx = (size_t)N * m->cfg.in_channels * H * W;
    dx = rhd_buf_alloc(ctx, sizeof(float) * nx);
    rhd_buf_upload(ctx, dx, x, sizeof(float) * nx);
    rhd_arena a;
    rhd_arena_init(&a, ctx, rhd_vae_encoder_arena_bytes(m, N, H, W));
    rhd_vae_encoder_forward(ctx, m, &a, dev[0], dev[1], dev[2], dev[3], dx, N, H, W);
    for (int i = 0; i < 4; i++) {
        rhd_buf_download(ctx, o->out[i], dev[i], sizeof(float) * o->n[i]);
        rhd_buf_free(ctx, dev[i]);
    }
    rhd_buf_free(ctx, dx);
    rhd_arena_free(&a);
}

static const char *const out_names[4] = {"moments", "f0", "f1", "f2"};

/* One comparison with diffusers: weights made by the reference, loaded through the file loader.
 * All cases are prepared first and the reference runs once (one import of diffusers). */
typedef struct vcase {
    char label[48], config[200], flags[100], dir[1100];
    float *x;
    int N, H, W, check_batch;
} vcase;

static void prepare(vcase *c, FILE *jobs) {
    char sub[64];
    snprintf(sub, sizeof sub, "vae-%.47s", c->label);
    snprintf(c->dir, sizeof c->dir, "%s", th_subdir(sub));
    th_save(c->dir, "x", c->x, 4, (int64_t[]){c->N, 3, c->H, c->W});
    fprintf(jobs, "%s '%s' 7 %s\n", c->dir, c->config, c->flags);
}

static void compare(const vcase *c) {
    const char *label = c->label;
    int N = c->N, H = c->H, W = c->W;
    rhd_vae_encoder m;
    rhd_err e;
    if (load_dir(&m, g_cpu, c->dir, &e)) {
        th_ok(0, "%s: load weights: %s", label, e.msg);
        return;
    }
    th_ok(1, "%s: loaded %d tensors (%lld parameters) from the diffusers files", label, m.params.n,
          (long long)rhd_params_count(&m.params));
    outputs o;
    double t0 = rhd_now();
    run(g_cpu, &m, c->x, N, H, W, &o);
    th_diag("%s: ours %.2f s for %d x %dx%d (%.2f GMAC each)", label, rhd_now() - t0, N, W, H,
            rhd_vae_encoder_macs(&m, H, W) / 1e9);
    for (int i = 0; i < 4; i++) {
        float *ref = th_load(c->dir, out_names[i], o.n[i]);
        char name[160];
        snprintf(name, sizeof name, "%.47s: %s cpu vs diffusers N=%d %dx%d", label, out_names[i], N, W, H);
        if (ref) th_close(name, o.out[i], ref, o.n[i], TOL);
        else th_ok(0, "%s (no reference output)", name);
        free(ref);
    }
    if (c->check_batch && N >= 2) { /* the first portrait alone gives the same numbers */
        outputs one;
        run(g_cpu, &m, c->x, 1, H, W, &one);
        double worst = 0;
        for (int i = 0; i < 4; i++) {
            double se = 0, sr = 0;
            for (long k = 0; k < one.n[i]; k++) {
                double dd = (double)one.out[i][k] - o.out[i][k];
                se += dd * dd, sr += (double)o.out[i][k] * o.out[i][k];
            }
            if (se / sr > worst) worst = se / sr;
        }
        th_ok(worst <= 1e-12, "%s: batch of %d = one portrait at a time (worst nmse %.2e)", label, N, worst);
        outputs_free(&one);
    }
    if (g_gpu) {
        rhd_vae_encoder mg;
        if (load_dir(&mg, g_gpu, c->dir, &e)) {
            th_ok(0, "%s: load weights on cuda: %s", label, e.msg);
        } else {
            outputs og;
            run(g_gpu, &mg, c->x, N, H, W, &og);
            for (int i = 0; i < 4; i++) {
                char name[160];
                snprintf(name, sizeof name, "%.47s: %s cpu~cuda N=%d %dx%d", label, out_names[i], N, W, H);
                th_close(name, og.out[i], o.out[i], o.n[i], 1e-10);
            }
            outputs_free(&og);
            rhd_vae_encoder_free(&mg);
        }
    } else {
        th_skip("no CUDA device: %s cpu~cuda", label);
    }
    outputs_free(&o);
    rhd_vae_encoder_free(&m);
}

static void test_config(void) {
    rhd_vae_config c, sdxl;
    rhd_err e;
    rhd_vae_config_sdxl(&sdxl);
    /* the SDXL vae config.json as published (stabilityai/stable-diffusion-xl-base-1.0/vae) */
    const char *js =
        "{\"_class_name\": \"AutoencoderKL\", \"_diffusers_version\": \"0.20.0.dev0\", \"act_fn\": \"silu\","
        " \"block_out_channels\": [128, 256, 512, 512], \"down_block_types\": [\"DownEncoderBlock2D\","
        " \"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\"], \"force_upcast\": true,"
        " \"in_channels\": 3, \"latent_channels\": 4, \"layers_per_block\": 2, \"norm_num_groups\": 32,"
        " \"out_channels\": 3, \"sample_size\": 1024, \"scaling_factor\": 0.13025, \"up_block_types\":"
        " [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}";
    int rc = rhd_vae_config_from_json(&c, js, strlen(js), "config.json", &e);
    th_ok(rc == 0 && memcmp(&c, &sdxl, sizeof c) == 0, "SDXL config.json parses to the SDXL config%s%s", rc ? ": " : "",
          rc ? e.msg : "");
    static const struct { const char *json, *msg; } bad[] = {
        {"{\"block_out_channels\": [128,256,512,512], \"down_block_types\": [\"DownEncoderBlock2D\", "
         "\"AttnDownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\"]}",
         "config.json: down_block_types[1] is 'AttnDownEncoderBlock2D', expected 'DownEncoderBlock2D'"},
        {"{\"block_out_channels\": [128,256,512], \"down_block_types\": [\"DownEncoderBlock2D\", "
         "\"DownEncoderBlock2D\", \"DownEncoderBlock2D\"]}",
         "config.json: block_out_channels has 3 entries, expected 4"},
        {"{\"block_out_channels\": [128,256,512,500], \"down_block_types\": [\"DownEncoderBlock2D\", "
         "\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\"]}",
         "config.json: block_out_channels[3] = 500 is not divisible by norm_num_groups = 32"},
        {"{\"act_fn\": \"gelu\"}", "config.json: act_fn is 'gelu', expected 'silu'"},
        {"{\"_class_name\": \"VQModel\"}", "config.json: _class_name is 'VQModel', expected 'AutoencoderKL'"},
        {"{\"layers_per_block\": 2.5}", "config.json: 'layers_per_block' is not an integer"},
        {"{\"block_out_channels\": [128,", "config.json: not valid JSON"},
        {"{}", "config.json: block_out_channels has 1 entry, expected 4"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        rc = rhd_vae_config_from_json(&c, bad[k].json, strlen(bad[k].json), "config.json", &e);
        th_ok(rc == -1 && strstr(e.msg, bad[k].msg), "config refused: %s", rc ? e.msg : "(accepted)");
    }
    /* spec §1.2: 34,163,592 parameters, 33.89 GMAC at 128x128 */
    rhd_vae_encoder m;
    rhd_vae_encoder_init(&m, &sdxl);
    long long np = (long long)rhd_params_count(&m.params);
    double gmac = rhd_vae_encoder_macs(&m, 128, 128) / 1e9;
    th_ok(np == 34163592LL, "SDXL encoder has %lld parameters (spec: 34,163,592) in %d tensors", np, m.params.n);
    th_ok(fabs(gmac - 33.89) < 0.01, "SDXL encoder costs %.3f GMAC at 128x128 (spec: 33.89)", gmac);
    th_ok(rhd_params_find(&m.params, "encoder.mid_block.attentions.0.to_out.0.weight") >= 0 &&
              rhd_params_find(&m.params, "encoder.down_blocks.1.resnets.0.conv_shortcut.weight") >= 0 &&
              rhd_params_find(&m.params, "encoder.down_blocks.2.downsamplers.0.conv.bias") >= 0 &&
              rhd_params_find(&m.params, "encoder.down_blocks.0.resnets.0.conv_shortcut.weight") < 0,
          "diffusers state-dict names (to_out.0, conv_shortcut only where channels change, downsamplers.0.conv)");
    int64_t s[4][3];
    rhd_vae_encoder_shapes(&m, 128, 128, s);
    th_ok(s[0][0] == 8 && s[0][1] == 16 && s[1][0] == 128 && s[1][1] == 64 && s[2][0] == 256 && s[2][2] == 32 &&
              s[3][0] == 512 && s[3][1] == 16,
          "output shapes at 128 px: moments [8,16,16], F0 [128,64,64], F1 [256,32,32], F2 [512,16,16]");
    th_ok(rhd_vae_encoder_check_size(100, 128, &e) == -1 && strstr(e.msg, "multiples of 8"), "odd input size refused: %s",
          e.msg);
    /* deterministic random weights: same seed, same numbers; another seed, others; within bounds */
    rhd_vae_encoder_alloc(&m, g_cpu);
    rhd_vae_encoder_init_random(&m, 42);
    float *a = malloc(sizeof(float) * m.params.total);
    memcpy(a, m.params.data, sizeof(float) * m.params.total);
    rhd_vae_encoder_init_random(&m, 42);
    int same = memcmp(a, m.params.data, sizeof(float) * m.params.total) == 0;
    rhd_vae_encoder_init_random(&m, 43);
    int i = m.down[1][0].conv1.w;
    const rhd_param_info *t = &m.params.info[i];
    float bound = 1.0f / sqrtf((float)(t->numel / t->shape[0])), mx = 0;
    long differ = 0;
    for (int64_t k = 0; k < t->numel; k++) {
        float v = rhd_param(&m.params, i)[k];
        differ += v != a[t->offset + k];
        mx = fabsf(v) > mx ? fabsf(v) : mx;
    }
    float g = rhd_param(&m.params, m.down[0][0].norm1.w)[5], gb = rhd_param(&m.params, m.down[0][0].norm1.b)[5];
    th_ok(same && differ > t->numel * 0.99 && mx <= bound && mx > 0.9f * bound && g == 1.0f && gb == 0.0f,
          "random init: reproducible per seed, other seeds differ (%ld of %lld), |w| <= 1/sqrt(fan_in) (max %.4g of "
          "%.4g), GroupNorm 1/0",
          differ, (long long)t->numel, mx, bound);
    free(a);
    rhd_vae_encoder_free(&m);
}

/* The loader's messages for a missing tensor and a wrong shape, on a copy of a reference file. */
static void test_load_errors(const char *dir) {
    char path[1200], out[1200];
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    rhd_st *st;
    rhd_err e;
    if (rhd_st_open(path, &st, &e)) {
        th_ok(0, "open %s: %s", path, e.msg);
        return;
    }
    char text[4096];
    snprintf(out, sizeof out, "%s/config.json", dir);
    FILE *f = fopen(out, "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    rhd_vae_config cfg;
    if (rhd_vae_config_from_json(&cfg, text, n, "config.json", &e)) {
        th_ok(0, "config: %s", e.msg);
        rhd_st_close(st);
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        const char *victim = pass == 0 ? "encoder.down_blocks.1.resnets.0.conv_shortcut.weight"
                                       : "encoder.down_blocks.2.resnets.1.conv2.weight";
        rhd_st_writer w;
        rhd_st_writer_init(&w);
        for (int k = 0; k < st->n; k++) {
            const rhd_st_tensor *t = &st->t[k];
            if (strcmp(t->name, victim) != 0) {
                rhd_st_add(&w, t->name, t->dtype, t->ndim, t->shape, t->data);
            } else if (pass == 1) { /* same bytes, transposed-looking shape */
                int64_t sh[4] = {t->shape[1], t->shape[0], t->shape[2] * t->shape[3], 1};
                rhd_st_add(&w, t->name, t->dtype, 4, sh, t->data);
            }
        }
        snprintf(out, sizeof out, "%s/broken%d.safetensors", dir, pass);
        rhd_st *bst;
        int rc = rhd_st_write(&w, out, &e) || rhd_st_open(out, &bst, &e);
        rhd_st_writer_free(&w);
        if (rc) {
            th_ok(0, "write %s: %s", out, e.msg);
            continue;
        }
        rhd_vae_encoder m;
        rhd_vae_encoder_init(&m, &cfg);
        rhd_vae_encoder_alloc(&m, g_cpu);
        rc = rhd_vae_encoder_load(&m, bst, &e);
        char want[1400];
        if (pass == 0)
            snprintf(want, sizeof want, "%s: tensor '%s' is missing, expected [64,32,1,1] for the encoder with "
                     "block_out_channels [32,64,64,64]", out, victim);
        else
            snprintf(want, sizeof want, "%s: tensor '%s' has shape [64,64,9,1], expected [64,64,3,3] "
                     "(block_out_channels [32,64,64,64]", out, victim);
        th_ok(rc == -1 && strstr(e.msg, want), "%s tensor refused: %s", pass ? "wrong-shape" : "missing",
              rc ? e.msg : "(accepted)");
        rhd_vae_encoder_free(&m);
        rhd_st_close(bst);
    }
    rhd_st_close(st);
}

int main(void) {
    rhd_err e;
    g_cpu = rhd_ctx_open("cpu", &e);
    if (!g_cpu) { th_ok(0, "cpu context: %s", e.msg); return th_done(); }
    if (rhd_cuda_available()) g_gpu = rhd_ctx_open("cuda", &e);
    test_config();

    /* reduced configs on random inputs in [-1, 1]; SDXL on a dev-set portrait (random if absent) */
    const char *small = "{\"block_out_channels\": [32, 64, 64, 64], \"layers_per_block\": 2, \"norm_num_groups\": 8}";
    const char *small1 = "{\"block_out_channels\": [32, 48, 64, 64], \"layers_per_block\": 1, \"norm_num_groups\": 16}";
    vcase cases[4];
    memset(cases, 0, sizeof cases);
    snprintf(cases[0].label, 48, "small"), snprintf(cases[0].config, 200, "%s", small);
    cases[0].N = 2, cases[0].H = 64, cases[0].W = 96, cases[0].check_batch = 1;
    snprintf(cases[1].label, 48, "small-oldnames-f16"), snprintf(cases[1].config, 200, "%s", small1);
    snprintf(cases[1].flags, 100, "--old-names --fp16 --encoder-only");
    cases[1].N = 1, cases[1].H = 32, cases[1].W = 48;
    snprintf(cases[2].label, 48, "small-noattn"), snprintf(cases[2].config, 200, "%s", small1);
    snprintf(cases[2].flags, 100, "--no-mid-attn");
    cases[2].N = 1, cases[2].H = 32, cases[2].W = 48;
    snprintf(cases[3].label, 48, "sdxl"), snprintf(cases[3].config, 200, "sdxl");
    snprintf(cases[3].flags, 100, "--fp16 --encoder-only");
    cases[3].N = 1, cases[3].H = 128, cases[3].W = 128;
    for (int k = 0; k < 3; k++) cases[k].x = th_randu(3L * cases[k].N * cases[k].H * cases[k].W, -1.f, 1.f);
    const char *shared = getenv("RHD_SHARED");
    char path[700];
    snprintf(path, sizeof path, "%s/data/blender-avatars-dev/avatar_101/img_proc_fg_000000.png",
             shared && *shared ? shared : "../shared");
    cases[3].x = malloc(sizeof(float) * 3 * 128 * 128);
    rhd_image img;
    if (rhd_png_read(path, &img, &e) || rhd_portrait_to_input(cases[3].x, 128, img.data, img.width, img.height,
                                                              RHD_RESIZE_PILLOW, path, &e)) {
        free(cases[3].x);
        cases[3].x = th_randu(3L * 128 * 128, -1.f, 1.f);
        th_diag("SDXL config at 128x128 on random input (%s)", e.msg);
    } else {
        th_diag("SDXL config at 128x128 on %s", path);
    }
    rhd_image_free(&img);

    char jobs[1200];
    snprintf(jobs, sizeof jobs, "%s/vae-jobs.txt", th_tmpdir());
    FILE *f = fopen(jobs, "w");
    for (int k = 0; k < 4; k++) prepare(&cases[k], f);
    fclose(f);
    double t0 = rhd_now();
    int rc = th_ref("ref_vae.py", "jobs %s", jobs);
    th_ok(rc == 0, "diffusers reference ran (%.1f s for the four cases)", rhd_now() - t0);
    if (rc == 0) {
        for (int k = 0; k < 4; k++) {
            compare(&cases[k]);
            if (k == 0) test_load_errors(cases[0].dir);
        }
    }
    for (int k = 0; k < 4; k++) free(cases[k].x);

    rhd_ctx_close(g_cpu);
    if (g_gpu) rhd_ctx_close(g_gpu);
    return th_done();
}
