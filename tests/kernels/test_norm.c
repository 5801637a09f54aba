/* tests/kernels/test_norm.c: kernels/norm (GroupNorm, LayerNorm): finite differences of the CPU
 * reference, PyTorch (F.group_norm / F.layer_norm in float64, autograd gradients, mean and rstd
 * from the biased variance) on fresh random inputs, CUDA vs CPU. dgamma and dbeta accumulate and
 * are checked as preset + gradient; y, mean, rstd and dx start as NaN. */
#include "refcheck.h"
#include "common/backend.h"
#include "kernels/norm.h"
#include <stdarg.h>
#include <omp.h>

static char args_[65536];

static char *new_case(const char *tag, const char *fmt, ...) {
    char *dir = strdup(th_subdir(tag)), path[1200];
    snprintf(path, sizeof path, "%s/case.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) { perror(path); exit(1); }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
    strcat(args_, " "), strcat(args_, dir);
    return dir;
}

static float *nan_array(long n) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (long i = 0; i < n; i++) p[i] = NAN;
    return p;
}
static float *copy_of(const float *src, long n) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    memcpy(p, src, sizeof(float) * n);
    return p;
}

static void check_ref(const char *what, const char *dir, const char *file, const float *got, const float *preset,
                      long n, double tol) {
    float *ref = th_load(dir, file, n);
    if (!ref) { th_ok(0, "%s: no reference output %s", what, file); return; }
    if (preset)
        for (long i = 0; i < n; i++) ref[i] += preset[i];
    th_close(what, got, ref, n, tol);
    free(ref);
}

/* One normalisation case: GroupNorm when G > 0 (x (N,C,HW)), else LayerNorm (x (N,D) with D = C). */
typedef struct {
    int N, C;
    long HW;
    int G;
    float eps, offset; /* offset: added to x (a large mean tests the variance's precision) */
    int fd;
} norm_case;

