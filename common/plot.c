/* common/plot.c: the line-plot rasteriser and its 5x7 bitmap font (see plot.h). */
#include "common/plot.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- font ---------------------------------------------------------------------------------------
 * One glyph per printable ASCII character (32..126): seven rows of five columns, '#' = ink. */
static const char *const g_font[95] = {
    /*   */ "..... ..... ..... ..... ..... ..... .....",
    /* ! */ "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..",
    /* " */ ".#.#. .#.#. ..... ..... ..... ..... .....",
    /* # */ ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.",
    /* $ */ "..#.. .#### #.#.. .###. ..#.# ####. ..#..",
    /* % */ "##... ##..# ...#. ..#.. .#... #..## ...##",
    /* & */ ".##.. #..#. #.#.. .#... #.#.# #..#. .##.#",
    /* ' */ "..#.. ..#.. ..... ..... ..... ..... .....",
    /* ( */ "...#. ..#.. .#... .#... .#... ..#.. ...#.",
    /* ) */ ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
    /* * */ "..... ..#.. #.#.# .###. #.#.# ..#.. .....",
    /* + */ "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
    /* , */ "..... ..... ..... ..... .##.. ..#.. .#...",
    /* - */ "..... ..... ..... ##### ..... ..... .....",
    /* . */ "..... ..... ..... ..... ..... .##.. .##..",
    /* / */ "....# ...#. ...#. ..#.. .#... .#... #....",
    /* 0 */ ".###. #...# #..## #.#.# ##..# #...# .###.",
    /* 1 */ "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
    /* 2 */ ".###. #...# ....# ...#. ..#.. .#... #####",
    /* 3 */ "##### ...#. ..#.. ...#. ....# #...# .###.",
    /* 4 */ "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
    /* 5 */ "##### #.... ####. ....# ....# #...# .###.",
    /* 6 */ "..##. .#... #.... ####. #...# #...# .###.",
    /* 7 */ "##### ....# ...#. ..#.. .#... .#... .#...",
    /* 8 */ ".###. #...# #...# .###. #...# #...# .###.",
    /* 9 */ ".###. #...# #...# .#### ....# ...#. .##..",
    /* : */ "..... .##.. .##.. ..... .##.. .##.. .....",
    /* ; */ "..... .##.. .##.. ..... .##.. ..#.. .#...",
    /* < */ "...#. ..#.. .#... #.... .#... ..#.. ...#.",
    /* = */ "..... ..... ##### ..... ##### ..... .....",
    /* > */ ".#... ..#.. ...#. ....# ...#. ..#.. .#...",
    /* ? */ ".###. #...# ....# ...#. ..#.. ..... ..#..",
    /* @ */ ".###. #...# ....# .##.# #.#.# #.#.# .###.",
    /* A */ ".###. #...# #...# ##### #...# #...# #...#",
    /* B */ "####. #...# #...# ####. #...# #...# ####.",
    /* C */ ".###. #...# #.... #.... #.... #...# .###.",
    /* D */ "###.. #..#. #...# #...# #...# #..#. ###..",
    /* E */ "##### #.... #.... ####. #.... #.... #####",
    /* F */ "##### #.... #.... ####. #.... #.... #....",
    /* G */ ".###. #...# #.... #.### #...# #...# .####",
    /* H */ "#...# #...# #...# ##### #...# #...# #...#",
    /* I */ ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
    /* J */ "..### ...#. ...#. ...#. ...#. #..#. .##..",
    /* K */ "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
    /* L */ "#.... #.... #.... #.... #.... #.... #####",
    /* M */ "#...# ##.## #.#.# #.#.# #...# #...# #...#",
    /* N */ "#...# #...# ##..# #.#.# #..## #...# #...#",
    /* O */ ".###. #...# #...# #...# #...# #...# .###.",
    /* P */ "####. #...# #...# ####. #.... #.... #....",
    /* Q */ ".###. #...# #...# #...# #.#.# #..#. .##.#",
    /* R */ "####. #...# #...# ####. #.#.. #..#. #...#",
    /* S */ ".#### #.... #.... .###. ....# ....# ####.",
    /* T */ "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
    /* U */ "#...# #...# #...# #...# #...# #...# .###.",
    /* V */ "#...# #...# #...# #...# #...# .#.#. ..#..",
    /* W */ "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
    /* X */ "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
    /* Y */ "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
    /* Z */ "##### ....# ...#. ..#.. .#... #.... #####",
    /* [ */ ".###. .#... .#... .#... .#... .#... .###.",
    /* \ */ "#.... .#... .#... ..#.. ...#. ...#. ....#",
    /* ] */ ".###. ...#. ...#. ...#. ...#. ...#. .###.",
    /* ^ */ "..#.. .#.#. #...# ..... ..... ..... .....",
    /* _ */ "..... ..... ..... ..... ..... ..... #####",
    /* ` */ ".#... ..#.. ..... ..... ..... ..... .....",
    /* a */ "..... ..... .###. ....# .#### #...# .####",
    /* b */ "#.... #.... #.##. ##..# #...# #...# ####.",
    /* c */ "..... ..... .###. #.... #.... #...# .###.",
    /* d */ "....# ....# .##.# #..## #...# #...# .####",
    /* e */ "..... ..... .###. #...# ##### #.... .###.",
    /* f */ "..##. .#..# .#... ###.. .#... .#... .#...",
    /* g */ NULL,
    /* h */ "#.... #.... #.##. ##..# #...# #...# #...#",
    /* i */ "..#.. ..... .##.. ..#.. ..#.. ..#.. .###.",
    /* j */ NULL,
    /* k */ "#.... #.... #..#. #.#.. ##... #.#.. #..#.",
    /* l */ ".##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
    /* m */ "..... ..... ##.#. #.#.# #.#.# #...# #...#",
    /* n */ "..... ..... #.##. ##..# #...# #...# #...#",
    /* o */ "..... ..... .###. #...# #...# #...# .###.",
    /* p */ NULL,
    /* q */ NULL,
    /* r */ "..... ..... #.##. ##..# #.... #.... #....",
    /* s */ "..... ..... .###. #.... .###. ....# ####.",
    /* t */ ".#... .#... ###.. .#... .#... .#..# ..##.",
    /* u */ "..... ..... #...# #...# #...# #..## .##.#",
    /* v */ "..... ..... #...# #...# #...# .#.#. ..#..",
    /* w */ "..... ..... #...# #...# #.#.# #.#.# .#.#.",
    /* x */ "..... ..... #...# .#.#. ..#.. .#.#. #...#",
    /* y */ NULL,
    /* z */ "..... ..... ##### ...#. ..#.. .#... #####",
    /* { */ "...#. ..#.. ..#.. .#... ..#.. ..#.. ...#.",
    /* | */ "..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
    /* } */ ".#... ..#.. ..#.. ...#. ..#.. ..#.. .#...",
    /* ~ */ "..... ..... .#... #.#.# ...#. ..... .....",
};

