/* index/dense_train.c: unsupervised contrastive pre-training of the dense encoder
 * (issue 6, METHODS.md section 7): Contriever-style views (random crop + word deletion)
 * of each document, InfoNCE with temperature, SimCLR in-batch negatives or a MoCo
 * momentum key encoder with a queue, cblas_sgemm for the similarity matrices,
 * row-wise Adagrad on the hashed embedding rows and Adam on the projection,
 * resumable checkpoints. Input: the indexed corpus' texts; output: the encoder. */
#include "config.h"

#include <assert.h>
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/dense_int.h"

#define CKPT_MAGIC "CWDCKPT1"

idx_train_opts idx_train_opts_default(void)
{
    return (idx_train_opts){.mode = IDX_CONTRASTIVE_MOCO,
                            .batch = 64,
                            .epochs = 10,
                            .tau = 0.05,
                            .momentum = 0.995,
                            .queue = 4096,
                            .lr = 0.05,
                            .lr_proj = 1e-3,
                            .crop_min = 0.05,
                            .crop_max = 0.5,
                            .p_delete = 0.1,
                            .seed = 1,
                            .ckpt_path = NULL,
                            .ckpt_every = 0,
                            .ckpt_secs = 300,
                            .resume = false};
}

/* ---- InfoNCE ------------------------------------------------------------------ */

double idx_infonce(const float *q, const float *keys, size_t n_keys, size_t dim, size_t pos,
                   double tau, float *grad_q, float *grad_k)
{
    /* L = -log softmax(s)_pos with s_j = q.k_j / tau (van den Oord et al. 2018, eq. 4;
     * MoCo's form, METHODS.md section 7). dL/ds_j = p_j - [j = pos]. */
    double *s = n_keys > 0 && pos < n_keys ? malloc(n_keys * sizeof(double)) : NULL;
    if (!s) {
        return NAN;
    }
    double mx = -INFINITY;
    for (size_t j = 0; j < n_keys; j++) {
        double dot = 0;
        for (size_t c = 0; c < dim; c++) {
            dot += (double)q[c] * keys[j * dim + c];
        }
        s[j] = dot / tau;
        mx = s[j] > mx ? s[j] : mx;
    }
    double z = 0;
    for (size_t j = 0; j < n_keys; j++) {
        z += exp(s[j] - mx);
    }
    double loss = -(s[pos] - mx - log(z));
    memset(grad_q, 0, dim * sizeof(float));
    for (size_t j = 0; j < n_keys; j++) {
        double g = (exp(s[j] - mx) / z - (j == pos)) / tau;
        for (size_t c = 0; c < dim; c++) {
            grad_q[c] += (float)(g * keys[j * dim + c]);
            if (grad_k) {
                grad_k[j * dim + c] = (float)(g * q[c]);
            }
        }
    }
    free(s);
    return loss;
}

double dense_batch_infonce(const float *Q, const float *K, const float *U, size_t B, size_t n_queue,
                           size_t d, double tau, float *dQ, float *dK, float *scratch)
{
    return dense_batch_infonce_w(Q, K, U, B, n_queue, d, tau, NULL, dQ, dK, scratch);
}

double dense_batch_infonce_w(const float *Q, const float *K, const float *U, size_t B,
                             size_t n_queue, size_t d, double tau, const float *row_w, float *dQ,
                             float *dK, float *scratch)
{
    size_t w = B + n_queue;
    double sum_w = 0;
    for (size_t i = 0; i < B; i++) {
        sum_w += row_w ? row_w[i] : 1.0;
    }
    if (!(sum_w > 0)) {
        memset(dQ, 0, B * d * sizeof(float));
        if (dK) {
            memset(dK, 0, B * d * sizeof(float));
        }
        return 0;
    }
    float inv_tau = (float)(1.0 / tau);
    /* Logits [Q K^T | Q U^T] / tau: row i's positive is column i (in-batch negatives as in
     * SimCLR, queue negatives as in MoCo). */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)B, (int)d, inv_tau, Q, (int)d,
                K, (int)d, 0.0f, scratch, (int)w);
    if (n_queue > 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)n_queue, (int)d, inv_tau,
                    Q, (int)d, U, (int)d, 0.0f, scratch + B, (int)w);
    }
    double loss = 0;
    for (size_t i = 0; i < B; i++) {
        float *row = scratch + i * w;
        double mx = -INFINITY;
        for (size_t j = 0; j < w; j++) {
            mx = row[j] > mx ? row[j] : mx;
        }
        double z = 0;
        for (size_t j = 0; j < w; j++) {
            z += exp(row[j] - mx);
        }
        /* Weighted mean sum_i w_i CE_i / sum_i w_i (w = 1: the plain mean); row i becomes
         * dL/dlogits = w_i (softmax - onehot) / sum w. */
        double wi = row_w ? row_w[i] : 1.0;
        loss += wi * -(row[i] - mx - log(z));
        for (size_t j = 0; j < w; j++) {
            row[j] = (float)(wi * (exp(row[j] - mx) / z - (j == i)) / sum_w);
        }
    }
    /* dQ = G_in K / tau + G_queue U / tau; dK = G_in^T Q / tau (logits are s = q.k / tau). */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)d, (int)B, inv_tau, scratch,
                (int)w, K, (int)d, 0.0f, dQ, (int)d);
    if (n_queue > 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)d, (int)n_queue,
                    inv_tau, scratch + B, (int)w, U, (int)d, 1.0f, dQ, (int)d);
    }
    if (dK) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)B, (int)d, (int)B, inv_tau,
                    scratch, (int)w, Q, (int)d, 0.0f, dK, (int)d);
    }
    return loss / sum_w;
}

/* ---- corpus preparation --------------------------------------------------------- */

typedef struct vocab {
    uint64_t *keys; /* word hash, 0 = empty */
    uint32_t *vals; /* vocabulary id */
    size_t cap;     /* power of two */
    size_t n;
    uint64_t *hash;     /* per id */
    uint32_t *word_off; /* per id: offset of the word bytes in `bytes` */
    uint32_t *word_len;
    cw_buf bytes;
    size_t id_cap;
} vocab;

static void vocab_fini(vocab *v)
{
    free(v->keys);
    free(v->vals);
    free(v->hash);
    free(v->word_off);
    free(v->word_len);
    cw_buf_fini(&v->bytes);
}

static int vocab_grow(vocab *v)
{
    size_t cap = v->cap ? v->cap * 2 : 1u << 14;
    uint64_t *keys = calloc(cap, sizeof *keys);
    uint32_t *vals = malloc(cap * sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return CW_ENOMEM;
    }
    for (size_t i = 0; i < v->cap; i++) {
        if (v->keys[i]) {
            size_t j = v->keys[i] & (cap - 1);
            while (keys[j]) {
                j = (j + 1) & (cap - 1);
            }
            keys[j] = v->keys[i];
            vals[j] = v->vals[i];
        }
    }
    free(v->keys);
    free(v->vals);
    v->keys = keys;
    v->vals = vals;
    v->cap = cap;
    return CW_OK;
}

