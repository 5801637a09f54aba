/* common/models/unet.c: the base UNet's configuration (presets, JSON overrides, checks), the block
 * list of spec §2.7 with the original's state-dict names, the parameter and MAC counts, create. */
#include "common/models/unet.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rhd_unet_config_official(rhd_unet_config *c) {
    *c = (rhd_unet_config){.image_size = 128, .in_channels = 32, .out_channels = 64, .model_channels = 192,
                           .channel_mult = {1, 1, 2, 3, 4}, .nlevels = 5, .num_res_blocks = 3,
                           .attn_res = {32, 16, 8}, .nattn = 3, .num_head_channels = 64, .aware3d_levels = 1,
                           .groups = 32, .eps = 1e-5f, .dropout = 0.1f, .xf_width = 512, .latent_ch = 4,
                           .latent_size = 16, .latent_scale = 0.13025f, .patch = 16, .pool_width = 64,
                           .pool_heads = 8, .feat_ch = {128, 256, 512}, .feat_size = {64, 32, 16},
                           .feat_kernel = {16, 8, 4}, .feat_height = {32, 16, 8}, .feat_groups = 32,
                           .noise = RHD_UNET_NOISE_UNIFORM, .checkpoint = 0};
}

void rhd_unet_config_small(rhd_unet_config *c) {
    rhd_unet_config_official(c);
    c->image_size = 32, c->model_channels = 32, c->nlevels = 3, c->num_res_blocks = 1, c->num_head_channels = 32;
    c->channel_mult[0] = 1, c->channel_mult[1] = 2, c->channel_mult[2] = 2;
    c->xf_width = 32;
    for (int i = 0; i < RHD_UNET_FEATS; i++) c->feat_size[i] /= 2; /* 4 tokens per scale */
}

int rhd_unet_config_preset(rhd_unet_config *c, const char *name, rhd_err *e) {
    if (!strcmp(name, "official")) rhd_unet_config_official(c);
    else if (!strcmp(name, "small")) rhd_unet_config_small(c);
    else return rhd_errf(e, "preset '%s' is unknown, expected 'official' or 'small'", name);
    return 0;
}

/* ---- JSON ------------------------------------------------------------------------------------ */

typedef enum { F_INT, F_FLOAT, F_INTS } ftype;
typedef struct field {
    const char *key;
    ftype type;
    size_t off, count_off; /* count_off: where an array's length goes (F_INTS) */
    int max;               /* array capacity */
} field;
#define FI(k, m) {#k, F_INT, offsetof(rhd_unet_config, m), 0, 0}
#define FF(k, m) {#k, F_FLOAT, offsetof(rhd_unet_config, m), 0, 0}
#define FA(k, m, cnt, mx) {#k, F_INTS, offsetof(rhd_unet_config, m), cnt, mx}
static const field k_fields[] = {
    FI(image_size, image_size), FI(in_channels, in_channels), FI(out_channels, out_channels),
    FI(model_channels, model_channels),
    FA(channel_mult, channel_mult, offsetof(rhd_unet_config, nlevels), RHD_UNET_MAX_LEVELS),
    FI(num_res_blocks, num_res_blocks),
    FA(attention_resolutions, attn_res, offsetof(rhd_unet_config, nattn), RHD_UNET_MAX_ATTN),
    FI(num_head_channels, num_head_channels), FI(aware3d_levels, aware3d_levels), FI(groups, groups), FF(eps, eps),
    FF(dropout, dropout), FI(xf_width, xf_width), FI(latent_channels, latent_ch), FI(latent_size, latent_size),
    FF(latent_scale, latent_scale), FI(patch, patch), FI(pool_width, pool_width), FI(pool_heads, pool_heads),
    FA(feature_channels, feat_ch, 0, RHD_UNET_FEATS), FA(feature_sizes, feat_size, 0, RHD_UNET_FEATS),
    FA(feature_kernels, feat_kernel, 0, RHD_UNET_FEATS), FA(feature_heights, feat_height, 0, RHD_UNET_FEATS),
    FI(feature_groups, feat_groups), FI(checkpoint, checkpoint)};

