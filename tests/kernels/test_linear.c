/* tests/kernels/test_linear.c: kernels/linear (linear layer forward/backward, strided batched
 * matmul): finite differences of the CPU reference, PyTorch (F.linear / torch.matmul in float64,
 * autograd gradients) on fresh random inputs, CUDA vs CPU. Gradients that accumulate are checked
 * as preset + gradient; outputs that are written start as NaN, so reading them would show. */
#include "refcheck.h"
#include "common/backend.h"
#include "kernels/linear.h"
#include <stdarg.h>
#include <omp.h>

/* ---- small helpers shared by the cases ---- */

#include "cases.h"

/* ---- linear ---- */

typedef struct { int N, in, out, bias, fd; } lin_case;
static const lin_case lin_cases[] = {
    {7, 5, 3, 1, 1},        /* odd and tiny */
    {33, 40, 128, 1, 1},    /* sigma_net.0 */
    {19, 263, 128, 0, 1},   /* color_net.0 (no bias) */
    {64, 128, 129, 1, 0},   /* sigma_net.2 */
    {256, 768, 768, 1, 0},  /* UNet embedding width */
    {4099, 40, 129, 1, 0},  /* a batch of samples: dW's long K is split into chunks */
};
#define N_LIN (int)(sizeof lin_cases / sizeof lin_cases[0])

typedef struct {
    lin_case c;
    float *x, *W, *b, *dy, *y, *dx, *dW, *db, *dW0, *db0;
    char *dir;
} lin_run;

struct lin_fd { rhd_ctx *ctx; const lin_run *r; float *y; };
static double lin_loss(void *p) {
    struct lin_fd *f = p;
    const lin_case *c = &f->r->c;
    rhd_linear_forward(f->ctx, f->y, f->r->x, f->r->W, f->r->b, c->N, c->in, c->out);
    double s = 0;
    for (long i = 0; i < (long)c->N * c->out; i++) s += (double)f->y[i] * f->r->dy[i];
    return s;
}

static void lin_setup(rhd_ctx *cpu, lin_run *r, int k) {
    const lin_case *c = &r->c;
    long nx = (long)c->N * c->in, nw = (long)c->out * c->in, ny = (long)c->N * c->out;
    r->x = th_randn(nx, 1.0f), r->W = th_randn(nw, 1.0f / sqrtf((float)c->in));
    r->b = c->bias ? th_randn(c->out, 0.5f) : NULL;
    r->dy = th_randn(ny, 1.0f);
    r->y = nan_array(ny), r->dx = nan_array(nx);
    r->dW0 = th_randn(nw, 1.0f), r->dW = copy_of(r->dW0, nw);
    r->db0 = th_randn(c->out, 1.0f), r->db = copy_of(r->db0, c->out);
    rhd_linear_forward(cpu, r->y, r->x, r->W, r->b, c->N, c->in, c->out);
    rhd_linear_backward(cpu, r->dx, r->dW, c->bias ? r->db : NULL, r->dy, r->x, r->W, c->N, c->in, c->out);
    char tag[32];
    snprintf(tag, sizeof tag, "lin%d", k);
    r->dir = new_case(tag, "linear bias=%d\n", c->bias);
    th_save(r->dir, "x", r->x, 2, (int64_t[]){c->N, c->in});
    th_save(r->dir, "W", r->W, 2, (int64_t[]){c->out, c->in});
    if (c->bias) th_save(r->dir, "b", r->b, 1, (int64_t[]){c->out});
    th_save(r->dir, "dy", r->dy, 2, (int64_t[]){c->N, c->out});
}