/* Returns the id of word (adding it), or -1 on ENOMEM. */
static int64_t vocab_id(vocab *v, const char *word, uint32_t len, uint64_t h)
{
    if (2 * (v->n + 1) > v->cap && vocab_grow(v) != CW_OK) {
        return -1;
    }
    size_t j = h & (v->cap - 1);
    while (v->keys[j]) {
        if (v->keys[j] == h) {
            return v->vals[j];
        }
        j = (j + 1) & (v->cap - 1);
    }
    if (v->n == v->id_cap) {
        size_t nc = v->id_cap ? v->id_cap * 2 : 4096;
        uint64_t *hh = realloc(v->hash, nc * sizeof *hh);
        if (!hh) {
            return -1;
        }
        v->hash = hh;
        uint32_t *o = realloc(v->word_off, nc * sizeof *o);
        if (!o) {
            return -1;
        }
        v->word_off = o;
        uint32_t *l = realloc(v->word_len, nc * sizeof *l);
        if (!l) {
            return -1;
        }
        v->word_len = l;
        v->id_cap = nc;
    }
    if (v->bytes.len + len > UINT32_MAX) {
        return -1;
    }
    v->word_off[v->n] = (uint32_t)v->bytes.len;
    v->word_len[v->n] = len;
    v->hash[v->n] = h;
    if (cw_buf_append(&v->bytes, word, len) != CW_OK) {
        return -1;
    }
    v->keys[j] = h;
    v->vals[j] = (uint32_t)v->n;
    return (int64_t)v->n++;
}

typedef struct corpus {
    vocab voc;
    uint32_t *tokens; /* all documents' word ids, concatenated */
    size_t n_tokens, cap_tokens;
    size_t *doc_off; /* n_docs + 1 */
    size_t n_docs;
    /* per vocabulary id: its unigram + n-gram features (bigrams are added per view) */
    uint32_t *feat_off; /* n_vocab + 1 */
    uint32_t *feat_bucket;
    float *feat_weight;
    float *word_idf; /* per id */
    int oom;
} corpus;

static void corpus_fini(corpus *c)
{
    vocab_fini(&c->voc);
    free(c->tokens);
    free(c->doc_off);
    free(c->feat_off);
    free(c->feat_bucket);
    free(c->feat_weight);
    free(c->word_idf);
}

static void add_word(void *ctx, const char *word, uint32_t len)
{
    corpus *c = ctx;
    if (c->oom) {
        return;
    }
    uint64_t h = dense_word_hash(word, len);
    h = h ? h : 1;
    int64_t id = vocab_id(&c->voc, word, len, h);
    if (id < 0) {
        c->oom = 1;
        return;
    }
    if (c->n_tokens == c->cap_tokens) {
        size_t nc = c->cap_tokens ? c->cap_tokens * 2 : 1u << 16;
        uint32_t *t = realloc(c->tokens, nc * sizeof *t);
        if (!t) {
            c->oom = 1;
            return;
        }
        c->tokens = t;
        c->cap_tokens = nc;
    }
    c->tokens[c->n_tokens++] = (uint32_t)id;
}

typedef struct feat_sink {
    uint32_t *bucket;
    float *weight;
    size_t n, cap;
    int oom;
} feat_sink;

static void sink_feat(void *ctx, uint32_t bucket, float weight)
{
    feat_sink *s = ctx;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 4096;
        uint32_t *b = realloc(s->bucket, nc * sizeof *b);
        float *w = b ? realloc(s->weight, nc * sizeof *w) : NULL;
        if (b) {
            s->bucket = b;
        }
        if (!w) {
            s->oom = 1;
            return;
        }
        s->weight = w;
        s->cap = nc;
    }
    s->bucket[s->n] = bucket;
    s->weight[s->n] = weight;
    s->n++;
}

/* The unigram-bucket idf (BM25's, always > 0: METHODS.md section 2) of c's documents
 * into enc->idf. */
static int corpus_fit_idf(const corpus *c, idx_encoder *enc, cw_err *err)
{
    size_t n_docs = c->n_docs;
    uint32_t nb = enc->o.n_buckets;
    uint32_t *df = calloc(nb, sizeof *df);
    uint32_t *stamp = malloc(nb * sizeof *stamp);
    if (!df || !stamp) {
        free(df);
        free(stamp);
        return cw_err_set(err, CW_ENOMEM, "embed-train: out of memory");
    }
    memset(stamp, 0xff, nb * sizeof *stamp);
    for (size_t i = 0; i < n_docs; i++) {
        for (size_t t = c->doc_off[i]; t < c->doc_off[i + 1]; t++) {
            uint32_t b = dense_unigram_bucket(enc, c->voc.hash[c->tokens[t]]);
            if (stamp[b] != (uint32_t)i) {
                stamp[b] = (uint32_t)i;
                df[b]++;
            }
        }
    }
    double n = (double)n_docs;
    for (uint32_t b = 0; b < nb; b++) {
        enc->idf[b] = (float)log(1.0 + (n - df[b] + 0.5) / (df[b] + 0.5));
    }
    free(df);
    free(stamp);
    return CW_OK;
}

/* Tokenises the corpus, fits the idf (corpus_fit_idf) when fit_idf and precomputes every
 * word's features with enc's idf. */
static int corpus_prepare(corpus *c, idx_encoder *enc, const char *const *texts, const size_t *lens,
                          size_t n_docs, bool fit_idf, cw_err *err)
{
    memset(c, 0, sizeof *c);
    c->n_docs = n_docs;
    c->doc_off = malloc((n_docs + 1) * sizeof *c->doc_off);
    if (!c->doc_off) {
        return cw_err_set(err, CW_ENOMEM, "embed-train: out of memory");
    }
    for (size_t i = 0; i < n_docs; i++) {
        c->doc_off[i] = c->n_tokens;
        dense_tokenize(texts[i], lens[i], add_word, c);
        if (c->oom) {
            return cw_err_set(err, CW_ENOMEM, "embed-train: out of memory tokenising");
        }
    }
    c->doc_off[n_docs] = c->n_tokens;
    size_t nv = c->voc.n;
    if (fit_idf) {
        int rc = corpus_fit_idf(c, enc, err);
        if (rc != CW_OK) {
            return rc;
        }
    }
    c->feat_off = malloc((nv + 1) * sizeof *c->feat_off);
    c->word_idf = malloc((nv + 1) * sizeof *c->word_idf);
    if (!c->feat_off || !c->word_idf) {
        return cw_err_set(err, CW_ENOMEM, "embed-train: out of memory");
    }
    feat_sink s = {0};
    for (size_t v = 0; v < nv; v++) {
        c->feat_off[v] = (uint32_t)s.n;
        uint64_t h = c->voc.hash[v];
        c->word_idf[v] = enc->idf[dense_unigram_bucket(enc, h)];
        dense_word_features(enc, c->voc.bytes.data + c->voc.word_off[v], c->voc.word_len[v], h, 0,
                            0, sink_feat, &s);
        if (s.oom) {
            free(s.bucket);
            free(s.weight);
            return cw_err_set(err, CW_ENOMEM, "embed-train: out of memory");
        }
    }
    c->feat_off[nv] = (uint32_t)s.n;
    c->feat_bucket = s.bucket;
    c->feat_weight = s.weight;
    return CW_OK;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Gives enc the corpus's IDX_DENSE_CACHE_WORDS most frequent words (saved with it, and
 * cached at load): in a Zipfian corpus they are most of any query's words. */
