/* index/dense_encoder.c: the CPU text encoder of the dense side (issue 6): words ->
 * hashed unigram, bigram and character n-gram features -> idf-weighted mean of their
 * embedding rows -> d x d projection -> L2 normalisation. Used for documents (by
 * `causeway embed build`) and queries (search, server, ranker feature) alike. */
#include "config.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "index/dense_int.h"

#define SEED_WORD 0x5eedc0de01ull
#define SEED_NGRAM 0x5eedc0de02ull
#define SEED_BIGRAM 0x5eedc0de03ull
#define ENC_MAGIC "CWDENC01"

idx_encoder_opts idx_encoder_opts_default(void)
{
    return (idx_encoder_opts){.dim = 128,
                              .n_buckets = 1u << 18,
                              .ngram_min = 3,
                              .ngram_max = 5,
                              .bigrams = true,
                              .seed = 1};
}

static int check_opts(const idx_encoder_opts *o, cw_err *err)
{
    if (o->dim < 2 || o->dim > IDX_DENSE_MAX_DIM) {
        return cw_err_set(err, CW_ELIMIT, "encoder dim %u outside [2, %u]", o->dim,
                          IDX_DENSE_MAX_DIM);
    }
    if (o->n_buckets < 16 || o->n_buckets > IDX_DENSE_MAX_BUCKETS) {
        return cw_err_set(err, CW_ELIMIT, "encoder buckets %u outside [16, %u]", o->n_buckets,
                          IDX_DENSE_MAX_BUCKETS);
    }
    if (o->ngram_min > o->ngram_max || o->ngram_max > 8 ||
        (o->ngram_min == 0) != (o->ngram_max == 0)) {
        return cw_err_set(err, CW_EINVAL, "encoder n-gram range [%u, %u] invalid (0 or 1..8)",
                          o->ngram_min, o->ngram_max);
    }
    return CW_OK;
}

static idx_encoder *alloc_encoder(const idx_encoder_opts *o)
{
    idx_encoder *e = calloc(1, sizeof *e);
    if (!e) {
        return NULL;
    }
    e->o = *o;
    e->emb = malloc((size_t)o->n_buckets * o->dim * sizeof(float));
    e->proj = malloc((size_t)o->dim * o->dim * sizeof(float));
    e->idf = malloc((size_t)o->n_buckets * sizeof(float));
    if (!e->emb || !e->proj || !e->idf) {
        idx_encoder_free(e);
        return NULL;
    }
    return e;
}

int idx_encoder_new(const idx_encoder_opts *opts, idx_encoder **out, cw_err *err)
{
    int rc = check_opts(opts, err);
    if (rc != CW_OK) {
        return rc;
    }
    idx_encoder *e = alloc_encoder(opts);
    if (!e) {
        return cw_err_set(err, CW_ENOMEM, "encoder: out of memory (%u x %u table)", opts->n_buckets,
                          opts->dim);
    }
    cw_rng rng;
    cw_rng_seed(&rng, opts->seed);
    size_t n = (size_t)opts->n_buckets * opts->dim;
    /* N(0, 1) rows: the untrained encoder is a Gaussian random projection of the
     * weighted bag of features, whose cosines approximate the bag's cosines
     * (Johnson-Lindenstrauss), a sensible starting point for contrastive training. */
    for (size_t i = 0; i < n; i++) {
        e->emb[i] = (float)cw_rng_normal(&rng);
    }
    for (uint32_t r = 0; r < opts->dim; r++) {
        for (uint32_t c = 0; c < opts->dim; c++) {
            e->proj[(size_t)r * opts->dim + c] = r == c ? 1.0f : 0.0f;
        }
    }
    for (uint32_t b = 0; b < opts->n_buckets; b++) {
        e->idf[b] = 1.0f;
    }
    *out = e;
    return CW_OK;
}

