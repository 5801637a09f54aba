/* tests/fuzz/fuzz_safetensors.c: libFuzzer target for the safetensors reader and the schema
 * validator: any input must be either accepted (then every tensor's bytes are readable and the
 * schema check runs) or refused with a message; never a crash or a sanitizer report. */
#include "formats/safetensors.h"
#include "formats/schema.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* copy so that reads past the end are caught by ASan */
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    rhd_st *st;
    rhd_err e;
    if (rhd_st_parse(buf, size, "fuzz", &st, &e) == 0) {
        volatile uint8_t acc = 0;
        for (int i = 0; i < st->n; i++) {
            const uint8_t *p = st->t[i].data;
            for (uint64_t k = st->t[i].begin; k < st->t[i].end; k++) acc ^= p[k - st->t[i].begin];
            if (st->t[i].numel > 0 && st->t[i].numel < 4096) {
                float *f = malloc(sizeof(float) * st->t[i].numel);
                rhd_st_to_f32(&st->t[i], f);
                free(f);
            }
        }
        rhd_schema_check(st, NULL, NULL, &e);
        rhd_st_close(st);
    }
    free(buf);
    return 0;
}
