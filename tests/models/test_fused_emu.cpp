/* tests/models/test_fused_emu.cpp: the fused CUDA inference kernel of the decoder
 * (common/models/decoder_fused.cuh), compiled for the CPU and run against the per-layer decoder,
 * so that the kernel's indexing, shared-memory layout and barriers are checked on every test run,
 * with or without a GPU.
 *
 * Emulation: tests/emu/emu_device.hpp (each block's threads as fibers sharing a NaN-filled dynamic
 * shared memory, __syncthreads a barrier, blocks one after another). The launcher's work
 * (weight transposes, packing the planes channels-last) is done here with the library's CPU ops,
 * as decoder.cu does on the device.
 * Compared: sigma, rgb and the density-only sigma against rhd_decoder_forward / _density on fresh
 * random inputs, at widths that take every code path (default sizes, a narrow sigma_net.2, more
 * output rows than threads, no geometry features, hidden < channels, a partial last tile). Under
 * `make SAN=1` the shared buffer is exactly the kernel's size, so an out-of-range index is caught. */
#include "emu/emu_device.hpp"
extern "C" {
#include "common/backend.h"
#include "common/models/decoder.h"
#include "common/rng.h"
#include "kernels/elementwise.h"
}
#include "kernels/act.h"
#include "kernels/freq_encode.h"
#include "kernels/triplane.h"

#include "common/models/decoder_fused.cuh"

static void launch(unsigned grid, unsigned block, size_t smem, fused_args a) {
    emu_launch({grid, 1, 1}, block, smem, [a] { fused_kernel(a); });
}

static int n_test, n_fail;
static void ok(int pass, const char *what) {
    n_test++;
    if (!pass) n_fail++;
    printf("%s %d - %s\n", pass ? "ok" : "not ok", n_test, what);
    fflush(stdout);
}

