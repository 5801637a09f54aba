/* tests/unit/test_dataset.c: formats/dataset on the blender-avatars-dev data set
 * ($RHD_SHARED/data/blender-avatars-dev, $RHD_SHARED defaulting to ../shared from the repo root;
 * without it the committed tests/data/mini fixture), against tests/ref/dataset_ref.py, an
 * independent NumPy reading of spec/fitting.md §1 that parses the JSON and PNGs itself.
 *
 *  1. subjects from a directory scan and from a list file (comments, blanks, trailing '/');
 *  2. views present; non-contiguous view ranges referred to by original index;
 *  3. intrinsics fx = fy = 177.78, cx = cy = 64 (and the square-pixel fy option on a non-square
 *     camera); converted poses equal the reference to 1e-6 for the default and other constants;
 *     every camera ~2.504 from the origin with its +z axis on the origin (the data README);
 *  4. ground truth on white and on another background equal to the reference;
 *  5. malformed camera JSON (a table of broken files) and broken subjects (missing views, view 0
 *     missing, resolution mismatches, image size/format mismatches, bad lists): -1 and a precise
 *     message naming the file and field. */
#include "refcheck.h"
#include "formats/dataset.h"
#include "common/cli.h"
#include "common/fs.h"
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_data[1024]; /* the data root in use */
static int g_full;        /* 1: the shared dev set (120 views), 0: the mini fixture (28 views) */

static int has(const char *msg, const char *sub) {
    return strstr(msg, sub) != NULL;
}

static void write_text(const char *path, const char *fmt, ...) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void find_data(void) {
    const char *root = getenv("RHD_ROOT");
    const char *shared = getenv("RHD_SHARED");
    char buf[1024];
    if (!root || !*root) root = ".";
    if (shared && *shared) snprintf(buf, sizeof buf, "%s/data/blender-avatars-dev", shared);
    else snprintf(buf, sizeof buf, "%s/../shared/data/blender-avatars-dev", root);
    if (is_dir(buf)) {
        snprintf(g_data, sizeof g_data, "%s", buf);
        g_full = 1;
    } else {
        snprintf(g_data, sizeof g_data, "%s/tests/data/mini", root);
        g_full = 0;
    }
    th_diag("data: %s (%s)", g_data, g_full ? "the shared dev set" : "the committed mini fixture");
}

static char *views_csv(const rhd_dataset *d) {
    char *s = malloc((size_t)d->n * 12 + 1);
    size_t k = 0;
    s[0] = 0;
    for (int i = 0; i < d->n; i++) k += (size_t)sprintf(s + k, "%s%d", i ? "," : "", d->views[i].index);
    return s;
}

/* Converted poses of d against the reference; returns the max abs difference (or 1e9). */
static double pose_diff(const rhd_dataset *d, const char *tag) {
    const char *dir = th_subdir(tag);
    char out[1200];
    snprintf(out, sizeof out, "%s/poses.npy", dir);
    char *csv = views_csv(d);
    int rc = th_ref("dataset_ref.py", "poses '%s' '%s' %s %.17g %.17g %.17g %.17g %.17g", d->dir, out, csv,
                    d->cfg.translation_divisor, d->cfg.scale, d->cfg.offset[0], d->cfg.offset[1], d->cfg.offset[2]);
    free(csv);
    if (rc) return 1e9;
    rhd_npy a;
    rhd_err e;
    if (rhd_npy_read(out, &a, &e)) { th_diag("%s", e.msg); return 1e9; }
    double worst = 1e9;
    if (a.t.dtype == RHD_F64 && rhd_shape_numel(a.t.shape, a.t.ndim) == (int64_t)d->n * 16) {
        const double *ref = a.t.data;
        worst = 0;
        for (int i = 0; i < d->n; i++)
            for (int r = 0; r < 4; r++)
                for (int c = 0; c < 4; c++) {
                    double diff = fabs(d->views[i].pose[r][c] - ref[i * 16 + r * 4 + c]);
                    if (diff > worst) worst = diff;
                }
    }
    rhd_npy_free(&a);
    return worst;
}

/* --- 1. subjects ------------------------------------------------------------------------ */

/* Subjects counted independently of the scanner: folders holding a view-0 image. The dev set
 * grows, so the expected count is read from the folder, not written down. */
static int count_subject_dirs(const char *root) {
    DIR *d = opendir(root);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    char path[4096];
    struct stat st;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s/img_proc_fg_000000.png", root, de->d_name);
        if (stat(path, &st) == 0) n++;
    }
    closedir(d);
    return n;
}

