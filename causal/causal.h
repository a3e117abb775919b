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

#define CAUSAL_LOG_SCHEMA_VERSION 2     /* PRAGMA user_version written by this binary */
#define CAUSAL_MAX_ITEMS 1000u          /* shown items per impression (= IDX_MAX_K) */
#define CAUSAL_MAX_FEATURES 4096u       /* floats per feature vector */
#define CAUSAL_MAX_NAME_BYTES 256u      /* policy, model/index version, feature set, doc id */
#define CAUSAL_MAX_CLIENT_ID_BYTES 128u /* client event id */
#define CAUSAL_MAX_REASON_BYTES 160u    /* text of one rejected event */

/* Durability of a COMMIT (the trade-off is documented in docs/logs.md). */
typedef enum causal_sync {
    CAUSAL_SYNC_FULL = 0,   /* fsync the WAL on every commit: survives power loss (default) */
    CAUSAL_SYNC_NORMAL = 1, /* no fsync per commit: survives kill -9, not power loss */
} causal_sync;

typedef struct causal_log_opts {
    causal_sync sync;         /* default CAUSAL_SYNC_FULL */
    bool read_only;           /* open an existing log for reading; never migrates */
    uint32_t busy_timeout_ms; /* wait for another process's lock; default 5000 */
} causal_log_opts;

causal_log_opts causal_log_opts_default(void);

/* One shown document. On write every pointer is borrowed for the call; on read they
 * belong to the reader and are valid until its next call. */
typedef struct causal_item {
    const char *doc_id;    /* external document id, NUL-terminated UTF-8 */
    uint32_t position;     /* 1-based rank at which it was shown */
    double score;          /* the ranker's score (NaN = none -> NULL) */
    double propensity;     /* P(this doc at this position | logging policy); NaN = unknown */
    const float *features; /* n_features floats of the impression's feature set, or NULL */
    uint32_t n_clicks;     /* read side only: click events logged on this item (ignored on write) */
} causal_item;

/* One served ranking. */
typedef struct causal_impression {
    uint64_t id;                      /* from causal_log_next_id (or an imported id) */
    int64_t ts_ms;                    /* wall clock, ms since the Unix epoch */
    const char *query;                /* query text as received (UTF-8) */
    const char *qid;                  /* query id for joins with qrels/simulations, or NULL */
    const char *policy;               /* logging policy name, e.g. "bm25", "pl" (required) */
    const char *model_version;        /* ranker model version, or NULL */
    const char *index_version;        /* idx_index_version of the serving index, or NULL */
    double log_prob;                  /* log pi_b(ranking | query); NaN = not computable -> NULL */
    uint32_t mc_samples;              /* Monte-Carlo samples behind the propensities, 0 = none */
    double temperature;               /* Plackett-Luce temperature; NaN = none */
    bool has_seed;                    /* seed is meaningful */
    uint64_t seed;                    /* RNG seed of a stochastic policy */
    const char *feature_set;          /* feature-set name, NULL = items carry no features */
    const char *const *feature_names; /* n_features names: needed on write the first time a
                                         set is seen (checked equal when given again); on
                                         read always set */
    uint32_t n_features;              /* floats per item vector, <= CAUSAL_MAX_FEATURES */
    size_t n_items;                   /* <= CAUSAL_MAX_ITEMS */
    const causal_item *items;         /* n_items, positions distinct */
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
    const char *doc_id; /* must be a document that impression showed */
    uint32_t position;  /* 1-based; must equal the shown position of doc_id */
    causal_event_type type;
    int64_t ts_ms;         /* client time, ms since the Unix epoch */
    int64_t value_ms;      /* dwell time for CAUSAL_EVENT_DWELL, else -1 (NULL) */
    const char *client_id; /* client event id making retries idempotent, or NULL */
} causal_event;

/* Why one event of a batch was refused. */
typedef struct causal_event_reject {
    size_t index;                         /* position in the batch, 0-based */
    int code;                             /* CW_ENOTFOUND (impression/doc) or CW_EINVAL */
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

/* Changes the durability of the following commits (call outside a transaction). The
 * server's writer commits batches holding only impressions (never acknowledged) with
 * CAUSAL_SYNC_NORMAL: they become durable with the next FULL commit, which syncs the whole
 * WAL. Errors: CW_EINVAL (inside a transaction), CW_EIO. */
int causal_log_set_sync(causal_log *log, causal_sync sync, cw_err *err) CW_MUST_CHECK;

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
                             causal_event_reject *rejects, size_t *n_rejects, size_t *n_duplicates,
                             cw_err *err) CW_MUST_CHECK;

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
int causal_log_reader_new(causal_log *log, const causal_log_filter *filter, causal_log_reader **out,
                          cw_err *err) CW_MUST_CHECK;
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
/* causal_sessions (causal/sessions.c) is the in-memory session set that the simulator
 * produces and every fit consumes, so the estimation math is testable without SQLite;
 * the log store is an adapter around it (causal_sessions_load_log / _save_log).
 * Layout: struct-of-arrays, append-only. A session = one impression: query, ranker,
 * logging policy, the shown items with positions, clicks and logging propensities.
 * Not thread-safe while being appended to; read-only use may be shared. */

#define CAUSAL_MAX_RANK                                                                            \
    64u                          /* deepest position the fits model; deeper items are dropped      \
                                    on load with a warning count */
#define CAUSAL_MAX_RANKERS 1024u /* distinct logging rankers (model versions) */
#define CAUSAL_MAX_LABEL 15      /* graded relevance labels 0..15 */

/* Logging policy of one session (how the shown list was produced). */
typedef enum causal_policy {
    CAUSAL_POLICY_UNKNOWN = 0,       /* a log from elsewhere: treated as deterministic */
    CAUSAL_POLICY_DETERMINISTIC = 1, /* sorted by the ranker's score */
    CAUSAL_POLICY_RANDTOP = 2,       /* top n shuffled uniformly; param = n */
    CAUSAL_POLICY_SWAP = 3,          /* param = rank where the ranker's top document was
                                        shown (1 = not swapped, k = swapped with rank k) */
    CAUSAL_POLICY_PL = 4,            /* Plackett-Luce sample; logp = log prob of the list */
} causal_policy;

