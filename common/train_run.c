/* common/train_run.c: the trainer's loop (common/train_run.h): open (fresh or resumed), the global
 * batch of a step, micro-batches, the reduction over ranks, clipping, AdamW, EMA, logging. Files
 * (checkpoint, log, loss curve) are in train_files.c. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/cli.h"
#include "common/fs.h"
#include "common/models/sampler.h"
#include "common/rng.h"
#include "common/train_run_internal.h"
#include "kernels/elementwise.h"
#include "kernels/optim.h"

void rhd_train_cfg_init(rhd_train_cfg *c) {
    memset(c, 0, sizeof *c);
    c->tool = "rhd-train " RHD_VERSION, c->model = "base", c->preset = "official";
    c->steps = 1000, c->batch = 3;
    c->lr = 1e-5, c->beta1 = 0.9, c->beta2 = 0.999, c->eps = 1e-8;
    c->ema[0] = 0.9999, c->nema = 1;
    c->uncond_p = 0.2, c->dropout = -1, c->pred = -1;
    c->save_every = 5000, c->log_every = 100;
    c->cache_bytes = (size_t)2 << 30;
    c->progress = 1;
}

double rhd_train_lr(const rhd_train_cfg *c, int64_t s) {
    if (c->warmup > 0 && s < c->warmup) return c->lr * (double)(s + 1) / (double)c->warmup;
    if (c->decay == RHD_DECAY_NONE) return c->lr;
    const int64_t K = c->decay_steps > 0 ? c->decay_steps : c->steps - c->warmup;
    const double k = K > 0 ? fmin(1.0, (double)(s - c->warmup) / (double)K) : 1.0;
    if (c->decay == RHD_DECAY_LINEAR) return c->lr + (c->lr_min - c->lr) * k;
    return c->lr_min + (c->lr - c->lr_min) * 0.5 * (1.0 + cos(M_PI * k));
}

int64_t rhd_train_steps_done(const rhd_train_run *run) { return run->step; }
rhd_train_model *rhd_train_run_model(rhd_train_run *run) { return run->model; }

/* ---- the global batch ---------------------------------------------------------------------- */

/* The Fisher-Yates shuffle of epoch ep (keyed by the seed and the epoch only). */
static void epoch_perm(rhd_train_run *run, int ep) {
    const int n = run->data->n;
    if (run->perm_epoch == ep) return;
    const uint64_t key = rhd_noise_key(run->cfg.seed, "rhd-train/shuffle");
    for (int i = 0; i < n; i++) run->perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        rhd_u32x4 b = rhd_rng_block(key, RHD_STREAM(RHD_STREAM_SHUFFLE, ep), (uint64_t)i);
        int j = (int)(((uint64_t)b.v[0] * (uint64_t)(i + 1)) >> 32);
        int tmp = run->perm[i];
        run->perm[i] = run->perm[j], run->perm[j] = tmp;
    }
    run->perm_epoch = ep;
}

/* Slots of step run->step: pairs, timesteps and weights, drops, keys (the same on every rank). */
static void draw_batch(rhd_train_run *run) {
    const int B = run->cfg.batch, n = run->data->n;
    const uint32_t s = (uint32_t)run->step;
    for (int j = 0; j < B; j++) {
        int64_t g = run->step * B + j;
        epoch_perm(run, (int)(g / n));
        run->pair[j] = run->perm[g % n];
        uint64_t k = rhd_noise_key(run->cfg.seed, run->data->pair[run->pair[j]].name);
        run->key[j] = rhd_noise_key(k ^ ((uint64_t)s << 32 | (uint32_t)j), "rhd-train/slot");
        float u = rhd_rng_uniform(rhd_noise_key(run->cfg.seed, "rhd-train/uncond"), RHD_STREAM(RHD_STREAM_DIFFUSION, s), j);
        run->uncond[j] = u < run->cfg.uncond_p;
    }
    rhd_tsampler_sample(&run->ts, B, rhd_noise_key(run->cfg.seed, "rhd-train/timesteps"),
                        RHD_STREAM(RHD_STREAM_DIFFUSION, s), 0, run->t, run->w);
}

/* ---- open ------------------------------------------------------------------------------------ */

