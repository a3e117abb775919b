/* Integration test of the closed loop of issue 4: `causeway serve --logging-policy
 * randtop:10` serves, `causeway simulate --server URL` searches and sends the simulated
 * clicks back as events, and the server's own log feeds `causeway propensity fit`. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <curl/curl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "causal/causal.h"

static char dir[64], ixdir[128], dbpath[128], portfile[128], synq[160], synqrels[160];
static unsigned port;

static const char *bin(void)
{
    const char *b = getenv("CW_BIN");
    cr_assert(b != NULL, "CW_BIN is not set (run through make check)");
    return b;
}

/* Runs argv to completion; stderr to errpath when given. Returns the exit status. */
static int run(char *const argv[], const char *errpath)
{
    pid_t p = fork();
    cr_assert(p >= 0);
    if (p == 0) {
        if (!freopen("/dev/null", "w", stdout) ||
            !freopen(errpath ? errpath : "/dev/null", "w", stderr)) {
            _exit(126);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    waitpid(p, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return sz * n;
}

static bool healthy(void)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/healthz", port);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_easy_cleanup(c);
    return status == 200;
}

static pid_t start_server(void)
{
    unlink(portfile);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (!freopen("/dev/null", "w", stdout)) {
            _exit(126);
        }
        char *argv[] = {(char *)bin(),
                        "serve",
                        "--index",
                        ixdir,
                        "--db",
                        dbpath,
                        "--port",
                        "0",
                        "--port-file",
                        portfile,
                        "--logging-policy",
                        "randtop:10",
                        "--sync",
                        "normal",
                        NULL};
        execv(argv[0], argv);
        _exit(127);
    }
    port = 0;
    for (int tries = 0; tries < 1000; tries++) { /* 20 s deadline, 20 ms polls */
        FILE *f = fopen(portfile, "r");
        if (f) {
            if (fscanf(f, "%u", &port) != 1) {
                port = 0;
            }
            fclose(f);
        }
        if (port && healthy()) {
            break;
        }
        int st;
        cr_assert(eq(int, waitpid(pid, &st, WNOHANG), 0), "the server exited at start");
        struct timespec ts = {0, 20000000L};
        nanosleep(&ts, NULL);
    }
    cr_assert(port != 0, "the server did not come up within 20 s");
    return pid;
}

static void stop_server(pid_t pid)
{
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    cr_assert(clean, "the server did not exit cleanly");
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/cw_sim_loop_XXXXXX");
    cr_assert(mkdtemp(dir) != NULL);
    snprintf(ixdir, sizeof ixdir, "%s/idx", dir);
    snprintf(dbpath, sizeof dbpath, "%s/log.db", dir);
    snprintf(portfile, sizeof portfile, "%s/port", dir);
    char syn[128], corpus[160];
    snprintf(syn, sizeof syn, "%s/syn", dir);
    snprintf(corpus, sizeof corpus, "%s/corpus.jsonl", syn);
    snprintf(synq, sizeof synq, "%s/queries.tsv", syn);
    snprintf(synqrels, sizeof synqrels, "%s/qrels.txt", syn);
    char *a1[] = {(char *)bin(), "synth",     "--out", syn,       "--docs",
                  "500",         "--queries", "20",    "--quiet", NULL};
    cr_assert(eq(int, run(a1, NULL), 0));
    char *a2[] = {(char *)bin(), "index", "build", "--corpus", corpus, "--out", ixdir, NULL};
    cr_assert(eq(int, run(a2, NULL), 0));
}

static void teardown(void)
{
    cw_err err;
    if (cw_rmtree(dir, &err) != CW_OK) {
        cr_log_warn("%s", err.msg);
    }
}

TestSuite(simulate_loop, .init = setup, .fini = teardown, .timeout = 180);

Test(simulate_loop, clicks_through_http_land_in_the_servers_log_and_fit)
{
    pid_t pid = start_server();
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
    char *sim[] = {(char *)bin(), "simulate", "--server", url,          "--queries",
                   synq,          "--qrels",  synqrels,   "--sessions", "1500",
                   "--seed",      "5",        "--quiet",  NULL};
    cr_assert(eq(int, run(sim, NULL), 0));
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
    cr_expect(le(dbl, p.ci_lo[3], 0.5));
    cr_expect(ge(dbl, p.ci_hi[3], 0.5));
    causal_sessions_free(s);

    /* the CLI on the same log writes JSON */
    char out[160];
    snprintf(out, sizeof out, "%s/prop.json", dir);
    char *fit[] = {(char *)bin(), "propensity",    "fit",   "--db", dbpath,
                   "--method",    "randomization", "--out", out,    NULL};
    cr_expect(eq(int, run(fit, NULL), 0));
    cr_expect(eq(int, access(out, R_OK), 0));
}

Test(simulate_loop, unreachable_server_is_a_clear_failure)
{
    char errpath[160];
    snprintf(errpath, sizeof errpath, "%s/err.txt", dir);
    char *sim[] = {(char *)bin(), "simulate", "--server", "http://127.0.0.1:1",
                   "--queries",   synq,       "--qrels",  synqrels,
                   "--sessions",  "3",        NULL};
    cr_expect(eq(int, run(sim, errpath), 1));
    char buf[512] = "";
    FILE *f = fopen(errpath, "r");
    cr_assert(f != NULL);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    cr_expect(ne(ptr, strstr(buf, "causeway simulate: http://127.0.0.1:1/search"), NULL), "%s",
              buf);
}
