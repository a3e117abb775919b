/* Tests of ranker/metrics.c against hand-computed values: trec_eval's tie order (float
 * scores, docno descending), IDCG = 0 rules, fewer than k retrieved, both gains, depth,
 * judged queries missing from the run, and the readers' file:line errors. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ranker/ranker.h"

static char *write_temp(const char *content)
{
    char *path = strdup("/tmp/cw_metrics_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    size_t n = strlen(content);
    cr_assert(eq(sz, (size_t)write(fd, content, n), n));
    close(fd);
    return path;
}

/* Results borrow query ids from their qrels, so the qrels stay alive (and reachable, so
 * LeakSanitizer does not count them) until the test's process exits. */
static rank_qrels *kept_qrels[64];
static size_t n_kept_qrels;

/* Evaluates run text against qrels text on spec; returns the result (caller frees). */
static rank_eval_result *eval_text(const char *qrels_text, const char *run_text, const char *spec,
                                   const rank_eval_opts *o)
{
    char *qp = write_temp(qrels_text), *rp = write_temp(run_text);
    rank_qrels *q = NULL;
    rank_run *r = NULL;
    rank_eval_result *res = NULL;
    rank_metric m[RANK_MAX_METRICS];
    size_t n = 0;
    cw_err err;
    cr_assert(eq(int, rank_metrics_parse(spec, m, RANK_MAX_METRICS, &n, &err), CW_OK), "%s",
              err.msg);
    cr_assert(eq(int, rank_qrels_read(qp, &q, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(int, rank_run_read(rp, &r, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(int, rank_evaluate(q, r, m, n, o, &res, &err), CW_OK), "%s", err.msg);
    rank_run_free(r);
    cr_assert(lt(sz, n_kept_qrels, CW_ARRAY_LEN(kept_qrels)));
    kept_qrels[n_kept_qrels++] = q;
    unlink(qp);
    unlink(rp);
    free(qp);
    free(rp);
    return res;
}

static const double LOG2_3 = 1.5849625007211562;

Test(rank_metrics, dcg_by_hand_both_gains)
{
    double y[] = {3, 0, 2, 1};
    /* linear: 3/1 + 0 + 2/log2(4) + 1/log2(5) */
    double lin = 3.0 + 2.0 / 2.0 + 1.0 / log2(5.0);
    cr_expect(epsilon_eq(dbl, rank_dcg(y, 4, 0, RANK_GAIN_LINEAR), lin, 1e-12));
    /* exp: 7/1 + 0 + 3/2 + 1/log2(5) */
    double ex = 7.0 + 3.0 / 2.0 + 1.0 / log2(5.0);
    cr_expect(epsilon_eq(dbl, rank_dcg(y, 4, 0, RANK_GAIN_EXP), ex, 1e-12));
    /* cut at 2 */
    cr_expect(epsilon_eq(dbl, rank_dcg(y, 4, 2, RANK_GAIN_LINEAR), 3.0, 1e-12));
    /* negative grades give no gain */
    double neg[] = {-1, 1};
    cr_expect(epsilon_eq(dbl, rank_dcg(neg, 2, 0, RANK_GAIN_EXP), 1.0 / LOG2_3, 1e-12));
}

Test(rank_metrics, ndcg_ideal_comes_from_all_judged_grades)
{
    /* Ranked: [0, 1]; judged: {2, 1} (the grade-2 document was not retrieved). */
    double ranked[] = {0, 1};
    double judged[] = {1, 2};
    double v = -1;
    cr_assert(eq(int,
                 rank_ndcg(ranked, 2, judged, 2, 10, RANK_GAIN_LINEAR, RANK_IDCG0_DROP, &v, NULL),
                 CW_OK));
    cr_expect(epsilon_eq(dbl, v, (1.0 / LOG2_3) / (2.0 + 1.0 / LOG2_3), 1e-12));
    cr_assert(eq(int, rank_ndcg(ranked, 2, judged, 2, 10, RANK_GAIN_EXP, RANK_IDCG0_DROP, &v, NULL),
                 CW_OK));
    cr_expect(epsilon_eq(dbl, v, (1.0 / LOG2_3) / (3.0 + 1.0 / LOG2_3), 1e-12));
}

Test(rank_metrics, idcg_zero_follows_the_rule)
{
    double ranked[] = {0, 0};
    double judged[] = {0, -1};
    double v = -1;
    cr_expect(eq(
        int, rank_ndcg(ranked, 2, judged, 2, 5, RANK_GAIN_LINEAR, RANK_IDCG0_DROP, &v, NULL), 1));
    cr_expect(epsilon_eq(dbl, v, -1.0, 0.0), "DROP must not write *out");
    cr_expect(eq(int,
                 rank_ndcg(ranked, 2, judged, 2, 5, RANK_GAIN_LINEAR, RANK_IDCG0_ZERO, &v, NULL),
                 CW_OK));
    cr_expect(epsilon_eq(dbl, v, 0.0, 0.0));
    cr_expect(eq(int,
                 rank_ndcg(ranked, 2, judged, 2, 5, RANK_GAIN_LINEAR, RANK_IDCG0_ONE, &v, NULL),
                 CW_OK));
    cr_expect(epsilon_eq(dbl, v, 1.0, 0.0));
}

/* Query 1: c(3.0) then a and b tie at 2.0 -> docno descending puts b before a: c, b, a.
 * Grades a=3, b=1, c=0 (c judged non-relevant). */
static const char *QRELS = "1 0 a 3\n1 0 b 1\n1 0 c 0\n2 0 x 2\n2 0 w 1\n3 0 z 0\n";

Test(rank_metrics, ties_sort_by_docno_descending_and_rank_column_is_ignored)
{
    const char *run = "1 Q0 a 1 2.0 t\n1 Q0 c 2 3.0 t\n1 Q0 b 3 2.0 t\n";
    rank_eval_opts o = rank_eval_opts_default();
    rank_eval_result *r = eval_text(QRELS, run, "ndcg@10,map,p@2,recall@2,mrr", &o);
    /* queries 1 and 2 averaged, 3 dropped (no relevant judgment), 2 missing from the run */
    cr_assert(eq(sz, r->n_queries, 2));
    cr_expect(eq(sz, r->n_dropped, 1));
    cr_expect(eq(sz, r->n_missing, 1));
    cr_expect(eq(str, (char *)r->qid[0], "1"));
    double dcg = 1.0 / LOG2_3 + 3.0 / 2.0, idcg = 3.0 + 1.0 / LOG2_3;
    cr_expect(epsilon_eq(dbl, r->values[0], dcg / idcg, 1e-12));
    cr_expect(epsilon_eq(dbl, r->values[1], (1.0 / 2 + 2.0 / 3) / 2, 1e-12)); /* AP */
    cr_expect(epsilon_eq(dbl, r->values[2], 0.5, 1e-12));                     /* P@2 */
    cr_expect(epsilon_eq(dbl, r->values[3], 0.5, 1e-12));                     /* R@2 */
    cr_expect(epsilon_eq(dbl, r->values[4], 0.5, 1e-12));                     /* RR */
    for (size_t j = 0; j < 5; j++) {
        cr_expect(epsilon_eq(dbl, r->values[5 + j], 0.0, 0.0), "missing query scores 0");
        cr_expect(epsilon_eq(dbl, r->mean[j], r->values[j] / 2, 1e-12));
    }
    cr_expect(eq(u64, r->n_rel, 4));
    cr_expect(eq(u64, r->n_rel_ret, 2));
    rank_eval_result_free(r);
}

Test(rank_metrics, scores_equal_as_float_tie)
{
    /* 0.1 and 0.1 + 1e-12 differ as doubles but not as floats: tie -> docno descending
     * puts b (grade 1) above a (grade 3) although a has the larger double score. */
    const char *run = "1 Q0 a 1 0.100000000001 t\n1 Q0 b 2 0.1 t\n";
    rank_eval_opts o = rank_eval_opts_default();
    rank_eval_result *r = eval_text(QRELS, run, "mrr,ndcg@1", &o);
    cr_assert(eq(sz, r->n_queries, 2));
    cr_expect(epsilon_eq(dbl, r->values[0], 1.0, 0.0));
    cr_expect(epsilon_eq(dbl, r->values[1], 1.0 / 3.0, 1e-12)); /* b's grade 1 / ideal 3 */
    rank_eval_result_free(r);
}

Test(rank_metrics, fewer_than_k_retrieved_divides_precision_by_k)
{
    const char *run = "2 Q0 x 1 5 t\n";
    rank_eval_opts o = rank_eval_opts_default();
    rank_eval_result *r = eval_text(QRELS, run, "p@10,recall@10,ndcg@10,ndcg@1,map", &o);
    cr_assert(eq(sz, r->n_queries, 2));
    const double *v = r->values + 5; /* query 2 */
    cr_expect(eq(str, (char *)r->qid[1], "2"));
    cr_expect(epsilon_eq(dbl, v[0], 0.1, 1e-12));
    cr_expect(epsilon_eq(dbl, v[1], 0.5, 1e-12));
    cr_expect(epsilon_eq(dbl, v[2], 2.0 / (2.0 + 1.0 / LOG2_3), 1e-12));
    cr_expect(epsilon_eq(dbl, v[3], 1.0, 1e-12));
    cr_expect(epsilon_eq(dbl, v[4], 0.5, 1e-12)); /* w never retrieved: adds 0 to AP */
    rank_eval_result_free(r);
}

Test(rank_metrics, exponential_gain_changes_graded_ndcg)
{
    const char *run = "1 Q0 b 1 2 t\n1 Q0 a 2 1 t\n";
    rank_eval_opts o = rank_eval_opts_default();
    o.gain = RANK_GAIN_EXP;
    rank_eval_result *r = eval_text(QRELS, run, "ndcg@2", &o);
    /* exp: DCG = 1 + 7/log2(3); IDCG = 7 + 1/log2(3) */
    cr_expect(epsilon_eq(dbl, r->values[0], (1.0 + 7.0 / LOG2_3) / (7.0 + 1.0 / LOG2_3), 1e-12));
    rank_eval_result_free(r);
    o.gain = RANK_GAIN_LINEAR;
    r = eval_text(QRELS, run, "ndcg@2", &o);
    cr_expect(epsilon_eq(dbl, r->values[0], (1.0 + 3.0 / LOG2_3) / (3.0 + 1.0 / LOG2_3), 1e-12));
    rank_eval_result_free(r);
}

Test(rank_metrics, idcg0_zero_and_one_keep_the_blank_query)
{
    const char *run = "3 Q0 z 1 1 t\n1 Q0 a 1 1 t\n";
    rank_eval_opts o = rank_eval_opts_default();
    o.idcg0 = RANK_IDCG0_ZERO;
    rank_eval_result *r = eval_text(QRELS, run, "ndcg@10,map", &o);
    cr_assert(eq(sz, r->n_queries, 3));
    cr_expect(eq(str, (char *)r->qid[2], "3"));
    cr_expect(epsilon_eq(dbl, r->values[4], 0.0, 0.0));
    cr_expect(epsilon_eq(dbl, r->values[5], 0.0, 0.0));
    double q1 = 3.0 / (3.0 + 1.0 / LOG2_3);
    cr_expect(epsilon_eq(dbl, r->mean[0], q1 / 3.0, 1e-12));
    rank_eval_result_free(r);
    o.idcg0 = RANK_IDCG0_ONE;
    r = eval_text(QRELS, run, "ndcg@10,map", &o);
    cr_expect(epsilon_eq(dbl, r->values[4], 1.0, 0.0));
    cr_expect(epsilon_eq(dbl, r->values[5], 0.0, 0.0));
    cr_expect(epsilon_eq(dbl, r->mean[0], (q1 + 1.0) / 3.0, 1e-12));
    rank_eval_result_free(r);
}

Test(rank_metrics, depth_cuts_the_run_after_sorting)
{
    /* a is relevant but sorted third: invisible at depth 2. */
    const char *run = "1 Q0 a 1 1 t\n1 Q0 c 2 3 t\n1 Q0 q 3 2 t\n";
    rank_eval_opts o = rank_eval_opts_default();
    o.depth = 2;
    rank_eval_result *r = eval_text(QRELS, run, "map,mrr,recall@100", &o);
    cr_expect(epsilon_eq(dbl, r->values[0], 0.0, 0.0));
    cr_expect(epsilon_eq(dbl, r->values[1], 0.0, 0.0));
    cr_expect(epsilon_eq(dbl, r->values[2], 0.0, 0.0));
    cr_expect(eq(u64, r->n_ret, 2));
    rank_eval_result_free(r);
}

Test(rank_metrics, numeric_query_ids_sort_numerically)
{
    const char *qrels = "10 0 a 1\n9 0 a 1\nb7 0 a 1\n100 0 a 1\n";
    rank_eval_opts o = rank_eval_opts_default();
    rank_eval_result *r = eval_text(qrels, "9 Q0 a 1 1 x\n", "map", &o);
    cr_assert(eq(sz, r->n_queries, 4));
    cr_expect(eq(str, (char *)r->qid[0], "9"));
    cr_expect(eq(str, (char *)r->qid[1], "10"));
    cr_expect(eq(str, (char *)r->qid[2], "100"));
    cr_expect(eq(str, (char *)r->qid[3], "b7"));
    cr_expect(epsilon_eq(dbl, r->values[0], 1.0, 0.0));
    rank_eval_result_free(r);
}

typedef struct spec_case {
    char spec[48];
    int code;
    size_t n;
    int kind0;
    uint32_t k0;
    char name0[24];
} spec_case;

ParameterizedTestParameters(rank_metrics, metric_specs)
{
    static spec_case cases[] = {
        {"ndcg@10", CW_OK, 1, RANK_METRIC_NDCG, 10, "ndcg_cut_10"},
        {"NDCG_CUT_20,map", CW_OK, 2, RANK_METRIC_NDCG, 20, "ndcg_cut_20"},
        {"ndcg", CW_OK, 1, RANK_METRIC_NDCG, 0, "ndcg"},
        {"map,p@5", CW_OK, 2, RANK_METRIC_AP, 0, "map"},
        {"P_10", CW_OK, 1, RANK_METRIC_P, 10, "P_10"},
        {"r@100", CW_OK, 1, RANK_METRIC_RECALL, 100, "recall_100"},
        {"recall_1000", CW_OK, 1, RANK_METRIC_RECALL, 1000, "recall_1000"},
        {"mrr", CW_OK, 1, RANK_METRIC_RR, 0, "recip_rank"},
        {"mrr@10", CW_OK, 1, RANK_METRIC_RR, 10, "recip_rank_cut_10"},
        {"p@", CW_EINVAL, 0, 0, 0, ""},
        {"p@0", CW_EINVAL, 0, 0, 0, ""},
        {"p@-3", CW_EINVAL, 0, 0, 0, ""},
        {"p", CW_EINVAL, 0, 0, 0, ""},
        {"ndcg@10x", CW_EINVAL, 0, 0, 0, ""},
        {"ndcg@100001", CW_EINVAL, 0, 0, 0, ""},
        {"map,,p@5", CW_EINVAL, 0, 0, 0, ""},
        {"map,", CW_EINVAL, 0, 0, 0, ""},
        {"", CW_EINVAL, 0, 0, 0, ""},
        {"bpref", CW_EINVAL, 0, 0, 0, ""},
    };
    return cr_make_param_array(spec_case, cases, CW_ARRAY_LEN(cases));
}

ParameterizedTest(spec_case *c, rank_metrics, metric_specs)
{
    rank_metric m[4];
    size_t n = 0;
    cw_err err = {0};
    cr_assert(eq(int, rank_metrics_parse(c->spec, m, 4, &n, &err), c->code), "'%s': %s", c->spec,
              err.msg);
    if (c->code == CW_OK) {
        cr_expect(eq(sz, n, c->n));
        cr_expect(eq(int, (int)m[0].kind, c->kind0));
        cr_expect(eq(u32, m[0].k, c->k0));
        char name[32];
        rank_metric_name(&m[0], RANK_GAIN_LINEAR, name, sizeof name);
        cr_expect(eq(str, name, c->name0));
    } else {
        cr_expect(ne(sz, strlen(err.msg), 0));
    }
}

Test(rank_metrics, too_many_metrics_is_elimit_and_exp_gain_is_named)
{
    rank_metric m[2];
    size_t n = 0;
    cw_err err;
    cr_expect(eq(int, rank_metrics_parse("map,mrr,ndcg", m, 2, &n, &err), CW_ELIMIT));
    rank_metric nd = {RANK_METRIC_NDCG, 10};
    char name[32];
    rank_metric_name(&nd, RANK_GAIN_EXP, name, sizeof name);
    cr_expect(eq(str, name, "ndcg_exp_cut_10"));
}

typedef struct bad_file {
    bool is_run;
    char text[64];
    int code;
    char msg_tail[96];
} bad_file;

ParameterizedTestParameters(rank_metrics, malformed_files)
{
    static bad_file cases[] = {
        {false, "1 0 a\n", CW_EPARSE, ":1: expected 'qid iter docno grade'"},
        {false, "1 0 a 1\n\n1 0 a 1 x\n", CW_EPARSE, ":3: expected 'qid iter docno grade'"},
        {false, "1 0 a 1.5\n", CW_EPARSE, ":1: bad grade '1.5' (an integer expected)"},
        {false, "1 0 a 1\n1 0 a 2\n", CW_EPARSE,
         ":2: duplicate document 'a' for query '1' (first at line 1)"},
        {true, "1 Q0 a 1\n", CW_EPARSE, ":1: expected 'qid Q0 docno rank score [tag]'"},
        {true, "1 Q0 a 1 nan t\n", CW_EPARSE, ":1: bad score 'nan'"},
        {true, "1 Q0 a 1 1e300 t\n", CW_EPARSE, ":1: bad score '1e300'"},
        {true, "1 Q0 a 1 1x t\n", CW_EPARSE, ":1: bad score '1x'"},
        {true, "1 Q0 a 1 1 t\n1 Q0 b 2 1 t\n1 Q0 a 3 0 t\n", CW_EPARSE,
         ":3: duplicate document 'a' for query '1' (first at line 1)"},
    };
    return cr_make_param_array(bad_file, cases, CW_ARRAY_LEN(cases));
}

ParameterizedTest(bad_file *c, rank_metrics, malformed_files)
{
    char *path = write_temp(c->text);
    cw_err err = {0};
    int rc;
    if (c->is_run) {
        rank_run *r = NULL;
        rc = rank_run_read(path, &r, &err);
        cr_expect(eq(ptr, r, NULL));
    } else {
        rank_qrels *q = NULL;
        rc = rank_qrels_read(path, &q, &err);
        cr_expect(eq(ptr, q, NULL));
    }
    cr_expect(eq(int, rc, c->code), "%s", err.msg);
    char want[512];
    snprintf(want, sizeof want, "%s%s", path, c->msg_tail);
    cr_expect(eq(str, err.msg, want));
    unlink(path);
    free(path);
}

Test(rank_metrics, long_id_is_elimit_and_missing_file_is_enotfound)
{
    char text[600];
    memset(text, 'x', 300);
    strcpy(text + 300, " 0 a 1\n");
    char *path = write_temp(text);
    rank_qrels *q = NULL;
    cw_err err;
    cr_expect(eq(int, rank_qrels_read(path, &q, &err), CW_ELIMIT));
    cr_expect(eq(int, rank_qrels_read("/nonexistent/qrels", &q, &err), CW_ENOTFOUND));
    unlink(path);
    free(path);
}

/* QA regression: an empty qrels or run file used to pass NULL to qsort (UBSan: "null
 * pointer passed as argument 1"); both read as zero queries and evaluate to zero. */
Test(rank_metrics, empty_qrels_and_run_files_read_as_zero_queries)
{
    rank_eval_opts o = rank_eval_opts_default();
    rank_eval_result *res = eval_text("", "", "ndcg@10,map", &o);
    cr_expect(eq(sz, res->n_queries, 0));
    cr_expect(eq(dbl, res->mean[0], 0.0));
    rank_eval_result_free(res);
}
