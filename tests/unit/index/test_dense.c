/* Tests of the dense side of index/ (issue 6): encoder determinism, InfoNCE gradients
 * against finite differences, training resume, HNSW against the brute-force oracle,
 * corrupt files refused at open, fusion against hand-computed values. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/dense_int.h"

static idx_encoder_opts small_opts(uint64_t seed)
{
    idx_encoder_opts o = idx_encoder_opts_default();
    o.dim = 32;
    o.n_buckets = 1u << 12;
    o.seed = seed;
    return o;
}

static char *tmp_dir(void)
{
    char *d = strdup("/tmp/cw_dense_XXXXXX");
    cr_assert(mkdtemp(d) != NULL);
    return d;
}

Test(idx_encoder, same_seed_same_vectors_other_seed_differs)
{
    idx_encoder *a, *b, *c;
    idx_encoder_opts o = small_opts(7), o2 = small_opts(8);
    cr_assert(eq(int, idx_encoder_new(&o, &a, NULL), CW_OK));
    cr_assert(eq(int, idx_encoder_new(&o, &b, NULL), CW_OK));
    cr_assert(eq(int, idx_encoder_new(&o2, &c, NULL), CW_OK));
    const char *t = "Supersonic flow over a swept Wing, boundary-layer transition";
    float va[32], vb[32], vc[32], va2[32];
    cr_assert(eq(int, idx_encoder_encode(a, t, strlen(t), va, NULL), CW_OK));
    cr_assert(eq(int, idx_encoder_encode(b, t, strlen(t), vb, NULL), CW_OK));
    cr_assert(eq(int, idx_encoder_encode(c, t, strlen(t), vc, NULL), CW_OK));
    cr_assert(eq(int, idx_encoder_encode(a, t, strlen(t), va2, NULL), CW_OK));
    cr_assert(eq(int, memcmp(va, vb, sizeof va), 0));
    cr_assert(eq(int, memcmp(va, va2, sizeof va), 0));
    cr_expect(ne(int, memcmp(va, vc, sizeof va), 0));
    double n2 = 0;
    for (int j = 0; j < 32; j++) {
        n2 += (double)va[j] * va[j];
    }
    cr_expect(epsilon_eq(dbl, n2, 1.0, 1e-5));
    /* Case folding: the tokenizer lower-cases ASCII. */
    const char *u = "SUPERSONIC FLOW OVER A SWEPT WING, BOUNDARY-LAYER TRANSITION";
    cr_assert(eq(int, idx_encoder_encode(a, u, strlen(u), vb, NULL), CW_OK));
    cr_expect(eq(int, memcmp(va, vb, sizeof va), 0));
    idx_encoder_free(a);
    idx_encoder_free(b);
    idx_encoder_free(c);
}

Test(idx_encoder, text_without_words_encodes_to_zero)
{
    idx_encoder *a;
    idx_encoder_opts o = small_opts(1);
    cr_assert(eq(int, idx_encoder_new(&o, &a, NULL), CW_OK));
    float v[32];
    cr_assert(eq(int, idx_encoder_encode(a, " ,;- ", 5, v, NULL), CW_OK));
    for (int j = 0; j < 32; j++) {
        cr_assert(eq(flt, v[j], 0.0f));
    }
    idx_encoder_free(a);
}

Test(idx_encoder, bad_shape_is_rejected)
{
    idx_encoder *a = NULL;
    cw_err err;
    idx_encoder_opts o = small_opts(1);
    o.dim = IDX_DENSE_MAX_DIM + 1;
    cr_assert(eq(int, idx_encoder_new(&o, &a, &err), CW_ELIMIT));
    cr_expect(ne(ptr, strstr(err.msg, "dim 1025"), NULL), "%s", err.msg);
    o = small_opts(1);
    o.ngram_min = 4;
    o.ngram_max = 3;
    cr_assert(eq(int, idx_encoder_new(&o, &a, &err), CW_EINVAL));
    cr_expect(ne(ptr, strstr(err.msg, "n-gram range"), NULL), "%s", err.msg);
}

Test(idx_encoder, save_load_round_trip_and_corrupt_file)
{
    char *d = tmp_dir();
    char p[512];
    snprintf(p, sizeof p, "%s/dense.enc", d);
    idx_encoder *a, *b;
    idx_encoder_opts o = small_opts(3);
    cr_assert(eq(int, idx_encoder_new(&o, &a, NULL), CW_OK));
    cr_assert(eq(int, idx_encoder_save(a, p, NULL), CW_OK));
    cr_assert(eq(int, idx_encoder_load(p, &b, NULL), CW_OK));
    float va[32], vb[32];
    cr_assert(eq(int, idx_encoder_encode(a, "mach number", 11, va, NULL), CW_OK));
    cr_assert(eq(int, idx_encoder_encode(b, "mach number", 11, vb, NULL), CW_OK));
    cr_expect(eq(int, memcmp(va, vb, sizeof va), 0));
    idx_encoder_free(b);
    /* Flip one byte inside the embedding table. */
    FILE *f = fopen(p, "r+b");
    cr_assert(f != NULL);
    fseek(f, 4096, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 4096, SEEK_SET);
    fputc(c ^ 0x40, f);
    fclose(f);
    cw_err err;
    cr_assert(eq(int, idx_encoder_load(p, &b, &err), CW_ECORRUPT));
    cr_expect(ne(ptr, strstr(err.msg, "checksum mismatch in section 0"), NULL), "%s", err.msg);
    idx_encoder_free(a);
    cr_assert(eq(int, cw_rmtree(d, NULL), CW_OK));
    free(d);
}

