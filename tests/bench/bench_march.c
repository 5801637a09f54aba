/* tests/bench/bench_march.c: the ray-marching core at the fitting sizes against the NumPy
 * reference.
 *
 * Times (best of RHD_BENCH_REPS runs, default 3, after one warm-up):
 *   - the training march (count + capacity + write, force_all_rays) of 8192 random pixels of a
 *     512x512 view (spiral frame 0) through a 256^3 grid with a sphere-like occupancy;
 *   - one full grid update: begin + query generation (16.7M jittered points), then apply + end
 *     (EMA-max, mean density, bitfield), the decoder's densities given;
 *   - one partial update (occupied list, winners, 8.4M queries, apply, end);
 *   - mark_untrained with 300 cameras.
 * tests/ref/bench_march.py times the reference of tests/ref/ref_march.py (NumPy, single
 * threaded where NumPy is; torch.set_num_threads($RHD_BENCH_THREADS) is set but NumPy does not
 * use it). That reference is slow, so it runs smaller cases and scales them linearly, as the
 * shape column says. Our side runs on the CPU (OMP_NUM_THREADS) or on the CUDA backend with
 * RHD_BENCH_DEVICE=cuda (synchronised before the clock stops).
 * Prints one row per op: op | shape | ours ms | ref ms | ref/ours (tests/bench/bench.h). */
#include "bench.h"
#include "kernels/march.h"
#include "kernels/occgrid.h"
#include "kernels/rays.h"
#include "common/cameras_path.h"

/* The bench density: a ball of radius 0.45 at (0.1, 0, -0.05), peak 40 (as ref_march.py). */
static void sphere(float *sigma, const float *xyz, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double x = xyz[3 * i] - 0.1, y = xyz[3 * i + 1], z = xyz[3 * i + 2] + 0.05;
        double r = sqrt(x * x + y * y + z * z);
        sigma[i] = (float)(40 * fmax(0.0, 1 - r / 0.45));
    }
}

/* One grid update with the sphere's densities (computed on the host, untimed): *tq the query
 * generation, *ta apply + end, in ms. */
static void grid_update(rhd_ctx *ctx, rhd_occgrid *g, float *xyz, int32_t *cells, float *sigma, float *h_xyz,
                        float *h_sigma, double *tq, double *ta) {
    rhd_ctx_sync(ctx);
    double t0 = bench_wall_ms();
    int64_t nq = rhd_occgrid_begin_update(ctx, g, 7);
    rhd_occgrid_queries(ctx, g, xyz, cells, 0, nq);
    rhd_ctx_sync(ctx);
    double t1 = bench_wall_ms();
    rhd_buf_download(ctx, h_xyz, xyz, sizeof(float) * 3 * (size_t)nq);
    sphere(h_sigma, h_xyz, nq);
    rhd_buf_upload(ctx, sigma, h_sigma, sizeof(float) * (size_t)nq);
    rhd_ctx_sync(ctx);
    double t2 = bench_wall_ms();
    rhd_occgrid_apply(ctx, g, sigma, cells, 0, nq);
    rhd_occgrid_end_update(ctx, g);
    rhd_ctx_sync(ctx);
    *tq = t1 - t0, *ta = bench_wall_ms() - t2;
}

