/* tests/bench/bench.h: the setup shared by the benchmarks tests/bench/bench_*.c.
 *
 *   rhd_ctx *ctx = bench_open("bench_x");   the context of RHD_BENCH_DEVICE (default cpu; cuda
 *                                           times our CUDA backend); RHD_BENCH_REPS (default 3)
 *                                           timed runs. A device that does not open prints a skip
 *                                           line and exits 0 (a benchmark has nothing to time).
 *   BENCH_BEST(ms, stmt);                   one warm-up run of stmt, then the best wall time (ms)
 *                                           of bench.reps runs (more while bench.budget_ms is not
 *                                           spent, up to bench.max_reps), synchronising the
 *                                           context before each clock stop; bench.best_cpu holds
 *                                           the process CPU time (all threads) of the best run.
 *   bench_add(&tab, "key", "op", "shape", ms)  a row for the result just timed (its CPU time too)
 *   bench_ref(&tab, "bench_x.py", "%s %d", dir, reps)
 *                                           run $RHD_PY tests/ref/<script> <args> and read the
 *                                           lines "<key> <wall ms> [<cpu ms>]" it prints into the
 *                                           rows of that key; lines starting with '#' are
 *                                           passed through, others ignored. Skipped with
 *                                           RHD_BENCH_NO_TORCH=1. 0 on success.
 *   bench_print(&tab)                       op | shape | ours ms | torch ms | torch/ours, then
 *                                           the CPU times when any were measured
 * The wall clock is the figure of merit; the process CPU time shows the work done when the wall
 * clock also counts waiting for a core on a shared machine. The reference side (PyTorch, fp32,
 * torch.set_num_threads($RHD_BENCH_THREADS), or NumPy) keeps its own best-of timing. */
#ifndef RHD_TEST_BENCH_H
#define RHD_TEST_BENCH_H
#include "refcheck.h"
#include "common/backend.h"
#include <stdarg.h>
#include <time.h>

static struct bench_state {
    rhd_ctx *ctx;
    const char *prog;
    int reps;         /* timed runs after the warm-up (RHD_BENCH_REPS, default 3) */
    int max_reps;     /* with a budget: at most this many runs (0: reps) */
    double budget_ms; /* keep timing while the runs so far took less than this */
    double best_cpu;  /* process CPU ms of the best run of the last BENCH_BEST */
} bench = {NULL, "bench", 3, 0, 0, 0};

static inline double bench_clock_ms(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}
static inline double bench_wall_ms(void) { return bench_clock_ms(CLOCK_MONOTONIC); }
static inline double bench_cpu_ms(void) { return bench_clock_ms(CLOCK_PROCESS_CPUTIME_ID); }

static inline int bench_env_int(const char *name, int dflt) {
    const char *s = getenv(name);
    char *end;
    long v = s && *s ? strtol(s, &end, 10) : 0;
    return s && *s && !*end && v > 0 && v < 1000000 ? (int)v : dflt;
}

/* 1 when RHD_BENCH_DEVICE asks for CUDA. */
static inline int bench_want_cuda(void) {
    const char *d = getenv("RHD_BENCH_DEVICE");
    return d && strncmp(d, "cuda", 4) == 0;
}

/* The reference side is left out with RHD_BENCH_NO_TORCH=1. */
static inline int bench_no_ref(void) {
    const char *s = getenv("RHD_BENCH_NO_TORCH");
    return s && *s && strcmp(s, "0") != 0;
}

static inline rhd_ctx *bench_open(const char *prog) {
    bench.prog = prog;
    rhd_set_prog(prog);
    bench.reps = bench_env_int("RHD_BENCH_REPS", bench.reps);
    const char *dev = getenv("RHD_BENCH_DEVICE");
    rhd_err e;
    bench.ctx = rhd_ctx_open(dev && *dev ? dev : "cpu", &e);
    if (!bench.ctx) {
        printf("%s: skip: device '%s' does not open: %s\n", prog, dev && *dev ? dev : "cpu", e.msg);
        exit(0);
    }
    return bench.ctx;
}

static inline void bench_close(void) {
    if (bench.ctx) rhd_ctx_close(bench.ctx);
    bench.ctx = NULL;
}

#define BENCH_BEST(out, stmt)                                                                              \
    do {                                                                                                   \
        stmt;                                                                                              \
        rhd_ctx_sync(bench.ctx);                                                                           \
        int max_ = bench.max_reps > bench.reps ? bench.max_reps : bench.reps;                              \
        double total_ = 0;                                                                                 \
        (out) = 1e30;                                                                                      \
        for (int r_ = 0; r_ < max_ && (r_ < bench.reps || total_ < bench.budget_ms); r_++) {               \
            double t0_ = bench_wall_ms(), c0_ = bench_cpu_ms();                                            \
            stmt;                                                                                          \
            rhd_ctx_sync(bench.ctx);                                                                       \
            double dt_ = bench_wall_ms() - t0_;                                                            \
            total_ += dt_;                                                                                 \
            if (dt_ < (out)) (out) = dt_, bench.best_cpu = bench_cpu_ms() - c0_;                           \
        }                                                                                                  \
    } while (0)

