/* common/mesh.c: marching cubes without a case table, mesh statistics and the PLY writer
 * (see mesh.h for the method and its guarantees). */
#include "common/mesh.h"
#include "common/fs.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rhd_mesh_params_init(rhd_mesh_params *p) {
    p->res = 256;
    p->threshold = 10.0;
    for (int a = 0; a < 3; a++) p->lo[a] = -1.0, p->hi[a] = 1.0;
    p->close = 1;
}

void rhd_mesh_free(rhd_mesh *m) {
    free(m->xyz);
    free(m->rgb);
    free(m->tri);
    memset(m, 0, sizeof *m);
}

/* --- cube geometry ------------------------------------------------------------------------------
 * Corner c has offsets (c & 1, c >> 1 & 1, c >> 2 & 1) in (x, y, z). A face lists its corners in
 * counter-clockwise order seen from outside the cube (right-handed about the outward normal). */
static const int k_face[6][4] = {
    {0, 4, 6, 2}, /* x = 0 */
    {1, 3, 7, 5}, /* x = 1 */
    {0, 1, 5, 4}, /* y = 0 */
    {2, 6, 7, 3}, /* y = 1 */
    {0, 2, 3, 1}, /* z = 0 */
    {4, 5, 7, 6}, /* z = 1 */
};

typedef struct cube_tables {
    int edge_of[8][8];   /* edge index of corner pair (a, b), -1 if not an edge */
    int edge_a[12], edge_b[12]; /* corners, a < b */
    int edge_faces[12];  /* bit mask of the two faces holding the edge */
} cube_tables;

static void cube_tables_init(cube_tables *t) {
    int n = 0;
    memset(t->edge_of, -1, sizeof t->edge_of);
    for (int a = 0; a < 8; a++)
        for (int d = 0; d < 3; d++) {
            int b = a | (1 << d);
            if (b == a) continue;
            t->edge_a[n] = a, t->edge_b[n] = b;
            t->edge_of[a][b] = t->edge_of[b][a] = n;
            t->edge_faces[n] = 0;
            n++;
        }
    for (int f = 0; f < 6; f++)
        for (int i = 0; i < 4; i++) t->edge_faces[t->edge_of[k_face[f][i]][k_face[f][(i + 1) & 3]]] |= 1 << f;
}

/* --- growable arrays ----------------------------------------------------------------------------- */

static int add_vertex(rhd_mesh *m, double x, double y, double z, rhd_err *e) {
    if (m->nv >= INT32_MAX) return rhd_errf(e, "mesh: more than %d vertices", INT32_MAX);
    if (m->nv == m->cap_v) {
        m->cap_v = m->cap_v ? 2 * m->cap_v : 4096;
        m->xyz = rhd_xrealloc(m->xyz, sizeof(float) * 3 * m->cap_v);
    }
    float *p = m->xyz + 3 * m->nv;
    p[0] = (float)x, p[1] = (float)y, p[2] = (float)z;
    return (int)m->nv++;
}

static int add_tri(rhd_mesh *m, int a, int b, int c, rhd_err *e) {
    if (m->nt >= INT32_MAX) return rhd_errf(e, "mesh: more than %d triangles", INT32_MAX);
    if (m->nt == m->cap_t) {
        m->cap_t = m->cap_t ? 2 * m->cap_t : 8192;
        m->tri = rhd_xrealloc(m->tri, sizeof(int32_t) * 3 * m->cap_t);
    }
    int32_t *t = m->tri + 3 * m->nt++;
    t[0] = a, t[1] = b, t[2] = c;
    return 0;
}

/* --- extraction ---------------------------------------------------------------------------------- */

typedef struct mc_state {
    const rhd_mesh_params *p;
    cube_tables ct;
    int P;            /* points per axis of the (possibly padded) grid */
    int pad;          /* 1 when close: index i is grid point i - 1 */
    double h[3];      /* spacing */
    double outside;   /* field beyond the box (relative to the threshold: v - threshold) */
    float *val[2];    /* field - threshold of two layers, P*P each */
    int32_t *exy[2][2]; /* [layer slot][x or y] vertex index of the edge starting at (i, j) */
    int32_t *ez;      /* vertex index of the z edge starting at (i, j) of the lower layer */
    rhd_mesh *m;
} mc_state;

