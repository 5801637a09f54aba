/* tests/kernels/refbatch.h: batch the PyTorch reference runs of one test program.
 *
 * Starting Python with torch costs ~2 s, so a test queues its cases and runs the reference once:
 *   const char *dir = rb_job("core", "scale=%g", s);   new case: fresh dir + a job line
 *   th_save(dir, "q", ...);                            inputs for the reference
 *   rb_expect(dir, "y", ours, n, 1e-9, "attention y cpu~torch %s", shp);   copy of our result
 *   ...
 *   rb_run("ref_attn.py");   runs "<script> jobs <file>" once, then compares every expectation
 * The script reads one job per line: "<op> <dir> key=value ...". A tolerance below zero asks for
 * an absolute check max|ours - ref| <= -tol (for gradients that are zero in exact arithmetic or
 * tiny next to their rounding noise, where the normalised error is meaningless). */
#ifndef RHD_TEST_REFBATCH_H
#define RHD_TEST_REFBATCH_H
#include "refcheck.h"

typedef struct {
    char label[200];
    char dir[512];
    char out[32];
    float *ours;
    long n;
    double tol;
} rb_cmp;

static rb_cmp *rb_cmps_;
static int rb_ncmp_, rb_njob_;
static char *rb_jobs_;
static size_t rb_jobs_len_;

static inline const char *rb_job(const char *op, const char *fmt, ...) {
    static char dir[1024];
    char name[64], args[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(name, sizeof name, "job%03d_%s", rb_njob_++, op);
    snprintf(dir, sizeof dir, "%s", th_subdir(name));
    size_t add = strlen(op) + strlen(dir) + strlen(args) + 4;
    rb_jobs_ = realloc(rb_jobs_, rb_jobs_len_ + add + 1);
    rb_jobs_len_ += (size_t)snprintf(rb_jobs_ + rb_jobs_len_, add + 1, "%s %s %s\n", op, dir, args);
    return dir;
}

static inline void rb_expect(const char *dir, const char *out, const float *ours, long n, double tol,
                             const char *fmt, ...) {
    rb_cmps_ = realloc(rb_cmps_, sizeof(rb_cmp) * (rb_ncmp_ + 1));
    rb_cmp *c = &rb_cmps_[rb_ncmp_++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->label, sizeof c->label, fmt, ap);
    va_end(ap);
    snprintf(c->dir, sizeof c->dir, "%.500s", dir);
    snprintf(c->out, sizeof c->out, "%.30s", out);
    c->ours = malloc(sizeof(float) * (n ? n : 1));
    memcpy(c->ours, ours, sizeof(float) * n);
    c->n = n;
    c->tol = tol;
}

static inline void rb_run(const char *script) {
    char path[1024];
    snprintf(path, sizeof path, "%s/jobs.txt", th_tmpdir());
    FILE *f = fopen(path, "w");
    if (!f || fwrite(rb_jobs_ ? rb_jobs_ : "", 1, rb_jobs_len_, f) != rb_jobs_len_ || fclose(f)) {
        perror(path);
        exit(1);
    }
    int rc = th_ref(script, "jobs %s", path);
    for (int i = 0; i < rb_ncmp_; i++) {
        rb_cmp *c = &rb_cmps_[i];
        float *r = rc == 0 ? th_load(c->dir, c->out, c->n) : NULL;
        if (!r) th_ok(0, "%s: no reference output", c->label);
        else if (c->tol >= 0) th_close(c->label, c->ours, r, c->n, c->tol);
        else {
            double m = 0, mr = 0;
            for (long j = 0; j < c->n; j++) {
                double dd = fabs((double)c->ours[j] - r[j]);
                m = dd > m || dd != dd ? dd : m;
                mr = fabs(r[j]) > mr ? fabs(r[j]) : mr;
            }
            th_ok(m <= -c->tol, "%s: n=%ld max_abs=%.3e (reference max %.3e; max-abs check) tol=%.1e", c->label,
                  c->n, m, mr, -c->tol);
        }
        free(r);
        free(c->ours);
    }
    free(rb_cmps_), free(rb_jobs_);
    rb_cmps_ = NULL, rb_jobs_ = NULL, rb_ncmp_ = 0, rb_jobs_len_ = 0;
}
#endif
