/* tests/fuzz/fuzz_noise.c: libFuzzer target for the noise files of rhd-sample --noise
 * (formats/noise.md), read as the sampler reads them: the safetensors parser, then
 * rhd_noise_file_rows (common/sample_noise.c) for both stages, with and without the conditioning
 * draw u, against a run of two portraits whose sample shape is taken from the file's own x_T when
 * it is 4-d (so that accepted files are reached) and from a fixed small shape otherwise, at the
 * step count the file's z.<k> suggest and one more. When the rows are accepted, every row of every
 * tensor the stage needs is copied out as common/sample_run.c does (batch_noise_draw, the u of
 * the conditioning sample): any out-of-bounds read is a bug. The schema check of the noise kind
 * runs too. Never a crash or a sanitizer report.
 * Seeds: tests/fuzz/corpus/noise/ (tests/fuzz/corpus_model_files.py --noise). */
#include "common/log.h"
#include "common/sample_run.h"
#include "formats/safetensors.h"
#include "formats/schema.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* copy every needed row out, as the sampler does (the tensors were checked: [P, tail], F32) */
static void read_rows(const rhd_st *st, rhd_sample_stage s, int nsteps, int need_u, const int *rows, int n) {
    char name[48];
    volatile float acc = 0;
    for (int d = -1; d <= nsteps; d++) {
        if (d == nsteps && !need_u) break;
        if (d < 0) snprintf(name, sizeof name, "%sx_T", rhd_noise_prefix(s));
        else if (d < nsteps) snprintf(name, sizeof name, "%sz.%d", rhd_noise_prefix(s), d);
        else snprintf(name, sizeof name, "%su", rhd_noise_prefix(s));
        const rhd_st_tensor *t = rhd_st_find(st, name);
        if (!t || t->ndim != 4 || t->dtype != RHD_F32) abort(); /* accepted means present and checked */
        const int64_t per = t->shape[1] * t->shape[2] * t->shape[3];
        if ((uint64_t)(t->end - t->begin) != sizeof(float) * (uint64_t)(per * t->shape[0])) abort();
        float *row = malloc(sizeof(float) * (size_t)(per ? per : 1));
        for (int i = 0; i < n; i++) {
            if (rows[i] < 0 || rows[i] >= t->shape[0]) abort();
            memcpy(row, (const float *)t->data + (int64_t)rows[i] * per, sizeof(float) * (size_t)per);
            if (per) acc += row[per - 1];
        }
        free(row);
    }
    (void)acc;
}

static int count_steps(const rhd_st *st, const char *pre) {
    char name[48];
    int k = 0;
    for (; k < 64; k++) {
        snprintf(name, sizeof name, "%sz.%d", pre, k);
        if (!rhd_st_find(st, name)) break;
    }
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rhd_log_set_level(0);
    uint8_t *buf = malloc(size ? size : 1); /* a copy: reads past the end are caught by ASan */
    memcpy(buf, data, size);
    rhd_st *st;
    rhd_err e;
    if (rhd_st_parse(buf, size, "fuzz.noise.safetensors", &st, &e) == 0) {
        rhd_schema_check(st, NULL, NULL, &e);
        const char *const names[2] = {"p0", "p1"};
        const int index[2] = {0, 1};
        for (int s = RHD_STAGE_BASE; s <= RHD_STAGE_UPSAMPLE; s++) {
            const char *pre = rhd_noise_prefix((rhd_sample_stage)s);
            char name[48];
            int64_t xt[3] = {2, 2, 6}, ut[3] = {4, 2, 2};
            snprintf(name, sizeof name, "%sx_T", pre);
            const rhd_st_tensor *x = rhd_st_find(st, name);
            if (x && x->ndim == 4) memcpy(xt, x->shape + 1, sizeof xt);
            snprintf(name, sizeof name, "%su", pre);
            const rhd_st_tensor *u = rhd_st_find(st, name);
            if (u && u->ndim == 4) memcpy(ut, u->shape + 1, sizeof ut);
            const int k = count_steps(st, pre);
            const int steps[2] = {k > 0 ? k : 1, k + 1};
            for (int j = 0; j < 2; j++)
                for (int need_u = 0; need_u <= 1; need_u++) {
                    int rows[2] = {-1, -1};
                    e.msg[0] = 0;
                    if (rhd_noise_file_rows(st, (rhd_sample_stage)s, steps[j], xt, ut, need_u, names, index, 2, rows, &e) == 0)
                        read_rows(st, (rhd_sample_stage)s, steps[j], need_u, rows, 2);
                    else if (!e.msg[0])
                        abort(); /* a refusal always says why */
                }
        }
        rhd_st_close(st);
    }
    free(buf);
    return 0;
}
