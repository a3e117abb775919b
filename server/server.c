/* server/server.c: the libmicrohttpd daemon (internal thread pool on epoll), the route
 * table, the request lifecycle, error JSON, metrics, hot reload of index and model, and
 * graceful shutdown. Search runs parse -> validate -> retrieve -> rank -> log impression
 * -> respond; events are acknowledged only after their COMMIT (server/writer.c). */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/server_int.h"

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT_T;
#else
typedef enum MHD_Result MHD_RESULT_T;
#endif

/* Features come from ranker/'s shared extractor (feature set cw-text-v1 plus the static
 * fields a loaded model names), the code `causeway rank` runs offline: the vector logged
 * with an impression is the one the model scored (METHODS.md section 8 point 1). */
#define MAX_SERVER_FEATURES (RANK_TEXT_FEATURES + RANK_MAX_STATIC_FEATURES)
#define RERANK_WINDOW 100u /* candidates a model reranks (METHODS.md section 8 point 3) */
/* Forward store of the extractor (4 bytes per token), built at (re)load when a model is
 * loaded: coverage and proximity of 100 candidates scan token hashes instead of
 * re-analysing stored text per request. Documents beyond the budget are analysed per call. */
#define FORWARD_MAX_TOKENS ((size_t)1 << 25)
/* Without a model the store also keeps token byte ranges (12 bytes per token, so 48 MiB at
 * most; 4 M tokens take ~1 s to analyse at start-up and reload, whatever the corpus
 * size): the ten shown texts of an uncached /search then need no analysis for their
 * features nor their snippets. Documents beyond it are analysed per request as before. */
#define FORWARD_SPAN_MAX_TOKENS ((size_t)1 << 22)

/* The span store's budget for ix: all of the corpus or nothing. A store that covers only
 * the first documents of a large index would cost its full analysis at every start-up and
 * reload (0.7 s CPU at the budget) for the few shown documents it holds, and issue 3 wants
 * a 1M-document index serving in well under a second: such an index analyses its shown
 * texts per request as before. */
static size_t span_store_budget(const idx_index *ix)
{
    idx_field_stats ti, tx;
    idx_index_field_stats(ix, IDX_FIELD_TITLE, &ti);
    idx_index_field_stats(ix, IDX_FIELD_TEXT, &tx);
    /* title and text tokens plus one title/text gap per document */
    uint64_t need = ti.total_terms + tx.total_terms + idx_index_n_docs(ix);
    return need <= FORWARD_SPAN_MAX_TOKENS ? FORWARD_SPAN_MAX_TOKENS : 0;
}

/* ---- serving state: index + model, reference counted ---------------------- */

/* Idle per-thread objects of one kind (one per concurrent request at most), guarded by
 * srv_state.pool_mu. */
typedef struct obj_pool {
    void **items;
    size_t n, cap;
} obj_pool;

typedef struct srv_state {
    atomic_int refs;
    idx_index *ix;
    rank_model *model;    /* NULL = BM25 order */
    rank_features *fx;    /* the extractor: cw-text-v1 + the model's static fields */
    size_t n_feat;        /* rank_features_n(fx) */
    char feature_set[48]; /* logged feature-set name (unique per list of names) */
    size_t model_col[MAX_SERVER_FEATURES]; /* model feature j = extractor column model_col[j] */
    srv_cache *cache;                      /* results of this index + model; NULL = off */
    idx_dense *dn; /* the index's dense files (hybrid retrieval), NULL = BM25 only */
    char model_version[24];
    pthread_mutex_t pool_mu;
    obj_pool analyzers; /* idle idx_analyzer of ix */
    obj_pool searchers; /* idle idx_hnsw_searcher of dn */
} srv_state;

static void state_free(srv_state *st)
{
    if (!st) {
        return;
    }
    for (size_t i = 0; i < st->analyzers.n; i++) {
        idx_analyzer_free(st->analyzers.items[i]);
    }
    free(st->analyzers.items);
    for (size_t i = 0; i < st->searchers.n; i++) {
        idx_hnsw_searcher_free(st->searchers.items[i]);
    }
    free(st->searchers.items);
    pthread_mutex_destroy(&st->pool_mu);
    srv_cache_free(st->cache);
    rank_model_free(st->model);
    rank_features_free(st->fx);
    idx_dense_close(st->dn); /* after its searchers and the extractor that use it */
    idx_index_close(st->ix);
    free(st);
}

static void state_release(srv_state *st)
{
    if (st && atomic_fetch_sub(&st->refs, 1) == 1) {
        state_free(st);
    }
}

/* Candidate generation of a server (srv_config.retrieval). */
enum { RETRIEVAL_AUTO, RETRIEVAL_BM25, RETRIEVAL_HYBRID };

/* Loads index, dense files (per retrieval: AUTO opens them if present, HYBRID requires
 * them, BM25 skips them) and model into one reference-counted state, so a reload swaps
 * them together. */
static int state_load(const char *index_dir, const char *model_path, size_t cache_bytes,
                      int retrieval, srv_state **out, cw_err *err)
{
    srv_state *st = calloc(1, sizeof *st);
    if (!st) {
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    atomic_init(&st->refs, 1);
    pthread_mutex_init(&st->pool_mu, NULL);
    st->cache = srv_cache_new(cache_bytes);
    int rc = idx_index_open(index_dir, &st->ix, err);
    if (rc != CW_OK) {
        goto fail;
    }
    if (retrieval != RETRIEVAL_BM25) {
        rc = idx_dense_open(index_dir, &st->dn, err);
        if (rc == CW_ENOTFOUND && retrieval == RETRIEVAL_AUTO) {
            rc = CW_OK; /* no dense files: BM25 candidates */
        } else if (rc == CW_OK && idx_hnsw_n(idx_dense_hnsw(st->dn)) != idx_index_n_docs(st->ix)) {
            rc = cw_err_set(err, CW_ECORRUPT,
                            "%s: dense.hnsw holds %u vectors for %u documents (rebuild it: "
                            "causeway embed build)",
                            index_dir, idx_hnsw_n(idx_dense_hnsw(st->dn)),
                            (unsigned)idx_index_n_docs(st->ix));
        }
        if (rc != CW_OK) {
            goto fail;
        }
    }
    if (model_path) {
        char *text = NULL;
        size_t len = 0;
        rc = cw_file_read(model_path, RANK_MAX_MODEL_BYTES, &text, &len, err);
        if (rc != CW_OK) {
            goto fail;
        }
        /* The version logged with impressions is the content hash: two files with the
         * same bytes are the same model, a retrained file is a new version. */
        snprintf(st->model_version, sizeof st->model_version, "%016llx",
                 (unsigned long long)cw_hash64(text, len, 0));
        rc = rank_model_from_json(text, len, model_path, &st->model, err);
        free(text);
        if (rc != CW_OK) {
            goto fail;
        }
    }
    /* The model's "static:NAME" features name the stored fields the extractor reads. */
    const char *statics[RANK_MAX_STATIC_FEATURES];
    size_t n_static = 0, nm = st->model ? rank_model_n_features(st->model) : 0;
    for (size_t j = 0; j < nm; j++) {
        const char *name = rank_model_feature_name(st->model, j);
        if (strncmp(name, "static:", 7) == 0) {
            if (n_static == RANK_MAX_STATIC_FEATURES) {
                rc = cw_err_set(err, CW_EINVAL, "%s: more than %u static features", model_path,
                                RANK_MAX_STATIC_FEATURES);
                goto fail;
            }
            statics[n_static++] = name + 7;
        }
    }
    rc = rank_features_new_spans(st->ix, statics, n_static, NULL,
                                 st->model ? FORWARD_MAX_TOKENS : span_store_budget(st->ix),
                                 !st->model, &st->fx, err);
    if (rc != CW_OK) {
        goto fail;
    }
    if (st->dn) { /* dense_cos: cosine of query and document vectors (issue 6) */
        rc = rank_features_add_dense(st->fx, st->dn, err);
        if (rc != CW_OK) {
            goto fail;
        }
    }
    st->n_feat = rank_features_n(st->fx);
    uint64_t names_hash = 0;
    for (size_t i = 0; i < st->n_feat; i++) {
        const char *name = rank_features_name(st->fx, i);
        names_hash = cw_hash64(name, strlen(name) + 1, names_hash);
    }
    if (n_static == 0) {
        snprintf(st->feature_set, sizeof st->feature_set, "%s",
                 st->dn ? RANK_FEATURE_SET_DENSE : RANK_FEATURE_SET);
    } else { /* the log keeps one list of names per feature-set name */
        snprintf(st->feature_set, sizeof st->feature_set, "%s+%016llx", RANK_FEATURE_SET,
                 (unsigned long long)names_hash);
    }
    for (size_t j = 0; j < nm; j++) {
        const char *name = rank_model_feature_name(st->model, j);
        size_t i = 0;
        while (i < st->n_feat && strcmp(rank_features_name(st->fx, i), name) != 0) {
            i++;
        }
        if (i == st->n_feat) {
            rc = cw_err_set(err, CW_EINVAL,
                            "%s: the model's feature \"%s\" is not one the server extracts "
                            "(feature set %s, plus static:FIELD)",
                            model_path, name, RANK_FEATURE_SET);
            goto fail;
        }
        st->model_col[j] = i;
    }
    *out = st;
    return CW_OK;
fail:
    state_free(st);
    return rc;
}

/* An idle object of st's pool p, or NULL when none is idle (the caller makes one). */
static void *pool_take(srv_state *st, obj_pool *p)
{
    pthread_mutex_lock(&st->pool_mu);
    void *obj = p->n > 0 ? p->items[--p->n] : NULL;
    pthread_mutex_unlock(&st->pool_mu);
    return obj;
}

/* Parks obj in st's pool p; false (obj not kept: the caller frees it) without memory. */
static bool pool_give(srv_state *st, obj_pool *p, void *obj)
{
    pthread_mutex_lock(&st->pool_mu);
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 8;
        void **items = realloc(p->items, cap * sizeof *items);
        if (!items) {
            pthread_mutex_unlock(&st->pool_mu);
            return false;
        }
        p->items = items;
        p->cap = cap;
    }
    p->items[p->n++] = obj;
    pthread_mutex_unlock(&st->pool_mu);
    return true;
}