/* ---- InfoNCE gradients ---------------------------------------------------------- */

static void random_unit(cw_rng *r, float *v, size_t d)
{
    double n2 = 0;
    for (size_t j = 0; j < d; j++) {
        v[j] = (float)cw_rng_normal(r);
        n2 += (double)v[j] * v[j];
    }
    for (size_t j = 0; j < d; j++) {
        v[j] = (float)(v[j] / sqrt(n2));
    }
}

Test(idx_infonce, gradient_matches_central_differences)
{
    enum { D = 8, NK = 6 };
    cw_rng r;
    cw_rng_seed(&r, 11);
    float q[D], keys[NK * D], gq[D], gk[NK * D], scratch[NK * D];
    random_unit(&r, q, D);
    for (int j = 0; j < NK; j++) {
        random_unit(&r, keys + j * D, D);
    }
    double tau = 0.5;
    double loss = idx_infonce(q, keys, NK, D, 2, tau, gq, gk);
    cr_assert(gt(dbl, loss, 0.0));
    /* h = 1e-3 on floats: truncation error O(h^2 / tau^3) ~ 1e-5, rounding ~ 1e-7 / h. */
    const float h = 1e-3f;
    for (int c = 0; c < D; c++) {
        float qp[D], qm[D];
        memcpy(qp, q, sizeof q);
        memcpy(qm, q, sizeof q);
        qp[c] += h;
        qm[c] -= h;
        double fd = (idx_infonce(qp, keys, NK, D, 2, tau, scratch, NULL) -
                     idx_infonce(qm, keys, NK, D, 2, tau, scratch, NULL)) /
                    (2.0 * h);
        cr_expect(epsilon_eq(dbl, gq[c], fd, 2e-3), "dq[%d] %g vs %g", c, gq[c], fd);
    }
    for (int i = 0; i < NK * D; i++) {
        float kp[NK * D], km[NK * D];
        memcpy(kp, keys, sizeof keys);
        memcpy(km, keys, sizeof keys);
        kp[i] += h;
        km[i] -= h;
        double fd = (idx_infonce(q, kp, NK, D, 2, tau, scratch, NULL) -
                     idx_infonce(q, km, NK, D, 2, tau, scratch, NULL)) /
                    (2.0 * h);
        cr_expect(epsilon_eq(dbl, gk[i], fd, 2e-3), "dk[%d] %g vs %g", i, gk[i], fd);
    }
}

Test(idx_infonce, batched_sgemm_form_matches_finite_differences)
{
    enum { B = 4, NQ = 8, D = 16 };
    cw_rng r;
    cw_rng_seed(&r, 5);
    float Q[B * D], K[B * D], U[NQ * D], dQ[B * D], dK[B * D], s[B * (B + NQ)];
    float t1[B * D], t2[B * D];
    for (int i = 0; i < B; i++) {
        random_unit(&r, Q + i * D, D);
        random_unit(&r, K + i * D, D);
    }
    for (int i = 0; i < NQ; i++) {
        random_unit(&r, U + i * D, D);
    }
    double tau = 0.2;
    double loss = dense_batch_infonce(Q, K, U, B, NQ, D, tau, dQ, dK, s);
    /* The mean of the per-query losses over [in-batch keys | queue] with label i. */
    double ref = 0;
    for (int i = 0; i < B; i++) {
        float keys[(B + NQ) * D], g[D];
        memcpy(keys, K, sizeof K);
        memcpy(keys + B * D, U, sizeof U);
        ref += idx_infonce(Q + i * D, keys, B + NQ, D, (size_t)i, tau, g, NULL) / B;
    }
    cr_assert(epsilon_eq(dbl, loss, ref, 1e-5));
    const float h = 1e-3f;
    for (int i = 0; i < B * D; i++) {
        float Qp[B * D], Qm[B * D], Kp[B * D], Km[B * D];
        memcpy(Qp, Q, sizeof Q);
        memcpy(Qm, Q, sizeof Q);
        Qp[i] += h;
        Qm[i] -= h;
        double fd = (dense_batch_infonce(Qp, K, U, B, NQ, D, tau, t1, t2, s) -
                     dense_batch_infonce(Qm, K, U, B, NQ, D, tau, t1, t2, s)) /
                    (2.0 * h);
        cr_expect(epsilon_eq(dbl, dQ[i], fd, 2e-3), "dQ[%d] %g vs %g", i, dQ[i], fd);
        memcpy(Kp, K, sizeof K);
        memcpy(Km, K, sizeof K);
        Kp[i] += h;
        Km[i] -= h;
        fd = (dense_batch_infonce(Q, Kp, U, B, NQ, D, tau, t1, t2, s) -
              dense_batch_infonce(Q, Km, U, B, NQ, D, tau, t1, t2, s)) /
             (2.0 * h);
        cr_expect(epsilon_eq(dbl, dK[i], fd, 2e-3), "dK[%d] %g vs %g", i, dK[i], fd);
    }
}

/* ---- training ------------------------------------------------------------------- */

