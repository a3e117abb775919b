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
#define IDX_MAX_QUERY_BYTES 1024u   /* query text, bytes of UTF-8 */
#define IDX_MAX_K 1000u             /* results per search */
#define IDX_MAX_QUERY_TERMS 64u     /* analyzed terms kept per query */
#define IDX_MAX_ID_BYTES 256u       /* external document id */
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

/* ---- analysis ------------------------------------------------------------ */

/* Analyzer settings, stored in the index and applied identically to queries. */
typedef struct idx_analyzer_opts {
    bool stem;           /* Snowball stemming */
    char stemmer[32];    /* Snowball algorithm: "porter" (default, METHODS.md) or "english" */
    bool stopwords;      /* drop the stopword list before stemming */
} idx_analyzer_opts;

typedef struct idx_analyzer idx_analyzer; /* not thread-safe: one per thread */

/* One analyzed token. `term` is the normalised (case-folded, stemmed) form,
 * valid only during the callback. Offsets point into the original text. */
typedef struct idx_token {
    const char *term;
    size_t term_len;
    uint32_t position;     /* ordinal among kept tokens, 0-based */
    size_t byte_begin;     /* [begin, end) in the original text */
    size_t byte_end;
} idx_token;

/* Called per kept token; return CW_OK to go on, anything else stops analysis
 * and is returned by idx_analyze. */
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
    cw_progress progress;    /* stage "index" with bytes read / file size */
} idx_build_opts;

typedef struct idx_build_stats {
    uint64_t n_docs;        /* documents indexed */
    uint64_t n_skipped;     /* malformed lines skipped under skip_bad */
    uint64_t n_terms;       /* distinct terms */
    uint64_t n_postings;    /* (term, doc) pairs in the flat field */
    uint64_t n_tokens;      /* analysed tokens in the flat field */
    uint64_t index_bytes;   /* bytes of the finished index directory */
    uint64_t input_bytes;   /* bytes of corpus read */
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

typedef struct idx_search_opts {
    uint32_t k;            /* 1..IDX_MAX_K */
    uint32_t offset;       /* results skipped (paging); offset + k <= IDX_MAX_K */
    bool conjunctive;      /* AND instead of the default OR */
    bool exhaustive;       /* score every matching document (the test oracle) */
    idx_bm25_params bm25;
} idx_search_opts;
idx_search_opts idx_search_opts_default(void);

typedef struct idx_hit {
    uint32_t doc;  /* internal docid */
    double score;  /* flat-field BM25 */
} idx_hit;

/* Top-k by flat BM25, best first, ties broken by ascending docid. Pruned (block-max
 * WAND) results are identical to exhaustive ones. hits must hold opts->k entries.
 * *n_hits may be < k. *total_matches gets the number of matching documents when
 * exhaustive, else a lower bound (may be NULL). Errors: CW_EINVAL (k range). */
int idx_search(const idx_index *ix, const idx_query *q, const idx_search_opts *opts,
               idx_hit *hits, size_t *n_hits, uint64_t *total_matches, cw_err *err) CW_MUST_CHECK;

/* BM25 of query q for one document in each field (title, text, flat), for the ranker.
 * Errors: CW_ENOTFOUND (docid). */
int idx_score_fields(const idx_index *ix, const idx_query *q, uint32_t docid,
                     const idx_bm25_params *bm25, double out[IDX_N_FIELDS], cw_err *err) CW_MUST_CHECK;

/* A snippet of the document's text around the densest window of query terms, at most
 * max_bytes of source text, HTML-escaped, query terms wrapped in <mark>...</mark>,
 * appended to out. Errors: CW_ENOMEM, CW_ENOTFOUND. */
int idx_snippet(const idx_index *ix, idx_analyzer *a, const idx_query *q, uint32_t docid,
                size_t max_bytes, cw_buf *out, cw_err *err) CW_MUST_CHECK;

#endif /* CAUSEWAY_INDEX_INDEX_H */
