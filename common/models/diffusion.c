/* common/models/diffusion.c: forward process, training terms and timestep samplers (see the
 * header). Coefficients are formed here, per sample, in the original's precision; the element
 * math is kernels/diffusion.h. */
#include "common/models/diffusion.h"
#include "common/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const g_pred[] = {"eps", "xstart", "v"};
static const char *const g_var[] = {"learned_range", "fixed_large"};

int rhd_pred_kind_parse(const char *name, rhd_pred_kind *k, rhd_err *e) {
    if (name && strcmp(name, "noise") == 0) name = "eps";
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, g_pred[i]) == 0) return *k = (rhd_pred_kind)i, 0;
    return rhd_errf(e, "unknown prediction '%s', expected eps (or noise), xstart or v", name ? name : "");
}
const char *rhd_pred_kind_name(rhd_pred_kind k) { return k >= 0 && k <= 2 ? g_pred[k] : "unknown"; }

int rhd_var_kind_parse(const char *name, rhd_var_kind *k, rhd_err *e) {
    for (int i = 0; i < 2; i++)
        if (name && strcmp(name, g_var[i]) == 0) return *k = (rhd_var_kind)i, 0;
    return rhd_errf(e, "unknown model variance '%s', expected learned_range or fixed_large", name ? name : "");
}
const char *rhd_var_kind_name(rhd_var_kind k) { return k >= 0 && k <= 1 ? g_var[k] : "unknown"; }

float rhd_diffusion_model_t(const rhd_diffusion_schedule *s, int t, double scale) {
    RHD_ASSERT(t >= 0 && t < s->T);
    if (!(scale > 0)) scale = 1000.0 / s->T_orig;
    /* new_ts.float() * (1000.0 / original_num_steps): an fp32 tensor times a scalar */
    return (float)s->timestep_map[t] * (float)scale;
}

void rhd_diffusion_train_noise(rhd_ctx *ctx, float *eps, int B, int64_t n, const uint64_t *keys, uint32_t step) {
    RHD_ASSERT(step < RHD_DIFFUSION_TRAIN_DRAW);
    for (int b = 0; b < B; b++)
        rhd_diff_randn(ctx, eps + b * n, n, keys[b], RHD_STREAM(RHD_STREAM_DIFFUSION, RHD_DIFFUSION_TRAIN_DRAW | step), 0);
}

void rhd_diffusion_q_sample(rhd_ctx *ctx, const rhd_diffusion_schedule *s, float *xt, const float *x0,
                            const float *eps, const int *t, int B, int64_t n) {
    for (int b = 0; b < B; b++) {
        RHD_ASSERT(t[b] >= 0 && t[b] < s->T);
        rhd_diff_q_sample(ctx, xt + b * n, x0 + b * n, eps + b * n, n, rhd_f32(s->sqrt_alphas_cumprod[t[b]]),
                          rhd_f32(s->sqrt_one_minus_alphas_cumprod[t[b]]));
    }
}

void rhd_diffusion_posterior(const rhd_diffusion_schedule *s, int t, float x0, float xt, float *mean, float *var,
                             float *log_var_clipped) {
    RHD_ASSERT(t >= 0 && t < s->T);
    float c1 = rhd_f32(s->posterior_mean_coef1[t]), c2 = rhd_f32(s->posterior_mean_coef2[t]);
    if (mean) *mean = c1 * x0 + c2 * xt;
    if (var) *var = rhd_f32(s->posterior_variance[t]);
    if (log_var_clipped) *log_var_clipped = rhd_f32(s->posterior_log_variance_clipped[t]);
}

