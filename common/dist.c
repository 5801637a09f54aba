/* common/dist.c: ranks and fixed-order reductions (common/dist.h); MPI only under RHD_MPI. */
#include "common/dist.h"
#include <stdlib.h>
#include <string.h>
#ifdef RHD_MPI
#include <mpi.h>
#endif
#ifdef RHD_NCCL /* make MPI=1 CUDA=1: gradients of CUDA ranks summed by NCCL on the device */
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
static ncclComm_t g_comm;
static int g_nccl; /* 1 once the communicator exists */

/* The communicator over all ranks (rank 0 makes the id, MPI broadcasts it), on ctx's device. */
static int nccl_ready(const rhd_dist *d) {
    if (g_nccl) return 1;
    ncclUniqueId id;
    if (d->rank == 0 && ncclGetUniqueId(&id) != ncclSuccess) return 0;
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    ncclResult_t r = ncclCommInitRank(&g_comm, d->world, id, d->rank);
    if (r != ncclSuccess) {
        fprintf(stderr, "rank %d: ncclCommInitRank: %s; summing through host memory instead\n", d->rank, ncclGetErrorString(r));
        return 0;
    }
    return g_nccl = 1;
}
#endif

#define CHUNK ((int64_t)1 << 26) /* elements per message (MPI counts are int) */

int rhd_dist_built_with_mpi(void) {
#ifdef RHD_MPI
    return 1;
#else
    return 0;
#endif
}

int rhd_dist_init(rhd_dist *d, int *argc, char ***argv, rhd_err *e) {
    memset(d, 0, sizeof *d);
    d->world = 1;
#ifdef RHD_MPI
    int ok = 0;
    MPI_Initialized(&ok);
    if (!ok && MPI_Init(argc, argv) != MPI_SUCCESS) return rhd_errf(e, "MPI_Init failed, expected an MPI launcher or a single process");
    d->mpi = !ok;
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->world);
#else
    (void)argc, (void)argv, (void)e;
#endif
    return 0;
}

void rhd_dist_finalize(rhd_dist *d) {
#ifdef RHD_NCCL
    if (g_nccl) ncclCommDestroy(g_comm), g_nccl = 0;
#endif
#ifdef RHD_MPI
    if (d->mpi) MPI_Finalize();
#endif
    d->mpi = 0;
}

#ifdef RHD_MPI
/* The chain: rank r gets the partial sum of ranks < r in tmp, x = tmp + x, passes it on; the last
 * rank broadcasts. T: float or double. */
#define CHAIN(T, MT, x, n)                                                                         \
    do {                                                                                           \
        T *tmp = rhd_xmalloc(sizeof(T) * (size_t)(n < CHUNK ? (n ? n : 1) : CHUNK));               \
        for (int64_t o = 0; o < n; o += CHUNK) {                                                   \
            int c = (int)(n - o < CHUNK ? n - o : CHUNK);                                          \
            if (d->rank > 0) {                                                                     \
                MPI_Recv(tmp, c, MT, d->rank - 1, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);           \
                for (int i = 0; i < c; i++) x[o + i] = tmp[i] + x[o + i];                          \
            }                                                                                      \
            if (d->rank + 1 < d->world) MPI_Send(x + o, c, MT, d->rank + 1, 7, MPI_COMM_WORLD);    \
            MPI_Bcast(x + o, c, MT, d->world - 1, MPI_COMM_WORLD);                                 \
        }                                                                                          \
        free(tmp);                                                                                 \
    } while (0)
#endif

void rhd_dist_sum_f64(const rhd_dist *d, double *x, int64_t n) {
    if (d->world <= 1) return;
#ifdef RHD_MPI
    CHAIN(double, MPI_DOUBLE, x, n);
#endif
}

void rhd_dist_sum_f32(const rhd_dist *d, rhd_ctx *ctx, float *x, int64_t n) {
    if (d->world <= 1) return;
#ifdef RHD_MPI
    float *h = x;
#ifdef RHD_NCCL
    const char *exact = getenv("RHD_DIST_EXACT");
    if (ctx->backend != RHD_BACKEND_CPU && !(exact && *exact && strcmp(exact, "0")) && nccl_ready(d)) {
        ncclAllReduce(x, x, (size_t)n, ncclFloat, ncclSum, g_comm, (cudaStream_t)ctx->stream);
        cudaStreamSynchronize((cudaStream_t)ctx->stream);
        return;
    }
#endif
    if (ctx->backend != RHD_BACKEND_CPU) {
        h = rhd_xmalloc(sizeof(float) * (size_t)n);
        rhd_buf_download(ctx, h, x, sizeof(float) * (size_t)n);
    }
    CHAIN(float, MPI_FLOAT, h, n);
    if (h != x) rhd_buf_upload(ctx, x, h, sizeof(float) * (size_t)n), free(h);
#else
    (void)ctx, (void)x, (void)n;
#endif
}

int rhd_dist_max_int(const rhd_dist *d, int v) {
#ifdef RHD_MPI
    if (d->world > 1) {
        int out = v;
        MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        return out;
    }
#endif
    (void)d;
    return v;
}

void rhd_dist_barrier(const rhd_dist *d) {
#ifdef RHD_MPI
    if (d->world > 1) MPI_Barrier(MPI_COMM_WORLD);
#endif
    (void)d;
}

void rhd_dist_abort(const rhd_dist *d, int code) {
#ifdef RHD_MPI
    if (d->world > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    (void)d;
    exit(code);
}
