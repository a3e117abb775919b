/* ranker/ranker_int.h: the model struct and helpers shared by model.c, train.c and the
 * tests; nothing outside ranker/ includes it. */
#ifndef CAUSEWAY_RANKER_RANKER_INT_H
#define CAUSEWAY_RANKER_RANKER_INT_H

#include <jansson.h>

#include "ranker/ranker.h"

/* Parameters live in one vector theta so the optimiser treats every model alike:
 *   linear: theta = [w (nf), b]
 *   MLP:    theta = [W (nh x nf, row-major), b1 (nh), v (nh), b2]
 * Scoring uses the normalization folded into the first layer (wf, bf), refreshed by
 * rank_model_refresh() after theta, mean or scale change. */
struct rank_model {
    rank_model_kind kind;
    size_t n_features;   /* nf */
    size_t n_hidden;     /* nh, 0 for linear */
    size_t n_params;     /* length of theta */
    char **names;        /* nf feature names */
    double *mean;        /* nf: subtracted before scaling */
    double *scale;       /* nf: > 0, divides */
    double *theta;       /* n_params */
    double *wf;          /* folded first layer: nf (linear) or nh x nf (MLP) */
    double *bf;          /* folded bias: 1 (linear) or nh (MLP) */
    char *training_json; /* JSON object describing how the model was trained, or NULL */
    /* RANK_MODEL_TREES (ranker/trees.c): nodes of every tree in one array; raw features */
    size_t n_trees;
    size_t *tree_root; /* n_trees node indices */
    size_t n_nodes;
    int32_t *node_feat;  /* split feature, -1 = leaf */
    double *node_thr;    /* split threshold */
    uint32_t *node_left; /* child taken when the test holds */
    uint32_t *node_right;
    uint8_t *node_flags; /* RANK_NODE_* */
    double *node_value;  /* leaf value, or the expected value of an internal node */
    double base_score;
};

#define RANK_NODE_DEFAULT_LEFT 1u /* a NaN feature goes to node_left */
#define RANK_NODE_LE 2u           /* test is x <= thr (LightGBM), else x < thr (XGBoost) */

/* Recomputes wf/bf from theta, mean and scale. */
void rank_model_refresh(rank_model *m);

/* Scores rows of already standardized features z (n x nf) with theta (not the folded
 * weights); hidden (n x nh, MLP only) receives the hidden activations after ReLU. */
void rank_model_score_z(const rank_model *m, const double *theta, const double *z, size_t n,
                        double *hidden, double *scores);

/* Adds to grad (n_params) the gradient of sum_j dscore[j] * score(z_j) given the
 * activations from rank_model_score_z. dh is scratch of n x nh (MLP only). */
void rank_model_backward(const rank_model *m, const double *theta, const double *z, size_t n,
                         const double *hidden, const double *dscore, double *dh, double *grad);

/* Click lists: slots of list l are [list_begin[l], list_begin[l+1]), sorted by rank with
 * unshown candidates (rank 0) last. */
struct rank_clicks {
    const double *x; /* borrowed: n_rows x n_features */
    size_t n_rows;
    size_t n_features;
    size_t n_lists, cap_lists;
    size_t *list_begin;   /* n_lists + 1 */
    uint32_t *list_query; /* query id per list */
    double *list_n;       /* sessions per list */
    uint64_t *list_hash;  /* hash of (query, rows, ranks) for merging */
    size_t n_slots, cap_slots;
    size_t *slot_row;
    uint32_t *slot_rank;   /* 1-based, 0 = not shown */
    double *slot_clicks;   /* summed over the list's sessions */
    size_t *table;         /* open addressing: list index + 1, 0 = empty */
    size_t table_cap;      /* power of two */
    const double *row_rho; /* borrowed, n_rows: policy-aware exposure or NAN; may be NULL */
};

/* The three losses of one list over scores s with slot weights a (train.c): return the
 * loss and write dL/ds into ds. Pointwise also takes the list's session count N. */
double rank_loss_listwise(const double *s, const double *a, size_t n, double *ds);
double rank_loss_pairwise(const double *s, const double *a, size_t n, double *ds);
double rank_loss_pointwise(const double *s, const double *a, size_t n, double N, double *ds);

/* Tree ensembles (trees.c). The constructors return a model of kind RANK_MODEL_TREES
 * with the CW_EPARSE messages of rank_model_load, prefixed with origin. */
int rank_trees_from_xgboost(const json_t *dump, const char *origin, rank_model **out, cw_err *err);
int rank_trees_from_lightgbm(const json_t *dump, const char *origin, rank_model **out, cw_err *err);
/* Our own "trees" params (as written by rank_trees_params_json), over names. */
int rank_trees_from_params(const json_t *params, const char *const *names, size_t nf,
                           const char *origin, rank_model **out, cw_err *err);
/* New reference, NULL on ENOMEM. */
json_t *rank_trees_params_json(const rank_model *m);
void rank_trees_score(const rank_model *m, const double *x, size_t n, double *scores);
void rank_trees_explain(const rank_model *m, const double *x, double *contrib, double *bias);

#endif /* CAUSEWAY_RANKER_RANKER_INT_H */
