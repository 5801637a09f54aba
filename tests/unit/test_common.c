/* tests/unit/test_common.c: the common/ core: Philox known answers and statistics, fp16/bf16
 * conversions, strict number and range parsing, which options a parse was given, atomic writes,
 * the parameter table, arena. */
#include "harness.h"
#include "common/rng.h"
#include "common/tensor.h"
#include "common/cli.h"
#include "common/fs.h"
#include "common/params.h"
#include "common/arena.h"
#include <sys/stat.h>
#include <unistd.h>

static void test_philox_kat(void) {
    /* Random123 kat_vectors: counter[4] key[2] -> output[4] */
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int k = 0; k < 3; k++) {
        rhd_u32x4 c = {{kat[k][0], kat[k][1], kat[k][2], kat[k][3]}};
        rhd_u32x4 o = rhd_philox4x32(c, kat[k][4], kat[k][5]);
        th_ok(o.v[0] == kat[k][6] && o.v[1] == kat[k][7] && o.v[2] == kat[k][8] && o.v[3] == kat[k][9],
              "philox4x32-10 known answer %d: got %08x %08x %08x %08x", k, o.v[0], o.v[1], o.v[2], o.v[3]);
    }
}

static void test_rng_stats(void) {
    enum { N = 1 << 20 };
    float *u = malloc(sizeof(float) * N), *z = malloc(sizeof(float) * N), *z2 = malloc(sizeof(float) * N);
    rhd_rng_fill_uniform(u, N, 1234, RHD_STREAM(RHD_STREAM_TEST, 0), 0, 0.f, 1.f);
    rhd_rng_fill_normal(z, N, 1234, RHD_STREAM(RHD_STREAM_TEST, 0), 0, 0.f, 1.f);
    double su = 0, su2 = 0, sz = 0, sz2 = 0, sz4 = 0;
    float umin = 1, umax = 0;
    for (int i = 0; i < N; i++) {
        su += u[i], su2 += (double)u[i] * u[i];
        sz += z[i], sz2 += (double)z[i] * z[i], sz4 += (double)z[i] * z[i] * z[i] * z[i];
        if (u[i] < umin) umin = u[i];
        if (u[i] > umax) umax = u[i];
    }
    double mu = su / N, vu = su2 / N - mu * mu, mz = sz / N, vz = sz2 / N - mz * mz, kz = sz4 / N;
    /* 1M draws: standard errors ~3e-4 (mean), ~1e-3 (var); tolerances are ~5 sigma */
    th_ok(fabs(mu - 0.5) < 2e-3 && fabs(vu - 1.0 / 12) < 1e-3 && umin >= 0 && umax < 1,
          "uniform: mean %.5f var %.5f (1/12 = %.5f) range [%g, %g)", mu, vu, 1.0 / 12, umin, umax);
    th_ok(fabs(mz) < 5e-3 && fabs(vz - 1) < 7e-3 && fabs(kz - 3) < 3e-2, "normal: mean %.5f var %.5f kurtosis %.4f", mz, vz, kz);
    /* offsets: element i drawn alone equals element i of the bulk fill; other streams differ */
    int same = 1;
    for (int i = 0; i < 1000; i++) same &= rhd_rng_normal(1234, RHD_STREAM(RHD_STREAM_TEST, 0), i * 997) == z[i * 997];
    rhd_rng_fill_normal(z2, 1000, 1234, RHD_STREAM(RHD_STREAM_TEST, 0), 5, 0.f, 1.f);
    for (int i = 0; i < 1000; i++) same &= z2[i] == z[i + 5];
    th_ok(same, "normal draws depend only on (seed, stream, index), not on the fill");
    rhd_rng_fill_normal(z2, 1000, 1234, RHD_STREAM(RHD_STREAM_TEST, 1), 0, 0.f, 1.f);
    int differ = 0;
    for (int i = 0; i < 1000; i++) differ += z2[i] != z[i];
    th_ok(differ > 990, "another stream gives other numbers (%d of 1000 differ)", differ);
    free(u), free(z), free(z2);
}