static double grid_pos(const mc_state *s, int axis, int idx) {
    return s->p->lo[axis] + (idx - s->pad) * s->h[axis];
}

/* Fill layer slot `slot` with the field at padded z index k. */
static int eval_layer(mc_state *s, int slot, int k, float *xyz, float *tmp, rhd_field_fn field, void *user, rhd_err *e) {
    int P = s->P, res = s->p->res;
    float *v = s->val[slot];
    int real_k = k - s->pad;
    if (real_k < 0 || real_k >= res) {
        for (int64_t i = 0; i < (int64_t)P * P; i++) v[i] = (float)s->outside;
        return 0;
    }
    double z = grid_pos(s, 2, k);
    int64_t n = 0;
    for (int j = 0; j < res; j++)
        for (int i = 0; i < res; i++, n++) {
            xyz[3 * n] = (float)(s->p->lo[0] + i * s->h[0]);
            xyz[3 * n + 1] = (float)(s->p->lo[1] + j * s->h[1]);
            xyz[3 * n + 2] = (float)z;
        }
    if (field(user, tmp, xyz, n, e)) return rhd_err_prefix(e, "mesh: field at z = %g", z);
    for (int j = 0; j < P; j++)
        for (int i = 0; i < P; i++) {
            int ri = i - s->pad, rj = j - s->pad;
            if (ri < 0 || rj < 0 || ri >= res || rj >= res) {
                v[(int64_t)j * P + i] = (float)s->outside;
                continue;
            }
            float f = tmp[(int64_t)rj * res + ri];
            if (!isfinite(f))
                return rhd_errf(e, "mesh: field is %g at (%g, %g, %g), expected a finite value", f,
                                s->p->lo[0] + ri * s->h[0], s->p->lo[1] + rj * s->h[1], z);
            v[(int64_t)j * P + i] = (float)((double)f - s->p->threshold);
        }
    return 0;
}

/* Vertex of cube edge `ce` of the cell at (i, j) between layer slots cur and nxt (z index k). */
static int edge_vertex(mc_state *s, int ce, int i, int j, int k, int cur, int nxt, rhd_err *e) {
    int a = s->ct.edge_a[ce], b = s->ct.edge_b[ce], d = (a ^ b) == 1 ? 0 : (a ^ b) == 2 ? 1 : 2;
    int ax = i + (a & 1), ay = j + (a >> 1 & 1), az = a >> 2 & 1;
    int64_t at = (int64_t)ay * s->P + ax;
    int32_t *slotp = d == 2 ? &s->ez[at] : &s->exy[az ? nxt : cur][d][at];
    if (*slotp >= 0) return *slotp;
    double va = s->val[az ? nxt : cur][at];
    int bx = i + (b & 1), by = j + (b >> 1 & 1), bz = b >> 2 & 1;
    double vb = s->val[bz ? nxt : cur][(int64_t)by * s->P + bx];
    double t = va / (va - vb); /* va and vb are on different sides of 0 */
    double pa[3] = {grid_pos(s, 0, ax), grid_pos(s, 1, ay), grid_pos(s, 2, k + az)};
    double pb[3] = {grid_pos(s, 0, bx), grid_pos(s, 1, by), grid_pos(s, 2, k + bz)};
    int id = add_vertex(s->m, pa[0] + t * (pb[0] - pa[0]), pa[1] + t * (pb[1] - pa[1]), pa[2] + t * (pb[2] - pa[2]), e);
    if (id < 0) return -1;
    *slotp = id;
    return id;
}

