/* kernels/attention.h: multi-head softmax attention, the UNet's joint self + cross attention
 * layout (AttentionBlock / QKVAttention of pretrained_diffusion/unet.py), and the global-embedding
 * AttentionPooling (spec diffusion.md §1.2, §2.4, §2.5, §5.2).
 *
 * Core: per (batch, head) item, q [Tq, d], k [Tk, d], v [Tk, d] (row-major, tokens outer),
 *   out = softmax(scale * q k^T) v, softmax over the Tk keys in fp32 with the row maximum
 *   subtracted; the CPU sums the exponentials in double.
 *   Saved for backward: lse [B, H, Tq] = log sum_j exp(scale * q_i . k_j) (natural log, max
 *   included), plus `out` itself. Backward recomputes the probabilities P = exp(scale q k^T - lse)
 *   block by block, so no [Tq, Tk] matrix outlives a call (memory O(T d), not O(T^2)):
 *     D_i = sum_c dout_ic out_ic,  dS = P * (dout v^T - D),
 *     dq = scale dS k,  dk = scale dS^T q,  dv = P^T dout.
 *   dq, dk, dv are written (=). lse may be NULL in forward when no backward will follow.
 *   The VAE mid attention (§1.2) is this core with B = 1, H = 1, d = 512, scale = 1/sqrt(512).
 *
 * UNet layout (§2.4): the Linear/1x1-conv outputs arrive channels-first.
 *   qkv [B, 3C, T], head-major: head h owns channels [3dh, 3dh+3d): q, then k, then v (d = C/H).
 *   ekv [B, 2C, Te] (encoder tokens; may be NULL with Te = 0): head h owns [2dh, 2dh+2d): k, v.
 *   split:  q [B,H,T,d];  k, v [B,H,Te+T,d] with the Te encoder tokens FIRST, then the T self
 *           tokens.  split_backward is its adjoint: dqkv, dekv written (=) from dq, dk, dv.
 *   merge:  o [B,H,T,d] -> out [B,C,T], head h -> channels [dh, dh+d).  merge_backward: the
 *           inverse permutation, do written (=).
 *   block:  out [B,C,T] = merge(attention(split(qkv, ekv))) with scale 1/sqrt(d) (the original's
 *           (q d^-1/4).(k d^-1/4)); lse [B,H,T] saved. The block backward re-splits qkv/ekv and
 *           un-merges `out`, so a caller keeps only qkv, ekv, out and lse. dqkv, dekv written (=);
 *           dekv may be NULL (encoder tokens not learned), and must be NULL when Te = 0.
 *   Scratch: the CPU allocates its own; CUDA uses rhd_ctx_workspace (blocks of (batch, head)
 *   items sized to keep the [Tq, Tk] score matrices under 256 MiB).
 *
 * AttentionPooling (§2.5): x [B, L, W] tokens (already LayerNormed), pos [W], Linear weights
 *   wq, wk, wv [W, W] ([out, in]) and biases bq, bk, bv [W], heads nh (head dim dh = W/nh):
 *     cls = mean_l x[b,l,:] + pos;  S = [cls, x_0 .. x_{L-1}]  (L+1 entries)
 *     q = wq cls + bq;  k_j = wk S_j + bk;  v_j = wv S_j + bv
 *     per head: p_j = softmax_j(q_h . k_jh / sqrt(dh));  y[b, head h channels] = sum_j p_j v_jh
 *   No output projection. Backward recomputes the forward (sizes are tiny): dx written (=),
 *   dpos, dwq, dbq, dwk, dbk, dwv, dbv accumulated (+=), over the batch in a fixed order.
 *
 * CUDA: cuBLAS strided-batched GEMMs (pedantic fp32, no TF32 unless ctx->allow_tf32) and row
 * softmax kernels; under --bf16 (ctx->allow_bf16) with d = 16, 32, 64 or 128 the core is fused
 * instead (kernels/attention_fused.cuh: bf16 tensor cores, scores only in shared memory, the same
 * contract; RHD_NO_FUSED_ATTN=1 keeps the GEMMs). The pooling kernels run the same per-element
 * helpers as the CPU (below). */
#ifndef RHD_KERNELS_ATTENTION_H
#define RHD_KERNELS_ATTENTION_H
#include <stdint.h>
#include <math.h>
#include "common/backend.h"
#include "common/hd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out [B,H,Tq,d], lse [B,H,Tq] (or NULL); q [B,H,Tq,d]; k, v [B,H,Tk,d]. */
void rhd_attention_forward(rhd_ctx *ctx, float *out, float *lse, const float *q, const float *k, const float *v,
                           int B, int H, int Tq, int Tk, int d, float scale);
/* dq [B,H,Tq,d], dk, dv [B,H,Tk,d] written; dout, out [B,H,Tq,d]; lse [B,H,Tq] from forward. */
void rhd_attention_backward(rhd_ctx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q,
                            const float *k, const float *v, const float *out, const float *lse, int B, int H,
                            int Tq, int Tk, int d, float scale);