static int corpus_words_to_encoder(idx_encoder *enc, const corpus *c, cw_err *err)
{
    size_t nv = c->voc.n, n = CW_MIN(nv, (size_t)IDX_DENSE_CACHE_WORDS);
    uint32_t *count = calloc(nv ? nv : 1, sizeof *count);
    uint64_t *ids = malloc((nv ? nv : 1) * sizeof *ids);
    const char **words = malloc((n ? n : 1) * sizeof *words);
    uint32_t *lens = malloc((n ? n : 1) * sizeof *lens);
    int rc = CW_OK;
    if (!count || !ids || !words || !lens) {
        rc = cw_err_set(err, CW_ENOMEM, "embed-train: out of memory");
        goto done;
    }
    for (size_t t = 0; t < c->n_tokens; t++) {
        count[c->tokens[t]]++;
    }
    // Key (UINT32_MAX - count, id): ascending = most frequent first, ties by id.
    for (size_t v = 0; v < nv; v++) {
        ids[v] = (uint64_t)(UINT32_MAX - count[v]) << 32 | v;
    }
    qsort(ids, nv, sizeof *ids, u64_cmp);
    for (size_t i = 0; i < n; i++) {
        uint32_t id = (uint32_t)ids[i];
        words[i] = c->voc.bytes.data + c->voc.word_off[id];
        lens[i] = c->voc.word_len[id];
    }
    rc = dense_words_set(enc, words, lens, n, err);
done:
    free(count);
    free(ids);
    free(words);
    free(lens);
    return rc;
}

/* ---- LSA initialisation ------------------------------------------------------------ */

/* Every document's full feature list (no augmentation), the rows of X. */
static int doc_features(const idx_encoder *enc, const corpus *c, size_t doc, feat_sink *s)
{
    uint64_t prev = 0;
    float prev_idf = 0;
    s->n = 0;
    for (size_t t = c->doc_off[doc]; t < c->doc_off[doc + 1]; t++) {
        uint32_t w = c->tokens[t];
        for (uint32_t f = c->feat_off[w]; f < c->feat_off[w + 1]; f++) {
            sink_feat(s, c->feat_bucket[f], c->feat_weight[f]);
        }
        uint64_t h = c->voc.hash[w];
        if (enc->o.bigrams && prev != 0) {
            sink_feat(s, dense_bigram_bucket(enc, prev, h), 0.5f * (c->word_idf[w] + prev_idf));
        }
        prev = h;
        prev_idf = c->word_idf[w];
    }
    if (s->oom) {
        return CW_ENOMEM;
    }
    double sw = 0;
    for (size_t f = 0; f < s->n; f++) {
        sw += s->weight[f];
    }
    for (size_t f = 0; f < s->n && sw > 0; f++) {
        s->weight[f] = (float)(s->weight[f] / sw);
    }
    return CW_OK;
}

/* Y (n_docs x l) = X M, with M (n_buckets x l), X's rows from doc_features. */
static int x_times(const idx_encoder *enc, const corpus *c, const float *M, uint32_t l, float *Y,
                   feat_sink *s)
{
    for (size_t i = 0; i < c->n_docs; i++) {
        if (i % 1024 == 0 && cw_interrupted()) {
            return CW_EINTR;
        }
        if (doc_features(enc, c, i, s) != CW_OK) {
            return CW_ENOMEM;
        }
        float *y = Y + i * l;
        memset(y, 0, l * sizeof(float));
        for (size_t f = 0; f < s->n; f++) {
            const float *m = M + (size_t)s->bucket[f] * l;
            for (uint32_t j = 0; j < l; j++) {
                y[j] += s->weight[f] * m[j];
            }
        }
    }
    return CW_OK;
}

/* Z (n_buckets x l) = X^T Y. */
static int xt_times(const idx_encoder *enc, const corpus *c, const float *Y, uint32_t l, float *Z,
                    feat_sink *s)
{
    memset(Z, 0, (size_t)enc->o.n_buckets * l * sizeof(float));
    for (size_t i = 0; i < c->n_docs; i++) {
        if (i % 1024 == 0 && cw_interrupted()) {
            return CW_EINTR;
        }
        if (doc_features(enc, c, i, s) != CW_OK) {
            return CW_ENOMEM;
        }
        const float *y = Y + i * l;
        for (size_t f = 0; f < s->n; f++) {
            float *z = Z + (size_t)s->bucket[f] * l;
            for (uint32_t j = 0; j < l; j++) {
                z[j] += s->weight[f] * y[j];
            }
        }
    }
    return CW_OK;
}

static int lsa_fail(int rc, cw_err *err)
{
    if (rc == CW_EINTR) {
        return cw_err_set(err, CW_EINTR, "embed-train: interrupted during the LSA initialisation");
    }
    return cw_err_set(err, CW_ENOMEM, "embed-train: out of memory");
}

/* Orthonormal basis of Y's columns in place (Householder QR). */
static int orthonormalise(float *Y, size_t n, uint32_t l, float *tau, cw_err *err)
{
    lapack_int info =
        LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, (lapack_int)n, (lapack_int)l, Y, (lapack_int)l, tau);
    assert(info >= 0);
    if (info == 0) {
        info = LAPACKE_sorgqr(LAPACK_ROW_MAJOR, (lapack_int)n, (lapack_int)l, (lapack_int)l, Y,
                              (lapack_int)l, tau);
        assert(info >= 0);
    }
    if (info > 0) {
        return cw_err_set(err, CW_ENUMERIC, "embed-train: LSA QR failed (info %d)", (int)info);
    }
    return CW_OK;
}

/* Sets the embedding table to the top-d right singular vectors of X (documents x hashed
 * features, rows = the pooling weights), so that before contrastive training a document
 * encodes to its LSA vector U_d S_d (Deerwester et al. 1990). Randomized SVD of Halko,
 * Martinsson & Tropp (SIAM Review 2011), Algorithms 4.4 (power iterations with
 * re-orthonormalisation) and 5.1, with oversampling p = 10; the small SVD of B = Q^T X
 * through the eigenvectors of B B^T (LAPACKE_ssyev). Rows are rescaled to an rms entry
 * of 1, the scale of the Gaussian initialisation the learning rates assume. */
