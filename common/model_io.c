/* common/model_io.c: see model_io.h. */
#include "common/model_io.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "formats/params_io.h"
#include "formats/schema.h"
#include "kernels/resample.h"

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

static void meta_ll(rhd_st_writer *w, const char *key, long long v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    rhd_st_set_meta(w, key, buf);
}

/* An integer metadata value in [lo, hi]: *v untouched when absent and not required. */
static int get_ll(const rhd_st *st, const char *key, int required, long long lo, long long hi, long long *v,
                  rhd_err *e) {
    const char *s = rhd_st_meta(st, key);
    if (!s) return required ? rhd_errf(e, "%s: metadata %s is missing, expected an integer", st->name, key) : 0;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (end == s || *end || errno || x < lo || x > hi)
        return rhd_errf(e, "%s: metadata %s is '%s', expected an integer in %lld..%lld", st->name, key, s, lo, hi);
    *v = x;
    return 0;
}

/* ---- decoder ---- */

int rhd_decoder_file_read(const char *path, rhd_ctx *ctx, int with_grad, rhd_decoder *dec,
                          rhd_decoder_file_info *info, rhd_err *e) {
    memset(dec, 0, sizeof *dec);
    rhd_st *st;
    if (rhd_st_open(path, &st, e)) return -1;
    const char *kind = rhd_st_meta(st, "rhd.kind");
    int rc = 0;
    if (kind && strcmp(kind, "decoder") && strcmp(kind, "checkpoint"))
        rc = rhd_errf(e, "%s: an rhd '%s' file, expected a decoder (or fit checkpoint)", path, kind);
    rhd_decoder_cfg dc;
    if (!rc) rc = rhd_decoder_cfg_from_st(&dc, st, e);
    if (!rc) rc = rhd_decoder_init(dec, &dc, ctx, with_grad, e);
    if (!rc && rhd_params_from_st(&dec->P, RHD_PBUF_DATA, "", st, e)) {
        rhd_decoder_free(dec);
        rc = -1;
    }
    rhd_decoder_file_info fi = {0};
    long long mc = 0;
    if (!rc) rc = rhd_meta_get_triplane_res(st, &fi.triplane_res, e) || get_ll(st, "rhd.mean_count", 0, 0, INT64_MAX, &mc, e);
    fi.mean_count = mc;
    const char *md = rc ? NULL : rhd_st_meta(st, "rhd.mean_density");
    if (md) {
        char *end;
        fi.mean_density = strtod(md, &end);
        if (end == md || *end || !isfinite(fi.mean_density))
            rc = rhd_errf(e, "%s: metadata rhd.mean_density is '%s', expected a finite number", path, md);
    }
    if (rc && dec->P.data) rhd_decoder_free(dec);
    if (!rc && info) *info = fi;
    rhd_st_close(st);
    return rc;
}

int rhd_decoder_file_write(const char *path, const rhd_decoder *dec, const rhd_decoder_file_info *info,
                           const char *tool, rhd_err *e) {
    rhd_st_writer w;
    rhd_st_writer_init(&w);
    rhd_params_to_writer(&dec->P, RHD_PBUF_DATA, "", &w);
    rhd_schema_stamp(&w, "decoder", tool);
    rhd_st_set_meta(&w, "rhd.device", rhd_ctx_device_label(dec->P.ctx));
    cJSON *cfg = cJSON_CreateObject(); /* provenance; the tools read rhd.triplane_res */
    cJSON_AddNumberToObject(cfg, "triplane_channels", dec->cfg.C);
    if (info && info->triplane_res) cJSON_AddNumberToObject(cfg, "triplane_res", info->triplane_res);
    cJSON_AddNumberToObject(cfg, "degree", dec->cfg.degree);
    cJSON_AddNumberToObject(cfg, "hidden", dec->cfg.hidden);
    cJSON_AddNumberToObject(cfg, "geo", dec->cfg.geo);
    if (info && info->bound > 0) cJSON_AddNumberToObject(cfg, "bound", info->bound);
    char *conf = cJSON_PrintUnformatted(cfg);
    rhd_st_set_meta(&w, "rhd.config", conf);
    free(conf);
    cJSON_Delete(cfg);
    if (info && info->triplane_res) rhd_meta_set_triplane_res(&w, info->triplane_res);
    rhd_decoder_cfg_to_meta(&dec->cfg, &w);
    meta_ll(&w, "rhd.mean_count", info ? info->mean_count : 0);
    char buf[64];
    snprintf(buf, sizeof buf, "%.9g", info ? info->mean_density : 0.0);
    rhd_st_set_meta(&w, "rhd.mean_density", buf);
    int r = rhd_st_write(&w, path, e);
    rhd_st_writer_free(&w);
    return r;
}

/* ---- triplanes ---- */

