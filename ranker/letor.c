/* ranker/letor.c: reads LETOR/SVMlight learning-to-rank files (MQ2008, MSLR) into a dense
 * row-major matrix grouped by query; the input of offline training, `causeway rank --letor`
 * and the click simulator (causal/). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ranker/ranker.h"

/* Growable arrays of the reader; x grows by whole rows once n_features is known. */
typedef struct letor_builder {
    size_t n_rows, cap_rows;
    size_t n_features; /* current width of x */
    double *x;
    double *y;
    char **doc_id;
    size_t n_queries, cap_queries;
    size_t *q_begin; /* n_queries + 1 entries used */
    char **qid;
    char **names; /* from a "# causeway-features:" line, n_names of them */
    size_t n_names;
} letor_builder;

static int grow_rows(letor_builder *b, cw_err *err)
{
    if (b->n_rows < b->cap_rows) {
        return CW_OK;
    }
    size_t cap = b->cap_rows ? b->cap_rows * 2 : 1024;
    double *x = realloc(b->x, cap * (b->n_features ? b->n_features : 1) * sizeof *x);
    if (!x) {
        return cw_err_set(err, CW_ENOMEM, "out of memory reading LETOR rows");
    }
    b->x = x;
    double *y = realloc(b->y, cap * sizeof *y);
    if (!y) {
        return cw_err_set(err, CW_ENOMEM, "out of memory reading LETOR rows");
    }
    b->y = y;
    char **ids = realloc(b->doc_id, cap * sizeof *ids);
    if (!ids) {
        return cw_err_set(err, CW_ENOMEM, "out of memory reading LETOR rows");
    }
    b->doc_id = ids;
    b->cap_rows = cap;
    return CW_OK;
}

/* Widens x to n columns, moving existing rows and the row being parsed (rare: only when
 * a higher index appears). */
static int widen(letor_builder *b, size_t n, cw_err *err)
{
    if (n <= b->n_features) {
        return CW_OK;
    }
    size_t cap = b->cap_rows ? b->cap_rows : 1;
    double *x = malloc(cap * n * sizeof *x);
    if (!x) {
        return cw_err_set(err, CW_ENOMEM, "out of memory reading LETOR features");
    }
    size_t n_live = b->n_rows < cap ? b->n_rows + 1 : b->n_rows;
    for (size_t r = 0; r < n_live; r++) {
        memcpy(x + r * n, b->x + r * b->n_features, b->n_features * sizeof *x);
        memset(x + r * n + b->n_features, 0, (n - b->n_features) * sizeof *x);
    }
    free(b->x);
    b->x = x;
    b->n_features = n;
    return CW_OK;
}

static int add_query(letor_builder *b, const char *qid, size_t qid_len, cw_err *err)
{
    if (b->n_queries + 2 > b->cap_queries) {
        size_t cap = b->cap_queries ? b->cap_queries * 2 : 256;
        size_t *qb = realloc(b->q_begin, cap * sizeof *qb);
        if (!qb) {
            return cw_err_set(err, CW_ENOMEM, "out of memory reading LETOR queries");
        }
        b->q_begin = qb;
        char **q = realloc(b->qid, cap * sizeof *q);
        if (!q) {
            return cw_err_set(err, CW_ENOMEM, "out of memory reading LETOR queries");
        }
        b->qid = q;
        b->cap_queries = cap;
    }
    char *s = strndup(qid, qid_len);
    if (!s) {
        return cw_err_set(err, CW_ENOMEM, "out of memory reading LETOR queries");
    }
    b->qid[b->n_queries] = s;
    b->q_begin[b->n_queries] = b->n_rows;
    b->n_queries++;
    return CW_OK;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++) {
        free(names[i]);
    }
    free(names);
}

