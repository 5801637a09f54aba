/* tests/emu/emu_api.cpp: the host side of the emulated CUDA backend (`make CUDA=emu`,
 * tests/emu/README.md): the CUDA runtime, cuBLAS, cuDNN and NCCL calls the project makes,
 * implemented on host memory with the checks the device would make, and some it would not:
 *  - device memory is host memory from cudaMalloc, registered, filled with 0xff bytes (a float read
 *    before any write is a NaN), limited to RHD_EMU_MEM_GB (default 16) GiB; copies, memsets and
 *    every cuBLAS / cuDNN operand must lie inside one allocation (else a fatal message naming the
 *    call); freeing an unknown pointer is an error;
 *  - a launch configuration the device would refuse (over 1024 threads, a zero or oversized grid
 *    dimension, dynamic shared memory over 48 KiB without the opt-in attribute or over the opt-in
 *    limit of 227 KiB) runs nothing and sets the error that cudaGetLastError returns, with a line on
 *    stderr naming the kernel;
 *  - cuBLAS GEMMs and cuDNN convolutions read their inputs as the device would see them: bf16
 *    operands as bf16, fp32 operands rounded to TF32 where the math mode lets the device use
 *    TF32 (cuBLAS CUBLAS_TF32_TENSOR_OP_MATH; cuDNN fp32 convolutions with any math type but
 *    CUDNN_FMA_MATH); beta = 0 never reads the output (a NaN there does not propagate), as on
 *    the device;
 *  - NCCL: one process has no peers, so a communicator cannot be made (common/dist.c falls back to
 *    its host sums).
 * Kernels run as fibers on the calling thread (emu_device.hpp). GEMMs and convolutions (as
 * im2col + GEMM) run on OpenBLAS, over the operands converted as the device reads them. */
#include "cuda_runtime.h"
#include "cublas_v2.h"
#include "cudnn.h"
#include "nccl.h"
#include <cblas.h>
#include <map>
#include <vector>
#include <mutex>
#include <algorithm>

static cudaError_t last_error = cudaSuccess;
static std::map<uintptr_t, size_t> allocs; /* start -> bytes */
static size_t alloc_total;
static std::map<const void *, int> smem_optin; /* kernel -> MaxDynamicSharedMemorySize */
static const int SMEM_DEFAULT = 48 << 10, SMEM_OPTIN = 227 << 10;

static cudaError_t fail(cudaError_t e) {
    last_error = e;
    return e;
}

extern "C" void emu_check_device(const void *p, size_t bytes, const char *what) {
    uintptr_t a = (uintptr_t)p;
    auto it = allocs.upper_bound(a);
    if (it != allocs.begin()) {
        --it;
        if (a >= it->first && a + bytes <= it->first + it->second) return;
        if (a >= it->first && a < it->first + it->second) {
            fprintf(stderr, "cuda emulation: %s: %zu bytes at %p run %zu bytes past the end of a %zu-byte device allocation\n",
                    what, bytes, p, (size_t)(a + bytes - it->first - it->second), it->second);
            abort();
        }
    }
    fprintf(stderr, "cuda emulation: %s: %p (%zu bytes) is not device memory\n", what, p, bytes);
    abort();
}

/* The allocation holding p (p may be its end), or allocs.end(). */
static std::map<uintptr_t, size_t>::iterator holder(const void *p) {
    uintptr_t a = (uintptr_t)p;
    auto it = allocs.upper_bound(a);
    if (it == allocs.begin()) return allocs.end();
    --it;
    return a <= it->first + it->second ? it : allocs.end();
}

extern "C" void emu_check_kernel_arg(const void *p, const char *kernel, int index) {
    if (holder(p) != allocs.end()) return;
    fprintf(stderr, "cuda emulation: kernel %s: argument %d (%p) is not device memory\n", kernel, index, p);
    abort();
}

static void check_host(const void *p, size_t bytes, const char *what) {
    auto it = holder(p);
    if (it == allocs.end() || (uintptr_t)p == it->first + it->second) return;
    fprintf(stderr, "cuda emulation: %s: %p (%zu bytes) is device memory, expected host memory\n", what, p, bytes);
    abort();
}

