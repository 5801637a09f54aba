/* tools/rhd-sample.c: portrait features -> triplanes with the trained diffusion models, as the
 * original's base_sample.py and upsample_sample.py: the base model with classifier-free guidance
 * and the DDIM "dpm" sampler, then optionally the upsampler conditioned on the base sample.
 * Portraits are batched, sharded over ranks, skipped when their output is up to date; the noise
 * is keyed by (seed, portrait name, draw) or read from a noise file, and can be saved.
 * See tools/rhd-sample.md, formats/noise.md, common/sample_run.h. */
#include "common/cli.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/sample_run.h"
#include "common/triplane.h"
#include "formats/npy.h"
#include "formats/safetensors.h"
#include "formats/schema.h"
#include "formats/triplane_file.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Crash-test hooks of common/fit_run.c (declared in common/fit_run.h, whose model headers clash
 * with the sampler's): RHD_CRASH_AFTER=N exits at the N-th file operation (t0925-crash-sample.sh). */
void rhd_crash_point(const char *what, const char *path);
void rhd_crash_before_write(const char *path);

#define TOOL "rhd-sample"

typedef struct sample_cli_opts {
    rhd_common_opts common;
    const char *base, *upsample, *low_res, *list, *noise, *save_noise, *weights, *respace;
    const char *time_scale, *up_time_scale;
    int sampler, cond_noise, force, npy, no_clip, save_traj, low_prec;
    long long batch, steps, up_steps, up_res;
    double eta, up_eta, guidance, up_guidance;
    rhd_shard shard; /* --rank/--world (common/cli.h) */
} sample_cli_opts;

static const char *const sampler_names[] = {"ddim-dpm", "ddim", "ddpm", NULL};
static const char *const cond_noise_names[] = {"config", "uniform", "normal", "none", NULL};
static const char *const low_prec_names[] = {"fp16", "fp32", NULL};

static const rhd_opt sample_options[] = {
    RHD_OPT_GROUP_("inputs and outputs"),
    RHD_OPT_STRING_(0, "base", sample_cli_opts, base, "CKPT", "the base model's checkpoint (formats/checkpoint.md)"),
    RHD_OPT_STRING_(0, "upsample", sample_cli_opts, upsample, "CKPT", "also upsample each base sample with this upsampler checkpoint"),
    RHD_OPT_STRING_(0, "low-res", sample_cli_opts, low_res, "DIR", "with --upsample and no --base: upsample DIR/<name>.(safetensors|npy) instead"),
    RHD_OPT_STRING_(0, "list", sample_cli_opts, list, "FILE", "features files, one per line (relative to FILE's folder)"),
    RHD_OPT_STRING_(0, "weights", sample_cli_opts, weights, "W", "ema, model or emaK (default: ema when the checkpoint has it, else model)"),
    RHD_OPT_FLAG_(0, "npy", sample_cli_opts, npy, "write the original's .npy (float16 [3,1,C,R,R]; upsampled [C,R,3R]) instead of safetensors"),
    RHD_OPT_FLAG_(0, "save-trajectory", sample_cli_opts, save_traj, "also write OUT/<name>.trajectory.safetensors: the clipped x0 of every step"),
    RHD_OPT_FLAG_(0, "force", sample_cli_opts, force, "sample even when an output is newer than its inputs"),
    RHD_OPT_GROUP_("base sampler"),
    RHD_OPT_CHOICE_(0, "sampler", sample_cli_opts, sampler, "NAME", "ddim-dpm (the original's), ddim or ddpm", sampler_names),
    RHD_OPT_INT_(0, "steps", sample_cli_opts, steps, "N", "ddim-dpm: S in 1..T (may run S+1 steps); ddim/ddpm: N uniformly respaced steps (0: all T, the checkpoint's diffusion steps)", 0, 100000),
    RHD_OPT_STRING_(0, "respace", sample_cli_opts, respace, "SPEC", "ddim/ddpm: a respacing spec instead of --steps (e.g. ddim50)"),
    RHD_OPT_DOUBLE_(0, "eta", sample_cli_opts, eta, "X", "DDIM eta", 0, 100),
    RHD_OPT_DOUBLE_(0, "guidance", sample_cli_opts, guidance, "S", "classifier-free guidance scale (1: one unguided call)", 0, 100),
    RHD_OPT_STRING_(0, "time-scale", sample_cli_opts, time_scale, "X", "timestep fed to the net: rescaled (1000/T), raw, train (the checkpoint's) or a factor"),
    RHD_OPT_FLAG_(0, "no-clip", sample_cli_opts, no_clip, "do not clamp the predicted x0 to [-1,1] (both stages)"),
    RHD_OPT_CHOICE_(0, "cond-noise", sample_cli_opts, cond_noise, "KIND", "noise of the portrait latent sample (§1.4): config, uniform, normal, none", cond_noise_names),
    RHD_OPT_INT_(0, "batch", sample_cli_opts, batch, "N", "portraits per batch (guidance doubles the network batch)", 1, 64),
    RHD_OPT_GROUP_("upsampler (with --upsample)"),
    RHD_OPT_INT_(0, "up-steps", sample_cli_opts, up_steps, "S", "DDIM dpm steps", 1, 100000),
    RHD_OPT_DOUBLE_(0, "up-eta", sample_cli_opts, up_eta, "X", "DDIM eta", 0, 100),
    RHD_OPT_DOUBLE_(0, "up-guidance", sample_cli_opts, up_guidance, "S", "guidance (null condition: ref = ones, low-res kept)", 0, 100),
    RHD_OPT_STRING_(0, "up-time-scale", sample_cli_opts, up_time_scale, "X", "rescaled (10 t, the original's sampling), raw (t, as it trained), train or a factor"),
    RHD_OPT_CHOICE_(0, "low-res-precision", sample_cli_opts, low_prec, "P", "the low-res condition rounded to fp16 first, as the original's float16 LR/<name>.npy files hold it, or kept fp32", low_prec_names),
    RHD_OPT_INT_(0, "up-res", sample_cli_opts, up_res, "R", "output plane side (0: the upsampler's factor x the base's, 4 unless trained with rhd-train --factor)", 0, 8192),
    RHD_OPT_GROUP_("noise and sharding"),
    RHD_OPT_STRING_(0, "noise", sample_cli_opts, noise, "FILE", "take x_T, every step's z and the latent draw from FILE (formats/noise.md)"),
    RHD_OPT_STRING_(0, "save-noise", sample_cli_opts, save_noise, "FILE", "write the noise used to FILE (replay with --noise)"),
    RHD_SHARD_OPTS(sample_cli_opts, shard),
    RHD_COMMON_OPTS(sample_cli_opts),
    RHD_OPT_END_};

