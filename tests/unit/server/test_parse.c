/* Tests of server/parse.c: percent-decoding, search parameters and bodies, event batches,
 * JSON string output, the config file: case tables with exact error codes and messages. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "server/server.h"

typedef struct pct_case {
    char in[48];
    bool plus;
    int code;
    char out[48]; /* decoded text, or a fragment of the error message */
} pct_case;

ParameterizedTestParameters(srv_parse, percent_decode_cases)
{
    static pct_case cases[] = {
        {"white+rabbit", true, CW_OK, "white rabbit"},
        {"white+rabbit", false, CW_OK, "white+rabbit"},
        {"a%20b%2Bc", true, CW_OK, "a b+c"},
        {"%C3%A9t%C3%A9", true, CW_OK, "\xc3\xa9t\xc3\xa9"},
        {"%e2%82%ac", true, CW_OK, "\xe2\x82\xac"},
        {"", true, CW_OK, ""},
        {"%", true, CW_EPARSE, "bad percent-encoding at byte 0"},
        {"ab%4", true, CW_EPARSE, "bad percent-encoding at byte 2"},
        {"%G0", true, CW_EPARSE, "two hex digits"},
        {"%C3%28", true, CW_EPARSE, "invalid UTF-8 at byte 0"},
        {"ok%ED%A0%80", true, CW_EPARSE, "invalid UTF-8 at byte 2"}, /* a surrogate */
        {"%C0%AF", true, CW_EPARSE, "invalid UTF-8"},                /* overlong '/' */
        {"a%00b", true, CW_EPARSE, "NUL byte"},
    };
    return cr_make_param_array(pct_case, cases, CW_ARRAY_LEN(cases));
}

ParameterizedTest(pct_case *c, srv_parse, percent_decode_cases)
{
    char out[64];
    size_t n = 99;
    cw_err err;
    int rc = srv_percent_decode(c->in, strlen(c->in), c->plus, out, &n, &err);
    cr_assert(eq(int, rc, c->code), "%s: %s", c->in, rc ? err.msg : out);
    if (rc == CW_OK) {
        cr_expect(eq(str, out, c->out));
        cr_expect(eq(sz, n, strlen(c->out)));
    } else {
        cr_expect(strstr(err.msg, c->out) != NULL, "%s", err.msg);
    }
}

typedef struct body_case {
    char body[96];
    int code;
    char want[64]; /* query on success, error fragment on failure */
    uint32_t k, offset;
} body_case;

ParameterizedTestParameters(srv_parse, search_body_cases)
{
    static body_case cases[] = {
        {"{\"query\":\"rabbit\"}", CW_OK, "rabbit", 10, 0},
        {"{\"query\":\"a b\",\"k\":1000,\"offset\":0}", CW_OK, "a b", 1000, 0},
        {"{\"query\":\"q\",\"k\":5,\"offset\":995,\"explain\":true}", CW_OK, "q", 5, 995},
        {"{\"query\":\"q\",\"k\":5,\"offset\":996}", CW_EINVAL, "offset + k must be at most 1000",
         0, 0},
        {"{\"query\":\"q\",\"k\":0}", CW_EINVAL, "k must be in 1..1000, got 0", 0, 0},
        {"{\"query\":\"q\",\"k\":1001}", CW_EINVAL, "k must be in 1..1000, got 1001", 0, 0},
        {"{\"query\":\"q\",\"k\":-3}", CW_EINVAL, "got -3", 0, 0},
        {"{\"query\":\"q\",\"k\":2.5}", CW_EINVAL, "\"k\" must be an integer", 0, 0},
        {"{\"query\":\"\"}", CW_EINVAL, "query is empty", 0, 0},
        {"{\"k\":3}", CW_EINVAL, "\"query\" must be a string", 0, 0},
        {"{\"query\":7}", CW_EPARSE, "\"query\" must be a string", 0, 0},
        {"{\"query\":\"q\",\"explain\":1}", CW_EINVAL, "\"explain\" must be true or false", 0, 0},
        {"{\"query\":\"q\",\"query\":\"r\"}", CW_EPARSE, "duplicate object key", 0, 0},
        {"{\"query\":\"q\",\"x\":1}", CW_EINVAL, "unknown member \"x\"", 0, 0},
        {"{\"query\":\"q\"", CW_EPARSE, "malformed JSON at line 1", 0, 0},
        {"[\"q\"]", CW_EPARSE, "must be a JSON object", 0, 0},
        {"", CW_EPARSE, "malformed JSON", 0, 0},
    };
    return cr_make_param_array(body_case, cases, CW_ARRAY_LEN(cases));
}

