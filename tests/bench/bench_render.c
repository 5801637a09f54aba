/* tests/bench/bench_render.c: the fitting-side kernels at model sizes against PyTorch.
 *
 * Times (best of RHD_BENCH_REPS runs, default 3, after one warm-up) triplane sampling of
 * [3,32,512,512] at 1M points (forward and backward), the frequency encoding of 1M x 35 inputs
 * (degree 2), training compositing of 8192 rays x 64 samples, the triplane L1 + TV regularisers,
 * and an Adam step over the 25M triplane parameters. tests/ref/bench_render.py times the same
 * computations in PyTorch (fp32, CPU, torch.set_num_threads($RHD_BENCH_THREADS)). Our side runs
 * on the CPU (OpenMP threads as set by OMP_NUM_THREADS), or on the CUDA backend with
 * RHD_BENCH_DEVICE=cuda (synchronised before the clock stops; PyTorch stays on the CPU).
 * Prints one row per op: op | shape | ours ms | torch ms | torch/ours (wall clock, best run), then
 * the process CPU time of those runs (all threads; on a shared machine it shows the work when the
 * wall clock also counts time spent waiting for a core). Triplane sampling runs twice: at 1M
 * uniformly random points (every tap a cache miss) and at 8192 rays x 128 consecutive samples
 * (the access pattern of marched samples). */
#include "refcheck.h"
#include "kernels/triplane.h"
#include "kernels/freq_encode.h"
#include "kernels/composite.h"
#include "kernels/losses.h"
#include "kernels/optim.h"
#include <time.h>

static rhd_ctx *ctx;
static int reps = 3;

