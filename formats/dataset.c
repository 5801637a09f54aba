/* formats/dataset.c: RodinHD dataset layout, camera JSON, intrinsics, pose conversion, images.
 * Mirrors Renderer/nerf/provider.py (NeRFDataset: nerf_matrix_to_ngp, the intrinsics from the
 * first view's metadata, cv2 image loading and the white-background composite); spec/fitting.md
 * §1 and §12 items 1-2. See formats/dataset.md and formats/cameras.md. */
#include "formats/dataset.h"
#include "common/fs.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ORTHO_TOL 1e-3    /* max |R^T R - I| accepted for the rotation block */
#define LAST_ROW_TOL 1e-6 /* |last row - (0,0,0,1)| accepted */

void rhd_dataset_config_init(rhd_dataset_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->translation_divisor = 23.0;
    cfg->scale = 0.6;
    cfg->offset[0] = cfg->offset[1] = cfg->offset[2] = 0.0;
    cfg->fy_square_pixels = 0;
    cfg->bg[0] = cfg->bg[1] = cfg->bg[2] = 1.0f;
}

/* ------------------------------------------------------------------------------------------ */
/* camera JSON */

static const char *json_kind(const cJSON *j) {
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    return "invalid";
}

/* A finite number at `j`, named `field` in messages. */
static int json_number(const cJSON *j, const char *name, const char *field, double *out, rhd_err *e) {
    if (!j) return rhd_errf(e, "%s: %s is missing, expected a number", name, field);
    if (!cJSON_IsNumber(j)) return rhd_errf(e, "%s: %s is %s, expected a number", name, field, json_kind(j));
    if (!isfinite(j->valuedouble))
        return rhd_errf(e, "%s: %s is %s, expected a finite number", name, field,
                        isnan(j->valuedouble) ? "nan" : j->valuedouble > 0 ? "inf" : "-inf");
    *out = j->valuedouble;
    return 0;
}

static int json_positive(const cJSON *obj, const char *key, const char *name, double *out, rhd_err *e) {
    char field[64];
    snprintf(field, sizeof field, "cameras[0].%s", key);
    if (json_number(cJSON_GetObjectItemCaseSensitive(obj, key), name, field, out, e)) return -1;
    if (!(*out > 0)) return rhd_errf(e, "%s: %s is %.9g, expected a positive number (mm)", name, field, *out);
    return 0;
}

/* "line L column C near '...'" for a parse error at offset `at` of text[0..n). */
static void parse_error_place(const char *text, size_t n, size_t at, char *buf, size_t bn) {
    int line = 1, col = 1;
    if (at > n) at = n;
    for (size_t i = 0; i < at; i++) {
        if (text[i] == '\n') line++, col = 1;
        else col++;
    }
    char near[48];
    size_t k = 0;
    for (size_t i = at; i < n && k + 5 < sizeof near && i < at + 16; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c < 0x7f && c != '\'') near[k++] = (char)c;
        else k += (size_t)snprintf(near + k, sizeof near - k, "\\x%02x", c);
    }
    near[k < sizeof near ? k : sizeof near - 1] = 0;
    if (at >= n) snprintf(buf, bn, "line %d column %d (end of file)", line, col);
    else snprintf(buf, bn, "line %d column %d near '%s'", line, col, near);
}

