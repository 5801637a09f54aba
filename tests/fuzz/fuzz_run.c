/* tests/fuzz/fuzz_run.c: libFuzzer target for opening a stage-1 run directory with --resume
 * (formats/run.md, common/fit_run.h): the reconcile step that meets whatever a crash, a full disk
 * or a careless user left. A valid run (two avatars of tests/data/mini, two rounds of one step,
 * three of four entries done, tiny sizes) is made once; each input is a list of edits applied to
 * a fresh copy of it, then the run is opened with resume. Edits (4-byte head, then data):
 *   [op, file, a, b]  op % 6: 0 remove, 1 truncate to (a | b<<8) bytes, 2 overwrite b bytes at
 *   offset a*64 with the next b input bytes, 3 copy file over file b, 4 create file with the next
 *   b input bytes, 5 remove the checkpoint's commit (rename it to .tmp);
 * file % NFILES picks from k_files (the run's files, pending/<k>/ ones and temp names).
 * The open must succeed or fail with a message (rhd_fit_run_open -1); after a success the directory
 * holds no pending/<k>/ and no temp file of the run, and every visited avatar has its triplane. Never a crash or a
 * sanitizer report. Run from the repository root (it reads tests/data/mini). */
#include "common/backend.h"
#include "common/fit_run.h"
#include "common/fit_views.h"
#include "common/fs.h"
#include "common/log.h"
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const k_files[] = {
    "checkpoint.safetensors", "decoder.safetensors", "triplanes/avatar_100.safetensors",
    "triplanes/avatar_101.safetensors", "iwc/avatar_100.safetensors", "iwc/avatar_101.safetensors",
    "pending/2/triplanes/avatar_100.safetensors", "pending/3/triplanes/avatar_101.safetensors",
    "pending/2/iwc/avatar_100.safetensors", "checkpoint.safetensors.tmp", "triplanes/avatar_101.safetensors.tmp",
    "triplanes/stranger.safetensors", "pending/x"};
#define NFILES ((int)(sizeof k_files / sizeof k_files[0]))
#define NBASE 6 /* the first NBASE files make the valid run */

static rhd_ctx *g_ctx;
static rhd_plan g_plan;
static rhd_fit_views g_train[2], g_eval[2];
static rhd_fit_run_cfg g_cfg;
static char g_top[256], g_base[300], g_work[300];

static void make_cfg(rhd_fit_run_cfg *c, const char *dir) {
    memset(c, 0, sizeof *c);
    c->dir = dir, c->tool = "fuzz";
    rhd_fit_cfg_default(&c->fit, 1);
    c->fit.C = 4, c->fit.R = 8, c->fit.rays = 16, c->fit.dist_points = 8;
    rhd_render_cfg_default(&c->render);
    c->render.grid_size = 8, c->render.max_steps = 2;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    remove(p);
    return 0;
}
static void rm_tree(const char *dir) { nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); }
static void rm_top(void) { rm_tree(g_top); }

