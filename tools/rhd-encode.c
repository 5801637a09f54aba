/* tools/rhd-encode.c: portraits -> hierarchical portrait features (formats/features.md), the
 * SDXL-VAE encoder of script/encode_multiscale_feature.py: for each avatar, view 0
 * (img_proc_fg_000000.png) resized to 128 with Pillow's LANCZOS, composited on white, scaled to
 * [-1,1], encoded; the latent moments (conv_out, no quant_conv) and the outputs of the first three
 * down blocks are stored. Weights are loaded once, portraits are batched, outputs newer than their
 * inputs are skipped, avatars can be sharded over MPI ranks. See tools/rhd-encode.md. */
#include "common/cli.h"
#include "common/fs.h"
#include "common/fit_run.h"
#include "common/image_resize.h"
#include "common/log.h"
#include "common/models/vae_encoder.h"
#include "common/sha256.h"
#include "formats/dataset.h"
#include "formats/finite.h"
#include "formats/png.h"
#include "formats/safetensors.h"
#include "formats/schema.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOOL "rhd-encode"

typedef struct encode_opts {
    rhd_common_opts common;
    const char *weights; /* DIR or random:SEED */
    const char *data;    /* dataset root */
    const char *list;    /* subject list */
    const char *out_dir;
    int dtype;           /* index into dtype_names */
    int resize;          /* index into resize_names */
    long long batch, size;
    rhd_shard shard;     /* --rank/--world (common/cli.h) */
    int force;
} encode_opts;

static const char *const dtype_names[] = {"f32", "f16", NULL};
static const char *const resize_names[] = {"pillow", "float", NULL};

static const rhd_opt encode_options[] = {
    RHD_OPT_GROUP_("inputs and outputs"),
    RHD_OPT_STRING_(0, "weights", encode_opts, weights, "DIR",
                    "diffusers AutoencoderKL folder (config.json + diffusion_pytorch_model.safetensors), or random:SEED"),
    RHD_OPT_STRING_(0, "data", encode_opts, data, "DIR", "dataset root: view 0 of each avatar DIR/<name>/ is its portrait"),
    RHD_OPT_STRING_(0, "list", encode_opts, list, "FILE", "avatar names, one per line, relative to --data (default: every avatar)"),
    RHD_OPT_STRING_(0, "out-dir", encode_opts, out_dir, "DIR", "write DIR/<name>.safetensors per avatar"),
    RHD_OPT_CHOICE_(0, "dtype", encode_opts, dtype, "TYPE", "stored precision: f32 or f16", dtype_names),
    RHD_OPT_FLAG_(0, "force", encode_opts, force, "encode even when an output is newer than its inputs"),
    RHD_OPT_GROUP_("processing"),
    RHD_OPT_INT_(0, "batch", encode_opts, batch, "N", "portraits per forward pass", 1, 4096),
    RHD_OPT_CHOICE_(0, "resize", encode_opts, resize, "METHOD",
                    "pillow: bit-exact Pillow LANCZOS; float: float Lanczos-3", resize_names),
    RHD_OPT_INT_(0, "size", encode_opts, size, "PX", "portrait size fed to the encoder (multiple of 8)", 16, 4096),
    RHD_SHARD_OPTS(encode_opts, shard),
    RHD_COMMON_OPTS_NO_SEED(encode_opts), /* deterministic: no --seed (random weights: --weights random:SEED) */
    RHD_OPT_END_};

