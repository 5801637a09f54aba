/* rhd-fit: fit avatar triplanes and the shared triplane decoder (spec fitting.md §7-§10).
 *
 *   rhd-fit --stage 1 --plan plan.json --data DIR [--list FILE] -o OUT [--resume]
 *   rhd-fit --stage 2 --decoder D --data DIR --avatar NAME -o NAME.safetensors
 *   rhd-fit --report --decoder D --triplanes DIR --data DIR [--list FILE | --avatars A,B]
 * See tools/rhd-fit.md. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/cli.h"
#include "common/fs.h"
#include "common/fit_run.h"
#include "common/log.h"
#include "common/models/decoder.h"
#include "common/fit_views.h"
#include "common/models/fitter.h"
#include "common/models/renderer.h"
#include "common/plan.h"
#include "common/model_io.h"
#include "common/contact_sheet.h"
#include "common/metrics.h"
#include "formats/dataset.h"
#include "formats/png.h"
#include <dirent.h>

#define TOOL "rhd-fit"
#define DEFAULT_RES 512
#define DEFAULT_CHANNELS 32

typedef struct opts {
    rhd_common_opts common;
    long long stage;
    int report;
    const char *plan, *data, *list, *avatars, *avatar, *decoder, *triplanes, *contact_sheet;
    const char *train_views, *eval_views, *offset;
    long long res, channels, rays, steps, grid_size, max_steps, update_interval, full_updates, dist_points;
    long long fisher_steps, max_entries, log_every, warmup;
    long long preset_res, preset_channels; /* --preset's triplane size: stage 1 both, stage 2 the resolution */
    int agg_given; /* --plane-agg given (command line or --config; stage 2 and --report check it against the decoder) */
    double lr0, bound, min_near, dt_gamma, T_thresh, density_thresh, grid_decay;
    double w_l1, w_tv, w_dist, w_iwc, divisor, scale, collapse_opacity, tri_eps, reg_gate;
    rhd_shard shard; /* stage 2 over many avatars: --rank/--world */
    int preset, plane_agg, iwc_scope, iwc_fisher, entry_eval, drop_rays, double_norm, no_mark_untrained, no_clamp, test_no_clamp, fy_square, npy, resume, force, skip_incomplete;
} opts;

static const char *const scope_choices[] = {"own", "all", NULL};
static const char *const fisher_choices[] = {"original", "normalized", NULL};
static const char *const entry_eval_choices[] = {"all", "last", NULL};
static const char *const preset_choices[] = {"none", "fast", "quality", "quality-plus", "original", NULL};
static const char *const agg_choices[] = {"mean", "product", "offset-product", NULL}; /* = rhd_plane_agg */

/* --preset: sizes, rays, march and stage-2 steps (tools/rhd-fit.md, "Presets"); options given on
 * the command line override them, wherever they stand. */
typedef struct fit_preset {
    long long res, channels, rays, grid_size, max_steps, steps;
    int agg; /* stage 1's plane aggregation */
} fit_preset;
static const fit_preset presets[] = {
    {0, 0, 0, 0, 0, 0, RHD_PLANE_MEAN},                /* none: the defaults (the original's) */
    {32, 16, 256, 32, 64, 300, RHD_PLANE_MEAN},        /* fast: the tests' and the demo's sizes */
    {64, 16, 1024, 64, 128, 4000, RHD_PLANE_MEAN},     /* quality: the dev set's 128x128 views on a CPU (pipelines/quality.sh) */
    {64, 32, 1024, 64, 128, 4000, RHD_PLANE_OFFSET_PRODUCT}, /* quality-plus: 30 dB held out (quality.sh, quality-c32-op) */
    {512, 32, 8192, 256, 1024, 30000, RHD_PLANE_MEAN}, /* original: RodinHD's fit_stage*.sh */
};

