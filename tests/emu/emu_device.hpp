/* tests/emu/emu_device.hpp: the CUDA device vocabulary that the project's kernels use, emulated on
 * the CPU, so that the very device code of kernels/ and common/ runs and is checked without a GPU:
 * by the emulated CUDA backend (`make CUDA=emu`, tests/emu/README.md) and by the tests that launch
 * one .cuh file's kernels directly (tests/kernels/test_attention_emu.cpp,
 * tests/models/test_fused_emu.cpp). Header-only (C++20); every definition is inline.
 *
 * Threads are fibers on one OS thread: a launch runs its blocks one after another and
 * the threads of a block round-robin, each until it finishes or waits at a barrier. So execution
 * is deterministic, a __syncthreads that some threads never reach (threads that returned count as
 * arrived, as on the hardware) and a barrier mismatch (one warp at __syncwarp, another at
 * __syncthreads, forever) are reported as a deadlock, and a read of another thread's shared
 * memory without a barrier between sees whatever the schedule left, as a race would.
 * `__shared__` variables are function statics (one copy, shared by the block; blocks run one at a
 * time); dynamic shared memory (emu_smem) is filled with 0xff bytes per block, so a float or bf16
 * read of anything not written first is a NaN; under `make SAN=1` it is exactly the requested
 * size, so an out-of-range index is caught.
 *
 * A kernel that made no barrier, warp barrier or shuffle in its first launch runs its later
 * launches thread after thread on the caller's stack (fibers cost a context switch each); such a
 * kernel reaching a barrier later is a fatal error naming it.
 *
 * wmma (16x16x16, bf16 inputs, fp32 accumulators): a fragment holds its whole tile; lane 0 of the
 * warp does the loads, products and stores (the other lanes' calls do nothing), the products summed
 * in fp32 in k order. So a kernel that reads a stored tile from another lane without __syncwarp
 * between, or that relies on the fragments' register layout, does not pass here. Fragment pointers
 * must be 32-byte aligned and ldm a multiple of 16 bytes, as on the device (checked: abort). */
#ifndef RHD_TESTS_EMU_DEVICE_HPP
#define RHD_TESTS_EMU_DEVICE_HPP
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <type_traits>
#include <ucontext.h>
#include <unordered_map>
#include <vector>
#include <sys/mman.h>
extern "C" {
#include "common/tensor.h" /* rhd_float_to_bf16 / rhd_bf16_to_float: round to nearest even */
}

