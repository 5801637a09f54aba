/* common/render_loss.c: the upsampler's rendering loss (see render_loss.h). */
#include "common/render_loss.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "common/image_resize.h"
#include "common/rng.h"
#include "kernels/conv2d.h"
#include "kernels/elementwise.h"
#include "kernels/march.h"
#include "kernels/pool.h"

void rhd_render_loss_opts_default(rhd_render_loss_opts *o) {
    memset(o, 0, sizeof *o);
    o->w_l1 = 1.f, o->w_lpips = 0.5f;
    o->patch = 64, o->count = 1;
    o->view_lo = 0, o->view_hi = 280;
    o->ds_prob[0] = 0.2f, o->ds_prob[1] = 0.45f, o->ds_prob[2] = 0.35f;
    o->white_thresh = 0.7f;
    o->grid_updates = 16;
    rhd_render_cfg_default(&o->render);
    o->render.grid_size = 128;
}

int rhd_render_loss_init(rhd_render_loss *rl, rhd_ctx *ctx, rhd_decoder *dec, rhd_lpips *lpips,
                         const rhd_render_loss_opts *o, rhd_err *e) {
    memset(rl, 0, sizeof *rl);
    if (lpips && lpips->net != RHD_LPIPS_VGG)
        return rhd_errf(e, "render loss: LPIPS weights of the %s backbone, expected vgg (spec §5.4)",
                        rhd_lpips_net_name(lpips->net));
    if (o->patch < 16 && lpips && o->w_lpips != 0)
        return rhd_errf(e, "render loss: patch %d, expected at least 16 for LPIPS-VGG", o->patch);
    rl->ctx = ctx, rl->o = *o, rl->lpips = lpips;
    rhd_renderer_init(&rl->rend, ctx, dec, &o->render);
    rhd_occgrid_cfg gc = rhd_renderer_grid_cfg(&rl->rend);
    if (rhd_occgrid_init(ctx, &rl->grid, &gc, e)) return -1;
    if (lpips) rhd_nn_init(&rl->lrun, ctx, &lpips->params);
    return 0;
}

void rhd_render_loss_free(rhd_render_loss *rl) {
    if (!rl->ctx) return;
    rhd_occgrid_free(rl->ctx, &rl->grid);
    rhd_renderer_free(&rl->rend);
    rhd_decoder_acts_free(&rl->acts);
    if (rl->lpips) rhd_nn_free(&rl->lrun);
    free(rl->kept_xyz), free(rl->kept_dirs), free(rl->kept_d0), free(rl->kept_rays), free(rl->kept_first);
    memset(rl, 0, sizeof *rl);
}

/* ---- the random choices and the ground truth ---- */

void rhd_render_loss_draw(const rhd_render_loss_opts *o, uint64_t seed, uint64_t stream, uint64_t offset,
                          rhd_render_loss_pick *p) {
    float u0 = rhd_rng_uniform(seed, stream, offset), u1 = rhd_rng_uniform(seed, stream, offset + 1);
    int n = o->view_hi - o->view_lo + 1;
    int k = (int)(u0 * n);
    p->view = o->view_lo + (k < n ? k : n - 1);
    p->ds = u1 < o->ds_prob[0] ? 2 : u1 < o->ds_prob[0] + o->ds_prob[1] ? 4 : 8;
}

float *rhd_render_loss_gt(const float *rgba, int W, int H, int ds, int *w, int *h) {
    *w = W / ds, *h = H / ds;
    size_t n = (size_t)*w * *h;
    const size_t N = (size_t)W * H;
    uint8_t *in8 = rhd_xmalloc(4 * N), *small = rhd_xmalloc(4 * n);
    for (size_t i = 0; i < 4 * N; i++) {
        float v = rgba[i] * 255.f + 0.5f;
        in8[i] = (uint8_t)(v < 0.f ? 0.f : v > 255.f ? 255.f : v);
    }
    rhd_resize_rgba8_pillow(small, *w, *h, in8, W, H);
    float *gt = rhd_xmalloc(sizeof(float) * 3 * n);
    for (size_t i = 0; i < n; i++) {
        float a = (float)small[4 * i + 3] / 255.f;
        for (int c = 0; c < 3; c++) gt[3 * i + c] = (float)small[4 * i + c] / 255.f * a + (1.f - a);
    }
    free(in8), free(small);
    return gt;
}