/* Log-store policy name of a session: "deterministic", "randtop-N", "swap", "pl". */
const char *causal_policy_name(causal_policy p);

typedef struct causal_sessions_int causal_sessions_int;

typedef struct causal_sessions {
    /* names (interned, owned); index = id used below */
    size_t n_queries;
    char **query_names;
    size_t n_docs;
    char **doc_names;
    size_t n_rankers;
    char **ranker_names;
    /* (query, doc) pairs: relevance parameters and simulated labels hang off these */
    size_t n_pairs;
    uint32_t *pair_query;
    uint32_t *pair_doc;
    int8_t *pair_label;   /* true label when simulated, -1 = unknown */
    size_t n_features;    /* floats per pair (0 = none) */
    float *pair_features; /* n_pairs x n_features, row-major; NULL when n_features = 0 */
    /* sessions */
    size_t n_sessions;
    uint32_t *s_query;
    uint16_t *s_ranker;
    uint8_t *s_policy; /* causal_policy */
    uint16_t *s_param; /* see causal_policy */
    double *s_logp;    /* log pi_b(shown list | query); NAN = unknown */
    size_t *s_begin;   /* items of session i are [s_begin[i], s_begin[i+1]); n_sessions + 1 */
    /* shown items, in position order within a session */
    size_t n_items;
    uint32_t *i_pair;
    uint16_t *i_pos;         /* 1-based position, strictly increasing within a session */
    uint8_t *i_click;        /* 0/1 */
    float *i_prop;           /* P(this doc at this position | logging policy); NAN = unknown */
    float *i_score;          /* the logging ranker's score; NAN = unknown */
    causal_sessions_int *in; /* capacities and hash tables (private) */
} causal_sessions;

/* One session to append; arrays hold n_items entries; props and scores may be NULL. */
typedef struct causal_session_in {
    uint32_t query;
    uint32_t ranker;
    causal_policy policy;
    uint32_t param;
    double logp;
    size_t n_items;
    const uint32_t *pairs;
    const uint16_t *positions;
    const uint8_t *clicks;
    const float *props;
    const float *scores;
} causal_session_in;

/* An empty set. Errors: CW_ENOMEM. Free with causal_sessions_free (NULL is a no-op). */
int causal_sessions_new(causal_sessions **out, cw_err *err) CW_MUST_CHECK;
void causal_sessions_free(causal_sessions *s);
/* Drops all sessions and items but keeps names and pairs (chunked simulations). */
void causal_sessions_clear(causal_sessions *s);
/* Interning: the id of name (NUL-terminated UTF-8), added if new. Amortised O(1).
 * Errors: CW_ELIMIT (name over CAUSAL_MAX_NAME_BYTES, rankers over CAUSAL_MAX_RANKERS),
 * CW_ENOMEM. */
int causal_sessions_query(causal_sessions *s, const char *name, uint32_t *out,
                          cw_err *err) CW_MUST_CHECK;
int causal_sessions_doc(causal_sessions *s, const char *name, uint32_t *out,
                        cw_err *err) CW_MUST_CHECK;
int causal_sessions_ranker(causal_sessions *s, const char *name, uint32_t *out,
                           cw_err *err) CW_MUST_CHECK;
/* The pair id of (query, doc), added with `label` (-1 unknown) if new; a known label
 * replaces an unknown one. Errors: CW_EINVAL (ids out of range), CW_ENOMEM. */
int causal_sessions_pair(causal_sessions *s, uint32_t query, uint32_t doc, int label, uint32_t *out,
                         cw_err *err) CW_MUST_CHECK;
/* Declares n floats of features per pair (before or after pairs exist; new rows are 0).
 * Errors: CW_EINVAL (changing a non-zero n), CW_ELIMIT (> CAUSAL_MAX_FEATURES), CW_ENOMEM. */
int causal_sessions_set_n_features(causal_sessions *s, size_t n, cw_err *err) CW_MUST_CHECK;
/* Capacity for n more sessions and m more items (avoids regrowth in hot loops). */
int causal_sessions_reserve(causal_sessions *s, size_t n_sessions, size_t n_items,
                            cw_err *err) CW_MUST_CHECK;
/* Appends one session. Errors: CW_EINVAL (unknown ids, position 0 or not increasing,
 * click not 0/1, n_items 0 or > CAUSAL_MAX_ITEMS; message names the field), CW_ENOMEM. */
int causal_sessions_append(causal_sessions *s, const causal_session_in *in,
                           cw_err *err) CW_MUST_CHECK;

/* What loading a log skipped or repaired, reported by the CLI as warnings. */
typedef struct causal_load_stats {
    uint64_t n_impressions;       /* impressions read */
    uint64_t n_items;             /* items kept */
    uint64_t n_clicks;            /* clicked items kept */
    uint64_t n_deep;              /* items beyond max_rank dropped */
    uint64_t n_no_prop;           /* items without a logged propensity */
    uint64_t n_multi_click;       /* items with more than one click event (counted as one) */
    uint64_t n_empty;             /* impressions left without items (skipped) */
    uint64_t n_pairs_no_features; /* pairs of a log with feature vectors that never logged
                                     one of the kept width (their features stay 0) */
} causal_load_stats;

/* How causal_sessions_add_impression turns logged feature vectors into pair features. */
typedef enum causal_feat_rule {
    CAUSAL_FEAT_FIRST = 0, /* a pair keeps the first vector logged for it; the log's first
                              width sets n_features, other widths are skipped (loader) */
    CAUSAL_FEAT_LAST = 1,  /* every vector of width n_features (set by the caller; 0 = keep
                              none) replaces the pair's: what serves now is what trains */
} causal_feat_rule;

/* Appends one logged impression to s the way causal_sessions_load_log reads a log: qid
 * (or the query text) -> query; policy class, its parameter and the ranker key from
 * causal_policy_name_ranker; items deeper than max_rank dropped and counted in st; click =
 * at least one click event; swap's parameter = position of the highest-scored item; the
 * feature vectors by rule. An impression without an item within max_rank appends nothing
 * (st->n_empty). Errors (message prefixed with the impression id): those of the policy-name
 * parser and of causal_sessions_append, CW_ELIMIT, CW_ENOMEM. */
