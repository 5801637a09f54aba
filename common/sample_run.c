/* common/sample_run.c: checkpoints, features and the batch loop of rhd-sample (see the header). */
#include "common/sample_run.h"
#include "common/rng.h"
#include "common/sha256.h"
#include "common/tensor.h"
#include "formats/finite.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- checkpoints ------------------------------------------------------------------------------ */

static const char *stage_model_name(rhd_sample_stage s) { return s == RHD_STAGE_BASE ? "base" : "upsample"; }

/* The "diffusion" object of rhd.config over the stage's defaults. */
static int read_diffusion(rhd_sample_model *m, const cJSON *d, const char *path, rhd_err *e) {
    m->T = m->stage == RHD_STAGE_BASE ? 1000 : 100;
    m->beta = m->stage == RHD_STAGE_BASE ? RHD_BETA_COSINE_LIGHT : RHD_BETA_SIGMOID;
    m->pred = m->stage == RHD_STAGE_BASE ? RHD_PRED_EPS : RHD_PRED_XSTART;
    m->var = m->stage == RHD_STAGE_BASE ? RHD_VAR_LEARNED_RANGE : RHD_VAR_FIXED_LARGE;
    m->train_time_scale = 0;
    if (!d) return 0;
    if (!cJSON_IsObject(d)) return rhd_errf(e, "%s: rhd.config 'diffusion' is not an object, expected {\"steps\": ...}", path);
    for (const cJSON *v = d->child; v; v = v->next) {
        const char *k = v->string;
        int isnum = cJSON_IsNumber(v), isstr = cJSON_IsString(v);
        rhd_err sub;
        if (!strcmp(k, "steps") && isnum && v->valuedouble >= 2 && v->valuedouble <= RHD_DIFFUSION_MAX_T) m->T = (int)v->valuedouble;
        else if (!strcmp(k, "schedule") && isstr && !rhd_beta_kind_parse(v->valuestring, &m->beta, &sub)) continue;
        else if (!strcmp(k, "pred") && isstr && !rhd_pred_kind_parse(v->valuestring, &m->pred, &sub)) continue;
        else if (!strcmp(k, "var") && isstr && !rhd_var_kind_parse(v->valuestring, &m->var, &sub)) continue;
        else if (!strcmp(k, "time_scale") && isnum && v->valuedouble >= 0) m->train_time_scale = v->valuedouble;
        else
            return rhd_errf(e, "%s: rhd.config diffusion '%s' is not valid, expected steps (2..%d), schedule, pred (eps, "
                            "xstart, v), var (learned_range, fixed_large), time_scale (>= 0)", path, k, RHD_DIFFUSION_MAX_T);
    }
    return 0;
}

/* The network config and the diffusion of rhd.config (the contract: {"model", "diffusion", "train"}
 * or the network config alone). */
static int read_config(rhd_sample_model *m, const rhd_st *st, void *cfg, rhd_err *e) {
    const char *text = rhd_st_meta(st, "rhd.config");
    if (m->stage == RHD_STAGE_BASE) rhd_unet_config_official(cfg);
    else rhd_ups_config_official(cfg);
    m->factor = 4;
    if (!text) return read_diffusion(m, NULL, st->name, e);
    cJSON *root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return rhd_errf(e, "%s: rhd.config is not a JSON object, expected {\"model\": {...}, \"diffusion\": {...}}", st->name);
    }
    const cJSON *net = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *fac = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "train"), "factor");
    if (cJSON_IsNumber(fac) && fac->valuedouble >= 1 && fac->valuedouble <= 64) m->factor = (int)fac->valuedouble;
    int rc = read_diffusion(m, cJSON_GetObjectItemCaseSensitive(root, "diffusion"), st->name, e);
    cJSON *copy = cJSON_Duplicate(net ? net : root, 1);
    if (!net) { /* the whole object is the network config, less the contract's other keys */
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "diffusion");
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "train");
    }
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(copy, "preset");
    if (!rc && m->stage == RHD_STAGE_UPSAMPLE && cJSON_IsString(pre)) { /* the upsampler's JSON has no "preset" key */
        rc = rhd_ups_config_preset(cfg, pre->valuestring, e);
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "preset");
    }
    char *nt = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
    if (!rc) {
        char name[1100];
        snprintf(name, sizeof name, "%s: rhd.config model", st->name);
        rc = m->stage == RHD_STAGE_BASE ? rhd_unet_config_from_json(cfg, nt, strlen(nt), name, e)
                                        : rhd_ups_config_from_json(cfg, nt, strlen(nt), name, e);
    }
    free(nt);
    cJSON_Delete(root);
    return rc;
}

