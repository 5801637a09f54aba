/* tests/kernels/test_cuda_emu.cpp: the CUDA emulation itself (tests/emu), so that a test run on it
 * means what it says: its barriers, shared memory and shuffles behave as the device's, and what it
 * claims to catch is caught.
 *  - device vocabulary (every build): a 256-thread block reduction through static __shared__ memory
 *    and __syncthreads, a 2-D block's thread indices, a warp butterfly by __shfl_xor_sync, the
 *    dynamic shared memory's NaN fill, and (in child processes) a barrier mismatch reported as a
 *    deadlock naming the kernel, a partial-warp shuffle and a wmma call by one lane refused;
 *  - the emulated runtime (`make CUDA=emu` only): a launch over 1024 threads and one over 48 KiB of
 *    dynamic shared memory without the opt-in are refused with cudaErrorInvalidConfiguration and run
 *    nothing, the opt-in makes the latter run; fresh device memory reads as NaN; a copy past the end of
 *    an allocation, a host pointer as a kernel argument, an overlapping device copy and a host
 *    pointer given as device memory abort with a message (child processes);
 *    cuBLAS with beta = 0 ignores a NaN output and TF32 math rounds the inputs to 10 mantissa bits. */
#include "emu/emu_device.hpp"
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include "harness.h"
#ifdef RHD_CUDA_EMU
#include "cublas_v2.h"
#endif

