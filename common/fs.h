/* common/fs.h: atomic file writes and small file helpers.
 *
 * Every output goes to "<path>.tmp" first; rhd_atomic_commit() flushes, fsyncs, closes and
 * renames it over <path>, so a killed run never leaves a half-written file that make would take
 * as done. Open temp files are registered: rhd_die/rhd_usage_error/rhd_fatal and SIGINT/SIGTERM
 * remove them (rhd_fs_cleanup), and rhd_atomic_abort() removes one explicitly. */
#ifndef RHD_FS_H
#define RHD_FS_H
#include <stdio.h>
#include <stddef.h>
#include "common/err.h"

typedef struct rhd_atomic {
    FILE *f;
    char *path; /* final path */
    char *tmp;  /* "<path>.tmp" */
} rhd_atomic;

#ifdef __cplusplus
extern "C" {
#endif
/* Open "<path>.tmp" for writing ("-" is not accepted here; tools handle stdout themselves). */
int rhd_atomic_open(rhd_atomic *a, const char *path, rhd_err *e);
/* fflush + fsync + fclose + rename; on failure the temp file is removed and -1 returned. */
int rhd_atomic_commit(rhd_atomic *a, rhd_err *e);
/* Close and remove the temp file. Safe to call on a committed or never-opened handle. */
void rhd_atomic_abort(rhd_atomic *a);
/* Write a whole buffer atomically to path. */
int rhd_write_file_atomic(const char *path, const void *data, size_t n, rhd_err *e);
/* Read a whole file into a malloc'd buffer (NUL-terminated for convenience). */
int rhd_read_file(const char *path, char **data, size_t *n, rhd_err *e);
/* Remove every registered temp file (called on error exits and signals). */
void rhd_fs_cleanup(void);
/* Install SIGINT/SIGTERM/SIGHUP handlers that remove temp files and re-raise. */
void rhd_fs_install_signal_handlers(void);
/* mkdir -p for the directory part of path (not the last component). */
int rhd_mkdir_parents(const char *path, rhd_err *e);
/* 1 if a exists and its mtime is strictly newer than b's (b missing counts as older). */
int rhd_file_newer(const char *a, const char *b);
int rhd_file_exists(const char *path);

/* --- outputs checked before the work (every tool, before it computes anything) --- */
/* The absolute form of path with ".", ".." and repeated '/' resolved lexically (malloc'd). */
char *rhd_path_normalise(const char *path);
/* "a/b" (malloc'd): the one path join of the suite. */
char *rhd_path_join(const char *a, const char *b);
/* 1 if a and b name the same file: the same device and inode when both exist, the same
 * normalised path when neither does; "-" (stdout) is never the same as anything. */
int rhd_same_file(const char *a, const char *b);
/* -1 with "<opt> <out>: the same file as the input <in>, expected ..." when out is one of
 * inputs[n] (NULL entries are skipped); tools report it as a usage error (exit 2). */
int rhd_check_output_not_input(const char *opt, const char *out, const char *const *inputs, int n, rhd_err *e);
/* -1 with a message when out cannot be written: it is a directory, its nearest existing ancestor
 * is not a directory, or a file cannot be created there (tried: a probe file is made and removed).
 * "-" and NULL pass. */
int rhd_check_output_writable(const char *opt, const char *out, rhd_err *e);

/* --- one writer per directory --- */
/* Create dir (and its parents) if needed and take an exclusive flock(2) on "<dir>/.lock", which
 * then holds this process's pid. *fd stays open (close-on-exec) until the process exits or
 * rhd_unlock_dir(); a kill releases the lock with it, so a stale .lock file is harmless. When
 * another process holds it: -1 with "<dir>: in use by another process (pid N, <dir>/.lock),
 * expected one writer per directory: wait for it to finish or stop it". */
int rhd_lock_dir(const char *dir, int *fd, rhd_err *e);
void rhd_unlock_dir(int *fd);
#ifdef __cplusplus
}
#endif
#endif
