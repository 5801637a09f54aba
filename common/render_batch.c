/* common/render_batch.c: rhd-render's batch mode, the list and the loop (common/render_batch.h). */
#include "common/render_batch.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/fit_run.h" /* rhd_crash_point, rhd_crash_before_write: the crash-test hook */
#include "common/fs.h"
#include "common/log.h"
#include "common/plan.h"

/* --- the list ---------------------------------------------------------------------------------- */

#define LIST_GRAMMAR "NAME TRIPLANE [DATA_DIR]"

/* A path of the list: absolute as it is, relative from the list's folder (dir, "" for the cwd). */
static char *list_path(const char *dir, const char *p) { return p[0] == '/' || !dir[0] ? rhd_xstrdup(p) : rhd_path_join(dir, p); }

/* Strip the comment and the surrounding blanks, then split on blanks: the field count (up to 4
 * kept in f[]). */
static int split_fields(char *line, char *f[4]) {
    for (char *c = line; *c; c++)
        if (*c == '#' && (c == line || c[-1] == ' ' || c[-1] == '\t')) {
            *c = 0;
            break;
        }
    int nf = 0;
    for (char *tok = strtok(line, " \t\r"); tok; tok = strtok(NULL, " \t\r")) {
        if (nf < 4) f[nf] = tok;
        nf++;
    }
    return nf;
}

static int parse_line(const char *path, int lineno, const char *dir, char *line, rhd_render_item *it, rhd_err *e) {
    char *f[4] = {NULL};
    char *copy = rhd_xstrdup(line);
    int nf = split_fields(line, f), rc = 0;
    size_t l = strlen(copy);
    while (l && (copy[l - 1] == '\r' || copy[l - 1] == ' ' || copy[l - 1] == '\t')) copy[--l] = 0;
    if (nf == 1 || nf > 3) {
        rc = rhd_errf(e, "%s:%d: '%s' has %d field%s, expected " LIST_GRAMMAR " (fields separated by blanks, no spaces in them)",
                      path, lineno, copy, nf, nf == 1 ? "" : "s");
    } else if (nf >= 2) {
        rhd_err ne = {0};
        if (rhd_avatar_name_check(f[0], &ne))
            rc = rhd_errf(e, "%s:%d: NAME '%s' is no folder name (%s); expected " LIST_GRAMMAR ", NAME the folder OUTROOT/NAME",
                          path, lineno, f[0], ne.msg);
        else {
            it->name = rhd_xstrdup(f[0]);
            it->triplane = list_path(dir, f[1]);
            it->data = nf == 3 ? list_path(dir, f[2]) : NULL;
            it->line = lineno;
        }
    }
    free(copy);
    return rc ? rc : nf;
}

int rhd_render_list_read(const char *path, rhd_render_item **items_out, int *n_out, rhd_err *e) {
    *items_out = NULL, *n_out = 0;
    char *text;
    size_t len;
    if (rhd_read_file(path, &text, &len, e)) return -1;
    if (memchr(text, 0, len)) {
        free(text);
        rhd_errf(e, "%s: a NUL byte, expected a text file of lines " LIST_GRAMMAR, path);
        return -2;
    }
    char *dir = rhd_xstrdup(path), *slash = strrchr(dir, '/');
    if (slash) slash[slash == dir] = 0; /* "a/b.txt" -> "a", "/b.txt" -> "/" */
    else dir[0] = 0;
    rhd_render_item *items = NULL;
    int n = 0, rc = 0;
    char *p = text;
    for (int lineno = 1; p && !rc; lineno++) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        char *line = p;
        p = nl ? nl + 1 : NULL;
        rhd_render_item it = {0};
        int nf = parse_line(path, lineno, dir, line, &it, e);
        if (nf < 0) rc = -2;
        if (nf <= 0) continue;
        for (int k = 0; k < n && !rc; k++)
            if (!strcmp(items[k].name, it.name))
                rc = -2, rhd_errf(e, "%s:%d: NAME '%s' is already on line %d, expected unique names (each is a folder OUTROOT/NAME)",
                                  path, lineno, it.name, items[k].line);
        items = rhd_xrealloc(items, sizeof(rhd_render_item) * (size_t)(n + 1));
        items[n++] = it;
    }
    free(text), free(dir);
    if (!rc && n == 0)
        rc = -2, rhd_errf(e, "%s: no items (only blank lines and comments), expected lines " LIST_GRAMMAR, path);
    if (rc) {
        rhd_render_list_free(items, n);
        return rc;
    }
    *items_out = items, *n_out = n;
    return 0;
}

void rhd_render_list_free(rhd_render_item *items, int n) {
    for (int i = 0; i < n; i++) free(items[i].name), free(items[i].triplane), free(items[i].data);
    free(items);
}

char *rhd_render_item_dir(const char *outroot, const rhd_render_item *it) { return rhd_path_join(outroot, it->name); }

/* --- the loop ---------------------------------------------------------------------------------- */

static void print_line(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    printf("%s\n", s);
    fflush(stdout);
    free(s);
}

