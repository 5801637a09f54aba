/* common/sample_noise.c: rhd-sample's noise files (formats/noise.md): checking a given file
 * against a run and recording the draws of a run into one (see common/sample_run.h). */
#include "common/sample_run.h"
#include "formats/finite.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *rhd_noise_prefix(rhd_sample_stage s) { return s == RHD_STAGE_BASE ? "" : "up."; }

static void shape_str(char *buf, size_t cap, const int64_t *s, int n) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < n && k < cap; i++) k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? "," : "", (long long)s[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* tensor `name` of st: F32 [P, tail]; *P set by the first checked tensor */
static int check_noise_tensor(const rhd_st *st, const char *name, const int64_t tail[3], int64_t *P, rhd_err *e) {
    const rhd_st_tensor *t = rhd_st_find(st, name);
    char want[96], got[96];
    int64_t w[4] = {*P > 0 ? *P : 1, tail[0], tail[1], tail[2]};
    if (*P > 0) shape_str(want, sizeof want, w, 4);
    else snprintf(want, sizeof want, "[P,%lld,%lld,%lld]", (long long)tail[0], (long long)tail[1], (long long)tail[2]);
    if (!t) return rhd_errf(e, "%s: tensor '%s' is missing, expected F32 %s (formats/noise.md: one z per step, also "
                            "where sigma = 0)", st->name, name, want);
    if (t->dtype != RHD_F32) return rhd_errf(e, "%s: tensor '%s' is %s, expected F32", st->name, name, rhd_dtype_name(t->dtype));
    shape_str(got, sizeof got, t->shape, t->ndim);
    if (t->ndim != 4 || t->shape[1] != tail[0] || t->shape[2] != tail[1] || t->shape[3] != tail[2] ||
        (*P > 0 && t->shape[0] != *P) || t->shape[0] < 1)
        return rhd_errf(e, "%s: tensor '%s' has shape %s, expected %s (rows of portraits, then the sample's shape)",
                        st->name, name, got, want);
    *P = t->shape[0];
    /* values too: a NaN/Inf draw would turn the whole sample into NaN (issue: every reader validates values) */
    return rhd_check_finite_dt(st->name, name, t->data, t->dtype, t->numel, e);
}

int rhd_noise_file_rows(const rhd_st *st, rhd_sample_stage s, int nsteps, const int64_t x_tail[3],
                        const int64_t u_tail[3], int need_u, const char *const *names, const int *index, int n,
                        int *rows, rhd_err *e) {
    const char *pre = rhd_noise_prefix(s);
    char name[48];
    int64_t P = 0;
    snprintf(name, sizeof name, "%sx_T", pre);
    if (check_noise_tensor(st, name, x_tail, &P, e)) return -1;
    for (int k = 0; k < nsteps; k++) {
        snprintf(name, sizeof name, "%sz.%d", pre, k);
        if (check_noise_tensor(st, name, x_tail, &P, e)) return -1;
    }
    snprintf(name, sizeof name, "%sz.%d", pre, nsteps);
    if (rhd_st_find(st, name))
        return rhd_errf(e, "%s: tensor '%s' exists but the sampler takes %d steps (z.0..z.%d), expected a file made for "
                        "these sampler options", st->name, name, nsteps, nsteps - 1);
    if (need_u) {
        snprintf(name, sizeof name, "%su", pre);
        if (check_noise_tensor(st, name, u_tail, &P, e)) return -1;
    }
    const char *list = rhd_st_meta(st, "rhd.names");
    cJSON *arr = list ? cJSON_Parse(list) : NULL;
    if (list && (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != P)) {
        cJSON_Delete(arr);
        return rhd_errf(e, "%s: rhd.names is not a JSON array of %lld names, expected one name per row", st->name, (long long)P);
    }
    int j = 0;
    for (const cJSON *v = arr ? arr->child : NULL; v; v = v->next, j++) {
        if (!cJSON_IsString(v)) {
            cJSON_Delete(arr);
            return rhd_errf(e, "%s: rhd.names entry %d is not a string, expected portrait names", st->name, j);
        }
        int k = j + 1;
        for (const cJSON *u = v->next; u; u = u->next, k++)
            if (cJSON_IsString(u) && !strcmp(u->valuestring, v->valuestring)) {
                int rc = rhd_errf(e, "%s: rhd.names lists '%s' twice (rows %d and %d), expected one row per portrait",
                                  st->name, v->valuestring, j, k);
                cJSON_Delete(arr);
                return rc;
            }
    }
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        rows[i] = -1;
        if (arr) {
            int j = 0;
            for (const cJSON *v = arr->child; v; v = v->next, j++)
                if (cJSON_IsString(v) && !strcmp(v->valuestring, names[i])) rows[i] = j;
            if (rows[i] < 0) rc = rhd_errf(e, "%s: portrait '%s' has no row (rhd.names lists %lld others), expected the "
                                           "noise file of these portraits", st->name, names[i], (long long)P);
        } else {
            rows[i] = index[i];
            if (rows[i] >= P) rc = rhd_errf(e, "%s: portrait '%s' is input %d but the tensors hold %lld rows (no rhd.names: "
                                            "rows follow the inputs), expected at least %d", st->name, names[i], index[i],
                                            (long long)P, index[i] + 1);
        }
    }
    cJSON_Delete(arr);
    return rc;
}

