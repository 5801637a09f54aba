/* common/model_io.h: the model files of triplane fitting, read and written in one place:
 * the decoder (formats/decoder.md), triplanes (formats/triplane.md, through triplane_file.h),
 * IWC states (formats/iwc.md) and the stage-1 fit checkpoint (formats/checkpoint.md, model "fit").
 *
 * This module sits above the models (it fills an rhd_decoder from a file): models never open
 * files, tools and common/fit_run.c call these functions.
 *
 * Every reader checks what it reads: the kind, each tensor's presence, shape and dtype (by name),
 * and the values (a NaN or an infinity in a decoder, a triplane, an IWC state or an optimiser
 * moment is an error naming the file and the tensor). Sizes come from the file: a decoder's
 * channels, hidden and geometry widths from its tensor shapes, the triplane resolution it was
 * fitted at from rhd.triplane_res. Every writer writes to a temp file and renames it. */
#ifndef RHD_FORMATS_MODEL_IO_H
#define RHD_FORMATS_MODEL_IO_H
#include <stdint.h>
#include "common/models/decoder.h"
#include "common/triplane.h"
#include "formats/triplane_file.h"

/* What a decoder file says besides its parameters. */
typedef struct rhd_decoder_file_info {
    int triplane_res;        /* rhd.triplane_res (0: not recorded) */
    long long mean_count;    /* rhd.mean_count (0 if absent) */
    double mean_density;     /* rhd.mean_density (0 if absent) */
    float bound;             /* written into rhd.config (provenance) */
} rhd_decoder_file_info;

/* The stage-1 fit checkpoint's progress (strings malloc'd by the reader, see _free). */
typedef struct rhd_fit_checkpoint {
    int entries_done;        /* rhd.entries_done */
    long long step;          /* rhd.step: decoder optimiser steps done */
    uint64_t seed;           /* rhd.seed */
    char *plan;              /* rhd.plan: the plan's JSON text */
    char *records;           /* rhd.records: JSON array of per-entry results (may be NULL) */
    char *options;           /* rhd.options: JSON object of the options that decide the numbers (NULL in
                              * files written before it was recorded) */
} rhd_fit_checkpoint;

/* Provenance of an IWC state. */
typedef struct rhd_iwc_meta {
    const char *avatar;
    int round, entry, fisher_steps;
    const char *fisher;      /* rhd.fisher: "original" or "normalized" (NULL: "original") */
} rhd_iwc_meta;

#ifdef __cplusplus
extern "C" {
#endif
/* A decoder (kind decoder or checkpoint, or a converted file without rhd.kind) into dec on ctx,
 * with gradient and Adam buffers when with_grad; its configuration from the tensor shapes.
 * info may be NULL. */
int rhd_decoder_file_read(const char *path, rhd_ctx *ctx, int with_grad, rhd_decoder *dec,
                          rhd_decoder_file_info *info, rhd_err *e);
int rhd_decoder_file_write(const char *path, const rhd_decoder *dec, const rhd_decoder_file_info *info,
                           const char *tool, rhd_err *e);

/* A triplane file into the host triplane dst, whose C and R say what is expected: the channels
 * must match; another resolution is resized on the CPU (bicubic, a = -0.75, align_corners false,
 * as rhd-render) when resize, else an error naming both shapes and the options. entry may be
 * NULL. */
int rhd_triplane_load(const char *path, rhd_triplane *dst, int resize, int *entry, rhd_err *e);
/* A host triplane as safetensors with m (and, when also_npy and path ends in .safetensors, the
 * same planes as the original's .npy [3,1,C,R,R] beside it), or as .npy by the name. */
int rhd_triplane_save(const char *path, const rhd_triplane *t, const rhd_triplane_meta *m, int also_npy, rhd_err *e);

/* IWC state of one avatar: fisher and optpar [dec->P.total] (host), per decoder tensor. The
 * reader allocates *fisher and *optpar (free()) and checks shapes and values (fisher >= 0). */
int rhd_iwc_file_write(const char *path, const rhd_decoder *dec, const float *fisher, const float *optpar,
                       const rhd_iwc_meta *m, const char *tool, rhd_err *e);
int rhd_iwc_file_read(const char *path, const rhd_decoder *dec, float **fisher, float **optpar, int *entry,
                      rhd_err *e);

/* The stage-1 checkpoint: the decoder's parameters and Adam moments (dec made with_grad) plus
 * progress. The reader fills dec (its configuration must match the file's shapes) and *c. */
int rhd_fit_checkpoint_write(const char *path, const rhd_decoder *dec, const rhd_fit_checkpoint *c, const char *tool,
                             rhd_err *e);
int rhd_fit_checkpoint_read(const char *path, rhd_decoder *dec, rhd_fit_checkpoint *c, rhd_err *e);
void rhd_fit_checkpoint_free(rhd_fit_checkpoint *c);
#ifdef __cplusplus
}
#endif
#endif