static bool overlap(const void *a, size_t na, const void *b, size_t nb) {
    return (uintptr_t)a < (uintptr_t)b + nb && (uintptr_t)b < (uintptr_t)a + na;
}

// runtime

extern "C" cudaError_t cudaGetDeviceCount(int *n) {
    const char *e = getenv("RHD_EMU_NO_DEVICE"); /* for tests of "no device" paths */
    *n = e && *e && strcmp(e, "0") ? 0 : 1;
    return *n ? cudaSuccess : fail(cudaErrorNoDevice);
}
extern "C" cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }
extern "C" cudaError_t cudaGetDevice(int *d) {
    *d = 0;
    return cudaSuccess;
}
static size_t mem_limit() {
    const char *e = getenv("RHD_EMU_MEM_GB");
    double gb = e && *e ? atof(e) : 16.0;
    return (size_t)(gb * (double)(1ull << 30));
}
extern "C" cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    if (d != 0) return fail(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CUDA emulation on the CPU");
    p->totalGlobalMem = mem_limit();
    p->sharedMemPerBlock = SMEM_DEFAULT, p->sharedMemPerBlockOptin = SMEM_OPTIN;
    p->major = 9, p->minor = 0, p->multiProcessorCount = 4, p->maxThreadsPerBlock = 1024, p->warpSize = 32;
    return cudaSuccess;
}
extern "C" cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int d) {
    if (d != 0) return fail(cudaErrorInvalidDevice);
    if (a != cudaDevAttrMaxSharedMemoryPerBlockOptin) return fail(cudaErrorInvalidValue);
    *v = SMEM_OPTIN;
    return cudaSuccess;
}
extern "C" cudaError_t cudaMalloc(void **p, size_t bytes) {
    *p = nullptr;
    if (alloc_total + bytes > mem_limit()) return fail(cudaErrorMemoryAllocation);
    void *m = nullptr;
    if (posix_memalign(&m, 256, bytes ? bytes : 1)) return fail(cudaErrorMemoryAllocation);
    memset(m, 0xff, bytes);
    allocs[(uintptr_t)m] = bytes ? bytes : 1;
    alloc_total += bytes;
    *p = m;
    return cudaSuccess;
}
extern "C" cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    auto it = allocs.find((uintptr_t)p);
    if (it == allocs.end()) return fail(cudaErrorInvalidDevicePointer);
    alloc_total -= it->second;
    allocs.erase(it);
    free(p);
    return cudaSuccess;
}
extern "C" cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind k, cudaStream_t) {
    if (!bytes) return cudaSuccess;
    if (k == cudaMemcpyHostToDevice || k == cudaMemcpyDeviceToDevice) emu_check_device(dst, bytes, "cudaMemcpy destination");
    if (k == cudaMemcpyDeviceToHost || k == cudaMemcpyDeviceToDevice) emu_check_device(src, bytes, "cudaMemcpy source");
    if (k == cudaMemcpyHostToDevice) check_host(src, bytes, "cudaMemcpy host-to-device source");
    if (k == cudaMemcpyDeviceToHost) check_host(dst, bytes, "cudaMemcpy device-to-host destination");
    if (k != cudaMemcpyHostToDevice && k != cudaMemcpyDeviceToHost && k != cudaMemcpyDeviceToDevice) return fail(cudaErrorInvalidValue);
    if (overlap(dst, bytes, src, bytes)) {
        fprintf(stderr, "cuda emulation: cudaMemcpy: source and destination overlap (undefined on the device)\n");
        abort();
    }
    memcpy(dst, src, bytes);
    return cudaSuccess;
}
extern "C" cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind k) {
    return cudaMemcpyAsync(dst, src, bytes, k, nullptr);
}
extern "C" cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t) {
    if (!bytes) return cudaSuccess;
    emu_check_device(p, bytes, "cudaMemset");
    memset(p, v, bytes);
    return cudaSuccess;
}
extern "C" cudaError_t cudaMemset(void *p, int v, size_t bytes) { return cudaMemsetAsync(p, v, bytes, nullptr); }
extern "C" cudaError_t cudaStreamCreate(cudaStream_t *s) {
    *s = (cudaStream_t)new char;
    return cudaSuccess;
}
extern "C" cudaError_t cudaStreamDestroy(cudaStream_t s) {
    delete (char *)s;
    return cudaSuccess;
}
extern "C" cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
extern "C" cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
extern "C" cudaError_t cudaGetLastError(void) {
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
extern "C" cudaError_t cudaPeekAtLastError(void) { return last_error; }
extern "C" const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    }
    return "unknown error";
}
extern "C" cudaError_t emu_func_set_attribute(const void *f, int attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || value > SMEM_OPTIN)
        return fail(cudaErrorInvalidValue);
    smem_optin[f] = value;
    return cudaSuccess;
}
extern "C" int emu_launch_check(const void *f, const char *name, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                unsigned by, unsigned bz, size_t smem) {
    const char *why = nullptr;
    unsigned long long threads = (unsigned long long)bx * by * bz;
    auto it = smem_optin.find(f);
    size_t limit = it != smem_optin.end() && it->second > SMEM_DEFAULT ? (size_t)it->second : (size_t)SMEM_DEFAULT;
    if (!bx || !by || !bz || !gx || !gy || !gz) why = "a zero dimension";
    else if (threads > 1024) why = "over 1024 threads per block";
    else if (bz > 64) why = "block z over 64";
    else if (gx > 2147483647u || gy > 65535 || gz > 65535) why = "a grid dimension over the device's limit";
    else if (smem > limit) why = "more dynamic shared memory than the kernel may use (cudaFuncSetAttribute)";
    if (!why) return 1;
    fprintf(stderr, "cuda emulation: kernel %s: launch grid (%u,%u,%u) block (%u,%u,%u) smem %zu refused: %s\n",
            name ? name : "?", gx, gy, gz, bx, by, bz, smem, why);
    fail(cudaErrorInvalidConfiguration);
    return 0;
}

