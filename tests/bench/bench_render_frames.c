/* tests/bench/bench_render_frames.c: frames per second of a full-view render (rhd-render's work)
 * against PyTorch decoding and compositing the same samples.
 *
 * Workload: the default decoder (C = 32, hidden 128, geo 128) on a [3,32,R,R] triplane (R = 256,
 * or $RHD_BENCH_TRIPLANE_RES) that holds a fitted-looking density: an avatar-sized ellipsoid
 * (centre (0,0.3,0), semi-axes 0.4/0.6/0.4, about a quarter of the pixels as in the data set's
 * views) whose surface rises from ~10 to ~1e3 over a few hundredths, so rays stop a few samples
 * past the surface as on a fitted avatar, with noise in the other channels for the colour. The
 * occupancy grid (256^3) is warmed up with $RHD_BENCH_WARMUP (1) full updates, the renderer is the
 * test mode of rhd-render (max_steps 1024, T_thresh 1e-4, no clamp, white background), the camera
 * the original's spiral frame 0 with the data set's 50 mm / 36 mm lens, at 128x128 and 512x512.
 *
 * Ours: rhd_renderer_render_view (inference march, decoder, compositing), best of
 * RHD_BENCH_REPS (3) after a warm-up (tests/bench/bench.h). The reference workload: the march is
 * replayed with the same kernels to record every sample slot the decoder evaluates (including the
 * slots of rays that stop within an iteration), checked to give the same image bit for bit, and
 * handed per ray to tests/ref/bench_render_frames.py, which decodes exactly those samples with the
 * same weights in PyTorch (grid_sample, F.linear, fp32, chunks of 128K, torch.set_num_threads
 * ($RHD_BENCH_THREADS)) and composites them with the same early stop: equal FLOPs on both sides.
 * The march itself is not part of the PyTorch time (it has no CPU march; ours includes it).
 * Prints op | shape | ours ms | torch ms | torch/ours, then frames/s, samples/s and the decoder's
 * GFLOP/s (rhd_decoder_flops_per_sample) on both sides.
 *
 * RHD_BENCH_DEVICE=cuda times our CUDA backend (synchronising before the clock stops; the replay
 * for the reference runs on the CPU from the CUDA grid's bitfield); the decoder then runs its fused
 * inference kernel (RHD_NO_FUSED=1: the per-layer path). If the decoder cannot be set up on the
 * device the benchmark prints a skip line and exits 0. */
#include "bench.h"
#include "common/cameras_path.h"
#include "common/models/decoder.h"
#include "common/models/renderer.h"
#include <math.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* The density blob: f = 1 - q, q = sum_a ((x_a - c_a)/s_a)^2, written as the mean of the three
 * planes (each axis appears in two planes: a plane holds 1 - 3/2 * its two terms). */
static const double k_centre[3] = {0.0, 0.3, 0.0}, k_semi[3] = {0.4, 0.6, 0.4};

static double blob_term(int axis, double a) {
    double u = (a - k_centre[axis]) / k_semi[axis];
    return u * u;
}

/* planes [3,C,R,R]: colour and the other density channels noise N(0, 0.3); density channel 0
 * (channel 3C/4) the blob. Plane axes (kernels/triplane.h): 0 = (x,y), 1 = (x,z), 2 = (y,z),
 * the first coordinate along the width. */
static float *make_planes(int C, int R) {
    int64_t np = 3LL * C * R * R;
    float *p = malloc(sizeof(float) * (size_t)np);
    rhd_rng_fill_normal(p, np, 11, RHD_STREAM(RHD_STREAM_TEST, 77), 0, 0.f, 0.3f);
    static const int ax[3][2] = {{0, 1}, {0, 2}, {1, 2}};
    int cd = 3 * C / 4;
    for (int pl = 0; pl < 3; pl++)
        for (int i = 0; i < R; i++)
            for (int j = 0; j < R; j++) {
                double a = -1 + 2.0 * j / (R - 1), b = -1 + 2.0 * i / (R - 1);
                double v = 1 - 1.5 * (blob_term(ax[pl][0], a) + blob_term(ax[pl][1], b));
                p[(((int64_t)pl * C + cd) * R + i) * R + j] = (float)v;
            }
    return p;
}