ParameterizedTest(body_case *c, srv_parse, search_body_cases)
{
    cw_arena *a = cw_arena_new(4096);
    srv_search_req r;
    cw_err err;
    int rc = srv_parse_search_body(c->body, strlen(c->body), a, &r, &err);
    cr_assert(eq(int, rc, c->code), "%s: %s", c->body, rc ? err.msg : "ok");
    if (rc == CW_OK) {
        cr_expect(eq(str, (char *)r.query, c->want));
        cr_expect(eq(u32, r.k, c->k));
        cr_expect(eq(u32, r.offset, c->offset));
    } else {
        cr_expect(strstr(err.msg, c->want) != NULL, "%s", err.msg);
    }
    cw_arena_free(a);
}

Test(srv_parse, query_over_1024_bytes_is_elimit_before_anything_else)
{
    char body[1200];
    strcpy(body, "{\"query\":\"");
    memset(body + 10, 'x', 1025);
    strcpy(body + 1035, "\"}");
    cw_arena *a = cw_arena_new(4096);
    srv_search_req r;
    cw_err err;
    cr_assert(eq(int, srv_parse_search_body(body, strlen(body), a, &r, &err), CW_ELIMIT));
    cr_expect(strstr(err.msg, "query is 1025 bytes (limit 1024)") != NULL, "%s", err.msg);
    body[1034] = '"';
    body[1035] = '}';
    body[1036] = '\0'; /* exactly 1024 bytes is fine */
    cr_expect(eq(int, srv_parse_search_body(body, strlen(body), a, &r, &err), CW_OK), "%s",
              err.msg);
    cw_arena_free(a);
}

/* An unknown logging policy is CW_EINVAL (well-formed, out of range) with or without a
 * cw_err to describe it (STYLE 3: err may be NULL). */
Test(srv_parse, bad_policy_is_einval_with_and_without_err)
{
    srv_search_req r = {.query = "q", .query_len = 1, .k = 10, .policy = "bogus"};
    cw_err err;
    cr_expect(eq(int, srv_search_req_check(&r, &err), CW_EINVAL));
    cr_expect(strstr(err.msg, "policy: ") == err.msg, "%s", err.msg);
    cr_expect(eq(int, srv_search_req_check(&r, NULL), CW_EINVAL));
    const char *body = "{\"query\":\"q\",\"policy\":\"bogus\"}";
    cw_arena *a = cw_arena_new(4096);
    srv_search_req out;
    cr_expect(eq(int, srv_parse_search_body(body, strlen(body), a, &out, NULL), CW_EINVAL));
    cw_arena_free(a);
}

Test(srv_parse, uint_parameters_are_strict)
{
    uint32_t v = 0;
    cw_err err;
    cr_expect(eq(int, srv_parse_uint("k", "10", 1, 1000, &v, &err), CW_OK));
    cr_expect(eq(u32, v, 10));
    cr_expect(eq(int, srv_parse_uint("k", "10x", 1, 1000, &v, &err), CW_EINVAL));
    cr_expect(eq(int, srv_parse_uint("k", "-1", 1, 1000, &v, &err), CW_EINVAL));
    cr_expect(eq(int, srv_parse_uint("k", "", 1, 1000, &v, &err), CW_EINVAL));
    cr_expect(eq(int, srv_parse_uint("k", "99999999999", 1, 1000, &v, &err), CW_EINVAL));
    cr_expect(eq(int, srv_parse_uint("k", "1001", 1, 1000, &v, &err), CW_EINVAL));
    cr_expect(strstr(err.msg, "k must be in 1..1000, got 1001") != NULL, "%s", err.msg);
}

Test(srv_parse, event_batches_list_every_malformed_event)
{
    const char *body =
        "[{\"impression_id\":5,\"doc_id\":\"d1\",\"position\":1,\"type\":\"click\"},"
        "{\"impression_id\":5,\"doc_id\":\"d1\",\"position\":0,\"type\":\"click\"},"
        "{\"impression_id\":5,\"doc_id\":\"d1\",\"position\":1,\"type\":\"purchase\"},"
        "{\"impression_id\":5,\"doc_id\":\"d1\",\"position\":1,\"type\":\"dwell\"},"
        "{\"impression_id\":5,\"doc_id\":\"d2\",\"position\":2,\"type\":\"dwell\",\"value_ms\":40,"
        "\"ts\":77,\"event_id\":\"x\"},"
        "{\"impression_id\":\"5\",\"doc_id\":\"d1\",\"position\":1,\"type\":\"click\"},"
        "7]";
    cw_arena *a = cw_arena_new(4096);
    causal_event *ev = NULL;
    size_t n = 0, np = 0;
    srv_event_problem *pr = NULL;
    cw_err err;
    int rc = srv_parse_events_body(body, strlen(body), 1234, a, &ev, &n, &pr, &np, &err);
    cr_assert(eq(int, rc, CW_EINVAL));
    cr_assert(eq(sz, np, 5));
    size_t want_idx[] = {1, 2, 3, 5, 6};
    const char *want[] = {"position", "type", "needs \"value_ms\"", "impression_id", "object"};
    for (size_t i = 0; i < 5; i++) {
        cr_expect(eq(sz, pr[i].index, want_idx[i]));
        cr_expect(strstr(pr[i].reason, want[i]) != NULL, "%zu: %s", i, pr[i].reason);
    }
    cr_expect(strstr(err.msg, "5 of 7 events are malformed") != NULL, "%s", err.msg);

    const char *good = "{\"events\":[{\"impression_id\":5,\"doc_id\":\"d2\",\"position\":2,"
                       "\"type\":\"dwell\",\"value_ms\":40,\"event_id\":\"x\"}]}";
    rc = srv_parse_events_body(good, strlen(good), 1234, a, &ev, &n, &pr, &np, &err);
    cr_assert(eq(int, rc, CW_OK), "%s", err.msg);
    cr_assert(eq(sz, n, 1));
    cr_expect(eq(u64, ev[0].impression_id, 5));
    cr_expect(eq(int, ev[0].type, CAUSAL_EVENT_DWELL));
    cr_expect(eq(i64, ev[0].value_ms, 40));
    cr_expect(eq(i64, ev[0].ts_ms, 1234)); /* server time when the client gave none */
    cr_expect(eq(str, (char *)ev[0].client_id, "x"));
    cw_arena_free(a);
}

