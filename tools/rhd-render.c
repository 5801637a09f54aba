/* tools/rhd-render: render a triplane with a fitted decoder (spec fitting.md §2-§6, §10): the
 * views of a dataset folder, the original's 60-frame spiral or a plain orbit, or cameras from
 * JSON files; RGB(A) PNGs, 16-bit depth, opacity; PSNR/SSIM(/LPIPS) JSON against the ground
 * truth; a contact sheet; a marching-cubes mesh with decoded colours. Mirrors the test and
 * test_video modes of Renderer/TriplaneFit (main.py --test), see tools/rhd-render.md. */
#include "common/backend.h"
#include "common/cameras_path.h"
#include "common/cli.h"
#include "common/contact_sheet.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/lpips.h"
#include "common/mesh.h"
#include "common/metrics.h"
#include "common/models/decoder.h"
#include "common/models/renderer.h"
#include "common/fit_views.h"
#include "common/render_batch.h"
#include "common/render_cameras.h"
#include "common/model_io.h"
#include "formats/png.h"
#include "kernels/elementwise.h"
#include "kernels/occgrid.h"
#include "kernels/rays.h"
#include "kernels/resample.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_spiral_choices[] = {"proper", "mirrored", NULL};

typedef struct opts {
    rhd_common_opts common;
    const char *decoder, *data, *views, *camera, *bg_str, *target_str, *contact_sheet, *mesh, *lpips;
    int spiral, orbit, rgba, depth, opacity, metrics, no_images, clamp, no_clamp, handedness, double_norm, no_warmup;
    int skip_incomplete;
    long long frames, downscale, size, resolution, mesh_res, grid_size, max_steps, warmup, sheet_downscale;
    double elevation, radius, fov, mesh_threshold, bound, min_near, density_thresh, T_thresh;
    double divisor, scale;
    const char *offset_str;
    const char *list; /* batch mode: --list FILE -o OUTROOT */
    int force;
    rhd_shard shard;
} opts;

static const rhd_opt options[] = {
    RHD_OPT_GROUP_("inputs"),
    RHD_OPT_STRING_(0, "decoder", opts, decoder, "FILE", "decoder (or fit checkpoint) safetensors (required)"),
    RHD_OPT_INT_(0, "triplane-res", opts, resolution, "R", "resize the triplane bicubically to R before rendering (0: render it at its own resolution, as rhd-fit evaluates it)", 0, 8192),
    RHD_OPT_INT_(0, "resolution", opts, resolution, "R", "the former name of --triplane-res", 0, 8192),
    RHD_OPT_FLAG_(0, "clamp", opts, clamp, "read clamp(T,-1,1) (the default, as training and rhd-fit's evaluation)"),
    RHD_OPT_FLAG_(0, "no-clamp", opts, no_clamp, "read T unclamped, as the original's test mode (§12.6)"),
    RHD_OPT_GROUP_("cameras (one of --data, --spiral, --orbit, --camera)"),
    RHD_OPT_STRING_(0, "data", opts, data, "DIR", "a subject folder (metadata_%06d.json + img_proc_fg_%06d.png): render its views; intrinsics for --spiral/--orbit"),
    RHD_OPT_STRING_(0, "views", opts, views, "LIST", "views of --data to render, e.g. 0-4 or 0,7,300-309 (default: every view present)"),
    RHD_OPT_FLAG_(0, "spiral", opts, spiral, "the original's test_video spiral (fitting.md §10.3)"),
    RHD_OPT_CHOICE_(0, "spiral-handedness", opts, handedness, "H", "proper (default) or mirrored (the original's det -1 frames)", k_spiral_choices),
    RHD_OPT_FLAG_(0, "orbit", opts, orbit, "a plain orbit around --target at --elevation"),
    RHD_OPT_INT_(0, "frames", opts, frames, "N", "frames of --spiral/--orbit", 1, 100000),
    RHD_OPT_DOUBLE_(0, "elevation", opts, elevation, "DEG", "orbit elevation (degrees, > 0 looks down)", -89.9, 89.9),
    RHD_OPT_DOUBLE_(0, "radius", opts, radius, "R", "orbit radius (0: the spiral's 1.45*sqrt(3)*bound)", 0, 1e6),
    RHD_OPT_STRING_(0, "target", opts, target_str, "X,Y,Z", "orbit target (default: where --data's cameras look, else the scene box's centre 0,0,0)"),
    RHD_OPT_STRING_(0, "camera", opts, camera, "FILE", "a camera JSON in the dataset format (metadata_%06d.json)"),
    RHD_OPT_INT_(0, "size", opts, size, "N", "image size for --spiral/--orbit without --data (square)", 8, 16384),
    RHD_OPT_DOUBLE_(0, "fov", opts, fov, "DEG", "horizontal field of view without --data", 1, 179),
    RHD_OPT_INT_(0, "downscale", opts, downscale, "F", "render at 1/F of the camera resolution (ground truth box-averaged)", 1, 64),
    RHD_OPT_DOUBLE_(0, "translation-divisor", opts, divisor, "D", "dataset pose translation divisor (23)", 1e-9, 1e9),
    RHD_OPT_DOUBLE_(0, "pose-scale", opts, scale, "S", "dataset pose scale (0.6)", 1e-9, 1e9),
    RHD_OPT_STRING_(0, "offset", opts, offset_str, "X,Y,Z", "then added to the camera positions (default 0,0,0; as rhd-fit --offset)"),
    RHD_OPT_GROUP_("outputs (-o DIR holds the frames)"),
    RHD_OPT_FLAG_(0, "rgba", opts, rgba, "write straight-alpha RGBA PNGs instead of RGB on --bg"),
    RHD_OPT_STRING_(0, "bg", opts, bg_str, "R,G,B", "background of the written frames in [0,1] (default 1,1,1; metrics always use white, as the ground truth)"),
    RHD_OPT_FLAG_(0, "depth", opts, depth, "also write depth_NNNN.png: 16-bit (t - near)/(far - near) (§6.2)"),
    RHD_OPT_FLAG_(0, "opacity", opts, opacity, "also write opacity_NNNN.png: 8-bit accumulated weight"),
    RHD_OPT_FLAG_(0, "no-images", opts, no_images, "write no frame PNGs (metrics, sheet or mesh only)"),
    RHD_OPT_FLAG_(0, "metrics", opts, metrics, "print per-view and mean PSNR and SSIM (and LPIPS with --lpips) as JSON on stdout (needs --data)"),
    RHD_OPT_STRING_(0, "lpips", opts, lpips, "WEIGHTS", "add LPIPS to --metrics with these lpips weights (safetensors, formats/lpips.md; made by pipelines/lpips_weights.py)"),
    RHD_OPT_STRING_(0, "contact-sheet", opts, contact_sheet, "PNG", "ground truth beside render for each view (needs --data)"),
    RHD_OPT_INT_(0, "sheet-downscale", opts, sheet_downscale, "F", "shrink the contact sheet's images by F", 1, 64),
    RHD_OPT_STRING_(0, "mesh", opts, mesh, "PLY", "write the density iso-surface (marching cubes) with decoded vertex colours"),
    RHD_OPT_INT_(0, "mesh-res", opts, mesh_res, "N", "marching-cubes grid points per axis", 2, RHD_MESH_MAX_RES),
    RHD_OPT_DOUBLE_(0, "mesh-threshold", opts, mesh_threshold, "T", "density iso value", 0, 1e30),
    RHD_OPT_GROUP_("renderer (defaults: the original's test mode)"),
    RHD_OPT_DOUBLE_(0, "bound", opts, bound, "B", "scene box [-B,B]^3", 1e-6, 1e6),
    RHD_OPT_DOUBLE_(0, "min-near", opts, min_near, "T", "nearest ray start", 0, 1e6),
    RHD_OPT_INT_(0, "grid-size", opts, grid_size, "N", "occupancy grid size (power of two)", 8, 1024),
    RHD_OPT_INT_(0, "max-steps", opts, max_steps, "N", "samples per ray at most", 1, 1 << 20),
    RHD_OPT_DOUBLE_(0, "density-thresh", opts, density_thresh, "T", "occupancy threshold (min with the mean density)", 0, 1e30),
    RHD_OPT_DOUBLE_(0, "T-thresh", opts, T_thresh, "T", "transmittance at which a ray stops", 0, 1),
    RHD_OPT_INT_(0, "warmup", opts, warmup, "N", "full occupancy-grid updates before rendering", 1, 1000),
    RHD_OPT_FLAG_(0, "skip-incomplete", opts, skip_incomplete, "leave out --data views with only one of their two files, listing them (default: an error)"),
    RHD_OPT_FLAG_(0, "double-normalization", opts, double_norm, "the original's second coordinate normalisation (§12.3; same for bound 1)"),
    RHD_OPT_GROUP_("batch mode (--list FILE -o OUTROOT: each item into OUTROOT/NAME/, tools/rhd-render.md)"),
    RHD_OPT_STRING_(0, "list", opts, list, "FILE", "render the items of FILE, one line 'NAME TRIPLANE [DATA_DIR]' each (DATA_DIR replaces --data), the decoder loaded once; --contact-sheet/--mesh then name files in OUTROOT/NAME/, --metrics writes OUTROOT/NAME/metrics.json"),
    RHD_OPT_FLAG_(0, "force", opts, force, "with --list: render the items already done too (OUTROOT/NAME/done.json newer than the triplane and the decoder)"),
    RHD_SHARD_OPTS(opts, shard),
    RHD_COMMON_OPTS(opts),
    RHD_OPT_END_};

