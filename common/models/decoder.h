/* common/models/decoder.h: the triplane MLP decoder of RodinHD's fitting stage (spec fitting.md
 * §4-§5; Renderer/TriplaneFit/network.py).
 *
 * For M sample points x (normalised to [-1,1]^3) and unit view directions d:
 *   feat  = mean over the 3 planes of bilinear samples of clamp(T) or T    [M, C]   (kernels/triplane.h;
 *           cfg.agg: the mean, the original's, or a product of the planes' samples)
 *   fc    = feat[:, 0:3C/4] (colour), fd = feat[:, 3C/4:C] (density)
 *   h1    = sigma_net.0(enc(fd))      enc = [x | sin x | cos x | sin 2x | cos 2x]  (degree 2)
 *   h2    = sigma_net.2(softplus(h1))                                      [M, 1 + geo]
 *   sigma = trunc_exp(h2[:, 0]); geo = h2[:, 1:]
 *   rgb   = sigmoid(color_net.2(relu(color_net.1(relu(color_net.0([enc(fc) | geo | enc(d)]))))))
 * Parameters are a common/params.h table under the original's state-dict names
 * (formats/decoder.md): sigma_net.0.weight [hid, 5*C/4], sigma_net.0.bias, sigma_net.2.weight
 * [1+geo, hid], sigma_net.2.bias, color_net.0.weight [hid, 5*3C/4 + geo + 15] (no bias),
 * color_net.1.weight [hid, hid], color_net.2.weight [3, hid]. Defaults: C = 32, hid = geo = 128.
 *
 * Contract:
 *   rhd_decoder_forward      writes sigma [M], rgb [M,3] and the saved activations of `a`.
 *   rhd_decoder_backward     from dsigma [M] and drgb [M,3] (either may be NULL = 0):
 *                            the decoder gradients are ACCUMULATED (+=) into dec->P.grad when
 *                            want_dparams, dplanes (+=) when non-NULL. Uses the activations of
 *                            the last forward on `a` (same points, planes, clamp).
 *   rhd_decoder_density      sigma [M] only (grid updates, dist loss), saving what the density
 *                            backward needs in `a`; rhd_decoder_density_backward accumulates
 *                            like rhd_decoder_backward.
 *   rhd_decoder_infer        inference: sigma [M] and rgb [M,3] (rgb NULL: density only). On CUDA
 *                            one fused kernel per call (decoder.cu: sampling, encodings, the MLP
 *                            and the output activations per tile of samples in shared memory),
 *                            nothing saved in `a` for a backward; on the CPU the forward (or
 *                            density path) above, which does overwrite the saved activations.
 *   rhd_decoder_infer_prepare / _release: bracket many infer calls on the same planes (a grid
 *                            update, a view): the planes are packed channels-last once, into `a`
 *                            (and on CUDA the weights transposed), instead of per call. Between
 *                            the two neither the planes nor the weights may change. Without a
 *                            prepare, each infer call samples the planes as the forward does. Environment: RHD_NO_FUSED=1
 *                            makes CUDA inference take the per-layer path (for comparisons).
 * Every pointer is on the context's side (device pointers on CUDA); the CUDA inference path
 * uses the context workspace only through the ops it calls, never across calls.
 * The per-layer path runs on both backends through kernels/ (triplane, freq_encode, linear, act,
 * elementwise for the splits and concatenations); CPU results are independent of the thread
 * count. */
#ifndef RHD_MODELS_DECODER_H
#define RHD_MODELS_DECODER_H
#include <stdint.h>
#include "common/backend.h"
#include "common/params.h"
#include "common/triplane.h"
#include "kernels/triplane.h"

typedef struct rhd_decoder_cfg {
    int C;       /* triplane channels (32); colour 3C/4, density C/4 */
    int hidden;  /* sigma_net and color_net width (128) */
    int geo;     /* geometry features (128) */
    int degree;  /* frequency encoding degree (2) */
    int agg;     /* plane aggregation, an rhd_plane_agg (RHD_PLANE_MEAN); metadata rhd.plane_agg */
} rhd_decoder_cfg;

enum { RHD_DEC_S0W = 0, RHD_DEC_S0B, RHD_DEC_S2W, RHD_DEC_S2B, RHD_DEC_C0W, RHD_DEC_C1W, RHD_DEC_C2W, RHD_DEC_NPARAM };

typedef struct rhd_decoder {
    rhd_decoder_cfg cfg;
    int Cc, Cd;         /* colour and density channels */
    int Ec, Ed, Edir;   /* encoded widths */
    int Cin;            /* color_net.0 input width */
    rhd_params P;       /* 7 tensors in the order of the enum above */
} rhd_decoder;

