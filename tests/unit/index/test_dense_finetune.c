/* Tests of fine-tuning the dense encoder on click pairs (idx_encoder_finetune, issue 6):
 * the weighted InfoNCE's gradients against finite differences, and a simulation where
 * queries use words no document contains and the clicked documents are known relevant:
 * fine-tuning makes held-out queries find their topic, and a pair's weight is what it
 * counts for (weight-0 wrong clicks change little, the same clicks at weight 1 hurt). */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/dense_int.h"
#include "tests/unit/index/helpers.h"

Test(idx_finetune, weighted_infonce_gradients_match_finite_differences)
{
    enum { B = 5, NQ = 3, D = 6 };
    cw_rng r;
    cw_rng_seed(&r, 21);
    float Q[B * D], K[B * D], U[NQ * D], w[B] = {0.5f, 2.0f, 0.0f, 1.0f, 3.5f};
    for (int i = 0; i < B * D; i++) {
        Q[i] = (float)cw_rng_normal(&r) * 0.5f;
        K[i] = (float)cw_rng_normal(&r) * 0.5f;
    }
    for (int i = 0; i < NQ * D; i++) {
        U[i] = (float)cw_rng_normal(&r) * 0.5f;
    }
    float dQ[B * D], dK[B * D], t1[B * D], t2[B * D], s[B * (B + NQ)];
    double tau = 0.3;
    double loss = dense_batch_infonce_w(Q, K, U, B, NQ, D, tau, w, dQ, dK, s);
    cr_assert(gt(dbl, loss, 0));
    double h = 1e-2;
    for (int i = 0; i < B * D; i++) {
        float Qp[B * D], Qm[B * D], Kp[B * D], Km[B * D];
        memcpy(Qp, Q, sizeof Q);
        memcpy(Qm, Q, sizeof Q);
        memcpy(Kp, K, sizeof K);
        memcpy(Km, K, sizeof K);
        Qp[i] += (float)h;
        Qm[i] -= (float)h;
        Kp[i] += (float)h;
        Km[i] -= (float)h;
        double fq = (dense_batch_infonce_w(Qp, K, U, B, NQ, D, tau, w, t1, t2, s) -
                     dense_batch_infonce_w(Qm, K, U, B, NQ, D, tau, w, t1, t2, s)) /
                    (2 * h);
        double fk = (dense_batch_infonce_w(Q, Kp, U, B, NQ, D, tau, w, t1, t2, s) -
                     dense_batch_infonce_w(Q, Km, U, B, NQ, D, tau, w, t1, t2, s)) /
                    (2 * h);
        cr_expect(lt(dbl, fabs(fq - dQ[i]), 2e-3 + 2e-2 * fabs(fq)), "dQ[%d] %g vs %g", i, dQ[i],
                  fq);
        cr_expect(lt(dbl, fabs(fk - dK[i]), 2e-3 + 2e-2 * fabs(fk)), "dK[%d] %g vs %g", i, dK[i],
                  fk);
    }
    /* Equal weights are the plain mean, whatever their scale; all zero: loss 0. */
    float ones[B] = {3, 3, 3, 3, 3}, zeros[B] = {0};
    double plain = dense_batch_infonce(Q, K, U, B, NQ, D, tau, t1, t2, s);
    cr_expect(lt(dbl, fabs(dense_batch_infonce_w(Q, K, U, B, NQ, D, tau, ones, t1, t2, s) - plain),
                 1e-6));
    cr_expect(eq(dbl, dense_batch_infonce_w(Q, K, U, B, NQ, D, tau, zeros, t1, t2, s), 0.0));
    cr_expect(eq(flt, t1[0], 0.0f));
}

/* ---- a click simulation with known relevance --------------------------------------- */

#define TOPICS 8
#define DOCS_PER 20
#define N_DOCS (TOPICS * DOCS_PER)
#define DIM 32

typedef struct sim {
    char *doc[N_DOCS];
    size_t doc_len[N_DOCS];
    idx_encoder *enc;
} sim;

/* Documents of topic t use words 16t..16t+7 (70%) and filler words 600..609; queries use
 * the words 300 + 4t..300 + 4t + 3, which no document contains. */
