/* common/image_resize.c: Lanczos resize of RGBA portraits (Pillow-exact and float) and the encoder
 * input; see image_resize.h. Written from the algorithm description of Pillow's Resample.c and
 * Convert.c (10.4); tests/unit/test_resize.c checks it bit for bit against Pillow itself. */
#include "common/image_resize.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LANCZOS_A 3.0
#define FIXED_BITS 22 /* Pillow's PRECISION_BITS = 32 - 8 - 2 */

const char *rhd_resize_method_name(rhd_resize_method m) { return m == RHD_RESIZE_FLOAT ? "float" : "pillow"; }

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

/* Lanczos-3 window on [-3, 3) (Pillow's truncation of the sinc). */
static double lanczos3(double x) { return (-LANCZOS_A <= x && x < LANCZOS_A) ? sinc(x) * sinc(x / LANCZOS_A) : 0.0; }

/* Filter taps of a 1-D resize in_size -> out_size: output sample o reads inputs
 * [first[o], first[o] + count[o]) with weights k[o*ksize + i] (normalised to sum 1). The arithmetic
 * (double, the same operation order) is Pillow's, since the fixed-point rounding of the weights
 * makes every last bit matter. */
typedef struct {
    int ksize;
    int *first, *count; /* [out_size] */
    double *k;          /* [out_size * ksize] */
} taps;

static void taps_init(taps *t, int in_size, int out_size) {
    double scale = (double)in_size / out_size;
    double fscale = scale < 1.0 ? 1.0 : scale; /* widen the filter only when shrinking */
    double support = LANCZOS_A * fscale;
    t->ksize = (int)ceil(support) * 2 + 1;
    t->first = rhd_xmalloc(sizeof(int) * out_size);
    t->count = rhd_xmalloc(sizeof(int) * out_size);
    t->k = rhd_xcalloc((size_t)out_size * t->ksize, sizeof(double));
    for (int o = 0; o < out_size; o++) {
        double center = (o + 0.5) * scale, inv = 1.0 / fscale, sum = 0.0;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        double *k = t->k + (size_t)o * t->ksize;
        for (int i = 0; i < hi - lo; i++) {
            k[i] = lanczos3(((double)(i + lo) - center + 0.5) * inv);
            sum += k[i];
        }
        if (sum != 0.0)
            for (int i = 0; i < hi - lo; i++) k[i] /= sum;
        t->first[o] = lo;
        t->count[o] = hi - lo;
    }
}

static void taps_free(taps *t) {
    free(t->first), free(t->count), free(t->k);
    memset(t, 0, sizeof *t);
}

/* Weights as 2^22 fixed point, rounded half away from zero. */
static int32_t *taps_fixed(const taps *t, int out_size) {
    size_t n = (size_t)out_size * t->ksize;
    int32_t *q = rhd_xmalloc(sizeof(int32_t) * n);
    for (size_t i = 0; i < n; i++) {
        double v = t->k[i] * (double)(1 << FIXED_BITS);
        q[i] = (int32_t)(t->k[i] < 0 ? -0.5 + v : 0.5 + v);
    }
    return q;
}

/* acc holds value * 2^22 plus the rounding half; back to 8 bits with clipping. */
static inline uint8_t fixed_to_u8(int32_t acc) {
    if (acc < 0) return 0;
    int32_t v = acc >> FIXED_BITS;
    return (uint8_t)(v > 255 ? 255 : v);
}

/* One fixed-point pass along a line of n pixels of 4 channels: out pixel o of the line =
 * sum_i q[o, i] * in pixel (first[o] + i). `stride` is the distance between pixels in bytes/4. */
