/* common/preview.c: see preview.h. */
#include "common/preview.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void rhd_preview_free(rhd_preview *p) {
    free(p->rgb);
    memset(p, 0, sizeof *p);
}

int rhd_preview_is_triplane(const rhd_tensor *t) {
    if (t->ndim == 4) return t->shape[0] == 3 && t->shape[2] == t->shape[3] && t->shape[2] > 1;
    if (t->ndim == 5) return t->shape[0] == 3 && t->shape[1] == 1 && t->shape[3] == t->shape[4] && t->shape[3] > 1;
    if (t->ndim == 3) return t->shape[2] == 3 * t->shape[1] && t->shape[1] > 1;
    return 0;
}

void rhd_pca(const float *x, int64_t n, int c, int k, double *mean, double *dirs) {
    double *cov = rhd_xcalloc((size_t)c * c, sizeof(double));
    for (int j = 0; j < c; j++) mean[j] = 0;
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < c; j++) mean[j] += x[i * c + j];
    for (int j = 0; j < c; j++) mean[j] /= n > 0 ? n : 1;
    double *d = rhd_xmalloc(sizeof(double) * c);
    for (int64_t i = 0; i < n; i++) {
        for (int j = 0; j < c; j++) d[j] = x[i * c + j] - mean[j];
        for (int a = 0; a < c; a++)
            for (int b = a; b < c; b++) cov[a * c + b] += d[a] * d[b];
    }
    for (int a = 0; a < c; a++)
        for (int b = 0; b < a; b++) cov[a * c + b] = cov[b * c + a];
    double *v = rhd_xmalloc(sizeof(double) * c), *w = rhd_xmalloc(sizeof(double) * c);
    for (int q = 0; q < k; q++) {
        for (int j = 0; j < c; j++) v[j] = 1.0 + 0.01 * ((j * 7919 + q * 104729) % 97);
        for (int it = 0; it < 300; it++) {
            double nn = 0;
            for (int a = 0; a < c; a++) {
                double s = 0;
                for (int b = 0; b < c; b++) s += cov[a * c + b] * v[b];
                w[a] = s;
                nn += s * s;
            }
            nn = sqrt(nn);
            if (nn == 0) break;
            for (int a = 0; a < c; a++) v[a] = w[a] / nn;
        }
        double lam = 0;
        for (int a = 0; a < c; a++) {
            double s = 0;
            for (int b = 0; b < c; b++) s += cov[a * c + b] * v[b];
            lam += v[a] * s;
        }
        /* fix the sign so that the largest component is positive (stable colours) */
        int big = 0;
        for (int a = 1; a < c; a++)
            if (fabs(v[a]) > fabs(v[big])) big = a;
        double sg = v[big] < 0 ? -1 : 1;
        for (int a = 0; a < c; a++) dirs[q * c + a] = sg * v[a];
        for (int a = 0; a < c; a++)
            for (int b = 0; b < c; b++) cov[a * c + b] -= lam * v[a] * v[b];
    }
    free(cov), free(d), free(v), free(w);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Map values to [0,1] between the 1st and 99th percentiles of a subsample. */
static void robust_range(const float *v, int64_t n, int64_t stride, float *lo, float *hi) {
    int64_t m = (n + stride - 1) / stride, k = 0;
    float *s = rhd_xmalloc(sizeof(float) * (m ? m : 1));
    for (int64_t i = 0; i < n; i += stride)
        if (isfinite(v[i])) s[k++] = v[i];
    if (k == 0) { *lo = 0, *hi = 1; free(s); return; }
    qsort(s, k, sizeof(float), cmp_float);
    *lo = s[(int64_t)(0.01 * (k - 1))];
    *hi = s[(int64_t)(0.99 * (k - 1))];
    if (*hi <= *lo) *hi = *lo + 1e-6f;
    free(s);
}

static float clamp01(float x) { return x < 0 ? 0 : x > 1 ? 1 : (x != x ? 0 : x); }

int rhd_preview_is_trajectory(const rhd_tensor *t) {
    return t->ndim == 5 && t->shape[0] >= 1 && t->shape[1] == 3 && t->shape[3] == t->shape[4] && t->shape[3] > 1;
}

/* Draw ns triplanes of C x R x R (src: ns stacked [3,C,R,R], or one rolled-out [C,R,3R]) as rows
 * of three planes, projected on the principal components of the last one (for a trajectory: the
 * final x0, so that every row has the same colours) and mapped with its percentile ranges. */