int main(void) {
    rhd_ctx *ctx = bench_open("bench_march");
    const int reps = bench.reps;
    bench_table tab = {.ref_name = "ref"};
    rhd_err e;
    printf("# ours: %s, best of %d after a warm-up\n", ctx->name, reps);
    double ms;
    const int H = 256;

    /* a 256^3 grid after 16 full updates on the sphere density (host side, for the march) */
    rhd_occgrid_cfg gc = rhd_occgrid_cfg_default();
    rhd_occgrid g;
    if (rhd_occgrid_init(ctx, &g, &gc, &e)) rhd_die_err(&e);
    int64_t n_cells = g.n_cells;
    float *xyz = rhd_buf_alloc(ctx, sizeof(float) * 3 * (size_t)n_cells);
    float *sigma = rhd_buf_alloc(ctx, sizeof(float) * (size_t)n_cells);
    int32_t *cells = rhd_buf_alloc(ctx, sizeof(int32_t) * (size_t)n_cells);
    float *h_xyz = malloc(sizeof(float) * 3 * (size_t)n_cells), *h_sigma = malloc(sizeof(float) * (size_t)n_cells);

    /* full update: queries, then apply + end (the densities computed untimed in between) */
    {
        double tq = 1e30, ta = 1e30;
        for (int k = 0; k <= reps; k++) {
            rhd_occgrid_reset(ctx, &g);
            double q, ap;
            grid_update(ctx, &g, xyz, cells, sigma, h_xyz, h_sigma, &q, &ap);
            if (k > 0) tq = fmin(tq, q), ta = fmin(ta, ap);
        }
        bench_add_cpu(&tab, "grid_full_q", "grid full: queries", "256^3 (ref: 128^3 x8)", tq, -1);
        bench_add_cpu(&tab, "grid_full_a", "grid full: apply+end", "256^3 (ref: 128^3 x8)", ta, -1);
        bench_add_cpu(&tab, "grid_full", "grid full update", "256^3 (ref: 128^3 x8)", tq + ta, -1);
    }
    /* 15 more full updates so that the grid is warm (untimed), then a partial update */
    for (int k = 0; k < 15; k++) {
        double q, ap;
        grid_update(ctx, &g, xyz, cells, sigma, h_xyz, h_sigma, &q, &ap);
    }
    {
        float *grid_save = malloc(sizeof(float) * (size_t)n_cells);
        rhd_buf_download(ctx, grid_save, g.density, sizeof(float) * (size_t)n_cells);
        int iter_save = g.iter_density;
        double tp = 1e30;
        for (int k = 0; k <= reps; k++) {
            rhd_buf_upload(ctx, g.density, grid_save, sizeof(float) * (size_t)n_cells);
            g.iter_density = iter_save;
            double q, ap;
            grid_update(ctx, &g, xyz, cells, sigma, h_xyz, h_sigma, &q, &ap);
            if (k > 0) tp = fmin(tp, q + ap);
        }
        bench_add_cpu(&tab, "grid_partial", "grid partial update", "256^3, 2x4.2M q (ref: 128^3 x8)", tp, -1);
        rhd_buf_upload(ctx, g.density, grid_save, sizeof(float) * (size_t)n_cells);
        g.iter_density = iter_save;
        free(grid_save);
    }
    uint8_t *h_bits = malloc((size_t)n_cells / 8);
    rhd_buf_download(ctx, h_bits, g.bitfield, (size_t)n_cells / 8);
    int64_t occ = 0;
    for (int64_t i = 0; i < n_cells / 8; i++) occ += __builtin_popcount(h_bits[i]);
    printf("# grid: %lld of %lld cells occupied (%.2f%%), threshold %.4g\n", (long long)occ, (long long)n_cells,
           100.0 * occ / n_cells, rhd_occgrid_threshold(&g));
    /* save the bitfield for the reference march */
    const char *dir = th_subdir("bench_march");
    th_save_t(dir, "bits", RHD_U8, h_bits, 1, (int64_t[]){n_cells / 8});

    /* training march: 8192 random pixels of a 512x512 view */
    float pose[12];
    if (rhd_camera_spiral(pose, 1, 1.0, RHD_SPIRAL_PROPER, &e)) rhd_die_err(&e);
    rhd_intrinsics in = {711.1f, 711.1f, 256.f, 256.f};
    const int64_t N = 8192;
    int32_t *pix = rhd_buf_alloc(ctx, sizeof(int32_t) * N), *rays = rhd_buf_alloc(ctx, sizeof(int32_t) * 2 * N);
    float *o = rhd_buf_alloc(ctx, sizeof(float) * 3 * N), *d = rhd_buf_alloc(ctx, sizeof(float) * 3 * N);
    float *nr = rhd_buf_alloc(ctx, sizeof(float) * N), *fr = rhd_buf_alloc(ctx, sizeof(float) * N);
    rhd_rays_random_pixels(ctx, pix, N, 512, 512, 1, RHD_STREAM(RHD_STREAM_RAYS, 0));
    rhd_rays_generate(ctx, o, d, pix, pose, in, 512, 0, N);
    rhd_rays_near_far(ctx, nr, fr, o, d, N, 1.f, 0.2f);
    rhd_march_cfg mc = rhd_march_cfg_default();
    mc.H = H, mc.perturb = 1, mc.seed = 1;
    int64_t total = rhd_march_train_count(ctx, rays, o, d, nr, fr, g.bitfield, N, &mc);
    float *sx = rhd_buf_alloc(ctx, sizeof(float) * 3 * (size_t)total), *sd = rhd_buf_alloc(ctx, sizeof(float) * 3 * (size_t)total);
    float *s0 = rhd_buf_alloc(ctx, sizeof(float) * (size_t)total), *s1 = rhd_buf_alloc(ctx, sizeof(float) * (size_t)total);
    int64_t kept = 0;
    BENCH_BEST(ms, {
        int64_t t_ = rhd_march_train_count(ctx, rays, o, d, nr, fr, g.bitfield, N, &mc);
        kept = rhd_march_train_write(ctx, sx, sd, s0, s1, rays, o, d, nr, fr, g.bitfield, N,
                                     rhd_march_capacity(t_, 0, 1), &mc);
    });
    printf("# training march: %lld samples from %lld rays (%.1f per ray)\n", (long long)kept, (long long)N,
           (double)kept / N);
    bench_add(&tab, "march_train", "march train (2 passes)", "8192 rays, 256^3 (ref: 64 rays x128)", ms);
    {
        float *h_o = malloc(sizeof(float) * 3 * N), *h_d = malloc(sizeof(float) * 3 * N);
        rhd_buf_download(ctx, h_o, o, sizeof(float) * 3 * N);
        rhd_buf_download(ctx, h_d, d, sizeof(float) * 3 * N);
        th_save(dir, "o", h_o, 2, (int64_t[]){N, 3});
        th_save(dir, "d", h_d, 2, (int64_t[]){N, 3});
        free(h_o), free(h_d);
    }

    /* mark_untrained with 300 cameras on orbits at five elevations */
    {
        float *poses = malloc(sizeof(float) * 12 * 300);
        double target[3] = {0, 0, 0};
        for (int k = 0; k < 5; k++)
            if (rhd_camera_orbit(poses + 12 * 60 * k, 60, 2.5, -30 + 15 * k, target, &e)) rhd_die_err(&e);
        th_save(dir, "poses", poses, 2, (int64_t[]){300, 12});
        BENCH_BEST(ms, { rhd_occgrid_reset(ctx, &g); rhd_occgrid_mark_untrained(ctx, &g, poses, 300, in); });
        bench_add(&tab, "mark", "mark_untrained 300 cams", "256^3 (ref: 64^3 x64)", ms);
        free(poses);
    }

    /* the reference: lines "<key> <ms>" */
    int st = bench_ref(&tab, "bench_march.py", "%s %d", dir, reps);
    bench_print(&tab);
    void *bufs[] = {xyz, sigma, cells, pix, rays, o, d, nr, fr, sx, sd, s0, s1};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) rhd_buf_free(ctx, bufs[i]);
    free(h_xyz), free(h_sigma), free(h_bits);
    rhd_occgrid_free(ctx, &g);
    bench_close();
    return st == 0 ? 0 : 1;
}
