/* tools/rhd-inspect.c: show what is inside an rhd file (safetensors, .npy or PNG): its kind and
 * whether it passes that kind's schema, the metadata, and each tensor's dtype, shape and
 * statistics (min, max, mean, std, NaN and Inf counts); --json for machines; --png OUT for a
 * picture (a triplane's three planes as a PCA-to-RGB strip, feature maps as a grid, an image as
 * itself). See tools/rhd-inspect.md. */
#include "common/cli.h"
#include "common/fs.h"
#include "common/log.h"
#include "formats/finite.h"
#include "formats/npy.h"
#include "formats/png.h"
#include "formats/safetensors.h"
#include "formats/schema.h"
#include "common/preview.h"
#include "common/sample_run.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A checkpoint of a diffusion model (rhd.model base or upsample) must load as rhd-sample loads it:
 * rhd.config parsed into the network's config, each tensor of the parameter set and of the EMA set
 * (when the file has one) present with its shape, nothing else under those prefixes. On the CPU;
 * needs the network's parameter memory once per set. */
static int check_checkpoint(const char *path, const rhd_st *st, rhd_err *e) {
    const char *model = rhd_st_meta(st, "rhd.model");
    if (!model || (strcmp(model, "base") && strcmp(model, "upsample"))) return 0;
    rhd_sample_stage stage = strcmp(model, "base") ? RHD_STAGE_UPSAMPLE : RHD_STAGE_BASE;
    int has_ema = 0;
    for (int i = 0; i < st->n; i++) has_ema |= !strncmp(st->t[i].name, "ema.", 4);
    rhd_ctx *ctx = rhd_ctx_open("cpu", e);
    if (!ctx) return -1;
    int rc = 0;
    for (int k = 0; k < 1 + has_ema && !rc; k++) {
        rhd_sample_model m;
        rc = rhd_sample_model_load(&m, path, stage, k ? "ema" : "model", ctx, e);
        if (!rc) rhd_sample_model_free(&m);
    }
    rhd_ctx_close(ctx);
    return rc;
}

typedef struct inspect_opts {
    rhd_common_opts common;
    int json;
    const char *png;
    int no_stats;
    int allow_nonfinite;
    const char *kind;
} inspect_opts;

static const rhd_opt inspect_options[] = {
    RHD_OPT_FLAG_(0, "json", inspect_opts, json, "print one JSON object per file (JSON Lines) instead of text"),
    RHD_OPT_STRING_(0, "png", inspect_opts, png, "OUT", "write a preview picture of the (single) FILE to OUT"),
    RHD_OPT_FLAG_(0, "no-stats", inspect_opts, no_stats, "skip the per-tensor statistics"),
    RHD_OPT_FLAG_(0, "allow-nonfinite", inspect_opts, allow_nonfinite, "an rhd file holding NaN or Inf values passes its schema check (the statistics count them)"),
    RHD_OPT_STRING_(0, "kind", inspect_opts, kind, "KIND", "require this file kind (triplane, features, decoder, iwc, checkpoint); exit 1 otherwise"),
    RHD_OPT_GROUP_("common options"),
    RHD_OPT_FLAG_('q', "quiet", inspect_opts, common.quiet, "no info messages"),
    RHD_OPT_COUNT_('v', "verbose", inspect_opts, common.verbose, "more messages"),
    RHD_OPT_INT_(0, "threads", inspect_opts, common.threads, "N", "CPU threads (0: OpenMP default)", 0, 4096),
    RHD_OPT_STRING_(0, "config", inspect_opts, common.config, "FILE", "JSON object of option values; flags override it"),
    RHD_OPT_END_};

static const rhd_cli inspect_cli = {
    "rhd-inspect",
    "rhd-inspect [options] FILE...",
    "Show the kind, metadata and tensors of rhd files: safetensors (.safetensors), NumPy (.npy) and\n"
    "PNG images. For each tensor: dtype, shape, min, max, mean, std and the number of NaN and Inf\n"
    "values. An rhd file (rhd.kind in its metadata) is also checked against its kind's schema; a\n"
    "diffusion checkpoint must also load as rhd-sample loads it (rhd.config against its tensors).\n"
    "Exit status: 0 if every file was read (and valid), 1 if any was not, 2 for usage errors.\n",
    inspect_options,
    "examples:\n"
    "  rhd-inspect triplanes/avatar_100.safetensors\n"
    "  rhd-inspect --json features/*.safetensors | jq -r '.tensors[] | [.name, .max] | @tsv'\n"
    "  rhd-inspect --png preview.png triplanes/avatar_100.safetensors\n"};

