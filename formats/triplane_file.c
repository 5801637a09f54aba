/* formats/triplane_file.c: see triplane_file.h. */
#include "formats/triplane_file.h"
#include <stdlib.h>
#include <string.h>
#include "formats/npy.h"
#include "formats/safetensors.h"
#include "formats/schema.h"

int rhd_triplane_file_read(const char *path, float **planes, int *C, int *R, int *entry, rhd_err *e) {
    if (entry) *entry = -1;
    size_t n = strlen(path);
    *planes = NULL;
    if (n >= 4 && !strcmp(path + n - 4, ".npy")) {
        rhd_npy a;
        if (rhd_npy_read(path, &a, e)) return -1;
        const int64_t *s = a.t.shape;
        int nd = a.t.ndim, ok = a.t.dtype == RHD_F32 || a.t.dtype == RHD_F16 || a.t.dtype == RHD_F64;
        char sh[128];
        rhd_shape_str(s, nd, sh, sizeof sh);
        int64_t numel = rhd_shape_numel(s, nd);
        if (ok && nd == 5 && s[0] == 3 && s[1] == 1 && s[3] == s[4]) *C = (int)s[2], *R = (int)s[3];
        else if (ok && nd == 4 && s[0] == 3 && s[2] == s[3]) *C = (int)s[1], *R = (int)s[2];
        else if (ok && nd == 3 && s[2] == 3 * s[1]) *C = (int)s[0], *R = (int)s[1];
        else {
            int r = rhd_errf(e, "%s: a %s array of shape %s, expected a triplane [3,1,C,R,R], [3,C,R,R] or [C,R,3R] of "
                                "float32/float16", path, rhd_dtype_name(a.t.dtype), sh);
            rhd_npy_free(&a);
            return r;
        }
        float *f = rhd_xmalloc(sizeof(float) * numel);
        rhd_convert_to_f32(f, a.t.data, a.t.dtype, numel);
        rhd_npy_free(&a);
        if (nd == 3) { /* [C, R, 3R]: split along the width, stack on the plane axis */
            int c = *C, r = *R;
            float *g = rhd_xmalloc(sizeof(float) * numel);
            for (int p = 0; p < 3; p++)
                for (int ch = 0; ch < c; ch++)
                    for (int i = 0; i < r; i++)
                        memcpy(&g[(((size_t)p * c + ch) * r + i) * r], &f[((size_t)ch * r + i) * 3 * r + (size_t)p * r],
                               sizeof(float) * r);
            free(f);
            f = g;
        }
        *planes = f;
        return 0;
    }
    rhd_st *st;
    if (rhd_st_open(path, &st, e)) return -1;
    const char *kind = rhd_st_meta(st, "rhd.kind");
    int rc = 0;
    if (kind && strcmp(kind, "triplane")) rc = rhd_errf(e, "%s: an rhd '%s' file, expected a triplane", path, kind);
    else if (kind) {
        rhd_dims d;
        rhd_dims_init(&d);
        rc = rhd_schema_check(st, "triplane", &d, e);
    }
    const rhd_st_tensor *t = rc ? NULL : rhd_st_find(st, "planes");
    if (!rc && (!t || t->ndim != 4 || t->shape[0] != 3 || t->shape[2] != t->shape[3])) {
        char sh[128] = "none";
        if (t) rhd_shape_str(t->shape, t->ndim, sh, sizeof sh);
        rc = rhd_errf(e, "%s: tensor 'planes' has shape %s, expected [3,C,R,R] (a triplane)", path, sh);
    }
    if (!rc) {
        *C = (int)t->shape[1], *R = (int)t->shape[2];
        *planes = rhd_xmalloc(sizeof(float) * t->numel);
        rhd_st_to_f32(t, *planes);
        const char *en = rhd_st_meta(st, "rhd.entry");
        if (entry && en) *entry = atoi(en);
    }
    rhd_st_close(st);
    return rc;
}
