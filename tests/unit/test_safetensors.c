/* tests/unit/test_safetensors.c: the tensor containers against the Python reference packages:
 * safetensors files written by the PyPI safetensors package read back equal, our writer is byte
 * identical to it and its output loads in Python; .npy files of every kind numpy writes read back
 * equal and ours load in numpy; a table of malformed inputs each fails with a precise message;
 * the schema layer and the parameter table round trip. */
#include "refcheck.h"
#include "formats/safetensors.h"
#include "formats/finite.h"
#include "formats/schema.h"
#include "formats/params_io.h"
#include "common/fs.h"

static const char *names[] = {"f32", "f16", "bf16", "f64", "i32", "i64", "u8", "scalar", "empty", "name with \"quotes\" and \xc3\xa9"};

static void hex(const char *s, char *out) {
    for (; *s; s++, out += 2) sprintf(out, "%02x", (unsigned char)*s);
    *out = 0;
}

static void test_python_written(const char *d) {
    char path[1200];
    snprintf(path, sizeof path, "%s/py.safetensors", d);
    rhd_st *st;
    rhd_err e;
    if (!th_ok(rhd_st_open(path, &st, &e) == 0, "open a file written by the Python safetensors package")) { th_diag("%s", e.msg); return; }
    static const rhd_dtype want[] = {RHD_F32, RHD_F16, RHD_BF16, RHD_F64, RHD_I32, RHD_I64, RHD_U8, RHD_F32, RHD_F32, RHD_F32};
    int all = 1;
    for (int i = 0; i < 10; i++) {
        const rhd_st_tensor *t = rhd_st_find(st, names[i]);
        char h[256], nm[300];
        hex(names[i], h);
        snprintf(nm, sizeof nm, "ref_%s", h);
        rhd_npy ref;
        snprintf(path, sizeof path, "%s/%s.npy", d, nm);
        if (!t || rhd_npy_read(path, &ref, &e)) { all = 0; th_diag("missing %s", names[i]); continue; }
        int ok = t->dtype == want[i] && rhd_shape_eq(t->shape, t->ndim, ref.t.shape, ref.t.ndim);
        float *got = malloc(sizeof(float) * (t->numel + 1));
        rhd_st_to_f32(t, got);
        const double *r = ref.t.data;
        for (int64_t k = 0; k < t->numel; k++) ok &= got[k] == (float)r[k];
        if (!ok) th_diag("tensor '%s' (%s) differs", names[i], rhd_dtype_name(t->dtype));
        all &= ok;
        free(got);
        rhd_npy_free(&ref);
    }
    th_ok(all && st->n == 10, "all 10 tensors (F32 F16 BF16 F64 I32 I64 U8, 0-d, empty, UTF-8 name) have the dtype, shape and values Python wrote");
    th_ok(rhd_st_meta(st, "note") && strcmp(rhd_st_meta(st, "note"), "a \"quoted\" value\n") == 0 && !rhd_st_meta(st, "nope"),
          "metadata with escapes reads back");
    /* our writer, given the same tensors and metadata, is byte identical to the reference */
    rhd_st_writer w;
    rhd_st_writer_init(&w);
    rhd_st_set_meta(&w, "rhd.kind", "test");
    for (int i = 0; i < st->n; i++) rhd_st_add(&w, st->t[i].name, st->t[i].dtype, st->t[i].ndim, st->t[i].shape, st->t[i].data);
    void *buf;
    size_t n;
    /* two metadata keys: the reference orders them by hash, so compare structure and data here
     * and whole files in test_byte_identical (one key) */
    th_ok(rhd_st_encode(&w, &buf, &n, &e) == 0, "encode the same tensors with our writer");
    rhd_st *back;
    th_ok(rhd_st_parse(buf, n, "encoded", &back, &e) == 0 && back->n == st->n &&
              back->data_size == st->data_size && memcmp(back->data, st->data, st->data_size) == 0,
          "re-encoded file: same tensor order and data section, byte for byte (%zu bytes)", st->data_size);
    size_t hl_py = st->data - st->base - 8, hl_c = back->data - back->base - 8;
    th_ok(hl_py % 8 == 0 && hl_c % 8 == 0, "headers padded to a multiple of 8 (python %zu, ours %zu)", hl_py, hl_c);
    rhd_st_close(back);
    free(buf);
    rhd_st_writer_free(&w);
    rhd_st_close(st);
}