int rhd_sample_weights_parse(const char *w, int *ema, rhd_err *e) {
    if (!strcmp(w, "model")) return *ema = -1, 0;
    if (!strncmp(w, "ema", 3)) {
        char *end = NULL;
        long k = w[3] ? strtol(w + 3, &end, 10) : 0;
        if (!w[3] || (!*end && k >= 1 && k <= 99)) return *ema = (int)k, 0;
    }
    return rhd_errf(e, "--weights %s: expected ema, model or emaK (K >= 1, a further EMA rate)", w);
}

/* The tensor prefix of the chosen weights; -1 when they are not in the file. */
static int pick_weights(rhd_sample_model *m, const rhd_st *st, const char *w, char *prefix, size_t cap, rhd_err *e) {
    int has_ema = 0;
    for (int i = 0; i < st->n; i++) has_ema |= !strncmp(st->t[i].name, "ema.", 4);
    if (!w || !strcmp(w, "auto")) w = has_ema ? "ema" : "model";
    int k;
    if (rhd_sample_weights_parse(w, &k, e)) return -1;
    if (k < 0) {
        snprintf(prefix, cap, "%s", rhd_st_find(st, "decoder.time_embed.0.weight") ? "decoder." : "");
    } else {
        if (k) snprintf(prefix, cap, "ema%d.", k);
        else snprintf(prefix, cap, "ema.");
        int found = 0;
        for (int i = 0; i < st->n && !found; i++) found = !strncmp(st->t[i].name, prefix, strlen(prefix));
        const char *rates = rhd_st_meta(st, "rhd.ema_rates");
        if (!found)
            return rhd_errf(e, "%s: no '%s*' tensors for --weights %s (EMA rates in the file: %s), expected a checkpoint "
                            "that keeps that EMA, or --weights model", st->name, prefix, w, rates ? rates : "none");
    }
    snprintf(m->weights, sizeof m->weights, "%s", w);
    return 0;
}

/* Tensors under prefix that the network lacks (the parameters' set: besides the other sets). */
static int check_extra(const rhd_params *p, const rhd_st *st, const char *prefix, rhd_err *e) {
    size_t lp = strlen(prefix);
    for (int i = 0; i < st->n; i++) {
        const char *nm = st->t[i].name;
        if (strncmp(nm, prefix, lp)) continue;
        if (!lp && (!strncmp(nm, "ema", 3) || !strncmp(nm, "adam.", 5) || !strncmp(nm, "train.", 6))) continue;
        if (rhd_params_find(p, nm + lp) < 0)
            return rhd_errf(e, "%s: tensor '%s' is not a parameter of the network that rhd.config describes, expected "
                            "only its %d tensors under '%s' (a checkpoint of another config?)", st->name, nm, p->n, prefix);
    }
    return 0;
}

