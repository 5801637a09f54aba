/* formats/schema.c: the table of file kinds and the validator; see schema.h and the formats/<kind>.md pages. */
#include "formats/schema.h"
#include "common/cli.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const rhd_schema_tensor triplane_t[] = {
    {"planes", RHD_DT_FLOAT, "3,C,R,R", 0},
    {NULL, 0, NULL, 0}};
static const char *const triplane_m[] = {NULL};

/* SDXL-VAE encoder outputs at 128 px: moments [8,16,16], F0 [128,64,64], F1 [256,32,32],
 * F2 [512,16,16]; other configs keep the 4x/2x/1x ratios to the latent grid h x w. */
static const rhd_schema_tensor features_t[] = {
    {"moments", RHD_DT_FLOAT, "Z,h,w", 0},
    {"ms_feature.0", RHD_DT_FLOAT, "A,H,W", 0},
    {"ms_feature.1", RHD_DT_FLOAT, "B,J,K", 0},
    {"ms_feature.2", RHD_DT_FLOAT, "D,h,w", 0},
    {NULL, 0, NULL, 0}};
static const char *const features_m[] = {"rhd.weights", NULL};

/* The shared MLP decoder (spec fitting.md section 5.2), state-dict names of the original. */
static const rhd_schema_tensor decoder_t[] = {
    {"sigma_net.0.weight", RHD_DT(RHD_F32), "S,E", 0},
    {"sigma_net.0.bias", RHD_DT(RHD_F32), "S", 0},
    {"sigma_net.2.weight", RHD_DT(RHD_F32), "G,S", 0},
    {"sigma_net.2.bias", RHD_DT(RHD_F32), "G", 0},
    {"color_net.0.weight", RHD_DT(RHD_F32), "H,I", 0},
    {"color_net.1.weight", RHD_DT(RHD_F32), "H,H", 0},
    {"color_net.2.weight", RHD_DT(RHD_F32), "3,H", 0},
    {NULL, 0, NULL, 0}};
static const char *const decoder_m[] = {NULL};

/* Identity-aware weight consolidation state of one avatar: squared gradients and the decoder
 * parameters it anchors to (spec fitting.md section 7.4). */
static const rhd_schema_tensor iwc_t[] = {
    {"fisher.sigma_net.0.weight", RHD_DT(RHD_F32), "S,E", 0},
    {"fisher.sigma_net.0.bias", RHD_DT(RHD_F32), "S", 0},
    {"fisher.sigma_net.2.weight", RHD_DT(RHD_F32), "G,S", 0},
    {"fisher.sigma_net.2.bias", RHD_DT(RHD_F32), "G", 0},
    {"fisher.color_net.0.weight", RHD_DT(RHD_F32), "H,I", 0},
    {"fisher.color_net.1.weight", RHD_DT(RHD_F32), "H,H", 0},
    {"fisher.color_net.2.weight", RHD_DT(RHD_F32), "3,H", 0},
    {"optpar.sigma_net.0.weight", RHD_DT(RHD_F32), "S,E", 0},
    {"optpar.sigma_net.0.bias", RHD_DT(RHD_F32), "S", 0},
    {"optpar.sigma_net.2.weight", RHD_DT(RHD_F32), "G,S", 0},
    {"optpar.sigma_net.2.bias", RHD_DT(RHD_F32), "G", 0},
    {"optpar.color_net.0.weight", RHD_DT(RHD_F32), "H,I", 0},
    {"optpar.color_net.1.weight", RHD_DT(RHD_F32), "H,H", 0},
    {"optpar.color_net.2.weight", RHD_DT(RHD_F32), "3,H", 0},
    {NULL, 0, NULL, 0}};
static const char *const iwc_m[] = {"rhd.avatar", NULL};

/* A training checkpoint: model parameters under their state-dict names plus optimiser state
 * ("adam.m.<name>", "adam.v.<name>") and optionally EMA copies ("ema.<name>"). */
static const rhd_schema_tensor checkpoint_t[] = {{NULL, 0, NULL, 0}};
static const char *const checkpoint_m[] = {"rhd.model", "rhd.step", NULL};

/* LPIPS weights (lpips' state dict without 'lins.*', formats/lpips.md): common/lpips.c checks the
 * whole alex or vgg backbone; the schema names what both have. */
static const rhd_schema_tensor lpips_t[] = {
    {"net.slice1.0.weight", RHD_DT_FLOAT, "64,3,K,K", 0},
    {"net.slice1.0.bias", RHD_DT_FLOAT, "64", 0},
    {"lin0.model.1.weight", RHD_DT_FLOAT, "1,64,1,1", 0},
    {"lin1.model.1.weight", RHD_DT_FLOAT, "1,A,1,1", 0},
    {"lin2.model.1.weight", RHD_DT_FLOAT, "1,B,1,1", 0},
    {"lin3.model.1.weight", RHD_DT_FLOAT, "1,C,1,1", 0},
    {"lin4.model.1.weight", RHD_DT_FLOAT, "1,D,1,1", 0},
    {NULL, 0, NULL, 0}};
