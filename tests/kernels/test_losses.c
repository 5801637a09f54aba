/* tests/kernels/test_losses.c: fitting losses (kernels/losses.h).
 * (a) finite differences of each gradient on the CPU reference (MSE, the triplane L1 and TV, the
 * single-plane TV, with and without the clamp); (b) loss values and gradients against PyTorch in
 * float64 (F.mse_loss; the sum of per-plane means of |clamp(T)|; the original's TV with its
 * scaling and the inner 1e-2), including the accumulation into an existing gradient, texels at
 * exactly +-1 and beyond, and planes with one row or column; (c) CUDA vs CPU when a device is
 * present. */
#include "refcheck.h"
#include "kernels/losses.h"

static rhd_ctx *cpu;

/* --- (a) finite differences ------------------------------------------------------------------ */
enum { L_MSE, L_TL1, L_TTV, L_TV };
static const char *lname[] = {"mse", "triplane_l1", "triplane_tv", "tv"};

typedef struct {
    int kind, C, H, W, clamp;
    float *x, *y;
} fd_case;

static double fd_loss(void *p) {
    fd_case *k = p;
    switch (k->kind) {
    case L_MSE: return rhd_loss_mse(cpu, NULL, k->x, k->y, (int64_t)k->C * k->H * k->W, 1.f);
    case L_TL1: return rhd_loss_triplane_l1(cpu, NULL, k->x, k->C, k->H, 1.f, k->clamp);
    case L_TTV: return rhd_loss_triplane_tv(cpu, NULL, k->x, k->C, k->H, 1.f, k->clamp);
    default: return rhd_loss_tv(cpu, NULL, k->x, k->C, k->H, k->W, 1.f, k->clamp);
    }
}

/* Values away (by 2h) from the kinks: 0 for |x|, +-1 for the clamp. */
static void away_from_kinks(float *x, int64_t n, float h) {
    for (int64_t i = 0; i < n; i++) {
        if (fabsf(x[i]) < 2 * h) x[i] = x[i] < 0 ? -3 * h : 3 * h;
        if (fabsf(fabsf(x[i]) - 1.f) < 2 * h) x[i] = x[i] > 0 ? 1.f + 3 * h : -1.f - 3 * h;
    }
}

static void test_fd(int kind, int C, int H, int W, int clamp) {
    const float h = 1e-2f;
    int64_t n = (kind == L_TL1 || kind == L_TTV ? 3LL : 1LL) * C * H * W;
    fd_case k = {kind, C, H, W, clamp, th_randn(n, 0.8f), th_randn(n, 0.8f)};
    away_from_kinks(k.x, n, h);
    float *dx = calloc(n, sizeof(float));
    switch (kind) {
    case L_MSE: rhd_loss_mse(cpu, dx, k.x, k.y, n, 1.f); break;
    case L_TL1: rhd_loss_triplane_l1(cpu, dx, k.x, C, H, 1.f, clamp); break;
    case L_TTV: rhd_loss_triplane_tv(cpu, dx, k.x, C, H, 1.f, clamp); break;
    default: rhd_loss_tv(cpu, dx, k.x, C, H, W, 1.f, clamp); break;
    }
    char name[128];
    snprintf(name, sizeof name, "loss %s bwd fd C=%d H=%d W=%d clamp=%d", lname[kind], C, H, W, clamp);
    /* the losses are piecewise quadratic or linear: h only meets rounding */
    th_fd_check(name, fd_loss, &k, k.x, dx, n, 60, h, 2e-3, 1e-3 / n);
    free(k.x), free(k.y), free(dx);
}

/* --- (b) PyTorch ----------------------------------------------------------------------------- */
typedef struct {
    int64_t n;
    int C, R, XC, XH, XW, clamp;
    float s_mse, s_l1, s_tv;
    char dir[1024];
    double loss[4];
    float *g[4]; /* mse_dx, tl1_grad, ttv_grad, tv_grad */
} torch_case;
static torch_case tcases[16];
static int ntc;
static char jobs[8192];