#define __device__
#define __host__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef dim3 uint3;
struct alignas(8) float2 {
    float x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
static inline float4 make_float4(float a, float b, float c, float d) { return float4{a, b, c, d}; }
static inline float2 make_float2(float a, float b) { return float2{a, b}; }

inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
inline unsigned char *emu_smem; /* the block's dynamic shared memory */

/* Fiber switches: on x86-64 a switch of the callee-saved registers and the stack pointer (a few
 * nanoseconds; ucontext's swapcontext makes a system call for the signal mask each time), else and
 * under AddressSanitizer (which follows swapcontext) ucontext. */
#if defined(__x86_64__) && !defined(RHD_SAN)
#define EMU_FAST_SWITCH 1
/* emu_switch(save, to): pushes the callee-saved registers, stores the stack pointer in *save,
 * continues on the stack `to` (popping what its own switch pushed). Weak: one copy per program. */
extern "C" void emu_switch(void **save, void *to);
asm(".text\n"
    ".weak emu_switch\n"
    ".type emu_switch,@function\n"
    "emu_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size emu_switch, .-emu_switch\n");
#else
#define EMU_FAST_SWITCH 0
#endif

namespace emu {

[[noreturn]] inline void die(const char *what) {
    fprintf(stderr, "cuda emulation: %s\n", what);
    fflush(stderr);
    abort();
}

/* One block's threads and barriers. */
struct fiber {
#if EMU_FAST_SWITCH
    void *sp;
#else
    ucontext_t uc;
#endif
    int state; /* 0 ready, 1 waiting (for *gen to move past gen0), 2 done */
    const unsigned *gen;
    unsigned gen0;
};
struct barrier {
    unsigned arrived = 0, gen = 0, size = 0, exited = 0;
};
inline struct sched {
    std::vector<fiber> f;
    std::vector<barrier> warp;
    barrier block;
    std::vector<double> xchg; /* one 8-byte slot per thread, for shuffles */
    std::vector<unsigned> wmma; /* wmma calls per thread: the lanes of a warp must make the same */
    char *stacks = nullptr;
    size_t nstacks = 0;
#if EMU_FAST_SWITCH
    void *main_sp;
#else
    ucontext_t main;
#endif
    unsigned cur = 0, n = 0;
    bool in_fiber = false, synced = false;
    const char *kernel = "?";
    const std::function<void()> *body = nullptr;
} S;

constexpr size_t STACK = 256 << 10;

inline void set_thread(unsigned lin) {
    threadIdx.x = lin % blockDim.x;
    threadIdx.y = lin / blockDim.x % blockDim.y;
    threadIdx.z = lin / (blockDim.x * blockDim.y);
}

inline void release_if_full(barrier &b) {
    if (b.arrived && b.arrived + b.exited == b.size) b.arrived = 0, b.gen++;
}

/* The running fiber gives the CPU back to the scheduler (run_block_fibers). */
inline void yield() {
#if EMU_FAST_SWITCH
    emu_switch(&S.f[S.cur].sp, S.main_sp);
#else
    swapcontext(&S.f[S.cur].uc, &S.main);
#endif
}

inline void trampoline() {
    (*S.body)();
    memset(&S.xchg[S.cur], 0xff, sizeof(double)); /* a shuffle reading an exited lane gets NaN */
    S.f[S.cur].state = 2;
    S.block.exited++;
    release_if_full(S.block);
    barrier &w = S.warp[S.cur / 32];
    w.exited++;
    release_if_full(w);
#if EMU_FAST_SWITCH
    yield(); /* never resumed */
    die("a finished fiber was resumed");
#endif
}

inline void wait_at(barrier &b) {
    if (!S.in_fiber) {
        char m[256];
        snprintf(m, sizeof m, "kernel %s reached a barrier or shuffle in a launch run without fibers (it made none in its first launch)", S.kernel);
        die(m);
    }
    S.synced = true;
    b.arrived++;
    unsigned g = b.gen;
    release_if_full(b);
    if (b.gen != g) return;
    fiber &me = S.f[S.cur];
    me.state = 1, me.gen = &b.gen, me.gen0 = g;
    yield();
}

/* RHD_EMU_REVERSE=1: blocks and the threads of a block run in the reverse order, so that a result
 * that depends on the order (a read of another thread's write without a barrier between, or an
 * inter-block dependence) changes between the two orders. Unset: reversed when $RHD_TEST_SEED
 * (tests/run.sh prints it) is odd, so that test runs alternate. */
inline bool reversed() {
    static int r = -1;
    if (r < 0) {
        const char *e = getenv("RHD_EMU_REVERSE"), *seed = getenv("RHD_TEST_SEED");
        r = e && *e ? strcmp(e, "0") != 0 : seed && *seed ? (int)(strtoull(seed, NULL, 10) & 1) : 0;
    }
    return r;
}

/* Runs one block of n threads as fibers until all are done. */
inline void run_block_fibers(unsigned n) {
    if (S.nstacks < n) {
        if (S.stacks) munmap(S.stacks, S.nstacks * STACK);
        S.stacks = (char *)mmap(nullptr, n * STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (S.stacks == MAP_FAILED) die("no memory for fiber stacks");
        S.nstacks = n;
    }
    S.f.assign(n, fiber{});
    S.xchg.assign(n, 0.0);
    S.wmma.assign(n, 0);
    S.block = barrier{};
    S.block.size = n;
    S.warp.assign((n + 31) / 32, barrier{});
    for (unsigned w = 0; w < S.warp.size(); w++) S.warp[w].size = w + 1 < S.warp.size() || n % 32 == 0 ? 32 : n % 32;
    for (unsigned i = 0; i < n; i++) {
        fiber &f = S.f[i];
#if EMU_FAST_SWITCH
        /* the stack as emu_switch leaves it: six saved registers (zero), then the return address
         * (trampoline), at the alignment of a function's entry (rsp + 8 a multiple of 16) */
        void **top = (void **)(S.stacks + (size_t)(i + 1) * STACK);
        void **sp = top - 2 - 6;
        for (int r = 0; r < 6; r++) sp[r] = nullptr;
        sp[6] = (void *)trampoline;
        f.sp = sp;
#else
        getcontext(&f.uc);
        f.uc.uc_stack.ss_sp = S.stacks + (size_t)i * STACK;
        f.uc.uc_stack.ss_size = STACK;
        f.uc.uc_link = &S.main;
        makecontext(&f.uc, trampoline, 0);
#endif
    }
    S.in_fiber = true;
    for (unsigned live = n; live;) {
        bool moved = false;
        for (unsigned k = 0; k < n; k++) {
            unsigned i = reversed() ? n - 1 - k : k;
            fiber &f = S.f[i];
            if (f.state == 2 || (f.state == 1 && *f.gen == f.gen0)) continue;
            f.state = 0;
            S.cur = i;
            set_thread(i);
#if EMU_FAST_SWITCH
            emu_switch(&S.main_sp, f.sp);
#else
            swapcontext(&S.main, &f.uc);
#endif
            moved = true;
            if (f.state == 2) live--;
        }
        if (!moved) {
            char m[256];
            snprintf(m, sizeof m, "kernel %s: deadlock in block (%u,%u,%u): threads wait at barriers the others never reach",
                     S.kernel, blockIdx.x, blockIdx.y, blockIdx.z);
            die(m);
        }
    }
    S.in_fiber = false;
    for (unsigned i = 0; i < n; i++)
        if (S.wmma[i] != S.wmma[i & ~31u]) {
            char m[256];
            snprintf(m, sizeof m, "kernel %s: block (%u,%u,%u): lane %u made %u wmma calls, lane 0 of its warp %u (wmma "
                     "operations need the whole warp)", S.kernel, blockIdx.x, blockIdx.y, blockIdx.z, i, S.wmma[i],
                     S.wmma[i & ~31u]);
            die(m);
        }
}

/* Kernels known to make no barrier (learned from their first launch). */
inline std::unordered_map<const void *, bool> &no_sync() {
    static std::unordered_map<const void *, bool> m;
    return m;
}

/* Runs body as grid x block threads with smem bytes of dynamic shared memory. key: the kernel
 * (for the no-barrier fast path; nullptr: always fibers); name: for messages. */
inline void launch(const void *key, const char *name, dim3 grid, dim3 block, size_t smem, const std::function<void()> &body) {
    blockDim = block, gridDim = grid;
    unsigned n = block.x * block.y * block.z;
    void *mem = nullptr;
#ifdef RHD_SAN
    size_t alloc = smem ? smem : 1;
#else
    size_t alloc = (smem + 127) & ~(size_t)127;
    if (!alloc) alloc = 128;
#endif
    if (posix_memalign(&mem, 128, alloc)) die("no memory for shared memory");
    emu_smem = (unsigned char *)mem;
    S.kernel = name;
    S.body = &body;
    auto it = key ? no_sync().find(key) : no_sync().end();
    bool direct = it != no_sync().end() && it->second;
    S.synced = false;
    bool rev = reversed();
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                blockIdx = rev ? uint3(grid.x - 1 - bx, grid.y - 1 - by, grid.z - 1 - bz) : uint3(bx, by, bz);
                if (smem) memset(emu_smem, 0xff, smem);
                if (direct) {
                    for (unsigned i = 0; i < n; i++) set_thread(rev ? n - 1 - i : i), body();
                } else {
                    run_block_fibers(n);
                }
            }
    if (key && !direct) no_sync()[key] = !S.synced;
    free(mem);
    emu_smem = nullptr;
}

inline unsigned lin() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }

/* Exchange within the warp: every lane writes v, then reads lane src's value. */
template <class T> inline T exchange(T v, unsigned src) {
    static_assert(sizeof(T) <= sizeof(double), "shuffle of a type over 8 bytes");
    unsigned me = S.cur, w = me / 32;
    memcpy(&S.xchg[me], &v, sizeof(T));
    wait_at(S.warp[w]);
    unsigned from = w * 32 + src;
    T r = v;
    if (src < S.warp[w].size) memcpy(&r, &S.xchg[from], sizeof(T));
    wait_at(S.warp[w]);
    return r;
}

} // namespace emu

