/* common/models/diffusion_schedule.c: beta schedules, derived tables, respacing and DDIM steps
 * (see the header). Every expression keeps the evaluation order of the numpy original so that
 * results agree with it to the last bit or two. */
#include "common/models/diffusion_schedule.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const g_names[RHD_BETA_COUNT] = {"linear", "squaredcos_cap_v2", "cosine", "cosine_light", "sigmoid"};

const char *rhd_beta_kind_name(rhd_beta_kind k) {
    return (k >= 0 && k < RHD_BETA_COUNT) ? g_names[k] : "unknown";
}

int rhd_beta_kind_parse(const char *name, rhd_beta_kind *k, rhd_err *e) {
    for (int i = 0; i < RHD_BETA_COUNT; i++)
        if (name && strcmp(name, g_names[i]) == 0) {
            *k = (rhd_beta_kind)i;
            return 0;
        }
    return rhd_errf(e, "unknown noise schedule '%s', expected one of linear, squaredcos_cap_v2, cosine, cosine_light, sigmoid",
                    name ? name : "");
}

/* --- cumulative schedules a(t) -------------------------------------------------------------- */

static double gen_cosine(double t, double start, double end, double tau) {
    const double half_pi = M_PI / 2;
    double v_start = pow(cos(start * half_pi), 2 * tau);
    double v_end = pow(cos(end * half_pi), 2 * tau);
    double o = pow(cos((t * (end - start) + start) * half_pi), 2 * tau);
    return (v_end - o) / (v_end - v_start);
}

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

static double gen_sigmoid(double t, double start, double end, double tau) {
    double v_start = sigmoid(start / tau);
    double v_end = sigmoid(end / tau);
    double o = sigmoid((t * (end - start) + start) / tau);
    return (v_end - o) / (v_end - v_start);
}

double rhd_beta_alpha_bar_fn(rhd_beta_kind k, double t) {
    switch (k) {
    case RHD_BETA_SQUAREDCOS_CAP_V2: return pow(cos((t + 0.008) / 1.008 * M_PI / 2), 2);
    case RHD_BETA_COSINE: return gen_cosine(t, 0.2, 1.0, 5.0);
    case RHD_BETA_COSINE_LIGHT: return gen_cosine(t, 0.2, 1.0, 3.0);
    case RHD_BETA_SIGMOID: return gen_sigmoid(t, 0.0, 3.0, 0.1);
    default: return NAN;
    }
}

int rhd_beta_schedule(rhd_beta_kind k, int T, double *betas, rhd_err *e) {
    if (k < 0 || k >= RHD_BETA_COUNT) return rhd_errf(e, "beta schedule %d: unknown kind", (int)k);
    if (T < 1 || T > RHD_DIFFUSION_MAX_T)
        return rhd_errf(e, "%s schedule: %d steps, expected 1..%d", g_names[k], T, RHD_DIFFUSION_MAX_T);
    if (k == RHD_BETA_LINEAR) {
        /* np.linspace(scale * 0.0001, scale * 0.02, T): start + i*step, last = stop */
        double scale = 1000.0 / T;
        double start = scale * 0.0001, stop = scale * 0.02;
        double step = T > 1 ? (stop - start) / (T - 1) : 0;
        for (int i = 0; i < T; i++) betas[i] = (double)i * step + start;
        if (T > 1) betas[T - 1] = stop;
    } else {
        /* betas_for_alpha_bar */
        for (int i = 0; i < T; i++) {
            double t1 = (double)i / T, t2 = (double)(i + 1) / T;
            double b = 1 - rhd_beta_alpha_bar_fn(k, t2) / rhd_beta_alpha_bar_fn(k, t1);
            betas[i] = b < RHD_MAX_BETA ? b : RHD_MAX_BETA;
        }
    }
    for (int i = 0; i < T; i++)
        if (!(betas[i] > 0 && betas[i] <= 1))
            return rhd_errf(e, "%s schedule with %d steps: beta_%d = %g, expected a value in (0, 1]%s", g_names[k], T, i,
                            betas[i], k == RHD_BETA_LINEAR ? " (the linear schedule needs at least 20 steps)" : "");
    return 0;
}

/* --- derived tables ------------------------------------------------------------------------- */

enum { N_TABLES = 17 };