/* The letters with descenders use nine rows: the seven above plus two below the baseline. */
static const char *const g_desc[5][2] = {
    {"g", "..... ..... .#### #...# #...# #...# .#### ....# .###."},
    {"j", "...#. ..... ..##. ...#. ...#. ...#. ...#. #..#. .##.."},
    {"p", "..... ..... ####. #...# #...# #...# ####. #.... #...."},
    {"q", "..... ..... .#### #...# #...# #...# .#### ....# ....#"},
    {"y", "..... ..... #...# #...# #...# #...# .#### ....# .###."},
};

/* Characters outside printable ASCII are drawn as a hollow box. */
static const char *const g_box = "##### #...# #...# #...# #...# #...# #####";

int rhd_plot_glyph_pixel(int c, int col, int row) {
    if (col < 0 || col > 4 || row < 0 || row > 8) return 0;
    const char *g = (c >= 32 && c <= 126) ? g_font[c - 32] : g_box;
    int rows = 7;
    if (!g) {
        for (int i = 0; i < 5; i++)
            if (g_desc[i][0][0] == c) g = g_desc[i][1];
        rows = 9;
    }
    RHD_ASSERT(g);
    return row < rows && g[row * 6 + col] == '#';
}

int rhd_plot_text_width(const char *s, int scale) {
    int n = (int)strlen(s);
    return n ? (6 * n - 1) * scale : 0;
}

static void put_px(float *rgb, int W, int H, int x, int y, const float c[3]) {
    if (x < 0 || y < 0 || x >= W || y >= H) return;
    float *p = rgb + ((size_t)y * W + x) * 3;
    p[0] = c[0], p[1] = c[1], p[2] = c[2];
}

