/* formats/finite.h: the value check every reader runs on the floating tensors it loads.
 *
 * Shapes and offsets are the container's business (formats/safetensors.h); these check the
 * values: a NaN or an infinity in a triplane, a feature map, a weight or an image is an error that
 * names the file and the tensor, with the counts of NaN, +Inf and -Inf and the flat index of the
 * first one, e.g.
 *   triplanes/a.safetensors: tensor 'planes': 3 NaN, 1 +Inf, 0 -Inf of 3145728 values (first at
 *   flat index 17), expected finite values
 * Integer dtypes hold no such values; F64 is checked in double (a 1e300 is finite, not +Inf). */
#ifndef RHD_FINITE_H
#define RHD_FINITE_H
#include <stdint.h>
#include "common/err.h"
#include "common/tensor.h"

typedef struct rhd_nonfinite {
    int64_t nan, pinf, ninf; /* counts */
    int64_t first;           /* flat index of the first non-finite value, -1 if none */
} rhd_nonfinite;

struct rhd_st;

#ifdef __cplusplus
extern "C" {
#endif
/* Count the non-finite values among n values of dtype dt at data (may be unaligned). */
void rhd_count_nonfinite(const void *data, rhd_dtype dt, int64_t n, rhd_nonfinite *r);
/* 0 if the n floats are all finite, else -1 with a message naming file and tensor (either may be
 * NULL: left out of the message). */
int rhd_check_finite(const char *file, const char *tensor, const float *data, int64_t n, rhd_err *e);
/* The same for data of any dtype. */
int rhd_check_finite_dt(const char *file, const char *tensor, const void *data, rhd_dtype dt, int64_t n, rhd_err *e);
/* Every tensor of an open safetensors file (its name in messages): the first offending one. */
int rhd_st_check_finite(const struct rhd_st *st, rhd_err *e);
#ifdef __cplusplus
}
#endif
#endif