static const rhd_opt options[] = {
    RHD_OPT_GROUP_("what to do"),
    RHD_OPT_INT_(0, "stage", opts, stage, "N", "1: shared decoder + triplanes from a plan; 2: triplane with a frozen decoder", 1, 2),
    RHD_OPT_FLAG_(0, "report", opts, report, "forgetting report: render the eval views of every avatar in --triplanes with --decoder"),
    RHD_OPT_STRING_(0, "plan", opts, plan, "FILE", "stage 1: the task-replay plan (rhd-schedule fit)"),
    RHD_OPT_STRING_(0, "decoder", opts, decoder, "FILE", "stage 2 and --report: decoder or fit checkpoint (safetensors)"),
    RHD_OPT_STRING_(0, "triplanes", opts, triplanes, "DIR", "--report: directory of <avatar>.safetensors or .npy"),
    RHD_OPT_STRING_(0, "contact-sheet", opts, contact_sheet, "PNG", "--report: also write gt | render of every eval view"),
    RHD_OPT_GROUP_("data"),
    RHD_OPT_STRING_(0, "data", opts, data, "DIR", "data root: <DIR>/<avatar path>/metadata_%06d.json, img_proc_fg_%06d.png"),
    RHD_OPT_STRING_(0, "list", opts, list, "FILE", "avatar list (one path per line); default: the plan's avatars or every avatar in --data"),
    RHD_OPT_STRING_(0, "avatars", opts, avatars, "A,B", "--report, and stage 2 over many avatars (-o DIR): avatar names"),
    RHD_OPT_STRING_(0, "avatar", opts, avatar, "NAME", "stage 2: the avatar (a path under --data); without it, stage 2 fits every avatar of --list or --avatars into -o DIR"),
    RHD_OPT_STRING_(0, "train-views", opts, train_views, "RANGE", "training views, e.g. 0-99 (default: every view present)"),
    RHD_OPT_STRING_(0, "eval-views", opts, eval_views, "RANGE", "views for PSNR, e.g. 100-119 (default 0-4: training views, as the original)"),
    RHD_OPT_CHOICE_(0, "entry-eval", opts, entry_eval, "W", "stage 1: render the eval views after every entry (all) or only after each avatar's last entry (last; the others' PSNR is null)", entry_eval_choices),
    RHD_OPT_DOUBLE_(0, "translation-divisor", opts, divisor, "X", "raw camera translation divided by X (§12.1)", 1e-9, 1e9),
    RHD_OPT_DOUBLE_(0, "pose-scale", opts, scale, "X", "then multiplied by X (§12.1; as rhd-render)", 1e-9, 1e9),
    RHD_OPT_DOUBLE_(0, "scale", opts, scale, "X", "the former name of --pose-scale (kept as an alias)", 1e-9, 1e9),
    RHD_OPT_STRING_(0, "offset", opts, offset, "X,Y,Z", "then X,Y,Z added to the camera positions (default 0,0,0; tools/bring-your-own-data.md)"),
    RHD_OPT_FLAG_(0, "fy-square-pixels", opts, fy_square, "fy = fx instead of fl/sw*H (§12.2)"),
    RHD_OPT_FLAG_(0, "skip-incomplete", opts, skip_incomplete, "leave out views with only one of their two files, listing them (default: an error)"),
    RHD_OPT_GROUP_("presets"),
    RHD_OPT_CHOICE_(0, "preset", opts, preset, "P", "sizes and steps: fast (3x16x32x32, 256 rays, grid 32, 64 march steps, stage 2 300 steps), quality (3x16x64x64, 1024 rays, grid 64, 128 march steps, 4000 steps), quality-plus (quality with 32 channels and, in stage 1, --plane-agg offset-product) or original (3x32x512x512, 8192 rays, grid 256, 1024 march steps, 30000 steps); options given override it", preset_choices),
    RHD_OPT_GROUP_("model"),
    RHD_OPT_INT_(0, "triplane-res", opts, res, "R", "triplane resolution (0: stage 1 512; stage 2 and --report the decoder's rhd.triplane_res, else 512)", 0, 8192),
    RHD_OPT_INT_(0, "triplane-channels", opts, channels, "C", "triplane channels, a multiple of 4 (0: stage 1 32; stage 2 and --report the decoder's)", 0, 1024),
    RHD_OPT_CHOICE_(0, "plane-agg", opts, plane_agg, "A", "stage 1: how the decoder combines the 3 planes' samples: mean (the original), product or offset-product ((1+a)(1+b)(1+c)-1; see rhd-fit.md \"Plane aggregation\"); stage 2 and --report: the decoder's (rhd.plane_agg)", agg_choices),
    RHD_OPT_DOUBLE_(0, "bound", opts, bound, "B", "scene box [-B,B]^3", 1e-3, 1e3),
    RHD_OPT_FLAG_(0, "double-normalization", opts, double_norm, "sampler also maps (x+B)/(2B), as the original (§12.3; same for B=1)"),
    RHD_OPT_FLAG_(0, "no-clamp", opts, no_clamp, "training reads T itself instead of clamp(T,-1,1) (§4)"),
    RHD_OPT_FLAG_(0, "test-no-clamp", opts, test_no_clamp, "--report reads T unclamped, as the original's test mode (§12.6)"),
    RHD_OPT_GROUP_("training"),
    RHD_OPT_INT_(0, "steps", opts, steps, "N", "stage 2: optimiser steps", 1, 1e12),
    RHD_OPT_DOUBLE_(0, "lr0", opts, lr0, "LR", "stage 2: triplane lr (decays x0.1 over the steps)", 1e-12, 10),
    RHD_OPT_INT_(0, "rays", opts, rays, "N", "rays per step", 1, 1 << 24),
    RHD_OPT_DOUBLE_(0, "l1-weight", opts, w_l1, "W", "L1 weight (-1: 1e-6 stage 1, 1e-4 stage 2, §12.8)", -1, 1e6),
    RHD_OPT_DOUBLE_(0, "tv-weight", opts, w_tv, "W", "TV weight (-1: 2e-4 stage 1, 0.02 stage 2)", -1, 1e6),
    RHD_OPT_DOUBLE_(0, "dist-weight", opts, w_dist, "W", "dist weight (-1: 2e-5 stage 1, 0.002 stage 2)", -1, 1e6),
    RHD_OPT_INT_(0, "dist-points", opts, dist_points, "N", "points of the dist loss (§12.14)", 0, 1 << 24),
    RHD_OPT_DOUBLE_(0, "iwc-weight", opts, w_iwc, "W", "IWC weight (-1: the plan's)", -1, 1e9),
    RHD_OPT_INT_(0, "fisher-steps", opts, fisher_steps, "K", "Fisher = mean squared decoder gradient of the last K steps (0: 1 with --iwc-fisher original, as the original (§12.7); 16 with normalized)", 0, 1e9),
    RHD_OPT_CHOICE_(0, "iwc-fisher", opts, iwc_fisher, "F", "IWC Fisher: original (squared gradient of the full loss, ~1e-9: no effect) or normalized (data-term gradient, each decoder tensor scaled to mean 1; the weight is then an L2 anchor strength)", fisher_choices),
    RHD_OPT_CHOICE_(0, "iwc-scope", opts, iwc_scope, "S", "penalty from the avatar's own state (own, the original) or every stored state (all)", scope_choices),
    RHD_OPT_DOUBLE_(0, "triplane-eps", opts, tri_eps, "E", "Adam eps of the triplane (-1: 1e-8 stage 1, the original; 1e-15 stage 2)", -1, 1),
    RHD_OPT_DOUBLE_(0, "reg-gate", opts, reg_gate, "A", "L1/TV/dist weights x min(1, training opacity / A) (-1: stage 1 0 = off, the original; stage 2 0.05)", -1, 1),
    RHD_OPT_DOUBLE_(0, "collapse-opacity", opts, collapse_opacity, "A", "stage 2: fail (exit 1) when the training opacity stays below A (0.01; 0: no check)", 0, 1),
    RHD_OPT_GROUP_("renderer"),
    RHD_OPT_INT_(0, "grid-size", opts, grid_size, "H", "occupancy grid side (power of two)", 2, 1024),
    RHD_OPT_INT_(0, "max-steps", opts, max_steps, "N", "march steps across the box diagonal", 1, 1 << 20),
    RHD_OPT_DOUBLE_(0, "min-near", opts, min_near, "T", "near clamp", 0, 1e6),
    RHD_OPT_DOUBLE_(0, "dt-gamma", opts, dt_gamma, "G", "step growth with t (the scripts: 0)", 0, 1),
    RHD_OPT_DOUBLE_(0, "T-thresh", opts, T_thresh, "T", "early ray termination", 0, 1),
    RHD_OPT_DOUBLE_(0, "density-thresh", opts, density_thresh, "D", "bitfield threshold cap", 0, 1e9),
    RHD_OPT_DOUBLE_(0, "grid-decay", opts, grid_decay, "D", "EMA-max decay of grid updates", 0, 1),
    RHD_OPT_INT_(0, "update-interval", opts, update_interval, "N", "grid update every N steps", 1, 1e9),
    RHD_OPT_INT_(0, "full-updates", opts, full_updates, "N", "first N grid updates are full", 0, 1e9),
    RHD_OPT_INT_(0, "warmup", opts, warmup, "N", "--report and the stage-2 eval: full updates of a fresh grid before rendering (as rhd-render)", 1, 1e6),
    RHD_OPT_FLAG_(0, "drop-rays", opts, drop_rays, "keep the original's mean_count sample budget, dropping rays (§12.10)"),
    RHD_OPT_FLAG_(0, "no-mark-untrained", opts, no_mark_untrained, "skip marking cells no training camera sees (§12.13)"),
    RHD_OPT_GROUP_("output"),
    RHD_OPT_FLAG_(0, "npy", opts, npy, "also write triplanes as the original's .npy [3,1,C,R,R]"),
    RHD_OPT_FLAG_(0, "resume", opts, resume, "stage 1: continue after the last finished plan entry in OUT"),
    RHD_OPT_FLAG_(0, "force", opts, force, "overwrite an existing stage-1 run or stage-2 triplane"),
    RHD_OPT_INT_(0, "max-entries", opts, max_entries, "N", "stage 1: stop after N entries in this invocation (0: all)", 0, 1e9),
    RHD_OPT_INT_(0, "log-every", opts, log_every, "N", "progress line every N steps (0: none)", 0, 1e12),
    RHD_SHARD_OPTS(opts, shard),
    RHD_COMMON_OPTS(opts),
    RHD_OPT_END_};

