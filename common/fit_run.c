/* common/fit_run.c: a stage-1 fitting run (see fit_run.h). Above the models: writes files. */
#include "common/fit_run.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include "common/fs.h"
#include "common/log.h"
#include "common/model_io.h"

static char *join(const char *a, const char *b, const char *suffix) {
    size_t n = strlen(a) + strlen(b) + strlen(suffix) + 2;
    char *p = rhd_xmalloc(n);
    snprintf(p, n, "%s/%s%s", a, b, suffix);
    return p;
}

char *rhd_fit_run_triplane_path(const rhd_fit_run *run, int avatar) {
    return join(run->tri_dir, run->plan->avatars[avatar], ".safetensors");
}

static char *iwc_path(const rhd_fit_run *run, int avatar) {
    return join(run->iwc_dir, run->plan->avatars[avatar], ".safetensors");
}

/* ---- crash points (test hook) ---- */

static int64_t g_crash_after = -1, g_crash_count;
static int g_crash_trace = -1;

static int crash_hit(const char *what, const char *path) {
    if (g_crash_trace < 0) {
        const char *a = getenv("RHD_CRASH_AFTER"), *t = getenv("RHD_CRASH_TRACE");
        g_crash_after = a && *a ? atol(a) : -1;
        g_crash_trace = t && *t && strcmp(t, "0");
    }
    g_crash_count++;
    if (g_crash_trace) fprintf(stderr, "%s: crash point %ld: %s %s\n", rhd_prog(), g_crash_count, what, path);
    return g_crash_count == g_crash_after;
}

void rhd_crash_point(const char *what, const char *path) {
    if (crash_hit(what, path)) _exit(137);
}

void rhd_crash_before_write(const char *path) {
    if (!crash_hit("before writing", path)) return;
    size_t n = strlen(path) + 5;
    char *tmp = rhd_xmalloc(n);
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb"); /* a torn write: what a kill in the middle leaves */
    if (f) fputs("torn write", f), fclose(f);
    _exit(137);
}

/* ---- heartbeat ---- */

struct rhd_heartbeat {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, tty;
    double interval, t_run, t_phase, sec_done;
    long long steps, steps_done;
    const int64_t *done; /* the phase's steps run so far, or NULL */
    char phase[256];
};

static void *heartbeat_main(void *arg) {
    rhd_heartbeat *hb = arg;
    pthread_mutex_lock(&hb->mu);
    while (!hb->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double w = ts.tv_sec + 1e-9 * ts.tv_nsec + hb->interval;
        ts.tv_sec = (time_t)w, ts.tv_nsec = (int64_t)((w - (double)(time_t)w) * 1e9);
        pthread_cond_timedwait(&hb->cv, &hb->mu, &ts);
        if (hb->stop || !hb->phase[0]) continue;
        double now = rhd_now();
        char el[32], run[32], eta[48] = "", at[64] = "";
        rhd_format_duration(now - hb->t_phase, el, sizeof el);
        rhd_format_duration(now - hb->t_run, run, sizeof run);
        long long k = hb->done ? (long long)__atomic_load_n(hb->done, __ATOMIC_RELAXED) : 0;
        double left = -1;
        if (hb->steps > 0 && k > 0) { /* the phase's own rate */
            snprintf(at, sizeof at, ", step %lld/%lld", k, hb->steps);
            left = (double)(hb->steps - k) * (now - hb->t_phase) / (double)k;
        } else if (hb->steps > 0 && hb->steps_done > 0 && hb->sec_done > 0) /* the rate of earlier phases */
            left = hb->steps / (hb->steps_done / hb->sec_done) - (now - hb->t_phase);
        if (left >= 0 || (hb->steps > 0 && hb->steps_done > 0)) {
            char d[32];
            rhd_format_duration(left > 0 ? left : 0, d, sizeof d);
            snprintf(eta, sizeof eta, ", about %s left", d);
        }
        fprintf(stderr, hb->tty ? "\r%s: %s%s: fitting for %s%s (total %s)\033[K" : "%s: %s%s: fitting for %s%s (total %s)\n",
                rhd_prog(), hb->phase, at, el, eta, run);
        fflush(stderr);
    }
    pthread_mutex_unlock(&hb->mu);
    return NULL;
}

