/* formats/png.c: PNG <-> float pixels through libpng (see formats/png.h and formats/png.md).
 *
 * Reading: the whole file is decoded from memory. libpng reports errors through on_error, which
 * copies the message and longjmps back to the single cleanup path in decode(); every buffer lives
 * in a heap-allocated state struct so that it can be freed after the jump. */
#include "formats/png.h"
#include "common/fs.h"
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* shared error handling */

typedef struct png_state {
    const unsigned char *src; /* reading: the file */
    size_t n, pos;
    unsigned char *raw;       /* decoded rows, or the encoder's quantised rows */
    png_bytep *rows;
    float *pix;               /* reading: the output */
    unsigned char *out;       /* writing: the encoded file */
    size_t out_n, out_cap;
    char msg[512];
    char warn[256]; /* the latest libpng warnings: they often give the reason for the error */
} png_state;

static void on_error(png_structp png, png_const_charp msg) {
    png_state *s = png_get_error_ptr(png);
    if (s->warn[0]) snprintf(s->msg, sizeof s->msg, "%s (libpng warnings: %s)", msg, s->warn);
    else snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings (unknown chunks, ancillary CRC errors, the reasons before "Invalid IHDR data") are not
 * errors; the last few are kept for the message of a following error. */
static void on_warning(png_structp png, png_const_charp msg) {
    png_state *s = png_get_error_ptr(png);
    size_t k = strlen(s->warn);
    if (k + strlen(msg) + 3 >= sizeof s->warn) k = 0, s->warn[0] = 0;
    snprintf(s->warn + k, sizeof s->warn - k, "%s%s", k ? "; " : "", msg);
}

static void free_state(png_state *s) {
    free(s->raw);
    free(s->rows);
    free(s->pix);
    free(s->out);
    free(s);
}

/* ------------------------------------------------------------------------------------------ */
/* reading */

static void on_read(png_structp png, png_bytep out, size_t len) {
    png_state *s = png_get_io_ptr(png);
    if (len > s->n - s->pos) {
        char m[160];
        snprintf(m, sizeof m, "truncated PNG: needed %zu more bytes at offset %zu, the file ends at %zu",
                 len, s->pos, s->n);
        png_error(png, m);
    }
    memcpy(out, s->src + s->pos, len);
    s->pos += len;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Sum of the IDAT chunk lengths, walking the chunk list without validating it (libpng does). */
static uint64_t idat_bytes(const unsigned char *p, size_t n) {
    uint64_t total = 0;
    size_t off = 8;
    while (n - off >= 8) {
        uint64_t len = be32(p + off);
        if (memcmp(p + off + 4, "IDAT", 4) == 0) total += len;
        if (memcmp(p + off + 4, "IEND", 4) == 0) break;
        if (len + 12 > n - off) break;
        off += (size_t)len + 12;
    }
    return total;
}

const char *rhd_png_color_type_name(int ct) {
    switch (ct) {
    case RHD_PNG_GRAY: return "gray";
    case RHD_PNG_GRAY_ALPHA: return "gray+alpha";
    case RHD_PNG_RGB: return "RGB";
    case RHD_PNG_RGBA: return "RGBA";
    case RHD_PNG_PALETTE: return "palette";
    default: return "unknown";
    }
}

const char *rhd_png_describe(const rhd_image *img, char *buf, size_t n) {
    int trns = img->has_alpha && !(img->color_type & PNG_COLOR_MASK_ALPHA);
    snprintf(buf, n, "%d-bit %s%s%s", img->bit_depth, rhd_png_color_type_name(img->color_type),
             trns ? " with tRNS" : "", img->interlaced ? " (interlaced)" : "");
    return buf;
}

void rhd_image_free(rhd_image *img) {
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

int rhd_png_decode(const void *data, size_t n, const char *name, rhd_image *img, rhd_err *e) {
    memset(img, 0, sizeof *img);
    if (n == 0) return rhd_errf(e, "%s: empty file, expected a PNG", name);
    if (n < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        if (n < 8 && png_sig_cmp((png_const_bytep)data, 0, n) == 0)
            return rhd_errf(e, "%s: truncated PNG: %zu bytes, shorter than the 8-byte signature", name, n);
        return rhd_errf(e, "%s: not a PNG (bad signature)", name);
    }
    png_state *s = rhd_xcalloc(1, sizeof *s);
    s->src = data;
    s->n = n;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, s, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        free_state(s);
        return rhd_errf(e, "%s: cannot initialise libpng (out of memory)", name);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        rhd_errf(e, "%s: %s", name, s->msg);
        free_state(s);
        memset(img, 0, sizeof *img);
        return -1;
    }
    png_set_read_fn(png, s, on_read);
    /* our own size limits below give the message; libpng's only stops what cannot be a PNG */
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_set_chunk_malloc_max(png, 8u << 20);
    png_read_info(png, info);

    png_uint_32 w, h;
    int depth, ct, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &ct, &interlace, NULL, NULL);
    if (w > RHD_PNG_MAX_SIDE || h > RHD_PNG_MAX_SIDE || (uint64_t)w * h > (uint64_t)RHD_PNG_MAX_PIXELS) {
        char m[200];
        snprintf(m, sizeof m, "image is %ux%u pixels, expected at most %d per side and %ld pixels in all",
                 (unsigned)w, (unsigned)h, RHD_PNG_MAX_SIDE, (int64_t)RHD_PNG_MAX_PIXELS);
        png_error(png, m);
    }
    /* A deflate stream expands at most ~1032x: reject files whose IDAT cannot hold the image before
     * allocating for it (a 100-byte file must not make us allocate gigabytes). */
    uint64_t file_bpp = (uint64_t)png_get_channels(png, info) * depth; /* bits per pixel */
    uint64_t need = (uint64_t)h * (1 + ((uint64_t)w * file_bpp + 7) / 8);
    uint64_t have = idat_bytes(s->src, s->n);
    if (need > have * 1040 + 4096) {
        char m[200];
        snprintf(m, sizeof m, "truncated PNG: %llu bytes of IDAT cannot hold a %ux%u %d-bit %s image",
                 (unsigned long long)have, (unsigned)w, (unsigned)h, depth, rhd_png_color_type_name(ct));
        png_error(png, m);
    }

    int trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
    img->width = (int)w;
    img->height = (int)h;
    img->color_type = ct;
    img->bit_depth = depth;
    img->has_alpha = (ct & PNG_COLOR_MASK_ALPHA) || trns;
    img->interlaced = interlace != PNG_INTERLACE_NONE;

    /* transforms to 8- or 16-bit RGBA */
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (trns) png_set_tRNS_to_alpha(png);
    if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    if (!img->has_alpha) png_set_filler(png, depth == 16 ? 0xffff : 0xff, PNG_FILLER_AFTER);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int bytes = depth == 16 ? 2 : 1;
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)w * 4 * bytes || png_get_channels(png, info) != 4) {
        char m[160];
        snprintf(m, sizeof m, "internal: libpng produced %zu bytes per row, expected %zu", rowbytes,
                 (size_t)w * 4 * bytes);
        png_error(png, m);
    }
    s->raw = rhd_xmalloc(rowbytes * h);
    s->rows = rhd_xmalloc(sizeof(png_bytep) * h);
    for (png_uint_32 y = 0; y < h; y++) s->rows[y] = s->raw + y * rowbytes;
    png_read_image(png, s->rows);
    png_read_end(png, NULL); /* checks the chunks after IDAT up to IEND */

    size_t count = (size_t)w * h * 4;
    s->pix = rhd_xmalloc(sizeof(float) * count);
    if (bytes == 1) {
        float lut[256];
        for (int i = 0; i < 256; i++) lut[i] = (float)i / 255.0f;
        for (size_t i = 0; i < count; i++) s->pix[i] = lut[s->raw[i]];
    } else {
        for (size_t i = 0; i < count; i++)
            s->pix[i] = (float)((unsigned)s->raw[2 * i] << 8 | s->raw[2 * i + 1]) / 65535.0f;
    }
    img->data = s->pix;
    s->pix = NULL;
    png_destroy_read_struct(&png, &info, NULL);
    free_state(s);
    return 0;
}