int causal_sessions_add_impression(causal_sessions *s, const causal_impression *imp,
                                   uint32_t max_rank, causal_feat_rule rule, causal_load_stats *st,
                                   cw_err *err) CW_MUST_CHECK;
/* Pairs that got no logged feature vector from causal_sessions_add_impression (0 when the
 * set has no features). */
size_t causal_sessions_pairs_without_features(const causal_sessions *s);

/* Reads every impression of the log at db_path (read-only) into a new session set:
 * qid (or the query text) -> query, model_version (or the policy name) -> ranker,
 * policy name -> causal_policy (param of "randtop-N" = N; of "swap" = position of the
 * highest-scored item), item propensity and score, click = at least one click event,
 * the logged feature vector of a pair's first impression -> its pair features.
 * Items deeper than max_rank are dropped and counted. Errors: those of causal_log_open
 * (CW_EINVAL names an incompatible schema version), CW_EINVAL (empty log: no
 * impressions), CW_EIO, CW_ENOMEM. Free *out with causal_sessions_free. */
int causal_sessions_load_log(const char *db_path, uint32_t max_rank, causal_sessions **out,
                             causal_load_stats *stats, cw_err *err) CW_MUST_CHECK;
/* Appends sessions [begin, end) to the log at db_path (created if absent) as
 * impressions (policy name, ranker name as model_version, qid, log_prob, per-item
 * propensity and score, pair features under feature_set "sim" when present) plus one
 * click event per clicked item, in transactions of `batch` impressions. ts_ms of
 * session i is base_ts_ms + i. Errors: those of the log store, CW_EINTR. */
int causal_sessions_save_log(const causal_sessions *s, size_t begin, size_t end,
                             const char *db_path, int64_t base_ts_ms, size_t batch,
                             const cw_progress *progress, cw_err *err) CW_MUST_CHECK;

/* ---- click models (causal/clickmodel.c) ----------------------------------
 * Chuklin, Markov & de Rijke, "Click Models for Web Search" (2015), ch. 3-4:
 *   PBM      P(C_k=1) = gamma_k alpha_qd
 *   cascade  scan top-down, click with alpha_qd, stop after the first click (Craswell 2008)
 *   DBN      attractiveness a_qd, satisfaction s_qd, continuation gamma (Chapelle & Zhang 2009)
 *   UBM      P(E_k=1) = gamma_{k,k-k'} (k' = last clicked rank above, 0 if none) (Dupret &
 *            Piwowarski 2008)
 * Parameters per (query, doc) pair; fitted by EM (cascade: its closed-form MLE). */

typedef enum causal_cm_kind {
    CAUSAL_CM_PBM = 0,
    CAUSAL_CM_CASCADE = 1,
    CAUSAL_CM_DBN = 2,
    CAUSAL_CM_UBM = 3,
    CAUSAL_CM_N = 4,
} causal_cm_kind;

/* "pbm", "cascade", "dbn", "ubm"; parse returns CW_EINVAL for other names. */
const char *causal_cm_name(causal_cm_kind k);
int causal_cm_parse(const char *name, causal_cm_kind *out, cw_err *err) CW_MUST_CHECK;

typedef struct causal_cm_opts {
    causal_cm_kind kind;
    uint32_t max_rank; /* positions modelled, 1..CAUSAL_MAX_RANK (default 10); deeper ignored */
    uint32_t max_iter; /* EM iterations (default 50) */
    double tol;        /* stop when the train log-likelihood per session improves less */
    double prior;      /* pseudo-counts (Beta(prior, prior)) on pair parameters, default 1 */
} causal_cm_opts;
causal_cm_opts causal_cm_opts_default(causal_cm_kind kind);

typedef struct causal_clickmodel causal_clickmodel;

/* Fits a click model on sessions [begin, end) of s. Errors: CW_EINVAL (empty range,
 * bad options), CW_ENOMEM. Free with causal_clickmodel_free. */
int causal_clickmodel_fit(const causal_sessions *s, size_t begin, size_t end,
                          const causal_cm_opts *opts, causal_clickmodel **out,
                          cw_err *err) CW_MUST_CHECK;
void causal_clickmodel_free(causal_clickmodel *m);

/* Held-out evaluation. ll = mean log-likelihood (natural log) per session of the
 * observed click vector, each click conditioned on the clicks above it; perplexity at
 * rank k = 2^(-mean log2 P(C_k = c_k)) with the unconditional click probability
 * (PyClick's convention); overall perplexity = mean over ranks. Pairs unseen in training
 * use the training mean of the pair parameters. Probabilities clamped to [1e-6, 1-1e-6]. */
typedef struct causal_cm_eval {
    size_t n_sessions;
    uint32_t n_ranks;
    double ll;
    double perplexity;
    double perplexity_at[CAUSAL_MAX_RANK];
} causal_cm_eval;
int causal_clickmodel_eval(const causal_clickmodel *m, const causal_sessions *s, size_t begin,
                           size_t end, causal_cm_eval *out, cw_err *err) CW_MUST_CHECK;
/* Per-session held-out log-likelihood (the terms whose mean is causal_cm_eval.ll): ll gets
 * end - begin entries, so two models can be compared by paired differences with a standard
 * error. Errors: CW_EINVAL (empty or bad range, pairs unknown to the model). */
int causal_clickmodel_session_ll(const causal_clickmodel *m, const causal_sessions *s, size_t begin,
                                 size_t end, double *ll, cw_err *err) CW_MUST_CHECK;
/* Position parameters and fit summary as JSON appended to out (pair parameters are
 * summarised, not listed). Errors: CW_ENOMEM. */
int causal_clickmodel_to_json(const causal_clickmodel *m, cw_buf *out, cw_err *err) CW_MUST_CHECK;
/* Examination parameter of rank k (1-based): PBM gamma_k; UBM gamma_{k,k} (no click
 * above); DBN gamma; cascade 1. */
double causal_clickmodel_exam(const causal_clickmodel *m, uint32_t k);