static const rhd_cli encode_cli = {
    TOOL,
    "rhd-encode --weights DIR|random:SEED (-o FILE | --out-dir DIR) (PORTRAIT.png... | --data DIR [--list FILE])",
    "Encode portraits into hierarchical portrait features with the SDXL-VAE encoder: the latent\n"
    "moments (mean and log-variance, [8,16,16] at 128 px, conv_out without quant_conv) and the\n"
    "outputs of the first three down blocks ([128,64,64], [256,32,32], [512,16,16]), one\n"
    "safetensors file per avatar (formats/features.md). The portrait, an 8-bit RGBA PNG, is resized\n"
    "to 128x128 as Pillow's LANCZOS does it, composited on white and scaled to [-1,1].\n"
    "An avatar whose output is newer than its portrait and weights is skipped (--force redoes it).\n",
    encode_options,
    "examples:\n"
    "  rhd-encode --weights sdxl-vae --data avatars --out-dir features\n"
    "  rhd-encode --weights sdxl-vae -o a.safetensors avatars/avatar_100/img_proc_fg_000000.png\n"
    "  mpirun -np 4 rhd-encode --weights sdxl-vae --data avatars --list train.txt --out-dir features\n"
    "  rhd-encode --weights random:1 --dtype f16 --out-dir f16 tests/data/mini/*/img_proc_fg_000000.png\n"};

static void report(const char *msg) {
    fflush(stdout);
    fprintf(stderr, "%s: error: %s\n", rhd_prog(), msg);
}

/* ------------------------------------------------------------------------------------------- */
/* weights                                                                                     */

typedef struct weights {
    rhd_vae_encoder model;
    char identity[200];  /* rhd.weights */
    char *files[2];      /* the files the outputs depend on (for the newer-than check) */
    int nfiles;
    int random;
    unsigned long long seed;
} weights;

static void weights_paths(const char *spec, char **cfgpath_out, char **stpath_out);

static void load_weights(weights *w, const char *spec, rhd_ctx *ctx) {
    memset(w, 0, sizeof *w);
    rhd_err e;
    if (strncmp(spec, "random:", 7) == 0) {
        long long seed;
        if (rhd_parse_ll(spec + 7, &seed) || seed < 0)
            rhd_usage_error("--weights random:SEED takes a non-negative integer seed (e.g. --weights random:1), got '%s'", spec);
        rhd_vae_config cfg;
        rhd_vae_config_sdxl(&cfg);
        rhd_vae_encoder_init(&w->model, &cfg);
        rhd_vae_encoder_alloc(&w->model, ctx);
        rhd_vae_encoder_init_random(&w->model, (uint64_t)seed);
        w->random = 1;
        w->seed = (unsigned long long)seed;
        snprintf(w->identity, sizeof w->identity, "random:%lld (RANDOM WEIGHTS: these features are meaningless)", seed);
        rhd_warn("--weights %s: the encoder has RANDOM weights (SDXL architecture, seed %lld); the features are "
                 "meaningless except for tests and demos", spec, seed);
        return;
    }
    char *cfgpath, *stpath;
    weights_paths(spec, &cfgpath, &stpath);
    char *text;
    size_t n;
    rhd_vae_config cfg;
    if (rhd_read_file(cfgpath, &text, &n, &e) || rhd_vae_config_from_json(&cfg, text, n, cfgpath, &e)) rhd_die_err(&e);
    free(text);
    if (cfg.in_channels != 3)
        rhd_die("%s: in_channels is %d, expected 3 (RGB portraits)", cfgpath, cfg.in_channels);
    rhd_st *st;
    if (rhd_st_open(stpath, &st, &e)) rhd_die_err(&e);
    if (rhd_st_check_finite(st, &e)) rhd_die("--weights %s: %s", spec, e.msg);
    rhd_vae_encoder_init(&w->model, &cfg);
    rhd_vae_encoder_alloc(&w->model, ctx);
    if (rhd_vae_encoder_load(&w->model, st, &e)) rhd_die_err(&e);
    rhd_st_close(st);
    char hex[65];
    if (rhd_sha256_file(stpath, hex, &e)) rhd_die_err(&e);
    snprintf(w->identity, sizeof w->identity, "sha256:%s", hex);
    w->files[0] = cfgpath, w->files[1] = stpath, w->nfiles = 2;
    char cs[400];
    rhd_info("weights %s: %s (%lld parameters)", stpath, rhd_vae_config_str(&cfg, cs, sizeof cs),
             (long long)rhd_params_count(&w->model.params));
}

