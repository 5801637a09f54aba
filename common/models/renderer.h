/* common/models/renderer.h: the occupancy-grid volume renderer over the triplane decoder
 * (spec fitting.md §2, §3, §6, §10; Renderer/nerf/renderer.py), shared by rhd-fit and rhd-render.
 *
 * One renderer holds the decoder (borrowed), the run constants and scratch buffers; occupancy
 * grids (kernels/occgrid.h) belong to the caller, one per avatar being fitted or rendered.
 *
 *   rhd_renderer_grid_update   one update_extra_state (§3.4) through the decoder's density path
 *   rhd_renderer_grid_warmup   reset + n full updates, no untrained marking (test time, §10.2)
 *   rhd_renderer_train_rays    training step for N rays of one view: march (§3.7), decode,
 *                              composite (§6.1), MSE against gt scaled by `weight`, backward into
 *                              dplanes (+=) and the decoder gradients (+=, when want_dparams)
 *   rhd_renderer_train_samples the same from given packed samples (tests: fixed samples, no grid)
 *   rhd_renderer_render_view   inference march (§3.8) + compositing (§6.2) of a full view
 *                              (the decoder's inference path: one fused kernel per step on CUDA)
 *
 * Triplanes (common/triplane.h) are in the PLANES layout with C = the decoder's channels; their
 * clamp flag says whether the decoder reads clamp(T, -1, 1).
 * Memory: triplanes, dplanes, gt images and packed samples are on the context's side (device
 * memory on CUDA); c2w and intrinsics are host values; rendered views come back in host memory.
 *
 * Coordinates: marched positions are world points in [-bound,bound]^3; the sampler receives
 * x_n = x/bound (the aabb remap), or x_n/bound with double_normalization (§12.3, the original:
 * the same for bound = 1). */
#ifndef RHD_MODELS_RENDERER_H
#define RHD_MODELS_RENDERER_H
#include <stdint.h>
#include "common/backend.h"
#include "common/models/decoder.h"
#include "common/triplane.h"
#include "kernels/composite.h"
#include "kernels/march.h"
#include "kernels/occgrid.h"
#include "kernels/rays.h"

typedef struct rhd_render_cfg {
    float bound;           /* 1 */
    float min_near;        /* 0.2 */
    int grid_size;         /* 256 */
    int max_steps;         /* 1024 */
    float dt_gamma;        /* 0 */
    float T_thresh;        /* 1e-4 */
    float bg[3];           /* white */
    float density_thresh;  /* 10 */
    float grid_decay;      /* 0.95 */
    int full_updates;      /* 16 */
    int force_all_rays;    /* 1 (the original keeps the mean_count budget: 0) */
    int double_norm;       /* 0: x/bound; 1: the original's second normalisation too */
    int64_t chunk;         /* decoder points per call in grid updates (65536) */
} rhd_render_cfg;

/* One camera: c2w [12] (row-major 3x4, host), intrinsics, image size. */
typedef struct rhd_render_camera {
    const float *c2w;
    rhd_intrinsics K;
    int W, H;
} rhd_render_camera;

/* One training step's rays (rhd_renderer_train_rays). */
typedef struct rhd_train_rays_opts {
    int64_t rays;      /* N rays drawn at random pixels */
    uint64_t seed;     /* pixel draws and march noise from (seed, step) */
    int64_t step;
    float weight;      /* the MSE's gradient is scaled by it */
    int want_dparams;  /* also accumulate the decoder gradients */
} rhd_train_rays_opts;

typedef struct rhd_render_stats {
    int64_t samples_requested, samples_kept, rays;
    double mse;
    double opacity; /* mean accumulated weight A of the step's rays (0: every ray shows the background) */
} rhd_render_stats;

typedef struct rhd_renderer {
    rhd_ctx *ctx;
    rhd_render_cfg cfg;
    rhd_decoder *dec;
    rhd_decoder_acts acts;
    /* scratch, grown on demand */
    int64_t cap_rays, cap_samples;
    int32_t *pix, *rays, *alive;
    float *rays_o, *rays_d, *nears, *fars, *gt, *pred, *dpred, *tcur, *wsum, *dacc, *depth;
    uint8_t *stop;
    float *xyz, *pts, *dirs, *d0, *d1, *sigma, *rgb, *dsigma, *drgb;
    float *scratch; /* rhd_renderer_scratch */
    int64_t cap_scratch;
} rhd_renderer;

#ifdef __cplusplus
extern "C" {
#endif
void rhd_render_cfg_default(rhd_render_cfg *c);
void rhd_renderer_init(rhd_renderer *r, rhd_ctx *ctx, rhd_decoder *dec, const rhd_render_cfg *cfg);
void rhd_renderer_free(rhd_renderer *r);
/* n floats of context-side scratch owned by the renderer, kept between calls (grown on demand):
 * for short-lived per-step buffers (grid-update queries, the distortion loss's points) without an
 * allocation per step. Any renderer call may reuse it. */
float *rhd_renderer_scratch(rhd_renderer *r, int64_t n);
/* Grid configuration matching the renderer's. */
rhd_occgrid_cfg rhd_renderer_grid_cfg(const rhd_renderer *r);

void rhd_renderer_grid_update(rhd_renderer *r, rhd_occgrid *g, const rhd_triplane *T, uint64_t seed);
void rhd_renderer_grid_warmup(rhd_renderer *r, rhd_occgrid *g, const rhd_triplane *T, uint64_t seed, int n_updates);

/* gt_img [H*W, 3] on the context's side. dplanes (+=) has T's shape. Returns the MSE. */
double rhd_renderer_train_rays(rhd_renderer *r, rhd_occgrid *g, const rhd_triplane *T, float *dplanes,
                               const rhd_render_camera *cam, const float *gt_img, const rhd_train_rays_opts *o,
                               rhd_render_stats *st);
/* Packed samples: xyz [M,3] world, dirs [M,3], delta0/delta1 [M], rays [N,2] (offset,count);
 * gt [N,3]. Writes pred [N,3] when non-NULL. Returns the MSE. */
double rhd_renderer_train_samples(rhd_renderer *r, const rhd_triplane *T, float *dplanes, const float *xyz,
                                  const float *dirs, const float *delta0, const float *delta1, const int32_t *rays,
                                  int64_t N, int64_t M, const float *gt, float weight, int want_dparams,
                                  float *pred_out);
/* Render a view into HOST memory: out [H*W, 3] composited on cfg.bg (unclamped, as the original's
 * PSNR uses it). */
void rhd_renderer_render_view(rhd_renderer *r, rhd_occgrid *g, const rhd_triplane *T, const rhd_render_camera *cam,
                              float *out);
/* The same keeping what the tools write, into HOST memory, each optional (NULL): rgb [H*W, 3]
 * premultiplied (no background), alpha [H*W] the accumulated weight, depth [H*W] in [0, 1]:
 * (sum w t - near) / (far - near), 0 for empty rays (§6.2, kernels/composite.h). */
void rhd_renderer_render_view_full(rhd_renderer *r, rhd_occgrid *g, const rhd_triplane *T,
                                   const rhd_render_camera *cam, float *rgb, float *alpha, float *depth);
/* PSNR of one image: -10 log10(mean (a-b)^2) over n values (+inf when equal). The one PSNR of
 * rhd-fit and rhd-render (rhd_image_psnr in common/metrics.h calls it). */
double rhd_psnr(const float *a, const float *b, int64_t n);
#ifdef __cplusplus
}
#endif
#endif
