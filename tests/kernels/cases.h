/* tests/kernels/cases.h: case directories and reference comparisons shared by the dense-op
 * tests (linear, conv2d, norm): each case is a scratch directory holding case.txt (the op's
 * parameters) and the input .npy files; their paths are collected in args_ and handed to one
 * run of the Python reference, which writes the outputs beside the inputs. */
#ifndef RHD_TEST_CASES_H
#define RHD_TEST_CASES_H
#include "refcheck.h"

static char args_[65536];

/* A fresh case directory holding case.txt; its path is appended to the reference arguments. */
static char *new_case(const char *tag, const char *fmt, ...) {
    char *dir = strdup(th_subdir(tag)), path[1200];
    snprintf(path, sizeof path, "%s/case.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) { perror(path); exit(1); }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
    strcat(args_, " "), strcat(args_, dir);
    return dir;
}

static float *nan_array(long n) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (long i = 0; i < n; i++) p[i] = NAN;
    return p;
}
static float *copy_of(const float *src, long n) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    memcpy(p, src, sizeof(float) * n);
    return p;
}

/* got against the reference file <dir>/<file>.npy, plus `preset` when the output accumulates */
static void check_ref(const char *what, const char *dir, const char *file, const float *got, const float *preset,
                      long n, double tol) {
    float *ref = th_load(dir, file, n);
    if (!ref) { th_ok(0, "%s: no reference output %s", what, file); return; }
    if (preset)
        for (long i = 0; i < n; i++) ref[i] += preset[i];
    th_close(what, got, ref, n, tol);
    free(ref);
}

#endif
