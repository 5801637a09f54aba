/* kernels/diffusion.cu: the diffusion element math on CUDA (contract in diffusion.h). The
 * per-element code is the RHD_HD helpers of diffusion.h, shared with the CPU reference; the loss
 * sums are one double partial per block of a fixed grid, added in order by one block. */
#include "kernels/diffusion.h"
#include "common/cuda_check.h"
#include "common/rng.h"
#include "kernels/reduce_cuda.h"

#define GRID_MAX 1024
#define LOOP(i, n) for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

static unsigned grid_of(int64_t n) {
    unsigned g = rhd_grid1d(n, RHD_RED_BLOCK);
    return g > GRID_MAX ? GRID_MAX : (g ? g : 1);
}

static __global__ void q_sample_kernel(float *xt, const float *x0, const float *eps, int64_t n, float ca, float cb) {
    LOOP(i, n) xt[i] = rhd_q_sample_at(ca, cb, x0[i], eps[i]);
}

static __global__ void cfg_kernel(float *g, const float *c, const float *u, int64_t n, float s) {
    LOOP(i, n) g[i] = rhd_cfg_at(c[i], u[i], s);
}

static __global__ void ddim_kernel(float *xp, float *x0, const float *x, const float *out, const float *z, int64_t n,
                                   rhd_ddim_coef k) {
    LOOP(i, n) {
        float p;
        float r = rhd_ddim_at(&k, x[i], out[i], z[i], &p);
        if (x0) x0[i] = p;
        xp[i] = r;
    }
}

static __global__ void ddpm_kernel(float *xp, float *x0, const float *x, const float *out, const float *v,
                                   const float *z, int64_t n, rhd_ddpm_coef k) {
    LOOP(i, n) {
        float p;
        float r = rhd_ddpm_at(&k, x[i], out[i], v ? v[i] : 0.f, z[i], &p);
        if (x0) x0[i] = p;
        xp[i] = r;
    }
}

static __global__ void loss_kernel(double *part, float *dpred, float *dv, const float *x0, const float *xt,
                                   const float *eps, const float *pred, const float *v, int64_t n, rhd_loss_coef k) {
    double s1 = 0, s2 = 0;
    LOOP(i, n) {
        float gp = 0, gv = 0;
        rhd_loss_at(&k, x0[i], xt[i], eps[i], pred[i], v ? v[i] : 0.f, &s1, &s2, &gp, &gv);
        if (dpred) dpred[i] = gp;
        if (dv && k.learned) dv[i] = gv;
    }
    s1 = rhd_block_sum(s1);
    s2 = rhd_block_sum(s2);
    if (threadIdx.x == 0) part[blockIdx.x] = s1, part[gridDim.x + blockIdx.x] = s2;
}

static __global__ void sum2_kernel(double *out, const double *part, int np) {
    for (int k = 0; k < 2; k++) {
        double s = 0;
        for (int i = threadIdx.x; i < np; i += RHD_RED_BLOCK) s += part[(int64_t)k * np + i];
        s = rhd_block_sum(s);
        if (threadIdx.x == 0) out[k] = s;
    }
}

static __global__ void randn_kernel(float *out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
    LOOP(i, n) out[i] = rhd_rng_normal(seed, stream, offset + (uint64_t)i);
}

// ---------------------------------------------------------------------------------------------
// launchers

extern "C" void rhd_diff_q_sample_cuda(rhd_ctx *ctx, float *xt, const float *x0, const float *eps, int64_t n, float ca,
                                       float cb) {
    q_sample_kernel<<<grid_of(n), RHD_RED_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(xt, x0, eps, n, ca, cb);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_diff_cfg_cuda(rhd_ctx *ctx, float *g, const float *c, const float *u, int64_t n, float s) {
    cfg_kernel<<<grid_of(n), RHD_RED_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(g, c, u, n, s);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_diff_ddim_step_cuda(rhd_ctx *ctx, float *xp, float *x0, const float *x, const float *out,
                                        const float *z, int64_t n, const rhd_ddim_coef *k) {
    ddim_kernel<<<grid_of(n), RHD_RED_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(xp, x0, x, out, z, n, *k);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_diff_ddpm_step_cuda(rhd_ctx *ctx, float *xp, float *x0, const float *x, const float *out,
                                        const float *v, const float *z, int64_t n, const rhd_ddpm_coef *k) {
    ddpm_kernel<<<grid_of(n), RHD_RED_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(xp, x0, x, out, v, z, n, *k);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_diff_loss_cuda(rhd_ctx *ctx, double *se, double *vb, float *dpred, float *dv, const float *x0,
                                   const float *xt, const float *eps, const float *pred, const float *v, int64_t n,
                                   const rhd_loss_coef *k) {
    unsigned g = grid_of(n);
    double *part = (double *)rhd_ctx_workspace(ctx, sizeof(double) * (2 * (size_t)g + 2));
    double *sums = part + 2 * g;
    loss_kernel<<<g, RHD_RED_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(part, dpred, dv, x0, xt, eps, pred, v, n, *k);
    CUDA_CHECK(cudaGetLastError());
    sum2_kernel<<<1, RHD_RED_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(sums, part, (int)g);
    CUDA_CHECK(cudaGetLastError());
    double h[2];
    rhd_buf_download(ctx, h, sums, sizeof h);
    *se = h[0];
    *vb = h[1];
}

extern "C" void rhd_diff_randn_cuda(rhd_ctx *ctx, float *out, int64_t n, uint64_t seed, uint64_t stream,
                                    uint64_t offset) {
    randn_kernel<<<grid_of(n), RHD_RED_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(out, n, seed, stream, offset);
    CUDA_CHECK(cudaGetLastError());
}
