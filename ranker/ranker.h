/* ranker/ranker.h: ranking metrics (trec_eval conventions), LETOR data, features
 * shared by training and serving, ranking models and (unbiased) learning-to-rank.
 * Data flow: logged impressions + propensities (causal/) -> training -> model.json -> server/. */
#ifndef CAUSEWAY_RANKER_RANKER_H
#define CAUSEWAY_RANKER_RANKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cw.h"
#include "index/index.h"

/* ==== metrics (ranker/metrics.c) ========================================== */

/* Evaluation follows trec_eval 9.x run with -c (METHODS.md section 1), pinned here:
 * - Order: each query's run is re-sorted by score descending, scores held as C float
 *   (doubles that round to the same float tie), ties by document id in DESCENDING strcmp
 *   order (trec_eval's comp_sim_docno); the rank column is ignored. Depth: the first
 *   opts.depth (default 1000) documents after sorting.
 * - Grades: relevant = grade >= 1; unjudged = 0; negative grades count as 0 in gains.
 * - nDCG@k (Jarvelin & Kekalainen, TOIS 2002): DCG@k = sum_{i<=min(k,n)} g(y_i)/log2(i+1),
 *   IDCG@k = the same over ALL of the query's judged grades sorted descending, cut at k.
 *   Linear gain g(y) = y (trec_eval, default) or exponential g(y) = 2^y - 1 (Burges et al.,
 *   ICML 2005). "ndcg" without a cutoff uses every retrieved document within depth.
 * - AP = (1/R) sum over relevant d_i at rank i <= depth of P@i, R = relevant judgments of
 *   the query (unretrieved ones add 0); P@k = relevant in top k / k (k even if fewer were
 *   retrieved); R@k = relevant in top k / R; RR = 1 / rank of the first relevant within
 *   depth (and within k for mrr@k), 0 if none.
 * - Averages run over the queries of the qrels: a judged query missing from the run scores 0
 *   on every metric; run queries without qrels are ignored. A query whose qrels hold no
 *   relevant document (IDCG = 0) follows opts.idcg0: DROP (default) leaves it out of every
 *   mean, ZERO scores every metric 0, ONE scores nDCG 1 and the other metrics 0. */

#define RANK_EVAL_DEPTH 1000u            /* trec_eval's default depth */
#define RANK_MAX_EVAL_DEPTH 1000000u     /* --depth limit */
#define RANK_MAX_METRICS 32u             /* metrics per evaluation */
#define RANK_MAX_CUTOFF 100000u          /* k in ndcg@k, p@k, recall@k, mrr@k */
#define RANK_MAX_EVAL_ID_BYTES 256u      /* qid or docno in a run or qrels line */
#define RANK_MAX_EVAL_LINES 200000000ull /* lines of one run or qrels file */

typedef enum rank_gain {
    RANK_GAIN_LINEAR = 0, /* g(y) = y */
    RANK_GAIN_EXP = 1,    /* g(y) = 2^y - 1 */
} rank_gain;

typedef enum rank_idcg0 {
    RANK_IDCG0_DROP = 0, /* leave the query out of the means */
    RANK_IDCG0_ZERO = 1, /* score it 0 */
    RANK_IDCG0_ONE = 2,  /* nDCG 1 (LightGBM/XGBoost), other metrics 0 */
} rank_idcg0;

/* "linear"/"exp" and "drop"/"zero"/"one"; the parsers return CW_EINVAL for anything else. */
const char *rank_gain_name(rank_gain g);
const char *rank_idcg0_name(rank_idcg0 r);
int rank_gain_parse(const char *s, rank_gain *out, cw_err *err) CW_MUST_CHECK;
int rank_idcg0_parse(const char *s, rank_idcg0 *out, cw_err *err) CW_MUST_CHECK;

/* Gain of one grade: negative grades give 0. */
double rank_gain_of(double grade, rank_gain g);
/* DCG of the first min(k, n) grades in ranked order (k = 0: all n). O(min(k, n)). */
double rank_dcg(const double *grades, size_t n, uint32_t k, rank_gain g);

/* nDCG@k (k = 0: no cutoff) of a ranked list of grades, the ideal taken from `judged`
 * (any order; the candidate list itself for LETOR data, all judgments for TREC data).
 * Returns CW_OK with *out set, 1 when IDCG = 0 and rule == RANK_IDCG0_DROP (*out not
 * written), CW_ENOMEM (sorting a copy of judged). */
