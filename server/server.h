/* server/server.h: the HTTP search server (libmicrohttpd): routes, request and
 * response JSON, metrics, hot reload; logs impressions and events through causal/'s
 * log store on a writer thread. */
#ifndef CAUSEWAY_SERVER_SERVER_H
#define CAUSEWAY_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "causal/causal.h"
#include "common/cw.h"
#include "index/index.h"
#include "ranker/ranker.h"

/* ---- limits on external input (docs/api.md) ----------------------------- */
#define SRV_DEFAULT_MAX_BODY_BYTES ((size_t)1 << 20) /* request body, configurable */
#define SRV_MAX_BODY_BYTES_CAP ((size_t)64 << 20)    /* largest max_body_bytes accepted */
#define SRV_MAX_QUERY_BYTES 1024u /* query text after decoding (issue 3; the index allows more) */
#define SRV_MAX_K IDX_MAX_K       /* k in 1..SRV_MAX_K, offset + k too */
#define SRV_DEFAULT_K 10u
#define SRV_MAX_EVENTS 10000u    /* events in one POST /events batch */
#define SRV_MAX_URL_BYTES 8192u  /* request target */
#define SRV_DEFAULT_QUEUE 32768u /* writer queue capacity, jobs */
#define SRV_SNIPPET_BYTES 240u   /* source bytes per snippet */

/* ---- configuration -------------------------------------------------------- */

typedef struct srv_config {
    const char *index_dir;   /* required */
    const char *db_path;     /* required: the causal log */
    const char *model_path;  /* ranker model, NULL = BM25 order */
    const char *bind;        /* IPv4 or IPv6 literal (::1, ::), default 127.0.0.1 */
    uint16_t port;           /* 0 = ephemeral (see srv_port) */
    unsigned threads;        /* MHD pool threads, default 2 */
    size_t max_body_bytes;   /* default SRV_DEFAULT_MAX_BODY_BYTES */
    unsigned queue_capacity; /* writer queue, jobs; default SRV_DEFAULT_QUEUE */
    unsigned timeout_s;      /* idle/slow client timeout, default 15 */
    const char *admin_token; /* if set, admin routes need "Authorization: Bearer TOKEN";
                                if NULL, admin routes accept loopback clients only */
    causal_sync sync;        /* durability of acknowledged events (docs/logs.md) */
    unsigned commit_batch;   /* most jobs per group commit, default 32768 */
    size_t cache_bytes;      /* /search result cache (per index+model), default 64 MiB, 0 = off */
    const char *logging_policy; /* how each shown page is drawn and logged (issue 7):
                                   "det" (default, the ranked order), "pl:TAU" (Plackett-Luce
                                   over the page's scores), "randtop:N", "egreedy:EPS"; see
                                   causal_rpol_parse. Stochastic pages log per-item
                                   propensities, the list log-probability, tau and the seed */
    unsigned mc_samples;        /* Monte-Carlo samples for PL pages over 20 items, default 10000 */
    const char *retrieval;      /* candidate generation (issue 6): "bm25", "hybrid" (BM25 + dense
                                   fused by RRF; needs dense.enc + dense.hnsw in the index) or
                                   NULL/"auto" (default: hybrid when the index holds dense files) */
    const char *fusion;         /* hybrid fusion: "rrf" (default, NULL) or "weighted" */
    double dense_weight;        /* weight of the dense run in hybrid fusion, [0, 1], default 0.5 */
    double rrf_k;               /* RRF constant k, (0, 1e6], default 60 */
} srv_config;

srv_config srv_config_default(void);

/* Reads a JSON config file ({"index","db","model","bind","port","threads",
 * "max_body_bytes","queue_capacity","timeout_s","cache_mb","admin_token","sync":"full"|"normal",
 * "logging_policy","mc_samples","retrieval","fusion","dense_weight","rrf_k"})
 * over cfg; string fields then point into *owned, released with srv_config_store_free
 * (srv_new copies what it keeps). Unknown keys are errors.
 * Errors: CW_ENOTFOUND, CW_EIO, CW_EPARSE (path:line:col or path: key), CW_EINVAL. */
typedef struct srv_config_store srv_config_store;
int srv_config_load(const char *path, srv_config *cfg, srv_config_store **owned,
                    cw_err *err) CW_MUST_CHECK;
void srv_config_store_free(srv_config_store *s);

/* ---- the server ----------------------------------------------------------- */

typedef struct srv_server srv_server;

/* Opens the index (mmap), the model if any, the log (migrating it), starts the
 * writer thread and the libmicrohttpd daemon (internal thread pool on epoll).
 * Keeps copies of every config string. Errors: from idx_index_open, rank_model_load,
 * causal_log_open; CW_EINVAL (bad bind address or config), CW_EIO (cannot listen).
 * Stop with srv_free. Call from one thread; the handlers run on MHD's threads. */