static const rhd_cli cli = {
    TOOL,
    "rhd-fit (--stage 1 --plan P | --stage 2 --decoder D --avatar A | --report --decoder D --triplanes DIR) --data DIR -o OUT [options]",
    "Fit avatar triplanes and the shared triplane decoder of RodinHD (spec fitting.md). Stage 1 executes\n"
    "a task-replay plan (rhd-schedule fit), storing each avatar's triplane and IWC state after every\n"
    "entry and a checkpoint (decoder, Adam state, progress) so that --resume continues bit-identically.\n"
    "Stage 2 fits one avatar with the decoder frozen. --report renders the eval views of fitted avatars\n"
    "and prints their PSNR as JSON (the forgetting report). CPU or CUDA (--device).\n",
    options,
    "examples (the bundled data; tests/tools/t0840-examples-fit.sh runs them):\n"
    "  rhd-schedule fit --data tests/data/mini --rounds 2 --steps 20 -o plan.json\n"
    "  rhd-fit --stage 1 --plan plan.json --data tests/data/mini --triplane-res 32 --triplane-channels 16 \\\n"
    "          --grid-size 32 --rays 256 --max-steps 64 --train-views 0-23 --eval-views 100,110 -o fit1\n"
    "  rhd-fit --stage 2 --decoder fit1/decoder.safetensors --data tests/data/mini --avatar avatar_101 \\\n"
    "          --steps 40 --grid-size 32 --rays 256 --max-steps 64 --train-views 0-23 --eval-views 100,110 -o avatar_101.safetensors\n"
    "  rhd-fit --report --decoder fit1/decoder.safetensors --triplanes fit1/triplanes --data tests/data/mini \\\n"
    "          --grid-size 32 --max-steps 64 --eval-views 100,110 --contact-sheet report.png\n"};

/* ---- helpers ---- */