rhd_heartbeat *rhd_heartbeat_start(void) {
    if (rhd_log_level() < RHD_LOG_INFO) return NULL;
    rhd_heartbeat *hb = rhd_xcalloc(1, sizeof *hb);
    const char *iv = getenv("RHD_PROGRESS_INTERVAL");
    hb->interval = iv ? atof(iv) : 10.0;
    if (!(hb->interval > 0)) hb->interval = 10.0;
    hb->tty = isatty(2);
    hb->t_run = hb->t_phase = rhd_now();
    pthread_mutex_init(&hb->mu, NULL);
    pthread_cond_init(&hb->cv, NULL);
    if (pthread_create(&hb->th, NULL, heartbeat_main, hb)) {
        free(hb);
        return NULL;
    }
    return hb;
}

void rhd_heartbeat_phase(rhd_heartbeat *hb, const char *phase, long long steps, const int64_t *done) {
    if (!hb) return;
    pthread_mutex_lock(&hb->mu);
    double now = rhd_now();
    if (hb->phase[0] && hb->steps > 0) hb->steps_done += hb->steps, hb->sec_done += now - hb->t_phase;
    snprintf(hb->phase, sizeof hb->phase, "%s", phase ? phase : "");
    hb->steps = steps, hb->t_phase = now, hb->done = done;
    pthread_mutex_unlock(&hb->mu);
}

void rhd_heartbeat_unwatch(rhd_heartbeat *hb) {
    if (!hb) return;
    pthread_mutex_lock(&hb->mu);
    hb->done = NULL;
    pthread_mutex_unlock(&hb->mu);
}

void rhd_heartbeat_stop(rhd_heartbeat *hb) {
    if (!hb) return;
    pthread_mutex_lock(&hb->mu);
    hb->stop = 1;
    pthread_cond_signal(&hb->cv);
    pthread_mutex_unlock(&hb->mu);
    pthread_join(hb->th, NULL);
    pthread_mutex_destroy(&hb->mu);
    pthread_cond_destroy(&hb->cv);
    free(hb);
}

/* ---- the run directory (formats/run.md) ---- */

static char *pending_path(const rhd_fit_run *run, int k, const char *sub, const char *avatar, const char *suffix) {
    size_t n = strlen(run->pend_dir) + strlen(sub) + strlen(avatar) + strlen(suffix) + 32;
    char *p = rhd_xmalloc(n);
    snprintf(p, n, "%s/%d/%s/%s%s", run->pend_dir, k, sub, avatar, suffix);
    return p;
}

static int remove_file(const char *path, rhd_err *e) {
    if (remove(path) == 0) {
        rhd_crash_point("removed", path);
        return 0;
    }
    if (errno == ENOENT) return 0;
    return rhd_errf(e, "%s: cannot remove: %s", path, strerror(errno));
}

/* "<path>.tmp": a torn write of a file outside pending/ (a kill while a writer of an older layout or
 * another tool wrote there), never part of a committed state. */
static int remove_stray_tmp(const char *path, rhd_err *e) {
    size_t n = strlen(path) + 5;
    char *t = rhd_xmalloc(n);
    snprintf(t, n, "%s.tmp", path);
    int rc = remove_file(t, e);
    free(t);
    return rc;
}

static int move_file(const char *from, const char *to, rhd_err *e) {
    if (rename(from, to) == 0) {
        rhd_crash_point("moved into place", to);
        return 0;
    }
    if (errno == ENOENT) return 0; /* moved before a kill */
    return rhd_errf(e, "%s: cannot move to %s: %s", from, to, strerror(errno));
}

