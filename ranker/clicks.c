/* ranker/clicks.c: click lists, the training data of every objective: sessions from the
 * simulator or the server's log (converted by cli/ or bench/), merged by identical
 * (query, ranking), or graded labels for the supervised skyline. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ranker/ranker_int.h"

int rank_clicks_new(const double *x, size_t n_rows, size_t n_features, rank_clicks **out,
                    cw_err *err)
{
    if (n_features == 0 || n_features > RANK_MAX_FEATURES) {
        return cw_err_set(err, CW_EINVAL, "click lists need 1..%u features, got %zu",
                          RANK_MAX_FEATURES, n_features);
    }
    rank_clicks *c = calloc(1, sizeof *c);
    if (!c) {
        return cw_err_set(err, CW_ENOMEM, "out of memory for click lists");
    }
    c->x = x;
    c->n_rows = n_rows;
    c->n_features = n_features;
    c->list_begin = calloc(1, sizeof *c->list_begin);
    if (!c->list_begin) {
        free(c);
        return cw_err_set(err, CW_ENOMEM, "out of memory for click lists");
    }
    *out = c;
    return CW_OK;
}

void rank_clicks_free(rank_clicks *c)
{
    if (!c) {
        return;
    }
    free(c->list_begin);
    free(c->list_query);
    free(c->list_n);
    free(c->list_hash);
    free(c->slot_row);
    free(c->slot_rank);
    free(c->slot_clicks);
    free(c->table);
    free(c);
}

int rank_clicks_set_rho(rank_clicks *c, const double *rho, cw_err *err)
{
    for (size_t r = 0; rho && r < c->n_rows; r++) {
        if (!isnan(rho[r]) && !(rho[r] > 0 && rho[r] <= 1e6)) {
            return cw_err_set(err, CW_EINVAL, "row %zu: exposure rho = %g must be in (0, 1e6]", r,
                              rho[r]);
        }
    }
    c->row_rho = rho;
    return CW_OK;
}

size_t rank_clicks_n_lists(const rank_clicks *c)
{
    return c->n_lists;
}

double rank_clicks_n_sessions(const rank_clicks *c)
{
    double n = 0;
    for (size_t l = 0; l < c->n_lists; l++) {
        n += c->list_n[l];
    }
    return n;
}

double rank_clicks_n_pairs(const rank_clicks *c)
{
    double n = 0;
    for (size_t l = 0; l < c->n_lists; l++) {
        n += c->list_n[l] * (double)(c->list_begin[l + 1] - c->list_begin[l]);
    }
    return n;
}

typedef struct slot {
    size_t row;
    uint32_t rank;
    double clicks;
} slot;

static int slot_cmp(const void *a, const void *b)
{
    const slot *x = a, *y = b;
    /* shown slots by rank, then unshown (rank 0) by row */
    uint32_t rx = x->rank ? x->rank : UINT32_MAX, ry = y->rank ? y->rank : UINT32_MAX;
    if (rx != ry) {
        return rx < ry ? -1 : 1;
    }
    return x->row < y->row ? -1 : x->row > y->row;
}

static int size_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static int check_rows(const slot *s, size_t n, cw_err *err)
{
    size_t stack[64];
    size_t *r = n <= CW_ARRAY_LEN(stack) ? stack : malloc(n * sizeof *r);
    if (!r) {
        return cw_err_set(err, CW_ENOMEM, "out of memory for click lists");
    }
    for (size_t i = 0; i < n; i++) {
        r[i] = s[i].row;
    }
    qsort(r, n, sizeof *r, size_cmp);
    int rc = CW_OK;
    for (size_t i = 1; i < n && rc == CW_OK; i++) {
        if (r[i] == r[i - 1]) {
            rc = cw_err_set(err, CW_EINVAL, "row %zu appears twice in one list", r[i]);
        }
    }
    if (r != stack) {
        free(r);
    }
    return rc;
}

static uint64_t list_hash(uint32_t query, const slot *s, size_t n)
{
    uint64_t h = cw_hash64(&query, sizeof query, 0x5eed);
    for (size_t i = 0; i < n; i++) {
        uint64_t v[2] = {s[i].row, s[i].rank};
        h = cw_hash64(v, sizeof v, h);
    }
    return h;
}

