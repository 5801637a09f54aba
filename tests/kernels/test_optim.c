/* tests/kernels/test_optim.c: optimiser steps (kernels/optim.h).
 * (b) Adam and AdamW against torch.optim.Adam/AdamW over several steps (params and both moments),
 * with the fitting's settings (betas (0.9, 0.99), eps 1e-8 for the triplane and 1e-15 for the
 * decoder), L2 and decoupled weight decay, gradients with zeros and tiny values; clipping against
 * torch.nn.utils.clip_grad_norm_ over several tensors, clipping and not; EMA against the formula
 * in double; the gradient norm bit-identical for 1, 2 and 3 threads and on a parameter table
 * with alignment padding; (c) CUDA vs CPU when a device is present. There is no finite-difference
 * check: these are updates, not functions with gradients. */
#include "refcheck.h"
#include "kernels/optim.h"
#include <omp.h>

static rhd_ctx *cpu;

typedef struct {
    int64_t n;
    int steps;
    rhd_adam_cfg cfg;
    char dir[1024];
    float *p, *m, *v;
} adam_case;
static adam_case acases[16];
static int nac;
static char jobs[8192];

static void job(const char *fmt, const char *dir, const char *args) {
    snprintf(jobs + strlen(jobs), sizeof jobs - strlen(jobs), "%s%s %s %s", jobs[0] ? " + " : "", fmt, dir, args);
}

static void adam_prepare(int64_t n, int steps, double lr, double b1, double b2, double eps, double wd, int decoupled) {
    adam_case *t = &acases[nac++];
    rhd_adam_cfg cfg = {lr, b1, b2, eps, wd, decoupled};
    *t = (adam_case){n, steps, cfg, "", th_randn(n, 1.f), calloc(n, sizeof(float)), calloc(n, sizeof(float))};
    float *p0 = malloc(sizeof(float) * n), *grads = th_randn(steps * n, 0.5f);
    memcpy(p0, t->p, sizeof(float) * n);
    for (int64_t i = 0; i < steps * n; i += 11) grads[i] = 0.f;      /* zero gradients: m/(sqrt(v)+eps) with v = 0 */
    for (int64_t i = 5; i < steps * n; i += 13) grads[i] *= 1e-9f;  /* tiny ones: where eps matters */
    for (int s = 0; s < steps; s++) rhd_adam_step(cpu, t->p, t->m, t->v, grads + s * n, n, &cfg, s + 1);
    char sub[64], args[256];
    snprintf(sub, sizeof sub, "adam_%d", nac);
    snprintf(t->dir, sizeof t->dir, "%s", th_subdir(sub));
    th_save(t->dir, "p0", p0, 1, (int64_t[]){n});
    th_save(t->dir, "grads", grads, 2, (int64_t[]){steps, n});
    snprintf(args, sizeof args, "%s %.17g %.17g %.17g %.17g %.17g", decoupled ? "adamw" : "adam", lr, b1, b2, eps, wd);
    job("adam", t->dir, args);
    free(p0), free(grads);
}

static void adam_check(adam_case *t, int ref_ok) {
    char what[200], name[256];
    snprintf(what, sizeof what, "%s n=%lld steps=%d lr=%g betas=(%g,%g) eps=%g wd=%g", t->cfg.decoupled ? "adamw" : "adam",
             (long long)t->n, t->steps, t->cfg.lr, t->cfg.beta1, t->cfg.beta2, t->cfg.eps, t->cfg.weight_decay);
    const char *names[3] = {"p", "m", "v"};
    float *ours[3] = {t->p, t->m, t->v};
    for (int k = 0; k < 3; k++) {
        float *ref = ref_ok ? th_load(t->dir, names[k], t->n) : NULL;
        snprintf(name, sizeof name, "%s cpu~torch %s", names[k], what);
        if (ref) th_close(name, ours[k], ref, t->n, 1e-13);
        else th_ok(0, "%s: reference failed", name);
        free(ref), free(ours[k]);
    }
}

typedef struct {
    int64_t n;
    double max_norm, norm;
    char sizes[128], dir[1024];
    float *g;
} clip_case;
static clip_case ccases[8];
static int ncc;

