/* common/plan.h: the task-replay plan of stage-1 fitting (formats/plan.md).
 *
 * A plan is an ordered list of visits: (round, avatar or group of avatars, steps, triplane lr,
 * decoder lr). rhd-schedule fit generates one; rhd-fit --stage 1 --plan executes it, so a user can
 * edit a plan or write one elsewhere, and rhd_plan_read() validates it with messages that name the
 * file and the entry.
 *
 * The original (shared/spec/fitting.md §8, §9.1): every round visits every avatar in list order;
 * a visit runs `steps` (6000) optimiser steps with a fresh triplane Adam at lr0/(10*round + 1)
 * decayed as lr = base * 0.1^min(k/steps, 1), k = steps into the visit; one decoder Adam runs
 * through the whole plan at lr1 decayed as lr = base * 0.1^min(k/(50*steps), 1), k = decoder steps
 * since the start (never reset); the IWC penalty of weight iwc_weight applies from an avatar's
 * second visit on.
 *
 * Orders:
 *   round-robin  every round visits the avatars in list order (the original)
 *   shuffled     every round visits them in a new order: a Fisher-Yates shuffle driven by Philox
 *                (common/rng.h) with the plan's seed and stream RHD_STREAM(RHD_STREAM_SHUFFLE, round)
 *                (exact algorithm in formats/plan.md), so a seed reproduces the orders
 *   interleaved  every round visits groups of `group` consecutive avatars of the list (the last
 *                group smaller when the count does not divide); within a visit every step mixes
 *                rays of all the group's avatars (rhd-fit splits the step's rays evenly), each
 *                avatar keeping its own triplane Adam; group = the avatar count is joint training */
#ifndef RHD_PLAN_H
#define RHD_PLAN_H
#include <stdint.h>
#include "common/err.h"
#include "common/models/plan_types.h" /* rhd_plan, rhd_plan_entry, the learning rates */

#define RHD_PLAN_VERSION 1
#define RHD_PLAN_MAX_ENTRIES 10000000
#define RHD_PLAN_MAX_STEPS 1000000000000LL /* per entry and in total */

typedef struct rhd_plan_params {
    int rounds;                    /* 30 */
    long long steps;               /* 6000 */
    double lr0;                    /* 2e-2 */
    double lr1;                    /* 2e-3 */
    long long decoder_decay_steps; /* 0: 50 * steps */
    double iwc_weight;             /* 0.1 */
    rhd_plan_order order;          /* round-robin */
    uint64_t seed;                 /* 0 */
    int group;                     /* 4 (interleaved only) */
    int round_lr;                  /* RHD_ROUND_LR_CONSTANT (the original: RHD_ROUND_LR_ORIGINAL) */
    long long refit_steps;         /* -1 (= steps): a last round, each avatar alone, decoder frozen; 0: none (the original) */
    double refit_lr;               /* its triplane lr (0: lr0) */
} rhd_plan_params;

/* The triplane lr of training round r: lr0/(10r+1) (the original's), or lr0 in every round. */
enum { RHD_ROUND_LR_ORIGINAL = 0, RHD_ROUND_LR_CONSTANT = 1 };

#ifdef __cplusplus
extern "C" {
#endif
/* "round-robin", "shuffled", "interleaved". */
const char *rhd_plan_order_name(rhd_plan_order o);
int rhd_plan_order_parse(const char *s, rhd_plan_order *o, rhd_err *e);

/* The defaults (see rhd_plan_params): the original's but for round_lr and refit_steps. */
void rhd_plan_params_init(rhd_plan_params *p);
/* Generate a plan for names[n] (copied; paths may be NULL: each path is its name). */
/* The numeric checks of rhd_plan_generate on p for n avatars (counts, rates, totals): what a tool's
 * options decide, so a tool can report them as usage errors before reading any data. */
int rhd_plan_params_check(const rhd_plan_params *p, int n, rhd_err *e);
int rhd_plan_generate(rhd_plan *plan, const rhd_plan_params *p, const char *const *names, const char *const *paths, int n,
                      rhd_err *e);
/* The order in which round `round` of a shuffled plan visits n avatars (perm[n], a permutation). */
void rhd_plan_shuffle(int *perm, int n, uint64_t seed, int round);

/* Write as JSON (formats/plan.md) to path atomically, or to stdout when path is "-". */
int rhd_plan_write(const rhd_plan *plan, const char *path, rhd_err *e);
/* The JSON text (malloc'd). */
char *rhd_plan_to_json(const rhd_plan *plan);
/* Read and validate a plan file; errors read "<path>: entries[12]: <found>, expected <what>". */
int rhd_plan_read(const char *path, rhd_plan *plan, rhd_err *e);
/* The same from text in memory; `name` stands for the file in messages. */
int rhd_plan_parse(const char *text, size_t len, const char *name, rhd_plan *plan, rhd_err *e);
void rhd_plan_free(rhd_plan *plan);

/* Avatar lists. A list file has one path per line, relative to the data root; the name is the
 * last path component; blank lines and '#' comments are skipped. A data directory contributes its
 * subdirectories that hold metadata_000000.json, sorted by name (C locale); one with view files
 * but no metadata_000000.json is an error naming it, or with skip_incomplete left out and listed
 * on stderr (rhd_subjects_scan_opt; the _opt form takes the choice). A CSV is "a,b,c".
 * Names must be unique, non-empty, not "." or "..", without control characters. paths may be
 * NULL where not wanted. */
int rhd_avatars_from_list(const char *path, char ***names, char ***paths, int *n, rhd_err *e);
int rhd_avatars_from_dir(const char *dir, char ***names, int *n, rhd_err *e); /* skip_incomplete 0 */
int rhd_avatars_from_dir_opt(const char *dir, int skip_incomplete, char ***names, int *n, rhd_err *e);
int rhd_avatars_from_csv(const char *csv, char ***names, int *n, rhd_err *e);
/* 1 if two of the n names are equal, with their positions *first < *second (the earliest repeat). */
int rhd_names_find_duplicate(char *const *names, int n, int *first, int *second);
void rhd_avatars_free(char **names, int n);
/* 0 if name is a valid avatar name, else -1 with the reason. */
int rhd_avatar_name_check(const char *name, rhd_err *e);
#ifdef __cplusplus
}
#endif
#endif
