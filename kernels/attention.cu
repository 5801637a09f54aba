/* kernels/attention.cu: CUDA attention ops (contract in attention.h).
 *
 * Core: per chunk of (batch, head) items, scores S = scale q k^T by one strided-batched cuBLAS
 * GEMM into a [chunk, Tq, Tk] scratch, a row softmax kernel (max subtracted, lse saved), and
 * out = P v by a second batched GEMM. Backward recomputes P from lse, forms dS = P (dout v^T - D)
 * in a row kernel and finishes with three batched GEMMs. Chunks keep each [Tq, Tk] scratch
 * below 2^26 floats (256 MiB). cuBLAS runs in pedantic fp32 unless ctx->allow_tf32 (set on the
 * handle by backend_cuda.cu). Under --bf16 (ctx->allow_bf16) with a head dim of 16, 32, 64 or
 * 128, the core runs the fused kernels of kernels/attention_fused.cuh instead: no [Tq, Tk] matrix
 * in device memory, scratch only D [B, H, Tq] in backward (environment RHD_NO_FUSED_ATTN=1 keeps
 * the GEMM path, for comparisons). The layout kernels are exact gathers; the pooling kernels run
 * the per-element helpers of attention.h, with the batch loops in the same order as the CPU. */
#include <cuda_bf16.h>
#include <mma.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/attention.h"
#include "common/cuda_check.h"
#include "kernels/linear.h"

#ifndef RHD_FA_SMEM /* the CUDA emulation (tests/emu) declares it its own way */
#define RHD_FA_SMEM(name) extern __shared__ __align__(128) unsigned char name[]
#endif
#include "kernels/attention_fused.cuh"

#define ATTN_BLOCK 256

static __device__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
/* Block-wide reductions (blockDim.x a multiple of 32, at most 1024); every thread gets the result. */
static __device__ float block_sum(float v, float *red) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* red may still be read from the previous reduction */
    if (lane == 0) red[w] = v;
    __syncthreads();
    if (w == 0) {
        v = lane < nw ? red[lane] : 0.0f;
        v = warp_sum(v);
        if (lane == 0) red[32] = v;
    }
    __syncthreads();
    return red[32];
}
static __device__ float block_max(float v, float *red) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) red[w] = v;
    __syncthreads();
    if (w == 0) {
        v = lane < nw ? red[lane] : -INFINITY;
        v = warp_max(v);
        if (lane == 0) red[32] = v;
    }
    __syncthreads();
    return red[32];
}

/* One block per row of S [rows, n]: S <- softmax(S), lse[row] = log sum exp (if lse). */
static __global__ void softmax_rows_kernel(float *S, float *lse, int n) {
    __shared__ float red[33];
    float *s = S + (int64_t)blockIdx.x * n;
    float m = -INFINITY;
    for (int j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, s[j]);
    m = block_max(m, red);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float e = expf(s[j] - m);
        s[j] = e;
        sum += e;
    }
    sum = block_sum(sum, red);
    float inv = 1.0f / sum;
    for (int j = threadIdx.x; j < n; j += blockDim.x) s[j] *= inv;
    if (lse && threadIdx.x == 0) lse[blockIdx.x] = m + logf(sum);
}

/* One block per query row: P = exp(S - lse) into S, dS = P (dP - D) into dP, D = dout . out. */
static __global__ void softmax_grad_rows_kernel(float *S, float *dP, const float *lse, const float *dout,
                                                const float *out, int n, int d) {
    __shared__ float red[33];
    int64_t row = blockIdx.x;
    float D = 0.0f;
    for (int c = threadIdx.x; c < d; c += blockDim.x) D += dout[row * d + c] * out[row * d + c];
    D = block_sum(D, red);
    float l = lse[row];
    float *s = S + row * n, *g = dP + row * n;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float p = expf(s[j] - l);
        s[j] = p;
        g[j] = p * (g[j] - D);
    }
}

/* Row-major C[M,N] = alpha op(A) op(B) + beta C for `batch` matrices at the given strides
 * (A is [M,K] or, transposed, [K,M]; B is [K,N] or [N,K]); cuBLAS is column-major, so this
 * computes C^T = op(B)^T op(A)^T. */
static void gemm_rm(rhd_ctx *ctx, bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int64_t sA,
                    const float *B, int64_t sB, float beta, float *C, int64_t sC, int batch) {
    rhd_cuda_gemm(ctx, tb, ta, N, M, K, alpha, B, tb ? K : N, sB, A, ta ? M : K, sA, beta, C, N, sC, batch);
}