static int check_transformation(const cJSON *t, const char *name, double M[4][4], rhd_err *e) {
    const char *f = "cameras[0].transformation";
    if (!t) return rhd_errf(e, "%s: %s is missing, expected a 4x4 array of numbers", name, f);
    if (!cJSON_IsArray(t)) return rhd_errf(e, "%s: %s is %s, expected a 4x4 array of numbers", name, f, json_kind(t));
    int rows = cJSON_GetArraySize(t);
    if (rows != 4) return rhd_errf(e, "%s: %s has %d rows, expected 4x4", name, f, rows);
    for (int i = 0; i < 4; i++) {
        const cJSON *row = cJSON_GetArrayItem(t, i);
        if (!cJSON_IsArray(row))
            return rhd_errf(e, "%s: %s[%d] is %s, expected a row of 4 numbers", name, f, i, json_kind(row));
        int cols = cJSON_GetArraySize(row);
        if (cols != 4) return rhd_errf(e, "%s: %s[%d] has %d entries, expected 4 (4x4)", name, f, i, cols);
        for (int k = 0; k < 4; k++) {
            char field[64];
            snprintf(field, sizeof field, "%s[%d][%d]", f, i, k);
            if (json_number(cJSON_GetArrayItem(row, k), name, field, &M[i][k], e)) return -1;
        }
    }
    double dev = fabs(M[3][0]) + fabs(M[3][1]) + fabs(M[3][2]) + fabs(M[3][3] - 1);
    if (dev > LAST_ROW_TOL)
        return rhd_errf(e, "%s: %s last row is [%.9g, %.9g, %.9g, %.9g], expected [0, 0, 0, 1]", name, f, M[3][0],
                        M[3][1], M[3][2], M[3][3]);
    double worst = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            double dot = 0;
            for (int k = 0; k < 3; k++) dot += M[k][a] * M[k][b];
            double d = fabs(dot - (a == b));
            if (d > worst) worst = d;
        }
    if (worst > ORTHO_TOL)
        return rhd_errf(e, "%s: %s rotation is not orthonormal: max |R^T R - I| = %.3g, expected <= %g", name, f,
                        worst, ORTHO_TOL);
    double det = M[0][0] * (M[1][1] * M[2][2] - M[1][2] * M[2][1]) - M[0][1] * (M[1][0] * M[2][2] - M[1][2] * M[2][0]) +
                 M[0][2] * (M[1][0] * M[2][1] - M[1][1] * M[2][0]);
    if (det < 0)
        return rhd_errf(e, "%s: %s rotation has determinant %.6f (a reflection), expected +1", name, f, det);
    return 0;
}

static int check_camera(const cJSON *root, const char *name, rhd_camera *cam, rhd_err *e) {
    if (!cJSON_IsObject(root))
        return rhd_errf(e, "%s: top level is %s, expected an object with a 'cameras' array", name, json_kind(root));
    const cJSON *cams = cJSON_GetObjectItemCaseSensitive(root, "cameras");
    if (!cams) return rhd_errf(e, "%s: no 'cameras' key, expected a 'cameras' array", name);
    if (!cJSON_IsArray(cams)) return rhd_errf(e, "%s: 'cameras' is %s, expected an array", name, json_kind(cams));
    const cJSON *c = cJSON_GetArrayItem(cams, 0);
    if (!c) return rhd_errf(e, "%s: 'cameras' is empty, expected at least one camera", name);
    if (!cJSON_IsObject(c)) return rhd_errf(e, "%s: cameras[0] is %s, expected an object", name, json_kind(c));

    const cJSON *res = cJSON_GetObjectItemCaseSensitive(c, "resolution");
    if (!res) return rhd_errf(e, "%s: cameras[0].resolution is missing, expected [W, H]", name);
    if (!cJSON_IsArray(res)) return rhd_errf(e, "%s: cameras[0].resolution is %s, expected [W, H]", name, json_kind(res));
    int nres = cJSON_GetArraySize(res);
    if (nres != 2) return rhd_errf(e, "%s: cameras[0].resolution has %d entries, expected [W, H]", name, nres);
    int wh[2];
    for (int i = 0; i < 2; i++) {
        char field[64];
        double v;
        snprintf(field, sizeof field, "cameras[0].resolution[%d]", i);
        if (json_number(cJSON_GetArrayItem(res, i), name, field, &v, e)) return -1;
        if (v != floor(v) || v < 1 || v > RHD_PNG_MAX_SIDE)
            return rhd_errf(e, "%s: %s is %.9g, expected an integer in 1..%d", name, field, v, RHD_PNG_MAX_SIDE);
        wh[i] = (int)v;
    }
    cam->width = wh[0];
    cam->height = wh[1];
    if (json_positive(c, "focal_length", name, &cam->focal_length, e)) return -1;
    if (json_positive(c, "sensor_width", name, &cam->sensor_width, e)) return -1;
    double f = cam->focal_length / cam->sensor_width * (cam->width > cam->height ? cam->width : cam->height);
    if (!isfinite(f) || f > 1e12 || f < 1e-12)
        return rhd_errf(e, "%s: cameras[0].focal_length / sensor_width = %.9g / %.9g gives a focal length of %.3g pixels, "
                        "expected 1e-12..1e12", name, cam->focal_length, cam->sensor_width, f);
    return check_transformation(cJSON_GetObjectItemCaseSensitive(c, "transformation"), name, cam->c2w, e);
}

