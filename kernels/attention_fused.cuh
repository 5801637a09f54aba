/* kernels/attention_fused.cuh: the device code of the fused ("flash") attention used by --bf16 on
 * the GPU (kernels/attention.cu launches it; contract of the core in kernels/attention.h).
 *
 * Why: the unfused core writes every [Tq, Tk] score matrix to device memory and reads it back
 * several times (softmax, P v; in backward P, dP, dS); at the UNet's attention resolution 32
 * (3072 self + 16 portrait tokens, 6 heads, batch 3) that is ~0.7 GB per pass and per layer, about
 * as long as the layer's tensor-core work. Here the scores live only in shared memory.
 *
 * Numerics (the same as the unfused --bf16 path up to rounding order): q, k, v, dout are read in
 * fp32 and rounded to bf16 once per tile; products on bf16 tensor cores (wmma 16x16x16) with fp32
 * accumulation; softmax, lse and the running sums in fp32; the probabilities P (forward: the
 * unnormalised exp(s - running max), as FlashAttention) and dS are rounded to bf16 before their
 * products; outputs fp32.
 *   forward   (grid: query tiles x items): per 64-key tile, S = q k^T, the online softmax
 *             (running max m, sum l, output rescaled by exp(m_old - m_new)), O += P v;
 *             out = O / l, lse = m + log l.
 *   rowdot    D_i = sum_c bf16(dout_ic) out_ic (fp32), one warp per row.
 *   backward  two kernels, no atomics (deterministic): per 64-key tile, over all query tiles,
 *             dV = sum P^T dout, dK = scale sum dS^T q; per 64-query tile, over all key tiles,
 *             dQ = scale sum dS k; P = exp(scale q k^T - lse), dS = P (dout v^T - D) recomputed in
 *             each (seven products per tile pair instead of five).
 * Work split: 4 warps, each owning 16 rows of the block's 64; the lanes 2r, 2r+1 of a warp own row
 * r of its 16 for the element-wise steps (32 columns each). Warps exchange nothing but the K/V (or
 * Q/dout) tiles, so __syncthreads only brackets tile loads; __syncwarp orders a warp's own
 * shared-memory stores and loads. Fragments go through shared memory only (their register layout
 * is never relied on), which is what lets tests/kernels/test_attention_emu.cpp run these very
 * kernels on the CPU. Head dims: FA_HEAD_OK(d) (multiples of 16 up to 128 instantiated in
 * attention.cu as 16, 32, 64, 128); row counts of any size (partial tiles are zero-padded and
 * masked).
 *
 * Before inclusion the includer provides: __nv_bfloat16, __float2bfloat16_rn, nvcuda::wmma,
 * __shfl_xor_sync, __syncwarp, __syncthreads, threadIdx / blockIdx / gridDim, and RHD_FA_SMEM(name)
 * (the dynamic shared memory as `unsigned char *name`, 128-byte aligned). */
#ifndef RHD_KERNELS_ATTENTION_FUSED_CUH
#define RHD_KERNELS_ATTENTION_FUSED_CUH
#include <stdint.h>

#define FA_ROWS 64    /* rows of a block (queries in forward / dQ, keys in dK dV) */
#define FA_COLS 64    /* columns of a tile (keys in forward / dQ, queries in dK dV) */
#define FA_THREADS 128
#define FA_HEAD_OK(d) ((d) == 16 || (d) == 32 || (d) == 64 || (d) == 128)

typedef __nv_bfloat16 fa_bf16;

/* Row strides (elements): bf16 [64][D] tiles, bf16 [64][64] P / dS tiles, fp32 [64][max(64, D)]
 * score / staging tiles. Padded (16 bytes) against bank conflicts; wmma needs 16-byte multiples
 * and 32-byte aligned fragment pointers, which every offset below keeps. */