static int build_network(rhd_sample_model *m, const rhd_st *st, const char *prefix, rhd_ctx *ctx, rhd_err *e) {
    rhd_unet_config uc;
    rhd_ups_config pc;
    void *cfg = m->stage == RHD_STAGE_BASE ? (void *)&uc : (void *)&pc;
    if (read_config(m, st, cfg, e)) return -1;
    rhd_err sub;
    rhd_nn_model *nm = rhd_nn_model_create(m->stage == RHD_STAGE_BASE ? &rhd_unet_ops : &rhd_upsampler_ops, cfg, ctx, st,
                                           prefix, 0, &sub);
    if (!nm) return rhd_errf(e, "%s (--weights %s): %s", st->name, m->weights, sub.msg);
    if (check_extra(&nm->params, st, prefix, e)) {
        rhd_nn_model_free(nm);
        return -1;
    }
    if (m->stage == RHD_STAGE_BASE) {
        m->unet = (rhd_unet *)nm;
        m->C = uc.in_channels, m->C_out = uc.out_channels, m->R = uc.image_size;
        m->latent_ch = uc.latent_ch, m->latent_size = uc.latent_size, m->cond_noise = uc.noise;
        for (int i = 0; i < 3; i++) m->feat_ch[i] = uc.feat_ch[i], m->feat_size[i] = uc.feat_size[i];
    } else {
        m->ups = (rhd_upsampler *)nm;
        m->C = pc.in_ch, m->C_out = pc.out_ch, m->R = 0;
        m->latent_ch = pc.latent_ch, m->latent_size = pc.latent_size, m->cond_noise = RHD_UNET_NOISE_UNIFORM;
        if (pc.cond_ch != pc.in_ch)
            return rhd_errf(e, "%s: the upsampler's cond_ch %d differs from in_ch %d, expected the base sample's channels",
                            st->name, pc.cond_ch, pc.in_ch);
    }
    int want = m->var == RHD_VAR_LEARNED_RANGE ? 2 * m->C : m->C;
    if (m->C_out != want)
        return rhd_errf(e, "%s: the network outputs %d channels, expected %d for %d input channels with a %s variance",
                        st->name, m->C_out, want, m->C, rhd_var_kind_name(m->var));
    return 0;
}

int rhd_sample_model_load(rhd_sample_model *m, const char *path, rhd_sample_stage stage, const char *weights,
                          rhd_ctx *ctx, rhd_err *e) {
    memset(m, 0, sizeof *m);
    m->stage = stage;
    rhd_st *st;
    if (rhd_st_open(path, &st, e)) return -1;
    int rc = -1;
    const char *kind = rhd_st_meta(st, "rhd.kind"), *model = rhd_st_meta(st, "rhd.model"), *step = rhd_st_meta(st, "rhd.step");
    char prefix[32];
    if (kind && strcmp(kind, "checkpoint")) {
        rhd_errf(e, "%s: rhd.kind is '%s', expected 'checkpoint' (rhd-train's output or pipelines/convert_checkpoint.py's)", path, kind);
        goto out;
    }
    if (model && strcmp(model, stage_model_name(stage))) {
        rhd_errf(e, "%s: rhd.model is '%s', expected '%s' (--%s takes the %s model's checkpoint)", path, model,
                 stage_model_name(stage), stage == RHD_STAGE_BASE ? "base" : "upsample", stage_model_name(stage));
        goto out;
    }
    if (pick_weights(m, st, weights, prefix, sizeof prefix, e) || rhd_st_check_finite(st, e) ||
        build_network(m, st, prefix, ctx, e))
        goto out;
    if (rhd_sha256_file(path, m->sha256, e)) goto out;
    m->path = rhd_xstrdup(path);
    m->step = step ? atoll(step) : 0;
    rc = 0;
out:
    rhd_st_close(st);
    if (rc) rhd_sample_model_free(m);
    return rc;
}

void rhd_sample_model_free(rhd_sample_model *m) {
    if (m->unet) rhd_nn_model_free(&m->unet->base);
    if (m->ups) rhd_nn_model_free(&m->ups->base);
    free(m->path);
    m->unet = NULL, m->ups = NULL, m->path = NULL;
}

/* ---- features --------------------------------------------------------------------------------- */