static void test_byte_identical(const char *d) {
    /* A file with a single metadata key has one possible serialisation: compare whole files. */
    char path[1200];
    snprintf(path, sizeof path, "%s/one.safetensors", d);
    FILE *f = fopen(path, "rb");
    if (!f) { th_ok(0, "python single-key file present"); return; }
    fclose(f);
    rhd_st *st;
    rhd_err e;
    if (rhd_st_open(path, &st, &e)) { th_ok(0, "%s", e.msg); return; }
    rhd_st_writer w;
    rhd_st_writer_init(&w);
    for (int i = 0; i < st->nmeta; i++) rhd_st_set_meta(&w, st->meta_key[i], st->meta_val[i]);
    for (int i = st->n - 1; i >= 0; i--) rhd_st_add(&w, st->t[i].name, st->t[i].dtype, st->t[i].ndim, st->t[i].shape, st->t[i].data);
    void *buf;
    size_t n;
    rhd_st_encode(&w, &buf, &n, &e);
    th_ok(n == st->size && memcmp(buf, st->base, n) == 0, "our writer is byte identical to the Python package (%zu bytes, tensors added in reverse order)", n);
    free(buf);
    rhd_st_writer_free(&w);
    rhd_st_close(st);
}

static void test_c_written(const char *d) {
    rhd_st_writer w;
    rhd_st_writer_init(&w);
    int64_t s1[3] = {4, 3, 5}, s2[1] = {11}, s0[1] = {0};
    float *a = th_randn(60, 1.f), *b = th_randn(11, 1.f);
    rhd_st_add(&w, "weights.a", RHD_F32, 3, s1, a);
    rhd_st_add_f32(&w, "half b", RHD_F16, 1, s2, b);
    rhd_st_add(&w, "zero", RHD_F32, 1, s0, a);
    rhd_st_set_meta(&w, "rhd.kind", "test");
    rhd_st_set_meta(&w, "json", "{\"lr\": 0.01, \"name\": \"t\\u00e9\"}\t\x01");
    char path[1200], meta[600];
    /* reference values: what Python must read */
    double ra[60], rb[11];
    for (int i = 0; i < 60; i++) ra[i] = a[i];
    for (int i = 0; i < 11; i++) rb[i] = rhd_half_to_float(rhd_float_to_half(b[i]));
    char h[128];
    rhd_err e;
    rhd_tensor ta = {RHD_F64, 3, {4, 3, 5}, ra}, tb = {RHD_F64, 1, {11}, rb}, tz = {RHD_F64, 1, {0}, ra};
    hex("weights.a", h); snprintf(path, sizeof path, "%s/ref_%s.npy", d, h); rhd_npy_write(path, &ta, &e);
    hex("half b", h); snprintf(path, sizeof path, "%s/ref_%s.npy", d, h); rhd_npy_write(path, &tb, &e);
    hex("zero", h); snprintf(path, sizeof path, "%s/ref_%s.npy", d, h); rhd_npy_write(path, &tz, &e);
    snprintf(meta, sizeof meta, "{\"rhd.kind\": \"test\", \"json\": \"{\\\"lr\\\": 0.01, \\\"name\\\": \\\"t\\\\u00e9\\\"}\\t\\u0001\"}");
    snprintf(path, sizeof path, "%s/meta.json", d);
    rhd_write_file_atomic(path, meta, strlen(meta), &e);
    snprintf(path, sizeof path, "%s/c.safetensors", d);
    th_ok(rhd_st_write(&w, path, &e) == 0, "write a file with F32, F16 (converted), an empty tensor and escaped metadata");
    th_ok(th_ref("st_ref.py", "check %s %s", path, d) == 0, "the Python safetensors package reads it back equal");
    rhd_st_writer_free(&w);
    free(a), free(b);
}

