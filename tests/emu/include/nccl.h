/* tests/emu/include/nccl.h: NCCL in the emulated backend: one process has no peers, so creating a
 * communicator fails (common/dist.c then sums through host memory, its documented fallback). */
#ifndef RHD_EMU_NCCL_H
#define RHD_EMU_NCCL_H
#include "cuda_runtime.h"
#ifdef __cplusplus
extern "C" {
#endif
typedef enum { ncclSuccess = 0, ncclInvalidUsage = 5 } ncclResult_t;
typedef enum { ncclFloat = 7 } ncclDataType_t;
typedef enum { ncclSum = 0 } ncclRedOp_t;
typedef struct { char internal[128]; } ncclUniqueId;
typedef struct emu_nccl *ncclComm_t;
ncclResult_t ncclGetUniqueId(ncclUniqueId *id);
ncclResult_t ncclCommInitRank(ncclComm_t *c, int world, ncclUniqueId id, int rank);
ncclResult_t ncclCommDestroy(ncclComm_t c);
ncclResult_t ncclAllReduce(const void *s, void *r, size_t n, ncclDataType_t t, ncclRedOp_t op, ncclComm_t c,
                           cudaStream_t st);
const char *ncclGetErrorString(ncclResult_t r);
#ifdef __cplusplus
}
#endif
#endif