static const rhd_cli cli = {
    "rhd-render",
    "rhd-render --decoder D (--data DIR | --spiral | --orbit | --camera JSON) [options] TRIPLANE\n"
    "       rhd-render --decoder D --list FILE -o OUTROOT [options]",
    "Render a triplane (rhd safetensors, or the original's .npy: [3,1,C,R,R], [3,C,R,R] or the rolled-out\n"
    "[C,R,3R]) with a fitted decoder: the cameras of a dataset folder, the original's 60-frame spiral, a\n"
    "plain orbit, or a camera JSON. Writes frames into -o DIR, metrics JSON on stdout, a contact sheet and\n"
    "a coloured marching-cubes mesh. Batch mode (--list FILE -o OUTROOT): every item of FILE ('NAME TRIPLANE\n"
    "[DATA_DIR]' a line) into OUTROOT/NAME/ as a single run with -o OUTROOT/NAME would, one JSON line per item\n"
    "on stdout, done items skipped (--force), items sharded over the ranks of mpirun/srun (--rank/--world).\n"
    "Exit status: 0 ok, 1 runtime error (with --list: an item failed, the others rendered), 2 usage error.\n",
    options,
    "examples (after rhd-fit's: its run fit1/ on the bundled data; tests/tools/t0840-examples-fit.sh runs them):\n"
    "  rhd-render --decoder fit1/decoder.safetensors --data tests/data/mini/avatar_100 --views 100 --downscale 2 --grid-size 32 --max-steps 64 --metrics \\\n"
    "             --contact-sheet sheet.png -o out/ fit1/triplanes/avatar_100.safetensors\n"
    "  rhd-render --decoder fit1/decoder.safetensors --data tests/data/mini/avatar_100 --spiral --frames 2 --downscale 2 --grid-size 32 --max-steps 64 \\\n"
    "             -o spiral/ fit1/triplanes/avatar_100.safetensors\n"
    "  rhd-render --decoder fit1/decoder.safetensors --no-images --mesh a.ply --mesh-res 64 --mesh-threshold 2 \\\n"
    "             fit1/triplanes/avatar_100.safetensors\n"
    "with LPIPS weights (pipelines/lpips_weights.py makes them; not bundled):\n"
    "  rhd-render --decoder fit1/decoder.safetensors --data tests/data/mini/avatar_100 --views 100 --metrics \\\n"
    "             --lpips alex.safetensors --no-images fit1/triplanes/avatar_100.safetensors\n"};

/* --- small parsers ----------------------------------------------------------------------------- */

static char *path_fmt(const char *dir, const char *stem, int id) {
    size_t n = strlen(dir) + strlen(stem) + 32;
    char *p = rhd_xmalloc(n);
    snprintf(p, n, "%s/%s_%04d.png", dir, stem, id);
    return p;
}

/* --- inputs -------------------------------------------------------------------------------------- */

/* --- cameras ------------------------------------------------------------------------------------- */