int rhd_camera_parse(const char *text, size_t n, const char *name, rhd_camera *cam, rhd_err *e) {
    memset(cam, 0, sizeof *cam);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!root) {
        char place[128];
        parse_error_place(text, n, end ? (size_t)(end - text) : 0, place, sizeof place);
        return rhd_errf(e, "%s: not JSON: parse error at %s", name, place);
    }
    size_t at = end ? (size_t)(end - text) : n;
    while (at < n && isspace((unsigned char)text[at])) at++;
    if (at < n && !(text[at] == 0 && at + 1 == n)) {
        char place[128];
        parse_error_place(text, n, at, place, sizeof place);
        cJSON_Delete(root);
        return rhd_errf(e, "%s: not JSON: extra data after the top-level value at %s", name, place);
    }
    int rc = check_camera(root, name, cam, e);
    cJSON_Delete(root);
    if (rc) memset(cam, 0, sizeof *cam);
    return rc;
}

int rhd_camera_read(const char *path, rhd_camera *cam, rhd_err *e) {
    char *buf;
    size_t n;
    memset(cam, 0, sizeof *cam);
    if (rhd_read_file(path, &buf, &n, e)) return -1;
    int rc = rhd_camera_parse(buf, n, path, cam, e);
    free(buf);
    return rc;
}

void rhd_camera_intrinsics_from_camera(rhd_camera_intrinsics *K, const rhd_camera *cam, const rhd_dataset_config *cfg) {
    rhd_dataset_config def;
    if (!cfg) rhd_dataset_config_init(&def), cfg = &def;
    K->width = cam->width;
    K->height = cam->height;
    K->fx = cam->focal_length / cam->sensor_width * cam->width;
    K->fy = cfg->fy_square_pixels ? K->fx : cam->focal_length / cam->sensor_width * cam->height;
    K->cx = cam->width / 2.0;
    K->cy = cam->height / 2.0;
    K->fy_from_sensor_width = !cfg->fy_square_pixels;
}

void rhd_pose_convert(double P[4][4], const double M[4][4], const rhd_dataset_config *cfg) {
    rhd_dataset_config def;
    if (!cfg) rhd_dataset_config_init(&def), cfg = &def;
    double t[3];
    for (int i = 0; i < 3; i++) t[i] = M[i][3] / cfg->translation_divisor;
    /* new row r takes old row src[r]: new x = old y, new y = old z, new z = old x */
    static const int src[3] = {1, 2, 0};
    for (int r = 0; r < 3; r++) {
        const double *m = M[src[r]];
        P[r][0] = m[0];
        P[r][1] = -m[1];
        P[r][2] = -m[2];
        P[r][3] = cfg->scale * t[src[r]] + cfg->offset[r];
    }
    P[3][0] = P[3][1] = P[3][2] = 0.0;
    P[3][3] = 1.0;
}

/* ------------------------------------------------------------------------------------------ */
/* subjects */

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    while (a > 1 && dir[a - 1] == '/') a--;
    char *p = rhd_xmalloc(a + b + 2);
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

void rhd_subject_list_free(rhd_subject_list *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) free(l->items[i].name), free(l->items[i].dir);
    free(l->items);
    memset(l, 0, sizeof *l);
}

static void subject_add(rhd_subject_list *l, int *cap, char *name, char *dir) {
    if (l->n == *cap) l->items = rhd_xrealloc(l->items, sizeof(rhd_subject) * (size_t)(*cap = *cap ? *cap * 2 : 16));
    l->items[l->n].name = name;
    l->items[l->n].dir = dir;
    l->n++;
}

