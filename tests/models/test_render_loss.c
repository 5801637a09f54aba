/* tests/models/test_render_loss.c: the upsampler's rendering loss (common/render_loss.h).
 *
 * 1. Fixed packed samples over a random triplane and a random decoder, a 16x16 patch: the
 *    predicted colours, the loss (and its L1 and LPIPS parts) and the triplane gradient against
 *    the PyTorch float64 autograd reference tests/ref/ref_render_loss.py (ref_fit.py's decoder and
 *    compositing, torch.clamp, the lpips package's VGG LPIPS with random weights).
 * 2. LPIPS alone: rhd_lpips_grad's value equals rhd_lpips_eval's.
 * 3. The full path (grid warm-up, march without perturbation, loss, backward) against central
 *    finite differences on the texels of largest gradient and a few others, the grid held fixed.
 * 4. The draws: views in range, ds in {2,4,8}, the crop inside the image, and the white retry;
 *    the GT of a constant RGBA image (analytic); whole patches of tests/data/mini/avatar_100
 *    (camera at ds, the patch = the crop of the GT image) and the refusals. */
#include "refcheck.h"
#include "common/render_loss.h"

#define C_ 8
#define R_ 8
#define P_ 16

static rhd_ctx *g_cpu;

static int make_decoder(rhd_decoder *dec) {
    rhd_decoder_cfg cfg;
    rhd_err e;
    rhd_decoder_cfg_default(&cfg);
    cfg.C = C_;
    if (rhd_decoder_init(dec, &cfg, g_cpu, 1, &e)) return th_ok(0, "decoder init: %s", e.msg), -1;
    rhd_decoder_init_weights(dec, th_seed());
    return 0;
}

