/* common/train_run_internal.h: the run's state, shared by train_run.c (the loop) and
 * train_files.c (checkpoint, log, loss curve). Not for tools. */
#ifndef RHD_COMMON_TRAIN_RUN_INTERNAL_H
#define RHD_COMMON_TRAIN_RUN_INTERNAL_H
#include "common/log.h"
#include "common/train_run.h"

/* Means over a log interval, the original's logger.logkv_mean. */
enum { LK_LOSS, LK_MSE, LK_VB, LK_Q = 3 /* then loss_q0..3, mse_q0..3, vb_q0..3 */, LK_GNORM = 15, LK_N = 16 };

struct rhd_train_run {
    rhd_train_cfg cfg;
    rhd_train_data *data;
    rhd_ctx *ctx;
    const rhd_dist *dist;
    const rhd_train_model_ops *ops;
    rhd_train_model *model;
    rhd_params *P;
    float *ema[RHD_TRAIN_MAX_EMA];  /* ctx side, like P->data */
    float *acc;                     /* ctx side: micro-batch gradient sum (NULL with one micro-batch) */
    rhd_tsampler ts;
    int64_t step;                   /* optimiser steps done */
    int per_rank, micro;            /* slots per rank, micro-batch */
    /* the step's global batch [B] */
    int *pair, *t, *uncond;
    double *w, *mse, *vb, *loss;
    uint64_t *key;
    int *perm, perm_epoch;          /* the cached epoch shuffle */
    double lsum[LK_N];
    int64_t lcnt[LK_N];
    /* loss curve (every log line) */
    double *hx, *hloss, *hmse, *hvb;
    int nh, caph;
    char *ckpt_path, *log_path, *png_path;
    char *model_json, *train_json;
    char *diffusion_json;           /* the "diffusion" object of rhd.config (the kind's, --pred applied) */
    rhd_progress prog;
};

/* The crash-test hook of the runs (RHD_CRASH_AFTER, common/fit_run.h, which declares it too but
 * pulls in the renderer's headers). */
void rhd_crash_point(const char *what, const char *path);
void rhd_crash_before_write(const char *path);

/* train_files.c */
int rhd_train__write_checkpoint(rhd_train_run *run, rhd_err *e);
int rhd_train__read_checkpoint(rhd_train_run *run, rhd_err *e);
/* Keep the log's lines of steps <= run->step (resume), refilling the loss curve from them. */
int rhd_train__log_reopen(rhd_train_run *run, rhd_err *e);
int rhd_train__log_write(rhd_train_run *run, double lr, rhd_err *e);
int rhd_train__plot(rhd_train_run *run, rhd_err *e);
/* The "train" object of rhd.config (malloc'd JSON) */
char *rhd_train__train_json(const rhd_train_run *run);
#endif
