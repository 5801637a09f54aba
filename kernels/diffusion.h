/* kernels/diffusion.h: the per-element math of the Gaussian diffusion on large tensors: q_sample,
 * the DDIM and DDPM update steps, the classifier-free guidance combination, the per-sample hybrid
 * loss (MSE + VB with its gradient) and Philox normal noise, on the CPU and on CUDA.
 *
 * Mirrors RodinHD's pretrained_diffusion/gaussian_diffusion.py (q_sample, q_posterior_mean_variance,
 * p_mean_variance, p_sample, ddim_sample, _vb_terms_bpd, training_losses), losses.py (normal_kl,
 * approx_standard_normal_cdf, discretized_gaussian_log_likelihood) and ddim.py
 * (DDIMSampler.p_sample_ddim). Spec: shared/spec/diffusion.md §3.3-§3.5, §3.9, §3.10, §10.5, §10.11.
 *
 * Precision: every tensor is fp32 and every per-sample coefficient is an fp32 value the caller
 * rounded from the float64 tables (common/models/diffusion.c forms them in the original's order).
 * Each element is computed with the original's fp32 operations in the original's order, one
 * rounding per operation (no fused multiply-add: the host build is -std=c11, i.e.
 * -ffp-contract=off, and device code uses the _rn intrinsics below). So the add/mul/div/sqrt paths
 * (q_sample, DDIM, CFG, DDPM with a fixed variance except its exp) agree bit for bit with PyTorch's
 * CPU fp32 and between the backends; exp/log/tanh follow each libm (last-bit differences).
 *
 * Contract (all outputs written, =; n = elements of ONE sample, i.e. C*H*W of x):
 *   rhd_diff_q_sample     xt = ca*x0 + cb*eps                          (ca = sqrt(abar_t), cb = sqrt(1-abar_t))
 *   rhd_diff_cfg          g[i] = u[i] + s*(c[i] - u[i]) for i < n      (eps channels of one sample)
 *   rhd_diff_ddim_step    one DDIM update of one sample (see rhd_ddim_coef); xp may alias x;
 *                         x0 (optional) receives the clipped x0 prediction
 *   rhd_diff_ddpm_step    one ancestral step of one sample (see rhd_ddpm_coef); xp may alias x
 *   rhd_diff_loss         one sample's terms (see rhd_loss_coef): returns mean of the MSE term and
 *                         of the VB term (bits, before T/1000 rescaling) in mse/vb; writes the
 *                         gradient of  w_mse * MSE + w_vb * VB  with respect to the network output
 *                         (dout [C_out, HW]: pred channels, then the v channels when learned)
 *   rhd_diff_randn        out[i] = normal(seed, stream, i), i < n (common/rng.h), either backend
 * Sums are taken in double over fixed chunks added in order (CPU) or a fixed block tree (CUDA),
 * so the values do not depend on the thread count. */
#ifndef RHD_KERNELS_DIFFUSION_H
#define RHD_KERNELS_DIFFUSION_H
#include <math.h>
#include <stdint.h>
#include "common/backend.h"
#include "common/hd.h"

/* One rounding per operation on both sides (nvcc would otherwise contract a*b + c to an fma). */
#ifdef __CUDA_ARCH__
#define RHD_FMUL(a, b) __fmul_rn((a), (b))
#define RHD_FADD(a, b) __fadd_rn((a), (b))
#define RHD_FSUB(a, b) __fsub_rn((a), (b))
#define RHD_FDIV(a, b) __fdiv_rn((a), (b))
#else
#define RHD_FMUL(a, b) ((a) * (b))
#define RHD_FADD(a, b) ((a) + (b))
#define RHD_FSUB(a, b) ((a) - (b))
#define RHD_FDIV(a, b) ((a) / (b))
#endif

/* What the network predicts (predict_type). */
typedef enum { RHD_PRED_EPS = 0, RHD_PRED_XSTART = 1, RHD_PRED_V = 2 } rhd_pred_kind;
/* Model variance: learned range (v channels) or fixed large. */
typedef enum { RHD_VAR_LEARNED_RANGE = 0, RHD_VAR_FIXED_LARGE = 1 } rhd_var_kind;

/* DDIM update coefficients of one sample, each an fp32 value (spec §3.10, §10.5):
 *   eps model:  x0 = (x - s1ma*e) / sa
 *   x0 model:   x0 = out;  e = (sr*x - x0) / srm1     (from the unclipped x0)
 *   v model:    x0 = sa*x - s1ma*out;  e = sa*out + s1ma*x ... (v = sqrt(a) eps - sqrt(1-a) x0)
 *   clip:       x0 := clamp(x0, -1, 1), e unchanged
 *   xp = (sap*x0 + dir*e) + sig*z
 * gd = 1 (GaussianDiffusion.ddim_sample instead of DDIMSampler): x0 from the tables as in DDPM
 * (eps: sr*x - srm1*e), clipped, then e := (sr*x - x0)/srm1 from the clipped x0.               */
