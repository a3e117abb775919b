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

typedef struct snip_ctx {
    const idx_query *q;
    span *v;
    size_t n, cap;
} snip_ctx;

static int snip_tok(void *ctx, const idx_token *tok)
{
    snip_ctx *s = ctx;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        span *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            return CW_ENOMEM;
        }
        s->v = v;
        s->cap = cap;
    }
    bool m = false;
    for (size_t i = 0; i < idx_query_n_terms(s->q) && !m; i++) {
        const char *t = idx_query_term(s->q, i, NULL);
        m = strlen(t) == tok->term_len && memcmp(t, tok->term, tok->term_len) == 0;
    }
    /* Several terms from one surface token (NFKC splits) share its range: keep one. */
    if (s->n > 0 && s->v[s->n - 1].b == tok->byte_begin) {
        s->v[s->n - 1].match |= m;
        return CW_OK;
    }
    s->v[s->n++] = (span){tok->byte_begin, tok->byte_end, m};
    return CW_OK;
}

static int put_escaped(cw_buf *out, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: break;
        }
        if (rep) {
            if (cw_buf_append(out, s + run, i - run) || cw_buf_append(out, rep, strlen(rep))) {
                return CW_ENOMEM;
            }
            run = i + 1;
        }
    }
    return cw_buf_append(out, s + run, n - run);
}

int idx_snippet(const idx_index *ix, idx_analyzer *a, const idx_query *q, uint32_t docid,
                size_t max_bytes, cw_buf *out, cw_err *err)
{
    idx_doc d;
    int rc = idx_doc_get(ix, docid, &d, err);
    if (rc != CW_OK) {
        return rc;
    }
    snip_ctx s = {q, NULL, 0, 0};
    rc = idx_analyze(a, d.text, d.text_len, snip_tok, &s, err);
    if (rc != CW_OK) {
        free(s.v);
        if (rc == CW_ENOMEM) {
            return cw_err_set(err, CW_ENOMEM, "snippet: out of memory");
        }
        return rc;
    }
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
    free(s.v);
    if (rc != CW_OK) {
        return cw_err_set(err, CW_ENOMEM, "snippet: out of memory");
    }
    return CW_OK;
}
