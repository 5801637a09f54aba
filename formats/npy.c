/* formats/npy.c: .npy v1/v2/v3 reader and writer; see npy.h and npy.md. */
#include "formats/npy.h"
#include "common/fs.h"
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *descr; rhd_dtype t; } g_descr[] = {
    {"<f4", RHD_F32}, {"<f2", RHD_F16}, {"<f8", RHD_F64}, {"<i4", RHD_I32},
    {"<i8", RHD_I64}, {"|u1", RHD_U8},  {"<u1", RHD_U8},
};

/* A tiny parser for the header dict: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 * Keys may come in any order; exactly these three are required. */
typedef struct { const char *p, *end; } cur;

static void skip_ws(cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}
static int expect(cur *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) { c->p++; return 0; }
    return -1;
}
static int parse_str(cur *c, char *out, size_t n) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return -1;
    char q = *c->p++;
    size_t k = 0;
    while (c->p < c->end && *c->p != q) {
        if (k + 1 >= n) return -1;
        out[k++] = *c->p++;
    }
    if (c->p >= c->end) return -1;
    c->p++;
    out[k] = 0;
    return 0;
}

int rhd_npy_parse(const void *data, size_t n, const char *name, rhd_npy *out, rhd_err *e) {
    const unsigned char *d = data;
    memset(out, 0, sizeof *out);
    if (n < 10) return rhd_errf(e, "%s: %zu bytes, expected a .npy file (at least 10 bytes)", name, n);
    if (memcmp(d, "\x93NUMPY", 6) != 0) return rhd_errf(e, "%s: no .npy magic (\\x93NUMPY), not a NumPy array file", name);
    int major = d[6], minor = d[7];
    size_t hlen, pre;
    if (major == 1) { hlen = d[8] | (size_t)d[9] << 8; pre = 10; }
    else if (major == 2 || major == 3) {
        if (n < 12) return rhd_errf(e, "%s: truncated .npy v%d preamble", name, major);
        hlen = d[8] | (size_t)d[9] << 8 | (size_t)d[10] << 16 | (size_t)d[11] << 24;
        pre = 12;
    } else return rhd_errf(e, "%s: .npy format version %d.%d, expected 1.0, 2.0 or 3.0", name, major, minor);
    if (minor != 0) return rhd_errf(e, "%s: .npy format version %d.%d, expected 1.0, 2.0 or 3.0", name, major, minor);
    if (hlen > n - pre) return rhd_errf(e, "%s: .npy header length %zu exceeds the file size %zu", name, hlen, n);
    char descr[32] = "";
    int have_descr = 0, have_fortran = 0, have_shape = 0, fortran = 0, ndim = 0;
    int64_t shape[RHD_MAX_DIMS];
    cur c = {(const char *)d + pre, (const char *)d + pre + hlen};
    for (const char *q = c.p; q < c.end; q++)
        if ((unsigned char)*q >= 0x80 || *q == 0) return rhd_errf(e, "%s: .npy header is not ASCII", name);
    if (expect(&c, '{')) goto bad;
    for (;;) {
        skip_ws(&c);
        if (c.p < c.end && *c.p == '}') { c.p++; break; }
        char key[32];
        if (parse_str(&c, key, sizeof key) || expect(&c, ':')) goto bad;
        skip_ws(&c);
        if (strcmp(key, "descr") == 0) {
            if (have_descr || parse_str(&c, descr, sizeof descr)) goto bad;
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (have_fortran) goto bad;
            if ((size_t)(c.end - c.p) >= 4 && memcmp(c.p, "True", 4) == 0) fortran = 1, c.p += 4;
            else if ((size_t)(c.end - c.p) >= 5 && memcmp(c.p, "False", 5) == 0) fortran = 0, c.p += 5;
            else goto bad;
            have_fortran = 1;
        } else if (strcmp(key, "shape") == 0) {
            if (have_shape || expect(&c, '(')) goto bad;
            for (;;) {
                skip_ws(&c);
                if (c.p < c.end && *c.p == ')') { c.p++; break; }
                if (ndim == RHD_MAX_DIMS) return rhd_errf(e, "%s: .npy array has more than %d dimensions", name, RHD_MAX_DIMS);
                if (c.p >= c.end || !isdigit((unsigned char)*c.p)) goto bad;
                int64_t v = 0;
                while (c.p < c.end && isdigit((unsigned char)*c.p)) {
                    if (v > (INT64_MAX - 9) / 10) return rhd_errf(e, "%s: .npy shape dimension overflows", name);
                    v = v * 10 + (*c.p++ - '0');
                }
                if (c.p < c.end && *c.p == 'L') c.p++;
                shape[ndim++] = v;
                skip_ws(&c);
                if (c.p < c.end && *c.p == ',') c.p++;
                else if (c.p < c.end && *c.p == ')') continue;
                else goto bad;
            }
            have_shape = 1;
        } else {
            return rhd_errf(e, "%s: .npy header has an unknown key '%s', expected descr, fortran_order, shape", name, key);
        }
        skip_ws(&c);
        if (c.p < c.end && *c.p == ',') c.p++;
    }
    if (!have_descr || !have_fortran || !have_shape)
        return rhd_errf(e, "%s: .npy header lacks %s", name, !have_descr ? "'descr'" : !have_fortran ? "'fortran_order'" : "'shape'");
    skip_ws(&c);
    if (c.p != c.end) goto bad;
    if (fortran) return rhd_errf(e, "%s: .npy array is in Fortran order, expected C order (save with np.ascontiguousarray)", name);
    int found = -1;
    for (size_t i = 0; i < sizeof g_descr / sizeof g_descr[0]; i++)
        if (strcmp(descr, g_descr[i].descr) == 0) found = (int)i;
    if (found < 0)
        return rhd_errf(e, "%s: .npy dtype '%s', expected little-endian <f4, <f2, <f8, <i4, <i8 or |u1", name, descr);
    rhd_tensor *t = &out->t;
    t->dtype = g_descr[found].t;
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * ndim);
    int64_t numel = rhd_shape_numel(shape, ndim);
    size_t es = rhd_dtype_size(t->dtype);
    if (numel < 0 || (uint64_t)numel > SIZE_MAX / es)
        return rhd_errf(e, "%s: .npy shape overflows", name);
    size_t need = (size_t)numel * es, have = n - pre - hlen;
    char sh[128];
    if (have != need)
        return rhd_errf(e, "%s: .npy data is %zu bytes, expected %zu for %s shape %s", name, have, need, descr,
                        rhd_shape_str(shape, ndim, sh, sizeof sh));
    out->buf = rhd_xmalloc(need ? need : 1);
    memcpy(out->buf, d + pre + hlen, need);
    t->data = out->buf;
    out->data_bytes = need;
    out->version_major = major;
    return 0;