int rhd_render_loss_camera(const rhd_dataset *d, int view, int ds, float c2w[12], rhd_render_camera *cam,
                           rhd_err *e) {
    int i = rhd_dataset_find(d, view);
    if (i < 0) return rhd_errf(e, "render loss: view %d is not among the subject's views", view);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) c2w[4 * r + c] = (float)d->views[i].pose[r][c];
    cam->c2w = c2w;
    cam->W = d->K.width / ds, cam->H = d->K.height / ds;
    cam->K.fx = (float)(d->K.fx / ds), cam->K.fy = (float)(d->K.fy / ds);
    cam->K.cx = 0.5f * (float)cam->W, cam->K.cy = 0.5f * (float)cam->W; /* both from W, as the original */
    return 0;
}

static double patch_mean(const float *gt, int w, int x0, int y0, int P) {
    double s = 0;
    for (int y = 0; y < P; y++)
        for (int x = 0; x < P; x++)
            for (int c = 0; c < 3; c++) s += gt[3 * ((size_t)(y0 + y) * w + x0 + x) + c];
    return s / (3.0 * P * P);
}

void rhd_render_loss_crop(const rhd_render_loss_opts *o, const float *gt, int w, int h, uint64_t seed,
                          uint64_t stream, uint64_t offset, int *x0, int *y0) {
    int P = o->patch, span = h - P; /* both offsets from the height (§7.16) */
    RHD_ASSERT(P <= h && P <= w && "patch larger than the image");
    for (int attempt = 0; attempt < 2; attempt++) {
        float uy = rhd_rng_uniform(seed, stream, offset + 2 * attempt);
        float ux = rhd_rng_uniform(seed, stream, offset + 2 * attempt + 1);
        *y0 = span > 0 ? (int)(uy * span) : 0;
        *x0 = span > 0 ? (int)(ux * span) : 0;
        if (*x0 > w - P) *x0 = w - P;
        if (attempt == 0 && patch_mean(gt, w, *x0, *y0, P) <= o->white_thresh) break;
    }
}

int rhd_render_loss_make_patch(const rhd_render_loss_opts *o, const rhd_dataset *d, uint64_t seed, uint64_t stream,
                               uint64_t offset, int ds, rhd_render_patch *p, rhd_err *e) {
    memset(p, 0, sizeof *p);
    int n = 0, P = o->patch;
    for (int i = 0; i < d->n; i++) n += d->views[i].index >= o->view_lo && d->views[i].index <= o->view_hi;
    if (n == 0)
        return rhd_errf(e, "render loss: the subject has no view in [%d, %d]", o->view_lo, o->view_hi);
    if (ds < 0) return rhd_errf(e, "render loss: downscale %d, expected 0 (drawn) or a positive factor", ds);
    rhd_render_loss_pick pick;
    rhd_render_loss_draw(o, seed, stream, offset, &pick);
    int k = (int)(rhd_rng_uniform(seed, stream, offset) * n), j = -1;
    k = k < n ? k : n - 1;
    for (int i = 0; i < d->n && j < 0; i++)
        if (d->views[i].index >= o->view_lo && d->views[i].index <= o->view_hi && k-- == 0) j = i;
    p->view = d->views[j].index, p->ds = ds ? ds : pick.ds;
    if (rhd_render_loss_camera(d, p->view, p->ds, p->c2w, &p->cam, e)) return -1;
    if (p->cam.W < P || p->cam.H < P)
        return rhd_errf(e, "render loss: view %d is %dx%d at downscale %d, expected at least the patch %dx%d", p->view,
                        p->cam.W, p->cam.H, p->ds, P, P);
    rhd_image img;
    if (rhd_dataset_load_image(d, p->view, &img, e)) return -1;
    int w, h;
    float *gt = rhd_render_loss_gt(img.data, img.width, img.height, p->ds, &w, &h);
    rhd_image_free(&img);
    rhd_render_loss_crop(o, gt, w, h, seed, stream, offset + 2, &p->x0, &p->y0);
    p->gt = rhd_xmalloc(sizeof(float) * 3 * P * P);
    for (int y = 0; y < P; y++)
        memcpy(p->gt + (size_t)3 * y * P, gt + 3 * ((size_t)(p->y0 + y) * w + p->x0), sizeof(float) * 3 * P);
    free(gt);
    return 0;
}

