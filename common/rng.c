/* common/rng.c: bulk fills over the Philox helpers of rng.h (CPU). */
#include "common/rng.h"

void rhd_rng_fill_uniform(float *out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset,
                          float lo, float hi) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        out[i] = lo + (hi - lo) * rhd_rng_uniform(seed, stream, offset + (uint64_t)i);
}

void rhd_rng_fill_normal(float *out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset,
                         float mean, float std) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = mean + std * rhd_rng_normal(seed, stream, offset + (uint64_t)i);
}
