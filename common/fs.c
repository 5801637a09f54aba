/* common/fs.c: atomic writes (temp + fsync + rename), temp-file registry, small file helpers. */
#include "common/fs.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* A small registry of live temp paths; signal-safe removal uses unlink() only. */
#define RHD_MAX_TMP 64
static char *g_tmp[RHD_MAX_TMP];

static void reg_add(char *p) {
    for (int i = 0; i < RHD_MAX_TMP; i++)
        if (!g_tmp[i]) { g_tmp[i] = p; return; }
}
static void reg_del(const char *p) {
    for (int i = 0; i < RHD_MAX_TMP; i++)
        if (g_tmp[i] == p) { g_tmp[i] = NULL; return; }
}

void rhd_fs_cleanup(void) {
    for (int i = 0; i < RHD_MAX_TMP; i++)
        if (g_tmp[i]) { unlink(g_tmp[i]); g_tmp[i] = NULL; }
}

static void on_signal(int sig) {
    for (int i = 0; i < RHD_MAX_TMP; i++)
        if (g_tmp[i]) unlink(g_tmp[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}

void rhd_fs_install_signal_handlers(void) {
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
}

int rhd_atomic_open(rhd_atomic *a, const char *path, rhd_err *e) {
    memset(a, 0, sizeof *a);
    size_t n = strlen(path);
    if (n == 0) return rhd_errf(e, "empty output path");
    a->path = rhd_xstrdup(path);
    a->tmp = rhd_xmalloc(n + 5);
    memcpy(a->tmp, path, n);
    memcpy(a->tmp + n, ".tmp", 5);
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        int err = errno;
        rhd_errf(e, "%s: cannot create: %s", a->tmp, strerror(err));
        free(a->path); free(a->tmp);
        memset(a, 0, sizeof *a);
        return -1;
    }
    reg_add(a->tmp);
    return 0;
}

int rhd_atomic_commit(rhd_atomic *a, rhd_err *e) {
    if (!a->f) return rhd_errf(e, "%s: output not open", a->path ? a->path : "?");
    int bad = fflush(a->f) != 0 || ferror(a->f);
    if (!bad && fsync(fileno(a->f)) != 0 && errno != EINVAL && errno != EROFS) bad = 1;
    int err = errno;
    if (fclose(a->f) != 0) bad = 1, err = errno;
    a->f = NULL;
    if (!bad && rename(a->tmp, a->path) != 0) bad = 1, err = errno;
    if (bad) {
        rhd_errf(e, "%s: writing failed: %s", a->path, strerror(err));
        unlink(a->tmp);
    }
    reg_del(a->tmp);
    free(a->tmp); free(a->path);
    a->tmp = a->path = NULL;
    return bad ? -1 : 0;
}

void rhd_atomic_abort(rhd_atomic *a) {
    if (a->f) fclose(a->f);
    if (a->tmp) { unlink(a->tmp); reg_del(a->tmp); }
    free(a->tmp); free(a->path);
    memset(a, 0, sizeof *a);
}

int rhd_write_file_atomic(const char *path, const void *data, size_t n, rhd_err *e) {
    rhd_atomic a;
    if (rhd_atomic_open(&a, path, e)) return -1;
    if (n && fwrite(data, 1, n, a.f) != n) {
        int err = errno;
        rhd_atomic_abort(&a);
        return rhd_errf(e, "%s: writing failed: %s", path, strerror(err));
    }
    return rhd_atomic_commit(&a, e);
}

int rhd_read_file(const char *path, char **data, size_t *n, rhd_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return rhd_errf(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        return rhd_errf(e, "%s: is a directory, expected a file", path);
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = rhd_xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) buf = rhd_xrealloc(buf, cap *= 2);
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); return rhd_errf(e, "%s: read error", path); }
    buf[len] = 0;
    *data = buf;
    if (n) *n = len;
    return 0;
}

int rhd_mkdir_parents(const char *path, rhd_err *e) {
    char *p = rhd_xstrdup(path);
    char *slash = strrchr(p, '/');
    if (!slash) { free(p); return 0; }
    *slash = 0;
    for (char *q = p + 1; ; q++) {
        char c = *q;
        if (c == '/' || c == 0) {
            *q = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                int err = errno;
                rhd_errf(e, "%s: cannot create directory: %s", p, strerror(err));
                free(p);
                return -1;
            }
            *q = c;
            if (c == 0) break;
        }
    }
    free(p);
    return 0;
}

int rhd_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int rhd_file_newer(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) != 0) return 0;
    if (stat(b, &sb) != 0) return 1;
    if (sa.st_mtim.tv_sec != sb.st_mtim.tv_sec) return sa.st_mtim.tv_sec > sb.st_mtim.tv_sec;
    return sa.st_mtim.tv_nsec > sb.st_mtim.tv_nsec;
}

/* ------------------------------------------------------------------------------------------- */
/* outputs checked before the work                                                             */

