/* common/cli.c: the option-table parser; see cli.h. */
#include "common/cli.h"
#include "common/log.h"
#include "common/fs.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

int rhd_parse_vec3(const char *s, double v[3]) {
    char *end;
    for (int i = 0; i < 3; i++) {
        v[i] = strtod(s, &end);
        if (end == s || !isfinite(v[i])) return -1;
        s = end;
        if (i < 2) {
            if (*s != ',') return -1;
            s++;
        }
    }
    return *s ? -1 : 0;
}

int rhd_parse_ll(const char *s, long long *out) {
    if (!s || !*s) return -1;
    const char *p = s;
    while (*p == ' ') p++;
    if (!*p) return -1;
    errno = 0;
    char *end;
    long long v = strtoll(p, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int rhd_parse_double(const char *s, double *out) {
    if (!s || !*s) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno == ERANGE && fabs(v) > 1.0) return -1;
    if (*end || end == s || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int rhd_parse_ranges(const char *s, int **out, int *n, rhd_err *e) {
    int cap = 16, cnt = 0;
    int *v = rhd_xmalloc(sizeof(int) * cap);
    char *buf = rhd_xstrdup(s), *save = NULL;
    if (!*buf) goto bad;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *dash = strchr(tok, '-');
        long long a, b;
        if (dash) {
            *dash = 0;
            if (rhd_parse_ll(tok, &a) || rhd_parse_ll(dash + 1, &b)) goto bad;
        } else {
            if (rhd_parse_ll(tok, &a)) goto bad;
            b = a;
        }
        if (a < 0 || b < a || b > 100000000) goto bad;
        if (b - a > 10000000) goto bad;
        for (long long i = a; i <= b; i++) {
            if (cnt == cap) v = rhd_xrealloc(v, sizeof(int) * (cap *= 2));
            v[cnt++] = (int)i;
        }
    }
    qsort(v, cnt, sizeof(int), cmp_int);
    int m = 0;
    for (int i = 0; i < cnt; i++)
        if (m == 0 || v[m - 1] != v[i]) v[m++] = v[i];
    free(buf);
    *out = v;
    *n = m;
    return 0;
bad:
    free(buf);
    free(v);
    return rhd_errf(e, "'%s' is not a view range, expected e.g. 0-99 or 0,5,10-19", s);
}

static const rhd_opt *find_long(const rhd_opt *t, const char *name, size_t len) {
    for (; t->type != RHD_OPT_END; t++)
        if (t->lng && strlen(t->lng) == len && strncmp(t->lng, name, len) == 0) return t;
    return NULL;
}

static const rhd_opt *find_short(const rhd_opt *t, char c) {
    for (; t->type != RHD_OPT_END; t++)
        if (t->type != RHD_OPT_GROUP && t->shrt == c) return t;
    return NULL;
}

static int takes_value(const rhd_opt *o) {
    return o->type != RHD_OPT_FLAG && o->type != RHD_OPT_COUNT;
}

static void opt_name(const rhd_opt *o, char *buf, size_t n) {
    if (o->lng) snprintf(buf, n, "--%s", o->lng);
    else snprintf(buf, n, "-%c", o->shrt);
}

static void range_text(const rhd_opt *o, char *buf, size_t n) {
    if (o->min == 0 && o->max == 0) { buf[0] = 0; return; }
    if (o->type == RHD_OPT_INT) {
        if (o->max >= 9e15) snprintf(buf, n, " >= %.0f", o->min);
        else snprintf(buf, n, " in [%.0f, %.0f]", o->min, o->max);
    } else {
        snprintf(buf, n, " in [%g, %g]", o->min, o->max);
    }
}

/* The value shown in "(e.g. --steps 50)": the row's own example when it lies in the option's
 * range, else 1 (an integer) or 0.5 clamped into the range, so an example is never refused. */
static const char *example_value(const rhd_opt *o, char *buf, size_t n) {
    int ranged = o->min != 0 || o->max != 0;
    if (o->example) {
        double v;
        if (!ranged || rhd_parse_double(o->example, &v) || (v >= o->min && v <= o->max)) return o->example;
    }
    double v = o->type == RHD_OPT_INT ? 1 : 0.5;
    if (ranged) v = v < o->min ? o->min : v > o->max ? o->max : v;
    if (o->type == RHD_OPT_INT) snprintf(buf, n, "%.0f", v);
    else snprintf(buf, n, "%g", v);
    return buf;
}

/* Set one option from a string value; `where` names the source for messages. */
static void set_value(const rhd_opt *o, void *opts, const char *val, const char *where) {
    char name[128], rt[96], ex[64];
    opt_name(o, name, sizeof name);
    char *field = (char *)opts + o->offset;
    switch (o->type) {
    case RHD_OPT_INT: {
        long long v;
        range_text(o, rt, sizeof rt);
        if (rhd_parse_ll(val, &v) || ((o->min != 0 || o->max != 0) && (v < o->min || v > o->max)))
            rhd_usage_error("%s%s takes an integer%s (e.g. %s %s), got '%s'", where, name, rt, name,
                            example_value(o, ex, sizeof ex), val);
        *(long long *)field = v;
        break;
    }
    case RHD_OPT_DOUBLE: {
        double v;
        range_text(o, rt, sizeof rt);
        if (rhd_parse_double(val, &v) || ((o->min != 0 || o->max != 0) && (v < o->min || v > o->max)))
            rhd_usage_error("%s%s takes a finite number%s (e.g. %s %s), got '%s'", where, name, rt,
                            name, example_value(o, ex, sizeof ex), val);
        *(double *)field = v;
        break;
    }
    case RHD_OPT_STRING:
        if (!*val) rhd_usage_error("%s%s takes a non-empty %s", where, name, o->metavar ? o->metavar : "value");
        *(const char **)field = val;
        break;
    case RHD_OPT_CHOICE: {
        for (int i = 0; o->choices[i]; i++)
            if (strcmp(o->choices[i], val) == 0) { *(int *)field = i; return; }
        char list[512] = "";
        for (int i = 0; o->choices[i]; i++) {
            if (i) strncat(list, ", ", sizeof list - strlen(list) - 1);
            strncat(list, o->choices[i], sizeof list - strlen(list) - 1);
        }
        rhd_usage_error("%s%s takes one of %s, got '%s'", where, name, list, val);
    }
    case RHD_OPT_CALLBACK: {
        rhd_err e = {{0}};
        if (o->cb(opts, val, &e))
            rhd_usage_error("%s%s: %s%s%s%s", where, name, e.msg, o->example ? " (e.g. " : "",
                            o->example ? o->example : "", o->example ? ")" : "");
        break;
    }
    default:
        RHD_ASSERT(0 && "set_value on a valueless option");
    }
}

static void print_version(const rhd_cli *cli) {
    printf("%s %s (rhd suite; backends: cpu%s)\n", cli->name, RHD_VERSION,
#ifdef RHD_CUDA
           ", cuda"
#else
           ""
#endif
    );
}

static void print_default(const rhd_opt *o, const void *opts) {
    const char *field = (const char *)opts + o->offset;
    switch (o->type) {
    case RHD_OPT_INT: printf(" (default: %lld)", *(const long long *)field); break;
    case RHD_OPT_DOUBLE: printf(" (default: %g)", *(const double *)field); break;
    case RHD_OPT_STRING:
        if (*(const char *const *)field) printf(" (default: %s)", *(const char *const *)field);
        break;
    case RHD_OPT_CHOICE: {
        printf(" (");
        for (int i = 0; o->choices[i]; i++) printf("%s%s", i ? "|" : "", o->choices[i]);
        printf("; default: %s)", o->choices[*(const int *)field]);
        break;
    }
    default: break;
    }
}

void rhd_cli_print_help(const rhd_cli *cli, const void *opts) {
    printf("usage: %s\n\n", cli->synopsis);
    if (cli->description) printf("%s\n", cli->description);
    for (const rhd_opt *o = cli->opts; o->type != RHD_OPT_END; o++) {
        if (o->type == RHD_OPT_GROUP) { printf("\n%s:\n", o->help); continue; }
        char left[96];
        int n = 0;
        if (o->shrt) n += snprintf(left + n, sizeof left - n, "-%c%s", o->shrt, o->lng ? ", " : "");
        else n += snprintf(left + n, sizeof left - n, "    ");
        if (o->lng) n += snprintf(left + n, sizeof left - n, "--%s", o->lng);
        if (takes_value(o) && o->metavar) snprintf(left + n, sizeof left - n, " %s", o->metavar);
        printf("  %-26s %s", left, o->help ? o->help : "");
        if (strlen(left) > 26) printf("\n  %-26s", "");
        print_default(o, opts);
        printf("\n");
    }
    printf("\n  %-26s %s\n  %-26s %s\n", "-h, --help", "show this help and exit", "    --version",
           "show the version and exit");
    if (cli->epilog) printf("\n%s", cli->epilog);
    rhd_close_stdout();
}

/* Strings taken from a --config file must outlive the parse (options point at them); they are
 * kept reachable here for the life of the process. */
static char **g_cfg_strings;
static int g_cfg_nstrings;
static const char *keep_string(const char *s) {
    g_cfg_strings = rhd_xrealloc(g_cfg_strings, sizeof(char *) * (g_cfg_nstrings + 1));
    return g_cfg_strings[g_cfg_nstrings++] = rhd_xstrdup(s);
}

/* The rows given a value by this process's parse (command line or --config), for rhd_cli_given. */
static const rhd_opt **g_given;
static int g_ngiven;
static void mark_given(const rhd_opt *o) {
    g_given = rhd_xrealloc(g_given, sizeof(*g_given) * (g_ngiven + 1));
    g_given[g_ngiven++] = o;
}

int rhd_cli_given(const rhd_cli *cli, const char *lng) {
    const rhd_opt *o = find_long(cli->opts, lng, strlen(lng));
    RHD_ASSERT(o && "rhd_cli_given: no such option");
    for (int i = 0; i < g_ngiven; i++)
        if (g_given[i] == o) return 1;
    return 0;
}

/* --config FILE: keys are long option names ('_' accepted for '-'). */
static void apply_config(const rhd_cli *cli, void *opts, const char *path) {
    rhd_err e;
    char *text;
    size_t tn;
    if (rhd_read_file(path, &text, &tn, &e)) rhd_usage_error("--config: %s", e.msg);
    cJSON *root = cJSON_ParseWithLength(text, tn);
    char bad[96] = "";
    if (!root) {
        char at[64];
        rhd_text_where(text, tn, cJSON_GetErrorPtr(), at, sizeof at);
        snprintf(bad, sizeof bad, " (not valid JSON at %s)", at);
    }
    free(text);
    if (!root || !cJSON_IsObject(root))
        rhd_usage_error("--config %s: not a JSON object%s, expected e.g. {\"steps\": 50}", path, bad);
    char where[512];
    for (cJSON *it = root->child; it; it = it->next) {
        char key[128];
        snprintf(key, sizeof key, "%s", it->string ? it->string : "");
        for (char *p = key; *p; p++)
            if (*p == '_') *p = '-';
        const rhd_opt *o = find_long(cli->opts, key, strlen(key));
        if (!o || o->type == RHD_OPT_GROUP || strcmp(key, "config") == 0)
            rhd_usage_error("--config %s: unknown key '%s', expected a long option name of %s", path,
                            it->string, cli->name);
        snprintf(where, sizeof where, "--config %s: key '%s': ", path, it->string);
        char *field = (char *)opts + o->offset;
        mark_given(o);
        if (o->type == RHD_OPT_FLAG || o->type == RHD_OPT_COUNT) {
            if (cJSON_IsBool(it)) *(int *)field = cJSON_IsTrue(it);
            else if (cJSON_IsNumber(it) && o->type == RHD_OPT_COUNT) *(int *)field = (int)it->valuedouble;
            else rhd_usage_error("%stakes true or false", where);
        } else if (cJSON_IsString(it)) {
            int keep = o->type == RHD_OPT_STRING || o->type == RHD_OPT_CALLBACK;
            set_value(o, opts, keep ? keep_string(it->valuestring) : it->valuestring, where);
        } else if (cJSON_IsNumber(it) && (o->type == RHD_OPT_INT || o->type == RHD_OPT_DOUBLE)) {
            char num[64];
            if (o->type == RHD_OPT_INT && it->valuedouble != floor(it->valuedouble))
                rhd_usage_error("%stakes an integer, got %g", where, it->valuedouble);
            if (o->type == RHD_OPT_INT) snprintf(num, sizeof num, "%.0f", it->valuedouble);
            else snprintf(num, sizeof num, "%.17g", it->valuedouble);
            set_value(o, opts, num, where);
        } else {
            rhd_usage_error("%shas the wrong JSON type", where);
        }
    }
    /* string options point at kept copies, so the tree can go */
    cJSON_Delete(root);
}

int rhd_cli_parse(const rhd_cli *cli, int argc, char **argv, void *opts) {
    g_ngiven = 0;
    /* pass 1: --help, --version and --config FILE, so that flags override the config */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) break;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            rhd_cli_print_help(cli, opts);
            exit(0);
        }
        if (strcmp(a, "--version") == 0) {
            print_version(cli);
            rhd_close_stdout();
            exit(0);
        }
    }
    const rhd_opt *cfg = find_long(cli->opts, "config", 6);
    if (cfg) {
        for (int i = 1; i < argc; i++) {
            if (strcmp(argv[i], "--") == 0) break;
            const char *path = NULL;
            if (strcmp(argv[i], "--config") == 0) {
                if (i + 1 >= argc) rhd_usage_error("--config takes a FILE (e.g. --config fit.json)");
                path = argv[i + 1];
            } else if (strncmp(argv[i], "--config=", 9) == 0) {
                path = argv[i] + 9;
            }
            if (path) apply_config(cli, opts, path);
        }
    }
    int npos = 0, only_pos = 0;
    char **pos = rhd_xmalloc(sizeof(char *) * (argc + 1));
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == 0) { pos[npos++] = a; continue; }
        if (strcmp(a, "--") == 0) { only_pos = 1; continue; }
        const rhd_opt *o;
        const char *val = NULL;
        if (a[1] == '-') {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            o = find_long(cli->opts, name, len);
            if (!o && len > 3 && strncmp(name, "no-", 3) == 0) {
                const rhd_opt *f = find_long(cli->opts, name + 3, len - 3);
                if (f && f->type == RHD_OPT_FLAG && !eq) {
                    *(int *)((char *)opts + f->offset) = 0;
                    mark_given(f);
                    continue;
                }
            }
            if (!o || o->type == RHD_OPT_GROUP) rhd_usage_error("unknown option '%.*s'", (int)(len + 2), a);
            if (eq) {
                if (!takes_value(o)) rhd_usage_error("--%s takes no value, got '%s'", o->lng, eq + 1);
                val = eq + 1;
            }
        } else {
            o = find_short(cli->opts, a[1]);
            if (!o) rhd_usage_error("unknown option '-%c'", a[1]);
            if (a[2]) {
                if (!takes_value(o)) rhd_usage_error("-%c takes no value, got '%s'", a[1], a);
                val = a + 2;
            }
        }
        if (takes_value(o) && !val) {
            char name[128];
            opt_name(o, name, sizeof name);
            if (i + 1 >= argc)
                rhd_usage_error("%s takes a %s", name, o->metavar ? o->metavar : "value");
            val = argv[++i];
        }
        char *field = (char *)opts + o->offset;
        mark_given(o);
        if (o->type == RHD_OPT_FLAG) *(int *)field = 1;
        else if (o->type == RHD_OPT_COUNT) (*(int *)field)++;
        else set_value(o, opts, val, "");
    }
    for (int i = 0; i < npos; i++) argv[i + 1] = pos[i];
    argv[npos + 1] = NULL;
    free(pos);
    return npos;
}

