/* tests/kernels/test_pool.c: kernels/pool (2-D max pooling), forward with indices and backward.
 * Per shape (odd sizes, one-pixel planes, AlexNet's k3 s2, VGG's k2 s2, padding, overlapping
 * stride-1 windows, an all-negative padded map): (a) finite differences of the CPU reference
 * (inputs are a random permutation of well-separated values, so no step moves an argmax);
 * (b) y, the indices and dx against torch.nn.MaxPool2d(return_indices=True) + autograd in float32
 * (tests/ref/ref_pool.py), where max pooling is exact and the gradient sums run in the same order,
 * so the tolerance is 0; inputs with many ties check torch's first-maximum rule; (c) the backward
 * accumulates (+=) onto what dx holds; (d) 1 and 3 threads give the same bits; (e) CUDA against
 * the CPU, bit for bit, when a device is present. */
#include "refbatch.h"
#include "kernels/pool.h"
#include <omp.h>

typedef struct {
    int N, C, H, W, k, s, p;
    int ties;    /* inputs from {0, 1, 2}: many equal values in a window */
    float shift; /* added to every input (negative: padding must not win) */
} pcase;

static rhd_ctx *cpu, *gpu;

static int oh(const pcase *c) { return rhd_maxpool2d_out(c->H, c->k, c->s, c->p); }
static int ow(const pcase *c) { return rhd_maxpool2d_out(c->W, c->k, c->s, c->p); }
static long nx_of(const pcase *c) { return (long)c->N * c->C * c->H * c->W; }
static long ny_of(const pcase *c) { return (long)c->N * c->C * oh(c) * ow(c); }

/* n inputs: a random permutation of 0.01 * (i - n/2) (distinct, spaced), or ties from {0,1,2} */
static float *make_input(const pcase *c) {
    long n = nx_of(c);
    float *u = th_randu(n, 0, 1), *x = malloc(sizeof(float) * n);
    if (c->ties) {
        for (long i = 0; i < n; i++) x[i] = floorf(u[i] * 3.0f) + c->shift;
    } else {
        for (long i = 0; i < n; i++) x[i] = 0.01f * (float)(i - n / 2);
        for (long i = n - 1; i > 0; i--) { /* Fisher-Yates */
            long j = (long)(u[i] * (float)(i + 1));
            if (j > i) j = i;
            float t = x[i];
            x[i] = x[j], x[j] = t;
        }
        for (long i = 0; i < n; i++) x[i] += c->shift;
    }
    free(u);
    return x;
}

typedef struct {
    const pcase *c;
    float *x, *w, *y;
} fd_state;

static double fd_loss(void *p) {
    fd_state *st = p;
    const pcase *c = st->c;
    rhd_maxpool2d_forward(cpu, st->y, NULL, st->x, c->N, c->C, c->H, c->W, c->k, c->s, c->p);
    double a = 0;
    for (long i = 0; i < ny_of(c); i++) a += (double)st->y[i] * st->w[i];
    return a;
}

