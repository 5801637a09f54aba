/* common/sample_run.h: what rhd-sample runs, as a library: a base or upsampler checkpoint loaded
 * into its network and diffusion schedule (the contract of formats/checkpoint.md), the portrait
 * features read and checked, and one batch of portraits sampled with the samplers of
 * common/models/sampler.h: the conditional denoiser with the null condition for guidance (§1.4,
 * §3.9), the conditioning sample of §1.4, and the noise of every draw from Philox keyed by the
 * portrait's name or from a noise file (formats/noise.md), optionally recorded.
 *
 * Spec: shared/spec/diffusion.md §1.4, §3.3-§3.10, §5.5, §6, §10.5, §10.6. Layouts: a batch's
 * triplanes are rolled [B, C, R, 3R] (the networks' layout); the host results too.
 * Files: sample_run.c (models, features, the batch loop), sample_noise.c (noise files). */
#ifndef RHD_SAMPLE_RUN_H
#define RHD_SAMPLE_RUN_H
#include <stdint.h>
#include "common/models/sampler.h"
#include "common/models/unet.h"
#include "common/models/upsampler.h"
#include "formats/safetensors.h"

typedef enum { RHD_STAGE_BASE = 0, RHD_STAGE_UPSAMPLE = 1 } rhd_sample_stage;

/* A checkpoint ready to sample. */
typedef struct rhd_sample_model {
    rhd_sample_stage stage;
    rhd_unet *unet;             /* the base network (stage base) */
    rhd_upsampler *ups;         /* the upsampler (stage upsample) */
    rhd_beta_kind beta;         /* diffusion: cosine_light 1000 (base), sigmoid 100 (upsampler) */
    int T;
    rhd_pred_kind pred;
    rhd_var_kind var;
    double train_time_scale;    /* diffusion.time_scale of the checkpoint (0: rescaled) */
    int C, C_out;               /* channels of x and of the network output */
    int R;                      /* plane side of the base network (0 for the upsampler: any) */
    int factor;                 /* the upsampler: its training's train.factor (absent: the original's 4) */
    int latent_ch, latent_size; /* the portrait latent ref [latent_ch, L, L] */
    int feat_ch[3], feat_size[3];
    rhd_unet_noise cond_noise;  /* the §1.4 noise kind of ref (the base config's; uniform) */
    char *path;
    char sha256[65];
    char weights[16];           /* the tensors used: "ema", "model", "ema1", ... */
    long long step;             /* rhd.step */
} rhd_sample_model;

/* Load path as `stage`: rhd.kind checkpoint (or none: a converted file), rhd.model base/upsample
 * (another is an error naming both), rhd.config per the contract ("model" + "diffusion", or the
 * whole object as the network config), weights NULL/"auto" (ema.* when present, else the
 * parameters), "ema", "model" or "emaK" (the K-th further EMA rate, ema1.*). Every tensor of the
 * chosen set is checked by name and shape; a tensor under that prefix that the config lacks is an
 * error. Values must be finite. */
/* --weights W: "model" (*ema = -1), "ema" (0) or "emaK" (K, 1..99); else an error naming it. */
int rhd_sample_weights_parse(const char *w, int *ema, rhd_err *e);
int rhd_sample_model_load(rhd_sample_model *m, const char *path, rhd_sample_stage stage, const char *weights,
                          rhd_ctx *ctx, rhd_err *e);
void rhd_sample_model_free(rhd_sample_model *m);

/* One portrait's conditioning (host): moments [2 latent_ch, L, L]; F[i] [feat_ch[i], S_i, S_i]
 * (the base only). */
typedef struct rhd_sample_cond {
    float *moments;
    float *F[3];
} rhd_sample_cond;
/* Read a features file (formats/features.md) and check its shapes against the models (base and
 * ups may each be NULL). Errors name the file and the tensor. */
int rhd_sample_cond_read(const char *path, const rhd_sample_model *base, const rhd_sample_model *ups,
                         rhd_sample_cond *c, rhd_err *e);
void rhd_sample_cond_free(rhd_sample_cond *c);

/* --- noise files (formats/noise.md, sample_noise.c) ------------------------------------------ */
/* Stage prefix of the tensor names: "" (base: x_T, z.<k>, u) or "up." (upsampler). */
const char *rhd_noise_prefix(rhd_sample_stage s);
/* The rows of names[n] in a noise file: by its rhd.names list when present, else index[i]. Checks
 * that every tensor the stage needs (x_T, z.0..z.<nsteps-1>, and u unless need_u is 0) is there,
 * F32, of shape [P, ...tail] with every row < P: errors name the file and the tensor. */
