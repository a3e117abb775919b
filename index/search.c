/* index/search.c: query analysis, posting cursors and top-k retrieval by flat-field
 * BM25: block-max WAND (Ding & Suel, SIGIR 2011) for OR queries, a leapfrog
 * intersection for AND, and an exhaustive scorer used as the test oracle. All
 * three sum term contributions in query order through idx_bm25_tfn, so their
 * scores are bit-identical and pruning can be checked for exact equality. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "index/index_int.h"

#define DOC_END UINT32_MAX
/* Upper bounds are inflated by this factor so that rounding in the order of
 * summation can never make a bound smaller than a score it must dominate. */
#define UB_MARGIN (1.0 + 1e-9)

struct idx_query {
    size_t n;                         /* analysed terms, repeats included */
    char *terms[IDX_MAX_QUERY_TERMS]; /* NUL-terminated, into pool */
    uint64_t df[IDX_MAX_QUERY_TERMS];
    int64_t tid[IDX_MAX_QUERY_TERMS];         /* dictionary index or -1 */
    size_t n_uniq;                            /* distinct terms, first-occurrence order */
    uint32_t uniq_first[IDX_MAX_QUERY_TERMS]; /* index into terms */
    uint32_t uniq_count[IDX_MAX_QUERY_TERMS]; /* occurrences (BM25 weight multiplier) */
    char pool[];
};

typedef struct qparse {
    idx_query *q;
    size_t pool_len;
    size_t pool_cap;
} qparse;

static int q_term(void *ctx, const idx_token *tok)
{
    qparse *qp = ctx;
    idx_query *q = qp->q;
    if (q->n >= IDX_MAX_QUERY_TERMS) {
        return CW_OK; /* documented: terms beyond the limit are dropped */
    }
    if (qp->pool_len + tok->term_len + 1 > qp->pool_cap) {
        return CW_OK; /* cannot happen: pool sized from the text length */
    }
    char *s = q->pool + qp->pool_len;
    memcpy(s, tok->term, tok->term_len);
    s[tok->term_len] = '\0';
    qp->pool_len += tok->term_len + 1;
    q->terms[q->n++] = s;
    return CW_OK;
}

int idx_query_parse(const idx_index *ix, idx_analyzer *a, const char *text, size_t len,
                    idx_query **out, cw_err *err)
{
    if (len > IDX_MAX_QUERY_BYTES) {
        return cw_err_set(err, CW_ELIMIT, "query of %zu bytes exceeds the limit of %u", len,
                          IDX_MAX_QUERY_BYTES);
    }
    size_t k = 0;
    while (k < len && (text[k] == ' ' || text[k] == '\t' || text[k] == '\n' || text[k] == '\r')) {
        k++;
    }
    if (k == len) {
        return cw_err_set(err, CW_EINVAL, "empty query");
    }
    /* NFKC and stemming never make a term longer than 18x its source (U+FDFA), and the
     * pool holds at most IDX_MAX_QUERY_TERMS terms of at most 1 KiB each. */
    size_t cap = len * 18 + IDX_MAX_QUERY_TERMS + 64;
    /* Not zeroed (~20 KiB a query): the arrays are written before they are read. */
    idx_query *q = malloc(sizeof *q + cap);
    if (!q) {
        return cw_err_set(err, CW_ENOMEM, "query: out of memory");
    }
    q->n = 0;
    q->n_uniq = 0;
    qparse qp = {q, 0, cap};
    int rc = idx_analyze(a, text, len, q_term, &qp, err);
    if (rc != CW_OK) {
        free(q);
        if (rc == CW_EPARSE) {
            cw_err_prefix(err, "query: ");
        }
        return rc;
    }
    for (size_t i = 0; i < q->n; i++) {
        q->tid[i] = idx_term_find(ix, q->terms[i], strlen(q->terms[i]));
        q->df[i] = q->tid[i] >= 0 ? ix->terms[q->tid[i]].df : 0;
        size_t u = 0;
        while (u < q->n_uniq && strcmp(q->terms[q->uniq_first[u]], q->terms[i]) != 0) {
            u++;
        }
        if (u == q->n_uniq) {
            q->uniq_first[u] = (uint32_t)i;
            q->uniq_count[u] = 0;
            q->n_uniq++;
        }
        q->uniq_count[u]++;
    }
    *out = q;
    return CW_OK;
}