void rhd_render_patch_free(rhd_render_patch *p) {
    free(p->gt);
    memset(p, 0, sizeof *p);
}

void rhd_render_loss_warmup(rhd_render_loss *rl, const rhd_triplane *T, uint64_t seed) {
    rhd_renderer_grid_warmup(&rl->rend, &rl->grid, T, seed, rl->o.grid_updates);
}

/* ---- LPIPS with its input gradient ---- */

typedef struct lpg_io {
    rhd_lpips *l;
    const float *x[2]; /* 0: the image with the gradient, 1: the other */
    float *dx0;
    int H, W;
    double d;
} lpg_io;

/* head k: d = mean_p sum_c w_c (n0 - n1)^2, n = f / (|f| + eps); df0 (=) on the host */
static double head_grad(const float *f0, const float *f1, const float *w, int C, int64_t P, float *df0) {
    double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (int64_t p = 0; p < P; p++) {
        double s0 = 0, s1 = 0, gf = 0;
        for (int c = 0; c < C; c++) s0 += (double)f0[c * P + p] * f0[c * P + p], s1 += (double)f1[c * P + p] * f1[c * P + p];
        s0 = sqrt(s0), s1 = sqrt(s1);
        double i0 = 1.0 / (s0 + RHD_LPIPS_EPS), i1 = 1.0 / (s1 + RHD_LPIPS_EPS);
        for (int c = 0; c < C; c++) {
            double t = f0[c * P + p] * i0 - f1[c * P + p] * i1;
            total += w[c] * t * t;
            gf += 2 * w[c] * t * f0[c * P + p]; /* sum_c g_c f0_c, g = 2 w t */
        }
        double k = s0 > 0 ? gf * i0 * i0 / s0 : 0;
        for (int c = 0; c < C; c++) {
            double t = f0[c * P + p] * i0 - f1[c * P + p] * i1;
            df0[c * P + p] = (float)((2 * w[c] * t * i0 - f0[c * P + p] * k) / (double)P);
        }
    }
    return total / (double)P;
}

typedef struct lpg_layer {
    int cin, h, w;     /* conv input after pooling */
    int ph, pw;        /* before pooling */
    int oh, ow;
} lpg_layer;

