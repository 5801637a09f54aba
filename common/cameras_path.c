/* common/cameras_path.c: spiral and orbit camera paths (see cameras_path.h). */
#include "common/cameras_path.h"
#include <math.h>

static void cross(double o[3], const double a[3], const double b[3]) {
    o[0] = a[1] * b[2] - a[2] * b[1];
    o[1] = a[2] * b[0] - a[0] * b[2];
    o[2] = a[0] * b[1] - a[1] * b[0];
}

static double norm(const double a[3]) { return sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2]); }

/* Scale v by 1/(|v| + eps). */
static void unit(double v[3], double eps) {
    double n = norm(v) + eps;
    for (int i = 0; i < 3; i++) v[i] /= n;
}

static void store(float *m, const double x[3], const double y[3], const double z[3], const double pos[3]) {
    for (int r = 0; r < 3; r++) {
        m[4 * r] = (float)x[r];
        m[4 * r + 1] = (float)y[r];
        m[4 * r + 2] = (float)z[r];
        m[4 * r + 3] = (float)pos[r];
    }
}

int rhd_camera_spiral(float *c2w, int n, double bound, int handedness, rhd_err *e) {
    if (n < 1) return rhd_errf(e, "spiral: %d frames, expected at least 1", n);
    if (!(bound > 0)) return rhd_errf(e, "spiral: bound %g, expected > 0", bound);
    if (handedness != RHD_SPIRAL_PROPER && handedness != RHD_SPIRAL_MIRRORED)
        return rhd_errf(e, "spiral: handedness %d, expected proper (0) or mirrored (1)", handedness);
    const double PI = 3.14159265358979323846;
    const double r = 1.45 * sqrt(3.0) * bound, a[3] = {0, 0.4, 0}, u[3] = {0, -1, 0};
    for (int t = 0; t < n; t++) {
        double theta = -3.14 / 2 + 0.35 * sin(2 * 3.14 * t / n);
        double phi = 3.14 / 2 + 0.3 * cos(2 * 3.14 * t / n);
        if (phi < 1e-5) phi = 1e-5;
        if (phi > PI - 1e-5) phi = PI - 1e-5;
        double A = acos(1 - 2 * phi / PI);
        double pos[3] = {r * sin(A) * sin(PI - theta), r * cos(A), r * sin(A) * cos(PI - theta)};
        double z[3] = {a[0] - pos[0], a[1] - pos[1], a[2] - pos[2]}, x[3], y[3];
        unit(z, 1e-8);
        cross(x, z, u);
        unit(x, 1e-8);
        cross(y, x, z);
        unit(y, 1e-8);
        if (handedness == RHD_SPIRAL_PROPER)
            for (int i = 0; i < 3; i++) x[i] = -x[i];
        store(c2w + 12 * t, x, y, z, pos);
    }
    return 0;
}

int rhd_camera_orbit(float *c2w, int n, double radius, double elevation_deg, const double target[3], rhd_err *e) {
    if (n < 1) return rhd_errf(e, "orbit: %d frames, expected at least 1", n);
    if (!(radius > 0)) return rhd_errf(e, "orbit: radius %g, expected > 0", radius);
    if (!(fabs(elevation_deg) < 90))
        return rhd_errf(e, "orbit: elevation %g degrees, expected strictly between -90 and 90", elevation_deg);
    const double PI = 3.14159265358979323846, down[3] = {0, -1, 0};
    double el = elevation_deg * PI / 180;
    for (int t = 0; t < n; t++) {
        double az = 2 * PI * t / n;
        double pos[3] = {target[0] - radius * cos(el) * cos(az), target[1] + radius * sin(el),
                         target[2] - radius * cos(el) * sin(az)};
        double z[3] = {target[0] - pos[0], target[1] - pos[1], target[2] - pos[2]}, x[3], y[3];
        unit(z, 0);
        cross(x, down, z);
        unit(x, 0);
        cross(y, z, x);
        store(c2w + 12 * t, x, y, z, pos);
    }
    return 0;
}
