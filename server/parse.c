/* server/parse.c: request parsing and validation without HTTP: percent-decoding,
 * search parameters, the POST /search and POST /events JSON bodies, JSON string output,
 * the config file. Pure functions over bytes, so tests/fuzz/ can drive them directly. */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int srv_percent_decode(const char *s, size_t n, bool plus_is_space, char *out, size_t *out_len,
                       cw_err *err)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 1 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                return cw_err_set(err, CW_EPARSE,
                                  "bad percent-encoding at byte %zu: '%%' must be followed by "
                                  "two hex digits",
                                  i);
            }
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out[o++] = ' ';
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    size_t bad = 0;
    if (!cw_utf8_valid(out, o, &bad)) {
        return cw_err_set(err, CW_EPARSE, "invalid UTF-8 at byte %zu of the decoded value", bad);
    }
    if (memchr(out, '\0', o)) {
        return cw_err_set(err, CW_EPARSE, "NUL byte in a decoded value");
    }
    *out_len = o;
    return CW_OK;
}

int srv_parse_uint(const char *name, const char *s, uint32_t lo, uint32_t hi, uint32_t *out,
                   cw_err *err)
{
    if (!s || !*s || strlen(s) > 10) {
        return cw_err_set(err, CW_EINVAL, "%s must be a whole number in %u..%u", name, lo, hi);
    }
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') {
            return cw_err_set(err, CW_EINVAL, "%s must be a whole number in %u..%u, got \"%.32s\"",
                              name, lo, hi, s);
        }
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v < lo || v > hi) {
        return cw_err_set(err, CW_EINVAL, "%s must be in %u..%u, got %llu", name, lo, hi,
                          (unsigned long long)v);
    }
    *out = (uint32_t)v;
    return CW_OK;
}

int srv_search_req_check(const srv_search_req *r, cw_err *err)
{
    if (!r->query || r->query_len == 0) {
        return cw_err_set(err, CW_EINVAL, "query is empty: pass q (GET) or \"query\" (POST)");
    }
    if (r->query_len > SRV_MAX_QUERY_BYTES) {
        return cw_err_set(err, CW_ELIMIT, "query is %zu bytes (limit %u)", r->query_len,
                          SRV_MAX_QUERY_BYTES);
    }
    size_t bad = 0;
    if (!cw_utf8_valid(r->query, r->query_len, &bad)) {
        return cw_err_set(err, CW_EPARSE, "query is not valid UTF-8 (byte %zu)", bad);
    }
    if (r->k < 1 || r->k > SRV_MAX_K) {
        return cw_err_set(err, CW_EINVAL, "k must be in 1..%u, got %u", SRV_MAX_K, r->k);
    }
    if (r->offset > SRV_MAX_K - r->k) {
        return cw_err_set(err, CW_EINVAL, "offset + k must be at most %u (offset %u, k %u)",
                          SRV_MAX_K, r->offset, r->k);
    }
    causal_rpol pol;
    if (r->policy && causal_rpol_parse(r->policy, &pol, err) != CW_OK) {
        /* A well-formed request with a value out of range: invalid, not malformed (and
         * returned as such also when err is NULL: cw_err_prefix then returns CW_OK). */
        if (err) {
            err->code = CW_EINVAL;
            cw_err_prefix(err, "policy: ");
        }
        return CW_EINVAL;
    }
    if (r->retrieval && strcmp(r->retrieval, "bm25") && strcmp(r->retrieval, "hybrid")) {
        return cw_err_set(err, CW_EINVAL, "retrieval must be \"bm25\" or \"hybrid\"");
    }
    if (r->fusion && strcmp(r->fusion, "rrf") && strcmp(r->fusion, "weighted")) {
        return cw_err_set(err, CW_EINVAL, "fusion must be \"rrf\" or \"weighted\"");
    }
    if (r->has_dense_weight && !(r->dense_weight >= 0 && r->dense_weight <= 1)) {
        return cw_err_set(err, CW_EINVAL, "dense_weight must be a number in [0, 1]");
    }
    return CW_OK;
}

/* An integer member within [lo, hi]; absent keeps *out. */
static int get_int(json_t *obj, const char *key, int64_t lo, int64_t hi, int64_t *out,
                   const char *where, cw_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        return CW_OK;
    }
    if (!json_is_integer(v)) {
        return cw_err_set(err, CW_EINVAL, "%s\"%s\" must be an integer", where, key);
    }
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) {
        return cw_err_set(err, CW_EINVAL, "%s\"%s\" must be in %lld..%lld, got %lld", where, key,
                          (long long)lo, (long long)hi, (long long)x);
    }
    *out = x;
    return CW_OK;
}

