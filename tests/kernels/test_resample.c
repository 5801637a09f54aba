/* tests/kernels/test_resample.c: kernels/resample: nearest x2, 2x2 average pooling, bilinear
 * resize (align_corners 0 and 1), bicubic resize (a = -0.75, align_corners 0 and 1, border
 * replicate) and pixel shuffle, forward and backward. Per op and shape (odd sizes, one-pixel
 * axes, up and down): (a) finite differences of the CPU reference, (b) against PyTorch float64
 * (F.interpolate, F.avg_pool2d, F.pixel_shuffle; tests/ref/ref_attn.py), (c) CUDA against the
 * CPU when a device is present. */
#include "refbatch.h"
#include "kernels/resample.h"
#include <omp.h>

typedef enum { OP_NEAREST, OP_AVGPOOL, OP_BILINEAR, OP_BICUBIC, OP_PIXSHUF } op_kind;
static const char *op_names[] = {"nearest", "avgpool", "bilinear", "bicubic", "pixshuf"};

typedef struct {
    op_kind op;
    int N, C, Hi, Wi;     /* input (pixel shuffle: C is the OUTPUT channel count, x has C r^2) */
    int Ho, Wo, ac, r;    /* output size (resize), align_corners, shuffle factor */
} rcase;

static rhd_ctx *cpu, *gpu;

static long in_numel(const rcase *c) { return (long)c->N * c->C * c->Hi * c->Wi * (c->op == OP_PIXSHUF ? c->r * c->r : 1); }
static long out_numel(const rcase *c) {
    switch (c->op) {
    case OP_NEAREST: return (long)c->N * c->C * c->Hi * c->Wi * 4;
    case OP_AVGPOOL: return (long)c->N * c->C * (c->Hi / 2) * (c->Wi / 2);
    case OP_PIXSHUF: return (long)c->N * c->C * c->Hi * c->Wi * c->r * c->r;
    default: return (long)c->N * c->C * c->Ho * c->Wo;
    }
}

static void fwd(rhd_ctx *ctx, const rcase *c, float *y, const float *x) {
    switch (c->op) {
    case OP_NEAREST: rhd_upsample_nearest2x_forward(ctx, y, x, c->N, c->C, c->Hi, c->Wi); break;
    case OP_AVGPOOL: rhd_avgpool2x2_forward(ctx, y, x, c->N, c->C, c->Hi, c->Wi); break;
    case OP_BILINEAR:
        rhd_resize_forward(ctx, y, x, c->N, c->C, c->Hi, c->Wi, c->Ho, c->Wo, RHD_RESIZE_BILINEAR, c->ac);
        break;
    case OP_BICUBIC:
        rhd_resize_forward(ctx, y, x, c->N, c->C, c->Hi, c->Wi, c->Ho, c->Wo, RHD_RESIZE_BICUBIC, c->ac);
        break;
    case OP_PIXSHUF: rhd_pixel_shuffle_forward(ctx, y, x, c->N, c->C, c->Hi, c->Wi, c->r); break;
    }
}

static void bwd(rhd_ctx *ctx, const rcase *c, float *dx, const float *dy) {
    switch (c->op) {
    case OP_NEAREST: rhd_upsample_nearest2x_backward(ctx, dx, dy, c->N, c->C, c->Hi, c->Wi); break;
    case OP_AVGPOOL: rhd_avgpool2x2_backward(ctx, dx, dy, c->N, c->C, c->Hi, c->Wi); break;
    case OP_BILINEAR:
        rhd_resize_backward(ctx, dx, dy, c->N, c->C, c->Hi, c->Wi, c->Ho, c->Wo, RHD_RESIZE_BILINEAR, c->ac);
        break;
    case OP_BICUBIC:
        rhd_resize_backward(ctx, dx, dy, c->N, c->C, c->Hi, c->Wi, c->Ho, c->Wo, RHD_RESIZE_BICUBIC, c->ac);
        break;
    case OP_PIXSHUF: rhd_pixel_shuffle_backward(ctx, dx, dy, c->N, c->C, c->Hi, c->Wi, c->r); break;
    }
}

typedef struct {
    const rcase *c;
    float *x, *w, *y;
} fd_state;

