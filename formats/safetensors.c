/* formats/safetensors.c: validating reader and reference-compatible writer; see safetensors.h. */
#include "formats/safetensors.h"
#include "common/fs.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int rhd_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) { p++; continue; }
        int len;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07;
        else return 0;
        if (end - p < len) return 0;
        for (int i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += len;
    }
    return 1;
}

static void st_free(rhd_st *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) free(st->t[i].name);
    for (int i = 0; i < st->nmeta; i++) free(st->meta_key[i]), free(st->meta_val[i]);
    free(st->t);
    free(st->meta_key);
    free(st->meta_val);
    if (st->mapped && st->base) munmap((void *)st->base, st->size);
    free(st->name);
    free(st);
}

void rhd_st_close(rhd_st *st) { st_free(st); }

/* A JSON number that must be a non-negative integer no larger than 2^53. */
static int get_u53(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != floor(d)) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int cmp_begin(const void *a, const void *b) {
    const rhd_st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int rhd_st_parse(const void *buf, size_t n, const char *name, rhd_st **out, rhd_err *e) {
    *out = NULL;
    const uint8_t *b = buf;
    if (n < 8) return rhd_errf(e, "%s: %zu bytes, expected a safetensors file (8-byte header length first)", name, n);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)b[i] << (8 * i);
    if (hlen > RHD_ST_MAX_HEADER) return rhd_errf(e, "%s: safetensors header length %llu exceeds the %u-byte limit (not a safetensors file?)", name, (unsigned long long)hlen, RHD_ST_MAX_HEADER);
    if (hlen > n - 8) return rhd_errf(e, "%s: safetensors header length %llu exceeds the file size %zu (truncated?)", name, (unsigned long long)hlen, n);
    if (hlen < 2 || b[8] != '{') return rhd_errf(e, "%s: safetensors header does not start with '{' (not a safetensors file?)", name);
    const char *h = (const char *)b + 8;
    if (!rhd_utf8_valid(h, hlen)) return rhd_errf(e, "%s: safetensors header is not valid UTF-8", name);
    if (memchr(h, 0, hlen)) return rhd_errf(e, "%s: safetensors header contains a NUL byte", name);
    const char *pend = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(h, hlen, &pend, 0);
    if (!root || !cJSON_IsObject(root)) {
        size_t at = root ? 0 : (size_t)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - h : 0);
        cJSON_Delete(root);
        return rhd_errf(e, "%s: safetensors header is not a JSON object (error near header byte %zu)", name, at);
    }
    for (const char *q = pend; q < h + hlen; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            cJSON_Delete(root);
            return rhd_errf(e, "%s: safetensors header has trailing bytes after the JSON object", name);
        }
    rhd_st *st = rhd_xcalloc(1, sizeof *st);
    st->name = rhd_xstrdup(name);
    st->base = b;
    st->size = n;
    st->data = b + 8 + hlen;
    st->data_size = n - 8 - hlen;
    int count = cJSON_GetArraySize(root), nt = 0;
    st->t = rhd_xcalloc(count ? count : 1, sizeof(rhd_st_tensor));
    char **names = rhd_xcalloc(count ? count : 1, sizeof(char *));
    int nn = 0;
    char sh[256];
    for (cJSON *it = root->child; it; it = it->next) {
        names[nn++] = it->string;
        if (strcmp(it->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(it)) { rhd_errf(e, "%s: __metadata__ is not an object of strings", name); goto fail; }
            if (st->meta_key) { rhd_errf(e, "%s: key '__metadata__' appears twice, expected one", name); goto fail; }
            int m = cJSON_GetArraySize(it);
            st->meta_key = rhd_xcalloc(m ? m : 1, sizeof(char *));
            st->meta_val = rhd_xcalloc(m ? m : 1, sizeof(char *));
            for (cJSON *kv = it->child; kv; kv = kv->next) {
                if (!cJSON_IsString(kv)) { rhd_errf(e, "%s: __metadata__ key '%s' has a non-string value, expected a string", name, kv->string); goto fail; }
                for (int j = 0; j < st->nmeta; j++)
                    if (strcmp(st->meta_key[j], kv->string) == 0) { rhd_errf(e, "%s: __metadata__ key '%s' appears twice", name, kv->string); goto fail; }
                st->meta_key[st->nmeta] = rhd_xstrdup(kv->string);
                st->meta_val[st->nmeta++] = rhd_xstrdup(kv->valuestring);
            }
            continue;
        }
        rhd_st_tensor *t = &st->t[nt];
        t->name = rhd_xstrdup(it->string);
        nt++;
        st->n = nt;
        if (!cJSON_IsObject(it)) { rhd_errf(e, "%s: tensor '%s': entry is not an object", name, t->name); goto fail; }
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        cJSON *shp = cJSON_GetObjectItemCaseSensitive(it, "shape");
        cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsString(dt)) { rhd_errf(e, "%s: tensor '%s': missing or non-string 'dtype'", name, t->name); goto fail; }
        if (rhd_dtype_from_name(dt->valuestring, &t->dtype)) {
            rhd_errf(e, "%s: tensor '%s': dtype '%.32s' is not supported, expected F32, F16, BF16, F64, I32, I64 or U8", name, t->name, dt->valuestring);
            goto fail;
        }
        if (!cJSON_IsArray(shp)) { rhd_errf(e, "%s: tensor '%s': missing or non-array 'shape'", name, t->name); goto fail; }
        int nd = cJSON_GetArraySize(shp);
        if (nd > RHD_MAX_DIMS) { rhd_errf(e, "%s: tensor '%s': %d dimensions, at most %d supported", name, t->name, nd, RHD_MAX_DIMS); goto fail; }
        t->ndim = 0;
        for (cJSON *d = shp->child; d; d = d->next) {
            uint64_t v;
            if (get_u53(d, &v)) { rhd_errf(e, "%s: tensor '%s': shape entries must be non-negative integers", name, t->name); goto fail; }
            t->shape[t->ndim++] = (int64_t)v;
        }
        t->numel = rhd_shape_numel(t->shape, t->ndim);
        uint64_t es = rhd_dtype_size(t->dtype);
        if (t->numel < 0 || (uint64_t)t->numel > UINT64_MAX / es) {
            rhd_errf(e, "%s: tensor '%s': shape %s overflows", name, t->name, rhd_shape_str(t->shape, t->ndim, sh, sizeof sh));
            goto fail;
        }
        if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || get_u53(off->child, &t->begin) || get_u53(off->child->next, &t->end)) {
            rhd_errf(e, "%s: tensor '%s': 'data_offsets' must be [begin, end] of non-negative integers", name, t->name);
            goto fail;
        }
        if (t->end < t->begin) { rhd_errf(e, "%s: tensor '%s': data_offsets [%llu, %llu] end before begin", name, t->name, (unsigned long long)t->begin, (unsigned long long)t->end); goto fail; }
        if (t->end > st->data_size) {
            rhd_errf(e, "%s: tensor '%s': data_offsets [%llu, %llu] out of bounds, the data section has %zu bytes", name, t->name,
                     (unsigned long long)t->begin, (unsigned long long)t->end, st->data_size);
            goto fail;
        }
        if (t->end - t->begin != (uint64_t)t->numel * es) {
            rhd_errf(e, "%s: tensor '%s': data_offsets span %llu bytes, expected %llu for %s %s", name, t->name,
                     (unsigned long long)(t->end - t->begin), (unsigned long long)((uint64_t)t->numel * es), dt->valuestring,
                     rhd_shape_str(t->shape, t->ndim, sh, sizeof sh));
            goto fail;
        }
        t->data = st->data + t->begin;
        for (cJSON *k = it->child; k; k = k->next)
            if (strcmp(k->string, "dtype") && strcmp(k->string, "shape") && strcmp(k->string, "data_offsets")) {
                rhd_errf(e, "%s: tensor '%s': unknown field '%.64s', expected dtype, shape, data_offsets", name, t->name, k->string);
                goto fail;
            }
    }
    qsort(names, nn, sizeof(char *), cmp_str);
    for (int i = 1; i < nn; i++)
        if (strcmp(names[i - 1], names[i]) == 0) { rhd_errf(e, "%s: key '%s' appears twice in the header", name, names[i]); goto fail; }
    qsort(st->t, nt, sizeof(rhd_st_tensor), cmp_begin);
    uint64_t pos = 0;
    for (int i = 0; i < nt; i++) {
        if (st->t[i].begin != pos) {
            if (st->t[i].begin < pos)
                rhd_errf(e, "%s: tensor '%s' (bytes %llu-%llu) overlaps the previous tensor '%s' (ending at %llu)", name, st->t[i].name,
                         (unsigned long long)st->t[i].begin, (unsigned long long)st->t[i].end, i ? st->t[i - 1].name : "", (unsigned long long)pos);
            else
                rhd_errf(e, "%s: gap in the data section before tensor '%s' (bytes %llu-%llu unused)", name, st->t[i].name,
                         (unsigned long long)pos, (unsigned long long)st->t[i].begin);
            goto fail;
        }
        pos = st->t[i].end;
    }
    if (pos != st->data_size) {
        rhd_errf(e, "%s: the data section has %zu bytes but the tensors cover %llu (trailing or missing data)", name, st->data_size, (unsigned long long)pos);
        goto fail;
    }
    free(names);
    cJSON_Delete(root);
    *out = st;
    return 0;