/* The two files of --weights DIR (config.json and the weights), or of DIR/vae/; dies naming what
 * is missing. */
static void weights_paths(const char *spec, char **cfgpath_out, char **stpath_out) {
    /* DIR, or a whole pipeline folder holding vae/ */
    char *dir = rhd_xstrdup(spec), *cfgpath = rhd_path_join(dir, "config.json");
    if (!rhd_file_exists(cfgpath)) {
        char *vae = rhd_path_join(spec, "vae"), *alt = rhd_path_join(vae, "config.json");
        if (rhd_file_exists(alt)) {
            free(dir), free(cfgpath);
            dir = vae, cfgpath = alt;
        } else {
            free(vae), free(alt);
            rhd_die("--weights %s: %s not found, expected a diffusers AutoencoderKL folder (config.json + "
                    "diffusion_pytorch_model.safetensors) or random:SEED", spec, cfgpath);
        }
    }
    char *stpath = rhd_path_join(dir, "diffusion_pytorch_model.safetensors");
    if (!rhd_file_exists(stpath)) {
        char *alt = rhd_path_join(dir, "diffusion_pytorch_model.fp16.safetensors");
        if (!rhd_file_exists(alt))
            rhd_die("--weights %s: %s not found (nor diffusion_pytorch_model.fp16.safetensors), expected the "
                    "AutoencoderKL weights next to config.json", spec, stpath);
        free(stpath);
        stpath = alt;
    }
    free(dir);
    *cfgpath_out = cfgpath, *stpath_out = stpath;
}

/* ------------------------------------------------------------------------------------------- */
/* jobs                                                                                        */

typedef struct job {
    char *name;   /* avatar name: names the output */
    char *input;  /* portrait PNG */
    char *output; /* features file ("-" for stdout) */
} job;

/* "dir/avatar_7/img_proc_fg_000000.png" -> "avatar_7"; "x/foo.png" -> "foo" */
static char *name_of(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strcmp(base, "img_proc_fg_000000.png") == 0 && base != path) {
        const char *end = base - 1, *start = end;
        while (start > path && start[-1] != '/') start--;
        if (end > start) {
            char *s = rhd_xmalloc((size_t)(end - start) + 1);
            memcpy(s, start, (size_t)(end - start));
            s[end - start] = 0;
            return s;
        }
    }
    char *s = rhd_xstrdup(base);
    size_t n = strlen(s);
    if (n > 4 && strcmp(s + n - 4, ".png") == 0) s[n - 4] = 0;
    return s;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every subdirectory of root holding a portrait (view 0's image), sorted by name (strcmp). Unlike
 * a fitting data set, an avatar needs no camera metadata here. */
static int scan_portraits(const char *root, job **jobs, int *n, rhd_err *e) {
    DIR *dh = opendir(root);
    if (!dh) return rhd_errf(e, "--data %s: cannot open directory: %s", root, strerror(errno));
    char **names = NULL;
    int cnt = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(dh))) {
        if (de->d_name[0] == '.') continue;
        char *dir = rhd_path_join(root, de->d_name), *png = rhd_dataset_view_path(dir, RHD_VIEW_IMAGE_FMT, 0);
        struct stat sb;
        if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode) && rhd_file_exists(png)) {
            if (cnt == cap) names = rhd_xrealloc(names, sizeof(char *) * (size_t)(cap = cap ? 2 * cap : 16));
            names[cnt++] = rhd_xstrdup(de->d_name);
        }
        free(dir), free(png);
    }
    closedir(dh);
    if (!cnt) return rhd_errf(e, "--data %s: no avatars found, expected subdirectories holding img_proc_fg_000000.png", root);
    qsort(names, (size_t)cnt, sizeof(char *), cmp_str);
    *jobs = rhd_xcalloc((size_t)cnt, sizeof(job));
    for (int i = 0; i < cnt; i++) {
        char *dir = rhd_path_join(root, names[i]);
        (*jobs)[i].name = names[i];
        (*jobs)[i].input = rhd_dataset_view_path(dir, RHD_VIEW_IMAGE_FMT, 0);
        free(dir);
    }
    free(names);
    *n = cnt;
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* one portrait                                                                                */

