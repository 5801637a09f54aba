/* tests/bench/bench_encode.c: portraits per second of the SDXL-VAE encoder (rhd-encode's model)
 * against diffusers' AutoencoderKL encoder on the same machine (tests/ref/bench_encode.py), fp32,
 * 128x128 portraits, $RHD_BENCH_THREADS threads (default 2) on both sides.
 *
 * Each batch size runs once to warm up, then the best of a few runs is kept. One row per batch:
 * op | shape | ours ms | torch ms | torch/ours (> 1: we are faster), then portraits/s and the
 * achieved GFLOP/s. RHD_BENCH_DEVICE=cuda times our CUDA backend instead (synchronising before the
 * clock stops; larger batches); the diffusers column stays on the CPU, and RHD_BENCH_NO_TORCH=1
 * leaves it out. */
#include "bench.h"
#include "common/backend.h"
#include "common/log.h"
#include "common/models/vae_encoder.h"

int main(void) {
    rhd_ctx *ctx = bench_open("bench_encode");
    int cuda = ctx->backend == RHD_BACKEND_CUDA, no_torch = bench_no_ref();
    static const int cpu_batches[] = {1, 4}, gpu_batches[] = {1, 8, 32};
    const int *batches = cuda ? gpu_batches : cpu_batches;
    int nb = cuda ? 3 : 2, reps = cuda ? 10 : 2, H = 128, W = 128;

    rhd_vae_config cfg;
    rhd_vae_config_sdxl(&cfg);
    rhd_vae_encoder m;
    rhd_vae_encoder_init(&m, &cfg);
    rhd_vae_encoder_alloc(&m, ctx);
    rhd_vae_encoder_init_random(&m, 1);
    double gflop = 2 * rhd_vae_encoder_macs(&m, H, W) / 1e9;

    /* diffusers first (on the CPU), all batch sizes in one process */
    double torch_ms[8] = {0};
    if (!no_torch) {
        const char *dir = th_subdir("bench-encode");
        char spec[1100], out[1100];
        snprintf(spec, sizeof spec, "%s/spec.txt", dir), snprintf(out, sizeof out, "%s/out.txt", dir);
        FILE *f = fopen(spec, "w");
        for (int b = 0; b < nb; b++) fprintf(f, "%d %d %d %d %d\n", b, cuda ? 1 : batches[b], H, W, 2);
        fclose(f);
        if (th_ref("bench_encode.py", "%s %s", spec, out) == 0 && (f = fopen(out, "r"))) {
            int k;
            double ms;
            while (fscanf(f, "%d %lf", &k, &ms) == 2)
                if (k >= 0 && k < 8) torch_ms[k] = ms;
            fclose(f);
        }
    }

    printf("# SDXL VAE encoder, %dx%d portraits, %.1f GFLOP each, fp32; ours on %s, diffusers 0.27.2 on the CPU\n", W, H,
           gflop, ctx->name);
    printf("%-28s | %-18s | %10s | %10s | %10s | %s\n", "op", "shape", "ours ms", "torch ms", "torch/ours", "portraits/s");
    for (int b = 0; b < nb; b++) {
        int N = batches[b];
        size_t nx = (size_t)N * 3 * H * W;
        int64_t s[4][3];
        rhd_vae_encoder_shapes(&m, H, W, s);
        float *x = th_randu((long)nx, -1.f, 1.f), *dx = rhd_buf_alloc(ctx, sizeof(float) * nx), *out[4];
        rhd_buf_upload(ctx, dx, x, sizeof(float) * nx);
        for (int i = 0; i < 4; i++) out[i] = rhd_buf_alloc(ctx, sizeof(float) * N * s[i][0] * s[i][1] * s[i][2]);
        rhd_arena a;
        rhd_arena_init(&a, ctx, rhd_vae_encoder_arena_bytes(&m, N, H, W));
        double best = 1e30;
        for (int r = 0; r <= reps; r++) {
            double t0 = rhd_now();
            rhd_vae_encoder_forward(ctx, &m, &a, out[0], out[1], out[2], out[3], dx, N, H, W);
            rhd_ctx_sync(ctx);
            double dt = (rhd_now() - t0) * 1e3;
            if (r > 0 && dt < best) best = dt; /* r = 0 is the warm-up */
        }
        char shape[64], tms[32] = "-", ratio[32] = "-", trate[32] = "-";
        snprintf(shape, sizeof shape, "[%d,3,%d,%d]", N, H, W);
        /* on CUDA the torch column is one portrait on the CPU, scaled to the batch */
        double tm = torch_ms[b] * (cuda ? N : 1);
        if (torch_ms[b] > 0) {
            snprintf(tms, sizeof tms, "%.1f", tm);
            snprintf(ratio, sizeof ratio, "%.2f", tm / best);
            snprintf(trate, sizeof trate, "%.2f", N / tm * 1e3);
        }
        printf("%-28s | %-18s | %10.1f | %10s | %10s | %.2f ours, %s torch (%.0f GFLOP/s ours)\n", "vae encoder (SDXL)",
               shape, best, tms, ratio, N / best * 1e3, trate, gflop * N / (best / 1e3));
        fflush(stdout);
        rhd_arena_free(&a);
        for (int i = 0; i < 4; i++) rhd_buf_free(ctx, out[i]);
        rhd_buf_free(ctx, dx);
        free(x);
    }
    rhd_vae_encoder_free(&m);
    bench_close();
    return 0;
}
