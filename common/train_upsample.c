/* common/train_upsample.c: the "upsample" model kind of the trainer (see train_upsample.h).
 *
 * Initialisation from a seed: PyTorch's default distributions for the original's modules, drawn from
 * Philox (seed, RHD_STREAM_PARAM_INIT, tensor index), as the base kind: convolution and linear
 * weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)); norm weights 1, biases 0; the pooling's
 * positional embedding N(0, 1/E); zero-initialised (spec diffusion.md §2.4, §5.2): every 3D-aware
 * conv (conv2.out_layers1..3) and every cross-attention proj_out. */
#include "common/models/diffusion.h"
/* kernels/diffusion.h and kernels/rays.h (through render_loss.h) define the same fp32 helper macros
 * differently; this file uses neither */
#undef RHD_FMUL
#undef RHD_FADD
#undef RHD_FSUB
#include "common/train_upsample.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/fs.h"
#include "common/model_io.h"
#include "common/rng.h"
#include "common/sha256.h"
#include "common/triplane.h"
#include "formats/triplane_file.h"
#include "common/upsampler_train.h"

#define UPS_DIFFUSION_JSON \
    "{\"steps\":100,\"schedule\":\"sigmoid\",\"pred\":\"xstart\",\"var\":\"fixed_large\",\"time_scale\":1}"

static rhd_train_ups_opts g_opts;
static int g_opts_set;

void rhd_train_ups_opts_default(rhd_train_ups_opts *o) {
    memset(o, 0, sizeof *o);
    o->R = 512, o->sf = 4, o->degrade = RHD_DEGRADE_NORMAL;
    o->render_weight = 1, o->lpips_weight = 0.5;
    o->patch = 64, o->patches = 1, o->view_lo = 0, o->view_hi = 280;
    o->grid_size = 128, o->max_steps = 1024;
}

int rhd_train_ups_render_on(const rhd_train_ups_opts *o) { return o->render_weight > 0 || o->lpips_weight > 0; }

int rhd_train_ups_opts_check(const rhd_train_ups_opts *o, rhd_err *e) {
    if (o->render_clamp && !rhd_train_ups_render_on(o))
        return rhd_errf(e, "--render-clamp: there is no rendering loss (--render-weight 0 --lpips-weight 0), expected it "
                           "only with the rendering loss");
    if (o->sf < 1 || (o->sf & (o->sf - 1))) /* the chain's halvings and 1/sf resizes are then exact */
        return rhd_errf(e, "--factor %d: expected a power of two (1, 2, 4, 8, ...; the original: 4)", o->sf);
    if (o->R < o->sf || o->R % o->sf)
        return rhd_errf(e, "--resolution %d: expected a multiple of the upsampling factor %d", o->R, o->sf);
    if (o->low_res && !o->low_res[strspn(o->low_res, ",")])
        return rhd_errf(e, "--low-res '': expected a folder (or folders separated by commas)");
    if (!rhd_train_ups_render_on(o)) return 0;
    if (!o->decoder)
        return rhd_errf(e, "the rendering loss (--render-weight %g, --lpips-weight %g) needs --decoder FILE (the fitted "
                           "decoder), expected it or --render-weight 0 --lpips-weight 0", o->render_weight, o->lpips_weight);
    if (!o->views)
        return rhd_errf(e, "the rendering loss needs --views DIR (the dataset root with a folder of views per pair "
                           "name), expected it or --render-weight 0 --lpips-weight 0");
    if (o->lpips_weight > 0 && !o->lpips)
        return rhd_errf(e, "--lpips-weight %g needs --lpips FILE (LPIPS-VGG weights, formats/lpips.md; made by "
                           "pipelines/lpips_weights.py, not bundled), expected it or --lpips-weight 0", o->lpips_weight);
    if (o->patch < 1 || o->patches < 1 || (o->lpips_weight > 0 && o->patch < 16))
        return rhd_errf(e, "--patch %d --patches %d: expected a patch of at least 16 pixels with LPIPS (1 without) "
                           "and at least one patch", o->patch, o->patches);
    if (o->view_lo < 0 || o->view_hi < o->view_lo)
        return rhd_errf(e, "--view-range %d-%d: expected 0 <= first <= last", o->view_lo, o->view_hi);
    if (o->grid_size < 8 || (o->grid_size & (o->grid_size - 1)))
        return rhd_errf(e, "--grid-size %d: expected a power of two >= 8", o->grid_size);
    return 0;
}

