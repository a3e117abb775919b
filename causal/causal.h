/* causal/causal.h: the click-log store (SQLite schema, migrations, writer, reader: the
 * only SQL in the tree), click models, the user simulator, propensity models and
 * off-policy estimators.
 * Data flow: server/ -> log store -> click models / propensities -> ranker/ training and OPE. */
#ifndef CAUSEWAY_CAUSAL_CAUSAL_H
#define CAUSEWAY_CAUSAL_CAUSAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cw.h"
#include "index/index.h"
#include "ranker/ranker.h"

/* ==== log store (causal/logstore.c) ======================================= */
/* One SQLite file in WAL mode holding every served impression (query, policy, shown
 * documents with positions, scores, logging propensities and feature vectors) and
 * every interaction event joined by impression id. Schema and durability: docs/logs.md.
 * A causal_log is NOT thread-safe (one thread at a time), except causal_log_next_id. */

#define CAUSAL_LOG_SCHEMA_VERSION 1      /* PRAGMA user_version written by this binary */
#define CAUSAL_MAX_ITEMS 1000u           /* shown items per impression (= IDX_MAX_K) */
#define CAUSAL_MAX_FEATURES 4096u        /* floats per feature vector */
#define CAUSAL_MAX_NAME_BYTES 256u       /* policy, model/index version, feature set, doc id */
#define CAUSAL_MAX_CLIENT_ID_BYTES 128u  /* client event id */
#define CAUSAL_MAX_REASON_BYTES 160u     /* text of one rejected event */

/* Durability of a COMMIT (the trade-off is documented in docs/logs.md). */
typedef enum causal_sync {
    CAUSAL_SYNC_FULL = 0,   /* fsync the WAL on every commit: survives power loss (default) */
    CAUSAL_SYNC_NORMAL = 1, /* no fsync per commit: survives kill -9, not power loss */
} causal_sync;

typedef struct causal_log_opts {
    causal_sync sync;    /* default CAUSAL_SYNC_FULL */
    bool read_only;      /* open an existing log for reading; never migrates */
    uint32_t busy_timeout_ms; /* wait for another process's lock; default 5000 */
} causal_log_opts;

causal_log_opts causal_log_opts_default(void);

/* One shown document. On write every pointer is borrowed for the call; on read they
 * belong to the reader and are valid until its next call. */
typedef struct causal_item {
    const char *doc_id;     /* external document id, NUL-terminated UTF-8 */
    uint32_t position;      /* 1-based rank at which it was shown */
    double score;           /* the ranker's score (NaN = none -> NULL) */
    double propensity;      /* P(this doc at this position | logging policy); NaN = unknown */
    const float *features;  /* n_features floats of the impression's feature set, or NULL */
    uint32_t n_clicks;      /* read side only: click events logged on this item (ignored on write) */
} causal_item;

/* One served ranking. */
typedef struct causal_impression {
    uint64_t id;                  /* from causal_log_next_id (or an imported id) */
    int64_t ts_ms;                /* wall clock, ms since the Unix epoch */
    const char *query;            /* query text as received (UTF-8) */
    const char *qid;              /* query id for joins with qrels/simulations, or NULL */
    const char *policy;           /* logging policy name, e.g. "bm25", "pl" (required) */
    const char *model_version;    /* ranker model version, or NULL */
    const char *index_version;    /* idx_index_version of the serving index, or NULL */
    double log_prob;              /* log pi_b(ranking | query); NaN = not computable -> NULL */
    uint32_t mc_samples;          /* Monte-Carlo samples behind the propensities, 0 = none */
    double temperature;           /* Plackett-Luce temperature; NaN = none */
    bool has_seed;                /* seed is meaningful */
    uint64_t seed;                /* RNG seed of a stochastic policy */
    const char *feature_set;      /* feature-set name, NULL = items carry no features */
    const char *const *feature_names; /* n_features names: needed on write the first time a
                                         set is seen (checked equal when given again); on
                                         read always set */
    uint32_t n_features;          /* floats per item vector, <= CAUSAL_MAX_FEATURES */
    size_t n_items;               /* <= CAUSAL_MAX_ITEMS */
    const causal_item *items;     /* n_items, positions distinct */
} causal_impression;

