/* common/train_data.c: training pairs (list file or two folders), their validation and loading
 * (common/train_data.h). */
#include "common/train_data.h"
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/fs.h"
#include "common/log.h"
#include "common/triplane.h"
#include "formats/safetensors.h"
#include "formats/triplane_file.h"
#include "kernels/resample.h"

const char *rhd_downsample_name(rhd_downsample d) { return d == RHD_DOWNSAMPLE_BICUBIC ? "bicubic" : "area"; }

int rhd_downsample_parse(const char *s, rhd_downsample *d, rhd_err *e) {
    if (!strcmp(s, "area")) *d = RHD_DOWNSAMPLE_AREA;
    else if (!strcmp(s, "bicubic")) *d = RHD_DOWNSAMPLE_BICUBIC;
    else return rhd_errf(e, "--downsample '%s', expected 'area' or 'bicubic'", s);
    return 0;
}

/* The name of a pair: the file name up to its first '.'. */
static char *stem_of(const char *path) {
    const char *b = strrchr(path, '/');
    char *s = rhd_xstrdup(b ? b + 1 : path);
    char *dot = strchr(s, '.');
    if (dot) *dot = 0;
    return s;
}

static int add_pair(rhd_train_data *d, const char *name_src, char *tri, char *feat, const char *where, rhd_err *e) {
    char *name = stem_of(name_src);
    for (int i = 0; i < d->n; i++)
        if (!strcmp(d->pair[i].name, name)) {
            rhd_errf(e, "%s: two pairs are named '%s' (%s and %s), expected unique triplane names", where, name,
                     d->pair[i].triplane, tri);
            free(name), free(tri), free(feat);
            return -1;
        }
    d->pair = rhd_xrealloc(d->pair, sizeof *d->pair * (d->n + 1));
    d->pair[d->n++] = (rhd_train_pair){name, tri, feat};
    return 0;
}

static char *resolve(const char *dir, const char *p) {
    return p[0] == '/' || !dir ? rhd_xstrdup(p) : rhd_path_join(dir, p);
}

