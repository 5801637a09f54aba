/* tests/models/test_decoder_cuda.c: the pieces that let the decoder, renderer and fitter run on
 * either backend, and the CUDA backend against the CPU reference.
 *
 * Always (CPU):
 *   - the IWC penalty (kernels/losses.h rhd_loss_iwc): value against a float64 sum written here
 *     and its gradient by finite differences;
 *   - inference compositing (kernels/composite.h rhd_composite_infer): against the analytic
 *     opacity of a constant-density ray, 1 - exp(-sigma*delta*k), and against the training
 *     compositing of the same samples (a different recurrence: T *= 1 - alpha instead of
 *     T = 1 - sum w) with T_thresh = 0, iteration by iteration;
 *   - rhd_decoder_infer on the CPU = the forward / the density path.
 * With a CUDA device (else SKIPs):
 *   - the glue ops (copy_cols, scale, sqr_acc, iwc, composite_infer + finish, march_infer_begin);
 *   - the decoder's per-layer forward, backward (triplane and every parameter gradient) and density
 *     path; the fused inference kernel with and without colour, at the default size and at a small
 *     one whose sigma_net.2 is narrow (the per-pair path), with a partial last tile;
 *   - a renderer training step on packed samples (pred, MSE, triplane and decoder gradients) and a
 *     full inference render (grid warm-up, colour, opacity, depth). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "common/models/decoder.h"
#include "common/models/renderer.h"
#include "kernels/composite.h"
#include "kernels/elementwise.h"
#include "kernels/losses.h"
#include "kernels/march.h"
#include "harness.h"
#include "refcheck.h"

/* ---- helpers: host <-> context copies ---- */

static float *up(rhd_ctx *c, const void *h, size_t bytes) {
    void *d = rhd_buf_alloc(c, bytes);
    rhd_buf_upload(c, d, h, bytes);
    return d;
}

static float *down(rhd_ctx *c, const void *d, size_t bytes) {
    void *h = malloc(bytes);
    rhd_buf_download(c, h, d, bytes);
    return h;
}