static void cache_free(idx_encoder *enc)
{
    free(enc->cache_vec);
    free(enc->cache_wsum);
    free(enc->cache_slot);
    free(enc->cache_hash);
    enc->cache_vec = NULL;
    enc->cache_wsum = NULL;
    enc->cache_slot = NULL;
    enc->cache_hash = NULL;
    enc->cache_mask = 0;
}

void idx_encoder_free(idx_encoder *enc)
{
    if (!enc) {
        return;
    }
    cache_free(enc);
    free(enc->word_off);
    free(enc->word_bytes);
    free(enc->emb);
    free(enc->proj);
    free(enc->idf);
    free(enc);
}

uint32_t idx_encoder_dim(const idx_encoder *enc)
{
    return enc->o.dim;
}

uint64_t dense_word_hash(const char *word, uint32_t len)
{
    return cw_hash64(word, len, SEED_WORD);
}

uint32_t dense_unigram_bucket(const idx_encoder *enc, uint64_t hash)
{
    return (uint32_t)(hash % enc->o.n_buckets);
}

uint32_t dense_bigram_bucket(const idx_encoder *enc, uint64_t prev_hash, uint64_t hash)
{
    uint64_t pair[2] = {prev_hash, hash};
    return (uint32_t)(cw_hash64(pair, sizeof pair, SEED_BIGRAM) % enc->o.n_buckets);
}

void dense_tokenize(const char *text, size_t len, dense_word_fn fn, void *ctx)
{
    char buf[DENSE_MAX_TOKEN_BYTES + 1];
    uint32_t n = 0;
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)text[i] : ' ';
        bool is_word =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80 || (c >= 'A' && c <= 'Z');
        if (is_word) {
            // Very long runs are cut into DENSE_MAX_TOKEN_BYTES words rather than dropped.
            if (n == sizeof buf - 1) {
                fn(ctx, buf, n);
                n = 0;
            }
            buf[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        } else if (n > 0) {
            fn(ctx, buf, n);
            n = 0;
        }
    }
}

uint32_t dense_word_features(const idx_encoder *enc, const char *word, uint32_t len, uint64_t hash,
                             uint64_t prev_hash, float prev_idf, dense_feat_fn fn, void *ctx)
{
    uint32_t nb = enc->o.n_buckets;
    uint32_t uni = (uint32_t)(hash % nb);
    float w = enc->idf[uni];
    uint32_t n_feat = 1;
    fn(ctx, uni, w);
    /* Character n-grams of "<word>" as in fastText (Bojanowski et al., TACL 2017), so
     * inflections and unseen words share rows; their total weight equals the word's. */
    if (enc->o.ngram_min > 0) {
        char b[DENSE_MAX_WORD_BYTES + 2];
        uint32_t wl = CW_MIN(len, DENSE_MAX_WORD_BYTES);
        b[0] = '<';
        memcpy(b + 1, word, wl);
        b[wl + 1] = '>';
        uint32_t bl = wl + 2;
        uint32_t count = 0;
        for (uint32_t n = enc->o.ngram_min; n <= enc->o.ngram_max && n <= bl; n++) {
            count += bl - n + 1;
        }
        if (count > 0) {
            float wn = w / (float)count;
            for (uint32_t n = enc->o.ngram_min; n <= enc->o.ngram_max && n <= bl; n++) {
                for (uint32_t s = 0; s + n <= bl; s++) {
                    uint64_t h = cw_hash64(b + s, n, SEED_NGRAM + n);
                    fn(ctx, (uint32_t)(h % nb), wn);
                }
            }
            n_feat += count;
        }
    }
    if (enc->o.bigrams && prev_hash != 0) {
        fn(ctx, dense_bigram_bucket(enc, prev_hash, hash), 0.5f * (w + prev_idf));
        n_feat++;
    }
    return n_feat;
}

/* Features of one word: unigram + bigram + n-grams for at most 8 values of n. */
#define WORD_FEATS (2 + 8 * (DENSE_MAX_WORD_BYTES + 2))

