/* tests/unit/test_plot.c: common/plot: the bitmap font, tick selection and labels, and rendered
 * pictures (a line lands where its data says, log axes, broken lines, the legend avoids the
 * curves, errors, determinism). */
#include "harness.h"
#include "common/plot.h"

static void test_font(void) {
    int ink_ok = 1, distinct = 1;
    for (int c = 33; c <= 126; c++) {
        int ink = 0;
        for (int r = 0; r < RHD_PLOT_GLYPH_ROWS; r++)
            for (int k = 0; k < 5; k++) ink += rhd_plot_glyph_pixel(c, k, r);
        ink_ok &= ink > 0;
        for (int d = 33; d < c; d++) {
            int same = 1;
            for (int r = 0; r < RHD_PLOT_GLYPH_ROWS && same; r++)
                for (int k = 0; k < 5; k++) same &= rhd_plot_glyph_pixel(c, k, r) == rhd_plot_glyph_pixel(d, k, r);
            if (same) th_diag("  glyphs '%c' and '%c' are identical", c, d), distinct = 0;
        }
    }
    int space = 0;
    for (int r = 0; r < RHD_PLOT_GLYPH_ROWS; r++)
        for (int k = 0; k < 5; k++) space += rhd_plot_glyph_pixel(' ', k, r);
    int desc = rhd_plot_glyph_pixel('g', 1, 8) && !rhd_plot_glyph_pixel('a', 1, 8) && rhd_plot_glyph_pixel('p', 0, 8);
    th_ok(ink_ok && distinct && space == 0 && desc, "font: 94 visible glyphs, all distinct, blank space, descenders on g/p");
    th_ok(rhd_plot_text_width("abc", 2) == 34 && rhd_plot_text_width("", 3) == 0, "text width: 6 px a character minus the last gap");
}

static int is_nice(double step) {
    double m = step / pow(10, floor(log10(step) + 1e-12));
    return fabs(m - 1) < 1e-9 || fabs(m - 2) < 1e-9 || fabs(m - 5) < 1e-9;
}

static void test_ticks(void) {
    static const struct { double lo, hi; int max; } lin[] = {
        {0, 999, 8}, {0, 1, 6}, {-3.7, 12.2, 5}, {1e-7, 3e-7, 4}, {-1e9, 2e9, 7}, {0.999, 1.001, 5}, {-7, 0, 8}};
    int ok = 1;
    for (size_t i = 0; i < sizeof lin / sizeof *lin; i++) {
        double t[64];
        int n = rhd_plot_ticks(lin[i].lo, lin[i].hi, 0, lin[i].max, t, 64);
        int good = n >= 2 && n <= lin[i].max && is_nice(t[1] - t[0]) && t[0] >= lin[i].lo - 1e-12 && t[n - 1] <= lin[i].hi + 1e-12;
        for (int k = 2; k < n; k++) good &= fabs((t[k] - t[k - 1]) - (t[1] - t[0])) < 1e-9 * fabs(t[1] - t[0]);
        if (!good) th_diag("  ticks [%g, %g] max %d: n=%d first %g step %g", lin[i].lo, lin[i].hi, lin[i].max, n, n ? t[0] : 0,
                           n > 1 ? t[1] - t[0] : 0), ok = 0;
    }
    th_ok(ok, "linear ticks: 2..max evenly spaced nice steps (1, 2, 5 x 10^k) inside the range");
    double t[64];
    int n = rhd_plot_ticks(0, 999, 0, 8, t, 64);
    th_ok(n == 5 && t[0] == 0 && t[4] == 800, "ticks over 0..999 (8 at most): 0, 200, ..., 800");
    n = rhd_plot_ticks(1e-21, 1, 1, 8, t, 64);
    int every3 = n >= 2 && n <= 8 && fabs(log10(t[1] / t[0]) - 3) < 1e-9 && fabs(t[n - 1] - 1) < 1e-12;
    th_ok(every3, "log ticks over 1e-21..1 (8 at most): every 3rd decade up to 1 (%d ticks)", n);
    n = rhd_plot_ticks(1e-3, 100, 1, 8, t, 64);
    th_ok(n == 6 && fabs(t[0] - 1e-3) < 1e-18 && fabs(t[5] - 100) < 1e-12, "log ticks over 1e-3..100: every decade");
    char a[32], b[32], c[32], d[32], e[32], f[32];
    rhd_plot_tick_label(0.25, 0.05, 0, a, 32);
    rhd_plot_tick_label(200, 200, 0, b, 32);
    rhd_plot_tick_label(1e-20, 0, 1, c, 32);
    rhd_plot_tick_label(1, 0, 1, d, 32);
    rhd_plot_tick_label(100, 0, 1, e, 32);
    rhd_plot_tick_label(0.4, 0.2, 0, f, 32);
    th_ok(!strcmp(a, "0.25") && !strcmp(b, "200") && !strcmp(c, "1e-20") && !strcmp(d, "1") && !strcmp(e, "100") && !strcmp(f, "0.4"),
          "tick labels: '%s' '%s' '%s' '%s' '%s' '%s'", a, b, c, d, e, f);
}

static int near_color(const float *p, const float c[3], float tol) {
    return fabsf(p[0] - c[0]) < tol && fabsf(p[1] - c[1]) < tol && fabsf(p[2] - c[2]) < tol;
}

