/* Tests of index/search.c: block-max WAND, term-at-a-time and AND against an oracle
 * that recomputes BM25 from the generated corpus itself, on thousands of seeded random
 * queries. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/index.h"
#include "index/index_int.h"
#include "tests/unit/index/helpers.h"

#define N_DOCS 4000
#define VOCAB 600
#define SEED 20260101u

/* Term counts of the generated corpus: tf[d][w] for words "q<w>x" (letters around
 * the number keep porter and the stopword list out of the way). */
typedef struct oracle {
    uint16_t *tf; /* N_DOCS * VOCAB */
    uint32_t dl[N_DOCS];
    uint32_t df[VOCAB];
    uint64_t total;
} oracle;

static uint32_t zipf_word(cw_rng *rng)
{
    return (uint32_t)((uint64_t)(1.0 / cw_rng_uniform(rng)) % VOCAB);
}

static char *make_corpus(oracle *o)
{
    cw_rng rng;
    cw_rng_seed(&rng, SEED);
    cw_buf b = {0};
    o->tf = calloc((size_t)N_DOCS * VOCAB, sizeof *o->tf);
    for (uint32_t d = 0; d < N_DOCS; d++) {
        /* Lengths from 1 to ~400 so block maxima differ a lot between blocks. */
        uint32_t len = 1 + (uint32_t)cw_rng_below(&rng, d % 7 == 0 ? 400 : 40);
        cr_assert(cw_buf_printf(&b, "{\"id\":\"%u\",\"title\":\"\",\"text\":\"", d) == CW_OK);
        for (uint32_t i = 0; i < len; i++) {
            uint32_t w = zipf_word(&rng);
            /* Bursts: a word repeated raises its tf in this document. */
            uint32_t rep = cw_rng_below(&rng, 10) == 0 ? 1 + (uint32_t)cw_rng_below(&rng, 6) : 1;
            for (uint32_t r = 0; r < rep; r++) {
                cr_assert(cw_buf_printf(&b, "q%ux ", w) == CW_OK);
                o->tf[(size_t)d * VOCAB + w]++;
                o->dl[d]++;
            }
        }
        cr_assert(cw_buf_printf(&b, "\"}\n") == CW_OK);
        o->total += o->dl[d];
    }
    for (uint32_t d = 0; d < N_DOCS; d++) {
        for (uint32_t w = 0; w < VOCAB; w++) {
            o->df[w] += o->tf[(size_t)d * VOCAB + w] > 0;
        }
    }
    return b.data;
}

static int cmp_hit(const void *a, const void *b)
{
    const idx_hit *x = a, *y = b;
    if (x->score != y->score) {
        return x->score > y->score ? -1 : 1;
    }
    return (x->doc > y->doc) - (x->doc < y->doc);
}

/* Exhaustive BM25 straight from the counts, summing in query order like the index
 * (METHODS.md section 2), so scores must agree to the bit. */
static size_t oracle_topk(const oracle *o, const uint32_t *words, const uint32_t *counts, size_t nq,
                          bool conj, idx_bm25_params p, idx_hit *all)
{
    double avgdl = (double)o->total / N_DOCS;
    size_t n = 0;
    for (uint32_t d = 0; d < N_DOCS; d++) {
        double s = 0;
        size_t matched = 0;
        for (size_t i = 0; i < nq; i++) {
            uint32_t tf = words[i] < VOCAB ? o->tf[(size_t)d * VOCAB + words[i]] : 0;
            if (tf == 0) {
                continue;
            }
            matched++;
            double w = (double)counts[i] * idx_bm25_idf(N_DOCS, o->df[words[i]]);
            s += w * idx_bm25_tfn(tf, o->dl[d], p.k1, p.b, avgdl);
        }
        if (matched > 0 && (!conj || matched == nq)) {
            all[n++] = (idx_hit){d, s};
        }
    }
    qsort(all, n, sizeof *all, cmp_hit);
    return n;
}