typedef struct pool_ctx {
    const idx_encoder *enc;
    float *h;
    double sum_w;
    uint64_t prev_hash;
    float prev_idf;
    uint32_t n;
    uint32_t bucket[WORD_FEATS];
    float weight[WORD_FEATS];
} pool_ctx;

static void collect_feat(void *vctx, uint32_t bucket, float weight)
{
    pool_ctx *c = vctx;
    if (c->n < WORD_FEATS) {
        c->bucket[c->n] = bucket;
        c->weight[c->n] = weight;
        c->n++;
    }
}

/* Index of the cached word (word, len, hash h) or -1. The bytes are compared too, so a
 * 64-bit hash collision costs a miss, never a wrong row. */
static int64_t cache_find(const idx_encoder *enc, const char *word, uint32_t len, uint64_t h)
{
    for (uint32_t s = (uint32_t)h & enc->cache_mask;; s = (s + 1) & enc->cache_mask) {
        uint32_t v = enc->cache_slot[s];
        if (v == 0) {
            return -1;
        }
        if (enc->cache_hash[s] == h) {
            uint32_t i = v - 1, o = enc->word_off[i];
            if (enc->word_off[i + 1] - o == len && memcmp(enc->word_bytes + o, word, len) == 0) {
                return i;
            }
        }
    }
}

static uint64_t word_hash_nonzero(const char *word, uint32_t len)
{
    uint64_t h = dense_word_hash(word, len);
    return h ? h : 1; // 0 marks "no previous word"
}

/* A cached word: its pooled unigram + n-gram rows in one add, and the bigram with the
 * previous word from the table (bigrams are too many to cache). Same features and
 * weights as dense_word_features; only the order of the float additions differs. */
static void pool_cached(pool_ctx *c, uint32_t i, uint64_t h)
{
    const idx_encoder *enc = c->enc;
    uint32_t d = enc->o.dim;
    float w = enc->idf[dense_unigram_bucket(enc, h)];
    const float *brow = NULL;
    float bw = 0;
    if (enc->o.bigrams && c->prev_hash != 0) {
        brow = enc->emb + (size_t)dense_bigram_bucket(enc, c->prev_hash, h) * d;
        bw = 0.5f * (w + c->prev_idf);
        for (size_t off = 0; off < d * sizeof(float); off += 64) {
            __builtin_prefetch((const char *)brow + off);
        }
    }
    const float *v = enc->cache_vec + (size_t)i * d;
    for (uint32_t j = 0; j < d; j++) {
        c->h[j] += v[j];
    }
    c->sum_w += enc->cache_wsum[i];
    if (brow) {
        for (uint32_t j = 0; j < d; j++) {
            c->h[j] += bw * brow[j];
        }
        c->sum_w += bw;
    }
    c->prev_hash = h;
    c->prev_idf = w;
}

/* Adds the c->n collected features' weighted rows to c->h and their weights to c->sum_w
 * (the one order of float additions both pool_word and the cache use). The rows are
 * scattered over a table of tens of MiB: every row is prefetched first, so their cache
 * misses overlap instead of queueing. */
static void pool_collected(pool_ctx *c)
{
    const idx_encoder *enc = c->enc;
    uint32_t d = enc->o.dim;
    for (uint32_t f = 0; f < c->n; f++) {
        const char *row = (const char *)(enc->emb + (size_t)c->bucket[f] * d);
        for (size_t off = 0; off < d * sizeof(float); off += 64) {
            __builtin_prefetch(row + off);
        }
    }
    for (uint32_t f = 0; f < c->n; f++) {
        const float *row = enc->emb + (size_t)c->bucket[f] * d;
        float w = c->weight[f];
        for (uint32_t j = 0; j < d; j++) {
            c->h[j] += w * row[j];
        }
        c->sum_w += w;
    }
}

