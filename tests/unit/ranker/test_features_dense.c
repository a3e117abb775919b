/* Tests of the dense_cos feature of ranker/features.c (issue 6): on the three-document
 * index of tests/data/ranker/features.jsonl with dense files written here (a random,
 * untrained encoder: the feature's arithmetic, not the model's quality, is under test),
 * dense_cos equals the dot product of the query vector and the stored document vector,
 * computed by hand, and the other columns equal the plain extractor's. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ranker/ranker.h"

#define DIM 16u

typedef struct fixture {
    char dir[64];
    idx_index *ix;
    idx_analyzer *an;
    idx_dense *dn;
    rank_features *plain; /* text + static:rank */
    rank_features *dense; /* the same + dense_cos */
} fixture;

static void setup(fixture *f)
{
    const char *src = getenv("CW_SRCDIR");
    char corpus[4096], path[128];
    snprintf(corpus, sizeof corpus, "%s/tests/data/ranker/features.jsonl", src ? src : ".");
    snprintf(f->dir, sizeof f->dir, "/tmp/cw_featd_%d", (int)getpid());
    idx_build_opts bo = idx_build_opts_default();
    cw_err err;
    cr_assert(eq(int, idx_build(corpus, f->dir, &bo, NULL, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(int, idx_index_open(f->dir, &f->ix, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(int, idx_index_analyzer(f->ix, &f->an, &err), CW_OK));
    /* Dense files: a seeded random encoder, each document's title + text encoded. */
    idx_encoder_opts eo = idx_encoder_opts_default();
    eo.dim = DIM;
    eo.n_buckets = 1024;
    eo.seed = 7;
    idx_encoder *enc = NULL;
    cr_assert(eq(int, idx_encoder_new(&eo, &enc, &err), CW_OK), "%s", err.msg);
    uint32_t n = idx_index_n_docs(f->ix);
    cr_assert(eq(u32, n, 3));
    float vecs[3 * DIM];
    for (uint32_t d = 0; d < n; d++) {
        idx_doc doc;
        cr_assert(eq(int, idx_doc_get(f->ix, d, &doc, &err), CW_OK));
        char text[512];
        int len = snprintf(text, sizeof text, "%.*s %.*s", (int)doc.title_len, doc.title,
                           (int)doc.text_len, doc.text);
        cr_assert(eq(int, idx_encoder_encode(enc, text, (size_t)len, &vecs[d * DIM], &err), CW_OK));
    }
    snprintf(path, sizeof path, "%s/dense.enc", f->dir);
    cr_assert(eq(int, idx_encoder_save(enc, path, &err), CW_OK), "%s", err.msg);
    idx_encoder_free(enc);
    snprintf(path, sizeof path, "%s/dense.hnsw", f->dir);
    idx_hnsw_opts ho = idx_hnsw_opts_default();
    cr_assert(eq(int, idx_hnsw_build(vecs, n, DIM, &ho, path, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(int, idx_dense_open(f->dir, &f->dn, &err), CW_OK), "%s", err.msg);
    const char *stat[] = {"rank"};
    cr_assert(eq(int, rank_features_new(f->ix, stat, 1, NULL, 0, &f->plain, &err), CW_OK));
    cr_assert(eq(int, rank_features_new(f->ix, stat, 1, NULL, 1000, &f->dense, &err), CW_OK));
    cr_assert(eq(int, rank_features_add_dense(f->dense, f->dn, &err), CW_OK), "%s", err.msg);
}

static void teardown(fixture *f)
{
    rank_features_free(f->plain);
    rank_features_free(f->dense);
    idx_dense_close(f->dn);
    idx_analyzer_free(f->an);
    idx_index_close(f->ix);
    cr_assert(eq(int, cw_rmtree(f->dir, NULL), CW_OK));
}

Test(features_dense, dense_cos_is_the_dot_product_and_other_columns_are_unchanged)
{
    fixture f;
    setup(&f);
    size_t n = rank_features_n(f.dense);
    cr_assert(eq(sz, n, RANK_TEXT_FEATURES + 2));
    cr_assert(eq(sz, rank_features_n(f.plain), RANK_TEXT_FEATURES + 1));
    cr_assert(eq(str, (char *)rank_features_name(f.dense, n - 1), "dense_cos"));
    cr_assert(eq(str, (char *)rank_features_name(f.dense, n - 2), "static:rank"));
    const char *queries[] = {"river bank", "cherry", "boats loans apart"};
    cw_err err;
    for (size_t k = 0; k < 3; k++) {
        const char *qt = queries[k];
        idx_query *q = NULL;
        cr_assert(eq(int, idx_query_parse(f.ix, f.an, qt, strlen(qt), &q, &err), CW_OK));
        float qv[DIM];
        cr_assert(
            eq(int, idx_encoder_encode(idx_dense_encoder(f.dn), qt, strlen(qt), qv, &err), CW_OK));
        uint32_t docs[3] = {2, 0, 1};
        double plain[3 * (RANK_TEXT_FEATURES + 1)], dense[3 * (RANK_TEXT_FEATURES + 2)];
        cr_assert(eq(int, rank_features_extract(f.plain, f.an, q, docs, 3, plain, &err), CW_OK));
        cr_assert(
            eq(int, rank_features_extract_qv(f.dense, f.an, q, qv, docs, 3, dense, &err), CW_OK),
            "%s", err.msg);
        for (size_t r = 0; r < 3; r++) {
            for (size_t i = 0; i < RANK_TEXT_FEATURES + 1; i++) {
                cr_expect(eq(dbl, dense[r * n + i], plain[r * (n - 1) + i]),
                          "query %s doc %u column %zu", qt, docs[r], i);
            }
            const float *v = idx_hnsw_vector(idx_dense_hnsw(f.dn), docs[r]);
            cr_assert(v != NULL);
            double dot = 0;
            for (size_t i = 0; i < DIM; i++) {
                dot += (double)qv[i] * (double)v[i];
            }
            double got = dense[r * n + n - 1];
            cr_expect(lt(dbl, fabs(got - dot), 1e-5), "query %s doc %u: %g vs %g", qt, docs[r], got,
                      dot);
            cr_expect(le(dbl, fabs(got), 1.0 + 1e-5));
        }
        /* Without the query vector the dense extractor refuses (no silent zeros). */
        cr_expect(
            eq(int, rank_features_extract(f.dense, f.an, q, docs, 3, dense, &err), CW_EINVAL));
        idx_query_free(q);
    }
    /* Added once only. */
    cr_expect(eq(int, rank_features_add_dense(f.dense, f.dn, &err), CW_EINVAL));
    cr_expect(eq(sz, rank_features_n(f.dense), n));
    teardown(&f);
}
