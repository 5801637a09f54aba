/* common/render_batch.h: rhd-render's batch mode (--list FILE -o OUTROOT): the list of items, and
 * the loop that renders this rank's share of them, each into OUTROOT/NAME/, skipping the items
 * already done, going on past a failing item (tools/rhd-render.md, "Batch mode").
 *
 * The list: one item per line, `NAME TRIPLANE [DATA_DIR]`, fields separated by spaces or tabs (so
 * no field holds a space); blank lines and comments ('#' at the start of a line or after a space
 * or tab, to the end of the line) are skipped; a trailing '\r' is ignored. NAME is a folder name
 * (no '/', not "." or "..", no control characters; unique in the list); TRIPLANE and DATA_DIR are
 * paths, a relative one taken from the list file's folder (as rhd-sample's --list). DATA_DIR
 * replaces the tool's --data for that item.
 *
 * Completion: an item is done when OUTROOT/NAME/done.json exists and is newer than its triplane
 * and every other input of the run (the decoder): done.json, the item's JSON line, is written last
 * (temp file + rename), after every other output, and removed before an item is redone; a killed
 * run is rerun as it was started. While an item renders, OUTROOT/NAME/.lock is held
 * (rhd_lock_dir), so two runs never write one item. Items are sharded as the other batch tools
 * (rhd_shard: item i to rank i mod world). */
#ifndef RHD_RENDER_BATCH_H
#define RHD_RENDER_BATCH_H
#include "common/cli.h"
#include "common/err.h"

typedef struct rhd_render_item {
    char *name;     /* the output folder's name under OUTROOT */
    char *triplane; /* path (resolved against the list's folder) */
    char *data;     /* path or NULL (the tool's --data) */
    int line;       /* line number in the list file */
} rhd_render_item;

/* What the tool's render of one item reports: the mean metrics over `count` views (count 0: no
 * metrics computed; a NaN mean is written as null) and the frames written. */
typedef struct rhd_render_result {
    int count, frames;
    double psnr, ssim, lpips;
} rhd_render_result;

/* Render item `it` into folder `dir` (made and locked already). Returns 0, or -1 with e set: the
 * item failed (reported, the batch goes on and exits 1 at the end). */
typedef int (*rhd_render_item_fn)(void *user, const rhd_render_item *it, const char *dir, rhd_render_result *res,
                                  rhd_err *e);

typedef struct rhd_render_batch {
    const char *outroot;        /* -o OUTROOT */
    rhd_shard shard;            /* --rank/--world */
    int force;                  /* redo done items */
    const char *const *inputs;  /* the run's shared inputs (decoder, ...): done.json must be newer */
    int ninputs;                /* NULL entries are skipped */
} rhd_render_batch;

#ifdef __cplusplus
extern "C" {
#endif
/* Read the list as documented above. -1 with e when the file cannot be read; -2 with e for a bad
 * line ("FILE:LINE: <what was found>, expected <what>"), a repeated NAME or a list without items
 * (the tool reports these as usage errors). */
int rhd_render_list_read(const char *path, rhd_render_item **items, int *n, rhd_err *e);
void rhd_render_list_free(rhd_render_item *items, int n);
/* OUTROOT/NAME (malloc'd). */
char *rhd_render_item_dir(const char *outroot, const rhd_render_item *it);
/* This rank's items in list order: skip the done ones (unless force), lock, render with fn, then
 * write done.json. One JSON line per item of this rank on stdout:
 *   {"name": N, "status": "ok", "seconds": S, "output": "OUTROOT/N", "frames": F,
 *    "mean": {"psnr": P, "ssim": Q[, "lpips": L]}, "count": C}          (mean/count with metrics)
 *   {"name": N, "status": "skipped", "output": ...}  {"name": N, "status": "failed", "error": M}
 * A failed item is also named on stderr. Returns the number of failed items (0: all ok). */
int rhd_render_batch_run(const rhd_render_batch *b, const rhd_render_item *items, int n, rhd_render_item_fn fn,
                         void *user);
#ifdef __cplusplus
}
#endif
#endif
