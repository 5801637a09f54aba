/* tests/unit/test_metrics.c: common/metrics (PSNR, SSIM, the JSON table) against independent
 * references (tests/ref/ref_metrics.py: NumPy PSNR, pytorch_msssim SSIM), plus edge cases.
 *
 *  1. PSNR and SSIM of random and structured image pairs at several sizes (odd ones and the 11x11
 *     minimum included) match the references to 1e-4 dB and 1e-5;
 *  2. identical images: PSNR +inf, SSIM 1; images under 11x11 are an error naming the size;
 *  3. the window taps sum to 1 and are symmetric;
 *  4. the JSON parses (cJSON), holds the per-view rows and the means, writes +inf as null and
 *     leaves metrics not computed out. */
#include "refcheck.h"
#include "common/metrics.h"
#include <cjson/cJSON.h>

/* gt: a smooth pattern plus a little noise; pred: gt plus noise (may leave [0,1]: no clamp). */
static void make_pair(float *pred, float *gt, int H, int W, int structured) {
    long n = (long)H * W * 3;
    float *a = th_randu(n, 0.f, 1.f), *b = th_randn(n, 1.f);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                long i = ((long)y * W + x) * 3 + c;
                if (structured) {
                    gt[i] = 0.5f + 0.4f * sinf(0.31f * x + 0.17f * y + c) + 0.05f * (a[i] - 0.5f);
                    pred[i] = gt[i] + 0.06f * b[i];
                } else {
                    gt[i] = a[i];
                    pred[i] = 0.5f + 0.25f * b[i];
                }
            }
    free(a);
    free(b);
}

static void check_size(int H, int W) {
    const int N = 2;
    long per = (long)H * W * 3;
    float *pred = malloc(sizeof(float) * N * per), *gt = malloc(sizeof(float) * N * per);
    for (int k = 0; k < N; k++) make_pair(pred + k * per, gt + k * per, H, W, k == 0);
    char name[64];
    snprintf(name, sizeof name, "ssim_%dx%d", W, H);
    const char *dir = th_subdir(name);
    int64_t shape[4] = {N, H, W, 3};
    th_save(dir, "pred", pred, 4, shape);
    th_save(dir, "gt", gt, 4, shape);
    if (th_ref("ref_metrics.py", "ssim %s", dir)) {
        th_ok(0, "reference ssim %dx%d ran", W, H);
    } else {
        float *rp = th_load(dir, "psnr", N), *rs = th_load(dir, "ssim", N);
        for (int k = 0; k < N && rp && rs; k++) {
            double p = rhd_image_psnr(pred + k * per, gt + k * per, H, W), s = 0;
            rhd_err e;
            int rc = rhd_image_ssim(pred + k * per, gt + k * per, H, W, &s, &e);
            th_ok(fabs(p - rp[k]) <= 1e-4, "psnr %s %dx%d: ours %.7f numpy %.7f (diff %.2e)",
                  k ? "random" : "structured", W, H, p, rp[k], fabs(p - rp[k]));
            th_ok(rc == 0 && fabs(s - rs[k]) <= 1e-5, "ssim %s %dx%d: ours %.8f pytorch_msssim %.8f (diff %.2e)",
                  k ? "random" : "structured", W, H, s, rs[k], fabs(s - rs[k]));
        }
        if (!rp || !rs) th_ok(0, "reference outputs %dx%d", W, H);
        free(rp);
        free(rs);
    }
    free(pred);
    free(gt);
}

