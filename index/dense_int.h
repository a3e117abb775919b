/* index/dense_int.h: definitions shared by the dense-vector files of index/
 * (dense_io.c, dense_encoder.c, dense_train.c, hnsw.c, dense.c): the checksummed
 * section container every dense file uses, the encoder layout, batched InfoNCE. */
#ifndef CAUSEWAY_INDEX_DENSE_INT_H
#define CAUSEWAY_INDEX_DENSE_INT_H

#include "index/index.h"

/* ---- section container ----------------------------------------------------
 * [magic 8][u32 version][u32 n_sections][u64 meta[DENSE_N_META]]
 * [n_sections x {u64 offset, u64 bytes, u32 crc32c, u32 reserved}][u32 crc32c of all before]
 * then the sections, each 64-byte aligned. Little-endian host layout (the file is
 * an on-machine artefact, like the rest of the index directory). */
#define DENSE_N_META 16u
#define DENSE_MAX_SECTIONS 32u
#define DENSE_FILE_VERSION 1u

typedef struct dense_section {
    const void *data;
    uint64_t bytes;
} dense_section;

/* Writes path through path.tmp.PID + fsync + rename. Errors: CW_EIO. */
int dense_file_write(const char *path, const char magic[8], const uint64_t meta[DENSE_N_META],
                     const dense_section *sect, uint32_t n_sect, cw_err *err) CW_MUST_CHECK;

typedef struct dense_map {
    void *base;
    size_t bytes;
    uint64_t meta[DENSE_N_META];
    uint32_t n_sect;
    dense_section sect[DENSE_MAX_SECTIONS];
} dense_map;

/* Maps path read-only and verifies magic, version, table bounds and every CRC. The file
 * has at least n_sect_min sections (later versions of a file may append sections; the
 * caller checks out->n_sect when it needs them).
 * Errors: CW_ENOTFOUND, CW_ECORRUPT ("path: byte N: ..."), CW_EIO. */
int dense_file_map(const char *path, const char magic[8], uint32_t n_sect_min, dense_map *out,
                   cw_err *err) CW_MUST_CHECK;
void dense_file_unmap(dense_map *m);

/* ---- encoder ---------------------------------------------------------------- */
struct idx_encoder {
    idx_encoder_opts o;
    float *emb;  /* n_buckets x dim, row-major */
    float *proj; /* dim x dim: z = proj . h, row-major */
    float *idf;  /* n_buckets: idf of the unigram bucket (1.0 before fitting) */
    /* Training-corpus words, most frequent first (<= IDX_DENSE_CACHE_WORDS), saved with
     * the encoder: the words whose pooled rows the word cache holds. */
    uint32_t n_words;
    uint32_t *word_off; /* n_words + 1 offsets into word_bytes (NULL when n_words = 0) */
    char *word_bytes;
    /* Word cache, built at load: for cached word i, cache_vec row i
     * = sum over its unigram and character n-gram features f of w_f emb[f], cache_wsum[i]
     * = sum of the w_f; bigrams still go through the table. NULL = off
     * (idx_encoder_set_word_cache). */
    float *cache_vec;     /* n_words x dim */
    double *cache_wsum;   /* n_words */
    uint32_t *cache_slot; /* open addressing by word hash: word index + 1, 0 = empty */
    uint64_t *cache_hash; /* word hash of each slot */
    uint32_t cache_mask;  /* slots - 1 (a power of two >= 2 n_words) */
};

/* Replaces enc's word list by words[i] (lens[i] bytes), i < n <= IDX_DENSE_CACHE_WORDS, and
 * drops the cache (the table changes in training). Errors: CW_ENOMEM. */
int dense_words_set(idx_encoder *enc, const char *const *words, const uint32_t *lens, size_t n,
                    cw_err *err) CW_MUST_CHECK;

/* One word of a tokenised text. */
typedef struct dense_word {
    uint64_t hash;    /* cw_hash64 of the lower-cased word */
    const char *text; /* lower-cased bytes (caller's buffer) */
    uint32_t len;
} dense_word;

#define DENSE_MAX_WORD_BYTES 32u /* longer words are cut for n-grams */

/* Calls fn for each feature of word w given the previous word's hash (0 = none):
 * (bucket, weight). Weights: unigram idf, each char n-gram idf / n_ngrams, bigram
 * mean idf of its two words. Returns the number of features. */
typedef void (*dense_feat_fn)(void *ctx, uint32_t bucket, float weight);
uint32_t dense_word_features(const idx_encoder *enc, const char *word, uint32_t len, uint64_t hash,
                             uint64_t prev_hash, float prev_idf, dense_feat_fn fn, void *ctx);
/* Tokeniser of the encoder: lower-cased maximal runs of [a-z0-9] and bytes >= 0x80, cut
 * into words of at most DENSE_MAX_TOKEN_BYTES (a saved word list is checked against it).
 * Calls fn(ctx, word, len) with the word in a buffer valid during the call. */
#define DENSE_MAX_TOKEN_BYTES 255u
typedef void (*dense_word_fn)(void *ctx, const char *word, uint32_t len);
void dense_tokenize(const char *text, size_t len, dense_word_fn fn, void *ctx);
uint64_t dense_word_hash(const char *word, uint32_t len);
uint32_t dense_unigram_bucket(const idx_encoder *enc, uint64_t hash);
uint32_t dense_bigram_bucket(const idx_encoder *enc, uint64_t prev_hash, uint64_t hash);

/* Pools and projects one bag of features: h = sum w_f emb[f] / sum w_f, z = proj h,
 * out = z / |z|. Returns |z| (0 when there are no features: out = 0). h_out may be NULL. */
float dense_pool_project(const float *emb, const float *proj, uint32_t dim, const uint32_t *buckets,
                         const float *weights, size_t n_feat, float *h_out, float *out);

/* Batched InfoNCE (METHODS.md section 7): B queries Q (B x d), B in-batch keys K (positive
 * of row i is K row i) and n_queue queue keys U; logits [Q K^T | Q U^T] / tau through
 * cblas_sgemm, mean cross-entropy over the B rows. Writes dQ (B x d) and, if dK is not
 * NULL, dK (B x d). scratch holds B * (B + n_queue) floats. Returns the mean loss. */
double dense_batch_infonce(const float *Q, const float *K, const float *U, size_t B, size_t n_queue,
                           size_t d, double tau, float *dQ, float *dK, float *scratch);
/* The same with row weights row_w[B] >= 0 (NULL = all 1): loss sum_i w_i CE_i / sum_i w_i
 * and its gradients; 0 with zero gradients when the weights sum to 0. */
double dense_batch_infonce_w(const float *Q, const float *K, const float *U, size_t B,
                             size_t n_queue, size_t d, double tau, const float *row_w, float *dQ,
                             float *dK, float *scratch);

#endif /* CAUSEWAY_INDEX_DENSE_INT_H */