int srv_new(const srv_config *cfg, srv_server **out, cw_err *err) CW_MUST_CHECK;
/* The bound TCP port (the real one when cfg->port was 0). */
uint16_t srv_port(const srv_server *s);
/* Loads index and model again from the configured paths and swaps them in atomically;
 * requests in flight finish on the old ones (reference counted). On failure the old
 * ones keep serving and err says why. Thread-safe (serialised). */
int srv_reload(srv_server *s, cw_err *err) CW_MUST_CHECK;
/* Graceful stop: stop accepting, finish requests in flight, drain and commit the
 * writer queue, close the log. NULL is a no-op. */
void srv_free(srv_server *s);

/* ---- request parsing (pure functions; the fuzz harness drives these) ----- */

/* Strict percent-decoding of s[0..n) into out (which needs n + 1 bytes; NUL-terminated):
 * "%XY" with two hex digits, '+' -> ' ' when plus_is_space, then UTF-8 validation.
 * Errors: CW_EPARSE ("bad percent-encoding at byte N" / "invalid UTF-8 at byte N"). */
int srv_percent_decode(const char *s, size_t n, bool plus_is_space, char *out, size_t *out_len,
                       cw_err *err) CW_MUST_CHECK;

/* A validated search request; query points into caller-owned storage. */
typedef struct srv_search_req {
    const char *query; /* UTF-8, 1..SRV_MAX_QUERY_BYTES bytes, NUL-terminated */
    size_t query_len;
    uint32_t k;
    uint32_t offset;
    bool explain;
    const char *qid;    /* optional query id for joins, or NULL */
    const char *policy; /* optional logging policy of this request ("pl:0.5", "det", ...,
                           causal_rpol_parse), overriding the server's; NULL = server's */
    /* optional "bm25" or "hybrid" for this request; NULL = server's (hybrid on a server
     * without dense files is an error) */
    const char *retrieval;
    const char *fusion;    /* optional "rrf" or "weighted"; NULL = server's */
    bool has_dense_weight; /* dense_weight was given */
    double dense_weight;   /* [0, 1]; resolved to the server's when not given */
    double rrf_k;          /* the server's RRF k, resolved by the route */
} srv_search_req;

/* Checks the fields common to GET and POST. Errors: CW_EINVAL (empty query, k or offset
 * out of range), CW_ELIMIT (query over SRV_MAX_QUERY_BYTES), CW_EPARSE (invalid UTF-8). */
int srv_search_req_check(const srv_search_req *r, cw_err *err) CW_MUST_CHECK;

/* Parses a decimal integer option ("k", "offset") strictly into [lo, hi].
 * Errors: CW_EINVAL naming the parameter. */
int srv_parse_uint(const char *name, const char *s, uint32_t lo, uint32_t hi, uint32_t *out,
                   cw_err *err) CW_MUST_CHECK;

/* Parses a POST /search body {"query","k","offset","explain","qid","policy","retrieval",
 * "fusion","dense_weight"}.
 * Strings of *out point into *arena. Errors: CW_EPARSE (bad JSON: line:col; wrong member types),
 * CW_EINVAL/CW_ELIMIT as srv_search_req_check. */
int srv_parse_search_body(const char *body, size_t len, cw_arena *arena, srv_search_req *out,
                          cw_err *err) CW_MUST_CHECK;

/* One structurally invalid event of a POST /events body. */
typedef struct srv_event_problem {
    size_t index;
    char reason[CAUSAL_MAX_REASON_BYTES];
} srv_event_problem;

/* Parses a POST /events body: a JSON array of events, or {"events":[...]}; each event
 * {"impression_id": int, "doc_id": str, "position": int >= 1, "type": "click"|"view"|
 * "dwell"|"skip", "ts": ms (optional, default now_ms), "value_ms": int (dwell),
 * "event_id": str (optional client id for idempotent retries)}. Strings point into
 * arena; *events is arena memory. Every bad event is listed in problems (arena memory,
 * *n_problems entries); then CW_EINVAL is returned.
 * Errors: CW_EPARSE (not JSON / not an array), CW_ELIMIT (> SRV_MAX_EVENTS), CW_EINVAL
 * (problems), CW_ENOMEM. */
int srv_parse_events_body(const char *body, size_t len, int64_t now_ms, cw_arena *arena,
                          causal_event **events, size_t *n_events, srv_event_problem **problems,
                          size_t *n_problems, cw_err *err) CW_MUST_CHECK;

/* Appends s[0..n) to b as a JSON string literal (quotes, escapes of '"', '\\', control
 * characters). s must be valid UTF-8. Errors: CW_ENOMEM. */
int srv_json_string(cw_buf *b, const char *s, size_t n) CW_MUST_CHECK;

#endif /* CAUSEWAY_SERVER_SERVER_H */
