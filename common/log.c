/* common/log.c: levels and the progress reporter; see log.h. */
#include "common/log.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int g_level = RHD_LOG_INFO;

void rhd_log_set_level(int level) { g_level = level; }
int rhd_log_level(void) { return g_level; }

static void vlog(const char *fmt, va_list ap) {
    fprintf(stderr, "%s: ", rhd_prog());
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void rhd_info(const char *fmt, ...) {
    if (g_level < RHD_LOG_INFO) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}

void rhd_verbose(const char *fmt, ...) {
    if (g_level < RHD_LOG_VERBOSE) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}

double rhd_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

void rhd_format_duration(double s, char *buf, int n) {
    if (s < 0 || s != s) s = 0;
    if (s < 60) snprintf(buf, n, "%.1fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)(s / 3600), ((int)s % 3600) / 60);
}

void rhd_progress_begin(rhd_progress *p, const char *label, const char *unit, int64_t total) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->unit = unit ? unit : "items";
    p->total = total;
    p->t0 = p->t_last = rhd_now();
    p->tty = isatty(2);
    p->active = g_level >= RHD_LOG_INFO;
    const char *iv = getenv("RHD_PROGRESS_INTERVAL");
    p->interval = iv ? atof(iv) : 10.0;
    if (p->interval <= 0) p->interval = 10.0;
}

static void draw(rhd_progress *p, int final) {
    double el = rhd_now() - p->t0;
    double rate = el > 0 ? p->done / el : 0;
    char eta[32] = "?", elapsed[32];
    rhd_format_duration(el, elapsed, sizeof elapsed);
    if (p->total > 0 && rate > 0) rhd_format_duration((p->total - p->done) / rate, eta, sizeof eta);
    if (p->tty) {
        int width = 30, fill = p->total > 0 ? (int)(width * (double)p->done / p->total) : 0;
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        if (p->total > 0)
            fprintf(stderr, "\r%s: %s [%s] %lld/%lld %s  %.3g %s/s  %s %s\033[K", rhd_prog(), p->label, bar,
                    (long long)p->done, (long long)p->total, p->unit, rate, p->unit,
                    final ? "in" : "ETA", final ? elapsed : eta);
        else
            fprintf(stderr, "\r%s: %s %lld %s  %.3g %s/s  %s\033[K", rhd_prog(), p->label,
                    (long long)p->done, p->unit, rate, p->unit, elapsed);
        if (final) fputc('\n', stderr);
    } else {
        if (p->total > 0)
            fprintf(stderr, "%s: %s %lld/%lld %s (%.1f%%), %.3g %s/s, %s %s\n", rhd_prog(), p->label,
                    (long long)p->done, (long long)p->total, p->unit, 100.0 * p->done / p->total, rate,
                    p->unit, final ? "took" : "ETA", final ? elapsed : eta);
        else
            fprintf(stderr, "%s: %s %lld %s, %.3g %s/s, %s\n", rhd_prog(), p->label, (long long)p->done,
                    p->unit, rate, p->unit, elapsed);
    }
    fflush(stderr);
}

void rhd_progress_update(rhd_progress *p, int64_t done) {
    p->done = done;
    if (!p->active) return;
    double t = rhd_now();
    if (t - p->t_last < (p->tty ? 0.1 : p->interval)) return;
    p->t_last = t;
    draw(p, 0);
}

void rhd_progress_end(rhd_progress *p) {
    if (!p->active) return;
    draw(p, 1);
    p->active = 0;
}
