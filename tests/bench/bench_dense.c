/* tests/bench/bench_dense.c: the dense kernels (linear, conv2d, groupnorm, SiLU) at model sizes,
 * ours against PyTorch on the same machine, fp32, $RHD_BENCH_THREADS threads (default 2).
 *
 * Each op runs once to warm up, then the best of a few runs is kept. The shapes are written to a
 * spec file that tests/ref/bench_dense.py times in PyTorch (forward, and backward through
 * autograd.grad). One row per op: op | shape | ours ms | torch ms | torch/ours (> 1: we are
 * faster). RHD_BENCH_DEVICE=cuda times our CUDA backend instead (synchronising before the clock
 * stops); the PyTorch column stays on the CPU. */
#include "refcheck.h"
#include "common/backend.h"
#include "common/log.h"
#include "kernels/act.h"
#include "kernels/conv2d.h"
#include "kernels/linear.h"
#include "kernels/norm.h"

typedef enum { OP_LINEAR, OP_CONV, OP_GROUPNORM, OP_SILU } op_kind;

typedef struct {
    const char *name; /* row label */
    op_kind kind;
    int a, b, c, d, e, f; /* linear: N in out bias; conv: Cin Cout H W k (N=1, stride 1, pad k/2);
                             groupnorm: N C H W G; silu: C H W */
} bench_op;

static const bench_op ops[] = {
    {"linear 263->128 (fitting MLP)", OP_LINEAR, 8192, 263, 128, 0},
    {"linear 768->768", OP_LINEAR, 256, 768, 768, 1},
    {"conv3x3 128->128 (VAE)", OP_CONV, 128, 128, 128, 128, 3},
    {"conv3x3 192->192 (UNet L0)", OP_CONV, 192, 192, 128, 384, 3},
    {"conv3x3 384->384", OP_CONV, 384, 384, 32, 96, 3},
    {"conv3x3 768->768", OP_CONV, 768, 768, 8, 24, 3},
    {"groupnorm G=32", OP_GROUPNORM, 1, 192, 128, 384, 32},
    {"silu", OP_SILU, 192, 128, 384},
};
#define N_OPS (int)(sizeof ops / sizeof ops[0])

/* A buffer on the context's side filled with normal noise. */
static float *rand_buf(rhd_ctx *ctx, long n, float std) {
    float *h = th_randn(n, std), *p = rhd_buf_alloc(ctx, sizeof(float) * n);
    rhd_buf_upload(ctx, p, h, sizeof(float) * n);
    free(h);
    return p;
}

typedef struct {
    rhd_ctx *ctx;
    const bench_op *op;
    float *in[4], *out[4], *grad[4];
    float *mean, *rstd;
    rhd_conv2d_desc cd;
} bench_state;

