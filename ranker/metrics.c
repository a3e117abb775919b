/* ranker/metrics.c: ranking metrics under trec_eval's conventions (METHODS.md section 1):
 * TREC qrels and run readers, nDCG (both gains), AP, P@k, R@k, RR. Used by `causeway eval`,
 * the effectiveness tests and, on in-memory lists, by learning-to-rank evaluation. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ranker/ranker.h"

const char *rank_gain_name(rank_gain g)
{
    return g == RANK_GAIN_EXP ? "exp" : "linear";
}

const char *rank_idcg0_name(rank_idcg0 r)
{
    return r == RANK_IDCG0_ONE ? "one" : r == RANK_IDCG0_ZERO ? "zero" : "drop";
}

int rank_gain_parse(const char *s, rank_gain *out, cw_err *err)
{
    if (strcmp(s, "linear") == 0) {
        *out = RANK_GAIN_LINEAR;
    } else if (strcmp(s, "exp") == 0) {
        *out = RANK_GAIN_EXP;
    } else {
        return cw_err_set(err, CW_EINVAL, "gain must be linear or exp, got '%s'", s);
    }
    return CW_OK;
}

int rank_idcg0_parse(const char *s, rank_idcg0 *out, cw_err *err)
{
    if (strcmp(s, "drop") == 0) {
        *out = RANK_IDCG0_DROP;
    } else if (strcmp(s, "zero") == 0) {
        *out = RANK_IDCG0_ZERO;
    } else if (strcmp(s, "one") == 0) {
        *out = RANK_IDCG0_ONE;
    } else {
        return cw_err_set(err, CW_EINVAL, "IDCG=0 rule must be drop, zero or one, got '%s'", s);
    }
    return CW_OK;
}

double rank_gain_of(double grade, rank_gain g)
{
    if (!(grade > 0)) {
        return 0.0;
    }
    /* Exponential gain of Burges et al. (ICML 2005), linear gain of trec_eval. */
    return g == RANK_GAIN_EXP ? exp2(grade) - 1.0 : grade;
}

double rank_dcg(const double *grades, size_t n, uint32_t k, rank_gain g)
{
    size_t m = k ? CW_MIN(n, (size_t)k) : n;
    double dcg = 0.0;
    /* Jarvelin & Kekalainen (TOIS 2002) with the log2(i + 1) discount of trec_eval 9. */
    for (size_t i = 0; i < m; i++) {
        dcg += rank_gain_of(grades[i], g) / log2((double)i + 2.0);
    }
    return dcg;
}

static int cmp_double_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

int rank_ndcg(const double *ranked, size_t n, const double *judged, size_t n_judged, uint32_t k,
              rank_gain g, rank_idcg0 rule, double *out, cw_err *err)
{
    double *ideal = malloc(sizeof(double) * (n_judged ? n_judged : 1));
    if (!ideal) {
        return cw_err_set(err, CW_ENOMEM, "ndcg: out of memory for %zu grades", n_judged);
    }
    if (n_judged) {
        memcpy(ideal, judged, sizeof(double) * n_judged);
    }
    qsort(ideal, n_judged, sizeof(double), cmp_double_desc);
    double idcg = rank_dcg(ideal, n_judged, k, g);
    free(ideal);
    if (idcg <= 0.0) {
        if (rule == RANK_IDCG0_DROP) {
            return 1;
        }
        *out = rule == RANK_IDCG0_ONE ? 1.0 : 0.0;
        return CW_OK;
    }
    *out = rank_dcg(ranked, n, k, g) / idcg;
    return CW_OK;
}

/* ---- metric names ------------------------------------------------------- */

static bool parse_cutoff(const char *s, uint32_t *k)
{
    if (!*s) {
        return false;
    }
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v == 0 || v > RANK_MAX_CUTOFF || !isdigit((unsigned char)*s)) {
        return false;
    }
    *k = (uint32_t)v;
    return true;
}

