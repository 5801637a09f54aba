/* tests/emu/check_official.c: the CUDA backend at the official UNet size, on the CUDA emulation,
 * against the CPU (`make CUDA=emu emu-official`; about 20 minutes and 15 GB of memory on two cores,
 * so not in a test target). The small configs of test_unet cannot reach what only the real size does: grid
 * dimensions and shared memory of the kernels at 3072 + 16 attention tokens, the attention's
 * chunking of its [Tq, Tk] scratch, workspace and scratch growth, 32-bit index overflow.
 *
 * Same random weights (std 0.02) and inputs on both devices, batch 1, training mode (dropout with
 * the same seed): the output y and the gradients of every parameter (one vector) in strict fp32,
 * then the device's output under --tf32 and --bf16 (fused attention, head dim 64) against the
 * CPU's fp32. Prints each nmse and time; exit 1 if one exceeds its bound (fp32: 1e-8 on y, 1e-6
 * on the gradients; tf32 1e-4; bf16 1e-3: test_unet's bounds at the small configs, the gradient
 * one relaxed for the 367 M-term vector). RHD_CHECK_TRAIN=0 checks the forward only;
 * RHD_CHECK_MODES (default "fp32,tf32,bf16") picks the device's modes. The CPU side runs first and
 * is freed before the device side is made (both training arenas do not fit in 24 GB together). */
#include "refcheck.h"
#include "common/backend.h"
#include "common/rng.h"
#include "common/models/unet.h"
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double nmse(const float *a, const float *ref, size_t n, int *finite) {
    double num = 0, den = 0;
    *finite = 1;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) *finite = 0;
        double d = (double)a[i] - ref[i];
        num += d * d, den += (double)ref[i] * ref[i];
    }
    return num / (den > 0 ? den : 1e-300);
}

typedef struct side {
    rhd_ctx *ctx;
    rhd_unet *m;
    rhd_unet_io io;
} side;

static int open_side(side *s, const char *dev, const rhd_unet_config *c, int train, const float *w, float *const in[7],
                     const size_t n[7]) {
    rhd_err e;
    s->ctx = rhd_ctx_open(dev, &e);
    if (!s->ctx) return fprintf(stderr, "check_official: %s: %s\n", dev, e.msg), -1;
    s->m = rhd_unet_create(c, s->ctx, NULL, train, &e);
    if (!s->m) return fprintf(stderr, "check_official: %s: %s\n", dev, e.msg), -1;
    rhd_buf_upload(s->ctx, s->m->base.params.data, w, sizeof(float) * s->m->base.params.total);
    s->io = (rhd_unet_io){.N = 1};
    s->io.x = th_up(s->ctx, in[0], n[0]);
    s->io.dy = th_up(s->ctx, in[1], n[1]);
    s->io.t = th_up(s->ctx, in[2], n[2]);
    s->io.ref = th_up(s->ctx, in[3], n[3]);
    for (int i = 0; i < 3; i++) s->io.F[i] = th_up(s->ctx, in[4 + i], n[4 + i]);
    return 0;
}

static double pass(side *s, int train) {
    double t0 = now();
    s->m->base.run.seed = 7, s->m->base.run.stream = RHD_STREAM(RHD_STREAM_DROPOUT, 1);
    if (train) rhd_nn_model_zero_grad(&s->m->base);
    rhd_unet_forward(s->m, &s->io, train);
    if (train) rhd_unet_backward(s->m, &s->io);
    rhd_ctx_sync(s->ctx);
    return now() - t0;
}

int main(void) {
    const char *tr = getenv("RHD_CHECK_TRAIN");
    int train = !(tr && !strcmp(tr, "0"));
    rhd_unet_config c;
    rhd_unet_config_official(&c);
    const long R = c.image_size;
    /* x, dy, t, the latent moments, the three feature maps */
    size_t n[7] = {(size_t)c.in_channels * R * 3 * R, (size_t)c.out_channels * R * 3 * R, 1,
                   (size_t)c.latent_ch * c.latent_size * c.latent_size};
    for (int i = 0; i < 3; i++) n[4 + i] = (size_t)c.feat_ch[i] * c.feat_size[i] * c.feat_size[i];
    float *in[7] = {th_randn(n[0], 1), th_randn(n[1], 1), th_randu(1, 0, 999), th_randn(n[3], 1)};
    for (int i = 4; i < 7; i++) in[i] = th_randn(n[i], 1);
    side cpu, gpu;
    /* weights: one draw shared by both sides */
    rhd_err e;
    rhd_ctx *tmp = rhd_ctx_open("cpu", &e);
    rhd_unet *mm = rhd_unet_create(&c, tmp, NULL, 0, &e);
    int64_t total = mm->base.params.total;
    rhd_unet_free(mm);
    rhd_ctx_close(tmp);
    float *w = th_randn(total, 0.02f);
    /* one side at a time (the training arenas of both do not fit in memory together) */
    if (open_side(&cpu, "cpu", &c, train, w, in, n)) return 1;
    printf("# official config, batch 1, %s; %lld parameters; arena %.1f GB\n", train ? "training step" : "forward",
           (long long)total, rhd_unet_arena_bytes(cpu.m, 1, train) / 1e9);
    double tc = pass(&cpu, train);
    size_t ny = (size_t)c.out_channels * R * 3 * R;
    float *yc = th_down(cpu.ctx, cpu.io.y, ny), *gc = train ? th_down(cpu.ctx, cpu.m->base.params.grad, (size_t)total) : NULL;
    printf("# cpu: %.1f s\n", tc);
    fflush(stdout);
    rhd_unet_free(cpu.m);
    rhd_ctx_close(cpu.ctx);
    if (open_side(&gpu, "cuda", &c, train, w, in, n)) return 1;
    printf("# device: %s\n", gpu.ctx->name);
    const char *modes = getenv("RHD_CHECK_MODES");
    if (!modes || !*modes) modes = "fp32,tf32,bf16";
    static const char *const mode[] = {"fp32", "tf32", "bf16"};
    const double ybound[] = {1e-8, 1e-4, 1e-3}, gbound[] = {1e-6, 1e-3, 1e-2};
    int bad = 0;
    for (int k = 0; k < 3; k++) {
        if (!strstr(modes, mode[k])) continue;
        rhd_ctx_set_tf32(gpu.ctx, k == 1);
        rhd_ctx_set_bf16(gpu.ctx, k == 2);
        double tg = pass(&gpu, train);
        int fy, fg = 1;
        float *yg = th_down(gpu.ctx, gpu.io.y, ny);
        double ey = nmse(yg, yc, ny, &fy), eg = 0;
        char gtxt[96] = "";
        if (train) {
            float *gg = th_down(gpu.ctx, gpu.m->base.params.grad, (size_t)total);
            eg = nmse(gg, gc, (size_t)total, &fg);
            snprintf(gtxt, sizeof gtxt, ", gradients nmse %.3e (bound %.0e)%s", eg, gbound[k], fg ? "" : " NOT FINITE");
            free(gg);
        }
        int ok = fy && fg && ey <= ybound[k] && (!train || eg <= gbound[k]);
        bad |= !ok;
        printf("%s %s: y nmse %.3e (bound %.0e)%s%s; emulated device %.1f s\n", ok ? "ok" : "FAIL", mode[k], ey, ybound[k],
               fy ? "" : " NOT FINITE", gtxt, tg);
        fflush(stdout);
        free(yg);
    }
    return bad;
}
