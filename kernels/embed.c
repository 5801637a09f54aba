/* kernels/embed.c: CPU reference of the sinusoidal timestep embedding (contract in embed.h). */
#include "kernels/embed.h"

void rhd_timestep_embed_forward(rhd_ctx *ctx, float *y, const float *t, int B, int dim) {
    RHD_ASSERT(B >= 0 && dim >= 2 && dim % 2 == 0);
#ifdef RHD_CUDA
    if (ctx->backend == RHD_BACKEND_CUDA) {
        rhd_timestep_embed_forward_cuda(ctx, y, t, B, dim);
        return;
    }
#endif
    for (int b = 0; b < B; b++)
        for (int j = 0; j < dim; j++) y[(int64_t)b * dim + j] = rhd_timestep_embed_elem(t[b], j, dim);
}