/* ==== user simulator (causal/sim.c) ======================================= */
/* Users with known behaviour (METHODS.md section 3) clicking on rankings produced by a
 * logging policy over a collection of queries with candidate documents, true labels and
 * ranker scores. Output: sessions appended to a causal_sessions (then saved as a log). */

#define CAUSAL_SIM_MAX_CANDIDATES 1000u /* candidates per query */
#define CAUSAL_SIM_MAX_RANKERS 16u      /* score columns per collection */

typedef struct causal_simcoll causal_simcoll;

/* An empty collection whose queries, docs and pairs are interned into s (which must
 * outlive it). n_rankers score columns (1..CAUSAL_SIM_MAX_RANKERS) named ranker_names
 * (NULL = "ranker-0", ...). Errors: CW_EINVAL, CW_ENOMEM. Free with causal_simcoll_free. */
int causal_simcoll_new(causal_sessions *s, uint32_t n_rankers, const char *const *ranker_names,
                       causal_simcoll **out, cw_err *err) CW_MUST_CHECK;
void causal_simcoll_free(causal_simcoll *c);
/* Adds a query with n candidates: doc ids, labels (0..CAUSAL_MAX_LABEL), scores
 * [ranker][n] (n_rankers rows), and n x s->n_features features or NULL.
 * Errors: CW_EINVAL (n = 0, bad label, duplicate query), CW_ELIMIT, CW_ENOMEM. */
int causal_simcoll_add(causal_simcoll *c, const char *qid, size_t n, const char *const *doc_ids,
                       const int *labels, const double *const *scores, const float *features,
                       cw_err *err) CW_MUST_CHECK;
size_t causal_simcoll_n_queries(const causal_simcoll *c);
int causal_simcoll_max_label(const causal_simcoll *c);
/* Binary relevance: every label > 0 becomes 1 (in the candidates and the sessions' pair
 * labels), ymax 1. With a user of ymax 1, P(click | examined) is 1 for a relevant document
 * and epsilon for another: METHODS.md section 3's (1/k)^eta variant (Joachims et al. WSDM
 * 2017). Rankings are not changed (scores are kept). */
void causal_simcoll_binarize(causal_simcoll *c);
/* A synthetic collection for tests and benchmarks: n_queries queries of n_docs
 * candidates, labels uniform on 0..ymax, ranker r's score = label + N(0, noise^2) with its
 * own noise draw (so rankers disagree). Deterministic in seed. */
int causal_simcoll_random(causal_sessions *s, uint32_t n_queries, uint32_t n_docs, int ymax,
                          uint32_t n_rankers, double noise, uint64_t seed, causal_simcoll **out,
                          cw_err *err) CW_MUST_CHECK;
/* Sets ranker columns 1..n_rankers-1 to column 0 plus N(0, (noise * sd_q)^2) per (query,
 * doc), sd_q = the standard deviation of the query's column-0 scores (scale-free), seeded:
 * the "several production rankers" intervention harvesting needs. */
int causal_simcoll_perturb(causal_simcoll *c, double noise, uint64_t seed,
                           cw_err *err) CW_MUST_CHECK;
/* Intervention counts of the first n_rankers columns' deterministic top-k lists: n_hat
 * (k x k, row-major) gets at [a][b] the number of (query, doc) pairs shown at rank a+1 by
 * one ranker and at rank b+1 by another (the sets S_{a,b} of intervention harvesting,
 * Agarwal et al. WSDM 2019). A property of the rankers, not of any clicks: use it to design
 * a harvesting experiment. Errors: CW_EINVAL (n_rankers, k), CW_ENOMEM. */
int causal_simcoll_interventions(const causal_simcoll *c, uint32_t n_rankers, uint32_t k,
                                 double *n_hat, cw_err *err) CW_MUST_CHECK;
/* Path (b): a LETOR data set (labels 0..CAUSAL_MAX_LABEL, features copied to the pairs:
 * sets s->n_features = d->n_features) ranked by n_rankers production rankers whose scores
 * are scores[r][row] (from rank_model_score or a feature column). Doc ids are the
 * "docid = X" comments (row numbers when absent). Errors: CW_EINVAL (bad label, names
 * qid and row), CW_ELIMIT, CW_ENOMEM. */
int causal_simcoll_letor(causal_sessions *s, const rank_letor *d, const double *const *scores,
                         uint32_t n_rankers, causal_simcoll **out, cw_err *err) CW_MUST_CHECK;
/* Path (a): a text collection: each query of queries_tsv ("qid<TAB>text") retrieved by
 * causeway's BM25 in-process (top `depth`; n_rankers columns all = BM25, ranker "bm25"
 * when 1: call causal_simcoll_perturb to make them differ), labels from TREC qrels
 * (unjudged = 0), and with_features: the cw-text-v1 features of ranker/ on the pairs.
 * Queries retrieving nothing are skipped and counted in *n_skipped. Errors: CW_EPARSE
 * (path:line), CW_EINVAL (no query retrieved anything), those of index/ and ranker/. */
int causal_simcoll_text(causal_sessions *s, const idx_index *ix, const char *queries_tsv,
                        const char *qrels_path, uint32_t depth, uint32_t n_rankers,
                        bool with_features, causal_simcoll **out, size_t *n_skipped,
                        cw_err *err) CW_MUST_CHECK;

typedef enum causal_user_kind {
    CAUSAL_USER_PBM = 0,     /* examination theta_k x relevance click probability */
    CAUSAL_USER_TRUST = 1,   /* PBM with trust bias (Vardasbi et al. CIKM 2020) */
    CAUSAL_USER_CASCADE = 2, /* top-down, click with p_click[y], stop with p_stop[y] */
    CAUSAL_USER_DBN = 3,     /* cascade that also continues with prob dbn_gamma after a skip */
    CAUSAL_USER_UBM = 4,     /* examination ubm[k][d], d = distance to the last click */
} causal_user_kind;

typedef struct causal_user {
    causal_user_kind kind;
    uint32_t n_theta;              /* examination table length; ranks beyond use the last */
    double theta[CAUSAL_MAX_RANK]; /* P(E=1|k) for k = 1..n_theta (already raised to eta) */
    double epsilon;                /* click noise: P(R=1|y) = eps + (1-eps)(2^y-1)/(2^ymax-1) */
    int ymax;                      /* highest label of the collection */
    double p_click[CAUSAL_MAX_LABEL + 1]; /* cascade/DBN click (attractiveness) per label */
    double p_stop[CAUSAL_MAX_LABEL + 1];  /* cascade/DBN stop (satisfaction) after a click */
    double dbn_gamma;                     /* DBN: continue after a non-satisfying result */
} causal_user;

