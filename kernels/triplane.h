/* kernels/triplane.h: bilinear triplane sampling, forward and backward (fitting.md §4).
 *
 * Mirrors the sampler of Renderer/TriplaneFit/network.py (grid_sample on each plane with
 * align_corners=True, then the mean over the three planes), with the edge and out-of-range rules
 * written down in the spec instead of torch's zero padding.
 *
 * Shapes (PyTorch order):
 *   planes [3, C, R, R]   plane p, channel c, row i (height), column j (width)
 *   points [N, 3]         normalised coordinates x_n in [-1,1]^3 (after the aabb remap)
 *   feats  [N, C]         feat[c] = agg(f_0[c], f_1[c], f_2[c]), by default the mean
 *                         (f_0 + f_1 + f_2) / 3 (rhd_plane_agg below)
 *
 * Conventions:
 *   - Plane projections (a, b): plane 0 = (x, y), plane 1 = (x, z), plane 2 = (y, z).
 *   - u = (a + 1)/2 indexes the WIDTH (column), v = (b + 1)/2 the HEIGHT (row).
 *     align_corners: fx = u*(R-1), fy = v*(R-1); j0 = floor(fx), i0 = floor(fy), wx = fx - j0,
 *     wy = fy - i0. The second tap index (j0+1, i0+1) is clamped to R-1, so a point exactly on the
 *     u = 1 or v = 1 edge reads only in-range texels (the clamped tap has weight 0).
 *   - A plane whose u or v lies outside [0, 1] (or is NaN) samples as all-zero features and gets
 *     no gradient; the other planes still count and the sum is still divided by 3 (under the
 *     products, the plane's sample is 0 in the formula: the product is 0, the offset product
 *     the other two planes' terms).
 *   - The original's second normalisation u = (a + bound)/(2*bound) (§12.3) is the identity
 *     above for bound = 1; to reproduce it for another bound, pass x_n / bound.
 *   - clamp != 0: the forward reads clamp(T, -1, 1) and the backward drops the gradient of every
 *     texel with |T| > 1 (|T| == 1 passes), i.e. torch.clamp's gradient (§4).
 *
 * Aggregation (agg, an rhd_plane_agg): how the three samples s_p of a channel become the feature:
 *   RHD_PLANE_MEAN            (s_0 + s_1 + s_2) / 3, the original's (fitting.md §4);
 *   RHD_PLANE_PRODUCT         s_0 * s_1 * s_2 (K-planes' Hadamard product);
 *   RHD_PLANE_OFFSET_PRODUCT  (1 + s_0)(1 + s_1)(1 + s_2) - 1: the sum plus the pairwise and triple
 *                             products, so it starts as the sum for small texels.
 *   The products are a deviation from the spec (a decoder option, formats/decoder.md): a sum of
 *   three 2-D functions cannot localise detail in 3-D, a product can.
 *
 * Contract:
 *   forward:  feats is written (=). With a product aggregation and splanes != NULL, the per-plane
 *             samples are written to splanes [3, N, C] (= s_p[n, c]) for the backward.
 *   backward: dplanes is accumulated (+=): dplanes[p,c,texel] += d agg/d s_p * w_texel * dfeats[n,c]
 *             for every in-range plane of every point (masked by the clamp rule), d agg/d s_p being
 *             1/3 for the mean and the other two planes' (offset) samples' product otherwise, read
 *             from splanes (the forward's, same points and planes; required for the products,
 *             ignored for the mean). planes is read only when clamp != 0 (may be NULL otherwise).
 *
 * Implementation (the results do not depend on it):
 *   CPU forward: with many points (N >= R*R/16) the planes are first copied channel-last,
 *        [3,R,R,C] (clamped on the way), into the context workspace, so that a tap is C
 *        contiguous floats instead of C cache lines 4*R*R bytes apart; per channel the arithmetic
 *        is the same as reading in place, so both strategies give bit-identical features.
 *   CPU backward: the (point, plane) pairs are bucketed by (plane, row i0) with a stable counting
 *        sort; each (plane, row) of dplanes is owned by one thread, which sums its taps from zero
 *        in point order (the bucket of row i-1 for the lower taps, then the bucket of row i) in a
 *        channel-last row buffer and then adds the sums to dplanes. The result is bit-identical
 *        for any thread count.
 *   CUDA: the planes are copied channel-last into the workspace (forward), or the gradient is
 *        accumulated channel-last there with atomicAdd and then added to dplanes (backward); one
 *        thread per (point, channel), so a warp reads or writes one tap's 32 channels coalesced.
 *        The order of the atomic adds is not fixed.
 *   Both backends use the context workspace (rhd_ctx_workspace, 3*C*R*R floats): no argument may
 *   live in it.
 */
