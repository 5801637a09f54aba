/* common/upsampler_train.c: one upsampler training step (see upsampler_train.h). */
#include "common/models/diffusion.h"
/* kernels/diffusion.h and kernels/rays.h (through render_loss.h) define the same fp32 helper macros
 * differently; this file uses neither */
#undef RHD_FMUL
#undef RHD_FADD
#undef RHD_FSUB
#include "common/upsampler_train.h"
#include <stdlib.h>
#include <string.h>
#include "common/triplane.h"
#include "kernels/elementwise.h"

void rhd_ups_train_opts_default(rhd_ups_train_opts *o) {
    o->degrade = RHD_DEGRADE_NORMAL;
    o->sf = 4;
    o->time_scale = RHD_TIME_SCALE_RAW;
    o->render_clamp = 0; /* the original renders x0_hat unclamped (spec fitting.md §11) */
}

void rhd_ups_trainer_init(rhd_ups_trainer *tr, rhd_upsampler *model, const rhd_diffusion_schedule *sched,
                          rhd_render_loss *rl, const rhd_ups_train_opts *o) {
    tr->ctx = model->base.params.ctx;
    tr->model = model, tr->sched = sched, tr->rl = rl, tr->o = *o;
}

int rhd_ups_train_check(const rhd_ups_trainer *tr, int R, rhd_err *e) {
    const rhd_ups_config *c = &tr->model->cfg;
    if (tr->o.sf < 1 || R % tr->o.sf)
        return rhd_errf(e, "upsampler training: plane side %d is not a multiple of the factor %d", R, tr->o.sf);
    if (c->in_ch != c->cond_ch || c->out_ch != c->in_ch)
        return rhd_errf(e, "upsampler training: in_ch %d, cond_ch %d, out_ch %d, expected them equal (x0 prediction of "
                           "the triplane the condition is made from)", c->in_ch, c->cond_ch, c->out_ch);
    if (tr->rl && tr->rl->rend.dec->cfg.C != c->out_ch)
        return rhd_errf(e, "upsampler training: the decoder reads %d channels, the upsampler predicts %d",
                        tr->rl->rend.dec->cfg.C, c->out_ch);
    if (!tr->model->base.params.grad)
        return rhd_errf(e, "upsampler training: the model was created without gradients");
    return rhd_ups_check_size(c, R, R / tr->o.sf, e);
}

/* the condition of the micro-batch, rolled: host low (N, C, r, 3r) */
static int make_condition(const rhd_ups_trainer *tr, const rhd_ups_batch *b, int R, float *low) {
    const int C = tr->model->cfg.cond_ch;
    int r = 0;
    if (b->low) { /* precomputed: a copy into the rolled layout */
        r = R / tr->o.sf;
        for (int n = 0; n < b->N; n++)
            rhd_triplane_roll(low + (size_t)n * C * r * 3 * r, b->low + (size_t)n * 3 * C * r * r, C, r);
        return r;
    }
    float *lp = NULL;
    for (int n = 0; n < b->N; n++) {
        rhd_degrade_plan p;
        rhd_degrade_draw(&p, tr->o.degrade, R, R, tr->o.sf, b->deg_seed, b->deg_stream, (uint64_t)n << 32);
        int oh, ow;
        rhd_degrade_out_size(&p, &oh, &ow);
        RHD_ASSERT(oh == ow && oh == R / tr->o.sf);
        r = oh;
        if (!lp) lp = rhd_xmalloc(sizeof(float) * 3 * C * r * r);
        rhd_degrade_apply(&p, lp, b->hr + (size_t)n * 3 * C * R * R, 3 * C);
        rhd_triplane_roll(low + (size_t)n * C * r * 3 * r, lp, C, r);
    }
    free(lp);
    return r;
}

/* planes T [3,C,R,R] <-> sample n of a rolled (N,C,R,3R) map (ctx side) */
static void unroll_ctx(rhd_ctx *ctx, float *T, const float *rolled, int C, int R) {
    for (int p = 0; p < 3; p++)
        rhd_copy_cols(ctx, T + (size_t)p * C * R * R, R, rolled + (size_t)p * R, 3L * R, R, (int64_t)C * R);
}
static void roll_ctx(rhd_ctx *ctx, float *rolled, const float *T, int C, int R) {
    for (int p = 0; p < 3; p++)
        rhd_copy_cols(ctx, rolled + (size_t)p * R, 3L * R, T + (size_t)p * C * R * R, R, R, (int64_t)C * R);
}

