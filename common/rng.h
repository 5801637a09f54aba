/* common/rng.h: Philox-4x32-10 counter-based random numbers, identical on the CPU and CUDA.
 *
 * Scheme (documented in formats/README.md as well, because files record seeds):
 *   key     = (seed & 0xffffffff, seed >> 32)                      (64-bit user seed)
 *   counter = (block & 0xffffffff, block >> 32, stream & 0xffffffff, stream >> 32)
 * Element i of a stream comes from block i/4, lane i%4. A "stream" separates independent uses
 * of one seed (triplane init, ray selection, dropout, diffusion noise ...): each user picks a
 * fixed stream id (rhd_stream_* below) plus an index (avatar, step). Because element i depends
 * only on (seed, stream, i), results do not depend on the thread count or the backend.
 *   uniform(i) = (x_lane >> 8) * 2^-24                              in [0, 1), exact in fp32
 *   normal(i)  = Box-Muller on the lane pairs (0,1) and (2,3) of block i/4:
 *                u1 = ((x0 >> 8) + 1) * 2^-24 in (0,1], u2 = (x1 >> 8) * 2^-24,
 *                z0 = sqrt(-2 ln u1) cos(2 pi u2), z1 = sqrt(-2 ln u1) sin(2 pi u2)  (z2, z3 alike)
 *                evaluated in double and rounded to float, so CPU and CUDA agree (libm vs CUDA
 *                double intrinsics differ by at most 1 ulp in double, which vanishes in the
 *                rounding to float except in rare ties). */
#ifndef RHD_RNG_H
#define RHD_RNG_H
#include <stdint.h>
#include <math.h>
#include "common/hd.h"

typedef struct { uint32_t v[4]; } rhd_u32x4;

RHD_HD static inline uint32_t rhd_mulhilo32(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

/* Philox4x32 with 10 rounds (Salmon et al. 2011, Random123). */
RHD_HD static inline rhd_u32x4 rhd_philox4x32(rhd_u32x4 ctr, uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = rhd_mulhilo32(0xD2511F53u, ctr.v[0], &hi0);
        uint32_t lo1 = rhd_mulhilo32(0xCD9E8D57u, ctr.v[2], &hi1);
        rhd_u32x4 n;
        n.v[0] = hi1 ^ ctr.v[1] ^ k0;
        n.v[1] = lo1;
        n.v[2] = hi0 ^ ctr.v[3] ^ k1;
        n.v[3] = lo0;
        ctr = n;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return ctr;
}

RHD_HD static inline rhd_u32x4 rhd_rng_block(uint64_t seed, uint64_t stream, uint64_t block) {
    rhd_u32x4 c;
    c.v[0] = (uint32_t)block;
    c.v[1] = (uint32_t)(block >> 32);
    c.v[2] = (uint32_t)stream;
    c.v[3] = (uint32_t)(stream >> 32);
    return rhd_philox4x32(c, (uint32_t)seed, (uint32_t)(seed >> 32));
}

RHD_HD static inline float rhd_u32_to_unit(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

/* The i-th uniform [0,1) number of (seed, stream). */
RHD_HD static inline float rhd_rng_uniform(uint64_t seed, uint64_t stream, uint64_t i) {
    rhd_u32x4 b = rhd_rng_block(seed, stream, i >> 2);
    return rhd_u32_to_unit(b.v[i & 3]);
}

/* The four normals of one block. */
RHD_HD static inline void rhd_box_muller4(rhd_u32x4 b, float z[4]) {
    for (int h = 0; h < 2; h++) {
        double u1 = ((double)(b.v[2 * h] >> 8) + 1.0) * (1.0 / 16777216.0);
        double u2 = (double)(b.v[2 * h + 1] >> 8) * (1.0 / 16777216.0);
        double r = sqrt(-2.0 * log(u1));
        double a = 6.283185307179586 * u2;
        z[2 * h] = (float)(r * cos(a));
        z[2 * h + 1] = (float)(r * sin(a));
    }
}

/* The i-th standard normal number of (seed, stream). */
RHD_HD static inline float rhd_rng_normal(uint64_t seed, uint64_t stream, uint64_t i) {
    float z[4];
    rhd_box_muller4(rhd_rng_block(seed, stream, i >> 2), z);
    return z[i & 3];
}

/* Fixed stream ids: the high 32 bits name the use, the low 32 bits an index within it (avatar,
 * step, sample). New uses get new ids; never reuse one. */
enum {
    RHD_STREAM_TEST = 1,
    RHD_STREAM_PARAM_INIT = 2,   /* model parameter initialisation (index: tensor number) */
    RHD_STREAM_TRIPLANE_INIT = 3,/* index: avatar number */
    RHD_STREAM_RAYS = 4,         /* ray/pixel selection (index: step) */
    RHD_STREAM_MARCH = 5,        /* march jitter */
    RHD_STREAM_GRID = 6,         /* occupancy grid updates */
    RHD_STREAM_DIFFUSION = 7,    /* diffusion noise */
    RHD_STREAM_DROPOUT = 8,
    RHD_STREAM_SHUFFLE = 9
};
#define RHD_STREAM(use, index) (((uint64_t)(use) << 32) | (uint64_t)(uint32_t)(index))

#ifdef __cplusplus
extern "C" {
#endif
/* Fill n floats with uniform [lo,hi) / normal(mean,std) draws i = offset..offset+n-1 (CPU,
 * OpenMP over blocks; the result does not depend on the thread count). */
void rhd_rng_fill_uniform(float *out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset, float lo, float hi);
void rhd_rng_fill_normal(float *out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset, float mean, float std);
#ifdef __cplusplus
}
#endif
#endif
