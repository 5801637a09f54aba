/* tests/unit/test_sampler.c: common/models/sampler (DDIM "dpm", GaussianDiffusion's DDIM, DDPM,
 * respacing, classifier-free guidance, noise sources) against the independent PyTorch reference
 * tests/ref/ref_diffusion.py: whole trajectories with a deterministic toy denoiser (elementwise,
 * so both sides compute it with the same fp32 operations) and external noise, bitwise where the
 * update uses only +-x/ and sqrt; the noise draw order of spec §10.6; the §10.5 radicand; s = 1
 * equals the unguided model; thread and batch independence of Philox noise; and a statistical test
 * with the analytic optimal denoiser of Gaussian data. */
#include "refcheck.h"
#include "common/models/sampler.h"
#include <omp.h>

#define MAXC 8

/* out[b,c,p] = a[c] x[b, c % C, p] + (tt[c] t_model + (null ? u : k)[c]) */
typedef struct {
    int C, C_out;
    int64_t HW;
    float a[MAXC], tt[MAXC], k[MAXC], u[MAXC];
    int calls;
} toy;

static int toy_cond(void *user, rhd_ctx *ctx, float *out, const float *x, int B, const float *tm,
                    const unsigned char *null, rhd_err *e) {
    toy *m = user;
    m->calls++;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < m->C_out; c++) {
            float off = m->tt[c] * tm[b] + (null && null[b] ? m->u[c] : m->k[c]);
            const float *xc = x + ((int64_t)b * m->C + c % m->C) * m->HW;
            float *oc = out + ((int64_t)b * m->C_out + c) * m->HW;
            for (int64_t p = 0; p < m->HW; p++) oc[p] = m->a[c] * xc[p] + off;
        }
    return 0;
}
/* the toy on a CUDA context: through host copies */
static int toy_dev(void *user, rhd_ctx *ctx, float *out, const float *x, int B, const float *tm, rhd_err *e) {
    toy *m = user;
    size_t bx = sizeof(float) * B * m->C * m->HW, bo = sizeof(float) * B * m->C_out * m->HW;
    float *hx = malloc(bx), *ho = malloc(bo);
    rhd_buf_download(ctx, hx, x, bx);
    toy_cond(user, ctx, ho, hx, B, tm, NULL, e);
    rhd_buf_upload(ctx, out, ho, bo);
    free(hx), free(ho);
    return 0;
}
static int toy_plain(void *user, rhd_ctx *ctx, float *out, const float *x, int B, const float *tm, rhd_err *e) {
    return toy_cond(user, ctx, out, x, B, tm, NULL, e);
}

/* records every noise draw: index and size */
typedef struct {
    rhd_noise_external_src ext;
    int draws[64], n;
    int64_t sizes[64];
} rec_noise;
static int rec_noise_fn(void *user, rhd_ctx *ctx, float *out, int draw, int B, int64_t n, rhd_err *e) {
    rec_noise *r = user;
    if (r->n < 64) r->draws[r->n] = draw, r->sizes[r->n] = B * n, r->n++;
    return rhd_noise_external(&r->ext, ctx, out, draw, B, n, e);
}

typedef struct {
    const char *label, *kind, *schedule;
    int T;
    const char *respacing;
    int steps;
    double eta, guidance;
    rhd_pred_kind pred;
    rhd_var_kind var;
    int clip, C, B;
    int64_t HW;
    double time_scale;
    int bitwise;
} traj_case;

static void fmt_arr(char *buf, size_t cap, const float *v, int n) {
    buf[0] = 0;
    for (int i = 0; i < n; i++) snprintf(buf + strlen(buf), cap - strlen(buf), "%s%.9g", i ? "," : "", v[i]);
}

/* sampled trajectories waiting for the one reference run */
static struct { float *x; int64_t n; const traj_case *tc; char dir[1024]; } g_pending[16];

static void check_trajectories(int ncases) {
    char dirs[16 * 1030] = "";
    for (int i = 0; i < ncases; i++) snprintf(dirs + strlen(dirs), sizeof dirs - strlen(dirs), " %s", g_pending[i].dir);
    int rc = th_ref("ref_diffusion.py", "sample%s", dirs);
    for (int i = 0; i < ncases; i++) {
        const traj_case *tc = g_pending[i].tc;
        float *rx = rc ? NULL : th_load(g_pending[i].dir, "x", g_pending[i].n);
        if (tc->bitwise) th_same_bytes(tc->label, g_pending[i].x, rx, g_pending[i].n, 4);
        else if (rx) th_close(tc->label, g_pending[i].x, rx, g_pending[i].n, 1e-11);
        else th_ok(0, "%s: reference ran", tc->label);
        free(rx);
        free(g_pending[i].x);
    }
}