/* The METHODS.md eye-tracking theta table raised to eta (ranks > 10 use theta_10). */
void causal_user_theta_table(causal_user *u, double eta, uint32_t n_ranks);
/* theta_k = (1/k)^eta for k = 1..n_ranks. */
void causal_user_theta_power(causal_user *u, double eta, uint32_t n_ranks);
/* PBM user: theta table eta = 1, epsilon 0.1, ymax 4; cascade tables = METHODS.md
 * "navigational" for ymax (2 or 4; otherwise linear in y); dbn_gamma 0.9. */
causal_user causal_user_default(causal_user_kind kind, int ymax);
/* P(R=1|y) = eps + (1-eps)(2^y-1)/(2^ymax-1) (METHODS.md section 3). */
double causal_user_relevance(const causal_user *u, int y);
/* Trust bias affine parameters at rank k (METHODS.md section 3):
 * P(c=1|k,d) = alpha_k p_y + beta_k. */
void causal_user_trust(const causal_user *u, uint32_t k, double *alpha, double *beta);
/* One session of user u on a list whose labels (clamped to 0..CAUSAL_MAX_LABEL) are shown
 * at ranks 1..k (k <= CAUSAL_MAX_RANK): clicks[0..k) get 0/1. Used for lists served by a
 * real server (`causeway simulate --server`). */
void causal_user_clicks(const causal_user *u, const int *labels, uint32_t k, cw_rng *rng,
                        uint8_t *clicks);
/* TREC qrels ("qid 0 docid rel") for label lookups; unjudged = 0, negatives clamp to 0.
 * Errors: CW_ENOTFOUND, CW_EPARSE (path:line), CW_ENOMEM. Free with causal_qrels_free. */
typedef struct causal_qrels causal_qrels;
int causal_qrels_read(const char *path, causal_qrels **out, cw_err *err) CW_MUST_CHECK;
int causal_qrels_label(const causal_qrels *r, const char *qid, const char *doc);
void causal_qrels_free(causal_qrels *r);
/* Probability of examining rank k in the UBM user given the last click at k' < k
 * (0 = none): gamma_{k,d} = theta_d with d = k - k', i.e. the examination curve restarts
 * below every click (with no click above, d = k and the user is a PBM user). */
double causal_user_ubm_exam(const causal_user *u, uint32_t k, uint32_t kprev);

typedef struct causal_sim_policy {
    causal_policy kind;
    uint32_t k;             /* items shown (default 10) */
    uint32_t randtop_n;     /* RANDTOP: shuffle the top n (default = k) */
    double swap_share;      /* SWAP: share of sessions swapped (default 1: every session
                               swaps rank 1 with a uniform rank in 1..k, 1 = no swap) */
    double pl_temperature;  /* PL: softmax temperature over scores (default 1) */
    uint32_t pl_mc_samples; /* PL: Monte-Carlo samples for item marginals (0 = log NAN) */
} causal_sim_policy;

typedef struct causal_sim_opts {
    causal_user user;
    causal_sim_policy policy;
    uint64_t n_sessions;
    uint64_t seed;
    uint32_t n_rankers; /* sessions pick a ranker column uniformly among the first n (>= 1) */
    bool skip_unjudged; /* draw queries only among those with a candidate of label > 0 (the
                           ULTR protocol); false (default): every query */
    cw_progress progress;
} causal_sim_opts;
causal_sim_opts causal_sim_opts_default(void);

/* Simulates n_sessions sessions (query uniform, ranker uniform) into the collection's
 * session set. Deterministic in opts->seed. Errors: CW_EINVAL (bad options, k larger
 * than every query), CW_ENOMEM, CW_EINTR. O(n_sessions * k) for deterministic, RandTop
 * and swap; PL costs O(candidates) per session (+ M * candidates with marginals). */
int causal_simulate(const causal_simcoll *c, const causal_sim_opts *opts,
                    cw_err *err) CW_MUST_CHECK;

/* ==== propensity estimation (causal/propensity.c) ========================= */
/* Examination propensities theta_k (reported as theta_k/theta_1, METHODS.md section 4)
 * from a session set, with bootstrap confidence intervals and diagnostics. */

typedef enum causal_prop_method {
    CAUSAL_PROP_RANDOMIZATION = 0, /* RandTop-n: c_k/c_1; swap: CTR_k(swapped)/CTR_1 */
    CAUSAL_PROP_REM = 1,           /* regression-EM, Wang et al. WSDM 2018 */
    CAUSAL_PROP_HARVEST = 2,       /* intervention harvesting AllPairs, Agarwal et al. 2019 */
    CAUSAL_PROP_TRUST = 3,         /* affine trust bias alpha_k, beta_k (Vardasbi et al. 2020) */
} causal_prop_method;

/* Relevance model of regression-EM. */
typedef enum causal_rel_model {
    CAUSAL_REL_LINEAR = 0, /* logistic regression on the pair features (IRLS, LAPACKE) */
    CAUSAL_REL_MLP = 1,    /* one hidden layer of tanh units on the pair features */
    CAUSAL_REL_PAIR = 2,   /* one parameter per (query, doc) pair (needs pairs shown at
                              several positions: stochastic or several rankers) */
    CAUSAL_REL_QUAD = 3,   /* logistic regression on the features and their pairwise
                              products (at most 32 features) */
} causal_rel_model;

/* "randomization", "rem", "harvest", "trust"; parse also accepts "regression-em",
 * "allpairs", "intervention-harvesting". CW_EINVAL otherwise. */
const char *causal_prop_method_name(causal_prop_method m);
int causal_prop_method_parse(const char *name, causal_prop_method *out, cw_err *err) CW_MUST_CHECK;
/* "linear", "quad", "mlp", "pair". */
int causal_rel_model_parse(const char *name, causal_rel_model *out, cw_err *err) CW_MUST_CHECK;

