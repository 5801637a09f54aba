/* tests/unit/test_diffusion.c: common/models/diffusion (q_sample, posterior, the training terms and
 * their gradient with respect to the network output, timestep samplers) against the independent
 * PyTorch reference tests/ref/ref_diffusion.py on fresh random inputs, the gradient against
 * central finite differences of a float64 re-evaluation, the exact zero v-gradient at t = T-1
 * (spec §10.11), thread-count invariance, and CUDA against the CPU where a device exists. */
#include "refcheck.h"
#include "common/models/diffusion.h"
#include "common/models/sampler.h"
#include <omp.h>

typedef struct {
    const char *schedule;
    int T;
    const char *respacing;
    rhd_pred_kind pred;
    rhd_var_kind var;
    int B, C;
    int64_t HW;
    int t[6]; /* -1: random */
} loss_case;

static double rel(double a, double b) { return fabs(a - b) / (fabs(b) + 1e-30); }

static void make_chain(rhd_diffusion_schedule *s, const char *name, int T, const char *respacing) {
    rhd_beta_kind k;
    rhd_err e;
    if (rhd_beta_kind_parse(name, &k, &e) || rhd_diffusion_schedule_create(s, k, T, respacing, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        exit(1);
    }
}

/* --- float64 re-evaluation of one sample's training loss (for finite differences) --------------- */
typedef struct {
    const rhd_diffusion_schedule *s;
    const float *x0, *xt, *eps;
    float *out;        /* [C_out, HW] perturbed in place */
    const float *pred0; /* [C, HW] the unperturbed prediction: the VB term sees it detached */
    int t, learned;
    rhd_pred_kind pred;
    int64_t n;
} fd_ctx;

static double cdf64(double x) { return 0.5 * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }

static double loss64(void *p) {
    fd_ctx *f = p;
    const rhd_diffusion_schedule *s = f->s;
    int t = f->t;
    double sa = s->sqrt_alphas_cumprod[t], s1 = s->sqrt_one_minus_alphas_cumprod[t];
    double sr = s->sqrt_recip_alphas_cumprod[t], srm1 = s->sqrt_recipm1_alphas_cumprod[t];
    double c1 = s->posterior_mean_coef1[t], c2 = s->posterior_mean_coef2[t];
    double lb = log(s->betas[t]), lc = s->posterior_log_variance_clipped[t];
    double se = 0, vb = 0;
    for (int64_t i = 0; i < f->n; i++) {
        double x0 = f->x0[i], xt = f->xt[i], eps = f->eps[i], pr = f->out[i];
        double target = f->pred == RHD_PRED_EPS ? eps : f->pred == RHD_PRED_XSTART ? x0 : sa * eps - s1 * x0;
        se += (target - pr) * (target - pr);
        if (!f->learned) continue;
        double pd = f->pred0[i];
        double x0h = f->pred == RHD_PRED_EPS ? sr * xt - srm1 * pd : f->pred == RHD_PRED_XSTART ? pd : sa * xt - s1 * pd;
        double mp = c1 * x0h + c2 * xt, mq = c1 * x0 + c2 * xt;
        double frac = (f->out[f->n + i] + 1) / 2, lp = frac * lb + (1 - frac) * lc;
        if (t > 0) {
            vb += 0.5 * (-1 + lp - lc + exp(lc - lp) + (mq - mp) * (mq - mp) * exp(-lp));
        } else {
            double inv = exp(-0.5 * lp), c = x0 - mp;
            double cp = cdf64(inv * (c + 1 / 255.0)), cm = cdf64(inv * (c - 1 / 255.0));
            double lpr = x0 < -0.999 ? log(fmax(cp, 1e-12)) : x0 > 0.999 ? log(fmax(1 - cm, 1e-12)) : log(fmax(cp - cm, 1e-12));
            vb -= lpr;
        }
    }
    return se / f->n + vb / f->n / M_LN2 * (s->T / 1000.0);
}

static void write_params(const char *dir, const char *json) {
    char path[2048];
    snprintf(path, sizeof path, "%s/params.json", dir);
    FILE *fp = fopen(path, "w");
    if (!fp || fputs(json, fp) < 0 || fclose(fp)) { perror(path); exit(1); }
}

static void test_loss_case(rhd_ctx *cpu, rhd_ctx *gpu, const loss_case *lc, int idx) {
    rhd_diffusion_schedule s;
    make_chain(&s, lc->schedule, lc->T, lc->respacing);
    int B = lc->B, C = lc->C, learned = lc->var == RHD_VAR_LEARNED_RANGE, C_out = learned ? 2 * C : C;
    int64_t n = C * lc->HW, no = C_out * lc->HW;
    float *x0 = th_randu(B * n, -1.2f, 1.2f), *eps = th_randn(B * n, 1.f), *out = th_randn(B * no, 1.f);
    /* a prediction 0.3 from its target (a network's, not a random one: at t = 0 the fp32 decoder
     * term of a random prediction is all cancellation), v channels in about [-1, 1]; x0 in
     * [-1.2, 1.2] reaches both edge bins */
    for (int b = 0; b < B; b++)
        for (int64_t i = 0; i < n; i++) {
            float tg = lc->pred == RHD_PRED_EPS ? eps[b * n + i] : lc->pred == RHD_PRED_XSTART ? x0[b * n + i] : 0.f;
            out[b * no + i] = tg + 0.3f * out[b * no + i];
            if (learned) out[b * no + n + i] = tanhf(out[b * no + n + i]);
        }
    int t[8];
    double w[8];
    float *u = th_randu(2 * B, 0.f, 1.f);
    for (int b = 0; b < B; b++) {
        t[b] = lc->t[b] >= 0 ? lc->t[b] : (int)(u[b] * s.T) % s.T;
        w[b] = 0.5 + u[B + b];
    }
    float *xt = malloc(sizeof(float) * B * n), *dout = malloc(sizeof(float) * B * no);
    rhd_diffusion_q_sample(cpu, &s, xt, x0, eps, t, B, n);
    rhd_diffusion_terms terms[8];
    double loss = rhd_diffusion_training_loss(cpu, &s, lc->pred, lc->var, dout, terms, out, x0, xt, eps, t, w, B, C, lc->HW);

    char name[256], tl[128] = "", wl[256] = "", json[1024];
    snprintf(name, sizeof name, "%s T=%d%s%s %s/%s B=%d t=", lc->schedule, lc->T, lc->respacing ? " " : "",
             lc->respacing ? lc->respacing : "", rhd_pred_kind_name(lc->pred), rhd_var_kind_name(lc->var), B);
    for (int b = 0; b < B; b++) {
        snprintf(tl + strlen(tl), sizeof tl - strlen(tl), "%s%d", b ? "," : "", t[b]);
        snprintf(wl + strlen(wl), sizeof wl - strlen(wl), "%s%.17g", b ? "," : "", w[b]);
    }
    strncat(name, tl, sizeof name - strlen(name) - 1);
    snprintf(json, sizeof json, "{\"schedule\":\"%s\",\"T\":%d,\"respacing\":\"%s\",\"pred\":\"%s\",\"var\":\"%s\",\"C\":%d,\"t\":[%s],\"w\":[%s]}",
             lc->schedule, lc->T, lc->respacing ? lc->respacing : "", rhd_pred_kind_name(lc->pred), rhd_var_kind_name(lc->var), C, tl, wl);
    char sub[64];
    snprintf(sub, sizeof sub, "loss%d", idx);
    const char *dir = th_subdir(sub);
    write_params(dir, json);
    int64_t sh[3] = {B, C, lc->HW}, sho[3] = {B, C_out, lc->HW};
    th_save(dir, "x0", x0, 3, sh);
    th_save(dir, "eps", eps, 3, sh);
    th_save(dir, "out", out, 3, sho);
    if (th_ref("ref_diffusion.py", "loss %s", dir)) {
        th_ok(0, "%s: reference ran", name);
    } else {
        float *rxt = th_load(dir, "xt", B * n), *rdout = th_load(dir, "dout", B * no);
        double *rterms = th_load_t(dir, "terms", RHD_F64, B * 3), *rloss = th_load_t(dir, "loss", RHD_F64, 1);
        th_same_bytes("q_sample x_t (bitwise against torch fp32)", xt, rxt, B * n, 4);
        /* the posterior mean, per element through rhd_diffusion_posterior */
        float *pm = malloc(sizeof(float) * B * n), *rpm = th_load(dir, "post_mean", B * n);
        for (int b = 0; b < B; b++)
            for (int64_t i = 0; i < n; i++) rhd_diffusion_posterior(&s, t[b], x0[b * n + i], xt[b * n + i], pm + b * n + i, NULL, NULL);
        th_same_bytes("posterior mean (bitwise)", pm, rpm, B * n, 4);
        double worst = 0;
        for (int b = 0; b < B && rterms; b++) {
            double a[3] = {terms[b].mse, terms[b].vb, terms[b].loss};
            for (int q = 0; q < 3; q++) {
                double r = fabs(a[q] - rterms[b * 3 + q]) / (fabs(rterms[b * 3 + q]) + 1e-6);
                if (r > worst) worst = r;
            }
            th_diag("  sample %d t=%d: mse %.9g (ref %.9g) vb %.9g (ref %.9g)", b, t[b], terms[b].mse, rterms[b * 3],
                    terms[b].vb, rterms[b * 3 + 1]);
        }
        th_ok(rterms && worst < 2e-5, "%s: per-sample mse, vb, loss, worst rel err %.2e", name, worst);
        th_ok(rloss && rel(loss, rloss[0]) < 2e-5, "%s: batch loss %.9g, ref %.9g, rel err %.2e", name, loss,
              rloss ? rloss[0] : 0, rloss ? rel(loss, rloss[0]) : 0);
        th_close("  d loss / d out against torch autograd", dout, rdout, B * no, 1e-10);
        free(rxt), free(rdout), free(rterms), free(rloss), free(pm), free(rpm);
    }

    /* finite differences of a float64 re-evaluation, one sample per t, on a prediction near its
     * target (so that the fp32 bins of the t = 0 decoder term are not lost to cancellation) */
    for (int b = 0; b < B; b++) {
        float *o1 = th_randn(no, 0.05f), *g1 = malloc(sizeof(float) * no);
        for (int64_t i = 0; i < n; i++) {
            float tg = lc->pred == RHD_PRED_EPS ? eps[b * n + i] : lc->pred == RHD_PRED_XSTART ? x0[b * n + i] : 0.f;
            o1[i] += tg;
            if (learned) o1[n + i] = tanhf(o1[n + i] * 20.f);
        }
        rhd_diffusion_training_loss(cpu, &s, lc->pred, lc->var, g1, NULL, o1, x0 + b * n, xt + b * n, eps + b * n, &t[b],
                                    NULL, 1, C, lc->HW);
        float *pred0 = malloc(sizeof(float) * n);
        memcpy(pred0, o1, sizeof(float) * n);
        fd_ctx f = {&s, x0 + b * n, xt + b * n, eps + b * n, o1, pred0, t[b], learned, lc->pred, n};
        char fdn[300];
        snprintf(fdn, sizeof fdn, "%s: gradient at t=%d vs float64 finite differences", name, t[b]);
        /* the floor: 1% of the sample's largest gradient. The fp32 gradient of the t = 0 decoder
         * term loses digits to cancellation in its smallest entries (RHD_TEST_SEED=961402726:
         * -4.807e-7 against -4.849e-7 in float64, far below the largest entries); a wrong term errs
         * by O(1) in the large entries, which the floor leaves judged relatively */
        double gmax = 0;
        for (int64_t i = 0; i < no; i++) gmax = fmax(gmax, fabs(g1[i]));
        th_fd_check(fdn, loss64, &f, o1, g1, no, 40, 1e-3, 2e-3, fmax(1e-7, 1e-2 * gmax));
        free(o1), free(g1), free(pred0);
    }

    /* 1 thread vs 2 threads: bitwise */
    float *d1 = malloc(sizeof(float) * B * no), *d2 = malloc(sizeof(float) * B * no);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    double l1 = rhd_diffusion_training_loss(cpu, &s, lc->pred, lc->var, d1, NULL, out, x0, xt, eps, t, w, B, C, lc->HW);
    omp_set_num_threads(2);
    double l2 = rhd_diffusion_training_loss(cpu, &s, lc->pred, lc->var, d2, NULL, out, x0, xt, eps, t, w, B, C, lc->HW);
    omp_set_num_threads(nt);
    th_ok(l1 == l2 && !memcmp(d1, d2, sizeof(float) * B * no), "%s: loss and gradient bitwise equal on 1 and 2 threads", name);

    if (gpu) {
        size_t bx = sizeof(float) * B * n, bo = sizeof(float) * B * no;
        float *gx0 = rhd_buf_alloc(gpu, bx), *geps = rhd_buf_alloc(gpu, bx), *gxt = rhd_buf_alloc(gpu, bx);
        float *gout = rhd_buf_alloc(gpu, bo), *gd = rhd_buf_alloc(gpu, bo);
        rhd_buf_upload(gpu, gx0, x0, bx), rhd_buf_upload(gpu, geps, eps, bx), rhd_buf_upload(gpu, gout, out, bo);
        rhd_diffusion_q_sample(gpu, &s, gxt, gx0, geps, t, B, n);
        double lg = rhd_diffusion_training_loss(gpu, &s, lc->pred, lc->var, gd, NULL, gout, gx0, gxt, geps, t, w, B, C, lc->HW);
        float *hxt = malloc(bx), *hd = malloc(bo);
        rhd_buf_download(gpu, hxt, gxt, bx), rhd_buf_download(gpu, hd, gd, bo);
        th_same_bytes("CUDA q_sample vs CPU (bitwise)", hxt, xt, B * n, 4);
        th_ok(rel(lg, loss) < 1e-6, "CUDA loss %.9g vs CPU %.9g", lg, loss);
        th_close("CUDA d loss / d out vs CPU", hd, dout, B * no, 1e-10);
        rhd_buf_free(gpu, gx0), rhd_buf_free(gpu, geps), rhd_buf_free(gpu, gxt), rhd_buf_free(gpu, gout), rhd_buf_free(gpu, gd);
        free(hxt), free(hd);
    } else {
        th_skip("no CUDA device: CUDA loss vs CPU");
    }
    free(x0), free(eps), free(out), free(u), free(xt), free(dout), free(d1), free(d2);
    rhd_diffusion_schedule_free(&s);
}

/* §10.11: with fp32 tables log(beta) and the clipped posterior log variance coincide at t = 999,
 * so the v channels get exactly zero gradient there; not at t = 0 or 537. */
static void test_v_gradient_zero(rhd_ctx *cpu) {
    rhd_diffusion_schedule s;
    make_chain(&s, "cosine_light", 1000, NULL);
    int C = 2;
    int64_t HW = 64, n = C * HW;
    float *x0 = th_randu(n, -1, 1), *eps = th_randn(n, 1), *out = th_randn(2 * n, 0.5f), *xt = malloc(sizeof(float) * n);
    float *d = malloc(sizeof(float) * 2 * n);
    int ts[3] = {999, 537, 0};
    for (int k = 0; k < 3; k++) {
        rhd_diffusion_q_sample(cpu, &s, xt, x0, eps, &ts[k], 1, n);
        rhd_diffusion_training_loss(cpu, &s, RHD_PRED_EPS, RHD_VAR_LEARNED_RANGE, d, NULL, out, x0, xt, eps, &ts[k], NULL, 1, C, HW);
        double m = 0;
        for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(d[n + i]));
        if (k == 0) th_ok(m == 0.0, "v-gradient at t=999 is exactly 0 with fp32 tables (max |dv| = %g; spec §10.11)", m);
        else th_ok(m > 0.0, "v-gradient at t=%d is nonzero (max |dv| = %.3g)", ts[k], m);
    }
    free(x0), free(eps), free(out), free(xt), free(d);
    rhd_diffusion_schedule_free(&s);
}

