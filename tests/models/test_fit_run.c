/* tests/models/test_fit_run.c: a stage-1 run (common/fit_run.h) on the mini dataset, tiny sizes:
 * a run interrupted after one entry and resumed twice writes the same bytes (every file of the
 * run directory) as an uninterrupted run, and prints the same JSON lines; resuming refuses
 * another seed, another plan, and a visited avatar's triplane written by another entry. */
#include "refcheck.h"
#include "common/fit_run.h"
#include "common/fit_views.h"
#include "common/fs.h"
#include "common/model_io.h"

static rhd_ctx *cpu;
static rhd_plan plan;
static rhd_fit_views train[2], eval_[2];

static void cfg_for(rhd_fit_run_cfg *c, const char *dir, int resume, FILE *json) {
    memset(c, 0, sizeof *c);
    c->dir = dir, c->tool = "test", c->resume = resume, c->json = json;
    rhd_fit_cfg_default(&c->fit, 1);
    c->fit.C = 8, c->fit.R = 12, c->fit.rays = 64, c->fit.dist_points = 16, c->fit.seed = 3;
    rhd_render_cfg_default(&c->render);
    c->render.grid_size = 16, c->render.max_steps = 24;
}

/* Run entries [.., +max) in dir; 0 on success, else the error in e. */
static int run_some(const char *dir, int resume, int max, FILE *json, uint64_t seed, rhd_err *e) {
    rhd_fit_run_cfg c;
    cfg_for(&c, dir, resume, json);
    c.fit.seed = seed;
    rhd_fit_run run;
    int rc = rhd_fit_run_open(&run, cpu, &c, &plan, train, eval_, e) || rhd_fit_run_execute(&run, max, e);
    rhd_fit_run_close(&run);
    return rc;
}

static int same_file(const char *a, const char *b) {
    return th_sh("cmp -s '%s' '%s'", a, b) == 0;
}

int main(void) {
    rhd_err e = {0};
    cpu = rhd_ctx_open("cpu", &e);
    const char *root = getenv("RHD_ROOT");
    char d0[1024], d1[1024];
    snprintf(d0, sizeof d0, "%s/tests/data/mini/avatar_100", root ? root : ".");
    snprintf(d1, sizeof d1, "%s/tests/data/mini/avatar_101", root ? root : ".");
    rhd_fit_data_cfg dc;
    rhd_fit_data_cfg_default(&dc);
    int tv[4] = {0, 5, 10, 15}, ev[1] = {100};
    const char *dirs[2] = {d0, d1};
    for (int i = 0; i < 2; i++)
        if (rhd_fit_views_load(&train[i], dirs[i], tv, 4, &dc, 1, &e) || rhd_fit_views_load(&eval_[i], dirs[i], ev, 1, &dc, 1, &e)) {
            th_diag("%s", e.msg);
            th_ok(0, "mini dataset loaded");
            return th_done();
        }
    rhd_plan_params pp;
    rhd_plan_params_init(&pp);
    pp.rounds = 2, pp.steps = 5;
    const char *names[2] = {"avatar_100", "avatar_101"};
    if (rhd_plan_generate(&plan, &pp, names, NULL, 2, &e)) fprintf(stderr, "%s\n", e.msg), exit(1);
    const char *tmp = th_subdir("fit_run");
    char full[1100], part[1100], jf[1200], jp[1200];
    snprintf(full, sizeof full, "%s/full", tmp), snprintf(part, sizeof part, "%s/part", tmp);
    snprintf(jf, sizeof jf, "%s/full.jsonl", tmp), snprintf(jp, sizeof jp, "%s/part.jsonl", tmp);

    FILE *f = fopen(jf, "w");
    int rc = run_some(full, 0, 0, f, 3, &e);
    fclose(f);
    th_ok(!rc, "uninterrupted run of %d entries %s", plan.nentries, rc ? e.msg : "");
    f = fopen(jp, "w");
    int r1 = run_some(part, 0, 1, f, 3, &e);
    int r2 = r1 || run_some(part, 1, 2, f, 3, &e);
    int r3 = r2 || run_some(part, 1, 0, f, 3, &e);
    fclose(f);
    th_ok(!r1 && !r2 && !r3, "the same run in three pieces (1 entry, resume 2, resume the rest) %s", r3 ? e.msg : "");
    const char *files[] = {"triplanes/avatar_100.safetensors", "triplanes/avatar_101.safetensors", "iwc/avatar_100.safetensors",
                           "iwc/avatar_101.safetensors", "decoder.safetensors", "checkpoint.safetensors"};
    for (int i = 0; i < 6; i++) {
        char a[1300], b[1300];
        snprintf(a, sizeof a, "%s/%s", full, files[i]), snprintf(b, sizeof b, "%s/%s", part, files[i]);
        th_ok(same_file(a, b), "resumed run is bit-identical: %s", files[i]);
    }
    th_ok(same_file(jf, jp), "resumed run printed the same JSON lines");
    /* the checkpoint records every entry */
    char ck[1300];
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", part);
    rhd_decoder dec;
    rhd_decoder_cfg dcfg;
    rhd_decoder_cfg_default(&dcfg);
    dcfg.C = 8;
    rhd_decoder_init(&dec, &dcfg, cpu, 1, &e);
    rhd_fit_checkpoint c;
    rc = rhd_fit_checkpoint_read(ck, &dec, &c, &e);
    th_ok(!rc && c.entries_done == plan.nentries && c.step == (2 + 1) * 5 * 2 && c.seed == 3, /* 2 rounds + the refit round */
          "checkpoint: %d entries done, decoder step %lld, seed %llu", rc ? -1 : c.entries_done, rc ? -1LL : c.step,
          rc ? 0ULL : (unsigned long long)c.seed);
    if (!rc) rhd_fit_checkpoint_free(&c);
    rhd_decoder_free(&dec);

    rc = run_some(part, 1, 0, NULL, 4, &e);
    th_ok(rc && strstr(e.msg, "seed 3, expected --seed 4"), "resume with another seed is refused: %s", rc ? e.msg : "(accepted)");
    /* a triplane of another entry in place of a visited avatar's (entry 0 visited avatar_100) */
    char t1[1300], t2[2800];
    snprintf(t1, sizeof t1, "%s/one", tmp);
    rc = run_some(t1, 0, 1, NULL, 3, &e);
    snprintf(t2, sizeof t2, "cp '%s/triplanes/avatar_100.safetensors' '%s/triplanes/avatar_100.safetensors'", full, t1);
    th_sh("%s", t2);
    rc = rc || run_some(t1, 1, 0, NULL, 3, &e);
    th_ok(rc && strstr(e.msg, "avatar_100.safetensors: written by entry 4, expected entry 0") /* its refit entry */,
          "a triplane of a later entry is refused: %s", rc ? e.msg : "(accepted)");
    rhd_plan other;
    pp.steps = 6;
    rhd_plan_generate(&other, &pp, names, NULL, 2, &e);
    rhd_fit_run_cfg cc;
    cfg_for(&cc, part, 1, NULL);
    rhd_fit_run run;
    rc = rhd_fit_run_open(&run, cpu, &cc, &other, train, eval_, &e);
    rhd_fit_run_close(&run);
    th_ok(rc && strstr(e.msg, "another plan"), "resume with another plan is refused: %s", rc ? e.msg : "(accepted)");
    rhd_plan_free(&other);
    for (int i = 0; i < 2; i++) rhd_fit_views_free(&train[i]), rhd_fit_views_free(&eval_[i]);
    rhd_plan_free(&plan);
    rhd_ctx_close(cpu);
    return th_done();
}
