/* common/train_base.c: the "base" model kind of the trainer (common/train_run.h): the base UNet
 * (common/models/unet.h) under the Gaussian diffusion of the original base model (spec diffusion.md
 * §3: T = 1000, cosine_light, eps prediction, learned-range variance, the hybrid loss, timesteps
 * rescaled to 1000/T), with classifier-free dropout to the all-ones null condition (§1.4).
 *
 * Initialisation from a seed (no file): PyTorch's default distributions for the original's
 * modules, drawn from Philox (seed, RHD_STREAM_PARAM_INIT, tensor index): convolution and linear
 * weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)); GroupNorm/LayerNorm weight 1, bias 0;
 * the pooling's positional embedding N(0, 1/W); improved-diffusion's zero_module layers start at
 * zero: every ResBlock's last conv (out_layers.3, also when 3D-aware), every attention's
 * proj_out and the output conv out.2. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/models/unet.h"
#include "common/rng.h"
#include "common/train_run.h"

typedef struct base_model {
    rhd_train_model base;            /* first */
    rhd_unet *net;
    rhd_ctx *ctx;
    rhd_diffusion_schedule sched;
    rhd_pred_kind pred;              /* what the network learns: eps (the original), xstart or v */
    int cap;                         /* micro-batch size the buffers hold */
    float *hx0, *href, *hF[RHD_UNET_FEATS], *htm;           /* host staging */
    float *x0, *eps, *xt, *tm, *ref, *F[RHD_UNET_FEATS], *dout; /* ctx side */
} base_model;

#define BASE_DIFFUSION_JSON \
    "{\"steps\":1000,\"schedule\":\"cosine_light\",\"pred\":\"eps\",\"var\":\"learned_range\",\"time_scale\":0}"

/* The network config: the preset, JSON text over it (name: for messages), dropout (< 0: the
 * config's), checked. */
static int base_config(rhd_unet_config *c, const char *json, size_t n, const char *preset, double dropout,
                       const char *name, rhd_err *e) {
    if (rhd_unet_config_preset(c, preset ? preset : "official", e)) return -1;
    if (json && rhd_unet_config_from_json(c, json, n, name, e)) return -1;
    if (dropout >= 0) c->dropout = (float)dropout;
    return rhd_unet_config_check(c, e);
}

static int base_check_config(const char *json, size_t n, const char *preset, const char *name, rhd_err *e) {
    rhd_unet_config c;
    return base_config(&c, json, n, preset, -1, name, e);
}

static rhd_train_model *base_create(const char *json, const char *preset, double dropout, rhd_ctx *ctx, rhd_err *e) {
    rhd_unet_config c;
    if (base_config(&c, json, json ? strlen(json) : 0, preset, dropout, "--model-config", e)) return NULL;
    /* The eps target is in_channels of independent noise per pixel and the first level carries
     * model_channels per pixel at full resolution: narrower, the network cannot pass the noise
     * through and the eps MSE stalls near 1 - model_channels/in_channels at every t (measured:
     * 16 over 32 channels stalls at ~0.55, the same network at 48 channels falls to 0.18 in 300
     * steps; tools/rhd-train.md "Small networks"). */
    if (c.model_channels < c.in_channels)
        rhd_warn("model_channels %d is below in_channels %d: the first level cannot carry the noise of every "
                 "channel, so the eps loss stalls near %.2f; use model_channels >= in_channels "
                 "(the original: 192 over 32)", c.model_channels, c.in_channels,
                 1.0 - (double)c.model_channels / c.in_channels);
    base_model *m = rhd_xcalloc(1, sizeof *m);
    m->ctx = ctx;
    m->pred = RHD_PRED_EPS;
    if (rhd_diffusion_schedule_named(&m->sched, RHD_BETA_COSINE_LIGHT, 1000, e)) { free(m); return NULL; }
    m->net = rhd_unet_create(&c, ctx, NULL, 1, e);
    if (!m->net) { rhd_diffusion_schedule_free(&m->sched); free(m); return NULL; }
    return &m->base;
}

