/* common/fit_run.h: executing a stage-1 fitting plan (spec fitting.md §7-§9) as a run: plan
 * entries one after the other (common/models/fitter.h does one entry), the files of each entry,
 * a checkpoint after each, resume after the last finished entry, progress on stderr and one JSON
 * line per fitted avatar.
 *
 * Layer: this module sits ABOVE the models and the formats: it writes files (common/model_io.h),
 * which models never do. Tools call it; the diffusion trainer's loop is meant to follow the same
 * structure (open/resume, step, checkpoint, close).
 *
 * A run directory is a sequence of committed states (formats/run.md). State n (n entries done) is
 * checkpoint.safetensors with rhd.entries_done = n, the commit record, plus the files it implies:
 *   triplanes/<avatar>.safetensors (and .npy with also_npy)  of every avatar visited by an entry < n,
 *   iwc/<avatar>.safetensors                                   written by its last such entry
 *   decoder.safetensors                                        the checkpoint's decoder (derived)
 * Entry k writes its avatar files under pending/<k>/ (each file to a temp name and renamed), then
 * commits the checkpoint of state k+1 (one rename), then moves pending/<k>/ into place and writes
 * decoder.safetensors. A fresh run commits state 0 (the initial decoder) before anything else.
 * Opening a run (fresh or resumed) reconciles the directory with its checkpoint: the pending files
 * of the committed entry are moved into place, uncommitted ones and files of avatars not yet
 * visited removed, the decoder rewritten. So a kill at any instant leaves a run that --resume
 * continues to the same bytes as an uninterrupted run (tests/tools/t0910-crash.sh kills at every
 * write point). A triplane or IWC file of a visited avatar that is missing, unreadable or of
 * another entry is an error naming it (never a silent refit).
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
    int eval_last_only;        /* 1: the eval views are rendered only after an avatar's last entry of the plan
                                * (the other entries' PSNR is null): saves the evaluations of a long plan */
} rhd_fit_run_cfg;

typedef struct rhd_fit_run {
    rhd_fit_run_cfg cfg;
    const rhd_plan *plan;      /* borrowed */
    char *plan_text;           /* its JSON (stored in the checkpoint; resume requires the same) */
    char *options_text;        /* the options that decide the numbers, JSON (likewise) */
    rhd_fit_views *train, *eval; /* [plan->navatars], borrowed */
    rhd_ctx *ctx;
    rhd_decoder dec;           /* trained, with Adam state */
    rhd_renderer r;
    rhd_iwc_states iwc;
    rhd_triplane *planes;      /* [navatars] host; .planes NULL until the avatar's first entry */
    void *records;             /* cJSON array of per-entry results */
    int start;                 /* entries done when the run was opened */
    int next;                  /* the next entry to execute */
    char *tri_dir, *iwc_dir, *ckpt_path, *dec_path, *pend_dir;
    struct rhd_heartbeat *hb;  /* progress lines during an entry */
} rhd_fit_run;

/* Progress lines while a long step runs (an entry, a stage-2 fit): a thread prints the phase with
 * its elapsed time every RHD_PROGRESS_INTERVAL seconds (default 10; a line when stderr is not a
 * terminal, a redrawn status on one; nothing with -q). */
typedef struct rhd_heartbeat rhd_heartbeat;

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

rhd_heartbeat *rhd_heartbeat_start(void);
/* The phase shown from now on, e.g. "entry 3 (4/12) round 1 avatar_100"; steps: the phase's
 * steps (0: none); done (may be NULL): the steps run so far, written by the fitting loop
 * (rhd_fit_result.steps) and read atomically by the heartbeat, which then prints "step k/N" and
 * the time left at the phase's own rate (else at the rate of earlier phases). */
void rhd_heartbeat_phase(rhd_heartbeat *hb, const char *phase, long long steps, const int64_t *done);
/* Stop reading the `done` counter given to rhd_heartbeat_phase (before it goes out of scope). */
void rhd_heartbeat_unwatch(rhd_heartbeat *hb);
void rhd_heartbeat_stop(rhd_heartbeat *hb);

/* Crash-test hook (tests/tools/t0910-crash.sh): every file operation of a run is a numbered point.
 * RHD_CRASH_AFTER=N makes the N-th point _exit(137) (a point before a write first leaves a torn
 * "<path>.tmp", as a kill in the middle of the write would); RHD_CRASH_TRACE=1 lists the points on
 * stderr. Unset: nothing. */
void rhd_crash_point(const char *what, const char *path);
void rhd_crash_before_write(const char *path);

#ifdef __cplusplus
}
#endif
#endif