void rhd_plot_text(float *rgb, int W, int H, int x, int y, const char *s, int scale, int vertical, const float color[3]) {
    for (int i = 0; s[i]; i++) {
        int ch = (unsigned char)s[i];
        for (int row = 0; row < RHD_PLOT_GLYPH_ROWS; row++)
            for (int col = 0; col < 5; col++) {
                if (!rhd_plot_glyph_pixel(ch, col, row)) continue;
                for (int a = 0; a < scale; a++)
                    for (int b = 0; b < scale; b++) {
                        int u = (6 * i + col) * scale + a; /* along the text */
                        int v = row * scale + b;           /* across, from the top of the glyph */
                        if (vertical) put_px(rgb, W, H, x + v, y - 1 - u, color);
                        else put_px(rgb, W, H, x + u, y + v, color);
                    }
            }
    }
}

/* --- palette ---------------------------------------------------------------------------------- */

void rhd_plot_palette(int i, float rgb[3]) {
    static const float pal[8][3] = {
        {0.00f, 0.36f, 0.70f}, /* blue */
        {0.90f, 0.40f, 0.00f}, /* orange */
        {0.10f, 0.60f, 0.20f}, /* green */
        {0.80f, 0.10f, 0.15f}, /* red */
        {0.45f, 0.25f, 0.70f}, /* purple */
        {0.55f, 0.35f, 0.20f}, /* brown */
        {0.85f, 0.30f, 0.65f}, /* pink */
        {0.35f, 0.35f, 0.35f}, /* grey */
    };
    const float *c = pal[((i % 8) + 8) % 8];
    /* past eight series, darken each further cycle a little so colours stay distinct */
    float k = 1.0f - 0.25f * (float)((i / 8) % 3);
    rgb[0] = c[0] * k, rgb[1] = c[1] * k, rgb[2] = c[2] * k;
}

/* --- ticks ------------------------------------------------------------------------------------ */

int rhd_plot_ticks(double lo, double hi, int logaxis, int max_ticks, double *ticks, int cap) {
    if (max_ticks < 2) max_ticks = 2;
    if (!(hi > lo) || !isfinite(lo) || !isfinite(hi)) return 0;
    if (logaxis) {
        if (!(lo > 0)) return 0;
        double a = log10(lo), b = log10(hi);
        int e0 = (int)ceil(a - 1e-9), e1 = (int)floor(b + 1e-9);
        static const int every[] = {1, 2, 3, 5, 10, 20, 25, 50, 100, 200};
        int k = 1;
        for (int i = 0; i < (int)(sizeof every / sizeof *every); i++) {
            k = every[i];
            int first = (int)ceil((double)e0 / k) * k, last = (int)floor((double)e1 / k) * k;
            if ((last - first) / k + 1 <= max_ticks) break;
        }
        int n = 0;
        for (int e = (int)ceil((double)e0 / k) * k; e <= e1 && n < cap; e += k) ticks[n++] = pow(10.0, e);
        return n;
    }
    double range = hi - lo;
    int k0 = (int)floor(log10(range / max_ticks)) - 1;
    static const double mult[] = {1, 2, 5};
    for (int k = k0; k < k0 + 40; k++)
        for (int m = 0; m < 3; m++) {
            double step = mult[m] * pow(10.0, k);
            double i0 = ceil(lo / step - 1e-9), i1 = floor(hi / step + 1e-9);
            if (i1 - i0 + 1 > max_ticks) continue;
            int n = 0;
            for (double i = i0; i <= i1 && n < cap; i++) {
                double v = i * step;
                ticks[n++] = v == 0 ? 0 : v; /* no "-0" */
            }
            return n;
        }
    return 0;
}

void rhd_plot_tick_label(double v, double step, int logaxis, char *buf, int n) {
    if (logaxis) {
        int e = (int)lround(log10(v));
        if (e >= -2 && e <= 4) snprintf(buf, n, "%g", pow(10.0, e));
        else snprintf(buf, n, "1e%d", e);
        return;
    }
    if (v == 0) {
        snprintf(buf, n, "0");
        return;
    }
    if (fabs(v) >= 1e6 || step < 1e-4) {
        snprintf(buf, n, "%.3g", v);
        return;
    }
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    snprintf(buf, n, "%.*f", decimals, v);
}