typedef struct {
    float sa, s1ma, sap, dir, sig, sr, srm1;
    int pred, clip, gd;
} rhd_ddim_coef;

/* DDPM ancestral step of one sample at timestep t (p_sample):
 *   x0 from the prediction (eps: sr*x - srm1*e; x0: out; v: sa*x - s1ma*out), clipped if clip;
 *   mean = c1*x0 + c2*x;  log variance: learned range frac*lbeta + (1-frac)*lclip, frac = (v+1)/2,
 *   or the fixed lfix;  xp = mean + (nonzero ? exp(0.5*lv) : 0) * z                              */
typedef struct {
    float sr, srm1, sa, s1ma, c1, c2, lbeta, lclip, lfix;
    int pred, var, clip, nonzero;
} rhd_ddpm_coef;

/* Training terms of one sample at timestep t (training_losses, loss type RESCALED_MSE / MSE):
 *   target: eps (pred eps), x0 (pred x0) or v = sa*eps - s1ma*x0 (pred v);
 *   MSE = mean (target - pred)^2;
 *   VB (only with var = learned range): x0h from the detached prediction (eps: sr*xt - srm1*eps_hat;
 *   unclipped), mu_p = c1*x0h + c2*xt, mu_q = c1*x0 + c2*xt, lv_p = learned range of v,
 *   lv_q = lclip; t > 0 (t0 = 0): normal KL / ln 2; t = 0 (t0 = 1): discretised Gaussian NLL of
 *   x0 / ln 2 (bins of half-width 1/255, edges at +-0.999, logs clamped at 1e-12);
 *   gradient:  dpred = w_mse * 2 (pred - target)/n,  dv = w_vb * d(VB)/dv.                      */
typedef struct {
    float sa, s1ma, sr, srm1, c1, c2, lbeta, lclip;
    int pred, learned, t0;
    double w_mse, w_vb;
} rhd_loss_coef;

/* --- per-element helpers shared by the CPU reference and the CUDA kernels ---------------------- */

RHD_HD static inline float rhd_clampf1(float v) { return v < -1.f ? -1.f : (v > 1.f ? 1.f : v); }

RHD_HD static inline float rhd_q_sample_at(float ca, float cb, float x0, float eps) {
    return RHD_FADD(RHD_FMUL(ca, x0), RHD_FMUL(cb, eps));
}

/* improved-diffusion's learned range: frac = (v + 1)/2; frac*max_log + (1 - frac)*min_log */
RHD_HD static inline float rhd_learned_lv(float v, float lbeta, float lclip) {
    float frac = RHD_FDIV(RHD_FADD(v, 1.f), 2.f);
    return RHD_FADD(RHD_FMUL(frac, lbeta), RHD_FMUL(RHD_FSUB(1.f, frac), lclip));
}

RHD_HD static inline float rhd_cfg_at(float c, float u, float s) { return RHD_FADD(u, RHD_FMUL(s, RHD_FSUB(c, u))); }

/* x0 from the prediction: eps (sr, srm1 tables), x0, or v (sa, s1ma) */
RHD_HD static inline float rhd_x0_from_pred(int pred, float x, float out, float sr, float srm1, float sa, float s1ma) {
    if (pred == RHD_PRED_XSTART) return out;
    if (pred == RHD_PRED_V) return RHD_FSUB(RHD_FMUL(sa, x), RHD_FMUL(s1ma, out));
    return RHD_FSUB(RHD_FMUL(sr, x), RHD_FMUL(srm1, out));
}

/* _predict_eps_from_xstart: (sr*x - x0) / srm1 */
RHD_HD static inline float rhd_eps_from_x0(float x, float x0, float sr, float srm1) {
    return RHD_FDIV(RHD_FSUB(RHD_FMUL(sr, x), x0), srm1);
}