typedef struct frames {
    int n;
    int *id;        /* view index or frame number: names the files */
    float *c2w;     /* [n][12] */
    rhd_intrinsics K;
    int W, H;
} frames;

static void scale_intrinsics(frames *f, int ds) {
    f->W /= ds, f->H /= ds;
    f->K.fx /= ds, f->K.fy /= ds, f->K.cx /= ds, f->K.cy /= ds;
}

/* --- mesh callbacks ------------------------------------------------------------------------------ */

typedef struct mesh_user {
    rhd_renderer *r;
    const rhd_triplane *T; /* on the context's side */
    const rhd_mesh *m;  /* for the colour pass: vertex normals */
    const float *normals;
    float *x, *pts, *dirs, *sig, *col; /* on the context's side */
    float *hdirs;                      /* host staging */
    int64_t cap;
    double dmax;                       /* the largest density seen by mesh_density */
} mesh_user;

static void mu_free(mesh_user *u) {
    rhd_ctx *c = u->r->ctx;
    rhd_buf_free(c, u->x), rhd_buf_free(c, u->pts), rhd_buf_free(c, u->dirs), rhd_buf_free(c, u->sig);
    rhd_buf_free(c, u->col);
    free(u->hdirs);
    u->x = u->pts = u->dirs = u->sig = u->col = u->hdirs = NULL, u->cap = 0;
}

/* Points xyz [n,3] (host, world) -> u->pts (context side, sampler coordinates). */
static void mu_points(mesh_user *u, const float *xyz, int64_t n) {
    rhd_ctx *c = u->r->ctx;
    if (n > u->cap) {
        mu_free(u);
        size_t f = sizeof(float) * (size_t)n;
        u->x = rhd_buf_alloc(c, 3 * f), u->pts = rhd_buf_alloc(c, 3 * f), u->dirs = rhd_buf_alloc(c, 3 * f);
        u->sig = rhd_buf_alloc(c, f), u->col = rhd_buf_alloc(c, 3 * f);
        u->hdirs = rhd_xmalloc(3 * f);
        u->cap = n;
    }
    float s = 1.f / u->r->cfg.bound;
    if (u->r->cfg.double_norm) s /= u->r->cfg.bound;
    rhd_buf_upload(c, u->x, xyz, sizeof(float) * 3 * (size_t)n);
    rhd_scale(c, u->pts, u->x, s, (int64_t)(3 * n));
}

static int mesh_density(void *user, float *out, const float *xyz, int64_t n, rhd_err *e) {
    mesh_user *u = user;
    mu_points(u, xyz, n);
    rhd_decoder_infer(u->r->ctx, u->r->dec, &u->r->acts, u->sig, NULL, u->pts, NULL, u->T->planes, u->T->R, u->T->clamp, n);
    rhd_buf_download(u->r->ctx, out, u->sig, sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        if (out[i] > u->dmax) u->dmax = out[i];
    return 0;
}

/* Colour seen looking at the surface head-on: view direction = minus the vertex normal. */
static int mesh_color(void *user, float *rgb, const float *xyz, int64_t n, rhd_err *e) {
    mesh_user *u = user;
    mu_points(u, xyz, n);
    int64_t first = (int64_t)((xyz - u->m->xyz) / 3);
    for (int64_t i = 0; i < 3 * n; i++) u->hdirs[i] = -u->normals[3 * first + i];
    rhd_buf_upload(u->r->ctx, u->dirs, u->hdirs, sizeof(float) * 3 * (size_t)n);
    rhd_decoder_infer(u->r->ctx, u->r->dec, &u->r->acts, u->sig, u->col, u->pts, u->dirs, u->T->planes, u->T->R,
                      u->T->clamp, n);
    rhd_buf_download(u->r->ctx, rgb, u->col, sizeof(float) * 3 * (size_t)n);
    return 0;
}

static float *vertex_normals(const rhd_mesh *m) {
    float *nrm = rhd_xcalloc(3 * (size_t)(m->nv ? m->nv : 1), sizeof(float));
    for (int64_t t = 0; t < m->nt; t++) {
        const int32_t *v = m->tri + 3 * t;
        const float *a = m->xyz + 3 * v[0], *b = m->xyz + 3 * v[1], *c = m->xyz + 3 * v[2];
        float u[3] = {b[0] - a[0], b[1] - a[1], b[2] - a[2]}, w[3] = {c[0] - a[0], c[1] - a[1], c[2] - a[2]};
        float n[3] = {u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2], u[0] * w[1] - u[1] * w[0]};
        for (int q = 0; q < 3; q++)
            for (int k = 0; k < 3; k++) nrm[3 * v[q] + k] += n[k]; /* area weighted */
    }
    for (int64_t i = 0; i < m->nv; i++) {
        float *n = nrm + 3 * i, l = sqrtf(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
        if (l > 0) n[0] /= l, n[1] /= l, n[2] /= l;
        else n[0] = 1, n[1] = 0, n[2] = 0;
    }
    return nrm;
}

/* --- main ---------------------------------------------------------------------------------------- */

static void box_down(float *dst, const float *src, int W, int H, int f) {
    int w = W / f, h = H / f;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double s = 0;
                for (int dy = 0; dy < f; dy++)
                    for (int dx = 0; dx < f; dx++) s += src[(((int64_t)y * f + dy) * W + (int64_t)x * f + dx) * 3 + c];
                dst[((int64_t)y * w + x) * 3 + c] = (float)(s / ((double)f * f));
            }
}

/* --- steps of main ------------------------------------------------------------------------------ */

/* Which camera source the options name: --data (its views), --spiral, --orbit, --camera. */
static int n_sources(const opts *o) { return (o->data && !o->spiral && !o->orbit) + o->spiral + o->orbit + (o->camera != NULL); }
static int from_views(const opts *o) { return o->data && !o->spiral && !o->orbit; }
static int render_wanted(const opts *o) { return !o->no_images || o->metrics || o->contact_sheet; }