/* --- rendering -------------------------------------------------------------------------------- */

void rhd_plot_init(rhd_plot *p) {
    memset(p, 0, sizeof *p);
    p->width = 960;
    p->height = 600;
    p->xmin = p->xmax = p->ymin = p->ymax = NAN;
    p->line_width = 2.0f;
    p->font_scale = 2;
    p->legend = 1;
}

int rhd_plot_add(rhd_plot *p, const char *label, const double *x, const double *y, int n, rhd_err *e) {
    if (p->nseries >= RHD_PLOT_MAX_SERIES) return rhd_errf(e, "plot: more than %d series", RHD_PLOT_MAX_SERIES);
    if (n < 0) return rhd_errf(e, "plot: series '%s' has %d points", label ? label : "", n);
    rhd_plot_series *s = &p->series[p->nseries];
    s->label = label;
    s->x = x, s->y = y, s->n = n;
    rhd_plot_palette(p->nseries, s->rgb);
    p->nseries++;
    return 0;
}

static int point_ok(const rhd_plot *p, double x, double y) {
    return isfinite(x) && isfinite(y) && (!p->logy || y > 0);
}

/* Plot-area geometry and the data-to-pixel map. */
typedef struct {
    int left, top, pw, ph;   /* plot area in the image */
    double x0, x1, v0, v1;   /* x range and y range (log10 y on a log axis) */
    int logy;
} frame;

static double fx(const frame *f, double x) { return (x - f->x0) / (f->x1 - f->x0) * (f->pw - 1); }
static double fy(const frame *f, double y) {
    double v = f->logy ? log10(y) : y;
    return (1 - (v - f->v0) / (f->v1 - f->v0)) * (f->ph - 1);
}

/* Coverage of a segment of half-width hw into mask (plot-local pixels): max of the existing value
 * and clamp(hw + 0.5 - distance, 0, 1). Walks the major axis, so the cost is length x width. */
static void raster_segment(float *mask, int pw, int ph, double ax, double ay, double bx, double by, double hw) {
    double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    double r = hw + 1.0;
    int xmaj = fabs(dx) >= fabs(dy);
    double lo = xmaj ? fmin(ax, bx) - r : fmin(ay, by) - r, hi = xmaj ? fmax(ax, bx) + r : fmax(ay, by) + r;
    int lim_major = xmaj ? pw - 1 : ph - 1, lim_minor = xmaj ? ph - 1 : pw - 1;
    int u0 = (int)fmax(0, floor(lo)), u1 = (int)fmin(lim_major, ceil(hi));
    double slope = xmaj ? (dx != 0 ? dy / dx : 0) : (dy != 0 ? dx / dy : 0);
    double spread = r * sqrt(1 + slope * slope) + 1;
    for (int u = u0; u <= u1; u++) {
        /* the segment's minor coordinate at this major coordinate (clamped to the segment's ends) */
        double t = xmaj ? (dx != 0 ? (u - ax) / dx : 0) : (dy != 0 ? (u - ay) / dy : 0);
        t = fmin(1, fmax(0, t));
        double c = xmaj ? ay + t * dy : ax + t * dx;
        int v0 = (int)fmax(0, floor(c - spread)), v1 = (int)fmin(lim_minor, ceil(c + spread));
        for (int v = v0; v <= v1; v++) {
            double px = xmaj ? u : v, py = xmaj ? v : u;
            double s = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
            s = fmin(1, fmax(0, s));
            double qx = ax + s * dx - px, qy = ay + s * dy - py;
            double cov = hw + 0.5 - sqrt(qx * qx + qy * qy);
            if (cov <= 0) continue;
            if (cov > 1) cov = 1;
            float *m = &mask[(size_t)py * pw + (size_t)px];
            if (cov > *m) *m = (float)cov;
        }
    }
}

static void hline(float *rgb, int W, int H, int x0, int x1, int y, const float c[3]) {
    for (int x = x0; x <= x1; x++) put_px(rgb, W, H, x, y, c);
}
static void vline(float *rgb, int W, int H, int x, int y0, int y1, const float c[3]) {
    for (int y = y0; y <= y1; y++) put_px(rgb, W, H, x, y, c);
}

/* The plot's x range and y range (log10 of it on a log axis) into f: the given limits, else the
 * drawable points' extent, the y one rounded outwards to the tick step. */
