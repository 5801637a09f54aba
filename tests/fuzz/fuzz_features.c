/* tests/fuzz/fuzz_features.c: libFuzzer target for what a features file reader runs
 * (formats/features.md): the safetensors container, the "features" schema with its dimension
 * ratios, and the value check (formats/finite.h) with its NaN/Inf counts on every tensor. Any
 * input is accepted or refused with a message; never a crash or a sanitizer report. */
#include "formats/finite.h"
#include "formats/safetensors.h"
#include "formats/schema.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    rhd_st *st;
    rhd_err e;
    if (rhd_st_parse(buf, size, "fuzz.safetensors", &st, &e) == 0) {
        rhd_dims dims;
        rhd_dims_init(&dims);
        if (rhd_schema_check(st, "features", &dims, &e) == 0) rhd_st_check_finite(st, &e);
        for (int i = 0; i < st->n; i++) {
            rhd_nonfinite r;
            rhd_count_nonfinite(st->t[i].data, st->t[i].dtype, st->t[i].numel, &r);
            if (r.nan + r.pinf + r.ninf > st->t[i].numel || (r.first >= 0) != (r.nan + r.pinf + r.ninf > 0)) abort();
        }
        rhd_st_close(st);
    }
    free(buf);
    return 0;
}