static int analyzer_take(srv_state *st, idx_analyzer **out, cw_err *err)
{
    idx_analyzer *a = pool_take(st, &st->analyzers);
    if (a) {
        *out = a;
        return CW_OK;
    }
    return idx_index_analyzer(st->ix, out, err);
}

static void analyzer_give(srv_state *st, idx_analyzer *a)
{
    if (!pool_give(st, &st->analyzers, a)) {
        idx_analyzer_free(a);
    }
}

/* A per-thread HNSW searcher of st's dense index (pooled like the analyzers). */
static int searcher_take(srv_state *st, idx_hnsw_searcher **out, cw_err *err)
{
    idx_hnsw_searcher *hs = pool_take(st, &st->searchers);
    if (!hs) {
        hs = idx_hnsw_searcher_new(idx_dense_hnsw(st->dn));
    }
    *out = hs;
    return hs ? CW_OK : cw_err_set(err, CW_ENOMEM, "out of memory");
}

static void searcher_give(srv_state *st, idx_hnsw_searcher *hs)
{
    if (!pool_give(st, &st->searchers, hs)) {
        idx_hnsw_searcher_free(hs);
    }
}

/* ---- the server ------------------------------------------------------------ */

struct srv_server {
    srv_config cfg;
    char *index_dir, *db_path, *model_path, *bind, *admin_token;
    struct MHD_Daemon *mhd;
    uint16_t port;
    causal_log *log;
    srv_writer writer;
    srv_metrics metrics;
    pthread_mutex_t state_mu; /* guards the pointer swap only */
    srv_state *state;
    pthread_mutex_t reload_mu; /* one reload at a time */
    atomic_int in_flight;
    atomic_bool stopping;
    causal_rpol logging; /* parsed cfg.logging_policy; DET = no randomisation */
    int retrieval;       /* RETRIEVAL_*, from cfg.retrieval */
    const char *fusion;  /* "rrf" or "weighted", validated cfg.fusion (static string) */
};

static srv_state *state_acquire(srv_server *s)
{
    pthread_mutex_lock(&s->state_mu);
    srv_state *st = s->state;
    atomic_fetch_add(&st->refs, 1);
    pthread_mutex_unlock(&s->state_mu);
    return st;
}

srv_config srv_config_default(void)
{
    return (srv_config){.bind = "127.0.0.1",
                        .port = 8080,
                        .threads = 2,
                        .max_body_bytes = SRV_DEFAULT_MAX_BODY_BYTES,
                        .queue_capacity = SRV_DEFAULT_QUEUE,
                        .timeout_s = 15,
                        .sync = CAUSAL_SYNC_FULL,
                        .commit_batch = 32768,
                        .cache_bytes = (size_t)64 << 20,
                        .mc_samples = 10000,
                        .dense_weight = 0.5,
                        .rrf_k = 60};
}

uint16_t srv_port(const srv_server *s)
{
    return s->port;
}

int srv_reload(srv_server *s, cw_err *err)
{
    pthread_mutex_lock(&s->reload_mu);
    srv_state *fresh = NULL;
    int rc = state_load(s->index_dir, s->model_path, s->cfg.cache_bytes, s->retrieval, &fresh, err);
    if (rc != CW_OK) {
        atomic_fetch_add(&s->metrics.reloads_failed, 1);
        pthread_mutex_unlock(&s->reload_mu);
        return cw_err_prefix(err, "reload failed, still serving the previous index and model: ");
    }
    pthread_mutex_lock(&s->state_mu);
    srv_state *old = s->state;
    s->state = fresh;
    pthread_mutex_unlock(&s->state_mu);
    state_release(old); /* freed when the last request using it finishes */
    atomic_fetch_add(&s->metrics.reloads_ok, 1);
    pthread_mutex_unlock(&s->reload_mu);
    return CW_OK;
}

/* ---- per-request context and responses ------------------------------------- */

typedef struct srv_req {
    cw_arena *arena;
    uint64_t t0_ns;
    int route;
    unsigned status;
    cw_buf body;
    bool too_large;
    srv_job *job; /* POST /events in flight: set while the connection is suspended */
} srv_req;

static const unsigned counted_codes[SRV_N_CODES - 1] = {200, 400, 401, 403, 404,
                                                        405, 413, 415, 500, 503};
static const double bucket_s[SRV_N_BUCKETS - 1] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                                   0.05,   0.1,   0.25,  0.5,   1.0,  2.5};
static const char *const route_names[SRV_N_ROUTES] = {
    "search",  "events",       "docs", "healthz", "readyz",
    "metrics", "admin_reload", "page", "report",  "other"};

static MHD_RESULT_T send_buf(struct MHD_Connection *conn, srv_req *rq, unsigned status, cw_buf *b,
                             const char *ctype)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(b->len, b->data ? b->data : (char *)"",
                                        b->data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        cw_buf_fini(b);
        return MHD_NO;
    }
    b->data = NULL;
    b->len = b->cap = 0;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (status == 503) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    }
    if (status == 401) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    }
    rq->status = status;
    MHD_RESULT_T ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* STYLE.md section 3: the one table from error codes to HTTP statuses. */
static unsigned http_status(int code)
{
    switch (code) {
    case CW_EINVAL:
    case CW_EPARSE: return 400;
    case CW_ELIMIT: return 413;
    case CW_ENOTFOUND: return 404;
    case CW_ENOMEM:
    case CW_EBUSY: return 503;
    default: return 500;
    }
}

