/* cli/cmd_report.c: `causeway report`: one self-contained HTML file with inline SVG plots
 * of a click log, propensity fits, OPE estimates and ULTR learning curves (report/). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "report/report.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: causeway report [--db FILE] [--propensity FIT.json] [--ope OPE.json]\n"
               "                       [--ultr CURVES.json|RESULTS.tsv] [--true-eta ETA]\n"
               "                       [--max-rank 10] [--recent 20] [--title TEXT]\n"
               "                       --out report.html\n\n"
               "Writes one HTML file (no scripts, fonts or links outside it) with inline SVG:\n"
               "  --db          click-through rate by position with Wilson intervals, the\n"
               "                counts and the latest clicks of a log (read-only)\n"
               "  --propensity  examination propensity per position with bootstrap bands\n"
               "                (output of `causeway propensity fit`, or {\"fits\":[...]})\n"
               "  --true-eta    a simulated log's truth theta_k/theta_1 = k^-ETA, drawn dashed\n"
               "  --ope         estimates per policy and estimator with 95%% intervals and\n"
               "                n_eff (output of `causeway ope --json`)\n"
               "  --ultr        nDCG against training sessions per method: JSON\n"
               "                {\"curves\":[{\"method\",\"points\":[{\"sessions\",\"value\"}]}]}\n"
               "                or the TSV of bench/ultr_experiment (docs/reports.md)\n"
               "At least one input is required.\n\n"
               "Exit codes: 0 success, 1 failure (bad input names file:line), 2 usage error.\n");
}

static int read_source(const char *path, report_source *src, char **owned, cw_err *err)
{
    size_t len = 0;
    int rc = cw_file_read(path, REPORT_MAX_INPUT_BYTES, owned, &len, err);
    if (rc != CW_OK) {
        return rc;
    }
    src->name = path;
    src->text = *owned;
    src->len = len;
    return CW_OK;
}

int cli_cmd_report(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    const char *db = NULL, *prop = NULL, *ope = NULL, *ultr = NULL, *out_path = NULL;
    report_input in = report_input_default();
    uint64_t max_rank = 10, recent = 20;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (strcmp(a, "--db") == 0 && has_val) {
            db = argv[++i];
        } else if (strcmp(a, "--propensity") == 0 && has_val) {
            prop = argv[++i];
        } else if (strcmp(a, "--ope") == 0 && has_val) {
            ope = argv[++i];
        } else if (strcmp(a, "--ultr") == 0 && has_val) {
            ultr = argv[++i];
        } else if (strcmp(a, "--out") == 0 && has_val) {
            out_path = argv[++i];
        } else if (strcmp(a, "--title") == 0 && has_val) {
            in.title = argv[++i];
        } else if (strcmp(a, "--true-eta") == 0 && has_val) {
            if (!cli_parse_double("report", a, argv[++i], 0, 10, &in.true_eta)) {
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--max-rank") == 0 && has_val) {
            if (!cli_parse_u64("report", a, argv[++i], 1, REPORT_MAX_RANK, &max_rank)) {
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--recent") == 0 && has_val) {
            if (!cli_parse_u64("report", a, argv[++i], 0, REPORT_MAX_RECENT, &recent)) {
                return CLI_EXIT_USAGE;
            }
        } else {
            return cli_usage_error("report", "unknown option or missing value '%s'", a);
        }
    }
    if (!out_path) {
        return cli_usage_error("report", "--out FILE is required");
    }
    if (!db && !prop && !ope && !ultr && !isfinite(in.true_eta)) {
        return cli_usage_error("report", "give at least one of --db, --propensity, --ope, --ultr");
    }
    cw_err err;
    cw_err_clear(&err);
    char *texts[3] = {NULL, NULL, NULL};
    report_log_stats *stats = NULL;
    cw_buf html = {0};
    int code = CLI_EXIT_FAIL;
    if ((prop && read_source(prop, &in.propensity, &texts[0], &err) != CW_OK) ||
        (ope && read_source(ope, &in.ope, &texts[1], &err) != CW_OK) ||
        (ultr && read_source(ultr, &in.ultr, &texts[2], &err) != CW_OK)) {
        goto done;
    }
    if (db) {
        stats = malloc(sizeof *stats);
        if (!stats) {
            cw_err_set(&err, CW_ENOMEM, "out of memory");
            goto done;
        }
        if (report_log_stats_read(db, (uint32_t)max_rank, (size_t)recent, stats, &err) != CW_OK) {
            goto done;
        }
        in.log = stats;
        in.db_label = db;
    }
    in.generated_ms = cw_wall_ms();
    if (report_render(&in, &html, &err) != CW_OK ||
        cw_file_write_atomic(out_path, html.data, html.len, &err) != CW_OK) {
        goto done;
    }
    fprintf(stderr, "causeway report: wrote %s (%zu bytes)\n", out_path, html.len);
    code = CLI_EXIT_OK;
done:
    if (code != CLI_EXIT_OK) {
        code = cli_fail("report", &err);
    }
    cw_buf_fini(&html);
    free(stats);
    for (int i = 0; i < 3; i++) {
        free(texts[i]);
    }
    return code;
}
