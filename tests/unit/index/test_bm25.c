/* Tests of BM25 scoring (index/search.c) against scores computed by hand for the
 * tests/data/index/tiny.jsonl fixture (see tests/data/index/README.md). */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <string.h>

#include "index/index.h"
#include "tests/unit/index/helpers.h"

/* Independent Python transcription of METHODS.md section 2; relative tolerance 1e-12
 * covers only the summation order of two or three doubles. */
#define REL_EPS 1e-12

static idx_index *open_tiny(char **dir)
{
    *dir = th_tmpdir();
    char *src = th_fixture("index/tiny.jsonl");
    char out[512];
    snprintf(out, sizeof out, "%s/ix", *dir);
    idx_build_opts o = idx_build_opts_default();
    cw_err err;
    cr_assert(eq(int, idx_build(src, out, &o, NULL, &err), CW_OK), "%s", err.msg);
    idx_index *ix = NULL;
    cr_assert(eq(int, idx_index_open(out, &ix, &err), CW_OK), "%s", err.msg);
    free(src);
    return ix;
}

static void search(idx_index *ix, const char *text, idx_search_opts so, idx_hit *hits, size_t *n)
{
    idx_analyzer *a = NULL;
    cr_assert(eq(int, idx_index_analyzer(ix, &a, NULL), CW_OK));
    idx_query *q = NULL;
    cw_err err;
    cr_assert(eq(int, idx_query_parse(ix, a, text, strlen(text), &q, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(int, idx_search(ix, q, &so, hits, n, NULL, &err), CW_OK), "%s", err.msg);
    idx_query_free(q);
    idx_analyzer_free(a);
}

static void expect_close(double got, double want)
{
    cr_expect(fabs(got - want) <= REL_EPS * fabs(want), "got %.17g want %.17g", got, want);
}

static uint32_t doc_of(idx_index *ix, const char *id)
{
    uint32_t d = 0;
    cr_assert(eq(int, idx_doc_lookup(ix, id, strlen(id), &d, NULL), CW_OK));
    return d;
}

Test(idx_bm25, flat_scores_equal_hand_computed_values)
{
    char *dir;
    idx_index *ix = open_tiny(&dir);
    idx_hit hits[10];
    size_t n = 0;
    search(ix, "apples and cherries", idx_search_opts_default(), hits, &n);
    cr_assert(eq(sz, n, 3));
    cr_expect(eq(u32, hits[0].doc, doc_of(ix, "d3")));
    expect_close(hits[0].score, 0.8814504438317683);
    cr_expect(eq(u32, hits[1].doc, doc_of(ix, "d1")));
    expect_close(hits[1].score, 0.4866630154382765);
    cr_expect(eq(u32, hits[2].doc, doc_of(ix, "d2")));
    expect_close(hits[2].score, 0.3749636989118715);
    idx_index_close(ix);
    th_cleanup(dir);
}

Test(idx_bm25, repeated_terms_count_per_occurrence_and_params_apply)
{
    char *dir;
    idx_index *ix = open_tiny(&dir);
    idx_hit hits[10];
    size_t n = 0;
    search(ix, "flow", idx_search_opts_default(), hits, &n);
    cr_assert(eq(sz, n, 1));
    expect_close(hits[0].score, 0.9140791356053746);
    search(ix, "flow flows", idx_search_opts_default(), hits, &n);
    cr_assert(eq(sz, n, 1));
    expect_close(hits[0].score, 1.8281582712107491);
    idx_search_opts so = idx_search_opts_default();
    so.bm25 = (idx_bm25_params){1.2, 0.75};
    search(ix, "flow", so, hits, &n);
    cr_assert(eq(sz, n, 1));
    expect_close(hits[0].score, 0.8344365970575796);
    idx_index_close(ix);
    th_cleanup(dir);
}

Test(idx_bm25, per_field_scores_equal_hand_computed_values)
{
    char *dir;
    idx_index *ix = open_tiny(&dir);
    idx_analyzer *a = NULL;
    cr_assert(eq(int, idx_index_analyzer(ix, &a, NULL), CW_OK));
    idx_query *q = NULL;
    cr_assert(eq(int, idx_query_parse(ix, a, "apple cherry", 12, &q, NULL), CW_OK));
    double f[IDX_N_FIELDS];
    const idx_bm25_params p = IDX_BM25_DEFAULT;
    cr_assert(eq(int, idx_score_fields(ix, q, doc_of(ix, "d1"), &p, f, NULL), CW_OK));
    expect_close(f[IDX_FIELD_TITLE], 0.5418946149236057);
    expect_close(f[IDX_FIELD_TEXT], 0.37918335916846024);
    expect_close(f[IDX_FIELD_FLAT], 0.4866630154382765);
    cr_assert(eq(int, idx_score_fields(ix, q, doc_of(ix, "d3"), &p, f, NULL), CW_OK));
    cr_expect(eq(dbl, f[IDX_FIELD_TITLE], 0.0));
    expect_close(f[IDX_FIELD_TEXT], 0.8327835972050686);
    expect_close(f[IDX_FIELD_FLAT], 0.8814504438317683);
    cr_assert(eq(int, idx_score_fields(ix, q, doc_of(ix, "d2"), &p, f, NULL), CW_OK));
    expect_close(f[IDX_FIELD_TEXT], 0.4116075894061432);
    cw_err err;
    cr_expect(eq(int, idx_score_fields(ix, q, 99, &p, f, &err), CW_ENOTFOUND));
    idx_query_free(q);
    idx_analyzer_free(a);
    idx_index_close(ix);
    th_cleanup(dir);
}

Test(idx_bm25, field_statistics_match_the_fixture)
{
    char *dir;
    idx_index *ix = open_tiny(&dir);
    idx_field_stats fs;
    idx_index_field_stats(ix, IDX_FIELD_FLAT, &fs);
    cr_expect(eq(u64, fs.doc_count, 4));
    cr_expect(eq(u64, fs.total_terms, 14));
    cr_expect(eq(dbl, fs.avg_len, 3.5));
    idx_index_field_stats(ix, IDX_FIELD_TITLE, &fs);
    cr_expect(eq(u64, fs.doc_count, 3)); /* d3 has an empty title */
    cr_expect(eq(u64, fs.total_terms, 4));
    idx_index_field_stats(ix, IDX_FIELD_TEXT, &fs);
    cr_expect(eq(u64, fs.total_terms, 10));
    idx_doc d;
    cr_assert(eq(int, idx_doc_get(ix, doc_of(ix, "d4"), &d, NULL), CW_OK));
    cr_expect(eq(u32, d.len[IDX_FIELD_TITLE], 1));
    cr_expect(eq(u32, d.len[IDX_FIELD_TEXT], 3));
    cr_expect(eq(u32, d.len[IDX_FIELD_FLAT], 4));
    idx_index_close(ix);
    th_cleanup(dir);
}

Test(idx_bm25, and_offset_empty_and_stopword_queries)
{
    char *dir;
    idx_index *ix = open_tiny(&dir);
    idx_hit hits[10];
    size_t n = 0;
    idx_search_opts so = idx_search_opts_default();
    so.conjunctive = true;
    search(ix, "apple cherry", so, hits, &n);
    cr_assert(eq(sz, n, 1));
    cr_expect(eq(u32, hits[0].doc, doc_of(ix, "d3")));
    search(ix, "apple unknownword", so, hits, &n);
    cr_expect(eq(sz, n, 0));
    so = idx_search_opts_default();
    so.offset = 1;
    so.k = 1;
    search(ix, "apple cherry", so, hits, &n);
    cr_assert(eq(sz, n, 1));
    cr_expect(eq(u32, hits[0].doc, doc_of(ix, "d1")));
    search(ix, "the of and", idx_search_opts_default(), hits, &n);
    cr_expect(eq(sz, n, 0));

    idx_analyzer *a = NULL;
    cr_assert(eq(int, idx_index_analyzer(ix, &a, NULL), CW_OK));
    idx_query *q = NULL;
    cw_err err;
    cr_expect(eq(int, idx_query_parse(ix, a, "  ", 2, &q, &err), CW_EINVAL));
    cr_expect(strstr(err.msg, "empty") != NULL);
    cr_expect(eq(int, idx_query_parse(ix, a, "a\xff", 2, &q, &err), CW_EPARSE));
    char big[IDX_MAX_QUERY_BYTES + 2];
    memset(big, 'a', sizeof big);
    cr_expect(eq(int, idx_query_parse(ix, a, big, sizeof big, &q, &err), CW_ELIMIT));
    cr_assert(eq(int, idx_query_parse(ix, a, "apple", 5, &q, &err), CW_OK));
    so = idx_search_opts_default();
    so.k = 0;
    cr_expect(eq(int, idx_search(ix, q, &so, hits, &n, NULL, &err), CW_EINVAL));
    so.k = IDX_MAX_K;
    so.offset = 1;
    cr_expect(eq(int, idx_search(ix, q, &so, hits, &n, NULL, &err), CW_EINVAL));
    uint64_t df = 0;
    cr_expect(eq(str, (char *)idx_query_term(q, 0, &df), "appl"));
    cr_expect(eq(u64, df, 2));
    idx_query_free(q);
    idx_analyzer_free(a);
    idx_index_close(ix);
    th_cleanup(dir);
}

Test(idx_bm25, documents_lookup_and_stored_fields)
{
    char *dir;
    idx_index *ix = open_tiny(&dir);
    cr_expect(eq(u32, idx_index_n_docs(ix), 4));
    uint32_t d1 = doc_of(ix, "d1");
    idx_doc d;
    cr_assert(eq(int, idx_doc_get(ix, d1, &d, NULL), CW_OK));
    cr_expect(eq(int, (int)d.id_len, 2));
    cr_expect(memcmp(d.title, "Apple", 5) == 0);
    cr_expect(eq(sz, d.fields_len, strlen("{\"lang\":\"en\"}")));
    cr_expect(memcmp(d.fields_json, "{\"lang\":\"en\"}", d.fields_len) == 0);
    cr_assert(eq(int, idx_doc_get(ix, doc_of(ix, "d2"), &d, NULL), CW_OK));
    cr_expect(memcmp(d.fields_json, "{}", 2) == 0);
    uint32_t x;
    cw_err err;
    cr_expect(eq(int, idx_doc_lookup(ix, "d9", 2, &x, &err), CW_ENOTFOUND));
    cr_expect(eq(int, idx_doc_lookup(ix, "d", 1, &x, &err), CW_ENOTFOUND));
    cr_expect(eq(int, idx_doc_get(ix, 4, &d, &err), CW_ENOTFOUND));
    cr_expect(eq(sz, strlen(idx_index_version(ix)), 16));
    idx_index_close(ix);
    th_cleanup(dir);
}

/* Each of the five characters put_escaped replaces, once, around marked terms. */
Test(idx_bm25, snippet_escapes_all_five_html_characters)
{
    char *dir = th_tmpdir();
    idx_index *ix = th_build_open(
        dir,
        "{\"id\":\"e\",\"title\":\"t\",\"text\":\"He said \\\"river\\\" & it's <deep> river.\"}\n",
        "ix");
    idx_analyzer *a = NULL;
    cr_assert(eq(int, idx_index_analyzer(ix, &a, NULL), CW_OK));
    idx_query *q = NULL;
    cr_assert(eq(int, idx_query_parse(ix, a, "river", 5, &q, NULL), CW_OK));
    cw_buf out = {0};
    cr_assert(eq(int, idx_snippet(ix, a, q, 0, 200, &out, NULL), CW_OK));
    cr_expect(eq(str, out.data,
                 "He said &quot;<mark>river</mark>&quot; &amp; it&#39;s &lt;deep&gt; "
                 "<mark>river</mark> \xe2\x80\xa6"));
    cw_buf_fini(&out);
    idx_query_free(q);
    idx_analyzer_free(a);
    idx_index_close(ix);
    th_cleanup(dir);
}

Test(idx_bm25, snippet_marks_terms_and_escapes_html)
{
    char *dir = th_tmpdir();
    idx_index *ix = th_build_open(
        dir,
        "{\"id\":\"s\",\"title\":\"t\",\"text\":\"Intro words here. <b>Rivers</b> & flows: the "
        "river flows fast. Unrelated tail text that goes on and on and on.\"}\n",
        "ix");
    idx_analyzer *a = NULL;
    cr_assert(eq(int, idx_index_analyzer(ix, &a, NULL), CW_OK));
    idx_query *q = NULL;
    cr_assert(eq(int, idx_query_parse(ix, a, "river flow", 10, &q, NULL), CW_OK));
    cw_buf out = {0};
    cr_assert(eq(int, idx_snippet(ix, a, q, 0, 60, &out, NULL), CW_OK));
    cr_expect(strstr(out.data, "&lt;b&gt;<mark>Rivers</mark>&lt;/b&gt; &amp; <mark>flows</mark>") !=
                  NULL,
              "%s", out.data);
    cr_expect(strstr(out.data, "<mark>river</mark> <mark>flows</mark>") != NULL, "%s", out.data);
    cr_expect(strstr(out.data, "on and on") == NULL, "%s", out.data);
    cw_buf_fini(&out);
    cw_err err;
    cr_expect(eq(int, idx_snippet(ix, a, q, 7, 60, &out, &err), CW_ENOTFOUND));
    idx_query_free(q);
    idx_analyzer_free(a);
    idx_index_close(ix);
    th_cleanup(dir);
}

/* A query with more distinct terms than the snippet's smallest term table (16 slots)
 * and repeats: exactly the words of the text that are query terms are marked. */
Test(idx_bm25, snippet_long_query_marks_only_query_terms)
{
    char *dir = th_tmpdir();
    idx_index *ix = th_build_open(
        dir, "{\"id\":\"s\",\"title\":\"t\",\"text\":\"alpha beta gamma delta epsilon\"}\n", "ix");
    idx_analyzer *a = NULL;
    cr_assert(eq(int, idx_index_analyzer(ix, &a, NULL), CW_OK));
    const char *qt = "zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
                     "upsilon phi chi psi omega gamma alpha gamma rivers oceans lakes";
    idx_query *q = NULL;
    cr_assert(eq(int, idx_query_parse(ix, a, qt, strlen(qt), &q, NULL), CW_OK));
    cr_assert(idx_query_n_terms(q) > 16);
    cw_buf out = {0};
    cr_assert(eq(int, idx_snippet(ix, a, q, 0, 240, &out, NULL), CW_OK));
    cr_assert(eq(int, cw_buf_append(&out, "", 1), CW_OK));
    cr_expect(eq(str, out.data, "<mark>alpha</mark> beta <mark>gamma</mark> delta epsilon"));
    cw_buf_fini(&out);
    idx_query_free(q);
    idx_analyzer_free(a);
    idx_index_close(ix);
    th_cleanup(dir);
}

/* Callback counting tokens into an idx_snip_tokens (checks the hand-off sees them all). */
typedef struct tap_count {
    idx_snip_tokens *t;
    size_t n;
} tap_count;

static int tap_count_add(void *ctx, const idx_token *tok)
{
    tap_count *c = ctx;
    c->n++;
    return idx_snip_tokens_add(c->t, tok);
}

/* idx_snippet_tokens over the text's tokens analysed by the caller is byte-identical to
 * idx_snippet, for every document, several windows and queries (including a miss). */
Test(idx_bm25, snippet_from_tokens_is_identical)
{
    char *dir = th_tmpdir();
    idx_index *ix = th_build_open(
        dir,
        "{\"id\":\"a\",\"title\":\"t\",\"text\":\"Intro words here. <b>Rivers</b> & flows: the "
        "river flows fast. Unrelated tail text that goes on and on and on.\"}\n"
        "{\"id\":\"b\",\"title\":\"u\",\"text\":\"\"}\n"
        "{\"id\":\"c\",\"title\":\"v\",\"text\":\"Flow\xef\xac\x81 ﬁre rivers, lakes; the "
        "ocean's river delta flows into the sea, rivers again and again\"}\n",
        "ix");
    idx_analyzer *a = NULL;
    cr_assert(eq(int, idx_index_analyzer(ix, &a, NULL), CW_OK));
    const char *queries[] = {"river flow", "fire lakes sea", "nothing matches"};
    size_t widths[] = {8, 30, 60, 240};
    for (size_t qi = 0; qi < 3; qi++) {
        idx_query *q = NULL;
        cr_assert(
            eq(int, idx_query_parse(ix, a, queries[qi], strlen(queries[qi]), &q, NULL), CW_OK));
        idx_snip_tokens *t = NULL;
        cr_assert(eq(int, idx_snip_tokens_new(q, &t, NULL), CW_OK));
        for (uint32_t d = 0; d < 3; d++) {
            idx_doc doc;
            cr_assert(eq(int, idx_doc_get(ix, d, &doc, NULL), CW_OK));
            idx_snip_tokens_reset(t);
            tap_count c = {t, 0};
            cr_assert(
                eq(int, idx_analyze(a, doc.text, doc.text_len, tap_count_add, &c, NULL), CW_OK));
            cr_expect(d == 1 ? c.n == 0 : c.n > 5);
            for (size_t w = 0; w < 4; w++) {
                cw_buf want = {0}, got = {0};
                cr_assert(eq(int, idx_snippet(ix, a, q, d, widths[w], &want, NULL), CW_OK));
                cr_assert(eq(int, idx_snippet_tokens(ix, t, d, widths[w], &got, NULL), CW_OK));
                cr_expect(eq(sz, got.len, want.len), "q %zu doc %u width %zu", qi, d, widths[w]);
                cr_expect(got.len == want.len &&
                              (want.len == 0 || memcmp(got.data, want.data, want.len) == 0),
                          "q %zu doc %u width %zu", qi, d, widths[w]);
                cw_buf_fini(&want);
                cw_buf_fini(&got);
            }
        }
        cw_err err;
        cr_expect(eq(int, idx_snippet_tokens(ix, t, 9, 60, &(cw_buf){0}, &err), CW_ENOTFOUND));
        idx_snip_tokens_free(t);
        idx_query_free(q);
    }
    idx_analyzer_free(a);
    idx_index_close(ix);
    th_cleanup(dir);
}