/* "# causeway-features: a b c": the column names; a second file must repeat them. */
static int parse_names(letor_builder *b, const char *p, const char *path, long line_no, cw_err *err)
{
    char **names = calloc(RANK_MAX_FEATURES, sizeof *names);
    size_t n = 0;
    if (!names) {
        return cw_err_set(err, CW_ENOMEM, "out of memory reading feature names");
    }
    int rc = CW_OK;
    while (rc == CW_OK) {
        while (is_space(*p)) {
            p++;
        }
        if (!*p) {
            break;
        }
        const char *e = p;
        while (*e && !is_space(*e)) {
            e++;
        }
        size_t len = (size_t)(e - p);
        if (n == RANK_MAX_FEATURES || len >= RANK_MAX_FEATURE_NAME) {
            rc = cw_err_set(err, CW_ELIMIT, "%s:%ld: over %u feature names or a name over %u bytes",
                            path, line_no, RANK_MAX_FEATURES, RANK_MAX_FEATURE_NAME - 1);
            break;
        }
        names[n] = strndup(p, len);
        if (!names[n++]) {
            rc = cw_err_set(err, CW_ENOMEM, "out of memory reading feature names");
        }
        p = e;
    }
    if (rc == CW_OK && b->names) {
        bool same = n == b->n_names;
        for (size_t i = 0; same && i < n; i++) {
            same = strcmp(names[i], b->names[i]) == 0;
        }
        if (!same) {
            rc = cw_err_set(err, CW_EPARSE, "%s:%ld: feature names differ from the first file's",
                            path, line_no);
        }
    }
    if (rc != CW_OK || b->names) {
        free_names(names, n);
        return rc;
    }
    b->names = names;
    b->n_names = n;
    return CW_OK;
}

static void builder_fini(letor_builder *b)
{
    free_names(b->names, b->n_names);
    for (size_t i = 0; i < b->n_rows; i++) {
        free(b->doc_id[i]);
    }
    for (size_t i = 0; i < b->n_queries; i++) {
        free(b->qid[i]);
    }
    free(b->x);
    free(b->y);
    free(b->doc_id);
    free(b->q_begin);
    free(b->qid);
}

/* Query ids seen so far, to reject a query split over two runs of rows: a simple
 * open-addressing set of indices into b->qid. */
typedef struct qid_set {
    size_t *slot; /* index + 1, 0 = empty */
    size_t cap;
} qid_set;

static bool qid_set_seen(qid_set *s, const letor_builder *b, const char *qid, size_t len)
{
    if (s->cap == 0) {
        return false;
    }
    size_t h = (size_t)cw_hash64(qid, len, 7) & (s->cap - 1);
    while (s->slot[h]) {
        const char *o = b->qid[s->slot[h] - 1];
        if (strlen(o) == len && memcmp(o, qid, len) == 0) {
            return true;
        }
        h = (h + 1) & (s->cap - 1);
    }
    return false;
}

