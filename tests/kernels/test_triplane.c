/* tests/kernels/test_triplane.c: triplane sampling (kernels/triplane.h).
 * (a) finite differences of the CPU backward; (b) forward and backward against an independent
 * PyTorch reference (grid_sample(align_corners=True) with the spec's out-of-range rule), with
 * points on the u=1/v=1 edges, corners, outside [-1,1] and NaN, and texels at exactly +-1 and
 * beyond under the clamp, and the two CPU forward strategies (in place, channel-last copy)
 * bit-identical; (c) the CPU backward is bit-identical for 1, 2 and 3 OpenMP threads;
 * (d) CUDA vs CPU when a device is present. Each under the mean (the original's aggregation) and
 * the two products (rhd_plane_agg). */
#include "refcheck.h"
#include "kernels/triplane.h"
#include <omp.h>

static rhd_ctx *cpu;

typedef struct {
    int64_t N;
    int C, R, clamp, agg;
    float *planes, *points, *g;
} fd_case;

/* The per-plane samples buffer of a product forward (NULL for the mean). */
static float *splanes_new(int agg, int64_t N, int C) {
    return agg == RHD_PLANE_MEAN ? NULL : malloc(sizeof(float) * 3 * N * C);
}

static double fd_loss(void *p) {
    fd_case *k = p;
    float *feats = malloc(sizeof(float) * k->N * k->C);
    rhd_triplane_forward(cpu, feats, k->points, k->planes, k->N, k->C, k->R, k->clamp, k->agg, NULL);
    double s = 0;
    for (int64_t i = 0; i < k->N * k->C; i++) s += (double)feats[i] * k->g[i];
    free(feats);
    return s;
}

/* Random texels in N(0, std), kept 2h away from the clamp kinks at +-1 for the finite differences. */
static float *make_planes(int C, int R, float std, float h) {
    int64_t n = 3LL * C * R * R;
    float *x = th_randn(n, std);
    for (int64_t i = 0; i < n; i++)
        if (fabsf(fabsf(x[i]) - 1.f) < 2 * h) x[i] = x[i] > 0 ? 1.f + 3 * h : -1.f - 3 * h;
    return x;
}

static void test_fd(int64_t N, int C, int R, int clamp, int agg) {
    /* every aggregation is linear in any one texel (a texel feeds one plane's sample; the products
     * multiply samples of different planes): no curvature error, so a wide step has less rounding */
    const float h = 5e-2f;
    fd_case k = {N, C, R, clamp, agg, make_planes(C, R, clamp ? 0.9f : 0.5f, h), th_randu(N * 3, -1.f, 1.f),
                 th_randn(N * C, 1.f)};
    int64_t np = 3LL * C * R * R;
    float *dplanes = calloc(np, sizeof(float)), *feats = malloc(sizeof(float) * N * C), *sp = splanes_new(agg, N, C);
    rhd_triplane_forward(cpu, feats, k.points, k.planes, N, C, R, clamp, agg, sp);
    rhd_triplane_backward(cpu, dplanes, k.g, k.points, k.planes, N, C, R, clamp, agg, sp);
    char name[160];
    snprintf(name, sizeof name, "triplane bwd fd N=%lld C=%d R=%d clamp=%d agg=%s", (long long)N, C, R, clamp,
             rhd_plane_agg_name(agg));
    /* the floor of the relative error: the products' features are O(1) whatever their gradient
     * ((1+s0)(1+s1)(1+s2) - 1 keeps the float32 rounding of the product, ~1e-7 per feature), so
     * the central difference over 2h = 0.1 carries ~1e-6 absolute error: texels with gradients
     * under 1e-2 are judged on that scale. A wrong factor (e.g. the mean's 1/3) errs by O(1). */
    th_fd_check(name, fd_loss, &k, k.planes, dplanes, np, 60, h, 1e-3, agg == RHD_PLANE_MEAN ? 1e-3 : 1e-2);
    free(k.planes), free(k.points), free(k.g), free(dplanes), free(feats), free(sp);
}

