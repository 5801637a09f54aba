/* tests/emu/include/mma.h: nvcuda::wmma comes with the emulated device vocabulary. */
#include "cuda_runtime.h"