/* pending/<k>/: moved into place (commit != 0) or removed, then the directory itself. */
static int settle_pending(rhd_fit_run *run, int k, int commit, rhd_err *e) {
    static const char *const kinds[][2] = {{"triplanes", ".safetensors"}, {"triplanes", ".npy"}, {"iwc", ".safetensors"}};
    const rhd_plan_entry *en = &run->plan->entries[k];
    int rc = 0;
    for (int j = 0; j < en->navatars && !rc; j++) {
        const char *name = run->plan->avatars[en->avatars[j]];
        for (int t = 0; t < 3 && !rc; t++) {
            char *p = pending_path(run, k, kinds[t][0], name, kinds[t][1]);
            size_t n = strlen(p) + 5;
            char *pt = rhd_xmalloc(n);
            snprintf(pt, n, "%s.tmp", p);
            rc = remove_file(pt, e);
            if (!rc) {
                if (commit) {
                    char *to = join(t == 2 ? run->iwc_dir : run->tri_dir, name, kinds[t][1]);
                    rc = move_file(p, to, e);
                    free(to);
                } else
                    rc = remove_file(p, e);
            }
            free(p), free(pt);
        }
    }
    char dir[64];
    const char *subs[] = {"triplanes", "iwc", ""};
    for (int t = 0; t < 3 && !rc; t++) {
        char *d = rhd_xmalloc(strlen(run->pend_dir) + sizeof dir);
        sprintf(d, "%s/%d/%s", run->pend_dir, k, subs[t]);
        if (rmdir(d) != 0 && errno != ENOENT)
            rc = rhd_errf(e, "%s: cannot remove the directory (%s), expected only the files of entry %d", d, strerror(errno), k);
        free(d);
    }
    return rc;
}

/* The last entry before `done` that visited avatar i (-1: none). */
static int last_visit(const rhd_plan *plan, int i, int done) {
    for (int k = done - 1; k >= 0; k--)
        for (int j = 0; j < plan->entries[k].navatars; j++)
            if (plan->entries[k].avatars[j] == i) return k;
    return -1;
}

/* The directory made to agree with the committed state run->start: pending files of the committed
 * entry moved into place, other pending files and leftovers removed, the files of every visited
 * avatar loaded (they must be there, of its last visiting entry), the decoder rewritten. */
static int reconcile(rhd_fit_run *run, rhd_err *e) {
    const rhd_plan *plan = run->plan;
    const rhd_fit_cfg *fc = &run->cfg.fit;
    int n = run->start, rc = 0;
    char *t1 = join(run->tri_dir, "x", ""), *t2 = join(run->iwc_dir, "x", "");
    rc = rhd_mkdir_parents(t1, e) || rhd_mkdir_parents(t2, e) ? -1 : 0;
    free(t1), free(t2);
    for (int k = 0; k < plan->nentries && !rc; k++) rc = settle_pending(run, k, k == n - 1, e);
    if (!rc && rmdir(run->pend_dir) != 0 && errno != ENOENT && errno != ENOTEMPTY)
        rc = rhd_errf(e, "%s: cannot remove: %s", run->pend_dir, strerror(errno));
    char *dt = join(run->cfg.dir, "decoder", ".safetensors.tmp"), *ct = join(run->cfg.dir, "checkpoint", ".safetensors.tmp");
    if (!rc) rc = remove_file(dt, e) || remove_file(ct, e) ? -1 : 0;
    free(dt), free(ct);
    for (int i = 0; i < plan->navatars && !rc; i++) {
        char *tp = rhd_fit_run_triplane_path(run, i), *ip = iwc_path(run, i), *np = join(run->tri_dir, plan->avatars[i], ".npy");
        int L = last_visit(plan, i, n), ent = -1;
        if (remove_stray_tmp(tp, e) || remove_stray_tmp(ip, e) || remove_stray_tmp(np, e))
            rc = -1;
        else if (L < 0) /* not visited in the committed state: anything there is from an earlier run */
            rc = remove_file(tp, e) || remove_file(ip, e) || remove_file(np, e) ? -1 : 0;
        else if (!rhd_file_exists(tp))
            rc = rhd_errf(e, "%s: missing, expected the triplane of %s written by entry %d (the checkpoint records %d "
                             "entries; restore the file or start over with --force)", tp, plan->avatars[i], L, n);
        else if (!rhd_file_exists(ip))
            rc = rhd_errf(e, "%s: missing, expected the IWC state of %s written by entry %d (restore the file or start "
                             "over with --force)", ip, plan->avatars[i], L);
        else {
            rhd_triplane_alloc(&run->planes[i], fc->C, fc->R, fc->clamp, NULL);
            if (rhd_triplane_load(tp, &run->planes[i], 0, &ent, e)) rc = -1;
            else if (ent != L)
                rc = rhd_errf(e, "%s: written by entry %d, expected entry %d (the last of the checkpoint's %d entries "
                                 "that visited %s)", tp, ent, L, n, plan->avatars[i]);
            else if (rhd_iwc_file_read(ip, &run->dec, &run->iwc.fisher[i], &run->iwc.optpar[i], &ent, e)) rc = -1;
            else if (ent != L)
                rc = rhd_errf(e, "%s: written by entry %d, expected entry %d", ip, ent, L);
            else if (run->cfg.also_npy && !rhd_file_exists(np)) {
                rhd_triplane_meta tm = {run->cfg.tool, plan->avatars[i], L, 1, fc->seed, rhd_ctx_device_label(run->ctx)};
                rc = rhd_triplane_save(np, &run->planes[i], &tm, 0, e);
            }
        }
        free(tp), free(ip), free(np);
    }
    if (!rc && n == 0) rc = remove_file(run->dec_path, e);
    if (!rc && n > 0) {
        rhd_decoder_file_info di = {fc->R, 0, 0, run->cfg.render.bound};
        rhd_crash_before_write(run->dec_path);
        rc = rhd_decoder_file_write(run->dec_path, &run->dec, &di, run->cfg.tool, e);
        if (!rc) rhd_crash_point("wrote", run->dec_path);
    }
    return rc ? -1 : 0;
}