static void setup(void) {
    if (g_ctx) return;
    rhd_log_set_level(0);
    rhd_err e;
    if (!(g_ctx = rhd_ctx_open("cpu", &e))) abort();
    const char *names[2] = {"avatar_100", "avatar_101"};
    rhd_plan_params pp;
    rhd_plan_params_init(&pp);
    pp.rounds = 2, pp.steps = 1;
    if (rhd_plan_generate(&g_plan, &pp, names, NULL, 2, &e)) abort();
    rhd_fit_data_cfg dc;
    rhd_fit_data_cfg_default(&dc);
    int tv[1] = {0}, ev[1] = {100};
    for (int i = 0; i < 2; i++) {
        char dir[128];
        snprintf(dir, sizeof dir, "tests/data/mini/%s", names[i]);
        if (rhd_fit_views_load(&g_train[i], dir, tv, 1, &dc, 1, &e) || rhd_fit_views_load(&g_eval[i], dir, ev, 1, &dc, 1, &e)) {
            fprintf(stderr, "fuzz_run: %s (run from the repository root)\n", e.msg);
            abort();
        }
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(g_top, sizeof g_top, "%s/fuzz_run.%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    snprintf(g_base, sizeof g_base, "%s/base", g_top);
    snprintf(g_work, sizeof g_work, "%s/work", g_top);
    atexit(rm_top);
    make_cfg(&g_cfg, g_base);
    rhd_fit_run run;
    if (rhd_fit_run_open(&run, g_ctx, &g_cfg, &g_plan, g_train, g_eval, &e) || rhd_fit_run_execute(&run, 3, &e)) {
        fprintf(stderr, "fuzz_run: making the base run: %s\n", e.msg);
        abort();
    }
    rhd_fit_run_close(&run);
    g_cfg.dir = g_work, g_cfg.resume = 1;
}

static char *at(const char *dir, int f) { return rhd_path_join(dir, k_files[f]); }

static void put(const char *path, const void *d, size_t n) {
    rhd_err e;
    if (rhd_mkdir_parents(path, &e)) return;
    FILE *f = fopen(path, "wb");
    if (f) fwrite(d, 1, n, f), fclose(f);
}

static void copy_file(const char *from, const char *to) {
    char *d;
    size_t n;
    rhd_err e;
    if (rhd_read_file(from, &d, &n, &e)) return;
    put(to, d, n);
    free(d);
}

static void edit(const uint8_t *data, size_t size) {
    for (size_t i = 0; i + 4 <= size;) {
        int op = data[i] % 6, f = data[i + 1] % NFILES, a = data[i + 2], b = data[i + 3];
        i += 4;
        char *p = at(g_work, f);
        if (op == 0) remove(p);
        else if (op == 1) { if (truncate(p, (off_t)(a | b << 8))) { /* absent: nothing to do */ } }
        else if (op == 2 || op == 4) {
            size_t n = (size_t)b < size - i ? (size_t)b : size - i;
            if (op == 4) put(p, data + i, n);
            else {
                FILE *fp = fopen(p, "r+b");
                if (fp) fseek(fp, (long)a * 64, SEEK_SET), fwrite(data + i, 1, n, fp), fclose(fp);
            }
            i += n;
        } else if (op == 3) {
            char *q = at(g_work, b % NFILES);
            copy_file(p, q);
            free(q);
        } else {
            char *c = at(g_work, 0), *t = at(g_work, 9);
            if (rename(c, t)) { /* no checkpoint: nothing to do */ }
            free(c), free(t);
        }
        free(p);
    }
}

/* pending/<k>/ of an entry of the plan, or a temp file of the run (foreign files are left alone) */
static int has_leftovers(const char *dir) {
    int bad = 0;
    for (int k = 0; k < g_plan.nentries && !bad; k++) {
        char sub[32];
        snprintf(sub, sizeof sub, "pending/%d", k);
        char *p = rhd_path_join(dir, sub);
        bad = rhd_file_exists(p);
        free(p);
    }
    for (int f = 0; f < NFILES && !bad; f++) {
        char *p = at(dir, f);
        size_t n = strlen(p);
        bad = n > 4 && !strcmp(p + n - 4, ".tmp") && rhd_file_exists(p);
        free(p);
    }
    return bad;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    rm_tree(g_work);
    for (int f = 0; f < NBASE; f++) {
        char *s = at(g_base, f), *d = at(g_work, f);
        copy_file(s, d);
        free(s), free(d);
    }
    edit(data, size);
    rhd_fit_run run;
    rhd_err e;
    if (rhd_fit_run_open(&run, g_ctx, &g_cfg, &g_plan, g_train, g_eval, &e) == 0) {
        if (has_leftovers(g_work)) abort(); /* reconciled: no pending/, no temp file */
        for (int i = 0; i < 2; i++) {
            int visited = 0;
            for (int k = 0; k < run.start; k++) visited |= g_plan.entries[k].avatars[0] == i;
            if (visited && !run.planes[i].planes) abort(); /* a visited avatar is never refitted silently */
        }
    }
    rhd_fit_run_close(&run);
    return 0;
}
