/* Integration test of the closed loop of issue 4: `causeway serve --logging-policy
 * randtop:10` serves, `causeway simulate --server URL` searches and sends the simulated
 * clicks back as events, and the server's own log feeds `causeway propensity fit`. */
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

static char dir[64], ixdir[128], dbpath[128], portfile[128], synq[160], synqrels[160];
static unsigned port;

static pid_t start_server(void)
{
    const char *extra[] = {"--logging-policy", "randtop:10", "--sync", "normal", NULL};
    return th_serve_start(ixdir, dbpath, portfile, extra, false, &port, NULL);
}

static void stop_server(pid_t pid)
{
    cr_assert(eq(int, th_serve_stop(&pid, SIGTERM), 0), "the server did not exit cleanly");
}

static void setup(void)
{
    th_tmpdir(dir, sizeof dir, "sim_loop");
    snprintf(ixdir, sizeof ixdir, "%s/idx", dir);
    snprintf(dbpath, sizeof dbpath, "%s/log.db", dir);
    snprintf(portfile, sizeof portfile, "%s/port", dir);
    char syn[128];
    snprintf(syn, sizeof syn, "%s/syn", dir);
    snprintf(synq, sizeof synq, "%s/queries.tsv", syn);
    snprintf(synqrels, sizeof synqrels, "%s/qrels.txt", syn);
    th_synth_index(syn, "500", "20", ixdir);
}

static void teardown(void)
{
    th_rmtree(dir);
}

TestSuite(simulate_loop, .init = setup, .fini = teardown, .timeout = 180);

Test(simulate_loop, clicks_through_http_land_in_the_servers_log_and_fit)
{
    pid_t pid = start_server();
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
    char *sim[] = {(char *)th_bin(), "simulate", "--server",   url,    "--queries", synq,
                   "--qrels",        synqrels,   "--sessions", "1500", "--seed",    "5",
                   "--quiet",        NULL};
    cr_assert(eq(int, th_run(sim, "/dev/null", "/dev/null"), 0));
    stop_server(pid);

    causal_sessions *s = NULL;
    causal_load_stats st;
    cw_err err;
    cr_assert(eq(int, causal_sessions_load_log(dbpath, 10, &s, &st, &err), CW_OK), "%s", err.msg);
    cr_expect(eq(u64, st.n_impressions, 1500));
    cr_expect(gt(u64, st.n_clicks, 100));
    cr_expect(gt(sz, s->n_queries, 10)); /* sessions spread over the queries */
    for (size_t i = 0; i < s->n_sessions; i++) {
        cr_assert(eq(u8, s->s_policy[i], CAUSAL_POLICY_RANDTOP));
    }
    causal_prop_opts o = causal_prop_opts_default(CAUSAL_PROP_RANDOMIZATION);
    o.n_boot = 100;
    causal_propensity p;
    cr_assert(eq(int, causal_propensity_fit(s, &o, &p, &err), CW_OK), "%s", err.msg);
    /* theta table, eta = 1: theta_4/theta_1 = 0.5; ~1500 sessions give a wide but finite
     * interval that must contain the truth */
    cr_expect(isfinite(p.ci_lo[3]) && isfinite(p.ci_hi[3]), "[%g, %g]", p.ci_lo[3], p.ci_hi[3]);
    cr_expect(le(dbl, p.ci_lo[3], 0.5));
    cr_expect(ge(dbl, p.ci_hi[3], 0.5));
    causal_sessions_free(s);

    /* the CLI on the same log writes JSON */
    char out[160];
    snprintf(out, sizeof out, "%s/prop.json", dir);
    char *fit[] = {(char *)th_bin(), "propensity",    "fit",   "--db", dbpath,
                   "--method",       "randomization", "--out", out,    NULL};
    cr_expect(eq(int, th_run(fit, "/dev/null", "/dev/null"), 0));
    json_error_t je;
    json_t *doc = json_load_file(out, 0, &je);
    cr_expect(doc != NULL, "%s: %s", out, je.text);
    json_decref(doc);
}

Test(simulate_loop, unreachable_server_is_a_clear_failure)
{
    char errpath[160];
    snprintf(errpath, sizeof errpath, "%s/err.txt", dir);
    char *sim[] = {(char *)th_bin(), "simulate", "--server", "http://127.0.0.1:1",
                   "--queries",      synq,       "--qrels",  synqrels,
                   "--sessions",     "3",        NULL};
    cr_expect(eq(int, th_run(sim, "/dev/null", errpath), 1));
    char buf[512] = "";
    FILE *f = fopen(errpath, "r");
    cr_assert(f != NULL);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    cr_expect(ne(ptr, strstr(buf, "causeway simulate: http://127.0.0.1:1/search"), NULL), "%s",
              buf);
}