/* Points that exercise the edge rules, written over the first entries of points. */
static int plant_points(float *pts, int64_t N) {
    static const float special[][3] = {
        {1.f, 1.f, 1.f},        {-1.f, -1.f, -1.f},     {1.f, -1.f, 0.3f},     {0.25f, 1.f, -1.f},
        {-0.5f, 0.7f, 1.f},     {1.0000001f, 0.f, 0.f}, {-1.5f, 0.2f, 0.3f},   {2.f, 2.f, 2.f},
        {0.3f, NAN, 0.1f},      {0.f, 0.f, 0.f},        {-1.f, 1.f, -0.9999999f}, {0.5f, -1.0000001f, 0.5f},
    };
    int n = (int)(sizeof special / sizeof special[0]);
    if (n > N) n = (int)N;
    memcpy(pts, special, sizeof(float) * 3 * n);
    return n;
}

/* The PyTorch comparisons are prepared first and run in one reference call (one torch import). */
typedef struct {
    int64_t N;
    int C, R, clamp, agg, nspecial;
    char dir[1024];
    float *feats, *dplanes;
} torch_case;
static torch_case tcases[16];
static int ntc;
static char jobs[8192];

static void torch_prepare(int64_t N, int C, int R, int clamp, int agg) {
    torch_case *t = &tcases[ntc++];
    int64_t np = 3LL * C * R * R;
    float *planes = th_randn(np, clamp ? 0.8f : 1.f);
    if (clamp) /* texels at exactly +-1 (gradient passes) and beyond (blocked) */
        for (int64_t i = 0; i < np; i += 7) planes[i] = (i / 7) % 4 == 0 ? 1.f : (i / 7) % 4 == 1 ? -1.f : planes[i];
    float *points = th_randu(N * 3, -1.1f, 1.1f);
    int ns = plant_points(points, N);
    float *dfeats = th_randn(N * C, 1.f), *dplanes = th_randn(np, 0.1f);
    char sub[64];
    snprintf(sub, sizeof sub, "triplane_%d", ntc);
    *t = (torch_case){N, C, R, clamp, agg, ns, "", malloc(sizeof(float) * N * C), dplanes};
    snprintf(t->dir, sizeof t->dir, "%s", th_subdir(sub));
    th_save(t->dir, "planes", planes, 4, (int64_t[]){3, C, R, R});
    th_save(t->dir, "points", points, 2, (int64_t[]){N, 3});
    th_save(t->dir, "dfeats", dfeats, 2, (int64_t[]){N, C});
    th_save(t->dir, "dplanes0", dplanes, 4, (int64_t[]){3, C, R, R});
    float *sp = splanes_new(agg, N, C);
    rhd_triplane_forward(cpu, t->feats, points, planes, N, C, R, clamp, agg, sp);
    rhd_triplane_backward(cpu, t->dplanes, dfeats, points, planes, N, C, R, clamp, agg, sp);
    /* both CPU forward strategies: reading in place and through the channel-last copy; and the
     * inference path on a packed copy */
    float *f1 = malloc(sizeof(float) * N * C), *f2 = malloc(sizeof(float) * N * C), *f3 = malloc(sizeof(float) * N * C);
    float *packed = malloc(sizeof(float) * 3 * C * R * R);
    rhd_triplane_forward_cpu(cpu, f1, points, planes, N, C, R, clamp, agg, NULL, RHD_TRIPLANE_DIRECT);
    rhd_triplane_forward_cpu(cpu, f2, points, planes, N, C, R, clamp, agg, NULL, RHD_TRIPLANE_PACKED);
    rhd_triplane_pack(cpu, packed, planes, C, R, clamp);
    rhd_triplane_forward_packed(cpu, f3, points, packed, N, C, R, agg);
    size_t fb = sizeof(float) * N * C;
    th_ok(memcmp(f1, f2, fb) == 0 && memcmp(f1, t->feats, fb) == 0 && memcmp(f1, f3, fb) == 0,
          "triplane fwd cpu: direct, channel-last and packed-inference paths bit-identical N=%lld C=%d R=%d clamp=%d "
          "agg=%s", (long long)N, C, R, clamp, rhd_plane_agg_name(agg));
    free(f1), free(f2), free(f3), free(packed), free(sp);
    snprintf(jobs + strlen(jobs), sizeof jobs - strlen(jobs), "%striplane %s %d %s", ntc > 1 ? " + " : "", t->dir,
             clamp, rhd_plane_agg_name(agg));
    free(planes), free(points), free(dfeats);
}

