/* common/models/renderer.c: the volume renderer over the triplane decoder (see renderer.h). */
#include "common/models/renderer.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "common/rng.h"
#include "kernels/elementwise.h"
#include "kernels/losses.h"

void rhd_render_cfg_default(rhd_render_cfg *c) {
    c->bound = 1.f;
    c->min_near = 0.2f;
    c->grid_size = 256;
    c->max_steps = 1024;
    c->dt_gamma = 0.f;
    c->T_thresh = 1e-4f;
    c->bg[0] = c->bg[1] = c->bg[2] = 1.f;
    c->density_thresh = 10.f;
    c->grid_decay = 0.95f;
    c->full_updates = 16;
    c->force_all_rays = 1;
    c->double_norm = 0;
    c->chunk = 65536;
}

void rhd_renderer_init(rhd_renderer *r, rhd_ctx *ctx, rhd_decoder *dec, const rhd_render_cfg *cfg) {
    memset(r, 0, sizeof *r);
    r->ctx = ctx;
    r->dec = dec;
    r->cfg = *cfg;
}

/* Scratch buffers live on the context's side (rhd_buf_alloc). */
#define RAY_BUFS(r)                                                                                                   \
    {(void **)&(r)->pix,   (void **)&(r)->rays, (void **)&(r)->alive, (void **)&(r)->rays_o, (void **)&(r)->rays_d, \
     (void **)&(r)->nears, (void **)&(r)->fars, (void **)&(r)->gt,    (void **)&(r)->pred,   (void **)&(r)->dpred,  \
     (void **)&(r)->tcur,  (void **)&(r)->stop, (void **)&(r)->wsum,  (void **)&(r)->dacc,   (void **)&(r)->depth}
#define SAMPLE_BUFS(r)                                                                                                \
    {(void **)&(r)->xyz,   (void **)&(r)->pts, (void **)&(r)->dirs,   (void **)&(r)->d0, (void **)&(r)->d1,          \
     (void **)&(r)->sigma, (void **)&(r)->rgb, (void **)&(r)->dsigma, (void **)&(r)->drgb}

static void free_bufs(rhd_ctx *ctx, void ***ps, size_t n) {
    for (size_t i = 0; i < n; i++) rhd_buf_free(ctx, *ps[i]), *ps[i] = NULL;
}

float *rhd_renderer_scratch(rhd_renderer *r, int64_t n) {
    if (n > r->cap_scratch) {
        rhd_buf_free(r->ctx, r->scratch);
        r->scratch = rhd_buf_alloc(r->ctx, sizeof(float) * (size_t)(n > 0 ? n : 1));
        r->cap_scratch = n;
    }
    return r->scratch;
}

void rhd_renderer_free(rhd_renderer *r) {
    rhd_buf_free(r->ctx, r->scratch);
    void **rb[] = RAY_BUFS(r), **sb[] = SAMPLE_BUFS(r);
    free_bufs(r->ctx, rb, sizeof rb / sizeof rb[0]);
    free_bufs(r->ctx, sb, sizeof sb / sizeof sb[0]);
    rhd_decoder_acts_free(&r->acts);
    memset(r, 0, sizeof *r);
}

static void reserve_rays(rhd_renderer *r, int64_t N) {
    if (N <= r->cap_rays) return;
    void **rb[] = RAY_BUFS(r);
    free_bufs(r->ctx, rb, sizeof rb / sizeof rb[0]);
    size_t n = (size_t)N, f = sizeof(float) * n;
    rhd_ctx *c = r->ctx;
    r->pix = rhd_buf_alloc(c, 4 * n), r->rays = rhd_buf_alloc(c, 8 * n), r->alive = rhd_buf_alloc(c, 4 * n);
    r->rays_o = rhd_buf_alloc(c, 3 * f), r->rays_d = rhd_buf_alloc(c, 3 * f);
    r->nears = rhd_buf_alloc(c, f), r->fars = rhd_buf_alloc(c, f), r->tcur = rhd_buf_alloc(c, f);
    r->gt = rhd_buf_alloc(c, 3 * f), r->pred = rhd_buf_alloc(c, 3 * f), r->dpred = rhd_buf_alloc(c, 3 * f);
    r->stop = rhd_buf_alloc(c, n), r->wsum = rhd_buf_alloc(c, f), r->dacc = rhd_buf_alloc(c, f);
    r->depth = rhd_buf_alloc(c, f);
    r->cap_rays = N;
}