static char *path_fmt(const char *fmt, const char *a, const char *b) {
    size_t n = strlen(fmt) + strlen(a) + strlen(b) + 1;
    char *p = rhd_xmalloc(n);
    snprintf(p, n, fmt, a, b);
    return p;
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

static void fill_cfgs(const opts *o, rhd_fit_cfg *fc, rhd_render_cfg *rc, rhd_fit_data_cfg *dc, int stage) {
    rhd_fit_cfg_default(fc, stage);
    long long C = o->channels ? o->channels : o->preset_channels, R = o->res ? o->res : o->preset_res;
    fc->C = C ? (int)C : DEFAULT_CHANNELS, fc->R = R ? (int)R : DEFAULT_RES;
    fc->agg = o->plane_agg; /* --preset's unless given */
    fc->rays = o->rays;
    if (o->w_l1 >= 0) fc->w_l1 = o->w_l1;
    if (o->w_tv >= 0) fc->w_tv = o->w_tv;
    if (o->w_dist >= 0) fc->w_dist = o->w_dist;
    fc->w_iwc_override = o->w_iwc;
    fc->dist_points = (int)o->dist_points;
    fc->update_interval = (int)o->update_interval;
    fc->mark_untrained = !o->no_mark_untrained;
    fc->clamp = !o->no_clamp;
    fc->fisher_mode = o->iwc_fisher == 1 ? RHD_FISHER_NORMALIZED : RHD_FISHER_ORIGINAL;
    fc->fisher_steps = o->fisher_steps ? (int)o->fisher_steps : (fc->fisher_mode == RHD_FISHER_NORMALIZED ? 16 : 1);
    fc->iwc_all = o->iwc_scope == 1;
    fc->seed = (uint64_t)o->common.seed;
    if (stage == 2) fc->collapse_opacity = o->collapse_opacity;
    fc->eval_warmup = (int)o->warmup; /* both stages: the eval on a fresh warmed grid, as rhd-render and --report */
    if (o->tri_eps >= 0) fc->tri_eps = o->tri_eps;
    if (o->reg_gate >= 0) fc->reg_gate = o->reg_gate;
    rhd_render_cfg_default(rc);
    rc->bound = (float)o->bound, rc->min_near = (float)o->min_near, rc->grid_size = (int)o->grid_size;
    rc->max_steps = (int)o->max_steps, rc->dt_gamma = (float)o->dt_gamma, rc->T_thresh = (float)o->T_thresh;
    rc->density_thresh = (float)o->density_thresh, rc->grid_decay = (float)o->grid_decay;
    rc->full_updates = (int)o->full_updates, rc->force_all_rays = !o->drop_rays, rc->double_norm = o->double_norm;
    rhd_fit_data_cfg_default(dc);
    dc->translation_divisor = o->divisor, dc->scale = o->scale, dc->fy_square_pixels = o->fy_square;
    dc->skip_incomplete = o->skip_incomplete;
    if (o->offset && rhd_parse_vec3(o->offset, dc->offset))
        rhd_usage_error("--offset takes three numbers (e.g. --offset 0,-0.1,0), got '%s'", o->offset);
}

static void parse_views(const char *s, const char *opt, int **v, int *n) {
    rhd_err e = {0};
    *v = NULL, *n = 0;
    if (!s) return;
    if (rhd_parse_ranges(s, v, n, &e)) rhd_usage_error("--%s %s", opt, e.msg);
}

/* A warning naming the avatar and how far out when its views leave the scene box. */
static void warn_outside_box(const char *dir, const rhd_fit_data_cfg *dc, double bound) {
    rhd_dataset_config c;
    rhd_dataset_config_init(&c);
    c.translation_divisor = dc->translation_divisor, c.scale = dc->scale, c.fy_square_pixels = dc->fy_square_pixels;
    memcpy(c.offset, dc->offset, sizeof c.offset);
    c.skip_incomplete = 1; /* incomplete views were refused or listed by the loading itself */
    char msg[600];
    const char *slash = strrchr(dir, '/');
    rhd_err e = {0};
    if (rhd_dataset_box_warning(dir, slash ? slash + 1 : dir, &c, bound, msg, sizeof msg, &e) > 0) rhd_warn("%s", msg);
}

/* Every view the avatar's directory holds, minus nothing (default training views). */
static int load_avatar(rhd_fit_views *train, rhd_fit_views *eval, const char *dir, const opts *o,
                       const rhd_fit_data_cfg *dc, int want_train, rhd_err *e) {
    int *tv, ntv, *ev, nev;
    parse_views(o->train_views, "train-views", &tv, &ntv);
    parse_views(o->eval_views ? o->eval_views : "0-4", "eval-views", &ev, &nev);
    int rc = 0;
    if (want_train && rhd_fit_views_load(train, dir, tv, o->train_views ? ntv : 0, dc, 1, e)) rc = -1;
    /* rhd_fit_views_load with views == NULL takes every view present */
    if (!rc && rhd_fit_views_load(eval, dir, ev, nev, dc, 1, e)) {
        if (want_train) rhd_fit_views_free(train);
        rc = -1;
    }
    free(tv), free(ev);
    if (!rc && want_train) warn_outside_box(dir, dc, o->bound);
    return rc;
}

/* ---- outputs, checked before any work ---- */

/* An output that is one of the inputs is a usage error naming both. */
static void refuse_input(const char *opt, const char *out, const char *in_opt, const char *in) {
    if (out && in && rhd_same_file(out, in))
        rhd_usage_error("%s %s: the same file as %s %s, expected an output that is not an input", opt, out, in_opt, in);
}

static void check_writable(const char *opt, const char *path) {
    rhd_err e = {0};
    if (path && rhd_check_output_writable(opt, path, &e)) rhd_die("%s", e.msg);
}

/* 1 when dir is absent or holds nothing but the temp file of a first checkpoint (and the lock
 * file): a run killed before its first commit, which --resume starts. */
static int run_unstarted(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 1;
    int empty = 1;
    for (struct dirent *de; (de = readdir(d));)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "checkpoint.safetensors.tmp") &&
            strcmp(de->d_name, ".lock")) empty = 0;
    closedir(d);
    return empty;
}

/* ---- model files (common/model_io.h) ---- */

/* The decoder of stage 2 and --report, its sizes from the file: --triplane-channels, when given,
 * must agree; --triplane-res defaults to the resolution it was fitted at (rhd.triplane_res). */
static void load_decoder(const opts *o, rhd_ctx *ctx, int with_grad, rhd_decoder *dec, rhd_fit_cfg *fc) {
    rhd_err e = {0};
    rhd_decoder_file_info info;
    if (rhd_decoder_file_read(o->decoder, ctx, with_grad, dec, &info, &e)) rhd_die("%s", e.msg);
    if (o->channels && dec->cfg.C != o->channels)
        rhd_die("%s: a decoder for %d triplane channels, expected %lld (--triplane-channels)", o->decoder, dec->cfg.C,
                o->channels);
    fc->C = dec->cfg.C;
    if (o->agg_given && o->plane_agg != dec->cfg.agg)
        rhd_die("%s: a decoder fitted with --plane-agg %s, expected %s (--plane-agg; stage 2 and --report take the "
                "decoder's)", o->decoder, rhd_plane_agg_name(dec->cfg.agg), rhd_plane_agg_name(o->plane_agg));
    fc->agg = dec->cfg.agg;
    if (!o->res) fc->R = info.triplane_res ? info.triplane_res : DEFAULT_RES;
    if (!o->res && o->preset_res && o->stage == 2) fc->R = (int)o->preset_res; /* --report: the decoder's */
}

/* ---- forgetting report ---- */

/* Render the eval views of every avatar with its triplane; *json: the report's JSON text (printed
 * by the caller in one piece). sheet_path: one labelled row per avatar and view, gt | render. */
