/* common/models/fit_data.c: an avatar's views for fitting (see fit_data.h; common/fit_views.c
 * loads them). */
#include "common/models/fit_data.h"
#include <stdlib.h>
#include <string.h>

void rhd_fit_views_free(rhd_fit_views *v) {
    free(v->index);
    free(v->c2w);
    free(v->gt);
    memset(v, 0, sizeof *v);
}
