/* tests/nn_case.h: one harness for the block tests of common/models/nn.h (test_nn.c,
 * test_nn_blocks.c). A case registers one block in a parameter table, runs forward + backward
 * (training mode, dropout on) through an rhd_nn sized by a dry run, and is checked against
 *   - tests/ref/ref_nn.py (PyTorch, the same weights by state-dict name): y, the input gradients and
 *     every parameter gradient (normalised error, with a floor relative to the case's gradient scale
 *     for the analytically zero ones, spec §10.2-3: 1e-4 of the mean square);
 *   - central finite differences of sum(y * dy) on the CPU (inputs and some parameters);
 *   - itself: bit-identical on 1 and 4 CPU threads; with checkpointing (blocks that have it)
 *     bit-identical to the plain backward; CUDA against the CPU where a device exists.
 * Weights: conv/linear weights N(0, 1/fan_in), biases N(0, 0.01), norm weights 1 + N(0, 0.01),
 * norm biases N(0, 0.01); inputs N(0, 1): all from the printed seed. */
#ifndef RHD_TEST_NN_CASE_H
#define RHD_TEST_NN_CASE_H
#include <omp.h>
#include "refcheck.h"
#include "common/models/nn.h"
#include "formats/params_io.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"
#define NC_TOL 1e-8
#define NC_MAXIN 3

typedef struct nc_case nc_case;
struct nc_case {
    char name[96];   /* label */
    char block[16];  /* ref_nn.py block */
    char args[400];  /* its key=value arguments */
    void (*build)(nc_case *c, rhd_params *p);
    void (*fwd)(rhd_nn *r, nc_case *c, float *y, float *const *in);
    void (*bwd)(rhd_nn *r, nc_case *c, float *const *din, const float *dy);
    union {
        rhd_nn_conv conv;
        rhd_nn_groupnorm gn;
        rhd_nn_layernorm ln;
        rhd_nn_linear lin;
        rhd_nn_aware3d a3;
        rhd_nn_resblock rb;
        rhd_nn_attn at;
        rhd_nn_temb te;
    } b;
    rhd_nn_resblock_cfg rcfg;
    rhd_nn_attn_cfg acfg;
    int iv[8];       /* sizes the fwd/bwd functions read */
    float fv[2];
    int ckpt;        /* build with checkpointing */
    int can_ckpt;
    int no_fd;       /* 1 piecewise linear (ReLU, max): finite differences straddle kinks; 2 too curved */
    float fd_h;      /* the inputs' finite-difference step (0: 2e-2) */
    int nin;
    const char *in_name[NC_MAXIN];
    int in_ndim[NC_MAXIN], in_grad[NC_MAXIN];
    int64_t in_shape[NC_MAXIN][4];
    int y_ndim;
    int64_t y_shape[4];
    float dropout;   /* > 0: the first dropout of the pass has this p over y_drop elements */
    int64_t drop_shape[4];
    /* host data */
    float *params, *in[NC_MAXIN], *dy;
    int64_t ptotal;
};

static inline int64_t nc_numel(int ndim, const int64_t *s) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= s[i];
    return n;
}

static inline void nc_input(nc_case *c, const char *name, int grad, int ndim, int64_t a, int64_t b, int64_t d,
                            int64_t e) {
    int i = c->nin++;
    c->in_name[i] = name, c->in_grad[i] = grad, c->in_ndim[i] = ndim;
    int64_t s[4] = {a, b, d, e};
    memcpy(c->in_shape[i], s, sizeof s);
}

static inline void nc_output(nc_case *c, int ndim, int64_t a, int64_t b, int64_t d, int64_t e) {
    c->y_ndim = ndim;
    int64_t s[4] = {a, b, d, e};
    memcpy(c->y_shape, s, sizeof s);
}

static const uint64_t nc_stream = RHD_STREAM(RHD_STREAM_DROPOUT, 3);

