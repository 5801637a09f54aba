/* tests/kernels/test_composite.c: training compositing (kernels/composite.h).
 * (a) finite differences of dsigma and drgb on the CPU reference (no early stop, so the loss is
 * smooth); (b) forward (pred, A, depth, samples used) and backward (dsigma, drgb) against a
 * straightforward PyTorch loop with autograd, on packed rays in shuffled order with gaps, counts
 * from 0 to 64, dense rays that terminate early, a coloured background, upstream dA and near/far;
 * (c) CUDA vs CPU when a device is present. */
#include "refcheck.h"
#include "kernels/composite.h"

static rhd_ctx *cpu;

typedef struct {
    int64_t n_rays, M;
    int32_t *rays;
    float *sigma, *rgb, *d0, *d1, *nears, *fars, *dpred, *dA;
} rays_in;

/* n_rays rays with counts in [0, max_count] (every 10th empty), laid out in a shuffled order with
 * gaps of 0..2 uncovered samples. Odd rays are dense (sigma up to `dense`), even ones sparse. */
static rays_in make_rays(int64_t n_rays, int max_count, float dense, float sparse, float dlo, float dhi) {
    rays_in a = {n_rays, 0};
    a.rays = malloc(sizeof(int32_t) * 2 * (n_rays ? n_rays : 1));
    float *u = th_randu(3 * n_rays + 1, 0.f, 1.f);
    int64_t *order = malloc(sizeof(int64_t) * (n_rays ? n_rays : 1));
    for (int64_t r = 0; r < n_rays; r++) order[r] = r;
    for (int64_t r = n_rays - 1; r > 0; r--) { /* Fisher-Yates */
        int64_t k = (int64_t)(u[r] * (r + 1));
        int64_t t = order[r];
        order[r] = order[k], order[k] = t;
    }
    int64_t off = 0;
    for (int64_t q = 0; q < n_rays; q++) {
        int64_t r = order[q];
        int cnt = r % 10 == 0 ? 0 : (int)(u[n_rays + r] * (max_count + 1));
        if (cnt > max_count) cnt = max_count;
        off += (int64_t)(u[2 * n_rays + r] * 3); /* gap */
        a.rays[2 * r] = (int32_t)off, a.rays[2 * r + 1] = cnt;
        off += cnt;
    }
    a.M = off + 2;
    a.sigma = th_randu(a.M, 0.f, 1.f);
    for (int64_t r = 0; r < n_rays; r++)
        for (int k = 0; k < a.rays[2 * r + 1]; k++) a.sigma[a.rays[2 * r] + k] *= r % 2 ? dense : sparse;
    a.rgb = th_randu(3 * a.M, 0.f, 1.f);
    a.d0 = th_randu(a.M, dlo, dhi);
    a.d1 = th_randu(a.M, dlo, dhi);
    a.nears = th_randu(n_rays, 0.f, 0.2f);
    a.fars = th_randu(n_rays, 0.5f, 2.f);
    for (int64_t r = 0; r < n_rays; r++) a.fars[r] = r % 7 == 3 ? a.nears[r] : a.nears[r] + a.fars[r]; /* some miss */
    a.dpred = th_randn(3 * n_rays, 1.f);
    a.dA = th_randn(n_rays, 1.f);
    free(u), free(order);
    return a;
}

static void free_rays(rays_in *a) {
    free(a->rays), free(a->sigma), free(a->rgb), free(a->d0), free(a->d1), free(a->nears), free(a->fars);
    free(a->dpred), free(a->dA);
}

/* --- (a) finite differences ------------------------------------------------------------------ */
typedef struct {
    rays_in *a;
    rhd_composite_cfg cfg;
} fd_case;

static double fd_loss(void *p) {
    fd_case *k = p;
    rays_in *a = k->a;
    float *pred = malloc(sizeof(float) * 3 * a->n_rays), *A = malloc(sizeof(float) * a->n_rays);
    rhd_composite_forward(cpu, pred, A, NULL, NULL, a->sigma, a->rgb, a->d0, a->d1, a->rays, NULL, NULL, a->n_rays,
                          a->M, &k->cfg);
    double s = 0;
    for (int64_t r = 0; r < a->n_rays; r++) {
        for (int c = 0; c < 3; c++) s += (double)pred[3 * r + c] * a->dpred[3 * r + c];
        s += (double)A[r] * a->dA[r];
    }
    free(pred), free(A);
    return s;
}