static void test_trajectory(const traj_case *tc, int idx) {
    rhd_err e;
    rhd_beta_kind bk;
    rhd_diffusion_schedule s;
    if (rhd_beta_kind_parse(tc->schedule, &bk, &e) || rhd_diffusion_schedule_create(&s, bk, tc->T, tc->respacing, &e)) {
        th_ok(0, "%s: %s", tc->label, e.msg);
        return;
    }
    rhd_sampler_opts o;
    rhd_sampler_opts_init(&o);
    rhd_sampler_kind_parse(tc->kind, &o.kind, &e);
    o.steps = tc->steps, o.eta = tc->eta, o.clip = tc->clip, o.pred = tc->pred, o.var = tc->var;
    o.time_scale = tc->time_scale, o.C = tc->C, o.HW = tc->HW;
    int learned = tc->var == RHD_VAR_LEARNED_RANGE, B = tc->B;
    toy m = {.C = tc->C, .C_out = learned ? 2 * tc->C : tc->C, .HW = tc->HW};
    float *pr = th_randu(4 * MAXC, -1.f, 1.f);
    for (int c = 0; c < m.C_out; c++)
        m.a[c] = 0.5f + 0.5f * pr[c], m.tt[c] = 1e-3f * pr[MAXC + c], m.k[c] = 0.3f * pr[2 * MAXC + c], m.u[c] = 0.3f * pr[3 * MAXC + c];
    rhd_cfg cfg = {.model = toy_cond, .user = &m, .scale = tc->guidance, .C_guided = tc->pred == RHD_PRED_EPS ? tc->C : m.C_out,
                   .C_out = m.C_out, .HW = tc->HW, .C = tc->C};
    o.model = rhd_cfg_denoise, o.model_user = &cfg;
    int *steps, nsteps;
    if (rhd_sampler_steps(&s, &o, &steps, &nsteps, &e)) { th_ok(0, "%s: %s", tc->label, e.msg); return; }
    int64_t n = (int64_t)tc->C * tc->HW;
    float **draws = malloc(sizeof(float *) * (nsteps + 1));
    for (int d = 0; d <= nsteps; d++) {
        draws[d] = malloc(sizeof(float) * B * n);
        rhd_rng_fill_normal(draws[d], B * n, th_seed(), RHD_STREAM(RHD_STREAM_TEST, 77000 + 100 * idx + d), 0, 0, 1);
    }
    rec_noise rn = {.ext = {(const float *const *)draws, nsteps + 1, B * n}};
    o.noise = rec_noise_fn, o.noise_user = &rn;
    float *x = malloc(sizeof(float) * B * n);
    rhd_ctx *cpu = rhd_ctx_open("cpu", &e);
    int rc = rhd_sample(cpu, &s, &o, x, B, &e);

    int order_ok = rn.n == nsteps + 1;
    for (int j = 0; j < rn.n && order_ok; j++) order_ok = rn.draws[j] == j && rn.sizes[j] == B * n;
    th_ok(rc == 0 && order_ok && m.calls == nsteps * (tc->guidance == 1.0 ? 1 : 1),
          "%s: %d steps (t %d..%d), %d noise draws of the real batch shape [%d,%lld] in order x_T, z_0..z_%d (§10.6)%s",
          tc->label, nsteps, steps[0], steps[nsteps - 1], rn.n, B, (long long)n, nsteps - 1, rc ? e.msg : "");

    char json[2048], a[256], tt[256], k[256], u[256];
    fmt_arr(a, sizeof a, m.a, m.C_out), fmt_arr(tt, sizeof tt, m.tt, m.C_out);
    fmt_arr(k, sizeof k, m.k, m.C_out), fmt_arr(u, sizeof u, m.u, m.C_out);
    snprintf(json, sizeof json,
             "{\"kind\":\"%s\",\"schedule\":\"%s\",\"T\":%d,\"respacing\":\"%s\",\"steps\":%d,\"eta\":%.17g,"
             "\"guidance\":%.17g,\"C_guided\":%d,\"pred\":\"%s\",\"var\":\"%s\",\"clip\":%d,\"C\":%d,\"time_scale\":%.17g,"
             "\"a\":[%s],\"tt\":[%s],\"k\":[%s],\"u\":[%s]}",
             tc->kind, tc->schedule, tc->T, tc->respacing ? tc->respacing : "", tc->steps, tc->eta, tc->guidance,
             cfg.C_guided, rhd_pred_kind_name(tc->pred), rhd_var_kind_name(tc->var), tc->clip, tc->C, tc->time_scale, a, tt, k, u);
    char sub[64], path[2048];
    snprintf(sub, sizeof sub, "traj%d", idx);
    const char *dir = th_subdir(sub);
    snprintf(path, sizeof path, "%s/params.json", dir);
    FILE *fp = fopen(path, "w");
    fputs(json, fp);
    fclose(fp);
    int64_t sh[3] = {B, tc->C, tc->HW};
    th_save(dir, "x_T", draws[0], 3, sh);
    for (int j = 0; j < nsteps; j++) {
        char nm[32];
        snprintf(nm, sizeof nm, "z_%d", j);
        th_save(dir, nm, draws[j + 1], 3, sh);
    }
    /* the reference runs once for every case (pending_check) */
    g_pending[idx].x = x, g_pending[idx].n = B * n, g_pending[idx].tc = tc;
    snprintf(g_pending[idx].dir, sizeof g_pending[idx].dir, "%s", dir);

    /* the same with Philox noise on 1 and 2 threads, and item 1 alone vs in the batch */
    uint64_t keys[4] = {rhd_noise_key(th_seed(), "avatar-a"), rhd_noise_key(th_seed(), "avatar-b"), 3, 4};
    rhd_noise_philox_src ps = {keys};
    o.noise = rhd_noise_philox, o.noise_user = &ps;
    float *x1 = malloc(sizeof(float) * B * n), *x2 = malloc(sizeof(float) * B * n), *xs = malloc(sizeof(float) * n);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    int r1 = rhd_sample(cpu, &s, &o, x1, B, &e);
    omp_set_num_threads(2);
    int r2 = rhd_sample(cpu, &s, &o, x2, B, &e);
    omp_set_num_threads(nt);
    rhd_noise_philox_src ps1 = {keys + 1};
    o.noise_user = &ps1;
    int r3 = B > 1 ? rhd_sample(cpu, &s, &o, xs, 1, &e) : 0;
    th_ok(!r1 && !r2 && !r3 && !memcmp(x1, x2, sizeof(float) * B * n) && (B < 2 || !memcmp(xs, x1 + n, sizeof(float) * n)),
          "%s: Philox noise: bitwise equal on 1 and 2 threads%s", tc->label, B > 1 ? ", and item 1 alone equals item 1 of the batch" : "");
    rhd_cfg_free(&cfg, cpu);
    rhd_ctx_close(cpu);
    for (int d = 0; d <= nsteps; d++) free(draws[d]);
    free(draws), free(x1), free(x2), free(xs), free(steps), free(pr);
    rhd_diffusion_schedule_free(&s);
}

