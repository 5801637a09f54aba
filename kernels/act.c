/* kernels/act.c: elementwise activations, CPU reference and backend dispatch (see act.h). */
#include "kernels/act.h"
#include <string.h>

static const char *const act_names[RHD_ACT_COUNT] = {"identity", "relu", "silu", "softplus", "sigmoid", "trunc_exp"};

const char *rhd_act_name(rhd_act a) { return (unsigned)a < RHD_ACT_COUNT ? act_names[a] : "?"; }

int rhd_act_parse(const char *name, rhd_act *out, rhd_err *e) {
    for (int i = 0; i < RHD_ACT_COUNT; i++)
        if (strcmp(name, act_names[i]) == 0) { *out = (rhd_act)i; return 0; }
    return rhd_errf(e, "'%s' is not an activation, expected identity, relu, silu, softplus, sigmoid or trunc_exp", name);
}

static void act_forward_cpu(float *y, const float *x, long n, rhd_act a) {
    switch (a) { /* one loop per kind so that each vectorises on its own */
    case RHD_ACT_RELU:
#pragma omp parallel for schedule(static)
        for (long i = 0; i < n; i++) y[i] = rhd_relu(x[i]);
        break;
    case RHD_ACT_SILU:
#pragma omp parallel for schedule(static)
        for (long i = 0; i < n; i++) y[i] = rhd_silu(x[i]);
        break;
    default:
#pragma omp parallel for schedule(static)
        for (long i = 0; i < n; i++) y[i] = rhd_act_apply(a, x[i]);
        break;
    }
}

static void act_backward_cpu(float *dx, const float *dy, const float *x, long n, rhd_act a) {
    switch (a) {
    case RHD_ACT_RELU:
#pragma omp parallel for schedule(static)
        for (long i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case RHD_ACT_SILU:
#pragma omp parallel for schedule(static)
        for (long i = 0; i < n; i++) dx[i] = dy[i] * rhd_silu_grad(x[i]);
        break;
    default:
#pragma omp parallel for schedule(static)
        for (long i = 0; i < n; i++) dx[i] = dy[i] * rhd_act_grad(a, x[i]);
        break;
    }
}

void rhd_act_forward(rhd_ctx *ctx, float *y, const float *x, long n, rhd_act a) {
    RHD_ASSERT(n >= 0 && (unsigned)a < RHD_ACT_COUNT);
    if (n == 0) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_act_forward_cuda(ctx, y, x, n, a); return; }
#endif
    act_forward_cpu(y, x, n, a);
}

void rhd_act_backward(rhd_ctx *ctx, float *dx, const float *dy, const float *x, long n, rhd_act a) {
    RHD_ASSERT(n >= 0 && (unsigned)a < RHD_ACT_COUNT);
    if (n == 0) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_act_backward_cuda(ctx, dx, dy, x, n, a); return; }
#endif
    act_backward_cpu(dx, dy, x, n, a);
}
