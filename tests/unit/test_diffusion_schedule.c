/* tests/unit/test_diffusion_schedule.c: common/models/diffusion_schedule against the reference
 * numbers of shared/spec/diffusion.md §3.2 (to the digits printed there), against an independent
 * NumPy implementation (tests/ref/ref_schedule.py) on every entry of every derived table for many
 * (schedule, T, respacing), and the respacing / DDIM step selections against the spec's examples
 * and the NumPy reference for many (T, spec) pairs, errors included. */
#include "harness.h"
#include "refcheck.h"
#include "common/models/diffusion_schedule.h"
#include "formats/npy.h"
#include "common/fs.h"

/* --- §3.2 reference numbers ------------------------------------------------------------------ */

/* |got - ref| <= one unit in the last digit printed in `ref` (e.g. "7.780e-2": 1e-5). */
static int matches_printed(double got, const char *ref, double *unit) {
    double v = strtod(ref, NULL);
    const char *dot = strchr(ref, '.'), *ep = strpbrk(ref, "eE");
    int decimals = 0;
    if (dot) decimals = (int)((ep ? ep : ref + strlen(ref)) - dot - 1);
    int ex = ep ? atoi(ep + 1) : 0;
    *unit = pow(10.0, ex - decimals);
    return fabs(got - v) <= *unit * 1.0000001;
}

typedef struct { const char *name; int T; const char *what; int idx; const char *value; } ref_num;