void rhd_train_ups_configure(const rhd_train_ups_opts *o) { g_opts = *o, g_opts_set = 1; }

typedef struct ups_model {
    rhd_train_model base;            /* first */
    rhd_upsampler *net;
    rhd_ctx *ctx;
    rhd_diffusion_schedule sched;
    rhd_train_ups_opts o;
    rhd_decoder dec;
    rhd_lpips lp;
    rhd_render_loss rl;
    int has_dec, has_lp, has_rl;
    rhd_ups_trainer tr;
    rhd_dataset *views;              /* [npairs], opened on first use (dir NULL: not yet) */
    int npairs;
    float *hr, *ref;                 /* one item on the host: [3,C,R,R], [lc,L,L] */
    char **ldir;                     /* the --low-res dirs [nldir] */
    int nldir;
    float *low;                      /* one item's precomputed condition [3,C,R/sf,R/sf] */
    char dec_sha[65], lp_sha[65];    /* the decoder's and LPIPS weights' sha256 ("" without) */
} ups_model;

static void ups_free(rhd_train_model *mm) {
    ups_model *m = (ups_model *)mm;
    if (!m) return;
    for (int i = 0; i < m->npairs; i++)
        if (m->views[i].dir) rhd_dataset_close(&m->views[i]);
    free(m->views), free(m->hr), free(m->ref), free(m->low);
    for (int i = 0; i < m->nldir; i++) free(m->ldir[i]);
    free(m->ldir);
    if (m->has_rl) rhd_render_loss_free(&m->rl);
    if (m->has_lp) rhd_lpips_free(&m->lp);
    if (m->has_dec) rhd_decoder_free(&m->dec);
    if (m->net) rhd_nn_model_free(&m->net->base);
    rhd_diffusion_schedule_free(&m->sched);
    free(m);
}

/* The frozen decoder, LPIPS and the render loss of the options. */
static int render_setup(ups_model *m, rhd_err *e) {
    const rhd_train_ups_opts *o = &m->o;
    rhd_decoder_file_info info;
    if (rhd_decoder_file_read(o->decoder, m->ctx, 0, &m->dec, &info, e)) return -1;
    m->has_dec = 1;
    if (rhd_sha256_file(o->decoder, m->dec_sha, e)) return -1;
    if (o->lpips_weight > 0 && rhd_sha256_file(o->lpips, m->lp_sha, e)) return -1;
    if (o->lpips_weight > 0) {
        if (rhd_lpips_load(&m->lp, m->ctx, o->lpips, e)) return -1;
        m->has_lp = 1;
        if (m->lp.net != RHD_LPIPS_VGG)
            return rhd_errf(e, "--lpips %s: weights of the %s backbone, expected vgg (spec diffusion.md §5.4)", o->lpips,
                            rhd_lpips_net_name(m->lp.net));
    }
    rhd_render_loss_opts ro;
    rhd_render_loss_opts_default(&ro);
    ro.w_l1 = (float)o->render_weight, ro.w_lpips = (float)o->lpips_weight;
    ro.patch = o->patch, ro.count = o->patches, ro.view_lo = o->view_lo, ro.view_hi = o->view_hi;
    ro.render.grid_size = o->grid_size, ro.render.max_steps = o->max_steps;
    if (rhd_render_loss_init(&m->rl, m->ctx, &m->dec, m->has_lp ? &m->lp : NULL, &ro, e)) return -1;
    m->has_rl = 1;
    return 0;
}