static void lpips_grad_pass(rhd_nn *r, void *user) {
    lpg_io *io = user;
    rhd_lpips *l = io->l;
    rhd_ctx *ctx = r->ctx;
    const int H = io->H, W = io->W, cpu = ctx->backend == RHD_BACKEND_CPU;
    lpg_layer g[RHD_LPIPS_MAX_CONVS];
    const float *feat[2][RHD_LPIPS_LAYERS];
    int fC[RHD_LPIPS_LAYERS];
    int64_t fP[RHD_LPIPS_LAYERS];
    for (int img = 1; img >= 0; img--) {
        if (img == 1) r->nosave++;
        float *in = rhd_nn_alloc(r, (size_t)3 * H * W);
        if (!r->dry) {
            float *h = rhd_xmalloc(sizeof(float) * 3 * H * W);
            for (int c = 0; c < 3; c++)
                for (int64_t i = 0; i < (int64_t)H * W; i++)
                    h[c * (int64_t)H * W + i] = (2.0f * io->x[img][c * (int64_t)H * W + i] - 1.0f - l->shift[c]) / l->scale[c];
            if (cpu) memcpy(in, h, sizeof(float) * 3 * H * W);
            else rhd_buf_upload(ctx, in, h, sizeof(float) * 3 * H * W);
            free(h);
        }
        const float *cur = in;
        int C = 3, h = H, w = W;
        for (int i = 0; i < l->nconv; i++) {
            const rhd_lpips_conv *c = &l->conv[i];
            g[i].ph = h, g[i].pw = w;
            if (c->pool_k) {
                int oh = rhd_maxpool2d_out(h, c->pool_k, c->pool_s, 0), ow = rhd_maxpool2d_out(w, c->pool_k, c->pool_s, 0);
                float *y = rhd_nn_alloc(r, (size_t)C * oh * ow);
                rhd_nn_maxpool_forward(r, y, cur, 1, C, h, w, c->pool_k, c->pool_s);
                cur = y, h = oh, w = ow;
            }
            g[i].cin = C, g[i].h = h, g[i].w = w;
            rhd_nn_conv_out_size(&c->blk, h, w, &g[i].oh, &g[i].ow);
            size_t n = (size_t)c->cout * g[i].oh * g[i].ow;
            float *y = rhd_nn_alloc(r, n), *z = rhd_nn_alloc(r, n);
            rhd_nn_conv_forward(r, &c->blk, y, cur, 1, h, w);
            rhd_nn_relu_forward(r, z, y, (int64_t)n);
            cur = z, C = c->cout, h = g[i].oh, w = g[i].ow;
            if (c->last) feat[img][c->layer] = z, fC[c->layer] = C, fP[c->layer] = (int64_t)h * w;
        }
        if (img == 1) r->nosave--;
    }
    /* heads: values and the feature gradients (host, double) */
    float *dfeat[RHD_LPIPS_LAYERS];
    io->d = 0;
    for (int k = 0; k < RHD_LPIPS_LAYERS; k++) {
        size_t n = (size_t)fC[k] * fP[k];
        dfeat[k] = rhd_nn_alloc(r, n);
        if (r->dry) continue;
        float *h0 = rhd_xmalloc(sizeof(float) * 3 * n), *h1 = h0 + n, *hd = h1 + n;
        rhd_buf_download(ctx, h0, feat[0][k], sizeof(float) * n);
        rhd_buf_download(ctx, h1, feat[1][k], sizeof(float) * n);
        io->d += head_grad(h0, h1, l->lin[k], fC[k], fP[k], hd);
        rhd_buf_upload(ctx, dfeat[k], hd, sizeof(float) * n);
        free(h0);
    }
    /* the backbone backward over image 0 (input gradients only) */
    float *dcur = NULL;
    for (int i = l->nconv - 1; i >= 0; i--) {
        const rhd_lpips_conv *c = &l->conv[i];
        size_t n = (size_t)c->cout * g[i].oh * g[i].ow;
        float *dz = dcur;
        if (c->last) {
            if (dz) rhd_nn_add_forward(r, dz, dz, dfeat[c->layer], (int64_t)n);
            else dz = dfeat[c->layer];
        }
        float *dy = rhd_nn_alloc(r, n);
        rhd_nn_relu_backward(r, dy, dz, (int64_t)n);
        const float *x = rhd_nn_pop(r, RHD_NN_TAG_CONV, NULL);
        float *dx = rhd_nn_alloc(r, (size_t)g[i].cin * g[i].h * g[i].w);
        if (!r->dry) {
            rhd_conv2d_desc d = {1, g[i].cin, g[i].h, g[i].w, c->cout, c->k, c->k, c->stride, c->stride,
                                 c->pad, c->pad, c->pad, c->pad};
            rhd_conv2d_backward(ctx, dx, NULL, NULL, dy, x, rhd_nn_w(r, c->blk.w), &d);
        }
        dcur = dx;
        if (c->pool_k) {
            float *dp = rhd_nn_alloc(r, (size_t)g[i].cin * g[i].ph * g[i].pw);
            rhd_nn_maxpool_backward(r, dp, dx, 1, g[i].cin, g[i].ph, g[i].pw, c->pool_k, c->pool_s);
            dcur = dp;
        }
    }
    if (r->dry) return;
    float *h = rhd_xmalloc(sizeof(float) * 3 * H * W);
    rhd_buf_download(ctx, h, dcur, sizeof(float) * 3 * H * W);
    for (int c = 0; c < 3; c++)
        for (int64_t i = 0; i < (int64_t)H * W; i++) io->dx0[c * (int64_t)H * W + i] = h[c * (int64_t)H * W + i] * 2.0f / l->scale[c];
    free(h);
}

