/* common/arena.h: a bump allocator for activations, on the context's side (host or device).
 * One allocation up front (or grown by rhd_arena_reserve before use); rhd_arena_alloc hands out
 * 256-byte-aligned slices; rhd_arena_reset frees them all at once; marks allow stack-like reuse
 * (mark before a block's temporaries, release after). */
#ifndef RHD_ARENA_H
#define RHD_ARENA_H
#include <stddef.h>
#include "common/backend.h"

typedef struct rhd_arena {
    rhd_ctx *ctx;
    char *base;
    size_t cap, used, peak;
} rhd_arena;

#ifdef __cplusplus
extern "C" {
#endif
void rhd_arena_init(rhd_arena *a, rhd_ctx *ctx, size_t cap_bytes);
void rhd_arena_free(rhd_arena *a);
/* Aborts with the requested and available sizes when the arena is too small (an internal
 * sizing bug, not an input error). */
void *rhd_arena_alloc(rhd_arena *a, size_t bytes);
float *rhd_arena_floats(rhd_arena *a, size_t n);
static inline size_t rhd_arena_mark(const rhd_arena *a) { return a->used; }
static inline void rhd_arena_release(rhd_arena *a, size_t mark) { a->used = mark; }
static inline void rhd_arena_reset(rhd_arena *a) { a->used = 0; }
#ifdef __cplusplus
}
#endif
#endif