static const rhd_cli sample_cli = {
    TOOL,
    "rhd-sample (--base CKPT [--upsample CKPT] | --upsample CKPT --low-res DIR) -o OUT/ (FEATURES.safetensors... | --list FILE)",
    "Sample a triplane for each portrait's features (rhd-encode's output) with the base diffusion\n"
    "model: DDIM with the original's \"dpm\" steps (S = 10, eta = 1), classifier-free guidance 1.3 on\n"
    "the eps channels, x0 clipped. With --upsample, the base sample conditions the upsampler (DDIM\n"
    "S = 10, eta = 0, no guidance) for the high-resolution triplane; with --upsample and --low-res DIR\n"
    "instead of --base, the condition is DIR/<name>.safetensors (or .npy), as the original's\n"
    "upsample_sample.py reads LR/<name>.npy. Writes OUT/<name>.safetensors\n"
    "(kind triplane) per portrait and one JSON line per portrait on stdout. The noise is drawn from\n"
    "Philox keyed by (--seed, portrait name, draw): a sample does not depend on its batch or the\n"
    "thread count. An output newer than its features and checkpoints and made with the same options is skipped\n"
    "(--force redoes it).\n",
    sample_options,
    "examples:\n"
    "  rhd-sample --base base.ckpt.safetensors -o samples features/*.safetensors\n"
    "  rhd-sample --upsample up.ckpt.safetensors --low-res samples -o hr features/*.safetensors\n"
    "  rhd-sample --base base.ckpt.safetensors --upsample up.ckpt.safetensors --batch 4 -o hr --list feats.txt\n"
    "  rhd-sample --base base.ckpt.safetensors --save-noise n.safetensors -o a features/x.safetensors\n"
    "  rhd-sample --base base.ckpt.safetensors --noise n.safetensors --npy -o b features/x.safetensors\n"
    "  rhd-sample --base base.ckpt.safetensors --sampler ddpm --steps 100 --guidance 1 -o c features/x.safetensors\n"};

typedef struct job {
    char *name, *input, *output, *traj;
    char *low_path; /* --low-res: DIR/<name>.safetensors or .npy */
    float *low;     /* its planes, rolled [C, low_r, 3 low_r] (read before any work) */
    rhd_sample_cond cond;
    int row[2];
} job;

/* "dir/avatar_7.safetensors" -> "avatar_7" (cut at the first '.', as the original names, §7.18) */
static char *name_of(const char *path) {
    const char *base = strrchr(path, '/');
    char *s = rhd_xstrdup(base ? base + 1 : path), *dot = strchr(s, '.');
    if (dot && dot != s) *dot = 0;
    return s;
}

static double parse_time_scale(const char *opt, const char *v, const rhd_sample_model *m) {
    if (!v || !strcmp(v, "rescaled")) return 0;
    if (!strcmp(v, "raw")) return 1;
    if (!strcmp(v, "train")) return m->train_time_scale;
    double x;
    if (rhd_parse_double(v, &x) || !(x > 0) || x > 1e4) /* t x factor stays a modest fp32 timestep */
        rhd_usage_error("%s takes rescaled, raw, train or a factor in (0, 1e4] (e.g. %s raw), got '%s'", opt, opt, v);
    return x;
}

/* --low-res DIR: DIR/<name>.safetensors, else DIR/<name>.npy (the first when neither is there). */
static char *low_res_path(const char *dir, const char *name) {
    char fn[1100];
    snprintf(fn, sizeof fn, "%s.safetensors", name);
    char *path = rhd_path_join(dir, fn);
    if (rhd_file_exists(path)) return path;
    snprintf(fn, sizeof fn, "%s.npy", name);
    char *npy = rhd_path_join(dir, fn);
    if (rhd_file_exists(npy)) return free(path), npy;
    free(npy);
    return path;
}

