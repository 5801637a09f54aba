/* common/models/nn.h: the building blocks of the suite's networks and the one run context every
 * model uses (pretrained_diffusion/nn.py, unet.py, upsample_model.py; diffusers' ResnetBlock2D;
 * spec diffusion.md §2.3, §2.4, §5.2, §10.7).
 *
 * A block is a small struct of parameter indices into ONE rhd_params table plus its sizes. Its
 * *_init registers the tensors under a prefix with the original PyTorch state-dict names and
 * shapes ("input_blocks.1.0.in_layers.2.weight" [192,192,3,3]), so a converted checkpoint loads by
 * name. Forward and backward dispatch to kernels/ and run on the context's backend.
 *
 * ---- the run context (rhd_nn) ----------------------------------------------------------------
 * Every forward and backward takes an rhd_nn: the backend context, the parameter table, the
 * activation arena, the mode and the tape.
 *  - Dry run: with r->dry set nothing is computed; rhd_nn_alloc only counts, so running a pass
 *    dry measures exactly the arena it needs (rhd_nn_plan: run the pass dry, allocate once).
 *  - Modes: r->train = 0 is inference: a block releases its temporaries before it returns and
 *    saves nothing, dropout is the identity. r->train = 1: dropout is active, a block keeps its
 *    intermediates in the arena and pushes what its backward needs on the tape; backward calls,
 *    made in the exact reverse order of the forward calls, pop them (a tag per entry catches a
 *    mismatched order). Saved tensors stay in the arena until the next pass (rhd_nn_begin); a
 *    backward releases its own temporaries.
 *  - Checkpointing (gradient recomputation, as the original upsampler does): a ResBlock or an
 *    attention block with .checkpoint = 1 runs its forward without saving (dropout still active)
 *    and keeps only its inputs (and the dropout counter); its backward recomputes the forward with saving on, then
 *    runs the plain backward and releases the recomputed tensors. The gradients are bitwise the
 *    same as without checkpointing (the same kernels on the same values).
 *  - Dropout draws from (r->seed, r->stream), element counter r->rng_offset, which each dropout
 *    advances by its element count in forward order (a checkpointed block rewinds it when it
 *    recomputes).
 * Inputs handed to a forward in training mode must stay valid (and unchanged) until the matching
 * backward: blocks save POINTERS to their inputs, not copies.
 *
 * ---- contracts shared by every block ---------------------------------------------------------
 * Shapes are PyTorch order, NCHW, fp32, on the context's side. Outputs are written (=). In
 * backward the input gradients are written (=) unless said otherwise, and may be NULL when not
 * wanted; parameter gradients are ACCUMULATED (+=) into r->p->grad (zero them once per step).
 * Every forward writes a caller-provided output that must not alias its input (except where said).
 * Arena use: see each block's "saved" line; temporaries are taken from r's arena and released.
 *
 * ---- model lifecycle -------------------------------------------------------------------------
 * rhd_nn_model (below): build from a config, load a state dict with rhd_nn_load_params (every name
 * and shape checked, the first mismatch reported by name), forward/backward over its rhd_nn, free.
 * Models never open files: the state dict comes as an opened safetensors file.
 *
 * Files: nn.c (run context, loading, leaf blocks), nn_blocks.c (Conv3DAware, ResBlock, timestep
 * MLP), nn_attn.c (attention), nn_model.c (the lifecycle). Tests: tests/models/test_nn*.c against
 * tests/ref/ref_nn.py. */
#ifndef RHD_MODELS_NN_H
#define RHD_MODELS_NN_H
#include <stddef.h>
#include <stdint.h>
#include "common/arena.h"
#include "common/params.h"
#include "formats/safetensors.h"

/* ---- run context ----------------------------------------------------------------------------- */

/* Tape tags, one per block kind (a pop with another tag is an internal error). */
enum {
    RHD_NN_TAG_CONV = 1, RHD_NN_TAG_GN, RHD_NN_TAG_LN, RHD_NN_TAG_LINEAR, RHD_NN_TAG_SILU, RHD_NN_TAG_DROPOUT,
    RHD_NN_TAG_AWARE3D, RHD_NN_TAG_RESBLOCK, RHD_NN_TAG_RELU, RHD_NN_TAG_MAXPOOL, RHD_NN_TAG_ATTN,
    RHD_NN_TAG_TEMB, RHD_NN_TAG_USER = 100 /* models' own entries */
};

