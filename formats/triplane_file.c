/* formats/triplane_file.c: see triplane_file.h. */
#include "formats/triplane_file.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "formats/npy.h"
#include "formats/schema.h"

#define RES_MIN 2
#define RES_MAX 8192

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

static int read_npy(const char *path, rhd_triplane *t, rhd_err *e) {
    rhd_npy a;
    if (rhd_npy_read(path, &a, e)) return -1;
    const int64_t *s = a.t.shape;
    int nd = a.t.ndim, ok = a.t.dtype == RHD_F32 || a.t.dtype == RHD_F16 || a.t.dtype == RHD_F64;
    int C = 0, R = 0, rolled = 0;
    if (ok && nd == 5 && s[0] == 3 && s[1] == 1 && s[3] == s[4]) C = (int)s[2], R = (int)s[3];
    else if (ok && nd == 4 && s[0] == 3 && s[2] == s[3]) C = (int)s[1], R = (int)s[2];
    else if (ok && nd == 3 && s[2] == 3 * s[1]) C = (int)s[0], R = (int)s[1], rolled = 1;
    if (!C || !R) {
        char sh[128];
        rhd_shape_str(s, nd, sh, sizeof sh);
        int r = rhd_errf(e, "%s: a %s array of shape %s, expected a triplane [3,1,C,R,R], [3,C,R,R] or [C,R,3R] of "
                            "float32/float16", path, rhd_dtype_name(a.t.dtype), sh);
        rhd_npy_free(&a);
        return r;
    }
    rhd_triplane_alloc(t, C, R, 0, NULL);
    t->layout = rolled ? RHD_TRIPLANE_ROLLED : RHD_TRIPLANE_PLANES;
    rhd_convert_to_f32(t->planes, a.t.data, a.t.dtype, rhd_triplane_numel(t));
    rhd_npy_free(&a);
    if (rhd_triplane_check_finite(t, path, "array", e)) {
        rhd_triplane_free(t);
        return -1;
    }
    rhd_triplane_set_layout(t, RHD_TRIPLANE_PLANES); /* §6: split the rolled width, stack the planes */
    return 0;
}

int rhd_triplane_file_read(const char *path, rhd_triplane *t, int *entry, rhd_err *e) {
    memset(t, 0, sizeof *t);
    if (entry) *entry = -1;
    if (ends_with(path, ".npy")) return read_npy(path, t, e);
    rhd_st *st;
    if (rhd_st_open(path, &st, e)) return -1;
    const char *kind = rhd_st_meta(st, "rhd.kind");
    int rc = 0;
    if (kind && strcmp(kind, "triplane")) rc = rhd_errf(e, "%s: an rhd '%s' file, expected a triplane", path, kind);
    else if (kind) {
        rhd_dims d;
        rhd_dims_init(&d);
        rc = rhd_schema_check(st, "triplane", &d, e);
    }
    const rhd_st_tensor *p = rc ? NULL : rhd_st_find(st, "planes");
    if (!rc && (!p || p->ndim != 4 || p->shape[0] != 3 || p->shape[2] != p->shape[3] || p->shape[1] < 1 || p->shape[2] < 1)) {
        char sh[128] = "none";
        if (p) rhd_shape_str(p->shape, p->ndim, sh, sizeof sh);
        rc = rhd_errf(e, "%s: tensor 'planes' has shape %s, expected [3,C,R,R] (a triplane)", path, sh);
    }
    if (!rc) {
        rhd_triplane_alloc(t, (int)p->shape[1], (int)p->shape[2], 0, NULL);
        rhd_st_to_f32(p, t->planes);
        if (rhd_triplane_check_finite(t, path, "planes", e)) {
            rhd_triplane_free(t);
            rc = -1;
        }
    }
    if (!rc && entry) {
        const char *en = rhd_st_meta(st, "rhd.entry");
        if (en) *entry = atoi(en);
    }
    rhd_st_close(st);
    return rc;
}