typedef enum causal_event_type {
    CAUSAL_EVENT_CLICK = 0, /* the user opened the document */
    CAUSAL_EVENT_VIEW = 1,  /* the item was rendered in the viewport (examination evidence) */
    CAUSAL_EVENT_DWELL = 2, /* time spent on the opened document, in value_ms */
    CAUSAL_EVENT_SKIP = 3,  /* the user saw the item and moved past it */
    CAUSAL_N_EVENT_TYPES = 4,
} causal_event_type;

/* "click", "view", "dwell", "skip". */
const char *causal_event_type_name(causal_event_type t);
/* Parses a type name. Errors: CW_EINVAL (unknown name). */
int causal_event_type_parse(const char *name, causal_event_type *out, cw_err *err) CW_MUST_CHECK;

/* One interaction. Strings borrowed for the call (write) or owned by the reader (read). */
typedef struct causal_event {
    uint64_t impression_id;
    const char *doc_id;     /* must be a document that impression showed */
    uint32_t position;      /* 1-based; must equal the shown position of doc_id */
    causal_event_type type;
    int64_t ts_ms;          /* client time, ms since the Unix epoch */
    int64_t value_ms;       /* dwell time for CAUSAL_EVENT_DWELL, else -1 (NULL) */
    const char *client_id;  /* client event id making retries idempotent, or NULL */
} causal_event;

/* Why one event of a batch was refused. */
typedef struct causal_event_reject {
    size_t index;                        /* position in the batch, 0-based */
    int code;                            /* CW_ENOTFOUND (impression/doc) or CW_EINVAL */
    char reason[CAUSAL_MAX_REASON_BYTES]; /* e.g. "impression 42 did not show doc \"d7\"" */
} causal_event_reject;

typedef struct causal_log causal_log;

/* Opens (creating if absent, unless read_only) the log at path, sets WAL and the
 * sync mode, and migrates an older schema to CAUSAL_LOG_SCHEMA_VERSION in one
 * transaction. Also advances the boot counter so impression ids never repeat across
 * restarts (one small synchronous write at open). opts may be NULL (defaults).
 * Errors: CW_ENOTFOUND (read_only and missing), CW_EINVAL (schema newer than this
 * binary, or not a causeway log), CW_ECORRUPT (not an SQLite file), CW_EIO, CW_ENOMEM.
 * Close with causal_log_close. */
int causal_log_open(const char *path, const causal_log_opts *opts, causal_log **out,
                    cw_err *err) CW_MUST_CHECK;
/* Finalizes statements and closes the database (checkpointing the WAL). NULL is a no-op. */
void causal_log_close(causal_log *log);

/* A fresh impression id without touching disk: (boot << 32) | sequence, unique across
 * restarts and processes sharing the file; < 2^53 (exact in JSON doubles) for the first
 * 2^21 opens. Thread-safe (atomic). */
uint64_t causal_log_next_id(causal_log *log);

/* Explicit transaction grouping several appends into one COMMIT (the server's
 * writer batches jobs this way). Appends inside it use savepoints, so a failed or
 * rejected append leaves the other appends of the transaction intact.
 * Errors: CW_EINVAL (begin twice / commit without begin), CW_EIO. After a failed
 * commit the transaction is rolled back: nothing of it is durable. */
int causal_log_begin(causal_log *log, cw_err *err) CW_MUST_CHECK;
int causal_log_commit(causal_log *log, cw_err *err) CW_MUST_CHECK;
void causal_log_rollback(causal_log *log);

/* Appends n impressions with their items, all or nothing (its own transaction unless
 * inside causal_log_begin). Errors: CW_EINVAL (missing policy/query, position 0 or
 * duplicated, n_items/n_features/string over the limits, feature names conflicting with
 * the stored set, duplicate impression id: message names the impression index),
 * CW_EIO, CW_ENOMEM. */
int causal_log_append_impressions(causal_log *log, const causal_impression *imps, size_t n,
                                  cw_err *err) CW_MUST_CHECK;

/* Appends a batch of events, ALL OR NOTHING: each event is validated against the logged
 * impressions (impression exists, doc_id shown there at `position`, type/time/strings
 * sane). If any fails, nothing is written, every offending event is listed in
 * rejects[0..*n_rejects) (rejects must hold n entries) and CW_EINVAL is returned.
 * Events whose client_id is already stored are idempotent retries: not written again,
 * counted in *n_duplicates (may be NULL). Errors: CW_EINVAL (rejects), CW_EIO. */
