/* tests/kernels/test_act.c: kernels/act (SiLU, ReLU, softplus, sigmoid, trunc_exp and the identity):
 * finite differences of the CPU reference, PyTorch (tests/ref/ref_dense.py, float64 autograd) on
 * fresh random inputs spanning the softplus threshold and the trunc_exp clamp, CUDA vs CPU. */
#include "refcheck.h"
#include "common/backend.h"
#include "kernels/act.h"

enum { N_REF = 4099, N_FD = 257 };

struct fd_ctx {
    rhd_ctx *ctx;
    rhd_act a;
    const float *x, *dy;
    float *y;
    long n;
};

static double act_loss(void *p) {
    struct fd_ctx *f = p;
    rhd_act_forward(f->ctx, f->y, f->x, f->n, f->a);
    double s = 0;
    for (long i = 0; i < f->n; i++) s += (double)f->y[i] * f->dy[i];
    return s;
}

/* Inputs in [-6, 6], away from relu's kink at 0 by more than the step. Beyond that range fp32
 * cannot resolve a step of sigmoid near 1, and the trunc_exp backward is deliberately not the
 * derivative beyond its clamp; the PyTorch comparison covers the wide range. */
static float *fd_inputs(long n) {
    float *x = th_randn(n, 2.0f);
    for (long i = 0; i < n; i++) {
        if (fabsf(x[i]) < 0.05f) x[i] = x[i] < 0 ? -0.05f : 0.05f;
        if (fabsf(x[i]) > 6.0f) x[i] = x[i] < 0 ? -6.0f : 6.0f;
    }
    return x;
}

static void test_names(void) {
    int ok = 1;
    for (int a = 0; a < RHD_ACT_COUNT; a++) {
        rhd_act b;
        ok &= rhd_act_parse(rhd_act_name((rhd_act)a), &b, NULL) == 0 && b == (rhd_act)a;
    }
    rhd_err e;
    th_ok(ok && rhd_act_parse("gelu", &(rhd_act){0}, &e) == -1 && strstr(e.msg, "'gelu' is not an activation"),
          "activation names round-trip; an unknown name is an error: %s", e.msg);
}

static void test_fd(rhd_ctx *cpu, rhd_act a) {
    float *x = fd_inputs(N_FD), *dy = th_randn(N_FD, 1.0f), *y = malloc(sizeof(float) * N_FD),
          *dx = malloc(sizeof(float) * N_FD);
    rhd_act_backward(cpu, dx, dy, x, N_FD, a);
    struct fd_ctx f = {cpu, a, x, dy, y, N_FD};
    char name[64];
    snprintf(name, sizeof name, "%s dx n=%d", rhd_act_name(a), N_FD);
    th_fd_check(name, act_loss, &f, x, dx, N_FD, 64, 1e-2, 1e-2, 1e-3);
    free(x), free(dy), free(y), free(dx);
}

/* Distance in units in the last place between a float and the double it approximates. */
static double ulps(float got, double want) {
    float w = (float)want;
    double ulp = (double)nextafterf(fabsf(w), INFINITY) - fabsf(w);
    return fabs((double)got - want) / ulp;
}

/* rhd_log1p_fast and the softplus built on it against the C library in double, on a sweep of
 * floats (every 4096th bit pattern of [0, 5e8] for log1p; softplus on [-30, 20] every 1e-3). */
static void test_log1p_sweep(void) {
    double worst = 0, worst_x = 0;
    long count = 0;
    union { float f; uint32_t u; } b;
    for (uint32_t u = 0;; u += 4096) {
        b.u = u;
        if (b.f > 5e8f) break;
        double e = ulps(rhd_log1p_fast(b.f), log1p((double)b.f));
        if (e > worst) worst = e, worst_x = b.f;
        count++;
    }
    th_ok(worst <= 2.0, "log1p_fast: worst %.2f ulp over %ld floats in [0, 5e8] (at %g)", worst, count, worst_x);
    th_ok(isnan(rhd_log1p_fast(NAN)) && rhd_log1p_fast(0.f) == 0.f && rhd_log1p_fast(1e-30f) == 1e-30f,
          "log1p_fast: NaN stays NaN, exact at 0 and for tiny z");
    double wsp = 0, wsx = 0;
    for (int i = 0; i <= 50000; i++) {
        float x = -30.f + 1e-3f * (float)i;
        double want = log1p(exp((double)x));
        double e = ulps(rhd_softplus(x), want);
        if (e > wsp) wsp = e, wsx = x;
    }
    th_ok(wsp <= 3.0, "softplus: worst %.2f ulp on [-30, 20] against log1p(exp(x)) in double (at %g)", wsp, wsx);
}

