/* kernels/attention.c: CPU reference of the attention ops (contract in attention.h) and the
 * backend dispatch. Mirrors QKVAttention / AttentionBlock (pretrained_diffusion/unet.py), the
 * diffusers VAE mid-block attention, and AttentionPooling.
 *
 * The core runs per (batch, head) item and per block of query rows: the scores of one block
 * [rows, Tk] come from one single-threaded OpenBLAS sgemm, the softmax (double sums) runs over
 * the rows, and P v is a second sgemm; OpenMP threads take whole blocks (forward) or whole items
 * (backward, where dk and dv are accumulated block after block in a fixed order). No result
 * depends on the thread count. */
#include "kernels/attention.h"
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* Query rows per block: keep the [rows, Tk] score block near 1 MiB (it and the probabilities stay
 * in cache between the two GEMMs), at least 32 rows so the GEMMs stay efficient, and split a
 * single item into several blocks when there are few (b, h) items, so the forward has >= 8
 * tasks. A function of the shapes only: the blocking (and with it the summation order of dk, dv)
 * never depends on the thread count. */
static int attn_rows(int64_t BH, int Tq, int Tk) {
    int r = (1 << 18) / (Tk > 0 ? Tk : 1);
    if (r > 512) r = 512;
    int64_t want = BH >= 8 ? 1 : (8 + BH - 1) / (BH > 0 ? BH : 1); /* blocks per item */
    int64_t split = (Tq + want - 1) / want;
    if (split < r) r = (int)split;
    if (r < 32) r = 32;
    return r < Tq ? r : Tq;
}

/* exp(x) for x <= 0 (scores minus their row maximum; tiny positive rounding excess is fine),
 * written so that the compiler vectorises the loop over a row (SSE2 conversions only, no libm
 * call): x = n ln2 + r with n = round(x / ln2), |r| <= ln2/2, e^r by its degree-7 Taylor polynomial
 * (truncation error < 5e-9 relative), times 2^n assembled in the exponent bits. Arguments below
 * -87 are clamped there (weights < 2e-38 relative to the row maximum's). */
static inline float attn_exp(float x) {
    unsigned u; /* clamp x >= -87 on the bits (negative floats grow with their magnitude as unsigned) */
    memcpy(&u, &x, sizeof u);
    u = u > 0xC2AE0000u ? 0xC2AE0000u : u;
    memcpy(&x, &u, sizeof x);
    int n = (int)(x * 1.44269504088896341f - 0.5f); /* truncation toward 0 = rounding for x <= 0 */
    float nf = (float)n;
    float r = x - nf * 0.693145751953125f; /* ln2 in two parts: the first product is exact */
    r = r - nf * 1.428606820309417e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int bits = (n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return p * two_n;
}

/* In place: row <- softmax(row); returns log sum exp(row). */
static double softmax_row(float *row, int n) {
    float m = row[0];
#pragma omp simd reduction(max : m)
    for (int j = 1; j < n; j++) m = row[j] > m ? row[j] : m;
#pragma omp simd
    for (int j = 0; j < n; j++) row[j] = attn_exp(row[j] - m);
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < n; j++) s += row[j];
    float inv = (float)(1.0 / s);
#pragma omp simd
    for (int j = 0; j < n; j++) row[j] *= inv;
    return m + log(s);
}

static void attention_forward_cpu(float *out, float *lse, const float *q, const float *k, const float *v, int64_t BH,
                                  int Tq, int Tk, int d, float scale) {
    int rows = attn_rows(BH, Tq, Tk);
    if (rows <= 0) return;
    int64_t nblk = (Tq + rows - 1) / rows;
#pragma omp parallel
    {
        float *S = rhd_xmalloc(sizeof(float) * (size_t)rows * Tk);
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < BH * nblk; task++) { /* one block of query rows of one (b, h) */
            int64_t bh = task / nblk;
            int r0 = (int)(task % nblk) * rows, m = Tq - r0 < rows ? Tq - r0 : rows;
            const float *kb = k + bh * Tk * d, *vb = v + bh * Tk * d;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, Tk, d, scale, q + (bh * Tq + r0) * d, d, kb, d,
                        0.0f, S, Tk);
            for (int i = 0; i < m; i++) {
                double l = softmax_row(S + (int64_t)i * Tk, Tk);
                if (lse) lse[bh * Tq + r0 + i] = (float)l;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, d, Tk, 1.0f, S, Tk, vb, d, 0.0f,
                        out + (bh * Tq + r0) * d, d);
        }
        free(S);
    }
}