/* 120 documents from 4 topics with disjoint vocabularies, plus shared filler words. */
typedef struct toy {
    char *text[120];
    size_t len[120];
} toy;

static void toy_make(toy *t)
{
    static const char *topics[4][6] = {
        {"shock", "supersonic", "mach", "nozzle", "wave", "compressible"},
        {"library", "catalog", "indexing", "retrieval", "citation", "journal"},
        {"heat", "conduction", "slab", "temperature", "thermal", "transfer"},
        {"buckling", "shell", "cylinder", "stress", "load", "plate"},
    };
    static const char *filler[4] = {"the", "of", "and", "study"};
    cw_rng r;
    cw_rng_seed(&r, 99);
    for (int i = 0; i < 120; i++) {
        cw_buf b = {0};
        for (int w = 0; w < 40; w++) {
            const char *word = cw_rng_bernoulli(&r, 0.3) ? filler[cw_rng_below(&r, 4)]
                                                         : topics[i % 4][cw_rng_below(&r, 6)];
            cr_assert(eq(int, cw_buf_printf(&b, "%s ", word), CW_OK));
        }
        t->text[i] = b.data;
        t->len[i] = b.len;
    }
}

static void toy_free(toy *t)
{
    for (int i = 0; i < 120; i++) {
        free(t->text[i]);
    }
}

static idx_train_opts toy_train_opts(idx_contrastive_mode mode, uint32_t epochs)
{
    idx_train_opts o = idx_train_opts_default();
    o.mode = mode;
    o.batch = 16;
    o.queue = 64;
    o.epochs = epochs;
    o.tau = 0.1;
    o.seed = 3;
    return o;
}

static double topic_margin(const idx_encoder *e, const toy *t)
{
    /* mean cosine within topics minus across topics over the first 40 documents */
    float v[40][32];
    for (int i = 0; i < 40; i++) {
        cr_assert(eq(int, idx_encoder_encode(e, t->text[i], t->len[i], v[i], NULL), CW_OK));
    }
    double in = 0, out = 0;
    int n_in = 0, n_out = 0;
    for (int i = 0; i < 40; i++) {
        for (int j = i + 1; j < 40; j++) {
            double s = 0;
            for (int c = 0; c < 32; c++) {
                s += (double)v[i][c] * v[j][c];
            }
            if (i % 4 == j % 4) {
                in += s;
                n_in++;
            } else {
                out += s;
                n_out++;
            }
        }
    }
    return in / n_in - out / n_out;
}

Test(idx_encoder_train, moco_and_simclr_lower_the_loss_and_separate_topics)
{
    toy t;
    toy_make(&t);
    idx_contrastive_mode modes[2] = {IDX_CONTRASTIVE_MOCO, IDX_CONTRASTIVE_SIMCLR};
    for (int m = 0; m < 2; m++) {
        idx_encoder *e;
        idx_encoder_opts eo = small_opts(1);
        cr_assert(eq(int, idx_encoder_new(&eo, &e, NULL), CW_OK));
        idx_train_opts o = toy_train_opts(modes[m], 30);
        idx_train_stats st;
        cw_err err;
        int rc = idx_encoder_train(e, (const char *const *)t.text, t.len, 120, &o, &st, &err);
        cr_assert(eq(int, rc, CW_OK), "%s", err.msg);
        cr_expect(lt(dbl, st.last_loss, st.first_loss), "mode %d: %g -> %g", m, st.first_loss,
                  st.last_loss);
        cr_expect(gt(dbl, topic_margin(e, &t), 0.2), "mode %d margin %g", m, topic_margin(e, &t));
        cr_expect(eq(u64, st.steps, 30 * (120 / 16)));
        idx_encoder_free(e);
    }
    toy_free(&t);
}

Test(idx_encoder_train, resumed_run_equals_uninterrupted_run)
{
    toy t;
    toy_make(&t);
    char *d = tmp_dir();
    char ck1[512], ck2[512];
    snprintf(ck1, sizeof ck1, "%s/a.ckpt", d);
    snprintf(ck2, sizeof ck2, "%s/b.ckpt", d);
    idx_encoder_opts eo = small_opts(1);
    idx_encoder *full, *part, *resumed;
    cr_assert(eq(int, idx_encoder_new(&eo, &full, NULL), CW_OK));
    cr_assert(eq(int, idx_encoder_new(&eo, &part, NULL), CW_OK));
    cr_assert(eq(int, idx_encoder_new(&eo, &resumed, NULL), CW_OK));
    idx_train_opts o = toy_train_opts(IDX_CONTRASTIVE_MOCO, 4);
    o.ckpt_path = ck1;
    cw_err err;
    cr_assert(eq(int,
                 idx_encoder_train(full, (const char *const *)t.text, t.len, 120, &o, NULL, &err),
                 CW_OK),
              "%s", err.msg);
    o.ckpt_path = ck2;
    o.epochs = 2;
    cr_assert(eq(int,
                 idx_encoder_train(part, (const char *const *)t.text, t.len, 120, &o, NULL, &err),
                 CW_OK),
              "%s", err.msg);
    o.epochs = 4;
    o.resume = true;
    idx_train_stats st;
    cr_assert(eq(int,
                 idx_encoder_train(resumed, (const char *const *)t.text, t.len, 120, &o, &st, &err),
                 CW_OK),
              "%s", err.msg);
    cr_expect(eq(u64, st.steps, 4 * (120 / 16)));
    size_t n = (size_t)eo.n_buckets * eo.dim;
    size_t diff = 0;
    for (size_t i = 0; i < n; i++) {
        diff += full->emb[i] != resumed->emb[i];
    }
    cr_expect(eq(sz, diff, (size_t)0));
    cr_expect(eq(int, memcmp(full->proj, resumed->proj, (size_t)eo.dim * eo.dim * 4), 0));
    /* A checkpoint of another configuration is refused. */
    o.batch = 8;
    idx_encoder *other;
    cr_assert(eq(int, idx_encoder_new(&eo, &other, NULL), CW_OK));
    cr_assert(eq(int,
                 idx_encoder_train(other, (const char *const *)t.text, t.len, 120, &o, NULL, &err),
                 CW_ECORRUPT));
    cr_expect(ne(ptr, strstr(err.msg, "another configuration"), NULL), "%s", err.msg);
    idx_encoder_free(other);
    idx_encoder_free(full);
    idx_encoder_free(part);
    idx_encoder_free(resumed);
    cr_assert(eq(int, cw_rmtree(d, NULL), CW_OK));
    free(d);
    toy_free(&t);
}