static void test_npy(const char *d) {
    static const char *kinds[] = {"f4", "f2", "f8", "i4", "i8", "u1", "scalar", "empty", "big", "v2", "v3"};
    rhd_err e;
    int all = 1;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char p[1200], r[1200];
        snprintf(p, sizeof p, "%s/np_%s.npy", d, kinds[i]);
        snprintf(r, sizeof r, "%s/np_%s.f64.npy", d, kinds[i][0] == 'v' ? "v" : kinds[i]);
        rhd_npy a, ref;
        if (rhd_npy_read(p, &a, &e) || rhd_npy_read(r, &ref, &e)) { th_diag("%s", e.msg); all = 0; continue; }
        int64_t n = rhd_shape_numel(a.t.shape, a.t.ndim);
        float *f = malloc(sizeof(float) * (n + 1));
        rhd_convert_to_f32(f, a.t.data, a.t.dtype, n);
        int ok = rhd_shape_eq(a.t.shape, a.t.ndim, ref.t.shape, ref.t.ndim);
        for (int64_t k = 0; ok && k < n; k++) ok &= f[k] == (float)((double *)ref.t.data)[k];
        if (!ok) th_diag("%s differs", kinds[i]);
        all &= ok;
        free(f);
        rhd_npy_free(&a), rhd_npy_free(&ref);
    }
    th_ok(all, ".npy written by numpy (f4 f2 f8 i4 i8 u1, 0-d, empty, 5-d, format v2 and v3) reads back equal");
    static const struct { const char *kind, *msg; } bad[] = {
        {"fortran", "Fortran order"}, {"bigendian", "dtype '>f4'"}, {"object", "dtype '|O'"}, {"complex", "dtype '<c8'"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/np_%s.npy", d, bad[i].kind);
        rhd_npy a;
        int rc = rhd_npy_read(p, &a, &e);
        th_ok(rc != 0 && strstr(e.msg, bad[i].msg) && strstr(e.msg, p), "numpy %s array refused: %s", bad[i].kind, rc ? e.msg : "(accepted)");
    }
    /* ours, read by numpy */
    float *x = th_randn(24, 1.f);
    double xr[24], hr[24];
    uint16_t hx[24];
    for (int i = 0; i < 24; i++) xr[i] = x[i], hx[i] = rhd_float_to_half(x[i]), hr[i] = rhd_half_to_float(hx[i]);
    struct { const char *name; rhd_tensor t, r; } out[] = {
        {"c_f32_3d", {RHD_F32, 3, {2, 3, 4}, x}, {RHD_F64, 3, {2, 3, 4}, xr}},
        {"c_f32_1d", {RHD_F32, 1, {24}, x}, {RHD_F64, 1, {24}, xr}},
        {"c_f16_5d", {RHD_F16, 5, {3, 1, 2, 2, 2}, hx}, {RHD_F64, 5, {3, 1, 2, 2, 2}, hr}},
        {"c_scalar", {RHD_F32, 0, {0}, x}, {RHD_F64, 0, {0}, xr}},
    };
    int wrote = 1;
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/%s.npy", d, out[i].name);
        wrote &= rhd_npy_write(p, &out[i].t, &e) == 0;
        snprintf(p, sizeof p, "%s/%s.ref.npy", d, out[i].name);
        wrote &= rhd_npy_write(p, &out[i].r, &e) == 0;
    }
    th_ok(wrote && th_ref("st_ref.py", "npycheck %s", d) == 0, "numpy reads our .npy files (f32 3-d and 1-d, f16 5-d, 0-d) equal");
    free(x);
}

/* ---- malformed inputs ---- */