template <int D> struct fa_dims {
    static constexpr int LH = D + 8;
    static constexpr int LP = FA_COLS + 8;
    static constexpr int LS = (D > FA_COLS ? D : FA_COLS) + 4;
    static constexpr unsigned tile_h = 2u * FA_ROWS * LH; /* bytes */
    static constexpr unsigned tile_p = 2u * FA_ROWS * LP;
    static constexpr unsigned tile_s = 4u * FA_ROWS * LS;
    /* shared bytes: forward Q K V P S O; dK dV: K V Q dO P dS S dP + lse, D; dQ: Q dO K V dS S dP + lse, D */
    static constexpr unsigned smem_fwd = 3 * tile_h + tile_p + 2 * tile_s;
    static constexpr unsigned smem_bkv = 4 * tile_h + 2 * tile_p + 2 * tile_s + 2 * 4 * FA_ROWS;
    static constexpr unsigned smem_bq = 4 * tile_h + tile_p + 2 * tile_s + 2 * 4 * FA_ROWS;
};

namespace fa_wmma = nvcuda::wmma;
typedef fa_wmma::fragment<fa_wmma::accumulator, 16, 16, 16, float> fa_acc;
typedef fa_wmma::fragment<fa_wmma::matrix_a, 16, 16, 16, fa_bf16, fa_wmma::row_major> fa_a_row;
typedef fa_wmma::fragment<fa_wmma::matrix_b, 16, 16, 16, fa_bf16, fa_wmma::row_major> fa_b_row;
typedef fa_wmma::fragment<fa_wmma::matrix_b, 16, 16, 16, fa_bf16, fa_wmma::col_major> fa_b_col;

/* dst [64][D] (stride LH) <- bf16 of rows r0 .. r0+63 of src [n][D] (fp32), zero past n; coalesced,
 * 16-byte loads when src is 16-byte aligned (D is a multiple of 16, so every row then is). */
template <int D> static __device__ void fa_load_tile(fa_bf16 *dst, const float *src, int r0, int n) {
    if (((uintptr_t)src & 15) == 0) {
        for (int i = threadIdx.x; i < FA_ROWS * D / 4; i += FA_THREADS) {
            int r = i / (D / 4), c = 4 * (i % (D / 4));
            float4 x = r0 + r < n ? *(const float4 *)(src + (int64_t)(r0 + r) * D + c) : make_float4(0, 0, 0, 0);
            fa_bf16 *o = dst + r * fa_dims<D>::LH + c;
            o[0] = __float2bfloat16_rn(x.x), o[1] = __float2bfloat16_rn(x.y);
            o[2] = __float2bfloat16_rn(x.z), o[3] = __float2bfloat16_rn(x.w);
        }
        return;
    }
    for (int i = threadIdx.x; i < FA_ROWS * D; i += FA_THREADS) {
        int r = i / D, c = i % D;
        float x = r0 + r < n ? src[(int64_t)(r0 + r) * D + c] : 0.0f;
        dst[r * fa_dims<D>::LH + c] = __float2bfloat16_rn(x);
    }
}

/* The element-wise steps give lanes 2r, 2r+1 row r of the warp's 16 (32 columns each). With the
 * fp32 row stride LS = 4 (mod 32 banks), rows r and r+8 and the two halves would hit the same
 * bank; each lane walks its columns rotated by fa_skew() (0..3, distinct for those four lanes),
 * which makes the fp32 accesses conflict-free. */
static __device__ int fa_skew(int lane) { return 2 * (lane & 1) + (lane >> 4); }

/* Where a thread is: its block's item and first row, its warp, and the row / half it owns in the
 * element-wise steps. */
struct fa_pos {
    int64_t item;
    int r0, warp, row, half;
    __device__ explicit fa_pos(int64_t item0) {
        int lane = threadIdx.x & 31;
        item = item0 + blockIdx.y, r0 = blockIdx.x * FA_ROWS, warp = threadIdx.x >> 5;
        row = warp * 16 + (lane >> 1), half = lane & 1;
    }
};

/* v [64] <- src[r0 + r] for r0 + r < n, else pad. */
static __device__ void fa_load_rows(float *v, const float *src, int r0, int n, float pad) {
    for (int r = threadIdx.x; r < FA_ROWS; r += FA_THREADS) v[r] = r0 + r < n ? src[r0 + r] : pad;
}

/* The warp's 16 x 64 block C = A B^T: A rows a (stride la, D columns), B rows b (64 rows, stride
 * lb); C (fp32, stride lc). */
