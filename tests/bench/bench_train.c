/* tests/bench/bench_train.c: one optimiser step of rhd-train (common/train_run.h) at the small
 * preset, global batch 2 (one micro-batch), against the same step in PyTorch fp32
 * (tests/ref/bench_train.py: the UNet of ref_unet.py, the hybrid loss of ref_diffusion.py,
 * torch.optim.AdamW, one EMA) on the same $RHD_BENCH_THREADS threads; best of RHD_BENCH_REPS.
 * The step: draw the batch (timesteps, classifier-free drops, conditioning samples, noise),
 * q_sample, forward, loss, backward, gradient norm, AdamW, EMA. Pairs are random files read once
 * (cached), as a real run reads them. */
#include "bench.h"
#include "common/train_run.h"
#include "models/test_train_pairs.h"

int main(void) {
    rhd_ctx *ctx = bench_open("bench_train");
    rhd_err e = {0};
    rhd_unet_config c;
    rhd_unet_config_small(&c);
    const char *dir = th_subdir("bench_train");
    th_sh("mkdir -p %s/tri %s/feat %s/run", dir, dir, dir);
    th_train_pair(dir, "p0", &c, c.image_size, 0.3f, 0), th_train_pair(dir, "p1", &c, c.image_size, 0.3f, 0);
    rhd_train_data data = {0};
    char tri[1100], feat[1100], run_dir[1100];
    snprintf(tri, sizeof tri, "%s/tri", dir), snprintf(feat, sizeof feat, "%s/feat", dir);
    snprintf(run_dir, sizeof run_dir, "%s/run", dir);
    if (rhd_train_pairs_from_dirs(&data, tri, feat, &e)) return printf("bench_train: %s\n", e.msg), 1;
    rhd_train_cfg cfg;
    rhd_train_cfg_init(&cfg);
    cfg.dir = run_dir, cfg.preset = "small", cfg.batch = 2, cfg.steps = 1 << 30, cfg.progress = 0;
    rhd_dist dist = {0, 1, 0};
    rhd_train_run *run = rhd_train_open(&cfg, &data, ctx, &dist, &e);
    if (!run) return printf("bench_train: %s\n", e.msg), 1;
    double ms, loss;
    int rc = 0;
    BENCH_BEST(ms, rc |= rhd_train_step(run, &loss, &e));
    if (rc) return printf("bench_train: %s\n", e.msg), 1;
    bench_table tab = {0};
    bench_add(&tab, "train_step_small", "rhd-train step, small preset",
              "batch 2, [32,32,96]", ms);
    bench_ref(&tab, "bench_train.py", "%d", bench.reps);
    bench_print(&tab);
    printf("# steps/s: ours %.3f (loss of the last step %.4f)\n", 1e3 / ms, loss);
    rhd_train_close(run);
    rhd_train_data_free(&data);
    bench_close();
    return 0;
}