static void setup(bench_state *s) {
    const bench_op *o = s->op;
    rhd_ctx *ctx = s->ctx;
    memset(s->in, 0, sizeof s->in), memset(s->out, 0, sizeof s->out), memset(s->grad, 0, sizeof s->grad);
    s->mean = s->rstd = NULL;
    switch (o->kind) {
    case OP_LINEAR: /* in: x W b dy; out: y; grad: dx dW db */
        s->in[0] = rand_buf(ctx, (long)o->a * o->b, 1), s->in[1] = rand_buf(ctx, (long)o->c * o->b, 0.05f);
        s->in[2] = rand_buf(ctx, o->c, 0.1f), s->in[3] = rand_buf(ctx, (long)o->a * o->c, 1);
        s->out[0] = rhd_buf_alloc(ctx, 4L * o->a * o->c);
        s->grad[0] = rhd_buf_alloc(ctx, 4L * o->a * o->b), s->grad[1] = rand_buf(ctx, (long)o->c * o->b, 0);
        s->grad[2] = rand_buf(ctx, o->c, 0);
        break;
    case OP_CONV:
        s->cd = rhd_conv2d_square(1, o->a, o->c, o->d, o->b, o->e, 1, o->e / 2);
        s->in[0] = rand_buf(ctx, (long)o->a * o->c * o->d, 1);
        s->in[1] = rand_buf(ctx, (long)o->b * o->a * o->e * o->e, 0.02f);
        s->in[2] = rand_buf(ctx, o->b, 0.1f), s->in[3] = rand_buf(ctx, (long)o->b * o->c * o->d, 1);
        s->out[0] = rhd_buf_alloc(ctx, 4L * o->b * o->c * o->d);
        s->grad[0] = rhd_buf_alloc(ctx, 4L * o->a * o->c * o->d);
        s->grad[1] = rand_buf(ctx, (long)o->b * o->a * o->e * o->e, 0), s->grad[2] = rand_buf(ctx, o->b, 0);
        break;
    case OP_GROUPNORM: {
        long n = (long)o->a * o->b * o->c * o->d;
        s->in[0] = rand_buf(ctx, n, 1), s->in[1] = rand_buf(ctx, o->b, 1), s->in[2] = rand_buf(ctx, o->b, 1);
        s->in[3] = rand_buf(ctx, n, 1);
        s->out[0] = rhd_buf_alloc(ctx, 4 * n), s->grad[0] = rhd_buf_alloc(ctx, 4 * n);
        s->grad[1] = rand_buf(ctx, o->b, 0), s->grad[2] = rand_buf(ctx, o->b, 0);
        s->mean = rhd_buf_alloc(ctx, 4L * o->a * o->e), s->rstd = rhd_buf_alloc(ctx, 4L * o->a * o->e);
        break;
    }
    case OP_SILU: {
        long n = (long)o->a * o->b * o->c;
        s->in[0] = rand_buf(ctx, n, 2), s->in[3] = rand_buf(ctx, n, 1);
        s->out[0] = rhd_buf_alloc(ctx, 4 * n), s->grad[0] = rhd_buf_alloc(ctx, 4 * n);
        break;
    }
    }
}

static void teardown(bench_state *s) {
    for (int i = 0; i < 4; i++) {
        rhd_buf_free(s->ctx, s->in[i]);
        rhd_buf_free(s->ctx, s->out[i]);
        rhd_buf_free(s->ctx, s->grad[i]);
    }
    rhd_buf_free(s->ctx, s->mean), rhd_buf_free(s->ctx, s->rstd);
}

static void run(bench_state *s, int backward) {
    const bench_op *o = s->op;
    rhd_ctx *ctx = s->ctx;
    switch (o->kind) {
    case OP_LINEAR:
        if (!backward) rhd_linear_forward(ctx, s->out[0], s->in[0], s->in[1], o->d ? s->in[2] : NULL, o->a, o->b, o->c);
        else
            rhd_linear_backward(ctx, s->grad[0], s->grad[1], o->d ? s->grad[2] : NULL, s->in[3], s->in[0], s->in[1],
                                o->a, o->b, o->c);
        break;
    case OP_CONV:
        if (!backward) rhd_conv2d_forward(ctx, s->out[0], s->in[0], s->in[1], s->in[2], &s->cd);
        else rhd_conv2d_backward(ctx, s->grad[0], s->grad[1], s->grad[2], s->in[3], s->in[0], s->in[1], &s->cd);
        break;
    case OP_GROUPNORM:
        if (!backward)
            rhd_groupnorm_forward(ctx, s->out[0], s->mean, s->rstd, s->in[0], s->in[1], s->in[2], o->a, o->b,
                                  (long)o->c * o->d, o->e, 1e-5f);
        else
            rhd_groupnorm_backward(ctx, s->grad[0], s->grad[1], s->grad[2], s->in[3], s->in[0], s->mean, s->rstd,
                                   s->in[1], o->a, o->b, (long)o->c * o->d, o->e);
        break;
    case OP_SILU: {
        long n = (long)o->a * o->b * o->c;
        if (!backward) rhd_act_forward(ctx, s->out[0], s->in[0], n, RHD_ACT_SILU);
        else rhd_act_backward(ctx, s->grad[0], s->in[3], s->in[0], n, RHD_ACT_SILU);
        break;
    }
    }
}

/* best of `reps` timed runs after one warm-up, in ms */
static double time_ms(bench_state *s, int backward, int reps) {
    run(s, backward);
    rhd_ctx_sync(s->ctx);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = rhd_now();
        run(s, backward);
        rhd_ctx_sync(s->ctx);
        double dt = (rhd_now() - t0) * 1e3;
        if (dt < best) best = dt;
    }
    return best;
}

