/* index/index.h: text analysis, the memory-mapped inverted index with its
 * document store, BM25 scoring and exact top-k retrieval.
 * Data flow: corpus.jsonl -> idx_build -> index dir -> idx_index_open -> server/ranker.
 * An open idx_index is immutable and safe to share between threads. */
#ifndef CAUSEWAY_INDEX_INDEX_H
#define CAUSEWAY_INDEX_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cw.h"

/* ---- limits on external input ------------------------------------------ */
#define IDX_MAX_QUERY_BYTES 4096u     /* query text, bytes of UTF-8 (CISI's longest: 2083) */
#define IDX_MAX_K 1000u               /* results per search */
#define IDX_MAX_QUERY_TERMS 512u      /* analyzed terms kept per query (CISI needs ~300) */
#define IDX_MAX_ID_BYTES 256u         /* external document id */
#define IDX_MAX_DOC_BYTES (16u << 20) /* one corpus line */

/* Fields scored separately for the ranker; "flat" BM25 scores title + "\n" + text
 * as one field (METHODS.md section 2). */
typedef enum idx_field {
    IDX_FIELD_TITLE = 0,
    IDX_FIELD_TEXT = 1,
    IDX_FIELD_FLAT = 2,
    IDX_N_FIELDS = 3,
} idx_field;

/* BM25 as Lucene >= 8 / Anserini (no (k1+1) numerator factor, idf always > 0). */
typedef struct idx_bm25_params {
    double k1; /* term-frequency saturation, default 0.9 */
    double b;  /* length normalisation in [0,1], default 0.4 */
} idx_bm25_params;

#define IDX_BM25_DEFAULT ((idx_bm25_params){0.9, 0.4})
/* Lucene's idf: log(1 + (N - df + 0.5) / (df + 0.5)), always > 0 (METHODS.md section 2).
 * Public so the ranker's own field BM25 gives the index's doubles bit for bit. */
double idx_bm25_idf(uint64_t n_docs, uint64_t df);

/* ---- analysis ------------------------------------------------------------ */

/* Analyzer settings, stored in the index and applied identically to queries. */
typedef struct idx_analyzer_opts {
    bool stem;        /* Snowball stemming */
    char stemmer[32]; /* Snowball algorithm: "porter" (default, METHODS.md) or "english" */
    bool stopwords;   /* drop the stopword list before stemming */
} idx_analyzer_opts;

typedef struct idx_analyzer idx_analyzer; /* not thread-safe: one per thread */

/* One analyzed token. `term` is the normalised (case-folded, stemmed) form,
 * valid only during the callback. Offsets point into the original text. */
typedef struct idx_token {
    const char *term;
    size_t term_len;
    uint32_t position; /* ordinal among kept tokens, 0-based */
    size_t byte_begin; /* [begin, end) in the original text */
    size_t byte_end;
    uint64_t term_hash; /* cw_hash64(term, term_len, 0), set by idx_analyze (cached per
                           distinct word: consumers probe hash tables without hashing) */
} idx_token;

/* Called per kept token; return CW_OK to go on, anything else stops analysis
 * and is returned by idx_analyze. It must not call into the same analyzer. */
typedef int (*idx_token_fn)(void *ctx, const idx_token *tok);

/* Creates an analyzer (stopword list built in; identical to data/stopwords_en.txt).
 * Errors: CW_EINVAL (unknown stemmer), CW_ENOMEM. Free with idx_analyzer_free. */
int idx_analyzer_new(const idx_analyzer_opts *opts, idx_analyzer **out, cw_err *err) CW_MUST_CHECK;
void idx_analyzer_free(idx_analyzer *a);
/* Default options: porter stemmer, stopwords on. */
idx_analyzer_opts idx_analyzer_opts_default(void);
/* Tokenizes UTF-8 text: NFKC normalisation + case folding (utf8proc), tokens =
 * maximal runs of Unicode letters and digits, stopwords, stemming.
 * Errors: CW_EPARSE (invalid UTF-8, with byte offset), whatever fn returns. */
int idx_analyze(idx_analyzer *a, const char *text, size_t len, idx_token_fn fn, void *ctx,
                cw_err *err);

/* ---- building ------------------------------------------------------------ */

