/* common/models/sampler.h: the diffusion samplers as functions of a denoise callback, shared by the
 * base model and the upsampler (sd.cpp's sample_*(model, x, sigmas) split: network, schedule and
 * stepper apart), and classifier-free guidance as a wrapper callback.
 *
 * Mirrors RodinHD's pretrained_diffusion/ddim.py (DDIMSampler.sample / p_sample_ddim, discretisation
 * "dpm") and gaussian_diffusion.py (p_sample_loop, ddim_sample_loop). Spec:
 * shared/spec/diffusion.md §3.8-§3.10, §10.5, §10.6.
 *
 * Samplers (x [B, C, HW] on ctx's backend; the callback returns out [B, C_out, HW]):
 *   RHD_SAMPLER_DDIM_DPM  DDIMSampler: steps ts = rhd_ddim_timesteps(T, S) (S or S+1 of them),
 *                         a_prev_0 = 1; per step, in fp32 (§10.5): sa = sqrtf(fp32 a), s1ma =
 *                         fp32(sqrt(1 - a) in float64), sap = sqrtf(fp32 a_prev), sig = fp32(sigma),
 *                         dir = sqrtf(max(0, (1 - fp32 a_prev) - sig*sig)); x0-model eps from the
 *                         unclipped x0 with fp32(sqrt(1/abar)), fp32(sqrt(1/abar - 1)).
 *   RHD_SAMPLER_DDIM      GaussianDiffusion.ddim_sample over every step of the chain s (respace it
 *                         with "ddimN" or "N" for uniform spacing): abar_prev from the table, sigma
 *                         = eta sqrt((1-ap)/(1-a)) sqrt(1 - a/ap) in fp32, eps re-derived from the
 *                         clipped x0, no noise at t = 0.
 *   RHD_SAMPLER_DDPM      p_sample over every step of s: posterior mean with the (clipped) x0,
 *                         variance learned range (the v channels) or fixed large, no noise at t = 0.
 * The network sees rhd_diffusion_model_t(s, t, time_scale) (timestep_map, then the scale).
 *
 * Noise (§10.6): draw 0 is x_T (skipped when x_T_given), then draw j+1 is the z of the j-th step
 * executed (one tensor of the real batch shape [B, C, HW] at EVERY step, also where sigma = 0),
 * so an external noise source is consumed in the original's order. rhd_noise_philox draws item b's
 * elements from (key_b, RHD_STREAM(RHD_STREAM_DIFFUSION, draw), element index): a sample does not
 * depend on its batch, the thread count or the backend. rhd_noise_external hands out given host
 * tensors (draw d = tensors[d]). */
#ifndef RHD_MODELS_SAMPLER_H
#define RHD_MODELS_SAMPLER_H
#include "common/models/diffusion.h"

/* The network: out [B, C_out, HW] = model(x [B, C, HW], t_model[B]). 0 or -1 with e set. */
typedef int (*rhd_denoise_fn)(void *user, rhd_ctx *ctx, float *out, const float *x, int B, const float *t_model,
                              rhd_err *e);
/* Noise: out [B, n] (device memory of ctx) = draw number `draw`. */
typedef int (*rhd_noise_fn)(void *user, rhd_ctx *ctx, float *out, int draw, int B, int64_t n, rhd_err *e);
/* After each step: k counts steps executed (0..nsteps-1), t the chain step, x the new sample and
 * x0 the clipped x0 prediction (both [B, C, HW] on ctx). */
typedef void (*rhd_step_fn)(void *user, int k, int nsteps, int t, const float *x, const float *x0);

typedef enum { RHD_SAMPLER_DDIM_DPM = 0, RHD_SAMPLER_DDIM = 1, RHD_SAMPLER_DDPM = 2 } rhd_sampler_kind;
/* "ddim-dpm", "ddim", "ddpm" */
int rhd_sampler_kind_parse(const char *name, rhd_sampler_kind *k, rhd_err *e);
const char *rhd_sampler_kind_name(rhd_sampler_kind k);

