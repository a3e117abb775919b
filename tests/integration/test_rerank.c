/* tests/integration/test_rerank.c: a model loaded into the real `causeway serve` reranks
 * results exactly as the model scores ranker/'s features offline (`causeway rank
 * --letor-out`), explains them, logs the very vectors it scored and hot-reloads (issue 5). */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "causal/causal.h"
#include "harness.h"
#include "ranker/ranker.h"

static char dir[64];
static char ixdir[128], dbpath[128], portfile[128], modelpath[160], letorpath[128];
static pid_t server_pid;
static unsigned port;
static rank_letor *offline; /* every candidate's features for QUERY, computed by causeway rank */

#define QUERY "alice rabbit"
#define QUERY_URL "alice+rabbit"

/* GET path, or POST it with an empty body. */
static CURLcode http(const char *method, const char *path, th_resp *r)
{
    const char *body = strcmp(method, "POST") == 0 ? "" : NULL;
    return th_http(NULL, port, method, path, body, 0, NULL, r);
}

static void start_server(void)
{
    const char *extra[] = {"--model", modelpath, "--cache-mb", "0", NULL};
    server_pid = th_serve_start(ixdir, dbpath, portfile, extra, true, &port, NULL);
}

static int stop_server(void)
{
    return th_serve_stop(&server_pid, SIGTERM);
}

/* A linear model on two cw-text-v1 features given out of the extractor's order (so the
 * server must map them by name), standardised by (x - mean) / scale. */
static void write_model(const char *f1, double w1, const char *f2, double w2)
{
    char tmp[200];
    snprintf(tmp, sizeof tmp, "%s.tmp", modelpath);
    FILE *f = fopen(tmp, "w");
    cr_assert(f != NULL);
    fprintf(f,
            "{\"format\":\"%s\",\"version\":%d,\"kind\":\"linear\",\"features\":[\"%s\",\"%s\"],"
            "\"normalization\":{\"mean\":[0.5,0.25],\"scale\":[2,0.5]},"
            "\"params\":{\"weights\":[%.17g,%.17g],\"bias\":0.125}}\n",
            RANK_MODEL_FORMAT, RANK_MODEL_VERSION, f1, f2, w1, w2);
    fclose(f);
    cr_assert(eq(int, rename(tmp, modelpath), 0)); /* atomic: a reload sees old or new */
}

