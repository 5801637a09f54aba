/* tests/unit/test_plan.c: common/plan: generation (the original's learning rates per round,
 * every avatar once per round, shuffles reproducible by seed and different across rounds and
 * unbiased, interleaved groups), the learning-rate decays, JSON round trips (also read back by
 * Python's json), the reader's error table (each message names the file and the entry) and the
 * avatar list readers. */
#include "harness.h"
#include "refcheck.h"
#include "common/plan.h"
#include "common/fs.h"
#include <sys/stat.h>

static char **make_names(int n) {
    char **v = malloc(sizeof(char *) * n);
    for (int i = 0; i < n; i++) {
        v[i] = malloc(32);
        snprintf(v[i], 32, "avatar_%03d", 100 + i);
    }
    return v;
}

static int rel_close(double a, double b, double tol) { return fabs(a - b) <= tol * fabs(b); }

/* every avatar exactly once per round; returns 0 on success */
static int once_per_round(const rhd_plan *p) {
    int *cnt = calloc(p->navatars, sizeof(int));
    int bad = 0, e = 0;
    for (int r = 0; r < p->rounds; r++) {
        memset(cnt, 0, sizeof(int) * p->navatars);
        for (; e < p->nentries && p->entries[e].round == r; e++)
            for (int j = 0; j < p->entries[e].navatars; j++) cnt[p->entries[e].avatars[j]]++;
        for (int i = 0; i < p->navatars; i++) bad |= cnt[i] != 1;
    }
    free(cnt);
    return bad || e != p->nentries;
}

/* The original's plan (spec §9.1): the defaults but for the triplane lr per round and the refit round. */
static void original_params(rhd_plan_params *pp) {
    rhd_plan_params_init(pp);
    pp->round_lr = RHD_ROUND_LR_ORIGINAL;
    pp->refit_steps = 0;
}

static void test_defaults(void) {
    rhd_plan_params pp;
    original_params(&pp);
    char **names = make_names(5);
    rhd_plan p;
    rhd_err e;
    RHD_ASSERT(rhd_plan_generate(&p, &pp, (const char *const *)names, NULL, 5, &e) == 0);
    th_ok(p.rounds == 30 && p.nentries == 150 && p.entries[0].steps == 6000 && p.decoder_decay_steps == 300000 &&
              p.iwc_weight == 0.1 && p.order == RHD_PLAN_ROUND_ROBIN && p.total_steps == 150LL * 6000,
          "original: 30 rounds x 5 avatars, 6000 steps each, decoder decay over 300000 steps, iwc 0.1, round-robin");
    /* spec §9.1: 2e-2, 1.818e-3, 9.52e-4, ..., 6.87e-5 (round 29) */
    const rhd_plan_entry *en = p.entries;
    th_ok(en[0].triplane_lr == 2e-2 && rel_close(en[5].triplane_lr, 1.818e-3, 3e-4) && rel_close(en[10].triplane_lr, 9.52e-4, 6e-4) &&
              rel_close(en[145].triplane_lr, 6.87e-5, 8e-4) && en[145].round == 29,
          "triplane lr per round: %.4g, %.4g, %.4g ... %.3g (round 29), as spec §9.1", en[0].triplane_lr, en[5].triplane_lr,
          en[10].triplane_lr, en[145].triplane_lr);
    int exact = 1;
    for (int i = 0; i < p.nentries; i++) exact &= p.entries[i].triplane_lr == 2e-2 / (10.0 * p.entries[i].round + 1) && p.entries[i].decoder_lr == 2e-3;
    th_ok(exact, "every entry: triplane lr = lr0/(10*round+1), decoder lr = lr1");
    int order = 1;
    for (int i = 0; i < p.nentries; i++) order &= p.entries[i].navatars == 1 && p.entries[i].avatars[0] == i % 5 && p.entries[i].round == i / 5;
    th_ok(order && once_per_round(&p) == 0, "round-robin: every round visits the avatars in list order, each once");
    /* decays: triplane 0.1^min(k/steps,1) per visit; decoder 0.1^min(k/(50 steps),1) over the whole plan */
    th_ok(rhd_plan_triplane_lr(&en[5], 0) == en[5].triplane_lr && rel_close(rhd_plan_triplane_lr(&en[5], 3000), en[5].triplane_lr * pow(0.1, 0.5), 1e-15) &&
              rel_close(rhd_plan_triplane_lr(&en[5], 6000), en[5].triplane_lr * 0.1, 1e-15) &&
              rel_close(rhd_plan_triplane_lr(&en[5], 9000), en[5].triplane_lr * 0.1, 1e-15),
          "triplane lr decays x0.1 over each visit and stays there");
    /* entry 25 starts at decoder step 150000, entry 50 at 300000 */
    th_ok(en[25].first_step == 150000 && rel_close(rhd_plan_decoder_lr(&p, &en[0], 0), 2e-3, 0) &&
              rel_close(rhd_plan_decoder_lr(&p, &en[25], 0), 2e-3 * pow(0.1, 0.5), 1e-15) &&
              rel_close(rhd_plan_decoder_lr(&p, &en[49], 5999), 2e-3 * pow(0.1, 299999.0 / 300000), 1e-15) &&
              rel_close(rhd_plan_decoder_lr(&p, &en[50], 0), 2e-4, 1e-15) && rel_close(rhd_plan_decoder_lr(&p, &en[149], 10), 2e-4, 1e-15),
          "decoder lr: 2e-3 -> 2e-4 over the first 300000 steps of the plan (k never reset), then flat");
    rhd_plan_free(&p);
    for (int i = 0; i < 5; i++) free(names[i]);
    free(names);
}