double rhd_diffusion_training_loss(rhd_ctx *ctx, const rhd_diffusion_schedule *s, rhd_pred_kind pred,
                                   rhd_var_kind var, float *dout, rhd_diffusion_terms *terms, const float *out,
                                   const float *x0, const float *xt, const float *eps, const int *t, const double *w,
                                   int B, int C, int64_t HW) {
    int learned = var == RHD_VAR_LEARNED_RANGE;
    int C_out = learned ? 2 * C : C;
    int64_t n = (int64_t)C * HW;
    double total = 0, rescale = s->T / 1000.0;
    for (int b = 0; b < B; b++) {
        int tb = t[b];
        RHD_ASSERT(tb >= 0 && tb < s->T);
        double wb = w ? w[b] : 1.0;
        rhd_loss_coef k = {
            .sa = rhd_f32(s->sqrt_alphas_cumprod[tb]), .s1ma = rhd_f32(s->sqrt_one_minus_alphas_cumprod[tb]),
            .sr = rhd_f32(s->sqrt_recip_alphas_cumprod[tb]), .srm1 = rhd_f32(s->sqrt_recipm1_alphas_cumprod[tb]),
            .c1 = rhd_f32(s->posterior_mean_coef1[tb]), .c2 = rhd_f32(s->posterior_mean_coef2[tb]),
            .lbeta = rhd_f32(log(s->betas[tb])), .lclip = rhd_f32(s->posterior_log_variance_clipped[tb]),
            .pred = pred, .learned = learned, .t0 = tb == 0,
            .w_mse = wb / ((double)B * n), .w_vb = wb * rescale / (M_LN2 * B * n)};
        const float *ob = out + (int64_t)b * C_out * HW;
        float *db = dout ? dout + (int64_t)b * C_out * HW : NULL;
        double mse, vbn;
        rhd_diff_loss(ctx, &mse, &vbn, db, db && learned ? db + n : NULL, x0 + b * n, xt + b * n, eps + b * n, ob,
                      learned ? ob + n : NULL, n, &k);
        double vb = learned ? vbn / M_LN2 * rescale : 0.0;
        if (terms) terms[b].mse = mse, terms[b].vb = vb, terms[b].loss = mse + vb;
        total += wb * (mse + vb);
    }
    return total / B;
}

/* --- timestep samplers ------------------------------------------------------------------------- */

int rhd_tsampler_kind_parse(const char *name, rhd_tsampler_kind *k, rhd_err *e) {
    if (name && strcmp(name, "uniform") == 0) return *k = RHD_TSAMPLER_UNIFORM, 0;
    if (name && strcmp(name, "loss-second-moment") == 0) return *k = RHD_TSAMPLER_LOSS_SECOND_MOMENT, 0;
    return rhd_errf(e, "unknown timestep sampler '%s', expected uniform or loss-second-moment", name ? name : "");
}

int rhd_tsampler_init(rhd_tsampler *ts, rhd_tsampler_kind kind, int T, rhd_err *e) {
    memset(ts, 0, sizeof *ts);
    if (T < 1 || T > RHD_DIFFUSION_MAX_T) return rhd_errf(e, "timestep sampler: T = %d, expected 1..%d", T, RHD_DIFFUSION_MAX_T);
    ts->kind = kind;
    ts->T = T;
    if (kind == RHD_TSAMPLER_LOSS_SECOND_MOMENT) {
        ts->history = rhd_xcalloc((size_t)T * RHD_LSM_HISTORY, sizeof(double));
        ts->count = rhd_xcalloc((size_t)T, sizeof(int32_t));
        if (!ts->history || !ts->count) {
            rhd_tsampler_free(ts);
            return rhd_errf(e, "timestep sampler: out of memory for T = %d", T);
        }
    }
    return 0;
}

void rhd_tsampler_free(rhd_tsampler *ts) {
    free(ts->history);
    free(ts->count);
    ts->history = NULL;
    ts->count = NULL;
}

static int lsm_warmed_up(const rhd_tsampler *ts) {
    for (int t = 0; t < ts->T; t++)
        if (ts->count[t] < RHD_LSM_HISTORY) return 0;
    return 1;
}