/* "A,B,C" -> the dirs (empty parts skipped). */
static void split_dirs(ups_model *m, const char *list) {
    for (const char *p = list; *p;) {
        const char *q = strchr(p, ',');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n) {
            m->ldir = rhd_xrealloc(m->ldir, sizeof(char *) * (m->nldir + 1));
            char *d = rhd_xmalloc(n + 1);
            memcpy(d, p, n), d[n] = 0;
            m->ldir[m->nldir++] = d;
        }
        p = q ? q + 1 : p + n;
    }
}

/* The network config: the preset, JSON text over it (name: for messages), dropout (< 0: the
 * config's), checked. */
static int ups_config(rhd_ups_config *c, const char *json, size_t n, const char *preset, double dropout, const char *name,
                      rhd_err *e) {
    if (rhd_ups_config_preset(c, preset ? preset : "official", e)) return -1;
    if (json && rhd_ups_config_from_json(c, json, n, name, e)) return -1;
    if (dropout >= 0) c->dropout = (float)dropout;
    return rhd_ups_config_check(c, name, e);
}

static int ups_check_config(const char *json, size_t n, const char *preset, const char *name, rhd_err *e) {
    rhd_ups_config c;
    return ups_config(&c, json, n, preset, -1, name, e);
}

static rhd_train_model *ups_create(const char *json, const char *preset, double dropout, rhd_ctx *ctx, rhd_err *e) {
    rhd_ups_config c;
    if (ups_config(&c, json, json ? strlen(json) : 0, preset, dropout, "--model-config", e)) return NULL;
    ups_model *m = rhd_xcalloc(1, sizeof *m);
    m->ctx = ctx;
    if (g_opts_set) m->o = g_opts;
    else rhd_train_ups_opts_default(&m->o), m->o.render_weight = m->o.lpips_weight = 0;
    if (rhd_train_ups_opts_check(&m->o, e)) goto fail;
    if (rhd_diffusion_schedule_named(&m->sched, RHD_BETA_SIGMOID, 100, e)) goto fail;
    m->net = rhd_ups_create(&c, ctx, NULL, "", 1, e);
    if (!m->net) goto fail;
    if (rhd_train_ups_render_on(&m->o) && render_setup(m, e)) goto fail;
    rhd_ups_train_opts to;
    rhd_ups_train_opts_default(&to);
    to.degrade = m->o.degrade, to.sf = m->o.sf, to.render_clamp = m->o.render_clamp;
    rhd_ups_trainer_init(&m->tr, m->net, &m->sched, m->has_rl ? &m->rl : NULL, &to);
    rhd_err sub;
    if (rhd_ups_train_check(&m->tr, m->o.R, &sub)) {
        rhd_errf(e, "--resolution %d%s%s: %s", m->o.R, m->has_dec ? ", --decoder " : "", m->has_dec ? m->o.decoder : "",
                 sub.msg);
        goto fail;
    }
    if (m->o.low_res) split_dirs(m, m->o.low_res);
    m->hr = rhd_xmalloc(sizeof(float) * (size_t)3 * c.in_ch * m->o.R * m->o.R);
    if (m->nldir) m->low = rhd_xmalloc(sizeof(float) * (size_t)3 * c.cond_ch * (m->o.R / m->o.sf) * (m->o.R / m->o.sf));
    m->ref = rhd_xmalloc(sizeof(float) * (size_t)c.latent_ch * c.latent_size * c.latent_size);
    return &m->base;
fail:
    ups_free(&m->base);
    return NULL;
}

static rhd_params *ups_params(rhd_train_model *mm) { return &((ups_model *)mm)->net->base.params; }

/* 1 when the tensor of this name starts at zero. */
static int zero_init(const char *name) { return strstr(name, ".conv2.out_layers") || strstr(name, ".proj_out."); }

