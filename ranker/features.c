/* ranker/features.c: the (query, document) feature vector of feature set cw-text-v1,
 * computed identically when the server ranks (and logs it) and when training reads it.
 * Data flow: index/ (BM25 per field, stored text, analyzer) -> features -> model / log. */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ranker/ranker.h"

struct rank_features {
    const idx_index *ix;
    idx_bm25_params bm25;
    size_t n_static;
    size_t n;      /* RANK_TEXT_FEATURES + n_static */
    char **names;  /* n names */
    double n_docs; /* flat-field docCount for idf */
    /* forward store: token hashes of docs [0, fwd_docs) in position order */
    uint32_t fwd_docs;
    uint64_t *fwd_begin; /* fwd_docs + 1 offsets into fwd_hash */
    uint32_t *fwd_hash;
    /* with text spans: 2 per stored token, its [begin, end) bytes in its field (so a
     * shown text's snippet needs no analysis either); NULL without */
    uint32_t *fwd_span;
    /* Per-field document frequencies of every term of the stored documents, keyed by the
     * 64-bit term hash (0 = empty slot): with them and the tf counted in the forward store,
     * per-field BM25 needs no posting-list access (index/'s idx_score_fields costs ~3 us
     * per candidate on long queries, the scan ~0.2 us). */
    uint64_t *df_key;
    uint32_t *df_title, *df_text;
    size_t df_cap, df_n; /* slots (power of two), keys */
    bool has_df;         /* every document is in the forward store: the table is exact */
    idx_field_stats fstats[IDX_N_FIELDS];
    const idx_dense *dn; /* dense_cos is the last feature when set */
};

/* Term hashes are idx_token's term_hash (cw_hash64 with seed 0, computed once per
 * distinct word by the analyzer), so the per-token paths hash nothing themselves. */

/* Never 0: the forward store uses 0 for the title/text gap. */
static uint32_t hash32(uint64_t h)
{
    uint32_t x = (uint32_t)h;
    return x ? x : 1;
}

/* Key of the document-frequency table: the full 64 bits (never 0 = empty). */
static uint64_t hash_key(uint64_t h)
{
    return h ? h : 1;
}

static uint32_t term_hash(const char *t, size_t len)
{
    return hash32(cw_hash64(t, len, 0));
}

static uint64_t term_key(const char *t, size_t len)
{
    return hash_key(cw_hash64(t, len, 0));
}

static size_t df_slot(const rank_features *fx, uint64_t key)
{
    size_t s = (size_t)(key ^ (key >> 29)) & (fx->df_cap - 1);
    while (fx->df_key[s] != 0 && fx->df_key[s] != key) {
        s = (s + 1) & (fx->df_cap - 1);
    }
    return s;
}

/* Adds one document to the df of key in field f (0 title, 1 text). */
static int df_add(rank_features *fx, uint64_t key, int f)
{
    if (2 * (fx->df_n + 1) > fx->df_cap) { /* keep the load under 1/2 */
        size_t cap = fx->df_cap ? 2 * fx->df_cap : 1024;
        uint64_t *k = calloc(cap, sizeof *k);
        uint32_t *t = calloc(cap, sizeof *t), *x = calloc(cap, sizeof *x);
        if (!k || !t || !x) {
            free(k);
            free(t);
            free(x);
            return CW_ENOMEM;
        }
        rank_features old = *fx;
        fx->df_key = k;
        fx->df_title = t;
        fx->df_text = x;
        fx->df_cap = cap;
        for (size_t i = 0; i < old.df_cap; i++) {
            if (old.df_key[i]) {
                size_t s = df_slot(fx, old.df_key[i]);
                k[s] = old.df_key[i];
                t[s] = old.df_title[i];
                x[s] = old.df_text[i];
            }
        }
        free(old.df_key);
        free(old.df_title);
        free(old.df_text);
    }
    size_t s = df_slot(fx, key);
    if (fx->df_key[s] == 0) {
        fx->df_key[s] = key;
        fx->df_n++;
    }
    (f == 0 ? fx->df_title : fx->df_text)[s]++;
    return CW_OK;
}