/* Parallel over (b, h) items; within one item the query blocks run in order, so dk and dv are
 * summed over the blocks in a fixed order. */
static void attention_backward_cpu(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                   const float *k, const float *v, const float *out, const float *lse, int64_t BH,
                                   int Tq, int Tk, int d, float scale) {
    int rows = attn_rows(BH, Tq, Tk);
    if (rows <= 0) {
        memset(dk, 0, sizeof(float) * BH * Tk * d);
        memset(dv, 0, sizeof(float) * BH * Tk * d);
        return;
    }
#pragma omp parallel
    {
        float *P = rhd_xmalloc(sizeof(float) * (size_t)rows * Tk);
        float *dS = rhd_xmalloc(sizeof(float) * (size_t)rows * Tk);
#pragma omp for schedule(dynamic, 1)
        for (int64_t bh = 0; bh < BH; bh++) {
            int64_t qo = bh * Tq * d, ko = bh * Tk * d;
            for (int r0 = 0; r0 < Tq; r0 += rows) {
                int m = Tq - r0 < rows ? Tq - r0 : rows;
                const float *qr = q + qo + (int64_t)r0 * d, *dor = dout + qo + (int64_t)r0 * d;
                const float *outr = out + qo + (int64_t)r0 * d;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, Tk, d, scale, qr, d, k + ko, d, 0.0f, P, Tk);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, Tk, d, 1.0f, dor, d, v + ko, d, 0.0f, dS, Tk);
                for (int i = 0; i < m; i++) {
                    double D = 0;
                    for (int c = 0; c < d; c++) D += (double)dor[(int64_t)i * d + c] * outr[(int64_t)i * d + c];
                    float l = lse[bh * Tq + r0 + i], Df = (float)D;
                    float *p = P + (int64_t)i * Tk, *g = dS + (int64_t)i * Tk;
#pragma omp simd
                    for (int j = 0; j < Tk; j++) {
                        float pj = attn_exp(p[j] - l);
                        p[j] = pj;
                        g[j] = pj * (g[j] - Df);
                    }
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, d, Tk, scale, dS, Tk, k + ko, d, 0.0f,
                            dq + qo + (int64_t)r0 * d, d);
                float beta = r0 == 0 ? 0.0f : 1.0f;
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Tk, d, m, scale, dS, Tk, qr, d, beta, dk + ko, d);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Tk, d, m, 1.0f, P, Tk, dor, d, beta, dv + ko, d);
            }
        }
        free(P);
        free(dS);
    }
}

void rhd_attention_forward(rhd_ctx *ctx, float *out, float *lse, const float *q, const float *k, const float *v,
                           int B, int H, int Tq, int Tk, int d, float scale) {
    RHD_ASSERT(B >= 0 && H >= 0 && Tq >= 0 && Tk >= 1 && d >= 1);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_attention_forward_cuda(ctx, out, lse, q, k, v, B, H, Tq, Tk, d, scale);
        return;
    }
#endif
    attention_forward_cpu(out, lse, q, k, v, (int64_t)B * H, Tq, Tk, d, scale);
}

void rhd_attention_backward(rhd_ctx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q,
                            const float *k, const float *v, const float *out, const float *lse, int B, int H,
                            int Tq, int Tk, int d, float scale) {
    RHD_ASSERT(B >= 0 && H >= 0 && Tq >= 0 && Tk >= 1 && d >= 1);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_attention_backward_cuda(ctx, dq, dk, dv, dout, q, k, v, out, lse, B, H, Tq, Tk, d, scale);
        return;
    }
#endif
    attention_backward_cpu(dq, dk, dv, dout, q, k, v, out, lse, (int64_t)B * H, Tq, Tk, d, scale);
}

/* ---- UNet layout ------------------------------------------------------------------------------ */

static void split_cpu(float *q, float *k, float *v, const float *qkv, const float *ekv, int B, int H, int d, int T,
                      int Te) {
    int64_t C = (int64_t)H * d, Tk = (int64_t)Te + T;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            float *qh = q + ((int64_t)b * H + h) * T * d;
            float *kh = k + ((int64_t)b * H + h) * Tk * d, *vh = v + ((int64_t)b * H + h) * Tk * d;
            for (int c = 0; c < d; c++) {
                const float *sq = qkv + ((int64_t)b * 3 * C + rhd_qkv_channel(h, 0, c, d)) * T;
                const float *sk = qkv + ((int64_t)b * 3 * C + rhd_qkv_channel(h, 1, c, d)) * T;
                const float *sv = qkv + ((int64_t)b * 3 * C + rhd_qkv_channel(h, 2, c, d)) * T;
                for (int t = 0; t < T; t++) {
                    qh[(int64_t)t * d + c] = sq[t];
                    kh[(Te + t) * d + c] = sk[t];
                    vh[(Te + t) * d + c] = sv[t];
                }
                if (Te > 0) {
                    const float *ek = ekv + ((int64_t)b * 2 * C + rhd_ekv_channel(h, 0, c, d)) * Te;
                    const float *ev = ekv + ((int64_t)b * 2 * C + rhd_ekv_channel(h, 1, c, d)) * Te;
                    for (int t = 0; t < Te; t++) {
                        kh[(int64_t)t * d + c] = ek[t];
                        vh[(int64_t)t * d + c] = ev[t];
                    }
                }
            }
        }
}