static float *unit_dirs(int64_t M) {
    float *d = th_randn(3 * M, 1.f);
    for (int64_t i = 0; i < M; i++) {
        float *v = d + 3 * i, n = sqrtf(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
        for (int a = 0; a < 3; a++) v[a] /= n;
    }
    return d;
}

/* ---- CPU: IWC penalty ---- */

typedef struct iwc_case {
    rhd_ctx *ctx;
    float *theta, *F, *opt;
    long n;
    double w;
} iwc_case;

static double iwc_loss(void *u) {
    iwc_case *c = u;
    return rhd_loss_iwc(c->ctx, NULL, c->theta, c->F, c->opt, c->n, c->w);
}

static void test_iwc_cpu(rhd_ctx *ctx) {
    long n = 20011; /* more than two reduction chunks, odd */
    iwc_case c = {ctx, th_randn(n, 1.f), th_randu(n, 0.f, 2.f), th_randn(n, 1.f), n, 0.37};
    double want = 0;
    for (long i = 0; i < n; i++) {
        double d = (double)c.theta[i] - c.opt[i];
        want += (double)c.F[i] * d * d;
    }
    want *= c.w;
    float *g = calloc((size_t)n, sizeof(float));
    double got = rhd_loss_iwc(ctx, g, c.theta, c.F, c.opt, n, c.w);
    th_ok(fabs(got - want) <= 1e-12 * fabs(want), "iwc penalty n=%ld: %.15g vs float64 sum %.15g", n, got, want);
    /* floor 1e-3 (the gradients are of order 1): the loss squares float differences, so at a point
     * where theta is within 1e-4 of opt the central difference carries ~1e-11 of rounding against a
     * 1e-6 change, a relative error of a few 1e-6 in a gradient of 3e-5 (a seed found it) */
    th_fd_check("iwc penalty gradient", iwc_loss, &c, c.theta, g, n, 24, 1e-2, 1e-6, 1e-3);
    float *g2 = malloc(sizeof(float) * n);
    for (long i = 0; i < n; i++) g2[i] = 1.f;
    rhd_loss_iwc(ctx, g2, c.theta, c.F, c.opt, n, c.w);
    int acc = 1;
    for (long i = 0; i < n; i++) acc &= fabsf(g2[i] - 1.f - g[i]) <= 1e-6f * (1.f + fabsf(g[i]));
    th_ok(acc, "iwc penalty gradient accumulates (+=)");
    free(c.theta), free(c.F), free(c.opt), free(g), free(g2);
}

/* ---- CPU: inference compositing ---- */

static void test_composite_infer_cpu(rhd_ctx *ctx) {
    /* one ray, constant sigma and delta, three iterations of 4 slots: A after k slots is
     * 1 - exp(-sigma delta k); colour c gives rgb = c A */
    const int n_step = 4;
    float sigma[4] = {3.f, 3.f, 3.f, 3.f}, d0[4] = {0.05f, 0.05f, 0.05f, 0.05f}, d1[4] = {0.05f, 0.05f, 0.05f, 0.05f};
    float c[12] = {0.2f, 0.5f, 0.9f, 0.2f, 0.5f, 0.9f, 0.2f, 0.5f, 0.9f, 0.2f, 0.5f, 0.9f};
    float rgb[3] = {0}, A = 0, dacc = 0, t_cur = 0.7f;
    int32_t alive = 0;
    uint8_t stop = 9;
    double want_d = 0, Tprev = 1;
    for (int it = 0; it < 3; it++) {
        rhd_composite_infer(ctx, rgb, &A, &dacc, &stop, &alive, &t_cur, sigma, c, d0, d1, 1, n_step, 0.f);
        for (int k = 1; k <= n_step; k++) {
            double Tk = exp(-3.0 * 0.05 * (it * n_step + k));
            want_d += (Tprev - Tk) * (t_cur + 0.05 * k);
            Tprev = Tk;
        }
        t_cur += 0.2f;
    }
    double wantA = 1 - exp(-3.0 * 0.05 * 12);
    th_ok(fabs(A - wantA) < 2e-6 && fabs(rgb[1] - 0.5 * wantA) < 2e-6 && stop == 0,
          "composite_infer: constant density, 12 slots: A %.7f (analytic %.7f), rgb.g %.7f, stop %d", A, wantA, rgb[1],
          stop);
    th_ok(fabs(dacc - want_d) < 1e-5, "composite_infer: weighted depth %.7f (analytic %.7f)", dacc, want_d);
    /* early stop: a dense slot drives T below the threshold, the next slot is the last one */
    float s2[4] = {200.f, 200.f, 200.f, 200.f}, rgb2[3] = {0}, A2 = 0, t2 = 0;
    rhd_composite_infer(ctx, rgb2, &A2, NULL, &stop, &alive, &t2, s2, c, d0, d1, 1, n_step, 1e-4f);
    th_ok(stop == 1, "composite_infer: stops once T < T_thresh (A %.6f)", A2);
    float z0[4] = {0.05f, 0.f, 0.05f, 0.05f};
    float rgb3[3] = {0}, A3 = 0, t3 = 0;
    rhd_composite_infer(ctx, rgb3, &A3, NULL, &stop, &alive, &t3, sigma, c, z0, d1, 1, n_step, 0.f);
    th_ok(stop == 1 && fabsf(A3 - (1.f - expf(-0.15f))) < 1e-6f, "composite_infer: stops at a slot with delta0 = 0");

    /* against training compositing (T_thresh 0: both composite every slot) */
    const int N = 53, ns = 7;
    int64_t M = (int64_t)N * ns;
    float *sg = th_randu(M, 0.f, 30.f), *cc = th_randu(3 * M, 0.f, 1.f), *e0 = th_randu(M, 0.001f, 0.05f);
    float *e1 = th_randu(M, 0.001f, 0.05f);
    int32_t *rays = malloc(sizeof(int32_t) * 2 * N), *al = malloc(sizeof(int32_t) * N);
    for (int r = 0; r < N; r++) rays[2 * r] = r * ns, rays[2 * r + 1] = ns, al[r] = r;
    float *pred = malloc(sizeof(float) * 3 * N), *At = malloc(sizeof(float) * N);
    rhd_composite_cfg cfg = rhd_composite_cfg_default();
    cfg.bg[0] = cfg.bg[1] = cfg.bg[2] = 0.f;
    cfg.T_thresh = 0.f;
    rhd_composite_forward(ctx, pred, At, NULL, NULL, sg, cc, e0, e1, rays, NULL, NULL, N, M, &cfg);
    float *ri = calloc(3 * (size_t)N, sizeof(float)), *Ai = calloc((size_t)N, sizeof(float));
    float *tc = calloc((size_t)N, sizeof(float));
    uint8_t *st = malloc((size_t)N);
    rhd_composite_infer(ctx, ri, Ai, NULL, st, al, tc, sg, cc, e0, e1, N, ns, 0.f);
    th_close("composite_infer vs training compositing: rgb", ri, pred, 3 * N, 1e-10);
    th_close("composite_infer vs training compositing: opacity", Ai, At, N, 1e-10);
    float bg[3] = {1.f, 0.5f, 0.25f}, *fin = malloc(sizeof(float) * 3 * N);
    rhd_composite_infer_finish(ctx, fin, NULL, ri, Ai, NULL, NULL, NULL, bg, N);
    int ok = 1;
    for (int r = 0; r < N; r++)
        for (int j = 0; j < 3; j++) ok &= fin[3 * r + j] == ri[3 * r + j] + (1.f - Ai[r]) * bg[j];
    th_ok(ok, "composite_infer_finish: rgb + (1 - A) bg");
    free(sg), free(cc), free(e0), free(e1), free(rays), free(al), free(pred), free(At), free(ri), free(Ai), free(tc);
    free(st), free(fin);
}

/* ---- the decoder on one backend, outputs on the host ---- */

typedef struct dec_out {
    float *sigma, *rgb, *dplanes, *dparams, *sig_den, *inf_sigma, *inf_rgb, *inf_den;
} dec_out;

static void dec_out_free(dec_out *o) {
    free(o->sigma), free(o->rgb), free(o->dplanes), free(o->dparams), free(o->sig_den), free(o->inf_sigma);
    free(o->inf_rgb), free(o->inf_den);
}

static void run_decoder(rhd_ctx *ctx, const rhd_decoder_cfg *cfg, const float *wts, const float *planes, int R,
                        int clamp, const float *pts, const float *dirs, const float *dsig, const float *drgb, int64_t M,
                        dec_out *o) {
    rhd_err e = {0};
    rhd_decoder d;
    RHD_ASSERT(!rhd_decoder_init(&d, cfg, ctx, 1, &e));
    size_t pb = sizeof(float) * (size_t)d.P.total, tb = sizeof(float) * 3 * (size_t)cfg->C * R * R;
    rhd_buf_upload(ctx, d.P.data, wts, pb);
    rhd_buf_zero(ctx, d.P.grad, pb);
    float *pl = up(ctx, planes, tb), *p = up(ctx, pts, 12 * (size_t)M), *di = up(ctx, dirs, 12 * (size_t)M);
    float *ds = up(ctx, dsig, 4 * (size_t)M), *dr = up(ctx, drgb, 12 * (size_t)M);
    float *sg = rhd_buf_alloc(ctx, 4 * (size_t)M), *rg = rhd_buf_alloc(ctx, 12 * (size_t)M);
    float *dpl = rhd_buf_alloc(ctx, tb);
    rhd_buf_zero(ctx, dpl, tb);
    rhd_decoder_acts a = {0};
    rhd_decoder_forward(ctx, &d, &a, sg, rg, p, di, pl, R, clamp, M);
    o->sigma = down(ctx, sg, 4 * (size_t)M), o->rgb = down(ctx, rg, 12 * (size_t)M);
    rhd_decoder_backward(ctx, &d, &a, dpl, ds, dr, p, pl, R, clamp, M, 1);
    o->dplanes = down(ctx, dpl, tb), o->dparams = down(ctx, d.P.grad, pb);
    rhd_decoder_density(ctx, &d, &a, sg, p, pl, R, clamp, M);
    o->sig_den = down(ctx, sg, 4 * (size_t)M);
    rhd_decoder_infer(ctx, &d, &a, sg, rg, p, di, pl, R, clamp, M);
    o->inf_sigma = down(ctx, sg, 4 * (size_t)M), o->inf_rgb = down(ctx, rg, 12 * (size_t)M);
    rhd_decoder_infer(ctx, &d, &a, sg, NULL, p, NULL, pl, R, clamp, M);
    o->inf_den = down(ctx, sg, 4 * (size_t)M);
    rhd_decoder_acts_free(&a);
    float *all[] = {pl, p, di, ds, dr, sg, rg, dpl};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) rhd_buf_free(ctx, all[i]);
    rhd_decoder_free(&d);
}