/* The features files: positional or --list (paths relative to the list's folder). */
static job *read_jobs(const sample_cli_opts *o, char **argv, int n, int *njobs) {
    char **paths = NULL;
    int cnt = 0;
    if (o->list) {
        char *text;
        size_t len;
        rhd_err e;
        if (rhd_read_file(o->list, &text, &len, &e)) rhd_die_err(&e);
        char *dir = rhd_xstrdup(o->list), *slash = strrchr(dir, '/');
        if (slash) slash[slash == dir] = 0; else dir[0] = 0; /* "a/b.txt" -> "a", "/b.txt" -> "/" */
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
            while (*line == ' ' || *line == '\t') line++;
            size_t l = strlen(line);
            while (l && (line[l - 1] == '\r' || line[l - 1] == ' ')) line[--l] = 0;
            if (!l || line[0] == '#') continue;
            paths = rhd_xrealloc(paths, sizeof(char *) * (size_t)(cnt + 1));
            paths[cnt++] = line[0] == '/' || !dir[0] ? rhd_xstrdup(line) : rhd_path_join(dir, line);
        }
        free(text), free(dir);
        if (!cnt) rhd_usage_error("--list %s: no features files listed, expected one path per line", o->list);
    } else {
        paths = rhd_xmalloc(sizeof(char *) * (size_t)n);
        for (int i = 0; i < n; i++) paths[cnt++] = rhd_xstrdup(argv[i + 1]);
    }
    job *jobs = rhd_xcalloc((size_t)cnt, sizeof(job));
    for (int i = 0; i < cnt; i++) {
        jobs[i].input = paths[i], jobs[i].name = name_of(paths[i]);
        for (int k = 0; k < i; k++)
            if (!strcmp(jobs[k].name, jobs[i].name))
                rhd_usage_error("%s and %s are both portrait '%s', expected distinct names (outputs are OUT/<name>)",
                                jobs[k].input, jobs[i].input, jobs[i].name);
        size_t len = strlen(o->common.output) + strlen(jobs[i].name) + 40;
        jobs[i].output = rhd_xmalloc(len), jobs[i].traj = rhd_xmalloc(len);
        snprintf(jobs[i].output, len, "%s/%s.%s", o->common.output, jobs[i].name, o->npy ? "npy" : "safetensors");
        snprintf(jobs[i].traj, len, "%s/%s.trajectory.safetensors", o->common.output, jobs[i].name);
        if (o->low_res) jobs[i].low_path = low_res_path(o->low_res, jobs[i].name);
    }
    free(paths);
    *njobs = cnt;
    return jobs;
}

/* No output may be an input; every output of this rank must be writable (usage error / exit 1). */
static void check_outputs(const sample_cli_opts *o, const job *jobs, int njobs) {
    const char **in = rhd_xmalloc(sizeof(char *) * (size_t)(2 * njobs + 5));
    int nin = 0;
    in[nin++] = o->base, in[nin++] = o->upsample, in[nin++] = o->noise, in[nin++] = o->list, in[nin++] = o->common.config;
    for (int i = 0; i < njobs; i++) {
        in[nin++] = jobs[i].input;
        if (jobs[i].low_path) in[nin++] = jobs[i].low_path;
    }
    rhd_err e;
    for (int i = 0; i < njobs; i++) {
        if (!rhd_shard_mine(&o->shard, i)) continue;
        const char *outs[2] = {jobs[i].output, o->save_traj ? jobs[i].traj : NULL};
        for (int k = 0; k < 2 && outs[k]; k++) {
            if (rhd_check_output_not_input("-o", outs[k], in, nin, &e)) rhd_usage_error("%s", e.msg);
            if (rhd_check_output_writable("-o", outs[k], &e)) rhd_die_err(&e);
        }
    }
    if (o->save_noise) {
        if (rhd_check_output_not_input("--save-noise", o->save_noise, in, nin, &e)) rhd_usage_error("%s", e.msg);
        if (rhd_check_output_writable("--save-noise", o->save_noise, &e)) rhd_die_err(&e);
    }
    free(in);
}

/* ---- outputs ---------------------------------------------------------------------------------- */

typedef struct run {
    const sample_cli_opts *o;
    rhd_ctx *ctx;
    rhd_sample_model base, up;
    rhd_sample_opts bo, uo;
    rhd_sample_plan bp, upl;
    int has_base, has_up;
    int low_r;          /* --low-res: the plane side of the low-res files (else the base's) */
    rhd_st *noise;
    rhd_noise_record rec;
} run;

