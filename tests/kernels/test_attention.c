/* tests/kernels/test_attention.c: kernels/attention: the attention core, the UNet qkv layout
 * helpers, the attention block (joint self + encoder attention) and AttentionPooling.
 * Per op: (a) finite differences of the CPU reference, (b) forward and backward against an
 * independent PyTorch float64 implementation (tests/ref/ref_attn.py), (c) CUDA against the CPU
 * when a device is present. Includes the UNet's real size (32x96 tokens, 16 encoder tokens,
 * C = 384, 6 heads) and the VAE mid attention (256 tokens, C = 512, one head). */
#include "refbatch.h"
#include "kernels/attention.h"
#include <omp.h>

static rhd_ctx *cpu, *gpu;

static double dot(const float *a, const float *b, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static float *up(const float *h, long n) {
    float *d = rhd_buf_alloc(gpu, sizeof(float) * (n ? n : 1));
    if (n) rhd_buf_upload(gpu, d, h, sizeof(float) * n);
    return d;
}
static float *down(const float *d, long n) {
    float *h = malloc(sizeof(float) * (n ? n : 1));
    if (n) rhd_buf_download(gpu, h, d, sizeof(float) * n);
    return h;
}
static int close_free(const char *name, float *got, const float *ref, long n, double tol) {
    int ok = th_close(name, got, ref, n, tol);
    free(got);
    return ok;
}

/* ---- core ------------------------------------------------------------------------------------ */

typedef struct {
    int B, H, Tq, Tk, d;
    float scale;
    float *q, *k, *v, *w, *out;
} core_fd;

static double core_loss(void *p) {
    core_fd *c = p;
    rhd_attention_forward(cpu, c->out, NULL, c->q, c->k, c->v, c->B, c->H, c->Tq, c->Tk, c->d, c->scale);
    return dot(c->out, c->w, (long)c->B * c->H * c->Tq * c->d);
}

/* tol: nmse bound for y, lse; gtol for the gradients (negative: a bound on max-abs instead) */
static void test_core(int B, int H, int Tq, int Tk, int d, float scale, double tol, double gtol, int fd) {
    char name[160];
    long nq = (long)B * H * Tq * d, nk = (long)B * H * Tk * d, nl = (long)B * H * Tq;
    float *q = th_randn(nq, 1), *k = th_randn(nk, 1), *v = th_randn(nk, 1), *dy = th_randn(nq, 1);
    float *y = malloc(sizeof(float) * nq), *lse = malloc(sizeof(float) * nl);
    float *dq = malloc(sizeof(float) * nq), *dk = malloc(sizeof(float) * nk), *dv = malloc(sizeof(float) * nk);
    rhd_attention_forward(cpu, y, lse, q, k, v, B, H, Tq, Tk, d, scale);
    rhd_attention_backward(cpu, dq, dk, dv, dy, q, k, v, y, lse, B, H, Tq, Tk, d, scale);
    char shp[96];
    snprintf(shp, sizeof shp, "B=%d H=%d Tq=%d Tk=%d d=%d scale=%.4g", B, H, Tq, Tk, d, scale);

    if (fd) {
        core_fd c = {B, H, Tq, Tk, d, scale, q, k, v, dy, malloc(sizeof(float) * nq)};
        snprintf(name, sizeof name, "attention fd dq %s", shp);
        th_fd_check(name, core_loss, &c, q, dq, nq, 24, 1e-2, 1e-2, 1e-3);
        snprintf(name, sizeof name, "attention fd dk %s", shp);
        th_fd_check(name, core_loss, &c, k, dk, nk, 24, 1e-2, 1e-2, 1e-3);
        snprintf(name, sizeof name, "attention fd dv %s", shp);
        th_fd_check(name, core_loss, &c, v, dv, nk, 24, 1e-2, 1e-2, 1e-3);
        free(c.out);
    }

    const char *dir = rb_job("core", "scale=%.9g", scale);
    int64_t sq[4] = {B, H, Tq, d}, sk[4] = {B, H, Tk, d};
    th_save(dir, "q", q, 4, sq), th_save(dir, "k", k, 4, sk), th_save(dir, "v", v, 4, sk), th_save(dir, "dy", dy, 4, sq);
    {
        const char *outs[] = {"y", "lse", "dq", "dk", "dv"};
        const float *ours[] = {y, lse, dq, dk, dv};
        long ns[] = {nq, nl, nq, nk, nk};
        for (int i = 0; i < 5; i++)
            rb_expect(dir, outs[i], ours[i], ns[i], i < 2 ? tol : gtol, "attention %s cpu~torch %s", outs[i], shp);
    }

    if (gpu) {
        float *gq = up(q, nq), *gk = up(k, nk), *gv = up(v, nk), *gdy = up(dy, nq);
        float *gy = rhd_buf_alloc(gpu, sizeof(float) * nq), *gl = rhd_buf_alloc(gpu, sizeof(float) * nl);
        float *gdq = rhd_buf_alloc(gpu, sizeof(float) * nq), *gdk = rhd_buf_alloc(gpu, sizeof(float) * nk);
        float *gdv = rhd_buf_alloc(gpu, sizeof(float) * nk);
        rhd_attention_forward(gpu, gy, gl, gq, gk, gv, B, H, Tq, Tk, d, scale);
        rhd_attention_backward(gpu, gdq, gdk, gdv, gdy, gq, gk, gv, gy, gl, B, H, Tq, Tk, d, scale);
        const char *outs[] = {"y", "lse", "dq", "dk", "dv"};
        const float *ours[] = {y, lse, dq, dk, dv};
        float *gs[] = {gy, gl, gdq, gdk, gdv};
        long ns[] = {nq, nl, nq, nk, nk};
        for (int i = 0; i < 5; i++) {
            snprintf(name, sizeof name, "attention %s cuda~cpu %s", outs[i], shp);
            float *h = down(gs[i], ns[i]);
            if (i < 2 || gtol >= 0) th_close(name, h, ours[i], ns[i], i < 2 ? tol : gtol);
            else {
                double m = 0;
                for (long j = 0; j < ns[i]; j++) m = fmax(m, fabs((double)h[j] - ours[i][j]));
                th_ok(m <= -gtol, "%s: max_abs=%.3e tol=%.1e", name, m, -gtol);
            }
            free(h);
            rhd_buf_free(gpu, gs[i]);
        }
        rhd_buf_free(gpu, gq), rhd_buf_free(gpu, gk), rhd_buf_free(gpu, gv), rhd_buf_free(gpu, gdy);
    } else th_skip("attention cuda~cpu %s: no CUDA device", shp);
    free(q), free(k), free(v), free(dy), free(y), free(lse), free(dq), free(dk), free(dv);
}

/* ---- layout helpers: split is the adjoint of split_backward, merge of merge_backward -------- */

static void test_layout(int B, int H, int d, int T, int Te) {
    long C = (long)H * d, nqkv = (long)B * 3 * C * T, nekv = (long)B * 2 * C * Te;
    long nq = (long)B * C * T, nk = (long)B * C * (Te + T);
    float *qkv = th_randn(nqkv, 1), *ekv = Te ? th_randn(nekv, 1) : NULL;
    float *gq = th_randn(nq, 1), *gk = th_randn(nk, 1), *gv = th_randn(nk, 1);
    float *q = malloc(sizeof(float) * nq), *k = malloc(sizeof(float) * nk), *v = malloc(sizeof(float) * nk);
    float *dqkv = malloc(sizeof(float) * nqkv), *dekv = Te ? malloc(sizeof(float) * nekv) : NULL;
    rhd_attn_split_qkv(cpu, q, k, v, qkv, ekv, B, H, d, T, Te);
    rhd_attn_split_qkv_backward(cpu, dqkv, dekv, gq, gk, gv, B, H, d, T, Te);
    double lhs = dot(q, gq, nq) + dot(k, gk, nk) + dot(v, gv, nk);
    double rhs = dot(qkv, dqkv, nqkv) + (Te ? dot(ekv, dekv, nekv) : 0);
    /* spot checks of the layout itself: head h, channel c, token t */
    int ok = 1;
    for (int s = 0; s < 50; s++) {
        int b = s % B, h = (s * 7) % H, c = (s * 13) % d, t = (s * 29) % T;
        long hb = (long)b * H + h;
        ok &= q[(hb * T + t) * d + c] == qkv[((long)b * 3 * C + 3L * d * h + c) * T + t];
        ok &= k[(hb * (Te + T) + Te + t) * d + c] == qkv[((long)b * 3 * C + 3L * d * h + d + c) * T + t];
        ok &= v[(hb * (Te + T) + Te + t) * d + c] == qkv[((long)b * 3 * C + 3L * d * h + 2 * d + c) * T + t];
        if (Te) {
            int te = s % Te;
            ok &= k[(hb * (Te + T) + te) * d + c] == ekv[((long)b * 2 * C + 2L * d * h + c) * Te + te];
            ok &= v[(hb * (Te + T) + te) * d + c] == ekv[((long)b * 2 * C + 2L * d * h + d + c) * Te + te];
        }
    }
    th_ok(ok, "split_qkv layout (q, k, v head-major, encoder first) B=%d H=%d d=%d T=%d Te=%d", B, H, d, T, Te);
    th_ok(fabs(lhs - rhs) <= 1e-9 * (fabs(lhs) + 1), "split_qkv_backward is the adjoint of split_qkv: %.12g vs %.12g", lhs,
          rhs);
    /* merge */
    float *out = malloc(sizeof(float) * nq), *back = malloc(sizeof(float) * nq);
    rhd_attn_merge_heads(cpu, out, gq, B, H, d, T);
    rhd_attn_merge_heads_backward(cpu, back, out, B, H, d, T);
    int same = memcmp(back, gq, sizeof(float) * nq) == 0;
    int lay = 1;
    for (int s = 0; s < 50; s++) {
        int b = s % B, h = (s * 7) % H, c = (s * 13) % d, t = (s * 29) % T;
        lay &= out[((long)b * C + (long)h * d + c) * T + t] == gq[(((long)b * H + h) * T + t) * d + c];
    }
    th_ok(same && lay, "merge_heads layout (head h -> channels [dh, dh+d)) and merge_heads_backward inverts it");
    if (gpu) {
        float *g_qkv = up(qkv, nqkv), *g_ekv = Te ? up(ekv, nekv) : NULL;
        float *g_q = up(q, nq), *g_k = up(k, nk), *g_v = up(v, nk);
        rhd_buf_zero(gpu, g_q, sizeof(float) * nq), rhd_buf_zero(gpu, g_k, sizeof(float) * nk);
        rhd_buf_zero(gpu, g_v, sizeof(float) * nk);
        rhd_attn_split_qkv(gpu, g_q, g_k, g_v, g_qkv, g_ekv, B, H, d, T, Te);
        float *hq = down(g_q, nq), *hk = down(g_k, nk), *hv = down(g_v, nk);
        int eq = !memcmp(hq, q, sizeof(float) * nq) && !memcmp(hk, k, sizeof(float) * nk) &&
                 !memcmp(hv, v, sizeof(float) * nk);
        float *g_gq = up(gq, nq), *g_gk = up(gk, nk), *g_gv = up(gv, nk);
        float *g_dqkv = up(qkv, nqkv), *g_dekv = Te ? up(ekv, nekv) : NULL;
        rhd_attn_split_qkv_backward(gpu, g_dqkv, g_dekv, g_gq, g_gk, g_gv, B, H, d, T, Te);
        float *h1 = down(g_dqkv, nqkv), *h2 = Te ? down(g_dekv, nekv) : NULL;
        eq &= !memcmp(h1, dqkv, sizeof(float) * nqkv) && (!Te || !memcmp(h2, dekv, sizeof(float) * nekv));
        float *g_out = up(out, nq);
        rhd_attn_merge_heads(gpu, g_out, g_gq, B, H, d, T);
        float *h3 = down(g_out, nq);
        eq &= !memcmp(h3, out, sizeof(float) * nq);
        rhd_attn_merge_heads_backward(gpu, g_gq, g_out, B, H, d, T);
        float *h4 = down(g_gq, nq);
        eq &= !memcmp(h4, gq, sizeof(float) * nq);
        th_ok(eq, "split/merge cuda == cpu (bitwise) B=%d H=%d d=%d T=%d Te=%d", B, H, d, T, Te);
        free(hq), free(hk), free(hv), free(h1), free(h2), free(h3), free(h4);
        float *gl[] = {g_qkv, g_ekv, g_q, g_k, g_v, g_gq, g_gk, g_gv, g_dqkv, g_dekv, g_out};
        for (int i = 0; i < 11; i++) rhd_buf_free(gpu, gl[i]);
    } else th_skip("split/merge cuda == cpu: no CUDA device");
    free(qkv), free(ekv), free(gq), free(gk), free(gv), free(q), free(k), free(v), free(dqkv), free(dekv);
    free(out), free(back);
}

/* ---- attention block ------------------------------------------------------------------------- */

typedef struct {
    int B, C, H, T, Te;
    float *qkv, *ekv, *w, *out;
} block_fd;

static double block_loss(void *p) {
    block_fd *c = p;
    rhd_attention_block_forward(cpu, c->out, NULL, c->qkv, c->ekv, c->B, c->C, c->H, c->T, c->Te);
    return dot(c->out, c->w, (long)c->B * c->C * c->T);
}

static void test_block(int B, int C, int H, int T, int Te, int fd, double tol) {
    char name[160], shp[96];
    snprintf(shp, sizeof shp, "B=%d C=%d heads=%d T=%d Te=%d", B, C, H, T, Te);
    long nqkv = (long)B * 3 * C * T, nekv = (long)B * 2 * C * Te, ny = (long)B * C * T, nl = (long)B * H * T;
    float *qkv = th_randn(nqkv, 1), *ekv = Te ? th_randn(nekv, 1) : NULL, *dy = th_randn(ny, 1);
    float *y = malloc(sizeof(float) * ny), *lse = malloc(sizeof(float) * nl);
    float *dqkv = malloc(sizeof(float) * nqkv), *dekv = Te ? malloc(sizeof(float) * nekv) : NULL;
    rhd_attention_block_forward(cpu, y, lse, qkv, ekv, B, C, H, T, Te);
    rhd_attention_block_backward(cpu, dqkv, dekv, dy, qkv, ekv, y, lse, B, C, H, T, Te);
    if (fd) {
        block_fd c = {B, C, H, T, Te, qkv, ekv, dy, malloc(sizeof(float) * ny)};
        snprintf(name, sizeof name, "attention block fd dqkv %s", shp);
        th_fd_check(name, block_loss, &c, qkv, dqkv, nqkv, 40, 1e-2, 1e-2, 1e-3);
        if (Te) {
            snprintf(name, sizeof name, "attention block fd dekv %s", shp);
            th_fd_check(name, block_loss, &c, ekv, dekv, nekv, 40, 1e-2, 1e-2, 1e-3);
        }
        free(c.out);
    }
    const char *dir = rb_job("block", "heads=%d", H);
    int64_t s3[3] = {B, 3 * C, T}, s2[3] = {B, 2 * C, Te}, s1[3] = {B, C, T};
    th_save(dir, "qkv", qkv, 3, s3), th_save(dir, "dy", dy, 3, s1);
    if (Te) th_save(dir, "ekv", ekv, 3, s2);
    rb_expect(dir, "y", y, ny, tol, "attention block y cpu~torch %s", shp);
    rb_expect(dir, "dqkv", dqkv, nqkv, tol, "attention block dqkv cpu~torch %s", shp);
    if (Te) rb_expect(dir, "dekv", dekv, nekv, tol, "attention block dekv cpu~torch %s", shp);
    if (gpu) {
        float *g_qkv = up(qkv, nqkv), *g_ekv = Te ? up(ekv, nekv) : NULL, *g_dy = up(dy, ny);
        float *g_y = rhd_buf_alloc(gpu, sizeof(float) * ny), *g_l = rhd_buf_alloc(gpu, sizeof(float) * nl);
        float *g_dqkv = rhd_buf_alloc(gpu, sizeof(float) * nqkv);
        float *g_dekv = Te ? rhd_buf_alloc(gpu, sizeof(float) * nekv) : NULL;
        rhd_attention_block_forward(gpu, g_y, g_l, g_qkv, g_ekv, B, C, H, T, Te);
        rhd_attention_block_backward(gpu, g_dqkv, g_dekv, g_dy, g_qkv, g_ekv, g_y, g_l, B, C, H, T, Te);
        snprintf(name, sizeof name, "attention block y cuda~cpu %s", shp);
        close_free(name, down(g_y, ny), y, ny, 1e-9);
        snprintf(name, sizeof name, "attention block lse cuda~cpu %s", shp);
        close_free(name, down(g_l, nl), lse, nl, 1e-9);
        snprintf(name, sizeof name, "attention block dqkv cuda~cpu %s", shp);
        close_free(name, down(g_dqkv, nqkv), dqkv, nqkv, 1e-8);
        if (Te) {
            snprintf(name, sizeof name, "attention block dekv cuda~cpu %s", shp);
            close_free(name, down(g_dekv, nekv), dekv, nekv, 1e-8);
        }
        /* --bf16: the fused kernels (kernels/attention_fused.cuh) where the head dim is 16, 32, 64 or
         * 128, else the GEMM path; then the GEMM path (RHD_NO_FUSED_ATTN=1). Both against the fp32
         * CPU (inputs rounded to bf16: nmse ~1e-5); the fused path twice, bit for bit (no atomics). */
        int d = C / H, fusable = d == 16 || d == 32 || d == 64 || d == 128;
        for (int mode = 0; mode < 2; mode++) {
            const char *tag = mode ? "bf16 gemm" : fusable ? "bf16 fused" : "bf16 (gemm: head dim not fused)";
            if (mode) setenv("RHD_NO_FUSED_ATTN", "1", 1);
            rhd_ctx_set_bf16(gpu, 1);
            float *h[2][4] = {{0}};
            for (int rep = 0; rep < 2; rep++) {
                rhd_attention_block_forward(gpu, g_y, g_l, g_qkv, g_ekv, B, C, H, T, Te);
                rhd_attention_block_backward(gpu, g_dqkv, g_dekv, g_dy, g_qkv, g_ekv, g_y, g_l, B, C, H, T, Te);
                h[rep][0] = down(g_y, ny), h[rep][1] = down(g_l, nl), h[rep][2] = down(g_dqkv, nqkv);
                h[rep][3] = Te ? down(g_dekv, nekv) : NULL;
            }
            rhd_ctx_set_bf16(gpu, 0);
            unsetenv("RHD_NO_FUSED_ATTN");
            const char *outs[] = {"y", "lse", "dqkv", "dekv"};
            const float *ref[] = {y, lse, dqkv, dekv};
            long ns[] = {ny, nl, nqkv, nekv};
            int same = 1;
            for (int i = 0; i < (Te ? 4 : 3); i++) {
                snprintf(name, sizeof name, "attention block %s %s cuda~cpu %s", outs[i], tag, shp);
                th_close(name, h[0][i], ref[i], ns[i], 1e-4);
                same = same && !memcmp(h[0][i], h[1][i], sizeof(float) * ns[i]);
            }
            th_ok(same, "attention block %s cuda: two runs give identical bits %s", tag, shp);
            for (int rep = 0; rep < 2; rep++)
                for (int i = 0; i < 4; i++) free(h[rep][i]);
        }
        float *gl[] = {g_qkv, g_ekv, g_dy, g_y, g_l, g_dqkv, g_dekv};
        for (int i = 0; i < 7; i++) rhd_buf_free(gpu, gl[i]);
    } else th_skip("attention block cuda~cpu %s: no CUDA device", shp);
    free(qkv), free(ekv), free(dy), free(y), free(lse), free(dqkv), free(dekv);
}

/* ---- attention pooling ----------------------------------------------------------------------- */

enum { P_X, P_POS, P_WQ, P_BQ, P_WK, P_BK, P_WV, P_BV, P_N };
static const char *pool_names[P_N] = {"x", "pos", "wq", "bq", "wk", "bk", "wv", "bv"};

typedef struct {
    int B, L, W, heads;
    float *in[P_N], *w, *y;
} pool_fd;

static double pool_loss(void *p) {
    pool_fd *c = p;
    float **a = c->in;
    rhd_attention_pool_forward(cpu, c->y, a[P_X], a[P_POS], a[P_WQ], a[P_BQ], a[P_WK], a[P_BK], a[P_WV], a[P_BV], c->B,
                               c->L, c->W, c->heads);
    return dot(c->y, c->w, (long)c->B * c->W);
}

static void pool_sizes(long n[P_N], int B, int L, int W) {
    n[P_X] = (long)B * L * W;
    n[P_POS] = n[P_BQ] = n[P_BK] = n[P_BV] = W;
    n[P_WQ] = n[P_WK] = n[P_WV] = (long)W * W;
}

static void pool_run(rhd_ctx *ctx, float *y, float **g, float **a, const float *dy, int B, int L, int W, int heads) {
    rhd_attention_pool_forward(ctx, y, a[P_X], a[P_POS], a[P_WQ], a[P_BQ], a[P_WK], a[P_BK], a[P_WV], a[P_BV], B, L, W,
                               heads);
    rhd_attention_pool_backward(ctx, g[P_X], g[P_POS], g[P_WQ], g[P_BQ], g[P_WK], g[P_BK], g[P_WV], g[P_BV], dy, a[P_X],
                                a[P_POS], a[P_WQ], a[P_BQ], a[P_WK], a[P_BK], a[P_WV], a[P_BV], B, L, W, heads);
}

static void test_pool(int B, int L, int W, int heads, int fd) {
    char name[160], shp[64];
    snprintf(shp, sizeof shp, "B=%d L=%d W=%d heads=%d", B, L, W, heads);
    long n[P_N];
    pool_sizes(n, B, L, W);
    float *a[P_N], *g[P_N], *g0[P_N];
    for (int i = 0; i < P_N; i++) {
        float std = i == P_X ? 1.0f : i == P_POS ? 0.125f : (i % 2 == 0 ? 1.0f / sqrtf((float)W) * 2 : 0.1f);
        a[i] = th_randn(n[i], std);
        g0[i] = th_randn(n[i], 1); /* parameter grads accumulate: start from random values */
        g[i] = malloc(sizeof(float) * n[i]);
        memcpy(g[i], g0[i], sizeof(float) * n[i]);
    }
    float *dy = th_randn((long)B * W, 1), *y = malloc(sizeof(float) * B * W);
    pool_run(cpu, y, g, a, dy, B, L, W, heads);
    /* dx is written (=), the rest accumulated (+=): remove the starting values */
    for (int i = 1; i < P_N; i++)
        for (long j = 0; j < n[i]; j++) g[i][j] -= g0[i][j];
    if (fd) {
        pool_fd c = {B, L, W, heads, {0}, dy, malloc(sizeof(float) * B * W)};
        memcpy(c.in, a, sizeof a);
        for (int i = 0; i < P_N; i++) {
            if (i == P_BK) continue; /* zero gradient: only rounding noise to compare */
            snprintf(name, sizeof name, "attention pool fd d%s %s", pool_names[i], shp);
            th_fd_check(name, pool_loss, &c, a[i], g[i], n[i], 24, 1e-2, 1e-2, 1e-2);
        }
        free(c.y);
    }
    const char *dir = rb_job("pool", "heads=%d", heads);
    for (int i = 0; i < P_N; i++) {
        int64_t sh[3] = {0};
        int nd = 1;
        if (i == P_X) sh[0] = B, sh[1] = L, sh[2] = W, nd = 3;
        else if (n[i] == W) sh[0] = W;
        else sh[0] = W, sh[1] = W, nd = 2;
        th_save(dir, pool_names[i], a[i], nd, sh);
    }
    int64_t sdy[2] = {B, W};
    th_save(dir, "dy", dy, 2, sdy);
    rb_expect(dir, "y", y, (long)B * W, 1e-9, "attention pool y cpu~torch %s", shp);
    for (int i = 0; i < P_N; i++) {
        char gn[8];
        snprintf(gn, sizeof gn, "d%s", pool_names[i]);
        /* dbk is zero exactly (a common shift of all logits): compare it by max-abs */
        rb_expect(dir, gn, g[i], n[i], i == P_BK ? -1e-5 : 1e-8, "attention pool %s cpu~torch %s", gn, shp);
    }
    if (gpu) {
        float *da[P_N], *dg[P_N];
        for (int i = 0; i < P_N; i++) da[i] = up(a[i], n[i]), dg[i] = up(g0[i], n[i]);
        float *ddy = up(dy, (long)B * W), *dyo = rhd_buf_alloc(gpu, sizeof(float) * B * W);
        pool_run(gpu, dyo, dg, da, ddy, B, L, W, heads);
        snprintf(name, sizeof name, "attention pool y cuda~cpu %s", shp);
        close_free(name, down(dyo, (long)B * W), y, (long)B * W, 1e-9);
        for (int i = 0; i < P_N; i++) {
            float *h = down(dg[i], n[i]);
            if (i > 0)
                for (long j = 0; j < n[i]; j++) h[j] -= g0[i][j];
            snprintf(name, sizeof name, "attention pool d%s cuda~cpu %s", pool_names[i], shp);
            close_free(name, h, g[i], n[i], 1e-9); /* L = 1 amplifies rounding (see cpu~torch) */
            rhd_buf_free(gpu, da[i]), rhd_buf_free(gpu, dg[i]);
        }
        rhd_buf_free(gpu, ddy), rhd_buf_free(gpu, dyo);
    } else th_skip("attention pool cuda~cpu %s: no CUDA device", shp);
    for (int i = 0; i < P_N; i++) free(a[i]), free(g[i]), free(g0[i]);
    free(dy), free(y);
}

/* ---- the CPU result does not depend on the thread count ------------------------------------ */

static void test_threads(int B, int C, int H, int T, int Te) {
    long nqkv = (long)B * 3 * C * T, nekv = (long)B * 2 * C * Te, ny = (long)B * C * T, nl = (long)B * H * T;
    float *qkv = th_randn(nqkv, 1), *ekv = th_randn(nekv, 1), *dy = th_randn(ny, 1);
    float *y[2], *lse[2], *dqkv[2], *dekv[2];
    int nt[2] = {1, 3}, saved = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        y[r] = malloc(sizeof(float) * ny), lse[r] = malloc(sizeof(float) * nl);
        dqkv[r] = malloc(sizeof(float) * nqkv), dekv[r] = malloc(sizeof(float) * nekv);
        omp_set_num_threads(nt[r]);
        rhd_attention_block_forward(cpu, y[r], lse[r], qkv, ekv, B, C, H, T, Te);
        rhd_attention_block_backward(cpu, dqkv[r], dekv[r], dy, qkv, ekv, y[r], lse[r], B, C, H, T, Te);
    }
    omp_set_num_threads(saved);
    th_ok(!memcmp(y[0], y[1], sizeof(float) * ny) && !memcmp(lse[0], lse[1], sizeof(float) * nl) &&
              !memcmp(dqkv[0], dqkv[1], sizeof(float) * nqkv) && !memcmp(dekv[0], dekv[1], sizeof(float) * nekv),
          "attention block cpu: 1 and 3 threads give identical bits B=%d C=%d heads=%d T=%d Te=%d", B, C, H, T, Te);
    for (int r = 0; r < 2; r++) free(y[r]), free(lse[r]), free(dqkv[r]), free(dekv[r]);
    free(qkv), free(ekv), free(dy);
}