typedef struct {
    rhd_sampler_kind kind;
    int steps;          /* DDIM dpm: S (default 10); ignored otherwise (respace the chain instead) */
    double eta;         /* DDIM: 1 for the base, 0 for the upsampler */
    int clip;           /* clamp x0 to [-1, 1] (default 1) */
    rhd_pred_kind pred; /* eps (base), xstart (upsampler), v */
    rhd_var_kind var;   /* learned_range: C_out = 2C (DDPM reads v); fixed_large: C_out = C */
    double time_scale;  /* <= 0: 1000/T_orig (rescale_timesteps); the upsampler's training scale is 1 */
    int C;              /* channels of x */
    int64_t HW;         /* positions per channel */
    int x_T_given;      /* x already holds x_T: no draw 0 */
    rhd_denoise_fn model;
    void *model_user;
    rhd_noise_fn noise;
    void *noise_user;
    rhd_step_fn on_step; /* may be NULL */
    void *step_user;
} rhd_sampler_opts;

/* Defaults: DDIM dpm, S = 10, eta = 0, clip on, eps, learned range, time_scale 0 (1000/T_orig). */
void rhd_sampler_opts_init(rhd_sampler_opts *o);
/* Runs the sampler on x [B, C, HW] (ctx memory) in place: x_T in (when given) or drawn, the sample
 * out. Returns 0, or -1 with e set (a callback's error, bad options). */
int rhd_sample(rhd_ctx *ctx, const rhd_diffusion_schedule *s, const rhd_sampler_opts *o, float *x, int B, rhd_err *e);
/* The chain steps the sampler visits, in execution order (malloc'd, *n entries). */
int rhd_sampler_steps(const rhd_diffusion_schedule *s, const rhd_sampler_opts *o, int **t, int *n, rhd_err *e);

/* --- noise sources ---------------------------------------------------------------------------- */
typedef struct {
    const uint64_t *keys; /* [B] one Philox key per batch item (rhd_noise_key) */
} rhd_noise_philox_src;
int rhd_noise_philox(void *user, rhd_ctx *ctx, float *out, int draw, int B, int64_t n, rhd_err *e);
/* A key from the run's seed and an item's name (e.g. the portrait): FNV-1a of the name mixed with
 * the seed by splitmix64. */
uint64_t rhd_noise_key(uint64_t seed, const char *name);

typedef struct {
    const float *const *draws; /* [n_draws] host tensors of B*n floats each */
    int n_draws;
    int64_t numel;             /* elements of each (B*n expected) */
} rhd_noise_external_src;
int rhd_noise_external(void *user, rhd_ctx *ctx, float *out, int draw, int B, int64_t n, rhd_err *e);

/* --- classifier-free guidance (§3.9) ---------------------------------------------------------- */

/* The conditional network: null_cond[b] = 1 runs item b with the null condition. */
typedef int (*rhd_denoise_cond_fn)(void *user, rhd_ctx *ctx, float *out, const float *x, int B, const float *t_model,
                                   const unsigned char *null_cond, rhd_err *e);
typedef struct {
    rhd_denoise_cond_fn model;
    void *user;
    double scale;    /* s: 1.3 for the base; s == 1 calls the model once, unguided */
    int C_guided;    /* leading output channels guided (the base: the 32 eps channels; the
                      * upsampler's x0 model: all) */
    int C_out;       /* output channels */
    int64_t HW;
    int C;           /* channels of x */
    /* scratch (ctx memory), grown on demand; freed by rhd_cfg_free */
    float *x2, *o2;
    int64_t cap_x, cap_o;
    unsigned char *nulls;
    int cap_b;
} rhd_cfg;
/* An rhd_denoise_fn (user = rhd_cfg *): the batch [x; x] with conditions [cond; null], then
 * g = u + s (c - u) on the guided channels, the other channels of the conditional half. */
int rhd_cfg_denoise(void *cfg, rhd_ctx *ctx, float *out, const float *x, int B, const float *t_model, rhd_err *e);
void rhd_cfg_free(rhd_cfg *cfg, rhd_ctx *ctx);
#endif