/* One word: its cached sum when the cache has it, else its features from the table. */
static void pool_word(void *vctx, const char *word, uint32_t len)
{
    pool_ctx *c = vctx;
    const idx_encoder *enc = c->enc;
    uint64_t h = word_hash_nonzero(word, len);
    if (enc->cache_slot) {
        int64_t i = cache_find(enc, word, len, h);
        if (i >= 0) {
            pool_cached(c, (uint32_t)i, h);
            return;
        }
    }
    c->n = 0;
    dense_word_features(enc, word, len, h, c->prev_hash, c->prev_idf, collect_feat, c);
    pool_collected(c);
    c->prev_hash = h;
    c->prev_idf = enc->idf[dense_unigram_bucket(enc, h)];
}

static float project_normalise(const float *proj, uint32_t d, const float *h, float *out)
{
    double norm2 = 0;
    for (uint32_t r = 0; r < d; r++) {
        const float *row = proj + (size_t)r * d;
        float z = 0;
        for (uint32_t c = 0; c < d; c++) {
            z += row[c] * h[c];
        }
        out[r] = z;
        norm2 += (double)z * z;
    }
    float norm = (float)sqrt(norm2);
    if (norm > 0) {
        for (uint32_t r = 0; r < d; r++) {
            out[r] /= norm;
        }
    }
    return norm;
}

int idx_encoder_encode(const idx_encoder *enc, const char *text, size_t len, float *out,
                       cw_err *err)
{
    (void)err;
    float h[IDX_DENSE_MAX_DIM];
    uint32_t d = enc->o.dim;
    memset(h, 0, d * sizeof(float));
    pool_ctx c = {.enc = enc, .h = h};
    dense_tokenize(text, len, pool_word, &c);
    if (c.sum_w <= 0) {
        memset(out, 0, d * sizeof(float));
        return CW_OK;
    }
    // The mean's denominator cancels in the normalisation; kept for a readable h.
    for (uint32_t j = 0; j < d; j++) {
        h[j] = (float)(h[j] / c.sum_w);
    }
    project_normalise(enc->proj, d, h, out);
    return CW_OK;
}

int dense_words_set(idx_encoder *enc, const char *const *words, const uint32_t *lens, size_t n,
                    cw_err *err)
{
    assert(n <= IDX_DENSE_CACHE_WORDS);
    cache_free(enc);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += lens[i];
    }
    uint32_t *off = n ? malloc((n + 1) * sizeof *off) : NULL;
    char *bytes = n ? malloc(total ? total : 1) : NULL;
    if (n && (!off || !bytes || total > UINT32_MAX)) {
        free(off);
        free(bytes);
        return cw_err_set(err, CW_ENOMEM, "encoder: out of memory for %zu words", n);
    }
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        off[i] = (uint32_t)pos;
        memcpy(bytes + pos, words[i], lens[i]);
        pos += lens[i];
    }
    if (n) {
        off[n] = (uint32_t)pos;
    }
    free(enc->word_off);
    free(enc->word_bytes);
    enc->word_off = off;
    enc->word_bytes = bytes;
    enc->n_words = (uint32_t)n;
    return CW_OK;
}

static int cache_build(idx_encoder *enc, cw_err *err)
{
    cache_free(enc);
    uint32_t n = enc->n_words, d = enc->o.dim;
    if (n == 0) {
        return CW_OK;
    }
    uint32_t slots = 16;
    while (slots < 2 * n) {
        slots *= 2;
    }
    enc->cache_vec = malloc((size_t)n * d * sizeof(float));
    enc->cache_wsum = malloc((size_t)n * sizeof(double));
    enc->cache_slot = calloc(slots, sizeof(uint32_t));
    enc->cache_hash = calloc(slots, sizeof(uint64_t));
    if (!enc->cache_vec || !enc->cache_wsum || !enc->cache_slot || !enc->cache_hash) {
        cache_free(enc);
        return cw_err_set(err, CW_ENOMEM, "encoder: out of memory for a %u-word cache", n);
    }
    enc->cache_mask = slots - 1;
    pool_ctx c = {.enc = enc};
    for (uint32_t i = 0; i < n; i++) {
        const char *word = enc->word_bytes + enc->word_off[i];
        uint32_t len = enc->word_off[i + 1] - enc->word_off[i];
        uint64_t h = word_hash_nonzero(word, len);
        c.n = 0;
        dense_word_features(enc, word, len, h, 0, 0, collect_feat, &c);
        c.h = enc->cache_vec + (size_t)i * d;
        c.sum_w = 0;
        memset(c.h, 0, d * sizeof(float));
        pool_collected(&c);
        enc->cache_wsum[i] = c.sum_w;
        if (cache_find(enc, word, len, h) >= 0) {
            continue; // a duplicate in the list: the first copy serves
        }
        uint32_t s = (uint32_t)h & enc->cache_mask;
        while (enc->cache_slot[s] != 0) {
            s = (s + 1) & enc->cache_mask;
        }
        enc->cache_slot[s] = i + 1;
        enc->cache_hash[s] = h;
    }
    return CW_OK;
}