// cuBLAS

struct emu_cublas {
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

static float tf32(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    if ((b & 0x7f800000u) != 0x7f800000u) b = (b + 0xfffu + ((b >> 13) & 1u)) & ~0x1fffu;
    memcpy(&x, &b, 4);
    return x;
}

/* One operand as the device reads it. */
struct operand {
    const void *p;
    int bf16, round_tf32;
    float at(int64_t i) const {
        float v = bf16 ? rhd_bf16_to_float(((const uint16_t *)p)[i]) : ((const float *)p)[i];
        return round_tf32 ? tf32(v) : v;
    }
};

static int64_t extent(int rows, int cols, int ld, long long stride, int batch) {
    return (int64_t)(cols - 1) * ld + rows + (int64_t)(batch - 1) * stride;
}

/* The operand's stored extent as fp32 values, as the device reads them. */
static std::vector<float> as_read(const operand &o, int64_t n) {
    std::vector<float> v((size_t)n);
    for (int64_t i = 0; i < n; i++) v[(size_t)i] = o.at(i);
    return v;
}

/* Column-major C = alpha op(A) op(B) + beta C per batch, by OpenBLAS on the operands as read. */
static cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
                           operand A, int lda, long long sA, operand B, int ldb, long long sB, float beta, float *C,
                           int ldc, long long sC, int batch, size_t esize) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (m < 0 || n < 0 || k < 0 || batch < 0 || lda < (ta ? k : m) || lda < 1 || ldb < (tb ? n : k) || ldb < 1 ||
        ldc < m || ldc < 1)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (!m || !n || !batch) return CUBLAS_STATUS_SUCCESS;
    int64_t nA = k ? extent(ta ? k : m, ta ? m : k, lda, sA, batch) : 0;
    int64_t nB = k ? extent(tb ? n : k, tb ? k : n, ldb, sB, batch) : 0;
    if (k) {
        emu_check_device(A.p, esize * nA, "cuBLAS GEMM operand A");
        emu_check_device(B.p, esize * nB, "cuBLAS GEMM operand B");
    }
    size_t nC = 4 * (size_t)extent(m, n, ldc, sC, batch);
    emu_check_device(C, nC, "cuBLAS GEMM output C");
    if (batch > 1 && sC < (long long)ldc * (n - 1) + m) {
        fprintf(stderr, "cuda emulation: cuBLAS strided GEMM: output batches overlap (stride %lld < %lld): a race on the device\n",
                sC, (long long)ldc * (n - 1) + m);
        abort();
    }
    if (k && (overlap(C, nC, A.p, esize * nA) || overlap(C, nC, B.p, esize * nB))) {
        fprintf(stderr, "cuda emulation: cuBLAS GEMM: the output overlaps an operand (undefined on the device)\n");
        abort();
    }
    std::vector<float> a = as_read(A, nA), b = as_read(B, nB);
    for (int i = 0; i < batch; i++) {
        float *c = C + (int64_t)i * sC;
        if (beta == 0.0f) /* the device never reads C then: a NaN there must not propagate */
            for (int j = 0; j < n; j++) memset(c + (int64_t)j * ldc, 0, sizeof(float) * (size_t)m);
        if (!k) {
            if (beta != 0.0f)
                for (int j = 0; j < n; j++)
                    for (int r = 0; r < m; r++) c[(int64_t)j * ldc + r] *= beta;
            continue;
        }
        cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha,
                    a.data() + (int64_t)i * sA, lda, b.data() + (int64_t)i * sB, ldb, beta, c, ldc);
    }
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = new emu_cublas;
    return CUBLAS_STATUS_SUCCESS;
}
extern "C" cublasStatus_t cublasDestroy(cublasHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
extern "C" cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t) { return h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED; }
extern "C" cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->math = m;
    return CUBLAS_STATUS_SUCCESS;
}
extern "C" const char *cublasGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "unknown cuBLAS status";
}
extern "C" cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                    int n, int k, const float *alpha, const float *A, int lda,
                                                    long long sA, const float *B, int ldb, long long sB,
                                                    const float *beta, float *C, int ldc, long long sC, int batch) {
    int t = h && h->math == CUBLAS_TF32_TENSOR_OP_MATH;
    return gemm(h, ta, tb, m, n, k, *alpha, operand{A, 0, t}, lda, sA, operand{B, 0, t}, ldb, sB, *beta, C, ldc, sC,
                batch, 4);
}
extern "C" cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                      const float *alpha, const float *A, int lda, const float *B, int ldb,
                                      const float *beta, float *C, int ldc) {
    return cublasSgemmStridedBatched(h, ta, tb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}
extern "C" cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                     int n, int k, const void *alpha, const void *A, cudaDataType tA,
                                                     int lda, long long sA, const void *B, cudaDataType tB, int ldb,
                                                     long long sB, const void *beta, void *C, cudaDataType tC, int ldc,
                                                     long long sC, int batch, cublasComputeType_t compute,
                                                     cublasGemmAlgo_t) {
    /* the one combination the project uses: bf16 inputs, fp32 output and compute */
    if (tA != CUDA_R_16BF || tB != CUDA_R_16BF || tC != CUDA_R_32F || compute != CUBLAS_COMPUTE_32F)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    return gemm(h, ta, tb, m, n, k, *(const float *)alpha, operand{A, 1, 0}, lda, sA, operand{B, 1, 0}, ldb, sB,
                *(const float *)beta, (float *)C, ldc, sC, batch, 2);
}