typedef struct idx_build_opts {
    idx_analyzer_opts analyzer;
    size_t mem_budget_bytes; /* postings buffered before spilling a sorted run; default 256 MiB */
    bool skip_bad;           /* skip malformed lines (counted) instead of failing */
    cw_progress progress;    /* stage "index" (bytes read / file size), then "merge" (terms) */
    bool no_fsync;           /* skip fsync before the rename (benchmarks, scratch indexes):
                                still atomic for readers, not durable across power loss */
} idx_build_opts;

typedef struct idx_build_stats {
    uint64_t n_docs;      /* documents indexed */
    uint64_t n_skipped;   /* malformed lines skipped under skip_bad */
    uint64_t n_terms;     /* distinct terms */
    uint64_t n_postings;  /* (term, doc) pairs in the flat field */
    uint64_t n_tokens;    /* analysed tokens in the flat field */
    uint64_t index_bytes; /* bytes of the finished index directory */
    uint64_t input_bytes; /* bytes of corpus read */
    double seconds;
} idx_build_stats;

/* Builds an index from a JSONL corpus ({"id","title","text", other string fields
 * kept as stored fields}) into out_dir, through a temporary sibling directory renamed
 * at the end: a failed or interrupted build leaves nothing at out_dir.
 * Errors: CW_EPARSE (path:line: reason) for bad JSON, invalid UTF-8, missing or
 * duplicate id; CW_ELIMIT; CW_EIO; CW_EINTR; CW_ENOMEM. */
int idx_build(const char *corpus_path, const char *out_dir, const idx_build_opts *opts,
              idx_build_stats *stats, cw_err *err) CW_MUST_CHECK;
idx_build_opts idx_build_opts_default(void);

/* ---- the open index ------------------------------------------------------ */

typedef struct idx_index idx_index;

/* Memory-maps an index directory, verifying magic, version and checksums of every
 * section. Errors: CW_ENOTFOUND, CW_ECORRUPT (file + byte offset), CW_EIO, CW_ENOMEM.
 * Close with idx_index_close. Thread-safe once open. */
int idx_index_open(const char *dir, idx_index **out, cw_err *err) CW_MUST_CHECK;
void idx_index_close(idx_index *ix);

uint32_t idx_index_n_docs(const idx_index *ix);
/* Stable identifier of this index build (hex of its header checksum), logged with
 * impressions so a log names the index it was served from. Valid while open. */
const char *idx_index_version(const idx_index *ix);
/* A new analyzer with the options stored in the index. Free with idx_analyzer_free. */
int idx_index_analyzer(const idx_index *ix, idx_analyzer **out, cw_err *err) CW_MUST_CHECK;

/* Summary of an open index (for `causeway index info` and logs). */
typedef struct idx_index_info {
    uint32_t n_docs;
    uint32_t n_terms;           /* distinct terms */
    uint64_t n_postings;        /* flat (term, document) pairs */
    uint64_t bytes;             /* size of the index files */
    idx_analyzer_opts analyzer; /* the settings queries must be analysed with */
    int64_t build_unix_ms;      /* when the build finished */
} idx_index_info;
void idx_index_info_get(const idx_index *ix, idx_index_info *out);
/* Full check: the checksum of every section (open skips docs.cw sections over 64 MiB,
 * i.e. the document text of large corpora), every
 * posting block decoded, every document record. O(index size).
 * Errors: CW_ECORRUPT (file + byte offset). */
int idx_index_verify(const idx_index *ix, cw_err *err) CW_MUST_CHECK;

/* Collection statistics of a field. */
typedef struct idx_field_stats {
    uint64_t doc_count;   /* N: documents with the field non-empty (Lucene docCount) */
    uint64_t total_terms; /* sumTotalTermFreq */
    double avg_len;       /* avgdl = total_terms / doc_count */
} idx_field_stats;
void idx_index_field_stats(const idx_index *ix, idx_field f, idx_field_stats *out);

/* A stored document; every pointer is borrowed and valid while the index is open.
 * Strings are UTF-8 and NOT NUL-terminated. */
typedef struct idx_doc {
    const char *id;
    size_t id_len;
    const char *title;
    size_t title_len;
    const char *text;
    size_t text_len;
    const char *fields_json; /* JSON object of the other stored string fields ("{}" if none) */
    size_t fields_len;
    uint32_t len[IDX_N_FIELDS]; /* analysed length of each field */
} idx_doc;

/* Errors: CW_ENOTFOUND (docid out of range), CW_ECORRUPT. */
int idx_doc_get(const idx_index *ix, uint32_t docid, idx_doc *out, cw_err *err) CW_MUST_CHECK;
/* External id -> internal docid. Errors: CW_ENOTFOUND. O(log n). */
int idx_doc_lookup(const idx_index *ix, const char *id, size_t id_len, uint32_t *docid,
                   cw_err *err) CW_MUST_CHECK;

