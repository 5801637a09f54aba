/* common/log.h: log levels and the progress reporter (all on stderr).
 *
 * Levels: quiet (-q: errors and warnings only), info (default), verbose (-v).
 * Progress: on a TTY a bar redrawn at most 10 times a second with count, rate and ETA; otherwise
 * one line every RHD_PROGRESS_INTERVAL seconds (default 10) and a final line; nothing with -q. */
#ifndef RHD_LOG_H
#define RHD_LOG_H
#include <stdint.h>
#include "common/err.h"

enum { RHD_LOG_QUIET = 0, RHD_LOG_INFO = 1, RHD_LOG_VERBOSE = 2 };

typedef struct rhd_progress {
    const char *label;
    const char *unit;   /* "views", "steps" */
    int64_t total;      /* 0 if unknown */
    int64_t done;
    double t0, t_last;  /* seconds */
    int tty, active;
    double interval;    /* seconds between lines when not a TTY */
} rhd_progress;

#ifdef __cplusplus
extern "C" {
#endif
void rhd_log_set_level(int level);
int rhd_log_level(void);
void rhd_info(const char *fmt, ...) RHD_PRINTF(1, 2);
void rhd_verbose(const char *fmt, ...) RHD_PRINTF(1, 2);
double rhd_now(void); /* monotonic seconds */

void rhd_progress_begin(rhd_progress *p, const char *label, const char *unit, int64_t total);
void rhd_progress_update(rhd_progress *p, int64_t done); /* cheap to call every iteration */
void rhd_progress_end(rhd_progress *p);
/* Format seconds as "1h02m", "3m05s", "12.3s". */
void rhd_format_duration(double s, char *buf, int n);
#ifdef __cplusplus
}
#endif
#endif
