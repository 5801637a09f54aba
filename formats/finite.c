/* formats/finite.c: NaN/Inf counts and the value check of the readers (see finite.h). */
#include "formats/finite.h"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "formats/safetensors.h"

static void tally(double v, int64_t i, rhd_nonfinite *r) {
    if (isfinite(v)) return;
    if (isnan(v)) r->nan++;
    else if (v > 0) r->pinf++;
    else r->ninf++;
    if (r->first < 0) r->first = i;
}

void rhd_count_nonfinite(const void *data, rhd_dtype dt, int64_t n, rhd_nonfinite *r) {
    memset(r, 0, sizeof *r);
    r->first = -1;
    if (dt != RHD_F32 && dt != RHD_F16 && dt != RHD_BF16 && dt != RHD_F64) return;
    const char *p = data;
    size_t es = rhd_dtype_size(dt);
    enum { CHUNK = 4096 };
    float buf[CHUNK];
    for (int64_t i = 0; i < n; i += CHUNK) {
        int64_t k = n - i < CHUNK ? n - i : CHUNK;
        if (dt == RHD_F64) {
            for (int64_t j = 0; j < k; j++) {
                double v;
                memcpy(&v, p + (i + j) * es, sizeof v);
                tally(v, i + j, r);
            }
            continue;
        }
        if (dt == RHD_F32) memcpy(buf, p + i * es, (size_t)k * es); /* data may be unaligned */
        else {
            uint16_t raw[CHUNK];
            memcpy(raw, p + i * es, (size_t)k * es);
            rhd_convert_to_f32(buf, raw, dt, k);
        }
        for (int64_t j = 0; j < k; j++)
            if (!isfinite(buf[j])) tally(buf[j], i + j, r);
    }
}

int rhd_check_finite_dt(const char *file, const char *tensor, const void *data, rhd_dtype dt, int64_t n, rhd_err *e) {
    rhd_nonfinite r;
    rhd_count_nonfinite(data, dt, n, &r);
    if (r.first < 0) return 0;
    char where[600] = "";
    if (file && tensor) snprintf(where, sizeof where, "%.300s: tensor '%.250s': ", file, tensor);
    else if (file || tensor) snprintf(where, sizeof where, "%s%.300s%s: ", tensor ? "tensor '" : "", file ? file : tensor,
                                      tensor ? "'" : "");
    return rhd_errf(e, "%s%lld NaN, %lld +Inf, %lld -Inf of %lld values (first at flat index %lld), expected finite values",
                    where, (long long)r.nan, (long long)r.pinf, (long long)r.ninf, (long long)n, (long long)r.first);
}

int rhd_check_finite(const char *file, const char *tensor, const float *data, int64_t n, rhd_err *e) {
    return rhd_check_finite_dt(file, tensor, data, RHD_F32, n, e);
}

int rhd_st_check_finite(const struct rhd_st *st, rhd_err *e) {
    for (int i = 0; i < st->n; i++)
        if (rhd_check_finite_dt(st->name, st->t[i].name, st->t[i].data, st->t[i].dtype, st->t[i].numel, e)) return -1;
    return 0;
}
