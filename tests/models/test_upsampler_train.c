/* tests/models/test_upsampler_train.c: one upsampler training step (common/upsampler_train.h)
 * at a small configuration (the small preset with levels (1, 4), 1 res block per level and 1 body
 * group; planes 8, condition 2) against the PyTorch reference
 * (tests/ref/ref_render_loss.py step: ref_upsampler.py's network, its own sigmoid schedule,
 * q_sample, torch's bicubic condition, the x0 MSE and the rendering loss with lpips' VGG), with
 * the degradation `none` so the reference needs no resize chain:
 *   A. batch 2, x0 MSE only: the loss and every parameter gradient;
 *   B. batch 1 with the rendering loss of one 16x16 patch (the march's samples kept and handed to
 *      the reference): the loss, its two parts and every parameter gradient, with x0_hat unclamped
 *      (the original; an output bias of U(-2.5, 2.5) takes it beyond [-1, 1]) and clamped
 *      (render_clamp): each against the reference of the same mode (swapping them fails);
 *   C. gradient accumulation: two half-scaled steps give the gradient of one full step.
 * The noise eps comes from the same Philox draw on both sides (rhd_diffusion_train_noise). */
#include "refcheck.h"
#include "common/models/diffusion.h"
#undef RHD_FMUL /* kernels/diffusion.h and kernels/rays.h define these differently; unused here */
#undef RHD_FADD
#undef RHD_FSUB
#include "common/upsampler_train.h"
#include "formats/params_io.h"

enum { R = 8, SF = 4, P = 16 };

static rhd_ctx *g_cpu;
static rhd_ups_config g_cfg;

static void write_cfg(const char *dir, const rhd_ups_config *c) {
    char path[1200];
    snprintf(path, sizeof path, "%s/cfg.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) th_diag("cannot write %s", path), exit(1);
    const char *in[] = {"in_ch", "out_ch", "cond_ch", "n_feats", "num_res_blocks", "n_resblocks", "temb_ch", "temb_dim",
                        "latent_ch", "latent_size", "patch", "embed_dim", "pool_heads", "groups", "head_ch"};
    const int iv[] = {c->in_ch, c->out_ch, c->cond_ch, c->n_feats, c->num_res_blocks, c->n_resblocks, c->temb_ch,
                      c->temb_dim, c->latent_ch, c->latent_size, c->patch, c->embed_dim, c->pool_heads, c->groups,
                      c->head_ch};
    fprintf(f, "{");
    for (int i = 0; i < 15; i++) fprintf(f, "\"%s\": %d, ", in[i], iv[i]);
    fprintf(f, "\"latent_scale\": %.9g, \"eps\": %.9g, \"attn_eps\": %.9g, \"ln_eps\": %.9g, \"ch_mult\": [",
            c->latent_scale, c->eps, c->attn_eps, c->ln_eps);
    for (int i = 0; i < c->nlevels; i++) fprintf(f, "%s%d", i ? ", " : "", c->ch_mult[i]);
    fprintf(f, "]}\n");
    fclose(f);
}

static void save_params(const rhd_params *p, const char *path) {
    rhd_st_writer w;
    rhd_err e;
    rhd_st_writer_init(&w);
    rhd_params_to_writer(p, RHD_PBUF_DATA, "", &w);
    if (rhd_st_write(&w, path, &e)) th_diag("%s", e.msg), exit(1);
    rhd_st_writer_free(&w);
}

typedef struct {
    int N;
    float *hr, *ref, *eps, *tf;
    int t[2];
    uint64_t keys[2];
} batch_in;

static void make_batch(batch_in *b, int N) {
    const int C = g_cfg.in_ch;
    b->N = N;
    b->hr = th_randn((long)N * 3 * C * R * R, 0.5f);
    b->ref = th_randn((long)N * 4 * 16 * 16, 4.f);
    float *u = th_randu(N, 0, 1);
    b->tf = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) b->t[i] = (int)(u[i] * 100) % 100, b->tf[i] = (float)b->t[i], b->keys[i] = th_seed() + 17 * i;
    free(u);
    b->eps = malloc(sizeof(float) * N * C * R * 3 * R);
    rhd_diffusion_train_noise(g_cpu, b->eps, N, (int64_t)C * R * 3 * R, b->keys, 5);
}

