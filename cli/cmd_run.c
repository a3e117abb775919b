/* cli/cmd_run.c: `causeway run`: every query of a TSV file against an index, written
 * as a TREC run (qid Q0 docid rank score tag) for `causeway eval`. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "index/index.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: causeway run --index DIR --queries FILE.tsv [--k 1000] [--k1 0.9] [--b 0.4]\n"
            "                    [--and] [--tag NAME] [--hybrid [--fusion rrf|weighted]\n"
            "                    [--dense-weight 0.5] [--rrf-k 60] [--depth 100] [--ef 128]]\n"
            "                    > run.trec\n\n"
            "Runs every query (qid<TAB>text per line) and prints the top k by BM25 in TREC\n"
            "run format: qid Q0 docid rank score tag. A malformed line fails with file:line;\n"
            "a query that analyses to no terms (only stopwords) contributes no lines.\n"
            "--hybrid fuses BM25 with dense retrieval (after `causeway embed train` and\n"
            "`embed build` on the index): reciprocal rank fusion by default; --dense-weight\n"
            "(alias --w-dense) weighs the dense run, --rrf-k is the RRF constant.\n\n"
            "Exit codes: 0 success, 1 failure, 2 usage error.\n");
}

/* The query ids seen so far, so a repeated id is refused at its line instead of producing
 * a run that `causeway eval` rejects later for duplicate documents. Open addressing over
 * arena-copied ids; slots hold the id and the line it was first seen on. */
typedef struct qid_set {
    cw_arena *arena;
    const char **id;
    long *line;
    size_t cap, n;
} qid_set;

/* 0 if qid is new (and remembered), else the line it was first seen on; -1 out of memory. */
static long qid_seen(qid_set *s, const char *qid, size_t len, long line)
{
    if (2 * (s->n + 1) > s->cap) {
        size_t ncap = s->cap ? 2 * s->cap : 1024;
        const char **nid = calloc(ncap, sizeof *nid);
        long *nline = calloc(ncap, sizeof *nline);
        if (!nid || !nline) {
            free(nid);
            free(nline);
            return -1;
        }
        for (size_t i = 0; i < s->cap; i++) {
            if (s->id[i]) {
                size_t j = cw_hash64(s->id[i], strlen(s->id[i]), 0) & (ncap - 1);
                while (nid[j]) {
                    j = (j + 1) & (ncap - 1);
                }
                nid[j] = s->id[i];
                nline[j] = s->line[i];
            }
        }
        free(s->id);
        free(s->line);
        s->id = nid;
        s->line = nline;
        s->cap = ncap;
    }
    size_t j = cw_hash64(qid, len, 0) & (s->cap - 1);
    for (; s->id[j]; j = (j + 1) & (s->cap - 1)) {
        if (strlen(s->id[j]) == len && memcmp(s->id[j], qid, len) == 0) {
            return s->line[j];
        }
    }
    if (!(s->id[j] = cw_arena_strndup(s->arena, qid, len))) {
        return -1;
    }
    s->line[j] = line;
    s->n++;
    return 0;
}