static void test_subjects(void) {
    rhd_subject_list l;
    rhd_err e;
    int rc = rhd_subjects_scan(&l, g_data, &e);
    int want = count_subject_dirs(g_data);
    int sorted = rc == 0;
    for (int i = 1; rc == 0 && i < l.n; i++) sorted &= strcmp(l.items[i - 1].name, l.items[i].name) < 0;
    th_ok(rc == 0 && l.n == want && sorted && strcmp(l.items[0].name, "avatar_100") == 0,
          "scan %s: %d subjects (expected %d), sorted, first '%s'", g_data, rc ? -1 : l.n, want, rc ? e.msg : l.items[0].name);
    if (rc == 0) rhd_subject_list_free(&l);

    /* a list file with comments, blank lines, spaces, CRLF and a trailing '/' */
    char list[1100];
    snprintf(list, sizeof list, "%s/subjects.txt", th_tmpdir());
    write_text(list, "# training subjects\n\n   \navatar_101/\r\n  avatar_100  \n#avatar_102\n");
    rc = rhd_subjects_read_list(&l, list, g_data, &e);
    char expect_dir[1100];
    snprintf(expect_dir, sizeof expect_dir, "%s/avatar_101", g_data);
    th_ok(rc == 0 && l.n == 2 && strcmp(l.items[0].name, "avatar_101") == 0 && strcmp(l.items[1].name, "avatar_100") == 0 &&
              strcmp(l.items[0].dir, expect_dir) == 0,
          "list file: 2 subjects in file order, names and dirs (%s)", rc ? e.msg : rc == 0 && l.n ? l.items[0].dir : "");
    if (rc == 0) rhd_subject_list_free(&l);

    /* nested paths and data_root = the list's directory */
    const char *sub = th_subdir("nested");
    th_sh("mkdir -p '%s/group' && ln -sfn '%s/avatar_100' '%s/group/avatar_100'", sub, g_data, sub);
    snprintf(list, sizeof list, "%s/list.txt", sub);
    write_text(list, "group/avatar_100///\n");
    rc = rhd_subjects_read_list(&l, list, NULL, &e);
    snprintf(expect_dir, sizeof expect_dir, "%s/group/avatar_100", sub);
    th_ok(rc == 0 && l.n == 1 && strcmp(l.items[0].name, "avatar_100") == 0 && strcmp(l.items[0].dir, expect_dir) == 0,
          "nested line, data root = the list's directory: name '%s'", rc ? e.msg : l.items[0].name);
    if (rc == 0) rhd_subject_list_free(&l);

    /* errors */
    write_text(list, "# nothing\n\n");
    rc = rhd_subjects_read_list(&l, list, g_data, &e);
    th_ok(rc == -1 && has(e.msg, "list.txt: no subjects (only blank or '#' lines)"), "empty list: %s", e.msg);
    write_text(list, "avatar_100\navatar_999\n");
    rc = rhd_subjects_read_list(&l, list, g_data, &e);
    th_ok(rc == -1 && has(e.msg, "list.txt:2: subject 'avatar_999': ") && has(e.msg, "avatar_999 is not a directory"),
          "missing subject: %s", e.msg);
    write_text(list, "avatar_100\n%s/group/avatar_100\n", sub);
    rc = rhd_subjects_read_list(&l, list, g_data, &e);
    th_ok(rc == -1 && has(e.msg, "list.txt:2: subject name 'avatar_100' is already used on line 1"), "duplicate name: %s", e.msg);
    rc = rhd_subjects_read_list(&l, "/nonexistent/list.txt", NULL, &e);
    th_ok(rc == -1 && has(e.msg, "/nonexistent/list.txt: cannot open"), "missing list file: %s", e.msg);
    rc = rhd_subjects_scan(&l, th_subdir("emptyroot"), &e);
    th_ok(rc == -1 && has(e.msg, "emptyroot: no avatar directories (subdirectories holding metadata_000000.json) found"), "scan of an empty root: %s", e.msg);
}

/* --- 2 and 3. views, intrinsics, poses ------------------------------------------------- */

