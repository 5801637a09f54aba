/* tests/kernels/test_rays.c: rays, pixel draws and near/far (kernels/rays.h), and the spiral and
 * orbit camera paths (common/cameras_path.h).
 * (a) pixel draws, origins and directions for several poses and intrinsics (odd and non-square
 *     images, off-centre principal points), training (random pixels) and eval (row-major chunk),
 *     against the NumPy reference tests/ref/ref_march.py: bit-identical;
 * (b) near/far for random rays plus rays parallel to an axis (hitting, missing, on a face plane,
 *     with -0 components), rays that miss, rays starting inside the box: bit-identical;
 * (c) gather of pixel colours;
 * (d) the spiral against the spec's formulas (positions, det -1 when mirrored), the proper
 *     handedness giving det +1 with the same positions; the orbit's geometry;
 * (e) 1 vs 2 threads bit-identical; (f) CUDA vs CPU when a device is present. */
#include "refcheck.h"
#include "kernels/rays.h"
#include "common/cameras_path.h"
#include <omp.h>

static rhd_ctx *cpu;

/* The reference jobs are collected first and run in one call (one NumPy start-up). */
static char jobs[16384];
static void add_job(const char *fmt, ...) {
    va_list ap;
    size_t n = strlen(jobs);
    if (n) n += (size_t)snprintf(jobs + n, sizeof jobs - n, " + ");
    va_start(ap, fmt);
    vsnprintf(jobs + n, sizeof jobs - n, fmt, ap);
    va_end(ap);
}

/* ---- helpers ---- */

static void save_t(const char *dir, const char *name, rhd_dtype dt, const void *data, int ndim, const int64_t *shape) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    rhd_tensor t = {dt, ndim, {0}, (void *)data};
    memcpy(t.shape, shape, sizeof(int64_t) * ndim);
    rhd_err e;
    if (rhd_npy_write(path, &t, &e)) { fprintf(stderr, "%s\n", e.msg); exit(1); }
}

/* Load an .npy of dtype dt with n elements (NULL with a diagnostic otherwise). */
static void *load_t(const char *dir, const char *name, rhd_dtype dt, int64_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    rhd_npy a;
    rhd_err e;
    if (rhd_npy_read(path, &a, &e)) { th_diag("%s", e.msg); return NULL; }
    int64_t numel = rhd_shape_numel(a.t.shape, a.t.ndim);
    if (a.t.dtype != dt || numel != n) {
        th_diag("%s: dtype %s numel %lld, expected %s with %lld", path, rhd_dtype_name(a.t.dtype), (long long)numel,
                rhd_dtype_name(dt), (long long)n);
        rhd_npy_free(&a);
        return NULL;
    }
    return a.buf;
}

/* Bitwise equality of float arrays, with the max-abs difference for the record. */
static int same_f32(const char *name, const float *got, const float *ref, int64_t n) {
    int64_t bad = 0, first = -1;
    double maxabs = 0;
    for (int64_t i = 0; i < n; i++) {
        if (memcmp(&got[i], &ref[i], 4) != 0) {
            if (first < 0) first = i;
            bad++;
        }
        double d = fabs((double)got[i] - ref[i]);
        if (isfinite(d) && d > maxabs) maxabs = d;
    }
    int ok = ref && bad == 0;
    th_ok(ok, "%s: n=%lld, %lld differ bitwise, max_abs=%.3e", name, (long long)n, (long long)bad, maxabs);
    if (!ok && first >= 0) th_diag("  first at [%lld]: got %.9g ref %.9g", (long long)first, got[first], ref[first]);
    return ok;
}

static int same_i32(const char *name, const int32_t *got, const int32_t *ref, int64_t n) {
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n && ref; i++)
        if (got[i] != ref[i]) {
            if (first < 0) first = i;
            bad++;
        }
    int ok = ref && bad == 0;
    th_ok(ok, "%s: n=%lld, %lld differ", name, (long long)n, (long long)bad);
    if (!ok && first >= 0) th_diag("  first at [%lld]: got %d ref %d", (long long)first, got[first], ref[first]);
    return ok;
}