int causal_log_append_events(causal_log *log, const causal_event *ev, size_t n,
                             causal_event_reject *rejects, size_t *n_rejects,
                             size_t *n_duplicates, cw_err *err) CW_MUST_CHECK;

/* Counts of stored rows (for tests, metrics and `logs` commands). */
typedef struct causal_log_counts {
    uint64_t n_impressions;
    uint64_t n_items;
    uint64_t n_events;
} causal_log_counts;
int causal_log_count(causal_log *log, causal_log_counts *out, cw_err *err) CW_MUST_CHECK;

/* Which impressions a reader returns. */
typedef struct causal_log_filter {
    const char *policy; /* only this logging policy, NULL = all */
    int64_t ts_from_ms; /* ts_ms >= from (INT64_MIN = no bound) */
    int64_t ts_to_ms;   /* ts_ms < to (INT64_MAX = no bound) */
} causal_log_filter;

causal_log_filter causal_log_filter_all(void);

/* Iterates impressions in id order, each with its items (by position) and click counts,
 * as one ordered merge of three scans (no per-impression query). Not thread-safe; the
 * log must stay open and see no writes through this handle while the reader is open.
 * Free with causal_log_reader_free. Errors: CW_EIO, CW_ENOMEM. */
typedef struct causal_log_reader causal_log_reader;
int causal_log_reader_new(causal_log *log, const causal_log_filter *filter,
                          causal_log_reader **out, cw_err *err) CW_MUST_CHECK;
/* 1 = *imp set (valid until the next call), 0 = end, < 0 = error (CW_EIO, CW_ECORRUPT
 * for a malformed feature blob naming the impression). */
int causal_log_reader_next(causal_log_reader *r, const causal_impression **imp, cw_err *err);
void causal_log_reader_free(causal_log_reader *r);

/* Iterates every event in insertion order (for export). Same rules as the reader. */
typedef struct causal_event_reader causal_event_reader;
int causal_event_reader_new(causal_log *log, causal_event_reader **out, cw_err *err) CW_MUST_CHECK;
int causal_event_reader_next(causal_event_reader *r, const causal_event **ev, cw_err *err);
void causal_event_reader_free(causal_event_reader *r);

/* ==== sessions in memory, click models (causal/clickmodel.c) ============== */

/* ==== user simulator (causal/sim.c) ======================================= */

/* ==== propensity estimation (causal/propensity.c) ========================= */

/* ==== Plackett-Luce policies and off-policy evaluation (causal/ope.c) ===== */

/* ---- ranking policies over one candidate list (causal/pl.c) ------------- */
/* A policy turns the scores of n candidates into a distribution over top-k rankings
 * (METHODS.md section 6). Candidates are indices 0..n-1 into the caller's score array;
 * a ranking is an array of k distinct indices, slot j (0-based) = rank j+1.
 * The deterministic order is score descending, ties broken by the lower index.
 * All functions are pure apart from the caller's cw_rng: thread-safe on distinct rngs. */

#define CAUSAL_PL_MAX_ITEMS 4096u     /* candidates in one list */
#define CAUSAL_PL_EXACT_MAX_ITEMS 20u /* exact PL marginals: subset DP over 2^n states */
#define CAUSAL_PL_MAX_MC_SAMPLES 100000000u

typedef enum causal_rpol_kind {
    CAUSAL_RPOL_DET = 0,       /* the deterministic order (probability 1) */
    CAUSAL_RPOL_PL = 1,        /* Plackett-Luce over scores / tau */
    CAUSAL_RPOL_RANDTOPN = 2,  /* deterministic order with its top n shuffled uniformly */
    CAUSAL_RPOL_EPSGREEDY = 3, /* with prob. epsilon a uniform permutation, else DET */
} causal_rpol_kind;

typedef struct causal_rpol {
    causal_rpol_kind kind;
    double tau;      /* PL temperature, finite and > 0 (PL only) */
    uint32_t top_n;  /* RandTop-n: number of top results shuffled, >= 1 (RANDTOPN only) */
    double epsilon;  /* exploration probability in [0, 1] (EPSGREEDY only) */
} causal_rpol;

/* Parses "det", "pl:TAU" (e.g. "pl:0.5"), "randtop:N", "egreedy:EPS" into *out.
 * Errors: CW_EPARSE (unknown kind, bad or out-of-range number; message quotes spec). */