Test(srv_parse, event_batches_have_limits)
{
    cw_arena *a = cw_arena_new(1 << 16);
    causal_event *ev;
    size_t n, np;
    srv_event_problem *pr;
    cw_err err;
    cr_expect(eq(int, srv_parse_events_body("[]", 2, 0, a, &ev, &n, &pr, &np, &err), CW_EINVAL));
    cr_expect(
        eq(int, srv_parse_events_body("{\"events\":[],\"x\":1}", 19, 0, a, &ev, &n, &pr, &np, &err),
           CW_EPARSE));
    size_t cap = 3 * (SRV_MAX_EVENTS + 1) + 8;
    char *big = malloc(cap);
    size_t o = 0;
    big[o++] = '[';
    for (unsigned i = 0; i <= SRV_MAX_EVENTS; i++) {
        o += (size_t)sprintf(big + o, "%s1", i ? "," : "");
    }
    big[o++] = ']';
    big[o] = '\0';
    cr_expect(eq(int, srv_parse_events_body(big, o, 0, a, &ev, &n, &pr, &np, &err), CW_ELIMIT));
    cr_expect(strstr(err.msg, "10001 events in one batch (limit 10000)") != NULL, "%s", err.msg);
    free(big);
    cw_arena_free(a);
}

Test(srv_parse, json_strings_escape_quotes_backslashes_and_controls)
{
    cw_buf b = {0};
    const char in[] = "a\"b\\c\n\x01\xc3\xa9";
    cr_assert(eq(int, srv_json_string(&b, in, sizeof in - 1), CW_OK));
    cr_expect(eq(str, b.data, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\""));
    cr_assert(eq(int, srv_json_string(&b, "", 0), CW_OK));
    cr_expect(eq(str, b.data, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\"\"\""));
    cw_buf_fini(&b);
}

Test(srv_parse, config_files_are_checked_key_by_key)
{
    char path[] = "/tmp/cw_srvcfg_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char *good = "{\"index\":\"ix\",\"port\":0,\"threads\":3,\"sync\":\"normal\","
                       "\"admin_token\":\"t\",\"max_body_bytes\":2048}";
    cr_assert(eq(long, (long)write(fd, good, strlen(good)), (long)strlen(good)));
    close(fd);
    srv_config cfg = srv_config_default();
    srv_config_store *st = NULL;
    cw_err err;
    cr_assert(eq(int, srv_config_load(path, &cfg, &st, &err), CW_OK), "%s", err.msg);
    cr_expect(eq(str, (char *)cfg.index_dir, "ix"));
    cr_expect(eq(u32, cfg.threads, 3));
    cr_expect(eq(int, cfg.sync, CAUSAL_SYNC_NORMAL));
    cr_expect(eq(sz, cfg.max_body_bytes, 2048));
    cr_expect(eq(str, (char *)cfg.admin_token, "t"));
    srv_config_store_free(st);
    FILE *f = fopen(path, "w");
    fputs("{\"port\": 70000}", f);
    fclose(f);
    cr_expect(eq(int, srv_config_load(path, &cfg, &st, &err), CW_EPARSE));
    cr_expect(strstr(err.msg, "\"port\" must be an integer in 0..65535") != NULL, "%s", err.msg);
    f = fopen(path, "w");
    fputs("{\"prot\": 80}", f);
    fclose(f);
    cr_expect(eq(int, srv_config_load(path, &cfg, &st, &err), CW_EPARSE));
    cr_expect(strstr(err.msg, "unknown key \"prot\"") != NULL, "%s", err.msg);
    f = fopen(path, "w");
    fputs("{\n\"port\": }", f);
    fclose(f);
    cr_expect(eq(int, srv_config_load(path, &cfg, &st, &err), CW_EPARSE));
    cr_expect(strstr(err.msg, ":2:") != NULL, "line in %s", err.msg);
    unlink(path);
}