/* Random host weights and inputs, from the printed seed. */
static inline void nc_prepare(nc_case *c) {
    rhd_params p;
    rhd_params_init(&p);
    c->build(c, &p);
    c->ptotal = p.total;
    c->params = calloc((size_t)(p.total ? p.total : 1), sizeof(float));
    for (int i = 0; i < p.n; i++) {
        const rhd_param_info *t = &p.info[i];
        const char *dot = strrchr(t->name, '.');
        int is_norm = strstr(t->name, "norm") || strstr(t->name, "in_layers.0") || strstr(t->name, "out_layers.0.") ||
                      (!strcmp(c->block, "gn") || !strcmp(c->block, "ln"));
        int weight = dot ? !strcmp(dot, ".weight") : !strcmp(t->name, "weight");
        float std = weight && !is_norm ? (float)(1.0 / sqrt((double)t->numel / t->shape[0])) : 0.1f;
        float *v = th_randn(t->numel, std);
        for (int64_t k = 0; k < t->numel; k++) c->params[t->offset + k] = v[k] + (weight && is_norm ? 1.0f : 0.0f);
        free(v);
    }
    rhd_params_free(&p);
    for (int i = 0; i < c->nin; i++) {
        int64_t n = nc_numel(c->in_ndim[i], c->in_shape[i]);
        if (!strcmp(c->in_name[i], "t")) c->in[i] = th_randu(n, 0.0f, 999.0f);
        else c->in[i] = th_randn(n, 1.0f);
    }
    c->dy = th_randn(nc_numel(c->y_ndim, c->y_shape), 1.0f);
}

/* A live run: the table, the run context and the device inputs (kept for finite differences). */
typedef struct nc_live {
    nc_case *c;
    rhd_ctx *ctx;
    rhd_params p;
    rhd_nn r;
    float *x[NC_MAXIN], *dy;
    float *y, *din[NC_MAXIN];
} nc_live;

typedef struct nc_result {
    float *y, *din[NC_MAXIN], *grad;
} nc_result;

static inline void nc_pass(rhd_nn *r, void *u) {
    nc_live *l = u;
    nc_case *c = l->c;
    l->y = rhd_nn_alloc(r, (size_t)nc_numel(c->y_ndim, c->y_shape));
    c->fwd(r, c, l->y, l->x);
    for (int i = 0; i < c->nin; i++) {
        l->din[i] = NULL;
        if (!c->in_grad[i]) continue;
        size_t n = (size_t)nc_numel(c->in_ndim[i], c->in_shape[i]);
        l->din[i] = rhd_nn_alloc(r, n);
        if (!r->dry) rhd_buf_zero(r->ctx, l->din[i], sizeof(float) * n);
    }
    c->bwd(r, c, l->din, l->dy);
}

static inline void nc_open(nc_live *l, rhd_ctx *ctx, nc_case *c, int ckpt) {
    memset(l, 0, sizeof *l);
    l->c = c, l->ctx = ctx;
    c->ckpt = ckpt;
    rhd_params_init(&l->p);
    c->build(c, &l->p);
    rhd_params_alloc(&l->p, ctx, 1, 0);
    RHD_ASSERT(l->p.total == c->ptotal);
    rhd_buf_upload(ctx, l->p.data, c->params, sizeof(float) * (size_t)c->ptotal);
    for (int i = 0; i < c->nin; i++) {
        size_t n = (size_t)nc_numel(c->in_ndim[i], c->in_shape[i]);
        l->x[i] = rhd_buf_alloc(ctx, sizeof(float) * n);
        rhd_buf_upload(ctx, l->x[i], c->in[i], sizeof(float) * n);
    }
    size_t ny = (size_t)nc_numel(c->y_ndim, c->y_shape);
    l->dy = rhd_buf_alloc(ctx, sizeof(float) * ny);
    rhd_buf_upload(ctx, l->dy, c->dy, sizeof(float) * ny);
    rhd_nn_init(&l->r, ctx, &l->p);
    l->r.seed = th_seed(), l->r.stream = nc_stream, l->r.train = 1;
    rhd_nn_plan(&l->r, nc_pass, l);
}

