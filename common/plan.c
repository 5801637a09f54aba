/* common/plan.c: task-replay plans: generation, JSON writing (cJSON) and the validating reader.
 * See plan.h and formats/plan.md; the avatar lists plans are made from are in plan_avatars.c. */
#include "common/plan.h"
#include "common/fs.h"
#include "common/rng.h"
#include "common/cli.h"
#include "formats/dataset.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const g_orders[RHD_PLAN_ORDER_COUNT] = {"round-robin", "shuffled", "interleaved"};

const char *rhd_plan_order_name(rhd_plan_order o) {
    return (o >= 0 && o < RHD_PLAN_ORDER_COUNT) ? g_orders[o] : "unknown";
}

int rhd_plan_order_parse(const char *s, rhd_plan_order *o, rhd_err *e) {
    for (int i = 0; i < RHD_PLAN_ORDER_COUNT; i++)
        if (s && strcmp(s, g_orders[i]) == 0) {
            *o = (rhd_plan_order)i;
            return 0;
        }
    return rhd_errf(e, "order '%s', expected round-robin, shuffled or interleaved", s ? s : "");
}

void rhd_plan_params_init(rhd_plan_params *p) {
    memset(p, 0, sizeof *p);
    p->rounds = 30;
    p->steps = 6000;
    p->lr0 = 2e-2;
    p->lr1 = 2e-3;
    p->decoder_decay_steps = 0;
    p->iwc_weight = 0.1;
    p->order = RHD_PLAN_ROUND_ROBIN;
    p->seed = 0;
    p->group = 4;
    p->round_lr = RHD_ROUND_LR_CONSTANT; /* with the refit round: the recommended method (tools/rhd-fit.md) */
    p->refit_steps = -1;
    p->refit_lr = 0;
}

int rhd_avatar_name_check(const char *name, rhd_err *e) {
    if (!name || !*name) return rhd_errf(e, "empty avatar name");
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return rhd_errf(e, "avatar name '%s' is not a name", name);
    if (strlen(name) > 255) return rhd_errf(e, "avatar name of %zu bytes, expected at most 255", strlen(name));
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p == '/') return rhd_errf(e, "avatar name '%s' contains '/', expected a directory name", name);
        if (*p < 0x20 || *p == 0x7f) return rhd_errf(e, "avatar name contains control character 0x%02x", *p);
    }
    return 0;
}

/* --- shuffles --------------------------------------------------------------------------------- */

