/* common/models/upsampler.h: the TriplaneUpsampler (upsample_model.py; spec diffusion.md §5, §7.5-8,
 * §7.12-13, §10.1, §10.2, §10.10, §10.12), the 128 -> 512 triplane diffusion network, forward and
 * backward on the blocks of common/models/nn.h (CPU, and CUDA through the blocks' dispatch).
 *
 * Inputs (rolled triplanes, planes side by side along the width): x_t (N,in_ch,R,3R), t (N) as the
 * caller scales it (raw 0..99 in training, 10 t at sampling, §3.6), ref (N,latent_ch,S,S) the
 * portrait latent (S = latent_size), low (N,cond_ch,r,3r) the low-resolution condition (any r;
 * r = R is the identity). Output x0_hat (N,out_ch,R,3R). R must be a multiple of 2^(levels-1).
 * The page common/models/upsampler.md draws the blocks, the skip structure and the shapes.
 *
 * Deviations from the original, both exact at batch 1: the low-res condition is resized per sample
 * (§7.6), and the one-token cross-attention is computed as the per-sample bias it is (§5.2, §7.7;
 * §10.2's never-trained tensors are registered, loaded and saved, and get exactly zero gradient).
 * There is no gradient with respect to ref or t. */
#ifndef RHD_MODELS_UPSAMPLER_H
#define RHD_MODELS_UPSAMPLER_H
#include "common/models/nn.h"

#define RHD_UPS_MAX_LEVELS 4
#define RHD_UPS_MAX_RES 4     /* res blocks per encoder level (the decoder has one more) */
#define RHD_UPS_MAX_GROUPS 6  /* body groups [Res, CrossAttention, Res] */

typedef struct rhd_ups_config {
    int in_ch, out_ch, cond_ch;   /* 32, 32, 32 */
    int n_feats;                  /* 64 */
    int nlevels, ch_mult[RHD_UPS_MAX_LEVELS]; /* 3, (1,2,4) */
    int num_res_blocks;           /* 2 per encoder level (decoder: +1) */
    int n_resblocks;              /* 6: body of n_resblocks/2 groups */
    int temb_ch, temb_dim;        /* sinusoid width n_feats = 64, embedding 4 n_feats = 256 */
    int latent_ch, latent_size;   /* 4, 16 (ref is latent_ch x S x S) */
    int patch;                    /* 16: conv1 kernel and stride (S/patch squared tokens; must be 1) */
    int embed_dim, pool_heads;    /* 64 (conv1 width), 8 pooling heads */
    float latent_scale;           /* 0.13025 */
    int groups;                   /* 32 (ResnetBlocks, attention, norm_encoder) */
    float eps, attn_eps, ln_eps;  /* 1e-6 ResnetBlocks, 1e-5 attention GN, 1e-5 LayerNorms */
    int head_ch;                  /* 32 channels per attention head */
    float dropout;                /* 0 */
    int checkpoint;               /* 1 in the original: recompute every ResnetBlock in backward */
} rhd_ups_config;

/* A level's modules: encoder blocks + strided down conv; decoder blocks + bilinear-up conv. */
typedef struct rhd_upsampler {
    rhd_nn_model base; /* first: the lifecycle's part (params, run context) */
    rhd_ups_config cfg;
    rhd_nn_temb temb;                               /* time_embed.{0,2} */
    rhd_nn_conv conv_in;                            /* input_layer.0 */
    rhd_nn_resblock in_res;                         /* input_layer.1 */
    rhd_nn_resblock down[RHD_UPS_MAX_LEVELS][RHD_UPS_MAX_RES];      /* down.i.block.j */
    rhd_nn_conv down_conv[RHD_UPS_MAX_LEVELS];                      /* down.i.downsample.conv */
    rhd_nn_resblock body_res[RHD_UPS_MAX_GROUPS][2];                /* body.3g, body.3g+2 */
    rhd_nn_attn body_attn[RHD_UPS_MAX_GROUPS];                      /* body.3g+1 */
    rhd_nn_resblock up[RHD_UPS_MAX_LEVELS][RHD_UPS_MAX_RES + 1];    /* up.i.block.j */
    rhd_nn_conv up_conv[RHD_UPS_MAX_LEVELS];                        /* up.i.upsample.conv */
    rhd_nn_resblock tail[2], out;                   /* tail.{0,1}, out (no temb_proj) */
    rhd_nn_conv patch;                              /* conv1 (no bias) */
    rhd_nn_linear enc_proj, pool_lin;               /* encoder_proj, encoder_pooling.2 */
    rhd_nn_layernorm ln0, ln3;                      /* encoder_pooling.0, .3 */
    int pool_pos, pool_w[3], pool_b[3];             /* encoder_pooling.1.{positional_embedding,q,k,v_proj} */
} rhd_upsampler;