void idx_query_free(idx_query *q)
{
    free(q);
}

size_t idx_query_n_terms(const idx_query *q)
{
    return q->n;
}

const char *idx_query_term(const idx_query *q, size_t i, uint64_t *df)
{
    if (i >= q->n) {
        return NULL;
    }
    if (df) {
        *df = q->df[i];
    }
    return q->terms[i];
}

void idx_query_term_field_df(const idx_index *ix, const idx_query *q, size_t i,
                             uint64_t df[IDX_N_FIELDS])
{
    df[IDX_FIELD_TITLE] = df[IDX_FIELD_TEXT] = df[IDX_FIELD_FLAT] = 0;
    if (i >= q->n || q->tid[i] < 0 || (uint64_t)q->tid[i] >= ix->meta.n_terms) {
        return;
    }
    const idx_term_info *ti = &ix->terms[q->tid[i]];
    df[IDX_FIELD_TITLE] = ti->df_title;
    df[IDX_FIELD_TEXT] = ti->df_text;
    df[IDX_FIELD_FLAT] = ti->df;
}

idx_search_opts idx_search_opts_default(void)
{
    idx_search_opts o;
    memset(&o, 0, sizeof o);
    o.k = 10;
    o.bm25 = IDX_BM25_DEFAULT;
    return o;
}

/* ---- cursors --------------------------------------------------------------- */

typedef struct cursor {
    const idx_block_rec *blocks;
    const uint8_t *data; /* the list's first block */
    size_t avail;        /* readable bytes from data to the end of the section */
    uint32_t n_blocks;
    uint32_t df;
    uint32_t n_docs;  /* docids must stay below this */
    uint32_t blk;     /* current block (shallow position) */
    uint32_t decoded; /* block held in docs/tfs, DOC_END if none */
    uint32_t pos, n;
    uint32_t doc; /* current docid or DOC_END */
    bool corrupt;
    int term;  /* distinct-term index: fixes the order of summation */
    double w;  /* occurrences * idf */
    double ub; /* bound on w * tfn over the whole list */
    uint32_t docs[IDX_BLOCK];
    uint32_t tfs[IDX_BLOCK];
} cursor;

static void cursor_fail(cursor *c)
{
    c->corrupt = true;
    c->doc = DOC_END;
    c->blk = c->n_blocks;
}

static bool cursor_decode(cursor *c, uint32_t b)
{
    const idx_block_rec *r = &c->blocks[b];
    uint32_t prev = b ? c->blocks[b - 1].last_doc : UINT32_MAX;
    uint32_t n = b + 1 == c->n_blocks ? c->df - b * IDX_BLOCK : IDX_BLOCK;
    if (r->data_off >= c->avail ||
        !idx_block_decode(c->data + r->data_off, c->avail - r->data_off, n, prev, c->docs,
                          c->tfs) ||
        c->docs[n - 1] != r->last_doc || r->last_doc >= c->n_docs) {
        cursor_fail(c);
        return false;
    }
    c->decoded = b;
    c->n = n;
    c->pos = 0;
    return true;
}

static void cursor_init(cursor *c, const idx_block_rec *blocks, uint32_t n_blocks,
                        const uint8_t *data, size_t avail, uint32_t df, uint32_t n_docs)
{
    c->blocks = blocks;
    c->n_blocks = n_blocks;
    c->data = data;
    c->avail = avail;
    c->df = df;
    c->n_docs = n_docs;
    c->blk = 0;
    c->decoded = DOC_END;
    c->corrupt = false;
    c->doc = DOC_END;
    if (n_blocks > 0 && cursor_decode(c, 0)) {
        c->doc = c->docs[0];
    }
}

static void cursor_flat(cursor *c, const idx_index *ix, int64_t tid)
{
    const idx_term_info *ti = &ix->terms[tid];
    cursor_init(c, ix->blocks + ti->block_idx, ti->n_blocks, ix->postings + ti->post_off,
                ix->postings_len - ti->post_off, ti->df, ix->meta.n_docs);
}

static void cursor_title(cursor *c, const idx_index *ix, int64_t tid)
{
    const idx_term_info *ti = &ix->terms[tid];
    cursor_init(c, ix->tblocks + ti->tblock_idx, ti->n_tblocks, ix->tpostings + ti->tpost_off,
                ix->tpostings_len - ti->tpost_off, ti->df_title, ix->meta.n_docs);
}

