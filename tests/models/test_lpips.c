/* tests/models/test_lpips.c: LPIPS (common/lpips.h) against the lpips package 0.1.4
 * (tests/ref/ref_metrics.py lpips: lpips.LPIPS(net, pretrained=False, pnet_rand=True) with random
 * backbone and head weights, model(pred, gt, normalize=True) in float32), exchanged through the
 * weights file rhd-render --lpips reads.
 *
 * Checks, for alex and vgg, on fresh random images at a non-square odd size (45x67) and at 64x96 /
 * 64x64, each with an unrelated pair and a pair of nearby images (gt = pred + noise, clamped):
 * the distance within a relative error of 1e-5 of torch's (float32 on both sides; the values and
 * errors are printed); the (3,H,W) and (H,W,3) entry points agree bit for bit; lpips(a, b) =
 * lpips(b, a) and lpips(a, a) = 0 exactly; 1 and 3 threads give the same bits; the loader's
 * messages for a missing file, a missing tensor, wrong shapes, an unknown first conv, an integer
 * dtype, a NaN, another rhd kind, metadata naming the other net, a newer layout, a SqueezeNet
 * file; heads under the duplicate names lins.K; the size check; and CUDA against the CPU
 * (relative 1e-5) when a device is present. */
#include "refcheck.h"
#include "common/lpips.h"
#include <omp.h>

#define TOL_REL 1e-5

static rhd_ctx *g_cpu, *g_gpu;

typedef struct {
    const char *net;
    int H, W;
} lcase;