typedef struct fwd_ctx {
    uint32_t *hash;
    uint32_t *span; /* 2 per token when spans are kept, else NULL throughout */
    bool spans;
    size_t n, cap;
    size_t max;
    uint64_t *keys; /* the current field's 64-bit keys, for its distinct terms */
    size_t n_keys, cap_keys;
} fwd_ctx;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Counts the field's distinct terms (c->keys) into the df table and empties c->keys. */
static int flush_df(rank_features *fx, fwd_ctx *c, int f)
{
    qsort(c->keys, c->n_keys, sizeof *c->keys, cmp_u64);
    int rc = CW_OK;
    for (size_t i = 0; i < c->n_keys && rc == CW_OK; i++) {
        if (i == 0 || c->keys[i] != c->keys[i - 1]) {
            rc = df_add(fx, c->keys[i], f);
        }
    }
    c->n_keys = 0;
    return rc;
}

static int fwd_push(fwd_ctx *c, uint32_t h, size_t b, size_t e)
{
    if (c->n == c->max) {
        return 1; /* budget spent: stop this document (positive = not an error) */
    }
    if (c->n == c->cap) {
        size_t cap = CW_MIN(c->cap ? 2 * c->cap : 4096, c->max);
        uint32_t *p = realloc(c->hash, cap * sizeof *p);
        if (!p) {
            return CW_ENOMEM;
        }
        c->hash = p;
        if (c->spans) {
            uint32_t *sp = realloc(c->span, 2 * cap * sizeof *sp);
            if (!sp) {
                return CW_ENOMEM;
            }
            c->span = sp;
        }
        c->cap = cap;
    }
    if (c->spans) { /* fields are at most RANK_FEATURE_MAX_TEXT_BYTES: offsets fit */
        c->span[2 * c->n] = (uint32_t)b;
        c->span[2 * c->n + 1] = (uint32_t)e;
    }
    c->hash[c->n++] = h;
    return CW_OK;
}

static int on_fwd_token(void *vctx, const idx_token *tok)
{
    fwd_ctx *c = vctx;
    if (c->n_keys == c->cap_keys) {
        size_t cap = c->cap_keys ? 2 * c->cap_keys : 1024;
        uint64_t *p = realloc(c->keys, cap * sizeof *p);
        if (!p) {
            return CW_ENOMEM;
        }
        c->keys = p;
        c->cap_keys = cap;
    }
    c->keys[c->n_keys++] = hash_key(tok->term_hash);
    return fwd_push(c, hash32(tok->term_hash), tok->byte_begin, tok->byte_end);
}

/* Analyses documents in docid order into the forward store until max tokens; a gap hash
 * of 0 stands between title and text (positions match the per-call analysis). */
static int build_forward(rank_features *fx, size_t max_tokens, bool spans, cw_err *err)
{
    idx_analyzer *a = NULL;
    int rc = idx_index_analyzer(fx->ix, &a, err);
    if (rc != CW_OK) {
        return rc;
    }
    uint32_t n_docs = idx_index_n_docs(fx->ix);
    fx->fwd_begin = malloc(((size_t)n_docs + 1) * sizeof *fx->fwd_begin);
    if (!fx->fwd_begin) {
        idx_analyzer_free(a);
        return cw_err_set(err, CW_ENOMEM, "out of memory for the forward store");
    }
    fwd_ctx c = {.max = max_tokens, .spans = spans};
    fx->fwd_begin[0] = 0;
    uint32_t d = 0;
    for (; d < n_docs && rc == CW_OK; d++) {
        idx_doc doc;
        size_t start = c.n;
        rc = idx_doc_get(fx->ix, d, &doc, err);
        size_t budget = RANK_FEATURE_MAX_TEXT_BYTES;
        size_t tl = rc == CW_OK ? CW_MIN(doc.title_len, budget) : 0;
        c.n_keys = 0;
        if (tl > 0) {
            rc = idx_analyze(a, doc.title, tl, on_fwd_token, &c, err);
            budget -= tl;
            if (rc == CW_OK && c.n > start) {
                rc = fwd_push(&c, 0, 0, 0);
            }
        }
        rc = rc == CW_OK ? flush_df(fx, &c, 0) : rc;
        size_t xl = rc == CW_OK ? CW_MIN(doc.text_len, budget) : 0;
        if (xl > 0) {
            rc = idx_analyze(a, doc.text, xl, on_fwd_token, &c, err);
        }
        rc = rc == CW_OK ? flush_df(fx, &c, 1) : rc;
        if (rc == 1) { /* budget spent inside this document: it is not stored */
            c.n = start;
            rc = CW_OK;
            break;
        }
        fx->fwd_begin[d + 1] = c.n;
    }
    idx_analyzer_free(a);
    free(c.keys);
    if (rc == CW_ENOMEM) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory for the forward store");
    }
    if (rc != CW_OK) {
        free(c.hash);
        free(c.span);
        return rc;
    }
    fx->fwd_docs = d;
    fx->fwd_hash = c.hash;
    fx->fwd_span = c.span;
    /* The df table counts only stored documents: it is exact when all of them are. */
    fx->has_df = d == n_docs;
    return CW_OK;
}