void rhd_plan_shuffle(int *perm, int n, uint64_t seed, int round) {
    uint64_t stream = RHD_STREAM(RHD_STREAM_SHUFFLE, round);
    for (int i = 0; i < n; i++) perm[i] = i;
    uint64_t m = 0;
    rhd_u32x4 blk = {{0}};
    for (int i = n - 1; i >= 1; i--, m++) {
        if ((m & 3) == 0) blk = rhd_rng_block(seed, stream, m >> 2);
        uint32_t u = blk.v[m & 3];
        int j = (int)(((uint64_t)u * (uint64_t)(i + 1)) >> 32); /* floor(u (i+1) / 2^32) in 0..i */
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* --- construction ------------------------------------------------------------------------------ */

static void plan_derive(rhd_plan *p) {
    long long k = 0;
    for (int i = 0; i < p->nentries; i++) {
        p->entries[i].first_step = k;
        k += p->entries[i].steps;
    }
    p->total_steps = k;
}

void rhd_plan_free(rhd_plan *p) {
    if (!p) return;
    for (int i = 0; i < p->navatars; i++) {
        if (p->paths && p->avatars && p->paths[i] != p->avatars[i]) free(p->paths[i]);
        if (p->avatars) free(p->avatars[i]);
    }
    free(p->avatars);
    free(p->paths);
    free(p->entries);
    free(p->pool_);
    free(p->tool);
    memset(p, 0, sizeof *p);
}

/* Names sorted with their positions: duplicate detection and lookup in O(n log n). */
typedef struct { const char *s; int i; } named;

static int cmp_named(const void *a, const void *b) {
    const named *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

static named *sort_names(char *const *names, int n) {
    named *v = rhd_xmalloc(sizeof(named) * (n ? n : 1));
    for (int i = 0; i < n; i++) v[i].s = names[i], v[i].i = i;
    qsort(v, n, sizeof(named), cmp_named);
    return v;
}

/* 1 if two names are equal, with positions *first < *second (the earliest repeat); else 0. */
int rhd_names_find_duplicate(char *const *names, int n, int *first, int *second) {
    named *v = sort_names(names, n);
    int found = 0;
    for (int k = 1; k < n; k++)
        if (strcmp(v[k].s, v[k - 1].s) == 0 && (!found || v[k].i < *second)) {
            found = 1;
            *first = v[k - 1].i, *second = v[k].i;
        }
    free(v);
    return found;
}

static int find_name(const named *sorted, int n, const char *s) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(sorted[mid].s, s);
        if (c == 0) return sorted[mid].i;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int rhd_plan_params_check(const rhd_plan_params *p, int n, rhd_err *e) {
    if (n < 1) return rhd_errf(e, "no avatars, expected at least one");
    if (p->rounds < 1) return rhd_errf(e, "%d rounds, expected at least 1", p->rounds);
    if (p->steps < 1 || p->steps > RHD_PLAN_MAX_STEPS) return rhd_errf(e, "%lld steps per visit, expected 1..%lld", p->steps, RHD_PLAN_MAX_STEPS);
    if (!(p->lr0 > 0) || !isfinite(p->lr0)) return rhd_errf(e, "triplane learning rate lr0 = %g, expected a positive number", p->lr0);
    if (!(p->lr1 > 0) || !isfinite(p->lr1)) return rhd_errf(e, "decoder learning rate lr1 = %g, expected a positive number", p->lr1);
    if (!(p->iwc_weight >= 0) || !isfinite(p->iwc_weight)) return rhd_errf(e, "IWC weight %g, expected a number >= 0", p->iwc_weight);
    if (p->decoder_decay_steps < 0) return rhd_errf(e, "decoder decay over %lld steps, expected > 0 (0: 50 x steps)", p->decoder_decay_steps);
    if (p->order < 0 || p->order >= RHD_PLAN_ORDER_COUNT) return rhd_errf(e, "unknown plan order %d", (int)p->order);
    int group = p->order == RHD_PLAN_INTERLEAVED ? p->group : 1;
    if (group < 1) return rhd_errf(e, "interleaved group of %d avatars, expected at least 1", group);
    if (group > n) group = n;
    int per_round = (n + group - 1) / group;
    long long refit = p->refit_steps < 0 ? p->steps : p->refit_steps; /* -1: a visit's steps */
    if (refit > RHD_PLAN_MAX_STEPS) return rhd_errf(e, "%lld refit steps, expected 0..%lld", refit, RHD_PLAN_MAX_STEPS);
    if (!(p->refit_lr >= 0) || !isfinite(p->refit_lr)) return rhd_errf(e, "refit lr %g, expected a number >= 0 (0: lr0)", p->refit_lr);
    if (p->round_lr != RHD_ROUND_LR_ORIGINAL && p->round_lr != RHD_ROUND_LR_CONSTANT)
        return rhd_errf(e, "unknown round lr rule %d", p->round_lr);
    long long nent = (long long)per_round * p->rounds + (refit > 0 ? n : 0);
    if (nent > RHD_PLAN_MAX_ENTRIES)
        return rhd_errf(e, "%d rounds x %d visits%s = %lld entries, expected at most %d", p->rounds, per_round,
                        refit > 0 ? " + the refit round" : "", nent, RHD_PLAN_MAX_ENTRIES);
    int too_many = (long long)per_round * p->rounds > RHD_PLAN_MAX_STEPS / p->steps ||
                   (refit > 0 && n > RHD_PLAN_MAX_STEPS / refit);
    if (!too_many) too_many = (long long)per_round * p->rounds * p->steps > RHD_PLAN_MAX_STEPS - (long long)n * refit;
    if (too_many)
        return rhd_errf(e, "%d rounds x %d visits x %lld steps%s exceed %lld steps in total", p->rounds, per_round, p->steps,
                        refit > 0 ? " and the refit round" : "", RHD_PLAN_MAX_STEPS);
    return 0;
}

int rhd_plan_generate(rhd_plan *plan, const rhd_plan_params *p, const char *const *names, const char *const *paths, int n,
                      rhd_err *e) {
    memset(plan, 0, sizeof *plan);
    if (rhd_plan_params_check(p, n, e)) return -1;
    int group = p->order == RHD_PLAN_INTERLEAVED ? p->group : 1;
    if (group > n) group = n;
    int per_round = (n + group - 1) / group;
    long long refit = p->refit_steps < 0 ? p->steps : p->refit_steps;
    long long nent = (long long)per_round * p->rounds + (refit > 0 ? n : 0); /* checked above */
    long long decay = p->decoder_decay_steps ? p->decoder_decay_steps : 50 * p->steps;
    for (int i = 0; i < n; i++)
        if (rhd_avatar_name_check(names[i], e)) return rhd_err_prefix(e, "avatar %d", i);

    plan->order = p->order;
    plan->seed = p->seed;
    plan->rounds = p->rounds + (refit > 0);
    plan->group = group;
    plan->iwc_weight = p->iwc_weight;
    plan->decoder_decay_steps = decay;
    plan->steps = p->steps;
    plan->lr0 = p->lr0;
    plan->lr1 = p->lr1;
    plan->tool = rhd_xstrdup("rhd-schedule " RHD_VERSION);
    plan->navatars = n;
    plan->avatars = rhd_xcalloc(n, sizeof(char *));
    plan->paths = rhd_xcalloc(n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        plan->avatars[i] = rhd_xstrdup(names[i]);
        plan->paths[i] = (paths && paths[i] && strcmp(paths[i], names[i])) ? rhd_xstrdup(paths[i]) : plan->avatars[i];
    }
    int a, b;
    if (rhd_names_find_duplicate(plan->avatars, n, &a, &b)) {
        rhd_errf(e, "avatar '%s' appears twice (positions %d and %d), expected unique names", plan->avatars[a], a, b);
        rhd_plan_free(plan);
        return -1;
    }
    plan->nentries = (int)nent;
    plan->entries = rhd_xcalloc(plan->nentries, sizeof(rhd_plan_entry));
    plan->pool_ = rhd_xmalloc(sizeof(int) * (size_t)n * (p->rounds + 1));
    int *perm = rhd_xmalloc(sizeof(int) * n);
    int *pool = plan->pool_, k = 0;
    for (int r = 0; r < p->rounds; r++) {
        if (p->order == RHD_PLAN_SHUFFLED) rhd_plan_shuffle(perm, n, p->seed, r);
        else
            for (int i = 0; i < n; i++) perm[i] = i;
        for (int g = 0; g < n; g += group) {
            rhd_plan_entry *en = &plan->entries[k++];
            en->round = r;
            en->navatars = g + group <= n ? group : n - g;
            en->avatars = pool;
            for (int j = 0; j < en->navatars; j++) *pool++ = perm[g + j];
            en->steps = p->steps;
            en->triplane_lr = p->round_lr == RHD_ROUND_LR_CONSTANT ? p->lr0 : p->lr0 / (10.0 * r + 1);
            en->decoder_lr = p->lr1;
        }
    }
    if (refit > 0) /* the refit round: each avatar alone with the final decoder, frozen */
        for (int i = 0; i < n; i++) {
            rhd_plan_entry *en = &plan->entries[k++];
            en->round = p->rounds;
            en->navatars = 1;
            en->avatars = pool;
            *pool++ = i;
            en->steps = refit;
            en->triplane_lr = p->refit_lr > 0 ? p->refit_lr : p->lr0;
            en->decoder_lr = 0;
        }
    RHD_ASSERT(k == plan->nentries);
    free(perm);
    plan_derive(plan);
    return 0;
}

/* --- JSON writing -------------------------------------------------------------------------------- */

typedef struct { char *s; size_t n, cap; } sbuf;

static void sb_put(sbuf *b, const char *s) {
    size_t l = strlen(s);
    if (b->n + l + 1 > b->cap) {
        b->cap = (b->n + l + 1) * 2;
        b->s = rhd_xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, l + 1);
    b->n += l;
}

/* Append the compact JSON of item and delete it. */
static void sb_json(sbuf *b, cJSON *item) {
    char *t = cJSON_PrintUnformatted(item);
    RHD_ASSERT(t);
    sb_put(b, t);
    cJSON_free(t);
    cJSON_Delete(item);
}

/* Numbers: the shortest %g form that reads back to the same double (cJSON's own printer only
 * guarantees 15 digits plus an approximate comparison, which can lose the last bit). */
static void sb_num(sbuf *b, double x) {
    char buf[40];
    RHD_ASSERT(isfinite(x));
    if (x == floor(x) && fabs(x) < 9007199254740992.0) {
        snprintf(buf, sizeof buf, "%.0f", x);
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, x);
            if (strtod(buf, NULL) == x) break;
        }
    }
    sb_put(b, buf);
}

static void sb_str(sbuf *b, const char *s) { sb_json(b, cJSON_CreateString(s)); }

static void sb_key(sbuf *b, const char *key) {
    sb_put(b, "  ");
    sb_str(b, key);
    sb_put(b, ": ");
}

char *rhd_plan_to_json(const rhd_plan *p) {
    sbuf b = {0};
    sb_put(&b, "{\n");
    sb_key(&b, "rhd.kind"), sb_str(&b, "plan"), sb_put(&b, ",\n");
    sb_key(&b, "rhd.version"), sb_num(&b, RHD_PLAN_VERSION), sb_put(&b, ",\n");
    if (p->tool) sb_key(&b, "rhd.tool"), sb_str(&b, p->tool), sb_put(&b, ",\n");
    sb_key(&b, "order"), sb_str(&b, rhd_plan_order_name(p->order)), sb_put(&b, ",\n");
    sb_key(&b, "seed"), sb_num(&b, (double)p->seed), sb_put(&b, ",\n");
    sb_key(&b, "rounds"), sb_num(&b, p->rounds), sb_put(&b, ",\n");
    if (p->order == RHD_PLAN_INTERLEAVED) sb_key(&b, "group"), sb_num(&b, p->group), sb_put(&b, ",\n");
    sb_key(&b, "iwc_weight"), sb_num(&b, p->iwc_weight), sb_put(&b, ",\n");
    sb_key(&b, "decoder_decay_steps"), sb_num(&b, (double)p->decoder_decay_steps), sb_put(&b, ",\n");
    if (p->steps > 0) {
        sb_key(&b, "generator");
        sb_put(&b, "{\"steps\": "), sb_num(&b, (double)p->steps);
        /* lr0/lr1 only when the plan had them (a generator block may give steps alone) */
        if (p->lr0 > 0) sb_put(&b, ", \"lr0\": "), sb_num(&b, p->lr0);
        if (p->lr1 > 0) sb_put(&b, ", \"lr1\": "), sb_num(&b, p->lr1);
        sb_put(&b, "},\n");
    }
    sb_key(&b, "avatars"), sb_put(&b, "[");
    for (int i = 0; i < p->navatars; i++) {
        sb_put(&b, i ? ",\n    " : "\n    ");
        sb_str(&b, p->avatars[i]);
    }
    sb_put(&b, "\n  ],\n");
    int any_path = 0;
    for (int i = 0; i < p->navatars; i++) any_path |= strcmp(p->paths[i], p->avatars[i]) != 0;
    if (any_path) {
        sb_key(&b, "paths"), sb_put(&b, "{");
        for (int i = 0; i < p->navatars; i++) {
            sb_put(&b, i ? ",\n    " : "\n    ");
            sb_str(&b, p->avatars[i]);
            sb_put(&b, ": ");
            sb_str(&b, p->paths[i]);
        }
        sb_put(&b, "\n  },\n");
    }
    sb_key(&b, "entries"), sb_put(&b, "[");
    for (int i = 0; i < p->nentries; i++) {
        const rhd_plan_entry *en = &p->entries[i];
        sb_put(&b, i ? ",\n    {\"round\": " : "\n    {\"round\": ");
        sb_num(&b, en->round);
        if (en->navatars == 1) {
            sb_put(&b, ", \"avatar\": ");
            sb_str(&b, p->avatars[en->avatars[0]]);
        } else {
            sb_put(&b, ", \"avatars\": [");
            for (int j = 0; j < en->navatars; j++) {
                if (j) sb_put(&b, ", ");
                sb_str(&b, p->avatars[en->avatars[j]]);
            }
            sb_put(&b, "]");
        }
        sb_put(&b, ", \"steps\": "), sb_num(&b, (double)en->steps);
        sb_put(&b, ", \"triplane_lr\": "), sb_num(&b, en->triplane_lr);
        sb_put(&b, ", \"decoder_lr\": "), sb_num(&b, en->decoder_lr);
        sb_put(&b, "}");
    }
    sb_put(&b, "\n  ]\n}\n");
    return b.s;
}

int rhd_plan_write(const rhd_plan *p, const char *path, rhd_err *e) {
    char *text = rhd_plan_to_json(p);
    int rc = 0;
    if (strcmp(path, "-") == 0) {
        if (fputs(text, stdout) == EOF) rc = rhd_errf(e, "stdout: writing the plan failed: %s", strerror(errno));
    } else {
        rc = rhd_write_file_atomic(path, text, strlen(text), e);
    }
    free(text);
    return rc;
}

/* --- the validating reader ------------------------------------------------------------------------ */

typedef struct {
    const char *name; /* the file */
    rhd_err *e;
} rd;

static int rd_err(rd *r, const char *where, const char *fmt, ...) RHD_PRINTF(3, 4);
static int rd_err(rd *r, const char *where, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (where && *where) return rhd_errf(r->e, "%s: %s: %s", r->name, where, msg);
    return rhd_errf(r->e, "%s: %s", r->name, msg);
}

/* A short printable rendering of a JSON value for messages. */
static void show(const cJSON *v, char *buf, size_t n) {
    if (cJSON_IsNumber(v) && !isfinite(v->valuedouble)) { /* 1e999: cJSON would print null */
        snprintf(buf, n, "%s (out of range)", v->valuedouble > 0 ? "inf" : "-inf");
        return;
    }
    char *t = cJSON_PrintUnformatted((cJSON *)v);
    if (!t) { snprintf(buf, n, "?"); return; }
    if (strlen(t) > 40) snprintf(buf, n, "%.37s...", t);
    else snprintf(buf, n, "%s", t);
    cJSON_free(t);
}

static const char *json_type(const cJSON *v) {
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

/* Checks an object's keys: each must be in `known` (NULL-terminated) and appear once. */
static int check_keys(rd *r, const char *where, const cJSON *obj, const char *const *known, const char *expected) {
    for (const cJSON *a = obj->child; a; a = a->next) {
        int ok = 0;
        for (int i = 0; known[i]; i++) ok |= strcmp(a->string, known[i]) == 0;
        if (!ok) return rd_err(r, where, "unknown key '%s', expected %s", a->string, expected);
        for (const cJSON *b = obj->child; b != a; b = b->next)
            if (strcmp(a->string, b->string) == 0) return rd_err(r, where, "key '%s' appears twice, expected it once", a->string);
    }
    return 0;
}

static const cJSON *get(const cJSON *obj, const char *key) {
    for (const cJSON *a = obj->child; a; a = a->next)
        if (strcmp(a->string, key) == 0) return a;
    return NULL;
}

/* An integer in [lo, hi] (JSON numbers are doubles: integral and at most 2^53). */
static int get_int(rd *r, const char *where, const cJSON *obj, const char *key, long long lo, long long hi, int required,
                   long long *out) {
    const cJSON *v = get(obj, key);
    char buf[64];
    if (!v) return required ? rd_err(r, where, "no \"%s\", expected an integer", key) : 1;
    if (!cJSON_IsNumber(v)) return rd_err(r, where, "%s is %s, expected an integer", key, json_type(v));
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || fabs(d) > 9007199254740992.0) {
        show(v, buf, sizeof buf);
        return rd_err(r, where, "%s is %s, expected an integer", key, buf);
    }
    if (d < (double)lo || d > (double)hi) {
        show(v, buf, sizeof buf);
        if (lo == 1 && hi >= 1000000000LL) return rd_err(r, where, "%s is %s, expected a positive integer", key, buf);
        return rd_err(r, where, "%s is %s, expected an integer in %lld..%lld", key, buf, lo, hi);
    }
    *out = (long long)d;
    return 0;
}

/* A finite number; positive when `positive`, else >= 0. */
static int get_num(rd *r, const char *where, const cJSON *obj, const char *key, int positive, int required, double *out) {
    const cJSON *v = get(obj, key);
    char buf[64];
    if (!v) return required ? rd_err(r, where, "no \"%s\", expected a number", key) : 1;
    if (!cJSON_IsNumber(v)) return rd_err(r, where, "%s is %s, expected a number", key, json_type(v));
    double d = v->valuedouble;
    if (!isfinite(d) || (positive ? !(d > 0) : !(d >= 0))) {
        show(v, buf, sizeof buf);
        return rd_err(r, where, "%s is %s, expected a %s number", key, buf, positive ? "positive" : "non-negative");
    }
    *out = d;
    return 0;
}

/* The top level of a plan but its avatars and entries: kind, version, tool, order, seed, rounds
 * (-1 when absent), group, iwc_weight, decoder_decay_steps, generator. */
static int parse_header(rd *r, const cJSON *root, rhd_plan *p, long long *rounds) {
    static const char *const top_keys[] = {"rhd.kind", "rhd.version", "rhd.tool", "order", "seed", "rounds", "group",
                                           "iwc_weight", "decoder_decay_steps", "generator", "avatars", "paths",
                                           "entries", NULL};
    char buf[64];
    if (!cJSON_IsObject(root)) return rd_err(r, NULL, "the top level is %s, expected a plan object (formats/plan.md)", json_type(root));
    const cJSON *kind = get(root, "rhd.kind");
    if (!kind) return rd_err(r, NULL, "no \"rhd.kind\", expected \"rhd.kind\": \"plan\"");
    if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "plan") != 0) {
        show(kind, buf, sizeof buf);
        return rd_err(r, NULL, "rhd.kind is %s, expected \"plan\"", buf);
    }
    long long ver;
    if (get_int(r, NULL, root, "rhd.version", 0, 1000000, 1, &ver)) return -1;
    if (ver != RHD_PLAN_VERSION)
        return rd_err(r, NULL, "plan version %lld, expected %d (this build of rhd reads version %d)", ver, RHD_PLAN_VERSION,
                      RHD_PLAN_VERSION);
    if (check_keys(r, NULL, root, top_keys,
                   "one of rhd.kind, rhd.version, rhd.tool, order, seed, rounds, group, iwc_weight, decoder_decay_steps, "
                   "generator, avatars, paths, entries"))
        return -1;
    const cJSON *v;
    if ((v = get(root, "rhd.tool"))) {
        if (!cJSON_IsString(v)) return rd_err(r, NULL, "rhd.tool is %s, expected a string", json_type(v));
        p->tool = rhd_xstrdup(v->valuestring);
    }
    p->order = RHD_PLAN_ROUND_ROBIN;
    if ((v = get(root, "order"))) {
        if (!cJSON_IsString(v)) return rd_err(r, NULL, "order is %s, expected a string", json_type(v));
        if (rhd_plan_order_parse(v->valuestring, &p->order, r->e)) return rhd_err_prefix(r->e, "%s", r->name);
    }
    long long ll;
    int rc;
    if ((rc = get_int(r, NULL, root, "seed", 0, 9007199254740992LL, 0, &ll)) < 0) return -1;
    p->seed = rc == 0 ? (uint64_t)ll : 0;
    *rounds = -1;
    if ((rc = get_int(r, NULL, root, "rounds", 1, 100000000, 0, rounds)) < 0) return -1;
    if ((rc = get_int(r, NULL, root, "group", 1, 100000000, 0, &ll)) < 0) return -1;
    p->group = rc == 0 ? (int)ll : 1;
    if (get_num(r, NULL, root, "iwc_weight", 0, 1, &p->iwc_weight)) return -1;
    if (get_int(r, NULL, root, "decoder_decay_steps", 1, RHD_PLAN_MAX_STEPS, 1, &p->decoder_decay_steps)) return -1;
    if ((v = get(root, "generator"))) {
        static const char *const gen_keys[] = {"steps", "lr0", "lr1", NULL};
        if (!cJSON_IsObject(v)) return rd_err(r, NULL, "generator is %s, expected an object", json_type(v));
        if (check_keys(r, "generator", v, gen_keys, "steps, lr0 or lr1")) return -1;
        if (get_int(r, "generator", v, "steps", 1, RHD_PLAN_MAX_STEPS, 0, &p->steps) < 0) return -1;
        if (get_num(r, "generator", v, "lr0", 1, 0, &p->lr0) < 0) return -1;
        if (get_num(r, "generator", v, "lr1", 1, 0, &p->lr1) < 0) return -1;
    }
    return 0;
}

