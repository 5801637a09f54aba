/* common/fit_views.h: loading an avatar's views for the fitter and the renderer
 * (common/models/fit_data.h holds the view struct): intrinsics, converted poses and ground truth
 * composited on the background, read through formats/dataset.h (spec fitting.md §1). */
#ifndef RHD_FIT_VIEWS_H
#define RHD_FIT_VIEWS_H
#include "common/err.h"
#include "common/models/fit_data.h"

#ifdef __cplusplus
extern "C" {
#endif
/* The defaults of formats/dataset.h's rhd_dataset_config (the original's constants). */
void rhd_fit_data_cfg_default(rhd_fit_data_cfg *c);
/* Open subject_dir for the views views[0..n) (NULL: every view present) and, when load_images,
 * load every image. Errors name the file: missing views, mismatched sizes, bad poses, unreadable
 * PNGs. Free with rhd_fit_views_free. */
int rhd_fit_views_load(rhd_fit_views *v, const char *subject_dir, const int *views, int n,
                       const rhd_fit_data_cfg *cfg, int load_images, rhd_err *e);
#ifdef __cplusplus
}
#endif
#endif
