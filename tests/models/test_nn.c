/* tests/models/test_nn.c: the leaf blocks of common/models/nn.h (conv incl. the right/bottom-padded
 * strided downsample, group norm with and without SiLU, layer norm, linear, SiLU, avgpool /
 * nearest / bilinear align_corners resampling, the timestep-embedding MLP) against PyTorch
 * (tests/ref/ref_nn.py), finite differences, thread counts and CUDA (tests/nn_case.h); ReLU and
 * max pooling (the LPIPS backbones) against PyTorch only (piecewise linear); dropout
 * against its definition; the run context (dry-run sizing, tape order) and the parameter loader's
 * messages. */
#include "nn_case.h"
#include "kernels/dropout.h"

/* ---- conv ------------------------------------------------------------------------------------ */

static void conv_build(nc_case *c, rhd_params *p) {
    const int *v = c->iv; /* N Cin H W Cout k stride pad; fv[0]: 1 down, fv[1]: bias */
    if (c->fv[0] > 0) rhd_nn_conv_init_down(p, &c->b.conv, "conv", v[1]);
    else rhd_nn_conv_init(p, &c->b.conv, "conv", v[1], v[4], v[5], v[6], v[7], c->fv[1] > 0);
}
static void conv_fwd(rhd_nn *r, nc_case *c, float *y, float *const *in) {
    rhd_nn_conv_forward(r, &c->b.conv, y, in[0], c->iv[0], c->iv[2], c->iv[3]);
}
static void conv_bwd(rhd_nn *r, nc_case *c, float *const *din, const float *dy) {
    rhd_nn_conv_backward(r, &c->b.conv, din[0], dy, c->iv[0], c->iv[2], c->iv[3]);
}
static nc_case conv_case(int N, int Cin, int H, int W, int Cout, int k, int stride, int pad, int down, int bias) {
    nc_case c = {.build = conv_build, .fwd = conv_fwd, .bwd = conv_bwd};
    int iv[8] = {N, Cin, H, W, Cout, k, stride, pad};
    memcpy(c.iv, iv, sizeof iv);
    c.fv[0] = (float)down, c.fv[1] = (float)bias;
    snprintf(c.name, sizeof c.name, "conv %dx%d s%d p%d%s %d->%d on %dx%dx%dx%d", k, k, stride, pad,
             down ? " (pad right/bottom)" : "", Cin, Cout, N, Cin, H, W);
    strcpy(c.block, "conv");
    snprintf(c.args, sizeof c.args, "cin=%d cout=%d k=%d stride=%d pad=%d down=%d bias=%d", Cin, Cout, k, stride, pad,
             down, bias);
    nc_input(&c, "x", 1, 4, N, Cin, H, W);
    rhd_nn_conv tmp = {0, 0, Cin, Cout, k, stride, pad, down ? 1 : pad, pad, down ? 1 : pad};
    int OH, OW;
    rhd_nn_conv_out_size(&tmp, H, W, &OH, &OW);
    nc_output(&c, 4, N, Cout, OH, OW);
    return c;
}

/* ---- norms, linear, SiLU --------------------------------------------------------------------- */

static void gn_build(nc_case *c, rhd_params *p) { rhd_nn_groupnorm_init(p, &c->b.gn, "", c->iv[1], c->iv[3], c->fv[0]); }
static void gn_fwd(rhd_nn *r, nc_case *c, float *y, float *const *in) {
    rhd_nn_groupnorm_forward(r, &c->b.gn, y, in[0], c->iv[0], c->iv[2], c->iv[4]);
}
static void gn_bwd(rhd_nn *r, nc_case *c, float *const *din, const float *dy) {
    rhd_nn_groupnorm_backward(r, &c->b.gn, din[0], dy, c->iv[0], c->iv[2], c->iv[4]);
}
static nc_case gn_case(int N, int C, int HW, int G, float eps, int silu) {
    nc_case c = {.build = gn_build, .fwd = gn_fwd, .bwd = gn_bwd};
    int iv[8] = {N, C, HW, G, silu};
    memcpy(c.iv, iv, sizeof iv);
    c.fv[0] = eps;
    snprintf(c.name, sizeof c.name, "groupnorm%s G=%d eps=%g on %dx%dx%d", silu ? "+silu" : "", G, eps, N, C, HW);
    strcpy(c.block, "gn");
    snprintf(c.args, sizeof c.args, "C=%d G=%d eps=%.9g silu=%d", C, G, eps, silu);
    nc_input(&c, "x", 1, 3, N, C, HW, 0);
    nc_output(&c, 3, N, C, HW, 0);
    return c;
}