static void torch_prepare(int64_t n, int C, int R, int XC, int XH, int XW, int clamp, float s_mse, float s_l1,
                          float s_tv) {
    torch_case *t = &tcases[ntc++];
    *t = (torch_case){n, C, R, XC, XH, XW, clamp, s_mse, s_l1, s_tv};
    int64_t np = 3LL * C * R * R, nx = (int64_t)XC * XH * XW;
    float *x = th_randu(n, 0.f, 1.f), *y = th_randu(n, 0.f, 1.f);
    float *planes = th_randn(np, clamp ? 0.9f : 0.5f), *X = th_randn(nx, clamp ? 0.9f : 0.5f);
    if (clamp)
        for (int64_t i = 0; i < np; i += 5) planes[i] = (i / 5) % 3 == 0 ? 1.f : (i / 5) % 3 == 1 ? -1.f : planes[i];
    planes[np / 2] = 0.f; /* |x| at 0: gradient sign(0) = 0 */
    float *g0 = th_randn(np, 1e-3f), *gX0 = th_randn(nx, 1e-3f);
    t->g[0] = malloc(sizeof(float) * n);
    t->g[1] = malloc(sizeof(float) * np), t->g[2] = malloc(sizeof(float) * np), t->g[3] = malloc(sizeof(float) * nx);
    memcpy(t->g[1], g0, sizeof(float) * np), memcpy(t->g[2], g0, sizeof(float) * np);
    memcpy(t->g[3], gX0, sizeof(float) * nx);
    t->loss[0] = rhd_loss_mse(cpu, t->g[0], x, y, n, s_mse);
    t->loss[1] = rhd_loss_triplane_l1(cpu, t->g[1], planes, C, R, s_l1, clamp);
    t->loss[2] = rhd_loss_triplane_tv(cpu, t->g[2], planes, C, R, s_tv, clamp);
    t->loss[3] = rhd_loss_tv(cpu, t->g[3], X, XC, XH, XW, s_tv, clamp);
    char sub[64];
    snprintf(sub, sizeof sub, "losses_%d", ntc);
    snprintf(t->dir, sizeof t->dir, "%s", th_subdir(sub));
    th_save(t->dir, "x", x, 1, (int64_t[]){n});
    th_save(t->dir, "y", y, 1, (int64_t[]){n});
    th_save(t->dir, "planes", planes, 4, (int64_t[]){3, C, R, R});
    th_save(t->dir, "g0", g0, 4, (int64_t[]){3, C, R, R});
    th_save(t->dir, "X", X, 3, (int64_t[]){XC, XH, XW});
    th_save(t->dir, "gX0", gX0, 3, (int64_t[]){XC, XH, XW});
    snprintf(jobs + strlen(jobs), sizeof jobs - strlen(jobs), "%slosses %s %d %.9g %.9g %.9g", ntc > 1 ? " + " : "",
             t->dir, clamp, s_mse, s_l1, s_tv);
    free(x), free(y), free(planes), free(X), free(g0), free(gX0);
}

static void torch_check(torch_case *t, int ref_ok) {
    static const char *lnames[] = {"mse", "tl1", "ttv", "tv"}, *gnames[] = {"mse_dx", "tl1_grad", "ttv_grad", "tv_grad"};
    int64_t np = 3LL * t->C * t->R * t->R, ng[4] = {t->n, np, np, (int64_t)t->XC * t->XH * t->XW};
    char what[160], name[256];
    snprintf(what, sizeof what, "n=%lld planes=[3,%d,%d,%d] X=[%d,%d,%d] clamp=%d", (long long)t->n, t->C, t->R, t->R,
             t->XC, t->XH, t->XW, t->clamp);
    for (int k = 0; k < 4; k++) {
        float *rl = ref_ok ? th_load(t->dir, lnames[k], 2) : NULL, *rg = ref_ok ? th_load(t->dir, gnames[k], ng[k]) : NULL;
        if (rl) { /* the float64 reference comes as hi + lo */
            double ref = (double)rl[0] + rl[1], rel = fabs(t->loss[k] - ref) / (fabs(ref) + 1e-300);
            th_ok(rel <= 1e-9 || (ref == 0 && t->loss[k] == 0), "loss %s value cpu~torch %s: %.12g vs %.12g (rel err %.2e)",
                  lnames[k], what, t->loss[k], ref, rel);
        } else {
            th_ok(0, "loss %s value cpu~torch %s: reference failed", lnames[k], what);
        }
        snprintf(name, sizeof name, "loss %s grad cpu~torch %s (%s)", lnames[k], what, k ? "+=" : "=");
        if (rg) th_close(name, t->g[k], rg, ng[k], 1e-11);
        else th_ok(0, "%s: reference failed", name);
        free(rl), free(rg), free(t->g[k]);
    }
}