static double fd_loss(void *p) {
    fd_state *s = p;
    fwd(cpu, s->c, s->y, s->x);
    long n = out_numel(s->c);
    double a = 0;
    for (long i = 0; i < n; i++) a += (double)s->y[i] * s->w[i];
    return a;
}

static void test_case(rcase c, int fd) {
    char shp[128], name[200];
    if (c.op == OP_BILINEAR || c.op == OP_BICUBIC)
        snprintf(shp, sizeof shp, "[%d,%d,%d,%d]->%dx%d ac=%d", c.N, c.C, c.Hi, c.Wi, c.Ho, c.Wo, c.ac);
    else if (c.op == OP_PIXSHUF) snprintf(shp, sizeof shp, "[%d,%d,%d,%d] r=%d", c.N, c.C * c.r * c.r, c.Hi, c.Wi, c.r);
    else snprintf(shp, sizeof shp, "[%d,%d,%d,%d]", c.N, c.C, c.Hi, c.Wi);
    const char *op = op_names[c.op];
    long nx = in_numel(&c), ny = out_numel(&c);
    float *x = th_randn(nx, 1), *dy = th_randn(ny, 1);
    float *y = malloc(sizeof(float) * ny), *dx = malloc(sizeof(float) * nx);
    fwd(cpu, &c, y, x);
    bwd(cpu, &c, dx, dy);
    if (fd) {
        fd_state s = {&c, x, dy, malloc(sizeof(float) * ny)};
        snprintf(name, sizeof name, "%s fd dx %s", op, shp);
        th_fd_check(name, fd_loss, &s, x, dx, nx, 40, 0.5, 1e-3, 1e-2); /* linear: any step */
        free(s.y);
    }
    const char *dir;
    switch (c.op) {
    case OP_BILINEAR:
    case OP_BICUBIC: dir = rb_job(op, "h=%d w=%d ac=%d", c.Ho, c.Wo, c.ac); break;
    case OP_PIXSHUF: dir = rb_job(op, "r=%d", c.r); break;
    default: dir = rb_job(op, "%s", "");
    }
    int64_t sx[4] = {c.N, c.C * (c.op == OP_PIXSHUF ? c.r * c.r : 1), c.Hi, c.Wi}, sy[4] = {c.N, c.C, 0, 0};
    switch (c.op) {
    case OP_NEAREST: sy[2] = 2 * c.Hi, sy[3] = 2 * c.Wi; break;
    case OP_AVGPOOL: sy[2] = c.Hi / 2, sy[3] = c.Wi / 2; break;
    case OP_PIXSHUF: sy[2] = (int64_t)c.Hi * c.r, sy[3] = (int64_t)c.Wi * c.r; break;
    default: sy[2] = c.Ho, sy[3] = c.Wo;
    }
    th_save(dir, "x", x, 4, sx);
    th_save(dir, "dy", dy, 4, sy);
    /* Source coordinates are float32 (as in torch's float32 kernels): against float64 torch that
     * costs up to ~1 ulp of the coordinate in the weights (nmse ~1e-11 for a 96-wide axis), and
     * torch's float32 kernels round some coordinates one ulp differently from ours. A wrong tap
     * or weight gives nmse > 1e-4. */
    rb_expect(dir, "y", y, ny, 1e-10, "%s y cpu~torch(float64) %s", op, shp);
    rb_expect(dir, "dx", dx, nx, 1e-10, "%s dx cpu~torch(float64) %s", op, shp);
    rb_expect(dir, "y32", y, ny, 1e-10, "%s y cpu~torch(float32) %s", op, shp);
    rb_expect(dir, "dx32", dx, nx, 1e-10, "%s dx cpu~torch(float32) %s", op, shp);
    if (gpu) {
        float *gx = rhd_buf_alloc(gpu, sizeof(float) * nx), *gy = rhd_buf_alloc(gpu, sizeof(float) * ny);
        rhd_buf_upload(gpu, gx, x, sizeof(float) * nx);
        fwd(gpu, &c, gy, gx);
        float *hy = malloc(sizeof(float) * ny), *hx = malloc(sizeof(float) * nx);
        rhd_buf_download(gpu, hy, gy, sizeof(float) * ny);
        snprintf(name, sizeof name, "%s y cuda~cpu %s", op, shp);
        th_close(name, hy, y, ny, 1e-10); /* fused multiply-adds on the device */
        rhd_buf_upload(gpu, gy, dy, sizeof(float) * ny);
        bwd(gpu, &c, gx, gy); /* gx still holds x: dx must overwrite every element (=) */
        rhd_buf_download(gpu, hx, gx, sizeof(float) * nx);
        snprintf(name, sizeof name, "%s dx cuda~cpu %s", op, shp);
        th_close(name, hx, dx, nx, 1e-10);
        free(hx), free(hy);
        rhd_buf_free(gpu, gx), rhd_buf_free(gpu, gy);
    } else th_skip("%s cuda~cpu %s: no CUDA device", op, shp);
    free(x), free(dy), free(y), free(dx);
}