static void usage_checks(const opts *o, int npos, double bg[3], double target[3]) {
    if (npos != 1) rhd_usage_error("expected one TRIPLANE file, got %d arguments", npos);
    if (!o->decoder) rhd_usage_error("expected --decoder FILE (the fitted decoder, e.g. --decoder decoder.safetensors)");
    if (o->skip_incomplete && !o->data)
        rhd_usage_error("--skip-incomplete applies to the views of --data DIR, expected --data with it");
    int nsrc = n_sources(o);
    if (nsrc > 1 || (nsrc == 0 && render_wanted(o)))
        rhd_usage_error("expected exactly one camera source: --data DIR (its views), --spiral, --orbit or --camera JSON");
    if (o->grid_size & (o->grid_size - 1)) rhd_usage_error("--grid-size %lld: expected a power of two (e.g. 256)", o->grid_size);
    if (o->clamp && o->no_clamp) rhd_usage_error("--clamp and --no-clamp: expected at most one");
    if ((o->metrics || o->contact_sheet) && !from_views(o))
        rhd_usage_error("--metrics and --contact-sheet compare with ground truth: they need --data DIR without --spiral/--orbit");
    if (o->lpips && !o->metrics) rhd_usage_error("--lpips adds LPIPS to the metrics JSON: it needs --metrics (e.g. --metrics --lpips alex.safetensors)");
    if (o->views && !from_views(o)) rhd_usage_error("--views selects views of --data; it does not apply to --spiral/--orbit/--camera");
    if (!o->no_images && !o->common.output) rhd_usage_error("expected -o DIR for the frames (or --no-images)");
    if (o->bg_str && (rhd_parse_vec3(o->bg_str, bg) || bg[0] < 0 || bg[0] > 1 || bg[1] < 0 || bg[1] > 1 || bg[2] < 0 || bg[2] > 1))
        rhd_usage_error("--bg takes three numbers in [0,1] (e.g. --bg 1,1,1), got '%s'", o->bg_str);
    if (o->target_str && rhd_parse_vec3(o->target_str, target))
        rhd_usage_error("--target takes three numbers (e.g. --target 0,0.4,0), got '%s'", o->target_str);
}

/* Before any work: no output is an input (a usage error naming both), every output can be written
 * (the frames' folder made and probed). */
static void output_checks(const opts *o, const char *tri) {
    const char *outs[3][2] = {{"-o", o->no_images ? NULL : o->common.output}, {"--contact-sheet", o->contact_sheet}, {"--mesh", o->mesh}};
    const char *ins[4][2] = {{"--decoder", o->decoder}, {"the triplane", tri}, {"--camera", o->camera}, {"--lpips", o->lpips}};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            if (outs[i][1] && ins[j][1] && rhd_same_file(outs[i][1], ins[j][1]))
                rhd_usage_error("%s %s: the same file as %s %s, expected an output that is not an input", outs[i][0],
                                outs[i][1], ins[j][0], ins[j][1]);
    rhd_err e = {0};
    for (int i = 1; i < 3; i++)
        if (outs[i][1] && rhd_check_output_writable(outs[i][0], outs[i][1], &e)) rhd_die("%s", e.msg);
    if (outs[0][1]) {
        size_t n = strlen(outs[0][1]) + 16;
        char *probe = rhd_xmalloc(n);
        snprintf(probe, n, "%s/rgb_0000.png", outs[0][1]);
        if (rhd_check_output_writable("-o", probe, &e)) rhd_die("%s", e.msg);
        free(probe);
    }
}

/* --list: the list read (a bad line: a usage error naming FILE:LINE), then a single run's usage
 * checks for every item, its DATA_DIR standing for --data; OUTROOT writable. */
static void batch_checks(const opts *o, int npos, double bg[3], double target[3], rhd_render_item **items, int *n) {
    if (npos != 0) rhd_usage_error("--list %s names the triplanes: expected no TRIPLANE argument, got %d", o->list, npos);
    if (!o->common.output) rhd_usage_error("--list needs -o OUTROOT (each item is written into OUTROOT/NAME/)");
    const char *rel[2][2] = {{"--contact-sheet", o->contact_sheet}, {"--mesh", o->mesh}};
    for (int k = 0; k < 2; k++)
        if (rel[k][1] && rel[k][1][0] == '/')
            rhd_usage_error("%s %s: with --list, expected a file name inside each OUTROOT/NAME/ (e.g. %s %s)", rel[k][0],
                            rel[k][1], rel[k][0], k ? "mesh.ply" : "sheet.png");
    rhd_err e = {0};
    int rc = rhd_render_list_read(o->list, items, n, &e);
    if (rc == -2) rhd_usage_error("--list %s", e.msg);
    if (rc) rhd_die("--list %s", e.msg);
    for (int i = 0; i < *n; i++) {
        const rhd_render_item *it = &(*items)[i];
        opts one = *o;
        if (it->data) one.data = it->data;
        if (it->data && o->camera)
            rhd_usage_error("%s:%d: DATA_DIR %s with --camera: expected one camera source (drop DATA_DIR, or --camera for --data's views)",
                            o->list, it->line, it->data);
        if (!one.data && (render_wanted(&one) || o->views) && !o->spiral && !o->orbit && !o->camera)
            rhd_usage_error("%s:%d: item %s has no DATA_DIR and no --data was given: expected NAME TRIPLANE DATA_DIR (its "
                            "cameras and ground truth), or --data DIR, --spiral, --orbit or --camera JSON", o->list, it->line, it->name);
        usage_checks(&one, 1, bg, target);
    }
    if (rhd_same_file(o->common.output, o->decoder) || rhd_same_file(o->common.output, o->list))
        rhd_usage_error("-o %s: an input (--decoder or --list), expected the folder OUTROOT for the items", o->common.output);
    char *probe = rhd_path_join(o->common.output, "done.json");
    if (rhd_check_output_writable("-o", probe, &e)) rhd_die("%s", e.msg);
    free(probe);
}

/* What main loads once, for every triplane it renders. */
typedef struct shared {
    const opts *o;
    rhd_ctx *ctx;
    rhd_decoder dec;
    rhd_lpips lpips;
    rhd_fit_data_cfg dcfg;
    double bg[3], target[3];
} shared;

/* The triplane on the context's side (device memory on CUDA), read clamped unless --no-clamp, at
 * its own resolution unless --triplane-res asks for a resize: rhd-fit's evaluation, so both give
 * the same PSNR. The decoder is loaded by main (common/model_io.h, the loader rhd-fit uses). */