static void reserve_samples(rhd_renderer *r, int64_t M) {
    if (M <= r->cap_samples) return;
    void **sb[] = SAMPLE_BUFS(r);
    free_bufs(r->ctx, sb, sizeof sb / sizeof sb[0]);
    size_t f = sizeof(float) * (size_t)M;
    rhd_ctx *c = r->ctx;
    r->xyz = rhd_buf_alloc(c, 3 * f), r->pts = rhd_buf_alloc(c, 3 * f), r->dirs = rhd_buf_alloc(c, 3 * f);
    r->d0 = rhd_buf_alloc(c, f), r->d1 = rhd_buf_alloc(c, f), r->sigma = rhd_buf_alloc(c, f);
    r->rgb = rhd_buf_alloc(c, 3 * f), r->dsigma = rhd_buf_alloc(c, f), r->drgb = rhd_buf_alloc(c, 3 * f);
    r->cap_samples = M;
}

/* World positions -> sampler coordinates (see renderer.h). */
static void normalise(rhd_ctx *ctx, const rhd_render_cfg *c, float *pts, const float *xyz, int64_t M) {
    float s = 1.f / c->bound;
    if (c->double_norm) s = s / c->bound;
    rhd_scale(ctx, pts, xyz, s, (int64_t)(3 * M));
}

static rhd_march_cfg march_cfg(const rhd_renderer *r, int perturb, uint64_t seed, uint64_t stream) {
    rhd_march_cfg m = rhd_march_cfg_default();
    m.bound = r->cfg.bound;
    m.H = r->cfg.grid_size;
    m.C = rhd_occgrid_cascades(r->cfg.bound);
    m.max_steps = r->cfg.max_steps;
    m.dt_gamma = r->cfg.dt_gamma;
    m.perturb = perturb;
    m.seed = seed;
    m.stream = stream;
    return m;
}

rhd_occgrid_cfg rhd_renderer_grid_cfg(const rhd_renderer *r) {
    rhd_occgrid_cfg g = rhd_occgrid_cfg_default();
    g.H = r->cfg.grid_size;
    g.C = rhd_occgrid_cascades(r->cfg.bound);
    g.bound = r->cfg.bound;
    g.decay = r->cfg.grid_decay;
    g.density_thresh = r->cfg.density_thresh;
    g.full_updates = r->cfg.full_updates;
    return g;
}

/* ---- grid ---- */

typedef struct density_user {
    rhd_renderer *r;
    const rhd_triplane *T;
    float *pts;
} density_user;

static void density_fn(rhd_ctx *ctx, float *sigma, const float *xyz, int64_t n, void *user) {
    density_user *u = user;
    normalise(ctx, &u->r->cfg, u->pts, xyz, n);
    rhd_decoder_infer(ctx, u->r->dec, &u->r->acts, sigma, NULL, u->pts, NULL, u->T->planes, u->T->R, u->T->clamp, n);
}

/* The renderer reads PLANES-layout triplanes of the decoder's channels on its context's side. */
static void check_triplane(const rhd_renderer *r, const rhd_triplane *T) {
    RHD_ASSERT(T->layout == RHD_TRIPLANE_PLANES && "the renderer reads [3,C,R,R] triplanes");
    RHD_ASSERT(T->C == r->dec->cfg.C && "triplane channels differ from the decoder's");
    RHD_ASSERT((T->ctx == NULL || T->ctx->backend == r->ctx->backend) && "triplane on another side");
    RHD_ASSERT((T->ctx != NULL || r->ctx->backend == RHD_BACKEND_CPU) && "host triplane given to a device renderer");
}

void rhd_renderer_grid_update(rhd_renderer *r, rhd_occgrid *g, const rhd_triplane *T, uint64_t seed) {
    check_triplane(r, T);
    density_user u = {r, T, rhd_renderer_scratch(r, 3 * r->cfg.chunk)};
    rhd_decoder_infer_prepare(r->ctx, r->dec, &r->acts, T->planes, T->R, T->clamp);
    rhd_occgrid_update(r->ctx, g, seed, r->cfg.chunk, density_fn, &u);
    rhd_decoder_infer_release(&r->acts);
}

void rhd_renderer_grid_warmup(rhd_renderer *r, rhd_occgrid *g, const rhd_triplane *T, uint64_t seed, int n_updates) {
    rhd_occgrid_reset(r->ctx, g);
    for (int i = 0; i < n_updates; i++) rhd_renderer_grid_update(r, g, T, seed);
}

/* ---- training ---- */

/* Mean of the N opacities A (context side). */
static double mean_opacity(rhd_renderer *r, const float *A, int64_t N) {
    float *h = rhd_xmalloc(sizeof(float) * (size_t)(N > 0 ? N : 1));
    rhd_buf_download(r->ctx, h, A, sizeof(float) * (size_t)N);
    double s = 0;
    for (int64_t i = 0; i < N; i++) s += h[i];
    free(h);
    return N > 0 ? s / (double)N : 0;
}