static const char *const text_names[RANK_TEXT_FEATURES] = {
    "bm25_title",      "bm25_text",       "bm25_flat",      "coverage",
    "idf_sum_matched", "idf_max_matched", "idf_mean_query", "query_terms",
    "log_len_title",   "log_len_text",    "proximity"};

int rank_features_new(const idx_index *ix, const char *const *static_fields, size_t n_static,
                      const idx_bm25_params *bm25, size_t forward_max_tokens, rank_features **out,
                      cw_err *err)
{
    return rank_features_new_spans(ix, static_fields, n_static, bm25, forward_max_tokens, false,
                                   out, err);
}

int rank_features_new_spans(const idx_index *ix, const char *const *static_fields, size_t n_static,
                            const idx_bm25_params *bm25, size_t forward_max_tokens, bool text_spans,
                            rank_features **out, cw_err *err)
{
    if (n_static > RANK_MAX_STATIC_FEATURES) {
        return cw_err_set(err, CW_EINVAL, "%zu static features, at most %u", n_static,
                          RANK_MAX_STATIC_FEATURES);
    }
    for (size_t i = 0; i < n_static; i++) {
        size_t len = static_fields[i] ? strlen(static_fields[i]) : 0;
        if (len == 0 || len + 8 > RANK_MAX_FEATURE_NAME) {
            return cw_err_set(err, CW_EINVAL, "static field %zu: name empty or over %u bytes", i,
                              RANK_MAX_FEATURE_NAME - 8);
        }
    }
    rank_features *fx = calloc(1, sizeof *fx);
    if (!fx) {
        return cw_err_set(err, CW_ENOMEM, "out of memory for the feature extractor");
    }
    fx->ix = ix;
    fx->bm25 = bm25 ? *bm25 : IDX_BM25_DEFAULT;
    fx->n_static = n_static;
    fx->n = RANK_TEXT_FEATURES + n_static;
    fx->names = calloc(fx->n, sizeof *fx->names);
    bool failed = !fx->names;
    for (size_t i = 0; !failed && i < fx->n; i++) {
        if (i < RANK_TEXT_FEATURES) {
            fx->names[i] = strdup(text_names[i]);
        } else {
            size_t len = strlen(static_fields[i - RANK_TEXT_FEATURES]) + 8;
            fx->names[i] = malloc(len);
            if (fx->names[i]) {
                snprintf(fx->names[i], len, "static:%s", static_fields[i - RANK_TEXT_FEATURES]);
            }
        }
        failed = !fx->names[i];
    }
    if (failed) {
        rank_features_free(fx);
        return cw_err_set(err, CW_ENOMEM, "out of memory for the feature extractor");
    }
    for (int f = 0; f < IDX_N_FIELDS; f++) {
        idx_index_field_stats(ix, (idx_field)f, &fx->fstats[f]);
    }
    fx->n_docs = (double)fx->fstats[IDX_FIELD_FLAT].doc_count;
    if (forward_max_tokens > 0) {
        int rc = build_forward(fx, forward_max_tokens, text_spans, err);
        if (rc != CW_OK) {
            rank_features_free(fx);
            return rc;
        }
    }
    *out = fx;
    return CW_OK;
}

void rank_features_free(rank_features *fx)
{
    if (!fx) {
        return;
    }
    for (size_t i = 0; fx->names && i < fx->n; i++) {
        free(fx->names[i]);
    }
    free(fx->names);
    free(fx->fwd_begin);
    free(fx->fwd_hash);
    free(fx->fwd_span);
    free(fx->df_key);
    free(fx->df_title);
    free(fx->df_text);
    free(fx);
}

int rank_features_add_dense(rank_features *fx, const idx_dense *dn, cw_err *err)
{
    if (fx->dn || !dn) {
        return cw_err_set(err, CW_EINVAL, "dense_cos: %s",
                          dn ? "already in the feature set" : "no dense index");
    }
    char **names = realloc(fx->names, (fx->n + 1) * sizeof *names);
    if (!names) {
        return cw_err_set(err, CW_ENOMEM, "out of memory for the feature extractor");
    }
    fx->names = names;
    if (!(names[fx->n] = strdup("dense_cos"))) {
        return cw_err_set(err, CW_ENOMEM, "out of memory for the feature extractor");
    }
    fx->n++;
    fx->dn = dn;
    return CW_OK;
}