int rank_ndcg(const double *ranked, size_t n, const double *judged, size_t n_judged, uint32_t k,
              rank_gain g, rank_idcg0 rule, double *out, cw_err *err) CW_MUST_CHECK;

typedef enum rank_metric_kind {
    RANK_METRIC_NDCG = 0,   /* "ndcg@k" -> ndcg_cut_k; "ndcg" -> ndcg */
    RANK_METRIC_AP = 1,     /* "map" -> map */
    RANK_METRIC_P = 2,      /* "p@k" -> P_k (k required) */
    RANK_METRIC_RECALL = 3, /* "recall@k" or "r@k" -> recall_k (k required) */
    RANK_METRIC_RR = 4,     /* "mrr" -> recip_rank; "mrr@k" -> recip_rank_cut_k */
} rank_metric_kind;

typedef struct rank_metric {
    rank_metric_kind kind;
    uint32_t k; /* cutoff, 0 = none (depth) */
} rank_metric;

/* Parses a comma-separated list such as "ndcg@10,map,p@10,recall@100,mrr" (case-
 * insensitive; trec_eval names like ndcg_cut_10, P_10, recall_100, recip_rank also accepted)
 * into out[0..max). Errors: CW_EINVAL naming the bad item, CW_ELIMIT (more than max,
 * k > RANK_MAX_CUTOFF). */
int rank_metrics_parse(const char *spec, rank_metric *out, size_t max, size_t *n_out,
                       cw_err *err) CW_MUST_CHECK;
/* The trec_eval name of m ("ndcg_cut_10", "map", "P_10", "recall_100", "recip_rank");
 * nDCG with exponential gain gets "ndcg_exp..." so the gain is printed with the figure. */
void rank_metric_name(const rank_metric *m, rank_gain g, char *buf, size_t n);

/* TREC qrels ("qid iter docno grade", whitespace separated, grade an integer) and runs
 * ("qid Q0 docno rank score [tag]"), read fully into memory. Immutable after reading.
 * Errors: CW_ENOTFOUND, CW_EIO, CW_EPARSE ("path:line: reason": wrong field count, bad
 * grade or score, non-finite score, duplicate (qid, docno)), CW_ELIMIT (id longer than
 * RANK_MAX_EVAL_ID_BYTES, more than RANK_MAX_EVAL_LINES lines), CW_ENOMEM.
 * Free with rank_qrels_free / rank_run_free (NULL is a no-op). */
typedef struct rank_qrels rank_qrels;
typedef struct rank_run rank_run;
int rank_qrels_read(const char *path, rank_qrels **out, cw_err *err) CW_MUST_CHECK;
void rank_qrels_free(rank_qrels *q);
int rank_run_read(const char *path, rank_run **out, cw_err *err) CW_MUST_CHECK;
void rank_run_free(rank_run *r);
/* Distinct queries in the file. */
size_t rank_qrels_n_queries(const rank_qrels *q);
size_t rank_run_n_queries(const rank_run *r);

typedef struct rank_eval_opts {
    rank_gain gain;   /* default linear */
    rank_idcg0 idcg0; /* default drop */
    uint32_t depth;   /* default RANK_EVAL_DEPTH */
} rank_eval_opts;
rank_eval_opts rank_eval_opts_default(void);

/* Per-query values and means of an evaluation. */
typedef struct rank_eval_result {
    size_t n_metrics;
    rank_metric metrics[RANK_MAX_METRICS];
    size_t n_queries; /* queries averaged */
    const char **qid; /* n_queries ids (borrowed from the qrels: valid until
                       * rank_qrels_free), numeric ids first in numeric order */
    double *values;   /* n_queries * n_metrics, row per query */
    double mean[RANK_MAX_METRICS];
    size_t n_dropped;   /* qrels queries without a relevant document left out (DROP) */
    size_t n_missing;   /* averaged queries absent from the run (scored 0) */
    uint64_t n_ret;     /* retrieved documents within depth, over averaged queries */
    uint64_t n_rel;     /* relevant judgments of averaged queries */
    uint64_t n_rel_ret; /* relevant documents retrieved within depth */
} rank_eval_result;

