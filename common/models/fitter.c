/* common/models/fitter.c: one plan entry of triplane fitting (see fitter.h). */
#include "common/models/fitter.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "common/rng.h"
#include "kernels/elementwise.h"
#include "kernels/losses.h"
#include "kernels/optim.h"

void rhd_fit_cfg_default(rhd_fit_cfg *c, int stage) {
    memset(c, 0, sizeof *c);
    c->C = 32;
    c->R = 512;
    c->rays = 8192;
    c->w_l1 = stage == 2 ? 1e-4 : 1e-6;
    c->w_tv = stage == 2 ? 0.02 : 2e-4;
    c->w_dist = stage == 2 ? 0.002 : 2e-5;
    c->w_iwc_override = -1;
    c->dist_points = 1000;
    c->dist_sigma = 0.004f;
    c->dist_inner = 0.001;
    c->update_interval = 16;
    c->mark_untrained = 1;
    c->clamp = 1;
    c->fisher_steps = 1;
    c->iwc_all = 0;
    c->freeze_decoder = stage == 2;
    c->tri_eps = stage == 2 ? 1e-15 : 1e-8;
    c->reg_gate = stage == 2 ? 0.05 : 0;
    c->collapse_opacity = stage == 2 ? 0.01 : 0;
    c->eval_warmup = stage == 2 ? 16 : 0;
    c->seed = 0;
}

uint64_t rhd_fit_seed(uint64_t seed, uint64_t a, uint64_t b) {
    uint64_t x = seed;
    uint64_t in[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        x += 0x9E3779B97F4A7C15ull + in[i];
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
        x ^= x >> 31;
    }
    return x;
}

void rhd_fit_triplane_init(rhd_triplane *t, uint64_t seed, int id) {
    RHD_ASSERT(!t->ctx || t->ctx->backend == RHD_BACKEND_CPU);
    float *planes = t->planes;
    int64_t n = rhd_triplane_numel(t);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float v = 0.1f * rhd_rng_normal(seed, RHD_STREAM(RHD_STREAM_TRIPLANE_INIT, id), (uint64_t)i);
        planes[i] = v < -1.f ? -1.f : (v > 1.f ? 1.f : v);
    }
}

void rhd_fit_triplane_new(rhd_triplane *t, const rhd_fit_cfg *cfg, int id) {
    rhd_triplane_alloc(t, cfg->C, cfg->R, cfg->clamp, NULL);
    rhd_fit_triplane_init(t, cfg->seed, id);
}

void rhd_iwc_states_init(rhd_iwc_states *s, int n) {
    s->n = n;
    s->fisher = rhd_xcalloc((size_t)n, sizeof(float *));
    s->optpar = rhd_xcalloc((size_t)n, sizeof(float *));
}

void rhd_iwc_states_free(rhd_iwc_states *s) {
    for (int i = 0; i < s->n; i++) free(s->fisher[i]), free(s->optpar[i]);
    free(s->fisher);
    free(s->optpar);
    memset(s, 0, sizeof *s);
}

/* Host data seen from the context: the host pointer itself on the CPU, else a device copy. */
static float *to_ctx(rhd_ctx *ctx, const float *host, int64_t n) {
    if (ctx->backend == RHD_BACKEND_CPU) return (float *)host;
    float *d = rhd_buf_alloc(ctx, sizeof(float) * (size_t)n);
    rhd_buf_upload(ctx, d, host, sizeof(float) * (size_t)n);
    return d;
}

/* Release a to_ctx copy, first bringing it back to `host` when writeback. */
static void from_ctx(rhd_ctx *ctx, float *host, float *d, int64_t n, int writeback) {
    if (ctx->backend == RHD_BACKEND_CPU || !d) return;
    if (writeback) rhd_buf_download(ctx, host, d, sizeof(float) * (size_t)n);
    rhd_buf_free(ctx, d);
}

/* The stored IWC states a visit's penalty uses (the visit's own avatars', or every one with
 * iwc_all), on the context's side: (*f)[s], (*o)[s] NULL for the others. */