static int load_triplane(const opts *o, const char *tri_path, rhd_ctx *ctx, const rhd_decoder *dec, rhd_triplane *T,
                         rhd_err *e) {
    rhd_triplane host;
    if (rhd_triplane_file_read(tri_path, &host, NULL, e)) return -1;
    if (host.C != dec->cfg.C) {
        int C = host.C, R = host.R;
        rhd_triplane_free(&host);
        return rhd_errf(e, "%s: a triplane with %d channels [3,%d,%d,%d], expected %d (the decoder %s)", tri_path, C, C,
                        R, R, dec->cfg.C, o->decoder);
    }
    int Rd = o->resolution ? (int)o->resolution : host.R;
    rhd_triplane_alloc(T, host.C, host.R, !o->no_clamp, ctx);
    rhd_buf_upload(ctx, T->planes, host.planes, rhd_triplane_bytes(&host));
    rhd_triplane_free(&host);
    if (T->R != Rd) {
        rhd_info("%s: resizing the triplane from %d to %d (bicubic, a = -0.75, align_corners false)", tri_path, T->R, Rd);
        rhd_triplane up;
        rhd_triplane_alloc(&up, T->C, Rd, T->clamp, ctx);
        rhd_resize_forward(ctx, up.planes, T->planes, 3, T->C, T->R, T->R, Rd, Rd, RHD_RESIZE_BICUBIC, 0);
        rhd_triplane_free(T);
        *T = up;
    }
    return 0;
}

/* --orbit's default target with --data: the point the data's cameras look at (every view's pose,
 * no images), else the centre of the scene box; the former default 0,0.4,0 (the spiral's) cropped
 * the bottom of the dev set's busts. */
static int orbit_target(const opts *o, const rhd_fit_data_cfg *dcfg, double target[3], rhd_err *e) {
    if (o->target_str || !o->data) return 0;
    rhd_fit_views all = {0};
    if (rhd_fit_views_load(&all, o->data, NULL, 0, dcfg, 0, e)) return -1;
    if (rhd_cameras_look_at(all.c2w, all.n, target) == 0)
        rhd_info("--orbit: target %.4g,%.4g,%.4g (where the %d cameras of %s look)", target[0], target[1], target[2], all.n,
                 o->data);
    rhd_fit_views_free(&all);
    return 0;
}

/* The cameras of the run at full resolution (*full_W x *full_H), then scaled by --downscale.
 * Returns 0, -1 with e (the data folder or camera file), or -2 with e (sizes: a usage error). */
static int load_frames(const opts *o, const char *tri_path, const rhd_fit_data_cfg *dcfg, double target[3], frames *fr,
                       int *full_W, int *full_H, rhd_err *e) {
    memset(fr, 0, sizeof *fr);
    int views = from_views(o), rc = 0;
    rhd_fit_views vw = {0};
    if (o->data) {
        int *vl = NULL, nv = 0, v0 = 0;
        if (views && o->views && rhd_parse_ranges(o->views, &vl, &nv, e)) rhd_usage_error("--views: %s", e->msg);
        /* views: the list, NULL (every view present), or view 0 only for the intrinsics */
        rc = rhd_fit_views_load(&vw, o->data, views ? vl : &v0, views ? nv : 1, dcfg, 0, e);
        free(vl);
        if (rc) return -1;
        fr->K = (rhd_intrinsics){vw.fx, vw.fy, vw.cx, vw.cy};
        fr->W = vw.W, fr->H = vw.H;
    } else if (o->camera) {
        float K[4];
        fr->n = 1;
        fr->id = rhd_xmalloc(sizeof(int));
        fr->id[0] = 0;
        fr->c2w = rhd_xmalloc(sizeof(float) * 12);
        if (rhd_camera_json_load(o->camera, dcfg, fr->c2w, K, &fr->W, &fr->H, e)) return -1;
        fr->K = (rhd_intrinsics){K[0], K[1], K[2], K[3]};
    } else {
        float fx = (float)(o->size / (2 * tan(o->fov * M_PI / 360)));
        fr->K = (rhd_intrinsics){fx, fx, o->size / 2.0f, o->size / 2.0f};
        fr->W = fr->H = (int)o->size;
    }
    if (views) {
        fr->n = vw.n;
        fr->id = rhd_xmalloc(sizeof(int) * (fr->n ? fr->n : 1));
        fr->c2w = rhd_xmalloc(sizeof(float) * 12 * (fr->n ? fr->n : 1));
        memcpy(fr->id, vw.index, sizeof(int) * fr->n);
        memcpy(fr->c2w, vw.c2w, sizeof(float) * 12 * fr->n);
    } else if (o->spiral || o->orbit) {
        fr->n = (int)o->frames;
        fr->id = rhd_xmalloc(sizeof(int) * fr->n);
        fr->c2w = rhd_xmalloc(sizeof(float) * 12 * fr->n);
        for (int i = 0; i < fr->n; i++) fr->id[i] = i;
        double radius = o->radius > 0 ? o->radius : 1.45 * sqrt(3.0) * o->bound;
        if (o->orbit) rc = orbit_target(o, dcfg, target, e);
        if (!rc) rc = o->spiral ? rhd_camera_spiral(fr->c2w, fr->n, o->bound, o->handedness == 1 ? RHD_SPIRAL_MIRRORED : RHD_SPIRAL_PROPER, e)
                                : rhd_camera_orbit(fr->c2w, fr->n, radius, o->elevation, target, e);
    }
    if (o->data) rhd_fit_views_free(&vw);
    if (rc) return -1;
    if (fr->n == 0 && render_wanted(o)) return rhd_errf(e, "%s: no views to render", o->data ? o->data : tri_path);
    if (n_sources(o) == 0) fr->W = fr->H = (int)o->size; /* mesh only: no camera */
    *full_W = fr->W, *full_H = fr->H;
    if (*full_W % o->downscale || *full_H % o->downscale) {
        rhd_errf(e, "--downscale %lld: the camera resolution %dx%d is not a multiple of it", o->downscale, *full_W, *full_H);
        return -2;
    }
    scale_intrinsics(fr, (int)o->downscale);
    return 0;
}

/* --mesh: the density iso-surface with decoded vertex colours, as PLY. An empty surface (no density
 * above the threshold) is an error naming the largest density found, and writes nothing. */