int main(void) {
    th_open_backends(&cpu, &gpu);
    /* core: odd sizes, one token, several query blocks (4 blocks of 75 rows), saturated
     * logits (scale 20: exp would overflow without the max subtraction), the VAE mid attention */
    test_core(1, 1, 5, 7, 3, 0.577f, 1e-9, 1e-9, 1);
    test_core(2, 2, 6, 4, 5, 0.447f, 1e-9, 1e-9, 1);
    test_core(2, 3, 17, 33, 8, 0.354f, 1e-9, 1e-9, 0);
    test_core(1, 1, 1, 1, 4, 0.5f, 1e-9, -1e-6, 0); /* one key: dq = dk = 0 analytically; max-abs bound */
    test_core(1, 2, 300, 2000, 4, 0.5f, 1e-9, 1e-9, 0);
    /* saturated rows (logits spread ~100): the gradients are P (dP - D) with P nearly one-hot and
     * may all be ~1e-15 in a row, so their relative error means nothing: bound max-abs instead */
    test_core(1, 2, 9, 11, 16, 20.0f, 1e-9, -1e-3, 0);
    test_core(1, 1, 256, 256, 512, 1.0f / sqrtf(512.0f), 1e-9, 1e-9, 0);
    /* layout */
    test_layout(1, 2, 4, 6, 3);
    test_layout(2, 3, 5, 7, 0);
    test_layout(2, 6, 64, 96, 16);
    /* block: small with and without encoder tokens, then the UNet's first attention level */
    test_block(1, 8, 2, 6, 3, 1, 1e-9);
    test_block(1, 6, 1, 5, 0, 1, 1e-9);
    test_block(2, 12, 3, 35, 4, 0, 1e-9);
    test_block(2, 64, 2, 70, 16, 0, 1e-9); /* head dim 32: --bf16 fused, partial tiles */
    test_block(1, 384, 6, 32 * 96, 16, 0, 1e-8);
    test_threads(2, 64, 4, 700, 5);
    /* pooling: the model's single token, and several tokens */
    test_pool(2, 3, 16, 4, 1);
    test_pool(3, 1, 64, 8, 0);
    test_pool(2, 5, 64, 8, 1);
    rb_run("ref_attn.py");
    rhd_ctx_close(cpu);
    rhd_ctx_close(gpu);
    return th_done();
}