static const char *const lpips_m[] = {"lpips.net", NULL};

/* rhd-sample --save-trajectory: the clipped x0 prediction after each step (and up.x0 for the
 * upsampler, another R), tools/rhd-sample.md. */
static const rhd_schema_tensor trajectory_t[] = {
    {"x0", RHD_DT_FLOAT, "N,3,C,R,R", 0},
    {NULL, 0, NULL, 0}};
static const char *const trajectory_m[] = {"rhd.avatar", NULL};
/* rhd-sample --save-noise: every draw of a run, one row per portrait (formats/noise.md). The
 * per-step z.<k> and the upsampler's up.* tensors are allowed as extras (their number depends on
 * the sampler); rhd-sample --noise checks them against the run. */
static const rhd_schema_tensor noise_t[] = {
    {"x_T", RHD_DT(RHD_F32), "P,C,R,W", 0},
    {"u", RHD_DT(RHD_F32), "P,L,M,N", 1},
    {NULL, 0, NULL, 0}};
static const char *const noise_m[] = {NULL};

static const rhd_schema g_schemas[] = {
    {"triplane", 1, "one avatar's triplane [3 planes, C channels, R rows, R columns]", triplane_t, triplane_m, 0},
    {"features", 1, "portrait features: VAE latent moments and three multi-scale maps", features_t, features_m, 0},
    {"decoder", 1, "the shared triplane MLP decoder (state-dict names of the original)", decoder_t, decoder_m, 0},
    {"iwc", 1, "identity-aware weight consolidation state of one avatar", iwc_t, iwc_m, 0},
    {"checkpoint", 1, "a model checkpoint with optimiser state", checkpoint_t, checkpoint_m, 1},
    {"lpips", 1, "LPIPS weights: lpips' AlexNet or VGG16 slices and linear heads", lpips_t, lpips_m, 1},
    {"trajectory", 1, "a sample's denoising progress: x0 [steps,3,C,R,R] (and up.x0)", trajectory_t, trajectory_m, 1},
    {"noise", 1, "the random draws of a sampling run: x_T [P,C,R,3R], z.<k> per step, u (and up.*)", noise_t, noise_m, 1},
};
static const rhd_schema *const g_all[] = {&g_schemas[0], &g_schemas[1], &g_schemas[2], &g_schemas[3], &g_schemas[4],
                                          &g_schemas[5], &g_schemas[6], &g_schemas[7], NULL};

const rhd_schema *const *rhd_schema_all(void) { return g_all; }

const rhd_schema *rhd_schema_find(const char *kind) {
    for (int i = 0; g_all[i]; i++)
        if (strcmp(g_all[i]->kind, kind) == 0) return g_all[i];
    return NULL;
}

static int var_index(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return 26 + c - 'a';
    return -1;
}

void rhd_dims_init(rhd_dims *d) { memset(d, 0, sizeof *d); }
void rhd_dims_bind(rhd_dims *d, char var, int64_t value) {
    int i = var_index(var);
    RHD_ASSERT(i >= 0);
    d->v[i] = value;
    d->set[i] = 1;
}
int64_t rhd_dims_get(const rhd_dims *d, char var) {
    int i = var_index(var);
    return i >= 0 && d->set[i] ? d->v[i] : -1;
}

/* Render the expected shape with the bindings known so far ("[3,32,R,R]" -> "[3,32,128,128]"). */
static void expected_str(const char *shape, const rhd_dims *d, char *buf, size_t n) {
    size_t k = snprintf(buf, n, "[");
    const char *p = shape;
    int first = 1;
    while (*p && k < n) {
        const char *q = strchr(p, ',');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        int64_t v = len == 1 && var_index(*p) >= 0 ? rhd_dims_get(d, *p) : -2;
        if (v >= 0) k += snprintf(buf + k, n - k, "%s%lld", first ? "" : ",", (long long)v);
        else k += snprintf(buf + k, n - k, "%s%.*s", first ? "" : ",", (int)len, p);
        first = 0;
        p = q ? q + 1 : p + len;
    }
    if (k < n) snprintf(buf + k, n - k, "]");
}