int idx_encoder_set_word_cache(idx_encoder *enc, bool on, cw_err *err)
{
    if (!on) {
        cache_free(enc);
        return CW_OK;
    }
    return cache_build(enc, err);
}

uint32_t idx_encoder_cached_words(const idx_encoder *enc)
{
    return enc->cache_slot ? enc->n_words : 0;
}

float dense_pool_project(const float *emb, const float *proj, uint32_t dim, const uint32_t *buckets,
                         const float *weights, size_t n_feat, float *h_out, float *out)
{
    float hb[IDX_DENSE_MAX_DIM];
    float *h = h_out ? h_out : hb;
    memset(h, 0, dim * sizeof(float));
    double sum_w = 0;
    for (size_t f = 0; f < n_feat; f++) {
        const float *row = emb + (size_t)buckets[f] * dim;
        float w = weights[f];
        for (uint32_t j = 0; j < dim; j++) {
            h[j] += w * row[j];
        }
        sum_w += w;
    }
    if (sum_w <= 0) {
        memset(out, 0, dim * sizeof(float));
        return 0;
    }
    for (uint32_t j = 0; j < dim; j++) {
        h[j] = (float)(h[j] / sum_w);
    }
    return project_normalise(proj, dim, h, out);
}

int idx_encoder_save(const idx_encoder *enc, const char *path, cw_err *err)
{
    const idx_encoder_opts *o = &enc->o;
    uint64_t meta[DENSE_N_META] = {o->dim,     o->n_buckets, o->ngram_min, o->ngram_max,
                                   o->bigrams, o->seed,      enc->n_words};
    uint32_t no_words = 0;
    uint32_t n = enc->n_words;
    /* Sections 3 and 4 (the word list) were added after version 1's first files; a
     * reader finds n_words in meta[6] and accepts files without them. */
    dense_section s[5] = {
        {enc->emb, (uint64_t)o->n_buckets * o->dim * sizeof(float)},
        {enc->proj, (uint64_t)o->dim * o->dim * sizeof(float)},
        {enc->idf, (uint64_t)o->n_buckets * sizeof(float)},
        {n ? (const void *)enc->word_off : &no_words, n ? (uint64_t)(n + 1) * 4 : 4},
        {n ? (const void *)enc->word_bytes : &no_words, n ? enc->word_off[n] : 0},
    };
    return dense_file_write(path, ENC_MAGIC, meta, s, 5, err);
}

