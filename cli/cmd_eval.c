/* cli/cmd_eval.c: `causeway eval`, trec_eval-style evaluation of a TREC run against
 * qrels (conventions in ranker/ranker.h, METHODS.md section 1). */
#include "config.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "ranker/ranker.h"

#define EVAL_DEFAULT_METRICS "ndcg@10,map,p@10,recall@100,recall@1000,mrr"

static void usage(FILE *f)
{
    fprintf(f, "usage: causeway eval --qrels FILE [--metrics LIST] [--gain linear|exp]\n"
               "                     [--idcg0 drop|zero|one] [--depth N] [-q] [--json] RUN\n\n"
               "Evaluates a TREC run (\"qid Q0 docno rank score [tag]\") against TREC qrels\n"
               "(\"qid 0 docno grade\") with trec_eval's conventions: each query re-sorted by\n"
               "score (as float) descending, ties by docno descending; depth 1000; relevant =\n"
               "grade >= 1; averages over the judged queries (those missing from the run score\n"
               "0, as trec_eval -c). Prints trec_eval-like lines \"name<TAB>all<TAB>value\".\n\n"
               "  --qrels FILE      relevance judgments (required)\n"
               "  --metrics LIST    comma-separated: ndcg@K ndcg map p@K recall@K mrr mrr@K\n"
               "                    (default " EVAL_DEFAULT_METRICS ")\n"
               "  --gain G          nDCG gain: linear (grade, default, as trec_eval) or exp\n"
               "                    (2^grade - 1; printed as ndcg_exp...)\n"
               "  --idcg0 R         queries whose qrels hold no relevant document: drop\n"
               "                    (default), zero, or one (nDCG 1)\n"
               "  --depth N         documents per query evaluated (default 1000)\n"
               "  -q                per-query values too\n"
               "  --json            one JSON object instead of lines\n");
    fprintf(f, "\nExit codes: 0 success, 1 failure (the message names the file and line or\n"
               "byte offset at fault), 2 usage error.\n");
}