// cuDNN

struct emu_cudnn {
    int ok = 1;
};
struct emu_tensor_desc {
    int set = 0;
    cudnnDataType_t t = CUDNN_DATA_FLOAT;
    int n = 0, c = 0, h = 0, w = 0;
};
struct emu_conv_desc {
    int set = 0, ph = 0, pw = 0, u = 1, v = 1;
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

extern "C" cudnnStatus_t cudnnCreate(cudnnHandle_t *h) {
    *h = new emu_cudnn;
    return CUDNN_STATUS_SUCCESS;
}
extern "C" cudnnStatus_t cudnnDestroy(cudnnHandle_t h) {
    delete h;
    return CUDNN_STATUS_SUCCESS;
}
extern "C" cudnnStatus_t cudnnSetStream(cudnnHandle_t, cudaStream_t) { return CUDNN_STATUS_SUCCESS; }
extern "C" const char *cudnnGetErrorString(cudnnStatus_t s) {
    switch (s) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    }
    return "unknown cuDNN status";
}
extern "C" cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *d) {
    *d = new emu_tensor_desc;
    return CUDNN_STATUS_SUCCESS;
}
extern "C" cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) {
    delete d;
    return CUDNN_STATUS_SUCCESS;
}
static cudnnStatus_t set4d(emu_tensor_desc *d, cudnnTensorFormat_t f, cudnnDataType_t t, int n, int c, int h, int w) {
    if (f != CUDNN_TENSOR_NCHW || (t != CUDNN_DATA_FLOAT && t != CUDNN_DATA_BFLOAT16) || n < 1 || c < 1 || h < 1 || w < 1)
        return CUDNN_STATUS_BAD_PARAM;
    d->set = 1, d->t = t, d->n = n, d->c = c, d->h = h, d->w = w;
    return CUDNN_STATUS_SUCCESS;
}
extern "C" cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t f, cudnnDataType_t t,
                                                    int n, int c, int h, int w) {
    return set4d(d, f, t, n, c, h, w);
}
extern "C" cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *d) { return cudnnCreateTensorDescriptor(d); }
extern "C" cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) { return cudnnDestroyTensorDescriptor(d); }
extern "C" cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t t, cudnnTensorFormat_t f,
                                                    int k, int c, int h, int w) {
    return set4d(d, f, t, k, c, h, w);
}
extern "C" cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *d) {
    *d = new emu_conv_desc;
    return CUDNN_STATUS_SUCCESS;
}
extern "C" cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) {
    delete d;
    return CUDNN_STATUS_SUCCESS;
}
extern "C" cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int ph, int pw, int u, int v,
                                                         int dh, int dw, cudnnConvolutionMode_t mode,
                                                         cudnnDataType_t compute) {
    /* emulated: no dilation, cross-correlation, fp32 compute (what conv2d.cu asks for) */
    if (ph < 0 || pw < 0 || u < 1 || v < 1 || dh != 1 || dw != 1 || mode != CUDNN_CROSS_CORRELATION ||
        compute != CUDNN_DATA_FLOAT)
        return CUDNN_STATUS_NOT_SUPPORTED;
    d->set = 1, d->ph = ph, d->pw = pw, d->u = u, d->v = v;
    return CUDNN_STATUS_SUCCESS;
}
extern "C" cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m) {
    d->math = m;
    return CUDNN_STATUS_SUCCESS;
}
static int out_dim(int in, int k, int pad, int stride) { return (in + 2 * pad - k) / stride + 1; }
extern "C" cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t x,
                                                               cudnnFilterDescriptor_t w, int *n, int *ch, int *h,
                                                               int *wd) {
    if (!c->set || !x->set || !w->set || x->c != w->c) return CUDNN_STATUS_BAD_PARAM;
    *n = x->n, *ch = w->n, *h = out_dim(x->h, w->h, c->ph, c->u), *wd = out_dim(x->w, w->w, c->pw, c->v);
    return *h >= 1 && *wd >= 1 ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_BAD_PARAM;
}