static void ups_init(rhd_train_model *mm, uint64_t seed) {
    ups_model *m = (ups_model *)mm;
    rhd_params *p = ups_params(mm);
    float *h = rhd_xcalloc(p->total ? p->total : 1, sizeof(float));
    for (int i = 0; i < p->n; i++) {
        const rhd_param_info *t = &p->info[i];
        float *d = h + t->offset;
        const size_t ln = strlen(t->name);
        const uint64_t stream = RHD_STREAM(RHD_STREAM_PARAM_INIT, i);
        if (zero_init(t->name)) continue;
        if (strstr(t->name, "positional_embedding")) {
            rhd_rng_fill_normal(d, t->numel, seed, stream, 0, 0.f, (float)(1.0 / sqrt((double)t->shape[t->ndim - 1])));
            continue;
        }
        /* the weight a bias belongs to: "<prefix>.weight" with >= 2 dims */
        int64_t fan = t->ndim >= 2 ? t->numel / t->shape[0] : 0;
        if (t->ndim == 1 && ln > 5 && !strcmp(t->name + ln - 5, ".bias")) {
            char w[RHD_PARAM_NAME_MAX];
            snprintf(w, sizeof w, "%.*s.weight", (int)(ln - 5), t->name);
            int k = rhd_params_find(p, w);
            if (k >= 0 && p->info[k].ndim >= 2) fan = p->info[k].numel / p->info[k].shape[0];
            else continue; /* a norm's bias: 0 */
        }
        if (fan > 0) {
            float b = (float)(1.0 / sqrt((double)fan));
            rhd_rng_fill_uniform(d, t->numel, seed, stream, 0, -b, b);
        } else {
            for (int64_t k = 0; k < t->numel; k++) d[k] = 1.f; /* a norm's weight */
        }
    }
    rhd_buf_upload(m->ctx, p->data, h, sizeof(float) * (size_t)p->total);
    free(h);
}

/* Every field of the network config, as rhd_ups_config_from_json reads it. */
static char *ups_config_json(const rhd_train_model *mm) {
    const rhd_ups_config *c = &((const ups_model *)mm)->net->cfg;
    char mult[64] = "";
    for (int i = 0; i < c->nlevels; i++) snprintf(mult + strlen(mult), sizeof mult - strlen(mult), "%s%d", i ? "," : "", c->ch_mult[i]);
    char *s = rhd_xmalloc(1024);
    snprintf(s, 1024,
             "{\"in_ch\":%d,\"out_ch\":%d,\"cond_ch\":%d,\"n_feats\":%d,\"ch_mult\":[%s],\"num_res_blocks\":%d,"
             "\"n_resblocks\":%d,\"temb_ch\":%d,\"temb_dim\":%d,\"latent_ch\":%d,\"latent_size\":%d,\"patch\":%d,"
             "\"embed_dim\":%d,\"pool_heads\":%d,\"latent_scale\":%.9g,\"groups\":%d,\"eps\":%.9g,\"attn_eps\":%.9g,"
             "\"ln_eps\":%.9g,\"head_ch\":%d,\"dropout\":%.9g,\"checkpoint\":%d}",
             c->in_ch, c->out_ch, c->cond_ch, c->n_feats, mult, c->num_res_blocks, c->n_resblocks, c->temb_ch,
             c->temb_dim, c->latent_ch, c->latent_size, c->patch, c->embed_dim, c->pool_heads, c->latent_scale,
             c->groups, c->eps, c->attn_eps, c->ln_eps, c->head_ch, c->dropout, c->checkpoint);
    return s;
}

static int ups_T(const rhd_train_model *mm) { return ((const ups_model *)mm)->sched.T; }

/* The pairs at R with the network's latent; the multi-scale features are not used, their shapes are
 * taken from the first pair's file so that any features file of rhd-encode passes. */
