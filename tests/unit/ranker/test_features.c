/* Tests of ranker/features.c on a three-document index (tests/data/ranker/features.jsonl)
 * with hand-computed coverage, idf, lengths, proximity and static values. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ranker/ranker.h"

typedef struct fixture {
    char dir[64];
    idx_index *ix;
    idx_analyzer *an;
    rank_features *fx;
    rank_features *fwd; /* the same with a forward store: must agree exactly */
} fixture;

static void setup(fixture *f)
{
    const char *src = getenv("CW_SRCDIR");
    char corpus[4096];
    snprintf(corpus, sizeof corpus, "%s/tests/data/ranker/features.jsonl", src ? src : ".");
    snprintf(f->dir, sizeof f->dir, "/tmp/cw_feat_%d", (int)getpid());
    idx_build_opts bo = idx_build_opts_default();
    cw_err err;
    cr_assert(eq(int, idx_build(corpus, f->dir, &bo, NULL, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(int, idx_index_open(f->dir, &f->ix, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(int, idx_index_analyzer(f->ix, &f->an, &err), CW_OK));
    const char *stat[] = {"rank"};
    cr_assert(eq(int, rank_features_new(f->ix, stat, 1, NULL, 0, &f->fx, &err), CW_OK));
    cr_assert(eq(int, rank_features_new(f->ix, stat, 1, NULL, 1000, &f->fwd, &err), CW_OK), "%s",
              err.msg);
}

static void teardown(fixture *f)
{
    rank_features_free(f->fx);
    rank_features_free(f->fwd);
    idx_analyzer_free(f->an);
    idx_index_close(f->ix);
    cr_assert(eq(int, cw_rmtree(f->dir, NULL), CW_OK));
}

static void extract(fixture *f, const char *query, const char *doc, double *out)
{
    idx_query *q = NULL;
    uint32_t id;
    cw_err err;
    cr_assert(eq(int, idx_query_parse(f->ix, f->an, query, strlen(query), &q, &err), CW_OK));
    cr_assert(eq(int, idx_doc_lookup(f->ix, doc, strlen(doc), &id, &err), CW_OK));
    cr_assert(eq(int, rank_features_extract(f->fx, f->an, q, &id, 1, out, &err), CW_OK), "%s",
              err.msg);
    double bm25[IDX_N_FIELDS];
    idx_bm25_params p = IDX_BM25_DEFAULT;
    cr_assert(eq(int, idx_score_fields(f->ix, q, id, &p, bm25, NULL), CW_OK));
    for (int i = 0; i < IDX_N_FIELDS; i++) {
        cr_expect(eq(dbl, out[i], bm25[i]), "bm25 field %d", i);
    }
    double fwd[RANK_TEXT_FEATURES + 1];
    cr_assert(eq(int, rank_features_extract(f->fwd, f->an, q, &id, 1, fwd, &err), CW_OK));
    for (size_t i = 0; i < RANK_TEXT_FEATURES + 1; i++) {
        cr_expect(eq(dbl, fwd[i], out[i]), "forward store feature %zu, query %s, doc %s", i, query,
                  doc);
    }
    idx_query_free(q);
}

Test(rank_features, names_are_versioned_and_ordered)
{
    fixture f;
    setup(&f);
    cr_expect(eq(sz, rank_features_n(f.fx), RANK_TEXT_FEATURES + 1));
    cr_expect(eq(str, (char *)rank_features_name(f.fx, 0), "bm25_title"));
    cr_expect(eq(str, (char *)rank_features_name(f.fx, 10), "proximity"));
    cr_expect(eq(str, (char *)rank_features_name(f.fx, 11), "static:rank"));
    cr_expect(eq(str, RANK_FEATURE_SET, "cw-text-v1"));
    teardown(&f);
}

Test(rank_features, hand_computed_values)
{
    fixture f;
    setup(&f);
    double v[RANK_TEXT_FEATURES + 1];
    /* N = 3 documents, df(river) = df(bank) = 2: idf = log(1 + 1.5/2.5) = log 1.6. */
    const double idf = log(1.6);
    extract(&f, "river bank", "a", v);
    cr_expect(epsilon_eq(dbl, v[3], 1.0, 1e-12)); /* both terms present */
    cr_expect(epsilon_eq(dbl, v[4], 2 * idf, 1e-12));
    cr_expect(epsilon_eq(dbl, v[5], idf, 1e-12));
    cr_expect(epsilon_eq(dbl, v[6], idf, 1e-12));
    cr_expect(eq(dbl, v[7], 2.0));
    cr_expect(epsilon_eq(dbl, v[8], log(3.0), 1e-12)); /* title: river bank */
    cr_expect(epsilon_eq(dbl, v[9], log(6.0), 1e-12)); /* bank river green river flow */
    cr_expect(epsilon_eq(dbl, v[10], 1.0, 1e-12));     /* "river bank" adjacent in title */
    cr_expect(eq(dbl, v[11], 3.5));                    /* stored "3.5" */
    extract(&f, "river bank", "b", v);
    /* bank(0) loan(1) river(2) ...: the window bank..river has 3 tokens */
    cr_expect(epsilon_eq(dbl, v[10], 2.0 / 3.0, 1e-12));
    cr_expect(eq(dbl, v[8], 0.0));
    cr_expect(eq(dbl, v[11], 0.0)); /* "x" is not a number */
    extract(&f, "river bank", "c", v);
    cr_expect(eq(dbl, v[3], 0.0));
    cr_expect(eq(dbl, v[4], 0.0));
    cr_expect(eq(dbl, v[10], 0.0));
    extract(&f, "cherry river", "c", v);
    cr_expect(epsilon_eq(dbl, v[3], 0.5, 1e-12));
    cr_expect(eq(dbl, v[10], 0.0)); /* one matched term: no span */
    teardown(&f);
}

Test(rank_features, a_forward_store_over_budget_falls_back_to_analysis)
{
    fixture f;
    setup(&f);
    /* 4 tokens: doc a (river bank | gap | 5 text tokens) does not fit, so no doc is stored
     * and every extraction analyses text; values must not change. */
    rank_features *small = NULL;
    const char *stat[] = {"rank"};
    cr_assert(eq(int, rank_features_new(f.ix, stat, 1, NULL, 4, &small, NULL), CW_OK));
    rank_features_free(f.fwd);
    f.fwd = small;
    double v[RANK_TEXT_FEATURES + 1];
    extract(&f, "river bank", "a", v);
    extract(&f, "river bank", "b", v);
    cr_expect(epsilon_eq(dbl, v[10], 2.0 / 3.0, 1e-12));
    teardown(&f);
}

Test(rank_features, unknown_docid_is_enotfound_and_bad_static_names_einval)
{
    fixture f;
    setup(&f);
    idx_query *q = NULL;
    cr_assert(eq(int, idx_query_parse(f.ix, f.an, "river", 5, &q, NULL), CW_OK));
    uint32_t id = 99;
    double v[RANK_TEXT_FEATURES + 1];
    cw_err err;
    cr_expect(eq(int, rank_features_extract(f.fx, f.an, q, &id, 1, v, &err), CW_ENOTFOUND));
    idx_query_free(q);
    const char *bad[] = {""};
    rank_features *fx = NULL;
    cr_expect(eq(int, rank_features_new(f.ix, bad, 1, NULL, 0, &fx, &err), CW_EINVAL));
    cr_expect(eq(str, err.msg, "static field 0: name empty or over 56 bytes"));
    teardown(&f);
}

/* Forward-store BM25 (per-field tf from stored token hashes, per-field df counted at
 * construction) and per-call BM25 (per-field tf counted while analysing the stored text,
 * the index's per-field df) against index/'s idx_score_fields on every one of the top 100
 * candidates of 60 Cranfield queries (1400 documents, long queries with repeated terms). */
Test(rank_features, forward_store_bm25_equals_the_posting_lists_on_cranfield)
{
    /* A hang fails by SIGALRM: Criterion's own .timeout leaks in its runner (LSan). */
    alarm(300);
    const char *data = getenv("CW_SHARED_DATA");
    char corpus[4096], queries[4096], dir[64];
    snprintf(corpus, sizeof corpus, "%s/cranfield/corpus.jsonl", data ? data : "");
    snprintf(queries, sizeof queries, "%s/cranfield/queries.tsv", data ? data : "");
    if (!data || access(corpus, R_OK) != 0 || access(queries, R_OK) != 0) {
        cr_skip_test("missing cranfield/corpus.jsonl or queries.tsv");
    }
    snprintf(dir, sizeof dir, "/tmp/cw_featcran_%d", (int)getpid());
    idx_build_opts bo = idx_build_opts_default();
    cw_err err;
    idx_index *ix = NULL;
    idx_analyzer *an = NULL;
    rank_features *plain = NULL, *fwd = NULL;
    cr_assert(eq(int, idx_build(corpus, dir, &bo, NULL, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(int, idx_index_open(dir, &ix, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(int, idx_index_analyzer(ix, &an, &err), CW_OK));
    cr_assert(eq(int, rank_features_new(ix, NULL, 0, NULL, 0, &plain, &err), CW_OK));
    cr_assert(eq(int, rank_features_new(ix, NULL, 0, NULL, (size_t)1 << 24, &fwd, &err), CW_OK));
    FILE *f = fopen(queries, "r");
    cr_assert(f != NULL);
    char line[4096];
    size_t n_q = 0, n_cmp = 0, n_repeated = 0;
    enum { NF = RANK_TEXT_FEATURES };
    static double a[100 * NF], b[100 * NF];
    while (n_q < 60 && fgets(line, sizeof line, f)) {
        char *text = strchr(line, '\t');
        cr_assert(text != NULL);
        text++;
        text[strcspn(text, "\n")] = '\0';
        idx_query *q = NULL;
        cr_assert(eq(int, idx_query_parse(ix, an, text, strlen(text), &q, &err), CW_OK));
        idx_search_opts so = idx_search_opts_default();
        so.k = 100;
        idx_hit hits[100];
        size_t n_hits = 0;
        cr_assert(eq(int, idx_search(ix, q, &so, hits, &n_hits, NULL, &err), CW_OK));
        uint32_t ids[100];
        for (size_t i = 0; i < n_hits; i++) {
            ids[i] = hits[i].doc;
        }
        cr_assert(eq(int, rank_features_extract(plain, an, q, ids, n_hits, a, &err), CW_OK));
        cr_assert(eq(int, rank_features_extract(fwd, an, q, ids, n_hits, b, &err), CW_OK));
        for (size_t i = 0; i < n_hits; i++) {
            double bm25[IDX_N_FIELDS];
            cr_assert(eq(int, idx_score_fields(ix, q, ids[i], NULL, bm25, &err), CW_OK));
            for (int k = 0; k < IDX_N_FIELDS; k++) {
                cr_expect(eq(dbl, a[i * NF + k], bm25[k]));
                /* the same arithmetic in the same order: equal to the last bit */
                cr_expect(eq(dbl, b[i * NF + k], bm25[k]), "query %zu doc %u field %d", n_q, ids[i],
                          k);
            }
            for (size_t k = IDX_N_FIELDS; k < NF; k++) {
                cr_expect(eq(dbl, b[i * NF + k], a[i * NF + k]), "feature %zu", k);
            }
            n_cmp++;
        }
        n_repeated += n_hits > 0 && idx_query_n_terms(q) > (size_t)a[7];
        idx_query_free(q);
        n_q++;
    }
    fclose(f);
    cr_expect(gt(sz, n_cmp, 5000));
    cr_expect(gt(sz, n_repeated, 0), "no query repeats a term: the count weight is untested");
    rank_features_free(plain);
    rank_features_free(fwd);
    idx_analyzer_free(an);
    idx_index_close(ix);
    cr_assert(eq(int, cw_rmtree(dir, NULL), CW_OK));
}

/* A query of more distinct terms than one byte indexes (300 + river, bank): coverage
 * and counts are exact on both paths (the query term table had 256 one-byte slots and
 * never finished filling). */
Test(rank_features, queries_of_hundreds_of_distinct_terms)
{
    /* A hang fails by SIGALRM: Criterion's own .timeout leaks in its runner (LSan). */
    alarm(20);
    fixture f;
    setup(&f);
    const char *cons = "bcdfghjklmnpqrtvwxz";
    char query[4096];
    size_t len = 0;
    for (int i = 0; i < 300; i++) {
        len +=
            (size_t)snprintf(query + len, sizeof query - len, "q%c%c ", cons[i / 19], cons[i % 19]);
    }
    snprintf(query + len, sizeof query - len, "river bank");
    double v[RANK_TEXT_FEATURES + 1];
    extract(&f, query, "a", v);
    cr_expect(eq(dbl, v[7], 302.0));
    cr_expect(epsilon_eq(dbl, v[3], 2.0 / 302.0, 1e-12));
    teardown(&f);
}