static double clock_ms(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* Best wall time of `reps` runs of stmt after a warm-up run, and the process CPU time (all
 * threads) of that run: on a shared machine the CPU time shows the work when the wall clock
 * also counts waiting for a core. */
static double best_cpu;
#define BEST(out, stmt)                                                                                    \
    do {                                                                                                   \
        stmt;                                                                                              \
        rhd_ctx_sync(ctx);                                                                                 \
        out = 1e30;                                                                                        \
        for (int r_ = 0; r_ < reps; r_++) {                                                                \
            double t0_ = clock_ms(CLOCK_MONOTONIC), c0_ = clock_ms(CLOCK_PROCESS_CPUTIME_ID);              \
            stmt;                                                                                          \
            rhd_ctx_sync(ctx);                                                                             \
            double dt_ = clock_ms(CLOCK_MONOTONIC) - t0_;                                                  \
            if (dt_ < out) out = dt_, best_cpu = clock_ms(CLOCK_PROCESS_CPUTIME_ID) - c0_;                \
        }                                                                                                  \
    } while (0)

/* A device (or host) copy of host data. */
static void *put(const void *host, size_t bytes) {
    void *d = rhd_buf_alloc(ctx, bytes);
    rhd_buf_upload(ctx, d, host, bytes);
    return d;
}

typedef struct {
    const char *key, *op, *shape;
    double ours, ours_cpu, torch, torch_cpu;
} row;
static row rows[16];
static int nrows;

static void add_row(const char *key, const char *op, const char *shape, double ms) {
    rows[nrows++] = (row){key, op, shape, ms, best_cpu, -1, -1};
}

int main(void) {
    rhd_set_prog("bench_render");
    const char *dev = getenv("RHD_BENCH_DEVICE"), *r = getenv("RHD_BENCH_REPS");
    if (r && atoi(r) > 0) reps = atoi(r);
    rhd_err e;
    ctx = rhd_ctx_open(dev && *dev ? dev : "cpu", &e);
    if (!ctx) rhd_die_err(&e);
    printf("# ours: %s, best of %d after a warm-up\n", ctx->name, reps);
    double ms;

    /* triplane sampling: [3,32,512,512], 1M points in [-1,1]^3 */
    {
        const int C = 32, R = 512;
        const int64_t N = 1 << 20, np = 3LL * C * R * R;
        float *h_planes = th_randn(np, 0.5f), *h_points = th_randu(3 * N, -1.f, 1.f), *h_g = th_randn(N * C, 1.f);
        float *planes = put(h_planes, sizeof(float) * np), *points = put(h_points, sizeof(float) * 3 * N);
        float *dfeats = put(h_g, sizeof(float) * N * C);
        float *feats = rhd_buf_alloc(ctx, sizeof(float) * N * C), *dplanes = rhd_buf_alloc(ctx, sizeof(float) * np);
        rhd_buf_zero(ctx, dplanes, sizeof(float) * np);
        BEST(ms, rhd_triplane_forward(ctx, feats, points, planes, N, C, R, 0));
        add_row("triplane_fwd", "triplane fwd", "[3,32,512,512] 1M random", ms);
        BEST(ms, rhd_triplane_backward(ctx, dplanes, dfeats, points, planes, N, C, R, 0));
        add_row("triplane_bwd", "triplane bwd", "[3,32,512,512] 1M random", ms);
        /* the same count as marched samples: 8192 rays x 128 consecutive samples, dt = 2 sqrt3/1024 */
        float *h_dir = th_randn(3 * 8192, 1.f);
        for (int64_t ray = 0; ray < 8192; ray++) {
            float *o = h_points + 3 * ray * 128, *d = h_dir + 3 * ray;
            float len = sqrtf(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
            for (int k = 1; k < 128; k++)
                for (int a = 0; a < 3; a++) {
                    float x = o[a] + k * 0.0033829117f * d[a] / len;
                    o[3 * k + a] = x < -1.f ? -1.f : (x > 1.f ? 1.f : x);
                }
        }
        rhd_buf_upload(ctx, points, h_points, sizeof(float) * 3 * N);
        BEST(ms, rhd_triplane_forward(ctx, feats, points, planes, N, C, R, 0));
        add_row("triplane_fwd_rays", "triplane fwd", "[3,32,512,512] 8192x128 rays", ms);
        BEST(ms, rhd_triplane_backward(ctx, dplanes, dfeats, points, planes, N, C, R, 0));
        add_row("triplane_bwd_rays", "triplane bwd", "[3,32,512,512] 8192x128 rays", ms);
        free(h_dir);
        BEST(ms, rhd_loss_triplane_l1(ctx, dplanes, planes, C, R, 1e-4f, 1);
             rhd_loss_triplane_tv(ctx, dplanes, planes, C, R, 2e-2f, 1));
        add_row("reg", "L1+TV loss+grad", "[3,32,512,512] clamped", ms);
        float *m = rhd_buf_alloc(ctx, sizeof(float) * np), *v = rhd_buf_alloc(ctx, sizeof(float) * np);
        rhd_buf_zero(ctx, m, sizeof(float) * np), rhd_buf_zero(ctx, v, sizeof(float) * np);
        rhd_adam_cfg cfg = {2e-2, 0.9, 0.99, 1e-8, 0.0, 0};
        int64_t step = 0;
        BEST(ms, rhd_adam_step(ctx, planes, m, v, dplanes, np, &cfg, ++step));
        add_row("adam", "adam step", "25.2M params", ms);
        void *bufs[] = {planes, points, dfeats, feats, dplanes, m, v};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) rhd_buf_free(ctx, bufs[i]);
        free(h_planes), free(h_points), free(h_g);
    }

    /* frequency encoding: 1M x 35 inputs, degree 2 -> 1M x 175 */
    {
        const int64_t N = 1 << 20;
        const int D = 35, Do = rhd_freq_encode_dim(D, 2);
        float *h_x = th_randu(N * D, -1.f, 1.f), *h_dy = th_randn(N * Do, 1.f);
        float *x = put(h_x, sizeof(float) * N * D), *dy = put(h_dy, sizeof(float) * N * Do);
        float *y = rhd_buf_alloc(ctx, sizeof(float) * N * Do), *dx = rhd_buf_alloc(ctx, sizeof(float) * N * D);
        BEST(ms, rhd_freq_encode_forward(ctx, y, x, N, D, 2));
        add_row("freq_fwd", "freq_encode fwd", "1M x 35 -> 175", ms);
        BEST(ms, rhd_freq_encode_backward(ctx, dx, dy, x, N, D, 2));
        add_row("freq_bwd", "freq_encode bwd", "1M x 35 -> 175", ms);
        rhd_buf_free(ctx, x), rhd_buf_free(ctx, dy), rhd_buf_free(ctx, y), rhd_buf_free(ctx, dx);
        free(h_x), free(h_dy);
    }

    /* compositing: 8192 rays x 64 samples, dt = 2 sqrt(3)/1024 */
    {
        const int64_t R = 8192, S = 64, M = R * S;
        int32_t *h_rays = malloc(sizeof(int32_t) * 2 * R);
        for (int64_t i = 0; i < R; i++) h_rays[2 * i] = (int32_t)(i * S), h_rays[2 * i + 1] = (int32_t)S;
        float *h_sigma = th_randu(M, 0.f, 50.f), *h_rgb = th_randu(3 * M, 0.f, 1.f), *h_dl = malloc(sizeof(float) * M);
        for (int64_t i = 0; i < M; i++) h_dl[i] = 0.0033829117f;
        float *h_gp = th_randn(3 * R, 1.f);
        int32_t *rays = put(h_rays, sizeof(int32_t) * 2 * R);
        float *sigma = put(h_sigma, sizeof(float) * M), *rgb = put(h_rgb, sizeof(float) * 3 * M);
        float *dl = put(h_dl, sizeof(float) * M), *gp = put(h_gp, sizeof(float) * 3 * R);
        float *pred = rhd_buf_alloc(ctx, sizeof(float) * 3 * R), *A = rhd_buf_alloc(ctx, sizeof(float) * R);
        float *depth = rhd_buf_alloc(ctx, sizeof(float) * R);
        int32_t *used = rhd_buf_alloc(ctx, sizeof(int32_t) * R);
        float *dsigma = rhd_buf_alloc(ctx, sizeof(float) * M), *drgb = rhd_buf_alloc(ctx, sizeof(float) * 3 * M);
        rhd_composite_cfg cfg = rhd_composite_cfg_default();
        BEST(ms, rhd_composite_forward(ctx, pred, A, depth, used, sigma, rgb, dl, dl, rays, NULL, NULL, R, M, &cfg));
        add_row("comp_fwd", "composite fwd", "8192 rays x 64", ms);
        BEST(ms, rhd_composite_backward(ctx, dsigma, drgb, gp, NULL, sigma, rgb, dl, rays, R, M, &cfg));
        add_row("comp_bwd", "composite bwd", "8192 rays x 64", ms);
        void *bufs[] = {rays, sigma, rgb, dl, gp, pred, A, depth, used, dsigma, drgb};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) rhd_buf_free(ctx, bufs[i]);
        free(h_rays), free(h_sigma), free(h_rgb), free(h_dl), free(h_gp);
    }

    /* PyTorch on the same shapes: lines "<key> <ms>" */
    const char *py = getenv("RHD_PY"), *root = getenv("RHD_ROOT");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s/tests/ref/bench_render.py %d", py && *py ? py : "python3", root && *root ? root : ".",
             reps);
    FILE *f = popen(cmd, "r");
    char line[256], key[64];
    double t, tc;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "%63s %lf %lf", key, &t, &tc) == 3)
            for (int i = 0; i < nrows; i++)
                if (strcmp(rows[i].key, key) == 0) rows[i].torch = t, rows[i].torch_cpu = tc;
    int st = f ? pclose(f) : -1;
    if (st != 0) fprintf(stderr, "bench_render: %s exited with status %d\n", cmd, st);

    printf("%-16s | %-28s | %9s | %9s | %10s || %12s | %12s\n", "op", "shape", "ours ms", "torch ms", "torch/ours",
           "ours cpu ms", "torch cpu ms");
    for (int i = 0; i < nrows; i++) {
        if (rows[i].torch > 0)
            printf("%-16s | %-28s | %9.2f | %9.2f | %10.2f || %12.1f | %12.1f\n", rows[i].op, rows[i].shape, rows[i].ours,
                   rows[i].torch, rows[i].torch / rows[i].ours, rows[i].ours_cpu, rows[i].torch_cpu);
        else
            printf("%-16s | %-28s | %9.2f | %9s | %10s || %12.1f | %12s\n", rows[i].op, rows[i].shape, rows[i].ours, "-",
                   "-", rows[i].ours_cpu, "-");
    }
    rhd_ctx_close(ctx);
    return st == 0 ? 0 : 1;
}