#define RHD_UPS_MAX_SKIPS (1 + RHD_UPS_MAX_LEVELS * (RHD_UPS_MAX_RES + 1))

/* One pass: the caller fills the sizes and inputs (on the context's side; they must stay valid and
 * unchanged until the backward); the forward sets y, the backward dx and dlow (all in the run's
 * arena, valid until the next pass). dy is the gradient of the output. The rest is the assembly's
 * own bookkeeping. */
typedef struct rhd_ups_io {
    int N, R, r;
    const float *x, *t, *ref, *low, *dy;
    float *y, *dx, *dlow;
    /* saved by the forward */
    float *lr, *emb, *z, *tok, *ln0, *pooled, *g1, *g, *enc;
    float *h0, *s, *X;
    float *skip[RHD_UPS_MAX_SKIPS];
    int skip_ch[RHD_UPS_MAX_SKIPS], skip_h[RHD_UPS_MAX_SKIPS], nskip;
} rhd_ups_io;

#ifdef __cplusplus
extern "C" {
#endif
/* The original's configuration (n_feats 64; 80,433,056 parameters) and the CPU-sized one
 * (n_feats 32, embed_dim 32, temb_dim 128; everything else the original's). */
void rhd_ups_config_official(rhd_ups_config *c);
void rhd_ups_config_small(rhd_ups_config *c);
/* "official" or "small" into c; -1 with a message naming the preset otherwise. */
int rhd_ups_config_preset(rhd_ups_config *c, const char *preset, rhd_err *e);
/* Override fields of c from a JSON object whose keys are the field names above ("ch_mult" an
 * array); an unknown key or a wrong type is an error naming `name` and the key. Then checks. */
int rhd_ups_config_from_json(rhd_ups_config *c, const char *text, size_t n, const char *name, rhd_err *e);
/* Sizes that can be built (channels divisible by the groups, ranges, one latent token). */
int rhd_ups_config_check(const rhd_ups_config *c, const char *name, rhd_err *e);
/* Parameter and tensor counts of a configuration, nothing allocated. */
void rhd_ups_count(const rhd_ups_config *c, int64_t *nparams, int *ntensors);
/* 0 if the sizes can run (R a multiple of 2^(levels-1), at least that, r >= 1), else a message. */
int rhd_ups_check_size(const rhd_ups_config *c, int R, int r, rhd_err *e);

/* The model kind for rhd_nn_model_create (cfg: an rhd_ups_config passing the check; io of
 * rhd_nn_model_forward/backward: an rhd_ups_io). */
extern const rhd_nn_model_ops rhd_upsampler_ops;
/* rhd_nn_model_create with these ops, and a state dict must not hold tensors (under prefix) that the
 * configuration does not have: the first such is named. Free with rhd_nn_model_free(&m->base). */
rhd_upsampler *rhd_ups_create(const rhd_ups_config *c, rhd_ctx *ctx, const rhd_st *st, const char *prefix,
                              int with_grad, rhd_err *e);
/* The ops' build step (upsampler.c; the passes are in upsampler_pass.c). */
int rhd_ups_build(rhd_nn_model *m, const void *cfg, rhd_err *e);
#ifdef __cplusplus
}
#endif
#endif