/* The decoder: nn.Linear's init, then sigma = exp(12 softplus(2 f) - 6) from density channel 0
 * alone (row 0 of sigma_net.0 and sigma_net.2), so the density is the blob: ~10 at the surface,
 * ~1e3 0.1 inside, ~0.003 far outside. host [P.total] receives the parameters. */
static void make_decoder_params(rhd_decoder *dec, float *host) {
    rhd_decoder_init_weights(dec, 1);
    rhd_buf_download(dec->P.ctx, host, dec->P.data, sizeof(float) * (size_t)dec->P.total);
    float *s0w = host + dec->P.info[RHD_DEC_S0W].offset, *s0b = host + dec->P.info[RHD_DEC_S0B].offset;
    float *s2w = host + dec->P.info[RHD_DEC_S2W].offset, *s2b = host + dec->P.info[RHD_DEC_S2B].offset;
    int ed = dec->Ed, hid = dec->cfg.hidden;
    for (int k = 0; k < ed; k++) s0w[k] = 0.f;
    s0w[0] = 2.f, s0b[0] = 0.f; /* column 0: the identity block of density channel 0 */
    for (int k = 0; k < hid; k++) s2w[k] = 0.f;
    s2w[0] = 12.f, s2b[0] = -6.f;
    rhd_buf_upload(dec->P.ctx, dec->P.data, host, sizeof(float) * (size_t)dec->P.total);
}

/* The samples one frame decodes, per ray in march order: xyz [M,3], delta0 [M]; rays [N,2]
 * (offset, count); dirs [N,3]; image [N,3] of the replay. */
typedef struct frame_samples {
    int64_t N, M, composited, hit_rays, iterations;
    float *xyz, *d0, *dirs, *img;
    int32_t *rays;
} frame_samples;

static void frame_samples_free_arrays(frame_samples *f) {
    free(f->xyz), free(f->d0), free(f->dirs), free(f->img), free(f->rays);
    f->xyz = f->d0 = f->dirs = f->img = NULL, f->rays = NULL;
}

static void *xrealloc(void *p, size_t bytes) {
    void *q = realloc(p, bytes ? bytes : 1);
    RHD_ASSERT(q);
    return q;
}

/* Replay rhd_renderer_render_view on the CPU context of r (the same kernels and loop, renderer.c)
 * from the bitfield `bits`, recording every slot the decoder evaluates. */