int rhd_schema_check_tensor(const rhd_st *st, const rhd_schema_tensor *s, rhd_dims *dims, rhd_err *e) {
    const rhd_st_tensor *t = rhd_st_find(st, s->name);
    if (!t) {
        if (s->optional) return 0;
        return rhd_errf(e, "%s: tensor '%s' is missing", st->name, s->name);
    }
    if (!(s->dtypes & RHD_DT(t->dtype))) {
        char ok[128] = "";
        for (int i = 0; i < RHD_DTYPE_COUNT; i++)
            if (s->dtypes & RHD_DT(i)) {
                if (ok[0]) strncat(ok, " or ", sizeof ok - strlen(ok) - 1);
                strncat(ok, rhd_dtype_name((rhd_dtype)i), sizeof ok - strlen(ok) - 1);
            }
        return rhd_errf(e, "%s: tensor '%s' has dtype %s, expected %s", st->name, s->name, rhd_dtype_name(t->dtype), ok);
    }
    rhd_dims local;
    if (!dims) rhd_dims_init(&local), dims = &local;
    rhd_dims before = *dims;
    const char *p = s->shape;
    int nd = 0, bad = 0;
    while (*p) {
        const char *q = strchr(p, ',');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (nd >= t->ndim) { bad = 1; break; }
        int64_t have = t->shape[nd];
        int vi = len == 1 ? var_index(*p) : -1;
        if (vi >= 0) {
            if (dims->set[vi] && dims->v[vi] != have) bad = 1;
            else dims->v[vi] = have, dims->set[vi] = 1;
        } else {
            long long want = strtoll(p, NULL, 10);
            if (want != have) bad = 1;
        }
        nd++;
        p = q ? q + 1 : p + len;
    }
    if (!bad && nd != t->ndim) bad = 1;
    if (bad) {
        char got[160], want[160], binds[256] = "";
        rhd_shape_str(t->shape, t->ndim, got, sizeof got);
        expected_str(s->shape, &before, want, sizeof want);
        /* name the bindings that made the expectation concrete */
        size_t k = 0;
        for (const char *c = s->shape; *c; c++) {
            int vi = var_index(*c);
            if (vi >= 0 && before.set[vi] && !strchr(binds, *c) && k < sizeof binds - 32)
                k += snprintf(binds + k, sizeof binds - k, "%s%c=%lld", k ? ", " : " (", *c, (long long)before.v[vi]);
        }
        if (k) snprintf(binds + k, sizeof binds - k, ")");
        *dims = before;
        return rhd_errf(e, "%s: tensor '%s' has shape %s, expected %s%s", st->name, s->name, got, want, binds);
    }
    return 0;
}

int rhd_schema_check(const rhd_st *st, const char *expect_kind, rhd_dims *dims, rhd_err *e) {
    const char *kind = rhd_st_meta(st, "rhd.kind");
    if (!kind) {
        if (expect_kind)
            return rhd_errf(e, "%s: no rhd.kind in __metadata__, expected a %s file written by rhd (or converted, see formats/%s.md)",
                            st->name, expect_kind, expect_kind);
        return rhd_errf(e, "%s: no rhd.kind in __metadata__, not an rhd file", st->name);
    }
    if (expect_kind && strcmp(kind, expect_kind) != 0)
        return rhd_errf(e, "%s: rhd.kind is '%s', expected '%s'", st->name, kind, expect_kind);
    const rhd_schema *s = rhd_schema_find(kind);
    if (!s) return rhd_errf(e, "%s: unknown rhd.kind '%s'", st->name, kind);
    const char *ver = rhd_st_meta(st, "rhd.version");
    long long v;
    if (!ver || rhd_parse_ll(ver, &v))
        return rhd_errf(e, "%s: rhd.version is %s%s%s, expected an integer", st->name, ver ? "'" : "missing", ver ? ver : "", ver ? "'" : "");
    if (v > s->version)
        return rhd_errf(e, "%s: %s file version %lld is newer than this build reads (%d): update rhd", st->name, kind, v, s->version);
    for (int i = 0; s->meta[i]; i++)
        if (!rhd_st_meta(st, s->meta[i])) return rhd_errf(e, "%s: %s file lacks the metadata key '%s'", st->name, kind, s->meta[i]);
    rhd_dims local;
    if (!dims) rhd_dims_init(&local), dims = &local;
    for (int i = 0; s->tensors[i].name; i++)
        if (rhd_schema_check_tensor(st, &s->tensors[i], dims, e)) return -1;
    if (!s->allow_extra)
        for (int i = 0; i < st->n; i++) {
            int known = 0;
            for (int j = 0; s->tensors[j].name; j++) known |= strcmp(s->tensors[j].name, st->t[i].name) == 0;
            if (!known) return rhd_errf(e, "%s: unexpected tensor '%s' in a %s file", st->name, st->t[i].name, kind);
        }
    return 0;
}

void rhd_schema_stamp(rhd_st_writer *w, const char *kind, const char *tool) {
    const rhd_schema *s = rhd_schema_find(kind);
    RHD_ASSERT(s);
    char buf[64];
    rhd_st_set_meta(w, "rhd.kind", kind);
    snprintf(buf, sizeof buf, "%d", s->version);
    rhd_st_set_meta(w, "rhd.version", buf);
    snprintf(buf, sizeof buf, "%s %s", tool, RHD_VERSION);
    rhd_st_set_meta(w, "rhd.tool", buf);
}
