/* tests/unit/test_mesh.c: common/mesh (marching cubes, topology, volume, colours, PLY).
 *
 *  1. analytic spheres (signed distance and a Gaussian density blob at the fitter's threshold 10):
 *     closed, consistently oriented meshes (every edge used by exactly two triangles in opposite
 *     directions) with Euler characteristic 2, whose divergence-theorem volume is within 1% of 4/3 pi r^3;
 *  2. a torus (genus 1): closed, Euler characteristic 0, volume within 1% of 2 pi^2 R r^2;
 *  3. random noise fields (every ambiguous face and cell configuration shows up): still closed
 *     and oriented with `close`; a sphere cut by the box is open without `close`, closed with it;
 *  4. vertex colours from a callback, rounded to uchar;
 *  5. the PLY file read by plyfile (tests/ref/ref_ply.py): binary little-endian, the same counts,
 *     positions, colours and faces;
 *  6. errors: absurd resolutions, a bad box, a NaN field value (naming the point), a failing
 *     callback, an unwritable path. */
#include "refcheck.h"
#include "common/mesh.h"

typedef struct {
    int kind;        /* 0 sdf sphere, 1 gaussian density, 2 torus, 3 noise, 4 nan at a point, 5 fail */
    double c[3], r, R, s;
    float *noise;    /* kind 3: res^3 values */
    int res;
    long calls;
} field_t;

static int field(void *user, float *out, const float *xyz, long n, rhd_err *e) {
    field_t *f = user;
    f->calls++;
    if (f->kind == 5 && f->calls == 3) return rhd_errf(e, "decoder exploded");
    for (long i = 0; i < n; i++) {
        double x = xyz[3 * i] - f->c[0], y = xyz[3 * i + 1] - f->c[1], z = xyz[3 * i + 2] - f->c[2];
        double r = sqrt(x * x + y * y + z * z);
        switch (f->kind) {
        case 0: out[i] = (float)(f->r - r); break;
        case 1: out[i] = (float)(50.0 * exp(-r * r / (2 * f->s * f->s))); break;
        case 2: {
            double q = sqrt(x * x + z * z) - f->R;
            out[i] = (float)(f->r - sqrt(q * q + y * y));
            break;
        }
        case 3: {
            /* grid index from the position on [-1,1] */
            int gi = (int)lround((xyz[3 * i] + 1) / 2 * (f->res - 1)), gj = (int)lround((xyz[3 * i + 1] + 1) / 2 * (f->res - 1)),
                gk = (int)lround((xyz[3 * i + 2] + 1) / 2 * (f->res - 1));
            out[i] = f->noise[((long)gk * f->res + gj) * f->res + gi];
            break;
        }
        case 4: out[i] = (f->calls == 5 && i == 7) ? NAN : (float)(0.5 - r); break;
        default: out[i] = (float)(0.5 - r);
        }
    }
    return 0;
}

static int color(void *user, float *rgb, const float *xyz, long n, rhd_err *e) {
    for (long i = 0; i < n; i++) {
        rgb[3 * i] = (xyz[3 * i] + 1) / 2;
        rgb[3 * i + 1] = 1.5f;       /* clamped to 255 */
        rgb[3 * i + 2] = -0.25f;     /* clamped to 0 */
    }
    return 0;
}

static int closed(const rhd_mesh *m, const char *what) {
    rhd_mesh_topology t;
    rhd_mesh_topology_of(m, &t);
    return th_ok(m->nt > 0 && t.boundary == 0 && t.nonmanifold == 0 && t.misoriented == 0,
                 "%s: closed and oriented (%ld vertices, %ld triangles, %ld edges: %ld boundary, %ld non-manifold, "
                 "%ld misoriented, %ld degenerate triangles)",
                 what, m->nv, m->nt, t.edges, t.boundary, t.nonmanifold, t.misoriented, t.degenerate);
}