static bool same_list(const rank_clicks *c, size_t l, uint32_t query, const slot *s, size_t n)
{
    size_t b = c->list_begin[l];
    if (c->list_query[l] != query || c->list_begin[l + 1] - b != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (c->slot_row[b + i] != s[i].row || c->slot_rank[b + i] != s[i].rank) {
            return false;
        }
    }
    return true;
}

static int table_insert(rank_clicks *c, size_t l, cw_err *err)
{
    if ((c->n_lists + 1) * 2 > c->table_cap) {
        size_t cap = c->table_cap ? c->table_cap * 2 : 1024;
        size_t *t = calloc(cap, sizeof *t);
        if (!t) {
            return cw_err_set(err, CW_ENOMEM, "out of memory for click lists");
        }
        for (size_t i = 0; i < c->table_cap; i++) {
            if (c->table[i]) {
                size_t h = (size_t)c->list_hash[c->table[i] - 1] & (cap - 1);
                while (t[h]) {
                    h = (h + 1) & (cap - 1);
                }
                t[h] = c->table[i];
            }
        }
        free(c->table);
        c->table = t;
        c->table_cap = cap;
    }
    size_t h = (size_t)c->list_hash[l] & (c->table_cap - 1);
    while (c->table[h]) {
        h = (h + 1) & (c->table_cap - 1);
    }
    c->table[h] = l + 1;
    return CW_OK;
}

static int reserve(rank_clicks *c, size_t n, cw_err *err)
{
    if (c->n_lists + 1 >= c->cap_lists) {
        size_t cap = c->cap_lists ? c->cap_lists * 2 : 256;
        size_t *lb = realloc(c->list_begin, (cap + 1) * sizeof *lb);
        if (lb) {
            c->list_begin = lb;
        }
        uint32_t *lq = realloc(c->list_query, cap * sizeof *lq);
        if (lq) {
            c->list_query = lq;
        }
        double *ln = realloc(c->list_n, cap * sizeof *ln);
        if (ln) {
            c->list_n = ln;
        }
        uint64_t *lh = realloc(c->list_hash, cap * sizeof *lh);
        if (lh) {
            c->list_hash = lh;
        }
        if (!lb || !lq || !ln || !lh) {
            return cw_err_set(err, CW_ENOMEM, "out of memory for click lists");
        }
        c->cap_lists = cap;
    }
    if (c->n_slots + n > c->cap_slots) {
        size_t cap = c->cap_slots ? c->cap_slots : 1024;
        while (cap < c->n_slots + n) {
            cap *= 2;
        }
        size_t *sr = realloc(c->slot_row, cap * sizeof *sr);
        if (sr) {
            c->slot_row = sr;
        }
        uint32_t *sk = realloc(c->slot_rank, cap * sizeof *sk);
        if (sk) {
            c->slot_rank = sk;
        }
        double *sc = realloc(c->slot_clicks, cap * sizeof *sc);
        if (sc) {
            c->slot_clicks = sc;
        }
        if (!sr || !sk || !sc) {
            return cw_err_set(err, CW_ENOMEM, "out of memory for click lists");
        }
        c->cap_slots = cap;
    }
    return CW_OK;
}