static void iwc_upload(rhd_ctx *ctx, const rhd_fit_cfg *cfg, const rhd_iwc_states *iwc, const rhd_fit_avatar *av, int nav,
                       int64_t total, float ***f, float ***o) {
    *f = rhd_xcalloc((size_t)iwc->n, sizeof(float *)), *o = rhd_xcalloc((size_t)iwc->n, sizeof(float *));
    for (int s = 0; s < iwc->n; s++) {
        if (!iwc->fisher[s]) continue;
        int mine = 0;
        for (int a = 0; a < nav; a++) mine |= av[a].id == s;
        if (!mine && !cfg->iwc_all) continue;
        (*f)[s] = to_ctx(ctx, iwc->fisher[s], total);
        (*o)[s] = to_ctx(ctx, iwc->optpar[s], total);
    }
}

/* Avatar s's IWC state after its visit: the accumulated Fisher (normalized per tensor in that
 * mode) and the decoder parameters, into host memory. */
static void iwc_store(rhd_ctx *ctx, const rhd_fit_cfg *cfg, const rhd_params *P, const float *fisher, rhd_iwc_states *iwc,
                      int s) {
    if (!iwc->fisher[s]) iwc->fisher[s] = rhd_xmalloc(sizeof(float) * (size_t)P->total);
    if (!iwc->optpar[s]) iwc->optpar[s] = rhd_xmalloc(sizeof(float) * (size_t)P->total);
    rhd_buf_download(ctx, iwc->fisher[s], fisher, sizeof(float) * (size_t)P->total);
    rhd_buf_download(ctx, iwc->optpar[s], P->data, sizeof(float) * (size_t)P->total);
    if (cfg->fisher_mode == RHD_FISHER_NORMALIZED) rhd_fit_fisher_normalize(P, iwc->fisher[s]);
}

void rhd_fit_fisher_normalize(const rhd_params *P, float *F) {
    for (int t = 0; t < P->n; t++) {
        float *f = F + P->info[t].offset;
        int64_t n = P->info[t].numel;
        double sum = 0;
        for (int64_t i = 0; i < n; i++) sum += f[i];
        if (n == 0 || sum <= 0) continue;
        double inv = (double)n / sum;
        for (int64_t i = 0; i < n; i++) f[i] = (float)(f[i] * inv);
    }
}

/* The order of an avatar's training views in one epoch: Fisher-Yates from Philox. */
static void view_perm(int *perm, int n, uint64_t seed, int64_t epoch) {
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        uint32_t x = rhd_rng_block(seed, RHD_STREAM(RHD_STREAM_SHUFFLE, epoch), (uint64_t)i).v[0];
        int j = (int)(((uint64_t)x * (uint64_t)(i + 1)) >> 32);
        int t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
}

/* L_dist (§7.3) of one avatar: K points and their perturbed copies through the density path;
 * gradients scaled by `scale` into dplanes (+=) and the decoder (+=). Returns the loss. */
