/* common/preview.h: pictures of tensors for people to look at (rhd-inspect --png, contact sheets).
 *   triplane [3,C,R,R] (also [3,1,C,R,R] and the rolled-out [C,R,3R]): the three planes side by
 *     side, each pixel's C channels projected on the first three principal components of all
 *     pixels (PCA over the three planes together) and mapped to RGB between the 1st and 99th
 *     percentiles of each component;
 *   a denoising trajectory [n,3,C,R,R] (rhd-sample --save-trajectory's x0): one row per step, top
 *     to bottom, all projected with the components and ranges of the last row (the final x0);
 *   feature maps (any tensor with >= 2 dims, read as [..., H, W]): a grid, one row per tensor, up
 *     to 16 channels per row, each channel scaled to its own min..max, tiles enlarged to a common
 *     height by nearest neighbour;
 *   an RGBA image: composited over a grey checkerboard.
 * Output is float RGB in [0,1], H x W x 3 interleaved. */
#ifndef RHD_PREVIEW_H
#define RHD_PREVIEW_H
#include "common/tensor.h"
#include "formats/png.h"

typedef struct rhd_preview {
    int width, height;
    float *rgb;
} rhd_preview;

#ifdef __cplusplus
extern "C" {
#endif
int rhd_preview_is_triplane(const rhd_tensor *t);
int rhd_preview_is_trajectory(const rhd_tensor *t);
/* a triplane or a trajectory (rhd_preview_is_trajectory) */
int rhd_preview_triplane(rhd_preview *p, const rhd_tensor *t, rhd_err *e);
/* parts one above the other (left-aligned, white gaps); frees the parts */
int rhd_preview_stack(rhd_preview *p, rhd_preview *parts, int n);
int rhd_preview_grid(rhd_preview *p, const rhd_tensor *const *maps, int n, rhd_err *e);
int rhd_preview_image(rhd_preview *p, const rhd_image *img);
void rhd_preview_free(rhd_preview *p);
/* Top-k principal directions (k <= 3) of n vectors of dimension c (rows of x, float), by power
 * iteration with deflation on the covariance; dirs is k x c, mean is c. Deterministic. */
void rhd_pca(const float *x, int64_t n, int c, int k, double *mean, double *dirs);
#ifdef __cplusplus
}
#endif
#endif
