/* tests/unit/test_blas_core.c: common/blas_core.c, the restart with OpenBLAS kernels the CPU runs.
 * The test runs itself as a child with a marker argument (and arguments with spaces and an empty
 * one, which the restart must pass on unchanged) under three environments:
 *   - plain: on a CPU with AVX2/FMA the child's kernels are never the SSE3 fallback "Prescott";
 *   - RHD_BLAS_CORE=keep: no restart, the kernels OpenBLAS chose itself;
 *   - OPENBLAS_CORETYPE=Haswell: the user's choice stands.
 * The child prints its kernels and arguments; the parent compares. */
#include "harness.h"
#include "common/backend.h"
#include <stdio.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const k_args[] = {"--child", "two words", "", "x=1", NULL};

static int child(int argc, char **argv) {
    printf("core=%s\n", rhd_blas_core());
    for (int i = 1; i < argc; i++) printf("arg=[%s]\n", argv[i]);
    return 0;
}

/* Run this program with k_args under env (NAME=VALUE or "-NAME" to unset; NULL ends) and read
 * what it prints into out. */
static int run_child(const char *self, const char *const *env, char *out, size_t cap) {
    int fd[2];
    if (pipe(fd)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 1);
        unsetenv("OPENBLAS_CORETYPE"), unsetenv("RHD_BLAS_CORE");
        for (int i = 0; env && env[i]; i++) {
            if (env[i][0] == '-') unsetenv(env[i] + 1);
            else putenv((char *)env[i]);
        }
        const char *argv[8] = {self};
        for (int i = 0; k_args[i]; i++) argv[i + 1] = k_args[i];
        execv(self, (char *const *)argv);
        _exit(127);
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t got;
    while (n + 1 < cap && (got = read(fd[0], out + n, cap - 1 - n)) > 0) n += (size_t)got;
    out[n] = 0;
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void core_of(const char *out, char *core, size_t cap) {
    const char *p = strstr(out, "core=");
    snprintf(core, cap, "%s", p ? p + 5 : "?");
    core[strcspn(core, "\n")] = 0;
}

static int args_ok(const char *out) {
    const char *want = "arg=[--child]\narg=[two words]\narg=[]\narg=[x=1]\n";
    return strstr(out, want) != NULL;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--child")) return child(argc, argv);
    char self[4096];
    ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
    if (l <= 0) return th_skip("no /proc/self/exe"), th_done();
    self[l] = 0;
    static char out[3][4096];
    char core[3][64];
    const char *const plain[] = {NULL}, *const keep[] = {"RHD_BLAS_CORE=keep", NULL},
                      *const user[] = {"OPENBLAS_CORETYPE=Haswell", NULL};
    const char *const *envs[3] = {plain, keep, user};
    for (int i = 0; i < 3; i++) {
        th_ok(run_child(self, envs[i], out[i], sizeof out[i]) == 0, "child %d exits 0", i);
        core_of(out[i], core[i], sizeof core[i]);
        th_ok(args_ok(out[i]), "child %d got its arguments unchanged (after any restart)", i);
    }
    th_diag("OpenBLAS kernels: as chosen by the library %s, with the restart %s, OPENBLAS_CORETYPE=Haswell %s", core[1],
            core[0], core[2]);
    int avx2 = 0;
#if defined(__x86_64__) && defined(__GNUC__)
    avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    if (avx2) th_ok(strcasecmp(core[0], "prescott") != 0, "a CPU with AVX2/FMA runs kernels other than Prescott (%s)", core[0]);
    else th_skip("no AVX2/FMA on this CPU");
    if (strcasecmp(core[1], "prescott") != 0)
        th_ok(!strcmp(core[0], core[1]), "OpenBLAS knows this CPU (%s): no restart changes it (%s)", core[1], core[0]);
    else th_diag("OpenBLAS fell back to Prescott here; the restart chose %s", core[0]);
    th_ok(!strcasecmp(core[2], "haswell"), "OPENBLAS_CORETYPE=Haswell is kept (%s)", core[2]);
    return th_done();
}
