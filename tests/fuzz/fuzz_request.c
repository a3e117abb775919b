/* tests/fuzz/fuzz_request.c: libFuzzer harness over the server's request parsing
 * (server/parse.c): percent-decoding, POST /search and POST /events bodies, and JSON
 * string output, with oracles: decoded values are valid UTF-8 and never longer than their
 * input, accepted requests satisfy every documented limit, and srv_json_string output
 * parses back (jansson) to the same bytes. Built and run by tests/fuzz/run.sh. */
#include "config.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_decode(const char *s, size_t n, bool plus)
{
    char *out = malloc(n + 1);
    size_t len = 0;
    cw_err err;
    if (srv_percent_decode(s, n, plus, out, &len, &err) == CW_OK) {
        if (len > n || !cw_utf8_valid(out, len, NULL) || out[len] != '\0' ||
            memchr(out, '\0', len)) {
            abort();
        }
    } else if (err.code != CW_EPARSE || !err.msg[0]) {
        abort();
    }
    free(out);
}

static void check_search(const char *s, size_t n)
{
    cw_arena *a = cw_arena_new(4096);
    srv_search_req r;
    cw_err err;
    int rc = srv_parse_search_body(s, n, a, &r, &err);
    if (rc == CW_OK) {
        if (r.query_len == 0 || r.query_len > SRV_MAX_QUERY_BYTES || r.k < 1 || r.k > SRV_MAX_K ||
            r.offset + r.k > SRV_MAX_K || strlen(r.query) != r.query_len ||
            !cw_utf8_valid(r.query, r.query_len, NULL)) {
            abort();
        }
    } else if (rc != CW_EPARSE && rc != CW_EINVAL && rc != CW_ELIMIT) {
        abort();
    }
    cw_arena_free(a);
}

static void check_events(const char *s, size_t n)
{
    cw_arena *a = cw_arena_new(4096);
    causal_event *ev = NULL;
    srv_event_problem *pr = NULL;
    size_t ne = 0, np = 0;
    cw_err err;
    int rc = srv_parse_events_body(s, n, 1, a, &ev, &ne, &pr, &np, &err);
    if (rc == CW_OK) {
        if (ne == 0 || ne > SRV_MAX_EVENTS || np != 0) {
            abort();
        }
        for (size_t i = 0; i < ne; i++) {
            if (ev[i].impression_id == 0 || ev[i].position < 1 || !ev[i].doc_id || !*ev[i].doc_id ||
                (unsigned)ev[i].type >= CAUSAL_N_EVENT_TYPES ||
                (ev[i].type == CAUSAL_EVENT_DWELL && ev[i].value_ms < 0)) {
                abort();
            }
        }
    } else if (rc == CW_EINVAL && np > 0) {
        for (size_t i = 0; i < np; i++) {
            if (!pr[i].reason[0] || (i && pr[i].index <= pr[i - 1].index)) {
                abort();
            }
        }
    }
    cw_arena_free(a);
}

static void check_json_string(const char *s, size_t n)
{
    if (!cw_utf8_valid(s, n, NULL) || memchr(s, '\0', n)) {
        return;
    }
    cw_buf b = {0};
    if (srv_json_string(&b, s, n) != CW_OK) {
        abort();
    }
    json_error_t je;
    json_t *v = json_loadb(b.data, b.len, JSON_DECODE_ANY, &je);
    if (!v || !json_is_string(v) || json_string_length(v) != n ||
        memcmp(json_string_value(v), s, n) != 0) {
        abort();
    }
    json_decref(v);
    cw_buf_fini(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 5) {
    case 0: check_decode(s, n, true); break;
    case 1: check_decode(s, n, false); break;
    case 2: check_search(s, n); break;
    case 3: check_events(s, n); break;
    default: check_json_string(s, n);
    }
    return 0;
}