template <int D>
static __device__ void fa_mm_nt(float *c, int lc, const fa_bf16 *a, int la, const fa_bf16 *b, int lb) {
    fa_acc acc[FA_COLS / 16];
#pragma unroll
    for (int n = 0; n < FA_COLS / 16; n++) fa_wmma::fill_fragment(acc[n], 0.0f);
#pragma unroll
    for (int k = 0; k < D; k += 16) {
        fa_a_row fa; /* loaded once per k step, used for the four column blocks */
        fa_wmma::load_matrix_sync(fa, a + k, la);
#pragma unroll
        for (int n = 0; n < FA_COLS / 16; n++) {
            fa_b_col fb;
            fa_wmma::load_matrix_sync(fb, b + n * 16 * lb + k, lb);
            fa_wmma::mma_sync(acc[n], fa, fb, acc[n]);
        }
    }
#pragma unroll
    for (int n = 0; n < FA_COLS / 16; n++) fa_wmma::store_matrix_sync(c + n * 16, acc[n], lc, fa_wmma::mem_row_major);
}

/* acc[n] += A B for the warp's 16 rows: A [16][64] bf16 (stride la), B [64][D] bf16 (stride lb). */
template <int D> static __device__ void fa_mm_nn_acc(fa_acc *acc, const fa_bf16 *a, int la, const fa_bf16 *b, int lb) {
#pragma unroll
    for (int k = 0; k < FA_COLS; k += 16) {
        fa_a_row fa;
        fa_wmma::load_matrix_sync(fa, a + k, la);
#pragma unroll
        for (int n = 0; n < D / 16; n++) {
            fa_b_row fb;
            fa_wmma::load_matrix_sync(fb, b + k * lb + n * 16, lb);
            fa_wmma::mma_sync(acc[n], fa, fb, acc[n]);
        }
    }
}

/* ---- forward ------------------------------------------------------------------------------ */

/* grid (ceil(Tq / 64), items); q [items, Tq, D], k, v [items, Tk, D]; out [items, Tq, D];
 * lse [items, Tq] or NULL. Tk >= 1. */
template <int D>
static __global__ void __launch_bounds__(FA_THREADS)
    fa_forward_kernel(float *out, float *lse, const float *q, const float *k, const float *v, int Tq, int Tk,
                      float scale, int64_t item0) {
    typedef fa_dims<D> dm;
    RHD_FA_SMEM(smem);
    fa_bf16 *Qs = (fa_bf16 *)smem, *Ks = (fa_bf16 *)(smem + dm::tile_h), *Vs = (fa_bf16 *)(smem + 2 * dm::tile_h);
    fa_bf16 *Ps = (fa_bf16 *)(smem + 3 * dm::tile_h);
    float *Ss = (float *)(smem + 3 * dm::tile_h + dm::tile_p), *Os = Ss + FA_ROWS * dm::LS;
    const fa_pos ps(item0);
    const int64_t item = ps.item;
    const int r0 = ps.r0, warp = ps.warp, row = ps.row, half = ps.half, sk = fa_skew(threadIdx.x & 31);
    const float *qb = q + item * Tq * D, *kb = k + item * Tk * D, *vb = v + item * Tk * D;

    fa_load_tile<D>(Qs, qb, r0, Tq);
    for (int i = threadIdx.x; i < FA_ROWS * D; i += FA_THREADS) Os[(i / D) * dm::LS + i % D] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    float *srow = Ss + row * dm::LS, *orow = Os + row * dm::LS + half * (D / 2);
    fa_bf16 *prow = Ps + row * dm::LP + half * 32;
    for (int j0 = 0; j0 < Tk; j0 += FA_COLS) {
        __syncthreads(); /* every warp is done with the previous K, V (and Q is loaded) */
        fa_load_tile<D>(Ks, kb, j0, Tk);
        fa_load_tile<D>(Vs, vb, j0, Tk);
        __syncthreads();
        fa_mm_nt<D>(Ss + warp * 16 * dm::LS, dm::LS, Qs + warp * 16 * dm::LH, dm::LH, Ks, dm::LH);
        __syncwarp();
        /* online softmax of row `row`, columns half*32 .. +32 (keys j0 + those), read once */
        int nvalid = Tk - j0 - half * 32;
        const float *s = srow + half * 32;
        float sv[32], tmax = -INFINITY;
#pragma unroll
        for (int c = 0; c < 32; c++) {
            int cc = (c + sk) & 31;
            sv[c] = cc < nvalid ? s[cc] * scale : -INFINITY;
            tmax = fmaxf(tmax, sv[c]);
        }
        tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1));
        float mnew = fmaxf(m, tmax); /* finite: a tile holds at least one key */
        float alpha = expf(m - mnew), sum = 0.0f;