static void split_backward_cpu(float *dqkv, float *dekv, const float *dq, const float *dk, const float *dv, int B,
                               int H, int d, int T, int Te) {
    int64_t C = (int64_t)H * d, Tk = (int64_t)Te + T;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *qh = dq + ((int64_t)b * H + h) * T * d;
            const float *kh = dk + ((int64_t)b * H + h) * Tk * d, *vh = dv + ((int64_t)b * H + h) * Tk * d;
            for (int c = 0; c < d; c++) {
                float *sq = dqkv + ((int64_t)b * 3 * C + rhd_qkv_channel(h, 0, c, d)) * T;
                float *sk = dqkv + ((int64_t)b * 3 * C + rhd_qkv_channel(h, 1, c, d)) * T;
                float *sv = dqkv + ((int64_t)b * 3 * C + rhd_qkv_channel(h, 2, c, d)) * T;
                for (int t = 0; t < T; t++) {
                    sq[t] = qh[(int64_t)t * d + c];
                    sk[t] = kh[(Te + t) * d + c];
                    sv[t] = vh[(Te + t) * d + c];
                }
                if (Te > 0 && dekv) {
                    float *ek = dekv + ((int64_t)b * 2 * C + rhd_ekv_channel(h, 0, c, d)) * Te;
                    float *ev = dekv + ((int64_t)b * 2 * C + rhd_ekv_channel(h, 1, c, d)) * Te;
                    for (int t = 0; t < Te; t++) {
                        ek[t] = kh[(int64_t)t * d + c];
                        ev[t] = vh[(int64_t)t * d + c];
                    }
                }
            }
        }
}

/* dir 0: out [B,C,T] <- o [B,H,T,d]; dir 1: o <- out. */
static void merge_cpu(float *out, float *o, int B, int H, int d, int T, int dir) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            float *oh = o + ((int64_t)b * H + h) * T * d;
            for (int c = 0; c < d; c++) {
                float *row = out + ((int64_t)b * H * d + (int64_t)h * d + c) * T;
                if (dir == 0)
                    for (int t = 0; t < T; t++) row[t] = oh[(int64_t)t * d + c];
                else
                    for (int t = 0; t < T; t++) oh[(int64_t)t * d + c] = row[t];
            }
        }
}

void rhd_attn_split_qkv(rhd_ctx *ctx, float *q, float *k, float *v, const float *qkv, const float *ekv, int B, int H,
                        int d, int T, int Te) {
    RHD_ASSERT(B >= 0 && H >= 1 && d >= 1 && T >= 0 && Te >= 0 && (Te == 0) == (ekv == NULL));
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_attn_split_qkv_cuda(ctx, q, k, v, qkv, ekv, B, H, d, T, Te);
        return;
    }
#endif
    split_cpu(q, k, v, qkv, ekv, B, H, d, T, Te);
}

void rhd_attn_split_qkv_backward(rhd_ctx *ctx, float *dqkv, float *dekv, const float *dq, const float *dk,
                                 const float *dv, int B, int H, int d, int T, int Te) {
    RHD_ASSERT(B >= 0 && H >= 1 && d >= 1 && T >= 0 && Te >= 0 && !(Te == 0 && dekv));
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_attn_split_qkv_backward_cuda(ctx, dqkv, dekv, dq, dk, dv, B, H, d, T, Te);
        return;
    }
#endif
    split_backward_cpu(dqkv, dekv, dq, dk, dv, B, H, d, T, Te);
}

void rhd_attn_merge_heads(rhd_ctx *ctx, float *out, const float *o, int B, int H, int d, int T) {
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_attn_merge_heads_cuda(ctx, out, o, B, H, d, T);
        return;
    }
#endif
    merge_cpu(out, (float *)o, B, H, d, T, 0);
}

