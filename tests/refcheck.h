/* tests/refcheck.h: helpers for checking ops and models against independent references.
 *
 *   th_save(dir, "x", data, ndim, shape)    write a float32 .npy input for the reference
 *   th_ref(script, "groupnorm %s", dir)     run "$RHD_PY tests/ref/<script> <args>"; 0 on success
 *   th_load(dir, "y", n)                    read a float32 .npy the reference wrote (n checked)
 *   th_fd_check(...)                        central finite differences of a scalar loss
 *   th_open_backends(&cpu, &gpu)            the CPU context, and a CUDA one when a device exists
 *   th_randn / th_randu                     fresh random inputs (Philox; seed from $RHD_TEST_SEED,
 *                                           which tests/run.sh draws once per run and prints; a test
 *                                           run by hand without it uses a fixed seed, never the
 *                                           clock; printed so a failure can be replayed)
 * The reference scripts are independent PyTorch/NumPy implementations written from the spec;
 * they read <dir>/<name>.npy and write <dir>/<name>.npy. */
#ifndef RHD_TEST_REFCHECK_H
#define RHD_TEST_REFCHECK_H
#include "harness.h"
#include "common/backend.h"
#include "formats/npy.h"
#include "common/rng.h"
#include <stdint.h>
#include <time.h>

static inline uint64_t th_seed(void) {
    static uint64_t seed;
    static int init;
    if (!init) {
        const char *s = getenv("RHD_TEST_SEED");
        seed = s && *s ? strtoull(s, NULL, 10) : UINT64_C(20240917);
        init = 1;
        th_diag("random inputs: RHD_TEST_SEED=%llu", (unsigned long long)seed);
    }
    return seed;
}

/* The CPU context and, when a CUDA device exists, a CUDA one (else *gpu = NULL); exits 1 with the
 * message if one does not open. Also prints the seed of the random inputs. */
static inline void th_open_backends(rhd_ctx **cpu, rhd_ctx **gpu) {
    rhd_err e;
    *cpu = rhd_ctx_open("cpu", &e);
    if (!*cpu) fprintf(stderr, "%s\n", e.msg), exit(1);
    *gpu = NULL;
    if (rhd_cuda_available()) {
        *gpu = rhd_ctx_open("cuda", &e);
        if (!*gpu) fprintf(stderr, "%s\n", e.msg), exit(1);
    }
    th_seed();
}

/* Fresh random arrays; each call uses a new stream so inputs differ. */
/* n floats from the host to a new buffer of ctx, and back into a new host array (free()). */
static inline float *th_up(rhd_ctx *ctx, const float *h, long n) {
    float *d = rhd_buf_alloc(ctx, sizeof(float) * n);
    rhd_buf_upload(ctx, d, h, sizeof(float) * n);
    return d;
}
static inline float *th_down(rhd_ctx *ctx, const float *d, long n) {
    float *h = malloc(sizeof(float) * n);
    rhd_buf_download(ctx, h, d, sizeof(float) * n);
    return h;
}

static inline float *th_randn(long n, float std) {
    static uint32_t k;
    float *x = malloc(sizeof(float) * (n ? n : 1));
    rhd_rng_fill_normal(x, n, th_seed(), RHD_STREAM(RHD_STREAM_TEST, 1000 + k++), 0, 0.f, std);
    return x;
}
static inline float *th_randu(long n, float lo, float hi) {
    static uint32_t k;
    float *x = malloc(sizeof(float) * (n ? n : 1));
    rhd_rng_fill_uniform(x, n, th_seed(), RHD_STREAM(RHD_STREAM_TEST, 500000 + k++), 0, lo, hi);
    return x;
}

/* Write an .npy of any dtype (th_save: float32). */
static inline void th_save_t(const char *dir, const char *name, rhd_dtype dt, const void *data, int ndim,
                             const int64_t *shape) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    rhd_tensor t = {dt, ndim, {0}, (void *)data};
    memcpy(t.shape, shape, sizeof(int64_t) * ndim);
    rhd_err e;
    if (rhd_npy_write(path, &t, &e)) { fprintf(stderr, "%s\n", e.msg); exit(1); }
}
static inline void th_save(const char *dir, const char *name, const float *data, int ndim, const int64_t *shape) {
    th_save_t(dir, name, RHD_F32, data, ndim, shape);
}

