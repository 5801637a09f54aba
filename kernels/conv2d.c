/* kernels/conv2d.c: 2-D convolution, CPU reference (im2col + OpenBLAS sgemm) and dispatch. */
#include "kernels/conv2d.h"
#include "kernels/linear.h"
#include <stdlib.h>
#include <string.h>

/* Floats of im2col scratch per band of output rows (32 MB). Within a band the work is cut into
 * up to 32 slabs of at least 256 pixels (forward) or weight columns (weight gradient), their
 * number a power of two set by the shape only, so 2, 4, 8 or 16 threads share them evenly and
 * results do not depend on the thread count; each thread writes the taps of its slab and
 * multiplies them at once, while they are in cache. Big bands mean few parallel regions (few
 * barriers: they cost most on a busy machine); the per-slab scratch is what the caches see. */
#define CONV_BAND_FLOATS (8L << 20)
#define CONV_MAX_SLABS 32
#define CONV_SLAB_MIN 256

rhd_conv2d_desc rhd_conv2d_square(int N, int Cin, int H, int W, int Cout, int k, int stride, int pad) {
    rhd_conv2d_desc d = {N, Cin, H, W, Cout, k, k, stride, stride, pad, pad, pad, pad};
    return d;
}

static int out_dim(int in, int pa, int pb, int k, int s) {
    int64_t span = (int64_t)in + pa + pb - k;
    return span < 0 || s <= 0 ? 0 : (int)(span / s + 1);
}
int rhd_conv2d_out_h(const rhd_conv2d_desc *d) { return out_dim(d->H, d->pad_t, d->pad_b, d->KH, d->stride_h); }
int rhd_conv2d_out_w(const rhd_conv2d_desc *d) { return out_dim(d->W, d->pad_l, d->pad_r, d->KW, d->stride_w); }

int rhd_conv2d_check(const rhd_conv2d_desc *d, rhd_err *e) {
    if (d->N < 1 || d->Cin < 1 || d->H < 1 || d->W < 1 || d->Cout < 1)
        return rhd_errf(e, "conv2d: input (%d,%d,%d,%d) -> %d channels, expected positive sizes", d->N, d->Cin, d->H,
                        d->W, d->Cout);
    if (d->KH < 1 || d->KW < 1 || d->stride_h < 1 || d->stride_w < 1)
        return rhd_errf(e, "conv2d: kernel %dx%d stride %dx%d, expected positive values", d->KH, d->KW, d->stride_h,
                        d->stride_w);
    if (d->pad_t < 0 || d->pad_b < 0 || d->pad_l < 0 || d->pad_r < 0)
        return rhd_errf(e, "conv2d: padding (%d,%d,%d,%d), expected non-negative values", d->pad_t, d->pad_b, d->pad_l,
                        d->pad_r);
    if (rhd_conv2d_out_h(d) < 1 || rhd_conv2d_out_w(d) < 1)
        return rhd_errf(e, "conv2d: kernel %dx%d larger than the padded input %dx%d, expected it to fit", d->KH, d->KW,
                        d->H + d->pad_t + d->pad_b, d->W + d->pad_l + d->pad_r);
    if ((int64_t)d->Cin * d->KH * d->KW > 0x7fffffffL || (int64_t)d->H * d->W > 0x7fffffffL)
        return rhd_errf(e, "conv2d: Cin*KH*KW = %ld, expected at most 2^31-1", (int64_t)d->Cin * d->KH * d->KW);
    return 0;
}

/* A 1x1, stride-1, unpadded conv is a plain product with the image as the right operand. */
static int is_pointwise(const rhd_conv2d_desc *d) {
    return d->KH == 1 && d->KW == 1 && d->stride_h == 1 && d->stride_w == 1 && !d->pad_t && !d->pad_b && !d->pad_l &&
           !d->pad_r;
}