static void torch_check(const torch_case *t, int ref_ok) {
    int64_t N = t->N, np = 3LL * t->C * t->R * t->R;
    int C = t->C, R = t->R;
    float *rf = ref_ok ? th_load(t->dir, "feats", N * C) : NULL, *rd = ref_ok ? th_load(t->dir, "dplanes", np) : NULL;
    char name[160];
    const char *an = rhd_plane_agg_name(t->agg);
    snprintf(name, sizeof name, "triplane fwd cpu~torch N=%lld C=%d R=%d clamp=%d agg=%s (%d edge/outside points)",
             (long long)N, C, R, t->clamp, an, t->nspecial);
    if (rf) th_close(name, t->feats, rf, N * C, 1e-10);
    else th_ok(0, "%s: reference failed", name);
    snprintf(name, sizeof name, "triplane bwd cpu~torch N=%lld C=%d R=%d clamp=%d agg=%s (dplanes +=)", (long long)N, C,
             R, t->clamp, an);
    if (rd) th_close(name, t->dplanes, rd, np, 1e-10);
    else th_ok(0, "%s: reference failed", name);
    if (N > 7) { /* planted point 7 = (2,2,2) is outside every plane */
        int zero = 1;
        for (int c = 0; c < C; c++) zero &= t->feats[7 * C + c] == 0.f;
        th_ok(zero, "triplane: a point outside all three planes gives zero features (C=%d R=%d agg=%s)", C, R, an);
    }
    free(rf), free(rd), free(t->feats), free(t->dplanes);
}

static void test_threads(int64_t N, int C, int R, int clamp, int agg) {
    int64_t np = 3LL * C * R * R;
    float *planes = th_randn(np, 0.8f), *points = th_randu(N * 3, -1.f, 1.f), *dfeats = th_randn(N * C, 1.f);
    plant_points(points, N);
    float *feats = malloc(sizeof(float) * N * C), *sp = splanes_new(agg, N, C);
    rhd_triplane_forward(cpu, feats, points, planes, N, C, R, clamp, agg, sp);
    float *d[3];
    int nts[3] = {1, 2, 3}, same = 1;
    int saved = omp_get_max_threads();
    for (int t = 0; t < 3; t++) {
        d[t] = calloc(np, sizeof(float));
        omp_set_num_threads(nts[t]);
        rhd_triplane_backward(cpu, d[t], dfeats, points, planes, N, C, R, clamp, agg, sp);
        if (t) same &= memcmp(d[0], d[t], sizeof(float) * np) == 0;
    }
    omp_set_num_threads(saved);
    th_ok(same, "triplane bwd cpu bit-identical with 1, 2 and 3 threads N=%lld C=%d R=%d clamp=%d agg=%s", (long long)N,
          C, R, clamp, rhd_plane_agg_name(agg));
    free(planes), free(points), free(dfeats), free(feats), free(sp);
    for (int t = 0; t < 3; t++) free(d[t]);
}