/* "avatars" and "paths" into p; *ixp: the names sorted for find_name (the caller frees it). */
static int parse_avatars(rd *r, const cJSON *root, rhd_plan *p, named **ixp) {
    char where[96];
    const cJSON *v;
    const cJSON *av = get(root, "avatars");
    if (!av) return rd_err(r, NULL, "no \"avatars\", expected an array of avatar names");
    if (!cJSON_IsArray(av)) return rd_err(r, NULL, "avatars is %s, expected an array of avatar names", json_type(av));
    int n = cJSON_GetArraySize(av);
    if (n < 1) return rd_err(r, NULL, "avatars is empty, expected at least one name");
    p->avatars = rhd_xcalloc(n, sizeof(char *));
    p->paths = rhd_xcalloc(n, sizeof(char *));
    p->navatars = n;
    int i = 0;
    for (const cJSON *a = av->child; a; a = a->next, i++) {
        snprintf(where, sizeof where, "avatars[%d]", i);
        if (!cJSON_IsString(a)) return rd_err(r, where, "%s, expected an avatar name (a string)", json_type(a));
        if (rhd_avatar_name_check(a->valuestring, r->e)) return rhd_err_prefix(r->e, "%s: %s", r->name, where);
        p->avatars[i] = rhd_xstrdup(a->valuestring);
        p->paths[i] = p->avatars[i];
    }
    int first, second;
    if (rhd_names_find_duplicate(p->avatars, n, &first, &second)) {
        snprintf(where, sizeof where, "avatars[%d]", second);
        return rd_err(r, where, "'%s' repeats avatars[%d], expected unique names", p->avatars[second], first);
    }
    named *ix = sort_names(p->avatars, n);
    if ((v = get(root, "paths"))) {
        if (!cJSON_IsObject(v)) {
            free(ix);
            return rd_err(r, NULL, "paths is %s, expected an object mapping avatar names to paths", json_type(v));
        }
        for (const cJSON *a = v->child; a; a = a->next) {
            int k = find_name(ix, n, a->string);
            snprintf(where, sizeof where, "paths[\"%.40s\"]", a->string);
            int bad = k < 0 ? rd_err(r, where, "not an avatar of \"avatars\", expected one of them")
                      : !cJSON_IsString(a) || !*a->valuestring ? rd_err(r, where, "%s, expected a non-empty path", json_type(a))
                      : p->paths[k] != p->avatars[k] ? rd_err(r, where, "appears twice, expected it once")
                                                     : 0;
            if (bad) {
                free(ix);
                return -1;
            }
            p->paths[k] = rhd_xstrdup(a->valuestring);
        }
    }
    *ixp = ix;
    return 0;
}