static void decoder_case(rhd_ctx *cpu, rhd_ctx *gpu, int C, int hidden, int geo, int R, int64_t M, int clamp,
                         int agg) {
    rhd_err e = {0};
    rhd_decoder_cfg cfg;
    rhd_decoder_cfg_default(&cfg);
    cfg.C = C, cfg.hidden = hidden, cfg.geo = geo, cfg.agg = agg;
    rhd_decoder d;
    RHD_ASSERT(!rhd_decoder_init(&d, &cfg, cpu, 0, &e));
    rhd_decoder_init_weights(&d, th_seed());
    int64_t P = d.P.total, tn = (int64_t)3 * C * R * R;
    float *planes = th_randu(tn, -1.2f, 1.2f), *pts = th_randu(3 * M, -1.02f, 1.02f), *dirs = unit_dirs(M);
    float *dsig = th_randn(M, 1.f), *drgb = th_randn(3 * M, 1.f);
    dec_out a = {0}, b = {0};
    run_decoder(cpu, &cfg, d.P.data, planes, R, clamp, pts, dirs, dsig, drgb, M, &a);
    char nm[160];
    snprintf(nm, sizeof nm, "cpu: infer = forward sigma (C%d h%d geo%d)", C, hidden, geo);
    th_close(nm, a.inf_sigma, a.sigma, M, 0);
    snprintf(nm, sizeof nm, "cpu: density-only infer = density path (C%d h%d geo%d)", C, hidden, geo);
    th_close(nm, a.inf_den, a.sig_den, M, 0);
    {   /* prepared (packed channels-last once) inference gives the same bits on the CPU */
        rhd_decoder_acts pa = {0};
        float *ps = malloc(4 * (size_t)M), *pr = malloc(12 * (size_t)M), *pd = malloc(4 * (size_t)M);
        rhd_decoder_infer_prepare(cpu, &d, &pa, planes, R, clamp);
        rhd_decoder_infer(cpu, &d, &pa, ps, pr, pts, dirs, planes, R, clamp, M);
        rhd_decoder_infer(cpu, &d, &pa, pd, NULL, pts, NULL, planes, R, clamp, M);
        rhd_decoder_infer_release(&pa);
        snprintf(nm, sizeof nm, "cpu: prepared infer sigma, rgb, density = forward (C%d h%d geo%d)", C, hidden, geo);
        th_ok(!memcmp(ps, a.sigma, 4 * (size_t)M) && !memcmp(pr, a.rgb, 12 * (size_t)M) &&
                  !memcmp(pd, a.sig_den, 4 * (size_t)M), "%s", nm);
        rhd_decoder_acts_free(&pa);
        free(ps), free(pr), free(pd);
    }
    if (!gpu) {
        th_skip("no CUDA device: decoder C%d h%d geo%d R%d M%lld on CUDA", C, hidden, geo, R, (long long)M);
    } else {
        run_decoder(gpu, &cfg, d.P.data, planes, R, clamp, pts, dirs, dsig, drgb, M, &b);
        const char *what[] = {"forward sigma", "forward rgb", "dplanes", "decoder grads", "density path",
                              "fused sigma", "fused rgb", "fused density only"};
        float *ga[] = {b.sigma, b.rgb, b.dplanes, b.dparams, b.sig_den, b.inf_sigma, b.inf_rgb, b.inf_den};
        float *ca[] = {a.sigma, a.rgb, a.dplanes, a.dparams, a.sig_den, a.sigma, a.rgb, a.sig_den};
        long ns[] = {M, 3 * M, tn, P, M, M, 3 * M, M};
        /* outputs are continuous in the inputs: 1e-9; gradients 1e-6, as test_renderer: a ReLU
         * input within rounding of 0 may fall on the other side on the other backend */
        double tol[] = {1e-9, 1e-9, 1e-6, 1e-6, 1e-9, 1e-9, 1e-9, 1e-9};
        for (int i = 0; i < 8; i++) {
            snprintf(nm, sizeof nm, "cuda vs cpu: %s (C%d h%d geo%d R%d M%lld clamp%d %s)", what[i], C, hidden, geo,
                     R, (long long)M, clamp, rhd_plane_agg_name(agg));
            th_close(nm, ga[i], ca[i], ns[i], tol[i]);
        }
        dec_out_free(&b);
    }
    dec_out_free(&a);
    free(planes), free(pts), free(dirs), free(dsig), free(drgb);
    rhd_decoder_free(&d);
}