/* ---- queries and retrieval ----------------------------------------------- */

typedef struct idx_query idx_query; /* analysed query; immutable, owned by the caller */

/* Analyses query text with the index's analyzer. Repeated terms count once per
 * occurrence; terms not in the vocabulary are kept (df 0, they score nothing).
 * A query of only stopwords gives a query with 0 terms (search returns no hits).
 * Errors: CW_EINVAL (empty), CW_ELIMIT (> IDX_MAX_QUERY_BYTES), CW_EPARSE (invalid UTF-8).
 * Free with idx_query_free. */
int idx_query_parse(const idx_index *ix, idx_analyzer *a, const char *text, size_t len,
                    idx_query **out, cw_err *err) CW_MUST_CHECK;
void idx_query_free(idx_query *q);
size_t idx_query_n_terms(const idx_query *q);
/* The i-th analysed term (borrowed, NUL-terminated) and its flat-field document frequency. */
const char *idx_query_term(const idx_query *q, size_t i, uint64_t *df);
/* Document frequencies of the i-th analysed term per field of ix, the index q was parsed
 * against: df[IDX_FIELD_TITLE], df[IDX_FIELD_TEXT], df[IDX_FIELD_FLAT]; all 0 for a term
 * not in the vocabulary or i out of range. With idx_index_field_stats they give per-field
 * BM25 equal to idx_score_fields from term frequencies counted elsewhere (ranker/). */
void idx_query_term_field_df(const idx_index *ix, const idx_query *q, size_t i,
                             uint64_t df[IDX_N_FIELDS]);

typedef struct idx_search_opts {
    uint32_t k;       /* 1..IDX_MAX_K */
    uint32_t offset;  /* results skipped (paging); offset + k <= IDX_MAX_K */
    bool conjunctive; /* AND instead of the default OR */
    bool exhaustive;  /* score every matching document (the test oracle) */
    idx_bm25_params bm25;
} idx_search_opts;
idx_search_opts idx_search_opts_default(void);

typedef struct idx_hit {
    uint32_t doc; /* internal docid */
    double score; /* flat-field BM25 */
} idx_hit;

/* Top-k by flat BM25, best first, ties broken by ascending docid. Pruned (block-max
 * WAND) results are identical to exhaustive ones. hits must hold opts->k entries.
 * *n_hits may be < k. *total_matches gets the number of matching documents when
 * exhaustive, else a lower bound (may be NULL). Errors: CW_EINVAL (k range). */
int idx_search(const idx_index *ix, const idx_query *q, const idx_search_opts *opts, idx_hit *hits,
               size_t *n_hits, uint64_t *total_matches, cw_err *err) CW_MUST_CHECK;

/* BM25 of query q for one document in each field (title, text, flat), for the ranker.
 * Errors: CW_ENOTFOUND (docid). */
int idx_score_fields(const idx_index *ix, const idx_query *q, uint32_t docid,
                     const idx_bm25_params *bm25, double out[IDX_N_FIELDS],
                     cw_err *err) CW_MUST_CHECK;

/* idx_score_fields of n documents at once (any order, repeats allowed): out[i] is
 * bit-identical to idx_score_fields(docids[i]); each posting list is walked once for all
 * of them. out is unspecified on error. Errors: CW_ENOTFOUND, CW_ENOMEM, CW_ECORRUPT. */
int idx_score_fields_many(const idx_index *ix, const idx_query *q, const uint32_t *docids, size_t n,
                          const idx_bm25_params *bm25, double (*out)[IDX_N_FIELDS],
                          cw_err *err) CW_MUST_CHECK;

/* A snippet of the document's text around the densest window of query terms, at most
 * max_bytes of source text, HTML-escaped, query terms wrapped in <mark>...</mark>,
 * appended to out. Errors: CW_ENOMEM, CW_ENOTFOUND. */
int idx_snippet(const idx_index *ix, idx_analyzer *a, const idx_query *q, uint32_t docid,
                size_t max_bytes, cw_buf *out, cw_err *err) CW_MUST_CHECK;

