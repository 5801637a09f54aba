/* formats/params_io.h: a parameter table (common/params.h) to and from safetensors, by name.
 * Names are the PyTorch state-dict keys, optionally under a prefix ("fisher.", "ema."), so a
 * checkpoint converted from the original with torch.load + safetensors.torch.save_file loads. */
#ifndef RHD_PARAMS_IO_H
#define RHD_PARAMS_IO_H
#include "common/params.h"
#include "formats/safetensors.h"

typedef enum { RHD_PBUF_DATA = 0, RHD_PBUF_GRAD, RHD_PBUF_M, RHD_PBUF_V } rhd_pbuf;

#ifdef __cplusplus
extern "C" {
#endif
/* Add every tensor of one of p's buffers to w as F32 (copied to the host), names prefixed. */
void rhd_params_to_writer(const rhd_params *p, rhd_pbuf which, const char *prefix, rhd_st_writer *w);
/* Load every tensor of p from st (names prefixed) into buffer `which`: each must exist with the
 * exact shape; F16/BF16/F32/F64 are converted. Messages name the file and the tensor. */
int rhd_params_from_st(rhd_params *p, rhd_pbuf which, const char *prefix, const rhd_st *st, rhd_err *e);
#ifdef __cplusplus
}
#endif
#endif