void rhd_tsampler_probs(const rhd_tsampler *ts, double *p) {
    int T = ts->T;
    if (ts->kind == RHD_TSAMPLER_UNIFORM || !lsm_warmed_up(ts)) {
        for (int t = 0; t < T; t++) p[t] = 1.0 / T;
        return;
    }
    /* np.sqrt(np.mean(history ** 2, axis=-1)); /= sum; *= 1 - u; += u / T */
    double sum = 0;
    for (int t = 0; t < T; t++) {
        double m = 0;
        for (int j = 0; j < RHD_LSM_HISTORY; j++) m += ts->history[(size_t)t * RHD_LSM_HISTORY + j] * ts->history[(size_t)t * RHD_LSM_HISTORY + j];
        p[t] = sqrt(m / RHD_LSM_HISTORY);
        sum += p[t];
    }
    for (int t = 0; t < T; t++) p[t] = p[t] / sum * (1 - RHD_LSM_UNIFORM_PROB) + RHD_LSM_UNIFORM_PROB / T;
}

void rhd_tsampler_sample(const rhd_tsampler *ts, int B, uint64_t seed, uint64_t stream, uint64_t offset, int *t,
                         double *w) {
    int T = ts->T;
    double *p = rhd_xmalloc(sizeof(double) * (size_t)T);
    rhd_tsampler_probs(ts, p);
    int uniform = ts->kind == RHD_TSAMPLER_UNIFORM;
    for (int b = 0; b < B; b++) {
        double u = rhd_rng_uniform(seed, stream, offset + (uint64_t)b);
        int k;
        if (uniform) {
            k = (int)floor(u * T);
        } else {
            double c = 0;
            for (k = 0; k < T - 1; k++) {
                c += p[k];
                if (u < c) break;
            }
        }
        if (k >= T) k = T - 1;
        t[b] = k;
        if (w) w[b] = 1.0 / (T * p[k]);
    }
    free(p);
}

void rhd_tsampler_update(rhd_tsampler *ts, const int *t, const double *losses, int n) {
    if (ts->kind != RHD_TSAMPLER_LOSS_SECOND_MOMENT) return;
    for (int i = 0; i < n; i++) {
        RHD_ASSERT(t[i] >= 0 && t[i] < ts->T);
        double *h = ts->history + (size_t)t[i] * RHD_LSM_HISTORY;
        int32_t *c = &ts->count[t[i]];
        if (*c == RHD_LSM_HISTORY) {
            memmove(h, h + 1, sizeof(double) * (RHD_LSM_HISTORY - 1));
            h[RHD_LSM_HISTORY - 1] = losses[i];
        } else {
            h[(*c)++] = losses[i];
        }
    }
}

int rhd_tsampler_load(rhd_tsampler *ts, const double *history, const int32_t *count, int T, rhd_err *e) {
    if (ts->kind != RHD_TSAMPLER_LOSS_SECOND_MOMENT)
        return rhd_errf(e, "timestep sampler state given, but the sampler is uniform (it has no state)");
    if (T != ts->T) return rhd_errf(e, "timestep sampler state: T = %d, expected %d", T, ts->T);
    for (int t = 0; t < T; t++) {
        if (count[t] < 0 || count[t] > RHD_LSM_HISTORY)
            return rhd_errf(e, "timestep sampler state: count[%d] = %d, expected 0..%d", t, count[t], RHD_LSM_HISTORY);
        for (int j = 0; j < RHD_LSM_HISTORY; j++)
            if (!isfinite(history[(size_t)t * RHD_LSM_HISTORY + j]))
                return rhd_errf(e, "timestep sampler state: history[%d][%d] is not finite", t, j);
    }
    memcpy(ts->history, history, sizeof(double) * (size_t)T * RHD_LSM_HISTORY);
    memcpy(ts->count, count, sizeof(int32_t) * (size_t)T);
    return 0;
}
