/* common/models/upsampler.c: the TriplaneUpsampler assembly (see upsampler.h and upsampler.md). */
#include "common/models/upsampler.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/resample.h"

/* ---- configuration --------------------------------------------------------------------------- */

void rhd_ups_config_official(rhd_ups_config *c) {
    *c = (rhd_ups_config){.in_ch = 32, .out_ch = 32, .cond_ch = 32, .n_feats = 64, .nlevels = 3, .ch_mult = {1, 2, 4},
                          .num_res_blocks = 2, .n_resblocks = 6, .temb_ch = 64, .temb_dim = 256, .latent_ch = 4,
                          .latent_size = 16, .patch = 16, .embed_dim = 64, .pool_heads = 8, .latent_scale = 0.13025f,
                          .groups = 32, .eps = 1e-6f, .attn_eps = 1e-5f, .ln_eps = 1e-5f, .head_ch = 32,
                          .dropout = 0.f, .checkpoint = 0};
}

void rhd_ups_config_small(rhd_ups_config *c) {
    rhd_ups_config_official(c);
    c->n_feats = 32, c->temb_ch = 32, c->temb_dim = 128, c->embed_dim = 32;
}

int rhd_ups_config_preset(rhd_ups_config *c, const char *preset, rhd_err *e) {
    if (preset && !strcmp(preset, "official")) rhd_ups_config_official(c);
    else if (preset && !strcmp(preset, "small")) rhd_ups_config_small(c);
    else return rhd_errf(e, "upsampler preset '%s', expected 'official' or 'small'", preset ? preset : "(null)");
    return 0;
}

int rhd_ups_config_check(const rhd_ups_config *c, const char *name, rhd_err *e) {
    const int G = c->groups;
    if (c->in_ch < 1 || c->out_ch < 1 || c->cond_ch < 1 || c->n_feats < 1 || G < 1 || c->latent_ch < 1)
        return rhd_errf(e, "%s: in_ch %d, out_ch %d, cond_ch %d, n_feats %d, groups %d, latent_ch %d, expected all >= 1",
                        name, c->in_ch, c->out_ch, c->cond_ch, c->n_feats, G, c->latent_ch);
    if (c->nlevels < 1 || c->nlevels > RHD_UPS_MAX_LEVELS)
        return rhd_errf(e, "%s: %d levels (ch_mult), expected 1..%d", name, c->nlevels, RHD_UPS_MAX_LEVELS);
    if (c->num_res_blocks < 1 || c->num_res_blocks > RHD_UPS_MAX_RES)
        return rhd_errf(e, "%s: num_res_blocks %d, expected 1..%d", name, c->num_res_blocks, RHD_UPS_MAX_RES);
    if (c->n_resblocks < 2 || c->n_resblocks % 2 || c->n_resblocks / 2 > RHD_UPS_MAX_GROUPS)
        return rhd_errf(e, "%s: n_resblocks %d, expected an even number 2..%d", name, c->n_resblocks,
                        2 * RHD_UPS_MAX_GROUPS);
    for (int i = 0; i < c->nlevels; i++)
        if (c->ch_mult[i] < 1 || (c->n_feats * c->ch_mult[i]) % G)
            return rhd_errf(e, "%s: ch_mult[%d] = %d gives %d channels, expected a multiple of groups %d", name, i,
                            c->ch_mult[i], c->n_feats * c->ch_mult[i], G);
    const int F = c->n_feats, Cb = F * c->ch_mult[c->nlevels - 1];
    if ((F + c->cond_ch) % G || (c->out_ch + c->cond_ch) % G || c->out_ch % G)
        return rhd_errf(e, "%s: n_feats + cond_ch = %d, out_ch = %d, out_ch + cond_ch = %d, expected multiples of "
                           "groups %d", name, F + c->cond_ch, c->out_ch, c->out_ch + c->cond_ch, G);
    if (c->head_ch < 1 || Cb % c->head_ch)
        return rhd_errf(e, "%s: body width %d, expected a multiple of head_ch %d", name, Cb, c->head_ch);
    if (c->temb_ch < 2 || c->temb_ch % 2 || c->temb_dim < 1)
        return rhd_errf(e, "%s: temb_ch %d, temb_dim %d, expected an even temb_ch >= 2 and temb_dim >= 1", name,
                        c->temb_ch, c->temb_dim);
    if (c->patch < 1 || c->latent_size != c->patch)
        return rhd_errf(e, "%s: latent_size %d, patch %d, expected equal (one latent token, as the original's 16x16 "
                           "latent with a 16x16 patch)", name, c->latent_size, c->patch);
    if (c->embed_dim < 1 || c->pool_heads < 1 || c->embed_dim % c->pool_heads)
        return rhd_errf(e, "%s: embed_dim %d, expected a multiple of pool_heads %d", name, c->embed_dim, c->pool_heads);
    if (!(c->eps > 0) || !(c->attn_eps > 0) || !(c->ln_eps > 0) || !(c->dropout >= 0 && c->dropout < 1))
        return rhd_errf(e, "%s: eps %g, attn_eps %g, ln_eps %g, dropout %g, expected eps > 0 and 0 <= dropout < 1", name,
                        c->eps, c->attn_eps, c->ln_eps, c->dropout);
    return 0;
}

