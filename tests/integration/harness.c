/* tests/integration/harness.c: see harness.h. */
#include "config.h"

#include "harness.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cw.h"

const char *th_bin(void)
{
    const char *b = getenv("CW_BIN");
    cr_assert(b != NULL, "CW_BIN is not set (run through make check)");
    return b;
}

double th_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void th_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int th_run(char *const argv[], const char *out_path, const char *err_path)
{
    pid_t p = fork();
    cr_assert(p >= 0);
    if (p == 0) {
        if ((out_path && !freopen(out_path, "w", stdout)) ||
            (err_path && !freopen(err_path, "w", stderr))) {
            _exit(126);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    waitpid(p, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void th_tmpdir(char *dir, size_t size, const char *name)
{
    int n = snprintf(dir, size, "/tmp/cw_%s_XXXXXX", name);
    cr_assert(n > 0 && (size_t)n < size, "temp dir name too long");
    cr_assert(mkdtemp(dir) != NULL, "mkdtemp %s failed", dir);
}

void th_rmtree(const char *dir)
{
    cw_err err;
    if (cw_rmtree(dir, &err) != CW_OK) {
        cr_log_warn("%s", err.msg);
    }
}

void th_synth_index(const char *syn, const char *docs, const char *queries, const char *ixdir)
{
    char corpus[512];
    snprintf(corpus, sizeof corpus, "%s/corpus.jsonl", syn);
    char *a1[] = {(char *)th_bin(), "synth",     "--out",         (char *)syn, "--docs",
                  (char *)docs,     "--queries", (char *)queries, "--quiet",   NULL};
    cr_assert(eq(int, th_run(a1, "/dev/null", "/dev/null"), 0), "causeway synth failed");
    char *a2[] = {(char *)th_bin(), "index", "build",       "--corpus",
                  corpus,           "--out", (char *)ixdir, NULL};
    cr_assert(eq(int, th_run(a2, "/dev/null", "/dev/null"), 0), "indexing %s failed", corpus);
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    th_resp *r = ud;
    size_t k = sz * n;
    char *b = realloc(r->body, r->len + k + 1);
    if (!b) {
        return 0;
    }
    memcpy(b + r->len, p, k);
    r->len += k;
    b[r->len] = '\0';
    r->body = b;
    return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    th_resp *r = ud;
    size_t k = sz * n;
    size_t room = sizeof r->headers - 1 - r->hlen;
    size_t c = k < room ? k : room;
    memcpy(r->headers + r->hlen, p, c);
    r->hlen += c;
    r->headers[r->hlen] = '\0';
    return k;
}

CURLcode th_http(CURL *c, unsigned port, const char *method, const char *path, const char *body,
                 size_t body_len, const char *auth, th_resp *r)
{
    char url[4096];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    memset(r, 0, sizeof *r);
    bool own = c == NULL;
    if (own) {
        c = curl_easy_init();
        cr_assert(c != NULL, "curl_easy_init failed");
    }
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    struct curl_slist *h = NULL;
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
        h = curl_slist_append(h, "Content-Type: application/json");
        h = curl_slist_append(h, "Expect:");
    }
    if (auth) {
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    if (own) {
        curl_easy_cleanup(c);
    }
    return rc;
}

/* Where each running quiet server's stderr goes: shown when it exits abnormally, so a rare
 * crash in a parallel `make check` leaves its message in the test log. Keyed by pid: a test
 * may run several servers at once (A/B comparisons). */
#define TH_MAX_SERVERS 8
static struct {
    pid_t pid;
    char path[4096];
} serve_err[TH_MAX_SERVERS];

pid_t th_serve_start(const char *ixdir, const char *dbpath, const char *portfile,
                     const char *const extra[], bool quiet, unsigned *port, int *exit_code)
{
    char serve_err_path[4096];
    snprintf(serve_err_path, sizeof serve_err_path, "%s.stderr", portfile);
    char *argv[10 + TH_MAX_EXTRA + 1] = {
        (char *)th_bin(), "serve",  "--index", (char *)ixdir, "--db",
        (char *)dbpath,   "--port", "0",       "--port-file", (char *)portfile};
    for (size_t i = 0; extra && extra[i]; i++) {
        cr_assert(i < TH_MAX_EXTRA, "more than %d extra serve arguments", TH_MAX_EXTRA);
        argv[10 + i] = (char *)extra[i];
    }
    unlink(portfile);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a test killed on timeout takes its server along */
        if (!freopen("/dev/null", "w", stdout) ||
            (quiet && !freopen(serve_err_path, "w", stderr))) {
            _exit(126);
        }
        setenv("LIBC_FATAL_STDERR_", "1", 1); /* glibc's abort messages to stderr, not a tty */
        execv(argv[0], argv);
        _exit(127);
    }
    for (size_t i = 0; quiet && i < TH_MAX_SERVERS; i++) {
        if (serve_err[i].pid == 0) {
            serve_err[i].pid = pid;
            snprintf(serve_err[i].path, sizeof serve_err[i].path, "%s", serve_err_path);
            break;
        }
    }
    double deadline = th_now_s() + 20;
    *port = 0;
    while (th_now_s() < deadline) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            if (fscanf(f, "%u", port) != 1) {
                *port = 0;
            }
            fclose(f);
        }
        if (*port) {
            th_resp r;
            CURLcode rc = th_http(NULL, *port, "GET", "/healthz", NULL, 0, NULL, &r);
            free(r.body);
            if (rc == CURLE_OK && r.status == 200) {
                return pid;
            }
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            cr_assert(exit_code != NULL, "the server exited at start");
            *exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return 0;
        }
        th_sleep_ms(20);
    }
    cr_assert(false, "the server did not answer /healthz within 20 s");
    return 0;
}

int th_serve_stop(pid_t *pid, int sig)
{
    if (*pid <= 0) {
        return -1;
    }
    kill(*pid, sig);
    int st = 0;
    waitpid(*pid, &st, 0);
    const char *err_path = NULL; /* a quiet server's stderr file, NULL otherwise */
    for (size_t i = 0; i < TH_MAX_SERVERS; i++) {
        if (serve_err[i].pid == *pid) {
            serve_err[i].pid = 0;
            err_path = serve_err[i].path;
        }
    }
    *pid = 0;
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (code != 0 && err_path && (sig == SIGTERM || sig == SIGINT)) {
        FILE *f = fopen(err_path, "r");
        if (f) { /* the last 4 KB of what the server said before it failed */
            char buf[4096];
            fseek(f, 0, SEEK_END);
            long size = ftell(f);
            fseek(f, size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0, SEEK_SET);
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            buf[n] = '\0';
            fclose(f);
            fprintf(stderr, "th_serve_stop: server exited with %d; its stderr ends:\n%s\n", code,
                    buf);
        }
    }
    return code;
}