static int qid_set_add(qid_set *s, const letor_builder *b, size_t index, cw_err *err)
{
    if ((index + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        size_t *slot = calloc(cap, sizeof *slot);
        if (!slot) {
            return cw_err_set(err, CW_ENOMEM, "out of memory reading LETOR queries");
        }
        for (size_t i = 0; i < s->cap; i++) {
            if (s->slot[i]) {
                const char *q = b->qid[s->slot[i] - 1];
                size_t h = (size_t)cw_hash64(q, strlen(q), 7) & (cap - 1);
                while (slot[h]) {
                    h = (h + 1) & (cap - 1);
                }
                slot[h] = s->slot[i];
            }
        }
        free(s->slot);
        s->slot = slot;
        s->cap = cap;
    }
    const char *q = b->qid[index];
    size_t h = (size_t)cw_hash64(q, strlen(q), 7) & (s->cap - 1);
    while (s->slot[h]) {
        h = (h + 1) & (s->cap - 1);
    }
    s->slot[h] = index + 1;
    return CW_OK;
}

/* Parses one line into row b->n_rows. */
static int parse_line(letor_builder *b, qid_set *seen, const char *line, const char *path,
                      long line_no, cw_err *err)
{
    const char *p = line;
    char *end = NULL;
    errno = 0;
    double label = strtod(p, &end);
    if (end == p || !is_space(*end) || !isfinite(label) || errno == ERANGE) {
        return cw_err_set(err, CW_EPARSE, "%s:%ld: expected a numeric label", path, line_no);
    }
    p = end;
    while (is_space(*p)) {
        p++;
    }
    if (strncmp(p, "qid:", 4) != 0) {
        return cw_err_set(err, CW_EPARSE, "%s:%ld: expected \"qid:\" after the label", path,
                          line_no);
    }
    p += 4;
    const char *qid = p;
    while (*p && !is_space(*p) && *p != '#') {
        p++;
    }
    size_t qid_len = (size_t)(p - qid);
    if (qid_len == 0) {
        return cw_err_set(err, CW_EPARSE, "%s:%ld: empty qid", path, line_no);
    }
    bool is_new = b->n_queries == 0 || strlen(b->qid[b->n_queries - 1]) != qid_len ||
                  memcmp(b->qid[b->n_queries - 1], qid, qid_len) != 0;
    if (is_new) {
        if (qid_set_seen(seen, b, qid, qid_len)) {
            return cw_err_set(err, CW_EPARSE, "%s:%ld: rows of qid %.*s are not contiguous", path,
                              line_no, (int)qid_len, qid);
        }
        int rc = add_query(b, qid, qid_len, err);
        if (rc == CW_OK) {
            rc = qid_set_add(seen, b, b->n_queries - 1, err);
        }
        if (rc != CW_OK) {
            return rc;
        }
    } else if (b->n_rows - b->q_begin[b->n_queries - 1] >= RANK_MAX_QUERY_DOCS) {
        return cw_err_set(err, CW_ELIMIT, "%s:%ld: qid %.*s has over %u rows", path, line_no,
                          (int)qid_len, qid, RANK_MAX_QUERY_DOCS);
    }
    if (b->n_rows >= RANK_MAX_LETOR_ROWS) {
        return cw_err_set(err, CW_ELIMIT, "%s:%ld: over %u rows", path, line_no,
                          RANK_MAX_LETOR_ROWS);
    }
    int rc = grow_rows(b, err);
    if (rc != CW_OK) {
        return rc;
    }
    size_t row = b->n_rows;
    memset(b->x + row * b->n_features, 0, b->n_features * sizeof(double));
    b->y[row] = label;
    b->doc_id[row] = NULL;
    long prev_index = 0;
    for (;;) {
        while (is_space(*p)) {
            p++;
        }
        if (*p == '\0' || *p == '#') {
            break;
        }
        errno = 0;
        long index = strtol(p, &end, 10);
        if (end == p || *end != ':' || errno == ERANGE) {
            return cw_err_set(err, CW_EPARSE, "%s:%ld: column %ld: expected INDEX:VALUE", path,
                              line_no, (long)(p - line) + 1);
        }
        if (index <= prev_index) {
            return cw_err_set(err, CW_EPARSE,
                              "%s:%ld: column %ld: feature index %ld not above the previous %ld",
                              path, line_no, (long)(p - line) + 1, index, prev_index);
        }
        if (index > (long)RANK_MAX_FEATURES) {
            return cw_err_set(err, CW_ELIMIT, "%s:%ld: feature index %ld over the limit %u", path,
                              line_no, index, RANK_MAX_FEATURES);
        }
        prev_index = index;
        p = end + 1;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || (*end && !is_space(*end) && *end != '#') || !isfinite(v) ||
            errno == ERANGE) {
            return cw_err_set(err, CW_EPARSE, "%s:%ld: column %ld: bad value of feature %ld", path,
                              line_no, (long)(p - line) + 1, index);
        }
        p = end;
        if ((size_t)index > b->n_features) {
            rc = widen(b, (size_t)index, err);
            if (rc != CW_OK) {
                return rc;
            }
        }
        b->x[row * b->n_features + (size_t)index - 1] = v;
    }
    if (*p == '#') {
        const char *d = strstr(p, "docid");
        if (d) {
            d += 5;
            while (is_space(*d) || *d == '=') {
                d++;
            }
            const char *e = d;
            while (*e && !is_space(*e)) {
                e++;
            }
            if (e > d) {
                b->doc_id[row] = strndup(d, (size_t)(e - d));
                if (!b->doc_id[row]) {
                    return cw_err_set(err, CW_ENOMEM, "out of memory reading LETOR rows");
                }
            }
        }
    }
    b->n_rows++;
    return CW_OK;
}