static void test_half(void) {
    struct { float f; uint16_t h; } cases[] = {
        {0.f, 0x0000}, {-0.f, 0x8000}, {1.f, 0x3c00}, {-2.f, 0xc000}, {65504.f, 0x7bff},
        {65520.f, 0x7c00}, {5.9604645e-8f, 0x0001}, {6.1035156e-5f, 0x0400}, {0.33333334f, 0x3555},
        {1.0009766f, 0x3c01}, {1.00048828125f, 0x3c00}, /* tie -> even */ {1.00146484375f, 0x3c02},
        {INFINITY, 0x7c00}, {-INFINITY, 0xfc00}, {2.9802322e-8f, 0x0000}, {2.9802326e-8f, 0x0001}};
    int ok = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = rhd_float_to_half(cases[i].f);
        if (h != cases[i].h) { th_diag("float %.10g -> half %04x, expected %04x", cases[i].f, h, cases[i].h); ok = 0; }
    }
    th_ok(ok, "float -> half rounding (normals, subnormals, ties to even, overflow, inf)");
    int rt = 1;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN payloads */
        if (rhd_float_to_half(rhd_half_to_float((uint16_t)h)) != h) { rt = 0; th_diag("half %04x does not round-trip", h); break; }
    }
    th_ok(rt, "every non-NaN half round-trips through float");
    th_ok(isnan(rhd_half_to_float(rhd_float_to_half(NAN))), "NaN stays NaN in half");
    th_ok(rhd_float_to_bf16(1.f) == 0x3f80 && rhd_bf16_to_float(0x4049) == 3.140625f &&
              rhd_float_to_bf16(1.00390625f) == 0x3f80 /* tie to even */ && rhd_float_to_bf16(1.01171875f) == 0x3f82,
          "bf16 conversions");
}

static void test_parse(void) {
    long long v;
    double d;
    th_ok(rhd_parse_ll("42", &v) == 0 && v == 42 && rhd_parse_ll("-7", &v) == 0 && v == -7, "integers parse");
    th_ok(rhd_parse_ll("fifty", &v) && rhd_parse_ll("5x", &v) && rhd_parse_ll("", &v) &&
              rhd_parse_ll("99999999999999999999", &v) && rhd_parse_ll("1.5", &v),
          "junk, trailing characters, empty, overflow and fractions are rejected as integers");
    th_ok(rhd_parse_double("1e-3", &d) == 0 && d == 1e-3 && rhd_parse_double("nan", &d) &&
              rhd_parse_double("inf", &d) && rhd_parse_double("1e999", &d) && rhd_parse_double("0.5s", &d),
          "numbers: finite only, no trailing junk");
    int *r, n;
    rhd_err e;
    th_ok(rhd_parse_ranges("0-3,10,2", &r, &n, &e) == 0 && n == 5 && r[0] == 0 && r[3] == 3 && r[4] == 10,
          "view ranges '0-3,10,2' -> 0 1 2 3 10");
    free(r);
    th_ok(rhd_parse_ranges("5-1", &r, &n, &e) && strstr(e.msg, "expected e.g. 0-99") != NULL,
          "reversed range rejected: %s", e.msg);
    th_ok(rhd_parse_ranges("a-b", &r, &n, &e) && rhd_parse_ranges("", &r, &n, &e) && rhd_parse_ranges("-3", &r, &n, &e),
          "non-numeric, empty and negative ranges rejected");
}

typedef struct {
    rhd_common_opts common;
    int mode, flag;
    long long n;
} cli_opts;
static const char *const cli_modes[] = {"a", "b", NULL};
static const rhd_opt cli_table[] = {
    RHD_OPT_CHOICE_(0, "mode", cli_opts, mode, "M", "a or b", cli_modes),
    RHD_OPT_FLAG_(0, "flag", cli_opts, flag, "a flag"),
    RHD_OPT_INT_(0, "n", cli_opts, n, "N", "a count", 0, 100),
    RHD_COMMON_OPTS(cli_opts),
    RHD_OPT_END_,
};

/* rhd_cli_given: an option set on the command line or in --config counts, its default does not
 * (even when a value equal to the default is given), and each parse starts afresh. */
static void test_cli_given(void) {
    const rhd_cli cli = {"t", "t [options]", NULL, cli_table, NULL};
    char cfg[600];
    snprintf(cfg, sizeof cfg, "%s/given.json", th_tmpdir());
    rhd_err e;
    th_ok(rhd_write_file_atomic(cfg, "{\"mode\": \"a\"}", 13, &e) == 0, "config written");
    cli_opts o = {0};
    char *argv1[] = {"t", "--n", "0", "--config", cfg, "pos", NULL};
    int n = rhd_cli_parse(&cli, 6, argv1, &o);
    th_ok(n == 1 && rhd_cli_given(&cli, "mode") && rhd_cli_given(&cli, "n") && !rhd_cli_given(&cli, "flag") &&
              o.mode == 0 && o.n == 0,
          "given: mode (config, = its default) and n (command line, = its default); not flag");
    char *argv2[] = {"t", "--no-flag", NULL};
    memset(&o, 0, sizeof o);
    rhd_cli_parse(&cli, 2, argv2, &o);
    th_ok(rhd_cli_given(&cli, "flag") && !rhd_cli_given(&cli, "mode") && !rhd_cli_given(&cli, "n"),
          "a second parse forgets the first; --no-flag counts as given");
}