int rank_clicks_add(rank_clicks *c, uint32_t query, const size_t *rows, const uint32_t *ranks,
                    const double *clicks, size_t n, double n_sessions, bool merge, cw_err *err)
{
    if (n == 0 || n > RANK_MAX_LIST) {
        return cw_err_set(err, CW_EINVAL, "a click list needs 1..%u slots, got %zu", RANK_MAX_LIST,
                          n);
    }
    if (!(n_sessions > 0) || !isfinite(n_sessions)) {
        return cw_err_set(err, CW_EINVAL, "a click list needs n_sessions > 0, got %g", n_sessions);
    }
    slot stack[64];
    slot *s = n <= CW_ARRAY_LEN(stack) ? stack : malloc(n * sizeof *s);
    if (!s) {
        return cw_err_set(err, CW_ENOMEM, "out of memory for click lists");
    }
    int rc = CW_OK;
    for (size_t i = 0; i < n; i++) {
        if (rows[i] >= c->n_rows) {
            rc = cw_err_set(err, CW_EINVAL, "slot %zu: row %zu out of range (%zu rows)", i, rows[i],
                            c->n_rows);
            goto done;
        }
        if (ranks[i] > RANK_MAX_RANK) {
            rc =
                cw_err_set(err, CW_EINVAL, "slot %zu: rank %u over %u", i, ranks[i], RANK_MAX_RANK);
            goto done;
        }
        if (!(clicks[i] >= 0 && clicks[i] <= n_sessions)) {
            rc = cw_err_set(err, CW_EINVAL, "slot %zu: %g clicks for %g sessions (rank %u)", i,
                            clicks[i], n_sessions, ranks[i]);
            goto done;
        }
        s[i] = (slot){rows[i], ranks[i], clicks[i]};
    }
    qsort(s, n, sizeof *s, slot_cmp);
    for (size_t i = 1; i < n; i++) {
        if (s[i].rank && s[i].rank == s[i - 1].rank) {
            rc = cw_err_set(err, CW_EINVAL, "rank %u appears twice in one list", s[i].rank);
            goto done;
        }
    }
    rc = check_rows(s, n, err);
    if (rc != CW_OK) {
        goto done;
    }
    uint64_t h = list_hash(query, s, n);
    if (merge && c->table_cap) {
        size_t p = (size_t)h & (c->table_cap - 1);
        while (c->table[p]) {
            size_t l = c->table[p] - 1;
            if (c->list_hash[l] == h && same_list(c, l, query, s, n)) {
                size_t b = c->list_begin[l];
                for (size_t i = 0; i < n; i++) {
                    c->slot_clicks[b + i] += s[i].clicks;
                }
                c->list_n[l] += n_sessions;
                goto done;
            }
            p = (p + 1) & (c->table_cap - 1);
        }
    }
    rc = reserve(c, n, err);
    if (rc != CW_OK) {
        goto done;
    }
    size_t l = c->n_lists, b = c->n_slots;
    for (size_t i = 0; i < n; i++) {
        c->slot_row[b + i] = s[i].row;
        c->slot_rank[b + i] = s[i].rank;
        c->slot_clicks[b + i] = s[i].clicks;
    }
    c->list_query[l] = query;
    c->list_n[l] = n_sessions;
    c->list_hash[l] = h;
    c->n_slots += n;
    c->list_begin[l + 1] = c->n_slots;
    if (merge) {
        rc = table_insert(c, l, err);
        if (rc != CW_OK) {
            goto done;
        }
    }
    c->n_lists++;
done:
    if (s != stack) {
        free(s);
    }
    return rc;
}

int rank_clicks_from_labels(const rank_letor *d, rank_clicks **out, cw_err *err)
{
    double ymax = 0;
    for (size_t r = 0; r < d->n_rows; r++) {
        if (d->y[r] < 0) {
            return cw_err_set(err, CW_EINVAL, "row %zu: negative label %g", r, d->y[r]);
        }
        ymax = CW_MAX(ymax, d->y[r]);
    }
    rank_clicks *c = NULL;
    int rc = rank_clicks_new(d->x, d->n_rows, d->n_features, &c, err);
    if (rc != CW_OK) {
        return rc;
    }
    size_t n_max = 0;
    for (size_t q = 0; q < d->n_queries; q++) {
        n_max = CW_MAX(n_max, d->q_begin[q + 1] - d->q_begin[q]);
    }
    size_t *rows = malloc(n_max * sizeof *rows);
    uint32_t *ranks = malloc(n_max * sizeof *ranks);
    double *gain = malloc(n_max * sizeof *gain);
    if (!rows || !ranks || !gain) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory for click lists");
    }
    double denom = ymax > 0 ? exp2(ymax) - 1 : 1;
    for (size_t q = 0; rc == CW_OK && q < d->n_queries; q++) {
        size_t b = d->q_begin[q], n = d->q_begin[q + 1] - b;
        /* Labels are full information: no slot was "shown", all are candidates. */
        for (size_t i = 0; i < n; i++) {
            rows[i] = b + i;
            ranks[i] = 0;
            gain[i] = (exp2(d->y[b + i]) - 1) / denom;
        }
        rc = rank_clicks_add(c, (uint32_t)q, rows, ranks, gain, n, 1.0, false, err);
    }
    free(rows);
    free(ranks);
    free(gain);
    if (rc != CW_OK) {
        rank_clicks_free(c);
        return rc;
    }
    *out = c;
    return CW_OK;
}