/* Parses one item; returns false if unknown. */
static bool parse_metric(const char *item, rank_metric *m)
{
    static const struct {
        const char *name;
        rank_metric_kind kind;
        bool needs_k;
        bool may_have_k;
    } table[] = {
        {"ndcg@", RANK_METRIC_NDCG, true, true},
        {"ndcg_cut_", RANK_METRIC_NDCG, true, true},
        {"ndcg", RANK_METRIC_NDCG, false, false},
        {"map", RANK_METRIC_AP, false, false},
        {"p@", RANK_METRIC_P, true, true},
        {"p_", RANK_METRIC_P, true, true},
        {"recall@", RANK_METRIC_RECALL, true, true},
        {"r@", RANK_METRIC_RECALL, true, true},
        {"recall_", RANK_METRIC_RECALL, true, true},
        {"mrr@", RANK_METRIC_RR, true, true},
        {"recip_rank_cut_", RANK_METRIC_RR, true, true},
        {"mrr", RANK_METRIC_RR, false, false},
        {"recip_rank", RANK_METRIC_RR, false, false},
    };
    for (size_t i = 0; i < CW_ARRAY_LEN(table); i++) {
        size_t n = strlen(table[i].name);
        if (strncasecmp(item, table[i].name, n) != 0) {
            continue;
        }
        const char *rest = item + n;
        m->kind = table[i].kind;
        m->k = 0;
        if (table[i].needs_k) {
            return parse_cutoff(rest, &m->k);
        }
        if (*rest == '\0') {
            return true;
        }
    }
    return false;
}

int rank_metrics_parse(const char *spec, rank_metric *out, size_t max, size_t *n_out, cw_err *err)
{
    size_t n = 0;
    const char *p = spec;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char item[64];
        if (len == 0 || len >= sizeof item) {
            return cw_err_set(err, CW_EINVAL, "metrics: bad item '%.*s' in '%s'", (int)len, p,
                              spec);
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (n == max) {
            return cw_err_set(err, CW_ELIMIT, "metrics: more than %zu in '%s'", max, spec);
        }
        if (!parse_metric(item, &out[n])) {
            return cw_err_set(err, CW_EINVAL,
                              "metrics: unknown metric '%s' (ndcg@K, ndcg, map, p@K, recall@K, "
                              "mrr, mrr@K; 1 <= K <= %u)",
                              item, RANK_MAX_CUTOFF);
        }
        n++;
        p += len;
        if (*p == ',') {
            p++;
            if (!*p) {
                return cw_err_set(err, CW_EINVAL, "metrics: trailing comma in '%s'", spec);
            }
        }
    }
    if (n == 0) {
        return cw_err_set(err, CW_EINVAL, "metrics: empty list");
    }
    *n_out = n;
    return CW_OK;
}

void rank_metric_name(const rank_metric *m, rank_gain g, char *buf, size_t n)
{
    const char *ndcg = g == RANK_GAIN_EXP ? "ndcg_exp" : "ndcg";
    switch (m->kind) {
    case RANK_METRIC_NDCG:
        if (m->k) {
            snprintf(buf, n, "%s_cut_%u", ndcg, m->k);
        } else {
            snprintf(buf, n, "%s", ndcg);
        }
        break;
    case RANK_METRIC_AP: snprintf(buf, n, "map"); break;
    case RANK_METRIC_P: snprintf(buf, n, "P_%u", m->k); break;
    case RANK_METRIC_RECALL: snprintf(buf, n, "recall_%u", m->k); break;
    case RANK_METRIC_RR:
        if (m->k) {
            snprintf(buf, n, "recip_rank_cut_%u", m->k);
        } else {
            snprintf(buf, n, "recip_rank");
        }
        break;
    }
}

/* ---- readers ------------------------------------------------------------- */

typedef struct eval_entry {
    const char *qid;
    const char *docno;
    double value; /* qrels: grade; run: score already rounded to float */
    long line;
} eval_entry;

typedef struct eval_file {
    cw_arena *arena;
    eval_entry *e;
    size_t n;
    size_t n_queries;
} eval_file;

struct rank_qrels {
    eval_file f; /* sorted by (qid, docno) */
};

struct rank_run {
    eval_file f; /* sorted by (qid, score desc, docno desc) */
};

static bool all_digits(const char *s)
{
    if (!*s) {
        return false;
    }
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s)) {
            return false;
        }
    }
    return true;
}

/* Total order on query ids: all-digit ids first in numeric order (leading zeros ignored,
 * strcmp breaks ties), then the others by strcmp. */
static int cmp_qid(const char *a, const char *b)
{
    bool da = all_digits(a), db = all_digits(b);
    if (da != db) {
        return da ? -1 : 1;
    }
    if (da) {
        const char *x = a, *y = b;
        while (*x == '0' && x[1]) {
            x++;
        }
        while (*y == '0' && y[1]) {
            y++;
        }
        size_t lx = strlen(x), ly = strlen(y);
        if (lx != ly) {
            return lx < ly ? -1 : 1;
        }
        int c = strcmp(x, y);
        if (c) {
            return c;
        }
    }
    return strcmp(a, b);
}

static int cmp_qid_docno(const void *pa, const void *pb)
{
    const eval_entry *a = pa, *b = pb;
    int c = cmp_qid(a->qid, b->qid);
    return c ? c : strcmp(a->docno, b->docno);
}