void rhd_noise_record_init(rhd_noise_record *r, const char *const *names, int P) {
    memset(r, 0, sizeof *r);
    r->P = P;
    r->names = rhd_xmalloc(sizeof(char *) * (size_t)(P ? P : 1));
    for (int i = 0; i < P; i++) r->names[i] = rhd_xstrdup(names[i]);
}

void rhd_noise_record_put(rhd_noise_record *r, const char *name, const int64_t tail[3], int row, const float *src,
                          int64_t row_n) {
    struct rhd_noise_rec_t *t = NULL;
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->t[i].name, name)) t = &r->t[i];
    if (!t) {
        if (r->n == r->cap) r->t = rhd_xrealloc(r->t, sizeof *r->t * (size_t)(r->cap = r->cap ? 2 * r->cap : 16));
        t = &r->t[r->n++];
        snprintf(t->name, sizeof t->name, "%s", name);
        t->shape[0] = r->P, t->shape[1] = tail[0], t->shape[2] = tail[1], t->shape[3] = tail[2];
        t->data = rhd_xcalloc((size_t)(r->P * row_n), sizeof(float));
    }
    memcpy(t->data + (int64_t)row * row_n, src, sizeof(float) * (size_t)row_n);
}

int rhd_noise_record_write(const rhd_noise_record *r, const char *path, const char *tool, rhd_err *e) {
    rhd_st_writer w;
    rhd_st_writer_init(&w);
    for (int i = 0; i < r->n; i++) rhd_st_add_f32(&w, r->t[i].name, RHD_F32, 4, r->t[i].shape, r->t[i].data);
    cJSON *arr = cJSON_CreateStringArray((const char *const *)r->names, r->P);
    char *names = cJSON_PrintUnformatted(arr);
    rhd_st_set_meta(&w, "rhd.kind", "noise");
    rhd_st_set_meta(&w, "rhd.version", "1");
    rhd_st_set_meta(&w, "rhd.tool", tool);
    rhd_st_set_meta(&w, "rhd.names", names);
    int rc = rhd_st_write(&w, path, e);
    free(names);
    cJSON_Delete(arr);
    rhd_st_writer_free(&w);
    return rc;
}

void rhd_noise_record_free(rhd_noise_record *r) {
    for (int i = 0; i < r->P; i++) free(r->names[i]);
    free(r->names);
    for (int i = 0; i < r->n; i++) free(r->t[i].data);
    free(r->t);
    memset(r, 0, sizeof *r);
}
