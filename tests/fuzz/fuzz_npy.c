/* tests/fuzz/fuzz_npy.c: libFuzzer target for the .npy reader. */
#include "formats/npy.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    rhd_npy a;
    rhd_err e;
    if (rhd_npy_parse(buf, size, "fuzz", &a, &e) == 0) {
        void *out;
        size_t n;
        if (rhd_npy_encode(&a.t, &out, &n, &e) == 0) free(out);
        rhd_npy_free(&a);
    }
    free(buf);
    return 0;
}
