/* common/models/plan_types.h: a task-replay plan as data (common/plan.h generates, reads and
 * writes plans; formats/plan.md) and the learning rates of its entries, what the fitter
 * (common/models/fitter.h) needs of a plan. */
#ifndef RHD_MODELS_PLAN_TYPES_H
#define RHD_MODELS_PLAN_TYPES_H
#include <stdint.h>

typedef enum { RHD_PLAN_ROUND_ROBIN = 0, RHD_PLAN_SHUFFLED, RHD_PLAN_INTERLEAVED, RHD_PLAN_ORDER_COUNT } rhd_plan_order;

typedef struct rhd_plan_entry {
    int round;             /* 0-based; nondecreasing along the plan */
    int navatars;          /* 1, or the size of an interleaved group */
    int *avatars;          /* [navatars] indices into rhd_plan.avatars (distinct) */
    long long steps;       /* optimiser steps of this visit, > 0 */
    double triplane_lr;    /* base lr of the triplane Adam(s) of this visit, > 0 */
    double decoder_lr;     /* base lr of the decoder Adam during this visit, >= 0 (0: the decoder is frozen) */
    long long first_step;  /* derived: decoder steps before this entry (the decoder decay's k at its start) */
} rhd_plan_entry;

typedef struct rhd_plan {
    rhd_plan_order order;
    uint64_t seed;                 /* seed of the shuffles */
    int rounds;                    /* every entry's round is < rounds */
    int group;                     /* interleaved group size (1 otherwise) */
    double iwc_weight;             /* >= 0 */
    long long decoder_decay_steps; /* the decoder lr reaches 0.1 x base after this many steps, > 0 */
    /* the generator's arguments (informational; 0 when the plan did not record them) */
    long long steps;
    double lr0, lr1;
    char *tool;                    /* "rhd-schedule 0.1.0" or whatever wrote the plan (may be NULL) */
    int navatars;
    char **avatars;                /* [navatars] unique names */
    char **paths;                  /* [navatars] path of each avatar relative to the data root (the name itself unless given) */
    int nentries;
    rhd_plan_entry *entries;
    long long total_steps;         /* derived: sum of the entries' steps */
    int *pool_;                    /* storage of the entries' avatar indices */
} rhd_plan;

#ifdef __cplusplus
extern "C" {
#endif
/* Learning rates at step k of an entry (k = 0 for its first step): the triplane's
 * base * 0.1^min(k/steps, 1), and the decoder's base * 0.1^min((first_step + k)/decoder_decay_steps, 1). */
double rhd_plan_triplane_lr(const rhd_plan_entry *en, long long k);
double rhd_plan_decoder_lr(const rhd_plan *plan, const rhd_plan_entry *en, long long k);
/* The last entry that trains the decoder (decoder_lr > 0; the first entry if none does), and in
 * *frozen (may be NULL) the number of entries that freeze it (decoder_lr 0: a refit round). */
const rhd_plan_entry *rhd_plan_last_trained(const rhd_plan *plan, int *frozen);

#ifdef __cplusplus
}
#endif
#endif
