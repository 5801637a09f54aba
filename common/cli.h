/* common/cli.h: table-driven option parsing (git's parse-options, jq's messages).
 *
 * A tool declares its options once, as a table of rhd_opt rows pointing (by offsetof) into its
 * own options struct. rhd_cli_parse() then handles --long, --long=value, -s value, -svalue, "--",
 * strict number parsing with ranges, choices, --help (generated, defaults read from the struct
 * as initialised, so they cannot drift), --version, and --config FILE (a JSON object whose keys
 * are long option names; command-line flags override it). Usage errors exit 2 with a message
 * that names the option, what was given and an example. */
#ifndef RHD_CLI_H
#define RHD_CLI_H
#include <stddef.h>
#include "common/err.h"

typedef enum {
    RHD_OPT_END = 0,
    RHD_OPT_FLAG,     /* int field set to 1 (or 0 for --no-<name> when the row allows it) */
    RHD_OPT_COUNT,    /* int field incremented per occurrence (-v -v) */
    RHD_OPT_INT,      /* long long field, range [min,max] */
    RHD_OPT_DOUBLE,   /* double field, finite, range [min,max] */
    RHD_OPT_STRING,   /* const char * field (points into argv or the config) */
    RHD_OPT_CHOICE,   /* int field: index into choices[] */
    RHD_OPT_CALLBACK, /* cb(opts, value, err) parses the value itself; help shows metavar */
    RHD_OPT_GROUP     /* a heading in --help; no field */
} rhd_opt_type;

typedef struct rhd_opt {
    rhd_opt_type type;
    const char *lng;             /* long name without "--", e.g. "steps" */
    char shrt;                   /* short letter or 0 */
    size_t offset;               /* offsetof(opts, field) */
    const char *metavar;         /* "N", "FILE" */
    const char *help;            /* one line */
    double min, max;             /* numeric range (inclusive) */
    const char *const *choices;  /* CHOICE: NULL-terminated names */
    int (*cb)(void *opts, const char *val, rhd_err *e);
    const char *example;         /* value shown in "e.g. --steps 50"; NULL: derived */
} rhd_opt;

#define RHD_OPT_FLAG_(s, l, T, f, h)            {RHD_OPT_FLAG, l, s, offsetof(T, f), NULL, h, 0, 0, NULL, NULL, NULL}
#define RHD_OPT_COUNT_(s, l, T, f, h)           {RHD_OPT_COUNT, l, s, offsetof(T, f), NULL, h, 0, 0, NULL, NULL, NULL}
#define RHD_OPT_INT_(s, l, T, f, mv, h, lo, hi) {RHD_OPT_INT, l, s, offsetof(T, f), mv, h, lo, hi, NULL, NULL, NULL}
#define RHD_OPT_DOUBLE_(s, l, T, f, mv, h, lo, hi) {RHD_OPT_DOUBLE, l, s, offsetof(T, f), mv, h, lo, hi, NULL, NULL, NULL}
#define RHD_OPT_STRING_(s, l, T, f, mv, h)      {RHD_OPT_STRING, l, s, offsetof(T, f), mv, h, 0, 0, NULL, NULL, NULL}
#define RHD_OPT_CHOICE_(s, l, T, f, mv, h, ch)  {RHD_OPT_CHOICE, l, s, offsetof(T, f), mv, h, 0, 0, ch, NULL, NULL}
#define RHD_OPT_CALLBACK_(s, l, T, f, mv, h, cb, ex) {RHD_OPT_CALLBACK, l, s, offsetof(T, f), mv, h, 0, 0, NULL, cb, ex}
#define RHD_OPT_GROUP_(title)                   {RHD_OPT_GROUP, NULL, 0, 0, NULL, title, 0, 0, NULL, NULL, NULL}
#define RHD_OPT_END_                            {RHD_OPT_END, NULL, 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL}

/* The options every tool shares; embed this struct as the member named `common` and add
 * RHD_COMMON_OPTS(T) to the table. */
typedef struct rhd_common_opts {
    const char *output;  /* -o FILE */
    const char *device;  /* --device cpu|cuda|auto (default: $RHD_DEVICE or auto) */
    long long seed;      /* --seed */
    const char *config;  /* --config FILE */
    int quiet;           /* -q */
    int verbose;         /* -v (count) */
    long long threads;   /* --threads (0 = OpenMP default) */
    int tf32;            /* --tf32: TF32 tensor cores on the CUDA backend (rhd_ctx_set_tf32) */
    int bf16;            /* --bf16: bf16 tensor cores for convolutions and matmuls (rhd_ctx_set_bf16) */
} rhd_common_opts;

#define RHD_COMMON_OPTS(T)                                                                         \
    RHD_COMMON_OPTS_NO_SEED(T),                                                                    \
    RHD_OPT_INT_(0, "seed", T, common.seed, "N", "random seed", 0, 9.007199254740992e15)