static void add_stage_meta(cJSON *j, const char *key, const rhd_sample_model *m, const rhd_sample_opts *so,
                           const rhd_sample_plan *p) {
    cJSON *s = cJSON_AddObjectToObject(j, key);
    cJSON_AddStringToObject(s, "checkpoint", m->path);
    char sha[80];
    snprintf(sha, sizeof sha, "sha256:%s", m->sha256);
    cJSON_AddStringToObject(s, "checkpoint_sha256", sha);
    cJSON_AddStringToObject(s, "weights", m->weights);
    cJSON_AddNumberToObject(s, "checkpoint_step", (double)m->step);
    cJSON_AddStringToObject(s, "sampler", rhd_sampler_kind_name(so->kind));
    cJSON_AddNumberToObject(s, "steps", p->nsteps);
    if (so->kind == RHD_SAMPLER_DDIM_DPM) cJSON_AddNumberToObject(s, "S", so->steps);
    if (so->respace) cJSON_AddStringToObject(s, "respace", so->respace);
    cJSON_AddNumberToObject(s, "eta", so->eta);
    cJSON_AddNumberToObject(s, "guidance", so->guidance);
    cJSON_AddBoolToObject(s, "clip", so->clip);
    cJSON_AddNumberToObject(s, "time_scale", so->time_scale > 0 ? so->time_scale : 1000.0 / m->T);
    static const char *const cn[] = {"uniform", "normal", "none"};
    cJSON_AddStringToObject(s, "cond_noise", cn[so->cond_noise]);
    if (m->stage == RHD_STAGE_UPSAMPLE) cJSON_AddStringToObject(s, "low_res_precision", so->low_fp16 ? "fp16" : "fp32");
}

static char *config_json(const run *r, const job *jb) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "features", jb->input);
    if (r->has_base) add_stage_meta(j, "base", &r->base, &r->bo, &r->bp);
    else cJSON_AddStringToObject(j, "low_res", jb->low_path);
    if (r->has_up) add_stage_meta(j, "upsample", &r->up, &r->uo, &r->upl);
    if (r->o->noise) cJSON_AddStringToObject(j, "noise", r->o->noise);
    else cJSON_AddNumberToObject(j, "seed", (double)r->o->common.seed);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

/* One portrait's result x (host, rolled [C, R, 3R]) to its output. */
/* An existing sample made with this run's options (its rhd.config equals the one this run would
 * record): only then may it be skipped. A .npy keeps no options: its time stamps decide. */
static int same_options(const run *r, const job *jb) {
    if (r->o->npy) return 1;
    rhd_st *st;
    rhd_err e;
    if (rhd_st_open(jb->output, &st, &e)) return 0;
    const char *had = rhd_st_meta(st, "rhd.config");
    char *now = config_json(r, jb);
    int same = had && !strcmp(had, now);
    free(now);
    rhd_st_close(st);
    return same;
}

static int write_sample(const run *r, const job *jb, const float *x, int C, int R, rhd_err *e) {
    const int64_t n = (int64_t)C * R * 3 * R;
    if (rhd_mkdir_parents(jb->output, e)) return -1;
    if (r->o->npy) {
        uint16_t *h = rhd_xmalloc(sizeof(uint16_t) * (size_t)n);
        float *planes = rhd_xmalloc(sizeof(float) * (size_t)n);
        const float *src = x;
        if (!r->has_up) rhd_triplane_unroll(planes, x, C, R), src = planes;
        for (int64_t i = 0; i < n; i++) h[i] = rhd_float_to_half(src[i]);
        rhd_tensor t = {RHD_F16, r->has_up ? 3 : 5, {0}, h};
        int64_t s5[5] = {3, 1, C, R, R}, s3[3] = {C, R, 3 * R};
        memcpy(t.shape, r->has_up ? s3 : s5, sizeof(int64_t) * (size_t)t.ndim);
        rhd_crash_before_write(jb->output); /* RHD_CRASH_AFTER (tests/tools/t0925-crash-sample.sh) */
        int rc = rhd_npy_write(jb->output, &t, e);
        if (!rc) rhd_crash_point("wrote", jb->output);
        free(h), free(planes);
        return rc;
    }
    float *planes = rhd_xmalloc(sizeof(float) * (size_t)n);
    rhd_triplane_unroll(planes, x, C, R);
    rhd_st_writer w;
    rhd_st_writer_init(&w);
    int64_t shape[4] = {3, C, R, R};
    rhd_st_add_f32(&w, "planes", RHD_F32, 4, shape, planes);
    rhd_schema_stamp(&w, "triplane", TOOL);
    rhd_st_set_meta(&w, "rhd.avatar", jb->name);
    char seed[32], *cfg = config_json(r, jb);
    snprintf(seed, sizeof seed, "%lld", r->o->common.seed);
    if (!r->o->noise) rhd_st_set_meta(&w, "rhd.seed", seed);
    rhd_st_set_meta(&w, "rhd.config", cfg);
    rhd_st_set_meta(&w, "rhd.device", rhd_ctx_device_label(r->ctx));
    rhd_crash_before_write(jb->output);
    int rc = rhd_st_write(&w, jb->output, e);
    if (!rc) rhd_crash_point("wrote", jb->output);
    rhd_st_writer_free(&w);
    free(planes), free(cfg);
    return rc;
}