int rhd_subjects_read_list(rhd_subject_list *out, const char *list_path, const char *data_root, rhd_err *e) {
    memset(out, 0, sizeof *out);
    char *text, *root = NULL;
    size_t n;
    if (rhd_read_file(list_path, &text, &n, e)) return -1;
    if (!data_root) {
        const char *slash = strrchr(list_path, '/');
        root = slash ? strndup(list_path, (size_t)(slash - list_path) + (slash == list_path)) : rhd_xstrdup(".");
        RHD_ASSERT(root);
    } else {
        root = rhd_xstrdup(data_root);
    }
    int cap = 0, lineno = 0, *lines = NULL, rc = 0;
    char *next;
    for (char *line = text; line < text + n && rc == 0; line = next) {
        char *nl = memchr(line, '\n', (size_t)(text + n - line));
        next = nl ? nl + 1 : text + n;
        if (nl) *nl = 0;
        lineno++;
        char *s = line, *t = line + strlen(line);
        while (*s && isspace((unsigned char)*s)) s++;
        while (t > s && isspace((unsigned char)t[-1])) t--;
        *t = 0;
        if (!*s || *s == '#') continue;
        while (t > s + 1 && t[-1] == '/') *--t = 0;
        const char *base = strrchr(s, '/');
        base = base ? base + 1 : s;
        if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
            rc = rhd_errf(e, "%s:%d: '%s' does not name a subject directory, expected a path such as avatars/0001",
                          list_path, lineno, s);
            break;
        }
        char *dir = s[0] == '/' ? rhd_xstrdup(s) : join(root, s);
        if (!is_dir(dir)) {
            rc = rhd_errf(e, "%s:%d: subject '%s': %s is not a directory (data root %s)", list_path, lineno, s, dir, root);
            free(dir);
            break;
        }
        for (int i = 0; i < out->n; i++)
            if (strcmp(out->items[i].name, base) == 0) {
                rc = rhd_errf(e, "%s:%d: subject name '%s' is already used on line %d; names (last path components) must be unique",
                              list_path, lineno, base, lines[i]);
                break;
            }
        if (rc) { free(dir); break; }
        int old = cap;
        subject_add(out, &cap, rhd_xstrdup(base), dir);
        if (cap != old) lines = rhd_xrealloc(lines, sizeof(int) * (size_t)cap);
        lines[out->n - 1] = lineno;
    }
    if (rc == 0 && out->n == 0)
        rc = rhd_errf(e, "%s: no subjects (only blank or '#' lines), expected one subject path per line", list_path);
    free(lines);
    free(text);
    free(root);
    if (rc) rhd_subject_list_free(out);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int view_index(const char *name, const char *fmt);

int rhd_subjects_scan(rhd_subject_list *out, const char *data_root, rhd_err *e) {
    return rhd_subjects_scan_opt(out, data_root, 0, e);
}

/* 1 if dir holds a file named like a view's (metadata_%06d.json or img_proc_fg_%06d.png). */
static int has_view_files(const char *dir) {
    DIR *dh = opendir(dir);
    if (!dh) return 0;
    int found = 0;
    struct dirent *de;
    while (!found && (de = readdir(dh)))
        found = view_index(de->d_name, RHD_VIEW_META_FMT) >= 0 || view_index(de->d_name, RHD_VIEW_IMAGE_FMT) >= 0;
    closedir(dh);
    return found;
}

