/* tests/integration/test_policy_names.c: `causeway serve --logging-policy pl:0.5` on an
 * index with dense files logs a randomised page as "RANKER@DRAW": BM25, hybrid (RRF) and
 * hybrid (weighted fusion) pages get three different names, and still load as
 * Plackett-Luce sessions of three logging policies with the logged propensities, and
 * `causeway ope` reconstructs their logging policy exactly (srvlog review item 1). */
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

#include "causal/causal.h"
#include "harness.h"

static char dir[64], ixdir[128], dbpath[128], portfile[128];
static char query[256]; /* the first query of the synthetic collection */

static void setup(void)
{
    setenv("OPENBLAS_NUM_THREADS", "1", 0);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    th_tmpdir(dir, sizeof dir, "policy_names");
    snprintf(ixdir, sizeof ixdir, "%s/ix", dir);
    snprintf(dbpath, sizeof dbpath, "%s/log.db", dir);
    snprintf(portfile, sizeof portfile, "%s/port", dir);
    char syn[128], queries[160];
    snprintf(syn, sizeof syn, "%s/syn", dir);
    snprintf(queries, sizeof queries, "%s/queries.tsv", syn);
    th_synth_index(syn, "300", "5", ixdir);
    /* A tiny dense model: hybrid candidates, not their quality, are the point. */
    char *tr[] = {(char *)th_bin(), "embed", "train",    "--index", ixdir,     "--dim", "32",
                  "--buckets",      "4096",  "--epochs", "2",       "--batch", "32",    NULL};
    cr_assert(eq(int, th_run(tr, "/dev/null", "/dev/null"), 0), "causeway embed train failed");
    char *bd[] = {(char *)th_bin(), "embed", "build", "--index", ixdir, NULL};
    cr_assert(eq(int, th_run(bd, "/dev/null", "/dev/null"), 0), "causeway embed build failed");
    FILE *f = fopen(queries, "r");
    cr_assert(f != NULL, "missing %s", queries);
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
    th_rmtree(dir);
    curl_global_cleanup();
}

TestSuite(policy_names, .init = setup, .fini = teardown, .timeout = 180);

#define N_REQ 60
#define N_KINDS 3

/* Request i asks for page kind i % N_KINDS; the name it must be logged under. */
static const char *const kind_query[N_KINDS] = {"retrieval=bm25", "retrieval=hybrid",
                                                "fusion=weighted&dense_weight=0.3"};
static const char *const kind_name[N_KINDS] = {"bm25@pl:0.5", "hybrid@pl:0.5",
                                               "hybrid(weighted,w=0.3)@pl:0.5"};

