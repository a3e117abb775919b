/* bench/bench_search.c: single-threaded query latency of a causeway index (analysis +
 * top-k BM25 per query), for bench/index_bench.sh; the Xapian side is bench/xapian_bench.cc.
 * Not part of make check: build with `make bench/bench_search`. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cw.h"
#include "index/index.h"

typedef struct bench_query {
    char *text;
    size_t len;
} bench_query;

static void usage(void)
{
    fprintf(stderr, "usage: bench_search --index DIR --queries FILE.tsv [--k N] [--passes N]\n"
                    "                    [--exhaustive] [--and]\n"
                    "Runs every query once as warm-up, then --passes times (default 3) measured;\n"
                    "prints one line: queries k p50_us p99_us mean_us qps mean_hits.\n");
}

static int read_queries(const char *path, bench_query **out, size_t *n_out, cw_err *err)
{
    cw_lines *lr = NULL;
    int rc = cw_lines_open(path, &lr, err);
    if (rc != CW_OK) {
        return rc;
    }
    bench_query *qs = NULL;
    size_t n = 0, cap = 0;
    const char *line;
    size_t len;
    long no;
    int r;
    while ((r = cw_lines_next(lr, &line, &len, &no, err)) == 1) {
        const char *tab = memchr(line, '\t', len);
        if (!tab) {
            cw_lines_close(lr);
            free(qs);
            return cw_err_set(err, CW_EPARSE, "%s:%ld: expected qid<TAB>text", path, no);
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            bench_query *p = realloc(qs, sizeof *qs * cap);
            if (!p) {
                cw_lines_close(lr);
                free(qs);
                return cw_err_set(err, CW_ENOMEM, "out of memory");
            }
            qs = p;
        }
        size_t tl = len - (size_t)(tab + 1 - line);
        qs[n].text = malloc(tl + 1);
        if (!qs[n].text) {
            cw_lines_close(lr);
            free(qs);
            return cw_err_set(err, CW_ENOMEM, "out of memory");
        }
        memcpy(qs[n].text, tab + 1, tl);
        qs[n].text[tl] = '\0';
        qs[n].len = tl;
        n++;
    }
    cw_lines_close(lr);
    if (r < 0) {
        free(qs);
        return r;
    }
    *out = qs;
    *n_out = n;
    return CW_OK;
}

/* One query end to end: analysis, then top-k. Returns hits or < 0. */
static int run_one(const idx_index *ix, idx_analyzer *a, const bench_query *q,
                   const idx_search_opts *so, idx_hit *hits, cw_err *err)
{
    idx_query *pq = NULL;
    int rc = idx_query_parse(ix, a, q->text, q->len, &pq, err);
    if (rc != CW_OK) {
        return rc;
    }
    size_t n = 0;
    rc = idx_search(ix, pq, so, hits, &n, NULL, err);
    idx_query_free(pq);
    return rc != CW_OK ? rc : (int)n;
}

int main(int argc, char **argv)
{
    const char *index_dir = NULL, *queries_path = NULL;
    idx_search_opts so = idx_search_opts_default();
    so.k = 10;
    unsigned passes = 3;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--index") == 0 && v) {
            index_dir = argv[++i];
        } else if (strcmp(argv[i], "--queries") == 0 && v) {
            queries_path = argv[++i];
        } else if (strcmp(argv[i], "--k") == 0 && v) {
            so.k = (uint32_t)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--passes") == 0 && v) {
            passes = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--exhaustive") == 0) {
            so.exhaustive = true;
        } else if (strcmp(argv[i], "--and") == 0) {
            so.conjunctive = true;
        } else {
            usage();
            return 2;
        }
    }
    if (!index_dir || !queries_path || so.k < 1 || so.k > IDX_MAX_K || passes < 1) {
        usage();
        return 2;
    }
    cw_err err = {0};
    idx_index *ix = NULL;
    idx_analyzer *a = NULL;
    bench_query *qs = NULL;
    size_t nq = 0;
    if (idx_index_open(index_dir, &ix, &err) != CW_OK ||
        idx_index_analyzer(ix, &a, &err) != CW_OK ||
        read_queries(queries_path, &qs, &nq, &err) != CW_OK) {
        fprintf(stderr, "bench_search: %s\n", err.msg);
        return 1;
    }
    idx_hit *hits = malloc(sizeof(idx_hit) * so.k);
    double *lat_us = malloc(sizeof(double) * nq * passes);
    if (!hits || !lat_us || nq == 0) {
        fprintf(stderr, "bench_search: out of memory or no queries\n");
        return 1;
    }
    uint64_t total_hits = 0;
    for (size_t i = 0; i < nq; i++) { /* warm-up: page in the index */
        if (run_one(ix, a, &qs[i], &so, hits, &err) < 0) {
            fprintf(stderr, "bench_search: query %zu: %s\n", i + 1, err.msg);
        }
    }
    uint64_t t_all = cw_now_ns();
    size_t m = 0;
    for (unsigned p = 0; p < passes; p++) {
        for (size_t i = 0; i < nq; i++) {
            uint64_t t0 = cw_now_ns();
            int n = run_one(ix, a, &qs[i], &so, hits, &err);
            uint64_t t1 = cw_now_ns();
            total_hits += n > 0 ? (uint64_t)n : 0;
            lat_us[m++] = (double)(t1 - t0) / 1e3;
        }
    }
    double secs = (double)(cw_now_ns() - t_all) / 1e9;
    double sum = 0;
    for (size_t i = 0; i < m; i++) {
        sum += lat_us[i];
    }
    printf("queries %zu k %u p50_us %.1f p99_us %.1f mean_us %.1f qps %.1f mean_hits %.1f\n", nq,
           so.k, cw_quantile(lat_us, m, 0.5), cw_quantile(lat_us, m, 0.99), sum / (double)m,
           (double)m / secs, (double)total_hits / (double)m);
    for (size_t i = 0; i < nq; i++) {
        free(qs[i].text);
    }
    free(qs);
    free(hits);
    free(lat_us);
    idx_analyzer_free(a);
    idx_index_close(ix);
    return 0;
}
