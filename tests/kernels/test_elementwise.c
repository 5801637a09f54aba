/* tests/kernels/test_elementwise.c: kernels/elementwise (residual add, batched transpose).
 * Both ops are exact, so every check demands bit equality: against plain loops, against torch
 * (tests/ref/ref_elementwise.py) on fresh random inputs, the backward passes as the adjoints
 * (<dy, J dx> = <J^T dy, dx> exactly for a permutation), and CUDA against the CPU. Shapes include
 * sizes that are not multiples of the 32x32 transpose tile. */
#include "refcheck.h"
#include "kernels/elementwise.h"

static int same(const float *a, const float *b, long n) { return memcmp(a, b, sizeof(float) * n) == 0; }

static void check_shape(rhd_ctx *cpu, rhd_ctx *gpu, int B, long R, long C) {
    long n = (long)B * R * C;
    float *a = th_randn(n, 1.f), *b = th_randn(n, 1.f), *x = th_randn(n, 1.f);
    float *y = malloc(sizeof(float) * n), *yt = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * n);

    rhd_add_forward(cpu, y, a, b, n);
    for (long i = 0; i < n; i++) ref[i] = a[i] + b[i];
    th_ok(same(y, ref, n), "add fwd cpu = loop n=%ld", n);
    rhd_transpose_forward(cpu, yt, x, B, R, C);
    for (int bb = 0; bb < B; bb++)
        for (long r = 0; r < R; r++)
            for (long c = 0; c < C; c++) ref[((long)bb * C + c) * R + r] = x[((long)bb * R + r) * C + c];
    th_ok(same(yt, ref, n), "transpose fwd cpu = loop B=%d R=%ld C=%ld", B, R, C);

    /* in place: y may alias a */
    float *a2 = malloc(sizeof(float) * n);
    memcpy(a2, a, sizeof(float) * n);
    rhd_add_forward(cpu, a2, a2, b, n);
    th_ok(same(a2, y, n), "add fwd in place (y aliases a) n=%ld", n);

    /* backward: add copies dy; transpose backward undoes the forward */
    float *dx = malloc(sizeof(float) * n), *db = malloc(sizeof(float) * n);
    rhd_add_backward(cpu, dx, db, a, n);
    th_ok(same(dx, a, n) && same(db, a, n), "add bwd: da = db = dy n=%ld", n);
    rhd_transpose_backward(cpu, dx, yt, B, R, C);
    th_ok(same(dx, x, n), "transpose bwd is the adjoint (inverse permutation) B=%d R=%ld C=%ld", B, R, C);

    /* torch */
    const char *dir = th_subdir("elementwise");
    th_save(dir, "a", a, 3, (int64_t[]){B, R, C});
    th_save(dir, "b", b, 3, (int64_t[]){B, R, C});
    th_save(dir, "x", x, 3, (int64_t[]){B, R, C});
    if (th_ref("ref_elementwise.py", "%s", dir) == 0) {
        float *tadd = th_load(dir, "add", n), *txt = th_load(dir, "xt", n);
        th_ok(tadd && same(y, tadd, n), "add fwd cpu = torch n=%ld", n);
        th_ok(txt && same(yt, txt, n), "transpose fwd cpu = torch B=%d R=%ld C=%ld", B, R, C);
        free(tadd), free(txt);
    } else {
        th_ok(0, "torch reference ran");
    }

    if (gpu) {
        size_t bytes = sizeof(float) * n;
        float *da = rhd_buf_alloc(gpu, bytes), *dbb = rhd_buf_alloc(gpu, bytes), *dy = rhd_buf_alloc(gpu, bytes);
        rhd_buf_upload(gpu, da, a, bytes), rhd_buf_upload(gpu, dbb, b, bytes);
        rhd_add_forward(gpu, dy, da, dbb, n);
        rhd_buf_download(gpu, ref, dy, bytes);
        th_ok(same(ref, y, n), "add fwd cpu~cuda n=%ld (bit equal)", n);
        rhd_buf_upload(gpu, da, x, bytes);
        rhd_transpose_forward(gpu, dy, da, B, R, C);
        rhd_buf_download(gpu, ref, dy, bytes);
        th_ok(same(ref, yt, n), "transpose fwd cpu~cuda B=%d R=%ld C=%ld (bit equal)", B, R, C);
        rhd_buf_free(gpu, da), rhd_buf_free(gpu, dbb), rhd_buf_free(gpu, dy);
    } else {
        th_skip("no CUDA device: add/transpose cpu~cuda B=%d R=%ld C=%ld", B, R, C);
    }
    free(a), free(b), free(x), free(y), free(yt), free(ref), free(a2), free(dx), free(db);
}

int main(void) {
    rhd_err e;
    rhd_ctx *cpu = rhd_ctx_open("cpu", &e), *gpu = NULL;
    if (!cpu) { th_ok(0, "cpu context: %s", e.msg); return th_done(); }
    if (rhd_cuda_available()) gpu = rhd_ctx_open("cuda", &e);
    check_shape(cpu, gpu, 1, 1, 1);
    check_shape(cpu, gpu, 2, 256, 512);  /* the VAE mid attention: [C, T] <-> [T, C] */
    check_shape(cpu, gpu, 3, 33, 70);    /* partial tiles */
    check_shape(cpu, gpu, 1, 1000, 3);
    rhd_ctx_close(cpu);
    if (gpu) rhd_ctx_close(gpu);
    return th_done();
}
