/* tests/kernels/test_occgrid.c: the occupancy grid (kernels/occgrid.h).
 * (a) Morton codes against the NumPy reference's bit loop, and the inverse;
 * (b) update sequences against tests/ref/ref_march.py (grid_seq): mark_untrained with a few
 *     cameras, full updates, then partial updates, on a synthetic sphere density that the
 *     reference evaluates at its query points, after checking that our query points and cells
 *     are bitwise the same. Per update: the grid and the bitfield must be identical and the mean
 *     density equal to 1e-12. Cases: H=32 C=1 (3 full + 3 partial, chunked and reverse-chunked
 *     application), H=16 C=2 bound=2, and the partial update with no occupied cell (§12.12);
 * (c) step counters and mean_count (§3.4 step 7);
 * (d) the whole sequence with 1, 2 and 3 threads: bit-identical;
 * (e) CUDA vs CPU on the same sequence when a device is present. */
#include "refcheck.h"
#include "kernels/occgrid.h"
#include "common/cameras_path.h"
#include <omp.h>

static rhd_ctx *cpu;

static void save_t(const char *dir, const char *name, rhd_dtype dt, const void *data, int ndim, const int64_t *shape) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    rhd_tensor t = {dt, ndim, {0}, (void *)data};
    memcpy(t.shape, shape, sizeof(int64_t) * ndim);
    rhd_err e;
    if (rhd_npy_write(path, &t, &e)) { fprintf(stderr, "%s\n", e.msg); exit(1); }
}

static void *load_t(const char *dir, const char *name, rhd_dtype dt, int64_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    rhd_npy a;
    rhd_err e;
    if (rhd_npy_read(path, &a, &e)) { th_diag("%s", e.msg); return NULL; }
    int64_t numel = rhd_shape_numel(a.t.shape, a.t.ndim);
    if (a.t.dtype != dt || numel != n) {
        th_diag("%s: dtype %s numel %lld, expected %s with %lld", path, rhd_dtype_name(a.t.dtype), (long long)numel,
                rhd_dtype_name(dt), (long long)n);
        rhd_npy_free(&a);
        return NULL;
    }
    return a.buf;
}

/* Bytewise equality (floats bitwise), reporting the count of differing elements of size sz. */
static int same_bytes(const char *name, const void *got, const void *ref, int64_t n, size_t sz) {
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n && ref; i++)
        if (memcmp((const char *)got + i * sz, (const char *)ref + i * sz, sz)) {
            if (first < 0) first = i;
            bad++;
        }
    int ok = ref && bad == 0;
    th_ok(ok, "%s: n=%lld, %lld differ", name, (long long)n, (long long)bad);
    if (!ok && first >= 0) {
        if (sz == 4) th_diag("  first at [%lld]: got %.9g / %d, ref %.9g / %d", (long long)first,
                             ((const float *)got)[first], ((const int32_t *)got)[first], ((const float *)ref)[first],
                             ((const int32_t *)ref)[first]);
        else th_diag("  first at [%lld]: got 0x%02x ref 0x%02x", (long long)first, ((const uint8_t *)got)[first],
                     ((const uint8_t *)ref)[first]);
    }
    return ok;
}

/* ---- (a) Morton ---- */

static void test_morton(void) {
    const char *dir = th_subdir("morton");
    int64_t n = 2000;
    float *r = th_randu(3 * n, 0.f, 1024.f);
    int32_t *xyz = malloc(sizeof(int32_t) * 3 * n), *code = malloc(sizeof(int32_t) * n);
    for (int64_t i = 0; i < 3 * n; i++) xyz[i] = (int32_t)r[i] > 1023 ? 1023 : (int32_t)r[i];
    int32_t fixed[][3] = {{0, 0, 0}, {1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1023, 1023, 1023}, {255, 0, 255}, {512, 1, 2}};
    memcpy(xyz, fixed, sizeof fixed);
    int bad_inv = 0;
    for (int64_t i = 0; i < n; i++) {
        code[i] = (int32_t)rhd_morton3((uint32_t)xyz[3 * i], (uint32_t)xyz[3 * i + 1], (uint32_t)xyz[3 * i + 2]);
        uint32_t x, y, z;
        rhd_morton3_inv((uint32_t)code[i], &x, &y, &z);
        bad_inv += (int)x != xyz[3 * i] || (int)y != xyz[3 * i + 1] || (int)z != xyz[3 * i + 2];
    }
    save_t(dir, "xyz", RHD_I32, xyz, 2, (int64_t[]){n, 3});
    if (th_ref("ref_march.py", "morton %s", dir)) {
        th_ok(0, "morton reference ran");
    } else {
        int32_t *ref = load_t(dir, "code", RHD_I32, n);
        same_bytes("morton3 vs bit loop (10 bits per axis)", code, ref, n, 4);
        free(ref);
    }
    th_ok(bad_inv == 0 && code[1] == 1 && code[2] == 2 && code[3] == 4 && code[4] == (1 << 30) - 1,
          "morton3_inv round trip (%d wrong); bit 3b = x, 3b+1 = y, 3b+2 = z", bad_inv);
    free(r), free(xyz), free(code);
}