/* Warp operations: full warps only (a partial mask or a width under 32 is not modelled: fatal). */
namespace emu {
inline void full_warp(unsigned mask, int width, const char *op) {
    if (mask != 0xffffffffu || width != 32) {
        char m[160];
        snprintf(m, sizeof m, "kernel %s: %s with mask %#x width %d: the emulation models full warps only", S.kernel, op,
                 mask, width);
        die(m);
    }
}
} // namespace emu
#define __syncthreads() emu::wait_at(emu::S.block)
static inline void __syncwarp(unsigned mask = 0xffffffffu) {
    emu::full_warp(mask, 32, "__syncwarp");
    emu::wait_at(emu::S.warp[emu::S.cur / 32]);
}
template <class T> static inline T __shfl_xor_sync(unsigned m, T v, int lanemask, int w = 32) {
    emu::full_warp(m, w, "__shfl_xor_sync");
    return emu::exchange(v, (emu::lin() & 31u) ^ (unsigned)lanemask);
}
template <class T> static inline T __shfl_sync(unsigned m, T v, int src, int w = 32) {
    emu::full_warp(m, w, "__shfl_sync");
    return emu::exchange(v, (unsigned)src & 31u);
}
template <class T> static inline T __shfl_down_sync(unsigned m, T v, unsigned d, int w = 32) {
    emu::full_warp(m, w, "__shfl_down_sync");
    unsigned l = (emu::lin() & 31u) + d;
    return emu::exchange(v, l < 32 ? l : (emu::lin() & 31u));
}
template <class T> static inline T __ldg(const T *p) { return *p; }