static int alloc_state(rhd_train_run *run, rhd_err *e) {
    const int B = run->cfg.batch, W = run->dist->world;
    if (B % W) return rhd_errf(e, "--batch %d is not a multiple of the %d ranks, expected a multiple", B, W);
    run->per_rank = B / W;
    run->micro = run->cfg.micro > 0 ? run->cfg.micro : run->per_rank;
    if (run->per_rank % run->micro)
        return rhd_errf(e, "--micro-batch %d does not divide the %d slots of a rank (--batch %d over %d ranks), expected a divisor",
                        run->micro, run->per_rank, B, W);
    rhd_params *P = run->P;
    const size_t bytes = sizeof(float) * (size_t)P->total;
    P->m = rhd_buf_alloc(run->ctx, bytes), P->v = rhd_buf_alloc(run->ctx, bytes);
    rhd_buf_zero(run->ctx, P->m, bytes), rhd_buf_zero(run->ctx, P->v, bytes);
    for (int k = 0; k < run->cfg.nema; k++) run->ema[k] = rhd_buf_alloc(run->ctx, bytes);
    if (run->micro < run->per_rank) run->acc = rhd_buf_alloc(run->ctx, bytes);
    run->pair = rhd_xcalloc(B, sizeof(int)), run->t = rhd_xcalloc(B, sizeof(int)), run->uncond = rhd_xcalloc(B, sizeof(int));
    run->w = rhd_xcalloc(B, sizeof(double)), run->mse = rhd_xcalloc(B, sizeof(double));
    run->vb = rhd_xcalloc(B, sizeof(double)), run->loss = rhd_xcalloc(B, sizeof(double));
    run->key = rhd_xcalloc(B, sizeof(uint64_t));
    run->perm = rhd_xcalloc(run->data->n, sizeof(int)), run->perm_epoch = -1;
    return rhd_tsampler_init(&run->ts, run->cfg.tsampler, run->ops->T(run->model), e);
}

/* Fresh parameters: from cfg->init (a checkpoint or converted state dict; its EMA `ema.*` is not
 * used) or from the seed; the EMAs start as copies. */
static int fresh_params(rhd_train_run *run, rhd_err *e) {
    rhd_params *P = run->P;
    if (run->cfg.init) {
        rhd_st *st;
        if (rhd_st_open(run->cfg.init, &st, e)) return -1;
        const char *prefix = rhd_st_find(st, P->info[0].name) ? "" : "decoder.";
        int rc = rhd_nn_load_params(P, st, prefix, e);
        rhd_st_close(st);
        if (rc) return -1;
    } else {
        run->ops->init(run->model, run->cfg.seed);
    }
    for (int k = 0; k < run->cfg.nema; k++) rhd_buf_copy(run->ctx, run->ema[k], P->data, sizeof(float) * (size_t)P->total);
    return 0;
}

static void print_start(rhd_train_run *run) {
    if (run->dist->rank) return;
    const int64_t np = rhd_params_count(run->P);
    const size_t act = run->ops->arena_bytes(run->model, run->micro);
    rhd_info("model %s, %lld parameters (%.1f MB fp32; with gradients, Adam moments and %d EMA: %.1f MB)",
             run->ops->kind, (long long)np, np * 4.0 / 1e6, run->cfg.nema, np * 4.0 * (4 + run->cfg.nema) / 1e6);
    rhd_info("activation memory %.1f MB at micro-batch %d; %d pairs, global batch %d "
             "= %d rank%s x %d micro-batch%s of %d", act / 1e6, run->micro, run->data->n, run->cfg.batch,
             run->dist->world, run->dist->world > 1 ? "s" : "", run->per_rank / run->micro,
             run->per_rank / run->micro > 1 ? "es" : "", run->micro);
}