size_t rank_features_n(const rank_features *fx)
{
    return fx->n;
}

const char *rank_features_name(const rank_features *fx, size_t i)
{
    return i < fx->n ? fx->names[i] : NULL;
}

const char *const *rank_features_names(const rank_features *fx)
{
    return (const char *const *)fx->names;
}

/* Distinct query terms with their idf. */
typedef struct qterm {
    const char *term;
    size_t len;
    double idf;
    uint32_t hash;
    uint64_t df_flat;       /* index/'s df (0: not in the vocabulary, scores nothing) */
    double count;           /* occurrences in the query (BM25 weights repeated terms) */
    double w[IDX_N_FIELDS]; /* count * idf of the field (BM25 from counted tfs) */
    size_t first;           /* index of the first occurrence in the query */
} qterm;

/* Query term table slots (slot = term index + 1): a power of two >= 2 * IDX_MAX_QUERY_TERMS,
 * at most half full, so probes stay short and always end at an empty slot (256 one-byte
 * slots hung or wrapped on queries of 256+ distinct terms). */
#define QTABLE 1024u
_Static_assert(QTABLE >= 2 * IDX_MAX_QUERY_TERMS && IDX_MAX_QUERY_TERMS < 65535,
               "qtable too small for IDX_MAX_QUERY_TERMS");

typedef struct match_ctx {
    const qterm *terms;
    size_t n_terms;
    uint32_t pos_base; /* title tokens precede text tokens */
    uint32_t last_pos;
    bool saw_token;
    uint32_t *m_pos; /* matches: token position and term index, in position order */
    uint16_t *m_term;
    size_t n_m, cap_m;
    bool *seen;                /* n_terms */
    uint32_t (*tf)[2];         /* n_terms title/text term frequencies */
    uint32_t len[2];           /* title/text tokens seen */
    int field;                 /* per-call path: 0 while analysing the title, 1 the text */
    bool whole;                /* per-call path: title and text analysed uncut */
    const rank_token_tap *tap; /* per-call text tokens also go there (may be NULL) */
    const uint16_t *table;     /* qtable_fill of terms */
} match_ctx;

static int add_match(match_ctx *c, uint32_t pos, size_t term)
{
    if (c->n_m == c->cap_m) {
        size_t cap = c->cap_m ? 2 * c->cap_m : 64;
        uint32_t *p = realloc(c->m_pos, cap * sizeof *p);
        if (!p) {
            return CW_ENOMEM;
        }
        c->m_pos = p;
        uint16_t *t = realloc(c->m_term, cap * sizeof *t);
        if (!t) {
            return CW_ENOMEM;
        }
        c->m_term = t;
        c->cap_m = cap;
    }
    c->m_pos[c->n_m] = pos;
    c->m_term[c->n_m] = (uint16_t)term;
    c->n_m++;
    c->seen[term] = true;
    return CW_OK;
}

/* Inline: the text path below calls it for every token of every analysed document. */
static inline int on_token(void *vctx, const idx_token *tok)
{
    match_ctx *c = vctx;
    c->last_pos = c->pos_base + tok->position;
    c->saw_token = true;
    c->len[c->field] = tok->position + 1;
    /* One hash probe instead of a compare per query term: this runs per token of every
     * analysed document (the uncached /search path without a forward store). */
    uint32_t h = hash32(tok->term_hash);
    for (uint32_t s = h & (QTABLE - 1); c->table[s]; s = (s + 1) & (QTABLE - 1)) {
        size_t j = c->table[s] - 1u;
        if (c->terms[j].hash == h && c->terms[j].len == tok->term_len &&
            memcmp(c->terms[j].term, tok->term, tok->term_len) == 0) {
            c->tf[j][c->field]++;
            return add_match(c, c->pos_base + tok->position, j);
        }
    }
    return CW_OK;
}

