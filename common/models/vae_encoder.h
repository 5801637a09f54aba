/* common/models/vae_encoder.h: the SDXL-VAE encoder (diffusers AutoencoderKL.encoder), forward
 * only, returning the latent moments and the three multi-scale feature maps RodinHD conditions on
 * (spec diffusion.md §1.2; script/myvae.py, script/encode_multiscale_feature.py).
 *
 * Architecture (config c, blocks i = 0..3, C_i = c.block_out_channels[i], GN = GroupNorm(groups,
 * eps 1e-6), conv3 = conv 3x3 stride 1 pad 1 with bias):
 *   h = conv_in(x)                                      conv3 in_channels -> C_0
 *   for i: for j < layers_per_block: h = Resnet(h)      C_{i-1} -> C_i on j = 0 (1x1 conv_shortcut
 *          if i < 3: h = Downsample(h)                  when the channels change), then C_i -> C_i
 *          F_i = h   for i = 0, 1, 2                    (AFTER the downsampler)
 *   h = Resnet(h); h = Attention(h) (if enabled); h = Resnet(h)     mid block at C_3
 *   moments = conv_out(SiLU(GN(h)))                     conv3 C_3 -> 2*latent_channels
 *   Resnet(x) = shortcut(x) + conv2(SiLU(GN2(conv1(SiLU(GN1(x))))))  (no time embedding, scale 1)
 *   Downsample(x) = conv 3x3 stride 2 pad 0 on x padded with one zero column right, one row below
 *   Attention(x) = x + to_out(softmax(q k^T / sqrt(C)) v), q,k,v = to_q,to_k,to_v(GN(x)) over the
 *                  H*W tokens, one head, Linear layers with bias ([C, C] weights)
 * moments are conv_out's output, NOT passed through quant_conv: channels [0, L) are the mean,
 * [L, 2L) the log-variance (L = latent_channels).
 *
 * Shapes for N portraits of H x W (multiples of 8): x (N, in, H, W); F0 (N, C_0, H/2, W/2);
 * F1 (N, C_1, H/4, W/4); F2 (N, C_2, H/8, W/8); moments (N, 2L, H/8, W/8). SDXL at 128 px:
 * F0 [128,64,64], F1 [256,32,32], F2 [512,16,16], moments [8,16,16]; 34,163,592 parameters.
 *
 * Parameters: one table (common/params.h) named as diffusers' state dict, `encoder.` prefix
 * included (encoder.conv_in.weight, encoder.down_blocks.{i}.resnets.{j}.norm1.weight, ...,
 * encoder.mid_block.attentions.0.to_q.weight, ...), so a diffusers AutoencoderKL safetensors file
 * loads by name. The loader also takes the older attention names (query, key, value, proj_attn)
 * and attention weights stored as 1x1 convs [C, C, 1, 1], F32/F16/BF16/F64.
 * Activations live in a caller-owned arena (rhd_vae_encoder_arena_bytes says how much: a dry run of
 * the forward on the rhd_nn run context, common/models/nn.h); the model
 * touches no files: the config comes as JSON text, the weights as an opened safetensors file. */
#ifndef RHD_MODELS_VAE_ENCODER_H
#define RHD_MODELS_VAE_ENCODER_H
#include <stddef.h>
#include <stdint.h>
#include "common/arena.h"
#include "common/params.h"
#include "common/models/nn.h"
#include "formats/safetensors.h"

#define RHD_VAE_BLOCKS 4     /* down blocks: three with a downsampler (F0..F2), then one without */
#define RHD_VAE_MAX_LAYERS 8 /* resnets per down block */

typedef struct rhd_vae_config {
    int in_channels;                            /* 3 */
    int latent_channels;                        /* 4: conv_out gives 2*4 = 8 channels (double_z) */
    int block_out_channels[RHD_VAE_BLOCKS];     /* 128, 256, 512, 512 */
    int layers_per_block;                       /* 2 */
    int norm_num_groups;                        /* 32 */
    float eps;                                  /* 1e-6 (every GroupNorm of the encoder) */
    int mid_attention;                          /* 1: mid_block_add_attention */
} rhd_vae_config;

/* The mid attention (diffusers Attention, one head): GN, to_q/to_k/to_v/to_out.0 Linear [C,C]. */
typedef struct rhd_vae_attn {
    rhd_nn_groupnorm norm;
    rhd_nn_linear q, k, v, o;
} rhd_vae_attn;

