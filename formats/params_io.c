/* formats/params_io.c: see params_io.h. */
#include "formats/params_io.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static float *pick(const rhd_params *p, rhd_pbuf which) {
    switch (which) {
    case RHD_PBUF_DATA: return p->data;
    case RHD_PBUF_GRAD: return p->grad;
    case RHD_PBUF_M: return p->m;
    case RHD_PBUF_V: return p->v;
    }
    return NULL;
}

void rhd_params_to_writer(const rhd_params *p, rhd_pbuf which, const char *prefix, rhd_st_writer *w) {
    const float *buf = pick(p, which);
    RHD_ASSERT(buf && "buffer not allocated");
    for (int i = 0; i < p->n; i++) {
        const rhd_param_info *t = &p->info[i];
        float *host = rhd_xmalloc(sizeof(float) * t->numel);
        rhd_buf_download(p->ctx, host, buf + t->offset, sizeof(float) * t->numel);
        char name[RHD_PARAM_NAME_MAX + 64];
        snprintf(name, sizeof name, "%s%s", prefix ? prefix : "", t->name);
        rhd_st_add(w, name, RHD_F32, t->ndim, t->shape, host);
        w->t[w->n - 1].owned = host;
    }
}

int rhd_params_from_st(rhd_params *p, rhd_pbuf which, const char *prefix, const rhd_st *st, rhd_err *e) {
    float *buf = pick(p, which);
    RHD_ASSERT(buf && "buffer not allocated");
    for (int i = 0; i < p->n; i++) {
        const rhd_param_info *t = &p->info[i];
        char name[RHD_PARAM_NAME_MAX + 64], got[128], want[128];
        snprintf(name, sizeof name, "%s%s", prefix ? prefix : "", t->name);
        const rhd_st_tensor *s = rhd_st_find(st, name);
        if (!s) return rhd_errf(e, "%s: tensor '%s' is missing", st->name, name);
        if (!rhd_shape_eq(s->shape, s->ndim, t->shape, t->ndim))
            return rhd_errf(e, "%s: tensor '%s' has shape %s, expected %s", st->name, name,
                            rhd_shape_str(s->shape, s->ndim, got, sizeof got), rhd_shape_str(t->shape, t->ndim, want, sizeof want));
        if (s->dtype != RHD_F32 && s->dtype != RHD_F16 && s->dtype != RHD_BF16 && s->dtype != RHD_F64)
            return rhd_errf(e, "%s: tensor '%s' has dtype %s, expected a float type", st->name, name, rhd_dtype_name(s->dtype));
        float *host = rhd_xmalloc(sizeof(float) * t->numel);
        rhd_st_to_f32(s, host);
        for (int64_t k = 0; k < t->numel; k++)
            if (!isfinite(host[k])) {
                free(host);
                return rhd_errf(e, "%s: tensor '%s' holds a non-finite value at flat index %lld", st->name, name, (long long)k);
            }
        rhd_buf_upload(p->ctx, buf + t->offset, host, sizeof(float) * t->numel);
        free(host);
    }
    return 0;
}