/* Evaluates run against qrels on metrics[0..n_metrics) (conventions above).
 * Errors: CW_EINVAL (no metrics, more than RANK_MAX_METRICS, depth 0), CW_ENOMEM.
 * *out is new; free with rank_eval_result_free. O(total run lines * log). */
int rank_evaluate(const rank_qrels *qrels, const rank_run *run, const rank_metric *metrics,
                  size_t n_metrics, const rank_eval_opts *opts, rank_eval_result **out,
                  cw_err *err) CW_MUST_CHECK;
void rank_eval_result_free(rank_eval_result *r);

/* ==== LETOR data (ranker/letor.c) ========================================= */

/* Limits on LETOR input (SVMlight format: `label qid:Q 1:v ... #comment`). */
#define RANK_MAX_FEATURES 1024u       /* highest feature index accepted */
#define RANK_MAX_QUERY_DOCS 100000u   /* rows of one query */
#define RANK_MAX_LETOR_ROWS 50000000u /* rows of one data set */

/* A LETOR data set in memory: rows grouped by query, in file order. Queries must be
 * contiguous in the input (as in every LETOR/MSLR file). Not thread-safe to modify;
 * read-only use from several threads is safe. */
typedef struct rank_letor {
    size_t n_rows;        /* query-document pairs */
    size_t n_features;    /* columns of x: the highest feature index seen (1-based in the file) */
    size_t n_queries;     /* groups */
    double *x;            /* n_rows * n_features, row-major; absent features are 0 */
    double *y;            /* n_rows labels (graded relevance, or clicks) */
    size_t *q_begin;      /* n_queries + 1: rows of query q are [q_begin[q], q_begin[q+1]) */
    char **qid;           /* n_queries query ids as written after "qid:" */
    char **doc_id;        /* n_rows: the "docid = X" of the comment, or NULL when absent */
    char **feature_names; /* n_features names from a "# causeway-features: a b ..." line
                             (written by `causeway rank --letor-out`), or NULL */
} rank_letor;

/* Reads and concatenates n_paths LETOR files (a fold's training set is S1+S2+S3).
 * A query id may not appear in two separate runs of rows (also across files). A comment
 * line "# causeway-features: NAME ..." names the columns (all files must agree).
 * Errors: CW_ENOTFOUND, CW_EIO, CW_EPARSE ("path:line: reason": bad label, missing qid,
 * bad or non-increasing feature index, bad value, query not contiguous, a feature index
 * beyond the named columns, different names in two files), CW_ELIMIT
 * (feature index over RANK_MAX_FEATURES, too many rows), CW_ENOMEM.
 * On success *out is new; free with rank_letor_free. */
int rank_letor_read(const char *const *paths, size_t n_paths, rank_letor **out,
                    cw_err *err) CW_MUST_CHECK;
/* Frees d (NULL is a no-op). */
void rank_letor_free(rank_letor *d);
/* A new data set holding the queries listed in `queries` (indices into d, in that order),
 * with rows, labels and ids copied. Errors: CW_EINVAL (index out of range), CW_ENOMEM. */
int rank_letor_subset(const rank_letor *d, const size_t *queries, size_t n, rank_letor **out,
                      cw_err *err) CW_MUST_CHECK;

/* ==== features (ranker/features.c) ======================================== */

/* The one (query, document) feature extractor of training and serving: the server logs
 * the vector it ranked with, training reads that vector back from the log.
 * Feature set RANK_FEATURE_SET, in this order (names are what models store):
 *   bm25_title, bm25_text, bm25_flat   BM25 per field (index/, METHODS.md section 2)
 *   coverage          distinct query terms found in the document / distinct query terms
 *   idf_sum_matched   sum of the Lucene idf of the distinct matched terms
 *   idf_max_matched   largest idf among them (0 if none)
 *   idf_mean_query    mean idf of the distinct query terms (a query feature)
 *   query_terms       distinct analysed query terms
 *   log_len_title, log_len_text   log(1 + analysed length)
 *   proximity         m / w for the minimal window of w tokens holding all m >= 2 matched
 *                     distinct terms (1 = adjacent), 0 when fewer than 2 terms match
 *   static:NAME       a numeric stored field of the document (caller's list; 0 if absent
 *                     or not a number)
 * Coverage and proximity analyse at most RANK_FEATURE_MAX_TEXT_BYTES of title + text. */
