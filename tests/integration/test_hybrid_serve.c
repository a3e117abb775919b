/* tests/integration/test_hybrid_serve.c: `causeway serve` on an index with dense files
 * (built by `causeway embed train/build` on a small synthetic corpus) retrieves hybrid
 * candidates (BM25 + dense, RRF): the served list equals `causeway embed search --hybrid`
 * and `causeway search --hybrid`, contains documents BM25 cannot return, is logged with
 * policy "hybrid"; a request may ask "retrieval": "bm25"; hot reload reopens the dense
 * files together with the index; --fusion / --dense-weight / --rrf-k, config keys and a
 * request's "fusion" / "dense_weight" serve what `embed search --hybrid` computes with
 * the same settings and are logged in the policy name (issue 6 item 4). */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "index/index.h"
#include "ranker/ranker.h"

static char dir[64];
static char ixdir[128], dbpath[128], portfile[128], outpath[128];
static pid_t server_pid;
static unsigned port;
static char query[256]; /* the first query of the synthetic collection */

/* GET path, or POST body (NULL: empty). */
static CURLcode http(const char *method, const char *path, const char *body, th_resp *r)
{
    if (strcmp(method, "POST") == 0 && !body) {
        body = "";
    }
    return th_http(NULL, port, method, path, body, body ? strlen(body) : 0, NULL, r);
}

/* Starts the server with option flag = mode (NULL: none); returns false if it exited at
 * start (its exit code in *code). */
static bool start_server(const char *flag, const char *mode, int *code)
{
    const char *extra[] = {"--cache-mb", "0", flag, mode, NULL};
    server_pid = th_serve_start(ixdir, dbpath, portfile, extra, true, &port, code);
    return server_pid > 0;
}

static int stop_server(void)
{
    return th_serve_stop(&server_pid, SIGTERM);
}

static void setup(void)
{
    /* One BLAS thread for embed train: on a loaded 2-core machine OpenBLAS worker threads
     * of several test processes spin against each other. */
    setenv("OPENBLAS_NUM_THREADS", "1", 0);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    th_tmpdir(dir, sizeof dir, "hyb");
    snprintf(ixdir, sizeof ixdir, "%s/ix", dir);
    snprintf(dbpath, sizeof dbpath, "%s/log.db", dir);
    snprintf(portfile, sizeof portfile, "%s/port", dir);
    snprintf(outpath, sizeof outpath, "%s/out.txt", dir);
    char synth[128], corpus[160], queries[160];
    snprintf(synth, sizeof synth, "%s/synth", dir);
    snprintf(corpus, sizeof corpus, "%s/corpus.jsonl", synth);
    snprintf(queries, sizeof queries, "%s/queries.tsv", synth);
    char *sy[] = {(char *)th_bin(), "synth", "--out",  synth, "--docs",  "300",
                  "--queries",      "5",     "--seed", "2",   "--quiet", NULL};
    cr_assert(eq(int, th_run(sy, "/dev/null", "/dev/null"), 0), "causeway synth failed");
    char *ib[] = {(char *)th_bin(), "index", "build",   "--corpus", corpus,
                  "--out",          ixdir,   "--quiet", NULL};
    cr_assert(eq(int, th_run(ib, "/dev/null", "/dev/null"), 0), "indexing %s failed", corpus);
    /* A tiny model (32 dimensions, 2 epochs): seconds, not quality, is the point here. */
    char *tr[] = {(char *)th_bin(), "embed", "train",    "--index", ixdir,     "--dim", "32",
                  "--buckets",      "4096",  "--epochs", "2",       "--batch", "32",    NULL};
    cr_assert(eq(int, th_run(tr, "/dev/null", "/dev/null"), 0), "causeway embed train failed");
    char *bd[] = {(char *)th_bin(), "embed", "build", "--index", ixdir, NULL};
    cr_assert(eq(int, th_run(bd, "/dev/null", "/dev/null"), 0), "causeway embed build failed");
    FILE *f = fopen(queries, "r");
    cr_assert(f != NULL);
    char line[512];
    cr_assert(fgets(line, sizeof line, f) != NULL);
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    const char *tab = strchr(line, '\t');
    cr_assert(tab != NULL, "queries.tsv line without a tab: %s", line);
    snprintf(query, sizeof query, "%s", tab + 1);
}