/* idx_snippet from tokens analysed elsewhere (the server's feature extraction analyses
 * each shown document once and feeds them here): make one per query, per document call
 * idx_snip_tokens_reset, pass idx_snip_tokens_add as the idx_token_fn of an idx_analyze
 * of the document's WHOLE text with the same analyzer, then idx_snippet_tokens, whose
 * output is then byte-identical to idx_snippet's. Errors: CW_ENOMEM, CW_ENOTFOUND. */
typedef struct idx_snip_tokens idx_snip_tokens;
int idx_snip_tokens_new(const idx_query *q, idx_snip_tokens **out, cw_err *err) CW_MUST_CHECK;
void idx_snip_tokens_free(idx_snip_tokens *t);
void idx_snip_tokens_reset(idx_snip_tokens *t);
int idx_snip_tokens_add(void *ctx, const idx_token *tok);
/* The same from a stored token: its [byte_begin, byte_end) in the text and whether it is
 * a query term (as idx_snip_tokens_add would find). Errors: CW_ENOMEM. */
int idx_snip_tokens_add_span(idx_snip_tokens *t, size_t byte_begin, size_t byte_end,
                             bool match) CW_MUST_CHECK;
int idx_snippet_tokens(const idx_index *ix, const idx_snip_tokens *t, uint32_t docid,
                       size_t max_bytes, cw_buf *out, cw_err *err) CW_MUST_CHECK;

/* ---- synthetic corpus (index/synth.c) ------------------------------------ */

/* A deterministic, seeded test collection with topical structure: corpus.jsonl,
 * queries.tsv and graded qrels.txt. The generative model (all draws from one seed;
 * document i uses its own RNG stream, so it does not depend on the documents before it):
 *
 * - Vocabulary: V made-up pronounceable words of 2+ consonant-vowel syllables
 *   (consonants bdfghklmnprstvz, vowels aeiou; shorter words for frequent ranks, none
 *   is a stopword). Background distribution: Zipf-Mandelbrot p(r) ~ 1/(r + 2.7)^s
 *   over ranks r = 0..V-1 (Mandelbrot 1953; s = zipf_s, default 1.0).
 * - Topics: K topics, each with words_per_topic distinct words drawn from background
 *   ranks >= 50 with probability ~ (r + 2.7)^-0.8 (the 50 commonest words stay
 *   topic-neutral, like function words; commoner words serve many topics, so query words
 *   also occur off topic); within a topic the j-th word has probability ~ 1/(j + 1).
 *   Topic popularity is Zipf with exponent 0.5 over topic numbers.
 * - Documents: 1, 2 or 3 distinct relevant topics (probabilities .55/.30/.15) drawn by
 *   popularity, mixture weights from a flat Dirichlet (normalised Exp(1) draws), plus one
 *   distractor topic (passing mentions, never relevant) taking a share d ~ U(0, 0.4) of
 *   the topical tokens: topic t's share is w_t = (1 - d) * its Dirichlet weight.
 *   A focus f ~ U(0.15, 0.55) = share of body tokens drawn from the topics (the rest from
 *   the background). Body length ~ round(doc_len_mean * LogNormal(-0.18, 0.6)), >= 1
 *   (mean doc_len_mean); sentences of 6-18 words, first word capitalised, ending in '.'.
 *   Title: 3-8 words with focus min(1, f + 0.4), first word capitalised.
 * - Queries: topic drawn by popularity, 2-4 distinct words from that topic's distribution;
 *   each term after the first is instead a general word (drawn like topic words) with
 *   probability 0.25. Ids "1".."n_queries".
 * - Relevance of document d to query q with topic t: r = w_t(d) * f(d) / 0.55;
 *   grade 3 if r >= 0.7, 2 if r >= 0.45, 1 if r >= 0.2, else 0 (not listed).
 *   qrels lines "qid 0 docid grade" sorted by query then document; queries without a
 *   relevant document are kept in queries.tsv but have no qrels (they are not evaluated).
 *   Later issues simulate users on these grades (ymax = 3). Exact BM25 (k1 0.9, b 0.4)
 *   reaches nDCG@10 about 0.59, MAP about 0.5, P@10 about 0.75 (20,000 docs, seed 3).
 * Document ids are "d" + number, 1-based. Memory is O(V + K * words_per_topic + number of
 * qrels), independent of the number of documents; output is streamed. */