/* --- timestep samplers ---------------------------------------------------------------------------- */

static void test_tsamplers(void) {
    rhd_tsampler ts;
    rhd_err e;
    int T = 20, N = 200000;
    int *t = malloc(sizeof(int) * N);
    double *w = malloc(sizeof(double) * N), p[20];
    rhd_tsampler_init(&ts, RHD_TSAMPLER_UNIFORM, T, &e);
    rhd_tsampler_sample(&ts, N, th_seed(), RHD_STREAM(RHD_STREAM_TEST, 7), 0, t, w);
    long hist[20] = {0};
    double chi = 0, wsum = 0;
    for (int i = 0; i < N; i++) hist[t[i]]++, wsum += w[i];
    for (int k = 0; k < T; k++) chi += pow(hist[k] - (double)N / T, 2) / ((double)N / T);
    /* chi-square with 19 degrees of freedom: P(chi > 43.8) = 0.001 */
    th_ok(chi < 43.8 && wsum == N, "uniform sampler: %d draws over T=%d, chi2 = %.1f (< 43.8), all weights 1", N, T, chi);
    rhd_tsampler_free(&ts);

    rhd_tsampler_init(&ts, RHD_TSAMPLER_LOSS_SECOND_MOMENT, T, &e);
    float *loss = th_randu(12 * T, 0.1f, 2.f);
    int tt[1];
    double l[1];
    /* 9 losses each: not warmed up, uniform */
    for (int r = 0; r < 9; r++)
        for (int k = 0; k < T; k++) tt[0] = k, l[0] = loss[r * T + k] * (1 + k), rhd_tsampler_update(&ts, tt, l, 1);
    rhd_tsampler_probs(&ts, p);
    th_ok(p[0] == 1.0 / T && p[T - 1] == 1.0 / T, "loss-second-moment: uniform until every t has 10 losses");
    for (int r = 9; r < 12; r++)
        for (int k = 0; k < T; k++) tt[0] = k, l[0] = loss[r * T + k] * (1 + k), rhd_tsampler_update(&ts, tt, l, 1);
    th_ok(ts.count[3] == 10 && ts.history[3 * 10 + 9] == (double)(loss[11 * T + 3] * 4) &&
              ts.history[3 * 10] == (double)(loss[2 * T + 3] * 4),
          "loss-second-moment: the history keeps the last 10 losses per t, oldest first");
    rhd_tsampler_probs(&ts, p);
    const char *dir = th_subdir("tsampler");
    write_params(dir, "{}");
    int64_t sh[2] = {T, 10}, shc[1] = {T};
    th_save_t(dir, "history", RHD_F64, ts.history, 2, sh);
    th_save_t(dir, "count", RHD_I32, ts.count, 1, shc);
    double *rp = th_ref("ref_diffusion.py", "tsampler %s", dir) ? NULL : th_load_t(dir, "probs", RHD_F64, T);
    double worst = 0;
    for (int k = 0; k < T && rp; k++) worst = fmax(worst, rel(p[k], rp[k]));
    th_ok(rp && worst < 1e-13, "loss-second-moment probabilities (0.999/0.001 mixing) vs numpy: worst rel err %.2e", worst);
    rhd_tsampler_sample(&ts, N, th_seed(), RHD_STREAM(RHD_STREAM_TEST, 8), 0, t, w);
    memset(hist, 0, sizeof hist);
    chi = 0, wsum = 0;
    int wbad = 0;
    for (int i = 0; i < N; i++) {
        hist[t[i]]++, wsum += w[i];
        if (fabs(w[i] - 1.0 / (T * p[t[i]])) > 1e-12 * w[i]) wbad++;
    }
    for (int k = 0; k < T; k++) chi += pow(hist[k] - N * p[k], 2) / (N * p[k]);
    th_ok(chi < 43.8 && !wbad, "loss-second-moment draws follow p: chi2 = %.1f (< 43.8); weights 1/(T p_t); mean weight %.4f",
          chi, wsum / N);
    th_ok(fabs(wsum / N - 1) < 0.02, "importance weights average to 1 (%.4f)", wsum / N);
    /* state round trip and errors */
    rhd_tsampler ts2;
    rhd_tsampler_init(&ts2, RHD_TSAMPLER_LOSS_SECOND_MOMENT, T, &e);
    int rc = rhd_tsampler_load(&ts2, ts.history, ts.count, T, &e);
    double p2[20];
    rhd_tsampler_probs(&ts2, p2);
    th_ok(rc == 0 && !memcmp(p, p2, sizeof p), "loss-second-moment state reloads to the same probabilities");
    int32_t badc[20];
    memcpy(badc, ts.count, sizeof badc);
    badc[4] = 11;
    rc = rhd_tsampler_load(&ts2, ts.history, badc, T, &e);
    th_ok(rc && strstr(e.msg, "count[4] = 11, expected 0..10"), "bad state: %s", e.msg);
    rc = rhd_tsampler_load(&ts2, ts.history, ts.count, T + 1, &e);
    th_ok(rc && strstr(e.msg, "T = 21, expected 20"), "bad state: %s", e.msg);
    rhd_tsampler_kind k;
    th_ok(rhd_tsampler_kind_parse("importance", &k, &e) && strstr(e.msg, "expected uniform or loss-second-moment"), "%s", e.msg);
    rhd_tsampler_free(&ts);
    rhd_tsampler_free(&ts2);
    free(t), free(w), free(loss), free(rp);
}