static json_t *load_json(const char *body, size_t len, cw_err *err)
{
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        cw_err_set(err, CW_EPARSE, "malformed JSON at line %d, column %d: %s", je.line, je.column,
                   je.text);
    }
    return root;
}

/* Optional string member key of obj, copied into arena as *out (left alone when absent):
 * min_len..max_len bytes without NUL, else CW_EINVAL saying "must be <must>" (must NULL:
 * "a string of min_len..max_len bytes"). Errors: CW_EINVAL, CW_ENOMEM. */
static int body_string(json_t *obj, const char *key, size_t min_len, size_t max_len,
                       cw_arena *arena, const char *must, const char **out, cw_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        return CW_OK;
    }
    size_t n = json_is_string(v) ? json_string_length(v) : 0;
    if (!json_is_string(v) || n < min_len || n > max_len || memchr(json_string_value(v), '\0', n)) {
        return must ? cw_err_set(err, CW_EINVAL, "\"%s\" must be %s", key, must)
                    : cw_err_set(err, CW_EINVAL, "\"%s\" must be a string of %zu..%zu bytes", key,
                                 min_len, max_len);
    }
    const char *copy = cw_arena_strdup(arena, json_string_value(v));
    if (!copy) {
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    *out = copy;
    return CW_OK;
}

int srv_parse_search_body(const char *body, size_t len, cw_arena *arena, srv_search_req *out,
                          cw_err *err)
{
    json_t *root = load_json(body, len, err);
    if (!root) {
        return CW_EPARSE;
    }
    int rc = CW_OK;
    srv_search_req r = {.k = SRV_DEFAULT_K};
    if (!json_is_object(root)) {
        rc = cw_err_set(err, CW_EPARSE, "body must be a JSON object {\"query\", \"k\", ...}");
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (strcmp(key, "query") && strcmp(key, "k") && strcmp(key, "offset") &&
            strcmp(key, "explain") && strcmp(key, "qid") && strcmp(key, "policy") &&
            strcmp(key, "retrieval") && strcmp(key, "fusion") && strcmp(key, "dense_weight")) {
            rc = cw_err_set(err, CW_EINVAL, "unknown member \"%.64s\"", key);
            goto done;
        }
    }
    json_t *q = json_object_get(root, "query");
    if (!json_is_string(q)) {
        rc = cw_err_set(err, q ? CW_EPARSE : CW_EINVAL, "\"query\" must be a string");
        goto done;
    }
    r.query_len = json_string_length(q);
    if (r.query_len > SRV_MAX_QUERY_BYTES) {
        rc = cw_err_set(err, CW_ELIMIT, "query is %zu bytes (limit %u)", r.query_len,
                        SRV_MAX_QUERY_BYTES);
        goto done;
    }
    if (memchr(json_string_value(q), '\0', r.query_len)) {
        rc = cw_err_set(err, CW_EPARSE, "query contains a NUL character");
        goto done;
    }
    char *qs = cw_arena_strndup(arena, json_string_value(q), r.query_len);
    if (!qs) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory");
        goto done;
    }
    r.query = qs;
    int64_t k = SRV_DEFAULT_K, offset = 0;
    rc = get_int(root, "k", INT32_MIN, INT32_MAX, &k, "", err);
    if (rc == CW_OK) {
        rc = get_int(root, "offset", 0, INT32_MAX, &offset, "", err);
    }
    if (rc != CW_OK) {
        goto done;
    }
    if (k < 1 || k > SRV_MAX_K) {
        rc = cw_err_set(err, CW_EINVAL, "k must be in 1..%u, got %lld", SRV_MAX_K, (long long)k);
        goto done;
    }
    r.k = (uint32_t)k;
    r.offset = (uint32_t)CW_MIN(offset, (int64_t)UINT32_MAX);
    json_t *ex = json_object_get(root, "explain");
    if (ex && !json_is_boolean(ex)) {
        rc = cw_err_set(err, CW_EINVAL, "\"explain\" must be true or false");
        goto done;
    }
    r.explain = ex && json_is_true(ex);
    rc = body_string(root, "qid", 1, CAUSAL_MAX_NAME_BYTES, arena, NULL, &r.qid, err);
    if (rc == CW_OK) {
        rc = body_string(root, "policy", 1, CAUSAL_MAX_NAME_BYTES, arena, NULL, &r.policy, err);
    }
    /* retrieval and fusion values are checked by srv_search_req_check */
    if (rc == CW_OK) {
        rc = body_string(root, "retrieval", 0, SIZE_MAX, arena, "\"bm25\" or \"hybrid\"",
                         &r.retrieval, err);
    }
    if (rc == CW_OK) {
        rc = body_string(root, "fusion", 0, SIZE_MAX, arena, "\"rrf\" or \"weighted\"", &r.fusion,
                         err);
    }
    if (rc != CW_OK) {
        goto done;
    }
    json_t *dw = json_object_get(root, "dense_weight");
    if (dw) {
        if (!json_is_number(dw)) {
            rc = cw_err_set(err, CW_EINVAL, "\"dense_weight\" must be a number in [0, 1]");
            goto done;
        }
        r.has_dense_weight = true;
        r.dense_weight = json_number_value(dw);
    }
    rc = srv_search_req_check(&r, err);
    if (rc == CW_OK) {
        *out = r;
    }
