/* common/dist.h: data-parallel ranks for the trainer (spec diffusion.md §4: the original runs one
 * process per GPU under mpiexec with DDP).
 *
 * Built with `make MPI=1` (mpicc, -DRHD_MPI) the ranks are MPI's COMM_WORLD; otherwise, or when
 * the program was not started by mpirun, there is one rank (rank 0 of 1) and every call below is
 * the identity. Rank 0 writes the files; all ranks compute.
 *
 * Reductions are in a FIXED order, rank 0 first: the sum of x over ranks r = 0..W-1 is
 * ((x_0 + x_1) + x_2) + ... , computed as a chain (rank r receives the partial sum of ranks < r,
 * adds its own, passes it on; the last rank broadcasts the total). So with one micro-batch per
 * rank the summed gradient has the same bits as one process adding the same micro-batches in
 * order. On a CUDA context built with MPI=1 CUDA=1 (-DRHD_NCCL) the float sums run on the device
 * with ncclAllReduce (NCCL's ring order: equal to float rounding, not bit-identical); with
 * RHD_DIST_EXACT=1, or when NCCL cannot start, they are staged through host memory and chained. */
#ifndef RHD_COMMON_DIST_H
#define RHD_COMMON_DIST_H
#include <stdint.h>
#include "common/backend.h"
#include "common/err.h"

typedef struct rhd_dist {
    int rank, world;
    int mpi;          /* 1 when MPI was initialised here */
} rhd_dist;

#ifdef __cplusplus
extern "C" {
#endif
/* Start (MPI_Init when built with MPI). Never fails without MPI. */
int rhd_dist_init(rhd_dist *d, int *argc, char ***argv, rhd_err *e);
void rhd_dist_finalize(rhd_dist *d);
/* 1 when this build has MPI ("mpi"), for messages and metadata. */
int rhd_dist_built_with_mpi(void);
/* x[n] (float, on ctx's side) := the fixed-order sum over ranks, on every rank. */
void rhd_dist_sum_f32(const rhd_dist *d, rhd_ctx *ctx, float *x, int64_t n);
/* x[n] (host doubles) := the fixed-order sum over ranks, on every rank. */
void rhd_dist_sum_f64(const rhd_dist *d, double *x, int64_t n);
/* The maximum of v over ranks (an error flag: any rank failing makes all stop). */
int rhd_dist_max_int(const rhd_dist *d, int v);
void rhd_dist_barrier(const rhd_dist *d);
/* A rank's fatal error: with several ranks, abort them all (MPI_Abort) after the message. */
void rhd_dist_abort(const rhd_dist *d, int code);
#ifdef __cplusplus
}
#endif
#endif
