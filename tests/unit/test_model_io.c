/* tests/unit/test_model_io.c: the model files of fitting (common/model_io.h) on fresh random
 * parameters: a decoder of non-default sizes written and read back (values bit for bit, sizes and
 * rhd.triplane_res from the file, the file as the safetensors package reads it), and refused with
 * a message naming the file and the tensor when a tensor has the wrong shape, holds a NaN, is
 * missing, or the file is truncated or of another kind; IWC states and the fit checkpoint
 * likewise; triplanes loaded at another resolution (resized) or with other channels (refused). */
#include "refcheck.h"
#include <unistd.h>
#include "common/model_io.h"
#include "formats/params_io.h"
#include "formats/schema.h"

static rhd_ctx *cpu;
static char path[1400];

static const char *P(const char *name) {
    snprintf(path, sizeof path, "%s/%s", th_subdir("model_io"), name);
    return path;
}

static void make_decoder(rhd_decoder *d, int C, int hidden, int with_grad) {
    rhd_decoder_cfg c;
    rhd_decoder_cfg_default(&c);
    c.C = C, c.hidden = hidden, c.geo = 24;
    rhd_err e;
    if (rhd_decoder_init(d, &c, cpu, with_grad, &e)) fprintf(stderr, "%s\n", e.msg), exit(1);
    float *r = th_randn(d->P.total, 0.3f);
    memcpy(d->P.data, r, sizeof(float) * d->P.total);
    free(r);
}

/* Write dec's parameters as a decoder file with one change: mode 0 none, 1 a tensor of another
 * shape, 2 a NaN, 3 a tensor missing. */
static void write_broken(const char *file, const rhd_decoder *d, int mode) {
    rhd_st_writer w;
    rhd_st_writer_init(&w);
    rhd_params_to_writer(&d->P, RHD_PBUF_DATA, "", &w);
    int k = mode == 3 ? 5 : 2; /* color_net.1.weight, sigma_net.2.weight */
    if (mode == 1) w.t[k].shape[1] -= 1;
    if (mode == 2) ((float *)w.t[k].owned)[5] = NAN;
    if (mode == 3) {
        free(w.t[k].owned), free(w.t[k].name);
        w.t[k] = w.t[--w.n];
    }
    rhd_schema_stamp(&w, "decoder", "test");
    rhd_err e;
    if (rhd_st_write(&w, file, &e)) fprintf(stderr, "%s\n", e.msg), exit(1);
    rhd_st_writer_free(&w);
}

/* Bytewise equality of every tensor of a parameter table (the gaps between aligned tensors are
 * not part of a file). */
static void same_params(const char *what, const rhd_params *p, const float *got, const float *ref) {
    int64_t bad = 0, n = 0;
    for (int i = 0; i < p->n; i++) {
        const rhd_param_info *t = &p->info[i];
        n += t->numel;
        for (int64_t k = 0; k < t->numel; k++) bad += memcmp(got + t->offset + k, ref + t->offset + k, 4) != 0;
    }
    th_ok(bad == 0, "%s: %lld values in %d tensors, %lld differ", what, (long long)n, p->n, (long long)bad);
}

static void expect_fail(int rc, const rhd_err *e, const char *what, const char *want1, const char *want2) {
    th_ok(rc != 0 && strstr(e->msg, want1) && (!want2 || strstr(e->msg, want2)), "%s: %s", what,
          rc ? e->msg : "(accepted)");
}

