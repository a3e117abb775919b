/* Integration tests of `causeway serve` (issue 3): the real binary on an ephemeral
 * loopback port, driven over HTTP with libcurl: every route and bad input, concurrent
 * clients, reload under load, graceful shutdown, and kill -9 while events stream. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "causal/causal.h"
#include "harness.h"

static char dir[64];
static char ixdir[128], dbpath[128], portfile[128], cfgpath[128];
static pid_t server_pid;
static unsigned port;

static th_resp get(const char *path)
{
    th_resp r;
    CURLcode rc = th_http(NULL, port, "GET", path, NULL, 0, NULL, &r);
    cr_assert(eq(int, rc, CURLE_OK), "GET %s: %s", path, curl_easy_strerror(rc));
    return r;
}

static th_resp post(const char *path, const char *body)
{
    th_resp r;
    CURLcode rc = th_http(NULL, port, "POST", path, body, strlen(body), NULL, &r);
    cr_assert(eq(int, rc, CURLE_OK), "POST %s: %s", path, curl_easy_strerror(rc));
    return r;
}

static void start_server(const char *extra1, const char *extra2)
{
    const char *extra[] = {"--threads", "4", extra1, extra2, NULL};
    server_pid = th_serve_start(ixdir, dbpath, portfile, extra, false, &port, NULL);
}

/* Sends sig and waits; returns the exit status. */
static int stop_server(int sig)
{
    return th_serve_stop(&server_pid, sig);
}

static void setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    th_tmpdir(dir, sizeof dir, "srv");
    snprintf(ixdir, sizeof ixdir, "%s/ix", dir);
    snprintf(dbpath, sizeof dbpath, "%s/log.db", dir);
    snprintf(portfile, sizeof portfile, "%s/port", dir);
    snprintf(cfgpath, sizeof cfgpath, "%s/config.json", dir);
    const char *src = getenv("CW_SRCDIR");
    char corpus[512];
    snprintf(corpus, sizeof corpus, "%s/tests/data/server/corpus.jsonl", src ? src : ".");
    char *argv[] = {(char *)th_bin(), "index", "build",   "--corpus", corpus,
                    "--out",          ixdir,   "--quiet", NULL};
    cr_assert(eq(int, th_run(argv, NULL, NULL), 0), "indexing %s failed", corpus);
}

static void teardown(void)
{
    if (server_pid > 0) {
        stop_server(SIGKILL);
    }
    th_rmtree(dir);
}

TestSuite(srv_http, .init = setup, .fini = teardown, .timeout = 120);

/* ---- tests ---------------------------------------------------------------- */

static unsigned long long impression_of(const char *body)
{
    const char *p = strstr(body, "\"impression_id\":");
    cr_assert(p != NULL, "no impression_id in %s", body);
    return strtoull(p + 16, NULL, 10);
}

Test(srv_http, search_get_and_post_rank_with_highlighted_snippets)
{
    start_server(NULL, NULL);
    th_resp r = get("/search?q=white+rabbit&k=3");
    cr_assert(eq(long, r.status, 200), "%s", r.body);
    /* d1 has both terms in title and text: BM25 ranks it first. */
    cr_expect(strstr(r.body, "\"results\":[{\"id\":\"d1\"") != NULL, "%s", r.body);
    cr_expect(strstr(r.body, "<mark>rabbit</mark>") != NULL, "%s", r.body);
    cr_expect(strstr(r.body, "\"position\":3") != NULL, "%s", r.body);
    cr_expect(strstr(r.body, "\"took_ms\":") != NULL);
    unsigned long long a = impression_of(r.body);
    free(r.body);
    r = post("/search", "{\"query\":\"rabbit\",\"k\":2,\"offset\":1,\"explain\":true}");
    cr_assert(eq(long, r.status, 200), "%s", r.body);
    cr_expect(strstr(r.body, "\"position\":2") != NULL, "%s", r.body);
    cr_expect(strstr(r.body, "\"position\":1") == NULL, "offset 1 starts at 2: %s", r.body);
    cr_expect(strstr(r.body, "\"bm25_title\":") != NULL, "%s", r.body);
    cr_expect(gt(u64, impression_of(r.body), a));
    free(r.body);
    r = get("/search?q=%C3%BCn%C3%AFc%C3%B6d%C3%A9");
    cr_assert(eq(long, r.status, 200), "%s", r.body);
    cr_expect(strstr(r.body, "\"id\":\"d12\"") != NULL, "%s", r.body);
    free(r.body);
    cr_expect(eq(int, stop_server(SIGTERM), 0));
}