typedef struct stats {
    double min, max, mean, std; /* over the finite values (std: population, ddof 0); NaN when there are none */
    int64_t nan, pinf, ninf, count;
} stats;

/* One chunk's partial statistics: the finite values' count, mean and sum of squared deviations. */
typedef struct part {
    double min, max, mean, m2;
    int64_t n, nan, pinf, ninf;
} part;

static double value_at(const void *data, rhd_dtype dt, size_t es, int64_t i, const float *buf, int64_t j) {
    if (dt == RHD_F64) { double v; memcpy(&v, (const char *)data + i * es, 8); return v; }
    if (dt == RHD_I64) { int64_t v; memcpy(&v, (const char *)data + i * es, 8); return (double)v; }
    return buf[j];
}

/* Statistics of values [a, b): shifted by the chunk's first finite value so that a huge constant
 * has exactly zero spread (no sum-of-squares cancellation). */
static part chunk_stats(const void *data, rhd_dtype dt, int64_t a, int64_t b) {
    part r = {INFINITY, -INFINITY, 0, 0, 0, 0, 0, 0};
    size_t es = rhd_dtype_size(dt);
    double shift = 0, s = 0, q = 0;
    int have_shift = 0;
    float buf[4096];
    for (int64_t i = a; i < b; i += 4096) {
        int64_t k = b - i < 4096 ? b - i : 4096;
        if (dt != RHD_F64 && dt != RHD_I64) { /* the wide types keep full precision */
            char raw[4096 * 4];
            memcpy(raw, (const char *)data + i * es, (size_t)(k * es)); /* data may be unaligned */
            rhd_convert_to_f32(buf, raw, dt, k);
        }
        for (int64_t j = 0; j < k; j++) {
            double v = value_at(data, dt, es, i + j, buf, j);
            if (isnan(v)) { r.nan++; continue; }
            if (isinf(v)) { if (v > 0) r.pinf++; else r.ninf++; continue; }
            r.min = v < r.min ? v : r.min, r.max = v > r.max ? v : r.max;
            if (!have_shift) shift = v, have_shift = 1;
            double d = v - shift;
            s += d, q += d * d, r.n++;
        }
    }
    if (r.n) {
        r.mean = shift + s / r.n;
        r.m2 = q - s * (s / r.n);
        if (r.m2 < 0) r.m2 = 0;
    }
    return r;
}

/* Chunks combined in a fixed order (Chan et al.'s pairwise update), so the result does not depend
 * on the thread count. */
static stats tensor_stats(const void *data, rhd_dtype dt, int64_t n) {
    enum { CH = 1 << 16 };
    int64_t nch = (n + CH - 1) / CH;
    part *parts = rhd_xcalloc((size_t)(nch + 1), sizeof(part));
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t c = 0; c < nch; c++) parts[c] = chunk_stats(data, dt, c * CH, (c + 1) * CH < n ? (c + 1) * CH : n);
    part t = {INFINITY, -INFINITY, 0, 0, 0, 0, 0, 0};
    for (int64_t c = 0; c < nch; c++) {
        const part *p = &parts[c];
        t.min = p->min < t.min ? p->min : t.min, t.max = p->max > t.max ? p->max : t.max;
        t.nan += p->nan, t.pinf += p->pinf, t.ninf += p->ninf;
        if (!p->n) continue;
        if (!t.n) { t.n = p->n, t.mean = p->mean, t.m2 = p->m2; continue; }
        int64_t m = t.n + p->n;
        double delta = p->mean - t.mean;
        t.mean += delta * ((double)p->n / m);
        t.m2 += p->m2 + delta * delta * ((double)t.n * p->n / m);
        t.n = m;
    }
    free(parts);
    stats r = {NAN, NAN, NAN, NAN, t.nan, t.pinf, t.ninf, n};
    if (t.n) r.min = t.min, r.max = t.max, r.mean = t.mean, r.std = sqrt(t.m2 / t.n);
    return r;
}

/* One file's contents as a list of views, whatever the container. */
typedef struct item {
    const char *name;
    rhd_tensor t;
} item;

typedef struct file_view {
    const char *format;
    int n;
    item *items;
    int nmeta;
    char **key, **val;
    const char *kind;
    char schema_err[1024]; /* empty if valid or not an rhd file */
    int schema_checked;
    rhd_st *st;
    rhd_npy npy;
    rhd_image img;
    int have_img;
    size_t size;
} file_view;