static int same_plan(const rhd_plan *a, const rhd_plan *b) {
    if (a->nentries != b->nentries || a->navatars != b->navatars || a->rounds != b->rounds || a->order != b->order ||
        a->seed != b->seed || a->iwc_weight != b->iwc_weight || a->decoder_decay_steps != b->decoder_decay_steps ||
        a->group != b->group || a->total_steps != b->total_steps)
        return 0;
    for (int i = 0; i < a->navatars; i++)
        if (strcmp(a->avatars[i], b->avatars[i]) || strcmp(a->paths[i], b->paths[i])) return 0;
    for (int i = 0; i < a->nentries; i++) {
        const rhd_plan_entry *x = &a->entries[i], *y = &b->entries[i];
        if (x->round != y->round || x->navatars != y->navatars || x->steps != y->steps || x->triplane_lr != y->triplane_lr ||
            x->decoder_lr != y->decoder_lr || x->first_step != y->first_step)
            return 0;
        for (int j = 0; j < x->navatars; j++)
            if (x->avatars[j] != y->avatars[j]) return 0;
    }
    return 1;
}

static void test_shuffled(void) {
    enum { N = 20 };
    char **names = make_names(N);
    rhd_plan_params pp;
    original_params(&pp);
    pp.order = RHD_PLAN_SHUFFLED;
    pp.seed = 7;
    rhd_plan a, b, c;
    rhd_err e;
    RHD_ASSERT(rhd_plan_generate(&a, &pp, (const char *const *)names, NULL, N, &e) == 0);
    RHD_ASSERT(rhd_plan_generate(&b, &pp, (const char *const *)names, NULL, N, &e) == 0);
    pp.seed = 8;
    RHD_ASSERT(rhd_plan_generate(&c, &pp, (const char *const *)names, NULL, N, &e) == 0);
    th_ok(once_per_round(&a) == 0, "shuffled: every avatar once per round");
    th_ok(same_plan(&a, &b), "shuffled: the same seed gives the same plan");
    int differ_seed = 0, differ_round = 0, identity = 0;
    for (int r = 0; r < a.rounds; r++) {
        int ds = 0, dr = 0, id = 1;
        for (int i = 0; i < N; i++) {
            int x = a.entries[r * N + i].avatars[0];
            ds |= x != c.entries[r * N + i].avatars[0];
            if (r) dr |= x != a.entries[(r - 1) * N + i].avatars[0];
            id &= x == i;
        }
        differ_seed += ds, differ_round += dr, identity += id;
    }
    th_ok(differ_seed == a.rounds && differ_round == a.rounds - 1 && identity == 0,
          "shuffled: another seed gives other orders (%d of %d rounds), each round differs from the previous (%d of %d), "
          "no round in list order", differ_seed, a.rounds, differ_round, a.rounds - 1);
    /* unbiased: over 60000 rounds of 5 avatars, each avatar lands at each position 12000 +- 5 sigma */
    enum { R = 60000, M = 5 };
    int count[M][M] = {{0}}, perm[M];
    for (int r = 0; r < R; r++) {
        rhd_plan_shuffle(perm, M, 123, r);
        for (int i = 0; i < M; i++) count[perm[i]][i]++;
    }
    double sigma = sqrt(R * (1.0 / M) * (1 - 1.0 / M)), worst = 0;
    for (int x = 0; x < M; x++)
        for (int i = 0; i < M; i++) worst = fmax(worst, fabs(count[x][i] - (double)R / M) / sigma);
    th_ok(worst < 5, "shuffle is uniform: avatar-at-position counts over %d rounds within %.2f sigma of %d", R, worst, R / M);
    rhd_plan_free(&a), rhd_plan_free(&b), rhd_plan_free(&c);
    for (int i = 0; i < N; i++) free(names[i]);
    free(names);
}