/* Moves to the first docid >= target (never backwards). */
static void cursor_next_geq(cursor *c, uint32_t target)
{
    if (c->doc >= target) {
        return;
    }
    uint32_t b = c->blk;
    if (b >= c->n_blocks) {
        c->doc = DOC_END; /* a shallow move already found no block that can hold target */
        return;
    }
    if (c->blocks[b].last_doc < target) {
        /* Gallop over block records, then binary search: long skips are common. */
        uint32_t step = 1, lo = b + 1;
        while (lo + step < c->n_blocks && c->blocks[lo + step].last_doc < target) {
            lo += step;
            step *= 2;
        }
        uint32_t hi = CW_MIN(lo + step, c->n_blocks);
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (c->blocks[mid].last_doc < target) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        b = lo;
        if (b >= c->n_blocks) {
            c->blk = c->n_blocks;
            c->doc = DOC_END;
            return;
        }
    }
    c->blk = b;
    if (c->decoded != b && !cursor_decode(c, b)) {
        return;
    }
    uint32_t pos = c->pos;
    while (c->docs[pos] < target) {
        pos++;
    }
    c->pos = pos;
    c->doc = c->docs[pos];
}

static void cursor_next(cursor *c)
{
    if (c->doc == DOC_END) {
        return;
    }
    if (c->decoded == c->blk && c->pos + 1 < c->n) {
        c->pos++;
        c->doc = c->docs[c->pos];
        return;
    }
    cursor_next_geq(c, c->doc + 1);
}

/* Moves the block pointer (not the decoded position) to the block that could hold
 * target; false if no block can. */
static bool cursor_shallow(cursor *c, uint32_t target)
{
    while (c->blk < c->n_blocks && c->blocks[c->blk].last_doc < target) {
        c->blk++;
    }
    return c->blk < c->n_blocks;
}

static inline uint32_t cursor_tf(const cursor *c)
{
    return c->tfs[c->pos];
}

/* ---- top-k heap ------------------------------------------------------------ */

typedef struct topk {
    idx_hit *h;
    size_t n, k;
} topk;

/* a ranks below b: lower score, or equal score and larger docid. */
static inline bool worse(const idx_hit *a, const idx_hit *b)
{
    return a->score < b->score || (a->score == b->score && a->doc > b->doc);
}

static void sift_down(topk *t, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->n && worse(&t->h[l], &t->h[m])) {
            m = l;
        }
        if (r < t->n && worse(&t->h[r], &t->h[m])) {
            m = r;
        }
        if (m == i) {
            return;
        }
        idx_hit tmp = t->h[i];
        t->h[i] = t->h[m];
        t->h[m] = tmp;
        i = m;
    }
}

static void topk_push(topk *t, uint32_t doc, double score)
{
    idx_hit x = {doc, score};
    if (t->n < t->k) {
        size_t i = t->n++;
        t->h[i] = x;
        while (i > 0 && worse(&t->h[i], &t->h[(i - 1) / 2])) {
            idx_hit tmp = t->h[i];
            t->h[i] = t->h[(i - 1) / 2];
            t->h[(i - 1) / 2] = tmp;
            i = (i - 1) / 2;
        }
        return;
    }
    if (worse(&t->h[0], &x)) {
        t->h[0] = x;
        sift_down(t, 0);
    }
}

/* Score a document must beat to enter (0 while the heap has room: all scores > 0). */
static inline double topk_theta(const topk *t)
{
    return t->n < t->k ? 0.0 : t->h[0].score;
}

static int cmp_hits(const void *a, const void *b)
{
    const idx_hit *x = a, *y = b;
    if (x->score != y->score) {
        return x->score > y->score ? -1 : 1;
    }
    return (x->doc > y->doc) - (x->doc < y->doc);
}

/* ---- scoring --------------------------------------------------------------- */

typedef struct scorer {
    const idx_index *ix;
    double k1, b, avgdl;
    bool stored_bounds; /* the query's (k1, b) are the ones block maxima were built for */
    size_t nc;
    cursor *cs;  /* one per distinct in-vocabulary term, in query order */
    cursor **by; /* sorted by current docid */
    uint64_t n_scored;
} scorer;