static __global__ void block_sum_kernel(double *out, const float *x, int n) {
    __shared__ double buf[256];
    double s = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
    buf[threadIdx.x] = s;
    __syncthreads();
    for (int k = 128; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) buf[threadIdx.x] += buf[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = buf[0];
}

static __global__ void warp_sum_kernel(float *out) {
    float v = (float)(threadIdx.x + 1);
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    out[threadIdx.x] = v;
}

static __global__ void index_kernel(int *out) {
    out[(blockIdx.x * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x] = (int)(threadIdx.y * 100 + threadIdx.x);
}

/* warp 1's lane 0 waits at __syncwarp, everyone else at __syncthreads: a deadlock on the device */
static __global__ void mismatch_kernel(int *x) {
    if (threadIdx.x == 32) __syncwarp();
    else __syncthreads();
    x[threadIdx.x] = 1;
}

/* Runs f in a child process; returns its exit status (128 + signal if killed) and its stderr. */
template <class F> static int in_child(F f, std::string &err) {
    int pfd[2];
    if (pipe(pfd)) return -1;
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        dup2(pfd[1], 2);
        close(pfd[0]);
        f();
        _exit(0);
    }
    close(pfd[1]);
    char buf[512];
    ssize_t k;
    err.clear();
    while ((k = read(pfd[0], buf, sizeof buf)) > 0) err.append(buf, (size_t)k);
    close(pfd[0]);
    while (!err.empty() && err.back() == '\n') err.pop_back();
    int st = 0;
    waitpid(p, &st, 0);
    return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

static void device_vocabulary() {
    std::vector<float> x(1000);
    double want = 0;
    for (int i = 0; i < 1000; i++) x[i] = (float)(i % 17) - 3.5f, want += x[i];
    std::vector<double> out(3, -1.0);
    const float *px = x.data();
    double *po = out.data();
    emu_launch(dim3(3), dim3(256), 0, [=] { block_sum_kernel(po, px, 1000); });
    th_ok(out[0] == want && out[1] == want && out[2] == want, "block reduction (static __shared__, __syncthreads): %g %g %g, expected %g",
          out[0], out[1], out[2], want);

    std::vector<float> w(64, NAN);
    float *pw = w.data();
    emu_launch(dim3(1), dim3(64), 0, [=] { warp_sum_kernel(pw); });
    th_ok(w[0] == 528.0f && w[31] == 528.0f && w[32] == 1552.0f && w[63] == 1552.0f,
          "warp butterfly (__shfl_xor_sync): %g %g %g %g, expected 528 528 1552 1552", w[0], w[31], w[32], w[63]);

    std::vector<int> idx(2 * 8 * 4, -1);
    int *pi = idx.data();
    emu_launch(dim3(2), dim3(8, 4), 0, [=] { index_kernel(pi); });
    th_ok(idx[0] == 0 && idx[7] == 7 && idx[8] == 100 && idx[31] == 307 && idx[32 + 31] == 307, "2-D block indices");

    float first = 0;
    float *pf = &first;
    emu_launch(dim3(1), dim3(1), 64, [=] { *pf = ((float *)emu_smem)[5]; });
    th_ok(std::isnan(first), "dynamic shared memory not written reads as NaN (%g)", first);

    std::string err;
    int rc = in_child([] {
        std::vector<int> v(64);
        int *pv = v.data();
        std::function<void()> body = [=] { mismatch_kernel(pv); };
        emu::launch((const void *)mismatch_kernel, "mismatch_kernel", dim3(1), dim3(64), 0, body);
    }, err);
    th_ok(rc != 0 && err.find("deadlock") != std::string::npos && err.find("mismatch_kernel") != std::string::npos,
          "a barrier mismatch is reported as a deadlock naming the kernel (exit %d: %s)", rc, err.c_str());
    rc = in_child([] {
        std::function<void()> body = [] { __shfl_xor_sync(0xffffu, 1.0f, 1); };
        emu::launch(nullptr, "half_mask", dim3(1), dim3(32), 0, body);
    }, err);
    th_ok(rc != 0 && err.find("full warps") != std::string::npos, "a partial-warp shuffle is refused (exit %d: %s)", rc, err.c_str());
    rc = in_child([] {
        std::function<void()> body = [] {
            nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> f;
            if (threadIdx.x == 0) nvcuda::wmma::fill_fragment(f, 0.0f);
            __syncwarp();
        };
        emu::launch(nullptr, "lane0_wmma", dim3(1), dim3(32), 0, body);
    }, err);
    th_ok(rc != 0 && err.find("whole warp") != std::string::npos, "a wmma call by one lane only is refused (exit %d: %s)", rc,
          err.c_str());
}

#ifdef RHD_CUDA_EMU
static __global__ void store_kernel(float *y) { y[threadIdx.x] = 1.0f; }

static void runtime() {
    float *d = nullptr;
    cudaGetLastError();
    th_ok(cudaMalloc((void **)&d, 4096) == cudaSuccess, "cudaMalloc");
    th_ok(std::isnan(d[3]), "fresh device memory reads as NaN (%g)", d[3]);
    d[0] = 5.0f;
    emu_cfg(dim3(1), dim3(2048))("store_kernel", store_kernel, d);
    cudaError_t e = cudaGetLastError();
    th_ok(e == cudaErrorInvalidConfiguration && d[0] == 5.0f, "2048 threads per block refused (%s), nothing ran",
          cudaGetErrorString(e));
    emu_cfg(dim3(1), dim3(4), 64 << 10)("store_kernel", store_kernel, d);
    e = cudaGetLastError();
    th_ok(e == cudaErrorInvalidConfiguration && d[0] == 5.0f, "64 KiB of dynamic shared memory without the opt-in refused (%s)",
          cudaGetErrorString(e));
    cudaFuncSetAttribute(store_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 << 10);
    emu_cfg(dim3(1), dim3(4), 64 << 10)("store_kernel", store_kernel, d);
    e = cudaGetLastError();
    th_ok(e == cudaSuccess && d[0] == 1.0f, "with the opt-in it runs (%s)", cudaGetErrorString(e));

    std::string err;
    int rc = in_child([d] {
        std::vector<float> h(2000);
        cudaMemcpy(d, h.data(), 8000, cudaMemcpyHostToDevice);
    }, err);
    th_ok(rc != 0 && err.find("past the end") != std::string::npos, "a copy past an allocation's end aborts (exit %d: %s)", rc,
          err.c_str());
    rc = in_child([] {
        std::vector<float> h(16);
        emu_cfg(dim3(1), dim3(4))("store_kernel", store_kernel, h.data());
    }, err);
    th_ok(rc != 0 && err.find("argument 0") != std::string::npos, "a host pointer as a kernel argument aborts (exit %d: %s)", rc,
          err.c_str());
    rc = in_child([d] { cudaMemcpy(d + 8, d, 64, cudaMemcpyDeviceToDevice); }, err);
    th_ok(rc != 0 && err.find("overlap") != std::string::npos, "an overlapping device copy aborts (exit %d: %s)", rc, err.c_str());
    rc = in_child([] {
        std::vector<float> h(16);
        cudaMemset(h.data(), 0, 64);
    }, err);
    th_ok(rc != 0 && err.find("not device memory") != std::string::npos, "a host pointer as device memory aborts (exit %d: %s)", rc,
          err.c_str());

    /* C (2x2) = A (2x1) B (1x2); C holds NaN and beta = 0 */
    cublasHandle_t h;
    cublasCreate(&h);
    float *A = d + 16, *B = d + 32, *C = d + 48;
    A[0] = 1.0f + 1.0f / 4096, A[1] = 2.0f, B[0] = 3.0f, B[1] = 1.0f;
    for (int i = 0; i < 4; i++) C[i] = NAN;
    float one = 1.0f, zero = 0.0f;
    cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 1, &one, A, 2, B, 1, &zero, C, 2);
    th_ok(C[0] == 3.0f * A[0] && C[1] == 6.0f && C[2] == A[0] && C[3] == 2.0f, "SGEMM, beta 0 over a NaN output: %g %g %g %g", C[0],
          C[1], C[2], C[3]);
    cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH);
    cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 1, &one, A, 2, B, 1, &zero, C, 2);
    th_ok(C[2] == 1.0f, "TF32 math rounds 1 + 2^-12 to 1 (%.9g)", C[2]);
    cublasDestroy(h);
    cudaFree(d);
}
#endif

int main(void) {
    device_vocabulary();
#ifdef RHD_CUDA_EMU
    runtime();
#else
    th_skip("the emulated runtime's checks: only in the CUDA=emu build");
#endif
    return th_done();
}
