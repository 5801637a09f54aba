/* common/train_data.h: the training pairs of the diffusion trainer (tools/rhd-train.md): a fitted
 * triplane and the portrait features of the same avatar, found, validated and loaded.
 *
 * Pairs come from a list file (one pair per line "TRIPLANE FEATURES", paths relative to the
 * list's folder, '#' comments and blank lines ignored) or from two folders matched by stem
 * (<dir>/<name>.safetensors or <name>.npy in the triplane folder, <name>.safetensors in the
 * features folder). A pair's name is its triplane file name up to the first '.' (the original
 * cuts names there, spec diffusion.md §7.18); names must be unique (the random streams of a
 * pair are keyed by it).
 *
 * Triplanes: any layout formats/triplane_file.h reads (rhd-fit's safetensors, the original's
 * .npy [3,1,C,R,R], [3,C,R,R], rolled [C,R,3R]). One of another resolution than the model's R is
 * resized: "area" (the default: the mean of each f x f block, f = R_file / R an integer; the
 * natural anti-aliased reduction of a 512 fit to 128, and exact for block-constant planes) or
 * "bicubic" (a = -0.75, align_corners false, as rhd-render; any ratio, also up). The original
 * does not say how its 128 triplanes were made (spec §4). Features: formats/features.md
 * (moments [2 lc, L, L], ms_feature.0..2 [ch_i, S_i, S_i]) with the model config's sizes.
 *
 * Validation (rhd_train_data_validate) reads every pair once before training: a missing file,
 * a triplane with another channel count, a feature tensor missing or of another shape, or a NaN
 * or infinity in either is an error naming the file (and the tensor). */
#ifndef RHD_COMMON_TRAIN_DATA_H
#define RHD_COMMON_TRAIN_DATA_H
#include <stddef.h>
#include <stdint.h>
#include "common/err.h"
#include "common/models/unet.h"

typedef enum { RHD_DOWNSAMPLE_AREA = 0, RHD_DOWNSAMPLE_BICUBIC = 1 } rhd_downsample;

typedef struct rhd_train_pair {
    char *name;      /* stem of the triplane file */
    char *triplane;  /* path */
    char *features;  /* path */
} rhd_train_pair;

/* One loaded pair on the host, in the model's layout. */
typedef struct rhd_train_item {
    float *x0;                  /* [C, R, 3R] rolled triplane at the model's R */
    float *moments;             /* [2 lc, L, L] */
    float *F[RHD_UNET_FEATS];   /* [ch_i, S_i, S_i] */
} rhd_train_item;

typedef struct rhd_train_data {
    int n;
    rhd_train_pair *pair;
    /* sizes expected (from the model config) */
    int C, R, lc, L, fch[RHD_UNET_FEATS], fsz[RHD_UNET_FEATS];
    rhd_downsample down;
    /* cache of loaded items: kept while their total stays under cache_bytes */
    rhd_train_item *item;       /* [n], x0 NULL when not loaded */
    size_t cache_bytes, cached;
} rhd_train_data;

#ifdef __cplusplus
extern "C" {
#endif
const char *rhd_downsample_name(rhd_downsample d);
int rhd_downsample_parse(const char *s, rhd_downsample *d, rhd_err *e);
/* The pairs of a list file. */
int rhd_train_pairs_from_list(rhd_train_data *d, const char *list, rhd_err *e);
/* The pairs of two folders by stem: every triplane must have its features (and the reverse). */
int rhd_train_pairs_from_dirs(rhd_train_data *d, const char *tri_dir, const char *feat_dir, rhd_err *e);
/* Fix the expected sizes from a UNet config, the resize filter and the cache budget. */
void rhd_train_data_setup(rhd_train_data *d, const rhd_unet_config *c, rhd_downsample down, size_t cache_bytes);
/* Read and check pair i (cached as rhd_train_data_get does while the budget allows). */
int rhd_train_data_check(rhd_train_data *d, int i, rhd_err *e);
/* Check the pairs i with i % stride == first (every pair: 0, 1). */
int rhd_train_data_validate(rhd_train_data *d, int first, int stride, rhd_err *e);
/* Pair i loaded (from the cache or read now; *tmp set when the caller must free it with
 * rhd_train_item_free after use). */
int rhd_train_data_get(rhd_train_data *d, int i, rhd_train_item *out, int *tmp, rhd_err *e);
void rhd_train_item_free(rhd_train_item *it);
size_t rhd_train_item_bytes(const rhd_train_data *d);
void rhd_train_data_free(rhd_train_data *d);
/* Resize one plane stack [P, R0, R0] -> [P, R1, R1] by block means (R0 = f R1). */
void rhd_area_downsample(float *dst, const float *src, int64_t P, int R0, int R1);
#ifdef __cplusplus
}
#endif
#endif