/* ---- glue ops on CUDA ---- */

static void glue_cuda(rhd_ctx *cpu, rhd_ctx *gpu) {
    if (!gpu) { th_skip("no CUDA device: glue ops"); return; }
    long rows = 1001, ldx = 37, ldy = 29, w = 13, n = 70001;
    float *x = th_randn(rows * ldx, 1.f), *y0 = th_randn(rows * ldy, 1.f);
    float *yc = malloc(sizeof(float) * rows * ldy);
    memcpy(yc, y0, sizeof(float) * rows * ldy);
    rhd_copy_cols(cpu, yc + 5, ldy, x + 3, ldx, w, rows);
    float *dx = up(gpu, x, sizeof(float) * rows * ldx), *dy = up(gpu, y0, sizeof(float) * rows * ldy);
    rhd_copy_cols(gpu, dy + 5, ldy, dx + 3, ldx, w, rows);
    float *yg = down(gpu, dy, sizeof(float) * rows * ldy);
    th_close("cuda vs cpu: copy_cols 1001 rows x 13 of 37 -> 29", yg, yc, rows * ldy, 0);
    free(yg), rhd_buf_free(gpu, dx), rhd_buf_free(gpu, dy);
    free(x), free(y0), free(yc);

    float *a = th_randn(n, 1.f), *b = th_randn(n, 1.f), *F = th_randu(n, 0.f, 1.f);
    float *ac = malloc(sizeof(float) * n), *bc = malloc(sizeof(float) * n);
    memcpy(bc, b, sizeof(float) * n);
    rhd_scale(cpu, ac, a, 0.37f, n);
    rhd_sqr_acc(cpu, bc, a, 3.f, n);
    float *da = up(gpu, a, 4 * n), *db = up(gpu, b, 4 * n), *dF = up(gpu, F, 4 * n), *dt = rhd_buf_alloc(gpu, 4 * n);
    rhd_scale(gpu, dt, da, 0.37f, n);
    rhd_sqr_acc(gpu, db, da, 3.f, n);
    float *ag = down(gpu, dt, 4 * n), *bg = down(gpu, db, 4 * n);
    th_close("cuda vs cpu: scale", ag, ac, n, 0);
    th_close("cuda vs cpu: sqr_acc", bg, bc, n, 1e-14);
    /* iwc: theta = a, opt = b (the original b), gradient into a copy of F */
    float *gc = malloc(sizeof(float) * n);
    memcpy(gc, F, sizeof(float) * n);
    double lc = rhd_loss_iwc(cpu, gc, a, F, b, n, 0.5);
    float *dbb = up(gpu, b, 4 * n), *dg = up(gpu, F, 4 * n);
    double lg = rhd_loss_iwc(gpu, dg, da, dF, dbb, n, 0.5);
    float *gg = down(gpu, dg, 4 * n);
    th_ok(fabs(lg - lc) <= 1e-12 * fabs(lc), "cuda vs cpu: iwc penalty %.15g vs %.15g", lg, lc);
    th_close("cuda vs cpu: iwc gradient", gg, gc, n, 1e-14);
    float *all[] = {da, db, dF, dt, dbb, dg};
    for (int i = 0; i < 6; i++) rhd_buf_free(gpu, all[i]);
    free(a), free(b), free(F), free(ac), free(bc), free(ag), free(bg), free(gc), free(gg);

    /* composite_infer + finish + march begin */
    const int N = 257, ns = 5;
    int64_t M = (int64_t)N * ns;
    float *sg = th_randu(M, 0.f, 400.f), *cc = th_randu(3 * M, 0.f, 1.f), *e0 = th_randu(M, 0.f, 0.05f);
    float *e1 = th_randu(M, 0.001f, 0.05f), *nears = th_randu(N, 0.2f, 1.f), *fars = th_randu(N, 1.f, 3.f);
    for (int64_t i = 0; i < M; i += 17) e0[i] = 0.f; /* some rays leave the box */
    int32_t *al = malloc(sizeof(int32_t) * N);
    float *tc = malloc(sizeof(float) * N), *rc = calloc(3 * (size_t)N, 4), *Ac = calloc((size_t)N, 4);
    float *Dc = calloc((size_t)N, 4), *pc = malloc(12 * (size_t)N), *zc = malloc(4 * (size_t)N);
    uint8_t *sc = malloc((size_t)N);
    float bgc[3] = {1.f, 0.9f, 0.8f};
    rhd_march_infer_begin(cpu, al, tc, nears, N);
    rhd_composite_infer(cpu, rc, Ac, Dc, sc, al, tc, sg, cc, e0, e1, N, ns, 1e-4f);
    rhd_composite_infer_finish(cpu, pc, zc, rc, Ac, Dc, nears, fars, bgc, N);
    float *g_sg = up(gpu, sg, 4 * M), *g_cc = up(gpu, cc, 12 * M), *g_e0 = up(gpu, e0, 4 * M), *g_e1 = up(gpu, e1, 4 * M);
    float *g_n = up(gpu, nears, 4 * N), *g_f = up(gpu, fars, 4 * N);
    int32_t *g_al = rhd_buf_alloc(gpu, 4 * N);
    float *g_tc = rhd_buf_alloc(gpu, 4 * N), *g_r = rhd_buf_alloc(gpu, 12 * N), *g_A = rhd_buf_alloc(gpu, 4 * N);
    float *g_D = rhd_buf_alloc(gpu, 4 * N), *g_p = rhd_buf_alloc(gpu, 12 * N), *g_z = rhd_buf_alloc(gpu, 4 * N);
    uint8_t *g_s = rhd_buf_alloc(gpu, N);
    rhd_buf_zero(gpu, g_r, 12 * N), rhd_buf_zero(gpu, g_A, 4 * N), rhd_buf_zero(gpu, g_D, 4 * N);
    rhd_march_infer_begin(gpu, g_al, g_tc, g_n, N);
    rhd_composite_infer(gpu, g_r, g_A, g_D, g_s, g_al, g_tc, g_sg, g_cc, g_e0, g_e1, N, ns, 1e-4f);
    rhd_composite_infer_finish(gpu, g_p, g_z, g_r, g_A, g_D, g_n, g_f, bgc, N);
    float *hp = down(gpu, g_p, 12 * N), *hz = down(gpu, g_z, 4 * N), *hA = down(gpu, g_A, 4 * N);
    uint8_t *hs = (uint8_t *)down(gpu, g_s, N);
    int32_t *hal = (int32_t *)down(gpu, g_al, 4 * N);
    th_close("cuda vs cpu: composite_infer + finish rgb", hp, pc, 3 * N, 1e-12);
    th_close("cuda vs cpu: composite_infer opacity", hA, Ac, N, 1e-12);
    th_close("cuda vs cpu: composite_infer_finish depth", hz, zc, N, 1e-12);
    long early = 0;
    for (int i = 0; i < N; i++) early += sc[i];
    th_ok(!memcmp(hs, sc, (size_t)N) && !memcmp(hal, al, 4 * (size_t)N),
          "cuda vs cpu: stop flags (%ld of %d rays stopped: delta0 = 0 or T < T_thresh) and march start", early, N);
    void *gall[] = {g_sg, g_cc, g_e0, g_e1, g_n, g_f, g_al, g_tc, g_r, g_A, g_D, g_p, g_z, g_s};
    for (size_t i = 0; i < sizeof gall / sizeof gall[0]; i++) rhd_buf_free(gpu, gall[i]);
    free(sg), free(cc), free(e0), free(e1), free(nears), free(fars), free(al), free(tc), free(rc), free(Ac), free(Dc);
    free(pc), free(zc), free(sc), free(hp), free(hz), free(hA), free(hs), free(hal);
}