static void ups_setup_data(const rhd_train_model *mm, rhd_train_data *d, rhd_downsample down, size_t cache) {
    const ups_model *m = (const ups_model *)mm;
    d->C = m->net->cfg.in_ch, d->R = m->o.R, d->lc = m->net->cfg.latent_ch, d->L = m->net->cfg.latent_size;
    d->down = down, d->cache_bytes = cache;
    rhd_st *st;
    rhd_err e = {0};
    if (d->n && !rhd_st_open(d->pair[0].features, &st, &e)) {
        for (int i = 0; i < RHD_UNET_FEATS; i++) {
            char nm[32];
            snprintf(nm, sizeof nm, "ms_feature.%d", i);
            const rhd_st_tensor *t = rhd_st_find(st, nm);
            if (t && t->ndim == 3 && t->shape[1] == t->shape[2]) d->fch[i] = (int)t->shape[0], d->fsz[i] = (int)t->shape[1];
        }
        rhd_st_close(st);
    }
    if (!d->item) d->item = rhd_xcalloc(d->n ? d->n : 1, sizeof *d->item);
}

/* The memory one item's step takes besides the parameters' buffers (items run one at a time, so
 * the micro-batch does not change it): the network's activation arena for a training pass at N = 1,
 * measured by a dry run of its forward and backward (what rhd_nn_model_forward allocates), plus
 * rhd_ups_train_step's buffers (x0, x_t, eps, dout, the condition, ref, t on the context; x0 and the
 * condition on the host), the render loss's three triplane buffers and the kind's own host copies
 * (HR planes, ref, precomputed condition). Not counted: the render loss's per-patch ray buffers and
 * LPIPS activations (small at 64 px patches). */
static size_t ups_arena_bytes(rhd_train_model *mm, int n) {
    ups_model *m = (ups_model *)mm;
    const rhd_ups_config *c = &m->net->cfg;
    const int R = m->o.R, r = R / m->o.sf;
    rhd_nn *run = &m->net->base.run;
    rhd_ups_io io = {.N = 1, .R = R, .r = r};
    const int train = run->train;
    run->train = 1, run->dry = 1, run->used = run->peak = 0, run->ntape = 0, run->rng_offset = 0;
    rhd_upsampler_ops.forward(run, &m->net->base, &io);
    rhd_upsampler_ops.backward(run, &m->net->base, &io);
    const size_t arena = run->peak + 256;
    run->dry = 0, run->ntape = 0, run->rng_offset = 0, run->train = train;
    const size_t tri = (size_t)3 * c->in_ch * R * R, low = (size_t)3 * c->cond_ch * r * r;
    const size_t ref = (size_t)c->latent_ch * c->latent_size * c->latent_size;
    size_t fl = 4 * tri + low + ref + 1 + tri + low;   /* the step's context and host buffers */
    if (m->has_rl) fl += 3 * tri;
    fl += tri + ref + (m->low ? low : 0);              /* the kind's host copies */
    (void)n;
    return arena + sizeof(float) * fl;
}

/* The options that decide the numbers, for rhd.config's "train" object (resume compares them). */
static char *ups_train_keys(const rhd_train_model *mm) {
    const ups_model *m = (const ups_model *)mm;
    const rhd_train_ups_opts *o = &m->o;
    char *s = rhd_xmalloc(1024 + (o->low_res ? 2 * strlen(o->low_res) : 0));
    int k = sprintf(s, "{\"resolution\":%d,\"factor\":%d,\"degradation\":\"%s\",\"low_res\":\"", o->R, o->sf,
                    rhd_degrade_kind_name(o->degrade));
    for (const char *p = o->low_res ? o->low_res : ""; *p; p++) { /* a JSON string */
        if (*p == '"' || *p == '\\') s[k++] = '\\';
        s[k++] = (unsigned char)*p < 0x20 ? '?' : *p;
    }
    sprintf(s + k, "\",\"render_weight\":%.17g,\"lpips_weight\":%.17g,\"patch\":%d,\"patches\":%d,\"view_range\":\"%d-%d\","
            "\"grid_size\":%d,\"max_steps\":%d,\"render_clamp\":%s,\"decoder_sha256\":\"%s\",\"lpips_sha256\":\"%s\"}",
            o->render_weight, o->lpips_weight, o->patch, o->patches, o->view_lo, o->view_hi, o->grid_size, o->max_steps,
            o->render_clamp ? "true" : "false", m->dec_sha, m->lp_sha);
    return s;
}