typedef struct idx_synth_opts {
    uint64_t seed;
    uint64_t n_docs;          /* documents, >= 1 */
    uint32_t n_queries;       /* queries, >= 1 */
    uint32_t n_topics;        /* K; 0 = auto: clamp(n_docs / 50, 8, 20000) */
    uint32_t vocab_size;      /* V; 0 = auto: clamp(20 * sqrt(n_docs * doc_len_mean), 5000, 1e6) */
    uint32_t words_per_topic; /* distinct words per topic, default 100 */
    uint32_t doc_len_mean;    /* mean body length in tokens, default 200 */
    double zipf_s;            /* background Zipf exponent, default 1.0 */
    cw_progress progress;     /* stage "synth", documents written / n_docs */
} idx_synth_opts;

/* Defaults: seed 1, 10,000 docs, 200 queries, auto K and V, 100 words/topic, 200 tokens. */
idx_synth_opts idx_synth_opts_default(void);

#define IDX_SYNTH_MAX_DOCS 1000000000ull /* --docs limit */
#define IDX_SYNTH_MAX_QUERIES 1000000u
#define IDX_SYNTH_MAX_DOC_LEN 100000u
#define IDX_SYNTH_MAX_VOCAB 5000000u
#define IDX_SYNTH_MAX_QRELS 100000000ull /* judged pairs buffered for sorting */

typedef struct idx_synth_stats {
    uint64_t n_docs;
    uint32_t n_queries;
    uint32_t n_judged_queries; /* queries with at least one relevant document */
    uint64_t n_qrels;          /* lines of qrels.txt */
    uint64_t n_tokens;         /* title + body tokens generated */
    uint64_t corpus_bytes;     /* size of corpus.jsonl */
    uint32_t n_topics;         /* K used */
    uint32_t vocab_size;       /* V used */
    double seconds;
} idx_synth_stats;

/* Writes out_dir/corpus.jsonl, out_dir/queries.tsv and out_dir/qrels.txt (creating
 * out_dir; each file goes to a temporary name and is renamed when complete).
 * Same options and seed give byte-identical files. stats may be NULL.
 * Errors: CW_EINVAL (option out of range), CW_ELIMIT (more than IDX_SYNTH_MAX_QRELS
 * judged pairs), CW_EIO, CW_ENOMEM, CW_EINTR. */
int idx_synth_write(const idx_synth_opts *opts, const char *out_dir, idx_synth_stats *stats,
                    cw_err *err) CW_MUST_CHECK;

/* ---- dense vectors (issue 6) --------------------------------------------- */
/* A CPU text encoder trained without labels by contrastive learning (METHODS.md
 * section 7), an HNSW approximate nearest-neighbour index over the documents'
 * vectors (with exact search as option and oracle) and BM25 + dense fusion.
 * Files in an index directory: dense.enc (encoder), dense.ckpt (training state),
 * dense.hnsw (vectors + graph, memory-mapped, CRC-checked at open). */

#define IDX_DENSE_MAX_DIM 1024u          /* encoder output dimension */
#define IDX_DENSE_MAX_BUCKETS (1u << 24) /* hashed feature rows */
#define IDX_DENSE_MAX_EF 4096u           /* HNSW search beam */
#define IDX_DENSE_MAX_M 128u             /* HNSW out-degree (upper layers) */

/* Encoder: words (lower-cased runs of ASCII letters/digits and non-ASCII bytes)
 * give hashed unigram, bigram and character n-gram features; their rows of an
 * embedding table are pooled with idf weights, projected by a d x d matrix and
 * L2-normalised. */
typedef struct idx_encoder_opts {
    uint32_t dim;       /* output dimension d, default 128 */
    uint32_t n_buckets; /* rows of the hashed embedding table, default 2^18 */
    uint32_t ngram_min; /* character n-grams of "<word>", default 3 (0 = none) */
    uint32_t ngram_max; /* default 5 */
    bool bigrams;       /* word bigram features, default true */
    uint64_t seed;      /* initialisation seed */
} idx_encoder_opts;
idx_encoder_opts idx_encoder_opts_default(void);

/* Immutable after training or load: idx_encoder_encode is thread-safe. */
typedef struct idx_encoder idx_encoder;

/* A new randomly initialised encoder (deterministic for opts->seed): the embedding
 * rows are Gaussian, so before training the encoder is a random projection of the
 * idf-weighted bag of features. Errors: CW_EINVAL, CW_ELIMIT, CW_ENOMEM.
 * Free with idx_encoder_free. */
int idx_encoder_new(const idx_encoder_opts *opts, idx_encoder **out, cw_err *err) CW_MUST_CHECK;
void idx_encoder_free(idx_encoder *enc);
uint32_t idx_encoder_dim(const idx_encoder *enc);
/* Encodes UTF-8 text into out[dim], a unit vector (all zeros if the text has no word).
 * O(len); no allocation for texts under 4096 words. Errors: CW_ENOMEM. */