/* {"error":{"code":CODE,"message":MSG[,"items":[...]]}}; extra is raw JSON members. */
static MHD_RESULT_T send_error_status(struct MHD_Connection *conn, srv_req *rq, unsigned status,
                                      const char *code, const char *msg, const char *extra,
                                      const char *allow)
{
    cw_buf b = {0};
    bool ok = cw_buf_printf(&b, "{\"error\":{\"code\":\"%s\",\"message\":", code) == CW_OK &&
              srv_json_string(&b, msg, strlen(msg)) == CW_OK &&
              cw_buf_printf(&b, "%s%s}}\n", extra ? "," : "", extra ? extra : "") == CW_OK;
    if (!ok) {
        cw_buf_fini(&b);
        return MHD_NO;
    }
    if (allow) {
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
            cw_buf_fini(&b);
            return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
        rq->status = status;
        MHD_RESULT_T ret = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    return send_buf(conn, rq, status, &b, "application/json");
}

static const char *code_name(int code)
{
    switch (code) {
    case CW_EINVAL: return "invalid_request";
    case CW_EPARSE: return "malformed_request";
    case CW_ELIMIT: return "too_large";
    case CW_ENOTFOUND: return "not_found";
    case CW_EBUSY: return "overloaded";
    case CW_ENOMEM: return "out_of_memory";
    default: return "internal";
    }
}

static MHD_RESULT_T send_err(struct MHD_Connection *conn, srv_req *rq, const cw_err *err)
{
    return send_error_status(conn, rq, http_status(err->code), code_name(err->code), err->msg, NULL,
                             NULL);
}

static MHD_RESULT_T send_json(struct MHD_Connection *conn, srv_req *rq, cw_buf *b)
{
    return send_buf(conn, rq, 200, b, "application/json");
}

/* ---- query-string helpers -------------------------------------------------- */

typedef struct param_count {
    const char *name;
    unsigned n;
} param_count;

static MHD_RESULT_T count_param(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    (void)kind;
    (void)value;
    param_count *c = cls;
    c->n += key && strcmp(key, c->name) == 0;
    return MHD_YES;
}

/* A GET parameter, strictly percent-decoded into the arena; NULL if absent. A repeated
 * parameter (q=a&q=b) is an error: silently taking one of them would log a query the
 * client did not mean. */
static int get_param(struct MHD_Connection *conn, srv_req *rq, const char *name, const char **out,
                     size_t *out_len, cw_err *err)
{
    const char *raw = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
    *out = NULL;
    if (!raw) {
        return CW_OK;
    }
    param_count pc = {name, 0};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, count_param, &pc);
    if (pc.n > 1) {
        return cw_err_set(err, CW_EINVAL, "parameter %s given %u times (at most once)", name, pc.n);
    }
    size_t n = strlen(raw);
    if (n > 3 * (size_t)SRV_MAX_QUERY_BYTES + 64) {
        return cw_err_set(err, CW_ELIMIT, "parameter %s is %zu bytes (limit %u decoded)", name, n,
                          SRV_MAX_QUERY_BYTES);
    }
    char *buf = cw_arena_alloc(rq->arena, n + 1);
    if (!buf) {
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    size_t len = 0;
    int rc = srv_percent_decode(raw, n, true, buf, &len, err);
    if (rc != CW_OK) {
        return cw_err_prefix(err, "parameter %s: ", name);
    }
    *out = buf;
    if (out_len) {
        *out_len = len;
    }
    return CW_OK;
}

/* ---- routes ----------------------------------------------------------------- */

typedef struct hit_row {
    uint32_t doc;
    double bm25;
    double score;                     /* the final ranking score (model or BM25) */
    double feat[MAX_SERVER_FEATURES]; /* the extractor's vector (st->n_feat values) */
} hit_row;

static int cmp_score_desc(const void *a, const void *b)
{
    const hit_row *x = a, *y = b;
    if (x->score != y->score) {
        return x->score > y->score ? -1 : 1;
    }
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

/* What a stochastic logging policy drew for one page (issue 7 item 1). */
typedef struct srv_draw {
    const char *policy;       /* logged policy name, "RANKER@DRAW" (causal_policy_name_format) */
    double log_prob;          /* log pi(shown list) over the page's rows */
    double temperature;       /* PL tau, NaN for other policies */
    uint32_t mc_samples;      /* 0 = exact propensities */
    uint64_t seed;            /* RNG seed of the draw (the impression id) */
    const double *propensity; /* [n] pi(row i at its position), in shown order */
} srv_draw;

/* Redraws the page's n rows from policy pol over their scores (ranked order,
 * causal_rpol_draw), reorders rows to match, writes the drawn order into order[n]
 * (order[j] = ranked index of the row now at slot j) and fills *out but its policy.
 * prop holds n doubles and must outlive *out. Errors: CW_ENOMEM, CW_EINVAL (non-finite
 * scores). */
static int draw_page(const srv_server *s, const causal_rpol *pol, uint64_t seed, hit_row *rows,
                     size_t n, uint32_t *order, double *prop, srv_draw *out, cw_err *err)
{
    double *scores = malloc(n * sizeof *scores);
    hit_row *tmp = malloc(n * sizeof *tmp);
    int rc = CW_OK;
    if (!scores || !tmp) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        scores[i] = rows[i].score;
    }
    cw_rng rng;
    cw_rng_seed(&rng, seed);
    double log_prob = 0;
    uint32_t mc_used = 0;
    rc = causal_rpol_draw(pol, scores, (uint32_t)n, (uint32_t)n, s->cfg.mc_samples, &rng, order,
                          prop, &log_prob, &mc_used, err);
    if (rc != CW_OK) {
        goto done;
    }
    for (size_t j = 0; j < n; j++) {
        tmp[j] = rows[order[j]];
    }
    memcpy(rows, tmp, n * sizeof *rows);
    *out = (srv_draw){.policy = NULL,
                      .log_prob = log_prob,
                      .temperature = pol->kind == CAUSAL_RPOL_PL ? pol->tau : NAN,
                      .mc_samples = mc_used,
                      .seed = seed,
                      .propensity = prop};
done:
    free(scores);
    free(tmp);
    return rc;
}

/* Whether request r's candidates come from hybrid retrieval (BM25 + dense, RRF) on st. */
static bool page_hybrid(const srv_state *st, const srv_search_req *r)
{
    return st->dn && !(r->retrieval && strcmp(r->retrieval, "bm25") == 0);
}

#define POLICY_NAME_BYTES 96
/* A stochastic page's logged name: the ranker's name, '@', the drawing policy's spec. */
#define LOGGED_NAME_BYTES (POLICY_NAME_BYTES + 48)

/* The ranker name logged and answered: the retrieval mode is part of the policy that
 * showed the page (an off-policy estimate must not mix BM25 and hybrid candidates), and so
 * is a hybrid fusion other than the default (RRF, k 60, dense weight 0.5), e.g.
 * "hybrid(weighted,w=0.3)" or "model+hybrid(rrf,k=20,w=0.5)". r's fusion fields are
 * resolved (route_search); the name is r's static string or buf. */
static const char *page_policy(const srv_state *st, const srv_search_req *r,
                               char buf[POLICY_NAME_BYTES])
{
    bool hy = page_hybrid(st, r);
    const char *base = st->model ? (hy ? "model+hybrid" : "model") : (hy ? "hybrid" : "bm25");
    bool rrf = !r->fusion || strcmp(r->fusion, "rrf") == 0;
    if (!hy || (rrf && r->dense_weight == 0.5 && r->rrf_k == 60)) {
        return base;
    }
    /* exact numbers: two settings that rank differently (0.3 and 0.30000001) must never
     * be logged under one policy name */
    char w[CW_DOUBLE_BUF], k[CW_DOUBLE_BUF];
    cw_fmt_double_exact(r->dense_weight, w);
    if (rrf) {
        snprintf(buf, POLICY_NAME_BYTES, "%s(rrf,k=%s,w=%s)", base,
                 cw_fmt_double_exact(r->rrf_k, k), w);
    } else {
        snprintf(buf, POLICY_NAME_BYTES, "%s(weighted,w=%s)", base, w);
    }
    return buf;
}

/* One impression job: a single allocation the writer frees. dr = NULL: the ranked
 * (deterministic) order, probability 1. */
static srv_job *impression_job(const srv_search_req *r, const srv_state *st, const hit_row *rows,
                               size_t n, uint32_t offset, uint64_t id, int64_t now_ms,
                               const idx_index *ix, const srv_draw *dr)
{
    /* The job outlives this request and possibly this serving state (a reload may free
     * it before the writer runs), so every string is copied into the job. */
    const char *ixv = idx_index_version(ix);
    const char *mv = st->model ? st->model_version : NULL;
    /* A stochastic page is logged as "RANKER@DRAW" (run_search), else under the ranker's. */
    char pbuf[POLICY_NAME_BYTES];
    const char *pname = dr ? dr->policy : page_policy(st, r, pbuf);
    size_t strings = r->query_len + 1 + (r->qid ? strlen(r->qid) + 1 : 0) + strlen(ixv) + 1 +
                     (mv ? strlen(mv) + 1 : 0) + strlen(pname) + 1;
    idx_doc d;
    for (size_t i = 0; i < n; i++) {
        if (idx_doc_get(ix, rows[i].doc, &d, NULL) != CW_OK) {
            return NULL;
        }
        strings += d.id_len + 1;
    }
    size_t nf = st->n_feat;
    strings += strlen(st->feature_set) + 1;
    for (size_t f = 0; f < nf; f++) {
        strings += strlen(rank_features_name(st->fx, f)) + 1;
    }
    size_t bytes = sizeof(srv_job) + n * sizeof(causal_item) + nf * sizeof(char *) +
                   n * nf * sizeof(float) + strings;
    srv_job *j = calloc(1, bytes);
    if (!j) {
        return NULL;
    }
    causal_item *items = (causal_item *)(j + 1);
    const char **fnames = (const char **)(items + n);
    float *feat = (float *)(fnames + nf);
    char *p = (char *)(feat + n * nf);
    j->kind = SRV_JOB_IMPRESSION;
    causal_impression *imp = &j->imp;
    imp->id = id;
    imp->ts_ms = now_ms;
    memcpy(p, r->query, r->query_len);
    p[r->query_len] = '\0';
    imp->query = p;
    p += r->query_len + 1;
    if (r->qid) {
        strcpy(p, r->qid);
        imp->qid = p;
        p += strlen(r->qid) + 1;
    }
    strcpy(p, pname); /* pbuf or the request's stack: copied like every string */
    imp->policy = p;
    p += strlen(pname) + 1;
    strcpy(p, ixv);
    imp->index_version = p;
    p += strlen(ixv) + 1;
    if (mv) {
        strcpy(p, mv);
        imp->model_version = p;
        p += strlen(mv) + 1;
    }
    /* A deterministic ranker shows this list with probability 1. */
    imp->log_prob = 0.0;
    imp->temperature = NAN;
    if (dr) {
        imp->log_prob = dr->log_prob;
        imp->temperature = dr->temperature;
        imp->mc_samples = dr->mc_samples;
        imp->has_seed = true;
        imp->seed = dr->seed;
    }
    strcpy(p, st->feature_set);
    imp->feature_set = p;
    p += strlen(p) + 1;
    for (size_t f = 0; f < nf; f++) {
        strcpy(p, rank_features_name(st->fx, f));
        fnames[f] = p;
        p += strlen(p) + 1;
    }
    imp->feature_names = fnames;
    imp->n_features = (uint32_t)nf;
    imp->n_items = n;
    imp->items = items;
    for (size_t i = 0; i < n; i++) {
        if (idx_doc_get(ix, rows[i].doc, &d, NULL) != CW_OK) {
            free(j);
            return NULL;
        }
        memcpy(p, d.id, d.id_len);
        p[d.id_len] = '\0';
        for (size_t f = 0; f < nf; f++) {
            feat[i * nf + f] = (float)rows[i].feat[f];
        }
        items[i] = (causal_item){.doc_id = p,
                                 .position = offset + (uint32_t)i + 1,
                                 .score = rows[i].score,
                                 .propensity = dr ? dr->propensity[i] : 1.0,
                                 .features = &feat[i * nf]};
        p += d.id_len + 1;
    }
    return j;
}

static int json_double(cw_buf *b, double v)
{
    return isfinite(v) ? cw_buf_printf(b, "%.6g", v) : cw_buf_printf(b, "null");
}

/* The rendered "results" members of a ranked page without their positions, so that the
 * rows render in any order from it: a drawn page is rendered once, in its drawn order
 * (render_results), never rendered, parsed and rendered again. Row i is
 * text[i ? end[i - 1] : 0, end[i]), its ,"position":N member due at mid[i]. */
typedef struct page_text {
    cw_buf text;
    size_t *mid, *end; /* [n rows], in the request's arena */
} page_text;

/* Appends the page's n rows to out in the order shown: row order[j] (order NULL: row j) at
 * position offset + j + 1, comma-separated; the bytes rendering them in that order gives.
 * Errors: CW_ENOMEM. */
static int render_results(cw_buf *out, const page_text *pg, const uint32_t *order, size_t n,
                          uint32_t offset)
{
    for (size_t j = 0; j < n; j++) {
        size_t i = order ? order[j] : j;
        size_t begin = i ? pg->end[i - 1] : 0;
        if ((j && cw_buf_append(out, ",", 1) != CW_OK) ||
            cw_buf_append(out, pg->text.data + begin, pg->mid[i] - begin) != CW_OK ||
            cw_buf_printf(out, ",\"position\":%u", offset + (unsigned)j + 1) != CW_OK ||
            cw_buf_append(out, pg->text.data + pg->mid[i], pg->end[i] - pg->mid[i]) != CW_OK) {
            return CW_ENOMEM;
        }
    }
    return CW_OK;
}

/* retrieve -> rank: the ranked page as rows plus its rendered "results" members. On a
 * miss both come from the index (and model) and are stored in the state's cache. */
/* Text tokens of the page's rows that feature extraction analysed whole or read from its
 * forward store, kept for their snippets (rank_token_tap): each shown text is analysed
 * at most once per request, not at all when stored. */
typedef struct page_tokens {
    idx_snip_tokens **tok; /* per row of the extraction */
    bool *done;            /* the row's whole text went to tok[row] */
    size_t cur;
} page_tokens;

static void page_text_begin(void *ctx, size_t row)
{
    page_tokens *p = ctx;
    p->cur = row;
    idx_snip_tokens_reset(p->tok[row]);
}

static int page_text_token(void *ctx, const idx_token *tok)
{
    page_tokens *p = ctx;
    return idx_snip_tokens_add(p->tok[p->cur], tok);
}

static int page_text_span(void *ctx, size_t byte_begin, size_t byte_end, bool match)
{
    page_tokens *p = ctx;
    return idx_snip_tokens_add_span(p->tok[p->cur], byte_begin, byte_end, match);
}

static void page_text_done(void *ctx, size_t row)
{
    page_tokens *p = ctx;
    p->done[row] = true;
}

static int rank_page(srv_server *s, srv_state *st, srv_req *rq, const srv_search_req *r,
                     hit_row **rows_out, size_t *n_out, page_text *pg, cw_err *err)
{
    /* Key: every input of the page (the state's cache already pins index and model). */
    if (r->retrieval && strcmp(r->retrieval, "hybrid") == 0 && !st->dn) {
        return cw_err_set(err, CW_EINVAL,
                          "retrieval \"hybrid\" needs dense files in the index (causeway embed "
                          "train/build) and a server not started with --retrieval bm25");
    }
    /* Fusion settings enter the key only where they shape the page: a BM25 page is one
     * cache entry whatever dense_weight a client sends. */
    bool hybrid = page_hybrid(st, r);
    bool weighted = hybrid && r->fusion && strcmp(r->fusion, "weighted") == 0;
    uint32_t nums[5] = {r->k, r->offset, r->explain, hybrid, weighted};
    double fw[2] = {hybrid ? r->dense_weight : 0, hybrid ? r->rrf_k : 0};
    size_t klen = sizeof nums + sizeof fw + r->query_len;
    char *key = cw_arena_alloc(rq->arena, klen);
    if (!key) {
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    memcpy(key, nums, sizeof nums);
    memcpy(key + sizeof nums, fw, sizeof fw);
    memcpy(key + sizeof nums + sizeof fw, r->query, r->query_len);
    void *val = NULL;
    size_t vlen = 0;
    if (srv_cache_get(st->cache, key, klen, &val, &vlen)) {
        size_t n = 0;
        memcpy(&n, val, sizeof n);
        const char *v = (const char *)val + sizeof n;
        hit_row *rows = cw_arena_alloc(rq->arena, (n ? n : 1) * sizeof *rows);
        pg->mid = cw_arena_alloc(rq->arena, (n ? n : 1) * sizeof *pg->mid);
        pg->end = cw_arena_alloc(rq->arena, (n ? n : 1) * sizeof *pg->end);
        size_t head = n * (sizeof *rows + sizeof *pg->mid + sizeof *pg->end);
        int rc = rows && pg->mid && pg->end
                     ? cw_buf_append(&pg->text, v + head, vlen - sizeof n - head)
                     : CW_ENOMEM;
        if (rc == CW_OK) {
            memcpy(rows, v, n * sizeof *rows);
            memcpy(pg->mid, v + n * sizeof *rows, n * sizeof *pg->mid);
            memcpy(pg->end, v + n * (sizeof *rows + sizeof *pg->mid), n * sizeof *pg->end);
        }
        free(val);
        if (rc != CW_OK) {
            return cw_err_set(err, CW_ENOMEM, "out of memory");
        }
        atomic_fetch_add(&s->metrics.cache_hits, 1);
        *rows_out = rows;
        *n_out = n;
        return CW_OK;
    }
    atomic_fetch_add(&s->metrics.cache_misses, 1);

    idx_analyzer *an = NULL;
    idx_query *q = NULL;
    idx_hit *hits = NULL;
    idx_hnsw_searcher *hs = NULL;
    hit_row *rows = NULL;
    double *x = NULL, *scores = NULL;
    cw_buf snip = {0};
    page_tokens pt = {0};
    size_t n_pt = 0;
    int rc = analyzer_take(st, &an, err);
    if (rc != CW_OK) {
        goto done;
    }
    rc = idx_query_parse(st->ix, an, r->query, r->query_len, &q, err);
    if (rc != CW_OK) {
        goto done;
    }
    /* A model reranks a window of candidates that covers the page asked for. */
    uint32_t want = r->offset + r->k;
    uint32_t window = st->model ? CW_MIN(CW_MAX(want, RERANK_WINDOW), SRV_MAX_K) : want;
    idx_search_opts so = idx_search_opts_default();
    so.k = window;
    so.offset = 0;
    hits = cw_arena_alloc(rq->arena, window * sizeof *hits);
    rows = cw_arena_alloc(rq->arena, window * sizeof *rows);
    if (!hits || !rows) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory");
        goto done;
    }
    size_t n_hits = 0;
    if (page_hybrid(st, r)) {
        /* BM25 top-100 and dense top-100 fused by the request's resolved fusion (RRF by
         * default); rows' "bm25" is then the fused retrieval score. */
        idx_hybrid_opts ho = idx_hybrid_opts_default();
        ho.fusion = weighted ? IDX_FUSION_WEIGHTED : IDX_FUSION_RRF;
        ho.w_dense = r->dense_weight;
        ho.rrf_k = r->rrf_k;
        rc = searcher_take(st, &hs, err);
        if (rc == CW_OK) {
            ho.depth = CW_MAX(ho.depth, window);
            rc = idx_hybrid_search(st->ix, st->dn, hs, q, r->query, r->query_len, &so, &ho, hits,
                                   &n_hits, err);
        }
    } else {
        rc = idx_search(st->ix, q, &so, hits, &n_hits, NULL, err);
    }
    if (rc != CW_OK) {
        goto done;
    }
    /* Features come from the code path that ranks: the logged vector is the one a
     * model scored (METHODS.md section 8 point 1). Without a model only the page is
     * shown, so only its rows [f_lo, f_hi) need features. */
    size_t nf = st->n_feat;
    size_t f_lo = st->model ? 0 : CW_MIN((size_t)r->offset, n_hits);
    size_t f_hi = st->model ? n_hits : CW_MIN(n_hits, (size_t)want);
    for (size_t i = 0; i < n_hits; i++) {
        memset(&rows[i], 0, sizeof rows[i]);
        rows[i].doc = hits[i].doc;
        rows[i].bm25 = hits[i].score;
        rows[i].score = hits[i].score;
    }
    if (f_hi > f_lo) {
        uint32_t *docids = cw_arena_alloc(rq->arena, (f_hi - f_lo) * sizeof *docids);
        /* rows of max(nf, model features): a model may name one feature twice */
        size_t nm = st->model ? rank_model_n_features(st->model) : 0;
        x = malloc((f_hi - f_lo) * CW_MAX(nf, nm) * sizeof *x);
        scores = malloc(n_hits * sizeof *scores);
        if (!docids || !x || !scores) {
            rc = cw_err_set(err, CW_ENOMEM, "out of memory");
            goto done;
        }
        for (size_t i = f_lo; i < f_hi; i++) {
            docids[i - f_lo] = rows[i].doc;
        }
        float qv[IDX_DENSE_MAX_DIM];
        if (st->dn) {
            rc = idx_encoder_encode(idx_dense_encoder(st->dn), r->query, r->query_len, qv, err);
            if (rc != CW_OK) {
                goto done;
            }
        }
        /* Without a model the extracted rows are the shown page, in order: their text
         * tokens are kept for the snippets. */
        rank_token_tap tap = {page_text_begin, page_text_token, page_text_done, &pt,
                              page_text_span};
        if (!st->model) {
            pt.tok = calloc(f_hi - f_lo, sizeof *pt.tok);
            pt.done = cw_arena_alloc(rq->arena, (f_hi - f_lo) * sizeof *pt.done);
            if (!pt.tok || !pt.done) {
                rc = cw_err_set(err, CW_ENOMEM, "out of memory");
                goto done;
            }
            n_pt = f_hi - f_lo;
            for (size_t i = 0; i < n_pt && rc == CW_OK; i++) {
                pt.done[i] = false;
                rc = idx_snip_tokens_new(q, &pt.tok[i], err);
            }
            if (rc != CW_OK) {
                goto done;
            }
        }
        rc = rank_features_extract_tap(st->fx, an, q, st->dn ? qv : NULL, docids, f_hi - f_lo, x,
                                       st->model ? NULL : &tap, err);
        if (rc != CW_OK) {
            goto done;
        }
        for (size_t i = f_lo; i < f_hi; i++) {
            memcpy(rows[i].feat, &x[(i - f_lo) * nf], nf * sizeof *x);
        }
    }
    if (st->model && n_hits > 0) {
        /* The model's columns, gathered in place (row i's read precedes its write). */
        size_t nm = rank_model_n_features(st->model);
        for (size_t i = 0; i < n_hits; i++) {
            for (size_t j = 0; j < nm; j++) {
                x[i * nm + j] = rows[i].feat[st->model_col[j]];
            }
        }
        rc = rank_model_score(st->model, x, n_hits, scores, err);
        if (rc != CW_OK) {
            goto done;
        }
        for (size_t i = 0; i < n_hits; i++) {
            rows[i].score = scores[i];
        }
        qsort(rows, n_hits, sizeof *rows, cmp_score_desc);
    }
    size_t first = CW_MIN((size_t)r->offset, n_hits);
    size_t n_show = CW_MIN((size_t)r->k, n_hits - first);
    hit_row *shown = rows + first;

    cw_buf *frag = &pg->text;
    pg->mid = cw_arena_alloc(rq->arena, (n_show ? n_show : 1) * sizeof *pg->mid);
    pg->end = cw_arena_alloc(rq->arena, (n_show ? n_show : 1) * sizeof *pg->end);
    bool ok = pg->mid && pg->end;
    for (size_t i = 0; ok && i < n_show; i++) {
        idx_doc d;
        rc = idx_doc_get(st->ix, shown[i].doc, &d, err);
        if (rc != CW_OK) {
            goto done;
        }
        snip.len = 0;
        /* without a model first == f_lo: shown[i] is extraction row i, whose tokens pt kept */
        if (i < n_pt && pt.done[i]) {
            rc = idx_snippet_tokens(st->ix, pt.tok[i], shown[i].doc, SRV_SNIPPET_BYTES, &snip, err);
        } else {
            rc = idx_snippet(st->ix, an, q, shown[i].doc, SRV_SNIPPET_BYTES, &snip, err);
        }
        if (rc != CW_OK) {
            goto done;
        }
        ok = cw_buf_append(frag, "{\"id\":", 6) == CW_OK &&
             srv_json_string(frag, d.id, d.id_len) == CW_OK &&
             cw_buf_append(frag, ",\"title\":", 9) == CW_OK &&
             srv_json_string(frag, d.title, d.title_len) == CW_OK &&
             cw_buf_append(frag, ",\"snippet\":", 11) == CW_OK &&
             srv_json_string(frag, snip.data ? snip.data : "", snip.len) == CW_OK &&
             cw_buf_append(frag, ",\"score\":", 9) == CW_OK &&
             json_double(frag, shown[i].score) == CW_OK;
        pg->mid[i] = frag->len; /* render_results puts the position here */
        if (ok && r->explain) {
            ok = cw_buf_printf(frag, ",\"explain\":{\"bm25\":") == CW_OK &&
                 json_double(frag, shown[i].bm25) == CW_OK &&
                 cw_buf_printf(frag, ",\"features\":{") == CW_OK;
            for (size_t f = 0; ok && f < nf; f++) {
                ok = cw_buf_printf(frag, "%s\"%s\":", f ? "," : "",
                                   rank_features_name(st->fx, f)) == CW_OK &&
                     json_double(frag, shown[i].feat[f]) == CW_OK;
            }
            ok = ok && cw_buf_append(frag, "}", 1) == CW_OK;
            if (ok && st->model) {
                size_t nm = rank_model_n_features(st->model);
                double xm[MAX_SERVER_FEATURES], contrib[MAX_SERVER_FEATURES], bias = 0;
                for (size_t j = 0; j < nm; j++) {
                    xm[j] = shown[i].feat[st->model_col[j]];
                }
                rc = rank_model_explain(st->model, xm, contrib, &bias, err);
                if (rc != CW_OK) {
                    goto done;
                }
                ok = cw_buf_printf(frag,
                                   ",\"model\":{\"version\":\"%s\",\"bias\":", st->model_version) ==
                         CW_OK &&
                     json_double(frag, bias) == CW_OK &&
                     cw_buf_printf(frag, ",\"contributions\":{") == CW_OK;
                for (size_t j = 0; ok && j < nm; j++) {
                    ok = cw_buf_printf(frag, "%s\"%s\":", j ? "," : "",
                                       rank_model_feature_name(st->model, j)) == CW_OK &&
                         json_double(frag, contrib[j]) == CW_OK;
                }
                ok = ok && cw_buf_append(frag, "}}", 2) == CW_OK;
            }
            ok = ok && cw_buf_append(frag, "}", 1) == CW_OK;
        }
        ok = ok && cw_buf_append(frag, "}", 1) == CW_OK;
        pg->end[i] = frag->len;
    }
    if (!ok) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory");
        goto done;
    }
    /* Cache value: n_show, the shown rows, the row cuts (mid, end), the rendered text. */
    size_t head = sizeof n_show + n_show * (sizeof *shown + sizeof *pg->mid + sizeof *pg->end);
    size_t bytes = head + frag->len;
    char *v = malloc(bytes);
    if (v) {
        char *o = v;
        memcpy(o, &n_show, sizeof n_show);
        o += sizeof n_show;
        memcpy(o, shown, n_show * sizeof *shown);
        o += n_show * sizeof *shown;
        memcpy(o, pg->mid, n_show * sizeof *pg->mid);
        o += n_show * sizeof *pg->mid;
        memcpy(o, pg->end, n_show * sizeof *pg->end);
        memcpy(v + head, frag->data ? frag->data : "", frag->len);
        srv_cache_put(st->cache, key, klen, v, bytes);
        free(v);
    }
    *rows_out = shown;
    *n_out = n_show;
done:
    for (size_t i = 0; i < n_pt; i++) {
        idx_snip_tokens_free(pt.tok[i]);
    }
    free(pt.tok);
    cw_buf_fini(&snip);
    free(x);
    free(scores);
    idx_query_free(q);
    if (hs) {
        searcher_give(st, hs);
    }
    if (an) {
        analyzer_give(st, an);
    }
    return rc;
}