typedef struct bad_case {
    const char *method;
    const char *path;
    const char *body;
    long status;
    const char *needle; /* in the JSON error message */
} bad_case;

Test(srv_http, every_bad_input_gets_its_documented_4xx_json_error)
{
    start_server("--max-body", "4096");
    char longq[1200 + 32];
    strcpy(longq, "/search?q=");
    memset(longq + 10, 'a', 1100);
    longq[1110] = '\0';
    char *big = malloc(8192);
    memset(big, ' ', 8191);
    big[0] = '[';
    big[8190] = ']';
    big[8191] = '\0';
    const bad_case cases[] = {
        {"GET", "/search", NULL, 400, "query is empty"},
        {"GET", "/search?q=", NULL, 400, "query is empty"},
        {"GET", longq, NULL, 413, "limit 1024"},
        {"GET", "/search?q=a&k=0", NULL, 400, "k must be in 1..1000"},
        {"GET", "/search?q=a&k=1001", NULL, 400, "k must be in 1..1000"},
        {"GET", "/search?q=a&k=ten", NULL, 400, "whole number"},
        {"GET", "/search?q=a&k=10&offset=995", NULL, 400, "offset + k"},
        {"GET", "/search?q=%ZZrabbit", NULL, 400, "bad percent-encoding"},
        {"GET", "/search?q=rabbit%", NULL, 400, "bad percent-encoding"},
        {"GET", "/search?q=%C3%28", NULL, 400, "invalid UTF-8"},
        {"GET", "/search?q=%FF", NULL, 400, "invalid UTF-8"},
        /* QA: a repeated parameter was silently the first one; a bad logging policy was
         * "malformed_request" though the request parses (api.md: invalid_request). */
        {"GET", "/search?q=a&q=b", NULL, 400, "parameter q given 2 times"},
        {"GET", "/search?q=a&k=5&k=6", NULL, 400, "parameter k given 2 times"},
        {"POST", "/search", "{\"query\":\"a\",\"policy\":\"bogus\"}", 400,
         "{\"error\":{\"code\":\"invalid_request\",\"message\":\"policy: "},
        {"POST", "/search", "{\"query\":", 400, "malformed JSON at line 1"},
        {"POST", "/search", "[1,2]", 400, "JSON object"},
        {"POST", "/search", "{\"query\":\"a\",\"k\":0}", 400, "k must be in 1..1000"},
        {"POST", "/search", "{\"query\":\"a\",\"k\":\"5\"}", 400, "must be an integer"},
        {"POST", "/search", "{\"query\":\"a\",\"kk\":5}", 400, "unknown member"},
        {"POST", "/search", "{\"query\":\"a\\u0000b\"}", 400, "NUL"},
        {"POST", "/search", big, 413, "over 4096 bytes"},
        {"POST", "/events", "{", 400, "malformed JSON"},
        {"POST", "/events", "[]", 400, "no events"},
        {"POST", "/events", "[{\"impression_id\":1}]", 400, "doc_id"},
        {"POST", "/events",
         "[{\"impression_id\":1,\"doc_id\":\"d1\",\"position\":1,\"type\":\"buy\"}]", 400,
         "\\\"type\\\" must be one of"},
        {"POST", "/events",
         "[{\"impression_id\":99,\"doc_id\":\"d1\",\"position\":1,\"type\":\"click\"}]", 400,
         "unknown impression 99"},
        {"GET", "/docs/nope", NULL, 404, "no document with id"},
        {"GET", "/docs/%G1", NULL, 400, "bad percent-encoding"},
        {"GET", "/nowhere", NULL, 404, "no route"},
        {"DELETE", "/search", NULL, 405, "allowed: GET, HEAD, POST"},
        {"GET", "/events", NULL, 405, "allowed: POST"},
        {"PUT", "/admin/reload", NULL, 405, "allowed: POST"},
    };
    for (size_t i = 0; i < CW_ARRAY_LEN(cases); i++) {
        const bad_case *c = &cases[i];
        th_resp r;
        CURLcode rc = th_http(NULL, port, c->method, c->path, c->body,
                              c->body ? strlen(c->body) : 0, NULL, &r);
        cr_assert(eq(int, rc, CURLE_OK), "case %zu: %s", i, curl_easy_strerror(rc));
        cr_expect(eq(long, r.status, c->status), "case %zu %s %.60s: %s", i, c->method, c->path,
                  r.body ? r.body : "");
        cr_expect(r.body && strncmp(r.body, "{\"error\":{\"code\":\"", 18) == 0,
                  "case %zu: not an error JSON: %s", i, r.body ? r.body : "");
        cr_expect(r.body && strstr(r.body, c->needle) != NULL, "case %zu: want \"%s\" in %s", i,
                  c->needle, r.body ? r.body : "");
        if (c->status == 405) {
            cr_expect(strstr(r.headers, "Allow: ") != NULL, "case %zu: no Allow header", i);
        }
        free(r.body);
    }
    free(big);
    /* Still alive after all of that. */
    th_resp r = get("/healthz");
    cr_expect(eq(long, r.status, 200));
    free(r.body);
    cr_expect(eq(int, stop_server(SIGTERM), 0));
}