/* (batch, head) items per chunk so that one [Tq, Tk] scratch stays under 2^26 floats. */
static int64_t core_chunk(int64_t BH, int Tq, int Tk) {
    int64_t per = (int64_t)Tq * Tk, c = per > 0 ? (1L << 26) / per : BH;
    if (c < 1) c = 1;
    return c < BH ? c : BH;
}

/* ---- the fused path (--bf16) ---------------------------------------------------------------- */

/* Largest dynamic shared memory of the three fused kernels at head dim d. */
template <int D> static unsigned fa_smem_max() {
    typedef fa_dims<D> dm;
    unsigned a = dm::smem_fwd > dm::smem_bkv ? dm::smem_fwd : dm::smem_bkv;
    return a > dm::smem_bq ? a : dm::smem_bq;
}

/* --bf16, a head dim the fused kernels take, and a device whose opt-in shared memory per block
 * holds them (H100/H200: 227 KiB; some parts have 99 KiB, too little for d = 128). */
static bool use_fused(rhd_ctx *ctx, int d, int Tk) {
    const char *off = getenv("RHD_NO_FUSED_ATTN"); /* set and not "0": the GEMM path */
    if (!ctx->allow_bf16 || !FA_HEAD_OK(d) || Tk <= 0 || (off && *off && strcmp(off, "0"))) return false;
    int dev = 0, optin = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    unsigned need = d == 16 ? fa_smem_max<16>() : d == 32 ? fa_smem_max<32>() : d == 64 ? fa_smem_max<64>()
                                                                                      : fa_smem_max<128>();
    return need <= (unsigned)optin;
}

#define FA_MAX_ITEMS 65535 /* gridDim.y */
static unsigned fa_tiles(int n) { return (unsigned)((n + FA_ROWS - 1) / FA_ROWS); }

template <int D>
static void fa_forward(rhd_ctx *ctx, float *out, float *lse, const float *q, const float *k, const float *v, int64_t BH,
                       int Tq, int Tk, float scale) {
    unsigned sm = fa_dims<D>::smem_fwd;
    CUDA_CHECK(cudaFuncSetAttribute(fa_forward_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm));
    for (int64_t b0 = 0; b0 < BH; b0 += FA_MAX_ITEMS) {
        unsigned nb = (unsigned)(BH - b0 < FA_MAX_ITEMS ? BH - b0 : FA_MAX_ITEMS);
        fa_forward_kernel<D><<<dim3(fa_tiles(Tq), nb), FA_THREADS, sm, RHD_CUDA_STREAM(ctx)>>>(out, lse, q, k, v, Tq,
                                                                                              Tk, scale, b0);
        CUDA_CHECK(cudaGetLastError());
    }
}

/* Dv: scratch of BH * Tq floats. */
template <int D>
static void fa_backward(rhd_ctx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                        const float *v, const float *out, const float *lse, int64_t BH, int Tq, int Tk, float scale,
                        float *Dv) {
    cudaStream_t s = RHD_CUDA_STREAM(ctx);
    int64_t rows = BH * Tq;
    fa_rowdot_kernel<D><<<(unsigned)((rows + FA_THREADS / 32 - 1) / (FA_THREADS / 32)), FA_THREADS, 0, s>>>(Dv, dout,
                                                                                                           out, rows);
    CUDA_CHECK(cudaGetLastError());
    unsigned skv = fa_dims<D>::smem_bkv, sq = fa_dims<D>::smem_bq;
    CUDA_CHECK(cudaFuncSetAttribute(fa_backward_kv_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)skv));
    CUDA_CHECK(cudaFuncSetAttribute(fa_backward_q_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sq));
    for (int64_t b0 = 0; b0 < BH; b0 += FA_MAX_ITEMS) {
        unsigned nb = (unsigned)(BH - b0 < FA_MAX_ITEMS ? BH - b0 : FA_MAX_ITEMS);
        fa_backward_kv_kernel<D><<<dim3(fa_tiles(Tk), nb), FA_THREADS, skv, s>>>(dk, dv, dout, q, k, v, lse, Dv, Tq, Tk,
                                                                                 scale, b0);
        fa_backward_q_kernel<D><<<dim3(fa_tiles(Tq), nb), FA_THREADS, sq, s>>>(dq, dout, q, k, v, lse, Dv, Tq, Tk,
                                                                               scale, b0);
        CUDA_CHECK(cudaGetLastError());
    }
}