double rhd_lpips_grad(rhd_lpips *l, rhd_nn *run, const float *x0, const float *x1, int H, int W, float *dx0) {
    lpg_io io = {l, {x0, x1}, dx0, H, W, 0};
    run->train = 1;
    rhd_nn_plan(run, lpips_grad_pass, &io);
    rhd_nn_begin(run, 1);
    lpips_grad_pass(run, &io);
    return io.d;
}

/* ---- rendering, the loss and its backward ---- */

/* append a patch's samples to the kept ones (host) */
static void keep(rhd_render_loss *rl, const float *xyz, const float *dirs, const float *d0, const int32_t *rays,
                 int64_t N, int64_t M) {
    rhd_ctx *ctx = rl->ctx;
    int64_t M0 = rl->kept_M, k = rl->kept_patches;
    rl->kept_xyz = rhd_xrealloc(rl->kept_xyz, sizeof(float) * 3 * (M0 + M + 1));
    rl->kept_dirs = rhd_xrealloc(rl->kept_dirs, sizeof(float) * 3 * (M0 + M + 1));
    rl->kept_d0 = rhd_xrealloc(rl->kept_d0, sizeof(float) * (M0 + M + 1));
    rl->kept_rays = rhd_xrealloc(rl->kept_rays, sizeof(int32_t) * 2 * N * (k + 1));
    rl->kept_first = rhd_xrealloc(rl->kept_first, sizeof(int64_t) * (k + 1));
    rhd_buf_download(ctx, rl->kept_xyz + 3 * M0, xyz, sizeof(float) * 3 * M);
    rhd_buf_download(ctx, rl->kept_dirs + 3 * M0, dirs, sizeof(float) * 3 * M);
    rhd_buf_download(ctx, rl->kept_d0 + M0, d0, sizeof(float) * M);
    rhd_buf_download(ctx, rl->kept_rays + 2 * N * k, rays, sizeof(int32_t) * 2 * N);
    rl->kept_first[k] = M0;
    rl->kept_M = M0 + M, rl->kept_patches = (int)k + 1;
}