int rhd_subjects_scan_opt(rhd_subject_list *out, const char *data_root, int skip_incomplete, rhd_err *e) {
    memset(out, 0, sizeof *out);
    DIR *dh = opendir(data_root);
    if (!dh) return rhd_errf(e, "%s: cannot open directory: %s", data_root, strerror(errno));
    char **names = NULL, **bad = NULL;
    int cnt = 0, nbad = 0;
    struct dirent *de;
    while ((de = readdir(dh))) {
        if (de->d_name[0] == '.') continue; /* ".", ".." and hidden directories are not avatars */
        char *dir = join(data_root, de->d_name);
        char *meta = rhd_dataset_view_path(dir, RHD_VIEW_META_FMT, 0);
        if (is_dir(dir) && (rhd_file_exists(meta) || has_view_files(dir))) {
            int ok = rhd_file_exists(meta);
            char ***v = ok ? &names : &bad;
            int *k = ok ? &cnt : &nbad;
            *v = rhd_xrealloc(*v, sizeof(char *) * (size_t)(*k + 1));
            (*v)[(*k)++] = rhd_xstrdup(de->d_name);
        }
        free(meta);
        free(dir);
    }
    closedir(dh);
    if (nbad) qsort(bad, (size_t)nbad, sizeof(char *), cmp_str);
    int rc = 0;
    if (nbad) {
        char list[512] = "";
        for (int i = 0; i < nbad; i++) {
            size_t l = strlen(list);
            if (l + strlen(bad[i]) + 8 >= sizeof list) { snprintf(list + l, sizeof list - l, ", ..."); break; }
            snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", bad[i]);
        }
        if (skip_incomplete)
            rhd_warn("%s: leaving out %d avatar%s with view files but no metadata_000000.json (--skip-incomplete): %s",
                     data_root, nbad, nbad > 1 ? "s" : "", list);
        else
            rc = rhd_errf(e, "%s: %d avatar director%s with view files but no metadata_000000.json (view 0's camera, "
                          "which gives the intrinsics): %s; expected it in every avatar (--skip-incomplete leaves such "
                          "avatars out, listing them)", data_root, nbad, nbad > 1 ? "ies" : "y", list);
    }
    for (int i = 0; i < nbad; i++) free(bad[i]);
    free(bad);
    if (rc == 0 && cnt == 0)
        rc = rhd_errf(e, "%s: no avatar directories (subdirectories holding metadata_000000.json) found, expected a "
                      "dataset root with one directory per avatar", data_root);
    if (rc) {
        for (int i = 0; i < cnt; i++) free(names[i]);
        free(names);
        return -1;
    }
    qsort(names, (size_t)cnt, sizeof(char *), cmp_str);
    int scap = 0;
    for (int i = 0; i < cnt; i++) subject_add(out, &scap, names[i], join(data_root, names[i]));
    free(names);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* views */

char *rhd_dataset_view_path(const char *subject_dir, const char *kind, int view) {
    char file[64];
    snprintf(file, sizeof file, kind, view);
    return join(subject_dir, file);
}

static void format_ranges(const int *v, int n, char *buf, size_t bn);

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* "metadata_000012.json" -> 12 for fmt RHD_VIEW_META_FMT, "img_proc_fg_000012.png" -> 12 for
 * RHD_VIEW_IMAGE_FMT (at least 6 digits, exactly as %06d prints it); else -1. */
static int view_index(const char *name, const char *fmt) {
    const char *pct = strchr(fmt, '%'), *suf = pct + 4; /* "%06d" */
    size_t n = strlen(name), np = (size_t)(pct - fmt), ns = strlen(suf);
    if (n < np + 6 + ns || n > np + 9 + ns || strncmp(name, fmt, np) != 0 || strcmp(name + n - ns, suf) != 0) return -1;
    int64_t v = 0;
    for (size_t i = np; i < n - ns; i++) {
        if (!isdigit((unsigned char)name[i])) return -1;
        v = v * 10 + (name[i] - '0');
    }
    char back[64];
    snprintf(back, sizeof back, fmt, (int)v);
    return strcmp(back, name) == 0 ? (int)v : -1;
}

/* The sorted, distinct indices of the views with both files (complete = 1) or with at least one
 * of the two (complete = 0). */
static int scan_views(const char *subject_dir, int complete, int **views, int *n, rhd_err *e) {
    *views = NULL;
    *n = 0;
    DIR *dh = opendir(subject_dir);
    if (!dh) return rhd_errf(e, "%s: cannot open directory: %s", subject_dir, strerror(errno));
    int cap = 0, cnt = 0, *v = NULL;
    struct dirent *de;
    while ((de = readdir(dh))) {
        int idx = view_index(de->d_name, RHD_VIEW_META_FMT), other = 0;
        if (idx < 0) idx = view_index(de->d_name, RHD_VIEW_IMAGE_FMT), other = 1;
        if (idx < 0) continue;
        char *p = rhd_dataset_view_path(subject_dir, other ? RHD_VIEW_META_FMT : RHD_VIEW_IMAGE_FMT, idx);
        int has_other = rhd_file_exists(p);
        free(p);
        /* a complete view is counted once, from its metadata file */
        if ((complete && !has_other) || (has_other && other)) continue;
        if (cnt == cap) v = rhd_xrealloc(v, sizeof(int) * (size_t)(cap = cap ? cap * 2 : 128));
        v[cnt++] = idx;
    }
    closedir(dh);
    if (cnt) qsort(v, (size_t)cnt, sizeof(int), cmp_int);
    *views = v;
    *n = cnt;
    return 0;
}

int rhd_dataset_list_views(const char *subject_dir, int **views, int *n, rhd_err *e) {
    return scan_views(subject_dir, 1, views, n, e);
}

/* --skip-incomplete: leave out the views lacking a file, listing them on stderr; returns the
 * number kept (views compacted in place). */
static int drop_incomplete(const char *dir, int *views, int n) {
    static const char *kinds[2] = {RHD_VIEW_META_FMT, RHD_VIEW_IMAGE_FMT};
    int *gone[2], ngone[2] = {0, 0}, kept = 0;
    gone[0] = rhd_xmalloc(sizeof(int) * (size_t)(n ? n : 1)), gone[1] = rhd_xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        int has[2];
        for (int k = 0; k < 2; k++) {
            char *p = rhd_dataset_view_path(dir, kinds[k], views[i]);
            has[k] = rhd_file_exists(p);
            free(p);
        }
        if (has[0] && has[1]) views[kept++] = views[i];
        else gone[has[0] ? 1 : 0][ngone[has[0] ? 1 : 0]++] = views[i];
    }
    for (int k = 0; k < 2; k++)
        if (ngone[k]) {
            char list[256];
            qsort(gone[k], (size_t)ngone[k], sizeof(int), cmp_int);
            format_ranges(gone[k], ngone[k], list, sizeof list);
            rhd_warn("%s: leaving out %d incomplete view%s with no %s file (--skip-incomplete): %s", dir, ngone[k],
                     ngone[k] > 1 ? "s" : "", k == 0 ? "metadata_%06d.json" : "img_proc_fg_%06d.png", list);
        }
    free(gone[0]), free(gone[1]);
    return kept;
}