/* rank_page -> draw (stochastic logging) -> log impression -> respond body. */
static int run_search(srv_server *s, srv_req *rq, const srv_search_req *r, cw_buf *out, cw_err *err)
{
    srv_state *st = state_acquire(s);
    hit_row *shown = NULL;
    size_t n_show = 0;
    page_text pg = {0};
    uint32_t *order = NULL; /* the drawn order of a stochastic page; NULL = ranked */
    char pbuf[POLICY_NAME_BYTES], lname[LOGGED_NAME_BYTES];
    int rc = rank_page(s, st, rq, r, &shown, &n_show, &pg, err);
    if (rc != CW_OK) {
        goto done;
    }
    uint64_t imp_id = causal_log_next_id(s->log);
    srv_draw draw, *dr = NULL;
    causal_rpol pol = s->logging;
    if (r->policy) { /* validated by srv_search_req_check */
        if (causal_rpol_parse(r->policy, &pol, err) != CW_OK) {
            rc = CW_EINVAL;
            goto done;
        }
    }
    if (pol.kind != CAUSAL_RPOL_DET && n_show > 1) {
        /* Stochastic logging: every answer is drawn afresh, cached or not, and logged
         * under the drawing policy over the ranker it drew from ("bm25@pl:0.5"): pages
         * drawn over different rankers, fusions or models are different logging
         * policies to OPE, harvesting and per-ranker propensities. */
        double *prop = cw_arena_alloc(rq->arena, n_show * sizeof *prop);
        order = cw_arena_alloc(rq->arena, n_show * sizeof *order);
        rc = prop && order ? draw_page(s, &pol, imp_id, shown, n_show, order, prop, &draw, err)
                           : cw_err_set(err, CW_ENOMEM, "out of memory");
        if (rc != CW_OK || (rc = causal_policy_name_format(page_policy(st, r, pbuf), &pol, lname,
                                                           sizeof lname, err)) != CW_OK) {
            goto done;
        }
        draw.policy = lname;
        dr = &draw;
    }
    srv_job *job =
        impression_job(r, st, shown, n_show, r->offset, imp_id, cw_wall_ms(), st->ix, dr);
    if (!job) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory building the impression");
        goto done;
    }
    rc = srv_writer_push(&s->writer, job, err);
    if (rc != CW_OK) {
        free(job);
        atomic_fetch_add(&s->metrics.queue_full, 1);
        goto done;
    }
    double took_ms = (double)(cw_now_ns() - rq->t0_ns) / 1e6;
    bool ok =
        cw_buf_printf(out, "{\"impression_id\":%llu,\"query\":", (unsigned long long)imp_id) ==
            CW_OK &&
        srv_json_string(out, r->query, r->query_len) == CW_OK &&
        cw_buf_append(out, ",\"results\":[", 12) == CW_OK &&
        render_results(out, &pg, order, n_show, r->offset) == CW_OK &&
        cw_buf_printf(out, "],\"policy\":\"%s\",\"retrieval\":\"%s\"", page_policy(st, r, pbuf),
                      page_hybrid(st, r) ? "hybrid" : "bm25") == CW_OK &&
        (!page_hybrid(st, r) ||
         cw_buf_printf(out, ",\"fusion\":\"%s\",\"dense_weight\":%g,\"rrf_k\":%g", r->fusion,
                       r->dense_weight, r->rrf_k) == CW_OK) &&
        cw_buf_printf(out, ",\"took_ms\":%.3f}\n", took_ms) == CW_OK;
    if (!ok) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory");
    }
