/* tests/emu/include/cuda_bf16.h: __nv_bfloat16 comes with the emulated device vocabulary. */
#include "cuda_runtime.h"