static int lsa_init(idx_encoder *enc, const corpus *c, uint32_t power_iters, uint64_t seed,
                    cw_err *err)
{
    uint32_t d = enc->o.dim, nb = enc->o.n_buckets;
    size_t n = c->n_docs;
    uint32_t l = (uint32_t)CW_MIN((size_t)d + 10, n);
    if (l < d) {
        return cw_err_set(err, CW_EINVAL,
                          "embed-train: LSA needs at least dim = %u documents, got %zu", d, n);
    }
    float *Om = malloc((size_t)nb * l * sizeof(float));
    float *Y = malloc(n * l * sizeof(float));
    float *tau = malloc(l * sizeof(float));
    float *C = malloc((size_t)l * l * sizeof(float));
    float *ev = malloc(l * sizeof(float));
    feat_sink s = {0};
    int rc = CW_OK;
    if (!Om || !Y || !tau || !C || !ev) {
        rc = cw_err_set(err, CW_ENOMEM, "embed-train: out of memory for LSA (%u x %u)", nb, l);
        goto done;
    }
    cw_rng r;
    cw_rng_seed_stream(&r, seed, 0x15a);
    for (size_t i = 0; i < (size_t)nb * l; i++) {
        Om[i] = (float)cw_rng_normal(&r);
    }
    rc = x_times(enc, c, Om, l, Y, &s);
    if (rc != CW_OK) {
        rc = lsa_fail(rc, err);
        goto done;
    }
    for (uint32_t it = 0; it < power_iters; it++) {
        rc = orthonormalise(Y, n, l, tau, err);
        if (rc != CW_OK) {
            goto done;
        }
        rc = xt_times(enc, c, Y, l, Om, &s);
        if (rc == CW_OK) {
            rc = x_times(enc, c, Om, l, Y, &s);
        }
        if (rc != CW_OK) {
            rc = lsa_fail(rc, err);
            goto done;
        }
    }
    rc = orthonormalise(Y, n, l, tau, err);
    if (rc != CW_OK) {
        goto done;
    }
    /* Bt = X^T Q (nb x l), C = Bt^T Bt = B B^T, eigenpairs ascending. */
    rc = xt_times(enc, c, Y, l, Om, &s);
    if (rc != CW_OK) {
        rc = lsa_fail(rc, err);
        goto done;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)l, (int)l, (int)nb, 1.0f, Om, (int)l,
                Om, (int)l, 0.0f, C, (int)l);
    lapack_int info =
        LAPACKE_ssyev(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)l, C, (lapack_int)l, ev);
    assert(info >= 0);
    if (info > 0) {
        rc = cw_err_set(err, CW_ENUMERIC, "embed-train: LSA eigensolver did not converge (%d)",
                        (int)info);
        goto done;
    }
    /* V_j = Bt w_j / s_j for the d largest s_j = sqrt(eigenvalue). */
    double sum2 = 0;
    size_t n_rows = 0;
    for (uint32_t b = 0; b < nb; b++) {
        const float *bt = Om + (size_t)b * l;
        float *row = enc->emb + (size_t)b * d;
        double r2 = 0;
        for (uint32_t j = 0; j < d; j++) {
            uint32_t col = l - 1 - j;
            double sv = sqrt(ev[col] > 0 ? ev[col] : 0);
            double v = 0;
            for (uint32_t t = 0; t < l; t++) {
                v += (double)bt[t] * C[(size_t)t * l + col];
            }
            row[j] = sv > 0 ? (float)(v / sv) : 0.0f;
            r2 += (double)row[j] * row[j];
        }
        if (r2 > 0) {
            sum2 += r2;
            n_rows++;
        }
    }
    float scale = n_rows ? (float)(1.0 / sqrt(sum2 / ((double)n_rows * d))) : 1.0f;
    for (size_t i = 0; i < (size_t)nb * d; i++) {
        enc->emb[i] *= scale;
    }
done:
    free(Om);
    free(Y);
    free(tau);
    free(C);
    free(ev);
    free(s.bucket);
    free(s.weight);
    return rc;
}

/* ---- training state ------------------------------------------------------------- */

/* Loss figures of a training run for idx_train_stats: the mean of its first 20 steps
 * and of its last 20 (a ring). */
typedef struct loss_track {
    double first_sum, ring[20];
    uint64_t n_steps;
} loss_track;

static void loss_track_add(loss_track *lt, double loss)
{
    if (lt->n_steps < 20) {
        lt->first_sum += loss;
    }
    lt->ring[lt->n_steps % 20] = loss;
    lt->n_steps++;
}

/* Fills stats for a run of lt->n_steps steps of B documents (or pairs) each that took
 * seconds; steps is the step count reported (a resumed run counts earlier ones too). */
static void loss_track_stats(const loss_track *lt, uint64_t steps, uint32_t B, double secs,
                             idx_train_stats *stats)
{
    size_t n = (size_t)CW_MIN(lt->n_steps, (uint64_t)20);
    double sum_last = 0;
    for (size_t i = 0; i < n; i++) {
        sum_last += lt->ring[i];
    }
    stats->steps = steps;
    stats->first_loss = n ? lt->first_sum / (double)n : 0;
    stats->last_loss = n ? sum_last / (double)n : 0;
    stats->seconds = secs;
    stats->docs_per_sec = secs > 0 ? (double)lt->n_steps * B / secs : 0;
}

typedef struct trainer {
    idx_encoder *enc;
    idx_train_opts o;
    uint32_t d, nb, B, nq;
    float *key_emb, *key_proj; /* MoCo key encoder (NULL in SimCLR mode) */
    uint64_t *last;            /* per row: steps whose momentum update key_emb[r] holds */
    float *acc;                /* row-wise Adagrad accumulators */
    float *adam_m, *adam_v;    /* Adam moments of the projection */
    float *queue;              /* nq x d ring of keys */
    uint64_t queue_pos;
    uint64_t step;
    /* per-step scratch */
    feat_sink views;     /* features of the 2B views, concatenated */
    size_t *view_off;    /* 2B + 1 */
    float *H, *Z;        /* 2B x d pooled vectors, outputs */
    float *norm;         /* 2B */
    float *dZ, *dH, *dP; /* 2B x d, 2B x d, d x d */
    float *logits;       /* B x (B + nq) */
    int32_t *slot;       /* nb: row -> compact gradient slot, -1 none */
    uint32_t *touched;
    float *grad; /* compact row gradients */
    size_t n_touched, cap_touched;
} trainer;

static void trainer_fini(trainer *t)
{
    free(t->key_emb);
    free(t->key_proj);
    free(t->last);
    free(t->acc);
    free(t->adam_m);
    free(t->adam_v);
    free(t->queue);
    free(t->views.bucket);
    free(t->views.weight);
    free(t->view_off);
    free(t->H);
    free(t->Z);
    free(t->norm);
    free(t->dZ);
    free(t->dH);
    free(t->dP);
    free(t->logits);
    free(t->slot);
    free(t->touched);
    free(t->grad);
}

static void random_unit(cw_rng *rng, float *v, uint32_t d)
{
    double n2 = 0;
    for (uint32_t j = 0; j < d; j++) {
        v[j] = (float)cw_rng_normal(rng);
        n2 += (double)v[j] * v[j];
    }
    float inv = (float)(1.0 / sqrt(n2));
    for (uint32_t j = 0; j < d; j++) {
        v[j] *= inv;
    }
}

