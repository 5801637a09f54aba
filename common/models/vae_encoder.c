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
        long off = at && at >= text && at <= text + n ? (long)(at - text) : -1;
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

static int add_param(rhd_params *p, int ndim, int64_t s0, int64_t s1, int64_t s2, int64_t s3, const char *fmt, ...)
    RHD_PRINTF(7, 8);
static int add_param(rhd_params *p, int ndim, int64_t s0, int64_t s1, int64_t s2, int64_t s3, const char *fmt, ...) {
    char name[RHD_PARAM_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int64_t shape[4] = {s0, s1, s2, s3};
    return rhd_params_add(p, name, ndim, shape);
}

static void add_conv(rhd_params *p, int *w, int *b, int cout, int cin, int k, const char *prefix) {
    *w = add_param(p, 4, cout, cin, k, k, "%s.weight", prefix);
    *b = add_param(p, 1, cout, 0, 0, 0, "%s.bias", prefix);
}

static void add_norm(rhd_params *p, int *w, int *b, int c, const char *prefix) {
    *w = add_param(p, 1, c, 0, 0, 0, "%s.weight", prefix);
    *b = add_param(p, 1, c, 0, 0, 0, "%s.bias", prefix);
}

static void add_linear(rhd_params *p, int *w, int *b, int c, const char *prefix) {
    *w = add_param(p, 2, c, c, 0, 0, "%s.weight", prefix);
    *b = add_param(p, 1, c, 0, 0, 0, "%s.bias", prefix);
}

static void add_resnet(rhd_params *p, rhd_vae_resnet *r, int cin, int cout, const char *prefix) {
    char s[RHD_PARAM_NAME_MAX];
    r->cin = cin, r->cout = cout;
    snprintf(s, sizeof s, "%s.norm1", prefix), add_norm(p, &r->norm1_w, &r->norm1_b, cin, s);
    snprintf(s, sizeof s, "%s.conv1", prefix), add_conv(p, &r->conv1_w, &r->conv1_b, cout, cin, 3, s);
    snprintf(s, sizeof s, "%s.norm2", prefix), add_norm(p, &r->norm2_w, &r->norm2_b, cout, s);
    snprintf(s, sizeof s, "%s.conv2", prefix), add_conv(p, &r->conv2_w, &r->conv2_b, cout, cout, 3, s);
    r->short_w = r->short_b = -1;
    if (cin != cout) snprintf(s, sizeof s, "%s.conv_shortcut", prefix), add_conv(p, &r->short_w, &r->short_b, cout, cin, 1, s);
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
    add_conv(p, &m->conv_in_w, &m->conv_in_b, C[0], cfg->in_channels, 3, "encoder.conv_in");
    for (int i = 0; i < RHD_VAE_BLOCKS; i++) {
        for (int j = 0; j < cfg->layers_per_block; j++) {
            snprintf(s, sizeof s, "encoder.down_blocks.%d.resnets.%d", i, j);
            add_resnet(p, &m->down[i][j], j == 0 && i > 0 ? C[i - 1] : C[i], C[i], s);
        }
        if (i < RHD_VAE_BLOCKS - 1) {
            snprintf(s, sizeof s, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            add_conv(p, &m->down_conv_w[i], &m->down_conv_b[i], C[i], C[i], 3, s);
        }
    }
    const int Cm = C[RHD_VAE_BLOCKS - 1];
    add_resnet(p, &m->mid[0], Cm, Cm, "encoder.mid_block.resnets.0");
    memset(&m->attn, -1, sizeof m->attn);
    if (cfg->mid_attention) {
        rhd_vae_attn *a = &m->attn;
        add_norm(p, &a->norm_w, &a->norm_b, Cm, "encoder.mid_block.attentions.0.group_norm");
        add_linear(p, &a->q_w, &a->q_b, Cm, "encoder.mid_block.attentions.0.to_q");
        add_linear(p, &a->k_w, &a->k_b, Cm, "encoder.mid_block.attentions.0.to_k");
        add_linear(p, &a->v_w, &a->v_b, Cm, "encoder.mid_block.attentions.0.to_v");
        add_linear(p, &a->o_w, &a->o_b, Cm, "encoder.mid_block.attentions.0.to_out.0");
    }
    add_resnet(p, &m->mid[1], Cm, Cm, "encoder.mid_block.resnets.1");
    add_norm(p, &m->norm_out_w, &m->norm_out_b, Cm, "encoder.conv_norm_out");
    add_conv(p, &m->conv_out_w, &m->conv_out_b, 2 * cfg->latent_channels, Cm, 3, "encoder.conv_out");
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

/* Arena use of one forward. In a dry walk nothing is computed: allocations are only counted, so
 * rhd_vae_encoder_arena_bytes follows exactly the forward's own allocation sequence. */
typedef struct walk {
    rhd_ctx *ctx;
    const rhd_vae_encoder *m;
    rhd_arena *a;
    int dry;
    size_t used, peak;
} walk;

static float *take(walk *w, size_t nfloats) {
    if (!w->dry) return rhd_arena_floats(w->a, nfloats);
    w->used = ((w->used + 255) & ~(size_t)255) + nfloats * sizeof(float);
    if (w->used > w->peak) w->peak = w->used;
    return NULL;
}
static size_t mark(const walk *w) { return w->dry ? w->used : rhd_arena_mark(w->a); }
static void release(walk *w, size_t at) {
    if (w->dry) w->used = at;
    else rhd_arena_release(w->a, at);
}
static const float *prm(const walk *w, int i) { return rhd_param(&w->m->params, i); }

/* y (N,C,HW) = GN(x) (then SiLU if silu) */
static void groupnorm(walk *w, float *y, const float *x, int gw, int gb, int N, int C, long HW, int silu) {
    size_t at = mark(w);
    int G = w->m->cfg.norm_num_groups;
    float *mean = take(w, (size_t)N * G), *rstd = take(w, (size_t)N * G);
    if (!w->dry) {
        rhd_groupnorm_forward(w->ctx, y, mean, rstd, x, prm(w, gw), prm(w, gb), N, C, HW, G, w->m->cfg.eps);
        if (silu) rhd_act_forward(w->ctx, y, y, (long)N * C * HW, RHD_ACT_SILU);
    }
    release(w, at);
}

/* y = conv k x k (stride s, zero padding top/bottom/left/right) of x (N,Cin,H,W) */
static void conv(walk *w, float *y, const float *x, int wi, int bi, int N, int Cin, int H, int W, int Cout, int k, int s,
                 int pt, int pb, int pl, int pr) {
    if (w->dry) return;
    rhd_conv2d_desc d = {N, Cin, H, W, Cout, k, k, s, s, pt, pb, pl, pr};
    rhd_conv2d_forward(w->ctx, y, x, prm(w, wi), prm(w, bi), &d);
}

static void add(walk *w, float *y, const float *a, const float *b, long n) {
    if (!w->dry) rhd_add_forward(w->ctx, y, a, b, n);
}

/* out (N,cout,H,W) = ResnetBlock2D(x (N,cin,H,W)); t1, t2 hold N*max(cin,cout)*H*W floats each */
static void resnet(walk *w, const rhd_vae_resnet *r, float *out, const float *x, float *t1, float *t2, int N, int H,
                   int W) {
    long HW = (long)H * W;
    groupnorm(w, t1, x, r->norm1_w, r->norm1_b, N, r->cin, HW, 1);                /* (N,cin,H,W) */
    conv(w, t2, t1, r->conv1_w, r->conv1_b, N, r->cin, H, W, r->cout, 3, 1, 1, 1, 1, 1); /* (N,cout,H,W) */
    groupnorm(w, t1, t2, r->norm2_w, r->norm2_b, N, r->cout, HW, 1);
    conv(w, out, t1, r->conv2_w, r->conv2_b, N, r->cout, H, W, r->cout, 3, 1, 1, 1, 1, 1);
    if (r->short_w >= 0) {
        conv(w, t2, x, r->short_w, r->short_b, N, r->cin, H, W, r->cout, 1, 1, 0, 0, 0, 0);
        add(w, out, t2, out, (long)N * r->cout * HW); /* shortcut + h, diffusers' order */
    } else {
        add(w, out, x, out, (long)N * r->cout * HW);
    }
}

/* y (N,C,T) = x + to_out(attention(to_q, to_k, to_v of GN(x) as tokens)); t1, t2 hold N*C*T.
 * The token products run one portrait at a time so that a portrait's numbers never depend on the
 * batch it was encoded in (a GEMM over N*T rows may round differently from one over T rows). */
static void attention(walk *w, float *y, const float *x, float *t1, float *t2, int N, int C, long T) {
    const rhd_vae_attn *a = &w->m->attn;
    size_t at = mark(w);
    size_t n1 = (size_t)C * T;
    float *q = take(w, n1), *k = take(w, n1), *v = take(w, n1), *o = take(w, n1);
    groupnorm(w, t1, x, a->norm_w, a->norm_b, N, C, T, 0); /* (N,C,T) */
    if (!w->dry) {
        rhd_ctx *ctx = w->ctx;
        rhd_transpose_forward(ctx, t2, t1, N, C, T); /* tokens (N,T,C) */
        for (int i = 0; i < N; i++) {
            const float *tok = t2 + i * n1;
            float *proj = t1 + i * n1;
            rhd_linear_forward(ctx, q, tok, prm(w, a->q_w), prm(w, a->q_b), (int)T, C, C);
            rhd_linear_forward(ctx, k, tok, prm(w, a->k_w), prm(w, a->k_b), (int)T, C, C);
            rhd_linear_forward(ctx, v, tok, prm(w, a->v_w), prm(w, a->v_b), (int)T, C, C);
            rhd_attention_forward(ctx, o, NULL, q, k, v, 1, 1, (int)T, (int)T, C, 1.0f / sqrtf((float)C)); /* (T,C) */
            rhd_linear_forward(ctx, proj, o, prm(w, a->o_w), prm(w, a->o_b), (int)T, C, C);               /* (T,C) */
        }
        rhd_transpose_forward(ctx, t2, t1, N, T, C); /* (N,C,T) */
        rhd_add_forward(ctx, y, t2, x, (long)(N * n1));
    }
    release(w, at);
}

static void forward(walk *w, float *moments, float *f0, float *f1, float *f2, const float *x, int N, int H, int W) {
    const rhd_vae_encoder *m = w->m;
    const rhd_vae_config *c = &m->cfg;
    const int *C = c->block_out_channels;
    float *feat[3] = {f0, f1, f2};
    /* the largest activation: level i runs at (H>>i, W>>i) with C[i-1] and C[i] channels */
    size_t maxact = 0;
    for (int i = 0; i < RHD_VAE_BLOCKS; i++) {
        int ch = C[i] > C[i > 0 ? i - 1 : 0] ? C[i] : C[i > 0 ? i - 1 : 0];
        size_t s = (size_t)ch * (size_t)(H >> i) * (size_t)(W >> i);
        if (s > maxact) maxact = s;
    }
    size_t at = mark(w);
    float *A = take(w, N * maxact), *B = take(w, N * maxact); /* ping-pong activations */
    float *t1 = take(w, N * maxact), *t2 = take(w, N * maxact); /* resnet temporaries */
    const float *cur = A;
#define OTHER(p) ((p) == A ? B : A)
    conv(w, A, x, m->conv_in_w, m->conv_in_b, N, c->in_channels, H, W, C[0], 3, 1, 1, 1, 1, 1); /* (N,C0,H,W) */
    int h = H, wd = W;
    for (int i = 0; i < RHD_VAE_BLOCKS; i++) {
        for (int j = 0; j < c->layers_per_block; j++) {
            float *out = OTHER(cur);
            resnet(w, &m->down[i][j], out, cur, t1, t2, N, h, wd); /* (N,C[i],h,wd) */
            cur = out;
        }
        if (i < RHD_VAE_BLOCKS - 1) { /* Downsample2D: pad right and bottom by one, conv 3x3/2 */
            conv(w, feat[i], cur, m->down_conv_w[i], m->down_conv_b[i], N, C[i], h, wd, C[i], 3, 2, 0, 1, 0, 1);
            cur = feat[i]; /* F_i (N,C[i],h/2,wd/2) */
            h /= 2, wd /= 2;
        }
    }
    const int Cm = C[RHD_VAE_BLOCKS - 1];
    float *out = OTHER(cur);
    resnet(w, &m->mid[0], out, cur, t1, t2, N, h, wd);
    cur = out;
    if (c->mid_attention) {
        out = OTHER(cur);
        attention(w, out, cur, t1, t2, N, Cm, (long)h * wd);
        cur = out;
    }
    out = OTHER(cur);
    resnet(w, &m->mid[1], out, cur, t1, t2, N, h, wd);
    cur = out;
    groupnorm(w, t1, cur, m->norm_out_w, m->norm_out_b, N, Cm, (long)h * wd, 1);
    conv(w, moments, t1, m->conv_out_w, m->conv_out_b, N, Cm, h, wd, 2 * c->latent_channels, 3, 1, 1, 1, 1, 1);
#undef OTHER
    release(w, at);
}

size_t rhd_vae_encoder_arena_bytes(const rhd_vae_encoder *m, int N, int H, int W) {
    walk w = {NULL, m, NULL, 1, 0, 0};
    forward(&w, NULL, NULL, NULL, NULL, NULL, N, H, W);
    return w.peak + 256;
}

void rhd_vae_encoder_forward(rhd_ctx *ctx, const rhd_vae_encoder *m, rhd_arena *a, float *moments, float *f0,
                             float *f1, float *f2, const float *x, int N, int H, int W) {
    rhd_err e;
    if (rhd_vae_encoder_check_size(H, W, &e)) rhd_fatal_at(__FILE__, __LINE__, "%s", e.msg);
    RHD_ASSERT(N >= 1 && m->params.data && m->params.ctx == ctx && a->ctx == ctx);
    walk w = {ctx, m, a, 0, 0, 0};
    forward(&w, moments, f0, f1, f2, x, N, H, W);
}

double rhd_vae_encoder_macs(const rhd_vae_encoder *m, int H, int W) {
    const rhd_vae_config *c = &m->cfg;
    const int *C = c->block_out_channels;
    double macs = 0, hw = (double)H * W;
    macs += hw * C[0] * c->in_channels * 9;
    for (int i = 0; i < RHD_VAE_BLOCKS; i++) {
        for (int j = 0; j < c->layers_per_block; j++) {
            const rhd_vae_resnet *r = &m->down[i][j];
            macs += hw * 9.0 * r->cout * (r->cin + r->cout) + (r->short_w >= 0 ? hw * r->cout * r->cin : 0);
        }
        if (i < RHD_VAE_BLOCKS - 1) hw /= 4, macs += hw * 9.0 * C[i] * C[i];
    }
    const double Cm = C[RHD_VAE_BLOCKS - 1];
    macs += 2 * hw * 9.0 * Cm * 2 * Cm;                         /* two mid resnets */
    if (c->mid_attention) macs += 4 * hw * Cm * Cm + 2 * hw * hw * Cm; /* projections, q k^T and A v */
    macs += hw * 9.0 * 2 * c->latent_channels * Cm;
    return macs;
}
