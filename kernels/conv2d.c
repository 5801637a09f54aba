/* kernels/conv2d.c: 2-D convolution, CPU reference (im2col + OpenBLAS sgemm) and dispatch. */
#include "kernels/conv2d.h"
#include "kernels/linear.h"
#include <string.h>

/* Floats of im2col scratch per band of output rows (~8 MB: the band stays in the last-level
 * cache between being written and being read by sgemm). */
#define CONV_BAND_FLOATS (2L << 20)

rhd_conv2d_desc rhd_conv2d_square(int N, int Cin, int H, int W, int Cout, int k, int stride, int pad) {
    rhd_conv2d_desc d = {N, Cin, H, W, Cout, k, k, stride, stride, pad, pad, pad, pad};
    return d;
}

static int out_dim(int in, int pa, int pb, int k, int s) {
    long span = (long)in + pa + pb - k;
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
    if ((long)d->Cin * d->KH * d->KW > 0x7fffffffL || (long)d->H * d->W > 0x7fffffffL)
        return rhd_errf(e, "conv2d: Cin*KH*KW = %ld, expected at most 2^31-1", (long)d->Cin * d->KH * d->KW);
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

/* col (K, P) with K = Cin*KH*KW (row r = (c*KH + kh)*KW + kw, the weight's column order) and
 * P = (oh1 - oh0)*OW: the input taps of output rows [oh0, oh1) of one image xn (Cin,H,W). */
static void im2col_band(float *col, const float *xn, const rhd_conv2d_desc *d, int OW, int oh0, int oh1) {
    const int K = d->Cin * d->KH * d->KW, KK = d->KH * d->KW;
    const long P = (long)(oh1 - oh0) * OW;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < K; r++) {
        int c = r / KK, kh = (r % KK) / d->KW, kw = r % d->KW, lo, hi;
        valid_cols(d, OW, kw, &lo, &hi);
        float *dst = col + r * P;
        for (int oh = oh0; oh < oh1; oh++, dst += OW) {
            int ih = oh * d->stride_h - d->pad_t + kh;
            if (ih < 0 || ih >= d->H || lo == hi) { memset(dst, 0, sizeof(float) * OW); continue; }
            const float *src = xn + ((long)c * d->H + ih) * d->W + ((long)lo * d->stride_w - d->pad_l + kw);
            if (lo > 0) memset(dst, 0, sizeof(float) * lo);
            if (d->stride_w == 1) memcpy(dst + lo, src, sizeof(float) * (hi - lo));
            else
                for (int j = 0; j < hi - lo; j++) dst[lo + j] = src[(long)j * d->stride_w];
            if (hi < OW) memset(dst + hi, 0, sizeof(float) * (OW - hi));
        }
    }
}

/* dxn (Cin,H,W) += the taps in dcol (K, P) scattered back (the adjoint of im2col_band). Each
 * thread owns whole input channels and adds in a fixed (kh, kw, oh, ow) order. */
static void col2im_band_add(float *dxn, const float *dcol, const rhd_conv2d_desc *d, int OW, int oh0, int oh1) {
    const int KK = d->KH * d->KW;
    const long P = (long)(oh1 - oh0) * OW;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < d->Cin; c++) {
        for (int kh = 0; kh < d->KH; kh++)
            for (int kw = 0; kw < d->KW; kw++) {
                int lo, hi;
                valid_cols(d, OW, kw, &lo, &hi);
                const float *src = dcol + ((long)c * KK + kh * d->KW + kw) * P;
                for (int oh = oh0; oh < oh1; oh++, src += OW) {
                    int ih = oh * d->stride_h - d->pad_t + kh;
                    if (ih < 0 || ih >= d->H) continue;
                    float *dst = dxn + ((long)c * d->H + ih) * d->W + ((long)lo * d->stride_w - d->pad_l + kw);
                    if (d->stride_w == 1)
                        for (int j = 0; j < hi - lo; j++) dst[j] += src[lo + j];
                    else
                        for (int j = 0; j < hi - lo; j++) dst[(long)j * d->stride_w] += src[lo + j];
                }
            }
    }
}

/* Output rows per band so that one band of im2col scratch holds about CONV_BAND_FLOATS. */
static int band_rows(const rhd_conv2d_desc *d, int OH, int OW) {
    long per_row = (long)d->Cin * d->KH * d->KW * OW;
    long r = CONV_BAND_FLOATS / (per_row ? per_row : 1);
    return r < 1 ? 1 : r > OH ? OH : (int)r;
}