static int read_tensor(const rhd_st *st, const char *name, const int64_t want[3], float **out, rhd_err *e) {
    const rhd_st_tensor *t = rhd_st_find(st, name);
    char ws[64];
    snprintf(ws, sizeof ws, "[%lld,%lld,%lld]", (long long)want[0], (long long)want[1], (long long)want[2]);
    if (!t) return rhd_errf(e, "%s: tensor '%s' is missing, expected %s (a features file of rhd-encode)", st->name, name, ws);
    if (t->dtype != RHD_F32 && t->dtype != RHD_F16 && t->dtype != RHD_BF16)
        return rhd_errf(e, "%s: tensor '%s' is %s, expected F32, F16 or BF16", st->name, name, rhd_dtype_name(t->dtype));
    if (t->ndim != 3 || t->shape[0] != want[0] || t->shape[1] != want[1] || t->shape[2] != want[2]) {
        char got[96] = "[";
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "", (long long)t->shape[i]);
        strcat(got, "]");
        return rhd_errf(e, "%s: tensor '%s' has shape %s, expected %s (the checkpoint's config; rhd-encode --size sets "
                        "the feature sizes)", st->name, name, got, ws);
    }
    *out = rhd_xmalloc(sizeof(float) * (size_t)t->numel);
    rhd_st_to_f32(t, *out);
    return rhd_check_finite(st->name, name, *out, t->numel, e);
}

int rhd_sample_cond_read(const char *path, const rhd_sample_model *base, const rhd_sample_model *ups,
                         rhd_sample_cond *c, rhd_err *e) {
    memset(c, 0, sizeof *c);
    rhd_st *st;
    if (rhd_st_open(path, &st, e)) return -1;
    int rc = -1;
    const char *kind = rhd_st_meta(st, "rhd.kind");
    if (kind && strcmp(kind, "features")) {
        rhd_errf(e, "%s: rhd.kind is '%s', expected 'features' (rhd-encode's output)", path, kind);
        goto out;
    }
    const rhd_sample_model *lm = base ? base : ups;
    if (base && ups && (base->latent_ch != ups->latent_ch || base->latent_size != ups->latent_size)) {
        rhd_errf(e, "the base latent [%d,%d,%d] and the upsampler's [%d,%d,%d] differ, expected the same portrait latent",
                 2 * base->latent_ch, base->latent_size, base->latent_size, 2 * ups->latent_ch, ups->latent_size,
                 ups->latent_size);
        goto out;
    }
    int64_t wm[3] = {2 * lm->latent_ch, lm->latent_size, lm->latent_size};
    if (read_tensor(st, "moments", wm, &c->moments, e)) goto out;
    for (int i = 0; base && i < 3; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "ms_feature.%d", i);
        int64_t wf[3] = {base->feat_ch[i], base->feat_size[i], base->feat_size[i]};
        if (read_tensor(st, nm, wf, &c->F[i], e)) goto out;
    }
    rc = 0;
out:
    rhd_st_close(st);
    if (rc) rhd_sample_cond_free(c);
    return rc;
}

void rhd_sample_cond_free(rhd_sample_cond *c) {
    free(c->moments);
    for (int i = 0; i < 3; i++) free(c->F[i]);
    memset(c, 0, sizeof *c);
}

void rhd_sample_ref_from_u(float *ref, const float *moments, const float *u, int C, int L) {
    const int64_t per = (int64_t)C * L * L;
    for (int64_t i = 0; i < per; i++) {
        float lv = fminf(fmaxf(moments[per + i], -30.f), 20.f), sd = expf(0.5f * lv);
        ref[i] = moments[i] + sd * u[i];
    }
}

/* ---- plan ------------------------------------------------------------------------------------- */

void rhd_sample_opts_init(rhd_sample_opts *o, const rhd_sample_model *m) {
    memset(o, 0, sizeof *o);
    int base = m->stage == RHD_STAGE_BASE;
    o->kind = RHD_SAMPLER_DDIM_DPM;
    o->steps = 10;
    o->eta = base ? 1.0 : 0.0;
    o->guidance = base ? 1.3 : 1.0;
    o->clip = 1;
    o->time_scale = 0;
    o->cond_noise = m->cond_noise;
    o->low_fp16 = 1;
}