static void clip_prepare(const int *sizes, int nsizes, double max_norm) {
    clip_case *t = &ccases[ncc++];
    memset(t, 0, sizeof *t);
    for (int i = 0; i < nsizes; i++) {
        t->n += sizes[i];
        snprintf(t->sizes + strlen(t->sizes), sizeof t->sizes - strlen(t->sizes), "%s%d", i ? "," : "", sizes[i]);
    }
    t->max_norm = max_norm;
    t->g = th_randn(t->n, 1.f);
    char sub[64], args[256];
    snprintf(sub, sizeof sub, "clip_%d", ncc);
    snprintf(t->dir, sizeof t->dir, "%s", th_subdir(sub));
    th_save(t->dir, "g", t->g, 1, (int64_t[]){t->n});
    t->norm = rhd_clip_grad_norm(cpu, t->g, t->n, max_norm);
    snprintf(args, sizeof args, "%.17g %s", max_norm, t->sizes);
    job("clip", t->dir, args);
}

static void clip_check(clip_case *t, int ref_ok) {
    char what[200], name[256];
    snprintf(what, sizeof what, "sizes=%s max_norm=%g", t->sizes, t->max_norm);
    float *rn = ref_ok ? th_load(t->dir, "norm", 2) : NULL, *rg = ref_ok ? th_load(t->dir, "g_clipped", t->n) : NULL;
    if (rn) {
        double ref = (double)rn[0] + rn[1], rel = fabs(t->norm - ref) / ref; /* torch's norm is fp32 */
        th_ok(rel <= 1e-6, "clip_grad_norm norm cpu~torch %s: %.9g vs %.9g (rel err %.2e, %s)", what, t->norm, ref, rel,
              t->norm > t->max_norm ? "clipped" : "not clipped");
    } else {
        th_ok(0, "clip_grad_norm norm cpu~torch %s: reference failed", what);
    }
    snprintf(name, sizeof name, "clip_grad_norm grads cpu~torch %s", what);
    if (rg) th_close(name, t->g, rg, t->n, 1e-12);
    else th_ok(0, "%s: reference failed", name);
    free(rn), free(rg), free(t->g);
}

static void test_ema(int64_t n, double rate) {
    float *ema = th_randn(n, 1.f), *p = th_randn(n, 1.f), *ref = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) ref[i] = (float)(rate * ema[i] + (1 - rate) * p[i]);
    rhd_ema_update(cpu, ema, p, n, rate);
    char name[128];
    snprintf(name, sizeof name, "ema cpu~formula n=%lld rate=%g", (long long)n, rate);
    th_close(name, ema, ref, n, 1e-13);
    free(ema), free(p), free(ref);
}

static void test_norm(void) {
    int64_t n = 1000003;
    float *g = th_randn(n, 1.f);
    int saved = omp_get_max_threads(), same = 1;
    double nr[3];
    for (int t = 0; t < 3; t++) {
        omp_set_num_threads(t + 1);
        nr[t] = rhd_grad_norm(cpu, g, n);
        same &= memcmp(&nr[t], &nr[0], sizeof(double)) == 0;
    }
    omp_set_num_threads(saved);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    th_ok(same && fabs(nr[0] - sqrt(s)) <= 1e-12 * sqrt(s), "grad_norm n=%lld bit-identical for 1, 2, 3 threads (%.15g)",
          (long long)n, nr[0]);
    free(g);

    /* a parameter table: the padding between tensors stays zero through Adam and clipping */
    rhd_params P;
    rhd_params_init(&P);
    rhd_params_add(&P, "a", 2, (int64_t[]){3, 5});
    rhd_params_add(&P, "b", 1, (int64_t[]){7});
    rhd_params_add(&P, "c", 1, (int64_t[]){130});
    rhd_params_alloc(&P, cpu, 1, 1);
    int64_t off, cnt;
    rhd_params_range(&P, 1, 2, &off, &cnt);
    for (int i = 0; i < P.n; i++)
        for (int64_t k = 0; k < P.info[i].numel; k++) rhd_param(&P, i)[k] = 0.5f, rhd_param_grad(&P, i)[k] = 1.f;
    rhd_adam_cfg cfg = {1e-2, 0.9, 0.99, 1e-8, 0.1, 1};
    rhd_adam_step(cpu, P.data + off, P.m + off, P.v + off, P.grad + off, cnt, &cfg, 1);
    double nrm = rhd_clip_grad_norm(cpu, P.grad, P.total, 1.0);
    int pad_zero = 1;
    for (int i = 0; i + 1 < P.n; i++)
        for (int64_t k = P.info[i].offset + P.info[i].numel; k < P.info[i + 1].offset; k++)
            pad_zero &= P.data[k] == 0.f && P.grad[k] == 0.f && P.m[k] == 0.f && P.v[k] == 0.f;
    int a_untouched = rhd_param(&P, 0)[0] == 0.5f && P.m[P.info[0].offset] == 0.f;
    th_ok(pad_zero && a_untouched && fabs(nrm - sqrt(152.0)) < 1e-9 && off == P.info[1].offset && cnt == 130 + (P.info[2].offset - P.info[1].offset),
          "parameter table: group range [%lld, +%lld), padding stays zero, other group untouched, norm %.9g", (long long)off,
          (long long)cnt, nrm);
    rhd_params_free(&P);
}