static inline void nc_close(nc_live *l) {
    for (int i = 0; i < l->c->nin; i++) rhd_buf_free(l->ctx, l->x[i]);
    rhd_buf_free(l->ctx, l->dy);
    rhd_nn_free(&l->r);
    rhd_params_free(&l->p);
}

/* One training pass (forward + backward from zeroed gradients); results copied to the host. */
static inline void nc_step(nc_live *l, nc_result *o) {
    nc_case *c = l->c;
    rhd_buf_zero(l->ctx, l->p.grad, sizeof(float) * (size_t)l->p.total);
    rhd_nn_begin(&l->r, 1);
    nc_pass(&l->r, l);
    RHD_ASSERT(l->r.ntape == 0);
    size_t ny = (size_t)nc_numel(c->y_ndim, c->y_shape);
    o->y = malloc(sizeof(float) * ny);
    rhd_buf_download(l->ctx, o->y, l->y, sizeof(float) * ny);
    for (int i = 0; i < c->nin; i++) {
        o->din[i] = NULL;
        if (!l->din[i]) continue;
        size_t n = (size_t)nc_numel(c->in_ndim[i], c->in_shape[i]);
        o->din[i] = malloc(sizeof(float) * n);
        rhd_buf_download(l->ctx, o->din[i], l->din[i], sizeof(float) * n);
    }
    o->grad = malloc(sizeof(float) * (size_t)(c->ptotal ? c->ptotal : 1));
    rhd_buf_download(l->ctx, o->grad, l->p.grad, sizeof(float) * (size_t)c->ptotal);
}

static inline void nc_run(rhd_ctx *ctx, nc_case *c, int ckpt, nc_result *o) {
    nc_live l;
    nc_open(&l, ctx, c, ckpt);
    nc_step(&l, o);
    nc_close(&l);
}

static inline void nc_result_free(const nc_case *c, nc_result *o) {
    free(o->y);
    for (int i = 0; i < c->nin; i++) free(o->din[i]);
    free(o->grad);
}

/* ---- comparisons ------------------------------------------------------------------------------ */

/* Every parameter gradient of got against ref (both host buffers laid out like the case's table):
 * per tensor se / (sr + 1e-4 n ms), ms = mean square of all reference gradients of the case. */
static inline int nc_close_grads(const char *what, nc_case *c, const float *got, const float *const *ref_t,
                                 double tol) {
    rhd_params p;
    rhd_params_init(&p);
    c->build(c, &p);
    double ssum = 0, nsum = 0;
    for (int i = 0; i < p.n; i++)
        for (int64_t k = 0; ref_t[i] && k < p.info[i].numel; k++) ssum += (double)ref_t[i][k] * ref_t[i][k], nsum++;
    double ms = nsum ? ssum / nsum : 0, worst = 0;
    int wi = -1, missing = 0;
    for (int i = 0; i < p.n; i++) {
        const rhd_param_info *t = &p.info[i];
        if (!ref_t[i]) { missing++; th_diag("  %s: no reference gradient for '%s'", what, t->name); continue; }
        double se = 0, sr = 0;
        for (int64_t k = 0; k < t->numel; k++) {
            double d = (double)got[t->offset + k] - ref_t[i][k];
            se += d * d, sr += (double)ref_t[i][k] * ref_t[i][k];
        }
        double e = se / (sr + 1e-4 * t->numel * ms + 1e-300);
        if (!(e <= worst)) worst = e, wi = i;
    }
    int ok = th_ok(!missing && worst <= tol, "%s: %d parameter gradients, worst nmse %.3e (%s) tol %.0e", what, p.n,
                   worst, wi >= 0 ? p.info[wi].name : "-", tol);
    rhd_params_free(&p);
    return ok;
}