static void test_interleaved(void) {
    char **names = make_names(10);
    rhd_plan_params pp;
    original_params(&pp);
    pp.order = RHD_PLAN_INTERLEAVED;
    pp.group = 4;
    pp.rounds = 3;
    rhd_plan p;
    rhd_err e;
    RHD_ASSERT(rhd_plan_generate(&p, &pp, (const char *const *)names, NULL, 10, &e) == 0);
    int ok = p.nentries == 9 && p.group == 4;
    for (int r = 0; r < 3 && ok; r++) {
        const rhd_plan_entry *en = &p.entries[3 * r];
        ok = en[0].navatars == 4 && en[1].navatars == 4 && en[2].navatars == 2 && en[0].avatars[0] == 0 && en[1].avatars[0] == 4 &&
             en[2].avatars[1] == 9 && en[0].round == r && en[0].triplane_lr == 2e-2 / (10.0 * r + 1);
    }
    th_ok(ok && once_per_round(&p) == 0 && p.total_steps == 9 * 6000,
          "interleaved group 4 of 10 avatars: 3 visits per round (4, 4, 2 avatars in list order), each avatar once per round");
    char *json = rhd_plan_to_json(&p);
    th_ok(strstr(json, "\"avatars\": [\"avatar_100\", \"avatar_101\", \"avatar_102\", \"avatar_103\"]") && strstr(json, "\"group\": 4"),
          "interleaved entries are written with an \"avatars\" array and the plan records the group");
    free(json);
    rhd_plan_free(&p);
    pp.group = 50;
    RHD_ASSERT(rhd_plan_generate(&p, &pp, (const char *const *)names, NULL, 10, &e) == 0);
    th_ok(p.nentries == 3 && p.entries[0].navatars == 10 && p.group == 10, "a group larger than the list is joint training (one visit of all 10 per round)");
    rhd_plan_free(&p);
    for (int i = 0; i < 10; i++) free(names[i]);
    free(names);
}

static void test_roundtrip(void) {
    char **names = make_names(7);
    const char *paths[7] = {"a/avatar_100", "avatar_101", "b/c/avatar_102", NULL, "avatar_104", "avatar_105", "x/avatar_106"};
    rhd_err e;
    const char *dir = th_tmpdir();
    for (int o = 0; o < RHD_PLAN_ORDER_COUNT; o++) {
        rhd_plan_params pp;
        original_params(&pp);
        pp.order = (rhd_plan_order)o;
        pp.rounds = 4;
        pp.steps = 123;
        pp.lr0 = 0.1 / 3; /* not short in decimal: checks the numbers round-trip exactly */
        pp.lr1 = 1e-3 / 7;
        pp.seed = 99;
        pp.group = 3;
        pp.iwc_weight = 0.25;
        pp.decoder_decay_steps = 777;
        rhd_plan a, b;
        RHD_ASSERT(rhd_plan_generate(&a, &pp, (const char *const *)names, o == 0 ? paths : NULL, 7, &e) == 0);
        char path[2048];
        snprintf(path, sizeof path, "%s/plan_%d.json", dir, o);
        RHD_ASSERT(rhd_plan_write(&a, path, &e) == 0);
        int rc = rhd_plan_read(path, &b, &e);
        if (rc) th_diag("%s", e.msg);
        else if (!same_plan(&a, &b))
            th_diag("  differ: order %d/%d seed %llu/%llu group %d/%d rounds %d/%d iwc %g/%g decay %lld/%lld total %lld/%lld", a.order,
                    b.order, (unsigned long long)a.seed, (unsigned long long)b.seed, a.group, b.group, a.rounds, b.rounds,
                    a.iwc_weight, b.iwc_weight, a.decoder_decay_steps, b.decoder_decay_steps, a.total_steps, b.total_steps);
        th_ok(rc == 0 && same_plan(&a, &b) && b.steps == 123 && b.lr0 == pp.lr0 && b.lr1 == pp.lr1 && b.tool && strstr(b.tool, "rhd-schedule"),
              "%s plan: written and read back identical (all entries, paths, numbers exact)", rhd_plan_order_name(pp.order));
        if (o == 0) {
            const char *py = getenv("RHD_PY");
            int prc = th_sh("%s -c 'import json,sys; p=json.load(open(sys.argv[1])); "
                            "assert p[\"rhd.kind\"]==\"plan\" and len(p[\"entries\"])==28 and p[\"paths\"][\"avatar_102\"]==\"b/c/avatar_102\"' %s",
                            py && *py ? py : "python3", path);
            th_ok(prc == 0, "the plan file is valid JSON for Python's json module, with paths kept");
        }
        rhd_plan_free(&a);
        if (!rc) rhd_plan_free(&b);
    }
    for (int i = 0; i < 7; i++) free(names[i]);
    free(names);
}

