/* common/plan_avatars.c: the avatar lists a plan is made from: a list file (one name or path a
 * line), a dataset folder, a comma-separated list. Declared in plan.h. */
#include "common/plan.h"
#include "common/fs.h"
#include "common/cli.h"
#include "formats/dataset.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void rhd_avatars_free(char **names, int n) {
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static void push(char ***v, int *n, int *cap, char *s) {
    if (*n == *cap) *v = rhd_xrealloc(*v, sizeof(char *) * (*cap = *cap ? 2 * *cap : 16));
    (*v)[(*n)++] = s;
}

int rhd_avatars_from_list(const char *path, char ***names_out, char ***paths_out, int *n_out, rhd_err *e) {
    *names_out = NULL;
    if (paths_out) *paths_out = NULL;
    *n_out = 0;
    char *text;
    size_t len;
    if (rhd_read_file(path, &text, &len, e)) return -1;
    char **names = NULL, **paths = NULL;
    int *lines = NULL;
    int n = 0, cap = 0, pcap = 0, rc = 0;
    char *p = text;
    for (int lineno = 1; p && !rc; lineno++) {
        char *nl = memchr(p, '\n', text + len - p);
        if (nl) *nl = 0;
        char *line = p;
        p = nl ? nl + 1 : NULL;
        /* a comment starts with '#' at the start of the line or after whitespace */
        for (char *c = line; *c; c++)
            if (*c == '#' && (c == line || c[-1] == ' ' || c[-1] == '\t')) {
                *c = 0;
                break;
            }
        while (*line == ' ' || *line == '\t') line++;
        size_t l = strlen(line);
        while (l && (line[l - 1] == ' ' || line[l - 1] == '\t' || line[l - 1] == '\r')) line[--l] = 0;
        if (!l) continue;
        char *full = rhd_xstrdup(line);
        while (l > 1 && line[l - 1] == '/') line[--l] = 0; /* "data/avatar_1/" names avatar_1 */
        char *slash = strrchr(line, '/');
        char *name = slash ? slash + 1 : line;
        rhd_err ne;
        if (rhd_avatar_name_check(name, &ne)) {
            rc = rhd_errf(e, "%s:%d: '%s' gives no avatar name (%s), expected a path such as data/avatar_100", path, lineno,
                          full, ne.msg);
            free(full);
            break;
        }
        int m = n;
        push(&paths, &m, &pcap, full);
        push(&names, &n, &cap, rhd_xstrdup(name));
        lines = rhd_xrealloc(lines, sizeof(int) * cap);
        lines[n - 1] = lineno;
    }
    free(text);
    int a, b;
    if (!rc && n == 0) rc = rhd_errf(e, "%s: no avatars (only blank lines and comments), expected one path per line", path);
    if (!rc && rhd_names_find_duplicate(names, n, &a, &b))
        rc = rhd_errf(e, "%s:%d: avatar '%s' is already on line %d, expected unique names", path, lines[b], names[b], lines[a]);
    free(lines);
    if (rc) {
        rhd_avatars_free(names, n);
        rhd_avatars_free(paths, n);
        return -1;
    }
    *names_out = names;
    if (paths_out) *paths_out = paths;
    else rhd_avatars_free(paths, n);
    *n_out = n;
    return 0;
}

int rhd_avatars_from_dir(const char *dir, char ***names_out, int *n_out, rhd_err *e) {
    return rhd_avatars_from_dir_opt(dir, 0, names_out, n_out, e);
}

int rhd_avatars_from_dir_opt(const char *dir, int skip_incomplete, char ***names_out, int *n_out, rhd_err *e) {
    *names_out = NULL;
    *n_out = 0;
    rhd_subject_list sl;
    if (rhd_subjects_scan_opt(&sl, dir, skip_incomplete, e)) return -1;
    char **names = rhd_xcalloc((size_t)sl.n, sizeof(char *));
    for (int i = 0; i < sl.n; i++) {
        rhd_err ne;
        if (rhd_avatar_name_check(sl.items[i].name, &ne)) {
            rhd_errf(e, "%s/%s: not usable as an avatar name (%s), expected a plain directory name", dir, sl.items[i].name, ne.msg);
            rhd_avatars_free(names, i);
            rhd_subject_list_free(&sl);
            return -1;
        }
        names[i] = rhd_xstrdup(sl.items[i].name);
    }
    *names_out = names;
    *n_out = sl.n;
    rhd_subject_list_free(&sl);
    return 0;
}

int rhd_avatars_from_csv(const char *csv, char ***names_out, int *n_out, rhd_err *e) {
    *names_out = NULL;
    *n_out = 0;
    char **names = NULL;
    int n = 0, cap = 0;
    const char *p = csv;
    for (int item = 0;; item++) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        while (l && (*p == ' ' || *p == '\t')) p++, l--;
        while (l && (p[l - 1] == ' ' || p[l - 1] == '\t')) l--;
        char *name = rhd_xmalloc(l + 1);
        memcpy(name, p, l);
        name[l] = 0;
        rhd_err ne;
        if (rhd_avatar_name_check(name, &ne)) {
            rhd_errf(e, "'%s': item %d: %s, expected names separated by commas (e.g. a,b,c)", csv, item, ne.msg);
            free(name);
            rhd_avatars_free(names, n);
            return -1;
        }
        push(&names, &n, &cap, name);
        if (!c) break;
        p = c + 1;
    }
    int a, b;
    if (rhd_names_find_duplicate(names, n, &a, &b)) {
        rhd_errf(e, "'%s': avatar '%s' is given twice (items %d and %d), expected unique names", csv, names[b], a, b);
        rhd_avatars_free(names, n);
        return -1;
    }
    *names_out = names;
    *n_out = n;
    return 0;
}
