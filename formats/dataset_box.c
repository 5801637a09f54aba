/* formats/dataset_box.c: does an avatar fit the scene box? Rays of foreground pixels against the
 * box [-B,B]^3 (slab test), camera centres inside it. See formats/dataset.h. */
#include "formats/dataset.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1 if the ray o + t d, t >= 0, meets the box [-B,B]^3 (slab test). */
static int ray_hits_box(const double o[3], const double d[3], double B) {
    double t0 = 0, t1 = INFINITY;
    for (int i = 0; i < 3; i++) {
        if (fabs(d[i]) < 1e-300) {
            if (o[i] < -B || o[i] > B) return 0;
            continue;
        }
        double a = (-B - o[i]) / d[i], b = (B - o[i]) / d[i];
        if (a > b) { double t = a; a = b; b = t; }
        if (a > t0) t0 = a;
        if (b < t1) t1 = b;
        if (t0 > t1) return 0;
    }
    return 1;
}

/* How far the ray passes from the box: the distance to the box of its point nearest the centre. */
static double ray_box_gap(const double o[3], const double d[3], double B) {
    double dd = d[0] * d[0] + d[1] * d[1] + d[2] * d[2], od = o[0] * d[0] + o[1] * d[1] + o[2] * d[2];
    double t = od < 0 ? -od / dd : 0, s = 0;
    for (int i = 0; i < 3; i++) {
        double x = fabs(o[i] + t * d[i]) - B;
        if (x > 0) s += x * x;
    }
    return sqrt(s);
}

static void check_view(const rhd_dataset *d, const rhd_view *v, const rhd_image *img, double B, rhd_box_fit *r) {
    const double(*P)[4] = v->pose;
    double o[3] = {P[0][3], P[1][3], P[2][3]};
    if (fabs(o[0]) < B && fabs(o[1]) < B && fabs(o[2]) < B) {
        if (!r->cams_inside++) r->first_inside = v->index;
    }
    int W = img->width, H = img->height, stride = W / 128 > 1 ? W / 128 : 1;
    for (int y = stride / 2; y < H; y += stride)
        for (int x = stride / 2; x < W; x += stride) {
            if (img->data[((int64_t)y * W + x) * 4 + 3] <= 0.5f) continue;
            double c[3] = {(x + 0.5 - d->K.cx) / d->K.fx, (y + 0.5 - d->K.cy) / d->K.fy, 1}, w[3];
            for (int i = 0; i < 3; i++) w[i] = P[i][0] * c[0] + P[i][1] * c[1] + P[i][2] * c[2];
            r->fg++;
            if (ray_hits_box(o, w, B)) continue;
            r->miss++;
            double g = ray_box_gap(o, w, B);
            if (g > r->miss_max) r->miss_max = g, r->worst_view = v->index;
        }
}

/* A view's foreground mask (alpha > 0.5) on a grid of stride s: m[(y/s)*mw + x/s]. */
typedef struct mask {
    const rhd_view *v;
    int s, mw, mh;
    unsigned char *m;
} mask;

static void mask_make(mask *k, const rhd_view *v, const rhd_image *img) {
    k->v = v, k->s = img->width / 128 > 1 ? img->width / 128 : 1;
    k->mw = img->width / k->s, k->mh = img->height / k->s;
    k->m = rhd_xmalloc((size_t)k->mw * (size_t)k->mh);
    for (int y = 0; y < k->mh; y++)
        for (int x = 0; x < k->mw; x++)
            k->m[y * k->mw + x] = img->data[((int64_t)(y * k->s + k->s / 2) * img->width + x * k->s + k->s / 2) * 4 + 3] > 0.5f;
}

/* 1 when p projects onto the view's foreground. Behind the camera or outside the image counts as
 * background: every view of a dataset frames the whole avatar in front of it. */
static int mask_may_hold(const rhd_dataset *d, const mask *k, const double p[3]) {
    const double(*P)[4] = k->v->pose;
    double q[3] = {p[0] - P[0][3], p[1] - P[1][3], p[2] - P[2][3]}, c[3];
    for (int i = 0; i < 3; i++) c[i] = P[0][i] * q[0] + P[1][i] * q[1] + P[2][i] * q[2]; /* R^T q */
    if (c[2] <= 1e-9) return 0;
    double u = d->K.fx * c[0] / c[2] + d->K.cx, w = d->K.fy * c[1] / c[2] + d->K.cy;
    int x = (int)floor(u / k->s), y = (int)floor(w / k->s);
    if (x < 0 || y < 0 || x >= k->mw || y >= k->mh) return 0;
    return k->m[y * k->mw + x];
}

