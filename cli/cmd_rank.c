/* cli/cmd_rank.c: `causeway rank`, scoring with a trained model: a LETOR file (TREC run
 * of its rows, nDCG on its labels) or an index and a query file (BM25 candidates
 * reranked with the features the server uses). Output: a TREC run for `causeway eval`. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "ranker/ranker.h"

#define CMD "rank"

static void usage(FILE *f)
{
    fprintf(f, "usage: causeway rank --model MODEL.json --letor FILE [--out RUN] [--tag NAME]\n\n"
               "Scores every row of a LETOR file with the model and writes a TREC run\n"
               "(\"qid Q0 docid rank score tag\", docid = the row's \"#docid = X\" comment or\n"
               "row-N). With graded labels in the file, prints nDCG@1,3,5,10 (gain 2^y-1,\n"
               "queries without a relevant row dropped) to stderr.\n\n"
               "  --model FILE  a model written by causeway train\n"
               "  --letor FILE  query-document rows with the model's features, in order\n"
               "  --out FILE    the run (default stdout)\n"
               "  --tag NAME    run tag (default causeway)\n");
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

int cli_cmd_rank(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    const char *model_path = NULL, *letor = NULL, *out = NULL, *tag = "causeway";
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
        } else {
            return cli_usage_error(CMD, "unknown option %s", a);
        }
    }
    if (!model_path || !letor) {
        return cli_usage_error(CMD, "--model and --letor are required");
    }
    cw_err err;
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
    f = out ? fopen(out, "w") : stdout;
    if (!f) {
        rc = cw_err_set(&err, CW_EIO, "%s: cannot create", out);
        goto fail;
    }
    rc = write_run(f, d, scores, tag);
    if (out && fclose(f) != 0) {
        rc = CW_EIO;
    }
    f = NULL;
    if (rc != CW_OK) {
        cw_err_set(&err, rc, "%s: writing the run failed", out ? out : "stdout");
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