static int write_traj(const run *r, const job *jb, const float *tb, const float *tu, int Rb, int Ru, rhd_err *e) {
    rhd_st_writer w;
    rhd_st_writer_init(&w);
    const float *src[2] = {tb, tu};
    const rhd_sample_plan *p[2] = {&r->bp, &r->upl};
    const int Rs[2] = {Rb, Ru}, C = r->has_base ? r->base.C : r->up.C;
    float *planes[2] = {NULL, NULL};
    for (int s = 0; s < 2; s++) {
        if (!src[s]) continue;
        const int64_t n = (int64_t)C * Rs[s] * 3 * Rs[s];
        planes[s] = rhd_xmalloc(sizeof(float) * (size_t)(n * p[s]->nsteps));
        for (int k = 0; k < p[s]->nsteps; k++) rhd_triplane_unroll(planes[s] + k * n, src[s] + k * n, C, Rs[s]);
        int64_t shape[5] = {p[s]->nsteps, 3, C, Rs[s], Rs[s]};
        rhd_st_add_f32(&w, s ? "up.x0" : "x0", RHD_F32, 5, shape, planes[s]);
    }
    rhd_st_set_meta(&w, "rhd.kind", "trajectory");
    rhd_st_set_meta(&w, "rhd.version", "1");
    rhd_st_set_meta(&w, "rhd.tool", TOOL);
    rhd_st_set_meta(&w, "rhd.avatar", jb->name);
    if (rhd_mkdir_parents(jb->traj, e)) return rhd_st_writer_free(&w), free(planes[0]), free(planes[1]), -1;
    rhd_crash_before_write(jb->traj);
    int rc = rhd_st_write(&w, jb->traj, e);
    if (!rc) rhd_crash_point("wrote", jb->traj);
    rhd_st_writer_free(&w);
    free(planes[0]), free(planes[1]);
    return rc;
}

/* The base stage of setup. */
static void setup_base(run *r, const sample_cli_opts *o) {
    rhd_err e;
    if (rhd_sample_model_load(&r->base, o->base, RHD_STAGE_BASE, o->weights, r->ctx, &e)) rhd_die_err(&e);
    rhd_sample_opts_init(&r->bo, &r->base);
    r->bo.kind = (rhd_sampler_kind)o->sampler, r->bo.steps = (int)o->steps, r->bo.respace = o->respace;
    r->bo.eta = o->eta, r->bo.guidance = o->guidance, r->bo.clip = !o->no_clip, r->bo.seed = (uint64_t)o->common.seed;
    r->bo.time_scale = parse_time_scale("--time-scale", o->time_scale, &r->base);
    if (o->cond_noise) r->bo.cond_noise = (rhd_unet_noise)(o->cond_noise - 1);
    if (r->bo.kind == RHD_SAMPLER_DDIM_DPM && r->bo.steps < 1) rhd_usage_error("--steps 0: the ddim-dpm sampler takes S >= 1 (e.g. --steps 10)");
    if (rhd_sample_plan_init(&r->bp, &r->base, &r->bo, &e)) {
        if (o->respace) rhd_usage_error("--respace %s: %s", o->respace, e.msg);
        if (r->bo.kind != RHD_SAMPLER_DDIM_DPM) rhd_usage_error("--steps %lld with --sampler %s: %s", o->steps,
                                                                rhd_sampler_kind_name(r->bo.kind), e.msg);
        rhd_usage_error("%s", e.msg);
    }
    rhd_info("base %s (%s weights, step %lld): %s, %d steps, eta %g, guidance %g", o->base, r->base.weights, r->base.step,
             rhd_sampler_kind_name(r->bo.kind), r->bp.nsteps, r->bo.eta, r->bo.guidance);
}

/* Load the checkpoints and set up both stages from the options (dies on an error). */
static void setup(run *r, const sample_cli_opts *o) {
    rhd_err e;
    r->has_base = o->base != NULL;
    if (r->has_base) setup_base(r, o);
    if (!o->upsample) return;
    r->has_up = 1;
    if (rhd_sample_model_load(&r->up, o->upsample, RHD_STAGE_UPSAMPLE, o->weights, r->ctx, &e)) rhd_die_err(&e);
    if (r->has_base && r->up.C != r->base.C)
        rhd_die("%s: the upsampler takes %d channels, the base %s samples %d, expected the same", o->upsample, r->up.C, o->base, r->base.C);
    rhd_sample_opts_init(&r->uo, &r->up);
    r->uo.steps = (int)o->up_steps, r->uo.eta = o->up_eta, r->uo.guidance = o->up_guidance, r->uo.clip = !o->no_clip;
    r->uo.seed = (uint64_t)o->common.seed, r->uo.R = (int)o->up_res, r->uo.low_fp16 = o->low_prec == 0;
    if (r->has_base) r->uo.cond_noise = r->bo.cond_noise;
    else if (o->cond_noise) r->uo.cond_noise = (rhd_unet_noise)(o->cond_noise - 1);
    r->uo.time_scale = parse_time_scale("--up-time-scale", o->up_time_scale, &r->up);
    if (rhd_sample_plan_init(&r->upl, &r->up, &r->uo, &e)) rhd_usage_error("%s", e.msg);
    if (!r->has_base) return; /* --low-res: the sides are checked with the files (read_lows) */
    r->low_r = r->base.R;
    int Ru = rhd_sample_out_side(&r->up, &r->uo, r->base.R);
    if (rhd_ups_check_size(&r->up.ups->cfg, Ru, r->base.R, &e)) rhd_usage_error("--up-res %d: %s", Ru, e.msg);
}

