/* common/upsampler_train.h: one training step of the TriplaneUpsampler as a library
 * function (spec diffusion.md §5.4, §5.6, §3.3, §3.6, §7.5, §7.16; upsample_train_util.py), for
 * rhd-train --model upsample to call per micro-batch.
 *
 * Per sample b of a micro-batch of N:
 *   low_b  = degrade(hr_b) (common/degrade.h; plan drawn from (deg_seed, deg_stream, b << 32)),
 *            [3,C,R/sf,R/sf], or the caller's precomputed planes `low` (the original's
 *            --low_res_root, spec §5.6), rolled to the network's condition bit for bit (the
 *            network resizes it per plane)
 *   eps    = rhd_diffusion_train_noise(keys, step);  x_t = q_sample(hr, t, eps)
 *   x0_hat = upsampler(x_t, t_model, ref, low), t_model = rhd_diffusion_model_t(t, time_scale)
 *            (raw t in training by default, §3.6)
 *   L_rec  = mean (x0_hat - hr)^2                         (x0 prediction, weight 1)
 *   L_rend = render loss of x0_hat (render_loss.h) averaged over the sample's patches, when the
 *            sample has render targets: the occupancy grid is warmed up on x0_hat, then each patch
 * The micro-batch loss is (1/N) sum_b (L_rec,b + L_rend,b); its gradient times `grad_scale` is
 * ACCUMULATED (+=) into every parameter gradient of the model (zero them once per optimiser step;
 * grad_scale = 1/micro-batches for accumulation). The decoder and LPIPS stay frozen.
 *
 * Memory: hr and ref are host arrays (hr [N,3,C,R,R] PLANES layout, the fitted files' order; ref
 * [N,latent_ch,S,S]); everything else lives on the model's context. */
#ifndef RHD_UPSAMPLER_TRAIN_H
#define RHD_UPSAMPLER_TRAIN_H
#include <stdint.h>
#include "common/degrade.h"
#include "common/models/diffusion_schedule.h"
#include "common/render_loss.h"
#include "common/models/upsampler.h"

typedef struct rhd_ups_train_opts {
    rhd_degrade_kind degrade;    /* normal (strong, none) */
    int sf;                      /* 4: the condition is R/sf */
    double time_scale;           /* RHD_TIME_SCALE_RAW (1): the original's training; 0: rescaled */
    int render_clamp;            /* 0: the decoder reads x0_hat unclamped (the original, the default);
                                  * 1: clamp(x0_hat, -1, 1), as rhd-fit's renderer reads its triplanes */
} rhd_ups_train_opts;

/* One patch of the rendering loss: the view's camera at its ds, the patch origin and its GT. */
typedef struct rhd_ups_render_target {
    rhd_render_camera cam;
    int x0, y0;
    const float *gt;             /* (P*P, 3) host */
} rhd_ups_render_target;

/* One micro-batch. */
typedef struct rhd_ups_batch {
    int N;
    const float *hr;             /* [N,3,C,R,R] host */
    const float *ref;            /* [N,latent_ch,S,S] host */
    const int *t;                /* [N] timesteps 0..T-1 */
    const uint64_t *noise_keys;  /* [N] rhd_diffusion_train_noise keys */
    uint32_t step;               /* the noise draw's step */
    uint64_t deg_seed, deg_stream;
    const float *low;            /* [N,3,C,R/sf,R/sf] host: the condition as given (no degradation
                                    drawn); NULL: synthesised from hr */
    uint64_t grid_seed;          /* occupancy-grid updates of the render loss */
    const rhd_ups_render_target *targets; /* [N * per_sample] or NULL: no render loss */
    int per_sample;              /* patches per sample (render loss count) */
    float grad_scale;            /* 1, or 1/micro-batches */
    float *trace_low;            /* NULL, or [N,C,R/sf,3R/sf] host: receives the condition the network
                                    read (copied back from its input buffer; tests) */
} rhd_ups_batch;

typedef struct rhd_ups_step_out {
    double loss, rec, render, l1, lpips; /* micro-batch means */
    int64_t samples;             /* marched render samples */
} rhd_ups_step_out;

typedef struct rhd_ups_trainer {
    rhd_ctx *ctx;
    rhd_upsampler *model;                 /* borrowed, allocated with gradients */
    const rhd_diffusion_schedule *sched;  /* borrowed: T = 100 sigmoid */
    rhd_render_loss *rl;                  /* borrowed, NULL: no render loss */
    rhd_ups_train_opts o;
} rhd_ups_trainer;

#ifdef __cplusplus
extern "C" {
#endif
void rhd_ups_train_opts_default(rhd_ups_train_opts *o);
void rhd_ups_trainer_init(rhd_ups_trainer *tr, rhd_upsampler *model, const rhd_diffusion_schedule *sched,
                          rhd_render_loss *rl, const rhd_ups_train_opts *o);
/* Checks the sizes (R a multiple of sf and of the network's 2^(levels-1), the render loss's
 * decoder channels = in_ch); -1 with a message. R is the HR plane side. */
int rhd_ups_train_check(const rhd_ups_trainer *tr, int R, rhd_err *e);
/* One micro-batch at plane side R: forward, losses, backward (see above). Returns the loss. */
double rhd_ups_train_step(rhd_ups_trainer *tr, const rhd_ups_batch *b, int R, rhd_ups_step_out *out);
#ifdef __cplusplus
}
#endif
#endif