#define RANK_FEATURE_SET "cw-text-v1"
#define RANK_TEXT_FEATURES 11u /* features before the static ones */
#define RANK_MAX_STATIC_FEATURES 32u
#define RANK_FEATURE_MAX_TEXT_BYTES (64u << 10)

/* An extractor bound to an open index; immutable, thread-safe (each thread brings its own
 * analyzer). Keeps a reference to ix: close the index after rank_features_free. */
typedef struct rank_features rank_features;

/* static_fields: n_static names of stored fields read as numbers (each 1..
 * RANK_MAX_FEATURE_NAME - 8 bytes). bm25 NULL = IDX_BM25_DEFAULT.
 * forward_max_tokens > 0 analyses every document once, now, and keeps 32-bit hashes of
 * its tokens (4 bytes per token, documents in docid order until the budget is spent):
 * coverage and proximity then cost a scan of integers instead of re-analysing stored
 * text per request. When every document fits, it also counts per-field document
 * frequencies (16 bytes per distinct term, keyed by 64-bit hash) and the per-field BM25
 * comes from the same scan instead of index/'s posting lists (idx_score_fields), equal
 * to the last bit (a document whose stored token counts differ from the index's field
 * lengths, e.g. cut at RANK_FEATURE_MAX_TEXT_BYTES, uses the posting lists).
 * Documents beyond the budget are analysed per call, with identical
 * results (a 32-bit hash collision between a query term and another token of the same
 * document is the only difference, probability ~ tokens / 2^32).
 * Errors: CW_EINVAL (too many or bad names), CW_EPARSE (bad UTF-8 in a stored document),
 * CW_ENOMEM. O(corpus) with a forward store. Free with rank_features_free. */
int rank_features_new(const idx_index *ix, const char *const *static_fields, size_t n_static,
                      const idx_bm25_params *bm25, size_t forward_max_tokens, rank_features **out,
                      cw_err *err) CW_MUST_CHECK;
/* rank_features_new whose forward store (text_spans true, forward_max_tokens > 0) also
 * keeps each stored token's byte range (8 more bytes per token), so that
 * rank_features_extract_tap hands a stored document's text to a tap's text_span without
 * analysing it (the server's snippets without a model). Errors: those of
 * rank_features_new. */
int rank_features_new_spans(const idx_index *ix, const char *const *static_fields, size_t n_static,
                            const idx_bm25_params *bm25, size_t forward_max_tokens, bool text_spans,
                            rank_features **out, cw_err *err) CW_MUST_CHECK;
void rank_features_free(rank_features *fx);
size_t rank_features_n(const rank_features *fx);
/* Name of feature i (borrowed, valid while fx lives). */
const char *rank_features_name(const rank_features *fx, size_t i);
/* Names as an array for rank_model / causal_impression (borrowed, n = rank_features_n). */
const char *const *rank_features_names(const rank_features *fx);

/* Writes n rows of rank_features_n values for docids (row-major) into out.
 * a: an analyzer with the index's settings (idx_index_analyzer), used by this thread only.
 * Errors: CW_ENOTFOUND (docid), CW_ECORRUPT, CW_EPARSE (invalid UTF-8 in a stored
 * document), CW_ENOMEM. O(n * (query terms + analysed text)). */
int rank_features_extract(const rank_features *fx, idx_analyzer *a, const idx_query *q,
                          const uint32_t *docids, size_t n, double *out, cw_err *err) CW_MUST_CHECK;

/* Dense similarity (issue 6): the feature "dense_cos" = cosine of the query's and the
 * document's vectors of the index's dense encoder (idx_dense_cosine), appended after the
 * static features. Layouts: text features + dense_cos is feature set
 * RANK_FEATURE_SET_DENSE; with static features too, the server names the set by the hash
 * of its names like any other layout. */
#define RANK_FEATURE_SET_DENSE "cw-text-dense-v1"
/* Adds dense_cos to fx (once, before any extraction; fx keeps a reference to dn: close
 * it after rank_features_free). Errors: CW_EINVAL (already added), CW_ENOMEM. */