static int on_text_token_tap(void *vctx, const idx_token *tok)
{
    match_ctx *c = vctx;
    /* Most tokens have no query term of their hash: that path makes no call but the tail
     * call to the tap (no stack frame); a hash hit is compared by on_token. */
    uint32_t h = hash32(tok->term_hash);
    uint32_t s = h & (QTABLE - 1);
    while (c->table[s] && c->terms[c->table[s] - 1u].hash != h) {
        s = (s + 1) & (QTABLE - 1);
    }
    if (c->table[s]) {
        int rc = on_token(c, tok);
        return rc == CW_OK ? c->tap->text_token(c->tap->ctx, tok) : rc;
    }
    c->last_pos = c->pos_base + tok->position;
    c->saw_token = true;
    c->len[c->field] = tok->position + 1;
    return c->tap->text_token(c->tap->ctx, tok);
}

/* Whether analyze_doc takes a document's title and text whole (not cut at the budget). */
static bool doc_fits(const idx_doc *doc)
{
    return doc->title_len <= RANK_FEATURE_MAX_TEXT_BYTES &&
           doc->text_len <= RANK_FEATURE_MAX_TEXT_BYTES - doc->title_len;
}

/* Per-call path: analyse the stored title and text (capped) into matches, per-field term
 * frequencies and token counts; the text's tokens also go to c->tap when the whole text
 * is analysed. */
static int analyze_doc(idx_analyzer *a, const idx_doc *doc, match_ctx *c, size_t n_t, size_t row,
                       cw_err *err)
{
    int rc = CW_OK;
    size_t budget = RANK_FEATURE_MAX_TEXT_BYTES;
    size_t tl = CW_MIN(doc->title_len, budget);
    memset(c->tf, 0, c->n_terms * sizeof *c->tf);
    c->len[0] = c->len[1] = 0;
    c->field = 0;
    c->whole = n_t > 0 && doc_fits(doc);
    if (n_t > 0 && tl > 0) {
        rc = idx_analyze(a, doc->title, tl, on_token, c, err);
        budget -= tl;
        /* one position of gap: a window never spans title and text as adjacent */
        if (c->saw_token) {
            c->pos_base = c->last_pos + 2;
        }
    }
    size_t xl = CW_MIN(doc->text_len, budget);
    bool tap = c->tap && xl == doc->text_len && n_t > 0;
    c->field = 1;
    if (tap) {
        c->tap->text_begin(c->tap->ctx, row);
    }
    if (rc == CW_OK && n_t > 0 && xl > 0) {
        rc = idx_analyze(a, doc->text, xl, tap ? on_text_token_tap : on_token, c, err);
    }
    if (rc == CW_OK && tap) {
        c->tap->text_done(c->tap->ctx, row);
    }
    return rc;
}

/* Forward-store path: the same matches from stored token hashes, looked up in a small
 * open-addressing table of the query's term hashes (slot = term index + 1). */

static void qtable_fill(uint16_t *table, const qterm *terms, size_t n)
{
    memset(table, 0, QTABLE * sizeof *table);
    for (size_t j = 0; j < n; j++) {
        uint32_t h = terms[j].hash & (QTABLE - 1);
        while (table[h]) {
            h = (h + 1) & (QTABLE - 1);
        }
        table[h] = (uint16_t)(j + 1);
    }
}

/* Also counts each term's title and text frequencies and the fields' token counts: the
 * store holds title tokens, a 0 gap, text tokens; without a gap the title had no token. */
static int scan_forward(const rank_features *fx, uint32_t doc, const uint16_t *table, match_ctx *c)
{
    uint64_t b = fx->fwd_begin[doc], e = fx->fwd_begin[doc + 1];
    memset(c->tf, 0, c->n_terms * sizeof *c->tf);
    int field = 0;
    uint64_t gap = e;
    for (uint64_t i = b; i < e; i++) {
        uint32_t h = fx->fwd_hash[i];
        if (h == 0) {
            field = 1;
            gap = i;
            continue;
        }
        for (uint32_t s = h & (QTABLE - 1); table[s]; s = (s + 1) & (QTABLE - 1)) {
            size_t j = table[s] - 1u;
            if (c->terms[j].hash == h) {
                int rc = add_match(c, (uint32_t)(i - b), j);
                if (rc != CW_OK) {
                    return rc;
                }
                c->tf[j][field]++;
                break;
            }
        }
    }
    if (gap == e) { /* no gap: every token was text */
        for (size_t j = 0; j < c->n_terms; j++) {
            c->tf[j][1] = c->tf[j][0];
            c->tf[j][0] = 0;
        }
        c->len[0] = 0;
        c->len[1] = (uint32_t)(e - b);
    } else {
        c->len[0] = (uint32_t)(gap - b);
        c->len[1] = (uint32_t)(e - gap - 1);
    }
    return CW_OK;
}