static cJSON *line_new(const rhd_render_item *it, const char *status, const char *dir) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", it->name);
    cJSON_AddStringToObject(o, "status", status);
    cJSON_AddStringToObject(o, "output", dir);
    return o;
}

/* A number written as metrics.json writes it (common/metrics.c: the shorter of 15 or 17 digits
 * that reads back the same double; cJSON's own printing may drop the last bit), null when not
 * finite. */
static void add_num(cJSON *o, const char *k, double v) {
    if (!isfinite(v)) {
        cJSON_AddNullToObject(o, k);
        return;
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, sizeof buf, "%.17g", v);
    cJSON_AddRawToObject(o, k, buf);
}

static int is_done(const rhd_render_batch *b, const rhd_render_item *it, const char *done) {
    if (b->force || !rhd_file_newer(done, it->triplane)) return 0;
    for (int k = 0; k < b->ninputs; k++)
        if (b->inputs[k] && !rhd_file_newer(done, b->inputs[k])) return 0;
    return 1;
}

/* Render one item of this rank into dir: 0, or -1 with e (the item failed). */
static int run_item(const rhd_render_batch *b, const rhd_render_item *it, const char *dir, const char *done,
                    rhd_render_item_fn fn, void *user, rhd_err *e) {
    int fd = -1;
    if (rhd_lock_dir(dir, &fd, e)) return -1;
    if (unlink(done) && errno != ENOENT) { /* redone: not done until written again */
        rhd_unlock_dir(&fd);
        return rhd_errf(e, "%s: cannot remove it (%s), expected a writable output folder", done, strerror(errno));
    }
    rhd_render_result res = {0, 0, NAN, NAN, NAN};
    double t0 = rhd_now();
    int rc = fn(user, it, dir, &res, e);
    if (rc == 0) {
        cJSON *o = line_new(it, "ok", dir);
        cJSON_AddNumberToObject(o, "seconds", round((rhd_now() - t0) * 1000) / 1000);
        cJSON_AddNumberToObject(o, "frames", res.frames);
        if (res.count > 0) {
            cJSON *m = cJSON_AddObjectToObject(o, "mean");
            add_num(m, "psnr", res.psnr), add_num(m, "ssim", res.ssim);
            if (!isnan(res.lpips)) add_num(m, "lpips", res.lpips);
            cJSON_AddNumberToObject(o, "count", res.count);
        }
        char *s = cJSON_PrintUnformatted(o);
        size_t l = strlen(s);
        s[l] = '\n'; /* the line, as printed, is the marker's content (the NUL is overwritten: size l + 1) */
        rhd_crash_before_write(done);
        rc = rhd_write_file_atomic(done, s, l + 1, e);
        free(s);
        if (rc == 0) rhd_crash_point("wrote", done);
        if (rc == 0) print_line(o);
        cJSON_Delete(o);
    }
    rhd_unlock_dir(&fd);
    return rc;
}

int rhd_render_batch_run(const rhd_render_batch *b, const rhd_render_item *items, int n, rhd_render_item_fn fn,
                         void *user) {
    int mine = 0, nskip = 0, nfailed = 0;
    char *failed = NULL; /* the failed items' names, comma separated */
    for (int i = 0; i < n; i++) mine += rhd_shard_mine(&b->shard, i);
    if (b->shard.world > 1) rhd_info("rank %lld of %lld: %d of %d items", b->shard.rank, b->shard.world, mine, n);
    for (int i = 0, k = 0; i < n; i++) {
        if (!rhd_shard_mine(&b->shard, i)) continue;
        const rhd_render_item *it = &items[i];
        char *dir = rhd_render_item_dir(b->outroot, it), *done = rhd_path_join(dir, "done.json");
        k++;
        if (is_done(b, it, done)) {
            rhd_verbose("%s: done (%s newer than its inputs), skipped", it->name, done);
            cJSON *o = line_new(it, "skipped", dir);
            print_line(o);
            cJSON_Delete(o);
            nskip++;
        } else {
            rhd_info("item %d/%d: %s (%s)", k, mine, it->name, it->triplane);
            rhd_err e = {0};
            if (run_item(b, it, dir, done, fn, user, &e)) {
                fprintf(stderr, "%s: error: item %s (line %d): %s (going on with the next item; the batch exits 1)\n", rhd_prog(),
                        it->name, it->line, e.msg);
                cJSON *o = line_new(it, "failed", dir);
                cJSON_AddStringToObject(o, "error", e.msg);
                print_line(o);
                cJSON_Delete(o);
                size_t l = failed ? strlen(failed) : 0, kk = strlen(it->name);
                failed = rhd_xrealloc(failed, l + kk + 3);
                snprintf(failed + l, kk + 3, "%s%s", l ? ", " : "", it->name);
                nfailed++;
            }
        }
        free(dir), free(done);
    }
    if (nskip) rhd_info("%d item%s done already, skipped (--force to redo)", nskip, nskip > 1 ? "s" : "");
    if (nfailed) fprintf(stderr, "%s: error: %d of %d items of this rank failed: %s\n", rhd_prog(), nfailed, mine, failed);
    free(failed);
    return nfailed;
}