static void test_reference_numbers(void) {
    static const ref_num refs[] = {
        {"linear", 1000, "beta", 0, "1.0e-4"}, {"linear", 1000, "beta", 999, "0.02"},
        {"linear", 1000, "abar", 0, "0.9999"}, {"linear", 1000, "abar", 500, "7.780e-2"},
        {"linear", 1000, "abar", 999, "4.036e-5"},
        {"squaredcos_cap_v2", 1000, "beta", 0, "4.128e-5"}, {"squaredcos_cap_v2", 1000, "beta", 999, "0.999"},
        {"squaredcos_cap_v2", 1000, "abar", 0, "0.99996"}, {"squaredcos_cap_v2", 1000, "abar", 500, "0.4923"},
        {"squaredcos_cap_v2", 1000, "abar", 999, "2.429e-9"},
        {"cosine", 1000, "beta", 0, "4.083e-3"}, {"cosine", 1000, "beta", 998, "0.999"},
        {"cosine", 1000, "beta", 999, "0.999"}, {"cosine", 1000, "abar", 0, "0.99592"},
        {"cosine", 1000, "abar", 500, "7.991e-3"}, {"cosine", 1000, "abar", 999, "1.661e-32"},
        {"cosine_light", 1000, "beta", 0, "2.452065e-3"}, {"cosine_light", 1000, "beta", 999, "0.999"},
        {"cosine_light", 1000, "abar", 0, "0.9975479"}, {"cosine_light", 1000, "abar", 500, "5.515200e-2"},
        {"cosine_light", 1000, "abar", 999, "5.321334e-21"},
        {"cosine_light", 1000, "abar", 99, "0.7415757"}, {"cosine_light", 1000, "abar", 199, "0.4895860"},
        {"cosine_light", 1000, "abar", 299, "0.2827761"}, {"cosine_light", 1000, "abar", 399, "0.1390535"},
        {"cosine_light", 1000, "abar", 499, "0.05572809"}, {"cosine_light", 1000, "abar", 599, "0.01689321"},
        {"cosine_light", 1000, "abar", 699, "3.363030e-3"}, {"cosine_light", 1000, "abar", 799, "3.196766e-4"},
        {"cosine_light", 1000, "abar", 899, "5.237928e-6"},
        {"sigmoid", 100, "beta", 0, "0.1488850"}, {"sigmoid", 100, "beta", 99, "0.999"},
        {"sigmoid", 100, "abar", 0, "0.8511150"}, {"sigmoid", 100, "abar", 50, "4.532e-7"},
        {"sigmoid", 100, "abar", 99, "6.572520e-17"},
        {"sigmoid", 100, "abar", 9, "0.09485175"}, {"sigmoid", 100, "abar", 19, "4.945246e-3"},
        {"sigmoid", 100, "abar", 29, "2.467892e-4"}, {"sigmoid", 100, "abar", 39, "1.228835e-5"},
        {"sigmoid", 100, "abar", 49, "6.118043e-7"}, {"sigmoid", 100, "abar", 59, "3.045977e-8"},
        {"sigmoid", 100, "abar", 69, "1.516325e-9"}, {"sigmoid", 100, "abar", 79, "7.531575e-11"},
        {"sigmoid", 100, "abar", 89, "3.572254e-12"}, {"sigmoid", 100, "abar", 1, "0.708687"},
        {"sigmoid", 100, "abar", 2, "0.578101"},
    };
    const char *cur = NULL;
    int cur_T = 0, bad = 0, count = 0;
    double worst_units = 0;
    rhd_diffusion_schedule d = {0};
    for (size_t i = 0; i <= sizeof refs / sizeof refs[0]; i++) {
        if (i == sizeof refs / sizeof refs[0] || (cur && (strcmp(cur, refs[i].name) || cur_T != refs[i].T))) {
            th_ok(bad == 0, "%s T=%d matches the %d reference numbers of spec §3.2 to the printed digits "
                  "(worst %.2f units of the last digit)", cur, cur_T, count, worst_units);
            rhd_diffusion_schedule_free(&d);
            bad = count = 0;
            worst_units = 0;
            if (i == sizeof refs / sizeof refs[0]) break;
        }
        if (!d.T) {
            rhd_beta_kind k;
            rhd_err e;
            RHD_ASSERT(rhd_beta_kind_parse(refs[i].name, &k, &e) == 0);
            if (rhd_diffusion_schedule_named(&d, k, refs[i].T, &e)) {
                th_diag("%s", e.msg);
                exit(1);
            }
            cur = refs[i].name, cur_T = refs[i].T;
        }
        const ref_num *r = &refs[i];
        double got = strcmp(r->what, "beta") == 0 ? d.betas[r->idx] : d.alphas_cumprod[r->idx], unit;
        int ok = matches_printed(got, r->value, &unit);
        double units = fabs(got - strtod(r->value, NULL)) / unit;
        if (units > worst_units) worst_units = units;
        if (!ok) th_diag("  %s T=%d %s_%d = %.10g, spec %s", r->name, r->T, r->what, r->idx, got, r->value), bad++;
        count++;
    }
    /* the upsampler's t = 0 noise level quoted in the spec: sqrt(1 - abar_0) = 0.386 */
    rhd_err e;
    rhd_diffusion_schedule_named(&d, RHD_BETA_SIGMOID, 100, &e);
    th_ok(fabs(d.sqrt_one_minus_alphas_cumprod[0] - 0.386) < 5e-4, "sigmoid T=100: noise std at t=0 is %.4f (spec: 0.386)",
          d.sqrt_one_minus_alphas_cumprod[0]);
    rhd_diffusion_schedule_free(&d);
}

/* --- against the NumPy reference ------------------------------------------------------------- */

enum { NQ = 17 };
static const char *const qnames[NQ] = {
    "betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev", "alphas_cumprod_next", "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1",
    "posterior_mean_coef2", "fixed_large_variance", "fixed_large_log_variance", "snr"};

static const double *qarray(const rhd_diffusion_schedule *d, int q) {
    const double *a[NQ] = {d->betas, d->alphas, d->alphas_cumprod, d->alphas_cumprod_prev, d->alphas_cumprod_next,
                           d->sqrt_alphas_cumprod, d->sqrt_one_minus_alphas_cumprod, d->log_one_minus_alphas_cumprod,
                           d->sqrt_recip_alphas_cumprod, d->sqrt_recipm1_alphas_cumprod, d->posterior_variance,
                           d->posterior_log_variance_clipped, d->posterior_mean_coef1, d->posterior_mean_coef2,
                           d->fixed_large_variance, d->fixed_large_log_variance, d->snr};
    return a[q];
}

