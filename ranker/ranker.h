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

/* ==== LETOR data (ranker/letor.c) ========================================= */

/* Limits on LETOR input (SVMlight format: `label qid:Q 1:v ... #comment`). */
#define RANK_MAX_FEATURES 1024u      /* highest feature index accepted */
#define RANK_MAX_QUERY_DOCS 100000u  /* rows of one query */
#define RANK_MAX_LETOR_ROWS 50000000u /* rows of one data set */

/* A LETOR data set in memory: rows grouped by query, in file order. Queries must be
 * contiguous in the input (as in every LETOR/MSLR file). Not thread-safe to modify;
 * read-only use from several threads is safe. */
typedef struct rank_letor {
    size_t n_rows;       /* query-document pairs */
    size_t n_features;   /* columns of x: the highest feature index seen (1-based in the file) */
    size_t n_queries;    /* groups */
    double *x;           /* n_rows * n_features, row-major; absent features are 0 */
    double *y;           /* n_rows labels (graded relevance, or clicks) */
    size_t *q_begin;     /* n_queries + 1: rows of query q are [q_begin[q], q_begin[q+1]) */
    char **qid;          /* n_queries query ids as written after "qid:" */
    char **doc_id;       /* n_rows: the "docid = X" of the comment, or NULL when absent */
} rank_letor;

/* Reads and concatenates n_paths LETOR files (a fold's training set is S1+S2+S3).
 * A query id may not appear in two separate runs of rows (also across files).
 * Errors: CW_ENOTFOUND, CW_EIO, CW_EPARSE ("path:line: reason": bad label, missing qid,
 * bad or non-increasing feature index, bad value, query not contiguous), CW_ELIMIT
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
#define RANK_MODEL_VERSION 1          /* "version" of the JSON format written */
#define RANK_MAX_MODEL_BYTES (256u << 20) /* model file */
#define RANK_MAX_HIDDEN 4096u         /* MLP hidden units */
#define RANK_MAX_FEATURE_NAME 64u     /* bytes of one feature name */

typedef enum rank_model_kind {
    RANK_MODEL_LINEAR = 0, /* s = b + w . z */
    RANK_MODEL_MLP = 1,    /* s = b2 + v . relu(W z + b1), one hidden layer */
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

/* Reads a model file written by rank_model_save, or an XGBoost JSON model dump (not yet:
 * see docs). Checks format, version, kind, sizes, finiteness of every number.
 * Errors: CW_ENOTFOUND, CW_EIO, CW_ELIMIT (over RANK_MAX_MODEL_BYTES), CW_EPARSE
 * ("path:line:col: reason" for bad JSON, "path: reason" for a bad or missing member),
 * CW_ENOMEM. Free with rank_model_free. */
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

#endif /* CAUSEWAY_RANKER_RANKER_H */