Test(idx_search, wand_and_and_equal_the_oracle_on_thousands_of_random_queries)
{
    oracle o;
    memset(&o, 0, sizeof o);
    char *corpus = make_corpus(&o);
    char *dir = th_tmpdir();
    idx_index *ix = th_build_open(dir, corpus, "ix");
    cr_assert(eq(u32, idx_index_n_docs(ix), N_DOCS));
    idx_analyzer *an = NULL;
    cr_assert(eq(int, idx_index_analyzer(ix, &an, NULL), CW_OK));
    idx_hit *all = malloc(N_DOCS * sizeof *all);
    idx_hit hits[IDX_MAX_K];
    cw_rng rng;
    cw_rng_seed(&rng, SEED + 1);
    const uint32_t ks[] = {1, 3, 10, 50, 100, 1000};
    size_t n_queries = 3000, n_nonempty = 0;
    for (size_t qi = 0; qi < n_queries; qi++) {
        /* 1-6 words, some repeated, some absent from the corpus (ids >= VOCAB). */
        uint32_t words[6], counts[6];
        size_t nq = 0;
        size_t len = 1 + cw_rng_below(&rng, 6);
        cw_buf qt = {0};
        for (size_t i = 0; i < len; i++) {
            uint32_t w = cw_rng_below(&rng, 20) == 0 ? VOCAB + (uint32_t)cw_rng_below(&rng, 5)
                                                     : zipf_word(&rng);
            cr_assert(cw_buf_printf(&qt, "%sq%ux", i ? " " : "", w) == CW_OK);
            size_t j = 0;
            while (j < nq && words[j] != w) {
                j++;
            }
            if (j == nq) {
                words[nq] = w;
                counts[nq++] = 0;
            }
            counts[j]++;
        }
        idx_search_opts so = idx_search_opts_default();
        so.k = ks[cw_rng_below(&rng, CW_ARRAY_LEN(ks))];
        so.offset =
            cw_rng_below(&rng, 4) == 0 ? (uint32_t)cw_rng_below(&rng, IDX_MAX_K - so.k + 1) : 0;
        so.conjunctive = cw_rng_below(&rng, 5) == 0;
        if (cw_rng_below(&rng, 4) == 0) {
            so.bm25 = (idx_bm25_params){cw_rng_uniform(&rng) * 2.0, cw_rng_uniform(&rng)};
        }
        idx_query *q = NULL;
        cr_assert(eq(int, idx_query_parse(ix, an, qt.data, qt.len, &q, NULL), CW_OK));
        size_t nh = 0;
        cw_err err;
        size_t na = oracle_topk(&o, words, counts, nq, so.conjunctive, so.bm25, all);
        size_t want = na > so.offset ? CW_MIN(na - so.offset, (size_t)so.k) : 0;
        /* Both OR strategies: block-max WAND and term-at-a-time (AUTO picks one by size). */
        const int modes[] = {IDX_TAAT_NEVER, IDX_TAAT_ALWAYS, IDX_TAAT_AUTO};
        for (size_t m = 0; m < CW_ARRAY_LEN(modes); m++) {
            idx_index_set_taat(ix, modes[m]);
            cr_assert(eq(int, idx_search(ix, q, &so, hits, &nh, NULL, &err), CW_OK), "%s", err.msg);
            cr_assert(eq(sz, nh, want), "seed %u query %zu \"%s\" k %u offset %u and %d mode %d",
                      SEED, qi, qt.data, so.k, so.offset, so.conjunctive, modes[m]);
            for (size_t i = 0; i < nh; i++) {
                cr_assert(hits[i].doc == all[so.offset + i].doc &&
                              hits[i].score == all[so.offset + i].score,
                          "seed %u query %zu \"%s\" mode %d rank %zu: doc %u (%.17g) want %u "
                          "(%.17g)",
                          SEED, qi, qt.data, modes[m], i, hits[i].doc, hits[i].score,
                          all[so.offset + i].doc, all[so.offset + i].score);
            }
        }
        /* The index's own exhaustive mode agrees too. */
        so.exhaustive = true;
        idx_hit ex[IDX_MAX_K];
        size_t ne = 0;
        cr_assert(eq(int, idx_search(ix, q, &so, ex, &ne, NULL, NULL), CW_OK));
        cr_assert(eq(sz, ne, nh));
        for (size_t i = 0; i < nh; i++) {
            cr_assert(ex[i].doc == hits[i].doc && ex[i].score == hits[i].score, "query %zu", qi);
        }
        /* Per-field scores (for the ranker) agree with the retrieval score to the bit. */
        for (size_t i = 0; i < CW_MIN(nh, (size_t)3); i++) {
            double f[IDX_N_FIELDS];
            cr_assert(eq(int, idx_score_fields(ix, q, hits[i].doc, &so.bm25, f, NULL), CW_OK));
            cr_assert(f[IDX_FIELD_FLAT] == hits[i].score, "query %zu doc %u: %.17g vs %.17g", qi,
                      hits[i].doc, f[IDX_FIELD_FLAT], hits[i].score);
            /* Titles are empty, so the text field has the flat field's statistics. */
            cr_assert(f[IDX_FIELD_TITLE] == 0.0);
            cr_assert(f[IDX_FIELD_TEXT] == f[IDX_FIELD_FLAT]);
        }
        /* All hits at once, in reverse rank order (not docid order) with the best one
         * repeated: one pass per posting list gives the same bits. */
        double(*fm)[IDX_N_FIELDS] = malloc((nh + 1) * sizeof *fm);
        uint32_t *ids = malloc((nh + 1) * sizeof *ids);
        for (size_t i = 0; i < nh; i++) {
            ids[i] = hits[nh - 1 - i].doc;
        }
        ids[nh] = nh ? hits[0].doc : 0;
        cr_assert(eq(int, idx_score_fields_many(ix, q, ids, nh + 1, &so.bm25, fm, NULL), CW_OK));
        for (size_t i = 0; i <= nh; i++) {
            size_t rank = i < nh ? nh - 1 - i : 0;
            double score = nh ? hits[rank].score : fm[i][IDX_FIELD_FLAT];
            cr_assert(fm[i][IDX_FIELD_FLAT] == score && fm[i][IDX_FIELD_TITLE] == 0.0,
                      "query %zu many[%zu] doc %u: %.17g vs %.17g", qi, i, ids[i],
                      fm[i][IDX_FIELD_FLAT], score);
        }
        free(fm);
        free(ids);
        n_nonempty += nh > 0;
        idx_query_free(q);
        cw_buf_fini(&qt);
    }
    cr_expect(n_nonempty > n_queries / 2, "most queries should have hits");
    free(all);
    free(o.tf);
    free(corpus);
    idx_analyzer_free(an);
    idx_index_close(ix);
    th_cleanup(dir);
}