static void lin_fd_check(rhd_ctx *cpu, lin_run *r) {
    const lin_case *c = &r->c;
    long nx = (long)c->N * c->in, nw = (long)c->out * c->in, ny = (long)c->N * c->out;
    float *dx = malloc(sizeof(float) * nx), *dW = calloc(nw, sizeof(float)), *db = calloc(c->out, sizeof(float));
    rhd_linear_backward(cpu, dx, dW, c->bias ? db : NULL, r->dy, r->x, r->W, c->N, c->in, c->out);
    struct lin_fd f = {cpu, r, malloc(sizeof(float) * ny)};
    /* y is linear in each input, so a large step loses nothing and keeps rounding noise small */
    char name[96];
    snprintf(name, sizeof name, "linear dx N=%d in=%d out=%d", c->N, c->in, c->out);
    th_fd_check(name, lin_loss, &f, r->x, dx, nx, 24, 0.1, 2e-3, 1e-2);
    snprintf(name, sizeof name, "linear dW N=%d in=%d out=%d", c->N, c->in, c->out);
    th_fd_check(name, lin_loss, &f, r->W, dW, nw, 24, 0.1, 2e-3, 1e-2);
    if (c->bias) {
        snprintf(name, sizeof name, "linear db N=%d in=%d out=%d", c->N, c->in, c->out);
        th_fd_check(name, lin_loss, &f, r->b, db, c->out, 24, 0.1, 2e-3, 1e-2);
    }
    free(dx), free(dW), free(db), free(f.y);
}

static void lin_check_torch(const lin_run *r) {
    const lin_case *c = &r->c;
    long nx = (long)c->N * c->in, nw = (long)c->out * c->in, ny = (long)c->N * c->out;
    char name[128];
#define LNAME(what)                                                                                      \
    (snprintf(name, sizeof name, "linear %s cpu~torch N=%d in=%d out=%d bias=%d", what, c->N, c->in, c->out, \
              c->bias),                                                                                      \
     name)
    check_ref(LNAME("y"), r->dir, "y", r->y, NULL, ny, 1e-10);
    check_ref(LNAME("dx"), r->dir, "dx", r->dx, NULL, nx, 1e-10);
    check_ref(LNAME("dW (+=)"), r->dir, "dW", r->dW, r->dW0, nw, 1e-10);
    if (c->bias) check_ref(LNAME("db (+=)"), r->dir, "db", r->db, r->db0, c->out, 1e-10);
#undef LNAME
}

/* vs "cuda": strict fp32 (tol 1e-10); "cuda bf16": inputs rounded to bf16 (relative ~1e-3 each;
 * normalized squared error a few 1e-6; tol 1e-4) */
static void lin_check_cuda(rhd_ctx *gpu, const lin_run *r, const char *vs, double tol) {
    const lin_case *c = &r->c;
    long nx = (long)c->N * c->in, nw = (long)c->out * c->in, ny = (long)c->N * c->out;
    float *x = rhd_buf_alloc(gpu, 4 * nx), *W = rhd_buf_alloc(gpu, 4 * nw), *b = rhd_buf_alloc(gpu, 4 * c->out),
          *dy = rhd_buf_alloc(gpu, 4 * ny), *y = rhd_buf_alloc(gpu, 4 * ny), *dx = rhd_buf_alloc(gpu, 4 * nx),
          *dW = rhd_buf_alloc(gpu, 4 * nw), *db = rhd_buf_alloc(gpu, 4 * c->out);
    rhd_buf_upload(gpu, x, r->x, 4 * nx), rhd_buf_upload(gpu, W, r->W, 4 * nw), rhd_buf_upload(gpu, dy, r->dy, 4 * ny);
    if (c->bias) rhd_buf_upload(gpu, b, r->b, 4 * c->out);
    rhd_buf_upload(gpu, dW, r->dW0, 4 * nw), rhd_buf_upload(gpu, db, r->db0, 4 * c->out);
    float *nan = nan_array(nx > ny ? nx : ny);
    rhd_buf_upload(gpu, y, nan, 4 * ny), rhd_buf_upload(gpu, dx, nan, 4 * nx);
    rhd_linear_forward(gpu, y, x, W, c->bias ? b : NULL, c->N, c->in, c->out);
    rhd_linear_backward(gpu, dx, dW, c->bias ? db : NULL, dy, x, W, c->N, c->in, c->out);
    float *hy = malloc(4 * ny), *hdx = malloc(4 * nx), *hdW = malloc(4 * nw), *hdb = malloc(4 * c->out);
    rhd_buf_download(gpu, hy, y, 4 * ny), rhd_buf_download(gpu, hdx, dx, 4 * nx);
    rhd_buf_download(gpu, hdW, dW, 4 * nw), rhd_buf_download(gpu, hdb, db, 4 * c->out);
    char name[128];
#define CNAME(what)                                                                                     \
    (snprintf(name, sizeof name, "linear %s cpu~%s N=%d in=%d out=%d bias=%d", what, vs, c->N, c->in, c->out, \
              c->bias),                                                                                     \
     name)
    th_close(CNAME("y"), hy, r->y, ny, tol);
    th_close(CNAME("dx"), hdx, r->dx, nx, tol);
    th_close(CNAME("dW"), hdW, r->dW, nw, tol);
    if (c->bias) th_close(CNAME("db"), hdb, r->db, c->out, tol);
#undef CNAME
    float *bufs[] = {x, W, b, dy, y, dx, dW, db};
    for (int i = 0; i < 8; i++) rhd_buf_free(gpu, bufs[i]);
    free(nan), free(hy), free(hdx), free(hdW), free(hdb);
}