static void check_subject(const char *name) {
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/%s", g_data, name);
    rhd_err e;
    int *views, n;
    int rc = rhd_dataset_list_views(dir, &views, &n, &e);
    int want = g_full ? 120 : 28;
    th_ok(rc == 0 && n == want && views[0] == 0 && views[n - 1] == (g_full ? 119 : 115), "%s: %d views present (expected %d)",
          name, rc ? -1 : n, want);
    if (rc == 0) free(views);

    rhd_dataset d;
    rc = rhd_dataset_open(&d, dir, NULL, 0, NULL, &e);
    if (!th_ok(rc == 0 && d.n == want, "%s: open every view: %s", name, rc ? e.msg : "ok")) return;
    th_ok(fabs(d.K.fx - 50.0 / 36 * 128) < 1e-9 && fabs(d.K.fx - 177.78) < 0.005 && d.K.fy == d.K.fx && d.K.cx == 64 &&
              d.K.cy == 64 && d.K.width == 128 && d.K.height == 128 && d.K.fy_from_sensor_width,
          "%s: intrinsics fx %.4f fy %.4f cx %g cy %g (expected 177.78, 177.78, 64, 64)", name, d.K.fx, d.K.fy, d.K.cx, d.K.cy);
    double diff = pose_diff(&d, name);
    th_ok(diff <= 1e-6, "%s: %d converted poses equal the NumPy reference: max abs diff %.3g (tol 1e-6)", name, d.n, diff);

    /* geometry from the data README: 96 units from the origin, aimed at it, no roll */
    double rexp = 96.0 / 23.0 * 0.6, worst_r = 0, worst_deg = 0, worst_ortho = 0;
    int down_ok = 1;
    for (int i = 0; i < d.n; i++) {
        double (*P)[4] = d.views[i].pose;
        double t[3] = {P[0][3], P[1][3], P[2][3]};
        double r = sqrt(t[0] * t[0] + t[1] * t[1] + t[2] * t[2]);
        /* angle between the +z axis and -t: atan2(|z x -t|, z . -t), well conditioned near 0 */
        double z[3] = {P[0][2], P[1][2], P[2][2]}, m[3] = {-t[0], -t[1], -t[2]};
        double cx = z[1] * m[2] - z[2] * m[1], cy = z[2] * m[0] - z[0] * m[2], cz = z[0] * m[1] - z[1] * m[0];
        double deg = atan2(sqrt(cx * cx + cy * cy + cz * cz), z[0] * m[0] + z[1] * m[1] + z[2] * m[2]) * 180.0 / M_PI;
        if (fabs(r - rexp) > worst_r) worst_r = fabs(r - rexp);
        if (deg > worst_deg) worst_deg = deg;
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) {
                double dot = P[0][a] * P[0][b] + P[1][a] * P[1][b] + P[2][a] * P[2][b];
                worst_ortho = fmax(worst_ortho, fabs(dot - (a == b)));
            }
        down_ok &= P[1][1] < 0; /* image-down has a negative world-y component: +y is up */
    }
    th_ok(worst_r < 1e-4, "%s: every camera %.5f from the origin (max deviation %.2g)", name, rexp, worst_r);
    th_ok(worst_deg < 1e-3, "%s: every camera's +z axis points at the origin (max angle %.2g degrees)", name, worst_deg);
    /* the JSON holds float32-rounded matrices: orthonormal to ~1e-6 */
    th_ok(worst_ortho < 1e-5 && down_ok, "%s: converted rotations orthonormal (max |R^T R - I| %.2g), image-down towards "
          "world -y", name, worst_ortho);

    /* ground truth for a few views against the reference (pypng + NumPy) */
    int gv[3] = {0, 13, 105};
    long npix = 128L * 128;
    float *gt_all = malloc(sizeof(float) * 3 * (size_t)npix * 3);
    int ok = 1;
    for (int k = 0; k < 3 && ok; k++) {
        rhd_image img;
        ok = rhd_dataset_load_image(&d, gv[k], &img, &e) == 0;
        if (!ok) break;
        ok = img.width == 128 && img.height == 128 && img.bit_depth == 8 && img.color_type == RHD_PNG_RGBA;
        rhd_composite_bg(gt_all + (size_t)k * npix * 3, img.data, npix, d.cfg.bg);
        rhd_image_free(&img);
    }
    const char *sub = th_subdir(name);
    char out[1300];
    snprintf(out, sizeof out, "%s/gt.npy", sub);
    float *ref = ok && th_ref("dataset_ref.py", "gt '%s' '%s' 0,13,105 1 1 1", dir, out) == 0 ? th_load(sub, "gt", npix * 9) : NULL;
    if (ok && ref) th_close("ground truth on white, views 0,13,105 vs reference", gt_all, ref, npix * 9, 0.0);
    else th_ok(0, "%s: ground truth of views 0,13,105: %s", name, ok ? "reference failed" : e.msg);
    free(ref);
    free(gt_all);
    rhd_dataset_close(&d);
}

