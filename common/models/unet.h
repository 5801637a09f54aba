/* common/models/unet.h: the RodinHD base diffusion network (BaseMultiscaleVAELatentUNet, a modified
 * improved-diffusion UNet with joint self + portrait cross-attention; spec diffusion.md §1.4, §2,
 * §7, §10.3/4/7/12), built from the blocks of nn.h on the one model lifecycle (rhd_nn_model).
 *
 * Inputs of one pass (rhd_unet_io), all on the model's context side, fp32, NCHW:
 *   x   (N, in_channels, R, 3R)   rolled-out noisy triplane, R = image_size
 *   t   (N)                       timesteps as the network sees them (already rescaled, §3.6)
 *   ref (N, latent_ch, L, L)      the conditioning sample (rhd_unet_cond_sample), NOT yet scaled:
 *                                 the model multiplies it by latent_scale (0.13025) itself
 *   F[i] (N, feat_ch[i], S_i, S_i) the three portrait feature maps F0, F1, F2
 * Output y (N, out_channels, R, 3R) (eps then v with learned sigma). In training the backward gives
 * dx (and every parameter gradient, accumulated); no gradient flows to t, ref or the features.
 *
 * Every size the original hard-codes is a config field whose default is the original's value
 * (rhd_unet_config_official); rhd_unet_config_from_json overrides any of them. Files: unet.c (config,
 * build, counts), unet_run.c (forward, backward, conditioning). Page: common/models/unet.md. */
#ifndef RHD_MODELS_UNET_H
#define RHD_MODELS_UNET_H
#include "common/models/nn.h"

#define RHD_UNET_MAX_LEVELS 8
#define RHD_UNET_MAX_ATTN 8
#define RHD_UNET_FEATS 3
#define RHD_UNET_MAX_BLOCKS 96

typedef enum { RHD_UNET_NOISE_UNIFORM = 0, RHD_UNET_NOISE_NORMAL = 1, RHD_UNET_NOISE_NONE = 2 } rhd_unet_noise;

typedef struct rhd_unet_config {
    int image_size;                        /* plane side R (128) */
    int in_channels, out_channels;         /* 32, 64 (learned sigma) */
    int model_channels;                    /* 192; time embedding 4x */
    int channel_mult[RHD_UNET_MAX_LEVELS]; /* (1,1,2,3,4) */
    int nlevels;
    int num_res_blocks;                    /* 3 (decoder side: one more) */
    int attn_res[RHD_UNET_MAX_ATTN];       /* feature-map heights with attention (32,16,8) */
    int nattn;
    int num_head_channels;                 /* 64: heads = C / 64 */
    int aware3d_levels;                    /* levels (from the finest) whose ResBlocks end in Conv3DAware: 1 */
    int groups;                            /* GroupNorm groups of the network: 32 */
    float eps;                             /* 1e-5 */
    float dropout;                         /* 0.1 */
    int xf_width;                          /* token width: 512 */
    /* global embedding (§2.5) */
    int latent_ch, latent_size;            /* ref (4,16,16) */
    float latent_scale;                    /* 0.13025 */
    int patch, pool_width, pool_heads;     /* 16, 64, 8 */
    /* multi-scale features (§2.6): F0, F1, F2 */
    int feat_ch[RHD_UNET_FEATS];           /* 128, 256, 512 */
    int feat_size[RHD_UNET_FEATS];         /* 64, 32, 16 */
    int feat_kernel[RHD_UNET_FEATS];       /* 16, 8, 4 (conv kernel = stride) */
    int feat_height[RHD_UNET_FEATS];       /* the UNet height that looks up Fi's tokens: 32, 16, 8 */
    int feat_groups;                       /* 32 */
    /* conditioning sample (§1.4) and memory */
    rhd_unet_noise noise;                  /* uniform (original) */
    int checkpoint;                        /* gradient checkpointing per ResBlock/attention block */
} rhd_unet_config;

/* One layer of the block list (§2.7). */
typedef enum { RHD_UNET_L_RES = 0, RHD_UNET_L_ATTN = 1 } rhd_unet_lkind;
typedef struct rhd_unet_layer {
    rhd_unet_lkind kind;
    int index;          /* into res[] or attn[] */
} rhd_unet_layer;
typedef struct rhd_unet_block {
    rhd_unet_layer layer[3];
    int nlayer;
    int cin, cout;      /* channels in (after the skip concatenation) / out */
    int skip_ch;        /* output blocks: channels of the popped skip (0 otherwise) */
    int H;              /* input height (the token lookup key); output H' = H/2 (down), 2H (up) */
    int Hout;
    int feat;           /* token set of its attention (-1: none) */
} rhd_unet_block;