/* Built from the blocks of common/models/nn.h (ResnetBlock2D = rhd_nn_resblock with the VAE names,
 * no time embedding); every forward runs on an rhd_nn run context in inference mode. */
typedef struct rhd_vae_encoder {
    rhd_vae_config cfg;
    rhd_params params; /* the table; data on the context's side once allocated */
    rhd_nn_conv conv_in;
    rhd_nn_resblock down[RHD_VAE_BLOCKS][RHD_VAE_MAX_LAYERS];
    rhd_nn_conv down_conv[RHD_VAE_BLOCKS - 1];
    rhd_nn_resblock mid[2];
    rhd_vae_attn attn; /* registered only when cfg.mid_attention */
    rhd_nn_groupnorm norm_out;
    rhd_nn_conv conv_out;
} rhd_vae_encoder;

#ifdef __cplusplus
extern "C" {
#endif
/* The SDXL VAE (stabilityai/stable-diffusion-xl-base-1.0, subfolder vae). */
void rhd_vae_config_sdxl(rhd_vae_config *c);
/* Read a diffusers AutoencoderKL config.json (text of n bytes; `name` for messages). Keys absent
 * take diffusers' defaults; down_block_types must all be DownEncoderBlock2D, act_fn silu, and
 * there must be exactly four blocks. Then rhd_vae_config_check. */
int rhd_vae_config_from_json(rhd_vae_config *c, const char *text, size_t n, const char *name, rhd_err *e);
/* Sizes that can be built: positive, channels divisible by the groups, layers in range. */
int rhd_vae_config_check(const rhd_vae_config *c, const char *name, rhd_err *e);
/* "block_out_channels [128,256,512,512], layers_per_block 2, ..." for messages and metadata. */
char *rhd_vae_config_str(const rhd_vae_config *c, char *buf, size_t n);

/* Register the parameter table (nothing allocated yet). cfg must pass rhd_vae_config_check. */
void rhd_vae_encoder_init(rhd_vae_encoder *m, const rhd_vae_config *cfg);
/* Allocate the parameters on ctx (zeroed). */
void rhd_vae_encoder_alloc(rhd_vae_encoder *m, rhd_ctx *ctx);
void rhd_vae_encoder_free(rhd_vae_encoder *m);
/* Deterministic initialisation from a seed (Philox stream RHD_STREAM_PARAM_INIT, index = tensor
 * number): conv/linear weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's default
 * bounds), GroupNorm weight 1 and bias 0. Random features: only for tests and demos. */
void rhd_vae_encoder_init_random(rhd_vae_encoder *m, uint64_t seed);
/* Load every encoder tensor from st (decoder and quant_conv tensors are ignored). Messages name
 * the file and the tensor: missing (with the names tried), wrong shape (with the config that
 * implies the expected one), not a float dtype, a non-finite value. */
int rhd_vae_encoder_load(rhd_vae_encoder *m, const rhd_st *st, rhd_err *e);

/* Per-sample output shapes: out[0] moments, out[1..3] F0..F2, each {C, h, w}. */
void rhd_vae_encoder_shapes(const rhd_vae_encoder *m, int H, int W, int64_t out[4][3]);
/* 0 if an H x W input can be encoded (multiples of 8, at least 8), else -1 with a message. */
int rhd_vae_encoder_check_size(int H, int W, rhd_err *e);
/* Arena bytes the forward needs for N portraits of H x W. */
size_t rhd_vae_encoder_arena_bytes(const rhd_vae_encoder *m, int N, int H, int W);
/* moments (N,2L,H/8,W/8), f0 (N,C0,H/2,W/2), f1 (N,C1,H/4,W/4), f2 (N,C2,H/8,W/8) written from
 * x (N,in,H,W); all on ctx's side (device pointers on CUDA). Temporaries come from `a` and are
 * released before returning. */
void rhd_vae_encoder_forward(rhd_ctx *ctx, const rhd_vae_encoder *m, rhd_arena *a, float *moments, float *f0,
                             float *f1, float *f2, const float *x, int N, int H, int W);
/* Multiply-accumulates of one forward at H x W (per portrait), for benchmarks. */
double rhd_vae_encoder_macs(const rhd_vae_encoder *m, int H, int W);
#ifdef __cplusplus
}
#endif
#endif
