/* cli/cmd_rank.c: `causeway rank`, scoring with a trained model: a LETOR file (TREC run
 * of its rows, nDCG on its labels) or an index and a query file (BM25 candidates
 * reranked with the features the server uses). Output: a TREC run for `causeway eval`. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "ranker/ranker.h"

#define CMD "rank"

/* Output files (--out, --letor-out) are written to PATH.tmp.PID and renamed only when the
 * whole job succeeded, so a bad query line or Ctrl-C never leaves a truncated run under the
 * name of a complete one. NULL path: stdout (or nothing). */
static FILE *out_open(const char *path, FILE *fallback, char *tmp, size_t tmp_size, cw_err *err)
{
    if (!path) {
        return fallback;
    }
    if ((size_t)snprintf(tmp, tmp_size, "%s.tmp.%ld", path, (long)getpid()) >= tmp_size) {
        cw_err_set(err, CW_ELIMIT, "%s: path too long", path);
        return NULL;
    }
    FILE *f = fopen(tmp, "w");
    if (!f) {
        cw_err_set(err, CW_EIO, "%s: %s", path, strerror(errno));
    }
    return f;
}

/* Closes f (not stdout) and renames its temporary file over path when rc is CW_OK, else
 * removes it. Returns rc, or CW_EIO when closing or renaming failed. */
static int out_close(FILE *f, const char *path, const char *tmp, int rc, cw_err *err)
{
    if (!f || !path) {
        return rc;
    }
    if (fclose(f) != 0 && rc == CW_OK) {
        rc = cw_err_set(err, CW_EIO, "%s: write failed: %s", path, strerror(errno));
    }
    if (rc == CW_OK && rename(tmp, path) != 0) {
        rc = cw_err_set(err, CW_EIO, "%s: rename: %s", path, strerror(errno));
    }
    if (rc != CW_OK) {
        unlink(tmp);
    }
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: causeway rank --model MODEL.json --letor FILE [--out RUN] [--tag NAME]\n\n"
               "Scores every row of a LETOR file with the model and writes a TREC run\n"
               "(\"qid Q0 docid rank score tag\", docid = the row's \"#docid = X\" comment or\n"
               "row-N). With graded labels in the file, prints nDCG@1,3,5,10 (gain 2^y-1,\n"
               "queries without a relevant row dropped) to stderr.\n\n"
               "With --index: each query of the TSV file (qid<TAB>text) retrieves its top --depth\n"
               "(default 100) documents by BM25, which the model reranks on the features the\n"
               "server uses (feature set " RANK_FEATURE_SET "; static:NAME features of the model\n"
               "read stored fields). Without --model the BM25 order is written. Prints the median\n"
               "time per query of feature extraction + scoring and of scoring alone.\n"
               "A model whose last feature is dense_cos (trained on a log of a server with\n"
               "dense files, feature set " RANK_FEATURE_SET_DENSE ") opens DIR's dense files\n"
               "and, like the server, reranks hybrid candidates (BM25 + dense, RRF).\n\n"
               "  --model FILE  a model written by causeway train\n"
               "  --letor FILE  query-document rows with the model's features, in order\n"
               "  --index DIR   an index built by causeway index\n"
               "  --queries F   qid<TAB>query text, one per line\n"
               "  --depth N     candidates per query (1..1000, default 100)\n"
               "  --letor-out F also write every candidate's features as LETOR rows (header\n"
               "                \"# causeway-features: NAMES\"), labels from --qrels (0 if\n"
               "                unjudged): training data for causeway train --letor\n"
               "  --out FILE    the run (default stdout)\n"
               "  --tag NAME    run tag (default causeway)\n");
    fprintf(f, "\nExit codes: 0 success, 1 failure (the message names the file and line or\n"
               "byte offset at fault), 2 usage error.\n");
}

typedef struct ranked {
    double score;
    size_t row;
} ranked;

