/* cli/cmd_propensity.c: `causeway propensity fit`, examination propensities from the
 * impression log (causal/propensity.c, METHODS.md section 4) written as JSON for
 * `causeway train` and `causeway ope`. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "causal/causal.h"
#include "cli/cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: causeway propensity fit --db LOG.db --method M [--out propensity.json]\n"
            "                               [--max-rank R] [--bootstrap B] [--seed S]\n"
            "                               [--rel-model linear|quad|mlp|pair] [--max-iter N]\n"
            "                               [--rel-context none|score|query]\n"
            "                               [--context ranker|query-length]\n\n"
            "Estimates the examination probability theta_k of each rank, reported as\n"
            "theta_k/theta_1 with a bootstrap percentile interval and fit diagnostics.\n\n"
            "  --method M       randomization  RandTop-n (c_k/c_1) or swap logs (CTR of the\n"
            "                                  ranker's top document at rank k vs rank 1)\n"
            "                   rem            regression-EM (Wang et al. WSDM 2018) on\n"
            "                                  ordinary logs; needs logged features unless\n"
            "                                  --rel-model pair\n"
            "                   harvest        intervention harvesting, AllPairs (Agarwal et\n"
            "                                  al. WSDM 2019): logs of 2+ rankers\n"
            "                   trust          affine trust bias alpha_k, beta_k (Vardasbi et\n"
            "                                  al. CIKM 2020) from randomized/multi-ranker logs\n"
            "  --max-rank R     ranks estimated (default 10); deeper items are ignored\n"
            "  --bootstrap B    replicates (default 200 for randomization, 20 otherwise)\n"
            "  --rel-model      regression-EM relevance model (default linear; quad adds\n"
            "                   pairwise feature products, at most 32 features; pair = one\n"
            "                   free relevance per (query, doc): the PBM maximum likelihood,\n"
            "                   for logs where pairs appear at 2+ ranks: RandTop, swap or\n"
            "                   several rankers)\n"
            "  --rel-context    regression-EM: extra relevance features from the logged\n"
            "                   ranker scores: score (the pair's score), query (score, the\n"
            "                   query's max and mean score, gap to the max); default none\n"
            "                   (docs/benchmarks.md, issue 4: none of them wins everywhere)\n"
            "  --context C      one theta vector per context (any method), each with its\n"
            "                   own intervals: ranker (the logged model version) or\n"
            "                   query-length (words of the logged query: 1, 2, 3, 4+; the\n"
            "                   query text is what the log holds when it has no qid).\n"
            "                   Output {\"contexts\":[{\"context\":NAME,\"sessions\":N,\n"
            "                   \"propensity\":{...}}]}\n"
            "  --out FILE       JSON output (default stdout)\n"
            "A method that cannot identify propensities from the given log refuses with\n"
            "the reason (exit 1) instead of printing numbers.\n");
}

/* s as a JSON string (quotes, backslashes and control bytes escaped). */
static int json_str(cw_buf *b, const char *s)
{
    int rc = cw_buf_append(b, "\"", 1);
    for (; *s && rc == CW_OK; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            rc = cw_buf_printf(b, "\\%c", c);
        } else if (c < 0x20) {
            rc = cw_buf_printf(b, "\\u%04x", c);
        } else {
            rc = cw_buf_append(b, s, 1);
        }
    }
    return rc ? rc : cw_buf_append(b, "\"", 1);
}

/* Words of a query (runs of non-space bytes). */
static uint32_t n_words(const char *q)
{
    uint32_t n = 0;
    for (bool in = false; *q; q++) {
        bool sp = *q == ' ' || *q == '\t' || *q == '\n';
        n += !sp && !in;
        in = !sp;
    }
    return n;
}

