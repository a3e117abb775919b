/* Tests of the encoder's word cache (index/dense_encoder.c, issue 6): cached encodings
 * equal uncached ones within float rounding, the saved word list is the corpus's most
 * frequent words, old files without it still load, a damaged list is refused, and
 * training never leaves a stale cache behind. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/dense_int.h"
#include "tests/unit/index/helpers.h"

#define N_DOCS 200
#define DIM 64

/* Documents of Zipf-ish words over a vocabulary of n_vocab ids; "the" in every one. */
static void corpus_make(cw_rng *r, uint32_t n_vocab, uint32_t words_per_doc, char **text,
                        size_t *len)
{
    for (int i = 0; i < N_DOCS; i++) {
        cw_buf b = {0};
        cr_assert(eq(int, cw_buf_printf(&b, "The "), CW_OK));
        for (uint32_t w = 0; w < words_per_doc; w++) {
            char word[64];
            // Squaring a uniform draw skews towards small ids.
            double u = cw_rng_uniform(r);
            th_word_of((uint32_t)(u * u * n_vocab), word);
            cr_assert(eq(int, cw_buf_printf(&b, "%s%s", word, w % 7 == 6 ? ", " : " "), CW_OK));
        }
        text[i] = b.data;
        len[i] = b.len;
    }
}

static void corpus_free(char **text)
{
    for (int i = 0; i < N_DOCS; i++) {
        free(text[i]);
    }
}

static idx_encoder *trained(char **text, size_t *len, uint32_t epochs)
{
    idx_encoder_opts eo = idx_encoder_opts_default();
    eo.dim = DIM;
    eo.n_buckets = 1u << 14;
    eo.seed = 5;
    idx_encoder *e;
    cr_assert(eq(int, idx_encoder_new(&eo, &e, NULL), CW_OK));
    idx_train_opts o = idx_train_opts_default();
    o.batch = 20;
    o.queue = 40;
    o.epochs = epochs;
    o.seed = 5;
    cw_err err;
    int rc = idx_encoder_train(e, (const char *const *)text, len, N_DOCS, &o, NULL, &err);
    cr_assert(eq(int, rc, CW_OK), "%s", err.msg);
    return e;
}

/* Largest |a - b| over the encodings of texts by two encoders. */
static double max_diff(const idx_encoder *a, const idx_encoder *b, char **text, size_t *len, int n)
{
    double worst = 0;
    for (int i = 0; i < n; i++) {
        float va[DIM], vb[DIM];
        cr_assert(eq(int, idx_encoder_encode(a, text[i], len[i], va, NULL), CW_OK));
        cr_assert(eq(int, idx_encoder_encode(b, text[i], len[i], vb, NULL), CW_OK));
        for (int j = 0; j < DIM; j++) {
            worst = fmax(worst, fabs((double)va[j] - vb[j]));
        }
    }
    return worst;
}