Test(idx_encoder_train, interrupt_saves_a_checkpoint_and_returns_eintr)
{
    toy t;
    toy_make(&t);
    char *d = tmp_dir();
    char ck[512];
    snprintf(ck, sizeof ck, "%s/c.ckpt", d);
    idx_encoder_opts eo = small_opts(1);
    idx_encoder *e;
    cr_assert(eq(int, idx_encoder_new(&eo, &e, NULL), CW_OK));
    idx_train_opts o = toy_train_opts(IDX_CONTRASTIVE_SIMCLR, 3);
    o.ckpt_path = ck;
    cw_interrupt_set(true);
    cw_err err;
    cr_assert(eq(int, idx_encoder_train(e, (const char *const *)t.text, t.len, 120, &o, NULL, &err),
                 CW_EINTR));
    cw_interrupt_set(false);
    cr_expect(ne(ptr, strstr(err.msg, "interrupted at step 1 of 21"), NULL), "%s", err.msg);
    cr_expect(eq(int, access(ck, F_OK), 0));
    idx_encoder_free(e);
    cr_assert(eq(int, cw_rmtree(d, NULL), CW_OK));
    free(d);
    toy_free(&t);
}

Test(idx_encoder_train, too_few_documents_and_bad_options)
{
    idx_encoder_opts eo = small_opts(1);
    idx_encoder *e;
    cr_assert(eq(int, idx_encoder_new(&eo, &e, NULL), CW_OK));
    const char *texts[2] = {"a b", "c d"};
    size_t lens[2] = {3, 3};
    idx_train_opts o = idx_train_opts_default();
    cw_err err;
    cr_expect(eq(int, idx_encoder_train(e, texts, lens, 1, &o, NULL, &err), CW_EINVAL));
    cr_expect(ne(ptr, strstr(err.msg, "at least 2 documents"), NULL), "%s", err.msg);
    o.tau = 0;
    cr_expect(eq(int, idx_encoder_train(e, texts, lens, 2, &o, NULL, &err), CW_EINVAL));
    o = idx_train_opts_default();
    o.batch = 2;
    o.queue = 5;
    cr_expect(eq(int, idx_encoder_train(e, texts, lens, 2, &o, NULL, &err), CW_EINVAL));
    cr_expect(ne(ptr, strstr(err.msg, "not a multiple"), NULL), "%s", err.msg);
    idx_encoder_free(e);
}

/* ---- HNSW ------------------------------------------------------------------------ */

static float *clustered(uint32_t n, uint32_t d, uint64_t seed)
{
    cw_rng r;
    cw_rng_seed(&r, seed);
    float *c = malloc(16 * (size_t)d * sizeof(float));
    float *v = malloc((size_t)n * d * sizeof(float));
    for (int k = 0; k < 16; k++) {
        random_unit(&r, c + (size_t)k * d, d);
    }
    for (uint32_t i = 0; i < n; i++) {
        const float *cc = c + (size_t)cw_rng_below(&r, 16) * d;
        for (uint32_t j = 0; j < d; j++) {
            v[(size_t)i * d + j] = cc[j] + 0.4f * (float)cw_rng_normal(&r) / sqrtf((float)d);
        }
        random_unit(&r, v + (size_t)i * d, 0);
        double n2 = 0;
        for (uint32_t j = 0; j < d; j++) {
            n2 += (double)v[(size_t)i * d + j] * v[(size_t)i * d + j];
        }
        for (uint32_t j = 0; j < d; j++) {
            v[(size_t)i * d + j] = (float)(v[(size_t)i * d + j] / sqrt(n2));
        }
    }
    free(c);
    return v;
}

typedef struct hnsw_case {
    uint32_t dim;
    uint32_t m;
} hnsw_case;

