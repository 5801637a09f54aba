/* common/arena.c: see arena.h. */
#include "common/arena.h"
#include <string.h>

void rhd_arena_init(rhd_arena *a, rhd_ctx *ctx, size_t cap) {
    memset(a, 0, sizeof *a);
    a->ctx = ctx;
    a->cap = cap;
    a->base = cap ? rhd_buf_alloc(ctx, cap) : NULL;
}

void rhd_arena_free(rhd_arena *a) {
    if (a->base) rhd_buf_free(a->ctx, a->base);
    memset(a, 0, sizeof *a);
}

void *rhd_arena_alloc(rhd_arena *a, size_t bytes) {
    size_t off = (a->used + 255) & ~(size_t)255;
    if (off + bytes > a->cap)
        rhd_fatal_at(__FILE__, __LINE__, "arena exhausted: %zu bytes requested, %zu of %zu used", bytes, off, a->cap);
    a->used = off + bytes;
    if (a->used > a->peak) a->peak = a->used;
    return a->base + off;
}

float *rhd_arena_floats(rhd_arena *a, size_t n) { return rhd_arena_alloc(a, n * sizeof(float)); }