static void ln_build(nc_case *c, rhd_params *p) { rhd_nn_layernorm_init(p, &c->b.ln, "", c->iv[1], c->fv[0]); }
static void ln_fwd(rhd_nn *r, nc_case *c, float *y, float *const *in) { rhd_nn_layernorm_forward(r, &c->b.ln, y, in[0], c->iv[0]); }
static void ln_bwd(rhd_nn *r, nc_case *c, float *const *din, const float *dy) {
    rhd_nn_layernorm_backward(r, &c->b.ln, din[0], dy, c->iv[0]);
}

static void lin_build(nc_case *c, rhd_params *p) { rhd_nn_linear_init(p, &c->b.lin, "", c->iv[1], c->iv[2], 1); }
static void lin_fwd(rhd_nn *r, nc_case *c, float *y, float *const *in) { rhd_nn_linear_forward(r, &c->b.lin, y, in[0], c->iv[0]); }
static void lin_bwd(rhd_nn *r, nc_case *c, float *const *din, const float *dy) {
    rhd_nn_linear_backward(r, &c->b.lin, din[0], dy, c->iv[0]);
}

static void none_build(nc_case *c, rhd_params *p) {}
static void silu_fwd(rhd_nn *r, nc_case *c, float *y, float *const *in) { rhd_nn_silu_forward(r, y, in[0], c->iv[0]); }
static void silu_bwd(rhd_nn *r, nc_case *c, float *const *din, const float *dy) { rhd_nn_silu_backward(r, din[0], dy, c->iv[0]); }

static void relu_fwd(rhd_nn *r, nc_case *c, float *y, float *const *in) { rhd_nn_relu_forward(r, y, in[0], c->iv[0]); }
static void relu_bwd(rhd_nn *r, nc_case *c, float *const *din, const float *dy) { rhd_nn_relu_backward(r, din[0], dy, c->iv[0]); }

static void mp_fwd(rhd_nn *r, nc_case *c, float *y, float *const *in) {
    const int *v = c->iv;
    rhd_nn_maxpool_forward(r, y, in[0], v[0], v[1], v[2], v[3], v[4], v[5]);
}
static void mp_bwd(rhd_nn *r, nc_case *c, float *const *din, const float *dy) {
    const int *v = c->iv;
    rhd_nn_maxpool_backward(r, din[0], dy, v[0], v[1], v[2], v[3], v[4], v[5]);
}
static nc_case mp_case(int N, int C, int H, int W, int k, int s) {
    nc_case c = {.build = none_build, .fwd = mp_fwd, .bwd = mp_bwd, .iv = {N, C, H, W, k, s}, .no_fd = 1};
    snprintf(c.name, sizeof c.name, "maxpool k%d s%d on %dx%dx%dx%d", k, s, N, C, H, W);
    strcpy(c.block, "maxpool");
    snprintf(c.args, sizeof c.args, "k=%d s=%d", k, s);
    nc_input(&c, "x", 1, 4, N, C, H, W);
    nc_output(&c, 4, N, C, (H - k) / s + 1, (W - k) / s + 1);
    return c;
}

/* ---- resampling -------------------------------------------------------------------------------- */