static void test_case(pcase c) {
    char shp[160], name[240];
    snprintf(shp, sizeof shp, "[%d,%d,%d,%d] k=%d s=%d p=%d%s%s", c.N, c.C, c.H, c.W, c.k, c.s, c.p,
             c.ties ? " ties" : "", c.shift < 0 ? " negative" : "");
    long nx = nx_of(&c), ny = ny_of(&c);
    float *x = make_input(&c), *dy = th_randn(ny, 1);
    float *y = malloc(sizeof(float) * ny), *dx = calloc(nx, sizeof(float)), *idxf = malloc(sizeof(float) * ny);
    int32_t *idx = malloc(sizeof(int32_t) * ny);
    rhd_maxpool2d_forward(cpu, y, idx, x, c.N, c.C, c.H, c.W, c.k, c.s, c.p);
    rhd_maxpool2d_backward(cpu, dx, dy, idx, c.N, c.C, c.H, c.W, c.k, c.s, c.p);
    for (long i = 0; i < ny; i++) idxf[i] = (float)idx[i];

    /* the forward without indices writes the same y */
    float *y2 = malloc(sizeof(float) * ny);
    rhd_maxpool2d_forward(cpu, y2, NULL, x, c.N, c.C, c.H, c.W, c.k, c.s, c.p);
    snprintf(name, sizeof name, "maxpool y without idx = y with idx %s", shp);
    th_same_bytes(name, y2, y, ny, sizeof(float));
    free(y2);

    if (!c.ties && nx <= 5000) {
        fd_state st = {&c, x, dy, malloc(sizeof(float) * ny)};
        snprintf(name, sizeof name, "maxpool fd dx %s", shp);
        th_fd_check(name, fd_loss, &st, x, dx, nx, 40, 1e-3, 1e-3, 1e-2); /* values 0.01 apart */
        free(st.y);
    }

    /* += : the backward adds onto what dx holds */
    float *pre = th_randn(nx, 1), *acc = malloc(sizeof(float) * nx), *want = malloc(sizeof(float) * nx);
    memcpy(acc, pre, sizeof(float) * nx);
    rhd_maxpool2d_backward(cpu, acc, dy, idx, c.N, c.C, c.H, c.W, c.k, c.s, c.p);
    for (long i = 0; i < nx; i++) want[i] = pre[i] + dx[i];
    snprintf(name, sizeof name, "maxpool dx accumulates (+=) %s", shp);
    th_close(name, acc, want, nx, 1e-12); /* one rounding apart where windows overlap */

    const char *dir = rb_job("maxpool", "k=%d s=%d p=%d", c.k, c.s, c.p);
    int64_t sx[4] = {c.N, c.C, c.H, c.W}, sy[4] = {c.N, c.C, oh(&c), ow(&c)};
    th_save(dir, "x", x, 4, sx);
    th_save(dir, "dy", dy, 4, sy);
    rb_expect(dir, "y", y, ny, 0, "maxpool y cpu~torch %s", shp);
    rb_expect(dir, "idx", idxf, ny, 0, "maxpool idx cpu~torch %s", shp);
    rb_expect(dir, "dx", dx, nx, 0, "maxpool dx cpu~torch %s", shp);

    if (gpu) {
        float *gx = rhd_buf_alloc(gpu, sizeof(float) * nx), *gy = rhd_buf_alloc(gpu, sizeof(float) * ny);
        float *gdy = rhd_buf_alloc(gpu, sizeof(float) * ny);
        int32_t *gi = rhd_buf_alloc(gpu, sizeof(int32_t) * ny);
        float *hy = malloc(sizeof(float) * ny), *hx = malloc(sizeof(float) * nx);
        int32_t *hi = malloc(sizeof(int32_t) * ny);
        rhd_buf_upload(gpu, gx, x, sizeof(float) * nx);
        rhd_maxpool2d_forward(gpu, gy, gi, gx, c.N, c.C, c.H, c.W, c.k, c.s, c.p);
        rhd_buf_download(gpu, hy, gy, sizeof(float) * ny);
        rhd_buf_download(gpu, hi, gi, sizeof(int32_t) * ny);
        snprintf(name, sizeof name, "maxpool y cuda~cpu %s", shp);
        th_same_bytes(name, hy, y, ny, sizeof(float));
        snprintf(name, sizeof name, "maxpool idx cuda~cpu %s", shp);
        th_same_bytes(name, hi, idx, ny, sizeof(int32_t));
        rhd_buf_upload(gpu, gx, pre, sizeof(float) * nx); /* accumulate onto the same preset */
        rhd_buf_upload(gpu, gdy, dy, sizeof(float) * ny);
        rhd_maxpool2d_backward(gpu, gx, gdy, gi, c.N, c.C, c.H, c.W, c.k, c.s, c.p);
        rhd_buf_download(gpu, hx, gx, sizeof(float) * nx);
        snprintf(name, sizeof name, "maxpool dx (+=) cuda~cpu %s", shp);
        th_same_bytes(name, hx, acc, nx, sizeof(float));
        free(hy), free(hx), free(hi);
        rhd_buf_free(gpu, gx), rhd_buf_free(gpu, gy), rhd_buf_free(gpu, gdy), rhd_buf_free(gpu, gi);
    } else th_skip("maxpool cuda~cpu %s: no CUDA device", shp);
    free(x), free(dy), free(y), free(dx), free(idx), free(idxf), free(pre), free(acc), free(want);
}