static int trainer_init(trainer *t, idx_encoder *enc, const idx_train_opts *o, size_t n_docs,
                        cw_err *err)
{
    memset(t, 0, sizeof *t);
    t->enc = enc;
    t->o = *o;
    t->d = enc->o.dim;
    t->nb = enc->o.n_buckets;
    t->B = (uint32_t)CW_MIN((size_t)o->batch, n_docs);
    bool moco = o->mode == IDX_CONTRASTIVE_MOCO;
    t->nq = moco ? o->queue : 0;
    size_t d = t->d, nb = t->nb, V = 2 * (size_t)t->B;
    if (moco) {
        t->key_emb = malloc(nb * d * sizeof(float));
        t->key_proj = malloc(d * d * sizeof(float));
        t->last = calloc(nb, sizeof *t->last);
        t->queue = malloc((size_t)t->nq * d * sizeof(float) + sizeof(float));
    }
    t->acc = calloc(nb, sizeof *t->acc);
    t->adam_m = calloc(d * d, sizeof(float));
    t->adam_v = calloc(d * d, sizeof(float));
    t->view_off = malloc((V + 1) * sizeof *t->view_off);
    t->H = malloc(V * d * sizeof(float));
    t->Z = malloc(V * d * sizeof(float));
    t->norm = malloc(V * sizeof(float));
    t->dZ = malloc(V * d * sizeof(float));
    t->dH = malloc(V * d * sizeof(float));
    t->dP = malloc(d * d * sizeof(float));
    t->logits = malloc((size_t)t->B * (t->B + t->nq) * sizeof(float));
    t->slot = malloc(nb * sizeof *t->slot);
    if ((moco && (!t->key_emb || !t->key_proj || !t->last || !t->queue)) || !t->acc || !t->adam_m ||
        !t->adam_v || !t->view_off || !t->H || !t->Z || !t->norm || !t->dZ || !t->dH || !t->dP ||
        !t->logits || !t->slot) {
        return cw_err_set(err, CW_ENOMEM, "embed-train: out of memory for the training state");
    }
    memset(t->slot, 0xff, nb * sizeof *t->slot);
    if (moco) {
        memcpy(t->key_emb, enc->emb, nb * d * sizeof(float));
        memcpy(t->key_proj, enc->proj, d * d * sizeof(float));
        /* The queue starts as random unit vectors (METHODS.md section 7). */
        cw_rng rng;
        cw_rng_seed_stream(&rng, o->seed, 0x9e3779b9ull);
        for (uint32_t i = 0; i < t->nq; i++) {
            random_unit(&rng, t->queue + (size_t)i * d, t->d);
        }
    }
    return CW_OK;
}

/* Brings key row r up to date with `step` completed steps. The query row was constant
 * since last[r], so k steps of k <- m k + (1 - m) theta collapse to
 * k <- theta + m^k (k - theta): the MoCo update (He et al. 2020, eq. 2) applied lazily,
 * exactly, to rows the batch uses instead of the whole table every step. */
static void key_sync(trainer *t, uint32_t r)
{
    uint64_t k = t->step - t->last[r];
    if (k == 0) {
        return;
    }
    float f = (float)pow(t->o.momentum, (double)k);
    float *kr = t->key_emb + (size_t)r * t->d;
    const float *qr = t->enc->emb + (size_t)r * t->d;
    for (uint32_t j = 0; j < t->d; j++) {
        kr[j] = qr[j] + f * (kr[j] - qr[j]);
    }
    t->last[r] = t->step;
}

/* One augmented view of document doc (Izacard et al. 2022, section 3.2): a random
 * crop of crop_min..crop_max of its words, then each word deleted with p_delete
 * (at least one kept). Appends its features to t->views. */
static void make_view(trainer *t, const corpus *c, size_t doc, cw_rng *rng)
{
    size_t b = c->doc_off[doc], n = c->doc_off[doc + 1] - b;
    if (n == 0) {
        return;
    }
    double frac = t->o.crop_min + (t->o.crop_max - t->o.crop_min) * cw_rng_uniform(rng);
    size_t len = (size_t)llround(frac * (double)n);
    len = CW_MAX(len, (size_t)1);
    len = CW_MIN(len, n);
    size_t start = (size_t)cw_rng_below(rng, n - len + 1);
    uint64_t prev = 0;
    float prev_idf = 0;
    size_t kept = 0;
    for (size_t i = 0; i < len; i++) {
        bool last_chance = kept == 0 && i + 1 == len;
        if (!last_chance && cw_rng_bernoulli(rng, t->o.p_delete)) {
            continue;
        }
        kept++;
        uint32_t w = c->tokens[b + start + i];
        for (uint32_t f = c->feat_off[w]; f < c->feat_off[w + 1]; f++) {
            sink_feat(&t->views, c->feat_bucket[f], c->feat_weight[f]);
        }
        uint64_t h = c->voc.hash[w];
        if (t->enc->o.bigrams && prev != 0) {
            sink_feat(&t->views, dense_bigram_bucket(t->enc, prev, h),
                      0.5f * (c->word_idf[w] + prev_idf));
        }
        prev = h;
        prev_idf = c->word_idf[w];
    }
}

static float *grad_row(trainer *t, uint32_t r)
{
    if (t->slot[r] < 0) {
        if (t->n_touched == t->cap_touched) {
            size_t nc = t->cap_touched ? t->cap_touched * 2 : 8192;
            uint32_t *tt = realloc(t->touched, nc * sizeof *tt);
            float *g = tt ? realloc(t->grad, nc * t->d * sizeof(float)) : NULL;
            if (tt) {
                t->touched = tt;
            }
            if (!g) {
                return NULL;
            }
            t->grad = g;
            t->cap_touched = nc;
        }
        t->slot[r] = (int32_t)t->n_touched;
        t->touched[t->n_touched] = r;
        memset(t->grad + t->n_touched * t->d, 0, t->d * sizeof(float));
        t->n_touched++;
    }
    return t->grad + (size_t)t->slot[r] * t->d;
}

/* One optimisation step: query views of corpus documents docs[0..B), key views of
 * docs[B..2B) (pre-training passes each document twice; fine-tuning a query and its
 * clicked document); row_w weighs the B InfoNCE rows (NULL = equal). Returns CW_OK and
 * the loss. */
