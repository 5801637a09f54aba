/* common/fit_run.c: a stage-1 fitting run (see fit_run.h). Above the models: writes files. */
#include "common/fit_run.h"
#include <cjson/cJSON.h>
#include <math.h>
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
    else if (ck.entries_done > run->plan->nentries)
        rc = rhd_errf(e, "%s: %d entries done, expected at most the plan's %d", run->ckpt_path, ck.entries_done,
                      run->plan->nentries);
    if (!rc && ck.records) {
        cJSON *rec = cJSON_Parse(ck.records);
        if (cJSON_IsArray(rec)) {
            cJSON_Delete(run->records);
            run->records = rec;
        } else
            cJSON_Delete(rec);
    }
    run->start = run->next = ck.entries_done;
    rhd_fit_checkpoint_free(&ck);
    for (int i = 0; i < run->plan->navatars && !rc; i++) {
        char *tp = rhd_fit_run_triplane_path(run, i), *ip = iwc_path(run, i);
        int ent;
        if (rhd_file_exists(tp)) {
            rhd_triplane_alloc(&run->planes[i], fc->C, fc->R, fc->clamp, NULL);
            if (rhd_triplane_load(tp, &run->planes[i], 0, &ent, e)) rc = -1;
            else if (ent >= run->start)
                rc = rhd_errf(e, "%s: written by entry %d, which the checkpoint does not record (%d entries done); the run "
                                 "stopped between writes, expected a fresh run (--force)", tp, ent, run->start);
        }
        if (!rc && rhd_file_exists(ip)) {
            if (rhd_iwc_file_read(ip, &run->dec, &run->iwc.fisher[i], &run->iwc.optpar[i], &ent, e)) rc = -1;
            else if (ent >= run->start)
                rc = rhd_errf(e, "%s: written by entry %d, after the checkpoint's %d entries, expected a fresh run (--force)",
                              ip, ent, run->start);
        }
        free(tp), free(ip);
    }
    if (!rc) rhd_info("resuming %s after %d of %d entries", run->cfg.dir, run->start, run->plan->nentries);
    return rc;
}

/* A fresh run: the directories made, the avatars' files of an earlier run removed. */
static int fresh(rhd_fit_run *run, rhd_err *e) {
    char *t1 = join(run->tri_dir, "x", ""), *t2 = join(run->iwc_dir, "x", ""); /* mkdir_parents takes a file path */
    int rc = rhd_mkdir_parents(t1, e) || rhd_mkdir_parents(t2, e);
    free(t1), free(t2);
    for (int i = 0; i < run->plan->navatars && !rc; i++) {
        char *tp = rhd_fit_run_triplane_path(run, i), *ip = iwc_path(run, i);
        remove(tp), remove(ip);
        free(tp), free(ip);
    }
    return rc ? -1 : 0;
}

int rhd_fit_run_open(rhd_fit_run *run, rhd_ctx *ctx, const rhd_fit_run_cfg *cfg, const rhd_plan *plan,
                     rhd_fit_views *train, rhd_fit_views *eval, rhd_err *e) {
    memset(run, 0, sizeof *run);
    run->cfg = *cfg;
    run->plan = plan, run->train = train, run->eval = eval, run->ctx = ctx;
    run->plan_text = rhd_plan_to_json(plan);
    run->tri_dir = join(cfg->dir, "triplanes", ""), run->iwc_dir = join(cfg->dir, "iwc", "");
    run->ckpt_path = join(cfg->dir, "checkpoint", ".safetensors"), run->dec_path = join(cfg->dir, "decoder", ".safetensors");
    run->records = cJSON_CreateArray();
    rhd_iwc_states_init(&run->iwc, plan->navatars);
    run->planes = rhd_xcalloc((size_t)plan->navatars, sizeof(rhd_triplane));
    rhd_decoder_cfg dcfg;
    rhd_decoder_cfg_default(&dcfg);
    dcfg.C = cfg->fit.C;
    if (rhd_decoder_init(&run->dec, &dcfg, ctx, 1, e)) return -1;
    rhd_decoder_init_weights(&run->dec, cfg->fit.seed);
    rhd_renderer_init(&run->r, ctx, &run->dec, &cfg->render);
    return cfg->resume ? resume(run, e) : fresh(run, e);
}