static int by_score(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->score != y->score) {
        return x->score > y->score ? -1 : 1;
    }
    return x->row < y->row ? -1 : x->row > y->row;
}

static int write_run(FILE *f, const rank_letor *d, const double *scores, const char *tag)
{
    size_t n_max = 0;
    for (size_t q = 0; q < d->n_queries; q++) {
        n_max = CW_MAX(n_max, d->q_begin[q + 1] - d->q_begin[q]);
    }
    ranked *v = malloc((n_max ? n_max : 1) * sizeof *v);
    if (!v) {
        return CW_ENOMEM;
    }
    for (size_t q = 0; q < d->n_queries; q++) {
        size_t b = d->q_begin[q], n = d->q_begin[q + 1] - b;
        for (size_t i = 0; i < n; i++) {
            v[i] = (ranked){scores[b + i], b + i};
        }
        qsort(v, n, sizeof *v, by_score);
        for (size_t i = 0; i < n; i++) {
            size_t r = v[i].row;
            if (d->doc_id[r]) {
                fprintf(f, "%s Q0 %s %zu %.9g %s\n", d->qid[q], d->doc_id[r], i + 1, v[i].score,
                        tag);
            } else {
                fprintf(f, "%s Q0 row-%zu %zu %.9g %s\n", d->qid[q], r, i + 1, v[i].score, tag);
            }
        }
    }
    free(v);
    return ferror(f) ? CW_EIO : CW_OK;
}

/* Grades of a qrels file ("qid iter docno grade") as sorted "qid\tdocno" keys. */
typedef struct grade_entry {
    char *key;
    double grade;
} grade_entry;

typedef struct grades {
    grade_entry *e;
    size_t n;
} grades;

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const grade_entry *)a)->key, ((const grade_entry *)b)->key);
}

static void grades_fini(grades *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->e[i].key);
    }
    free(g->e);
}

static int grades_read(const char *path, grades *g, cw_err *err)
{
    memset(g, 0, sizeof *g);
    cw_lines *lr = NULL;
    int rc = cw_lines_open(path, &lr, err);
    size_t cap = 0;
    const char *line;
    size_t len;
    long no;
    int more = 0;
    while (rc == CW_OK && (more = cw_lines_next(lr, &line, &len, &no, err)) == 1) {
        char qid[RANK_MAX_EVAL_ID_BYTES], docno[RANK_MAX_EVAL_ID_BYTES], iter[64];
        double grade;
        char tail;
        if (len == 0) {
            continue;
        }
        if (sscanf(line, "%255s %63s %255s %lf %c", qid, iter, docno, &grade, &tail) != 4) {
            rc = cw_err_set(err, CW_EPARSE, "%s:%ld: expected \"qid iter docno grade\"", path, no);
            break;
        }
        if (g->n == cap) {
            cap = cap ? 2 * cap : 1024;
            grade_entry *e = realloc(g->e, cap * sizeof *e);
            if (!e) {
                rc = cw_err_set(err, CW_ENOMEM, "out of memory reading %s", path);
                break;
            }
            g->e = e;
        }
        size_t kl = strlen(qid) + strlen(docno) + 2;
        char *key = malloc(kl);
        if (!key) {
            rc = cw_err_set(err, CW_ENOMEM, "out of memory reading %s", path);
            break;
        }
        snprintf(key, kl, "%s\t%s", qid, docno);
        g->e[g->n++] = (grade_entry){key, grade};
    }
    if (rc == CW_OK && more < 0) {
        rc = more;
    }
    cw_lines_close(lr);
    if (rc != CW_OK) {
        grades_fini(g);
        return rc;
    }
    qsort(g->e, g->n, sizeof *g->e, entry_cmp);
    return CW_OK;
}

static double grade_of(const grades *g, const char *qid, int qid_len, const char *doc,
                       size_t doc_len)
{
    char key[2 * RANK_MAX_EVAL_ID_BYTES + 2];
    snprintf(key, sizeof key, "%.*s\t%.*s", qid_len, qid, (int)doc_len, doc);
    grade_entry probe = {key, 0};
    const grade_entry *e = g ? bsearch(&probe, g->e, g->n, sizeof *g->e, entry_cmp) : NULL;
    return e && e->grade > 0 ? e->grade : 0.0;
}

