/* tests/integration/harness.h: the shared harness of the integration tests that start the
 * real `causeway serve` on an ephemeral loopback port and talk to it over HTTP (libcurl).
 * Every function fails the current Criterion test (cr_assert) on a harness error. */
#ifndef CW_TESTS_INTEGRATION_HARNESS_H
#define CW_TESTS_INTEGRATION_HARNESS_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The causeway binary named by $CW_BIN; fails the test when it is not set. */
const char *th_bin(void);

/* Seconds on the monotonic clock. */
double th_now_s(void);

/* Sleeps ms milliseconds (only between polls with a deadline). */
void th_sleep_ms(long ms);

/* Runs argv[0] with argv to completion; stdout goes to out_path and stderr to err_path
 * (NULL: inherited). Returns the exit code, -1 if it did not exit normally. */
int th_run(char *const argv[], const char *out_path, const char *err_path);

/* Creates a fresh directory /tmp/cw_<name>_XXXXXX into dir[size]. */
void th_tmpdir(char *dir, size_t size, const char *name);

/* Removes dir and everything under it; a failure is only logged. */
void th_rmtree(const char *dir);

/* Writes a synthetic collection of docs documents and queries queries into syn
 * (`causeway synth`) and indexes its corpus.jsonl into ixdir, output discarded; fails the
 * test unless both exit 0. */
void th_synth_index(const char *syn, const char *docs, const char *queries, const char *ixdir);

/* One HTTP response: status, NUL-terminated body (malloc'd, may be NULL when empty) and
 * the raw response headers (truncated to fit). */
typedef struct th_resp {
    long status;
    char *body;
    size_t len;
    char headers[2048];
    size_t hlen;
} th_resp;

/* One request to http://127.0.0.1:port<path> (20 s timeout), with handle c (reset first;
 * NULL: a fresh one). A non-NULL body is sent (body_len bytes) as application/json; auth,
 * if not NULL, is one extra header line. *r is overwritten: the caller frees r->body.
 * Returns CURLE_OK or the transport error. */
CURLcode th_http(CURL *c, unsigned port, const char *method, const char *path, const char *body,
                 size_t body_len, const char *auth, th_resp *r);

/* Starts `causeway serve --index ixdir --db dbpath --port 0 --port-file portfile` followed
 * by the arguments in extra (up to TH_MAX_EXTRA, ending at the first NULL; extra may be
 * NULL), with stdout discarded, stderr discarded too when quiet, and the child killed if
 * the test dies. Waits up to 20 s for the port file and a 200 from GET /healthz; sets
 * *port. Returns the server's pid. If the server exits at start: with exit_code non-NULL,
 * stores its exit code (128 + signal if killed) there and returns 0; else fails the test. */
#define TH_MAX_EXTRA 16
pid_t th_serve_start(const char *ixdir, const char *dbpath, const char *portfile,
                     const char *const extra[], bool quiet, unsigned *port, int *exit_code);

/* Sends sig to *pid, waits for it and sets *pid to 0. Returns its exit code, 128 + signal
 * if a signal ended it, or -1 if *pid was not a running server. */
int th_serve_stop(pid_t *pid, int sig);

#endif
