/* common/models/decoder.cu: the fused per-sample inference path of the triplane decoder on CUDA
 * (see decoder.h, rhd_decoder_infer).
 *
 * One block of FUSED_THREADS threads decodes a tile of FUSED_T samples from start to end without
 * leaving the SM: triplane sampling (channels-last packed planes, one coalesced read per tap),
 * frequency encodings, the five linear layers with their activations, trunc_exp and sigmoid. The
 * activations of the tile live in shared memory feature-major ([feature][sample]), so in a dense
 * layer every thread owns one output feature and keeps the FUSED_T sums in registers while all
 * threads read the same input value (a shared-memory broadcast); the weights are read transposed
 * ([in][out], prepared by the launcher) so a warp's weight loads are coalesced and hit L1/L2.
 * Narrow layers (density-only sigma, the 3 colours) give each thread one (output, sample) pair.
 *
 * The per-element math is the same as the per-layer path's (kernels/triplane.h, freq_encode.h,
 * act.h); only the summation order of the dot products differs, so results agree with the CPU to
 * float rounding. The device code is in decoder_fused.cuh: tests/models/test_fused_emu.cpp runs
 * it on the CPU (threads and a barrier for a block) against the per-layer decoder on every test
 * run; tests/models/test_decoder_cuda.c checks the real kernel where a GPU exists. */
#include "common/models/decoder.h"
#include "common/cuda_check.h"
#include "kernels/act.h"
#include "kernels/elementwise.h"
#include "kernels/freq_encode.h"
#include "kernels/triplane.h"

#include "common/models/decoder_fused.cuh"

// launchers

/* Whether one tile fits in shared memory on the current device; sets the kernel's opt-in once per
 * device and size. */
static int fused_fits(size_t smem) {
    static int done_dev = -1;
    static size_t done_smem = 0;
    int dev = 0, optin = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    if (dev == done_dev && smem <= done_smem) return 1;
    CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    if (smem > (size_t)optin) return 0;
    CUDA_CHECK(cudaFuncSetAttribute(fused_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    done_dev = dev, done_smem = smem;
    return 1;
}

extern "C" int rhd_decoder_infer_prepare_cuda(rhd_ctx *ctx, const rhd_decoder *d, rhd_decoder_acts *a,
                                              const float *planes, int R, int clamp) {
    a->prep_valid = 0;
    if (!fused_fits(fused_smem(d))) return 0; /* too wide for one tile: the per-layer path */
    if (a->ctx && a->ctx != ctx) rhd_decoder_acts_free(a);
    a->ctx = ctx;
    const int h = d->cfg.hidden, g1 = 1 + d->cfg.geo;
    /* transposed weights [in][out], one buffer */
    int64_t sizes[5] = {(int64_t)d->Ed * h, (int64_t)h * g1, (int64_t)d->Cin * h, (int64_t)h * h, (int64_t)h * 3};
    int64_t total = sizes[0] + sizes[1] + sizes[2] + sizes[3] + sizes[4];
    if (a->wt_cap < total) {
        rhd_buf_free(ctx, a->wt);
        a->wt = (float *)rhd_buf_alloc(ctx, sizeof(float) * (size_t)total);
        a->wt_cap = total;
    }
    float *w0t = a->wt, *w2t = w0t + sizes[0], *c0t = w2t + sizes[1], *c1t = c0t + sizes[2], *c2t = c1t + sizes[3];
    rhd_transpose_forward(ctx, w0t, rhd_param(&d->P, RHD_DEC_S0W), 1, h, d->Ed);
    rhd_transpose_forward(ctx, w2t, rhd_param(&d->P, RHD_DEC_S2W), 1, g1, h);
    rhd_transpose_forward(ctx, c0t, rhd_param(&d->P, RHD_DEC_C0W), 1, h, d->Cin);
    rhd_transpose_forward(ctx, c1t, rhd_param(&d->P, RHD_DEC_C1W), 1, h, h);
    rhd_transpose_forward(ctx, c2t, rhd_param(&d->P, RHD_DEC_C2W), 1, 3, h);
    int64_t np = rhd_triplane_numel_of(d->cfg.C, R);
    if (a->packed_cap < np) {
        rhd_buf_free(ctx, a->packed);
        a->packed = (float *)rhd_buf_alloc(ctx, sizeof(float) * (size_t)np);
        a->packed_cap = np;
    }
    rhd_triplane_pack(ctx, a->packed, planes, d->cfg.C, R, clamp);
    a->prep_planes = planes, a->prep_R = R, a->prep_clamp = clamp, a->prep_valid = 1;
    return 1;
}

extern "C" void rhd_decoder_infer_cuda(rhd_ctx *ctx, const rhd_decoder *d, rhd_decoder_acts *a, float *sigma,
                                       float *rgb, const float *points, const float *dirs, int64_t M) {
    RHD_ASSERT(a->prep_valid && a->ctx == ctx);
    const int h = d->cfg.hidden, g1 = 1 + d->cfg.geo;
    int64_t sizes[4] = {(int64_t)d->Ed * h, (int64_t)h * g1, (int64_t)d->Cin * h, (int64_t)h * h};
    fused_args fa;
    fa.packed = a->packed;
    fa.C = d->cfg.C, fa.R = a->prep_R, fa.Cc = d->Cc, fa.Cd = d->Cd, fa.Ec = d->Ec, fa.Ed = d->Ed, fa.Edir = d->Edir;
    fa.geo = d->cfg.geo, fa.hid = h, fa.g1 = g1, fa.Cin = d->Cin, fa.degree = d->cfg.degree;
    fa.agg = d->cfg.agg;
    fa.w0t = a->wt, fa.w2t = fa.w0t + sizes[0], fa.c0t = fa.w2t + sizes[1], fa.c1t = fa.c0t + sizes[2];
    fa.c2t = fa.c1t + sizes[3];
    fa.b0 = rhd_param(&d->P, RHD_DEC_S0B), fa.b2 = rhd_param(&d->P, RHD_DEC_S2B);
    fa.points = points, fa.dirs = dirs, fa.sigma = sigma, fa.rgb = rgb, fa.M = M;
    int64_t tiles = (M + FUSED_T - 1) / FUSED_T;
    RHD_ASSERT(tiles <= 0x7fffffffLL);
    fused_kernel<<<(unsigned)tiles, FUSED_THREADS, fused_smem(d), RHD_CUDA_STREAM(ctx)>>>(fa);
    CUDA_CHECK(cudaGetLastError());
}
