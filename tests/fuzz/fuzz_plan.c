/* tests/fuzz/fuzz_plan.c: libFuzzer target for the plan reader (common/plan.h): any input is
 * either refused with a message or accepted; an accepted plan must write back as JSON that reads
 * again to the same JSON (a fixed point), and its learning rates must be finite at the first and
 * last step of every entry, the triplane's positive, the decoder's positive unless the entry
 * freezes it (decoder_lr 0: a refit entry), then 0. Never a crash or a sanitizer report. */
#include "common/plan.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size ? size : 1); /* a copy, so that reads past the end are caught by ASan */
    memcpy(buf, data, size);
    rhd_plan p;
    rhd_err e;
    if (rhd_plan_parse(buf, size, "fuzz.json", &p, &e) == 0) {
        for (int i = 0; i < p.nentries && i < 1000; i++) {
            const rhd_plan_entry *en = &p.entries[i];
            double a = rhd_plan_triplane_lr(en, 0), b = rhd_plan_triplane_lr(en, en->steps - 1);
            double c = rhd_plan_decoder_lr(&p, en, 0), d = rhd_plan_decoder_lr(&p, en, en->steps - 1);
            int frozen = en->decoder_lr == 0;
            if (!(isfinite(a) && isfinite(b) && isfinite(c) && isfinite(d) && a > 0 && b > 0)) abort();
            if (frozen ? !(c == 0 && d == 0) : !(c > 0 && d > 0)) abort();
        }
        char *j1 = rhd_plan_to_json(&p);
        rhd_plan q;
        if (rhd_plan_parse(j1, strlen(j1), "fuzz-again.json", &q, &e) != 0) abort(); /* what we write we read */
        char *j2 = rhd_plan_to_json(&q);
        if (strcmp(j1, j2) != 0) abort();
        free(j1), free(j2);
        rhd_plan_free(&q);
        rhd_plan_free(&p);
    }
    free(buf);
    return 0;
}
