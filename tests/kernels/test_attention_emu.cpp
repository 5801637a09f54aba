/* tests/kernels/test_attention_emu.cpp: the fused bf16 attention kernels of --bf16 on the GPU
 * (kernels/attention_fused.cuh), compiled for the CPU through tests/emu/emu_device.hpp and run against
 * the CPU attention core (kernels/attention.c), so that their tiling, masking of partial tiles,
 * online softmax, shared-memory layout and barriers are checked on every test run, GPU or not.
 *
 * Per case (items, Tq, Tk, head dim D, scale), fresh N(0, 1) q, k, v, dout:
 *   forward (out, lse), the row dot D = dout . out, backward (dq, dk, dv) launched as
 *   kernels/attention.cu launches them, compared with
 *   (a) the fp32 CPU core on the same inputs: what --bf16 changes (inputs rounded to bf16), nmse
 *       bound 1e-4 (measured over 30 seeds: at most 3.1e-5);
 *   (b) the CPU core on the inputs rounded to bf16 first: only the kernels' own roundings (P and dS
 *       to bf16, fp32 sums in another order) remain, bound 1.5e-5 (measured: at most 4.3e-6), so
 *       that an error in one key of a tile (the masks, an off-by-one tile edge) is seen;
 *   both bounds times scale^2 D / 4 where that exceeds 1 (a sharper softmax: 5.6e-5 and 4.8e-6 at
 *   scale^2 D = 11.5).
 * With one key (dq = dk = 0 exactly; lse one number) those three are held to absolute bounds.
 * Where a CUDA device exists, the same inputs also go through the library on it (--bf16:
 * rhd_attention_forward / _backward, which launch these kernels) and the device's results are held
 * to the emulation's (nmse 1e-7: only the tensor cores' summation order differs). The cases are
 * small, so tests/gpu/run.sh runs this binary under compute-sanitizer (racecheck, synccheck,
 * memcheck) too.
 * Cases: every instantiated head dim, partial query and key tiles, more than one tile each way, a
 * single token, the UNet's joint layout (T self tokens + 16 portrait tokens). */
#include "emu/emu_device.hpp"
#include <algorithm>
#include <string>
extern "C" {
#include "common/backend.h"
#include "common/rng.h"
#include "kernels/attention.h"
}
#include "harness.h"

#include "kernels/attention_fused.cuh"

static unsigned tiles(int n) { return (unsigned)((n + FA_ROWS - 1) / FA_ROWS); }

typedef std::vector<float> vec;

/* What attention.cu's fused path does, kernel by kernel. */
template <int D>
static void fused(vec &out, vec &lse, vec &dq, vec &dk, vec &dv, const vec &q, const vec &k, const vec &v,
                  const vec &dout, int off, int items, int Tq, int Tk, float scale) {
    typedef fa_dims<D> dm;
    float *po = out.data(), *pl = lse.data(), *pdq = dq.data(), *pdk = dk.data(), *pdv = dv.data();
    const float *pq = q.data() + off, *pk = k.data() + off, *pv = v.data() + off, *pd = dout.data() + off;
    emu_launch({tiles(Tq), (unsigned)items, 1}, FA_THREADS, dm::smem_fwd,
               [=] { fa_forward_kernel<D>(po, pl, pq, pk, pv, Tq, Tk, scale, 0); });
    int64_t rows = (int64_t)items * Tq;
    vec Dv(rows, NAN);
    float *pD = Dv.data();
    emu_launch({(unsigned)((rows + 3) / 4), 1, 1}, FA_THREADS, 0, [=] { fa_rowdot_kernel<D>(pD, pd, po, rows); });
    emu_launch({tiles(Tk), (unsigned)items, 1}, FA_THREADS, dm::smem_bkv,
               [=] { fa_backward_kv_kernel<D>(pdk, pdv, pd, pq, pk, pv, pl, pD, Tq, Tk, scale, 0); });
    emu_launch({tiles(Tq), (unsigned)items, 1}, FA_THREADS, dm::smem_bq,
               [=] { fa_backward_q_kernel<D>(pdq, pd, pq, pk, pv, pl, pD, Tq, Tk, scale, 0); });
    /* the row dot against its definition: error relative to sum_c |terms| (an fp32 sum's bound) */
    double err = 0;
    for (int64_t r = 0; r < rows; r++) {
        double s = 0, a = 0;
        for (int c = 0; c < D; c++) {
            double t = (double)rhd_bf16_to_float(rhd_float_to_bf16(pd[r * D + c])) * out[r * D + c];
            s += t, a += fabs(t);
        }
        err = fmax(err, fabs(s - Dv[r]) / (1e-30 + a));
        if (!std::isfinite(Dv[r])) err = INFINITY;
    }
    th_ok(err < 1e-6, "fused rowdot (emulated) D=%d rows=%lld: max err %.2e of sum |dout_c out_c|", D,
          (long long)rows, err);
}