Test(policy_names, bm25_and_hybrid_pl_pages_are_different_logging_policies)
{
    unsigned port = 0;
    const char *extra[] = {"--logging-policy", "pl:0.5", "--sync", "normal", NULL};
    pid_t pid = th_serve_start(ixdir, dbpath, portfile, extra, true, &port, NULL);
    CURL *c = curl_easy_init();
    char *qenc = curl_easy_escape(c, query, 0);
    uint64_t ids[N_REQ];
    int n_clicks = 0;
    for (int i = 0; i < N_REQ; i++) {
        char path[512];
        snprintf(path, sizeof path, "/search?k=5&%s&q=%s", kind_query[i % N_KINDS], qenc);
        th_resp r = {0};
        cr_assert(eq(int, th_http(c, port, "GET", path, NULL, 0, NULL, &r), CURLE_OK));
        cr_assert(eq(long, r.status, 200), "%s", r.body);
        json_t *root = json_loads(r.body, 0, NULL);
        cr_assert(root != NULL, "%s", r.body);
        ids[i] = (uint64_t)json_integer_value(json_object_get(root, "impression_id"));
        json_t *res = json_object_get(root, "results");
        cr_assert(eq(sz, json_array_size(res), 5), "%s", r.body);
        if (i % 2 == 0) { /* a click on the first result of every other page */
            char ev[512];
            snprintf(ev, sizeof ev,
                     "[{\"impression_id\":%llu,\"doc_id\":\"%s\",\"position\":1,"
                     "\"type\":\"click\"}]",
                     (unsigned long long)ids[i],
                     json_string_value(json_object_get(json_array_get(res, 0), "id")));
            th_resp e = {0};
            cr_assert(
                eq(int, th_http(c, port, "POST", "/events", ev, strlen(ev), NULL, &e), CURLE_OK));
            cr_assert(eq(long, e.status, 200), "%s", e.body);
            free(e.body);
            n_clicks++;
        }
        json_decref(root);
        free(r.body);
    }
    curl_free(qenc);
    curl_easy_cleanup(c);
    cr_assert(eq(int, th_serve_stop(&pid, SIGTERM), 0), "the server did not exit 0 on SIGTERM");

    /* The log: each page under its own name, which says the temperature the impression
     * logged, with exact PL propensities over its logged scores. */
    causal_log_opts lo = causal_log_opts_default();
    lo.read_only = true;
    causal_log *log = NULL;
    causal_log_reader *rd = NULL;
    cw_err err;
    cr_assert(eq(int, causal_log_open(dbpath, &lo, &log, &err), CW_OK), "%s", err.msg);
    causal_log_filter f = causal_log_filter_all();
    cr_assert(eq(int, causal_log_reader_new(log, &f, &rd, &err), CW_OK), "%s", err.msg);
    const causal_impression *imp;
    int n_imp = 0, rc;
    double prop[N_REQ][5];
    causal_rpol pl = {CAUSAL_RPOL_PL, 0.5, 1, 0};
    while ((rc = causal_log_reader_next(rd, &imp, &err)) == 1) {
        cr_assert(lt(int, n_imp, N_REQ));
        cr_assert(eq(u64, imp->id, ids[n_imp]), "impressions are read in id order");
        cr_expect(eq(str, (char *)imp->policy, (char *)kind_name[n_imp % N_KINDS]), "request %d",
                  n_imp);
        causal_policy_name_info pn;
        cr_assert(eq(int, causal_policy_name_parse(imp->policy, &pn, &err), CW_OK), "%s", err.msg);
        cr_expect(pn.has_draw && pn.draw.kind == CAUSAL_RPOL_PL);
        cr_expect(eq(dbl, pn.draw.tau, imp->temperature), "%s", imp->policy);
        cr_assert(eq(sz, imp->n_items, 5));
        double s[5], marg[25];
        for (int j = 0; j < 5; j++) {
            s[j] = imp->items[j].score;
            prop[n_imp][j] = imp->items[j].propensity;
        }
        cr_assert(eq(int, causal_rpol_marginals(&pl, s, 5, 5, marg, NULL), CW_OK));
        for (int j = 0; j < 5; j++) {
            cr_expect(epsilon_eq(dbl, imp->items[j].propensity, marg[j * 5 + j], 1e-9),
                      "request %d slot %d", n_imp, j + 1);
        }
        n_imp++;
    }
    cr_assert(eq(int, rc, 0), "%s", err.msg);
    cr_assert(eq(int, n_imp, N_REQ));
    causal_log_reader_free(rd);
    causal_log_close(log);

    /* The session loader: Plackett-Luce sessions of three logging rankers, named as
     * logged, carrying the logged propensities. */
    causal_sessions *ss = NULL;
    causal_load_stats st;
    cr_assert(eq(int, causal_sessions_load_log(dbpath, 10, &ss, &st, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(sz, ss->n_sessions, N_REQ));
    cr_expect(eq(sz, ss->n_rankers, N_KINDS));
    for (size_t i = 0; i < ss->n_sessions; i++) {
        cr_expect(eq(u8, ss->s_policy[i], (uint8_t)CAUSAL_POLICY_PL), "session %zu", i);
        cr_expect(eq(str, ss->ranker_names[ss->s_ranker[i]], (char *)kind_name[i % N_KINDS]),
                  "session %zu", i);
        for (size_t j = 0; j < 5; j++) {
            cr_expect(eq(flt, ss->i_prop[ss->s_begin[i] + j], (float)prop[i][j]),
                      "session %zu item %zu", i, j);
        }
    }
    causal_sessions_free(ss);

    /* OPE of the logging policy itself: every importance weight is exactly 1 when the
     * logged propensities are the PL marginals ope reconstructs from the logged scores and
     * temperature; the estimate is then the logged clicks per impression. */
    char out[160];
    snprintf(out, sizeof out, "%s/ope.json", dir);
    char *ope[] = {(char *)th_bin(), "ope",        "--db",     dbpath,        "--policy",
                   "logged@pl:0.5",  "--metric",   "clicks@5", "--bootstrap", "0",
                   "--estimators",   "iips,snips", "--json",   NULL};
    cr_assert(eq(int, th_run(ope, out, "/dev/null"), 0));
    json_error_t je;
    json_t *doc = json_load_file(out, 0, &je);
    cr_assert(doc != NULL, "%s: %s", out, je.text);
    json_t *ests =
        json_object_get(json_array_get(json_object_get(doc, "policies"), 0), "estimates");
    cr_assert(eq(sz, json_array_size(ests), 2));
    for (size_t e = 0; e < 2; e++) {
        json_t *es = json_array_get(ests, e);
        const char *name = json_string_value(json_object_get(es, "estimator"));
        bool valid = json_is_true(json_object_get(es, "valid"));
        cr_expect(valid, "%s", name);
        cr_expect(epsilon_eq(dbl, json_number_value(json_object_get(es, "w_max")), 1, 1e-9), "%s",
                  name);
        cr_expect(epsilon_eq(dbl, json_number_value(json_object_get(es, "w_mean")), 1, 1e-9), "%s",
                  name);
        cr_expect(epsilon_eq(dbl, json_number_value(json_object_get(es, "value")),
                             (double)n_clicks / N_REQ, 1e-9),
                  "%s", name);
    }
    json_decref(doc);
}
