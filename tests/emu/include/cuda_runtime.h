/* tests/emu/include/cuda_runtime.h: the CUDA runtime API of the emulated backend (`make CUDA=emu`,
 * tests/emu/README.md): the calls the project makes, on host memory, implemented in
 * tests/emu/emu_api.cpp. C-compatible (common/dist.c includes it); in C++ it also brings the
 * device vocabulary (tests/emu/emu_device.hpp) and the launch that replaces `<<<...>>>`. */
#ifndef RHD_EMU_CUDA_RUNTIME_H
#define RHD_EMU_CUDA_RUNTIME_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101
} cudaError_t;
typedef struct emu_stream *cudaStream_t;
typedef enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
} cudaMemcpyKind;
typedef enum cudaDeviceAttr { cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 } cudaDeviceAttr;
typedef enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 } cudaFuncAttribute;
typedef struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem, sharedMemPerBlock, sharedMemPerBlockOptin;
    int major, minor, multiProcessorCount, maxThreadsPerBlock, warpSize;
} cudaDeviceProp;

cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int d);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind k);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind k, cudaStream_t s);
cudaError_t cudaMemset(void *p, int v, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t e);

/* emulation internals, used by the C++ part below */
cudaError_t emu_func_set_attribute(const void *f, int attr, int value);
int emu_launch_check(const void *f, const char *name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                     unsigned bz, size_t smem);
void emu_check_device(const void *p, size_t bytes, const char *what);
void emu_check_kernel_arg(const void *p, const char *kernel, int index);
#ifdef __cplusplus
}
#include "../emu_device.hpp"
#include <tuple>
#include <utility>

template <class F> static inline cudaError_t cudaFuncSetAttribute(F *f, cudaFuncAttribute a, int v) {
    return emu_func_set_attribute((const void *)f, (int)a, v);
}

/* `kernel<<<grid, block, smem, stream>>>(args)` becomes `emu_cfg(grid, block, smem, stream)("kernel", kernel, args)`
 * (the build's rewrite, Makefile): checks the configuration as the device would (an invalid one
 * sets the error cudaGetLastError returns and runs nothing), converts the arguments to the
 * kernel's parameter types, and runs the grid. */
struct emu_cfg {
    /* every non-null pointer argument must point into (or at the end of) a device allocation:
     * a host pointer given to a kernel faults on the device */
    template <class Tup, size_t... I> static void check_pointers(const char *name, const Tup &t, std::index_sequence<I...>) {
        (check_one(name, (int)I, std::get<I>(t)), ...);
    }
    template <class T> static void check_one(const char *name, int i, const T &v) {
        if constexpr (std::is_pointer_v<T>)
            if (v) emu_check_kernel_arg((const void *)v, name, i);
    }
    dim3 g, b;
    size_t smem;
    emu_cfg(dim3 g_, dim3 b_, size_t s_ = 0, cudaStream_t = 0) : g(g_), b(b_), smem(s_) {}
    template <class... P, class... A> void operator()(const char *name, void (*f)(P...), A &&...a) const {
        if (!emu_launch_check((const void *)f, name, g.x, g.y, g.z, b.x, b.y, b.z, smem)) return;
        std::tuple<std::decay_t<P>...> args(std::forward<A>(a)...);
        check_pointers(name, args, std::index_sequence_for<P...>{});
        std::function<void()> body = [&] { std::apply(f, args); };
        emu::launch((const void *)f, name, g, b, smem, body);
    }
};
#endif
#endif