/* Same bits: y, the input gradients and every parameter gradient. */
static inline int nc_same(const char *what, nc_case *c, const nc_result *a, const nc_result *b) {
    int64_t bad = 0, n = nc_numel(c->y_ndim, c->y_shape);
    bad += memcmp(a->y, b->y, sizeof(float) * (size_t)n) != 0;
    for (int i = 0; i < c->nin; i++)
        if (a->din[i]) bad += memcmp(a->din[i], b->din[i], sizeof(float) * (size_t)nc_numel(c->in_ndim[i], c->in_shape[i])) != 0;
    bad += memcmp(a->grad, b->grad, sizeof(float) * (size_t)c->ptotal) != 0;
    return th_ok(bad == 0, "%s %s: output, input and parameter gradients bit-identical (%lld arrays differ)", c->name,
                 what, (long long)bad);
}

/* ---- the PyTorch reference, all cases in one process ------------------------------------------ */

static inline void nc_write_ref_inputs(nc_case *c, const char *dir) {
    rhd_params p;
    rhd_params_init(&p);
    c->build(c, &p);
    if (p.n) {
        rhd_st_writer w;
        rhd_st_writer_init(&w);
        for (int i = 0; i < p.n; i++)
            rhd_st_add_f32(&w, p.info[i].name, RHD_F32, p.info[i].ndim, p.info[i].shape, c->params + p.info[i].offset);
        char path[1200];
        snprintf(path, sizeof path, "%s/params.safetensors", dir);
        rhd_err e;
        if (rhd_st_write(&w, path, &e)) fprintf(stderr, "%s\n", e.msg), exit(1);
        rhd_st_writer_free(&w);
    }
    rhd_params_free(&p);
    for (int i = 0; i < c->nin; i++) th_save(dir, c->in_name[i], c->in[i], c->in_ndim[i], c->in_shape[i]);
    th_save(dir, "dy", c->dy, c->y_ndim, c->y_shape);
    if (c->dropout > 0) { /* the keep mask by its definition (kernels/dropout.h), for the reference */
        int64_t n = nc_numel(4, c->drop_shape);
        float *m = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) m[i] = rhd_rng_uniform(th_seed(), nc_stream, (uint64_t)i) >= c->dropout;
        th_save(dir, "mask", m, 4, c->drop_shape);
        free(m);
    }
}

/* Compare a CPU result with the reference's files in dir. */
static inline void nc_check_ref(nc_case *c, const char *dir, const nc_result *o) {
    char what[200];
    int64_t ny = nc_numel(c->y_ndim, c->y_shape);
    float *ry = th_load(dir, "y", ny);
    snprintf(what, sizeof what, "%s forward vs PyTorch", c->name);
    th_close(what, o->y, ry ? ry : o->y, ry ? ny : 0, NC_TOL);
    if (!ry) th_ok(0, "%s: no reference output", c->name);
    free(ry);
    for (int i = 0; i < c->nin; i++) {
        if (!c->in_grad[i]) continue;
        const char *gname = !strcmp(c->in_name[i], "x") ? "dx" : !strcmp(c->in_name[i], "emb") ? "demb" : "denc";
        int64_t n = nc_numel(c->in_ndim[i], c->in_shape[i]);
        float *r = th_load(dir, gname, n);
        snprintf(what, sizeof what, "%s %s vs PyTorch", c->name, gname);
        if (r) th_close(what, o->din[i], r, n, NC_TOL);
        else th_ok(0, "%s: no reference", what);
        free(r);
    }
    if (!c->ptotal) return;
    rhd_params p;
    rhd_params_init(&p);
    c->build(c, &p);
    char path[1200];
    snprintf(path, sizeof path, "%s/grads.safetensors", dir);
    rhd_st *st = NULL;
    rhd_err e;
    const float **ref = calloc((size_t)p.n, sizeof *ref);
    if (rhd_st_open(path, &st, &e)) th_diag("%s", e.msg);
    for (int i = 0; st && i < p.n; i++) {
        const rhd_st_tensor *t = rhd_st_find(st, p.info[i].name);
        if (!t || t->numel != p.info[i].numel) continue;
        float *v = malloc(sizeof(float) * (size_t)t->numel);
        rhd_st_to_f32(t, v);
        ref[i] = v;
    }
    snprintf(what, sizeof what, "%s parameter gradients vs PyTorch", c->name);
    nc_close_grads(what, c, o->grad, ref, NC_TOL);
    for (int i = 0; i < p.n; i++) free((void *)ref[i]);
    free(ref);
    if (st) rhd_st_close(st);
    rhd_params_free(&p);
}

