/* common/fit_run.h: executing a stage-1 fitting plan (spec fitting.md §7-§9) as a run: plan
 * entries one after the other (common/models/fitter.h does one entry), the files of each entry,
 * a checkpoint after each, resume after the last finished entry, progress on stderr and one JSON
 * line per fitted avatar.
 *
 * Layer: this module sits ABOVE the models and the formats: it writes files (common/model_io.h),
 * which models never do. Tools call it; the diffusion trainer's loop is meant to follow the same
 * structure (open/resume, step, checkpoint, close).
 *
 * A run directory holds (tools/rhd-fit.md):
 *   triplanes/<avatar>.safetensors  (and .npy with also_npy)   after each entry that fitted it
 *   iwc/<avatar>.safetensors                                   idem, when the decoder trains
 *   decoder.safetensors, checkpoint.safetensors                after each entry
 * Every file is written to a temp name and renamed; the checkpoint is written last, so after a
 * kill the run resumes from the last entry whose checkpoint exists, and files of a later entry
 * are detected (their rhd.entry) and refused.
 *
 * Determinism: on the CPU a resumed run writes the same bits as an uninterrupted one (each
 * visit's randomness depends on (seed, avatar, entry, step) only, fitter.h). */
#ifndef RHD_COMMON_FIT_RUN_H
#define RHD_COMMON_FIT_RUN_H
#include <stdio.h>
#include "common/models/fitter.h"
#include "common/plan.h"

typedef struct rhd_fit_run_cfg {
    const char *dir;           /* the run directory */
    const char *tool;          /* rhd.tool of the files ("rhd-fit") */
    rhd_fit_cfg fit;           /* C, R, loss weights, seed ... */
    rhd_render_cfg render;
    int resume;                /* continue the run in dir (else start over, removing its avatar files) */
    int also_npy;              /* triplanes also as the original's .npy */
    int log_every;             /* fitter progress line every N steps (0: none) */
    FILE *json;                /* one JSON line per fitted avatar (NULL: none) */
} rhd_fit_run_cfg;

typedef struct rhd_fit_run {
    rhd_fit_run_cfg cfg;
    const rhd_plan *plan;      /* borrowed */
    char *plan_text;           /* its JSON (stored in the checkpoint; resume requires the same) */
    rhd_fit_views *train, *eval; /* [plan->navatars], borrowed */
    rhd_ctx *ctx;
    rhd_decoder dec;           /* trained, with Adam state */
    rhd_renderer r;
    rhd_iwc_states iwc;
    rhd_triplane *planes;      /* [navatars] host; .planes NULL until the avatar's first entry */
    void *records;             /* cJSON array of per-entry results */
    int start;                 /* entries done when the run was opened */
    int next;                  /* the next entry to execute */
    char *tri_dir, *iwc_dir, *ckpt_path, *dec_path;
} rhd_fit_run;

#ifdef __cplusplus
extern "C" {
#endif
/* A fresh run (decoder initialised from the seed, the run's avatar files removed) or, with
 * cfg->resume, the state after the checkpoint's last entry (decoder, Adam moments, records,
 * triplanes and IWC states of the finished entries). Refuses a checkpoint of another plan or seed
 * and files newer than the checkpoint. train/eval: every plan avatar's views, loaded. */
int rhd_fit_run_open(rhd_fit_run *run, rhd_ctx *ctx, const rhd_fit_run_cfg *cfg, const rhd_plan *plan,
                     rhd_fit_views *train, rhd_fit_views *eval, rhd_err *e);
/* Execute entries from run->next: at most max_entries (0: all); each writes its files and the
 * checkpoint. Progress on stderr. */
int rhd_fit_run_execute(rhd_fit_run *run, int max_entries, rhd_err *e);
/* Execute one entry (run->next) and write its files. */
int rhd_fit_run_entry(rhd_fit_run *run, rhd_err *e);
static inline int rhd_fit_run_finished(const rhd_fit_run *run) { return run->next >= run->plan->nentries; }
/* The path of an avatar's triplane file in the run (malloc'd). */
char *rhd_fit_run_triplane_path(const rhd_fit_run *run, int avatar);
void rhd_fit_run_close(rhd_fit_run *run);
#ifdef __cplusplus
}
#endif
#endif
