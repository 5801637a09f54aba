/* common/models/sampler.c: DDIM ("dpm" and GaussianDiffusion's), DDPM, noise sources and CFG (see
 * the header). Per-step coefficients are formed here in the original's precision; the element
 * updates are kernels/diffusion.h. */
#include "common/models/sampler.h"
#include "common/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const g_kinds[] = {"ddim-dpm", "ddim", "ddpm"};

int rhd_sampler_kind_parse(const char *name, rhd_sampler_kind *k, rhd_err *e) {
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, g_kinds[i]) == 0) return *k = (rhd_sampler_kind)i, 0;
    return rhd_errf(e, "unknown sampler '%s', expected ddim-dpm, ddim or ddpm", name ? name : "");
}
const char *rhd_sampler_kind_name(rhd_sampler_kind k) { return k >= 0 && k <= 2 ? g_kinds[k] : "unknown"; }

void rhd_sampler_opts_init(rhd_sampler_opts *o) {
    memset(o, 0, sizeof *o);
    o->kind = RHD_SAMPLER_DDIM_DPM;
    o->steps = 10;
    o->eta = 0.0;
    o->clip = 1;
    o->pred = RHD_PRED_EPS;
    o->var = RHD_VAR_LEARNED_RANGE;
    o->noise = rhd_noise_philox;
}

int rhd_sampler_steps(const rhd_diffusion_schedule *s, const rhd_sampler_opts *o, int **t, int *n, rhd_err *e) {
    if (o->kind == RHD_SAMPLER_DDIM_DPM) {
        int *ts, m;
        if (rhd_ddim_timesteps(s->T, o->steps, &ts, &m, e)) return -1;
        for (int i = 0; i < m / 2; i++) { int tmp = ts[i]; ts[i] = ts[m - 1 - i]; ts[m - 1 - i] = tmp; }
        *t = ts, *n = m;
        return 0;
    }
    if (o->kind != RHD_SAMPLER_DDIM && o->kind != RHD_SAMPLER_DDPM)
        return rhd_errf(e, "sampler kind %d: unknown", (int)o->kind);
    *t = rhd_xmalloc(sizeof(int) * (size_t)s->T);
    for (int i = 0; i < s->T; i++) (*t)[i] = s->T - 1 - i;
    *n = s->T;
    return 0;
}

/* The DDIMSampler coefficients of step k of ts (increasing order), §3.10 / §10.5. */
static int ddim_dpm_coef(const rhd_diffusion_schedule *s, const rhd_sampler_opts *o, const int *ts, int k,
                         rhd_ddim_coef *c, rhd_err *e) {
    double a, ap, sig;
    /* coefficients of the two steps (k-1, k) so that a_prev is abar of the previous step */
    int pair[2] = {k ? ts[k - 1] : 0, ts[k]}, first = k == 0;
    double av[2], apv[2], sv[2];
    if (rhd_ddim_coefficients(s, first ? pair + 1 : pair, first ? 1 : 2, o->eta, av, apv, sv, NULL, e)) return -1;
    int j = first ? 0 : 1;
    a = av[j], ap = apv[j], sig = sv[j];
    float fa = (float)a, fap = (float)ap, fsig = (float)sig;
    float r = (1.0f - fap) - fsig * fsig;
    int t = ts[k];
    *c = (rhd_ddim_coef){.sa = sqrtf(fa), .s1ma = (float)sqrt(1.0 - a), .sap = sqrtf(fap), .dir = sqrtf(r > 0 ? r : 0),
                         .sig = fsig, .sr = rhd_f32(s->sqrt_recip_alphas_cumprod[t]),
                         .srm1 = rhd_f32(s->sqrt_recipm1_alphas_cumprod[t]), .pred = o->pred, .clip = o->clip, .gd = 0};
    return 0;
}

/* GaussianDiffusion.ddim_sample's coefficients at chain step t, all fp32 tensor math. */
static void ddim_gd_coef(const rhd_diffusion_schedule *s, const rhd_sampler_opts *o, int t, rhd_ddim_coef *c) {
    float ab = rhd_f32(s->alphas_cumprod[t]), abp = rhd_f32(s->alphas_cumprod_prev[t]);
    float sigma = (float)o->eta * sqrtf((1.0f - abp) / (1.0f - ab)) * sqrtf(1.0f - ab / abp);
    float r = (1.0f - abp) - sigma * sigma;
    *c = (rhd_ddim_coef){.sa = rhd_f32(s->sqrt_alphas_cumprod[t]), .s1ma = rhd_f32(s->sqrt_one_minus_alphas_cumprod[t]),
                         .sap = sqrtf(abp), .dir = sqrtf(r > 0 ? r : 0), .sig = t > 0 ? sigma : 0.0f,
                         .sr = rhd_f32(s->sqrt_recip_alphas_cumprod[t]),
                         .srm1 = rhd_f32(s->sqrt_recipm1_alphas_cumprod[t]), .pred = o->pred, .clip = o->clip, .gd = 1};
}