typedef struct { const char *name; int T; const char *respacing; } table_job;
static const table_job table_jobs[] = {
    {"linear", 1000, NULL}, {"linear", 20, NULL}, {"linear", 37, NULL}, {"linear", 4000, NULL},
    {"squaredcos_cap_v2", 1000, NULL}, {"squaredcos_cap_v2", 2, NULL}, {"squaredcos_cap_v2", 100, NULL},
    {"cosine", 1000, NULL}, {"cosine", 3, NULL}, {"cosine", 250, NULL},
    {"cosine_light", 1000, NULL}, {"cosine_light", 2, NULL}, {"cosine_light", 37, NULL}, {"cosine_light", 4000, NULL},
    {"sigmoid", 100, NULL}, {"sigmoid", 1000, NULL}, {"sigmoid", 7, NULL},
    {"cosine_light", 1000, "ddim10"}, {"cosine_light", 1000, "10"}, {"cosine_light", 1000, "50,30,20"},
    {"sigmoid", 100, "10"}, {"linear", 1000, "ddim50"}, {"cosine", 1000, "3,0,7"},
};
enum { N_TABLE_JOBS = sizeof table_jobs / sizeof table_jobs[0] };

/* (T, spec) pairs for respacing */
static const int space_T[] = {1, 2, 3, 7, 10, 37, 100, 101, 999, 1000, 1001, 4000};
static const char *const space_spec[] = {"1", "2", "3", "5", "7", "10", "17", "50", "1000", "10,5", "3,4,5",
                                         "0,3", "50,30,20", "1,1,1,0", "4,4,4,4,4,4,4,4,4,4,4", "0", "0,0",
                                         "ddim1", "ddim2", "ddim3", "ddim4", "ddim7", "ddim10", "ddim11",
                                         "ddim25", "ddim33", "ddim50", "ddim100", "ddim0", "ddim", "10,", "a", ""};
static const int ddim_T[] = {1, 2, 3, 10, 37, 100, 1000, 1001};
static const int ddim_S[] = {1, 2, 3, 5, 7, 9, 10, 11, 13, 25, 50, 99, 100, 101, 333, 999, 1000};
enum { N_ST = sizeof space_T / sizeof *space_T, N_SS = sizeof space_spec / sizeof *space_spec,
       N_DT = sizeof ddim_T / sizeof *ddim_T, N_DS = sizeof ddim_S / sizeof *ddim_S };

/* results.txt: "ID ok a b c" / "ID error"; returns the line for id (static buffer) or NULL */
static char *g_results;
static const char *result_line(const char *id) {
    static char line[1 << 16];
    size_t n = strlen(id);
    for (const char *p = g_results; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > n && strncmp(p, id, n) == 0 && p[n] == ' ') {
            snprintf(line, sizeof line, "%.*s", (int)(len - n - 1), p + n + 1);
            return line;
        }
        p = nl ? nl + 1 : p + len;
    }
    return NULL;
}

static void list_text(const int *v, int n, char *buf, size_t cap) {
    size_t o = snprintf(buf, cap, "ok");
    for (int i = 0; i < n && o < cap; i++) o += snprintf(buf + o, cap - o, " %d", v[i]);
}

