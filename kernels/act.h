/* kernels/act.h: pointwise activations and their derivatives, shared by the CPU reference and the
 * CUDA kernels (RHD_HD helpers), plus elementwise launchers over arrays.
 *
 * Mirrors torch: F.silu, F.relu, F.softplus(beta=1, threshold=20), torch.sigmoid, and the
 * trunc_exp autograd function of Renderer/nerf (forward exp(x), backward g * exp(clamp(x,-15,15))).
 * Used by the VAE encoder and the UNet (SiLU) and the triplane decoder MLP (softplus, ReLU,
 * sigmoid, trunc_exp); other ops fuse the helpers below instead of calling the launchers.
 *
 * Conventions:
 *   forward   y[i] = f(x[i])                      (=, y may alias x)
 *   backward  dx[i] = dy[i] * f'(x[i])            (=, dx may alias dy or x; x is the forward INPUT)
 *   f'(x) is the derivative torch's autograd uses, including its choices at the kinks:
 *   relu'(0) = 0; softplus'(x) = 1 above the threshold 20; trunc_exp' = exp(clamp(x, -15, 15)). */
#ifndef RHD_KERNELS_ACT_H
#define RHD_KERNELS_ACT_H
#include <math.h>
#include <stdint.h>
#include "common/hd.h"
#include "common/backend.h"

typedef enum {
    RHD_ACT_IDENTITY = 0,
    RHD_ACT_RELU,
    RHD_ACT_SILU,
    RHD_ACT_SOFTPLUS,  /* beta 1, threshold 20: x > 20 passes through */
    RHD_ACT_SIGMOID,
    RHD_ACT_TRUNC_EXP,
    RHD_ACT_COUNT
} rhd_act;

#define RHD_SOFTPLUS_THRESHOLD 20.0f
#define RHD_TRUNC_EXP_CLAMP 15.0f

/* exp(x) for the activations, written so that CPU loops over it vectorise (no calls, no
 * branches): x = n ln2 + r with |r| <= ln2/2 (Cody-Waite), e^r from a degree-7 polynomial
 * (the coefficients of Cephes' expf), 2^n from exponent bits. Within 1 ulp of the correctly
 * rounded exp on [-86.9, 88.72] (checked on every 64th float there); +inf above; 0 below (where
 * exp(x) < 2e-38); NaN stays NaN. On the device it is expf. */
RHD_HD static inline float rhd_exp_fast(float x) {
#ifdef __CUDA_ARCH__
    return expf(x);
#else
    const float hi = 88.72283f, lo = -86.9f, shifter = 12582912.0f; /* 1.5 * 2^23 */
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    float t = xc * 1.44269504f + shifter; /* n = round(x / ln2) sits in the low mantissa bits */
    float n = t - shifter;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { float f; uint32_t u; } bits = {t}, scale; /* 2^(n-1): n-1 in [-126, 127] */
    scale.u = (bits.u - 0x4B400000u + 126u) << 23;
    float y = p * scale.f * 2.0f;
    y = x > hi ? INFINITY : y;
    return x < lo ? 0.0f : y;
#endif
}

RHD_HD static inline float rhd_sigmoid(float x) { return 1.0f / (1.0f + rhd_exp_fast(-x)); }
RHD_HD static inline float rhd_sigmoid_grad(float x) {
    float s = rhd_sigmoid(x);
    return s * (1.0f - s);
}

RHD_HD static inline float rhd_relu(float x) { return x > 0.0f ? x : 0.0f; }
RHD_HD static inline float rhd_relu_grad(float x) { return x > 0.0f ? 1.0f : 0.0f; }

/* silu(x) = x * sigmoid(x); silu'(x) = s * (1 + x * (1 - s)) */
RHD_HD static inline float rhd_silu(float x) { return x / (1.0f + rhd_exp_fast(-x)); }
RHD_HD static inline float rhd_silu_grad(float x) {
    float s = rhd_sigmoid(x);
    return s * (1.0f + x * (1.0f - s));
}

/* log(1 + z) for z >= 0, written like rhd_exp_fast so that CPU loops over it vectorise: u = 1 + z
 * = m 2^e with m in [sqrt(1/2), sqrt(2)), log m from a degree-9 polynomial in m - 1 (the
 * coefficients of Cephes' logf), e ln2 in two parts, and the rounding of 1 + z put back as
 * (z - (u - 1)) / u, which keeps tiny z exact. Within 2 ulp of log1p on [0, 5e8] (tests/kernels/
 * test_act.c checks it against the C library); NaN stays NaN. On the device it is log1pf. */