/* Hands a forward-stored document's text tokens to the tap as spans (after scan_forward,
 * whose matches c->m_pos mark them): the text starts after the gap, or at the first token
 * when the title had none. A token matches when a query term has its 32-bit hash, the
 * test scan_forward's features use. */
static int tap_forward_spans(const rank_features *fx, uint32_t doc, const match_ctx *c, size_t row)
{
    uint64_t b = fx->fwd_begin[doc], e = fx->fwd_begin[doc + 1], t0 = b;
    for (uint64_t i = b; i < e; i++) {
        if (fx->fwd_hash[i] == 0) {
            t0 = i + 1;
            break;
        }
    }
    c->tap->text_begin(c->tap->ctx, row);
    size_t m = 0;
    for (uint64_t i = t0; i < e; i++) {
        uint32_t pos = (uint32_t)(i - b);
        while (m < c->n_m && c->m_pos[m] < pos) {
            m++;
        }
        bool match = m < c->n_m && c->m_pos[m] == pos;
        int rc =
            c->tap->text_span(c->tap->ctx, fx->fwd_span[2 * i], fx->fwd_span[2 * i + 1], match);
        if (rc != CW_OK) {
            return rc;
        }
    }
    c->tap->text_done(c->tap->ctx, row);
    return CW_OK;
}

/* Per-field BM25 from counted term frequencies (the forward store's, or a whole per-call
 * analysis's with the index's per-field dfs), term by term and field by field in the
 * order and arithmetic of index/'s idx_score_fields (METHODS.md section 2: Lucene idf,
 * tf / (tf + k1 (1 - b + b dl / avgdl)) with avgdl and docCount of the field), so the two
 * paths give the same doubles. */
static void bm25_forward(const rank_features *fx, const match_ctx *c, const idx_doc *doc,
                         double out[IDX_N_FIELDS])
{
    const double dl[IDX_N_FIELDS] = {doc->len[IDX_FIELD_TITLE], doc->len[IDX_FIELD_TEXT],
                                     doc->len[IDX_FIELD_FLAT]};
    double sc[IDX_N_FIELDS] = {0, 0, 0};
    for (size_t j = 0; j < c->n_terms; j++) {
        const qterm *t = &c->terms[j];
        uint32_t tf[IDX_N_FIELDS] = {c->tf[j][0], c->tf[j][1], c->tf[j][0] + c->tf[j][1]};
        if (t->df_flat == 0 || tf[IDX_FIELD_FLAT] == 0) {
            continue;
        }
        for (int f = 0; f < IDX_N_FIELDS; f++) {
            if (tf[f] == 0) {
                continue;
            }
            double x = (double)tf[f];
            sc[f] +=
                t->w[f] * (x / (x + fx->bm25.k1 * (1.0 - fx->bm25.b +
                                                   fx->bm25.b * dl[f] / fx->fstats[f].avg_len)));
        }
    }
    memcpy(out, sc, sizeof sc);
}

/* Smallest window of match positions holding every matched distinct term (two pointers
 * over the position-ordered matches, as in Tao & Zhai, SIGIR 2007, "MinCover" span). */
static uint32_t min_window(const match_ctx *c, size_t m_distinct, uint32_t *count)
{
    memset(count, 0, c->n_terms * sizeof *count);
    size_t have = 0, lo = 0;
    uint32_t best = UINT32_MAX;
    for (size_t hi = 0; hi < c->n_m; hi++) {
        if (count[c->m_term[hi]]++ == 0) {
            have++;
        }
        while (have == m_distinct) {
            uint32_t w = c->m_pos[hi] - c->m_pos[lo] + 1;
            best = CW_MIN(best, w);
            if (--count[c->m_term[lo]] == 0) {
                have--;
            }
            lo++;
        }
    }
    return best;
}

static double static_value(const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);
    if (json_is_number(v)) {
        return json_number_value(v);
    }
    if (json_is_string(v)) {
        char *end = NULL;
        double d = strtod(json_string_value(v), &end);
        return end && *end == '\0' && isfinite(d) ? d : 0.0;
    }
    return 0.0;
}

int rank_features_extract(const rank_features *fx, idx_analyzer *a, const idx_query *q,
                          const uint32_t *docids, size_t n, double *out, cw_err *err)
{
    return rank_features_extract_qv(fx, a, q, NULL, docids, n, out, err);
}

