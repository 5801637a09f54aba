/* tests/kernels/test_embed.c: kernels/embed: the sinusoidal timestep embedding (cos block first).
 * No backward exists (t is not learned), so no finite differences. Checks: (b) against PyTorch
 * (tests/ref/ref_attn.py) both in float64 from the formula and in the original's float32
 * arithmetic, at the base model's width (192, t in 0..999), the upsampler's (64, t = 10 x index)
 * and small odd half widths; plus the cos/sin layout at t = 0; (c) CUDA against the CPU. */
#include "refbatch.h"
#include "kernels/embed.h"

static rhd_ctx *cpu, *gpu;

static void test_embed(int B, int dim, float tmax) {
    char shp[64], name[160];
    snprintf(shp, sizeof shp, "B=%d dim=%d t<%g", B, dim, tmax);
    float *t = th_randu(B, 0, tmax), *y = malloc(sizeof(float) * B * dim);
    for (int b = 0; b < B; b += 3) t[b] = floorf(t[b]); /* integer steps as the samplers give */
    t[0] = 0;
    rhd_timestep_embed_forward(cpu, y, t, B, dim);
    int ok = 1;
    for (int j = 0; j < dim; j++) ok &= y[j] == (j < dim / 2 ? 1.0f : 0.0f);
    th_ok(ok, "embed layout at t=0: cos block (ones) first, then sin block (zeros) %s", shp);
    const char *dir = rb_job("embed", "dim=%d", dim);
    int64_t st[1] = {B};
    th_save(dir, "t", t, 1, st);
    /* |t f| reaches ~1000 rad: one float ulp of the argument (6e-5) is the scale of the error */
    rb_expect(dir, "y", y, (long)B * dim, 1e-9, "embed y cpu~torch(float64) %s", shp);
    /* with the frequencies bit-identical to torch's (rhd_expf_torch), only cos/sin's last bits
     * remain: nmse ~1e-15 (a correctly rounded expf gave 9e-12 at dim 192, 1.5e-13 at dim 64) */
    rb_expect(dir, "y32", y, (long)B * dim, 1e-14, "embed y cpu~torch(float32 original) %s", shp);
    if (gpu) {
        float *gt = rhd_buf_alloc(gpu, sizeof(float) * B), *gy = rhd_buf_alloc(gpu, sizeof(float) * B * dim);
        rhd_buf_upload(gpu, gt, t, sizeof(float) * B);
        rhd_timestep_embed_forward(gpu, gy, gt, B, dim);
        float *h = malloc(sizeof(float) * B * dim);
        rhd_buf_download(gpu, h, gy, sizeof(float) * B * dim);
        snprintf(name, sizeof name, "embed y cuda~cpu %s", shp);
        th_close(name, h, y, (long)B * dim, 1e-10);
        free(h);
        rhd_buf_free(gpu, gt), rhd_buf_free(gpu, gy);
    } else th_skip("embed cuda~cpu %s: no CUDA device", shp);
    free(t), free(y);
}

/* rhd_expf_torch against torch.exp (float32, CPU) on 2^16 random floats of [-104, 104] and every
 * frequency argument of widths 2 .. 1024: bit for bit. */
static void test_expf_torch(void) {
    enum { N = 1 << 16 };
    float *x = th_randu(N, -104.f, 104.f), *y = malloc(sizeof(float) * N);
    int k = 0;
    for (int half = 1; half <= 512 && k < N; half *= 2)
        for (int i = 0; i < half && k < N; i++) x[k++] = (float)i * -9.210340371976184f / (float)half;
    for (int i = 0; i < N; i++) y[i] = rhd_expf_torch(x[i]);
    const char *dir = rb_job("expf", "n=%d", N);
    int64_t s[1] = {N};
    th_save(dir, "x", x, 1, s);
    rb_expect(dir, "y", y, N, 0, "rhd_expf_torch = torch.exp bit for bit (%d floats, %d of them the embedding's "
              "frequency arguments)", N, k);
    free(x), free(y);
}

int main(void) {
    th_open_backends(&cpu, &gpu);
    test_expf_torch();
    test_embed(7, 192, 1000);
    test_embed(5, 64, 1000);
    test_embed(3, 6, 50);
    test_embed(1, 2, 10);
    rb_run("ref_attn.py");
    rhd_ctx_close(cpu);
    rhd_ctx_close(gpu);
    return th_done();
}