static void setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    th_tmpdir(dir, sizeof dir, "rrk");
    snprintf(ixdir, sizeof ixdir, "%s/ix", dir);
    snprintf(dbpath, sizeof dbpath, "%s/log.db", dir);
    snprintf(portfile, sizeof portfile, "%s/port", dir);
    snprintf(modelpath, sizeof modelpath, "%s/model.json", dir);
    snprintf(letorpath, sizeof letorpath, "%s/q.letor", dir);
    const char *src = getenv("CW_SRCDIR");
    char corpus[512], queries[160], run[160];
    snprintf(corpus, sizeof corpus, "%s/tests/data/server/corpus.jsonl", src ? src : ".");
    char *ib[] = {(char *)th_bin(), "index", "build",   "--corpus", corpus,
                  "--out",          ixdir,   "--quiet", NULL};
    cr_assert(eq(int, th_run(ib, NULL, "/dev/null"), 0), "indexing %s failed", corpus);
    snprintf(queries, sizeof queries, "%s/q.tsv", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    FILE *f = fopen(queries, "w");
    cr_assert(f != NULL);
    fprintf(f, "q1\t%s\n", QUERY);
    fclose(f);
    /* The offline side: the same 100-candidate window, features by `causeway rank`. */
    char *rk[] = {(char *)th_bin(), "rank",    "--index", ixdir, "--queries", queries,
                  "--letor-out",    letorpath, "--out",   run,   NULL};
    cr_assert(eq(int, th_run(rk, NULL, "/dev/null"), 0));
    const char *paths[] = {letorpath};
    cw_err err;
    cr_assert(eq(int, rank_letor_read(paths, 1, &offline, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(sz, offline->n_features, RANK_TEXT_FEATURES));
    cr_assert(offline->feature_names != NULL);
}

static void teardown(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
    }
    rank_letor_free(offline);
    offline = NULL;
    th_rmtree(dir);
}

TestSuite(rerank, .init = setup, .fini = teardown, .timeout = 120);

static size_t column(const char *name)
{
    for (size_t j = 0; j < offline->n_features; j++) {
        if (strcmp(offline->feature_names[j], name) == 0) {
            return j;
        }
    }
    cr_assert(false, "no offline feature %s", name);
    return 0;
}

static size_t offline_row(const char *doc_id)
{
    for (size_t i = 0; i < offline->n_rows; i++) {
        if (strcmp(offline->doc_id[i], doc_id) == 0) {
            return i;
        }
    }
    cr_assert(false, "%s is not an offline candidate", doc_id);
    return 0;
}

/* The model's score of offline row i, by hand: bias + sum w_j (x_j - mean_j) / scale_j. */
static double hand_score(size_t i, const char *f1, double w1, const char *f2, double w2)
{
    const double *x = offline->x + i * offline->n_features;
    return 0.125 + w1 * (x[column(f1)] - 0.5) / 2 + w2 * (x[column(f2)] - 0.25) / 0.5;
}

/* Searches QUERY (all 12 documents of the corpus fit in k) and checks the order, scores
 * and explanations against the model applied by hand to the offline features. */
static void check_search(const char *f1, double w1, const char *f2, double w2,
                         bool expect_reordered)
{
    th_resp r;
    cr_assert(eq(int, http("GET", "/search?q=" QUERY_URL "&k=20&explain=true", &r), CURLE_OK));
    cr_assert(eq(long, r.status, 200), "%s", r.body);
    json_error_t je;
    json_t *root = json_loads(r.body, 0, &je);
    cr_assert(root != NULL, "%s", r.body);
    cr_expect(eq(str, (char *)json_string_value(json_object_get(root, "policy")), "model"));
    json_t *res = json_object_get(root, "results");
    cr_assert(eq(sz, json_array_size(res), offline->n_rows), "%s", r.body);
    double prev = INFINITY;
    bool reordered = false;
    for (size_t k = 0; k < json_array_size(res); k++) {
        json_t *it = json_array_get(res, k);
        const char *id = json_string_value(json_object_get(it, "id"));
        size_t i = offline_row(id);
        reordered = reordered || i != k; /* offline rows are in BM25 order */
        double want = hand_score(i, f1, w1, f2, w2);
        double got = json_number_value(json_object_get(it, "score"));
        cr_expect(le(dbl, fabs(got - want), 1e-5 * (1 + fabs(want))), "%s: %g vs %g", id, got,
                  want);
        cr_expect(le(dbl, got, prev), "position %zu is out of model order", k + 1);
        prev = got;
        /* explain: the full extracted vector, and contributions that add up to the score */
        json_t *ex = json_object_get(it, "explain");
        json_t *feats = json_object_get(ex, "features");
        cr_assert(eq(sz, json_object_size(feats), RANK_TEXT_FEATURES));
        for (size_t j = 0; j < offline->n_features; j++) {
            double v = json_number_value(json_object_get(feats, offline->feature_names[j]));
            double o = offline->x[i * offline->n_features + j];
            cr_expect(le(dbl, fabs(v - o), 1e-5 * (1 + fabs(o))), "%s %s", id,
                      offline->feature_names[j]);
        }
        json_t *m = json_object_get(ex, "model");
        json_t *ct = json_object_get(m, "contributions");
        cr_assert(eq(sz, json_object_size(ct), 2), "%s", r.body);
        double sum = json_number_value(json_object_get(m, "bias")) +
                     json_number_value(json_object_get(ct, f1)) +
                     json_number_value(json_object_get(ct, f2));
        cr_expect(le(dbl, fabs(sum - got), 1e-5 * (1 + fabs(got))));
    }
    cr_expect(eq(int, reordered, expect_reordered), "%s", r.body);
    json_decref(root);
    free(r.body);
}

Test(rerank, served_order_explain_log_and_hot_reload_follow_the_offline_features)
{
    /* Shorter texts and tighter spans first: not the BM25 order. */
    write_model("proximity", 3.0, "log_len_text", -1.0);
    start_server();
    check_search("proximity", 3.0, "log_len_text", -1.0, true);

    /* Hot reload: the opposite preferences take over on the next request. */
    write_model("log_len_text", 2.0, "coverage", 0.5);
    th_resp r;
    cr_assert(eq(int, http("POST", "/admin/reload", &r), CURLE_OK));
    cr_expect(eq(long, r.status, 200), "%s", r.body);
    free(r.body);
    check_search("log_len_text", 2.0, "coverage", 0.5, true);

    /* A model asking for a feature the server cannot extract is refused; the loaded one
     * keeps serving. */
    write_model("log_len_text", 2.0, "pagerank", 1.0);
    cr_assert(eq(int, http("POST", "/admin/reload", &r), CURLE_OK));
    cr_expect(ge(long, r.status, 400), "%s", r.body);
    cr_expect(r.body && strstr(r.body, "pagerank") != NULL, "%s", r.body);
    free(r.body);
    check_search("log_len_text", 2.0, "coverage", 0.5, true);

    /* A model may name a feature more than once and have more columns than the extractor
     * (13 > 11): the server gathers them without overrunning its rows. */
    FILE *f = fopen(modelpath, "w");
    cr_assert(f != NULL);
    fprintf(f, "{\"format\":\"%s\",\"version\":%d,\"kind\":\"linear\",\"features\":[",
            RANK_MODEL_FORMAT, RANK_MODEL_VERSION);
    for (int j = 0; j < 13; j++) {
        fprintf(f, "%s\"%s\"", j ? "," : "", j < 11 ? offline->feature_names[j] : "proximity");
    }
    fprintf(f, "],\"normalization\":{\"mean\":[0,0,0,0,0,0,0,0,0,0,0,0,0],"
               "\"scale\":[1,1,1,1,1,1,1,1,1,1,1,1,1]},\"params\":{\"weights\":"
               "[0,0,0,0,0,0,0,0,0,0,1,1,1],\"bias\":0}}\n");
    fclose(f);
    cr_assert(eq(int, http("POST", "/admin/reload", &r), CURLE_OK));
    cr_expect(eq(long, r.status, 200), "%s", r.body);
    free(r.body);
    cr_assert(eq(int, http("GET", "/search?q=" QUERY_URL "&k=20", &r), CURLE_OK));
    cr_expect(eq(long, r.status, 200), "%s", r.body);
    json_t *root = json_loads(r.body, 0, NULL);
    json_t *first = json_array_get(json_object_get(root, "results"), 0);
    size_t i0 = offline_row(json_string_value(json_object_get(first, "id")));
    double want3 = 3 * offline->x[i0 * offline->n_features + column("proximity")];
    cr_expect(le(dbl, fabs(json_number_value(json_object_get(first, "score")) - want3), 1e-6));
    json_decref(root);
    free(r.body);
    cr_assert(eq(int, stop_server(), 0));

    /* The log holds, for every shown document, the vector computed offline. */
    causal_log_opts o = causal_log_opts_default();
    o.read_only = true;
    causal_log *log = NULL;
    cw_err err;
    cr_assert(eq(int, causal_log_open(dbpath, &o, &log, &err), CW_OK), "%s", err.msg);
    causal_log_reader *rd = NULL;
    cr_assert(eq(int, causal_log_reader_new(log, NULL, &rd, &err), CW_OK));
    const causal_impression *ci;
    size_t n_imp = 0, n_checked = 0;
    const char *versions[4] = {0};
    char vbuf[4][64];
    int rc;
    while ((rc = causal_log_reader_next(rd, &ci, &err)) == 1) {
        cr_assert(lt(sz, n_imp, 4));
        cr_expect(eq(str, (char *)ci->feature_set, RANK_FEATURE_SET));
        cr_assert(eq(u32, ci->n_features, RANK_TEXT_FEATURES));
        for (size_t j = 0; j < RANK_TEXT_FEATURES; j++) {
            cr_expect(eq(str, (char *)ci->feature_names[j], offline->feature_names[j]));
        }
        cr_assert(ci->model_version != NULL);
        snprintf(vbuf[n_imp], sizeof vbuf[n_imp], "%s", ci->model_version);
        versions[n_imp] = vbuf[n_imp];
        for (size_t k = 0; k < ci->n_items; k++) {
            size_t i = offline_row(ci->items[k].doc_id);
            cr_assert(ci->items[k].features != NULL);
            for (size_t j = 0; j < RANK_TEXT_FEATURES; j++) {
                float want = (float)offline->x[i * offline->n_features + j];
                float got = ci->items[k].features[j];
                cr_expect(le(flt, fabsf(got - want), 1e-6f * (1 + fabsf(want))), "%s %s: %g vs %g",
                          ci->items[k].doc_id, offline->feature_names[j], got, want);
                n_checked++;
            }
        }
        n_imp++;
    }
    cr_assert(eq(int, rc, 0), "%s", err.msg); /* the end of the log, not a read error */
    cr_expect(eq(sz, n_imp, 4));
    cr_expect(eq(sz, n_checked, 4 * offline->n_rows * RANK_TEXT_FEATURES));
    /* the reload is visible in the log: a new model version, kept after the refused one */
    cr_expect(ne(str, (char *)versions[0], (char *)versions[1]));
    cr_expect(eq(str, (char *)versions[1], (char *)versions[2]));
    causal_log_reader_free(rd);
    causal_log_close(log);
}
