/* Integration test of stochastic logging (issue 7 item 1): `causeway serve
 * --logging-policy pl:0.5` draws every page from Plackett-Luce over its scores, and the
 * log holds what off-policy evaluation needs: per-item propensities equal to the exact PL
 * marginals, the list's exact log-probability, the temperature and the seed. */
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
#include <unistd.h>

#include "causal/causal.h"
#include "harness.h"

static char dir[64], ixdir[128], dbpath[128], portfile[128];
static unsigned port;

/* GET path with handle c; returns the HTTP status (-1 on a transport error), body in *r. */
static long get(CURL *c, const char *path, th_resp *r)
{
    free(r->body);
    return th_http(c, port, "GET", path, NULL, 0, NULL, r) == CURLE_OK ? r->status : -1;
}

static pid_t start_server(const char *policy)
{
    const char *extra[] = {"--logging-policy", policy, "--sync", "normal", NULL};
    return th_serve_start(ixdir, dbpath, portfile, extra, false, &port, NULL);
}

/* The first synthetic query (made-up words: letters and spaces only) into q, and into path
 * the GET path `prefix` followed by that query with its spaces as '+'. */
static void first_query(const char *prefix, char *q, size_t q_size, char *path, size_t path_size)
{
    char qpath[192], line[512];
    snprintf(qpath, sizeof qpath, "%s/syn/queries.tsv", dir);
    FILE *qf = fopen(qpath, "r");
    cr_assert(qf != NULL);
    cr_assert(fgets(line, sizeof line, qf) != NULL);
    fclose(qf);
    char *tab = strchr(line, '\t');
    cr_assert(tab != NULL);
    snprintf(q, q_size, "%.*s", (int)strcspn(tab + 1, "\r\n"), tab + 1);
    snprintf(path, path_size, "%s", prefix);
    for (size_t i = 0, o = strlen(path); q[i] && o + 1 < path_size; i++, o++) {
        path[o] = q[i] == ' ' ? '+' : q[i];
        path[o + 1] = '\0';
    }
}

/* Opens the server's log read-only and a reader over all of it (free both). */
static void open_reader(causal_log **log, causal_log_reader **rd)
{
    causal_log_opts lo = causal_log_opts_default();
    lo.read_only = true;
    cw_err err;
    cr_assert(eq(int, causal_log_open(dbpath, &lo, log, &err), CW_OK), "%s", err.msg);
    causal_log_filter f = causal_log_filter_all();
    cr_assert(eq(int, causal_log_reader_new(*log, &f, rd, &err), CW_OK), "%s", err.msg);
}

static void setup(void)
{
    th_tmpdir(dir, sizeof dir, "ope_logging");
    snprintf(ixdir, sizeof ixdir, "%s/idx", dir);
    snprintf(dbpath, sizeof dbpath, "%s/log.db", dir);
    snprintf(portfile, sizeof portfile, "%s/port", dir);
    char syn[128];
    snprintf(syn, sizeof syn, "%s/syn", dir);
    th_synth_index(syn, "400", "5", ixdir);
}

static void teardown(void)
{
    th_rmtree(dir);
}

TestSuite(ope_logging, .init = setup, .fini = teardown, .timeout = 120);

