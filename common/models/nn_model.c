/* common/models/nn_model.c: the one model lifecycle of nn.h (create from a config and a state dict,
 * forward, backward, free), shared by every assembly built from the blocks. */
#include "common/models/nn.h"
#include <stdlib.h>
#include <string.h>

rhd_nn_model *rhd_nn_model_create(const rhd_nn_model_ops *ops, const void *cfg, rhd_ctx *ctx, const rhd_st *st,
                                  const char *prefix, int with_grad, rhd_err *e) {
    RHD_ASSERT(ops && ops->size >= sizeof(rhd_nn_model) && ops->build && ops->forward);
    rhd_nn_model *m = rhd_xcalloc(1, ops->size);
    if (!m) rhd_fatal_at(__FILE__, __LINE__, "out of memory allocating a %s model (%zu bytes)", ops->kind, ops->size);
    m->ops = ops;
    rhd_params_init(&m->params);
    if (ops->build(m, cfg, e)) {
        rhd_params_free(&m->params);
        free(m);
        return NULL;
    }
    rhd_params_alloc(&m->params, ctx, with_grad, 0);
    if (st && rhd_nn_load_params(&m->params, st, prefix ? prefix : "", e)) {
        rhd_params_free(&m->params);
        free(m);
        return NULL;
    }
    rhd_nn_init(&m->run, ctx, &m->params);
    return m;
}

typedef struct plan_io {
    rhd_nn_model *m;
    void *io;
} plan_io;

static void plan_pass(rhd_nn *r, void *user) {
    plan_io *p = user;
    p->m->ops->forward(r, p->m, p->io);
    if (r->train) p->m->ops->backward(r, p->m, p->io);
}

void rhd_nn_model_forward(rhd_nn_model *m, void *io, int train) {
    RHD_ASSERT(!train || (m->ops->backward && m->params.grad));
    plan_io p = {m, io};
    m->run.train = train;
    rhd_nn_plan(&m->run, plan_pass, &p); /* grows the arena only when this pass needs more */
    rhd_nn_begin(&m->run, train);
    m->ops->forward(&m->run, m, io);
}

void rhd_nn_model_backward(rhd_nn_model *m, void *io) {
    RHD_ASSERT(m->run.train && m->ops->backward);
    m->ops->backward(&m->run, m, io);
    RHD_ASSERT(m->run.ntape == 0);
}

void rhd_nn_model_zero_grad(rhd_nn_model *m) {
    RHD_ASSERT(m->params.grad);
    rhd_buf_zero(m->params.ctx, m->params.grad, sizeof(float) * (size_t)m->params.total);
}

void rhd_nn_model_free(rhd_nn_model *m) {
    if (!m) return;
    rhd_nn_free(&m->run);
    rhd_params_free(&m->params);
    free(m);
}
