/* common/render_loss.h: the upsampler's rendering loss (spec diffusion.md §5.4, §7.16;
 * upsample_train_util.py): the predicted x0 triplane rendered by the frozen fitted decoder at a
 * patch of a dataset view, L = w_l1 L1 + w_lpips LPIPS-VGG, and its gradient with respect to the
 * triplane (through LPIPS, the clamp, the compositing, the decoder and the triplane sampling).
 *
 * One step's patch, as the original:
 *   1. the occupancy grid (size 128) is reset and updated 16 times on the predicted triplane
 *      (rhd_render_loss_warmup; the renderer's full updates, fitting.md §3.4);
 *   2. a view f in [view_lo, view_hi] and a downscale ds in {2, 4, 8} (probs .2/.45/.35)
 *      (rhd_render_loss_draw); the GT image is the view Pillow-LANCZOS-resized to (W/ds, H/ds),
 *      composited on white (rhd_render_loss_gt), the camera the view's with fx, fy / ds and
 *      cx = cy = 0.5 W/ds (rhd_render_loss_camera);
 *   3. a P x P patch at row and column offsets each uniform in [0, h - P) (both bounds from the
 *      height, 0 when h = P); if the GT patch mean exceeds white_thresh (0.7) one new crop is drawn
 *      and kept whatever it is (rhd_render_loss_crop);
 *   4. the P*P rays are marched without perturbation (training march, up to max_steps), decoded and
 *      composited on the background; pred = clamp(rgb, 0, 1);
 *   5. L1 = mean |pred - gt| over the 3 P^2 values; LPIPS-VGG(2 pred - 1, 2 gt - 1) (lpips 0.1,
 *      common/lpips.h); loss = w_l1 L1 + w_lpips LPIPS. With count > 1 patches the caller averages
 *      (scale = 1/count).
 * The gradient of scale * loss is ACCUMULATED (+=) into dT; the decoder gets none (frozen).
 * d clamp/d x is 1 on [0, 1] (inclusive, as torch), d|x|/dx = sign(x) (0 at 0).
 *
 * LPIPS backward: common/lpips.h is forward only; here the VGG backbone runs on the lpips
 * struct's conv blocks in a training pass of its own rhd_nn (the GT image without saving), the
 * five heads' gradients are taken on the host in double, and the convs' input gradients only are
 * computed (no weight gradients). Random draws come from Philox (seed, stream, offset). */
#ifndef RHD_RENDER_LOSS_H
#define RHD_RENDER_LOSS_H
#include <stdint.h>
#include "common/lpips.h"
#include "common/models/decoder.h"
#include "common/models/renderer.h"
#include "formats/dataset.h"

typedef struct rhd_render_loss_opts {
    float w_l1, w_lpips;      /* 1, 0.5 */
    int patch;                /* P = 64 */
    int count;                /* patches per step: 1 */
    int view_lo, view_hi;     /* 0, 280 (both included) */
    float ds_prob[3];         /* ds = 2, 4, 8: 0.2, 0.45, 0.35 */
    float white_thresh;       /* 0.7 */
    int grid_updates;         /* 16 */
    rhd_render_cfg render;    /* the renderer's defaults with grid_size 128 */
} rhd_render_loss_opts;

/* One patch's random choices. */
typedef struct rhd_render_loss_pick {
    int view, ds;
} rhd_render_loss_pick;

typedef struct rhd_render_loss_out {
    double loss, l1, lpips;
    int64_t samples;          /* marched samples kept */
} rhd_render_loss_out;

typedef struct rhd_render_loss {
    rhd_ctx *ctx;
    rhd_render_loss_opts o;
    rhd_renderer rend;        /* over the borrowed, frozen decoder */
    rhd_occgrid grid;
    rhd_lpips *lpips;         /* borrowed, VGG */
    rhd_nn lrun;              /* the LPIPS backward pass */
    rhd_decoder_acts acts;
    /* tests: with keep_samples set, every rhd_render_loss_patch appends its marched samples here
     * (host; rays' offsets relative to the patch's first sample); free with rhd_render_loss_free */
    int keep_samples, kept_patches;
    int64_t kept_M;
    float *kept_xyz, *kept_dirs, *kept_d0; /* [kept_M,3], [kept_M,3], [kept_M] */
    int32_t *kept_rays;                    /* [kept_patches * P*P, 2] */
    int64_t *kept_first;                   /* [kept_patches]: each patch's first sample */
} rhd_render_loss;

