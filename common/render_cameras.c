/* common/render_cameras.c: see render_cameras.h. */
#include "common/render_cameras.h"
#include "formats/dataset.h"

int rhd_camera_json_load(const char *path, const rhd_fit_data_cfg *cfg, float c2w[12], float K[4], int *W, int *H,
                         rhd_err *e) {
    rhd_camera cam;
    if (rhd_camera_read(path, &cam, e)) return -1;
    rhd_dataset_config dc;
    rhd_dataset_config_init(&dc);
    if (cfg) {
        dc.translation_divisor = cfg->translation_divisor, dc.scale = cfg->scale, dc.fy_square_pixels = cfg->fy_square_pixels;
        for (int a = 0; a < 3; a++) dc.offset[a] = cfg->offset[a];
    }
    rhd_camera_intrinsics in;
    rhd_camera_intrinsics_from_camera(&in, &cam, &dc);
    double P[4][4];
    rhd_pose_convert(P, cam.c2w, &dc);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) c2w[4 * r + c] = (float)P[r][c];
    K[0] = (float)in.fx, K[1] = (float)in.fy, K[2] = (float)in.cx, K[3] = (float)in.cy;
    *W = in.width, *H = in.height;
    return 0;
}