/* The three descriptors agree (types, channels, output size). */
static cudnnStatus_t check_descs(const emu_conv_desc *c, const emu_tensor_desc *x, const emu_tensor_desc *w,
                                 const emu_tensor_desc *y) {
    int n, ch, h, wd;
    if (cudnnGetConvolution2dForwardOutputDim((cudnnConvolutionDescriptor_t)c, (cudnnTensorDescriptor_t)x,
                                              (cudnnFilterDescriptor_t)w, &n, &ch, &h, &wd) != CUDNN_STATUS_SUCCESS)
        return CUDNN_STATUS_BAD_PARAM;
    if (!y->set || y->n != n || y->c != ch || y->h != h || y->w != wd || x->t != w->t || x->t != y->t)
        return CUDNN_STATUS_BAD_PARAM;
    return CUDNN_STATUS_SUCCESS;
}

/* What the heuristics report: one deterministic algorithm (with the descriptor's math type), whose
 * workspace is a few KiB, so that the caller's workspace handling is exercised. */
static const size_t WS_BYTES = 4096;
template <class P, class A> static cudnnStatus_t one_algo(const emu_conv_desc *c, int req, int *n, P *r, A algo) {
    if (req < 1) return CUDNN_STATUS_BAD_PARAM;
    memset(r, 0, sizeof *r);
    r->algo = algo, r->status = CUDNN_STATUS_SUCCESS, r->memory = WS_BYTES, r->determinism = CUDNN_DETERMINISTIC;
    r->mathType = c->math == CUDNN_FMA_MATH ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
    *n = 1;
    return CUDNN_STATUS_SUCCESS;
}
extern "C" cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t, cudnnTensorDescriptor_t x,
                                                                cudnnFilterDescriptor_t w,
                                                                cudnnConvolutionDescriptor_t c,
                                                                cudnnTensorDescriptor_t y, int req, int *n,
                                                                cudnnConvolutionFwdAlgoPerf_t *r) {
    cudnnStatus_t s = check_descs(c, x, w, y);
    return s ? s : one_algo(c, req, n, r, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM);
}
extern "C" cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t, cudnnFilterDescriptor_t w,
                                                                     cudnnTensorDescriptor_t dy,
                                                                     cudnnConvolutionDescriptor_t c,
                                                                     cudnnTensorDescriptor_t dx, int req, int *n,
                                                                     cudnnConvolutionBwdDataAlgoPerf_t *r) {
    cudnnStatus_t s = check_descs(c, dx, w, dy);
    return s ? s : one_algo(c, req, n, r, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1);
}
extern "C" cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t, cudnnTensorDescriptor_t x,
                                                                       cudnnTensorDescriptor_t dy,
                                                                       cudnnConvolutionDescriptor_t c,
                                                                       cudnnFilterDescriptor_t dw, int req, int *n,
                                                                       cudnnConvolutionBwdFilterAlgoPerf_t *r) {
    cudnnStatus_t s = check_descs(c, x, dw, dy);
    return s ? s : one_algo(c, req, n, r, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1);
}
extern "C" cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t, cudnnTensorDescriptor_t x,
                                                                 cudnnFilterDescriptor_t w,
                                                                 cudnnConvolutionDescriptor_t c,
                                                                 cudnnTensorDescriptor_t y, cudnnConvolutionFwdAlgo_t,
                                                                 size_t *bytes) {
    *bytes = WS_BYTES;
    return check_descs(c, x, w, y);
}
extern "C" cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t, cudnnFilterDescriptor_t w,
                                                                      cudnnTensorDescriptor_t dy,
                                                                      cudnnConvolutionDescriptor_t c,
                                                                      cudnnTensorDescriptor_t dx,
                                                                      cudnnConvolutionBwdDataAlgo_t, size_t *bytes) {
    *bytes = WS_BYTES;
    return check_descs(c, dx, w, dy);
}
extern "C" cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t, cudnnTensorDescriptor_t x,
                                                                        cudnnTensorDescriptor_t dy,
                                                                        cudnnConvolutionDescriptor_t c,
                                                                        cudnnFilterDescriptor_t dw,
                                                                        cudnnConvolutionBwdFilterAlgo_t, size_t *bytes) {
    *bytes = WS_BYTES;
    return check_descs(c, x, dw, dy);
}