/* §10.5: the first cosine_light step at eta = 1 has the fp32 radicand 1 - a_prev - sigma^2 = 0 */
static void test_first_step_radicand(void) {
    rhd_diffusion_schedule s;
    rhd_err e;
    rhd_diffusion_schedule_named(&s, RHD_BETA_COSINE_LIGHT, 1000, &e);
    int *ts, n;
    rhd_ddim_timesteps(1000, 10, &ts, &n, &e);
    double a[16], ap[16], sg[16];
    rhd_ddim_coefficients(&s, ts, n, 1.0, a, ap, sg, NULL, &e);
    float fap = (float)ap[n - 1], fs = (float)sg[n - 1];
    float r = (1.0f - fap) - fs * fs;
    double r64 = 1 - ap[n - 1] - sg[n - 1] * sg[n - 1];
    th_ok(r == 0.0f && ts[n - 1] == 999, "first base step (t=999, eta=1): fp32 radicand 1 - a_prev - sigma^2 = %g (float64 %.3g; spec §3.10)",
          r, r64);
    free(ts);
    rhd_diffusion_schedule_free(&s);
}

/* guidance 1 calls the model once and returns its output unchanged */
static void test_guidance_one(void) {
    rhd_err e;
    rhd_ctx *cpu = rhd_ctx_open("cpu", &e);
    toy m = {.C = 2, .C_out = 4, .HW = 50, .a = {0.9f, 1.1f, 0.7f, 0.3f}, .tt = {1e-3f, 2e-3f, 0, 1}, .k = {0.1f, 0.2f, 0.3f, 0.4f},
             .u = {-1, -1, -1, -1}};
    rhd_cfg cfg = {.model = toy_cond, .user = &m, .scale = 1.0, .C_guided = 2, .C_out = 4, .HW = 50, .C = 2};
    float *x = th_randn(3 * 100, 1), o1[3 * 200], o2[3 * 200], tm[3] = {999, 999, 999};
    rhd_cfg_denoise(&cfg, cpu, o1, x, 3, tm, &e);
    toy_plain(&m, cpu, o2, x, 3, tm, &e);
    th_ok(!memcmp(o1, o2, sizeof o1) && m.calls == 2, "guidance s = 1: one model call, output bitwise equal to the unguided model (§7.10)");
    cfg.scale = 1.3;
    m.calls = 0;
    rhd_cfg_denoise(&cfg, cpu, o1, x, 3, tm, &e);
    int ok = m.calls == 1;
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < 200; i++) {
            float c = o2[b * 200 + i], u = c - m.k[i / 50] + m.u[i / 50];
            float want = i < 100 ? u + 1.3f * (c - u) : c;
            if (fabsf(o1[b * 200 + i] - want) > 1e-5f) ok = 0;
        }
    th_ok(ok, "guidance s = 1.3: one doubled call; eps channels u + s(c - u), the v channels of the conditional half");
    free(x);
    rhd_cfg_free(&cfg, cpu);
    rhd_ctx_close(cpu);
}