static void test_cuda(int64_t N, int C, int R, int clamp, int agg) {
    char name[160];
    snprintf(name, sizeof name, "triplane cpu~cuda N=%lld C=%d R=%d clamp=%d agg=%s", (long long)N, C, R, clamp,
             rhd_plane_agg_name(agg));
    if (!rhd_cuda_available()) {
        th_skip("no CUDA device (%s)", name);
        return;
    }
    rhd_err e;
    rhd_ctx *gpu = rhd_ctx_open("cuda", &e);
    RHD_ASSERT(gpu);
    int64_t np = 3LL * C * R * R;
    float *planes = th_randn(np, 0.8f), *points = th_randu(N * 3, -1.05f, 1.05f), *dfeats = th_randn(N * C, 1.f);
    plant_points(points, N);
    float *feats = malloc(sizeof(float) * N * C), *dplanes = th_randn(np, 0.1f);
    float *gf = malloc(sizeof(float) * N * C), *gd = malloc(sizeof(float) * np);
    float *d_planes = rhd_buf_alloc(gpu, sizeof(float) * np), *d_points = rhd_buf_alloc(gpu, sizeof(float) * N * 3);
    float *d_dfeats = rhd_buf_alloc(gpu, sizeof(float) * N * C), *d_feats = rhd_buf_alloc(gpu, sizeof(float) * N * C);
    float *d_dplanes = rhd_buf_alloc(gpu, sizeof(float) * np);
    float *sp = splanes_new(agg, N, C), *d_sp = sp ? rhd_buf_alloc(gpu, sizeof(float) * 3 * N * C) : NULL;
    rhd_buf_upload(gpu, d_planes, planes, sizeof(float) * np);
    rhd_buf_upload(gpu, d_points, points, sizeof(float) * N * 3);
    rhd_buf_upload(gpu, d_dfeats, dfeats, sizeof(float) * N * C);
    rhd_buf_upload(gpu, d_dplanes, dplanes, sizeof(float) * np);
    rhd_triplane_forward(gpu, d_feats, d_points, d_planes, N, C, R, clamp, agg, d_sp);
    rhd_triplane_backward(gpu, d_dplanes, d_dfeats, d_points, d_planes, N, C, R, clamp, agg, d_sp);
    rhd_buf_download(gpu, gf, d_feats, sizeof(float) * N * C);
    rhd_buf_download(gpu, gd, d_dplanes, sizeof(float) * np);
    rhd_triplane_forward(cpu, feats, points, planes, N, C, R, clamp, agg, sp);
    rhd_triplane_backward(cpu, dplanes, dfeats, points, planes, N, C, R, clamp, agg, sp);
    char n2[200];
    snprintf(n2, sizeof n2, "%s fwd", name);
    th_close(n2, gf, feats, N * C, 1e-12);
    snprintf(n2, sizeof n2, "%s bwd", name);
    th_close(n2, gd, dplanes, np, 1e-10);
    rhd_buf_free(gpu, d_planes), rhd_buf_free(gpu, d_points), rhd_buf_free(gpu, d_dfeats);
    rhd_buf_free(gpu, d_feats), rhd_buf_free(gpu, d_dplanes), rhd_buf_free(gpu, d_sp);
    rhd_ctx_close(gpu);
    free(planes), free(points), free(dfeats), free(feats), free(dplanes), free(gf), free(gd), free(sp);
}

int main(void) {
    rhd_err e;
    cpu = rhd_ctx_open("cpu", &e);
    RHD_ASSERT(cpu);
    test_fd(40, 3, 5, 0, RHD_PLANE_MEAN);
    test_fd(120, 8, 7, 1, RHD_PLANE_MEAN);
    test_fd(30, 2, 2, 0, RHD_PLANE_MEAN);
    test_fd(10, 1, 1, 1, RHD_PLANE_MEAN);
    test_fd(40, 3, 5, 0, RHD_PLANE_PRODUCT);
    test_fd(120, 8, 7, 1, RHD_PLANE_PRODUCT);
    test_fd(40, 3, 5, 1, RHD_PLANE_OFFSET_PRODUCT);
    test_fd(30, 2, 2, 0, RHD_PLANE_OFFSET_PRODUCT);
    torch_prepare(1000, 32, 17, 0, RHD_PLANE_MEAN);
    torch_prepare(777, 5, 64, 1, RHD_PLANE_MEAN);
    torch_prepare(50, 3, 2, 1, RHD_PLANE_MEAN);
    torch_prepare(20, 2, 1, 0, RHD_PLANE_MEAN);
    torch_prepare(1000, 32, 17, 0, RHD_PLANE_PRODUCT);
    torch_prepare(777, 5, 64, 1, RHD_PLANE_PRODUCT);
    torch_prepare(600, 8, 9, 1, RHD_PLANE_OFFSET_PRODUCT);
    torch_prepare(50, 3, 2, 0, RHD_PLANE_OFFSET_PRODUCT);
    int ref_ok = th_ref("ref_render.py", "%s", jobs) == 0;
    for (int i = 0; i < ntc; i++) torch_check(&tcases[i], ref_ok);
    test_threads(20000, 8, 16, 0, RHD_PLANE_MEAN);
    test_threads(5003, 5, 33, 1, RHD_PLANE_MEAN);
    test_threads(20000, 8, 16, 1, RHD_PLANE_PRODUCT);
    test_threads(5003, 5, 33, 0, RHD_PLANE_OFFSET_PRODUCT);
    test_cuda(10007, 32, 65, 0, RHD_PLANE_MEAN);
    test_cuda(3001, 7, 16, 1, RHD_PLANE_MEAN);
    test_cuda(10007, 32, 65, 1, RHD_PLANE_PRODUCT);
    test_cuda(3001, 7, 16, 0, RHD_PLANE_OFFSET_PRODUCT);
    rhd_ctx_close(cpu);
    return th_done();
}
