/* common/cameras_path.h: synthetic camera paths for rendering: the 60-frame spiral of the
 * original's test video (fitting.md §10.3) and a plain orbit at a fixed elevation.
 *
 * Mirrors the test_video pose generator of Renderer/nerf (the "spiral" around the -x axis).
 *
 * Output: c2w [n][12] float, the 3x4 camera-to-world matrix, row-major, in the world frame (no §1.3
 * conversion), OpenCV camera: column 0 image-right, column 1 image-down, column 2 forward. It feeds
 * kernels/rays.h directly. Computed in double, rounded to float at the end.
 *
 * Spiral (§10.3), frame t = 0..n-1 (n = 60 in the original), with the literal 3.14 where the
 * original has it:
 *   r = 1.45*sqrt(3)*bound, a = (0, 0.4, 0), u = (0, -1, 0)
 *   theta = -3.14/2 + 0.35*sin(2*3.14*t/n), phi = 3.14/2 + 0.3*cos(2*3.14*t/n)
 *   phi' = clamp(phi, 1e-5, pi - 1e-5), A = acos(1 - 2*phi'/pi)
 *   pos = r*(sin A sin(pi - theta), cos A, sin A cos(pi - theta))
 *   z = (a - pos)/(|a - pos| + 1e-8), x = (z x u)/(|z x u| + 1e-8), y = (x x z)/(|x x z| + 1e-8)
 *   c2w = [x y z | pos]
 * The original's [x y z] has determinant -1: its frames are the left-right mirror of a true camera
 * (§12.15). RHD_SPIRAL_MIRRORED reproduces that; the default (proper handedness) negates column 0,
 * so image-right = y x z, the determinant is +1, the positions and viewing directions are the same
 * and world +y stays at the top of the image.
 *
 * Orbit: n frames at azimuth phi_t = 2*pi*t/n, elevation e (degrees, > 0 looks down on the target),
 * radius r around the target a, starting on the -x side like the spiral and turning towards -z:
 *   pos = a + r*(-cos e cos phi_t, sin e, -cos e sin phi_t)
 *   z = normalize(a - pos), x = normalize(down x z) with down = (0, -1, 0), y = z x x
 * so det = +1 and world +y is up in the image. |e| must be below 90 degrees. */
#ifndef RHD_CAMERAS_PATH_H
#define RHD_CAMERAS_PATH_H
#include "common/err.h"

enum { RHD_SPIRAL_PROPER = 0, RHD_SPIRAL_MIRRORED = 1 };

#ifdef __cplusplus
extern "C" {
#endif
/* The spiral of §10.3: c2w [n][12]. Returns -1 with a message if n < 1 or bound <= 0. */
int rhd_camera_spiral(float *c2w, int n, double bound, int handedness, rhd_err *e);
/* The orbit above: c2w [n][12]. Returns -1 with a message for n < 1, radius <= 0, |elevation| >= 90. */
int rhd_camera_orbit(float *c2w, int n, double radius, double elevation_deg, const double target[3], rhd_err *e);
#ifdef __cplusplus
}
#endif
#endif