fail:
    free(names);
    cJSON_Delete(root);
    st->mapped = 0;
    st_free(st);
    return -1;
}

int rhd_st_open(const char *path, rhd_st **out, rhd_err *e) {
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return rhd_errf(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int dir = fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode);
        close(fd);
        return rhd_errf(e, "%s: %s, expected a file", path, dir ? "is a directory" : "not a regular file");
    }
    size_t n = (size_t)sb.st_size;
    void *map = NULL;
    if (n > 0) {
        map = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int err = errno;
            close(fd);
            return rhd_errf(e, "%s: cannot map: %s", path, strerror(err));
        }
    }
    close(fd);
    if (rhd_st_parse(map ? map : "", n, path, out, e)) {
        if (map) munmap(map, n);
        return -1;
    }
    (*out)->mapped = map != NULL;
    return 0;
}

const rhd_st_tensor *rhd_st_find(const rhd_st *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->t[i].name, name) == 0) return &st->t[i];
    return NULL;
}

const char *rhd_st_meta(const rhd_st *st, const char *key) {
    for (int i = 0; i < st->nmeta; i++)
        if (strcmp(st->meta_key[i], key) == 0) return st->meta_val[i];
    return NULL;
}

void rhd_st_to_f32(const rhd_st_tensor *t, float *dst) {
    /* the data section may be unaligned for the dtype: convert through memcpy'd chunks */
    size_t es = rhd_dtype_size(t->dtype);
    const uint8_t *src = t->data;
    if (((uintptr_t)src % es) == 0) { rhd_convert_to_f32(dst, src, t->dtype, t->numel); return; }
    uint8_t tmp[4096];
    int64_t per = (int64_t)(sizeof tmp / es);
    for (int64_t i = 0; i < t->numel; i += per) {
        int64_t k = t->numel - i < per ? t->numel - i : per;
        memcpy(tmp, src + i * es, (size_t)(k * es));
        rhd_convert_to_f32(dst + i, tmp, t->dtype, k);
    }
}

