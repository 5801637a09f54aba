/* common/train_files.c: the trainer's files (formats/checkpoint.md, formats/train_log.md): the
 * checkpoint written atomically and read back on resume, the JSON lines log, the loss curve. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/fs.h"
#include "common/models/sampler.h"
#include "common/plot.h"
#include "common/train_run_internal.h"
#include "formats/params_io.h"
#include "formats/png.h"
#include "formats/safetensors.h"

static const char *const k_decay[] = {"none", "linear", "cosine"};

/* The options that decide the numbers (resume refuses another value of any of them). */
static void add_train_keys(cJSON *o, const rhd_train_run *run) {
    const rhd_train_cfg *c = &run->cfg;
    cJSON_AddStringToObject(o, "model", c->model);
    cJSON_AddNumberToObject(o, "batch", c->batch);
    cJSON_AddNumberToObject(o, "micro_batch", run->micro);
    cJSON_AddNumberToObject(o, "lr", c->lr);
    cJSON_AddNumberToObject(o, "beta1", c->beta1);
    cJSON_AddNumberToObject(o, "beta2", c->beta2);
    cJSON_AddNumberToObject(o, "eps", c->eps);
    cJSON_AddNumberToObject(o, "weight_decay", c->weight_decay);
    cJSON_AddNumberToObject(o, "warmup", (double)c->warmup);
    cJSON_AddStringToObject(o, "decay", k_decay[c->decay]);
    cJSON_AddNumberToObject(o, "decay_steps", (double)(c->decay == RHD_DECAY_NONE ? 0 : c->decay_steps > 0 ? c->decay_steps : c->steps - c->warmup));
    cJSON_AddNumberToObject(o, "lr_min", c->lr_min);
    cJSON_AddNumberToObject(o, "clip_grad", c->clip);
    cJSON_AddItemToObject(o, "ema", cJSON_CreateDoubleArray(c->ema, c->nema));
    cJSON_AddNumberToObject(o, "uncond_p", c->uncond_p);
    cJSON_AddStringToObject(o, "timestep_sampler", c->tsampler == RHD_TSAMPLER_UNIFORM ? "uniform" : "loss-second-moment");
    cJSON_AddStringToObject(o, "downsample", rhd_downsample_name(c->down));
    uint64_t h = 0; /* the pair names in order */
    for (int i = 0; i < run->data->n; i++) h = rhd_noise_key(h, run->data->pair[i].name);
    char hex[20];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    cJSON_AddNumberToObject(o, "pairs", run->data->n);
    cJSON_AddStringToObject(o, "pairs_hash", hex);
}

char *rhd_train__train_json(const rhd_train_run *run) {
    cJSON *o = cJSON_CreateObject();
    add_train_keys(o, run);
    char *own = run->ops->train_keys ? run->ops->train_keys(run->model) : NULL;
    cJSON *k = own ? cJSON_Parse(own) : NULL;
    RHD_ASSERT(!own || cJSON_IsObject(k));
    for (cJSON *it = k ? k->child : NULL; it; it = it->next)
        cJSON_AddItemToObject(o, it->string, cJSON_Duplicate(it, 1));
    cJSON_Delete(k), free(own);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* rhd.config: {"model": ..., "diffusion": ..., "train": {... + steps, save_every, log_every}} (not the
 * rank count: the same numbers on any number of ranks give the same file) */
static char *config_json(const rhd_train_run *run) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "model", cJSON_Parse(run->model_json));
    cJSON_AddItemToObject(o, "diffusion", cJSON_Parse(run->diffusion_json));
    cJSON *t = cJSON_Parse(run->train_json);
    cJSON_AddNumberToObject(t, "steps", (double)run->cfg.steps);
    cJSON_AddNumberToObject(t, "save_every", (double)run->cfg.save_every);
    cJSON_AddNumberToObject(t, "log_every", (double)run->cfg.log_every);
    cJSON_AddItemToObject(o, "train", t);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void ema_prefix(char *buf, size_t n, int k) {
    if (k == 0) snprintf(buf, n, "ema.");
    else snprintf(buf, n, "ema%d.", k);
}

static char *ema_rates(const rhd_train_cfg *c) {
    const size_t cap = 40 * RHD_TRAIN_MAX_EMA;
    char *s = rhd_xcalloc(1, cap);
    for (int k = 0; k < c->nema; k++) {
        char num[32];
        for (int p = 1; p <= 17; p++) { /* the shortest form that reads back exactly: "0.9999" */
            snprintf(num, sizeof num, "%.*g", p, c->ema[k]);
            if (strtod(num, NULL) == c->ema[k]) break;
        }
        size_t used = strlen(s);
        snprintf(s + used, cap - used, "%s%s", k ? "," : "", num);
    }
    return s;
}

