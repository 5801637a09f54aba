/* tests/models/test_degrade.c: the low-res synthesis of common/degrade.h against the independent
 * NumPy/SciPy/PyTorch references of tests/ref/ref_degrade.py, on fresh random inputs.
 *
 * Checks: the isotropic and anisotropic kernels (sizes 3..7, random parameters) against
 * fspecial / scipy.stats (and their sums are 1); the mirror-border blur against
 * scipy.ndimage.convolve (odd and even kernels); OpenCV-semantics resizes (linear and cubic;
 * down by a non-integer factor, by exactly 2, up); the MATLAB-style antialiased imresize at 1/2 on
 * even and odd sizes; the `none` chain against torch's bicubic; whole chains for drawn plans, with
 * each halving method, both blur kinds and both noise modes forced once, their choices and noise
 * field handed to the reference; a plan redrawn from the same (seed, stream, offset) is identical
 * and gives identical bits. */
#include "refcheck.h"
#include "common/degrade.h"

#define TOL 1e-10 /* nmse: float32 results of double sums vs float64 references */

static FILE *g_cases;
static const char *g_dir;
static int g_k;

static float *rand_img(int C, int H, int W, int k) {
    float *x = th_randn((long)C * H * W, 1.0f);
    char name[32];
    int64_t shp[3] = {C, H, W};
    snprintf(name, sizeof name, "in_%d", k);
    th_save(g_dir, name, x, 3, shp);
    return x;
}

typedef struct {
    const char *what;
    int k;
    float *got;
    long n;
} pending;
static pending g_p[64];
static int g_np;

/* the size when op 4 runs */
static void noise_size(const rhd_degrade_plan *p, int *h, int *w) {
    int H = p->H, W = p->W, a, b;
    double sf = p->sf;
    if (p->halve == RHD_HALVE_IMRESIZE) H = rhd_imresize_size(H, .5), W = rhd_imresize_size(W, .5), sf = p->sf / 2.0;
    else if (p->halve != RHD_HALVE_NONE) H = (int)(.5 * H), W = (int)(.5 * W), sf = p->sf / 2.0;
    a = W, b = H;
    for (int i = 0; i < 7; i++) {
        int op = p->order[i];
        if (op == 2) a = W, b = H, W = (int)(1.0 / p->s2 * W), H = (int)(1.0 / p->s2 * H);
        if (op == 3) W = (int)(1.0 / sf * a), H = (int)(1.0 / sf * b);
        if (op == 4) { *h = H, *w = W; }
    }
}

static void chain_case(rhd_degrade_plan *p, int C, const char *label) {
    int k = g_k++;
    float *x = rand_img(C, p->H, p->W, k);
    int oh, ow;
    rhd_degrade_out_size(p, &oh, &ow);
    float *y = malloc(sizeof(float) * (size_t)C * oh * ow);
    rhd_degrade_apply(p, y, x, C);
    char name[64], path[1200];
    snprintf(name, sizeof name, "plan_%d.json", k);
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"kind\":\"%s\",\"H\":%d,\"W\":%d,\"sf\":%d,\"halve\":%d,\"order\":[%d,%d,%d,%d,%d,%d,%d],"
               "\"blur\":%d,\"aniso\":%d,\"ksize\":%d,\"theta\":%.17g,\"l1\":%.17g,\"l2\":%.17g,\"sigma\":%.17g,"
               "\"s2\":%.17g,\"interp2\":%d,\"interp3\":%d,\"noise\":%d}\n",
            rhd_degrade_kind_name(p->kind), p->H, p->W, p->sf, p->halve, p->order[0], p->order[1], p->order[2],
            p->order[3], p->order[4], p->order[5], p->order[6], p->blur, p->blur_aniso, p->ksize, p->theta, p->l1,
            p->l2, p->sigma, p->s2, p->interp2, p->interp3, p->noise);
    fclose(f);
    if (p->kind != RHD_DEGRADE_NONE && p->noise) {
        int h = 0, w = 0;
        noise_size(p, &h, &w);
        int nc = p->noise == RHD_NOISE_ELEMENT ? C : 1;
        float *z = malloc(sizeof(float) * (size_t)nc * h * w);
        rhd_rng_fill_normal(z, (int64_t)nc * h * w, p->seed, p->stream, p->noise_offset, 0.f,
                            (float)(p->noise_level / 255.0));
        int64_t shp[3] = {nc, h, w};
        snprintf(name, sizeof name, "noise_%d", k);
        th_save(g_dir, name, z, 3, shp);
        free(z);
    }
    fprintf(g_cases, "chain %d plan_%d.json\n", k, k);
    char *what = malloc(200);
    snprintf(what, 200, "chain %s: %s halve %d order %d%d%d%d%d%d%d blur %d/%d k%d noise %d/%d -> %dx%d", label,
             rhd_degrade_kind_name(p->kind), p->halve, p->order[0], p->order[1], p->order[2], p->order[3], p->order[4],
             p->order[5], p->order[6], p->blur, p->blur_aniso, p->ksize, p->noise, p->noise_level, ow, oh);
    g_p[g_np++] = (pending){what, k, y, (long)C * oh * ow};
    free(x);
}