static int write_mesh(const opts *o, const char *tri_path, rhd_renderer *r, const rhd_triplane *T, rhd_err *err) {
    rhd_err e = {0};
    rhd_mesh_params mp;
    rhd_mesh_params_init(&mp);
    mp.res = (int)o->mesh_res;
    mp.threshold = o->mesh_threshold;
    for (int a = 0; a < 3; a++) mp.lo[a] = -o->bound, mp.hi[a] = o->bound;
    mesh_user mu = {r, T};
    mu.dmax = -INFINITY;
    rhd_decoder_infer_prepare(r->ctx, r->dec, &r->acts, T->planes, T->R, T->clamp);
    rhd_mesh m;
    if (rhd_mesh_extract(&m, &mp, mesh_density, &mu, &e)) rhd_die("--mesh %s: %s", o->mesh, e.msg);
    if (m.nt == 0) {
        rhd_decoder_infer_release(&r->acts);
        mu_free(&mu);
        rhd_mesh_free(&m);
        return rhd_errf(err, "--mesh %s: %s: no density above --mesh-threshold %g in the box at --mesh-res %lld (the "
                        "largest is %.4g), so no surface: expected a threshold below the largest density; nothing written",
                        o->mesh, tri_path, o->mesh_threshold, o->mesh_res, mu.dmax);
    }
    float *nrm = vertex_normals(&m);
    mu.m = &m, mu.normals = nrm;
    if (rhd_mesh_color(&m, mesh_color, &mu, 65536, &e)) rhd_die("--mesh %s: %s", o->mesh, e.msg);
    rhd_decoder_infer_release(&r->acts);
    char comment[256];
    snprintf(comment, sizeof comment, "rhd-render %s: %s, density iso %g, grid %d^3", RHD_VERSION, tri_path,
             o->mesh_threshold, mp.res);
    if (rhd_ply_write(o->mesh, &m, comment, &e)) rhd_die("--mesh %s", e.msg);
    rhd_info("--mesh %s: %ld vertices, %ld triangles, volume %.5g", o->mesh, m.nv, m.nt, rhd_mesh_volume(&m));
    free(nrm);
    mu_free(&mu);
    rhd_mesh_free(&m);
    return 0;
}

/* The frames' images and their metrics against the ground truth, for the contact sheet. */
typedef struct frame_bufs {
    float *rgb, *alpha, *depth, *pred, *out4, *gtd;
    float **sheet_gt, **sheet_pred;
    char **sheet_label;
} frame_bufs;

static void write_frame(const opts *o, const frames *fr, int f, const frame_bufs *b) {
    rhd_err e = {0};
    int W = fr->W, H = fr->H;
    int64_t N = (int64_t)W * H;
    char *p;
    if (o->rgba) {
        for (int64_t i = 0; i < N; i++) {
            for (int c = 0; c < 3; c++) b->out4[4 * i + c] = b->alpha[i] > 0 ? b->rgb[3 * i + c] / b->alpha[i] : 0.f;
            b->out4[4 * i + 3] = b->alpha[i];
        }
        p = path_fmt(o->common.output, "rgba", fr->id[f]);
        if (rhd_png_write(p, b->out4, W, H, 4, 8, RHD_PNG_TRUNC, &e)) rhd_die("%s", e.msg);
    } else {
        p = path_fmt(o->common.output, "rgb", fr->id[f]);
        if (rhd_png_write(p, b->pred, W, H, 3, 8, RHD_PNG_TRUNC, &e)) rhd_die("%s", e.msg);
    }
    free(p);
    if (o->depth) {
        p = path_fmt(o->common.output, "depth", fr->id[f]);
        if (rhd_png_write(p, b->depth, W, H, 1, 16, RHD_PNG_ROUND, &e)) rhd_die("%s", e.msg);
        free(p);
    }
    if (o->opacity) {
        p = path_fmt(o->common.output, "opacity", fr->id[f]);
        if (rhd_png_write(p, b->alpha, W, H, 1, 8, RHD_PNG_ROUND, &e)) rhd_die("%s", e.msg);
        free(p);
    }
}

/* View f's metrics against its ground truth (loaded now, box-averaged by --downscale). */
static int frame_metrics(const opts *o, shared *s, const frames *fr, int f, int full_W, int full_H, frame_bufs *b,
                         rhd_metrics_table *mt, rhd_err *e) {
    int W = fr->W, H = fr->H;
    int64_t N = (int64_t)W * H;
    rhd_fit_views one = {0};
    if (rhd_fit_views_load(&one, o->data, &fr->id[f], 1, &s->dcfg, 1, e)) return -1;
    if (o->downscale > 1) box_down(b->gtd, one.gt, full_W, full_H, (int)o->downscale);
    else memcpy(b->gtd, one.gt, sizeof(float) * 3 * N);
    rhd_fit_views_free(&one);
    /* the ground truth is on white (§1.5): compare with the render on white */
    for (int64_t i = 0; i < N; i++)
        for (int c = 0; c < 3; c++) b->pred[3 * i + c] = b->rgb[3 * i + c] + (1.f - b->alpha[i]);
    double psnr = rhd_image_psnr(b->pred, b->gtd, H, W), ssim, lp = NAN;
    if (rhd_image_ssim(b->pred, b->gtd, H, W, &ssim, e)) return -1;
    if (o->lpips && rhd_lpips_eval_hwc(&s->lpips, b->pred, b->gtd, H, W, &lp, e)) return rhd_err_prefix(e, "--lpips");
    rhd_metrics_add(mt, fr->id[f], psnr, ssim, lp);
    if (o->contact_sheet) {
        b->sheet_gt[f] = rhd_xmalloc(sizeof(float) * 3 * N);
        b->sheet_pred[f] = rhd_xmalloc(sizeof(float) * 3 * N);
        memcpy(b->sheet_gt[f], b->gtd, sizeof(float) * 3 * N);
        memcpy(b->sheet_pred[f], b->pred, sizeof(float) * 3 * N);
        b->sheet_label[f] = rhd_xmalloc(96);
        snprintf(b->sheet_label[f], 96, "view %d   PSNR %.2f dB   SSIM %.4f", fr->id[f], psnr, ssim);
    }
    return 0;
}

/* Render every frame: PNGs into -o, metrics into mt, the contact sheet. *hit: the pixels with
 * opacity > 0 over all frames. 0, or -1 with e (a ground-truth image). */