/* The same without --seed, for a tool that draws no random numbers (rhd-encode). */
#define RHD_COMMON_OPTS_NO_SEED(T)                                                                 \
    RHD_OPT_GROUP_("common options"),                                                              \
    RHD_OPT_STRING_('o', "output", T, common.output, "FILE", "output file"),                      \
    RHD_OPT_STRING_(0, "device", T, common.device, "DEV", "backend: cpu, cuda or auto (env RHD_DEVICE)"), \
    RHD_OPT_INT_(0, "threads", T, common.threads, "N", "CPU threads (0: OpenMP default)", 0, 4096),\
    RHD_OPT_FLAG_(0, "tf32", T, common.tf32, "CUDA: TF32 tensor cores for matmuls and convolutions (default: strict fp32; no effect on the CPU)"), \
    RHD_OPT_FLAG_(0, "bf16", T, common.bf16, "CUDA: convolutions and matmuls on bf16 tensor cores (inputs rounded to bf16, fp32 sums; the rest fp32; attention fused unless RHD_NO_FUSED_ATTN=1; no effect on the CPU)"), \
    RHD_OPT_STRING_(0, "config", T, common.config, "FILE", "JSON object of option values; flags override it"), \
    RHD_OPT_FLAG_('q', "quiet", T, common.quiet, "no progress or info messages"),                 \
    RHD_OPT_COUNT_('v', "verbose", T, common.verbose, "more messages (repeatable)")

/* Sharding a list of avatars over the ranks of a launch (mpirun, srun): item i belongs to rank
 * i mod world. A tool embeds rhd_shard as a member, adds RHD_SHARD_OPTS(T, member) to its table,
 * calls rhd_shard_init() before rhd_cli_parse() (the defaults come from the launcher's
 * environment) and rhd_shard_check() after it. No MPI library is linked: the ranks share nothing
 * but the file system, each writing its own items' outputs. */
typedef struct rhd_shard {
    long long rank, world;
} rhd_shard;

#define RHD_SHARD_OPTS(T, m)                                                                       \
    RHD_OPT_INT_(0, "rank", T, m.rank, "R", "this rank; avatar i goes to rank i mod W (default: $OMPI_COMM_WORLD_RANK, $PMI_RANK or $SLURM_PROCID)", 0, 1e6), \
    RHD_OPT_INT_(0, "world", T, m.world, "W", "number of ranks (default: $OMPI_COMM_WORLD_SIZE, $PMI_SIZE or $SLURM_NTASKS; else 1)", 1, 1e6)

typedef struct rhd_cli {
    const char *name;        /* "rhd-inspect" */
    const char *synopsis;    /* "rhd-inspect [options] FILE..." */
    const char *description; /* a paragraph shown by --help */
    const rhd_opt *opts;
    const char *epilog;      /* examples, shown last; may be NULL */
} rhd_cli;

#ifdef __cplusplus
extern "C" {
#endif
/* Parse argv into opts. Positional arguments are moved to argv[1..n] in order and n is returned.
 * Exits 0 after --help/--version, exits 2 on a usage error. */
int rhd_cli_parse(const rhd_cli *cli, int argc, char **argv, void *opts);
/* 1 when the last rhd_cli_parse gave the option LNG (its long name) a value, on the command line
 * or in a --config file; 0 when it kept its default. */
int rhd_cli_given(const rhd_cli *cli, const char *lng);
/* Apply the common options' side effects: log level, OpenMP threads, env RHD_DEVICE default. */
void rhd_common_opts_init(rhd_common_opts *c);
void rhd_common_opts_apply(const rhd_common_opts *c);
void rhd_cli_print_help(const rhd_cli *cli, const void *opts);

/* Rank and world size from the environment of an MPI or Slurm launch: OMPI_COMM_WORLD_RANK/SIZE
 * (OpenMPI), PMI_RANK/PMI_SIZE (MPICH, Intel MPI), SLURM_PROCID/SLURM_NTASKS (srun), the first
 * pair set; else rank 0 of 1. A set but malformed variable is a usage error naming it. */
void rhd_shard_init(rhd_shard *s);
/* Usage error unless 0 <= rank < world (naming --rank/--world). */
void rhd_shard_check(const rhd_shard *s);
/* 1 when item i is this rank's (i mod world == rank). */
int rhd_shard_mine(const rhd_shard *s, long long i);

/* Strict parsers: the whole string must be a number, finite, in range. */
int rhd_parse_ll(const char *s, long long *out);
int rhd_parse_double(const char *s, double *out);
/* "X,Y,Z": three finite numbers separated by commas, nothing else. */
int rhd_parse_vec3(const char *s, double v[3]);
/* Parse "A-B", "A", "A,B,C-D" into a sorted list of non-negative ints (malloc'd). */
int rhd_parse_ranges(const char *s, int **out, int *n, rhd_err *e);
#ifdef __cplusplus
}
#endif

#define RHD_VERSION "0.1.0"
#endif
