/* tests/unit/test_resize.c: the portrait preprocessing (common/image_resize.h) against Pillow 10.4
 * itself (tests/ref/ref_resize.py): the Pillow-compatible LANCZOS resize must match bit for bit on
 * random RGBA images (down- and up-scaling, odd and non-square sizes, alpha 0/255/fractional) and
 * on the dev-set portraits ($RHD_SHARED/data/blender-avatars-dev, view 0, at several target
 * sizes); the encoder input x (composite on white, [-1,1]) must match the original's float32
 * arithmetic exactly. The float Lanczos method is compared with the exact one and its difference
 * printed (documented in tools/rhd-encode.md). */
#include "refcheck.h"
#include "common/image_resize.h"
#include "formats/png.h"
#include <sys/stat.h>

typedef struct {
    const char *kind; /* "random", "smooth", "png" */
    int w, h, ow, oh;
    char path[700];
    float *in; /* (h, w, 4), 0..255 for arrays; [0,1] for png */
} rcase;

static float *random_rgba(int w, int h, int smooth) {
    long n = (long)w * h;
    float *u = th_randu(n * 4, 0.f, 1.f), *sel = th_randu(n, 0.f, 1.f);
    float *img = malloc(sizeof(float) * n * 4);
    double fx = 0.05 + 0.3 * u[0], fy = 0.07 + 0.2 * u[1];
    for (long p = 0; p < n; p++) {
        int x = (int)(p % w), y = (int)(p / w);
        for (int c = 0; c < 3; c++) {
            double v = smooth ? 127.5 + 127.5 * sin(fx * x * (c + 1) + fy * y) : floor(u[4 * p + c] * 256.0);
            img[4 * p + c] = (float)floor(fmin(255, fmax(0, v)));
        }
        /* alpha: a third exactly 0, a third 255, a third fractional (smooth: a soft disc) */
        double a;
        if (smooth) {
            double r = hypot(x - w / 2.0, y - h / 2.0) / (0.4 * (w < h ? w : h));
            a = r < 0.8 ? 255 : r < 1.2 ? 255 * (1.2 - r) / 0.4 : 0;
        } else
            a = sel[p] < 1 / 3.0 ? 0 : sel[p] < 2 / 3.0 ? 255 : floor(u[4 * p + 3] * 256.0);
        img[4 * p + 3] = (float)floor(fmin(255, a));
    }
    free(u), free(sel);
    return img;
}