#ifndef RHD_KERNELS_TRIPLANE_H
#define RHD_KERNELS_TRIPLANE_H
#include <math.h>
#include <stdint.h>
#include "common/backend.h"
#include "common/hd.h"

/* The four taps of one plane: rows i0, i1 and columns j0, j1, all in [0, R-1]; weights of
 * (i0,j0), (i0,j1), (i1,j0), (i1,j1). */
typedef struct rhd_bilinear_taps {
    int i0, i1, j0, j1;
    float w00, w01, w10, w11;
} rhd_bilinear_taps;

/* Plane projection of a normalised point x[3]: (a, b) for plane p (0: xy, 1: xz, 2: yz). */
RHD_HD static inline void rhd_triplane_project(const float *x, int p, float *a, float *b) {
    *a = p == 2 ? x[1] : x[0];
    *b = p == 0 ? x[1] : x[2];
}

/* Taps of the plane coordinate (a, b) in [-1,1]^2 on an R x R plane. Returns 0 (and leaves t
 * untouched) when u or v is outside [0, 1] or NaN: the plane contributes nothing. */
RHD_HD static inline int rhd_bilinear_taps_at(float a, float b, int R, rhd_bilinear_taps *t) {
    float u = (a + 1.f) / 2.f, v = (b + 1.f) / 2.f;
    if (!(u >= 0.f && u <= 1.f && v >= 0.f && v <= 1.f)) return 0;
    float fx = u * (float)(R - 1), fy = v * (float)(R - 1);
    float flx = floorf(fx), fly = floorf(fy);
    int j0 = (int)flx, i0 = (int)fly;
    if (j0 > R - 1) j0 = R - 1; /* unreachable for u <= 1; kept as a guard */
    if (i0 > R - 1) i0 = R - 1;
    float wx = fx - flx, wy = fy - fly;
    t->j0 = j0, t->i0 = i0;
    t->j1 = j0 + 1 < R ? j0 + 1 : R - 1;
    t->i1 = i0 + 1 < R ? i0 + 1 : R - 1;
    t->w00 = (1.f - wx) * (1.f - wy);
    t->w01 = wx * (1.f - wy);
    t->w10 = (1.f - wx) * wy;
    t->w11 = wx * wy;
    return 1;
}

/* The value the forward reads from a texel: clamp(T, -1, 1) when clamp is set (NaN stays NaN,
 * as torch.clamp). */
RHD_HD static inline float rhd_triplane_read(float x, int clamp) {
    if (!clamp) return x;
    return x < -1.f ? -1.f : (x > 1.f ? 1.f : x);
}

/* Whether a texel passes gradient: always without clamp; |T| <= 1 with it (NaN blocks). */
RHD_HD static inline int rhd_triplane_grad_passes(float x, int clamp) { return !clamp || fabsf(x) <= 1.f; }

/* Bilinear sample of one channel plane (R x R, row-major) at taps t. */
RHD_HD static inline float rhd_bilinear_sample(const float *plane, int R, const rhd_bilinear_taps *t, int clamp) {
    const float *r0 = plane + (int64_t)t->i0 * R, *r1 = plane + (int64_t)t->i1 * R;
    return t->w00 * rhd_triplane_read(r0[t->j0], clamp) + t->w01 * rhd_triplane_read(r0[t->j1], clamp) +
           t->w10 * rhd_triplane_read(r1[t->j0], clamp) + t->w11 * rhd_triplane_read(r1[t->j1], clamp);
}

/* How the three planes' samples combine (see the header comment). */
typedef enum rhd_plane_agg { RHD_PLANE_MEAN = 0, RHD_PLANE_PRODUCT = 1, RHD_PLANE_OFFSET_PRODUCT = 2 } rhd_plane_agg;
#define RHD_PLANE_AGG_COUNT 3

/* The factor of the 3-plane mean; the backward scales dfeat by it before the tap weights. */
#define RHD_TRIPLANE_MEAN (1.f / 3.f)

/* The feature from the three samples s[3] (0 for an out-of-range plane). The mean's sum is formed
 * in plane order from the first sample, as the mean-only loops do, so the bits are the same. */
RHD_HD static inline float rhd_plane_combine(int agg, const float *s) {
    if (agg == RHD_PLANE_PRODUCT) return s[0] * s[1] * s[2];
    if (agg == RHD_PLANE_OFFSET_PRODUCT) return (1.f + s[0]) * (1.f + s[1]) * (1.f + s[2]) - 1.f;
    return (s[0] + s[1] + s[2]) / 3.f;
}