/* The CPU results must not depend on the thread count (the GEMM split follows the shape only). */
static void lin_check_threads(rhd_ctx *cpu, const lin_run *r, int threads) {
    const lin_case *c = &r->c;
    long nx = (long)c->N * c->in, nw = (long)c->out * c->in, ny = (long)c->N * c->out;
    float *y = malloc(4 * ny), *dx = malloc(4 * nx), *dW = copy_of(r->dW0, nw), *db = copy_of(r->db0, c->out);
    int nt = omp_get_max_threads();
    omp_set_num_threads(threads);
    rhd_linear_forward(cpu, y, r->x, r->W, r->b, c->N, c->in, c->out);
    rhd_linear_backward(cpu, dx, dW, c->bias ? db : NULL, r->dy, r->x, r->W, c->N, c->in, c->out);
    omp_set_num_threads(nt);
    th_ok(!memcmp(y, r->y, 4 * ny) && !memcmp(dx, r->dx, 4 * nx) && !memcmp(dW, r->dW, 4 * nw) &&
              !memcmp(db, r->db, 4 * c->out),
          "linear N=%d in=%d out=%d: %d thread(s) give the same bits as %d", c->N, c->in, c->out, threads, nt);
    free(y), free(dx), free(dW), free(db);
}

/* ---- strided batched matmul ---- */

typedef struct {
    int batch, M, N, K, ta, tb;
    float alpha, beta;
    int pad; /* extra floats per row and per matrix: exercises ld > row length and strides */
} mm_case;
static const mm_case mm_cases[] = {
    {1, 5, 7, 3, 0, 0, 1.0f, 0.0f, 0},
    {3, 6, 5, 4, 1, 0, 0.5f, 1.0f, 0},
    {4, 8, 9, 16, 0, 1, 0.125f, 0.5f, 3},  /* q k^T / sqrt(d) style */
    {2, 5, 3, 7, 1, 1, 1.0f, -1.0f, 2},
    {8, 33, 64, 33, 0, 0, 1.0f, 0.0f, 5},  /* softmax(logits) v style */
};
#define N_MM (int)(sizeof mm_cases / sizeof mm_cases[0])

typedef struct {
    mm_case c;
    int ra, ca, rb, cb;          /* stored shapes of one A and one B */
    long lda, ldb, ldc, sA, sB, sC;
    float *A, *B, *C0, *C;       /* strided storage (with padding) */
    char *dir;
} mm_run;

/* dense copy (batch, rows, cols) of a strided batch */
static float *densify(const float *p, int batch, int rows, int cols, long ld, long stride) {
    float *d = malloc(sizeof(float) * batch * rows * cols);
    for (int b = 0; b < batch; b++)
        for (int r = 0; r < rows; r++)
            memcpy(d + ((long)b * rows + r) * cols, p + b * stride + r * ld, sizeof(float) * cols);
    return d;
}