Test(ope_logging, pl_pages_log_exact_propensities_and_list_probabilities)
{
    pid_t pid = start_server("pl:0.5");
    CURL *c = curl_easy_init();
    th_resp b = {0};
    char q[256], path[512];
    first_query("/search?k=5&q=", q, sizeof q, path, sizeof path);
    const int n_req = 400;
    int n_distinct_first = 0;
    char seen_first[16][64] = {{0}};
    for (int i = 0; i < n_req; i++) {
        cr_assert(eq(long, get(c, path, &b), 200), "%s", b.body ? b.body : "");
        json_t *root = json_loads(b.body, 0, NULL);
        json_t *res = json_object_get(root, "results");
        cr_assert(json_array_size(res) >= 3, "query %s returned %zu results", q,
                  json_array_size(res));
        for (size_t j = 0; j < json_array_size(res); j++) {
            json_int_t pos =
                json_integer_value(json_object_get(json_array_get(res, j), "position"));
            cr_assert(eq(i64, (int64_t)pos, (int64_t)j + 1));
        }
        const char *id = json_string_value(json_object_get(json_array_get(res, 0), "id"));
        bool known = false;
        for (int t = 0; t < n_distinct_first; t++) {
            known = known || strcmp(seen_first[t], id) == 0;
        }
        if (!known && n_distinct_first < 16) {
            snprintf(seen_first[n_distinct_first++], sizeof seen_first[0], "%s", id);
        }
        json_decref(root);
    }
    cr_expect(gt(int, n_distinct_first, 1), "PL at tau 0.5 should vary the top result");
    curl_easy_cleanup(c);
    free(b.body);
    cr_assert(eq(int, th_serve_stop(&pid, SIGTERM), 0), "the server did not exit 0 on SIGTERM");

    /* Every logged page: propensities = exact PL marginals of its scores at tau 0.5, the
     * list log-probability exact, the seed present; and the logged top document's
     * frequency agrees with its propensity. */
    causal_log *log = NULL;
    causal_log_reader *rd = NULL;
    open_reader(&log, &rd);
    cw_err err;
    const causal_impression *imp;
    int n_imp = 0, rc;
    double p_top_sum = 0;
    int top_count = 0;
    char top_id[64] = "";
    causal_rpol pl = {CAUSAL_RPOL_PL, 0.5, 1, 0};
    while ((rc = causal_log_reader_next(rd, &imp, &err)) == 1) {
        if (strcmp(imp->query, q) != 0) {
            continue;
        }
        n_imp++;
        cr_expect(eq(str, (char *)imp->policy, "bm25@pl:0.5")); /* RANKER@DRAW */
        cr_expect(epsilon_eq(dbl, imp->temperature, 0.5, 1e-12));
        cr_expect(imp->has_seed);
        cr_expect(eq(u32, imp->mc_samples, 0));
        uint32_t n = (uint32_t)imp->n_items, ident[8];
        double s[8], lp[8], marg[8 * 8];
        cr_assert(n >= 3 && n <= 8);
        for (uint32_t j = 0; j < n; j++) {
            s[j] = imp->items[j].score;
            ident[j] = j;
        }
        cr_assert(eq(int, causal_rpol_log_prob(&pl, s, n, ident, n, lp, NULL), CW_OK));
        cr_expect(epsilon_eq(dbl, imp->log_prob, lp[n - 1], 1e-9));
        cr_assert(eq(int, causal_rpol_marginals(&pl, s, n, n, marg, NULL), CW_OK));
        for (uint32_t j = 0; j < n; j++) {
            cr_expect(epsilon_eq(dbl, imp->items[j].propensity, marg[j * n + j], 1e-9),
                      "impression %d slot %u", n_imp, j + 1);
        }
        /* The highest-scoring document of the page: how often is it shown first? */
        uint32_t best = 0;
        for (uint32_t j = 1; j < n; j++) {
            best = s[j] > s[best] ? j : best;
        }
        if (!top_id[0]) {
            snprintf(top_id, sizeof top_id, "%s", imp->items[best].doc_id);
        }
        if (strcmp(imp->items[best].doc_id, top_id) == 0) {
            p_top_sum += marg[best * n + 0];
            top_count += best == 0;
        }
    }
    cr_assert(eq(int, rc, 0), "%s", err.msg);
    cr_expect(eq(int, n_imp, n_req + 0));
    /* Binomial: count of "shown first" vs the sum of its probabilities, 5 sd. */
    double sd = sqrt(p_top_sum * (1 - p_top_sum / n_imp));
    cr_expect(fabs(top_count - p_top_sum) <= 5 * sd + 1, "top first %d times, expected %.1f",
              top_count, p_top_sum);
    causal_log_reader_free(rd);
    causal_log_close(log);
}

Test(ope_logging, a_bad_logging_policy_is_refused_at_start)
{
    char *argv[] = {(char *)th_bin(), "serve", "--index",          ixdir,  "--db", dbpath,
                    "--port",         "0",     "--logging-policy", "pl:0", NULL};
    cr_expect(eq(int, th_run(argv, "/dev/null", "/dev/null"), 1));
}

Test(ope_logging, a_request_can_choose_its_own_logging_policy)
{
    pid_t pid = start_server("det");
    CURL *c = curl_easy_init();
    th_resp b = {0};
    char q[256], path[512];
    first_query("/search?k=5&policy=randtop:3&q=", q, sizeof q, path, sizeof path);
    for (int i = 0; i < 60; i++) {
        cr_assert(eq(long, get(c, path, &b), 200), "%s", b.body ? b.body : "");
    }
    cr_expect(eq(long, get(c, "/search?q=x&policy=pl:0", &b), 400), "%s", b.body);
    cr_expect(strstr(b.body, "policy: policy \\\"pl:0\\\": temperature must be a number > 0") !=
                  NULL,
              "%s", b.body);
    curl_easy_cleanup(c);
    free(b.body);
    cr_assert(eq(int, th_serve_stop(&pid, SIGTERM), 0), "the server did not exit 0 on SIGTERM");

    /* RandTop-3 over a page of 5: slots 1-3 have propensity 1/3, slots 4-5 probability 1,
     * the list 1/3! = 1/6. */
    causal_log *log = NULL;
    causal_log_reader *rd = NULL;
    open_reader(&log, &rd);
    cw_err err;
    const causal_impression *imp;
    int n_imp = 0, rc;
    while ((rc = causal_log_reader_next(rd, &imp, &err)) == 1) {
        if (imp->n_items != 5) {
            continue;
        }
        n_imp++;
        cr_expect(eq(str, (char *)imp->policy, "bm25@randtop:3"));
        cr_expect(epsilon_eq(dbl, imp->log_prob, -1.791759469228055, 1e-12)); /* -log 6 */
        for (int j = 0; j < 5; j++) {
            cr_expect(epsilon_eq(dbl, imp->items[j].propensity, j < 3 ? 1.0 / 3 : 1.0, 1e-12));
        }
    }
    cr_assert(eq(int, rc, 0), "%s", err.msg);
    cr_expect(eq(int, n_imp, 60));
    causal_log_reader_free(rd);
    causal_log_close(log);
}