static int print_json(const rank_eval_result *r, const rank_eval_opts *o, bool per_query)
{
    json_t *root = json_object();
    json_t *means = json_object();
    json_t *queries = per_query ? json_object() : NULL;
    char name[64];
    json_object_set_new(root, "gain", json_string(rank_gain_name(o->gain)));
    json_object_set_new(root, "idcg0", json_string(rank_idcg0_name(o->idcg0)));
    json_object_set_new(root, "depth", json_integer(o->depth));
    json_object_set_new(root, "num_q", json_integer((json_int_t)r->n_queries));
    json_object_set_new(root, "num_dropped", json_integer((json_int_t)r->n_dropped));
    json_object_set_new(root, "num_missing", json_integer((json_int_t)r->n_missing));
    json_object_set_new(root, "num_ret", json_integer((json_int_t)r->n_ret));
    json_object_set_new(root, "num_rel", json_integer((json_int_t)r->n_rel));
    json_object_set_new(root, "num_rel_ret", json_integer((json_int_t)r->n_rel_ret));
    for (size_t j = 0; j < r->n_metrics; j++) {
        rank_metric_name(&r->metrics[j], o->gain, name, sizeof name);
        json_object_set_new(means, name, json_real(r->mean[j]));
    }
    json_object_set_new(root, "metrics", means);
    for (size_t q = 0; queries && q < r->n_queries; q++) {
        json_t *one = json_object();
        for (size_t j = 0; j < r->n_metrics; j++) {
            rank_metric_name(&r->metrics[j], o->gain, name, sizeof name);
            json_object_set_new(one, name, json_real(r->values[q * r->n_metrics + j]));
        }
        json_object_set_new(queries, r->qid[q], one);
    }
    if (queries) {
        json_object_set_new(root, "queries", queries);
    }
    int rc = json_dumpf(root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    json_decref(root);
    printf("\n");
    return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static void print_lines(const rank_eval_result *r, const rank_eval_opts *o, bool per_query)
{
    char name[64];
    for (size_t q = 0; per_query && q < r->n_queries; q++) {
        for (size_t j = 0; j < r->n_metrics; j++) {
            rank_metric_name(&r->metrics[j], o->gain, name, sizeof name);
            printf("%-22s\t%s\t%.4f\n", name, r->qid[q], r->values[q * r->n_metrics + j]);
        }
    }
    printf("%-22s\tall\t%zu\n", "num_q", r->n_queries);
    printf("%-22s\tall\t%llu\n", "num_ret", (unsigned long long)r->n_ret);
    printf("%-22s\tall\t%llu\n", "num_rel", (unsigned long long)r->n_rel);
    printf("%-22s\tall\t%llu\n", "num_rel_ret", (unsigned long long)r->n_rel_ret);
    printf("%-22s\tall\t%s\n", "gain", rank_gain_name(o->gain));
    printf("%-22s\tall\t%s (%zu dropped)\n", "idcg0", rank_idcg0_name(o->idcg0), r->n_dropped);
    for (size_t j = 0; j < r->n_metrics; j++) {
        rank_metric_name(&r->metrics[j], o->gain, name, sizeof name);
        printf("%-22s\tall\t%.4f\n", name, r->mean[j]);
    }
}

int cli_cmd_eval(int argc, char **argv)
{
    const char *cmd = "eval";
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    rank_eval_opts o = rank_eval_opts_default();
    const char *qrels_path = NULL, *run_path = NULL, *spec = EVAL_DEFAULT_METRICS;
    bool per_query = false, json = false;
    cw_err err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-q") == 0) {
            per_query = true;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--qrels") == 0 || strcmp(a, "--metrics") == 0 ||
                   strcmp(a, "--gain") == 0 || strcmp(a, "--idcg0") == 0 ||
                   strcmp(a, "--depth") == 0) {
            if (!v) {
                return cli_usage_error(cmd, "%s needs a value", a);
            }
            i++;
            if (strcmp(a, "--qrels") == 0) {
                qrels_path = v;
            } else if (strcmp(a, "--metrics") == 0) {
                spec = v;
            } else if (strcmp(a, "--gain") == 0) {
                if (rank_gain_parse(v, &o.gain, &err) != CW_OK) {
                    return cli_usage_error(cmd, "%s", err.msg);
                }
            } else if (strcmp(a, "--idcg0") == 0) {
                if (rank_idcg0_parse(v, &o.idcg0, &err) != CW_OK) {
                    return cli_usage_error(cmd, "%s", err.msg);
                }
            } else {
                uint64_t d;
                if (!cli_parse_u64(cmd, a, v, 1, RANK_MAX_EVAL_DEPTH, &d)) {
                    return CLI_EXIT_USAGE;
                }
                o.depth = (uint32_t)d;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        } else if (run_path) {
            return cli_usage_error(cmd, "one run file expected, got '%s' and '%s'", run_path, a);
        } else {
            run_path = a;
        }
    }
    if (!qrels_path || !run_path) {
        return cli_usage_error(cmd, "--qrels FILE and a run file are required");
    }
    rank_metric metrics[RANK_MAX_METRICS];
    size_t n_metrics = 0;
    if (rank_metrics_parse(spec, metrics, RANK_MAX_METRICS, &n_metrics, &err) != CW_OK) {
        return cli_usage_error(cmd, "%s", err.msg);
    }
    rank_qrels *qrels = NULL;
    rank_run *run = NULL;
    rank_eval_result *res = NULL;
    int rc = CLI_EXIT_FAIL;
    if (rank_qrels_read(qrels_path, &qrels, &err) != CW_OK ||
        rank_run_read(run_path, &run, &err) != CW_OK ||
        rank_evaluate(qrels, run, metrics, n_metrics, &o, &res, &err) != CW_OK) {
        rc = cli_fail(cmd, &err);
        goto done;
    }
    if (json) {
        rc = print_json(res, &o, per_query);
    } else {
        print_lines(res, &o, per_query);
        rc = CLI_EXIT_OK;
    }
done:
    rank_eval_result_free(res);
    rank_run_free(run);
    rank_qrels_free(qrels);
    return rc;
}