static void test_decoder(void) {
    rhd_decoder d, r;
    make_decoder(&d, 16, 40, 0);
    rhd_err e = {0};
    rhd_decoder_file_info info = {96, 1234, 5.5, 1.f}, got;
    int rc = rhd_decoder_file_write(P("dec.safetensors"), &d, &info, "test", &e);
    th_ok(!rc, "write a decoder for 16 channels, hidden 40, geo 24 %s", rc ? e.msg : "");
    rc = rhd_decoder_file_read(path, cpu, 0, &r, &got, &e);
    th_ok(!rc && r.cfg.C == 16 && r.cfg.hidden == 40 && r.cfg.geo == 24,
          "read back: sizes from the file (C %d, hidden %d, geo %d) %s", rc ? 0 : r.cfg.C, rc ? 0 : r.cfg.hidden,
          rc ? 0 : r.cfg.geo, rc ? e.msg : "");
    if (rc) return;
    same_params("decoder parameters round trip", &d.P, r.P.data, d.P.data);
    th_ok(got.triplane_res == 96 && got.mean_count == 1234 && got.mean_density == 5.5,
          "metadata: triplane_res %d, mean_count %lld, mean_density %g", got.triplane_res, got.mean_count, got.mean_density);
    rhd_decoder_free(&r);
    /* the file as the safetensors package reads it */
    rc = th_sh("%s -c \"import sys; from safetensors import safe_open\n"
               "with safe_open(sys.argv[1], 'np') as f:\n"
               "    m = f.metadata(); w = f.get_tensor('sigma_net.0.weight')\n"
               "    assert m['rhd.kind'] == 'decoder' and m['rhd.triplane_res'] == '96', m\n"
               "    assert w.shape == (40, 20), w.shape\" '%s'",
               getenv("RHD_PY") ? getenv("RHD_PY") : "python3", path);
    th_ok(rc == 0, "safetensors.safe_open reads rhd.triplane_res '96' and sigma_net.0.weight [40,20]");

    static const char *what[] = {"", "a tensor of another shape", "a NaN", "a missing tensor"};
    static const char *want[] = {"", "'sigma_net.2.weight' has 39 inputs, expected 40", "'sigma_net.2.weight' holds a non-finite",
                                 "'color_net.1.weight' is missing"};
    for (int m = 1; m <= 3; m++) {
        write_broken(P("bad.safetensors"), &d, m);
        rc = rhd_decoder_file_read(path, cpu, 0, &r, NULL, &e);
        char label[96];
        snprintf(label, sizeof label, "decoder with %s is refused", what[m]);
        expect_fail(rc, &e, label, "bad.safetensors", want[m]);
    }
    rhd_decoder_file_write(P("trunc.safetensors"), &d, &info, "test", &e);
    rc = truncate(path, 4000);
    rc = rhd_decoder_file_read(path, cpu, 0, &r, NULL, &e);
    expect_fail(rc, &e, "a truncated decoder file is refused", "trunc.safetensors", NULL);
    float planes[3 * 4 * 2 * 2] = {0};
    rhd_triplane t = rhd_triplane_view(planes, 4, 2, 0, NULL);
    rhd_triplane_file_write(P("tri.safetensors"), &t, NULL, &e);
    rc = rhd_decoder_file_read(path, cpu, 0, &r, NULL, &e);
    expect_fail(rc, &e, "a triplane given as the decoder is refused", "tri.safetensors", "expected a decoder");
    rhd_decoder_free(&d);
}

static void test_iwc(void) {
    rhd_decoder d;
    make_decoder(&d, 8, 16, 0);
    float *F = th_randu(d.P.total, 0.f, 1e-3f), *O = th_randn(d.P.total, 1.f), *F2, *O2;
    rhd_err e = {0};
    rhd_iwc_meta m = {"avatar_7", 2, 5, 1};
    int rc = rhd_iwc_file_write(P("iwc.safetensors"), &d, F, O, &m, "test", &e);
    int entry = -1;
    rc = rc || rhd_iwc_file_read(path, &d, &F2, &O2, &entry, &e);
    th_ok(!rc && entry == 5, "IWC state round trip, rhd.entry %d %s", entry, rc ? e.msg : "");
    if (rc) return;
    same_params("IWC fisher round trip", &d.P, F2, F);
    same_params("IWC optpar round trip", &d.P, O2, O);
    free(F2), free(O2);
    rhd_decoder other;
    make_decoder(&other, 8, 24, 0);
    rc = rhd_iwc_file_read(path, &other, &F2, &O2, &entry, &e);
    expect_fail(rc, &e, "an IWC state of another decoder width is refused", "iwc.safetensors", "has shape");
    rhd_decoder_free(&other);
    F[3] = -1.f;
    rhd_iwc_file_write(P("iwc_neg.safetensors"), &d, F, O, &m, "test", &e);
    rc = rhd_iwc_file_read(path, &d, &F2, &O2, &entry, &e);
    expect_fail(rc, &e, "a negative squared gradient is refused", "iwc_neg.safetensors", "'fisher.sigma_net.0.weight'");
    F[3] = 0.f, O[7] = INFINITY;
    rhd_iwc_file_write(P("iwc_inf.safetensors"), &d, F, O, &m, "test", &e);
    rc = rhd_iwc_file_read(path, &d, &F2, &O2, &entry, &e);
    expect_fail(rc, &e, "an infinity in optpar is refused", "iwc_inf.safetensors", "'optpar.sigma_net.0.weight'");
    free(F), free(O);
    rhd_decoder_free(&d);
}