int cli_cmd_run(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    const char *dir = NULL, *queries = NULL, *tag = "causeway";
    idx_search_opts so = idx_search_opts_default();
    so.k = 1000;
    bool hybrid = false; // dense retrieval fused with BM25 (issue 6)
    idx_hybrid_opts hy = idx_hybrid_opts_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        uint64_t v;
        int hr = cli_hybrid_opt("run", CLI_HY_ALL, argc, argv, &i, &hy, NULL);
        if (hr != 0) {
            if (hr < 0) {
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--index") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(a, "--queries") == 0 && i + 1 < argc) {
            queries = argv[++i];
        } else if (strcmp(a, "--tag") == 0 && i + 1 < argc) {
            tag = argv[++i];
        } else if (strcmp(a, "--k") == 0 && i + 1 < argc) {
            if (!cli_parse_u64("run", a, argv[++i], 1, IDX_MAX_K, &v)) {
                return CLI_EXIT_USAGE;
            }
            so.k = (uint32_t)v;
        } else if (strcmp(a, "--k1") == 0 && i + 1 < argc) {
            if (!cli_parse_double("run", a, argv[++i], 0, 100, &so.bm25.k1)) {
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--b") == 0 && i + 1 < argc) {
            if (!cli_parse_double("run", a, argv[++i], 0, 1, &so.bm25.b)) {
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--and") == 0) {
            so.conjunctive = true;
        } else if (strcmp(a, "--exhaustive") == 0) {
            so.exhaustive = true;
        } else if (strcmp(a, "--hybrid") == 0) {
            hybrid = true;
        } else {
            return cli_usage_error("run", "unexpected argument '%s'", a);
        }
    }
    if (!dir || !queries) {
        return cli_usage_error("run", "--index DIR and --queries FILE.tsv are required");
    }
    for (const char *p = tag; *p; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\n') {
            return cli_usage_error("run", "--tag must not contain white space");
        }
    }
    cw_err err;
    cw_err_clear(&err);
    idx_index *ix = NULL;
    idx_analyzer *an = NULL;
    idx_dense *dn = NULL;
    idx_hnsw_searcher *hs = NULL;
    cw_lines *lr = NULL;
    idx_hit *hits = calloc(so.k, sizeof *hits);
    qid_set seen = {.arena = cw_arena_new(1 << 16)};
    int code = CLI_EXIT_FAIL;
    if (!hits || !seen.arena) {
        cw_err_set(&err, CW_ENOMEM, "out of memory");
        goto done;
    }
    if (idx_index_open(dir, &ix, &err) != CW_OK || idx_index_analyzer(ix, &an, &err) != CW_OK ||
        cw_lines_open(queries, &lr, &err) != CW_OK) {
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
    const char *line;
    size_t len;
    long no;
    int r;
    while ((r = cw_lines_next(lr, &line, &len, &no, &err)) == 1) {
        if (cw_interrupted()) { /* a long query file must stop on Ctrl-C, not run to the end */
            cw_err_set(&err, CW_EINTR, "interrupted at %s:%ld", queries, no);
            goto done;
        }
        if (len == 0) {
            continue;
        }
        const char *tab = memchr(line, '\t', len);
        if (!tab || tab == line) {
            cw_err_set(&err, CW_EPARSE, "%s:%ld: expected qid<TAB>query text", queries, no);
            goto done;
        }
        size_t qid_len = (size_t)(tab - line);
        for (size_t i = 0; i < qid_len; i++) {
            if (line[i] == ' ') {
                cw_err_set(&err, CW_EPARSE, "%s:%ld: query id contains a space", queries, no);
                goto done;
            }
        }
        long first = qid_seen(&seen, line, qid_len, no);
        if (first != 0) {
            if (first < 0) {
                cw_err_set(&err, CW_ENOMEM, "out of memory");
            } else {
                cw_err_set(&err, CW_EPARSE, "%s:%ld: query id '%.*s' repeated (first at line %ld)",
                           queries, no, (int)qid_len, line, first);
            }
            goto done;
        }
        const char *text = tab + 1;
        size_t text_len = len - qid_len - 1;
        idx_query *q = NULL;
        if (idx_query_parse(ix, an, text, text_len, &q, &err) != CW_OK) {
            cw_err_prefix(&err, "%s:%ld: ", queries, no);
            goto done;
        }
        size_t n = 0;
        int rc = hybrid ? idx_hybrid_search(ix, dn, hs, q, text, text_len, &so, &hy, hits, &n, &err)
                        : idx_search(ix, q, &so, hits, &n, NULL, &err);
        idx_query_free(q);
        if (rc != CW_OK) {
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            idx_doc d;
            if (idx_doc_get(ix, hits[i].doc, &d, &err) != CW_OK) {
                goto done;
            }
            printf("%.*s Q0 %.*s %zu %.6f %s\n", (int)qid_len, line, (int)d.id_len, d.id, i + 1,
                   hits[i].score, tag);
        }
    }
    if (r < 0) {
        goto done;
    }
    if (fflush(stdout) != 0) {
        cw_err_set(&err, CW_EIO, "writing the run: stdout");
        goto done;
    }
    code = CLI_EXIT_OK;
done:
    if (code != CLI_EXIT_OK) {
        cli_fail("run", &err);
    }
    free(hits);
    free(seen.id);
    free(seen.line);
    cw_arena_free(seen.arena);
    cw_lines_close(lr);
    idx_hnsw_searcher_free(hs);
    idx_dense_close(dn);
    idx_analyzer_free(an);
    idx_index_close(ix);
    return code;
}
