/* formats/dataset.h: the RodinHD multi-view dataset (spec/fitting.md §1; Renderer/nerf/provider.py).
 *
 * Layout (formats/dataset.md):
 *   <data_root>/<subject>/metadata_%06d.json     json["cameras"][0]: resolution [W,H], focal_length,
 *                                                 sensor_width, transformation (4x4 camera-to-world,
 *                                                 row-major, Blender/OpenGL camera: x right, y up, -z
 *                                                 forward); formats/cameras.md
 *   <data_root>/<subject>/img_proc_fg_%06d.png    straight-alpha RGBA (or RGB), 8 bit
 * Subjects come from a list file (one relative path per line) or a directory scan. Views are
 * referred to by their ORIGINAL index (the number in the file names) and need not be contiguous;
 * only the intrinsics come from view 0, which must exist (§1.1).
 *
 * Conventions of the converted pose P (§1.3): world c2w, row-major double[4][4], OpenCV camera
 * (column 0 image-right, column 1 image-down, column 2 forward), world +y up.
 * Pixel (u, v) has its centre at (u + 0.5, v + 0.5); intrinsics (fx, fy, cx, cy) in pixels. */
#ifndef RHD_DATASET_H
#define RHD_DATASET_H
#include <stdint.h>
#include <stddef.h>
#include "common/err.h"
#include "formats/png.h"

#define RHD_VIEW_META_FMT "metadata_%06d.json"
#define RHD_VIEW_IMAGE_FMT "img_proc_fg_%06d.png"

/* The dataset constants the original hard-codes (§12 items 1-2), with their defaults set by
 * rhd_dataset_config_init. */
typedef struct rhd_dataset_config {
    double translation_divisor; /* 23: raw translation is divided by this first */
    double scale;               /* 0.6: then multiplied by this */
    double offset[3];           /* (0,0,0): then this is added (world x, y, z after the axis cycle) */
    int fy_square_pixels;       /* 0 (original): fy = fl/sw*H, right only for square images;
                                 * 1: fy = fx (square pixels, horizontal sensor fit) */
    float bg[3];                /* (1,1,1): background of the ground-truth composite (§1.5) */
    int skip_incomplete;        /* 0 (default): a view with only one of its two files is an error
                                 * naming the avatar, the views and the missing file; 1 (a tool's
                                 * --skip-incomplete): such views are left out, listed on stderr */
} rhd_dataset_config;

/* One view's metadata: json["cameras"][0]. */
typedef struct rhd_camera {
    int width, height;   /* resolution [W, H], pixels */
    double focal_length; /* mm */
    double sensor_width; /* mm */
    double c2w[4][4];    /* transformation as stored: Blender camera-to-world, row-major */
} rhd_camera;

typedef struct rhd_camera_intrinsics {
    int width, height;        /* W, H (downscale 1) */
    double fx, fy, cx, cy;    /* pixels; cx = W/2, cy = H/2 (no half-pixel shift) */
    int fy_from_sensor_width; /* 1: fy = fl/sw*H as in the original (config default) */
} rhd_camera_intrinsics;

typedef struct rhd_subject {
    char *name; /* last path component of the list line: names every output file */
    char *dir;  /* the subject directory */
} rhd_subject;

typedef struct rhd_subject_list {
    int n;
    rhd_subject *items;
} rhd_subject_list;

typedef struct rhd_view {
    int index;            /* original view index (the number in the file names) */
    double c2w_raw[4][4]; /* transformation from the JSON */
    double pose[4][4];    /* converted world c2w P (§1.3) */
} rhd_view;

/* One subject's cameras for a chosen set of views (images are loaded on demand). */
typedef struct rhd_dataset {
    char *dir;                 /* subject directory */
    rhd_dataset_config cfg;    /* the configuration it was opened with */
    rhd_camera cam0;           /* view 0's metadata (the intrinsics' source) */
    rhd_camera_intrinsics K;
    int n;                     /* number of views */
    rhd_view *views;           /* [n], in the order given (ascending for a range string) */
} rhd_dataset;