static int set_field(rhd_unet_config *c, const field *f, const cJSON *v, const char *name, rhd_err *e) {
    char *base = (char *)c;
    if (f->type == F_FLOAT) {
        if (!cJSON_IsNumber(v)) return rhd_errf(e, "%s: '%s' is not a number, expected a number", name, f->key);
        *(float *)(base + f->off) = (float)v->valuedouble;
        return 0;
    }
    if (f->type == F_INT) {
        if (cJSON_IsBool(v)) { *(int *)(base + f->off) = cJSON_IsTrue(v); return 0; }
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 1e8)
            return rhd_errf(e, "%s: '%s' is not an integer, expected an integer", name, f->key);
        *(int *)(base + f->off) = (int)v->valuedouble;
        return 0;
    }
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (n < 1 || n > f->max || (!f->count_off && n != f->max))
        return rhd_errf(e, "%s: '%s' is not an array of %s%d integers, expected e.g. [%d, ...]", name, f->key,
                        f->count_off ? "1 to " : "", f->max, ((int *)(base + f->off))[0]);
    for (int i = 0; i < n; i++) {
        const cJSON *x = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || fabs(x->valuedouble) > 1e8)
            return rhd_errf(e, "%s: '%s'[%d] is not an integer, expected an integer", name, f->key, i);
        ((int *)(base + f->off))[i] = (int)x->valuedouble;
    }
    if (f->count_off) *(int *)(base + f->count_off) = n;
    return 0;
}

int rhd_unet_config_from_json(rhd_unet_config *c, const char *text, size_t n, const char *name, rhd_err *e) {
    cJSON *root = cJSON_ParseWithLength(text, n);
    if (!root) {
        char where[64];
        rhd_text_where(text, n, cJSON_GetErrorPtr(), where, sizeof where);
        return rhd_errf(e, "%s: not valid JSON (at %s), expected an object of UNet config fields", name, where);
    }
    int rc = -1;
    if (!cJSON_IsObject(root)) { rhd_errf(e, "%s: JSON is not an object, expected an object", name); goto out; }
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "preset");
    if (pre) {
        if (!cJSON_IsString(pre)) { rhd_errf(e, "%s: 'preset' is not a string, expected 'official' or 'small'", name); goto out; }
        if (rhd_unet_config_preset(c, pre->valuestring, e)) goto out;
    }
    for (const cJSON *v = root->child; v; v = v->next) {
        if (!strcmp(v->string, "preset")) continue;
        if (!strcmp(v->string, "noise")) {
            const char *s = cJSON_IsString(v) ? v->valuestring : "";
            if (!strcmp(s, "uniform")) c->noise = RHD_UNET_NOISE_UNIFORM;
            else if (!strcmp(s, "normal")) c->noise = RHD_UNET_NOISE_NORMAL;
            else if (!strcmp(s, "none")) c->noise = RHD_UNET_NOISE_NONE;
            else { rhd_errf(e, "%s: 'noise' is '%s', expected 'uniform', 'normal' or 'none'", name, s); goto out; }
            continue;
        }
        const field *f = NULL;
        for (size_t i = 0; i < sizeof k_fields / sizeof *k_fields; i++)
            if (!strcmp(k_fields[i].key, v->string)) f = &k_fields[i];
        if (!f) { rhd_errf(e, "%s: unknown key '%s', expected a UNet config field (see common/models/unet.md)", name, v->string); goto out; }
        if (set_field(c, f, v, name, e)) goto out;
    }
    rc = rhd_unet_config_check(c, e);
    if (rc) rhd_err_prefix(e, "%s", name); /* (rhd_errf with e->msg as an argument would overlap) */
out:
    cJSON_Delete(root);
    return rc;
}