/* d feature / d s_p from the samples s_q, s_r of the other two planes (q < r). */
RHD_HD static inline float rhd_plane_factor2(int agg, float sq, float sr) {
    if (agg == RHD_PLANE_PRODUCT) return sq * sr;
    if (agg == RHD_PLANE_OFFSET_PRODUCT) return (1.f + sq) * (1.f + sr);
    return RHD_TRIPLANE_MEAN;
}

/* d feature / d s_p from the three samples s[3]. */
RHD_HD static inline float rhd_plane_factor(int agg, int p, const float *s) {
    return rhd_plane_factor2(agg, s[p == 0 ? 1 : 0], s[p == 2 ? 1 : 2]);
}

/* Bilinear sample of plane p at taps t from planes packed channels-last [3, R, R, C] (clamp
 * applied), channel c. */
RHD_HD static inline float rhd_packed_sample(const float *packed, int p, int C, int R, const rhd_bilinear_taps *t,
                                             int c) {
    const float *base = packed + (int64_t)p * R * R * C + c;
    return t->w00 * base[((int64_t)t->i0 * R + t->j0) * C] + t->w01 * base[((int64_t)t->i0 * R + t->j1) * C] +
           t->w10 * base[((int64_t)t->i1 * R + t->j0) * C] + t->w11 * base[((int64_t)t->i1 * R + t->j1) * C];
}

/* Samples s[3] of channel c at a normalised point x[3] from the packed planes (0 for a plane out
 * of range); returns the feature under agg. */
RHD_HD static inline float rhd_triplane_sample_packed(const float *x, const float *packed, int C, int R, int c,
                                                      int agg, float *s) {
    for (int p = 0; p < 3; p++) {
        float a, b;
        rhd_bilinear_taps t;
        rhd_triplane_project(x, p, &a, &b);
        s[p] = rhd_bilinear_taps_at(a, b, R, &t) ? rhd_packed_sample(packed, p, C, R, &t, c) : 0.f;
    }
    return rhd_plane_combine(agg, s);
}

/* "mean", "product", "offset-product" <-> rhd_plane_agg; parse returns -1 for an unknown name. */
const char *rhd_plane_agg_name(int agg);
int rhd_plane_agg_parse(const char *name);

/* CPU forward strategies (see above); exposed for tests and benchmarks. */
enum { RHD_TRIPLANE_AUTO = 0, RHD_TRIPLANE_DIRECT = 1, RHD_TRIPLANE_PACKED = 2 };

#ifdef __cplusplus
extern "C" {
#endif
void rhd_triplane_forward_cpu(rhd_ctx *ctx, float *feats, const float *points, const float *planes, int64_t N, int C,
                              int R, int clamp, int agg, float *splanes, int strategy);
void rhd_triplane_forward(rhd_ctx *ctx, float *feats, const float *points, const float *planes, int64_t N, int C,
                          int R, int clamp, int agg, float *splanes);
void rhd_triplane_backward(rhd_ctx *ctx, float *dplanes, const float *dfeats, const float *points,
                           const float *planes, int64_t N, int C, int R, int clamp, int agg, const float *splanes);
/* For many forwards on one triplane (inference): pack once, then sample the packed copy.
 *   rhd_triplane_pack            packed [3, R, R, C] = clamp?(planes [3, C, R, R])
 *   rhd_triplane_forward_packed  feats [N, C] from the packed copy, bit-identical to
 *                                rhd_triplane_forward on the planes (on the CPU) */
void rhd_triplane_pack(rhd_ctx *ctx, float *packed, const float *planes, int C, int R, int clamp);
void rhd_triplane_forward_packed(rhd_ctx *ctx, float *feats, const float *points, const float *packed, int64_t N, int C,
                                 int R, int agg);
#ifdef RHD_CUDA
/* packed [3, R, R, C] = clamp?(planes [3, C, R, R]) */
void rhd_triplane_pack_cuda(rhd_ctx *ctx, float *packed, const float *planes, int C, int R, int clamp);
void rhd_triplane_forward_packed_cuda(rhd_ctx *ctx, float *feats, const float *points, const float *packed, int64_t N,
                                      int C, int R, int agg, float *splanes);
void rhd_triplane_forward_cuda(rhd_ctx *ctx, float *feats, const float *points, const float *planes, int64_t N,
                               int C, int R, int clamp, int agg, float *splanes);
void rhd_triplane_backward_cuda(rhd_ctx *ctx, float *dplanes, const float *dfeats, const float *points,
                                const float *planes, int64_t N, int C, int R, int clamp, int agg,
                                const float *splanes);
#endif
#ifdef __cplusplus
}
#endif
#endif