static void shape_str(const bench_op *o, char *buf, size_t n) {
    switch (o->kind) {
    case OP_LINEAR: snprintf(buf, n, "[%d,%d]->[%d,%d]%s", o->a, o->b, o->a, o->c, o->d ? " +b" : ""); break;
    case OP_CONV: snprintf(buf, n, "[1,%d,%d,%d]->[1,%d,%d,%d]", o->a, o->c, o->d, o->b, o->c, o->d); break;
    case OP_GROUPNORM: snprintf(buf, n, "[%d,%d,%d,%d] G=%d", o->a, o->b, o->c, o->d, o->e); break;
    case OP_SILU: snprintf(buf, n, "[%d,%d,%d]", o->a, o->b, o->c); break;
    }
}

/* the PyTorch side's description of op o: "<kind> k=v ..." */
static void spec_line(FILE *f, int i, const bench_op *o, int backward, int reps) {
    fprintf(f, "%d ", 2 * i + backward);
    const char *dir = backward ? "bwd" : "fwd";
    switch (o->kind) {
    case OP_LINEAR: fprintf(f, "linear %s %d N=%d in=%d out=%d bias=%d\n", dir, reps, o->a, o->b, o->c, o->d); break;
    case OP_CONV:
        fprintf(f, "conv2d %s %d Cin=%d Cout=%d H=%d W=%d k=%d\n", dir, reps, o->a, o->b, o->c, o->d, o->e);
        break;
    case OP_GROUPNORM:
        fprintf(f, "groupnorm %s %d N=%d C=%d H=%d W=%d G=%d\n", dir, reps, o->a, o->b, o->c, o->d, o->e);
        break;
    case OP_SILU: fprintf(f, "silu %s %d C=%d H=%d W=%d\n", dir, reps, o->a, o->b, o->c); break;
    }
}

int main(void) {
    const char *dev = getenv("RHD_BENCH_DEVICE");
    rhd_err e;
    rhd_ctx *ctx = rhd_ctx_open(dev && *dev ? dev : "cpu", &e);
    if (!ctx) { fprintf(stderr, "bench_dense: %s\n", e.msg); return 1; }
    const char *threads = getenv("RHD_BENCH_THREADS");
    printf("# bench_dense: ours on %s, PyTorch on the CPU with %s thread(s), fp32, best of several runs\n", ctx->name,
           threads && *threads ? threads : "2");
    double ours[2 * N_OPS];
    const char *dir = th_subdir("bench_dense");
    char spec[1200], res[1200];
    snprintf(spec, sizeof spec, "%s/spec.txt", dir);
    snprintf(res, sizeof res, "%s/torch.txt", dir);
    FILE *f = fopen(spec, "w");
    if (!f) { perror(spec); return 1; }
    for (int i = 0; i < N_OPS; i++) {
        bench_state s = {ctx, &ops[i]};
        setup(&s);
        int reps = ops[i].kind == OP_CONV && ops[i].a >= 192 ? 3 : 5;
        for (int b = 0; b < 2; b++) {
            ours[2 * i + b] = time_ms(&s, b, reps);
            spec_line(f, i, &ops[i], b, reps);
        }
        teardown(&s);
    }
    fclose(f);
    double torch_ms[2 * N_OPS];
    for (int i = 0; i < 2 * N_OPS; i++) torch_ms[i] = NAN;
    if (th_ref("bench_dense.py", "%s %s", spec, res) == 0 && (f = fopen(res, "r"))) {
        int id;
        double ms;
        while (fscanf(f, "%d %lf", &id, &ms) == 2)
            if (id >= 0 && id < 2 * N_OPS) torch_ms[id] = ms;
        fclose(f);
    }
    printf("%-34s | %-28s | %9s | %9s | %s\n", "op", "shape", "ours ms", "torch ms", "torch/ours");
    for (int i = 0; i < 2 * N_OPS; i++) {
        char name[64], shape[64];
        snprintf(name, sizeof name, "%s %s", ops[i / 2].name, i % 2 ? "bwd" : "fwd");
        shape_str(&ops[i / 2], shape, sizeof shape);
        printf("%-34s | %-28s | %9.2f | %9.2f | %.2f\n", name, shape, ours[i], torch_ms[i], torch_ms[i] / ours[i]);
    }
    rhd_ctx_close(ctx);
    return 0;
}