/* §3.6: the timestep the network sees, through timestep_map and the time scale */
static void test_model_t(rhd_ctx *cpu) {
    rhd_diffusion_schedule up, base, sp;
    make_chain(&up, "sigmoid", 100, NULL);
    make_chain(&base, "cosine_light", 1000, NULL);
    make_chain(&sp, "cosine_light", 1000, "ddim10");
    th_ok(rhd_diffusion_model_t(&up, 9, RHD_TIME_SCALE_RESCALED) == 90.f && rhd_diffusion_model_t(&up, 99, 0) == 990.f &&
              rhd_diffusion_model_t(&up, 9, RHD_TIME_SCALE_RAW) == 9.f,
          "upsampler T=100: t=9 -> 90 at sampling (x10), 9 in training (raw); t=99 -> 990");
    th_ok(rhd_diffusion_model_t(&base, 999, 0) == 999.f && rhd_diffusion_model_t(&sp, 3, 0) == 300.f,
          "base T=1000: t -> t; respaced ddim10: step 3 -> timestep_map 300");
    /* training noise: per item, independent of the batch and of the other items */
    uint64_t keys[2] = {rhd_noise_key(th_seed(), "a"), rhd_noise_key(th_seed(), "b")};
    float e2[2 * 64], e1[64];
    rhd_diffusion_train_noise(cpu, e2, 2, 64, keys, 17);
    rhd_diffusion_train_noise(cpu, e1, 1, 64, keys + 1, 17);
    float ref0 = rhd_rng_normal(keys[0], RHD_STREAM(RHD_STREAM_DIFFUSION, 0x80000000u | 17), 5);
    th_ok(!memcmp(e1, e2 + 64, sizeof e1) && e2[5] == ref0 && memcmp(e2, e2 + 64, sizeof e1),
          "training noise: item b from (key_b, stream DIFFUSION | 2^31 | step, element); batch-independent");
    rhd_diffusion_schedule_free(&up), rhd_diffusion_schedule_free(&base), rhd_diffusion_schedule_free(&sp);
}

