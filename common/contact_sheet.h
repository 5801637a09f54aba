/* common/contact_sheet.h: a PNG for people to look at: ground truth beside the render for each
 * view, one labelled row per view (rhd-render --contact-sheet).
 *
 * Layout: a header line ("ground truth" | "render", or a title), then one row per view: a label
 * line (e.g. "view 3   PSNR 31.42 dB   SSIM 0.962") above the two images side by side. Images are
 * float RGB (H, W, 3) in [0,1] (clamped when drawn), all of the same size; each is shrunk by an
 * integer factor (box average) when `downscale` > 1. White background, dark text, a gap of
 * `gap` pixels between cells. Text uses common/plot's bitmap font. */
#ifndef RHD_CONTACT_SHEET_H
#define RHD_CONTACT_SHEET_H
#include "common/err.h"

typedef struct rhd_sheet_row {
    const float *gt;     /* (H, W, 3), may be NULL: the cell stays blank */
    const float *render; /* (H, W, 3) */
    const char *label;   /* one line, may be NULL */
} rhd_sheet_row;

typedef struct rhd_contact_sheet {
    int W, H;            /* size of every input image */
    int downscale;       /* integer shrink factor >= 1 */
    int gap;             /* pixels between cells (8) */
    int font_scale;      /* 2; lowered (to 1 at least) until the headings fit */
    const char *title;   /* header line; NULL: "ground truth" / "render" over the columns */
} rhd_contact_sheet;

#ifdef __cplusplus
extern "C" {
#endif
void rhd_contact_sheet_init(rhd_contact_sheet *s, int W, int H);
/* Compose the sheet: *out is malloc'd float RGB (*oh, *ow, 3). Fails on bad sizes or a sheet
 * larger than RHD_PNG_MAX_SIDE per side. */
int rhd_contact_sheet_render(const rhd_contact_sheet *s, const rhd_sheet_row *rows, int n, float **out, int *ow,
                             int *oh, rhd_err *e);
/* Render and write as an 8-bit RGB PNG (atomically). */
int rhd_contact_sheet_write(const char *path, const rhd_contact_sheet *s, const rhd_sheet_row *rows, int n,
                            rhd_err *e);
#ifdef __cplusplus
}
#endif
#endif
