/* common/blas_core.c: make OpenBLAS use the kernels this CPU can run.
 *
 * Debian's OpenBLAS is built for every x86-64 core (DYNAMIC_ARCH) and picks its kernels from the
 * CPU model number when the library loads. A model newer than the library (e.g. Emerald Rapids,
 * model 207, under OpenBLAS 0.3.21) is not in its table, and it falls back to "Prescott": SSE3
 * kernels, 2.7x slower on the UNet's convolutions than the AVX-512 ones the CPU has. The only
 * documented way to choose is the environment variable OPENBLAS_CORETYPE, read when the library
 * loads, i.e. before main. So, before main (a constructor, run after the shared libraries'), a
 * process whose OpenBLAS fell back to Prescott on a CPU with AVX2/FMA or AVX-512 sets
 * OPENBLAS_CORETYPE to the matching family (SkylakeX or Haswell) and executes itself again with
 * the same arguments and environment; nothing has been read, written or opened yet. Not done when
 * the user set OPENBLAS_CORETYPE (their choice stands) or RHD_BLAS_CORE=keep. rhd_blas_core()
 * names the kernels in use (the CPU context's name shows it). */
#include "common/backend.h"
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const char *rhd_blas_core(void) {
    const char *name = openblas_get_corename();
    return name && *name ? name : "unknown";
}

/* The OpenBLAS family whose kernels this CPU runs, or NULL when none beats the fallback. */
static const char *best_core(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

/* glibc passes main's arguments to constructors. */
__attribute__((constructor)) static void blas_core_select(int argc, char **argv, char **envp) {
    (void)envp;
    if (argc < 1 || !argv || !argv[0]) return;
    const char *keep = getenv("RHD_BLAS_CORE");
    if (getenv("OPENBLAS_CORETYPE") || (keep && !strcmp(keep, "keep"))) return;
    if (strcasecmp(rhd_blas_core(), "prescott") != 0) return;
    const char *core = best_core();
    if (!core) return;
    setenv("OPENBLAS_CORETYPE", core, 1); /* also ends the loop should the exec come back here */
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* the exec failed: carry on with the fallback kernels */
}