int rank_letor_read(const char *const *paths, size_t n_paths, rank_letor **out, cw_err *err)
{
    letor_builder b = {0};
    qid_set seen = {0};
    cw_lines *lr = NULL;
    rank_letor *d = NULL;
    int rc = CW_OK;
    for (size_t f = 0; f < n_paths; f++) {
        rc = cw_lines_open(paths[f], &lr, err);
        if (rc != CW_OK) {
            goto fail;
        }
        const char *line;
        size_t len;
        long line_no;
        for (;;) {
            rc = cw_lines_next(lr, &line, &len, &line_no, err);
            if (rc <= 0) {
                break;
            }
            const char *p = line;
            while (is_space(*p)) {
                p++;
            }
            if (strncmp(p, "# causeway-features:", 20) == 0) {
                rc = parse_names(&b, p + 20, paths[f], line_no, err);
                if (rc != CW_OK) {
                    goto fail;
                }
                continue;
            }
            if (*p == '\0' || *p == '#') {
                continue;
            }
            rc = parse_line(&b, &seen, p, paths[f], line_no, err);
            if (rc != CW_OK) {
                goto fail;
            }
        }
        cw_lines_close(lr);
        lr = NULL;
        if (rc < 0) {
            goto fail;
        }
    }
    if (b.n_rows == 0) {
        rc = cw_err_set(err, CW_EPARSE, "%s: no LETOR rows", n_paths ? paths[0] : "(no file)");
        goto fail;
    }
    if (b.names && b.n_features > b.n_names) {
        rc = cw_err_set(err, CW_EPARSE, "%s: feature %zu used but only %zu names declared",
                        paths[0], b.n_features, b.n_names);
        goto fail;
    }
    if (b.names && b.n_features < b.n_names) {
        rc = widen(&b, b.n_names, err);
        if (rc != CW_OK) {
            goto fail;
        }
    }
    d = calloc(1, sizeof *d);
    if (!d) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory reading LETOR data");
        goto fail;
    }
    d->feature_names = b.names;
    b.q_begin[b.n_queries] = b.n_rows;
    d->n_rows = b.n_rows;
    d->n_features = b.n_features;
    d->n_queries = b.n_queries;
    d->x = b.x;
    d->y = b.y;
    d->q_begin = b.q_begin;
    d->qid = b.qid;
    d->doc_id = b.doc_id;
    free(seen.slot);
    *out = d;
    return CW_OK;
fail:
    cw_lines_close(lr);
    free(seen.slot);
    builder_fini(&b);
    return rc;
}

void rank_letor_free(rank_letor *d)
{
    if (!d) {
        return;
    }
    for (size_t i = 0; i < d->n_rows; i++) {
        free(d->doc_id[i]);
    }
    for (size_t i = 0; i < d->n_queries; i++) {
        free(d->qid[i]);
    }
    free(d->x);
    free(d->y);
    free(d->doc_id);
    free(d->q_begin);
    free(d->qid);
    free_names(d->feature_names, d->n_features);
    free(d);
}

static char *dup_or_null(const char *s, bool *failed)
{
    if (!s) {
        return NULL;
    }
    char *c = strdup(s);
    if (!c) {
        *failed = true;
    }
    return c;
}

int rank_letor_subset(const rank_letor *d, const size_t *queries, size_t n, rank_letor **out,
                      cw_err *err)
{
    size_t n_rows = 0;
    for (size_t i = 0; i < n; i++) {
        if (queries[i] >= d->n_queries) {
            return cw_err_set(err, CW_EINVAL, "query index %zu out of range (%zu queries)",
                              queries[i], d->n_queries);
        }
        n_rows += d->q_begin[queries[i] + 1] - d->q_begin[queries[i]];
    }
    rank_letor *s = calloc(1, sizeof *s);
    if (!s) {
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    size_t nf = d->n_features;
    s->n_features = nf;
    s->x = malloc((n_rows ? n_rows : 1) * nf * sizeof *s->x);
    s->y = malloc((n_rows ? n_rows : 1) * sizeof *s->y);
    s->doc_id = calloc(n_rows ? n_rows : 1, sizeof *s->doc_id);
    s->q_begin = malloc((n + 1) * sizeof *s->q_begin);
    s->qid = calloc(n ? n : 1, sizeof *s->qid);
    bool failed = !s->x || !s->y || !s->doc_id || !s->q_begin || !s->qid;
    if (!failed && d->feature_names) {
        s->feature_names = calloc(nf, sizeof *s->feature_names);
        failed = !s->feature_names;
        for (size_t i = 0; !failed && i < nf; i++) {
            s->feature_names[i] = dup_or_null(d->feature_names[i], &failed);
        }
    }
    size_t r = 0;
    for (size_t i = 0; i < n && !failed; i++) {
        size_t q = queries[i];
        s->q_begin[i] = r;
        s->qid[i] = dup_or_null(d->qid[q], &failed);
        s->n_queries = i + 1;
        for (size_t j = d->q_begin[q]; j < d->q_begin[q + 1] && !failed; j++, r++) {
            memcpy(s->x + r * nf, d->x + j * nf, nf * sizeof *s->x);
            s->y[r] = d->y[j];
            s->doc_id[r] = dup_or_null(d->doc_id[j], &failed);
            s->n_rows = r + 1;
        }
    }
    if (failed) {
        rank_letor_free(s);
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    s->q_begin[n] = r;
    s->n_rows = r;
    *out = s;
    return CW_OK;
}