RHD_HD static inline float rhd_ddim_at(const rhd_ddim_coef *k, float x, float out, float z, float *x0_out) {
    float e, x0;
    if (k->gd) {
        x0 = rhd_x0_from_pred(k->pred, x, out, k->sr, k->srm1, k->sa, k->s1ma);
        if (k->clip) x0 = rhd_clampf1(x0);
        e = rhd_eps_from_x0(x, x0, k->sr, k->srm1);
        if (x0_out) *x0_out = x0;
        return RHD_FADD(RHD_FADD(RHD_FMUL(x0, k->sap), RHD_FMUL(k->dir, e)), RHD_FMUL(k->sig, z));
    }
    if (k->pred == RHD_PRED_EPS) {
        e = out;
        x0 = RHD_FDIV(RHD_FSUB(x, RHD_FMUL(k->s1ma, e)), k->sa);
    } else if (k->pred == RHD_PRED_XSTART) {
        x0 = out;
        e = rhd_eps_from_x0(x, x0, k->sr, k->srm1);
    } else { /* v: x0 = sa x - s1ma v, eps = sa v + s1ma x */
        x0 = RHD_FSUB(RHD_FMUL(k->sa, x), RHD_FMUL(k->s1ma, out));
        e = RHD_FADD(RHD_FMUL(k->sa, out), RHD_FMUL(k->s1ma, x));
    }
    if (k->clip) x0 = rhd_clampf1(x0);
    if (x0_out) *x0_out = x0;
    return RHD_FADD(RHD_FADD(RHD_FMUL(k->sap, x0), RHD_FMUL(k->dir, e)), RHD_FMUL(k->sig, z));
}

RHD_HD static inline float rhd_ddpm_at(const rhd_ddpm_coef *k, float x, float out, float v, float z, float *x0_out) {
    float x0 = rhd_x0_from_pred(k->pred, x, out, k->sr, k->srm1, k->sa, k->s1ma);
    if (k->clip) x0 = rhd_clampf1(x0);
    if (x0_out) *x0_out = x0;
    float mean = RHD_FADD(RHD_FMUL(k->c1, x0), RHD_FMUL(k->c2, x));
    float lv = k->var == RHD_VAR_LEARNED_RANGE ? rhd_learned_lv(v, k->lbeta, k->lclip) : k->lfix;
    float sd = k->nonzero ? expf(RHD_FMUL(0.5f, lv)) : 0.f;
    return RHD_FADD(mean, RHD_FMUL(sd, z));
}

/* approx_standard_normal_cdf: 0.5 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), fp32 ops; also its
 * derivative (in double, from the same tanh). */
#define RHD_SQRT_2_OVER_PI 0.7978845608028654
RHD_HD static inline float rhd_approx_cdf(float x, double *dcdf) {
    float x3 = RHD_FMUL(RHD_FMUL(x, x), x); /* torch.pow(x, 3) */
    float u = RHD_FMUL((float)RHD_SQRT_2_OVER_PI, RHD_FADD(x, RHD_FMUL(0.044715f, x3)));
    float th = tanhf(u);
    if (dcdf) dcdf[0] = 0.5 * (1.0 - (double)th * th) * RHD_SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * (double)x * x);
    return RHD_FMUL(0.5f, RHD_FADD(1.f, th));
}

/* The VB term of one element (before / ln 2) and its derivative with respect to the model log
 * variance lv_p. x0: data, mq: posterior mean, mp: model mean, lq: posterior log variance
 * (clipped), lp: model log variance. */
RHD_HD static inline float rhd_vb_at(int t0, float x0, float mq, float mp, float lq, float lp, double *dlp) {
    if (!t0) { /* normal_kl(mq, lq, mp, lp) */
        float e1 = expf(RHD_FSUB(lq, lp)), e2 = expf(-lp);
        float d = RHD_FSUB(mq, mp), d2 = RHD_FMUL(d, d);
        float kl = RHD_FADD(RHD_FADD(RHD_FSUB(RHD_FADD(-1.f, lp), lq), e1), RHD_FMUL(d2, e2));
        *dlp = 0.5 * (1.0 - (double)e1 - (double)d2 * e2);
        return RHD_FMUL(0.5f, kl);
    }
    /* -discretized_gaussian_log_likelihood(x0, means = mp, log_scales = 0.5 lp) */
    float ls = RHD_FMUL(0.5f, lp);
    float c = RHD_FSUB(x0, mp), inv = expf(-ls);
    float pin = RHD_FMUL(inv, RHD_FADD(c, (float)(1.0 / 255.0))), min_ = RHD_FMUL(inv, RHD_FSUB(c, (float)(1.0 / 255.0)));
    double dp, dm;
    float cp = rhd_approx_cdf(pin, &dp), cm = rhd_approx_cdf(min_, &dm);
    /* d pin / d ls = -pin, d min / d ls = -min; d ls / d lp = 0.5 */
    double dpin = -(double)pin * dp, dmin = -(double)min_ * dm, dlogp;
    float logp;
    if (x0 < -0.999f) {
        logp = logf(cp > 1e-12f ? cp : 1e-12f);
        dlogp = cp >= 1e-12f ? dpin / cp : 0.0;
    } else if (x0 > 0.999f) {
        float om = RHD_FSUB(1.f, cm);
        logp = logf(om > 1e-12f ? om : 1e-12f);
        dlogp = om >= 1e-12f ? -dmin / om : 0.0;
    } else {
        float delta = RHD_FSUB(cp, cm);
        logp = logf(delta > 1e-12f ? delta : 1e-12f);
        dlogp = delta >= 1e-12f ? (dpin - dmin) / delta : 0.0;
    }
    *dlp = -0.5 * dlogp;
    return -logp;
}