static void teardown(void)
{
    if (server_pid > 0) {
        stop_server();
    }
    th_rmtree(dir);
    curl_global_cleanup();
}

#define MAX_IDS 1000

typedef struct id_list {
    char ids[MAX_IDS][32];
    size_t n;
    char policy[96], retrieval[32];
} id_list;

/* The ids, policy and retrieval of a /search answer (GET path, or POST body to /search). */
static void served_req(const char *method, const char *path, const char *body, id_list *out)
{
    th_resp r;
    cr_assert(eq(int, http(method, path, body, &r), CURLE_OK));
    cr_assert(eq(long, r.status, 200), "%s", r.body);
    json_error_t je;
    json_t *root = json_loads(r.body, 0, &je);
    cr_assert(root != NULL, "%s", r.body);
    json_t *res = json_object_get(root, "results");
    out->n = 0;
    for (size_t i = 0; i < json_array_size(res) && i < MAX_IDS; i++) {
        const char *id = json_string_value(json_object_get(json_array_get(res, i), "id"));
        cr_assert(id != NULL);
        snprintf(out->ids[out->n++], sizeof out->ids[0], "%s", id);
    }
    const char *pol = json_string_value(json_object_get(root, "policy"));
    const char *ret = json_string_value(json_object_get(root, "retrieval"));
    snprintf(out->policy, sizeof out->policy, "%s", pol ? pol : "");
    snprintf(out->retrieval, sizeof out->retrieval, "%s", ret ? ret : "");
    json_decref(root);
    free(r.body);
}

/* GET /search for the query with k and an optional retrieval parameter. */
static void served(uint32_t k, const char *retrieval, id_list *out)
{
    char path[600], q[300];
    size_t j = 0;
    for (const char *p = query; *p && j + 1 < sizeof q; p++) {
        q[j++] = *p == ' ' ? '+' : *p;
    }
    q[j] = '\0';
    snprintf(path, sizeof path, "/search?q=%s&k=%u%s%s", q, k, retrieval ? "&retrieval=" : "",
             retrieval ? retrieval : "");
    served_req("GET", path, NULL, out);
}

/* The ids of a CLI run's text output: lines "rank\tid\t...", snippet lines start with a tab. */
static void cli_ids(char *const argv[], id_list *out)
{
    cr_assert(eq(int, th_run(argv, outpath, "/dev/null"), 0), "%s %s failed", argv[1], argv[2]);
    FILE *f = fopen(outpath, "r");
    cr_assert(f != NULL);
    char line[4096];
    out->n = 0;
    while (fgets(line, sizeof line, f) && out->n < MAX_IDS) {
        if (line[0] == '\t') {
            continue;
        }
        char *t1 = strchr(line, '\t');
        cr_assert(t1 != NULL, "unexpected line: %s", line);
        char *t2 = strchr(t1 + 1, '\t');
        cr_assert(t2 != NULL, "unexpected line: %s", line);
        snprintf(out->ids[out->n++], sizeof out->ids[0], "%.*s", (int)(t2 - t1 - 1), t1 + 1);
    }
    fclose(f);
}

static void assert_same(const id_list *a, const id_list *b, const char *what)
{
    cr_assert(gt(sz, a->n, 0), "%s: no results (two empty lists would prove nothing)", what);
    cr_assert(eq(sz, a->n, b->n), "%s: %zu vs %zu results", what, a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        cr_assert(eq(str, (char *)a->ids[i], (char *)b->ids[i]), "%s: rank %zu", what, i + 1);
    }
}

/* Writes json (one line) as the test directory's serve.json; returns that path. */
static const char *serve_config(const char *json)
{
    static char cfg[160];
    snprintf(cfg, sizeof cfg, "%s/serve.json", dir);
    FILE *f = fopen(cfg, "w");
    cr_assert(f != NULL, "cannot write %s", cfg);
    fprintf(f, "%s\n", json);
    cr_assert(eq(int, fclose(f), 0), "cannot write %s", cfg);
    return cfg;
}

static bool contains(const id_list *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->ids[i], id) == 0) {
            return true;
        }
    }
    return false;
}