static int train_step(trainer *t, const corpus *c, const uint32_t *docs, const float *row_w,
                      cw_rng *rng, double *loss_out, cw_err *err)
{
    uint32_t B = t->B, d = t->d;
    size_t V = 2 * (size_t)B;
    bool moco = t->key_emb != NULL;
    idx_encoder *enc = t->enc;
    t->views.n = 0;
    for (size_t v = 0; v < V; v++) {
        t->view_off[v] = t->views.n;
        make_view(t, c, docs[v], rng);
        if (t->views.oom) {
            return cw_err_set(err, CW_ENOMEM, "embed-train: out of memory");
        }
    }
    t->view_off[V] = t->views.n;
    if (moco) {
        for (size_t f = t->view_off[0]; f < t->view_off[V]; f++) {
            key_sync(t, t->views.bucket[f]);
        }
    }
    /* Forward: views 0..B-1 are queries, B..2B-1 keys. */
    for (size_t v = 0; v < V; v++) {
        bool key = v >= B && moco;
        size_t o = t->view_off[v];
        t->norm[v] = dense_pool_project(key ? t->key_emb : enc->emb, key ? t->key_proj : enc->proj,
                                        d, t->views.bucket + o, t->views.weight + o,
                                        t->view_off[v + 1] - o, t->H + v * d, t->Z + v * d);
    }
    const float *Q = t->Z, *K = t->Z + (size_t)B * d;
    float *dQ = t->dZ, *dK = moco ? NULL : t->dZ + (size_t)B * d;
    double loss =
        dense_batch_infonce_w(Q, K, t->queue, B, t->nq, d, t->o.tau, row_w, dQ, dK, t->logits);
    if (!isfinite(loss)) {
        return cw_err_set(err, CW_ENUMERIC, "embed-train: loss is not finite at step %llu",
                          (unsigned long long)t->step);
    }
    size_t Vg = moco ? B : V;
    /* Through the normalisation out = z/|z|: dz = (dout - out (out.dout)) / |z|. */
    for (size_t v = 0; v < Vg; v++) {
        float *g = t->dZ + v * d;
        const float *z = t->Z + v * d;
        float nz = t->norm[v];
        if (nz <= 0) {
            memset(g, 0, d * sizeof(float));
            continue;
        }
        double dot = 0;
        for (uint32_t j = 0; j < d; j++) {
            dot += (double)g[j] * z[j];
        }
        for (uint32_t j = 0; j < d; j++) {
            g[j] = (float)((g[j] - z[j] * dot) / nz);
        }
    }
    /* z = P h: dP = dZ^T H, dH = dZ P. */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)d, (int)Vg, 1.0f, t->dZ,
                (int)d, t->H, (int)d, 0.0f, t->dP, (int)d);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Vg, (int)d, (int)d, 1.0f, t->dZ,
                (int)d, enc->proj, (int)d, 0.0f, t->dH, (int)d);
    /* h = sum_f w_f e_f / sum_f w_f: de_f += (w_f / sum w) dh. */
    for (size_t v = 0; v < Vg; v++) {
        size_t a = t->view_off[v], e = t->view_off[v + 1];
        double sw = 0;
        for (size_t f = a; f < e; f++) {
            sw += t->views.weight[f];
        }
        if (sw <= 0) {
            continue;
        }
        const float *dh = t->dH + v * d;
        for (size_t f = a; f < e; f++) {
            float *g = grad_row(t, t->views.bucket[f]);
            if (!g) {
                return cw_err_set(err, CW_ENOMEM, "embed-train: out of memory");
            }
            float s = (float)(t->views.weight[f] / sw);
            for (uint32_t j = 0; j < d; j++) {
                g[j] += s * dh[j];
            }
        }
    }
    /* Row-wise Adagrad (one accumulator per row, as for sparse embedding tables in
     * Gupta et al. 2014 / TF's "row-wise Adagrad"): acc += mean(g^2), e -= lr g / sqrt(acc). */
    for (size_t i = 0; i < t->n_touched; i++) {
        uint32_t r = t->touched[i];
        float *g = t->grad + i * d;
        double g2 = 0;
        for (uint32_t j = 0; j < d; j++) {
            g2 += (double)g[j] * g[j];
        }
        t->acc[r] += (float)(g2 / d);
        float step = (float)(t->o.lr / (sqrt(t->acc[r]) + 1e-10));
        float *row = enc->emb + (size_t)r * d;
        for (uint32_t j = 0; j < d; j++) {
            row[j] -= step * g[j];
        }
        t->slot[r] = -1;
    }
    /* Adam (Kingma & Ba 2015, Algorithm 1: beta1 0.9, beta2 0.999, eps 1e-8) on P. */
    double b1 = 0.9, b2 = 0.999, tt = (double)(t->step + 1);
    double c1 = 1 - pow(b1, tt), c2 = 1 - pow(b2, tt);
    for (size_t i = 0; i < (size_t)d * d; i++) {
        double g = t->dP[i];
        t->adam_m[i] = (float)(b1 * t->adam_m[i] + (1 - b1) * g);
        t->adam_v[i] = (float)(b2 * t->adam_v[i] + (1 - b2) * g * g);
        enc->proj[i] -=
            (float)(t->o.lr_proj * (t->adam_m[i] / c1) / (sqrt(t->adam_v[i] / c2) + 1e-8));
    }
    t->step++;
    if (moco) {
        /* Momentum update of the key encoder for the changed rows and P (He et al. 2020,
         * eq. 2); the other rows follow lazily in key_sync. */
        float m = (float)t->o.momentum;
        for (size_t i = 0; i < t->n_touched; i++) {
            uint32_t r = t->touched[i];
            float *kr = t->key_emb + (size_t)r * d;
            const float *qr = enc->emb + (size_t)r * d;
            for (uint32_t j = 0; j < d; j++) {
                kr[j] = m * kr[j] + (1 - m) * qr[j];
            }
            t->last[r] = t->step;
        }
        for (size_t i = 0; i < (size_t)d * d; i++) {
            t->key_proj[i] = m * t->key_proj[i] + (1 - m) * enc->proj[i];
        }
        /* Enqueue this batch's keys, dropping the oldest. */
        for (uint32_t i = 0; i < B && t->nq > 0; i++) {
            memcpy(t->queue + (size_t)(t->queue_pos % t->nq) * d, K + (size_t)i * d,
                   d * sizeof(float));
            t->queue_pos++;
        }
    }
    t->n_touched = 0;
    *loss_out = loss;
    return CW_OK;
}

/* ---- checkpoints ---------------------------------------------------------------- */

static void ckpt_meta(const trainer *t, size_t n_docs, uint64_t meta[DENSE_N_META])
{
    const idx_encoder_opts *e = &t->enc->o;
    uint64_t m[DENSE_N_META] = {e->dim,
                                e->n_buckets,
                                e->ngram_min,
                                e->ngram_max,
                                e->bigrams,
                                e->seed,
                                (uint64_t)t->o.mode,
                                t->B,
                                t->nq,
                                t->o.seed,
                                n_docs,
                                t->step,
                                t->queue_pos};
    memcpy(meta, m, sizeof m);
}

static int ckpt_save(const trainer *t, size_t n_docs, cw_err *err)
{
    uint64_t meta[DENSE_N_META];
    ckpt_meta(t, n_docs, meta);
    size_t d = t->d, nb = t->nb;
    bool moco = t->key_emb != NULL;
    float dummy = 0;
    uint64_t zero8 = 0;
    dense_section s[9] = {
        {t->enc->emb, nb * d * 4},
        {t->enc->proj, d * d * 4},
        {t->enc->idf, nb * 4},
        {t->acc, nb * 4},
        {t->adam_m, d * d * 4},
        {t->adam_v, d * d * 4},
        {moco ? (const void *)t->key_emb : &dummy, moco ? nb * d * 4 : 0},
        {moco ? (const void *)t->key_proj : &dummy, moco ? d * d * 4 : 0},
        {moco ? (const void *)t->last : &zero8, moco ? nb * 8 : 0},
    };
    int rc = dense_file_write(t->o.ckpt_path, CKPT_MAGIC, meta, s, 9, err);
    if (rc == CW_OK && moco) {
        char qpath[4096];
        snprintf(qpath, sizeof qpath, "%s.queue", t->o.ckpt_path);
        dense_section qs = {t->queue, (uint64_t)t->nq * d * 4};
        rc = dense_file_write(qpath, CKPT_MAGIC, meta, &qs, 1, err);
    }
    return rc;
}