void rhd_common_opts_init(rhd_common_opts *c) {
    memset(c, 0, sizeof *c);
    const char *dev = getenv("RHD_DEVICE");
    c->device = (dev && *dev) ? dev : "auto";
    c->seed = 0;
}

/* cpu, cuda, cuda:N (N in 0..1024) or auto. */
static int device_name_valid(const char *d) {
    if (!strcmp(d, "cpu") || !strcmp(d, "cuda") || !strcmp(d, "auto")) return 1;
    if (strncmp(d, "cuda:", 5) != 0) return 0;
    long long v;
    return rhd_parse_ll(d + 5, &v) == 0 && v >= 0 && v <= 1024 && d[5] >= '0' && d[5] <= '9';
}

void rhd_common_opts_apply(const rhd_common_opts *c) {
    /* a device named on the command line or in --config is a usage error when it is not one
     * (RHD_DEVICE from the environment is checked where the backend opens) */
    const char *env = getenv("RHD_DEVICE");
    if (c->device && c->device != env && !device_name_valid(c->device))
        rhd_usage_error("--device takes cpu, cuda, cuda:N or auto (e.g. --device cpu), got '%s'", c->device);
    rhd_log_set_level(c->quiet ? RHD_LOG_QUIET : (c->verbose ? RHD_LOG_VERBOSE : RHD_LOG_INFO));
#ifdef _OPENMP
    if (c->threads > 0) omp_set_num_threads((int)c->threads);
#endif
}

