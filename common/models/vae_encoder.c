/* common/models/vae_encoder.c: the SDXL-VAE encoder assembly (diffusers Encoder, the module
 * script/myvae.py calls directly); see vae_encoder.h for the architecture and the contracts. */
#include "common/models/vae_encoder.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/rng.h"
#include "kernels/act.h"
#include "kernels/attention.h"
#include "kernels/conv2d.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/norm.h"

/* ------------------------------------------------------------------------------------------- */
/* configuration                                                                               */

void rhd_vae_config_sdxl(rhd_vae_config *c) {
    memset(c, 0, sizeof *c);
    c->in_channels = 3;
    c->latent_channels = 4;
    c->block_out_channels[0] = 128;
    c->block_out_channels[1] = 256;
    c->block_out_channels[2] = 512;
    c->block_out_channels[3] = 512;
    c->layers_per_block = 2;
    c->norm_num_groups = 32;
    c->eps = 1e-6f;
    c->mid_attention = 1;
}

char *rhd_vae_config_str(const rhd_vae_config *c, char *buf, size_t n) {
    snprintf(buf, n,
             "block_out_channels [%d,%d,%d,%d], layers_per_block %d, norm_num_groups %d, latent_channels %d, "
             "in_channels %d, mid attention %s",
             c->block_out_channels[0], c->block_out_channels[1], c->block_out_channels[2], c->block_out_channels[3],
             c->layers_per_block, c->norm_num_groups, c->latent_channels, c->in_channels,
             c->mid_attention ? "on" : "off");
    return buf;
}

int rhd_vae_config_check(const rhd_vae_config *c, const char *name, rhd_err *e) {
    if (c->in_channels < 1 || c->in_channels > 64)
        return rhd_errf(e, "%s: in_channels is %d, expected 1..64", name, c->in_channels);
    if (c->latent_channels < 1 || c->latent_channels > 1024)
        return rhd_errf(e, "%s: latent_channels is %d, expected 1..1024", name, c->latent_channels);
    if (c->layers_per_block < 1 || c->layers_per_block > RHD_VAE_MAX_LAYERS)
        return rhd_errf(e, "%s: layers_per_block is %d, expected 1..%d", name, c->layers_per_block, RHD_VAE_MAX_LAYERS);
    if (c->norm_num_groups < 1) return rhd_errf(e, "%s: norm_num_groups is %d, expected a positive integer", name, c->norm_num_groups);
    for (int i = 0; i < RHD_VAE_BLOCKS; i++) {
        int ch = c->block_out_channels[i];
        if (ch < 1 || ch > 16384)
            return rhd_errf(e, "%s: block_out_channels[%d] is %d, expected 1..16384", name, i, ch);
        if (ch % c->norm_num_groups)
            return rhd_errf(e, "%s: block_out_channels[%d] = %d is not divisible by norm_num_groups = %d, expected a "
                               "multiple (GroupNorm)", name, i, ch, c->norm_num_groups);
    }
    if (!(c->eps > 0 && c->eps < 1)) return rhd_errf(e, "%s: eps is %g, expected 0 < eps < 1", name, c->eps);
    return 0;
}

static int json_int(const cJSON *o, const char *key, int dflt, int *out, const char *name, rhd_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) { *out = dflt; return 0; }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 1e9)
        return rhd_errf(e, "%s: '%s' is not an integer, expected an integer such as %d", name, key, dflt);
    *out = (int)v->valuedouble;
    return 0;
}