static void mm_setup(rhd_ctx *cpu, mm_run *r, int k) {
    const mm_case *c = &r->c;
    r->ra = c->ta ? c->K : c->M, r->ca = c->ta ? c->M : c->K;
    r->rb = c->tb ? c->N : c->K, r->cb = c->tb ? c->K : c->N;
    r->lda = r->ca + c->pad, r->ldb = r->cb + c->pad, r->ldc = c->N + c->pad;
    r->sA = r->lda * r->ra + c->pad, r->sB = r->ldb * r->rb + c->pad, r->sC = r->ldc * c->M + c->pad;
    r->A = th_randn(r->sA * c->batch, 1.0f), r->B = th_randn(r->sB * c->batch, 1.0f);
    r->C0 = c->beta == 0.0f ? nan_array(r->sC * c->batch) : th_randn(r->sC * c->batch, 1.0f);
    r->C = copy_of(r->C0, r->sC * c->batch);
    rhd_matmul_strided_batched(cpu, r->C, r->A, r->B, c->batch, c->M, c->N, c->K, c->ta, c->tb, c->alpha, c->beta,
                               r->lda, r->sA, r->ldb, r->sB, r->ldc, r->sC);
    char tag[32];
    snprintf(tag, sizeof tag, "mm%d", k);
    r->dir = new_case(tag, "matmul batch=%d M=%d N=%d K=%d ta=%d tb=%d alpha=%.9g beta=%.9g\n", c->batch, c->M, c->N,
                      c->K, c->ta, c->tb, c->alpha, c->beta);
    float *A = densify(r->A, c->batch, r->ra, r->ca, r->lda, r->sA);
    float *B = densify(r->B, c->batch, r->rb, r->cb, r->ldb, r->sB);
    float *C0 = densify(r->C0, c->batch, c->M, c->N, r->ldc, r->sC);
    th_save(r->dir, "A", A, 3, (int64_t[]){c->batch, r->ra, r->ca});
    th_save(r->dir, "B", B, 3, (int64_t[]){c->batch, r->rb, r->cb});
    th_save(r->dir, "C0", C0, 3, (int64_t[]){c->batch, c->M, c->N});
    free(A), free(B), free(C0);
}

static int padding_untouched(const mm_run *r, const float *C) {
    const mm_case *c = &r->c;
    for (int b = 0; b < c->batch; b++)
        for (long i = 0; i < r->sC; i++) {
            long row = i / r->ldc, col = i % r->ldc;
            int inside = row < c->M && col < c->N;
            float want = r->C0[b * r->sC + i];
            if (!inside && !(C[b * r->sC + i] == want || (isnan(want) && isnan(C[b * r->sC + i])))) return 0;
        }
    return 1;
}

static void mm_check(const mm_run *r, const float *C, const char *vs, const float *ref_dense, double tol) {
    const mm_case *c = &r->c;
    char name[160];
    snprintf(name, sizeof name, "matmul cpu~%s batch=%d M=%d N=%d K=%d ta=%d tb=%d alpha=%g beta=%g ld+%d", vs, c->batch,
             c->M, c->N, c->K, c->ta, c->tb, c->alpha, c->beta, c->pad);
    float *got = densify(C, c->batch, c->M, c->N, r->ldc, r->sC);
    th_close(name, got, ref_dense, (long)c->batch * c->M * c->N, tol);
    th_ok(padding_untouched(r, C), "matmul %s ld+%d: entries outside the C matrices untouched", vs, c->pad);
    free(got);
}

static void mm_check_cuda(rhd_ctx *gpu, const mm_run *r, const char *vs, double tol) {
    const mm_case *c = &r->c;
    long na = r->sA * c->batch, nb = r->sB * c->batch, nc = r->sC * c->batch;
    float *A = rhd_buf_alloc(gpu, 4 * na), *B = rhd_buf_alloc(gpu, 4 * nb), *C = rhd_buf_alloc(gpu, 4 * nc);
    rhd_buf_upload(gpu, A, r->A, 4 * na), rhd_buf_upload(gpu, B, r->B, 4 * nb), rhd_buf_upload(gpu, C, r->C0, 4 * nc);
    rhd_matmul_strided_batched(gpu, C, A, B, c->batch, c->M, c->N, c->K, c->ta, c->tb, c->alpha, c->beta, r->lda, r->sA,
                               r->ldb, r->sB, r->ldc, r->sC);
    float *h = malloc(4 * nc);
    rhd_buf_download(gpu, h, C, 4 * nc);
    float *ref = densify(r->C, c->batch, c->M, c->N, r->ldc, r->sC);
    mm_check(r, h, vs, ref, tol);
    free(ref), free(h);
    rhd_buf_free(gpu, A), rhd_buf_free(gpu, B), rhd_buf_free(gpu, C);
}

/* rhd_linear_forward_rows: a row does not depend on how many rows are computed with it (the batch
 * a sample was in): 5 rows against each row alone, and the thread count; against the GEMM path. */