/* pred (N,3) ctx side -> loss, dpred (N,3) ctx side (= scale * dL/dpred) */
static void patch_loss(rhd_render_loss *rl, const float *pred, float *dpred, const float *gt, int P, float scale,
                       rhd_render_loss_out *out, float *pred_out) {
    rhd_ctx *ctx = rl->ctx;
    int64_t N = (int64_t)P * P;
    float *hp = rhd_xmalloc(sizeof(float) * 3 * N * 4), *hc = hp + 3 * N, *hg = hc + 3 * N, *hd = hg + 3 * N;
    rhd_buf_download(ctx, hp, pred, sizeof(float) * 3 * N);
    if (pred_out) memcpy(pred_out, hp, sizeof(float) * 3 * N);
    double l1 = 0;
    for (int64_t i = 0; i < 3 * N; i++) {
        float v = hp[i] < 0 ? 0 : hp[i] > 1 ? 1 : hp[i];
        hc[i] = v, l1 += fabs((double)v - gt[i]);
    }
    out->l1 = l1 / (double)(3 * N);
    out->lpips = 0;
    memset(hg, 0, sizeof(float) * 3 * N);
    if (rl->lpips && rl->o.w_lpips != 0) {
        /* (N,3) -> (3,P,P) and back */
        float *a = rhd_xmalloc(sizeof(float) * 3 * N * 3), *b = a + 3 * N, *da = b + 3 * N;
        for (int64_t j = 0; j < N; j++)
            for (int c = 0; c < 3; c++) a[c * N + j] = hc[3 * j + c], b[c * N + j] = gt[3 * j + c];
        out->lpips = rhd_lpips_grad(rl->lpips, &rl->lrun, a, b, P, P, da);
        for (int64_t j = 0; j < N; j++)
            for (int c = 0; c < 3; c++) hg[3 * j + c] = da[c * N + j];
        free(a);
    }
    float s1 = rl->o.w_l1 / (float)(3 * N), s2 = rl->o.w_lpips;
    for (int64_t i = 0; i < 3 * N; i++) {
        float d = hc[i] - gt[i], sg = d > 0 ? 1.f : d < 0 ? -1.f : 0.f;
        float gv = s1 * sg + s2 * hg[i];
        hd[i] = hp[i] >= 0 && hp[i] <= 1 ? scale * gv : 0.f;
    }
    out->loss = rl->o.w_l1 * out->l1 + rl->o.w_lpips * out->lpips;
    rhd_buf_upload(ctx, dpred, hd, sizeof(float) * 3 * N);
    free(hp);
}

/* decode + composite packed samples (ctx side), the loss, and the backward into dT */
static rhd_render_loss_out samples_core(rhd_render_loss *rl, const rhd_triplane *T, float *dT, const float *xyz,
                                        const float *dirs, const float *d0, const float *d1, const int32_t *rays,
                                        int64_t M, const float *gt, float scale, float *pred_out) {
    rhd_ctx *ctx = rl->ctx;
    int P = rl->o.patch;
    int64_t N = (int64_t)P * P;
    rhd_render_loss_out out = {0};
    out.samples = M;
    size_t m = (size_t)(M > 0 ? M : 1);
    float *pts = rhd_buf_alloc(ctx, sizeof(float) * 3 * m), *sigma = rhd_buf_alloc(ctx, sizeof(float) * m);
    float *rgb = rhd_buf_alloc(ctx, sizeof(float) * 3 * m), *dsigma = rhd_buf_alloc(ctx, sizeof(float) * m);
    float *drgb = rhd_buf_alloc(ctx, sizeof(float) * 3 * m);
    float *pred = rhd_buf_alloc(ctx, sizeof(float) * 3 * N), *dpred = rhd_buf_alloc(ctx, sizeof(float) * 3 * N);
    float *A = rhd_buf_alloc(ctx, sizeof(float) * N);
    const rhd_render_cfg *rc = &rl->o.render;
    float s = 1.f / rc->bound;
    if (rc->double_norm) s /= rc->bound;
    rhd_scale(ctx, pts, xyz, s, 3 * M);
    rhd_composite_cfg cc = rhd_composite_cfg_default();
    memcpy(cc.bg, rc->bg, sizeof cc.bg);
    cc.T_thresh = rc->T_thresh;
    rhd_decoder *dec = rl->rend.dec;
    rhd_decoder_forward(ctx, dec, &rl->acts, sigma, rgb, pts, dirs, T->planes, T->R, T->clamp, M);
    rhd_composite_forward(ctx, pred, A, NULL, NULL, sigma, rgb, d0, d1, rays, NULL, NULL, N, M, &cc);
    patch_loss(rl, pred, dpred, gt, P, scale, &out, pred_out);
    rhd_composite_backward(ctx, dsigma, drgb, dpred, NULL, sigma, rgb, d0, rays, N, M, &cc);
    rhd_decoder_backward(ctx, dec, &rl->acts, dT, dsigma, drgb, pts, T->planes, T->R, T->clamp, M, 0);
    void *bufs[] = {pts, sigma, rgb, dsigma, drgb, pred, dpred, A};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) rhd_buf_free(ctx, bufs[i]);
    return out;
}