typedef struct causal_prop_opts {
    causal_prop_method method;
    uint32_t max_rank;          /* ranks estimated, 2..CAUSAL_MAX_RANK (default 10) */
    uint32_t n_boot;            /* bootstrap replicates (default 200; 0 = no intervals) */
    uint32_t n_buckets;         /* sessions are bootstrapped in this many buckets (default 1000) */
    double ci_level;            /* default 0.95 */
    uint64_t seed;              /* bootstrap and MLP initialisation */
    causal_rel_model rel_model; /* REM (default LINEAR) */
    uint32_t max_iter;   /* EM / coordinate-ascent iterations (default 1000 REM, 5000 else) */
    double tol;          /* stop when the largest change of theta is below (default 1e-6) */
    uint32_t mlp_hidden; /* MLP width (default 16) */
    cw_progress progress;
    /* REM only, diagnostic: if non-NULL, P(R=1) of every pair (s->n_pairs entries, in
     * (0, 1)), held fixed while only theta is re-estimated. With the simulator's true
     * relevance this bounds what the relevance model costs (the "oracle" row). */
    const double *rel_fixed;
    /* REM only: features appended to the pair features from the logged ranker scores
     * (i_score), so the relevance model sees what the ranker saw (rank is a function of the
     * score and of the query's other candidates: without them theta absorbs relevance).
     * CAUSAL_REL_CONTEXT_NONE (0, default): pair features only. */
    uint32_t rel_context;
} causal_prop_opts;

#define CAUSAL_REL_CONTEXT_NONE 0u  /* pair features only */
#define CAUSAL_REL_CONTEXT_SCORE 1u /* + the pair's logged score (mean over its impressions) */
#define CAUSAL_REL_CONTEXT_QUERY 2u /* + score, query max and mean score, gap to the max */
/* "none", "score", "query". CW_EINVAL otherwise. */
int causal_rel_context_parse(const char *name, uint32_t *out, cw_err *err) CW_MUST_CHECK;
causal_prop_opts causal_prop_opts_default(causal_prop_method m);

typedef struct causal_propensity {
    causal_prop_method method;
    uint32_t n_ranks;
    double ratio[CAUSAL_MAX_RANK]; /* theta_k / theta_1 (trust: alpha_k / alpha_1) */
    double ci_lo[CAUSAL_MAX_RANK]; /* bootstrap percentile interval of ratio (NAN if none) */
    double ci_hi[CAUSAL_MAX_RANK];
    double theta[CAUSAL_MAX_RANK];       /* absolute theta_k where identified (REM), else NAN */
    double alpha[CAUSAL_MAX_RANK];       /* trust: alpha_k / alpha_1 (= ratio) */
    double beta[CAUSAL_MAX_RANK];        /* trust: beta_k - (alpha_k/alpha_1) beta_1, the part of
                                            beta identified under gamma -> a gamma + b (0 at k=1) */
    uint64_t clicks_at[CAUSAL_MAX_RANK]; /* clicks used per rank */
    uint64_t shown_at[CAUSAL_MAX_RANK];  /* impressions used per rank */
    uint64_t n_sessions;                 /* sessions used */
    uint64_t n_items;                    /* items used */
    uint32_t n_iter;                     /* iterations run (0 for closed forms) */
    bool converged;
    double loglik;  /* final objective (method-specific), NAN if none */
    double seconds; /* fit time without bootstrap */
    uint32_t n_boot;
    char note[512]; /* diagnostics in words (which sessions were used, ...) */
} causal_propensity;

/* Fits propensities from s. A method that cannot identify them from these logs refuses
 * with CW_EINVAL and a message saying why (randomization without RandTop/swap sessions;
 * harvesting without a (query, doc) shown at two ranks, e.g. a single deterministic
 * ranker; a rank never connected to rank 1). Errors: CW_EINVAL, CW_ENUMERIC (singular
 * IRLS system, quoting LAPACKE's index), CW_ENOMEM, CW_EINTR. */
int causal_propensity_fit(const causal_sessions *s, const causal_prop_opts *opts,
                          causal_propensity *out, cw_err *err) CW_MUST_CHECK;
#define CAUSAL_MAX_CONTEXTS 256u        /* contexts of causal_propensity_fit_contexts */
#define CAUSAL_CONTEXT_NONE 0xffffffffu /* a session left out of every context */
/* Propensities per context (e.g. a query class), any method: session i belongs to
 * context ctx[i] (0..n_ctx-1, or CAUSAL_CONTEXT_NONE); out[c] (n_ctx entries) gets what
 * causal_propensity_fit would give on context c's sessions alone, with its own bootstrap
 * intervals. A context the method cannot identify (no randomized sessions, no click at
 * rank 1, no pair at two ranks, no session at all, ...) gets NAN ratios, n_sessions 0 and
 * the reason in its note. Errors: CW_EINVAL (n_ctx 0 or over CAUSAL_MAX_CONTEXTS, a
 * context id out of range, bad max_rank, options the log cannot serve, e.g. a feature
 * model without features), CW_ENOMEM, CW_EINTR. */
int causal_propensity_fit_contexts(const causal_sessions *s, const causal_prop_opts *opts,
                                   const uint32_t *ctx, uint32_t n_ctx, causal_propensity *out,
                                   cw_err *err) CW_MUST_CHECK;
/* The result as a JSON object appended to out: method, ranks [{rank, ratio, ci_lo,
 * ci_hi, inverse_weight, clicks, impressions}], diagnostics. Errors: CW_ENOMEM. */
int causal_propensity_to_json(const causal_propensity *p, cw_buf *out, cw_err *err) CW_MUST_CHECK;
/* Reads the ratios theta_k/theta_1, k = 1..*n, back from a file written by
 * causal_propensity_to_json ({"ranks":[{"rank","ratio"},...]}) or from a plain JSON array of
 * ratios; at most max of them; ratio and *n are written only on success. Errors: CW_EIO
 * (unreadable: the file and the reason),
 * CW_EPARSE (file:line:column of bad JSON, a rank out of order, a ratio that is not a
 * finite number > 0, none or more than max). */
