/* common/models/plan_types.c: the learning rates of a plan entry and the last entry that trains the decoder (see plan_types.h). */
#include "common/models/plan_types.h"
#include <math.h>

double rhd_plan_triplane_lr(const rhd_plan_entry *en, long long k) {
    double x = (double)k / (double)en->steps;
    return en->triplane_lr * pow(0.1, x < 1 ? x : 1);
}

double rhd_plan_decoder_lr(const rhd_plan *plan, const rhd_plan_entry *en, long long k) {
    double x = (double)(en->first_step + k) / (double)plan->decoder_decay_steps;
    return en->decoder_lr * pow(0.1, x < 1 ? x : 1);
}

const rhd_plan_entry *rhd_plan_last_trained(const rhd_plan *plan, int *frozen) {
    const rhd_plan_entry *last = &plan->entries[0];
    int n = 0;
    for (int i = 0; i < plan->nentries; i++) {
        if (plan->entries[i].decoder_lr == 0) n++;
        else last = &plan->entries[i];
    }
    if (frozen) *frozen = n;
    return last;
}
