/* causal/sessions.c: the in-memory session set (what the simulator writes and every
 * click-model and propensity fit reads) and its adapter to the SQLite log store.
 * Data flow: simulator or log store -> causal_sessions -> fits. */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "causal/causal.h"

/* Open-addressing hash table mapping a 64-bit key to a 32-bit id. Keys are hashes of
 * names (collisions are resolved by comparing the stored names) or packed pairs. */
typedef struct idmap {
    uint64_t *keys;
    uint32_t *ids; /* UINT32_MAX = empty slot */
    size_t cap;    /* power of two */
    size_t n;
} idmap;

struct causal_sessions_int {
    size_t cap_queries, cap_docs, cap_rankers, cap_pairs, cap_sessions, cap_items;
    idmap queries, docs, rankers, pairs;
    uint8_t *has_feat; /* per pair: features copied from a logged vector (add_impression) */
    size_t cap_has_feat;
};

const char *causal_policy_name(causal_policy p)
{
    switch (p) {
    case CAUSAL_POLICY_DETERMINISTIC: return "deterministic";
    case CAUSAL_POLICY_RANDTOP: return "randtop";
    case CAUSAL_POLICY_SWAP: return "swap";
    case CAUSAL_POLICY_PL: return "pl";
    default: return "unknown";
    }
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) {
        return CW_OK;
    }
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        c *= 2;
    }
    void *q = realloc(*p, c * elem);
    if (!q) {
        return CW_ENOMEM;
    }
    *p = q;
    *cap = c;
    return CW_OK;
}

static void idmap_fini(idmap *m)
{
    free(m->keys);
    free(m->ids);
    memset(m, 0, sizeof *m);
}

static int idmap_rehash(idmap *m, size_t cap)
{
    uint64_t *keys = malloc(cap * sizeof *keys);
    uint32_t *ids = malloc(cap * sizeof *ids);
    if (!keys || !ids) {
        free(keys);
        free(ids);
        return CW_ENOMEM;
    }
    memset(ids, 0xff, cap * sizeof *ids);
    for (size_t i = 0; i < m->cap; i++) {
        if (m->ids[i] == UINT32_MAX) {
            continue;
        }
        size_t j = (size_t)(m->keys[i] * 0x9E3779B97F4A7C15ull) & (cap - 1);
        while (ids[j] != UINT32_MAX) {
            j = (j + 1) & (cap - 1);
        }
        keys[j] = m->keys[i];
        ids[j] = m->ids[i];
    }
    free(m->keys);
    free(m->ids);
    m->keys = keys;
    m->ids = ids;
    m->cap = cap;
    return CW_OK;
}

/* Finds key; `same` decides equality of candidate ids for hashed names (NULL = key
 * equality suffices). Returns the slot: occupied (found) or empty (insert there). */
