/* common/params.c: the parameter table; see params.h. */
#include "common/params.h"
#include <stdlib.h>
#include <string.h>

void rhd_params_init(rhd_params *p) { memset(p, 0, sizeof *p); }

int rhd_params_add(rhd_params *p, const char *name, int ndim, const int64_t *shape) {
    RHD_ASSERT(!p->data && "rhd_params_add after rhd_params_alloc");
    RHD_ASSERT(ndim >= 1 && ndim <= 4);
    RHD_ASSERT(strlen(name) < RHD_PARAM_NAME_MAX);
    RHD_ASSERT(rhd_params_find(p, name) < 0 && "duplicate parameter name");
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 32;
        p->info = rhd_xrealloc(p->info, sizeof(rhd_param_info) * p->cap);
    }
    rhd_param_info *t = &p->info[p->n];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        RHD_ASSERT(shape[i] > 0);
        t->shape[i] = shape[i];
        t->numel *= shape[i];
    }
    t->offset = p->total;
    p->total += (t->numel + 63) / 64 * 64;
    return p->n++;
}

void rhd_params_alloc(rhd_params *p, rhd_ctx *ctx, int with_grad, int with_adam) {
    size_t bytes = (size_t)(p->total ? p->total : 1) * sizeof(float);
    p->ctx = ctx;
    p->data = rhd_buf_alloc(ctx, bytes);
    rhd_buf_zero(ctx, p->data, bytes);
    if (with_grad) { p->grad = rhd_buf_alloc(ctx, bytes); rhd_buf_zero(ctx, p->grad, bytes); }
    if (with_adam) {
        p->m = rhd_buf_alloc(ctx, bytes); rhd_buf_zero(ctx, p->m, bytes);
        p->v = rhd_buf_alloc(ctx, bytes); rhd_buf_zero(ctx, p->v, bytes);
    }
}

void rhd_params_free(rhd_params *p) {
    if (p->ctx) {
        rhd_buf_free(p->ctx, p->data);
        rhd_buf_free(p->ctx, p->grad);
        rhd_buf_free(p->ctx, p->m);
        rhd_buf_free(p->ctx, p->v);
    }
    free(p->info);
    memset(p, 0, sizeof *p);
}

int rhd_params_find(const rhd_params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->info[i].name, name) == 0) return i;
    return -1;
}

int64_t rhd_params_count(const rhd_params *p) {
    int64_t n = 0;
    for (int i = 0; i < p->n; i++) n += p->info[i].numel;
    return n;
}
