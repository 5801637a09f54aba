/* tests/bench/bench_dense.c: the dense kernels (linear, conv2d, groupnorm, SiLU) at model sizes,
 * ours against PyTorch on the same machine, fp32, $RHD_BENCH_THREADS threads (default 2).
 *
 * tests/ref/bench_dense.py runs beside this program as a server on a pair of pipes: for each op
 * both sides build the same shapes, warm up once, then take turns, one run of ours and one of
 * PyTorch's (forward, or backward through autograd.grad), for a few rounds, keeping the best of
 * each. Taking turns keeps the comparison fair when other work shares the machine. One row per
 * op: op | shape | ours ms | torch ms | torch/ours (> 1: we are faster). RHD_BENCH_DEVICE=cuda
 * times our CUDA backend instead (synchronising before the clock stops); the PyTorch column
 * stays on the CPU. RHD_BENCH_CLOCK=cpu measures process CPU time instead of wall time on both
 * sides: with RHD_BENCH_THREADS=1 that compares the work per core even on a busy machine (with
 * more threads it would count idle threads spinning). */
#include "bench.h"
#include "common/backend.h"
#include "common/log.h"
#include "kernels/act.h"
#include "kernels/conv2d.h"
#include "kernels/linear.h"
#include "kernels/norm.h"
#include <signal.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

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

static int cpu_clock; /* RHD_BENCH_CLOCK=cpu */

static double clock_s(void) {
    if (!cpu_clock) return rhd_now();
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* one timed run, in ms */
static double time_once(bench_state *s, int backward) {
    double t0 = clock_s();
    run(s, backward);
    rhd_ctx_sync(s->ctx);
    return (clock_s() - t0) * 1e3;
}

/* The PyTorch side: a child process reading commands on `to` and answering on `from`. */
typedef struct {
    pid_t pid;
    FILE *to, *from;
} torch_server;

static int server_start(torch_server *t) {
    int down[2], up[2];
    if (pipe(down) || pipe(up)) return -1;
    const char *py = getenv("RHD_PY"), *root = getenv("RHD_ROOT");
    char script[1024];
    snprintf(script, sizeof script, "%s/tests/ref/bench_dense.py", root && *root ? root : ".");
    t->pid = fork();
    if (t->pid < 0) return -1;
    if (t->pid == 0) {
        dup2(down[0], 0), dup2(up[1], 1);
        close(down[0]), close(down[1]), close(up[0]), close(up[1]);
        execlp(py && *py ? py : "python3", py && *py ? py : "python3", script, (char *)NULL);
        _exit(127);
    }
    close(down[0]), close(up[1]);
    t->to = fdopen(down[1], "w"), t->from = fdopen(up[0], "r");
    return t->to && t->from ? 0 : -1;
}

/* Send one command line and read the one-line answer as a number (NAN if the server failed). */
static double server_ask(torch_server *t, const char *cmd) {
    char line[256];
    if (!t->to || fprintf(t->to, "%s\n", cmd) < 0 || fflush(t->to)) return NAN;
    if (!fgets(line, sizeof line, t->from)) {
        fclose(t->to), t->to = NULL;
        return NAN;
    }
    return strtod(line, NULL);
}

static void server_stop(torch_server *t) {
    if (t->to) fclose(t->to);
    if (t->from) fclose(t->from);
    if (t->pid > 0) waitpid(t->pid, NULL, 0);
}

static void shape_str(const bench_op *o, char *buf, size_t n) {
    switch (o->kind) {
    case OP_LINEAR: snprintf(buf, n, "[%d,%d]->[%d,%d]%s", o->a, o->b, o->a, o->c, o->d ? " +b" : ""); break;
    case OP_CONV: snprintf(buf, n, "[1,%d,%d,%d]->[1,%d,%d,%d]", o->a, o->c, o->d, o->b, o->c, o->d); break;
    case OP_GROUPNORM: snprintf(buf, n, "[%d,%d,%d,%d] G=%d", o->a, o->b, o->c, o->d, o->e); break;
    case OP_SILU: snprintf(buf, n, "[%d,%d,%d]", o->a, o->b, o->c); break;
    }
}

/* the PyTorch side's description of op o: "setup <kind> k=v ..." */
static void spec_cmd(char *buf, size_t n, const bench_op *o) {
    switch (o->kind) {
    case OP_LINEAR: snprintf(buf, n, "setup linear N=%d in=%d out=%d bias=%d", o->a, o->b, o->c, o->d); break;
    case OP_CONV: snprintf(buf, n, "setup conv2d Cin=%d Cout=%d H=%d W=%d k=%d", o->a, o->b, o->c, o->d, o->e); break;
    case OP_GROUPNORM:
        snprintf(buf, n, "setup groupnorm N=%d C=%d H=%d W=%d G=%d", o->a, o->b, o->c, o->d, o->e);
        break;
    case OP_SILU: snprintf(buf, n, "setup silu C=%d H=%d W=%d", o->a, o->b, o->c); break;
    }
}

int main(void) {
    rhd_ctx *ctx = bench_open("bench_dense");
    const char *threads = getenv("RHD_BENCH_THREADS"), *clk = getenv("RHD_BENCH_CLOCK");
    cpu_clock = clk && strcmp(clk, "cpu") == 0;
    printf("# bench_dense: ours on %s, PyTorch on the CPU with %s thread(s), fp32, best of alternating runs, %s\n",
           ctx->name, threads && *threads ? threads : "2", cpu_clock ? "process CPU time" : "wall time");
    signal(SIGPIPE, SIG_IGN);
    torch_server ts = {0};
    if (server_start(&ts)) fprintf(stderr, "bench_dense: cannot start the PyTorch side\n");
    printf("%-34s | %-32s | %9s | %9s | %s\n", "op", "shape", "ours ms", "torch ms", "torch/ours");
    fflush(stdout);
    for (int i = 0; i < N_OPS; i++) {
        bench_state s = {ctx, &ops[i]};
        setup(&s);
        char cmd[256];
        spec_cmd(cmd, sizeof cmd, &ops[i]);
        int torch_ok = server_ask(&ts, cmd) == 0;
        const int rounds = ops[i].kind == OP_CONV && ops[i].a >= 192 ? 3 : 6;
        for (int b = 0; b < 2; b++) {
            double ours = 1e30, torch = 1e30;
            time_once(&s, b); /* warm-up, both sides */
            if (torch_ok) server_ask(&ts, b ? "bwd" : "fwd");
            for (int r = 0; r < rounds; r++) {
                double t = time_once(&s, b);
                if (t < ours) ours = t;
                if (torch_ok) {
                    t = server_ask(&ts, b ? "bwd" : "fwd");
                    if (!(t >= torch)) torch = t; /* NaN (server gone) propagates */
                }
            }
            if (!torch_ok) torch = NAN;
            char name[64], shape[64];
            snprintf(name, sizeof name, "%s %s", ops[i].name, b ? "bwd" : "fwd");
            shape_str(&ops[i], shape, sizeof shape);
            printf("%-34s | %-32s | %9.2f | %9.2f | %.2f\n", name, shape, ours, torch, torch / ours);
            fflush(stdout);
        }
        teardown(&s);
    }
    server_stop(&ts);
    bench_close();
    return 0;
}