int rank_features_add_dense(rank_features *fx, const idx_dense *dn, cw_err *err) CW_MUST_CHECK;
/* rank_features_extract with the query's unit vector qvec (idx_encoder_encode of the
 * query text with idx_dense_encoder(dn)); qvec may be NULL only when fx has no dense_cos
 * (rank_features_extract passes NULL). Errors: those of rank_features_extract; CW_EINVAL
 * (dense_cos without qvec). */
int rank_features_extract_qv(const rank_features *fx, idx_analyzer *a, const idx_query *q,
                             const float *qvec, const uint32_t *docids, size_t n, double *out,
                             cw_err *err) CW_MUST_CHECK;
/* rank_features_extract_qv that also hands the server the tokens it analyses, so a shown
 * document's text is analysed once per request (features and snippet): for each row r
 * whose text is analysed per call (not from the forward store) and WHOLE (not cut at
 * RANK_FEATURE_MAX_TEXT_BYTES), text_begin(ctx, r) precedes the text's tokens, each passed
 * to text_token(ctx, tok), and text_done(ctx, r) follows them. Title tokens are not
 * passed. A callback's non-CW_OK return stops extraction with that code.
 * text_span (may be NULL): for a row from a forward store with text spans
 * (rank_features_new_spans) whose text was stored whole, text_begin, then text_span per
 * stored text token in order (its byte range in the text and whether a query term has
 * its 32-bit hash), then text_done: the same tokens without analysing the text. */
typedef struct rank_token_tap {
    void (*text_begin)(void *ctx, size_t row);
    int (*text_token)(void *ctx, const idx_token *tok);
    void (*text_done)(void *ctx, size_t row);
    void *ctx;
    int (*text_span)(void *ctx, size_t byte_begin, size_t byte_end, bool match);
} rank_token_tap;
int rank_features_extract_tap(const rank_features *fx, idx_analyzer *a, const idx_query *q,
                              const float *qvec, const uint32_t *docids, size_t n, double *out,
                              const rank_token_tap *tap, cw_err *err) CW_MUST_CHECK;

/* ==== models and training (ranker/model.c, ranker/train.c) ================ */

/* Serving API (server/ uses only these five calls):
 *   rank_model_load(path, &m, &err)          once per (re)load; m is immutable
 *   rank_model_n_features / _feature_name    to check the model against the extractor
 *   rank_model_score(m, x, n, scores, &err)  any number of threads at once
 *   rank_model_explain(m, x_row, contrib, &bias, &err)  for explain=true
 *   rank_model_free(m)                       after the last scorer let go of it
 * The model applies its stored normalization itself: callers pass raw feature vectors
 * in the order of rank_model_feature_name(). */

#define RANK_MODEL_FORMAT "causeway-model"
#define RANK_MODEL_VERSION 1              /* "version" of the JSON format written */
#define RANK_MAX_MODEL_BYTES (256u << 20) /* model file */
#define RANK_MAX_HIDDEN 4096u             /* MLP hidden units */
#define RANK_MAX_FEATURE_NAME 64u         /* bytes of one feature name */
#define RANK_MAX_TREE_NODES 10000000u     /* nodes of an imported tree ensemble */

typedef enum rank_model_kind {
    RANK_MODEL_LINEAR = 0, /* s = b + w . z */
    RANK_MODEL_MLP = 1,    /* s = b2 + v . relu(W z + b1), one hidden layer */
    RANK_MODEL_TREES = 2,  /* s = base + sum of regression trees on raw x (imported only) */
} rank_model_kind;

/* A scoring model over standardized features z_i = (x_i - mean_i) / scale_i.
 * Immutable once loaded or trained: scoring and explaining are thread-safe. Training
 * (ranker/train.c) writes its parameters through ranker_int.h. */
typedef struct rank_model rank_model;

/* A new model with zero weights (linear) or small random weights drawn from rng
 * (MLP, He initialisation; rng may be NULL for linear), mean 0 and scale 1.
 * names: n_features feature names (copied), each < RANK_MAX_FEATURE_NAME bytes.
 * Errors: CW_EINVAL (n_features 0 or > RANK_MAX_FEATURES, n_hidden 0 or > RANK_MAX_HIDDEN
 * for MLP, bad name), CW_ENOMEM. Free with rank_model_free. */
int rank_model_new(rank_model_kind kind, size_t n_features, const char *const *names,
                   size_t n_hidden, cw_rng *rng, rank_model **out, cw_err *err) CW_MUST_CHECK;