static int sniff(const char *path, char *fmt, size_t n, rhd_err *e) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return rhd_errf(e, "%s: is a directory, expected a file", path);
    FILE *f = fopen(path, "rb");
    if (!f) return rhd_errf(e, "%s: cannot open: %s", path, strerror(errno));
    unsigned char b[9] = {0};
    size_t got = fread(b, 1, 9, f);
    fclose(f);
    if (got >= 6 && memcmp(b, "\x93NUMPY", 6) == 0) snprintf(fmt, n, "npy");
    else if (got >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) snprintf(fmt, n, "png");
    else if (got == 9 && b[8] == '{') snprintf(fmt, n, "safetensors");
    else return rhd_errf(e, "%s: not a safetensors, .npy or PNG file (unrecognised first bytes)", path);
    return 0;
}

static int load(const char *path, const char *want_kind, int check_values, file_view *fv, rhd_err *e) {
    memset(fv, 0, sizeof *fv);
    char fmt[16];
    if (sniff(path, fmt, sizeof fmt, e)) return -1;
    if (strcmp(fmt, "safetensors") == 0) {
        if (rhd_st_open(path, &fv->st, e)) return -1;
        fv->format = "safetensors";
        fv->size = fv->st->size;
        fv->n = fv->st->n;
        fv->items = rhd_xcalloc(fv->n ? fv->n : 1, sizeof(item));
        for (int i = 0; i < fv->n; i++) {
            const rhd_st_tensor *t = &fv->st->t[i];
            fv->items[i].name = t->name;
            fv->items[i].t.dtype = t->dtype;
            fv->items[i].t.ndim = t->ndim;
            memcpy(fv->items[i].t.shape, t->shape, sizeof t->shape);
            fv->items[i].t.data = (void *)t->data;
        }
        fv->nmeta = fv->st->nmeta;
        fv->key = fv->st->meta_key;
        fv->val = fv->st->meta_val;
        fv->kind = rhd_st_meta(fv->st, "rhd.kind");
        if (fv->kind || want_kind) {
            rhd_err se;
            fv->schema_checked = 1;
            if (rhd_schema_check(fv->st, want_kind, NULL, &se))
                snprintf(fv->schema_err, sizeof fv->schema_err, "%s", se.msg);
            else if (check_values && rhd_st_check_finite(fv->st, &se))
                snprintf(fv->schema_err, sizeof fv->schema_err, "%.900s (--allow-nonfinite inspects such a file)", se.msg);
            else if (fv->kind && !strcmp(fv->kind, "checkpoint") && check_checkpoint(path, fv->st, &se))
                snprintf(fv->schema_err, sizeof fv->schema_err, "%s", se.msg);
        }
    } else if (strcmp(fmt, "npy") == 0) {
        if (rhd_npy_read(path, &fv->npy, e)) return -1;
        fv->format = "npy";
        fv->size = fv->npy.data_bytes;
        fv->n = 1;
        fv->items = rhd_xcalloc(1, sizeof(item));
        fv->items[0].name = "array";
        fv->items[0].t = fv->npy.t;
        if (want_kind) {
            fv->schema_checked = 1;
            snprintf(fv->schema_err, sizeof fv->schema_err, "%s: a .npy file has no rhd.kind, expected a %s file", path, want_kind);
        }
    } else {
        if (rhd_png_read(path, &fv->img, e)) return -1;
        fv->have_img = 1;
        fv->format = "png";
        fv->n = 1;
        fv->items = rhd_xcalloc(1, sizeof(item));
        fv->items[0].name = "rgba";
        fv->items[0].t = (rhd_tensor){RHD_F32, 3, {fv->img.height, fv->img.width, 4}, fv->img.data};
        if (want_kind) {
            fv->schema_checked = 1;
            snprintf(fv->schema_err, sizeof fv->schema_err, "%s: a PNG image has no rhd.kind, expected a %s file", path, want_kind);
        }
    }
    return 0;
}

static void unload(file_view *fv) {
    rhd_st_close(fv->st);
    rhd_npy_free(&fv->npy);
    if (fv->have_img) rhd_image_free(&fv->img);
    free(fv->items);
}

/* "-" stands for a statistic that does not exist (no finite value), so that it cannot be mistaken
 * for a value or a count of NaNs. */
static void fmt_stat(double x, char buf[32]) {
    if (isnan(x)) snprintf(buf, 32, "-");
    else snprintf(buf, 32, "%.5g", x);
}

