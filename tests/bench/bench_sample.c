/* tests/bench/bench_sample.c: rhd-sample's base stage on the CPU (common/sample_run.h): seconds per
 * avatar for the small UNet preset, DDIM "dpm" S = 10, eta 1, guidance 1.3 (each step runs the
 * network on the doubled batch), batch 1, Philox noise; against PyTorch fp32 doing the same
 * (tests/ref/bench_sample.py: the network of ref_unet.py, 10 guided steps, no_grad) on the same
 * $RHD_BENCH_THREADS threads; best of RHD_BENCH_REPS. Random weights (std 0.02) and features. */
#include "bench.h"
#include "common/sample_run.h"

int main(void) {
    rhd_ctx *ctx = bench_open("bench_sample");
    rhd_err e;
    bench_table tab = {0};
    rhd_unet_config c;
    rhd_unet_config_small(&c);
    c.dropout = 0;
    rhd_sample_model m = {.stage = RHD_STAGE_BASE, .unet = rhd_unet_create(&c, ctx, NULL, 0, &e)};
    if (!m.unet) return printf("bench_sample: %s\n", e.msg), 1;
    float *w = th_randn(m.unet->base.params.total, 0.02f);
    rhd_buf_upload(ctx, m.unet->base.params.data, w, sizeof(float) * m.unet->base.params.total);
    m.beta = RHD_BETA_COSINE_LIGHT, m.T = 1000, m.pred = RHD_PRED_EPS, m.var = RHD_VAR_LEARNED_RANGE;
    m.C = c.in_channels, m.C_out = c.out_channels, m.R = c.image_size, m.latent_ch = c.latent_ch;
    m.latent_size = c.latent_size, m.cond_noise = c.noise;
    for (int i = 0; i < 3; i++) m.feat_ch[i] = c.feat_ch[i], m.feat_size[i] = c.feat_size[i];
    rhd_sample_cond cond = {th_randn(2 * c.latent_ch * c.latent_size * c.latent_size, 1)};
    for (int i = 0; i < 3; i++) cond.F[i] = th_randn((long)c.feat_ch[i] * c.feat_size[i] * c.feat_size[i], 1);
    rhd_sample_opts o;
    rhd_sample_opts_init(&o, &m);
    rhd_sample_plan p;
    if (rhd_sample_plan_init(&p, &m, &o, &e)) return printf("bench_sample: %s\n", e.msg), 1;
    rhd_sample_item it = {.name = "avatar", .cond = &cond, .in_row = -1, .rec_row = -1};
    float *out = malloc(sizeof(float) * (size_t)c.in_channels * c.image_size * 3 * c.image_size);
    printf("# small preset: %lld parameters; %d steps, guidance %.2g (network batch 2), eta %g\n",
           (long long)rhd_params_count(&m.unet->base.params), p.nsteps, o.guidance, o.eta);
    double ms;
    int rc = 0;
    BENCH_BEST(ms, rc |= rhd_sample_batch(ctx, &m, &o, &p, &it, 1, out, &e));
    if (rc) return printf("bench_sample: %s\n", e.msg), 1;
    bench_add(&tab, "sample_small", "base sample, small preset, S=10, CFG 1.3 (ms per avatar)", "batch 1, [32,32,96]", ms);
    bench_ref(&tab, "bench_sample.py", "%d", bench.reps);
    bench_print(&tab);
    rhd_sample_plan_free(&p);
    rhd_sample_cond_free(&cond);
    free(out), free(w);
    rhd_unet_free(m.unet);
    bench_close();
    return 0;
}