int rank_features_extract_qv(const rank_features *fx, idx_analyzer *a, const idx_query *q,
                             const float *qvec, const uint32_t *docids, size_t n, double *out,
                             cw_err *err)
{
    return rank_features_extract_tap(fx, a, q, qvec, docids, n, out, NULL, err);
}

int rank_features_extract_tap(const rank_features *fx, idx_analyzer *a, const idx_query *q,
                              const float *qvec, const uint32_t *docids, size_t n, double *out,
                              const rank_token_tap *tap, cw_err *err)
{
    if (fx->dn && !qvec) {
        return cw_err_set(err, CW_EINVAL,
                          "feature dense_cos needs the query vector (rank_features_extract_qv)");
    }
    size_t n_q = idx_query_n_terms(q);
    qterm terms[IDX_MAX_QUERY_TERMS];
    size_t n_t = 0;
    double idf_sum_q = 0;
    for (size_t i = 0; i < n_q && n_t < IDX_MAX_QUERY_TERMS; i++) {
        uint64_t df = 0;
        const char *t = idx_query_term(q, i, &df);
        size_t len = strlen(t);
        bool dup = false;
        for (size_t j = 0; j < n_t && !dup; j++) {
            dup = terms[j].len == len && memcmp(terms[j].term, t, len) == 0;
            terms[j].count += dup;
        }
        if (dup) {
            continue;
        }
        /* Lucene idf, always > 0 (METHODS.md section 2). */
        double idf = idx_bm25_idf((uint64_t)fx->n_docs, df);
        terms[n_t++] = (qterm){t, len, idf, term_hash(t, len), df, 1.0, {0, 0, 0}, i};
        idf_sum_q += idf;
    }
    /* Per-field idf weights: from the forward store's df table when it is exact, else
     * from the index's per-field dfs (for documents analysed per call). Terms are
     * first occurrences of the query's terms, in order: the order of idx_score_fields. */
    for (size_t j = 0; !fx->has_df && j < n_t; j++) {
        uint64_t df_f[IDX_N_FIELDS];
        idx_query_term_field_df(fx->ix, q, terms[j].first, df_f);
        for (int f = 0; f < IDX_N_FIELDS; f++) {
            terms[j].w[f] = terms[j].count * idx_bm25_idf(fx->fstats[f].doc_count, df_f[f]);
        }
    }
    for (size_t j = 0; fx->has_df && j < n_t; j++) {
        size_t s = df_slot(fx, term_key(terms[j].term, terms[j].len));
        uint64_t df_f[IDX_N_FIELDS] = {fx->df_key[s] ? fx->df_title[s] : 0,
                                       fx->df_key[s] ? fx->df_text[s] : 0, terms[j].df_flat};
        for (int f = 0; f < IDX_N_FIELDS; f++) {
            terms[j].w[f] = terms[j].count * idx_bm25_idf(fx->fstats[f].doc_count, df_f[f]);
        }
    }
    uint16_t table[QTABLE];
    qtable_fill(table, terms, n_t);
    bool seen[IDX_MAX_QUERY_TERMS];
    uint32_t count[IDX_MAX_QUERY_TERMS];
    uint32_t tf[IDX_MAX_QUERY_TERMS][2];
    match_ctx c = {
        .terms = terms, .n_terms = n_t, .seen = seen, .tf = tf, .tap = tap, .table = table};
    int rc = CW_OK;
    /* Per-field BM25 from the posting lists of every document that neither an exact
     * forward store nor a whole per-call analysis serves (those count their own tfs), in
     * one pass over each list (idx_score_fields_many) instead of one per document. Should
     * that fail (bad docid, corrupt list, memory), the loop below scores one document at
     * a time as before, so errors and their messages are unchanged. */
    double(*pre)[IDX_N_FIELDS] = NULL;
    uint32_t *pre_ids = NULL;
    size_t *pre_row = n > 0 ? malloc(n * sizeof *pre_row) : NULL; /* row -> pre, or SIZE_MAX */
    size_t n_pre = 0;
    for (size_t r = 0; pre_row && r < n; r++) {
        idx_doc d;
        bool fwd = docids[r] < fx->fwd_docs;
        bool counted =
            fwd ? fx->has_df
                : n_t > 0 && idx_doc_get(fx->ix, docids[r], &d, NULL) == CW_OK && doc_fits(&d);
        pre_row[r] = counted ? SIZE_MAX : n_pre++;
    }
    if (n_pre > 0) {
        pre = malloc(n_pre * sizeof *pre);
        pre_ids = malloc(n_pre * sizeof *pre_ids);
        for (size_t r = 0; pre_ids && r < n; r++) {
            if (pre_row[r] != SIZE_MAX) {
                pre_ids[pre_row[r]] = docids[r];
            }
        }
        cw_err pre_err = {0};
        if (!pre || !pre_ids ||
            idx_score_fields_many(fx->ix, q, pre_ids, n_pre, &fx->bm25, pre, &pre_err) != CW_OK) {
            free(pre);
            pre = NULL;
        }
        free(pre_ids);
    }
    for (size_t r = 0; r < n && rc == CW_OK; r++) {
        double *f = out + r * fx->n;
        idx_doc doc;
        double bm25[IDX_N_FIELDS];
        rc = idx_doc_get(fx->ix, docids[r], &doc, err);
        if (rc != CW_OK) {
            break;
        }
        memset(seen, 0, sizeof seen);
        c.n_m = 0;
        c.pos_base = 0;
        c.last_pos = 0;
        c.saw_token = false;
        bool fwd = docids[r] < fx->fwd_docs;
        if (fwd) {
            rc = scan_forward(fx, docids[r], table, &c);
            if (rc == CW_OK && tap && tap->text_span && fx->fwd_span && n_t > 0 && doc_fits(&doc)) {
                rc = tap_forward_spans(fx, docids[r], &c, r);
            }
        } else {
            rc = analyze_doc(a, &doc, &c, n_t, r, err);
        }
        if (rc == CW_ENOMEM) {
            rc = cw_err_set(err, CW_ENOMEM, "out of memory extracting features");
        }
        if (rc != CW_OK) {
            break;
        }
        /* The stored or analysed tokens are the index's when the field lengths agree (a
         * document cut at RANK_FEATURE_MAX_TEXT_BYTES does not): then BM25 needs no
         * posting list (the analyzer has the index's settings: the contract). */
        bool lens = c.len[0] == doc.len[IDX_FIELD_TITLE] && c.len[1] == doc.len[IDX_FIELD_TEXT] &&
                    c.len[0] + c.len[1] == doc.len[IDX_FIELD_FLAT];
        if (lens && (fwd ? fx->has_df : c.whole)) {
            bm25_forward(fx, &c, &doc, bm25);
        } else if (pre && pre_row[r] != SIZE_MAX) {
            memcpy(bm25, pre[pre_row[r]], sizeof bm25);
        } else {
            rc = idx_score_fields(fx->ix, q, docids[r], &fx->bm25, bm25, err);
            if (rc != CW_OK) {
                break;
            }
        }
        size_t matched = 0;
        double idf_sum = 0, idf_max = 0;
        for (size_t j = 0; j < n_t; j++) {
            if (seen[j]) {
                matched++;
                idf_sum += terms[j].idf;
                idf_max = CW_MAX(idf_max, terms[j].idf);
            }
        }
        f[0] = bm25[IDX_FIELD_TITLE];
        f[1] = bm25[IDX_FIELD_TEXT];
        f[2] = bm25[IDX_FIELD_FLAT];
        f[3] = n_t ? (double)matched / (double)n_t : 0.0;
        f[4] = idf_sum;
        f[5] = idf_max;
        f[6] = n_t ? idf_sum_q / (double)n_t : 0.0;
        f[7] = (double)n_t;
        f[8] = log1p((double)doc.len[IDX_FIELD_TITLE]);
        f[9] = log1p((double)doc.len[IDX_FIELD_TEXT]);
        f[10] = matched >= 2 ? (double)matched / (double)min_window(&c, matched, count) : 0.0;
        if (fx->n_static > 0) {
            json_t *obj = json_loadb(doc.fields_json, doc.fields_len, 0, NULL);
            for (size_t s = 0; s < fx->n_static; s++) {
                f[RANK_TEXT_FEATURES + s] =
                    obj ? static_value(obj, fx->names[RANK_TEXT_FEATURES + s] + 7) : 0.0;
            }
            json_decref(obj);
        }
        if (fx->dn) {
            rc = idx_dense_cosine(fx->dn, qvec, docids[r], &f[fx->n - 1], err);
        }
    }
    free(pre);
    free(pre_row);
    free(c.m_pos);
    free(c.m_term);
    return rc;
}