/* Gaussian data x0 ~ N(mu, sd^2): the optimal eps predictor is
 * E[eps | x_t] = sqrt(1-a) (x_t - sqrt(a) mu) / (a sd^2 + 1 - a). */
typedef struct { const rhd_diffusion_schedule *full; double mu, sd; int64_t n; } gauss_model;
static int gauss_eps(void *user, rhd_ctx *ctx, float *out, const float *x, int B, const float *tm, rhd_err *e) {
    gauss_model *g = user;
    int t = (int)lrint(tm[0] * g->full->T / 1000.0);
    double a = g->full->alphas_cumprod[t], var = a * g->sd * g->sd + 1 - a;
    for (int64_t i = 0; i < B * g->n; i++) out[i] = (float)(sqrt(1 - a) * (x[i] - sqrt(a) * g->mu) / var);
    return 0;
}

static void test_gaussian_statistics(void) {
    rhd_err e;
    rhd_ctx *cpu = rhd_ctx_open("cpu", &e);
    rhd_diffusion_schedule full;
    rhd_diffusion_schedule_named(&full, RHD_BETA_LINEAR, 1000, &e);
    gauss_model g = {&full, 0.3, 0.5, 8000};
    struct { const char *name; rhd_sampler_kind kind; const char *resp; double eta; int S; } runs[] = {
        {"DDPM (1000 steps, fixed large)", RHD_SAMPLER_DDPM, NULL, 0, 0},
        {"DDIM eta=0 (1000 steps)", RHD_SAMPLER_DDIM, NULL, 0, 0},
        {"DDIM eta=1 (1000 steps)", RHD_SAMPLER_DDIM, NULL, 1, 0},
        {"DDIM dpm eta=0 (S=1000: 999 steps)", RHD_SAMPLER_DDIM_DPM, NULL, 0, 1000},
        {"DDIM dpm eta=1 (S=1000)", RHD_SAMPLER_DDIM_DPM, NULL, 1, 1000},
    };
    uint64_t key = rhd_noise_key(th_seed(), "gauss");
    rhd_noise_philox_src ps = {&key};
    float *x = malloc(sizeof(float) * g.n);
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        rhd_diffusion_schedule s;
        rhd_diffusion_schedule_create(&s, RHD_BETA_LINEAR, 1000, runs[r].resp, &e);
        rhd_sampler_opts o;
        rhd_sampler_opts_init(&o);
        o.kind = runs[r].kind, o.steps = runs[r].S, o.eta = runs[r].eta, o.clip = 0, o.var = RHD_VAR_FIXED_LARGE;
        o.C = 1, o.HW = g.n, o.model = gauss_eps, o.model_user = &g, o.noise = rhd_noise_philox, o.noise_user = &ps;
        int rc = rhd_sample(cpu, &s, &o, x, 1, &e);
        double m = 0, v = 0;
        for (int64_t i = 0; i < g.n; i++) m += x[i];
        m /= g.n;
        for (int64_t i = 0; i < g.n; i++) v += (x[i] - m) * (x[i] - m);
        double sd = sqrt(v / (g.n - 1));
        /* standard errors (8000 samples): 0.0056 for the mean, 0.004 for the std (a few-step
         * DDIM underestimates the std by discretisation: 0.47 at 50 steps, 0.497 at 250) */
        th_ok(!rc && fabs(m - g.mu) < 0.02 && fabs(sd - g.sd) < 0.015,
              "%s on N(0.3, 0.5^2) with the optimal eps model: mean %.4f (0.3 +- 0.02), std %.4f (0.5 +- 0.015)",
              runs[r].name, m, sd);
        rhd_diffusion_schedule_free(&s);
    }
    free(x);
    rhd_diffusion_schedule_free(&full);
    rhd_ctx_close(cpu);
}