static double train_core(rhd_renderer *r, const rhd_triplane *T, float *dplanes, const int32_t *rays, int64_t N,
                         int64_t M, const float *gt, float weight, int want, float *pred_out, double *opacity) {
    rhd_ctx *ctx = r->ctx;
    const float *planes = T->planes;
    int R = T->R, clamp = T->clamp;
    rhd_composite_cfg cc = rhd_composite_cfg_default();
    memcpy(cc.bg, r->cfg.bg, sizeof cc.bg);
    cc.T_thresh = r->cfg.T_thresh;
    normalise(ctx, &r->cfg, r->pts, r->xyz, M);
    rhd_decoder_forward(ctx, r->dec, &r->acts, r->sigma, r->rgb, r->pts, r->dirs, planes, R, clamp, M);
    float *pred = pred_out ? pred_out : r->pred;
    rhd_composite_forward(ctx, pred, r->wsum, NULL, NULL, r->sigma, r->rgb, r->d0, r->d1, rays, NULL, NULL, N, M, &cc);
    if (opacity) *opacity = mean_opacity(r, r->wsum, N);
    double mse = rhd_loss_mse(ctx, r->dpred, pred, gt, 3 * N, weight);
    rhd_composite_backward(ctx, r->dsigma, r->drgb, r->dpred, NULL, r->sigma, r->rgb, r->d0, rays, N, M, &cc);
    rhd_decoder_backward(ctx, r->dec, &r->acts, dplanes, r->dsigma, r->drgb, r->pts, planes, R, clamp, M, want);
    return mse;
}

double rhd_renderer_train_samples(rhd_renderer *r, const rhd_triplane *T, float *dplanes, const float *xyz,
                                  const float *dirs, const float *delta0, const float *delta1, const int32_t *rays,
                                  int64_t N, int64_t M, const float *gt, float weight, int want, float *pred_out) {
    check_triplane(r, T);
    reserve_rays(r, N);
    reserve_samples(r, M);
    rhd_buf_copy(r->ctx, r->xyz, xyz, sizeof(float) * 3 * (size_t)M);
    rhd_buf_copy(r->ctx, r->dirs, dirs, sizeof(float) * 3 * (size_t)M);
    rhd_buf_copy(r->ctx, r->d0, delta0, sizeof(float) * (size_t)M);
    rhd_buf_copy(r->ctx, r->d1, delta1, sizeof(float) * (size_t)M);
    return train_core(r, T, dplanes, rays, N, M, gt, weight, want, pred_out, NULL);
}

double rhd_renderer_train_rays(rhd_renderer *r, rhd_occgrid *g, const rhd_triplane *T, float *dplanes,
                               const rhd_render_camera *cam, const float *gt_img, const rhd_train_rays_opts *o,
                               rhd_render_stats *st) {
    check_triplane(r, T);
    rhd_ctx *ctx = r->ctx;
    int64_t N = o->rays, step = o->step;
    uint64_t seed = o->seed;
    reserve_rays(r, N);
    rhd_rays_random_pixels(ctx, r->pix, N, cam->W, cam->H, seed, RHD_STREAM(RHD_STREAM_RAYS, step));
    rhd_rays_generate(ctx, r->rays_o, r->rays_d, r->pix, cam->c2w, cam->K, cam->W, 0, N);
    rhd_rays_gather(ctx, r->gt, gt_img, r->pix, N, 3);
    rhd_rays_near_far(ctx, r->nears, r->fars, r->rays_o, r->rays_d, N, r->cfg.bound, r->cfg.min_near);
    rhd_march_cfg mc = march_cfg(r, 1, seed, RHD_STREAM(RHD_STREAM_MARCH, step));
    int64_t total = rhd_march_train_count(ctx, r->rays, r->rays_o, r->rays_d, r->nears, r->fars, g->bitfield, N, &mc);
    int64_t M = rhd_march_capacity(total, g->mean_count, r->cfg.force_all_rays);
    reserve_samples(r, M);
    int64_t kept = rhd_march_train_write(ctx, r->xyz, r->dirs, r->d0, r->d1, r->rays, r->rays_o, r->rays_d, r->nears,
                                         r->fars, g->bitfield, N, M, &mc);
    rhd_occgrid_record_step(g, total, N);
    double opacity = 0;
    double mse = train_core(r, T, dplanes, r->rays, N, kept, r->gt, o->weight, o->want_dparams, NULL, &opacity);
    if (st) {
        st->samples_requested += total;
        st->samples_kept += kept;
        st->rays += N;
        st->mse = mse;
        st->opacity = opacity;
    }
    return mse;
}

