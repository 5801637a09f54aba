/* common/tensor.c: dtype tables, shape helpers and bulk conversions. */
#include "common/tensor.h"
#include <stdio.h>

static const char *const g_names[RHD_DTYPE_COUNT] = {"F32", "F16", "BF16", "I32", "I64", "U8", "F64"};
static const size_t g_sizes[RHD_DTYPE_COUNT] = {4, 2, 2, 4, 8, 1, 8};

const char *rhd_dtype_name(rhd_dtype t) { return (unsigned)t < RHD_DTYPE_COUNT ? g_names[t] : "?"; }
size_t rhd_dtype_size(rhd_dtype t) { return (unsigned)t < RHD_DTYPE_COUNT ? g_sizes[t] : 0; }

int rhd_dtype_from_name(const char *s, rhd_dtype *t) {
    for (int i = 0; i < RHD_DTYPE_COUNT; i++)
        if (strcmp(s, g_names[i]) == 0) { *t = (rhd_dtype)i; return 0; }
    return -1;
}

int64_t rhd_shape_numel(const int64_t *shape, int ndim) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] != 0 && n > INT64_MAX / shape[i]) return -1;
        n *= shape[i];
    }
    return n;
}

char *rhd_shape_str(const int64_t *shape, int ndim, char *buf, size_t n) {
    size_t k = 0;
    k += snprintf(buf + k, n - k, "[");
    for (int i = 0; i < ndim && k < n; i++) k += snprintf(buf + k, n - k, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

int rhd_shape_eq(const int64_t *a, int na, const int64_t *b, int nb) {
    if (na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

void rhd_convert_to_f32(float *dst, const void *src, rhd_dtype t, int64_t n) {
    switch (t) {
    case RHD_F32: memcpy(dst, src, (size_t)n * 4); break;
    case RHD_F16: for (int64_t i = 0; i < n; i++) dst[i] = rhd_half_to_float(((const uint16_t *)src)[i]); break;
    case RHD_BF16: for (int64_t i = 0; i < n; i++) dst[i] = rhd_bf16_to_float(((const uint16_t *)src)[i]); break;
    case RHD_I32: for (int64_t i = 0; i < n; i++) dst[i] = (float)((const int32_t *)src)[i]; break;
    case RHD_I64: for (int64_t i = 0; i < n; i++) dst[i] = (float)((const int64_t *)src)[i]; break;
    case RHD_U8: for (int64_t i = 0; i < n; i++) dst[i] = (float)((const uint8_t *)src)[i]; break;
    case RHD_F64: for (int64_t i = 0; i < n; i++) dst[i] = (float)((const double *)src)[i]; break;
    default: RHD_ASSERT(0 && "unknown dtype");
    }
}

void rhd_convert_from_f32(void *dst, const float *src, rhd_dtype t, int64_t n) {
    switch (t) {
    case RHD_F32: memcpy(dst, src, (size_t)n * 4); break;
    case RHD_F16: for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = rhd_float_to_half(src[i]); break;
    case RHD_BF16: for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = rhd_float_to_bf16(src[i]); break;
    default: RHD_ASSERT(0 && "conversion from f32 supports F32, F16, BF16 only");
    }
}