/* --- the reader's error table ----------------------------------------------------------------- */

#define HEAD "{\"rhd.kind\":\"plan\",\"rhd.version\":1,\"rounds\":2,\"iwc_weight\":0.1,\"decoder_decay_steps\":1000,"
#define AVS "\"avatars\":[\"a\",\"b\",\"c\"],"
#define E0 "{\"round\":0,\"avatar\":\"a\",\"steps\":10,\"triplane_lr\":0.02,\"decoder_lr\":0.002}"
#define E1 "{\"round\":0,\"avatar\":\"b\",\"steps\":10,\"triplane_lr\":0.02,\"decoder_lr\":0.002}"

static void test_reader_errors(void) {
    static const struct { const char *text, *want; } cases[] = {
        {HEAD AVS "\"entries\":[" E0 "," E1 "]}", NULL}, /* the valid base case */
        {HEAD AVS "\"entries\":[" E0 "," E1 "]", "p.json:1:"},
        {"", "p.json:1:1: invalid JSON (the text ends early)"},
        {"{\n  \"rhd.kind\": \"plan\",\n  oops\n}", "p.json:3:"},
        {"[1,2]", "p.json: the top level is an array, expected a plan object"},
        {"{\"rhd.version\":1}", "p.json: no \"rhd.kind\", expected \"rhd.kind\": \"plan\""},
        {"{\"rhd.kind\":\"triplane\",\"rhd.version\":1}", "p.json: rhd.kind is \"triplane\", expected \"plan\""},
        {"{\"rhd.kind\":\"plan\",\"rhd.version\":2}", "p.json: plan version 2, expected 1"},
        {HEAD AVS "\"entires\":[]}", "p.json: unknown key 'entires', expected one of"},
        {HEAD "\"rounds\":3," AVS "\"entries\":[" E0 "]}", "p.json: key 'rounds' appears twice"},
        {HEAD AVS "\"entries\":[" E0 "]} x", "p.json: text after the plan object"},
        {HEAD "\"avatars\":[],\"entries\":[" E0 "]}", "p.json: avatars is empty"},
        {HEAD "\"avatars\":\"a\",\"entries\":[" E0 "]}", "p.json: avatars is a string, expected an array"},
        {HEAD "\"avatars\":[\"a\",7],\"entries\":[" E0 "]}", "p.json: avatars[1]: a number, expected an avatar name"},
        {HEAD "\"avatars\":[\"a\",\"b\",\"a\"],\"entries\":[" E0 "]}", "p.json: avatars[2]: 'a' repeats avatars[0]"},
        {HEAD "\"avatars\":[\"a\",\"x/y\"],\"entries\":[" E0 "]}", "p.json: avatars[1]: avatar name 'x/y' contains '/'"},
        {HEAD AVS "\"paths\":{\"q\":\"d/q\"},\"entries\":[" E0 "]}", "p.json: paths[\"q\"]: not an avatar"},
        {HEAD "\"avatars\":[\"a\"]}", "p.json: no \"entries\""},
        {HEAD AVS "\"entries\":[]}", "p.json: entries is empty"},
        {HEAD AVS "\"entries\":[" E0 ",3]}", "p.json: entries[1]: a number, expected an object"},
        {HEAD AVS "\"entries\":[" E0 ",{\"round\":0,\"avatar\":\"zed\",\"steps\":10,\"triplane_lr\":0.02,\"decoder_lr\":0.002}]}",
         "p.json: entries[1]: avatar 'zed' is not in \"avatars\""},
        {HEAD AVS "\"entries\":[" E0 "," E1 ",{\"round\":0,\"avatar\":\"c\",\"steps\":0,\"triplane_lr\":0.02,\"decoder_lr\":0.002}]}",
         "p.json: entries[2]: steps is 0, expected a positive integer"},
        {HEAD AVS "\"entries\":[{\"round\":0,\"avatar\":\"c\",\"steps\":-5,\"triplane_lr\":0.02,\"decoder_lr\":0.002}]}",
         "p.json: entries[0]: steps is -5, expected a positive integer"},
        {HEAD AVS "\"entries\":[{\"round\":0,\"avatar\":\"c\",\"steps\":1.5,\"triplane_lr\":0.02,\"decoder_lr\":0.002}]}",
         "p.json: entries[0]: steps is 1.5, expected an integer"},
        {HEAD AVS "\"entries\":[{\"round\":0,\"avatar\":\"c\",\"steps\":\"10\",\"triplane_lr\":0.02,\"decoder_lr\":0.002}]}",
         "p.json: entries[0]: steps is a string, expected an integer"},
        {HEAD AVS "\"entries\":[{\"round\":0,\"avatar\":\"c\",\"triplane_lr\":0.02,\"decoder_lr\":0.002}]}",
         "p.json: entries[0]: no \"steps\", expected an integer"},
        {HEAD AVS "\"entries\":[" E0 ",{\"round\":0,\"avatar\":\"c\",\"steps\":10,\"triplane_lr\":0,\"decoder_lr\":0.002}]}",
         "p.json: entries[1]: triplane_lr is 0, expected a positive number"},
        {HEAD AVS "\"entries\":[{\"round\":0,\"avatar\":\"c\",\"steps\":10,\"triplane_lr\":0.02,\"decoder_lr\":-1e-3}]}",
         "p.json: entries[0]: decoder_lr is -0.001, expected a non-negative number"},
        {HEAD AVS "\"entries\":[{\"round\":1,\"avatar\":\"a\",\"steps\":10,\"triplane_lr\":0.02,\"decoder_lr\":0.002}," E0 "]}",
         "p.json: entries[1]: round 0 after round 1, expected rounds in nondecreasing order"},
        {HEAD AVS "\"entries\":[{\"round\":2,\"avatar\":\"a\",\"steps\":10,\"triplane_lr\":0.02,\"decoder_lr\":0.002}]}",
         "p.json: entries[0]: round 2, expected a round below \"rounds\" (2)"},
        {HEAD AVS "\"entries\":[{\"round\":-1,\"avatar\":\"a\",\"steps\":10,\"triplane_lr\":0.02,\"decoder_lr\":0.002}]}",
         "p.json: entries[0]: round is -1, expected an integer in 0.."},
        {HEAD AVS "\"entries\":[{\"round\":0,\"avatar\":\"a\",\"avatars\":[\"b\"],\"steps\":10,\"triplane_lr\":0.02,\"decoder_lr\":0.002}]}",
         "p.json: entries[0]: both \"avatar\" and \"avatars\""},
        {HEAD AVS "\"entries\":[{\"round\":0,\"steps\":10,\"triplane_lr\":0.02,\"decoder_lr\":0.002}]}",
         "p.json: entries[0]: no \"avatar\""},
        {HEAD AVS "\"entries\":[{\"round\":0,\"avatars\":[\"a\",\"b\",\"a\"],\"steps\":10,\"triplane_lr\":0.02,\"decoder_lr\":0.002}]}",
         "p.json: entries[0]: avatar 'a' twice in one group"},
        {HEAD AVS "\"entries\":[{\"round\":0,\"avatars\":[],\"steps\":10,\"triplane_lr\":0.02,\"decoder_lr\":0.002}]}",
         "p.json: entries[0]: avatars is empty"},
        {HEAD AVS "\"entries\":[" E0 ",{\"round\":0,\"avatar\":\"b\",\"stpes\":10,\"triplane_lr\":0.02,\"decoder_lr\":0.002}]}",
         "p.json: entries[1]: unknown key 'stpes', expected round, avatar"},
        {"{\"rhd.kind\":\"plan\",\"rhd.version\":1,\"iwc_weight\":-0.1,\"decoder_decay_steps\":1000," AVS "\"entries\":[" E0 "]}",
         "p.json: iwc_weight is -0.1, expected a non-negative number"},
        {"{\"rhd.kind\":\"plan\",\"rhd.version\":1,\"iwc_weight\":0.1,\"decoder_decay_steps\":0," AVS "\"entries\":[" E0 "]}",
         "p.json: decoder_decay_steps is 0, expected a positive integer"},
        {"{\"rhd.kind\":\"plan\",\"rhd.version\":1,\"iwc_weight\":0.1," AVS "\"entries\":[" E0 "]}",
         "p.json: no \"decoder_decay_steps\", expected an integer"},
        {HEAD "\"order\":\"random\"," AVS "\"entries\":[" E0 "]}", "p.json: order 'random', expected round-robin, shuffled or interleaved"},
        {HEAD "\"generator\":{\"steps\":10,\"lr2\":1}," AVS "\"entries\":[" E0 "]}", "p.json: generator: unknown key 'lr2'"},
        {HEAD AVS "\"entries\":[{\"round\":0,\"avatar\":\"a\",\"steps\":10,\"triplane_lr\":1e999,\"decoder_lr\":0.002}]}",
         "p.json: entries[0]: triplane_lr is inf (out of range), expected a positive number"},
        {HEAD AVS "\"entries\":[{\"round\":0,\"avatar\":\"a\",\"steps\":1e300,\"triplane_lr\":0.02,\"decoder_lr\":0.002}]}",
         "p.json: entries[0]: steps is 1e+300, expected an integer"},
        {HEAD AVS "\"entries\":[{\"round\":0,\"avatar\":\"a\",\"steps\":10,\"triplane_lr\":0.02,\"decoder_lr\":-1e999}]}",
         "p.json: entries[0]: decoder_lr is -inf (out of range), expected a non-negative number"},
        {HEAD AVS "\"entries\":[{\"round\":0,\"avatar\":\"a\\u0000b\",\"steps\":10,\"triplane_lr\":0.02,\"decoder_lr\":0.002}]}",
         "p.json: a \\u0000 (NUL) escape in a string at byte"},
    };
    int n = sizeof cases / sizeof cases[0];
    for (int i = 0; i < n; i++) {
        rhd_plan p;
        rhd_err e = {{0}};
        int rc = rhd_plan_parse(cases[i].text, strlen(cases[i].text), "p.json", &p, &e);
        if (!cases[i].want) {
            th_ok(rc == 0 && p.nentries == 2 && p.entries[1].avatars[0] == 1 && p.entries[1].first_step == 10,
                  "reader: a minimal valid plan parses (%s)", rc ? e.msg : "ok");
            if (!rc) rhd_plan_free(&p);
            continue;
        }
        int ok = rc != 0 && strstr(e.msg, cases[i].want) == e.msg;
        if (!ok) th_diag("  text: %s", cases[i].text);
        th_ok(ok, "reader error %d: %s", i, rc ? e.msg : "(parsed without error)");
        if (!rc) rhd_plan_free(&p);
    }
    /* a missing file */
    rhd_plan p;
    rhd_err e;
    int rc = rhd_plan_read("/nonexistent/plan.json", &p, &e);
    th_ok(rc && strstr(e.msg, "/nonexistent/plan.json"), "reader: a missing file: %s", e.msg);
    rc = rhd_plan_read(th_tmpdir(), &p, &e);
    th_ok(rc && strstr(e.msg, ": is a directory, expected a file"), "reader: a directory: %s", rc ? e.msg : "(accepted)");
    if (!rc) rhd_plan_free(&p);
}