typedef struct rhd_nn_tape_entry {
    int tag;              /* which block kind pushed it (checked on pop) */
    const float *ptr;
    uint64_t u;           /* a counter (dropout offset) or a size */
} rhd_nn_tape_entry;

typedef struct rhd_nn {
    rhd_ctx *ctx;
    rhd_params *p;        /* parameters (and grads for backward) on ctx */
    rhd_arena *arena;     /* activations: &own, or a caller's arena (rhd_nn_use_arena) */
    rhd_arena own;        /* sized by rhd_nn_plan or rhd_nn_reserve */
    size_t base;          /* where a pass starts in *arena (its mark when borrowed) */
    int dry;              /* 1: count allocations, compute nothing */
    size_t used, peak;    /* dry-run bookkeeping (bytes) */
    int train;            /* 1: training: dropout active, forward saves for backward */
    int nosave;           /* > 0 inside a checkpointed block's forward: nothing saved */
    uint64_t seed, stream;/* dropout stream: RHD_STREAM(RHD_STREAM_DROPOUT, step) */
    uint64_t rng_offset;  /* next dropout element counter */
    rhd_nn_tape_entry *tape;
    int ntape, tape_cap;
} rhd_nn;

#ifdef __cplusplus
extern "C" {
#endif
/* An empty run context over ctx and p (no arena yet). */
void rhd_nn_init(rhd_nn *r, rhd_ctx *ctx, rhd_params *p);
void rhd_nn_free(rhd_nn *r);
/* Size the arena for a pass: run pass(r, user) dry (with r->train as set), then allocate the arena
 * once to the measured peak (never shrinks). Returns the bytes. */
typedef void (*rhd_nn_pass)(rhd_nn *r, void *user);
size_t rhd_nn_plan(rhd_nn *r, rhd_nn_pass pass, void *user);
/* Make sure the arena holds at least `bytes` (reallocates when it grows; the contents are lost). */
void rhd_nn_reserve(rhd_nn *r, size_t bytes);
/* Run in a caller-owned arena instead (not freed by rhd_nn_free; rhd_nn_plan then only measures and
 * checks that it is large enough). */
void rhd_nn_use_arena(rhd_nn *r, rhd_arena *a);
/* Start a pass: empty arena and tape, dropout counter 0, the given mode. */
void rhd_nn_begin(rhd_nn *r, int train);

/* 1 when forwards save for backward (training and not inside a checkpointed forward). */
static inline int rhd_nn_saving(const rhd_nn *r) { return r->train && !r->nosave; }
/* Arena floats (NULL in a dry run), marks and release, dry-aware. */
float *rhd_nn_alloc(rhd_nn *r, size_t nfloats);
size_t rhd_nn_mark(const rhd_nn *r);
void rhd_nn_release(rhd_nn *r, size_t mark);
/* Tape: push in forward, pop in backward in reverse order (tags must match). */
void rhd_nn_push(rhd_nn *r, int tag, const float *ptr, uint64_t u);
const float *rhd_nn_pop(rhd_nn *r, int tag, uint64_t *u);
/* Parameter data and gradient pointers of table entry i (NULL for i < 0). */
const float *rhd_nn_w(const rhd_nn *r, int i);
float *rhd_nn_g(const rhd_nn *r, int i);

/* Load every tensor of p from st under `prefix` (may be ""): each name must exist with exactly the
 * registered shape and a float dtype (F32/F16/BF16/F64 converted) and finite values; the first
 * mismatch is reported by name with what was found and expected. Tensors in st that p does not
 * have are ignored. p must be allocated. */
int rhd_nn_load_params(rhd_params *p, const rhd_st *st, const char *prefix, rhd_err *e);

/* ---- one model lifecycle (nn_model.c) -------------------------------------------------------
 * A model kind is a table of three functions over its own struct (which starts with an
 * rhd_nn_model): build registers its blocks in m->params from a config; forward and backward run
 * the assembly on a run context for an `io` struct of the model's own (inputs, outputs, gradients,
 * sizes). The lifecycle is the same for every model:
 *   m = rhd_nn_model_create(&ops, cfg, ctx, st, prefix, with_grad, &e)   build, allocate, load (st
 *        may be NULL: zero parameters; every registered name must be in st with its exact shape,
 *        the first mismatch is reported by name)
 *   rhd_nn_model_forward(m, io, train)      sizes the arena by a dry run of the forward (and, when
 *        training, of the backward that will follow), then runs the forward
 *   rhd_nn_model_backward(m, io)            consumes the tape of that forward; parameter gradients
 *        accumulate in m->params.grad (rhd_nn_model_zero_grad clears them)
 *   rhd_nn_model_free(m)
 * The model never sees a file name: st is an opened safetensors file. */
typedef struct rhd_nn_model rhd_nn_model;
typedef struct rhd_nn_model_ops {
    const char *kind;   /* "unet", "upsampler", ... (for messages) */
    size_t size;        /* sizeof the model's struct, which starts with an rhd_nn_model */
    int (*build)(rhd_nn_model *m, const void *cfg, rhd_err *e);
    void (*forward)(rhd_nn *r, const rhd_nn_model *m, void *io);
    void (*backward)(rhd_nn *r, const rhd_nn_model *m, void *io);
} rhd_nn_model_ops;
struct rhd_nn_model {
    const rhd_nn_model_ops *ops;
    rhd_params params;
    rhd_nn run;
};
rhd_nn_model *rhd_nn_model_create(const rhd_nn_model_ops *ops, const void *cfg, rhd_ctx *ctx, const rhd_st *st,
                                  const char *prefix, int with_grad, rhd_err *e);
void rhd_nn_model_forward(rhd_nn_model *m, void *io, int train);
void rhd_nn_model_backward(rhd_nn_model *m, void *io);
void rhd_nn_model_zero_grad(rhd_nn_model *m);
void rhd_nn_model_free(rhd_nn_model *m);

/* ---- leaf blocks ----------------------------------------------------------------------------- */

/* Conv2d: weight [Cout,Cin,KH,KW] ("<prefix>.weight"), bias [Cout] ("<prefix>.bias", optional),
 * zero padding per side (the VAE/upsampler downsample pads right/bottom only: pad 0,1,0,1 with
 * stride 2). x (N,Cin,H,W) -> y (N,Cout,OH,OW). Saved: x. */
typedef struct rhd_nn_conv {
    int w, b;                       /* table indices; b = -1 without bias */
    int cin, cout, k, stride;
    int pad_t, pad_b, pad_l, pad_r;
} rhd_nn_conv;
void rhd_nn_conv_init(rhd_params *p, rhd_nn_conv *c, const char *prefix, int cin, int cout, int k, int stride, int pad,
                      int bias);
/* The right/bottom-padded stride-2 3x3 conv of diffusers' Downsample2D and the upsampler's
 * Downsample_u (spec §5.2). */
void rhd_nn_conv_init_down(rhd_params *p, rhd_nn_conv *c, const char *prefix, int ch);
/* The same tensor registered with the shape of a 1-D conv [Cout,Cin,1] (the UNet's qkv, proj_out,
 * encoder_kv) or of a Linear [Cout,Cin] (the VAE attention's to_q ...): the memory is identical. */
void rhd_nn_conv1x1_init_shaped(rhd_params *p, rhd_nn_conv *c, const char *prefix, int cin, int cout, int wdim);
void rhd_nn_conv_out_size(const rhd_nn_conv *c, int H, int W, int *OH, int *OW);
void rhd_nn_conv_forward(rhd_nn *r, const rhd_nn_conv *c, float *y, const float *x, int N, int H, int W);
void rhd_nn_conv_backward(rhd_nn *r, const rhd_nn_conv *c, float *dx, const float *dy, int N, int H, int W);

/* GroupNorm(G, C, eps), affine: weight, bias [C]. x, y (N,C,HW). Saved: x, mean, rstd (N,G).
 * With silu = 1 the block is GN followed by SiLU (the "normalize + nonlinearity" pair every
 * ResBlock opens with); then it also saves the GN output. In inference y may alias x. */
typedef struct rhd_nn_groupnorm {
    int w, b, C, G;
    float eps;
} rhd_nn_groupnorm;
void rhd_nn_groupnorm_init(rhd_params *p, rhd_nn_groupnorm *g, const char *prefix, int C, int G, float eps);
void rhd_nn_groupnorm_forward(rhd_nn *r, const rhd_nn_groupnorm *g, float *y, const float *x, int N, int64_t HW, int silu);
void rhd_nn_groupnorm_backward(rhd_nn *r, const rhd_nn_groupnorm *g, float *dx, const float *dy, int N, int64_t HW,
                               int silu);

/* LayerNorm over the last dimension D, affine [D]. x, y (N,D). Saved: x, mean, rstd. */
typedef struct rhd_nn_layernorm {
    int w, b, D;
    float eps;
} rhd_nn_layernorm;
void rhd_nn_layernorm_init(rhd_params *p, rhd_nn_layernorm *l, const char *prefix, int D, float eps);
void rhd_nn_layernorm_forward(rhd_nn *r, const rhd_nn_layernorm *l, float *y, const float *x, int64_t N);
void rhd_nn_layernorm_backward(rhd_nn *r, const rhd_nn_layernorm *l, float *dx, const float *dy, int64_t N);

/* Linear: weight [out,in], bias [out] (optional). x (N,in) -> y (N,out). Saved: x. */
typedef struct rhd_nn_linear {
    int w, b, in, out;
} rhd_nn_linear;
void rhd_nn_linear_init(rhd_params *p, rhd_nn_linear *l, const char *prefix, int in, int out, int bias);
void rhd_nn_linear_forward(rhd_nn *r, const rhd_nn_linear *l, float *y, const float *x, int N);
void rhd_nn_linear_backward(rhd_nn *r, const rhd_nn_linear *l, float *dx, const float *dy, int N);

/* SiLU, y = x sigmoid(x) element-wise over n. Saved: x (so y must not alias x when training). */
void rhd_nn_silu_forward(rhd_nn *r, float *y, const float *x, int64_t n);
void rhd_nn_silu_backward(rhd_nn *r, float *dx, const float *dy, int64_t n);

/* ReLU element-wise over n. Saved: x. In inference y may alias x. */
void rhd_nn_relu_forward(rhd_nn *r, float *y, const float *x, int64_t n);
void rhd_nn_relu_backward(rhd_nn *r, float *dx, const float *dy, int64_t n);

/* Max pooling k x k, stride s, no padding, floor mode (the LPIPS backbones): x (N,C,H,W) ->
 * (N,C,OH,OW), OH = (H - k)/s + 1. Saved: the argmax indices (int32, in the arena). dx written. */
void rhd_nn_maxpool_forward(rhd_nn *r, float *y, const float *x, int N, int C, int H, int W, int k, int s);
void rhd_nn_maxpool_backward(rhd_nn *r, float *dx, const float *dy, int N, int C, int H, int W, int k, int s);

/* Dropout with probability p (spec §10.7), element-wise over n; p = 0 copies. Saved: the dropout
 * counter (the mask is regenerated, never stored). In inference mode it is the identity copy. */
void rhd_nn_dropout_forward(rhd_nn *r, float *y, const float *x, int64_t n, float p);
void rhd_nn_dropout_backward(rhd_nn *r, float *dx, const float *dy, int64_t n, float p);

/* Parameter-free resampling, x (N,C,H,W): avgpool 2x2 -> (H/2,W/2); nearest x2 and bilinear x2
 * with align_corners = True -> (2H,2W). Nothing saved (linear maps); dx written. */
typedef enum { RHD_NN_AVGPOOL2 = 1, RHD_NN_NEAREST2 = 2, RHD_NN_BILINEAR2 = 3 } rhd_nn_resample_kind;
void rhd_nn_resample_forward(rhd_nn *r, rhd_nn_resample_kind k, float *y, const float *x, int N, int C, int H, int W);
void rhd_nn_resample_backward(rhd_nn *r, rhd_nn_resample_kind k, float *dx, const float *dy, int N, int C, int H,
                              int W);
void rhd_nn_resample_size(rhd_nn_resample_kind k, int H, int W, int *OH, int *OW);

/* Residual add y = a + b (n); backward writes da and db (=) from dy (either may be NULL). */
void rhd_nn_add_forward(rhd_nn *r, float *y, const float *a, const float *b, int64_t n);
void rhd_nn_add_backward(rhd_nn *r, float *da, float *db, const float *dy, int64_t n);

/* ---- composite blocks (nn_blocks.c) -------------------------------------------------------- */

/* Conv3DAware(C -> Co) (spec §2.4): x (N,C,R,3R) rolled triplane -> y (N,Co,R,3R); three convs
 * 3x3 p1 3C -> Co with bias, "<prefix>.out_layers1/2/3". Saved: the three plane inputs
 * (3,N,3C,R,R) (the convs' inputs; the profile step is linear and needs nothing). */
typedef struct rhd_nn_aware3d {
    rhd_nn_conv conv[3];
    int C, Co;
} rhd_nn_aware3d;
void rhd_nn_aware3d_init(rhd_params *p, rhd_nn_aware3d *a, const char *prefix, int C, int Co);
void rhd_nn_aware3d_forward(rhd_nn *r, const rhd_nn_aware3d *a, float *y, const float *x, int N, int R);
void rhd_nn_aware3d_backward(rhd_nn *r, const rhd_nn_aware3d *a, float *dx, const float *dy, int N, int R);

/* The ResBlock family: the base UNet's ResBlock (§2.4), the upsampler's ResnetBlock_u (§5.2) and
 * diffusers' ResnetBlock2D of the VAE, one struct:
 *   a  = SiLU(GN1(x));  down: a, x' = avgpool2(a), avgpool2(x);  up: nearest2 of both;  else x' = x
 *   h  = conv1 3x3 p1 (Cin -> Cout)(a)
 *   temb SCALE_SHIFT:  (s, t) = Linear(E -> 2Cout)(SiLU(emb));  h = SiLU(GN2(h) (1 + s) + t)
 *   temb ADD:          h = h + Linear(E -> Cout)(SiLU(emb));     h = SiLU(GN2(h))
 *   temb NONE:                                                   h = SiLU(GN2(h))
 *   h  = dropout(h);  h = conv2(h): conv 3x3 p1 Cout -> Cout, or Conv3DAware when aware3d
 *   y  = skip(x') + h;  skip = identity (Cin = Cout, unless force_skip) or a conv 1x1 with bias
 * Names (rhd_nn_resblock_names): base UNet in_layers.0/in_layers.2/emb_layers.1/out_layers.0/
 * out_layers.3/skip_connection; upsampler norm1/conv1/temb_proj/norm2/conv2/nin_shortcut; VAE
 * norm1/conv1/-/norm2/conv2/conv_shortcut. x (N,Cin,H,W), emb (N,E), y (N,Cout,H',W').
 * Saved: every intermediate (or, with checkpoint, x, emb and the dropout counter). demb is
 * ACCUMULATED (+=): one embedding feeds every block. */
typedef enum { RHD_NN_TEMB_NONE = 0, RHD_NN_TEMB_SCALE_SHIFT = 1, RHD_NN_TEMB_ADD = 2 } rhd_nn_temb_kind;
typedef enum { RHD_NN_PLAIN = 0, RHD_NN_DOWN = 1, RHD_NN_UP = 2 } rhd_nn_updown;
typedef enum { RHD_NN_NAMES_UNET = 0, RHD_NN_NAMES_UPSAMPLER = 1, RHD_NN_NAMES_VAE = 2 } rhd_nn_resblock_names;
typedef struct rhd_nn_resblock_cfg {
    int cin, cout, emb;          /* emb: embedding width E (0 without) */
    rhd_nn_temb_kind temb;
    rhd_nn_updown updown;
    int aware3d;                 /* conv2 is a Conv3DAware (needs W = 3H) */
    int force_skip;              /* a 1x1 skip even when cin == cout */
    int groups;                  /* 32 */
    float eps;                   /* 1e-5 base, 1e-6 upsampler and VAE */
    float dropout;               /* p (0: none) */
    int checkpoint;              /* recompute in backward */
    rhd_nn_resblock_names names;
} rhd_nn_resblock_cfg;
typedef struct rhd_nn_resblock {
    rhd_nn_resblock_cfg cfg;
    rhd_nn_groupnorm norm1, norm2;
    rhd_nn_conv conv1, conv2, skip; /* skip.w = -1: identity */
    rhd_nn_aware3d conv2a;          /* when cfg.aware3d */
    rhd_nn_linear emb;              /* emb.w = -1 without time embedding */
} rhd_nn_resblock;
void rhd_nn_resblock_init(rhd_params *p, rhd_nn_resblock *b, const char *prefix, const rhd_nn_resblock_cfg *cfg);
void rhd_nn_resblock_out_size(const rhd_nn_resblock *b, int H, int W, int *OH, int *OW);
void rhd_nn_resblock_forward(rhd_nn *r, const rhd_nn_resblock *b, float *y, const float *x, const float *emb, int N,
                             int H, int W);
/* dx (N,Cin,H,W) =; demb (N,E) += (may be NULL). */
void rhd_nn_resblock_backward(rhd_nn *r, const rhd_nn_resblock *b, float *dx, float *demb, const float *dy, int N,
                              int H, int W);

/* Attention with optional encoder keys/values (nn_attn.c), x (N,C,T) with T = H W, heads H = C/d:
 *   JOINT (base UNet AttentionBlock, §2.4): n = GN(x); qkv = conv1d 1x1 C -> 3C (n) ("qkv");
 *     with Te encoder tokens enc (N,Ce,Te): ekv = conv1d Ce -> 2C (enc) ("encoder_kv"); per head
 *     softmax over [Te encoder keys, T self keys]; o = proj_out (C -> C); y = x + o.
 *   CROSS (upsampler CrossAttention_u, §5.2): q = conv1d C -> C (GN(x)) ("qkv" [C,C,1]);
 *     e' = GN(Ce, groups_enc, 1e-5)(enc) ("norm_encoder"); kv = conv1d Ce -> 2C (e'); keys and
 *     values ONLY from the encoder tokens; y = x + proj_out(attention).
 * Head layouts as kernels/attention.h (head-major q,k,v / k,v). Weights [out,in,1].
 * Saved: x, enc, GN statistics, qkv, ekv, the attention output and lse (or, with checkpoint,
 * x and enc). denc is ACCUMULATED (+=), may be NULL. */
typedef enum { RHD_NN_ATTN_JOINT = 0, RHD_NN_ATTN_CROSS = 1 } rhd_nn_attn_kind;
typedef struct rhd_nn_attn_cfg {
    rhd_nn_attn_kind kind;
    int C, heads;
    int enc_ch;                  /* Ce (0: no encoder tokens; JOINT only) */
    int groups, enc_groups;      /* 32, 32 */
    float eps;                   /* 1e-5 */
    int checkpoint;
} rhd_nn_attn_cfg;
typedef struct rhd_nn_attn {
    rhd_nn_attn_cfg cfg;
    rhd_nn_groupnorm norm, norm_enc;   /* norm_enc.w = -1 unless CROSS */
    rhd_nn_conv qkv, ekv, proj;        /* ekv.w = -1 without encoder tokens */
} rhd_nn_attn;
void rhd_nn_attn_init(rhd_params *p, rhd_nn_attn *a, const char *prefix, const rhd_nn_attn_cfg *cfg);
/* y (N,C,T) from x (N,C,T) and enc (N,Ce,Te) (NULL, Te = 0 without). */
void rhd_nn_attn_forward(rhd_nn *r, const rhd_nn_attn *a, float *y, const float *x, const float *enc, int N, int T,
                         int Te);
void rhd_nn_attn_backward(rhd_nn *r, const rhd_nn_attn *a, float *dx, float *denc, const float *dy, int N, int T,
                          int Te);

/* Timestep-embedding MLP (§2.3): emb = Linear(E,E)(SiLU(Linear(ch,E)(timestep_embedding(t, ch))))
 * ("<prefix>.0", "<prefix>.2", i.e. time_embed.0/.2). t (N) float timesteps on the context's side
 * (kernels/embed.h), emb (N,E). Saved: the sinusoidal embedding and the hidden layer. No gradient
 * flows to t; the backward only accumulates the parameter gradients. */
typedef struct rhd_nn_temb {
    rhd_nn_linear l1, l2;
    int ch, E;
} rhd_nn_temb;
void rhd_nn_temb_init(rhd_params *p, rhd_nn_temb *t, const char *prefix, int ch, int E);
void rhd_nn_temb_forward(rhd_nn *r, const rhd_nn_temb *t, float *emb, const float *ts, int N);
void rhd_nn_temb_backward(rhd_nn *r, const rhd_nn_temb *t, const float *demb, int N);
#ifdef __cplusplus
}
#endif
#endif