/* ---- (b) update sequences ---- */

typedef struct {
    const char *label;
    rhd_occgrid_cfg cfg;
    int steps, mark, n_poses;
    const char *dens;
    uint64_t seed;
    int64_t chunk;
    float poses[8 * 12];
    rhd_intrinsics intr;
    char dir[1024];
    /* the reference's per-step densities, kept for the replays */
    float *sigma[8];
    int64_t nq[8];
    /* the CPU result of the replay with 2 threads, for the CUDA comparison */
    float *grid_final, *xyz0;
    uint8_t *bits_final;
    int32_t *cells_last;
} seq_case;

/* Run the sequence on ctx with the densities sigma[k] (host); per step, optionally compare with
 * the reference's files. Returns the final grid and bitfield (host, malloc'd). */
static void run_seq(rhd_ctx *ctx, seq_case *s, int compare, float **grid_out, uint8_t **bits_out, float **xyz0_out,
                    int32_t **cells_last_out) {
    rhd_err e;
    rhd_occgrid g;
    if (rhd_occgrid_init(ctx, &g, &s->cfg, &e)) {
        th_ok(0, "%s: init: %s", s->label, e.msg);
        return;
    }
    int64_t n = g.n_cells;
    float *grid = malloc(sizeof(float) * n);
    uint8_t *bits = malloc((size_t)n / 8);
    char name[256];
    if (s->mark) rhd_occgrid_mark_untrained(ctx, &g, s->poses, s->n_poses, s->intr);
    if (compare) {
        rhd_buf_download(ctx, grid, g.density, sizeof(float) * n);
        float *ref = load_t(s->dir, "marked", RHD_F32, n);
        int64_t unseen = 0;
        for (int64_t i = 0; i < n; i++) unseen += grid[i] < 0;
        snprintf(name, sizeof name, "%s: mark_untrained (%d cameras, %lld of %lld cells unseen)", s->label, s->n_poses,
                 (long long)unseen, (long long)n);
        same_bytes(name, grid, ref, n, 4);
        free(ref);
    }
    for (int k = 0; k < s->steps; k++) {
        int full = g.iter_density < s->cfg.full_updates;
        int64_t nq = rhd_occgrid_begin_update(ctx, &g, s->seed);
        size_t fb = sizeof(float) * (size_t)nq;
        float *xyz = rhd_buf_alloc(ctx, 3 * fb), *sig = rhd_buf_alloc(ctx, fb);
        int32_t *cells = rhd_buf_alloc(ctx, sizeof(int32_t) * (size_t)nq);
        float *hxyz = malloc(3 * fb);
        int32_t *hcells = malloc(sizeof(int32_t) * nq);
        /* queries in chunks (reverse order on odd steps: any order is allowed) */
        int64_t chunk = s->chunk > 0 ? s->chunk : nq;
        int64_t nch = (nq + chunk - 1) / chunk;
        for (int64_t c = 0; c < nch; c++) {
            int64_t j = k % 2 ? nch - 1 - c : c, q0 = j * chunk, m = nq - q0 < chunk ? nq - q0 : chunk;
            rhd_occgrid_queries(ctx, &g, xyz + 3 * q0, cells + q0, q0, m);
        }
        rhd_buf_download(ctx, hxyz, xyz, 3 * fb);
        rhd_buf_download(ctx, hcells, cells, sizeof(int32_t) * nq);
        if (compare) {
            char nm[32];
            snprintf(nm, sizeof nm, "xyz_%d", k);
            float *rx = load_t(s->dir, nm, RHD_F32, 3 * nq);
            snprintf(nm, sizeof nm, "cells_%d", k);
            int32_t *rc = load_t(s->dir, nm, RHD_I32, nq);
            snprintf(nm, sizeof nm, "sigma_%d", k);
            s->sigma[k] = load_t(s->dir, nm, RHD_F32, nq);
            s->nq[k] = nq;
            snprintf(name, sizeof name, "%s: update %d (%s, %lld queries) query cells", s->label, k, full ? "full" : "partial",
                     (long long)nq);
            same_bytes(name, hcells, rc, nq, 4);
            snprintf(name, sizeof name, "%s: update %d query points (jitter U(-hgs,hgs)^3)", s->label, k);
            same_bytes(name, hxyz, rx, 3 * nq, 4);
            free(rx), free(rc);
        }
        if (!s->sigma[k] || s->nq[k] != nq) {
            th_ok(0, "%s: update %d: no reference densities for %lld queries", s->label, k, (long long)nq);
            rhd_occgrid_end_update(ctx, &g);
            break;
        }
        rhd_buf_upload(ctx, sig, s->sigma[k], fb);
        for (int64_t c = 0; c < nch; c++) {
            int64_t j = k % 2 ? c : nch - 1 - c, q0 = j * chunk, m = nq - q0 < chunk ? nq - q0 : chunk;
            rhd_occgrid_apply(ctx, &g, sig + q0, cells + q0, q0, m);
        }
        rhd_occgrid_end_update(ctx, &g);
        if (k == 0 && xyz0_out) *xyz0_out = hxyz, hxyz = NULL;
        if (k == s->steps - 1 && cells_last_out) *cells_last_out = hcells, hcells = NULL;
        rhd_buf_download(ctx, grid, g.density, sizeof(float) * n);
        rhd_buf_download(ctx, bits, g.bitfield, (size_t)n / 8);
        if (compare) {
            char nm[32];
            snprintf(nm, sizeof nm, "grid_%d", k);
            float *rg = load_t(s->dir, nm, RHD_F32, n);
            snprintf(nm, sizeof nm, "bits_%d", k);
            uint8_t *rb = load_t(s->dir, nm, RHD_U8, n / 8);
            snprintf(nm, sizeof nm, "mean_%d", k);
            float *rm = load_t(s->dir, nm, RHD_F32, 2);
            int64_t occ = 0;
            for (int64_t i = 0; i < n; i++) occ += (bits[i / 8] >> (i % 8)) & 1;
            snprintf(name, sizeof name, "%s: update %d grid (EMA-max, decay %g)", s->label, k, s->cfg.decay);
            same_bytes(name, grid, rg, n, 4);
            snprintf(name, sizeof name, "%s: update %d bitfield (%lld occupied, thr %.6g)", s->label, k, (long long)occ,
                     rhd_occgrid_threshold(&g));
            same_bytes(name, bits, rb, n / 8, 1);
            double rmean = rm ? (double)rm[0] + rm[1] : NAN;
            th_ok(fabs(g.mean_density - rmean) <= 1e-12 * fabs(rmean) && g.iter_density == k + 1,
                  "%s: update %d mean density %.12g (ref %.12g), iter_density %d", s->label, k, g.mean_density, rmean,
                  g.iter_density);
            free(rg), free(rb), free(rm);
        }
        rhd_buf_free(ctx, xyz), rhd_buf_free(ctx, sig), rhd_buf_free(ctx, cells);
        free(hxyz), free(hcells);
    }
    *grid_out = grid, *bits_out = bits;
    rhd_occgrid_free(ctx, &g);
}