Test(srv_http, events_are_validated_against_the_impression_and_retries_are_idempotent)
{
    start_server(NULL, NULL);
    th_resp r = get("/search?q=rabbit&k=2");
    cr_assert(eq(long, r.status, 200));
    unsigned long long imp = impression_of(r.body);
    /* BM25 order for "rabbit" on the fixture: d1, d5. */
    cr_assert(strstr(r.body, "{\"id\":\"d1\"") != NULL, "%s", r.body);
    free(r.body);
    char body[1024];
    snprintf(body, sizeof body,
             "[{\"impression_id\":%llu,\"doc_id\":\"d1\",\"position\":1,\"type\":\"click\","
             "\"event_id\":\"c1\"},{\"impression_id\":%llu,\"doc_id\":\"d1\",\"position\":1,"
             "\"type\":\"dwell\",\"value_ms\":5000}]",
             imp, imp);
    r = post("/events", body);
    cr_expect(eq(long, r.status, 200), "%s", r.body);
    cr_expect(eq(str, r.body, "{\"accepted\":2,\"duplicates\":0}\n"));
    free(r.body);
    snprintf(body, sizeof body,
             "{\"events\":[{\"impression_id\":%llu,\"doc_id\":\"d1\",\"position\":1,"
             "\"type\":\"click\",\"event_id\":\"c1\"}]}",
             imp);
    r = post("/events", body);
    cr_expect(eq(str, r.body, "{\"accepted\":0,\"duplicates\":1}\n"));
    free(r.body);
    /* One good, one not shown, one at the wrong position: all-or-nothing. */
    snprintf(body, sizeof body,
             "[{\"impression_id\":%llu,\"doc_id\":\"d5\",\"position\":2,\"type\":\"click\"},"
             "{\"impression_id\":%llu,\"doc_id\":\"d9\",\"position\":2,\"type\":\"click\"},"
             "{\"impression_id\":%llu,\"doc_id\":\"d5\",\"position\":1,\"type\":\"click\"}]",
             imp, imp, imp);
    r = post("/events", body);
    cr_expect(eq(long, r.status, 400));
    cr_expect(strstr(r.body, "\"code\":\"rejected_events\"") != NULL, "%s", r.body);
    cr_expect(strstr(r.body, "{\"index\":1,\"reason\":\"impression") != NULL, "%s", r.body);
    cr_expect(strstr(r.body, "did not show doc \\\"d9\\\"") != NULL, "%s", r.body);
    cr_expect(strstr(r.body, "{\"index\":2,") != NULL, "%s", r.body);
    cr_expect(strstr(r.body, "{\"index\":0,") == NULL, "%s", r.body);
    free(r.body);
    r = get("/metrics");
    cr_expect(strstr(r.body, "causeway_events_written_total 2\n") != NULL, "%s", r.body);
    cr_expect(strstr(r.body, "causeway_events_duplicate_total 1\n") != NULL, "%s", r.body);
    cr_expect(strstr(r.body, "causeway_events_rejected_total 3\n") != NULL, "%s", r.body);
    cr_expect(strstr(r.body, "causeway_documents_indexed 12\n") != NULL, "%s", r.body);
    cr_expect(strstr(r.body, "causeway_http_requests_total{route=\"search\",code=\"200\"} 1\n") !=
                  NULL,
              "%s", r.body);
    cr_expect(strstr(r.body, "causeway_http_request_duration_seconds_bucket{route=\"search\","
                             "le=\"+Inf\"} 1\n") != NULL,
              "%s", r.body);
    cr_expect(strstr(r.body, "causeway_log_queue_depth ") != NULL);
    free(r.body);
    cr_assert(eq(int, stop_server(SIGTERM), 0));

    /* The log holds exactly the accepted events, the impression with its items. */
    causal_log_opts o = causal_log_opts_default();
    o.read_only = true;
    causal_log *log = NULL;
    cw_err err;
    cr_assert(eq(int, causal_log_open(dbpath, &o, &log, &err), CW_OK), "%s", err.msg);
    causal_log_reader *rd = NULL;
    cr_assert(eq(int, causal_log_reader_new(log, NULL, &rd, &err), CW_OK));
    const causal_impression *ci;
    cr_assert(eq(int, causal_log_reader_next(rd, &ci, &err), 1));
    cr_expect(eq(u64, ci->id, imp));
    cr_expect(eq(str, (char *)ci->query, "rabbit"));
    cr_expect(eq(str, (char *)ci->policy, "bm25"));
    cr_assert(eq(sz, ci->n_items, 2));
    cr_expect(eq(str, (char *)ci->items[0].doc_id, "d1"));
    cr_expect(eq(u32, ci->items[0].n_clicks, 1));
    cr_expect(eq(dbl, ci->items[0].propensity, 1.0));
    cr_expect(eq(u32, ci->n_features, RANK_TEXT_FEATURES)); /* ranker/'s cw-text-v1 */
    cr_expect(eq(str, (char *)ci->feature_set, RANK_FEATURE_SET));
    cr_expect(ci->items[1].features != NULL);
    causal_log_reader_free(rd);
    causal_log_close(log);
}