/* q [B,H,T,d], k, v [B,H,Te+T,d] <- qkv [B,3C,T], ekv [B,2C,Te] (NULL iff Te = 0); C = H d. */
void rhd_attn_split_qkv(rhd_ctx *ctx, float *q, float *k, float *v, const float *qkv, const float *ekv, int B, int H,
                        int d, int T, int Te);
/* dqkv [B,3C,T], dekv [B,2C,Te] (may be NULL: encoder gradient not wanted) <- dq, dk, dv. */
void rhd_attn_split_qkv_backward(rhd_ctx *ctx, float *dqkv, float *dekv, const float *dq, const float *dk,
                                 const float *dv, int B, int H, int d, int T, int Te);
/* out [B,C,T] <- o [B,H,T,d]. */
void rhd_attn_merge_heads(rhd_ctx *ctx, float *out, const float *o, int B, int H, int d, int T);
/* do_ [B,H,T,d] <- dout [B,C,T]. */
void rhd_attn_merge_heads_backward(rhd_ctx *ctx, float *do_, const float *dout, int B, int H, int d, int T);

/* The UNet attention core: out [B,C,T], lse [B,H,T] (or NULL) <- qkv [B,3C,T], ekv [B,2C,Te]. */
void rhd_attention_block_forward(rhd_ctx *ctx, float *out, float *lse, const float *qkv, const float *ekv, int B,
                                 int C, int H, int T, int Te);
/* dqkv [B,3C,T], dekv [B,2C,Te] (or NULL) written <- dout, qkv, ekv, out, lse [B,H,T]. */
void rhd_attention_block_backward(rhd_ctx *ctx, float *dqkv, float *dekv, const float *dout, const float *qkv,
                                  const float *ekv, const float *out, const float *lse, int B, int C, int H, int T,
                                  int Te);

/* AttentionPooling: y [B,W] <- x [B,L,W]; pos [W]; wq, wk, wv [W,W]; bq, bk, bv [W]. */
void rhd_attention_pool_forward(rhd_ctx *ctx, float *y, const float *x, const float *pos, const float *wq,
                                const float *bq, const float *wk, const float *bk, const float *wv, const float *bv,
                                int B, int L, int W, int heads);
void rhd_attention_pool_backward(rhd_ctx *ctx, float *dx, float *dpos, float *dwq, float *dbq, float *dwk,
                                 float *dbk, float *dwv, float *dbv, const float *dy, const float *x,
                                 const float *pos, const float *wq, const float *bq, const float *wk,
                                 const float *bk, const float *wv, const float *bv, int B, int L, int W, int heads);

#ifdef RHD_CUDA
void rhd_attention_forward_cuda(rhd_ctx *ctx, float *out, float *lse, const float *q, const float *k, const float *v,
                                int B, int H, int Tq, int Tk, int d, float scale);
void rhd_attention_backward_cuda(rhd_ctx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q,
                                 const float *k, const float *v, const float *out, const float *lse, int B, int H,
                                 int Tq, int Tk, int d, float scale);
void rhd_attn_split_qkv_cuda(rhd_ctx *ctx, float *q, float *k, float *v, const float *qkv, const float *ekv, int B,
                             int H, int d, int T, int Te);
void rhd_attn_split_qkv_backward_cuda(rhd_ctx *ctx, float *dqkv, float *dekv, const float *dq, const float *dk,
                                      const float *dv, int B, int H, int d, int T, int Te);
void rhd_attn_merge_heads_cuda(rhd_ctx *ctx, float *out, const float *o, int B, int H, int d, int T);
void rhd_attn_merge_heads_backward_cuda(rhd_ctx *ctx, float *do_, const float *dout, int B, int H, int d, int T);
void rhd_attention_block_forward_cuda(rhd_ctx *ctx, float *out, float *lse, const float *qkv, const float *ekv,
                                      int B, int C, int H, int T, int Te);
void rhd_attention_block_backward_cuda(rhd_ctx *ctx, float *dqkv, float *dekv, const float *dout,
                                       const float *qkv, const float *ekv, const float *out, const float *lse,
                                       int B, int C, int H, int T, int Te);
void rhd_attention_pool_forward_cuda(rhd_ctx *ctx, float *y, const float *x, const float *pos, const float *wq,
                                     const float *bq, const float *wk, const float *bk, const float *wv,
                                     const float *bv, int B, int L, int W, int heads);
void rhd_attention_pool_backward_cuda(rhd_ctx *ctx, float *dx, float *dpos, float *dwq, float *dbq, float *dwk,
                                      float *dbk, float *dwv, float *dbv, const float *dy, const float *x,
                                      const float *pos, const float *wq, const float *bq, const float *wk,
                                      const float *bk, const float *wv, const float *bv, int B, int L, int W,
                                      int heads);
#endif
#ifdef __cplusplus
}
#endif

/* ---- layout maps shared by the CPU loops and the CUDA kernels ------------------------------ */