/* The encoder input of one portrait into x (3, S, S); -1 with a message on a bad file. */
static int load_portrait(const char *path, float *x, int S, rhd_resize_method m, int *w, int *h, rhd_err *e) {
    rhd_image img;
    if (rhd_png_read(path, &img, e)) return -1;
    char desc[80];
    int rc = -1;
    if (img.bit_depth != 8 || img.color_type != RHD_PNG_RGBA) {
        rhd_errf(e, "%s: %s PNG, expected 8-bit RGBA (a portrait with straight alpha, composited on white)", path,
                 rhd_png_describe(&img, desc, sizeof desc));
        goto out;
    }
    *w = img.width, *h = img.height;
    rc = rhd_portrait_to_input(x, S, img.data, img.width, img.height, m, path, e);
out:
    rhd_image_free(&img);
    return rc;
}

static char *preprocess_json(const encode_opts *o, int w, int h) {
    char *s = rhd_xmalloc(400);
    snprintf(s, 400,
             "{\"filter\":\"lanczos\",\"method\":\"%s\",\"size\":[%lld,%lld],\"source_size\":[%d,%d],"
             "\"background\":\"white\",\"range\":[-1,1],\"layout\":\"RGB\"}",
             resize_names[o->resize], o->size, o->size, w, h);
    return s;
}

static char *config_json(const encode_opts *o, const weights *wt) {
    const rhd_vae_config *c = &wt->model.cfg;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "weights", o->weights);
    cJSON *v = cJSON_AddObjectToObject(j, "vae");
    cJSON_AddItemToObject(v, "block_out_channels", cJSON_CreateIntArray(c->block_out_channels, RHD_VAE_BLOCKS));
    cJSON_AddNumberToObject(v, "layers_per_block", c->layers_per_block);
    cJSON_AddNumberToObject(v, "norm_num_groups", c->norm_num_groups);
    cJSON_AddNumberToObject(v, "latent_channels", c->latent_channels);
    char eps[32];
    snprintf(eps, sizeof eps, "%g", c->eps); /* 1e-06, not the float's 9.99999997e-07 */
    cJSON_AddNumberToObject(v, "eps", strtod(eps, NULL));
    cJSON_AddBoolToObject(v, "mid_attention", c->mid_attention);
    cJSON_AddStringToObject(j, "dtype", dtype_names[o->dtype]);
    cJSON_AddStringToObject(j, "resize", resize_names[o->resize]);
    cJSON_AddNumberToObject(j, "size", (double)o->size);
    cJSON_AddNumberToObject(j, "batch", (double)o->batch);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