int causal_propensity_read_ratios(const char *path, double *ratio, uint32_t max, uint32_t *n,
                                  cw_err *err) CW_MUST_CHECK;
/* Max over k = 2..n of |est_k - truth_k| / truth_k for ratios theta_k/theta_1. */
double causal_prop_max_rel_error(const double *est_ratio, const double *true_ratio, uint32_t n);

/* Streaming randomization counts, for logs too big to hold (10^7 sessions): per bucket
 * and rank, clicks and impressions of RandTop-n and swap sessions. */
typedef struct causal_rand_counts causal_rand_counts;
int causal_rand_counts_new(uint32_t max_rank, uint32_t n_buckets, causal_rand_counts **out,
                           cw_err *err) CW_MUST_CHECK;
void causal_rand_counts_free(causal_rand_counts *c);
/* Adds the RandTop/swap sessions of s (bucket = running session number mod n_buckets). */
void causal_rand_counts_add(causal_rand_counts *c, const causal_sessions *s);
/* Estimate + bootstrap from the counts (opts: n_boot, ci_level, seed). Errors: as fit. */
int causal_rand_counts_finish(const causal_rand_counts *c, const causal_prop_opts *opts,
                              causal_propensity *out, cw_err *err) CW_MUST_CHECK;

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
    double tau;     /* PL temperature, finite and > 0 (PL only) */
    uint32_t top_n; /* RandTop-n: number of top results shuffled, >= 1 (RANDTOPN only) */
    double epsilon; /* exploration probability in [0, 1] (EPSGREEDY only) */
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
int causal_rpol_marginals(const causal_rpol *pol, const double *scores, uint32_t n, uint32_t k,
                          double *marg, cw_err *err) CW_MUST_CHECK;

/* Monte-Carlo marginals of any policy from m samples (METHODS.md section 6):
 * marg[d*k+j] = share of samples with d at slot j+1; se (may be NULL) gets the standard
 * error sqrt(p(1-p)/m). 1 <= m <= CAUSAL_PL_MAX_MC_SAMPLES. O(m n log n).
 * Errors: causal_rpol_check's, CW_EINVAL (m out of range), CW_ENOMEM. */
int causal_rpol_marginals_mc(const causal_rpol *pol, const double *scores, uint32_t n, uint32_t k,
                             uint32_t m, cw_rng *rng, double *marg, double *se,
                             cw_err *err) CW_MUST_CHECK;

/* Stochastic logging for the server (issue 7 item 1): draws the shown top-k list of n
 * ranked candidates and everything an impression must log about it.
 * order[j] = candidate shown at rank j+1 (j < k); propensity[j] = pi(order[j] at rank j+1),
 * exact (closed form, or the PL subset DP for n <= CAUSAL_PL_EXACT_MAX_ITEMS) or else
 * Monte-Carlo from mc_samples draws (*mc_used = mc_samples; 0 when exact);
 * *log_prob = log pi(order[0..k)) exactly. Log policy name, tau, seed and mc_used with it.
 * Errors: causal_rpol_check's, CW_EINVAL (mc_samples 0 when Monte-Carlo is needed),
 * CW_ENOMEM. */
int causal_rpol_draw(const causal_rpol *pol, const double *scores, uint32_t n, uint32_t k,
                     uint32_t mc_samples, cw_rng *rng, uint32_t *order, double *propensity,
                     double *log_prob, uint32_t *mc_used, cw_err *err) CW_MUST_CHECK;

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
    size_t n;              /* impressions */
    uint32_t k;            /* slots per impression, 1..CAUSAL_OPE_MAX_SLOTS */
    const uint32_t *group; /* [n] bootstrap unit (query) < n_groups; NULL = impression */
    uint32_t n_groups;
    const double *lambda;      /* [k] metric rank weights (required) */
    const uint8_t *click;      /* [n*k] clicks 0/1 (required) */
    const double *lpb_prefix;  /* [n*k] log pi_b(a_i(1..j+1)); NaN = not logged */
    const double *lpe_prefix;  /* [n*k] log pi_e(a_i(1..j+1)); -inf allowed */
    const double *pb_marg;     /* [n*k] pi_b(a_i(j) at j); NaN = not logged */
    const double *pe_marg;     /* [n*k] pi_e(a_i(j) at j) */
    const double *rho_b;       /* [n*k] sum_m pi_b(a_i(j) at m) theta_m */
    const double *omega_e;     /* [n*k] sum_m pi_e(a_i(j) at m) lambda_m theta_m */
    const double *q_hat;       /* [n*k] lambda_j * predicted P(click) of a_i(j) at j */
    const double *dm_e;        /* [n] sum_{d,j} pi_e(d at j) lambda_j qhat(d, j) */
    const double *cdr_q;       /* [n*k] Qhat_j(x_i, a_i(1..j)) */
    const double *cdr_v;       /* [n*k] sum_a pi_e(a | a_i(1..j-1)) Qhat_j(x_i, a_i(1..j-1), a) */
    const double *unsupported; /* [n] target metric mass on (doc, slot) pairs where
                                  pi_b < support floor, as a share of the target's total
                                  lambda mass; NULL = unknown */
} causal_ope_data;

typedef struct causal_ope_opts {
    uint32_t n_boot;        /* bootstrap replicates over groups, 0 = none (default 10000) */
    uint64_t seed;          /* bootstrap RNG seed */
    double alpha;           /* 1 - confidence level, default 0.05 */
    double max_unsupported; /* warn above this unsupported share (default 0.01) */
} causal_ope_opts;

causal_ope_opts causal_ope_opts_default(void);

#define CAUSAL_OPE_WARN_BYTES 256u

typedef struct causal_ope_result {
    causal_est est;
    double value;            /* point estimate */
    double se;               /* analytic standard error (delta method for snips) */
    double ci_lo, ci_hi;     /* analytic Gaussian interval, value -/+ z se */
    double boot_lo, boot_hi; /* bootstrap percentile interval; NaN when n_boot = 0 */
    double n_eff;            /* (sum w)^2 / sum w^2; slot-level: the smallest slot's */
    double w_max, w_mean;    /* of the same weights; w_mean ~ 1 when propensities are right */
    double unsupported;      /* mean unsupported share (NaN = unknown); warned about for the
                                estimators that weight by slot or ranking probabilities */
    size_t n;                /* impressions used */
    char warning[CAUSAL_OPE_WARN_BYTES]; /* "" or "; "-separated warnings */
} causal_ope_result;