int rhd_diffusion_schedule_init(rhd_diffusion_schedule *d, const double *betas, int T, const int *timestep_map,
                                int T_orig, rhd_err *e) {
    memset(d, 0, sizeof *d);
    if (T < 2 || T > RHD_DIFFUSION_MAX_T)
        return rhd_errf(e, "diffusion schedule: %d steps, expected 2..%d", T, RHD_DIFFUSION_MAX_T);
    for (int i = 0; i < T; i++)
        if (!(betas[i] > 0 && betas[i] <= 1))
            return rhd_errf(e, "diffusion schedule: beta_%d = %g, expected a value in (0, 1]", i, betas[i]);
    if (timestep_map) {
        if (T_orig < T) return rhd_errf(e, "diffusion schedule: respaced from %d steps to %d, expected fewer", T_orig, T);
        for (int i = 0; i < T; i++)
            if (timestep_map[i] < 0 || timestep_map[i] >= T_orig || (i && timestep_map[i] <= timestep_map[i - 1]))
                return rhd_errf(e, "diffusion schedule: timestep_map[%d] = %d, expected increasing values in 0..%d", i,
                                timestep_map[i], T_orig - 1);
    } else {
        T_orig = T;
    }
    double *m = rhd_xmalloc(sizeof(double) * (size_t)N_TABLES * T + sizeof(int) * (size_t)T);
    if (!m) return rhd_errf(e, "diffusion schedule: out of memory for %d steps", T);
    d->mem_ = m;
    d->T = T;
    d->T_orig = T_orig;
    double **tab[N_TABLES] = {&d->betas, &d->alphas, &d->alphas_cumprod, &d->alphas_cumprod_prev,
                              &d->alphas_cumprod_next, &d->sqrt_alphas_cumprod, &d->sqrt_one_minus_alphas_cumprod,
                              &d->log_one_minus_alphas_cumprod, &d->sqrt_recip_alphas_cumprod,
                              &d->sqrt_recipm1_alphas_cumprod, &d->posterior_variance,
                              &d->posterior_log_variance_clipped, &d->posterior_mean_coef1, &d->posterior_mean_coef2,
                              &d->fixed_large_variance, &d->fixed_large_log_variance, &d->snr};
    for (int j = 0; j < N_TABLES; j++) *tab[j] = m + (size_t)j * T;
    d->timestep_map = (int *)(m + (size_t)N_TABLES * T);
    for (int i = 0; i < T; i++) d->timestep_map[i] = timestep_map ? timestep_map[i] : i;

    memcpy(d->betas, betas, sizeof(double) * T);
    double acc = 1.0;
    for (int i = 0; i < T; i++) {
        d->alphas[i] = 1.0 - d->betas[i];
        acc *= d->alphas[i];
        d->alphas_cumprod[i] = acc;
    }
    for (int i = 0; i < T; i++) {
        double ab = d->alphas_cumprod[i];
        double prev = i ? d->alphas_cumprod[i - 1] : 1.0;
        d->alphas_cumprod_prev[i] = prev;
        d->alphas_cumprod_next[i] = i + 1 < T ? d->alphas_cumprod[i + 1] : 0.0;
        d->sqrt_alphas_cumprod[i] = sqrt(ab);
        d->sqrt_one_minus_alphas_cumprod[i] = sqrt(1.0 - ab);
        d->log_one_minus_alphas_cumprod[i] = log(1.0 - ab);
        d->sqrt_recip_alphas_cumprod[i] = sqrt(1.0 / ab);
        d->sqrt_recipm1_alphas_cumprod[i] = sqrt(1.0 / ab - 1);
        d->posterior_variance[i] = d->betas[i] * (1.0 - prev) / (1.0 - ab);
        d->posterior_mean_coef1[i] = d->betas[i] * sqrt(prev) / (1.0 - ab);
        d->posterior_mean_coef2[i] = (1.0 - prev) * sqrt(d->alphas[i]) / (1.0 - ab);
        d->snr[i] = ab / (1.0 - ab);
    }
    for (int i = 0; i < T; i++) {
        d->posterior_log_variance_clipped[i] = log(i ? d->posterior_variance[i] : d->posterior_variance[1]);
        d->fixed_large_variance[i] = i ? d->betas[i] : d->posterior_variance[1];
        d->fixed_large_log_variance[i] = log(d->fixed_large_variance[i]);
    }
    return 0;
}