static int json_num(const cJSON *it, const char *name, double *v, rhd_err *e) {
    if (!cJSON_IsNumber(it)) return rhd_errf(e, "%s: key '%s' is not a number", name, it->string);
    *v = it->valuedouble;
    return 0;
}

int rhd_ups_config_from_json(rhd_ups_config *c, const char *text, size_t n, const char *name, rhd_err *e) {
    static const struct { const char *key; size_t off; int is_float; } k[] = {
#define I(f) {#f, offsetof(rhd_ups_config, f), 0}
#define F(f) {#f, offsetof(rhd_ups_config, f), 1}
        I(in_ch), I(out_ch), I(cond_ch), I(n_feats), I(num_res_blocks), I(n_resblocks), I(temb_ch), I(temb_dim),
        I(latent_ch), I(latent_size), I(patch), I(embed_dim), I(pool_heads), I(groups), I(head_ch), I(checkpoint),
        F(latent_scale), F(eps), F(attn_eps), F(ln_eps), F(dropout),
#undef I
#undef F
    };
    cJSON *root = cJSON_ParseWithLength(text, n);
    if (!root || !cJSON_IsObject(root)) {
        char where[96] = "";
        if (!root) {
            char at[64];
            rhd_text_where(text, n, cJSON_GetErrorPtr(), at, sizeof at);
            snprintf(where, sizeof where, " (not valid JSON at %s)", at);
        }
        cJSON_Delete(root);
        return rhd_errf(e, "%s: not a JSON object%s, expected upsampler overrides like {\"n_feats\": 32}", name, where);
    }
    int rc = -1;
    for (const cJSON *it = root->child; it; it = it->next) {
        double v = 0;
        if (!strcmp(it->string, "ch_mult")) {
            int m = cJSON_IsArray(it) ? cJSON_GetArraySize(it) : -1;
            if (m < 1 || m > RHD_UPS_MAX_LEVELS) {
                rhd_errf(e, "%s: ch_mult is not an array of 1..%d numbers", name, RHD_UPS_MAX_LEVELS);
                goto out;
            }
            c->nlevels = m;
            for (int i = 0; i < m; i++) {
                const cJSON *a = cJSON_GetArrayItem(it, i);
                if (!cJSON_IsNumber(a)) { rhd_errf(e, "%s: ch_mult[%d] is not a number", name, i); goto out; }
                c->ch_mult[i] = a->valueint;
            }
            continue;
        }
        size_t j = 0;
        while (j < sizeof k / sizeof k[0] && strcmp(k[j].key, it->string)) j++;
        if (j == sizeof k / sizeof k[0]) { rhd_errf(e, "%s: unknown key '%s'", name, it->string); goto out; }
        if (json_num(it, name, &v, e)) goto out;
        if (k[j].is_float) *(float *)((char *)c + k[j].off) = (float)v;
        else if (v != (int)v) { rhd_errf(e, "%s: key '%s' is %g, expected an integer", name, it->string, v); goto out; }
        else *(int *)((char *)c + k[j].off) = (int)v;
    }
    rc = rhd_ups_config_check(c, name, e);
out:
    cJSON_Delete(root);
    return rc;
}