int rhd_vae_config_from_json(rhd_vae_config *c, const char *text, size_t n, const char *name, rhd_err *e) {
    rhd_vae_config_sdxl(c);
    cJSON *root = cJSON_ParseWithLength(text, n);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        int64_t off = at && at >= text && at <= text + n ? (int64_t)(at - text) : -1;
        return rhd_errf(e, "%s: not valid JSON (near byte %ld), expected a diffusers AutoencoderKL config", name, off);
    }
    int rc = -1;
    if (!cJSON_IsObject(root)) { rhd_errf(e, "%s: JSON %s, expected an object", name, cJSON_IsArray(root) ? "array" : "value"); goto out; }
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(root, "_class_name");
    if (cls && (!cJSON_IsString(cls) || strcmp(cls->valuestring, "AutoencoderKL") != 0)) {
        rhd_errf(e, "%s: _class_name is '%s', expected 'AutoencoderKL'", name, cJSON_IsString(cls) ? cls->valuestring : "(not a string)");
        goto out;
    }
    /* diffusers' defaults for absent keys (AutoencoderKL.__init__) */
    if (json_int(root, "in_channels", 3, &c->in_channels, name, e) ||
        json_int(root, "latent_channels", 4, &c->latent_channels, name, e) ||
        json_int(root, "layers_per_block", 1, &c->layers_per_block, name, e) ||
        json_int(root, "norm_num_groups", 32, &c->norm_num_groups, name, e))
        goto out;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "act_fn");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu") != 0)) {
        rhd_errf(e, "%s: act_fn is '%s', expected 'silu'", name, cJSON_IsString(act) ? act->valuestring : "(not a string)");
        goto out;
    }
    const cJSON *mid = cJSON_GetObjectItemCaseSensitive(root, "mid_block_add_attention");
    if (mid && !cJSON_IsBool(mid)) { rhd_errf(e, "%s: mid_block_add_attention is not a boolean, expected true or false", name); goto out; }
    c->mid_attention = mid ? cJSON_IsTrue(mid) : 1;
    const cJSON *boc = cJSON_GetObjectItemCaseSensitive(root, "block_out_channels");
    int nb = 1;
    if (boc) {
        if (!cJSON_IsArray(boc)) { rhd_errf(e, "%s: block_out_channels is not an array, expected e.g. [128,256,512,512]", name); goto out; }
        nb = cJSON_GetArraySize(boc);
    }
    if (nb != RHD_VAE_BLOCKS) {
        rhd_errf(e, "%s: block_out_channels has %d %s, expected %d (F0, F1, F2 are the outputs of the first three of "
                    "four down blocks)", name, nb, nb == 1 ? "entry" : "entries", RHD_VAE_BLOCKS);
        goto out;
    }
    for (int i = 0; i < nb; i++) {
        const cJSON *v = cJSON_GetArrayItem(boc, i);
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 || v->valuedouble > 16384) {
            rhd_errf(e, "%s: block_out_channels[%d] is not a positive integer, expected e.g. [128,256,512,512]", name, i);
            goto out;
        }
        c->block_out_channels[i] = (int)v->valuedouble;
    }
    const cJSON *dbt = cJSON_GetObjectItemCaseSensitive(root, "down_block_types");
    int nd = dbt ? (cJSON_IsArray(dbt) ? cJSON_GetArraySize(dbt) : -1) : 1;
    if (nd < 0) { rhd_errf(e, "%s: down_block_types is not an array, expected a list of 'DownEncoderBlock2D'", name); goto out; }
    for (int i = 0; dbt && i < nd; i++) {
        const cJSON *v = cJSON_GetArrayItem(dbt, i);
        if (!cJSON_IsString(v) || strcmp(v->valuestring, "DownEncoderBlock2D") != 0) {
            rhd_errf(e, "%s: down_block_types[%d] is '%s', expected 'DownEncoderBlock2D' (the only encoder block "
                        "rhd-encode builds)", name, i, cJSON_IsString(v) ? v->valuestring : "(not a string)");
            goto out;
        }
    }
    if (nd != nb) {
        rhd_errf(e, "%s: down_block_types has %d entries and block_out_channels %d, expected the same number", name, nd, nb);
        goto out;
    }
    rc = rhd_vae_config_check(c, name, e);
out:
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------------------------------- */
/* parameter table                                                                             */

static void add_resnet(rhd_params *p, rhd_nn_resblock *r, int cin, int cout, const rhd_vae_config *c,
                       const char *prefix) {
    rhd_nn_resblock_cfg rc = {.cin = cin, .cout = cout, .groups = c->norm_num_groups, .eps = c->eps,
                              .names = RHD_NN_NAMES_VAE};
    rhd_nn_resblock_init(p, r, prefix, &rc); /* norm1, conv1, norm2, conv2, conv_shortcut */
}

