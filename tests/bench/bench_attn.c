/* tests/bench/bench_attn.c: times the attention, timestep-embedding and resampling ops at model
 * sizes against PyTorch (tests/ref/bench_attn.py) on the same machine, fp32, with
 * $RHD_BENCH_THREADS threads (default 2). RHD_BENCH_DEVICE=cuda times our CUDA backend instead.
 * Each op: one warm-up run, then the best of at least RHD_BENCH_REPS (3) and at most 20 runs,
 * timing more while the runs so far took under 2 s (the PyTorch side does the same).
 * Prints one row per op: op | shape | ours ms | torch ms | torch/ours (> 1: we are faster). On CUDA
 * also the --bf16 attention block at the UNet's training size, fused and through the GEMMs. */
#include "bench.h"
#include "kernels/attention.h"
#include "kernels/embed.h"
#include "kernels/resample.h"

static rhd_ctx *ctx;

static float *buf(long n, float std) {
    float *h = th_randn(n, std);
    float *d = bench_put(h, sizeof(float) * n);
    free(h);
    return d;
}

/* One case: its arguments and an op selector; run() performs it once. */
typedef struct {
    const char *op, *shape, *key; /* key: the row name bench_attn.py prints */
    int kind;
    int B, C, H, T, Te;           /* attention */
    int N, Ci, Hi, Wi, Ho, Wo;    /* resampling */
    float *a[8];
} bcase;

enum { K_BLOCK_F, K_BLOCK_B, K_CORE_F, K_BICUBIC_F, K_BILINEAR_F, K_BILINEAR_B, K_AVG_F, K_AVG_B,
       K_NEAR_F, K_NEAR_B, K_EMBED };

static void setup(bcase *c) {
    long nqkv = (long)c->B * 3 * c->C * c->T, nekv = (long)c->B * 2 * c->C * c->Te, ny = (long)c->B * c->C * c->T;
    long nx = (long)c->N * c->Ci * c->Hi * c->Wi, no = (long)c->N * c->Ci * c->Ho * c->Wo;
    switch (c->kind) {
    case K_BLOCK_F:
    case K_BLOCK_B:
        c->a[0] = buf(nqkv, 1), c->a[1] = c->Te ? buf(nekv, 1) : NULL, c->a[2] = buf(ny, 1);
        c->a[3] = buf((long)c->B * c->H * c->T, 0), c->a[4] = buf(ny, 1), c->a[5] = buf(nqkv, 0);
        c->a[6] = c->Te ? buf(nekv, 0) : NULL;
        rhd_attention_block_forward(ctx, c->a[2], c->a[3], c->a[0], c->a[1], c->B, c->C, c->H, c->T, c->Te);
        break;
    case K_CORE_F: {
        long n = (long)c->B * c->C * c->T; /* H = 1 head of width C */
        c->a[0] = buf(n, 1), c->a[1] = buf(n, 1), c->a[2] = buf(n, 1), c->a[3] = buf(n, 0);
        c->a[4] = buf((long)c->B * c->T, 0);
        break;
    }
    case K_EMBED:
        c->a[0] = buf(c->N, 300), c->a[1] = buf((long)c->N * c->Ci, 0);
        break;
    default:
        c->a[0] = buf(nx, 1), c->a[1] = buf(no, 1);
    }
}

static void run(bcase *c) {
    float **a = c->a;
    switch (c->kind) {
    case K_BLOCK_F: rhd_attention_block_forward(ctx, a[2], a[3], a[0], a[1], c->B, c->C, c->H, c->T, c->Te); break;
    case K_BLOCK_B:
        rhd_attention_block_backward(ctx, a[5], a[6], a[4], a[0], a[1], a[2], a[3], c->B, c->C, c->H, c->T, c->Te);
        break;
    case K_CORE_F:
        rhd_attention_forward(ctx, a[3], a[4], a[0], a[1], a[2], c->B, 1, c->T, c->T, c->C, 1.0f / sqrtf((float)c->C));
        break;
    case K_BICUBIC_F:
        rhd_resize_forward(ctx, a[1], a[0], c->N, c->Ci, c->Hi, c->Wi, c->Ho, c->Wo, RHD_RESIZE_BICUBIC, 0);
        break;
    case K_BILINEAR_F:
        rhd_resize_forward(ctx, a[1], a[0], c->N, c->Ci, c->Hi, c->Wi, c->Ho, c->Wo, RHD_RESIZE_BILINEAR, 1);
        break;
    case K_BILINEAR_B:
        rhd_resize_backward(ctx, a[0], a[1], c->N, c->Ci, c->Hi, c->Wi, c->Ho, c->Wo, RHD_RESIZE_BILINEAR, 1);
        break;
    case K_AVG_F: rhd_avgpool2x2_forward(ctx, a[1], a[0], c->N, c->Ci, c->Hi, c->Wi); break;
    case K_AVG_B: rhd_avgpool2x2_backward(ctx, a[0], a[1], c->N, c->Ci, c->Hi, c->Wi); break;
    case K_NEAR_F: rhd_upsample_nearest2x_forward(ctx, a[1], a[0], c->N, c->Ci, c->Hi, c->Wi); break;
    case K_NEAR_B: rhd_upsample_nearest2x_backward(ctx, a[0], a[1], c->N, c->Ci, c->Hi, c->Wi); break;
    case K_EMBED: rhd_timestep_embed_forward(ctx, a[1], a[0], c->N, c->Ci); break;
    }
}