int idx_encoder_encode(const idx_encoder *enc, const char *text, size_t len, float *out,
                       cw_err *err) CW_MUST_CHECK;
/* Saves/loads the inference weights (checksummed) and the training corpus's most
 * frequent words (at most IDX_DENSE_CACHE_WORDS; files without them still load).
 * Load turns the word cache on. Load errors: CW_ENOTFOUND, CW_ECORRUPT (path + byte
 * offset), CW_EIO, CW_ENOMEM. */
int idx_encoder_save(const idx_encoder *enc, const char *path, cw_err *err) CW_MUST_CHECK;
int idx_encoder_load(const char *path, idx_encoder **out, cw_err *err) CW_MUST_CHECK;
/* idx_encoder_load without building the word cache, for callers that would drop it at
 * once: fine-tuning (the table changes) and the uncached baseline. Encodings equal the
 * cached ones up to float rounding; idx_encoder_set_word_cache(enc, true, ...) builds it
 * later. Same errors as idx_encoder_load. */
int idx_encoder_load_uncached(const char *path, idx_encoder **out, cw_err *err) CW_MUST_CHECK;

#define IDX_DENSE_CACHE_WORDS 65536u /* words an encoder keeps pooled rows for */
/* Word cache: each saved word's idf-weighted sum of its unigram and character n-gram rows
 * (dim floats a word, 32 MiB at d = 128), so that encoding such a word costs one lookup
 * and one row add instead of ~15 hashed rows; the output is the uncached one up to float
 * rounding (|difference| <= 1e-6 per component). on = true builds it from the current
 * table (O(words x features x dim)), false frees it (the baseline). Training drops it.
 * Not thread-safe: call before sharing the encoder. Errors: CW_ENOMEM. */
int idx_encoder_set_word_cache(idx_encoder *enc, bool on, cw_err *err) CW_MUST_CHECK;
/* Words the cache holds (0 = off). */
uint32_t idx_encoder_cached_words(const idx_encoder *enc);

typedef enum idx_contrastive_mode {
    IDX_CONTRASTIVE_MOCO = 0,   /* momentum key encoder; negatives = in-batch keys + queue */
    IDX_CONTRASTIVE_SIMCLR = 1, /* one encoder, gradient through both views, in-batch only */
} idx_contrastive_mode;

typedef struct idx_train_opts {
    idx_contrastive_mode mode;
    uint32_t batch;  /* documents per step (2 views each), default 64 */
    uint32_t epochs; /* passes over the corpus, default 10 (0: fit the idf table only) */
    double tau;      /* InfoNCE temperature, default 0.05 */
    double momentum; /* MoCo key-encoder momentum m, default 0.995 */
    uint32_t queue;  /* MoCo queue length (multiple of batch), default 4096; keep it well
                      * below the corpus size, else a document's own older keys sit in
                      * the queue as false negatives (the CLI uses min(4096, n/4)) */
    double lr;       /* learning rate of the embedding rows (row-wise Adagrad), 0.05 */
    double lr_proj;  /* Adam learning rate of the projection, 1e-3 */
    double crop_min; /* Contriever crop length, fraction of the document: 0.05 */
    double crop_max; /* 0.5 */
    double p_delete; /* word deletion probability, 0.1 */
    uint64_t seed;   /* augmentation and batching seed */
    const char
        *ckpt_path;      /* checkpoint written as below, at the end and on interrupt (NULL: none) */
    uint32_t ckpt_every; /* every this many steps; 0 (default): by time only */
    uint32_t ckpt_secs;  /* and every this many seconds, default 300; 0: never by time. A
                          * checkpoint of a 2^18 x 128 table is ~260 MB: every 200 steps
                          * of a 1M-document run wrote 20 GB and took a fifth of its time */
    bool resume;         /* continue from ckpt_path if it exists */
    bool lsa_init;       /* start from LSA: randomized SVD of the document-feature matrix */
    uint32_t lsa_power_iters; /* power iterations of the randomized SVD, default 2 */
    cw_progress progress;     /* stage "embed-train", done/total steps */
} idx_train_opts;
idx_train_opts idx_train_opts_default(void);