static void run_case(rhd_ctx *ctx, uint64_t seed, int C, int hid, int geo, int R, int64_t M, int clamp,
                     int agg = RHD_PLANE_MEAN) {
    rhd_err e = {};
    rhd_decoder_cfg cfg;
    rhd_decoder_cfg_default(&cfg);
    cfg.C = C, cfg.hidden = hid, cfg.geo = geo, cfg.agg = agg;
    rhd_decoder d;
    if (rhd_decoder_init(&d, &cfg, ctx, 0, &e)) {
        ok(0, e.msg);
        return;
    }
    rhd_decoder_init_weights(&d, seed);
    int64_t tn = 3LL * C * R * R;
    std::vector<float> planes(tn), pts(3 * M), dirs(3 * M);
    rhd_rng_fill_uniform(planes.data(), tn, seed, RHD_STREAM(RHD_STREAM_TEST, 1), 0, -1.2f, 1.2f);
    rhd_rng_fill_uniform(pts.data(), 3 * M, seed, RHD_STREAM(RHD_STREAM_TEST, 2), 0, -1.02f, 1.02f);
    rhd_rng_fill_normal(dirs.data(), 3 * M, seed, RHD_STREAM(RHD_STREAM_TEST, 3), 0, 0.f, 1.f);
    for (int64_t i = 0; i < M; i++) {
        float *v = &dirs[3 * i], n = sqrtf(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
        for (int k = 0; k < 3; k++) v[k] /= n;
    }
    rhd_decoder_acts acts = {};
    std::vector<float> sig_ref(M), rgb_ref(3 * M), den_ref(M);
    rhd_decoder_forward(ctx, &d, &acts, sig_ref.data(), rgb_ref.data(), pts.data(), dirs.data(), planes.data(), R,
                        clamp, M);
    rhd_decoder_density(ctx, &d, &acts, den_ref.data(), pts.data(), planes.data(), R, clamp, M);

    /* what the launcher prepares: transposed weights [in][out] and channels-last planes */
    const int h = hid, g1 = 1 + geo;
    int64_t sizes[5] = {(int64_t)d.Ed * h, (int64_t)h * g1, (int64_t)d.Cin * h, (int64_t)h * h, (int64_t)h * 3};
    std::vector<float> wt(sizes[0] + sizes[1] + sizes[2] + sizes[3] + sizes[4]), packed(tn);
    float *w0t = wt.data(), *w2t = w0t + sizes[0], *c0t = w2t + sizes[1], *c1t = c0t + sizes[2], *c2t = c1t + sizes[3];
    rhd_transpose_forward(ctx, w0t, rhd_param(&d.P, RHD_DEC_S0W), 1, h, d.Ed);
    rhd_transpose_forward(ctx, w2t, rhd_param(&d.P, RHD_DEC_S2W), 1, g1, h);
    rhd_transpose_forward(ctx, c0t, rhd_param(&d.P, RHD_DEC_C0W), 1, h, d.Cin);
    rhd_transpose_forward(ctx, c1t, rhd_param(&d.P, RHD_DEC_C1W), 1, h, h);
    rhd_transpose_forward(ctx, c2t, rhd_param(&d.P, RHD_DEC_C2W), 1, 3, h);
    rhd_triplane_pack(ctx, packed.data(), planes.data(), C, R, clamp);

    std::vector<float> sig(M, NAN), rgb(3 * M, NAN), den(M, NAN);
    fused_args fa;
    fa.packed = packed.data();
    fa.C = C, fa.R = R, fa.Cc = d.Cc, fa.Cd = d.Cd, fa.Ec = d.Ec, fa.Ed = d.Ed, fa.Edir = d.Edir;
    fa.geo = geo, fa.hid = h, fa.g1 = g1, fa.Cin = d.Cin, fa.degree = cfg.degree, fa.agg = cfg.agg;
    fa.w0t = w0t, fa.b0 = rhd_param(&d.P, RHD_DEC_S0B), fa.w2t = w2t, fa.b2 = rhd_param(&d.P, RHD_DEC_S2B);
    fa.c0t = c0t, fa.c1t = c1t, fa.c2t = c2t;
    fa.points = pts.data(), fa.dirs = dirs.data(), fa.sigma = sig.data(), fa.rgb = rgb.data(), fa.M = M;
    unsigned tiles = (unsigned)((M + FUSED_T - 1) / FUSED_T);
    size_t smem = fused_smem(&d);
    launch(tiles, FUSED_THREADS, smem, fa);
    fa.sigma = den.data(), fa.rgb = NULL, fa.dirs = NULL;
    launch(tiles, FUSED_THREADS, smem, fa);

    /* float32 sums in another order: sigma (an exp) to 1e-5 relative, colours to 1e-5 absolute */
    double es = 0, ed = 0, er = 0;
    for (int64_t i = 0; i < M; i++) {
        double a = fabs(sig[i] - sig_ref[i]) / (fabs(sig_ref[i]) + 1e-6);
        double b = fabs(den[i] - den_ref[i]) / (fabs(den_ref[i]) + 1e-6);
        es = std::isfinite(a) ? fmax(es, a) : INFINITY, ed = std::isfinite(b) ? fmax(ed, b) : INFINITY;
        for (int k = 0; k < 3; k++) {
            double c = fabs(rgb[3 * i + k] - rgb_ref[3 * i + k]);
            er = std::isfinite(c) ? fmax(er, c) : INFINITY;
        }
    }
    char what[320];
    snprintf(what, sizeof what,
             "fused kernel (emulated) C%d hidden %d geo %d R%d M%lld clamp %d agg %s, %zu B shared: sigma rel err "
             "%.2e, density-only %.2e, rgb abs err %.2e against the per-layer decoder",
             C, hid, geo, R, (long long)M, clamp, rhd_plane_agg_name(agg), smem, es, ed, er);
    ok(es <= 1e-5 && ed <= 1e-5 && er <= 1e-5, what);
    rhd_decoder_acts_free(&acts);
    rhd_decoder_free(&d);
}

int main() {
    rhd_err e = {};
    rhd_ctx *ctx = rhd_ctx_open("cpu", &e);
    if (!ctx) return fprintf(stderr, "%s\n", e.msg), 1;
    uint64_t seed = emu_test_seed();
    run_case(ctx, seed, 32, 128, 128, 64, 1000, 1); /* the default widths, a partial last tile */
    run_case(ctx, seed, 8, 32, 15, 16, 77, 0);      /* narrow sigma_net.2 */
    run_case(ctx, seed, 16, 160, 40, 20, 45, 1);    /* more output rows than threads */
    run_case(ctx, seed, 64, 48, 0, 12, 33, 1);      /* no geometry features, hidden < channels */
    run_case(ctx, seed, 4, 8, 3, 8, 5, 0);          /* tiny: one partial tile */
    run_case(ctx, seed, 32, 128, 128, 64, 1000, 1, RHD_PLANE_PRODUCT);
    run_case(ctx, seed, 8, 32, 15, 16, 77, 1, RHD_PLANE_OFFSET_PRODUCT);
    rhd_ctx_close(ctx);
    printf("1..%d\n", n_test);
    if (n_fail) printf("# %d of %d failed\n", n_fail, n_test);
    return n_fail != 0;
}
