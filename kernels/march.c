/* kernels/march.c: CPU reference of the training and inference marches (contract in march.h) and
 * the backend dispatch. One ray per iteration; offsets are prefix sums in ray order. */
#include "kernels/march.h"
#include "common/err.h"
#include <string.h>

int64_t rhd_march_capacity(int64_t total, int64_t mean_count, int force_all_rays) {
    if (force_all_rays || mean_count <= 0) return total;
    return mean_count + 128 - mean_count % 128;
}

static void check_cfg(const rhd_march_cfg *c) {
    RHD_ASSERT(c->H >= 2 && c->H <= 1024 && (c->H & (c->H - 1)) == 0);
    RHD_ASSERT(c->C >= 1 && c->C <= RHD_OCC_MAX_CASCADES && c->max_steps >= 1 && c->bound > 0);
}

int64_t rhd_march_train_count(rhd_ctx *ctx, int32_t *rays, const float *rays_o, const float *rays_d,
                              const float *nears, const float *fars, const uint8_t *bitfield, int64_t N,
                              const rhd_march_cfg *cfg) {
    check_cfg(cfg);
    RHD_ASSERT(N >= 0 && N * (int64_t)cfg->max_steps < ((int64_t)1 << 31));
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA)
        return rhd_march_train_count_cuda(ctx, rays, rays_o, rays_d, nears, fars, bitfield, N, *cfg);
#endif
    rhd_march_k k = rhd_march_consts(cfg);
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t r = 0; r < N; r++) {
        float t = rhd_march_t0(cfg, &k, nears[r], r);
        rays[2 * r + 1] = rhd_march_ray(NULL, NULL, NULL, NULL, &t, fars[r], cfg->max_steps, rays_o + 3 * r,
                                        rays_d + 3 * r, bitfield, &k);
    }
    int64_t off = 0;
    for (int64_t r = 0; r < N; r++) {
        rays[2 * r] = (int32_t)off;
        off += rays[2 * r + 1];
    }
    return off;
}

int64_t rhd_march_train_write(rhd_ctx *ctx, float *xyz, float *dirs, float *delta0, float *delta1, int32_t *rays,
                              const float *rays_o, const float *rays_d, const float *nears, const float *fars,
                              const uint8_t *bitfield, int64_t N, int64_t M, const rhd_march_cfg *cfg) {
    check_cfg(cfg);
    RHD_ASSERT(N >= 0 && M >= 0);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA)
        return rhd_march_train_write_cuda(ctx, xyz, dirs, delta0, delta1, rays, rays_o, rays_d, nears, fars, bitfield,
                                          N, M, *cfg);
#endif
    rhd_march_k k = rhd_march_consts(cfg);
    /* the kept rays are a prefix of the ray order */
    int64_t n_keep = 0, kept = 0;
    while (n_keep < N && (int64_t)rays[2 * n_keep] + rays[2 * n_keep + 1] <= M) {
        RHD_ASSERT(rays[2 * n_keep] == kept);
        kept += rays[2 * n_keep + 1];
        n_keep++;
    }
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t r = 0; r < n_keep; r++) {
        int64_t off = rays[2 * r];
        int cnt = rays[2 * r + 1];
        float t = rhd_march_t0(cfg, &k, nears[r], r);
        int got = rhd_march_ray(xyz + 3 * off, dirs + 3 * off, delta0 + off, delta1 + off, &t, fars[r], cnt,
                                rays_o + 3 * r, rays_d + 3 * r, bitfield, &k);
        RHD_ASSERT(got == cnt);
    }
    for (int64_t r = n_keep; r < N; r++) rays[2 * r] = (int32_t)kept, rays[2 * r + 1] = 0;
    if (M > kept) {
        size_t n = (size_t)(M - kept);
        memset(xyz + 3 * kept, 0, 3 * n * sizeof(float));
        memset(dirs + 3 * kept, 0, 3 * n * sizeof(float));
        memset(delta0 + kept, 0, n * sizeof(float));
        memset(delta1 + kept, 0, n * sizeof(float));
    }
    return kept;
}

void rhd_march_infer(rhd_ctx *ctx, float *xyz, float *dirs, float *delta0, float *delta1, const int32_t *alive,
                     const float *t_cur, const float *rays_o, const float *rays_d, const float *fars,
                     const uint8_t *bitfield, int64_t n_alive, int n_step, int first, const rhd_march_cfg *cfg) {
    check_cfg(cfg);
    RHD_ASSERT(n_alive >= 0 && n_step >= 1);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_march_infer_cuda(ctx, xyz, dirs, delta0, delta1, alive, t_cur, rays_o, rays_d, fars, bitfield, n_alive,
                             n_step, first, *cfg);
        return;
    }
#endif
    rhd_march_k k = rhd_march_consts(cfg);
    rhd_march_cfg c = *cfg;
    c.perturb = cfg->perturb && first;
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t i = 0; i < n_alive; i++) {
        int64_t r = alive[i], s = i * n_step;
        memset(xyz + 3 * s, 0, 3 * sizeof(float) * (size_t)n_step);
        memset(dirs + 3 * s, 0, 3 * sizeof(float) * (size_t)n_step);
        memset(delta0 + s, 0, sizeof(float) * (size_t)n_step);
        memset(delta1 + s, 0, sizeof(float) * (size_t)n_step);
        float t = rhd_march_t0(&c, &k, t_cur[r], r);
        rhd_march_ray(xyz + 3 * s, dirs + 3 * s, delta0 + s, delta1 + s, &t, fars[r], n_step, rays_o + 3 * r,
                      rays_d + 3 * r, bitfield, &k);
    }
}

void rhd_march_infer_begin(rhd_ctx *ctx, int32_t *alive, float *t_cur, const float *nears, int64_t N) {
    RHD_ASSERT(N >= 0);
    if (N == 0) return;
    rhd_buf_copy(ctx, t_cur, nears, sizeof(float) * (size_t)N);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_march_iota_cuda(ctx, alive, N);
        return;
    }
#endif
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) alive[i] = (int32_t)i;
}

int64_t rhd_march_infer_advance(rhd_ctx *ctx, int32_t *alive, float *t_cur, const uint8_t *stop,
                                const float *delta0, const float *delta1, int64_t n_alive, int n_step) {
    RHD_ASSERT(n_alive >= 0 && n_step >= 1);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA)
        return rhd_march_infer_advance_cuda(ctx, alive, t_cur, stop, delta0, delta1, n_alive, n_step);
#endif
    int64_t m = 0;
    for (int64_t i = 0; i < n_alive; i++) {
        int keep = !stop || !stop[i];
        const float *d0 = delta0 + i * n_step, *d1 = delta1 + i * n_step;
        for (int s = 0; s < n_step && keep; s++) keep = d0[s] != 0.f;
        if (!keep) continue;
        int32_t r = alive[i];
        float t = t_cur[r];
        for (int s = 0; s < n_step; s++) t = t + d1[s];
        t_cur[r] = t;
        alive[m++] = r;
    }
    return m;
}