int rhd_diffusion_schedule_named(rhd_diffusion_schedule *d, rhd_beta_kind k, int T, rhd_err *e) {
    memset(d, 0, sizeof *d);
    if (T < 2 || T > RHD_DIFFUSION_MAX_T)
        return rhd_errf(e, "%s schedule: %d steps, expected 2..%d", rhd_beta_kind_name(k), T, RHD_DIFFUSION_MAX_T);
    double *b = rhd_xmalloc(sizeof(double) * T);
    if (!b) return rhd_errf(e, "%s schedule: out of memory for %d steps", rhd_beta_kind_name(k), T);
    int rc = rhd_beta_schedule(k, T, b, e);
    if (!rc) rc = rhd_diffusion_schedule_init(d, b, T, NULL, T, e);
    free(b);
    return rc;
}

void rhd_diffusion_schedule_free(rhd_diffusion_schedule *d) {
    if (!d) return;
    free(d->mem_);
    memset(d, 0, sizeof *d);
}

/* --- respacing ------------------------------------------------------------------------------ */

/* A non-negative decimal integer made of digits only, at most 9 of them. */
static int parse_count(const char *s, size_t len, int *out) {
    if (len == 0 || len > 9) return -1;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int rhd_space_timesteps(int T, const char *spec, int **steps, int *n, rhd_err *e) {
    *steps = NULL;
    *n = 0;
    if (T < 1 || T > RHD_DIFFUSION_MAX_T)
        return rhd_errf(e, "respacing '%s': %d steps to respace, expected 1..%d", spec ? spec : "", T, RHD_DIFFUSION_MAX_T);
    if (!spec || !*spec) return rhd_errf(e, "respacing: empty, expected e.g. \"10\", \"10,20\" or \"ddim10\"");
    if (strncmp(spec, "ddim", 4) == 0) {
        int want;
        if (parse_count(spec + 4, strlen(spec + 4), &want) || want < 1)
            return rhd_errf(e, "respacing '%s': expected ddimN with N a positive integer (e.g. ddim10)", spec);
        if (want > T) return rhd_errf(e, "respacing '%s': %d steps from %d, expected at most %d", spec, want, T, T);
        for (int s = 1; s <= T; s++) {
            int cnt = (T + s - 1) / s; /* len(range(0, T, s)) */
            if (cnt == want) {
                int *v = rhd_xmalloc(sizeof(int) * cnt);
                if (!v) return rhd_errf(e, "respacing '%s': out of memory", spec);
                for (int j = 0; j < cnt; j++) v[j] = j * s;
                *steps = v;
                *n = cnt;
                return 0;
            }
            if (cnt < want) break; /* counts only fall as the stride grows */
        }
        return rhd_errf(e, "respacing '%s': no integer stride gives exactly %d of %d steps, expected a count "
                        "that range(0, %d, stride) can produce", spec, want, T, T);
    }
    /* "N1,N2,...": parse the section counts */
    int k = 1;
    for (const char *p = spec; *p; p++) k += *p == ',';
    int *counts = rhd_xmalloc(sizeof(int) * k);
    if (!counts) return rhd_errf(e, "respacing '%s': out of memory", spec);
    const char *p = spec;
    long long total = 0;
    for (int j = 0; j < k; j++) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (parse_count(p, len, &counts[j])) {
            free(counts);
            return rhd_errf(e, "respacing '%s': section %d is '%.*s', expected a non-negative integer "
                            "(e.g. \"10\", \"10,20\" or \"ddim10\")", spec, j, (int)len, p);
        }
        total += counts[j];
        p = c ? c + 1 : p + len;
    }
    int size_per = T / k, extra = T % k;
    for (int j = 0; j < k; j++) {
        int size = size_per + (j < extra ? 1 : 0);
        if (counts[j] > size) {
            int want = counts[j];
            free(counts);
            return rhd_errf(e, "respacing '%s': section %d has %d steps, cannot take %d of them", spec, j, size, want);
        }
    }
    if (total < 1) {
        free(counts);
        return rhd_errf(e, "respacing '%s': keeps no steps, expected at least one", spec);
    }
    int *v = rhd_xmalloc(sizeof(int) * (size_t)total);
    if (!v) {
        free(counts);
        return rhd_errf(e, "respacing '%s': out of memory", spec);
    }
    int cnt = 0, start = 0;
    for (int j = 0; j < k; j++) {
        int size = size_per + (j < extra ? 1 : 0);
        double stride = counts[j] <= 1 ? 1.0 : (double)(size - 1) / (counts[j] - 1);
        double cur = 0.0;
        for (int q = 0; q < counts[j]; q++) {
            v[cnt++] = start + (int)nearbyint(cur); /* round half to even, as Python's round() */
            cur += stride;
        }
        start += size;
    }
    free(counts);
    /* sections are disjoint and strides >= 1, so v is already strictly increasing */
    for (int i = 1; i < cnt; i++) RHD_ASSERT(v[i] > v[i - 1]);
    *steps = v;
    *n = cnt;
    return 0;
}