static void samples_case(rhd_lpips *lp, const char *dir) {
    rhd_decoder dec;
    if (make_decoder(&dec)) return;
    rhd_render_loss_opts o;
    rhd_render_loss_opts_default(&o);
    o.patch = P_, o.render.grid_size = 16;
    rhd_render_loss rl;
    rhd_err e;
    if (rhd_render_loss_init(&rl, g_cpu, &dec, lp, &o, &e)) { th_ok(0, "init: %s", e.msg); return; }
    const int N = P_ * P_;
    int64_t tn = (int64_t)3 * C_ * R_ * R_;
    float *planes = th_randu(tn, -1.3f, 1.3f), *cu = th_randu(N, 0, 3.999f);
    int32_t *rays = malloc(sizeof(int32_t) * 2 * N);
    float *raysf = malloc(sizeof(float) * 2 * N);
    int64_t M = 0;
    for (int r = 0; r < N; r++) {
        int c = (int)cu[r];
        rays[2 * r] = (int32_t)M, rays[2 * r + 1] = c, raysf[2 * r] = (float)M, raysf[2 * r + 1] = (float)c;
        M += c;
    }
    float *xyz = th_randu(3 * M, -1, 1), *dirs = th_randn(3 * M, 1);
    for (int64_t i = 0; i < M; i++) {
        float *d = dirs + 3 * i, n = sqrtf(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
        for (int a = 0; a < 3; a++) d[a] /= n;
    }
    float *d0 = th_randu(M, 0.05f, 0.6f), *gt = th_randu(3 * N, 0, 1);
    float *dT = calloc(tn, sizeof(float)), *pred = malloc(sizeof(float) * 3 * N);
    rhd_triplane T = rhd_triplane_view(planes, C_, R_, 1, g_cpu);
    rhd_render_loss_out out = rhd_render_loss_samples(&rl, &T, dT, xyz, dirs, d0, d0, rays, M, gt, 1.f, pred);
    int64_t s4[4] = {3, C_, R_, R_};
    th_save(dir, "planes", planes, 4, s4);
    struct { const char *name; const float *v; int64_t shape[2]; int nd; } io[] = {
        {"xyz", xyz, {M, 3}, 2}, {"dirs", dirs, {M, 3}, 2}, {"delta0", d0, {M, 1}, 1}, {"rays", raysf, {N, 2}, 2},
        {"gt", gt, {N, 3}, 2}};
    for (int i = 0; i < 5; i++) th_save(dir, io[i].name, io[i].v, io[i].nd, io[i].shape);
    for (int i = 0; i < dec.P.n; i++) th_save(dir, dec.P.info[i].name, rhd_param(&dec.P, i), dec.P.info[i].ndim, dec.P.info[i].shape);
    if (th_ref("ref_render_loss.py", "loss %s %d %d 1 %g %g %g %d", dir, C_, R_, o.render.T_thresh, o.w_l1, o.w_lpips, P_)) {
        th_ok(0, "render loss reference ran");
    } else {
        float *rp = th_load(dir, "pred", 3 * N), *rlv = th_load(dir, "loss", 3), *rg = th_load(dir, "dplanes", tn);
        if (rp && rlv && rg) {
            char what[160];
            snprintf(what, sizeof what, "samples: pred (M=%lld)", (long long)M);
            th_close(what, pred, rp, 3 * N, 1e-9);
            float got[3] = {(float)out.loss, (float)out.l1, (float)out.lpips};
            th_diag("loss %.8g (l1 %.8g lpips %.8g), reference %.8g (%.8g %.8g)", got[0], got[1], got[2], rlv[0], rlv[1], rlv[2]);
            th_close("samples: loss, l1, lpips", got, rlv, 3, 1e-10);
            th_close("samples: dL/dtriplane", dT, rg, tn, 1e-6);
        } else th_ok(0, "render loss reference outputs");
        free(rp), free(rlv), free(rg);
    }
    /* LPIPS value of the gradient pass = the forward-only metric */
    float *a = th_randu(3 * N, 0, 1), *b = th_randu(3 * N, 0, 1), *da = malloc(sizeof(float) * 3 * N);
    double v1 = rhd_lpips_grad(lp, &rl.lrun, a, b, P_, P_, da), v2 = 0;
    rhd_lpips_eval(lp, a, b, P_, P_, &v2, &e);
    th_ok(fabs(v1 - v2) <= 1e-6 * fabs(v2), "lpips_grad value %.9g = lpips_eval %.9g", v1, v2);
    free(a), free(b), free(da);
    rhd_render_loss_free(&rl);
    rhd_decoder_free(&dec);
    free(planes), free(cu), free(rays), free(raysf), free(xyz), free(dirs), free(d0), free(gt), free(dT), free(pred);
}

typedef struct {
    rhd_render_loss *rl;
    rhd_triplane *T;
    rhd_render_camera *cam;
    const float *gt;
    float *scratch;
} fd_ctx;

static double fd_loss(void *u) {
    fd_ctx *f = u;
    int64_t tn = (int64_t)3 * C_ * R_ * R_;
    memset(f->scratch, 0, sizeof(float) * tn);
    return rhd_render_loss_patch(f->rl, f->T, f->scratch, f->cam, 8, 8, f->gt, 1.f).loss;
}

static void march_case(rhd_lpips *lp) {
    rhd_decoder dec;
    if (make_decoder(&dec)) return;
    rhd_render_loss_opts o;
    rhd_render_loss_opts_default(&o);
    o.patch = P_, o.render.grid_size = 16, o.render.density_thresh = 0.01f, o.render.max_steps = 48;
    rhd_render_loss rl;
    rhd_err e;
    if (rhd_render_loss_init(&rl, g_cpu, &dec, lp, &o, &e)) { th_ok(0, "init: %s", e.msg); return; }
    int64_t tn = (int64_t)3 * C_ * R_ * R_;
    float *planes = th_randu(tn, -0.9f, 0.9f), *gt = th_randu(3 * P_ * P_, 0, 1);
    float *dT = calloc(tn, sizeof(float)), *scratch = calloc(tn, sizeof(float));
    rhd_triplane T = rhd_triplane_view(planes, C_, R_, 1, g_cpu);
    float c2w[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, -2.5f};
    rhd_render_camera cam = {c2w, {40, 40, 16, 16}, 32, 32};
    rhd_render_loss_warmup(&rl, &T, th_seed());
    rhd_render_loss_out out = rhd_render_loss_patch(&rl, &T, dT, &cam, 8, 8, gt, 1.f);
    th_diag("march: %lld samples, loss %.6g (l1 %.6g lpips %.6g)", (long long)out.samples, out.loss, out.l1, out.lpips);
    th_ok(out.samples > 0 && isfinite(out.loss), "march: the patch has samples and a finite loss");
    /* the 4 texels of largest |gradient| and 2 spread ones */
    enum { K = 6 };
    long idx[K];
    for (int k = 0; k < 4; k++) {
        long best = 0;
        for (long i = 0; i < tn; i++) {
            int seen = 0;
            for (int j = 0; j < k; j++) seen |= idx[j] == i;
            if (!seen && fabsf(dT[i]) > fabsf(dT[best])) best = i;
        }
        idx[k] = best;
    }
    for (int k = 4; k < K; k++) idx[k] = (long)((k - 3) * (tn / 3)) % tn;
    fd_ctx f = {&rl, &T, &cam, gt, scratch};
    double worst = 0, floor_ = 0.02 * fabs(dT[idx[0]]);
    for (int k = 0; k < K; k++) {
        long i = idx[k];
        float x0 = planes[i], h = 1e-2f;
        planes[i] = x0 + h;
        double lp_ = fd_loss(&f);
        planes[i] = x0 - h;
        double lm = fd_loss(&f);
        planes[i] = x0;
        double num = (lp_ - lm) / ((double)(x0 + h) - (double)(x0 - h)), a = dT[i];
        double rel = fabs(a - num) / (fabs(a) + fabs(num) + floor_);
        th_diag("  texel %ld: analytic %.6g numeric %.6g rel %.2e", i, a, num, rel);
        if (rel > worst) worst = rel;
    }
    th_ok(worst < 5e-2, "march: triplane gradient vs finite differences at %d texels, worst rel %.2e (floor %.1e)", K, worst, floor_);
    rhd_render_loss_free(&rl);
    rhd_decoder_free(&dec);
    free(planes), free(gt), free(dT), free(scratch);
}

static void draws_case(void) {
    rhd_render_loss_opts o;
    rhd_render_loss_opts_default(&o);
    int bad = 0, cnt[9] = {0};
    for (int i = 0; i < 2000; i++) {
        rhd_render_loss_pick p;
        rhd_render_loss_draw(&o, th_seed(), RHD_STREAM(RHD_STREAM_TEST, 77), 2 * i, &p);
        bad += p.view < 0 || p.view > 280 || (p.ds != 2 && p.ds != 4 && p.ds != 8);
        if (p.ds <= 8) cnt[p.ds]++;
    }
    th_ok(!bad && cnt[2] > 300 && cnt[2] < 500 && cnt[4] > 800 && cnt[8] > 600,
          "draws: views in [0,280], ds 2/4/8 counted %d/%d/%d of 2000 (expected ~400/900/700)", cnt[2], cnt[4], cnt[8]);
    /* white retry: an all-white image keeps the second crop; a dark one the first */
    int w = 100, h = 80, x0, y0, x1, y1;
    float *img = malloc(sizeof(float) * 3 * w * h);
    for (int i = 0; i < 3 * w * h; i++) img[i] = 1.f;
    rhd_render_loss_crop(&o, img, w, h, 1, 2, 0, &x0, &y0);
    for (int i = 0; i < 3 * w * h; i++) img[i] = 0.f;
    rhd_render_loss_crop(&o, img, w, h, 1, 2, 0, &x1, &y1);
    int rx = (int)(rhd_rng_uniform(1, 2, 3) * (h - 64)), ry = (int)(rhd_rng_uniform(1, 2, 2) * (h - 64));
    th_ok(x0 == rx && y0 == ry && x1 == (int)(rhd_rng_uniform(1, 2, 1) * (h - 64)) &&
              y1 == (int)(rhd_rng_uniform(1, 2, 0) * (h - 64)) && x0 + 64 <= w && y0 + 64 <= h,
          "crop: white patch retried (%d,%d), dark patch kept (%d,%d), offsets from the height", x0, y0, x1, y1);
    free(img);
}

static void patch_case(const char *dir0) {
    /* the GT of a random 8-bit RGBA image (alpha 0 and 255 included) against Pillow's LANCZOS
     * resize and the original dataset's fp32 compositing (ref_render_loss.py gt), at each ds */
    int W = 40, H = 24, w, h;
    float *rgba = malloc(sizeof(float) * 4 * W * H);
    uint8_t *rgba8 = malloc(4 * W * H);
    float *u = th_randu(4 * W * H, 0, 1);
    for (int i = 0; i < 4 * W * H; i++) {
        int v = (int)(u[i] * 256.f);
        if (i % 4 == 3 && i % 20 == 3) v = 0;
        if (i % 4 == 3 && i % 20 == 7) v = 255;
        rgba8[i] = (uint8_t)(v > 255 ? 255 : v), rgba[i] = (float)rgba8[i] / 255.f;
    }
    int64_t s8[3] = {H, W, 4};
    th_save_t(dir0, "rgba8", RHD_U8, rgba8, 3, s8);
    for (int ds = 2; ds <= 8; ds *= 2) {
        float *g = rhd_render_loss_gt(rgba, W, H, ds, &w, &h);
        float *ref = th_ref("ref_render_loss.py", "gt %s %d", dir0, ds) == 0 ? th_load(dir0, "gt", (int64_t)3 * w * h) : NULL;
        double err = 0;
        for (int i = 0; ref && i < 3 * w * h; i++) err = fmax(err, fabs((double)g[i] - ref[i]));
        th_ok(ref && w == W / ds && h == H / ds && err == 0,
              "GT at ds %d (%dx%d) = Pillow LANCZOS of the 8-bit view, composited in fp32 on white: max abs diff %.1e", ds, w,
              h, err);
        free(g), free(ref);
    }
    free(rgba), free(rgba8), free(u);
    const char *root = getenv("RHD_ROOT");
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/tests/data/mini/avatar_100", root && *root ? root : ".");
    rhd_dataset d;
    rhd_err e;
    if (rhd_dataset_open(&d, dir, NULL, 0, NULL, &e)) { th_ok(0, "mini dataset: %s", e.msg); return; }
    rhd_render_loss_opts o;
    rhd_render_loss_opts_default(&o);
    o.patch = 16;
    int bad = 0, seen_ds = 0;
    for (int k = 0; k < 12; k++) {
        rhd_render_patch p;
        if (rhd_render_loss_make_patch(&o, &d, th_seed(), RHD_STREAM(RHD_STREAM_TEST, 88), 8 * k, k >= 9 ? 2 << (k - 9) : 0, &p, &e)) {
            th_diag("%s", e.msg), bad++;
            continue;
        }
        rhd_image img;
        rhd_dataset_load_image(&d, p.view, &img, &e);
        float *gt = rhd_render_loss_gt(img.data, img.width, img.height, p.ds, &w, &h);
        int i = rhd_dataset_find(&d, p.view), same = 1;
        for (int y = 0; y < 16; y++)
            same &= !memcmp(p.gt + 3 * 16 * y, gt + 3 * ((p.y0 + y) * w + p.x0), sizeof(float) * 48);
        bad += (k >= 9 && p.ds != 2 << (k - 9)) || !same || p.cam.W != 128 / p.ds || p.cam.K.cx != 64.f / p.ds || p.cam.K.cy != 64.f / p.ds ||
               p.cam.K.fx != (float)(d.K.fx / p.ds) || p.c2w[3] != (float)d.views[i].pose[0][3] ||
               p.x0 + 16 > w || p.y0 + 16 > h || i < 0;
        seen_ds |= p.ds;
        free(gt), rhd_image_free(&img), rhd_render_patch_free(&p);
    }
    th_ok(!bad, "12 patches of avatar_100: cameras at ds, patches = crops of the GT at ds (ds seen: mask %d; the last 3 "
          "given ds 2, 4, 8 and have it)", seen_ds);
    rhd_render_patch p;
    o.view_lo = 300, o.view_hi = 400;
    th_ok(rhd_render_loss_make_patch(&o, &d, 1, 2, 0, 0, &p, &e) < 0 && strstr(e.msg, "no view in [300, 400]"),
          "no eligible view refused: %s", e.msg);
    o.view_lo = 0, o.view_hi = 280, o.patch = 64, o.ds_prob[0] = 0, o.ds_prob[1] = 0;
    th_ok(rhd_render_loss_make_patch(&o, &d, 1, 2, 0, 0, &p, &e) < 0 && strstr(e.msg, "16x16 at downscale 8"),
          "patch larger than the view refused: %s", e.msg);
    rhd_dataset_close(&d);
}

int main(void) {
    rhd_ctx *gpu;
    th_open_backends(&g_cpu, &gpu);
    const char *dir = th_subdir("render_loss");
    rhd_lpips lp;
    rhd_err e;
    char path[1200];
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    if (th_ref("ref_render_loss.py", "weights %s %u", dir, (unsigned)(th_seed() % 1000003u)) ||
        rhd_lpips_load(&lp, g_cpu, path, &e)) {
        th_ok(0, "random LPIPS-VGG weights from the reference");
        return th_done();
    }
    samples_case(&lp, dir);
    march_case(&lp);
    draws_case();
    patch_case(dir);
    rhd_lpips_free(&lp);
    rhd_ctx_close(g_cpu);
    if (gpu) rhd_ctx_close(gpu);
    return th_done();
}