/* Impressions logged under policy name, read after the server stopped (log drained). */
static int logged(const char *name)
{
    sqlite3 *db = NULL;
    cr_assert(eq(int, sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK));
    sqlite3_stmt *st = NULL;
    cr_assert(eq(int,
                 sqlite3_prepare_v2(db,
                                    "SELECT count(*) FROM impressions i JOIN policies p ON "
                                    "p.id = i.policy_id WHERE p.name = ?",
                                    -1, &st, NULL),
                 SQLITE_OK),
              "%s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    cr_assert(eq(int, sqlite3_step(st), SQLITE_ROW));
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

TestSuite(hybrid_serve, .init = setup, .fini = teardown, .timeout = 120);

Test(hybrid_serve, served_hybrid_equals_cli_and_finds_what_bm25_cannot)
{
    int code = 0;
    cr_assert(start_server(NULL, NULL, &code), "the server exited with %d", code);
    /* Default (auto) on an index with dense files: hybrid, equal to both CLI paths. */
    static id_list web, emb, cli, bm25_all, web_bm25;
    served(20, NULL, &web);
    cr_assert(eq(str, web.retrieval, "hybrid"));
    cr_assert(eq(str, web.policy, "hybrid"));
    char *es[] = {(char *)th_bin(), "embed", "search", "--index", ixdir,
                  "--hybrid",       "--k",   "20",     query,     NULL};
    cli_ids(es, &emb);
    assert_same(&web, &emb, "serve vs embed search --hybrid");
    char *cs[] = {
        (char *)th_bin(), "search", "--index", ixdir, "--hybrid", "--k", "20", query, NULL};
    cli_ids(cs, &cli);
    assert_same(&web, &cli, "serve vs search --hybrid");
    cr_assert(eq(sz, web.n, 20));

    /* Per request bm25 equals plain `causeway search`. */
    served(20, "bm25", &web_bm25);
    cr_assert(eq(str, web_bm25.retrieval, "bm25"));
    char *bs[] = {(char *)th_bin(), "search", "--index", ixdir, "--k", "20", query, NULL};
    cli_ids(bs, &cli);
    assert_same(&web_bm25, &cli, "serve bm25 vs search");

    /* Every document BM25 can return (any query term) vs the hybrid top 300: the dense
     * run adds documents sharing no term with the query. */
    char *ba[] = {(char *)th_bin(), "search", "--index", ixdir, "--k", "1000", query, NULL};
    cli_ids(ba, &bm25_all);
    cr_assert(lt(sz, bm25_all.n, 300), "the query should not match every document");
    static id_list wide;
    served(200, NULL, &wide);
    size_t only_dense = 0;
    for (size_t i = 0; i < wide.n; i++) {
        only_dense += !contains(&bm25_all, wide.ids[i]);
    }
    cr_assert(gt(sz, only_dense, 0), "hybrid returned nothing beyond BM25's %zu matches",
              bm25_all.n);

    /* POST with "retrieval". */
    th_resp r;
    char body[400];
    snprintf(body, sizeof body, "{\"query\":\"%s\",\"k\":5,\"retrieval\":\"bm25\"}", query);
    cr_assert(eq(int, http("POST", "/search", body, &r), CURLE_OK));
    cr_assert(eq(long, r.status, 200), "%s", r.body);
    cr_assert(strstr(r.body, "\"retrieval\":\"bm25\"") != NULL, "%s", r.body);
    free(r.body);
    snprintf(body, sizeof body, "{\"query\":\"%s\",\"retrieval\":\"dense\"}", query);
    cr_assert(eq(int, http("POST", "/search", body, &r), CURLE_OK));
    cr_assert(eq(long, r.status, 400), "%s", r.body);
    free(r.body);
    cr_assert(eq(int, stop_server(), 0));
    cr_assert(eq(int, logged("hybrid"), 2));
    cr_assert(eq(int, logged("bm25"), 2));
}

/* Number of rows of feature_sets named name. */
static int feature_set_rows(const char *name)
{
    sqlite3 *db = NULL;
    cr_assert(eq(int, sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK));
    sqlite3_stmt *st = NULL;
    cr_assert(eq(int,
                 sqlite3_prepare_v2(db, "SELECT count(*) FROM feature_sets WHERE name = ?", -1, &st,
                                    NULL),
                 SQLITE_OK),
              "%s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    cr_assert(eq(int, sqlite3_step(st), SQLITE_ROW));
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

Test(hybrid_serve, dense_cos_feature_equals_the_library_cosine)
{
    int code = 0;
    cr_assert(start_server(NULL, NULL, &code), "the server exited with %d", code);
    char path[600], q[300];
    size_t j = 0;
    for (const char *p = query; *p && j + 1 < sizeof q; p++) {
        q[j++] = *p == ' ' ? '+' : *p;
    }
    q[j] = '\0';
    snprintf(path, sizeof path, "/search?q=%s&k=10&explain=true", q);
    th_resp r;
    cr_assert(eq(int, http("GET", path, NULL, &r), CURLE_OK));
    cr_assert(eq(long, r.status, 200), "%s", r.body);
    cr_assert(eq(int, stop_server(), 0));
    cr_assert(eq(int, feature_set_rows("cw-text-dense-v1"), 1));
    /* The oracle: the query encoded by the index's encoder, cosine by idx_dense_cosine. */
    cw_err err;
    idx_index *ix = NULL;
    idx_dense *dn = NULL;
    cr_assert(eq(int, idx_index_open(ixdir, &ix, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(int, idx_dense_open(ixdir, &dn, &err), CW_OK), "%s", err.msg);
    float qv[IDX_DENSE_MAX_DIM];
    cr_assert(
        eq(int, idx_encoder_encode(idx_dense_encoder(dn), query, strlen(query), qv, &err), CW_OK));
    json_error_t je;
    json_t *root = json_loads(r.body, 0, &je);
    cr_assert(root != NULL, "%s", r.body);
    json_t *res = json_object_get(root, "results");
    cr_assert(eq(sz, json_array_size(res), 10));
    for (size_t i = 0; i < json_array_size(res); i++) {
        json_t *hit = json_array_get(res, i);
        const char *id = json_string_value(json_object_get(hit, "id"));
        json_t *fv = json_object_get(json_object_get(json_object_get(hit, "explain"), "features"),
                                     "dense_cos");
        bool is_num = json_is_number(fv);
        cr_assert(is_num, "no dense_cos for %s", id);
        uint32_t docid = 0;
        cr_assert(eq(int, idx_doc_lookup(ix, id, strlen(id), &docid, &err), CW_OK));
        double want = 0;
        cr_assert(eq(int, idx_dense_cosine(dn, qv, docid, &want, &err), CW_OK));
        cr_expect(lt(dbl, fabs(json_number_value(fv) - want), 1e-5), "%s: served %g, library %g",
                  id, json_number_value(fv), want);
    }
    json_decref(root);
    free(r.body);
    idx_dense_close(dn);
    idx_index_close(ix);
}

Test(hybrid_serve, reload_reopens_dense_files_with_the_index)
{
    int code = 0;
    cr_assert(start_server(NULL, NULL, &code), "the server exited with %d", code);
    static id_list a;
    served(10, NULL, &a);
    cr_assert(eq(str, a.retrieval, "hybrid"));
    /* Without dense files a reload serves BM25 (auto); with them again, hybrid. */
    char enc[160], moved[160];
    snprintf(enc, sizeof enc, "%s/dense.hnsw", ixdir);
    snprintf(moved, sizeof moved, "%s/dense.hnsw.away", dir);
    cr_assert(eq(int, rename(enc, moved), 0));
    th_resp r;
    cr_assert(eq(int, http("POST", "/admin/reload", NULL, &r), CURLE_OK));
    cr_assert(eq(long, r.status, 200), "%s", r.body);
    free(r.body);
    served(10, NULL, &a);
    cr_assert(eq(str, a.retrieval, "bm25"));
    snprintf(moved, sizeof moved, "/search?q=x&retrieval=hybrid");
    cr_assert(eq(int, http("GET", moved, NULL, &r), CURLE_OK));
    cr_assert(eq(long, r.status, 400), "hybrid without dense files: %s", r.body);
    free(r.body);
    snprintf(moved, sizeof moved, "%s/dense.hnsw.away", dir);
    cr_assert(eq(int, rename(moved, enc), 0));
    cr_assert(eq(int, http("POST", "/admin/reload", NULL, &r), CURLE_OK));
    cr_assert(eq(long, r.status, 200), "%s", r.body);
    free(r.body);
    served(10, NULL, &a);
    cr_assert(eq(str, a.retrieval, "hybrid"));
    cr_assert(eq(int, stop_server(), 0));
}

Test(hybrid_serve, retrieval_flag)
{
    int code = 0;
    /* --retrieval bm25 ignores the dense files. */
    cr_assert(start_server("--retrieval", "bm25", &code), "the server exited with %d", code);
    static id_list a;
    served(10, NULL, &a);
    cr_assert(eq(str, a.retrieval, "bm25"));
    cr_assert(eq(str, a.policy, "bm25"));
    cr_assert(eq(int, stop_server(), 0));
    /* --retrieval hybrid on an index without dense files refuses to start. */
    char enc[160], moved[160];
    snprintf(enc, sizeof enc, "%s/dense.enc", ixdir);
    snprintf(moved, sizeof moved, "%s/dense.enc.away", dir);
    cr_assert(eq(int, rename(enc, moved), 0));
    cr_assert(not(start_server("--retrieval", "hybrid", &code)),
              "served hybrid without dense files");
    cr_assert(eq(int, code, 1));
    cr_assert(start_server(NULL, NULL, &code), "auto without dense files exited with %d", code);
    served(10, NULL, &a);
    cr_assert(eq(str, a.retrieval, "bm25"));
    cr_assert(eq(int, stop_server(), 0));
    /* A bad mode is refused. */
    cr_assert(not(start_server("--retrieval", "dense", &code)), "accepted --retrieval dense");
    cr_assert(ne(int, code, 0));
}

Test(hybrid_serve, retrieval_config_key)
{
    int code = 0;
    cr_assert(start_server("--config", serve_config("{\"retrieval\": \"bm25\"}"), &code),
              "the server exited with %d", code);
    static id_list a;
    served(10, NULL, &a);
    cr_assert(eq(str, a.retrieval, "bm25"));
    cr_assert(eq(int, stop_server(), 0));
    cr_assert(not(start_server("--config", serve_config("{\"retrieval\": \"ann\"}"), &code)),
              "accepted retrieval \"ann\"");
    cr_assert(eq(int, code, 1));
}

/* A linear model on bm25_flat and dense_cos (the full extractor list, as `causeway rank`
 * requires) served over hybrid candidates ranks exactly as `causeway rank --index` offline:
 * same candidates, same features, same scores. */
Test(hybrid_serve, model_with_dense_cos_serves_as_causeway_rank_offline)
{
    char model[160], qfile[160], run[160];
    snprintf(model, sizeof model, "%s/model.json", dir);
    snprintf(qfile, sizeof qfile, "%s/q.tsv", dir);
    snprintf(run, sizeof run, "%s/run.txt", dir);
    FILE *f = fopen(model, "w");
    cr_assert(f != NULL);
    fprintf(f, "{\"format\":\"%s\",\"version\":%d,\"kind\":\"linear\",\"features\":[",
            RANK_MODEL_FORMAT, RANK_MODEL_VERSION);
    const char *names[] = {"bm25_title",      "bm25_text",       "bm25_flat",      "coverage",
                           "idf_sum_matched", "idf_max_matched", "idf_mean_query", "query_terms",
                           "log_len_title",   "log_len_text",    "proximity",      "dense_cos"};
    for (int i = 0; i < 12; i++) {
        fprintf(f, "%s\"%s\"", i ? "," : "", names[i]);
    }
    fprintf(f, "],\"normalization\":{\"mean\":[0,0,0,0,0,0,0,0,0,0,0,0],"
               "\"scale\":[1,1,1,1,1,1,1,1,1,1,1,1]},"
               "\"params\":{\"weights\":[0,0,1,0,0,0,0,0,0,0,0,8],\"bias\":0}}\n");
    fclose(f);
    f = fopen(qfile, "w");
    cr_assert(f != NULL);
    fprintf(f, "q1\t%s\n", query);
    fclose(f);
    char *rk[] = {(char *)th_bin(), "rank", "--index", ixdir, "--queries", qfile,
                  "--model",        model,  "--out",   run,   NULL};
    cr_assert(eq(int, th_run(rk, "/dev/null", "/dev/null"), 0), "causeway rank failed");
    int code = 0;
    cr_assert(start_server("--model", model, &code), "the server exited with %d", code);
    static id_list web;
    served(20, NULL, &web);
    cr_assert(eq(str, web.policy, "model+hybrid"));
    cr_assert(eq(int, stop_server(), 0));
    f = fopen(run, "r");
    cr_assert(f != NULL);
    char line[512], qid[64], docid[64];
    size_t i = 0;
    while (i < web.n && fgets(line, sizeof line, f)) {
        cr_assert(eq(int, sscanf(line, "%63s Q0 %63s", qid, docid), 2), "%s", line);
        cr_assert(eq(str, docid, web.ids[i]), "rank %zu", i + 1);
        i++;
    }
    fclose(f);
    cr_assert(eq(sz, i, 20));
}

/* ---- fusion options (--fusion, --dense-weight, --rrf-k; per-request fusion) ---------- */

/* `causeway embed search --hybrid --k 20` with extra fusion options (NULL-terminated). */
static void cli_hybrid(const char *const opts[], id_list *out)
{
    char *argv[16] = {(char *)th_bin(), "embed", "search", "--index", ixdir,
                      "--hybrid",       "--k",   "20"};
    int n = 8;
    for (int i = 0; opts[i]; i++) {
        argv[n++] = (char *)opts[i];
    }
    argv[n++] = query;
    argv[n] = NULL;
    cli_ids(argv, out);
}

static long status_of(const char *method, const char *path, const char *body)
{
    th_resp r;
    cr_assert(eq(int, http(method, path, body, &r), CURLE_OK));
    long s = r.status;
    free(r.body);
    return s;
}

Test(hybrid_serve, weighted_fusion_flag_and_per_request_fusion)
{
    const char *extra[] = {"--cache-mb",     "0",   "--fusion", "weighted",
                           "--dense-weight", "0.3", NULL};
    int code = 0;
    server_pid = th_serve_start(ixdir, dbpath, portfile, extra, true, &port, &code);
    cr_assert(gt(int, server_pid, 0), "the server exited with %d", code);
    static id_list web, cli;
    char body[600];
    /* The server's fusion: weighted sum, w = 0.3, as the CLI computes it. */
    snprintf(body, sizeof body, "{\"query\":\"%s\",\"k\":20}", query);
    served_req("POST", "/search", body, &web);
    cr_assert(eq(str, web.policy, "hybrid(weighted,w=0.3)"));
    const char *w03[] = {"--fusion", "weighted", "--w-dense", "0.3", NULL};
    cli_hybrid(w03, &cli);
    assert_same(&web, &cli, "serve weighted 0.3 vs embed search");
    /* A request's weight under the server's method, then plain RRF asked per request. */
    snprintf(body, sizeof body, "{\"query\":\"%s\",\"k\":20,\"dense_weight\":0.8}", query);
    served_req("POST", "/search", body, &web);
    cr_assert(eq(str, web.policy, "hybrid(weighted,w=0.8)"));
    const char *w08[] = {"--fusion", "weighted", "--w-dense", "0.8", NULL};
    cli_hybrid(w08, &cli);
    assert_same(&web, &cli, "serve weighted 0.8 vs embed search");
    snprintf(body, sizeof body,
             "{\"query\":\"%s\",\"k\":20,\"fusion\":\"rrf\",\"dense_weight\":0.5}", query);
    served_req("POST", "/search", body, &web);
    cr_assert(eq(str, web.policy, "hybrid"));
    const char *none[] = {NULL};
    cli_hybrid(none, &cli);
    assert_same(&web, &cli, "serve rrf per request vs embed search");
    /* The weights change the list (else the test above proves little). */
    static id_list other;
    cli_hybrid(w03, &other);
    size_t differ = 0;
    for (size_t i = 0; i < cli.n; i++) {
        differ += strcmp(cli.ids[i], other.ids[i]) != 0;
    }
    cr_assert(gt(sz, differ, 0), "RRF and weighted 0.3 gave the same top 20");
    /* Bad values: 400, nothing logged. */
    const char *bad[] = {"{\"query\":\"a\",\"fusion\":\"sum\"}", "{\"query\":\"a\",\"fusion\":1}",
                         "{\"query\":\"a\",\"dense_weight\":1.5}",
                         "{\"query\":\"a\",\"dense_weight\":-0.1}",
                         "{\"query\":\"a\",\"dense_weight\":\"0.5\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_expect(eq(long, status_of("POST", "/search", bad[i]), 400), "%s", bad[i]);
    }
    /* -0 and 0 weigh alike: one policy name whether GET or a JSON body (-0.0 is a JSON
     * real) asked for it. */
    served_req("GET", "/search?q=a&k=3&dense_weight=-0", NULL, &web);
    cr_assert(eq(str, web.policy, "hybrid(weighted,w=0)"));
    served_req("POST", "/search", "{\"query\":\"a\",\"k\":3,\"dense_weight\":-0.0}", &web);
    cr_assert(eq(str, web.policy, "hybrid(weighted,w=0)"));
    cr_expect(eq(long, status_of("GET", "/search?q=a&fusion=max", NULL), 400));
    cr_expect(eq(long, status_of("GET", "/search?q=a&dense_weight=abc", NULL), 400));
    cr_expect(eq(long, status_of("GET", "/search?q=a&dense_weight=2", NULL), 400));
    /* Plain decimals only (strtod alone took hexadecimal and leading blanks). */
    cr_expect(eq(long, status_of("GET", "/search?q=a&dense_weight=0x1p-1", NULL), 400));
    cr_expect(eq(long, status_of("GET", "/search?q=a&dense_weight=%200.5", NULL), 400));
    served_req("GET", "/search?q=a&k=3&fusion=rrf&dense_weight=0.25", NULL, &web);
    cr_assert(eq(str, web.policy, "hybrid(rrf,k=60,w=0.25)"));
    /* A weight %g would round to 0.3 ranks differently: it must not share 0.3's name. */
    served_req("GET", "/search?q=a&k=3&dense_weight=0.30000001", NULL, &web);
    cr_assert(eq(str, web.policy, "hybrid(weighted,w=0.30000000999999998)"));
    cr_assert(eq(int, stop_server(), 0));
    cr_assert(eq(int, logged("hybrid(weighted,w=0.3)"), 1));
    cr_assert(eq(int, logged("hybrid(weighted,w=0.8)"), 1));
    cr_assert(eq(int, logged("hybrid"), 1));
    cr_assert(eq(int, logged("hybrid(rrf,k=60,w=0.25)"), 1));
}

Test(hybrid_serve, fusion_config_keys_and_bad_settings)
{
    const char *cfg = serve_config("{\"fusion\": \"rrf\", \"rrf_k\": 10, \"dense_weight\": 0.5}");
    int code = 0;
    cr_assert(start_server("--config", cfg, &code), "the server exited with %d", code);
    static id_list web, cli;
    served(20, NULL, &web);
    cr_assert(eq(str, web.policy, "hybrid(rrf,k=10,w=0.5)"));
    const char *k10[] = {"--rrf-k", "10", NULL};
    cli_hybrid(k10, &cli);
    assert_same(&web, &cli, "serve rrf_k 10 vs embed search --rrf-k 10");
    cr_assert(eq(int, stop_server(), 0));
    /* Refused at start: unknown method (config or flag), weight or k out of range. */
    const char *bad_cfg[] = {"{\"fusion\": \"max\"}", "{\"dense_weight\": 1.01}", "{\"rrf_k\": 0}",
                             "{\"dense_weight\": \"high\"}"};
    for (size_t i = 0; i < sizeof bad_cfg / sizeof *bad_cfg; i++) {
        cr_expect(not(start_server("--config", serve_config(bad_cfg[i]), &code)), "accepted %s",
                  bad_cfg[i]);
        cr_expect(eq(int, code, 1), "%s", bad_cfg[i]);
    }
    /* A bad flag value is a usage error (2) in serve as in search, run and embed (one
     * parser, cli/hybrid_opts.c); a bad config value is a failure (1). */
    cr_expect(not(start_server("--fusion", "max", &code)), "accepted --fusion max");
    cr_expect(eq(int, code, 2));
    cr_expect(not(start_server("--dense-weight", "1.5", &code)), "accepted --dense-weight 1.5");
    cr_expect(eq(int, code, 2));
    cr_expect(not(start_server("--rrf-k", "0", &code)), "accepted --rrf-k 0");
    cr_expect(eq(int, code, 2));
}