/* Restores the state if the checkpoint exists. *found tells whether it did. */
static int ckpt_load(trainer *t, size_t n_docs, bool *found, cw_err *err)
{
    *found = false;
    if (access(t->o.ckpt_path, F_OK) != 0) {
        return CW_OK;
    }
    dense_map m, mq = {0};
    int rc = dense_file_map(t->o.ckpt_path, CKPT_MAGIC, 9, &m, err);
    if (rc != CW_OK) {
        return rc;
    }
    uint64_t want[DENSE_N_META];
    ckpt_meta(t, n_docs, want);
    bool moco = t->key_emb != NULL;
    size_t d = t->d, nb = t->nb;
    if (memcmp(want, m.meta, 11 * sizeof(uint64_t)) != 0) {
        rc = cw_err_set(err, CW_ECORRUPT,
                        "%s: checkpoint of another configuration (dim, buckets, n-grams, mode, "
                        "batch, queue, seeds or number of documents differ)",
                        t->o.ckpt_path);
        goto done;
    }
    uint64_t sizes[9] = {nb * d * 4,
                         d * d * 4,
                         nb * 4,
                         nb * 4,
                         d * d * 4,
                         d * d * 4,
                         moco ? nb * d * 4 : 0,
                         moco ? d * d * 4 : 0,
                         moco ? nb * 8 : 0};
    for (int i = 0; i < 9; i++) {
        if (m.sect[i].bytes != sizes[i]) {
            rc = cw_err_set(err, CW_ECORRUPT, "%s: section %d has %llu bytes, expected %llu",
                            t->o.ckpt_path, i, (unsigned long long)m.sect[i].bytes,
                            (unsigned long long)sizes[i]);
            goto done;
        }
    }
    void *dst[9] = {t->enc->emb, t->enc->proj, t->enc->idf, t->acc, t->adam_m,
                    t->adam_v,   t->key_emb,   t->key_proj, t->last};
    if (moco) {
        char qpath[4096];
        snprintf(qpath, sizeof qpath, "%s.queue", t->o.ckpt_path);
        rc = dense_file_map(qpath, CKPT_MAGIC, 1, &mq, err);
        if (rc != CW_OK) {
            goto done;
        }
        if (mq.sect[0].bytes != (uint64_t)t->nq * d * 4 || mq.meta[11] != m.meta[11]) {
            rc = cw_err_set(err, CW_ECORRUPT, "%s.queue: does not match the checkpoint",
                            t->o.ckpt_path);
            goto done;
        }
        memcpy(t->queue, mq.sect[0].data, mq.sect[0].bytes);
    }
    for (int i = 0; i < 9; i++) {
        if (sizes[i]) {
            memcpy(dst[i], m.sect[i].data, sizes[i]);
        }
    }
    t->step = m.meta[11];
    t->queue_pos = m.meta[12];
    *found = true;
done:
    dense_file_unmap(&m);
    dense_file_unmap(&mq);
    return rc;
}

/* ---- the training loop ---------------------------------------------------------- */

int idx_encoder_train(idx_encoder *enc, const char *const *texts, const size_t *lens, size_t n_docs,
                      const idx_train_opts *opts, idx_train_stats *stats, cw_err *err)
{
    const idx_train_opts *o = opts;
    if (n_docs < 2) {
        return cw_err_set(err, CW_EINVAL, "embed-train: need at least 2 documents, got %zu",
                          n_docs);
    }
    if (n_docs > UINT32_MAX) {
        return cw_err_set(err, CW_ELIMIT, "embed-train: %zu documents over 2^32", n_docs);
    }
    if (o->batch < 2 || !(o->tau > 0) || !(o->lr > 0) || !(o->lr_proj >= 0) ||
        !(o->momentum >= 0 && o->momentum < 1) || !(o->crop_min > 0) ||
        !(o->crop_max >= o->crop_min && o->crop_max <= 1) ||
        !(o->p_delete >= 0 && o->p_delete < 1)) {
        return cw_err_set(err, CW_EINVAL,
                          "embed-train: invalid options (batch >= 2, tau > 0, lr > 0, "
                          "0 <= momentum < 1, 0 < crop_min <= crop_max <= 1, 0 <= p_delete < 1)");
    }
    if (o->mode == IDX_CONTRASTIVE_MOCO && o->queue % CW_MIN((size_t)o->batch, n_docs) != 0) {
        return cw_err_set(err, CW_EINVAL,
                          "embed-train: queue %u is not a multiple of the batch %zu", o->queue,
                          CW_MIN((size_t)o->batch, n_docs));
    }
    if (o->resume && !o->ckpt_path) {
        return cw_err_set(err, CW_EINVAL, "embed-train: resume needs a checkpoint path");
    }
    corpus c;
    trainer t;
    uint32_t *perm = NULL, *pair_docs = NULL;
    memset(&t, 0, sizeof t);
    int rc = corpus_prepare(&c, enc, texts, lens, n_docs, true, err);
    if (rc == CW_OK) {
        rc = corpus_words_to_encoder(enc, &c, err);
    }
    if (rc != CW_OK) {
        goto done;
    }
    if (o->lsa_init) {
        rc = lsa_init(enc, &c, o->lsa_power_iters, o->seed, err);
        if (rc != CW_OK) {
            goto done;
        }
    }
    rc = trainer_init(&t, enc, o, n_docs, err);
    if (rc != CW_OK) {
        goto done;
    }
    if (o->resume) {
        bool found;
        rc = ckpt_load(&t, n_docs, &found, err);
        if (rc != CW_OK) {
            goto done;
        }
    }
    perm = malloc(n_docs * sizeof *perm);
    pair_docs = malloc(2 * (size_t)t.B * sizeof *pair_docs);
    if (!perm || !pair_docs) {
        rc = cw_err_set(err, CW_ENOMEM, "embed-train: out of memory");
        goto done;
    }
    uint64_t per_epoch = n_docs / t.B;
    uint64_t total = per_epoch * o->epochs;
    uint64_t epoch_ready = UINT64_MAX;
    uint64_t t0 = cw_now_ns(), last_ckpt_ns = t0;
    loss_track lt = {0};
    char stage[128];
    while (t.step < total) {
        uint64_t epoch = t.step / per_epoch, pos = t.step % per_epoch;
        if (epoch != epoch_ready) {
            /* The order of an epoch depends only on (seed, epoch): resuming reproduces it. */
            cw_rng prng;
            cw_rng_seed_stream(&prng, o->seed, 2 * epoch + 1);
            for (size_t i = 0; i < n_docs; i++) {
                perm[i] = (uint32_t)i;
            }
            cw_rng_shuffle(&prng, perm, n_docs, sizeof *perm);
            epoch_ready = epoch;
        }
        cw_rng arng;
        cw_rng_seed_stream(&arng, o->seed, 2 * t.step + 2);
        double loss = 0;
        for (uint32_t i = 0; i < t.B; i++) {
            pair_docs[i] = pair_docs[t.B + i] = perm[pos * t.B + i];
        }
        rc = train_step(&t, &c, pair_docs, NULL, &arng, &loss, err);
        if (rc != CW_OK) {
            goto done;
        }
        loss_track_add(&lt, loss);
        uint64_t now_ns = cw_now_ns();
        bool ckpt_now = o->ckpt_path &&
                        ((o->ckpt_every && t.step % o->ckpt_every == 0) ||
                         (o->ckpt_secs && now_ns - last_ckpt_ns >= o->ckpt_secs * 1000000000ULL) ||
                         t.step == total || cw_interrupted());
        if (ckpt_now) {
            last_ckpt_ns = now_ns;
            rc = ckpt_save(&t, n_docs, err);
            if (rc != CW_OK) {
                goto done;
            }
        }
        double secs = (double)(cw_now_ns() - t0) * 1e-9;
        snprintf(stage, sizeof stage, "embed-train loss %.4f, %.0f docs/s", loss,
                 secs > 0 ? (double)lt.n_steps * t.B / secs : 0.0);
        cw_progress_report(&o->progress, stage, t.step, total);
        if (cw_interrupted()) {
            rc = cw_err_set(err, CW_EINTR, "embed-train: interrupted at step %llu of %llu%s%s",
                            (unsigned long long)t.step, (unsigned long long)total,
                            o->ckpt_path ? "; checkpoint saved to " : "",
                            o->ckpt_path ? o->ckpt_path : "");
            goto done;
        }
    }
    if (stats) {
        loss_track_stats(&lt, t.step, t.B, (double)(cw_now_ns() - t0) * 1e-9, stats);
    }
    rc = CW_OK;
done:
    free(perm);
    free(pair_docs);
    trainer_fini(&t);
    corpus_fini(&c);
    return rc;
}