/* A tensor as the device reads it (bf16, or fp32 rounded to TF32 unless FMA math), and writes it. */
struct tens {
    void *p;
    int bf16, round;
    float get(int64_t i) const {
        float v = bf16 ? rhd_bf16_to_float(((const uint16_t *)p)[i]) : ((const float *)p)[i];
        return round ? tf32(v) : v;
    }
    void put(int64_t i, float alpha, double s, float beta) const {
        float r = alpha * (float)s;
        if (bf16) {
            uint16_t *q = (uint16_t *)p + i;
            *q = rhd_float_to_bf16(beta == 0.0f ? r : r + beta * rhd_bf16_to_float(*q));
        } else {
            float *q = (float *)p + i;
            *q = beta == 0.0f ? r : r + beta * *q;
        }
    }
};
static size_t bytes_of(const emu_tensor_desc *d) {
    return (size_t)d->n * d->c * d->h * d->w * (d->t == CUDNN_DATA_BFLOAT16 ? 2 : 4);
}
static cudnnStatus_t conv_call(const char *what, const emu_conv_desc *c, const emu_tensor_desc *x, const void *xp,
                               const emu_tensor_desc *w, const void *wp, const emu_tensor_desc *y, const void *yp,
                               void *ws, size_t ws_bytes, tens *X, tens *W, tens *Y) {
    cudnnStatus_t s = check_descs(c, x, w, y);
    if (s) return s;
    if (ws_bytes < WS_BYTES) return CUDNN_STATUS_BAD_PARAM;
    char m[128];
    snprintf(m, sizeof m, "%s workspace", what);
    emu_check_device(ws, ws_bytes, m);
    memset(ws, 0xff, ws_bytes); /* the library's scratch: whatever the caller kept there is gone */
    snprintf(m, sizeof m, "%s x", what);
    emu_check_device(xp, bytes_of(x), m);
    snprintf(m, sizeof m, "%s w", what);
    emu_check_device(wp, bytes_of(w), m);
    snprintf(m, sizeof m, "%s y", what);
    emu_check_device(yp, bytes_of(y), m);
    int bf = x->t == CUDNN_DATA_BFLOAT16, r = !bf && c->math != CUDNN_FMA_MATH;
    *X = tens{(void *)xp, bf, r}, *W = tens{(void *)wp, bf, r}, *Y = tens{(void *)yp, bf, r};
    return CUDNN_STATUS_SUCCESS;
}