int rhd_triplane_load(const char *path, rhd_triplane *dst, int resize, int *entry, rhd_err *e) {
    rhd_triplane t;
    int C = dst->C, R = dst->R;
    if (rhd_triplane_file_read(path, &t, entry, e)) return -1;
    if (t.C != C || (t.R != R && !resize)) {
        int rc = rhd_errf(e, "%s: a triplane [3,%d,%d,%d], expected [3,%d,%d,%d] (--triplane-channels, --triplane-res)",
                          path, t.C, t.R, t.R, C, R, R);
        rhd_triplane_free(&t);
        return rc;
    }
    int rc = 0;
    if (t.R == R) {
        memcpy(dst->planes, t.planes, rhd_triplane_bytes(dst));
    } else {
        rhd_info("%s: resizing the triplane from %d to %d (bicubic)", path, t.R, R);
        rhd_ctx *cpu = rhd_ctx_open("cpu", e);
        if (!cpu) rc = -1;
        else {
            rhd_resize_forward(cpu, dst->planes, t.planes, 3, C, t.R, t.R, R, R, RHD_RESIZE_BICUBIC, 0);
            rhd_ctx_close(cpu);
        }
    }
    rhd_triplane_free(&t);
    return rc;
}

int rhd_triplane_save(const char *path, const rhd_triplane *t, const rhd_triplane_meta *m, int also_npy, rhd_err *e) {
    int rc = 0;
    if (also_npy && ends_with(path, ".safetensors")) { /* the .npy first: the named file, written last, means done */
        char *np = rhd_xstrdup(path);
        strcpy(strrchr(np, '.'), ".npy");
        rc = rhd_triplane_file_write(np, t, NULL, e);
        free(np);
    }
    return rc ? rc : rhd_triplane_file_write(path, t, m, e);
}

/* ---- IWC states ---- */

int rhd_iwc_file_write(const char *path, const rhd_decoder *dec, const float *fisher, const float *optpar,
                       const rhd_iwc_meta *m, const char *tool, rhd_err *e) {
    rhd_st_writer w;
    rhd_st_writer_init(&w);
    const rhd_params *P = &dec->P;
    char name[RHD_PARAM_NAME_MAX + 16];
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < P->n; i++) {
            snprintf(name, sizeof name, "%s%s", pass ? "optpar." : "fisher.", P->info[i].name);
            rhd_st_add_f32(&w, name, RHD_F32, P->info[i].ndim, P->info[i].shape, (pass ? optpar : fisher) + P->info[i].offset);
        }
    rhd_schema_stamp(&w, "iwc", tool);
    rhd_st_set_meta(&w, "rhd.device", rhd_ctx_device_label(dec->P.ctx));
    rhd_st_set_meta(&w, "rhd.avatar", m->avatar);
    meta_ll(&w, "rhd.round", m->round);
    meta_ll(&w, "rhd.entry", m->entry);
    meta_ll(&w, "rhd.fisher_steps", m->fisher_steps);
    rhd_st_set_meta(&w, "rhd.fisher", m->fisher ? m->fisher : "original");
    int r = rhd_st_write(&w, path, e);
    rhd_st_writer_free(&w);
    return r;
}

int rhd_iwc_file_read(const char *path, const rhd_decoder *dec, float **fisher, float **optpar, int *entry,
                      rhd_err *e) {
    *fisher = *optpar = NULL;
    rhd_st *st;
    if (rhd_st_open(path, &st, e)) return -1;
    int rc = rhd_schema_check(st, "iwc", NULL, e);
    const rhd_params *P = &dec->P;
    float *F = rhd_xcalloc((size_t)P->total, sizeof(float)), *O = rhd_xcalloc((size_t)P->total, sizeof(float));
    char name[RHD_PARAM_NAME_MAX + 16], got[128], want[128];
    for (int pass = 0; pass < 2 && !rc; pass++)
        for (int i = 0; i < P->n && !rc; i++) {
            const rhd_param_info *pi = &P->info[i];
            snprintf(name, sizeof name, "%s%s", pass ? "optpar." : "fisher.", pi->name);
            const rhd_st_tensor *t = rhd_st_find(st, name);
            if (!t) {
                rc = rhd_errf(e, "%s: tensor '%s' is missing, expected %s", path, name,
                              rhd_shape_str(pi->shape, pi->ndim, want, sizeof want));
                break;
            }
            if (!rhd_shape_eq(t->shape, t->ndim, pi->shape, pi->ndim)) {
                rc = rhd_errf(e, "%s: tensor '%s' has shape %s, expected %s (the decoder's)", path, name,
                              rhd_shape_str(t->shape, t->ndim, got, sizeof got), rhd_shape_str(pi->shape, pi->ndim, want, sizeof want));
                break;
            }
            float *dst = (pass ? O : F) + pi->offset;
            rhd_st_to_f32(t, dst);
            for (int64_t k = 0; k < pi->numel && !rc; k++)
                if (!isfinite(dst[k]) || (!pass && dst[k] < 0))
                    rc = rhd_errf(e, "%s: tensor '%s' holds %g at flat index %lld, expected %s", path, name, dst[k],
                                  (long long)k, pass ? "finite values" : "finite values >= 0 (squared gradients)");
        }
    long long en = -1;
    if (!rc) rc = get_ll(st, "rhd.entry", 0, 0, INT32_MAX, &en, e);
    rhd_st_close(st);
    if (rc) {
        free(F), free(O);
        return rc;
    }
    *fisher = F, *optpar = O;
    if (entry) *entry = (int)en;
    return 0;
}

