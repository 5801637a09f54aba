/* common/mesh.h: iso-surfaces of a scalar field by marching cubes, vertex colours, topology and
 * volume checks, and a binary PLY writer (rhd-render --mesh).
 *
 * Grid: res points per axis spanning [lo, hi] inclusively (spacing (hi-lo)/(res-1)); the field is
 * queried through a callback one z-layer (res*res points) at a time, so a decoder can batch the
 * queries. "Inside" is field > threshold. Each crossed grid edge gets one vertex, placed by linear
 * interpolation of the field along the edge, and shared by every cell around that edge.
 *
 * Triangulation (no lookup table): in each cell the zero set is traced on the six faces as
 * segments joining the edge crossings, oriented so that the inside lies to their right when the
 * face is seen from outside the cell; a face with four crossings (the ambiguous case) is resolved
 * by the asymptotic decider (the bilinear saddle value of the face's four corners), which depends
 * only on that face, so the two cells sharing it agree. The segments of a cell chain into closed
 * loops; each loop is triangulated as a fan from a vertex whose diagonals cross the cell's
 * interior (never along a face), or, when no such vertex exists, around an added centroid vertex.
 * Consequences: every mesh edge inside the grid is shared by exactly two triangles with opposite
 * directions, so the mesh is a closed, consistently oriented 2-manifold wherever the surface does
 * not leave the box, and triangle normals (right-hand rule on the vertex order) point toward
 * lower field values (out of a density blob).
 * With `close` set, the field beyond the box is taken as threshold - max(|threshold|, 1) one grid
 * step outside it, so a surface cut by the box is capped just outside it and the mesh is always
 * closed. */
#ifndef RHD_MESH_H
#define RHD_MESH_H
#include <stdint.h>
#include "common/err.h"

#define RHD_MESH_MAX_RES 2048

/* out[n] = field at xyz[n*3]; return 0, or -1 with a message in e (stops the extraction). */
typedef int (*rhd_field_fn)(void *user, float *out, const float *xyz, int64_t n, rhd_err *e);
/* rgb[n*3] in [0,1] at xyz[n*3]; return 0 or -1. */
typedef int (*rhd_color_fn)(void *user, float *rgb, const float *xyz, int64_t n, rhd_err *e);

typedef struct rhd_mesh_params {
    int res;             /* grid points per axis, 2..RHD_MESH_MAX_RES */
    double threshold;    /* iso value */
    double lo[3], hi[3]; /* box (world units), lo < hi on every axis */
    int close;           /* 1: cap the surface where the box cuts it (default) */
} rhd_mesh_params;

typedef struct rhd_mesh {
    int64_t nv, nt;
    float *xyz;         /* (nv, 3) */
    unsigned char *rgb; /* (nv, 3) or NULL until rhd_mesh_color */
    int32_t *tri;       /* (nt, 3) vertex indices, counter-clockwise seen from outside */
    int64_t cap_v, cap_t;
} rhd_mesh;

typedef struct rhd_mesh_topology {
    int64_t edges;       /* distinct undirected edges */
    int64_t boundary;    /* edges used by one triangle */
    int64_t nonmanifold; /* edges used by more than two */
    int64_t misoriented; /* edges used twice in the same direction */
    int64_t degenerate;  /* triangles with a repeated vertex index */
} rhd_mesh_topology;

#ifdef __cplusplus
extern "C" {
#endif
/* Defaults: res 256, threshold 10 (the fitter's density threshold), box [-1,1]^3, close 1. */
void rhd_mesh_params_init(rhd_mesh_params *p);
/* Extract the iso-surface into m (zeroed first). A non-finite field value is an error naming the
 * point. Errors: bad parameters, callback failures, more than 2^31-1 vertices or triangles. */
int rhd_mesh_extract(rhd_mesh *m, const rhd_mesh_params *p, rhd_field_fn field, void *user, rhd_err *e);
/* Colour every vertex through the callback, `batch` vertices per call (<= 0: all at once);
 * stored as round(clamp(c, 0, 1) * 255). */
int rhd_mesh_color(rhd_mesh *m, rhd_color_fn color, void *user, int64_t batch, rhd_err *e);
void rhd_mesh_free(rhd_mesh *m);
/* Signed enclosed volume by the divergence theorem: sum over triangles of v0 . (v1 x v2) / 6
 * (positive for outward-facing triangles). */
double rhd_mesh_volume(const rhd_mesh *m);
/* Edge-use statistics; the mesh is closed and oriented iff boundary, nonmanifold and misoriented
 * are all 0. */
void rhd_mesh_topology_of(const rhd_mesh *m, rhd_mesh_topology *t);
/* Binary little-endian PLY: vertex (float x, y, z, uchar red, green, blue; white when m->rgb is
 * NULL), face (list uchar int vertex_indices). `comment` (may be NULL) goes in a comment line.
 * Written atomically. */
int rhd_ply_write(const char *path, const rhd_mesh *m, const char *comment, rhd_err *e);
#ifdef __cplusplus
}
#endif
#endif