/* Triangulate one cell; c[8] = field - threshold at the corners. */
static int do_cell(mc_state *s, const double c[8], int i, int j, int k, int cur, int nxt, rhd_err *e) {
    const cube_tables *ct = &s->ct;
    int next[12];
    for (int q = 0; q < 12; q++) next[q] = -1;
    int any = 0;
    for (int f = 0; f < 6; f++) {
        const int *fc = k_face[f];
        int entry[4], exit_[4], ne = 0, nx = 0;
        for (int q = 0; q < 4; q++) {
            int in0 = c[fc[q]] > 0, in1 = c[fc[(q + 1) & 3]] > 0;
            if (in0 && !in1) exit_[nx++] = q;
            else if (!in0 && in1) entry[ne++] = q;
        }
        if (ne == 0) continue;
        any = 1;
        int eo[4];
        for (int q = 0; q < 4; q++) eo[q] = ct->edge_of[fc[q]][fc[(q + 1) & 3]];
        if (ne == 1) {
            next[eo[entry[0]]] = eo[exit_[0]];
        } else { /* four crossings: corners 0, 2 on one side, 1, 3 on the other */
            double f0 = c[fc[0]], f1 = c[fc[1]], f2 = c[fc[2]], f3 = c[fc[3]];
            double saddle = (f0 * f2 - f1 * f3) / (f0 + f2 - f1 - f3);
            int connected = saddle > 0; /* the inside corners are joined across the face */
            for (int q = 0; q < 2; q++) {
                int en = entry[q], ex = connected ? (en + 3) & 3 : (en + 1) & 3;
                next[eo[en]] = eo[ex];
            }
        }
    }
    if (!any) return 0;
    int used[12] = {0};
    for (int start = 0; start < 12; start++) {
        if (next[start] < 0 || used[start]) continue;
        int loop[12], L = 0, q = start;
        do {
            RHD_ASSERT(L < 12 && next[q] >= 0);
            used[q] = 1;
            loop[L++] = q;
            q = next[q];
        } while (q != start);
        RHD_ASSERT(L >= 3);
        int vid[12];
        for (int t = 0; t < L; t++)
            if ((vid[t] = edge_vertex(s, loop[t], i, j, k, cur, nxt, e)) < 0) return -1;
        int fan = -1;
        for (int st = 0; st < L && fan < 0; st++) {
            int ok = 1;
            for (int d = 2; d <= L - 2 && ok; d++)
                if (ct->edge_faces[loop[st]] & ct->edge_faces[loop[(st + d) % L]]) ok = 0;
            if (ok) fan = st;
        }
        if (fan >= 0) {
            for (int d = 1; d + 1 < L; d++)
                if (add_tri(s->m, vid[fan], vid[(fan + d) % L], vid[(fan + d + 1) % L], e)) return -1;
        } else {
            double g[3] = {0, 0, 0};
            for (int t = 0; t < L; t++)
                for (int a = 0; a < 3; a++) g[a] += s->m->xyz[3 * (int64_t)vid[t] + a];
            int cid = add_vertex(s->m, g[0] / L, g[1] / L, g[2] / L, e);
            if (cid < 0) return -1;
            for (int t = 0; t < L; t++)
                if (add_tri(s->m, cid, vid[t], vid[(t + 1) % L], e)) return -1;
        }
    }
    return 0;
}