static int report(rhd_renderer *r, const rhd_fit_cfg *fc, char **names, char **dirs, char **tri_paths, int n,
                  const opts *o, const rhd_fit_data_cfg *dc, int clamp, const char *sheet_path, char **json, rhd_err *e) {
    rhd_triplane planes;
    rhd_triplane_alloc(&planes, fc->C, fc->R, clamp, NULL);
    rhd_occgrid g;
    rhd_occgrid_cfg gc = rhd_renderer_grid_cfg(r);
    *json = NULL;
    if (rhd_occgrid_init(r->ctx, &g, &gc, e)) {
        rhd_triplane_free(&planes);
        return -1;
    }
    cJSON *root = cJSON_CreateObject(), *av = cJSON_AddObjectToObject(root, "psnr");
    double sum = 0;
    int counted = 0, rc = 0, nrows = 0, W = 0, H = 0;
    rhd_sheet_row *rows = NULL;
    float **imgs = NULL; /* the views' gt and renders the sheet points into, 2 per row */
    for (int i = 0; i < n && !rc; i++) {
        rhd_fit_views ev, tv;
        if (load_avatar(&tv, &ev, dirs[i], o, dc, 0, e)) {
            rc = -1;
            break;
        }
        if (rhd_triplane_load(tri_paths[i], &planes, 1, NULL, e)) { /* the views are loaded: freed on this exit too */
            rhd_fit_views_free(&ev);
            rc = -1;
            break;
        }
        int64_t np = (int64_t)ev.W * ev.H * 3;
        float *out = rhd_xmalloc(sizeof(float) * (size_t)(np * ev.n));
        double p = rhd_fit_eval(r, &g, &planes, &ev, (int)o->warmup, fc->seed, NULL, out); /* as rhd-render */
        cJSON_AddNumberToObject(av, names[i], round(p * 1e4) / 1e4);
        sum += p, counted++;
        rhd_info("%s: PSNR %.2f dB on %d eval views", names[i], p, ev.n);
        if (sheet_path && (nrows == 0 || (ev.W == W && ev.H == H))) {
            W = ev.W, H = ev.H;
            rows = rhd_xrealloc(rows, sizeof *rows * (size_t)(nrows + ev.n));
            imgs = rhd_xrealloc(imgs, sizeof *imgs * (size_t)(2 * (nrows + ev.n)));
            for (int k = 0; k < ev.n; k++, nrows++) {
                float *gt = rhd_xmalloc(sizeof(float) * (size_t)np), *ren = rhd_xmalloc(sizeof(float) * (size_t)np);
                memcpy(gt, ev.gt + np * k, sizeof(float) * (size_t)np), memcpy(ren, out + np * k, sizeof(float) * (size_t)np);
                char label[160];
                snprintf(label, sizeof label, "%s  view %d  PSNR %.2f dB", names[i], ev.index ? ev.index[k] : k,
                         rhd_image_psnr(ren, gt, H, W));
                imgs[2 * nrows] = gt, imgs[2 * nrows + 1] = ren;
                rows[nrows] = (rhd_sheet_row){gt, ren, rhd_xstrdup(label)};
            }
        }
        free(out);
        rhd_fit_views_free(&ev);
    }
    if (!rc) {
        cJSON_AddNumberToObject(root, "mean", counted ? round(sum / counted * 1e4) / 1e4 : 0);
        *json = cJSON_PrintUnformatted(root);
    }
    if (!rc && nrows) {
        rhd_contact_sheet sh;
        rhd_contact_sheet_init(&sh, W, H);
        sh.title = "forgetting report: ground truth | render with the decoder";
        if (rhd_contact_sheet_write(sheet_path, &sh, rows, nrows, e)) rc = -1;
    }
    for (int k = 0; k < nrows; k++) free(imgs[2 * k]), free(imgs[2 * k + 1]), free((char *)rows[k].label);
    free(rows), free(imgs);
    cJSON_Delete(root);
    rhd_triplane_free(&planes);
    rhd_occgrid_free(r->ctx, &g);
    return rc;
}

/* ---- main ---- */

static void avatar_dirs(const opts *o, char **paths, int n, char ***dirs) {
    *dirs = rhd_xcalloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) (*dirs)[i] = rhd_path_join(o->data, paths[i]);
}