static void save_batch(const char *dir, const batch_in *b) {
    const int C = g_cfg.in_ch;
    int64_t shr[5] = {b->N, 3, C, R, R}, sref[4] = {b->N, 4, 16, 16}, st[1] = {b->N}, se[4] = {b->N, C, R, 3 * R};
    th_save(dir, "hr", b->hr, 5, shr);
    th_save(dir, "ref", b->ref, 4, sref);
    th_save(dir, "t", b->tf, 1, st);
    th_save(dir, "eps", b->eps, 4, se);
}

static rhd_ups_batch batch_of(const batch_in *b) {
    rhd_ups_batch x = {0};
    x.N = b->N, x.hr = b->hr, x.ref = b->ref, x.t = b->t, x.noise_keys = b->keys, x.step = 5;
    x.deg_seed = th_seed(), x.deg_stream = RHD_STREAM(RHD_STREAM_TEST, 9), x.grid_seed = 3;
    x.grad_scale = 1.f;
    return x;
}

static void compare(const char *what, const char *dir, const rhd_upsampler *m, const rhd_ups_step_out *o, int render) {
    float *lv = th_load(dir, "loss", 3);
    char path[1200];
    snprintf(path, sizeof path, "%s/grads.safetensors", dir);
    rhd_st *gs;
    rhd_err e;
    if (!lv || rhd_st_open(path, &gs, &e)) {
        th_ok(0, "%s: reference outputs", what);
        free(lv);
        return;
    }
    float got[3] = {(float)o->loss, (float)o->rec, (float)o->render};
    th_diag("%s: loss %.8g (rec %.8g render %.8g), reference %.8g (%.8g %.8g)", what, got[0], got[1], got[2], lv[0],
            lv[1], lv[2]);
    char name[200];
    snprintf(name, sizeof name, "%s: loss, rec, render", what);
    th_close(name, got, lv, render ? 3 : 2, 1e-10);
    const rhd_params *p = &m->base.params;
    float *ref = calloc(p->total, sizeof(float));
    int missing = 0;
    for (int i = 0; i < p->n; i++) {
        const rhd_st_tensor *t = rhd_st_find(gs, p->info[i].name);
        if (t && t->numel == p->info[i].numel) rhd_st_to_f32(t, ref + p->info[i].offset);
        else missing++;
    }
    snprintf(name, sizeof name, "%s: every parameter gradient (%d tensors, %d missing)", what, p->n, missing);
    th_close(name, p->grad, ref, p->total, 1e-8);
    const char *names[] = {"input_layer.0.weight", "body.1.proj_out.bias", "out.conv2.out_layers3.weight"};
    for (int k = 0; k < 3; k++) {
        int i = rhd_params_find(p, names[k]);
        snprintf(name, sizeof name, "%s: d[%s]", what, names[k]);
        th_close(name, p->grad + p->info[i].offset, ref + p->info[i].offset, p->info[i].numel, 1e-7);
    }
    th_ok(missing == 0, "%s: the reference has every gradient", what);
    free(ref), free(lv);
    rhd_st_close(gs);
}

