/* formats/npy.h: NumPy .npy reader and writer (format versions 1.0, 2.0 and 3.0).
 *
 * Reads little-endian '<f4', '<f2', '<f8', '<i4', '<i8', '|u1' (also '<u1'), C order
 * (fortran_order False), any rank up to RHD_MAX_DIMS. Everything else (big-endian, Fortran
 * order, object or structured dtypes, pickles) gets a clear error saying what was found.
 * The header is validated strictly: magic, version, header length against the file size, the
 * dict's keys and their values, shape products without overflow, data size equal to the rest
 * of the file. Writes version 1.0 (2.0 when the header needs it), '<f4'/'<f2', C order, header
 * padded with spaces to a multiple of 64 bytes as numpy does. See formats/npy.md. */
#ifndef RHD_NPY_H
#define RHD_NPY_H
#include <stddef.h>
#include "common/tensor.h"

typedef struct rhd_npy {
    rhd_tensor t;       /* t.data points into `buf` */
    void *buf;          /* owned */
    size_t data_bytes;
    int version_major;
} rhd_npy;

#ifdef __cplusplus
extern "C" {
#endif
/* Parse an in-memory .npy; `name` is used in messages. On success out->t.data points into a
 * copy owned by out (free with rhd_npy_free). */
int rhd_npy_parse(const void *data, size_t n, const char *name, rhd_npy *out, rhd_err *e);
int rhd_npy_read(const char *path, rhd_npy *out, rhd_err *e);
void rhd_npy_free(rhd_npy *a);
/* Write a tensor (F32, F16, F64, I32, I64 or U8) atomically. */
int rhd_npy_write(const char *path, const rhd_tensor *t, rhd_err *e);
/* Encode to a malloc'd buffer (header + data). */
int rhd_npy_encode(const rhd_tensor *t, void **out, size_t *n, rhd_err *e);
#ifdef __cplusplus
}
#endif
#endif