static const norm_case cases[] = {
    {2, 64, 15, 32, 1e-6f, 0, 1},       /* G=32 C=64, VAE eps, odd HW */
    {3, 12, 63, 4, 1e-5f, 0, 1},        /* G=4 C=12, UNet eps */
    {2, 12, 35, 4, 1e-6f, 0, 1},        /* G=4 C=12, VAE eps */
    {2, 6, 11, 1, 1e-5f, 0, 1},         /* one group */
    {2, 6, 11, 6, 1e-5f, 0, 1},         /* one channel per group */
    {3, 16, 1, 4, 1e-5f, 0, 1},         /* HW = 1 (groups of 4 values) */
    {2, 64, 15, 32, 1e-6f, 50.0f, 0},   /* mean 50, std 1 */
    {1, 128, 1024, 32, 1e-6f, 0, 0},    /* VAE GN(32) at 32x32 */
    {1, 192, 16 * 48, 32, 1e-5f, 0, 0}, /* UNet GN(32), 192 channels */
    {7, 64, 1, 0, 1e-5f, 0, 1},         /* LN(64) (patch tokens) */
    {5, 768, 1, 0, 1e-5f, 0, 1},        /* LN(768) (image embedding) */
    {300, 5, 1, 0, 1e-5f, 0, 1},        /* many short rows */
    {33, 768, 1, 0, 1e-6f, 20.0f, 0},   /* LN(768), offset mean */
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

typedef struct {
    norm_case c;
    long nx, nstat;
    float *x, *gamma, *beta, *dy, *y, *mean, *rstd, *dx, *dg, *db, *dg0, *db0;
    char *dir, desc[128];
} norm_run;

static int is_gn(const norm_run *r) { return r->c.G > 0; }

static void forward(rhd_ctx *ctx, const norm_run *r, float *y, float *mean, float *rstd, const float *x,
                    const float *gamma, const float *beta) {
    const norm_case *c = &r->c;
    if (is_gn(r)) rhd_groupnorm_forward(ctx, y, mean, rstd, x, gamma, beta, c->N, c->C, c->HW, c->G, c->eps);
    else rhd_layernorm_forward(ctx, y, mean, rstd, x, gamma, beta, c->N, c->C, c->eps);
}
static void backward(rhd_ctx *ctx, const norm_run *r, float *dx, float *dg, float *db, const float *dy, const float *x,
                     const float *mean, const float *rstd, const float *gamma) {
    const norm_case *c = &r->c;
    if (is_gn(r)) rhd_groupnorm_backward(ctx, dx, dg, db, dy, x, mean, rstd, gamma, c->N, c->C, c->HW, c->G);
    else rhd_layernorm_backward(ctx, dx, dg, db, dy, x, mean, rstd, gamma, c->N, c->C);
}

static void setup(rhd_ctx *cpu, norm_run *r, int k) {
    const norm_case *c = &r->c;
    r->nx = (long)c->N * c->C * c->HW, r->nstat = is_gn(r) ? (long)c->N * c->G : c->N;
    if (is_gn(r))
        snprintf(r->desc, sizeof r->desc, "groupnorm N=%d C=%d HW=%ld G=%d eps=%g%s", c->N, c->C, c->HW, c->G, c->eps,
                 c->offset ? " mean-offset" : "");
    else
        snprintf(r->desc, sizeof r->desc, "layernorm N=%d D=%d eps=%g%s", c->N, c->C, c->eps,
                 c->offset ? " mean-offset" : "");
    r->x = th_randn(r->nx, 1.0f);
    for (long i = 0; i < r->nx; i++) r->x[i] += c->offset;
    r->gamma = th_randn(c->C, 1.0f), r->beta = th_randn(c->C, 1.0f), r->dy = th_randn(r->nx, 1.0f);
    r->y = nan_array(r->nx), r->dx = nan_array(r->nx), r->mean = nan_array(r->nstat), r->rstd = nan_array(r->nstat);
    r->dg0 = th_randn(c->C, 1.0f), r->db0 = th_randn(c->C, 1.0f);
    r->dg = copy_of(r->dg0, c->C), r->db = copy_of(r->db0, c->C);
    forward(cpu, r, r->y, r->mean, r->rstd, r->x, r->gamma, r->beta);
    backward(cpu, r, r->dx, r->dg, r->db, r->dy, r->x, r->mean, r->rstd, r->gamma);
    char tag[32];
    snprintf(tag, sizeof tag, "norm%d", k);
    if (is_gn(r)) {
        r->dir = new_case(tag, "groupnorm G=%d eps=%.9g\n", c->G, c->eps);
        th_save(r->dir, "x", r->x, 3, (int64_t[]){c->N, c->C, c->HW});
        th_save(r->dir, "dy", r->dy, 3, (int64_t[]){c->N, c->C, c->HW});
    } else {
        r->dir = new_case(tag, "layernorm eps=%.9g\n", c->eps);
        th_save(r->dir, "x", r->x, 2, (int64_t[]){c->N, c->C});
        th_save(r->dir, "dy", r->dy, 2, (int64_t[]){c->N, c->C});
    }
    th_save(r->dir, "gamma", r->gamma, 1, (int64_t[]){c->C});
    th_save(r->dir, "beta", r->beta, 1, (int64_t[]){c->C});
}

struct norm_fd { rhd_ctx *ctx; const norm_run *r; float *y; };
static double norm_loss(void *p) {
    struct norm_fd *f = p;
    forward(f->ctx, f->r, f->y, NULL, NULL, f->r->x, f->r->gamma, f->r->beta);
    double s = 0;
    for (long i = 0; i < f->r->nx; i++) s += (double)f->y[i] * f->r->dy[i];
    return s;
}

static void fd_check(rhd_ctx *cpu, norm_run *r) {
    const int C = r->c.C;
    float *dx = malloc(sizeof(float) * r->nx), *dg = calloc(C, sizeof(float)), *db = calloc(C, sizeof(float));
    backward(cpu, r, dx, dg, db, r->dy, r->x, r->mean, r->rstd, r->gamma);
    struct norm_fd f = {cpu, r, malloc(sizeof(float) * r->nx)};
    char name[200];
    /* dx: the loss is not linear in x, and each step moves every output of the group, so the
     * numeric derivative carries ~1e-4 of noise and truncation against gradients of order 1:
     * the floor 5e-2 makes that an absolute tolerance of ~5e-4 for small entries. */
    snprintf(name, sizeof name, "%s dx", r->desc);
    th_fd_check(name, norm_loss, &f, r->x, dx, r->nx, 32, 1e-2, 1e-2, 5e-2);
    /* y is linear in gamma and beta: a large step, tight tolerance */
    snprintf(name, sizeof name, "%s dgamma", r->desc);
    th_fd_check(name, norm_loss, &f, r->gamma, dg, C, 16, 0.1, 2e-3, 1e-2);
    snprintf(name, sizeof name, "%s dbeta", r->desc);
    th_fd_check(name, norm_loss, &f, r->beta, db, C, 16, 0.1, 2e-3, 1e-2);
    free(dx), free(dg), free(db), free(f.y);
}

static void check_torch(const norm_run *r) {
    char name[200];
#define TNAME(what) (snprintf(name, sizeof name, "%s %s cpu~torch", r->desc, what), name)
    check_ref(TNAME("y"), r->dir, "y", r->y, NULL, r->nx, 1e-10);
    check_ref(TNAME("mean"), r->dir, "mean", r->mean, NULL, r->nstat, 1e-10);
    check_ref(TNAME("rstd"), r->dir, "rstd", r->rstd, NULL, r->nstat, 1e-10);
    check_ref(TNAME("dx"), r->dir, "dx", r->dx, NULL, r->nx, 1e-10);
    check_ref(TNAME("dgamma (+=)"), r->dir, "dgamma", r->dg, r->dg0, r->c.C, 1e-10);
    check_ref(TNAME("dbeta (+=)"), r->dir, "dbeta", r->db, r->db0, r->c.C, 1e-10);
#undef TNAME
}

/* Without gamma and beta the result must equal the one with gamma = 1, beta = 0, bit for bit;
 * and the thread count must not change anything. */
static void check_variants(rhd_ctx *ctx, const norm_run *r, const char *backend) {
    const int C = r->c.C;
    float *one = malloc(sizeof(float) * C), *zero = calloc(C, sizeof(float));
    for (int i = 0; i < C; i++) one[i] = 1.0f;
    float *y1 = malloc(4 * r->nx), *y2 = malloc(4 * r->nx), *dx1 = malloc(4 * r->nx), *dx2 = malloc(4 * r->nx);
    float *m = malloc(4 * r->nstat), *s = malloc(4 * r->nstat);
    forward(ctx, r, y1, m, s, r->x, one, zero);
    backward(ctx, r, dx1, NULL, NULL, r->dy, r->x, m, s, one);
    forward(ctx, r, y2, m, s, r->x, NULL, NULL);
    backward(ctx, r, dx2, NULL, NULL, r->dy, r->x, m, s, NULL);
    th_ok(!memcmp(y1, y2, 4 * r->nx) && !memcmp(dx1, dx2, 4 * r->nx),
          "%s %s: no affine = gamma 1, beta 0 (forward and dx)", r->desc, backend);
    int nt = omp_get_max_threads();
    omp_set_num_threads(3);
    float *dg = copy_of(r->dg0, C), *db = copy_of(r->db0, C);
    forward(ctx, r, y1, m, s, r->x, r->gamma, r->beta);
    backward(ctx, r, dx1, dg, db, r->dy, r->x, m, s, r->gamma);
    omp_set_num_threads(nt);
    th_ok(!memcmp(y1, r->y, 4 * r->nx) && !memcmp(dx1, r->dx, 4 * r->nx) && !memcmp(dg, r->dg, 4 * C) &&
              !memcmp(db, r->db, 4 * C),
          "%s %s: 3 threads give the same bits as %d", r->desc, backend, nt);
    free(one), free(zero), free(y1), free(y2), free(dx1), free(dx2), free(m), free(s), free(dg), free(db);
}

static void check_cuda(rhd_ctx *gpu, const norm_run *r) {
    const int C = r->c.C;
    const long nx = r->nx, ns = r->nstat;
    float *x = rhd_buf_alloc(gpu, 4 * nx), *g = rhd_buf_alloc(gpu, 4 * C), *b = rhd_buf_alloc(gpu, 4 * C),
          *dy = rhd_buf_alloc(gpu, 4 * nx), *y = rhd_buf_alloc(gpu, 4 * nx), *dx = rhd_buf_alloc(gpu, 4 * nx),
          *m = rhd_buf_alloc(gpu, 4 * ns), *s = rhd_buf_alloc(gpu, 4 * ns), *dg = rhd_buf_alloc(gpu, 4 * C),
          *db = rhd_buf_alloc(gpu, 4 * C);
    rhd_buf_upload(gpu, x, r->x, 4 * nx), rhd_buf_upload(gpu, dy, r->dy, 4 * nx);
    rhd_buf_upload(gpu, g, r->gamma, 4 * C), rhd_buf_upload(gpu, b, r->beta, 4 * C);
    rhd_buf_upload(gpu, dg, r->dg0, 4 * C), rhd_buf_upload(gpu, db, r->db0, 4 * C);
    float *nan = nan_array(nx);
    rhd_buf_upload(gpu, y, nan, 4 * nx), rhd_buf_upload(gpu, dx, nan, 4 * nx);
    rhd_buf_upload(gpu, m, nan, 4 * ns), rhd_buf_upload(gpu, s, nan, 4 * ns);
    forward(gpu, r, y, m, s, x, g, b);
    backward(gpu, r, dx, dg, db, dy, x, m, s, g);
    float *h[6];
    size_t sz[6] = {4 * nx, 4 * ns, 4 * ns, 4 * nx, 4 * C, 4 * C};
    float *dev[6] = {y, m, s, dx, dg, db}, *cpu[6] = {r->y, r->mean, r->rstd, r->dx, r->dg, r->db};
    const char *what[6] = {"y", "mean", "rstd", "dx", "dgamma", "dbeta"};
    for (int i = 0; i < 6; i++) {
        h[i] = malloc(sz[i]);
        rhd_buf_download(gpu, h[i], dev[i], sz[i]);
        char name[200];
        snprintf(name, sizeof name, "%s %s cpu~cuda", r->desc, what[i]);
        th_close(name, h[i], cpu[i], (long)(sz[i] / 4), 1e-10);
        free(h[i]);
    }
    float *bufs[] = {x, g, b, dy, y, dx, m, s, dg, db};
    for (int i = 0; i < 10; i++) rhd_buf_free(gpu, bufs[i]);
    free(nan);
}

int main(void) {
    rhd_ctx *cpu = rhd_ctx_open("cpu", NULL);
    rhd_ctx *gpu = rhd_cuda_available() ? rhd_ctx_open("cuda", NULL) : NULL;
    norm_run runs[N_CASES];
    for (int k = 0; k < N_CASES; k++) runs[k] = (norm_run){.c = cases[k]}, setup(cpu, &runs[k], k);
    for (int k = 0; k < N_CASES; k++)
        if (runs[k].c.fd) fd_check(cpu, &runs[k]);
    for (int k = 0; k < N_CASES; k++)
        if (runs[k].c.fd) check_variants(cpu, &runs[k], "cpu");
    if (th_ok(th_ref("ref_dense.py", "%s", args_) == 0, "PyTorch reference ran"))
        for (int k = 0; k < N_CASES; k++) check_torch(&runs[k]);
    if (!gpu) th_skip("groupnorm and layernorm cpu~cuda: no CUDA device");
    for (int k = 0; k < N_CASES && gpu; k++) check_cuda(gpu, &runs[k]);
    for (int k = 0; k < N_CASES; k++) {
        norm_run *r = &runs[k];
        free(r->x), free(r->gamma), free(r->beta), free(r->dy), free(r->y), free(r->mean), free(r->rstd), free(r->dx);
        free(r->dg), free(r->db), free(r->dg0), free(r->db0), free(r->dir);
    }
    rhd_ctx_close(gpu);
    rhd_ctx_close(cpu);
    return th_done();
}