static int render_frames(const opts *o, shared *s, rhd_renderer *r, rhd_occgrid *grid, const rhd_triplane *T,
                         const frames *fr, int full_W, int full_H, rhd_metrics_table *mt, int64_t *hit, rhd_err *e) {
    int W = fr->W, H = fr->H, rc = 0;
    int64_t N = (int64_t)W * H;
    frame_bufs b = {rhd_xmalloc(sizeof(float) * 3 * N), rhd_xmalloc(sizeof(float) * N), rhd_xmalloc(sizeof(float) * N),
                    rhd_xmalloc(sizeof(float) * 3 * N), rhd_xmalloc(sizeof(float) * 4 * N), rhd_xmalloc(sizeof(float) * 3 * N)};
    if (o->contact_sheet) {
        b.sheet_gt = rhd_xcalloc(fr->n, sizeof(float *));
        b.sheet_pred = rhd_xcalloc(fr->n, sizeof(float *));
        b.sheet_label = rhd_xcalloc(fr->n, sizeof(char *));
    }
    *hit = 0;
    for (int f = 0; f < fr->n && !rc; f++) {
        rhd_render_camera cam = {fr->c2w + 12 * f, fr->K, W, H};
        rhd_renderer_render_view_full(r, grid, T, &cam, b.rgb, b.alpha, o->depth ? b.depth : NULL);
        for (int64_t i = 0; i < N; i++) {
            *hit += b.alpha[i] > 0;
            for (int c = 0; c < 3; c++) b.pred[3 * i + c] = b.rgb[3 * i + c] + (1.f - b.alpha[i]) * (float)s->bg[c];
        }
        if (!o->no_images) write_frame(o, fr, f, &b);
        if (o->metrics || o->contact_sheet) rc = frame_metrics(o, s, fr, f, full_W, full_H, &b, mt, e);
        if (!rc) rhd_info("frame %d/%d (%s %d) rendered", f + 1, fr->n, from_views(o) ? "view" : "frame", fr->id[f]);
    }
    if (o->contact_sheet && !rc) {
        rhd_sheet_row *rows = rhd_xmalloc(sizeof(rhd_sheet_row) * fr->n);
        for (int f = 0; f < fr->n; f++) rows[f] = (rhd_sheet_row){b.sheet_gt[f], b.sheet_pred[f], b.sheet_label[f]};
        rhd_contact_sheet sh;
        rhd_contact_sheet_init(&sh, W, H);
        sh.downscale = (int)o->sheet_downscale;
        rhd_err we = {0};
        if (rhd_contact_sheet_write(o->contact_sheet, &sh, rows, fr->n, &we)) rhd_die("--contact-sheet %s", we.msg);
        free(rows);
    }
    if (o->contact_sheet) {
        for (int f = 0; f < fr->n; f++) free(b.sheet_gt[f]), free(b.sheet_pred[f]), free(b.sheet_label[f]);
        free(b.sheet_gt), free(b.sheet_pred), free(b.sheet_label);
    }
    free(b.rgb), free(b.alpha), free(b.depth), free(b.pred), free(b.out4), free(b.gtd);
    return rc;
}

/* Render one triplane as the options say (o: the item's --data, -o, --contact-sheet, --mesh):
 * frames, metrics into mt, sheet, mesh. Returns 0, -1 with e (this triplane or its data: the
 * file, the views, a ground-truth image) or -2 with e (image sizes: a usage error). *hit: the
 * pixels with opacity > 0 over all frames; *nframes: the frames rendered. */
static int render_one(const opts *o, shared *s, const char *tri_path, rhd_metrics_table *mt, int *nframes, int64_t *hit,
                      rhd_err *e) {
    rhd_triplane T; /* on the context's side */
    *hit = 0, *nframes = 0;
    if (load_triplane(o, tri_path, s->ctx, &s->dec, &T, e)) return -1;
    frames fr;
    int full_W = 0, full_H = 0;
    double target[3] = {s->target[0], s->target[1], s->target[2]};
    int rc = load_frames(o, tri_path, &s->dcfg, target, &fr, &full_W, &full_H, e);
    if (!rc && (o->metrics || o->contact_sheet) && (fr.W < RHD_SSIM_WIN || fr.H < RHD_SSIM_WIN))
        rc = -2, rhd_errf(e, "--downscale %lld: %dx%d images are too small for SSIM (at least 11x11)", o->downscale, fr.W, fr.H);
    if (!rc && o->lpips && rhd_lpips_check_size(&s->lpips, fr.H, fr.W, e)) rc = -2, rhd_err_prefix(e, "--downscale %lld", o->downscale);
    if (rc) {
        free(fr.id), free(fr.c2w), rhd_triplane_free(&T);
        return rc;
    }
    /* --- renderer and occupancy grid (§10.2: reset, then full updates) --- */
    rhd_render_cfg rcfg;
    rhd_render_cfg_default(&rcfg);
    rcfg.bound = (float)o->bound, rcfg.min_near = (float)o->min_near, rcfg.grid_size = (int)o->grid_size;
    rcfg.max_steps = (int)o->max_steps, rcfg.T_thresh = (float)o->T_thresh, rcfg.density_thresh = (float)o->density_thresh;
    rcfg.double_norm = o->double_norm;
    for (int c = 0; c < 3; c++) rcfg.bg[c] = (float)s->bg[c];
    rhd_renderer r;
    rhd_renderer_init(&r, s->ctx, &s->dec, &rcfg);
    rhd_occgrid grid;
    rhd_occgrid_cfg gcfg = rhd_renderer_grid_cfg(&r);
    if (rhd_occgrid_init(s->ctx, &grid, &gcfg, e)) rhd_die("%s", e->msg);
    int need_render = render_wanted(o);
    if (need_render) rhd_renderer_grid_warmup(&r, &grid, &T, (uint64_t)o->common.seed, (int)o->warmup);
    if (!o->no_images) {
        char *probe = rhd_path_join(o->common.output, ".");
        if (rhd_mkdir_parents(probe, e)) rhd_die("-o %s: %s", o->common.output, e->msg);
        free(probe);
    }
    mt->device = rhd_ctx_device_label(s->ctx);
    if (o->lpips) mt->lpips_net = rhd_lpips_net_name(s->lpips.net);
    if (need_render) rc = render_frames(o, s, &r, &grid, &T, &fr, full_W, full_H, mt, hit, e);
    if (need_render && !rc) *nframes = fr.n;
    if (!rc && o->mesh) rc = write_mesh(o, tri_path, &r, &T, e);
    free(fr.id), free(fr.c2w);
    rhd_occgrid_free(s->ctx, &grid);
    rhd_renderer_free(&r);
    rhd_triplane_free(&T);
    return rc;
}