/* ---- finite differences ----------------------------------------------------------------------- */

typedef struct nc_fd {
    nc_live *l;
    float *y_host;
} nc_fd;

static inline double nc_fd_loss(void *u) {
    nc_fd *f = u;
    nc_live *l = f->l;
    nc_case *c = l->c;
    rhd_nn_begin(&l->r, 1);
    size_t at = rhd_nn_mark(&l->r);
    float *y = rhd_nn_alloc(&l->r, (size_t)nc_numel(c->y_ndim, c->y_shape));
    c->fwd(&l->r, c, y, l->x);
    double s = 0;
    for (int64_t i = 0; i < nc_numel(c->y_ndim, c->y_shape); i++) s += (double)y[i] * c->dy[i];
    rhd_nn_release(&l->r, at);
    l->r.ntape = 0;
    return s;
}

/* Finite differences on the CPU: every differentiable input and up to `np` parameter tensors. */
static inline void nc_check_fd(rhd_ctx *cpu, nc_case *c, int np) {
    if (c->no_fd) {
        th_diag("%s: no finite differences (%s; checked against PyTorch)", c->name,
                c->no_fd == 2 ? "ill-conditioned: a GroupNorm over 4 values" : "piecewise linear");
        return;
    }
    nc_live l;
    nc_result o;
    nc_open(&l, cpu, c, 0);
    nc_step(&l, &o);
    nc_fd f = {&l, NULL};
    char what[200];
    for (int i = 0; i < c->nin; i++) {
        if (!c->in_grad[i]) continue;
        snprintf(what, sizeof what, "%s d%s", c->name, c->in_name[i]);
        th_fd_check(what, nc_fd_loss, &f, l.x[i], o.din[i], nc_numel(c->in_ndim[i], c->in_shape[i]), 12,
                    c->fd_h > 0 ? c->fd_h : 2e-2, 2e-2,
                    1e-2);
    }
    int m = np < l.p.n ? np : l.p.n;
    for (int k = 0; k < m; k++) {
        int i = (int)((long)k * (l.p.n - 1) / (m > 1 ? m - 1 : 1));
        const rhd_param_info *t = &l.p.info[i];
        snprintf(what, sizeof what, "%s d[%s]", c->name, t->name);
        /* two steps: 1e-2 loses to curvature where a GroupNorm over few values bends fast
         * (RHD_TEST_SEED=2115785078), 3e-3 to float32 rounding elsewhere (seed 4); a wrong
         * gradient fails both. The better of the two is the verdict. */
        float *px = l.p.data + t->offset, *pg = o.grad + t->offset;
        long i1, i2;
        double a1, n1, a2, n2;
        double w1 = th_fd_worst(nc_fd_loss, &f, px, pg, t->numel, 8, 1e-2, 2e-2, &i1, &a1, &n1);
        double w2 = th_fd_worst(nc_fd_loss, &f, px, pg, t->numel, 8, 3e-3, 2e-2, &i2, &a2, &n2);
        th_ok(fmin(w1, w2) <= 2e-2,
              "%s: finite differences at 8 points, worst rel err %.2e with step 1e-2 (at %ld: analytic %.6g numeric %.6g), "
              "%.2e with 3e-3 (at %ld: %.6g vs %.6g) tol 2e-02 for the better", what, w1, i1, a1, n1, w2, i2, a2, n2);
    }
    nc_result_free(c, &o);
    nc_close(&l);
}