/* The files of entry k: each avatar's triplane and IWC state, then the decoder, the checkpoint last. */
static int write_entry(rhd_fit_run *run, int k, rhd_err *e) {
    const rhd_plan_entry *en = &run->plan->entries[k];
    const rhd_fit_cfg *fc = &run->cfg.fit;
    const char *tool = run->cfg.tool;
    int rc = 0;
    for (int j = 0; j < en->navatars && !rc; j++) {
        int id = en->avatars[j];
        char *tp = rhd_fit_run_triplane_path(run, id), *ip = iwc_path(run, id);
        rhd_triplane_meta tm = {tool, run->plan->avatars[id], k, 1, fc->seed};
        rhd_iwc_meta im = {run->plan->avatars[id], en->round, k, fc->fisher_steps};
        rc = rhd_triplane_save(tp, &run->planes[id], &tm, run->cfg.also_npy, e) ||
             (run->iwc.fisher[id] &&
              rhd_iwc_file_write(ip, &run->dec, run->iwc.fisher[id], run->iwc.optpar[id], &im, tool, e));
        free(tp), free(ip);
    }
    rhd_decoder_file_info di = {fc->R, 0, 0, run->cfg.render.bound};
    if (!rc) rc = rhd_decoder_file_write(run->dec_path, &run->dec, &di, tool, e);
    if (!rc) {
        char *rec = cJSON_PrintUnformatted(run->records);
        rhd_fit_checkpoint ck = {k + 1, en->first_step + en->steps, fc->seed, run->plan_text, rec};
        rc = rhd_fit_checkpoint_write(run->ckpt_path, &run->dec, &ck, tool, e);
        free(rec);
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
        av[j] = (rhd_fit_avatar){id, plan->avatars[id], &run->train[id], run->planes[id], &run->eval[id], NAN};
    }
    rhd_fit_result res;
    int rc = rhd_fit_visit(&run->r, fc, plan, k, av, en->navatars, &run->iwc, run->cfg.log_every, &res, e);
    for (int j = 0; j < en->navatars && !rc; j++) {
        int id = en->avatars[j];
        cJSON *rj = cJSON_CreateObject();
        cJSON_AddNumberToObject(rj, "entry", k);
        cJSON_AddNumberToObject(rj, "round", en->round);
        cJSON_AddStringToObject(rj, "avatar", plan->avatars[id]);
        cJSON_AddNumberToObject(rj, "psnr", round(av[j].psnr * 1e4) / 1e4);
        cJSON_AddNumberToObject(rj, "loss", res.last_loss);
        cJSON_AddItemToArray(run->records, rj);
        rhd_info("entry %d/%d round %d %s: eval PSNR %.2f dB (%d views), loss %.5f, %.1f s, %.3g samples/s", k + 1,
                 plan->nentries, en->round, plan->avatars[id], av[j].psnr, run->eval[id].n, res.last_loss, res.seconds,
                 res.samples / res.seconds);
    }
    if (!rc) rc = write_entry(run, k, e);
    /* the JSON lines after the entry's files: a consumer never sees an entry that is not on disk */
    for (int j = 0; j < en->navatars && !rc && run->cfg.json; j++) {
        fprintf(run->cfg.json, "{\"entry\": %d, \"round\": %d, \"avatar\": \"%s\", \"psnr\": %.4f}\n", k, en->round,
                plan->avatars[en->avatars[j]], av[j].psnr);
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
    while (run->next < end && !rc) {
        rc = rhd_fit_run_entry(run, e);
        rhd_progress_update(&prog, run->next - first);
    }
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
    free(run->plan_text), free(run->tri_dir), free(run->iwc_dir), free(run->ckpt_path), free(run->dec_path);
    memset(run, 0, sizeof *run);
}