/* Append "a-b" / "a" ranges of the sorted list to buf (truncated with "..."). */
static void format_ranges(const int *v, int n, char *buf, size_t bn) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && v[j + 1] == v[j] + 1) j++;
        char part[40];
        if (j > i) snprintf(part, sizeof part, "%s%d-%d", i ? "," : "", v[i], v[j]);
        else snprintf(part, sizeof part, "%s%d", i ? "," : "", v[i]);
        if (k + strlen(part) + 4 >= bn) { snprintf(buf + k, bn - k, ",..."); return; }
        k += (size_t)snprintf(buf + k, bn - k, "%s", part);
        i = j + 1;
    }
}

void rhd_dataset_close(rhd_dataset *d) {
    if (!d) return;
    free(d->dir);
    free(d->views);
    memset(d, 0, sizeof *d);
}

int rhd_dataset_find(const rhd_dataset *d, int view) {
    for (int i = 0; i < d->n; i++)
        if (d->views[i].index == view) return i;
    return -1;
}

/* A requested view with neither file is absent, an error whatever --skip-incomplete says. */
static int check_absent(const char *dir, const int *views, int n, rhd_err *e) {
    int *gone = rhd_xmalloc(sizeof(int) * (size_t)(n > 0 ? n : 1)), m = 0;
    for (int i = 0; i < n; i++) {
        char *a = rhd_dataset_view_path(dir, RHD_VIEW_META_FMT, views[i]);
        char *b = rhd_dataset_view_path(dir, RHD_VIEW_IMAGE_FMT, views[i]);
        if (!rhd_file_exists(a) && !rhd_file_exists(b)) gone[m++] = views[i];
        free(a), free(b);
    }
    if (m) {
        char list[256];
        qsort(gone, (size_t)m, sizeof(int), cmp_int);
        int u = 0; /* a view asked for twice is one absent view */
        for (int i = 0; i < m; i++)
            if (!u || gone[u - 1] != gone[i]) gone[u++] = gone[i];
        m = u;
        format_ranges(gone, m, list, sizeof list);
        char *first = rhd_dataset_view_path(dir, RHD_VIEW_META_FMT, gone[0]);
        rhd_errf(e, "%s: %d of %d requested views are not there (neither metadata_%%06d.json nor img_proc_fg_%%06d.png): "
                 "views %s (first: %s), expected views the avatar has", dir, m, n, list, first);
        free(first);
    }
    free(gone);
    return m ? -1 : 0;
}