/* Atomics: the fibers share one OS thread and switch only at barriers, so plain updates are atomic. */
template <class T> static inline T atomicAdd(T *p, T v) {
    T o = *p;
    *p = o + v;
    return o;
}
static inline int atomicMax(int *p, int v) {
    int o = *p;
    if (v > o) *p = v;
    return o;
}
static inline unsigned atomicOr(unsigned *p, unsigned v) {
    unsigned o = *p;
    *p = o | v;
    return o;
}

/* Intrinsics with an exact rounding (volatile keeps the compiler from contracting into an fma). */
static inline float __fadd_rn(float a, float b) {
    volatile float r = a + b;
    return r;
}
static inline float __fmul_rn(float a, float b) {
    volatile float r = a * b;
    return r;
}
static inline float __fsub_rn(float a, float b) {
    volatile float r = a - b;
    return r;
}
static inline float __fdiv_rn(float a, float b) {
    volatile float r = a / b;
    return r;
}
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }

struct __nv_bfloat16 {
    uint16_t bits;
};
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16{rhd_float_to_bf16(f)}; }
static inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
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
/* every wmma call: counted for the calling lane (run_block_fibers checks the warp's lanes agree);
 * true in lane 0, which does the work */
static inline bool lane0() {
    if (emu::S.in_fiber) emu::S.wmma[emu::S.cur]++;
    return (emu::lin() & 31) == 0;
}
static inline void check(const void *p, unsigned ldm, size_t elem) {
    if (((uintptr_t)p & 31) || (ldm * elem) % 16) {
        fprintf(stderr, "cuda emulation: wmma pointer %p / ldm %u (%zu-byte elements) misaligned\n", p, ldm, elem);
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

/* The dynamic shared-memory declarations of the project's kernels (see kernels/attention.cu,
 * common/models/decoder.cu). */
#define RHD_FA_SMEM(name) unsigned char *name = emu_smem
#define RHD_FUSED_SMEM(name) float4 *name = (float4 *)emu_smem

/* Runs kernel() (a lambda that calls the kernel) as grid x block threads with smem bytes of
 * dynamic shared memory: for tests that launch a .cuh file's kernels directly. */
template <class F> static void emu_launch(dim3 grid, dim3 block, size_t smem, F kernel) {
    std::function<void()> body = kernel;
    emu::launch(nullptr, "(test launch)", grid, block, smem, body);
}

/* The inputs' seed: $RHD_TEST_SEED, else the time; printed so that a failure can be replayed. */
static inline uint64_t emu_test_seed() {
    const char *s = getenv("RHD_TEST_SEED");
    uint64_t seed = s && *s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
    printf("# random inputs: RHD_TEST_SEED=%llu\n", (unsigned long long)seed);
    return seed;
}
#endif