/* Read an .npy of dtype dt with n elements: a malloc'd array owned by the caller, or NULL with a
 * diagnostic if missing or of another dtype or size (th_load: float32). */
static inline void *th_load_t(const char *dir, const char *name, rhd_dtype dt, int64_t n) {
    char path[2048];
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
static inline float *th_load(const char *dir, const char *name, long n) {
    return (float *)th_load_t(dir, name, RHD_F32, n);
}

/* Bytewise equality (floats bitwise) of n elements of size sz; reports the count that differ
 * and the first one. ref may be NULL (a missing reference fails). */
static inline int th_same_bytes(const char *name, const void *got, const void *ref, int64_t n, size_t sz) {
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n && ref; i++)
        if (memcmp((const char *)got + i * sz, (const char *)ref + i * sz, sz)) {
            if (first < 0) first = i;
            bad++;
        }
    int ok = ref && bad == 0;
    th_ok(ok, "%s: n=%lld, %lld differ", name, (long long)n, (long long)bad);
    if (!ok && first >= 0) {
        if (sz == 4) th_diag("  first at [%lld]: got %.9g / %d, ref %.9g / %d", (long long)first,
                             ((const float *)got)[first], ((const int32_t *)got)[first], ((const float *)ref)[first],
                             ((const int32_t *)ref)[first]);
        else th_diag("  first at [%lld]: got 0x%02x ref 0x%02x", (long long)first, ((const uint8_t *)got)[first],
                     ((const uint8_t *)ref)[first]);
    }
    return ok;
}

static inline int th_ref(const char *script, const char *fmt, ...) {
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    const char *py = getenv("RHD_PY");
    const char *root = getenv("RHD_ROOT");
    int rc = th_sh("%s %s/tests/ref/%s %s", py && *py ? py : "python3", root && *root ? root : ".", script, args);
    if (rc != 0) th_diag("reference %s %s exited with %d", script, args, rc);
    return rc;
}

/* A fresh scratch subdirectory for one comparison. */
static inline const char *th_subdir(const char *name) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", th_tmpdir(), name);
    th_sh("mkdir -p '%s'", path);
    return path;
}

/* Finite-difference check: loss(ctx) evaluates a scalar (in double) from the current x.
 * For `nsamples` entries of x (spread over the array), compares the analytic gradient dx with
 * (loss(x+h) - loss(x-h)) / 2h. Passes if max |a - n| / (|a| + |n| + floor) <= tol. */
typedef double (*th_loss_fn)(void *ctx);
/* The worst relative error of th_fd_check below, without a verdict; *at, *an, *nu (may be NULL):
 * its index, analytic and numeric values. */
static inline double th_fd_worst(th_loss_fn loss, void *ctx, float *x, const float *dx, long n, int nsamples, double h,
                                 double floor_, long *at, double *an, double *nu) {
    double worst = 0;
    long worst_i = -1;
    double wa = 0, wn = 0;
    for (int s = 0; s < nsamples && s < n; s++) {
        long i = n <= nsamples ? s : (long)((double)s * (n - 1) / (nsamples - 1));
        float x0 = x[i];
        x[i] = x0 + (float)h;
        double lp = loss(ctx);
        x[i] = x0 - (float)h;
        double lm = loss(ctx);
        x[i] = x0;
        double hh = ((double)(x0 + (float)h) - (double)(x0 - (float)h)) / 2; /* the step actually taken */
        double num = (lp - lm) / (2 * hh), a = dx[i];
        double rel = fabs(a - num) / (fabs(a) + fabs(num) + floor_);
        if (rel > worst) worst = rel, worst_i = i, wa = a, wn = num;
    }
    if (at) *at = worst_i;
    if (an) *an = wa;
    if (nu) *nu = wn;
    return worst;
}

static inline int th_fd_check(const char *name, th_loss_fn loss, void *ctx, float *x, const float *dx, long n,
                              int nsamples, double h, double tol, double floor_) {
    long worst_i;
    double wa, wn, worst = th_fd_worst(loss, ctx, x, dx, n, nsamples, h, floor_, &worst_i, &wa, &wn);
    return th_ok(worst <= tol, "%s: finite differences at %d points, worst rel err %.2e (at %ld: analytic %.6g numeric %.6g) tol %.0e",
                 name, nsamples < n ? nsamples : (int)n, worst, worst_i, wa, wn, tol);
}
#endif
