/* tests/unit/test_triplane_type.c: the triplane type (common/triplane.h) and its files
 * (formats/triplane_file.h) against NumPy (tests/ref/ref_triplane.py) on fresh random values:
 * the roll-out [3,C,R,R] -> [C,R,3R] and back (spec diffusion.md §2.1), the plane split of the
 * original's files (§6: float16 [3,1,C,R,R] and rolled [C,R,3R] .npy), the .npy files written
 * here as NumPy reads them, the NaN check naming file, tensor and index, and the typed
 * rhd.triplane_res metadata (one writer, one reader, the rhd.config fallback, bad values). */
#include "refcheck.h"
#include "common/triplane.h"
#include "formats/safetensors.h"
#include "formats/schema.h"
#include "formats/triplane_file.h"

static void test_layouts(void) {
    const int C = 5, R = 7; /* odd sizes: a wrong stride cannot hide */
    int64_t n = rhd_triplane_numel_of(C, R);
    th_ok(n == 3 * 5 * 7 * 7, "rhd_triplane_numel_of(5, 7) = %lld", (long long)n);
    float *t = th_randn(n, 1.f), *x = th_randn(n, 1.f);
    const char *dir = th_subdir("triplane_type");
    int64_t s4[4] = {3, C, R, R}, s3[3] = {C, R, 3 * R};
    th_save(dir, "T", t, 4, s4);
    th_save(dir, "X", x, 3, s3);
    /* the files this side writes, checked by NumPy */
    char path[1200];
    rhd_err e = {0};
    rhd_triplane tp = rhd_triplane_view(t, C, R, 0, NULL);
    snprintf(path, sizeof path, "%s/c_planes.npy", dir);
    int wr = rhd_triplane_file_write(path, &tp, NULL, &e);
    rhd_triplane tr;
    rhd_triplane_alloc(&tr, C, R, 0, NULL);
    memcpy(tr.planes, t, sizeof(float) * n);
    rhd_triplane_set_layout(&tr, RHD_TRIPLANE_ROLLED);
    snprintf(path, sizeof path, "%s/c_rolled.npy", dir);
    wr |= rhd_triplane_file_write(path, &tr, NULL, &e);
    th_ok(wr == 0, "write a PLANES and a ROLLED triplane as .npy %s", wr ? e.msg : "");
    if (th_ref("ref_triplane.py", "%s %d %d", dir, C, R) != 0) {
        th_ok(0, "NumPy reference ran");
        return;
    }
    float *got = malloc(sizeof(float) * n);
    rhd_triplane_roll(got, t, C, R);
    float *ref = th_load(dir, "roll", n);
    th_same_bytes("roll [3,5,7,7] -> [5,7,21] vs np.concatenate(list(T), axis=2)", got, ref, n, 4);
    free(ref);
    th_same_bytes("rhd_triplane_set_layout(ROLLED) = rhd_triplane_roll", tr.planes, got, n, 4);
    rhd_triplane_unroll(got, x, C, R);
    ref = th_load(dir, "unroll", n);
    th_same_bytes("unroll [5,7,21] -> [3,5,7,7] vs np.stack(np.split(X, 3, axis=2))", got, ref, n, 4);
    free(ref);
    float *back = malloc(sizeof(float) * n);
    rhd_triplane_roll(back, got, C, R);
    th_same_bytes("roll(unroll(X)) = X", back, x, n, 4);
    rhd_triplane_set_layout(&tr, RHD_TRIPLANE_PLANES);
    th_same_bytes("set_layout ROLLED then PLANES gives T back", tr.planes, t, n, 4);
    rhd_triplane_free(&tr);
    free(back);

    /* C-written files as NumPy reads them */
    int32_t *sh = th_load_t(dir, "c_shapes", RHD_I32, 8);
    th_ok(sh && sh[0] == 3 && sh[1] == 1 && sh[2] == C && sh[3] == R && sh[4] == R,
          "c_planes.npy: NumPy reads shape [3,1,C,R,R] (the original's fitting file)");
    th_ok(sh && sh[5] == C && sh[6] == R && sh[7] == 3 * R, "c_rolled.npy: NumPy reads shape [C,R,3R] (the upsampler's file)");
    free(sh);
    ref = th_load(dir, "c_planes_back", n);
    th_same_bytes("c_planes.npy values = T", ref ? ref : t, t, ref ? n : 0, 4);
    th_ok(ref != NULL, "c_planes_back.npy loaded");
    free(ref);
    ref = th_load(dir, "c_rolled_back", n);
    th_same_bytes("c_rolled.npy split by NumPy = T", ref ? ref : t, t, ref ? n : 0, 4);
    free(ref);

    /* the original's files through the one reader: [3,1,C,R,R] float16 and the rolled strip */
    const char *names[2] = {"np5", "npstrip"};
    for (int k = 0; k < 2; k++) {
        rhd_triplane rt;
        snprintf(path, sizeof path, "%s/%s.npy", dir, names[k]);
        int rc = rhd_triplane_file_read(path, &rt, NULL, &e);
        th_ok(!rc && rt.C == C && rt.R == R && rt.layout == RHD_TRIPLANE_PLANES && !rt.ctx,
              "read %s.npy: a host [3,%d,%d,%d] triplane %s", names[k], C, R, R, rc ? e.msg : "");
        if (rc) continue;
        if (k == 1) th_same_bytes("npstrip.npy [C,R,3R] split into the planes = T", rt.planes, t, n, 4);
        else {
            float *h = malloc(sizeof(float) * n); /* float16 of T: within half-precision rounding */
            for (int64_t i = 0; i < n; i++) h[i] = t[i];
            th_close("np5.npy float16 [3,1,C,R,R] = T (to fp16 rounding)", rt.planes, h, n, 1e-6);
            free(h);
        }
        rhd_triplane_free(&rt);
    }
    rhd_triplane rt;
    snprintf(path, sizeof path, "%s/npnan.npy", dir);
    int rc = rhd_triplane_file_read(path, &rt, NULL, &e);
    th_ok(rc && strstr(e.msg, "npnan.npy") && strstr(e.msg, "[1,2,3,4]") && strstr(e.msg, "nan"),
          "a NaN in an .npy triplane is an error naming the file and the index: %s", rc ? e.msg : "(accepted)");
    free(got), free(t), free(x);
}