/* The kind's "diffusion" object with "pred" replaced when pred >= 0 (malloc'd text). */
static char *diffusion_json(const char *kind_json, int pred) {
    cJSON *o = cJSON_Parse(kind_json);
    RHD_ASSERT(cJSON_IsObject(o));
    if (pred >= 0) cJSON_ReplaceItemInObjectCaseSensitive(o, "pred", cJSON_CreateString(rhd_pred_kind_name(pred)));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

rhd_train_run *rhd_train_open(const rhd_train_cfg *cfg, rhd_train_data *data, rhd_ctx *ctx, const rhd_dist *dist,
                              rhd_err *e) {
    rhd_train_run *run = rhd_xcalloc(1, sizeof *run);
    run->cfg = *cfg, run->data = data, run->ctx = ctx, run->dist = dist;
    run->ops = rhd_train_model_kind(cfg->model);
    if (!run->ops) { rhd_errf(e, "--model '%s' is unknown, expected 'base' or 'upsample'", cfg->model); free(run); return NULL; }
    run->model = run->ops->create(cfg->model_json, cfg->preset, cfg->dropout, ctx, e);
    if (!run->model) { free(run); return NULL; }
    run->diffusion_json = diffusion_json(run->ops->diffusion_json, cfg->pred);
    if (cfg->pred >= 0) {
        if (!run->ops->set_pred) {
            rhd_errf(e, "--pred %s: the %s model's prediction is fixed (%s), expected --pred only with --model base",
                     rhd_pred_kind_name(cfg->pred), run->ops->kind, run->ops->diffusion_json);
            goto fail;
        }
        if (run->ops->set_pred(run->model, cfg->pred, e)) goto fail;
    }
    run->P = run->ops->params(run->model);
    run->ckpt_path = rhd_path_join(cfg->dir, "checkpoint.safetensors");
    run->log_path = rhd_path_join(cfg->dir, "train_log.jsonl");
    run->png_path = rhd_path_join(cfg->dir, "loss.png");
    run->ops->setup_data(run->model, data, cfg->down, cfg->cache_bytes);
    if (alloc_state(run, e)) goto fail;
    run->model_json = run->ops->config_json(run->model);
    run->train_json = rhd_train__train_json(run);
    /* every rank checks its share of the pairs; any failure stops all */
    rhd_err de = {0};
    int bad = rhd_train_data_validate(data, dist->rank, dist->world, &de) != 0;
    if (!bad && run->ops->validate) bad = run->ops->validate(run->model, data, dist->rank, dist->world, &de) != 0;
    if (rhd_dist_max_int(dist, bad)) {
        if (bad) *e = de;
        else rhd_errf(e, "another rank found a bad training pair (see its message)");
        goto fail;
    }
    if (cfg->resume ? rhd_train__read_checkpoint(run, e) : fresh_params(run, e)) goto fail;
    if (!dist->rank && rhd_train__log_reopen(run, e)) goto fail;
    print_start(run);
    return run;
fail:
    rhd_train_close(run);
    return NULL;
}

/* ---- one step -------------------------------------------------------------------------------- */

static void log_accumulate(rhd_train_run *run, double gnorm) {
    const int B = run->cfg.batch, T = run->ts.T;
    double s[3] = {0, 0, 0};
    for (int j = 0; j < B; j++) {
        const double v[3] = {run->loss[j] * run->w[j], run->mse[j] * run->w[j], run->vb[j] * run->w[j]};
        const int q = (int)(4 * (int64_t)run->t[j] / T);
        for (int k = 0; k < 3; k++) {
            s[k] += v[k];
            run->lsum[LK_Q + 4 * k + q] += v[k], run->lcnt[LK_Q + 4 * k + q]++;
        }
    }
    for (int k = 0; k < 3; k++) run->lsum[k] += s[k] / B, run->lcnt[k]++;
    run->lsum[LK_GNORM] += gnorm, run->lcnt[LK_GNORM]++;
}

/* This rank's micro-batches: gradients (summed in slot order), terms of its slots. */
static int rank_grads(rhd_train_run *run, rhd_err *e) {
    const int B = run->cfg.batch, M = run->micro, first = run->dist->rank * run->per_rank;
    rhd_params *P = run->P;
    const size_t bytes = sizeof(float) * (size_t)P->total;
    rhd_diffusion_terms terms[M];
    double w[M];
    for (int o = 0; o < run->per_rank; o += M) {
        const int s0 = first + o;
        for (int b = 0; b < M; b++) w[b] = run->w[s0 + b] * M / B;
        rhd_train_mb mb = {.n = M, .first_slot = s0, .pair = run->pair + s0, .t = run->t + s0, .w = w,
                           .uncond = run->uncond + s0, .key = run->key + s0, .step = (uint32_t)run->step,
                           .seed = run->cfg.seed, .data = run->data};
        rhd_buf_zero(run->ctx, P->grad, bytes);
        if (run->ops->micro_step(run->model, &mb, terms, e)) return -1;
        for (int b = 0; b < M; b++) run->mse[s0 + b] = terms[b].mse, run->vb[s0 + b] = terms[b].vb, run->loss[s0 + b] = terms[b].loss;
        if (!run->acc) continue;
        if (o == 0) rhd_buf_copy(run->ctx, run->acc, P->grad, bytes);
        else rhd_add_forward(run->ctx, run->acc, run->acc, P->grad, P->total);
    }
    if (run->acc) rhd_buf_copy(run->ctx, P->grad, run->acc, bytes);
    return 0;
}

int rhd_train_step(rhd_train_run *run, double *loss, rhd_err *e) {
    const int B = run->cfg.batch;
    rhd_params *P = run->P;
    draw_batch(run);
    memset(run->mse, 0, sizeof(double) * B), memset(run->vb, 0, sizeof(double) * B), memset(run->loss, 0, sizeof(double) * B);
    if (rank_grads(run, e)) return -1;
    rhd_dist_sum_f32(run->dist, run->ctx, P->grad, P->total);
    rhd_dist_sum_f64(run->dist, run->mse, B), rhd_dist_sum_f64(run->dist, run->vb, B);
    rhd_dist_sum_f64(run->dist, run->loss, B);
    rhd_tsampler_update(&run->ts, run->t, run->loss, B);
    const double gnorm = run->cfg.clip > 0 ? rhd_clip_grad_norm(run->ctx, P->grad, P->total, run->cfg.clip)
                                           : rhd_grad_norm(run->ctx, P->grad, P->total);
    rhd_adam_cfg ac = {rhd_train_lr(&run->cfg, run->step), run->cfg.beta1, run->cfg.beta2, run->cfg.eps,
                       run->cfg.weight_decay, 1};
    rhd_adam_step(run->ctx, P->data, P->m, P->v, P->grad, P->total, &ac, run->step + 1);
    for (int k = 0; k < run->cfg.nema; k++) rhd_ema_update(run->ctx, run->ema[k], P->data, P->total, run->cfg.ema[k]);
    double l = 0;
    for (int j = 0; j < B; j++) l += run->w[j] * run->loss[j];
    *loss = l / B;
    if (!isfinite(*loss))
        return rhd_errf(e, "step %lld: the loss is %g, expected a finite loss (lower --lr or add --clip-grad)",
                        (long long)run->step, *loss);
    log_accumulate(run, gnorm);
    run->step++;
    return 0;
}

int rhd_train_save(rhd_train_run *run, rhd_err *e) {
    if (run->dist->rank) return 0;
    if (rhd_train__write_checkpoint(run, e)) return -1;
    rhd_err pe = {0};
    if (rhd_train__plot(run, &pe)) rhd_warn("%s: no loss curve written: %s", run->png_path, pe.msg);
    return 0;
}

int rhd_train_execute(rhd_train_run *run, rhd_err *e) {
    const rhd_train_cfg *c = &run->cfg;
    const int64_t start = run->step;
    int rc = 0;
    if (run->step == 0 && !run->dist->rank && rhd_train__write_checkpoint(run, e)) return -1; /* step 0, as the original */
    if (!run->dist->rank && c->progress) rhd_progress_begin(&run->prog, "training", "steps", c->steps - start);
    while (run->step < c->steps && !rc) {
        double loss;
        const double lr = rhd_train_lr(c, run->step);
        rc = rhd_train_step(run, &loss, e);
        if (rc) break;
        rhd_crash_point("step", run->ckpt_path);
        const int last = run->step == c->steps;
        if (!run->dist->rank && (run->step % c->log_every == 0 || last)) rc = rhd_train__log_write(run, lr, e);
        if (!rc && (run->step % c->save_every == 0 || last)) rc = rhd_train_save(run, e);
        if (!run->dist->rank && c->progress) rhd_progress_update(&run->prog, run->step - start);
    }
    if (!run->dist->rank && c->progress) rhd_progress_end(&run->prog);
    return rhd_dist_max_int(run->dist, rc != 0) ? (rc ? rc : rhd_errf(e, "another rank failed (see its message)")) : 0;
}

void rhd_train_close(rhd_train_run *run) {
    if (!run) return;
    for (int k = 0; k < RHD_TRAIN_MAX_EMA; k++)
        if (run->ema[k]) rhd_buf_free(run->ctx, run->ema[k]);
    if (run->acc) rhd_buf_free(run->ctx, run->acc);
    if (run->model) run->ops->free(run->model);
    rhd_tsampler_free(&run->ts);
    free(run->pair), free(run->t), free(run->uncond), free(run->w), free(run->mse), free(run->vb), free(run->loss);
    free(run->key), free(run->perm), free(run->hx), free(run->hloss), free(run->hmse), free(run->hvb);
    free(run->ckpt_path), free(run->log_path), free(run->png_path), free(run->model_json), free(run->train_json);
    free(run->diffusion_json);
    free(run);
}