/* The original's base_sample.py saves LR/<name>.npy as float16 and upsample_sample.py conditions
 * on that file: the low-res triplane rounded to fp16 (round to nearest even), here copied into
 * low (B items of n floats); an item that overflows fp16 is an error naming it. */
static int low_to_fp16(float *low, const rhd_sample_item *items, int B, int64_t n, rhd_err *e) {
    for (int b = 0; b < B; b++)
        for (int64_t i = 0; i < n; i++) {
            float v = rhd_half_to_float(rhd_float_to_half(items[b].low[i]));
            if (!isfinite(v))
                return rhd_errf(e, "%s: the low-res triplane holds %g, outside float16's range (the original's LR "
                                "files are float16); --low-res-precision fp32 keeps it", items[b].name, items[b].low[i]);
            low[(int64_t)b * n + i] = v;
        }
    return 0;
}

int rhd_sample_plan_init(rhd_sample_plan *p, const rhd_sample_model *m, const rhd_sample_opts *o, rhd_err *e) {
    memset(p, 0, sizeof *p);
    char spec[64];
    const char *resp = NULL;
    if (o->kind != RHD_SAMPLER_DDIM_DPM) {
        if (o->respace && *o->respace) resp = o->respace;
        else if (o->steps > 0 && o->steps < m->T) snprintf(spec, sizeof spec, "%d", o->steps), resp = spec;
    }
    if (rhd_diffusion_schedule_create(&p->sched, m->beta, m->T, resp, e)) return -1;
    rhd_sampler_opts_init(&p->so);
    p->so.kind = o->kind, p->so.steps = o->steps > 0 ? o->steps : 10, p->so.eta = o->eta, p->so.clip = o->clip;
    p->so.pred = m->pred, p->so.var = m->var, p->so.time_scale = o->time_scale, p->so.C = m->C;
    if (rhd_sampler_steps(&p->sched, &p->so, &p->steps, &p->nsteps, e)) {
        rhd_diffusion_schedule_free(&p->sched);
        return -1;
    }
    return 0;
}

void rhd_sample_plan_free(rhd_sample_plan *p) {
    rhd_diffusion_schedule_free(&p->sched);
    free(p->steps);
    p->steps = NULL;
}

int rhd_sample_out_side(const rhd_sample_model *m, const rhd_sample_opts *o, int r) {
    if (m->stage == RHD_STAGE_BASE) return m->R;
    return o->R > 0 ? o->R : m->factor * r;
}

/* ---- the batch -------------------------------------------------------------------------------- */

/* The conditional network of one batch (rhd_denoise_cond_fn): item b of a call is the batch's item
 * b mod B, with its condition or the null one (all ones, §1.4, §3.9). */
typedef struct cond_net {
    const rhd_sample_model *m;
    const rhd_sample_item *items;
    int B, R, r;
    const float *ref;         /* host [B, latent] */
    int64_t nref, nF[3], nlow;
    float *h_ref, *h_F[3], *h_low, *d_ref, *d_F[3], *d_low, *d_t;
    int cap;
} cond_net;

static void stage_in(rhd_ctx *ctx, float **h, float **d, int64_t per, int Bc, const unsigned char *nulls, int B,
                     const float *const *src, int keep_on_null) {
    for (int b = 0; b < Bc; b++) {
        float *dst = *h + (int64_t)b * per;
        if (nulls[b] && !keep_on_null) for (int64_t i = 0; i < per; i++) dst[i] = 1.0f;
        else memcpy(dst, src[b % B], sizeof(float) * (size_t)per);
    }
    rhd_buf_upload(ctx, *d, *h, sizeof(float) * (size_t)(per * Bc));
}