static int cmd_stage1(const opts *o, rhd_ctx *ctx) {
    rhd_err e = {0};
    if (!o->plan) rhd_usage_error("--stage 1 needs --plan FILE (e.g. rhd-schedule fit --data DIR -o plan.json)");
    if (!o->common.output) rhd_usage_error("--stage 1 needs -o DIR (the run directory)");
    rhd_plan plan;
    if (rhd_plan_read(o->plan, &plan, &e)) rhd_die("%s", e.msg);
    rhd_fit_cfg fc;
    rhd_render_cfg rc;
    rhd_fit_data_cfg dc;
    fill_cfgs(o, &fc, &rc, &dc, 1);
    const char *out = o->common.output;
    char *ckpt_path = rhd_path_join(out, "checkpoint.safetensors");
    int lock_fd; /* one process per run directory, before looking at it (released at exit or by a kill) */
    if (rhd_lock_dir(out, &lock_fd, &e)) rhd_die("%s", e.msg);
    if (!o->resume && rhd_file_exists(ckpt_path) && !o->force)
        rhd_usage_error("%s: a stage-1 run is already there, expected --resume to continue it or --force to start over",
                        out); /* the command line's choice, as rhd-train's */
    int resume = o->resume;
    if (resume && !rhd_file_exists(ckpt_path)) {
        if (!run_unstarted(out))
            rhd_die("%s: no checkpoint to resume, expected a run directory of rhd-fit --stage 1", out);
        rhd_info("%s: no run committed yet, starting it", out);
        resume = 0;
    }
    /* the inputs are not outputs; the outputs can be written */
    static const char *const run_files[] = {"checkpoint.safetensors", "decoder.safetensors", NULL};
    for (int i = 0; run_files[i]; i++) {
        char *rf = rhd_path_join(out, run_files[i]);
        refuse_input("-o", rf, "--plan", o->plan);
        refuse_input("-o", rf, "--list", o->list);
        free(rf);
    }
    refuse_input("--contact-sheet", o->contact_sheet, "--plan", o->plan);
    refuse_input("--contact-sheet", o->contact_sheet, "--list", o->list);
    check_writable("-o", ckpt_path);
    check_writable("--contact-sheet", o->contact_sheet);

    /* avatars: the plan's paths under --data (a --list must name the same avatars) */
    int na = plan.navatars;
    if (o->list) {
        char **ln, **lp;
        int nl;
        if (rhd_avatars_from_list(o->list, &ln, &lp, &nl, &e)) rhd_die("--list %s", e.msg);
        for (int i = 0; i < na; i++) {
            int found = 0;
            for (int j = 0; j < nl; j++)
                if (!strcmp(ln[j], plan.avatars[i])) {
                    free(plan.paths[i]);
                    plan.paths[i] = rhd_xstrdup(lp[j]);
                    found = 1;
                }
            if (!found) rhd_die("--list %s: avatar '%s' of the plan is not listed, expected every plan avatar", o->list, plan.avatars[i]);
        }
        rhd_avatars_free(ln, nl);
        rhd_avatars_free(lp, nl);
    }
    char **dirs;
    avatar_dirs(o, plan.paths, na, &dirs);
    /* load and validate every avatar's views before writing anything */
    rhd_fit_views *train = rhd_xcalloc((size_t)na, sizeof *train), *eval = rhd_xcalloc((size_t)na, sizeof *eval);
    for (int i = 0; i < na; i++)
        if (load_avatar(&train[i], &eval[i], dirs[i], o, &dc, 1, &e)) rhd_die("%s", e.msg);

    rhd_fit_run_cfg rcfg = {out, TOOL, fc, rc, resume, o->npy, (int)o->log_every, stdout, o->entry_eval == 1};
    rhd_fit_run run;
    if (rhd_fit_run_open(&run, ctx, &rcfg, &plan, train, eval, &e) || rhd_fit_run_execute(&run, (int)o->max_entries, &e))
        rhd_die("%s", e.msg);
    if (rhd_fit_run_finished(&run)) { /* forgetting report: every avatar fitted so far with the final decoder */
        int nf = 0;
        char **fn = rhd_xcalloc((size_t)na, sizeof(char *)), **fd = rhd_xcalloc((size_t)na, sizeof(char *)),
             **fp = rhd_xcalloc((size_t)na, sizeof(char *));
        for (int i = 0; i < na; i++)
            if (run.planes[i].planes) {
                fn[nf] = plan.avatars[i], fd[nf] = dirs[i];
                fp[nf] = rhd_fit_run_triplane_path(&run, i);
                nf++;
            }
        rhd_info("forgetting report: %d avatars with the final decoder", nf);
        char *json;
        if (report(&run.r, &fc, fn, fd, fp, nf, o, &dc, fc.clamp && !o->test_no_clamp, o->contact_sheet, &json, &e))
            rhd_die("%s", e.msg);
        printf("{\"report\": %s}\n", json); /* one piece, after the work */
        fflush(stdout);
        free(json);
        for (int i = 0; i < nf; i++) free(fp[i]);
        free(fn), free(fd), free(fp);
    }
    rhd_fit_run_close(&run);
    for (int i = 0; i < na; i++) {
        free(dirs[i]);
        rhd_fit_views_free(&train[i]), rhd_fit_views_free(&eval[i]);
    }
    free(dirs), free(train), free(eval), free(ckpt_path);
    rhd_plan_free(&plan);
    rhd_unlock_dir(&lock_fd);
    return 0;
}

/* Stage 2 of one avatar. Returns 0 (written or skipped), or 1 when the fit collapsed and `batch`
 * is set (the message is printed and nothing written; without `batch` a collapse exits 1). */
static int cmd_stage2(const opts *o, rhd_ctx *ctx, int batch) {
    rhd_err e = {0};
    if (!o->decoder) rhd_usage_error("--stage 2 needs --decoder FILE (a stage-1 decoder.safetensors)");
    if (!o->avatar) rhd_usage_error("--stage 2 needs --avatar NAME, or --list FILE or --avatars A,B with -o DIR");
    const char *out = o->common.output;
    if (!out) rhd_usage_error("--stage 2 needs -o FILE (.safetensors, or .npy for the original's layout)");
    if (!ends_with(out, ".safetensors") && !ends_with(out, ".npy"))
        rhd_usage_error("-o %s: expected a .safetensors or .npy file name", out);
    refuse_input("-o", out, "--decoder", o->decoder);
    refuse_input("-o", out, "--list", o->list);
    if (rhd_file_exists(out) && !o->force) {
        rhd_info("%s exists: skipped (--force to refit)", out);
        return 0;
    }
    check_writable("-o", out);
    rhd_fit_cfg fc;
    rhd_render_cfg rc;
    rhd_fit_data_cfg dc;
    fill_cfgs(o, &fc, &rc, &dc, 2);
    {
        rhd_err me = {0};
        if (rhd_mkdir_parents(out, &me)) rhd_die("%s", me.msg);
    }
    const char *slash = strrchr(o->avatar, '/');
    char *name = rhd_xstrdup(slash && slash[1] ? slash + 1 : o->avatar);
    char *dir = rhd_path_join(o->data, o->avatar);
    rhd_fit_views train, eval;
    if (load_avatar(&train, &eval, dir, o, &dc, 1, &e)) rhd_die("%s", e.msg);
    rhd_decoder dec;
    load_decoder(o, ctx, 1, &dec, &fc);
    rhd_plan plan;
    rhd_plan_params pp;
    rhd_plan_params_init(&pp);
    pp.rounds = 1, pp.steps = o->steps, pp.lr0 = o->lr0, pp.lr1 = 1e-30, pp.iwc_weight = 0;
    const char *names[1] = {name};
    if (rhd_plan_generate(&plan, &pp, names, NULL, 1, &e)) rhd_die("%s", e.msg);
    rhd_renderer r;
    rhd_renderer_init(&r, ctx, &dec, &rc);
    rhd_triplane planes;
    rhd_fit_triplane_new(&planes, &fc, 0);
    rhd_fit_avatar av = {0, name, &train, planes, &eval, NAN};
    rhd_fit_result res = {0};
    rhd_heartbeat *hb = rhd_heartbeat_start();
    char phase[200];
    snprintf(phase, sizeof phase, "stage 2 %s", name);
    rhd_heartbeat_phase(hb, phase, o->steps, &res.steps);
    int vrc = rhd_fit_visit(&r, &fc, &plan, 0, &av, 1, NULL, (int)o->log_every, &res, &e);
    rhd_heartbeat_stop(hb);
    if (vrc) rhd_die("%s", e.msg);
    printf("{\"avatar\": \"%s\", \"status\": \"%s\", \"psnr\": %.4f, \"psnr_background\": %.4f, \"opacity\": %.4g, "
           "\"steps\": %lld, \"steps_requested\": %lld, \"seconds\": %.2f}\n", name, av.collapsed ? "collapsed" : "ok", av.psnr,
           av.psnr_bg, av.opacity, (long long)res.steps, (long long)o->steps, res.seconds); /* steps: those run */
    fflush(stdout);
    int collapsed = av.collapsed;
    if (collapsed) {
        char msg[1024];
        snprintf(msg, sizeof msg,
                 "%s: stage 2 collapsed to an empty density (training opacity %.2g, eval PSNR %.2f dB, background-only "
                 "%.2f dB); nothing written to %s. The decoder %s gives no density to this triplane: use a decoder "
                 "fitted longer or on more avatars, or weaker regularisers (--dist-weight 2e-5 --l1-weight 1e-6 "
                 "--tv-weight 2e-4, the stage-1 weights); --collapse-opacity 0 disables the check",
                 name, av.opacity, av.psnr, av.psnr_bg, out, o->decoder);
        if (!batch) rhd_die("%s", msg);
        rhd_warn("%s (going on with the next avatar; the batch exits 1)", msg);
        goto done;
    }
    rhd_triplane_meta tm = {TOOL, name, -1, 1, fc.seed, rhd_ctx_device_label(ctx)};
    /* the output last (an existing output means done): a kill before it leaves nothing to skip */
    rhd_crash_before_write(out);
    if (rhd_triplane_save(out, &planes, &tm, o->npy, &e)) rhd_die("%s", e.msg);
    rhd_crash_point("wrote", out);
    rhd_info("%s: eval PSNR %.2f dB on %d views, %lld steps in %.1f s (%.3g samples/s) -> %s", name, av.psnr, eval.n,
             (long long)res.steps, res.seconds, res.samples / res.seconds, out);
done:
    rhd_triplane_free(&planes), free(name), free(dir);
    rhd_fit_views_free(&train), rhd_fit_views_free(&eval);
    rhd_renderer_free(&r);
    rhd_decoder_free(&dec);
    rhd_plan_free(&plan);
    return collapsed;
}