int rhd_ups_check_size(const rhd_ups_config *c, int R, int r, rhd_err *e) {
    const int m = 1 << (c->nlevels - 1);
    if (R < m || R % m || r < 1)
        return rhd_errf(e, "upsampler: plane size %d (condition %d), expected a multiple of %d and a condition >= 1", R,
                        r, m);
    return 0;
}

/* ---- building -------------------------------------------------------------------------------- */

static void res_init(rhd_params *p, rhd_nn_resblock *b, const rhd_ups_config *c, int temb, int cin, int cout,
                     const char *fmt, int i, int j) {
    char name[RHD_PARAM_NAME_MAX];
    snprintf(name, sizeof name, fmt, i, j);
    rhd_nn_resblock_cfg rc = {.cin = cin, .cout = cout, .emb = temb ? c->temb_dim : 0,
                              .temb = temb ? RHD_NN_TEMB_ADD : RHD_NN_TEMB_NONE, .aware3d = 1, .groups = c->groups,
                              .eps = c->eps, .dropout = c->dropout, .checkpoint = c->checkpoint,
                              .names = RHD_NN_NAMES_UPSAMPLER};
    rhd_nn_resblock_init(p, b, name, &rc);
}

static void build_table(rhd_upsampler *m, rhd_params *p, const rhd_ups_config *c) {
    const int F = c->n_feats, L = c->nlevels, nb = c->num_res_blocks, E = c->embed_dim;
    char name[RHD_PARAM_NAME_MAX];
    m->cfg = *c;
    rhd_nn_temb_init(p, &m->temb, "time_embed", c->temb_ch, c->temb_dim);
    rhd_nn_conv_init(p, &m->conv_in, "input_layer.0", c->in_ch, F, 3, 1, 1, 1);
    res_init(p, &m->in_res, c, 1, F, F, "input_layer.1", 0, 0);
    int ch = F + c->cond_ch, chs[RHD_UPS_MAX_SKIPS], ns = 0;
    chs[ns++] = ch;
    for (int i = 0; i < L; i++) {
        for (int j = 0; j < nb; j++) {
            res_init(p, &m->down[i][j], c, 1, ch, F * c->ch_mult[i], "down.%d.block.%d", i, j);
            ch = F * c->ch_mult[i], chs[ns++] = ch;
        }
        if (i < L - 1) {
            snprintf(name, sizeof name, "down.%d.downsample.conv", i);
            rhd_nn_conv_init_down(p, &m->down_conv[i], name, ch);
            chs[ns++] = ch;
        }
    }
    for (int g = 0; g < c->n_resblocks / 2; g++) {
        res_init(p, &m->body_res[g][0], c, 1, ch, ch, "body.%d", 3 * g, 0);
        snprintf(name, sizeof name, "body.%d", 3 * g + 1);
        rhd_nn_attn_cfg ac = {.kind = RHD_NN_ATTN_CROSS, .C = ch, .heads = ch / c->head_ch, .enc_ch = ch,
                              .groups = c->groups, .enc_groups = c->groups, .eps = c->attn_eps};
        rhd_nn_attn_init(p, &m->body_attn[g], name, &ac);
        res_init(p, &m->body_res[g][1], c, 1, ch, ch, "body.%d", 3 * g + 2, 0);
    }
    for (int i = L - 1; i >= 0; i--) {
        for (int j = 0; j <= nb; j++) {
            res_init(p, &m->up[i][j], c, 1, ch + chs[--ns], F * c->ch_mult[i], "up.%d.block.%d", i, j);
            ch = F * c->ch_mult[i];
        }
        if (i > 0) {
            snprintf(name, sizeof name, "up.%d.upsample.conv", i);
            rhd_nn_conv_init(p, &m->up_conv[i], name, ch, ch, 3, 1, 1, 1);
        }
    }
    RHD_ASSERT(ns == 0);
    res_init(p, &m->tail[0], c, 1, ch + chs[0], F, "tail.0", 0, 0);
    res_init(p, &m->tail[1], c, 1, F, c->out_ch, "tail.1", 0, 0);
    res_init(p, &m->out, c, 0, c->out_ch + c->cond_ch, c->out_ch, "out", 0, 0);
    rhd_nn_conv_init(p, &m->patch, "conv1", c->latent_ch, E, c->patch, c->patch, 0, 0);
    rhd_nn_linear_init(p, &m->enc_proj, "encoder_proj", E, F * c->ch_mult[L - 1], 1);
    rhd_nn_layernorm_init(p, &m->ln0, "encoder_pooling.0", E, c->ln_eps);
    int64_t s2[2] = {1, E};
    m->pool_pos = rhd_params_add(p, "encoder_pooling.1.positional_embedding", 2, s2);
    static const char *const qkv[3] = {"q_proj", "k_proj", "v_proj"};
    for (int q = 0; q < 3; q++) {
        int64_t sw[2] = {E, E}, sb[1] = {E};
        snprintf(name, sizeof name, "encoder_pooling.1.%s.weight", qkv[q]);
        m->pool_w[q] = rhd_params_add(p, name, 2, sw);
        snprintf(name, sizeof name, "encoder_pooling.1.%s.bias", qkv[q]);
        m->pool_b[q] = rhd_params_add(p, name, 1, sb);
    }
    rhd_nn_linear_init(p, &m->pool_lin, "encoder_pooling.2", E, c->temb_dim, 1);
    rhd_nn_layernorm_init(p, &m->ln3, "encoder_pooling.3", c->temb_dim, c->ln_eps);
}