static int plot_ranges(const rhd_plot *p, frame *f, rhd_err *e) {
    /* data ranges */
    double dx0 = INFINITY, dx1 = -INFINITY, dy0 = INFINITY, dy1 = -INFINITY;
    for (int k = 0; k < p->nseries; k++)
        for (int i = 0; i < p->series[k].n; i++) {
            double x = p->series[k].x[i], y = p->series[k].y[i];
            if (!point_ok(p, x, y)) continue;
            dx0 = fmin(dx0, x), dx1 = fmax(dx1, x), dy0 = fmin(dy0, y), dy1 = fmax(dy1, y);
        }
    if (!isfinite(p->xmin) || !isfinite(p->xmax) || !isfinite(p->ymin) || !isfinite(p->ymax))
        if (!(dx0 <= dx1)) return rhd_errf(e, "plot: no series has a drawable point%s", p->logy ? " (log y needs y > 0)" : "");
    f->logy = p->logy;
    f->x0 = isfinite(p->xmin) ? p->xmin : dx0;
    f->x1 = isfinite(p->xmax) ? p->xmax : dx1;
    if (!(f->x1 > f->x0)) f->x0 -= 0.5, f->x1 += 0.5;
    double ylo = isfinite(p->ymin) ? p->ymin : dy0, yhi = isfinite(p->ymax) ? p->ymax : dy1;
    if (p->logy) {
        if (!(ylo > 0)) return rhd_errf(e, "plot: log y axis from %g, expected a positive minimum", ylo);
        f->v0 = isfinite(p->ymin) ? log10(p->ymin) : floor(log10(ylo));
        f->v1 = isfinite(p->ymax) ? log10(p->ymax) : ceil(log10(yhi));
        if (!(f->v1 > f->v0)) f->v1 = f->v0 + 1;
    } else {
        if (!(yhi > ylo)) {
            double d = fabs(ylo) > 0 ? fabs(ylo) * 0.1 : 1;
            ylo -= d, yhi += d;
        }
        f->v0 = ylo, f->v1 = yhi;
        if (!isfinite(p->ymin) || !isfinite(p->ymax)) { /* round outwards to the tick step */
            double t[64];
            int nt = rhd_plot_ticks(ylo, yhi, 0, 8, t, 64);
            if (nt >= 2) {
                double step = t[1] - t[0];
                if (!isfinite(p->ymin)) f->v0 = floor(ylo / step + 1e-9) * step;
                if (!isfinite(p->ymax)) f->v1 = ceil(yhi / step - 1e-9) * step;
            }
        }
    }
    return 0;
}

/* Every series antialiased into the plot area of rgb; all[pw*ph] (zeroed) gets the coverage of
 * the curves, the maximum over the series, for the legend's placement. */
static void draw_series(const rhd_plot *p, const frame *f, float *rgb, float *all) {
    size_t np = (size_t)f->pw * f->ph;
    const int W = p->width;
    float *mask = rhd_xcalloc(np, sizeof(float));
    double hw = p->line_width / 2.0;
    for (int k = 0; k < p->nseries; k++) {
        const rhd_plot_series *sr = &p->series[k];
        memset(mask, 0, np * sizeof(float));
        int prev = 0;
        double px = 0, py = 0;
        for (int i = 0; i < sr->n; i++) {
            if (!point_ok(p, sr->x[i], sr->y[i])) {
                prev = 0;
                continue;
            }
            double x = fx(f, sr->x[i]), y = fy(f, sr->y[i]);
            int next_ok = i + 1 < sr->n && point_ok(p, sr->x[i + 1], sr->y[i + 1]);
            if (prev) raster_segment(mask, f->pw, f->ph, px, py, x, y, hw);
            else if (!next_ok) raster_segment(mask, f->pw, f->ph, x, y, x, y, hw); /* an isolated point */
            px = x, py = y, prev = 1;
        }
        for (size_t i = 0; i < np; i++) {
            float m = mask[i];
            if (m <= 0) continue;
            if (m > all[i]) all[i] = m;
            size_t y = i / f->pw, x = i % f->pw;
            float *q = rgb + (((size_t)f->top + y) * W + f->left + x) * 3;
            for (int c = 0; c < 3; c++) q[c] = q[c] * (1 - m) + sr->rgb[c] * m;
        }
    }
    free(mask);
}

