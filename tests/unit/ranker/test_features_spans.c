/* Tests of the forward store's text spans (rank_features_new_spans): a tap fed from the
 * store instead of an analysis gives the same snippets and features as the per-call path
 * (the server's uncached /search without a model). */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <string.h>

#include "ranker/ranker.h"
#include "tests/unit/index/helpers.h"

/* Documents: markup and punctuation, an empty text, a ligature (NFKC: several terms of
 * one surface token), a text with no title, repeated terms. */
static const char corpus[] =
    "{\"id\":\"a\",\"title\":\"River flows\",\"text\":\"Intro words here. <b>Rivers</b> & "
    "flows: the river flows fast. Unrelated tail text that goes on and on and on.\"}\n"
    "{\"id\":\"b\",\"title\":\"u\",\"text\":\"\"}\n"
    "{\"id\":\"c\",\"title\":\"v\",\"text\":\"Flow\xef\xac\x81 \xef\xac\x81re rivers, lakes; the "
    "ocean's river delta flows into the sea, rivers again and again\"}\n"
    "{\"id\":\"d\",\"title\":\"\",\"text\":\"fire on the lake, fire on the sea, river sea river "
    "sea and a long flow of words after it to cut\"}\n";

/* A tap collecting each row's tokens or spans into its own idx_snip_tokens. */
typedef struct collect {
    idx_snip_tokens *t[4];
    bool begun[4], done[4];
    size_t cur, n_tokens, n_spans;
} collect;

static void c_begin(void *ctx, size_t row)
{
    collect *c = ctx;
    c->cur = row;
    c->begun[row] = true;
    idx_snip_tokens_reset(c->t[row]);
}

static int c_token(void *ctx, const idx_token *tok)
{
    collect *c = ctx;
    c->n_tokens++;
    return idx_snip_tokens_add(c->t[c->cur], tok);
}

static int c_span(void *ctx, size_t b, size_t e, bool match)
{
    collect *c = ctx;
    c->n_spans++;
    return idx_snip_tokens_add_span(c->t[c->cur], b, e, match);
}

static void c_done(void *ctx, size_t row)
{
    collect *c = ctx;
    c->done[row] = true;
}

/* Extracts all four documents with fx through a collecting tap (text_span set). */
static void run(const rank_features *fx, idx_analyzer *an, const idx_query *q, double *x,
                collect *c)
{
    for (size_t i = 0; i < 4; i++) {
        cr_assert(eq(int, idx_snip_tokens_new(q, &c->t[i], NULL), CW_OK));
    }
    uint32_t ids[4] = {0, 1, 2, 3};
    rank_token_tap tap = {c_begin, c_token, c_done, c, c_span};
    cw_err err;
    cr_assert(eq(int, rank_features_extract_tap(fx, an, q, NULL, ids, 4, x, &tap, &err), CW_OK),
              "%s", err.msg);
}

static void free_collect(collect *c)
{
    for (size_t i = 0; i < 4; i++) {
        idx_snip_tokens_free(c->t[i]);
    }
}

Test(rank_features_spans, stored_spans_give_the_analysed_snippets_and_features)
{
    char *dir = th_tmpdir();
    idx_index *ix = th_build_open(dir, corpus, "ix");
    idx_analyzer *an = NULL;
    cr_assert(eq(int, idx_index_analyzer(ix, &an, NULL), CW_OK));
    rank_features *plain = NULL, *spans = NULL, *small = NULL;
    cw_err err;
    cr_assert(eq(int, rank_features_new(ix, NULL, 0, NULL, 0, &plain, &err), CW_OK));
    cr_assert(eq(int, rank_features_new_spans(ix, NULL, 0, NULL, 1000, true, &spans, &err), CW_OK),
              "%s", err.msg);
    /* a budget of 30 tokens stores document a only: the others are analysed as before */
    cr_assert(eq(int, rank_features_new_spans(ix, NULL, 0, NULL, 30, true, &small, &err), CW_OK));
    const char *queries[] = {"river flow", "fire lakes sea", "nothing matches", "the"};
    size_t widths[] = {8, 30, 60, 240};
    enum { NF = RANK_TEXT_FEATURES };
    for (size_t qi = 0; qi < 4; qi++) {
        idx_query *q = NULL;
        cr_assert(
            eq(int, idx_query_parse(ix, an, queries[qi], strlen(queries[qi]), &q, NULL), CW_OK));
        double xa[4 * NF], xb[4 * NF], xc[4 * NF];
        collect a = {0}, b = {0}, s = {0};
        run(plain, an, q, xa, &a);
        run(spans, an, q, xb, &b);
        run(small, an, q, xc, &s);
        cr_expect(eq(sz, a.n_spans, 0));
        cr_expect(eq(sz, b.n_tokens, 0), "query %zu: a stored text was analysed", qi);
        bool any_terms = idx_query_n_terms(q) > 0;
        cr_expect(eq(int, b.n_spans > 0, any_terms), "query %zu", qi);
        cr_expect(eq(int, s.n_spans > 0 && s.n_tokens > 0, any_terms), "query %zu", qi);
        for (size_t i = 0; i < 4 * NF; i++) {
            cr_expect(eq(dbl, xb[i], xa[i]), "query %zu row %zu feature %zu", qi, i / NF, i % NF);
            cr_expect(eq(dbl, xc[i], xa[i]), "query %zu row %zu feature %zu", qi, i / NF, i % NF);
        }
        for (uint32_t d = 0; d < 4; d++) {
            cr_expect(eq(int, b.begun[d], a.begun[d]));
            cr_expect(eq(int, b.done[d], a.done[d]));
            cr_expect(eq(int, s.done[d], a.done[d]));
            cr_expect(eq(int, a.done[d], any_terms), "query %zu doc %u", qi, d);
            for (size_t w = 0; a.done[d] && w < 4; w++) {
                cw_buf want = {0}, got = {0}, got_s = {0};
                cr_assert(eq(int, idx_snippet(ix, an, q, d, widths[w], &want, NULL), CW_OK));
                cr_assert(eq(int, idx_snippet_tokens(ix, b.t[d], d, widths[w], &got, NULL), CW_OK));
                cr_assert(
                    eq(int, idx_snippet_tokens(ix, s.t[d], d, widths[w], &got_s, NULL), CW_OK));
                cr_expect(got.len == want.len &&
                              (want.len == 0 || memcmp(got.data, want.data, want.len) == 0),
                          "q %zu doc %u width %zu: %.*s != %.*s", qi, d, widths[w], (int)got.len,
                          got.data ? got.data : "", (int)want.len, want.data ? want.data : "");
                cr_expect(got_s.len == want.len &&
                              (want.len == 0 || memcmp(got_s.data, want.data, want.len) == 0),
                          "q %zu doc %u width %zu (small budget)", qi, d, widths[w]);
                cw_buf_fini(&want);
                cw_buf_fini(&got);
                cw_buf_fini(&got_s);
            }
        }
        free_collect(&a);
        free_collect(&b);
        free_collect(&s);
        idx_query_free(q);
    }
    rank_features_free(plain);
    rank_features_free(spans);
    rank_features_free(small);
    idx_analyzer_free(an);
    idx_index_close(ix);
    th_cleanup(dir);
}