Test(srv_http, docs_readyz_metrics_and_admin_reload_on_loopback)
{
    start_server(NULL, NULL);
    th_resp r = get("/docs/d7");
    cr_expect(eq(long, r.status, 200));
    cr_expect(strstr(r.body, "\"title\":\"Pig and pepper\"") != NULL, "%s", r.body);
    cr_expect(strstr(r.body, "\"fields\":{\"chapter\":\"6\"}") != NULL, "%s", r.body);
    free(r.body);
    r = get("/readyz");
    cr_expect(eq(long, r.status, 200));
    cr_expect(strstr(r.body, "\"documents\":12") != NULL, "%s", r.body);
    free(r.body);
    /* The same page twice: the second comes from the cache, still as a new impression. */
    r = get("/search?q=tea+party&k=2");
    unsigned long long first = impression_of(r.body);
    char *body1 = r.body;
    r = get("/search?q=tea+party&k=2");
    cr_expect(gt(u64, impression_of(r.body), first));
    const char *a = strstr(body1, "\"results\""), *b = strstr(r.body, "\"results\"");
    size_t span = (size_t)(strstr(body1, "\"took_ms\"") - a);
    cr_expect(a && b && strncmp(a, b, span) == 0, "a cached page differs: %s vs %s", r.body, body1);
    free(r.body);
    free(body1);
    r = post("/admin/reload", "");
    cr_expect(eq(long, r.status, 200), "%s", r.body);
    free(r.body);
    r = get("/search?q=tea+party&k=2"); /* a reload empties the cache */
    free(r.body);
    r = get("/metrics");
    cr_expect(strstr(r.body, "\ncauseway_search_cache_hits_total 1\n") != NULL, "%s", r.body);
    cr_expect(strstr(r.body, "\ncauseway_search_cache_misses_total 2\n") != NULL, "%s", r.body);
    free(r.body);
    r = get("/metrics");
    cr_expect(strstr(r.headers, "Content-Type: text/plain; version=0.0.4") != NULL, "%s",
              r.headers);
    cr_expect(strstr(r.body, "causeway_reloads_total 1\n") != NULL, "%s", r.body);
    free(r.body);
    /* A failed reload keeps serving the old index and says why. */
    char moved[160];
    snprintf(moved, sizeof moved, "%s/ix.moved", dir);
    cr_assert(eq(int, rename(ixdir, moved), 0));
    r = post("/admin/reload", "");
    cr_expect(eq(long, r.status, 500));
    cr_expect(strstr(r.body, "still serving the previous index") != NULL, "%s", r.body);
    free(r.body);
    r = get("/search?q=rabbit");
    cr_expect(eq(long, r.status, 200), "%s", r.body);
    free(r.body);
    r = get("/metrics");
    cr_expect(strstr(r.body, "causeway_reloads_failed_total 1\n") != NULL, "%s", r.body);
    free(r.body);
    cr_expect(eq(int, stop_server(SIGINT), 0));
}