/* ---- the stage-1 fit checkpoint ---- */

int rhd_fit_checkpoint_write(const char *path, const rhd_decoder *dec, const rhd_fit_checkpoint *c, const char *tool,
                             rhd_err *e) {
    rhd_st_writer w;
    rhd_st_writer_init(&w);
    rhd_params_to_writer(&dec->P, RHD_PBUF_DATA, "", &w);
    rhd_params_to_writer(&dec->P, RHD_PBUF_M, "adam.m.", &w);
    rhd_params_to_writer(&dec->P, RHD_PBUF_V, "adam.v.", &w);
    rhd_schema_stamp(&w, "checkpoint", tool);
    rhd_st_set_meta(&w, "rhd.device", rhd_ctx_device_label(dec->P.ctx));
    rhd_st_set_meta(&w, "rhd.model", "fit");
    rhd_decoder_cfg_to_meta(&dec->cfg, &w);
    meta_ll(&w, "rhd.step", c->step);
    meta_ll(&w, "rhd.entries_done", c->entries_done);
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)c->seed);
    rhd_st_set_meta(&w, "rhd.seed", buf);
    rhd_st_set_meta(&w, "rhd.plan", c->plan);
    if (c->records) rhd_st_set_meta(&w, "rhd.records", c->records);
    if (c->options) rhd_st_set_meta(&w, "rhd.options", c->options);
    int r = rhd_st_write(&w, path, e);
    rhd_st_writer_free(&w);
    return r;
}

int rhd_fit_checkpoint_read(const char *path, rhd_decoder *dec, rhd_fit_checkpoint *c, rhd_err *e) {
    memset(c, 0, sizeof *c);
    rhd_st *st;
    if (rhd_st_open(path, &st, e)) return -1;
    int rc = rhd_schema_check(st, "checkpoint", NULL, e);
    const char *model = rc ? NULL : rhd_st_meta(st, "rhd.model");
    if (model && strcmp(model, "fit")) rc = rhd_errf(e, "%s: a '%s' checkpoint, expected a fit checkpoint (rhd.model fit)", path, model);
    long long ed = 0, step = 0;
    if (!rc) rc = get_ll(st, "rhd.entries_done", 1, 0, INT32_MAX, &ed, e) || get_ll(st, "rhd.step", 1, 0, INT64_MAX, &step, e);
    const char *sd = rc ? NULL : rhd_st_meta(st, "rhd.seed"), *plan = rc ? NULL : rhd_st_meta(st, "rhd.plan");
    if (!rc && !sd) rc = rhd_errf(e, "%s: metadata rhd.seed is missing, expected the run's seed", path);
    if (!rc && !plan) rc = rhd_errf(e, "%s: metadata rhd.plan is missing, expected the plan the run executes", path);
    if (!rc) {
        char *end;
        errno = 0;
        c->seed = strtoull(sd, &end, 10);
        if (end == sd || *end || errno) rc = rhd_errf(e, "%s: metadata rhd.seed is '%s', expected an unsigned integer", path, sd);
    }
    if (!rc) rc = rhd_params_from_st(&dec->P, RHD_PBUF_DATA, "", st, e) || rhd_params_from_st(&dec->P, RHD_PBUF_M, "adam.m.", st, e) ||
                  rhd_params_from_st(&dec->P, RHD_PBUF_V, "adam.v.", st, e);
    if (!rc) {
        c->entries_done = (int)ed, c->step = step;
        c->plan = rhd_xstrdup(plan);
        const char *rec = rhd_st_meta(st, "rhd.records");
        c->records = rec ? rhd_xstrdup(rec) : NULL;
        const char *opt = rhd_st_meta(st, "rhd.options");
        c->options = opt ? rhd_xstrdup(opt) : NULL;
    }
    rhd_st_close(st);
    return rc;
}

void rhd_fit_checkpoint_free(rhd_fit_checkpoint *c) {
    free(c->plan), free(c->records), free(c->options);
    memset(c, 0, sizeof *c);
}