static void draw_planes(rhd_preview *p, const float *src, int64_t ns, int64_t C, int64_t R, int rolled) {
    int64_t n = 3 * R * R;
    float *all = rhd_xmalloc(sizeof(float) * n * C); /* pixels x channels of one triplane */
    int k = C >= 3 ? 3 : (int)C;
    double *mean = rhd_xmalloc(sizeof(double) * C), *dirs = rhd_xcalloc(3 * C, sizeof(double));
    int64_t stride = n > 65536 ? n / 65536 : 1;
    float lo[3] = {0, 0, 0}, hi[3] = {1, 1, 1};
    float *proj = rhd_xmalloc(sizeof(float) * n * 3);
    p->width = (int)(3 * R + 2 * 2);
    p->height = (int)(ns * (R + 2) - 2);
    p->rgb = rhd_xmalloc(sizeof(float) * p->width * p->height * 3);
    for (int64_t i = 0; i < (int64_t)p->width * p->height * 3; i++) p->rgb[i] = 1; /* white gaps */
    for (int64_t r = ns - 1; r >= 0; r--) { /* the last first: it fixes the projection */
        const float *s = src + r * n * C;
        for (int pl = 0; pl < 3; pl++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t i = 0; i < R; i++)
                    for (int64_t j = 0; j < R; j++) {
                        float v = rolled ? s[(c * R + i) * 3 * R + pl * R + j] : s[((pl * C + c) * R + i) * R + j];
                        all[((pl * R + i) * R + j) * C + c] = isfinite(v) ? v : 0;
                    }
        if (r == ns - 1) { /* PCA on a strided subsample */
            int64_t m = (n + stride - 1) / stride;
            float *sub = rhd_xmalloc(sizeof(float) * m * C);
            for (int64_t i = 0, q = 0; i < n; i += stride, q++) memcpy(sub + q * C, all + i * C, sizeof(float) * C);
            rhd_pca(sub, m, (int)C, k, mean, dirs);
            free(sub);
        }
        for (int64_t i = 0; i < n; i++)
            for (int q = 0; q < 3; q++) {
                double acc = 0;
                if (q < k)
                    for (int64_t c = 0; c < C; c++) acc += (all[i * C + c] - mean[c]) * dirs[q * C + c];
                proj[q * n + i] = (float)acc;
            }
        if (r == ns - 1)
            for (int q = 0; q < k; q++) robust_range(proj + q * n, n, stride, &lo[q], &hi[q]);
        for (int q = 0; q < 3; q++)
            for (int pl = 0; pl < 3; pl++)
                for (int64_t i = 0; i < R; i++)
                    for (int64_t j = 0; j < R; j++) {
                        float v = q < k ? clamp01((proj[q * n + (pl * R + i) * R + j] - lo[q]) / (hi[q] - lo[q])) : 0.5f;
                        int64_t x = pl * (R + 2) + j, y = r * (R + 2) + i;
                        p->rgb[(y * p->width + x) * 3 + q] = v;
                    }
    }
    free(proj), free(all), free(mean), free(dirs);
}

int rhd_preview_triplane(rhd_preview *p, const rhd_tensor *t, rhd_err *e) {
    int64_t C, R, ns = 1;
    int traj = rhd_preview_is_trajectory(t) && !rhd_preview_is_triplane(t);
    char sh[160];
    if (!rhd_preview_is_triplane(t) && !traj) {
        rhd_shape_str(t->shape, t->ndim, sh, sizeof sh);
        return rhd_errf(e, "shape %s, expected a triplane [3,C,R,R] (or [3,1,C,R,R], or rolled out [C,R,3R]) with R > 1, "
                           "or a trajectory [n,3,C,R,R]", sh);
    }
    if (traj) ns = t->shape[0], C = t->shape[2], R = t->shape[3];
    else if (t->ndim == 4) C = t->shape[1], R = t->shape[2];
    else if (t->ndim == 5) C = t->shape[2], R = t->shape[3];
    else C = t->shape[0], R = t->shape[1];
    if (C < 1 || C > 4096 || R > 8192 || ns > 1000 || ns * R > 65536) return rhd_errf(e, "triplane shape too large to preview");
    int64_t numel = ns * 3 * R * R * C;
    float *src = rhd_xmalloc(sizeof(float) * numel);
    rhd_convert_to_f32(src, t->data, t->dtype, numel);
    draw_planes(p, src, ns, C, R, t->ndim == 3);
    free(src);
    return 0;
}

