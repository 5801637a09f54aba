/* tools/rhd-train.c: train the diffusion models of RodinHD (spec diffusion.md §3, §4) on pairs of a
 * fitted triplane and portrait features; resumable, data-parallel over MPI ranks
 * (tools/rhd-train.md). The loop is common/train_run.h, the pairs common/train_data.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/cli.h"
#include "common/dist.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/train_run.h"
#include "common/train_upsample.h"
#include "common/models/unet.h"
#include "common/models/upsampler.h"

#define TOOL "rhd-train"

typedef struct opts {
    rhd_common_opts common;
    int model, preset, decay, tsampler, down, pred;
    const char *data, *triplanes, *features, *model_config, *init, *ema;
    long long steps, batch, micro, warmup, decay_steps, save_every, log_every, cache_mb;
    double lr, beta1, beta2, adam_eps, wd, lr_min, clip, uncond_p, dropout;
    int keep, resume, force;
    /* --model upsample */
    int degradation;
    const char *decoder, *views, *lpips, *view_range, *low_res;
    long long resolution, factor, patch, patches, grid_size, max_steps;
    double render_weight, lpips_weight;
    int render_clamp;
} opts;

static const char *const model_choices[] = {"base", "upsample", NULL};
static const char *const preset_choices[] = {"official", "small", NULL};
static const char *const decay_choices[] = {"none", "linear", "cosine", NULL};
static const char *const ts_choices[] = {"uniform", "loss-second-moment", NULL};
static const char *const down_choices[] = {"area", "bicubic", NULL};
static const char *const pred_choices[] = {"eps", "xstart", "v", NULL};
static const char *const degradation_choices[] = {"normal", "strong", "none", "area", NULL};