static void prep_seq(seq_case *s, char *jobs, size_t jn) {
    char sub[64];
    snprintf(sub, sizeof sub, "grid_%s", s->label);
    for (char *p = sub; *p; p++)
        if (*p == ' ' || *p == '=') *p = '_';
    snprintf(s->dir, sizeof s->dir, "%s", th_subdir(sub));
    if (s->mark) {
        float intr[4] = {s->intr.fx, s->intr.fy, s->intr.cx, s->intr.cy};
        save_t(s->dir, "poses", RHD_F32, s->poses, 2, (int64_t[]){s->n_poses, 12});
        save_t(s->dir, "intr", RHD_F32, intr, 1, (int64_t[]){4});
    }
    size_t l = strlen(jobs);
    snprintf(jobs + l, jn - l, "%sgrid_seq %s %d %d %.9g %.9g %.9g %d %llu %d %s %d", l ? " + " : "", s->dir, s->cfg.H,
             s->cfg.C, s->cfg.bound, s->cfg.decay, s->cfg.density_thresh, s->cfg.full_updates,
             (unsigned long long)s->seed, s->steps, s->dens, s->mark);
}

/* ---- (c) counters ---- */

static void zero_density(rhd_ctx *ctx, float *sigma, const float *xyz, int64_t n, void *user) {
    rhd_buf_zero(ctx, sigma, sizeof(float) * (size_t)n);
}