RHD_HD static inline float rhd_log1p_fast(float z) {
#ifdef __CUDA_ARCH__
    return log1pf(z);
#else
    float u = 1.0f + z;
    union { float f; uint32_t u; } b = {u};
    int32_t e = (int32_t)(b.u >> 23) - 126;        /* u = m 2^e, m in [0.5, 1) */
    b.u = (b.u & 0x007FFFFFu) | 0x3F000000u;
    float m = b.f;
    int below = m < 0.70710678f;                   /* then use 2m in [1, sqrt 2) and e - 1 */
    float ef = (float)(e - below);
    float x = below ? m + m - 1.0f : m - 1.0f;
    float x2 = x * x;
    float p = 7.0376836292e-2f;
    p = p * x - 1.1514610310e-1f;
    p = p * x + 1.1676998740e-1f;
    p = p * x - 1.2420140846e-1f;
    p = p * x + 1.4249322787e-1f;
    p = p * x - 1.6668057665e-1f;
    p = p * x + 2.0000714765e-1f;
    p = p * x - 2.4999993993e-1f;
    p = p * x + 3.3333331174e-1f;
    float y = p * x * x2 + ef * -2.12194440e-4f - 0.5f * x2;
    float r = x + y + ef * 0.693359375f + (z - (u - 1.0f)) / u;
    return z != z ? z : r;
#endif
}

/* softplus(x) = log(1 + e^x), or x itself above the threshold (torch's overflow guard). */
RHD_HD static inline float rhd_softplus(float x) {
    return x > RHD_SOFTPLUS_THRESHOLD ? x : rhd_log1p_fast(rhd_exp_fast(x));
}
RHD_HD static inline float rhd_softplus_grad(float x) {
    float z = rhd_exp_fast(x);
    return x > RHD_SOFTPLUS_THRESHOLD ? 1.0f : z / (z + 1.0f);
}

/* trunc_exp: exp in the forward pass; the backward clamps the argument so that huge densities
 * early in training do not produce exploding gradients. */
RHD_HD static inline float rhd_trunc_exp(float x) { return expf(x); }
RHD_HD static inline float rhd_trunc_exp_grad(float x) {
    float c = x < -RHD_TRUNC_EXP_CLAMP ? -RHD_TRUNC_EXP_CLAMP : x > RHD_TRUNC_EXP_CLAMP ? RHD_TRUNC_EXP_CLAMP : x;
    return expf(c);
}

/* Dispatch on the kind (for fused kernels that take the activation as a parameter). */
RHD_HD static inline float rhd_act_apply(rhd_act a, float x) {
    switch (a) {
    case RHD_ACT_RELU: return rhd_relu(x);
    case RHD_ACT_SILU: return rhd_silu(x);
    case RHD_ACT_SOFTPLUS: return rhd_softplus(x);
    case RHD_ACT_SIGMOID: return rhd_sigmoid(x);
    case RHD_ACT_TRUNC_EXP: return rhd_trunc_exp(x);
    default: return x;
    }
}
/* f'(x) of the kind (multiply the upstream gradient by it). */
RHD_HD static inline float rhd_act_grad(rhd_act a, float x) {
    switch (a) {
    case RHD_ACT_RELU: return rhd_relu_grad(x);
    case RHD_ACT_SILU: return rhd_silu_grad(x);
    case RHD_ACT_SOFTPLUS: return rhd_softplus_grad(x);
    case RHD_ACT_SIGMOID: return rhd_sigmoid_grad(x);
    case RHD_ACT_TRUNC_EXP: return rhd_trunc_exp_grad(x);
    default: return 1.0f;
    }
}

#ifdef __cplusplus
extern "C" {
#endif
/* "identity", "relu", "silu", "softplus", "sigmoid", "trunc_exp" */
const char *rhd_act_name(rhd_act a);
/* Parse a name as above; on failure fills e ("<what>: 'x' is not an activation, expected ...") */
int rhd_act_parse(const char *name, rhd_act *out, rhd_err *e);

/* y (n) = f(x (n)) */
void rhd_act_forward(rhd_ctx *ctx, float *y, const float *x, int64_t n, rhd_act a);
/* dx (n) = dy (n) * f'(x (n)) */
void rhd_act_backward(rhd_ctx *ctx, float *dx, const float *dy, const float *x, int64_t n, rhd_act a);

#ifdef RHD_CUDA
void rhd_act_forward_cuda(rhd_ctx *ctx, float *y, const float *x, int64_t n, rhd_act a);
void rhd_act_backward_cuda(rhd_ctx *ctx, float *dx, const float *dy, const float *x, int64_t n, rhd_act a);
#endif
#ifdef __cplusplus
}
#endif
#endif