done:
    cw_buf_fini(&pg.text);
    state_release(st);
    return rc;
}

static MHD_RESULT_T route_search(srv_server *s, struct MHD_Connection *conn, srv_req *rq,
                                 const char *method)
{
    cw_err err;
    srv_search_req r = {.k = SRV_DEFAULT_K};
    int rc = CW_OK;
    if (strcmp(method, "POST") == 0) {
        rc = srv_parse_search_body(rq->body.data ? rq->body.data : "", rq->body.len, rq->arena, &r,
                                   &err);
    } else {
        const char *q = NULL, *k = NULL, *off = NULL, *ex = NULL, *qid = NULL;
        size_t qlen = 0;
        rc = get_param(conn, rq, "q", &q, &qlen, &err);
        if (rc == CW_OK) {
            rc = get_param(conn, rq, "k", &k, NULL, &err);
        }
        if (rc == CW_OK) {
            rc = get_param(conn, rq, "offset", &off, NULL, &err);
        }
        if (rc == CW_OK) {
            rc = get_param(conn, rq, "explain", &ex, NULL, &err);
        }
        if (rc == CW_OK) {
            rc = get_param(conn, rq, "qid", &qid, NULL, &err);
        }
        const char *pol = NULL;
        if (rc == CW_OK) {
            rc = get_param(conn, rq, "policy", &pol, NULL, &err);
        }
        r.policy = pol;
        const char *ret = NULL;
        if (rc == CW_OK) {
            rc = get_param(conn, rq, "retrieval", &ret, NULL, &err);
        }
        r.retrieval = ret;
        const char *fu = NULL, *dw = NULL;
        if (rc == CW_OK) {
            rc = get_param(conn, rq, "fusion", &fu, NULL, &err);
        }
        if (rc == CW_OK) {
            rc = get_param(conn, rq, "dense_weight", &dw, NULL, &err);
        }
        r.fusion = fu;
        if (rc == CW_OK && dw) { /* the range is checked by srv_search_req_check */
            char *end = NULL;
            r.dense_weight = strtod(dw, &end);
            r.has_dense_weight = true;
            /* Plain decimals only: strtod also takes blanks and hexadecimal ("0x1p-1"). */
            if (!*dw || *end || isspace((unsigned char)*dw) || strpbrk(dw, "xX")) {
                rc = cw_err_set(&err, CW_EINVAL, "dense_weight must be a number in [0, 1]");
            }
        }
        if (rc == CW_OK && k) {
            rc = srv_parse_uint("k", k, 1, SRV_MAX_K, &r.k, &err);
        }
        if (rc == CW_OK && off) {
            rc = srv_parse_uint("offset", off, 0, SRV_MAX_K, &r.offset, &err);
        }
        if (rc == CW_OK && ex) {
            if (strcmp(ex, "true") == 0 || strcmp(ex, "1") == 0) {
                r.explain = true;
            } else if (strcmp(ex, "false") && strcmp(ex, "0")) {
                rc = cw_err_set(&err, CW_EINVAL, "explain must be true or false");
            }
        }
        if (rc == CW_OK && qid && (!*qid || strlen(qid) > CAUSAL_MAX_NAME_BYTES)) {
            rc = cw_err_set(&err, CW_EINVAL, "qid must have 1..%u bytes", CAUSAL_MAX_NAME_BYTES);
        }
        r.query = q;
        r.query_len = qlen;
        r.qid = qid;
        if (rc == CW_OK) {
            rc = srv_search_req_check(&r, &err);
        }
    }
    if (rc != CW_OK) {
        return send_err(conn, rq, &err);
    }
    /* Resolved against the server's settings, the request names its whole fusion (the
     * cache key and the logged policy depend on it). */
    r.fusion = r.fusion ? r.fusion : s->fusion;
    /* + 0.0: -0 and 0 are one policy, whether the weight came from GET, a JSON body
     * (-0.0 is a JSON real) or the server's settings. */
    r.dense_weight = (r.has_dense_weight ? r.dense_weight : s->cfg.dense_weight) + 0.0;
    r.has_dense_weight = true;
    r.rrf_k = s->cfg.rrf_k;
    cw_buf out = {0};
    rc = run_search(s, rq, &r, &out, &err);
    if (rc != CW_OK) {
        cw_buf_fini(&out);
        return send_err(conn, rq, &err);
    }
    return send_json(conn, rq, &out);
}

