/* common/train_upsample.h: the "upsample" model kind of the trainer (common/train_run.h;
 * tools/rhd-train.md "The upsample model"): the TriplaneUpsampler (common/models/upsampler.h) under
 * the upsampler's diffusion (spec diffusion.md §4, §5.4: T = 100 sigmoid, x0 prediction, fixed-large
 * variance, raw t in training, §3.6), one rhd_ups_train_step (common/upsampler_train.h) per item.
 *
 * Data: the pairs of common/train_data.h with the HR triplanes at R (resized as the base does), the
 * features file's moments only (ref = the §1.4 sample, uniform noise; ms_feature.* are read and
 * ignored); the low-resolution condition synthesised from the HR triplane by the degradation chain
 * (common/degrade.h), or with `low_res` (the original's --low_res_root, spec §5.6) read from
 * <dir>/<pair name>.safetensors or .npy (any layout formats/triplane_file.h reads; C channels of
 * side R / sf, as found: no resize, no degradation), the dir drawn per item when several are
 * listed. Every pair's low-res file in every dir is read once before the first step (the kind's
 * validate). Render loss (when render_weight or lpips_weight > 0): the frozen decoder of
 * `decoder`, the views of `views`/<pair name>/ (formats/dataset.h), LPIPS-VGG from `lpips`.
 *
 * Random draws of item b of step s, all from its slot key k (seed, s, slot, pair name; see
 * train_run.h) through the base kind's derivation sub(k, u) (a splitmix64 finaliser of
 * k + 0x9e3779b97f4a7c15 (u + 1)), on stream RHD_STREAM(RHD_STREAM_DIFFUSION, s): u = 1 the
 * conditioning noise (rhd_unet_cond_sample, uniform), 2 the diffusion noise (the noise key),
 * 3 the degradation plan (deg_seed), 4 the occupancy grid updates (grid_seed), 5 the render patches
 * (rhd_render_loss_make_patch, offset k << 8 for patch k; the downscale is patch 0's for every
 * patch, one per item as the original), 6 the low-res dir (floor(u n_dirs), u the
 * uniform of counter 0; only with several dirs). Items are run one at a time (the
 * original's micro-batch is 1), gradient scaled by w_b / M, so the micro-batch size changes only the
 * summation order of the gradients. The log's "vb" column carries the render loss (loss = mse + vb).
 *
 * The options are process-wide: rhd-train (or a test) sets them with rhd_train_ups_configure before
 * rhd_train_open; the kind's create copies them. */
#ifndef RHD_COMMON_TRAIN_UPSAMPLE_H
#define RHD_COMMON_TRAIN_UPSAMPLE_H
#include "common/degrade.h"
#include "common/train_run.h"

typedef struct rhd_train_ups_opts {
    int R;                        /* HR plane side the network trains at (512) */
    int sf;                       /* the condition is R / sf (4) */
    rhd_degrade_kind degrade;     /* normal (strong, none) */
    const char *low_res;          /* NULL, or "DIR[,DIR...]": precomputed low-res triplanes by pair name */
    const char *decoder;          /* fitted decoder (rhd-fit's decoder.safetensors); NULL: no render loss */
    const char *views;            /* dataset root: <views>/<pair name>/ holds the avatar's views */
    const char *lpips;            /* LPIPS-VGG weights (formats/lpips.md) */
    double render_weight;         /* 1: weight of the patch L1 */
    double lpips_weight;          /* 0.5 */
    int patch, patches;           /* 64, 1 */
    int view_lo, view_hi;         /* 0, 280 */
    int grid_size, max_steps;     /* the render loss's occupancy grid (128) and march (1024) */
    int render_clamp;             /* 0: the decoder reads x0_hat as it is (the original); 1: clamp(x0_hat, -1, 1) */
} rhd_train_ups_opts;

#ifdef __cplusplus
extern "C" {
#endif
void rhd_train_ups_opts_default(rhd_train_ups_opts *o);
/* 1 when the options ask for the rendering loss (either weight > 0). */
int rhd_train_ups_render_on(const rhd_train_ups_opts *o);
/* Option errors a tool reports as usage errors (-1 with a message naming the option): the render
 * loss without --decoder or --views, LPIPS weight > 0 without --lpips, sizes. */
int rhd_train_ups_opts_check(const rhd_train_ups_opts *o, rhd_err *e);
/* The options the next create of the "upsample" kind takes (copied; the strings must outlive the run). */
void rhd_train_ups_configure(const rhd_train_ups_opts *o);
extern const rhd_train_model_ops rhd_train_upsample_ops;
#ifdef __cplusplus
}
#endif
#endif