/* Stage 2 over many avatars (--list or --avatars, no --avatar): this rank's avatars (i mod
 * --world) one after the other, each into OUT/<name>.safetensors as `--stage 2 --avatar` does it
 * (an existing output is skipped, so a killed batch is rerun as it was started). An avatar that
 * collapses is reported and skipped; the others are fitted, and the batch then exits 1 naming it. */
static int cmd_stage2_batch(const opts *o, rhd_ctx *ctx) {
    rhd_err e = {0};
    const char *out = o->common.output;
    if (!out) rhd_usage_error("--stage 2 over --list/--avatars needs -o DIR (one <avatar>.safetensors each)");
    if (ends_with(out, ".safetensors") || ends_with(out, ".npy"))
        rhd_usage_error("-o %s: expected a directory for stage 2 over --list/--avatars (or one --avatar NAME)", out);
    char **names = NULL, **paths = NULL;
    int n = 0;
    if (o->list && rhd_avatars_from_list(o->list, &names, &paths, &n, &e)) rhd_die("--list %s", e.msg);
    if (!o->list && rhd_avatars_from_csv(o->avatars, &names, &n, &e)) rhd_usage_error("--avatars %s", e.msg);
    int mine = 0, nfailed = 0;
    char *failed = NULL; /* names of the avatars that collapsed, comma separated */
    for (int i = 0; i < n; i++) mine += rhd_shard_mine(&o->shard, i);
    if (o->shard.world > 1) rhd_info("rank %lld of %lld: %d of %d avatars", o->shard.rank, o->shard.world, mine, n);
    for (int i = 0; i < n; i++) {
        if (!rhd_shard_mine(&o->shard, i)) continue;
        opts one = *o;
        char *op = path_fmt("%s/%s.safetensors", out, names[i]);
        one.avatar = paths ? paths[i] : names[i], one.common.output = op;
        if (cmd_stage2(&one, ctx, 1)) {
            size_t l = failed ? strlen(failed) : 0, k = strlen(names[i]);
            failed = rhd_xrealloc(failed, l + k + 3);
            snprintf(failed + l, k + 3, "%s%s", l ? ", " : "", names[i]);
            nfailed++;
        }
        free(op);
    }
    rhd_avatars_free(names, n);
    if (paths) rhd_avatars_free(paths, n);
    if (nfailed) {
        char msg[2048];
        snprintf(msg, sizeof msg, "stage 2: %d of %d avatars of this rank collapsed and were not written: %s", nfailed,
                 mine, failed);
        free(failed);
        rhd_die("%s", msg);
    }
    return 0;
}

