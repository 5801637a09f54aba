/* common/degrade.h: the low-resolution synthesis of upsampler training (spec diffusion.md §5.6,
 * §7.15; pretrained_diffusion/dataset/degradation, a light BSRGAN chain applied to RAW triplane
 * values, no clipping anywhere).
 *
 * Images are plane stacks [C,H,W] in host memory (a triplane [3,32,R,R] is the stack C = 96 with
 * channel = plane*32 + c, the original's HxWx96 image). Every op is a pure function; the random
 * choices of one chain are drawn once into an rhd_degrade_plan from a Philox stream (seed, stream,
 * offset), so a run is reproducible, and a test can give the plan explicitly.
 *
 * Ops (each acts on every channel alike):
 *   kernels   isotropic Gaussian (MATLAB fspecial('gaussian', size, sigma): centred grid, values
 *             below eps_double * max set to 0, normalised to sum 1) and anisotropic Gaussian
 *             (covariance V diag(l1, l2) V^-1, V = [[v0, v1], [v1, -v0]], v = rotation(theta) e_x;
 *             the 2-D normal density at x - (size-1)/2, y - (size-1)/2, normalised to sum 1),
 *             stored k[y*size + x]
 *   blur      scipy.ndimage.convolve(img, k, mode="mirror") per channel:
 *             out[i,j] = sum k[a,b] in[m(i + size/2 - a), m(j + size/2 - b)], m reflecting about the
 *             edge pixels' centres (-1 -> 1, n -> n-2)
 *   cv resize cv2.resize(img, (ow, oh), interpolation = INTER_LINEAR (1) | INTER_CUBIC (2)):
 *             src = (d + 0.5) in/out - 0.5 (as float), no antialias; linear: taps floor(src) and the
 *             next with src clamped to [0, in-1]; cubic: Keys a = -0.75 on floor(src)-1..+2, indices
 *             clamped (border replicate)
 *   imresize  the MATLAB-style antialiased bicubic of BSRGAN's imresize_np(img, scale, True): out =
 *             ceil(in scale); u = o/scale + 0.5 (1 - 1/scale) (1-based o); for scale < 1 the cubic
 *             kernel (a = -0.5) is stretched to width 4/scale and scaled by `scale`; weights
 *             normalised per output; indices outside [1, in] reflected symmetrically (edge
 *             repeated); rows first, then columns
 *   noise     Gaussian, std level/255: per element, or one [H,W] field shared by all channels
 *
 * The chain (rhd_degrade_apply), sf = 4 for 512 -> 128 (the original's; other factors, rhd-train
 * --factor, follow the same chain with sf in place of 4):
 *   NORMAL  (1) with prob 0.2, at sf 4 only (as the original), halve first (cv linear / cv cubic / imresize 1/2,
 *           probs 1/4, 1/4, 1/2) and set sf = sf/2 (the original: 2); (2) a random order of ops 0..6 with 2 moved before 3; 0: blur with prob
 *           0.25 (anisotropic, prob 0.4: size 3 or 4, theta U[0,pi), l1, l2 = U[0,1) (4+sf)/4; else
 *           isotropic: size 5, 6 or 7, sigma = U[0,1) (2 + 0.2 sf)/4); 2: remember (w, h), cv resize
 *           by 1/s, s = U(1.8, 1.3 sf) to (int(w/s), int(h/s)); 3: cv resize to (int(w/sf),
 *           int(h/sf)) of the remembered size; 4: noise level randint 5..25, per element (prob 0.4),
 *           shared (prob 0.4) or none; ops 1, 5, 6 do nothing. Interpolations linear/cubic 1/2 each.
 *   STRONG  the same with blur prob 0.5 and noise levels 20..80.
 *   NONE    PyTorch bicubic (align_corners False, a = -0.75, no antialias) straight to the low size.
 *   AREA    (not the original's) sf x sf block means, summed in float64: what the base model is
 *           trained on (rhd-train --downsample area), so an upsampler trained on it sees the kind
 *           of condition the base samples.
 * A zero sigma, l1 or l2 (a draw of exactly 0) is raised to 1e-4 to keep the kernel finite. */
