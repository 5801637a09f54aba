/* tests/bench/bench_unet.c: the base UNet (common/models/unet.h) on the CPU or CUDA (RHD_BENCH_DEVICE).
 *   - one training step (zero grads, forward, backward) of the small preset at batch 2 (dropout
 *     0.1, training mode) against PyTorch fp32 (tests/ref/bench_unet.py, the model of ref_unet.py)
 *     on the same $RHD_BENCH_THREADS threads; best of RHD_BENCH_REPS;
 *   - the official config's forward at batch 1 (inference), timed once: seconds and GFLOP/s against
 *     the 1.905 TFLOP of spec §9 (RHD_BENCH_UNET_OFFICIAL=0 leaves it out; it needs ~1.5 GB of
 *     parameters plus the printed arena).
 *   - on CUDA also the official config at batch 3: forward and training step, fp32 and TF32.
 * Random weights (std 0.02) and inputs; the figures do not depend on the values. */
#include "bench.h"
#include "common/models/unet.h"

static void fill(rhd_unet *m) {
    float *w = th_randn(m->base.params.total, 0.02f);
    rhd_buf_upload(bench.ctx, m->base.params.data, w, sizeof(float) * m->base.params.total);
    free(w);
}

typedef struct run {
    rhd_unet *m;
    rhd_unet_io io;
    int train;
} run;

static void step(run *r) {
    r->m->base.run.seed = 1, r->m->base.run.stream = RHD_STREAM(RHD_STREAM_DROPOUT, 1);
    if (r->train) rhd_nn_model_zero_grad(&r->m->base);
    rhd_unet_forward(r->m, &r->io, r->train);
    if (r->train) rhd_unet_backward(r->m, &r->io);
}

static void inputs(run *r, const rhd_unet_config *c, int N) {
    const long R = c->image_size;
    r->io = (rhd_unet_io){.N = N};
    r->io.x = bench_put(th_randn(N * c->in_channels * R * 3 * R, 1), sizeof(float) * N * c->in_channels * R * 3 * R);
    r->io.dy = bench_put(th_randn(N * c->out_channels * R * 3 * R, 1), sizeof(float) * N * c->out_channels * R * 3 * R);
    r->io.t = bench_put(th_randu(N, 0, 999), sizeof(float) * N);
    long nr = (long)N * c->latent_ch * c->latent_size * c->latent_size;
    r->io.ref = bench_put(th_randn(nr, 1), sizeof(float) * nr);
    for (int i = 0; i < 3; i++) {
        long n = (long)N * c->feat_ch[i] * c->feat_size[i] * c->feat_size[i];
        r->io.F[i] = bench_put(th_randn(n, 1), sizeof(float) * n);
    }
}

/* CUDA only: the official config at the original's batch 3, forward (inference) and training step
 * (forward + backward, 3x the forward's FLOPs), strict fp32, --tf32 and --bf16, best of bench.reps;
 * TFLOP/s to set against the card's measured ceilings (tests/gpu/ceilings.cu; issue 11's goal: the
 * bf16 training step at 50% of the bf16 GEMM peak). */
static void official_gpu(rhd_ctx *ctx, const rhd_unet_config *c) {
    rhd_err e;
    const int N = 3;
    const double fwd = 2 * rhd_unet_macs(c) * N;
    for (int train = 0; train < 2; train++) {
        run o = {rhd_unet_create(c, ctx, NULL, train, &e), {0}, train};
        if (!o.m) { printf("bench_unet: official, batch %d, %s: %s\n", N, train ? "training" : "inference", e.msg); return; }
        fill(o.m);
        inputs(&o, c, N);
        printf("# official config, batch %d, %s arena: %.1f MB\n", N, train ? "training" : "inference",
               rhd_unet_arena_bytes(o.m, N, train) / 1e6);
        static const char *const mode[] = {"fp32", "TF32", "BF16"};
        for (int k = 0; k < 3; k++) {
            rhd_ctx_set_tf32(ctx, k == 1);
            rhd_ctx_set_bf16(ctx, k == 2);
            double ms;
            BENCH_BEST(ms, step(&o));
            double flop = train ? 3 * fwd : fwd;
            printf("official %s, batch %d, %s: %.1f ms, %.1f TFLOP/s of %.4g TFLOP\n", train ? "training step" : "forward",
                   N, mode[k], ms, flop / (ms * 1e-3) / 1e12, flop / 1e12);
        }
        rhd_ctx_set_tf32(ctx, 0);
        rhd_ctx_set_bf16(ctx, 0);
        rhd_unet_free(o.m);
    }
}

int main(void) {
    rhd_ctx *ctx = bench_open("bench_unet");
    rhd_err e;
    bench_table tab = {0};
    rhd_unet_config c;
    rhd_unet_config_small(&c);
    run r = {rhd_unet_create(&c, ctx, NULL, 1, &e), {0}, 1};
    if (!r.m) return printf("bench_unet: %s\n", e.msg), 1;
    fill(r.m);
    inputs(&r, &c, 2);
    printf("# small preset: %lld parameters, training arena at batch 2: %.1f MB\n",
           (long long)rhd_params_count(&r.m->base.params), rhd_unet_arena_bytes(r.m, 2, 1) / 1e6);
    double ms;
    BENCH_BEST(ms, step(&r));
    bench_add(&tab, "train_small", "UNet small preset: training step (fwd+bwd)", "batch 2, [32,32,96]", ms);
    bench_ref(&tab, "bench_unet.py", "%d", bench.reps);
    bench_print(&tab);
    rhd_unet_free(r.m);
    const char *off = getenv("RHD_BENCH_UNET_OFFICIAL");
    if (off && !strcmp(off, "0")) return bench_close(), 0;
    rhd_unet_config_official(&c);
    run o = {rhd_unet_create(&c, ctx, NULL, 0, &e), {0}, 0};
    if (!o.m) return printf("bench_unet: %s\n", e.msg), 1;
    fill(o.m);
    inputs(&o, &c, 1);
    printf("# official config: %lld parameters, inference arena at batch 1: %.1f MB\n",
           (long long)rhd_params_count(&o.m->base.params), rhd_unet_arena_bytes(o.m, 1, 0) / 1e6);
    double t0 = bench_wall_ms(), c0 = bench_cpu_ms();
    step(&o);
    rhd_ctx_sync(ctx);
    double s = (bench_wall_ms() - t0) / 1e3, cpu = (bench_cpu_ms() - c0) / 1e3;
    printf("official forward, batch 1, [32,128,384]: %.1f s wall (%.1f s CPU), %.1f GFLOP/s of %.4g TFLOP\n", s, cpu,
           2 * rhd_unet_macs(&c) / s / 1e9, 2 * rhd_unet_macs(&c) / 1e12);
    rhd_unet_free(o.m);
    if (ctx->backend == RHD_BACKEND_CUDA) official_gpu(ctx, &c);
    bench_close();
    return 0;
}