static void resume_connection(void *conn)
{
    MHD_resume_connection(conn);
}

static MHD_RESULT_T events_reply(struct MHD_Connection *conn, srv_req *rq);

static MHD_RESULT_T route_events(srv_server *s, struct MHD_Connection *conn, srv_req *rq)
{
    if (rq->job) {
        /* The writer resumed us: the batch is committed or refused. */
        return events_reply(conn, rq);
    }
    cw_err err;
    causal_event *ev = NULL;
    size_t n = 0, n_problems = 0;
    srv_event_problem *problems = NULL;
    int rc = srv_parse_events_body(rq->body.data ? rq->body.data : "", rq->body.len, cw_wall_ms(),
                                   rq->arena, &ev, &n, &problems, &n_problems, &err);
    if (rc != CW_OK) {
        if (n_problems == 0) {
            return send_err(conn, rq, &err);
        }
        cw_buf items = {0};
        bool ok = cw_buf_printf(&items, "\"items\":[") == CW_OK;
        for (size_t i = 0; ok && i < n_problems; i++) {
            ok = cw_buf_printf(&items, "%s{\"index\":%zu,\"reason\":", i ? "," : "",
                               problems[i].index) == CW_OK &&
                 srv_json_string(&items, problems[i].reason, strlen(problems[i].reason)) == CW_OK &&
                 cw_buf_append(&items, "}", 1) == CW_OK;
        }
        ok = ok && cw_buf_append(&items, "]", 1) == CW_OK;
        atomic_fetch_add(&s->metrics.events_rejected, n_problems);
        MHD_RESULT_T ret = send_error_status(conn, rq, 400, "invalid_events", err.msg,
                                             ok ? items.data : NULL, NULL);
        cw_buf_fini(&items);
        return ret;
    }
    srv_job *job = cw_arena_alloc(rq->arena, sizeof *job);
    causal_event_reject *rejects = cw_arena_alloc(rq->arena, n * sizeof *rejects);
    if (!job || !rejects) {
        cw_err_set(&err, CW_ENOMEM, "out of memory");
        return send_err(conn, rq, &err);
    }
    memset(job, 0, sizeof *job);
    job->kind = SRV_JOB_EVENTS;
    job->events = ev;
    job->n_events = n;
    job->rejects = rejects;
    job->notify = resume_connection;
    job->notify_ctx = conn;
    /* Park the connection instead of blocking a pool thread on the COMMIT: all waiting
     * batches then share one group commit. Suspend before the push, so the writer's
     * resume can never come first; MHD calls us again once resumed. */
    MHD_suspend_connection(conn);
    rq->job = job;
    rc = srv_writer_push(&s->writer, job, &err);
    if (rc != CW_OK) {
        atomic_fetch_add(&s->metrics.queue_full, 1);
        job->result = rc;
        job->err = err;
        job->done = true;
        MHD_resume_connection(conn);
    }
    return MHD_YES;
}

/* Second half of POST /events, after the writer resumed the connection. */
static MHD_RESULT_T events_reply(struct MHD_Connection *conn, srv_req *rq)
{
    srv_job *job = rq->job;
    size_t n = job->n_events;
    cw_err err;
    if (job->result != CW_OK) {
        if (job->n_rejects == 0) {
            return send_err(conn, rq, &job->err);
        }
        cw_buf items = {0};
        bool ok = cw_buf_printf(&items, "\"items\":[") == CW_OK;
        for (size_t i = 0; ok && i < job->n_rejects; i++) {
            const causal_event_reject *rj = &job->rejects[i];
            ok = cw_buf_printf(&items, "%s{\"index\":%zu,\"reason\":", i ? "," : "", rj->index) ==
                     CW_OK &&
                 srv_json_string(&items, rj->reason, strlen(rj->reason)) == CW_OK &&
                 cw_buf_append(&items, "}", 1) == CW_OK;
        }
        ok = ok && cw_buf_append(&items, "]", 1) == CW_OK;
        MHD_RESULT_T ret = send_error_status(conn, rq, 400, "rejected_events", job->err.msg,
                                             ok ? items.data : NULL, NULL);
        cw_buf_fini(&items);
        return ret;
    }
    cw_buf out = {0};
    if (cw_buf_printf(&out, "{\"accepted\":%zu,\"duplicates\":%zu}\n", n - job->n_duplicates,
                      job->n_duplicates) != CW_OK) {
        cw_err_set(&err, CW_ENOMEM, "out of memory");
        return send_err(conn, rq, &err);
    }
    return send_json(conn, rq, &out);
}

static MHD_RESULT_T route_docs(srv_server *s, struct MHD_Connection *conn, srv_req *rq,
                               const char *raw_id)
{
    cw_err err;
    size_t n = strlen(raw_id);
    char *id = cw_arena_alloc(rq->arena, n + 1);
    size_t id_len = 0;
    if (!id) {
        cw_err_set(&err, CW_ENOMEM, "out of memory");
        return send_err(conn, rq, &err);
    }
    int rc = srv_percent_decode(raw_id, n, false, id, &id_len, &err);
    if (rc == CW_OK && (id_len == 0 || id_len > IDX_MAX_ID_BYTES)) {
        rc = cw_err_set(&err, id_len ? CW_ELIMIT : CW_EINVAL, "document id must have 1..%u bytes",
                        IDX_MAX_ID_BYTES);
    }
    if (rc != CW_OK) {
        return send_err(conn, rq, &err);
    }
    srv_state *st = state_acquire(s);
    uint32_t docid = 0;
    idx_doc d;
    rc = idx_doc_lookup(st->ix, id, id_len, &docid, &err);
    if (rc == CW_ENOTFOUND) {
        cw_err_clear(&err);
        rc = cw_err_set(&err, CW_ENOTFOUND, "no document with id \"%.300s\"", id);
    }
    if (rc == CW_OK) {
        rc = idx_doc_get(st->ix, docid, &d, &err);
    }
    cw_buf out = {0};
    if (rc == CW_OK) {
        bool ok = cw_buf_append(&out, "{\"id\":", 6) == CW_OK &&
                  srv_json_string(&out, d.id, d.id_len) == CW_OK &&
                  cw_buf_append(&out, ",\"title\":", 9) == CW_OK &&
                  srv_json_string(&out, d.title, d.title_len) == CW_OK &&
                  cw_buf_append(&out, ",\"text\":", 8) == CW_OK &&
                  srv_json_string(&out, d.text, d.text_len) == CW_OK &&
                  cw_buf_append(&out, ",\"fields\":", 10) == CW_OK &&
                  cw_buf_append(&out, d.fields_len ? d.fields_json : "{}",
                                d.fields_len ? d.fields_len : 2) == CW_OK &&
                  cw_buf_append(&out, "}\n", 2) == CW_OK;
        if (!ok) {
            rc = cw_err_set(&err, CW_ENOMEM, "out of memory");
        }
    }
    state_release(st);
    if (rc != CW_OK) {
        cw_buf_fini(&out);
        return send_err(conn, rq, &err);
    }
    return send_json(conn, rq, &out);
}

static MHD_RESULT_T route_status(srv_server *s, struct MHD_Connection *conn, srv_req *rq,
                                 bool ready)
{
    cw_buf out = {0};
    if (ready && atomic_load(&s->stopping)) {
        return send_error_status(conn, rq, 503, "shutting_down", "the server is shutting down",
                                 NULL, NULL);
    }
    int rc;
    if (ready) {
        srv_state *st = state_acquire(s);
        rc = cw_buf_printf(&out,
                           "{\"status\":\"ready\",\"documents\":%u,\"index_version\":\"%s\","
                           "\"model_version\":%s%s%s}\n",
                           idx_index_n_docs(st->ix), idx_index_version(st->ix),
                           st->model ? "\"" : "", st->model ? st->model_version : "null",
                           st->model ? "\"" : "");
        state_release(st);
    } else {
        rc = cw_buf_printf(&out, "{\"status\":\"ok\"}\n");
    }
    if (rc != CW_OK) {
        return MHD_NO;
    }
    return send_json(conn, rq, &out);
}