#pragma unroll
        for (int c = 0; c < 32; c++) {
            float p = expf(sv[c] - mnew); /* masked: exp(-inf) = 0 */
            prow[(c + sk) & 31] = __float2bfloat16_rn(p);
            sum += p;
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        l = l * alpha + sum, m = mnew;
        __syncwarp(); /* P written, and S read, by every lane before the P v products overwrite S */
        fa_acc acc[D / 16];
        for (int n = 0; n < D / 16; n++) fa_wmma::fill_fragment(acc[n], 0.0f);
        fa_mm_nn_acc<D>(acc, Ps + warp * 16 * dm::LP, dm::LP, Vs, dm::LH);
        for (int n = 0; n < D / 16; n++)
            fa_wmma::store_matrix_sync(Ss + warp * 16 * dm::LS + n * 16, acc[n], dm::LS, fa_wmma::mem_row_major);
        __syncwarp();
        const float *t = srow + half * (D / 2);
        for (int c = 0; c < D / 2; c++) {
            int cc = (c + sk) % (D / 2);
            orow[cc] = orow[cc] * alpha + t[cc];
        }
    }
    float inv = 1.0f / l;
    for (int c = 0; c < D / 2; c++) orow[(c + sk) % (D / 2)] *= inv;
    if (lse && half == 0 && r0 + row < Tq) lse[item * Tq + r0 + row] = m + logf(l);
    __syncthreads();
    float *ob = out + item * Tq * D;
    for (int i = threadIdx.x; i < FA_ROWS * D; i += FA_THREADS) {
        int r = i / D, c = i % D;
        if (r0 + r < Tq) ob[(int64_t)(r0 + r) * D + c] = Os[r * dm::LS + c];
    }
}

/* ---- backward ----------------------------------------------------------------------------- */

/* Dv [rows] = sum_c bf16(dout[row][c]) out[row][c]: one warp per row (blockDim FA_THREADS). dout is
 * rounded as the products' dP = dout v^T round it, so that sum_j dS_j = sum_j P_j (dP_j - D) stays
 * near 0 as it is exactly (a softmax gradient): with fp32 dout, D and dP differ by the rounding
 * (~2^-9 relative), which with one key turns an exact zero dq, dk into noise of that size. */
template <int D>
static __global__ void __launch_bounds__(FA_THREADS) fa_rowdot_kernel(float *Dv, const float *dout, const float *out,
                                                                       int64_t rows) {
    int64_t row = (int64_t)blockIdx.x * (FA_THREADS / 32) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    float s = 0.0f;
    if (row < rows)
        for (int c = lane; c < D; c += 32) s += __bfloat162float(__float2bfloat16_rn(dout[row * D + c])) * out[row * D + c];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (row < rows && lane == 0) Dv[row] = s;
}

/* P and dS of the warp's 16 rows x 64 columns from S, dP (fp32, stride LS): lanes 2r, 2r+1 take row
 * r, 32 columns each. Row-side and column-side vectors (lse, D) come per row (rowvec) or per
 * column (colvec) depending on which side the queries are; masked entries are 0. */