static const rhd_opt options[] = {
    RHD_OPT_GROUP_("model"),
    RHD_OPT_CHOICE_(0, "model", opts, model, "KIND", "base (the 128 triplane model) or upsample (the 128 -> 512 upsampler)", model_choices),
    RHD_OPT_CHOICE_(0, "preset", opts, preset, "NAME", "network size: official (base 366.8M, upsample 80.4M parameters) or small (CPU tests)", preset_choices),
    RHD_OPT_STRING_(0, "model-config", opts, model_config, "FILE", "JSON object of network config fields over the preset (common/models/unet.md, upsampler.md)"),
    RHD_OPT_DOUBLE_(0, "dropout", opts, dropout, "P", "dropout of the ResBlocks (-1: the config's: base 0.1, upsample 0)", -1, 0.99),
    RHD_OPT_CHOICE_(0, "pred", opts, pred, "KIND", "base: what the network predicts: eps (the original), xstart (x0: learns a small data set "
                    "far sooner, tools/rhd-train.md) or v", pred_choices),
    RHD_OPT_STRING_(0, "init", opts, init, "FILE", "start from these weights (a checkpoint or a converted state dict) instead of the seed"),
    RHD_OPT_GROUP_("data"),
    RHD_OPT_STRING_(0, "data", opts, data, "LIST", "pairs, one a line: TRIPLANE FEATURES (paths relative to LIST's folder)"),
    RHD_OPT_STRING_(0, "triplanes", opts, triplanes, "DIR", "or: <name>.safetensors / .npy triplanes, paired by name with --features"),
    RHD_OPT_STRING_(0, "features", opts, features, "DIR", "the <name>.safetensors features of rhd-encode"),
    RHD_OPT_CHOICE_(0, "downsample", opts, down, "F", "triplanes of another resolution: area (block mean) or bicubic", down_choices),
    RHD_OPT_INT_(0, "cache-mb", opts, cache_mb, "MB", "keep loaded pairs in memory up to this much", 0, 1e9),
    RHD_OPT_GROUP_("training"),
    RHD_OPT_INT_(0, "steps", opts, steps, "N", "optimiser steps in all (a resumed run continues to N)", 1, 2147483647),
    RHD_OPT_INT_(0, "batch", opts, batch, "B", "global batch (all ranks together; the original: 24 = 8 GPUs x 3)", 1, 1 << 20),
    RHD_OPT_INT_(0, "micro-batch", opts, micro, "M", "micro-batch of gradient accumulation (0: the rank's whole share)", 0, 1 << 20),
    RHD_OPT_DOUBLE_(0, "lr", opts, lr, "LR", "AdamW learning rate", 0, 10),
    RHD_OPT_DOUBLE_(0, "beta1", opts, beta1, "B", "AdamW beta1", 0, 0.999999),
    RHD_OPT_DOUBLE_(0, "beta2", opts, beta2, "B", "AdamW beta2", 0, 0.999999999),
    RHD_OPT_DOUBLE_(0, "adam-eps", opts, adam_eps, "E", "AdamW eps", 0, 1),
    RHD_OPT_DOUBLE_(0, "weight-decay", opts, wd, "W", "AdamW decoupled weight decay", 0, 10),
    RHD_OPT_INT_(0, "warmup", opts, warmup, "N", "linear learning-rate warm-up steps", 0, 2147483647),
    RHD_OPT_CHOICE_(0, "decay", opts, decay, "KIND", "learning-rate decay after the warm-up: none, linear, cosine", decay_choices),
    RHD_OPT_INT_(0, "decay-steps", opts, decay_steps, "N", "steps of the decay (0: to --steps)", 0, 2147483647),
    RHD_OPT_DOUBLE_(0, "lr-min", opts, lr_min, "LR", "learning rate at the end of the decay", 0, 10),
    RHD_OPT_DOUBLE_(0, "clip-grad", opts, clip, "X", "clip the global gradient norm to X (0: no clipping)", 0, 1e12),
    RHD_OPT_STRING_(0, "ema", opts, ema, "R,R", "EMA rates (the first is ema.*, the next ema1.*, ...)"),
    RHD_OPT_DOUBLE_(0, "uncond-p", opts, uncond_p, "P", "classifier-free dropout: probability of the all-ones null condition (-1, the default: 0.2 for --model base, 0 for upsample)", 0, 1),
    RHD_OPT_CHOICE_(0, "timestep-sampler", opts, tsampler, "S", "uniform or loss-second-moment", ts_choices),
    RHD_OPT_GROUP_("upsample model (--model upsample)"),
    RHD_OPT_INT_(0, "resolution", opts, resolution, "R", "HR plane side trained at (triplanes of another side are resized by --downsample)", 4, 8192),
    RHD_OPT_INT_(0, "factor", opts, factor, "F", "upsampling factor, a power of two: the low-res condition has side R/F (the original: 4)", 1, 64),
    RHD_OPT_CHOICE_(0, "degradation", opts, degradation, "KIND", "low-res condition: normal (the original's chain), strong, none (bicubic), area (block means, as the base model's data)", degradation_choices),
    RHD_OPT_STRING_(0, "low-res", opts, low_res, "DIR[,DIR]", "precomputed low-res triplanes DIR/<pair name>.safetensors|.npy of side R/F instead of the degradation (one dir drawn per item)"),
    RHD_OPT_STRING_(0, "decoder", opts, decoder, "FILE", "the fitted decoder (frozen) for the rendering loss"),
    RHD_OPT_STRING_(0, "views", opts, views, "DIR", "dataset root: DIR/<pair name>/ holds the avatar's views and cameras"),
    RHD_OPT_STRING_(0, "lpips", opts, lpips, "FILE", "LPIPS-VGG weights (formats/lpips.md; pipelines/lpips_weights.py makes them)"),
    RHD_OPT_DOUBLE_(0, "render-weight", opts, render_weight, "W", "weight of the rendered patch's L1 (0 with --lpips-weight 0: no rendering loss)", 0, 1e6),
    RHD_OPT_DOUBLE_(0, "lpips-weight", opts, lpips_weight, "W", "weight of the rendered patch's LPIPS-VGG", 0, 1e6),
    RHD_OPT_FLAG_(0, "render-clamp", opts, render_clamp, "the rendering loss reads clamp(x0_hat, -1, 1), as rhd-fit renders (a deviation: the original renders x0_hat unclamped)"),
    RHD_OPT_INT_(0, "patch", opts, patch, "P", "rendered patch side", 1, 4096),
    RHD_OPT_INT_(0, "patches", opts, patches, "N", "patches per item and step (their losses averaged)", 1, 1024),
    RHD_OPT_STRING_(0, "view-range", opts, view_range, "A-B", "views drawn for the rendering loss (both included)"),
    RHD_OPT_INT_(0, "grid-size", opts, grid_size, "N", "the rendering loss's occupancy grid (power of two)", 8, 1024),
    RHD_OPT_INT_(0, "max-steps", opts, max_steps, "N", "samples per rendered ray at most", 1, 1 << 20),
    RHD_OPT_GROUP_("run folder"),
    RHD_OPT_INT_(0, "save-every", opts, save_every, "N", "checkpoint every N steps (and at the end)", 1, 2147483647),
    RHD_OPT_INT_(0, "log-every", opts, log_every, "N", "a log line (means over N steps) every N steps", 1, 2147483647),
    RHD_OPT_FLAG_(0, "keep", opts, keep, "also keep step-NNNNNNN.safetensors at every checkpoint"),
    RHD_OPT_FLAG_(0, "resume", opts, resume, "continue the run in -o RUN from its checkpoint (same options)"),
    RHD_OPT_FLAG_(0, "force", opts, force, "start over in a folder that holds a run"),
    RHD_COMMON_OPTS(opts),
    RHD_OPT_END_};