/* --- avatar lists --------------------------------------------------------------------------------- */

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    RHD_ASSERT(f);
    fputs(text, f);
    fclose(f);
}

static void test_lists(void) {
    const char *dir = th_subdir("lists");
    char path[2048];
    char **names, **paths;
    int n;
    rhd_err e;
    snprintf(path, sizeof path, "%s/list.txt", dir);
    write_text(path, "# stage-1 avatars\n\ndata/avatar_100\n  avatar_101   # the second\r\nbatch2/avatar_102/\n\t\n#end\n");
    int rc = rhd_avatars_from_list(path, &names, &paths, &n, &e);
    th_ok(rc == 0 && n == 3 && !strcmp(names[0], "avatar_100") && !strcmp(paths[0], "data/avatar_100") &&
              !strcmp(names[1], "avatar_101") && !strcmp(paths[1], "avatar_101") && !strcmp(names[2], "avatar_102") &&
              !strcmp(paths[2], "batch2/avatar_102/"),
          "list file: comments, blank lines, CRLF, trailing '/' handled; name = last path component");
    if (!rc) rhd_avatars_free(names, n), rhd_avatars_free(paths, n);
    write_text(path, "a/x\nb\n# c\nc/x\n");
    rc = rhd_avatars_from_list(path, &names, NULL, &n, &e);
    th_ok(rc && strstr(e.msg, "list.txt:4: avatar 'x' is already on line 1"), "list file: a repeated name: %s", e.msg);
    write_text(path, "# nothing\n\n");
    rc = rhd_avatars_from_list(path, &names, NULL, &n, &e);
    th_ok(rc && strstr(e.msg, "list.txt: no avatars"), "list file: empty: %s", e.msg);
    write_text(path, "a\n..\n");
    rc = rhd_avatars_from_list(path, &names, NULL, &n, &e);
    th_ok(rc && strstr(e.msg, "list.txt:2: '..' gives no avatar name"), "list file: '..': %s", e.msg);
    snprintf(path, sizeof path, "%s/missing.txt", dir);
    rc = rhd_avatars_from_list(path, &names, NULL, &n, &e);
    th_ok(rc && strstr(e.msg, "missing.txt") && strstr(e.msg, "No such file"), "list file: missing: %s", e.msg);

    /* a data directory */
    th_sh("mkdir -p %s/data/zeta %s/data/alpha %s/data/mid %s/data/.hidden %s/data/noview && touch %s/data/zeta/metadata_000000.json "
          "%s/data/alpha/metadata_000000.json %s/data/mid/metadata_000000.json %s/data/.hidden/metadata_000000.json %s/data/file.txt",
          dir, dir, dir, dir, dir, dir, dir, dir, dir, dir);
    snprintf(path, sizeof path, "%s/data", dir);
    rc = rhd_avatars_from_dir(path, &names, &n, &e);
    th_ok(rc == 0 && n == 3 && !strcmp(names[0], "alpha") && !strcmp(names[1], "mid") && !strcmp(names[2], "zeta"),
          "data directory: the subdirectories with metadata_000000.json, sorted (hidden and view-less ones skipped)");
    if (!rc) rhd_avatars_free(names, n);
    snprintf(path, sizeof path, "%s/data/noview", dir);
    rc = rhd_avatars_from_dir(path, &names, &n, &e);
    th_ok(rc && strstr(e.msg, "no avatar directories"), "data directory without avatars: %s", e.msg);
    /* incomplete avatars: view files but no metadata_000000.json */
    th_sh("mkdir -p %s/data/bravo %s/data/yank && touch %s/data/bravo/img_proc_fg_000000.png %s/data/yank/metadata_000003.json",
          dir, dir, dir, dir);
    snprintf(path, sizeof path, "%s/data", dir);
    rc = rhd_avatars_from_dir(path, &names, &n, &e);
    th_ok(rc && strstr(e.msg, "2 avatar directories with view files but no metadata_000000.json") && strstr(e.msg, "bravo, yank") &&
              strstr(e.msg, "--skip-incomplete"),
          "incomplete avatars are an error by default, all named: %s", rc ? e.msg : "(accepted)");
    rc = rhd_avatars_from_dir_opt(path, 1, &names, &n, &e);
    th_ok(rc == 0 && n == 3 && !strcmp(names[0], "alpha"), "skip_incomplete leaves them out");
    if (!rc) rhd_avatars_free(names, n);

    rc = rhd_avatars_from_csv(" a, b ,c", &names, &n, &e);
    th_ok(rc == 0 && n == 3 && !strcmp(names[1], "b"), "--avatars a,b,c (spaces trimmed)");
    if (!rc) rhd_avatars_free(names, n);
    rc = rhd_avatars_from_csv("a,,b", &names, &n, &e);
    th_ok(rc && strstr(e.msg, "item 1: empty avatar name"), "--avatars with an empty item: %s", e.msg);
    rc = rhd_avatars_from_csv("a,b,a", &names, &n, &e);
    th_ok(rc && strstr(e.msg, "avatar 'a' is given twice (items 0 and 2)"), "--avatars with a repeat: %s", e.msg);
}

