/* kernels/march.cu: CUDA training and inference marches (contract in march.h), one thread per
 * ray, running the same per-ray march as the CPU reference. Offsets and the alive-list
 * compaction are exclusive scans in ray order (cub), so the results are bit-identical to the CPU. */
#include "kernels/march.h"
#include "common/cuda_check.h"
#include <cub/cub.cuh>

static __global__ void count_kernel(int32_t *counts, const float *rays_o, const float *rays_d, const float *nears,
                                    const float *fars, const uint8_t *bits, int64_t N, rhd_march_cfg cfg) {
    rhd_march_k k = rhd_march_consts(&cfg);
    for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < N; r += (int64_t)gridDim.x * blockDim.x) {
        float t = rhd_march_t0(&cfg, &k, nears[r], r);
        counts[r] = rhd_march_ray(NULL, NULL, NULL, NULL, &t, fars[r], cfg.max_steps, rays_o + 3 * r, rays_d + 3 * r,
                                  bits, &k);
    }
}

static __global__ void pack_rays_kernel(int32_t *rays, const int32_t *counts, const int32_t *offsets, int64_t N) {
    for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < N; r += (int64_t)gridDim.x * blockDim.x)
        rays[2 * r] = offsets[r], rays[2 * r + 1] = counts[r];
}

/* kept = the offset of the first dropped ray (the only one with offset <= M < offset + count). */
static __global__ void find_kept_kernel(int32_t *kept, const int32_t *rays, int64_t N, int64_t M) {
    for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < N; r += (int64_t)gridDim.x * blockDim.x) {
        int64_t off = rays[2 * r], cnt = rays[2 * r + 1];
        if (off <= M && off + cnt > M) *kept = (int32_t)off;
    }
}

static __global__ void write_kernel(float *xyz, float *dirs, float *delta0, float *delta1, int32_t *rays,
                                    const int32_t *kept, const float *rays_o, const float *rays_d, const float *nears,
                                    const float *fars, const uint8_t *bits, int64_t N, int64_t M, rhd_march_cfg cfg) {
    rhd_march_k k = rhd_march_consts(&cfg);
    for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < N; r += (int64_t)gridDim.x * blockDim.x) {
        int64_t off = rays[2 * r];
        int cnt = rays[2 * r + 1];
        if (off + cnt > M) {
            rays[2 * r] = *kept, rays[2 * r + 1] = 0;
            continue;
        }
        float t = rhd_march_t0(&cfg, &k, nears[r], r);
        rhd_march_ray(xyz + 3 * off, dirs + 3 * off, delta0 + off, delta1 + off, &t, fars[r], cnt, rays_o + 3 * r,
                      rays_d + 3 * r, bits, &k);
    }
}

static __global__ void infer_kernel(float *xyz, float *dirs, float *delta0, float *delta1, const int32_t *alive,
                                    const float *t_cur, const float *rays_o, const float *rays_d, const float *fars,
                                    const uint8_t *bits, int64_t n_alive, int n_step, rhd_march_cfg cfg) {
    rhd_march_k k = rhd_march_consts(&cfg);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_alive; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = alive[i], s = i * n_step;
        for (int j = 0; j < n_step; j++) {
            xyz[3 * (s + j)] = xyz[3 * (s + j) + 1] = xyz[3 * (s + j) + 2] = 0.f;
            dirs[3 * (s + j)] = dirs[3 * (s + j) + 1] = dirs[3 * (s + j) + 2] = 0.f;
            delta0[s + j] = delta1[s + j] = 0.f;
        }
        float t = rhd_march_t0(&cfg, &k, t_cur[r], r);
        rhd_march_ray(xyz + 3 * s, dirs + 3 * s, delta0 + s, delta1 + s, &t, fars[r], n_step, rays_o + 3 * r,
                      rays_d + 3 * r, bits, &k);
    }
}