/* Channel of qkv [3C] holding component `part` (0 q, 1 k, 2 v), element c of head h. */
RHD_HD static inline int64_t rhd_qkv_channel(int h, int part, int c, int d) { return (int64_t)3 * d * h + (int64_t)part * d + c; }
/* Channel of ekv [2C] holding component `part` (0 k, 1 v), element c of head h. */
RHD_HD static inline int64_t rhd_ekv_channel(int h, int part, int c, int d) { return (int64_t)2 * d * h + (int64_t)part * d + c; }

/* ---- AttentionPooling per-element math (shared by attention.c and attention.cu) -------------
 * Scratch per batch item b (all row-major): S [L+1, W], Q [W], K [L+1, W], V [L+1, W],
 * P [nh, L+1]; for backward also G [nh, L+1] (logit gradients), dQ [W], dK, dV, dS [L+1, W]. */

/* S[j][c]: j = 0 the class token (mean of the tokens + pos), else token j-1. */
RHD_HD static inline float rhd_pool_seq(const float *x, const float *pos, int L, int W, int j, int c) {
    if (j > 0) return x[(int64_t)(j - 1) * W + c];
    double s = 0;
    for (int l = 0; l < L; l++) s += x[(int64_t)l * W + c];
    return (float)(s / L) + pos[c];
}

/* Linear: bias[c] + sum_i w[c][i] s[i]. */
RHD_HD static inline float rhd_pool_linear(const float *w, const float *bias, const float *s, int W, int c) {
    double a = bias[c];
    for (int i = 0; i < W; i++) a += (double)w[(int64_t)c * W + i] * s[i];
    return (float)a;
}

/* Probabilities of head h over the L+1 entries: p[j] = softmax_j(Q_h . K_jh / sqrt(dh)). */
RHD_HD static inline void rhd_pool_probs(float *p, const float *Q, const float *K, int L, int W, int dh, int h) {
    float scale = 1.0f / sqrtf((float)dh);
    float m = -INFINITY;
    for (int j = 0; j <= L; j++) {
        double a = 0;
        for (int c = 0; c < dh; c++) a += (double)Q[h * dh + c] * K[(int64_t)j * W + h * dh + c];
        p[j] = (float)a * scale;
        m = fmaxf(m, p[j]);
    }
    double s = 0;
    for (int j = 0; j <= L; j++) p[j] = expf(p[j] - m), s += p[j];
    float inv = (float)(1.0 / s);
    for (int j = 0; j <= L; j++) p[j] *= inv;
}

/* y[c] = sum_j P[head of c][j] V[j][c]. */
RHD_HD static inline float rhd_pool_out(const float *P, const float *V, int L, int W, int dh, int c) {
    const float *p = P + (int64_t)(c / dh) * (L + 1);
    double a = 0;
    for (int j = 0; j <= L; j++) a += (double)p[j] * V[(int64_t)j * W + c];
    return (float)a;
}

/* Logit gradients of head h: G[j] = p_j (dp_j - sum_k p_k dp_k), dp_j = dy_h . V_jh, all in
 * double (dp_j is recomputed rather than stored rounded: with L = 1 the two dp differ little);
 * G already includes the 1/sqrt(dh) logit scale. */
RHD_HD static inline double rhd_pool_dp(const float *V, const float *dy, int W, int dh, int h, int j) {
    double a = 0;
    for (int c = 0; c < dh; c++) a += (double)dy[h * dh + c] * V[(int64_t)j * W + h * dh + c];
    return a;
}
RHD_HD static inline void rhd_pool_logit_grad(float *G, const float *P, const float *V, const float *dy, int L, int W,
                                              int dh, int h) {
    const float *p = P + (int64_t)h * (L + 1);
    double dot = 0;
    for (int j = 0; j <= L; j++) dot += (double)p[j] * rhd_pool_dp(V, dy, W, dh, h, j);
    double scale = 1.0 / sqrt((double)dh);
    for (int j = 0; j <= L; j++) G[j] = (float)(p[j] * (rhd_pool_dp(V, dy, W, dh, h, j) - dot) * scale);
}

/* dQ[c] = sum_j G[h][j] K[j][c] (h = c / dh). */
RHD_HD static inline float rhd_pool_dq(const float *G, const float *K, int L, int W, int dh, int c) {
    const float *g = G + (int64_t)(c / dh) * (L + 1);
    double a = 0;
    for (int j = 0; j <= L; j++) a += (double)g[j] * K[(int64_t)j * W + c];
    return (float)a;
}

/* dS[j][i] = sum_c wk[c][i] dK[j][c] + wv[c][i] dV[j][c] (+ sum_c wq[c][i] dQ[c] for j = 0). */
RHD_HD static inline float rhd_pool_dseq(const float *wq, const float *wk, const float *wv, const float *dQ,
                                         const float *dK, const float *dV, int W, int j, int i) {
    double a = 0;
    for (int c = 0; c < W; c++)
        a += (double)wk[(int64_t)c * W + i] * dK[(int64_t)j * W + c] + (double)wv[(int64_t)c * W + i] * dV[(int64_t)j * W + c];
    if (j == 0)
        for (int c = 0; c < W; c++) a += (double)wq[(int64_t)c * W + i] * dQ[c];
    return (float)a;
}
#endif