static void row_invariance_check(rhd_ctx *cpu) {
    const int R = 5, in = 96, out = 200;
    float *x = th_randn((long)R * in, 1.0f), *W = th_randn((long)out * in, 0.1f), *b = th_randn(out, 0.5f);
    float *y = nan_array((long)R * out), *y1 = nan_array(out), *yg = nan_array((long)R * out);
    rhd_linear_forward_rows(cpu, y, x, W, b, R, in, out);
    int bad = 0;
    for (int r = 0; r < R; r++) {
        rhd_linear_forward_rows(cpu, y1, x + (long)r * in, W, b, 1, in, out);
        bad += memcmp(y1, y + (long)r * out, 4 * (size_t)out) != 0;
    }
    th_ok(bad == 0, "linear rows: each of %d rows alone (batch 1) equals its row of the batch bit for bit (%d differ)", R,
          bad);
    rhd_linear_forward(cpu, yg, x, W, b, R, in, out);
    double md = 0;
    for (long i = 0; i < (long)R * out; i++) md = fmax(md, fabs((double)yg[i] - y[i]));
    th_ok(md < 1e-4, "linear rows vs the GEMM path: max |diff| %.2e (< 1e-4: rounding only)", md);
    free(x), free(W), free(b), free(y), free(y1), free(yg);
}

int main(void) {
    rhd_ctx *cpu = rhd_ctx_open("cpu", NULL);
    rhd_ctx *gpu = rhd_cuda_available() ? rhd_ctx_open("cuda", NULL) : NULL;
    lin_run lr[N_LIN];
    mm_run mr[N_MM];
    for (int k = 0; k < N_LIN; k++) lr[k] = (lin_run){.c = lin_cases[k]}, lin_setup(cpu, &lr[k], k);
    for (int k = 0; k < N_MM; k++) mr[k] = (mm_run){.c = mm_cases[k]}, mm_setup(cpu, &mr[k], k);

    for (int k = 0; k < N_LIN; k++)
        if (lr[k].c.fd) lin_fd_check(cpu, &lr[k]);

    for (int k = 0; k < N_LIN; k++)
        if (!lr[k].c.fd) lin_check_threads(cpu, &lr[k], k % 2 ? 1 : 3);
    row_invariance_check(cpu);
    if (th_ok(th_ref("ref_dense.py", "%s", args_) == 0, "PyTorch reference ran")) {
        for (int k = 0; k < N_LIN; k++) lin_check_torch(&lr[k]);
        for (int k = 0; k < N_MM; k++) {
            const mm_case *c = &mr[k].c;
            float *ref = th_load(mr[k].dir, "C", (long)c->batch * c->M * c->N);
            if (ref) mm_check(&mr[k], mr[k].C, "torch", ref, 1e-10);
            else th_ok(0, "matmul case %d: no reference output", k);
            free(ref);
        }
    }

    if (!gpu) th_skip("linear and matmul cpu~cuda: no CUDA device");
    for (int k = 0; k < N_LIN && gpu; k++) lin_check_cuda(gpu, &lr[k], "cuda", 1e-10);
    for (int k = 0; k < N_MM && gpu; k++) mm_check_cuda(gpu, &mr[k], "cuda", 1e-10);
    if (gpu) { /* --bf16: every product through rhd_cuda_gemm's bf16 path */
        rhd_ctx_set_bf16(gpu, 1);
        for (int k = 0; k < N_LIN; k++) lin_check_cuda(gpu, &lr[k], "cuda bf16", 1e-4);
        for (int k = 0; k < N_MM; k++) mm_check_cuda(gpu, &mr[k], "cuda bf16", 1e-4);
        rhd_ctx_set_bf16(gpu, 0);
    }

    for (int k = 0; k < N_LIN; k++) {
        lin_run *r = &lr[k];
        free(r->x), free(r->W), free(r->b), free(r->dy), free(r->y), free(r->dx), free(r->dW), free(r->db);
        free(r->dW0), free(r->db0), free(r->dir);
    }
    for (int k = 0; k < N_MM; k++) free(mr[k].A), free(mr[k].B), free(mr[k].C0), free(mr[k].C), free(mr[k].dir);
    rhd_ctx_close(gpu);
    rhd_ctx_close(cpu);
    return th_done();
}