static int cmd_report(const opts *o, rhd_ctx *ctx) {
    rhd_err e = {0};
    if (!o->decoder || !o->triplanes) rhd_usage_error("--report needs --decoder FILE and --triplanes DIR");
    refuse_input("--contact-sheet", o->contact_sheet, "--decoder", o->decoder);
    refuse_input("--contact-sheet", o->contact_sheet, "--list", o->list);
    check_writable("--contact-sheet", o->contact_sheet);
    rhd_fit_cfg fc;
    rhd_render_cfg rc;
    rhd_fit_data_cfg dc;
    fill_cfgs(o, &fc, &rc, &dc, 1);
    char **names = NULL, **paths = NULL;
    int n = 0;
    if (o->list) {
        if (rhd_avatars_from_list(o->list, &names, &paths, &n, &e)) rhd_die("--list %s", e.msg);
    } else if (o->avatars) {
        if (rhd_avatars_from_csv(o->avatars, &names, &n, &e)) rhd_usage_error("--avatars %s", e.msg);
    } else if (rhd_avatars_from_dir(o->data, &names, &n, &e))
        rhd_die("--data %s", e.msg);
    char **sel_names = rhd_xcalloc((size_t)n, sizeof(char *)), **sel_dirs = rhd_xcalloc((size_t)n, sizeof(char *)),
         **sel_tri = rhd_xcalloc((size_t)n, sizeof(char *));
    int ns = 0;
    for (int i = 0; i < n; i++) {
        char *st = path_fmt("%s/%s.safetensors", o->triplanes, names[i]), *np = path_fmt("%s/%s.npy", o->triplanes, names[i]);
        char *use = rhd_file_exists(st) ? st : (rhd_file_exists(np) ? np : NULL);
        if (use) {
            sel_names[ns] = names[i];
            sel_dirs[ns] = rhd_path_join(o->data, paths ? paths[i] : names[i]);
            sel_tri[ns] = rhd_xstrdup(use);
            ns++;
        } else if (o->list || o->avatars)
            rhd_die("%s: no triplane for avatar '%s', expected %s or .npy", o->triplanes, names[i], st);
        free(st), free(np);
    }
    for (int i = 0; i < ns; i++) refuse_input("--contact-sheet", o->contact_sheet, "the triplane", sel_tri[i]);
    if (ns == 0) rhd_die("%s: no triplanes of the avatars in %s, expected <avatar>.safetensors files", o->triplanes, o->data);
    rhd_decoder dec;
    load_decoder(o, ctx, 0, &dec, &fc);
    rhd_renderer r;
    rhd_renderer_init(&r, ctx, &dec, &rc);
    char *json;
    if (report(&r, &fc, sel_names, sel_dirs, sel_tri, ns, o, &dc, fc.clamp && !o->test_no_clamp, o->contact_sheet, &json, &e))
        rhd_die("%s", e.msg);
    printf("%s\n", json);
    free(json);
    for (int i = 0; i < ns; i++) free(sel_dirs[i]), free(sel_tri[i]);
    free(sel_names), free(sel_dirs), free(sel_tri);
    rhd_avatars_free(names, n);
    if (paths) rhd_avatars_free(paths, n);
    rhd_renderer_free(&r);
    rhd_decoder_free(&dec);
    return 0;
}

/* The preset named on the command line (--preset P or --preset=P) as the defaults the parser then
 * overrides; returns its index (0: none). */
static int apply_preset(opts *o, int argc, char **argv) {
    int idx = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = !strcmp(argv[i], "--preset") && i + 1 < argc ? argv[i + 1]
                        : !strncmp(argv[i], "--preset=", 9)          ? argv[i] + 9
                                                                     : NULL;
        for (int k = 1; v && preset_choices[k]; k++)
            if (!strcmp(v, preset_choices[k])) idx = k;
    }
    if (idx) {
        const fit_preset *p = &presets[idx];
        o->preset_res = p->res, o->preset_channels = p->channels, o->rays = p->rays, o->grid_size = p->grid_size;
        o->max_steps = p->max_steps, o->steps = p->steps, o->plane_agg = p->agg;
    }
    return idx;
}

int main(int argc, char **argv) {
    rhd_set_prog(argv[0]);
    rhd_fs_install_signal_handlers();
    opts o;
    memset(&o, 0, sizeof o);
    rhd_common_opts_init(&o.common);
    o.res = 0, o.channels = 0, o.rays = 8192, o.steps = 30000, o.lr0 = 2e-2;
    o.grid_size = 256, o.max_steps = 1024, o.update_interval = 16, o.full_updates = 16, o.dist_points = 1000;
    o.fisher_steps = 0, o.log_every = 0, o.warmup = 16;
    o.bound = 1, o.min_near = 0.2, o.dt_gamma = 0, o.T_thresh = 1e-4, o.density_thresh = 10, o.grid_decay = 0.95;
    o.w_l1 = o.w_tv = o.w_dist = o.w_iwc = -1;
    o.divisor = 23, o.scale = 0.6, o.collapse_opacity = 0.01, o.tri_eps = -1, o.reg_gate = -1;
    rhd_shard_init(&o.shard);
    int pre = apply_preset(&o, argc, argv);
    int n = rhd_cli_parse(&cli, argc, argv, &o);
    o.agg_given = rhd_cli_given(&cli, "plane-agg");
    rhd_common_opts_apply(&o.common);
    rhd_shard_check(&o.shard);
    rhd_fs_install_signal_handlers();
    if (n > 0) rhd_usage_error("unexpected argument '%s'", argv[1]);
    if (o.preset != pre) rhd_usage_error("--preset %s: in a --config file, expected it on the command line", preset_choices[o.preset]);
    if (!o.data) rhd_usage_error("expected --data DIR (the avatars' data root)");
    if ((o.stage != 0) + o.report != 1) rhd_usage_error("expected exactly one of --stage 1, --stage 2 or --report");
    if (o.channels % 4) rhd_usage_error("--triplane-channels %lld: expected a multiple of 4 (e.g. 32)", o.channels);
    if (o.res == 1) rhd_usage_error("--triplane-res 1: expected at least 2 (e.g. 512), or 0 for the default");
    if (o.grid_size & (o.grid_size - 1)) rhd_usage_error("--grid-size %lld: expected a power of two (e.g. 256)", o.grid_size);
    rhd_err e = {0};
    rhd_ctx *ctx = rhd_ctx_open(o.common.device ? o.common.device : "cpu", &e);
    if (!ctx) rhd_die("%s", e.msg);
    rhd_ctx_set_tf32(ctx, o.common.tf32);
    rhd_ctx_set_bf16(ctx, o.common.bf16);
    int batch2 = o.stage == 2 && !o.avatar && (o.list || o.avatars);
    int rc = o.report ? cmd_report(&o, ctx) : o.stage == 1 ? cmd_stage1(&o, ctx) : batch2 ? cmd_stage2_batch(&o, ctx) : cmd_stage2(&o, ctx, 0);
    rhd_ctx_close(ctx);
    return rc;
}
