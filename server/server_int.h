/* server/server_int.h: structures shared by the files of server/ (the writer queue,
 * the reference-counted serving state, metrics). Not a public interface. */
#ifndef CAUSEWAY_SERVER_SERVER_INT_H
#define CAUSEWAY_SERVER_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "server/server.h"

/* ---- metrics -------------------------------------------------------------- */

enum {
    SRV_ROUTE_SEARCH,
    SRV_ROUTE_EVENTS,
    SRV_ROUTE_DOCS,
    SRV_ROUTE_HEALTHZ,
    SRV_ROUTE_READYZ,
    SRV_ROUTE_METRICS,
    SRV_ROUTE_RELOAD,
    SRV_ROUTE_PAGE,   /* GET /: the search page (server/page.c) */
    SRV_ROUTE_REPORT, /* GET /report: the live click report (server/page.c) */
    SRV_ROUTE_OTHER,  /* unknown routes and methods */
    SRV_N_ROUTES
};

#define SRV_N_BUCKETS 13 /* latency histogram upper bounds, seconds; last is +Inf */
#define SRV_N_CODES 11   /* HTTP status codes counted separately; last is "other" */

typedef struct srv_metrics {
    _Atomic uint64_t requests[SRV_N_ROUTES][SRV_N_CODES];
    _Atomic uint64_t latency_bucket[SRV_N_ROUTES][SRV_N_BUCKETS]; /* non-cumulative */
    _Atomic uint64_t latency_sum_us[SRV_N_ROUTES];
    _Atomic uint64_t impressions_logged; /* committed */
    _Atomic uint64_t impressions_failed; /* dropped by a failed write (counted, logged) */
    _Atomic uint64_t events_written;     /* committed, duplicates excluded */
    _Atomic uint64_t events_duplicate;   /* retries recognised by event_id */
    _Atomic uint64_t events_rejected;    /* events in rejected batches */
    _Atomic uint64_t queue_full;         /* 503 answers for a full writer queue */
    _Atomic uint64_t commits;            /* group commits */
    _Atomic uint64_t commit_failures;
    _Atomic uint64_t reloads_ok;
    _Atomic uint64_t reloads_failed;
    _Atomic uint64_t cache_hits;
    _Atomic uint64_t cache_misses;
} srv_metrics;

/* ---- writer --------------------------------------------------------------- */

typedef enum srv_job_kind { SRV_JOB_IMPRESSION, SRV_JOB_EVENTS } srv_job_kind;

/* One unit of work for the writer thread. An impression job is one allocation holding
 * the impression, its items, feature vectors and strings; the writer frees it. An events
 * job lives in the request arena; the request thread waits for `done`. */
typedef struct srv_job {
    srv_job_kind kind;
    causal_impression imp;      /* SRV_JOB_IMPRESSION */
    const causal_event *events; /* SRV_JOB_EVENTS */
    size_t n_events;
    causal_event_reject *rejects; /* n_events entries */
    size_t n_rejects;
    size_t n_duplicates;
    int result; /* CW_OK or the failure */
    cw_err err;
    bool done;                 /* guarded by the writer mutex */
    void (*notify)(void *ctx); /* called by the writer once done (resumes the suspended
                                  connection); NULL = the request uses srv_writer_wait */
    void *notify_ctx;
} srv_job;

typedef struct srv_writer {
    causal_log *log;
    srv_metrics *metrics;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t has_work;
    pthread_cond_t job_done;
    srv_job **ring;
    unsigned cap, head, count;
    unsigned commit_batch;
    bool stopping;
    causal_sync sync;           /* configured durability of commits holding events */
    causal_sync cur_sync;       /* the mode the connection is in */
    void (**notify_fn)(void *); /* commit_batch slots, writer thread only */
    void **notify_ctx;
} srv_writer;

/* Starts the writer thread on an open log (the writer does not own it).
 * Errors: CW_ENOMEM, CW_EIO (thread creation). */
int srv_writer_start(srv_writer *w, causal_log *log, causal_sync sync, unsigned capacity,
                     unsigned commit_batch, srv_metrics *metrics, cw_err *err) CW_MUST_CHECK;
/* Non-blocking enqueue. Errors: CW_EBUSY (queue full: the caller answers 503). The
 * writer owns an impression job from CW_OK on; on CW_EBUSY the caller keeps it. */
int srv_writer_push(srv_writer *w, srv_job *job, cw_err *err) CW_MUST_CHECK;
/* Blocks until the writer committed (or failed) an events job pushed before. */
void srv_writer_wait(srv_writer *w, srv_job *job);
unsigned srv_writer_depth(srv_writer *w);
/* Drains every queued job, commits, joins the thread. */
void srv_writer_stop(srv_writer *w);

/* ---- browser pages (server/page.c) ---------------------------------------- */

/* The search page HTML (static storage, *len bytes without the NUL). */
const char *srv_page_html(size_t *len);
/* Appends the HTML report of the log at db_path (counts, CTR by position, latest clicks)
 * to out, read through a separate read-only connection. Errors: those of
 * report_log_stats_read and report_render. */
int srv_report_live(const char *db_path, cw_buf *out, cw_err *err) CW_MUST_CHECK;

/* ---- result cache (server/cache.c) ---------------------------------------- */

/* Thread-safe bounded map from bytes to bytes. NULL (max_bytes 0 or no memory) is a
 * valid, always-missing cache. */
typedef struct srv_cache srv_cache;
srv_cache *srv_cache_new(size_t max_bytes);
void srv_cache_free(srv_cache *c);
/* On a hit *val is a new malloc'd copy (free()). */
bool srv_cache_get(srv_cache *c, const void *key, size_t klen, void **val, size_t *vlen);
/* Stores a copy; entries over the shard budget are not stored. */
void srv_cache_put(srv_cache *c, const void *key, size_t klen, const void *val, size_t vlen);

#endif /* CAUSEWAY_SERVER_SERVER_INT_H */