static void test_fd(int64_t n_rays, int max_count) {
    rays_in a = make_rays(n_rays, max_count, 3.f, 1.f, 0.05f, 0.3f);
    fd_case k = {&a, rhd_composite_cfg_default()};
    k.cfg.T_thresh = 0.f; /* no early stop: the loss is smooth in every sample */
    k.cfg.bg[0] = 0.3f, k.cfg.bg[1] = 1.f, k.cfg.bg[2] = 0.6f;
    float *dsigma = malloc(sizeof(float) * a.M), *drgb = malloc(sizeof(float) * 3 * a.M);
    rhd_composite_backward(cpu, dsigma, drgb, a.dpred, a.dA, a.sigma, a.rgb, a.d0, a.rays, n_rays, a.M, &k.cfg);
    char name[128];
    snprintf(name, sizeof name, "composite bwd fd dsigma rays=%lld max_count=%d M=%lld", (long long)n_rays, max_count,
             (long long)a.M);
    th_fd_check(name, fd_loss, &k, a.sigma, dsigma, a.M, 60, 1e-1, 2e-3, 1e-2);
    snprintf(name, sizeof name, "composite bwd fd drgb rays=%lld max_count=%d M=%lld", (long long)n_rays, max_count,
             (long long)a.M);
    th_fd_check(name, fd_loss, &k, a.rgb, drgb, 3 * a.M, 60, 1e-1, 2e-3, 1e-3); /* linear in rgb */
    free(dsigma), free(drgb);
    free_rays(&a);
}

/* --- (b) PyTorch ----------------------------------------------------------------------------- */
typedef struct {
    rays_in a;
    rhd_composite_cfg cfg;
    int use_dA, use_nearfar, max_count;
    char dir[1024];
    float *pred, *A, *depth, *used, *dsigma, *drgb;
} torch_case;
static torch_case tcases[16];
static int ntc;
static char jobs[8192];

static void torch_prepare(int64_t n_rays, int max_count, float dense, float T_thresh, const float *bg, int use_dA,
                          int use_nearfar) {
    torch_case *t = &tcases[ntc++];
    memset(t, 0, sizeof *t);
    t->a = make_rays(n_rays, max_count, dense, 2.f, 0.002f, 0.05f);
    rays_in *a = &t->a;
    t->cfg = rhd_composite_cfg_default();
    t->cfg.T_thresh = T_thresh;
    if (bg) memcpy(t->cfg.bg, bg, sizeof(float) * 3);
    t->use_dA = use_dA, t->use_nearfar = use_nearfar, t->max_count = max_count;
    int64_t R = n_rays, M = a->M;
    t->pred = malloc(sizeof(float) * 3 * R), t->A = malloc(sizeof(float) * R), t->depth = malloc(sizeof(float) * R);
    t->used = malloc(sizeof(float) * R), t->dsigma = malloc(sizeof(float) * M), t->drgb = malloc(sizeof(float) * 3 * M);
    int32_t *used = malloc(sizeof(int32_t) * R);
    rhd_composite_forward(cpu, t->pred, t->A, t->depth, used, a->sigma, a->rgb, a->d0, a->d1, a->rays,
                          use_nearfar ? a->nears : NULL, use_nearfar ? a->fars : NULL, R, M, &t->cfg);
    rhd_composite_backward(cpu, t->dsigma, t->drgb, a->dpred, use_dA ? a->dA : NULL, a->sigma, a->rgb, a->d0, a->rays,
                           R, M, &t->cfg);
    for (int64_t r = 0; r < R; r++) t->used[r] = (float)used[r];
    float *raysf = malloc(sizeof(float) * 2 * R);
    for (int64_t i = 0; i < 2 * R; i++) raysf[i] = (float)a->rays[i];
    char sub[64];
    snprintf(sub, sizeof sub, "composite_%d", ntc);
    snprintf(t->dir, sizeof t->dir, "%s", th_subdir(sub));
    th_save(t->dir, "sigma", a->sigma, 1, (int64_t[]){M});
    th_save(t->dir, "rgb", a->rgb, 2, (int64_t[]){M, 3});
    th_save(t->dir, "delta0", a->d0, 1, (int64_t[]){M});
    th_save(t->dir, "delta1", a->d1, 1, (int64_t[]){M});
    th_save(t->dir, "rays", raysf, 2, (int64_t[]){R, 2});
    th_save(t->dir, "dpred", a->dpred, 2, (int64_t[]){R, 3});
    th_save(t->dir, "dA", a->dA, 1, (int64_t[]){R});
    th_save(t->dir, "nears", a->nears, 1, (int64_t[]){R});
    th_save(t->dir, "fars", a->fars, 1, (int64_t[]){R});
    snprintf(jobs + strlen(jobs), sizeof jobs - strlen(jobs), "%scomposite %s %.9g %.9g %.9g %.9g %d %d",
             ntc > 1 ? " + " : "", t->dir, T_thresh, t->cfg.bg[0], t->cfg.bg[1], t->cfg.bg[2], use_dA, use_nearfar);
    free(raysf), free(used);
}