/* --low-res: every file of this rank read and checked (present, finite, the upsampler's channels,
 * one side that the upsampler takes to its output side) before any work; dies naming the file. */
static void read_lows(run *r, job *jobs, const int *todo, int ntodo) {
    rhd_err e;
    const int C = r->up.C;
    for (int i = 0; i < ntodo; i++) {
        job *jb = &jobs[todo[i]];
        if (!rhd_file_exists(jb->low_path))
            rhd_die("--low-res %s: no %s.safetensors or %s.npy for portrait '%s' (%s), expected the low-res triplane of "
                    "every portrait", r->o->low_res, jb->name, jb->name, jb->name, jb->input);
        rhd_triplane t = {0};
        if (rhd_triplane_file_read(jb->low_path, &t, NULL, &e)) rhd_die_err(&e);
        if (t.C != C || (r->low_r && t.R != r->low_r))
            rhd_die("%s: a low-res triplane [3,%d,%d,%d], expected [3,%d,%d,%d] (the upsampler's %d channels%s)",
                    jb->low_path, t.C, t.R, t.R, C, r->low_r ? r->low_r : t.R, r->low_r ? r->low_r : t.R, C,
                    r->low_r ? ", the side of the other --low-res files" : "");
        if (!r->low_r) {
            int Ru = rhd_sample_out_side(&r->up, &r->uo, t.R);
            if (rhd_ups_check_size(&r->up.ups->cfg, Ru, t.R, &e))
                rhd_die("%s: a low-res side %d that the upsampler cannot take to %d%s: %s", jb->low_path, t.R, Ru,
                        r->o->up_res ? " (--up-res)" : " (the upsampler's factor)", e.msg);
            r->low_r = t.R;
        }
        const int64_t nl = rhd_triplane_numel_of(C, t.R);
        for (int64_t k = 0; r->uo.low_fp16 && k < nl; k++)
            if (fabsf(t.planes[k]) >= 65520.f) /* rounds to infinity in float16 */
                rhd_die("%s: value %g at index %lld is outside float16's range, expected the original's float16 LR "
                        "values (--low-res-precision fp32 keeps them)", jb->low_path, t.planes[k], (long long)k);
        jb->low = rhd_xmalloc(sizeof(float) * (size_t)nl);
        rhd_triplane_roll(jb->low, t.planes, C, t.R);
        rhd_triplane_free(&t);
    }
}

/* --noise: every portrait of this rank has its rows, every tensor its shape (before any work). */
static void open_noise(run *r, job *jobs, const int *todo, int ntodo) {
    rhd_err e;
    if (rhd_st_open(r->o->noise, &r->noise, &e)) rhd_die_err(&e);
    const char *kind = rhd_st_meta(r->noise, "rhd.kind");
    if (kind && strcmp(kind, "noise"))
        rhd_die("--noise %s: an rhd '%s' file, expected a noise file (rhd-sample --save-noise writes one)", r->o->noise,
                kind);
    r->bo.noise = r->uo.noise = r->noise;
    const char **names = rhd_xmalloc(sizeof(char *) * (size_t)(ntodo + 1));
    int *rows = rhd_xmalloc(sizeof(int) * (size_t)(ntodo + 1));
    for (int i = 0; i < ntodo; i++) names[i] = jobs[todo[i]].name;
    for (int s = r->has_base ? 0 : 1; s < 1 + r->has_up; s++) {
        const rhd_sample_model *m = s ? &r->up : &r->base;
        const rhd_sample_opts *so = s ? &r->uo : &r->bo;
        int R = s ? rhd_sample_out_side(&r->up, &r->uo, r->low_r) : r->base.R;
        int64_t xt[3] = {m->C, R, 3 * R}, ut[3] = {m->latent_ch, m->latent_size, m->latent_size};
        if (rhd_noise_file_rows(r->noise, (rhd_sample_stage)s, s ? r->upl.nsteps : r->bp.nsteps, xt, ut,
                                so->cond_noise != RHD_UNET_NOISE_NONE, names, todo, ntodo, rows, &e))
            rhd_die_err(&e);
        for (int i = 0; i < ntodo; i++) jobs[todo[i]].row[s] = rows[i];
    }
    free(names), free(rows);
}

