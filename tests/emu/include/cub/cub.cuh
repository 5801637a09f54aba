/* tests/emu/include/cub/cub.cuh: cub::DeviceScan::ExclusiveSum of the emulated backend (the only
 * cub call the project makes): the two-phase protocol (size query, then the scan) with a
 * temporary buffer that must be device memory of the size asked for. */
#ifndef RHD_EMU_CUB_CUH
#define RHD_EMU_CUB_CUH
#include "../cuda_runtime.h"
#include <cstring>
namespace cub {
struct DeviceScan {
    template <class I, class O>
    static cudaError_t ExclusiveSum(void *tmp, size_t &bytes, I in, O out, int n, cudaStream_t = 0) {
        if (!tmp) {
            bytes = 512;
            return cudaSuccess;
        }
        if (bytes < 512) return cudaErrorInvalidValue;
        emu_check_device(tmp, bytes, "cub::DeviceScan::ExclusiveSum temporary storage");
        memset(tmp, 0xff, bytes);
        if (n > 0) {
            emu_check_device(&in[0], sizeof(in[0]) * (size_t)n, "cub::DeviceScan::ExclusiveSum input");
            emu_check_device(&out[0], sizeof(out[0]) * (size_t)n, "cub::DeviceScan::ExclusiveSum output");
        }
        typename std::remove_cv<typename std::remove_reference<decltype(*out)>::type>::type s = 0;
        for (int i = 0; i < n; i++) {
            auto v = in[i];
            out[i] = s;
            s += v;
        }
        return cudaSuccess;
    }
};
} // namespace cub
#endif