/* ---- rows ---- */

typedef struct bench_row {
    char key[48], op[64], shape[256];
    double ours, ours_cpu, ref, ref_cpu; /* ms; ref < 0: not measured; *_cpu < 0: not measured */
} bench_row;

typedef struct bench_table {
    const char *ref_name; /* column label of the reference: "torch" (default) or "ref" */
    int n;
    bench_row rows[48];
} bench_table;

/* A row for the result just timed: its wall ms and the CPU ms of BENCH_BEST's best run. */
static inline bench_row *bench_add_cpu(bench_table *t, const char *key, const char *op, const char *shape, double ms,
                                       double cpu_ms) {
    RHD_ASSERT(t->n < (int)(sizeof t->rows / sizeof t->rows[0]));
    bench_row *r = &t->rows[t->n++];
    snprintf(r->key, sizeof r->key, "%s", key);
    snprintf(r->op, sizeof r->op, "%s", op);
    snprintf(r->shape, sizeof r->shape, "%s", shape);
    r->ours = ms, r->ours_cpu = cpu_ms, r->ref = -1, r->ref_cpu = -1;
    return r;
}
static inline bench_row *bench_add(bench_table *t, const char *key, const char *op, const char *shape, double ms) {
    return bench_add_cpu(t, key, op, shape, ms, bench.best_cpu);
}

/* Run $RHD_PY $RHD_ROOT/tests/ref/<script> <args>; its stdout lines "<key> <ms> [<cpu ms>]" fill
 * the reference columns of the rows with that key. Returns the script's exit status (0: ok). */
static inline int bench_ref(bench_table *t, const char *script, const char *fmt, ...) {
    if (bench_no_ref()) return 0;
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    const char *py = getenv("RHD_PY"), *root = getenv("RHD_ROOT");
    snprintf(cmd, sizeof cmd, "%s %s/tests/ref/%s %s", py && *py ? py : "python3", root && *root ? root : ".", script,
             args);
    fflush(stdout);
    FILE *f = popen(cmd, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot run %s\n", bench.prog, cmd);
        return -1;
    }
    char line[512], key[64];
    double ms, cpu;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') { /* the reference's remarks go to our output */
            fputs(line, stdout);
            continue;
        }
        int k = sscanf(line, "%63s %lf %lf", key, &ms, &cpu);
        if (k < 2) continue;
        for (int i = 0; i < t->n; i++)
            if (strcmp(t->rows[i].key, key) == 0) t->rows[i].ref = ms, t->rows[i].ref_cpu = k == 3 ? cpu : -1;
    }
    int st = pclose(f);
    st = st == -1 ? -1 : (st >> 8) & 0xff;
    if (st != 0) fprintf(stderr, "%s: %s exited with status %d\n", bench.prog, cmd, st);
    return st;
}

/* One line of the table: op | shape | ours ms | <ref> ms | <ref>/ours (> 1: we are faster). */
static inline void bench_print(const bench_table *t) {
    const char *rn = t->ref_name ? t->ref_name : "torch";
    int wo = 2, ws = 5, cpu = 0;
    for (int i = 0; i < t->n; i++) {
        int lo = (int)strlen(t->rows[i].op), ls = (int)strlen(t->rows[i].shape);
        wo = lo > wo ? lo : wo, ws = ls > ws ? ls : ws;
        cpu |= t->rows[i].ours_cpu >= 0;
    }
    char h_ms[32], h_ratio[32], h_cpu[32];
    snprintf(h_ms, sizeof h_ms, "%s ms", rn), snprintf(h_ratio, sizeof h_ratio, "%s/ours", rn);
    snprintf(h_cpu, sizeof h_cpu, "%s cpu ms", rn);
    printf("%-*s | %-*s | %10s | %10s | %10s", wo, "op", ws, "shape", "ours ms", h_ms, h_ratio);
    if (cpu) printf(" || %12s | %12s", "ours cpu ms", h_cpu);
    printf("\n");
    for (int i = 0; i < t->n; i++) {
        const bench_row *r = &t->rows[i];
        char ref[32] = "-", ratio[32] = "-", oc[32] = "-", rc[32] = "-";
        if (r->ref > 0) snprintf(ref, sizeof ref, "%.3f", r->ref), snprintf(ratio, sizeof ratio, "%.2f", r->ref / r->ours);
        if (r->ours_cpu >= 0) snprintf(oc, sizeof oc, "%.1f", r->ours_cpu);
        if (r->ref_cpu >= 0) snprintf(rc, sizeof rc, "%.1f", r->ref_cpu);
        printf("%-*s | %-*s | %10.3f | %10s | %10s", wo, r->op, ws, r->shape, r->ours, ref, ratio);
        if (cpu) printf(" || %12s | %12s", oc, rc);
        printf("\n");
    }
    fflush(stdout);
}

/* A context-side copy of host data. */
static inline void *bench_put(const void *host, size_t bytes) {
    void *d = rhd_buf_alloc(bench.ctx, bytes);
    rhd_buf_upload(bench.ctx, d, host, bytes);
    return d;
}
#endif