Test(idx_encoder_cache, cached_encoding_equals_uncached_within_1e6)
{
    cw_rng r;
    cw_rng_seed(&r, 11);
    char *text[N_DOCS];
    size_t len[N_DOCS];
    corpus_make(&r, 3000, 120, text, len);
    idx_encoder *e = trained(text, len, 2);
    cr_expect(eq(u32, idx_encoder_cached_words(e), 0)); // training leaves it off
    char *d = th_tmpdir();
    char p[512];
    snprintf(p, sizeof p, "%s/dense.enc", d);
    cr_assert(eq(int, idx_encoder_save(e, p, NULL), CW_OK));
    idx_encoder *on, *off;
    cw_err err;
    cr_assert(eq(int, idx_encoder_load(p, &on, &err), CW_OK), "%s", err.msg);
    /* The uncached load (embed finetune, --no-word-cache) builds no cache at all. */
    cr_assert(eq(int, idx_encoder_load_uncached(p, &off, &err), CW_OK), "%s", err.msg);
    cr_expect(eq(u32, idx_encoder_cached_words(off), 0));
    cr_expect(eq(u32, idx_encoder_cached_words(on), e->n_words));
    cr_expect(gt(u32, idx_encoder_cached_words(on), 1000));
    /* Queries: corpus documents, and texts mixing cached words with words never seen
     * (ids beyond the vocabulary), upper case, long runs and very long words. */
    char *q[N_DOCS];
    size_t ql[N_DOCS];
    corpus_make(&r, 6000, 300, q, ql);
    cw_buf odd = {0};
    cr_assert(eq(int, cw_buf_printf(&odd, "THE KALO Supercalifragilistic%0100d kaka", 7), CW_OK));
    free(q[0]);
    q[0] = odd.data;
    ql[0] = odd.len;
    double d_docs = max_diff(on, off, text, len, N_DOCS);
    double d_q = max_diff(on, off, q, ql, N_DOCS);
    cr_expect(le(dbl, d_docs, 1e-6), "documents: max |cached - uncached| = %g", d_docs);
    cr_expect(le(dbl, d_q, 1e-6), "queries: max |cached - uncached| = %g", d_q);
    /* The trained in-memory encoder (never cached) agrees too. */
    double d_mem = max_diff(e, on, q, ql, 20);
    cr_expect(le(dbl, d_mem, 1e-6), "in memory vs loaded: %g", d_mem);
    /* Built later, the cache of an uncached load is the one a cached load has. */
    cr_assert(eq(int, idx_encoder_set_word_cache(off, true, NULL), CW_OK));
    cr_expect(eq(u32, idx_encoder_cached_words(off), e->n_words));
    cr_expect(eq(dbl, max_diff(on, off, q, ql, N_DOCS), 0.0));
    idx_encoder_free(on);
    idx_encoder_free(off);
    idx_encoder_free(e);
    corpus_free(text);
    corpus_free(q);
    cr_assert(eq(int, cw_rmtree(d, NULL), CW_OK));
    free(d);
}

Test(idx_encoder_cache, word_list_keeps_the_most_frequent_words_up_to_the_limit)
{
    /* 200 documents x 800 words over 200,000 ids: about 10^5 distinct words, more than
     * the limit. */
    cw_rng r;
    cw_rng_seed(&r, 12);
    char *text[N_DOCS];
    size_t len[N_DOCS];
    corpus_make(&r, 200000, 800, text, len);
    idx_encoder *e = trained(text, len, 0);
    cr_assert(eq(u32, e->n_words, IDX_DENSE_CACHE_WORDS));
    /* Expected counts: id 0 ("ka") 160,000 x sqrt(1/200,000) = 358, "the" 200 (once a
     * document), id 1 ("lo") 148: in that order at the head of the list. */
    const char *head[3] = {"ka", "the", "lo"};
    for (int i = 0; i < 3; i++) {
        uint32_t o = e->word_off[i], l = e->word_off[i + 1] - o;
        cr_expect(eq(int, (int)l, (int)strlen(head[i])), "word %d", i);
        cr_expect(eq(int, memcmp(e->word_bytes + o, head[i], strlen(head[i])), 0), "word %d: %.*s",
                  i, (int)l, e->word_bytes + o);
    }
    idx_encoder_free(e);
    corpus_free(text);
}