static void pass_u8(uint8_t *out, int64_t ostride, const uint8_t *in, int64_t istride, const taps *t, const int32_t *q,
                    int out_size) {
    for (int o = 0; o < out_size; o++) {
        const int32_t *k = q + (size_t)o * t->ksize;
        const uint8_t *src = in + (int64_t)t->first[o] * istride * 4;
        int32_t acc[4] = {1 << (FIXED_BITS - 1), 1 << (FIXED_BITS - 1), 1 << (FIXED_BITS - 1), 1 << (FIXED_BITS - 1)};
        for (int i = 0; i < t->count[o]; i++)
            for (int c = 0; c < 4; c++) acc[c] += (int32_t)src[(int64_t)i * istride * 4 + c] * k[i];
        for (int c = 0; c < 4; c++) out[(int64_t)o * ostride * 4 + c] = fixed_to_u8(acc[c]);
    }
}

void rhd_resize_rgba8_pillow(uint8_t *out, int ow, int oh, const uint8_t *in, int w, int h) {
    size_t npix_in = (size_t)w * h;
    if (ow == w && oh == h) { /* Image.resize returns a copy: no premultiplied round trip */
        memcpy(out, in, npix_in * 4);
        return;
    }
    /* RGBA -> RGBa: c * a / 255 rounded the way Pillow's MULDIV255 does it */
    uint8_t *pre = rhd_xmalloc(npix_in * 4);
    for (size_t p = 0; p < npix_in; p++) {
        unsigned a = in[4 * p + 3];
        for (int c = 0; c < 3; c++) {
            unsigned t = in[4 * p + c] * a + 128;
            pre[4 * p + c] = (uint8_t)(((t >> 8) + t) >> 8);
        }
        pre[4 * p + 3] = (uint8_t)a;
    }
    /* horizontal pass (w -> ow) over every row, then vertical (h -> oh) over every column */
    const uint8_t *cur = pre;
    int cw = w;
    uint8_t *tmp = NULL, *res = NULL;
    if (ow != w) {
        taps t;
        taps_init(&t, w, ow);
        int32_t *q = taps_fixed(&t, ow);
        tmp = rhd_xmalloc((size_t)ow * h * 4);
        #pragma omp parallel for schedule(static)
        for (int y = 0; y < h; y++) pass_u8(tmp + (size_t)y * ow * 4, 1, pre + (size_t)y * w * 4, 1, &t, q, ow);
        free(q);
        taps_free(&t);
        cur = tmp;
        cw = ow;
    }
    if (oh != h) {
        taps t;
        taps_init(&t, h, oh);
        int32_t *q = taps_fixed(&t, oh);
        res = rhd_xmalloc((size_t)ow * oh * 4);
        #pragma omp parallel for schedule(static)
        for (int x = 0; x < cw; x++) pass_u8(res + (size_t)x * 4, cw, cur + (size_t)x * 4, cw, &t, q, oh);
        free(q);
        taps_free(&t);
        cur = res;
    }
    /* RGBa -> RGBA: integer division, clipped; alpha 0 and 255 pass the colour through */
    for (size_t p = 0; p < (size_t)ow * oh; p++) {
        unsigned a = cur[4 * p + 3];
        for (int c = 0; c < 3; c++) {
            unsigned v = cur[4 * p + c];
            if (a != 0 && a != 255) {
                v = 255 * v / a;
                if (v > 255) v = 255;
            }
            out[4 * p + c] = (uint8_t)v;
        }
        out[4 * p + 3] = (uint8_t)a;
    }
    free(pre), free(tmp), free(res);
}

static void pass_f32(float *out, int64_t ostride, const float *in, int64_t istride, const taps *t, int out_size) {
    for (int o = 0; o < out_size; o++) {
        const double *k = t->k + (size_t)o * t->ksize;
        const float *src = in + (int64_t)t->first[o] * istride * 4;
        double acc[4] = {0, 0, 0, 0};
        for (int i = 0; i < t->count[o]; i++)
            for (int c = 0; c < 4; c++) acc[c] += k[i] * src[(int64_t)i * istride * 4 + c];
        for (int c = 0; c < 4; c++) out[(int64_t)o * ostride * 4 + c] = (float)acc[c];
    }
}