static void volume_case(field_t *f, int res, double thr, double expect, int euler, const char *what) {
    rhd_mesh_params p;
    rhd_mesh_params_init(&p);
    p.res = res;
    p.threshold = thr;
    rhd_mesh m;
    rhd_err e;
    char name[160];
    snprintf(name, sizeof name, "%s res %d", what, res);
    if (rhd_mesh_extract(&m, &p, field, f, &e)) {
        th_ok(0, "%s: %s", name, e.msg);
        return;
    }
    closed(&m, name);
    rhd_mesh_topology t;
    rhd_mesh_topology_of(&m, &t);
    long chi = m.nv - t.edges + m.nt;
    th_ok(chi == euler, "%s: Euler characteristic V - E + F = %ld, expected %d", name, chi, euler);
    double v = rhd_mesh_volume(&m), rel = fabs(v - expect) / expect;
    th_ok(rel <= 0.01, "%s: volume %.6f, analytic %.6f, rel err %.2e (<= 1e-2)", name, v, expect, rel);
    rhd_mesh_free(&m);
}

int main(void) {
    rhd_err e;
    /* 1 */
    field_t sph = {.kind = 0, .c = {0.031, -0.027, 0.013}, .r = 0.6};
    double vs = 4.0 / 3.0 * M_PI * 0.6 * 0.6 * 0.6;
    volume_case(&sph, 48, 0.0, vs, 2, "sdf sphere r 0.6");
    volume_case(&sph, 128, 0.0, vs, 2, "sdf sphere r 0.6");
    field_t gau = {.kind = 1, .c = {-0.05, 0.02, 0.04}, .s = 0.3};
    double rg = 0.3 * sqrt(2 * log(5.0)); /* 50 exp(-r^2/2s^2) = 10 */
    volume_case(&gau, 128, 10.0, 4.0 / 3.0 * M_PI * rg * rg * rg, 2, "gaussian density sphere (threshold 10)");
    /* 2 */
    field_t tor = {.kind = 2, .c = {0.01, 0.02, -0.015}, .R = 0.55, .r = 0.2};
    volume_case(&tor, 128, 0.0, 2 * M_PI * M_PI * 0.55 * 0.2 * 0.2, 0, "torus R 0.55 r 0.2");

    /* 3 */
    for (int trial = 0; trial < 4; trial++) {
        int res = 12 + 3 * trial;
        field_t nz = {.kind = 3, .res = res};
        nz.noise = th_randn((long)res * res * res, 1.0f);
        rhd_mesh_params p;
        rhd_mesh_params_init(&p);
        p.res = res;
        p.threshold = trial & 1 ? 0.3 : 0.0;
        rhd_mesh m;
        char name[96];
        snprintf(name, sizeof name, "noise field res %d threshold %.1f (closed at the box)", res, p.threshold);
        if (rhd_mesh_extract(&m, &p, field, &nz, &e)) th_ok(0, "%s: %s", name, e.msg);
        else {
            closed(&m, name);
            th_ok(rhd_mesh_volume(&m) > 0, "%s: positive volume %.4f (outward normals)", name, rhd_mesh_volume(&m));
            rhd_mesh_free(&m);
        }
        free(nz.noise);
    }
    {
        field_t cut = {.kind = 0, .c = {0.8, 0.1, -0.1}, .r = 0.5};
        rhd_mesh_params p;
        rhd_mesh_params_init(&p);
        p.res = 40;
        p.threshold = 0;
        p.close = 0;
        rhd_mesh m;
        rhd_mesh_topology t;
        int rc = rhd_mesh_extract(&m, &p, field, &cut, &e);
        rhd_mesh_topology_of(&m, &t);
        th_ok(rc == 0 && t.boundary > 0 && t.nonmanifold == 0 && t.misoriented == 0,
              "sphere cut by the box, close off: open along the box (%ld boundary edges), otherwise manifold", t.boundary);
        rhd_mesh_free(&m);
        p.close = 1;
        rc = rhd_mesh_extract(&m, &p, field, &cut, &e);
        if (rc == 0) closed(&m, "sphere cut by the box, close on");
        else th_ok(0, "cut sphere: %s", e.msg);
        rhd_mesh_free(&m);
    }

    /* 4, 5 */
    {
        rhd_mesh_params p;
        rhd_mesh_params_init(&p);
        p.res = 20;
        p.threshold = 0;
        rhd_mesh m;
        int rc = rhd_mesh_extract(&m, &p, field, &sph, &e);
        rc = rc || rhd_mesh_color(&m, color, NULL, 100, &e);
        int okc = rc == 0;
        for (long i = 0; i < m.nv && okc; i++) {
            int r = (int)floorf((m.xyz[3 * i] + 1) / 2 * 255.0f + 0.5f);
            okc = m.rgb[3 * i] == r && m.rgb[3 * i + 1] == 255 && m.rgb[3 * i + 2] == 0;
        }
        th_ok(okc, "vertex colours from the callback in batches of 100, clamped and rounded (%ld vertices)", m.nv);
        const char *dir = th_subdir("ply");
        char path[1200];
        snprintf(path, sizeof path, "%s/sphere.ply", dir);
        rc = rhd_ply_write(path, &m, "test sphere\nsecond line", &e);
        th_ok(rc == 0, "PLY written: %s", rc ? e.msg : path);
        if (th_ref("ref_ply.py", "%s %s", path, dir) == 0) {
            float *info = th_load(dir, "info", 3), *xyz = th_load(dir, "xyz", 3 * m.nv), *rgb = th_load(dir, "rgb", 3 * m.nv),
                  *fc = th_load(dir, "faces", 3 * m.nt);
            th_ok(info && info[0] == m.nv && info[1] == m.nt && info[2] == 1, "plyfile reads a binary little-endian PLY with %ld vertices and %ld faces", m.nv, m.nt);
            int same = xyz && rgb && fc;
            for (long i = 0; same && i < 3 * m.nv; i++) same = xyz[i] == m.xyz[i] && rgb[i] == m.rgb[i];
            for (long i = 0; same && i < 3 * m.nt; i++) same = fc[i] == (float)m.tri[i];
            th_ok(same, "plyfile sees the same positions, colours and faces");
            free(info), free(xyz), free(rgb), free(fc);
        } else th_ok(0, "ref_ply.py ran");
        rc = rhd_ply_write("/nonexistent-dir/x.ply", &m, NULL, &e);
        th_ok(rc == -1 && strstr(e.msg, "/nonexistent-dir/x.ply"), "unwritable PLY path: %s", e.msg);
        rhd_mesh_free(&m);
    }

    /* 6 */
    {
        rhd_mesh_params p;
        rhd_mesh_params_init(&p);
        rhd_mesh m;
        p.res = 1;
        th_ok(rhd_mesh_extract(&m, &p, field, &sph, &e) == -1 && strstr(e.msg, "grid resolution 1, expected 2..2048"), "res 1: %s", e.msg);
        p.res = 100000;
        th_ok(rhd_mesh_extract(&m, &p, field, &sph, &e) == -1 && strstr(e.msg, "grid resolution 100000"), "res 100000: %s", e.msg);
        p.res = 8;
        p.lo[1] = 1;
        th_ok(rhd_mesh_extract(&m, &p, field, &sph, &e) == -1 && strstr(e.msg, "box axis 1"), "empty box: %s", e.msg);
        rhd_mesh_params_init(&p);
        p.res = 16;
        p.threshold = 0;
        field_t nanf = {.kind = 4};
        th_ok(rhd_mesh_extract(&m, &p, field, &nanf, &e) == -1 && strstr(e.msg, "field is nan at (") && m.nv == 0 && !m.xyz,
              "NaN field value: %s", e.msg);
        field_t fail = {.kind = 5};
        th_ok(rhd_mesh_extract(&m, &p, field, &fail, &e) == -1 && strstr(e.msg, "decoder exploded"), "failing callback: %s", e.msg);
    }
    return th_done();
}