int rhd_noise_file_rows(const rhd_st *st, rhd_sample_stage s, int nsteps, const int64_t x_tail[3],
                        const int64_t u_tail[3], int need_u, const char *const *names, const int *index, int n,
                        int *rows, rhd_err *e);

/* The noise actually used, gathered by row and written as a noise file. */
typedef struct rhd_noise_record {
    int P;               /* rows */
    char **names;        /* [P] (owned copies) */
    int n, cap;
    struct rhd_noise_rec_t {
        char name[40];
        int64_t shape[4]; /* [P, tail] */
        float *data;      /* P * row floats, zero where not sampled */
    } *t;
} rhd_noise_record;
void rhd_noise_record_init(rhd_noise_record *r, const char *const *names, int P);
/* Store row `row` (row_n floats, host) of tensor `name` with the given tail shape. */
void rhd_noise_record_put(rhd_noise_record *r, const char *name, const int64_t tail[3], int row, const float *src,
                          int64_t row_n);
int rhd_noise_record_write(const rhd_noise_record *r, const char *path, const char *tool, rhd_err *e);
void rhd_noise_record_free(rhd_noise_record *r);

/* --- sampling ------------------------------------------------------------------------------- */

/* How a stage samples (rhd_sample_opts_init gives the original's choices for the stage). */
typedef struct rhd_sample_opts {
    rhd_sampler_kind kind;
    int steps;               /* ddim-dpm: S; ddim/ddpm: respace to this many uniformly spaced steps
                              * (0: the whole chain) unless respace is given */
    const char *respace;     /* ddim/ddpm: a respacing spec ("ddim50", "10,20") */
    double eta;              /* base 1, upsampler 0 */
    double guidance;         /* base 1.3, upsampler 1 */
    int clip;                /* 1 */
    double time_scale;       /* <= 0: 1000/T (the original's sampling), else the factor */
    int R;                   /* the upsampler's output side (0: its factor x the low-resolution side) */
    rhd_unet_noise cond_noise; /* the §1.4 noise kind of ref */
    int low_fp16;            /* upsampler: round the low-res condition to fp16 first, as the
                              * original's LR/<name>.npy files hold it (1, the default) */
    /* noise: file (rows per item) or Philox (seed, keys from the names); record may be NULL */
    uint64_t seed;
    const rhd_st *noise;
    rhd_noise_record *record;
} rhd_sample_opts;
void rhd_sample_opts_init(rhd_sample_opts *o, const rhd_sample_model *m);

/* A stage's plan: the sampling schedule (respaced where asked) and the steps it visits. */
typedef struct rhd_sample_plan {
    rhd_diffusion_schedule sched;
    rhd_sampler_opts so;
    int nsteps;
    int *steps;              /* chain steps in execution order */
} rhd_sample_plan;
int rhd_sample_plan_init(rhd_sample_plan *p, const rhd_sample_model *m, const rhd_sample_opts *o, rhd_err *e);
void rhd_sample_plan_free(rhd_sample_plan *p);

/* One portrait of a batch. */
typedef struct rhd_sample_item {
    const char *name;           /* keys the Philox noise */
    const rhd_sample_cond *cond;
    const float *low;           /* upsampler: the base sample, rolled [C, r, 3r] (host) */
    int r;                      /* its plane side */
    int in_row, rec_row;        /* the rows in the noise file / the record (-1: none) */
    float *traj;                /* NULL, or host [nsteps, C, R, 3R]: the clipped x0 after each step */
} rhd_sample_item;

/* Sample a batch of B portraits into out (host, [B, C, R, 3R]; R = the base network's side or
 * o->R for the upsampler). Returns 0, or -1 with e set. */
int rhd_sample_batch(rhd_ctx *ctx, const rhd_sample_model *m, const rhd_sample_opts *o, const rhd_sample_plan *p,
                     const rhd_sample_item *items, int B, float *out, rhd_err *e);
/* The output side of a stage for an item of low-resolution side r. */
int rhd_sample_out_side(const rhd_sample_model *m, const rhd_sample_opts *o, int r);
/* ref (host, [latent_ch, L, L]) = mean + exp(0.5 clamp(logvar, -30, 20)) * u, as §1.4. */
void rhd_sample_ref_from_u(float *ref, const float *moments, const float *u, int C, int L);
#endif