/* A random rotation (from a random unit quaternion) and translation as a 3x4 c2w. */
static void random_pose(float P[12], float tscale) {
    float *q = th_randn(4, 1.f), *t = th_randu(3, -tscale, tscale);
    double n = sqrt((double)q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
    double w = q[0] / n, x = q[1] / n, y = q[2] / n, z = q[3] / n;
    double R[9] = {1 - 2 * (y * y + z * z), 2 * (x * y - z * w),     2 * (x * z + y * w),
                   2 * (x * y + z * w),     1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                   2 * (x * z - y * w),     2 * (y * z + x * w),     1 - 2 * (x * x + y * y)};
    for (int r = 0; r < 3; r++) {
        for (int c = 0; c < 3; c++) P[4 * r + c] = (float)R[3 * r + c];
        P[4 * r + 3] = t[r];
    }
    free(q), free(t);
}

/* ---- (a) rays ---- */

typedef struct {
    int W, H;
    rhd_intrinsics in;
} cam_case;

typedef struct {
    cam_case cam;
    int64_t N, first, Ne;
    char dir[1024];
    int32_t *pix;
    float *o, *d, *eo, *ed;
} rays_case;
static rays_case rcases[8];
static int nrc;

static void prep_rays(const cam_case *c, int64_t N, int64_t first, int64_t Ne) {
    rays_case *k = &rcases[nrc];
    char sub[64];
    snprintf(sub, sizeof sub, "rays%d", nrc++);
    snprintf(k->dir, sizeof k->dir, "%s", th_subdir(sub));
    k->cam = *c, k->N = N, k->first = first, k->Ne = Ne;
    float P[12];
    random_pose(P, 3.f);
    float intr[4] = {c->in.fx, c->in.fy, c->in.cx, c->in.cy};
    save_t(k->dir, "pose", RHD_F32, P, 1, (int64_t[]){12});
    save_t(k->dir, "intr", RHD_F32, intr, 1, (int64_t[]){4});
    uint64_t seed = th_seed() + 17 * nrc, stream = RHD_STREAM(RHD_STREAM_RAYS, 100 + nrc);
    k->pix = malloc(sizeof(int32_t) * N);
    k->o = malloc(sizeof(float) * 3 * N), k->d = malloc(sizeof(float) * 3 * N);
    k->eo = malloc(sizeof(float) * 3 * Ne), k->ed = malloc(sizeof(float) * 3 * Ne);
    rhd_rays_random_pixels(cpu, k->pix, N, c->W, c->H, seed, stream);
    rhd_rays_generate(cpu, k->o, k->d, k->pix, P, c->in, c->W, 0, N);
    rhd_rays_generate(cpu, k->eo, k->ed, NULL, P, c->in, c->W, first, Ne);
    add_job("rays %s %d %d %llu %llu %lld %lld %lld", k->dir, c->W, c->H, (unsigned long long)seed,
            (unsigned long long)stream, (long long)N, (long long)first, (long long)Ne);
}

static void check_rays(rays_case *k) {
    const cam_case *c = &k->cam;
    const char *dir = k->dir;
    int64_t N = k->N, Ne = k->Ne;
    char name[160];
    snprintf(name, sizeof name, "rays pixels W=%d H=%d N=%lld", c->W, c->H, (long long)N);
    int32_t *rpix = load_t(dir, "pix", RHD_I32, N);
    same_i32(name, k->pix, rpix, N);
    float *ro = load_t(dir, "o", RHD_F32, 3 * N), *rd = load_t(dir, "d", RHD_F32, 3 * N);
    float *reo = load_t(dir, "eo", RHD_F32, 3 * Ne), *red = load_t(dir, "ed", RHD_F32, 3 * Ne);
    snprintf(name, sizeof name, "rays origins W=%d H=%d fx=%g fy=%g cx=%g cy=%g", c->W, c->H, c->in.fx, c->in.fy,
             c->in.cx, c->in.cy);
    same_f32(name, k->o, ro, 3 * N);
    snprintf(name, sizeof name, "rays directions W=%d H=%d fx=%g fy=%g cx=%g cy=%g", c->W, c->H, c->in.fx, c->in.fy,
             c->in.cx, c->in.cy);
    same_f32(name, k->d, rd, 3 * N);
    snprintf(name, sizeof name, "rays eval row-major first=%lld n=%lld W=%d", (long long)k->first, (long long)Ne, c->W);
    same_f32(name, k->ed, red, 3 * Ne);
    same_f32("rays eval origins", k->eo, reo, 3 * Ne);
    const float *d = k->d;
    double worst = 0;
    for (int64_t j = 0; j < N; j++) {
        double n2 = (double)d[3 * j] * d[3 * j] + (double)d[3 * j + 1] * d[3 * j + 1] + (double)d[3 * j + 2] * d[3 * j + 2];
        if (fabs(sqrt(n2) - 1) > worst) worst = fabs(sqrt(n2) - 1);
    }
    th_ok(worst < 1e-6, "rays directions have unit length: max ||d|-1| = %.2e", worst);
    int64_t pmin = INT64_MAX, pmax = -1;
    for (int64_t j = 0; j < N; j++) pmin = k->pix[j] < pmin ? k->pix[j] : pmin, pmax = k->pix[j] > pmax ? k->pix[j] : pmax;
    th_ok(pmin >= 0 && pmax < (int64_t)c->W * c->H, "rays pixels in [0, %d): min %lld max %lld", c->W * c->H,
          (long long)pmin, (long long)pmax);
    free(k->pix), free(k->o), free(k->d), free(k->eo), free(k->ed), free(rpix), free(ro), free(rd), free(reo), free(red);
}

/* ---- (b) near/far ---- */

static int special_rays(float *o, float *d) {
    static const float s[][6] = {
        {-3.f, 0.2f, 0.3f, 1.f, 0.f, 0.f},    /* along +x, hits */
        {0.5f, 3.f, -0.2f, 0.f, -1.f, 0.f},   /* along -y, hits */
        {0.1f, 0.1f, -5.f, 0.f, 0.f, 1.f},    /* along +z, hits */
        {-3.f, 1.5f, 0.f, 1.f, 0.f, 0.f},     /* along +x above the box: misses */
        {-3.f, 1.f, 0.f, 1.f, 0.f, 0.f},      /* along +x in the plane y = 1: 0/0 */
        {-3.f, 0.f, 0.f, 1.f, -0.f, -0.f},    /* -0 components */
        {0.2f, -3.f, 0.f, -0.f, 1.f, 0.f},    /* -0 x */
        {3.f, 0.f, 0.f, 1.f, 0.f, 0.f},       /* pointing away */
        {0.1f, -0.2f, 0.3f, 0.6f, 0.f, 0.8f}, /* inside: near clamped to 0.2 */
        {0.95f, 0.f, 0.f, 1.f, 0.f, 0.f},     /* inside near a face: far < min_near */
        {0.f, 0.f, 0.f, 0.f, 0.f, -1.f},      /* the centre */
        {-3.f, -3.f, 0.f, 0.99503719f, -0.09950372f, 0.f}, /* misses below */
        {-2.f, 2.5f, 0.f, 0.70710677f, -0.70710677f, 0.f}, /* diagonal, through an edge region */
        {-2.f, 0.f, 0.f, 0.70710677f, 0.70710677f, 0.f},   /* exits through y = 1 */
        {1.f, 1.f, 1.f, -0.57735026f, -0.57735026f, -0.57735026f}, /* starts on a corner */
        {5.f, 5.f, 5.f, 0.57735026f, 0.57735026f, 0.57735026f},    /* away from a corner */
    };
    int n = (int)(sizeof s / sizeof s[0]);
    for (int i = 0; i < n; i++)
        for (int a = 0; a < 3; a++) o[3 * i + a] = s[i][a], d[3 * i + a] = s[i][3 + a];
    return n;
}

typedef struct {
    int64_t N;
    float bound, min_near;
    int ns;
    char dir[1024];
    float *nears, *fars;
} nf_case;
static nf_case nfcases[4];
static int nnf;

static void prep_near_far(int64_t N, float bound, float min_near) {
    nf_case *k = &nfcases[nnf];
    char sub[64];
    snprintf(sub, sizeof sub, "nearfar%d", nnf++);
    snprintf(k->dir, sizeof k->dir, "%s", th_subdir(sub));
    k->N = N, k->bound = bound, k->min_near = min_near;
    float *o = th_randu(3 * N, -3.f, 3.f), *d = th_randn(3 * N, 1.f);
    for (int64_t j = 0; j < N; j++) {
        double n = sqrt((double)d[3 * j] * d[3 * j] + (double)d[3 * j + 1] * d[3 * j + 1] + (double)d[3 * j + 2] * d[3 * j + 2]);
        for (int a = 0; a < 3; a++) d[3 * j + a] = (float)(d[3 * j + a] / n);
    }
    k->ns = special_rays(o, d);
    /* a third of the rays aim at the box from outside */
    for (int64_t j = k->ns; j < N; j += 3)
        for (int a = 0; a < 3; a++) d[3 * j + a] = -o[3 * j + a] / 3.f;
    save_t(k->dir, "o", RHD_F32, o, 2, (int64_t[]){N, 3});
    save_t(k->dir, "d", RHD_F32, d, 2, (int64_t[]){N, 3});
    k->nears = malloc(sizeof(float) * N), k->fars = malloc(sizeof(float) * N);
    rhd_rays_near_far(cpu, k->nears, k->fars, o, d, N, bound, min_near);
    add_job("nearfar %s %.9g %.9g", k->dir, bound, min_near);
    free(o), free(d);
}

static void check_near_far(nf_case *k) {
    int64_t N = k->N;
    float *nears = k->nears, *fars = k->fars, min_near = k->min_near;
    float *rn = load_t(k->dir, "near", RHD_F32, N), *rf = load_t(k->dir, "far", RHD_F32, N);
    char name[128];
    snprintf(name, sizeof name, "near N=%lld bound=%g min_near=%g (%d special rays)", (long long)N, k->bound, min_near, k->ns);
    same_f32(name, nears, rn, N);
    snprintf(name, sizeof name, "far N=%lld bound=%g", (long long)N, k->bound);
    same_f32(name, fars, rf, N);
    int64_t miss = 0, inside = 0;
    for (int64_t j = 0; j < N; j++) miss += nears[j] == FLT_MAX, inside += nears[j] == min_near;
    th_ok(miss > 0 && inside > 0 && nears[11] == FLT_MAX && fars[11] == FLT_MAX && nears[8] == min_near,
          "near/far bound=%g cases covered: %lld misses (FLT_MAX), %lld clamped to min_near", k->bound, (long long)miss,
          (long long)inside);
    /* the axis-parallel hit along +x from -3: near = 3 - bound, far = 3 + bound */
    th_ok(nears[0] == 3.f - k->bound && fars[0] == 3.f + k->bound,
          "near/far along +x from x=-3, bound=%g: near %g far %g", k->bound, nears[0], fars[0]);
    free(nears), free(fars), free(rn), free(rf);
}

/* ---- (c) gather ---- */

static void test_gather(void) {
    int W = 13, H = 7, Ch = 4;
    int64_t N = 100;
    float *img = th_randu((int64_t)W * H * Ch, 0.f, 1.f), *rgb = malloc(sizeof(float) * N * Ch);
    int32_t *pix = malloc(sizeof(int32_t) * N);
    rhd_rays_random_pixels(cpu, pix, N, W, H, th_seed(), RHD_STREAM(RHD_STREAM_RAYS, 7));
    rhd_rays_gather(cpu, rgb, img, pix, N, Ch);
    int bad = 0;
    for (int64_t j = 0; j < N; j++)
        for (int c = 0; c < Ch; c++) bad += rgb[j * Ch + c] != img[(int64_t)pix[j] * Ch + c];
    th_ok(bad == 0, "gather N=%lld Ch=%d from a %dx%d image: %d wrong", (long long)N, Ch, W, H, bad);
    free(img), free(rgb), free(pix);
}

/* ---- (d) camera paths ---- */

static double det3(const float *m) { /* columns 0..2 of a 3x4 row-major matrix */
    return (double)m[0] * ((double)m[5] * m[10] - (double)m[6] * m[9]) - (double)m[1] * ((double)m[4] * m[10] - (double)m[6] * m[8]) +
           (double)m[2] * ((double)m[4] * m[9] - (double)m[5] * m[8]);
}

typedef struct {
    int n;
    double bound;
    char dir[1024];
    float *mir, *pro;
} spiral_case;
static spiral_case scases[4];
static int nsc;

static void prep_spiral(int n, double bound) {
    spiral_case *k = &scases[nsc];
    char sub[64];
    snprintf(sub, sizeof sub, "spiral%d", nsc++);
    snprintf(k->dir, sizeof k->dir, "%s", th_subdir(sub));
    k->n = n, k->bound = bound;
    k->mir = malloc(sizeof(float) * 12 * n), k->pro = malloc(sizeof(float) * 12 * n);
    rhd_err e;
    int rc = rhd_camera_spiral(k->mir, n, bound, RHD_SPIRAL_MIRRORED, &e) | rhd_camera_spiral(k->pro, n, bound, RHD_SPIRAL_PROPER, &e);
    th_ok(rc == 0, "spiral n=%d bound=%g generated", n, bound);
    add_job("spiral %s %d %.17g", k->dir, n, bound);
}

static void check_spiral(spiral_case *k) {
    int n = k->n;
    double bound = k->bound;
    float *mir = k->mir, *pro = k->pro;
    char path[1024];
    snprintf(path, sizeof path, "%s/c2w.npy", k->dir);
    rhd_npy a;
    rhd_err e;
    if (rhd_npy_read(path, &a, &e) || a.t.dtype != RHD_F64 || rhd_shape_numel(a.t.shape, a.t.ndim) != 12 * n) {
        th_ok(0, "spiral reference output");
        return;
    }
    float *ref = malloc(sizeof(float) * 12 * n);
    for (int i = 0; i < 12 * n; i++) ref[i] = (float)((double *)a.buf)[i];
    rhd_npy_free(&a);
    char name[128];
    snprintf(name, sizeof name, "spiral mirrored (original) vs spec formulas n=%d bound=%g", n, bound);
    th_close(name, mir, ref, 12 * n, 1e-12);
    double dmin = 1e9, dmax = -1e9, pmin = 1e9, pmax = -1e9, maxdiff = 0;
    for (int t = 0; t < n; t++) {
        double dm = det3(mir + 12 * t), dp = det3(pro + 12 * t);
        dmin = fmin(dmin, dm), dmax = fmax(dmax, dm), pmin = fmin(pmin, dp), pmax = fmax(pmax, dp);
        for (int r = 0; r < 3; r++) {
            maxdiff = fmax(maxdiff, fabs(pro[12 * t + 4 * r] + mir[12 * t + 4 * r])); /* column 0 negated */
            for (int c = 1; c < 4; c++) maxdiff = fmax(maxdiff, fabs(pro[12 * t + 4 * r + c] - mir[12 * t + 4 * r + c]));
        }
    }
    th_ok(fabs(dmin + 1) < 1e-5 && fabs(dmax + 1) < 1e-5, "spiral mirrored: det in [%.7f, %.7f], expected -1", dmin, dmax);
    th_ok(fabs(pmin - 1) < 1e-5 && fabs(pmax - 1) < 1e-5, "spiral proper: det in [%.7f, %.7f], expected +1", pmin, pmax);
    th_ok(maxdiff == 0, "spiral proper = mirrored with column 0 negated (same positions): max diff %.2e", maxdiff);
    /* frame 0 (theta = -1.57, phi = 1.87) is on the -x side at radius 1.45*sqrt(3)*bound */
    double r0 = sqrt((double)pro[3] * pro[3] + (double)pro[7] * pro[7] + (double)pro[11] * pro[11]);
    th_ok(fabs(r0 - 1.45 * sqrt(3.0) * bound) < 1e-5 && pro[3] < 0, "spiral frame 0 at radius %.6f (expected %.6f), x=%.4f < 0",
          r0, 1.45 * sqrt(3.0) * bound, pro[3]);
    /* proper frames: world +y is up in the image, so image-down (column 1) points to -y */
    int upright = 1;
    for (int t = 0; t < n; t++) upright &= pro[12 * t + 4 * 1 + 1] < 0;
    th_ok(upright, "spiral proper: image-down has a negative y component in every frame");
    free(mir), free(pro), free(ref);
}

static void test_orbit(int n, double radius, double elev) {
    const double target[3] = {0.1, 0.4, -0.2};
    float *c = malloc(sizeof(float) * 12 * n);
    rhd_err e;
    int rc = rhd_camera_orbit(c, n, radius, elev, target, &e);
    double worst_det = 0, worst_r = 0, worst_el = 0, worst_look = 0;
    int down_ok = 1;
    for (int t = 0; t < n && rc == 0; t++) {
        const float *m = c + 12 * t;
        worst_det = fmax(worst_det, fabs(det3(m) - 1));
        double v[3] = {m[3] - target[0], m[7] - target[1], m[11] - target[2]};
        double r = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
        worst_r = fmax(worst_r, fabs(r - radius));
        worst_el = fmax(worst_el, fabs(asin(v[1] / r) * 180 / 3.14159265358979323846 - elev));
        for (int a = 0; a < 3; a++) worst_look = fmax(worst_look, fabs(m[4 * a + 2] + v[a] / r)); /* forward = -v/r */
        down_ok &= m[4 * 1 + 1] < 0;
    }
    th_ok(rc == 0 && worst_det < 1e-5 && worst_r < 1e-5 && worst_el < 1e-4 && worst_look < 1e-6 && down_ok,
          "orbit n=%d r=%g elevation=%g: |det-1| %.1e, |radius err| %.1e, |elev err| %.1e deg, |look err| %.1e, upright %d",
          n, radius, elev, worst_det, worst_r, worst_el, worst_look, down_ok);
    th_ok(rhd_camera_orbit(c, n, radius, 90, target, &e) == -1 && strstr(e.msg, "elevation"),
          "orbit rejects elevation 90: %s", e.msg);
    th_ok(rhd_camera_spiral(c, 0, 1, 0, &e) == -1 && strstr(e.msg, "frames"), "spiral rejects 0 frames: %s", e.msg);
    free(c);
}

/* ---- (e) threads, (f) CUDA ---- */

static void run_all(rhd_ctx *ctx, int32_t *pix, float *o, float *d, float *n, float *f, const float *P, rhd_intrinsics in,
                    int W, int H, int64_t N) {
    rhd_rays_random_pixels(ctx, pix, N, W, H, 99, RHD_STREAM(RHD_STREAM_RAYS, 3));
    rhd_rays_generate(ctx, o, d, pix, P, in, W, 0, N);
    rhd_rays_near_far(ctx, n, f, o, d, N, 1.f, 0.2f);
}

static void test_threads_and_cuda(void) {
    int W = 61, H = 47;
    int64_t N = 5000;
    rhd_intrinsics in = {70.f, 65.f, 30.5f, 23.5f};
    float P[12];
    random_pose(P, 2.f);
    size_t fb = sizeof(float) * N;
    int32_t *pix[2];
    float *o[2], *d[2], *n[2], *f[2];
    for (int k = 0; k < 2; k++) {
        pix[k] = malloc(sizeof(int32_t) * N), o[k] = malloc(3 * fb), d[k] = malloc(3 * fb), n[k] = malloc(fb), f[k] = malloc(fb);
        omp_set_num_threads(k + 1);
        run_all(cpu, pix[k], o[k], d[k], n[k], f[k], P, in, W, H, N);
    }
    omp_set_num_threads(2);
    th_ok(!memcmp(pix[0], pix[1], sizeof(int32_t) * N) && !memcmp(d[0], d[1], 3 * fb) && !memcmp(n[0], n[1], fb) &&
              !memcmp(f[0], f[1], fb),
          "rays + near/far: 1 and 2 threads bit-identical (N=%lld)", (long long)N);
    if (!rhd_cuda_available()) {
        th_skip("no CUDA device (rays, near/far cpu~cuda)");
    } else {
        rhd_err e;
        rhd_ctx *gpu = rhd_ctx_open("cuda", &e);
        int32_t *gpix = rhd_buf_alloc(gpu, sizeof(int32_t) * N);
        float *go = rhd_buf_alloc(gpu, 3 * fb), *gd = rhd_buf_alloc(gpu, 3 * fb), *gn = rhd_buf_alloc(gpu, fb),
              *gf = rhd_buf_alloc(gpu, fb);
        run_all(gpu, gpix, go, gd, gn, gf, P, in, W, H, N);
        int32_t *hpix = malloc(sizeof(int32_t) * N);
        float *hd = malloc(3 * fb), *hn = malloc(fb), *hf = malloc(fb);
        rhd_buf_download(gpu, hpix, gpix, sizeof(int32_t) * N);
        rhd_buf_download(gpu, hd, gd, 3 * fb);
        rhd_buf_download(gpu, hn, gn, fb);
        rhd_buf_download(gpu, hf, gf, fb);
        same_i32("rays pixels cpu~cuda", hpix, pix[1], N);
        same_f32("rays directions cpu~cuda", hd, d[1], 3 * N);
        same_f32("near cpu~cuda", hn, n[1], N);
        same_f32("far cpu~cuda", hf, f[1], N);
        /* eval rays and gather on the device */
        float *ho = malloc(3 * fb);
        rhd_rays_generate(gpu, go, gd, NULL, P, in, W, 7, N);
        rhd_rays_generate(cpu, o[0], d[0], NULL, P, in, W, 7, N);
        rhd_buf_download(gpu, hd, gd, 3 * fb);
        rhd_buf_download(gpu, ho, go, 3 * fb);
        same_f32("eval rays cpu~cuda", hd, d[0], 3 * N);
        same_f32("eval origins cpu~cuda", ho, o[0], 3 * N);
        float *img = th_randu((int64_t)W * H * 3, 0.f, 1.f), *gimg = rhd_buf_alloc(gpu, sizeof(float) * W * H * 3);
        rhd_buf_upload(gpu, gimg, img, sizeof(float) * W * H * 3);
        rhd_rays_gather(gpu, go, gimg, gpix, N, 3);
        rhd_rays_gather(cpu, o[0], img, pix[1], N, 3);
        rhd_buf_download(gpu, ho, go, 3 * fb);
        same_f32("gather cpu~cuda", ho, o[0], 3 * N);
        rhd_buf_free(gpu, gpix), rhd_buf_free(gpu, go), rhd_buf_free(gpu, gd), rhd_buf_free(gpu, gn), rhd_buf_free(gpu, gf);
        rhd_buf_free(gpu, gimg);
        free(hpix), free(hd), free(hn), free(hf), free(ho), free(img);
        rhd_ctx_close(gpu);
    }
    for (int k = 0; k < 2; k++) free(pix[k]), free(o[k]), free(d[k]), free(n[k]), free(f[k]);
}

int main(void) {
    rhd_err e;
    cpu = rhd_ctx_open("cpu", &e);
    const cam_case cams[] = {
        {64, 64, {80.f, 80.f, 32.f, 32.f}},         /* square, centred (fx = fy from sensor_width) */
        {48, 32, {60.f, 40.f, 24.f, 16.f}},         /* non-square: fy = fl/sw*H (§12.2) */
        {37, 29, {51.3f, 47.9f, 19.25f, 13.75f}},   /* odd sizes, off-centre principal point */
        {512, 512, {1422.2222f, 1422.2222f, 256.f, 256.f}}, /* the dataset's size */
    };
    for (int k = 0; k < 4; k++) prep_rays(&cams[k], 4096, k == 3 ? 512 * 300 + 17 : 5, 999);
    prep_near_far(3000, 1.f, 0.2f);
    prep_near_far(500, 2.f, 0.05f);
    prep_spiral(60, 1.0);
    prep_spiral(17, 1.5);
    if (th_ref("ref_march.py", "%s", jobs)) {
        th_ok(0, "the NumPy reference ran");
    } else {
        for (int k = 0; k < nrc; k++) check_rays(&rcases[k]);
        for (int k = 0; k < nnf; k++) check_near_far(&nfcases[k]);
        for (int k = 0; k < nsc; k++) check_spiral(&scases[k]);
    }
    test_gather();
    test_orbit(36, 2.5, 20);
    test_orbit(7, 1.2, -10);
    test_threads_and_cuda();
    rhd_ctx_close(cpu);
    return th_done();
}