/* One element of the training terms: adds the squared error to *se and the VB value to *vb,
 * writes the gradient of the prediction (and of v when learned). */
RHD_HD static inline void rhd_loss_at(const rhd_loss_coef *k, float x0, float xt, float eps, float pred, float v,
                                      double *se, double *vb, float *dpred, float *dv) {
    float target = k->pred == RHD_PRED_EPS ? eps
                 : k->pred == RHD_PRED_XSTART ? x0
                 : RHD_FSUB(RHD_FMUL(k->sa, eps), RHD_FMUL(k->s1ma, x0));
    float d = RHD_FSUB(target, pred);
    *se += (double)RHD_FMUL(d, d);
    *dpred = (float)(k->w_mse * 2.0 * ((double)pred - (double)target));
    if (!k->learned) return;
    float x0h = rhd_x0_from_pred(k->pred, xt, pred, k->sr, k->srm1, k->sa, k->s1ma);
    float mp = RHD_FADD(RHD_FMUL(k->c1, x0h), RHD_FMUL(k->c2, xt));
    float mq = RHD_FADD(RHD_FMUL(k->c1, x0), RHD_FMUL(k->c2, xt));
    float lp = rhd_learned_lv(v, k->lbeta, k->lclip);
    double dlp;
    *vb += (double)rhd_vb_at(k->t0, x0, mq, mp, k->lclip, lp, &dlp);
    /* d lp / d v = 0.5 (lbeta - lclip): exactly 0 where the two fp32 tables coincide (§10.11) */
    *dv = (float)(k->w_vb * dlp * 0.5 * ((double)k->lbeta - (double)k->lclip));
}

#ifdef __cplusplus
extern "C" {
#endif
/* xt (n) = ca*x0 + cb*eps, one sample */
void rhd_diff_q_sample(rhd_ctx *ctx, float *xt, const float *x0, const float *eps, int64_t n, float ca, float cb);
/* g (n) = u + s*(c - u) */
void rhd_diff_cfg(rhd_ctx *ctx, float *g, const float *c, const float *u, int64_t n, float s);
/* xp (n) from x (n), the prediction out (n) and z (n); x0 (n) optional */
void rhd_diff_ddim_step(rhd_ctx *ctx, float *xp, float *x0, const float *x, const float *out, const float *z,
                        int64_t n, const rhd_ddim_coef *k);
/* v (n) is read only with a learned variance (may be NULL otherwise) */
void rhd_diff_ddpm_step(rhd_ctx *ctx, float *xp, float *x0, const float *x, const float *out, const float *v,
                        const float *z, int64_t n, const rhd_ddpm_coef *k);
/* one sample: x0, xt, eps (n); pred (n) and v (n, learned only); gradients dpred (n), dv (n)
 * (either may be NULL when not wanted). mse, vb: means over the n elements (vb in nats, the caller
 * divides by ln 2 and rescales). */
void rhd_diff_loss(rhd_ctx *ctx, double *mse, double *vb, float *dpred, float *dv, const float *x0, const float *xt,
                   const float *eps, const float *pred, const float *v, int64_t n, const rhd_loss_coef *k);
/* out (n) = normal draws offset..offset+n-1 of (seed, stream) */
void rhd_diff_randn(rhd_ctx *ctx, float *out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset);
#ifdef RHD_CUDA
void rhd_diff_q_sample_cuda(rhd_ctx *ctx, float *xt, const float *x0, const float *eps, int64_t n, float ca, float cb);
void rhd_diff_cfg_cuda(rhd_ctx *ctx, float *g, const float *c, const float *u, int64_t n, float s);
void rhd_diff_ddim_step_cuda(rhd_ctx *ctx, float *xp, float *x0, const float *x, const float *out, const float *z,
                             int64_t n, const rhd_ddim_coef *k);
void rhd_diff_ddpm_step_cuda(rhd_ctx *ctx, float *xp, float *x0, const float *x, const float *out, const float *v,
                             const float *z, int64_t n, const rhd_ddpm_coef *k);
void rhd_diff_loss_cuda(rhd_ctx *ctx, double *se, double *vb, float *dpred, float *dv, const float *x0,
                        const float *xt, const float *eps, const float *pred, const float *v, int64_t n,
                        const rhd_loss_coef *k);
void rhd_diff_randn_cuda(rhd_ctx *ctx, float *out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset);
#endif
#ifdef __cplusplus
}
#endif
#endif