static MHD_RESULT_T route_metrics(srv_server *s, struct MHD_Connection *conn, srv_req *rq)
{
    cw_buf b = {0};
    srv_metrics *m = &s->metrics;
    int rc = cw_buf_printf(&b, "# HELP causeway_http_requests_total HTTP requests by route and "
                               "status.\n# TYPE causeway_http_requests_total counter\n");
    for (int r = 0; rc == CW_OK && r < SRV_N_ROUTES; r++) {
        for (int c = 0; rc == CW_OK && c < SRV_N_CODES; c++) {
            uint64_t v = atomic_load(&m->requests[r][c]);
            if (v == 0 && c != 0) {
                continue;
            }
            if (c < SRV_N_CODES - 1) {
                rc = cw_buf_printf(&b,
                                   "causeway_http_requests_total{route=\"%s\",code=\"%u\"} %llu\n",
                                   route_names[r], counted_codes[c], (unsigned long long)v);
            } else {
                rc = cw_buf_printf(
                    &b, "causeway_http_requests_total{route=\"%s\",code=\"other\"} %llu\n",
                    route_names[r], (unsigned long long)v);
            }
        }
    }
    rc = rc ? rc
            : cw_buf_printf(&b, "# HELP causeway_http_request_duration_seconds Time from the "
                                "first handler call to completion.\n"
                                "# TYPE causeway_http_request_duration_seconds histogram\n");
    for (int r = 0; rc == CW_OK && r < SRV_N_ROUTES; r++) {
        uint64_t cum = 0;
        for (int k = 0; rc == CW_OK && k < SRV_N_BUCKETS; k++) {
            cum += atomic_load(&m->latency_bucket[r][k]);
            if (k < SRV_N_BUCKETS - 1) {
                rc = cw_buf_printf(&b,
                                   "causeway_http_request_duration_seconds_bucket{route=\"%s\","
                                   "le=\"%g\"} %llu\n",
                                   route_names[r], bucket_s[k], (unsigned long long)cum);
            } else {
                rc = cw_buf_printf(&b,
                                   "causeway_http_request_duration_seconds_bucket{route=\"%s\","
                                   "le=\"+Inf\"} %llu\n"
                                   "causeway_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                                   "causeway_http_request_duration_seconds_count{route=\"%s\"} "
                                   "%llu\n",
                                   route_names[r], (unsigned long long)cum, route_names[r],
                                   (double)atomic_load(&m->latency_sum_us[r]) / 1e6, route_names[r],
                                   (unsigned long long)cum);
            }
        }
    }
    srv_state *st = state_acquire(s);
    uint32_t n_docs = idx_index_n_docs(st->ix);
    state_release(st);
#define COUNTER(name, help, field)                                                                 \
    (rc = rc ? rc                                                                                  \
             : cw_buf_printf(&b,                                                                   \
                             "# HELP " name " " help "\n# TYPE " name " counter\n" name " %llu\n", \
                             (unsigned long long)atomic_load(&m->field)))
    COUNTER("causeway_impressions_logged_total", "Impressions committed to the log.",
            impressions_logged);
    COUNTER("causeway_impressions_failed_total", "Impressions lost to a failed write.",
            impressions_failed);
    COUNTER("causeway_events_written_total", "Events committed (acknowledged).", events_written);
    COUNTER("causeway_events_duplicate_total", "Retried events recognised by event_id.",
            events_duplicate);
    COUNTER("causeway_events_rejected_total", "Events in rejected batches.", events_rejected);
    COUNTER("causeway_log_queue_full_total", "Requests answered 503 for a full log queue.",
            queue_full);
    COUNTER("causeway_log_commits_total", "Group commits of the log writer.", commits);
    COUNTER("causeway_log_commit_failures_total", "Failed log commits.", commit_failures);
    COUNTER("causeway_search_cache_hits_total", "Searches answered from the result cache.",
            cache_hits);
    COUNTER("causeway_search_cache_misses_total", "Searches computed from the index.",
            cache_misses);
    COUNTER("causeway_reloads_total", "Successful reloads of index and model.", reloads_ok);
    COUNTER("causeway_reloads_failed_total", "Failed reloads (the old state kept serving).",
            reloads_failed);
#undef COUNTER
    rc = rc ? rc
            : cw_buf_printf(&b,
                            "# HELP causeway_documents_indexed Documents in the serving index.\n"
                            "# TYPE causeway_documents_indexed gauge\ncauseway_documents_indexed "
                            "%u\n# HELP causeway_log_queue_depth Jobs waiting for the log "
                            "writer.\n# TYPE causeway_log_queue_depth gauge\n"
                            "causeway_log_queue_depth %u\n",
                            n_docs, srv_writer_depth(&s->writer));
    if (rc != CW_OK) {
        cw_buf_fini(&b);
        return MHD_NO;
    }
    return send_buf(conn, rq, 200, &b, "text/plain; version=0.0.4");
}

static bool is_loopback(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr) {
        return false;
    }
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        /* ::1, or an IPv4 loopback client of a dual-stack socket (::ffff:127.x.y.z). */
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127);
    }
    return false;
}

/* Constant-time comparison so the token cannot be guessed byte by byte from timing. */
static bool token_equal(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned char diff = (unsigned char)(na != nb);
    for (size_t i = 0; i < nb; i++) {
        diff |= (unsigned char)(a[i < na ? i : 0] ^ b[i]);
    }
    return diff == 0;
}

static MHD_RESULT_T route_reload(srv_server *s, struct MHD_Connection *conn, srv_req *rq)
{
    if (s->admin_token) {
        const char *auth =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!auth || strncmp(auth, "Bearer ", 7) != 0 || !token_equal(auth + 7, s->admin_token)) {
            return send_error_status(conn, rq, 401, "unauthorized",
                                     "admin routes need \"Authorization: Bearer <token>\"", NULL,
                                     NULL);
        }
    } else if (!is_loopback(conn)) {
        return send_error_status(conn, rq, 403, "forbidden",
                                 "admin routes accept loopback clients only (or configure "
                                 "admin_token)",
                                 NULL, NULL);
    }
    cw_err err;
    if (srv_reload(s, &err) != CW_OK) {
        return send_error_status(conn, rq, 500, "reload_failed", err.msg, NULL, NULL);
    }
    return route_status(s, conn, rq, true);
}

/* GET /: the embedded search page (server/page.c). */
static MHD_RESULT_T route_page(struct MHD_Connection *conn, srv_req *rq)
{
    size_t len = 0;
    const char *page = srv_page_html(&len);
    cw_buf b = {0};
    if (cw_buf_append(&b, page, len) != CW_OK) {
        return MHD_NO;
    }
    return send_buf(conn, rq, 200, &b, "text/html; charset=utf-8");
}

/* GET /report: the live report of this server's log (server/page.c). */
static MHD_RESULT_T route_report(srv_server *s, struct MHD_Connection *conn, srv_req *rq)
{
    cw_err err;
    cw_buf b = {0};
    if (srv_report_live(s->db_path, &b, &err) != CW_OK) {
        cw_buf_fini(&b);
        return send_err(conn, rq, &err);
    }
    return send_buf(conn, rq, 200, &b, "text/html; charset=utf-8");
}

/* ---- dispatch --------------------------------------------------------------- */

typedef struct route {
    const char *path;
    bool prefix;       /* path is a prefix ("/docs/") */
    const char *allow; /* Allow header */
    int id;
} route;

static const route routes[] = {
    {"/search", false, "GET, HEAD, POST", SRV_ROUTE_SEARCH},
    {"/events", false, "POST", SRV_ROUTE_EVENTS},
    {"/docs/", true, "GET, HEAD", SRV_ROUTE_DOCS},
    {"/healthz", false, "GET, HEAD", SRV_ROUTE_HEALTHZ},
    {"/readyz", false, "GET, HEAD", SRV_ROUTE_READYZ},
    {"/metrics", false, "GET, HEAD", SRV_ROUTE_METRICS},
    {"/admin/reload", false, "POST", SRV_ROUTE_RELOAD},
    {"/", false, "GET, HEAD", SRV_ROUTE_PAGE},
    {"/report", false, "GET, HEAD", SRV_ROUTE_REPORT},
};

static const route *find_route(const char *url)
{
    for (size_t i = 0; i < CW_ARRAY_LEN(routes); i++) {
        const route *r = &routes[i];
        if (r->prefix ? strncmp(url, r->path, strlen(r->path)) == 0 : strcmp(url, r->path) == 0) {
            return r;
        }
    }
    return NULL;
}

static bool method_allowed(const route *r, const char *method)
{
    bool is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool is_post = strcmp(method, "POST") == 0;
    switch (r->id) {
    case SRV_ROUTE_SEARCH: return is_get || is_post;
    case SRV_ROUTE_EVENTS:
    case SRV_ROUTE_RELOAD: return is_post;
    default: return is_get;
    }
}

static MHD_RESULT_T dispatch(srv_server *s, struct MHD_Connection *conn, srv_req *rq,
                             const char *url, const char *method)
{
    const route *r = find_route(url);
    if (!r) {
        rq->route = SRV_ROUTE_OTHER;
        char msg[160];
        snprintf(msg, sizeof msg, "no route %.100s", url);
        return send_error_status(conn, rq, 404, "not_found", msg, NULL, NULL);
    }
    rq->route = r->id;
    if (!method_allowed(r, method)) {
        char msg[160];
        snprintf(msg, sizeof msg, "%.32s is not allowed on %s (allowed: %s)", method, r->path,
                 r->allow);
        return send_error_status(conn, rq, 405, "method_not_allowed", msg, NULL, r->allow);
    }
    if (rq->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body over %zu bytes", s->cfg.max_body_bytes);
        return send_error_status(conn, rq, 413, "too_large", msg, NULL, NULL);
    }
    switch (r->id) {
    case SRV_ROUTE_SEARCH: return route_search(s, conn, rq, method);
    case SRV_ROUTE_EVENTS: return route_events(s, conn, rq);
    case SRV_ROUTE_DOCS: return route_docs(s, conn, rq, url + strlen(r->path));
    case SRV_ROUTE_HEALTHZ: return route_status(s, conn, rq, false);
    case SRV_ROUTE_READYZ: return route_status(s, conn, rq, true);
    case SRV_ROUTE_METRICS: return route_metrics(s, conn, rq);
    case SRV_ROUTE_PAGE: return route_page(conn, rq);
    case SRV_ROUTE_REPORT: return route_report(s, conn, rq);
    default: return route_reload(s, conn, rq);
    }
}