void rank_model_free(rank_model *m);

rank_model_kind rank_model_get_kind(const rank_model *m);
size_t rank_model_n_features(const rank_model *m);
/* Borrowed, valid while m lives. i < rank_model_n_features(m). */
const char *rank_model_feature_name(const rank_model *m, size_t i);

/* Scores n documents: x holds n raw feature vectors, row-major (n * n_features).
 * scores gets n values (higher = better). Thread-safe. Linear: O(n f); MLP: one CBLAS
 * dgemm, O(n f h). Errors: CW_ENOMEM (MLP scratch for n rows). */
int rank_model_score(const rank_model *m, const double *x, size_t n, double *scores,
                     cw_err *err) CW_MUST_CHECK;

/* Per-feature contributions of one document: score = *bias + sum_i contrib[i].
 * Linear: contrib_i = w_i z_i exactly, *bias = b. MLP: Integrated Gradients from the
 * all-mean input (Sundararajan et al., ICML 2017, 32 steps, midpoint rule), *bias =
 * score of the mean input; the sum matches the score up to the quadrature error.
 * contrib holds n_features. Thread-safe. Errors: CW_ENOMEM. */
int rank_model_explain(const rank_model *m, const double *x, double *contrib, double *bias,
                       cw_err *err) CW_MUST_CHECK;

/* Reads a model file written by rank_model_save, or imports a tree ensemble:
 *  - an XGBoost JSON dump (`Booster.dump_model(f, dump_format="json")`: an array of trees
 *    with nodeid/split/split_condition/yes/no/missing/children/leaf; a split goes to "yes"
 *    when x < split_condition). Splits named "fN" read column N and the features are
 *    named f0..f(max N); other names become the feature list in order of first use.
 *    The dump has no base_score: it is taken as 0 (a constant: rankings are unchanged).
 *  - a LightGBM JSON dump (`Booster.dump_model()`: "feature_names" and "tree_info" with
 *    split_feature/threshold/decision_type "<="/default_left/left_child/right_child/
 *    leaf_value; categorical splits are refused).
 * Trees score raw features; a missing value (NaN) follows the default branch. Explaining
 * a tree model attributes, along each decision path, the change of the expected value
 * (LightGBM's internal_value; XGBoost: cover-weighted mean of the children, plain mean
 * without "cover") to the split feature (Saabas' method); *bias = sum of root values.
 * A tree model saves as kind "trees" and loads back exactly.
 * Checks format, version, kind, sizes, finiteness of every number, child indices in range
 * and acyclic. Errors: CW_ENOTFOUND, CW_EIO, CW_ELIMIT (over RANK_MAX_MODEL_BYTES or
 * RANK_MAX_TREE_NODES), CW_EPARSE ("path:line:col: reason" for bad JSON, "path: reason"
 * for a bad or missing member), CW_ENOMEM. Free with rank_model_free. */
int rank_model_load(const char *path, rank_model **out, cw_err *err) CW_MUST_CHECK;
/* The same from a string; `origin` names it in messages. */
int rank_model_from_json(const char *text, size_t len, const char *origin, rank_model **out,
                         cw_err *err) CW_MUST_CHECK;
/* Serialises m as versioned JSON: {"format","version","kind","features":[names],
 * "normalization":{"mean":[],"scale":[]},"params":{...},"training":{...}}; doubles are
 * written with 17 significant digits so a round trip is exact. *out is new (free()).
 * Errors: CW_ENOMEM. */
int rank_model_to_json(const rank_model *m, char **out, cw_err *err) CW_MUST_CHECK;
/* rank_model_to_json written atomically to path. Errors: CW_ENOMEM, CW_EIO. */
int rank_model_save(const rank_model *m, const char *path, cw_err *err) CW_MUST_CHECK;

/* ---- training data: click lists (ranker/clicks.c) ------------------------ */

#define RANK_MAX_RANK 64u     /* deepest display rank used by training */
#define RANK_MAX_LIST 100000u /* slots of one list */