static size_t idmap_slot(const idmap *m, uint64_t key, char **names, const char *name)
{
    size_t j = (size_t)(key * 0x9E3779B97F4A7C15ull) & (m->cap - 1);
    while (m->ids[j] != UINT32_MAX) {
        if (m->keys[j] == key && (!names || strcmp(names[m->ids[j]], name) == 0)) {
            return j;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return j;
}

static int idmap_reserve_one(idmap *m)
{
    if ((m->n + 1) * 2 > m->cap) {
        return idmap_rehash(m, m->cap ? m->cap * 2 : 64);
    }
    return CW_OK;
}

int causal_sessions_new(causal_sessions **out, cw_err *err)
{
    causal_sessions *s = calloc(1, sizeof *s);
    if (!s || !(s->in = calloc(1, sizeof *s->in)) || !(s->s_begin = calloc(1, sizeof(size_t)))) {
        causal_sessions_free(s);
        return cw_err_set(err, CW_ENOMEM, "out of memory creating a session set");
    }
    s->in->cap_sessions = 0;
    *out = s;
    return CW_OK;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
}

void causal_sessions_free(causal_sessions *s)
{
    if (!s) {
        return;
    }
    free_names(s->query_names, s->n_queries);
    free_names(s->doc_names, s->n_docs);
    free_names(s->ranker_names, s->n_rankers);
    free(s->pair_query);
    free(s->pair_doc);
    free(s->pair_label);
    free(s->pair_features);
    free(s->s_query);
    free(s->s_ranker);
    free(s->s_policy);
    free(s->s_param);
    free(s->s_logp);
    free(s->s_begin);
    free(s->i_pair);
    free(s->i_pos);
    free(s->i_click);
    free(s->i_prop);
    free(s->i_score);
    if (s->in) {
        idmap_fini(&s->in->queries);
        idmap_fini(&s->in->docs);
        idmap_fini(&s->in->rankers);
        idmap_fini(&s->in->pairs);
        free(s->in->has_feat);
        free(s->in);
    }
    free(s);
}

void causal_sessions_clear(causal_sessions *s)
{
    s->n_sessions = 0;
    s->n_items = 0;
    s->s_begin[0] = 0;
}

static int intern(causal_sessions *s, idmap *m, char ***names, size_t *n, size_t *cap, size_t limit,
                  const char *what, const char *name, uint32_t *out, cw_err *err)
{
    size_t len = strlen(name);
    if (len > CAUSAL_MAX_NAME_BYTES) {
        return cw_err_set(err, CW_ELIMIT, "%s name of %zu bytes is over the limit of %u", what, len,
                          CAUSAL_MAX_NAME_BYTES);
    }
    (void)s;
    uint64_t key = cw_hash64(name, len, 0x5eed);
    if (m->cap) {
        size_t j = idmap_slot(m, key, *names, name);
        if (m->ids[j] != UINT32_MAX) {
            *out = m->ids[j];
            return CW_OK;
        }
    }
    if (*n >= limit) {
        return cw_err_set(err, CW_ELIMIT, "more than %zu distinct %s names", limit, what);
    }
    char *dup = strdup(name);
    if (!dup || idmap_reserve_one(m) != CW_OK ||
        grow((void **)names, cap, *n + 1, sizeof **names) != CW_OK) {
        free(dup);
        return cw_err_set(err, CW_ENOMEM, "out of memory interning a %s name", what);
    }
    size_t j = idmap_slot(m, key, *names, name);
    m->keys[j] = key;
    m->ids[j] = (uint32_t)*n;
    m->n++;
    (*names)[*n] = dup;
    *out = (uint32_t)(*n)++;
    return CW_OK;
}

int causal_sessions_query(causal_sessions *s, const char *name, uint32_t *out, cw_err *err)
{
    return intern(s, &s->in->queries, &s->query_names, &s->n_queries, &s->in->cap_queries,
                  UINT32_MAX - 1, "query", name, out, err);
}

int causal_sessions_doc(causal_sessions *s, const char *name, uint32_t *out, cw_err *err)
{
    return intern(s, &s->in->docs, &s->doc_names, &s->n_docs, &s->in->cap_docs, UINT32_MAX - 1,
                  "document", name, out, err);
}

int causal_sessions_ranker(causal_sessions *s, const char *name, uint32_t *out, cw_err *err)
{
    return intern(s, &s->in->rankers, &s->ranker_names, &s->n_rankers, &s->in->cap_rankers,
                  CAUSAL_MAX_RANKERS, "ranker", name, out, err);
}

int causal_sessions_pair(causal_sessions *s, uint32_t query, uint32_t doc, int label, uint32_t *out,
                         cw_err *err)
{
    if (query >= s->n_queries || doc >= s->n_docs) {
        return cw_err_set(err, CW_EINVAL, "pair (%u, %u) names an unknown query or document", query,
                          doc);
    }
    if (label < -1 || label > CAUSAL_MAX_LABEL) {
        return cw_err_set(err, CW_EINVAL, "label %d outside -1..%d", label, CAUSAL_MAX_LABEL);
    }
    idmap *m = &s->in->pairs;
    uint64_t key = ((uint64_t)query << 32) | doc;
    if (m->cap) {
        size_t j = idmap_slot(m, key, NULL, NULL);
        if (m->ids[j] != UINT32_MAX) {
            uint32_t id = m->ids[j];
            if (s->pair_label[id] < 0 && label >= 0) {
                s->pair_label[id] = (int8_t)label;
            }
            *out = id;
            return CW_OK;
        }
    }
    size_t n = s->n_pairs, c = s->in->cap_pairs;
    if (n >= UINT32_MAX - 1) {
        return cw_err_set(err, CW_ELIMIT, "more than 2^32 - 2 (query, doc) pairs");
    }
    int rc = idmap_reserve_one(m);
    size_t c1 = c, c2 = c;
    if (rc == CW_OK) {
        rc = grow((void **)&s->pair_query, &c, n + 1, sizeof *s->pair_query);
    }
    if (rc == CW_OK) {
        rc = grow((void **)&s->pair_doc, &c1, n + 1, sizeof *s->pair_doc);
    }
    if (rc == CW_OK) {
        rc = grow((void **)&s->pair_label, &c2, n + 1, sizeof *s->pair_label);
    }
    if (rc == CW_OK && s->n_features > 0) {
        size_t cf = s->in->cap_pairs;
        float *f = s->pair_features;
        if (cf < c) {
            f = realloc(f, c * s->n_features * sizeof *f);
            if (!f) {
                rc = CW_ENOMEM;
            } else {
                s->pair_features = f;
            }
        }
        if (rc == CW_OK) {
            memset(f + n * s->n_features, 0, s->n_features * sizeof *f);
        }
    }
    if (rc != CW_OK) {
        return cw_err_set(err, CW_ENOMEM, "out of memory adding a (query, doc) pair");
    }
    s->in->cap_pairs = c;
    size_t j = idmap_slot(m, key, NULL, NULL);
    m->keys[j] = key;
    m->ids[j] = (uint32_t)n;
    m->n++;
    s->pair_query[n] = query;
    s->pair_doc[n] = doc;
    s->pair_label[n] = (int8_t)label;
    s->n_pairs = n + 1;
    *out = (uint32_t)n;
    return CW_OK;
}

int causal_sessions_set_n_features(causal_sessions *s, size_t n, cw_err *err)
{
    if (n == s->n_features) {
        return CW_OK;
    }
    if (s->n_features != 0) {
        return cw_err_set(err, CW_EINVAL, "feature count already set to %zu, cannot change to %zu",
                          s->n_features, n);
    }
    if (n > CAUSAL_MAX_FEATURES) {
        return cw_err_set(err, CW_ELIMIT, "%zu features per pair is over the limit of %u", n,
                          CAUSAL_MAX_FEATURES);
    }
    size_t cap = s->in->cap_pairs ? s->in->cap_pairs : 1;
    float *f = calloc(cap * n, sizeof *f);
    if (!f) {
        return cw_err_set(err, CW_ENOMEM, "out of memory for pair features");
    }
    s->pair_features = f;
    s->n_features = n;
    return CW_OK;
}

static int grow_sessions(causal_sessions *s, size_t need)
{
    causal_sessions_int *in = s->in;
    if (need <= in->cap_sessions) {
        return CW_OK;
    }
    size_t c = in->cap_sessions ? in->cap_sessions : 64;
    while (c < need) {
        c *= 2;
    }
    size_t c0 = in->cap_sessions, c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0 + 1;
    if (grow((void **)&s->s_query, &c0, c, sizeof *s->s_query) ||
        grow((void **)&s->s_ranker, &c1, c, sizeof *s->s_ranker) ||
        grow((void **)&s->s_policy, &c2, c, sizeof *s->s_policy) ||
        grow((void **)&s->s_param, &c3, c, sizeof *s->s_param) ||
        grow((void **)&s->s_logp, &c4, c, sizeof *s->s_logp) ||
        grow((void **)&s->s_begin, &c5, c + 1, sizeof *s->s_begin)) {
        return CW_ENOMEM;
    }
    in->cap_sessions = c;
    return CW_OK;
}

static int grow_items(causal_sessions *s, size_t need)
{
    causal_sessions_int *in = s->in;
    if (need <= in->cap_items) {
        return CW_OK;
    }
    size_t c = in->cap_items ? in->cap_items : 256;
    while (c < need) {
        c *= 2;
    }
    size_t c0 = in->cap_items, c1 = c0, c2 = c0, c3 = c0, c4 = c0;
    if (grow((void **)&s->i_pair, &c0, c, sizeof *s->i_pair) ||
        grow((void **)&s->i_pos, &c1, c, sizeof *s->i_pos) ||
        grow((void **)&s->i_click, &c2, c, sizeof *s->i_click) ||
        grow((void **)&s->i_prop, &c3, c, sizeof *s->i_prop) ||
        grow((void **)&s->i_score, &c4, c, sizeof *s->i_score)) {
        return CW_ENOMEM;
    }
    in->cap_items = c;
    return CW_OK;
}

int causal_sessions_reserve(causal_sessions *s, size_t n_sessions, size_t n_items, cw_err *err)
{
    if (grow_sessions(s, s->n_sessions + n_sessions) != CW_OK ||
        grow_items(s, s->n_items + n_items) != CW_OK) {
        return cw_err_set(err, CW_ENOMEM, "out of memory reserving %zu sessions", n_sessions);
    }
    return CW_OK;
}

int causal_sessions_append(causal_sessions *s, const causal_session_in *in, cw_err *err)
{
    if (in->query >= s->n_queries || in->ranker >= s->n_rankers) {
        return cw_err_set(err, CW_EINVAL, "session %zu: unknown query %u or ranker %u",
                          s->n_sessions, in->query, in->ranker);
    }
    if (in->n_items == 0 || in->n_items > CAUSAL_MAX_ITEMS) {
        return cw_err_set(err, CW_EINVAL, "session %zu: %zu items (must be 1..%u)", s->n_sessions,
                          in->n_items, CAUSAL_MAX_ITEMS);
    }
    if (in->param > UINT16_MAX) {
        return cw_err_set(err, CW_EINVAL, "session %zu: policy parameter %u over 65535",
                          s->n_sessions, in->param);
    }
    for (size_t j = 0; j < in->n_items; j++) {
        if (in->pairs[j] >= s->n_pairs) {
            return cw_err_set(err, CW_EINVAL, "session %zu item %zu: unknown pair %u",
                              s->n_sessions, j, in->pairs[j]);
        }
        if (in->positions[j] == 0 || (j > 0 && in->positions[j] <= in->positions[j - 1])) {
            return cw_err_set(err, CW_EINVAL,
                              "session %zu item %zu: position %u is 0 or not increasing",
                              s->n_sessions, j, in->positions[j]);
        }
        if (in->clicks[j] > 1) {
            return cw_err_set(err, CW_EINVAL, "session %zu item %zu: click %u is not 0/1",
                              s->n_sessions, j, in->clicks[j]);
        }
    }
    if (grow_sessions(s, s->n_sessions + 1) != CW_OK ||
        grow_items(s, s->n_items + in->n_items) != CW_OK) {
        return cw_err_set(err, CW_ENOMEM, "out of memory appending a session");
    }
    size_t i = s->n_sessions, b = s->n_items;
    s->s_query[i] = in->query;
    s->s_ranker[i] = (uint16_t)in->ranker;
    s->s_policy[i] = (uint8_t)in->policy;
    s->s_param[i] = (uint16_t)in->param;
    s->s_logp[i] = in->logp;
    memcpy(s->i_pair + b, in->pairs, in->n_items * sizeof *in->pairs);
    memcpy(s->i_pos + b, in->positions, in->n_items * sizeof *in->positions);
    memcpy(s->i_click + b, in->clicks, in->n_items * sizeof *in->clicks);
    for (size_t j = 0; j < in->n_items; j++) {
        s->i_prop[b + j] = in->props ? in->props[j] : NAN;
        s->i_score[b + j] = in->scores ? in->scores[j] : NAN;
    }
    s->n_items = b + in->n_items;
    s->n_sessions = i + 1;
    s->s_begin[i + 1] = s->n_items;
    return CW_OK;
}

/* ---- the log-store adapter ------------------------------------------------ */

/* The word of a draw spec (before ':') names one of causal_rpol_parse's kinds. */
static bool is_draw_word(const char *spec)
{
    static const char *const words[] = {"det", "pl", "randtop", "egreedy"};
    size_t n = strcspn(spec, ":");
    for (size_t i = 0; i < CW_ARRAY_LEN(words); i++) {
        if (strlen(words[i]) == n && strncmp(spec, words[i], n) == 0) {
            return true;
        }
    }
    return false;
}

int causal_policy_name_parse(const char *name, causal_policy_name_info *out, cw_err *err)
{
    if (!name || !*name) {
        return cw_err_set(err, CW_EINVAL, "policy name: empty");
    }
    causal_policy_name_info info = {.kind = CAUSAL_POLICY_UNKNOWN};
    const char *at = strrchr(name, '@');
    if (at && is_draw_word(at + 1)) {
        if (at == name) {
            return cw_err_set(err, CW_EPARSE, "policy name \"%s\": no ranker before '@'", name);
        }
        int rc = causal_rpol_parse(at + 1, &info.draw, err);
        if (rc != CW_OK) {
            cw_err_prefix(err, "policy name \"%s\": ", name);
            return rc;
        }
        info.has_draw = true;
        info.ranker_len = (size_t)(at - name);
        switch (info.draw.kind) {
        case CAUSAL_RPOL_DET: info.kind = CAUSAL_POLICY_DETERMINISTIC; break;
        case CAUSAL_RPOL_PL: info.kind = CAUSAL_POLICY_PL; break;
        case CAUSAL_RPOL_RANDTOPN:
            info.kind = CAUSAL_POLICY_RANDTOP;
            info.param = info.draw.top_n;
            break;
        default: break; /* e-greedy: no session class (treated as deterministic) */
        }
    } else if (strcmp(name, "deterministic") == 0) {
        info.kind = CAUSAL_POLICY_DETERMINISTIC;
    } else if (strncmp(name, "randtop-", 8) == 0) {
        /* causal_sessions_save_log's form; the server's before RANKER@DRAW */
        char *end = NULL;
        unsigned long n = strtoul(name + 8, &end, 10);
        if (isdigit((unsigned char)name[8]) && *end == '\0' && n >= 1 && n <= CAUSAL_MAX_ITEMS) {
            info.kind = CAUSAL_POLICY_RANDTOP;
            info.param = (uint32_t)n;
            info.has_draw = true;
            info.draw = (causal_rpol){.kind = CAUSAL_RPOL_RANDTOPN, .tau = 1, .top_n = (uint32_t)n};
        }
    } else if (strcmp(name, "swap") == 0) {
        info.kind = CAUSAL_POLICY_SWAP;
    } else if (strcmp(name, "pl") == 0) {
        info.kind = CAUSAL_POLICY_PL;
    }
    *out = info;
    return CW_OK;
}

int causal_policy_name_format(const char *ranker, const causal_rpol *draw, char *buf,
                              size_t buf_bytes, cw_err *err)
{
    if (!ranker || !*ranker || strchr(ranker, '@')) {
        return cw_err_set(err, CW_EINVAL, "policy name: ranker name \"%s\" empty or with '@'",
                          ranker ? ranker : "");
    }
    char num[CW_DOUBLE_BUF], spec[48];
    switch (draw->kind) {
    case CAUSAL_RPOL_PL:
        if (!(isfinite(draw->tau) && draw->tau > 0)) {
            return cw_err_set(err, CW_EINVAL, "policy name: PL temperature %g (must be > 0)",
                              draw->tau);
        }
        cw_fmt_double_exact(draw->tau, num);
        snprintf(spec, sizeof spec, "pl:%s", num);
        break;
    case CAUSAL_RPOL_RANDTOPN: snprintf(spec, sizeof spec, "randtop:%u", draw->top_n); break;
    case CAUSAL_RPOL_EPSGREEDY:
        if (!(draw->epsilon >= 0 && draw->epsilon <= 1)) {
            return cw_err_set(err, CW_EINVAL, "policy name: epsilon %g (must be in [0, 1])",
                              draw->epsilon);
        }
        cw_fmt_double_exact(draw->epsilon, num);
        snprintf(spec, sizeof spec, "egreedy:%s", num);
        break;
    default:
        return cw_err_set(err, CW_EINVAL,
                          "policy name: a deterministic page is logged under its ranker's name");
    }
    size_t need = strlen(ranker) + 1 + strlen(spec);
    if (need >= buf_bytes || need > CAUSAL_MAX_NAME_BYTES) {
        return cw_err_set(err, CW_ELIMIT, "policy name \"%s@%s\": %zu bytes (limit %zu)", ranker,
                          spec, need,
                          CW_MIN(buf_bytes ? buf_bytes - 1 : 0, (size_t)CAUSAL_MAX_NAME_BYTES));
    }
    snprintf(buf, buf_bytes, "%s@%s", ranker, spec);
    return CW_OK;
}

int causal_policy_name_ranker(const char *policy, const char *model_version,
                              causal_policy_name_info *info, char *ranker, size_t ranker_bytes,
                              cw_err *err)
{
    causal_policy_name_info pn;
    int rc = causal_policy_name_parse(policy, &pn, err);
    if (rc != CW_OK) {
        return rc;
    }
    int n = pn.ranker_len > 0 && model_version
                ? snprintf(ranker, ranker_bytes, "%s (model %s)", policy, model_version)
                : snprintf(ranker, ranker_bytes, "%s", model_version ? model_version : policy);
    if (n < 0 || (size_t)n >= ranker_bytes) {
        return cw_err_set(err, CW_ELIMIT,
                          "policy \"%s\", model version \"%s\": ranker key over %zu bytes", policy,
                          model_version ? model_version : "", ranker_bytes ? ranker_bytes - 1 : 0);
    }
    *info = pn;
    return CW_OK;
}

/* One item kept per position, at most CAUSAL_MAX_ITEMS per impression. */
typedef struct imp_scratch {
    uint32_t pairs[CAUSAL_MAX_ITEMS];
    uint16_t pos[CAUSAL_MAX_ITEMS];
    uint8_t clicks[CAUSAL_MAX_ITEMS];
    float props[CAUSAL_MAX_ITEMS], scores[CAUSAL_MAX_ITEMS];
} imp_scratch;

/* Marks pair p as having a logged feature vector. */
static int set_has_feat(causal_sessions *s, uint32_t p, cw_err *err)
{
    causal_sessions_int *in = s->in;
    if (s->n_pairs > in->cap_has_feat) {
        size_t cap = CW_MAX(s->n_pairs, 2 * in->cap_has_feat);
        uint8_t *b = realloc(in->has_feat, cap);
        if (!b) {
            return cw_err_set(err, CW_ENOMEM, "out of memory for pair features");
        }
        memset(b + in->cap_has_feat, 0, cap - in->cap_has_feat);
        in->has_feat = b;
        in->cap_has_feat = cap;
    }
    in->has_feat[p] = 1;
    return CW_OK;
}

static bool has_feat(const causal_sessions *s, uint32_t p)
{
    return p < s->in->cap_has_feat && s->in->has_feat[p];
}

size_t causal_sessions_pairs_without_features(const causal_sessions *s)
{
    size_t n = 0;
    for (size_t p = 0; s->n_features > 0 && p < s->n_pairs; p++) {
        n += !has_feat(s, (uint32_t)p);
    }
    return n;
}

int causal_sessions_add_impression(causal_sessions *s, const causal_impression *imp,
                                   uint32_t max_rank, causal_feat_rule rule, causal_load_stats *st,
                                   cw_err *err)
{
    imp_scratch scratch, *x = &scratch; /* ~15 KB on the stack: no allocation per row */
    char rname[CAUSAL_RANKER_KEY_BYTES];
    causal_session_in in = {0};
    /* read below also when the parse failed (then rc stops everything): never indeterminate */
    causal_policy_name_info pn = {.kind = CAUSAL_POLICY_UNKNOWN};
    const char *qname = imp->qid ? imp->qid : imp->query;
    int rc =
        causal_policy_name_ranker(imp->policy, imp->model_version, &pn, rname, sizeof rname, err);
    rc = rc ? rc : causal_sessions_query(s, qname, &in.query, err);
    rc = rc ? rc : causal_sessions_ranker(s, rname, &in.ranker, err);
    in.policy = pn.kind;
    in.param = pn.param;
    in.logp = imp->log_prob;
    /* FIRST: the first vector logged for a pair, whichever impression carries it (a pair
     * first shown without one takes a later one); the log's first width is kept and other
     * widths are skipped. LAST: every vector of width s->n_features replaces the pair's. */
    if (rc == CW_OK && rule == CAUSAL_FEAT_FIRST && imp->n_features > 0 && s->n_features == 0) {
        rc = causal_sessions_set_n_features(s, imp->n_features, err);
    }
    bool width_ok = s->n_features > 0 && imp->n_features == s->n_features;
    size_t n = 0;
    double best = -INFINITY;
    uint32_t best_pos = 0;
    for (size_t j = 0; rc == CW_OK && j < imp->n_items; j++) {
        const causal_item *it = &imp->items[j];
        if (it->position > max_rank) {
            st->n_deep++;
            continue;
        }
        uint32_t d;
        rc = causal_sessions_doc(s, it->doc_id, &d, err);
        rc = rc ? rc : causal_sessions_pair(s, in.query, d, -1, &x->pairs[n], err);
        if (rc == CW_OK && it->features && width_ok &&
            (rule == CAUSAL_FEAT_LAST || !has_feat(s, x->pairs[n]))) {
            memcpy(s->pair_features + (size_t)x->pairs[n] * s->n_features, it->features,
                   s->n_features * sizeof *it->features);
            rc = set_has_feat(s, x->pairs[n], err);
        }
        x->pos[n] = (uint16_t)it->position;
        x->clicks[n] = it->n_clicks > 0;
        st->n_multi_click += it->n_clicks > 1;
        st->n_clicks += x->clicks[n];
        x->props[n] = (float)it->propensity;
        st->n_no_prop += isnan(it->propensity);
        x->scores[n] = (float)it->score;
        if (!isnan(it->score) && it->score > best) {
            best = it->score;
            best_pos = it->position;
        }
        n++;
    }
    if (rc == CW_OK && in.policy == CAUSAL_POLICY_SWAP) {
        in.param = best_pos; /* where the ranker's top document was shown */
    }
    if (rc == CW_OK && n == 0) {
        st->n_empty++;
    } else if (rc == CW_OK) {
        in.n_items = n;
        in.pairs = x->pairs;
        in.positions = x->pos;
        in.clicks = x->clicks;
        in.props = x->props;
        in.scores = x->scores;
        rc = causal_sessions_append(s, &in, err);
        st->n_items += rc == CW_OK ? n : 0;
    }
    if (rc != CW_OK) {
        cw_err_prefix(err, "impression %llu: ", (unsigned long long)imp->id);
    }
    return rc;
}

int causal_sessions_load_log(const char *db_path, uint32_t max_rank, causal_sessions **out,
                             causal_load_stats *stats, cw_err *err)
{
    causal_log_opts lo = causal_log_opts_default();
    lo.read_only = true;
    causal_log *log = NULL;
    causal_log_reader *rd = NULL;
    causal_sessions *s = NULL;
    causal_load_stats st = {0};
    int rc = causal_log_open(db_path, &lo, &log, err);
    if (rc != CW_OK) {
        return rc;
    }
    causal_log_filter f = causal_log_filter_all();
    if ((rc = causal_log_reader_new(log, &f, &rd, err)) != CW_OK ||
        (rc = causal_sessions_new(&s, err)) != CW_OK) {
        goto fail;
    }
    const causal_impression *imp = NULL;
    while ((rc = causal_log_reader_next(rd, &imp, err)) == 1) {
        st.n_impressions++;
        if (cw_interrupted()) {
            rc = cw_err_set(err, CW_EINTR, "interrupted reading %s", db_path);
            goto fail;
        }
        if ((rc = causal_sessions_add_impression(s, imp, max_rank, CAUSAL_FEAT_FIRST, &st, err)) !=
            CW_OK) {
            cw_err_prefix(err, "%s: ", db_path);
            goto fail;
        }
    }
    if (rc < 0) {
        goto fail;
    }
    if (s->n_sessions == 0) {
        rc = cw_err_set(err, CW_EINVAL,
                        "%s: empty log: no usable impressions (%llu read, %llu empty, %llu items "
                        "beyond rank %u)",
                        db_path, (unsigned long long)st.n_impressions,
                        (unsigned long long)st.n_empty, (unsigned long long)st.n_deep, max_rank);
        goto fail;
    }
    st.n_pairs_no_features = causal_sessions_pairs_without_features(s);
    causal_log_reader_free(rd);
    causal_log_close(log);
    if (stats) {
        *stats = st;
    }
    *out = s;
    return CW_OK;
fail:
    causal_log_reader_free(rd);
    causal_log_close(log);
    causal_sessions_free(s);
    return rc;
}

int causal_sessions_save_log(const causal_sessions *s, size_t begin, size_t end,
                             const char *db_path, int64_t base_ts_ms, size_t batch,
                             const cw_progress *progress, cw_err *err)
{
    if (begin > end || end > s->n_sessions) {
        return cw_err_set(err, CW_EINVAL, "session range [%zu, %zu) outside 0..%zu", begin, end,
                          s->n_sessions);
    }
    if (batch == 0) {
        batch = 1000;
    }
    causal_log_opts lo = causal_log_opts_default();
    lo.sync = CAUSAL_SYNC_NORMAL; /* a simulation can be re-run: no fsync per batch */
    causal_log *log = NULL;
    int rc = causal_log_open(db_path, &lo, &log, err);
    if (rc != CW_OK) {
        return rc;
    }
    causal_impression *imps = calloc(batch, sizeof *imps);
    causal_item *items = NULL;
    causal_event *evs = NULL;
    causal_event_reject *rej = NULL;
    char(*policy)[32] = calloc(batch, sizeof *policy);
    const char **fnames = NULL;
    char(*fname_buf)[16] = NULL;
    size_t max_items = 0;
    for (size_t i = begin; i < end; i++) {
        size_t n = s->s_begin[i + 1] - s->s_begin[i];
        max_items = n > max_items ? n : max_items;
    }
    items = calloc(batch * (max_items ? max_items : 1), sizeof *items);
    evs = calloc(batch * (max_items ? max_items : 1), sizeof *evs);
    rej = calloc(batch * (max_items ? max_items : 1), sizeof *rej);
    if (s->n_features > 0) {
        fnames = calloc(s->n_features, sizeof *fnames);
        fname_buf = calloc(s->n_features, sizeof *fname_buf);
        if (fnames && fname_buf) {
            for (size_t f = 0; f < s->n_features; f++) {
                snprintf(fname_buf[f], sizeof fname_buf[f], "f%zu", f + 1);
                fnames[f] = fname_buf[f];
            }
        }
    }
    if (!imps || !items || !evs || !rej || !policy ||
        (s->n_features > 0 && (!fnames || !fname_buf))) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory writing %s", db_path);
        goto fail;
    }
    for (size_t b0 = begin; b0 < end; b0 += batch) {
        size_t b1 = b0 + batch < end ? b0 + batch : end;
        size_t n_it = 0, n_ev = 0;
        for (size_t i = b0; i < b1; i++) {
            causal_impression *imp = &imps[i - b0];
            memset(imp, 0, sizeof *imp);
            imp->id = causal_log_next_id(log);
            imp->ts_ms = base_ts_ms + (int64_t)i;
            imp->qid = s->query_names[s->s_query[i]];
            imp->query = imp->qid;
            causal_policy p = (causal_policy)s->s_policy[i];
            if (p == CAUSAL_POLICY_RANDTOP) {
                snprintf(policy[i - b0], sizeof policy[0], "randtop-%u", s->s_param[i]);
            } else {
                snprintf(policy[i - b0], sizeof policy[0], "%s", causal_policy_name(p));
            }
            imp->policy = policy[i - b0];
            imp->model_version = s->ranker_names[s->s_ranker[i]];
            imp->log_prob = s->s_logp[i];
            imp->temperature = NAN;
            imp->feature_set = s->n_features ? "sim" : NULL;
            imp->feature_names = fnames;
            imp->n_features = (uint32_t)s->n_features;
            imp->items = &items[n_it];
            for (size_t j = s->s_begin[i]; j < s->s_begin[i + 1]; j++) {
                causal_item *it = &items[n_it++];
                uint32_t pr = s->i_pair[j];
                it->doc_id = s->doc_names[s->pair_doc[pr]];
                it->position = s->i_pos[j];
                it->score = s->i_score[j];
                it->propensity = s->i_prop[j];
                it->features = s->n_features ? s->pair_features + (size_t)pr * s->n_features : NULL;
                imp->n_items++;
                if (s->i_click[j]) {
                    causal_event *ev = &evs[n_ev++];
                    memset(ev, 0, sizeof *ev);
                    ev->impression_id = imp->id;
                    ev->doc_id = it->doc_id;
                    ev->position = it->position;
                    ev->type = CAUSAL_EVENT_CLICK;
                    ev->ts_ms = imp->ts_ms;
                    ev->value_ms = -1;
                }
            }
        }
        size_t n_rej = 0;
        if ((rc = causal_log_begin(log, err)) != CW_OK) {
            goto fail;
        }
        if ((rc = causal_log_append_impressions(log, imps, b1 - b0, err)) != CW_OK ||
            (n_ev > 0 &&
             (rc = causal_log_append_events(log, evs, n_ev, rej, &n_rej, NULL, err)) != CW_OK)) {
            causal_log_rollback(log);
            goto fail;
        }
        if ((rc = causal_log_commit(log, err)) != CW_OK) {
            goto fail;
        }
        cw_progress_report(progress, "write log", b1 - begin, end - begin);
        if (cw_interrupted()) {
            rc = cw_err_set(err, CW_EINTR, "interrupted writing %s after %zu sessions", db_path,
                            b1 - begin);
            goto fail;
        }
    }
    rc = CW_OK;
fail:
    free(imps);
    free(items);
    free(evs);
    free(rej);
    free(policy);
    free(fnames);
    free(fname_buf);
    causal_log_close(log);
    return rc;
}