/* Output columns ow whose input column iw = ow*s - pad_l + kw lies inside [0, W): [*lo, *hi). */
static void valid_cols(const rhd_conv2d_desc *d, int OW, int kw, int *lo, int *hi) {
    int s = d->stride_w, a = d->pad_l - kw, b = d->W + d->pad_l - kw; /* need a <= ow*s < b */
    int l = a <= 0 ? 0 : (a + s - 1) / s;
    int h = b <= 0 ? 0 : (b + s - 1) / s;
    if (h > OW) h = OW;
    if (l > h) l = h;
    *lo = l, *hi = h;
}

/* Rows r0 .. r1-1 of col (K, P), K = Cin*KH*KW (row r = (c*KH + kh)*KW + kw, the weight's
 * column order), P = (oh1 - oh0)*OW: the input taps of output rows [oh0, oh1) of one image xn
 * (Cin,H,W). `col` points at row r0. One thread. */
static void im2col_rows(float *col, int r0, int r1, const float *xn, const rhd_conv2d_desc *d, int OW, int oh0,
                        int oh1) {
    const int KK = d->KH * d->KW;
    const int64_t P = (int64_t)(oh1 - oh0) * OW;
    for (int r = r0; r < r1; r++) {
        int c = r / KK, kh = (r % KK) / d->KW, kw = r % d->KW, lo, hi;
        valid_cols(d, OW, kw, &lo, &hi);
        float *dst = col + (int64_t)(r - r0) * P;
        for (int oh = oh0; oh < oh1; oh++, dst += OW) {
            int ih = oh * d->stride_h - d->pad_t + kh;
            if (ih < 0 || ih >= d->H || lo == hi) { memset(dst, 0, sizeof(float) * OW); continue; }
            const float *src = xn + ((int64_t)c * d->H + ih) * d->W + ((int64_t)lo * d->stride_w - d->pad_l + kw);
            if (lo > 0) memset(dst, 0, sizeof(float) * lo);
            if (d->stride_w == 1) memcpy(dst + lo, src, sizeof(float) * (hi - lo));
            else
                for (int j = 0; j < hi - lo; j++) dst[lo + j] = src[(int64_t)j * d->stride_w];
            if (hi < OW) memset(dst + hi, 0, sizeof(float) * (OW - hi));
        }
    }
}

/* dst (K, n): the taps of the n output pixels q0 .. q0+n-1 of one image (pixel q = oh*OW + ow),
 * rows ordered as in im2col_rows. One thread; used per slab by the forward pass. */
static void im2col_range(float *dst, const float *xn, const rhd_conv2d_desc *d, int OW, int64_t q0, int64_t n) {
    const int K = d->Cin * d->KH * d->KW, KK = d->KH * d->KW;
    for (int r = 0; r < K; r++) {
        int c = r / KK, kh = (r % KK) / d->KW, kw = r % d->KW, lo, hi;
        valid_cols(d, OW, kw, &lo, &hi);
        float *o = dst + (int64_t)r * n;
        for (int64_t q = q0; q < q0 + n;) { /* one output row segment [ow0, ow1) at a time */
            int oh = (int)(q / OW), ow0 = (int)(q % OW);
            int ow1 = q0 + n - q < OW - ow0 ? ow0 + (int)(q0 + n - q) : OW;
            int ih = oh * d->stride_h - d->pad_t + kh;
            int a = lo > ow0 ? lo : ow0, b = hi < ow1 ? hi : ow1; /* copied part [a, b) */
            if (ih < 0 || ih >= d->H || a >= b) {
                memset(o, 0, sizeof(float) * (ow1 - ow0));
            } else {
                const float *src = xn + ((int64_t)c * d->H + ih) * d->W + ((int64_t)a * d->stride_w - d->pad_l + kw);
                if (a > ow0) memset(o, 0, sizeof(float) * (a - ow0));
                if (d->stride_w == 1) memcpy(o + (a - ow0), src, sizeof(float) * (b - a));
                else
                    for (int j = 0; j < b - a; j++) o[a - ow0 + j] = src[(int64_t)j * d->stride_w];
                if (b < ow1) memset(o + (b - ow0), 0, sizeof(float) * (ow1 - b));
            }
            o += ow1 - ow0, q += ow1 - ow0;
        }
    }
}

