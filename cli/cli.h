/* cli/cli.h: the causeway binary: main(), git-style subcommands and the
 * helpers they share (option parsing, error printing, exit codes). */
#ifndef CAUSEWAY_CLI_CLI_H
#define CAUSEWAY_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "common/cw.h"
#include "index/index.h"

/* Exit codes of every subcommand. */
enum {
    CLI_EXIT_OK = 0,    /* success */
    CLI_EXIT_FAIL = 1,  /* the job failed (bad input, I/O, ...) */
    CLI_EXIT_USAGE = 2, /* wrong options or arguments */
};

/* Every subcommand: `int cli_cmd_NAME(int argc, char **argv)` where argv[0] is the
 * subcommand name; returns a CLI_EXIT_* code. cli/commands.def lists them. */
#define CLI_COMMAND(name, summary) int cli_cmd_##name(int argc, char **argv);
#include "cli/commands.def"
#undef CLI_COMMAND

/* Prints "causeway CMD: MESSAGE" to stderr for a failed call and returns
 * CLI_EXIT_FAIL (CLI_EXIT_USAGE for CW_EINVAL raised from option checks is the
 * caller's choice). */
int cli_fail(const char *cmd, const cw_err *err);
/* Prints "causeway CMD: printf-message" and a hint to run --help; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) CW_PRINTF(2, 3);

/* Strict number parsing for option values: the whole string must parse and lie in
 * [lo, hi]. On failure prints a usage error naming the option and returns false. */
bool cli_parse_u64(const char *cmd, const char *opt, const char *s, uint64_t lo, uint64_t hi,
                   uint64_t *out);
bool cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                      double *out);

/* True if argv has --help or -h anywhere (subcommands print their usage then). */
bool cli_wants_help(int argc, char **argv);

/* Progress reporter for long jobs: stderr, unless --quiet was given. */
extern cw_progress cli_progress;

/* ---- hybrid retrieval options (cli/hybrid_opts.c) ----------------------------------
 * One parser for the BM25 + dense fusion options of search, run, embed search|run and
 * serve: the same spellings, ranges and messages everywhere. */

enum {
    CLI_HY_FUSION = 1u << 0, /* --fusion rrf|weighted */
    CLI_HY_WEIGHT = 1u << 1, /* --dense-weight W in [0, 1] (also spelt --w-dense) */
    CLI_HY_RRF_K = 1u << 2,  /* --rrf-k K in [1e-9, 1e6] */
    CLI_HY_DEPTH = 1u << 3,  /* --depth N in [1, IDX_MAX_K]: candidates from each run */
    CLI_HY_EF = 1u << 4,     /* --ef N in [1, IDX_DENSE_MAX_EF]: HNSW beam */
    CLI_HY_ALL = (1u << 5) - 1,
};

/* If argv[*i] is one of the options in `accept` (CLI_HY_* bits), parses its value
 * argv[*i + 1] into *hy, ORs the option's bit into *given (may be NULL), moves *i onto the
 * value and returns 1. Returns 0 (nothing read) for any other argument. A missing or bad
 * value prints the usage error naming cmd and returns -1: the command exits
 * CLI_EXIT_USAGE. */
int cli_hybrid_opt(const char *cmd, unsigned accept, int argc, char **argv, int *i,
                   idx_hybrid_opts *hy, unsigned *given);

#endif /* CAUSEWAY_CLI_CLI_H */