/* ---- renderer on CUDA ---- */

static void renderer_cuda(rhd_ctx *cpu, rhd_ctx *gpu) {
    if (!gpu) { th_skip("no CUDA device: renderer training step and view"); return; }
    rhd_err e = {0};
    rhd_decoder_cfg cfg;
    rhd_decoder_cfg_default(&cfg);
    cfg.C = 16;
    int R = 24, N = 301, W = 40, H = 36;
    rhd_decoder dc, dg;
    rhd_decoder_init(&dc, &cfg, cpu, 1, &e);
    rhd_decoder_init(&dg, &cfg, gpu, 1, &e);
    rhd_decoder_init_weights(&dc, th_seed() + 1);
    size_t pb = sizeof(float) * (size_t)dc.P.total;
    rhd_buf_upload(gpu, dg.P.data, dc.P.data, pb);
    rhd_buf_zero(cpu, dc.P.grad, pb), rhd_buf_zero(gpu, dg.P.grad, pb);
    int64_t tn = (int64_t)3 * cfg.C * R * R;
    float *planes = th_randu(tn, -1.f, 1.f);
    int32_t *rays = malloc(8 * (size_t)N);
    int64_t M = 0;
    for (int r = 0; r < N; r++) rays[2 * r] = (int32_t)M, rays[2 * r + 1] = r % 11, M += r % 11;
    float *xyz = th_randu(3 * M, -1.f, 1.f), *dirs = unit_dirs(M), *d0 = th_randu(M, 0.005f, 0.08f);
    float *d1 = th_randu(M, 0.005f, 0.08f), *gt = th_randu(3 * N, 0.f, 1.f);
    float *dpc = calloc((size_t)tn, 4), *predc = malloc(12 * (size_t)N), *predg = malloc(12 * (size_t)N);
    rhd_render_cfg rc;
    rhd_render_cfg_default(&rc);
    rc.grid_size = 32, rc.max_steps = 256;
    rhd_renderer rcpu, rgpu;
    rhd_renderer_init(&rcpu, cpu, &dc, &rc);
    rhd_renderer_init(&rgpu, gpu, &dg, &rc);
    rhd_triplane Tc = rhd_triplane_view(planes, cfg.C, R, 1, cpu);
    double mc = rhd_renderer_train_samples(&rcpu, &Tc, dpc, xyz, dirs, d0, d1, rays, N, M, gt, 1.f, 1, predc);
    float *g_pl = up(gpu, planes, 4 * tn), *g_dp = rhd_buf_alloc(gpu, 4 * tn), *g_x = up(gpu, xyz, 12 * M);
    float *g_di = up(gpu, dirs, 12 * M), *g_d0 = up(gpu, d0, 4 * M), *g_d1 = up(gpu, d1, 4 * M);
    float *g_gt = up(gpu, gt, 12 * N), *g_pred = rhd_buf_alloc(gpu, 12 * N);
    int32_t *g_rays = (int32_t *)up(gpu, rays, 8 * (size_t)N);
    rhd_buf_zero(gpu, g_dp, 4 * tn);
    rhd_triplane Tg = rhd_triplane_view(g_pl, cfg.C, R, 1, gpu);
    double mg = rhd_renderer_train_samples(&rgpu, &Tg, g_dp, g_x, g_di, g_d0, g_d1, g_rays, N, M, g_gt, 1.f, 1, g_pred);
    rhd_buf_download(gpu, predg, g_pred, 12 * (size_t)N);
    float *dpg = down(gpu, g_dp, 4 * tn), *gradg = down(gpu, dg.P.grad, pb);
    th_close("cuda vs cpu: training step pred (N301)", predg, predc, 3 * N, 1e-10);
    th_ok(fabs(mg - mc) <= 1e-5 * mc, "cuda vs cpu: training step mse %.9g vs %.9g", mg, mc);
    th_close("cuda vs cpu: training step dplanes", dpg, dpc, tn, 1e-6);
    th_close("cuda vs cpu: training step decoder grads", gradg, dc.P.grad, dc.P.total, 1e-6);

    /* a full view: grid warm-up and the inference loop on each backend */
    rhd_occgrid gc_, gg_;
    rhd_occgrid_cfg ocfg = rhd_renderer_grid_cfg(&rcpu);
    rhd_occgrid_init(cpu, &gc_, &ocfg, &e);
    rhd_occgrid_init(gpu, &gg_, &ocfg, &e);
    rhd_renderer_grid_warmup(&rcpu, &gc_, &Tc, 5, 4);
    rhd_renderer_grid_warmup(&rgpu, &gg_, &Tg, 5, 4);
    /* the grids agree up to cells whose density sits within rounding of the threshold; the views
     * are then rendered with the same bitfield so that such a cell cannot decide the comparison */
    size_t nb = (size_t)(gc_.n_cells / 8);
    uint8_t *bits_g = (uint8_t *)down(gpu, gg_.bitfield, nb), *bits_c = (uint8_t *)down(cpu, gc_.bitfield, nb);
    long flips = 0, occ = 0;
    for (size_t i = 0; i < nb; i++) flips += __builtin_popcount(bits_g[i] ^ bits_c[i]), occ += __builtin_popcount(bits_c[i]);
    th_ok(flips <= gc_.n_cells / 1000, "cuda vs cpu: occupancy grids after warm-up differ in %ld of %lld cells (%ld occupied)",
          flips, (long long)gc_.n_cells, occ);
    rhd_buf_upload(gpu, gg_.bitfield, bits_c, nb);
    free(bits_g), free(bits_c);
    float c2w[12] = {1, 0, 0, 0.1f, 0, 1, 0, -0.05f, 0, 0, 1, -2.5f};
    rhd_intrinsics in = {45, 45, 20, 18};
    int64_t np = (int64_t)W * H;
    float *rgb_c = malloc(12 * np), *a_c = malloc(4 * np), *z_c = malloc(4 * np);
    float *rgb_g = malloc(12 * np), *a_g = malloc(4 * np), *z_g = malloc(4 * np);
    rhd_render_camera cam = {c2w, in, W, H};
    rhd_renderer_render_view_full(&rcpu, &gc_, &Tc, &cam, rgb_c, a_c, z_c);
    rhd_renderer_render_view_full(&rgpu, &gg_, &Tg, &cam, rgb_g, a_g, z_g);
    th_close("cuda vs cpu: rendered view rgb (40x36)", rgb_g, rgb_c, 3 * np, 1e-6);
    th_close("cuda vs cpu: rendered view opacity", a_g, a_c, np, 1e-6);
    th_close("cuda vs cpu: rendered view depth", z_g, z_c, np, 1e-6);
    rhd_occgrid_free(cpu, &gc_), rhd_occgrid_free(gpu, &gg_);
    void *gall[] = {g_pl, g_dp, g_x, g_di, g_d0, g_d1, g_gt, g_pred, g_rays};
    for (size_t i = 0; i < sizeof gall / sizeof gall[0]; i++) rhd_buf_free(gpu, gall[i]);
    rhd_renderer_free(&rcpu), rhd_renderer_free(&rgpu);
    rhd_decoder_free(&dc), rhd_decoder_free(&dg);
    free(planes), free(rays), free(xyz), free(dirs), free(d0), free(d1), free(gt), free(dpc), free(predc), free(predg);
    free(dpg), free(gradg), free(rgb_c), free(a_c), free(z_c), free(rgb_g), free(a_g), free(z_g);
}

int main(void) {
    rhd_err e = {0};
    rhd_ctx *cpu = rhd_ctx_open("cpu", &e);
    rhd_ctx *gpu = rhd_cuda_available() ? rhd_ctx_open("cuda", &e) : NULL;
    test_iwc_cpu(cpu);
    test_composite_infer_cpu(cpu);
    glue_cuda(cpu, gpu);
    decoder_case(cpu, gpu, 32, 128, 128, 64, 1000, 1, RHD_PLANE_MEAN); /* default widths, a partial last tile */
    decoder_case(cpu, gpu, 8, 32, 15, 16, 77, 0, RHD_PLANE_MEAN);      /* narrow sigma_net.2: the per-pair path */
    decoder_case(cpu, gpu, 32, 128, 128, 64, 1000, 1, RHD_PLANE_PRODUCT);
    decoder_case(cpu, gpu, 8, 32, 15, 16, 77, 1, RHD_PLANE_OFFSET_PRODUCT); /* clamped: see test_renderer */
    renderer_cuda(cpu, gpu);
    if (gpu) rhd_ctx_close(gpu);
    rhd_ctx_close(cpu);
    return th_done();
}
