/* formats/triplane_file.h: triplane files of every supported layout (formats/triplane.md) and the
 * typed triplane-resolution metadata.
 *
 * Read: an rhd safetensors of kind "triplane" (or any safetensors with a 'planes' [3,C,R,R]
 * tensor) and the original code's .npy arrays [3,1,C,R,R], [3,C,R,R] and the rolled [C,R,3R]
 * (float32/16/64; spec diffusion.md §6: the rolled width is split into the three planes).
 * Written: safetensors (kind triplane, 'planes' [3,C,R,R] F32) or .npy: [3,1,C,R,R] for a
 * triplane in the PLANES layout (the fitting and base-sampling files), [C,R,3R] for one in the
 * ROLLED layout (the upsampler's files). */
#ifndef RHD_FORMATS_TRIPLANE_FILE_H
#define RHD_FORMATS_TRIPLANE_FILE_H
#include <stdint.h>
#include "common/err.h"
#include "common/triplane.h"
#include "formats/safetensors.h"

/* Provenance written with a safetensors triplane (each optional). */
typedef struct rhd_triplane_meta {
    const char *tool;    /* rhd.tool ("rhd-fit"); NULL: "rhd" */
    const char *avatar;  /* rhd.avatar, NULL: none */
    int entry;           /* rhd.entry, the plan entry that wrote it; -1: none */
    int has_seed;
    uint64_t seed;       /* rhd.seed when has_seed */
    const char *device;  /* rhd.device (rhd_ctx_device_label), NULL: none */
} rhd_triplane_meta;

#ifdef __cplusplus
extern "C" {
#endif
/* *t = a host triplane [3, C, R, R] (PLANES layout, owned, clamp 0) as found; *entry = the
 * rhd.entry metadata or -1 (entry may be NULL). Errors name the file, what was found and what a
 * triplane looks like; a NaN or infinity is an error naming the file, the tensor and the index. */
int rhd_triplane_file_read(const char *path, rhd_triplane *t, int *entry, rhd_err *e);
/* Write a host triplane by the file name: .npy (layout as above, float32) or anything else as
 * safetensors with `m` (may be NULL). Atomic (temp + rename). */
int rhd_triplane_file_write(const char *path, const rhd_triplane *t, const rhd_triplane_meta *m, rhd_err *e);

/* The triplane resolution a model was fitted at, as typed metadata "rhd.triplane_res" (a decimal
 * integer in 2..8192): the one writer and the one reader. The reader sets *R = 0 when the key is
 * absent; files written before the key existed carry it as "triplane_res" in their rhd.config
 * JSON, which the reader falls back to. A malformed value is an error naming the file. */
void rhd_meta_set_triplane_res(rhd_st_writer *w, int R);
int rhd_meta_get_triplane_res(const rhd_st *st, int *R, rhd_err *e);
#ifdef __cplusplus
}
#endif
#endif