static void test_against_numpy(void) {
    const char *dir = th_subdir("schedule");
    char path[2048];
    snprintf(path, sizeof path, "%s/jobs.txt", dir);
    FILE *f = fopen(path, "w");
    RHD_ASSERT(f);
    for (int j = 0; j < N_TABLE_JOBS; j++)
        fprintf(f, "t%d table %s %d %s\n", j, table_jobs[j].name, table_jobs[j].T,
                table_jobs[j].respacing ? table_jobs[j].respacing : "");
    for (int a = 0; a < N_ST; a++)
        for (int b = 0; b < N_SS; b++)
            if (*space_spec[b]) fprintf(f, "s%d_%d space %d %s\n", a, b, space_T[a], space_spec[b]);
    for (int a = 0; a < N_DT; a++)
        for (int b = 0; b < N_DS; b++) fprintf(f, "d%d_%d ddim %d %d\n", a, b, ddim_T[a], ddim_S[b]);
    for (int k = 0; k < RHD_BETA_COUNT; k++)
        for (int T = 1; T <= 25; T += 1) fprintf(f, "b%d_%d betas %s %d\n", k, T, rhd_beta_kind_name(k), T);
    fclose(f);
    if (th_ref("ref_schedule.py", "%s %s", path, dir)) {
        th_ok(0, "NumPy reference ran");
        return;
    }
    snprintf(path, sizeof path, "%s/results.txt", dir);
    rhd_err e;
    if (rhd_read_file(path, &g_results, NULL, &e)) {
        th_ok(0, "%s", e.msg);
        return;
    }

    /* every entry of every table */
    for (int j = 0; j < N_TABLE_JOBS; j++) {
        const table_job *tj = &table_jobs[j];
        rhd_beta_kind k;
        rhd_diffusion_schedule d;
        RHD_ASSERT(rhd_beta_kind_parse(tj->name, &k, &e) == 0);
        if (rhd_diffusion_schedule_create(&d, k, tj->T, tj->respacing, &e)) {
            th_ok(0, "%s T=%d %s: %s", tj->name, tj->T, tj->respacing ? tj->respacing : "", e.msg);
            continue;
        }
        snprintf(path, sizeof path, "%s/t%d.npy", dir, j);
        rhd_npy a;
        if (rhd_npy_read(path, &a, &e) || a.t.dtype != RHD_F64 || a.t.ndim != 2 || a.t.shape[0] != NQ + 1 ||
            a.t.shape[1] != d.T) {
            th_ok(0, "%s T=%d: reference table missing or of the wrong shape", tj->name, tj->T);
            rhd_diffusion_schedule_free(&d);
            continue;
        }
        const double *ref = a.t.data;
        double worst = 0;
        int worst_q = 0, worst_i = 0, map_ok = 1, nonfinite = 0, nonfinite_bad = 0;
        for (int q = 0; q < NQ; q++) {
            const double *got = qarray(&d, q);
            for (int i = 0; i < d.T; i++) {
                double r = ref[(size_t)q * d.T + i];
                if (!isfinite(r) || !isfinite(got[i])) { /* inf where abar underflows or beta = 1 */
                    nonfinite++;
                    if (!(got[i] == r || (isnan(got[i]) && isnan(r)))) {
                        if (nonfinite_bad++ < 3) th_diag("  %s[%d]: got %g, numpy %g", qnames[q], i, got[i], r);
                    }
                    continue;
                }
                double rel = fabs(got[i] - r) / (fabs(r) > 1e-300 ? fabs(r) : 1e-300);
                if (rel > worst) worst = rel, worst_q = q, worst_i = i;
            }
        }
        for (int i = 0; i < d.T; i++) map_ok &= d.timestep_map[i] == (int)ref[(size_t)NQ * d.T + i];
        th_ok(worst <= 1e-11 && map_ok && !nonfinite_bad, "%s T=%d%s%s: %d tables x %d entries and timestep_map match "
              "NumPy, worst rel err %.2e (%s[%d]), %d non-finite entries equal", tj->name, tj->T,
              tj->respacing ? " respaced " : "", tj->respacing ? tj->respacing : "", NQ, d.T, worst, qnames[worst_q],
              worst_i, nonfinite);
        rhd_npy_free(&a);
        rhd_diffusion_schedule_free(&d);
    }

    /* respacing: the same kept steps, or an error in both */
    int agree = 0, total = 0, errors = 0;
    char want[1 << 16];
    for (int a = 0; a < N_ST; a++)
        for (int b = 0; b < N_SS; b++) {
            if (!*space_spec[b]) continue;
            char id[64];
            snprintf(id, sizeof id, "s%d_%d", a, b);
            const char *ref = result_line(id);
            int *v, n;
            int rc = rhd_space_timesteps(space_T[a], space_spec[b], &v, &n, &e);
            if (rc) snprintf(want, sizeof want, "error"), errors++;
            else list_text(v, n, want, sizeof want), free(v);
            total++;
            if (ref && strcmp(ref, want) == 0) agree++;
            else th_diag("  space T=%d '%s': ours '%.60s', numpy '%.60s'", space_T[a], space_spec[b], want, ref ? ref : "?");
        }
    th_ok(agree == total, "respacing: %d of %d (T, spec) pairs agree with NumPy (%d of them errors in both)", agree,
          total, errors);

    agree = total = errors = 0;
    for (int a = 0; a < N_DT; a++)
        for (int b = 0; b < N_DS; b++) {
            char id[64];
            snprintf(id, sizeof id, "d%d_%d", a, b);
            const char *ref = result_line(id);
            int *v, n;
            if (rhd_ddim_timesteps(ddim_T[a], ddim_S[b], &v, &n, &e)) snprintf(want, sizeof want, "error"), errors++;
            else list_text(v, n, want, sizeof want), free(v);
            total++;
            if (ref && strcmp(ref, want) == 0) agree++;
            else th_diag("  ddim T=%d S=%d: ours '%.60s', numpy '%.60s'", ddim_T[a], ddim_S[b], want, ref ? ref : "?");
        }
    th_ok(agree == total, "DDIM dpm timesteps: %d of %d (T, S) pairs agree with NumPy (%d errors in both)", agree, total,
          errors);

    agree = total = 0;
    double *betas = malloc(sizeof(double) * 25);
    for (int k = 0; k < RHD_BETA_COUNT; k++)
        for (int T = 1; T <= 25; T++) {
            char id[64];
            snprintf(id, sizeof id, "b%d_%d", k, T);
            const char *ref = result_line(id);
            int rc = rhd_beta_schedule((rhd_beta_kind)k, T, betas, &e);
            total++;
            if (ref && strcmp(ref, rc ? "error" : "ok") == 0) agree++;
            else th_diag("  betas %s T=%d: ours %s numpy %s", rhd_beta_kind_name(k), T, rc ? "error" : "ok", ref ? ref : "?");
        }
    free(betas);
    th_ok(agree == total, "schedule validity (betas in (0,1]) for T = 1..25: %d of %d agree with NumPy", agree, total);
    free(g_results);
}

