/* common/render_cameras.c: see render_cameras.h. */
#include "common/render_cameras.h"
#include <math.h>
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

static double det3(const double m[3][3]) {
    return m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
           m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
}

int rhd_cameras_look_at(const float *c2w, int n, double p[3]) {
    if (n < 2) return -1;
    double A[3][3] = {{0}}, b[3] = {0};
    for (int i = 0; i < n; i++) {
        const float *M = c2w + 12 * i;
        double d[3] = {M[2], M[6], M[10]}, o[3] = {M[3], M[7], M[11]};
        double l = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
        if (!(l > 0)) continue;
        for (int r = 0; r < 3; r++) d[r] /= l;
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 3; c++) {
                double q = (r == c) - d[r] * d[c];
                A[r][c] += q;
                b[r] += q * o[c];
            }
    }
    double D = det3(A);
    if (!(fabs(D) > 1e-9 * (double)n * n * n)) return -1; /* parallel axes: no single point */
    for (int k = 0; k < 3; k++) { /* Cramer's rule */
        double Ak[3][3];
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 3; c++) Ak[r][c] = c == k ? b[r] : A[r][c];
        p[k] = det3(Ak) / D;
    }
    return 0;
}