/* ---- inference ---- */

/* The inference loop of §3.8/§6.2 into r->pred (premultiplied rgb), r->wsum (opacity) and r->dacc
 * (weighted t), all on the context's side. */
static void render_core(rhd_renderer *r, rhd_occgrid *g, const rhd_triplane *T, const rhd_render_camera *cam,
                        int want_depth) {
    check_triplane(r, T);
    rhd_ctx *ctx = r->ctx;
    const float *planes = T->planes;
    int R = T->R, clamp = T->clamp;
    int64_t N = (int64_t)cam->W * cam->H;
    reserve_rays(r, N);
    rhd_rays_generate(ctx, r->rays_o, r->rays_d, NULL, cam->c2w, cam->K, cam->W, 0, N);
    rhd_rays_near_far(ctx, r->nears, r->fars, r->rays_o, r->rays_d, N, r->cfg.bound, r->cfg.min_near);
    rhd_buf_zero(ctx, r->pred, sizeof(float) * 3 * (size_t)N);
    rhd_buf_zero(ctx, r->wsum, sizeof(float) * (size_t)N);
    rhd_buf_zero(ctx, r->dacc, sizeof(float) * (size_t)N);
    rhd_march_infer_begin(ctx, r->alive, r->tcur, r->nears, N);
    rhd_decoder_infer_prepare(ctx, r->dec, &r->acts, planes, R, clamp);
    rhd_march_cfg mc = march_cfg(r, 0, 0, RHD_STREAM(RHD_STREAM_MARCH, 0));
    int64_t n_alive = N;
    for (int step = 0, first = 1; step < r->cfg.max_steps && n_alive > 0; first = 0) {
        int n_step = rhd_march_infer_n_step(N, n_alive);
        int64_t M = n_alive * n_step;
        reserve_samples(r, M);
        rhd_march_infer(ctx, r->xyz, r->dirs, r->d0, r->d1, r->alive, r->tcur, r->rays_o, r->rays_d, r->fars,
                        g->bitfield, n_alive, n_step, first, &mc);
        normalise(ctx, &r->cfg, r->pts, r->xyz, M);
        rhd_decoder_infer(ctx, r->dec, &r->acts, r->sigma, r->rgb, r->pts, r->dirs, planes, R, clamp, M);
        rhd_composite_infer(ctx, r->pred, r->wsum, want_depth ? r->dacc : NULL, r->stop, r->alive, r->tcur, r->sigma,
                            r->rgb, r->d0, r->d1, n_alive, n_step, r->cfg.T_thresh);
        n_alive = rhd_march_infer_advance(ctx, r->alive, r->tcur, r->stop, r->d0, r->d1, n_alive, n_step);
        step += n_step;
    }
    rhd_decoder_infer_release(&r->acts);
}

void rhd_renderer_render_view(rhd_renderer *r, rhd_occgrid *g, const rhd_triplane *T, const rhd_render_camera *cam,
                              float *out) {
    int64_t N = (int64_t)cam->W * cam->H;
    render_core(r, g, T, cam, 0);
    /* composite on the background in place: pred = rgb + (1 - A) bg */
    rhd_composite_infer_finish(r->ctx, r->pred, NULL, r->pred, r->wsum, NULL, NULL, NULL, r->cfg.bg, N);
    rhd_buf_download(r->ctx, out, r->pred, sizeof(float) * 3 * (size_t)N);
}

void rhd_renderer_render_view_full(rhd_renderer *r, rhd_occgrid *g, const rhd_triplane *T,
                                   const rhd_render_camera *cam, float *rgb, float *alpha, float *depth) {
    int64_t N = (int64_t)cam->W * cam->H;
    render_core(r, g, T, cam, depth != NULL);
    if (depth) {
        rhd_composite_infer_finish(r->ctx, NULL, r->depth, NULL, r->wsum, r->dacc, r->nears, r->fars, r->cfg.bg, N);
        rhd_buf_download(r->ctx, depth, r->depth, sizeof(float) * (size_t)N);
    }
    if (rgb) rhd_buf_download(r->ctx, rgb, r->pred, sizeof(float) * 3 * (size_t)N);
    if (alpha) rhd_buf_download(r->ctx, alpha, r->wsum, sizeof(float) * (size_t)N);
}

double rhd_psnr(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        s += d * d;
    }
    double mse = n > 0 ? s / (double)n : 0;
    return mse > 0 ? -10.0 * log10(mse) : INFINITY;
}