static inline double term_score(const scorer *s, const cursor *c, uint32_t doc)
{
    return c->w * idx_bm25_tfn(cursor_tf(c), s->ix->flatlen[doc], s->k1, s->b, s->avgdl);
}

/* Sum over the cursors positioned on doc, in query order (cs[] is in query order). */
static inline double score_doc(const scorer *s, uint32_t doc)
{
    double sum = 0.0;
    for (size_t i = 0; i < s->nc; i++) {
        if (s->cs[i].doc == doc) {
            sum += term_score(s, &s->cs[i], doc);
        }
    }
    return sum;
}

static inline double block_ub(const scorer *s, const cursor *c)
{
    if (c->blk >= c->n_blocks) {
        return 0.0;
    }
    const idx_block_rec *r = &c->blocks[c->blk];
    double t = s->stored_bounds ? (double)r->max_tfn
                                : idx_bm25_tfn(r->max_tf, r->min_dl, s->k1, s->b, s->avgdl);
    return c->w * t * UB_MARGIN;
}

static void sort_by_doc(scorer *s)
{
    for (size_t i = 1; i < s->nc; i++) {
        cursor *c = s->by[i];
        size_t j = i;
        while (j > 0 && s->by[j - 1]->doc > c->doc) {
            s->by[j] = s->by[j - 1];
            j--;
        }
        s->by[j] = c;
    }
}

static void run_exhaustive(scorer *s, topk *t)
{
    for (;;) {
        uint32_t d = DOC_END;
        for (size_t i = 0; i < s->nc; i++) {
            d = CW_MIN(d, s->cs[i].doc);
        }
        if (d == DOC_END) {
            return;
        }
        topk_push(t, d, score_doc(s, d));
        s->n_scored++;
        for (size_t i = 0; i < s->nc; i++) {
            if (s->cs[i].doc == d) {
                cursor_next(&s->cs[i]);
            }
        }
    }
}

static void run_and(scorer *s, topk *t)
{
    /* Leapfrog in order of increasing df: the rarest term proposes candidates. */
    for (size_t i = 1; i < s->nc; i++) {
        cursor *c = s->by[i];
        size_t j = i;
        while (j > 0 && s->by[j - 1]->df > c->df) {
            s->by[j] = s->by[j - 1];
            j--;
        }
        s->by[j] = c;
    }
    cursor **by = s->by;
    uint32_t d = by[0]->doc;
    while (d != DOC_END) {
        size_t i = 1;
        for (; i < s->nc; i++) {
            cursor_next_geq(by[i], d);
            if (by[i]->doc != d) {
                break;
            }
        }
        if (i == s->nc) {
            topk_push(t, d, score_doc(s, d));
            s->n_scored++;
            cursor_next(by[0]);
        } else {
            cursor_next_geq(by[0], by[i]->doc);
        }
        d = by[0]->doc;
    }
}

static void run_bmw(scorer *s, topk *t)
{
    cursor **by = s->by;
    size_t nc = s->nc;
    for (;;) {
        sort_by_doc(s);
        double theta = topk_theta(t);
        double acc = 0.0;
        size_t p = nc;
        for (size_t i = 0; i < nc && by[i]->doc != DOC_END; i++) {
            acc += by[i]->ub;
            if (acc > theta) {
                p = i;
                break;
            }
        }
        if (p == nc) {
            return; /* no remaining document can enter the top k */
        }
        uint32_t pd = by[p]->doc;
        while (p + 1 < nc && by[p + 1]->doc == pd) {
            p++;
        }
        double bsum = 0.0;
        for (size_t i = 0; i <= p; i++) {
            cursor_shallow(by[i], pd);
            bsum += block_ub(s, by[i]);
        }
        if (bsum > theta) {
            if (by[0]->doc == pd) {
                topk_push(t, pd, score_doc(s, pd));
                s->n_scored++;
                for (size_t i = 0; i <= p; i++) {
                    cursor_next(by[i]);
                }
            } else {
                /* Documents before pd only hold terms whose bounds sum to <= theta. */
                for (size_t i = 0; i < p && by[i]->doc < pd; i++) {
                    cursor_next_geq(by[i], pd);
                }
            }
        } else {
            /* Nothing in [pd, next) can beat theta: every such document lies inside the
             * current blocks of cursors 0..p, whose maxima sum to <= theta. */
            uint32_t next = p + 1 < nc ? by[p + 1]->doc : DOC_END;
            for (size_t i = 0; i <= p; i++) {
                if (by[i]->blk < by[i]->n_blocks) {
                    uint32_t last = by[i]->blocks[by[i]->blk].last_doc;
                    next = CW_MIN(next, last + 1);
                }
            }
            for (size_t i = 0; i <= p; i++) {
                if (next == DOC_END) {
                    by[i]->doc = DOC_END;
                    by[i]->blk = by[i]->n_blocks;
                } else {
                    cursor_next_geq(by[i], next);
                }
            }
        }
    }
}