static void print_text(const char *path, const file_view *fv, int no_stats) {
    printf("%s: %s", path, fv->format);
    if (fv->have_img)
        printf(", %dx%d, %s, %d-bit%s", fv->img.width, fv->img.height, rhd_png_color_type_name(fv->img.color_type),
               fv->img.bit_depth, fv->img.has_alpha ? ", alpha" : ", no alpha");
    printf("\n");
    if (fv->kind || fv->schema_checked)
        printf("  kind: %s (%s%s)\n", fv->kind ? fv->kind : "none", fv->schema_err[0] ? "schema error: " : "schema ok",
               fv->schema_err);
    if (fv->nmeta) {
        printf("  metadata:\n");
        for (int i = 0; i < fv->nmeta; i++) {
            const char *v = fv->val[i];
            size_t len = strlen(v);
            printf("    %s: %.*s%s\n", fv->key[i], len > 200 ? 200 : (int)len, v, len > 200 ? " ..." : "");
        }
    }
    printf("  tensors: %d\n", fv->n);
    for (int i = 0; i < fv->n; i++) {
        const rhd_tensor *t = &fv->items[i].t;
        char sh[160];
        rhd_shape_str(t->shape, t->ndim, sh, sizeof sh);
        printf("    %-32s %-4s %-20s", fv->items[i].name, rhd_dtype_name(t->dtype), sh);
        if (!no_stats) {
            stats s = tensor_stats(t->data, t->dtype, rhd_shape_numel(t->shape, t->ndim));
            char v[4][32];
            fmt_stat(s.min, v[0]), fmt_stat(s.max, v[1]), fmt_stat(s.mean, v[2]), fmt_stat(s.std, v[3]);
            printf(" min %-11s max %-11s mean %-11s std %-11s", v[0], v[1], v[2], v[3]);
            if (s.nan || s.pinf || s.ninf)
                printf(" nan %lld +inf %lld -inf %lld", (long long)s.nan, (long long)s.pinf, (long long)s.ninf);
        }
        printf("\n");
    }
}

static cJSON *num_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

static void print_json(const char *path, const file_view *fv, int no_stats) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", path);
    cJSON_AddStringToObject(o, "format", fv->format);
    if (fv->kind) cJSON_AddStringToObject(o, "kind", fv->kind);
    else cJSON_AddNullToObject(o, "kind");
    if (fv->schema_checked) {
        cJSON_AddBoolToObject(o, "valid", fv->schema_err[0] == 0);
        if (fv->schema_err[0]) cJSON_AddStringToObject(o, "error", fv->schema_err);
    }
    if (fv->have_img) {
        cJSON_AddNumberToObject(o, "width", fv->img.width);
        cJSON_AddNumberToObject(o, "height", fv->img.height);
        cJSON_AddStringToObject(o, "color_type", rhd_png_color_type_name(fv->img.color_type));
        cJSON_AddNumberToObject(o, "bit_depth", fv->img.bit_depth);
        cJSON_AddBoolToObject(o, "alpha", fv->img.has_alpha);
    }
    cJSON *m = cJSON_AddObjectToObject(o, "metadata");
    for (int i = 0; i < fv->nmeta; i++) cJSON_AddStringToObject(m, fv->key[i], fv->val[i]);
    cJSON *ts = cJSON_AddArrayToObject(o, "tensors");
    for (int i = 0; i < fv->n; i++) {
        const rhd_tensor *t = &fv->items[i].t;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", fv->items[i].name);
        cJSON_AddStringToObject(j, "dtype", rhd_dtype_name(t->dtype));
        cJSON *sh = cJSON_AddArrayToObject(j, "shape");
        for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
        if (!no_stats) {
            stats s = tensor_stats(t->data, t->dtype, rhd_shape_numel(t->shape, t->ndim));
            cJSON_AddItemToObject(j, "min", num_or_null(s.min));
            cJSON_AddItemToObject(j, "max", num_or_null(s.max));
            cJSON_AddItemToObject(j, "mean", num_or_null(s.mean));
            cJSON_AddItemToObject(j, "std", num_or_null(s.std));
            cJSON_AddNumberToObject(j, "nan", (double)s.nan);
            cJSON_AddNumberToObject(j, "inf", (double)(s.pinf + s.ninf));
            cJSON_AddNumberToObject(j, "posinf", (double)s.pinf);
            cJSON_AddNumberToObject(j, "neginf", (double)s.ninf);
        }
        cJSON_AddItemToArray(ts, j);
    }
    char *txt = cJSON_PrintUnformatted(o);
    printf("%s\n", txt);
    free(txt);
    cJSON_Delete(o);
}