int main(void) {
    g_dir = th_subdir("degrade");
    char path[1200];
    snprintf(path, sizeof path, "%s/cases.txt", g_dir);
    g_cases = fopen(path, "w");
    uint64_t seed = th_seed();
    float *u = th_randu(64, 0, 1);
    int ui = 0;
    /* kernels */
    for (int size = 5; size <= 7; size++) {
        double *kk = malloc(sizeof(double) * size * size);
        double sigma = 0.2 + 1.2 * u[ui++];
        rhd_blur_kernel_iso(kk, size, sigma);
        float *kf = malloc(sizeof(float) * size * size);
        double s = 0;
        for (int i = 0; i < size * size; i++) kf[i] = (float)kk[i], s += kk[i];
        th_ok(fabs(s - 1) < 1e-12, "iso kernel %d sigma %.3f sums to 1 (%.15f)", size, sigma, s);
        fprintf(g_cases, "kiso %d %d %.17g\n", g_k, size, sigma);
        char *what = malloc(64);
        snprintf(what, 64, "iso kernel %dx%d sigma %.3f", size, size, sigma);
        g_p[g_np++] = (pending){what, g_k++, kf, (long)size * size};
        free(kk);
    }
    for (int size = 3; size <= 4; size++)
        for (int rep = 0; rep < 2; rep++) {
            double *kk = malloc(sizeof(double) * size * size);
            double th = M_PI * u[ui], l1 = 0.05 + 2 * u[ui + 1], l2 = 0.05 + 2 * u[ui + 2];
            ui += 3;
            rhd_blur_kernel_aniso(kk, size, th, l1, l2);
            float *kf = malloc(sizeof(float) * size * size);
            double s = 0;
            for (int i = 0; i < size * size; i++) kf[i] = (float)kk[i], s += kk[i];
            th_ok(fabs(s - 1) < 1e-12, "aniso kernel %d sums to 1 (%.15f)", size, s);
            fprintf(g_cases, "kaniso %d %d %.17g %.17g %.17g\n", g_k, size, th, l1, l2);
            char *what = malloc(96);
            snprintf(what, 96, "aniso kernel %dx%d theta %.3f l1 %.3f l2 %.3f", size, size, th, l1, l2);
            g_p[g_np++] = (pending){what, g_k++, kf, (long)size * size};
            free(kk);
        }
    /* blur */
    const int bsz[3] = {3, 4, 7};
    for (int i = 0; i < 3; i++) {
        int C = 3, H = 13, W = 17, size = bsz[i], k = g_k++;
        float *x = rand_img(C, H, W, k);
        double kk[49];
        float kf[49];
        double th = M_PI * u[ui], l1 = 0.3 + u[ui + 1], l2 = 0.3 + u[ui + 2];
        ui += 3;
        rhd_blur_kernel_aniso(kk, size, th, l1, l2);
        for (int j = 0; j < size * size; j++) kf[j] = (float)kk[j], kk[j] = kf[j];
        char name[32];
        int64_t ks[2] = {size, size};
        snprintf(name, sizeof name, "k_%d", k);
        th_save(g_dir, name, kf, 2, ks);
        float *y = malloc(sizeof(float) * C * H * W);
        rhd_blur_mirror(y, x, C, H, W, kk, size);
        fprintf(g_cases, "blur %d %d\n", k, size);
        char *what = malloc(64);
        snprintf(what, 64, "blur %dx%d mirror on 3x%dx%d", size, size, H, W);
        g_p[g_np++] = (pending){what, k, y, (long)C * H * W};
        free(x);
    }
    /* OpenCV resizes */
    const int rs[4][4] = {{64, 48, 29, 17}, {32, 32, 16, 16}, {13, 11, 30, 25}, {40, 24, 9, 7}};
    for (int i = 0; i < 4; i++)
        for (int interp = 1; interp <= 2; interp++) {
            int C = 3, W = rs[i][0], H = rs[i][1], ow = rs[i][2], oh = rs[i][3], k = g_k++;
            float *x = rand_img(C, H, W, k);
            float *y = malloc(sizeof(float) * C * oh * ow);
            rhd_cv_resize(y, ow, oh, x, C, W, H, (rhd_cv_interp)interp);
            fprintf(g_cases, "cv %d %d %d %d\n", k, ow, oh, interp);
            char *what = malloc(64);
            snprintf(what, 64, "cv resize %s %dx%d -> %dx%d", interp == 1 ? "linear" : "cubic", W, H, ow, oh);
            g_p[g_np++] = (pending){what, k, y, (long)C * oh * ow};
            free(x);
        }
    /* MATLAB imresize */
    const int is[2][2] = {{32, 32}, {33, 40}};
    for (int i = 0; i < 2; i++) {
        int C = 2, H = is[i][0], W = is[i][1], k = g_k++;
        float *x = rand_img(C, H, W, k);
        int oh = rhd_imresize_size(H, .5), ow = rhd_imresize_size(W, .5);
        float *y = malloc(sizeof(float) * C * oh * ow);
        rhd_imresize(y, x, C, H, W, 0.5);
        fprintf(g_cases, "imresize %d 0.5\n", k);
        char *what = malloc(64);
        snprintf(what, 64, "imresize 1/2 %dx%d -> %dx%d", W, H, ow, oh);
        g_p[g_np++] = (pending){what, k, y, (long)C * oh * ow};
        free(x);
    }
    /* chains */
    rhd_degrade_plan p;
    rhd_degrade_draw(&p, RHD_DEGRADE_NONE, 32, 32, 4, seed, RHD_STREAM(RHD_STREAM_TEST, 7), 0);
    chain_case(&p, 4, "none");
    rhd_degrade_draw(&p, RHD_DEGRADE_AREA, 32, 48, 4, seed, RHD_STREAM(RHD_STREAM_TEST, 8), 0);
    chain_case(&p, 3, "area");
    rhd_degrade_draw(&p, RHD_DEGRADE_AREA, 32, 32, 2, seed, RHD_STREAM(RHD_STREAM_TEST, 9), 0);
    chain_case(&p, 3, "area");
    for (int i = 0; i < 4; i++) {
        rhd_degrade_draw(&p, i & 1 ? RHD_DEGRADE_STRONG : RHD_DEGRADE_NORMAL, 64, 64, 4, seed,
                         RHD_STREAM(RHD_STREAM_TEST, 100 + i), 0);
        chain_case(&p, 5, "drawn");
    }
    for (int i = 0; i < 3; i++) { /* forced choices: each halving, both blurs, both noises */
        rhd_degrade_draw(&p, RHD_DEGRADE_NORMAL, 64, 64, 4, seed, RHD_STREAM(RHD_STREAM_TEST, 200 + i), 0);
        p.halve = (rhd_halve)(i + 1);
        p.blur = 1, p.blur_aniso = i & 1;
        p.ksize = p.blur_aniso ? 3 + (i > 1) : 5 + i;
        p.theta = 1.0 + i, p.l1 = 0.7, p.l2 = 1.3, p.sigma = 0.8;
        p.noise = i == 1 ? RHD_NOISE_SHARED : RHD_NOISE_ELEMENT;
        chain_case(&p, 5, "forced");
    }
    for (int i = 0; i < 4; i++) { /* rhd-train --factor: 2 and 8, halved first or not (the draw halves only at
                                    * factor 4, as the original; a forced halving keeps the chain's generality) */
        int sf = i < 2 ? 2 : 8;
        rhd_degrade_draw(&p, RHD_DEGRADE_NORMAL, 64, 64, sf, seed, RHD_STREAM(RHD_STREAM_TEST, 400 + i), 0);
        p.halve = i & 1 ? RHD_HALVE_CV_CUBIC : RHD_HALVE_NONE;
        chain_case(&p, 3, sf == 2 ? "factor 2" : "factor 8");
    }
    int sizes_ok = 1;
    for (int i = 0; i < 200; i++) { /* every drawn plan of factors 1..8 ends at H/sf */
        int sf = 1 + i % 8, H = 8 * 3 * 4, oh, ow;
        rhd_degrade_draw(&p, i & 1 ? RHD_DEGRADE_STRONG : RHD_DEGRADE_NORMAL, H, H, sf, seed, RHD_STREAM(RHD_STREAM_TEST, 500 + i), 0);
        rhd_degrade_out_size(&p, &oh, &ow);
        sizes_ok &= oh == H / sf && ow == H / sf;
    }
    th_ok(sizes_ok, "200 drawn plans of factors 1..8 on 96 x 96: every output side is 96/sf");
    int halved4 = 0, halved_other = 0;
    for (int i = 0; i < 300; i++) { /* the original halves first only at sf 4 (`if sf == 4 and random() < 0.2`) */
        int sf = i % 3 == 0 ? 4 : i % 3 == 1 ? 2 : 8;
        rhd_degrade_draw(&p, RHD_DEGRADE_NORMAL, 64, 64, sf, seed, RHD_STREAM(RHD_STREAM_TEST, 900 + i), 0);
        if (p.halve != RHD_HALVE_NONE) *(sf == 4 ? &halved4 : &halved_other) += 1;
    }
    th_ok(halved4 >= 5 && halved4 <= 38 && halved_other == 0,
          "halving drawn only at sf 4: %d of 100 plans at sf 4 (expected ~20), %d of 200 at sf 2 and 8", halved4, halved_other);
    fclose(g_cases);
    int rc = th_ref("ref_degrade.py", "%s", g_dir);
    for (int i = 0; i < g_np; i++) {
        char name[32];
        snprintf(name, sizeof name, "out_%d", g_p[i].k);
        float *ref = rc ? NULL : th_load(g_dir, name, g_p[i].n);
        if (ref) th_close(g_p[i].what, g_p[i].got, ref, g_p[i].n, TOL);
        else th_ok(0, "%s: reference unavailable", g_p[i].what);
        free(ref);
    }
    /* reproducibility */
    rhd_degrade_plan a, b;
    rhd_degrade_draw(&a, RHD_DEGRADE_NORMAL, 64, 64, 4, seed, RHD_STREAM(RHD_STREAM_TEST, 300), 5);
    rhd_degrade_draw(&b, RHD_DEGRADE_NORMAL, 64, 64, 4, seed, RHD_STREAM(RHD_STREAM_TEST, 300), 5);
    th_ok(!memcmp(&a, &b, sizeof a), "a plan redrawn from the same (seed, stream, offset) is identical");
    a.noise = RHD_NOISE_ELEMENT;
    float *x = th_randn(2 * 64 * 64, 1);
    float y1[2 * 16 * 16], y2[2 * 16 * 16];
    rhd_degrade_apply(&a, y1, x, 2);
    rhd_degrade_apply(&a, y2, x, 2);
    th_same_bytes("the same plan twice", y1, y2, 2 * 16 * 16, 4);
    free(x), free(u);
    return th_done();
}