static rhd_params *base_params(rhd_train_model *mm) { return &((base_model *)mm)->net->base.params; }

/* 1 when the tensor of this name starts at zero (improved-diffusion's zero_module). */
static int zero_init(const char *name) {
    return strstr(name, ".out_layers.3.") || strstr(name, ".proj_out.") || !strncmp(name, "out.2.", 6);
}

/* fan_in of the weight belonging to a bias (the tensor "<prefix>.weight"), 0 if none. */
static int64_t fan_in_of(const rhd_params *p, const char *bias) {
    char w[RHD_PARAM_NAME_MAX];
    snprintf(w, sizeof w, "%.*s.weight", (int)(strlen(bias) - 5), bias);
    int i = rhd_params_find(p, w);
    if (i < 0 || p->info[i].ndim < 2) return 0;
    return p->info[i].numel / p->info[i].shape[0];
}

static void base_init(rhd_train_model *mm, uint64_t seed) {
    base_model *m = (base_model *)mm;
    rhd_params *p = base_params(mm);
    float *h = rhd_xcalloc(p->total ? p->total : 1, sizeof(float));
    for (int i = 0; i < p->n; i++) {
        const rhd_param_info *t = &p->info[i];
        float *d = h + t->offset;
        const size_t ln = strlen(t->name);
        const int is_bias = ln > 5 && !strcmp(t->name + ln - 5, ".bias");
        const uint64_t stream = RHD_STREAM(RHD_STREAM_PARAM_INIT, i);
        if (zero_init(t->name)) continue;
        if (strstr(t->name, "positional_embedding")) {
            rhd_rng_fill_normal(d, t->numel, seed, stream, 0, 0.f, (float)(1.0 / sqrt((double)t->shape[t->ndim - 1])));
        } else if (t->ndim >= 2 || (is_bias && fan_in_of(p, t->name))) {
            int64_t fan = t->ndim >= 2 ? t->numel / t->shape[0] : fan_in_of(p, t->name);
            float b = (float)(1.0 / sqrt((double)fan));
            rhd_rng_fill_uniform(d, t->numel, seed, stream, 0, -b, b);
        } else if (!is_bias) {
            for (int64_t k = 0; k < t->numel; k++) d[k] = 1.f; /* a norm's weight */
        }
    }
    rhd_buf_upload(m->ctx, p->data, h, sizeof(float) * (size_t)p->total);
    free(h);
}

static char *base_config_json(const rhd_train_model *mm) {
    return rhd_unet_config_to_json(&((const base_model *)mm)->net->cfg);
}

static int base_T(const rhd_train_model *mm) { return ((const base_model *)mm)->sched.T; }

static void base_setup_data(const rhd_train_model *mm, rhd_train_data *d, rhd_downsample down, size_t cache) {
    rhd_train_data_setup(d, &((const base_model *)mm)->net->cfg, down, cache);
}

static size_t base_arena_bytes(rhd_train_model *mm, int n) {
    return rhd_unet_arena_bytes(((base_model *)mm)->net, n, 1);
}

static int64_t n_x(const rhd_unet_config *c) { return (int64_t)c->in_channels * c->image_size * 3 * c->image_size; }
static int64_t n_ref(const rhd_unet_config *c) { return (int64_t)c->latent_ch * c->latent_size * c->latent_size; }
static int64_t n_f(const rhd_unet_config *c, int i) { return (int64_t)c->feat_ch[i] * c->feat_size[i] * c->feat_size[i]; }

static void free_buffers(base_model *m) {
    float **dev[] = {&m->x0, &m->eps, &m->xt, &m->tm, &m->ref, &m->F[0], &m->F[1], &m->F[2], &m->dout};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) rhd_buf_free(m->ctx, *dev[i]), *dev[i] = NULL;
    free(m->hx0), free(m->href), free(m->htm);
    for (int i = 0; i < RHD_UNET_FEATS; i++) free(m->hF[i]), m->hF[i] = NULL;
    m->hx0 = m->href = m->htm = NULL, m->cap = 0;
}