#define FA_DISPATCH(d, call)                                                                                            \
    switch (d) {                                                                                                       \
    case 16: call(16); break;                                                                                          \
    case 32: call(32); break;                                                                                          \
    case 64: call(64); break;                                                                                          \
    default: call(128); break;                                                                                         \
    }

/* Floats of scratch that core_forward (backward: core_backward) needs. */
static int64_t core_scratch(rhd_ctx *ctx, int64_t BH, int Tq, int Tk, int d, int backward) {
    if (use_fused(ctx, d, Tk)) return backward ? BH * Tq : 0;
    return (backward ? 2 : 1) * core_chunk(BH, Tq, Tk) * Tq * Tk;
}

static void core_forward(rhd_ctx *ctx, float *out, float *lse, const float *q, const float *k, const float *v,
                         int64_t BH, int Tq, int Tk, int d, float scale, float *S) {
    if (BH == 0 || Tq == 0) return;
    if (use_fused(ctx, d, Tk)) {
#define FA_FWD(D) fa_forward<D>(ctx, out, lse, q, k, v, BH, Tq, Tk, scale)
        FA_DISPATCH(d, FA_FWD);
#undef FA_FWD
        return;
    }
    int64_t chunk = core_chunk(BH, Tq, Tk);
    for (int64_t b0 = 0; b0 < BH; b0 += chunk) {
        int nb = (int)(BH - b0 < chunk ? BH - b0 : chunk);
        gemm_rm(ctx, false, true, Tq, Tk, d, scale, q + b0 * Tq * d, (int64_t)Tq * d, k + b0 * Tk * d, (int64_t)Tk * d,
                0.0f, S, (int64_t)Tq * Tk, nb);
        softmax_rows_kernel<<<(unsigned)(nb * (int64_t)Tq), ATTN_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(
            S, lse ? lse + b0 * Tq : NULL, Tk);
        CUDA_CHECK(cudaGetLastError());
        gemm_rm(ctx, false, false, Tq, d, Tk, 1.0f, S, (int64_t)Tq * Tk, v + b0 * Tk * d, (int64_t)Tk * d, 0.0f,
                out + b0 * Tq * d, (int64_t)Tq * d, nb);
    }
}

/* S: scratch of core_scratch(..., 1) floats. */
static void core_backward(rhd_ctx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q,
                          const float *k, const float *v, const float *out, const float *lse, int64_t BH, int Tq, int Tk,
                          int d, float scale, float *S) {
    if (BH == 0) return;
    if (Tq == 0) {
        CUDA_CHECK(cudaMemsetAsync(dk, 0, sizeof(float) * BH * Tk * d, RHD_CUDA_STREAM(ctx)));
        CUDA_CHECK(cudaMemsetAsync(dv, 0, sizeof(float) * BH * Tk * d, RHD_CUDA_STREAM(ctx)));
        return;
    }
    if (use_fused(ctx, d, Tk)) {
#define FA_BWD(D) fa_backward<D>(ctx, dq, dk, dv, dout, q, k, v, out, lse, BH, Tq, Tk, scale, S)
        FA_DISPATCH(d, FA_BWD);
#undef FA_BWD
        return;
    }
    int64_t chunk = core_chunk(BH, Tq, Tk), per = (int64_t)Tq * Tk;
    float *P = S, *dS = S + chunk * per;
    for (int64_t b0 = 0; b0 < BH; b0 += chunk) {
        int nb = (int)(BH - b0 < chunk ? BH - b0 : chunk);
        int64_t qo = b0 * Tq * d, ko = b0 * Tk * d, sq = (int64_t)Tq * d, sk = (int64_t)Tk * d;
        gemm_rm(ctx, false, true, Tq, Tk, d, scale, q + qo, sq, k + ko, sk, 0.0f, P, per, nb);
        gemm_rm(ctx, false, true, Tq, Tk, d, 1.0f, dout + qo, sq, v + ko, sk, 0.0f, dS, per, nb);
        softmax_grad_rows_kernel<<<(unsigned)(nb * (int64_t)Tq), ATTN_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(
            P, dS, lse + b0 * Tq, dout + qo, out + qo, Tk, d);
        CUDA_CHECK(cudaGetLastError());
        gemm_rm(ctx, false, false, Tq, d, Tk, scale, dS, per, k + ko, sk, 0.0f, dq + qo, sq, nb);
        gemm_rm(ctx, true, false, Tk, d, Tq, scale, dS, per, q + qo, sq, 0.0f, dk + ko, sk, nb);
        gemm_rm(ctx, true, false, Tk, d, Tq, 1.0f, P, per, dout + qo, sq, 0.0f, dv + ko, sk, nb);
    }
}

