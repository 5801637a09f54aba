/* common/train_run.h: the diffusion trainer's run (tools/rhd-train.md; spec diffusion.md §3, §4,
 * §10.7, §10.11): global batch split over ranks and micro-batches, AdamW with optional warm-up,
 * decay and clipping, EMA at several rates, committed checkpoints and bit-identical resume, JSON
 * lines log, loss-curve PNG, progress.
 *
 * Layer: above the models and the formats (it writes files); the tool parses options and calls
 * it. Same structure as the stage-1 fit run (common/fit_run.h): open (fresh or resumed), steps,
 * checkpoint, close.
 *
 * ---- one optimiser step s (0-based) ----------------------------------------------------------
 * Global batch of B slots j = 0..B-1: slot j takes pair perm_e[(s B + j) mod n] of epoch
 * e = (s B + j) / n, perm_e a Fisher-Yates shuffle keyed by (seed, e). Ranks take contiguous
 * blocks of B / W slots, each cut into micro-batches of M slots (gradient accumulation). Every
 * random draw of slot j is keyed by (seed, s, j, pair name) through Philox (common/rng.h):
 * timestep (the sampler's draw), classifier-free drop (probability uncond_p: the condition becomes
 * all ones, §1.4), the conditioning sample's noise, the diffusion noise; dropout inside the network
 * is keyed by (seed, s, first slot of the micro-batch). So neither the number of ranks nor a
 * resume changes the stream; the micro-batch size M does change the dropout masks (keep it fixed).
 * The loss is (1/B) sum_j w_j (mse_j + vb_j); micro-batch gradients are summed in slot order in a
 * separate buffer, then over ranks in rank order (common/dist.h): one process with micro-batch M
 * and W ranks with one micro-batch of M each give the same bits.
 * Then: clip the global gradient norm (optional), AdamW step s+1 at lr(s), EMA updates.
 *
 * ---- the model kinds -------------------------------------------------------------------------
 * A model kind is a small table (rhd_train_model_ops): build from a network config, initialise
 * from the seed, loss and backward of a micro-batch, its parameter table (whose names are the
 * state-dict names of the checkpoint). "base" is the base UNet (train_base.c); "upsample" plugs in
 * the same way. */
#ifndef RHD_COMMON_TRAIN_RUN_H
#define RHD_COMMON_TRAIN_RUN_H
#include <stdint.h>
#include <stdio.h>
#include "common/dist.h"
#include "common/models/diffusion.h"
#include "common/params.h"
#include "common/train_data.h"

#define RHD_TRAIN_MAX_EMA 8

typedef enum { RHD_DECAY_NONE = 0, RHD_DECAY_LINEAR = 1, RHD_DECAY_COSINE = 2 } rhd_lr_decay;

/* One micro-batch as the loop hands it to a model. */
typedef struct rhd_train_mb {
    int n;                   /* items */
    int first_slot;          /* global slot of item 0 */
    const int *pair;         /* [n] pair index */
    const int *t;            /* [n] timesteps */
    const double *w;         /* [n] loss weights already multiplied by n / B */
    const int *uncond;       /* [n] 1: the null condition */
    const uint64_t *key;     /* [n] per-item keys (seed, step, slot, pair name) */
    uint32_t step;           /* optimiser step s */
    uint64_t seed;
    rhd_train_data *data;
} rhd_train_mb;

/* What a test can ask a model to copy out of a micro-batch (host arrays, malloc'd by the model). */
typedef struct rhd_train_trace {
    float *x0, *eps, *tm, *ref, *F[3], *out;
    float *low;   /* upsample: the last item's low-res condition as the network read it [C, r, 3r] */
    int64_t samples; /* upsample: render samples marched by the last item */
} rhd_train_trace;