/* dxn (Cin,H,W) += the taps in dcol (K, P) scattered back (the adjoint of im2col_rows). Each
 * thread owns whole input channels and adds in a fixed (kh, kw, oh, ow) order. */
static void col2im_band_add(float *dxn, const float *dcol, const rhd_conv2d_desc *d, int OW, int oh0, int oh1) {
    const int KK = d->KH * d->KW;
    const int64_t P = (int64_t)(oh1 - oh0) * OW;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < d->Cin; c++) {
        for (int kh = 0; kh < d->KH; kh++)
            for (int kw = 0; kw < d->KW; kw++) {
                int lo, hi;
                valid_cols(d, OW, kw, &lo, &hi);
                const float *src = dcol + ((int64_t)c * KK + kh * d->KW + kw) * P;
                for (int oh = oh0; oh < oh1; oh++, src += OW) {
                    int ih = oh * d->stride_h - d->pad_t + kh;
                    if (ih < 0 || ih >= d->H) continue;
                    float *dst = dxn + ((int64_t)c * d->H + ih) * d->W + ((int64_t)lo * d->stride_w - d->pad_l + kw);
                    if (d->stride_w == 1)
                        for (int j = 0; j < hi - lo; j++) dst[j] += src[lo + j];
                    else
                        for (int j = 0; j < hi - lo; j++) dst[(int64_t)j * d->stride_w] += src[lo + j];
                }
            }
    }
}

/* Output rows per band so that one band of im2col scratch holds about CONV_BAND_FLOATS. */
static int band_rows(const rhd_conv2d_desc *d, int OH, int OW) {
    int64_t per_row = (int64_t)d->Cin * d->KH * d->KW * OW;
    int64_t r = CONV_BAND_FLOATS / (per_row ? per_row : 1);
    return r < 1 ? 1 : r > OH ? OH : (int)r;
}
static size_t band_floats(const rhd_conv2d_desc *d) {
    const int OW = rhd_conv2d_out_w(d);
    return is_pointwise(d) ? 0 : (size_t)d->Cin * d->KH * d->KW * band_rows(d, rhd_conv2d_out_h(d), OW) * OW;
}

/* Slab width for cutting len items into up to CONV_MAX_SLABS pieces of at least CONV_SLAB_MIN. */
static int64_t slab_width(int64_t len) {
    int nsplit = 1;
    while (nsplit < CONV_MAX_SLABS && len / (2 * nsplit) >= CONV_SLAB_MIN) nsplit *= 2;
    return ((len + nsplit - 1) / nsplit + 15) / 16 * 16;
}

/* yn (Cout,OH,OW) = W (Cout,K) col(xn) + beta yn for one image (col: band_floats), band by band,
 * each band in slabs of output pixels. */
static void forward_image(float *yn, const float *xn, const float *W, float beta, const rhd_conv2d_desc *d,
                          float *col) {
    const int OH = rhd_conv2d_out_h(d), OW = rhd_conv2d_out_w(d), K = d->Cin * d->KH * d->KW;
    const int64_t OHW = (int64_t)OH * OW;
    if (is_pointwise(d)) {
        rhd_sgemm_cpu(0, 0, d->Cout, (int)OHW, d->Cin, 1.0f, W, d->Cin, xn, OHW, beta, yn, OHW);
        return;
    }
    const int rows = band_rows(d, OH, OW);
    for (int oh0 = 0; oh0 < OH; oh0 += rows) {
        const int64_t P = (int64_t)((oh0 + rows < OH ? oh0 + rows : OH) - oh0) * OW, q0 = (int64_t)oh0 * OW;
        const int64_t slab = slab_width(P);
        const int nslab = (int)((P + slab - 1) / slab);
#pragma omp parallel for schedule(dynamic, 1)
        for (int t = 0; t < nslab; t++) {
            int64_t p0 = t * slab, n = p0 + slab < P ? slab : P - p0;
            float *cs = col + (size_t)K * p0; /* the slab's own (K, n) part of the scratch */
            im2col_range(cs, xn, d, OW, q0 + p0, n);
            rhd_sgemm_cpu(0, 0, d->Cout, (int)n, K, 1.0f, W, K, cs, n, beta, yn + q0 + p0, OHW);
        }
    }
}