/* Training data for every objective: lists of slots (a feature row of x, the 1-based rank
 * it was shown at or 0 = a candidate that was not shown, and the clicks it got), each list
 * standing for n_sessions sessions that saw exactly this ranking of this query. Adding a
 * session whose (query, ranking) equals an earlier list merges into it (clicks and
 * sessions add up): for PBM every objective below is a sum over sessions of a function of
 * the ranking and clicks, so merging is exact and training costs O(distinct rankings).
 * x is borrowed and must outlive the object. Not thread-safe. */
typedef struct rank_clicks rank_clicks;

/* Errors: CW_EINVAL (n_features 0), CW_ENOMEM. Free with rank_clicks_free. */
int rank_clicks_new(const double *x, size_t n_rows, size_t n_features, rank_clicks **out,
                    cw_err *err) CW_MUST_CHECK;
void rank_clicks_free(rank_clicks *c);
/* Adds n_sessions sessions of `query` that showed rows[i] at ranks[i] (0 = candidate not
 * shown) with clicks[i] clicks in total over those sessions (0 <= clicks <= n_sessions;
 * only rank_clicks_from_labels gives clicks to unshown slots).
 * merge=false always starts a new list (per-session training, benchmarks).
 * Errors: CW_EINVAL (row out of range, rank > RANK_MAX_RANK, repeated rank or row,
 * clicks out of range, n 0 or > RANK_MAX_LIST, n_sessions <= 0), CW_ENOMEM. */
int rank_clicks_add(rank_clicks *c, uint32_t query, const size_t *rows, const uint32_t *ranks,
                    const double *clicks, size_t n, double n_sessions, bool merge,
                    cw_err *err) CW_MUST_CHECK;
/* Policy-aware exposure (Oosterhuis & de Rijke SIGIR 2020, METHODS.md section 5):
 * rho[r] = sum_k pi_b(row r at rank k | q) theta_k / theta_1 for each of the n_rows rows,
 * the same theta ratios as rank_train_opts.theta; NAN = unknown (that row's clicks keep
 * theta of the rank they were shown at). IPS then weights a click on row r by
 * 1/max(rho[r], clip) (listwise) instead of theta_1/theta_k. rho is borrowed and must
 * outlive c. Errors: CW_EINVAL (an entry <= 0, > 1e6 or infinite, naming the row). */
int rank_clicks_set_rho(rank_clicks *c, const double *rho, cw_err *err) CW_MUST_CHECK;
size_t rank_clicks_n_lists(const rank_clicks *c);
double rank_clicks_n_sessions(const rank_clicks *c);
/* Slots over all lists, each counted once per session it stands for (session-doc pairs). */
double rank_clicks_n_pairs(const rank_clicks *c);
/* Full-information training data from labels: one list per query of d, every row a
 * candidate (rank 0), "clicks" = (2^y - 1)/(2^ymax - 1) (exponential gain scaled to [0,1],
 * ymax = the largest label of d), one session. x = d->x is borrowed.
 * Errors: CW_EINVAL (negative label), CW_ENOMEM. */
int rank_clicks_from_labels(const rank_letor *d, rank_clicks **out, cw_err *err) CW_MUST_CHECK;

/* ---- training (ranker/train.c) ------------------------------------------- */

typedef enum rank_objective {
    RANK_OBJ_NAIVE = 0,      /* clicks as labels, no correction */
    RANK_OBJ_IPS = 1,        /* inverse propensity scoring with theta (METHODS.md section 5) */
    RANK_OBJ_DLA = 2,        /* dual learning algorithm, propensities learnt (Ai et al. 2018) */
    RANK_OBJ_DR = 3,         /* doubly robust (Oosterhuis 2022), listwise on DR targets */
    RANK_OBJ_SUPERVISED = 4, /* labels (rank_clicks_from_labels): the skyline */
} rank_objective;

typedef enum rank_loss {
    RANK_LOSS_LISTWISE = 0,  /* softmax cross-entropy over the shown list */
    RANK_LOSS_PAIRWISE = 1,  /* propensity SVM-Rank hinge (Joachims et al. 2017) */
    RANK_LOSS_POINTWISE = 2, /* logistic (Saito et al. 2020) */
} rank_loss;

/* Names as used on the command line: "naive" "ips" "dla" "dr" "supervised";
 * "listwise" "pairwise" "pointwise". Parse errors: CW_EINVAL listing the choices. */