/* --- spec examples and errors ------------------------------------------------------------------- */

static int list_is(const int *v, int n, const int *want, int nw) {
    if (n != nw) return 0;
    for (int i = 0; i < n; i++)
        if (v[i] != want[i]) return 0;
    return 1;
}

static void test_spec_examples(void) {
    rhd_err e;
    int *v, n;
    int w10[10], wd10[10], w99[10], w9[10];
    for (int i = 0; i < 10; i++) w10[i] = 111 * i, wd10[i] = 100 * i, w99[i] = 100 * i + 99, w9[i] = 10 * i + 9;
    RHD_ASSERT(rhd_space_timesteps(1000, "10", &v, &n, &e) == 0);
    th_ok(list_is(v, n, w10, 10), "respacing T=1000 \"10\" -> 0,111,...,999 (spec §3.8)");
    free(v);
    RHD_ASSERT(rhd_space_timesteps(1000, "ddim10", &v, &n, &e) == 0);
    th_ok(list_is(v, n, wd10, 10), "respacing T=1000 \"ddim10\" -> 0,100,...,900 (spec §3.8)");
    free(v);
    RHD_ASSERT(rhd_space_timesteps(1000, "1000", &v, &n, &e) == 0);
    int ident = n == 1000;
    for (int i = 0; i < n && ident; i++) ident = v[i] == i;
    th_ok(ident, "respacing T=1000 \"1000\" is the identity (what the scripts use)");
    free(v);
    /* round half to even: T=10 "4": stride 3 -> 0,3,6,9; T=8 "5": stride 7/4 = 1.75 -> 0,1.75,3.5,5.25,7
     * -> 0,2,4,5,7 (3.5 rounds to 4, even); T=6 "3": stride 2.5 -> 0,2.5,5 -> 0,2,5 (2.5 -> 2) */
    int w8[] = {0, 2, 4, 5, 7}, w6[] = {0, 2, 5};
    RHD_ASSERT(rhd_space_timesteps(8, "5", &v, &n, &e) == 0);
    int ok1 = list_is(v, n, w8, 5);
    free(v);
    RHD_ASSERT(rhd_space_timesteps(6, "3", &v, &n, &e) == 0);
    th_ok(ok1 && list_is(v, n, w6, 3), "respacing rounds half to even (T=8 \"5\" -> 0,2,4,5,7; T=6 \"3\" -> 0,2,5)");
    free(v);

    RHD_ASSERT(rhd_ddim_timesteps(1000, 10, &v, &n, &e) == 0);
    th_ok(list_is(v, n, w99, 10), "DDIM T=1000 S=10 -> 99,199,...,999 (spec §3.10)");
    free(v);
    RHD_ASSERT(rhd_ddim_timesteps(100, 10, &v, &n, &e) == 0);
    th_ok(list_is(v, n, w9, 10), "DDIM T=100 S=10 -> 9,19,...,99 (spec §3.10)");
    free(v);
    RHD_ASSERT(rhd_ddim_timesteps(1000, 7, &v, &n, &e) == 0);
    th_ok(n == 8 && v[0] == 5 && v[7] == 999, "DDIM T=1000 S=7 gives S+1 = %d steps (%d..%d; spec §3.10, §7.9)", n, v[0],
          v[n - 1]);
    free(v);

    /* respaced chain: betas from the kept abar ratios, the kept abar unchanged */
    rhd_diffusion_schedule full, sp;
    RHD_ASSERT(rhd_diffusion_schedule_named(&full, RHD_BETA_COSINE_LIGHT, 1000, &e) == 0);
    RHD_ASSERT(rhd_diffusion_schedule_create(&sp, RHD_BETA_COSINE_LIGHT, 1000, "ddim10", &e) == 0);
    double worst = 0;
    for (int k = 0; k < sp.T; k++) {
        double r = fabs(sp.alphas_cumprod[k] - full.alphas_cumprod[sp.timestep_map[k]]) / full.alphas_cumprod[sp.timestep_map[k]];
        if (r > worst) worst = r;
    }
    th_ok(sp.T == 10 && sp.T_orig == 1000 && sp.timestep_map[3] == 300 && worst < 1e-13,
          "respaced cosine_light ddim10 keeps abar at its 10 steps (rel err %.1e) and maps step 3 to t=300", worst);
    th_ok(rhd_rescale_timestep(9, 100) == 90 && rhd_rescale_timestep(999, 1000) == 999 &&
              rhd_rescale_timestep(sp.timestep_map[9], sp.T_orig) == 900,
          "rescaled timesteps: t*1000/T (upsampler t=9 -> 90; respaced steps use the original t)");

    /* learned range and fixed large (§3.4) */
    int t = 123;
    double lb = log(full.betas[t]), lc = full.posterior_log_variance_clipped[t];
    th_ok(rhd_learned_range_log_variance_f64(-1, lb, lc) == lc && rhd_learned_range_log_variance_f64(1, lb, lc) == lb &&
              fabs(rhd_learned_range_log_variance_f64(0.3, lb, lc) - (0.65 * lb + 0.35 * lc)) < 1e-12 &&
              fabsf(rhd_learned_range_log_variance(0.3f, (float)lb, (float)lc) - (float)(0.65 * lb + 0.35 * lc)) < 1e-5f,
          "learned-range log variance: v=-1 -> clipped posterior, v=1 -> log beta, v=0.3 interpolates");
    th_ok(full.fixed_large_variance[0] == full.posterior_variance[1] && full.fixed_large_variance[5] == full.betas[5] &&
              full.posterior_log_variance_clipped[0] == log(full.posterior_variance[1]) && full.posterior_variance[0] == 0,
          "fixed-large variance = [var_1, beta_1, ...]; clipped log variance replaces entry 0 by var_1");

    /* DDIM coefficients at the base model's setting (eta = 1) */
    int *ts, nt;
    RHD_ASSERT(rhd_ddim_timesteps(1000, 10, &ts, &nt, &e) == 0);
    double a[16], ap[16], sg[16], dir[16];
    RHD_ASSERT(rhd_ddim_coefficients(&full, ts, nt, 1.0, a, ap, sg, dir, &e) == 0);
    int fin = 1;
    for (int k = 0; k < nt; k++) fin &= isfinite(sg[k]) && isfinite(dir[k]) && dir[k] >= 0;
    th_ok(ap[0] == 1 && sg[0] == 0 && a[9] == full.alphas_cumprod[999] && ap[9] == full.alphas_cumprod[899] && fin &&
              dir[9] < 1e-6,
          "DDIM eta=1 cosine_light: a_prev_0 = 1, sigma_0 = 0, the radicand at t=999 clamps (dir = %.2e), all finite", dir[9]);
    RHD_ASSERT(rhd_ddim_coefficients(&full, ts, nt, 0.0, a, ap, sg, dir, &e) == 0);
    th_ok(sg[4] == 0 && fabs(dir[4] - sqrt(1 - ap[4])) < 1e-15, "DDIM eta=0: sigma = 0 and dir = sqrt(1 - a_prev)");
    free(ts);
    rhd_diffusion_schedule_free(&full);
    rhd_diffusion_schedule_free(&sp);
}

