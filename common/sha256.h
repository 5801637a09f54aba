/* common/sha256.h: SHA-256 (FIPS 180-4) of memory and of files, for the identity of weight files
 * recorded in output metadata (formats/features.md `rhd.weights`). */
#ifndef RHD_SHA256_H
#define RHD_SHA256_H
#include <stddef.h>
#include <stdint.h>
#include "common/err.h"

typedef struct rhd_sha256 {
    uint32_t h[8];
    uint64_t len;      /* bytes hashed so far */
    uint8_t buf[64];
    int nbuf;
} rhd_sha256;

#ifdef __cplusplus
extern "C" {
#endif
void rhd_sha256_init(rhd_sha256 *s);
void rhd_sha256_update(rhd_sha256 *s, const void *data, size_t n);
void rhd_sha256_final(rhd_sha256 *s, uint8_t digest[32]);
/* Lower-case hex of the digest of n bytes into hex[65]. */
void rhd_sha256_hex(const void *data, size_t n, char hex[65]);
/* The digest of a whole file as lower-case hex; -1 with "<path>: <reason>" on a read error. */
int rhd_sha256_file(const char *path, char hex[65], rhd_err *e);
#ifdef __cplusplus
}
#endif
#endif