Test(idx_encoder_cache, file_without_word_list_loads_and_damaged_list_is_refused)
{
    cw_rng r;
    cw_rng_seed(&r, 13);
    char *text[N_DOCS];
    size_t len[N_DOCS];
    corpus_make(&r, 500, 60, text, len);
    idx_encoder *e = trained(text, len, 0);
    char *d = th_tmpdir();
    char p[512], old[512];
    snprintf(p, sizeof p, "%s/dense.enc", d);
    snprintf(old, sizeof old, "%s/old.enc", d);
    /* An encoder file of the first layout: three sections, no word list. */
    const idx_encoder_opts *o = &e->o;
    uint64_t meta[DENSE_N_META] = {o->dim,       o->n_buckets, o->ngram_min,
                                   o->ngram_max, o->bigrams,   o->seed};
    dense_section s[3] = {
        {e->emb, (uint64_t)o->n_buckets * o->dim * 4},
        {e->proj, (uint64_t)o->dim * o->dim * 4},
        {e->idf, (uint64_t)o->n_buckets * 4},
    };
    cr_assert(eq(int, dense_file_write(old, "CWDENC01", meta, s, 3, NULL), CW_OK));
    idx_encoder *a, *b;
    cw_err err;
    cr_assert(eq(int, idx_encoder_load(old, &a, &err), CW_OK), "%s", err.msg);
    cr_expect(eq(u32, idx_encoder_cached_words(a), 0));
    cr_assert(eq(int, idx_encoder_save(e, p, NULL), CW_OK));
    cr_assert(eq(int, idx_encoder_load(p, &b, &err), CW_OK), "%s", err.msg);
    cr_expect(gt(u32, idx_encoder_cached_words(b), 400));
    double diff = max_diff(a, b, text, len, N_DOCS);
    cr_expect(le(dbl, diff, 1e-6), "old layout vs cached: %g", diff);
    idx_encoder_free(a);
    idx_encoder_free(b);
    /* Flip a byte of the last word: the section's checksum catches it. */
    FILE *f = fopen(p, "r+b");
    cr_assert(f != NULL);
    cr_assert(eq(int, fseek(f, -1, SEEK_END), 0));
    int c = fgetc(f);
    cr_assert(eq(int, fseek(f, -1, SEEK_END), 0));
    fputc(c ^ 0x01, f);
    fclose(f);
    cr_assert(eq(int, idx_encoder_load(p, &b, &err), CW_ECORRUPT));
    cr_expect(ne(ptr, strstr(err.msg, "checksum mismatch in section 4"), NULL), "%s", err.msg);
    idx_encoder_free(e);
    corpus_free(text);
    cr_assert(eq(int, cw_rmtree(d, NULL), CW_OK));
    free(d);
}

Test(idx_encoder_cache, training_a_loaded_encoder_drops_its_cache)
{
    cw_rng r;
    cw_rng_seed(&r, 14);
    char *text[N_DOCS];
    size_t len[N_DOCS];
    corpus_make(&r, 800, 80, text, len);
    idx_encoder *e = trained(text, len, 0);
    char *d = th_tmpdir();
    char p[512];
    snprintf(p, sizeof p, "%s/dense.enc", d);
    cr_assert(eq(int, idx_encoder_save(e, p, NULL), CW_OK));
    idx_encoder *l;
    cr_assert(eq(int, idx_encoder_load(p, &l, NULL), CW_OK));
    cr_assert(gt(u32, idx_encoder_cached_words(l), 0));
    idx_train_opts o = idx_train_opts_default();
    o.batch = 20;
    o.queue = 40;
    o.epochs = 2;
    cw_err err;
    cr_assert(eq(int, idx_encoder_train(l, (const char *const *)text, len, N_DOCS, &o, NULL, &err),
                 CW_OK),
              "%s", err.msg);
    cr_expect(eq(u32, idx_encoder_cached_words(l), 0));
    /* What it encodes now is the trained table: the same as with a fresh cache of it. */
    float before[DIM], after[DIM], fresh[DIM];
    cr_assert(eq(int, idx_encoder_encode(e, text[0], len[0], before, NULL), CW_OK));
    cr_assert(eq(int, idx_encoder_encode(l, text[0], len[0], after, NULL), CW_OK));
    cr_assert(eq(int, idx_encoder_set_word_cache(l, true, NULL), CW_OK));
    cr_assert(eq(int, idx_encoder_encode(l, text[0], len[0], fresh, NULL), CW_OK));
    double moved = 0, stale = 0;
    for (int j = 0; j < DIM; j++) {
        moved = fmax(moved, fabs((double)before[j] - after[j]));
        stale = fmax(stale, fabs((double)after[j] - fresh[j]));
    }
    cr_expect(gt(dbl, moved, 1e-3), "training changed nothing?");
    cr_expect(le(dbl, stale, 1e-6), "fresh cache differs by %g", stale);
    idx_encoder_free(l);
    idx_encoder_free(e);
    corpus_free(text);
    cr_assert(eq(int, cw_rmtree(d, NULL), CW_OK));
    free(d);
}