/* ---- writer ---- */

void rhd_st_writer_init(rhd_st_writer *w) { memset(w, 0, sizeof *w); }

void rhd_st_writer_free(rhd_st_writer *w) {
    for (int i = 0; i < w->n; i++) free(w->t[i].name), free(w->t[i].owned);
    for (int i = 0; i < w->nmeta; i++) free(w->meta_key[i]), free(w->meta_val[i]);
    free(w->t);
    free(w->meta_key);
    free(w->meta_val);
    memset(w, 0, sizeof *w);
}

void rhd_st_add(rhd_st_writer *w, const char *name, rhd_dtype dtype, int ndim, const int64_t *shape, const void *data) {
    RHD_ASSERT(ndim >= 0 && ndim <= RHD_MAX_DIMS);
    RHD_ASSERT(strcmp(name, "__metadata__") != 0);
    for (int i = 0; i < w->n; i++) RHD_ASSERT(strcmp(w->t[i].name, name) != 0 && "duplicate tensor name");
    if (w->n == w->cap) w->t = rhd_xrealloc(w->t, sizeof(*w->t) * (w->cap = w->cap ? 2 * w->cap : 16));
    struct rhd_st_wentry *t = &w->t[w->n++];
    memset(t, 0, sizeof *t);
    t->name = rhd_xstrdup(name);
    t->dtype = dtype;
    t->ndim = ndim;
    if (ndim) memcpy(t->shape, shape, sizeof(int64_t) * ndim);
    t->data = data;
}

void rhd_st_add_f32(rhd_st_writer *w, const char *name, rhd_dtype dtype, int ndim, const int64_t *shape, const float *data) {
    int64_t n = rhd_shape_numel(shape, ndim);
    RHD_ASSERT(n >= 0);
    void *copy = rhd_xmalloc((size_t)n * rhd_dtype_size(dtype));
    rhd_convert_from_f32(copy, data, dtype, n);
    rhd_st_add(w, name, dtype, ndim, shape, copy);
    w->t[w->n - 1].owned = copy;
}

void rhd_st_set_meta(rhd_st_writer *w, const char *key, const char *value) {
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta_key[i], key) == 0) { free(w->meta_val[i]); w->meta_val[i] = rhd_xstrdup(value); return; }
    if (w->nmeta == w->capmeta) {
        w->capmeta = w->capmeta ? 2 * w->capmeta : 8;
        w->meta_key = rhd_xrealloc(w->meta_key, sizeof(char *) * w->capmeta);
        w->meta_val = rhd_xrealloc(w->meta_val, sizeof(char *) * w->capmeta);
    }
    w->meta_key[w->nmeta] = rhd_xstrdup(key);
    w->meta_val[w->nmeta++] = rhd_xstrdup(value);
}