Test(srv_http, admin_routes_need_the_bearer_token_when_configured)
{
    FILE *f = fopen(cfgpath, "w");
    cr_assert(f != NULL);
    fputs("{\"admin_token\": \"s3cret\", \"timeout_s\": 5}\n", f);
    fclose(f);
    start_server("--config", cfgpath);
    th_resp r;
    cr_assert(eq(int, th_http(NULL, port, "POST", "/admin/reload", "", 0, NULL, &r), CURLE_OK));
    cr_expect(eq(long, r.status, 401), "%s", r.body);
    free(r.body);
    cr_assert(eq(
        int, th_http(NULL, port, "POST", "/admin/reload", "", 0, "Authorization: Bearer wrong", &r),
        CURLE_OK));
    cr_expect(eq(long, r.status, 401));
    free(r.body);
    cr_assert(
        eq(int,
           th_http(NULL, port, "POST", "/admin/reload", "", 0, "Authorization: Bearer s3cret", &r),
           CURLE_OK));
    cr_expect(eq(long, r.status, 200), "%s", r.body);
    free(r.body);
    cr_expect(eq(int, stop_server(SIGTERM), 0));
}

/* ---- load: concurrent clients, reload under load ------------------------------ */

typedef struct load_arg {
    int n;
    atomic_int *failures;
    atomic_bool *stop;
    unsigned long long *ids; /* n impression ids */
} load_arg;

static void *search_loop(void *p)
{
    load_arg *a = p;
    CURL *c = curl_easy_init();
    const char *qs[] = {"/search?q=rabbit", "/search?q=alice+tea&k=5", "/search?q=queen",
                        "/search?q=caf%C3%A9"};
    for (int i = 0; (a->n == 0 || i < a->n) && !(a->stop && atomic_load(a->stop)); i++) {
        th_resp r;
        CURLcode rc = th_http(c, port, "GET", qs[i % 4], NULL, 0, NULL, &r);
        if (rc != CURLE_OK || r.status != 200 || !r.body || !strstr(r.body, "\"results\":[")) {
            if (atomic_fetch_add(a->failures, 1) < 3) {
                fprintf(stderr, "failed request: %s, HTTP %ld: %.200s\n", curl_easy_strerror(rc),
                        r.status, r.body ? r.body : "");
            }
        } else if (a->ids) {
            a->ids[i] = strtoull(strstr(r.body, "\"impression_id\":") + 16, NULL, 10);
        }
        free(r.body);
    }
    curl_easy_cleanup(c);
    return NULL;
}

static int cmp_ull(const void *a, const void *b)
{
    unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
    return x < y ? -1 : x > y;
}