/* The low-res triplane of pair `name` in dir k: <dir>/<name>.safetensors, else .npy; C channels of
 * side R / sf, finite (the reader checks that), into dst [3,C,r,r]. */
static int load_low(const ups_model *m, int k, const char *name, float *dst, rhd_err *e) {
    const int C = m->net->cfg.cond_ch, r = m->o.R / m->o.sf;
    char fn[1024];
    snprintf(fn, sizeof fn, "%s.safetensors", name);
    char *path = rhd_path_join(m->ldir[k], fn);
    if (!rhd_file_exists(path)) {
        free(path);
        snprintf(fn, sizeof fn, "%s.npy", name);
        path = rhd_path_join(m->ldir[k], fn);
    }
    if (!rhd_file_exists(path)) {
        rhd_errf(e, "--low-res %s: no %s.safetensors or %s.npy for pair '%s', expected the low-res triplane of every "
                    "pair in every --low-res folder", m->ldir[k], name, name, name);
        free(path);
        return -1;
    }
    rhd_triplane t = {0};
    int rc = rhd_triplane_file_read(path, &t, NULL, e);
    if (!rc && (t.C != C || t.R != r))
        rc = rhd_errf(e, "%s: a low-res triplane [3,%d,%d,%d], expected [3,%d,%d,%d] (the upsampler's cond_ch %d at side "
                         "--resolution %d / %d; --low-res files are used as found, not resized)", path, t.C, t.R, t.R,
                      C, r, r, C, m->o.R, m->o.sf);
    if (!rc) memcpy(dst, t.planes, sizeof(float) * (size_t)3 * C * r * r);
    if (t.planes) rhd_triplane_free(&t);
    free(path);
    return rc;
}

static int ups_validate(rhd_train_model *mm, const rhd_train_data *d, int first, int stride, rhd_err *e) {
    ups_model *m = (ups_model *)mm;
    for (int i = first; i < d->n; i += stride)
        for (int k = 0; k < m->nldir; k++)
            if (load_low(m, k, d->pair[i].name, m->low, e)) return -1;
    return 0;
}

