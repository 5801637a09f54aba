/* common/models/diffusion.h: the Gaussian diffusion as pure functions over tensors: the forward
 * process, the training terms (the base's hybrid loss, the upsampler's x0 MSE) with their gradient
 * with respect to the network output, the timestep fed to the network, and the training timestep
 * samplers (uniform, loss-second-moment). The samplers are in sampler.h.
 *
 * Mirrors RodinHD's pretrained_diffusion/gaussian_diffusion.py (q_sample, training_losses with
 * LossType.RESCALED_MSE / MSE, ModelVarType.LEARNED_RANGE / FIXED_LARGE), respace.py
 * (_WrappedModel: timestep_map and rescale_timesteps) and resample.py (UniformSampler,
 * LossSecondMomentResampler). Spec: shared/spec/diffusion.md §3.3-§3.7, §10.11.
 *
 * Precision (the original's): tables are float64 (diffusion_schedule.h); each per-sample
 * coefficient is the float64 table entry rounded to fp32 (_extract_into_tensor), and the element
 * math is fp32 (kernels/diffusion.h). Tensors live on ctx's backend; t, w and the returned terms
 * are host arrays. Layout: x [B, C, HW]; the network output [B, C_out, HW] with C_out = 2C under a
 * learned variance (prediction channels first, then v) and C otherwise. */
#ifndef RHD_MODELS_DIFFUSION_H
#define RHD_MODELS_DIFFUSION_H
#include <stdint.h>
#include "common/backend.h"
#include "common/err.h"
#include "common/models/diffusion_schedule.h"
#include "kernels/diffusion.h"

/* "eps" ("noise"), "xstart", "v" / "learned_range", "fixed_large" */
int rhd_pred_kind_parse(const char *name, rhd_pred_kind *k, rhd_err *e);
const char *rhd_pred_kind_name(rhd_pred_kind k);
int rhd_var_kind_parse(const char *name, rhd_var_kind *k, rhd_err *e);
const char *rhd_var_kind_name(rhd_var_kind k);

/* fp32 of a float64 table entry (torch's .float() of the extracted value) */
static inline float rhd_f32(double v) { return (float)v; }

/* The value the network receives for step t of the chain s (§3.6): fp32(timestep_map[t]) *
 * fp32(scale), scale = 1000/T_orig with rescale_timesteps (pass scale <= 0 for that default), or
 * any other factor (the upsampler is trained with 1 and sampled with 10 = 1000/100). */
float rhd_diffusion_model_t(const rhd_diffusion_schedule *s, int t, double scale);

/* Time scales of §3.6 for rhd_diffusion_model_t: the original's rescale_timesteps (1000/T_orig:
 * 1 for the base, 10 for the upsampler at sampling) and the raw index the upsampler is trained
 * with (its training path bypasses the rescaling). "Fixed" training uses the default in both. */
#define RHD_TIME_SCALE_RESCALED 0.0
#define RHD_TIME_SCALE_RAW 1.0

/* Training noise eps [B, n] (ctx memory): item b's element i is the standard normal number i of
 * (keys[b], RHD_STREAM(RHD_STREAM_DIFFUSION, RHD_DIFFUSION_TRAIN_DRAW | step)) of common/rng.h
 * (sampling uses the draws below RHD_DIFFUSION_TRAIN_DRAW, sampler.h); keys[b] e.g.
 * rhd_noise_key(seed, name of the training pair), step < 2^31. */
#define RHD_DIFFUSION_TRAIN_DRAW 0x80000000u
void rhd_diffusion_train_noise(rhd_ctx *ctx, float *eps, int B, int64_t n, const uint64_t *keys, uint32_t step);

/* x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps per sample b < B (n = C*HW elements each). */
void rhd_diffusion_q_sample(rhd_ctx *ctx, const rhd_diffusion_schedule *s, float *xt, const float *x0,
                            const float *eps, const int *t, int B, int64_t n);

/* The posterior q(x_{t-1} | x_t, x0) of one element in fp32 (q_posterior_mean_variance): mean,
 * and the fp32 variance and clipped log variance of step t. */
void rhd_diffusion_posterior(const rhd_diffusion_schedule *s, int t, float x0, float xt, float *mean, float *var,
                             float *log_var_clipped);

/* Per-sample terms of the training loss. */
typedef struct {
    double mse;   /* mean over the C*HW elements of (target - prediction)^2 */
    double vb;    /* the VB term in bits, times T/1000 (0 without a learned variance) */
    double loss;  /* mse + vb */
} rhd_diffusion_terms;

/* The training loss of a batch: loss = (1/B) sum_b w_b (mse_b + vb_b) (w NULL: all 1), as
 * training_losses + the training loop's (losses * weights).mean(). Targets: eps (pred eps), x0
 * (pred xstart, the upsampler's L_rec), v. With var = learned range the VB term uses the detached
 * prediction and gives gradient only to the v channels (§3.5). Writes dout [B, C_out, HW] = d loss
 * / d out (NULL: no gradient) and terms[B] (NULL: not wanted); returns the loss. */
double rhd_diffusion_training_loss(rhd_ctx *ctx, const rhd_diffusion_schedule *s, rhd_pred_kind pred,
                                   rhd_var_kind var, float *dout, rhd_diffusion_terms *terms, const float *out,
                                   const float *x0, const float *xt, const float *eps, const int *t, const double *w,
                                   int B, int C, int64_t HW);

/* --- training timestep samplers (§3.7) ---------------------------------------------------------- */

#define RHD_LSM_HISTORY 10
#define RHD_LSM_UNIFORM_PROB 0.001

typedef enum { RHD_TSAMPLER_UNIFORM = 0, RHD_TSAMPLER_LOSS_SECOND_MOMENT = 1 } rhd_tsampler_kind;

/* The sampler state. history [T, 10] (float64, oldest first) and count [T] are the whole state
 * of loss-second-moment (formats/timestep_sampler.md); uniform has none. */
typedef struct {
    rhd_tsampler_kind kind;
    int T;
    double *history; /* [T, RHD_LSM_HISTORY] */
    int32_t *count;  /* [T], 0..RHD_LSM_HISTORY */
} rhd_tsampler;

/* "uniform", "loss-second-moment" */
int rhd_tsampler_kind_parse(const char *name, rhd_tsampler_kind *k, rhd_err *e);
int rhd_tsampler_init(rhd_tsampler *ts, rhd_tsampler_kind kind, int T, rhd_err *e);
void rhd_tsampler_free(rhd_tsampler *ts);
/* p[T]: uniform 1/T; loss-second-moment until every t has 10 losses likewise, then
 * p_t = 0.999 sqrt(mean of the squared history_t)/sum + 0.001/T. */
void rhd_tsampler_probs(const rhd_tsampler *ts, double *p);
/* Draw B timesteps and weights w_b = 1/(T p_t): u = uniform draw (seed, stream, offset + b) of
 * common/rng.h and t = the first index whose running sum of p exceeds u (uniform: floor(u T)). */
void rhd_tsampler_sample(const rhd_tsampler *ts, int B, uint64_t seed, uint64_t stream, uint64_t offset, int *t,
                         double *w);
/* Record the per-sample losses of a step (all ranks' samples, in rank order): history_t shifts
 * left when full. No-op for uniform. */
void rhd_tsampler_update(rhd_tsampler *ts, const int *t, const double *losses, int n);
/* Replace the state with stored arrays (history [T,10], count [T]); checks the counts. */
int rhd_tsampler_load(rhd_tsampler *ts, const double *history, const int32_t *count, int T, rhd_err *e);
#endif