/* Points of a 33^3 grid over [-1.5B, 1.5B]^3 outside the box and inside every view's silhouette. */
static void check_hull(const rhd_dataset *d, const mask *ks, int nv, double B, rhd_box_fit *r) {
    const int N = 33;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            for (int l = 0; l < N; l++) {
                double p[3] = {B * (3.0 * i / (N - 1) - 1.5), B * (3.0 * j / (N - 1) - 1.5), B * (3.0 * l / (N - 1) - 1.5)}, s = 0;
                for (int a = 0; a < 3; a++) s += fabs(p[a]) > B ? (fabs(p[a]) - B) * (fabs(p[a]) - B) : 0;
                if (s <= 0) continue;
                int in = 1;
                for (int k = 0; k < nv && in; k++) in = mask_may_hold(d, &ks[k], p);
                if (!in) continue;
                r->hull_out++;
                if (sqrt(s) > r->hull_max) r->hull_max = sqrt(s);
            }
}

int rhd_dataset_box_check(const rhd_dataset *d, double bound, int max_views, rhd_box_fit *r, rhd_err *e) {
    memset(r, 0, sizeof *r);
    r->first_inside = r->worst_view = -1;
    int nv = d->n < max_views ? d->n : max_views, rc = 0;
    mask *ks = rhd_xcalloc((size_t)(nv ? nv : 1), sizeof *ks);
    for (int k = 0; k < nv && !rc; k++) {
        const rhd_view *v = &d->views[(int64_t)k * d->n / nv];
        rhd_image img;
        if (rhd_dataset_load_image(d, v->index, &img, e)) rc = -1;
        else {
            check_view(d, v, &img, bound, r);
            mask_make(&ks[k], v, &img);
            rhd_image_free(&img);
            r->views++;
        }
    }
    if (!rc && nv >= 2) check_hull(d, ks, nv, bound, r);
    for (int k = 0; k < nv; k++) free(ks[k].m);
    free(ks);
    return rc;
}

int rhd_dataset_box_warning(const char *subject_dir, const char *avatar, const rhd_dataset_config *cfg, double bound,
                            char *msg, size_t n, rhd_err *e) {
    rhd_dataset d;
    if (rhd_dataset_open(&d, subject_dir, NULL, 0, cfg, e)) return -1;
    rhd_box_fit r;
    int rc = rhd_dataset_box_check(&d, bound, 8, &r, e);
    rhd_dataset_close(&d);
    if (rc) return -1;
    if (!r.miss && !r.cams_inside && !r.hull_out) return 0;
    int k = 0;
    k += snprintf(msg + k, n - (size_t)k, "%s: the avatar leaves the scene box [-%g,%g]^3 (%d views checked):", avatar, bound,
                  bound, r.views);
    if (r.miss && (size_t)k < n)
        k += snprintf(msg + k, n - (size_t)k, " %.1f%% of its foreground pixels look along rays that miss the box, by up "
                      "to %.3g (view %d);", 100.0 * (double)r.miss / (double)r.fg, r.miss_max, r.worst_view);
    if (r.hull_out && (size_t)k < n)
        k += snprintf(msg + k, n - (size_t)k, " its silhouettes put parts of it up to %.3g outside the box;", r.hull_max);
    if (r.cams_inside && (size_t)k < n)
        k += snprintf(msg + k, n - (size_t)k, " %d camera%s inside the box (view %d);", r.cams_inside,
                      r.cams_inside > 1 ? "s are" : " is", r.first_inside);
    if ((size_t)k < n)
        snprintf(msg + k, n - (size_t)k, " expected it inside: change --translation-divisor (%g), --pose-scale (%g) or "
                 "--offset (%g,%g,%g), see tools/bring-your-own-data.md", cfg->translation_divisor, cfg->scale,
                 cfg->offset[0], cfg->offset[1], cfg->offset[2]);
    return 1;
}
