/* common/err.c: message printing and exits; see err.h for the conventions. */
#include "common/err.h"
#include "common/fs.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

static char g_prog[64] = "rhd";

void rhd_set_prog(const char *argv0) {
    const char *s = argv0 ? strrchr(argv0, '/') : NULL;
    s = s ? s + 1 : (argv0 ? argv0 : "rhd");
    snprintf(g_prog, sizeof g_prog, "%s", s);
}

const char *rhd_prog(void) { return g_prog; }

int rhd_errf(rhd_err *e, const char *fmt, ...) {
    if (!e) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int rhd_err_prefix(rhd_err *e, const char *fmt, ...) {
    if (!e) return -1;
    char buf[sizeof e->msg * 2 + 2]; /* prefix (< sizeof msg) + ": " + the whole old message */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof e->msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if (n > (int)sizeof e->msg - 1) n = (int)sizeof e->msg - 1;
    buf[n] = ':';
    buf[n + 1] = ' ';
    memcpy(buf + n + 2, e->msg, sizeof e->msg);
    buf[sizeof e->msg - 1] = 0; /* truncate to the buffer */
    memcpy(e->msg, buf, sizeof e->msg);
    return -1;
}

static void vmsg(const char *sev, const char *fmt, va_list ap) {
    fflush(stdout);
    fprintf(stderr, "%s: %s: ", g_prog, sev);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void rhd_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmsg("error", fmt, ap);
    va_end(ap);
    rhd_fs_cleanup();
    exit(RHD_EXIT_RUNTIME);
}

void rhd_die_err(const rhd_err *e) { rhd_die("%s", e->msg); }

void rhd_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmsg("error", fmt, ap);
    va_end(ap);
    fprintf(stderr, "try '%s --help' for the options\n", g_prog);
    rhd_fs_cleanup();
    exit(RHD_EXIT_USAGE);
}

void rhd_fatal_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "%s: fatal: ", g_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " at %s:%d\n", file, line);
    rhd_fs_cleanup();
    exit(RHD_EXIT_INTERNAL);
}

void rhd_oom_at(const char *file, int line, size_t bytes, const char *what) {
    rhd_die("out of memory: %zu bytes (%.2f GiB) of %s could not be allocated (at %s:%d): the sizes asked for "
            "(resolutions, batch, threads) need more memory than this machine gives, expected smaller ones",
            bytes, (double)bytes / (1024.0 * 1024.0 * 1024.0), what, file, line);
}

void rhd_text_where(const char *text, size_t n, const char *at, char *buf, size_t bn) {
    if (!text || !at || at < text || at > text + n) {
        snprintf(buf, bn, "the end");
        return;
    }
    int line = 1, col = 1;
    for (const char *p = text; p < at; p++) {
        if (*p == '\n') line++, col = 1;
        else col++;
    }
    snprintf(buf, bn, "line %d, column %d", line, col);
}

void rhd_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmsg("warning", fmt, ap);
    va_end(ap);
}

void *rhd_malloc_at(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) rhd_oom_at(file, line, n, "host memory");
    return p;
}

void *rhd_calloc_at(size_t n, size_t sz, const char *file, int line) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) rhd_oom_at(file, line, n * sz, "host memory");
    return p;
}

void *rhd_realloc_at(void *q, size_t n, const char *file, int line) {
    void *p = realloc(q, n ? n : 1);
    if (!p) rhd_oom_at(file, line, n, "host memory");
    return p;
}

char *rhd_strdup_at(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = rhd_malloc_at(n, file, line);
    memcpy(p, s, n);
    return p;
}

int rhd_close_stdout(void) {
    if (fflush(stdout) != 0 || ferror(stdout)) {
        int err = errno;
        fprintf(stderr, "%s: error: writing standard output failed: %s\n", g_prog, strerror(err));
        rhd_fs_cleanup();
        exit(RHD_EXIT_RUNTIME);
    }
    return 0;
}