char *rhd_path_normalise(const char *path) {
    size_t cap = strlen(path) + 4097;
    char *buf = rhd_xmalloc(cap), *out = rhd_xmalloc(cap);
    if (path[0] == '/') snprintf(buf, cap, "%s", path);
    else {
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
        snprintf(buf, cap, "%s/%s", cwd, path);
    }
    /* components, resolving "." and ".." lexically */
    size_t o = 0;
    char *save = NULL;
    for (char *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0) continue;
        if (strcmp(c, "..") == 0) {
            while (o > 0 && out[o - 1] != '/') o--;
            if (o > 0) o--;
            continue;
        }
        o += (size_t)snprintf(out + o, cap - o, "/%s", c);
    }
    if (o == 0) out[o++] = '/';
    out[o] = 0;
    free(buf);
    return out;
}

char *rhd_path_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = rhd_xmalloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

int rhd_same_file(const char *a, const char *b) {
    if (!a || !b || strcmp(a, "-") == 0 || strcmp(b, "-") == 0) return 0;
    struct stat sa, sb;
    int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
    if (ea && eb) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    if (ea != eb) return 0;
    char *na = rhd_path_normalise(a), *nb = rhd_path_normalise(b);
    int same = strcmp(na, nb) == 0;
    free(na), free(nb);
    return same;
}

int rhd_check_output_not_input(const char *opt, const char *out, const char *const *inputs, int n, rhd_err *e) {
    for (int i = 0; i < n; i++)
        if (inputs[i] && rhd_same_file(out, inputs[i]))
            return rhd_errf(e, "%s %s: the same file as the input %s, expected an output path that is not one of the "
                            "inputs (writing it would destroy the input)", opt, out, inputs[i]);
    return 0;
}

int rhd_check_output_writable(const char *opt, const char *out, rhd_err *e) {
    if (!out || strcmp(out, "-") == 0) return 0;
    struct stat sb;
    if (stat(out, &sb) == 0 && S_ISDIR(sb.st_mode)) return rhd_errf(e, "%s %s: is a directory, expected a file path", opt, out);
    if (stat(out, &sb) == 0 && !S_ISREG(sb.st_mode)) /* the temp file + rename would replace a device or a pipe */
        return rhd_errf(e, "%s %s: is not a regular file (a device, pipe or socket), expected a file path", opt, out);
    /* the nearest existing ancestor: the outputs' directories are created as needed */
    char *dir = rhd_xstrdup(out);
    for (;;) {
        char *slash = strrchr(dir, '/');
        if (!slash) { snprintf(dir, 2, "."); break; }
        if (slash == dir) { dir[1] = 0; break; }
        *slash = 0;
        if (stat(dir, &sb) == 0) break;
    }
    int rc = 0;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        rc = rhd_errf(e, "%s %s: %s is not a directory, expected a writable directory", opt, out, dir);
    } else {
        /* the honest test: create and remove a file there (root ignores permission bits, not read-only mounts) */
        size_t n = strlen(dir) + 32;
        char *probe = rhd_xmalloc(n);
        snprintf(probe, n, "%s/.rhd-probe-XXXXXX", dir);
        int fd = mkstemp(probe);
        if (fd < 0) rc = rhd_errf(e, "%s %s: cannot create a file in %s: %s", opt, out, dir, strerror(errno));
        else close(fd), unlink(probe);
        free(probe);
    }
    free(dir);
    return rc;
}

/* ------------------------------------------------------------------------------------------- */
/* one writer per directory                                                                    */

int rhd_lock_dir(const char *dir, int *fd, rhd_err *e) {
    *fd = -1;
    char *lock = rhd_path_join(dir, ".lock");
    if (rhd_mkdir_parents(lock, e)) { free(lock); return -1; }
    int f = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (f < 0) {
        int err = errno;
        rhd_errf(e, "%s: cannot create the lock file %s: %s", dir, lock, strerror(err));
        free(lock);
        return -1;
    }
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char buf[32] = {0};
        ssize_t got = pread(f, buf, sizeof buf - 1, 0);
        long long pid = 0;
        if (got > 0) buf[got] = 0, pid = strtoll(buf, NULL, 10);
        if (err == EWOULDBLOCK && pid > 0)
            rhd_errf(e, "%s: in use by another process (pid %lld, %s), expected one writer per directory: wait for it to "
                     "finish or stop it", dir, pid, lock);
        else if (err == EWOULDBLOCK)
            rhd_errf(e, "%s: in use by another process (%s), expected one writer per directory: wait for it to finish "
                     "or stop it", dir, lock);
        else
            rhd_errf(e, "%s: cannot lock %s: %s", dir, lock, strerror(err));
        close(f);
        free(lock);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%lld\n", (long long)getpid());
    if (ftruncate(f, 0) != 0 || pwrite(f, pid, (size_t)n, 0) != n) { /* the pid is informative only */ }
    free(lock);
    *fd = f;
    return 0;
}

void rhd_unlock_dir(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}