/* CUDA against the CPU: the same sampler, toy and Philox noise on both backends; bitwise where no
 * noise enters (eta = 0: the draws are multiplied by 0), else within the last bits of the normals */
static void test_cuda(void) {
    rhd_err e;
    rhd_ctx *cpu, *gpu;
    th_open_backends(&cpu, &gpu);
    if (!gpu) {
        th_skip("no CUDA device: CUDA sampler trajectories vs CPU");
        rhd_ctx_close(cpu);
        return;
    }
    struct { const char *name; rhd_sampler_kind kind; rhd_beta_kind bk; int T; rhd_pred_kind pred; rhd_var_kind var; double eta; int exact; } runs[] = {
        {"DDIM dpm eps/learned eta=1", RHD_SAMPLER_DDIM_DPM, RHD_BETA_COSINE_LIGHT, 1000, RHD_PRED_EPS, RHD_VAR_LEARNED_RANGE, 1, 0},
        {"DDIM dpm x0 eta=0", RHD_SAMPLER_DDIM_DPM, RHD_BETA_SIGMOID, 100, RHD_PRED_XSTART, RHD_VAR_FIXED_LARGE, 0, 1},
        {"DDPM eps/learned", RHD_SAMPLER_DDPM, RHD_BETA_SIGMOID, 100, RHD_PRED_EPS, RHD_VAR_LEARNED_RANGE, 0, 0},
    };
    for (int r = 0; r < 3; r++) {
        rhd_diffusion_schedule s;
        rhd_diffusion_schedule_named(&s, runs[r].bk, runs[r].T, &e);
        toy m = {.C = 2, .C_out = runs[r].var == RHD_VAR_LEARNED_RANGE ? 4 : 2, .HW = 5000,
                 .a = {0.9f, 1.1f, 0.7f, 0.3f}, .tt = {1e-3f, 2e-3f, 0, 1e-3f}, .k = {0.1f, -0.2f, 0.3f, 0.4f}};
        int64_t n = 2 * m.HW;
        uint64_t keys[2] = {11, 12};
        rhd_noise_philox_src ps = {keys};
        rhd_sampler_opts o;
        rhd_sampler_opts_init(&o);
        o.kind = runs[r].kind, o.pred = runs[r].pred, o.var = runs[r].var, o.eta = runs[r].eta, o.C = 2, o.HW = m.HW;
        o.model = toy_plain, o.model_user = &m, o.noise = rhd_noise_philox, o.noise_user = &ps;
        float *xc = malloc(sizeof(float) * 2 * n), *xg = malloc(sizeof(float) * 2 * n);
        int rc = rhd_sample(cpu, &s, &o, xc, 2, &e);
        float *dx = rhd_buf_alloc(gpu, sizeof(float) * 2 * n);
        o.model = toy_dev;
        rc |= rhd_sample(gpu, &s, &o, dx, 2, &e);
        rhd_buf_download(gpu, xg, dx, sizeof(float) * 2 * n);
        char name[160];
        snprintf(name, sizeof name, "CUDA vs CPU %s, Philox noise", runs[r].name);
        if (rc) th_ok(0, "%s: %s", name, e.msg);
        else if (runs[r].exact) th_same_bytes(name, xg, xc, 2 * n, 4);
        else th_close(name, xg, xc, 2 * n, 1e-10);
        rhd_buf_free(gpu, dx);
        free(xc), free(xg);
        rhd_diffusion_schedule_free(&s);
    }
    rhd_ctx_close(gpu);
    rhd_ctx_close(cpu);
}