int rhd_train__write_checkpoint(rhd_train_run *run, rhd_err *e) {
    rhd_st_writer w;
    rhd_st_writer_init(&w);
    rhd_params *P = run->P;
    rhd_params_to_writer(P, RHD_PBUF_DATA, "", &w);
    rhd_params_to_writer(P, RHD_PBUF_M, "adam.m.", &w);
    rhd_params_to_writer(P, RHD_PBUF_V, "adam.v.", &w);
    for (int k = 0; k < run->cfg.nema; k++) {
        rhd_params view = *P;
        view.data = run->ema[k];
        char pre[16];
        ema_prefix(pre, sizeof pre, k);
        rhd_params_to_writer(&view, RHD_PBUF_DATA, pre, &w);
    }
    if (run->ts.kind == RHD_TSAMPLER_LOSS_SECOND_MOMENT) {
        int64_t sh[2] = {run->ts.T, RHD_LSM_HISTORY}, sc[1] = {run->ts.T};
        rhd_st_add(&w, "train.timestep_sampler.history", RHD_F64, 2, sh, run->ts.history);
        rhd_st_add(&w, "train.timestep_sampler.count", RHD_I32, 1, sc, run->ts.count);
    }
    char step[32], seed[32];
    snprintf(step, sizeof step, "%lld", (long long)run->step);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)run->cfg.seed);
    char *cfg = config_json(run), *rates = ema_rates(&run->cfg);
    rhd_st_set_meta(&w, "rhd.kind", "checkpoint");
    rhd_st_set_meta(&w, "rhd.version", "1");
    rhd_st_set_meta(&w, "rhd.tool", run->cfg.tool);
    rhd_st_set_meta(&w, "rhd.model", run->cfg.model);
    rhd_st_set_meta(&w, "rhd.step", step);
    rhd_st_set_meta(&w, "rhd.seed", seed);
    rhd_st_set_meta(&w, "rhd.ema_rates", rates);
    rhd_st_set_meta(&w, "rhd.timestep_sampler", run->ts.kind == RHD_TSAMPLER_UNIFORM ? "uniform" : "loss-second-moment");
    rhd_st_set_meta(&w, "rhd.config", cfg);
    rhd_st_set_meta(&w, "rhd.device", rhd_ctx_device_label(run->ctx));
    rhd_crash_before_write(run->ckpt_path);
    int rc = rhd_st_write(&w, run->ckpt_path, e);
    rhd_crash_point("checkpoint written", run->ckpt_path);
    if (!rc && run->cfg.keep) {
        char name[64];
        snprintf(name, sizeof name, "step-%07lld.safetensors", (long long)run->step);
        char *path = rhd_path_join(run->cfg.dir, name);
        rc = rhd_st_write(&w, path, e);
        free(path);
    }
    free(cfg), free(rates);
    rhd_st_writer_free(&w);
    return rc;
}