static vec bf16_round(const vec &x) {
    vec y(x.size());
    for (size_t i = 0; i < x.size(); i++) y[i] = rhd_bf16_to_float(rhd_float_to_bf16(x[i]));
    return y;
}

/* misalign: q, k, v, dout start one float past a 16-byte boundary (the tile loads' scalar path). */
static rhd_ctx *gpu;

/* The library's --bf16 attention on the device, inputs at `off` floats past an aligned buffer. */
static void on_device(vec &out, vec &lse, vec &dq, vec &dk, vec &dv, const vec &q, const vec &k, const vec &v,
                      const vec &dout, int off, int items, int Tq, int Tk, int D, float scale) {
    const vec *in[] = {&q, &k, &v, &dout};
    float *din[4], *dres[5];
    for (int i = 0; i < 4; i++) {
        din[i] = (float *)rhd_buf_alloc(gpu, sizeof(float) * (in[i]->size() + 4));
        rhd_buf_upload(gpu, din[i] + off, in[i]->data(), sizeof(float) * in[i]->size());
    }
    vec *res[] = {&out, &lse, &dq, &dk, &dv};
    for (int i = 0; i < 5; i++) dres[i] = (float *)rhd_buf_alloc(gpu, sizeof(float) * res[i]->size());
    rhd_ctx_set_bf16(gpu, 1);
    rhd_attention_forward(gpu, dres[0], dres[1], din[0] + off, din[1] + off, din[2] + off, items, 1, Tq, Tk, D, scale);
    rhd_attention_backward(gpu, dres[2], dres[3], dres[4], din[3] + off, din[0] + off, din[1] + off, din[2] + off,
                           dres[0], dres[1], items, 1, Tq, Tk, D, scale);
    rhd_ctx_set_bf16(gpu, 0);
    for (int i = 0; i < 5; i++) {
        rhd_buf_download(gpu, res[i]->data(), dres[i], sizeof(float) * res[i]->size());
        rhd_buf_free(gpu, dres[i]);
    }
    for (int i = 0; i < 4; i++) rhd_buf_free(gpu, din[i]);
}