/* The CPU result does not depend on the thread count. */
static void test_threads(pcase c) {
    long nx = nx_of(&c), ny = ny_of(&c);
    float *x = make_input(&c), *dy = th_randn(ny, 1);
    float *y[2], *dx[2];
    int32_t *idx[2];
    int nt[2] = {1, 3}, saved = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        y[r] = malloc(sizeof(float) * ny), dx[r] = calloc(nx, sizeof(float)), idx[r] = malloc(sizeof(int32_t) * ny);
        omp_set_num_threads(nt[r]);
        rhd_maxpool2d_forward(cpu, y[r], idx[r], x, c.N, c.C, c.H, c.W, c.k, c.s, c.p);
        rhd_maxpool2d_backward(cpu, dx[r], dy, idx[r], c.N, c.C, c.H, c.W, c.k, c.s, c.p);
    }
    omp_set_num_threads(saved);
    th_ok(!memcmp(y[0], y[1], sizeof(float) * ny) && !memcmp(idx[0], idx[1], sizeof(int32_t) * ny) &&
              !memcmp(dx[0], dx[1], sizeof(float) * nx),
          "maxpool cpu [%d,%d,%d,%d] k=%d s=%d: 1 and 3 threads give identical bits", c.N, c.C, c.H, c.W, c.k, c.s);
    for (int r = 0; r < 2; r++) free(y[r]), free(dx[r]), free(idx[r]);
    free(x), free(dy);
}

static void test_check(void) {
    rhd_err e;
    th_ok(rhd_maxpool2d_out(55, 3, 2, 0) == 27 && rhd_maxpool2d_out(7, 2, 2, 0) == 3 &&
              rhd_maxpool2d_out(13, 3, 2, 1) == 7 && rhd_maxpool2d_out(2, 3, 2, 0) == 0,
          "maxpool output sizes (floor): 55 k3 s2 -> 27, 7 k2 s2 -> 3, 13 k3 s2 p1 -> 7, 2 k3 -> 0");
    int rc = rhd_maxpool2d_check(2, 9, 3, 2, 0, &e);
    th_ok(rc == -1 && strstr(e.msg, "expected at least 3x3"), "maxpool check refuses a 9x2 input for k3: %s",
          rc ? e.msg : "accepted");
    rc = rhd_maxpool2d_check(9, 9, 3, 2, 2, &e);
    th_ok(rc == -1 && strstr(e.msg, "padding 2, expected 0 to 1"), "maxpool check refuses padding over k/2: %s",
          rc ? e.msg : "accepted");
    th_ok(rhd_maxpool2d_check(3, 3, 3, 2, 0, &e) == 0, "maxpool check accepts 3x3 for k3 s2");
}

int main(void) {
    th_open_backends(&cpu, &gpu);
    test_check();
    pcase cases[] = {
        {1, 1, 1, 1, 1, 1, 0},
        {1, 2, 3, 3, 3, 2, 0},       /* one window */
        {2, 3, 7, 9, 3, 2, 0},       /* AlexNet's k3 s2, odd sizes */
        {1, 4, 8, 6, 2, 2, 0},       /* VGG's k2 s2 */
        {2, 3, 7, 5, 2, 2, 0},       /* VGG's, odd: the last row and column are dropped */
        {2, 2, 13, 11, 3, 2, 1},     /* padded */
        {1, 2, 13, 11, 3, 2, 1, 0, -100.0f}, /* padded, all negative: -inf padding, not 0 */
        {1, 3, 10, 15, 3, 1, 1},     /* overlapping stride 1 (each element in up to 9 windows) */
        {1, 2, 9, 8, 4, 3, 2},       /* even kernel, padding k/2 */
        {1, 2, 6, 7, 5, 1, 2},
        {1, 1, 5, 1, 3, 2, 1},       /* one-pixel-wide plane */
        {2, 16, 31, 23, 3, 2, 0},    /* AlexNet after conv1 of a 127x95 image */
        {1, 3, 9, 9, 3, 2, 1, 1},    /* ties: the first maximum wins */
        {1, 3, 8, 10, 2, 2, 0, 1},
        {1, 2, 7, 7, 3, 1, 1, 1},
        {2, 64, 55, 55, 3, 2, 0},    /* AlexNet at 224x224 */
        {2, 64, 64, 48, 2, 2, 0},    /* VGG at 64x48 */
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) test_case(cases[i]);
    test_threads(cases[n - 2]);
    test_threads(cases[n - 1]);
    rb_run("ref_pool.py");
    rhd_ctx_close(cpu);
    if (gpu) rhd_ctx_close(gpu);
    return th_done();
}