static void rs_fwd(rhd_nn *r, nc_case *c, float *y, float *const *in) {
    rhd_nn_resample_forward(r, (rhd_nn_resample_kind)c->iv[4], y, in[0], c->iv[0], c->iv[1], c->iv[2], c->iv[3]);
}
static void rs_bwd(rhd_nn *r, nc_case *c, float *const *din, const float *dy) {
    rhd_nn_resample_backward(r, (rhd_nn_resample_kind)c->iv[4], din[0], dy, c->iv[0], c->iv[1], c->iv[2], c->iv[3]);
}
static nc_case rs_case(rhd_nn_resample_kind k, int N, int C, int H, int W) {
    static const char *names[] = {"", "avgpool", "nearest", "bilinear"};
    nc_case c = {.build = none_build, .fwd = rs_fwd, .bwd = rs_bwd};
    int iv[8] = {N, C, H, W, (int)k};
    memcpy(c.iv, iv, sizeof iv);
    snprintf(c.name, sizeof c.name, "resample %s on %dx%dx%dx%d", names[k], N, C, H, W);
    strcpy(c.block, "resample");
    snprintf(c.args, sizeof c.args, "kind=%s", names[k]);
    nc_input(&c, "x", 1, 4, N, C, H, W);
    int OH, OW;
    rhd_nn_resample_size(k, H, W, &OH, &OW);
    nc_output(&c, 4, N, C, OH, OW);
    return c;
}

/* ---- timestep embedding ------------------------------------------------------------------------ */

static void te_build(nc_case *c, rhd_params *p) { rhd_nn_temb_init(p, &c->b.te, "time_embed", c->iv[1], c->iv[2]); }
static void te_fwd(rhd_nn *r, nc_case *c, float *y, float *const *in) { rhd_nn_temb_forward(r, &c->b.te, y, in[0], c->iv[0]); }
static void te_bwd(rhd_nn *r, nc_case *c, float *const *din, const float *dy) { rhd_nn_temb_backward(r, &c->b.te, dy, c->iv[0]); }

static int build_cases(nc_case *cs) {
    int n = 0;
    cs[n++] = conv_case(2, 4, 5, 7, 6, 3, 1, 1, 0, 1);
    cs[n++] = conv_case(2, 4, 6, 8, 4, 3, 2, 0, 1, 1);  /* Downsample2D / Downsample_u */
    cs[n++] = conv_case(1, 5, 4, 6, 3, 1, 1, 0, 0, 1);  /* 1x1 skip */
    cs[n++] = conv_case(1, 3, 8, 8, 5, 4, 4, 0, 0, 0);  /* patch embedding, no bias */
    cs[n++] = gn_case(2, 8, 15, 4, 1e-5f, 0);
    cs[n++] = gn_case(2, 8, 15, 2, 1e-6f, 1);
    nc_case c = {.build = ln_build, .fwd = ln_fwd, .bwd = ln_bwd, .iv = {5, 16}, .fv = {1e-5f}};
    strcpy(c.name, "layernorm D=16 on 5 rows"), strcpy(c.block, "ln"), strcpy(c.args, "D=16 eps=1e-5");
    nc_input(&c, "x", 1, 2, 5, 16, 0, 0), nc_output(&c, 2, 5, 16, 0, 0);
    cs[n++] = c;
    nc_case l = {.build = lin_build, .fwd = lin_fwd, .bwd = lin_bwd, .iv = {3, 7, 5}};
    strcpy(l.name, "linear 7->5 on 3 rows"), strcpy(l.block, "linear"), strcpy(l.args, "in=7 out=5");
    nc_input(&l, "x", 1, 2, 3, 7, 0, 0), nc_output(&l, 2, 3, 5, 0, 0);
    cs[n++] = l;
    nc_case s = {.build = none_build, .fwd = silu_fwd, .bwd = silu_bwd, .iv = {60}};
    strcpy(s.name, "silu on 60"), strcpy(s.block, "silu");
    nc_input(&s, "x", 1, 1, 60, 0, 0, 0), nc_output(&s, 1, 60, 0, 0, 0);
    cs[n++] = s;
    nc_case rl = {.build = none_build, .fwd = relu_fwd, .bwd = relu_bwd, .iv = {60}, .no_fd = 1};
    strcpy(rl.name, "relu on 60"), strcpy(rl.block, "relu");
    nc_input(&rl, "x", 1, 1, 60, 0, 0, 0), nc_output(&rl, 1, 60, 0, 0, 0);
    cs[n++] = rl;
    cs[n++] = mp_case(2, 3, 7, 9, 3, 2); /* AlexNet's */
    cs[n++] = mp_case(1, 4, 6, 8, 2, 2); /* VGG's */
    cs[n++] = rs_case(RHD_NN_AVGPOOL2, 2, 3, 6, 7);
    cs[n++] = rs_case(RHD_NN_NEAREST2, 2, 3, 3, 5);
    cs[n++] = rs_case(RHD_NN_BILINEAR2, 2, 3, 3, 5);
    nc_case t = {.build = te_build, .fwd = te_fwd, .bwd = te_bwd, .iv = {3, 8, 16}};
    strcpy(t.name, "timestep embedding MLP 8->16->16"), strcpy(t.block, "temb"), strcpy(t.args, "ch=8 E=16");
    nc_input(&t, "t", 0, 1, 3, 0, 0, 0), nc_output(&t, 2, 3, 16, 0, 0);
    cs[n++] = t;
    return n;
}