/* --context: one fit per context; takes ownership of s. */
static int fit_contexts(causal_sessions *s, const causal_prop_opts *po, const char *context,
                        const char *out)
{
    const char *cmd = "propensity";
    static const char *len_names[4] = {"1 word", "2 words", "3 words", "4+ words"};
    bool by_ranker = strcmp(context, "ranker") == 0;
    uint32_t n_ctx = by_ranker ? (uint32_t)s->n_rankers : 4;
    cw_err err = {0};
    uint32_t *ctx = malloc((s->n_sessions ? s->n_sessions : 1) * sizeof *ctx);
    causal_propensity *p = calloc(n_ctx ? n_ctx : 1, sizeof *p);
    uint64_t *n_in = calloc(n_ctx ? n_ctx : 1, sizeof *n_in);
    cw_buf b = {0};
    int rc = CW_OK;
    if (!ctx || !p || !n_in) {
        rc = cw_err_set(&err, CW_ENOMEM, "out of memory for %u contexts", n_ctx);
        goto done;
    }
    if (n_ctx > CAUSAL_MAX_CONTEXTS) {
        rc = cw_err_set(&err, CW_ELIMIT, "%u rankers in the log: at most %u contexts", n_ctx,
                        CAUSAL_MAX_CONTEXTS);
        goto done;
    }
    for (size_t i = 0; i < s->n_sessions; i++) {
        uint32_t w = n_words(s->query_names[s->s_query[i]]);
        ctx[i] = by_ranker ? s->s_ranker[i] : (w >= 4 ? 3 : (w ? w - 1 : 0));
        n_in[ctx[i]]++;
    }
    if ((rc = causal_propensity_fit_contexts(s, po, ctx, n_ctx, p, &err)) != CW_OK) {
        goto done;
    }
    rc = cw_buf_printf(&b, "{\"context_kind\":\"%s\",\"contexts\":[", context);
    bool first = true;
    for (uint32_t k = 0; k < n_ctx && rc == CW_OK; k++) {
        if (n_in[k] == 0) {
            continue;
        }
        const char *name = by_ranker ? s->ranker_names[k] : len_names[k];
        rc = cw_buf_printf(&b, "%s{\"context\":", first ? "" : ",");
        rc = rc ? rc : json_str(&b, name);
        rc = rc ? rc
                : cw_buf_printf(&b,
                                ",\"sessions\":%llu,\"propensity\":", (unsigned long long)n_in[k]);
        rc = rc ? rc : causal_propensity_to_json(&p[k], &b, &err);
        rc = rc ? rc : cw_buf_printf(&b, "}");
        first = false;
        fprintf(stderr, "%s %s (%llu sessions): theta_k/theta_1 =", context, name,
                (unsigned long long)n_in[k]);
        for (uint32_t r = 0; r < p[k].n_ranks; r++) {
            fprintf(stderr, " %.3f", p[k].ratio[r]);
        }
        fprintf(stderr, "%s%s\n", p[k].n_sessions ? "" : " -- ", p[k].n_sessions ? "" : p[k].note);
    }
    rc = rc ? rc : cw_buf_printf(&b, "]}\n");
    if (rc != CW_OK) {
        if (!err.msg[0]) {
            cw_err_set(&err, rc, "out of memory writing JSON");
        }
        goto done;
    }
    if (out) {
        rc = cw_file_write_atomic(out, b.data, b.len, &err);
    } else {
        fwrite(b.data, 1, b.len, stdout);
    }
done:
    cw_buf_fini(&b);
    free(ctx);
    free(p);
    free(n_in);
    causal_sessions_free(s);
    return rc == CW_OK ? CLI_EXIT_OK : cli_fail(cmd, &err);
}