#ifdef __cplusplus
extern "C" {
#endif
void rhd_dataset_config_init(rhd_dataset_config *cfg);

/* --- cameras (formats/cameras.md) --- */
/* Parse and validate one metadata JSON held in memory (need not be NUL-terminated); `name` is
 * used in messages. Checks: valid JSON object, a non-empty 'cameras' array, cameras[0] with a
 * resolution of two integers in 1..16384, positive finite focal_length and sensor_width, and a
 * 4x4 transformation of finite numbers whose last row is 0 0 0 1 and whose rotation is orthonormal
 * (max |R^T R - I| <= 1e-3) with determinant +1. Returns 0 or -1 with a message naming the field. */
int rhd_camera_parse(const char *text, size_t n, const char *name, rhd_camera *cam, rhd_err *e);
int rhd_camera_read(const char *path, rhd_camera *cam, rhd_err *e);
/* §1.2: fx = fl/sw*W, fy = fl/sw*H (or fx with cfg->fy_square_pixels), cx = W/2, cy = H/2. */
void rhd_camera_intrinsics_from_camera(rhd_camera_intrinsics *K, const rhd_camera *cam, const rhd_dataset_config *cfg);
/* §1.3: P = axis-cycled, OpenCV-camera, rescaled version of the Blender c2w M. */
void rhd_pose_convert(double P[4][4], const double M[4][4], const rhd_dataset_config *cfg);

/* --- subjects --- */
/* Read a subject list: one path per line, relative to data_root (NULL: the list file's directory;
 * absolute lines are used as they are). Blank lines and lines starting with '#' are skipped,
 * surrounding spaces and trailing '/' ignored. Each directory must exist; two lines may not give
 * the same name. An empty list is an error. */
int rhd_subjects_read_list(rhd_subject_list *out, const char *list_path, const char *data_root, rhd_err *e);
/* Every subdirectory of data_root (hidden ones aside) that holds metadata_000000.json, sorted by
 * name (strcmp). A
 * subdirectory holding view files (metadata_%06d.json or img_proc_fg_%06d.png) but no
 * metadata_000000.json is an incomplete avatar: an error naming it and the missing file, or with
 * skip_incomplete left out and listed on stderr. Other subdirectories are not avatars. */
int rhd_subjects_scan(rhd_subject_list *out, const char *data_root, rhd_err *e); /* skip_incomplete 0 */
int rhd_subjects_scan_opt(rhd_subject_list *out, const char *data_root, int skip_incomplete, rhd_err *e);
void rhd_subject_list_free(rhd_subject_list *l);

/* --- views --- */
/* The views present in a subject directory: sorted indices v for which both metadata_%06d.json
 * and img_proc_fg_%06d.png exist (malloc'd *views, count *n; *n may be 0). */
int rhd_dataset_list_views(const char *subject_dir, int **views, int *n, rhd_err *e);
/* Open a subject for the given views (view indices, e.g. from rhd_parse_ranges; NULL: every view
 * with at least one of its two files). Reads view 0's metadata for the intrinsics and every listed
 * view's metadata for its pose; every listed view must have both files (missing ones are reported
 * together, as ranges, naming the avatar directory and the missing file kind) unless
 * cfg->skip_incomplete, which leaves them out and lists them on stderr; and the same resolution,
 * focal length and sensor width as view 0. cfg NULL: the defaults (incomplete views are errors). */
int rhd_dataset_open(rhd_dataset *d, const char *subject_dir, const int *views, int n,
                     const rhd_dataset_config *cfg, rhd_err *e);
void rhd_dataset_close(rhd_dataset *d);
/* Position of original view index `view` in d->views, or -1. */
int rhd_dataset_find(const rhd_dataset *d, int view);
/* Path of a view's file: kind RHD_VIEW_META_FMT or RHD_VIEW_IMAGE_FMT (malloc'd). */
char *rhd_dataset_view_path(const char *subject_dir, const char *kind, int view);

/* Load view `view` (an original index) as float RGBA (H, W, 4) at the dataset resolution. The PNG
 * must be 8-bit RGB, RGBA or palette (gray and 16-bit files are rejected, naming their format) and
 * exactly W x H (a mismatch names both sizes). RGB images get alpha 1. */
int rhd_dataset_load_image(const rhd_dataset *d, int view, rhd_image *img, rhd_err *e);
/* §1.5 ground truth: gt = rgb*a + bg*(1-a) per pixel, in float32; gt (npix, 3), rgba (npix, 4). */
void rhd_composite_bg(float *gt, const float *rgba, int64_t npix, const float bg[3]);
/* Load a view and composite it on d->cfg.bg: *gt is malloc'd (H, W, 3). */
int rhd_dataset_load_gt(const rhd_dataset *d, int view, float **gt, rhd_err *e);

/* --- does the avatar fit the scene box? (tools/bring-your-own-data.md) --- */
/* What the views say about an avatar and the renderer's box [-bound,bound]^3 after the pose
 * conversion (divisor, scale, offset): camera centres inside the box, and the foreground pixels
 * (alpha > 0.5, on a grid of stride max(1, W/128) pixels) whose rays miss the box,
 * which no triplane can reproduce; and points of a grid around the box that lie outside it but in
 * the foreground of every view checked that sees them (the visual hull: parts of the avatar out of
 * the box). */
typedef struct rhd_box_fit {
    int views;          /* views checked */
    int cams_inside;    /* camera centres inside the box */
    int first_inside;   /* the original index of the first such view (-1: none) */
    int64_t fg, miss;   /* foreground pixels checked, and those whose ray misses the box */
    double miss_max;    /* the farthest such ray passes this far from the box (world units) */
    int worst_view;     /* its view (-1: none) */
    int64_t hull_out;   /* grid points outside the box in the visual hull of the views checked */
    double hull_max;    /* the farthest of them from the box (world units; 0: none) */
} rhd_box_fit;
/* Check up to max_views views of d, evenly spread (their images are read). */
int rhd_dataset_box_check(const rhd_dataset *d, double bound, int max_views, rhd_box_fit *r, rhd_err *e);
/* Open subject_dir (every view present) with cfg and check 8 views: 1 with a one-line warning in
 * msg (naming the avatar, the share of its foreground outside the box, by how far, and what to
 * change) when it leaves the box, 0 when it fits, -1 on an error (e). */
int rhd_dataset_box_warning(const char *subject_dir, const char *avatar, const rhd_dataset_config *cfg, double bound,
                            char *msg, size_t n, rhd_err *e);
#ifdef __cplusplus
}
#endif
#endif