static unsigned char *mk(const char *header, size_t data, size_t *n) {
    size_t h = strlen(header);
    unsigned char *b = calloc(1, 8 + h + data + 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    *n = 8 + h + data;
    return b;
}

static void test_malformed(void) {
    static const struct { const char *what, *header; size_t data; const char *msg; } cases[] = {
        {"valid", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, NULL},
        {"not an object", "[1,2]", 0, "not start with '{'"},
        {"invalid JSON", "{\"a\":{\"dtype\":\"F32\",", 0, "not a JSON object"},
        {"trailing junk", "{}x", 0, "trailing bytes"},
        {"unknown dtype", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, "dtype 'F8_E4M3' is not supported"},
        {"negative shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "non-negative integers"},
        {"fractional shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8, "non-negative integers"},
        {"shape overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", 8, "overflows"},
        {"huge shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1000000,1000000],\"data_offsets\":[0,8]}}", 8, "span 8 bytes, expected 4000000000000"},
        {"size mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "expected 12 for F32 [3]"},
        {"out of range", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "out of bounds"},
        {"end before begin", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "end before begin"},
        {"overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlaps"},
        {"gap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "gap in the data section"},
        {"trailing data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "trailing or missing data"},
        {"duplicate key", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "appears twice"},
        {"missing offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "'data_offsets' must be"},
        {"missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "missing or non-string 'dtype'"},
        {"unknown field", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "unknown field 'x'"},
        {"metadata not strings", "{\"__metadata__\":{\"k\":1}}", 0, "non-string value"},
        {"two metadata objects", "{\"__metadata__\":{\"a\":\"1\"},\"__metadata__\":{\"b\":\"2\",\"c\":\"3\"}}", 0, "'__metadata__' appears twice"},
        {"invalid UTF-8", "{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "not valid UTF-8"},
        {"overlong UTF-8", "{\"a\xc0\xaf\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "not valid UTF-8"},
        {"too many dims", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, "9 dimensions"},
    };
    rhd_err e;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n;
        unsigned char *b = mk(cases[i].header, cases[i].data, &n);
        rhd_st *st = NULL;
        e.msg[0] = 0;
        int rc = rhd_st_parse(b, n, "case.safetensors", &st, &e);
        if (!cases[i].msg) th_ok(rc == 0, "malformed table baseline: a valid file parses");
        else
            th_ok(rc != 0 && strstr(e.msg, cases[i].msg) && strstr(e.msg, "case.safetensors"), "%s -> %s", cases[i].what,
                  rc ? e.msg : "(accepted!)");
        rhd_st_close(st);
        free(b);
    }
    /* header length past the end of the file, and absurd */
    unsigned char b8[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    rhd_st *st;
    th_ok(rhd_st_parse(b8, 10, "x", &st, &e) != 0 && strstr(e.msg, "exceeds the file size"), "header length beyond the file: %s", e.msg);
    b8[7] = 0x10;
    th_ok(rhd_st_parse(b8, 10, "x", &st, &e) != 0 && strstr(e.msg, "limit"), "absurd header length: %s", e.msg);
    th_ok(rhd_st_parse(b8, 5, "x", &st, &e) != 0 && strstr(e.msg, "5 bytes"), "5-byte file: %s", e.msg);
    /* a valid two-tensor file truncated at every offset must fail cleanly each time */
    size_t n;
    unsigned char *good = mk("{\"__metadata__\":{\"rhd.kind\":\"t\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                             "\"b\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[16,22]}}", 22, &n);
    int all = 1;
    for (size_t cut = 0; cut < n; cut++) {
        unsigned char *c = malloc(cut ? cut : 1);
        memcpy(c, good, cut);
        if (rhd_st_parse(c, cut, "t", &st, &e) == 0) { all = 0; th_diag("truncation at %zu accepted", cut); rhd_st_close(st); }
        free(c);
    }
    th_ok(all, "a file truncated at each of its %zu offsets is refused every time", n);
    free(good);
    /* npy: truncation at every offset, bad magic, version, header length */
    rhd_tensor t = {RHD_F32, 2, {3, 4}, (float[12]){0}};
    void *nb;
    size_t nn;
    rhd_npy_encode(&t, &nb, &nn, &e);
    all = 1;
    for (size_t cut = 0; cut < nn; cut++) {
        rhd_npy a;
        if (rhd_npy_parse(nb, cut, "t.npy", &a, &e) == 0) { all = 0; rhd_npy_free(&a); }
    }
    th_ok(all, ".npy truncated at each of its %zu offsets is refused every time", nn);
    unsigned char *m = nb;
    rhd_npy a;
    m[6] = 4;
    th_ok(rhd_npy_parse(nb, nn, "t.npy", &a, &e) != 0 && strstr(e.msg, "version 4.0"), "npy version 4: %s", e.msg);
    m[6] = 1;
    m[8] = 0xff, m[9] = 0xff;
    th_ok(rhd_npy_parse(nb, nn, "t.npy", &a, &e) != 0 && strstr(e.msg, "exceeds the file size"), "npy header length: %s", e.msg);
    m[0] = 'x';
    th_ok(rhd_npy_parse(nb, nn, "t.npy", &a, &e) != 0 && strstr(e.msg, "no .npy magic"), "npy magic: %s", e.msg);
    free(nb);
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999, 9999999), }\n";
    char hdr[256];
    size_t dl = strlen(dict);
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    hdr[8] = (char)dl, hdr[9] = 0;
    memcpy(hdr + 10, dict, dl);
    th_ok(rhd_npy_parse(hdr, 10 + dl, "h.npy", &a, &e) != 0 && strstr(e.msg, "overflows"), "npy absurd shape: %s", e.msg);
}

static void test_schema(void) {
    rhd_err e;
    rhd_st_writer w;
    rhd_st_writer_init(&w);
    rhd_schema_stamp(&w, "triplane", "test");
    float *p = th_randn(3 * 4 * 8 * 8, 0.1f);
    rhd_st_add(&w, "planes", RHD_F32, 4, (int64_t[]){3, 4, 8, 8}, p);
    void *b;
    size_t n;
    rhd_st_encode(&w, &b, &n, &e);
    rhd_st *st;
    rhd_st_parse(b, n, "tp.safetensors", &st, &e);
    rhd_dims d;
    rhd_dims_init(&d);
    th_ok(rhd_schema_check(st, "triplane", &d, &e) == 0 && rhd_dims_get(&d, 'R') == 8 && rhd_dims_get(&d, 'C') == 4,
          "a triplane file passes its schema and binds C=4, R=8");
    rhd_dims_init(&d);
    rhd_dims_bind(&d, 'R', 128);
    th_ok(rhd_schema_check(st, "triplane", &d, &e) != 0 && strstr(e.msg, "has shape [3,4,8,8], expected [3,C,128,128] (R=128)"),
          "a demanded resolution is enforced: %s", e.msg);
    th_ok(rhd_schema_check(st, "decoder", NULL, &e) != 0 && strstr(e.msg, "rhd.kind is 'triplane', expected 'decoder'"), "wrong kind: %s", e.msg);
    rhd_st_close(st);
    free(b);
    rhd_st_writer_free(&w);
    rhd_st_writer_init(&w);
    rhd_schema_stamp(&w, "triplane", "test");
    rhd_st_add(&w, "planes", RHD_I32, 4, (int64_t[]){3, 4, 8, 8}, p);
    rhd_st_encode(&w, &b, &n, &e);
    rhd_st_parse(b, n, "tp.safetensors", &st, &e);
    th_ok(rhd_schema_check(st, NULL, NULL, &e) != 0 && strstr(e.msg, "dtype I32, expected F32 or F16 or BF16"), "wrong dtype: %s", e.msg);
    rhd_st_close(st), free(b), rhd_st_writer_free(&w);
    rhd_st_writer_init(&w);
    rhd_schema_stamp(&w, "triplane", "test");
    rhd_st_add(&w, "planes", RHD_F32, 4, (int64_t[]){2, 4, 8, 8}, p);
    rhd_st_add(&w, "extra", RHD_F32, 1, (int64_t[]){2}, p);
    rhd_st_encode(&w, &b, &n, &e);
    rhd_st_parse(b, n, "tp.safetensors", &st, &e);
    th_ok(rhd_schema_check(st, NULL, NULL, &e) != 0 && strstr(e.msg, "has shape [2,4,8,8], expected [3,C,R,R]"), "3 planes required: %s", e.msg);
    rhd_st_close(st), free(b), rhd_st_writer_free(&w);
    free(p);
    /* decoder round trip through the parameter table */
    rhd_ctx *ctx = rhd_ctx_open("cpu", &e);
    rhd_params a, c;
    rhd_params_init(&a), rhd_params_init(&c);
    static const struct { const char *n; int nd; int64_t s[2]; } dec[] = {
        {"sigma_net.0.weight", 2, {128, 40}}, {"sigma_net.0.bias", 1, {128}}, {"sigma_net.2.weight", 2, {129, 128}},
        {"sigma_net.2.bias", 1, {129}}, {"color_net.0.weight", 2, {128, 263}}, {"color_net.1.weight", 2, {128, 128}},
        {"color_net.2.weight", 2, {3, 128}}};
    for (int i = 0; i < 7; i++) rhd_params_add(&a, dec[i].n, dec[i].nd, dec[i].s), rhd_params_add(&c, dec[i].n, dec[i].nd, dec[i].s);
    rhd_params_alloc(&a, ctx, 0, 0), rhd_params_alloc(&c, ctx, 0, 0);
    rhd_rng_fill_normal(a.data, a.total, 7, 1, 0, 0.f, 1.f);
    rhd_st_writer_init(&w);
    rhd_schema_stamp(&w, "decoder", "test");
    rhd_params_to_writer(&a, RHD_PBUF_DATA, "", &w);
    char path[1200];
    snprintf(path, sizeof path, "%s/decoder.safetensors", th_tmpdir());
    rhd_st_write(&w, path, &e);
    rhd_st_writer_free(&w);
    rhd_st_open(path, &st, &e);
    int ok = rhd_schema_check(st, "decoder", NULL, &e) == 0 && rhd_params_from_st(&c, RHD_PBUF_DATA, "", st, &e) == 0;
    for (int i = 0; ok && i < 7; i++) ok &= memcmp(rhd_param(&a, i), rhd_param(&c, i), sizeof(float) * a.info[i].numel) == 0;
    th_ok(ok && rhd_params_count(&a) == 72321, "decoder (72,321 parameters) saved and loaded by name, schema valid, bit exact");
    rhd_st_close(st);
    rhd_params_free(&c);
    rhd_params_init(&c);
    rhd_params_add(&c, "sigma_net.0.weight", 2, (int64_t[]){128, 41});
    rhd_params_alloc(&c, ctx, 0, 0);
    rhd_st_open(path, &st, &e);
    th_ok(rhd_params_from_st(&c, RHD_PBUF_DATA, "", st, &e) != 0 && strstr(e.msg, "has shape [128,40], expected [128,41]"), "shape mismatch on load: %s", e.msg);
    rhd_params_free(&c);
    rhd_params_init(&c);
    rhd_params_add(&c, "color_net.3.weight", 1, (int64_t[]){3});
    rhd_params_alloc(&c, ctx, 0, 0);
    th_ok(rhd_params_from_st(&c, RHD_PBUF_DATA, "ema.", st, &e) != 0 && strstr(e.msg, "tensor 'ema.color_net.3.weight' is missing"), "missing tensor: %s", e.msg);
    rhd_st_close(st);
    rhd_params_free(&a), rhd_params_free(&c);
    rhd_ctx_close(ctx);
}

/* ---- malformed features files: what a features reader runs, the schema then the value check ---- */

#define FMETA "\"__metadata__\":{\"rhd.kind\":\"features\",\"rhd.version\":\"1\",\"rhd.weights\":\"random:1\"},"
#define FT(name, dt, shape, a, b) "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #a "," #b "]}"

static void test_features_malformed(void) {
    /* moments [4,1,1], ms_feature.0 [2,4,4], .1 [2,2,2], .2 [2,1,1]: 4+32+8+2 = 46 floats */
    static const struct { const char *what, *header; size_t data; int poison; const char *msg; } cases[] = {
        {"valid", "{" FMETA FT("moments", "F32", "[4,1,1]", 0, 16) "," FT("ms_feature.0", "F32", "[2,4,4]", 16, 144) ","
         FT("ms_feature.1", "F32", "[2,2,2]", 144, 176) "," FT("ms_feature.2", "F32", "[2,1,1]", 176, 184) "}", 184, -1, NULL},
        {"NaN in moments", "{" FMETA FT("moments", "F32", "[4,1,1]", 0, 16) "," FT("ms_feature.0", "F32", "[2,4,4]", 16, 144) ","
         FT("ms_feature.1", "F32", "[2,2,2]", 144, 176) "," FT("ms_feature.2", "F32", "[2,1,1]", 176, 184) "}", 184, 2,
         "case.safetensors: tensor 'moments': 1 NaN, 0 +Inf, 0 -Inf of 4 values (first at flat index 2)"},
        {"+Inf in ms_feature.2", "{" FMETA FT("moments", "F32", "[4,1,1]", 0, 16) "," FT("ms_feature.0", "F32", "[2,4,4]", 16, 144) ","
         FT("ms_feature.1", "F32", "[2,2,2]", 144, 176) "," FT("ms_feature.2", "F32", "[2,1,1]", 176, 184) "}", 184, 45,
         "case.safetensors: tensor 'ms_feature.2': 0 NaN, 1 +Inf, 0 -Inf of 2 values (first at flat index 1)"},
        {"a map missing", "{" FMETA FT("moments", "F32", "[4,1,1]", 0, 16) "," FT("ms_feature.0", "F32", "[2,4,4]", 16, 144) ","
         FT("ms_feature.1", "F32", "[2,2,2]", 144, 176) "}", 176, -1, "ms_feature.2"},
        {"wrong grid ratio", "{" FMETA FT("moments", "F32", "[4,1,1]", 0, 16) "," FT("ms_feature.0", "F32", "[2,4,4]", 16, 144) ","
         FT("ms_feature.1", "F32", "[2,2,2]", 144, 176) "," FT("ms_feature.2", "F32", "[2,2,1]", 176, 192) "}", 192, -1, "ms_feature.2"},
        {"integer dtype", "{" FMETA FT("moments", "I32", "[4,1,1]", 0, 16) "," FT("ms_feature.0", "F32", "[2,4,4]", 16, 144) ","
         FT("ms_feature.1", "F32", "[2,2,2]", 144, 176) "," FT("ms_feature.2", "F32", "[2,1,1]", 176, 184) "}", 184, -1, "moments"},
        {"no rhd.weights", "{\"__metadata__\":{\"rhd.kind\":\"features\",\"rhd.version\":\"1\"}," FT("moments", "F32", "[4,1,1]", 0, 16) ","
         FT("ms_feature.0", "F32", "[2,4,4]", 16, 144) "," FT("ms_feature.1", "F32", "[2,2,2]", 144, 176) ","
         FT("ms_feature.2", "F32", "[2,1,1]", 176, 184) "}", 184, -1, "rhd.weights"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n;
        unsigned char *b = mk(cases[i].header, cases[i].data, &n);
        float *v = (float *)(b + n - cases[i].data); /* the data section: 1.0 everywhere but the poisoned value */
        for (size_t k = 0; k < cases[i].data / 4; k++) {
            float one = 1.0f;
            memcpy((char *)v + 4 * k, &one, 4);
        }
        if (cases[i].poison >= 0) {
            float bad = cases[i].poison == 2 ? NAN : INFINITY;
            memcpy((char *)v + 4 * cases[i].poison, &bad, 4);
        }
        rhd_st *st = NULL;
        rhd_err e = {{0}};
        int rc = rhd_st_parse(b, n, "case.safetensors", &st, &e);
        if (rc == 0) rc = rhd_schema_check(st, "features", NULL, &e);
        if (rc == 0) rc = rhd_st_check_finite(st, &e);
        if (!cases[i].msg) th_ok(rc == 0, "features table baseline: a valid features file passes (%s)", rc ? e.msg : "ok");
        else th_ok(rc != 0 && strstr(e.msg, cases[i].msg), "features: %s -> %s", cases[i].what, rc ? e.msg : "(accepted!)");
        rhd_st_close(st);
        free(b);
    }
}

int main(void) {
    const char *d = th_subdir("st");
    int have_py = th_ref("st_ref.py", "write %s %llu", d, (unsigned long long)(th_seed() % 100000)) == 0;
    th_ok(have_py, "the Python reference wrote its files (safetensors package, numpy, torch)");
    if (have_py) {
        th_sh("cd '%s' && %s -c \"import torch, safetensors.torch as s; s.save_file({'w': torch.arange(6.).reshape(2,3), 'h': torch.ones(3).half(), 'i': torch.arange(4)}, 'one.safetensors', metadata={'rhd.kind': 'x'})\"",
              d, getenv("RHD_PY") ? getenv("RHD_PY") : "python3");
        test_python_written(d);
        test_byte_identical(d);
        test_npy(d);
        test_c_written(th_subdir("stc"));
    }
    test_malformed();
    test_features_malformed();
    test_schema();
    return th_done();
}