static void ensure_buffers(base_model *m, int n) {
    if (n <= m->cap) return;
    free_buffers(m);
    const rhd_unet_config *c = &m->net->cfg;
    const size_t f = sizeof(float);
    m->hx0 = rhd_xmalloc(f * n * n_x(c)), m->href = rhd_xmalloc(f * n * n_ref(c)), m->htm = rhd_xmalloc(f * n);
    m->x0 = rhd_buf_alloc(m->ctx, f * n * n_x(c)), m->eps = rhd_buf_alloc(m->ctx, f * n * n_x(c));
    m->xt = rhd_buf_alloc(m->ctx, f * n * n_x(c)), m->tm = rhd_buf_alloc(m->ctx, f * n);
    m->ref = rhd_buf_alloc(m->ctx, f * n * n_ref(c));
    m->dout = rhd_buf_alloc(m->ctx, f * n * n_x(c) / c->in_channels * c->out_channels);
    for (int i = 0; i < RHD_UNET_FEATS; i++)
        m->hF[i] = rhd_xmalloc(f * n * n_f(c, i)), m->F[i] = rhd_buf_alloc(m->ctx, f * n * n_f(c, i));
    m->cap = n;
}

/* A derived key for one use of an item's key. */
static uint64_t subkey(uint64_t key, uint64_t use) {
    uint64_t z = key + 0x9e3779b97f4a7c15ull * (use + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Host inputs of item b: the rolled x0, the conditioning sample (or ones) and the features. */
static int stage_item(base_model *m, const rhd_train_mb *mb, int b, rhd_err *e) {
    const rhd_unet_config *c = &m->net->cfg;
    rhd_train_item it;
    int tmp;
    if (rhd_train_data_get(mb->data, mb->pair[b], &it, &tmp, e)) return -1;
    memcpy(m->hx0 + b * n_x(c), it.x0, sizeof(float) * n_x(c));
    float *ref = m->href + b * n_ref(c);
    if (mb->uncond[b]) {
        for (int64_t k = 0; k < n_ref(c); k++) ref[k] = 1.f;
        for (int i = 0; i < RHD_UNET_FEATS; i++)
            for (int64_t k = 0; k < n_f(c, i); k++) m->hF[i][b * n_f(c, i) + k] = 1.f;
    } else {
        rhd_unet_cond_sample(ref, it.moments, 1, c->latent_ch, c->latent_size, c->noise, subkey(mb->key[b], 1),
                             RHD_STREAM(RHD_STREAM_DIFFUSION, mb->step), 0);
        for (int i = 0; i < RHD_UNET_FEATS; i++) memcpy(m->hF[i] + b * n_f(c, i), it.F[i], sizeof(float) * n_f(c, i));
    }
    m->htm[b] = rhd_diffusion_model_t(&m->sched, mb->t[b], RHD_TIME_SCALE_RESCALED);
    if (tmp) rhd_train_item_free(&it);
    return 0;
}

static void trace_copy(rhd_ctx *ctx, float **dst, const float *src, int64_t n, int dev) {
    free(*dst);
    *dst = rhd_xmalloc(sizeof(float) * n);
    if (dev) rhd_buf_download(ctx, *dst, src, sizeof(float) * n);
    else memcpy(*dst, src, sizeof(float) * n);
}

static void trace_inputs(base_model *m, int n, const float *out) {
    const rhd_unet_config *c = &m->net->cfg;
    rhd_train_trace *tr = m->base.trace;
    trace_copy(m->ctx, &tr->x0, m->hx0, n * n_x(c), 0), trace_copy(m->ctx, &tr->eps, m->eps, n * n_x(c), 1);
    trace_copy(m->ctx, &tr->tm, m->htm, n, 0), trace_copy(m->ctx, &tr->ref, m->href, n * n_ref(c), 0);
    for (int i = 0; i < RHD_UNET_FEATS; i++) trace_copy(m->ctx, &tr->F[i], m->hF[i], n * n_f(c, i), 0);
    trace_copy(m->ctx, &tr->out, out, n * n_x(c) / c->in_channels * c->out_channels, 1);
}

static int base_micro_step(rhd_train_model *mm, const rhd_train_mb *mb, rhd_diffusion_terms *terms, rhd_err *e) {
    base_model *m = (base_model *)mm;
    const rhd_unet_config *c = &m->net->cfg;
    const int n = mb->n;
    ensure_buffers(m, n);
    for (int b = 0; b < n; b++)
        if (stage_item(m, mb, b, e)) return -1;
    const size_t f = sizeof(float);
    rhd_buf_upload(m->ctx, m->x0, m->hx0, f * n * n_x(c)), rhd_buf_upload(m->ctx, m->tm, m->htm, f * n);
    rhd_buf_upload(m->ctx, m->ref, m->href, f * n * n_ref(c));
    for (int i = 0; i < RHD_UNET_FEATS; i++) rhd_buf_upload(m->ctx, m->F[i], m->hF[i], f * n * n_f(c, i));
    uint64_t keys[n];
    for (int b = 0; b < n; b++) keys[b] = subkey(mb->key[b], 2);
    rhd_diffusion_train_noise(m->ctx, m->eps, n, n_x(c), keys, mb->step);
    rhd_diffusion_q_sample(m->ctx, &m->sched, m->xt, m->x0, m->eps, mb->t, n, n_x(c));
    rhd_unet_io io = {.N = n, .x = m->xt, .t = m->tm, .ref = m->ref, .F = {m->F[0], m->F[1], m->F[2]}, .dy = m->dout};
    rhd_nn *r = &m->net->base.run;
    r->seed = subkey(mb->seed, 0x100000000ull + (uint64_t)mb->first_slot);
    r->stream = RHD_STREAM(RHD_STREAM_DROPOUT, mb->step);
    rhd_unet_forward(m->net, &io, 1);
    const int64_t HW = (int64_t)c->image_size * 3 * c->image_size;
    rhd_diffusion_training_loss(m->ctx, &m->sched, m->pred, RHD_VAR_LEARNED_RANGE, m->dout, terms, io.y, m->x0,
                                m->xt, m->eps, mb->t, mb->w, n, c->in_channels, HW);
    if (m->base.trace) trace_inputs(m, n, io.y);
    rhd_unet_backward(m->net, &io);
    return 0;
}

/* --pred: the loss's target (eps, x0 or v, §3.3); the VB term and the sampler read x0 through the
 * same parameterisation, so a checkpoint records it in rhd.config "diffusion" and rhd-sample follows. */
static int base_set_pred(rhd_train_model *mm, int pred, rhd_err *e) {
    if (pred < RHD_PRED_EPS || pred > RHD_PRED_V) return rhd_errf(e, "--pred %d: expected eps, xstart or v", pred);
    ((base_model *)mm)->pred = (rhd_pred_kind)pred;
    return 0;
}

static void base_free(rhd_train_model *mm) {
    base_model *m = (base_model *)mm;
    if (!m) return;
    free_buffers(m);
    rhd_unet_free(m->net);
    rhd_diffusion_schedule_free(&m->sched);
    free(m);
}

const rhd_train_model_ops rhd_train_base_ops = {
    "base", BASE_DIFFUSION_JSON, base_create, base_init, base_params, base_config_json, base_T,
    base_setup_data, base_arena_bytes, base_micro_step, base_free, NULL, NULL, base_set_pred, base_check_config};

const rhd_train_model_ops *rhd_train_model_kind(const char *name) {
    if (!strcmp(name, "base")) return &rhd_train_base_ops;
    if (!strcmp(name, "upsample")) { extern const rhd_train_model_ops rhd_train_upsample_ops; return &rhd_train_upsample_ops; }
    return NULL;
}
