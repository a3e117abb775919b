/* cli/cmd_report.c: `causeway report`: one self-contained HTML file with inline SVG plots
 * of a click log, propensity fits, OPE estimates and ULTR learning curves (report/). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "causal/causal.h"
#include "cli/cli.h"
#include "report/report.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: causeway report [--db FILE] [--propensity FIT.json | --fit METHOD]\n"
               "                       [--ope OPE.json] [--ultr CURVES.json|RESULTS.tsv]\n"
               "                       [--ultr-eta ETA] [--true-eta ETA] [--boot N] [--seed N]\n"
               "                       [--max-rank 10] [--recent 20] [--title TEXT]\n"
               "                       --out report.html\n\n"
               "Writes one HTML file (no scripts, fonts or links outside it) with inline SVG:\n"
               "  --db          click-through rate by position with Wilson intervals, the\n"
               "                counts and the latest clicks of a log (read-only)\n"
               "  --propensity  examination propensity per position with bootstrap bands\n"
               "                (causal_propensity_to_json output, or {\"fits\":[...]})\n"
               "  --fit METHOD  fit the propensities to the --db log instead (randomization,\n"
               "                harvest, rem, trust; --boot replicates, default 200); a log that\n"
               "                cannot identify them gets the estimator's reason in the report\n"
               "  --true-eta    a simulated log's truth theta_k/theta_1 = k^-ETA, drawn dashed\n"
               "  --ope         estimates per policy and estimator with 95%% intervals and\n"
               "                n_eff (output of `causeway ope --json`)\n"
               "  --ultr        nDCG against training sessions per method: JSON\n"
               "                {\"curves\":[{\"method\",\"points\":[{\"sessions\",\"value\"}]}]}\n"
               "                or the TSV of bench/ultr_experiment (docs/reports.md);\n"
               "                --ultr-eta keeps that TSV's rows of one position-bias eta\n"
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
    const char *fit_method = NULL;
    report_input in = report_input_default();
    uint64_t max_rank = 10, recent = 20, n_boot = 200, seed = 1;
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
        } else if (strcmp(a, "--fit") == 0 && has_val) {
            fit_method = argv[++i];
        } else if (strcmp(a, "--boot") == 0 && has_val) {
            if (!cli_parse_u64("report", a, argv[++i], 0, 100000, &n_boot)) {
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--seed") == 0 && has_val) {
            if (!cli_parse_u64("report", a, argv[++i], 0, UINT64_MAX, &seed)) {
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--ultr-eta") == 0 && has_val) {
            if (!cli_parse_double("report", a, argv[++i], 0, 100, &in.ultr_eta)) {
                return CLI_EXIT_USAGE;
            }
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
    if (fit_method && (prop || !db)) {
        return cli_usage_error("report", "--fit needs --db and excludes --propensity");
    }
    cw_err err;
    cw_err_clear(&err);
    causal_prop_method method;
    if (fit_method && causal_prop_method_parse(fit_method, &method, &err) != CW_OK) {
        return cli_usage_error("report", "--fit: %s", err.msg);
    }
    char *texts[3] = {NULL, NULL, NULL};
    cw_buf fit = {0};
    char note[CW_ERR_MSG_BYTES + 64];
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
    if (fit_method) {
        cw_err fe;
        cw_err_clear(&fe);
        int rc = report_fit_propensity(db, fit_method, (uint32_t)max_rank, (uint32_t)n_boot, seed,
                                       &fit, &fe);
        if (rc == CW_OK) {
            in.propensity = (report_source){.name = "fit", .text = fit.data, .len = fit.len};
        } else if (rc == CW_EINVAL) {
            /* Not identifiable from this log: the report says why instead of failing. */
            snprintf(note, sizeof note, "%s: no examination curve: %s", fit_method, fe.msg);
            in.propensity_note = note;
            fprintf(stderr, "causeway report: %s\n", note);
        } else {
            err = fe;
            goto done;
        }
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
    cw_buf_fini(&fit);
    free(stats);
    for (int i = 0; i < 3; i++) {
        free(texts[i]);
    }
    return code;
}