static MHD_RESULT_T on_request(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    (void)version;
    srv_server *s = cls;
    srv_req *rq = *con_cls;
    if (!rq) {
        /* First call: headers only. Queueing a response here would make MHD 0.9.75
         * drop keep-alive (issue 3), so only allocate the context. */
        rq = calloc(1, sizeof *rq);
        if (!rq || !(rq->arena = cw_arena_new(16 << 10))) {
            free(rq);
            return MHD_NO;
        }
        rq->t0_ns = cw_now_ns();
        rq->route = SRV_ROUTE_OTHER;
        atomic_fetch_add(&s->in_flight, 1);
        *con_cls = rq;
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body_bytes) {
            /* The one answer given on the first call: refusing before the upload saves
             * reading a body we would discard, and MHD accepts a response only before
             * the upload starts or after it ended. The connection closes afterwards. */
            rq->too_large = true;
            return dispatch(s, conn, rq, url, method);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!rq->too_large && rq->body.len + *upload_data_size <= s->cfg.max_body_bytes) {
            if (cw_buf_append(&rq->body, upload_data, *upload_data_size) != CW_OK) {
                return MHD_NO;
            }
        } else {
            rq->too_large = true;
            cw_buf_fini(&rq->body);
        }
        /* A chunked body over the limit is read and discarded to its end, then
         * answered 413; the connection timeout bounds a slow one. */
        *upload_data_size = 0;
        return MHD_YES;
    }
    return dispatch(s, conn, rq, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    srv_server *s = cls;
    srv_req *rq = *con_cls;
    if (!rq) {
        return;
    }
    uint64_t us = (cw_now_ns() - rq->t0_ns) / 1000;
    int c = SRV_N_CODES - 1;
    for (int i = 0; i < SRV_N_CODES - 1; i++) {
        if (counted_codes[i] == rq->status) {
            c = i;
        }
    }
    int k = SRV_N_BUCKETS - 1;
    for (int i = 0; i < SRV_N_BUCKETS - 1; i++) {
        if ((double)us / 1e6 <= bucket_s[i]) {
            k = i;
            break;
        }
    }
    if (rq->status) {
        atomic_fetch_add(&s->metrics.requests[rq->route][c], 1);
        atomic_fetch_add(&s->metrics.latency_bucket[rq->route][k], 1);
        atomic_fetch_add(&s->metrics.latency_sum_us[rq->route], us);
    }
    cw_buf_fini(&rq->body);
    cw_arena_free(rq->arena);
    free(rq);
    *con_cls = NULL;
    atomic_fetch_sub(&s->in_flight, 1);
}

/* Leave percent-escapes alone: srv_percent_decode checks them strictly per value. */
static size_t unescape_none(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return strlen(s);
}

/* ---- lifecycle -------------------------------------------------------------- */

static char *dup_or_null(const char *s, bool *ok)
{
    if (!s) {
        return NULL;
    }
    char *d = strdup(s);
    if (!d) {
        *ok = false;
    }
    return d;
}

int srv_new(const srv_config *cfg, srv_server **out, cw_err *err)
{
    if (!cfg->index_dir || !cfg->db_path) {
        return cw_err_set(err, CW_EINVAL, "serve needs an index directory and a log database");
    }
    if (cfg->threads == 0 || cfg->threads > 256) {
        return cw_err_set(err, CW_EINVAL, "threads must be in 1..256");
    }
    if (cfg->max_body_bytes < 1024 || cfg->max_body_bytes > SRV_MAX_BODY_BYTES_CAP) {
        return cw_err_set(err, CW_EINVAL, "max body bytes must be in 1024..%zu",
                          SRV_MAX_BODY_BYTES_CAP);
    }
    /* An IPv4 literal, else an IPv6 one ("::1", "::"); IPv6 listens dual-stack, so "::"
     * also takes IPv4 clients (they appear as ::ffff:a.b.c.d, see is_loopback). */
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(cfg->port)};
    struct sockaddr_in6 addr6 = {.sin6_family = AF_INET6, .sin6_port = htons(cfg->port)};
    const char *bind_addr = cfg->bind ? cfg->bind : "127.0.0.1";
    bool is_v6 = false;
    if (inet_pton(AF_INET, bind_addr, &addr.sin_addr) != 1) {
        if (inet_pton(AF_INET6, bind_addr, &addr6.sin6_addr) != 1) {
            return cw_err_set(err, CW_EINVAL,
                              "bind address \"%s\" is not an IPv4 or IPv6 address literal",
                              bind_addr);
        }
        is_v6 = true;
    }
    causal_rpol logging = {CAUSAL_RPOL_DET, 1, 1, 0};
    if (cfg->logging_policy && causal_rpol_parse(cfg->logging_policy, &logging, err) != CW_OK) {
        return cw_err_prefix(err, "logging policy: ");
    }
    int retrieval = RETRIEVAL_AUTO;
    if (cfg->retrieval && strcmp(cfg->retrieval, "auto") != 0) {
        if (strcmp(cfg->retrieval, "bm25") == 0) {
            retrieval = RETRIEVAL_BM25;
        } else if (strcmp(cfg->retrieval, "hybrid") == 0) {
            retrieval = RETRIEVAL_HYBRID;
        } else {
            return cw_err_set(err, CW_EINVAL, "retrieval must be bm25, hybrid or auto, got \"%s\"",
                              cfg->retrieval);
        }
    }
    const char *fusion = "rrf";
    if (cfg->fusion && strcmp(cfg->fusion, "rrf") != 0) {
        if (strcmp(cfg->fusion, "weighted") != 0) {
            return cw_err_set(err, CW_EINVAL, "fusion must be rrf or weighted, got \"%s\"",
                              cfg->fusion);
        }
        fusion = "weighted";
    }
    if (!(cfg->dense_weight >= 0 && cfg->dense_weight <= 1)) {
        return cw_err_set(err, CW_EINVAL, "dense weight must be in [0, 1], got %g",
                          cfg->dense_weight);
    }
    if (!(cfg->rrf_k > 0 && cfg->rrf_k <= 1e6)) {
        return cw_err_set(err, CW_EINVAL, "rrf k must be in (0, 1e6], got %g", cfg->rrf_k);
    }
    srv_server *s = calloc(1, sizeof *s);
    if (!s) {
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    bool ok = true;
    s->cfg = *cfg;
    s->logging = logging;
    s->retrieval = retrieval;
    s->cfg.retrieval = NULL; /* parsed above; the string is the caller's */
    s->fusion = fusion;
    s->cfg.fusion = NULL;
    s->index_dir = dup_or_null(cfg->index_dir, &ok);
    s->db_path = dup_or_null(cfg->db_path, &ok);
    s->model_path = dup_or_null(cfg->model_path, &ok);
    s->bind = dup_or_null(bind_addr, &ok);
    s->admin_token = dup_or_null(cfg->admin_token, &ok);
    pthread_mutex_init(&s->state_mu, NULL);
    pthread_mutex_init(&s->reload_mu, NULL);
    int rc = CW_OK;
    if (!ok) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory");
        goto fail;
    }
    rc = state_load(s->index_dir, s->model_path, s->cfg.cache_bytes, s->retrieval, &s->state, err);
    if (rc != CW_OK) {
        goto fail;
    }
    causal_log_opts lo = causal_log_opts_default();
    lo.sync = cfg->sync;
    rc = causal_log_open(s->db_path, &lo, &s->log, err);
    if (rc != CW_OK) {
        goto fail;
    }
    rc = srv_writer_start(&s->writer, s->log, cfg->sync, cfg->queue_capacity, cfg->commit_batch,
                          &s->metrics, err);
    if (rc != CW_OK) {
        goto fail;
    }
    unsigned flags =
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (is_v6) {
        flags |= MHD_USE_DUAL_STACK;
    }
    const struct sockaddr *sa =
        is_v6 ? (const struct sockaddr *)&addr6 : (const struct sockaddr *)&addr;
    s->mhd = MHD_start_daemon(
        flags, cfg->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cfg->threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)(cfg->timeout_s ? cfg->timeout_s : 15), MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_UNESCAPE_CALLBACK, unescape_none, NULL,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
    if (!s->mhd) {
        rc = cw_err_set(err, CW_EIO, "cannot listen on %s%s%s:%u (address in use?)",
                        is_v6 ? "[" : "", bind_addr, is_v6 ? "]" : "", (unsigned)cfg->port);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    *out = s;
    return CW_OK;
fail:
    srv_free(s);
    return rc;
}

void srv_free(srv_server *s)
{
    if (!s) {
        return;
    }
    atomic_store(&s->stopping, true);
    if (s->mhd) {
        /* Stop accepting, let requests in flight finish (bounded), then stop. The listen
         * socket quiesce hands back is ours to close, but only after MHD_stop_daemon (its
         * threads may still hold it: microhttpd.h). */
        MHD_socket lfd = MHD_quiesce_daemon(s->mhd);
        uint64_t deadline = cw_now_ns() + 10ull * 1000000000ull;
        while (atomic_load(&s->in_flight) > 0 && cw_now_ns() < deadline) {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        MHD_stop_daemon(s->mhd);
        if (lfd != MHD_INVALID_SOCKET) {
            close(lfd);
        }
    }
    srv_writer_stop(&s->writer); /* drains and commits the queue */
    causal_log_close(s->log);
    state_release(s->state);
    pthread_mutex_destroy(&s->state_mu);
    pthread_mutex_destroy(&s->reload_mu);
    free(s->index_dir);
    free(s->db_path);
    free(s->model_path);
    free(s->bind);
    free(s->admin_token);
    free(s);
}