int rhd_mesh_extract(rhd_mesh *m, const rhd_mesh_params *p, rhd_field_fn field, void *user, rhd_err *e) {
    memset(m, 0, sizeof *m);
    if (p->res < 2 || p->res > RHD_MESH_MAX_RES)
        return rhd_errf(e, "mesh: grid resolution %d, expected 2..%d", p->res, RHD_MESH_MAX_RES);
    if (!isfinite(p->threshold)) return rhd_errf(e, "mesh: threshold %g, expected a finite number", p->threshold);
    mc_state s = {.p = p, .m = m};
    for (int a = 0; a < 3; a++) {
        if (!(isfinite(p->lo[a]) && isfinite(p->hi[a]) && p->lo[a] < p->hi[a]))
            return rhd_errf(e, "mesh: box axis %d is [%g, %g], expected finite lo < hi", a, p->lo[a], p->hi[a]);
        s.h[a] = (p->hi[a] - p->lo[a]) / (p->res - 1);
    }
    cube_tables_init(&s.ct);
    s.pad = p->close ? 1 : 0;
    s.P = p->res + 2 * s.pad;
    s.outside = -fmax(fabs(p->threshold), 1.0);
    int64_t PP = (int64_t)s.P * s.P, RR = (int64_t)p->res * p->res;
    float *xyz = rhd_xmalloc(sizeof(float) * 3 * RR), *tmp = rhd_xmalloc(sizeof(float) * RR);
    for (int q = 0; q < 2; q++) {
        s.val[q] = rhd_xmalloc(sizeof(float) * PP);
        for (int d = 0; d < 2; d++) s.exy[q][d] = rhd_xmalloc(sizeof(int32_t) * PP);
    }
    s.ez = rhd_xmalloc(sizeof(int32_t) * PP);
    int rc = 0, cur = 0;
    for (int d = 0; d < 2; d++) memset(s.exy[cur][d], -1, sizeof(int32_t) * PP);
    if (eval_layer(&s, cur, 0, xyz, tmp, field, user, e)) rc = -1;
    for (int k = 0; k + 1 < s.P && rc == 0; k++) {
        int nxt = cur ^ 1;
        for (int d = 0; d < 2; d++) memset(s.exy[nxt][d], -1, sizeof(int32_t) * PP);
        memset(s.ez, -1, sizeof(int32_t) * PP);
        if (eval_layer(&s, nxt, k + 1, xyz, tmp, field, user, e)) { rc = -1; break; }
        const float *v0 = s.val[cur], *v1 = s.val[nxt];
        for (int j = 0; j + 1 < s.P && rc == 0; j++)
            for (int i = 0; i + 1 < s.P; i++) {
                int64_t a = (int64_t)j * s.P + i;
                double c[8] = {v0[a], v0[a + 1], v0[a + s.P], v0[a + s.P + 1],
                               v1[a], v1[a + 1], v1[a + s.P], v1[a + s.P + 1]};
                int nin = 0;
                for (int q = 0; q < 8; q++) nin += c[q] > 0;
                if (nin == 0 || nin == 8) continue;
                if (do_cell(&s, c, i, j, k, cur, nxt, e)) { rc = -1; break; }
            }
        cur = nxt;
    }
    free(xyz);
    free(tmp);
    for (int q = 0; q < 2; q++) {
        free(s.val[q]);
        for (int d = 0; d < 2; d++) free(s.exy[q][d]);
    }
    free(s.ez);
    if (rc) rhd_mesh_free(m);
    return rc;
}

int rhd_mesh_color(rhd_mesh *m, rhd_color_fn color, void *user, int64_t batch, rhd_err *e) {
    if (batch <= 0 || batch > m->nv) batch = m->nv > 0 ? m->nv : 1;
    free(m->rgb);
    m->rgb = rhd_xmalloc(3 * (size_t)(m->nv > 0 ? m->nv : 1));
    float *buf = rhd_xmalloc(sizeof(float) * 3 * batch);
    for (int64_t s = 0; s < m->nv; s += batch) {
        int64_t n = m->nv - s < batch ? m->nv - s : batch;
        if (color(user, buf, m->xyz + 3 * s, n, e)) {
            free(buf);
            return rhd_err_prefix(e, "mesh colours");
        }
        for (int64_t i = 0; i < 3 * n; i++) {
            float c = buf[i];
            c = c > 0 ? (c < 1 ? c : 1) : 0; /* NaN -> 0 */
            m->rgb[3 * s + i] = (unsigned char)floorf(c * 255.0f + 0.5f);
        }
    }
    free(buf);
    return 0;
}