static double dist_loss(rhd_renderer *r, const rhd_fit_cfg *cfg, const rhd_triplane *T, float *dplanes, uint64_t seed,
                        int64_t step, double scale, int want) {
    int K = cfg->dist_points;
    if (K <= 0 || scale == 0) return 0;
    rhd_ctx *ctx = r->ctx;
    float *pts = rhd_xmalloc(sizeof(float) * 6 * (size_t)K), *sig = rhd_xmalloc(sizeof(float) * 2 * (size_t)K),
          *dsig = rhd_xmalloc(sizeof(float) * 2 * (size_t)K);
    uint64_t st = RHD_STREAM(RHD_STREAM_GRID, step);
    for (int k = 0; k < K; k++)
        for (int a = 0; a < 3; a++) {
            float q = 2.f * rhd_rng_uniform(seed, st, (uint64_t)(3 * k + a)) - 1.f;
            pts[3 * k + a] = q;
            pts[3 * (K + k) + a] = q + cfg->dist_sigma * rhd_rng_normal(seed ^ 0x51u, st, (uint64_t)(3 * k + a));
        }
    /* the K point pairs are few: drawn and reduced on the host, decoded on the context (in the
     * renderer's scratch on CUDA: 6K points, 2K densities, 2K gradients) */
    int cpu = ctx->backend == RHD_BACKEND_CPU;
    float *buf = cpu ? NULL : rhd_renderer_scratch(r, 10 * (int64_t)K);
    float *pts_c = cpu ? pts : buf, *sig_c = cpu ? sig : buf + 6 * K, *dsig_c = cpu ? dsig : buf + 8 * K;
    if (!cpu) rhd_buf_upload(ctx, pts_c, pts, sizeof(float) * 6 * (size_t)K);
    rhd_decoder_density(ctx, r->dec, &r->acts, sig_c, pts_c, T->planes, T->R, T->clamp, 2 * K);
    if (!cpu) rhd_buf_download(ctx, sig, sig_c, sizeof(float) * 2 * (size_t)K);
    double l = 0, m = 0;
    for (int k = 0; k < K; k++) {
        double d = (double)sig[k] - sig[K + k];
        l += fabs(d), m += sig[k];
        float sg = d > 0 ? 1.f : (d < 0 ? -1.f : 0.f);
        dsig[k] = (float)(scale * (sg + cfg->dist_inner) / K);
        dsig[K + k] = (float)(scale * -sg / K);
    }
    if (!cpu) rhd_buf_upload(ctx, dsig_c, dsig, sizeof(float) * 2 * (size_t)K);
    rhd_decoder_density_backward(ctx, r->dec, &r->acts, dplanes, dsig_c, pts_c, T->planes, T->R, T->clamp, 2 * K, want);
    free(pts), free(sig), free(dsig);
    return l / K + cfg->dist_inner * m / K;
}

double rhd_fit_eval(rhd_renderer *r, rhd_occgrid *g, const rhd_triplane *T, const rhd_fit_views *v, int warmup,
                    uint64_t seed, double *psnr_each, float *render_out) {
    if (!v || v->n == 0) return NAN;
    int64_t np = (int64_t)v->W * v->H * 3;
    float *img = render_out ? NULL : rhd_xmalloc(sizeof(float) * (size_t)np);
    rhd_triplane dev;
    rhd_triplane_to_ctx(&dev, T, r->ctx);
    if (warmup > 0) rhd_renderer_grid_warmup(r, g, &dev, seed, warmup);
    double sum = 0;
    for (int i = 0; i < v->n; i++) {
        float *out = render_out ? render_out + np * i : img;
        rhd_render_camera cam = {v->c2w + 12 * i, {v->fx, v->fy, v->cx, v->cy}, v->W, v->H};
        rhd_renderer_render_view(r, g, &dev, &cam, out);
        double p = rhd_psnr(out, v->gt + np * i, np);
        if (psnr_each) psnr_each[i] = p;
        sum += p;
    }
    free(img);
    rhd_triplane_free(&dev);
    return sum / v->n;
}

double rhd_fit_background_psnr(const rhd_fit_views *v) {
    if (!v || v->n == 0) return NAN;
    int64_t np = (int64_t)v->W * v->H * 3;
    float *white = rhd_xmalloc(sizeof(float) * (size_t)np);
    for (int64_t i = 0; i < np; i++) white[i] = 1.f;
    double sum = 0;
    for (int i = 0; i < v->n; i++) sum += rhd_psnr(white, v->gt + np * i, np);
    free(white);
    return sum / v->n;
}

/* The eval PSNR of a fitted avatar (the visit's grid, or a fresh one as rhd-render's) and the
 * end-of-visit collapse check (fitter.h). */
static void eval_after_visit(rhd_renderer *r, const rhd_fit_cfg *cfg, rhd_occgrid *g, rhd_fit_avatar *av, uint64_t seed) {
    rhd_triplane host = av->planes;
    host.clamp = cfg->clamp;
    int fresh = cfg->eval_warmup > 0;
    av->psnr = rhd_fit_eval(r, g, &host, av->eval, cfg->eval_warmup, fresh ? cfg->seed : seed, NULL, NULL);
    av->psnr_bg = rhd_fit_background_psnr(av->eval);
    if (cfg->collapse_opacity > 0 && av->psnr < av->psnr_bg + 0.25) av->collapsed = 1;
}

/* The avatars of a visit: at least one, a ray each, host [3,C,R,R] triplanes of the decoder's C
 * and one R. */