/* Write one avatar's features: out[k] point at its slices (host). */
static int write_features(const encode_opts *o, const weights *wt, const rhd_ctx *ctx, const job *jb, float *const out[4],
                          const int64_t shapes[4][3], int w, int h, rhd_err *e) {
    static const char *const names[4] = {"moments", "ms_feature.0", "ms_feature.1", "ms_feature.2"};
    for (int k = 0; k < 4; k++) /* finite weights can still overflow: never write such features */
        if (rhd_check_finite(jb->output, names[k], out[k], shapes[k][0] * shapes[k][1] * shapes[k][2], e)) {
            char m[sizeof e->msg];
            memcpy(m, e->msg, sizeof m);
            return rhd_errf(e, "%.900s (the encoder's output for %s; not written)", m, jb->input);
        }
    rhd_st_writer wr;
    rhd_st_writer_init(&wr);
    rhd_dtype dt = o->dtype == 1 ? RHD_F16 : RHD_F32;
    for (int k = 0; k < 4; k++) rhd_st_add_f32(&wr, names[k], dt, 3, shapes[k], out[k]);
    rhd_schema_stamp(&wr, "features", TOOL);
    rhd_st_set_meta(&wr, "rhd.weights", wt->identity);
    rhd_st_set_meta(&wr, "rhd.input", jb->input);
    char *pre = preprocess_json(o, w, h), *cfg = config_json(o, wt);
    rhd_st_set_meta(&wr, "rhd.preprocess", pre);
    rhd_st_set_meta(&wr, "rhd.config", cfg);
    rhd_st_set_meta(&wr, "rhd.device", rhd_ctx_device_label(ctx));
    char seed[32];
    if (wt->random) snprintf(seed, sizeof seed, "%llu", wt->seed), rhd_st_set_meta(&wr, "rhd.seed", seed);
    int rc;
    if (strcmp(jb->output, "-") == 0) {
        void *buf;
        size_t n;
        rc = rhd_st_encode(&wr, &buf, &n, e);
        if (rc == 0) {
            if (fwrite(buf, 1, n, stdout) != n) rc = rhd_errf(e, "-o -: writing to stdout failed: %s", strerror(errno));
            free(buf);
        }
    } else {
        rc = rhd_mkdir_parents(jb->output, e) ? -1 : 0;
        if (!rc) rhd_crash_before_write(jb->output); /* test hooks (RHD_CRASH_AFTER, common/fit_run.h) */
        if (!rc) rc = rhd_st_write(&wr, jb->output, e) ? -1 : 0;
        if (!rc) rhd_crash_point("wrote", jb->output);
    }
    free(pre), free(cfg);
    rhd_st_writer_free(&wr);
    return rc;
}

/* Before the encoder is built: no output may be one of the inputs (portraits, weights, --list,
 * --config: a usage error naming both) and every output of this rank must be writable. */
static void check_outputs(const encode_opts *o, const job *jobs, int njobs) {
    int nin = 0;
    const char **in = rhd_xmalloc(sizeof(char *) * (size_t)(njobs + 4));
    char *wf[2] = {NULL, NULL};
    if (strncmp(o->weights, "random:", 7) != 0) weights_paths(o->weights, &wf[0], &wf[1]);
    in[nin++] = wf[0], in[nin++] = wf[1], in[nin++] = o->list, in[nin++] = o->common.config;
    for (int i = 0; i < njobs; i++) in[nin++] = jobs[i].input;
    const char *opt = o->common.output ? "-o" : "--out-dir";
    rhd_err e;
    for (int i = 0; i < njobs; i++) {
        if (!rhd_shard_mine(&o->shard, i)) continue;
        if (rhd_check_output_not_input(opt, jobs[i].output, in, nin, &e)) rhd_usage_error("%s", e.msg);
        if (rhd_check_output_writable(opt, jobs[i].output, &e)) rhd_die_err(&e);
    }
    free(wf[0]), free(wf[1]);
    free(in);
}

