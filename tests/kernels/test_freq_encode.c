/* tests/kernels/test_freq_encode.c: frequency encoding (kernels/freq_encode.h).
 * (a) finite differences of the CPU backward; (b) forward and backward against PyTorch
 * (torch.cat([x, sin(2^f x), cos(2^f x) ...]) with autograd); (c) CUDA vs CPU when a device is
 * present. Shapes include the model's 24/8/3-wide inputs, odd sizes, degree 0 and degree 4. */
#include "refcheck.h"
#include "kernels/freq_encode.h"

static rhd_ctx *cpu;

typedef struct {
    int64_t N;
    int D, degree;
    float *x, *g;
} fd_case;

static double fd_loss(void *p) {
    fd_case *k = p;
    int Do = rhd_freq_encode_dim(k->D, k->degree);
    float *y = malloc(sizeof(float) * k->N * Do);
    rhd_freq_encode_forward(cpu, y, k->x, k->N, k->D, k->degree);
    double s = 0;
    for (int64_t i = 0; i < k->N * Do; i++) s += (double)y[i] * k->g[i];
    free(y);
    return s;
}

static void test_fd(int64_t N, int D, int degree) {
    int Do = rhd_freq_encode_dim(D, degree);
    fd_case k = {N, D, degree, th_randu(N * D, -3.f, 3.f), th_randn(N * Do, 1.f)};
    float *dx = malloc(sizeof(float) * N * D);
    rhd_freq_encode_backward(cpu, dx, k.g, k.x, N, D, degree);
    char name[128];
    snprintf(name, sizeof name, "freq_encode bwd fd N=%lld D=%d degree=%d", (long long)N, D, degree);
    th_fd_check(name, fd_loss, &k, k.x, dx, N * D, 50, 1e-3, 2e-3, 5e-2);
    free(k.x), free(k.g), free(dx);
}

/* The PyTorch comparisons are prepared first and run in one reference call (one torch import). */
typedef struct {
    int64_t N;
    int D, degree;
    float range;
    char dir[1024];
    float *y, *dx;
} torch_case;
static torch_case tcases[16];
static int ntc;
static char jobs[8192];

static void torch_prepare(int64_t N, int D, int degree, float range) {
    torch_case *t = &tcases[ntc++];
    int Do = rhd_freq_encode_dim(D, degree);
    float *x = th_randu(N * D, -range, range), *dy = th_randn(N * Do, 1.f);
    *t = (torch_case){N, D, degree, range, "", malloc(sizeof(float) * N * Do), malloc(sizeof(float) * N * D)};
    rhd_freq_encode_forward(cpu, t->y, x, N, D, degree);
    rhd_freq_encode_backward(cpu, t->dx, dy, x, N, D, degree);
    char sub[64];
    snprintf(sub, sizeof sub, "freq_%d", ntc);
    snprintf(t->dir, sizeof t->dir, "%s", th_subdir(sub));
    th_save(t->dir, "x", x, 2, (int64_t[]){N, D});
    th_save(t->dir, "dy", dy, 2, (int64_t[]){N, Do});
    snprintf(jobs + strlen(jobs), sizeof jobs - strlen(jobs), "%sfreq %s %d", ntc > 1 ? " + " : "", t->dir, degree);
    free(x), free(dy);
}

static void torch_check(const torch_case *t, int ref_ok) {
    int Do = rhd_freq_encode_dim(t->D, t->degree);
    float *ry = ref_ok ? th_load(t->dir, "y", t->N * Do) : NULL, *rdx = ref_ok ? th_load(t->dir, "dx", t->N * t->D) : NULL;
    char name[160];
    snprintf(name, sizeof name, "freq_encode fwd cpu~torch N=%lld D=%d degree=%d |x|<=%g", (long long)t->N, t->D,
             t->degree, t->range);
    if (ry) th_close(name, t->y, ry, t->N * Do, 1e-12);
    else th_ok(0, "%s: reference failed", name);
    snprintf(name, sizeof name, "freq_encode bwd cpu~torch N=%lld D=%d degree=%d |x|<=%g", (long long)t->N, t->D,
             t->degree, t->range);
    if (rdx) th_close(name, t->dx, rdx, t->N * t->D, 1e-12);
    else th_ok(0, "%s: reference failed", name);
    free(ry), free(rdx), free(t->y), free(t->dx);
}

static void test_cuda(int64_t N, int D, int degree) {
    char name[160];
    snprintf(name, sizeof name, "freq_encode cpu~cuda N=%lld D=%d degree=%d", (long long)N, D, degree);
    if (!rhd_cuda_available()) {
        th_skip("no CUDA device (%s)", name);
        return;
    }
    rhd_err e;
    rhd_ctx *gpu = rhd_ctx_open("cuda", &e);
    RHD_ASSERT(gpu);
    int Do = rhd_freq_encode_dim(D, degree);
    float *x = th_randu(N * D, -4.f, 4.f), *dy = th_randn(N * Do, 1.f);
    float *y = malloc(sizeof(float) * N * Do), *dx = malloc(sizeof(float) * N * D);
    float *gy = malloc(sizeof(float) * N * Do), *gdx = malloc(sizeof(float) * N * D);
    float *d_x = rhd_buf_alloc(gpu, sizeof(float) * N * D), *d_dy = rhd_buf_alloc(gpu, sizeof(float) * N * Do);
    float *d_y = rhd_buf_alloc(gpu, sizeof(float) * N * Do), *d_dx = rhd_buf_alloc(gpu, sizeof(float) * N * D);
    rhd_buf_upload(gpu, d_x, x, sizeof(float) * N * D);
    rhd_buf_upload(gpu, d_dy, dy, sizeof(float) * N * Do);
    rhd_freq_encode_forward(gpu, d_y, d_x, N, D, degree);
    rhd_freq_encode_backward(gpu, d_dx, d_dy, d_x, N, D, degree);
    rhd_buf_download(gpu, gy, d_y, sizeof(float) * N * Do);
    rhd_buf_download(gpu, gdx, d_dx, sizeof(float) * N * D);
    rhd_freq_encode_forward(cpu, y, x, N, D, degree);
    rhd_freq_encode_backward(cpu, dx, dy, x, N, D, degree);
    char n2[200];
    snprintf(n2, sizeof n2, "%s fwd", name);
    th_close(n2, gy, y, N * Do, 1e-12);
    snprintf(n2, sizeof n2, "%s bwd", name);
    th_close(n2, gdx, dx, N * D, 1e-12);
    rhd_buf_free(gpu, d_x), rhd_buf_free(gpu, d_dy), rhd_buf_free(gpu, d_y), rhd_buf_free(gpu, d_dx);
    rhd_ctx_close(gpu);
    free(x), free(dy), free(y), free(dx), free(gy), free(gdx);
}

int main(void) {
    rhd_err e;
    cpu = rhd_ctx_open("cpu", &e);
    RHD_ASSERT(cpu);
    test_fd(17, 3, 2);
    test_fd(9, 8, 3);
    test_fd(5, 1, 0);
    torch_prepare(1000, 24, 2, 1.f);
    torch_prepare(333, 8, 2, 1.f);
    torch_prepare(517, 3, 2, 1.f);
    torch_prepare(61, 5, 4, 10.f);
    torch_prepare(1, 1, 0, 2.f);
    int ref_ok = th_ref("ref_render.py", "%s", jobs) == 0;
    for (int i = 0; i < ntc; i++) torch_check(&tcases[i], ref_ok);
    test_cuda(10007, 24, 2);
    test_cuda(101, 3, 5);
    rhd_ctx_close(cpu);
    return th_done();
}