/* A derived key for one use of an item's key (the base kind's derivation). */
static uint64_t subkey(uint64_t key, uint64_t use) {
    uint64_t z = key + 0x9e3779b97f4a7c15ull * (use + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The views of pair i (opened once). */
static const rhd_dataset *pair_views(ups_model *m, const rhd_train_data *d, int i, rhd_err *e) {
    if (!m->views) m->views = rhd_xcalloc(d->n, sizeof *m->views), m->npairs = d->n;
    rhd_dataset *v = &m->views[i];
    if (v->dir) return v;
    char *dir = rhd_path_join(m->o.views, d->pair[i].name);
    rhd_err sub;
    int rc = rhd_dataset_open(v, dir, NULL, 0, NULL, &sub);
    if (rc) {
        memset(v, 0, sizeof *v);
        rhd_errf(e, "--views %s: the views of pair '%s' (%s): %s", m->o.views, d->pair[i].name, dir, sub.msg);
    }
    free(dir);
    return rc ? NULL : v;
}

/* One item: its inputs, patches and the training step. */
static int item_step(ups_model *m, const rhd_train_mb *mb, int b, rhd_diffusion_terms *term, rhd_err *e) {
    const rhd_ups_config *c = &m->net->cfg;
    const int R = m->o.R, K = m->o.patches;
    rhd_train_item it;
    int tmp;
    if (rhd_train_data_get(mb->data, mb->pair[b], &it, &tmp, e)) return -1;
    rhd_triplane_unroll(m->hr, it.x0, c->in_ch, R);
    const int64_t nref = (int64_t)c->latent_ch * c->latent_size * c->latent_size;
    const uint64_t key = mb->key[b], stream = RHD_STREAM(RHD_STREAM_DIFFUSION, mb->step);
    if (mb->uncond[b]) for (int64_t k = 0; k < nref; k++) m->ref[k] = 1.f;
    else rhd_unet_cond_sample(m->ref, it.moments, 1, c->latent_ch, c->latent_size, RHD_UNET_NOISE_UNIFORM,
                              subkey(key, 1), stream, 0);
    if (tmp) rhd_train_item_free(&it);
    if (m->nldir) {
        int k = 0;
        if (m->nldir > 1) k = (int)(rhd_rng_uniform(subkey(key, 6), stream, 0) * (float)m->nldir);
        if (k >= m->nldir) k = m->nldir - 1;
        if (load_low(m, k, mb->data->pair[mb->pair[b]].name, m->low, e)) return -1;
    }
    rhd_render_patch *pp = NULL;
    rhd_ups_render_target *tg = NULL;
    int rc = 0;
    if (m->has_rl) {
        const rhd_dataset *v = pair_views(m, mb->data, mb->pair[b], e);
        if (!v) return -1;
        pp = rhd_xcalloc(K, sizeof *pp), tg = rhd_xcalloc(K, sizeof *tg);
        for (int k = 0; k < K && !rc; k++) {
            rhd_err sub;
            if (rhd_render_loss_make_patch(&m->rl.o, v, subkey(key, 5), stream, (uint64_t)k << 8, k ? pp[0].ds : 0, &pp[k],
                                           &sub))
                rc = rhd_errf(e, "--views %s, pair '%s': %s", m->o.views, mb->data->pair[mb->pair[b]].name, sub.msg);
            tg[k].cam = pp[k].cam, tg[k].x0 = pp[k].x0, tg[k].y0 = pp[k].y0, tg[k].gt = pp[k].gt;
        }
    }
    if (!rc) {
        const uint64_t nkey = subkey(key, 2);
        float *tlow = NULL;
        if (m->base.trace) {
            const size_t r = (size_t)(R / m->o.sf);
            tlow = m->base.trace->low = rhd_xrealloc(m->base.trace->low, sizeof(float) * c->cond_ch * r * 3 * r);
        }
        rhd_ups_batch bt = {.N = 1, .hr = m->hr, .ref = m->ref, .t = &mb->t[b], .noise_keys = &nkey, .step = mb->step,
                            .deg_seed = subkey(key, 3), .deg_stream = stream, .low = m->low, .grid_seed = subkey(key, 4),
                            .targets = tg, .per_sample = tg ? K : 0, .grad_scale = (float)(mb->w[b] / mb->n),
                            .trace_low = tlow};
        rhd_ups_step_out out;
        rhd_ups_train_step(&m->tr, &bt, R, &out);
        if (m->base.trace) m->base.trace->samples = out.samples;
        term->mse = out.rec, term->vb = out.render, term->loss = out.loss;
    }
    for (int k = 0; pp && k < K; k++) rhd_render_patch_free(&pp[k]);
    free(pp), free(tg);
    return rc;
}

static int ups_micro_step(rhd_train_model *mm, const rhd_train_mb *mb, rhd_diffusion_terms *terms, rhd_err *e) {
    ups_model *m = (ups_model *)mm;
    for (int b = 0; b < mb->n; b++) {
        memset(&terms[b], 0, sizeof terms[b]);
        if (item_step(m, mb, b, &terms[b], e)) return -1;
    }
    return 0;
}

const rhd_train_model_ops rhd_train_upsample_ops = {
    "upsample", UPS_DIFFUSION_JSON, ups_create, ups_init, ups_params, ups_config_json, ups_T,
    ups_setup_data, ups_arena_bytes, ups_micro_step, ups_free, ups_validate, ups_train_keys, NULL, ups_check_config};