bad:
    return rhd_errf(e, "%s: malformed .npy header near byte %zu, expected {'descr': ..., 'fortran_order': ..., 'shape': (...)}",
                    name, (size_t)(c.p - (const char *)d));
}

int rhd_npy_read(const char *path, rhd_npy *out, rhd_err *e) {
    char *data;
    size_t n;
    if (rhd_read_file(path, &data, &n, e)) return -1;
    int rc = rhd_npy_parse(data, n, path, out, e);
    free(data);
    return rc;
}

void rhd_npy_free(rhd_npy *a) {
    free(a->buf);
    memset(a, 0, sizeof *a);
}

int rhd_npy_encode(const rhd_tensor *t, void **out, size_t *nout, rhd_err *e) {
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof g_descr / sizeof g_descr[0]; i++)
        if (g_descr[i].t == t->dtype) { descr = g_descr[i].descr; break; }
    if (!descr) return rhd_errf(e, "npy: cannot write dtype %s", rhd_dtype_name(t->dtype));
    char dict[1024];
    int k = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < t->ndim; i++) k += snprintf(dict + k, sizeof dict - k, "%lld, ", (long long)t->shape[i]);
    if (t->ndim > 1) k -= 1; /* "(3, 4)" but "(3,)" */
    if (t->ndim > 1) k -= 1, k += snprintf(dict + k, sizeof dict - k, "), }");
    else k += snprintf(dict + k, sizeof dict - k, "), }");
    if (t->ndim == 1) { /* "(3, )" -> "(3,)" */
        char *sp = strstr(dict, ", )");
        if (sp) memmove(sp + 1, sp + 2, strlen(sp + 2) + 1), k--;
    }
    size_t dl = strlen(dict);
    int major = dl + 11 > 65535 ? 2 : 1;
    size_t pre = major == 1 ? 10 : 12;
    size_t total_h = (pre + dl + 1 + 63) / 64 * 64; /* dict + '\n', padded to 64 */
    size_t hlen = total_h - pre;
    int64_t numel = rhd_shape_numel(t->shape, t->ndim);
    if (numel < 0) return rhd_errf(e, "npy: shape overflows");
    size_t data_bytes = (size_t)numel * rhd_dtype_size(t->dtype);
    unsigned char *b = rhd_xmalloc(total_h + data_bytes);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = 0;
    if (major == 1) { b[8] = hlen & 0xff; b[9] = (hlen >> 8) & 0xff; }
    else for (int i = 0; i < 4; i++) b[8 + i] = (hlen >> (8 * i)) & 0xff;
    memset(b + pre, ' ', hlen);
    memcpy(b + pre, dict, dl);
    b[total_h - 1] = '\n';
    if (data_bytes) memcpy(b + total_h, t->data, data_bytes);
    *out = b;
    *nout = total_h + data_bytes;
    return 0;
}

int rhd_npy_write(const char *path, const rhd_tensor *t, rhd_err *e) {
    void *b;
    size_t n;
    if (rhd_npy_encode(t, &b, &n, e)) return rhd_err_prefix(e, "%s", path);
    int rc = rhd_write_file_atomic(path, b, n, e);
    free(b);
    return rc;
}