/* growable text buffer */
typedef struct { char *s; size_t n, cap; } sbuf;
static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap) b->cap = b->cap ? 2 * b->cap : 1024;
        b->s = rhd_xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_json_str(sbuf *b, const char *s) { /* JSON string with serde_json's escapes */
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char tmp[8];
        switch (*p) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        default:
            if (*p < 0x20) { snprintf(tmp, sizeof tmp, "\\u%04x", *p); sb_put(b, tmp, 6); }
            else sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

/* The reference writer's order: dtype (in its enum order) descending, then name. */
static int dtype_rank(rhd_dtype t) {
    switch (t) {
    case RHD_U8: return 1;
    case RHD_F16: return 7;
    case RHD_BF16: return 8;
    case RHD_I32: return 9;
    case RHD_F32: return 11;
    case RHD_F64: return 12;
    case RHD_I64: return 13;
    default: return 0;
    }
}
static int cmp_wentry(const void *a, const void *b) {
    const struct rhd_st_wentry *x = *(struct rhd_st_wentry *const *)a, *y = *(struct rhd_st_wentry *const *)b;
    int rx = dtype_rank(x->dtype), ry = dtype_rank(y->dtype);
    if (rx != ry) return ry - rx;
    return strcmp(x->name, y->name);
}

int rhd_st_encode(const rhd_st_writer *w, void **out, size_t *nout, rhd_err *e) {
    for (int i = 0; i < w->n; i++)
        if (!rhd_utf8_valid(w->t[i].name, strlen(w->t[i].name))) return rhd_errf(e, "tensor name is not valid UTF-8");
    for (int i = 0; i < w->nmeta; i++)
        if (!rhd_utf8_valid(w->meta_key[i], strlen(w->meta_key[i])) || !rhd_utf8_valid(w->meta_val[i], strlen(w->meta_val[i])))
            return rhd_errf(e, "metadata '%s' is not valid UTF-8", w->meta_key[i]);
    struct rhd_st_wentry **order = rhd_xmalloc(sizeof(*order) * (w->n ? w->n : 1));
    for (int i = 0; i < w->n; i++) order[i] = &w->t[i];
    qsort(order, w->n, sizeof(*order), cmp_wentry);
    sbuf h = {0};
    sb_str(&h, "{");
    int first = 1;
    if (w->nmeta) {
        sb_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < w->nmeta; i++) {
            if (i) sb_str(&h, ",");
            sb_json_str(&h, w->meta_key[i]);
            sb_str(&h, ":");
            sb_json_str(&h, w->meta_val[i]);
        }
        sb_str(&h, "}");
        first = 0;
    }
    uint64_t pos = 0;
    char num[64];
    for (int i = 0; i < w->n; i++) {
        const struct rhd_st_wentry *t = order[i];
        int64_t numel = rhd_shape_numel(t->shape, t->ndim);
        if (numel < 0) { free(order); free(h.s); return rhd_errf(e, "tensor '%s': shape overflows", t->name); }
        uint64_t nb = (uint64_t)numel * rhd_dtype_size(t->dtype);
        if (!first) sb_str(&h, ",");
        first = 0;
        sb_json_str(&h, t->name);
        sb_str(&h, ":{\"dtype\":");
        sb_json_str(&h, rhd_dtype_name(t->dtype));
        sb_str(&h, ",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            sb_str(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)pos, (unsigned long long)(pos + nb));
        sb_str(&h, num);
        pos += nb;
    }
    sb_str(&h, "}");
    while (h.n % 8) sb_put(&h, " ", 1);
    size_t total = 8 + h.n + (size_t)pos;
    uint8_t *b = rhd_xmalloc(total ? total : 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
    memcpy(b + 8, h.s, h.n);
    size_t at = 8 + h.n;
    for (int i = 0; i < w->n; i++) {
        const struct rhd_st_wentry *t = order[i];
        size_t nb = (size_t)rhd_shape_numel(t->shape, t->ndim) * rhd_dtype_size(t->dtype);
        if (nb) memcpy(b + at, t->data, nb);
        at += nb;
    }
    free(order);
    free(h.s);
    *out = b;
    *nout = total;
    return 0;
}

int rhd_st_write(const rhd_st_writer *w, const char *path, rhd_err *e) {
    void *b;
    size_t n;
    if (rhd_st_encode(w, &b, &n, e)) return rhd_err_prefix(e, "%s", path);
    int rc = rhd_write_file_atomic(path, b, n, e);
    free(b);
    return rc;
}
