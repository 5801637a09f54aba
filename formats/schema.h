/* formats/schema.h: what each rhd file kind must contain, and a validator that says precisely
 * what is wrong.
 *
 * Every rhd tensor file is a safetensors container whose __metadata__ holds "rhd.kind" and
 * "rhd.version" (see formats/README.md for the common keys). A kind declares its tensors with
 * symbolic shapes, e.g. "planes" with shape "3,C,R,R": each letter is a dimension variable bound
 * on first use and required to agree everywhere after; digits are fixed sizes. A caller can bind
 * variables beforehand (R=128) to demand a size. Messages look like
 *   features/a.safetensors: tensor 'ms_feature.1' has shape [256,32,30], expected [256,32,32] (h=16)
 * The page formats/<kind>.md documents each kind. */
#ifndef RHD_SCHEMA_H
#define RHD_SCHEMA_H
#include "formats/safetensors.h"

#define RHD_DT(t) (1u << (t))
#define RHD_DT_FLOAT (RHD_DT(RHD_F32) | RHD_DT(RHD_F16) | RHD_DT(RHD_BF16))

typedef struct rhd_schema_tensor {
    const char *name;
    unsigned dtypes;     /* mask of RHD_DT(dtype) */
    const char *shape;   /* "3,C,R,R" */
    int optional;
} rhd_schema_tensor;

typedef struct rhd_schema {
    const char *kind;
    int version;
    const char *description;
    const rhd_schema_tensor *tensors; /* terminated by {NULL} */
    const char *const *meta;          /* required metadata keys besides rhd.kind/rhd.version */
    int allow_extra;                  /* other tensors allowed (checkpoints) */
} rhd_schema;

/* Symbolic dimension bindings, one per letter A-Z and a-z. */
typedef struct rhd_dims {
    int64_t v[52];
    unsigned char set[52];
} rhd_dims;

#ifdef __cplusplus
extern "C" {
#endif
const rhd_schema *rhd_schema_find(const char *kind);
const rhd_schema *const *rhd_schema_all(void); /* NULL-terminated */
void rhd_dims_init(rhd_dims *d);
void rhd_dims_bind(rhd_dims *d, char var, int64_t value);
int64_t rhd_dims_get(const rhd_dims *d, char var); /* -1 if unbound */
/* Check a file against its kind. If `expect_kind` is non-NULL the file must be of that kind.
 * dims may be NULL; when given, it carries pre-bound sizes in and the bound sizes out. */
int rhd_schema_check(const rhd_st *st, const char *expect_kind, rhd_dims *dims, rhd_err *e);
/* Check one tensor against a symbolic shape. */
int rhd_schema_check_tensor(const rhd_st *st, const rhd_schema_tensor *s, rhd_dims *dims, rhd_err *e);
/* Set rhd.kind, rhd.version, rhd.tool ("rhd-x 0.1.0") on a writer. */
void rhd_schema_stamp(rhd_st_writer *w, const char *kind, const char *tool);
#ifdef __cplusplus
}
#endif
#endif