static void test_step_counters(void) {
    rhd_err e;
    rhd_occgrid_cfg cfg = rhd_occgrid_cfg_default();
    cfg.H = 8;
    rhd_occgrid g;
    RHD_ASSERT(rhd_occgrid_init(cpu, &g, &cfg, &e) == 0);
    rhd_occgrid_update(cpu, &g, 1, 100, zero_density, NULL);
    int ok0 = g.mean_count == 0 && g.local_step == 0;
    for (int k = 0; k < 5; k++) rhd_occgrid_record_step(&g, 1000 + 7 * k, 4096);
    rhd_occgrid_update(cpu, &g, 1, 100, zero_density, NULL);
    int64_t want5 = (int64_t)((1000.0 + 1007 + 1014 + 1021 + 1028) / 5);
    int ok5 = g.mean_count == want5 && g.local_step == 0 && g.step_counter[4][1] == 4096;
    /* 20 steps: the counter wraps, the mean is over the 16 rows */
    double s = 0;
    for (int k = 0; k < 20; k++) rhd_occgrid_record_step(&g, 3 * k + 1, 4096);
    for (int r = 0; r < 16; r++) s += (double)g.step_counter[r][0];
    rhd_occgrid_update(cpu, &g, 1, 100, zero_density, NULL);
    int ok20 = g.mean_count == (int64_t)(s / 16) && g.step_counter[0][0] == 3 * 16 + 1;
    /* no steps since the last update: mean_count is kept */
    int64_t keep = g.mean_count;
    rhd_occgrid_update(cpu, &g, 1, 100, zero_density, NULL);
    th_ok(ok0 && ok5 && ok20 && g.mean_count == keep,
          "step counters: mean_count after 0/5/20/0 steps = 0/%lld/%lld/%lld (expected 0/%lld/%lld/same)",
          (long long)want5, (long long)(int64_t)(s / 16), (long long)g.mean_count, (long long)want5,
          (long long)(int64_t)(s / 16));
    rhd_occgrid_reset(cpu, &g);
    th_ok(g.iter_density == 0 && g.mean_count == 0 && g.local_step == 0 && g.mean_density == 0 && g.step_counter[0][0] == 0,
          "reset_extra_state zeroes the counters");
    rhd_occgrid_free(cpu, &g);
    rhd_occgrid_cfg bad = rhd_occgrid_cfg_default();
    bad.H = 24;
    th_ok(rhd_occgrid_init(cpu, &g, &bad, &e) == -1 && strstr(e.msg, "grid size 24"), "grid size not a power of two rejected: %s", e.msg);
}