static void sim_make(sim *s)
{
    cw_rng r;
    cw_rng_seed(&r, 31);
    for (int i = 0; i < N_DOCS; i++) {
        int t = i / DOCS_PER;
        cw_buf b = {0};
        for (int w = 0; w < 30; w++) {
            char word[32];
            th_word_of(cw_rng_bernoulli(&r, 0.7) ? (uint32_t)(16 * t + cw_rng_below(&r, 8))
                                                 : (uint32_t)(600 + cw_rng_below(&r, 10)),
                       word);
            cr_assert(eq(int, cw_buf_printf(&b, "%s ", word), CW_OK));
        }
        s->doc[i] = b.data;
        s->doc_len[i] = b.len;
    }
    idx_encoder_opts eo = idx_encoder_opts_default();
    eo.dim = DIM;
    eo.n_buckets = 1u << 12;
    eo.seed = 4;
    cr_assert(eq(int, idx_encoder_new(&eo, &s->enc, NULL), CW_OK));
    idx_train_opts o = idx_train_opts_default();
    o.epochs = 0; // idf only: an untrained (random projection) encoder
    cr_assert(eq(
        int,
        idx_encoder_train(s->enc, (const char *const *)s->doc, s->doc_len, N_DOCS, &o, NULL, NULL),
        CW_OK));
}

static void sim_free(sim *s)
{
    for (int i = 0; i < N_DOCS; i++) {
        free(s->doc[i]);
    }
    idx_encoder_free(s->enc);
}

/* Query of topic t from its query words (mask of the 4 words to use). */
static void query_of(int t, unsigned mask, char *out)
{
    out[0] = '\0';
    for (int j = 0; j < 4; j++) {
        if (mask & (1u << j)) {
            char w[32];
            th_word_of((uint32_t)(300 + 4 * t + j), w);
            strcat(out, w);
            strcat(out, " ");
        }
    }
}

/* Mean over topics of precision@10 (documents of the topic) for the query of all four
 * query words: a query never used in fine-tuning (those use 2 or 3 of them). */
static double precision_at_10(const sim *s, const idx_encoder *e)
{
    static float v[N_DOCS][DIM];
    for (int i = 0; i < N_DOCS; i++) {
        cr_assert(eq(int, idx_encoder_encode(e, s->doc[i], s->doc_len[i], v[i], NULL), CW_OK));
    }
    double sum = 0;
    for (int t = 0; t < TOPICS; t++) {
        char q[256];
        float qv[DIM];
        query_of(t, 0xf, q);
        cr_assert(eq(int, idx_encoder_encode(e, q, strlen(q), qv, NULL), CW_OK));
        double score[N_DOCS];
        for (int i = 0; i < N_DOCS; i++) {
            score[i] = 0;
            for (int j = 0; j < DIM; j++) {
                score[i] += (double)qv[j] * v[i][j];
            }
        }
        int hits = 0;
        for (int k = 0; k < 10; k++) {
            int best = 0;
            for (int i = 1; i < N_DOCS; i++) {
                best = score[i] > score[best] ? i : best;
            }
            hits += best / DOCS_PER == t;
            score[best] = -INFINITY;
        }
        sum += hits / 10.0;
    }
    return sum / TOPICS;
}

#define N_GOOD 240

/* Clicks: queries of 2-3 query words of topic t, each clicking a relevant document of
 * topic t (weight 1); then n_bad pairs clicking a document of topic t + 1 at bad_w. */