int rhd_triplane_file_write(const char *path, const rhd_triplane *t, const rhd_triplane_meta *m, rhd_err *e) {
    RHD_ASSERT(!t->ctx || t->ctx->backend == RHD_BACKEND_CPU);
    if (ends_with(path, ".npy")) {
        rhd_tensor a = {0};
        a.dtype = RHD_F32;
        a.data = t->planes;
        if (t->layout == RHD_TRIPLANE_ROLLED) {
            a.ndim = 3;
            int64_t s3[3] = {t->C, t->R, 3 * (int64_t)t->R};
            memcpy(a.shape, s3, sizeof s3);
        } else {
            a.ndim = 5;
            int64_t s5[5] = {3, 1, t->C, t->R, t->R};
            memcpy(a.shape, s5, sizeof s5);
        }
        return rhd_npy_write(path, &a, e);
    }
    const float *planes = t->planes;
    float *tmp = NULL;
    if (t->layout == RHD_TRIPLANE_ROLLED) {
        tmp = rhd_xmalloc(rhd_triplane_bytes(t));
        rhd_triplane_unroll(tmp, t->planes, t->C, t->R);
        planes = tmp;
    }
    rhd_st_writer w;
    rhd_st_writer_init(&w);
    int64_t shape[4] = {3, t->C, t->R, t->R};
    rhd_st_add(&w, "planes", RHD_F32, 4, shape, planes);
    rhd_schema_stamp(&w, "triplane", m && m->tool ? m->tool : "rhd");
    char buf[64];
    if (m && m->avatar) rhd_st_set_meta(&w, "rhd.avatar", m->avatar);
    if (m && m->device) rhd_st_set_meta(&w, "rhd.device", m->device);
    if (m && m->has_seed) {
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)m->seed);
        rhd_st_set_meta(&w, "rhd.seed", buf);
    }
    if (m && m->entry >= 0) {
        snprintf(buf, sizeof buf, "%d", m->entry);
        rhd_st_set_meta(&w, "rhd.entry", buf);
    }
    int rc = rhd_st_write(&w, path, e);
    rhd_st_writer_free(&w);
    free(tmp);
    return rc;
}

/* ---- typed metadata ---- */

void rhd_meta_set_triplane_res(rhd_st_writer *w, int R) {
    RHD_ASSERT(R >= RES_MIN && R <= RES_MAX);
    char buf[32];
    snprintf(buf, sizeof buf, "%d", R);
    rhd_st_set_meta(w, "rhd.triplane_res", buf);
}

int rhd_meta_get_triplane_res(const rhd_st *st, int *R, rhd_err *e) {
    *R = 0;
    const char *s = rhd_st_meta(st, "rhd.triplane_res");
    if (s) {
        char *end;
        errno = 0;
        int64_t v = strtol(s, &end, 10);
        if (end == s || *end || errno || v < RES_MIN || v > RES_MAX)
            return rhd_errf(e, "%s: metadata rhd.triplane_res is '%s', expected an integer in %d..%d", st->name, s,
                            RES_MIN, RES_MAX);
        *R = (int)v;
        return 0;
    }
    /* files written before rhd.triplane_res: rhd.config {"triplane_res": R, ...} */
    const char *conf = rhd_st_meta(st, "rhd.config");
    cJSON *j = conf ? cJSON_Parse(conf) : NULL;
    const cJSON *r = j ? cJSON_GetObjectItemCaseSensitive(j, "triplane_res") : NULL;
    int rc = 0;
    if (r && (!cJSON_IsNumber(r) || r->valuedouble != (double)(int)r->valuedouble || r->valuedouble < RES_MIN ||
              r->valuedouble > RES_MAX))
        rc = rhd_errf(e, "%s: rhd.config triplane_res is not an integer in %d..%d", st->name, RES_MIN, RES_MAX);
    else if (r) *R = (int)r->valuedouble;
    cJSON_Delete(j);
    return rc;
}
