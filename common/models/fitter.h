/* common/models/fitter.h: one plan entry of triplane fitting (spec fitting.md §7-§9): a visit of
 * one avatar (or an interleaved group) for `steps` optimiser steps with the shared decoder.
 *
 * Per step k of the visit (k = 0 .. steps-1), for every avatar a of the entry:
 *   - k % update_interval == 0: one occupancy-grid update (§3.4) on a's grid;
 *   - a view from a fresh shuffle of a's training views per epoch; N/nav random rays of it;
 *   - L = L_rgb (MSE, weighted by a's share of the rays) + w_l1 L_l1 + w_tv L_tv (a's clamped
 *     triplane) + share * w_dist L_dist (§7.3), + w_iwc L_iwc once per step (§7.4);
 *   - Adam on each triplane (fresh per visit, betas 0.9/0.99, eps 1e-8, lr from the plan) and on
 *     the decoder (moments persist across visits, eps 1e-15, step t = first_step + k + 1), unless
 *     the decoder is frozen (stage 2, or decoder lr 0).
 * After the last step: the IWC state of each avatar of the entry is F = the mean of the squared
 * decoder gradients of the last fisher_steps steps (1: the original's last batch) and theta* =
 * the decoder parameters. Fisher modes (cfg.fisher_mode):
 *   RHD_FISHER_ORIGINAL   the squared gradient of the full loss (data, regularisers and the IWC
 *                         term itself), as the original: of order 1e-9 per element at the sizes we
 *                         fit, so w_iwc 0.1 gives a penalty gradient ~1e-10, far below the data
 *                         gradient (~3e-5): the term does nothing;
 *   RHD_FISHER_NORMALIZED the squared gradient of the data and regulariser terms only (taken
 *                         before the IWC gradient is added), averaged over the last fisher_steps
 *                         steps (the rays of that many views), then divided per decoder tensor by
 *                         its mean (rhd_fit_fisher_normalize): every tensor's F has mean 1 and
 *                         keeps the relative importance of its elements. w_iwc then means: the
 *                         penalty is w * sum F (theta - theta*)^2, an L2 anchor of average strength
 *                         w per parameter (gradient 2 w F d), independent of the loss's scale.
 *
 * Memory: the avatars' triplanes, views and IWC states are HOST memory; on CUDA a visit moves
 * what it needs to the device at its start (triplanes, training images, the IWC states its
 * penalty uses) and the fitted triplanes back at its end. The decoder lives on the context's side
 * throughout (rhd_params).
 *
 * Collapse (cfg.collapse_opacity > 0): the density can end up empty everywhere (every ray shows
 * the white background) and stay so: the decoder's density is exp(h), so every data-term gradient
 * reaching the triplane carries a factor sigma, and near sigma = 0 it vanishes below Adam's eps
 * (1e-8) while the L1, TV and dist terms do not. The visit tracks the opacity of its training
 * batches (EMA, 0.1 per step); once past max(50, steps/10) steps with the EMA below
 * collapse_opacity it stops early, marks the avatar collapsed and returns 0 (the caller
 * reports it). After the last step an avatar whose eval PSNR is within 0.25 dB of psnr_bg, the
 * PSNR of rendering nothing, is marked collapsed too.
 * Two defaults of stage 2 keep a weak decoder out of that state (deviations from the original):
 * the triplanes' Adam eps is 1e-15 (tri_eps; the original's 1e-8 is above the per-texel data
 * gradient of a nearly empty density, so the data term could not move it), and the regularisers
 * wait for the data term (reg_gate): they act in proportion to the training opacity up to 0.05,
 * so they cannot push an empty density further while the data term is building it up.
 *
 * Randomness: every draw is Philox at a position fixed by (seed, avatar index, entry index, step),
 * so a visit's result depends on nothing but its inputs: resuming at an entry boundary gives the
 * same bits as an uninterrupted run on the CPU. */
#ifndef RHD_MODELS_FITTER_H
#define RHD_MODELS_FITTER_H
#include <stdint.h>
#include "common/models/decoder.h"
#include "common/models/fit_data.h"
#include "common/models/renderer.h"
#include "common/models/plan_types.h"
#include "common/triplane.h"

enum { RHD_FISHER_ORIGINAL = 0, RHD_FISHER_NORMALIZED = 1 };