typedef struct rhd_unet {
    rhd_nn_model base;  /* first: the lifecycle's part */
    rhd_unet_config cfg;
    rhd_nn_temb temb;
    rhd_nn_conv conv_in, conv_out, patch;
    rhd_nn_layernorm ln_tok, ln_out;
    int pool_pos, pool_q[2], pool_k[2], pool_v[2]; /* parameter indices (weight, bias) */
    rhd_nn_linear pool_lin;
    rhd_nn_groupnorm feat_norm[RHD_UNET_FEATS], norm_out;
    rhd_nn_conv feat_proj[RHD_UNET_FEATS];
    rhd_nn_resblock res[2 * RHD_UNET_MAX_BLOCKS];
    rhd_nn_attn attn[RHD_UNET_MAX_BLOCKS];
    int nres, nattn_blocks;
    rhd_unet_block blk[RHD_UNET_MAX_BLOCKS]; /* input blocks (without I0), middle, output blocks */
    int nin, nout;                           /* nin input blocks after I0, 1 middle, nout output */
    int emb;                                 /* time embedding width */
} rhd_unet;

typedef struct rhd_unet_io {
    int N;
    const float *x, *t, *ref, *F[RHD_UNET_FEATS], *dy;
    float *y, *dx;                          /* taken from the run's arena by forward / backward */
    /* the pass's saved activations (set by forward) */
    float *emb, *h0, *hs[RHD_UNET_MAX_BLOCKS], *cat[RHD_UNET_MAX_BLOCKS], *tok[RHD_UNET_FEATS], *g[8];
} rhd_unet_io;

#ifdef __cplusplus
extern "C" {
#endif
extern const rhd_nn_model_ops rhd_unet_ops;
/* The original's configuration (image size 128). */
void rhd_unet_config_official(rhd_unet_config *c);
/* A small configuration that trains on the CPU in minutes: R 32, model_channels 32, channel_mult
 * (1,2,4), 1 res block, attention at 16 and 8, xf_width 32, half-size feature maps (4 tokens). */
void rhd_unet_config_small(rhd_unet_config *c);
/* Preset by name ("official", "small"); -1 with an error for another name. */
int rhd_unet_config_preset(rhd_unet_config *c, const char *name, rhd_err *e);
/* Override fields from a JSON object (text of n bytes; `name` for messages). A key "preset" selects
 * the starting preset (default: c as given). Unknown keys and wrong types are errors. */
int rhd_unet_config_from_json(rhd_unet_config *c, const char *text, size_t n, const char *name, rhd_err *e);
/* Every field of c as a JSON object that rhd_unet_config_from_json reads back to the same config
 * (malloc'd text, free()). */
char *rhd_unet_config_to_json(const rhd_unet_config *c);
/* Check a config (sizes consistent, groups divide channels, ...). */
int rhd_unet_config_check(const rhd_unet_config *c, rhd_err *e);
/* Parameter count of a config, without allocating anything (-1 with e on a bad config). */
int64_t rhd_unet_param_count(const rhd_unet_config *c, rhd_err *e);
/* Multiply-accumulates of one forward at batch 1 (convolutions, linears, attention products). */
double rhd_unet_macs(const rhd_unet_config *c);

/* Create (st may be NULL: zero parameters). With st, every registered tensor must be present with
 * its shape (under "decoder." or no prefix, detected), and st must hold no other tensor under that
 * prefix: the first mismatch is named. */
rhd_unet *rhd_unet_create(const rhd_unet_config *c, rhd_ctx *ctx, const rhd_st *st, int with_grad, rhd_err *e);
/* Check the shapes of a pass's inputs: x (N, in, R, 3R) with R = image_size; the features as the
 * config says. shapes: x[4], ref[4], F[i][4]. Errors name the tensor. */
int rhd_unet_check_inputs(const rhd_unet_config *c, const int64_t x[4], const int64_t ref[4],
                          const int64_t F[RHD_UNET_FEATS][4], int nfeat, rhd_err *e);
/* Activation arena bytes a pass needs at batch N (train: forward + backward), measured by a dry
 * run; nothing is computed or allocated but the model itself. */
size_t rhd_unet_arena_bytes(rhd_unet *m, int N, int train);
void rhd_unet_forward(rhd_unet *m, rhd_unet_io *io, int train);
void rhd_unet_backward(rhd_unet *m, rhd_unet_io *io);
void rhd_unet_free(rhd_unet *m);
/* internal: the passes of rhd_unet_ops (unet_run.c) */
void rhd_unet__forward(rhd_nn *r, const rhd_nn_model *m, void *io);
void rhd_unet__backward(rhd_nn *r, const rhd_nn_model *m, void *io);

/* The conditioning sample of §1.4 on the host: ref (N, C, L, L) from moments (N, 2C, L, L):
 * mean + exp(0.5 clamp(logvar, -30, 20)) * U, U uniform [0,1) (original), N(0,1), or 0 (none),
 * drawn from (seed, stream) starting at element `offset`. */
void rhd_unet_cond_sample(float *ref, const float *moments, int N, int C, int L, rhd_unet_noise kind, uint64_t seed,
                          uint64_t stream, uint64_t offset);
#ifdef __cplusplus
}
#endif
#endif