int main(void) {
    rhd_ctx *cpu = rhd_ctx_open("cpu", NULL);
    test_log1p_sweep();
    rhd_ctx *gpu = rhd_cuda_available() ? rhd_ctx_open("cuda", NULL) : NULL;
    test_names();
    for (int a = 0; a < RHD_ACT_COUNT; a++)
        if (a != RHD_ACT_IDENTITY) test_fd(cpu, (rhd_act)a);

    /* PyTorch: one case directory per activation, one reference run for all of them */
    const long n = N_REF;
    const int64_t shape[1] = {n};
    char *dirs[RHD_ACT_COUNT], args[8192] = "";
    float *x[RHD_ACT_COUNT], *dy[RHD_ACT_COUNT], *y[RHD_ACT_COUNT], *dx[RHD_ACT_COUNT];
    for (int a = 0; a < RHD_ACT_COUNT; a++) {
        char sub[32];
        snprintf(sub, sizeof sub, "act%d", a);
        dirs[a] = strdup(th_subdir(sub));
        /* half wide uniform (both sides of the softplus threshold and the exp clamp), half normal */
        x[a] = th_randu(n, -25.0f, 25.0f);
        float *z = th_randn(n / 2, 2.0f);
        memcpy(x[a], z, sizeof(float) * (n / 2));
        free(z);
        dy[a] = th_randn(n, 1.0f);
        y[a] = malloc(sizeof(float) * n), dx[a] = malloc(sizeof(float) * n);
        rhd_act_forward(cpu, y[a], x[a], n, (rhd_act)a);
        rhd_act_backward(cpu, dx[a], dy[a], x[a], n, (rhd_act)a);
        th_save(dirs[a], "x", x[a], 1, shape);
        th_save(dirs[a], "dy", dy[a], 1, shape);
        char path[1100];
        snprintf(path, sizeof path, "%s/case.txt", dirs[a]);
        FILE *fp = fopen(path, "w");
        fprintf(fp, "act act=%s\n", rhd_act_name((rhd_act)a));
        fclose(fp);
        strcat(args, " "), strcat(args, dirs[a]);
    }
    int ref_ok = th_ok(th_ref("ref_dense.py", "%s", args) == 0, "PyTorch reference ran");
    for (int a = 0; a < RHD_ACT_COUNT && ref_ok; a++) {
        char name[96];
        float *ry = th_load(dirs[a], "y", n), *rdx = th_load(dirs[a], "dx", n);
        snprintf(name, sizeof name, "%s fwd cpu~torch n=%ld", rhd_act_name((rhd_act)a), n);
        if (ry) th_close(name, y[a], ry, n, 1e-12); else th_ok(0, "%s: no reference output", name);
        snprintf(name, sizeof name, "%s bwd dx cpu~torch n=%ld", rhd_act_name((rhd_act)a), n);
        if (rdx) th_close(name, dx[a], rdx, n, 1e-12); else th_ok(0, "%s: no reference output", name);
        free(ry), free(rdx);
    }

    /* CUDA against the CPU on the same inputs, in place (y over x, dx over dy) as the contract allows */
    if (!gpu) th_skip("act cpu~cuda: no CUDA device");
    for (int a = 0; a < RHD_ACT_COUNT && gpu; a++) {
        size_t bytes = sizeof(float) * n;
        float *dxd = rhd_buf_alloc(gpu, bytes), *dyd = rhd_buf_alloc(gpu, bytes), *hy = malloc(bytes), *hdx = malloc(bytes);
        rhd_buf_upload(gpu, dxd, x[a], bytes);
        rhd_act_forward(gpu, dxd, dxd, n, (rhd_act)a);
        rhd_buf_download(gpu, hy, dxd, bytes);
        rhd_buf_upload(gpu, dxd, x[a], bytes);
        rhd_buf_upload(gpu, dyd, dy[a], bytes);
        rhd_act_backward(gpu, dyd, dyd, dxd, n, (rhd_act)a);
        rhd_buf_download(gpu, hdx, dyd, bytes);
        char name[96];
        snprintf(name, sizeof name, "%s fwd cpu~cuda n=%ld", rhd_act_name((rhd_act)a), n);
        th_close(name, hy, y[a], n, 1e-12);
        snprintf(name, sizeof name, "%s bwd cpu~cuda n=%ld", rhd_act_name((rhd_act)a), n);
        th_close(name, hdx, dx[a], n, 1e-12);
        rhd_buf_free(gpu, dxd), rhd_buf_free(gpu, dyd), free(hy), free(hdx);
    }
    for (int a = 0; a < RHD_ACT_COUNT; a++) free(dirs[a]), free(x[a]), free(dy[a]), free(y[a]), free(dx[a]);
    rhd_ctx_close(gpu);
    rhd_ctx_close(cpu);
    return th_done();
}