int rhd_png_read(const char *path, rhd_image *img, rhd_err *e) {
    char *buf;
    size_t n;
    memset(img, 0, sizeof *img);
    if (rhd_read_file(path, &buf, &n, e)) return -1;
    int rc = rhd_png_decode(buf, n, path, img, e);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* writing */

static void on_write(png_structp png, png_bytep data, size_t len) {
    png_state *s = png_get_io_ptr(png);
    if (len > s->out_cap - s->out_n) {
        size_t cap = s->out_cap ? s->out_cap : 4096;
        while (len > cap - s->out_n) cap *= 2;
        s->out = rhd_xrealloc(s->out, cap);
        s->out_cap = cap;
    }
    memcpy(s->out + s->out_n, data, len);
    s->out_n += len;
}

static void on_flush(png_structp png) {
    (void)png;
}

/* x clamped to [0,1] (NaN -> 0), then quantised to 0..M. TRUNC multiplies in float32, as the
 * original's numpy float32 (pred*255).astype(np.uint8) does; ROUND rounds half up in double. */
static unsigned quantise(float x, unsigned M, int trunc) {
    if (!(x > 0.0f)) return 0;
    if (x >= 1.0f) return M;
    if (trunc) {
        volatile float y = x * (float)M; /* a float32 product, even under excess precision */
        return (unsigned)y;
    }
    return (unsigned)((double)x * M + 0.5);
}

int rhd_png_encode(const float *pix, int width, int height, int channels, int bit_depth, int flags,
                   void **out, size_t *n, rhd_err *e) {
    *out = NULL;
    *n = 0;
    if (width < 1 || height < 1 || width > RHD_PNG_MAX_SIDE || height > RHD_PNG_MAX_SIDE ||
        (int64_t)width * height > RHD_PNG_MAX_PIXELS)
        return rhd_errf(e, "PNG size %dx%d, expected 1..%d per side and at most %ld pixels", width, height,
                        RHD_PNG_MAX_SIDE, (int64_t)RHD_PNG_MAX_PIXELS);
    if (channels < 1 || channels > 4)
        return rhd_errf(e, "PNG with %d channels, expected 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA)", channels);
    if (bit_depth != 8 && bit_depth != 16) return rhd_errf(e, "PNG bit depth %d, expected 8 or 16", bit_depth);
    if (flags & ~RHD_PNG_TRUNC) return rhd_errf(e, "PNG writer flags 0x%x, expected RHD_PNG_ROUND or RHD_PNG_TRUNC", flags);
    static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                 PNG_COLOR_TYPE_RGB_ALPHA};
    int bytes = bit_depth / 8, trunc = flags & RHD_PNG_TRUNC;
    unsigned M = bit_depth == 16 ? 65535u : 255u;
    size_t rowbytes = (size_t)width * channels * bytes, count = (size_t)width * height * channels;

    png_state *s = rhd_xcalloc(1, sizeof *s);
    s->raw = rhd_xmalloc(rowbytes * height);
    s->rows = rhd_xmalloc(sizeof(png_bytep) * height);
    for (int y = 0; y < height; y++) s->rows[y] = s->raw + y * rowbytes;
    for (size_t i = 0; i < count; i++) {
        unsigned q = quantise(pix[i], M, trunc);
        if (bytes == 1) s->raw[i] = (unsigned char)q;
        else s->raw[2 * i] = (unsigned char)(q >> 8), s->raw[2 * i + 1] = (unsigned char)q;
    }

    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, s, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(png ? &png : NULL, NULL);
        free_state(s);
        return rhd_errf(e, "cannot initialise libpng (out of memory)");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        rhd_errf(e, "encoding PNG: %s", s->msg);
        free_state(s);
        return -1;
    }
    png_set_write_fn(png, s, on_write, on_flush);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, bit_depth, types[channels],
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_write_image(png, s->rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    *out = s->out;
    *n = s->out_n;
    s->out = NULL;
    free_state(s);
    return 0;
}

int rhd_png_write(const char *path, const float *pix, int width, int height, int channels, int bit_depth,
                  int flags, rhd_err *e) {
    void *buf;
    size_t n;
    if (rhd_png_encode(pix, width, height, channels, bit_depth, flags, &buf, &n, e))
        return rhd_err_prefix(e, "%s", path);
    int rc = rhd_write_file_atomic(path, buf, n, e);
    free(buf);
    return rc;
}
