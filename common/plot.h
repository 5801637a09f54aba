/* common/plot.h: a small line-plot rasteriser for pictures people compare by eye (noise
 * schedules, loss curves, PSNR per avatar).
 *
 * A plot is a frame with numeric ticks and labels on both axes (linear x; linear or log10 y), a
 * light grid, up to RHD_PLOT_MAX_SERIES anti-aliased polylines in distinct colours, a legend in
 * the corner the curves cover least, an optional title and axis labels. Text uses a built-in
 * bitmap font (printable ASCII; 5x7 cells, with two more rows for the descenders of g j p q y)
 * drawn at an integer scale. Points with a non-finite x or y,
 * or y <= 0 on a log axis, break a line instead of being drawn.
 *
 * Output: float RGB in [0,1], H x W x 3 interleaved, row-major from the top-left, for
 * rhd_png_write(path, rgb, W, H, 3, 8, RHD_PNG_ROUND, e). Rendering is deterministic. */
#ifndef RHD_PLOT_H
#define RHD_PLOT_H
#include "common/err.h"

#define RHD_PLOT_MAX_SERIES 16
#define RHD_PLOT_MAX_SIDE 8192
#define RHD_PLOT_GLYPH_ROWS 9 /* text height in font pixels: 7 above the baseline, 2 below */

typedef struct rhd_plot_series {
    const char *label;     /* legend text (may be NULL: not in the legend) */
    const double *x, *y;   /* [n], borrowed: must outlive rhd_plot_render */
    int n;
    float rgb[3];          /* colour; set by rhd_plot_add from the palette, may be changed */
} rhd_plot_series;

typedef struct rhd_plot {
    int width, height;                 /* pixels (default 960 x 600) */
    const char *title, *xlabel, *ylabel;
    int logy;                          /* log10 y axis */
    double xmin, xmax, ymin, ymax;     /* axis ranges; NaN (the default) = from the data */
    float line_width;                  /* pixels (default 2) */
    int font_scale;                    /* text size: 9*font_scale pixels a line (default 2) */
    int legend;                        /* draw the legend (default 1) */
    int nseries;
    rhd_plot_series series[RHD_PLOT_MAX_SERIES];
} rhd_plot;

#ifdef __cplusplus
extern "C" {
#endif
void rhd_plot_init(rhd_plot *p);
/* Add a series (colour i of the palette); fails beyond RHD_PLOT_MAX_SERIES. */
int rhd_plot_add(rhd_plot *p, const char *label, const double *x, const double *y, int n, rhd_err *e);
/* Render into rgb[height*width*3] (caller-allocated). Fails on bad sizes or when no series has a
 * drawable point. */
int rhd_plot_render(const rhd_plot *p, float *rgb, rhd_err *e);

/* Building blocks, exposed for tests and other pictures. */
/* The i-th palette colour. */
void rhd_plot_palette(int i, float rgb[3]);
/* Width in pixels of s at the given scale (6*scale per character, minus the last gap). */
int rhd_plot_text_width(const char *s, int scale);
/* Draw s with its top-left corner at (x, y); vertical: rotated to read bottom-up, (x, y) being
 * its bottom-left corner. Clipped to the image. */
void rhd_plot_text(float *rgb, int W, int H, int x, int y, const char *s, int scale, int vertical, const float color[3]);
/* 1 if the glyph of character c has its pixel (col 0..4, row 0..8; rows 7 and 8 below the
 * baseline) set. */
int rhd_plot_glyph_pixel(int c, int col, int row);
/* Tick values for an axis over [lo, hi]: linear "nice" steps of 1, 2 or 5 x 10^k giving at most
 * max_ticks ticks, or on a log axis powers of ten (every k-th decade). Returns the count. */
int rhd_plot_ticks(double lo, double hi, int logaxis, int max_ticks, double *ticks, int cap);
/* Label of a tick value: "0", "250", "0.25", "1e-05" (log axes: "1", "10", "1e-20"). */
void rhd_plot_tick_label(double v, double step, int logaxis, char *buf, int n);
#ifdef __cplusplus
}
#endif
#endif