const char *rank_objective_name(rank_objective o);
int rank_objective_parse(const char *s, rank_objective *out, cw_err *err) CW_MUST_CHECK;
const char *rank_loss_name(rank_loss l);
int rank_loss_parse(const char *s, rank_loss *out, cw_err *err) CW_MUST_CHECK;

typedef struct rank_train_opts {
    rank_objective objective;
    rank_loss loss; /* DLA and DR are listwise only */
    rank_model_kind kind;
    size_t n_hidden;             /* MLP width (default 32) */
    size_t n_theta;              /* propensities given (IPS, DR); 0 = all 1 */
    double theta[RANK_MAX_RANK]; /* theta_k examination propensity of rank k = 1..n_theta;
                                    deeper ranks use theta[n_theta-1]; only ratios matter
                                    except for the pointwise loss */
    double clip;                 /* tau: weights use max(theta_k, tau) (DLA: weight <= 1/tau);
                                    0 = no clipping */
    double lr;                   /* Adam step (default 0.003) */
    double dla_lr;               /* Adam step of DLA's position logits (default 0.03): 10 shared
                                    parameters that start uniform (= naive weights) must
                                    converge before early stopping picks an epoch */
    double l2;                   /* L2 penalty on weights per session (default 1e-4) */
    uint32_t max_epochs;         /* default 200 */
    uint32_t patience;           /* epochs without validation gain before stopping (40) */
    uint32_t batch_lists;        /* lists per Adam step (default 16) */
    uint32_t valid_k;            /* early stopping on validation nDCG@valid_k (default 10) */
    double avg_epochs;           /* iterate averaging (Polyak & Juditsky 1992): > 0 = validate,
                                    select and return an exponential moving average of the
                                    parameters over the Adam steps, time constant avg_epochs
                                    epochs (bias-corrected); 0 = the raw iterates (default) */
    uint64_t seed;               /* list order, MLP initialisation */
    cw_progress progress;        /* stage "train": epoch / max_epochs */
    /* Optional observer called after every epoch with the current parameters (refreshed,
       scorable with rank_model_score) and that epoch's validation nDCG@valid_k (NAN without
       validation data). For diagnostics (learning curves); it must not keep m or alter
       training. NULL = none. */
    void (*on_epoch)(void *ctx, uint32_t epoch, const rank_model *m, double valid);
    void *on_epoch_ctx;
} rank_train_opts;

rank_train_opts rank_train_opts_default(void);

typedef struct rank_train_report {
    uint32_t epochs;                 /* epochs run */
    uint32_t best_epoch;             /* epoch of the returned parameters (1-based; 0 = initial) */
    double best_valid;               /* validation nDCG@valid_k (exp gain, queries without a
                                        relevant document dropped), NAN without validation data */
    double final_loss;               /* training loss per session of the last epoch */
    double seconds;                  /* wall time of the optimisation */
    double pairs;                    /* session-document pairs whose gradient was computed */
    double dla_theta[RANK_MAX_RANK]; /* DLA: learnt theta_k / theta_1, else NAN */
} rank_train_report;

/* Trains a model on click lists. valid (labels, may be NULL) selects the epoch with the
 * best nDCG@valid_k and stops after `patience` epochs without gain; without it every
 * epoch runs and the last parameters are returned. names: train's n_features feature
 * names. Deterministic for a seed (single-threaded). The normalization (mean, standard
 * deviation of every row of train's x) is stored in the model.
 * Errors: CW_EINVAL (options: DLA/DR with a non-listwise loss, theta <= 0, empty data,
 * valid with another feature count), CW_ENUMERIC (loss or parameters not finite: the
 * message names objective, epoch and learning rate), CW_EINTR, CW_ENOMEM.
 * *out is new (rank_model_free); rep may be NULL. */
int rank_train(const rank_clicks *train, const rank_letor *valid, const char *const *names,
               const rank_train_opts *opts, rank_model **out, rank_train_report *rep,
               cw_err *err) CW_MUST_CHECK;

/* nDCG@k of scores on labelled data (2^y - 1 gain, ties broken by row order, queries
 * without a label > 0 dropped); *n_used gets the queries averaged (may be NULL). Used for
 * early stopping; the full metric set with options lives in the metrics section. */
double rank_letor_ndcg(const rank_letor *d, const double *scores, size_t k, size_t *n_used);

#endif /* CAUSEWAY_RANKER_RANKER_H */