static void test_checkpoint(void) {
    rhd_decoder d, r;
    make_decoder(&d, 8, 16, 1);
    float *m = th_randn(d.P.total, 1.f), *v = th_randu(d.P.total, 0.f, 1.f);
    memcpy(d.P.m, m, sizeof(float) * d.P.total), memcpy(d.P.v, v, sizeof(float) * d.P.total);
    rhd_err e = {0};
    rhd_fit_checkpoint c = {3, 456, 77, "{\"plan\": 1}", "[{\"entry\": 0}]", "{\"rays\":128}"}, g;
    int rc = rhd_fit_checkpoint_write(P("ck.safetensors"), &d, &c, "test", &e);
    make_decoder(&r, 8, 16, 1);
    rc = rc || rhd_fit_checkpoint_read(path, &r, &g, &e);
    th_ok(!rc && g.entries_done == 3 && g.step == 456 && g.seed == 77 && !strcmp(g.plan, c.plan) && !strcmp(g.records, c.records) &&
          g.options && !strcmp(g.options, c.options),
          "fit checkpoint round trip: entries 3, step 456, seed 77, plan, records and options %s", rc ? e.msg : "");
    if (rc) return;
    same_params("checkpoint parameters", &d.P, r.P.data, d.P.data);
    same_params("checkpoint adam.m", &d.P, r.P.m, d.P.m);
    same_params("checkpoint adam.v", &d.P, r.P.v, d.P.v);
    rhd_fit_checkpoint_free(&g);
    d.P.v[11] = NAN;
    rhd_fit_checkpoint_write(P("ck_nan.safetensors"), &d, &c, "test", &e);
    rc = rhd_fit_checkpoint_read(path, &r, &g, &e);
    expect_fail(rc, &e, "a NaN in an Adam moment is refused", "ck_nan.safetensors", "'adam.v.sigma_net.0.weight'");
    rc = rhd_decoder_file_write(P("ck_dec.safetensors"), &d, NULL, "test", &e);
    rc = rhd_fit_checkpoint_read(path, &r, &g, &e);
    expect_fail(rc, &e, "a decoder file given as the checkpoint is refused", "ck_dec.safetensors", "checkpoint");
    free(m), free(v);
    rhd_decoder_free(&d), rhd_decoder_free(&r);
}

static void test_triplane_load(void) {
    rhd_err e = {0};
    float *v = th_randn(3 * 4 * 6 * 6, 1.f);
    rhd_triplane t = rhd_triplane_view(v, 4, 6, 0, NULL);
    rhd_triplane_meta m = {"test", "a", 0, 1, 3};
    int rc = rhd_triplane_save(P("t.safetensors"), &t, &m, 1, &e);
    th_ok(!rc && access(P("t.npy"), F_OK) == 0, "rhd_triplane_save writes the safetensors and the .npy beside it");
    rhd_triplane d;
    rhd_triplane_alloc(&d, 4, 6, 0, NULL);
    int entry = -1;
    rc = rhd_triplane_load(P("t.npy"), &d, 0, &entry, &e);
    th_same_bytes("rhd_triplane_load of the .npy = the planes", d.planes, v, rc ? 0 : 3 * 4 * 6 * 6, 4);
    rc = rhd_triplane_load(P("t.safetensors"), &d, 0, &entry, &e);
    th_ok(!rc && entry == 0, "rhd_triplane_load of the safetensors: rhd.entry 0 %s", rc ? e.msg : "");
    rhd_triplane_free(&d);
    rhd_triplane_alloc(&d, 4, 9, 0, NULL);
    rc = rhd_triplane_load(path, &d, 0, NULL, &e);
    expect_fail(rc, &e, "another resolution without resize is refused", "[3,4,6,6], expected [3,4,9,9]", NULL);
    rc = rhd_triplane_load(path, &d, 1, NULL, &e);
    double s = 0;
    for (int i = 0; i < 3 * 4 * 81 && !rc; i++) s += isfinite(d.planes[i]);
    th_ok(!rc && s == 3 * 4 * 81, "resize 6 -> 9 when allowed (bicubic): finite values %s", rc ? e.msg : "");
    rhd_triplane_free(&d);
    rhd_triplane_alloc(&d, 8, 6, 0, NULL);
    rc = rhd_triplane_load(path, &d, 1, NULL, &e);
    expect_fail(rc, &e, "other channels are refused", "t.safetensors", "expected [3,8,6,6]");
    rhd_triplane_free(&d);
    free(v);
}

int main(void) {
    rhd_err e;
    cpu = rhd_ctx_open("cpu", &e);
    if (!cpu) fprintf(stderr, "%s\n", e.msg), exit(1);
    th_seed();
    test_decoder();
    test_iwc();
    test_checkpoint();
    test_triplane_load();
    rhd_ctx_close(cpu);
    return th_done();
}