ParameterizedTestParameters(idx_hnsw, recall_against_brute_force_oracle)
{
    static hnsw_case cases[] = {{32, 8}, {20, 16}, {64, 32}};
    return cr_make_param_array(hnsw_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(hnsw_case *c, idx_hnsw, recall_against_brute_force_oracle)
{
    const uint32_t n = 3000, nq = 100, k = 10;
    uint64_t seed = 1234 + c->dim;
    float *v = clustered(n + nq, c->dim, seed);
    char *d = tmp_dir();
    char p[512];
    snprintf(p, sizeof p, "%s/dense.hnsw", d);
    idx_hnsw_opts ho = idx_hnsw_opts_default();
    ho.m = c->m;
    cw_err err;
    cr_assert(eq(int, idx_hnsw_build(v, n, c->dim, &ho, p, &err), CW_OK), "%s", err.msg);
    idx_hnsw *h;
    cr_assert(eq(int, idx_hnsw_open(p, &h, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(u32, idx_hnsw_n(h), n));
    idx_hnsw_searcher *s = idx_hnsw_searcher_new(h);
    cr_assert(s != NULL);
    size_t found = 0;
    for (uint32_t qi = 0; qi < nq; qi++) {
        const float *q = v + (size_t)(n + qi) * c->dim;
        /* Oracle: every score in double, sorted. */
        double best[10];
        uint32_t best_id[10];
        for (uint32_t t = 0; t < k; t++) {
            best[t] = -INFINITY;
            best_id[t] = UINT32_MAX;
        }
        for (uint32_t i = 0; i < n; i++) {
            double sc = 0;
            for (uint32_t j = 0; j < c->dim; j++) {
                sc += (double)q[j] * v[(size_t)i * c->dim + j];
            }
            if (sc > best[k - 1]) {
                uint32_t t = k - 1;
                while (t > 0 && sc > best[t - 1]) {
                    best[t] = best[t - 1];
                    best_id[t] = best_id[t - 1];
                    t--;
                }
                best[t] = sc;
                best_id[t] = i;
            }
        }
        idx_hit ex[10], ap[10];
        size_t n_ex, n_ap;
        cr_assert(eq(int, idx_hnsw_search(h, NULL, q, k, 0, true, ex, &n_ex, NULL), CW_OK));
        cr_assert(eq(sz, n_ex, (size_t)k));
        for (uint32_t t = 0; t < k; t++) {
            /* float vs double sums can swap near-ties; the scores must agree to 1e-5. */
            cr_expect(epsilon_eq(dbl, ex[t].score, best[t], 1e-5), "seed %llu q %u rank %u",
                      (unsigned long long)seed, qi, t);
        }
        cr_assert(eq(int, idx_hnsw_search(h, s, q, k, 64, false, ap, &n_ap, NULL), CW_OK));
        cr_assert(eq(sz, n_ap, (size_t)k));
        for (uint32_t t = 0; t < k; t++) {
            if (t > 0) {
                cr_assert(ge(dbl, ap[t - 1].score, ap[t].score));
            }
            for (uint32_t u = 0; u < k; u++) {
                found += ap[t].doc == best_id[u];
            }
        }
    }
    double recall = (double)found / (nq * k);
    cr_expect(ge(dbl, recall, 0.95), "recall@10 %g (seed %llu)", recall, (unsigned long long)seed);
    idx_hnsw_searcher_free(s);
    idx_hnsw_close(h);
    cr_assert(eq(int, cw_rmtree(d, NULL), CW_OK));
    free(d);
    free(v);
}

Test(idx_hnsw, corrupt_truncated_and_missing_files_are_detected_at_open)
{
    const uint32_t n = 500, dim = 16;
    float *v = clustered(n, dim, 77);
    char *d = tmp_dir();
    char p[512];
    snprintf(p, sizeof p, "%s/dense.hnsw", d);
    idx_hnsw_opts ho = idx_hnsw_opts_default();
    ho.m = 8;
    cr_assert(eq(int, idx_hnsw_build(v, n, dim, &ho, p, NULL), CW_OK));
    idx_hnsw *h;
    cw_err err;
    cr_assert(eq(int, idx_hnsw_open(p, &h, &err), CW_OK), "%s", err.msg);
    uint64_t bytes = idx_hnsw_bytes(h);
    idx_hnsw_close(h);
    /* One flipped bit near the end: inside the last vector. */
    FILE *f = fopen(p, "r+b");
    cr_assert(f != NULL);
    fseek(f, (long)bytes - 8, SEEK_SET);
    int c = fgetc(f);
    fseek(f, (long)bytes - 8, SEEK_SET);
    fputc(c ^ 1, f);
    fclose(f);
    cr_assert(eq(int, idx_hnsw_open(p, &h, &err), CW_ECORRUPT));
    cr_expect(ne(ptr, strstr(err.msg, "checksum mismatch in section 3"), NULL), "%s", err.msg);
    cr_expect(ne(ptr, strstr(err.msg, "dense.hnsw: byte "), NULL), "%s", err.msg);
    cr_assert(eq(int, truncate(p, (off_t)(bytes / 2)), 0));
    cr_assert(eq(int, idx_hnsw_open(p, &h, &err), CW_ECORRUPT));
    cr_expect(ne(ptr, strstr(err.msg, "outside the"), NULL), "%s", err.msg);
    cr_assert(eq(int, truncate(p, 10), 0));
    cr_assert(eq(int, idx_hnsw_open(p, &h, &err), CW_ECORRUPT));
    cr_expect(ne(ptr, strstr(err.msg, "truncated"), NULL), "%s", err.msg);
    unlink(p);
    cr_assert(eq(int, idx_hnsw_open(p, &h, &err), CW_ENOTFOUND));
    /* An encoder file is not an HNSW file. */
    idx_encoder *e;
    idx_encoder_opts eo = small_opts(1);
    cr_assert(eq(int, idx_encoder_new(&eo, &e, NULL), CW_OK));
    cr_assert(eq(int, idx_encoder_save(e, p, NULL), CW_OK));
    idx_encoder_free(e);
    cr_assert(eq(int, idx_hnsw_open(p, &h, &err), CW_ECORRUPT));
    cr_expect(ne(ptr, strstr(err.msg, "bad magic"), NULL), "%s", err.msg);
    cr_assert(eq(int, cw_rmtree(d, NULL), CW_OK));
    free(d);
    free(v);
}

Test(idx_hnsw, search_rejects_bad_k_and_ef)
{
    float *v = clustered(50, 16, 3);
    char *d = tmp_dir();
    char p[512];
    snprintf(p, sizeof p, "%s/dense.hnsw", d);
    idx_hnsw_opts ho = idx_hnsw_opts_default();
    cr_assert(eq(int, idx_hnsw_build(v, 50, 16, &ho, p, NULL), CW_OK));
    idx_hnsw *h;
    cr_assert(eq(int, idx_hnsw_open(p, &h, NULL), CW_OK));
    idx_hnsw_searcher *s = idx_hnsw_searcher_new(h);
    idx_hit hits[60];
    size_t nh;
    cw_err err;
    cr_expect(eq(int, idx_hnsw_search(h, s, v, 0, 10, false, hits, &nh, &err), CW_EINVAL));
    cr_expect(ne(ptr, strstr(err.msg, "k 0 outside"), NULL), "%s", err.msg);
    cr_expect(eq(int, idx_hnsw_search(h, s, v, 10, IDX_DENSE_MAX_EF + 1, false, hits, &nh, &err),
                 CW_EINVAL));
    /* k larger than the collection returns all of it. */
    cr_assert(eq(int, idx_hnsw_search(h, s, v, 60, 100, false, hits, &nh, NULL), CW_OK));
    cr_expect(eq(sz, nh, (size_t)50));
    cr_expect(eq(u32, hits[0].doc, 0));
    idx_hnsw_searcher_free(s);
    idx_hnsw_close(h);
    cr_assert(eq(int, cw_rmtree(d, NULL), CW_OK));
    free(d);
    free(v);
}

/* ---- fusion ------------------------------------------------------------------------ */

Test(idx_fuse, rrf_sums_reciprocal_ranks_of_both_runs)
{
    idx_hit b[3] = {{7, 12.0}, {3, 9.0}, {5, 1.0}};
    idx_hit d[3] = {{3, 0.9}, {8, 0.8}, {7, 0.1}};
    idx_hybrid_opts o = idx_hybrid_opts_default();
    idx_hit out[4];
    size_t n;
    cr_assert(eq(int, idx_fuse(b, 3, d, 3, &o, 4, out, &n, NULL), CW_OK));
    cr_assert(eq(sz, n, (size_t)4));
    /* doc 3: 1/62 + 1/61; doc 7: 1/61 + 1/63; doc 8: 1/62; doc 5: 1/63. */
    cr_expect(eq(u32, out[0].doc, 3));
    cr_expect(epsilon_eq(dbl, out[0].score, 1.0 / 62 + 1.0 / 61, 1e-12));
    cr_expect(eq(u32, out[1].doc, 7));
    cr_expect(epsilon_eq(dbl, out[1].score, 1.0 / 61 + 1.0 / 63, 1e-12));
    cr_expect(eq(u32, out[2].doc, 8));
    cr_expect(eq(u32, out[3].doc, 5));
}

Test(idx_fuse, weighted_sum_of_minmax_scores)
{
    idx_hit b[3] = {{7, 12.0}, {3, 9.0}, {5, 1.0}};
    idx_hit d[3] = {{3, 0.9}, {8, 0.8}, {7, 0.1}};
    idx_hybrid_opts o = idx_hybrid_opts_default();
    o.fusion = IDX_FUSION_WEIGHTED;
    o.w_dense = 0.25;
    idx_hit out[4];
    size_t n;
    cr_assert(eq(int, idx_fuse(b, 3, d, 3, &o, 4, out, &n, NULL), CW_OK));
    /* bm25 norm: 7 -> 1, 3 -> 8/11, 5 -> 0; dense norm: 3 -> 1, 8 -> 7/8, 7 -> 0.
     * doc 3: .75*8/11 + .25 = 0.79545; doc 7: .75; doc 8: .21875; doc 5: 0. */
    cr_expect(eq(u32, out[0].doc, 3));
    cr_expect(epsilon_eq(dbl, out[0].score, 0.75 * 8.0 / 11.0 + 0.25, 1e-12));
    cr_expect(eq(u32, out[1].doc, 7));
    cr_expect(epsilon_eq(dbl, out[1].score, 0.75, 1e-12));
    cr_expect(eq(u32, out[2].doc, 8));
    cr_expect(epsilon_eq(dbl, out[2].score, 0.25 * 7.0 / 8.0, 1e-12));
    cr_expect(eq(u32, out[3].doc, 5));
    o.w_dense = 1.5;
    cw_err err;
    cr_expect(eq(int, idx_fuse(b, 3, d, 3, &o, 4, out, &n, &err), CW_EINVAL));
    cr_expect(ne(ptr, strstr(err.msg, "w_dense 1.5"), NULL), "%s", err.msg);
}

/* ---- the dense side of an index directory ------------------------------------------- */

static const char *corpus_lines[] = {
    "{\"id\":\"d0\",\"title\":\"shock waves\",\"text\":\"supersonic shock wave in a nozzle\"}",
    "{\"id\":\"d1\",\"title\":\"heat\",\"text\":\"heat conduction in a composite slab\"}",
    "{\"id\":\"d2\",\"title\":\"buckling\",\"text\":\"buckling of thin cylindrical shells\"}",
    "{\"id\":\"d3\",\"title\":\"nozzle flow\",\"text\":\"compressible flow through a nozzle\"}",
    "{\"id\":\"d4\",\"title\":\"library\",\"text\":\"catalog indexing for library retrieval\"}",
    "{\"id\":\"d5\",\"title\":\"plates\",\"text\":\"stress in loaded plates and shells\"}",
};

/* Index + encoder (idf only) + HNSW in a temp dir, as `causeway embed train/build` do. */
static char *dense_dir(void)
{
    char *d = tmp_dir();
    char p[512], ix_dir[512];
    snprintf(p, sizeof p, "%s/corpus.jsonl", d);
    FILE *f = fopen(p, "w");
    cr_assert(f != NULL);
    for (size_t i = 0; i < CW_ARRAY_LEN(corpus_lines); i++) {
        fprintf(f, "%s\n", corpus_lines[i]);
    }
    fclose(f);
    snprintf(ix_dir, sizeof ix_dir, "%s/ix", d);
    idx_build_opts bo = idx_build_opts_default();
    cw_err err;
    cr_assert(eq(int, idx_build(p, ix_dir, &bo, NULL, &err), CW_OK), "%s", err.msg);
    const char *texts[CW_ARRAY_LEN(corpus_lines)];
    size_t lens[CW_ARRAY_LEN(corpus_lines)];
    idx_index *ix;
    cr_assert(eq(int, idx_index_open(ix_dir, &ix, &err), CW_OK), "%s", err.msg);
    for (uint32_t i = 0; i < idx_index_n_docs(ix); i++) {
        idx_doc doc;
        cr_assert(eq(int, idx_doc_get(ix, i, &doc, NULL), CW_OK));
        texts[i] = doc.text;
        lens[i] = doc.text_len;
    }
    idx_encoder *e;
    idx_encoder_opts eo = small_opts(1);
    cr_assert(eq(int, idx_encoder_new(&eo, &e, NULL), CW_OK));
    idx_train_opts to = idx_train_opts_default();
    to.epochs = 0;
    to.queue = 0;
    cr_assert(eq(int, idx_encoder_train(e, texts, lens, 6, &to, NULL, &err), CW_OK), "%s", err.msg);
    float v[6 * 32];
    for (int i = 0; i < 6; i++) {
        cr_assert(eq(int, idx_encoder_encode(e, texts[i], lens[i], v + i * 32, NULL), CW_OK));
    }
    idx_index_close(ix);
    snprintf(p, sizeof p, "%s/dense.enc", ix_dir);
    cr_assert(eq(int, idx_encoder_save(e, p, NULL), CW_OK));
    idx_encoder_free(e);
    snprintf(p, sizeof p, "%s/dense.hnsw", ix_dir);
    idx_hnsw_opts ho = idx_hnsw_opts_default();
    cr_assert(eq(int, idx_hnsw_build(v, 6, 32, &ho, p, NULL), CW_OK));
    return d;
}

Test(idx_dense, open_cosine_and_hybrid_search_over_an_index)
{
    char *d = dense_dir();
    char ix_dir[512];
    snprintf(ix_dir, sizeof ix_dir, "%s/ix", d);
    idx_index *ix;
    idx_dense *dn;
    cw_err err;
    cr_assert(eq(int, idx_index_open(ix_dir, &ix, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(int, idx_dense_open(ix_dir, &dn, &err), CW_OK), "%s", err.msg);
    const char *qt = "nozzle flow";
    float q[32];
    cr_assert(eq(int, idx_encoder_encode(idx_dense_encoder(dn), qt, strlen(qt), q, NULL), CW_OK));
    /* The ranker feature is the dot product with the stored unit vector. */
    double c3, ref = 0;
    cr_assert(eq(int, idx_dense_cosine(dn, q, 3, &c3, NULL), CW_OK));
    const float *v3 = idx_hnsw_vector(idx_dense_hnsw(dn), 3);
    for (int j = 0; j < 32; j++) {
        ref += (double)q[j] * v3[j];
    }
    cr_expect(epsilon_eq(dbl, c3, ref, 1e-12));
    cr_expect(gt(dbl, c3, 0.3), "nozzle flow vs d3: %g", c3);
    cr_expect(eq(int, idx_dense_cosine(dn, q, 6, &c3, &err), CW_ENOTFOUND));
    cr_expect(ne(ptr, strstr(err.msg, "document 6 out of 6"), NULL), "%s", err.msg);
    /* Hybrid = RRF of the BM25 and the exact dense run, recomputed here. */
    idx_analyzer *an;
    idx_query *pq;
    cr_assert(eq(int, idx_index_analyzer(ix, &an, NULL), CW_OK));
    cr_assert(eq(int, idx_query_parse(ix, an, qt, strlen(qt), &pq, NULL), CW_OK));
    idx_search_opts so = idx_search_opts_default();
    so.k = 6;
    idx_hit bm[6], de[6], want[6], got[6];
    size_t nb, nd, nw, ng;
    cr_assert(eq(int, idx_search(ix, pq, &so, bm, &nb, NULL, NULL), CW_OK));
    idx_hnsw_searcher *s = idx_hnsw_searcher_new(idx_dense_hnsw(dn));
    cr_assert(eq(int, idx_hnsw_search(idx_dense_hnsw(dn), s, q, 6, 6, true, de, &nd, NULL), CW_OK));
    idx_hybrid_opts ho = idx_hybrid_opts_default();
    ho.exact = true;
    cr_assert(eq(int, idx_fuse(bm, nb, de, nd, &ho, 6, want, &nw, NULL), CW_OK));
    so.k = 4;
    cr_assert(
        eq(int, idx_hybrid_search(ix, dn, s, pq, qt, strlen(qt), &so, &ho, got, &ng, &err), CW_OK),
        "%s", err.msg);
    cr_assert(eq(sz, ng, (size_t)4));
    for (size_t i = 0; i < ng; i++) {
        cr_expect(eq(u32, got[i].doc, want[i].doc));
        cr_expect(epsilon_eq(dbl, got[i].score, want[i].score, 1e-12));
    }
    /* Paging: offset 2 returns ranks 3.. of the same fused list. */
    so.offset = 2;
    so.k = 2;
    cr_assert(
        eq(int, idx_hybrid_search(ix, dn, s, pq, qt, strlen(qt), &so, &ho, got, &ng, NULL), CW_OK));
    cr_assert(eq(sz, ng, (size_t)2));
    cr_expect(eq(u32, got[0].doc, want[2].doc));
    idx_hnsw_searcher_free(s);
    idx_query_free(pq);
    idx_analyzer_free(an);
    idx_dense_close(dn);
    idx_index_close(ix);
    cr_assert(eq(int, cw_rmtree(d, NULL), CW_OK));
    free(d);
}

Test(idx_dense, missing_files_name_the_command_to_run)
{
    char *d = dense_dir();
    char p[512], ix_dir[512];
    snprintf(ix_dir, sizeof ix_dir, "%s/ix", d);
    snprintf(p, sizeof p, "%s/dense.hnsw", ix_dir);
    cr_assert(eq(int, unlink(p), 0));
    idx_dense *dn = NULL;
    cw_err err;
    cr_assert(eq(int, idx_dense_open(ix_dir, &dn, &err), CW_ENOTFOUND));
    cr_expect(ne(ptr, strstr(err.msg, "causeway embed build"), NULL), "%s", err.msg);
    snprintf(p, sizeof p, "%s/dense.enc", ix_dir);
    cr_assert(eq(int, unlink(p), 0));
    cr_assert(eq(int, idx_dense_open(ix_dir, &dn, &err), CW_ENOTFOUND));
    cr_expect(ne(ptr, strstr(err.msg, "causeway embed train"), NULL), "%s", err.msg);
    cr_assert(eq(int, cw_rmtree(d, NULL), CW_OK));
    free(d);
}

Test(idx_encoder_train, lsa_initialisation_separates_topics_and_is_interruptible)
{
    toy t;
    toy_make(&t);
    idx_encoder *e, *r;
    idx_encoder_opts eo = small_opts(1);
    cr_assert(eq(int, idx_encoder_new(&eo, &e, NULL), CW_OK));
    cr_assert(eq(int, idx_encoder_new(&eo, &r, NULL), CW_OK));
    idx_train_opts o = toy_train_opts(IDX_CONTRASTIVE_MOCO, 0);
    cw_err err;
    /* Random projection (idf only) as the baseline. */
    cr_assert(eq(int, idx_encoder_train(r, (const char *const *)t.text, t.len, 120, &o, NULL, &err),
                 CW_OK),
              "%s", err.msg);
    o.lsa_init = true;
    cr_assert(eq(int, idx_encoder_train(e, (const char *const *)t.text, t.len, 120, &o, NULL, &err),
                 CW_OK),
              "%s", err.msg);
    double m_lsa = topic_margin(e, &t), m_rand = topic_margin(r, &t);
    /* Four topics with disjoint words: both separate them; LSA must not lose that (the
     * random projection is already near its best on such an easy corpus). */
    cr_expect(gt(dbl, m_lsa, 0.6), "LSA margin %g (random projection %g)", m_lsa, m_rand);
    /* A different result from the random projection: the table was replaced. */
    cr_expect(ne(int, memcmp(e->emb, r->emb, (size_t)eo.n_buckets * eo.dim * 4), 0));
    cw_interrupt_set(true);
    cr_assert(eq(int, idx_encoder_train(e, (const char *const *)t.text, t.len, 120, &o, NULL, &err),
                 CW_EINTR));
    cw_interrupt_set(false);
    cr_expect(ne(ptr, strstr(err.msg, "during the LSA"), NULL), "%s", err.msg);
    idx_encoder_free(e);
    idx_encoder_free(r);
    toy_free(&t);
}