static void test_cuda(int64_t n) {
    char name[160];
    snprintf(name, sizeof name, "optim cpu~cuda n=%lld", (long long)n);
    if (!rhd_cuda_available()) {
        th_skip("no CUDA device (%s)", name);
        return;
    }
    rhd_err e;
    rhd_ctx *gpu = rhd_ctx_open("cuda", &e);
    RHD_ASSERT(gpu);
    /* buffers: p, m, v, g, ema in one host array, mirrored on the device */
    float *h = th_randn(5 * n, 1.f), *hg = malloc(sizeof(float) * 5 * n);
    for (int64_t i = n; i < 3 * n; i++) h[i] = 0.f;
    float *d = rhd_buf_alloc(gpu, sizeof(float) * 5 * n);
    rhd_buf_upload(gpu, d, h, sizeof(float) * 5 * n);
    rhd_adam_cfg cfgs[2] = {{2e-2, 0.9, 0.99, 1e-15, 0.0, 0}, {1e-3, 0.9, 0.999, 1e-8, 1e-2, 1}};
    double nc = 0, ng = 0;
    for (int s = 1; s <= 4; s++) {
        rhd_adam_cfg *c = &cfgs[s % 2];
        rhd_adam_step(cpu, h, h + n, h + 2 * n, h + 3 * n, n, c, s);
        rhd_adam_step(gpu, d, d + n, d + 2 * n, d + 3 * n, n, c, s);
        rhd_ema_update(cpu, h + 4 * n, h, n, 0.9999);
        rhd_ema_update(gpu, d + 4 * n, d, n, 0.9999);
    }
    nc = rhd_clip_grad_norm(cpu, h + 3 * n, n, 0.5);
    ng = rhd_clip_grad_norm(gpu, d + 3 * n, n, 0.5);
    rhd_buf_download(gpu, hg, d, sizeof(float) * 5 * n);
    char n2[200];
    snprintf(n2, sizeof n2, "%s adam/adamw p|m|v, clipped grad, ema", name);
    th_close(n2, hg, h, 5 * n, 1e-12);
    th_ok(fabs(nc - ng) <= 1e-12 * nc, "%s grad norm %.15g vs %.15g", name, nc, ng);
    rhd_buf_free(gpu, d);
    rhd_ctx_close(gpu);
    free(h), free(hg);
}

int main(void) {
    rhd_err e;
    cpu = rhd_ctx_open("cpu", &e);
    RHD_ASSERT(cpu);
    adam_prepare(1037, 5, 2e-2, 0.9, 0.99, 1e-8, 0.0, 0);   /* triplane group */
    adam_prepare(333, 7, 2e-3, 0.9, 0.99, 1e-15, 0.0, 0);   /* decoder group */
    adam_prepare(100, 3, 1e-2, 0.9, 0.999, 1e-8, 0.1, 0);   /* Adam with L2 weight decay */
    adam_prepare(517, 6, 1e-3, 0.9, 0.999, 1e-8, 1e-2, 1);  /* AdamW */
    adam_prepare(64, 4, 1e-2, 0.9, 0.99, 1e-15, 0.05, 1);   /* AdamW, eps 1e-15 */
    clip_prepare((int[]){100, 37, 1, 500}, 4, 1.0);
    clip_prepare((int[]){100, 37, 1, 500}, 4, 1e3);
    clip_prepare((int[]){1}, 1, 0.1);
    int ref_ok = th_ref("ref_render.py", "%s", jobs) == 0;
    for (int i = 0; i < nac; i++) adam_check(&acases[i], ref_ok);
    for (int i = 0; i < ncc; i++) clip_check(&ccases[i], ref_ok);
    test_ema(1001, 0.9999);
    test_ema(7, 0.5);
    test_norm();
    test_cuda(100003);
    rhd_ctx_close(cpu);
    return th_done();
}