/* Runs one estimator. Errors: CW_EINVAL when an array it needs is NULL (the message
 * says which input is missing, why the estimator needs it and which estimators stay
 * valid), when a logged propensity is NaN (not logged), 0 or > 1 for a shown item, or a
 * weight is not finite (message names the impression and slot); CW_ELIMIT (k or n_boot
 * over the limits); CW_ENOMEM; CW_EINTR (SIGINT/SIGTERM during the bootstrap).
 * O(n k) plus O(n_boot n_groups k). */
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
    const uint32_t *shown;    /* [k] logged ranking */
    const double *lpb_prefix; /* [k] logged prefix log-probs, or NULL (not logged) */
    const double *pb_shown;   /* [k] logged pi_b(shown[j] at j), or NULL */
    const double *pb_marg;    /* [n_cand*k] full logging marginals, or NULL (no pbm/support) */
    const causal_rpol *target;
    const double *target_scores; /* [n_cand] */
    const double *pe_marg;       /* [n_cand*k] target marginals, or NULL: computed (exact;
                                    PL with n_cand > CAUSAL_PL_EXACT_MAX_ITEMS fails) */
    const double *theta;         /* [k] examination probabilities, or NULL (no pbm) */
    const double *q_click;       /* [n_cand*k] model P(click | d at j), or NULL (no dm/dr/cdr) */
    double support_floor;        /* pi_b below this counts as no support (e.g. 1e-6) */
} causal_ope_row;

/* Fills row i of every non-NULL output array of *d (cast away: the caller owns them and
 * passes them writable in `out`) from *row, computing the target's prefix
 * probabilities, marginals, conditionals and the model terms. O(k n_cand) plus the
 * target marginals when pe_marg is NULL.
 * Errors: causal_rpol_*'s (bad ranking, scores), CW_ENOMEM. */
typedef struct causal_ope_arrays {
    double *lpb_prefix, *lpe_prefix, *pb_marg, *pe_marg, *rho_b, *omega_e, *q_hat, *dm_e, *cdr_q,
        *cdr_v, *unsupported;
} causal_ope_arrays;
int causal_ope_fill_row(const causal_ope_row *row, uint32_t k, const double *lambda, size_t i,
                        causal_ope_arrays *out, cw_err *err) CW_MUST_CHECK;
/* ==== end of Plackett-Luce / OPE section ==== */

/* ---- logged policy names (causal/sessions.c) -------------------------------
 * A page drawn by a stochastic logging policy is logged as "RANKER@DRAW": RANKER is the
 * name its deterministic page is logged under (ranker, retrieval and fusion: "bm25",
 * "hybrid(weighted,w=0.3)", "model+hybrid"; the model version has its own column), DRAW
 * the drawing policy as causal_rpol_parse reads it ("pl:0.5", "randtop:10",
 * "egreedy:0.1"): the TARGET@RAND form `causeway ope --policy` takes. Older logs and the
 * simulator say "pl", "randtop-N", "swap", "deterministic"; both forms are read. */

/* What a logged policy name says. */
typedef struct causal_policy_name_info {
    causal_policy kind; /* session class; UNKNOWN for a deterministic ranker's name ("bm25"),
                           an e-greedy draw, or a name from elsewhere */
    uint32_t param;     /* RANDTOP: n; else 0 */
    bool has_draw;      /* draw is known: "RANKER@DRAW" or "randtop-N" (an old "pl" has no
                           temperature in its name: use the impression's temperature) */
    causal_rpol draw;   /* the drawing policy and its parameters when has_draw */
    size_t ranker_len;  /* name[0, ranker_len) is RANKER; 0 = not said (old names) */
} causal_policy_name_info;

/* Classifies a logged policy name (above). The suffix after the last '@' is a draw
 * when its word (before ':') is det, pl, randtop or egreedy; any other name, '@' or
 * not, is a foreign name of kind UNKNOWN. O(length).
 * Errors: CW_EINVAL (name NULL or empty), CW_EPARSE (a draw suffix that does not parse,
 * or nothing before the '@'; the message quotes the name). *out is written on success. */
int causal_policy_name_parse(const char *name, causal_policy_name_info *out,
                             cw_err *err) CW_MUST_CHECK;

/* Writes "RANKER@DRAW" for a page drawn by draw over ranker's scores into buf, every
 * number exact (reads back through causal_rpol_parse as the same double), so two
 * settings that draw differently never share a name. draw->kind must not be DET.
 * Errors: CW_EINVAL (empty ranker, ranker containing '@', DET draw), CW_ELIMIT (the name
 * does not fit buf or is over CAUSAL_MAX_NAME_BYTES); buf is unchanged on error. */
int causal_policy_name_format(const char *ranker, const causal_rpol *draw, char *buf,
                              size_t buf_bytes, cw_err *err) CW_MUST_CHECK;

/* What causal_sessions_load_log makes of one impression's policy name and model version
 * (model_version NULL = none): *info (causal_policy_name_parse) and, in ranker, the key
 * its sessions are grouped by as one logging ranker: the model version, else the policy
 * name; for a drawn page ("RANKER@DRAW") its name, plus " (model VERSION)" with a model
 * version, so that a drawn page is never the same ranker as the deterministic page of
 * the same model nor as a page drawn over another ranker. Readers of the log that build
 * sessions themselves call this to agree with the loader.
 * Errors: those of causal_policy_name_parse, CW_ELIMIT (key does not fit ranker_bytes;
 * CAUSAL_RANKER_KEY_BYTES fits every key the loader accepts). */
#define CAUSAL_RANKER_KEY_BYTES (CAUSAL_MAX_NAME_BYTES + 1)
int causal_policy_name_ranker(const char *policy, const char *model_version,
                              causal_policy_name_info *info, char *ranker, size_t ranker_bytes,
                              cw_err *err) CW_MUST_CHECK;

#endif /* CAUSEWAY_CAUSAL_CAUSAL_H */