/* trec_eval's comp_sim_docno: score descending (floats), then docno descending. */
static int cmp_run_order(const void *pa, const void *pb)
{
    const eval_entry *a = pa, *b = pb;
    int c = cmp_qid(a->qid, b->qid);
    if (c) {
        return c;
    }
    if (a->value != b->value) {
        return a->value > b->value ? -1 : 1;
    }
    return strcmp(b->docno, a->docno);
}

static void eval_file_fini(eval_file *f)
{
    cw_arena_free(f->arena);
    free(f->e);
}

/* Splits line into at most max whitespace-separated fields (modifies it). */
static size_t split_fields(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;
    while (*p) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (!*p) {
            break;
        }
        if (n == max) {
            return max + 1;
        }
        fields[n++] = p;
        while (*p && *p != ' ' && *p != '\t') {
            p++;
        }
        if (*p) {
            *p++ = '\0';
        }
    }
    return n;
}

/* Reads either format: is_run selects the field layout and the score parsing. */
static int eval_file_read(const char *path, bool is_run, eval_file *f, cw_err *err)
{
    memset(f, 0, sizeof *f);
    cw_lines *lr = NULL;
    int rc = cw_lines_open(path, &lr, err);
    if (rc != CW_OK) {
        return rc;
    }
    f->arena = cw_arena_new(1 << 20);
    size_t cap = 0;
    char *buf = NULL;
    size_t buf_cap = 0;
    if (!f->arena) {
        rc = cw_err_set(err, CW_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    const char *line;
    size_t len;
    long line_no;
    int r;
    while ((r = cw_lines_next(lr, &line, &len, &line_no, err)) == 1) {
        if (len + 1 > buf_cap) {
            free(buf);
            buf_cap = len + 64;
            buf = malloc(buf_cap);
            if (!buf) {
                rc = cw_err_set(err, CW_ENOMEM, "%s:%ld: out of memory", path, line_no);
                goto fail;
            }
        }
        memcpy(buf, line, len + 1);
        char *fld[7];
        size_t nf = split_fields(buf, fld, 6);
        if (nf == 0) {
            continue; /* blank lines are harmless */
        }
        if (is_run ? (nf < 5 || nf > 6) : nf != 4) {
            rc = cw_err_set(err, CW_EPARSE,
                            is_run ? "%s:%ld: expected 'qid Q0 docno rank score [tag]'"
                                   : "%s:%ld: expected 'qid iter docno grade'",
                            path, line_no);
            goto fail;
        }
        if (strlen(fld[0]) > RANK_MAX_EVAL_ID_BYTES || strlen(fld[2]) > RANK_MAX_EVAL_ID_BYTES) {
            rc = cw_err_set(err, CW_ELIMIT, "%s:%ld: id longer than %u bytes", path, line_no,
                            RANK_MAX_EVAL_ID_BYTES);
            goto fail;
        }
        double value;
        char *end = NULL;
        errno = 0;
        if (is_run) {
            double s = strtod(fld[4], &end);
            if (errno == ERANGE || *end || end == fld[4] || !isfinite(s) || !isfinite((float)s)) {
                rc = cw_err_set(err, CW_EPARSE, "%s:%ld: bad score '%s'", path, line_no, fld[4]);
                goto fail;
            }
            /* trec_eval keeps scores as float: doubles rounding to one float tie. */
            value = (float)s;
        } else {
            long g = strtol(fld[3], &end, 10);
            if (errno || *end || end == fld[3] || g < -1000000 || g > 1000000) {
                rc = cw_err_set(err, CW_EPARSE, "%s:%ld: bad grade '%s' (an integer expected)",
                                path, line_no, fld[3]);
                goto fail;
            }
            value = (double)g;
        }
        if (f->n == cap) {
            if (cap >= RANK_MAX_EVAL_LINES) {
                rc = cw_err_set(err, CW_ELIMIT, "%s:%ld: more than %llu lines", path, line_no,
                                (unsigned long long)RANK_MAX_EVAL_LINES);
                goto fail;
            }
            size_t ncap = cap ? cap * 2 : 4096;
            eval_entry *p = realloc(f->e, sizeof(eval_entry) * ncap);
            if (!p) {
                rc = cw_err_set(err, CW_ENOMEM, "%s:%ld: out of memory", path, line_no);
                goto fail;
            }
            f->e = p;
            cap = ncap;
        }
        eval_entry *e = &f->e[f->n];
        e->qid = cw_arena_strdup(f->arena, fld[0]);
        e->docno = cw_arena_strdup(f->arena, fld[2]);
        if (!e->qid || !e->docno) {
            rc = cw_err_set(err, CW_ENOMEM, "%s:%ld: out of memory", path, line_no);
            goto fail;
        }
        e->value = value;
        e->line = line_no;
        f->n++;
    }
    if (r < 0) {
        rc = r;
        goto fail;
    }
    if (f->n > 1) { /* an empty file leaves f->e NULL, which qsort must not get */
        qsort(f->e, f->n, sizeof(eval_entry), cmp_qid_docno);
    }
    for (size_t i = 0; i < f->n; i++) {
        if (i > 0 && cmp_qid_docno(&f->e[i - 1], &f->e[i]) == 0) {
            long l1 = CW_MIN(f->e[i - 1].line, f->e[i].line);
            long l2 = CW_MAX(f->e[i - 1].line, f->e[i].line);
            rc = cw_err_set(err, CW_EPARSE,
                            "%s:%ld: duplicate document '%s' for query '%s' "
                            "(first at line %ld)",
                            path, l2, f->e[i].docno, f->e[i].qid, l1);
            goto fail;
        }
        f->n_queries += i == 0 || strcmp(f->e[i - 1].qid, f->e[i].qid) != 0;
    }
    if (is_run && f->n > 1) {
        qsort(f->e, f->n, sizeof(eval_entry), cmp_run_order);
    }
    free(buf);
    cw_lines_close(lr);
    return CW_OK;
fail:
    free(buf);
    cw_lines_close(lr);
    eval_file_fini(f);
    memset(f, 0, sizeof *f);
    return rc;
}

int rank_qrels_read(const char *path, rank_qrels **out, cw_err *err)
{
    rank_qrels *q = calloc(1, sizeof *q);
    if (!q) {
        return cw_err_set(err, CW_ENOMEM, "%s: out of memory", path);
    }
    int rc = eval_file_read(path, false, &q->f, err);
    if (rc != CW_OK) {
        free(q);
        return rc;
    }
    *out = q;
    return CW_OK;
}

void rank_qrels_free(rank_qrels *q)
{
    if (q) {
        eval_file_fini(&q->f);
        free(q);
    }
}

int rank_run_read(const char *path, rank_run **out, cw_err *err)
{
    rank_run *r = calloc(1, sizeof *r);
    if (!r) {
        return cw_err_set(err, CW_ENOMEM, "%s: out of memory", path);
    }
    int rc = eval_file_read(path, true, &r->f, err);
    if (rc != CW_OK) {
        free(r);
        return rc;
    }
    *out = r;
    return CW_OK;
}

void rank_run_free(rank_run *r)
{
    if (r) {
        eval_file_fini(&r->f);
        free(r);
    }
}

size_t rank_qrels_n_queries(const rank_qrels *q)
{
    return q->f.n_queries;
}

size_t rank_run_n_queries(const rank_run *r)
{
    return r->f.n_queries;
}

/* ---- evaluation ----------------------------------------------------------- */

rank_eval_opts rank_eval_opts_default(void)
{
    return (rank_eval_opts){RANK_GAIN_LINEAR, RANK_IDCG0_DROP, RANK_EVAL_DEPTH};
}

void rank_eval_result_free(rank_eval_result *r)
{
    if (r) {
        free((void *)r->qid);
        free(r->values);
        free(r);
    }
}

/* Grade of docno in the judged slice [b, e) of qrels sorted by docno; 0 if unjudged. */
static double lookup_grade(const eval_entry *b, size_t n, const char *docno)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(b[mid].docno, docno);
        if (c == 0) {
            return b[mid].value;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return 0.0;
}

/* Values of every metric for one query: ranked grades y[0..n), judged grades (ideal order)
 * ideal[0..n_judged), R relevant judgments (> 0). */
static void query_values(const double *y, size_t n, const double *ideal, size_t n_judged,
                         size_t n_rel, const rank_metric *ms, size_t n_m, rank_gain g, double *out)
{
    for (size_t j = 0; j < n_m; j++) {
        const rank_metric *m = &ms[j];
        size_t cut = m->k ? CW_MIN(n, (size_t)m->k) : n;
        double v = 0.0;
        switch (m->kind) {
        case RANK_METRIC_NDCG: {
            double idcg = rank_dcg(ideal, n_judged, m->k, g);
            v = idcg > 0 ? rank_dcg(y, n, m->k, g) / idcg : 0.0;
            break;
        }
        case RANK_METRIC_AP: {
            size_t hits = 0;
            for (size_t i = 0; i < n; i++) {
                if (y[i] >= 1) {
                    hits++;
                    v += (double)hits / (double)(i + 1);
                }
            }
            v /= (double)n_rel;
            break;
        }
        case RANK_METRIC_P:
        case RANK_METRIC_RECALL: {
            size_t hits = 0;
            for (size_t i = 0; i < cut; i++) {
                hits += y[i] >= 1;
            }
            v = (double)hits / (m->kind == RANK_METRIC_P ? (double)m->k : (double)n_rel);
            break;
        }
        case RANK_METRIC_RR:
            for (size_t i = 0; i < cut; i++) {
                if (y[i] >= 1) {
                    v = 1.0 / (double)(i + 1);
                    break;
                }
            }
            break;
        }
        out[j] = v;
    }
}

int rank_evaluate(const rank_qrels *qrels, const rank_run *run, const rank_metric *metrics,
                  size_t n_metrics, const rank_eval_opts *opts, rank_eval_result **out, cw_err *err)
{
    if (n_metrics == 0 || n_metrics > RANK_MAX_METRICS) {
        return cw_err_set(err, CW_EINVAL, "evaluate: between 1 and %u metrics, got %zu",
                          RANK_MAX_METRICS, n_metrics);
    }
    if (opts->depth == 0 || opts->depth > RANK_MAX_EVAL_DEPTH) {
        return cw_err_set(err, CW_EINVAL, "evaluate: depth must be in [1, %u]",
                          RANK_MAX_EVAL_DEPTH);
    }
    const eval_file *qf = &qrels->f, *rf = &run->f;
    rank_eval_result *res = calloc(1, sizeof *res);
    size_t nq = qf->n_queries;
    double *y = malloc(sizeof(double) * opts->depth);
    double *ideal = malloc(sizeof(double) * (qf->n ? qf->n : 1));
    if (res) {
        res->qid = malloc(sizeof(char *) * (nq ? nq : 1));
        res->values = malloc(sizeof(double) * n_metrics * (nq ? nq : 1));
    }
    if (!res || !y || !ideal || !res->qid || !res->values) {
        free(y);
        free(ideal);
        rank_eval_result_free(res);
        return cw_err_set(err, CW_ENOMEM, "evaluate: out of memory");
    }
    res->n_metrics = n_metrics;
    memcpy(res->metrics, metrics, sizeof(rank_metric) * n_metrics);
    size_t ri = 0;
    for (size_t qi = 0; qi < qf->n;) {
        const char *qid = qf->e[qi].qid;
        size_t qe = qi;
        size_t n_judged = 0, n_rel = 0;
        while (qe < qf->n && strcmp(qf->e[qe].qid, qid) == 0) {
            ideal[n_judged++] = qf->e[qe].value;
            n_rel += qf->e[qe].value >= 1;
            qe++;
        }
        qsort(ideal, n_judged, sizeof(double), cmp_double_desc);
        /* Both files are sorted by cmp_qid: walk the run forward to this query. */
        while (ri < rf->n && cmp_qid(rf->e[ri].qid, qid) < 0) {
            ri++;
        }
        size_t n = 0, rel_ret = 0;
        while (ri < rf->n && strcmp(rf->e[ri].qid, qid) == 0) {
            if (n < opts->depth) {
                y[n] = lookup_grade(qf->e + qi, qe - qi, rf->e[ri].docno);
                rel_ret += y[n] >= 1;
                n++;
            }
            ri++;
        }
        double *v = res->values + res->n_queries * n_metrics;
        if (n_rel == 0) {
            if (opts->idcg0 == RANK_IDCG0_DROP) {
                res->n_dropped++;
                qi = qe;
                continue;
            }
            for (size_t j = 0; j < n_metrics; j++) {
                v[j] = opts->idcg0 == RANK_IDCG0_ONE && metrics[j].kind == RANK_METRIC_NDCG;
            }
        } else {
            query_values(y, n, ideal, n_judged, n_rel, metrics, n_metrics, opts->gain, v);
        }
        res->n_missing += n == 0;
        res->n_ret += n;
        res->n_rel += n_rel;
        res->n_rel_ret += rel_ret;
        res->qid[res->n_queries++] = qid;
        qi = qe;
    }
    for (size_t j = 0; j < n_metrics; j++) {
        double s = 0.0;
        for (size_t q = 0; q < res->n_queries; q++) {
            s += res->values[q * n_metrics + j];
        }
        res->mean[j] = res->n_queries ? s / (double)res->n_queries : 0.0;
    }
    free(y);
    free(ideal);
    *out = res;
    return CW_OK;
}