/* A safetensors triplane with a bad value, or of a bad shape, is refused with its name. */
static void test_bad_safetensors(void) {
    const char *dir = th_subdir("triplane_bad");
    char path[1200];
    rhd_err e = {0};
    float v[3 * 2 * 2 * 2];
    for (int i = 0; i < 24; i++) v[i] = 0.1f * i;
    v[13] = INFINITY;
    rhd_triplane t = rhd_triplane_view(v, 2, 2, 0, NULL);
    snprintf(path, sizeof path, "%s/inf.safetensors", dir);
    rhd_triplane_meta m = {"test", "a", 3, 1, 9};
    th_ok(rhd_triplane_file_write(path, &t, &m, &e) == 0, "write a safetensors triplane");
    rhd_triplane rt;
    int entry = 0;
    int rc = rhd_triplane_file_read(path, &rt, &entry, &e);
    th_ok(rc && strstr(e.msg, "inf.safetensors") && strstr(e.msg, "'planes'") && strstr(e.msg, "[1,1,0,1]"),
          "an infinity in 'planes' names the file, the tensor and [p,c,i,j]: %s", rc ? e.msg : "(accepted)");
    v[13] = 1.f;
    th_ok(rhd_triplane_file_write(path, &t, &m, &e) == 0, "rewrite it finite");
    rc = rhd_triplane_file_read(path, &rt, &entry, &e);
    th_ok(!rc && entry == 3 && rt.C == 2 && rt.R == 2 && !memcmp(rt.planes, v, sizeof v),
          "read back: same values, rhd.entry 3 %s", rc ? e.msg : "");
    if (!rc) rhd_triplane_free(&rt);
    /* a 'planes' tensor of a non-triplane shape */
    rhd_st_writer w;
    rhd_st_writer_init(&w);
    int64_t s[4] = {2, 3, 2, 2};
    rhd_st_add(&w, "planes", RHD_F32, 4, s, v);
    snprintf(path, sizeof path, "%s/shape.safetensors", dir);
    rhd_st_write(&w, path, &e);
    rhd_st_writer_free(&w);
    rc = rhd_triplane_file_read(path, &rt, NULL, &e);
    th_ok(rc && strstr(e.msg, "shape.safetensors") && strstr(e.msg, "[2,3,2,2]"),
          "a 'planes' [2,3,2,2] is refused with its shape: %s", rc ? e.msg : "(accepted)");
}

static int meta_res(const char *key, const char *value, int *R, rhd_err *e) {
    rhd_st_writer w;
    rhd_st_writer_init(&w);
    float x = 0;
    int64_t s[1] = {1};
    rhd_st_add(&w, "x", RHD_F32, 1, s, &x);
    if (key) rhd_st_set_meta(&w, key, value);
    void *buf;
    size_t n;
    rhd_st *st;
    int rc = rhd_st_encode(&w, &buf, &n, e) || rhd_st_parse(buf, n, "m.safetensors", &st, e);
    rhd_st_writer_free(&w);
    if (!rc) {
        rc = rhd_meta_get_triplane_res(st, R, e);
        rhd_st_close(st);
    }
    free(buf);
    return rc;
}

static void test_meta(void) {
    rhd_st_writer w;
    rhd_st_writer_init(&w);
    rhd_meta_set_triplane_res(&w, 384);
    const char *v = NULL;
    for (int i = 0; i < w.nmeta; i++)
        if (!strcmp(w.meta_key[i], "rhd.triplane_res")) v = w.meta_val[i];
    rhd_err e = {0};
    int R = -1;
    int rc = v ? meta_res("rhd.triplane_res", v, &R, &e) : -1;
    th_ok(!rc && R == 384, "rhd_meta_set_triplane_res(384) reads back as 384 (stored '%s')", v ? v : "?");
    rhd_st_writer_free(&w);
    th_ok(!meta_res(NULL, NULL, &R, &e) && R == 0, "no metadata: resolution 0 (unknown)");
    th_ok(!meta_res("rhd.config", "{\"triplane_channels\": 32, \"triplane_res\": 16}", &R, &e) && R == 16,
          "files before rhd.triplane_res: rhd.config triplane_res 16 is read");
    const char *bad[] = {"12x", "1", "100000", "", "-5"};
    for (int i = 0; i < 5; i++) {
        rc = meta_res("rhd.triplane_res", bad[i], &R, &e);
        th_ok(rc && strstr(e.msg, "m.safetensors") && strstr(e.msg, "rhd.triplane_res"),
              "rhd.triplane_res '%s' is refused: %s", bad[i], rc ? e.msg : "(accepted)");
    }
    rc = meta_res("rhd.config", "{\"triplane_res\": 16.5}", &R, &e);
    th_ok(rc != 0, "rhd.config triplane_res 16.5 is refused: %s", rc ? e.msg : "(accepted)");
}

int main(void) {
    th_seed();
    test_layouts();
    test_bad_safetensors();
    test_meta();
    return th_done();
}