static void conv2d_forward_cpu(rhd_ctx *ctx, float *y, const float *x, const float *W, const float *b,
                               const rhd_conv2d_desc *d) {
    const int64_t HW = (int64_t)d->H * d->W, OHW = (int64_t)rhd_conv2d_out_h(d) * rhd_conv2d_out_w(d);
    float *col = rhd_ctx_workspace(ctx, sizeof(float) * (band_floats(d) + 1));
    for (int n = 0; n < d->N; n++) {
        float *yn = y + (int64_t)n * d->Cout * OHW;
        if (b) {
#pragma omp parallel for schedule(static)
            for (int co = 0; co < d->Cout; co++)
                for (int64_t p = 0; p < OHW; p++) yn[co * OHW + p] = b[co];
        }
        forward_image(yn, x + (int64_t)n * d->Cin * HW, W, b ? 1.0f : 0.0f, d, col);
    }
}

/* A stride-1 conv whose padding is at most KH-1 / KW-1 on every side has as input gradient the
 * forward conv of dy with the flipped, transposed kernel and padding K-1-pad: the fast path
 * (one gathering im2col + a GEMM with a long inner dimension, no scatter). */
static int dx_as_conv(const rhd_conv2d_desc *d, rhd_conv2d_desc *t) {
    if (d->stride_h != 1 || d->stride_w != 1 || is_pointwise(d)) return 0;
    if (d->pad_t >= d->KH || d->pad_b >= d->KH || d->pad_l >= d->KW || d->pad_r >= d->KW) return 0;
    *t = (rhd_conv2d_desc){d->N, d->Cout, rhd_conv2d_out_h(d), rhd_conv2d_out_w(d), d->Cin, d->KH, d->KW, 1, 1,
                           d->KH - 1 - d->pad_t, d->KH - 1 - d->pad_b, d->KW - 1 - d->pad_l, d->KW - 1 - d->pad_r};
    return 1;
}