static const rhd_cli cli = {
    TOOL,
    "rhd-train --model base|upsample (--data LIST | --triplanes DIR --features DIR) -o RUN [options]",
    "Train the triplane diffusion models of RodinHD (spec diffusion.md §3-§5) on pairs of a fitted\n"
    "triplane (rhd-fit) and portrait features (rhd-encode): hybrid loss (eps MSE + VB), AdamW, EMA,\n"
    "classifier-free dropout, gradient accumulation. --model upsample trains the 128 -> 512 upsampler (§5):\n"
    "x0 MSE against the HR triplane from a degraded low-res copy, plus the rendering loss through the frozen\n"
    "decoder (--decoder, --views, --lpips). RUN/ holds checkpoint.safetensors (formats/checkpoint.md),\n"
    "train_log.jsonl (formats/train_log.md) and loss.png; --resume continues bit-identically on the CPU.\n"
    "Data-parallel: build with `make MPI=1` and launch with mpirun (tools/rhd-train.md).\n",
    options,
    "examples (tests/tools/t1000-train.sh runs them; pairs.txt lists two fitted avatars, tiny.json narrows\n"
    "the small preset: {\"latent_size\": 8, \"patch\": 8, \"model_channels\": 16, \"groups\": 8, ...}):\n"
    "  rhd-train --model base --preset small --model-config tiny.json --data pairs.txt \\\n"
    "            --batch 2 --steps 4 --lr 1e-3 --save-every 2 --log-every 1 --threads 1 -o run\n"
    "  rhd-train --model base --preset small --model-config tiny.json --data pairs.txt \\\n"
    "            --batch 2 --steps 6 --lr 1e-3 --save-every 2 --log-every 1 --threads 1 -o run --resume\n"
    "  mpirun -np 2 build-mpi/bin/rhd-train --model base --preset small --model-config tiny.json \\\n"
    "            --data pairs.txt --batch 2 --micro-batch 1 --steps 2 --threads 1 -o run2\n"
    "(--model upsample: the worked example in tools/rhd-train.md, run by tests/tools/t1010-train-upsample.sh)\n"};

static void parse_ema(const char *s, rhd_train_cfg *c) {
    c->nema = 0;
    for (const char *p = s; *p;) {
        char *end;
        double r = strtod(p, &end);
        if (end == p || r < 0 || r >= 1 || (*end && *end != ',') || c->nema == RHD_TRAIN_MAX_EMA)
            rhd_usage_error("--ema '%s': expected up to %d comma-separated rates in [0, 1) (e.g. --ema 0.9999,0.999)", s, RHD_TRAIN_MAX_EMA);
        c->ema[c->nema++] = r;
        p = *end ? end + 1 : end;
    }
    if (!c->nema) rhd_usage_error("--ema '%s': expected at least one rate (e.g. --ema 0.9999)", s);
}

static void to_cfg(const opts *o, rhd_train_cfg *c) {
    rhd_train_cfg_init(c);
    c->dir = o->common.output, c->model = model_choices[o->model], c->preset = preset_choices[o->preset];
    c->init = o->init, c->seed = (uint64_t)o->common.seed, c->steps = o->steps;
    c->batch = (int)o->batch, c->micro = (int)o->micro;
    c->lr = o->lr, c->beta1 = o->beta1, c->beta2 = o->beta2, c->eps = o->adam_eps, c->weight_decay = o->wd;
    c->warmup = o->warmup, c->decay = (rhd_lr_decay)o->decay, c->decay_steps = o->decay_steps, c->lr_min = o->lr_min;
    c->clip = o->clip, c->uncond_p = o->uncond_p >= 0 ? o->uncond_p : o->model ? 0 : 0.2, c->dropout = o->dropout;
    c->tsampler = (rhd_tsampler_kind)o->tsampler;
    c->pred = o->model == 0 ? o->pred : -1;
    c->save_every = o->save_every, c->log_every = o->log_every, c->keep = o->keep, c->resume = o->resume;
    c->down = (rhd_downsample)o->down, c->cache_bytes = (size_t)o->cache_mb << 20;
    c->progress = !o->common.quiet;
    parse_ema(o->ema, c);
}