template <int D>
static __device__ void fa_grad_probs(fa_bf16 *P, fa_bf16 *dS, const float *S, const float *dP, int row, int half,
                                     float scale, const float *lse, const float *Dv, int qside_rows, int nvalid) {
    typedef fa_dims<D> dm;
    const float *s = S + row * dm::LS + half * 32, *g = dP + row * dm::LS + half * 32;
    int sk = fa_skew(threadIdx.x & 31);
    for (int c0 = 0; c0 < 32; c0++) {
        int c = (c0 + sk) & 31, col = half * 32 + c, qi = qside_rows ? row : col;
        float p = 0.0f, ds = 0.0f;
        if (col < nvalid) {
            p = expf(s[c] * scale - lse[qi]);
            ds = p * (g[c] - Dv[qi]);
        }
        if (P) P[row * dm::LP + col] = __float2bfloat16_rn(p);
        dS[row * dm::LP + col] = __float2bfloat16_rn(ds);
    }
}

/* Shared memory of both backward kernels: the block's own two bf16 [64][D] tiles (K, V for dK dV;
 * Q, dout for dQ), the two streamed each iteration, P and dS (bf16 [64][64]; dQ has no P), S and
 * dP (fp32 [64][LS]), and the streamed lse and D rows. */
template <int D> struct fa_bwd_smem {
    fa_bf16 *own0, *own1, *cur0, *cur1, *P, *dS;
    float *S, *dP, *L, *Dr;
    __device__ fa_bwd_smem(unsigned char *m, bool with_p) {
        typedef fa_dims<D> dm;
        own0 = (fa_bf16 *)m, own1 = (fa_bf16 *)(m + dm::tile_h);
        cur0 = (fa_bf16 *)(m + 2 * dm::tile_h), cur1 = (fa_bf16 *)(m + 3 * dm::tile_h);
        unsigned char *t = m + 4 * dm::tile_h;
        P = with_p ? (fa_bf16 *)t : NULL;
        dS = (fa_bf16 *)(t + (with_p ? dm::tile_p : 0));
        S = (float *)(t + (with_p ? 2 : 1) * dm::tile_p), dP = S + FA_ROWS * dm::LS;
        L = dP + FA_ROWS * dm::LS, Dr = L + FA_ROWS;
    }
};

/* The warp's accumulators times `mul` -> shared staging (stride LS) -> rows r0.. of dst [n][D]. */
template <int D>
static __device__ void fa_store_acc(float *dst, int r0, int n, float *stage, fa_acc *acc, float mul) {
    typedef fa_dims<D> dm;
    int warp = threadIdx.x >> 5;
    for (int j = 0; j < D / 16; j++)
        fa_wmma::store_matrix_sync(stage + warp * 16 * dm::LS + j * 16, acc[j], dm::LS, fa_wmma::mem_row_major);
    __syncthreads();
    for (int i = threadIdx.x; i < FA_ROWS * D; i += FA_THREADS) {
        int r = i / D, c = i % D;
        if (r0 + r < n) dst[(int64_t)(r0 + r) * D + c] = stage[r * dm::LS + c] * mul;
    }
}

