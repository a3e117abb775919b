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
};

static const char *const text_names[RANK_TEXT_FEATURES] = {
    "bm25_title",      "bm25_text",       "bm25_flat",      "coverage",
    "idf_sum_matched", "idf_max_matched", "idf_mean_query", "query_terms",
    "log_len_title",   "log_len_text",    "proximity"};

int rank_features_new(const idx_index *ix, const char *const *static_fields, size_t n_static,
                      const idx_bm25_params *bm25, rank_features **out, cw_err *err)
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
    idx_field_stats st;
    idx_index_field_stats(ix, IDX_FIELD_FLAT, &st);
    fx->n_docs = (double)st.doc_count;
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
    free(fx);
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
} qterm;

typedef struct match_ctx {
    const qterm *terms;
    size_t n_terms;
    uint32_t pos_base; /* title tokens precede text tokens */
    uint32_t last_pos;
    uint32_t *m_pos; /* matches: token position and term index, in position order */
    uint16_t *m_term;
    size_t n_m, cap_m;
    bool *seen; /* n_terms */
} match_ctx;

static int on_token(void *vctx, const idx_token *tok)
{
    match_ctx *c = vctx;
    c->last_pos = c->pos_base + tok->position;
    for (size_t j = 0; j < c->n_terms; j++) {
        if (c->terms[j].len == tok->term_len &&
            memcmp(c->terms[j].term, tok->term, tok->term_len) == 0) {
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
            c->m_pos[c->n_m] = c->pos_base + tok->position;
            c->m_term[c->n_m] = (uint16_t)j;
            c->n_m++;
            c->seen[j] = true;
            break;
        }
    }
    return CW_OK;
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
        }
        if (dup) {
            continue;
        }
        /* Lucene idf, always > 0 (METHODS.md section 2). */
        double idf = log(1 + (fx->n_docs - (double)df + 0.5) / ((double)df + 0.5));
        terms[n_t++] = (qterm){t, len, idf};
        idf_sum_q += idf;
    }
    bool seen[IDX_MAX_QUERY_TERMS];
    uint32_t count[IDX_MAX_QUERY_TERMS];
    match_ctx c = {.terms = terms, .n_terms = n_t, .seen = seen};
    int rc = CW_OK;
    for (size_t r = 0; r < n && rc == CW_OK; r++) {
        double *f = out + r * fx->n;
        idx_doc doc;
        double bm25[IDX_N_FIELDS];
        rc = idx_doc_get(fx->ix, docids[r], &doc, err);
        rc = rc ? rc : idx_score_fields(fx->ix, q, docids[r], &fx->bm25, bm25, err);
        if (rc != CW_OK) {
            break;
        }
        memset(seen, 0, sizeof seen);
        c.n_m = 0;
        c.pos_base = 0;
        c.last_pos = 0;
        size_t budget = RANK_FEATURE_MAX_TEXT_BYTES;
        size_t tl = CW_MIN(doc.title_len, budget);
        if (n_t > 0 && tl > 0) {
            rc = idx_analyze(a, doc.title, tl, on_token, &c, err);
            budget -= tl;
            /* one position of gap: a window never spans title and text as adjacent */
            c.pos_base = c.last_pos + 2;
        }
        size_t xl = CW_MIN(doc.text_len, budget);
        if (rc == CW_OK && n_t > 0 && xl > 0) {
            rc = idx_analyze(a, doc.text, xl, on_token, &c, err);
        }
        if (rc == CW_ENOMEM) {
            rc = cw_err_set(err, CW_ENOMEM, "out of memory extracting features");
        }
        if (rc != CW_OK) {
            break;
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
    }
    free(c.m_pos);
    free(c.m_term);
    return rc;
}