static void cond_net_grow(cond_net *c, rhd_ctx *ctx, int Bc) {
    if (Bc <= c->cap) return;
    int64_t n[5] = {c->nref, c->nF[0], c->nF[1], c->nF[2], c->nlow};
    float **h[5] = {&c->h_ref, &c->h_F[0], &c->h_F[1], &c->h_F[2], &c->h_low};
    float **d[5] = {&c->d_ref, &c->d_F[0], &c->d_F[1], &c->d_F[2], &c->d_low};
    for (int k = 0; k < 5; k++) {
        if (!n[k]) continue;
        free(*h[k]);
        if (*d[k]) rhd_buf_free(ctx, *d[k]);
        *h[k] = rhd_xmalloc(sizeof(float) * (size_t)(n[k] * Bc));
        *d[k] = rhd_buf_alloc(ctx, sizeof(float) * (size_t)(n[k] * Bc));
    }
    if (c->d_t) rhd_buf_free(ctx, c->d_t);
    c->d_t = rhd_buf_alloc(ctx, sizeof(float) * (size_t)Bc);
    c->cap = Bc;
}

static void cond_net_free(cond_net *c, rhd_ctx *ctx) {
    float *h[5] = {c->h_ref, c->h_F[0], c->h_F[1], c->h_F[2], c->h_low};
    float *d[6] = {c->d_ref, c->d_F[0], c->d_F[1], c->d_F[2], c->d_low, c->d_t};
    for (int k = 0; k < 5; k++) free(h[k]);
    for (int k = 0; k < 6; k++) if (d[k]) rhd_buf_free(ctx, d[k]);
}

static int cond_net_run(void *user, rhd_ctx *ctx, float *out, const float *x, int Bc, const float *t_model,
                        const unsigned char *nulls, rhd_err *e) {
    cond_net *c = user;
    cond_net_grow(c, ctx, Bc);
    const float *refs[64], *Fs[3][64], *lows[64];
    if (c->B > 64) return rhd_errf(e, "sampling: batch %d, at most 64", c->B);
    for (int b = 0; b < c->B; b++) {
        refs[b] = c->ref + (int64_t)b * c->nref, lows[b] = c->items[b].low;
        for (int i = 0; i < 3 && c->nF[i]; i++) Fs[i][b] = c->items[b].cond->F[i];
    }
    stage_in(ctx, &c->h_ref, &c->d_ref, c->nref, Bc, nulls, c->B, refs, 0);
    rhd_buf_upload(ctx, c->d_t, t_model, sizeof(float) * (size_t)Bc);
    const int64_t no = (int64_t)Bc * c->m->C_out * c->R * 3 * c->R;
    if (c->m->stage == RHD_STAGE_BASE) {
        for (int i = 0; i < 3; i++) stage_in(ctx, &c->h_F[i], &c->d_F[i], c->nF[i], Bc, nulls, c->B, Fs[i], 0);
        rhd_unet_io io = {.N = Bc, .x = x, .t = c->d_t, .ref = c->d_ref, .F = {c->d_F[0], c->d_F[1], c->d_F[2]}};
        rhd_unet_forward(c->m->unet, &io, 0);
        rhd_buf_copy(ctx, out, io.y, sizeof(float) * (size_t)no);
    } else {
        stage_in(ctx, &c->h_low, &c->d_low, c->nlow, Bc, nulls, c->B, lows, 1); /* the null keeps the low-res (§3.9) */
        rhd_ups_io io = {.N = Bc, .R = c->R, .r = c->r, .x = x, .t = c->d_t, .ref = c->d_ref, .low = c->d_low};
        rhd_nn_model_forward(&c->m->ups->base, &io, 0);
        rhd_buf_copy(ctx, out, io.y, sizeof(float) * (size_t)no);
    }
    return 0;
}

/* The noise of a batch (rhd_noise_fn): file rows or Philox by item, recorded when asked. */
typedef struct batch_noise {
    const rhd_sample_opts *o;
    const rhd_sample_item *items;
    rhd_sample_stage stage;
    int64_t tail[3];
    uint64_t *keys;
    float *host;
} batch_noise;