static void test_generate_errors(void) {
    rhd_plan_params pp;
    rhd_plan p;
    rhd_err e;
    const char *two[] = {"a", "b"}, *dup[] = {"a", "b", "a"};
    original_params(&pp);
    th_ok(rhd_plan_generate(&p, &pp, two, NULL, 0, &e) && strstr(e.msg, "no avatars"), "generate: no avatars: %s", e.msg);
    pp.rounds = 0;
    th_ok(rhd_plan_generate(&p, &pp, two, NULL, 2, &e) && strstr(e.msg, "0 rounds, expected at least 1"), "generate: %s", e.msg);
    original_params(&pp);
    pp.lr0 = 0;
    th_ok(rhd_plan_generate(&p, &pp, two, NULL, 2, &e) && strstr(e.msg, "lr0 = 0, expected a positive number"), "generate: %s", e.msg);
    original_params(&pp);
    th_ok(rhd_plan_generate(&p, &pp, dup, NULL, 3, &e) && strstr(e.msg, "avatar 'a' appears twice (positions 0 and 2)"), "generate: %s", e.msg);
    pp.rounds = 1000000;
    pp.steps = 1000000000;
    th_ok(rhd_plan_generate(&p, &pp, two, NULL, 2, &e) && strstr(e.msg, "steps in total"), "generate: %s", e.msg);
}