/* dK, dV: grid (ceil(Tk / 64), items); lse, Dv [items, Tq]. */
template <int D>
static __global__ void __launch_bounds__(FA_THREADS)
    fa_backward_kv_kernel(float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v,
                          const float *lse, const float *Dv, int Tq, int Tk, float scale, int64_t item0) {
    typedef fa_dims<D> dm;
    RHD_FA_SMEM(smem);
    fa_bwd_smem<D> sm(smem, true);
    fa_bf16 *Ks = sm.own0, *Vs = sm.own1, *Qs = sm.cur0, *dOs = sm.cur1, *Ps = sm.P, *dSs = sm.dS;
    float *Ss = sm.S, *dPs = sm.dP, *Ls = sm.L, *Ds = sm.Dr;
    const fa_pos ps(item0);
    const int64_t item = ps.item;
    const int c0 = ps.r0, warp = ps.warp;
    const float *qb = q + item * Tq * D, *ob = dout + item * Tq * D;

    fa_load_tile<D>(Ks, k + item * Tk * D, c0, Tk);
    fa_load_tile<D>(Vs, v + item * Tk * D, c0, Tk);
    fa_acc dKa[D / 16], dVa[D / 16];
    for (int n = 0; n < D / 16; n++) fa_wmma::fill_fragment(dKa[n], 0.0f), fa_wmma::fill_fragment(dVa[n], 0.0f);
    for (int i0 = 0; i0 < Tq; i0 += FA_COLS) {
        __syncthreads();
        fa_load_tile<D>(Qs, qb, i0, Tq);
        fa_load_tile<D>(dOs, ob, i0, Tq);
        fa_load_rows(Ls, lse + item * Tq, i0, Tq, INFINITY);
        fa_load_rows(Ds, Dv + item * Tq, i0, Tq, 0.0f);
        __syncthreads();
        /* S^T = K Q^T and dP^T = V dout^T for the warp's 16 keys x 64 queries */
        fa_mm_nt<D>(Ss + warp * 16 * dm::LS, dm::LS, Ks + warp * 16 * dm::LH, dm::LH, Qs, dm::LH);
        fa_mm_nt<D>(dPs + warp * 16 * dm::LS, dm::LS, Vs + warp * 16 * dm::LH, dm::LH, dOs, dm::LH);
        __syncwarp();
        fa_grad_probs<D>(Ps, dSs, Ss, dPs, ps.row, ps.half, scale, Ls, Ds, 0, Tq - i0);
        __syncwarp();
        fa_mm_nn_acc<D>(dVa, Ps + warp * 16 * dm::LP, dm::LP, dOs, dm::LH);
        fa_mm_nn_acc<D>(dKa, dSs + warp * 16 * dm::LP, dm::LP, Qs, dm::LH);
    }
    fa_store_acc<D>(dk + item * Tk * D, c0, Tk, Ss, dKa, scale);
    fa_store_acc<D>(dv + item * Tk * D, c0, Tk, dPs, dVa, 1.0f);
}

/* dQ: grid (ceil(Tq / 64), items). */
template <int D>
static __global__ void __launch_bounds__(FA_THREADS)
    fa_backward_q_kernel(float *dq, const float *dout, const float *q, const float *k, const float *v,
                         const float *lse, const float *Dv, int Tq, int Tk, float scale, int64_t item0) {
    typedef fa_dims<D> dm;
    RHD_FA_SMEM(smem);
    fa_bwd_smem<D> sm(smem, false);
    fa_bf16 *Qs = sm.own0, *dOs = sm.own1, *Ks = sm.cur0, *Vs = sm.cur1, *dSs = sm.dS;
    float *Ss = sm.S, *dPs = sm.dP, *Ls = sm.L, *Ds = sm.Dr;
    const fa_pos ps(item0);
    const int64_t item = ps.item;
    const int r0 = ps.r0, warp = ps.warp;
    const float *kb = k + item * Tk * D, *vb = v + item * Tk * D;

    fa_load_tile<D>(Qs, q + item * Tq * D, r0, Tq);
    fa_load_tile<D>(dOs, dout + item * Tq * D, r0, Tq);
    fa_load_rows(Ls, lse + item * Tq, r0, Tq, INFINITY);
    fa_load_rows(Ds, Dv + item * Tq, r0, Tq, 0.0f);
    fa_acc dQa[D / 16];
    for (int n = 0; n < D / 16; n++) fa_wmma::fill_fragment(dQa[n], 0.0f);
    for (int j0 = 0; j0 < Tk; j0 += FA_COLS) {
        __syncthreads();
        fa_load_tile<D>(Ks, kb, j0, Tk);
        fa_load_tile<D>(Vs, vb, j0, Tk);
        __syncthreads();
        fa_mm_nt<D>(Ss + warp * 16 * dm::LS, dm::LS, Qs + warp * 16 * dm::LH, dm::LH, Ks, dm::LH);
        fa_mm_nt<D>(dPs + warp * 16 * dm::LS, dm::LS, dOs + warp * 16 * dm::LH, dm::LH, Vs, dm::LH);
        __syncwarp();
        fa_grad_probs<D>(NULL, dSs, Ss, dPs, ps.row, ps.half, scale, Ls, Ds, 1, Tk - j0);
        __syncwarp();
        fa_mm_nn_acc<D>(dQa, dSs + warp * 16 * dm::LP, dm::LP, Ks, dm::LH);
    }
    fa_store_acc<D>(dq + item * Tq * D, r0, Tq, Ss, dQa, scale);
}
#endif