static int batch_noise_draw(void *user, rhd_ctx *ctx, float *out, int draw, int B, int64_t n, rhd_err *e) {
    batch_noise *bn = user;
    char name[40];
    if (draw == 0) snprintf(name, sizeof name, "%sx_T", rhd_noise_prefix(bn->stage));
    else snprintf(name, sizeof name, "%sz.%d", rhd_noise_prefix(bn->stage), draw - 1);
    if (bn->o->noise) {
        const rhd_st_tensor *t = rhd_st_find(bn->o->noise, name);
        if (!t) return rhd_errf(e, "%s: tensor '%s' is missing (draw %d)", bn->o->noise->name, name, draw);
        for (int b = 0; b < B; b++)
            memcpy(bn->host + (int64_t)b * n, (const float *)t->data + (int64_t)bn->items[b].in_row * n, sizeof(float) * (size_t)n);
        rhd_buf_upload(ctx, out, bn->host, sizeof(float) * (size_t)(B * n));
    } else {
        rhd_noise_philox_src src = {bn->keys};
        if (rhd_noise_philox(&src, ctx, out, draw, B, n, e)) return -1;
        if (bn->o->record) rhd_buf_download(ctx, bn->host, out, sizeof(float) * (size_t)(B * n));
    }
    for (int b = 0; bn->o->record && b < B; b++)
        if (bn->items[b].rec_row >= 0) rhd_noise_record_put(bn->o->record, name, bn->tail, bn->items[b].rec_row, bn->host + (int64_t)b * n, n);
    return 0;
}

/* The §1.4 draw u of each item ([B, latent]) and ref from it. */
static int draw_refs(const rhd_sample_model *m, const rhd_sample_opts *o, const rhd_sample_item *items, int B,
                     const uint64_t *keys, float *ref, rhd_err *e) {
    const int C = m->latent_ch, L = m->latent_size;
    const int64_t per = (int64_t)C * L * L;
    char name[40];
    snprintf(name, sizeof name, "%su", rhd_noise_prefix(m->stage));
    const rhd_st_tensor *t = o->noise && o->cond_noise != RHD_UNET_NOISE_NONE ? rhd_st_find(o->noise, name) : NULL;
    if (o->noise && o->cond_noise != RHD_UNET_NOISE_NONE && !t)
        return rhd_errf(e, "%s: tensor '%s' is missing, expected the conditioning draw [P,%d,%d,%d]", o->noise->name, name, C, L, L);
    float *u = rhd_xmalloc(sizeof(float) * (size_t)per), *zero = rhd_xcalloc((size_t)(2 * per), sizeof(float));
    for (int b = 0; b < B; b++) {
        if (t) memcpy(u, (const float *)t->data + (int64_t)items[b].in_row * per, sizeof(float) * (size_t)per);
        else /* mean 0, log-variance 0: the sample is the draw itself */
            rhd_unet_cond_sample(u, zero, 1, C, L, o->cond_noise, keys[b], RHD_STREAM(RHD_STREAM_DIFFUSION, 0x40000000u), 0);
        if (o->record && items[b].rec_row >= 0) {
            int64_t tail[3] = {C, L, L};
            rhd_noise_record_put(o->record, name, tail, items[b].rec_row, u, per);
        }
        rhd_sample_ref_from_u(ref + b * per, items[b].cond->moments, u, C, L);
    }
    free(u), free(zero);
    return 0;
}

typedef struct traj_rec {
    rhd_ctx *ctx;
    const rhd_sample_item *items;
    int B;
    int64_t n;
} traj_rec;

/* After each step: the clipped x0 of every item that keeps a trajectory. */
static void traj_step(void *user, int k, int nsteps, int t, const float *x, const float *x0) {
    traj_rec *tr = user;
    (void)nsteps, (void)t, (void)x;
    for (int b = 0; b < tr->B; b++)
        if (tr->items[b].traj)
            rhd_buf_download(tr->ctx, tr->items[b].traj + (int64_t)k * tr->n, x0 + b * tr->n, sizeof(float) * (size_t)tr->n);
}