/* Every listed view must have both files: report the missing ones together. */
static int check_present(const char *dir, const int *views, int n, int scanned, rhd_err *e) {
    static const char *kinds[2] = {RHD_VIEW_META_FMT, RHD_VIEW_IMAGE_FMT};
    int *miss = rhd_xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    for (int k = 0; k < 2; k++) {
        int m = 0;
        for (int i = 0; i < n; i++) {
            char *p = rhd_dataset_view_path(dir, kinds[k], views[i]);
            if (!rhd_file_exists(p)) miss[m++] = views[i];
            free(p);
        }
        if (m) {
            char list[256];
            qsort(miss, (size_t)m, sizeof(int), cmp_int);
            format_ranges(miss, m, list, sizeof list);
            char *first = rhd_dataset_view_path(dir, kinds[k], miss[0]);
            rhd_errf(e, "%s: %d of %d %s views have no %s file: views %s (first missing: %s), expected both files for "
                     "every view (--skip-incomplete leaves such views out, listing them)", dir, m, n,
                     scanned ? "present" : "requested", k == 0 ? "metadata_%06d.json" : "img_proc_fg_%06d.png", list, first);
            free(first);
            free(miss);
            return -1;
        }
    }
    free(miss);
    return 0;
}

int rhd_dataset_open(rhd_dataset *d, const char *subject_dir, const int *views, int n,
                     const rhd_dataset_config *cfg, rhd_err *e) {
    memset(d, 0, sizeof *d);
    int *all = NULL, scanned = !views;
    /* every view with at least one of its two files: an incomplete one is an error below, or left
     * out with cfg->skip_incomplete (formats/dataset.md, "Incomplete data") */
    if (scanned) {
        if (scan_views(subject_dir, 0, &all, &n, e)) return -1;
        views = all;
    }
    for (int i = 0; !scanned && i < n; i++)
        if (views[i] < 0) return rhd_errf(e, "%s: view index %d, expected a non-negative index", subject_dir, views[i]);
    if (!scanned && check_absent(subject_dir, views, n, e)) return -1;
    if (cfg && cfg->skip_incomplete) {
        if (!all) {
            all = rhd_xmalloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
            memcpy(all, views, sizeof(int) * (size_t)(n > 0 ? n : 0));
            views = all;
        }
        n = drop_incomplete(subject_dir, all, n);
    }
    if (n <= 0) {
        free(all);
        return rhd_errf(e, "%s: no views%s, expected at least one view with metadata_%%06d.json and img_proc_fg_%%06d.png",
                        subject_dir, scanned ? " found" : " requested");
    }
    if (cfg) d->cfg = *cfg;
    else rhd_dataset_config_init(&d->cfg);
    d->dir = rhd_xstrdup(subject_dir);
    if (!isfinite(d->cfg.translation_divisor) || d->cfg.translation_divisor == 0 || !isfinite(d->cfg.scale)) {
        rhd_errf(e, "%s: translation divisor %g and scale %g, expected finite numbers with a non-zero divisor",
                 subject_dir, d->cfg.translation_divisor, d->cfg.scale);
        goto fail;
    }
    for (int i = 0; i < n; i++)
        if (views[i] < 0) {
            rhd_errf(e, "%s: view index %d, expected a non-negative index", subject_dir, views[i]);
            goto fail;
        }
    if (check_present(subject_dir, views, n, scanned, e)) goto fail;

    char *meta0 = rhd_dataset_view_path(subject_dir, RHD_VIEW_META_FMT, 0);
    int rc = rhd_camera_read(meta0, &d->cam0, e);
    free(meta0);
    if (rc) {
        if (e) {
            char m[sizeof e->msg];
            memcpy(m, e->msg, sizeof m);
            rhd_errf(e, "%.900s (the intrinsics are read from view 0)", m);
        }
        goto fail;
    }
    rhd_camera_intrinsics_from_camera(&d->K, &d->cam0, &d->cfg);

    d->views = rhd_xcalloc((size_t)n, sizeof(rhd_view));
    d->n = n;
    for (int i = 0; i < n; i++) {
        char *path = rhd_dataset_view_path(subject_dir, RHD_VIEW_META_FMT, views[i]);
        rhd_camera cam;
        rc = rhd_camera_read(path, &cam, e);
        if (rc == 0 && (cam.width != d->cam0.width || cam.height != d->cam0.height))
            rc = rhd_errf(e, "%s: cameras[0].resolution is [%d, %d], expected [%d, %d] as in view 0 (all views share "
                          "view 0's intrinsics)", path, cam.width, cam.height, d->cam0.width, d->cam0.height);
        if (rc == 0 && (fabs(cam.focal_length - d->cam0.focal_length) > 1e-6 * d->cam0.focal_length ||
                        fabs(cam.sensor_width - d->cam0.sensor_width) > 1e-6 * d->cam0.sensor_width))
            rc = rhd_errf(e, "%s: focal_length %.9g and sensor_width %.9g, expected %.9g and %.9g as in view 0 (all "
                          "views share view 0's intrinsics)", path, cam.focal_length, cam.sensor_width,
                          d->cam0.focal_length, d->cam0.sensor_width);
        free(path);
        if (rc) goto fail;
        d->views[i].index = views[i];
        memcpy(d->views[i].c2w_raw, cam.c2w, sizeof cam.c2w);
        rhd_pose_convert(d->views[i].pose, cam.c2w, &d->cfg);
    }
    free(all);
    return 0;
fail:
    free(all);
    rhd_dataset_close(d);
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* images */

int rhd_dataset_load_image(const rhd_dataset *d, int view, rhd_image *img, rhd_err *e) {
    memset(img, 0, sizeof *img);
    char *path = rhd_dataset_view_path(d->dir, RHD_VIEW_IMAGE_FMT, view);
    int rc = rhd_png_read(path, img, e);
    if (rc == 0) {
        char desc[64];
        if (img->bit_depth == 16 || img->color_type == RHD_PNG_GRAY || img->color_type == RHD_PNG_GRAY_ALPHA)
            rc = rhd_errf(e, "%s: %s PNG, expected 8-bit RGB, RGBA or palette", path,
                          rhd_png_describe(img, desc, sizeof desc));
        else if (img->width != d->K.width || img->height != d->K.height)
            rc = rhd_errf(e, "%s: image is %dx%d, expected %dx%d (the resolution in view 0's metadata)", path,
                          img->width, img->height, d->K.width, d->K.height);
        if (rc) rhd_image_free(img);
    }
    free(path);
    return rc;
}

void rhd_composite_bg(float *gt, const float *rgba, int64_t npix, const float bg[3]) {
    for (int64_t i = 0; i < npix; i++) {
        const float *p = rgba + 4 * i;
        float a = p[3];
        for (int c = 0; c < 3; c++) gt[3 * i + c] = p[c] * a + bg[c] * (1.0f - a);
    }
}

int rhd_dataset_load_gt(const rhd_dataset *d, int view, float **gt, rhd_err *e) {
    rhd_image img;
    *gt = NULL;
    if (rhd_dataset_load_image(d, view, &img, e)) return -1;
    int64_t npix = (int64_t)img.width * img.height;
    *gt = rhd_xmalloc(sizeof(float) * 3 * (size_t)npix);
    rhd_composite_bg(*gt, img.data, npix, d->cfg.bg);
    rhd_image_free(&img);
    return 0;
}