int rhd_train_pairs_from_list(rhd_train_data *d, const char *list, rhd_err *e) {
    char *text;
    size_t n;
    if (rhd_read_file(list, &text, &n, e)) return -1;
    char *dir = rhd_xstrdup(list), *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else free(dir), dir = NULL;
    int rc = 0, line = 0;
    for (char *s = text, *next; s && *s && !rc; s = next) {
        next = strchr(s, '\n');
        if (next) *next++ = 0;
        line++;
        while (isspace((unsigned char)*s)) s++;
        if (!*s || *s == '#') continue;
        char a[4096], b[4096], c[8];
        int k = sscanf(s, "%4095s %4095s %7s", a, b, c);
        if (k != 2) {
            rc = rhd_errf(e, "%s:%d: %d field%s, expected two paths \"TRIPLANE FEATURES\"", list, line, k < 0 ? 0 : k,
                          k == 1 ? "" : "s");
            break;
        }
        char where[4200];
        snprintf(where, sizeof where, "%s:%d", list, line);
        rc = add_pair(d, a, resolve(dir, a), resolve(dir, b), where, e);
    }
    if (!rc && d->n == 0) rc = rhd_errf(e, "%s: no pairs, expected lines \"TRIPLANE FEATURES\"", list);
    free(text), free(dir);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The sorted names in dir ending in one of the suffixes (malloc'd array of malloc'd names). */
static int list_dir(const char *dir, const char *const *suffix, int nsuf, char ***out, int *n, rhd_err *e) {
    DIR *dp = opendir(dir);
    if (!dp) return rhd_errf(e, "%s: cannot open the folder, expected a folder of pair files", dir);
    char **v = NULL;
    int k = 0;
    for (struct dirent *de; (de = readdir(dp));) {
        size_t l = strlen(de->d_name);
        for (int s = 0; s < nsuf; s++) {
            size_t ls = strlen(suffix[s]);
            if (l > ls && !strcmp(de->d_name + l - ls, suffix[s])) {
                v = rhd_xrealloc(v, sizeof *v * (k + 1));
                v[k++] = rhd_xstrdup(de->d_name);
                break;
            }
        }
    }
    closedir(dp);
    qsort(v, k, sizeof *v, cmp_str);
    *out = v, *n = k;
    return 0;
}

static void free_names(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

int rhd_train_pairs_from_dirs(rhd_train_data *d, const char *tri_dir, const char *feat_dir, rhd_err *e) {
    static const char *const tsuf[] = {".safetensors", ".npy"}, *const fsuf[] = {".safetensors"};
    char **tn, **fn;
    int nt, nf, rc = 0;
    if (list_dir(tri_dir, tsuf, 2, &tn, &nt, e)) return -1;
    if (list_dir(feat_dir, fsuf, 1, &fn, &nf, e)) { free_names(tn, nt); return -1; }
    for (int i = 0; i < nt && !rc; i++) {
        char *stem = stem_of(tn[i]), *feat = NULL;
        for (int j = 0; j < nf && !feat; j++) {
            char *fs = stem_of(fn[j]);
            if (!strcmp(fs, stem)) feat = rhd_path_join(feat_dir, fn[j]);
            free(fs);
        }
        if (!feat) rc = rhd_errf(e, "%s/%s: no features %s/%s.safetensors, expected a features file for every triplane",
                                 tri_dir, tn[i], feat_dir, stem);
        else rc = add_pair(d, tn[i], rhd_path_join(tri_dir, tn[i]), feat, tri_dir, e);
        free(stem);
    }
    for (int j = 0; j < nf && !rc; j++) {
        char *fs = stem_of(fn[j]);
        int found = 0;
        for (int i = 0; i < d->n; i++) found |= !strcmp(d->pair[i].name, fs);
        if (!found) rc = rhd_errf(e, "%s/%s: no triplane %s/%s.safetensors or .npy, expected a triplane for every features file",
                                  feat_dir, fn[j], tri_dir, fs);
        free(fs);
    }
    if (!rc && d->n == 0) rc = rhd_errf(e, "%s: no triplanes (*.safetensors, *.npy), expected at least one pair", tri_dir);
    free_names(tn, nt), free_names(fn, nf);
    return rc;
}

void rhd_train_data_setup(rhd_train_data *d, const rhd_unet_config *c, rhd_downsample down, size_t cache_bytes) {
    d->C = c->in_channels, d->R = c->image_size, d->lc = c->latent_ch, d->L = c->latent_size;
    for (int i = 0; i < RHD_UNET_FEATS; i++) d->fch[i] = c->feat_ch[i], d->fsz[i] = c->feat_size[i];
    d->down = down, d->cache_bytes = cache_bytes;
    if (!d->item) d->item = rhd_xcalloc(d->n ? d->n : 1, sizeof *d->item);
}

void rhd_area_downsample(float *dst, const float *src, int64_t P, int R0, int R1) {
    const int f = R0 / R1;
    const double inv = 1.0 / ((double)f * f);
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < P; p++)
        for (int i = 0; i < R1; i++)
            for (int j = 0; j < R1; j++) {
                double s = 0;
                for (int a = 0; a < f; a++)
                    for (int b = 0; b < f; b++) s += src[(p * R0 + (int64_t)i * f + a) * R0 + (int64_t)j * f + b];
                dst[(p * R1 + i) * R1 + j] = (float)(s * inv);
            }
}

/* The triplane of pair i at the model's size, rolled, into x0 [C, R, 3R]. */
static int load_triplane(const rhd_train_data *d, const rhd_train_pair *p, float *x0, rhd_err *e) {
    rhd_triplane t;
    if (rhd_triplane_file_read(p->triplane, &t, NULL, e)) return -1;
    int rc = 0;
    const int C = d->C, R = d->R;
    float *planes = t.planes, *tmp = NULL;
    if (t.C != C) {
        rc = rhd_errf(e, "%s: a triplane with %d channels [3,%d,%d,%d], expected %d channels (the model's in_channels)",
                      p->triplane, t.C, t.C, t.R, t.R, C);
    } else if (t.R != R && d->down == RHD_DOWNSAMPLE_AREA && (t.R < R || t.R % R)) {
        rc = rhd_errf(e, "%s: a triplane of resolution %d, expected a multiple of the model's %d for --downsample area "
                         "(use --downsample bicubic for other ratios)", p->triplane, t.R, R);
    } else if (t.R != R) {
        tmp = rhd_xmalloc(sizeof(float) * (size_t)rhd_triplane_numel_of(C, R));
        if (d->down == RHD_DOWNSAMPLE_AREA) rhd_area_downsample(tmp, t.planes, 3 * (int64_t)C, t.R, R);
        else {
            rhd_ctx *cpu = rhd_ctx_open("cpu", e);
            if (!cpu) rc = -1;
            else rhd_resize_forward(cpu, tmp, t.planes, 3, C, t.R, t.R, R, R, RHD_RESIZE_BICUBIC, 0), rhd_ctx_close(cpu);
        }
        planes = tmp;
    }
    if (!rc) rhd_triplane_roll(x0, planes, C, R);
    free(tmp);
    rhd_triplane_free(&t);
    return rc;
}

/* One features tensor with its expected shape [c, s, s] into dst. */
static int load_feat(const rhd_st *st, const char *name, int c, int s, float *dst, rhd_err *e) {
    const rhd_st_tensor *t = rhd_st_find(st, name);
    if (!t) return rhd_errf(e, "%s: no tensor '%s', expected a features file of rhd-encode (formats/features.md)", st->name, name);
    if (t->ndim != 3 || t->shape[0] != c || t->shape[1] != s || t->shape[2] != s) {
        char got[96] = "";
        for (int k = 0; k < t->ndim; k++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", k ? "," : "", (long long)t->shape[k]);
        return rhd_errf(e, "%s: tensor '%s' has shape [%s], expected [%d,%d,%d] (the model config's sizes)", st->name,
                        name, got, c, s, s);
    }
    rhd_st_to_f32(t, dst);
    for (int64_t k = 0; k < t->numel; k++)
        if (!isfinite(dst[k])) return rhd_errf(e, "%s: tensor '%s' has a non-finite value %g at flat index %lld, expected finite features", st->name, name, dst[k], (long long)k);
    return 0;
}

static size_t n_x0(const rhd_train_data *d) { return (size_t)d->C * d->R * 3 * d->R; }
static size_t n_mom(const rhd_train_data *d) { return (size_t)2 * d->lc * d->L * d->L; }
static size_t n_feat(const rhd_train_data *d, int i) { return (size_t)d->fch[i] * d->fsz[i] * d->fsz[i]; }

size_t rhd_train_item_bytes(const rhd_train_data *d) {
    size_t n = n_x0(d) + n_mom(d);
    for (int i = 0; i < RHD_UNET_FEATS; i++) n += n_feat(d, i);
    return n * sizeof(float);
}

void rhd_train_item_free(rhd_train_item *it) {
    free(it->x0), free(it->moments);
    for (int i = 0; i < RHD_UNET_FEATS; i++) free(it->F[i]);
    memset(it, 0, sizeof *it);
}

static int load_item(const rhd_train_data *d, int i, rhd_train_item *it, rhd_err *e) {
    const rhd_train_pair *p = &d->pair[i];
    memset(it, 0, sizeof *it);
    it->x0 = rhd_xmalloc(sizeof(float) * n_x0(d));
    it->moments = rhd_xmalloc(sizeof(float) * n_mom(d));
    for (int k = 0; k < RHD_UNET_FEATS; k++) it->F[k] = rhd_xmalloc(sizeof(float) * n_feat(d, k));
    if (load_triplane(d, p, it->x0, e)) goto fail;
    rhd_st *st;
    if (rhd_st_open(p->features, &st, e)) goto fail;
    int rc = load_feat(st, "moments", 2 * d->lc, d->L, it->moments, e);
    for (int k = 0; k < RHD_UNET_FEATS && !rc; k++) {
        char nm[32];
        snprintf(nm, sizeof nm, "ms_feature.%d", k);
        rc = load_feat(st, nm, d->fch[k], d->fsz[k], it->F[k], e);
    }
    rhd_st_close(st);
    if (!rc) return 0;
fail:
    rhd_train_item_free(it);
    return -1;
}

int rhd_train_data_get(rhd_train_data *d, int i, rhd_train_item *out, int *tmp, rhd_err *e) {
    if (d->item[i].x0) { *out = d->item[i], *tmp = 0; return 0; }
    if (load_item(d, i, out, e)) return -1;
    size_t b = rhd_train_item_bytes(d);
    if (d->cached + b <= d->cache_bytes) d->item[i] = *out, d->cached += b, *tmp = 0;
    else *tmp = 1;
    return 0;
}

int rhd_train_data_check(rhd_train_data *d, int i, rhd_err *e) {
    rhd_train_item it;
    int tmp;
    if (rhd_train_data_get(d, i, &it, &tmp, e)) return -1;
    if (tmp) rhd_train_item_free(&it);
    return 0;
}

int rhd_train_data_validate(rhd_train_data *d, int first, int stride, rhd_err *e) {
    for (int i = first; i < d->n; i += stride)
        if (rhd_train_data_check(d, i, e)) return -1;
    return 0;
}

void rhd_train_data_free(rhd_train_data *d) {
    for (int i = 0; i < d->n; i++) {
        free(d->pair[i].name), free(d->pair[i].triplane), free(d->pair[i].features);
        if (d->item && d->item[i].x0) rhd_train_item_free(&d->item[i]);
    }
    free(d->pair), free(d->item);
    memset(d, 0, sizeof *d);
}
