/* common/render_cameras.h: a camera JSON in the dataset format (formats/cameras.md) as the float
 * 3x4 c2w and pinhole intrinsics that kernels/rays.h takes. */
#ifndef RHD_RENDER_CAMERAS_H
#define RHD_RENDER_CAMERAS_H
#include "common/err.h"
#include "common/models/fit_data.h"

#ifdef __cplusplus
extern "C" {
#endif
/* Read and validate one metadata JSON; c2w [12] is the converted world pose (§1.3), K = fx, fy,
 * cx, cy (§1.2) for a W x H image. cfg NULL: the original's constants. */
int rhd_camera_json_load(const char *path, const rhd_fit_data_cfg *cfg, float c2w[12], float K[4], int *W, int *H,
                         rhd_err *e);
/* The point a set of cameras looks at: the least-squares nearest point to their viewing axes
 * (c2w [n][12], row-major 3x4: column 3 the position, column 2 the axis, either sign), i.e. the p
 * minimising sum_i |(I - d_i d_i^T)(p - o_i)|^2. -1 (p untouched) when n < 2 or the axes are
 * (nearly) parallel. rhd-render's --orbit looks there by default with --data. */
int rhd_cameras_look_at(const float *c2w, int n, double p[3]);
#ifdef __cplusplus
}
#endif
#endif