static void conv2d_backward_cpu(rhd_ctx *ctx, float *dx, float *dW, float *db, const float *dy, const float *x,
                                const float *W, const rhd_conv2d_desc *d) {
    const int OH = rhd_conv2d_out_h(d), OW = rhd_conv2d_out_w(d), K = d->Cin * d->KH * d->KW, KK = d->KH * d->KW;
    const int64_t HW = (int64_t)d->H * d->W, OHW = (int64_t)OH * OW;
    if (db) {
#pragma omp parallel for schedule(static)
        for (int co = 0; co < d->Cout; co++) {
            double s = 0;
            for (int n = 0; n < d->N; n++) {
                const float *p = dy + ((int64_t)n * d->Cout + co) * OHW;
#pragma omp simd reduction(+ : s)
                for (int64_t i = 0; i < OHW; i++) s += p[i];
            }
            db[co] += (float)s;
        }
    }
    if (!dx && !dW) return;
    rhd_conv2d_desc t;
    const int transposed = dx && dx_as_conv(d, &t);
    size_t band = band_floats(d), tband = transposed ? band_floats(&t) : 0;
    size_t scratch = (dW ? band : 0) + (dx ? (transposed ? tband : band) : 0) + 1;
    float *col = rhd_ctx_workspace(ctx, sizeof(float) * scratch), *dcol = col + (dW ? band : 0);
    float *Wt = NULL;
    if (transposed) { /* Wt (Cin,Cout,KH,KW) = W (Cout,Cin,KH,KW) with the taps flipped */
        enum { TB = 16 }; /* transposed in 16 x 16 tiles of (ci, co) to stay in cache */
        Wt = rhd_xmalloc(sizeof(float) * d->Cout * K);
#pragma omp parallel for schedule(static)
        for (int ci0 = 0; ci0 < d->Cin; ci0 += TB)
            for (int co0 = 0; co0 < d->Cout; co0 += TB)
                for (int ci = ci0; ci < ci0 + TB && ci < d->Cin; ci++)
                    for (int co = co0; co < co0 + TB && co < d->Cout; co++) {
                        const float *src = W + ((int64_t)co * d->Cin + ci) * KK;
                        float *dst = Wt + ((int64_t)ci * d->Cout + co) * KK;
                        for (int k = 0; k < KK; k++) dst[k] = src[KK - 1 - k];
                    }
    }
    const int rows = band_rows(d, OH, OW);
    for (int n = 0; n < d->N; n++) {
        const float *xn = x + (int64_t)n * d->Cin * HW, *dyn = dy + (int64_t)n * d->Cout * OHW;
        float *dxn = dx ? dx + (int64_t)n * d->Cin * HW : NULL;
        if (is_pointwise(d)) {
            if (dxn) rhd_sgemm_cpu(1, 0, d->Cin, (int)HW, d->Cout, 1.0f, W, d->Cin, dyn, HW, 0.0f, dxn, HW);
            if (dW) rhd_sgemm_cpu(0, 1, d->Cout, d->Cin, (int)HW, 1.0f, dyn, HW, xn, HW, 1.0f, dW, d->Cin);
            continue;
        }
        if (transposed) forward_image(dxn, dyn, Wt, 0.0f, &t, dcol);
        else if (dxn) memset(dxn, 0, sizeof(float) * d->Cin * HW);
        for (int oh0 = 0; oh0 < OH && (dW || (dxn && !transposed)); oh0 += rows) {
            int oh1 = oh0 + rows < OH ? oh0 + rows : OH, P = (oh1 - oh0) * OW;
            const float *dyb = dyn + (int64_t)oh0 * OW;
            if (dW) { /* dW (Cout,K) += dy_band (Cout,P) col^T, in slabs of dW's columns */
                const int64_t slab = slab_width(K);
                const int nslab = (int)((K + slab - 1) / slab);
#pragma omp parallel for schedule(dynamic, 1)
                for (int s = 0; s < nslab; s++) {
                    int r0 = (int)(s * slab), r1 = r0 + slab < K ? r0 + (int)slab : K;
                    float *cs = col + (size_t)r0 * P;
                    im2col_rows(cs, r0, r1, xn, d, OW, oh0, oh1);
                    rhd_sgemm_cpu(0, 1, d->Cout, r1 - r0, P, 1.0f, dyb, OHW, cs, P, 1.0f, dW + r0, K);
                }
            }
            if (dxn && !transposed) { /* strided: dcol (K,P) = W^T dy_band, scattered back */
                rhd_sgemm_cpu(1, 0, K, P, d->Cout, 1.0f, W, K, dyb, OHW, 0.0f, dcol, P);
                col2im_band_add(dxn, dcol, d, OW, oh0, oh1);
            }
        }
    }
    free(Wt);
}

static void check_desc(const rhd_conv2d_desc *d) {
    rhd_err e;
    if (rhd_conv2d_check(d, &e)) rhd_fatal_at(__FILE__, __LINE__, "%s", e.msg);
}

void rhd_conv2d_forward(rhd_ctx *ctx, float *y, const float *x, const float *W, const float *b,
                        const rhd_conv2d_desc *d) {
    check_desc(d);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_conv2d_forward_cuda(ctx, y, x, W, b, d); return; }
#endif
    conv2d_forward_cpu(ctx, y, x, W, b, d);
}

void rhd_conv2d_backward(rhd_ctx *ctx, float *dx, float *dW, float *db, const float *dy, const float *x,
                         const float *W, const rhd_conv2d_desc *d) {
    check_desc(d);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_conv2d_backward_cuda(ctx, dx, dW, db, dy, x, W, d); return; }
#endif
    conv2d_backward_cpu(ctx, dx, dW, db, dy, x, W, d);
}