/* Term-at-a-time scoring into one accumulator per document (Turtle & Flood, "Query
 * evaluation: strategies and optimizations", IP&M 1995, TAAT with a dense accumulator
 * array) for small collections: every posting of the query's lists is scored, with no
 * cursor sorting or block-bound bookkeeping, which on a Cranfield-sized index costs more
 * than the scoring it skips. Terms are added in query order starting from 0.0, the
 * summation order of score_doc, so scores are bit-identical to the other strategies,
 * and a heap over all matching documents keeps the exact top k of (score, docid). */
#define TAAT_MAX_DOCS 8192u /* accumulator <= 64 KiB: below malloc's mmap threshold */

void idx_index_set_taat(idx_index *ix, int mode)
{
    ix->taat = mode;
}

static bool taat_fits(const scorer *s, uint32_t n_docs)
{
    if (s->ix->taat != IDX_TAAT_AUTO) {
        return s->ix->taat == IDX_TAAT_ALWAYS;
    }
    uint64_t postings = 0;
    for (size_t i = 0; i < s->nc; i++) {
        postings += s->cs[i].df;
    }
    /* a short query of rare terms would mostly pay for scanning the accumulators */
    return n_docs <= TAAT_MAX_DOCS && 4 * postings >= n_docs;
}

static void run_taat(scorer *s, topk *t, double *acc, uint32_t n_docs)
{
    const uint32_t *dl = s->ix->flatlen;
    for (size_t i = 0; i < s->nc; i++) {
        cursor *c = &s->cs[i];
        /* cursor_init decoded block 0 (or marked the list corrupt) */
        for (uint32_t b = 0; b < c->n_blocks && !c->corrupt; b++) {
            if (b > 0 && !cursor_decode(c, b)) {
                break;
            }
            /* decoded docids are increasing and end at last_doc < n_docs (cursor_decode) */
            for (uint32_t p = 0; p < c->n; p++) {
                uint32_t d = c->docs[p];
                acc[d] += c->w * idx_bm25_tfn(c->tfs[p], dl[d], s->k1, s->b, s->avgdl);
            }
        }
    }
    for (uint32_t d = 0; d < n_docs; d++) {
        if (acc[d] > 0.0) { /* every term contribution is > 0: idf > 0, tf >= 1 */
            topk_push(t, d, acc[d]);
            s->n_scored++;
        }
    }
}

static int scorer_init(scorer *s, const idx_index *ix, const idx_query *q, const idx_bm25_params *p,
                       cw_err *err)
{
    memset(s, 0, sizeof *s);
    if (!(p->k1 >= 0 && p->k1 <= 1e6) || !(p->b >= 0 && p->b <= 1)) {
        return cw_err_set(err, CW_EINVAL, "BM25 parameters out of range: k1 %g, b %g", p->k1, p->b);
    }
    s->ix = ix;
    s->k1 = p->k1;
    s->b = p->b;
    s->avgdl = ix->avgdl[IDX_FIELD_FLAT];
    s->stored_bounds = p->k1 == ix->meta.bound_k1 && p->b == ix->meta.bound_b;
    /* Not zeroed (a cursor holds 1 KiB of block buffers): cursor_init sets what is read. */
    s->cs = malloc((q->n_uniq ? q->n_uniq : 1) * sizeof *s->cs);
    s->by = malloc((q->n_uniq ? q->n_uniq : 1) * sizeof *s->by);
    if (!s->cs || !s->by) {
        free(s->cs);
        free(s->by);
        return cw_err_set(err, CW_ENOMEM, "search: out of memory");
    }
    uint64_t n = ix->meta.doc_count[IDX_FIELD_FLAT];
    for (size_t u = 0; u < q->n_uniq; u++) {
        int64_t tid = q->tid[q->uniq_first[u]];
        if (tid < 0) {
            continue;
        }
        cursor *c = &s->cs[s->nc];
        cursor_flat(c, ix, tid);
        c->term = (int)u;
        c->w = (double)q->uniq_count[u] * idx_bm25_idf(n, ix->terms[tid].df);
        const idx_term_info *ti = &ix->terms[tid];
        double t = s->stored_bounds ? (double)ti->max_tfn
                                    : idx_bm25_tfn(ti->max_tf, ti->min_dl, s->k1, s->b, s->avgdl);
        c->ub = c->w * t * UB_MARGIN;
        s->by[s->nc] = c;
        s->nc++;
    }
    return CW_OK;
}

