/* formats/triplane_file.h: reading a triplane file of any supported layout (formats/triplane.md):
 * an rhd safetensors of kind "triplane" (or any safetensors with a 'planes' [3,C,R,R] tensor) and
 * the original code's .npy arrays [3,1,C,R,R], [3,C,R,R] and [C,R,3R] (float32/16/64). */
#ifndef RHD_FORMATS_TRIPLANE_FILE_H
#define RHD_FORMATS_TRIPLANE_FILE_H
#include "common/err.h"

#ifdef __cplusplus
extern "C" {
#endif
/* *planes = a malloc'd float32 [3, C, R, R]; *C and *R as found; *entry = the plan entry that
 * wrote it (rhd.entry metadata) or -1 (entry may be NULL). Errors name the file, what was found
 * and what a triplane looks like. */
int rhd_triplane_file_read(const char *path, float **planes, int *C, int *R, int *entry, rhd_err *e);
#ifdef __cplusplus
}
#endif
#endif
