/* common/image_resize.h: the portrait preprocessing of the encoder (spec diffusion.md §1.1,
 * script/encode_multiscale_feature.py): Lanczos resize of the RGBA portrait to size x size,
 * composite on white, scale to [-1, 1].
 *
 * Two resize methods:
 *   RHD_RESIZE_PILLOW (default)  bit-exact Pillow 10.4 `Image.resize((w, h), Image.LANCZOS)` on an
 *       8-bit RGBA image, which is what the original runs:
 *         1. RGBA -> RGBa (premultiplied): c' = MULDIV255(c, a) = (t + (t >> 8)) >> 8 with
 *            t = c*a + 128 (integer), alpha unchanged;
 *         2. separable fixed-point Lanczos (a = 3, support scaled by the downscale factor, i.e.
 *            antialiased), horizontal pass first, each pass rounding to 8 bits with clipping:
 *            per output sample, coefficients k_i = w_i / sum w (double) quantised to
 *            round-half-away(k_i * 2^22); acc = 2^21 + sum k_i v_i (int32); out = clamp(acc >> 22,
 *            0, 255); a pass is skipped when that dimension keeps its size, and an image whose size
 *            does not change is returned unchanged (no premultiply round trip);
 *         3. RGBa -> RGBA: c = c' if a is 0 or 255, else min(255, (255 c') / a) (integer division).
 *   RHD_RESIZE_FLOAT  the same Lanczos-3 filter (same support and weights, normalised in double)
 *       applied in floating point to premultiplied float values, without intermediate rounding;
 *       clamped at the end (alpha to [0,1], premultiplied colour to [0, alpha]) and converted back
 *       to straight alpha. It is the "close approximation" of the spec; tools/rhd-encode.md gives
 *       the measured difference.
 *
 * Then per pixel, in float32 and in this order (as numpy does it in the original):
 *   v = p / 255;  rgb' = rgb * a + (1 - a);  x = 2 rgb' - 1.
 * Images are H x W x 4 interleaved, row-major (formats/png.h layout); x is (3, size, size), RGB. */
/* rhd_resize_rgba8_pillow also makes the upsampler's rendering-loss ground truth
 * (common/render_loss.c rhd_render_loss_gt), as the original's dataset resizes its views. */
#ifndef RHD_IMAGE_RESIZE_H
#define RHD_IMAGE_RESIZE_H
#include <stdint.h>
#include "common/err.h"

typedef enum { RHD_RESIZE_PILLOW = 0, RHD_RESIZE_FLOAT = 1 } rhd_resize_method;

/* The smallest side rhd_portrait_to_input accepts (smaller images are an input error). */
#define RHD_PORTRAIT_MIN_SIDE 16

#ifdef __cplusplus
extern "C" {
#endif
/* "pillow", "float" */
const char *rhd_resize_method_name(rhd_resize_method m);

/* Pillow's LANCZOS resize of an 8-bit RGBA image: out (oh, ow, 4) <- in (h, w, 4). */
void rhd_resize_rgba8_pillow(uint8_t *out, int ow, int oh, const uint8_t *in, int w, int h);

/* Float Lanczos-3 on premultiplied values: out (oh, ow, 4) straight RGBA in [0,1] <- in (h, w, 4)
 * straight RGBA in [0,1]. */
void rhd_resize_rgba_float(float *out, int ow, int oh, const float *in, int w, int h);

/* The encoder input x (3, size, size) in [-1,1] from a straight RGBA image (h, w, 4) in [0,1]
 * (an 8-bit PNG as formats/png.h reads it; the Pillow method requires every value to be k/255 and
 * says which is not). Returns -1 with a message naming `name` for images smaller than
 * RHD_PORTRAIT_MIN_SIDE on a side. */
int rhd_portrait_to_input(float *x, int size, const float *rgba, int w, int h, rhd_resize_method m,
                          const char *name, rhd_err *e);
#ifdef __cplusplus
}
#endif
#endif