/* --- batch mode (--list FILE -o OUTROOT; common/render_batch.h) -------------------------------- */

/* Item it into dir, as `rhd-render ... -o dir TRIPLANE` with the item's --data and the sheet and
 * mesh in dir; --metrics into dir/metrics.json. An empty render (no pixel with opacity > 0 in any
 * frame) fails the item. */
static int batch_item(void *user, const rhd_render_item *it, const char *dir, rhd_render_result *res, rhd_err *e) {
    shared *s = user;
    opts one = *s->o;
    if (it->data) one.data = it->data;
    one.common.output = dir;
    char *sheet = one.contact_sheet ? rhd_path_join(dir, one.contact_sheet) : NULL;
    char *mesh = one.mesh ? rhd_path_join(dir, one.mesh) : NULL;
    one.contact_sheet = sheet, one.mesh = mesh;
    rhd_metrics_table mt;
    rhd_metrics_init(&mt);
    int64_t hit;
    int rc = render_one(&one, s, it->triplane, &mt, &res->frames, &hit, e);
    if (!rc && res->frames > 0 && hit == 0)
        rc = rhd_errf(e, "%s: an empty render (no pixel of the %d frames has opacity > 0): the decoder %s gives this "
                      "triplane no density in view", it->triplane, res->frames, one.decoder);
    if (!rc && one.metrics) {
        char *path = rhd_path_join(dir, "metrics.json");
        rhd_atomic a;
        if (rhd_atomic_open(&a, path, e)) rhd_die("%s", e->msg);
        if (rhd_metrics_write_json(&mt, a.f) || rhd_atomic_commit(&a, e)) rhd_die("%s: write failed", path);
        free(path);
        res->count = mt.n;
        rhd_metrics_mean(&mt, &res->psnr, &res->ssim, &res->lpips);
    }
    rhd_metrics_free(&mt);
    free(sheet), free(mesh);
    return rc ? -1 : 0;
}

static int run_batch(const opts *o, shared *s, rhd_render_item *items, int nitems) {
    const char *inputs[3] = {o->decoder, o->lpips, o->camera};
    rhd_render_batch b = {o->common.output, o->shard, o->force, inputs, 3};
    return rhd_render_batch_run(&b, items, nitems, batch_item, s) ? 1 : 0;
}

int main(int argc, char **argv) {
    rhd_set_prog("rhd-render");
    opts o;
    memset(&o, 0, sizeof o);
    rhd_common_opts_init(&o.common);
    rhd_shard_init(&o.shard);
    o.frames = 60, o.downscale = 1, o.size = 512, o.fov = 40, o.elevation = 15, o.sheet_downscale = 1;
    o.mesh_res = 256, o.mesh_threshold = 10, o.bound = 1, o.min_near = 0.2, o.grid_size = 256, o.max_steps = 1024;
    o.density_thresh = 10, o.T_thresh = 1e-4, o.warmup = 16, o.divisor = 23, o.scale = 0.6;
    int npos = rhd_cli_parse(&cli, argc, argv, &o);
    rhd_common_opts_apply(&o.common);
    rhd_shard_check(&o.shard);
    rhd_fs_install_signal_handlers();
    shared s = {.o = &o, .bg = {1, 1, 1}, .target = {0, 0, 0}}; /* orbit: the box's centre unless --data (orbit_target) */
    rhd_render_item *items = NULL;
    int nitems = 0;
    if (o.list) {
        batch_checks(&o, npos, s.bg, s.target, &items, &nitems);
    } else {
        usage_checks(&o, npos, s.bg, s.target);
        output_checks(&o, argv[1]);
    }

    rhd_err e = {0};
    s.ctx = rhd_ctx_open(o.common.device ? o.common.device : "cpu", &e);
    if (!s.ctx) rhd_die("%s", e.msg);
    rhd_ctx_set_tf32(s.ctx, o.common.tf32);
    rhd_ctx_set_bf16(s.ctx, o.common.bf16);
    if (o.lpips && rhd_lpips_load(&s.lpips, s.ctx, o.lpips, &e)) rhd_die("--lpips %s", e.msg);
    rhd_decoder_file_info dinfo;
    if (rhd_decoder_file_read(o.decoder, s.ctx, 0, &s.dec, &dinfo, &e)) rhd_die("%s", e.msg);
    rhd_fit_data_cfg_default(&s.dcfg);
    s.dcfg.translation_divisor = o.divisor, s.dcfg.scale = o.scale, s.dcfg.skip_incomplete = o.skip_incomplete;
    if (o.offset_str && rhd_parse_vec3(o.offset_str, s.dcfg.offset))
        rhd_usage_error("--offset takes three numbers (e.g. --offset 0,-0.1,0), got '%s'", o.offset_str);

    int status = 0;
    if (o.list) {
        status = run_batch(&o, &s, items, nitems);
        rhd_render_list_free(items, nitems);
    } else {
        rhd_metrics_table mt;
        rhd_metrics_init(&mt);
        int nframes;
        int64_t hit;
        int rc = render_one(&o, &s, argv[1], &mt, &nframes, &hit, &e);
        if (rc == -2) rhd_usage_error("%s", e.msg);
        if (rc) rhd_die("%s", e.msg);
        if (nframes > 0 && hit == 0)
            rhd_die("%s: an empty render (no pixel of the %d frames has opacity > 0): the decoder %s gives this "
                    "triplane no density in view (the frames written are background only)", argv[1], nframes, o.decoder);
        if (o.metrics && rhd_metrics_write_json(&mt, stdout)) rhd_die("stdout: write failed");
        rhd_metrics_free(&mt);
    }
    rhd_lpips_free(&s.lpips);
    rhd_decoder_free(&s.dec);
    rhd_ctx_close(s.ctx);
    int out_rc = rhd_close_stdout();
    return status ? status : out_rc;
}