static void test_errors(void) {
    rhd_err e;
    rhd_ctx *cpu = rhd_ctx_open("cpu", &e);
    rhd_diffusion_schedule s;
    rhd_diffusion_schedule_named(&s, RHD_BETA_SIGMOID, 100, &e);
    toy m = {.C = 1, .C_out = 1, .HW = 4, .a = {1}};
    float d0[4] = {0}, x[4];
    const float *draws[2] = {d0, d0};
    rhd_noise_external_src ext = {draws, 2, 4};
    rhd_sampler_opts o;
    rhd_sampler_opts_init(&o);
    o.pred = RHD_PRED_XSTART, o.var = RHD_VAR_FIXED_LARGE, o.C = 1, o.HW = 4, o.model = toy_plain, o.model_user = &m;
    o.noise = rhd_noise_external, o.noise_user = &ext;
    int rc = rhd_sample(cpu, &s, &o, x, 1, &e);
    th_ok(rc && strstr(e.msg, "draw 2 (a step's z) is missing, 2 given"), "noise file short of a step: %s", e.msg);
    ext.n_draws = 2, ext.numel = 8;
    rc = rhd_sample(cpu, &s, &o, x, 1, &e);
    th_ok(rc && strstr(e.msg, "has 8 values, expected 4"), "noise of the wrong shape: %s", e.msg);
    o.steps = 101;
    rc = rhd_sample(cpu, &s, &o, x, 1, &e);
    th_ok(rc && strstr(e.msg, "101 sampling steps"), "too many steps: %s", e.msg);
    rhd_sampler_kind k;
    th_ok(rhd_sampler_kind_parse("euler", &k, &e) && strstr(e.msg, "expected ddim-dpm, ddim or ddpm"), "%s", e.msg);
    rhd_diffusion_schedule_free(&s);
    rhd_ctx_close(cpu);
}

int main(void) {
    th_seed();
    static const traj_case cases[] = {
        {"DDIM dpm base: cosine_light T=1000 S=10 eta=1 CFG 1.3, eps + learned v", "ddim-dpm", "cosine_light", 1000, NULL, 10, 1.0, 1.3,
         RHD_PRED_EPS, RHD_VAR_LEARNED_RANGE, 1, 2, 2, 48, 0, 1},
        {"DDIM dpm upsampler: sigmoid T=100 S=10 eta=0, x0 model, t x10", "ddim-dpm", "sigmoid", 100, NULL, 10, 0.0, 1.0,
         RHD_PRED_XSTART, RHD_VAR_FIXED_LARGE, 1, 3, 2, 40, 0, 1},
        {"DDIM dpm S=7 (S+1 = 8 steps) eta=0.5, no clip", "ddim-dpm", "cosine_light", 1000, NULL, 7, 0.5, 1.0,
         RHD_PRED_EPS, RHD_VAR_LEARNED_RANGE, 0, 2, 1, 30, 0, 1},
        {"DDIM (GaussianDiffusion) cosine_light ddim10 eta=0.5 CFG 2", "ddim", "cosine_light", 1000, "ddim10", 0, 0.5, 2.0,
         RHD_PRED_EPS, RHD_VAR_LEARNED_RANGE, 1, 2, 2, 30, 0, 1},
        {"DDPM base: cosine_light respaced \"25\", learned range, CFG 1.3", "ddpm", "cosine_light", 1000, "25", 0, 0, 1.3,
         RHD_PRED_EPS, RHD_VAR_LEARNED_RANGE, 1, 2, 2, 30, 0, 0},
        {"DDPM upsampler: sigmoid T=100 ddim20, fixed large, x0 model", "ddpm", "sigmoid", 100, "ddim20", 0, 0, 1.0,
         RHD_PRED_XSTART, RHD_VAR_FIXED_LARGE, 1, 2, 2, 30, 0, 0},
        {"DDPM v model: linear T=100 \"10\", fixed large, time scale 1", "ddpm", "linear", 100, "10", 0, 0, 1.0,
         RHD_PRED_V, RHD_VAR_FIXED_LARGE, 1, 2, 1, 30, 1.0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_trajectory(&cases[i], (int)i);
    check_trajectories((int)(sizeof cases / sizeof cases[0]));
    test_first_step_radicand();
    test_guidance_one();
    test_gaussian_statistics();
    test_cuda();
    test_errors();
    return th_done();
}
