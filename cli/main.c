/* cli/main.c: entry point of the one causeway binary; dispatches git-style
 * subcommands listed in cli/commands.def. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

cw_progress cli_progress = {cw_progress_stderr, NULL};

typedef struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} cli_command;

static const cli_command commands[] = {
#define CLI_COMMAND(name, summary) {#name, cli_cmd_##name, summary},
#include "cli/commands.def"
#undef CLI_COMMAND
};

int cli_fail(const char *cmd, const cw_err *err)
{
    fprintf(stderr, "causeway %s: %s\n", cmd, err && err->msg[0] ? err->msg : "failed");
    return CLI_EXIT_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "causeway %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun 'causeway %s --help' for usage.\n", cmd);
    return CLI_EXIT_USAGE;
}

bool cli_parse_u64(const char *cmd, const char *opt, const char *s, uint64_t lo, uint64_t hi,
                   uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    /* strtoull would skip leading blanks and wrap a '-' around: demand a digit first. */
    if (!s || !isdigit((unsigned char)*s)) {
        cli_usage_error(cmd, "%s expects a whole number, got '%s'", opt, s ? s : "");
        return false;
    }
    unsigned long long v = strtoull(s, &end, 10);
    /* Accept 1e6-style counts: experiments are written that way. */
    if (*end == 'e' || *end == 'E') {
        char *end2 = NULL;
        double d = strtod(s, &end2);
        if (*end2 == '\0' && d >= 0 && d <= 1.8e19 && d == floor(d)) {
            v = (unsigned long long)d;
            end = end2;
        }
    }
    if (errno || *end != '\0' || v < lo || v > hi) {
        cli_usage_error(cmd, "%s expects a whole number in [%llu, %llu], got '%s'", opt,
                        (unsigned long long)lo, (unsigned long long)hi, s);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                      double *out)
{
    char *end = NULL;
    errno = 0;
    double v = s ? strtod(s, &end) : NAN;
    /* strtod also takes leading blanks and hexadecimal ("0x10"): decimal numbers only. */
    bool plain = s && *s && !isspace((unsigned char)*s) && !strpbrk(s, "xX");
    if (!plain || errno || *end != '\0' || !(v >= lo && v <= hi)) {
        cli_usage_error(cmd, "%s expects a number in [%g, %g], got '%s'", opt, lo, hi, s ? s : "");
        return false;
    }
    *out = v;
    return true;
}

bool cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return true;
        }
        if (strcmp(argv[i], "--") == 0) {
            break;
        }
    }
    return false;
}

static void print_help(FILE *f)
{
    fprintf(f, "usage: causeway <command> [options]\n\n"
               "causeway is a search server that learns rankings from its own click logs\n"
               "without their position bias.\n\ncommands:\n");
    for (size_t i = 0; i < CW_ARRAY_LEN(commands); i++) {
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(f, "  %-12s %s\n", "help", "this list, or 'causeway help CMD' for one command");
    fprintf(f, "\nExit codes: 0 success, 1 failure, 2 usage error.\n");
}

int cli_cmd_version(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: causeway version\n\nPrints the version of causeway.\n");
        return CLI_EXIT_OK;
    }
    if (argc > 1) {
        return cli_usage_error("version", "unexpected argument '%s'", argv[1]);
    }
    printf("causeway %s\n", PACKAGE_VERSION);
    return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_help(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        if (argc > 2 && strcmp(name, "help") == 0) {
            for (size_t i = 0; i < CW_ARRAY_LEN(commands); i++) {
                if (strcmp(commands[i].name, argv[2]) == 0) {
                    char *sub[] = {argv[2], (char *)"--help", NULL};
                    return commands[i].run(2, sub);
                }
            }
            fprintf(stderr, "causeway: unknown command '%s'\n", argv[2]);
            return CLI_EXIT_USAGE;
        }
        print_help(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0) {
        printf("causeway %s\n", PACKAGE_VERSION);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < CW_ARRAY_LEN(commands); i++) {
        if (strcmp(commands[i].name, name) == 0) {
            if (getenv("CAUSEWAY_QUIET")) {
                cli_progress.fn = NULL;
            }
            cw_interrupt_install();
            return commands[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "causeway: unknown command '%s'. Run 'causeway help'.\n", name);
    return CLI_EXIT_USAGE;
}