static int write_checkpoint(rhd_fit_run *run, int done, long long step, rhd_err *e) {
    char *rec = cJSON_PrintUnformatted(run->records);
    rhd_fit_checkpoint ck = {done, step, run->cfg.fit.seed, run->plan_text, rec, run->options_text};
    rhd_crash_before_write(run->ckpt_path);
    int rc = rhd_fit_checkpoint_write(run->ckpt_path, &run->dec, &ck, run->cfg.tool, e);
    if (!rc) rhd_crash_point("committed", run->ckpt_path);
    free(rec);
    return rc;
}

/* The options that decide a run's numbers, by their rhd-fit names (the checkpoint's rhd.options):
 * --resume refuses other values, which would silently mix two runs. The seed and the plan are
 * checked apart; views and data options are not recorded (they name files, not numbers). */
static char *options_json(const rhd_fit_run_cfg *cfg) {
    const rhd_fit_cfg *f = &cfg->fit;
    const rhd_render_cfg *r = &cfg->render;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "triplane-res", f->R), cJSON_AddNumberToObject(o, "triplane-channels", f->C);
    cJSON_AddNumberToObject(o, "rays", (double)f->rays);
    cJSON_AddStringToObject(o, "plane-agg", rhd_plane_agg_name(f->agg));
    cJSON_AddNumberToObject(o, "l1-weight", f->w_l1), cJSON_AddNumberToObject(o, "tv-weight", f->w_tv);
    cJSON_AddNumberToObject(o, "dist-weight", f->w_dist), cJSON_AddNumberToObject(o, "dist-points", f->dist_points);
    cJSON_AddNumberToObject(o, "iwc-weight", f->w_iwc_override);
    cJSON_AddStringToObject(o, "iwc-fisher", f->fisher_mode == RHD_FISHER_NORMALIZED ? "normalized" : "original");
    cJSON_AddStringToObject(o, "iwc-scope", f->iwc_all ? "all" : "own");
    cJSON_AddNumberToObject(o, "fisher-steps", f->fisher_steps); /* after --iwc-fisher, whose default it follows */
    cJSON_AddNumberToObject(o, "triplane-eps", f->tri_eps), cJSON_AddNumberToObject(o, "reg-gate", f->reg_gate);
    cJSON_AddNumberToObject(o, "update-interval", f->update_interval);
    cJSON_AddBoolToObject(o, "mark-untrained", f->mark_untrained), cJSON_AddBoolToObject(o, "clamp", f->clamp);
    cJSON_AddNumberToObject(o, "bound", r->bound), cJSON_AddNumberToObject(o, "min-near", r->min_near);
    cJSON_AddNumberToObject(o, "grid-size", r->grid_size), cJSON_AddNumberToObject(o, "max-steps", r->max_steps);
    cJSON_AddNumberToObject(o, "dt-gamma", r->dt_gamma), cJSON_AddNumberToObject(o, "T-thresh", r->T_thresh);
    cJSON_AddNumberToObject(o, "density-thresh", r->density_thresh), cJSON_AddNumberToObject(o, "grid-decay", r->grid_decay);
    cJSON_AddNumberToObject(o, "full-updates", r->full_updates);
    cJSON_AddBoolToObject(o, "drop-rays", !r->force_all_rays);
    cJSON_AddBoolToObject(o, "double-normalization", r->double_norm);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* The checkpoint's options against this run's: -1 naming the first that differs. */