static void ddpm_coef(const rhd_diffusion_schedule *s, const rhd_sampler_opts *o, int t, rhd_ddpm_coef *c) {
    *c = (rhd_ddpm_coef){.sr = rhd_f32(s->sqrt_recip_alphas_cumprod[t]), .srm1 = rhd_f32(s->sqrt_recipm1_alphas_cumprod[t]),
                         .sa = rhd_f32(s->sqrt_alphas_cumprod[t]), .s1ma = rhd_f32(s->sqrt_one_minus_alphas_cumprod[t]),
                         .c1 = rhd_f32(s->posterior_mean_coef1[t]), .c2 = rhd_f32(s->posterior_mean_coef2[t]),
                         .lbeta = rhd_f32(log(s->betas[t])), .lclip = rhd_f32(s->posterior_log_variance_clipped[t]),
                         .lfix = rhd_f32(s->fixed_large_log_variance[t]), .pred = o->pred, .var = o->var,
                         .clip = o->clip, .nonzero = t != 0};
}

int rhd_sample(rhd_ctx *ctx, const rhd_diffusion_schedule *s, const rhd_sampler_opts *o, float *x, int B, rhd_err *e) {
    if (B < 1 || o->C < 1 || o->HW < 1) return rhd_errf(e, "sampler: batch %d, C %d, HW %lld, expected positive sizes", B, o->C, (long long)o->HW);
    if (!o->model || !o->noise) return rhd_errf(e, "sampler: no model or noise callback");
    if (!(o->eta >= 0) || !isfinite(o->eta)) return rhd_errf(e, "sampler: eta = %g, expected a finite value >= 0", o->eta);
    int learned = o->var == RHD_VAR_LEARNED_RANGE;
    int C_out = learned ? 2 * o->C : o->C;
    int64_t n = (int64_t)o->C * o->HW, no = (int64_t)C_out * o->HW;
    int *steps, nsteps;
    if (rhd_sampler_steps(s, o, &steps, &nsteps, e)) return -1;
    int *ts_inc = NULL; /* dpm: the increasing list for the coefficients */
    if (o->kind == RHD_SAMPLER_DDIM_DPM) {
        ts_inc = rhd_xmalloc(sizeof(int) * (size_t)nsteps);
        for (int i = 0; i < nsteps; i++) ts_inc[i] = steps[nsteps - 1 - i];
    }
    float *out = rhd_buf_alloc(ctx, sizeof(float) * (size_t)(B * no));
    float *z = rhd_buf_alloc(ctx, sizeof(float) * (size_t)(B * n));
    float *x0 = rhd_buf_alloc(ctx, sizeof(float) * (size_t)(B * n));
    float *tm = rhd_xmalloc(sizeof(float) * (size_t)B);
    int rc = 0;
    if (!o->x_T_given && o->noise(o->noise_user, ctx, x, 0, B, n, e)) rc = -1;
    for (int j = 0; j < nsteps && !rc; j++) {
        int t = steps[j];
        float tmod = rhd_diffusion_model_t(s, t, o->time_scale);
        for (int b = 0; b < B; b++) tm[b] = tmod;
        if (o->model(o->model_user, ctx, out, x, B, tm, e)) { rc = -1; break; }
        if (o->noise(o->noise_user, ctx, z, j + 1, B, n, e)) { rc = -1; break; }
        if (o->kind == RHD_SAMPLER_DDPM) {
            rhd_ddpm_coef c;
            ddpm_coef(s, o, t, &c);
            for (int b = 0; b < B; b++)
                rhd_diff_ddpm_step(ctx, x + b * n, x0 + b * n, x + b * n, out + b * no, learned ? out + b * no + n : NULL,
                                   z + b * n, n, &c);
        } else {
            rhd_ddim_coef c;
            if (o->kind == RHD_SAMPLER_DDIM) ddim_gd_coef(s, o, t, &c);
            else if (ddim_dpm_coef(s, o, ts_inc, nsteps - 1 - j, &c, e)) { rc = -1; break; }
            for (int b = 0; b < B; b++)
                rhd_diff_ddim_step(ctx, x + b * n, x0 + b * n, x + b * n, out + b * no, z + b * n, n, &c);
        }
        if (o->on_step) o->on_step(o->step_user, j, nsteps, t, x, x0);
    }
    rhd_buf_free(ctx, out);
    rhd_buf_free(ctx, z);
    rhd_buf_free(ctx, x0);
    free(tm);
    free(steps);
    free(ts_inc);
    return rc;
}