rhd_render_loss_out rhd_render_loss_samples(rhd_render_loss *rl, const rhd_triplane *T, float *dT, const float *xyz,
                                            const float *dirs, const float *delta0, const float *delta1,
                                            const int32_t *rays, int64_t M, const float *gt_patch, float scale,
                                            float *pred_out) {
    return samples_core(rl, T, dT, xyz, dirs, delta0, delta1, rays, M, gt_patch, scale, pred_out);
}

rhd_render_loss_out rhd_render_loss_patch(rhd_render_loss *rl, const rhd_triplane *T, float *dT,
                                          const rhd_render_camera *cam, int x0, int y0, const float *gt_patch,
                                          float scale) {
    rhd_ctx *ctx = rl->ctx;
    const rhd_render_cfg *rc = &rl->o.render;
    int P = rl->o.patch;
    int64_t N = (int64_t)P * P;
    RHD_ASSERT(x0 >= 0 && y0 >= 0 && x0 + P <= cam->W && y0 + P <= cam->H && "patch outside the view");
    int32_t *hpix = rhd_xmalloc(sizeof(int32_t) * N);
    for (int64_t j = 0; j < N; j++) hpix[j] = (int32_t)((y0 + j / P) * cam->W + x0 + j % P);
    int32_t *pix = rhd_buf_alloc(ctx, sizeof(int32_t) * N), *rays = rhd_buf_alloc(ctx, sizeof(int32_t) * 2 * N);
    float *ro = rhd_buf_alloc(ctx, sizeof(float) * 3 * N), *rd = rhd_buf_alloc(ctx, sizeof(float) * 3 * N);
    float *nears = rhd_buf_alloc(ctx, sizeof(float) * N), *fars = rhd_buf_alloc(ctx, sizeof(float) * N);
    rhd_buf_upload(ctx, pix, hpix, sizeof(int32_t) * N);
    free(hpix);
    rhd_rays_generate(ctx, ro, rd, pix, cam->c2w, cam->K, cam->W, 0, N);
    rhd_rays_near_far(ctx, nears, fars, ro, rd, N, rc->bound, rc->min_near);
    rhd_march_cfg mc = rhd_march_cfg_default();
    mc.bound = rc->bound, mc.H = rc->grid_size, mc.C = rhd_occgrid_cascades(rc->bound);
    mc.max_steps = rc->max_steps, mc.dt_gamma = rc->dt_gamma, mc.perturb = 0;
    int64_t total = rhd_march_train_count(ctx, rays, ro, rd, nears, fars, rl->grid.bitfield, N, &mc);
    int64_t M = rhd_march_capacity(total, rl->grid.mean_count, rc->force_all_rays);
    size_t m = (size_t)(M > 0 ? M : 1);
    float *xyz = rhd_buf_alloc(ctx, sizeof(float) * 3 * m), *dirs = rhd_buf_alloc(ctx, sizeof(float) * 3 * m);
    float *d0 = rhd_buf_alloc(ctx, sizeof(float) * m), *d1 = rhd_buf_alloc(ctx, sizeof(float) * m);
    int64_t kept = rhd_march_train_write(ctx, xyz, dirs, d0, d1, rays, ro, rd, nears, fars, rl->grid.bitfield, N, M, &mc);
    if (rl->keep_samples) keep(rl, xyz, dirs, d0, rays, N, kept);
    rhd_render_loss_out out = samples_core(rl, T, dT, xyz, dirs, d0, d1, rays, kept, gt_patch, scale, NULL);
    void *bufs[] = {pix, rays, ro, rd, nears, fars, xyz, dirs, d0, d1};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) rhd_buf_free(ctx, bufs[i]);
    return out;
}