/* The stored config must have the same model and training options as this run. */
static int check_same(rhd_train_run *run, const rhd_st *st, rhd_err *e) {
    const char *kind = rhd_st_meta(st, "rhd.kind"), *model = rhd_st_meta(st, "rhd.model");
    const char *seed = rhd_st_meta(st, "rhd.seed"), *cfg = rhd_st_meta(st, "rhd.config");
    if (!kind || strcmp(kind, "checkpoint") || !model || strcmp(model, run->cfg.model) || !cfg || !seed)
        return rhd_errf(e, "%s: rhd.kind '%s', rhd.model '%s', expected a checkpoint of model '%s' with rhd.config and rhd.seed",
                        st->name, kind ? kind : "(none)", model ? model : "(none)", run->cfg.model);
    if (strtoull(seed, NULL, 10) != run->cfg.seed)
        return rhd_errf(e, "%s: rhd.seed %s, expected --seed %llu (resume with the same options)", st->name, seed,
                        (unsigned long long)run->cfg.seed);
    cJSON *o = cJSON_Parse(cfg), *mine_m = cJSON_Parse(run->model_json), *mine_t = cJSON_Parse(run->train_json);
    int rc = 0;
    cJSON *sm = cJSON_GetObjectItemCaseSensitive(o, "model"), *stt = cJSON_GetObjectItemCaseSensitive(o, "train");
    cJSON *sd = cJSON_GetObjectItemCaseSensitive(o, "diffusion"), *mine_d = cJSON_Parse(run->diffusion_json);
    if (!sm || !cJSON_Compare(sm, mine_m, 1))
        rc = rhd_errf(e, "%s: the network config differs from this run's (--preset, --model-config, --dropout), expected the same to resume", st->name);
    if (!rc && (!sd || !cJSON_Compare(sd, mine_d, 1))) {
        char *a = sd ? cJSON_PrintUnformatted(sd) : NULL;
        rc = rhd_errf(e, "%s: the diffusion is %s in the checkpoint, %s now (--pred), expected the same to resume",
                      st->name, a ? a : "(absent)", run->diffusion_json);
        free(a);
    }
    cJSON_Delete(mine_d);
    for (cJSON *it = mine_t ? mine_t->child : NULL; it && !rc; it = it->next) {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(stt, it->string);
        if (!v) {
            char *b = cJSON_PrintUnformatted(it);
            rc = rhd_errf(e, "%s: training option '%s' is absent in the checkpoint (written by an earlier rhd-train, before "
                          "the option existed; its run computed differently), %s now: expected a checkpoint of this version "
                          "to resume (start over with --force, or finish the run with the version that wrote it)",
                          st->name, it->string, b);
            free(b);
        } else if (!cJSON_Compare(v, it, 1)) {
            char *a = cJSON_PrintUnformatted(v), *b = cJSON_PrintUnformatted(it);
            rc = rhd_errf(e, "%s: training option '%s' is %s in the checkpoint, %s now, expected the same options to resume",
                          st->name, it->string, a, b);
            free(a), free(b);
        }
    }
    cJSON_Delete(o), cJSON_Delete(mine_m), cJSON_Delete(mine_t);
    return rc;
}

static int read_tsampler(rhd_train_run *run, const rhd_st *st, rhd_err *e) {
    if (run->ts.kind != RHD_TSAMPLER_LOSS_SECOND_MOMENT) return 0;
    const rhd_st_tensor *h = rhd_st_find(st, "train.timestep_sampler.history"), *c = rhd_st_find(st, "train.timestep_sampler.count");
    const int T = run->ts.T;
    if (!h || !c || h->dtype != RHD_F64 || c->dtype != RHD_I32 || h->numel != (int64_t)T * RHD_LSM_HISTORY || c->numel != T)
        return rhd_errf(e, "%s: train.timestep_sampler.history F64 [%d,%d] and train.timestep_sampler.count I32 [%d] missing or of another "
                           "shape, expected them with --timestep-sampler loss-second-moment", st->name, T, RHD_LSM_HISTORY, T);
    double *hist = rhd_xmalloc(sizeof(double) * h->numel);
    int32_t *cnt = rhd_xmalloc(sizeof(int32_t) * T);
    memcpy(hist, h->data, sizeof(double) * h->numel), memcpy(cnt, c->data, sizeof(int32_t) * T);
    int rc = rhd_tsampler_load(&run->ts, hist, cnt, T, e);
    free(hist), free(cnt);
    return rc;
}

int rhd_train__read_checkpoint(rhd_train_run *run, rhd_err *e) {
    rhd_st *st;
    if (!rhd_file_exists(run->ckpt_path))
        return rhd_errf(e, "%s: no checkpoint, expected a run folder written by rhd-train to --resume", run->ckpt_path);
    if (rhd_st_open(run->ckpt_path, &st, e)) return -1;
    int rc = check_same(run, st, e);
    rhd_params *P = run->P;
    if (!rc) rc = rhd_params_from_st(P, RHD_PBUF_DATA, "", st, e);
    if (!rc) rc = rhd_params_from_st(P, RHD_PBUF_M, "adam.m.", st, e);
    if (!rc) rc = rhd_params_from_st(P, RHD_PBUF_V, "adam.v.", st, e);
    for (int k = 0; k < run->cfg.nema && !rc; k++) {
        rhd_params view = *P;
        view.data = run->ema[k];
        char pre[16];
        ema_prefix(pre, sizeof pre, k);
        rc = rhd_params_from_st(&view, RHD_PBUF_DATA, pre, st, e);
    }
    if (!rc) rc = read_tsampler(run, st, e);
    const char *step = rhd_st_meta(st, "rhd.step");
    if (!rc) {
        char *end;
        long long s = step ? strtoll(step, &end, 10) : -1;
        if (s < 0 || !step || *end) rc = rhd_errf(e, "%s: rhd.step '%s', expected the optimiser steps done", st->name, step ? step : "(none)");
        else run->step = s;
    }
    rhd_st_close(st);
    return rc;
}

