/* common/models/diffusion_schedule.h: noise schedules of the Gaussian diffusion, their derived
 * tables, timestep respacing and the DDIM step selection. Pure functions in float64; nothing here
 * touches files, argv or a backend. Used by rhd-schedule, rhd-train and rhd-sample.
 *
 * Mirrors RodinHD's pretrained_diffusion/gaussian_diffusion.py (get_named_beta_schedule,
 * betas_for_alpha_bar, GaussianDiffusion.__init__), respace.py (space_timesteps,
 * SpacedDiffusion) and ddim.py (DDIMSampler.make_schedule, discretisation "dpm").
 * Spec: shared/spec/diffusion.md §3.1 (schedules), §3.2 (reference numbers), §3.4 (variances),
 * §3.6 (timestep scaling), §3.8 (respacing), §3.10 (DDIM steps).
 *
 * Schedules (T steps, index i = 0..T-1):
 *   linear             beta_i = linspace(s*1e-4, s*0.02, T)[i], s = 1000/T (numpy's linspace:
 *                      start + i*step, the last entry exactly the stop value)
 *   squaredcos_cap_v2  a(t) = cos(((t + 0.008)/1.008) * pi/2)^2
 *   cosine             generalised cosine g(t; 0.2, 1, 5)
 *   cosine_light       generalised cosine g(t; 0.2, 1, 3)            (the base model)
 *   sigmoid            sigmoid schedule with start 0, end 3, tau 0.1   (the upsampler)
 * where the a(t) schedules are discretised as beta_i = min(1 - a((i+1)/T)/a(i/T), 0.999), and
 *   g(t; s, e, tau) = (v_e - cos((t(e-s)+s) pi/2)^(2 tau)) / (v_e - v_s), v_x = cos(x pi/2)^(2 tau)
 *   sigmoid:          (v_e - sig((t(e-s)+s)/tau)) / (v_e - v_s),       v_x = sig(x/tau)
 * (no clipping of a(t): the reference numbers of §3.2 are those of the unclipped functions).
 *
 * Derived tables (GaussianDiffusion.__init__), all of length T:
 *   alphas = 1 - betas, alphas_cumprod (abar) = running product, abar_prev = [1, abar_0..abar_{T-2}],
 *   abar_next = [abar_1.., 0], sqrt(abar), sqrt(1-abar), log(1-abar), sqrt(1/abar), sqrt(1/abar-1),
 *   posterior_variance = beta (1 - abar_prev)/(1 - abar)     (entry 0 is 0)
 *   posterior_log_variance_clipped = log([var_1, var_1, var_2, ..., var_{T-1}])
 *   posterior_mean_coef1 = beta sqrt(abar_prev)/(1 - abar), coef2 = (1 - abar_prev) sqrt(alpha)/(1 - abar)
 *   fixed_large_variance = [var_1, beta_1, ..., beta_{T-1}] and its log (ModelVarType.FIXED_LARGE)
 *   snr = abar/(1 - abar)
 * The original computes these with numpy in float64 and casts to fp32 only when they are applied
 * to tensors; callers here do the same. T >= 2 (posterior_log_variance_clipped needs var_1). */
#ifndef RHD_DIFFUSION_SCHEDULE_H
#define RHD_DIFFUSION_SCHEDULE_H
#include "common/err.h"
#include "common/hd.h"

#define RHD_MAX_BETA 0.999
/* Largest T accepted (the tables take 17 doubles per step). */
#define RHD_DIFFUSION_MAX_T 1000000

typedef enum {
    RHD_BETA_LINEAR = 0,
    RHD_BETA_SQUAREDCOS_CAP_V2,
    RHD_BETA_COSINE,
    RHD_BETA_COSINE_LIGHT,
    RHD_BETA_SIGMOID,
    RHD_BETA_COUNT
} rhd_beta_kind;

/* A diffusion chain of T steps. All arrays have T entries and live in one allocation. */
typedef struct rhd_diffusion_schedule {
    int T;              /* steps of this chain */
    int T_orig;         /* steps of the chain it was respaced from (T when not respaced) */
    int *timestep_map;  /* [T] original timestep of each step (identity when not respaced) */
    double *betas, *alphas;
    double *alphas_cumprod, *alphas_cumprod_prev, *alphas_cumprod_next;
    double *sqrt_alphas_cumprod, *sqrt_one_minus_alphas_cumprod, *log_one_minus_alphas_cumprod;
    double *sqrt_recip_alphas_cumprod, *sqrt_recipm1_alphas_cumprod;
    double *posterior_variance, *posterior_log_variance_clipped;
    double *posterior_mean_coef1, *posterior_mean_coef2;
    double *fixed_large_variance, *fixed_large_log_variance;
    double *snr;
    void *mem_;         /* the one allocation */
} rhd_diffusion_schedule;

