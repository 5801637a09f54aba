/* tests/cuda_emu.hpp: the CUDA vocabulary that the project's hand-written kernels use, emulated on
 * the CPU, so that tests compile the very device code of a .cuh file and check it on every test run,
 * GPU or not (tests/models/test_fused_emu.cpp, tests/kernels/test_attention_emu.cpp).
 *
 * A launch runs its blocks one after another; each block as blockDim.x std::threads sharing one
 * dynamic shared-memory buffer (128-byte aligned, every byte 0xff: a float or bf16 read of anything
 * not written first is a NaN). __syncthreads is a block barrier, __syncwarp a barrier of the 32
 * threads of the warp, __shfl_xor_sync an exchange through a per-block buffer between two warp
 * barriers. Under `make SAN=1` the buffer is exactly the requested size, so an out-of-range
 * shared-memory index is caught.
 *
 * wmma (16x16x16, bf16 inputs, fp32 accumulators): a fragment holds its whole tile; lane 0 of the
 * warp does the loads, products and stores (the other lanes' calls do nothing), the products summed
 * in fp32 in k order. So a kernel that reads a stored tile from another lane without __syncwarp
 * between, or that relies on the fragments' register layout, does not pass here. Fragment pointers
 * must be 32-byte aligned and ldm a multiple of 16 bytes, as on the device (checked: abort).
 * Include this before the .cuh. */
#ifndef RHD_TESTS_CUDA_EMU_HPP
#define RHD_TESTS_CUDA_EMU_HPP
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <thread>
#include <vector>
extern "C" {
#include "common/tensor.h" /* rhd_float_to_bf16 / rhd_bf16_to_float: round to nearest even */
}

struct float4 {
    float x, y, z, w;
};
static inline float4 make_float4(float a, float b, float c, float d) { return float4{a, b, c, d}; }
struct emu_dim3 {
    unsigned x, y, z;
};
static thread_local emu_dim3 threadIdx;
static emu_dim3 blockIdx, blockDim, gridDim;
template <class T> static T __ldg(const T *p) { return *p; }
#define __device__
#define __global__
#define __launch_bounds__(n)

static std::barrier<> *emu_block_barrier;
static std::vector<std::unique_ptr<std::barrier<>>> emu_warp_barriers;
static std::vector<float> emu_xchg;
static unsigned char *emu_smem;

#define __syncthreads() emu_block_barrier->arrive_and_wait()
static inline void __syncwarp(unsigned = 0xffffffffu) { emu_warp_barriers[threadIdx.x >> 5]->arrive_and_wait(); }
static inline float __shfl_xor_sync(unsigned, float v, int mask) {
    emu_xchg[threadIdx.x] = v;
    __syncwarp();
    float r = emu_xchg[(threadIdx.x & ~31u) | ((threadIdx.x & 31u) ^ (unsigned)mask)];
    __syncwarp();
    return r;
}

struct __nv_bfloat16 {
    uint16_t bits;
};
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16{rhd_float_to_bf16(f)}; }
static inline float __bfloat162float(__nv_bfloat16 h) { return rhd_bf16_to_float(h.bits); }

namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "emulated: 16x16x16 only");
    float v[16][16];
};
static inline bool lane0() { return (threadIdx.x & 31) == 0; }
static inline void check(const void *p, unsigned ldm, size_t elem) {
    if (((uintptr_t)p & 31) || (ldm * elem) % 16) {
        fprintf(stderr, "cuda_emu: wmma pointer %p / ldm %u (%zu-byte elements) misaligned\n", p, ldm, elem);
        abort();
    }
}
static inline float elem(const __nv_bfloat16 &h) { return __bfloat162float(h); }
static inline float elem(const float &f) { return f; }
template <class U, class T, class L>
static void load_matrix_sync(fragment<U, 16, 16, 16, T, L> &f, const T *p, unsigned ldm) {
    if (!lane0()) return;
    check(p, ldm, sizeof(T));
    constexpr bool col = std::is_same<L, col_major>::value;
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) f.v[i][j] = elem(col ? p[(size_t)j * ldm + i] : p[(size_t)i * ldm + j]);
}
template <class T> static void fill_fragment(fragment<accumulator, 16, 16, 16, T> &f, float x) {
    if (!lane0()) return;
    for (auto &r : f.v)
        for (float &e : r) e = x;
}
template <class TA, class LA, class TB, class LB>
static void mma_sync(fragment<accumulator, 16, 16, 16, float> &d, const fragment<matrix_a, 16, 16, 16, TA, LA> &a,
                     const fragment<matrix_b, 16, 16, 16, TB, LB> &b, const fragment<accumulator, 16, 16, 16, float> &c) {
    if (!lane0()) return;
    float t[16][16];
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) {
            float s = c.v[i][j];
            for (int k = 0; k < 16; k++) s += a.v[i][k] * b.v[k][j];
            t[i][j] = s;
        }
    memcpy(d.v, t, sizeof t);
}
static inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f, unsigned ldm, layout_t l) {
    if (!lane0()) return;
    check(p, ldm, sizeof(float));
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) p[l == mem_col_major ? (size_t)j * ldm + i : (size_t)i * ldm + j] = f.v[i][j];
}
} // namespace wmma
} // namespace nvcuda

/* The inputs' seed: $RHD_TEST_SEED, else the time; printed so that a failure can be replayed. */
static uint64_t emu_test_seed() {
    const char *s = getenv("RHD_TEST_SEED");
    uint64_t seed = s && *s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
    printf("# random inputs: RHD_TEST_SEED=%llu\n", (unsigned long long)seed);
    return seed;
}

/* Runs kernel() as grid.x * grid.y blocks of `block` threads with `smem` bytes of shared memory. */
template <class F> static void emu_launch(emu_dim3 grid, unsigned block, size_t smem, F kernel) {
    blockDim = {block, 1, 1};
    gridDim = grid;
    void *mem = NULL;
    if (posix_memalign(&mem, 128, smem ? smem : 1)) abort();
    unsigned char *shared = (unsigned char *)mem;
    emu_xchg.assign(block, 0.0f);
    unsigned warps = (block + 31) / 32;
    for (unsigned by = 0; by < grid.y; by++)
        for (unsigned bx = 0; bx < grid.x; bx++) {
            blockIdx = {bx, by, 0};
            memset(shared, 0xff, smem);
            emu_smem = shared;
            std::barrier<> bar(block);
            emu_block_barrier = &bar;
            emu_warp_barriers.clear();
            for (unsigned w = 0; w < warps; w++)
                emu_warp_barriers.emplace_back(new std::barrier<>(w + 1 < warps || block % 32 == 0 ? 32 : block % 32));
            std::vector<std::thread> th;
            for (unsigned t = 0; t < block; t++)
                th.emplace_back([t, &kernel] {
                    threadIdx = {t, 0, 0};
                    kernel();
                });
            for (auto &x : th) x.join();
        }
    free(shared);
}
#endif
