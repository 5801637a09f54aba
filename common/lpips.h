/* common/lpips.h: LPIPS, the learned perceptual image distance (Zhang et al. 2018), forward only,
 * as the `lpips` PyPI package 0.1.4 computes it with
 *   lpips.LPIPS(net="alex" | "vgg", version="0.1")(x0, x1, normalize=True)
 * for rhd-render --metrics --lpips (the perceptual metric next to PSNR and SSIM; the upsampler's
 * training loss uses the vgg variant, spec diffusion.md §5.4).
 *
 * For two RGB images with values in [0,1] (either order: the distance is symmetric):
 *   x   = 2 x - 1                                       (normalize=True)
 *   x   = (x - shift[c]) / scale[c]                     ScalingLayer: shift (-.030,-.088,-.188),
 *                                                       scale (.458,.448,.450) (or the file's)
 *   f_k = slice_k(... slice_1(x))                       k = 1..5, the backbone's relu outputs
 *   n_k = f_k / (sqrt(sum_c f_k^2) + 1e-10)             per position (lpips.normalize_tensor)
 *   d   = sum_k mean_{h,w} sum_c w_k[c] (n_k(x0) - n_k(x1))^2     linK: 1x1 conv, no bias
 * Backbones (torchvision's `features`, cut into lpips' five slices; convs with bias, each followed
 * by a ReLU; pool = max pooling, floor mode, kernels/pool.h):
 *   alex  slice1: conv 3->64 k11 s4 p2                 (net.slice1.0)
 *         slice2: pool k3 s2, conv 64->192 k5 p2       (net.slice2.3)
 *         slice3: pool k3 s2, conv 192->384 k3 p1      (net.slice3.6)
 *         slice4: conv 384->256 k3 p1                  (net.slice4.8)
 *         slice5: conv 256->256 k3 p1                  (net.slice5.10)     channels 64,192,384,256,256
 *   vgg   slice1: conv 3->64, conv 64->64              (net.slice1.0, .2)
 *         slice2: pool k2 s2, conv 64->128, 128->128   (net.slice2.5, .7)
 *         slice3: pool, conv 128->256, 256->256 x2     (net.slice3.10, .12, .14)
 *         slice4: pool, conv 256->512, 512->512 x2     (net.slice4.17, .19, .21)
 *         slice5: pool, conv 512->512 x3               (net.slice5.24, .26, .28)   all k3 p1;
 *                                                       channels 64,128,256,512,512
 * The smallest image is 31x31 for alex and 16x16 for vgg (rhd_lpips_check_size).
 *
 * Weights: a safetensors file holding lpips' state dict (formats/lpips.md; pipelines/
 * lpips_weights.py writes the official pretrained one): net.sliceK.I.weight/bias,
 * linK.model.1.weight [1,C_K,1,1] (or the duplicate lins.K.model.1.weight), optionally
 * scaling_layer.shift/scale [1,3,1,1]. The backbone is told from net.slice1.0.weight's shape.
 *
 * Arithmetic: the backbone runs on the context (fp32 convs: kernels/conv2d.h, relu, pooling),
 * both images as one batch of two; the normalisation, heads and means run on the host in double
 * with fixed summation orders (on CUDA the five feature maps are downloaded), so the CPU result
 * does not depend on the thread count and lpips(a, a) is exactly 0. */
#ifndef RHD_LPIPS_H
#define RHD_LPIPS_H
#include <stddef.h>
#include "common/backend.h"
#include "formats/safetensors.h"
#include "common/models/nn.h"

#define RHD_LPIPS_LAYERS 5
#define RHD_LPIPS_MAX_CONVS 13
#define RHD_LPIPS_EPS 1e-10

typedef enum { RHD_LPIPS_ALEX = 0, RHD_LPIPS_VGG = 1 } rhd_lpips_net;

typedef struct rhd_lpips_conv {
    const char *name;        /* state-dict prefix, e.g. "net.slice2.3" */
    int cin, cout, k, stride, pad;
    int pool_k, pool_s;      /* max pooling (no padding) before the conv; 0: none */
    int layer;               /* the slice (0..4) */
    int last;                /* its ReLU output is feature map `layer` */
    rhd_nn_conv blk;         /* the conv block: weight (cout,cin,k,k), bias (cout) in `params` */
} rhd_lpips_conv;

/* The backbone is built from common/models/nn.h blocks (conv, ReLU, max pooling) over one
 * parameter table; each evaluation is a pass of an rhd_nn run context (inference), its arena sized
 * by a dry run of the pass (grown when a larger image comes). */
typedef struct rhd_lpips {
    rhd_lpips_net net;
    rhd_ctx *ctx;
    int nconv;
    rhd_lpips_conv conv[RHD_LPIPS_MAX_CONVS];
    int chns[RHD_LPIPS_LAYERS];
    rhd_params params;               /* every conv weight and bias, on ctx */
    rhd_nn run;                      /* activations */
    float *lin[RHD_LPIPS_LAYERS];    /* (C_k) head weights, host */
    float shift[3], scale[3];
    float *host;                     /* host copy of a feature map (CUDA), grown on demand */
    size_t host_floats;
} rhd_lpips;

#ifdef __cplusplus
extern "C" {
#endif
const char *rhd_lpips_net_name(rhd_lpips_net net); /* "alex", "vgg" */

/* Load the weights of `path` onto ctx (checked: names, shapes, float dtypes, finite values).
 * Messages name the file and the tensor, say what was found and what was expected. */
int rhd_lpips_load(rhd_lpips *l, rhd_ctx *ctx, const char *path, rhd_err *e);
/* The same from an opened file. */
int rhd_lpips_load_st(rhd_lpips *l, rhd_ctx *ctx, const rhd_st *st, rhd_err *e);
void rhd_lpips_free(rhd_lpips *l);

/* 0 if H x W images go through the backbone (every map at least 1x1), else -1 saying the minimum. */
int rhd_lpips_check_size(const rhd_lpips *l, int H, int W, rhd_err *e);
/* The distance of x0 and x1, host arrays (3,H,W) with values in [0,1]. -1 if the size is refused. */
int rhd_lpips_eval(rhd_lpips *l, const float *x0, const float *x1, int H, int W, double *out, rhd_err *e);
/* The same for (H,W,3) interleaved images (common/metrics.h's layout). */
int rhd_lpips_eval_hwc(rhd_lpips *l, const float *x0, const float *x1, int H, int W, double *out, rhd_err *e);
#ifdef __cplusplus
}
#endif
#endif