void rhd_ups_count(const rhd_ups_config *c, int64_t *nparams, int *ntensors) {
    static rhd_upsampler m; /* large; only the table is built */
    rhd_params p;
    rhd_params_init(&p);
    build_table(&m, &p, c);
    if (nparams) *nparams = rhd_params_count(&p);
    if (ntensors) *ntensors = p.n;
    rhd_params_free(&p);
}

int rhd_ups_build(rhd_nn_model *mm, const void *cfgp, rhd_err *e) {
    const rhd_ups_config *c = cfgp;
    if (rhd_ups_config_check(c, "upsampler config", e)) return -1;
    build_table((rhd_upsampler *)mm, &mm->params, c);
    return 0;
}

rhd_upsampler *rhd_ups_create(const rhd_ups_config *c, rhd_ctx *ctx, const rhd_st *st, const char *prefix,
                              int with_grad, rhd_err *e) {
    rhd_nn_model *m = rhd_nn_model_create(&rhd_upsampler_ops, c, ctx, st, prefix, with_grad, e);
    if (!m || !st) return (rhd_upsampler *)m;
    const size_t np = prefix ? strlen(prefix) : 0;
    for (int i = 0; i < st->n; i++) {
        const char *name = st->t[i].name;
        if (np && strncmp(name, prefix, np)) continue;
        if (rhd_params_find(&m->params, name + np) < 0) {
            rhd_errf(e, "%s: tensor '%s' is not a parameter of the upsampler (n_feats %d, %d levels), expected only "
                        "its %d tensors", st->name, name, c->n_feats, c->nlevels, m->params.n);
            rhd_nn_model_free(m);
            return NULL;
        }
    }
    return (rhd_upsampler *)m;
}