int main(void) {
    /* 1 */
    check_size(11, 11);
    check_size(23, 37);
    check_size(64, 48);
    check_size(130, 97);

    /* 2 */
    {
        int H = 16, W = 20;
        long n = (long)H * W * 3;
        float *a = th_randu(n, 0.f, 1.f);
        double s = 0;
        rhd_err e;
        th_ok(isinf(rhd_image_psnr(a, a, H, W)) && rhd_image_psnr(a, a, H, W) > 0, "psnr of identical images is +inf");
        int rc0 = rhd_image_ssim(a, a, H, W, &s, &e);
        th_ok(rc0 == 0 && fabs(s - 1) < 1e-12, "ssim of identical images is 1 (%.15f)", s);
        int rc = rhd_image_ssim(a, a, 10, 40, &s, &e);
        th_ok(rc == -1 && strstr(e.msg, "40x10") && strstr(e.msg, "at least 11x11"), "ssim of a 40x10 image: %s", e.msg);
        /* PSNR of a known constant offset: mse 0.01 -> 20 dB */
        float *b = malloc(sizeof(float) * n);
        for (long i = 0; i < n; i++) b[i] = a[i] + 0.1f;
        th_ok(fabs(rhd_image_psnr(b, a, H, W) - 20.0) < 1e-4, "psnr of an offset of 0.1 is 20 dB (%.6f)", rhd_image_psnr(b, a, H, W));
        free(a);
        free(b);
    }
    /* 3 */
    {
        double w[RHD_SSIM_WIN], s = 0;
        rhd_ssim_window(w);
        int sym = 1;
        for (int i = 0; i < RHD_SSIM_WIN; i++) s += w[i], sym &= fabs(w[i] - w[RHD_SSIM_WIN - 1 - i]) < 1e-15;
        th_ok(fabs(s - 1) < 1e-14 && sym && w[5] > w[4], "gaussian window: sum %.15f, symmetric, peak in the middle", s);
    }
    /* 4 */
    {
        rhd_metrics_table t;
        rhd_metrics_init(&t);
        rhd_metrics_add(&t, 0, 30.0, 0.9, NAN);
        rhd_metrics_add(&t, 3, 20.0, 0.7, NAN);
        rhd_metrics_add(&t, 7, INFINITY, 1.0, NAN);
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        rhd_metrics_write_json(&t, f);
        fclose(f);
        cJSON *j = cJSON_Parse(buf);
        cJSON *views = cJSON_GetObjectItem(j, "views"), *mean = cJSON_GetObjectItem(j, "mean");
        int ok = j && cJSON_GetArraySize(views) == 3 && cJSON_GetObjectItem(j, "count")->valueint == 3;
        ok = ok && cJSON_GetObjectItem(cJSON_GetArrayItem(views, 1), "view")->valueint == 3;
        ok = ok && cJSON_GetObjectItem(cJSON_GetArrayItem(views, 1), "psnr")->valuedouble == 20.0;
        ok = ok && cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(views, 2), "psnr"));
        ok = ok && cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(views, 2), "psnr_inf"));
        ok = ok && !cJSON_GetObjectItem(cJSON_GetArrayItem(views, 0), "lpips");
        ok = ok && fabs(cJSON_GetObjectItem(mean, "ssim")->valuedouble - 2.6 / 3) < 1e-15;
        ok = ok && cJSON_IsNull(cJSON_GetObjectItem(mean, "psnr")); /* mean with an inf is inf */
        th_ok(ok, "metrics JSON parses with rows, means, inf as null:\n%s", buf);
        cJSON_Delete(j);
        free(buf);
        rhd_metrics_table u;
        rhd_metrics_init(&u);
        rhd_metrics_add(&u, 1, 31.0, NAN, 0.25);
        rhd_metrics_add(&u, 2, 33.0, NAN, 0.75);
        u.lpips_net = "alex";
        f = open_memstream(&buf, &len);
        rhd_metrics_write_json(&u, f);
        fclose(f);
        j = cJSON_Parse(buf);
        mean = cJSON_GetObjectItem(j, "mean");
        ok = j && cJSON_GetObjectItem(mean, "psnr")->valuedouble == 32.0 && !cJSON_GetObjectItem(mean, "ssim") &&
             cJSON_GetObjectItem(mean, "lpips")->valuedouble == 0.5 &&
             !strcmp(cJSON_GetObjectItem(j, "lpips_net")->valuestring, "alex");
        th_ok(ok, "metrics JSON means over the computed metrics only: %s", buf);
        cJSON_Delete(j);
        free(buf);
        rhd_metrics_free(&t);
        rhd_metrics_free(&u);
    }
    return th_done();
}