int rhd_preview_stack(rhd_preview *p, rhd_preview *parts, int n) {
    enum { GAP = 4 };
    int w = 0, h = 0;
    for (int i = 0; i < n; i++) {
        w = parts[i].width > w ? parts[i].width : w;
        h += parts[i].height + (i ? GAP : 0);
    }
    p->width = w, p->height = h;
    p->rgb = rhd_xmalloc(sizeof(float) * (size_t)w * h * 3);
    for (int64_t i = 0; i < (int64_t)w * h * 3; i++) p->rgb[i] = 1;
    for (int i = 0, y0 = 0; i < n; y0 += parts[i].height + GAP, i++)
        for (int y = 0; y < parts[i].height; y++)
            memcpy(p->rgb + ((int64_t)(y0 + y) * w) * 3, parts[i].rgb + (int64_t)y * parts[i].width * 3,
                   sizeof(float) * parts[i].width * 3);
    for (int i = 0; i < n; i++) rhd_preview_free(&parts[i]);
    return 0;
}

int rhd_preview_grid(rhd_preview *p, const rhd_tensor *const *maps, int n, rhd_err *e) {
    enum { MAXC = 16, GAP = 2 };
    int64_t tile = 0;
    for (int m = 0; m < n; m++) {
        int64_t H = maps[m]->shape[maps[m]->ndim - 2];
        if (H > tile) tile = H;
    }
    if (tile < 16) tile = 16;
    if (tile > 512) tile = 512;
    p->width = (int)(MAXC * (tile + GAP));
    p->height = (int)(n * (tile + GAP));
    p->rgb = rhd_xmalloc(sizeof(float) * p->width * p->height * 3);
    for (int64_t i = 0; i < (int64_t)p->width * p->height * 3; i++) p->rgb[i] = 1;
    for (int m = 0; m < n; m++) {
        const rhd_tensor *t = maps[m];
        int64_t H = t->shape[t->ndim - 2], W = t->shape[t->ndim - 1];
        int64_t numel = rhd_shape_numel(t->shape, t->ndim);
        if (H < 1 || W < 1 || numel < 1) continue;
        int64_t C = numel / (H * W);
        float *v = rhd_xmalloc(sizeof(float) * numel);
        rhd_convert_to_f32(v, t->data, t->dtype, numel);
        int64_t show = C < MAXC ? C : MAXC;
        int64_t tw = W * tile / H; /* keep the aspect ratio */
        if (tw > tile) tw = tile;
        for (int64_t c = 0; c < show; c++) {
            float lo = INFINITY, hi = -INFINITY;
            for (int64_t i = 0; i < H * W; i++) {
                float x = v[c * H * W + i];
                if (isfinite(x)) lo = x < lo ? x : lo, hi = x > hi ? x : hi;
            }
            if (!(hi > lo)) hi = lo + 1, lo = isfinite(lo) ? lo : 0;
            for (int64_t y = 0; y < tile; y++)
                for (int64_t x = 0; x < tw; x++) {
                    int64_t sy = y * H / tile, sx = x * W / tw;
                    float g = clamp01((v[c * H * W + sy * W + sx] - lo) / (hi - lo));
                    int64_t oy = m * (tile + GAP) + y, ox = c * (tile + GAP) + x;
                    for (int q = 0; q < 3; q++) p->rgb[(oy * p->width + ox) * 3 + q] = g;
                }
        }
        free(v);
    }
    (void)e;
    return 0;
}

int rhd_preview_image(rhd_preview *p, const rhd_image *img) {
    p->width = img->width;
    p->height = img->height;
    p->rgb = rhd_xmalloc(sizeof(float) * p->width * p->height * 3);
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++) {
            const float *s = img->data + ((int64_t)y * img->width + x) * 4;
            float bg = ((x / 8 + y / 8) & 1) ? 0.75f : 0.55f;
            for (int q = 0; q < 3; q++) p->rgb[((int64_t)y * p->width + x) * 3 + q] = s[q] * s[3] + bg * (1 - s[3]);
        }
    return 0;
}