static int err_has(int rc, const rhd_err *e, const char *want) {
    if (rc == 0) { th_diag("  expected an error containing '%s', got success", want); return 0; }
    if (!strstr(e->msg, want)) { th_diag("  message '%s' lacks '%s'", e->msg, want); return 0; }
    return 1;
}

static void test_errors(void) {
    rhd_err e;
    rhd_beta_kind k;
    int *v, n;
    double b[10];
    rhd_diffusion_schedule d;
    th_ok(err_has(rhd_beta_kind_parse("cosine_heavy", &k, &e), &e, "unknown noise schedule 'cosine_heavy', expected one of linear"),
          "unknown schedule name: %s", e.msg);
    th_ok(err_has(rhd_beta_schedule(RHD_BETA_LINEAR, 10, b, &e), &e, "beta_5 = 1.1"), "linear T=10: %s", e.msg);
    th_ok(err_has(rhd_diffusion_schedule_named(&d, RHD_BETA_COSINE, 1, &e), &e, "1 steps, expected 2.."), "T=1: %s", e.msg);
    th_ok(err_has(rhd_space_timesteps(100, "ddim11", &v, &n, &e), &e, "no integer stride gives exactly 11"), "%s", e.msg);
    th_ok(err_has(rhd_space_timesteps(10, "11", &v, &n, &e), &e, "section 0 has 10 steps, cannot take 11"), "%s", e.msg);
    th_ok(err_has(rhd_space_timesteps(100, "10,x", &v, &n, &e), &e, "section 1 is 'x', expected a non-negative integer"),
          "%s", e.msg);
    th_ok(err_has(rhd_space_timesteps(100, "0,0", &v, &n, &e), &e, "keeps no steps"), "%s", e.msg);
    th_ok(err_has(rhd_diffusion_schedule_create(&d, RHD_BETA_COSINE, 100, "1", &e), &e, "respacing '1': respacing keeps 1 step"),
          "%s", e.msg);
    th_ok(err_has(rhd_ddim_timesteps(10, 11, &v, &n, &e), &e, "11 sampling steps, expected 1..10"), "%s", e.msg);
    th_ok(err_has(rhd_ddim_timesteps(1, 1, &v, &n, &e), &e, "give no timestep > 0"), "%s", e.msg);
    double bad[3] = {0.1, 0.0, 0.2};
    th_ok(err_has(rhd_diffusion_schedule_init(&d, bad, 3, NULL, 3, &e), &e, "beta_1 = 0, expected a value in (0, 1]"),
          "%s", e.msg);
}

int main(void) {
    test_reference_numbers();
    test_against_numpy();
    test_spec_examples();
    test_errors();
    return th_done();
}
