/* formats/safetensors.h: the safetensors container (reader by mmap, validating; writer, atomic).
 *
 * Layout: u64 little-endian N | N bytes of UTF-8 JSON header | data. The header maps tensor names
 * to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data start) and may
 * hold "__metadata__": {string: string}. See formats/safetensors.md.
 *
 * The reader checks everything before a tensor is touched: header length against the file size
 * (and a 100 MB cap), valid UTF-8 and JSON, a leading '{', no duplicate keys, known dtypes
 * (F32 F16 BF16 I32 I64 U8 F64), shapes of non-negative integers whose product does not overflow,
 * end - begin == numel * dtype size, offsets in bounds, and the tensors tiling the data section
 * exactly (contiguous, non-overlapping, nothing left over) as the reference implementation
 * requires. Every message names the file and, where it applies, the tensor.
 *
 * The writer produces what the reference writer (the Rust safetensors crate behind the Python
 * package) produces: tensors ordered by dtype alignment (descending) then name, the JSON header
 * padded with spaces to a multiple of 8 bytes, "__metadata__" first. */
#ifndef RHD_SAFETENSORS_H
#define RHD_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "common/tensor.h"

#define RHD_ST_MAX_HEADER (100u * 1000u * 1000u)

typedef struct rhd_st_tensor {
    char *name;
    rhd_dtype dtype;
    int ndim;
    int64_t shape[RHD_MAX_DIMS];
    uint64_t begin, end;  /* byte offsets into the data section */
    const void *data;     /* points into the mapping */
    int64_t numel;
} rhd_st_tensor;

typedef struct rhd_st {
    char *name;           /* path, for messages */
    const uint8_t *base;  /* whole file */
    size_t size;
    int mapped;           /* 1 if base is an mmap we own */
    const uint8_t *data;  /* data section */
    size_t data_size;
    int n;
    rhd_st_tensor *t;     /* in file order of data_offsets */
    int nmeta;
    char **meta_key, **meta_val;
} rhd_st;

typedef struct rhd_st_writer {
    int n, cap;
    struct rhd_st_wentry {
        char *name;
        rhd_dtype dtype;
        int ndim;
        int64_t shape[RHD_MAX_DIMS];
        const void *data;
        void *owned;      /* set when the writer made a converted copy */
    } *t;
    int nmeta, capmeta;
    char **meta_key, **meta_val;
} rhd_st_writer;

#ifdef __cplusplus
extern "C" {
#endif
/* Open and validate a file (mmap). */
int rhd_st_open(const char *path, rhd_st **out, rhd_err *e);
/* Validate an in-memory buffer; buf must outlive the returned object. */
int rhd_st_parse(const void *buf, size_t n, const char *name, rhd_st **out, rhd_err *e);
void rhd_st_close(rhd_st *st);
const rhd_st_tensor *rhd_st_find(const rhd_st *st, const char *name);
const char *rhd_st_meta(const rhd_st *st, const char *key); /* NULL if absent */
/* Copy a tensor into dst as fp32 (converting F16/BF16/ints/F64). dst holds t->numel floats. */
void rhd_st_to_f32(const rhd_st_tensor *t, float *dst);

void rhd_st_writer_init(rhd_st_writer *w);
void rhd_st_writer_free(rhd_st_writer *w);
/* Add a tensor; data is borrowed until rhd_st_write/encode. */
void rhd_st_add(rhd_st_writer *w, const char *name, rhd_dtype dtype, int ndim, const int64_t *shape, const void *data);
/* Add fp32 data stored as dtype (F32, F16 or BF16): a converted copy is kept. */
void rhd_st_add_f32(rhd_st_writer *w, const char *name, rhd_dtype dtype, int ndim, const int64_t *shape, const float *data);
void rhd_st_set_meta(rhd_st_writer *w, const char *key, const char *value);
int rhd_st_encode(const rhd_st_writer *w, void **out, size_t *n, rhd_err *e);
int rhd_st_write(const rhd_st_writer *w, const char *path, rhd_err *e); /* temp + rename */
/* Check that s is valid UTF-8 (no overlongs, no surrogates). */
int rhd_utf8_valid(const char *s, size_t n);
#ifdef __cplusplus
}
#endif
#endif
