/* tests/models/test_fit_iwc.c: the IWC Fisher of a stage-1 visit (common/models/fitter.h).
 *   - rhd_fit_fisher_normalize against a float64 computation written here: every tensor's mean
 *     becomes 1, ratios within a tensor are kept, an all-zero tensor stays zero, the alignment
 *     padding between tensors is untouched;
 *   - a visit's original Fisher with fisher_steps 1 is exactly the square of the last step's
 *     decoder gradient (left in P.grad), and the normalized Fisher of the same visit (IWC weight
 *     0, so both see the same gradients) is the original's normalized per tensor;
 *   - the gradient of the IWC term with a normalized Fisher of a real visit matches central finite
 *     differences of its value, and at weight 0.01 its size is comparable to the data gradient
 *     for a drift of 1e-3 (the original's is ~1e-6 of it: the reason for the mode).
 * Tiny sizes on tests/data/mini; random inputs from the printed seed. */
#include "refcheck.h"
#include "common/fit_views.h"
#include "common/plan.h"
#include "common/models/fitter.h"
#include "kernels/losses.h"

static rhd_ctx *cpu;
static rhd_fit_views train;

/* One visit of `steps` steps on avatar_100 with a fresh decoder (seed); F: its stored Fisher,
 * grad: the decoder gradient of its last step (both malloc'd, [P.total]). */
static void visit(int mode, int steps, uint64_t seed, float **F, float **grad, float **theta, rhd_decoder *dec_out) {
    rhd_err e = {0};
    rhd_fit_cfg fc;
    rhd_fit_cfg_default(&fc, 1);
    fc.C = 8, fc.R = 12, fc.rays = 64, fc.dist_points = 16, fc.seed = seed, fc.fisher_mode = mode, fc.fisher_steps = 1;
    fc.w_iwc_override = 0;
    rhd_render_cfg rc;
    rhd_render_cfg_default(&rc);
    rc.grid_size = 16, rc.max_steps = 24;
    rhd_decoder_cfg dcfg;
    rhd_decoder_cfg_default(&dcfg);
    dcfg.C = fc.C;
    rhd_decoder dec;
    if (rhd_decoder_init(&dec, &dcfg, cpu, 1, &e)) fprintf(stderr, "%s\n", e.msg), exit(1);
    rhd_decoder_init_weights(&dec, seed);
    rhd_renderer r;
    rhd_renderer_init(&r, cpu, &dec, &rc);
    rhd_plan plan;
    rhd_plan_params pp;
    rhd_plan_params_init(&pp);
    pp.rounds = 1, pp.steps = steps;
    const char *names[1] = {"avatar_100"};
    if (rhd_plan_generate(&plan, &pp, names, NULL, 1, &e)) fprintf(stderr, "%s\n", e.msg), exit(1);
    rhd_triplane t;
    rhd_fit_triplane_new(&t, &fc, 0);
    rhd_fit_avatar av = {0, "avatar_100", &train, t, NULL, NAN};
    rhd_iwc_states st;
    rhd_iwc_states_init(&st, 1);
    rhd_fit_result res;
    if (rhd_fit_visit(&r, &fc, &plan, 0, &av, 1, &st, 0, &res, &e)) fprintf(stderr, "%s\n", e.msg), exit(1);
    int64_t n = dec.P.total;
    *F = st.fisher[0], st.fisher[0] = NULL;
    *theta = st.optpar[0], st.optpar[0] = NULL;
    *grad = malloc(sizeof(float) * (size_t)n);
    memcpy(*grad, dec.P.grad, sizeof(float) * (size_t)n);
    rhd_iwc_states_free(&st);
    rhd_triplane_free(&t);
    rhd_renderer_free(&r);
    rhd_plan_free(&plan);
    if (dec_out) *dec_out = dec;
    else rhd_decoder_free(&dec);
}

/* The per-tensor normalization in float64, written independently of the library's. */
static void normalize_ref(const rhd_params *P, const float *F, double *out) {
    for (int64_t i = 0; i < P->total; i++) out[i] = F[i];
    for (int t = 0; t < P->n; t++) {
        const rhd_param_info *pi = &P->info[t];
        double mean = 0;
        for (int64_t i = 0; i < pi->numel; i++) mean += F[pi->offset + i];
        mean /= (double)pi->numel;
        for (int64_t i = 0; i < pi->numel; i++) out[pi->offset + i] = mean > 0 ? F[pi->offset + i] / mean : 0;
    }
}

static double max_rel(const float *got, const double *want, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]) / (fabs(want[i]) + 1e-30);
        if (want[i] == 0) d = got[i] == 0 ? 0 : INFINITY;
        if (d > worst) worst = d;
    }
    return worst;
}