/* the render loss of every sample: dout += its gradient (already divided by N) */
static void render_terms(rhd_ups_trainer *tr, const rhd_ups_batch *b, int R, const float *y, float *dout,
                         rhd_ups_step_out *out) {
    rhd_ctx *ctx = tr->ctx;
    const int C = tr->model->cfg.out_ch, N = b->N, K = b->per_sample;
    size_t n = (size_t)3 * C * R * R;
    float *T = rhd_buf_alloc(ctx, sizeof(float) * n), *dT = rhd_buf_alloc(ctx, sizeof(float) * n);
    float *tmp = rhd_buf_alloc(ctx, sizeof(float) * n);
    for (int s = 0; s < N; s++) {
        unroll_ctx(ctx, T, y + s * n, C, R);
        rhd_triplane tp = rhd_triplane_view(T, C, R, tr->o.render_clamp, ctx);
        rhd_buf_zero(ctx, dT, sizeof(float) * n);
        rhd_render_loss_warmup(tr->rl, &tp, b->grid_seed + (uint64_t)s);
        for (int k = 0; k < K; k++) {
            const rhd_ups_render_target *g = &b->targets[(size_t)s * K + k];
            float sc = b->grad_scale / (float)(K * N);
            rhd_render_loss_out o = rhd_render_loss_patch(tr->rl, &tp, dT, &g->cam, g->x0, g->y0, g->gt, sc);
            out->render += o.loss / (K * N), out->l1 += o.l1 / (K * N), out->lpips += o.lpips / (K * N);
            out->samples += o.samples;
        }
        roll_ctx(ctx, tmp, dT, C, R);
        rhd_add_forward(ctx, dout + s * n, dout + s * n, tmp, (int64_t)n);
    }
    rhd_buf_free(ctx, T), rhd_buf_free(ctx, dT), rhd_buf_free(ctx, tmp);
}

double rhd_ups_train_step(rhd_ups_trainer *tr, const rhd_ups_batch *b, int R, rhd_ups_step_out *out) {
    rhd_ctx *ctx = tr->ctx;
    rhd_upsampler *m = tr->model;
    const rhd_ups_config *c = &m->cfg;
    const int N = b->N, C = c->in_ch;
    const int64_t HW = (int64_t)R * 3 * R, n = (int64_t)C * HW;
    const int rr = R / tr->o.sf;
    memset(out, 0, sizeof *out);
    /* inputs on the context */
    float *h_low = rhd_xmalloc(sizeof(float) * (size_t)N * C * rr * 3 * rr);
    float *h_x0 = rhd_xmalloc(sizeof(float) * (size_t)N * n), *h_t = rhd_xmalloc(sizeof(float) * N);
    RHD_ASSERT(make_condition(tr, b, R, h_low) == rr);
    for (int s = 0; s < N; s++) {
        rhd_triplane_roll(h_x0 + s * n, b->hr + s * n, C, R);
        h_t[s] = rhd_diffusion_model_t(tr->sched, b->t[s], tr->o.time_scale);
    }
    size_t nref = (size_t)N * c->latent_ch * c->latent_size * c->latent_size, nlow = (size_t)N * C * rr * 3 * rr;
    float *x0 = rhd_buf_alloc(ctx, sizeof(float) * N * n), *xt = rhd_buf_alloc(ctx, sizeof(float) * N * n);
    float *eps = rhd_buf_alloc(ctx, sizeof(float) * N * n), *dout = rhd_buf_alloc(ctx, sizeof(float) * N * n);
    float *t = rhd_buf_alloc(ctx, sizeof(float) * N), *ref = rhd_buf_alloc(ctx, sizeof(float) * nref);
    float *low = rhd_buf_alloc(ctx, sizeof(float) * nlow);
    rhd_buf_upload(ctx, x0, h_x0, sizeof(float) * N * n);
    rhd_buf_upload(ctx, t, h_t, sizeof(float) * N);
    rhd_buf_upload(ctx, ref, b->ref, sizeof(float) * nref);
    rhd_buf_upload(ctx, low, h_low, sizeof(float) * nlow);
    free(h_low), free(h_x0), free(h_t);
    /* q_sample, the network, the x0 MSE */
    rhd_diffusion_train_noise(ctx, eps, N, n, b->noise_keys, b->step);
    rhd_diffusion_q_sample(ctx, tr->sched, xt, x0, eps, b->t, N, n);
    rhd_ups_io io = {.N = N, .R = R, .r = rr, .x = xt, .t = t, .ref = ref, .low = low, .dy = dout};
    rhd_nn_model_forward(&m->base, &io, 1);
    if (b->trace_low) rhd_buf_download(ctx, b->trace_low, io.low, sizeof(float) * nlow);
    out->rec = rhd_diffusion_training_loss(ctx, tr->sched, RHD_PRED_XSTART, RHD_VAR_FIXED_LARGE, dout, NULL, io.y, x0,
                                           xt, eps, b->t, NULL, N, C, HW);
    if (b->grad_scale != 1.f) rhd_scale(ctx, dout, dout, b->grad_scale, N * n);
    if (tr->rl && b->targets && b->per_sample > 0) render_terms(tr, b, R, io.y, dout, out);
    out->loss = out->rec + out->render;
    rhd_nn_model_backward(&m->base, &io);
    void *bufs[] = {x0, xt, eps, dout, t, ref, low};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) rhd_buf_free(ctx, bufs[i]);
    return out->loss;
}