done:
    json_decref(root);
    return rc;
}

/* A string member: required or optional, 1..max bytes, no NUL. */
static int get_str(json_t *obj, const char *key, bool required, size_t max, cw_arena *arena,
                   const char **out, char *why, size_t why_n)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required) {
            snprintf(why, why_n, "\"%s\" is missing", key);
            return CW_EINVAL;
        }
        *out = NULL;
        return CW_OK;
    }
    size_t n = json_is_string(v) ? json_string_length(v) : 0;
    if (!json_is_string(v) || n == 0 || n > max || memchr(json_string_value(v), '\0', n)) {
        snprintf(why, why_n, "\"%s\" must be a string of 1..%zu bytes", key, max);
        return CW_EINVAL;
    }
    *out = cw_arena_strndup(arena, json_string_value(v), n);
    return *out ? CW_OK : CW_ENOMEM;
}

static int parse_event(json_t *e, int64_t now_ms, cw_arena *arena, causal_event *ev, char *why,
                       size_t why_n)
{
    if (!json_is_object(e)) {
        snprintf(why, why_n, "event must be a JSON object");
        return CW_EINVAL;
    }
    const char *key;
    json_t *val;
    json_object_foreach(e, key, val)
    {
        if (strcmp(key, "impression_id") && strcmp(key, "doc_id") && strcmp(key, "position") &&
            strcmp(key, "type") && strcmp(key, "ts") && strcmp(key, "value_ms") &&
            strcmp(key, "event_id")) {
            snprintf(why, why_n, "unknown member \"%.64s\"", key);
            return CW_EINVAL;
        }
    }
    memset(ev, 0, sizeof *ev);
    json_t *imp = json_object_get(e, "impression_id");
    if (!json_is_integer(imp) || json_integer_value(imp) <= 0) {
        snprintf(why, why_n, "\"impression_id\" must be a positive integer");
        return CW_EINVAL;
    }
    ev->impression_id = (uint64_t)json_integer_value(imp);
    int rc = get_str(e, "doc_id", true, CAUSAL_MAX_NAME_BYTES, arena, &ev->doc_id, why, why_n);
    if (rc != CW_OK) {
        return rc;
    }
    json_t *pos = json_object_get(e, "position");
    if (!json_is_integer(pos) || json_integer_value(pos) < 1 ||
        json_integer_value(pos) > CAUSAL_MAX_ITEMS) {
        snprintf(why, why_n, "\"position\" must be an integer in 1..%u", CAUSAL_MAX_ITEMS);
        return CW_EINVAL;
    }
    ev->position = (uint32_t)json_integer_value(pos);
    json_t *type = json_object_get(e, "type");
    cw_err terr;
    if (!json_is_string(type) ||
        causal_event_type_parse(json_string_value(type), &ev->type, &terr) != CW_OK) {
        snprintf(why, why_n, "\"type\" must be one of \"click\", \"view\", \"dwell\", \"skip\"");
        return CW_EINVAL;
    }
    json_t *ts = json_object_get(e, "ts");
    if (ts && (!json_is_integer(ts) || json_integer_value(ts) < 0)) {
        snprintf(why, why_n, "\"ts\" must be a non-negative integer (ms since the epoch)");
        return CW_EINVAL;
    }
    ev->ts_ms = ts ? (int64_t)json_integer_value(ts) : now_ms;
    json_t *value = json_object_get(e, "value_ms");
    if (value && (!json_is_integer(value) || json_integer_value(value) < 0)) {
        snprintf(why, why_n, "\"value_ms\" must be a non-negative integer");
        return CW_EINVAL;
    }
    ev->value_ms = value ? (int64_t)json_integer_value(value) : -1;
    if (ev->type == CAUSAL_EVENT_DWELL && ev->value_ms < 0) {
        snprintf(why, why_n, "a \"dwell\" event needs \"value_ms\"");
        return CW_EINVAL;
    }
    return get_str(e, "event_id", false, CAUSAL_MAX_CLIENT_ID_BYTES, arena, &ev->client_id, why,
                   why_n);
}

