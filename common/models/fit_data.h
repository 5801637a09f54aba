/* common/models/fit_data.h: the views of one avatar as the fitter and the renderer use them:
 * intrinsics, converted poses as 3x4 float c2w (kernels/rays.h) and ground truth composited on
 * the background (spec fitting.md §1): the float form of the dataset's rhd_camera_intrinsics and
 * poses that kernels/rays.h takes. Loading them is common/fit_views.h's (models open no files). */
#ifndef RHD_MODELS_FIT_DATA_H
#define RHD_MODELS_FIT_DATA_H
#include "common/err.h"

/* The dataset constants of §12 items 1-2 (defaults: the original's). */
typedef struct rhd_fit_data_cfg {
    double translation_divisor; /* 23 */
    double scale;               /* 0.6 */
    double offset[3];           /* 0 */
    int fy_square_pixels;       /* 0: fy = fl/sw*H as the original */
    int skip_incomplete;        /* 0: a view with one of its two files is an error; 1 (--skip-incomplete):
                                 * left out and listed (formats/dataset.md, "Incomplete data") */
} rhd_fit_data_cfg;

typedef struct rhd_fit_views {
    int W, H;
    float fx, fy, cx, cy;
    int n;        /* views */
    int *index;   /* [n] original view indices */
    float *c2w;   /* [n][12] world c2w (§1.3), row-major 3x4 */
    float *gt;    /* [n][H*W*3] ground truth on white, or NULL when not loaded */
} rhd_fit_views;

#ifdef __cplusplus
extern "C" {
#endif
void rhd_fit_views_free(rhd_fit_views *v);
#ifdef __cplusplus
}
#endif
#endif