int causal_rpol_parse(const char *spec, causal_rpol *out, cw_err *err) CW_MUST_CHECK;
/* Writes the canonical spec ("pl:0.5") into buf (always NUL-terminated). */
void causal_rpol_format(const causal_rpol *pol, char *buf, size_t buf_bytes);
/* Checks parameters and list sizes: 1 <= k <= n <= CAUSAL_PL_MAX_ITEMS, scores finite.
 * Errors: CW_EINVAL (bad parameter or non-finite score, naming the candidate),
 * CW_ELIMIT (n over the limit). */
int causal_rpol_check(const causal_rpol *pol, const double *scores, uint32_t n, uint32_t k,
                        cw_err *err) CW_MUST_CHECK;

/* Draws one top-k ranking into ranking[0..k). PL uses Gumbel top-k (Kool, van Hoof &
 * Welling, ICML 2019): the k largest s_d/tau + G_d. O(n log n).
 * Errors: those of causal_rpol_check, CW_ENOMEM. */
int causal_rpol_sample(const causal_rpol *pol, const double *scores, uint32_t n, uint32_t k,
                         cw_rng *rng, uint32_t *ranking, cw_err *err) CW_MUST_CHECK;

/* Exact log-probabilities of the prefixes of a top-k ranking:
 * log_prefix[j] = log pi(ranking[0..j] in slots 1..j+1), j < k; log_prefix[k-1] is the
 * ranking's own log-probability. Impossible prefixes give -INFINITY (a valid outcome,
 * not an error). PL in log space with log-sum-exp; O(n k).
 * Errors: causal_rpol_check's, CW_EINVAL (index >= n or repeated, naming the slot). */
int causal_rpol_log_prob(const causal_rpol *pol, const double *scores, uint32_t n,
                           const uint32_t *ranking, uint32_t k, double *log_prefix,
                           cw_err *err) CW_MUST_CHECK;

/* Distribution of the candidate in slot j+1 given the prefix ranking[0..j) (j < k):
 * probs[d] = pi(d | prefix), 0 for candidates already in the prefix. If the prefix itself
 * has probability 0 the conditional is undefined: returns CW_EINVAL.
 * Errors: causal_rpol_check's, CW_EINVAL. */
int causal_rpol_next_probs(const causal_rpol *pol, const double *scores, uint32_t n,
                             const uint32_t *prefix, uint32_t j, double *probs,
                             cw_err *err) CW_MUST_CHECK;

/* Exact marginals marg[d * k + j] = pi(d at slot j+1), d < n, j < k. Closed form for
 * DET, RANDTOPN, EPSGREEDY; PL by dynamic programming over the sets of already placed
 * candidates, O(2^n n), only for n <= CAUSAL_PL_EXACT_MAX_ITEMS (else CW_ELIMIT: use
 * causal_rpol_marginals_mc). Errors: causal_rpol_check's, CW_ELIMIT, CW_ENOMEM. */
int causal_rpol_marginals(const causal_rpol *pol, const double *scores, uint32_t n,
                            uint32_t k, double *marg, cw_err *err) CW_MUST_CHECK;

/* Monte-Carlo marginals of any policy from m samples (METHODS.md section 6):
 * marg[d*k+j] = share of samples with d at slot j+1; se (may be NULL) gets the standard
 * error sqrt(p(1-p)/m). 1 <= m <= CAUSAL_PL_MAX_MC_SAMPLES. O(m n log n).
 * Errors: causal_rpol_check's, CW_EINVAL (m out of range), CW_ENOMEM. */
int causal_rpol_marginals_mc(const causal_rpol *pol, const double *scores, uint32_t n,
                           uint32_t k, uint32_t m, cw_rng *rng, double *marg, double *se,
                           cw_err *err) CW_MUST_CHECK;