static void test_views_and_config(void) {
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/avatar_101", g_data);
    int *v, n;
    rhd_err e;
    RHD_ASSERT(rhd_parse_ranges("100,0-23,105,110-110,115", &v, &n, &e) == 0);
    rhd_dataset d;
    int rc = rhd_dataset_open(&d, dir, v, n, NULL, &e);
    th_ok(rc == 0 && d.n == 28 && d.views[0].index == 0 && d.views[24].index == 100 && rhd_dataset_find(&d, 105) == 25 &&
              rhd_dataset_find(&d, 50) == -1,
          "views 0-23,100,105,110,115 by original index: n %d, find(105) %d, find(50) %d", rc ? -1 : d.n,
          rc ? -1 : rhd_dataset_find(&d, 105), rc ? -1 : rhd_dataset_find(&d, 50));
    if (rc == 0) rhd_dataset_close(&d);
    free(v);

    /* other constants: divisor, scale, offset */
    rhd_dataset_config cfg;
    rhd_dataset_config_init(&cfg);
    th_ok(cfg.translation_divisor == 23 && cfg.scale == 0.6 && cfg.offset[0] == 0 && cfg.offset[1] == 0 && cfg.offset[2] == 0 &&
              cfg.bg[0] == 1 && cfg.bg[1] == 1 && cfg.bg[2] == 1 && cfg.fy_square_pixels == 0,
          "config defaults: divisor 23, scale 0.6, offset 0, white background, original fy");
    cfg.translation_divisor = 10;
    cfg.scale = 0.33;
    cfg.offset[0] = 0.1, cfg.offset[1] = -0.2, cfg.offset[2] = 0.3;
    cfg.bg[0] = 0.2f, cfg.bg[1] = 0.4f, cfg.bg[2] = 0.6f;
    int sel[3] = {0, 5, 100};
    rc = rhd_dataset_open(&d, dir, sel, 3, &cfg, &e);
    if (th_ok(rc == 0, "open views 0,5,100 with divisor 10, scale 0.33, offset (0.1,-0.2,0.3): %s", rc ? e.msg : "ok")) {
        double diff = pose_diff(&d, "cfg");
        th_ok(diff <= 1e-6, "poses with other constants equal the reference: max abs diff %.3g", diff);
        float *gt;
        rc = rhd_dataset_load_gt(&d, 5, &gt, &e);
        const char *sub = th_subdir("gtbg");
        char out[1300];
        snprintf(out, sizeof out, "%s/gt.npy", sub);
        float *ref = rc == 0 && th_ref("dataset_ref.py", "gt '%s' '%s' 5 0.2 0.4 0.6", dir, out) == 0 ? th_load(sub, "gt", 128 * 128 * 3) : NULL;
        if (ref) th_close("ground truth of view 5 on (0.2,0.4,0.6) vs reference", gt, ref, 128 * 128 * 3, 0.0);
        else th_ok(0, "ground truth on another background: %s", rc ? e.msg : "reference failed");
        free(gt), free(ref);
        rhd_dataset_close(&d);
    }
}

/* --- 5. broken data ---------------------------------------------------------------------- */

#define T_OK "[[1,0,0,0],[0,0.11243758350610733,-0.993658721446991,-95.39124298095703],[0,0.993658721446991,0.11243758350610733,10.793999671936035],[0,0,0,1]]"
#define CAM(res, fl, sw, T) "{\"cameras\": [{\"resolution\": " res ", \"focal_length\": " fl ", \"sensor_width\": " sw ", \"transformation\": " T "}]}"