typedef struct hit_score {
    uint32_t doc;
    double score;
} hit_score;

static int by_hit_score(const void *a, const void *b)
{
    const hit_score *x = a, *y = b;
    if (x->score != y->score) {
        return x->score > y->score ? -1 : 1;
    }
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

/* Model features must be the extractor's: cw-text-v1 names, then static:NAME, then
 * optionally dense_cos (then *dn is DIR's dense side, opened here). */
static int extractor_for(const idx_index *ix, const char *dir, const rank_model *m,
                         rank_features **out, idx_dense **dn, cw_err *err)
{
    const char *stat[RANK_MAX_STATIC_FEATURES];
    size_t n_static = 0, nf = m ? rank_model_n_features(m) : RANK_TEXT_FEATURES;
    bool dense = m && nf > RANK_TEXT_FEATURES &&
                 strcmp(rank_model_feature_name(m, nf - 1), "dense_cos") == 0;
    for (size_t i = RANK_TEXT_FEATURES; m && i < nf - dense; i++) {
        const char *name = rank_model_feature_name(m, i);
        if (strncmp(name, "static:", 7) != 0 || n_static == RANK_MAX_STATIC_FEATURES) {
            return cw_err_set(err, CW_EINVAL, "model feature %zu \"%s\" is not static:NAME", i,
                              name);
        }
        stat[n_static++] = name + 7;
    }
    /* a forward store of up to 64 Mi tokens (256 MiB): no re-analysis per query */
    int rc = rank_features_new(ix, stat, n_static, NULL, (size_t)64 << 20, out, err);
    if (rc != CW_OK) {
        return rc;
    }
    if (dense) {
        rc = idx_dense_open(dir, dn, err);
        rc = rc ? rc : rank_features_add_dense(*out, *dn, err);
        if (rc != CW_OK) {
            rank_features_free(*out);
            *out = NULL;
            return rc;
        }
    }
    for (size_t i = 0; m && i < nf; i++) {
        if (i >= rank_features_n(*out) ||
            strcmp(rank_features_name(*out, i), rank_model_feature_name(m, i)) != 0) {
            rc = cw_err_set(err, CW_EINVAL,
                            "model feature %zu is \"%s\", the extractor (" RANK_FEATURE_SET
                            ") has \"%s\"",
                            i, rank_model_feature_name(m, i),
                            i < rank_features_n(*out) ? rank_features_name(*out, i) : "(none)");
            rank_features_free(*out);
            *out = NULL;
            return rc;
        }
    }
    return CW_OK;
}

static int rank_index(const char *dir, const char *queries, const rank_model *m, uint32_t depth,
                      FILE *f, const char *tag, const grades *g, FILE *lf, cw_err *err)
{
    idx_index *ix = NULL;
    idx_analyzer *an = NULL;
    rank_features *fx = NULL;
    idx_dense *dn = NULL;
    idx_hnsw_searcher *hsr = NULL;
    float qv[IDX_DENSE_MAX_DIM];
    cw_lines *lr = NULL;
    idx_hit *hits = malloc(depth * sizeof *hits);
    hit_score *hs = malloc(depth * sizeof *hs);
    uint32_t *docs = malloc(depth * sizeof *docs);
    double *x = NULL, *scores = malloc(depth * sizeof *scores);
    double *t_all = NULL, *t_score = NULL;
    size_t n_t = 0, cap_t = 0;
    int rc = CW_OK;
    if (!hits || !hs || !docs || !scores) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory");
        goto done;
    }
    rc = idx_index_open(dir, &ix, err);
    rc = rc ? rc : idx_index_analyzer(ix, &an, err);
    rc = rc ? rc : extractor_for(ix, dir, m, &fx, &dn, err);
    if (rc == CW_OK && dn && !(hsr = idx_hnsw_searcher_new(idx_dense_hnsw(dn)))) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    rc = rc ? rc : cw_lines_open(queries, &lr, err);
    if (rc != CW_OK) {
        goto done;
    }
    size_t nf = rank_features_n(fx);
    x = malloc(depth * nf * sizeof *x);
    if (!x) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory");
        goto done;
    }
    if (lf) {
        fprintf(lf, "# causeway-features:");
        for (size_t i = 0; i < nf; i++) {
            fprintf(lf, " %s", rank_features_name(fx, i));
        }
        fprintf(lf, "\n");
    }
    const char *line;
    size_t len;
    long no;
    int more;
    while ((more = cw_lines_next(lr, &line, &len, &no, err)) == 1) {
        if (cw_interrupted()) {
            rc = cw_err_set(err, CW_EINTR, "interrupted at %s:%ld", queries, no);
            goto done;
        }
        const char *tab = memchr(line, '\t', len);
        if (len == 0) {
            continue;
        }
        if (!tab) {
            rc = cw_err_set(err, CW_EPARSE, "%s:%ld: expected qid<TAB>query", queries, no);
            goto done;
        }
        int qid_len = (int)(tab - line);
        idx_query *q = NULL;
        rc = idx_query_parse(ix, an, tab + 1, len - (size_t)(tab - line) - 1, &q, err);
        if (rc != CW_OK) {
            cw_err_prefix(err, "%s:%ld: ", queries, no);
            goto done;
        }
        idx_search_opts so = idx_search_opts_default();
        so.k = depth;
        size_t n = 0;
        if (dn) { /* the server's candidates and query vector when it serves dense files */
            const char *text = tab + 1;
            size_t tlen = len - (size_t)(tab - line) - 1;
            idx_hybrid_opts ho = idx_hybrid_opts_default();
            ho.depth = CW_MAX(ho.depth, depth);
            rc = idx_encoder_encode(idx_dense_encoder(dn), text, tlen, qv, err);
            rc = rc ? rc : idx_hybrid_search(ix, dn, hsr, q, text, tlen, &so, &ho, hits, &n, err);
        } else {
            rc = idx_search(ix, q, &so, hits, &n, NULL, err);
        }
        for (size_t i = 0; i < n; i++) {
            docs[i] = hits[i].doc;
            hs[i] = (hit_score){hits[i].doc, hits[i].score};
        }
        if (rc == CW_OK && m && n > 0) {
            uint64_t t0 = cw_now_ns();
            rc = rank_features_extract_qv(fx, an, q, dn ? qv : NULL, docs, n, x, err);
            uint64_t t1 = cw_now_ns();
            rc = rc ? rc : rank_model_score(m, x, n, scores, err);
            uint64_t t2 = cw_now_ns();
            for (size_t i = 0; i < n; i++) {
                hs[i].score = scores[i];
            }
            if (n_t == cap_t) {
                cap_t = cap_t ? 2 * cap_t : 256;
                double *a = realloc(t_all, cap_t * sizeof *a);
                double *b = a ? realloc(t_score, cap_t * sizeof *b) : NULL;
                t_all = a ? a : t_all;
                t_score = b ? b : t_score;
                if (!a || !b) {
                    rc = cw_err_set(err, CW_ENOMEM, "out of memory");
                }
            }
            if (rc == CW_OK) {
                t_all[n_t] = (double)(t2 - t0) * 1e-3;
                t_score[n_t++] = (double)(t2 - t1) * 1e-3;
            }
        }
        if (rc == CW_OK && lf && n > 0) {
            if (!m) {
                rc = rank_features_extract(fx, an, q, docs, n, x, err);
            }
            for (size_t i = 0; rc == CW_OK && i < n; i++) {
                idx_doc d;
                rc = idx_doc_get(ix, docs[i], &d, err);
                if (rc != CW_OK) {
                    break;
                }
                fprintf(lf, "%g qid:%.*s", grade_of(g, line, qid_len, d.id, d.id_len), qid_len,
                        line);
                for (size_t j = 0; j < nf; j++) {
                    fprintf(lf, " %zu:%.9g", j + 1, x[i * nf + j]);
                }
                fprintf(lf, " #docid = %.*s\n", (int)d.id_len, d.id);
            }
        }
        idx_query_free(q);
        if (rc != CW_OK) {
            goto done;
        }
        /* Every candidate the model scored is ordered by the model alone (METHODS.md
         * section 8 point 3: never mix first-stage and model scores). */
        qsort(hs, n, sizeof *hs, by_hit_score);
        for (size_t i = 0; i < n; i++) {
            idx_doc d;
            rc = idx_doc_get(ix, hs[i].doc, &d, err);
            if (rc != CW_OK) {
                goto done;
            }
            fprintf(f, "%.*s Q0 %.*s %zu %.9g %s\n", qid_len, line, (int)d.id_len, d.id, i + 1,
                    hs[i].score, tag);
        }
    }
    rc = more < 0 ? more : CW_OK;
    if (rc == CW_OK && n_t > 0) {
        fprintf(stderr,
                "causeway rank: %zu queries, depth %u: median %.1f us per query for features + "
                "scoring, %.2f us for scoring alone\n",
                n_t, depth, cw_median(t_all, n_t), cw_median(t_score, n_t));
    }