/* ---- off-policy estimators (causal/ope.c) -------------------------------- */
/* Estimates V(pi_e) = E_{x, a ~ pi_e}[ sum_j lambda_j c(j) ] (a click metric with rank
 * weights lambda: clicks@k has lambda_j = 1[j <= k], dcg@k 1[j <= k]/log2(j+1)) from
 * impressions logged under pi_b (METHODS.md section 6). The estimators read flat
 * per-impression arrays (struct of arrays below) that a caller fills once per target
 * policy, e.g. with causal_ope_fill_row; every array an estimator does not need may be
 * NULL. What each estimator assumes and needs:
 *   iips   item-position IPS (Li et al. KDD 2018): slot-independent rewards; pb/pe_marg
 *   snips  iips self-normalised per slot (Swaminathan & Joachims NeurIPS 2015); same
 *   sips   whole-ranking IPS: no assumption, huge variance; lpb/lpe_prefix
 *   rips   prefix (cascade) IPS (McInerney et al. KDD 2020): reward at j depends on the
 *          ranking above j only; lpb/lpe_prefix
 *   pbm    PBM / policy-aware IPS (Li et al. 2018; Oosterhuis & de Rijke SIGIR 2020): PBM
 *          clicks; rho_b and omega_e from a propensity model theta; works with
 *          deterministic logging when the target shows only logged documents
 *   dm     direct method (Dudik et al. ICML 2011): needs a correct click model; dm_e
 *   dr     item-position doubly robust: dm + iips correction of the model residuals
 *          (Dudik et al. 2011 at the slot level; cf. Oosterhuis arXiv 2203.17118);
 *          unbiased if either the marginals or the model are right; + q_hat, dm_e
 *   cdr    Cascade-DR (Kiyohara et al. WSDM 2022): rips with a baseline Q; cdr_q, cdr_v
 *   pi     pseudoinverse (Swaminathan et al. NeurIPS 2017) in its marginal form
 *          R (sum_j w_j - (k-1)), exact for product logging policies only: for
 *          Plackett-Luce logging it is an approximation (biased; see docs/benchmarks.md)
 * Not thread-safe on one result; distinct calls share nothing. */

#define CAUSAL_OPE_MAX_SLOTS 64u         /* k per impression */
#define CAUSAL_OPE_MAX_BOOTSTRAP 100000u /* bootstrap replicates */

typedef enum causal_est {
    CAUSAL_EST_IIPS = 0,
    CAUSAL_EST_SNIPS,
    CAUSAL_EST_SIPS,
    CAUSAL_EST_RIPS,
    CAUSAL_EST_PBM,
    CAUSAL_EST_DM,
    CAUSAL_EST_DR,
    CAUSAL_EST_CDR,
    CAUSAL_EST_PI,
    CAUSAL_N_EST,
} causal_est;

/* "iips", "snips", ... as in the list above. */
const char *causal_est_name(causal_est e);
/* Errors: CW_EPARSE (unknown name, quoting it and listing the valid ones). */
int causal_est_parse(const char *name, causal_est *out, cw_err *err) CW_MUST_CHECK;

/* Logged impressions and the target policy's view of them; i < n, j < k, row-major
 * [i * k + j]. All borrowed for the duration of a call. */
typedef struct causal_ope_data {
    size_t n;                 /* impressions */
    uint32_t k;               /* slots per impression, 1..CAUSAL_OPE_MAX_SLOTS */
    const uint32_t *group;    /* [n] bootstrap unit (query) < n_groups; NULL = impression */
    uint32_t n_groups;
    const double *lambda;     /* [k] metric rank weights (required) */
    const uint8_t *click;     /* [n*k] clicks 0/1 (required) */
    const double *lpb_prefix; /* [n*k] log pi_b(a_i(1..j+1)); NaN = not logged */
    const double *lpe_prefix; /* [n*k] log pi_e(a_i(1..j+1)); -inf allowed */
    const double *pb_marg;    /* [n*k] pi_b(a_i(j) at j); NaN = not logged */
    const double *pe_marg;    /* [n*k] pi_e(a_i(j) at j) */
    const double *rho_b;      /* [n*k] sum_m pi_b(a_i(j) at m) theta_m */
    const double *omega_e;    /* [n*k] sum_m pi_e(a_i(j) at m) lambda_m theta_m */
    const double *q_hat;      /* [n*k] lambda_j * predicted P(click) of a_i(j) at j */
    const double *dm_e;       /* [n] sum_{d,j} pi_e(d at j) lambda_j qhat(d, j) */
    const double *cdr_q;      /* [n*k] Qhat_j(x_i, a_i(1..j)) */
    const double *cdr_v;      /* [n*k] sum_a pi_e(a | a_i(1..j-1)) Qhat_j(x_i, a_i(1..j-1), a) */
    const double *unsupported; /* [n] target metric mass on (doc, slot) pairs where
                                  pi_b < support floor, as a share of the target's total
                                  lambda mass; NULL = unknown */
} causal_ope_data;