/* The legend: in the corner the curves cover least (top right, top left, bottom right, bottom
 * left), by all (the curves' coverage of the plot area). */
static void draw_legend(const rhd_plot *p, const frame *f, float *rgb, const float *all) {
    const int W = p->width, H = p->height, s = p->font_scale, chh = RHD_PLOT_GLYPH_ROWS * p->font_scale;
    const float white[3] = {1, 1, 1}, ink[3] = {0.1f, 0.1f, 0.1f}, box_c[3] = {0.6f, 0.6f, 0.6f};
    int nl = 0, labw = 0;
    for (int k = 0; k < p->nseries; k++)
        if (p->series[k].label) {
            nl++;
            int w = rhd_plot_text_width(p->series[k].label, s);
            if (w > labw) labw = w;
        }
    if (p->legend && nl) {
        int sw = 8 * s + 8, rowh = chh + 6;
        int bw = 10 + sw + 8 + labw + 10, bh = 8 + nl * rowh + 2;
        if (bw + 20 <= f->pw && bh + 20 <= f->ph) {
            int cx[4] = {f->pw - bw - 10, 10, f->pw - bw - 10, 10}, cy[4] = {10, 10, f->ph - bh - 10, f->ph - bh - 10};
            int best = 0;
            double best_cov = INFINITY;
            for (int c = 0; c < 4; c++) {
                double cov = 0;
                for (int y = cy[c]; y < cy[c] + bh; y++)
                    for (int x = cx[c]; x < cx[c] + bw; x++) cov += all[(size_t)y * f->pw + x];
                if (cov < best_cov - 1e-9) best_cov = cov, best = c;
            }
            int bx = f->left + cx[best], by = f->top + cy[best];
            for (int y = by; y < by + bh; y++) hline(rgb, W, H, bx, bx + bw - 1, y, white);
            hline(rgb, W, H, bx, bx + bw - 1, by, box_c);
            hline(rgb, W, H, bx, bx + bw - 1, by + bh - 1, box_c);
            vline(rgb, W, H, bx, by, by + bh - 1, box_c);
            vline(rgb, W, H, bx + bw - 1, by, by + bh - 1, box_c);
            int row = 0;
            int lw = (int)ceil(p->line_width);
            for (int k = 0; k < p->nseries; k++) {
                if (!p->series[k].label) continue;
                int ty = by + 8 + row * rowh;
                for (int t = 0; t < lw; t++) hline(rgb, W, H, bx + 10, bx + 10 + sw - 1, ty + chh / 2 - lw / 2 + t, p->series[k].rgb);
                rhd_plot_text(rgb, W, H, bx + 10 + sw + 8, ty, p->series[k].label, s, 0, ink);
                row++;
            }
        }
    }
}