double rhd_mesh_volume(const rhd_mesh *m) {
    double v = 0;
    for (int64_t t = 0; t < m->nt; t++) {
        const float *a = m->xyz + 3 * (int64_t)m->tri[3 * t], *b = m->xyz + 3 * (int64_t)m->tri[3 * t + 1],
                    *c = m->xyz + 3 * (int64_t)m->tri[3 * t + 2];
        double cx = (double)b[1] * c[2] - (double)b[2] * c[1], cy = (double)b[2] * c[0] - (double)b[0] * c[2],
               cz = (double)b[0] * c[1] - (double)b[1] * c[0];
        v += a[0] * cx + a[1] * cy + a[2] * cz;
    }
    return v / 6.0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void rhd_mesh_topology_of(const rhd_mesh *m, rhd_mesh_topology *t) {
    memset(t, 0, sizeof *t);
    uint64_t *k = rhd_xmalloc(sizeof(uint64_t) * 3 * (size_t)(m->nt > 0 ? m->nt : 1));
    int64_t n = 0;
    for (int64_t f = 0; f < m->nt; f++) {
        const int32_t *v = m->tri + 3 * f;
        if (v[0] == v[1] || v[1] == v[2] || v[0] == v[2]) t->degenerate++;
        for (int q = 0; q < 3; q++) {
            uint32_t a = (uint32_t)v[q], b = (uint32_t)v[(q + 1) % 3];
            uint32_t lo = a < b ? a : b, hi = a < b ? b : a;
            /* indices < 2^31: lo in bits 33..63, hi in 1..32, the direction in bit 0 */
            k[n++] = (uint64_t)lo << 33 | (uint64_t)hi << 1 | (a > b);
        }
    }
    qsort(k, n, sizeof *k, cmp_u64);
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        int fwd = 0, bwd = 0;
        while (j < n && (k[j] >> 1) == (k[i] >> 1)) (k[j] & 1) ? bwd++ : fwd++, j++;
        t->edges++;
        int64_t uses = j - i;
        if (uses == 1) t->boundary++;
        else if (uses > 2) t->nonmanifold++;
        else if (fwd != 1) t->misoriented++;
        i = j;
    }
    free(k);
}

/* --- PLY ---------------------------------------------------------------------------------------- */

static void put_le32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8), p[2] = (unsigned char)(v >> 16), p[3] = (unsigned char)(v >> 24);
}

int rhd_ply_write(const char *path, const rhd_mesh *m, const char *comment, rhd_err *e) {
    rhd_atomic a;
    if (rhd_atomic_open(&a, path, e)) return -1;
    fprintf(a.f, "ply\nformat binary_little_endian 1.0\n");
    if (comment) {
        fprintf(a.f, "comment ");
        for (const char *c = comment; *c; c++) fputc(*c == '\n' || *c == '\r' ? ' ' : *c, a.f);
        fputc('\n', a.f);
    }
    fprintf(a.f,
            "element vertex %ld\nproperty float x\nproperty float y\nproperty float z\n"
            "property uchar red\nproperty uchar green\nproperty uchar blue\n"
            "element face %ld\nproperty list uchar int vertex_indices\nend_header\n",
            m->nv, m->nt);
    enum { CHUNK = 4096 };
    unsigned char *buf = rhd_xmalloc(15 * CHUNK);
    for (int64_t s = 0; s < m->nv; s += CHUNK) {
        int64_t n = m->nv - s < CHUNK ? m->nv - s : CHUNK;
        unsigned char *p = buf;
        for (int64_t i = s; i < s + n; i++) {
            for (int q = 0; q < 3; q++) {
                uint32_t u;
                memcpy(&u, &m->xyz[3 * i + q], 4);
                put_le32(p, u);
                p += 4;
            }
            for (int q = 0; q < 3; q++) *p++ = m->rgb ? m->rgb[3 * i + q] : 255;
        }
        fwrite(buf, 1, (size_t)(p - buf), a.f);
    }
    for (int64_t s = 0; s < m->nt; s += CHUNK) {
        int64_t n = m->nt - s < CHUNK ? m->nt - s : CHUNK;
        unsigned char *p = buf;
        for (int64_t i = s; i < s + n; i++) {
            *p++ = 3;
            for (int q = 0; q < 3; q++, p += 4) put_le32(p, (uint32_t)m->tri[3 * i + q]);
        }
        fwrite(buf, 1, (size_t)(p - buf), a.f);
    }
    free(buf);
    if (ferror(a.f)) {
        rhd_atomic_abort(&a);
        return rhd_errf(e, "%s: write failed", path);
    }
    return rhd_atomic_commit(&a, e);
}