/* ---- log and loss curve ---------------------------------------------------------------------- */

static void history_add(rhd_train_run *run, double x, double loss, double mse, double vb) {
    if (run->nh == run->caph) {
        run->caph = run->caph ? 2 * run->caph : 256;
        run->hx = rhd_xrealloc(run->hx, sizeof(double) * run->caph);
        run->hloss = rhd_xrealloc(run->hloss, sizeof(double) * run->caph);
        run->hmse = rhd_xrealloc(run->hmse, sizeof(double) * run->caph);
        run->hvb = rhd_xrealloc(run->hvb, sizeof(double) * run->caph);
    }
    run->hx[run->nh] = x, run->hloss[run->nh] = loss, run->hmse[run->nh] = mse, run->hvb[run->nh] = vb;
    run->nh++;
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

int rhd_train__log_reopen(rhd_train_run *run, rhd_err *e) {
    char *text = NULL;
    size_t n = 0;
    if (!run->cfg.resume || !rhd_file_exists(run->log_path)) return rhd_write_file_atomic(run->log_path, "", 0, e);
    if (rhd_read_file(run->log_path, &text, &n, e)) return -1;
    size_t keep = 0;
    for (char *s = text, *nl; s < text + n; s = nl + 1) {
        nl = memchr(s, '\n', text + n - s);
        if (!nl) break; /* a torn last line */
        *nl = 0;
        cJSON *o = cJSON_Parse(s);
        double st = num(o, "step");
        *nl = '\n';
        if (!o || !(st <= run->step)) { cJSON_Delete(o); break; }
        history_add(run, st, num(o, "loss"), num(o, "mse"), num(o, "vb"));
        cJSON_Delete(o);
        keep = nl + 1 - text;
    }
    int rc = rhd_write_file_atomic(run->log_path, text, keep, e);
    free(text);
    return rc;
}

static double mean_of(const rhd_train_run *run, int k) { return run->lcnt[k] ? run->lsum[k] / run->lcnt[k] : NAN; }

int rhd_train__log_write(rhd_train_run *run, double lr, rhd_err *e) {
    static const char *names[3] = {"loss", "mse", "vb"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", (double)run->step);
    cJSON_AddNumberToObject(o, "samples", (double)run->step * run->cfg.batch);
    cJSON_AddNumberToObject(o, "lr", lr);
    for (int k = 0; k < 3; k++) cJSON_AddNumberToObject(o, names[k], mean_of(run, k));
    for (int k = 0; k < 3; k++)
        for (int q = 0; q < 4; q++) {
            char key[16];
            snprintf(key, sizeof key, "%s_q%d", names[k], q);
            double v = mean_of(run, LK_Q + 4 * k + q);
            if (isfinite(v)) cJSON_AddNumberToObject(o, key, v); /* a quartile without samples is left out */
        }
    cJSON_AddNumberToObject(o, "grad_norm", mean_of(run, LK_GNORM));
    history_add(run, (double)run->step, mean_of(run, 0), mean_of(run, 1), mean_of(run, 2));
    memset(run->lsum, 0, sizeof run->lsum), memset(run->lcnt, 0, sizeof run->lcnt);
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    FILE *f = fopen(run->log_path, "a");
    int rc = 0;
    if (!f || fprintf(f, "%s\n", line) < 0 || fclose(f))
        rc = rhd_errf(e, "%s: cannot append to the log, expected a writable run folder", run->log_path);
    free(line);
    return rc;
}

int rhd_train__plot(rhd_train_run *run, rhd_err *e) {
    if (run->nh < 1) return 0;
    rhd_plot p;
    rhd_plot_init(&p);
    p.title = "rhd-train loss", p.xlabel = "step", p.ylabel = "loss (log)", p.logy = 1;
    if (rhd_plot_add(&p, "loss", run->hx, run->hloss, run->nh, e) || rhd_plot_add(&p, "mse", run->hx, run->hmse, run->nh, e) ||
        rhd_plot_add(&p, "vb", run->hx, run->hvb, run->nh, e))
        return -1;
    float *rgb = rhd_xmalloc(sizeof(float) * 3 * p.width * p.height);
    int rc = rhd_plot_render(&p, rgb, e);
    if (!rc) rc = rhd_png_write(run->png_path, rgb, p.width, p.height, 3, 8, RHD_PNG_ROUND, e);
    free(rgb);
    return rc;
}