static void test_render(void) {
    enum { W = 400, H = 300, N = 101 };
    double x[N], y[N], yd[N];
    for (int i = 0; i < N; i++) x[i] = i / 100.0, y[i] = 0.5, yd[i] = x[i];
    rhd_plot p;
    rhd_err e;
    float *img = malloc(sizeof(float) * W * H * 3), *img2 = malloc(sizeof(float) * W * H * 3);

    /* a horizontal line at y = 0.5 of a fixed [0, 1] axis: colour in a thin band of rows, halfway */
    rhd_plot_init(&p);
    p.width = W, p.height = H, p.ymin = 0, p.ymax = 1, p.legend = 0;
    rhd_plot_add(&p, "flat", x, y, N, &e);
    int rc = rhd_plot_render(&p, img, &e);
    int rmin = H, rmax = -1, cols = 0, inrange = 1;
    for (int i = 0; i < W * H * 3; i++) inrange &= img[i] >= 0 && img[i] <= 1;
    for (int r = 0; r < H; r++)
        for (int k = 0; k < W; k++)
            if (near_color(img + (r * W + k) * 3, p.series[0].rgb, 0.02f)) {
                if (r < rmin) rmin = r;
                if (r > rmax) rmax = r;
            }
    for (int k = 0; k < W; k++)
        for (int r = rmin; r <= rmax && rmax >= 0; r++)
            if (near_color(img + (r * W + k) * 3, p.series[0].rgb, 0.02f)) { cols++; break; }
    th_ok(rc == 0 && inrange && rmax - rmin <= 2 && cols > W / 2,
          "a flat line renders as a band of %d rows over %d columns, values in [0,1]", rmax - rmin + 1, cols);
    int mid_row = (rmin + rmax) / 2;

    /* the diagonal y = x on the same axes: the curve's row falls as the column grows, through the
     * flat line's row at the middle */
    p.series[0].y = yd;
    rc = rhd_plot_render(&p, img, &e);
    int prev = H, mono = 1, found = 0, kmin = W, kmax = 0, cross = -1;
    for (int k = 0; k < W; k++) {
        double s = 0, wsum = 0;
        for (int r = 0; r < H; r++)
            if (near_color(img + (r * W + k) * 3, p.series[0].rgb, 0.05f)) s += r, wsum++;
        if (!wsum) continue;
        int row = (int)lround(s / wsum);
        if (row > prev + 1) mono = 0;
        prev = row, found++;
        if (k < kmin) kmin = k;
        if (k > kmax) kmax = k;
        if (abs(row - mid_row) <= 1 && cross < 0) cross = k;
    }
    int centre = (kmin + kmax) / 2;
    th_ok(rc == 0 && mono && found > W / 2 && abs(cross - centre) <= 3,
          "the diagonal rises monotonically and crosses y = 0.5 mid-plot (column %d, centre %d)", cross, centre);

    /* the legend sits where the curve is not: turning it on changes no pixel of the curve */
    p.legend = 1;
    rc = rhd_plot_render(&p, img2, &e);
    int changed = 0, covered = 0;
    for (int i = 0; i < W * H; i++) {
        int diff = memcmp(img + 3 * i, img2 + 3 * i, 3 * sizeof(float)) != 0;
        changed += diff;
        covered += diff && near_color(img + 3 * i, p.series[0].rgb, 0.3f);
    }
    th_ok(rc == 0 && changed > 100 && covered == 0, "the legend (%d pixels) covers none of the curve's pixels", changed);
    rc = rhd_plot_render(&p, img, &e);
    th_ok(rc == 0 && memcmp(img, img2, sizeof(float) * W * H * 3) == 0, "rendering is deterministic");

    /* log axis with zeros, negatives and NaNs: they break the line, the rest is drawn */
    double ly[N];
    for (int i = 0; i < N; i++) ly[i] = i % 10 == 3 ? 0 : i % 10 == 7 ? NAN : i == 50 ? -1 : pow(10, -i / 5.0);
    rhd_plot_init(&p);
    p.width = W, p.height = H, p.logy = 1;
    rhd_plot_add(&p, "decay", x, ly, N, &e);
    rhd_plot_add(&p, "flat", x, y, N, &e);
    rc = rhd_plot_render(&p, img, &e);
    int c0 = 0, c1 = 0;
    for (int i = 0; i < W * H; i++) c0 += near_color(img + 3 * i, p.series[0].rgb, 0.02f), c1 += near_color(img + 3 * i, p.series[1].rgb, 0.02f);
    th_ok(rc == 0 && c0 > 200 && c1 > 200, "log y with zeros, negatives and NaNs: both series drawn (%d and %d pixels)", c0, c1);

    /* errors */
    double bad[3] = {0, -1, NAN};
    rhd_plot_init(&p);
    p.width = W, p.height = H, p.logy = 1;
    rhd_plot_add(&p, "none", x, bad, 3, &e);
    rc = rhd_plot_render(&p, img, &e);
    th_ok(rc && strstr(e.msg, "no series has a drawable point (log y needs y > 0)"), "nothing drawable: %s", e.msg);
    rhd_plot_init(&p);
    p.width = 70, p.height = 70;
    rhd_plot_add(&p, "x", x, y, N, &e);
    rc = rhd_plot_render(&p, img, &e);
    th_ok(rc && strstr(e.msg, "expected a larger image"), "too small: %s", e.msg);
    rhd_plot_init(&p);
    for (int i = 0; i < RHD_PLOT_MAX_SERIES; i++) rhd_plot_add(&p, "s", x, y, N, &e);
    th_ok(rhd_plot_add(&p, "s", x, y, N, &e) && strstr(e.msg, "more than 16 series"), "series limit: %s", e.msg);
    float c8[3], c0c[3];
    rhd_plot_palette(8, c8), rhd_plot_palette(0, c0c);
    th_ok(!near_color(c8, c0c, 0.05f), "palette colours stay distinct past eight series");
    free(img), free(img2);
}

int main(void) {
    test_font();
    test_ticks();
    test_render();
    return th_done();
}