static void torch_check(torch_case *t, int ref_ok) {
    int64_t R = t->a.n_rays, M = t->a.M;
    char what[160], name[256];
    snprintf(what, sizeof what, "rays=%lld max_count=%d M=%lld T_thresh=%g bg=(%g,%g,%g) dA=%d nearfar=%d",
             (long long)R, t->max_count, (long long)M, t->cfg.T_thresh, t->cfg.bg[0], t->cfg.bg[1], t->cfg.bg[2],
             t->use_dA, t->use_nearfar);
    int stopped = 0, empty = 0, depth_pos = 0;
    for (int64_t r = 0; r < R; r++)
        stopped += t->used[r] < t->a.rays[2 * r + 1], empty += t->a.rays[2 * r + 1] == 0, depth_pos += t->depth[r] > 0;
    th_diag("composite %s: %d rays stopped early, %d empty, %d with depth > 0", what, stopped, empty, depth_pos);
    if (t->max_count > 0) th_ok(stopped > 0 && empty > 0, "composite inputs cover early stops (%d) and empty rays (%d)", stopped, empty);
    struct { const char *name; float *ours; int64_t n; double tol; } outs[] = {
        {"pred", t->pred, 3 * R, 1e-11}, {"A", t->A, R, 1e-11},       {"depth", t->depth, R, 1e-11},
        {"n_used", t->used, R, 0},       {"dsigma", t->dsigma, M, 1e-9}, {"drgb", t->drgb, 3 * M, 1e-11},
    };
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
        float *ref = ref_ok ? th_load(t->dir, outs[i].name, outs[i].n) : NULL;
        snprintf(name, sizeof name, "composite %s cpu~torch %s", outs[i].name, what);
        if (ref) th_close(name, outs[i].ours, ref, outs[i].n, outs[i].tol);
        else th_ok(0, "%s: reference failed", name);
        free(ref);
    }
    free(t->pred), free(t->A), free(t->depth), free(t->used), free(t->dsigma), free(t->drgb);
    free_rays(&t->a);
}

/* --- (c) CUDA -------------------------------------------------------------------------------- */
static void *up(rhd_ctx *gpu, const void *host, size_t bytes) {
    void *d = rhd_buf_alloc(gpu, bytes);
    rhd_buf_upload(gpu, d, host, bytes);
    return d;
}