static void test_bad_cameras(void) {
    static const struct {
        const char *what, *json, *expect;
    } cases[] = {
        {"valid, with extra keys", "{\"cameras\": [{\"resolution\": [128, 96], \"focal_length\": 50, \"sensor_width\": 36, "
                                   "\"transformation\": " T_OK ", \"split\": \"train\"}, {}], \"other\": 1}\n", NULL},
        {"empty file", "", "not JSON: parse error at line 1 column 1 (end of file)"},
        {"not JSON", "{\"cameras\": [\n  {\"resolution\": [128, 128],, }]}", "not JSON: parse error at line 2 column"},
        {"unterminated", "{\"cameras\": [", "not JSON: parse error at line 1 column"},
        {"trailing data", CAM("[128,128]", "50", "36", T_OK) " x", "not JSON: extra data after the top-level value"},
        {"top-level array", "[1, 2]", "top level is an array, expected an object with a 'cameras' array"},
        {"no cameras", "{\"camera\": []}", "no 'cameras' key, expected a 'cameras' array"},
        {"cameras object", "{\"cameras\": {}}", "'cameras' is an object, expected an array"},
        {"cameras empty", "{\"cameras\": []}", "'cameras' is empty, expected at least one camera"},
        {"camera number", "{\"cameras\": [5]}", "cameras[0] is a number, expected an object"},
        {"no resolution", "{\"cameras\": [{\"focal_length\": 50, \"sensor_width\": 36, \"transformation\": " T_OK "}]}",
         "cameras[0].resolution is missing, expected [W, H]"},
        {"resolution 1 entry", CAM("[128]", "50", "36", T_OK), "cameras[0].resolution has 1 entries, expected [W, H]"},
        {"resolution string", CAM("[128, \"128\"]", "50", "36", T_OK), "cameras[0].resolution[1] is a string, expected a number"},
        {"resolution fraction", CAM("[128.5, 128]", "50", "36", T_OK), "cameras[0].resolution[0] is 128.5, expected an integer in 1..16384"},
        {"resolution zero", CAM("[0, 128]", "50", "36", T_OK), "cameras[0].resolution[0] is 0, expected an integer in 1..16384"},
        {"resolution huge", CAM("[128, 1e6]", "50", "36", T_OK), "cameras[0].resolution[1] is 1000000, expected an integer"},
        {"no focal_length", "{\"cameras\": [{\"resolution\": [128,128], \"sensor_width\": 36, \"transformation\": " T_OK "}]}",
         "cameras[0].focal_length is missing, expected a number"},
        {"focal_length string", CAM("[128,128]", "\"50mm\"", "36", T_OK), "cameras[0].focal_length is a string, expected a number"},
        {"focal_length null", CAM("[128,128]", "null", "36", T_OK), "cameras[0].focal_length is null, expected a number"},
        {"focal_length inf", CAM("[128,128]", "1e999", "36", T_OK), "cameras[0].focal_length is inf, expected a finite number"},
        {"focal_length negative", CAM("[128,128]", "-50", "36", T_OK), "cameras[0].focal_length is -50, expected a positive number"},
        {"sensor_width zero", CAM("[128,128]", "50", "0", T_OK), "cameras[0].sensor_width is 0, expected a positive number"},
        {"focal ratio overflows", CAM("[128,128]", "1e300", "1e-300", T_OK),
         "cameras[0].focal_length / sensor_width = 1e+300 / 1e-300 gives a focal length of inf pixels, expected 1e-12..1e12"},
        {"sensor_width bool", CAM("[128,128]", "50", "true", T_OK), "cameras[0].sensor_width is a boolean, expected a number"},
        {"no transformation", "{\"cameras\": [{\"resolution\": [128,128], \"focal_length\": 50, \"sensor_width\": 36}]}",
         "cameras[0].transformation is missing, expected a 4x4 array of numbers"},
        {"transformation string", CAM("[128,128]", "50", "36", "\"eye\""), "cameras[0].transformation is a string, expected a 4x4"},
        {"3 rows", CAM("[128,128]", "50", "36", "[[1,0,0,0],[0,1,0,0],[0,0,1,0]]"), "cameras[0].transformation has 3 rows, expected 4x4"},
        {"3 columns", CAM("[128,128]", "50", "36", "[[1,0,0,0],[0,1,0,0],[0,0,1],[0,0,0,1]]"),
         "cameras[0].transformation[2] has 3 entries, expected 4 (4x4)"},
        {"row not an array", CAM("[128,128]", "50", "36", "[[1,0,0,0],7,[0,0,1,0],[0,0,0,1]]"),
         "cameras[0].transformation[1] is a number, expected a row of 4 numbers"},
        {"entry string", CAM("[128,128]", "50", "36", "[[1,0,0,0],[0,1,\"0\",0],[0,0,1,0],[0,0,0,1]]"),
         "cameras[0].transformation[1][2] is a string, expected a number"},
        {"entry inf", CAM("[128,128]", "50", "36", "[[1,0,0,1e999],[0,1,0,0],[0,0,1,0],[0,0,0,1]]"),
         "cameras[0].transformation[0][3] is inf, expected a finite number"},
        {"entry -inf", CAM("[128,128]", "50", "36", "[[1,0,0,0],[0,1,0,0],[0,0,-1e400,0],[0,0,0,1]]"),
         "cameras[0].transformation[2][2] is -inf, expected a finite number"},
        {"last row", CAM("[128,128]", "50", "36", "[[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,1,1]]"),
         "cameras[0].transformation last row is [0, 0, 1, 1], expected [0, 0, 0, 1]"},
        {"scaled rotation", CAM("[128,128]", "50", "36", "[[2,0,0,0],[0,2,0,0],[0,0,2,0],[0,0,0,1]]"),
         "cameras[0].transformation rotation is not orthonormal: max |R^T R - I| = 3, expected <= 0.001"},
        {"skewed rotation", CAM("[128,128]", "50", "36", "[[1,0.01,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]"),
         "rotation is not orthonormal: max |R^T R - I| = 0.01, expected <= 0.001"},
        {"nearly orthonormal", CAM("[128,128]", "50", "36", "[[1,0.0001,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]"), NULL},
        {"reflection", CAM("[128,128]", "50", "36", "[[-1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]"),
         "cameras[0].transformation rotation has determinant -1.000000 (a reflection), expected +1"},
    };
    const char *dir = th_subdir("badcam");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/case%02zu.json", dir, i);
        write_text(path, "%s", cases[i].json);
        rhd_camera cam;
        rhd_err e = {{0}};
        int rc = rhd_camera_read(path, &cam, &e);
        if (!cases[i].expect)
            th_ok(rc == 0 && cam.width > 0, "camera JSON %s: accepted%s%s", cases[i].what, rc ? ": " : "", rc ? e.msg : "");
        else
            th_ok(rc == -1 && strncmp(e.msg, path, strlen(path)) == 0 && has(e.msg, cases[i].expect), "camera JSON %s: %s",
                  cases[i].what, e.msg);
    }
    rhd_camera cam;
    rhd_err e;
    int rc = rhd_camera_read("/nonexistent/metadata_000000.json", &cam, &e);
    th_ok(rc == -1 && has(e.msg, "/nonexistent/metadata_000000.json: cannot open: No such file"), "missing file: %s", e.msg);
    /* parse from memory: not NUL-terminated, resolution [W, H] order */
    const char txt[] = CAM("[200, 100]", "35", "32", T_OK) "garbage-after-the-length";
    rc = rhd_camera_parse(txt, sizeof(CAM("[200, 100]", "35", "32", T_OK)) - 1, "mem", &cam, &e);
    th_ok(rc == 0 && cam.width == 200 && cam.height == 100 && cam.focal_length == 35 && cam.sensor_width == 32 &&
              cam.c2w[1][3] == -95.39124298095703,
          "parse from memory with an explicit length: %dx%d fl %g sw %g", cam.width, cam.height, cam.focal_length, cam.sensor_width);
}