int rhd_diffusion_schedule_respace(rhd_diffusion_schedule *out, const rhd_diffusion_schedule *base, const int *use,
                                   int n, rhd_err *e) {
    memset(out, 0, sizeof *out);
    if (n < 2) return rhd_errf(e, "respacing keeps %d step%s, expected at least 2", n, n == 1 ? "" : "s");
    for (int k = 0; k < n; k++)
        if (use[k] < 0 || use[k] >= base->T || (k && use[k] <= use[k - 1]))
            return rhd_errf(e, "respacing: step %d is %d, expected increasing steps in 0..%d", k, use[k], base->T - 1);
    double *b = rhd_xmalloc(sizeof(double) * n);
    int *map = rhd_xmalloc(sizeof(int) * n);
    if (!b || !map) {
        free(b), free(map);
        return rhd_errf(e, "respacing: out of memory");
    }
    double last = 1.0;
    for (int k = 0; k < n; k++) {
        double ab = base->alphas_cumprod[use[k]];
        b[k] = 1 - ab / last;
        last = ab;
        map[k] = base->timestep_map[use[k]];
    }
    int rc = rhd_diffusion_schedule_init(out, b, n, map, base->T_orig, e);
    free(b), free(map);
    return rc;
}

int rhd_diffusion_schedule_create(rhd_diffusion_schedule *d, rhd_beta_kind k, int T, const char *respacing,
                                  rhd_err *e) {
    if (rhd_diffusion_schedule_named(d, k, T, e)) return -1;
    if (!respacing || !*respacing) return 0;
    int *use, n;
    if (rhd_space_timesteps(T, respacing, &use, &n, e)) {
        rhd_diffusion_schedule_free(d);
        return -1;
    }
    rhd_diffusion_schedule base = *d;
    int rc = rhd_diffusion_schedule_respace(d, &base, use, n, e);
    if (rc) rhd_err_prefix(e, "respacing '%s'", respacing);
    rhd_diffusion_schedule_free(&base);
    free(use);
    return rc;
}

/* --- DDIM ----------------------------------------------------------------------------------- */

int rhd_ddim_timesteps(int T, int S, int **ts, int *n, rhd_err *e) {
    *ts = NULL;
    *n = 0;
    if (T < 1 || T > RHD_DIFFUSION_MAX_T) return rhd_errf(e, "DDIM: %d diffusion steps, expected 1..%d", T, RHD_DIFFUSION_MAX_T);
    if (S < 1 || S > T) return rhd_errf(e, "DDIM: %d sampling steps, expected 1..%d (the diffusion's steps)", S, T);
    int c = T / S;
    int cnt = 0;
    for (int t = T - 1; t > 0; t -= c) cnt++;
    if (cnt == 0) return rhd_errf(e, "DDIM: %d sampling steps of %d give no timestep > 0, expected T >= 2", S, T);
    int *v = rhd_xmalloc(sizeof(int) * cnt);
    if (!v) return rhd_errf(e, "DDIM: out of memory");
    int j = cnt;
    for (int t = T - 1; t > 0; t -= c) v[--j] = t;
    *ts = v;
    *n = cnt;
    return 0;
}

int rhd_ddim_coefficients(const rhd_diffusion_schedule *d, const int *ts, int n, double eta, double *a,
                          double *a_prev, double *sigma, double *dir, rhd_err *e) {
    if (!(eta >= 0) || !isfinite(eta)) return rhd_errf(e, "DDIM: eta = %g, expected a finite value >= 0", eta);
    for (int k = 0; k < n; k++)
        if (ts[k] < 0 || ts[k] >= d->T || (k && ts[k] <= ts[k - 1]))
            return rhd_errf(e, "DDIM: step %d is t = %d, expected increasing timesteps in 0..%d", k, ts[k], d->T - 1);
    for (int k = 0; k < n; k++) {
        double ak = d->alphas_cumprod[ts[k]];
        double ap = k ? d->alphas_cumprod[ts[k - 1]] : 1.0;
        double s = eta * sqrt((1 - ap) / (1 - ak)) * sqrt(1 - ak / ap);
        double r = 1 - ap - s * s;
        if (a) a[k] = ak;
        if (a_prev) a_prev[k] = ap;
        if (sigma) sigma[k] = s;
        if (dir) dir[k] = sqrt(r > 0 ? r : 0);
    }
    return 0;
}