int rhd_plot_render(const rhd_plot *p, float *rgb, rhd_err *e) {
    const int W = p->width, H = p->height, s = p->font_scale, chh = RHD_PLOT_GLYPH_ROWS * p->font_scale;
    if (W < 64 || H < 64 || W > RHD_PLOT_MAX_SIDE || H > RHD_PLOT_MAX_SIDE)
        return rhd_errf(e, "plot: %dx%d pixels, expected 64..%d per side", W, H, RHD_PLOT_MAX_SIDE);
    if (s < 1 || s > 8) return rhd_errf(e, "plot: font scale %d, expected 1..8", s);
    if (!(p->line_width > 0 && p->line_width <= 32)) return rhd_errf(e, "plot: line width %g, expected (0, 32]", p->line_width);

    frame f = {0};
    if (plot_ranges(p, &f, e)) return -1;

    /* layout: y tick labels decide the left margin */
    double yt[256], xt[256];
    char lab[64];
    int max_yt = (H - 4 * chh) / (3 * chh);
    int nyt = rhd_plot_ticks(p->logy ? pow(10, f.v0) : f.v0, p->logy ? pow(10, f.v1) : f.v1, p->logy, max_yt, yt, 256);
    double ystep = nyt >= 2 ? yt[1] - yt[0] : 1;
    int ylabw = 0;
    for (int i = 0; i < nyt; i++) {
        rhd_plot_tick_label(yt[i], ystep, p->logy, lab, sizeof lab);
        int w = rhd_plot_text_width(lab, s);
        if (w > ylabw) ylabw = w;
    }
    const int tick = 5, gap = 6;
    f.left = 10 + (p->ylabel ? chh + 10 : 0) + ylabw + gap + tick;
    f.top = 12 + (p->title ? chh + 12 : 0);
    int bottom = tick + gap + chh + (p->xlabel ? 10 + chh : 0) + 12;
    int right = 16 + 3 * 6 * s;
    f.pw = W - f.left - right;
    f.ph = H - f.top - bottom;
    if (f.pw < 40 || f.ph < 40)
        return rhd_errf(e, "plot: %dx%d pixels leave a %dx%d plot area after the labels, expected a larger image", W, H, f.pw, f.ph);

    const float ink[3] = {0.1f, 0.1f, 0.1f}, frame_c[3] = {0.25f, 0.25f, 0.25f},
                grid_c[3] = {0.89f, 0.89f, 0.89f};
    for (size_t i = 0; i < (size_t)W * H; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = 1.0f;

    /* x ticks (labels about 8 characters apart at most) */
    int max_xt = f.pw / (8 * 6 * s);
    int nxt = rhd_plot_ticks(f.x0, f.x1, 0, max_xt, xt, 256);
    double xstep = nxt >= 2 ? xt[1] - xt[0] : 1;

    /* grid, then frame, ticks and labels */
    for (int i = 0; i < nxt; i++) {
        int x = f.left + (int)lround(fx(&f, xt[i]));
        vline(rgb, W, H, x, f.top, f.top + f.ph - 1, grid_c);
        vline(rgb, W, H, x, f.top + f.ph, f.top + f.ph + tick - 1, frame_c);
        rhd_plot_tick_label(xt[i], xstep, 0, lab, sizeof lab);
        rhd_plot_text(rgb, W, H, x - rhd_plot_text_width(lab, s) / 2, f.top + f.ph + tick + gap, lab, s, 0, ink);
    }
    for (int i = 0; i < nyt; i++) {
        int y = f.top + (int)lround(fy(&f, yt[i]));
        hline(rgb, W, H, f.left, f.left + f.pw - 1, y, grid_c);
        hline(rgb, W, H, f.left - tick, f.left - 1, y, frame_c);
        rhd_plot_tick_label(yt[i], ystep, p->logy, lab, sizeof lab);
        rhd_plot_text(rgb, W, H, f.left - tick - gap - rhd_plot_text_width(lab, s), y - chh / 2, lab, s, 0, ink);
    }
    if (p->logy && nyt >= 2 && fabs(log10(yt[1] / yt[0]) - 1) < 1e-9 && f.v1 - f.v0 <= 12) /* minor ticks 2..9 */
        for (int d = (int)floor(f.v0); d < (int)ceil(f.v1); d++)
            for (int m = 2; m <= 9; m++) {
                double v = log10(m) + d;
                if (v <= f.v0 || v >= f.v1) continue;
                int y = f.top + (int)lround((1 - (v - f.v0) / (f.v1 - f.v0)) * (f.ph - 1));
                hline(rgb, W, H, f.left - 3, f.left - 1, y, frame_c);
            }
    if (p->title) rhd_plot_text(rgb, W, H, f.left + (f.pw - rhd_plot_text_width(p->title, s)) / 2, 12, p->title, s, 0, ink);
    if (p->xlabel)
        rhd_plot_text(rgb, W, H, f.left + (f.pw - rhd_plot_text_width(p->xlabel, s)) / 2, f.top + f.ph + tick + gap + chh + 10,
                      p->xlabel, s, 0, ink);
    if (p->ylabel)
        rhd_plot_text(rgb, W, H, 10, f.top + (f.ph + rhd_plot_text_width(p->ylabel, s)) / 2, p->ylabel, s, 1, ink);

    /* series */
    float *all = rhd_xcalloc((size_t)f.pw * f.ph, sizeof(float));
    draw_series(p, &f, rgb, all);

    /* frame on top of the curves */
    hline(rgb, W, H, f.left - 1, f.left + f.pw, f.top - 1, frame_c);
    hline(rgb, W, H, f.left - 1, f.left + f.pw, f.top + f.ph, frame_c);
    vline(rgb, W, H, f.left - 1, f.top - 1, f.top + f.ph, frame_c);
    vline(rgb, W, H, f.left + f.pw, f.top - 1, f.top + f.ph, frame_c);

    draw_legend(p, &f, rgb, all);
    free(all);
    return 0;
}