int main(void) {
    rhd_ctx *gpu;
    th_open_backends(&g_cpu, &gpu);
    rhd_ups_config_small(&g_cfg);
    /* the small preset, thinner for a quicker test: levels (1, 4), 1 res block, 1 body group */
    g_cfg.nlevels = 2, g_cfg.ch_mult[0] = 1, g_cfg.ch_mult[1] = 4, g_cfg.num_res_blocks = 1, g_cfg.n_resblocks = 2;
    rhd_err e;
    rhd_upsampler *m = rhd_ups_create(&g_cfg, g_cpu, NULL, "", 1, &e);
    if (!m) th_diag("%s", e.msg), exit(1);
    float *w = th_randn(m->base.params.total, 0.05f);
    memcpy(m->base.params.data, w, sizeof(float) * m->base.params.total);
    free(w);
    rhd_diffusion_schedule sched;
    if (rhd_diffusion_schedule_named(&sched, RHD_BETA_SIGMOID, 100, &e)) th_diag("%s", e.msg), exit(1);
    rhd_ups_train_opts o;
    rhd_ups_train_opts_default(&o);
    o.degrade = RHD_DEGRADE_NONE;
    rhd_ups_trainer tr;
    rhd_ups_trainer_init(&tr, m, &sched, NULL, &o);
    th_ok(rhd_ups_train_check(&tr, R, &e) == 0, "sizes accepted (R %d, sf %d)", R, SF);
    th_ok(rhd_ups_train_check(&tr, 10, &e) < 0 && strstr(e.msg, "multiple"), "R 10 refused: %s", e.msg);

    /* A: batch 2, x0 MSE */
    const char *dA = th_subdir("ups_train_a");
    char path[1200];
    snprintf(path, sizeof path, "%s/params.safetensors", dA);
    save_params(&m->base.params, path);
    write_cfg(dA, &g_cfg);
    batch_in A;
    make_batch(&A, 2);
    save_batch(dA, &A);
    rhd_ups_batch bA = batch_of(&A);
    rhd_ups_step_out oA;
    rhd_nn_model_zero_grad(&m->base);
    rhd_ups_train_step(&tr, &bA, R, &oA);
    float *gA = malloc(sizeof(float) * m->base.params.total);
    memcpy(gA, m->base.params.grad, sizeof(float) * m->base.params.total);
    if (th_ref("ref_render_loss.py", "step %s %d 0 1e-4 1 0.5 %d", dA, SF, P) == 0) compare("A batch 2", dA, m, &oA, 0);
    else th_ok(0, "reference step A ran");

    /* C: gradients accumulate (+=) and follow grad_scale: a step scaled by -1 on top of A's cancels it */
    bA.grad_scale = -1.f;
    rhd_ups_train_step(&tr, &bA, R, &oA);
    double gmax = 0, rmax = 0;
    for (long i = 0; i < m->base.params.total; i++) gmax = fmax(gmax, fabs(gA[i])), rmax = fmax(rmax, fabs(m->base.params.grad[i]));
    th_ok(gmax > 0 && rmax <= 1e-6 * gmax, "C accumulation: A's gradient + a (-1)-scaled step of the same batch: max|g| "
          "%.2e of %.2e", rmax, gmax);
    free(gA);

    /* B: batch 1 with the rendering loss */
    const char *dB = th_subdir("ups_train_b");
    snprintf(path, sizeof path, "%s/weights.safetensors", dB);
    rhd_lpips lp;
    rhd_decoder dec;
    rhd_decoder_cfg dc;
    rhd_decoder_cfg_default(&dc);
    dc.C = g_cfg.out_ch;
    if (th_ref("ref_render_loss.py", "weights %s %u", dB, (unsigned)(th_seed() % 1000003u)) ||
        rhd_lpips_load(&lp, g_cpu, path, &e) || rhd_decoder_init(&dec, &dc, g_cpu, 1, &e)) {
        th_ok(0, "LPIPS weights and decoder for B");
        return th_done();
    }
    rhd_decoder_init_weights(&dec, th_seed());
    rhd_render_loss_opts ro;
    rhd_render_loss_opts_default(&ro);
    ro.patch = P, ro.render.grid_size = 16, ro.render.density_thresh = 0.01f, ro.render.max_steps = 32;
    rhd_render_loss rl;
    if (rhd_render_loss_init(&rl, g_cpu, &dec, &lp, &ro, &e)) th_diag("%s", e.msg), exit(1);
    rl.keep_samples = 1;
    /* an output bias of U(-2.5, 2.5) per channel, so that x0_hat leaves [-1, 1] and the clamp matters */
    int ob = rhd_params_find(&m->base.params, "out.conv2.out_layers3.bias");
    if (ob < 0) th_diag("no out.conv2.out_layers3.bias"), exit(1);
    float *bias = th_randu(m->base.params.info[ob].numel, -2.5f, 2.5f);
    memcpy(rhd_param(&m->base.params, ob), bias, sizeof(float) * m->base.params.info[ob].numel);
    free(bias);
    rhd_ups_trainer_init(&tr, m, &sched, &rl, &o);
    batch_in B;
    make_batch(&B, 1);
    float c2w[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, -2.5f};
    float *gt = th_randu(3 * P * P, 0, 1);
    rhd_ups_render_target tg = {{c2w, {40, 40, 16, 16}, 32, 32}, 8, 8, gt};
    rhd_ups_batch bB = batch_of(&B);
    bB.targets = &tg, bB.per_sample = 1;
    rhd_ups_step_out oB;
    rhd_nn_model_zero_grad(&m->base);
    rhd_ups_train_step(&tr, &bB, R, &oB);
    th_ok(rl.kept_patches == 1 && oB.samples == rl.kept_M && oB.samples > 0 && oB.render > 0,
          "B: one patch rendered, %lld samples, render loss %.6g (l1 %.6g lpips %.6g)", (long long)oB.samples, oB.render,
          oB.l1, oB.lpips);
    snprintf(path, sizeof path, "%s/params.safetensors", dB);
    save_params(&m->base.params, path);
    write_cfg(dB, &g_cfg);
    save_batch(dB, &B);
    int64_t M = rl.kept_M, sM3[2] = {M, 3}, sM[1] = {M}, sN2[2] = {P * P, 2}, sN3[2] = {P * P, 3};
    float *raysf = malloc(sizeof(float) * 2 * P * P);
    for (int i = 0; i < 2 * P * P; i++) raysf[i] = (float)rl.kept_rays[i];
    th_save(dB, "xyz", rl.kept_xyz, 2, sM3);
    th_save(dB, "dirs", rl.kept_dirs, 2, sM3);
    th_save(dB, "delta0", rl.kept_d0, 1, sM);
    th_save(dB, "rays", raysf, 2, sN2);
    th_save(dB, "gt", gt, 2, sN3);
    for (int i = 0; i < dec.P.n; i++) th_save(dB, dec.P.info[i].name, rhd_param(&dec.P, i), dec.P.info[i].ndim, dec.P.info[i].shape);
    if (th_ref("ref_render_loss.py", "step %s %d 1 %g %g %g %d 0", dB, SF, ro.render.T_thresh, ro.w_l1, ro.w_lpips, P) == 0)
        compare("B render (x0_hat unclamped, the original)", dB, m, &oB, 1);
    else th_ok(0, "reference step B ran");
    /* --render-clamp: the decoder reads clamp(x0_hat, -1, 1); the reference with CLAMP = 1 */
    tr.o.render_clamp = 1;
    rhd_ups_step_out oBc;
    rhd_nn_model_zero_grad(&m->base);
    rhd_ups_train_step(&tr, &bB, R, &oBc);
    th_diag("B render loss unclamped %.9g, clamped %.9g", oB.render, oBc.render);
    th_ok(oBc.render != oB.render, "B: the clamp changes the render loss (x0_hat leaves [-1, 1]): %.9g vs %.9g", oBc.render,
          oB.render);
    /* the clamped triplane's occupancy grid may keep other samples: the reference gets this march's */
    M = rl.kept_M, sM3[0] = M, sM[0] = M;
    for (int i = 0; i < 2 * P * P; i++) raysf[i] = (float)rl.kept_rays[i];
    th_save(dB, "xyz", rl.kept_xyz, 2, sM3);
    th_save(dB, "dirs", rl.kept_dirs, 2, sM3);
    th_save(dB, "delta0", rl.kept_d0, 1, sM);
    th_save(dB, "rays", raysf, 2, sN2);
    if (th_ref("ref_render_loss.py", "step %s %d 1 %g %g %g %d 1", dB, SF, ro.render.T_thresh, ro.w_l1, ro.w_lpips, P) == 0)
        compare("B render clamped (--render-clamp)", dB, m, &oBc, 1);
    else th_ok(0, "reference step B clamped ran");
    free(raysf), free(gt);
    rhd_render_loss_free(&rl);
    rhd_decoder_free(&dec);
    rhd_lpips_free(&lp);
    rhd_diffusion_schedule_free(&sched);
    rhd_nn_model_free(&m->base);
    if (gpu) rhd_ctx_close(gpu);
    rhd_ctx_close(g_cpu);
    return th_done();
}