void rhd_attn_merge_heads_backward(rhd_ctx *ctx, float *do_, const float *dout, int B, int H, int d, int T) {
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_attn_merge_heads_backward_cuda(ctx, do_, dout, B, H, d, T);
        return;
    }
#endif
    merge_cpu((float *)dout, do_, B, H, d, T, 1);
}

void rhd_attention_block_forward(rhd_ctx *ctx, float *out, float *lse, const float *qkv, const float *ekv, int B,
                                 int C, int H, int T, int Te) {
    RHD_ASSERT(H >= 1 && C % H == 0 && T >= 1 && Te >= 0 && (Te == 0) == (ekv == NULL));
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_attention_block_forward_cuda(ctx, out, lse, qkv, ekv, B, C, H, T, Te);
        return;
    }
#endif
    int d = C / H;
    int64_t Tk = (int64_t)Te + T, nq = (int64_t)B * C * T, nk = (int64_t)B * C * Tk;
    float *q = rhd_xmalloc(sizeof(float) * (nq * 2 + nk * 2));
    float *o = q + nq, *k = o + nq, *v = k + nk;
    split_cpu(q, k, v, qkv, ekv, B, H, d, T, Te);
    attention_forward_cpu(o, lse, q, k, v, (int64_t)B * H, T, (int)Tk, d, 1.0f / sqrtf((float)d));
    merge_cpu(out, o, B, H, d, T, 0);
    free(q);
}

void rhd_attention_block_backward(rhd_ctx *ctx, float *dqkv, float *dekv, const float *dout, const float *qkv,
                                  const float *ekv, const float *out, const float *lse, int B, int C, int H, int T,
                                  int Te) {
    RHD_ASSERT(H >= 1 && C % H == 0 && T >= 1 && Te >= 0 && (Te == 0) == (ekv == NULL) && !(Te == 0 && dekv));
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_attention_block_backward_cuda(ctx, dqkv, dekv, dout, qkv, ekv, out, lse, B, C, H, T, Te);
        return;
    }
#endif
    int d = C / H;
    int64_t Tk = (int64_t)Te + T, nq = (int64_t)B * C * T, nk = (int64_t)B * C * Tk;
    float *q = rhd_xmalloc(sizeof(float) * (nq * 4 + nk * 4));
    float *o = q + nq, *do_ = o + nq, *dq = do_ + nq, *k = dq + nq, *v = k + nk, *dk = v + nk, *dv = dk + nk;
    split_cpu(q, k, v, qkv, ekv, B, H, d, T, Te);
    merge_cpu((float *)out, o, B, H, d, T, 1);
    merge_cpu((float *)dout, do_, B, H, d, T, 1);
    attention_backward_cpu(dq, dk, dv, do_, q, k, v, o, lse, (int64_t)B * H, T, (int)Tk, d, 1.0f / sqrtf((float)d));
    split_backward_cpu(dqkv, dekv, dq, dk, dv, B, H, d, T, Te);
    free(q);
}

/* ---- AttentionPooling ------------------------------------------------------------------------- */

typedef struct {
    float *S, *Q, *K, *V, *P, *G, *dQ, *dK, *dV, *dS;
} pool_scratch;

static pool_scratch pool_scratch_alloc(int L, int W, int heads) {
    int64_t n1 = (int64_t)(L + 1) * W, np = (int64_t)heads * (L + 1);
    pool_scratch s;
    s.S = rhd_xmalloc(sizeof(float) * (n1 * 6 + W * 2 + np * 2));
    s.K = s.S + n1, s.V = s.K + n1, s.dK = s.V + n1, s.dV = s.dK + n1, s.dS = s.dV + n1;
    s.Q = s.dS + n1, s.dQ = s.Q + W, s.P = s.dQ + W, s.G = s.P + np;
    return s;
}

/* Forward of one batch item into the scratch (S, Q, K, V, P). */
static void pool_item_forward(pool_scratch *s, const float *x, const float *pos, const float *wq, const float *bq,
                              const float *wk, const float *bk, const float *wv, const float *bv, int L, int W,
                              int heads) {
    int dh = W / heads;
    for (int j = 0; j <= L; j++)
        for (int c = 0; c < W; c++) s->S[(int64_t)j * W + c] = rhd_pool_seq(x, pos, L, W, j, c);
    for (int c = 0; c < W; c++) s->Q[c] = rhd_pool_linear(wq, bq, s->S, W, c);
    for (int j = 0; j <= L; j++)
        for (int c = 0; c < W; c++) {
            s->K[(int64_t)j * W + c] = rhd_pool_linear(wk, bk, s->S + (int64_t)j * W, W, c);
            s->V[(int64_t)j * W + c] = rhd_pool_linear(wv, bv, s->S + (int64_t)j * W, W, c);
        }
    for (int h = 0; h < heads; h++) rhd_pool_probs(s->P + (int64_t)h * (L + 1), s->Q, s->K, L, W, dh, h);
}