typedef struct rhd_fit_cfg {
    int C, R;               /* channels and resolution of new triplanes (32, 512) */
    int agg;                /* plane aggregation of a new decoder (RHD_PLANE_MEAN, kernels/triplane.h) */
    int64_t rays;           /* rays per step (8192) */
    double w_l1, w_tv, w_dist, w_iwc_override; /* stage 1: 1e-6, 2e-4, 2e-5; w_iwc from the plan unless override >= 0 */
    int dist_points;        /* 1000 */
    float dist_sigma;       /* 0.004 */
    double dist_inner;      /* 0.001 */
    int update_interval;    /* 16 */
    int mark_untrained;     /* 1 */
    int clamp;              /* 1: forward reads clamp(T, -1, 1) (§4) */
    int fisher_steps;       /* 1: the original's last batch */
    int fisher_mode;        /* RHD_FISHER_ORIGINAL (the original) or RHD_FISHER_NORMALIZED (see above) */
    int iwc_all;            /* 0: an avatar's own state (the original as read, §7.4); 1: every stored state */
    int freeze_decoder;     /* stage 2 */
    double tri_eps;         /* Adam eps of the triplanes: 1e-8 (the original's, stage 1); stage 2: 1e-15 */
    double reg_gate;        /* > 0: the L1, TV and dist weights of an avatar are scaled by min(1, opacity / reg_gate),
                             * opacity = its training-batch opacity EMA so far (0: always full, the original;
                             * stage 2: 0.05). See "Collapse" above */
    double collapse_opacity; /* stage 2: 0.01; 0: no collapse check (stage 1). See "Collapse" above */
    int eval_warmup;        /* 0: the visit's eval uses the visit's grid (stage 1); N: a fresh grid after N
                             * full updates with seed cfg.seed, as rhd-render and the report (stage 2: 16) */
    uint64_t seed;
} rhd_fit_cfg;

/* One avatar taking part in a visit. */
typedef struct rhd_fit_avatar {
    int id;                  /* index in the plan's avatar list (folded into the seed) */
    const char *name;
    rhd_fit_views *train;    /* with images */
    rhd_triplane planes;     /* host [3, C, R, R], updated in place (raw values; cfg.clamp says how they are read) */
    rhd_fit_views *eval;     /* views rendered after the visit with the visit's grid (may be NULL) */
    double psnr;             /* out: mean PSNR over eval (NAN without eval views) */
    double opacity;          /* out: mean training-batch opacity (EMA, 0.1 per step) at the visit's end */
    double psnr_bg;          /* out: mean PSNR of an all-background render of the eval views (NAN without) */
    int collapsed;           /* out: 1 when the collapse check fired (see "Collapse" above) */
} rhd_fit_avatar;

/* IWC states of the avatars (NULL entries: none stored). */
typedef struct rhd_iwc_states {
    int n;            /* number of avatars */
    float **fisher;   /* [n] -> [P.total] or NULL */
    float **optpar;   /* [n] -> [P.total] or NULL */
} rhd_iwc_states;

typedef struct rhd_fit_result {
    double last_mse, last_loss, iwc_loss;
    int64_t samples;  /* decoder samples evaluated in training (kept) */
    int64_t steps;    /* optimiser steps run (fewer than the entry's after a collapse stop) */
    double seconds;
} rhd_fit_result;

#ifdef __cplusplus
extern "C" {
#endif
void rhd_fit_cfg_default(rhd_fit_cfg *c, int stage);
/* A host triplane of cfg's C and R (clamp = cfg's), 0.1*N(0,1) from Philox (seed,
 * RHD_STREAM(RHD_STREAM_TRIPLANE_INIT, id)), then clamped to [-1,1]. */
void rhd_fit_triplane_new(rhd_triplane *t, const rhd_fit_cfg *cfg, int id);
/* The same values into an existing host triplane (any C, R). */
void rhd_fit_triplane_init(rhd_triplane *t, uint64_t seed, int id);
void rhd_iwc_states_init(rhd_iwc_states *s, int n);
void rhd_iwc_states_free(rhd_iwc_states *s);
/* Run one visit; writes the IWC states of the avatars of the entry (allocated as needed).
 * Every avatar's triplane is a host [3,C,R,R] with the decoder's C, all of one R; the visit reads
 * them with cfg->clamp whatever their own flag says. progress: print a line every `log_every`
 * steps (0: never). */
int rhd_fit_visit(rhd_renderer *r, const rhd_fit_cfg *cfg, const rhd_plan *plan, int entry_index,
                  rhd_fit_avatar *av, int nav, rhd_iwc_states *iwc, int log_every, rhd_fit_result *res, rhd_err *e);
/* Mean PSNR of an avatar's views rendered with a grid from the HOST triplane T (read with its
 * clamp flag): warm-up (reset + full updates) when warmup > 0, else the grid as it is.
 * psnr_each [views->n] and render_out [views->n][H*W*3] may be NULL. */
double rhd_fit_eval(rhd_renderer *r, rhd_occgrid *g, const rhd_triplane *T, const rhd_fit_views *views, int warmup,
                    uint64_t seed, double *psnr_each, float *render_out);
/* Mean PSNR of an all-background (white) render of the views: the level of an empty density. */
double rhd_fit_background_psnr(const rhd_fit_views *views);
/* Divide each tensor of a host Fisher F [P->total] by its mean over the tensor's elements (double
 * sum), so it has mean 1; a tensor whose elements are all zero stays zero. Padding between
 * tensors is left as it is. */
void rhd_fit_fisher_normalize(const rhd_params *P, float *F);
/* A seed folded with up to two indices (splitmix64 steps). */
uint64_t rhd_fit_seed(uint64_t seed, uint64_t a, uint64_t b);
#ifdef __cplusplus
}
#endif
#endif