static __global__ void advance_kernel(int32_t *keep, float *t_cur, const int32_t *alive, const uint8_t *stop,
                                      const float *delta0, const float *delta1, int64_t n_alive, int n_step) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_alive; i += (int64_t)gridDim.x * blockDim.x) {
        int ok = !stop || !stop[i];
        const float *d0 = delta0 + i * n_step, *d1 = delta1 + i * n_step;
        for (int s = 0; s < n_step && ok; s++) ok = d0[s] != 0.f;
        keep[i] = ok;
        if (!ok) continue;
        int32_t r = alive[i];
        float t = t_cur[r];
        for (int s = 0; s < n_step; s++) t = __fadd_rn(t, d1[s]);
        t_cur[r] = t;
    }
}

static __global__ void compact_kernel(int32_t *out, const int32_t *alive, const int32_t *keep, const int32_t *pos,
                                      int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        if (keep[i]) out[pos[i]] = alive[i];
}

static size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

/* Exclusive scan of in[0..n) into out[0..n), with the total returned (synchronises). The callers carve
 * the int32 buffers and cub's storage out of the context workspace. */
static int64_t scan_total(rhd_ctx *ctx, int32_t *out, const int32_t *in, int64_t n, void *tmp, size_t tb) {
    cudaStream_t st = RHD_CUDA_STREAM(ctx);
    CUDA_CHECK(cub::DeviceScan::ExclusiveSum(tmp, tb, in, out, (int)n, st));
    int32_t last_out = 0, last_in = 0;
    CUDA_CHECK(cudaMemcpyAsync(&last_out, out + n - 1, sizeof(int32_t), cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaMemcpyAsync(&last_in, in + n - 1, sizeof(int32_t), cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    return (int64_t)last_out + last_in;
}

static size_t scan_bytes(int64_t n) {
    size_t tb = 0;
    CUDA_CHECK(cub::DeviceScan::ExclusiveSum(NULL, tb, (const int32_t *)NULL, (int32_t *)NULL, (int)n));
    return tb;
}

static __global__ void iota_kernel(int32_t *a, int64_t N) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < N; i += (int64_t)gridDim.x * blockDim.x)
        a[i] = (int32_t)i;
}

// launchers

extern "C" int64_t rhd_march_train_count_cuda(rhd_ctx *ctx, int32_t *rays, const float *rays_o, const float *rays_d,
                                              const float *nears, const float *fars, const uint8_t *bitfield,
                                              int64_t N, rhd_march_cfg cfg) {
    if (N == 0) return 0;
    cudaStream_t st = RHD_CUDA_STREAM(ctx);
    size_t a = align256(sizeof(int32_t) * (size_t)N), tb = scan_bytes(N);
    char *ws = (char *)rhd_ctx_workspace(ctx, 2 * a + tb);
    int32_t *counts = (int32_t *)ws, *offsets = (int32_t *)(ws + a);
    count_kernel<<<rhd_grid1d(N, 64), 64, 0, st>>>(counts, rays_o, rays_d, nears, fars, bitfield, N, cfg);
    CUDA_CHECK(cudaGetLastError());
    int64_t total = scan_total(ctx, offsets, counts, N, ws + 2 * a, tb);
    pack_rays_kernel<<<rhd_grid1d(N, 256), 256, 0, st>>>(rays, counts, offsets, N);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaStreamSynchronize(st)); /* counts/offsets live in the shared workspace */
    return total;
}