#ifndef RHD_DEGRADE_H
#define RHD_DEGRADE_H
#include <stdint.h>
#include "common/err.h"

typedef enum { RHD_DEGRADE_NORMAL = 0, RHD_DEGRADE_STRONG = 1, RHD_DEGRADE_NONE = 2, RHD_DEGRADE_AREA = 3 } rhd_degrade_kind;
/* OpenCV's interpolation codes */
typedef enum { RHD_CV_LINEAR = 1, RHD_CV_CUBIC = 2 } rhd_cv_interp;
typedef enum { RHD_HALVE_NONE = 0, RHD_HALVE_CV_LINEAR = 1, RHD_HALVE_CV_CUBIC = 2, RHD_HALVE_IMRESIZE = 3 } rhd_halve;
typedef enum { RHD_NOISE_NONE = 0, RHD_NOISE_ELEMENT = 1, RHD_NOISE_SHARED = 2 } rhd_noise_mode;

#define RHD_BLUR_MAX 7

/* Every random choice of one chain. */
typedef struct rhd_degrade_plan {
    rhd_degrade_kind kind;
    int H, W, sf;                /* input size, the overall factor (4) */
    rhd_halve halve;
    int order[7];                /* op ids in run order */
    int blur, blur_aniso, ksize; /* blur on?, anisotropic?, kernel size */
    double theta, l1, l2, sigma;
    double s2;                   /* op 2's factor */
    rhd_cv_interp interp2, interp3;
    rhd_noise_mode noise;
    int noise_level;
    uint64_t seed, stream, noise_offset; /* noise normals: (seed, stream) from noise_offset on */
} rhd_degrade_plan;

#ifdef __cplusplus
extern "C" {
#endif
const char *rhd_degrade_kind_name(rhd_degrade_kind k); /* "normal", "strong", "none" */
/* "normal", "strong", "none" into *k; -1 with a message naming `what` otherwise. */
int rhd_degrade_kind_parse(const char *s, rhd_degrade_kind *k, const char *what, rhd_err *e);

/* Kernels: k [size*size], normalised to sum 1. size 1..RHD_BLUR_MAX (larger sizes also work). */
void rhd_blur_kernel_iso(double *k, int size, double sigma);
void rhd_blur_kernel_aniso(double *k, int size, double theta, double l1, double l2);
/* out [C,H,W] = in convolved with k (mirror borders); out must not alias in. */
void rhd_blur_mirror(float *out, const float *in, int C, int H, int W, const double *k, int size);
/* out [C,oh,ow] from in [C,h,w]. */
void rhd_cv_resize(float *out, int ow, int oh, const float *in, int C, int w, int h, rhd_cv_interp interp);
/* Output side of imresize at `scale`: ceil(n scale). */
int rhd_imresize_size(int n, double scale);
void rhd_imresize(float *out, const float *in, int C, int h, int w, double scale);
/* x [C,H,W] += noise (std level/255), normals i = offset.. of (seed, stream): per element C*H*W,
 * shared H*W. */
void rhd_add_noise(float *x, int C, int H, int W, rhd_noise_mode mode, int level, uint64_t seed, uint64_t stream,
                   uint64_t offset);

/* Draw a plan for an H x W input (sf: the overall factor, 4) from uniforms offset.. of (seed,
 * stream); the noise normals come later in the same stream (offset + 64 on). */
void rhd_degrade_draw(rhd_degrade_plan *p, rhd_degrade_kind kind, int H, int W, int sf, uint64_t seed,
                      uint64_t stream, uint64_t offset);
/* Final size of the plan's output (H/sf x W/sf for every kind). */
void rhd_degrade_out_size(const rhd_degrade_plan *p, int *oh, int *ow);
/* out [C, oh, ow] (rhd_degrade_out_size) from in [C,H,W]. */
void rhd_degrade_apply(const rhd_degrade_plan *p, float *out, const float *in, int C);
#ifdef __cplusplus
}
#endif
#endif
