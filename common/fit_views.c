/* common/fit_views.c: loading an avatar's views for fitting (see fit_views.h). */
#include "common/fit_views.h"
#include <stdlib.h>
#include <string.h>
#include "formats/dataset.h"

void rhd_fit_data_cfg_default(rhd_fit_data_cfg *c) {
    rhd_dataset_config d;
    rhd_dataset_config_init(&d);
    c->translation_divisor = d.translation_divisor;
    c->scale = d.scale;
    memcpy(c->offset, d.offset, sizeof c->offset);
    c->fy_square_pixels = d.fy_square_pixels;
    c->skip_incomplete = d.skip_incomplete;
}

int rhd_fit_views_load(rhd_fit_views *v, const char *subject_dir, const int *views, int n,
                       const rhd_fit_data_cfg *cfg, int load_images, rhd_err *e) {
    memset(v, 0, sizeof *v);
    rhd_dataset_config dc;
    rhd_dataset_config_init(&dc);
    dc.translation_divisor = cfg->translation_divisor;
    dc.scale = cfg->scale;
    memcpy(dc.offset, cfg->offset, sizeof dc.offset);
    dc.fy_square_pixels = cfg->fy_square_pixels;
    dc.skip_incomplete = cfg->skip_incomplete;
    rhd_dataset d;
    if (rhd_dataset_open(&d, subject_dir, views, n, &dc, e)) return -1;
    if (d.n == 0) {
        rhd_dataset_close(&d);
        return rhd_errf(e, "%s: no views selected, expected at least one", subject_dir);
    }
    v->W = d.K.width, v->H = d.K.height;
    v->fx = (float)d.K.fx, v->fy = (float)d.K.fy, v->cx = (float)d.K.cx, v->cy = (float)d.K.cy;
    v->n = d.n;
    v->index = rhd_xmalloc(sizeof(int) * (size_t)d.n);
    v->c2w = rhd_xmalloc(sizeof(float) * 12 * (size_t)d.n);
    for (int i = 0; i < d.n; i++) {
        v->index[i] = d.views[i].index;
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++) v->c2w[12 * i + 4 * r + c] = (float)d.views[i].pose[r][c];
    }
    if (load_images) {
        size_t npix = (size_t)v->W * v->H;
        v->gt = rhd_xmalloc(sizeof(float) * 3 * npix * (size_t)d.n);
        for (int i = 0; i < d.n; i++) {
            float *gt;
            if (rhd_dataset_load_gt(&d, d.views[i].index, &gt, e)) {
                rhd_dataset_close(&d);
                rhd_fit_views_free(v);
                return -1;
            }
            memcpy(v->gt + 3 * npix * (size_t)i, gt, sizeof(float) * 3 * npix);
            free(gt);
        }
    }
    rhd_dataset_close(&d);
    return 0;
}