/* ---- layout kernels ----------------------------------------------------------------------- */

#define GRID_STRIDE(i, n) for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* q [B,H,T,d] and k, v [B,H,Te+T,d]: one thread per element of the k/v layout (and of q). */
static __global__ void split_q_kernel(float *q, const float *qkv, int H, int d, int T) {
    int64_t C = (int64_t)H * d;
    int b = blockIdx.y; /* gridDim.y = B */
    GRID_STRIDE(i, (int64_t)H * T * d) {
        int c = (int)(i % d), t = (int)(i / d % T), h = (int)(i / ((int64_t)d * T));
        q[(int64_t)b * H * T * d + i] = qkv[((int64_t)b * 3 * C + rhd_qkv_channel(h, 0, c, d)) * T + t];
    }
}

static __global__ void split_kv_kernel(float *k, float *v, const float *qkv, const float *ekv, int H, int d, int T,
                                       int Te) {
    int64_t C = (int64_t)H * d, Tk = (int64_t)Te + T;
    int b = blockIdx.y;
    GRID_STRIDE(i, (int64_t)H * Tk * d) {
        int c = (int)(i % d), j = (int)(i / d % Tk), h = (int)(i / ((int64_t)d * Tk));
        int64_t o = (int64_t)b * H * Tk * d + i;
        if (j < Te) {
            k[o] = ekv[((int64_t)b * 2 * C + rhd_ekv_channel(h, 0, c, d)) * Te + j];
            v[o] = ekv[((int64_t)b * 2 * C + rhd_ekv_channel(h, 1, c, d)) * Te + j];
        } else {
            k[o] = qkv[((int64_t)b * 3 * C + rhd_qkv_channel(h, 1, c, d)) * T + (j - Te)];
            v[o] = qkv[((int64_t)b * 3 * C + rhd_qkv_channel(h, 2, c, d)) * T + (j - Te)];
        }
    }
}

/* dqkv [B,3C,T] gathered from dq, dk, dv: one thread per dqkv element. */
static __global__ void split_back_qkv_kernel(float *dqkv, const float *dq, const float *dk, const float *dv, int H,
                                             int d, int T, int Te) {
    int64_t C = (int64_t)H * d, Tk = (int64_t)Te + T;
    int b = blockIdx.y;
    GRID_STRIDE(i, 3 * C * T) {
        int t = (int)(i % T);
        int64_t ch = i / T;
        int h = (int)(ch / (3 * d)), part = (int)(ch % (3 * d)) / d, c = (int)(ch % d);
        int64_t bh = (int64_t)b * H + h;
        float g;
        if (part == 0) g = dq[(bh * T + t) * d + c];
        else if (part == 1) g = dk[(bh * Tk + Te + t) * d + c];
        else g = dv[(bh * Tk + Te + t) * d + c];
        dqkv[(int64_t)b * 3 * C * T + i] = g;
    }
}

/* dekv [B,2C,Te] gathered from the encoder rows of dk, dv. */
static __global__ void split_back_ekv_kernel(float *dekv, const float *dk, const float *dv, int H, int d, int T,
                                             int Te) {
    int64_t C = (int64_t)H * d, Tk = (int64_t)Te + T;
    int b = blockIdx.y;
    GRID_STRIDE(i, 2 * C * Te) {
        int j = (int)(i % Te);
        int64_t ch = i / Te;
        int h = (int)(ch / (2 * d)), part = (int)(ch % (2 * d)) / d, c = (int)(ch % d);
        int64_t bh = (int64_t)b * H + h;
        dekv[(int64_t)b * 2 * C * Te + i] = part == 0 ? dk[(bh * Tk + j) * d + c] : dv[(bh * Tk + j) * d + c];
    }
}

