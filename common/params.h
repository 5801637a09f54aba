/* common/params.h: a named parameter table over ONE buffer (llm.c's malloc_and_point).
 *
 * A model registers its tensors in a fixed order with PyTorch state-dict names and shapes
 * ("sigma_net.0.weight" [128,40]); rhd_params_alloc() then makes one allocation each for the
 * parameters, the gradients and the two Adam moments, with identical offsets, so zero_grad is one
 * memset, an optimiser step one flat loop and a checkpoint one write. Buffers live on the
 * context's side (host or device). Loading and saving as safetensors is in formats/params_io.h. */
#ifndef RHD_PARAMS_H
#define RHD_PARAMS_H
#include <stdint.h>
#include "common/backend.h"

#define RHD_PARAM_NAME_MAX 128

typedef struct rhd_param_info {
    char name[RHD_PARAM_NAME_MAX];
    int ndim;
    int64_t shape[4];
    int64_t offset; /* in floats, into each of the four buffers */
    int64_t numel;
} rhd_param_info;

typedef struct rhd_params {
    int n, cap;
    rhd_param_info *info;
    int64_t total;           /* floats in each buffer */
    rhd_ctx *ctx;            /* where the buffers live (NULL until allocated) */
    float *data, *grad, *m, *v;
} rhd_params;

#ifdef __cplusplus
extern "C" {
#endif
void rhd_params_init(rhd_params *p);
/* Register a tensor; returns its index. Names must be unique (checked). Offsets are aligned
 * to 64 floats so each tensor starts on a 256-byte boundary. */
int rhd_params_add(rhd_params *p, const char *name, int ndim, const int64_t *shape);
/* Allocate data (+ grad, + m and v) on ctx, zeroed. */
void rhd_params_alloc(rhd_params *p, rhd_ctx *ctx, int with_grad, int with_adam);
void rhd_params_free(rhd_params *p);
int rhd_params_find(const rhd_params *p, const char *name); /* -1 if absent */
static inline float *rhd_param(const rhd_params *p, int i) { return p->data + p->info[i].offset; }
static inline float *rhd_param_grad(const rhd_params *p, int i) { return p->grad + p->info[i].offset; }
/* Sum of numel over tensors (without alignment padding). */
int64_t rhd_params_count(const rhd_params *p);
#ifdef __cplusplus
}
#endif
#endif
