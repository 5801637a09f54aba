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
#include "bench.h"
#include "kernels/triplane.h"
#include "kernels/freq_encode.h"
#include "kernels/composite.h"
#include "kernels/losses.h"
#include "kernels/optim.h"

int main(void) {
    rhd_ctx *ctx = bench_open("bench_render");
    bench_table tab = {.ref_name = "torch"};
    printf("# ours: %s, best of %d after a warm-up\n", ctx->name, bench.reps);
    double ms;

    /* triplane sampling: [3,32,512,512], 1M points in [-1,1]^3 */
    {
        const int C = 32, R = 512;
        const int64_t N = 1 << 20, np = 3LL * C * R * R;
        float *h_planes = th_randn(np, 0.5f), *h_points = th_randu(3 * N, -1.f, 1.f), *h_g = th_randn(N * C, 1.f);
        float *planes = bench_put(h_planes, sizeof(float) * np), *points = bench_put(h_points, sizeof(float) * 3 * N);
        float *dfeats = bench_put(h_g, sizeof(float) * N * C);
        float *feats = rhd_buf_alloc(ctx, sizeof(float) * N * C), *dplanes = rhd_buf_alloc(ctx, sizeof(float) * np);
        rhd_buf_zero(ctx, dplanes, sizeof(float) * np);
        BENCH_BEST(ms, rhd_triplane_forward(ctx, feats, points, planes, N, C, R, 0, RHD_PLANE_MEAN, NULL));
        bench_add(&tab, "triplane_fwd", "triplane fwd", "[3,32,512,512] 1M random", ms);
        BENCH_BEST(ms, rhd_triplane_backward(ctx, dplanes, dfeats, points, planes, N, C, R, 0, RHD_PLANE_MEAN, NULL));
        bench_add(&tab, "triplane_bwd", "triplane bwd", "[3,32,512,512] 1M random", ms);
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
        BENCH_BEST(ms, rhd_triplane_forward(ctx, feats, points, planes, N, C, R, 0, RHD_PLANE_MEAN, NULL));
        bench_add(&tab, "triplane_fwd_rays", "triplane fwd", "[3,32,512,512] 8192x128 rays", ms);
        BENCH_BEST(ms, rhd_triplane_backward(ctx, dplanes, dfeats, points, planes, N, C, R, 0, RHD_PLANE_MEAN, NULL));
        bench_add(&tab, "triplane_bwd_rays", "triplane bwd", "[3,32,512,512] 8192x128 rays", ms);
        /* rhd-fit --plane-agg offset-product: the forward keeps the 3 samples for the backward */
        float *sp = rhd_buf_alloc(ctx, sizeof(float) * 3 * N * C);
        BENCH_BEST(ms, rhd_triplane_forward(ctx, feats, points, planes, N, C, R, 0, RHD_PLANE_OFFSET_PRODUCT, sp));
        bench_add(&tab, "triplane_fwd_op_rays", "triplane fwd offset-product", "[3,32,512,512] 8192x128 rays", ms);
        BENCH_BEST(ms, rhd_triplane_backward(ctx, dplanes, dfeats, points, planes, N, C, R, 0, RHD_PLANE_OFFSET_PRODUCT,
                                             sp));
        bench_add(&tab, "triplane_bwd_op_rays", "triplane bwd offset-product", "[3,32,512,512] 8192x128 rays", ms);
        rhd_buf_free(ctx, sp);
        free(h_dir);
        BENCH_BEST(ms, rhd_loss_triplane_l1(ctx, dplanes, planes, C, R, 1e-4f, 1);
             rhd_loss_triplane_tv(ctx, dplanes, planes, C, R, 2e-2f, 1));
        bench_add(&tab, "reg", "L1+TV loss+grad", "[3,32,512,512] clamped", ms);
        float *m = rhd_buf_alloc(ctx, sizeof(float) * np), *v = rhd_buf_alloc(ctx, sizeof(float) * np);
        rhd_buf_zero(ctx, m, sizeof(float) * np), rhd_buf_zero(ctx, v, sizeof(float) * np);
        rhd_adam_cfg cfg = {2e-2, 0.9, 0.99, 1e-8, 0.0, 0};
        int64_t step = 0;
        BENCH_BEST(ms, rhd_adam_step(ctx, planes, m, v, dplanes, np, &cfg, ++step));
        bench_add(&tab, "adam", "adam step", "25.2M params", ms);
        void *bufs[] = {planes, points, dfeats, feats, dplanes, m, v};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) rhd_buf_free(ctx, bufs[i]);
        free(h_planes), free(h_points), free(h_g);
    }

    /* frequency encoding: 1M x 35 inputs, degree 2 -> 1M x 175 */
    {
        const int64_t N = 1 << 20;
        const int D = 35, Do = rhd_freq_encode_dim(D, 2);
        float *h_x = th_randu(N * D, -1.f, 1.f), *h_dy = th_randn(N * Do, 1.f);
        float *x = bench_put(h_x, sizeof(float) * N * D), *dy = bench_put(h_dy, sizeof(float) * N * Do);
        float *y = rhd_buf_alloc(ctx, sizeof(float) * N * Do), *dx = rhd_buf_alloc(ctx, sizeof(float) * N * D);
        BENCH_BEST(ms, rhd_freq_encode_forward(ctx, y, x, N, D, 2));
        bench_add(&tab, "freq_fwd", "freq_encode fwd", "1M x 35 -> 175", ms);
        BENCH_BEST(ms, rhd_freq_encode_backward(ctx, dx, dy, x, N, D, 2));
        bench_add(&tab, "freq_bwd", "freq_encode bwd", "1M x 35 -> 175", ms);
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
        int32_t *rays = bench_put(h_rays, sizeof(int32_t) * 2 * R);
        float *sigma = bench_put(h_sigma, sizeof(float) * M), *rgb = bench_put(h_rgb, sizeof(float) * 3 * M);
        float *dl = bench_put(h_dl, sizeof(float) * M), *gp = bench_put(h_gp, sizeof(float) * 3 * R);
        float *pred = rhd_buf_alloc(ctx, sizeof(float) * 3 * R), *A = rhd_buf_alloc(ctx, sizeof(float) * R);
        float *depth = rhd_buf_alloc(ctx, sizeof(float) * R);
        int32_t *used = rhd_buf_alloc(ctx, sizeof(int32_t) * R);
        float *dsigma = rhd_buf_alloc(ctx, sizeof(float) * M), *drgb = rhd_buf_alloc(ctx, sizeof(float) * 3 * M);
        rhd_composite_cfg cfg = rhd_composite_cfg_default();
        BENCH_BEST(ms, rhd_composite_forward(ctx, pred, A, depth, used, sigma, rgb, dl, dl, rays, NULL, NULL, R, M, &cfg));
        bench_add(&tab, "comp_fwd", "composite fwd", "8192 rays x 64", ms);
        BENCH_BEST(ms, rhd_composite_backward(ctx, dsigma, drgb, gp, NULL, sigma, rgb, dl, rays, R, M, &cfg));
        bench_add(&tab, "comp_bwd", "composite bwd", "8192 rays x 64", ms);
        void *bufs[] = {rays, sigma, rgb, dl, gp, pred, A, depth, used, dsigma, drgb};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) rhd_buf_free(ctx, bufs[i]);
        free(h_rays), free(h_sigma), free(h_rgb), free(h_dl), free(h_gp);
    }

    /* PyTorch on the same shapes: lines "<key> <wall ms> <cpu ms>" */
    int st = bench_ref(&tab, "bench_render.py", "%d", bench.reps);
    bench_print(&tab);
    bench_close();
    return st == 0 ? 0 : 1;
}