static void replay_frame(frame_samples *f, rhd_renderer *r, const uint8_t *bits, const float *planes, int R,
                         const float *c2w, rhd_intrinsics intr, int W, int H) {
    rhd_ctx *ctx = r->ctx;
    const rhd_render_cfg *rc = &r->cfg;
    int64_t N = (int64_t)W * H;
    memset(f, 0, sizeof *f);
    f->N = N;
    float *o = malloc(sizeof(float) * 3 * N), *d = malloc(sizeof(float) * 3 * N);
    float *nears = malloc(sizeof(float) * N), *fars = malloc(sizeof(float) * N), *tcur = malloc(sizeof(float) * N);
    float *wsum = calloc((size_t)N, sizeof(float));
    int32_t *alive = malloc(sizeof(int32_t) * N);
    uint8_t *stop = malloc((size_t)N);
    f->img = calloc((size_t)N * 3, sizeof(float));
    rhd_rays_generate(ctx, o, d, NULL, c2w, intr, W, 0, N);
    rhd_rays_near_far(ctx, nears, fars, o, d, N, rc->bound, rc->min_near);
    for (int64_t i = 0; i < N; i++) alive[i] = (int32_t)i, tcur[i] = nears[i];
    rhd_march_cfg mc = rhd_march_cfg_default();
    mc.bound = rc->bound, mc.H = rc->grid_size, mc.C = rhd_occgrid_cascades(rc->bound), mc.max_steps = rc->max_steps;
    mc.dt_gamma = rc->dt_gamma, mc.perturb = 0, mc.seed = 0, mc.stream = RHD_STREAM(RHD_STREAM_MARCH, 0);
    float s = 1.f / rc->bound;
    if (rc->double_norm) s /= rc->bound;
    /* every slot in iteration order: position, delta0 and its ray */
    int64_t cap = 0, M = 0;
    float *all_xyz = NULL, *all_d0 = NULL;
    int32_t *all_ray = NULL;
    float *xyz = NULL, *pts = NULL, *dirs = NULL, *d0 = NULL, *d1 = NULL, *sigma = NULL, *rgb = NULL;
    int64_t cap_step = 0;
    rhd_decoder_acts acts = {0};
    int64_t n_alive = N;
    for (int step = 0, first = 1; step < rc->max_steps && n_alive > 0; first = 0) {
        int n_step = rhd_march_infer_n_step(N, n_alive);
        int64_t m = n_alive * n_step;
        if (m > cap_step) {
            xyz = xrealloc(xyz, 12 * (size_t)m), pts = xrealloc(pts, 12 * (size_t)m), dirs = xrealloc(dirs, 12 * (size_t)m);
            d0 = xrealloc(d0, 4 * (size_t)m), d1 = xrealloc(d1, 4 * (size_t)m), sigma = xrealloc(sigma, 4 * (size_t)m);
            rgb = xrealloc(rgb, 12 * (size_t)m);
            cap_step = m;
        }
        rhd_march_infer(ctx, xyz, dirs, d0, d1, alive, tcur, o, d, fars, bits, n_alive, n_step, first, &mc);
        for (int64_t i = 0; i < 3 * m; i++) pts[i] = xyz[i] * s;
        rhd_decoder_forward(ctx, r->dec, &acts, sigma, rgb, pts, dirs, planes, R, 0, m);
        if (M + m > cap) {
            cap = 2 * (M + m);
            all_xyz = xrealloc(all_xyz, 12 * (size_t)cap), all_d0 = xrealloc(all_d0, 4 * (size_t)cap);
            all_ray = xrealloc(all_ray, 4 * (size_t)cap);
        }
        memcpy(all_xyz + 3 * M, xyz, 12 * (size_t)m), memcpy(all_d0 + M, d0, 4 * (size_t)m);
        for (int64_t i = 0; i < n_alive; i++)
            for (int k = 0; k < n_step; k++) all_ray[M + i * n_step + k] = alive[i];
        M += m;
        for (int64_t i = 0; i < n_alive; i++) { /* renderer.c's compositing, in the same order */
            int32_t ray = alive[i];
            uint8_t st = 0;
            for (int k = 0; k < n_step; k++) {
                int64_t q = i * n_step + k;
                if (d0[q] == 0.f) { st = 1; break; }
                float T = 1.f - wsum[ray];
                float alpha = 1.f - expf(-sigma[q] * d0[q]);
                float w = alpha * T;
                wsum[ray] += w;
                for (int c = 0; c < 3; c++) f->img[3 * ray + c] += w * rgb[3 * q + c];
                f->composited++;
                if (T < rc->T_thresh) { st = 1; break; }
            }
            stop[i] = st;
        }
        n_alive = rhd_march_infer_advance(ctx, alive, tcur, stop, d0, d1, n_alive, n_step);
        step += n_step;
        f->iterations++;
    }
    for (int64_t i = 0; i < N; i++) {
        for (int c = 0; c < 3; c++) f->img[3 * i + c] += (1.f - wsum[i]) * rc->bg[c];
        f->hit_rays += wsum[i] > 0.5f;
    }
    /* per ray, stable: the slots of ray 0, then ray 1, ... each in march order */
    f->M = M;
    f->rays = calloc((size_t)N * 2, sizeof(int32_t));
    for (int64_t q = 0; q < M; q++) f->rays[2 * all_ray[q] + 1]++;
    int64_t off = 0;
    for (int64_t i = 0; i < N; i++) f->rays[2 * i] = (int32_t)off, off += f->rays[2 * i + 1];
    int64_t *fill = calloc((size_t)N, sizeof(int64_t));
    f->xyz = malloc(12 * (size_t)(M ? M : 1)), f->d0 = malloc(4 * (size_t)(M ? M : 1));
    for (int64_t q = 0; q < M; q++) {
        int32_t ray = all_ray[q];
        int64_t dst = f->rays[2 * ray] + fill[ray]++;
        memcpy(f->xyz + 3 * dst, all_xyz + 3 * q, 12);
        f->d0[dst] = all_d0[q];
    }
    f->dirs = d;
    free(fill), free(all_xyz), free(all_d0), free(all_ray);
    free(xyz), free(pts), free(dirs), free(d0), free(d1), free(sigma), free(rgb);
    free(o), free(nears), free(fars), free(tcur), free(wsum), free(alive), free(stop);
    rhd_decoder_acts_free(&acts);
}