static int same_options(const rhd_fit_run *run, const char *stored, rhd_err *e) {
    if (!stored) return 0; /* written before options were recorded */
    cJSON *a = cJSON_Parse(stored), *b = cJSON_Parse(run->options_text);
    int rc = 0;
    if (!cJSON_IsObject(a))
        rc = rhd_errf(e, "%s: metadata rhd.options is not a JSON object, expected the run's options (restore the file "
                         "or start over with --force)", run->ckpt_path);
    /* options added after checkpoints were first written: their value when the checkpoint lacks them */
    cJSON *later = cJSON_CreateObject();
    cJSON_AddStringToObject(later, "plane-agg", rhd_plane_agg_name(RHD_PLANE_MEAN));
    for (const cJSON *it = b ? b->child : NULL; it && !rc; it = it->next) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, it->string);
        if (!v && cJSON_IsObject(a)) v = cJSON_GetObjectItemCaseSensitive(later, it->string);
        if (!v || !cJSON_Compare(v, it, 1)) {
            char *x = v ? cJSON_PrintUnformatted(v) : NULL, *y = cJSON_PrintUnformatted(it);
            rc = rhd_errf(e, "%s: --%s is %s in the checkpoint, %s now, expected the same options to resume (or --force "
                             "to start over)", run->ckpt_path, it->string, x ? x : "(absent)", y);
            free(x), free(y);
        }
    }
    cJSON_Delete(a), cJSON_Delete(b), cJSON_Delete(later);
    return rc;
}

/* The state after the checkpoint's entries: decoder + Adam, records, finished triplanes and IWC. */
static int resume(rhd_fit_run *run, rhd_err *e) {
    const rhd_fit_cfg *fc = &run->cfg.fit;
    rhd_fit_checkpoint ck;
    if (rhd_fit_checkpoint_read(run->ckpt_path, &run->dec, &ck, e)) return -1;
    int rc = 0;
    if (strcmp(ck.plan, run->plan_text))
        rc = rhd_errf(e, "%s: written for another plan, expected the run of this plan", run->ckpt_path);
    else if (ck.seed != fc->seed)
        rc = rhd_errf(e, "%s: seed %llu, expected --seed %llu", run->ckpt_path, (unsigned long long)ck.seed,
                      (unsigned long long)fc->seed);
    else if (same_options(run, ck.options, e))
        rc = -1;
    else if (ck.entries_done > run->plan->nentries)
        rc = rhd_errf(e, "%s: %d entries done, expected at most the plan's %d", run->ckpt_path, ck.entries_done,
                      run->plan->nentries);
    if (!rc && ck.records) {
        cJSON *rec = cJSON_Parse(ck.records);
        if (cJSON_IsArray(rec)) {
            cJSON_Delete(run->records);
            run->records = rec;
        } else {
            cJSON_Delete(rec);
            rc = rhd_errf(e, "%s: metadata rhd.records is not a JSON array, expected the per-entry results the run "
                             "wrote (restore the file or start over with --force)", run->ckpt_path);
        }
    }
    run->start = run->next = ck.entries_done;
    rhd_fit_checkpoint_free(&ck);
    if (!rc) rc = reconcile(run, e);
    if (!rc) rhd_info("resuming %s after %d of %d entries", run->cfg.dir, run->start, run->plan->nentries);
    return rc;
}

/* A fresh run: state 0 (the initial decoder) committed first, then the directory reconciled with
 * it (files of an earlier run removed). */
static int fresh(rhd_fit_run *run, rhd_err *e) {
    if (rhd_mkdir_parents(run->ckpt_path, e) || write_checkpoint(run, 0, 0, e)) return -1;
    return reconcile(run, e);
}