/* One batch of portraits through both stages, outputs written; the number of failures. */
static int sample_batch(run *r, job *jobs, const int *idx, const int *recrow, int nb) {
    rhd_err e;
    const int C = r->has_base ? r->base.C : r->up.C, Rb = r->has_base ? r->base.R : r->low_r;
    const int Ru = r->has_up ? rhd_sample_out_side(&r->up, &r->uo, Rb) : 0;
    const int64_t nbase = (int64_t)C * Rb * 3 * Rb, nup = (int64_t)C * Ru * 3 * Ru;
    double t0 = rhd_now();
    rhd_sample_item items[64];
    float *xb = rhd_xmalloc(sizeof(float) * (size_t)(nbase * nb)), *xu = NULL, *tb[64] = {0}, *tu[64] = {0};
    for (int b = 0; b < nb; b++) {
        job *jb = &jobs[idx[b]];
        if (r->o->save_traj && r->has_base) tb[b] = rhd_xmalloc(sizeof(float) * (size_t)(nbase * r->bp.nsteps));
        items[b] = (rhd_sample_item){.name = jb->name, .cond = &jb->cond, .in_row = jb->row[0], .rec_row = recrow[b], .traj = tb[b]};
    }
    int rc = 0;
    if (r->has_base) rc = rhd_sample_batch(r->ctx, &r->base, &r->bo, &r->bp, items, nb, xb, &e);
    else for (int b = 0; b < nb; b++) memcpy(xb + b * nbase, jobs[idx[b]].low, sizeof(float) * (size_t)nbase);
    if (!rc && r->has_up) {
        xu = rhd_xmalloc(sizeof(float) * (size_t)(nup * nb));
        for (int b = 0; b < nb; b++) {
            if (r->o->save_traj) tu[b] = rhd_xmalloc(sizeof(float) * (size_t)(nup * r->upl.nsteps));
            items[b].low = xb + b * nbase, items[b].r = Rb, items[b].in_row = jobs[idx[b]].row[1], items[b].traj = tu[b];
        }
        rc = rhd_sample_batch(r->ctx, &r->up, &r->uo, &r->upl, items, nb, xu, &e);
    }
    int failed = 0;
    if (rc) {
        fprintf(stderr, "%s: error: %s\n", rhd_prog(), e.msg);
        failed = nb;
    }
    double secs = (rhd_now() - t0) / nb;
    for (int b = 0; b < nb && !rc; b++) {
        const job *jb = &jobs[idx[b]];
        /* a sample that is not finite everywhere is garbage: said, and not written */
        const float *xs = r->has_up ? xu + b * nup : xb + b * nbase;
        const int64_t nx = r->has_up ? nup : nbase;
        int64_t bad = 0;
        for (int64_t i = 0; i < nx; i++) bad += !isfinite(xs[i]);
        if (bad) {
            fprintf(stderr, "%s: error: %s: the sample holds %lld non-finite values of %lld (the sampling diverged: "
                    "check --time-scale, --guidance and the noise), expected finite values; nothing written for it\n",
                    rhd_prog(), jb->name, (long long)bad, (long long)nx);
            failed++;
            continue;
        }
        /* the trajectory first: the sample under its final name marks the portrait done (skip-if-newer) */
        if ((r->o->save_traj && write_traj(r, jb, tb[b], tu[b], Rb, Ru, &e)) ||
            write_sample(r, jb, r->has_up ? xu + b * nup : xb + b * nbase, C, r->has_up ? Ru : Rb, &e)) {
            fprintf(stderr, "%s: error: %s\n", rhd_prog(), e.msg);
            failed++;
            continue;
        }
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", jb->name);
        cJSON_AddNumberToObject(j, "seconds", secs);
        cJSON_AddStringToObject(j, "output", jb->output);
        char *s = cJSON_PrintUnformatted(j);
        printf("%s\n", s);
        fflush(stdout);
        free(s), cJSON_Delete(j);
    }
    for (int b = 0; b < nb; b++) free(tb[b]), free(tu[b]);
    free(xb), free(xu);
    return failed;
}