/* ---- dropout: its definition, thread counts, backward ----------------------------------------- */

static void check_dropout(rhd_ctx *cpu, rhd_ctx *gpu) {
    const long n = 100003;
    const float p = 0.1f;
    float *x = th_randn(n, 1.0f), *y1 = malloc(sizeof(float) * n), *y4 = malloc(sizeof(float) * n);
    float *dx = malloc(sizeof(float) * n);
    uint64_t seed = th_seed(), stream = RHD_STREAM(RHD_STREAM_DROPOUT, 11), off = 12345;
    th_ok(rhd_dropout_scale(p) == 1.1111112f, "dropout scale fp32(1/(1-0.1)) = %.9g, expected 1.1111112",
          rhd_dropout_scale(p));
    omp_set_num_threads(1);
    rhd_dropout_forward(cpu, y1, x, n, p, seed, stream, off);
    omp_set_num_threads(4);
    rhd_dropout_forward(cpu, y4, x, n, p, seed, stream, off);
    omp_set_num_threads(omp_get_num_procs());
    th_same_bytes("dropout mask on 1 and 4 threads", y1, y4, n, sizeof(float));
    long bad = 0, kept = 0;
    for (long i = 0; i < n; i++) {
        int keep = rhd_rng_uniform(seed, stream, off + (uint64_t)i) >= p;
        float want = keep ? x[i] * 1.1111112f : 0.0f;
        kept += keep;
        bad += memcmp(&want, &y1[i], sizeof want) != 0;
    }
    th_ok(bad == 0, "dropout = keep(u >= p) * x * 1.1111112f element by element (%ld of %ld differ)", bad, n);
    double frac = (double)kept / n, sd = sqrt(0.09 / n);
    th_ok(fabs(frac - 0.9) < 5 * sd, "dropout keeps %.5f of the elements, expected 0.9 +- %.5f", frac, 5 * sd);
    rhd_dropout_backward(cpu, dx, x, n, p, seed, stream, off);
    th_same_bytes("dropout backward applies the same mask and scale", dx, y1, n, sizeof(float));
    /* the run context: successive dropouts draw fresh counters, a pass restarts them */
    rhd_nn r;
    rhd_params none;
    rhd_params_init(&none);
    rhd_nn_init(&r, cpu, &none);
    rhd_nn_reserve(&r, sizeof(float) * 4 * (size_t)n + 4096);
    r.seed = seed, r.stream = stream;
    rhd_nn_begin(&r, 1);
    float *a = rhd_nn_alloc(&r, n), *b = rhd_nn_alloc(&r, n);
    rhd_nn_dropout_forward(&r, a, x, n, p);
    rhd_nn_dropout_forward(&r, b, x, n, p);
    rhd_dropout_forward(cpu, dx, x, n, p, seed, stream, 0);
    rhd_dropout_forward(cpu, y4, x, n, p, seed, stream, (uint64_t)n);
    th_ok(!memcmp(a, dx, sizeof(float) * n) && !memcmp(b, y4, sizeof(float) * n) && r.rng_offset == 2 * (uint64_t)n,
          "rhd_nn dropout: the first call draws counters 0..n-1, the second n..2n-1");
    rhd_nn_begin(&r, 0);
    rhd_nn_dropout_forward(&r, a, x, n, p);
    th_same_bytes("rhd_nn dropout in inference mode is the identity", a, x, n, sizeof(float));
    rhd_nn_free(&r);
    if (gpu) {
        float *dxg = rhd_buf_alloc(gpu, sizeof(float) * n), *dyg = rhd_buf_alloc(gpu, sizeof(float) * n);
        rhd_buf_upload(gpu, dxg, x, sizeof(float) * n);
        rhd_dropout_forward(gpu, dyg, dxg, n, p, seed, stream, off);
        rhd_buf_download(gpu, y4, dyg, sizeof(float) * n);
        th_same_bytes("dropout cuda = cpu", y4, y1, n, sizeof(float));
        rhd_buf_free(gpu, dxg);
        rhd_buf_free(gpu, dyg);
    } else {
        th_skip("dropout cuda = cpu: no CUDA device");
    }
    free(x), free(y1), free(y4), free(dx);
}