static double time_case(bcase *c) {
    setup(c);
    double best;
    BENCH_BEST(best, run(c));
    for (int i = 0; i < 8; i++) rhd_buf_free(ctx, c->a[i]);
    return best;
}

int main(void) {
    ctx = bench_open("bench_attn");
    bench.max_reps = 20, bench.budget_ms = 2000;
    /* B, C, H, T, Te for attention; N, C, Hi, Wi, Ho, Wo for resampling */
    bcase cases[] = {
        {"attn block fwd", "B1 C384 h6 32x96+16", "attn384_f", K_BLOCK_F, 1, 384, 6, 32 * 96, 16},
        {"attn block bwd", "B1 C384 h6 32x96+16", "attn384_b", K_BLOCK_B, 1, 384, 6, 32 * 96, 16},
        {"attn block fwd", "B1 C576 h9 16x48+16", "attn576_f", K_BLOCK_F, 1, 576, 9, 16 * 48, 16},
        {"attn block bwd", "B1 C576 h9 16x48+16", "attn576_b", K_BLOCK_B, 1, 576, 9, 16 * 48, 16},
        {"attn block fwd", "B1 C768 h12 8x24+16", "attn768_f", K_BLOCK_F, 1, 768, 12, 8 * 24, 16},
        {"attn block bwd", "B1 C768 h12 8x24+16", "attn768_b", K_BLOCK_B, 1, 768, 12, 8 * 24, 16},
        {"vae mid attn fwd", "256 tok C512 h1", "vae_f", K_CORE_F, 1, 512, 1, 256, 0},
        {"bicubic fwd", "[3,32,128,128]->512", "bicubic_f", K_BICUBIC_F, .N = 3, .Ci = 32, .Hi = 128, .Wi = 128,
         .Ho = 512, .Wo = 512},
        {"bilinear x2 ac fwd", "[1,64,128,384]", "bilinear_f", K_BILINEAR_F, .N = 1, .Ci = 64, .Hi = 128, .Wi = 384,
         .Ho = 256, .Wo = 768},
        {"bilinear x2 ac bwd", "[1,64,128,384]", "bilinear_b", K_BILINEAR_B, .N = 1, .Ci = 64, .Hi = 128, .Wi = 384,
         .Ho = 256, .Wo = 768},
        {"avgpool 2x2 fwd", "[1,192,128,384]", "avg_f", K_AVG_F, .N = 1, .Ci = 192, .Hi = 128, .Wi = 384, .Ho = 64,
         .Wo = 192},
        {"avgpool 2x2 bwd", "[1,192,128,384]", "avg_b", K_AVG_B, .N = 1, .Ci = 192, .Hi = 128, .Wi = 384, .Ho = 64,
         .Wo = 192},
        {"nearest x2 fwd", "[1,192,128,384]", "near_f", K_NEAR_F, .N = 1, .Ci = 192, .Hi = 128, .Wi = 384, .Ho = 256,
         .Wo = 768},
        {"nearest x2 bwd", "[1,192,128,384]", "near_b", K_NEAR_B, .N = 1, .Ci = 192, .Hi = 128, .Wi = 384, .Ho = 256,
         .Wo = 768},
        {"timestep embed", "B6 dim192", "embed", K_EMBED, .N = 6, .Ci = 192},
    };
    int nc = (int)(sizeof cases / sizeof cases[0]);
    bench_table tab = {.ref_name = "torch"};
    for (int i = 0; i < nc; i++) {
        double ms = time_case(&cases[i]);
        bench_add(&tab, cases[i].key, cases[i].op, cases[i].shape, ms);
    }
    if (ctx->backend == RHD_BACKEND_CUDA) {
        /* --bf16 at the UNet's training size (batch 3, first attention level): the fused kernels
         * (kernels/attention_fused.cuh), then the GEMM path; no PyTorch row (fp32 reference) */
        bcase b16[] = {
            {"attn block fwd bf16 fused", "B3 C384 h6 32x96+16", "bf16_fused_f", K_BLOCK_F, 3, 384, 6, 32 * 96, 16},
            {"attn block bwd bf16 fused", "B3 C384 h6 32x96+16", "bf16_fused_b", K_BLOCK_B, 3, 384, 6, 32 * 96, 16},
            {"attn block fwd bf16 gemm", "B3 C384 h6 32x96+16", "bf16_gemm_f", K_BLOCK_F, 3, 384, 6, 32 * 96, 16},
            {"attn block bwd bf16 gemm", "B3 C384 h6 32x96+16", "bf16_gemm_b", K_BLOCK_B, 3, 384, 6, 32 * 96, 16},
        };
        rhd_ctx_set_bf16(ctx, 1);
        for (int i = 0; i < 4; i++) {
            if (i == 2) setenv("RHD_NO_FUSED_ATTN", "1", 1);
            bench_add(&tab, b16[i].key, b16[i].op, b16[i].shape, time_case(&b16[i]));
        }
        unsetenv("RHD_NO_FUSED_ATTN");
        rhd_ctx_set_bf16(ctx, 0);
    }
    int rc = bench_ref(&tab, "bench_attn.py", "");
    bench_print(&tab);
    printf("# backend: %s, fp32%s\n", ctx->name, ctx->backend == RHD_BACKEND_CUDA ? " (TF32 off)" : "");
    bench_close();
    return rc ? 1 : 0;
}