static void test_cuda(int64_t n_rays, int max_count, float dense) {
    char name[160];
    snprintf(name, sizeof name, "composite cpu~cuda rays=%lld max_count=%d", (long long)n_rays, max_count);
    if (!rhd_cuda_available()) {
        th_skip("no CUDA device (%s)", name);
        return;
    }
    rhd_err e;
    rhd_ctx *gpu = rhd_ctx_open("cuda", &e);
    RHD_ASSERT(gpu);
    rays_in a = make_rays(n_rays, max_count, dense, 2.f, 0.002f, 0.05f);
    rhd_composite_cfg cfg = rhd_composite_cfg_default();
    int64_t R = n_rays, M = a.M;
    /* host results: [pred 3R | A R | depth R] and [dsigma M | drgb 3M], ray counts apart */
    float *fc = malloc(sizeof(float) * 5 * R), *fg = malloc(sizeof(float) * 5 * R);
    float *bc = malloc(sizeof(float) * 4 * M), *bgp = malloc(sizeof(float) * 4 * M);
    int32_t *uc = malloc(sizeof(int32_t) * R), *ug = malloc(sizeof(int32_t) * R);
    rhd_composite_forward(cpu, fc, fc + 3 * R, fc + 4 * R, uc, a.sigma, a.rgb, a.d0, a.d1, a.rays, a.nears, a.fars, R, M,
                          &cfg);
    rhd_composite_backward(cpu, bc, bc + M, a.dpred, a.dA, a.sigma, a.rgb, a.d0, a.rays, R, M, &cfg);
    float *d_sigma = up(gpu, a.sigma, sizeof(float) * M), *d_rgb = up(gpu, a.rgb, sizeof(float) * 3 * M);
    float *d_d0 = up(gpu, a.d0, sizeof(float) * M), *d_d1 = up(gpu, a.d1, sizeof(float) * M);
    float *d_near = up(gpu, a.nears, sizeof(float) * R), *d_far = up(gpu, a.fars, sizeof(float) * R);
    float *d_dpred = up(gpu, a.dpred, sizeof(float) * 3 * R), *d_dA = up(gpu, a.dA, sizeof(float) * R);
    int32_t *d_rays = up(gpu, a.rays, sizeof(int32_t) * 2 * R);
    float *d_f = rhd_buf_alloc(gpu, sizeof(float) * 5 * R), *d_b = rhd_buf_alloc(gpu, sizeof(float) * 4 * M);
    int32_t *d_u = rhd_buf_alloc(gpu, sizeof(int32_t) * R);
    rhd_composite_forward(gpu, d_f, d_f + 3 * R, d_f + 4 * R, d_u, d_sigma, d_rgb, d_d0, d_d1, d_rays, d_near, d_far, R,
                          M, &cfg);
    rhd_composite_backward(gpu, d_b, d_b + M, d_dpred, d_dA, d_sigma, d_rgb, d_d0, d_rays, R, M, &cfg);
    rhd_buf_download(gpu, fg, d_f, sizeof(float) * 5 * R);
    rhd_buf_download(gpu, bgp, d_b, sizeof(float) * 4 * M);
    rhd_buf_download(gpu, ug, d_u, sizeof(int32_t) * R);
    char n2[200];
    snprintf(n2, sizeof n2, "%s fwd pred|A|depth", name);
    th_close(n2, fg, fc, 5 * R, 1e-10);
    snprintf(n2, sizeof n2, "%s bwd dsigma|drgb", name);
    th_close(n2, bgp, bc, 4 * M, 1e-9);
    int same = 1;
    for (int64_t r = 0; r < R; r++) same &= uc[r] == ug[r];
    th_ok(same, "%s: the same samples used per ray", name);
    void *bufs[] = {d_sigma, d_rgb, d_d0, d_d1, d_near, d_far, d_dpred, d_dA, d_rays, d_f, d_b, d_u};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) rhd_buf_free(gpu, bufs[i]);
    rhd_ctx_close(gpu);
    free(fc), free(fg), free(bc), free(bgp), free(uc), free(ug);
    free_rays(&a);
}

int main(void) {
    rhd_err e;
    cpu = rhd_ctx_open("cpu", &e);
    RHD_ASSERT(cpu);
    test_fd(13, 9);
    test_fd(40, 33);
    const float colour[3] = {0.2f, 0.5f, 0.9f};
    torch_prepare(150, 64, 400.f, 1e-4f, NULL, 1, 1);
    torch_prepare(37, 9, 200.f, 1e-4f, colour, 0, 0);
    torch_prepare(61, 20, 30.f, 1e-2f, colour, 1, 0);
    torch_prepare(3, 0, 1.f, 1e-4f, NULL, 1, 1); /* only empty rays: every gradient is 0 */
    int ref_ok = th_ref("ref_render.py", "%s", jobs) == 0;
    for (int i = 0; i < ntc; i++) torch_check(&tcases[i], ref_ok);
    test_cuda(8193, 64, 400.f);
    test_cuda(5, 3, 2.f);
    rhd_ctx_close(cpu);
    return th_done();
}
