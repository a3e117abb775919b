/* cli/cmd_search.c: `causeway search`: one query against an index from the command
 * line, printing id, BM25 (or --hybrid fused) score, title and a snippet per hit (or JSON). */
#include "config.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "index/index.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: causeway search --index DIR [--k 10] [--offset N] [--and] [--json]\n"
               "                       [--k1 0.9] [--b 0.4] [--exhaustive]\n"
               "                       [--hybrid [--fusion rrf|weighted] [--dense-weight 0.5]\n"
               "                        [--rrf-k 60] [--depth 100] [--ef 128]] QUERY...\n\n"
               "Ranks documents by BM25 over title + text (OR of the query terms by default,\n"
               "--and for all of them) and prints rank, id, score, title and a snippet.\n"
               "--exhaustive scores every matching document instead of block-max WAND\n"
               "(same results, slower; for checking).\n"
               "--hybrid fuses the BM25 top-depth with the dense top-depth (needs dense.enc\n"
               "and dense.hnsw from `causeway embed train/build`) by reciprocal rank fusion\n"
               "(default) or a weighted sum of min-max scores; the score column is then the\n"
               "fused score; --dense-weight (alias --w-dense) weighs the dense run, --rrf-k\n"
               "is the RRF constant.\n\n"
               "Exit codes: 0 success (also for no hits), 1 failure, 2 usage error.\n");
}