/* Make a subject directory holding copies of the given views of avatar_100. */
static const char *make_subject(const char *tag, const int *views, int n) {
    const char *dir = th_subdir(tag);
    for (int i = 0; i < n; i++)
        th_sh("cp '%s/avatar_100/metadata_%06d.json' '%s/avatar_100/img_proc_fg_%06d.png' '%s/'", g_data, views[i], g_data,
              views[i], dir);
    return dir;
}

static void test_bad_subjects(void) {
    rhd_dataset d;
    rhd_err e;
    int *v, n, rc;
    int have[4] = {0, 1, 2, 5};
    const char *dir = make_subject("gaps", have, 4);
    RHD_ASSERT(rhd_parse_ranges("0-9", &v, &n, &e) == 0);
    rc = rhd_dataset_open(&d, dir, v, n, NULL, &e);
    th_ok(rc == -1 && has(e.msg, "gaps: 6 of 10 requested views are not there (neither metadata_%06d.json nor img_proc_fg_%06d.png): views 3-4,6-9 (first: ") &&
              has(e.msg, "gaps/metadata_000003.json)"),
          "views missing in a range: %s", e.msg);
    free(v);
    int *pv, pn;
    rc = rhd_dataset_list_views(dir, &pv, &pn, &e);
    th_ok(rc == 0 && pn == 4 && pv[3] == 5, "views present in a gappy subject: %d (0,1,2,5)", rc ? -1 : pn);
    if (rc == 0) free(pv);

    char path[1300];
    snprintf(path, sizeof path, "%s/img_proc_fg_000002.png", dir);
    unlink(path);
    int sel[3] = {0, 1, 2};
    rc = rhd_dataset_open(&d, dir, sel, 3, NULL, &e);
    th_ok(rc == -1 && has(e.msg, "1 of 3 requested views have no img_proc_fg_%06d.png file: views 2 (first missing: "),
          "an image missing: %s", e.msg);
    rc = rhd_dataset_open(&d, dir, sel, 0, NULL, &e);
    th_ok(rc == -1 && has(e.msg, "gaps: no views requested"), "no views: %s", e.msg);

    /* view 0 missing: the intrinsics cannot be read */
    int some[2] = {1, 5};
    const char *dir2 = make_subject("noview0", some, 2);
    rc = rhd_dataset_open(&d, dir2, some, 2, NULL, &e);
    th_ok(rc == -1 && has(e.msg, "noview0/metadata_000000.json: cannot open") && has(e.msg, "(the intrinsics are read from view 0)"),
          "view 0 missing: %s", e.msg);

    /* a view whose resolution differs from view 0's; an image whose size differs from the metadata */
    const char *dir3 = make_subject("mismatch", have, 3);
    snprintf(path, sizeof path, "%s/metadata_000001.json", dir3);
    write_text(path, CAM("[64, 64]", "50", "36", T_OK));
    rc = rhd_dataset_open(&d, dir3, sel, 3, NULL, &e);
    th_ok(rc == -1 && has(e.msg, "mismatch/metadata_000001.json: cameras[0].resolution is [64, 64], expected [128, 128] as in view 0"),
          "resolution differs from view 0: %s", e.msg);
    write_text(path, CAM("[128, 128]", "35", "36", T_OK));
    rc = rhd_dataset_open(&d, dir3, sel, 3, NULL, &e);
    th_ok(rc == -1 && has(e.msg, "metadata_000001.json: focal_length 35 and sensor_width 36, expected 50 and 36 as in view 0"),
          "focal length differs from view 0: %s", e.msg);
    write_text(path, CAM("[128, 128]", "50", "36", T_OK));
    float *px = th_randu(128 * 128 * 4, 0, 1);
    snprintf(path, sizeof path, "%s/img_proc_fg_000001.png", dir3);
    RHD_ASSERT(rhd_png_write(path, px, 64, 64, 4, 8, 0, &e) == 0);
    snprintf(path, sizeof path, "%s/img_proc_fg_000002.png", dir3);
    RHD_ASSERT(rhd_png_write(path, px, 128, 128, 4, 16, 0, &e) == 0);
    rc = rhd_dataset_open(&d, dir3, sel, 3, NULL, &e);
    if (th_ok(rc == 0, "open a subject whose images are wrong (images are read later): %s", rc ? e.msg : "ok")) {
        rhd_image img;
        rc = rhd_dataset_load_image(&d, 1, &img, &e);
        th_ok(rc == -1 && has(e.msg, "mismatch/img_proc_fg_000001.png: image is 64x64, expected 128x128"), "image size: %s", e.msg);
        rc = rhd_dataset_load_image(&d, 2, &img, &e);
        th_ok(rc == -1 && has(e.msg, "img_proc_fg_000002.png: 16-bit RGBA PNG, expected 8-bit RGB, RGBA or palette"),
              "16-bit image: %s", e.msg);
        RHD_ASSERT(rhd_png_write(path, px, 128, 128, 1, 8, 0, &e) == 0);
        rc = rhd_dataset_load_image(&d, 2, &img, &e);
        th_ok(rc == -1 && has(e.msg, "img_proc_fg_000002.png: 8-bit gray PNG, expected 8-bit RGB, RGBA or palette"),
              "gray image: %s", e.msg);
        /* an RGB image is used as it is: gt = rgb */
        RHD_ASSERT(rhd_png_write(path, px, 128, 128, 3, 8, 0, &e) == 0);
        float *gt;
        rc = rhd_dataset_load_gt(&d, 2, &gt, &e);
        long bad = 0;
        for (long i = 0; rc == 0 && i < 128 * 128 * 3; i++)
            bad += gt[i] != (float)floor((double)px[i] * 255 + 0.5) / 255.0f; /* the writer's rounding */
        th_ok(rc == 0 && bad == 0, "an RGB image is its own ground truth (%ld of %d differ)", bad, 128 * 128 * 3);
        if (rc == 0) free(gt);
        rc = rhd_dataset_load_image(&d, 7, &img, &e);
        th_ok(rc == -1 && has(e.msg, "mismatch/img_proc_fg_000007.png: cannot open"), "a view that is not there: %s", e.msg);
        rhd_dataset_close(&d);
    }
    free(px);

    /* a broken JSON inside a range names that file */
    snprintf(path, sizeof path, "%s/metadata_000001.json", dir3);
    write_text(path, "{\"cameras\": [{\"resolution\": [128, 128], \"focal_length\": 50, \"sensor_width\": 36, "
                     "\"transformation\": [[1,0,0,0],[0,1,0,0],[0,0,1,0]]}]}");
    rc = rhd_dataset_open(&d, dir3, sel, 3, NULL, &e);
    th_ok(rc == -1 && has(e.msg, "mismatch/metadata_000001.json: cameras[0].transformation has 3 rows, expected 4x4"),
          "a broken view inside a range: %s", e.msg);
}

