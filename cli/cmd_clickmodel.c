/* cli/cmd_clickmodel.c: `causeway clickmodel fit|eval`: PBM, cascade, DBN and UBM fitted
 * by EM on the impression log (causal/clickmodel.c), evaluated by held-out
 * log-likelihood and per-rank perplexity. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "causal/causal.h"
#include "cli/cli.h"

static void usage(FILE *f)
{
    fprintf(
        f, "usage: causeway clickmodel fit  --db LOG.db --model pbm|cascade|dbn|ubm\n"
           "                                [--out MODEL.json] [--max-rank R] [--iter N]\n"
           "       causeway clickmodel eval --db LOG.db [--models all|LIST]\n"
           "                                [--test-share F] [--max-rank R] [--iter N] [--json]\n\n"
           "fit   fits one click model by EM on every session and writes its position\n"
           "      parameters (PBM examination, UBM gamma[rank][distance], DBN gamma) as JSON.\n"
           "eval  fits each model on the first (1 - F) of the sessions (log order) and reports\n"
           "      on the last F (default 0.2): log-likelihood per session (each click\n"
           "      conditioned on the clicks above) and perplexity per rank\n"
           "      2^(-mean log2 P(C_k = c_k)) with unconditional click probabilities; lower\n"
           "      perplexity and higher log-likelihood are better.\n");
    fprintf(f, "\nExit codes: 0 success, 1 failure (the message names the file and line or\n"
               "byte offset at fault), 2 usage error.\n");
}

int cli_cmd_clickmodel(int argc, char **argv)
{
    const char *cmd = "clickmodel";
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (argc < 2 || (strcmp(argv[1], "fit") != 0 && strcmp(argv[1], "eval") != 0)) {
        return cli_usage_error(cmd, "expected the subcommand 'fit' or 'eval'");
    }
    bool is_fit = strcmp(argv[1], "fit") == 0, json = false;
    const char *db = NULL, *out = NULL, *model = NULL, *models = "all";
    uint64_t max_rank = 10, iter = 50;
    double share = 0.2;
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--json") == 0) {
            json = true;
            continue;
        }
        if (i + 1 >= argc) {
            return cli_usage_error(cmd, "unknown option or missing value: %s", o);
        }
        const char *v = argv[++i];
        bool ok = true;
        if (strcmp(o, "--db") == 0) {
            db = v;
        } else if (strcmp(o, "--out") == 0) {
            out = v;
        } else if (strcmp(o, "--model") == 0) {
            model = v;
        } else if (strcmp(o, "--models") == 0) {
            models = v;
        } else if (strcmp(o, "--max-rank") == 0) {
            ok = cli_parse_u64(cmd, o, v, 1, CAUSAL_MAX_RANK, &max_rank);
        } else if (strcmp(o, "--iter") == 0) {
            ok = cli_parse_u64(cmd, o, v, 1, 100000, &iter);
        } else if (strcmp(o, "--test-share") == 0) {
            ok = cli_parse_double(cmd, o, v, 0.01, 0.99, &share);
        } else {
            return cli_usage_error(cmd, "unknown option %s", o);
        }
        if (!ok) {
            return CLI_EXIT_USAGE;
        }
    }
    if (!db) {
        return cli_usage_error(cmd, "--db is required");
    }
    cw_err err = {0};
    bool want[CAUSAL_CM_N] = {false};
    if (is_fit) {
        causal_cm_kind k;
        if (!model) {
            return cli_usage_error(cmd, "fit needs --model");
        }
        if (causal_cm_parse(model, &k, &err) != CW_OK) {
            return cli_usage_error(cmd, "%s", err.msg);
        }
        want[k] = true;
    } else if (strcmp(models, "all") == 0) {
        for (int k = 0; k < CAUSAL_CM_N; k++) {
            want[k] = true;
        }
    } else {
        char *list = strdup(models);
        for (char *t = list ? strtok(list, ",") : NULL; t; t = strtok(NULL, ",")) {
            causal_cm_kind k;
            if (causal_cm_parse(t, &k, &err) != CW_OK) {
                free(list);
                return cli_usage_error(cmd, "%s", err.msg);
            }
            want[k] = true;
        }
        free(list);
    }
    causal_sessions *s = NULL;
    causal_load_stats st;
    if (causal_sessions_load_log(db, (uint32_t)max_rank, &s, &st, &err) != CW_OK) {
        return cli_fail(cmd, &err);
    }
    if (st.n_deep) {
        fprintf(stderr, "warning: %llu items beyond rank %llu ignored\n",
                (unsigned long long)st.n_deep, (unsigned long long)max_rank);
    }
    size_t n = s->n_sessions;
    size_t train_end = is_fit ? n : (size_t)floor((double)n * (1 - share));
    if (!is_fit && (train_end == 0 || train_end == n)) {
        causal_sessions_free(s);
        cw_err_set(&err, CW_EINVAL, "%s: %zu sessions are too few to hold out %.0f%%", db, n,
                   share * 100);
        return cli_fail(cmd, &err);
    }
    int rc = CW_OK;
    cw_buf b = {0};
    if (!is_fit && !json) {
        printf("%-8s %14s %10s  perplexity@1..%llu (held-out: %zu sessions, trained on %zu)\n",
               "model", "LL/session", "perplexity", (unsigned long long)max_rank, n - train_end,
               train_end);
    }
    if (!is_fit && json) {
        rc = cw_buf_printf(&b, "{\"train_sessions\":%zu,\"test_sessions\":%zu,\"models\":[",
                           train_end, n - train_end);
    }
    bool first = true;
    for (int k = 0; k < CAUSAL_CM_N && rc == CW_OK; k++) {
        if (!want[k]) {
            continue;
        }
        causal_cm_opts co = causal_cm_opts_default((causal_cm_kind)k);
        co.max_rank = (uint32_t)max_rank;
        co.max_iter = (uint32_t)iter;
        causal_clickmodel *m = NULL;
        if ((rc = causal_clickmodel_fit(s, 0, train_end, &co, &m, &err)) != CW_OK) {
            break;
        }
        if (is_fit) {
            rc = causal_clickmodel_to_json(m, &b, &err);
        } else {
            causal_cm_eval ev;
            rc = causal_clickmodel_eval(m, s, train_end, n, &ev, &err);
            if (rc == CW_OK && json) {
                rc = cw_buf_printf(&b,
                                   "%s{\"model\":\"%s\",\"ll\":%.6f,\"perplexity\":%.6f,"
                                   "\"perplexity_at\":[",
                                   first ? "" : ",", causal_cm_name((causal_cm_kind)k), ev.ll,
                                   ev.perplexity);
                for (uint32_t r = 0; r < ev.n_ranks && rc == CW_OK; r++) {
                    rc = cw_buf_printf(&b, "%s%.6f", r ? "," : "", ev.perplexity_at[r]);
                }
                rc = rc ? rc : cw_buf_printf(&b, "]}");
            } else if (rc == CW_OK) {
                printf("%-8s %14.5f %10.5f ", causal_cm_name((causal_cm_kind)k), ev.ll,
                       ev.perplexity);
                for (uint32_t r = 0; r < ev.n_ranks; r++) {
                    printf(" %.4f", ev.perplexity_at[r]);
                }
                printf("\n");
            }
        }
        first = false;
        causal_clickmodel_free(m);
    }
    if (rc == CW_OK && !is_fit && json) {
        rc = cw_buf_printf(&b, "]}\n");
    }
    causal_sessions_free(s);
    if (rc == CW_OK && b.len) {
        if (out) {
            rc = cw_file_write_atomic(out, b.data, b.len, &err);
        } else {
            fwrite(b.data, 1, b.len, stdout);
        }
    }
    cw_buf_fini(&b);
    if (rc != CW_OK) {
        if (err.code == CW_OK) {
            cw_err_set(&err, rc, "out of memory");
        }
        return cli_fail(cmd, &err);
    }
    return CLI_EXIT_OK;
}