static void opts_init(opts *o) {
    memset(o, 0, sizeof *o);
    rhd_common_opts_init(&o->common);
    o->steps = 1000, o->batch = 3, o->lr = 1e-5, o->beta1 = 0.9, o->beta2 = 0.999, o->adam_eps = 1e-8;
    o->uncond_p = -1, o->dropout = -1, o->save_every = 5000, o->log_every = 100, o->cache_mb = 2048;
    o->ema = "0.9999";
    o->resolution = 512, o->factor = 4, o->render_weight = 1, o->lpips_weight = 0.5, o->patch = 64, o->patches = 1;
    o->grid_size = 128, o->max_steps = 1024;
}

/* The upsample kind's options (rhd_train_ups_configure); usage errors for a wrong combination. */
static void ups_opts(const opts *o, rhd_train_ups_opts *u) {
    rhd_train_ups_opts_default(u);
    u->R = (int)o->resolution, u->sf = (int)o->factor, u->degrade = (rhd_degrade_kind)o->degradation;
    u->decoder = o->decoder, u->views = o->views, u->lpips = o->lpips, u->low_res = o->low_res;
    u->render_weight = o->render_weight, u->lpips_weight = o->lpips_weight, u->render_clamp = o->render_clamp;
    u->patch = (int)o->patch, u->patches = (int)o->patches;
    u->grid_size = (int)o->grid_size, u->max_steps = (int)o->max_steps;
    if (o->view_range) {
        int a, b, n = 0;
        if (sscanf(o->view_range, "%d-%d%n", &a, &b, &n) != 2 || o->view_range[n] || a < 0 || b < a)
            rhd_usage_error("--view-range '%s': expected A-B with 0 <= A <= B (e.g. --view-range 0-280)", o->view_range);
        u->view_lo = a, u->view_hi = b;
    }
    rhd_err e = {0};
    if (rhd_train_ups_opts_check(u, &e)) rhd_usage_error("--model upsample: %s", e.msg);
}

/* The outermost of dir and its parents that does not exist yet (malloc'd), or NULL. */
static char *first_missing(const char *dir) {
    char *p = rhd_xstrdup(dir), *top = NULL;
    struct stat st;
    while (*p && stat(p, &st) != 0) {
        free(top);
        top = rhd_xstrdup(p);
        char *slash = strrchr(p, '/');
        if (!slash || slash == p) break;
        *slash = 0;
    }
    free(p);
    return top;
}

/* Remove the empty folders from dir up to top (what prepare_dir created): a refused run leaves
 * nothing behind. rmdir never removes a folder that holds anything. */
static void remove_created(const char *dir, const char *top) {
    if (!top) return;
    char *p = rhd_xstrdup(dir);
    for (;;) {
        if (rmdir(p) != 0 || !strcmp(p, top)) break;
        char *slash = strrchr(p, '/');
        if (!slash || slash == p) break;
        *slash = 0;
    }
    free(p);
}

/* The run folder: created; one that holds a run needs --resume or --force. Returns the outermost
 * folder this call created (malloc'd; NULL: none), for remove_created. */
static char *prepare_dir(const opts *o) {
    const char *dir = o->common.output;
    char *created = first_missing(dir);
    char *ck = rhd_path_join(dir, "checkpoint.safetensors");
    int has = rhd_file_exists(ck);
    if (has && !o->resume && !o->force)
        rhd_usage_error("-o %s holds a run (%s), expected --resume to continue it or --force to start over", dir, ck);
    if (!has && o->resume) rhd_usage_error("--resume: %s does not exist, expected the folder of an earlier run", ck);
    if (!has || o->force) {
        rhd_err e = {0};
        char *probe = rhd_path_join(dir, "x");
        if (rhd_mkdir_parents(probe, &e)) rhd_die("%s", e.msg);
        mkdir(dir, 0777);
        free(probe);
        if (rhd_check_output_writable("-o", ck, &e)) rhd_usage_error("%s", e.msg);
    }
    free(ck);
    return created;
}


