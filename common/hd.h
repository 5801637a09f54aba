/* common/hd.h: RHD_HD marks per-element math compiled for both the host and the device.
 * Under nvcc it expands to __host__ __device__; under a C compiler to nothing. Helpers marked
 * RHD_HD live in headers as static inline functions so the CPU reference and the CUDA kernels
 * share one definition (instant-ngp's NGP_HOST_DEVICE). */
#ifndef RHD_HD_H
#define RHD_HD_H
#ifdef __CUDACC__
#define RHD_HD __host__ __device__
#else
#define RHD_HD
#endif
#endif