/* ---- fine-tuning on clicks ------------------------------------------------------ */

int idx_encoder_finetune(idx_encoder *enc, const char *const *texts, const size_t *lens,
                         size_t n_docs, const idx_click_pair *pairs, size_t n_pairs,
                         const idx_train_opts *opts, idx_train_stats *stats, cw_err *err)
{
    if (n_pairs < 2 || n_pairs > UINT32_MAX / 2) {
        return cw_err_set(err, CW_EINVAL, "embed-finetune: need 2..2^31 click pairs, got %zu",
                          n_pairs);
    }
    if (opts->batch < 2 || !(opts->tau > 0) || !(opts->lr > 0) || !(opts->lr_proj >= 0)) {
        return cw_err_set(err, CW_EINVAL,
                          "embed-finetune: invalid options (batch >= 2, tau > 0, lr > 0)");
    }
    double sum_w = 0;
    for (size_t i = 0; i < n_pairs; i++) {
        if (pairs[i].doc >= n_docs || !(pairs[i].weight >= 0) || !isfinite(pairs[i].weight)) {
            return cw_err_set(err, CW_EINVAL,
                              "embed-finetune: pair %zu: document %u of %zu, weight %g", i,
                              pairs[i].doc, n_docs, pairs[i].weight);
        }
        sum_w += pairs[i].weight;
    }
    if (!(sum_w > 0)) {
        return cw_err_set(err, CW_EINVAL, "embed-finetune: every click pair has weight 0");
    }
    /* Texts of the corpus built here: the n_pairs queries, then each clicked document once. */
    size_t n_txt = 0;
    uint32_t *compact = malloc(n_docs * sizeof *compact);
    const char **txt = malloc(2 * n_pairs * sizeof *txt);
    size_t *tlen = malloc(2 * n_pairs * sizeof *tlen);
    uint32_t *perm = malloc(n_pairs * sizeof *perm);
    corpus c;
    trainer t;
    memset(&c, 0, sizeof c);
    memset(&t, 0, sizeof t);
    uint32_t *step_docs = NULL;
    float *step_w = NULL;
    int rc = CW_OK;
    if (!compact || !txt || !tlen || !perm) {
        rc = cw_err_set(err, CW_ENOMEM, "embed-finetune: out of memory");
        goto done;
    }
    memset(compact, 0xff, n_docs * sizeof *compact);
    for (size_t i = 0; i < n_pairs; i++) {
        txt[n_txt] = pairs[i].query;
        tlen[n_txt++] = pairs[i].query_len;
    }
    for (size_t i = 0; i < n_pairs; i++) {
        uint32_t dd = pairs[i].doc;
        if (compact[dd] == UINT32_MAX) {
            compact[dd] = (uint32_t)n_txt;
            txt[n_txt] = texts[dd];
            tlen[n_txt++] = lens[dd];
        }
    }
    /* The idf stays the pre-training corpus's; the word list (and so the cache built at
     * load) stays too, but the table changes: drop a cache built from the old table. */
    rc = idx_encoder_set_word_cache(enc, false, err);
    if (rc == CW_OK) {
        rc = corpus_prepare(&c, enc, txt, tlen, n_txt, false, err);
    }
    if (rc != CW_OK) {
        goto done;
    }
    /* Whole query and whole document (no cropping or deletion: the click pairs are the
     * positives, Contriever's views are not needed) and in-batch negatives with the
     * gradient through both sides, as SimCLR; no queue. */
    idx_train_opts o = *opts;
    o.mode = IDX_CONTRASTIVE_SIMCLR;
    o.queue = 0;
    o.crop_min = o.crop_max = 1.0;
    o.p_delete = 0;
    o.ckpt_path = NULL;
    o.lsa_init = false;
    rc = trainer_init(&t, enc, &o, n_pairs, err);
    if (rc != CW_OK) {
        goto done;
    }
    step_docs = malloc(2 * (size_t)t.B * sizeof *step_docs);
    step_w = malloc((size_t)t.B * sizeof *step_w);
    if (!step_docs || !step_w) {
        rc = cw_err_set(err, CW_ENOMEM, "embed-finetune: out of memory");
        goto done;
    }
    uint64_t per_epoch = n_pairs / t.B, total = per_epoch * o.epochs;
    uint64_t t0 = cw_now_ns();
    loss_track lt = {0};
    char stage[128];
    for (uint64_t s = 0; s < total; s++) {
        uint64_t epoch = s / per_epoch, pos = s % per_epoch;
        if (pos == 0) {
            cw_rng prng;
            cw_rng_seed_stream(&prng, o.seed, 2 * epoch + 1);
            for (size_t i = 0; i < n_pairs; i++) {
                perm[i] = (uint32_t)i;
            }
            cw_rng_shuffle(&prng, perm, n_pairs, sizeof *perm);
        }
        /* Row i: query i against its clicked document, weighted by the pair's inverse
         * propensity (Joachims et al., WSDM 2017, eq. 5, applied to the contrastive loss:
         * the click-weighted InfoNCE is unbiased for the loss over relevant pairs when the
         * propensities are right). */
        for (uint32_t i = 0; i < t.B; i++) {
            const idx_click_pair *p = &pairs[perm[pos * t.B + i]];
            step_docs[i] = perm[pos * t.B + i];
            step_docs[t.B + i] = compact[p->doc];
            step_w[i] = (float)p->weight;
        }
        cw_rng arng;
        cw_rng_seed_stream(&arng, o.seed, 2 * s + 2);
        double loss = 0;
        rc = train_step(&t, &c, step_docs, step_w, &arng, &loss, err);
        if (rc != CW_OK) {
            goto done;
        }
        loss_track_add(&lt, loss);
        double secs = (double)(cw_now_ns() - t0) * 1e-9;
        snprintf(stage, sizeof stage, "embed-finetune loss %.4f, %.0f pairs/s", loss,
                 secs > 0 ? (double)(s + 1) * t.B / secs : 0.0);
        cw_progress_report(&o.progress, stage, s + 1, total);
        if (cw_interrupted()) {
            rc = cw_err_set(err, CW_EINTR, "embed-finetune: interrupted at step %llu of %llu",
                            (unsigned long long)s + 1, (unsigned long long)total);
            goto done;
        }
    }
    if (stats) {
        loss_track_stats(&lt, total, t.B, (double)(cw_now_ns() - t0) * 1e-9, stats);
    }
done:
    free(compact);
    free(txt);
    free(tlen);
    free(perm);
    free(step_docs);
    free(step_w);
    trainer_fini(&t);
    corpus_fini(&c);
    return rc;
}