static void check_usage(const opts *o, int n, char **argv) {
    if (n > 0) rhd_usage_error("unexpected argument '%s', expected options only", argv[1]);
    if (o->model == 0) {
        const char *ups = o->decoder ? "--decoder" : o->views ? "--views" : o->lpips ? "--lpips" : o->view_range ? "--view-range"
                        : o->low_res ? "--low-res" : NULL;
        if (ups) rhd_usage_error("%s is an option of --model upsample, expected it only with that model", ups);
    }
    if (o->model == 1 && o->pred)
        rhd_usage_error("--pred %s with --model upsample: the upsampler predicts x0 (spec §4), expected --pred only with --model base",
                        pred_choices[o->pred]);
    if (o->model == 1 && o->uncond_p > 0)
        rhd_usage_error("--uncond-p %g with --model upsample: the upsampler is trained without classifier-free "
                        "dropout (spec §4), expected --uncond-p 0", o->uncond_p);
    if (!o->common.output) rhd_usage_error("expected -o RUN (the run folder)");
    if (!o->data == !(o->triplanes || o->features))
        rhd_usage_error("expected either --data LIST or --triplanes DIR --features DIR");
    if (!o->data && (!o->triplanes || !o->features))
        rhd_usage_error("--%s without --%s, expected both folders", o->triplanes ? "triplanes" : "features",
                        o->triplanes ? "features" : "triplanes");
    if (o->micro && o->batch % o->micro) rhd_usage_error("--micro-batch %lld does not divide --batch %lld, expected a divisor", o->micro, o->batch);
    if (o->resume && o->force) rhd_usage_error("--resume and --force together, expected one of them");
}

/* --model-config FILE's text, checked over the preset as the model will take it (naming the file,
 * a usage error as a bad --config), before any data is read. */
static char *read_config(const opts *o) {
    const char *path = o->model_config;
    if (!path) return NULL;
    char *t;
    size_t n;
    rhd_err e = {0};
    if (rhd_read_file(path, &t, &n, &e)) rhd_usage_error("--model-config %s", e.msg);
    if (rhd_train_model_kind(model_choices[o->model])->check_config(t, n, preset_choices[o->preset], path, &e)) {
        if (strncmp(e.msg, path, strlen(path))) rhd_usage_error("--model-config %s: %s", path, e.msg);
        rhd_usage_error("--model-config %s", e.msg);
    }
    return t;
}

int main(int argc, char **argv) {
    rhd_set_prog(argv[0]);
    rhd_dist dist;
    rhd_err e = {0};
    if (rhd_dist_init(&dist, &argc, &argv, &e)) rhd_die("%s", e.msg);
    opts o;
    opts_init(&o);
    int n = rhd_cli_parse(&cli, argc, argv, &o);
    if (dist.rank) o.common.quiet = 1;
    rhd_common_opts_apply(&o.common);
    rhd_fs_install_signal_handlers();
    check_usage(&o, n, argv);
    if (o.model == 1) {
        rhd_train_ups_opts u;
        ups_opts(&o, &u);
        rhd_train_ups_configure(&u);
    }
    rhd_train_cfg cfg;
    to_cfg(&o, &cfg);
    char *mjson = read_config(&o);
    cfg.model_json = mjson;
    rhd_train_data data = {0}; /* the pairs before the run folder: a bad list leaves no empty folder */
    int rc = o.data ? rhd_train_pairs_from_list(&data, o.data, &e) : rhd_train_pairs_from_dirs(&data, o.triplanes, o.features, &e);
    if (rc) rhd_die("%s", e.msg);
    char *created = !dist.rank ? prepare_dir(&o) : NULL;
    rhd_dist_barrier(&dist);
    rhd_ctx *ctx = rhd_ctx_open(o.common.device ? o.common.device : "cpu", &e);
    if (!ctx) {
        remove_created(o.common.output, created);
        rhd_die("%s", e.msg);
    }
    rhd_ctx_set_tf32(ctx, o.common.tf32);
    rhd_ctx_set_bf16(ctx, o.common.bf16);
    rhd_train_run *run = rhd_train_open(&cfg, &data, ctx, &dist, &e);
    if (!run || rhd_train_execute(run, &e)) {
        fprintf(stderr, "%s: error: %s\n", TOOL, e.msg);
        rhd_fs_cleanup();
        if (!run) remove_created(o.common.output, created); /* refused before writing: no empty folder left */
        rhd_dist_abort(&dist, 1);
    }
    if (!dist.rank)
        printf("{\"run\":\"%s\",\"steps\":%lld,\"checkpoint\":\"%s/checkpoint.safetensors\"}\n", cfg.dir,
               (long long)rhd_train_steps_done(run), cfg.dir);
    rhd_train_close(run);
    rhd_train_data_free(&data);
    rhd_ctx_close(ctx);
    free(mjson), free(created);
    rhd_dist_finalize(&dist);
    return fflush(stdout) ? 1 : 0;
}
