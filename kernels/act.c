/* kernels/act.c: elementwise activations, CPU reference and backend dispatch (see act.h). */
#if defined(__GNUC__) && !defined(__clang__)
/* GCC if-converts the selects of rhd_exp_fast (and so vectorises the loops below) only when it
 * may assume that floating-point operations do not trap. No result changes: this file never
 * inspects the floating-point exception flags. */
#pragma GCC optimize("no-trapping-math")
#endif
#include "kernels/act.h"
#include <string.h>

static const char *const act_names[RHD_ACT_COUNT] = {"identity", "relu", "silu", "softplus", "sigmoid", "trunc_exp"};

const char *rhd_act_name(rhd_act a) { return (unsigned)a < RHD_ACT_COUNT ? act_names[a] : "?"; }

int rhd_act_parse(const char *name, rhd_act *out, rhd_err *e) {
    for (int i = 0; i < RHD_ACT_COUNT; i++)
        if (strcmp(name, act_names[i]) == 0) { *out = (rhd_act)i; return 0; }
    return rhd_errf(e, "'%s' is not an activation, expected identity, relu, silu, softplus, sigmoid or trunc_exp", name);
}

/* The loops are compiled twice, for AVX2 and for the baseline, and picked at load time. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define ACT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define ACT_CLONES
#endif

ACT_CLONES static void act_forward_cpu(float *y, const float *x, int64_t n, rhd_act a) {
    switch (a) { /* one loop per kind for the hot ones, so that each vectorises */
    case RHD_ACT_RELU:
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++) y[i] = rhd_relu(x[i]);
        break;
    case RHD_ACT_SILU:
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++) y[i] = rhd_silu(x[i]);
        break;
    case RHD_ACT_SIGMOID:
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++) y[i] = rhd_sigmoid(x[i]);
        break;
    case RHD_ACT_SOFTPLUS:
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++) y[i] = rhd_softplus(x[i]);
        break;
    default:
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) y[i] = rhd_act_apply(a, x[i]);
        break;
    }
}

ACT_CLONES static void act_backward_cpu(float *dx, const float *dy, const float *x, int64_t n, rhd_act a) {
    switch (a) {
    case RHD_ACT_RELU:
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case RHD_ACT_SILU:
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * rhd_silu_grad(x[i]);
        break;
    case RHD_ACT_SIGMOID:
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * rhd_sigmoid_grad(x[i]);
        break;
    case RHD_ACT_SOFTPLUS:
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * rhd_softplus_grad(x[i]);
        break;
    default:
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * rhd_act_grad(a, x[i]);
        break;
    }
}

void rhd_act_forward(rhd_ctx *ctx, float *y, const float *x, int64_t n, rhd_act a) {
    RHD_ASSERT(n >= 0 && (unsigned)a < RHD_ACT_COUNT);
    if (n == 0) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_act_forward_cuda(ctx, y, x, n, a); return; }
#endif
    act_forward_cpu(y, x, n, a);
}

void rhd_act_backward(rhd_ctx *ctx, float *dx, const float *dy, const float *x, int64_t n, rhd_act a) {
    RHD_ASSERT(n >= 0 && (unsigned)a < RHD_ACT_COUNT);
    if (n == 0) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_act_backward_cuda(ctx, dx, dy, x, n, a); return; }
#endif
    act_backward_cpu(dx, dy, x, n, a);
}