/* n pairs of (H,W,3) images: pair 0 unrelated, pair 1 gt = clamp(pred + 0.05 N(0,1)) */
static void make_pairs(int n, int H, int W, float **pred, float **gt) {
    long m = (long)n * H * W * 3, one = (long)H * W * 3;
    *pred = th_randu(m, 0, 1);
    *gt = th_randu(m, 0, 1);
    float *noise = th_randn(one, 0.05f);
    for (long i = 0; i < one && n > 1; i++) {
        float v = (*pred)[one + i] + noise[i];
        (*gt)[one + i] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
    free(noise);
}

/* (H,W,3) -> (3,H,W) */
static float *to_chw(const float *x, int H, int W) {
    float *y = malloc(sizeof(float) * 3 * H * W);
    for (int c = 0; c < 3; c++)
        for (long p = 0; p < (long)H * W; p++) y[c * (long)H * W + p] = x[p * 3 + c];
    return y;
}

static double eval_or_nan(rhd_lpips *l, const float *a, const float *b, int H, int W) {
    rhd_err e;
    double v;
    if (rhd_lpips_eval_hwc(l, a, b, H, W, &v, &e)) {
        th_diag("%s", e.msg);
        return NAN;
    }
    return v;
}

static void test_case(const lcase *c, int k, char *weights_out, size_t wn) {
    const int N = 2;
    int H = c->H, W = c->W;
    char tag[64];
    snprintf(tag, sizeof tag, "lpips_%s_%dx%d", c->net, W, H);
    const char *dir = th_subdir(tag);
    float *pred, *gt;
    make_pairs(N, H, W, &pred, &gt);
    int64_t shp[4] = {N, H, W, 3};
    th_save(dir, "pred", pred, 4, shp);
    th_save(dir, "gt", gt, 4, shp);
    unsigned seed = (unsigned)(th_seed() % 1000000007u) + (unsigned)k;
    int rc = th_ref("ref_metrics.py", "lpips %s %s %u", dir, c->net, seed);
    float *ref = rc ? NULL : th_load(dir, "lpips", N);
    char path[1200];
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    if (weights_out) snprintf(weights_out, wn, "%s", path);
    rhd_lpips l;
    rhd_err e;
    if (!ref || rhd_lpips_load(&l, g_cpu, path, &e)) {
        th_ok(0, "lpips %s %dx%d: reference or weights unavailable%s%s", c->net, W, H, ref ? ": " : "", ref ? e.msg : "");
        free(pred), free(gt), free(ref);
        return;
    }
    th_ok(!strcmp(rhd_lpips_net_name(l.net), c->net), "lpips %s %dx%d: the file is recognised as %s", c->net, W, H,
          rhd_lpips_net_name(l.net));
    double v[2];
    long one = (long)H * W * 3;
    for (int i = 0; i < N; i++) {
        v[i] = eval_or_nan(&l, pred + i * one, gt + i * one, H, W);
        double abs_err = fabs(v[i] - ref[i]), rel = abs_err / fabs(ref[i]);
        th_ok(rel <= TOL_REL, "lpips %s %dx%d %s pair: ours %.9f torch %.9f abs err %.2e rel err %.2e (tol %.0e)", c->net,
              W, H, i ? "nearby" : "unrelated", v[i], ref[i], abs_err, rel, TOL_REL);
    }
    /* (3,H,W) entry point, symmetry, identity */
    float *p0 = to_chw(pred, H, W), *g0 = to_chw(gt, H, W);
    double chw = NAN, back = NAN, same = NAN;
    rhd_lpips_eval(&l, p0, g0, H, W, &chw, &e);
    rhd_lpips_eval(&l, g0, p0, H, W, &back, &e);
    rhd_lpips_eval(&l, p0, p0, H, W, &same, &e);
    th_ok(chw == v[0], "lpips %s %dx%d: (3,H,W) and (H,W,3) inputs give the same bits (%.17g, %.17g)", c->net, W, H, chw,
          v[0]);
    th_ok(back == chw && same == 0.0, "lpips %s %dx%d: symmetric (%.17g) and lpips(a, a) = %g", c->net, W, H, back, same);
    if (k == 0) {
        int saved = omp_get_max_threads();
        double t[2];
        for (int r = 0; r < 2; r++) {
            omp_set_num_threads(r ? 3 : 1);
            rhd_lpips_eval(&l, p0, g0, H, W, &t[r], &e);
        }
        omp_set_num_threads(saved);
        th_ok(t[0] == t[1] && t[0] == chw, "lpips %s %dx%d: 1 and 3 threads give the same bits", c->net, W, H);
    }
    if (g_gpu) {
        rhd_lpips lg;
        if (rhd_lpips_load(&lg, g_gpu, path, &e)) th_ok(0, "lpips %s: load on cuda: %s", c->net, e.msg);
        else {
            for (int i = 0; i < N; i++) {
                double g = eval_or_nan(&lg, pred + i * one, gt + i * one, H, W), rel = fabs(g - v[i]) / fabs(v[i]);
                th_ok(rel <= 1e-5, "lpips %s %dx%d %s pair cuda~cpu: cuda %.9f cpu %.9f rel err %.2e (tol 1e-5)", c->net, W,
                      H, i ? "nearby" : "unrelated", g, v[i], rel);
            }
            double z = eval_or_nan(&lg, pred, pred, H, W);
            th_ok(z == 0.0, "lpips %s %dx%d cuda: lpips(a, a) = %g", c->net, W, H, z);
            rhd_lpips_free(&lg);
        }
    } else th_skip("lpips %s %dx%d cuda~cpu: no CUDA device", c->net, W, H);
    rhd_lpips_free(&l);
    free(p0), free(g0), free(pred), free(gt), free(ref);
}

/* ---- bad weight files ------------------------------------------------------------------------------- */

typedef enum { V_DROP, V_SHAPE, V_FIRST, V_INT, V_NAN, V_KIND, V_NETMETA, V_NEWER, V_SQUEEZE, V_LINS } vkind;

/* A copy of src with one change, written to dir/<name>.safetensors; returns the path. */
static char *variant(const rhd_st *src, const char *dir, const char *name, vkind how, const char *target) {
    static char path[1200];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, name);
    rhd_st_writer w;
    rhd_st_writer_init(&w);
    float *keep[64] = {0};
    int nk = 0;
    int32_t ints[64];
    for (int i = 0; i < src->n; i++) {
        const rhd_st_tensor *t = &src->t[i];
        if (strcmp(t->name, target)) {
            rhd_st_add(&w, t->name, t->dtype, t->ndim, t->shape, t->data);
            continue;
        }
        int64_t s[4];
        memcpy(s, t->shape, sizeof s);
        float *f = keep[nk++] = malloc(sizeof(float) * (t->numel + 64));
        rhd_st_to_f32(t, f);
        switch (how) {
        case V_DROP: break;
        case V_SHAPE: /* one channel fewer */
            s[1] -= 1;
            rhd_st_add(&w, t->name, RHD_F32, t->ndim, s, f);
            break;
        case V_FIRST: /* a 7x7 first conv */
            s[2] = s[3] = 7;
            rhd_st_add(&w, t->name, RHD_F32, t->ndim, s, f);
            break;
        case V_INT:
            for (int j = 0; j < 64 && j < t->numel; j++) ints[j] = 1;
            rhd_st_add(&w, t->name, RHD_I32, t->ndim, t->shape, ints);
            break;
        case V_NAN:
            f[t->numel / 2] = NAN;
            rhd_st_add(&w, t->name, RHD_F32, t->ndim, t->shape, f);
            break;
        case V_KIND:
        case V_NETMETA:
        case V_NEWER: rhd_st_add(&w, t->name, t->dtype, t->ndim, t->shape, t->data); break;
        case V_LINS: { /* linK.model.1.weight stored as lins.K.model.1.weight */
            char alt[64];
            snprintf(alt, sizeof alt, "lins.%s", t->name + 3);
            rhd_st_add(&w, alt, t->dtype, t->ndim, t->shape, t->data);
            break;
        }
        case V_SQUEEZE:
            rhd_st_add(&w, t->name, t->dtype, t->ndim, t->shape, t->data);
            rhd_st_add(&w, "net.slice6.11.squeeze.weight", RHD_F32, 1, (int64_t[]){1}, f);
            break;
        }
    }
    if (how == V_KIND) rhd_st_set_meta(&w, "rhd.kind", "decoder");
    if (how == V_NETMETA || how == V_NEWER) {
        rhd_st_set_meta(&w, "rhd.kind", "lpips");
        rhd_st_set_meta(&w, "rhd.version", how == V_NEWER ? "2" : "1");
        rhd_st_set_meta(&w, "lpips.net", how == V_NETMETA ? "vgg" : "alex");
    }
    rhd_err e;
    if (rhd_st_write(&w, path, &e)) th_diag("%s", e.msg);
    rhd_st_writer_free(&w);
    for (int i = 0; i < nk; i++) free(keep[i]);
    return path;
}

