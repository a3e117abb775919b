/* index/snippet.c: result snippets for the server and `causeway search`: the
 * window of the document text with the most query-term occurrences, cut at token
 * boundaries, HTML-escaped, matches wrapped in <mark>. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "index/index_int.h"

typedef struct span {
    size_t b, e;
    bool match;
} span;

/* The query's distinct terms in an open-addressing table (at most half full), so a
 * token's match test is one hash and usually one compare instead of a strlen and
 * memcmp per query term: long queries (Cranfield's average ~9 terms, CISI's ~300)
 * made that loop most of the snippet's cost. */
typedef struct term_slot {
    const char *term; /* NULL: empty */
    size_t len;
    uint64_t hash;
} term_slot;

typedef struct snip_ctx {
    term_slot *terms; /* mask + 1 entries, a power of two */
    size_t mask;
    span *v;
    size_t n, cap;
} snip_ctx;

/* The slot holding (s, n), or the empty slot where it would go. */
static term_slot *term_find(term_slot *t, size_t mask, const char *s, size_t n, uint64_t h)
{
    for (size_t j = (size_t)h & mask;; j = (j + 1) & mask) {
        if (!t[j].term || (t[j].hash == h && t[j].len == n && memcmp(t[j].term, s, n) == 0)) {
            return &t[j];
        }
    }
}

/* Appends the span [b, e) to s; several terms from one surface token (NFKC splits) share
 * its range: one span is kept, a match if any of them is. Errors: CW_ENOMEM. */
static int span_push(snip_ctx *s, size_t b, size_t e, bool match)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        span *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            return CW_ENOMEM;
        }
        s->v = v;
        s->cap = cap;
    }
    if (s->n > 0 && s->v[s->n - 1].b == b) {
        s->v[s->n - 1].match |= match;
        return CW_OK;
    }
    s->v[s->n++] = (span){b, e, match};
    return CW_OK;
}

static int snip_tok(void *ctx, const idx_token *tok)
{
    snip_ctx *s = ctx;
    /* idx_analyze hashed the term once per distinct word (cw_hash64, seed 0) */
    bool m = term_find(s->terms, s->mask, tok->term, tok->term_len, tok->term_hash)->term != NULL;
    return span_push(s, tok->byte_begin, tok->byte_end, m);
}

/* HTML escapes by byte: index + 1 into esc_rep, 0 for a byte copied as it is. */
static const uint8_t esc_of[256] = {['&'] = 1, ['<'] = 2, ['>'] = 3, ['"'] = 4, ['\''] = 5};
static const struct {
    const char *s;
    size_t n;
} esc_rep[] = {{"&amp;", 5}, {"&lt;", 4}, {"&gt;", 4}, {"&quot;", 6}, {"&#39;", 5}};

static int put_escaped(cw_buf *out, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t e = esc_of[(uint8_t)s[i]];
        if (e) {
            if (cw_buf_append(out, s + run, i - run) ||
                cw_buf_append(out, esc_rep[e - 1].s, esc_rep[e - 1].n)) {
                return CW_ENOMEM;
            }
            run = i + 1;
        }
    }
    return cw_buf_append(out, s + run, n - run);
}

/* Fills s's query-term table from q (s->terms must be NULL on entry). */
static int snip_terms(snip_ctx *s, const idx_query *q)
{
    size_t n_terms = idx_query_n_terms(q);
    size_t n_slots = 16;
    while (n_slots < 2 * n_terms) {
        n_slots *= 2;
    }
    s->terms = calloc(n_slots, sizeof(term_slot));
    if (!s->terms) {
        return CW_ENOMEM;
    }
    s->mask = n_slots - 1;
    for (size_t i = 0; i < n_terms; i++) {
        const char *t = idx_query_term(q, i, NULL);
        size_t n = strlen(t);
        uint64_t h = cw_hash64(t, n, 0);
        term_slot *slot = term_find(s->terms, s->mask, t, n, h);
        if (!slot->term) {
            *slot = (term_slot){t, n, h};
        }
    }
    return CW_OK;
}