typedef struct idx_train_stats {
    uint64_t steps;      /* optimisation steps done in total (resumed ones included) */
    double first_loss;   /* mean InfoNCE loss of the first 20 steps of this run */
    double last_loss;    /* mean loss of the last 20 steps */
    double docs_per_sec; /* documents (pairs of views) per second in this run */
    double seconds;
} idx_train_stats;

/* Contrastive pre-training of enc on n_docs texts (borrowed for the call): two
 * augmented views per document (Contriever cropping + word deletion), InfoNCE with
 * temperature tau (METHODS.md section 7), similarity matrices by cblas_sgemm. Fits the
 * idf table first. Interruptible (cw_interrupted) after writing a checkpoint.
 * Errors: CW_EINVAL (options, n_docs < 2), CW_EINTR, CW_EIO, CW_ECORRUPT (checkpoint
 * of another configuration or damaged), CW_ENUMERIC (loss not finite), CW_ENOMEM. */
int idx_encoder_train(idx_encoder *enc, const char *const *texts, const size_t *lens, size_t n_docs,
                      const idx_train_opts *opts, idx_train_stats *stats,
                      cw_err *err) CW_MUST_CHECK;

/* One (query, clicked document) pair of the click log for fine-tuning. */
typedef struct idx_click_pair {
    const char *query; /* query text (borrowed for the call) */
    size_t query_len;
    uint32_t doc;  /* the clicked document: index into the texts */
    double weight; /* >= 0: its inverse examination propensity 1 / theta_k (clipped) */
} idx_click_pair;

/* Fine-tunes enc on click pairs (the optional counterfactual step of issue 6): InfoNCE of
 * each whole query against its clicked whole document, with the other documents of the
 * batch as negatives (SimCLR-style, no queue), each row weighted by the pair's inverse
 * propensity, so that position-biased clicks count as relevance would. Uses opts' batch,
 * epochs, tau, lr, lr_proj, seed, progress; keeps enc's idf and word list (drops its word
 * cache). texts[n_docs] are the documents pairs refer to. Errors: CW_EINVAL (fewer than 2
 * pairs, a document out of range, a negative or non-finite weight, all weights 0, bad
 * options), CW_EINTR, CW_ENUMERIC, CW_ENOMEM. */
int idx_encoder_finetune(idx_encoder *enc, const char *const *texts, const size_t *lens,
                         size_t n_docs, const idx_click_pair *pairs, size_t n_pairs,
                         const idx_train_opts *opts, idx_train_stats *stats,
                         cw_err *err) CW_MUST_CHECK;

/* InfoNCE of one query view against keys (exposed for the gradient test): logits
 * s_j = q.k_j / tau over n_keys keys (dim each, row-major), label = index `pos`.
 * Returns the loss; writes dL/dq into grad_q[dim] and, if grad_k is not NULL,
 * dL/dk into grad_k[n_keys * dim]. */
double idx_infonce(const float *q, const float *keys, size_t n_keys, size_t dim, size_t pos,
                   double tau, float *grad_q, float *grad_k);

/* HNSW (Malkov & Yashunin, TPAMI 2020) over unit vectors, similarity = dot product. */
typedef struct idx_hnsw_opts {
    uint32_t m;               /* out-degree on upper layers (2m on layer 0), default 32 */
    uint32_t ef_construction; /* default 100 */
    uint64_t seed;            /* level draws */
    cw_progress progress;     /* stage "hnsw", done/total vectors */
} idx_hnsw_opts;
idx_hnsw_opts idx_hnsw_opts_default(void);

/* Builds the graph over n vectors vecs[n * dim] and writes it with the vectors to
 * path (atomically). Vector i is document i. Errors: CW_EINVAL, CW_EIO, CW_EINTR,
 * CW_ENOMEM. */
int idx_hnsw_build(const float *vecs, uint32_t n, uint32_t dim, const idx_hnsw_opts *opts,
                   const char *path, cw_err *err) CW_MUST_CHECK;

/* The memory-mapped file; immutable and thread-safe once open. */
typedef struct idx_hnsw idx_hnsw;
/* Maps path, checks magic, version, bounds of every link and the CRC-32C of every
 * section. Errors: CW_ENOTFOUND, CW_ECORRUPT (path + byte offset), CW_EIO. */
int idx_hnsw_open(const char *path, idx_hnsw **out, cw_err *err) CW_MUST_CHECK;
void idx_hnsw_close(idx_hnsw *h);
uint32_t idx_hnsw_n(const idx_hnsw *h);
uint32_t idx_hnsw_dim(const idx_hnsw *h);
/* Vector of item i (borrowed, valid while open); NULL if i is out of range. */
const float *idx_hnsw_vector(const idx_hnsw *h, uint32_t i);
/* Bytes mapped (vectors + graph). */
uint64_t idx_hnsw_bytes(const idx_hnsw *h);