/* ------------------------------------------------------------------------------------------- */
/* sharding over the ranks of a launch                                                         */

static const char *const k_shard_env[][2] = {
    {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"}, {"PMI_RANK", "PMI_SIZE"}, {"SLURM_PROCID", "SLURM_NTASKS"}};

static long long shard_env(const char *name, long long lo) {
    const char *v = getenv(name);
    long long x;
    if (rhd_parse_ll(v, &x) || x < lo || x > 1000000)
        rhd_usage_error("$%s=%s: expected an integer in %lld..1000000 (set by mpirun or srun)", name, v, lo);
    return x;
}

void rhd_shard_init(rhd_shard *s) {
    s->rank = 0, s->world = 1;
    for (size_t k = 0; k < sizeof k_shard_env / sizeof k_shard_env[0]; k++) {
        const char *r = getenv(k_shard_env[k][0]), *w = getenv(k_shard_env[k][1]);
        if (!(r && *r) && !(w && *w)) continue;
        if (r && *r) s->rank = shard_env(k_shard_env[k][0], 0);
        if (w && *w) s->world = shard_env(k_shard_env[k][1], 1);
        return;
    }
}

void rhd_shard_check(const rhd_shard *s) {
    if (s->rank >= s->world)
        rhd_usage_error("--rank %lld is out of range for --world %lld, expected 0..%lld", s->rank, s->world, s->world - 1);
}

int rhd_shard_mine(const rhd_shard *s, long long i) { return i % s->world == s->rank; }