static void run_case(rhd_ctx *cpu, uint64_t seed, int items, int Tq, int Tk, int D, float scale, int misalign = 0) {
    static int ncase;
    ncase++;
    int64_t nq = (int64_t)items * Tq * D, nk = (int64_t)items * Tk * D, nl = (int64_t)items * Tq;
    vec q(nq), k(nk), v(nk), dout(nq);
    rhd_rng_fill_normal(q.data(), nq, seed, RHD_STREAM(RHD_STREAM_TEST, 4 * ncase), 0, 0.f, 1.f);
    rhd_rng_fill_normal(k.data(), nk, seed, RHD_STREAM(RHD_STREAM_TEST, 4 * ncase + 1), 0, 0.f, 1.f);
    rhd_rng_fill_normal(v.data(), nk, seed, RHD_STREAM(RHD_STREAM_TEST, 4 * ncase + 2), 0, 0.f, 1.f);
    rhd_rng_fill_normal(dout.data(), nq, seed, RHD_STREAM(RHD_STREAM_TEST, 4 * ncase + 3), 0, 0.f, 1.f);

    vec out(nq, NAN), lse(nl, NAN), dq(nq, NAN), dk(nk, NAN), dv(nk, NAN);
    /* the kernels' inputs: the same values, at a 16-byte boundary (vector data) or one float past */
    vec mq(nq + 4), mk(nk + 4), mv(nk + 4), md(nq + 4);
    int off = misalign ? 1 : 0;
    std::copy(q.begin(), q.end(), mq.begin() + off), std::copy(k.begin(), k.end(), mk.begin() + off);
    std::copy(v.begin(), v.end(), mv.begin() + off), std::copy(dout.begin(), dout.end(), md.begin() + off);
    switch (D) {
    case 16: fused<16>(out, lse, dq, dk, dv, mq, mk, mv, md, off, items, Tq, Tk, scale); break;
    case 32: fused<32>(out, lse, dq, dk, dv, mq, mk, mv, md, off, items, Tq, Tk, scale); break;
    case 64: fused<64>(out, lse, dq, dk, dv, mq, mk, mv, md, off, items, Tq, Tk, scale); break;
    case 128: fused<128>(out, lse, dq, dk, dv, mq, mk, mv, md, off, items, Tq, Tk, scale); break;
    default: th_ok(0, "head dim %d not instantiated", D); return;
    }

    char shp[128];
    snprintf(shp, sizeof shp, "items=%d Tq=%d Tk=%d D=%d scale=%.4g%s", items, Tq, Tk, D, scale,
             misalign ? " misaligned" : "");
    if (gpu) {
        vec g[5] = {vec(nq), vec(nl), vec(nq), vec(nk), vec(nk)};
        on_device(g[0], g[1], g[2], g[3], g[4], q, k, v, dout, off, items, Tq, Tk, D, scale);
        const char *names[] = {"out", "lse", "dq", "dk", "dv"};
        const vec *emu[] = {&out, &lse, &dq, &dk, &dv};
        for (int i = 0; i < 5; i++) {
            std::string name = std::string("fused ") + names[i] + " cuda ~ emulated " + shp;
            th_close(name.c_str(), g[i].data(), emu[i]->data(), (long)g[i].size(), 1e-7);
        }
    } else th_skip("fused cuda ~ emulated %s: no CUDA device", shp);
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: the fp32 inputs; pass 1: the same rounded to bf16 */
        vec rq = pass ? bf16_round(q) : q, rk = pass ? bf16_round(k) : k, rv = pass ? bf16_round(v) : v;
        vec rd = pass ? bf16_round(dout) : dout;
        vec y(nq), l(nl), gq(nq), gk(nk), gv(nk);
        rhd_attention_forward(cpu, y.data(), l.data(), rq.data(), rk.data(), rv.data(), items, 1, Tq, Tk, D, scale);
        rhd_attention_backward(cpu, gq.data(), gk.data(), gv.data(), rd.data(), rq.data(), rk.data(), rv.data(),
                               y.data(), l.data(), items, 1, Tq, Tk, D, scale);
        /* sharper softmaxes (logit variance scale^2 D above 4) magnify the bf16 roundings */
        double tol = (pass ? 1.5e-5 : 1e-4) * fmax(1.0, scale * scale * D / 4);
        const char *ref = pass ? "cpu(bf16 inputs)" : "cpu(fp32)";
        const char *names[] = {"out", "lse", "dq", "dk", "dv"};
        const vec *got[] = {&out, &lse, &dq, &dk, &dv}, *want[] = {&y, &l, &gq, &gk, &gv};
        for (int i = 0; i < 5; i++) {
            std::string name = std::string("fused ") + names[i] + " (emulated) ~ " + ref + " " + shp;
            /* one key: dq = dk = 0 exactly (softmax of one entry), so both sides are rounding noise,
             * and lse = scale q.k is one number that may nearly cancel: absolute bounds instead */
            double abs_tol = Tk > 1 ? 0 : i == 1 ? (pass ? 1e-6 : 2e-2) : (i == 2 || i == 3) ? 1e-5 : 0;
            if (abs_tol == 0) {
                th_close(name.c_str(), got[i]->data(), want[i]->data(), (long)got[i]->size(), tol);
                continue;
            }
            double m = 0;
            for (size_t j = 0; j < got[i]->size(); j++) {
                double d = fabs((double)(*got[i])[j] - (*want[i])[j]);
                m = std::isfinite(d) ? fmax(m, d) : INFINITY;
            }
            th_ok(m <= abs_tol, "%s: max_abs=%.3e tol=%.1e (absolute)", name.c_str(), m, abs_tol);
        }
    }
}

int main() {
    rhd_err e = {};
    rhd_ctx *cpu = rhd_ctx_open("cpu", &e);
    if (!cpu) return fprintf(stderr, "%s\n", e.msg), 1;
    if (rhd_cuda_available() && !(gpu = rhd_ctx_open("cuda", &e))) return fprintf(stderr, "%s\n", e.msg), 1;
    uint64_t seed = emu_test_seed();
    run_case(cpu, seed, 2, 70, 90, 16, 0.25f);               /* partial tiles both ways */
    run_case(cpu, seed, 1, 64, 64, 32, 1.0f / sqrtf(32.f));  /* exact tiles */
    run_case(cpu, seed, 3, 130, 146, 64, 0.125f);            /* the UNet's joint layout: 130 + 16 keys */
    run_case(cpu, seed, 1, 1, 1, 64, 0.125f);                /* one token */
    run_case(cpu, seed, 1, 17, 200, 128, 1.0f / sqrtf(128.f)); /* widest head, four key tiles */
    run_case(cpu, seed, 2, 129, 5, 32, 0.6f);                /* few keys, sharp softmax */
    run_case(cpu, seed, 2, 70, 81, 64, 0.125f, 1);           /* inputs not 16-byte aligned */
    rhd_ctx_close(cpu);
    if (gpu) rhd_ctx_close(gpu);
    return th_done();
}
