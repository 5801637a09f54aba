/* tests/unit/test_checks.c: the checks every reader and tool shares: NaN/Inf counting and the value
 * check (formats/finite.h) on every float dtype against counts planted at random positions (the
 * seed is printed), path normalisation and same-file detection, output writability (common/fs.h). */
#include "harness.h"
#include "common/fs.h"
#include "common/rng.h"
#include "common/tensor.h"
#include "formats/finite.h"
#include <math.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Plant nan/pinf/ninf values at distinct random positions of n finite floats; returns the first. */
static int64_t plant(float *x, int64_t n, int nan, int pinf, int ninf, uint64_t seed) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(i % 97) * 1e3f - 4e4f; /* finite, varied */
    x[n / 2] = 3.4e38f;                                                   /* huge but finite */
    int64_t first = n;
    rhd_u32x4 c = {{0, 0, 0, 0}};
    int want[3] = {nan, pinf, ninf};
    const float val[3] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < want[k];) {
            c.v[0]++;
            int64_t i = (int64_t)(rhd_philox4x32(c, (uint32_t)seed, 7).v[0] % (uint64_t)n);
            if (!isfinite(x[i]) || i == n / 2) continue;
            x[i] = val[k], j++;
            if (i < first) first = i;
        }
    return first;
}

static void test_count(uint64_t seed) {
    enum { N = 50000 };
    float *x = malloc(sizeof(float) * N);
    double *xd = malloc(sizeof(double) * N);
    uint16_t *h = malloc(sizeof(uint16_t) * N);
    int64_t first = plant(x, N, 5, 3, 2, seed);
    rhd_nonfinite r;
    rhd_count_nonfinite(x, RHD_F32, N, &r);
    th_ok(r.nan == 5 && r.pinf == 3 && r.ninf == 2 && r.first == first,
          "F32: nan %lld +inf %lld -inf %lld first %lld, planted 5 3 2 first %lld", (long long)r.nan, (long long)r.pinf,
          (long long)r.ninf, (long long)r.first, (long long)first);
    for (int64_t i = 0; i < N; i++) xd[i] = x[i];
    xd[1] = 1e300; /* finite in double, +Inf as a float */
    rhd_count_nonfinite(xd, RHD_F64, N, &r);
    th_ok(r.nan == 5 && r.pinf == 3 && r.ninf == 2, "F64 counted in double (1e300 is finite): %lld %lld %lld", (long long)r.nan,
          (long long)r.pinf, (long long)r.ninf);
    x[N / 2] = 1; /* 3.4e38 overflows F16 */
    for (rhd_dtype dt = RHD_F16; dt <= RHD_BF16; dt++) {
        rhd_convert_from_f32(h, x, dt, N);
        rhd_count_nonfinite((const char *)h, dt, N, &r);
        th_ok(r.nan == 5 && r.pinf == 3 && r.ninf == 2 && r.first == first, "%s: %lld %lld %lld first %lld",
              rhd_dtype_name(dt), (long long)r.nan, (long long)r.pinf, (long long)r.ninf, (long long)r.first);
    }
    /* unaligned data */
    char *u = malloc(sizeof(float) * N + 1);
    memcpy(u + 1, x, sizeof(float) * N);
    rhd_count_nonfinite(u + 1, RHD_F32, N, &r);
    th_ok(r.nan == 5 && r.pinf == 3 && r.ninf == 2, "unaligned F32 data");
    int32_t ints[4] = {0, -1, 2, 3};
    rhd_count_nonfinite(ints, RHD_I32, 4, &r);
    th_ok(r.nan == 0 && r.pinf == 0 && r.ninf == 0 && r.first == -1, "integers hold no NaN/Inf");
    rhd_err e;
    int rc = rhd_check_finite("a/t.safetensors", "planes", x, N, &e);
    char want[200];
    snprintf(want, sizeof want, "(first at flat index %lld)", (long long)first);
    th_ok(rc == -1 && strstr(e.msg, "a/t.safetensors: tensor 'planes': 5 NaN, 3 +Inf, 2 -Inf of 50000 values") &&
              strstr(e.msg, want) && strstr(e.msg, "expected finite values"),
          "the message names file, tensor, counts and first index: %s", rc ? e.msg : "(accepted)");
    for (int64_t i = 0; i < N; i++)
        if (!isfinite(x[i])) x[i] = 0;
    th_ok(rhd_check_finite("f", "t", x, N, &e) == 0, "finite data passes (with 3.4e38 and -4e4 in it)");
    free(x), free(xd), free(h), free(u);
}