static void test_atomic(void) {
    char path[600], tmp[620];
    snprintf(path, sizeof path, "%s/out.bin", th_tmpdir());
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    rhd_err e;
    rhd_atomic a;
    th_ok(rhd_atomic_open(&a, path, &e) == 0 && access(tmp, F_OK) == 0 && access(path, F_OK) != 0,
          "atomic open writes to <path>.tmp, not <path>");
    fputs("hello", a.f);
    rhd_atomic_abort(&a);
    th_ok(access(tmp, F_OK) != 0 && access(path, F_OK) != 0, "abort removes the temp file and leaves no output");
    th_ok(rhd_write_file_atomic(path, "abc", 3, &e) == 0 && access(tmp, F_OK) != 0, "commit renames over the path");
    char *data;
    size_t n;
    th_ok(rhd_read_file(path, &data, &n, &e) == 0 && n == 3 && memcmp(data, "abc", 3) == 0, "read back");
    free(data);
    th_ok(rhd_write_file_atomic("/nonexistent-dir/x", "a", 1, &e) != 0 && strstr(e.msg, "/nonexistent-dir/x.tmp"),
          "unwritable output names the file: %s", e.msg);
}

static void test_params(void) {
    rhd_err e;
    rhd_ctx *ctx = rhd_ctx_open("cpu", &e);
    rhd_params p;
    rhd_params_init(&p);
    int a = rhd_params_add(&p, "sigma_net.0.weight", 2, (int64_t[]){128, 40});
    int b = rhd_params_add(&p, "sigma_net.0.bias", 1, (int64_t[]){128});
    rhd_params_alloc(&p, ctx, 1, 1);
    th_ok(rhd_params_count(&p) == 128 * 40 + 128 && p.info[b].offset % 64 == 0 &&
              rhd_param(&p, b) - rhd_param(&p, a) >= 128 * 40 && rhd_params_find(&p, "sigma_net.0.bias") == b &&
              rhd_params_find(&p, "nope") == -1 && p.grad && p.m && p.v,
          "parameter table: one buffer each for data/grad/m/v, names -> offsets");
    rhd_params_free(&p);
    rhd_arena ar;
    rhd_arena_init(&ar, ctx, 4096);
    float *x = rhd_arena_floats(&ar, 10);
    size_t mk = rhd_arena_mark(&ar);
    float *y = rhd_arena_floats(&ar, 10);
    rhd_arena_release(&ar, mk);
    float *z = rhd_arena_floats(&ar, 10);
    th_ok(((uintptr_t)x & 255) == 0 && y == z && y > x, "arena: aligned slices, mark/release reuse");
    rhd_arena_free(&ar);
    th_ok(rhd_ctx_open("gpu", &e) == NULL && strstr(e.msg, "expected cpu, cuda, cuda:N or auto"), "bad --device: %s", e.msg);
#ifndef RHD_CUDA
    th_ok(rhd_ctx_open("cuda", &e) == NULL && strstr(e.msg, "rebuild with make CUDA=1"), "CPU build asked for cuda: %s", e.msg);
#else
    th_skip("CUDA build: the no-CUDA message is not reachable");
#endif
    rhd_ctx_close(ctx);
}

/* rhd_err_prefix keeps prefix + ": " + message, truncated to the buffer, whatever their lengths (a
 * prefix filling the whole message once wrote a byte past its scratch: SAN=1 catches that) and
 * rhd_text_where's line and column. */
static void test_err_prefix(void) {
    rhd_err e;
    rhd_errf(&e, "inner");
    rhd_err_prefix(&e, "%s", "outer");
    th_ok(!strcmp(e.msg, "outer: inner"), "prefix: '%s'", e.msg);
    char longp[1500];
    memset(longp, 'p', sizeof longp - 1), longp[sizeof longp - 1] = 0;
    memset(e.msg, 'm', sizeof e.msg - 1), e.msg[sizeof e.msg - 1] = 0;
    rhd_err_prefix(&e, "%s", longp);
    th_ok(strlen(e.msg) == sizeof e.msg - 1 && e.msg[0] == 'p', "a prefix longer than the message buffer: truncated (%zu)",
          strlen(e.msg));
    char w[64];
    const char *t = "{\n  \"a\": x}";
    rhd_text_where(t, strlen(t), t + 9, w, sizeof w);
    th_ok(!strcmp(w, "line 2, column 8"), "rhd_text_where: '%s'", w);
    rhd_text_where(t, strlen(t), NULL, w, sizeof w);
    th_ok(!strcmp(w, "the end"), "rhd_text_where without a position: '%s'", w);
}

int main(void) {
    test_err_prefix();
    test_philox_kat();
    test_rng_stats();
    test_half();
    test_parse();
    test_cli_given();
    test_atomic();
    test_params();
    return th_done();
}