void rhd_attention_pool_forward(rhd_ctx *ctx, float *y, const float *x, const float *pos, const float *wq,
                                const float *bq, const float *wk, const float *bk, const float *wv, const float *bv,
                                int B, int L, int W, int heads) {
    RHD_ASSERT(B >= 0 && L >= 1 && heads >= 1 && W % heads == 0);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_attention_pool_forward_cuda(ctx, y, x, pos, wq, bq, wk, bk, wv, bv, B, L, W, heads);
        return;
    }
#endif
    pool_scratch s = pool_scratch_alloc(L, W, heads);
    for (int b = 0; b < B; b++) {
        pool_item_forward(&s, x + (int64_t)b * L * W, pos, wq, bq, wk, bk, wv, bv, L, W, heads);
        for (int c = 0; c < W; c++) y[(int64_t)b * W + c] = rhd_pool_out(s.P, s.V, L, W, W / heads, c);
    }
    free(s.S);
}

void rhd_attention_pool_backward(rhd_ctx *ctx, float *dx, float *dpos, float *dwq, float *dbq, float *dwk,
                                 float *dbk, float *dwv, float *dbv, const float *dy, const float *x,
                                 const float *pos, const float *wq, const float *bq, const float *wk,
                                 const float *bk, const float *wv, const float *bv, int B, int L, int W, int heads) {
    RHD_ASSERT(B >= 0 && L >= 1 && heads >= 1 && W % heads == 0);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_attention_pool_backward_cuda(ctx, dx, dpos, dwq, dbq, dwk, dbk, dwv, dbv, dy, x, pos, wq, bq, wk, bk, wv,
                                         bv, B, L, W, heads);
        return;
    }
#endif
    int dh = W / heads;
    pool_scratch s = pool_scratch_alloc(L, W, heads);
    for (int b = 0; b < B; b++) {
        const float *dyb = dy + (int64_t)b * W;
        pool_item_forward(&s, x + (int64_t)b * L * W, pos, wq, bq, wk, bk, wv, bv, L, W, heads);
        for (int h = 0; h < heads; h++) rhd_pool_logit_grad(s.G + (int64_t)h * (L + 1), s.P, s.V, dyb, L, W, dh, h);
        for (int c = 0; c < W; c++) s.dQ[c] = rhd_pool_dq(s.G, s.K, L, W, dh, c);
        for (int j = 0; j <= L; j++)
            for (int c = 0; c < W; c++) {
                s.dK[(int64_t)j * W + c] = s.G[(int64_t)(c / dh) * (L + 1) + j] * s.Q[c];
                s.dV[(int64_t)j * W + c] = s.P[(int64_t)(c / dh) * (L + 1) + j] * dyb[c];
            }
        for (int j = 0; j <= L; j++)
            for (int i = 0; i < W; i++) s.dS[(int64_t)j * W + i] = rhd_pool_dseq(wq, wk, wv, s.dQ, s.dK, s.dV, W, j, i);
        for (int l = 0; l < L; l++)
            for (int i = 0; i < W; i++)
                dx[((int64_t)b * L + l) * W + i] = s.dS[(int64_t)(l + 1) * W + i] + s.dS[i] / (float)L;
        for (int i = 0; i < W; i++) dpos[i] += s.dS[i];
        for (int c = 0; c < W; c++) {
            double gbk = 0, gbv = 0;
            for (int j = 0; j <= L; j++) gbk += s.dK[(int64_t)j * W + c], gbv += s.dV[(int64_t)j * W + c];
            dbq[c] += s.dQ[c];
            dbk[c] += (float)gbk;
            dbv[c] += (float)gbv;
            for (int i = 0; i < W; i++) {
                double gk = 0, gv = 0;
                for (int j = 0; j <= L; j++) {
                    gk += (double)s.dK[(int64_t)j * W + c] * s.S[(int64_t)j * W + i];
                    gv += (double)s.dV[(int64_t)j * W + c] * s.S[(int64_t)j * W + i];
                }
                dwq[(int64_t)c * W + i] += s.dQ[c] * s.S[i];
                dwk[(int64_t)c * W + i] += (float)gk;
                dwv[(int64_t)c * W + i] += (float)gv;
            }
        }
    }
    free(s.S);
}