static void conv2d_forward_cpu(rhd_ctx *ctx, float *y, const float *x, const float *W, const float *b,
                               const rhd_conv2d_desc *d) {
    const int OH = rhd_conv2d_out_h(d), OW = rhd_conv2d_out_w(d), K = d->Cin * d->KH * d->KW;
    const long HW = (long)d->H * d->W, OHW = (long)OH * OW;
    const int rows = band_rows(d, OH, OW);
    float *col = is_pointwise(d) ? NULL : rhd_ctx_workspace(ctx, sizeof(float) * (size_t)K * rows * OW);
    for (int n = 0; n < d->N; n++) {
        const float *xn = x + (long)n * d->Cin * HW;
        float *yn = y + (long)n * d->Cout * OHW;
        if (b) {
#pragma omp parallel for schedule(static)
            for (int co = 0; co < d->Cout; co++)
                for (long p = 0; p < OHW; p++) yn[co * OHW + p] = b[co];
        }
        const float beta = b ? 1.0f : 0.0f;
        if (!col) {
            rhd_sgemm_cpu(0, 0, d->Cout, (int)OHW, d->Cin, 1.0f, W, d->Cin, xn,
                        (int)HW, beta, yn, (int)OHW);
            continue;
        }
        for (int oh0 = 0; oh0 < OH; oh0 += rows) {
            int oh1 = oh0 + rows < OH ? oh0 + rows : OH, P = (oh1 - oh0) * OW;
            im2col_band(col, xn, d, OW, oh0, oh1);
            rhd_sgemm_cpu(0, 0, d->Cout, P, K, 1.0f, W, K, col, P, beta,
                        yn + (long)oh0 * OW, (int)OHW);
        }
    }
}

static void conv2d_backward_cpu(rhd_ctx *ctx, float *dx, float *dW, float *db, const float *dy, const float *x,
                                const float *W, const rhd_conv2d_desc *d) {
    const int OH = rhd_conv2d_out_h(d), OW = rhd_conv2d_out_w(d), K = d->Cin * d->KH * d->KW;
    const long HW = (long)d->H * d->W, OHW = (long)OH * OW;
    if (db) {
#pragma omp parallel for schedule(static)
        for (int co = 0; co < d->Cout; co++) {
            double s = 0;
            for (int n = 0; n < d->N; n++) {
                const float *p = dy + ((long)n * d->Cout + co) * OHW;
#pragma omp simd reduction(+ : s)
                for (long i = 0; i < OHW; i++) s += p[i];
            }
            db[co] += (float)s;
        }
    }
    if (!dx && !dW) return;
    if (is_pointwise(d)) {
        for (int n = 0; n < d->N; n++) {
            const float *xn = x + (long)n * d->Cin * HW, *dyn = dy + (long)n * d->Cout * OHW;
            if (dx)
                rhd_sgemm_cpu(1, 0, d->Cin, (int)HW, d->Cout, 1.0f, W, d->Cin, dyn,
                            (int)HW, 0.0f, dx + (long)n * d->Cin * HW, (int)HW);
            if (dW)
                rhd_sgemm_cpu(0, 1, d->Cout, d->Cin, (int)HW, 1.0f, dyn, (int)HW, xn,
                            (int)HW, 1.0f, dW, d->Cin);
        }
        return;
    }
    const int rows = band_rows(d, OH, OW);
    const size_t band = (size_t)K * rows * OW;
    float *col = rhd_ctx_workspace(ctx, sizeof(float) * band * 2), *dcol = col + band;
    for (int n = 0; n < d->N; n++) {
        const float *xn = x + (long)n * d->Cin * HW, *dyn = dy + (long)n * d->Cout * OHW;
        float *dxn = dx ? dx + (long)n * d->Cin * HW : NULL;
        if (dxn) memset(dxn, 0, sizeof(float) * d->Cin * HW);
        for (int oh0 = 0; oh0 < OH; oh0 += rows) {
            int oh1 = oh0 + rows < OH ? oh0 + rows : OH, P = (oh1 - oh0) * OW;
            const float *dyb = dyn + (long)oh0 * OW;
            if (dW) {
                im2col_band(col, xn, d, OW, oh0, oh1);
                rhd_sgemm_cpu(0, 1, d->Cout, K, P, 1.0f, dyb, (int)OHW, col, P, 1.0f,
                            dW, K);
            }
            if (dxn) {
                rhd_sgemm_cpu(1, 0, K, P, d->Cout, 1.0f, W, K, dyb, (int)OHW, 0.0f,
                            dcol, P);
                col2im_band_add(dxn, dcol, d, OW, oh0, oh1);
            }
        }
    }
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