extern "C" int64_t rhd_march_train_write_cuda(rhd_ctx *ctx, float *xyz, float *dirs, float *delta0, float *delta1,
                                              int32_t *rays, const float *rays_o, const float *rays_d,
                                              const float *nears, const float *fars, const uint8_t *bitfield,
                                              int64_t N, int64_t M, rhd_march_cfg cfg) {
    cudaStream_t st = RHD_CUDA_STREAM(ctx);
    int32_t *kept_d = (int32_t *)rhd_ctx_workspace(ctx, sizeof(int32_t));
    int32_t kept = (int32_t)M; /* no ray dropped: every sample up to the total is written */
    if (N > 0) {
        /* the total is the last ray's offset + count */
        int32_t last[2];
        CUDA_CHECK(cudaMemcpyAsync(last, rays + 2 * (N - 1), sizeof last, cudaMemcpyDeviceToHost, st));
        CUDA_CHECK(cudaStreamSynchronize(st));
        int64_t total = (int64_t)last[0] + last[1];
        kept = (int32_t)(total <= M ? total : M);
        CUDA_CHECK(cudaMemcpyAsync(kept_d, &kept, sizeof(int32_t), cudaMemcpyHostToDevice, st));
        if (total > M) {
            find_kept_kernel<<<rhd_grid1d(N, 256), 256, 0, st>>>(kept_d, rays, N, M);
            CUDA_CHECK(cudaGetLastError());
            CUDA_CHECK(cudaMemcpyAsync(&kept, kept_d, sizeof(int32_t), cudaMemcpyDeviceToHost, st));
            CUDA_CHECK(cudaStreamSynchronize(st));
        }
        write_kernel<<<rhd_grid1d(N, 64), 64, 0, st>>>(xyz, dirs, delta0, delta1, rays, kept_d, rays_o, rays_d, nears,
                                                       fars, bitfield, N, M, cfg);
        CUDA_CHECK(cudaGetLastError());
    } else {
        kept = 0;
    }
    if (M > kept) {
        size_t n = (size_t)(M - kept);
        CUDA_CHECK(cudaMemsetAsync(xyz + 3 * (size_t)kept, 0, 3 * n * sizeof(float), st));
        CUDA_CHECK(cudaMemsetAsync(dirs + 3 * (size_t)kept, 0, 3 * n * sizeof(float), st));
        CUDA_CHECK(cudaMemsetAsync(delta0 + kept, 0, n * sizeof(float), st));
        CUDA_CHECK(cudaMemsetAsync(delta1 + kept, 0, n * sizeof(float), st));
    }
    CUDA_CHECK(cudaStreamSynchronize(st)); /* kept_d lives in the shared workspace */
    return kept;
}

extern "C" void rhd_march_infer_cuda(rhd_ctx *ctx, float *xyz, float *dirs, float *delta0, float *delta1,
                                     const int32_t *alive, const float *t_cur, const float *rays_o, const float *rays_d,
                                     const float *fars, const uint8_t *bitfield, int64_t n_alive, int n_step,
                                     int first, rhd_march_cfg cfg) {
    if (n_alive == 0) return;
    cfg.perturb = cfg.perturb && first;
    infer_kernel<<<rhd_grid1d(n_alive, 64), 64, 0, RHD_CUDA_STREAM(ctx)>>>(xyz, dirs, delta0, delta1, alive, t_cur,
                                                                           rays_o, rays_d, fars, bitfield, n_alive,
                                                                           n_step, cfg);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" int64_t rhd_march_infer_advance_cuda(rhd_ctx *ctx, int32_t *alive, float *t_cur, const uint8_t *stop,
                                                const float *delta0, const float *delta1, int64_t n_alive,
                                                int n_step) {
    if (n_alive == 0) return 0;
    cudaStream_t st = RHD_CUDA_STREAM(ctx);
    size_t a = align256(sizeof(int32_t) * (size_t)n_alive), tb = scan_bytes(n_alive);
    char *ws = (char *)rhd_ctx_workspace(ctx, 3 * a + tb);
    int32_t *keep = (int32_t *)ws, *pos = (int32_t *)(ws + a), *out = (int32_t *)(ws + 2 * a);
    advance_kernel<<<rhd_grid1d(n_alive, 256), 256, 0, st>>>(keep, t_cur, alive, stop, delta0, delta1, n_alive, n_step);
    CUDA_CHECK(cudaGetLastError());
    int64_t m = scan_total(ctx, pos, keep, n_alive, ws + 3 * a, tb);
    compact_kernel<<<rhd_grid1d(n_alive, 256), 256, 0, st>>>(out, alive, keep, pos, n_alive);
    CUDA_CHECK(cudaGetLastError());
    if (m > 0) CUDA_CHECK(cudaMemcpyAsync(alive, out, sizeof(int32_t) * (size_t)m, cudaMemcpyDeviceToDevice, st));
    CUDA_CHECK(cudaStreamSynchronize(st)); /* the scratch lives in the shared workspace */
    return m;
}

extern "C" void rhd_march_iota_cuda(rhd_ctx *ctx, int32_t *alive, int64_t N) {
    iota_kernel<<<rhd_grid1d(N, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(alive, N);
    CUDA_CHECK(cudaGetLastError());
}