/* Saved activations for M points, on the side of the context that last used them (host memory
 * on the CPU, device memory on CUDA); grown on demand. Zero-initialise before first use. */
typedef struct rhd_decoder_acts {
    rhd_ctx *ctx;
    int64_t cap, cap_b, cap_s; /* points the forward / the backward / the splanes buffers hold */
    float *feat, *fc, *fd, *ec, *ed, *edir, *h1, *a1, *h2, *cin, *c1, *r1, *c2, *r2, *c3;
    float *dbuf_a, *dbuf_b, *dcin, *dfeat, *dfc, *dfd, *dh2, *tmp;
    float *splanes; /* [3, M, C] per-plane samples under a product aggregation (else unused) */
    /* rhd_decoder_infer_prepare: channels-last planes (both backends), transposed weights (CUDA) */
    float *wt, *packed;
    int64_t wt_cap, packed_cap;
    const float *prep_planes;
    int prep_R, prep_clamp, prep_valid;
} rhd_decoder_acts;

#ifdef __cplusplus
extern "C" {
#endif
void rhd_decoder_cfg_default(rhd_decoder_cfg *c);
/* Register the parameters and allocate (with gradient and Adam buffers when with_grad). */
int rhd_decoder_init(rhd_decoder *d, const rhd_decoder_cfg *cfg, rhd_ctx *ctx, int with_grad, rhd_err *e);
void rhd_decoder_free(rhd_decoder *d);
/* PyTorch nn.Linear's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases,
 * from Philox (seed, RHD_STREAM(RHD_STREAM_PARAM_INIT, tensor index)). */
void rhd_decoder_init_weights(rhd_decoder *d, uint64_t seed);
/* Infer the configuration from the shapes of a parameter file (decoder or checkpoint kind) and its
 * metadata rhd.plane_agg (absent: the mean); rhd_decoder_cfg_to_meta writes that key. */
struct rhd_st;
struct rhd_st_writer;
int rhd_decoder_cfg_from_st(rhd_decoder_cfg *c, const struct rhd_st *st, rhd_err *e);
void rhd_decoder_cfg_to_meta(const rhd_decoder_cfg *c, struct rhd_st_writer *w);

void rhd_decoder_acts_free(rhd_decoder_acts *a);

void rhd_decoder_forward(rhd_ctx *ctx, const rhd_decoder *d, rhd_decoder_acts *a, float *sigma, float *rgb,
                         const float *points, const float *dirs, const float *planes, int R, int clamp, int64_t M);
void rhd_decoder_backward(rhd_ctx *ctx, rhd_decoder *d, rhd_decoder_acts *a, float *dplanes, const float *dsigma,
                          const float *drgb, const float *points, const float *planes, int R, int clamp, int64_t M,
                          int want_dparams);
void rhd_decoder_density(rhd_ctx *ctx, const rhd_decoder *d, rhd_decoder_acts *a, float *sigma, const float *points,
                         const float *planes, int R, int clamp, int64_t M);
void rhd_decoder_density_backward(rhd_ctx *ctx, rhd_decoder *d, rhd_decoder_acts *a, float *dplanes,
                                  const float *dsigma, const float *points, const float *planes, int R, int clamp,
                                  int64_t M, int want_dparams);
void rhd_decoder_infer(rhd_ctx *ctx, const rhd_decoder *d, rhd_decoder_acts *a, float *sigma, float *rgb,
                       const float *points, const float *dirs, const float *planes, int R, int clamp, int64_t M);
void rhd_decoder_infer_prepare(rhd_ctx *ctx, const rhd_decoder *d, rhd_decoder_acts *a, const float *planes, int R,
                               int clamp);
void rhd_decoder_infer_release(rhd_decoder_acts *a);
#ifdef RHD_CUDA
/* Prepare the fused kernel's inputs; returns 0 (nothing prepared) when the configuration does not
 * fit one tile in shared memory, so infer takes the per-layer path. */
int rhd_decoder_infer_prepare_cuda(rhd_ctx *ctx, const rhd_decoder *d, rhd_decoder_acts *a, const float *planes, int R,
                                   int clamp);
/* The fused kernel on the prepared planes and weights. */
void rhd_decoder_infer_cuda(rhd_ctx *ctx, const rhd_decoder *d, rhd_decoder_acts *a, float *sigma, float *rgb,
                            const float *points, const float *dirs, int64_t M);
#endif
/* Forward FLOPs per sample (multiply-add = 2), the matrix products only (spec §13.1). */
double rhd_decoder_flops_per_sample(const rhd_decoder *d);
#ifdef __cplusplus
}
#endif
#endif