void rhd_vae_encoder_init(rhd_vae_encoder *m, const rhd_vae_config *cfg) {
    rhd_err e;
    if (rhd_vae_config_check(cfg, "vae config", &e)) rhd_fatal_at(__FILE__, __LINE__, "%s", e.msg);
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    rhd_params *p = &m->params;
    rhd_params_init(p);
    const int *C = cfg->block_out_channels;
    char s[RHD_PARAM_NAME_MAX];
    rhd_nn_conv_init(p, &m->conv_in, "encoder.conv_in", cfg->in_channels, C[0], 3, 1, 1, 1);
    for (int i = 0; i < RHD_VAE_BLOCKS; i++) {
        for (int j = 0; j < cfg->layers_per_block; j++) {
            snprintf(s, sizeof s, "encoder.down_blocks.%d.resnets.%d", i, j);
            add_resnet(p, &m->down[i][j], j == 0 && i > 0 ? C[i - 1] : C[i], C[i], cfg, s);
        }
        if (i < RHD_VAE_BLOCKS - 1) {
            snprintf(s, sizeof s, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            rhd_nn_conv_init_down(p, &m->down_conv[i], s, C[i]);
        }
    }
    const int Cm = C[RHD_VAE_BLOCKS - 1];
    add_resnet(p, &m->mid[0], Cm, Cm, cfg, "encoder.mid_block.resnets.0");
    if (cfg->mid_attention) {
        rhd_vae_attn *a = &m->attn;
        rhd_nn_groupnorm_init(p, &a->norm, "encoder.mid_block.attentions.0.group_norm", Cm, cfg->norm_num_groups, cfg->eps);
        rhd_nn_linear_init(p, &a->q, "encoder.mid_block.attentions.0.to_q", Cm, Cm, 1);
        rhd_nn_linear_init(p, &a->k, "encoder.mid_block.attentions.0.to_k", Cm, Cm, 1);
        rhd_nn_linear_init(p, &a->v, "encoder.mid_block.attentions.0.to_v", Cm, Cm, 1);
        rhd_nn_linear_init(p, &a->o, "encoder.mid_block.attentions.0.to_out.0", Cm, Cm, 1);
    }
    add_resnet(p, &m->mid[1], Cm, Cm, cfg, "encoder.mid_block.resnets.1");
    rhd_nn_groupnorm_init(p, &m->norm_out, "encoder.conv_norm_out", Cm, cfg->norm_num_groups, cfg->eps);
    rhd_nn_conv_init(p, &m->conv_out, "encoder.conv_out", Cm, 2 * cfg->latent_channels, 3, 1, 1, 1);
}

void rhd_vae_encoder_alloc(rhd_vae_encoder *m, rhd_ctx *ctx) { rhd_params_alloc(&m->params, ctx, 0, 0); }

void rhd_vae_encoder_free(rhd_vae_encoder *m) {
    rhd_params_free(&m->params);
    memset(m, 0, sizeof *m);
}

static int is_norm_param(const char *name) { return strstr(name, "norm") != NULL; }

void rhd_vae_encoder_init_random(rhd_vae_encoder *m, uint64_t seed) {
    const rhd_params *p = &m->params;
    RHD_ASSERT(p->data);
    for (int i = 0; i < p->n; i++) {
        const rhd_param_info *t = &p->info[i];
        float *host = rhd_xmalloc(sizeof(float) * t->numel);
        int bias = t->ndim == 1 && !is_norm_param(t->name);
        if (is_norm_param(t->name)) {
            float v = strstr(t->name, ".weight") ? 1.0f : 0.0f;
            for (int64_t k = 0; k < t->numel; k++) host[k] = v;
        } else {
            /* a bias follows its weight in the table: fan_in = weight numel / out channels */
            const rhd_param_info *wt = bias ? &p->info[i - 1] : t;
            double fan_in = (double)wt->numel / wt->shape[0];
            float bound = (float)(1.0 / sqrt(fan_in));
            rhd_rng_fill_uniform(host, t->numel, seed, RHD_STREAM(RHD_STREAM_PARAM_INIT, i), 0, -bound, bound);
        }
        rhd_buf_upload(p->ctx, rhd_param(p, i), host, sizeof(float) * t->numel);
        free(host);
    }
}

/* The older diffusers attention names (query/key/value/proj_attn) of the same tensor, or NULL. */
static const char *old_attn_name(const char *name, char *buf, size_t n) {
    static const char *const map[][2] = {{".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."},
                                         {".to_out.0.", ".proj_attn."}};
    if (!strstr(name, ".attentions.")) return NULL;
    for (int k = 0; k < 4; k++) {
        const char *at = strstr(name, map[k][0]);
        if (!at) continue;
        snprintf(buf, n, "%.*s%s%s", (int)(at - name), name, map[k][1], at + strlen(map[k][0]));
        return buf;
    }
    return NULL;
}

int rhd_vae_encoder_load(rhd_vae_encoder *m, const rhd_st *st, rhd_err *e) {
    rhd_params *p = &m->params;
    RHD_ASSERT(p->data);
    char cfg[400];
    rhd_vae_config_str(&m->cfg, cfg, sizeof cfg);
    if (!rhd_st_find(st, "encoder.conv_in.weight") && rhd_st_find(st, "conv_in.weight"))
        return rhd_errf(e, "%s: tensor 'encoder.conv_in.weight' is missing but 'conv_in.weight' exists, expected a whole "
                           "AutoencoderKL state dict (names starting with 'encoder.')", st->name);
    for (int i = 0; i < p->n; i++) {
        const rhd_param_info *t = &p->info[i];
        char alt[RHD_PARAM_NAME_MAX + 16], got[128], want[128];
        const char *altname = old_attn_name(t->name, alt, sizeof alt);
        const rhd_st_tensor *s = rhd_st_find(st, t->name);
        if (!s && altname) s = rhd_st_find(st, altname);
        if (!s) {
            if (strstr(t->name, "down_blocks.") && rhd_st_find(st, "encoder.down.0.block.0.norm1.weight"))
                return rhd_errf(e, "%s: tensor '%s' is missing: the file has the original LDM names "
                                   "('encoder.down.0.block.0.norm1.weight', ...), expected the diffusers AutoencoderKL "
                                   "layout (convert it with diffusers first)", st->name, t->name);
            return rhd_errf(e, "%s: tensor '%s'%s%s%s is missing, expected %s for the encoder with %s", st->name, t->name,
                            altname ? " (or '" : "", altname ? altname : "", altname ? "')" : "",
                            rhd_shape_str(t->shape, t->ndim, want, sizeof want), cfg);
        }
        /* attention projections may be stored as 1x1 convs [C, C, 1, 1] */
        int conv_shaped = t->ndim == 2 && s->ndim == 4 && s->shape[2] == 1 && s->shape[3] == 1 &&
                          s->shape[0] == t->shape[0] && s->shape[1] == t->shape[1];
        if (!rhd_shape_eq(s->shape, s->ndim, t->shape, t->ndim) && !conv_shaped)
            return rhd_errf(e, "%s: tensor '%s' has shape %s, expected %s (%s)", st->name, s->name,
                            rhd_shape_str(s->shape, s->ndim, got, sizeof got),
                            rhd_shape_str(t->shape, t->ndim, want, sizeof want), cfg);
        if (s->dtype != RHD_F32 && s->dtype != RHD_F16 && s->dtype != RHD_BF16 && s->dtype != RHD_F64)
            return rhd_errf(e, "%s: tensor '%s' has dtype %s, expected F32, F16, BF16 or F64", st->name, s->name,
                            rhd_dtype_name(s->dtype));
        float *host = rhd_xmalloc(sizeof(float) * t->numel);
        rhd_st_to_f32(s, host);
        for (int64_t k = 0; k < t->numel; k++)
            if (!isfinite(host[k])) {
                free(host);
                return rhd_errf(e, "%s: tensor '%s' holds a non-finite value at flat index %lld, expected finite weights",
                                st->name, s->name, (long long)k);
            }
        rhd_buf_upload(p->ctx, rhd_param(p, i), host, sizeof(float) * t->numel);
        free(host);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* forward                                                                                     */

void rhd_vae_encoder_shapes(const rhd_vae_encoder *m, int H, int W, int64_t out[4][3]) {
    const int *C = m->cfg.block_out_channels;
    out[0][0] = 2 * m->cfg.latent_channels, out[0][1] = H / 8, out[0][2] = W / 8;
    for (int i = 0; i < 3; i++) out[i + 1][0] = C[i], out[i + 1][1] = H >> (i + 1), out[i + 1][2] = W >> (i + 1);
}

int rhd_vae_encoder_check_size(int H, int W, rhd_err *e) {
    if (H < 8 || W < 8 || H % 8 || W % 8)
        return rhd_errf(e, "input size %dx%d, expected multiples of 8 (three 2x downsamplers)", W, H);
    return 0;
}

/* y (N,C,T) = x + to_out(attention(to_q, to_k, to_v of GN(x) as tokens)). The token products run
 * one portrait at a time so that a portrait's numbers never depend on the batch it was encoded in
 * (a GEMM over N*T rows may round differently from one over T rows). Inference only. */
static void attention(rhd_nn *r, const rhd_vae_attn *a, float *y, const float *x, int N, int C, int64_t T) {
    size_t at = rhd_nn_mark(r);
    size_t n1 = (size_t)C * T;
    float *t1 = rhd_nn_alloc(r, N * n1), *t2 = rhd_nn_alloc(r, N * n1);
    float *q = rhd_nn_alloc(r, n1), *k = rhd_nn_alloc(r, n1), *v = rhd_nn_alloc(r, n1), *o = rhd_nn_alloc(r, n1);
    rhd_nn_groupnorm_forward(r, &a->norm, t1, x, N, T, 0); /* (N,C,T) */
    if (!r->dry) rhd_transpose_forward(r->ctx, t2, t1, N, C, T); /* tokens (N,T,C) */
    for (int i = 0; i < N; i++) {
        const float *tok = r->dry ? NULL : t2 + i * n1;
        float *proj = r->dry ? NULL : t1 + i * n1;
        rhd_nn_linear_forward(r, &a->q, q, tok, (int)T);
        rhd_nn_linear_forward(r, &a->k, k, tok, (int)T);
        rhd_nn_linear_forward(r, &a->v, v, tok, (int)T);
        if (!r->dry) rhd_attention_forward(r->ctx, o, NULL, q, k, v, 1, 1, (int)T, (int)T, C, 1.0f / sqrtf((float)C));
        rhd_nn_linear_forward(r, &a->o, proj, o, (int)T); /* (T,C) */
    }
    if (!r->dry) {
        rhd_transpose_forward(r->ctx, t2, t1, N, T, C); /* (N,C,T) */
        rhd_add_forward(r->ctx, y, t2, x, (int64_t)(N * n1));
    }
    rhd_nn_release(r, at);
}

typedef struct vae_io {
    const rhd_vae_encoder *m;
    float *moments, *f0, *f1, *f2;
    const float *x;
    int N, H, W;
} vae_io;

static void forward(rhd_nn *r, void *user) {
    const vae_io *io = user;
    const rhd_vae_encoder *m = io->m;
    const rhd_vae_config *c = &m->cfg;
    const int *C = c->block_out_channels, N = io->N;
    float *feat[3] = {io->f0, io->f1, io->f2};
    /* the largest activation: level i runs at (H>>i, W>>i) with C[i-1] and C[i] channels */
    size_t maxact = 0;
    for (int i = 0; i < RHD_VAE_BLOCKS; i++) {
        int ch = C[i] > C[i > 0 ? i - 1 : 0] ? C[i] : C[i > 0 ? i - 1 : 0];
        size_t s = (size_t)ch * (size_t)(io->H >> i) * (size_t)(io->W >> i);
        if (s > maxact) maxact = s;
    }
    size_t at = rhd_nn_mark(r);
    float *A = rhd_nn_alloc(r, N * maxact), *B = rhd_nn_alloc(r, N * maxact); /* ping-pong activations */
    const float *cur = A;
#define OTHER(p) ((p) == A ? B : A)
    rhd_nn_conv_forward(r, &m->conv_in, A, io->x, N, io->H, io->W); /* (N,C0,H,W) */
    int h = io->H, wd = io->W;
    for (int i = 0; i < RHD_VAE_BLOCKS; i++) {
        for (int j = 0; j < c->layers_per_block; j++) {
            float *out = OTHER(cur);
            rhd_nn_resblock_forward(r, &m->down[i][j], out, cur, NULL, N, h, wd); /* (N,C[i],h,wd) */
            cur = out;
        }
        if (i < RHD_VAE_BLOCKS - 1) { /* Downsample2D: pad right and bottom by one, conv 3x3/2 */
            rhd_nn_conv_forward(r, &m->down_conv[i], feat[i], cur, N, h, wd);
            cur = feat[i]; /* F_i (N,C[i],h/2,wd/2) */
            h /= 2, wd /= 2;
        }
    }
    const int Cm = C[RHD_VAE_BLOCKS - 1];
    float *out = OTHER(cur);
    rhd_nn_resblock_forward(r, &m->mid[0], out, cur, NULL, N, h, wd);
    cur = out;
    if (c->mid_attention) {
        out = OTHER(cur);
        attention(r, &m->attn, out, cur, N, Cm, (int64_t)h * wd);
        cur = out;
    }
    out = OTHER(cur);
    rhd_nn_resblock_forward(r, &m->mid[1], out, cur, NULL, N, h, wd);
    cur = out;
    float *t = OTHER(cur);
    rhd_nn_groupnorm_forward(r, &m->norm_out, t, cur, N, (int64_t)h * wd, 1);
    rhd_nn_conv_forward(r, &m->conv_out, io->moments, t, N, h, wd);
#undef OTHER
    rhd_nn_release(r, at);
}

size_t rhd_vae_encoder_arena_bytes(const rhd_vae_encoder *m, int N, int H, int W) {
    rhd_nn r;
    rhd_nn_init(&r, NULL, (rhd_params *)&m->params);
    vae_io io = {m, NULL, NULL, NULL, NULL, NULL, N, H, W};
    r.dry = 1;
    forward(&r, &io);
    size_t peak = r.peak;
    rhd_nn_free(&r);
    return peak + 256;
}

void rhd_vae_encoder_forward(rhd_ctx *ctx, const rhd_vae_encoder *m, rhd_arena *a, float *moments, float *f0,
                             float *f1, float *f2, const float *x, int N, int H, int W) {
    rhd_err e;
    if (rhd_vae_encoder_check_size(H, W, &e)) rhd_fatal_at(__FILE__, __LINE__, "%s", e.msg);
    RHD_ASSERT(N >= 1 && m->params.data && m->params.ctx == ctx && a->ctx == ctx);
    rhd_nn r;
    rhd_nn_init(&r, ctx, (rhd_params *)&m->params);
    rhd_nn_use_arena(&r, a);
    rhd_nn_begin(&r, 0);
    vae_io io = {m, moments, f0, f1, f2, x, N, H, W};
    forward(&r, &io);
    rhd_nn_free(&r);
}

double rhd_vae_encoder_macs(const rhd_vae_encoder *m, int H, int W) {
    const rhd_vae_config *c = &m->cfg;
    const int *C = c->block_out_channels;
    double macs = 0, hw = (double)H * W;
    macs += hw * C[0] * c->in_channels * 9;
    for (int i = 0; i < RHD_VAE_BLOCKS; i++) {
        for (int j = 0; j < c->layers_per_block; j++) {
            const rhd_nn_resblock_cfg *r = &m->down[i][j].cfg;
            macs += hw * 9.0 * r->cout * (r->cin + r->cout) + (r->cin != r->cout ? hw * r->cout * r->cin : 0);
        }
        if (i < RHD_VAE_BLOCKS - 1) hw /= 4, macs += hw * 9.0 * C[i] * C[i];
    }
    const double Cm = C[RHD_VAE_BLOCKS - 1];
    macs += 2 * hw * 9.0 * Cm * 2 * Cm;                         /* two mid resnets */
    if (c->mid_attention) macs += 4 * hw * Cm * Cm + 2 * hw * hw * Cm; /* projections, q k^T and A v */
    macs += hw * 9.0 * 2 * c->latent_channels * Cm;
    return macs;
}