int rhd_sample_batch(rhd_ctx *ctx, const rhd_sample_model *m, const rhd_sample_opts *o, const rhd_sample_plan *p,
                     const rhd_sample_item *items, int B, float *out, rhd_err *e) {
    const int r = items[0].r, R = rhd_sample_out_side(m, o, r);
    for (int b = 1; b < B; b++)
        if (items[b].r != r) return rhd_errf(e, "sampling: items of one batch have low-res sides %d and %d", r, items[b].r);
    if (m->stage == RHD_STAGE_UPSAMPLE) {
        rhd_err sub;
        if (rhd_ups_check_size(&m->ups->cfg, R, r, &sub)) return rhd_errf(e, "upsampler at %d from %d: %s", R, r, sub.msg);
    }
    const int64_t n = (int64_t)m->C * R * 3 * R, per = (int64_t)m->latent_ch * m->latent_size * m->latent_size;
    rhd_sample_item *rounded = NULL;
    float *low16 = NULL;
    if (m->stage == RHD_STAGE_UPSAMPLE && o->low_fp16) {
        const int64_t nl = (int64_t)m->C * r * 3 * r;
        low16 = rhd_xmalloc(sizeof(float) * (size_t)(nl * B));
        if (low_to_fp16(low16, items, B, nl, e)) return free(low16), -1;
        rounded = rhd_xmalloc(sizeof(rhd_sample_item) * (size_t)B);
        for (int b = 0; b < B; b++) rounded[b] = items[b], rounded[b].low = low16 + b * nl;
        items = rounded;
    }
    uint64_t *keys = rhd_xmalloc(sizeof(uint64_t) * (size_t)B);
    for (int b = 0; b < B; b++) {
        if (m->stage == RHD_STAGE_BASE) keys[b] = rhd_noise_key(o->seed, items[b].name);
        else {
            char nm[1100];
            snprintf(nm, sizeof nm, "upsample/%s", items[b].name);
            keys[b] = rhd_noise_key(o->seed, nm);
        }
    }
    float *ref = rhd_xmalloc(sizeof(float) * (size_t)(per * B));
    cond_net cn = {.m = m, .items = items, .B = B, .R = R, .r = r, .ref = ref, .nref = per};
    if (m->stage == RHD_STAGE_BASE)
        for (int i = 0; i < 3; i++) cn.nF[i] = (int64_t)m->feat_ch[i] * m->feat_size[i] * m->feat_size[i];
    else cn.nlow = (int64_t)m->C * r * 3 * r;
    batch_noise bn = {.o = o, .items = items, .stage = m->stage, .tail = {m->C, R, 3 * R}, .keys = keys,
                      .host = rhd_xmalloc(sizeof(float) * (size_t)(n * B))};
    rhd_cfg cfg = {.model = cond_net_run, .user = &cn, .scale = o->guidance,
                   .C_guided = m->C, .C_out = m->C_out, .HW = (int64_t)R * 3 * R,
                   .C = m->C};
    traj_rec tr = {.ctx = ctx, .items = items, .B = B, .n = n};
    rhd_sampler_opts so = p->so;
    so.HW = (int64_t)R * 3 * R, so.model = rhd_cfg_denoise, so.model_user = &cfg;
    so.noise = batch_noise_draw, so.noise_user = &bn;
    so.on_step = traj_step, so.step_user = &tr;
    float *x = rhd_buf_alloc(ctx, sizeof(float) * (size_t)(n * B));
    int rc = draw_refs(m, o, items, B, keys, ref, e);
    if (!rc) rc = rhd_sample(ctx, &p->sched, &so, x, B, e);
    if (!rc) rhd_buf_download(ctx, out, x, sizeof(float) * (size_t)(n * B));
    rhd_buf_free(ctx, x);
    rhd_cfg_free(&cfg, ctx);
    cond_net_free(&cn, ctx);
    free(keys), free(ref), free(bn.host), free(low16), free(rounded);
    return rc;
}