Test(srv_http, concurrent_clients_all_succeed_with_unique_impression_ids_and_all_are_logged)
{
    start_server(NULL, NULL);
    enum { T = 8, N = 60 };
    pthread_t th[T];
    load_arg args[T];
    atomic_int failures = 0;
    unsigned long long *ids = calloc(T * N, sizeof *ids);
    for (int t = 0; t < T; t++) {
        args[t] = (load_arg){N, &failures, NULL, ids + t * N};
        pthread_create(&th[t], NULL, search_loop, &args[t]);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
    }
    cr_expect(eq(int, atomic_load(&failures), 0));
    qsort(ids, T * N, sizeof *ids, cmp_ull);
    for (int i = 1; i < T * N; i++) {
        cr_assert(ne(u64, ids[i], ids[i - 1]), "impression id %llu served twice", ids[i]);
    }
    free(ids);
    /* Graceful shutdown drains the queue: every served ranking is in the log. */
    cr_assert(eq(int, stop_server(SIGTERM), 0));
    causal_log_opts o = causal_log_opts_default();
    o.read_only = true;
    causal_log *log = NULL;
    cw_err err;
    causal_log_counts cnt;
    cr_assert(eq(int, causal_log_open(dbpath, &o, &log, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(int, causal_log_count(log, &cnt, &err), CW_OK));
    cr_expect(eq(u64, cnt.n_impressions, (uint64_t)(T * N)));
    causal_log_close(log);
}

Test(srv_http, reload_under_load_fails_no_request)
{
    /* A queue deep enough that backpressure (a 503 for a full log queue, tested by the
     * writer's own contract) cannot fire on a loaded shared machine. */
    start_server("--queue", "200000");
    enum { T = 4 };
    pthread_t th[T];
    load_arg args[T];
    atomic_int failures = 0;
    atomic_bool stop = false;
    for (int t = 0; t < T; t++) {
        args[t] = (load_arg){0, &failures, &stop, NULL};
        pthread_create(&th[t], NULL, search_loop, &args[t]);
    }
    int reloads = 0;
    for (int i = 0; i < 30; i++) {
        if (i % 2) {
            cr_expect(eq(int, kill(server_pid, SIGHUP), 0));
        } else {
            th_resp r = post("/admin/reload", "");
            cr_expect(eq(long, r.status, 200), "%s", r.body);
            free(r.body);
        }
        reloads++;
        th_sleep_ms(30);
    }
    atomic_store(&stop, true);
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
    }
    cr_expect(eq(int, atomic_load(&failures), 0));
    /* SIGHUPs are coalesced by the kernel when they arrive faster than the loop; the
     * admin route's 15 are counted exactly. */
    th_resp r = get("/metrics");
    const char *p = strstr(r.body, "\ncauseway_reloads_total ");
    cr_assert(p != NULL);
    long n = strtol(p + 24, NULL, 10);
    cr_expect(n >= 15 && n <= reloads, "%ld reloads", n);
    free(r.body);
    cr_expect(eq(int, stop_server(SIGTERM), 0));
}

/* ---- kill -9 while events stream --------------------------------------------- */

typedef struct stream_arg {
    unsigned long long imp;
    atomic_int acked; /* batches acknowledged with 200 */
    int sent;
    atomic_bool stop;
} stream_arg;

enum { BATCH = 20 };

static void *event_stream(void *p)
{
    stream_arg *a = p;
    CURL *c = curl_easy_init();
    char *body = malloc(BATCH * 160 + 16);
    for (int b = 0; !atomic_load(&a->stop); b++) {
        size_t o = 0;
        o += (size_t)sprintf(body + o, "[");
        for (int i = 0; i < BATCH; i++) {
            o += (size_t)sprintf(body + o,
                                 "%s{\"impression_id\":%llu,\"doc_id\":\"d1\",\"position\":1,"
                                 "\"type\":\"click\",\"event_id\":\"b%d-%d\"}",
                                 i ? "," : "", a->imp, b, i);
        }
        o += (size_t)sprintf(body + o, "]");
        th_resp r;
        a->sent = b + 1;
        CURLcode rc = th_http(c, port, "POST", "/events", body, o, NULL, &r);
        bool ok = rc == CURLE_OK && r.status == 200;
        free(r.body);
        if (!ok) {
            break; /* the server is gone */
        }
        atomic_store(&a->acked, b + 1); /* batches 0..b acknowledged, in order */
    }
    free(body);
    curl_easy_cleanup(c);
    return NULL;
}

Test(srv_http, kill_9_mid_stream_loses_and_duplicates_no_acknowledged_event)
{
    start_server("--sync", "normal");
    th_resp r = get("/search?q=rabbit&k=2");
    unsigned long long imp = impression_of(r.body);
    free(r.body);
    stream_arg a = {.imp = imp};
    pthread_t th;
    pthread_create(&th, NULL, event_stream, &a);
    double deadline = th_now_s() + 60;
    while (atomic_load(&a.acked) < 10 && th_now_s() < deadline) {
        th_sleep_ms(5);
    }
    cr_assert(ge(int, atomic_load(&a.acked), 10), "events were not acknowledged");
    cr_assert(eq(int, stop_server(SIGKILL), 128 + SIGKILL));
    pthread_join(th, NULL);
    int acked = atomic_load(&a.acked);
    int sent = a.sent;

    /* Restart (recovers the WAL), resend the batch in flight at the kill: the client
     * does not know whether it landed, and event ids make the retry safe. */
    start_server(NULL, NULL);
    char *body = malloc(BATCH * 160 + 16);
    size_t o = (size_t)sprintf(body, "[");
    for (int i = 0; i < BATCH; i++) {
        o += (size_t)sprintf(body + o,
                             "%s{\"impression_id\":%llu,\"doc_id\":\"d1\",\"position\":1,"
                             "\"type\":\"click\",\"event_id\":\"b%d-%d\"}",
                             i ? "," : "", imp, sent - 1, i);
    }
    strcpy(body + o, "]");
    r = post("/events", body);
    cr_expect(eq(long, r.status, 200), "%s", r.body);
    free(r.body);
    free(body);
    cr_assert(eq(int, stop_server(SIGTERM), 0));

    causal_log_opts opts = causal_log_opts_default();
    opts.read_only = true;
    causal_log *log = NULL;
    cw_err err;
    cr_assert(eq(int, causal_log_open(dbpath, &opts, &log, &err), CW_OK), "%s", err.msg);
    int *seen = calloc((size_t)sent * BATCH, sizeof *seen);
    causal_event_reader *er = NULL;
    cr_assert(eq(int, causal_event_reader_new(log, &er, &err), CW_OK));
    const causal_event *e;
    int n_events = 0;
    while (causal_event_reader_next(er, &e, &err) == 1) {
        int b = -1, i = -1;
        cr_assert(eq(int, sscanf(e->client_id, "b%d-%d", &b, &i), 2));
        cr_assert(b >= 0 && b < sent && i >= 0 && i < BATCH, "unexpected event %s", e->client_id);
        seen[b * BATCH + i]++;
        n_events++;
    }
    causal_event_reader_free(er);
    causal_log_close(log);
    for (int b = 0; b < sent; b++) {
        for (int i = 0; i < BATCH; i++) {
            int want_min = (b < acked || b == sent - 1) ? 1 : 0;
            cr_expect(le(int, seen[b * BATCH + i], 1), "event b%d-%d stored twice", b, i);
            cr_expect(ge(int, seen[b * BATCH + i], want_min), "acknowledged event b%d-%d lost", b,
                      i);
        }
    }
    cr_expect(ge(int, n_events, acked *BATCH));
    free(seen);
}

Test(srv_http, idle_and_slow_clients_time_out)
{
    start_server("--timeout", "1");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(eq(int, connect(fd, (struct sockaddr *)&sa, sizeof sa), 0));
    const char *partial = "GET /search?q=rabbit HTTP/1.1\r\nHost: x\r\n"; /* never finished */
    cr_assert(eq(long, (long)write(fd, partial, strlen(partial)), (long)strlen(partial)));
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[256];
    double t0 = th_now_s();
    ssize_t n = read(fd, buf, sizeof buf);
    double waited = th_now_s() - t0;
    cr_expect(le(long, (long)n, 0L), "the server answered a half request");
    cr_expect(lt(dbl, waited, 9.0), "the connection was not closed by the timeout");
    close(fd);
    th_resp r = get("/healthz");
    cr_expect(eq(long, r.status, 200));
    free(r.body);
    cr_expect(eq(int, stop_server(SIGTERM), 0));
}

/* One request to http://[::1]:port<path> (or 127.0.0.1 when v4); returns the transport
 * result, *status the HTTP status. */
static CURLcode http_at(bool v6, const char *method, const char *path, long *status)
{
    char url[256];
    snprintf(url, sizeof url, "http://%s:%u%s", v6 ? "[::1]" : "127.0.0.1", port, path);
    CURL *c = curl_easy_init();
    cr_assert(c != NULL);
    FILE *sink = fopen("/dev/null", "w");
    cr_assert(sink != NULL);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    CURLcode rc = curl_easy_perform(c);
    *status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    fclose(sink);
    return rc;
}

/* Starts the server on --bind ::1 (the harness polls 127.0.0.1, unreachable here) and
 * waits for /healthz over IPv6. */
static void start_server_v6_only(void)
{
    char *argv[] = {(char *)th_bin(), "serve",  "--index", ixdir, "--db", dbpath, "--port", "0",
                    "--port-file",    portfile, "--bind",  "::1", NULL};
    unlink(portfile);
    server_pid = fork();
    cr_assert(server_pid >= 0);
    if (server_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (!freopen("/dev/null", "w", stdout)) {
            _exit(126);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    double deadline = th_now_s() + 20;
    port = 0;
    long status = 0;
    while (th_now_s() < deadline) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            if (fscanf(f, "%u", &port) != 1) {
                port = 0;
            }
            fclose(f);
        }
        if (port && http_at(true, "GET", "/healthz", &status) == CURLE_OK && status == 200) {
            return;
        }
        int st;
        cr_assert(waitpid(server_pid, &st, WNOHANG) != server_pid, "the server exited at start");
        th_sleep_ms(20);
    }
    cr_assert(false, "the server did not answer /healthz on [::1] within 20 s");
}

Test(srv_http, bind_takes_ipv6_literals_and_admin_routes_treat_ipv6_loopback_as_loopback)
{
    long status = 0;
    /* "::" listens dual-stack: IPv4 and IPv6 loopback clients both reach it, and both are
     * loopback for the admin routes (IPv4 arrives as ::ffff:127.0.0.1). */
    start_server("--bind", "::");
    cr_expect(eq(int, http_at(false, "POST", "/admin/reload", &status), CURLE_OK));
    cr_expect(eq(long, status, 200));
    cr_expect(eq(int, http_at(true, "GET", "/search?q=rabbit", &status), CURLE_OK));
    cr_expect(eq(long, status, 200));
    cr_expect(eq(int, http_at(true, "POST", "/admin/reload", &status), CURLE_OK));
    cr_expect(eq(long, status, 200));
    cr_expect(eq(int, stop_server(SIGTERM), 0));

    /* "::1" listens on IPv6 loopback only. */
    start_server_v6_only();
    cr_expect(eq(int, http_at(true, "POST", "/admin/reload", &status), CURLE_OK));
    cr_expect(eq(long, status, 200));
    cr_expect(eq(int, http_at(true, "GET", "/docs/d7", &status), CURLE_OK));
    cr_expect(eq(long, status, 200));
    cr_expect(eq(int, http_at(false, "GET", "/healthz", &status), CURLE_COULDNT_CONNECT));
    cr_expect(eq(int, stop_server(SIGTERM), 0));

    /* Not an address literal: refused at start with the reason. */
    char errpath[160];
    snprintf(errpath, sizeof errpath, "%s/serve.err", dir);
    char *argv[] = {(char *)th_bin(), "serve", "--index", ixdir,  "--db", dbpath,
                    "--port",         "0",     "--bind",  "::zz", NULL};
    cr_expect(ne(int, th_run(argv, NULL, errpath), 0));
    size_t len = 0;
    char *msg = NULL;
    cw_err err;
    cr_assert(eq(int, cw_file_read(errpath, 1 << 16, &msg, &len, &err), CW_OK), "%s", err.msg);
    cr_expect(strstr(msg, "bind address \"::zz\" is not an IPv4 or IPv6 address literal") != NULL,
              "%s", msg);
    free(msg);
}