/* Convolutions as im2col + GEMM per image: cols [C*KH*KW][OH*OW] of image n as the device reads it. */
struct conv_geom {
    int N, C, H, W, K, KH, KW, OH, OW, ph, pw, u, v;
    int64_t ckk() const { return (int64_t)C * KH * KW; }
    int64_t ohw() const { return (int64_t)OH * OW; }
};
static conv_geom geom(const emu_tensor_desc *x, const emu_tensor_desc *w, const emu_tensor_desc *y, const emu_conv_desc *c) {
    return conv_geom{x->n, x->c, x->h, x->w, w->n, w->h, w->w, y->h, y->w, c->ph, c->pw, c->u, c->v};
}
/* Calls f(row of cols, position in the image or -1 for padding) for every element of cols, in order. */
template <class F> static void im2col_map(const conv_geom &g, F f) {
    for (int c = 0; c < g.C; c++)
        for (int i = 0; i < g.KH; i++)
            for (int j = 0; j < g.KW; j++) {
                int64_t row = ((int64_t)c * g.KH + i) * g.KW + j;
                for (int oh = 0; oh < g.OH; oh++) {
                    int ih = oh * g.u - g.ph + i;
                    for (int ow = 0; ow < g.OW; ow++) {
                        int iw = ow * g.v - g.pw + j;
                        int64_t at = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W ? ((int64_t)c * g.H + ih) * g.W + iw : -1;
                        f(row * g.ohw() + (int64_t)oh * g.OW + ow, at);
                    }
                }
            }
}
static void im2col(const conv_geom &g, const tens &X, int n, std::vector<float> &cols) {
    int64_t off = (int64_t)n * g.C * g.H * g.W;
    im2col_map(g, [&](int64_t k, int64_t at) { cols[(size_t)k] = at < 0 ? 0.0f : X.get(off + at); });
}
static std::vector<float> read_all(const tens &t, int64_t n, int64_t off = 0) {
    std::vector<float> v((size_t)n);
    for (int64_t i = 0; i < n; i++) v[(size_t)i] = t.get(off + i);
    return v;
}