static void expect_error(const char *what, const char *path, const char *want) {
    rhd_lpips l;
    rhd_err e = {{0}};
    int rc = rhd_lpips_load(&l, g_cpu, path, &e);
    const char *base = strrchr(path, '/');
    th_ok(rc == -1 && strstr(e.msg, want) && strstr(e.msg, base ? base + 1 : path), "lpips load refuses %s: %s", what,
          rc ? e.msg : "accepted");
    if (!rc) rhd_lpips_free(&l);
}

static void test_errors(const char *alex_path) {
    const char *dir = th_subdir("lpips_bad");
    char missing[1200];
    snprintf(missing, sizeof missing, "%s/nope.safetensors", dir);
    expect_error("a missing file", missing, "nope.safetensors");
    rhd_st *st;
    rhd_err e;
    if (rhd_st_open(alex_path, &st, &e)) {
        th_ok(0, "open %s: %s", alex_path, e.msg);
        return;
    }
    expect_error("a missing conv weight", variant(st, dir, "drop", V_DROP, "net.slice3.6.weight"),
                 "tensor 'net.slice3.6.weight' is missing, expected [384,192,3,3] (the alex backbone's conv 192->384 k3)");
    expect_error("a missing head", variant(st, dir, "nohead", V_DROP, "lin4.model.1.weight"),
                 "tensor 'lin4.model.1.weight' (or 'lins.4.model.1.weight') is missing, expected [1,256,1,1]");
    expect_error("a head of the wrong width", variant(st, dir, "head", V_SHAPE, "lin2.model.1.weight"),
                 "tensor 'lin2.model.1.weight' has shape [1,383,1,1], expected [1,384,1,1] (the alex head of layer 2)");
    expect_error("a conv of the wrong shape", variant(st, dir, "conv", V_SHAPE, "net.slice2.3.weight"),
                 "tensor 'net.slice2.3.weight' has shape [192,63,5,5], expected [192,64,5,5]");
    expect_error("an unknown first conv", variant(st, dir, "first", V_FIRST, "net.slice1.0.weight"),
                 "has shape [64,3,7,7], expected [64,3,11,11] (alex) or [64,3,3,3] (vgg)");
    expect_error("an integer tensor", variant(st, dir, "int", V_INT, "net.slice1.0.bias"),
                 "tensor 'net.slice1.0.bias' has dtype I32, expected F32");
    expect_error("a NaN weight", variant(st, dir, "nan", V_NAN, "net.slice4.8.weight"),
                 "tensor 'net.slice4.8.weight' holds a non-finite value");
    expect_error("a file of another kind", variant(st, dir, "kind", V_KIND, "lin0.model.1.weight"),
                 "an rhd 'decoder' file, expected LPIPS weights");
    expect_error("metadata naming another net", variant(st, dir, "netmeta", V_NETMETA, "lin0.model.1.weight"),
                 "metadata lpips.net is 'vgg' but the tensors are those of alex");
    expect_error("a newer layout version", variant(st, dir, "newer", V_NEWER, "lin0.model.1.weight"),
                 "rhd.version 2 of the lpips layout, expected 1");
    expect_error("a SqueezeNet file", variant(st, dir, "squeeze", V_SQUEEZE, "lin0.model.1.weight"),
                 "a SqueezeNet LPIPS");
    expect_error("a file without the backbone", variant(st, dir, "nobackbone", V_DROP, "net.slice1.0.weight"),
                 "tensor 'net.slice1.0.weight' is missing, expected an LPIPS state dict");
    /* heads under the duplicate names lins.K: the same distance */
    rhd_lpips l, l2;
    const char *lins = variant(st, dir, "lins", V_LINS, "lin1.model.1.weight");
    if (rhd_lpips_load_st(&l, g_cpu, st, &e) || rhd_lpips_load(&l2, g_cpu, lins, &e)) {
        th_ok(0, "load %s: %s", alex_path, e.msg);
        rhd_st_close(st);
        return;
    }
    {
        float *a = th_randu(3 * 40 * 33, 0, 1), *b = th_randu(3 * 40 * 33, 0, 1);
        double v1 = NAN, v2 = NAN;
        rhd_lpips_eval(&l, a, b, 40, 33, &v1, &e);
        rhd_lpips_eval(&l2, a, b, 40, 33, &v2, &e);
        th_ok(v1 == v2, "a head stored as lins.1.model.1.weight loads and gives the same distance (%.9f)", v2);
        free(a), free(b);
        rhd_lpips_free(&l2);
    }
    /* the size check */
    {
        float *a = th_randu(3 * 30 * 40, 0, 1);
        double v;
        int rc = rhd_lpips_eval(&l, a, a, 30, 40, &v, &e);
        th_ok(rc == -1 && strstr(e.msg, "image is 40x30, expected at least 31x31"), "alex refuses a 40x30 image: %s",
              rc ? e.msg : "accepted");
        th_ok(rhd_lpips_check_size(&l, 31, 31, &e) == 0, "alex accepts 31x31");
        free(a);
        rhd_lpips_free(&l);
    }
    rhd_st_close(st);
}

int main(void) {
    th_open_backends(&g_cpu, &g_gpu);
    const lcase cases[] = {{"alex", 45, 67}, {"alex", 64, 96}, {"vgg", 45, 67}, {"vgg", 64, 64}};
    char alex_path[1200] = "";
    for (int k = 0; k < (int)(sizeof cases / sizeof cases[0]); k++)
        test_case(&cases[k], k, k == 0 ? alex_path : NULL, sizeof alex_path);
    test_errors(alex_path);
    rhd_ctx_close(g_cpu);
    if (g_gpu) rhd_ctx_close(g_gpu);
    return th_done();
}