#ifdef __cplusplus
extern "C" {
#endif
/* "linear", "squaredcos_cap_v2", "cosine", "cosine_light", "sigmoid". */
const char *rhd_beta_kind_name(rhd_beta_kind k);
/* Parse a schedule name; the error lists the valid names. */
int rhd_beta_kind_parse(const char *name, rhd_beta_kind *k, rhd_err *e);

/* The cumulative function a(t), t in [0,1], of a schedule defined by one (not linear: NaN). */
double rhd_beta_alpha_bar_fn(rhd_beta_kind k, double t);
/* betas[T] of a named schedule. Fails (with the offending index and value) unless
 * 1 <= T <= RHD_DIFFUSION_MAX_T and every beta is in (0, 1]; the linear schedule therefore needs
 * T >= 20 (its last beta is 20/T). */
int rhd_beta_schedule(rhd_beta_kind k, int T, double *betas, rhd_err *e);

/* Build the derived tables from betas[T] (copied). timestep_map may be NULL (identity, T_orig = T).
 * Fails unless 2 <= T <= RHD_DIFFUSION_MAX_T and every beta is finite and in (0, 1]. */
int rhd_diffusion_schedule_init(rhd_diffusion_schedule *d, const double *betas, int T, const int *timestep_map,
                                int T_orig, rhd_err *e);
/* A named schedule of T steps. */
int rhd_diffusion_schedule_named(rhd_diffusion_schedule *d, rhd_beta_kind k, int T, rhd_err *e);
void rhd_diffusion_schedule_free(rhd_diffusion_schedule *d);

/* Respacing (respace.py space_timesteps). spec is "N1,N2,..." (split 0..T-1 into equal sections,
 * the first T mod k one step longer, and take N_j steps of section j at offsets round(x), x the
 * running float sum of strides (m-1)/(N_j-1), Python's round half to even; N_j = 1 takes the first,
 * N_j = 0 none) or "ddimN" (range(0, T, s) for the smallest stride s >= 1 that gives exactly N
 * steps). Writes the kept steps in increasing order (malloc'd *steps, *n >= 1). */
int rhd_space_timesteps(int T, const char *spec, int **steps, int *n, rhd_err *e);
/* SpacedDiffusion: keep the steps use[n] (strictly increasing, in 0..base->T-1) of base, with
 * beta'_k = 1 - abar[use_k]/abar[use_{k-1}] (abar before the first = 1); timestep_map composes
 * with base's. n >= 2. */
int rhd_diffusion_schedule_respace(rhd_diffusion_schedule *out, const rhd_diffusion_schedule *base, const int *use,
                                   int n, rhd_err *e);
/* named schedule + optional respacing spec (NULL or "" = none) in one call. */
int rhd_diffusion_schedule_create(rhd_diffusion_schedule *d, rhd_beta_kind k, int T, const char *respacing,
                                  rhd_err *e);

/* DDIM steps, discretisation "dpm" (§3.10): c = floor(T/S); ts = the values T-1, T-1-c, T-1-2c,
 * ... that are > 0, in increasing order. *n is S or S+1 (e.g. T=1000, S=7 gives 8 steps).
 * Requires 1 <= S <= T and at least one step. */
int rhd_ddim_timesteps(int T, int S, int **ts, int *n, rhd_err *e);
/* DDIM coefficients for the steps ts[n] of d (any of the arrays may be NULL):
 * a_k = abar[ts_k]; a_prev_0 = 1, a_prev_k = abar[ts_{k-1}];
 * sigma_k = eta sqrt((1 - a_prev_k)/(1 - a_k)) sqrt(1 - a_k/a_prev_k);
 * dir_k = sqrt(max(0, 1 - a_prev_k - sigma_k^2)) (the radicand is clamped, §3.10). */
int rhd_ddim_coefficients(const rhd_diffusion_schedule *d, const int *ts, int n, double eta, double *a,
                          double *a_prev, double *sigma, double *dir, rhd_err *e);

/* The timestep value the network receives with rescale_timesteps (§3.6): t * 1000 / T_orig,
 * t being an original (un-respaced) timestep. */
static inline double rhd_rescale_timestep(int t_orig, int T_orig) { return (double)t_orig * (1000.0 / T_orig); }
#ifdef __cplusplus
}
#endif

/* Learned-range variance (ModelVarType.LEARNED_RANGE, §3.4): the network's variance output v
 * (intended in [-1, 1]) interpolates the log variance between the clipped posterior log variance
 * (v = -1) and log(beta_t) (v = 1):  log sigma^2 = frac log(beta_t) + (1 - frac) logvar_clipped_t,
 * frac = (v + 1)/2. Per element, in the precision of the caller (the original: fp32 tensors with
 * the two tables cast to fp32). */
RHD_HD static inline float rhd_learned_range_log_variance(float v, float log_beta_t, float log_var_clipped_t) {
    float frac = (v + 1.0f) * 0.5f;
    return frac * log_beta_t + (1.0f - frac) * log_var_clipped_t;
}
RHD_HD static inline double rhd_learned_range_log_variance_f64(double v, double log_beta_t, double log_var_clipped_t) {
    double frac = (v + 1.0) * 0.5;
    return frac * log_beta_t + (1.0 - frac) * log_var_clipped_t;
}
#endif