int main(int argc, char **argv) {
    rhd_set_prog(argv[0]);
    rhd_fs_install_signal_handlers();
    sample_cli_opts o;
    memset(&o, 0, sizeof o);
    rhd_common_opts_init(&o.common);
    o.batch = 1, o.steps = 10, o.up_steps = 10, o.eta = 1, o.up_eta = 0, o.guidance = 1.3, o.up_guidance = 1;
    rhd_shard_init(&o.shard);
    int n = rhd_cli_parse(&sample_cli, argc, argv, &o);
    rhd_common_opts_apply(&o.common);

    if (o.low_res && o.base) rhd_usage_error("--low-res replaces --base (the low-res triplanes come from DIR): give one of them");
    if (o.low_res && !o.upsample) rhd_usage_error("--low-res DIR needs --upsample CKPT (e.g. --upsample up.ckpt.safetensors --low-res lowres)");
    if (!o.base && !o.low_res) rhd_usage_error("--base is required (e.g. --base base.ckpt.safetensors), or --upsample with --low-res DIR");
    static const char *const up_only[] = {"up-steps", "up-eta", "up-guidance", "up-time-scale", "up-res", NULL};
    for (int i = 0; !o.upsample && up_only[i]; i++)
        if (rhd_cli_given(&sample_cli, up_only[i]))
            rhd_usage_error("--%s applies to the upsampling stage, expected --upsample CKPT with it", up_only[i]);
    {
        int k;
        rhd_err we;
        if (o.weights && strcmp(o.weights, "auto") && rhd_sample_weights_parse(o.weights, &k, &we))
            rhd_usage_error("%s", we.msg);
    }
    if (o.respace && rhd_cli_given(&sample_cli, "steps"))
        rhd_usage_error("--respace %s and --steps %lld both set the step count, expected one of them", o.respace, o.steps);
    if (!o.common.output) rhd_usage_error("expected -o OUT/, the folder for OUT/<name>.safetensors (e.g. -o samples)");
    if (o.list && n > 0) rhd_usage_error("give features files or --list FILE, not both");
    if (!o.list && n == 0) rhd_usage_error("expected features files or --list FILE (e.g. rhd-sample --base B -o samples features/*.safetensors)");
    rhd_shard_check(&o.shard);
    if (o.save_noise && o.shard.world > 1) rhd_usage_error("--save-noise writes one file: run it with --world 1");
    if (o.save_noise && o.noise) rhd_usage_error("--save-noise with --noise would copy the file; give one of them");
    if (o.respace && o.sampler == RHD_SAMPLER_DDIM_DPM) rhd_usage_error("--respace is for --sampler ddim or ddpm (ddim-dpm takes --steps S)");
    int njobs;
    job *jobs = read_jobs(&o, argv, n, &njobs);
    check_outputs(&o, jobs, njobs);

    rhd_err e;
    run r = {.o = &o};
    r.ctx = rhd_ctx_open(o.common.device, &e);
    if (!r.ctx) rhd_die_err(&e);
    rhd_ctx_set_tf32(r.ctx, o.common.tf32);
    rhd_ctx_set_bf16(r.ctx, o.common.bf16);
    setup(&r, &o);

    /* this rank's share, minus the up-to-date outputs */
    int *todo = rhd_xmalloc(sizeof(int) * (size_t)njobs), ntodo = 0, nskip = 0;
    for (int i = 0; i < njobs; i++) {
        if (!rhd_shard_mine(&o.shard, i)) continue;
        int fresh = !o.force && rhd_file_newer(jobs[i].output, jobs[i].input) && (!o.base || rhd_file_newer(jobs[i].output, o.base)) &&
                    (!o.low_res || rhd_file_newer(jobs[i].output, jobs[i].low_path)) &&
                    (!o.upsample || rhd_file_newer(jobs[i].output, o.upsample)) && (!o.noise || rhd_file_newer(jobs[i].output, o.noise));
        if (fresh && !same_options(&r, &jobs[i])) {
            rhd_info("%s: made with other options, sampled again", jobs[i].output);
            fresh = 0;
        }
        if (fresh) { nskip++; rhd_verbose("%s: up to date, skipped", jobs[i].output); continue; }
        todo[ntodo++] = i;
    }
    if (o.shard.world > 1) rhd_info("rank %lld of %lld: %d of %d portraits", o.shard.rank, o.shard.world, ntodo + nskip, njobs);
    if (nskip) rhd_info("%d portrait%s up to date, skipped (--force to redo)", nskip, nskip > 1 ? "s" : "");
    /* every input checked before any work */
    for (int i = 0; i < ntodo; i++)
        if (rhd_sample_cond_read(jobs[todo[i]].input, r.has_base ? &r.base : NULL, r.has_up ? &r.up : NULL, &jobs[todo[i]].cond, &e))
            rhd_die_err(&e);
    if (o.low_res) read_lows(&r, jobs, todo, ntodo);
    if (o.noise) open_noise(&r, jobs, todo, ntodo);
    const char **names = rhd_xmalloc(sizeof(char *) * (size_t)(ntodo + 1));
    for (int i = 0; i < ntodo; i++) names[i] = jobs[todo[i]].name;
    if (o.save_noise) rhd_noise_record_init(&r.rec, names, ntodo), r.bo.record = r.uo.record = &r.rec;

    rhd_progress prog;
    rhd_progress_begin(&prog, "sample", "portraits", ntodo);
    int failed = 0, B = (int)o.batch;
    for (int t = 0; t < ntodo; t += B) {
        int nb = ntodo - t < B ? ntodo - t : B, recrow[64];
        for (int b = 0; b < nb; b++) recrow[b] = o.save_noise ? t + b : -1;
        failed += sample_batch(&r, jobs, todo + t, recrow, nb);
        rhd_progress_update(&prog, t + nb);
    }
    rhd_progress_end(&prog);
    if (o.save_noise && !failed && (rhd_mkdir_parents(o.save_noise, &e) || rhd_noise_record_write(&r.rec, o.save_noise, TOOL, &e))) {
        fprintf(stderr, "%s: error: %s\n", rhd_prog(), e.msg);
        failed++;
    }
    rhd_info("%d of %d portrait%s sampled", ntodo - failed, ntodo, ntodo == 1 ? "" : "s");

    if (o.save_noise) rhd_noise_record_free(&r.rec);
    if (r.noise) rhd_st_close(r.noise);
    if (r.has_base) rhd_sample_plan_free(&r.bp), rhd_sample_model_free(&r.base);
    if (r.has_up) rhd_sample_plan_free(&r.upl), rhd_sample_model_free(&r.up);
    for (int i = 0; i < njobs; i++) {
        rhd_sample_cond_free(&jobs[i].cond);
        free(jobs[i].name), free(jobs[i].input), free(jobs[i].output), free(jobs[i].traj);
        free(jobs[i].low_path), free(jobs[i].low);
    }
    free(jobs), free(todo), free(names);
    rhd_ctx_close(r.ctx);
    int status = failed ? 1 : 0;
    if (rhd_close_stdout()) status = 1;
    return status;
}