/* The densest window of s's spans over d's text, escaped and marked, appended to out. */
static int snip_render(const snip_ctx *sc, const idx_doc *dp, size_t max_bytes, cw_buf *out)
{
    const snip_ctx s = *sc;
    const idx_doc d = *dp;
    int rc = CW_OK;
    /* Densest window: two pointers over the matching tokens. */
    size_t best_i = 0, best_count = 0;
    size_t j = 0, count = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (!s.v[i].match) {
            continue;
        }
        if (j < i) {
            j = i;
            count = 0;
        }
        while (j < s.n && s.v[j].e - s.v[i].b <= max_bytes) {
            count += s.v[j].match;
            j++;
        }
        if (count > best_count) {
            best_count = count;
            best_i = i;
        }
        if (j > i) {
            count -= 1; /* token i leaves the window */
        }
    }
    size_t ws = 0;
    if (best_count > 0) {
        /* Centre the matches: move the start back by half of the unused room, to a token start. */
        size_t last_e = s.v[best_i].e;
        for (size_t k = best_i; k < s.n && s.v[k].e - s.v[best_i].b <= max_bytes; k++) {
            if (s.v[k].match) {
                last_e = s.v[k].e;
            }
        }
        size_t room = max_bytes - (last_e - s.v[best_i].b);
        size_t want = s.v[best_i].b > room / 2 ? s.v[best_i].b - room / 2 : 0;
        size_t k = best_i;
        while (k > 0 && s.v[k - 1].b >= want) {
            k--;
        }
        ws = k == 0 && want == 0 ? 0 : s.v[k].b;
    }
    size_t we = ws;
    for (size_t k = 0; k < s.n; k++) {
        if (s.v[k].b < ws) {
            continue;
        }
        if (s.v[k].e - ws > max_bytes) {
            break;
        }
        we = s.v[k].e;
    }
    if (ws > 0 && cw_buf_append(out, "\xe2\x80\xa6 ", 4)) {
        rc = CW_ENOMEM;
    }
    size_t at = ws;
    for (size_t k = 0; k < s.n && rc == CW_OK; k++) {
        if (s.v[k].b < ws || !s.v[k].match) {
            continue;
        }
        if (s.v[k].e > we) {
            break;
        }
        if (put_escaped(out, d.text + at, s.v[k].b - at) || cw_buf_append(out, "<mark>", 6) ||
            put_escaped(out, d.text + s.v[k].b, s.v[k].e - s.v[k].b) ||
            cw_buf_append(out, "</mark>", 7)) {
            rc = CW_ENOMEM;
        }
        at = s.v[k].e;
    }
    if (rc == CW_OK && put_escaped(out, d.text + at, we - at)) {
        rc = CW_ENOMEM;
    }
    if (rc == CW_OK && we < d.text_len && cw_buf_append(out, " \xe2\x80\xa6", 4)) {
        rc = CW_ENOMEM;
    }
    return rc;
}

int idx_snippet(const idx_index *ix, idx_analyzer *a, const idx_query *q, uint32_t docid,
                size_t max_bytes, cw_buf *out, cw_err *err)
{
    idx_doc d;
    int rc = idx_doc_get(ix, docid, &d, err);
    if (rc != CW_OK) {
        return rc;
    }
    snip_ctx s = {0};
    if (snip_terms(&s, q) != CW_OK) {
        return cw_err_set(err, CW_ENOMEM, "snippet: out of memory");
    }
    rc = idx_analyze(a, d.text, d.text_len, snip_tok, &s, err);
    free(s.terms);
    if (rc != CW_OK) {
        free(s.v);
        if (rc == CW_ENOMEM) {
            return cw_err_set(err, CW_ENOMEM, "snippet: out of memory");
        }
        return rc;
    }
    rc = snip_render(&s, &d, max_bytes, out);
    free(s.v);
    if (rc != CW_OK) {
        return cw_err_set(err, CW_ENOMEM, "snippet: out of memory");
    }
    return CW_OK;
}

/* ---- pre-analysed text (one analysis per shown document and request) ---- */

struct idx_snip_tokens {
    snip_ctx s;
};

int idx_snip_tokens_new(const idx_query *q, idx_snip_tokens **out, cw_err *err)
{
    *out = NULL;
    idx_snip_tokens *t = calloc(1, sizeof *t);
    if (!t || snip_terms(&t->s, q) != CW_OK) {
        free(t);
        return cw_err_set(err, CW_ENOMEM, "snippet: out of memory");
    }
    *out = t;
    return CW_OK;
}

void idx_snip_tokens_free(idx_snip_tokens *t)
{
    if (t) {
        free(t->s.terms);
        free(t->s.v);
        free(t);
    }
}

void idx_snip_tokens_reset(idx_snip_tokens *t)
{
    t->s.n = 0;
}

int idx_snip_tokens_add(void *ctx, const idx_token *tok)
{
    snip_ctx *s = &((idx_snip_tokens *)ctx)->s;
    /* Called per token of every shown text: most tokens have room for their span, their
     * own byte range, and no query term of their hash. That path makes no call (so no
     * stack frame); anything else (growth, a hash hit to compare, NFKC pieces) is
     * snip_tok's. */
    if (s->n < s->cap && (s->n == 0 || s->v[s->n - 1].b != tok->byte_begin)) {
        const term_slot *t = s->terms;
        size_t j = (size_t)tok->term_hash & s->mask;
        while (t[j].term && t[j].hash != tok->term_hash) {
            j = (j + 1) & s->mask;
        }
        if (!t[j].term) {
            s->v[s->n++] = (span){tok->byte_begin, tok->byte_end, false};
            return CW_OK;
        }
    }
    return snip_tok(s, tok);
}

int idx_snip_tokens_add_span(idx_snip_tokens *t, size_t byte_begin, size_t byte_end, bool match)
{
    return span_push(&t->s, byte_begin, byte_end, match);
}

int idx_snippet_tokens(const idx_index *ix, const idx_snip_tokens *t, uint32_t docid,
                       size_t max_bytes, cw_buf *out, cw_err *err)
{
    idx_doc d;
    int rc = idx_doc_get(ix, docid, &d, err);
    if (rc != CW_OK) {
        return rc;
    }
    if (snip_render(&t->s, &d, max_bytes, out) != CW_OK) {
        return cw_err_set(err, CW_ENOMEM, "snippet: out of memory");
    }
    return CW_OK;
}