typedef struct rhd_train_model rhd_train_model;
typedef struct rhd_train_model_ops {
    const char *kind;                 /* "base" */
    const char *diffusion_json;       /* the "diffusion" object of rhd.config */
    /* Build from a network config (JSON text, may be NULL: the default preset; preset names one),
     * with gradients, on ctx. */
    rhd_train_model *(*create)(const char *json, const char *preset, double dropout, rhd_ctx *ctx, rhd_err *e);
    void (*init)(rhd_train_model *m, uint64_t seed);        /* fresh parameters */
    rhd_params *(*params)(rhd_train_model *m);
    char *(*config_json)(const rhd_train_model *m);         /* "model" of rhd.config (malloc'd) */
    int (*T)(const rhd_train_model *m);                     /* diffusion steps */
    void (*setup_data)(const rhd_train_model *m, rhd_train_data *d, rhd_downsample down, size_t cache);
    size_t (*arena_bytes)(rhd_train_model *m, int n);       /* activation memory at micro-batch n */
    /* Loss and backward of a micro-batch: parameter gradients += into params()->grad; terms[n]. */
    int (*micro_step)(rhd_train_model *m, const rhd_train_mb *mb, rhd_diffusion_terms *terms, rhd_err *e);
    void (*free)(rhd_train_model *m);
    /* Optional (NULL: none). Check the kind's own per-pair inputs of pairs i with i % stride == first
     * before the first step (after the pairs themselves), -1 with a message naming the file. */
    int (*validate)(rhd_train_model *m, const rhd_train_data *d, int first, int stride, rhd_err *e);
    /* Optional (NULL: none). The kind's own options that decide the numbers, as a JSON object
     * (malloc'd text): its members join rhd.config's "train" object, so that --resume refuses
     * another value of any of them. */
    char *(*train_keys)(const rhd_train_model *m);
    /* Optional (NULL: the kind predicts only what diffusion_json says). Train it to predict pred
     * (rhd_pred_kind) instead; -1 with a message when the kind cannot. */
    int (*set_pred)(rhd_train_model *m, int pred, rhd_err *e);
    /* Check a network config (JSON text of n bytes over the preset, named `name` in messages) as
     * create would take it, without building anything. */
    int (*check_config)(const char *json, size_t n, const char *preset, const char *name, rhd_err *e);
} rhd_train_model_ops;
struct rhd_train_model {
    const rhd_train_model_ops *ops;
    rhd_train_trace *trace;           /* NULL, or filled by micro_step (tests) */
};
extern const rhd_train_model_ops rhd_train_base_ops;
/* "base" (and later "upsample"); NULL for another name. */
const rhd_train_model_ops *rhd_train_model_kind(const char *name);

typedef struct rhd_train_cfg {
    const char *dir;                  /* the run folder */
    const char *tool;                 /* rhd.tool */
    const char *model;                /* "base" */
    const char *model_json;           /* network config text (NULL: preset) */
    const char *preset;               /* "official" (default), "small" */
    const char *init;                 /* initial weights file (NULL: from the seed) */
    uint64_t seed;
    int64_t steps;                    /* optimiser steps in all */
    int batch, micro;                 /* global batch B, micro-batch M (0: B / W) */
    double lr, beta1, beta2, eps, weight_decay;
    int64_t warmup;                   /* linear warm-up steps (0: none) */
    rhd_lr_decay decay;
    int64_t decay_steps;              /* steps of the decay after the warm-up (0: to `steps`) */
    double lr_min;
    double clip;                      /* max global gradient norm (0: none) */
    double ema[RHD_TRAIN_MAX_EMA];
    int nema;
    double uncond_p;
    double dropout;                   /* < 0: the config's */
    int pred;                         /* rhd_pred_kind the network learns; -1: the kind's (base eps) */
    rhd_tsampler_kind tsampler;
    int64_t save_every, log_every;
    int keep;                         /* also keep step-%07d.safetensors at every save */
    int resume;
    rhd_downsample down;
    size_t cache_bytes;
    int progress;                     /* progress on stderr (rank 0) */
} rhd_train_cfg;

typedef struct rhd_train_run rhd_train_run;

#ifdef __cplusplus
extern "C" {
#endif
void rhd_train_cfg_init(rhd_train_cfg *c);
/* The learning rate of step s (0-based): warm-up lr (s+1)/warmup, then constant or decaying to
 * lr_min over decay_steps (linear, or cosine: lr_min + (lr - lr_min)(1 + cos(pi k/K))/2). */
double rhd_train_lr(const rhd_train_cfg *c, int64_t s);
/* Open a run: build the model, validate the data (each rank its share, any failure stops all),
 * fresh or resumed from dir/checkpoint.safetensors (the same options required). */
rhd_train_run *rhd_train_open(const rhd_train_cfg *cfg, rhd_train_data *data, rhd_ctx *ctx, const rhd_dist *dist,
                              rhd_err *e);
/* Train to cfg->steps, checkpointing every save_every and at the end. */
int rhd_train_execute(rhd_train_run *run, rhd_err *e);
/* One optimiser step (exposed for tests): returns the global loss. */
int rhd_train_step(rhd_train_run *run, double *loss, rhd_err *e);
int64_t rhd_train_steps_done(const rhd_train_run *run);
rhd_train_model *rhd_train_run_model(rhd_train_run *run);
void rhd_train_close(rhd_train_run *run);
/* Write / read the checkpoint of a run (rank 0 writes). */
int rhd_train_save(rhd_train_run *run, rhd_err *e);
#ifdef __cplusplus
}
#endif
#endif