extern "C" cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t, const void *alpha, cudnnTensorDescriptor_t xd,
                                                 const void *x, cudnnFilterDescriptor_t wd, const void *w,
                                                 cudnnConvolutionDescriptor_t cd, cudnnConvolutionFwdAlgo_t, void *ws,
                                                 size_t ws_bytes, const void *beta, cudnnTensorDescriptor_t yd, void *y) {
    tens X, W, Y;
    cudnnStatus_t s = conv_call("cudnnConvolutionForward", cd, xd, x, wd, w, yd, y, ws, ws_bytes, &X, &W, &Y);
    if (s) return s;
    float a = *(const float *)alpha, b = *(const float *)beta;
    conv_geom g = geom(xd, wd, yd, cd);
    std::vector<float> wf = read_all(W, g.K * g.ckk()), cols((size_t)(g.ckk() * g.ohw())), out((size_t)(g.K * g.ohw()));
    for (int n = 0; n < g.N; n++) {
        im2col(g, X, n, cols);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.K, (int)g.ohw(), (int)g.ckk(), 1.0f, wf.data(),
                    (int)g.ckk(), cols.data(), (int)g.ohw(), 0.0f, out.data(), (int)g.ohw());
        for (int64_t i = 0; i < g.K * g.ohw(); i++) Y.put((int64_t)n * g.K * g.ohw() + i, a, out[(size_t)i], b);
    }
    return CUDNN_STATUS_SUCCESS;
}
extern "C" cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t, const void *alpha, cudnnFilterDescriptor_t wd,
                                                      const void *w, cudnnTensorDescriptor_t dyd, const void *dy,
                                                      cudnnConvolutionDescriptor_t cd, cudnnConvolutionBwdDataAlgo_t,
                                                      void *ws, size_t ws_bytes, const void *beta,
                                                      cudnnTensorDescriptor_t dxd, void *dx) {
    tens DX, W, DY;
    cudnnStatus_t s = conv_call("cudnnConvolutionBackwardData", cd, dxd, dx, wd, w, dyd, dy, ws, ws_bytes, &DX, &W, &DY);
    if (s) return s;
    float a = *(const float *)alpha, b = *(const float *)beta;
    conv_geom g = geom(dxd, wd, dyd, cd);
    int64_t img = (int64_t)g.C * g.H * g.W;
    std::vector<float> wf = read_all(W, g.K * g.ckk()), dcols((size_t)(g.ckk() * g.ohw()));
    std::vector<double> acc((size_t)img);
    for (int n = 0; n < g.N; n++) {
        std::vector<float> dyn = read_all(DY, g.K * g.ohw(), (int64_t)n * g.K * g.ohw());
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)g.ckk(), (int)g.ohw(), g.K, 1.0f, wf.data(),
                    (int)g.ckk(), dyn.data(), (int)g.ohw(), 0.0f, dcols.data(), (int)g.ohw());
        std::fill(acc.begin(), acc.end(), 0.0);
        im2col_map(g, [&](int64_t k, int64_t at) {
            if (at >= 0) acc[(size_t)at] += dcols[(size_t)k];
        });
        for (int64_t i = 0; i < img; i++) DX.put((int64_t)n * img + i, a, acc[(size_t)i], b);
    }
    return CUDNN_STATUS_SUCCESS;
}
extern "C" cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t, const void *alpha, cudnnTensorDescriptor_t xd,
                                                        const void *x, cudnnTensorDescriptor_t dyd, const void *dy,
                                                        cudnnConvolutionDescriptor_t cd,
                                                        cudnnConvolutionBwdFilterAlgo_t, void *ws, size_t ws_bytes,
                                                        const void *beta, cudnnFilterDescriptor_t dwd, void *dw) {
    tens X, DW, DY;
    cudnnStatus_t s = conv_call("cudnnConvolutionBackwardFilter", cd, xd, x, dwd, dw, dyd, dy, ws, ws_bytes, &X, &DW, &DY);
    if (s) return s;
    float a = *(const float *)alpha, b = *(const float *)beta;
    conv_geom g = geom(xd, dwd, dyd, cd);
    std::vector<float> cols((size_t)(g.ckk() * g.ohw())), dwf((size_t)(g.K * g.ckk()), 0.0f);
    for (int n = 0; n < g.N; n++) {
        im2col(g, X, n, cols);
        std::vector<float> dyn = read_all(DY, g.K * g.ohw(), (int64_t)n * g.K * g.ohw());
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g.K, (int)g.ckk(), (int)g.ohw(), 1.0f, dyn.data(),
                    (int)g.ohw(), cols.data(), (int)g.ohw(), 1.0f, dwf.data(), (int)g.ckk());
    }
    for (int64_t i = 0; i < g.K * g.ckk(); i++) DW.put(i, a, dwf[(size_t)i], b);
    return CUDNN_STATUS_SUCCESS;
}

// NCCL

extern "C" ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
    memset(id, 0, sizeof *id);
    return ncclSuccess;
}
extern "C" ncclResult_t ncclCommInitRank(ncclComm_t *c, int, ncclUniqueId, int) {
    *c = nullptr;
    return ncclInvalidUsage;
}
extern "C" ncclResult_t ncclCommDestroy(ncclComm_t) { return ncclSuccess; }
extern "C" ncclResult_t ncclAllReduce(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t) {
    return ncclInvalidUsage;
}
extern "C" const char *ncclGetErrorString(ncclResult_t r) {
    return r == ncclSuccess ? "no error" : "the CUDA emulation has no NCCL peers (one process, one emulated device)";
}