/* dir 0: out [B,C,T] <- o [B,H,T,d] (one thread per out element); dir 1: o <- out (per o element). */
static __global__ void merge_kernel(float *out, float *o, int H, int d, int T, int dir) {
    int64_t C = (int64_t)H * d;
    int b = blockIdx.y;
    GRID_STRIDE(i, C * T) {
        if (dir == 0) {
            int t = (int)(i % T);
            int64_t ch = i / T;
            int h = (int)(ch / d), c = (int)(ch % d);
            out[(int64_t)b * C * T + i] = o[(((int64_t)b * H + h) * T + t) * d + c];
        } else {
            int c = (int)(i % d), t = (int)(i / d % T), h = (int)(i / ((int64_t)d * T));
            o[(int64_t)b * C * T + i] = out[((int64_t)b * C + (int64_t)h * d + c) * T + t];
        }
    }
}

/* Grid for the layout kernels: x strides over one batch item's elements, y = batch item. */
static dim3 grid_b(int64_t per_batch, int B) {
    unsigned g = rhd_grid1d(per_batch, ATTN_BLOCK);
    return dim3(g < 4096 ? g : 4096, (unsigned)B);
}

static void split_launch(rhd_ctx *ctx, float *q, float *k, float *v, const float *qkv, const float *ekv, int B, int H,
                         int d, int T, int Te) {
    if (B == 0) return;
    cudaStream_t s = RHD_CUDA_STREAM(ctx);
    int64_t C = (int64_t)H * d;
    if (T > 0) split_q_kernel<<<grid_b(C * T, B), ATTN_BLOCK, 0, s>>>(q, qkv, H, d, T);
    if (T + Te > 0) split_kv_kernel<<<grid_b(C * (T + Te), B), ATTN_BLOCK, 0, s>>>(k, v, qkv, ekv, H, d, T, Te);
    CUDA_CHECK(cudaGetLastError());
}

static void split_back_launch(rhd_ctx *ctx, float *dqkv, float *dekv, const float *dq, const float *dk,
                              const float *dv, int B, int H, int d, int T, int Te) {
    if (B == 0) return;
    cudaStream_t s = RHD_CUDA_STREAM(ctx);
    int64_t C = (int64_t)H * d;
    if (T > 0) split_back_qkv_kernel<<<grid_b(3 * C * T, B), ATTN_BLOCK, 0, s>>>(dqkv, dq, dk, dv, H, d, T, Te);
    if (Te > 0 && dekv) split_back_ekv_kernel<<<grid_b(2 * C * Te, B), ATTN_BLOCK, 0, s>>>(dekv, dk, dv, H, d, T, Te);
    CUDA_CHECK(cudaGetLastError());
}