/* ------------------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    rhd_set_prog(argv[0]);
    rhd_fs_install_signal_handlers();
    encode_opts o;
    memset(&o, 0, sizeof o);
    rhd_common_opts_init(&o.common);
    o.batch = 4, o.size = 128;
    rhd_shard_init(&o.shard);
    int n = rhd_cli_parse(&encode_cli, argc, argv, &o);
    rhd_common_opts_apply(&o.common);

    /* usage checks, before anything heavy */
    if (!o.weights) rhd_usage_error("--weights is required (e.g. --weights sdxl-vae or --weights random:1)");
    if (o.data && n > 0) rhd_usage_error("give portraits or --data DIR, not both (got --data and %d file%s)", n, n > 1 ? "s" : "");
    if (!o.data && n == 0) rhd_usage_error("expected portrait PNGs or --data DIR (e.g. rhd-encode --weights W --data avatars --out-dir features)");
    if (o.list && !o.data) rhd_usage_error("--list names avatars under --data DIR; give --data too");
    if (o.common.output && o.out_dir) rhd_usage_error("give -o FILE or --out-dir DIR, not both");
    if (!o.common.output && !o.out_dir) rhd_usage_error("expected -o FILE (one portrait) or --out-dir DIR (e.g. --out-dir features)");
    if (o.size % 8) rhd_usage_error("--size takes a multiple of 8 (e.g. --size 128), got %lld", o.size);
    rhd_shard_check(&o.shard);

    /* the avatars: positional PNGs or the dataset's subjects */
    job *jobs = NULL;
    int njobs = 0;
    rhd_err e;
    if (o.data && !o.list) {
        if (scan_portraits(o.data, &jobs, &njobs, &e)) rhd_die_err(&e);
    } else if (o.data) {
        rhd_subject_list sl;
        if (rhd_subjects_read_list(&sl, o.list, o.data, &e)) rhd_die_err(&e);
        njobs = sl.n;
        jobs = rhd_xcalloc((size_t)njobs, sizeof(job));
        for (int i = 0; i < njobs; i++) {
            jobs[i].name = rhd_xstrdup(sl.items[i].name);
            jobs[i].input = rhd_dataset_view_path(sl.items[i].dir, RHD_VIEW_IMAGE_FMT, 0);
        }
        rhd_subject_list_free(&sl);
    } else {
        njobs = n;
        jobs = rhd_xcalloc((size_t)njobs, sizeof(job));
        for (int i = 0; i < njobs; i++) jobs[i].name = name_of(argv[i + 1]), jobs[i].input = rhd_xstrdup(argv[i + 1]);
    }
    if (o.common.output && njobs != 1)
        rhd_usage_error("-o names one output file, got %d portraits; use --out-dir DIR", njobs);
    for (int i = 0; i < njobs; i++) {
        for (int k = 0; k < i; k++)
            if (strcmp(jobs[i].name, jobs[k].name) == 0)
                rhd_usage_error("%s and %s would both write '%s.safetensors', expected distinct avatar names", jobs[k].input,
                                jobs[i].input, jobs[i].name);
        if (o.common.output) {
            jobs[i].output = rhd_xstrdup(o.common.output);
        } else {
            size_t len = strlen(o.out_dir) + strlen(jobs[i].name) + 16;
            jobs[i].output = rhd_xmalloc(len);
            snprintf(jobs[i].output, len, "%s/%s.safetensors", o.out_dir, jobs[i].name);
        }
    }

    check_outputs(&o, jobs, njobs);

    rhd_ctx *ctx = rhd_ctx_open(o.common.device, &e);
    if (!ctx) rhd_die_err(&e);
    rhd_ctx_set_tf32(ctx, o.common.tf32);
    rhd_ctx_set_bf16(ctx, o.common.bf16);
    weights wt;
    load_weights(&wt, o.weights, ctx);

    /* this rank's share, minus the up-to-date outputs */
    int *todo = rhd_xmalloc(sizeof(int) * (njobs ? njobs : 1)), ntodo = 0, nskip = 0;
    for (int i = 0; i < njobs; i++) {
        if (!rhd_shard_mine(&o.shard, i)) continue;
        int fresh = !o.force && strcmp(jobs[i].output, "-") != 0 && rhd_file_newer(jobs[i].output, jobs[i].input);
        for (int k = 0; fresh && k < wt.nfiles; k++) fresh = rhd_file_newer(jobs[i].output, wt.files[k]);
        if (fresh) {
            rhd_verbose("%s: up to date (newer than its inputs), skipped", jobs[i].output);
            nskip++;
            continue;
        }
        todo[ntodo++] = i;
    }
    if (o.shard.world > 1) rhd_info("rank %lld of %lld: %d of %d avatars", o.shard.rank, o.shard.world, ntodo + nskip, njobs);
    if (nskip) rhd_info("%d avatar%s up to date, skipped (--force to redo)", nskip, nskip > 1 ? "s" : "");

    const int S = (int)o.size, B = (int)(o.batch < ntodo ? o.batch : (ntodo ? ntodo : 1));
    const rhd_vae_encoder *m = &wt.model;
    int64_t shapes[4][3];
    rhd_vae_encoder_shapes(m, S, S, shapes);
    size_t per[4], nx = (size_t)3 * S * S;
    float *dev_out[4], *host_out[4], *x = rhd_xmalloc(sizeof(float) * nx * B), *dx = rhd_buf_alloc(ctx, sizeof(float) * nx * B);
    for (int k = 0; k < 4; k++) {
        per[k] = (size_t)(shapes[k][0] * shapes[k][1] * shapes[k][2]);
        dev_out[k] = rhd_buf_alloc(ctx, sizeof(float) * per[k] * B);
        host_out[k] = rhd_xmalloc(sizeof(float) * per[k] * B);
    }
    rhd_arena arena;
    rhd_arena_init(&arena, ctx, ntodo ? rhd_vae_encoder_arena_bytes(m, B, S, S) : 0);
    rhd_info("encoding %d portrait%s on %s, batches of %d, %dx%d, %s", ntodo, ntodo == 1 ? "" : "s", ctx->name, B, S, S,
             dtype_names[o.dtype]);

    rhd_progress prog;
    rhd_progress_begin(&prog, "encode", "portraits", ntodo);
    int status = 0, done = 0, written = 0;
    int *batch = rhd_xmalloc(sizeof(int) * B), *srcw = rhd_xmalloc(sizeof(int) * B), *srch = rhd_xmalloc(sizeof(int) * B);
    for (int t = 0; t < ntodo;) {
        /* fill a batch with portraits that load; a bad one is reported and skipped */
        int nb = 0;
        while (nb < B && t < ntodo) {
            const job *jb = &jobs[todo[t++]];
            if (load_portrait(jb->input, x + (size_t)nb * nx, S, (rhd_resize_method)o.resize, &srcw[nb], &srch[nb], &e)) {
                report(e.msg);
                status = 1;
                rhd_progress_update(&prog, ++done);
                continue;
            }
            batch[nb++] = todo[t - 1];
        }
        if (!nb) continue;
        rhd_buf_upload(ctx, dx, x, sizeof(float) * nx * nb);
        rhd_vae_encoder_forward(ctx, m, &arena, dev_out[0], dev_out[1], dev_out[2], dev_out[3], dx, nb, S, S);
        for (int k = 0; k < 4; k++) rhd_buf_download(ctx, host_out[k], dev_out[k], sizeof(float) * per[k] * nb);
        for (int b = 0; b < nb; b++) {
            float *slices[4];
            for (int k = 0; k < 4; k++) slices[k] = host_out[k] + per[k] * b;
            if (write_features(&o, &wt, ctx, &jobs[batch[b]], slices, shapes, srcw[b], srch[b], &e)) {
                report(e.msg);
                status = 1;
            } else {
                written++;
            }
        }
        done += nb;
        rhd_progress_update(&prog, done);
    }
    rhd_progress_end(&prog);
    rhd_info("%d feature file%s written%s", written, written == 1 ? "" : "s", wt.random ? " (RANDOM weights)" : "");

    rhd_arena_free(&arena);
    for (int k = 0; k < 4; k++) rhd_buf_free(ctx, dev_out[k]), free(host_out[k]);
    rhd_buf_free(ctx, dx);
    free(x), free(todo), free(batch), free(srcw), free(srch);
    for (int i = 0; i < njobs; i++) free(jobs[i].name), free(jobs[i].input), free(jobs[i].output);
    free(jobs);
    for (int k = 0; k < wt.nfiles; k++) free(wt.files[k]);
    rhd_vae_encoder_free(&wt.model);
    rhd_ctx_close(ctx);
    if (rhd_close_stdout()) status = 1;
    return status;
}