/* The defaults: every round at lr0, then the refit round (each avatar alone, --steps steps, decoder
 * frozen); --refit-steps N and --refit-lr; an interleaved plan refits avatar by avatar. */
static void test_refit(void) {
    char **names = make_names(5);
    rhd_plan_params pp;
    rhd_plan_params_init(&pp);
    rhd_plan p;
    rhd_err e;
    RHD_ASSERT(rhd_plan_generate(&p, &pp, (const char *const *)names, NULL, 5, &e) == 0);
    int ok = p.rounds == 31 && p.nentries == 155 && p.total_steps == 155LL * 6000;
    for (int i = 0; i < 150; i++) ok &= p.entries[i].triplane_lr == 2e-2 && p.entries[i].decoder_lr == 2e-3 && p.entries[i].round == i / 5;
    for (int i = 150; i < 155; i++)
        ok &= p.entries[i].round == 30 && p.entries[i].navatars == 1 && p.entries[i].avatars[0] == i - 150 &&
              p.entries[i].steps == 6000 && p.entries[i].triplane_lr == 2e-2 && p.entries[i].decoder_lr == 0;
    th_ok(ok, "defaults: 30 rounds at lr0 = 0.02, then a refit round: each of the 5 avatars alone, 6000 steps, decoder_lr 0");
    th_ok(rhd_plan_decoder_lr(&p, &p.entries[150], 0) == 0 && rhd_plan_decoder_lr(&p, &p.entries[154], 5999) == 0,
          "the refit round's decoder lr is 0 at every step");
    int fz = -1;
    th_ok(rhd_plan_last_trained(&p, &fz) == &p.entries[149] && fz == 5,
          "the last entry that trains the decoder is entry 149, 5 entries freeze it (got %d)", fz);
    rhd_plan_free(&p);
    pp.order = RHD_PLAN_INTERLEAVED, pp.group = 2, pp.rounds = 2, pp.steps = 10, pp.refit_steps = 7, pp.refit_lr = 1e-3;
    RHD_ASSERT(rhd_plan_generate(&p, &pp, (const char *const *)names, NULL, 5, &e) == 0);
    ok = p.rounds == 3 && p.nentries == 6 + 5 && p.total_steps == 6 * 10 + 5 * 7;
    for (int i = 6; i < 11; i++)
        ok &= p.entries[i].navatars == 1 && p.entries[i].avatars[0] == i - 6 && p.entries[i].steps == 7 &&
              p.entries[i].triplane_lr == 1e-3 && p.entries[i].decoder_lr == 0 && p.entries[i].first_step == 60 + 7 * (i - 6);
    th_ok(ok, "interleaved groups of 2, --refit-steps 7 --refit-lr 1e-3: the refit round visits the 5 avatars one by one");
    char path[2048];
    snprintf(path, sizeof path, "%s/refit.json", th_tmpdir());
    rhd_plan b;
    RHD_ASSERT(rhd_plan_write(&p, path, &e) == 0);
    th_ok(rhd_plan_read(path, &b, &e) == 0 && same_plan(&p, &b), "a plan with a refit round reads back identical");
    rhd_plan_free(&b);
    rhd_plan_free(&p);
    pp.refit_steps = 0, pp.round_lr = RHD_ROUND_LR_ORIGINAL;
    RHD_ASSERT(rhd_plan_generate(&p, &pp, (const char *const *)names, NULL, 5, &e) == 0);
    th_ok(p.nentries == 6 && p.rounds == 2 && p.entries[3].triplane_lr == 2e-2 / 11, "--refit-steps 0: no refit round");
    rhd_plan_free(&p);
    for (int i = 0; i < 5; i++) free(names[i]);
    free(names);
}

int main(void) {
    test_defaults();
    test_refit();
    test_shuffled();
    test_interleaved();
    test_roundtrip();
    test_reader_errors();
    test_lists();
    test_generate_errors();
    return th_done();
}