int srv_parse_events_body(const char *body, size_t len, int64_t now_ms, cw_arena *arena,
                          causal_event **events, size_t *n_events, srv_event_problem **problems,
                          size_t *n_problems, cw_err *err)
{
    *n_problems = 0;
    json_t *root = load_json(body, len, err);
    if (!root) {
        return CW_EPARSE;
    }
    int rc = CW_OK;
    json_t *arr = root;
    if (json_is_object(root)) {
        arr = json_object_get(root, "events");
        if (json_object_size(root) != 1) {
            arr = NULL;
        }
    }
    if (!json_is_array(arr)) {
        rc = cw_err_set(err, CW_EPARSE,
                        "body must be a JSON array of events or {\"events\": [...]}");
        goto done;
    }
    size_t n = json_array_size(arr);
    if (n == 0) {
        rc = cw_err_set(err, CW_EINVAL, "the batch has no events");
        goto done;
    }
    if (n > SRV_MAX_EVENTS) {
        rc = cw_err_set(err, CW_ELIMIT, "%zu events in one batch (limit %u)", n, SRV_MAX_EVENTS);
        goto done;
    }
    causal_event *ev = cw_arena_alloc(arena, n * sizeof *ev);
    srv_event_problem *pr = cw_arena_alloc(arena, n * sizeof *pr);
    if (!ev || !pr) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory");
        goto done;
    }
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
        char why[CAUSAL_MAX_REASON_BYTES];
        int r = parse_event(json_array_get(arr, i), now_ms, arena, &ev[i], why, sizeof why);
        if (r == CW_ENOMEM) {
            rc = cw_err_set(err, CW_ENOMEM, "out of memory");
            goto done;
        }
        if (r != CW_OK) {
            pr[np].index = i;
            snprintf(pr[np].reason, sizeof pr[np].reason, "%s", why);
            np++;
        }
    }
    *problems = pr;
    *n_problems = np;
    if (np > 0) {
        rc = cw_err_set(err, CW_EINVAL, "%zu of %zu events are malformed; first: event %zu: %s", np,
                        n, pr[0].index, pr[0].reason);
        goto done;
    }
    *events = ev;
    *n_events = n;
done:
    json_decref(root);
    return rc;
}

int srv_json_string(cw_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case 6 bytes per input byte; reserve once so the loop only copies. */
    if (b->cap - b->len < 6 * n + 3 || !b->data) {
        size_t need = b->len + 6 * n + 3;
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need + 1) {
            cap *= 2;
        }
        char *p = realloc(b->data, cap);
        if (!p) {
            return CW_ENOMEM;
        }
        b->data = p;
        b->cap = cap;
    }
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            *o++ = '\\';
            switch (c) {
            case '\n': *o++ = 'n'; break;
            case '\t': *o++ = 't'; break;
            case '\r': *o++ = 'r'; break;
            default:
                *o++ = 'u';
                *o++ = '0';
                *o++ = '0';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
            }
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return CW_OK;
}

/* ---- config file ---------------------------------------------------------- */

struct srv_config_store {
    json_t *root;
};

void srv_config_store_free(srv_config_store *s)
{
    if (s) {
        json_decref(s->root);
        free(s);
    }
}

