/* common/backend.c: context creation and buffers; the CUDA half is in backend_cuda.cu. */
#include "common/backend.h"
#include "common/log.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

const char *rhd_backend_name(rhd_backend b) { return b == RHD_BACKEND_CUDA ? "cuda" : "cpu"; }

const char *rhd_ctx_device_label(const rhd_ctx *ctx) {
    return !ctx ? "cpu" : ctx->backend == RHD_BACKEND_CUDA ? ctx->name : "cpu";
}

int rhd_cuda_available(void) {
#ifdef RHD_CUDA
    return rhd_cuda_device_count() > 0;
#else
    return 0;
#endif
}

rhd_ctx *rhd_ctx_open(const char *device, rhd_err *e) {
    if (!device || !*device) device = "auto";
    int want_cuda = 0, dev = 0;
    if (strcmp(device, "cpu") == 0) want_cuda = 0;
    else if (strcmp(device, "auto") == 0) want_cuda = rhd_cuda_available();
    else if (strcmp(device, "cuda") == 0) want_cuda = 1;
    else if (strncmp(device, "cuda:", 5) == 0) {
        char *end;
        int64_t v = strtol(device + 5, &end, 10);
        if (*end || end == device + 5 || v < 0 || v > 1024)
            return rhd_errf(e, "--device: '%s' is not a device, expected cpu, cuda, cuda:N or auto", device), NULL;
        want_cuda = 1, dev = (int)v;
    } else {
        rhd_errf(e, "--device: '%s' is not a device, expected cpu, cuda, cuda:N or auto", device);
        return NULL;
    }
    rhd_ctx *ctx = rhd_xcalloc(1, sizeof *ctx);
    if (want_cuda) {
#ifdef RHD_CUDA
        ctx->backend = RHD_BACKEND_CUDA;
        if (rhd_cuda_open(ctx, dev, e)) { free(ctx); return NULL; }
#else
        (void)dev;
        free(ctx);
        rhd_errf(e, "--device %s: this build has no CUDA backend (rebuild with make CUDA=1)", device);
        return NULL;
#endif
    } else {
        ctx->backend = RHD_BACKEND_CPU;
        /* The CPU kernels split their work over OpenMP threads and call BLAS inside each chunk:
         * OpenBLAS's own pool would fight OpenMP's for the same cores (each spinning while the
         * other works), so BLAS runs single-threaded, set here once for every kernel. */
        openblas_set_num_threads(1);
        int nt = 1;
#ifdef _OPENMP
        nt = omp_get_max_threads();
#endif
        snprintf(ctx->name, sizeof ctx->name, "cpu (%d thread%s, OpenBLAS %s)", nt, nt == 1 ? "" : "s", rhd_blas_core());
    }
    rhd_verbose("backend: %s", ctx->name);
    return ctx;
}

/* Switch one of the CUDA math modes (*flag) and the tag that the context's name carries for it. */
static void set_math_mode(rhd_ctx *ctx, int *flag, int on, const char *tag) {
    if (!ctx || ctx->backend != RHD_BACKEND_CUDA || !on == !*flag) return;
    *flag = !!on;
#ifdef RHD_CUDA
    rhd_cuda_set_math(ctx);
#endif
    size_t n = strlen(ctx->name), t = strlen(tag);
    char *at = strstr(ctx->name, tag);
    if (on && !at && n + t < sizeof ctx->name) memcpy(ctx->name + n, tag, t + 1);
    else if (!on && at) memmove(at, at + t, strlen(at + t) + 1);
    rhd_verbose("backend: %s", ctx->name);
}

void rhd_ctx_set_tf32(rhd_ctx *ctx, int on) { if (ctx) set_math_mode(ctx, &ctx->allow_tf32, on, ", TF32"); }
void rhd_ctx_set_bf16(rhd_ctx *ctx, int on) { if (ctx) set_math_mode(ctx, &ctx->allow_bf16, on, ", BF16"); }

void rhd_ctx_close(rhd_ctx *ctx) {
    if (!ctx) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) rhd_cuda_close(ctx);
#endif
    if (ctx->backend == RHD_BACKEND_CPU) free(ctx->workspace);
    free(ctx);
}

void *rhd_buf_alloc(rhd_ctx *ctx, size_t bytes) {
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) return rhd_cuda_alloc(bytes);
#endif
    (void)ctx;
    void *p = NULL; /* 256-byte aligned, as cudaMalloc: vector loads and arena slices rely on it */
    if (posix_memalign(&p, 256, bytes ? bytes : 1) != 0)
        rhd_oom_at(__FILE__, __LINE__, bytes, "host memory");
    return p;
}

void rhd_buf_free(rhd_ctx *ctx, void *p) {
    if (!p) return;
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_cuda_free(p); return; }
#endif
    (void)ctx;
    free(p);
}

void rhd_buf_zero(rhd_ctx *ctx, void *p, size_t bytes) {
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_cuda_memset0(ctx, p, bytes); return; }
#endif
    (void)ctx;
    memset(p, 0, bytes);
}

void rhd_buf_upload(rhd_ctx *ctx, void *dst, const void *src, size_t bytes) {
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_cuda_copy(ctx, dst, src, bytes, 0); return; }
#endif
    (void)ctx;
    if (dst != src) memcpy(dst, src, bytes);
}

void rhd_buf_download(rhd_ctx *ctx, void *dst, const void *src, size_t bytes) {
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_cuda_copy(ctx, dst, src, bytes, 1); return; }
#endif
    (void)ctx;
    if (dst != src) memcpy(dst, src, bytes);
}

void rhd_buf_copy(rhd_ctx *ctx, void *dst, const void *src, size_t bytes) {
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) { rhd_cuda_copy(ctx, dst, src, bytes, 2); return; }
#endif
    (void)ctx;
    if (dst != src) memmove(dst, src, bytes);
}

void rhd_ctx_sync(rhd_ctx *ctx) {
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) rhd_cuda_sync(ctx);
#endif
    (void)ctx;
}

void *rhd_ctx_workspace(rhd_ctx *ctx, size_t bytes) {
    if (bytes <= ctx->workspace_bytes) return ctx->workspace;
    rhd_ctx_sync(ctx);
    rhd_buf_free(ctx, ctx->workspace);
    ctx->workspace = rhd_buf_alloc(ctx, bytes);
    ctx->workspace_bytes = bytes;
    return ctx->workspace;
}