int rhd_fit_run_open(rhd_fit_run *run, rhd_ctx *ctx, const rhd_fit_run_cfg *cfg, const rhd_plan *plan,
                     rhd_fit_views *train, rhd_fit_views *eval, rhd_err *e) {
    memset(run, 0, sizeof *run);
    run->cfg = *cfg;
    run->plan = plan, run->train = train, run->eval = eval, run->ctx = ctx;
    run->plan_text = rhd_plan_to_json(plan);
    run->options_text = options_json(cfg);
    run->tri_dir = join(cfg->dir, "triplanes", ""), run->iwc_dir = join(cfg->dir, "iwc", "");
    run->ckpt_path = join(cfg->dir, "checkpoint", ".safetensors"), run->dec_path = join(cfg->dir, "decoder", ".safetensors");
    run->pend_dir = join(cfg->dir, "pending", "");
    run->records = cJSON_CreateArray();
    rhd_iwc_states_init(&run->iwc, plan->navatars);
    run->planes = rhd_xcalloc((size_t)plan->navatars, sizeof(rhd_triplane));
    rhd_decoder_cfg dcfg;
    rhd_decoder_cfg_default(&dcfg);
    dcfg.C = cfg->fit.C;
    dcfg.agg = cfg->fit.agg;
    if (rhd_decoder_init(&run->dec, &dcfg, ctx, 1, e)) return -1;
    rhd_decoder_init_weights(&run->dec, cfg->fit.seed);
    rhd_renderer_init(&run->r, ctx, &run->dec, &cfg->render);
    return cfg->resume ? resume(run, e) : fresh(run, e);
}

/* The files of entry k under pending/<k>/, the checkpoint of state k+1 (the commit), the pending
 * files moved into place, the decoder. */
static int write_entry(rhd_fit_run *run, int k, rhd_err *e) {
    const rhd_plan_entry *en = &run->plan->entries[k];
    const rhd_fit_cfg *fc = &run->cfg.fit;
    const char *tool = run->cfg.tool;
    int rc = 0;
    for (int j = 0; j < en->navatars && !rc; j++) {
        int id = en->avatars[j];
        const char *name = run->plan->avatars[id];
        char *tp = pending_path(run, k, "triplanes", name, ".safetensors"), *ip = pending_path(run, k, "iwc", name, ".safetensors");
        rhd_triplane_meta tm = {tool, name, k, 1, fc->seed, rhd_ctx_device_label(run->ctx)};
        rhd_iwc_meta im = {name, en->round, k, fc->fisher_steps, fc->fisher_mode == RHD_FISHER_NORMALIZED ? "normalized" : "original"};
        rc = rhd_mkdir_parents(tp, e) || rhd_mkdir_parents(ip, e);
        if (!rc) {
            rhd_crash_before_write(tp);
            rc = rhd_triplane_save(tp, &run->planes[id], &tm, run->cfg.also_npy, e);
        }
        if (!rc) rhd_crash_point("wrote", tp);
        if (!rc && run->iwc.fisher[id]) {
            rhd_crash_before_write(ip);
            rc = rhd_iwc_file_write(ip, &run->dec, run->iwc.fisher[id], run->iwc.optpar[id], &im, tool, e);
            if (!rc) rhd_crash_point("wrote", ip);
        }
        free(tp), free(ip);
    }
    if (!rc) rc = write_checkpoint(run, k + 1, en->first_step + en->steps, e);
    if (!rc) rc = settle_pending(run, k, 1, e);
    if (!rc && rmdir(run->pend_dir) != 0 && errno != ENOENT && errno != ENOTEMPTY)
        rc = rhd_errf(e, "%s: cannot remove: %s", run->pend_dir, strerror(errno));
    rhd_decoder_file_info di = {fc->R, 0, 0, run->cfg.render.bound};
    if (!rc) {
        rhd_crash_before_write(run->dec_path);
        rc = rhd_decoder_file_write(run->dec_path, &run->dec, &di, tool, e);
        if (!rc) rhd_crash_point("wrote", run->dec_path);
    }
    return rc ? -1 : 0;
}

