/* common/contact_sheet.c: ground truth | render rows with labels (see contact_sheet.h). */
#include "common/contact_sheet.h"
#include "common/plot.h"
#include "formats/png.h"
#include <stdlib.h>
#include <string.h>

void rhd_contact_sheet_init(rhd_contact_sheet *s, int W, int H) {
    memset(s, 0, sizeof *s);
    s->W = W, s->H = H;
    s->downscale = 1;
    s->gap = 8;
    s->font_scale = 2;
}

/* Box-average `src` (H, W, 3) by f into the sheet at (x0, y0). */
static void blit(float *dst, int DW, const float *src, int W, int H, int f, int x0, int y0) {
    int w = W / f, h = H / f;
    double inv = 1.0 / ((double)f * f);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double s = 0;
                for (int dy = 0; dy < f; dy++)
                    for (int dx = 0; dx < f; dx++) {
                        float v = src[(((int64_t)y * f + dy) * W + (int64_t)x * f + dx) * 3 + c];
                        s += v > 0 ? (v < 1 ? v : 1) : 0; /* clamp; NaN -> 0 */
                    }
                dst[((int64_t)(y0 + y) * DW + x0 + x) * 3 + c] = (float)(s * inv);
            }
}

int rhd_contact_sheet_render(const rhd_contact_sheet *s, const rhd_sheet_row *rows, int n, float **out, int *ow,
                             int *oh, rhd_err *e) {
    *out = NULL;
    if (n < 1) return rhd_errf(e, "contact sheet: no views");
    if (s->W < 1 || s->H < 1 || s->downscale < 1 || s->gap < 0 || s->font_scale < 1)
        return rhd_errf(e, "contact sheet: image %dx%d, downscale %d, expected positive sizes", s->W, s->H, s->downscale);
    int w = s->W / s->downscale, h = s->H / s->downscale;
    if (w < 1 || h < 1) return rhd_errf(e, "contact sheet: downscale %d leaves no pixels of a %dx%d image", s->downscale, s->W, s->H);
    int g = s->gap;
    /* the largest font scale (up to font_scale) at which the headings fit over their columns
     * (narrow columns get "gt" for "ground truth"); the sheet widens if a label needs it */
    int fs = s->font_scale, label_w = 0;
    while (fs > 1 && (rhd_plot_text_width("ground truth", fs) > w || rhd_plot_text_width("render", fs) > w)) fs--;
    for (int r = 0; r < n; r++) {
        int lw = rows[r].label ? rhd_plot_text_width(rows[r].label, fs) : 0;
        if (lw > label_w) label_w = lw;
    }
    int64_t DW = 2L * w + 3L * g;
    if (label_w + 2L * g > DW) DW = label_w + 2L * g;
    const char *gt_head = rhd_plot_text_width("ground truth", fs) <= w ? "ground truth" : "gt";
    int line = RHD_PLOT_GLYPH_ROWS * fs;
    int row_h = line + g / 2 + h + g;
    int64_t DH = g + line + g + (int64_t)n * row_h;
    if (DW > RHD_PNG_MAX_SIDE || DH > RHD_PNG_MAX_SIDE)
        return rhd_errf(e, "contact sheet: %ldx%ld pixels, expected at most %d per side (use a larger downscale)", DW, DH,
                        RHD_PNG_MAX_SIDE);
    float *img = rhd_xmalloc(sizeof(float) * 3 * DW * DH);
    for (int64_t i = 0; i < 3 * DW * DH; i++) img[i] = 1.f;
    const float ink[3] = {0.1f, 0.1f, 0.1f}, blank[3] = {0.85f, 0.85f, 0.85f};
    if (s->title) rhd_plot_text(img, (int)DW, (int)DH, g, g, s->title, fs, 0, ink);
    else {
        rhd_plot_text(img, (int)DW, (int)DH, g, g, gt_head, fs, 0, ink);
        rhd_plot_text(img, (int)DW, (int)DH, 2 * g + w, g, "render", fs, 0, ink);
    }
    for (int r = 0; r < n; r++) {
        int y0 = g + line + g + r * row_h;
        if (rows[r].label) rhd_plot_text(img, (int)DW, (int)DH, g, y0, rows[r].label, fs, 0, ink);
        int yi = y0 + line + g / 2;
        for (int col = 0; col < 2; col++) {
            const float *src = col ? rows[r].render : rows[r].gt;
            int x0 = g + col * (w + g);
            if (src) blit(img, (int)DW, src, s->W, s->H, s->downscale, x0, yi);
            else
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++) memcpy(&img[((int64_t)(yi + y) * DW + x0 + x) * 3], blank, sizeof blank);
        }
    }
    *out = img;
    *ow = (int)DW, *oh = (int)DH;
    return 0;
}

int rhd_contact_sheet_write(const char *path, const rhd_contact_sheet *s, const rhd_sheet_row *rows, int n,
                            rhd_err *e) {
    float *img;
    int w, h;
    if (rhd_contact_sheet_render(s, rows, n, &img, &w, &h, e)) return -1;
    int rc = rhd_png_write(path, img, w, h, 3, 8, RHD_PNG_ROUND, e);
    free(img);
    return rc;
}
