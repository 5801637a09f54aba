/* tests/bench/bench_train_upsample.c: one optimiser step of rhd-train --model upsample (common/train_run.h
 * with common/train_upsample.h) at the small upsampler preset (n_feats 32, 20.3M parameters) on
 * R = 32 planes (condition 8; R = 64 took 28 s a step here), global batch 1 (the original's
 * micro-batch), with the rendering loss (L1 of one 16 px patch of tests/data/mini's views, a random
 * decoder, occupancy grid 32 reset and updated 16 times, up to 1024 march steps; LPIPS off), against
 * the same step in PyTorch fp32
 * (tests/ref/bench_train_upsample.py: ref_upsampler.py's network, ref_render_loss.py's decoder,
 * torch.optim.AdamW, one EMA) on the same $RHD_BENCH_THREADS threads; best of RHD_BENCH_REPS.
 *
 * Our step: draw the slot (t, keys), read the pair (cached) and the view (PNG, Lanczos, crop, every
 * step), the condition (--degradation none: bicubic to R/4), q_sample, forward, x0 MSE, the grid
 * warm-up and the march on x0_hat, decoder forward and backward at the kept samples, L1, backward
 * through the network, gradient norm, AdamW, EMA. The reference decodes the same number of samples
 * as our march kept (measured on an untimed step and passed to it) and evaluates the grid's density
 * at every cell 16 times, but marches nothing (PyTorch has no ray marcher: its samples are drawn
 * uniformly), so it does a little less work than ours. */
#include "bench.h"
#include "common/models/decoder.h"
#include "common/models/upsampler.h"
#include "common/model_io.h"
#include "common/train_run.h"
#include "common/train_upsample.h"
#include "models/test_train_pairs.h"

enum { R = 32, PATCH = 16, GRID = 32, MARCH = 1024 };

int main(void) {
    rhd_ctx *ctx = bench_open("bench_train_upsample");
    rhd_err e = {0};
    const char *dir = th_subdir("bench_train_upsample"), *root = getenv("RHD_ROOT");
    char views[1024], tri[1100], feat[1100], run_dir[1100], dec_path[1100];
    snprintf(views, sizeof views, "%s/tests/data/mini", root && *root ? root : ".");
    th_sh("mkdir -p %s/tri %s/feat %s/run", dir, dir, dir);
    rhd_ups_config uc;
    rhd_ups_config_small(&uc);
    rhd_unet_config c; /* the pair writer's sizes: the upsampler's channels and latent */
    rhd_unet_config_small(&c);
    c.in_channels = uc.in_ch, c.latent_ch = uc.latent_ch, c.latent_size = uc.latent_size;
    th_train_pair(dir, "avatar_100", &c, R, 0.3f, 0); /* named after a mini avatar: its views */
    rhd_decoder dec;
    rhd_decoder_cfg dc;
    rhd_decoder_cfg_default(&dc);
    dc.C = uc.out_ch;
    if (rhd_decoder_init(&dec, &dc, ctx, 0, &e)) return printf("bench_train_upsample: %s\n", e.msg), 1;
    rhd_decoder_init_weights(&dec, 7);
    rhd_decoder_file_info info = {.triplane_res = R, .bound = 1};
    snprintf(dec_path, sizeof dec_path, "%s/dec.safetensors", dir);
    if (rhd_decoder_file_write(dec_path, &dec, &info, "bench", &e)) return printf("bench_train_upsample: %s\n", e.msg), 1;
    rhd_decoder_free(&dec);

    rhd_train_ups_opts uo;
    rhd_train_ups_opts_default(&uo);
    uo.R = R, uo.degrade = RHD_DEGRADE_NONE, uo.decoder = dec_path, uo.views = views, uo.lpips_weight = 0;
    uo.patch = PATCH, uo.grid_size = GRID, uo.max_steps = MARCH;
    rhd_train_ups_configure(&uo);
    rhd_train_data data = {0};
    snprintf(tri, sizeof tri, "%s/tri", dir), snprintf(feat, sizeof feat, "%s/feat", dir);
    snprintf(run_dir, sizeof run_dir, "%s/run", dir);
    if (rhd_train_pairs_from_dirs(&data, tri, feat, &e)) return printf("bench_train_upsample: %s\n", e.msg), 1;
    rhd_train_cfg cfg;
    rhd_train_cfg_init(&cfg);
    cfg.dir = run_dir, cfg.model = "upsample", cfg.preset = "small", cfg.batch = 1, cfg.uncond_p = 0;
    cfg.steps = 1 << 30, cfg.progress = 0;
    rhd_dist dist = {0, 1, 0};
    rhd_train_run *run = rhd_train_open(&cfg, &data, ctx, &dist, &e);
    if (!run) return printf("bench_train_upsample: %s\n", e.msg), 1;
    /* an untimed step that records how many samples the march kept */
    rhd_train_trace tr = {0};
    rhd_train_model *m = rhd_train_run_model(run);
    double ms, loss;
    m->trace = &tr;
    int rc = rhd_train_step(run, &loss, &e);
    m->trace = NULL;
    if (!rc) BENCH_BEST(ms, rc |= rhd_train_step(run, &loss, &e));
    if (rc) return printf("bench_train_upsample: %s\n", e.msg), 1;
    bench_table tab = {0};
    char shape[160];
    snprintf(shape, sizeof shape, "batch 1, [32,%d,%d] <- [32,%d,%d], %dpx patch, %lld samples", R, 3 * R, R / 4,
             3 * R / 4, PATCH, (long long)tr.samples);
    bench_add(&tab, "train_upsample_step_small", "rhd-train --model upsample step, small", shape, ms);
    bench_ref(&tab, "bench_train_upsample.py", "%s %s %s/avatar_100 %d %d %d %lld %d", tri, feat, views, R, PATCH, GRID,
              (long long)tr.samples, bench.reps);
    bench_print(&tab);
    printf("# steps/s: ours %.3f (loss of the last step %.4f)\n", 1e3 / ms, loss);
    free(tr.low);
    rhd_train_close(run);
    rhd_train_data_free(&data);
    bench_close();
    return 0;
}