static int scorer_fini(scorer *s, cw_err *err)
{
    bool bad = false;
    for (size_t i = 0; i < s->nc; i++) {
        bad |= s->cs[i].corrupt;
    }
    free(s->cs);
    free(s->by);
    if (bad) {
        return cw_err_set(err, CW_ECORRUPT, "%s: corrupt posting list", s->ix->main.path);
    }
    return CW_OK;
}

int idx_search(const idx_index *ix, const idx_query *q, const idx_search_opts *opts, idx_hit *hits,
               size_t *n_hits, uint64_t *total_matches, cw_err *err)
{
    if (opts->k < 1 || opts->k > IDX_MAX_K || opts->offset > IDX_MAX_K - opts->k) {
        return cw_err_set(err, CW_EINVAL, "k %u and offset %u: need 1 <= k and k + offset <= %u",
                          opts->k, opts->offset, IDX_MAX_K);
    }
    scorer s;
    int rc = scorer_init(&s, ix, q, &opts->bm25, err);
    if (rc != CW_OK) {
        return rc;
    }
    idx_hit heap[IDX_MAX_K];
    topk t = {heap, 0, (size_t)opts->k + opts->offset};
    bool any_missing = false;
    for (size_t u = 0; u < q->n_uniq; u++) {
        any_missing |= q->tid[q->uniq_first[u]] < 0;
    }
    if (s.nc == 0 || (opts->conjunctive && any_missing)) {
        /* stopword-only query, or AND with a term no document has: no hits */
    } else if (opts->conjunctive) {
        run_and(&s, &t);
    } else if (opts->exhaustive) {
        run_exhaustive(&s, &t);
    } else {
        double *acc = taat_fits(&s, ix->meta.n_docs) ? calloc(ix->meta.n_docs, sizeof *acc) : NULL;
        if (acc) {
            run_taat(&s, &t, acc, ix->meta.n_docs);
        } else {
            run_bmw(&s, &t); /* also when the accumulators could not be allocated */
        }
        free(acc);
    }
    uint64_t scored = s.n_scored;
    rc = scorer_fini(&s, err);
    if (rc != CW_OK) {
        return rc;
    }
    qsort(heap, t.n, sizeof *heap, cmp_hits);
    size_t n = t.n > opts->offset ? t.n - opts->offset : 0;
    memcpy(hits, heap + opts->offset, n * sizeof *hits);
    *n_hits = n;
    if (total_matches) {
        *total_matches = scored;
    }
    return CW_OK;
}

/* tf of docid in the list under c (0 if absent). */
static uint32_t cursor_tf_of(cursor *c, uint32_t docid)
{
    cursor_next_geq(c, docid);
    return c->doc == docid ? cursor_tf(c) : 0;
}

