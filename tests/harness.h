/* tests/harness.h: a tiny TAP producer for the C tests (git t/ style).
 *
 *   th_ok(cond, "name %d", i)        ok N - name / not ok N - name
 *   th_skip("why")                   ok N # SKIP why
 *   th_close(name, got, ref, n, tol) compare arrays: prints max-abs and normalized MSE, ok if
 *                                    nmse <= tol (the comparison ggml's test-backend-ops uses)
 *   return th_done();                prints the plan "1..N"; exit status 1 if anything failed
 * Tests print what they compared and the error as TAP diagnostics ("# ..."). */
#ifndef RHD_TEST_HARNESS_H
#define RHD_TEST_HARNESS_H
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int th_n_, th_failed_;

static inline int th_ok(int cond, const char *fmt, ...) {
    va_list ap;
    th_n_++;
    if (!cond) th_failed_++;
    printf("%sok %d - ", cond ? "" : "not ", th_n_);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    return cond;
}

static inline void th_skip(const char *fmt, ...) {
    va_list ap;
    th_n_++;
    printf("ok %d # SKIP ", th_n_);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static inline void th_diag(const char *fmt, ...) {
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* Compare got against ref: nmse = sum (g-r)^2 / sum r^2 (or the plain MSE when ref is all
 * zero). Prints the error; on failure also the first mismatching entries. */
static inline int th_close(const char *name, const float *got, const float *ref, long n, double tol) {
    double se = 0, sr = 0, maxabs = 0;
    long worst = 0, nonfinite = 0;
    for (long i = 0; i < n; i++) {
        if (!isfinite(got[i]) != !isfinite(ref[i])) nonfinite++;
        double d = (double)got[i] - ref[i];
        if (!isfinite(d)) continue;
        se += d * d;
        sr += (double)ref[i] * ref[i];
        if (fabs(d) > maxabs) maxabs = fabs(d), worst = i;
    }
    double nmse = sr > 0 ? se / sr : se / (n ? n : 1);
    int ok = nmse <= tol && nonfinite == 0;
    th_ok(ok, "%s: n=%ld nmse=%.3e max_abs=%.3e (at %ld) tol=%.1e", name, n, nmse, maxabs, worst, tol);
    if (!ok) {
        int shown = 0;
        for (long i = 0; i < n && shown < 5; i++)
            if (fabs((double)got[i] - ref[i]) > 1e-6 + 1e-4 * fabs(ref[i]) || !isfinite(got[i])) {
                th_diag("  [%ld] got %.8g ref %.8g", i, got[i], ref[i]);
                shown++;
            }
    }
    return ok;
}

static inline int th_done(void) {
    printf("1..%d\n", th_n_);
    if (th_failed_) printf("# %d of %d failed\n", th_failed_, th_n_);
    fflush(stdout);
    return th_failed_ ? 1 : 0;
}

/* A scratch directory for this test process ($RHD_TEST_TMP or /tmp), created once. */
static inline const char *th_tmpdir(void) {
    static char dir[512];
    if (!dir[0]) {
        const char *base = getenv("RHD_TEST_TMP");
        snprintf(dir, sizeof dir, "%s/rhd-test-XXXXXX", base && *base ? base : "/tmp");
        extern char *mkdtemp(char *);
        if (!mkdtemp(dir)) { perror("mkdtemp"); exit(1); }
    }
    return dir;
}

/* Run a shell command and return its exit status (-1 if it could not run). */
static inline int th_sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st == -1) return -1;
    return (st >> 8) & 0xff;
}
#endif