static int env_res(void) {
    int R = bench_env_int("RHD_BENCH_TRIPLANE_RES", 256);
    return R >= 16 ? R : 256;
}

int main(void) {
    rhd_ctx *ctx = bench_open("bench_render_frames");
    rhd_err e;
    const int C = 32, R = env_res(), warmup = bench_env_int("RHD_BENCH_WARMUP", 1);
    static const int sizes[] = {128, 512};
    const int n_sizes = 2;

    rhd_decoder_cfg dc;
    rhd_decoder_cfg_default(&dc);
    dc.C = C;
    rhd_decoder dec;
    if (rhd_decoder_init(&dec, &dc, ctx, 0, &e)) {
        printf("bench_render_frames: skip: %s (%s)\n", e.msg, ctx->name);
        bench_close();
        return 0;
    }
    float *host_params = malloc(sizeof(float) * (size_t)dec.P.total);
    make_decoder_params(&dec, host_params);
    double flops = rhd_decoder_flops_per_sample(&dec);
    int64_t np = 3LL * C * R * R;
    float *h_planes = make_planes(C, R), *planes = bench_put(h_planes, sizeof(float) * (size_t)np);

    rhd_render_cfg rc;
    rhd_render_cfg_default(&rc);
    rhd_renderer r;
    rhd_renderer_init(&r, ctx, &dec, &rc);
    rhd_occgrid_cfg gc = rhd_renderer_grid_cfg(&r);
    rhd_occgrid g;
    if (rhd_occgrid_init(ctx, &g, &gc, &e)) rhd_die_err(&e);
    double t0 = bench_wall_ms();
    rhd_triplane T = rhd_triplane_view(planes, C, R, 0, ctx);
    rhd_renderer_grid_warmup(&r, &g, &T, 1, warmup);
    rhd_ctx_sync(ctx);
    double t_grid = bench_wall_ms() - t0;
    size_t nbits = (size_t)g.n_cells / 8;
    uint8_t *bits = malloc(nbits);
    rhd_buf_download(ctx, bits, g.bitfield, nbits);
    int64_t occ = 0;
    for (size_t i = 0; i < nbits; i++) occ += __builtin_popcount(bits[i]);
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    printf("# ours: %s, %d threads, best of %d after a warm-up; decoder C=%d hidden %d geo %d, %.3g FLOPs per sample\n",
           ctx->name, threads, bench.reps, C, dc.hidden, dc.geo, flops);
    printf("# grid: %d^3 after %d full update(s) (%.2f s each), %lld cells occupied (%.2f%%), threshold %.3g\n",
           rc.grid_size, warmup, t_grid / 1e3 / (warmup ? warmup : 1), (long long)occ, 100.0 * occ / g.n_cells,
           rhd_occgrid_threshold(&g));

    /* the replay for the reference runs on the CPU */
    rhd_ctx *cpu = ctx;
    rhd_decoder dec_cpu_storage, *dec_cpu = &dec;
    if (ctx->backend != RHD_BACKEND_CPU) {
        if (!(cpu = rhd_ctx_open("cpu", &e))) rhd_die_err(&e);
        if (rhd_decoder_init(&dec_cpu_storage, &dc, cpu, 0, &e)) rhd_die_err(&e);
        dec_cpu = &dec_cpu_storage;
        rhd_buf_upload(cpu, dec_cpu->P.data, host_params, sizeof(float) * (size_t)dec.P.total);
    }
    rhd_renderer r_cpu;
    rhd_renderer_init(&r_cpu, cpu, dec_cpu, &rc);

    float pose[12];
    if (rhd_camera_spiral(pose, 1, rc.bound, RHD_SPIRAL_PROPER, &e)) rhd_die_err(&e);
    const char *dir = th_subdir("bench_render_frames");
    th_save(dir, "planes", h_planes, 4, (int64_t[]){3, C, R, R});
    for (int i = 0; i < dec.P.n; i++)
        th_save(dir, dec.P.info[i].name, host_params + dec.P.info[i].offset, dec.P.info[i].ndim, dec.P.info[i].shape);

    bench_table tab = {.ref_name = "torch"};
    frame_samples fs[2];
    int same[2];
    for (int k = 0; k < n_sizes; k++) {
        int S = sizes[k];
        int64_t N = (int64_t)S * S;
        /* the data set's lens (50 mm on a 36 mm sensor) at S pixels */
        rhd_intrinsics intr = {50.f / 36.f * S, 50.f / 36.f * S, S / 2.f, S / 2.f};
        float *out = rhd_buf_alloc(ctx, sizeof(float) * 3 * (size_t)N), *h_out = malloc(sizeof(float) * 3 * (size_t)N);
        double ms;
        rhd_render_camera cam = {pose, intr, S, S};
        BENCH_BEST(ms, rhd_renderer_render_view(&r, &g, &T, &cam, out));
        rhd_buf_download(ctx, h_out, out, sizeof(float) * 3 * (size_t)N);
        char key[32], op[32], shape[128];
        snprintf(key, sizeof key, "frame%d", S), snprintf(op, sizeof op, "render %dx%d", S, S);
        replay_frame(&fs[k], &r_cpu, bits, h_planes, R, pose, intr, S, S);
        same[k] = ctx->backend == RHD_BACKEND_CPU ? memcmp(fs[k].img, h_out, sizeof(float) * 3 * (size_t)N) == 0
                                                  : 1;
        snprintf(shape, sizeof shape, "[3,%d,%d,%d], %.3gM samples", C, R, R, fs[k].M / 1e6);
        bench_add(&tab, key, op, shape, ms);
        char name[64]; /* the reference's inputs, named by frame size */
        snprintf(name, sizeof name, "xyz_%d", S), th_save(dir, name, fs[k].xyz, 2, (int64_t[]){fs[k].M, 3});
        snprintf(name, sizeof name, "d0_%d", S), th_save(dir, name, fs[k].d0, 1, (int64_t[]){fs[k].M});
        snprintf(name, sizeof name, "dirs_%d", S), th_save(dir, name, fs[k].dirs, 2, (int64_t[]){N, 3});
        snprintf(name, sizeof name, "img_%d", S), th_save(dir, name, h_out, 2, (int64_t[]){N, 3});
        snprintf(name, sizeof name, "rays_%d", S), th_save_t(dir, name, RHD_I32, fs[k].rays, 2, (int64_t[]){N, 2});
        rhd_buf_free(ctx, out), free(h_out);
        frame_samples_free_arrays(&fs[k]); /* the counts stay */
    }
    /* our scratch (the decoder's activations at 512^2 take GBs) goes before PyTorch starts */
    rhd_renderer_free(&r_cpu);
    if (cpu != ctx) rhd_decoder_free(dec_cpu), rhd_ctx_close(cpu);
    rhd_renderer_free(&r);
    rhd_occgrid_free(ctx, &g);
    rhd_buf_free(ctx, planes);
    rhd_decoder_free(&dec);
    free(h_planes), free(host_params), free(bits);

    int st = bench_ref(&tab, "bench_render_frames.py", "%s %d %d %d %g", dir, sizes[0], sizes[1], bench.reps,
                       rc.T_thresh);
    bench_print(&tab);
    for (int k = 0; k < n_sizes; k++) {
        const bench_row *row = &tab.rows[k];
        const frame_samples *f = &fs[k];
        printf("%dx%d: %lld decoded samples in %lld march iterations (%lld composited; %lld of %lld rays hit, "
               "%.1f composited per hit ray); replay %s\n",
               sizes[k], sizes[k], (long long)f->M, (long long)f->iterations, (long long)f->composited,
               (long long)f->hit_rays, (long long)f->N, f->hit_rays ? (double)f->composited / f->hit_rays : 0.0,
               ctx->backend != RHD_BACKEND_CPU ? "on the CPU (not compared)"
               : same[k]                       ? "= render_view bit for bit"
                                               : "DIFFERS from render_view");
        printf("  ours:  %8.2f frames/s, %.3g samples/s, decoder %.1f GFLOP/s\n", 1e3 / row->ours, f->M / row->ours * 1e3,
               f->M * flops / row->ours / 1e6);
        if (row->ref > 0)
            printf("  torch: %8.2f frames/s, %.3g samples/s, decoder %.1f GFLOP/s (torch/ours %.2f)\n", 1e3 / row->ref,
                   f->M / row->ref * 1e3, f->M * flops / row->ref / 1e6, row->ref / row->ours);
    }
    int ok = st == 0;
    for (int k = 0; k < n_sizes; k++) ok &= same[k];
    bench_close();
    return ok ? 0 : 1;
}