static int check_visit(const rhd_fit_cfg *cfg, const rhd_decoder *dec, int entry_index, const rhd_fit_avatar *av, int nav,
                       rhd_err *e) {
    if (nav < 1) return rhd_errf(e, "entry %d: no avatars, expected at least one", entry_index);
    if (cfg->rays < nav) return rhd_errf(e, "--rays: %lld rays for %d avatars, expected at least one each", (long long)cfg->rays, nav);
    for (int a = 0; a < nav; a++) {
        const rhd_triplane *t = &av[a].planes;
        if (t->C != dec->cfg.C || t->layout != RHD_TRIPLANE_PLANES || t->ctx)
            return rhd_errf(e, "%s: a host triplane [3,%d,R,R] in the %s layout, expected [3,%d,R,R] for the decoder",
                            av[a].name, t->C, rhd_triplane_layout_name(t->layout), dec->cfg.C);
        if (t->R != av[0].planes.R)
            return rhd_errf(e, "entry %d: the triplanes of %s and %s differ in resolution, expected one size", entry_index,
                            av[0].name, av[a].name);
    }
    return 0;
}

int rhd_fit_visit(rhd_renderer *r, const rhd_fit_cfg *cfg, const rhd_plan *plan, int entry_index,
                  rhd_fit_avatar *av, int nav, rhd_iwc_states *iwc, int log_every, rhd_fit_result *res, rhd_err *e) {
    rhd_ctx *ctx = r->ctx;
    const rhd_plan_entry *en = &plan->entries[entry_index];
    rhd_decoder *dec = r->dec;
    rhd_params *P = &dec->P;
    int train_dec = !cfg->freeze_decoder && en->decoder_lr > 0; /* a plan entry may freeze it */
    double w_iwc = cfg->w_iwc_override >= 0 ? cfg->w_iwc_override : plan->iwc_weight;
    double t_start = rhd_now();
    res->last_mse = res->last_loss = res->iwc_loss = res->seconds = 0, res->samples = 0;
    __atomic_store_n(&res->steps, 0, __ATOMIC_RELAXED); /* a progress thread may be reading it */

    if (check_visit(cfg, dec, entry_index, av, nav, e) || nav < 1) return -1; /* (nav < 1: for the compiler) */
    int64_t tri_n = rhd_triplane_numel(&av[0].planes);
    /* per-avatar state */
    float **grad = rhd_xcalloc((size_t)nav, sizeof(float *)), **m = rhd_xcalloc((size_t)nav, sizeof(float *)),
          **v = rhd_xcalloc((size_t)nav, sizeof(float *)), **gt = rhd_xcalloc((size_t)nav, sizeof(float *));
    rhd_triplane *tri = rhd_xcalloc((size_t)nav, sizeof(rhd_triplane)); /* the triplanes on the context's side */
    rhd_occgrid *grids = rhd_xcalloc((size_t)nav, sizeof(rhd_occgrid));
    uint64_t *seeds = rhd_xcalloc((size_t)nav, sizeof(uint64_t));
    int **perm = rhd_xcalloc((size_t)nav, sizeof(int *));
    rhd_occgrid_cfg gc = rhd_renderer_grid_cfg(r);
    for (int a = 0; a < nav; a++) {
        grad[a] = rhd_buf_alloc(ctx, sizeof(float) * (size_t)tri_n);
        m[a] = rhd_buf_alloc(ctx, sizeof(float) * (size_t)tri_n);
        v[a] = rhd_buf_alloc(ctx, sizeof(float) * (size_t)tri_n);
        rhd_buf_zero(ctx, m[a], sizeof(float) * (size_t)tri_n);
        rhd_buf_zero(ctx, v[a], sizeof(float) * (size_t)tri_n);
        rhd_triplane_to_ctx(&tri[a], &av[a].planes, ctx);
        tri[a].clamp = cfg->clamp;
        gt[a] = to_ctx(ctx, av[a].train->gt, (int64_t)av[a].train->n * av[a].train->W * av[a].train->H * 3);
        if (rhd_occgrid_init(ctx, &grids[a], &gc, e)) return -1;
        seeds[a] = rhd_fit_seed(cfg->seed, (uint64_t)av[a].id, (uint64_t)entry_index);
        perm[a] = rhd_xmalloc(sizeof(int) * (size_t)av[a].train->n);
        if (cfg->mark_untrained) {
            rhd_intrinsics in = {av[a].train->fx, av[a].train->fy, av[a].train->cx, av[a].train->cy};
            rhd_occgrid_mark_untrained(ctx, &grids[a], av[a].train->c2w, av[a].train->n, in);
        }
    }
    float *fisher = NULL;
    if (train_dec) {
        fisher = rhd_buf_alloc(ctx, sizeof(float) * (size_t)P->total);
        rhd_buf_zero(ctx, fisher, sizeof(float) * (size_t)P->total);
    }
    /* the stored IWC states this visit's penalty uses, on the context's side */
    float **iwc_f = NULL, **iwc_o = NULL;
    if (train_dec && w_iwc > 0 && iwc) iwc_upload(ctx, cfg, iwc, av, nav, P->total, &iwc_f, &iwc_o);
    int fisher_steps = cfg->fisher_steps < 1 ? 1 : cfg->fisher_steps;
    if (fisher_steps > en->steps) fisher_steps = (int)en->steps;

    rhd_adam_cfg tri_adam = {0, 0.9, 0.99, cfg->tri_eps, 0, 0}, dec_adam = {0, 0.9, 0.99, 1e-15, 0, 0};
    int64_t share_base = cfg->rays / nav, extra = cfg->rays % nav;
    int64_t check_after = en->steps / 10 > 50 ? en->steps / 10 : 50;
    for (int a = 0; a < nav; a++) av[a].opacity = NAN, av[a].collapsed = 0;
    int stop = 0;
    for (int64_t k = 0; k < en->steps && !stop; k++) {
        if (k % cfg->update_interval == 0)
            for (int a = 0; a < nav; a++) rhd_renderer_grid_update(r, &grids[a], &tri[a], seeds[a]);
        if (train_dec) rhd_buf_zero(ctx, P->grad, sizeof(float) * (size_t)P->total);
        double loss = 0, mse_sum = 0;
        for (int a = 0; a < nav; a++) {
            rhd_fit_views *tv = av[a].train;
            int64_t N = share_base + (a < extra);
            double share = (double)N / (double)cfg->rays;
            if (k % tv->n == 0) view_perm(perm[a], tv->n, seeds[a], k / tv->n);
            int vi = perm[a][k % tv->n];
            rhd_buf_zero(ctx, grad[a], sizeof(float) * (size_t)tri_n);
            rhd_render_stats st = {0};
            const float *img = gt[a] + (size_t)vi * tv->W * tv->H * 3;
            rhd_render_camera cam = {tv->c2w + 12 * vi, {tv->fx, tv->fy, tv->cx, tv->cy}, tv->W, tv->H};
            rhd_train_rays_opts ro = {N, seeds[a], k, (float)share, train_dec};
            double mse = rhd_renderer_train_rays(r, &grids[a], &tri[a], grad[a], &cam, img, &ro, &st);
            res->samples += st.samples_kept;
            av[a].opacity = k == 0 ? st.opacity : 0.9 * av[a].opacity + 0.1 * st.opacity;
            if (cfg->collapse_opacity > 0 && k + 1 >= check_after && av[a].opacity < cfg->collapse_opacity) {
                av[a].collapsed = 1, stop = 1;
                rhd_warn("%s: training opacity %.2g at step %lld (below %g): the density is empty, stopping the visit",
                         av[a].name, av[a].opacity, (long long)k + 1, cfg->collapse_opacity);
            }
            mse_sum += share * mse;
            loss += share * mse;
            const rhd_triplane *T = &tri[a];
            double gate = cfg->reg_gate > 0 && av[a].opacity < cfg->reg_gate ? av[a].opacity / cfg->reg_gate : 1.0;
            double w_l1 = gate * cfg->w_l1, w_tv = gate * cfg->w_tv, w_dist = gate * cfg->w_dist; /* fitter.h */
            if (w_l1 > 0) loss += w_l1 * rhd_loss_triplane_l1(ctx, grad[a], T->planes, T->C, T->R, (float)w_l1, T->clamp);
            if (w_tv > 0) loss += w_tv * rhd_loss_triplane_tv(ctx, grad[a], T->planes, T->C, T->R, (float)w_tv, T->clamp);
            if (w_dist > 0) loss += share * w_dist * dist_loss(r, cfg, T, grad[a], seeds[a], k, share * w_dist, train_dec);
        }
        /* the Fisher's squared gradients: normalized mode without the IWC term's own gradient */
        int acc = train_dec && k >= en->steps - fisher_steps;
        if (acc && cfg->fisher_mode == RHD_FISHER_NORMALIZED) rhd_sqr_acc(ctx, fisher, P->grad, (float)fisher_steps, P->total);
        if (iwc_f) {
            double l = 0;
            for (int s = 0; s < iwc->n; s++)
                if (iwc_f[s]) l += rhd_loss_iwc(ctx, P->grad, P->data, iwc_f[s], iwc_o[s], P->total, w_iwc);
            loss += l;
            res->iwc_loss = l;
        }
        if (acc && cfg->fisher_mode != RHD_FISHER_NORMALIZED) rhd_sqr_acc(ctx, fisher, P->grad, (float)fisher_steps, P->total);
        tri_adam.lr = rhd_plan_triplane_lr(en, k);
        for (int a = 0; a < nav; a++) rhd_adam_step(ctx, tri[a].planes, m[a], v[a], grad[a], tri_n, &tri_adam, k + 1);
        if (train_dec) {
            dec_adam.lr = rhd_plan_decoder_lr(plan, en, k);
            rhd_adam_step(ctx, P->data, P->m, P->v, P->grad, P->total, &dec_adam, en->first_step + k + 1);
        }
        res->last_mse = mse_sum, res->last_loss = loss;
        __atomic_store_n(&res->steps, k + 1, __ATOMIC_RELAXED); /* read by rhd-fit's progress lines */
        if (!isfinite(loss)) {
            rhd_errf(e, "entry %d: the loss became %g at step %lld, expected a finite value (lower the learning rates)",
                     entry_index, loss, (long long)k);
            goto fail;
        }
        if (log_every > 0 && ((k + 1) % log_every == 0 || k + 1 == en->steps))
            rhd_info("entry %d (round %d, %s%s): step %lld/%lld loss %.5f mse %.5f (psnr %.2f) opacity %.3f", entry_index,
                     en->round, av[0].name, nav > 1 ? " +group" : "", (long long)k + 1, en->steps, loss, mse_sum,
                     -10 * log10(mse_sum), av[0].opacity);
    }
    if (train_dec && iwc)
        for (int a = 0; a < nav; a++) iwc_store(ctx, cfg, P, fisher, iwc, av[a].id);
    for (int a = 0; a < nav; a++) { /* the fitted triplanes back to the caller */
        rhd_triplane_download(&av[a].planes, &tri[a]);
        rhd_triplane_free(&tri[a]);
    }
    for (int a = 0; a < nav; a++) eval_after_visit(r, cfg, &grids[a], &av[a], seeds[a]);
    res->seconds = rhd_now() - t_start;
    int rc = 0;
    if (0) {
    fail:
        rc = -1;
    }
    for (int a = 0; a < nav; a++) {
        rhd_buf_free(ctx, grad[a]), rhd_buf_free(ctx, m[a]), rhd_buf_free(ctx, v[a]), free(perm[a]);
        rhd_triplane_download(&av[a].planes, &tri[a]); /* after a failure: the planes as they are, as on the CPU */
        rhd_triplane_free(&tri[a]);
        from_ctx(ctx, NULL, gt[a], 0, 0);
        rhd_occgrid_free(ctx, &grids[a]);
    }
    if (iwc_f)
        for (int s = 0; s < iwc->n; s++) from_ctx(ctx, NULL, iwc_f[s], 0, 0), from_ctx(ctx, NULL, iwc_o[s], 0, 0);
    free(iwc_f), free(iwc_o);
    rhd_buf_free(ctx, fisher);
    free(grad), free(m), free(v), free(tri), free(gt), free(perm), free(grids), free(seeds);
    return rc;
}