static void test_paths(void) {
    char *p = rhd_path_normalise("/a//b/./c/../d/");
    th_ok(strcmp(p, "/a/b/d") == 0, "normalise /a//b/./c/../d/ -> %s", p);
    free(p);
    p = rhd_path_normalise("/..");
    th_ok(strcmp(p, "/") == 0, "normalise /.. -> %s", p);
    free(p);
    char cwd[4096], want[4200];
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = 0;
    p = rhd_path_normalise("x/../y.png");
    snprintf(want, sizeof want, "%s/y.png", strcmp(cwd, "/") ? cwd : "");
    th_ok(strcmp(p, want) == 0, "relative paths are made absolute: %s", p);
    free(p);

    const char *d = th_tmpdir();
    char a[1024], b[1100], l[1024], s[1024], dot[1100];
    snprintf(a, sizeof a, "%s/in.png", d), snprintf(b, sizeof b, "%s/other.png", d), snprintf(l, sizeof l, "%s/link.png", d);
    snprintf(s, sizeof s, "%s/sub", d), snprintf(dot, sizeof dot, "%s/sub/../in.png", d);
    FILE *f = fopen(a, "w");
    fputs("x", f), fclose(f);
    mkdir(s, 0777);
    th_ok(symlink(a, l) == 0, "symlink made");
    th_ok(rhd_same_file(a, a) && rhd_same_file(a, dot) && rhd_same_file(a, l), "same file: itself, via sub/.., via a symlink");
    th_ok(!rhd_same_file(a, b) && !rhd_same_file(a, "-") && !rhd_same_file("-", "-"), "different: another path, stdout");
    snprintf(dot, sizeof dot, "%s/sub/../new.png", d);
    snprintf(b, sizeof b, "%s/./new.png", d);
    th_ok(rhd_same_file(b, dot), "two spellings of a path that does not exist yet are the same");
    rhd_err e;
    const char *ins[3] = {"x.json", NULL, a};
    int rc = rhd_check_output_not_input("-o", l, ins, 3, &e);
    th_ok(rc == -1 && strstr(e.msg, "-o ") && strstr(e.msg, l) && strstr(e.msg, a), "output = input refused, both named: %s",
          rc ? e.msg : "(accepted)");
    th_ok(rhd_check_output_not_input("-o", "-", ins, 3, &e) == 0, "stdout is never an input");

    th_ok(rhd_check_output_writable("-o", b, &e) == 0, "a new file in a writable directory");
    snprintf(b, sizeof b, "%s/sub/deeper/still/new.png", d);
    th_ok(rhd_check_output_writable("-o", b, &e) == 0, "directories still to be created under a writable one");
    rc = rhd_check_output_writable("-o", s, &e);
    th_ok(rc == -1 && strstr(e.msg, "is a directory"), "a directory as output: %s", rc ? e.msg : "(accepted)");
    snprintf(b, sizeof b, "%s/x.png", a);
    rc = rhd_check_output_writable("--png", b, &e);
    th_ok(rc == -1 && strstr(e.msg, "is not a directory"), "under a regular file: %s", rc ? e.msg : "(accepted)");
    rc = rhd_check_output_writable("-o", "/proc/rhd-test/x.png", &e);
    th_ok(rc == -1 && strstr(e.msg, "cannot create a file in /proc"), "where no file can be created: %s", rc ? e.msg : "(accepted)");
    th_sh("rm -rf '%s'", d);
}

int main(void) {
    uint64_t seed = (uint64_t)time(NULL);
    th_diag("seed %llu", (unsigned long long)seed);
    test_count(seed);
    test_paths();
    return th_done();
}
