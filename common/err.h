/* common/err.h: error and exit conventions shared by every tool and library file.
 *
 * Message shape (git/jq): "<prog>: error: <file or option>: <found>, expected <expected>".
 * Exit codes: 0 ok, 1 runtime error (rhd_die; out of memory: rhd_oom_at), 2 usage error
 * (rhd_usage_error), 3 internal invariant or CUDA/cuBLAS/cuDNN failure (rhd_fatal, RHD_ASSERT,
 * CUDA_CHECK...).
 *
 * Library code (formats/, common/, kernels/) never exits on bad input: it fills an rhd_err and
 * returns -1 or NULL; only tools and the check macros exit. RHD_ASSERT is always on (not
 * compiled out by NDEBUG) and is only for internal invariants, never for input validation. */
#ifndef RHD_ERR_H
#define RHD_ERR_H
#include <stddef.h>
#include <stdarg.h>

enum { RHD_EXIT_OK = 0, RHD_EXIT_RUNTIME = 1, RHD_EXIT_USAGE = 2, RHD_EXIT_INTERNAL = 3 };

/* An error buffer that library functions fill before returning -1/NULL. */
typedef struct rhd_err {
    char msg[1024];
} rhd_err;

#if defined(__GNUC__)
#define RHD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define RHD_NORETURN __attribute__((noreturn))
#else
#define RHD_PRINTF(a, b)
#define RHD_NORETURN
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Set the program name used as the prefix of every message (call first thing in main). */
void rhd_set_prog(const char *argv0);
const char *rhd_prog(void);

/* Fill e (if non-NULL) with a formatted message and return -1, so that library code can write
 * `return rhd_errf(e, "%s: truncated header", path);`. */
int rhd_errf(rhd_err *e, const char *fmt, ...) RHD_PRINTF(2, 3);
/* Prepend "prefix: " to an existing message (adds context on the way up). Returns -1. */
int rhd_err_prefix(rhd_err *e, const char *fmt, ...) RHD_PRINTF(2, 3);

/* "<prog>: error: ..." then exit 1 (runtime). Temp files registered with common/fs are removed. */
RHD_NORETURN void rhd_die(const char *fmt, ...) RHD_PRINTF(1, 2);
/* Print e->msg as a runtime error and exit 1. */
RHD_NORETURN void rhd_die_err(const rhd_err *e);
/* "<prog>: error: ..." plus "try '<prog> --help'" then exit 2 (usage). */
RHD_NORETURN void rhd_usage_error(const char *fmt, ...) RHD_PRINTF(1, 2);
/* "<prog>: fatal: <msg> at file:line" then exit 3 (internal invariant, CUDA failure). */
RHD_NORETURN void rhd_fatal_at(const char *file, int line, const char *fmt, ...) RHD_PRINTF(3, 4);
/* "<prog>: error: out of memory: <bytes> (<GiB>) of <what> could not be allocated (at file:line) ..."
 * then exit 1: a size the machine cannot hold is a runtime error, not an internal one. */
RHD_NORETURN void rhd_oom_at(const char *file, int line, size_t bytes, const char *what);
/* "line L, column C" of position `at` in text (a parser's error pointer, e.g. cJSON_GetErrorPtr());
 * "the end" when at is NULL or outside [text, text + n]. */
void rhd_text_where(const char *text, size_t n, const char *at, char *buf, size_t bn);
/* "<prog>: warning: ..." (not suppressed by -q). */
void rhd_warn(const char *fmt, ...) RHD_PRINTF(1, 2);

/* Allocation that dies with the size and the call site on failure. */
void *rhd_malloc_at(size_t n, const char *file, int line);
void *rhd_calloc_at(size_t n, size_t sz, const char *file, int line);
void *rhd_realloc_at(void *p, size_t n, const char *file, int line);
char *rhd_strdup_at(const char *s, const char *file, int line);
#define rhd_xmalloc(n) rhd_malloc_at((n), __FILE__, __LINE__)
#define rhd_xcalloc(n, sz) rhd_calloc_at((n), (sz), __FILE__, __LINE__)
#define rhd_xrealloc(p, n) rhd_realloc_at((p), (n), __FILE__, __LINE__)
#define rhd_xstrdup(s) rhd_strdup_at((s), __FILE__, __LINE__)

/* Flush stdout and exit 1 with a message if writing it failed (jq). Returns 0 to use as
 * `return rhd_close_stdout();` at the end of main. */
int rhd_close_stdout(void);

#ifdef __cplusplus
}
#endif

/* Always-on invariant check. */
#define RHD_ASSERT(cond)                                                                        \
    do {                                                                                        \
        if (!(cond)) rhd_fatal_at(__FILE__, __LINE__, "assertion failed: %s", #cond);           \
    } while (0)

#endif