/* Per-thread search state (visited marks); not thread-safe. Free with
 * idx_hnsw_searcher_free. Returns NULL on ENOMEM. */
typedef struct idx_hnsw_searcher idx_hnsw_searcher;
idx_hnsw_searcher *idx_hnsw_searcher_new(const idx_hnsw *h);
void idx_hnsw_searcher_free(idx_hnsw_searcher *s);

/* Top-k by dot product with q[dim], best first (score = q.v, ties by ascending id).
 * ef (>= k, <= IDX_DENSE_MAX_EF) is the recall/speed knob; exact = true scans every
 * vector (the oracle; s may then be NULL). hits holds k entries; *n_hits <= k.
 * Errors: CW_EINVAL (k, ef). */
int idx_hnsw_search(const idx_hnsw *h, idx_hnsw_searcher *s, const float *q, uint32_t k,
                    uint32_t ef, bool exact, idx_hit *hits, size_t *n_hits,
                    cw_err *err) CW_MUST_CHECK;

/* Dense side of an index directory: dense.enc + dense.hnsw. Immutable once open. */
typedef struct idx_dense idx_dense;
/* Errors: CW_ENOTFOUND (no dense files: run `causeway embed train/build`), CW_ECORRUPT,
 * CW_EIO, CW_ENOMEM. */
int idx_dense_open(const char *dir, idx_dense **out, cw_err *err) CW_MUST_CHECK;
void idx_dense_close(idx_dense *dn);
const idx_encoder *idx_dense_encoder(const idx_dense *dn);
const idx_hnsw *idx_dense_hnsw(const idx_dense *dn);
/* Ranker feature: cosine(q, document docid) for a unit query vector q from
 * idx_encoder_encode (documents are stored unit-norm). Errors: CW_ENOTFOUND (docid). */
int idx_dense_cosine(const idx_dense *dn, const float *q, uint32_t docid, double *out,
                     cw_err *err) CW_MUST_CHECK;

/* Fusion of a BM25 and a dense run (both best first). */
typedef enum idx_fusion {
    IDX_FUSION_RRF = 0,      /* sum over runs of 1 / (rrf_k + rank), Cormack et al. 2009 */
    IDX_FUSION_WEIGHTED = 1, /* (1 - w) * minmax(bm25) + w * minmax(dense), missing = 0 */
} idx_fusion;

typedef struct idx_hybrid_opts {
    idx_fusion fusion; /* default RRF */
    double rrf_k;      /* default 60 */
    double w_dense;    /* weight of the dense run in [0,1] (both methods), default 0.5 */
    uint32_t depth;    /* candidates taken from each run, default 100 */
    uint32_t ef;       /* HNSW beam, default 128 */
    bool exact;        /* exact dense search instead of HNSW */
} idx_hybrid_opts;
idx_hybrid_opts idx_hybrid_opts_default(void);

/* Fuses two runs into the top out_k documents of their union, best first (ties by
 * ascending docid); out holds out_k entries, score = fused score. RRF weighs the runs
 * 2(1 - w) and 2w (w = 0.5 is plain RRF). Errors: CW_EINVAL, CW_ENOMEM. */
int idx_fuse(const idx_hit *bm25, size_t n_bm25, const idx_hit *dense, size_t n_dense,
             const idx_hybrid_opts *opts, uint32_t out_k, idx_hit *out, size_t *n_out,
             cw_err *err) CW_MUST_CHECK;

/* Hybrid retrieval for one query: BM25 top-depth (idx_search with *bm25 options) and
 * dense top-depth of the encoded text, fused by idx_fuse; the top bm25->k land in
 * hits (bm25->offset honoured). s is the caller's per-thread searcher.
 * Errors: those of idx_search, idx_hnsw_search, idx_encoder_encode. */
int idx_hybrid_search(const idx_index *ix, const idx_dense *dn, idx_hnsw_searcher *s,
                      const idx_query *q, const char *text, size_t len, const idx_search_opts *bm25,
                      const idx_hybrid_opts *opts, idx_hit *hits, size_t *n_hits,
                      cw_err *err) CW_MUST_CHECK;

#endif /* CAUSEWAY_INDEX_INDEX_H */