/* --- noise sources ---------------------------------------------------------------------------- */

int rhd_noise_philox(void *user, rhd_ctx *ctx, float *out, int draw, int B, int64_t n, rhd_err *e) {
    const rhd_noise_philox_src *src = user;
    if (!src || !src->keys) return rhd_errf(e, "sampler: Philox noise without item keys");
    for (int b = 0; b < B; b++)
        rhd_diff_randn(ctx, out + b * n, n, src->keys[b], RHD_STREAM(RHD_STREAM_DIFFUSION, draw), 0);
    return 0;
}

uint64_t rhd_noise_key(uint64_t seed, const char *name) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)(name ? name : ""); *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (h | 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int rhd_noise_external(void *user, rhd_ctx *ctx, float *out, int draw, int B, int64_t n, rhd_err *e) {
    const rhd_noise_external_src *src = user;
    if (draw >= src->n_draws || !src->draws[draw])
        return rhd_errf(e, "noise: draw %d (%s) is missing, %d given", draw, draw ? "a step's z" : "x_T", src->n_draws);
    if (src->numel != (int64_t)B * n)
        return rhd_errf(e, "noise: draw %d has %lld values, expected %lld (batch %d x %lld)", draw, (long long)src->numel,
                        (long long)B * n, B, (long long)n);
    rhd_buf_upload(ctx, out, src->draws[draw], sizeof(float) * (size_t)(B * n));
    return 0;
}

/* --- classifier-free guidance ----------------------------------------------------------------- */

static float *grow(rhd_ctx *ctx, float *p, int64_t *cap, int64_t want) {
    if (want <= *cap) return p;
    if (p) rhd_buf_free(ctx, p);
    *cap = want;
    return rhd_buf_alloc(ctx, sizeof(float) * (size_t)want);
}

int rhd_cfg_denoise(void *user, rhd_ctx *ctx, float *out, const float *x, int B, const float *t_model, rhd_err *e) {
    rhd_cfg *g = user;
    if (g->C_guided < 0 || g->C_guided > g->C_out) return rhd_errf(e, "guidance: %d guided channels of %d", g->C_guided, g->C_out);
    if (g->cap_b < 2 * B) {
        free(g->nulls);
        g->nulls = rhd_xmalloc((size_t)2 * B);
        g->cap_b = 2 * B;
    }
    if (g->scale == 1.0) { /* unguided: u + 1 (c - u) is not c in fp32, so skip the null half */
        memset(g->nulls, 0, (size_t)B);
        return g->model(g->user, ctx, out, x, B, t_model, g->nulls, e);
    }
    int64_t n = (int64_t)g->C * g->HW, no = (int64_t)g->C_out * g->HW, ng = (int64_t)g->C_guided * g->HW;
    g->x2 = grow(ctx, g->x2, &g->cap_x, 2 * B * n);
    g->o2 = grow(ctx, g->o2, &g->cap_o, 2 * B * no);
    rhd_buf_copy(ctx, g->x2, x, sizeof(float) * (size_t)(B * n));
    rhd_buf_copy(ctx, g->x2 + B * n, x, sizeof(float) * (size_t)(B * n));
    float *t2 = rhd_xmalloc(sizeof(float) * (size_t)2 * B);
    for (int b = 0; b < B; b++) t2[b] = t2[B + b] = t_model[b], g->nulls[b] = 0, g->nulls[B + b] = 1;
    int rc = g->model(g->user, ctx, g->o2, g->x2, 2 * B, t2, g->nulls, e);
    free(t2);
    if (rc) return -1;
    for (int b = 0; b < B; b++) {
        const float *c = g->o2 + b * no, *u = g->o2 + (B + b) * no;
        rhd_diff_cfg(ctx, out + b * no, c, u, ng, (float)g->scale);
        if (no > ng) rhd_buf_copy(ctx, out + b * no + ng, c + ng, sizeof(float) * (size_t)(no - ng));
    }
    return 0;
}

void rhd_cfg_free(rhd_cfg *g, rhd_ctx *ctx) {
    if (g->x2) rhd_buf_free(ctx, g->x2);
    if (g->o2) rhd_buf_free(ctx, g->o2);
    free(g->nulls);
    g->x2 = g->o2 = NULL;
    g->nulls = NULL;
    g->cap_x = g->cap_o = 0;
    g->cap_b = 0;
}