int cli_cmd_search(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    const char *dir = NULL;
    idx_search_opts so = idx_search_opts_default();
    bool json = false;
    bool hybrid = false;
    idx_hybrid_opts hy = idx_hybrid_opts_default();
    cw_buf qtext = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        uint64_t v;
        int hr = cli_hybrid_opt("search", CLI_HY_ALL, argc, argv, &i, &hy, NULL);
        if (hr != 0) {
            if (hr < 0) {
                cw_buf_fini(&qtext);
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--index") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(a, "--k") == 0 && i + 1 < argc) {
            if (!cli_parse_u64("search", a, argv[++i], 1, IDX_MAX_K, &v)) {
                cw_buf_fini(&qtext);
                return CLI_EXIT_USAGE;
            }
            so.k = (uint32_t)v;
        } else if (strcmp(a, "--offset") == 0 && i + 1 < argc) {
            if (!cli_parse_u64("search", a, argv[++i], 0, IDX_MAX_K - 1, &v)) {
                cw_buf_fini(&qtext);
                return CLI_EXIT_USAGE;
            }
            so.offset = (uint32_t)v;
        } else if (strcmp(a, "--k1") == 0 && i + 1 < argc) {
            if (!cli_parse_double("search", a, argv[++i], 0, 100, &so.bm25.k1)) {
                cw_buf_fini(&qtext);
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--b") == 0 && i + 1 < argc) {
            if (!cli_parse_double("search", a, argv[++i], 0, 1, &so.bm25.b)) {
                cw_buf_fini(&qtext);
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--hybrid") == 0) {
            hybrid = true;
        } else if (strcmp(a, "--and") == 0) {
            so.conjunctive = true;
        } else if (strcmp(a, "--exhaustive") == 0) {
            so.exhaustive = true;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (a[0] == '-' && a[1] == '-' && a[2] != '\0') {
            cw_buf_fini(&qtext);
            return cli_usage_error("search", "unknown option '%s'", a);
        } else {
            if ((qtext.len && cw_buf_append(&qtext, " ", 1)) ||
                cw_buf_append(&qtext, a, strlen(a))) {
                cw_buf_fini(&qtext);
                return CLI_EXIT_FAIL;
            }
        }
    }
    if (!dir) {
        cw_buf_fini(&qtext);
        return cli_usage_error("search", "--index DIR is required");
    }
    if (so.offset + so.k > IDX_MAX_K) {
        cw_buf_fini(&qtext);
        return cli_usage_error("search", "--offset + --k must be <= %u", IDX_MAX_K);
    }
    cw_err err;
    cw_err_clear(&err);
    idx_index *ix = NULL;
    idx_analyzer *an = NULL;
    idx_query *q = NULL;
    idx_dense *dn = NULL;
    idx_hnsw_searcher *hs = NULL;
    idx_hit *hits = NULL;
    cw_buf snip = {0};
    int code = CLI_EXIT_FAIL;
    if (idx_index_open(dir, &ix, &err) != CW_OK || idx_index_analyzer(ix, &an, &err) != CW_OK) {
        goto done;
    }
    if (hybrid) {
        if (idx_dense_open(dir, &dn, &err) != CW_OK) {
            goto done;
        }
        if (!(hs = idx_hnsw_searcher_new(idx_dense_hnsw(dn)))) {
            cw_err_set(&err, CW_ENOMEM, "out of memory");
            goto done;
        }
    }
    if (idx_query_parse(ix, an, qtext.data ? qtext.data : "", qtext.len, &q, &err) != CW_OK) {
        if (err.code == CW_EINVAL) {
            code = cli_usage_error("search", "%s", err.msg);
            err.msg[0] = '\0';
        }
        goto done;
    }
    hits = calloc(so.k, sizeof *hits);
    size_t n = 0;
    uint64_t total = 0;
    if (!hits) {
        cw_err_set(&err, CW_ENOMEM, "out of memory");
        goto done;
    }
    uint64_t t0 = cw_now_ns();
    int src = hybrid ? idx_hybrid_search(ix, dn, hs, q, qtext.data ? qtext.data : "", qtext.len,
                                         &so, &hy, hits, &n, &err)
                     : idx_search(ix, q, &so, hits, &n, &total, &err);
    if (src != CW_OK) {
        goto done;
    }
    double ms = (double)(cw_now_ns() - t0) / 1e6;
    json_t *arr = json ? json_array() : NULL;
    for (size_t i = 0; i < n; i++) {
        idx_doc d;
        snip.len = 0;
        if (idx_doc_get(ix, hits[i].doc, &d, &err) != CW_OK ||
            idx_snippet(ix, an, q, hits[i].doc, 200, &snip, &err) != CW_OK) {
            json_decref(arr);
            goto done;
        }
        if (json) {
            json_t *o = json_object();
            json_object_set_new(o, "rank", json_integer((json_int_t)(so.offset + i + 1)));
            json_object_set_new(o, "id", json_stringn(d.id, d.id_len));
            json_object_set_new(o, "score", json_real(hits[i].score));
            json_object_set_new(o, "title", json_stringn(d.title, d.title_len));
            json_object_set_new(o, "snippet", json_stringn(snip.data ? snip.data : "", snip.len));
            json_array_append_new(arr, o);
        } else {
            printf("%zu\t%.*s\t%.6f\t%.*s\n", so.offset + i + 1, (int)d.id_len, d.id, hits[i].score,
                   (int)d.title_len, d.title);
            printf("\t%s\n", snip.data ? snip.data : "");
        }
    }
    if (json) {
        json_t *root = json_object();
        json_object_set_new(root, "query", json_stringn(qtext.data, qtext.len));
        json_object_set_new(root, "hits", arr);
        json_object_set_new(root, "took_ms", json_real(ms));
        char *s = json_dumps(root, JSON_INDENT(2));
        if (s) {
            printf("%s\n", s);
            free(s);
        }
        json_decref(root);
    } else if (n == 0) {
        fprintf(stderr, "no results\n");
    }
    code = CLI_EXIT_OK;
done:
    if (code == CLI_EXIT_FAIL) {
        cli_fail("search", &err);
    }
    free(hits);
    cw_buf_fini(&snip);
    cw_buf_fini(&qtext);
    idx_query_free(q);
    idx_hnsw_searcher_free(hs);
    idx_dense_close(dn);
    idx_analyzer_free(an);
    idx_index_close(ix);
    return code;
}