static void test_normalize(const rhd_params *P) {
    int64_t n = P->total;
    float *F = th_randu(n, 0.f, 1.f);
    for (int64_t i = 0; i < n; i++) F[i] = F[i] * F[i] * 1e-9f; /* squared-gradient-like, ~1e-9 */
    const rhd_param_info *z = &P->info[P->n - 1];
    for (int64_t i = 0; i < z->numel; i++) F[z->offset + i] = 0; /* one all-zero tensor */
    for (int t = 0; t + 1 < P->n; t++) /* the padding after each tensor: marked */
        for (int64_t i = P->info[t].offset + P->info[t].numel; i < P->info[t + 1].offset; i++) F[i] = 7.f;
    double *want = malloc(sizeof(double) * (size_t)n);
    normalize_ref(P, F, want);
    rhd_fit_fisher_normalize(P, F);
    double worst = max_rel(F, want, n), worst_mean = 0;
    for (int t = 0; t + 1 < P->n; t++) {
        double m = 0;
        for (int64_t i = 0; i < P->info[t].numel; i++) m += F[P->info[t].offset + i];
        m /= (double)P->info[t].numel;
        if (fabs(m - 1) > worst_mean) worst_mean = fabs(m - 1);
    }
    th_ok(worst <= 1e-6, "normalize: %lld values against float64, worst rel err %.2e (tol 1e-6)", (long long)n, worst);
    th_ok(worst_mean <= 1e-6, "normalize: every nonzero tensor's mean is 1 (worst |mean-1| %.2e)", worst_mean);
    int zero = 1, pad = 1;
    for (int64_t i = 0; i < z->numel; i++) zero &= F[z->offset + i] == 0;
    for (int t = 0; t + 1 < P->n; t++)
        for (int64_t i = P->info[t].offset + P->info[t].numel; i < P->info[t + 1].offset; i++) pad &= F[i] == 7.f;
    th_ok(zero, "normalize: the all-zero tensor %s stays zero", z->name);
    th_ok(pad, "normalize: the padding between tensors is untouched");
    free(F), free(want);
}

typedef struct iwc_case {
    float *theta, *F, *opt;
    int64_t n;
    double w;
} iwc_case;

static double iwc_value(void *u) {
    iwc_case *c = u;
    return rhd_loss_iwc(cpu, NULL, c->theta, c->F, c->opt, c->n, c->w);
}

int main(void) {
    rhd_err e = {0};
    cpu = rhd_ctx_open("cpu", &e);
    uint64_t seed = th_seed();
    const char *root = getenv("RHD_ROOT");
    char d0[1024];
    snprintf(d0, sizeof d0, "%s/tests/data/mini/avatar_100", root ? root : ".");
    rhd_fit_data_cfg dc;
    rhd_fit_data_cfg_default(&dc);
    int tv[4] = {0, 5, 10, 15};
    if (rhd_fit_views_load(&train, d0, tv, 4, &dc, 1, &e)) {
        th_diag("%s", e.msg);
        th_ok(0, "mini dataset loaded");
        return th_done();
    }
    float *Fo, *go, *to, *Fn, *gn, *tn;
    rhd_decoder dec;
    visit(RHD_FISHER_ORIGINAL, 6, seed, &Fo, &go, &to, &dec);
    visit(RHD_FISHER_NORMALIZED, 6, seed, &Fn, &gn, &tn, NULL);
    const rhd_params *P = &dec.P;
    int64_t n = P->total;
    test_normalize(P);

    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double want = (double)go[i] * go[i], d = fabs(Fo[i] - want) / (want + 1e-38);
        if (d > worst) worst = d;
    }
    th_ok(worst <= 1e-6, "original Fisher (1 step) = the last step's squared decoder gradient: worst rel err %.2e", worst);
    int same = !memcmp(go, gn, sizeof(float) * (size_t)n) && !memcmp(to, tn, sizeof(float) * (size_t)n);
    th_ok(same, "IWC weight 0: both modes take the same steps (same last gradient and parameters)");
    double *want = malloc(sizeof(double) * (size_t)n);
    normalize_ref(P, Fo, want);
    worst = max_rel(Fn, want, n);
    th_ok(worst <= 1e-6, "normalized Fisher = the original's normalized per tensor (float64 here): worst rel err %.2e", worst);
    double fo_mean = 0;
    for (int64_t i = 0; i < n; i++) fo_mean += Fo[i];
    th_diag("mean original Fisher %.3g per element (the original's penalty scale)", fo_mean / (double)n);

    /* the term's gradient with the visit's normalized Fisher, at theta = theta* + a random drift */
    iwc_case c = {th_randn(n, 1e-3f), Fn, to, n, 0.01};
    for (int64_t i = 0; i < n; i++) c.theta[i] += to[i];
    float *g = calloc((size_t)n, sizeof(float));
    rhd_loss_iwc(cpu, g, c.theta, c.F, c.opt, n, c.w);
    th_fd_check("IWC term (normalized Fisher, w 0.01) gradient", iwc_value, &c, c.theta, g, (long)n, 32, 1e-3, 1e-4, 1e-12);
    double gi = 0, gd = 0, g_orig = 0;
    for (int64_t i = 0; i < n; i++) {
        gi += (double)g[i] * g[i], gd += (double)go[i] * go[i];
        double d = 2 * c.w * Fo[i] * ((double)c.theta[i] - to[i]);
        g_orig += d * d;
    }
    th_diag("drift 1e-3, w 0.01: |IWC grad| normalized %.3g, original %.3g; |data grad| %.3g", sqrt(gi), sqrt(g_orig), sqrt(gd));
    th_ok(sqrt(gi) > 0.05 * sqrt(gd) && sqrt(g_orig) < 1e-3 * sqrt(gd),
          "normalized penalty acts at the data gradient's scale (ratio %.3g), the original's does not (%.3g)",
          sqrt(gi / gd), sqrt(g_orig / gd));
    free(c.theta), free(g), free(want);
    free(Fo), free(go), free(to), free(Fn), free(gn), free(tn);
    rhd_decoder_free(&dec);
    rhd_fit_views_free(&train);
    rhd_ctx_close(cpu);
    return th_done();
}
