/* tests/kernels/test_conv2d.c: kernels/conv2d (NCHW, any kernel/stride, per-side zero padding):
 * finite differences of the CPU reference, PyTorch (F.conv2d on F.pad(x, (l, r, t, b)) in
 * float64, autograd gradients) on fresh random inputs, CUDA vs CPU. dW and db accumulate and are
 * checked as preset + gradient; y and dx start as NaN, so reading them would show. */
#include "refcheck.h"
#include "common/backend.h"
#include "kernels/conv2d.h"
#include <stdarg.h>
#include <omp.h>

#include "cases.h"

typedef struct {
    rhd_conv2d_desc d;
    int bias, fd;
} conv_case;

/* N Cin H W | Cout KH KW | stride h w | pad t b l r */
static const conv_case cases[] = {
    {{2, 3, 5, 7, 4, 3, 3, 1, 1, 1, 1, 1, 1}, 1, 1},         /* 3x3 s1 p1, odd sizes */
    {{2, 5, 9, 8, 6, 3, 3, 2, 2, 0, 1, 0, 1}, 1, 1},         /* VAE downsampler: pad (0,1,0,1), 3x3 s2 */
    {{2, 6, 5, 3, 7, 1, 1, 1, 1, 0, 0, 0, 0}, 1, 1},         /* 1x1 (the pointwise path) */
    {{1, 4, 7, 6, 5, 1, 1, 2, 2, 1, 0, 0, 1}, 1, 1},         /* 1x1 s2 with padding (the im2col path) */
    {{1, 4, 32, 48, 8, 16, 16, 16, 16, 0, 0, 0, 0}, 0, 1},   /* 16x16 s16 patch embedding */
    {{1, 6, 16, 24, 5, 8, 8, 8, 8, 0, 0, 0, 0}, 0, 1},       /* 8x8 s8 */
    {{2, 8, 16, 16, 6, 4, 4, 4, 4, 0, 0, 0, 0}, 0, 1},       /* 4x4 s4 on 16x16 */
    {{2, 3, 11, 9, 4, 5, 3, 2, 1, 2, 1, 0, 2}, 1, 1},        /* 5x3 kernel, strides (2,1), uneven pads */
    {{1, 2, 4, 5, 3, 3, 3, 3, 2, 2, 2, 3, 1}, 1, 1},         /* stride > overlap, pad wider than the kernel reach */
    {{2, 4, 6, 7, 3, 3, 3, 1, 1, 0, 2, 1, 0}, 1, 1},         /* stride 1, uneven pads (dx as a transposed conv) */
    {{1, 3, 4, 5, 2, 3, 3, 1, 1, 3, 0, 2, 4}, 1, 1},         /* stride 1, pads >= kernel (dx by scatter) */
    {{1, 128, 32, 32, 128, 3, 3, 1, 1, 1, 1, 1, 1}, 1, 0},   /* VAE width */
    {{1, 16, 260, 250, 8, 3, 3, 1, 1, 1, 1, 1, 1}, 1, 0},    /* several im2col bands */
    {{1, 16, 1040, 256, 2, 3, 3, 2, 2, 0, 1, 0, 1}, 1, 0},   /* several bands, strided (dx by scatter) */
    {{1, 128, 32, 32, 128, 3, 3, 2, 2, 0, 1, 0, 1}, 1, 0},   /* VAE downsampler at width */
    {{2, 128, 12, 10, 256, 1, 1, 1, 1, 0, 0, 0, 0}, 1, 0},   /* 1x1 shortcut 128->256 */
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

typedef struct {
    conv_case c;
    long nx, nw, ny;
    float *x, *W, *b, *dy, *y, *dx, *dW, *db, *dW0, *db0;
    char *dir;
    char desc[160];
} conv_run;

static void describe(conv_run *r) {
    const rhd_conv2d_desc *d = &r->c.d;
    snprintf(r->desc, sizeof r->desc, "N=%d %d->%d %dx%d k%dx%d s%dx%d pad(%d,%d,%d,%d)%s", d->N, d->Cin, d->Cout, d->H,
             d->W, d->KH, d->KW, d->stride_h, d->stride_w, d->pad_t, d->pad_b, d->pad_l, d->pad_r,
             r->c.bias ? "" : " nobias");
}

struct conv_fd { rhd_ctx *ctx; const conv_run *r; float *y; };
static double conv_loss(void *p) {
    struct conv_fd *f = p;
    rhd_conv2d_forward(f->ctx, f->y, f->r->x, f->r->W, f->r->b, &f->r->c.d);
    double s = 0;
    for (long i = 0; i < f->r->ny; i++) s += (double)f->y[i] * f->r->dy[i];
    return s;
}

static void setup(rhd_ctx *cpu, conv_run *r, int k) {
    const rhd_conv2d_desc *d = &r->c.d;
    rhd_err e;
    RHD_ASSERT(rhd_conv2d_check(d, &e) == 0);
    const int OH = rhd_conv2d_out_h(d), OW = rhd_conv2d_out_w(d);
    r->nx = (long)d->N * d->Cin * d->H * d->W, r->nw = (long)d->Cout * d->Cin * d->KH * d->KW;
    r->ny = (long)d->N * d->Cout * OH * OW;
    describe(r);
    r->x = th_randn(r->nx, 1.0f), r->W = th_randn(r->nw, 1.0f / sqrtf((float)d->Cin * d->KH * d->KW));
    r->b = r->c.bias ? th_randn(d->Cout, 0.5f) : NULL;
    r->dy = th_randn(r->ny, 1.0f);
    r->y = nan_array(r->ny), r->dx = nan_array(r->nx);
    r->dW0 = th_randn(r->nw, 1.0f), r->dW = copy_of(r->dW0, r->nw);
    r->db0 = th_randn(d->Cout, 1.0f), r->db = copy_of(r->db0, d->Cout);
    rhd_conv2d_forward(cpu, r->y, r->x, r->W, r->b, d);
    rhd_conv2d_backward(cpu, r->dx, r->dW, r->c.bias ? r->db : NULL, r->dy, r->x, r->W, d);
    char tag[32];
    snprintf(tag, sizeof tag, "conv%d", k);
    r->dir = new_case(tag, "conv2d sh=%d sw=%d pt=%d pb=%d pl=%d pr=%d bias=%d\n", d->stride_h, d->stride_w, d->pad_t,
                      d->pad_b, d->pad_l, d->pad_r, r->c.bias);
    th_save(r->dir, "x", r->x, 4, (int64_t[]){d->N, d->Cin, d->H, d->W});
    th_save(r->dir, "W", r->W, 4, (int64_t[]){d->Cout, d->Cin, d->KH, d->KW});
    if (r->c.bias) th_save(r->dir, "b", r->b, 1, (int64_t[]){d->Cout});
    th_save(r->dir, "dy", r->dy, 4, (int64_t[]){d->N, d->Cout, OH, OW});
}

static void fd_check(rhd_ctx *cpu, conv_run *r) {
    const rhd_conv2d_desc *d = &r->c.d;
    float *dx = malloc(sizeof(float) * r->nx), *dW = calloc(r->nw, sizeof(float)), *db = calloc(d->Cout, sizeof(float));
    rhd_conv2d_backward(cpu, dx, dW, r->c.bias ? db : NULL, r->dy, r->x, r->W, d);
    struct conv_fd f = {cpu, r, malloc(sizeof(float) * r->ny)};
    /* y is linear in each input, so a large step loses nothing and keeps rounding noise small */
    char name[256];
    snprintf(name, sizeof name, "conv2d dx %s", r->desc);
    th_fd_check(name, conv_loss, &f, r->x, dx, r->nx, 24, 0.1, 2e-3, 1e-2);
    snprintf(name, sizeof name, "conv2d dW %s", r->desc);
    th_fd_check(name, conv_loss, &f, r->W, dW, r->nw, 24, 0.1, 2e-3, 1e-2);
    if (r->c.bias) {
        snprintf(name, sizeof name, "conv2d db %s", r->desc);
        th_fd_check(name, conv_loss, &f, r->b, db, d->Cout, 24, 0.1, 2e-3, 1e-2);
    }
    free(dx), free(dW), free(db), free(f.y);
}

static void check_torch(const conv_run *r) {
    char name[256];
#define TNAME(what) (snprintf(name, sizeof name, "conv2d %s cpu~torch %s", what, r->desc), name)
    check_ref(TNAME("y"), r->dir, "y", r->y, NULL, r->ny, 1e-10);
    check_ref(TNAME("dx"), r->dir, "dx", r->dx, NULL, r->nx, 1e-10);
    check_ref(TNAME("dW (+=)"), r->dir, "dW", r->dW, r->dW0, r->nw, 1e-10);
    if (r->c.bias) check_ref(TNAME("db (+=)"), r->dir, "db", r->db, r->db0, r->c.d.Cout, 1e-10);
#undef TNAME
}

/* vs: "cuda" (strict fp32, tol 1e-8) or "cuda bf16" (--bf16: inputs rounded to 8-bit mantissas,
 * relative ~1e-3 each, so a normalized squared error of a few 1e-6; tol 1e-4) */
static void check_cuda(rhd_ctx *gpu, const conv_run *r, const char *vs, double tol) {
    const rhd_conv2d_desc *d = &r->c.d;
    const int C = d->Cout;
    float *x = rhd_buf_alloc(gpu, 4 * r->nx), *W = rhd_buf_alloc(gpu, 4 * r->nw), *b = rhd_buf_alloc(gpu, 4 * C),
          *dy = rhd_buf_alloc(gpu, 4 * r->ny), *y = rhd_buf_alloc(gpu, 4 * r->ny), *dx = rhd_buf_alloc(gpu, 4 * r->nx),
          *dW = rhd_buf_alloc(gpu, 4 * r->nw), *db = rhd_buf_alloc(gpu, 4 * C);
    rhd_buf_upload(gpu, x, r->x, 4 * r->nx), rhd_buf_upload(gpu, W, r->W, 4 * r->nw);
    rhd_buf_upload(gpu, dy, r->dy, 4 * r->ny);
    if (r->c.bias) rhd_buf_upload(gpu, b, r->b, 4 * C);
    rhd_buf_upload(gpu, dW, r->dW0, 4 * r->nw), rhd_buf_upload(gpu, db, r->db0, 4 * C);
    float *nan = nan_array(r->nx > r->ny ? r->nx : r->ny);
    rhd_buf_upload(gpu, y, nan, 4 * r->ny), rhd_buf_upload(gpu, dx, nan, 4 * r->nx);
    rhd_conv2d_forward(gpu, y, x, W, r->c.bias ? b : NULL, d);
    rhd_conv2d_backward(gpu, dx, dW, r->c.bias ? db : NULL, dy, x, W, d);
    float *hy = malloc(4 * r->ny), *hdx = malloc(4 * r->nx), *hdW = malloc(4 * r->nw), *hdb = malloc(4 * C);
    rhd_buf_download(gpu, hy, y, 4 * r->ny), rhd_buf_download(gpu, hdx, dx, 4 * r->nx);
    rhd_buf_download(gpu, hdW, dW, 4 * r->nw), rhd_buf_download(gpu, hdb, db, 4 * C);
    char name[256];
#define CNAME(what) (snprintf(name, sizeof name, "conv2d %s cpu~%s %s", what, vs, r->desc), name)
    th_close(CNAME("y"), hy, r->y, r->ny, tol);
    th_close(CNAME("dx"), hdx, r->dx, r->nx, tol);
    th_close(CNAME("dW"), hdW, r->dW, r->nw, tol);
    if (r->c.bias) th_close(CNAME("db"), hdb, r->db, C, tol);
#undef CNAME
    float *bufs[] = {x, W, b, dy, y, dx, dW, db};
    for (int i = 0; i < 8; i++) rhd_buf_free(gpu, bufs[i]);
    free(nan), free(hy), free(hdx), free(hdW), free(hdb);
}

/* The CPU results must not depend on the thread count (the GEMM split follows the shape only). */
static void check_threads(rhd_ctx *cpu, const conv_run *r, int threads) {
    const rhd_conv2d_desc *d = &r->c.d;
    float *y = malloc(4 * r->ny), *dx = malloc(4 * r->nx), *dW = copy_of(r->dW0, r->nw), *db = copy_of(r->db0, d->Cout);
    int nt = omp_get_max_threads();
    omp_set_num_threads(threads);
    rhd_conv2d_forward(cpu, y, r->x, r->W, r->b, d);
    rhd_conv2d_backward(cpu, dx, dW, r->c.bias ? db : NULL, r->dy, r->x, r->W, d);
    omp_set_num_threads(nt);
    th_ok(!memcmp(y, r->y, 4 * r->ny) && !memcmp(dx, r->dx, 4 * r->nx) && !memcmp(dW, r->dW, 4 * r->nw) &&
              !memcmp(db, r->db, 4 * d->Cout),
          "conv2d %s: %d thread(s) give the same bits as %d", r->desc, threads, nt);
    free(y), free(dx), free(dW), free(db);
}

static void test_check_messages(void) {
    rhd_err e;
    rhd_conv2d_desc d = rhd_conv2d_square(1, 3, 4, 4, 8, 7, 1, 1);
    th_ok(rhd_conv2d_check(&d, &e) == -1 && strstr(e.msg, "larger than the padded input 6x6"),
          "conv2d_check: a kernel larger than the padded input is refused: %s", e.msg);
    d = rhd_conv2d_square(1, 3, 4, 4, 8, 3, 0, 1);
    th_ok(rhd_conv2d_check(&d, &e) == -1 && strstr(e.msg, "stride 0x0"), "conv2d_check: stride 0 is refused: %s", e.msg);
    d = (rhd_conv2d_desc){1, 3, 4, 4, 8, 3, 3, 2, 2, 0, 1, 0, 1};
    th_ok(rhd_conv2d_check(&d, &e) == 0 && rhd_conv2d_out_h(&d) == 2 && rhd_conv2d_out_w(&d) == 2,
          "conv2d: 4x4 with pad (0,1,0,1), 3x3 s2 gives 2x2");
}

int main(void) {
    rhd_ctx *cpu = rhd_ctx_open("cpu", NULL);
    rhd_ctx *gpu = rhd_cuda_available() ? rhd_ctx_open("cuda", NULL) : NULL;
    test_check_messages();
    conv_run runs[N_CASES];
    for (int k = 0; k < N_CASES; k++) runs[k] = (conv_run){.c = cases[k]}, setup(cpu, &runs[k], k);
    for (int k = 0; k < N_CASES; k++)
        if (runs[k].c.fd) fd_check(cpu, &runs[k]);
    for (int k = 0; k < N_CASES; k++)
        if (!runs[k].c.fd) check_threads(cpu, &runs[k], k % 2 ? 1 : 3);
    if (th_ok(th_ref("ref_dense.py", "%s", args_) == 0, "PyTorch reference ran"))
        for (int k = 0; k < N_CASES; k++) check_torch(&runs[k]);
    if (!gpu) th_skip("conv2d cpu~cuda: no CUDA device");
    for (int k = 0; k < N_CASES && gpu; k++) check_cuda(gpu, &runs[k], "cuda", 1e-8);
    if (gpu) {
        rhd_ctx_set_bf16(gpu, 1);
        for (int k = 0; k < N_CASES; k++) check_cuda(gpu, &runs[k], "cuda bf16", 1e-4);
        rhd_ctx_set_bf16(gpu, 0);
    }
    for (int k = 0; k < N_CASES; k++) {
        conv_run *r = &runs[k];
        free(r->x), free(r->W), free(r->b), free(r->dy), free(r->y), free(r->dx), free(r->dW), free(r->db);
        free(r->dW0), free(r->db0), free(r->dir);
    }
    rhd_ctx_close(gpu);
    rhd_ctx_close(cpu);
    return th_done();
}