/* The incomplete-data policy: a view with one of its two files is an error naming the avatar, the
 * views and the missing file, unless skip_incomplete (then left out, listed on stderr). */
static void test_incomplete(void) {
    int have[5] = {0, 1, 2, 3, 4};
    char dir[1024], path[1300];
    snprintf(dir, sizeof dir, "%s", make_subject("incomplete", have, 5));
    snprintf(path, sizeof path, "%s/img_proc_fg_000002.png", dir); /* view 2: metadata only */
    unlink(path);
    snprintf(path, sizeof path, "%s/metadata_000004.json", dir);   /* view 4: image only */
    unlink(path);
    rhd_dataset d;
    rhd_err e;
    int rc = rhd_dataset_open(&d, dir, NULL, 0, NULL, &e);
    th_ok(rc == -1 && has(e.msg, "incomplete: 1 of 5 present views have no metadata_%06d.json file: views 4 (first missing: ") &&
              has(e.msg, "incomplete/metadata_000004.json)") && has(e.msg, "--skip-incomplete"),
          "every view present: an incomplete one is an error by default: %s", rc ? e.msg : "(accepted)");
    if (rc == 0) rhd_dataset_close(&d);
    snprintf(path, sizeof path, "%s/img_proc_fg_000004.png", dir);
    unlink(path);
    rc = rhd_dataset_open(&d, dir, NULL, 0, NULL, &e);
    th_ok(rc == -1 && has(e.msg, "1 of 4 present views have no img_proc_fg_%06d.png file: views 2 (first missing: ") &&
              has(e.msg, "incomplete/img_proc_fg_000002.png)"),
          "a view with its metadata only: %s", rc ? e.msg : "(accepted)");
    if (rc == 0) rhd_dataset_close(&d);
    th_sh("touch '%s/img_proc_fg_000004.png'", dir);
    rhd_dataset_config cfg;
    rhd_dataset_config_init(&cfg);
    th_ok(cfg.skip_incomplete == 0, "the default is to refuse incomplete views");
    cfg.skip_incomplete = 1;
    rc = rhd_dataset_open(&d, dir, NULL, 0, &cfg, &e);
    th_ok(rc == 0 && d.n == 3 && d.views[0].index == 0 && d.views[1].index == 1 && d.views[2].index == 3,
          "skip_incomplete: views 0,1,3 kept (%d): %s", rc ? -1 : d.n, rc ? e.msg : "ok");
    if (rc == 0) rhd_dataset_close(&d);
    int sel[3] = {1, 2, 3};
    rc = rhd_dataset_open(&d, dir, sel, 3, &cfg, &e);
    th_ok(rc == 0 && d.n == 2 && d.views[1].index == 3, "skip_incomplete on requested views 1-3: 1,3 kept");
    if (rc == 0) rhd_dataset_close(&d);
    /* a negative index is named as such; a view asked for twice is one absent view */
    int selneg[2] = {0, -1}, seldup[3] = {0, 999, 999};
    rc = rhd_dataset_open(&d, dir, selneg, 2, NULL, &e);
    th_ok(rc == -1 && has(e.msg, "view index -1, expected a non-negative index"), "a negative view index: %s",
          rc ? e.msg : "(accepted)");
    if (rc == 0) rhd_dataset_close(&d);
    rc = rhd_dataset_open(&d, dir, seldup, 3, NULL, &e);
    th_ok(rc == -1 && has(e.msg, "1 of 3 requested views are not there") && has(e.msg, "views 999 (first"),
          "a view asked for twice counts once: %s", rc ? e.msg : "(accepted)");
    if (rc == 0) rhd_dataset_close(&d);
    /* a requested view with neither file is absent: an error with or without the option, no hint */
    int sel2[2] = {1, 999};
    for (int k = 0; k < 2; k++) {
        rc = rhd_dataset_open(&d, dir, sel2, 2, k ? &cfg : NULL, &e);
        th_ok(rc == -1 && has(e.msg, "incomplete: 1 of 2 requested views are not there (neither metadata_%06d.json nor "
                                     "img_proc_fg_%06d.png): views 999 (first: ") && !has(e.msg, "--skip-incomplete"),
              "an absent requested view is an error%s: %s", k ? " with skip_incomplete too" : "", rc ? e.msg : "(accepted)");
        if (rc == 0) rhd_dataset_close(&d);
    }
    /* a data root: an avatar directory without metadata_000000.json */
    const char *root = th_subdir("incroot");
    th_sh("mkdir -p '%s/a' '%s/b' '%s/notes' && cp '%s'/metadata_000000.json '%s/a/' && touch '%s/b/img_proc_fg_000000.png' "
          "'%s/notes/readme.txt'", root, root, root, dir, root, root, root);
    rhd_subject_list l;
    rc = rhd_subjects_scan(&l, root, &e);
    th_ok(rc == -1 && has(e.msg, "1 avatar directory with view files but no metadata_000000.json") && has(e.msg, ": b;"),
          "an avatar without view 0's metadata is an error naming it: %s", rc ? e.msg : "(accepted)");
    if (rc == 0) rhd_subject_list_free(&l);
    rc = rhd_subjects_scan_opt(&l, root, 1, &e);
    th_ok(rc == 0 && l.n == 1 && !strcmp(l.items[0].name, "a"), "skip_incomplete leaves it out ('notes' is no avatar)");
    if (rc == 0) rhd_subject_list_free(&l);
}

