/* common/tensor.h: dtypes, a plain tensor view with PyTorch-order shapes, and fp16/bf16
 * conversions shared by the CPU and CUDA code. */
#ifndef RHD_TENSOR_H
#define RHD_TENSOR_H
#include <stdint.h>
#include <string.h>
#include "common/hd.h"
#include "common/err.h"

#define RHD_MAX_DIMS 8

typedef enum { RHD_F32 = 0, RHD_F16, RHD_BF16, RHD_I32, RHD_I64, RHD_U8, RHD_F64, RHD_DTYPE_COUNT } rhd_dtype;

/* A view: data is borrowed (mmap'd file, arena, parameter buffer). shape is PyTorch order,
 * outermost first; the data is contiguous in C order. */
typedef struct rhd_tensor {
    rhd_dtype dtype;
    int ndim;
    int64_t shape[RHD_MAX_DIMS];
    void *data;
} rhd_tensor;

#ifdef __cplusplus
extern "C" {
#endif
const char *rhd_dtype_name(rhd_dtype t);          /* safetensors names: "F32", "F16", ... */
int rhd_dtype_from_name(const char *s, rhd_dtype *t);
size_t rhd_dtype_size(rhd_dtype t);
/* Product of the shape with overflow checking: -1 if it overflows int64 or a dim is negative. */
int64_t rhd_shape_numel(const int64_t *shape, int ndim);
/* "[3,32,128,128]" into buf. */
char *rhd_shape_str(const int64_t *shape, int ndim, char *buf, size_t n);
int rhd_shape_eq(const int64_t *a, int na, const int64_t *b, int nb);
/* Convert n elements of any float/int dtype to fp32 (dst must not alias src). */
void rhd_convert_to_f32(float *dst, const void *src, rhd_dtype t, int64_t n);
/* Convert n fp32 values into dtype t (F32, F16, BF16 only). */
void rhd_convert_from_f32(void *dst, const float *src, rhd_dtype t, int64_t n);
#ifdef __cplusplus
}
#endif

/* IEEE half <-> float, round to nearest even; NaN/Inf preserved. */
RHD_HD static inline float rhd_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else { /* subnormal: normalise */
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) bits = sign | 0x7f800000u | (man << 13);
    else bits = sign | ((exp + 112) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

RHD_HD static inline uint16_t rhd_float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) { /* subnormal half or zero */
        if (ax < 0x33000000u) return (uint16_t)sign;
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        int shift = 126 - (int)e; /* 14..24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((ax >> 13) - (112u << 10));
    uint32_t rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

RHD_HD static inline float rhd_bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

RHD_HD static inline uint16_t rhd_float_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}
#endif