int main(void) {
    rhd_err e;
    cpu = rhd_ctx_open("cpu", &e);
    omp_set_num_threads(2);
    test_morton();

    static seq_case cases[3];
    /* H=32: 3 full and 3 partial updates after marking with 5 narrow cameras */
    seq_case *a = &cases[0];
    a->label = "H=32 C=1";
    a->cfg = rhd_occgrid_cfg_default();
    a->cfg.H = 32, a->cfg.full_updates = 3;
    a->steps = 6, a->mark = 1, a->n_poses = 5, a->dens = "sphere", a->seed = th_seed() ^ 0x5eed, a->chunk = 10007;
    a->intr = (rhd_intrinsics){200.f, 200.f, 64.f, 64.f}; /* half-angle ~ 17.7 degrees: the corners stay unseen */
    double target[3] = {0, 0, 0};
    RHD_ASSERT(rhd_camera_orbit(a->poses, 5, 2.6, 15, target, &e) == 0);
    /* H=16, two cascades (bound 2): 1 full update then 2 partial */
    seq_case *b = &cases[1];
    b->label = "H=16 C=2 bound=2";
    b->cfg = rhd_occgrid_cfg_default();
    b->cfg.H = 16, b->cfg.C = 2, b->cfg.bound = 2.f, b->cfg.full_updates = 1;
    b->steps = 3, b->mark = 1, b->n_poses = 3, b->dens = "sphere", b->seed = th_seed() + 3, b->chunk = 0;
    b->intr = (rhd_intrinsics){100.f, 90.f, 50.f, 45.f};
    RHD_ASSERT(rhd_camera_orbit(b->poses, 3, 3.5, 30, target, &e) == 0);
    /* no occupied cell at the partial update: the guard of §12.12 (only the random half) */
    seq_case *c = &cases[2];
    c->label = "H=16 empty";
    c->cfg = rhd_occgrid_cfg_default();
    c->cfg.H = 16, c->cfg.full_updates = 1;
    c->steps = 2, c->mark = 0, c->dens = "zero", c->seed = th_seed() + 5, c->chunk = 999;

    char jobs[8192] = "";
    for (int k = 0; k < 3; k++) prep_seq(&cases[k], jobs, sizeof jobs);
    if (th_ref("ref_march.py", "%s", jobs)) {
        th_ok(0, "the NumPy reference ran");
        return th_done();
    }
    float *xyz0 = NULL;
    int32_t *cells_last = NULL;
    for (int k = 0; k < 3; k++) {
        float *grid;
        uint8_t *bits;
        run_seq(cpu, &cases[k], 1, &grid, &bits, k == 2 ? NULL : &xyz0, k == 2 ? &cells_last : NULL);
        free(grid), free(bits);
        if (xyz0) free(xyz0), xyz0 = NULL;
    }
    {
        int64_t H3 = 16 * 16 * 16;
        th_ok(cases[2].nq[1] == H3 / 4, "empty grid: the partial update has only the %lld random queries (got %lld)",
              (long long)(H3 / 4), (long long)cases[2].nq[1]);
        free(cells_last);
    }
    /* (d) threads: 1 thread against 2 threads on the same sequences */
    for (int k = 0; k < 2; k++) {
        float *g1, *g2, *g3;
        uint8_t *b1, *b2, *b3;
        omp_set_num_threads(1);
        run_seq(cpu, &cases[k], 0, &g1, &b1, NULL, NULL);
        omp_set_num_threads(3);
        run_seq(cpu, &cases[k], 0, &g3, &b3, NULL, NULL);
        omp_set_num_threads(2);
        run_seq(cpu, &cases[k], 0, &g2, &b2, &cases[k].xyz0, &cases[k].cells_last);
        int64_t n = (int64_t)cases[k].cfg.C * cases[k].cfg.H * cases[k].cfg.H * cases[k].cfg.H;
        th_ok(!memcmp(g1, g2, sizeof(float) * n) && !memcmp(b1, b2, (size_t)n / 8) &&
                  !memcmp(g3, g2, sizeof(float) * n) && !memcmp(b3, b2, (size_t)n / 8),
              "%s: whole sequence with 1, 2 and 3 threads bit-identical", cases[k].label);
        cases[k].grid_final = g2, cases[k].bits_final = b2;
        free(g1), free(b1), free(g3), free(b3);
    }
    test_step_counters();
    /* (e) CUDA */
    if (!rhd_cuda_available()) {
        th_skip("no CUDA device (occupancy grid cpu~cuda)");
    } else {
        rhd_ctx *gpu = rhd_ctx_open("cuda", &e);
        for (int k = 0; k < 2; k++) {
            float *g;
            uint8_t *b;
            float *x0;
            int32_t *cl;
            run_seq(gpu, &cases[k], 0, &g, &b, &x0, &cl);
            int64_t n = (int64_t)cases[k].cfg.C * cases[k].cfg.H * cases[k].cfg.H * cases[k].cfg.H;
            char name[128];
            snprintf(name, sizeof name, "%s: first update's query points cpu~cuda", cases[k].label);
            same_bytes(name, x0, cases[k].xyz0, 3 * cases[k].nq[0], 4);
            snprintf(name, sizeof name, "%s: last update's query cells cpu~cuda", cases[k].label);
            same_bytes(name, cl, cases[k].cells_last, cases[k].nq[cases[k].steps - 1], 4);
            free(x0), free(cl);
            snprintf(name, sizeof name, "%s: grid cpu~cuda", cases[k].label);
            same_bytes(name, g, cases[k].grid_final, n, 4);
            snprintf(name, sizeof name, "%s: bitfield cpu~cuda", cases[k].label);
            same_bytes(name, b, cases[k].bits_final, n / 8, 1);
            free(g), free(b);
        }
        rhd_ctx_close(gpu);
    }
    for (int k = 0; k < 3; k++) {
        for (int j = 0; j < 8; j++) free(cases[k].sigma[j]);
        free(cases[k].grid_final), free(cases[k].bits_final), free(cases[k].xyz0), free(cases[k].cells_last);
    }
    rhd_ctx_close(cpu);
    return th_done();
}