/* ---- everything for a list of cases ----------------------------------------------------------- */

static inline void nc_check_all(rhd_ctx *cpu, rhd_ctx *gpu, nc_case *cs, int n, const char *tag) {
    nc_result *res = calloc((size_t)n, sizeof *res);
    char jobs[1200];
    snprintf(jobs, sizeof jobs, "%s/%s-jobs.txt", th_tmpdir(), tag);
    FILE *jf = fopen(jobs, "w");
    if (!jf) perror(jobs), exit(1);
    for (int k = 0; k < n; k++) {
        nc_case *c = &cs[k];
        nc_prepare(c);
        char sub[64];
        snprintf(sub, sizeof sub, "%s-%d", tag, k);
        const char *dir = th_subdir(sub);
        nc_write_ref_inputs(c, dir);
        fprintf(jf, "%s %s %s\n", c->block, dir, c->args);
        nc_run(cpu, c, 0, &res[k]);
    }
    fclose(jf);
    int rc = th_ref("ref_nn.py", "jobs %s", jobs);
    th_ok(rc == 0, "ref_nn.py ran %d cases", n);
    for (int k = 0; k < n; k++) {
        nc_case *c = &cs[k];
        char sub[64];
        snprintf(sub, sizeof sub, "%s-%d", tag, k);
        char dir[1200];
        snprintf(dir, sizeof dir, "%s/%s", th_tmpdir(), sub);
        nc_check_ref(c, dir, &res[k]);
        nc_check_fd(cpu, c, 3);
        nc_result t1, t4;
        omp_set_num_threads(1);
        nc_run(cpu, c, 0, &t1);
        omp_set_num_threads(4);
        nc_run(cpu, c, 0, &t4);
        omp_set_num_threads(omp_get_num_procs());
        nc_same("CPU on 1 and 4 threads", c, &t1, &t4);
        nc_same("CPU on 1 thread vs default", c, &t1, &res[k]);
        nc_result_free(c, &t1);
        nc_result_free(c, &t4);
        if (c->can_ckpt) {
            nc_result ck;
            nc_run(cpu, c, 1, &ck);
            nc_same("checkpointed vs plain backward", c, &ck, &res[k]);
            nc_result_free(c, &ck);
        }
        if (gpu) {
            nc_result g;
            nc_run(gpu, c, 0, &g);
            char what[200];
            snprintf(what, sizeof what, "%s cuda~cpu y", c->name);
            th_close(what, g.y, res[k].y, nc_numel(c->y_ndim, c->y_shape), NC_TOL);
            for (int i = 0; i < c->nin; i++)
                if (g.din[i]) {
                    snprintf(what, sizeof what, "%s cuda~cpu d%s", c->name, c->in_name[i]);
                    th_close(what, g.din[i], res[k].din[i], nc_numel(c->in_ndim[i], c->in_shape[i]), NC_TOL);
                }
            snprintf(what, sizeof what, "%s cuda~cpu parameter gradients", c->name);
            th_close(what, g.grad, res[k].grad, c->ptotal, NC_TOL);
            if (c->can_ckpt) {
                nc_result gk;
                nc_run(gpu, c, 1, &gk);
                nc_same("cuda checkpointed vs plain backward", c, &gk, &g);
                nc_result_free(c, &gk);
            }
            nc_result_free(c, &g);
        } else {
            th_skip("%s cuda~cpu: no CUDA device", c->name);
        }
        nc_result_free(c, &res[k]);
        free(c->params), free(c->dy);
        for (int i = 0; i < c->nin; i++) free(c->in[i]);
    }
    free(res);
}
#endif