/* ---- parameter loading ---------------------------------------------------------------------------- */

static void check_load(rhd_ctx *cpu) {
    rhd_params p, q;
    rhd_params_init(&p);
    rhd_nn_resblock b;
    rhd_nn_resblock_cfg cfg = {.cin = 8, .cout = 16, .emb = 12, .temb = RHD_NN_TEMB_SCALE_SHIFT, .groups = 4,
                               .eps = 1e-5f, .names = RHD_NN_NAMES_UNET};
    rhd_nn_resblock_init(&p, &b, "input_blocks.1.0", &cfg);
    rhd_params_alloc(&p, cpu, 0, 0);
    for (int i = 0; i < p.n; i++)
        for (int64_t k = 0; k < p.info[i].numel; k++) p.data[p.info[i].offset + k] = (float)((i + k) % 97) * 0.01f;
    const char *dir = th_subdir("load");
    char path[1200];
    snprintf(path, sizeof path, "%s/sd.safetensors", dir);
    rhd_st_writer w;
    rhd_err e;
    rhd_st_writer_init(&w);
    rhd_params_to_writer(&p, RHD_PBUF_DATA, "decoder.", &w);
    th_ok(rhd_st_write(&w, path, &e) == 0, "state dict written (%d tensors)", p.n);
    rhd_st_writer_free(&w);
    rhd_st *st;
    if (rhd_st_open(path, &st, &e)) th_diag("%s", e.msg);
    rhd_params_init(&q);
    rhd_nn_resblock_init(&q, &b, "input_blocks.1.0", &cfg);
    rhd_params_alloc(&q, cpu, 0, 0);
    th_ok(rhd_nn_load_params(&q, st, "decoder.", &e) == 0 && !memcmp(q.data, p.data, sizeof(float) * p.total),
          "a state dict with the prefix 'decoder.' loads every tensor by name");
    int rc = rhd_nn_load_params(&q, st, "", &e);
    th_ok(rc != 0 && strstr(e.msg, "'input_blocks.1.0.in_layers.0.weight' is missing"),
          "without the prefix: the first tensor is reported missing by name: %s", e.msg);
    rhd_st_close(st);
    rhd_params_free(&q);
    /* a wrong shape: the same names with 16 -> 24 output channels */
    rhd_params_init(&q);
    rhd_nn_resblock_cfg c2 = cfg;
    c2.cout = 24;
    rhd_nn_resblock_init(&q, &b, "input_blocks.1.0", &c2);
    rhd_params_alloc(&q, cpu, 0, 0);
    if (rhd_st_open(path, &st, &e)) th_diag("%s", e.msg);
    rc = rhd_nn_load_params(&q, st, "decoder.", &e);
    th_ok(rc != 0 && strstr(e.msg, "'decoder.input_blocks.1.0.in_layers.2.weight' has shape [16,8,3,3], expected [24,8,3,3]"),
          "a wrong shape is reported by name with both shapes: %s", e.msg);
    rhd_st_close(st);
    rhd_params_free(&q);
    rhd_params_free(&p);
}

int main(void) {
    rhd_ctx *cpu, *gpu;
    th_open_backends(&cpu, &gpu);
    nc_case cs[20];
    memset(cs, 0, sizeof cs);
    int n = build_cases(cs);
    nc_check_all(cpu, gpu, cs, n, "leaf");
    check_dropout(cpu, gpu);
    check_load(cpu);
    if (gpu) rhd_ctx_close(gpu);
    rhd_ctx_close(cpu);
    return th_done();
}