#ifdef __cplusplus
extern "C" {
#endif
void rhd_render_loss_opts_default(rhd_render_loss_opts *o);
/* dec: the fitted decoder (its cfg.C is the triplane's channels), lpips: loaded VGG weights. -1 with
 * a message when lpips is not the vgg variant or the grid cannot be made. */
int rhd_render_loss_init(rhd_render_loss *rl, rhd_ctx *ctx, rhd_decoder *dec, rhd_lpips *lpips,
                         const rhd_render_loss_opts *o, rhd_err *e);
void rhd_render_loss_free(rhd_render_loss *rl);

/* Step 2's draws: uniforms offset, offset+1 of (seed, stream). */
void rhd_render_loss_draw(const rhd_render_loss_opts *o, uint64_t seed, uint64_t stream, uint64_t offset,
                          rhd_render_loss_pick *p);
/* The GT image at ds: gt (h*w, 3) host, malloc'd, from a straight RGBA view (H, W, 4) in [0,1]
 * (rhd_dataset_load_image): as the original's dataset, the 8-bit RGBA view (values rounded to
 * k/255) resized by Pillow's LANCZOS to (W/ds, H/ds) (rhd_resize_rgba8_pillow), then
 * rgb/255 * a/255 + 1 - a/255 in fp32 (on white). */
float *rhd_render_loss_gt(const float *rgba, int W, int H, int ds, int *w, int *h);
/* The camera of dataset view `view` at ds: c2w[12] (filled) and cam (pointing at c2w). -1 with a
 * message when the view is not in d. */
int rhd_render_loss_camera(const rhd_dataset *d, int view, int ds, float c2w[12], rhd_render_camera *cam,
                           rhd_err *e);
/* Step 3: the patch origin (x0, y0) in a (h, w) GT image; uniforms offset..offset+3. */
void rhd_render_loss_crop(const rhd_render_loss_opts *o, const float *gt, int w, int h, uint64_t seed,
                          uint64_t stream, uint64_t offset, int *x0, int *y0);

/* Steps 2-3 in one call for subject d (opened with the views to draw from): the view is drawn
 * uniformly among d's views whose index lies in [view_lo, view_hi] (all of 0..280 in the original's
 * data, where this is the original's draw), ds as rhd_render_loss_draw; the image is loaded, the GT
 * made at ds and the patch cropped (uniforms offset..offset+5 of (seed, stream)). p->cam.c2w points
 * into p: use p where it is (do not copy the struct). -1 with a message (no eligible view, a view
 * smaller than the patch at ds, an unreadable image). */
typedef struct rhd_render_patch {
    rhd_render_camera cam;
    float c2w[12];
    int view, ds, x0, y0;
    float *gt;                 /* (P*P, 3) host, malloc'd */
} rhd_render_patch;
/* ds: 0 draws the downscale (step 2); else this one (the original draws one per item and every
 * patch of the item shares it: a trainer passes its first patch's ds to the others). */
int rhd_render_loss_make_patch(const rhd_render_loss_opts *o, const rhd_dataset *d, uint64_t seed, uint64_t stream,
                               uint64_t offset, int ds, rhd_render_patch *p, rhd_err *e);
void rhd_render_patch_free(rhd_render_patch *p);

/* Step 1 on the predicted triplane T (PLANES layout, the decoder's channels, on ctx's side). */
void rhd_render_loss_warmup(rhd_render_loss *rl, const rhd_triplane *T, uint64_t seed);
/* Steps 4-5 for the patch at (x0, y0) of cam's image; gt_patch (P*P, 3) host, row-major. dT (+=)
 * the gradient of scale * loss. Uses the grid of the last warm-up. */
rhd_render_loss_out rhd_render_loss_patch(rhd_render_loss *rl, const rhd_triplane *T, float *dT,
                                          const rhd_render_camera *cam, int x0, int y0, const float *gt_patch,
                                          float scale);
/* The same from given packed samples (tests): xyz [M,3] world, dirs [M,3], delta0/delta1 [M], rays
 * [N,2] (offset, count), N = P*P, all on ctx's side. pred_out (N,3) host, optional. */
rhd_render_loss_out rhd_render_loss_samples(rhd_render_loss *rl, const rhd_triplane *T, float *dT, const float *xyz,
                                            const float *dirs, const float *delta0, const float *delta1,
                                            const int32_t *rays, int64_t M, const float *gt_patch, float scale,
                                            float *pred_out);
/* LPIPS (lpips.h) of x0, x1 (3,H,W) host in [0,1], and dx0 (3,H,W) host (=) its gradient. */
double rhd_lpips_grad(rhd_lpips *l, rhd_nn *run, const float *x0, const float *x1, int H, int W, float *dx0);
#ifdef __cplusplus
}
#endif
#endif