int srv_config_load(const char *path, srv_config *cfg, srv_config_store **owned, cw_err *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = cw_file_read(path, 1 << 20, &text, &len, err);
    if (rc != CW_OK) {
        return rc;
    }
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!root) {
        return cw_err_set(err, CW_EPARSE, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    }
    srv_config c = *cfg;
    const char *key;
    json_t *v;
    rc = CW_OK;
    json_object_foreach(root, key, v)
    {
        const char **sp = NULL;
        int64_t lo = 0, hi = 0;
        int64_t *ip = NULL, tmp = 0;
        if (!strcmp(key, "index")) {
            sp = &c.index_dir;
        } else if (!strcmp(key, "db")) {
            sp = &c.db_path;
        } else if (!strcmp(key, "model")) {
            sp = &c.model_path;
        } else if (!strcmp(key, "bind")) {
            sp = &c.bind;
        } else if (!strcmp(key, "admin_token")) {
            sp = &c.admin_token;
        } else if (!strcmp(key, "logging_policy")) {
            sp = &c.logging_policy; /* validated by srv_new (causal_rpol_parse) */
        } else if (!strcmp(key, "retrieval")) {
            sp = &c.retrieval; /* validated by srv_new */
        } else if (!strcmp(key, "fusion")) {
            sp = &c.fusion; /* validated by srv_new */
        } else if (!strcmp(key, "dense_weight") || !strcmp(key, "rrf_k")) {
            /* numbers, validated by srv_new */
            if (!json_is_number(v)) {
                rc = cw_err_set(err, CW_EPARSE, "%s: \"%s\" must be a number", path, key);
                break;
            }
            *(!strcmp(key, "rrf_k") ? &c.rrf_k : &c.dense_weight) = json_number_value(v);
            continue;
        } else if (!strcmp(key, "mc_samples")) {
            ip = &tmp, lo = 1, hi = CAUSAL_PL_MAX_MC_SAMPLES;
        } else if (!strcmp(key, "sync")) {
            const char *s = json_string_value(v);
            if (s && !strcmp(s, "full")) {
                c.sync = CAUSAL_SYNC_FULL;
            } else if (s && !strcmp(s, "normal")) {
                c.sync = CAUSAL_SYNC_NORMAL;
            } else {
                rc =
                    cw_err_set(err, CW_EPARSE, "%s: \"sync\" must be \"full\" or \"normal\"", path);
            }
        } else if (!strcmp(key, "port")) {
            ip = &tmp, lo = 0, hi = 65535;
        } else if (!strcmp(key, "threads")) {
            ip = &tmp, lo = 1, hi = 256;
        } else if (!strcmp(key, "max_body_bytes")) {
            ip = &tmp, lo = 1024, hi = (int64_t)SRV_MAX_BODY_BYTES_CAP;
        } else if (!strcmp(key, "queue_capacity")) {
            ip = &tmp, lo = 1, hi = 1 << 24;
        } else if (!strcmp(key, "timeout_s")) {
            ip = &tmp, lo = 1, hi = 3600;
        } else if (!strcmp(key, "cache_mb")) {
            ip = &tmp, lo = 0, hi = 1 << 20;
        } else {
            rc = cw_err_set(err, CW_EPARSE, "%s: unknown key \"%.64s\"", path, key);
        }
        if (rc != CW_OK) {
            break;
        }
        if (sp) {
            if (!json_is_string(v) || json_string_length(v) == 0) {
                rc = cw_err_set(err, CW_EPARSE, "%s: \"%s\" must be a non-empty string", path, key);
                break;
            }
            *sp = json_string_value(v);
        } else if (ip) {
            if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
                rc = cw_err_set(err, CW_EPARSE, "%s: \"%s\" must be an integer in %lld..%lld", path,
                                key, (long long)lo, (long long)hi);
                break;
            }
            tmp = json_integer_value(v);
            if (!strcmp(key, "port")) {
                c.port = (uint16_t)tmp;
            } else if (!strcmp(key, "threads")) {
                c.threads = (unsigned)tmp;
            } else if (!strcmp(key, "max_body_bytes")) {
                c.max_body_bytes = (size_t)tmp;
            } else if (!strcmp(key, "queue_capacity")) {
                c.queue_capacity = (unsigned)tmp;
            } else if (!strcmp(key, "cache_mb")) {
                c.cache_bytes = (size_t)tmp << 20;
            } else if (!strcmp(key, "mc_samples")) {
                c.mc_samples = (unsigned)tmp;
            } else {
                c.timeout_s = (unsigned)tmp;
            }
        }
    }
    if (rc != CW_OK) {
        json_decref(root);
        return rc;
    }
    srv_config_store *st = malloc(sizeof *st);
    if (!st) {
        json_decref(root);
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    st->root = root;
    *cfg = c;
    *owned = st;
    return CW_OK;
}