/* The CPU result does not depend on the thread count (each plane has one owner). */
static void test_threads(rcase c) {
    long nx = in_numel(&c), ny = out_numel(&c);
    float *x = th_randn(nx, 1), *dy = th_randn(ny, 1);
    float *y[2], *dx[2];
    int nt[2] = {1, 3}, saved = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        y[r] = malloc(sizeof(float) * ny), dx[r] = malloc(sizeof(float) * nx);
        omp_set_num_threads(nt[r]);
        fwd(cpu, &c, y[r], x);
        bwd(cpu, &c, dx[r], dy);
    }
    omp_set_num_threads(saved);
    th_ok(!memcmp(y[0], y[1], sizeof(float) * ny) && !memcmp(dx[0], dx[1], sizeof(float) * nx),
          "%s cpu: 1 and 3 threads give identical bits", op_names[c.op]);
    for (int r = 0; r < 2; r++) free(y[r]), free(dx[r]);
    free(x), free(dy);
}

int main(void) {
    th_open_backends(&cpu, &gpu);
    rcase cases[] = {
        {OP_NEAREST, 1, 1, 1, 1},
        {OP_NEAREST, 2, 3, 5, 7},
        {OP_NEAREST, 1, 4, 8, 6},
        {OP_AVGPOOL, 1, 4, 2, 2},
        {OP_AVGPOOL, 2, 3, 7, 9},
        {OP_AVGPOOL, 1, 2, 8, 6},
        /* bilinear: up, down, mixed, one-pixel axes, the upsampler's x2 with align_corners */
        {OP_BILINEAR, 1, 2, 5, 7, 11, 3, 0},
        {OP_BILINEAR, 1, 2, 5, 7, 11, 3, 1},
        {OP_BILINEAR, 2, 1, 8, 8, 16, 16, 0},
        {OP_BILINEAR, 1, 3, 9, 13, 4, 6, 0},
        {OP_BILINEAR, 1, 3, 9, 13, 4, 6, 1},
        {OP_BILINEAR, 1, 2, 6, 1, 1, 4, 0},
        {OP_BILINEAR, 1, 2, 6, 1, 1, 4, 1},
        {OP_BILINEAR, 1, 3, 32, 96, 64, 192, 1},
        /* bicubic: a = -0.75, border replicate (small inputs reach past both borders) */
        {OP_BICUBIC, 1, 2, 5, 7, 17, 9, 0},
        {OP_BICUBIC, 1, 3, 6, 6, 24, 24, 0},
        {OP_BICUBIC, 2, 1, 12, 10, 5, 7, 0},
        {OP_BICUBIC, 1, 1, 2, 3, 7, 8, 0},
        {OP_BICUBIC, 1, 1, 1, 4, 3, 2, 0},
        {OP_BICUBIC, 1, 2, 5, 7, 11, 13, 1},
        {OP_BICUBIC, 1, 2, 128, 128, 512, 512, 0},
        {OP_PIXSHUF, 1, 2, 3, 4, .r = 2},
        {OP_PIXSHUF, 2, 3, 5, 2, .r = 3},
        {OP_PIXSHUF, 1, 2, 3, 3, .r = 1},
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) test_case(cases[i], in_numel(&cases[i]) < 20000);
    for (int i = 0; i < n; i++)
        if (in_numel(&cases[i]) > 1000) test_threads(cases[i]);
    rb_run("ref_attn.py");
    rhd_ctx_close(cpu);
    rhd_ctx_close(gpu);
    return th_done();
}