int rhd_fit_run_entry(rhd_fit_run *run, rhd_err *e) {
    const rhd_plan *plan = run->plan;
    const rhd_fit_cfg *fc = &run->cfg.fit;
    int k = run->next;
    RHD_ASSERT(k < plan->nentries);
    const rhd_plan_entry *en = &plan->entries[k];
    rhd_fit_avatar *av = rhd_xcalloc((size_t)en->navatars, sizeof *av);
    for (int j = 0; j < en->navatars; j++) {
        int id = en->avatars[j];
        if (!run->planes[id].planes) rhd_fit_triplane_new(&run->planes[id], fc, id);
        int eval = !run->cfg.eval_last_only || last_visit(plan, id, plan->nentries) == k;
        av[j] = (rhd_fit_avatar){id, plan->avatars[id], &run->train[id], run->planes[id], eval ? &run->eval[id] : NULL, NAN};
    }
    char phase[200];
    snprintf(phase, sizeof phase, "entry %d (%d/%d) round %d %s%s", k, k + 1, plan->nentries, en->round,
             plan->avatars[en->avatars[0]], en->navatars > 1 ? " +group" : "");
    rhd_fit_result res = {0};
    rhd_heartbeat_phase(run->hb, phase, en->steps, &res.steps);
    int rc = rhd_fit_visit(&run->r, fc, plan, k, av, en->navatars, &run->iwc, run->cfg.log_every, &res, e);
    rhd_heartbeat_unwatch(run->hb); /* res is this function's */
    for (int j = 0; j < en->navatars && !rc; j++) {
        int id = en->avatars[j];
        cJSON *rj = cJSON_CreateObject();
        cJSON_AddNumberToObject(rj, "entry", k);
        cJSON_AddNumberToObject(rj, "round", en->round);
        cJSON_AddStringToObject(rj, "avatar", plan->avatars[id]);
        cJSON_AddNumberToObject(rj, "psnr", round(av[j].psnr * 1e4) / 1e4);
        cJSON_AddNumberToObject(rj, "loss", res.last_loss);
        cJSON_AddItemToArray(run->records, rj);
        rhd_info("entry %d (%d/%d) round %d %s: eval PSNR %.2f dB (%d views), loss %.5f, %.1f s, %.3g samples/s", k,
                 k + 1, plan->nentries, en->round, plan->avatars[id], av[j].psnr, run->eval[id].n, res.last_loss, res.seconds,
                 res.samples / res.seconds);
    }
    if (!rc) rc = write_entry(run, k, e);
    /* the JSON lines after the entry's files: a consumer never sees an entry that is not on disk */
    for (int j = 0; j < en->navatars && !rc && run->cfg.json; j++) {
        char psnr[32]; /* null when not evaluated */
        snprintf(psnr, sizeof psnr, isnan(av[j].psnr) ? "null" : "%.4f", av[j].psnr);
        fprintf(run->cfg.json, "{\"entry\": %d, \"round\": %d, \"avatar\": \"%s\", \"psnr\": %s}\n", k, en->round,
                plan->avatars[en->avatars[j]], psnr);
        fflush(run->cfg.json);
    }
    free(av);
    if (!rc) run->next = k + 1;
    return rc;
}

int rhd_fit_run_execute(rhd_fit_run *run, int max_entries, rhd_err *e) {
    int end = run->plan->nentries;
    if (max_entries > 0 && run->next + max_entries < end) end = run->next + max_entries;
    rhd_progress prog;
    rhd_progress_begin(&prog, "fit", "entries", end - run->next);
    int first = run->next, rc = 0;
    run->hb = rhd_heartbeat_start();
    while (run->next < end && !rc) {
        rc = rhd_fit_run_entry(run, e);
        rhd_progress_update(&prog, run->next - first);
    }
    rhd_heartbeat_stop(run->hb);
    run->hb = NULL;
    rhd_progress_end(&prog);
    return rc;
}

void rhd_fit_run_close(rhd_fit_run *run) {
    if (run->planes)
        for (int i = 0; i < run->plan->navatars; i++) rhd_triplane_free(&run->planes[i]);
    free(run->planes);
    rhd_iwc_states_free(&run->iwc);
    if (run->r.ctx) rhd_renderer_free(&run->r);
    rhd_decoder_free(&run->dec);
    cJSON_Delete(run->records);
    free(run->plan_text), free(run->options_text), free(run->tri_dir), free(run->iwc_dir), free(run->ckpt_path), free(run->dec_path), free(run->pend_dir);
    memset(run, 0, sizeof *run);
}