static int write_preview(const char *out, const file_view *fv, rhd_err *e) {
    rhd_preview p;
    if (fv->have_img) {
        if (rhd_preview_image(&p, &fv->img)) return rhd_errf(e, "cannot preview the image");
    } else {
        /* prefer what the kind says; otherwise guess from the shapes */
        const item *it = NULL;
        for (int i = 0; i < fv->n && !it; i++)
            if (strcmp(fv->items[i].name, "planes") == 0) it = &fv->items[i];
        int ntraj = 0;
        for (int i = 0; i < fv->n && !it; i++) ntraj += rhd_preview_is_trajectory(&fv->items[i].t);
        if (!it && ntraj > 0) { /* rhd-sample --save-trajectory: x0 (and up.x0), stacked */
            rhd_preview parts[8];
            int np = 0;
            for (int i = 0; i < fv->n && np < 8; i++) {
                if (!rhd_preview_is_trajectory(&fv->items[i].t)) continue;
                if (rhd_preview_triplane(&parts[np], &fv->items[i].t, e)) {
                    while (np > 0) rhd_preview_free(&parts[--np]);
                    return -1;
                }
                np++;
            }
            rhd_preview_stack(&p, parts, np);
        } else if (it || (fv->n == 1 && rhd_preview_is_triplane(&fv->items[0].t))) {
            if (!it) it = &fv->items[0];
            if (rhd_preview_triplane(&p, &it->t, e)) {
                char m[sizeof e->msg];
                memcpy(m, e->msg, sizeof m);
                return rhd_errf(e, "tensor '%s': %.900s", it->name, m);
            }
        } else {
            const rhd_tensor *maps[16];
            int nm = 0;
            for (int i = 0; i < fv->n && nm < 16; i++)
                if (fv->items[i].t.ndim >= 2) maps[nm++] = &fv->items[i].t;
            if (nm == 0) return rhd_errf(e, "nothing to preview: no tensor has 2 or more dimensions");
            if (rhd_preview_grid(&p, maps, nm, e)) return -1;
        }
    }
    int rc = rhd_mkdir_parents(out, e) ? -1 : rhd_png_write(out, p.rgb, p.width, p.height, 3, 8, RHD_PNG_ROUND, e);
    rhd_preview_free(&p);
    return rc;
}

int main(int argc, char **argv) {
    rhd_set_prog(argv[0]);
    rhd_fs_install_signal_handlers();
    inspect_opts o;
    memset(&o, 0, sizeof o);
    rhd_common_opts_init(&o.common);
    int n = rhd_cli_parse(&inspect_cli, argc, argv, &o);
    rhd_common_opts_apply(&o.common);
    if (n < 1) rhd_usage_error("expected at least one FILE (e.g. rhd-inspect triplane.safetensors)");
    if (o.png && n != 1) rhd_usage_error("--png previews one FILE, got %d files", n);
    if (o.kind && !rhd_schema_find(o.kind)) rhd_usage_error("--kind takes triplane, features, decoder, iwc or checkpoint, got '%s'", o.kind);
    if (o.png) { /* before anything is read: the preview must not replace an input, and must be writable */
        const char *inputs[2] = {argv[1], o.common.config};
        rhd_err e;
        if (rhd_check_output_not_input("--png", o.png, inputs, 2, &e)) rhd_usage_error("%s", e.msg);
        if (rhd_check_output_writable("--png", o.png, &e)) rhd_die_err(&e);
    }
    int status = 0;
    for (int i = 1; i <= n; i++) {
        const char *path = argv[i];
        file_view fv;
        rhd_err e;
        if (load(path, o.kind, !o.allow_nonfinite, &fv, &e)) {
            fflush(stdout);
            fprintf(stderr, "%s: error: %s\n", rhd_prog(), e.msg);
            status = 1;
            continue;
        }
        if (o.json) print_json(path, &fv, o.no_stats);
        else print_text(path, &fv, o.no_stats);
        if (fv.schema_err[0]) {
            fflush(stdout);
            fprintf(stderr, "%s: error: %s\n", rhd_prog(), fv.schema_err);
            status = 1;
        }
        if (o.png && write_preview(o.png, &fv, &e)) {
            fprintf(stderr, "%s: error: --png %s: %s\n", rhd_prog(), o.png, e.msg);
            status = 1;
        }
        unload(&fv);
    }
    rhd_close_stdout();
    return status;
}