int cli_cmd_propensity(int argc, char **argv)
{
    const char *cmd = "propensity";
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (argc < 2 || strcmp(argv[1], "fit") != 0) {
        return cli_usage_error(cmd, "expected the subcommand 'fit'");
    }
    const char *db = NULL, *out = NULL, *method = NULL, *rel = "linear", *ctx = "none";
    const char *context = NULL;
    uint64_t max_rank = 10, boot = UINT64_MAX, seed = 1, max_iter = 0;
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        if (i + 1 >= argc) {
            return cli_usage_error(cmd, "unknown option or missing value: %s", o);
        }
        const char *v = argv[++i];
        bool ok = true;
        if (strcmp(o, "--db") == 0) {
            db = v;
        } else if (strcmp(o, "--out") == 0) {
            out = v;
        } else if (strcmp(o, "--method") == 0) {
            method = v;
        } else if (strcmp(o, "--rel-model") == 0) {
            rel = v;
        } else if (strcmp(o, "--rel-context") == 0) {
            ctx = v;
        } else if (strcmp(o, "--context") == 0) {
            if (strcmp(v, "ranker") != 0 && strcmp(v, "query-length") != 0) {
                return cli_usage_error(cmd, "--context must be ranker or query-length, not '%s'",
                                       v);
            }
            context = v;
        } else if (strcmp(o, "--max-rank") == 0) {
            ok = cli_parse_u64(cmd, o, v, 2, CAUSAL_MAX_RANK, &max_rank);
        } else if (strcmp(o, "--bootstrap") == 0) {
            ok = cli_parse_u64(cmd, o, v, 0, 100000, &boot);
        } else if (strcmp(o, "--seed") == 0) {
            ok = cli_parse_u64(cmd, o, v, 0, UINT64_MAX, &seed);
        } else if (strcmp(o, "--max-iter") == 0) {
            ok = cli_parse_u64(cmd, o, v, 1, 1000000, &max_iter);
        } else {
            return cli_usage_error(cmd, "unknown option %s", o);
        }
        if (!ok) {
            return CLI_EXIT_USAGE;
        }
    }
    if (!db || !method) {
        return cli_usage_error(cmd, "--db and --method are required");
    }
    cw_err err = {0};
    causal_prop_method m;
    causal_rel_model rm;
    uint32_t rc_ctx;
    if (causal_prop_method_parse(method, &m, &err) != CW_OK ||
        causal_rel_model_parse(rel, &rm, &err) != CW_OK ||
        causal_rel_context_parse(ctx, &rc_ctx, &err) != CW_OK) {
        return cli_usage_error(cmd, "%s", err.msg);
    }
    causal_prop_opts po = causal_prop_opts_default(m);
    po.max_rank = (uint32_t)max_rank;
    po.seed = seed;
    po.rel_model = rm;
    po.rel_context = rc_ctx;
    if (boot != UINT64_MAX) {
        po.n_boot = (uint32_t)boot;
    }
    if (max_iter) {
        po.max_iter = (uint32_t)max_iter;
    }
    po.progress = cli_progress;
    causal_sessions *s = NULL;
    causal_load_stats st;
    int rc = causal_sessions_load_log(db, (uint32_t)max_rank, &s, &st, &err);
    if (rc != CW_OK) {
        return cli_fail(cmd, &err);
    }
    fprintf(stderr, "read %llu impressions, %llu items, %llu clicks from %s\n",
            (unsigned long long)st.n_impressions, (unsigned long long)st.n_items,
            (unsigned long long)st.n_clicks, db);
    if (st.n_deep) {
        fprintf(stderr, "warning: %llu items beyond rank %llu ignored\n",
                (unsigned long long)st.n_deep, (unsigned long long)max_rank);
    }
    if (st.n_no_prop) {
        fprintf(stderr,
                "warning: %llu items have no logged propensity (not needed by these methods, "
                "but IPS training and OPE will refuse them)\n",
                (unsigned long long)st.n_no_prop);
    }
    if (st.n_pairs_no_features) {
        fprintf(stderr,
                "warning: %llu (query, document) pairs never logged a feature vector of the "
                "log's width (regression-EM sees zeros for them)\n",
                (unsigned long long)st.n_pairs_no_features);
    }
    if (st.n_multi_click) {
        fprintf(stderr, "warning: %llu items had more than one click event (counted once)\n",
                (unsigned long long)st.n_multi_click);
    }
    if (st.n_empty) {
        fprintf(stderr, "warning: %llu impressions had no items within rank %llu (skipped)\n",
                (unsigned long long)st.n_empty, (unsigned long long)max_rank);
    }
    if (context) {
        return fit_contexts(s, &po, context, out);
    }
    causal_propensity p;
    rc = causal_propensity_fit(s, &po, &p, &err);
    causal_sessions_free(s);
    if (rc != CW_OK) {
        return cli_fail(cmd, &err);
    }
    cw_buf b = {0};
    if (causal_propensity_to_json(&p, &b, &err) != CW_OK) {
        cw_buf_fini(&b);
        return cli_fail(cmd, &err);
    }
    if (out) {
        rc = cw_file_write_atomic(out, b.data, b.len, &err);
    } else {
        fwrite(b.data, 1, b.len, stdout);
    }
    cw_buf_fini(&b);
    if (rc != CW_OK) {
        return cli_fail(cmd, &err);
    }
    fprintf(stderr, "%s: theta_k/theta_1 =", causal_prop_method_name(p.method));
    for (uint32_t k = 0; k < p.n_ranks; k++) {
        fprintf(stderr, " %.3f", p.ratio[k]);
    }
    fprintf(stderr, " (%.2f s)\n", p.seconds);
    return CLI_EXIT_OK;
}
