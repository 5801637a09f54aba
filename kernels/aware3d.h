/* kernels/aware3d.h: the glue of the 3D-aware convolution (Conv3DAware of pretrained_diffusion/
 * unet.py; spec diffusion.md §2.4): axis profiles of the three planes of a rolled-out triplane and
 * the three 3C-channel plane inputs built from them. The three per-plane convolutions themselves
 * are kernels/conv2d.h (common/models/nn.h composes the block).
 *
 * x (N,C,R,3R) is a rolled triplane: plane p is columns [pR, pR+R), P_p[c,i,j] = x[n,c,i,pR+j].
 * Profiles prof (N,3,2,C,R), in fp32 from double sums:
 *   prof[n,p,0,c,j] = Rw_p[c,j] = mean over rows i of P_p[c,i,j]        (column profile)
 *   prof[n,p,1,c,i] = Rh_p[c,i] = mean over columns j of P_p[c,i,j]     (row profile)
 * Plane inputs Y (3,N,3C,R,R): Y[q] holds three channel blocks b = 0,1,2 of C channels each;
 * block b = q is P_q itself, the other two are profiles of plane b broadcast over one axis
 * ("by column": the value depends on j only; "by row": on i only):
 *   q = 0: [ P0 , Rw_P1 by column , Rw_P2 by row ]
 *   q = 1: [ Rw_P0 by column , P1 , Rh_P2 by row ]
 *   q = 2: [ Rh_P0 by column , Rh_P1 by row , P2 ]
 * Each of the six profiles feeds exactly one plane input.
 * Contract:
 *   rhd_aware3d_profiles        prof (=) from x
 *   rhd_aware3d_assemble        Y (=) from x and prof
 *   rhd_aware3d_assemble_backward  dprof (=) and then dx (=) from dY: the plane's own block plus
 *                               the gradients of its two profiles spread back over the mean
 *                               (dx[c,i,pR+j] = dY[p][n,pC+c,i,j] + (dRw_p[c,j] + dRh_p[c,i]) / R).
 *   dprof is caller scratch (N,3,2,C,R). Sums over R run in double in index order: the result does
 *   not depend on the thread count; CPU and CUDA gather in the same order. */
#ifndef RHD_KERNELS_AWARE3D_H
#define RHD_KERNELS_AWARE3D_H
#include <stdint.h>
#include "common/backend.h"
#include "common/hd.h"

#ifdef __cplusplus
extern "C" {
#endif
/* prof (N,3,2,C,R) <- x (N,C,R,3R) */
void rhd_aware3d_profiles(rhd_ctx *ctx, float *prof, const float *x, int N, int C, int R);
/* Y (3,N,3C,R,R) <- x (N,C,R,3R), prof (N,3,2,C,R) */
void rhd_aware3d_assemble(rhd_ctx *ctx, float *Y, const float *x, const float *prof, int N, int C, int R);
/* dx (N,C,R,3R) =, dprof (N,3,2,C,R) = (scratch)  <- dY (3,N,3C,R,R) */
void rhd_aware3d_assemble_backward(rhd_ctx *ctx, float *dx, float *dprof, const float *dY, int N, int C, int R);
#ifdef RHD_CUDA
void rhd_aware3d_profiles_cuda(rhd_ctx *ctx, float *prof, const float *x, int N, int C, int R);
void rhd_aware3d_assemble_cuda(rhd_ctx *ctx, float *Y, const float *x, const float *prof, int N, int C, int R);
void rhd_aware3d_assemble_backward_cuda(rhd_ctx *ctx, float *dx, float *dprof, const float *dY, int N, int C, int R);
#endif
#ifdef __cplusplus
}
#endif

/* ---- the wiring, shared by the CPU loops and the CUDA kernels ------------------------------- */

/* Plane input q, block b != q: the profile kind (0 Rw, 1 Rh) of plane b it shows, and whether it is
 * broadcast by column (1: value at (i,j) is prof[j]) or by row (0: prof[i]). */
RHD_HD static inline int rhd_aware3d_kind(int q, int b) { return q == 0 || (q == 1 && b == 0) ? 0 : 1; }
RHD_HD static inline int rhd_aware3d_bycol(int q, int b) { return b == (q == 0 ? 1 : 0); }
/* The plane input that consumes profile `kind` of plane b (the inverse of the table above). */
RHD_HD static inline int rhd_aware3d_consumer(int b, int kind) {
    if (kind == 0) return b == 0 ? 1 : 0; /* Rw_P0 -> q1; Rw_P1, Rw_P2 -> q0 */
    return b == 2 ? 1 : 2;                /* Rh_P2 -> q1; Rh_P0, Rh_P1 -> q2 */
}

/* prof[n,p,kind,c,r]: the mean of R values of plane p in double. */
RHD_HD static inline float rhd_aware3d_profile_elem(const float *x, int C, int R, int n, int p, int kind, int c,
                                                    int r) {
    const float *P = x + ((int64_t)n * C + c) * R * 3 * R + (int64_t)p * R; /* row stride 3R */
    double s = 0;
    if (kind == 0)
        for (int i = 0; i < R; i++) s += P[(int64_t)i * 3 * R + r];
    else
        for (int j = 0; j < R; j++) s += P[(int64_t)r * 3 * R + j];
    return (float)(s / R);
}

/* Y[q][n, b*C+c, i, j]. */
RHD_HD static inline float rhd_aware3d_input_elem(const float *x, const float *prof, int N, int C, int R, int q,
                                                  int n, int b, int c, int i, int j) {
    if (b == q) return x[(((int64_t)n * C + c) * R + i) * 3 * R + (int64_t)q * R + j];
    int kind = rhd_aware3d_kind(q, b);
    int r = rhd_aware3d_bycol(q, b) ? j : i;
    return prof[((((int64_t)n * 3 + b) * 2 + kind) * C + c) * R + r];
}

/* dprof[n,b,kind,c,r]: the sum over the broadcast axis of the consuming block of dY, in double. */
RHD_HD static inline float rhd_aware3d_dprofile_elem(const float *dY, int N, int C, int R, int n, int b, int kind,
                                                     int c, int r) {
    int q = rhd_aware3d_consumer(b, kind);
    const float *G = dY + (((int64_t)q * N + n) * 3 * C + (int64_t)b * C + c) * R * R;
    double s = 0;
    if (rhd_aware3d_bycol(q, b)) /* value at (i, r) for every row i */
        for (int i = 0; i < R; i++) s += G[(int64_t)i * R + r];
    else
        for (int j = 0; j < R; j++) s += G[(int64_t)r * R + j];
    return (float)s;
}

/* dx[n,c,i,pR+j]. */
RHD_HD static inline float rhd_aware3d_dx_elem(const float *dY, const float *dprof, int N, int C, int R, int n,
                                               int c, int i, int col) {
    int p = col / R, j = col % R;
    float own = dY[((((int64_t)p * N + n) * 3 * C + (int64_t)p * C + c) * R + i) * R + j];
    const float *dp = dprof + (((int64_t)n * 3 + p) * 2 * C + c) * R; /* kind 0 */
    float spread = (dp[j] + dp[(int64_t)C * R + i]) / (float)R;
    return own + spread;
}
#endif