int idx_score_fields(const idx_index *ix, const idx_query *q, uint32_t docid,
                     const idx_bm25_params *bm25, double out[IDX_N_FIELDS], cw_err *err)
{
    /* Through a copy: out is written only on success (STYLE 3), where the many-document
     * version leaves it unspecified on error. */
    double sc[1][IDX_N_FIELDS];
    int rc = idx_score_fields_many(ix, q, &docid, 1, bm25, sc, err);
    if (rc == CW_OK) {
        memcpy(out, sc[0], sizeof sc[0]);
    }
    return rc;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int idx_score_fields_many(const idx_index *ix, const idx_query *q, const uint32_t *docids, size_t n,
                          const idx_bm25_params *bm25, double (*out)[IDX_N_FIELDS], cw_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (docids[i] >= ix->meta.n_docs) {
            return cw_err_set(err, CW_ENOTFOUND, "document %u not in the index (%u documents)",
                              docids[i], ix->meta.n_docs);
        }
    }
    if (n == 0) {
        return CW_OK;
    }
    const idx_bm25_params p = bm25 ? *bm25 : IDX_BM25_DEFAULT;
    /* The documents in docid order (docid << 32 | input index): one forward pass of each
     * posting list decodes each block at most once for all of them, where a pass per
     * document decoded the list's first block and the document's block again for each. */
    cursor *c = malloc(sizeof *c);
    uint64_t *order = calloc(n, sizeof *order);
    uint32_t *tf_flat = calloc(n, sizeof *tf_flat);
    if (!c || !order || !tf_flat) {
        free(c);
        free(order);
        free(tf_flat);
        return cw_err_set(err, CW_ENOMEM, "score: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        order[i] = (uint64_t)docids[i] << 32 | i;
        memset(out[i], 0, sizeof out[i]);
    }
    qsort(order, n, sizeof *order, cmp_u64);
    bool bad = false;
    for (size_t u = 0; u < q->n_uniq; u++) {
        int64_t tid = q->tid[q->uniq_first[u]];
        if (tid < 0) {
            continue;
        }
        const idx_term_info *ti = &ix->terms[tid];
        bool any = false;
        cursor_flat(c, ix, tid);
        for (size_t j = 0; j < n; j++) {
            tf_flat[j] = cursor_tf_of(c, (uint32_t)(order[j] >> 32));
            any |= tf_flat[j] > 0;
        }
        bad |= c->corrupt;
        if (!any) {
            continue;
        }
        cursor_title(c, ix, tid);
        uint64_t df[IDX_N_FIELDS] = {ti->df_title, ti->df_text, ti->df};
        for (size_t j = 0; j < n; j++) {
            if (tf_flat[j] == 0) {
                continue;
            }
            uint32_t docid = (uint32_t)(order[j] >> 32);
            uint32_t tf_title = cursor_tf_of(c, docid);
            bad |= tf_title > tf_flat[j];
            uint32_t tf[IDX_N_FIELDS] = {tf_title, tf_flat[j] - tf_title, tf_flat[j]};
            uint32_t dl[IDX_N_FIELDS] = {ix->doclen[2 * docid], ix->doclen[2 * docid + 1],
                                         ix->flatlen[docid]};
            double *sc = out[(uint32_t)order[j]];
            /* Terms outer, documents inner: each document still sums its terms in query
             * order, so the scores are bit-identical to one document at a time. */
            for (int f = 0; f < IDX_N_FIELDS; f++) {
                if (tf[f] == 0) {
                    continue;
                }
                double w = (double)q->uniq_count[u] * idx_bm25_idf(ix->meta.doc_count[f], df[f]);
                sc[f] += w * idx_bm25_tfn(tf[f], dl[f], p.k1, p.b, ix->avgdl[f]);
            }
        }
        bad |= c->corrupt;
    }
    free(c);
    free(order);
    free(tf_flat);
    if (bad) {
        return cw_err_set(err, CW_ECORRUPT, "%s: corrupt posting list", ix->main.path);
    }
    return CW_OK;
}

int idx_index_check_postings(const idx_index *ix, cw_err *err)
{
    cursor *c = malloc(sizeof *c);
    if (!c) {
        return cw_err_set(err, CW_ENOMEM, "verify: out of memory");
    }
    int rc = CW_OK;
    for (uint32_t t = 0; t < ix->meta.n_terms && rc == CW_OK; t++) {
        const idx_term_info *ti = &ix->terms[t];
        for (int pass = 0; pass < 2 && rc == CW_OK; pass++) {
            if (pass == 0) {
                cursor_flat(c, ix, t);
            } else {
                cursor_title(c, ix, t);
            }
            uint32_t want = pass == 0 ? ti->df : ti->df_title, got = 0;
            for (uint32_t b = 0; b < c->n_blocks && !c->corrupt; b++) {
                if (cursor_decode(c, b)) {
                    got += c->n;
                }
            }
            if (c->corrupt || got != want) {
                rc = cw_err_set(err, CW_ECORRUPT, "%s: posting list of term %u is corrupt",
                                ix->main.path, t);
            }
        }
    }
    free(c);
    return rc;
}