Test(idx_codec, blocks_round_trip_and_malformed_blocks_are_refused)
{
    cw_rng rng;
    cw_rng_seed(&rng, 3);
    for (int rep = 0; rep < 2000; rep++) {
        uint32_t n = 1 + (uint32_t)cw_rng_below(&rng, IDX_BLOCK);
        uint32_t docs[IDX_BLOCK], tfs[IDX_BLOCK], d2[IDX_BLOCK], t2[IDX_BLOCK];
        uint32_t prev = rep % 3 == 0 ? UINT32_MAX : (uint32_t)cw_rng_below(&rng, 1000);
        uint32_t cur = prev;
        uint32_t span = 1u << cw_rng_below(&rng, 24); /* 128 gaps stay below 2^32 */
        for (uint32_t i = 0; i < n; i++) {
            cur += 1 + (uint32_t)cw_rng_below(&rng, span);
            docs[i] = cur;
            tfs[i] = 1 + (uint32_t)cw_rng_below(&rng, rep % 5 == 0 ? 100000 : 3);
        }
        cw_buf b = {0};
        cr_assert(eq(int, idx_block_encode(docs, tfs, n, prev, &b), CW_OK));
        cr_assert(cw_buf_append(&b, "\0\0\0\0\0\0\0\0", 8) == CW_OK); /* decoder padding */
        size_t used = idx_block_decode((const uint8_t *)b.data, b.len - 8, n, prev, d2, t2);
        cr_assert(eq(sz, used, b.len - 8));
        cr_assert(memcmp(docs, d2, n * 4) == 0, "rep %d", rep);
        cr_assert(memcmp(tfs, t2, n * 4) == 0, "rep %d", rep);
        cr_expect(eq(sz, idx_block_decode((const uint8_t *)b.data, used - 1, n, prev, d2, t2), 0));
        b.data[0] = 33;
        cr_expect(eq(sz, idx_block_decode((const uint8_t *)b.data, used, n, prev, d2, t2), 0));
        cw_buf_fini(&b);
    }
}