static double finetuned_precision(const sim *s, size_t n_bad, double bad_w, double *before)
{
    static char qtext[2 * N_GOOD][64];
    static idx_click_pair pairs[2 * N_GOOD];
    static const unsigned masks[10] = {0x3, 0x5, 0x6, 0x9, 0xa, 0xc, 0x7, 0xb, 0xd, 0xe};
    cw_rng r;
    cw_rng_seed(&r, 41);
    size_t n = 0;
    for (size_t i = 0; i < N_GOOD + n_bad; i++) {
        int t = (int)(i % TOPICS);
        bool bad = i >= N_GOOD;
        query_of(t, masks[cw_rng_below(&r, 10)], qtext[n]);
        int dt = bad ? (t + 1) % TOPICS : t;
        pairs[n] = (idx_click_pair){.query = qtext[n],
                                    .query_len = strlen(qtext[n]),
                                    .doc = (uint32_t)(dt * DOCS_PER + cw_rng_below(&r, DOCS_PER)),
                                    .weight = bad ? bad_w : 1.0};
        n++;
    }
    idx_encoder *e = NULL;
    char path[] = "/tmp/cw_finetune_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert(eq(int, idx_encoder_save(s->enc, path, NULL), CW_OK));
    cr_assert(eq(int, idx_encoder_load(path, &e, NULL), CW_OK));
    unlink(path);
    if (before) {
        *before = precision_at_10(s, e);
    }
    idx_train_opts o = idx_train_opts_default();
    o.batch = 16;
    o.epochs = 10;
    o.tau = 0.1;
    o.seed = 5;
    idx_train_stats st;
    cw_err err;
    int rc = idx_encoder_finetune(e, (const char *const *)s->doc, s->doc_len, N_DOCS, pairs, n, &o,
                                  &st, &err);
    cr_assert(eq(int, rc, CW_OK), "%s", err.msg);
    cr_expect(eq(u32, idx_encoder_cached_words(e), 0));
    double p = precision_at_10(s, e);
    idx_encoder_free(e);
    return p;
}

Test(idx_finetune, clicks_on_relevant_documents_teach_unseen_query_words, .timeout = 60)
{
    sim s;
    sim_make(&s);
    double before = 0;
    double good = finetuned_precision(&s, 0, 0, &before);
    /* Query words occur in no document: before, retrieval is at chance (1/8). */
    cr_expect(lt(dbl, before, 0.3), "before fine-tuning: P@10 %g", before);
    cr_expect(gt(dbl, good, 0.7), "after fine-tuning: P@10 %g (before %g)", good, before);
    /* As many wrong clicks (documents of the next topic): at weight 0 they only act as
     * in-batch negatives; at weight 1 they teach the wrong topic half the time. */
    double zero = finetuned_precision(&s, N_GOOD, 0.0, NULL);
    double one = finetuned_precision(&s, N_GOOD, 1.0, NULL);
    cr_expect(gt(dbl, zero, 0.7), "wrong clicks at weight 0: P@10 %g", zero);
    cr_expect(lt(dbl, one, zero - 0.2), "wrong clicks at weight 1: P@10 %g vs %g", one, zero);
    cr_log_info("P@10 before %.3f, after %.3f; with wrong clicks at weight 0 %.3f, 1 %.3f", before,
                good, zero, one);
    sim_free(&s);
}

Test(idx_finetune, bad_pairs_are_refused)
{
    sim s;
    sim_make(&s);
    idx_click_pair p[2] = {{"kaka", 4, 0, 1.0}, {"lolo", 4, 1, 1.0}};
    idx_train_opts o = idx_train_opts_default();
    cw_err err;
    cr_expect(eq(int,
                 idx_encoder_finetune(s.enc, (const char *const *)s.doc, s.doc_len, N_DOCS, p, 1,
                                      &o, NULL, &err),
                 CW_EINVAL));
    p[1].doc = N_DOCS;
    cr_expect(eq(int,
                 idx_encoder_finetune(s.enc, (const char *const *)s.doc, s.doc_len, N_DOCS, p, 2,
                                      &o, NULL, &err),
                 CW_EINVAL));
    cr_expect(ne(ptr, strstr(err.msg, "pair 1"), NULL), "%s", err.msg);
    p[1].doc = 1;
    p[0].weight = p[1].weight = 0;
    cr_expect(eq(int,
                 idx_encoder_finetune(s.enc, (const char *const *)s.doc, s.doc_len, N_DOCS, p, 2,
                                      &o, NULL, &err),
                 CW_EINVAL));
    p[0].weight = NAN;
    cr_expect(eq(int,
                 idx_encoder_finetune(s.enc, (const char *const *)s.doc, s.doc_len, N_DOCS, p, 2,
                                      &o, NULL, &err),
                 CW_EINVAL));
    sim_free(&s);
}