/* "entries" into p (avatar names looked up in ix, the n names sorted); rounds: the plan's
 * "rounds", -1 when absent. */
static int parse_entries(rd *r, const cJSON *root, rhd_plan *p, named *ix, int n, long long rounds) {
    static const char *const entry_keys[] = {"round", "avatar", "avatars", "steps", "triplane_lr", "decoder_lr", NULL};
    char where[96];
    const cJSON *ents = get(root, "entries");
    int bad = 0;
    if (!ents) bad = rd_err(r, NULL, "no \"entries\", expected an array of plan entries");
    else if (!cJSON_IsArray(ents)) bad = rd_err(r, NULL, "entries is %s, expected an array of plan entries", json_type(ents));
    else if (cJSON_GetArraySize(ents) < 1) bad = rd_err(r, NULL, "entries is empty, expected at least one entry");
    else if (cJSON_GetArraySize(ents) > RHD_PLAN_MAX_ENTRIES)
        bad = rd_err(r, NULL, "%d entries, expected at most %d", cJSON_GetArraySize(ents), RHD_PLAN_MAX_ENTRIES);
    if (bad) return -1;
    int ne = cJSON_GetArraySize(ents);
    long long pool_n = 0;
    for (const cJSON *en = ents->child; en; en = en->next) {
        const cJSON *g = cJSON_IsObject(en) ? get(en, "avatars") : NULL;
        pool_n += g && cJSON_IsArray(g) ? cJSON_GetArraySize(g) : 1;
    }
    p->entries = rhd_xcalloc(ne, sizeof(rhd_plan_entry));
    p->pool_ = rhd_xmalloc(sizeof(int) * (size_t)(pool_n ? pool_n : 1));
    p->nentries = ne;
    int *pool = p->pool_;
    int *seen = rhd_xcalloc(n, sizeof(int)); /* entry index + 1 that last used an avatar (duplicates in a group) */
    long long total = 0;
    int i = 0;
    for (const cJSON *en = ents->child; en; en = en->next, i++) {
        rhd_plan_entry *out = &p->entries[i];
        snprintf(where, sizeof where, "entries[%d]", i);
        if (!cJSON_IsObject(en)) { bad = rd_err(r, where, "%s, expected an object", json_type(en)); break; }
        if (check_keys(r, where, en, entry_keys, "round, avatar (or avatars), steps, triplane_lr, decoder_lr")) { bad = -1; break; }
        long long round;
        if (get_int(r, where, en, "round", 0, 100000000, 1, &round)) { bad = -1; break; }
        if (i > 0 && round < p->entries[i - 1].round) {
            bad = rd_err(r, where, "round %lld after round %d, expected rounds in nondecreasing order", round, p->entries[i - 1].round);
            break;
        }
        if (rounds > 0 && round >= rounds) {
            bad = rd_err(r, where, "round %lld, expected a round below \"rounds\" (%lld)", round, rounds);
            break;
        }
        out->round = (int)round;
        const cJSON *one = get(en, "avatar"), *grp = get(en, "avatars");
        if (one && grp) { bad = rd_err(r, where, "both \"avatar\" and \"avatars\", expected one of them"); break; }
        if (!one && !grp) { bad = rd_err(r, where, "no \"avatar\", expected the avatar's name (or \"avatars\": [...] for a group)"); break; }
        if (grp && (!cJSON_IsArray(grp) || cJSON_GetArraySize(grp) < 1)) {
            bad = rd_err(r, where, "avatars is %s, expected a non-empty array of avatar names",
                         cJSON_IsArray(grp) ? "empty" : json_type(grp));
            break;
        }
        out->avatars = pool;
        out->navatars = 0;
        for (const cJSON *a = grp ? grp->child : one; a; a = grp ? a->next : NULL) {
            if (!cJSON_IsString(a)) {
                bad = rd_err(r, where, "%s is %s, expected an avatar name (a string)", grp ? "an item of avatars" : "avatar", json_type(a));
                break;
            }
            int k = find_name(ix, n, a->valuestring);
            if (k < 0) {
                bad = rd_err(r, where, "avatar '%.200s' is not in \"avatars\", expected one of the plan's %d avatars", a->valuestring, n);
                break;
            }
            if (seen[k] == i + 1) {
                bad = rd_err(r, where, "avatar '%.200s' twice in one group, expected distinct avatars", a->valuestring);
                break;
            }
            seen[k] = i + 1;
            *pool++ = k;
            out->navatars++;
        }
        if (bad) break;
        if (get_int(r, where, en, "steps", 1, RHD_PLAN_MAX_STEPS, 1, &out->steps)) { bad = -1; break; }
        if (get_num(r, where, en, "triplane_lr", 1, 1, &out->triplane_lr)) { bad = -1; break; }
        if (get_num(r, where, en, "decoder_lr", 0, 1, &out->decoder_lr)) { bad = -1; break; } /* 0: frozen */
        total += out->steps;
        if (total > RHD_PLAN_MAX_STEPS) {
            bad = rd_err(r, where, "the plan reaches %lld steps here, expected at most %lld in total", total, RHD_PLAN_MAX_STEPS);
            break;
        }
    }
    free(seen);
    return bad ? -1 : 0;
}