int main(void) {
    const char *dir = th_subdir("resize");
    rcase cases[32];
    int nc = 0;
    static const int sizes[][5] = {
        /* w, h, ow, oh, smooth */
        {300, 211, 128, 128, 0}, {97, 130, 128, 128, 0}, {50, 40, 128, 128, 0},  {129, 127, 128, 128, 0},
        {512, 512, 128, 128, 1}, {17, 300, 128, 128, 0}, {1000, 61, 128, 128, 1}, {128, 128, 128, 128, 0},
        {128, 200, 128, 128, 0}, {200, 150, 37, 91, 0},  {64, 64, 128, 128, 1},   {257, 255, 128, 128, 1},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        rcase *c = &cases[nc++];
        memset(c, 0, sizeof *c);
        c->kind = sizes[i][4] ? "smooth" : "random";
        c->w = sizes[i][0], c->h = sizes[i][1], c->ow = sizes[i][2], c->oh = sizes[i][3];
        c->in = random_rgba(c->w, c->h, sizes[i][4]);
    }
    /* the dev-set portraits (view 0), at their own size and resized */
    const char *shared = getenv("RHD_SHARED");
    char data[600];
    snprintf(data, sizeof data, "%s/data/blender-avatars-dev", shared && *shared ? shared : "../shared");
    static const char *avatars[] = {"avatar_100", "avatar_101", "avatar_102", "avatar_103"};
    static const int targets[][2] = {{128, 128}, {64, 64}, {97, 113}, {300, 300}};
    int npng = 0;
    for (int a = 0; a < 4; a++) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s/img_proc_fg_000000.png", data, avatars[a]);
        rhd_image img;
        rhd_err e;
        if (rhd_png_read(path, &img, &e)) continue;
        for (int t = 0; t < 4; t++) {
            rcase *c = &cases[nc++];
            memset(c, 0, sizeof *c);
            c->kind = "png";
            snprintf(c->path, sizeof c->path, "%s", path);
            c->w = img.width, c->h = img.height, c->ow = targets[t][0], c->oh = targets[t][1];
            c->in = malloc(sizeof(float) * img.width * img.height * 4);
            memcpy(c->in, img.data, sizeof(float) * img.width * img.height * 4);
        }
        npng++;
        rhd_image_free(&img);
    }

    char path[1200];
    snprintf(path, sizeof path, "%s/cases.txt", dir);
    FILE *f = fopen(path, "w");
    for (int k = 0; k < nc; k++) {
        rcase *c = &cases[k];
        if (strcmp(c->kind, "png") == 0) {
            fprintf(f, "png %d %d %d %s\n", k, c->ow, c->oh, c->path);
        } else {
            char name[32];
            snprintf(name, sizeof name, "in_%d", k);
            th_save(dir, name, c->in, 3, (int64_t[]){c->h, c->w, 4});
            fprintf(f, "array %d %d %d\n", k, c->ow, c->oh);
        }
    }
    fclose(f);
    if (th_ref("ref_resize.py", "%s", dir) != 0) {
        th_ok(0, "Pillow reference ran");
        return th_done();
    }

    double worst_float_x = 0;
    for (int k = 0; k < nc; k++) {
        rcase *c = &cases[k];
        int png = strcmp(c->kind, "png") == 0;
        long nin = (long)c->w * c->h * 4, nout = (long)c->ow * c->oh * 4;
        uint8_t *in8 = malloc(nin), *out8 = malloc(nout);
        for (long i = 0; i < nin; i++) in8[i] = (uint8_t)lrintf(png ? c->in[i] * 255.f : c->in[i]);
        rhd_resize_rgba8_pillow(out8, c->ow, c->oh, in8, c->w, c->h);
        char name[32];
        snprintf(name, sizeof name, "out_%d", k);
        float *ref = th_load(dir, name, nout);
        long bad = 0, first = -1;
        for (long i = 0; ref && i < nout; i++)
            if (out8[i] != (uint8_t)ref[i]) bad++, first = first < 0 ? i : first;
        th_ok(ref && bad == 0, "pillow lanczos %s %dx%d -> %dx%d: %ld of %ld samples differ from Pillow%s", c->kind,
              c->w, c->h, c->ow, c->oh, bad, nout, bad ? " (first shown below)" : "");
        if (bad) th_diag("  sample %ld: got %d, Pillow %d", first, out8[first], (int)ref[first]);

        /* the encoder input, both methods (square targets only: rhd_portrait_to_input is square) */
        if (c->ow == c->oh) {
            long nx = 3L * c->ow * c->oh;
            float *x = malloc(sizeof(float) * nx), *xf = malloc(sizeof(float) * nx);
            float *rgba01 = malloc(sizeof(float) * nin);
            for (long i = 0; i < nin; i++) rgba01[i] = (float)in8[i] / 255.0f;
            rhd_err e;
            int rc = rhd_portrait_to_input(x, c->ow, rgba01, c->w, c->h, RHD_RESIZE_PILLOW, "t", &e);
            rc |= rhd_portrait_to_input(xf, c->ow, rgba01, c->w, c->h, RHD_RESIZE_FLOAT, "t", &e);
            snprintf(name, sizeof name, "x_%d", k);
            float *xr = th_load(dir, name, nx);
            long xbad = 0;
            double dmax = 0, dsum = 0;
            for (long i = 0; xr && i < nx; i++) {
                xbad += memcmp(&x[i], &xr[i], 4) != 0;
                double d = fabs((double)xf[i] - xr[i]);
                dmax = d > dmax ? d : dmax;
                dsum += d;
            }
            th_ok(rc == 0 && xr && xbad == 0, "encoder input x %s %dx%d -> %d: %ld of %ld values differ from the original's float32",
                  c->kind, c->w, c->h, c->ow, xbad, nx);
            if (xr) th_diag("  float method vs Pillow: max |dx| %.4g, mean |dx| %.4g (x in [-1,1])", dmax, dsum / nx);
            if (png && dmax > worst_float_x) worst_float_x = dmax;
            free(x), free(xf), free(rgba01), free(xr);
        }
        free(in8), free(out8), free(ref);
    }
    if (npng)
        th_ok(worst_float_x < 0.1, "float method on portraits stays close to Pillow: worst max |dx| %.4g < 0.1", worst_float_x);
    else
        th_skip("dev-set portraits not found under %s", data);

    /* errors: a tiny image is refused with its size */
    {
        float img[15 * 40 * 4] = {0}, x[3 * 128 * 128];
        rhd_err e;
        int rc = rhd_portrait_to_input(x, 128, img, 15, 40, RHD_RESIZE_PILLOW, "tiny.png", &e);
        th_ok(rc == -1 && strstr(e.msg, "tiny.png: image is 15x40, expected at least 16x16"), "tiny image refused: %s",
              rc ? e.msg : "(accepted)");
        img[5] = 0.3337f; /* not k/255 */
        float big[16 * 16 * 4] = {0};
        big[5] = 0.3337f;
        rc = rhd_portrait_to_input(x, 128, big, 16, 16, RHD_RESIZE_PILLOW, "odd.png", &e);
        th_ok(rc == -1 && strstr(e.msg, "not an 8-bit level"), "non-8-bit values refused by the Pillow method: %s",
              rc ? e.msg : "(accepted)");
    }
    for (int k = 0; k < nc; k++) free(cases[k].in);
    return th_done();
}
