/* tools/rhd-inspect.c: show what is inside an rhd file (safetensors, .npy or PNG): its kind and
 * whether it passes that kind's schema, the metadata, and each tensor's dtype, shape and
 * statistics (min, max, mean, std, NaN and Inf counts); --json for machines; --png OUT for a
 * picture (a triplane's three planes as a PCA-to-RGB strip, feature maps as a grid, an image as
 * itself). See tools/rhd-inspect.md. */
#include "common/cli.h"
#include "common/fs.h"
#include "common/log.h"
#include "formats/npy.h"
#include "formats/png.h"
#include "formats/safetensors.h"
#include "formats/schema.h"
#include "common/preview.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct inspect_opts {
    rhd_common_opts common;
    int json;
    const char *png;
    int no_stats;
    const char *kind;
} inspect_opts;

static const rhd_opt inspect_options[] = {
    RHD_OPT_FLAG_(0, "json", inspect_opts, json, "print one JSON object per file (JSON Lines) instead of text"),
    RHD_OPT_STRING_(0, "png", inspect_opts, png, "OUT", "write a preview picture of the (single) FILE to OUT"),
    RHD_OPT_FLAG_(0, "no-stats", inspect_opts, no_stats, "skip the per-tensor statistics"),
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
    "values. An rhd file (rhd.kind in its metadata) is also checked against its kind's schema.\n"
    "Exit status: 0 if every file was read (and valid), 1 if any was not, 2 for usage errors.\n",
    inspect_options,
    "examples:\n"
    "  rhd-inspect triplanes/avatar_100.safetensors\n"
    "  rhd-inspect --json features/*.safetensors | jq -r '.tensors[] | [.name, .max] | @tsv'\n"
    "  rhd-inspect --png preview.png triplanes/avatar_100.safetensors\n"};

typedef struct stats {
    double min, max, mean, std;
    int64_t nan, inf, count;
} stats;

/* Statistics in double over chunks combined in a fixed order (thread-count independent). */
static stats tensor_stats(const void *data, rhd_dtype dt, int64_t n) {
    enum { CH = 1 << 16 };
    int64_t nch = (n + CH - 1) / CH;
    double *smin = malloc(sizeof(double) * (nch + 1)), *smax = malloc(sizeof(double) * (nch + 1));
    double *ssum = malloc(sizeof(double) * (nch + 1)), *ssq = malloc(sizeof(double) * (nch + 1));
    int64_t *snan = calloc(nch + 1, sizeof(int64_t)), *sinf = calloc(nch + 1, sizeof(int64_t));
    size_t es = rhd_dtype_size(dt);
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t c = 0; c < nch; c++) {
        float buf[4096];
        double mn = INFINITY, mx = -INFINITY, s = 0, q = 0;
        int64_t a = c * CH, b = a + CH < n ? a + CH : n;
        for (int64_t i = a; i < b; i += 4096) {
            int64_t k = b - i < 4096 ? b - i : 4096;
            if (dt == RHD_F64 || dt == RHD_I64) { /* keep full precision for the wide types */
                for (int64_t j = 0; j < k; j++) {
                    double v;
                    if (dt == RHD_F64) memcpy(&v, (const char *)data + (i + j) * es, 8);
                    else { int64_t iv; memcpy(&iv, (const char *)data + (i + j) * es, 8); v = (double)iv; }
                    if (isnan(v)) { snan[c]++; continue; }
                    if (isinf(v)) { sinf[c]++; continue; }
                    mn = v < mn ? v : mn, mx = v > mx ? v : mx, s += v, q += v * v;
                }
                continue;
            }
            char raw[4096 * 4];
            memcpy(raw, (const char *)data + i * es, (size_t)(k * es)); /* data may be unaligned */
            rhd_convert_to_f32(buf, raw, dt, k);
            for (int64_t j = 0; j < k; j++) {
                double v = buf[j];
                if (isnan(v)) { snan[c]++; continue; }
                if (isinf(v)) { sinf[c]++; continue; }
                mn = v < mn ? v : mn, mx = v > mx ? v : mx, s += v, q += v * v;
            }
        }
        smin[c] = mn, smax[c] = mx, ssum[c] = s, ssq[c] = q;
    }
    stats r = {INFINITY, -INFINITY, 0, 0, 0, 0, n};
    double s = 0, q = 0;
    for (int64_t c = 0; c < nch; c++) {
        r.min = smin[c] < r.min ? smin[c] : r.min;
        r.max = smax[c] > r.max ? smax[c] : r.max;
        s += ssum[c], q += ssq[c], r.nan += snan[c], r.inf += sinf[c];
    }
    int64_t finite = n - r.nan - r.inf;
    if (finite > 0) {
        r.mean = s / finite;
        double var = q / finite - r.mean * r.mean;
        r.std = var > 0 ? sqrt(var) : 0;
    } else {
        r.min = r.max = r.mean = r.std = NAN;
    }
    free(smin), free(smax), free(ssum), free(ssq), free(snan), free(sinf);
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

static int load(const char *path, const char *want_kind, file_view *fv, rhd_err *e) {
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
            if (rhd_schema_check(fv->st, want_kind, NULL, &se)) snprintf(fv->schema_err, sizeof fv->schema_err, "%s", se.msg);
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
            printf(" min %-11.5g max %-11.5g mean %-11.5g std %-11.5g", s.min, s.max, s.mean, s.std);
            if (s.nan || s.inf) printf(" nan %lld inf %lld", (long long)s.nan, (long long)s.inf);
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
            cJSON_AddNumberToObject(j, "inf", (double)s.inf);
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
        if (it || (fv->n == 1 && rhd_preview_is_triplane(&fv->items[0].t))) {
            if (!it) it = &fv->items[0];
            if (rhd_preview_triplane(&p, &it->t, e)) return -1;
        } else {
            const rhd_tensor *maps[16];
            int nm = 0;
            for (int i = 0; i < fv->n && nm < 16; i++)
                if (fv->items[i].t.ndim >= 2) maps[nm++] = &fv->items[i].t;
            if (nm == 0) return rhd_errf(e, "nothing to preview: no tensor has 2 or more dimensions");
            if (rhd_preview_grid(&p, maps, nm, e)) return -1;
        }
    }
    int rc = rhd_png_write(out, p.rgb, p.width, p.height, 3, 8, RHD_PNG_ROUND, e);
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
    int status = 0;
    for (int i = 1; i <= n; i++) {
        const char *path = argv[i];
        file_view fv;
        rhd_err e;
        if (load(path, o.kind, &fv, &e)) {
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