static int parse_plan(rd *r, const cJSON *root, rhd_plan *p) {
    long long rounds;
    named *ix = NULL;
    if (parse_header(r, root, p, &rounds) || parse_avatars(r, root, p, &ix)) return -1;
    int bad = parse_entries(r, root, p, ix, p->navatars, rounds);
    free(ix);
    if (bad) return -1;
    p->rounds = rounds > 0 ? (int)rounds : p->entries[p->nentries - 1].round + 1;
    plan_derive(p);
    return 0;
}

int rhd_plan_parse(const char *text, size_t len, const char *name, rhd_plan *p, rhd_err *e) {
    memset(p, 0, sizeof *p);
    rd r = {name, e};
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        int line = 1, col = 1;
        for (size_t i = 0; i < off; i++) {
            if (text[i] == '\n') line++, col = 1;
            else col++;
        }
        char near[24];
        size_t k = 0;
        for (size_t i = off; i < len && k < 16 && text[i] != '\n'; i++) near[k++] = text[i] >= 0x20 && text[i] < 0x7f ? text[i] : '?';
        near[k] = 0;
        if (off >= len || len == 0) return rhd_errf(e, "%s:%d:%d: invalid JSON (the text ends early), expected a plan object", name, line, col);
        return rhd_errf(e, "%s:%d:%d: invalid JSON near '%s', expected a plan object (formats/plan.md)", name, line, col, near);
    }
    /* trailing garbage after the object */
    for (const char *q = end; q && q < text + len; q++)
        if (*q != ' ' && *q != '\n' && *q != '\r' && *q != '\t' && *q != 0) {
            cJSON_Delete(root);
            return rhd_errf(e, "%s: text after the plan object at byte %zu, expected the end of the file", name, (size_t)(q - text));
        }
    /* cJSON ends a string at an escaped NUL: "a\u0000b" would read as the avatar "a" */
    for (size_t i = 0; i + 6 <= len; i++) {
        size_t bs = 0;
        while (bs < i + 1 && text[i - bs] == '\\') bs++;
        if (bs % 2 == 1 && (text[i + 1] == 'u' || text[i + 1] == 'U') && strncmp(text + i + 2, "0000", 4) == 0) {
            cJSON_Delete(root);
            return rhd_errf(e, "%s: a \\u0000 (NUL) escape in a string at byte %zu, expected none", name, i);
        }
    }
    int rc = parse_plan(&r, root, p);
    cJSON_Delete(root);
    if (rc) {
        rhd_plan_free(p);
        return -1;
    }
    return 0;
}

int rhd_plan_read(const char *path, rhd_plan *p, rhd_err *e) {
    memset(p, 0, sizeof *p);
    char *text;
    size_t n;
    if (rhd_read_file(path, &text, &n, e)) return -1;
    int rc = rhd_plan_parse(text, n, path, p, e);
    free(text);
    return rc;
}