/* The word list of sections 3 (offsets) and 4 (bytes), checked word by word. */
static int load_words(const char *path, const dense_map *m, idx_encoder *e, cw_err *err)
{
    uint64_t n = m->meta[6];
    if (n > IDX_DENSE_CACHE_WORDS) {
        return cw_err_set(err, CW_ECORRUPT, "%s: byte %d: %llu words over the limit of %u", path,
                          16 + 6 * 8, (unsigned long long)n, IDX_DENSE_CACHE_WORDS);
    }
    if (n == 0) {
        return CW_OK;
    }
    const unsigned char *ob = m->sect[3].data;
    const char *bytes = m->sect[4].data;
    if (m->sect[3].bytes != (n + 1) * 4) {
        return cw_err_set(err, CW_ECORRUPT, "%s: word offsets: %llu bytes for %llu words", path,
                          (unsigned long long)m->sect[3].bytes, (unsigned long long)n);
    }
    const char **words = malloc(n * sizeof *words);
    uint32_t *lens = malloc(n * sizeof *lens);
    int rc = CW_OK;
    if (!words || !lens) {
        rc = cw_err_set(err, CW_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    uint32_t prev;
    memcpy(&prev, ob, 4);
    if (prev != 0) {
        rc = cw_err_set(err, CW_ECORRUPT, "%s: word offsets: first offset %u, not 0", path, prev);
        goto done;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint32_t next;
        memcpy(&next, ob + 4 * (i + 1), 4);
        if (next <= prev || next - prev > DENSE_MAX_TOKEN_BYTES || next > m->sect[4].bytes) {
            rc = cw_err_set(err, CW_ECORRUPT, "%s: word %llu: bad offsets [%u, %u) of %llu bytes",
                            path, (unsigned long long)i, prev, next,
                            (unsigned long long)m->sect[4].bytes);
            goto done;
        }
        words[i] = bytes + prev;
        lens[i] = next - prev;
        prev = next;
    }
    rc = dense_words_set(e, words, lens, n, err);
done:
    free(words);
    free(lens);
    return rc;
}

/* Maps path and copies the encoder out; the word cache is built only when word_cache. */
static int load_encoder(const char *path, bool word_cache, idx_encoder **out, cw_err *err)
{
    dense_map m;
    int rc = dense_file_map(path, ENC_MAGIC, 3, &m, err);
    if (rc != CW_OK) {
        return rc;
    }
    idx_encoder_opts o = {.dim = (uint32_t)m.meta[0],
                          .n_buckets = (uint32_t)m.meta[1],
                          .ngram_min = (uint32_t)m.meta[2],
                          .ngram_max = (uint32_t)m.meta[3],
                          .bigrams = m.meta[4] != 0,
                          .seed = m.meta[5]};
    idx_encoder *e = NULL;
    if (m.meta[0] > IDX_DENSE_MAX_DIM || m.meta[1] > IDX_DENSE_MAX_BUCKETS ||
        check_opts(&o, NULL) != CW_OK) {
        rc = cw_err_set(err, CW_ECORRUPT, "%s: byte 16: invalid encoder shape", path);
        goto fail;
    }
    if (m.sect[0].bytes != (uint64_t)o.n_buckets * o.dim * sizeof(float) ||
        m.sect[1].bytes != (uint64_t)o.dim * o.dim * sizeof(float) ||
        m.sect[2].bytes != (uint64_t)o.n_buckets * sizeof(float)) {
        rc = cw_err_set(err, CW_ECORRUPT, "%s: section sizes do not match %u x %u", path,
                        o.n_buckets, o.dim);
        goto fail;
    }
    e = alloc_encoder(&o);
    if (!e) {
        rc = cw_err_set(err, CW_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    memcpy(e->emb, m.sect[0].data, m.sect[0].bytes);
    memcpy(e->proj, m.sect[1].data, m.sect[1].bytes);
    memcpy(e->idf, m.sect[2].data, m.sect[2].bytes);
    if (m.n_sect >= 5) {
        rc = load_words(path, &m, e, err);
        if (rc == CW_OK && word_cache) {
            rc = cache_build(e, err);
        }
        if (rc != CW_OK) {
            goto fail;
        }
    }
    dense_file_unmap(&m);
    *out = e;
    return CW_OK;
fail:
    idx_encoder_free(e);
    dense_file_unmap(&m);
    return rc;
}

int idx_encoder_load(const char *path, idx_encoder **out, cw_err *err)
{
    return load_encoder(path, true, out, err);
}

int idx_encoder_load_uncached(const char *path, idx_encoder **out, cw_err *err)
{
    return load_encoder(path, false, out, err);
}
