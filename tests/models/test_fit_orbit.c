/* tests/models/test_fit_orbit.c: rhd-render's default --orbit target (common/render_cameras.h).
 *   - rhd_cameras_look_at on random cameras that all look at a random point (with noise-free
 *     axes, either sign) recovers it; parallel axes are refused;
 *   - on tests/data/mini (the dev set's cameras look at the world origin, avatars.json) it is the
 *     origin;
 *   - the orbit around it (default radius and elevation, the data's intrinsics) frames the busts
 *     of avatar_100 and avatar_101 as the data's own views do: the 8 corners of their bounding
 *     boxes (bbox_rodin_normalised of the dev set's avatars.json), projected with a pinhole model
 *     written here, lie no further outside the image than in the data's views (the box corners
 *     stick out of the rounded busts, so the data's views miss them by a few pixels too); around
 *     the former default 0,0.4,0 they lie 20-30 px further out (the cropped bottom), which shows
 *     the check can fail. */
#include "refcheck.h"
#include "common/cameras_path.h"
#include "common/fit_views.h"
#include "common/render_cameras.h"

/* Smallest margin (pixels) of the box corners inside a W x H image over the n frames; negative
 * when a corner falls outside or behind a camera. */
static double box_margin(const float *c2w, int n, const double lo[3], const double hi[3], const rhd_fit_views *v) {
    double worst = INFINITY;
    for (int f = 0; f < n; f++) {
        const float *M = c2w + 12 * f;
        for (int c = 0; c < 8; c++) {
            double X[3] = {c & 1 ? hi[0] : lo[0], c & 2 ? hi[1] : lo[1], c & 4 ? hi[2] : lo[2]};
            double p[3] = {X[0] - M[3], X[1] - M[7], X[2] - M[11]}, q[3];
            for (int a = 0; a < 3; a++) q[a] = p[0] * M[a] + p[1] * M[4 + a] + p[2] * M[8 + a]; /* R^T p */
            if (q[2] <= 0) return -1e9;
            double u = v->fx * q[0] / q[2] + v->cx, w = v->fy * q[1] / q[2] + v->cy;
            double m = fmin(fmin(u, v->W - u), fmin(w, v->H - w));
            if (m < worst) worst = m;
        }
    }
    return worst;
}

int main(void) {
    uint64_t seed = th_seed();
    /* analytic case: n cameras on a sphere around p0, axes through p0 (random sign) */
    int n = 17;
    float *c2w = calloc(12 * (size_t)n, sizeof(float));
    float *r = th_randn(4 * n + 3, 1.f);
    double p0[3] = {0.3 * r[4 * n], 0.3 * r[4 * n + 1], 0.3 * r[4 * n + 2]}, got[3];
    for (int i = 0; i < n; i++) {
        double d[3] = {r[4 * i], r[4 * i + 1], r[4 * i + 2]}, l = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
        double s = r[4 * i + 3] < 0 ? -1 : 1;
        for (int a = 0; a < 3; a++) {
            c2w[12 * i + 4 * a + 3] = (float)(p0[a] + 2.5 * d[a] / l);
            c2w[12 * i + 4 * a + 2] = (float)(-s * d[a] / l);
        }
    }
    int rc = rhd_cameras_look_at(c2w, n, got);
    double err = rc ? INFINITY : fmax(fabs(got[0] - p0[0]), fmax(fabs(got[1] - p0[1]), fabs(got[2] - p0[2])));
    th_ok(err < 1e-5, "look-at of %d random cameras aimed at (%.3f,%.3f,%.3f) (seed %llu): max error %.2e", n, p0[0], p0[1],
          p0[2], (unsigned long long)seed, err);
    for (int i = 0; i < n; i++) c2w[12 * i + 2] = 0, c2w[12 * i + 6] = 0, c2w[12 * i + 10] = 1; /* all parallel */
    th_ok(rhd_cameras_look_at(c2w, n, got) == -1, "parallel axes: refused (-1)");
    free(c2w), free(r);

    rhd_err e = {0};
    const char *root = getenv("RHD_ROOT");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/data/mini/avatar_100", root ? root : ".");
    rhd_fit_data_cfg dc;
    rhd_fit_data_cfg_default(&dc);
    rhd_fit_views v;
    if (rhd_fit_views_load(&v, dir, NULL, 0, &dc, 0, &e)) {
        th_ok(0, "mini cameras loaded: %s", e.msg);
        return th_done();
    }
    double t[3] = {9, 9, 9};
    rc = rhd_cameras_look_at(v.c2w, v.n, t);
    th_ok(!rc && fabs(t[0]) < 1e-3 && fabs(t[1]) < 1e-3 && fabs(t[2]) < 1e-3,
          "mini avatar_100: its %d cameras look at (%.2e,%.2e,%.2e), expected the origin", v.n, t[0], t[1], t[2]);
    /* avatars.json of the dev set: bbox_rodin_normalised of avatar_100 and avatar_101 */
    const double box[2][2][3] = {{{-0.2717, -0.6522, -0.5087}, {0.3872, 0.5752, 0.5109}},
                                 {{-0.3113, -0.6522, -0.4124}, {0.3191, 0.6080, 0.4124}}};
    int frames = 24;
    float *orb = malloc(sizeof(float) * 12 * (size_t)frames);
    double radius = 1.45 * sqrt(3.0), old[3] = {0, 0.4, 0};
    for (int a = 0; a < 2; a++) {
        /* the boxes' corners lie outside the real (rounded) busts: the data's own views "crop" them
         * by a few pixels too, so the orbit is held to the data's framing */
        double md = box_margin(v.c2w, v.n, box[a][0], box[a][1], &v);
        rhd_camera_orbit(orb, frames, radius, 15, t, &e);
        double m = box_margin(orb, frames, box[a][0], box[a][1], &v);
        th_ok(m >= md - 0.5, "avatar_%d: the default orbit (%d frames) frames the bust's box as the data's own %d views do "
              "(smallest margin %.1f px vs %.1f px of %dx%d)", 100 + a, frames, v.n, m, md, v.W, v.H);
        rhd_camera_orbit(orb, frames, radius, 15, old, &e);
        double mo = box_margin(orb, frames, box[a][0], box[a][1], &v);
        th_ok(mo < md - 10, "avatar_%d: around the former default 0,0.4,0 the bottom is cropped (margin %.1f px): the check "
              "can fail", 100 + a, mo);
    }
    free(orb);
    rhd_fit_views_free(&v);
    return th_done();
}