/* --- (c) CUDA -------------------------------------------------------------------------------- */
static void test_cuda(int64_t n, int C, int R, int clamp) {
    char name[160];
    snprintf(name, sizeof name, "losses cpu~cuda n=%lld planes=[3,%d,%d,%d] clamp=%d", (long long)n, C, R, R, clamp);
    if (!rhd_cuda_available()) {
        th_skip("no CUDA device (%s)", name);
        return;
    }
    rhd_err e;
    rhd_ctx *gpu = rhd_ctx_open("cuda", &e);
    RHD_ASSERT(gpu);
    int64_t np = 3LL * C * R * R;
    float *x = th_randu(n, 0.f, 1.f), *y = th_randu(n, 0.f, 1.f), *planes = th_randn(np, 0.9f);
    float *gc = calloc(n + 2 * np, sizeof(float)), *gg = malloc(sizeof(float) * (n + 2 * np));
    float *d_x = rhd_buf_alloc(gpu, sizeof(float) * n), *d_y = rhd_buf_alloc(gpu, sizeof(float) * n);
    float *d_p = rhd_buf_alloc(gpu, sizeof(float) * np), *d_g = rhd_buf_alloc(gpu, sizeof(float) * (n + 2 * np));
    rhd_buf_upload(gpu, d_x, x, sizeof(float) * n), rhd_buf_upload(gpu, d_y, y, sizeof(float) * n);
    rhd_buf_upload(gpu, d_p, planes, sizeof(float) * np);
    rhd_buf_zero(gpu, d_g, sizeof(float) * (n + 2 * np));
    double lc[3], lg[3];
    lc[0] = rhd_loss_mse(cpu, gc, x, y, n, 1.f);
    lc[1] = rhd_loss_triplane_l1(cpu, gc + n, planes, C, R, 1e-3f, clamp);
    lc[2] = rhd_loss_triplane_tv(cpu, gc + n + np, planes, C, R, 0.5f, clamp);
    lg[0] = rhd_loss_mse(gpu, d_g, d_x, d_y, n, 1.f);
    lg[1] = rhd_loss_triplane_l1(gpu, d_g + n, d_p, C, R, 1e-3f, clamp);
    lg[2] = rhd_loss_triplane_tv(gpu, d_g + n + np, d_p, C, R, 0.5f, clamp);
    rhd_buf_download(gpu, gg, d_g, sizeof(float) * (n + 2 * np));
    int ok = 1;
    for (int k = 0; k < 3; k++) ok &= fabs(lc[k] - lg[k]) <= 1e-9 * fabs(lc[k]);
    th_ok(ok, "%s: loss values mse %.9g/%.9g l1 %.9g/%.9g tv %.9g/%.9g", name, lc[0], lg[0], lc[1], lg[1], lc[2], lg[2]);
    char n2[200];
    snprintf(n2, sizeof n2, "%s grads", name);
    th_close(n2, gg, gc, n + 2 * np, 1e-12);
    rhd_buf_free(gpu, d_x), rhd_buf_free(gpu, d_y), rhd_buf_free(gpu, d_p), rhd_buf_free(gpu, d_g);
    rhd_ctx_close(gpu);
    free(x), free(y), free(planes), free(gc), free(gg);
}

int main(void) {
    rhd_err e;
    cpu = rhd_ctx_open("cpu", &e);
    RHD_ASSERT(cpu);
    test_fd(L_MSE, 3, 11, 7, 0);
    test_fd(L_TL1, 2, 5, 5, 0);
    test_fd(L_TL1, 3, 4, 4, 1);
    test_fd(L_TTV, 2, 6, 6, 0);
    test_fd(L_TTV, 3, 5, 5, 1);
    test_fd(L_TV, 3, 5, 7, 1);
    test_fd(L_TV, 1, 1, 9, 0);
    torch_prepare(8192 * 3, 4, 9, 3, 5, 7, 1, 1.f, 1e-4f, 0.02f);
    torch_prepare(1001, 32, 33, 32, 2, 17, 0, 2.f, 1.f, 1.f);
    torch_prepare(1, 1, 1, 1, 1, 5, 1, 1.f, 1e-6f, 2e-4f);
    torch_prepare(77, 5, 64, 2, 9, 1, 1, 0.5f, 3.f, 7.f);
    int ref_ok = th_ref("ref_render.py", "%s", jobs) == 0;
    for (int i = 0; i < ntc; i++) torch_check(&tcases[i], ref_ok);
    test_cuda(8192 * 3, 32, 65, 1);
    test_cuda(7, 3, 2, 0);
    rhd_ctx_close(cpu);
    return th_done();
}