/* The square-pixel fy option on a non-square camera, against the reference. */
static void test_nonsquare(void) {
    const char *dir = th_subdir("nonsquare");
    char path[1300];
    snprintf(path, sizeof path, "%s/metadata_000000.json", dir);
    write_text(path, CAM("[200, 100]", "35", "32", T_OK));
    float *px = th_randu(200 * 100 * 4, 0, 1);
    snprintf(path, sizeof path, "%s/img_proc_fg_000000.png", dir);
    rhd_err e;
    RHD_ASSERT(rhd_png_write(path, px, 200, 100, 4, 8, 0, &e) == 0);
    free(px);
    for (int sq = 0; sq < 2; sq++) {
        rhd_dataset_config cfg;
        rhd_dataset_config_init(&cfg);
        cfg.fy_square_pixels = sq;
        rhd_dataset d;
        int rc = rhd_dataset_open(&d, dir, NULL, 0, &cfg, &e);
        char out[1300];
        snprintf(out, sizeof out, "%s/K%d.npy", dir, sq);
        double K[6] = {0};
        rhd_npy a;
        if (rc == 0 && th_ref("dataset_ref.py", "intrinsics '%s' '%s' %d", dir, out, sq) == 0 && rhd_npy_read(out, &a, &e) == 0) {
            if (a.t.dtype == RHD_F64 && rhd_shape_numel(a.t.shape, a.t.ndim) == 6) memcpy(K, a.t.data, sizeof K);
            rhd_npy_free(&a);
        }
        th_ok(rc == 0 && fabs(d.K.fx - K[0]) < 1e-12 && fabs(d.K.fy - K[1]) < 1e-12 && d.K.cx == K[2] && d.K.cy == K[3] &&
                  d.K.width == 200 && d.K.height == 100 && d.K.fy_from_sensor_width == !sq,
              "200x100 camera, %s: fx %.4f fy %.4f cx %g cy %g (reference %.4f %.4f %g %g)",
              sq ? "fy = fx (square pixels)" : "original fy = fl/sw*H", d.K.fx, d.K.fy, d.K.cx, d.K.cy, K[0], K[1], K[2], K[3]);
        if (rc == 0) rhd_dataset_close(&d);
    }
}

int main(void) {
    find_data();
    test_subjects();
    rhd_subject_list l;
    rhd_err e;
    if (rhd_subjects_scan(&l, g_data, &e) == 0) {
        for (int i = 0; i < l.n; i++) check_subject(l.items[i].name);
        rhd_subject_list_free(&l);
    }
    test_views_and_config();
    test_bad_cameras();
    test_bad_subjects();
    test_nonsquare();
    test_incomplete();
    return th_done();
}
