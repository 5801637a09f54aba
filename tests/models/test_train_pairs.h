/* tests/models/test_train_pairs.h: random training pairs on disk for test_train.c and
 * bench_train.c: <dir>/tri/<name>.safetensors, a triplane [3, C, R, R] of N(0, std^2) values, and
 * <dir>/feat/<name>.safetensors, features of the sizes config c asks for (formats/features.md). */
#ifndef RHD_TEST_TRAIN_PAIRS_H
#define RHD_TEST_TRAIN_PAIRS_H
#include "refcheck.h"
#include "common/models/unet.h"
#include "formats/triplane_file.h"

/* Writes the pair; returns the planes (malloc'd) when keep, else NULL. Exits on a write error. */
static inline float *th_train_pair(const char *dir, const char *name, const rhd_unet_config *c, int R, float std, int keep) {
    rhd_triplane t = {0};
    rhd_triplane_alloc(&t, c->in_channels, R, 0, NULL);
    float *r = th_randn(rhd_triplane_numel(&t), std);
    memcpy(t.planes, r, rhd_triplane_bytes(&t));
    char path[1200];
    rhd_err e = {0};
    snprintf(path, sizeof path, "%s/tri/%s.safetensors", dir, name);
    if (rhd_triplane_file_write(path, &t, NULL, &e)) th_diag("%s", e.msg), exit(1);
    rhd_triplane_free(&t);
    rhd_st_writer w;
    rhd_st_writer_init(&w);
    int64_t sm[3] = {2 * c->latent_ch, c->latent_size, c->latent_size};
    float *v[4];
    v[0] = th_randn(sm[0] * sm[1] * sm[2], 1.f);
    rhd_st_add_f32(&w, "moments", RHD_F32, 3, sm, v[0]);
    for (int k = 0; k < 3; k++) {
        int64_t sf[3] = {c->feat_ch[k], c->feat_size[k], c->feat_size[k]};
        char nm[32];
        snprintf(nm, sizeof nm, "ms_feature.%d", k);
        v[k + 1] = th_randn(sf[0] * sf[1] * sf[2], 1.f);
        rhd_st_add_f32(&w, nm, RHD_F32, 3, sf, v[k + 1]);
    }
    snprintf(path, sizeof path, "%s/feat/%s.safetensors", dir, name);
    if (rhd_st_write(&w, path, &e)) th_diag("%s", e.msg), exit(1);
    rhd_st_writer_free(&w);
    for (int k = 0; k < 4; k++) free(v[k]);
    if (keep) return r;
    free(r);
    return NULL;
}
#endif