char *rhd_unet_config_to_json(const rhd_unet_config *c) {
    cJSON *o = cJSON_CreateObject();
    const char *base = (const char *)c;
    for (size_t i = 0; i < sizeof k_fields / sizeof *k_fields; i++) {
        const field *f = &k_fields[i];
        if (f->type == F_FLOAT) {
            char num[32]; /* the fp32 value's shortest round-trip form */
            snprintf(num, sizeof num, "%.9g", *(const float *)(base + f->off));
            cJSON_AddItemToObject(o, f->key, cJSON_CreateRaw(num));
        } else if (f->type == F_INT) {
            cJSON_AddNumberToObject(o, f->key, *(const int *)(base + f->off));
        } else {
            int n = f->count_off ? *(const int *)(base + f->count_off) : f->max;
            cJSON_AddItemToObject(o, f->key, cJSON_CreateIntArray((const int *)(base + f->off), n));
        }
    }
    static const char *noise[] = {"uniform", "normal", "none"};
    cJSON_AddStringToObject(o, "noise", noise[c->noise]);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int rhd_unet_config_check(const rhd_unet_config *c, rhd_err *e) {
    if (c->nlevels < 1 || c->nlevels > RHD_UNET_MAX_LEVELS) return rhd_errf(e, "channel_mult has %d levels, expected 1 to %d", c->nlevels, RHD_UNET_MAX_LEVELS);
    if (c->image_size < 1 || c->image_size % (1 << (c->nlevels - 1)))
        return rhd_errf(e, "image_size %d, expected a positive multiple of %d (%d levels halve it)", c->image_size, 1 << (c->nlevels - 1), c->nlevels);
    int pos[] = {c->in_channels, c->out_channels, c->model_channels, c->num_res_blocks, c->num_head_channels, c->groups,
                 c->xf_width, c->latent_ch, c->latent_size, c->patch, c->pool_width, c->pool_heads, c->feat_groups};
    static const char *const pos_names[] = {"in_channels", "out_channels", "model_channels", "num_res_blocks",
                                            "num_head_channels", "groups", "xf_width", "latent_channels", "latent_size", "patch",
                                            "pool_width", "pool_heads", "feature_groups"};
    for (size_t i = 0; i < sizeof pos / sizeof *pos; i++)
        if (pos[i] < 1) return rhd_errf(e, "%s is %d, expected >= 1", pos_names[i], pos[i]);
    for (int l = 0; l < c->nlevels; l++) {
        int ch = c->model_channels * c->channel_mult[l];
        if (c->channel_mult[l] < 1 || ch % c->groups) return rhd_errf(e, "channel_mult[%d] = %d gives %d channels, expected a positive multiple of groups %d", l, c->channel_mult[l], ch, c->groups);
        if (ch % c->num_head_channels) return rhd_errf(e, "level %d has %d channels, expected a multiple of num_head_channels %d", l, ch, c->num_head_channels);
    }
    if (c->latent_size % c->patch) return rhd_errf(e, "latent_size %d, expected a multiple of patch %d", c->latent_size, c->patch);
    if (c->pool_width % c->pool_heads) return rhd_errf(e, "pool_width %d, expected a multiple of pool_heads %d", c->pool_width, c->pool_heads);
    for (int i = 0; i < RHD_UNET_FEATS; i++) {
        if (c->feat_kernel[i] < 1 || c->feat_size[i] % c->feat_kernel[i])
            return rhd_errf(e, "feature_sizes[%d] = %d, expected a multiple of feature_kernels[%d] = %d", i, c->feat_size[i], i, c->feat_kernel[i]);
        if (c->feat_ch[i] < 1 || c->feat_ch[i] % c->feat_groups)
            return rhd_errf(e, "feature_channels[%d] = %d, expected a positive multiple of feature_groups %d", i, c->feat_ch[i], c->feat_groups);
    }
    if (c->aware3d_levels < 0 || c->dropout < 0 || c->dropout >= 1) return rhd_errf(e, "aware3d_levels %d / dropout %g, expected >= 0 / in [0,1)", c->aware3d_levels, c->dropout);
    return 0;
}

/* ---- build ----------------------------------------------------------------------------------- */

static int has_attn(const rhd_unet_config *c, int H) {
    for (int i = 0; i < c->nattn; i++)
        if (c->attn_res[i] == H) return 1;
    return 0;
}

static int feat_of(const rhd_unet_config *c, int H) {
    for (int i = 0; i < RHD_UNET_FEATS; i++)
        if (c->feat_height[i] == H) return i;
    return -1;
}

static void add_res(rhd_unet *m, rhd_unet_block *b, const char *prefix, int cin, int cout, rhd_nn_updown ud, int aware) {
    const rhd_unet_config *c = &m->cfg;
    rhd_nn_resblock_cfg rc = {.cin = cin, .cout = cout, .emb = m->emb, .temb = RHD_NN_TEMB_SCALE_SHIFT, .updown = ud,
                              .aware3d = aware, .groups = c->groups, .eps = c->eps, .dropout = c->dropout,
                              .checkpoint = c->checkpoint, .names = RHD_NN_NAMES_UNET};
    rhd_nn_resblock_init(&m->base.params, &m->res[m->nres], prefix, &rc);
    b->layer[b->nlayer++] = (rhd_unet_layer){RHD_UNET_L_RES, m->nres++};
}

static void add_attn(rhd_unet *m, rhd_unet_block *b, const char *prefix, int ch) {
    const rhd_unet_config *c = &m->cfg;
    rhd_nn_attn_cfg ac = {.kind = RHD_NN_ATTN_JOINT, .C = ch, .heads = ch / c->num_head_channels, .enc_ch = c->xf_width,
                          .groups = c->groups, .enc_groups = c->groups, .eps = c->eps, .checkpoint = c->checkpoint};
    rhd_nn_attn_init(&m->base.params, &m->attn[m->nattn_blocks], prefix, &ac);
    b->layer[b->nlayer++] = (rhd_unet_layer){RHD_UNET_L_ATTN, m->nattn_blocks++};
    b->feat = feat_of(c, b->H);
}

static void add_param(rhd_params *p, int *idx, const char *name, int ndim, int64_t a, int64_t b) {
    int64_t s[2] = {a, b};
    *idx = rhd_params_add(p, name, ndim, s);
}

/* The conditioning branches (§2.5, §2.6), registered first. */
static void build_cond(rhd_unet *m) {
    const rhd_unet_config *c = &m->cfg;
    rhd_params *p = &m->base.params;
    const int W = c->pool_width;
    rhd_nn_conv_init(p, &m->patch, "conv1", c->latent_ch, W, c->patch, c->patch, 0, 0);
    rhd_nn_layernorm_init(p, &m->ln_tok, "encoder_pooling.0", W, 1e-5f);
    add_param(p, &m->pool_pos, "encoder_pooling.1.positional_embedding", 2, 1, W);
    const char *nm[3] = {"q_proj", "k_proj", "v_proj"};
    int *ix[3] = {m->pool_q, m->pool_k, m->pool_v};
    for (int i = 0; i < 3; i++) {
        char name[96];
        snprintf(name, sizeof name, "encoder_pooling.1.%s.weight", nm[i]);
        add_param(p, &ix[i][0], name, 2, W, W);
        snprintf(name, sizeof name, "encoder_pooling.1.%s.bias", nm[i]);
        add_param(p, &ix[i][1], name, 1, W, 0);
    }
    rhd_nn_linear_init(p, &m->pool_lin, "encoder_pooling.2", W, m->emb, 1);
    rhd_nn_layernorm_init(p, &m->ln_out, "encoder_pooling.3", m->emb, 1e-5f);
    static const char *suffix[RHD_UNET_FEATS] = {"128", "64", "32"}; /* F0, F1, F2 (§2.7) */
    for (int i = 0; i < RHD_UNET_FEATS; i++) {
        char name[96];
        snprintf(name, sizeof name, "norm%s", suffix[i]);
        rhd_nn_groupnorm_init(p, &m->feat_norm[i], name, c->feat_ch[i], c->feat_groups, 1e-5f);
        snprintf(name, sizeof name, "vae_ms_feature_proj_%s", suffix[i]);
        rhd_nn_conv_init(p, &m->feat_proj[i], name, c->feat_ch[i], c->xf_width, c->feat_kernel[i], c->feat_kernel[i], 0, 0);
    }
}

static int unet_build(rhd_nn_model *mm, const void *cfgp, rhd_err *e) {
    rhd_unet *m = (rhd_unet *)mm;
    const rhd_unet_config *c = cfgp;
    if (rhd_unet_config_check(c, e)) return -1;
    m->cfg = *c;
    m->emb = 4 * c->model_channels;
    rhd_params *p = &mm->params;
    rhd_nn_temb_init(p, &m->temb, "time_embed", c->model_channels, m->emb);
    build_cond(m);
    rhd_nn_conv_init(p, &m->conv_in, "input_blocks.0.0", c->in_channels, c->model_channels, 3, 1, 1, 1);
    int chans[RHD_UNET_MAX_BLOCKS], nch = 0, ch = c->model_channels, H = c->image_size, nb = 0;
    chans[nch++] = ch;
    char pre[96];
    for (int l = 0; l < c->nlevels; l++) {
        for (int k = 0; k < c->num_res_blocks; k++) {
            if (nb + 3 > RHD_UNET_MAX_BLOCKS) return rhd_errf(e, "the config has more than %d blocks", RHD_UNET_MAX_BLOCKS);
            rhd_unet_block *b = &m->blk[nb++];
            *b = (rhd_unet_block){.cin = ch, .H = H, .Hout = H, .feat = -1};
            snprintf(pre, sizeof pre, "input_blocks.%d.0", nb);
            add_res(m, b, pre, ch, c->model_channels * c->channel_mult[l], RHD_NN_PLAIN, l < c->aware3d_levels);
            ch = b->cout = c->model_channels * c->channel_mult[l];
            snprintf(pre, sizeof pre, "input_blocks.%d.1", nb);
            if (has_attn(c, H)) add_attn(m, b, pre, ch);
            chans[nch++] = ch;
        }
        if (l + 1 < c->nlevels) {
            rhd_unet_block *b = &m->blk[nb++];
            *b = (rhd_unet_block){.cin = ch, .cout = ch, .H = H, .Hout = H / 2, .feat = -1};
            snprintf(pre, sizeof pre, "input_blocks.%d.0", nb);
            add_res(m, b, pre, ch, ch, RHD_NN_DOWN, 0);
            chans[nch++] = ch, H /= 2;
        }
    }
    m->nin = nb;
    rhd_unet_block *mid = &m->blk[nb++];
    *mid = (rhd_unet_block){.cin = ch, .cout = ch, .H = H, .Hout = H, .feat = -1};
    add_res(m, mid, "middle_block.0", ch, ch, RHD_NN_PLAIN, 0);
    add_attn(m, mid, "middle_block.1", ch);
    add_res(m, mid, "middle_block.2", ch, ch, RHD_NN_PLAIN, 0);
    int no = 0;
    for (int l = c->nlevels - 1; l >= 0; l--) {
        for (int k = 0; k <= c->num_res_blocks; k++) {
            if (nb + 1 > RHD_UNET_MAX_BLOCKS) return rhd_errf(e, "the config has more than %d blocks", RHD_UNET_MAX_BLOCKS);
            rhd_unet_block *b = &m->blk[nb++];
            int skip = chans[--nch], co = c->model_channels * c->channel_mult[l], mi = 0;
            *b = (rhd_unet_block){.cin = ch + skip, .cout = co, .skip_ch = skip, .H = H, .Hout = H, .feat = -1};
            snprintf(pre, sizeof pre, "output_blocks.%d.%d", no, mi++);
            add_res(m, b, pre, ch + skip, co, RHD_NN_PLAIN, l < c->aware3d_levels);
            ch = co;
            if (has_attn(c, H)) {
                snprintf(pre, sizeof pre, "output_blocks.%d.%d", no, mi++);
                add_attn(m, b, pre, ch);
            }
            if (l > 0 && k == c->num_res_blocks) {
                snprintf(pre, sizeof pre, "output_blocks.%d.%d", no, mi++);
                add_res(m, b, pre, ch, ch, RHD_NN_UP, 0);
                b->Hout = 2 * H, H *= 2;
            }
            no++;
        }
    }
    m->nout = no;
    rhd_nn_groupnorm_init(p, &m->norm_out, "out.0", ch, c->groups, c->eps);
    rhd_nn_conv_init(p, &m->conv_out, "out.2", ch, c->out_channels, 3, 1, 1, 1);
    return 0;
}

const rhd_nn_model_ops rhd_unet_ops = {"unet", sizeof(rhd_unet), unet_build, rhd_unet__forward, rhd_unet__backward};

int64_t rhd_unet_param_count(const rhd_unet_config *c, rhd_err *e) {
    rhd_unet *m = rhd_xcalloc(1, sizeof *m);
    if (!m) rhd_fatal_at(__FILE__, __LINE__, "out of memory");
    rhd_params_init(&m->base.params);
    int64_t n = unet_build(&m->base, c, e) ? -1 : rhd_params_count(&m->base.params);
    rhd_params_free(&m->base.params);
    free(m);
    return n;
}

/* Tensors of st under prefix that the model does not have: the first is an error. */
static int check_extra(const rhd_params *p, const rhd_st *st, const char *prefix, rhd_err *e) {
    size_t lp = strlen(prefix);
    for (int i = 0; i < st->n; i++) {
        const char *nm = st->t[i].name;
        if (strncmp(nm, prefix, lp)) continue;
        if (rhd_params_find(p, nm + lp) < 0)
            return rhd_errf(e, "%s: tensor '%s' is not a parameter of this UNet config, expected only the model's %d tensors", st->name, nm, p->n);
    }
    return 0;
}

rhd_unet *rhd_unet_create(const rhd_unet_config *c, rhd_ctx *ctx, const rhd_st *st, int with_grad, rhd_err *e) {
    const char *prefix = st && rhd_st_find(st, "decoder.time_embed.0.weight") ? "decoder." : "";
    rhd_unet *m = (rhd_unet *)rhd_nn_model_create(&rhd_unet_ops, c, ctx, st, prefix, with_grad, e);
    if (!m) return NULL;
    if (st && check_extra(&m->base.params, st, prefix, e)) {
        rhd_nn_model_free(&m->base);
        return NULL;
    }
    return m;
}

void rhd_unet_free(rhd_unet *m) {
    if (m) rhd_nn_model_free(&m->base);
}

/* ---- MACs (§9) -------------------------------------------------------------------------------- */

double rhd_unet_macs(const rhd_unet_config *c) {
    rhd_err e;
    rhd_unet *m = rhd_xcalloc(1, sizeof *m);
    if (!m) rhd_fatal_at(__FILE__, __LINE__, "out of memory");
    rhd_params_init(&m->base.params);
    double mac = 0;
    if (unet_build(&m->base, c, &e)) goto out;
    const double R = c->image_size, W3 = 3 * R;
    mac += (double)c->in_channels * c->model_channels * 9 * R * W3;                  /* conv in */
    mac += (double)c->model_channels * c->out_channels * 9 * R * W3;                 /* conv out */
    const double E = m->emb, Wp = c->pool_width, Lt = (double)(c->latent_size / c->patch) * (c->latent_size / c->patch);
    mac += c->model_channels * E + E * E;                                             /* time MLP */
    mac += c->latent_ch * Wp * c->patch * c->patch * Lt + Wp * E;                      /* patch conv, Linear */
    mac += Wp * Wp * (1 + 2 * (Lt + 1)) + 2 * Wp * (Lt + 1);                          /* pooling q, k, v, products */
    int Te[RHD_UNET_FEATS];
    for (int i = 0; i < RHD_UNET_FEATS; i++) {
        double o = c->feat_size[i] / c->feat_kernel[i];
        Te[i] = (int)(o * o);
        mac += (double)c->feat_ch[i] * c->xf_width * c->feat_kernel[i] * c->feat_kernel[i] * o * o;
    }
    const int nb = m->nin + 1 + m->nout;
    for (int bi = 0; bi < nb; bi++) {
        const rhd_unet_block *b = &m->blk[bi];
        for (int k = 0; k < b->nlayer; k++) {
            const rhd_unet_layer *L = &b->layer[k];
            if (L->kind == RHD_UNET_L_RES) {
                const rhd_nn_resblock *r = &m->res[L->index];
                int ud = r->cfg.updown;
                double h = ud == RHD_NN_DOWN ? b->H / 2 : ud == RHD_NN_UP ? 2 * b->H : b->H, px = h * 3 * h;
                mac += (double)r->cfg.cin * r->cfg.cout * 9 * px + (double)r->cfg.cout * r->cfg.cout * 9 * px *
                       (r->cfg.aware3d ? 3 : 1) + (double)m->emb * 2 * r->cfg.cout;
                if (r->skip.w >= 0) mac += (double)r->cfg.cin * r->cfg.cout * px;
            } else {
                const double C = m->attn[L->index].cfg.C, T = (double)b->H * 3 * b->H;
                const double te = b->feat >= 0 ? Te[b->feat] : 0;
                mac += 3 * C * C * T + C * C * T + 2 * C * c->xf_width * te + 2 * T * (T + te) * C;
            }
        }
    }
out:
    rhd_params_free(&m->base.params);
    free(m);
    return mac;
}