done:
    cw_lines_close(lr);
    rank_features_free(fx);
    idx_hnsw_searcher_free(hsr);
    idx_dense_close(dn);
    idx_analyzer_free(an);
    idx_index_close(ix);
    free(hits);
    free(hs);
    free(docs);
    free(x);
    free(scores);
    free(t_all);
    free(t_score);
    return rc;
}

int cli_cmd_rank(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    const char *model_path = NULL, *letor = NULL, *out = NULL, *tag = "causeway";
    const char *index = NULL, *queries = NULL, *qrels = NULL, *letor_out = NULL;
    uint64_t depth = 100;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            return cli_usage_error(CMD, "unknown option or missing value: %s", a);
        }
        const char *v = argv[++i];
        if (strcmp(a, "--model") == 0) {
            model_path = v;
        } else if (strcmp(a, "--letor") == 0) {
            letor = v;
        } else if (strcmp(a, "--out") == 0) {
            out = v;
        } else if (strcmp(a, "--tag") == 0) {
            tag = v;
        } else if (strcmp(a, "--index") == 0) {
            index = v;
        } else if (strcmp(a, "--queries") == 0) {
            queries = v;
        } else if (strcmp(a, "--qrels") == 0) {
            qrels = v;
        } else if (strcmp(a, "--letor-out") == 0) {
            letor_out = v;
        } else if (strcmp(a, "--depth") == 0) {
            if (!cli_parse_u64(CMD, a, v, 1, IDX_MAX_K, &depth)) {
                return CLI_EXIT_USAGE;
            }
        } else {
            return cli_usage_error(CMD, "unknown option %s", a);
        }
    }
    cw_err err;
    if (index || queries) {
        if (!index || !queries || letor) {
            return cli_usage_error(CMD, "--index needs --queries (and no --letor)");
        }
        if (qrels && !letor_out) {
            return cli_usage_error(CMD, "--qrels labels the rows of --letor-out");
        }
        rank_model *m = NULL;
        grades g = {0};
        if (model_path && rank_model_load(model_path, &m, &err) != CW_OK) {
            return cli_fail(CMD, &err);
        }
        if (qrels && grades_read(qrels, &g, &err) != CW_OK) {
            rank_model_free(m);
            return cli_fail(CMD, &err);
        }
        char tmp[4096], ltmp[4096];
        FILE *f = out_open(out, stdout, tmp, sizeof tmp, &err);
        FILE *lf = f ? out_open(letor_out, NULL, ltmp, sizeof ltmp, &err) : NULL;
        int rc = CW_OK;
        if (!f || (letor_out && !lf)) {
            rc = err.code;
        } else {
            rc =
                rank_index(index, queries, m, (uint32_t)depth, f, tag, qrels ? &g : NULL, lf, &err);
        }
        rc = out_close(f, out, tmp, rc, &err);
        rc = out_close(lf, letor_out, ltmp, rc, &err);
        grades_fini(&g);
        rank_model_free(m);
        return rc == CW_OK ? CLI_EXIT_OK : cli_fail(CMD, &err);
    }
    if (!model_path || !letor) {
        return cli_usage_error(CMD, "--model and --letor (or --index and --queries) are required");
    }
    rank_model *m = NULL;
    rank_letor *d = NULL;
    double *scores = NULL;
    FILE *f = NULL;
    int rc = rank_model_load(model_path, &m, &err);
    const char *paths[] = {letor};
    rc = rc ? rc : rank_letor_read(paths, 1, &d, &err);
    if (rc == CW_OK && d->n_features > rank_model_n_features(m)) {
        rc = cw_err_set(&err, CW_EINVAL, "%s has %zu features, the model %zu", letor, d->n_features,
                        rank_model_n_features(m));
    }
    for (size_t i = 0; rc == CW_OK && d->feature_names && i < d->n_features; i++) {
        if (strcmp(d->feature_names[i], rank_model_feature_name(m, i)) != 0) {
            rc = cw_err_set(&err, CW_EINVAL, "%s names column %zu \"%s\", the model \"%s\"", letor,
                            i + 1, d->feature_names[i], rank_model_feature_name(m, i));
        }
    }
    if (rc != CW_OK) {
        goto fail;
    }
    /* A file whose trailing features are all zero may list fewer columns: widen. */
    size_t nf = rank_model_n_features(m);
    double *x = d->x;
    if (d->n_features < nf) {
        x = calloc(d->n_rows * nf, sizeof *x);
        if (!x) {
            rc = cw_err_set(&err, CW_ENOMEM, "out of memory");
            goto fail;
        }
        for (size_t r = 0; r < d->n_rows; r++) {
            memcpy(x + r * nf, d->x + r * d->n_features, d->n_features * sizeof *x);
        }
    }
    scores = malloc((d->n_rows ? d->n_rows : 1) * sizeof *scores);
    rc = scores ? rank_model_score(m, x, d->n_rows, scores, &err)
                : cw_err_set(&err, CW_ENOMEM, "out of memory");
    if (x != d->x) {
        free(x);
    }
    if (rc != CW_OK) {
        goto fail;
    }
    char tmp[4096];
    f = out_open(out, stdout, tmp, sizeof tmp, &err);
    if (!f) {
        rc = err.code;
        goto fail;
    }
    rc = write_run(f, d, scores, tag);
    if (rc != CW_OK) {
        cw_err_set(&err, rc, "%s: writing the run failed", out ? out : "stdout");
    }
    rc = out_close(f, out, tmp, rc, &err);
    f = NULL;
    if (rc != CW_OK) {
        goto fail;
    }
    static const size_t cuts[] = {1, 3, 5, 10};
    size_t used = 0;
    double nd[4];
    for (size_t c = 0; c < 4; c++) {
        nd[c] = rank_letor_ndcg(d, scores, cuts[c], &used);
    }
    if (used > 0) {
        fprintf(stderr,
                "causeway rank: nDCG@1 %.4f @3 %.4f @5 %.4f @10 %.4f (gain 2^y-1, %zu of %zu "
                "queries with a relevant row)\n",
                nd[0], nd[1], nd[2], nd[3], used, d->n_queries);
    }
    rc = CLI_EXIT_OK;
    goto done;
fail:
    rc = cli_fail(CMD, &err);
done:
    free(scores);
    rank_model_free(m);
    rank_letor_free(d);
    return rc;
}
