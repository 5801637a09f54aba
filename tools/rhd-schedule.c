/* tools/rhd-schedule.c: schedules for the two halves of RodinHD.
 *   rhd-schedule fit    the task-replay plan of stage-1 fitting (common/plan.h, formats/plan.md)
 *   rhd-schedule show   a plan as a table
 *   rhd-schedule noise  diffusion noise-schedule tables and plots (common/models/diffusion_schedule.h,
 *                       formats/schedule.md)
 * See tools/rhd-schedule.md. */
#include "common/cli.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/plan.h"
#include "common/plot.h"
#include "common/models/diffusion_schedule.h"
#include "formats/png.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_name[128]; /* "rhd-schedule fit" */

static void set_prog(const char *argv0, const char *sub) {
    const char *s = strrchr(argv0, '/');
    snprintf(g_name, sizeof g_name, "%s%s%s", s ? s + 1 : argv0, sub ? " " : "", sub ? sub : "");
    rhd_set_prog(g_name);
}

/* Integers as integers, other numbers in the shortest %g form that reads back to the same double;
 * "inf", "-inf", "nan" as printf prints them. */
static void fmt_num(double x, char *buf, size_t n) {
    if (!isfinite(x)) {
        snprintf(buf, n, "%g", x);
        return;
    }
    if (x == floor(x) && fabs(x) < 1e15) {
        snprintf(buf, n, "%.0f", x);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

/* Output to -o FILE (atomically) or stdout ("-" or no -o). */
typedef struct {
    FILE *f;
    rhd_atomic a;
    int is_file;
} output;

static void out_open(output *o, const char *path) {
    memset(o, 0, sizeof *o);
    if (!path || strcmp(path, "-") == 0) {
        o->f = stdout;
        return;
    }
    rhd_err e;
    if (rhd_atomic_open(&o->a, path, &e)) rhd_die_err(&e);
    o->f = o->a.f;
    o->is_file = 1;
}

static void out_close(output *o) {
    if (!o->is_file) return;
    rhd_err e;
    if (rhd_atomic_commit(&o->a, &e)) rhd_die_err(&e);
}

/* Before the work: an output may not be one of the inputs (usage error naming both) and must be
 * writable. */
static void check_output(const char *opt, const char *path, const char *const *inputs, int n) {
    if (!path) return;
    rhd_err e;
    if (rhd_check_output_not_input(opt, path, inputs, n, &e)) rhd_usage_error("%s", e.msg);
    if (rhd_check_output_writable(opt, path, &e)) rhd_die_err(&e);
}

/* ================================================================================================
 * fit: the task-replay plan */

typedef struct fit_opts {
    rhd_common_opts common;
    const char *list, *data, *avatars;
    long long rounds, steps, decoder_decay_steps, group, refit_steps;
    double lr0, lr1, iwc_weight, refit_lr;
    int order, round_lr, print, skip_incomplete;
} fit_opts;

static const char *const order_choices[] = {"round-robin", "shuffled", "interleaved", NULL};
static const char *const round_lr_choices[] = {"original", "constant", NULL}; /* RHD_ROUND_LR_* */

static const rhd_opt fit_options[] = {
    RHD_OPT_GROUP_("avatars (exactly one)"),
    RHD_OPT_STRING_(0, "list", fit_opts, list, "FILE", "one avatar path per line (name = last component; '#' comments)"),
    RHD_OPT_STRING_(0, "data", fit_opts, data, "DIR", "every subdirectory of DIR holding metadata_000000.json, sorted"),
    RHD_OPT_STRING_(0, "avatars", fit_opts, avatars, "A,B,C", "avatar names separated by commas"),
    RHD_OPT_FLAG_(0, "skip-incomplete", fit_opts, skip_incomplete,
                  "--data: leave out (listing them on stderr) avatars with view files but no metadata_000000.json, an error otherwise"),
    RHD_OPT_GROUP_("plan"),
    RHD_OPT_INT_(0, "rounds", fit_opts, rounds, "N", "task-replay rounds (every avatar is visited once per round)", 1, 100000),
    RHD_OPT_INT_(0, "steps", fit_opts, steps, "N", "optimiser steps per visit", 1, 1000000000),
    RHD_OPT_DOUBLE_(0, "lr0", fit_opts, lr0, "LR", "triplane lr of every round (of round 0 with --round-lr original)", 0, 10),
    RHD_OPT_CHOICE_(0, "round-lr", fit_opts, round_lr, "RULE",
                    "triplane lr of round r: lr0/(10r+1) (the original) or lr0", round_lr_choices),
    RHD_OPT_INT_(0, "refit-steps", fit_opts, refit_steps, "N",
                 "a last round: every avatar alone for N steps with the decoder frozen (-1: --steps; 0: none, the original)", -1, 1000000000),
    RHD_OPT_DOUBLE_(0, "refit-lr", fit_opts, refit_lr, "LR", "triplane lr of the refit round (0: lr0)", 0, 10),
    RHD_OPT_DOUBLE_(0, "lr1", fit_opts, lr1, "LR", "decoder lr", 0, 10),
    RHD_OPT_INT_(0, "decoder-decay-steps", fit_opts, decoder_decay_steps, "N",
                 "decoder lr reaches 0.1 x lr1 after N plan steps (0: 50 x --steps)", 0, 1000000000000.0),
    RHD_OPT_DOUBLE_(0, "iwc-weight", fit_opts, iwc_weight, "W", "weight of the IWC penalty (0: none)", 0, 1e6),
    RHD_OPT_CHOICE_(0, "order", fit_opts, order, "ORDER", "visit order within a round", order_choices),
    RHD_OPT_INT_(0, "group", fit_opts, group, "N", "interleaved: avatars mixed within each step", 1, 1000000),
    RHD_OPT_FLAG_(0, "print", fit_opts, print, "print the plan as a table on stdout (the JSON then goes only to -o FILE)"),
    RHD_OPT_GROUP_("common options"),
    RHD_OPT_STRING_('o', "output", fit_opts, common.output, "FILE", "plan file, written atomically ('-': stdout, the default)"),
    RHD_OPT_INT_(0, "seed", fit_opts, common.seed, "N", "seed of the shuffled order", 0, 9.007199254740992e15),
    RHD_OPT_STRING_(0, "config", fit_opts, common.config, "FILE", "JSON object of option values; flags override it"),
    RHD_OPT_FLAG_('q', "quiet", fit_opts, common.quiet, "no summary on stderr"),
    RHD_OPT_COUNT_('v', "verbose", fit_opts, common.verbose, "more messages"),
    RHD_OPT_END_};

static const rhd_cli fit_cli = {
    "rhd-schedule fit",
    "rhd-schedule fit (--list FILE | --data DIR | --avatars A,B,C) [options] [-o plan.json]",
    "Write the task-replay plan of stage-1 fitting (formats/plan.md): for every round, every avatar's\n"
    "visit with its steps and learning rates. The defaults: RodinHD's fit_stage1.sh (30 rounds of\n"
    "6000 steps per avatar in list order, triplane lr decaying x0.1 over each visit, decoder lr 2e-3\n"
    "decaying x0.1 over the first 300000 steps, IWC weight 0.1) with every round's triplane lr 2e-2\n"
    "(the original: 2e-2/(10*round+1)) and a last refit round, each avatar alone with the decoder\n"
    "frozen, against forgetting (tools/rhd-fit.md); --round-lr original --refit-steps 0 is the\n"
    "original's plan. A one-line summary goes to stderr.\n",
    fit_options,
    "examples:\n"
    "  rhd-schedule fit --data tests/data/mini -o plan.json\n"
    "  rhd-schedule fit --data tests/data/mini --round-lr original --refit-steps 0 -o original.json\n"
    "  rhd-schedule fit --list stage1.txt --order shuffled --seed 3 --rounds 10 -o plan.json\n"
    "  rhd-schedule fit --avatars a,b,c,d --order interleaved --group 2 --print\n"};

static void fmt_avatars(const rhd_plan *p, const rhd_plan_entry *en, char *buf, size_t n) {
    size_t o = 0;
    buf[0] = 0;
    for (int j = 0; j < en->navatars && o < n; j++) o += snprintf(buf + o, n - o, "%s%s", j ? "," : "", p->avatars[en->avatars[j]]);
}

static void print_plan_table(const rhd_plan *p, FILE *f) {
    char av[4096];
    int w = 6;
    for (int i = 0; i < p->nentries; i++) {
        fmt_avatars(p, &p->entries[i], av, sizeof av);
        int l = (int)strlen(av);
        if (l > w) w = l > 48 ? 48 : l;
    }
    char grp[48] = "";
    if (p->order == RHD_PLAN_INTERLEAVED) snprintf(grp, sizeof grp, " in groups of %d", p->group);
    fprintf(f, "# plan: %d rounds, %d avatars, order %s%s, %d entries, %lld steps\n", p->rounds, p->navatars,
            rhd_plan_order_name(p->order), grp, p->nentries, p->total_steps);
    int frozen; /* entries with the decoder frozen (a refit round); the decoder lr range is of the others' */
    const rhd_plan_entry *le = rhd_plan_last_trained(p, &frozen);
    char fz[64] = "";
    if (frozen) snprintf(fz, sizeof fz, "; %d entr%s with the decoder frozen", frozen, frozen == 1 ? "y" : "ies");
    fprintf(f, "# triplane lr decays x0.1 over each visit; decoder lr decays x0.1 over the first %lld steps (this plan: "
            "%.4g .. %.4g%s); iwc weight %g\n", p->decoder_decay_steps, rhd_plan_decoder_lr(p, &p->entries[0], 0),
            rhd_plan_decoder_lr(p, le, le->steps - 1), fz, p->iwc_weight);
    fprintf(f, "%6s %5s  %-*s %10s  %-24s  %-24s  %s\n", "entry", "round", w, "avatar", "steps", "triplane lr first..last",
            "decoder lr first..last", "decoder steps");
    for (int i = 0; i < p->nentries; i++) {
        const rhd_plan_entry *en = &p->entries[i];
        fmt_avatars(p, en, av, sizeof av);
        char tl[64], dl[64];
        snprintf(tl, sizeof tl, "%.3e .. %.3e", rhd_plan_triplane_lr(en, 0), rhd_plan_triplane_lr(en, en->steps - 1));
        snprintf(dl, sizeof dl, "%.3e .. %.3e", rhd_plan_decoder_lr(p, en, 0), rhd_plan_decoder_lr(p, en, en->steps - 1));
        if (en->decoder_lr == 0) {
            fprintf(f, "%6d %5d  %-*s %10lld  %-24s  %-24s  -\n", i, en->round, w, av, en->steps, tl, "frozen");
            continue;
        }
        fprintf(f, "%6d %5d  %-*s %10lld  %-24s  %-24s  %lld..%lld\n", i, en->round, w, av, en->steps, tl, dl, en->first_step,
                en->first_step + en->steps - 1);
    }
}

static int cmd_fit(int argc, char **argv) {
    fit_opts o;
    memset(&o, 0, sizeof o);
    rhd_common_opts_init(&o.common);
    rhd_plan_params pp;
    rhd_plan_params_init(&pp);
    o.rounds = pp.rounds, o.steps = pp.steps, o.lr0 = pp.lr0, o.lr1 = pp.lr1;
    o.decoder_decay_steps = pp.decoder_decay_steps, o.iwc_weight = pp.iwc_weight, o.group = pp.group;
    o.order = pp.order, o.round_lr = pp.round_lr, o.refit_steps = pp.refit_steps, o.refit_lr = pp.refit_lr;
    int n = rhd_cli_parse(&fit_cli, argc, argv, &o);
    rhd_common_opts_apply(&o.common);
    if (n > 0) rhd_usage_error("unexpected argument '%s' (avatars come from --list, --data or --avatars)", argv[1]);
    int sources = !!o.list + !!o.data + !!o.avatars;
    if (sources != 1)
        rhd_usage_error("%s, expected exactly one of --list FILE, --data DIR or --avatars A,B,C",
                        sources ? "several avatar sources given" : "no avatars given");
    if (!(o.lr0 > 0)) rhd_usage_error("--lr0 %g: expected a number in (0, 10] (e.g. --lr0 2e-2)", o.lr0);
    if (!(o.lr1 > 0)) rhd_usage_error("--lr1 %g: expected a number in (0, 10] (e.g. --lr1 2e-3)", o.lr1);
    if (o.print && o.common.output && strcmp(o.common.output, "-") == 0)
        rhd_usage_error("--print and -o - both write to stdout, expected -o FILE with --print");
    if (o.skip_incomplete && !o.data) rhd_usage_error("--skip-incomplete applies to --data DIR, expected --data with it");
    const char *inputs[2] = {o.list, o.common.config};
    check_output("-o", o.common.output, inputs, 2);

    char **names = NULL, **paths = NULL;
    int na = 0;
    rhd_err e;
    if (o.list && rhd_avatars_from_list(o.list, &names, &paths, &na, &e)) rhd_die("--list %s", e.msg);
    if (o.data && rhd_avatars_from_dir_opt(o.data, o.skip_incomplete, &names, &na, &e)) rhd_die("--data %s", e.msg);
    if (o.avatars && rhd_avatars_from_csv(o.avatars, &names, &na, &e)) rhd_usage_error("--avatars %s", e.msg);

    pp.rounds = (int)o.rounds, pp.steps = o.steps, pp.lr0 = o.lr0, pp.lr1 = o.lr1;
    pp.decoder_decay_steps = o.decoder_decay_steps, pp.iwc_weight = o.iwc_weight;
    pp.order = (rhd_plan_order)o.order, pp.seed = (uint64_t)o.common.seed, pp.group = (int)o.group;
    pp.round_lr = o.round_lr, pp.refit_steps = o.refit_steps, pp.refit_lr = o.refit_lr;
    rhd_plan plan;
    if (rhd_plan_params_check(&pp, na, &e)) rhd_usage_error("%s", e.msg); /* what the options ask for */
    if (rhd_plan_generate(&plan, &pp, (const char *const *)names, (const char *const *)paths, na, &e)) rhd_die("%s", e.msg);
    rhd_avatars_free(names, na);
    rhd_avatars_free(paths, paths ? na : 0);

    const char *out = o.common.output ? o.common.output : (o.print ? NULL : "-");
    if (out && rhd_plan_write(&plan, out, &e)) rhd_die("%s", e.msg);
    if (o.print) print_plan_table(&plan, stdout);

    int nfrozen; /* the refit round's entries */
    const rhd_plan_entry *last = rhd_plan_last_trained(&plan, &nfrozen);
    long long train_steps = last->first_step + last->steps;
    char grp[48] = "", refit[128] = "";
    if (plan.order == RHD_PLAN_INTERLEAVED) snprintf(grp, sizeof grp, " in groups of %d", plan.group);
    if (nfrozen)
        snprintf(refit, sizeof refit, "; refit round: %lld steps per avatar, decoder frozen, triplane lr %.4g",
                 plan.entries[plan.nentries - 1].steps, plan.entries[plan.nentries - 1].triplane_lr);
    int to_file = out && strcmp(out, "-") != 0;
    /* the decoder lr this plan actually uses: its first and last step (x0.1 only if the plan reaches the decay length) */
    rhd_info("plan: %d rounds x %d avatars (%s%s)%s = %d entries, %lld steps; triplane lr %.4g .. %.4g; decoder lr %.4g -> %.4g "
             "over its %lld steps (x0.1 after %lld)%s; iwc %g%s%s",
             plan.rounds - (nfrozen > 0), plan.navatars, rhd_plan_order_name(plan.order), grp, nfrozen ? " + a refit round" : "",
             plan.nentries, plan.total_steps,
             plan.entries[0].triplane_lr, last->triplane_lr, rhd_plan_decoder_lr(&plan, &plan.entries[0], 0),
             rhd_plan_decoder_lr(&plan, last, last->steps - 1), train_steps, plan.decoder_decay_steps, refit, plan.iwc_weight,
             to_file ? " -> " : "", to_file ? out : "");
    rhd_plan_free(&plan);
    return rhd_close_stdout();
}

/* ================================================================================================
 * show: a plan as a table */

typedef struct show_opts {
    rhd_common_opts common;
} show_opts;

static const rhd_opt show_options[] = {
    RHD_OPT_FLAG_('q', "quiet", show_opts, common.quiet, "no info messages"),
    RHD_OPT_END_};

static const rhd_cli show_cli = {
    "rhd-schedule show",
    "rhd-schedule show PLAN.json",
    "Validate a plan file (formats/plan.md) and print it as a table: each entry's round, avatar(s),\n"
    "steps, the triplane and decoder learning rates at its first and last step, and the range of\n"
    "decoder steps it covers. Exit status 1 with a message naming the entry if the plan is invalid.\n",
    show_options,
    "example:\n  rhd-schedule show plan.json | less\n"};

static int cmd_show(int argc, char **argv) {
    show_opts o;
    memset(&o, 0, sizeof o);
    rhd_common_opts_init(&o.common);
    int n = rhd_cli_parse(&show_cli, argc, argv, &o);
    rhd_common_opts_apply(&o.common);
    if (n != 1) rhd_usage_error("expected one PLAN file (e.g. rhd-schedule show plan.json), got %d arguments", n);
    rhd_plan plan;
    rhd_err e;
    if (rhd_plan_read(argv[1], &plan, &e)) rhd_die("%s", e.msg);
    print_plan_table(&plan, stdout);
    rhd_plan_free(&plan);
    return rhd_close_stdout();
}

/* ================================================================================================
 * noise: diffusion noise schedules */

typedef struct noise_opts {
    rhd_common_opts common;
    const char *schedule, *respacing, *png;
    long long steps, ddim, width, height;
    double eta;
    int json, plot, linear_y;
} noise_opts;

/* columns of the noise table that --plot can show */
static const char *const plot_choices[] = {"beta", "alpha_bar", "sqrt_alpha_bar", "sqrt_one_minus_alpha_bar",
                                           "posterior_variance", "posterior_log_variance_clipped", "snr", NULL};

static const rhd_opt noise_options[] = {
    RHD_OPT_STRING_(0, "schedule", noise_opts, schedule, "NAMES",
                    "linear, squaredcos_cap_v2, cosine, cosine_light or sigmoid; several separated by commas"),
    RHD_OPT_INT_(0, "steps", noise_opts, steps, "T", "diffusion steps", 2, RHD_DIFFUSION_MAX_T),
    RHD_OPT_STRING_(0, "respacing", noise_opts, respacing, "SPEC", "keep a subset of the steps: \"N1,N2,...\" or \"ddimN\""),
    RHD_OPT_INT_(0, "ddim", noise_opts, ddim, "S", "tabulate the DDIM sampler's S steps (\"dpm\" discretisation) instead", 0, RHD_DIFFUSION_MAX_T),
    RHD_OPT_DOUBLE_(0, "eta", noise_opts, eta, "ETA", "DDIM eta for the sigma column (base model 1, upsampler 0)", 0, 100),
    RHD_OPT_FLAG_(0, "json", noise_opts, json, "write JSON (columns as arrays) instead of TSV"),
    RHD_OPT_GROUP_("plot"),
    RHD_OPT_STRING_(0, "png", noise_opts, png, "OUT", "plot the schedules into a PNG (the table is then written only with -o)"),
    RHD_OPT_CHOICE_(0, "plot", noise_opts, plot, "COLUMN", "what --png plots against t", plot_choices),
    RHD_OPT_FLAG_(0, "linear-y", noise_opts, linear_y, "linear y axis (default: log10 for positive columns)"),
    RHD_OPT_INT_(0, "width", noise_opts, width, "PX", "image width", 200, 4096),
    RHD_OPT_INT_(0, "height", noise_opts, height, "PX", "image height", 150, 4096),
    RHD_OPT_GROUP_("common options"),
    RHD_OPT_STRING_('o', "output", noise_opts, common.output, "FILE", "table file, written atomically ('-': stdout, the default)"),
    RHD_OPT_STRING_(0, "config", noise_opts, common.config, "FILE", "JSON object of option values; flags override it"),
    RHD_OPT_FLAG_('q', "quiet", noise_opts, common.quiet, "no info messages"),
    RHD_OPT_COUNT_('v', "verbose", noise_opts, common.verbose, "more messages"),
    RHD_OPT_END_};

static const rhd_cli noise_cli = {
    "rhd-schedule noise",
    "rhd-schedule noise [--schedule NAMES] [--steps T] [--respacing SPEC] [--ddim S [--eta E]] [--json] [--png OUT] [-o FILE]",
    "Tabulate diffusion noise schedules (formats/schedule.md): per step the beta, alpha_bar,\n"
    "sqrt(alpha_bar), sqrt(1 - alpha_bar), the posterior variance, its clipped log and the SNR,\n"
    "computed in float64 as the original's GaussianDiffusion does. The base model uses cosine_light\n"
    "with T = 1000, the upsampler sigmoid with T = 100. --ddim S tabulates the steps the DDIM sampler\n"
    "visits instead; --png plots one column of several schedules for comparison by eye.\n",
    noise_options,
    "examples:\n"
    "  rhd-schedule noise --schedule cosine_light --steps 1000 > cosine_light.tsv\n"
    "  rhd-schedule noise --schedule sigmoid --steps 100 --ddim 10 --eta 0\n"
    "  rhd-schedule noise --schedule cosine_light,cosine,linear,squaredcos_cap_v2 --steps 1000 --png abar.png\n"};

enum { NCOL = 10, NDCOL = 9 };
static const char *const noise_cols[NCOL] = {"schedule", "step", "t", "beta", "alpha_bar", "sqrt_alpha_bar",
                                             "sqrt_one_minus_alpha_bar", "posterior_variance",
                                             "posterior_log_variance_clipped", "snr"};
static const char *const ddim_cols[NDCOL] = {"schedule", "k", "step", "t", "t_model", "alpha_bar", "alpha_bar_prev",
                                             "sigma", "dir_coef"};

typedef struct {
    rhd_beta_kind kind;
    rhd_diffusion_schedule d;
    int *ts, nts;                    /* DDIM steps */
    double *a, *ap, *sigma, *dir;    /* DDIM coefficients */
    double *x;                       /* t as double, for plots */
} sched;

/* Value of numeric column c (1..) of the noise table at step i. */
static double noise_value(const sched *s, int c, int i) {
    const rhd_diffusion_schedule *d = &s->d;
    switch (c) {
    case 1: return i;
    case 2: return d->timestep_map[i];
    case 3: return d->betas[i];
    case 4: return d->alphas_cumprod[i];
    case 5: return d->sqrt_alphas_cumprod[i];
    case 6: return d->sqrt_one_minus_alphas_cumprod[i];
    case 7: return d->posterior_variance[i];
    case 8: return d->posterior_log_variance_clipped[i];
    default: return d->snr[i];
    }
}

static double ddim_value(const sched *s, int c, int k) {
    int t = s->ts[k];
    switch (c) {
    case 1: return k;
    case 2: return t;
    case 3: return s->d.timestep_map[t];
    case 4: return rhd_rescale_timestep(s->d.timestep_map[t], s->d.T_orig);
    case 5: return s->a[k];
    case 6: return s->ap[k];
    case 7: return s->sigma[k];
    default: return s->dir[k];
    }
}

static void write_tsv(FILE *f, const sched *ss, int ns, int ddim) {
    int nc = ddim ? NDCOL : NCOL;
    const char *const *cols = ddim ? ddim_cols : noise_cols;
    for (int c = 0; c < nc; c++) fprintf(f, "%s%s", c ? "\t" : "", cols[c]);
    fputc('\n', f);
    char num[40];
    for (int k = 0; k < ns; k++) {
        int rows = ddim ? ss[k].nts : ss[k].d.T;
        for (int i = 0; i < rows; i++) {
            fputs(rhd_beta_kind_name(ss[k].kind), f);
            for (int c = 1; c < nc; c++) {
                fmt_num(ddim ? ddim_value(&ss[k], c, i) : noise_value(&ss[k], c, i), num, sizeof num);
                fputc('\t', f);
                fputs(num, f);
            }
            fputc('\n', f);
        }
    }
}

static void put_json_string(FILE *f, const char *s) {
    cJSON *j = cJSON_CreateString(s);
    char *t = cJSON_PrintUnformatted(j);
    fputs(t, f);
    cJSON_free(t);
    cJSON_Delete(j);
}

/* {"rhd.kind": "schedule", ..., "columns": {"schedule": [...], "step": [...], ...}}; non-finite numbers are null. */
static void write_json(FILE *f, const sched *ss, int ns, const noise_opts *o) {
    int ddim = o->ddim > 0, nc = ddim ? NDCOL : NCOL;
    const char *const *cols = ddim ? ddim_cols : noise_cols;
    fprintf(f, "{\"rhd.kind\": \"schedule\", \"rhd.version\": 1, \"rhd.tool\": \"rhd-schedule %s\",\n", RHD_VERSION);
    fprintf(f, " \"table\": \"%s\", \"steps\": %lld, \"respacing\": ", ddim ? "ddim" : "noise", o->steps);
    if (o->respacing) put_json_string(f, o->respacing);
    else fputs("null", f);
    if (ddim) fprintf(f, ", \"ddim\": %lld, \"eta\": %.17g", o->ddim, o->eta);
    fputs(",\n \"schedules\": [", f);
    for (int k = 0; k < ns; k++) fprintf(f, "%s\"%s\"", k ? ", " : "", rhd_beta_kind_name(ss[k].kind));
    fputs("],\n \"columns\": {", f);
    char num[40];
    for (int c = 0; c < nc; c++) {
        fprintf(f, "%s\n  \"%s\": [", c ? "," : "", cols[c]);
        int first = 1;
        for (int k = 0; k < ns; k++) {
            int rows = ddim ? ss[k].nts : ss[k].d.T;
            for (int i = 0; i < rows; i++, first = 0) {
                if (!first) fputs(", ", f);
                if (c == 0) {
                    fprintf(f, "\"%s\"", rhd_beta_kind_name(ss[k].kind));
                    continue;
                }
                double v = ddim ? ddim_value(&ss[k], c, i) : noise_value(&ss[k], c, i);
                if (!isfinite(v)) {
                    fputs("null", f);
                    continue;
                }
                fmt_num(v, num, sizeof num);
                fputs(num, f);
            }
        }
        fputc(']', f);
    }
    fputs("\n }\n}\n", f);
}

static int write_plot(const char *path, sched *ss, int ns, const noise_opts *o, rhd_err *e) {
    const char *col = plot_choices[o->plot];
    int c = 3 + o->plot; /* noise-table column index */
    int T = ss[0].d.T;
    double *y = rhd_xmalloc(sizeof(double) * (size_t)ns * T);
    rhd_plot p;
    rhd_plot_init(&p);
    p.width = (int)o->width, p.height = (int)o->height;
    int positive = 1;
    char labels[RHD_PLOT_MAX_SERIES][96];
    for (int k = 0; k < ns; k++) {
        ss[k].x = rhd_xmalloc(sizeof(double) * T);
        for (int i = 0; i < T; i++) {
            ss[k].x[i] = ss[k].d.timestep_map[i];
            y[(size_t)k * T + i] = noise_value(&ss[k], c, i);
            positive &= y[(size_t)k * T + i] > 0;
        }
        snprintf(labels[k], sizeof labels[k], "%s", rhd_beta_kind_name(ss[k].kind));
        if (rhd_plot_add(&p, labels[k], ss[k].x, y + (size_t)k * T, T, e)) {
            free(y);
            return -1;
        }
    }
    p.logy = !o->linear_y && positive;
    char title[256];
    snprintf(title, sizeof title, "%s, T = %lld%s%s%s", col, o->steps, o->respacing ? " (respaced " : "",
             o->respacing ? o->respacing : "", o->respacing ? ")" : "");
    p.title = title;
    p.xlabel = "t";
    char ylabel[96];
    snprintf(ylabel, sizeof ylabel, "%s%s", col, p.logy ? " (log scale)" : "");
    p.ylabel = ylabel;
    float *rgb = rhd_xmalloc(sizeof(float) * 3 * (size_t)p.width * p.height);
    if (!rgb) {
        free(y);
        return rhd_errf(e, "out of memory for a %dx%d plot", p.width, p.height);
    }
    int rc = rhd_plot_render(&p, rgb, e);
    if (!rc) rc = rhd_png_write(path, rgb, p.width, p.height, 3, 8, RHD_PNG_ROUND, e);
    free(rgb);
    free(y);
    return rc;
}

static int cmd_noise(int argc, char **argv) {
    noise_opts o;
    memset(&o, 0, sizeof o);
    rhd_common_opts_init(&o.common);
    o.schedule = "cosine_light";
    o.steps = 1000;
    o.plot = 1; /* alpha_bar */
    o.width = 960, o.height = 600;
    int n = rhd_cli_parse(&noise_cli, argc, argv, &o);
    rhd_common_opts_apply(&o.common);
    if (n > 0) rhd_usage_error("unexpected argument '%s'", argv[1]);
    if (o.ddim && o.png) rhd_usage_error("--png plots the noise table, expected no --ddim with it");
    if (o.eta && !o.ddim) rhd_usage_error("--eta applies to the DDIM table, expected --ddim S with it");
    if (o.png && o.common.output && rhd_same_file(o.png, o.common.output))
        rhd_usage_error("-o %s and --png %s name the same file, expected two different outputs", o.common.output, o.png);
    check_output("-o", o.common.output, &o.common.config, 1);
    check_output("--png", o.png, &o.common.config, 1);

    /* parse the schedule list */
    sched ss[RHD_PLOT_MAX_SERIES];
    memset(ss, 0, sizeof ss);
    int ns = 0;
    char *list = rhd_xstrdup(o.schedule), *save = NULL;
    if (!*list || list[strlen(list) - 1] == ',' || list[0] == ',' || strstr(list, ",,"))
        rhd_usage_error("--schedule takes names separated by commas (e.g. --schedule cosine_light,sigmoid), got '%s'", o.schedule);
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        rhd_err e;
        if (ns == RHD_PLOT_MAX_SERIES) rhd_usage_error("--schedule: more than %d schedules", RHD_PLOT_MAX_SERIES);
        if (rhd_beta_kind_parse(tok, &ss[ns].kind, &e)) rhd_usage_error("--schedule: %s", e.msg);
        for (int k = 0; k < ns; k++)
            if (ss[k].kind == ss[ns].kind) rhd_usage_error("--schedule: '%s' is given twice", tok);
        ns++;
    }
    free(list);

    for (int k = 0; k < ns; k++) {
        rhd_err e;
        if (rhd_diffusion_schedule_create(&ss[k].d, ss[k].kind, (int)o.steps, o.respacing, &e)) {
            if (o.respacing && strstr(e.msg, "respacing")) rhd_usage_error("--respacing: %s", e.msg);
            rhd_usage_error("--schedule %s --steps %lld: %s", rhd_beta_kind_name(ss[k].kind), o.steps, e.msg);
        }
        if (o.ddim) {
            if (rhd_ddim_timesteps(ss[k].d.T, (int)o.ddim, &ss[k].ts, &ss[k].nts, &e)) rhd_usage_error("--ddim %lld: %s", o.ddim, e.msg);
            int m = ss[k].nts;
            ss[k].a = rhd_xmalloc(sizeof(double) * m), ss[k].ap = rhd_xmalloc(sizeof(double) * m);
            ss[k].sigma = rhd_xmalloc(sizeof(double) * m), ss[k].dir = rhd_xmalloc(sizeof(double) * m);
            if (rhd_ddim_coefficients(&ss[k].d, ss[k].ts, m, o.eta, ss[k].a, ss[k].ap, ss[k].sigma, ss[k].dir, &e)) rhd_die("%s", e.msg);
        }
        const rhd_diffusion_schedule *d = &ss[k].d;
        rhd_verbose("%s: T = %d%s, alpha_bar %.7g .. %.7g", rhd_beta_kind_name(ss[k].kind), d->T,
                    d->T != d->T_orig ? " (respaced)" : "", d->alphas_cumprod[0], d->alphas_cumprod[d->T - 1]);
    }

    rhd_err e;
    if (o.png && write_plot(o.png, ss, ns, &o, &e)) rhd_die("--png %s: %s", o.png, e.msg);
    if (!o.png || o.common.output) {
        output out;
        out_open(&out, o.common.output);
        if (o.json) write_json(out.f, ss, ns, &o);
        else write_tsv(out.f, ss, ns, o.ddim > 0);
        out_close(&out);
    }
    if (o.png) rhd_info("plotted %s of %d schedule%s -> %s", plot_choices[o.plot], ns, ns > 1 ? "s" : "", o.png);
    for (int k = 0; k < ns; k++) {
        rhd_diffusion_schedule_free(&ss[k].d);
        free(ss[k].ts), free(ss[k].a), free(ss[k].ap), free(ss[k].sigma), free(ss[k].dir), free(ss[k].x);
    }
    return rhd_close_stdout();
}

/* ================================================================================================ */

static void top_help(FILE *f) {
    fprintf(f, "usage: rhd-schedule fit|show|noise [options]\n\n"
               "Schedules of RodinHD's fitting and diffusion.\n\n"
               "commands:\n"
               "  fit     write the task-replay plan of stage-1 fitting (formats/plan.md)\n"
               "  show    validate a plan file and print it as a table\n"
               "  noise   tabulate or plot diffusion noise schedules (formats/schedule.md)\n\n"
               "'rhd-schedule COMMAND --help' shows a command's options.\n");
}

int main(int argc, char **argv) {
    set_prog(argv[0], NULL);
    rhd_fs_install_signal_handlers();
    if (argc < 2) {
        top_help(stderr);
        rhd_usage_error("expected a command: fit, show or noise");
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        top_help(stdout);
        return rhd_close_stdout();
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("rhd-schedule %s (rhd suite)\n", RHD_VERSION);
        return rhd_close_stdout();
    }
    const char *argv0 = argv[0];
    if (strcmp(cmd, "fit") == 0) return set_prog(argv0, "fit"), cmd_fit(argc - 1, argv + 1);
    if (strcmp(cmd, "show") == 0) return set_prog(argv0, "show"), cmd_show(argc - 1, argv + 1);
    if (strcmp(cmd, "noise") == 0) return set_prog(argv0, "noise"), cmd_noise(argc - 1, argv + 1);
    rhd_usage_error("unknown command '%s', expected fit, show or noise", cmd);
}
