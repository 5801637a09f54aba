/* tests/fuzz/fuzz_png.c: libFuzzer target for the in-memory PNG reader (formats/png.h).
 * Every input must either decode to W x H x 4 floats in [0,1] or fail with a message that names
 * the input; decoded images are re-encoded and decoded again (8-bit RGBA), which must reproduce
 * the 8-bit values. Leaks, overflows and UB are caught by ASan/UBSan.
 *   make build-fuzz/fuzz_png && ./build-fuzz/fuzz_png -max_total_time=60 tests/fuzz/corpus/png */
#include "formats/png.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

/* Rewrite every chunk's CRC so that mutations get past libpng's CRC checks into the chunk
 * parsers and the decoder (done for inputs whose last byte is odd, so both kinds are fuzzed). */
static void fix_crcs(uint8_t *p, size_t n) {
    size_t off = 8;
    while (n >= 12 && off <= n - 12) {
        uint32_t len = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 | (uint32_t)p[off + 2] << 8 | p[off + 3];
        if (len > n - off - 12) break;
        uint32_t c = crc32_png(p + off + 4, 4 + (size_t)len);
        uint8_t *q = p + off + 8 + len;
        q[0] = (uint8_t)(c >> 24), q[1] = (uint8_t)(c >> 16), q[2] = (uint8_t)(c >> 8), q[3] = (uint8_t)c;
        off += 12 + (size_t)len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rhd_image img;
    rhd_err e;
    uint8_t *copy = NULL;
    if (size > 0 && (data[size - 1] & 1)) {
        copy = malloc(size);
        memcpy(copy, data, size);
        fix_crcs(copy, size);
        data = copy;
    }
    int rc = rhd_png_decode(data, size, "fuzz.png", &img, &e);
    free(copy);
    if (rc != 0) {
        if (strncmp(e.msg, "fuzz.png: ", 10) != 0 || strlen(e.msg) < 12) abort();
        if (img.data || img.width || img.height) abort();
        return 0;
    }
    size_t n = (size_t)img.width * img.height * 4;
    if (img.width < 1 || img.height < 1 || img.width > RHD_PNG_MAX_SIDE || img.height > RHD_PNG_MAX_SIDE) abort();
    for (size_t i = 0; i < n; i++)
        if (!(img.data[i] >= 0.0f && img.data[i] <= 1.0f)) abort();
    if (!img.has_alpha)
        for (size_t i = 3; i < n; i += 4)
            if (img.data[i] != 1.0f) abort();
    if (n <= 4 * 65536 && img.bit_depth <= 8) {
        void *buf;
        size_t nb;
        rhd_image back;
        if (rhd_png_encode(img.data, img.width, img.height, 4, 8, RHD_PNG_ROUND, &buf, &nb, &e) != 0) abort();
        if (rhd_png_decode(buf, nb, "re-encoded", &back, &e) != 0) abort();
        if (back.width != img.width || back.height != img.height || memcmp(back.data, img.data, n * sizeof(float)) != 0)
            abort();
        rhd_image_free(&back);
        free(buf);
    }
    rhd_image_free(&img);
    return 0;
}
