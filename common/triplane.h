/* common/triplane.h: a triplane as one value: its planes, channels, resolution, layout, clamp
 * and the side of memory it lives on (spec fitting.md §4, diffusion.md §2.1 and §6).
 *
 * Layouts (PyTorch order):
 *   RHD_TRIPLANE_PLANES  [3, C, R, R]   plane p (0: xy, 1: xz, 2: yz), channel c, row i, column j;
 *                                       the original's .npy [3, 1, C, R, R] is the same memory
 *   RHD_TRIPLANE_ROLLED  [C, R, 3R]     the planes side by side along the width (the diffusion
 *                                       models' image): X[c, i, p*R + j] = T[p, c, i, j]
 * The decoder, the renderer and the fitter read the PLANES layout; the diffusion models and the
 * upsampler's .npy files use the ROLLED one. rhd_triplane_roll / _unroll convert between them.
 *
 * Clamp: with clamp != 0 every reader sees clamp(T, -RHD_TRIPLANE_CLAMP, RHD_TRIPLANE_CLAMP)
 * (training, fitting.md §4); the values themselves are stored raw.
 *
 * Side: ctx == NULL means host memory; otherwise the memory of ctx's side (rhd_buf_*: device
 * memory on CUDA, host memory on the CPU backend). The reshapes work on host memory. */
#ifndef RHD_COMMON_TRIPLANE_H
#define RHD_COMMON_TRIPLANE_H
#include <stdint.h>
#include "common/backend.h"
#include "common/err.h"

#define RHD_TRIPLANE_CLAMP 1.0f

typedef enum { RHD_TRIPLANE_PLANES = 0, RHD_TRIPLANE_ROLLED = 1 } rhd_triplane_layout;

typedef struct rhd_triplane {
    float *planes;              /* 3*C*R*R floats in `layout` */
    int C, R;                   /* channels, resolution */
    rhd_triplane_layout layout;
    int clamp;                  /* readers see clamp(T, -1, 1) */
    rhd_ctx *ctx;               /* NULL: host memory; else ctx's side */
    int owned;                  /* planes allocated by rhd_triplane_alloc / _to_ctx (freed by _free) */
} rhd_triplane;

#ifdef __cplusplus
extern "C" {
#endif
/* 3*C*R*R: the number of values of a triplane (the one place it is computed). */
int64_t rhd_triplane_numel_of(int C, int R);
static inline int64_t rhd_triplane_numel(const rhd_triplane *t) { return rhd_triplane_numel_of(t->C, t->R); }
static inline size_t rhd_triplane_bytes(const rhd_triplane *t) { return sizeof(float) * (size_t)rhd_triplane_numel(t); }
/* A non-owning view of existing planes in the PLANES layout (ctx NULL: host memory). */
rhd_triplane rhd_triplane_view(float *planes, int C, int R, int clamp, rhd_ctx *ctx);
/* Allocate (uninitialised) planes of C x R in the PLANES layout on ctx's side (NULL: host). */
void rhd_triplane_alloc(rhd_triplane *t, int C, int R, int clamp, rhd_ctx *ctx);
/* Free owned planes (a view is left alone) and clear t. */
void rhd_triplane_free(rhd_triplane *t);
/* dst = src seen from ctx: on the CPU backend (or ctx NULL) a view of src's host memory, else a
 * device copy owned by dst. src must be host memory. */
void rhd_triplane_to_ctx(rhd_triplane *dst, const rhd_triplane *src, rhd_ctx *ctx);
/* Bring a device copy made by rhd_triplane_to_ctx back into the host triplane `host` (a view:
 * nothing to do). */
void rhd_triplane_download(rhd_triplane *host, const rhd_triplane *dev);
/* Host reshapes between the layouts (dst and src must not overlap):
 *   roll:   [3, C, R, R] -> [C, R, 3R]    unroll: [C, R, 3R] -> [3, C, R, R] */
void rhd_triplane_roll(float *dst, const float *src, int C, int R);
void rhd_triplane_unroll(float *dst, const float *src, int C, int R);
/* Convert a host triplane to `layout` in place (a temporary copy). */
void rhd_triplane_set_layout(rhd_triplane *t, rhd_triplane_layout layout);
/* A host triplane with a NaN or an infinity is an error naming `name` (a file), `tensor` and the
 * first bad index [p, c, i, j] (PLANES) or [c, i, w] (ROLLED). */
int rhd_triplane_check_finite(const rhd_triplane *t, const char *name, const char *tensor, rhd_err *e);
const char *rhd_triplane_layout_name(rhd_triplane_layout l);
#ifdef __cplusplus
}
#endif
#endif