typedef struct causal_ope_opts {
    uint32_t n_boot;      /* bootstrap replicates over groups, 0 = none (default 1000) */
    uint64_t seed;        /* bootstrap RNG seed */
    double alpha;         /* 1 - confidence level, default 0.05 */
    double max_unsupported; /* warn above this unsupported share (default 0.01) */
} causal_ope_opts;

causal_ope_opts causal_ope_opts_default(void);

#define CAUSAL_OPE_WARN_BYTES 256u

typedef struct causal_ope_result {
    causal_est est;
    double value;        /* point estimate */
    double se;           /* analytic standard error (delta method for snips) */
    double ci_lo, ci_hi; /* analytic Gaussian interval, value -/+ z se */
    double boot_lo, boot_hi; /* bootstrap percentile interval; NaN when n_boot = 0 */
    double n_eff;        /* (sum w)^2 / sum w^2; slot-level: the smallest slot's */
    double w_max, w_mean; /* of the same weights; w_mean ~ 1 when propensities are right */
    double unsupported;  /* mean unsupported share (NaN = unknown) */
    size_t n;            /* impressions used */
    char warning[CAUSAL_OPE_WARN_BYTES]; /* "" or "; "-separated warnings */
} causal_ope_result;

/* Runs one estimator. Errors: CW_EINVAL when an array it needs is NULL (the message
 * says which input is missing, why the estimator needs it and which estimators stay
 * valid), when a logged propensity is NaN (not logged), 0 or > 1 for a shown item, or a
 * weight is not finite (message names the impression and slot); CW_ELIMIT (k or n_boot
 * over the limits); CW_ENOMEM. O(n k) plus O(n_boot n_groups k). */
int causal_ope_estimate(const causal_ope_data *d, causal_est est, const causal_ope_opts *opts,
                        causal_ope_result *out, cw_err *err) CW_MUST_CHECK;

/* Several target policies on the same log: for each pair (a, b), the share of bootstrap
 * replicates (same resampled groups for every policy) in which a's estimate exceeds b's.
 * prob[a * n_pol + b]; diagonal 0.5. data[p] must share n, k, group and click.
 * Errors: those of causal_ope_estimate. */
int causal_ope_compare(const causal_ope_data *data, size_t n_pol, causal_est est,
                       const causal_ope_opts *opts, double *values, double *prob,
                       cw_err *err) CW_MUST_CHECK;

/* Per-impression inputs from which causal_ope_fill_row fills row i of the arrays. The
 * candidate list of the impression has n_cand items (indices 0..n_cand-1); the logged
 * ranking shows shown[0..k). */
typedef struct causal_ope_row {
    uint32_t n_cand;
    const uint32_t *shown;   /* [k] logged ranking */
    const double *lpb_prefix; /* [k] logged prefix log-probs, or NULL (not logged) */
    const double *pb_shown;  /* [k] logged pi_b(shown[j] at j), or NULL */
    const double *pb_marg;   /* [n_cand*k] full logging marginals, or NULL (no pbm/support) */
    const causal_rpol *target;
    const double *target_scores; /* [n_cand] */
    const double *pe_marg;   /* [n_cand*k] target marginals, or NULL: computed (exact;
                                PL with n_cand > CAUSAL_PL_EXACT_MAX_ITEMS fails) */
    const double *theta;     /* [k] examination probabilities, or NULL (no pbm) */
    const double *q_click;   /* [n_cand*k] model P(click | d at j), or NULL (no dm/dr/cdr) */
    double support_floor;    /* pi_b below this counts as no support (e.g. 1e-6) */
} causal_ope_row;

/* Fills row i of every non-NULL output array of *d (cast away: the caller owns them and
 * passes them writable in `out`) from *row, computing the target's prefix
 * probabilities, marginals, conditionals and the model terms. O(k n_cand) plus the
 * target marginals when pe_marg is NULL.
 * Errors: causal_rpol_*'s (bad ranking, scores), CW_ENOMEM. */
typedef struct causal_ope_arrays {
    double *lpb_prefix, *lpe_prefix, *pb_marg, *pe_marg, *rho_b, *omega_e, *q_hat, *dm_e,
        *cdr_q, *cdr_v, *unsupported;
} causal_ope_arrays;
int causal_ope_fill_row(const causal_ope_row *row, uint32_t k, const double *lambda, size_t i,
                        causal_ope_arrays *out, cw_err *err) CW_MUST_CHECK;
/* ==== end of Plackett-Luce / OPE section ==== */

#endif /* CAUSEWAY_CAUSAL_CAUSAL_H */
