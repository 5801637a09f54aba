/* kernels/aware3d.cu: the 3D-aware convolution's glue on CUDA, one thread per output element
 * running the helpers of aware3d.h (the same sums in the same order as the CPU). */
#include "kernels/aware3d.h"
#include "common/cuda_check.h"

static __global__ void profiles_kernel(float *prof, const float *x, int N, int C, int R) {
    int64_t total = (int64_t)N * 6 * C * R;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
        int r = (int)(t % R), c = (int)(t / R % C), k = (int)(t / ((int64_t)R * C) % 2), p = (int)(t / ((int64_t)R * C * 2) % 3);
        int n = (int)(t / ((int64_t)R * C * 6));
        prof[t] = rhd_aware3d_profile_elem(x, C, R, n, p, k, c, r);
    }
}

static __global__ void assemble_kernel(float *Y, const float *x, const float *prof, int N, int C, int R) {
    int64_t total = 3L * N * 3 * C * R * R;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
        int j = (int)(t % R), i = (int)(t / R % R);
        int64_t plane = t / ((int64_t)R * R);
        int c = (int)(plane % C), b = (int)(plane / C % 3), n = (int)(plane / (3L * C) % N), q = (int)(plane / (3L * C * N));
        Y[t] = rhd_aware3d_input_elem(x, prof, N, C, R, q, n, b, c, i, j);
    }
}

static __global__ void dprofiles_kernel(float *dprof, const float *dY, int N, int C, int R) {
    int64_t total = (int64_t)N * 6 * C * R;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
        int r = (int)(t % R), c = (int)(t / R % C), k = (int)(t / ((int64_t)R * C) % 2), p = (int)(t / ((int64_t)R * C * 2) % 3);
        int n = (int)(t / ((int64_t)R * C * 6));
        dprof[t] = rhd_aware3d_dprofile_elem(dY, N, C, R, n, p, k, c, r);
    }
}

static __global__ void dx_kernel(float *dx, const float *dY, const float *dprof, int N, int C, int R) {
    int64_t total = (int64_t)N * C * R * 3 * R;
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
        int col = (int)(t % (3L * R)), i = (int)(t / (3L * R) % R);
        int64_t nc = t / (3L * R * R);
        dx[t] = rhd_aware3d_dx_elem(dY, dprof, N, C, R, (int)(nc / C), (int)(nc % C), i, col);
    }
}

// launchers

extern "C" void rhd_aware3d_profiles_cuda(rhd_ctx *ctx, float *prof, const float *x, int N, int C, int R) {
    profiles_kernel<<<rhd_grid1d((int64_t)N * 6 * C * R, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(prof, x, N, C, R);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_aware3d_assemble_cuda(rhd_ctx *ctx, float *Y, const float *x, const float *prof, int N, int C,
                                          int R) {
    assemble_kernel<<<rhd_grid1d(9L * N * C * R * R, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(Y, x, prof, N, C, R);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_aware3d_assemble_backward_cuda(rhd_ctx *ctx, float *dx, float *dprof, const float *dY, int N,
                                                   int C, int R) {
    dprofiles_kernel<<<rhd_grid1d((int64_t)N * 6 * C * R, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(dprof, dY, N, C, R);
    CUDA_CHECK(cudaGetLastError());
    dx_kernel<<<rhd_grid1d(3L * N * C * R * R, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(dx, dY, dprof, N, C, R);
    CUDA_CHECK(cudaGetLastError());
}