void rhd_resize_rgba_float(float *out, int ow, int oh, const float *in, int w, int h) {
    size_t npix_in = (size_t)w * h;
    float *pre = rhd_xmalloc(sizeof(float) * npix_in * 4);
    for (size_t p = 0; p < npix_in; p++) {
        float a = in[4 * p + 3];
        for (int c = 0; c < 3; c++) pre[4 * p + c] = in[4 * p + c] * a;
        pre[4 * p + 3] = a;
    }
    taps th, tv;
    taps_init(&th, w, ow);
    taps_init(&tv, h, oh);
    float *tmp = rhd_xmalloc(sizeof(float) * (size_t)ow * h * 4);
    #pragma omp parallel for schedule(static)
    for (int y = 0; y < h; y++) pass_f32(tmp + (size_t)y * ow * 4, 1, pre + (size_t)y * w * 4, 1, &th, ow);
    #pragma omp parallel for schedule(static)
    for (int x = 0; x < ow; x++) pass_f32(out + (size_t)x * 4, ow, tmp + (size_t)x * 4, ow, &tv, oh);
    for (size_t p = 0; p < (size_t)ow * oh; p++) {
        float a = out[4 * p + 3];
        a = a < 0.f ? 0.f : a > 1.f ? 1.f : a;
        for (int c = 0; c < 3; c++) {
            float v = out[4 * p + c];
            v = v < 0.f ? 0.f : v > a ? a : v;
            out[4 * p + c] = a > 0.f ? v / a : 0.f;
        }
        out[4 * p + 3] = a;
    }
    taps_free(&th), taps_free(&tv);
    free(pre), free(tmp);
}

int rhd_portrait_to_input(float *x, int size, const float *rgba, int w, int h, rhd_resize_method m,
                          const char *name, rhd_err *e) {
    if (w < RHD_PORTRAIT_MIN_SIDE || h < RHD_PORTRAIT_MIN_SIDE)
        return rhd_errf(e, "%s: image is %dx%d, expected at least %dx%d pixels", name, w, h, RHD_PORTRAIT_MIN_SIDE,
                        RHD_PORTRAIT_MIN_SIDE);
    size_t npix = (size_t)size * size;
    float *img = rhd_xmalloc(sizeof(float) * npix * 4);
    if (m == RHD_RESIZE_PILLOW) {
        size_t n = (size_t)w * h * 4;
        uint8_t *q = rhd_xmalloc(n), *r = rhd_xmalloc(npix * 4);
        for (size_t i = 0; i < n; i++) {
            float v = rgba[i] * 255.0f;
            int64_t k = lrintf(v);
            if (!(fabsf(v - (float)k) < 1e-3f) || k < 0 || k > 255) {
                free(q), free(r), free(img);
                return rhd_errf(e, "%s: value %g at (%zu,%zu) channel %zu is not an 8-bit level k/255, expected 8-bit "
                                   "samples for the Pillow resize", name, rgba[i], i / 4 % w, i / 4 / w, i % 4);
            }
            q[i] = (uint8_t)k;
        }
        rhd_resize_rgba8_pillow(r, size, size, q, w, h);
        for (size_t i = 0; i < npix * 4; i++) img[i] = (float)r[i] / 255.0f;
        free(q), free(r);
    } else if (w == size && h == size) {
        memcpy(img, rgba, sizeof(float) * npix * 4);
    } else {
        rhd_resize_rgba_float(img, size, size, rgba, w, h);
    }
    /* composite on white, then [0,1] -> [-1,1]; (3, size, size) planar */
    for (size_t p = 0; p < npix; p++) {
        float a = img[4 * p + 3];
        for (int c = 0; c < 3; c++) {
            float v = img[4 * p + c] * a + (1.0f - a);
            x[(size_t)c * npix + p] = 2.0f * v - 1.0f;
        }
    }
    free(img);
    return 0;
}
