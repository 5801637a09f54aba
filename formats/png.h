/* formats/png.h: PNG reading into float RGBA and writing from float (libpng).
 *
 * Reading accepts every PNG colour type and bit depth: gray (1, 2, 4, 8, 16 bit), gray+alpha
 * (8, 16), RGB (8, 16), RGBA (8, 16) and palette (1, 2, 4, 8, with or without tRNS). The result is
 * always float RGBA in [0,1]: H x W x 4 interleaved, row-major, pixel-major (data[(y*W + x)*4 + c],
 * c = R, G, B, A). Sample values are v / (2^depth - 1) with no gamma or colour-space conversion
 * (gAMA, sRGB, iCCP are ignored: the file is read "unchanged", as RodinHD's cv2.imread does, §1.5
 * of spec/fitting.md). Gray is copied to R, G and B; a missing alpha is 1; a tRNS chunk becomes an
 * alpha channel (0 for the transparent colour or the palette's alpha). Interlaced files are read.
 * The original colour type, bit depth and alpha are reported so that tools can reject inputs they
 * do not want (e.g. 16-bit or gray portraits) with a clear message.
 *
 * Limits, checked after IHDR and before any pixel buffer is allocated: at most RHD_PNG_MAX_SIDE
 * pixels per side and RHD_PNG_MAX_PIXELS pixels in total. Every libpng error (bad signature,
 * truncated data, CRC error on a critical chunk, bad IHDR, corrupt zlib stream, missing IEND)
 * becomes -1 with "<name>: <libpng's message>" in the rhd_err; nothing leaks.
 *
 * Writing: gray, gray+alpha, RGB or RGBA at 8 or 16 bits from float H x W x C interleaved.
 * Each value is clamped to [0,1] (NaN becomes 0) and quantised to q = floor(x*M + 0.5) with
 * M = 2^depth - 1 (round half up), or with RHD_PNG_TRUNC to q = trunc(x*M), which is what the
 * original's (pred*255).astype(np.uint8) does for values in [0,1] (spec §10.1). Files are written
 * atomically (common/fs.h). See formats/png.md. */
#ifndef RHD_PNG_H
#define RHD_PNG_H
#include <stddef.h>
#include "common/err.h"

#define RHD_PNG_MAX_SIDE 16384
#define RHD_PNG_MAX_PIXELS (1L << 27)

/* PNG colour types, with the values of the PNG specification (IHDR byte 9). */
enum {
    RHD_PNG_GRAY = 0,
    RHD_PNG_RGB = 2,
    RHD_PNG_PALETTE = 3,
    RHD_PNG_GRAY_ALPHA = 4,
    RHD_PNG_RGBA = 6
};

/* Writer flags. */
enum {
    RHD_PNG_ROUND = 0, /* q = floor(clamp(x)*M + 0.5): the default */
    RHD_PNG_TRUNC = 1  /* q = trunc(clamp(x)*M): the original's saving of renders (spec §10.1) */
};

typedef struct rhd_image {
    int width, height; /* W, H in pixels */
    float *data;       /* (H, W, 4) RGBA in [0,1], owned; free with rhd_image_free */
    int color_type;    /* the file's colour type: RHD_PNG_GRAY .. RHD_PNG_RGBA */
    int bit_depth;     /* the file's bit depth: 1, 2, 4, 8 or 16 */
    int has_alpha;     /* 1 if the file had an alpha channel or a tRNS chunk */
    int interlaced;    /* 1 for Adam7 */
} rhd_image;

#ifdef __cplusplus
extern "C" {
#endif
/* Read a PNG file. On error returns -1 with "<path>: <reason>" in e and img zeroed. */
int rhd_png_read(const char *path, rhd_image *img, rhd_err *e);
/* Decode a PNG held in memory; `name` is used in messages. */
int rhd_png_decode(const void *data, size_t n, const char *name, rhd_image *img, rhd_err *e);
/* Free the pixels and zero the struct (safe on a zeroed struct). */
void rhd_image_free(rhd_image *img);
/* "gray", "gray+alpha", "RGB", "RGBA", "palette" (or "unknown"). */
const char *rhd_png_color_type_name(int color_type);
/* A short description of the file's format, e.g. "16-bit gray+alpha" or "8-bit palette with tRNS",
 * written into buf (returns buf). For messages such as "portrait.png: 16-bit RGB PNG, expected
 * 8-bit RGB or RGBA". */
const char *rhd_png_describe(const rhd_image *img, char *buf, size_t n);

/* Encode float pixels (H, W, channels) interleaved as a PNG in memory (malloc'd *out, *n bytes).
 * channels: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA. bit_depth: 8 or 16. flags: RHD_PNG_ROUND or
 * RHD_PNG_TRUNC. Sizes must be 1..RHD_PNG_MAX_SIDE per side. */
int rhd_png_encode(const float *pix, int width, int height, int channels, int bit_depth, int flags,
                   void **out, size_t *n, rhd_err *e);
/* Encode and write atomically to path ("<path>.tmp", then rename). */
int rhd_png_write(const char *path, const float *pix, int width, int height, int channels, int bit_depth,
                  int flags, rhd_err *e);
#ifdef __cplusplus
}
#endif
#endif