int main(void) {
    rhd_ctx *cpu, *gpu;
    th_open_backends(&cpu, &gpu);
    static const loss_case cases[] = {
        /* the base: hybrid loss, t = 0 (decoder NLL), small, middle, T-1 */
        {"cosine_light", 1000, NULL, RHD_PRED_EPS, RHD_VAR_LEARNED_RANGE, 5, 3, 40, {0, 1, 537, 999, -1}},
        {"cosine_light", 1000, NULL, RHD_PRED_EPS, RHD_VAR_LEARNED_RANGE, 3, 2, 2000, {0, 0, 0}},
        {"cosine_light", 1000, NULL, RHD_PRED_EPS, RHD_VAR_LEARNED_RANGE, 3, 2, 500, {-1, 3, 120}},
        {"cosine_light", 1000, "ddim50", RHD_PRED_EPS, RHD_VAR_LEARNED_RANGE, 3, 2, 100, {0, -1, 49}},
        {"linear", 250, NULL, RHD_PRED_EPS, RHD_VAR_LEARNED_RANGE, 3, 2, 100, {0, 17, 249}},
        /* the upsampler: x0 MSE */
        {"sigmoid", 100, NULL, RHD_PRED_XSTART, RHD_VAR_FIXED_LARGE, 3, 4, 60, {0, 42, 99}},
        {"sigmoid", 100, NULL, RHD_PRED_XSTART, RHD_VAR_LEARNED_RANGE, 2, 2, 60, {0, 50}},
        {"cosine", 1000, NULL, RHD_PRED_V, RHD_VAR_FIXED_LARGE, 2, 3, 60, {-1, 5}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_loss_case(cpu, gpu, &cases[i], (int)i);
    test_v_gradient_zero(cpu);
    test_model_t(cpu);
    test_tsamplers();
    rhd_ctx_close(cpu);
    if (gpu) rhd_ctx_close(gpu);
    return th_done();
}