static void merge_launch(rhd_ctx *ctx, float *out, float *o, int B, int H, int d, int T, int dir) {
    if (B == 0 || T == 0) return;
    merge_kernel<<<grid_b((int64_t)H * d * T, B), ATTN_BLOCK, 0, RHD_CUDA_STREAM(ctx)>>>(out, o, H, d, T, dir);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- attention pooling kernels (one thread per element; helpers from attention.h) ------------ */

typedef struct {
    float *S, *Q, *K, *V, *P, *G, *dQ, *dK, *dV, *dS;
} pool_ws;

static pool_ws pool_ws_get(rhd_ctx *ctx, int B, int L, int W, int heads) {
    int64_t n1 = (int64_t)B * (L + 1) * W, nw = (int64_t)B * W, np = (int64_t)B * heads * (L + 1);
    float *p = (float *)rhd_ctx_workspace(ctx, sizeof(float) * (n1 * 6 + nw * 2 + np * 2));
    pool_ws w;
    w.S = p, w.K = w.S + n1, w.V = w.K + n1, w.dK = w.V + n1, w.dV = w.dK + n1, w.dS = w.dV + n1;
    w.Q = w.dS + n1, w.dQ = w.Q + nw, w.P = w.dQ + nw, w.G = w.P + np;
    return w;
}

static __global__ void pool_seq_kernel(pool_ws w, const float *x, const float *pos, int B, int L, int W) {
    GRID_STRIDE(i, (int64_t)B * (L + 1) * W) {
        int c = (int)(i % W), j = (int)(i / W % (L + 1)), b = (int)(i / ((int64_t)W * (L + 1)));
        w.S[i] = rhd_pool_seq(x + (int64_t)b * L * W, pos, L, W, j, c);
    }
}

static __global__ void pool_proj_kernel(pool_ws w, const float *wq, const float *bq, const float *wk, const float *bk,
                                        const float *wv, const float *bv, int B, int L, int W) {
    GRID_STRIDE(i, (int64_t)B * (L + 1) * W) {
        int c = (int)(i % W), j = (int)(i / W % (L + 1)), b = (int)(i / ((int64_t)W * (L + 1)));
        const float *s = w.S + ((int64_t)b * (L + 1) + j) * W;
        w.K[i] = rhd_pool_linear(wk, bk, s, W, c);
        w.V[i] = rhd_pool_linear(wv, bv, s, W, c);
        if (j == 0) w.Q[(int64_t)b * W + c] = rhd_pool_linear(wq, bq, s, W, c);
    }
}

static __global__ void pool_probs_kernel(pool_ws w, int B, int L, int W, int heads) {
    GRID_STRIDE(i, (int64_t)B * heads) {
        int h = (int)(i % heads), b = (int)(i / heads);
        rhd_pool_probs(w.P + i * (L + 1), w.Q + (int64_t)b * W, w.K + (int64_t)b * (L + 1) * W, L, W, W / heads, h);
    }
}

static __global__ void pool_out_kernel(float *y, pool_ws w, int B, int L, int W, int heads) {
    GRID_STRIDE(i, (int64_t)B * W) {
        int c = (int)(i % W), b = (int)(i / W);
        y[i] = rhd_pool_out(w.P + (int64_t)b * heads * (L + 1), w.V + (int64_t)b * (L + 1) * W, L, W, W / heads, c);
    }
}

static __global__ void pool_logit_grad_kernel(pool_ws w, const float *dy, int B, int L, int W, int heads) {
    GRID_STRIDE(i, (int64_t)B * heads) {
        int h = (int)(i % heads), b = (int)(i / heads);
        rhd_pool_logit_grad(w.G + i * (L + 1), w.P + (int64_t)b * heads * (L + 1), w.V + (int64_t)b * (L + 1) * W,
                            dy + (int64_t)b * W, L, W, W / heads, h);
    }
}

static __global__ void pool_dqkv_kernel(pool_ws w, const float *dy, int B, int L, int W, int heads) {
    int dh = W / heads;
    GRID_STRIDE(i, (int64_t)B * (L + 1) * W) {
        int c = (int)(i % W), j = (int)(i / W % (L + 1)), b = (int)(i / ((int64_t)W * (L + 1)));
        int64_t hp = ((int64_t)b * heads + c / dh) * (L + 1) + j;
        w.dK[i] = w.G[hp] * w.Q[(int64_t)b * W + c];
        w.dV[i] = w.P[hp] * dy[(int64_t)b * W + c];
        if (j == 0)
            w.dQ[(int64_t)b * W + c] = rhd_pool_dq(w.G + (int64_t)b * heads * (L + 1), w.K + (int64_t)b * (L + 1) * W, L, W, dh, c);
    }
}

static __global__ void pool_dseq_kernel(pool_ws w, const float *wq, const float *wk, const float *wv, int B, int L,
                                        int W) {
    GRID_STRIDE(i, (int64_t)B * (L + 1) * W) {
        int c = (int)(i % W), j = (int)(i / W % (L + 1)), b = (int)(i / ((int64_t)W * (L + 1)));
        int64_t o1 = (int64_t)b * (L + 1) * W;
        w.dS[i] = rhd_pool_dseq(wq, wk, wv, w.dQ + (int64_t)b * W, w.dK + o1, w.dV + o1, W, j, c);
    }
}

static __global__ void pool_dx_kernel(float *dx, pool_ws w, int B, int L, int W) {
    GRID_STRIDE(i, (int64_t)B * L * W) {
        int c = (int)(i % W), l = (int)(i / W % L), b = (int)(i / ((int64_t)W * L));
        const float *ds = w.dS + (int64_t)b * (L + 1) * W;
        dx[i] = ds[(int64_t)(l + 1) * W + c] + ds[c] / (float)L;
    }
}

/* Weight gradients, accumulated (+=) over the batch in order, as the CPU does. */
static __global__ void pool_dw_kernel(float *dwq, float *dwk, float *dwv, pool_ws w, int B, int L, int W) {
    GRID_STRIDE(idx, (int64_t)W * W) {
        int c = (int)(idx / W), i = (int)(idx % W);
        float gq = dwq[idx], gk = dwk[idx], gv = dwv[idx];
        for (int b = 0; b < B; b++) {
            int64_t o1 = (int64_t)b * (L + 1) * W;
            double ak = 0, av = 0;
            for (int j = 0; j <= L; j++) {
                ak += (double)w.dK[o1 + (int64_t)j * W + c] * w.S[o1 + (int64_t)j * W + i];
                av += (double)w.dV[o1 + (int64_t)j * W + c] * w.S[o1 + (int64_t)j * W + i];
            }
            gq += w.dQ[(int64_t)b * W + c] * w.S[o1 + i];
            gk += (float)ak;
            gv += (float)av;
        }
        dwq[idx] = gq, dwk[idx] = gk, dwv[idx] = gv;
    }
}

static __global__ void pool_db_kernel(float *dpos, float *dbq, float *dbk, float *dbv, pool_ws w, int B, int L, int W) {
    GRID_STRIDE(c, (int64_t)W) {
        float gp = dpos[c], gq = dbq[c], gk = dbk[c], gv = dbv[c];
        for (int b = 0; b < B; b++) {
            int64_t o1 = (int64_t)b * (L + 1) * W;
            double ak = 0, av = 0;
            for (int j = 0; j <= L; j++) ak += w.dK[o1 + (int64_t)j * W + c], av += w.dV[o1 + (int64_t)j * W + c];
            gp += w.dS[o1 + c];
            gq += w.dQ[(int64_t)b * W + c];
            gk += (float)ak;
            gv += (float)av;
        }
        dpos[c] = gp, dbq[c] = gq, dbk[c] = gk, dbv[c] = gv;
    }
}

// launchers

extern "C" void rhd_attention_forward_cuda(rhd_ctx *ctx, float *out, float *lse, const float *q, const float *k,
                                           const float *v, int B, int H, int Tq, int Tk, int d, float scale) {
    int64_t BH = (int64_t)B * H;
    float *S = (float *)rhd_ctx_workspace(ctx, sizeof(float) * core_scratch(ctx, BH, Tq, Tk, d, 0) + 4);
    core_forward(ctx, out, lse, q, k, v, BH, Tq, Tk, d, scale, S);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_attention_backward_cuda(rhd_ctx *ctx, float *dq, float *dk, float *dv, const float *dout,
                                            const float *q, const float *k, const float *v, const float *out,
                                            const float *lse, int B, int H, int Tq, int Tk, int d, float scale) {
    int64_t BH = (int64_t)B * H;
    float *S = (float *)rhd_ctx_workspace(ctx, sizeof(float) * core_scratch(ctx, BH, Tq, Tk, d, 1) + 4);
    core_backward(ctx, dq, dk, dv, dout, q, k, v, out, lse, BH, Tq, Tk, d, scale, S);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_attn_split_qkv_cuda(rhd_ctx *ctx, float *q, float *k, float *v, const float *qkv,
                                        const float *ekv, int B, int H, int d, int T, int Te) {
    split_launch(ctx, q, k, v, qkv, ekv, B, H, d, T, Te);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_attn_split_qkv_backward_cuda(rhd_ctx *ctx, float *dqkv, float *dekv, const float *dq,
                                                 const float *dk, const float *dv, int B, int H, int d, int T, int Te) {
    split_back_launch(ctx, dqkv, dekv, dq, dk, dv, B, H, d, T, Te);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_attn_merge_heads_cuda(rhd_ctx *ctx, float *out, const float *o, int B, int H, int d, int T) {
    merge_launch(ctx, out, (float *)o, B, H, d, T, 0);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_attn_merge_heads_backward_cuda(rhd_ctx *ctx, float *do_, const float *dout, int B, int H, int d,
                                                   int T) {
    merge_launch(ctx, (float *)dout, do_, B, H, d, T, 1);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_attention_block_forward_cuda(rhd_ctx *ctx, float *out, float *lse, const float *qkv,
                                                 const float *ekv, int B, int C, int H, int T, int Te) {
    int d = C / H, Tk = Te + T;
    int64_t BH = (int64_t)B * H, nq = (int64_t)B * C * T, nk = (int64_t)B * C * Tk;
    int64_t ns = core_scratch(ctx, BH, T, Tk, d, 0);
    float *q = (float *)rhd_ctx_workspace(ctx, sizeof(float) * (2 * nq + 2 * nk + ns));
    float *o = q + nq, *k = o + nq, *v = k + nk, *S = v + nk;
    split_launch(ctx, q, k, v, qkv, ekv, B, H, d, T, Te);
    core_forward(ctx, o, lse, q, k, v, BH, T, Tk, d, 1.0f / sqrtf((float)d), S);
    merge_launch(ctx, out, o, B, H, d, T, 0);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_attention_block_backward_cuda(rhd_ctx *ctx, float *dqkv, float *dekv, const float *dout,
                                                  const float *qkv, const float *ekv, const float *out,
                                                  const float *lse, int B, int C, int H, int T, int Te) {
    int d = C / H, Tk = Te + T;
    int64_t BH = (int64_t)B * H, nq = (int64_t)B * C * T, nk = (int64_t)B * C * Tk;
    int64_t ns = core_scratch(ctx, BH, T, Tk, d, 1);
    float *q = (float *)rhd_ctx_workspace(ctx, sizeof(float) * (4 * nq + 4 * nk + ns));
    float *o = q + nq, *do_ = o + nq, *dq = do_ + nq, *k = dq + nq, *v = k + nk, *dk = v + nk, *dv = dk + nk;
    float *S = dv + nk;
    split_launch(ctx, q, k, v, qkv, ekv, B, H, d, T, Te);
    merge_launch(ctx, (float *)out, o, B, H, d, T, 1);
    merge_launch(ctx, (float *)dout, do_, B, H, d, T, 1);
    core_backward(ctx, dq, dk, dv, do_, q, k, v, o, lse, BH, T, Tk, d, 1.0f / sqrtf((float)d), S);
    split_back_launch(ctx, dqkv, dekv, dq, dk, dv, B, H, d, T, Te);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_attention_pool_forward_cuda(rhd_ctx *ctx, float *y, const float *x, const float *pos,
                                                const float *wq, const float *bq, const float *wk, const float *bk,
                                                const float *wv, const float *bv, int B, int L, int W, int heads) {
    if (B == 0) return;
    pool_ws w = pool_ws_get(ctx, B, L, W, heads);
    cudaStream_t s = RHD_CUDA_STREAM(ctx);
    int64_t n1 = (int64_t)B * (L + 1) * W;
    pool_seq_kernel<<<rhd_grid1d(n1, 128), 128, 0, s>>>(w, x, pos, B, L, W);
    pool_proj_kernel<<<rhd_grid1d(n1, 128), 128, 0, s>>>(w, wq, bq, wk, bk, wv, bv, B, L, W);
    pool_probs_kernel<<<rhd_grid1d((int64_t)B * heads, 128), 128, 0, s>>>(w, B, L, W, heads);
    pool_out_kernel<<<rhd_grid1d((int64_t)B * W, 128), 128, 0, s>>>(y, w, B, L, W, heads);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_attention_pool_backward_cuda(rhd_ctx *ctx, float *dx, float *dpos, float *dwq, float *dbq,
                                                 float *dwk, float *dbk, float *dwv, float *dbv, const float *dy,
                                                 const float *x, const float *pos, const float *wq, const float *bq,
                                                 const float *wk, const float *bk, const float *wv, const float *bv,
                                                 int B, int L, int W, int heads) {
    if (B == 0) return;
    pool_ws w = pool_ws_get(ctx, B, L, W, heads);
    cudaStream_t s = RHD_CUDA_STREAM(ctx);
    int64_t n1 = (int64_t)B * (L + 1) * W;
    pool_seq_kernel<<<rhd_grid1d(n1, 128), 128, 0, s>>>(w, x, pos, B, L, W);
    pool_proj_kernel<<<rhd_grid1d(n1, 128), 128, 0, s>>>(w, wq, bq, wk, bk, wv, bv, B, L, W);
    pool_probs_kernel<<<rhd_grid1d((int64_t)B * heads, 128), 128, 0, s>>>(w, B, L, W, heads);
    pool_logit_grad_kernel<<<rhd_grid1d((int64_t)B * heads, 128), 128, 0, s>>>(w, dy, B, L, W, heads);
    pool_dqkv_kernel<<<rhd_grid1d(n1, 128), 128, 0, s>>>(w, dy, B, L, W, heads);
    pool_dseq_kernel<<<rhd_grid1d(n1, 128), 128, 0, s>>>(w, wq, wk, wv, B, L, W);
    pool_dx_kernel<<<rhd_grid1d((int64_t)B * L * W, 128), 128, 0, s>>>(dx, w, B, L, W);
    pool_dw_kernel<<<rhd_grid1d((int64_t)W * W, 128), 128, 0, s>>>(dwq, dwk, dwv, w, B, L, W);
    pool_db_kernel<<<rhd_grid1d((int64_t)W, 128), 128, 0, s>>>(dpos, dbq, dbk, dbv, w, B, L, W);
    CUDA_CHECK(cudaGetLastError());
}
