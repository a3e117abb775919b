/* index/build.c: corpus.jsonl -> index directory. One streaming pass parses and
 * analyses each document, appends it to the document store and buffers its
 * postings per term (varint-coded); when the buffers pass the memory budget they
 * are spilled as a sorted run. A final merge reads the runs in term order,
 * computes block-max metadata and writes the compressed postings. Everything goes
 * into <out>.tmp.<pid>, renamed to <out> only when complete. */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/index_int.h"

typedef struct vterm {
    uint64_t hash;
    uint32_t str_off;
    uint32_t str_len;
    uint8_t *buf; /* this run's postings: varint (doc - last_doc), title tf, text tf */
    uint32_t len;
    uint32_t cap;
    uint32_t last_doc; /* last docid in buf, UINT32_MAX when empty */
} vterm;

/* Per-document term -> slot table, stamped with docid + 1 so it never needs clearing;
 * small enough to stay in L1/L2 while the document is analysed. */
typedef struct dslot {
    uint32_t stamp;
    uint32_t tid;
    uint32_t slot;
} dslot;

typedef struct builder {
    const char *corpus;
    const idx_build_opts *opts;
    idx_analyzer *an;
    char tmp_dir[4096];
    /* vocabulary */
    vterm *terms;
    size_t n_terms, cap_terms;
    uint32_t *vhash; /* open addressing over term ids + 1 (0 = empty) */
    size_t vcap;
    char *spool;
    size_t spool_len, spool_cap;
    /* the document being analysed */
    uint32_t doc;
    uint32_t *slot_tid;
    uint32_t *slot_tf[2];
    size_t n_slots, cap_slots;
    dslot *dtab;
    size_t dcap; /* power of two */
    uint32_t field_len[2];
    int field;
    /* per-document arrays */
    uint32_t *len_title, *len_text;
    uint64_t *doc_off;
    uint64_t *id_off;
    uint32_t *id_len;
    size_t cap_docs;
    char *ids;
    size_t ids_len, ids_cap;
    uint32_t *idhash; /* docid + 1, 0 = empty */
    size_t idcap;
    /* memory accounting and runs */
    size_t mem_postings;
    uint32_t n_runs;
    /* output */
    idx_fw *docs_w;
    idx_build_stats st;
} builder;

static int oom(cw_err *err)
{
    return cw_err_set(err, CW_ENOMEM, "index build: out of memory");
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

/* ---- vocabulary ---------------------------------------------------------- */

static int vocab_rehash(builder *B, size_t cap)
{
    uint32_t *h = calloc(cap, sizeof *h);
    if (!h) {
        return CW_ENOMEM;
    }
    for (size_t t = 0; t < B->n_terms; t++) {
        size_t j = B->terms[t].hash & (cap - 1);
        while (h[j]) {
            j = (j + 1) & (cap - 1);
        }
        h[j] = (uint32_t)t + 1;
    }
    free(B->vhash);
    B->vhash = h;
    B->vcap = cap;
    return CW_OK;
}

static int vocab_get(builder *B, const char *s, size_t n, uint32_t *tid)
{
    uint64_t h = cw_hash64(s, n, 7);
    size_t j = h & (B->vcap - 1);
    while (B->vhash[j]) {
        vterm *t = &B->terms[B->vhash[j] - 1];
        if (t->hash == h && t->str_len == n && memcmp(B->spool + t->str_off, s, n) == 0) {
            *tid = B->vhash[j] - 1;
            return CW_OK;
        }
        j = (j + 1) & (B->vcap - 1);
    }
    if (B->n_terms >= UINT32_MAX - 1 || B->spool_len + n > UINT32_MAX) {
        return CW_ELIMIT;
    }
    if (grow((void **)&B->terms, &B->cap_terms, B->n_terms + 1, sizeof *B->terms) ||
        grow((void **)&B->spool, &B->spool_cap, B->spool_len + n, 1)) {
        return CW_ENOMEM;
    }
    vterm *t = &B->terms[B->n_terms];
    memset(t, 0, sizeof *t);
    t->hash = h;
    t->str_off = (uint32_t)B->spool_len;
    t->str_len = (uint32_t)n;
    t->last_doc = UINT32_MAX;
    memcpy(B->spool + B->spool_len, s, n);
    B->spool_len += n;
    B->vhash[j] = (uint32_t)B->n_terms + 1;
    *tid = (uint32_t)B->n_terms++;
    if (B->n_terms * 2 > B->vcap) {
        return vocab_rehash(B, B->vcap * 2);
    }
    return CW_OK;
}

static int dtab_grow(builder *B)
{
    size_t cap = B->dcap ? B->dcap * 2 : 4096;
    dslot *t = calloc(cap, sizeof *t);
    if (!t) {
        return CW_ENOMEM;
    }
    uint32_t stamp = B->doc + 1;
    for (size_t i = 0; i < B->n_slots; i++) {
        uint32_t tid = B->slot_tid[i];
        size_t j = (tid * 2654435761u) & (cap - 1);
        while (t[j].stamp == stamp) {
            j = (j + 1) & (cap - 1);
        }
        t[j] = (dslot){stamp, tid, (uint32_t)i};
    }
    free(B->dtab);
    B->dtab = t;
    B->dcap = cap;
    return CW_OK;
}

static int on_term(void *ctx, idx_term_ent *ent, size_t b, size_t e)
{
    (void)b;
    (void)e;
    builder *B = ctx;
    uint32_t tid;
    if (ent->aux >= 0) {
        tid = (uint32_t)ent->aux;
    } else {
        int rc = vocab_get(B, ent->term, ent->term_len, &tid);
        if (rc != CW_OK) {
            return rc;
        }
        if (tid <= INT32_MAX) {
            ent->aux = (int32_t)tid;
        }
    }
    uint32_t stamp = B->doc + 1;
    size_t mask = B->dcap - 1;
    size_t j = (tid * 2654435761u) & mask;
    while (B->dtab[j].stamp == stamp) {
        if (B->dtab[j].tid == tid) {
            B->slot_tf[B->field][B->dtab[j].slot]++;
            B->field_len[B->field]++;
            return CW_OK;
        }
        j = (j + 1) & mask;
    }
    size_t need = B->n_slots + 1;
    if (need > B->cap_slots) {
        size_t c0 = B->cap_slots, c1 = B->cap_slots, c2 = B->cap_slots;
        if (grow((void **)&B->slot_tid, &c0, need, 4) ||
            grow((void **)&B->slot_tf[0], &c1, need, 4) ||
            grow((void **)&B->slot_tf[1], &c2, need, 4)) {
            return CW_ENOMEM;
        }
        B->cap_slots = c0;
    }
    uint32_t slot = (uint32_t)B->n_slots++;
    B->slot_tid[slot] = tid;
    B->slot_tf[0][slot] = 0;
    B->slot_tf[1][slot] = 0;
    B->dtab[j] = (dslot){stamp, tid, slot};
    if (B->n_slots * 2 > B->dcap && dtab_grow(B) != CW_OK) {
        return CW_ENOMEM;
    }
    B->slot_tf[B->field][slot]++;
    B->field_len[B->field]++;
    return CW_OK;
}

static inline size_t put_varint(uint8_t *p, uint32_t v)
{
    size_t k = 0;
    while (v >= 0x80) {
        p[k++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[k++] = (uint8_t)v;
    return k;
}

static inline const uint8_t *get_varint(const uint8_t *p, const uint8_t *end, uint32_t *v)
{
    uint32_t x = 0;
    for (int shift = 0; shift <= 28 && p < end; shift += 7) {
        uint8_t c = *p++;
        x |= (uint32_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return p;
        }
    }
    return NULL;
}

/* Appends the analysed document's postings to the per-term buffers. */
static int flush_doc(builder *B)
{
    /* Two prefetch passes (term records, then their buffer tails) overlap the cache
     * misses of rare terms instead of taking them one after another. */
    for (size_t i = 0; i < B->n_slots; i++) {
        __builtin_prefetch(&B->terms[B->slot_tid[i]]);
    }
    for (size_t i = 0; i < B->n_slots; i++) {
        const vterm *t = &B->terms[B->slot_tid[i]];
        __builtin_prefetch(t->buf + t->len, 1);
    }
    for (size_t i = 0; i < B->n_slots; i++) {
        vterm *t = &B->terms[B->slot_tid[i]];
        if (t->len + 15 > t->cap) {
            uint32_t cap = t->cap ? t->cap * 2 : 16;
            if (cap > (1u << 31)) {
                return CW_ELIMIT;
            }
            uint8_t *p = realloc(t->buf, cap);
            if (!p) {
                return CW_ENOMEM;
            }
            B->mem_postings += cap - t->cap;
            t->buf = p;
            t->cap = cap;
        }
        t->len += (uint32_t)put_varint(t->buf + t->len, B->doc - t->last_doc);
        t->len += (uint32_t)put_varint(t->buf + t->len, B->slot_tf[0][i]);
        t->len += (uint32_t)put_varint(t->buf + t->len, B->slot_tf[1][i]);
        t->last_doc = B->doc;
    }
    B->st.n_postings += B->n_slots;
    B->n_slots = 0;
    return CW_OK;
}

static int write_all(FILE *f, const void *p, size_t n, const char *path, cw_err *err)
{
    if (fwrite(p, 1, n, f) != n) {
        return cw_err_set(err, CW_EIO, "write %s: %s", path, strerror(errno));
    }
    return CW_OK;
}

/* Spills the buffered postings as run file tmp/run.N: (u32 tid, u32 bytes, bytes)
 * in ascending tid order. */
static int spill_run(builder *B, cw_err *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/run.%u", B->tmp_dir, B->n_runs);
    FILE *f = fopen(path, "wb");
    if (!f) {
        return cw_err_set(err, CW_EIO, "create %s: %s", path, strerror(errno));
    }
    int rc = CW_OK;
    for (size_t t = 0; t < B->n_terms && rc == CW_OK; t++) {
        vterm *v = &B->terms[t];
        if (v->len == 0) {
            continue;
        }
        uint32_t hd[2] = {(uint32_t)t, v->len};
        rc = write_all(f, hd, sizeof hd, path, err);
        if (rc == CW_OK) {
            rc = write_all(f, v->buf, v->len, path, err);
        }
        free(v->buf);
        v->buf = NULL;
        v->len = v->cap = 0;
        v->last_doc = UINT32_MAX;
    }
    if (fclose(f) != 0 && rc == CW_OK) {
        rc = cw_err_set(err, CW_EIO, "write %s: %s", path, strerror(errno));
    }
    B->mem_postings = 0;
    B->n_runs++;
    return rc;
}

/* ---- pass 1: documents ---------------------------------------------------- */

static uint64_t id_hash(const char *s, size_t n)
{
    return cw_hash64(s, n, 0x1d);
}

/* Returns true if id is already present; else records it for docid B->doc. */
static int id_add(builder *B, const char *id, size_t n, bool *dup)
{
    if ((B->doc + 1) * 2 > B->idcap) {
        size_t cap = B->idcap ? B->idcap * 2 : 1024;
        uint32_t *h = calloc(cap, sizeof *h);
        if (!h) {
            return CW_ENOMEM;
        }
        for (uint32_t d = 0; d < B->doc; d++) {
            size_t j = id_hash(B->ids + B->id_off[d], B->id_len[d]) & (cap - 1);
            while (h[j]) {
                j = (j + 1) & (cap - 1);
            }
            h[j] = d + 1;
        }
        free(B->idhash);
        B->idhash = h;
        B->idcap = cap;
    }
    size_t j = id_hash(id, n) & (B->idcap - 1);
    while (B->idhash[j]) {
        uint32_t d = B->idhash[j] - 1;
        if (B->id_len[d] == n && memcmp(B->ids + B->id_off[d], id, n) == 0) {
            *dup = true;
            return CW_OK;
        }
        j = (j + 1) & (B->idcap - 1);
    }
    *dup = false;
    if (grow((void **)&B->ids, &B->ids_cap, B->ids_len + n, 1)) {
        return CW_ENOMEM;
    }
    memcpy(B->ids + B->ids_len, id, n);
    B->id_off[B->doc] = B->ids_len;
    B->id_len[B->doc] = (uint32_t)n;
    B->ids_len += n;
    B->idhash[j] = B->doc + 1;
    return CW_OK;
}

static int ensure_doc_arrays(builder *B)
{
    size_t need = (size_t)B->doc + 2;
    if (need <= B->cap_docs) {
        return CW_OK;
    }
    size_t cap = B->cap_docs ? B->cap_docs * 2 : 1024;
    while (cap < need) {
        cap *= 2;
    }
    void *a = realloc(B->len_title, cap * 4), *b2 = NULL, *c = NULL, *d = NULL, *e = NULL;
    if (a) {
        B->len_title = a;
        b2 = realloc(B->len_text, cap * 4);
    }
    if (b2) {
        B->len_text = b2;
        c = realloc(B->doc_off, cap * 8);
    }
    if (c) {
        B->doc_off = c;
        d = realloc(B->id_off, cap * 8);
    }
    if (d) {
        B->id_off = d;
        e = realloc(B->id_len, cap * 4);
    }
    if (!e) {
        return CW_ENOMEM;
    }
    B->id_len = e;
    B->cap_docs = cap;
    return CW_OK;
}

/* A malformed line: fails the build, or is counted under skip_bad. */
#define BAD_LINE(code, ...)                                                                        \
    do {                                                                                           \
        rc = cw_err_set(err, code, __VA_ARGS__);                                                   \
        goto bad;                                                                                  \
    } while (0)

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static int add_document(builder *B, const char *line, size_t len, long line_no, cw_err *err)
{
    const char *path = B->corpus;
    int rc = CW_OK;
    json_t *root = NULL;
    char *fields = NULL;
    if (len > IDX_MAX_DOC_BYTES) {
        BAD_LINE(CW_ELIMIT, "%s:%ld: line of %zu bytes exceeds the limit of %u", path, line_no, len,
                 IDX_MAX_DOC_BYTES);
    }
    size_t bad_off;
    if (!cw_utf8_valid(line, len, &bad_off)) {
        BAD_LINE(CW_EPARSE, "%s:%ld: invalid UTF-8 at byte %zu of the line", path, line_no,
                 bad_off);
    }
    json_error_t jerr;
    root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        BAD_LINE(CW_EPARSE, "%s:%ld:%d: bad JSON: %s", path, line_no, jerr.column, jerr.text);
    }
    if (!json_is_object(root)) {
        BAD_LINE(CW_EPARSE, "%s:%ld: expected a JSON object, got %s", path, line_no,
                 json_type_name(root));
    }
    json_t *jid = json_object_get(root, "id");
    if (!jid) {
        BAD_LINE(CW_EPARSE, "%s:%ld: missing \"id\"", path, line_no);
    }
    if (!json_is_string(jid)) {
        BAD_LINE(CW_EPARSE, "%s:%ld: \"id\" must be a string, got %s", path, line_no,
                 json_type_name(jid));
    }
    const char *id = json_string_value(jid);
    size_t id_len = json_string_length(jid);
    if (id_len == 0) {
        BAD_LINE(CW_EPARSE, "%s:%ld: empty \"id\"", path, line_no);
    }
    if (id_len > IDX_MAX_ID_BYTES) {
        BAD_LINE(CW_ELIMIT, "%s:%ld: \"id\" of %zu bytes exceeds the limit of %u", path, line_no,
                 id_len, IDX_MAX_ID_BYTES);
    }
    const char *title = "", *text = "";
    size_t title_len = 0, text_len = 0;
    size_t n_other = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (!json_is_string(val)) {
            BAD_LINE(CW_EPARSE, "%s:%ld: field \"%s\" must be a string, got %s", path, line_no, key,
                     json_type_name(val));
        }
        if (strcmp(key, "title") == 0) {
            title = json_string_value(val);
            title_len = json_string_length(val);
        } else if (strcmp(key, "text") == 0) {
            text = json_string_value(val);
            text_len = json_string_length(val);
        } else if (strcmp(key, "id") != 0) {
            n_other++;
        }
    }
    if (B->doc >= UINT32_MAX - 1) {
        rc = cw_err_set(err, CW_ELIMIT, "%s:%ld: more than %u documents", path, line_no,
                        UINT32_MAX - 2);
        goto fail;
    }
    if (ensure_doc_arrays(B) != CW_OK) {
        rc = oom(err);
        goto fail;
    }
    bool dup;
    if (id_add(B, id, id_len, &dup) != CW_OK) {
        rc = oom(err);
        goto fail;
    }
    if (dup) {
        BAD_LINE(CW_EPARSE, "%s:%ld: duplicate id \"%.*s\"", path, line_no, (int)CW_MIN(id_len, 80),
                 id);
    }
    size_t fields_len = 2;
    if (n_other > 0) {
        json_t *o = json_object();
        if (!o) {
            rc = oom(err);
            goto fail;
        }
        json_object_foreach(root, key, val)
        {
            if (strcmp(key, "id") && strcmp(key, "title") && strcmp(key, "text")) {
                json_object_set(o, key, val);
            }
        }
        fields = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!fields) {
            rc = oom(err);
            goto fail;
        }
        fields_len = strlen(fields);
    }
    /* Analyse: title then text; the flat field is their concatenation (the "\n"
     * between them separates tokens, so no token spans the two). */
    B->field_len[0] = B->field_len[1] = 0;
    B->n_slots = 0;
    B->field = 0;
    rc = idx_analyze_terms(B->an, title, title_len, on_term, B, err);
    if (rc == CW_OK) {
        B->field = 1;
        rc = idx_analyze_terms(B->an, text, text_len, on_term, B, err);
    }
    if (rc != CW_OK) {
        if (rc == CW_ENOMEM || rc == CW_ELIMIT) {
            cw_err_set(err, rc, "%s:%ld: %s", path, line_no,
                       rc == CW_ENOMEM ? "out of memory" : "vocabulary too large");
        } else {
            cw_err_prefix(err, "%s:%ld: ", path, line_no);
        }
        goto fail;
    }
    rc = flush_doc(B);
    if (rc != CW_OK) {
        cw_err_set(err, rc, "%s:%ld: postings buffer: %s", path, line_no,
                   rc == CW_ENOMEM ? "out of memory" : "too large");
        goto fail;
    }
    /* Document store record. */
    uint32_t hd[4] = {(uint32_t)id_len, (uint32_t)title_len, (uint32_t)text_len,
                      (uint32_t)fields_len};
    B->doc_off[B->doc] = idx_fw_section_pos(B->docs_w);
    rc = idx_fw_write(B->docs_w, hd, sizeof hd, err);
    if (rc == CW_OK) {
        rc = idx_fw_write(B->docs_w, id, id_len, err);
    }
    if (rc == CW_OK) {
        rc = idx_fw_write(B->docs_w, title, title_len, err);
    }
    if (rc == CW_OK) {
        rc = idx_fw_write(B->docs_w, text, text_len, err);
    }
    if (rc == CW_OK) {
        rc = idx_fw_write(B->docs_w, fields ? fields : "{}", fields_len, err);
    }
    if (rc != CW_OK) {
        goto fail;
    }
    B->len_title[B->doc] = B->field_len[0];
    B->len_text[B->doc] = B->field_len[1];
    B->st.n_tokens += (uint64_t)B->field_len[0] + B->field_len[1];
    B->doc++;
    B->st.n_docs++;
    free(fields);
    json_decref(root);
    if (B->mem_postings > B->opts->mem_budget_bytes) {
        return spill_run(B, err);
    }
    return CW_OK;
bad:
    free(fields);
    json_decref(root);
    if (B->opts->skip_bad) {
        B->st.n_skipped++;
        cw_err_clear(err);
        return CW_OK;
    }
    return rc;
fail:
    free(fields);
    json_decref(root);
    return rc;
}

/* ---- pass 2: merge runs, encode postings ----------------------------------- */

typedef struct run_reader {
    FILE *f;
    char path[4200];
    uint32_t next_tid; /* UINT32_MAX at end */
    uint32_t next_len;
} run_reader;

static int run_advance(run_reader *r, cw_err *err)
{
    uint32_t hd[2];
    size_t k = fread(hd, 1, sizeof hd, r->f);
    if (k == 0 && feof(r->f)) {
        r->next_tid = UINT32_MAX;
        return CW_OK;
    }
    if (k != sizeof hd) {
        return cw_err_set(err, CW_EIO, "read %s: short read", r->path);
    }
    r->next_tid = hd[0];
    r->next_len = hd[1];
    return CW_OK;
}

typedef struct merge_state {
    uint32_t *docs, *tt, *tx;
    size_t n, cap;
    uint8_t *scratch;
    size_t scratch_cap;
} merge_state;

static int decode_into(merge_state *m, const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len;
    uint32_t doc = UINT32_MAX;
    while (p < end) {
        if (m->n + 1 > m->cap) {
            size_t c0 = m->cap, c1 = m->cap, c2 = m->cap;
            if (grow((void **)&m->docs, &c0, m->n + 1, 4) ||
                grow((void **)&m->tt, &c1, m->n + 1, 4) ||
                grow((void **)&m->tx, &c2, m->n + 1, 4)) {
                return CW_ENOMEM;
            }
            m->cap = c0;
        }
        uint32_t gap, a, b;
        if (!(p = get_varint(p, end, &gap)) || !(p = get_varint(p, end, &a)) ||
            !(p = get_varint(p, end, &b))) {
            return CW_EIO;
        }
        doc += gap;
        m->docs[m->n] = doc;
        m->tt[m->n] = a;
        m->tx[m->n] = b;
        m->n++;
    }
    return CW_OK;
}

static float round_up_f(double x)
{
    float f = (float)x;
    if ((double)f < x) {
        f = nextafterf(f, INFINITY);
    }
    return f;
}

typedef struct list_out {
    cw_buf blocks; /* idx_block_rec array */
    cw_buf data;   /* title postings (kept in memory, written after the flat ones) */
} list_out;

/* Encodes one posting list (docs, tfs of n) as blocks; block data goes to w (if not
 * NULL) or to mem->data; block records to mem->blocks. */
static int encode_list(const builder *B, const uint32_t *docs, const uint32_t *tfs, size_t n,
                       idx_fw *w, list_out *mem, cw_buf *scratch, double avgdl, idx_term_info *ti,
                       bool is_flat, cw_err *err)
{
    uint64_t start = w ? idx_fw_section_pos(w) : mem->data.len;
    uint32_t prev = UINT32_MAX;
    const double k1 = IDX_BM25_DEFAULT.k1, b = IDX_BM25_DEFAULT.b;
    for (size_t i = 0; i < n; i += IDX_BLOCK) {
        uint32_t m = (uint32_t)CW_MIN((size_t)IDX_BLOCK, n - i);
        idx_block_rec rec = {docs[i + m - 1], 0, 0, UINT32_MAX, 0};
        double best = 0;
        for (uint32_t j = 0; j < m; j++) {
            uint32_t dl = B->len_title[docs[i + j]] + B->len_text[docs[i + j]];
            rec.max_tf = CW_MAX(rec.max_tf, tfs[i + j]);
            rec.min_dl = CW_MIN(rec.min_dl, dl);
            if (is_flat) {
                double v = idx_bm25_tfn(tfs[i + j], dl, k1, b, avgdl);
                best = CW_MAX(best, v);
            }
        }
        rec.max_tfn = round_up_f(best);
        uint64_t off = (w ? idx_fw_section_pos(w) : mem->data.len) - start;
        if (off > UINT32_MAX) {
            return cw_err_set(err, CW_ELIMIT, "posting list over 4 GiB");
        }
        rec.data_off = (uint32_t)off;
        scratch->len = 0;
        if (idx_block_encode(docs + i, tfs + i, m, prev, w ? scratch : &mem->data) != CW_OK ||
            cw_buf_append(&mem->blocks, &rec, sizeof rec) != CW_OK) {
            return oom(err);
        }
        if (w) {
            int rc = idx_fw_write(w, scratch->data, scratch->len, err);
            if (rc != CW_OK) {
                return rc;
            }
        }
        prev = docs[i + m - 1];
        if (is_flat) {
            ti->max_tf = CW_MAX(ti->max_tf, rec.max_tf);
            ti->min_dl = CW_MIN(ti->min_dl, rec.min_dl);
            ti->max_tfn = CW_MAX(ti->max_tfn, rec.max_tfn);
        }
    }
    return CW_OK;
}

/* qsort_r comparators (glibc argument order): no global state, so concurrent builds
 * in one process are safe. */
static int cmp_tid(const void *a, const void *b, void *ctx)
{
    const builder *sort_ctx = ctx;
    const vterm *x = &sort_ctx->terms[*(const uint32_t *)a];
    const vterm *y = &sort_ctx->terms[*(const uint32_t *)b];
    size_t n = CW_MIN(x->str_len, y->str_len);
    int c = memcmp(sort_ctx->spool + x->str_off, sort_ctx->spool + y->str_off, n);
    if (c) {
        return c;
    }
    return (x->str_len > y->str_len) - (x->str_len < y->str_len);
}

static int cmp_id(const void *a, const void *b, void *ctx)
{
    const builder *sort_ctx = ctx;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    size_t lx = sort_ctx->id_len[x], ly = sort_ctx->id_len[y];
    int c = memcmp(sort_ctx->ids + sort_ctx->id_off[x], sort_ctx->ids + sort_ctx->id_off[y],
                   CW_MIN(lx, ly));
    if (c) {
        return c;
    }
    return (lx > ly) - (lx < ly);
}

static int write_section(idx_fw *w, uint32_t id, const void *p, size_t n, cw_err *err)
{
    int rc = idx_fw_begin(w, id, err);
    if (rc == CW_OK) {
        rc = idx_fw_write(w, p, n, err);
    }
    if (rc == CW_OK) {
        rc = idx_fw_end(w, err);
    }
    return rc;
}

static int finish_docs(builder *B, cw_err *err)
{
    uint32_t n = B->doc;
    B->doc_off[n] = idx_fw_section_pos(B->docs_w);
    int rc = idx_fw_end(B->docs_w, err);
    if (rc == CW_OK) {
        rc = write_section(B->docs_w, IDX_S_DOCOFF, B->doc_off, ((size_t)n + 1) * 8, err);
    }
    if (rc != CW_OK) {
        return rc;
    }
    uint32_t *perm = malloc(((size_t)n + 1) * 4);
    if (!perm) {
        return oom(err);
    }
    for (uint32_t i = 0; i < n; i++) {
        perm[i] = i;
    }
    qsort_r(perm, n, 4, cmp_id, B);
    rc = write_section(B->docs_w, IDX_S_IDSORT, perm, (size_t)n * 4, err);
    free(perm);
    if (rc != CW_OK) {
        return rc;
    }
    uint64_t bytes;
    idx_fw *w = B->docs_w;
    B->docs_w = NULL;
    rc = idx_fw_close(w, !B->opts->no_fsync, NULL, &bytes, err);
    B->st.index_bytes += bytes;
    return rc;
}

static int merge_and_write(builder *B, cw_err *err)
{
    int rc = CW_OK;
    char path[4200];
    idx_fw *w = NULL;
    run_reader *runs = NULL;
    merge_state m = {0};
    list_out flat = {{0}, {0}}, title = {{0}, {0}};
    cw_buf scratch = {0};
    idx_term_info *info = NULL;
    uint32_t *perm = NULL, *tfs = NULL, *tdocs = NULL;
    size_t tcap = 0, tcap2 = 0;
    uint32_t n_docs = B->doc;

    idx_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.n_docs = n_docs;
    meta.n_terms = (uint32_t)B->n_terms;
    for (uint32_t d = 0; d < n_docs; d++) {
        uint32_t lt = B->len_title[d], lx = B->len_text[d];
        meta.doc_count[IDX_FIELD_TITLE] += lt > 0;
        meta.doc_count[IDX_FIELD_TEXT] += lx > 0;
        meta.doc_count[IDX_FIELD_FLAT] += lt + lx > 0;
        meta.total_terms[IDX_FIELD_TITLE] += lt;
        meta.total_terms[IDX_FIELD_TEXT] += lx;
        meta.total_terms[IDX_FIELD_FLAT] += (uint64_t)lt + lx;
    }
    double avgdl = meta.doc_count[IDX_FIELD_FLAT] ? (double)meta.total_terms[IDX_FIELD_FLAT] /
                                                        (double)meta.doc_count[IDX_FIELD_FLAT]
                                                  : 1.0;

    runs = calloc(B->n_runs ? B->n_runs : 1, sizeof *runs);
    info = calloc(B->n_terms ? B->n_terms : 1, sizeof *info);
    if (!runs || !info) {
        rc = oom(err);
        goto fail;
    }
    for (uint32_t r = 0; r < B->n_runs; r++) {
        snprintf(runs[r].path, sizeof runs[r].path, "%s/run.%u", B->tmp_dir, r);
        runs[r].f = fopen(runs[r].path, "rb");
        if (!runs[r].f) {
            rc = cw_err_set(err, CW_EIO, "open %s: %s", runs[r].path, strerror(errno));
            goto fail;
        }
        setvbuf(runs[r].f, NULL, _IOFBF, 1u << 20);
        rc = run_advance(&runs[r], err);
        if (rc != CW_OK) {
            goto fail;
        }
    }
    snprintf(path, sizeof path, "%s/index.cw", B->tmp_dir);
    rc = idx_fw_open(path, IDX_KIND_MAIN, &w, err);
    if (rc == CW_OK) {
        rc = idx_fw_begin(w, IDX_S_POSTINGS, err);
    }
    if (rc != CW_OK) {
        goto fail;
    }
    for (size_t t = 0; t < B->n_terms; t++) {
        if ((t & 4095) == 0) {
            if (cw_interrupted()) {
                rc = cw_err_set(err, CW_EINTR, "index build interrupted");
                goto fail;
            }
            cw_progress_report(&B->opts->progress, "merge", t, B->n_terms);
        }
        m.n = 0;
        for (uint32_t r = 0; r < B->n_runs; r++) {
            if (runs[r].next_tid != t) {
                continue;
            }
            if (runs[r].next_len > m.scratch_cap) {
                if (grow((void **)&m.scratch, &m.scratch_cap, runs[r].next_len, 1)) {
                    rc = oom(err);
                    goto fail;
                }
            }
            if (fread(m.scratch, 1, runs[r].next_len, runs[r].f) != runs[r].next_len) {
                rc = cw_err_set(err, CW_EIO, "read %s: short read", runs[r].path);
                goto fail;
            }
            rc = decode_into(&m, m.scratch, runs[r].next_len);
            if (rc == CW_OK) {
                rc = run_advance(&runs[r], err);
            } else {
                rc = cw_err_set(err, rc, "%s: bad run data", runs[r].path);
            }
            if (rc != CW_OK) {
                goto fail;
            }
        }
        vterm *v = &B->terms[t];
        if (v->len && decode_into(&m, v->buf, v->len) != CW_OK) {
            rc = oom(err);
            goto fail;
        }
        free(v->buf);
        v->buf = NULL;
        if (grow((void **)&tfs, &tcap, m.n, 4) || grow((void **)&tdocs, &tcap2, m.n, 4)) {
            rc = oom(err);
            goto fail;
        }
        idx_term_info *ti = &info[t];
        ti->min_dl = UINT32_MAX;
        size_t nt = 0;
        for (size_t i = 0; i < m.n; i++) {
            tfs[i] = m.tt[i] + m.tx[i];
            ti->df_text += m.tx[i] > 0;
            if (m.tt[i] > 0) {
                tdocs[nt] = m.docs[i];
                m.tt[nt] = m.tt[i];
                nt++;
            }
        }
        ti->df = (uint32_t)m.n;
        ti->df_title = (uint32_t)nt;
        ti->post_off = idx_fw_section_pos(w);
        ti->block_idx = flat.blocks.len / sizeof(idx_block_rec);
        ti->n_blocks = (uint32_t)((m.n + IDX_BLOCK - 1) / IDX_BLOCK);
        rc = encode_list(B, m.docs, tfs, m.n, w, &flat, &scratch, avgdl, ti, true, err);
        if (rc != CW_OK) {
            goto fail;
        }
        ti->tpost_off = title.data.len;
        ti->tblock_idx = title.blocks.len / sizeof(idx_block_rec);
        ti->n_tblocks = (uint32_t)((nt + IDX_BLOCK - 1) / IDX_BLOCK);
        rc = encode_list(B, tdocs, m.tt, nt, NULL, &title, &scratch, avgdl, ti, false, err);
        if (rc != CW_OK) {
            goto fail;
        }
    }
    cw_progress_report(&B->opts->progress, "merge", B->n_terms, B->n_terms);
    rc = idx_fw_end(w, err);
    if (rc == CW_OK) {
        rc = write_section(w, IDX_S_BLOCKS, flat.blocks.data, flat.blocks.len, err);
    }
    if (rc == CW_OK) {
        rc = write_section(w, IDX_S_TPOSTINGS, title.data.data, title.data.len, err);
    }
    if (rc == CW_OK) {
        rc = write_section(w, IDX_S_TBLOCKS, title.blocks.data, title.blocks.len, err);
    }
    if (rc != CW_OK) {
        goto fail;
    }
    /* Dictionary in byte order of the terms. */
    perm = malloc((B->n_terms + 1) * 4);
    if (!perm) {
        rc = oom(err);
        goto fail;
    }
    for (size_t t = 0; t < B->n_terms; t++) {
        perm[t] = (uint32_t)t;
    }
    qsort_r(perm, B->n_terms, 4, cmp_tid, B);
    rc = idx_fw_begin(w, IDX_S_TERMSTR, err);
    for (size_t i = 0; i < B->n_terms && rc == CW_OK; i++) {
        const vterm *v = &B->terms[perm[i]];
        rc = idx_fw_write(w, B->spool + v->str_off, v->str_len, err);
    }
    if (rc == CW_OK) {
        rc = idx_fw_end(w, err);
    }
    if (rc == CW_OK) {
        rc = idx_fw_begin(w, IDX_S_TERMOFF, err);
    }
    uint32_t off = 0;
    for (size_t i = 0; i < B->n_terms && rc == CW_OK; i++) {
        rc = idx_fw_write(w, &off, 4, err);
        off += B->terms[perm[i]].str_len;
    }
    if (rc == CW_OK) {
        rc = idx_fw_write(w, &off, 4, err);
    }
    if (rc == CW_OK) {
        rc = idx_fw_end(w, err);
    }
    if (rc == CW_OK) {
        rc = idx_fw_begin(w, IDX_S_TERMINFO, err);
    }
    for (size_t i = 0; i < B->n_terms && rc == CW_OK; i++) {
        rc = idx_fw_write(w, &info[perm[i]], sizeof *info, err);
    }
    if (rc == CW_OK) {
        rc = idx_fw_end(w, err);
    }
    if (rc == CW_OK) {
        rc = idx_fw_begin(w, IDX_S_DOCLEN, err);
    }
    for (uint32_t d = 0; d < n_docs && rc == CW_OK; d++) {
        uint32_t two[2] = {B->len_title[d], B->len_text[d]};
        rc = idx_fw_write(w, two, sizeof two, err);
    }
    if (rc == CW_OK) {
        rc = idx_fw_end(w, err);
    }
    if (rc == CW_OK) {
        rc = idx_fw_begin(w, IDX_S_FLATLEN, err);
    }
    for (uint32_t d = 0; d < n_docs && rc == CW_OK; d++) {
        uint32_t fl = B->len_title[d] + B->len_text[d];
        rc = idx_fw_write(w, &fl, 4, err);
    }
    if (rc == CW_OK) {
        rc = idx_fw_end(w, err);
    }
    if (rc != CW_OK) {
        goto fail;
    }
    meta.n_postings = B->st.n_postings;
    meta.n_skipped = B->st.n_skipped;
    meta.bound_k1 = IDX_BM25_DEFAULT.k1;
    meta.bound_b = IDX_BM25_DEFAULT.b;
    meta.stem = B->opts->analyzer.stem;
    meta.stopwords = B->opts->analyzer.stopwords;
    memcpy(meta.stemmer, B->opts->analyzer.stemmer, sizeof meta.stemmer);
    meta.stemmer[sizeof meta.stemmer - 1] = '\0';
    meta.build_unix_ms = (uint64_t)cw_wall_ms();
    rc = write_section(w, IDX_S_META, &meta, sizeof meta, err);
    if (rc != CW_OK) {
        goto fail;
    }
    uint64_t bytes;
    idx_fw *w2 = w;
    w = NULL;
    rc = idx_fw_close(w2, !B->opts->no_fsync, NULL, &bytes, err);
    B->st.index_bytes += bytes;
    B->st.n_terms = B->n_terms;
fail:
    idx_fw_abort(w);
    for (uint32_t r = 0; runs && r < B->n_runs; r++) {
        if (runs[r].f) {
            fclose(runs[r].f);
            unlink(runs[r].path);
        }
    }
    free(runs);
    free(info);
    free(perm);
    free(tfs);
    free(tdocs);
    free(m.docs);
    free(m.tt);
    free(m.tx);
    free(m.scratch);
    cw_buf_fini(&flat.blocks);
    cw_buf_fini(&flat.data);
    cw_buf_fini(&title.blocks);
    cw_buf_fini(&title.data);
    cw_buf_fini(&scratch);
    return rc;
}

idx_build_opts idx_build_opts_default(void)
{
    idx_build_opts o;
    memset(&o, 0, sizeof o);
    o.analyzer = idx_analyzer_opts_default();
    o.mem_budget_bytes = (size_t)256 << 20;
    return o;
}

static void builder_free(builder *B)
{
    for (size_t t = 0; t < B->n_terms; t++) {
        free(B->terms[t].buf);
    }
    free(B->terms);
    free(B->vhash);
    free(B->spool);
    free(B->dtab);
    free(B->slot_tid);
    free(B->slot_tf[0]);
    free(B->slot_tf[1]);
    free(B->len_title);
    free(B->len_text);
    free(B->doc_off);
    free(B->id_off);
    free(B->id_len);
    free(B->ids);
    free(B->idhash);
    idx_fw_abort(B->docs_w);
    idx_analyzer_free(B->an);
}

/* Moves tmp into place. An existing index at out_dir is replaced; anything else
 * there is refused. */
static int install(const char *tmp, const char *out_dir, cw_err *err)
{
    struct stat st;
    if (stat(out_dir, &st) == 0) {
        char probe[4200];
        snprintf(probe, sizeof probe, "%s/index.cw", out_dir);
        if (!S_ISDIR(st.st_mode) || access(probe, F_OK) != 0) {
            return cw_err_set(err, CW_EIO,
                              "%s exists and is not a causeway index; not replacing it", out_dir);
        }
        char old[4200];
        snprintf(old, sizeof old, "%s.old.%ld", out_dir, (long)getpid());
        if (rename(out_dir, old) != 0) {
            return cw_err_set(err, CW_EIO, "rename %s: %s", out_dir, strerror(errno));
        }
        if (rename(tmp, out_dir) != 0) {
            int rc = cw_err_set(err, CW_EIO, "rename %s -> %s: %s", tmp, out_dir, strerror(errno));
            (void)rename(old, out_dir);
            return rc;
        }
        cw_err e2;
        if (cw_rmtree(old, &e2) != CW_OK) {
            /* The new index is in place; a leftover old copy is only wasted space. */
            return CW_OK;
        }
        return CW_OK;
    }
    if (rename(tmp, out_dir) != 0) {
        return cw_err_set(err, CW_EIO, "rename %s -> %s: %s", tmp, out_dir, strerror(errno));
    }
    return CW_OK;
}

int idx_build(const char *corpus_path, const char *out_dir, const idx_build_opts *opts_in,
              idx_build_stats *stats, cw_err *err)
{
    idx_build_opts opts = opts_in ? *opts_in : idx_build_opts_default();
    if (opts.mem_budget_bytes < (1u << 20)) {
        opts.mem_budget_bytes = 1u << 20;
    }
    uint64_t t0 = cw_now_ns();
    builder B;
    memset(&B, 0, sizeof B);
    B.corpus = corpus_path;
    B.opts = &opts;
    cw_lines *lr = NULL;
    bool made_tmp = false;
    int rc = idx_analyzer_new(&opts.analyzer, &B.an, err);
    if (rc != CW_OK) {
        return rc;
    }
    if (!out_dir || !*out_dir) {
        rc = cw_err_set(err, CW_EINVAL, "index build: empty output directory");
        goto fail;
    }
    if (vocab_rehash(&B, 1u << 16) != CW_OK || dtab_grow(&B) != CW_OK ||
        ensure_doc_arrays(&B) != CW_OK) {
        rc = oom(err);
        goto fail;
    }
    rc = cw_lines_open(corpus_path, &lr, err);
    if (rc != CW_OK) {
        goto fail;
    }
    struct stat st;
    uint64_t total = 0;
    if (strcmp(corpus_path, "-") != 0 && stat(corpus_path, &st) == 0) {
        total = (uint64_t)st.st_size;
    }
    snprintf(B.tmp_dir, sizeof B.tmp_dir, "%s.tmp.%ld", out_dir, (long)getpid());
    if (mkdir(B.tmp_dir, 0755) != 0) {
        rc = cw_err_set(err, CW_EIO, "mkdir %s: %s", B.tmp_dir, strerror(errno));
        goto fail;
    }
    made_tmp = true;
    char path[4200];
    snprintf(path, sizeof path, "%s/docs.cw", B.tmp_dir);
    rc = idx_fw_open(path, IDX_KIND_DOCS, &B.docs_w, err);
    if (rc == CW_OK) {
        rc = idx_fw_begin(B.docs_w, IDX_S_DOCBLOB, err);
    }
    if (rc != CW_OK) {
        goto fail;
    }
    const char *line;
    size_t len;
    long line_no = 0;
    for (;;) {
        rc = cw_lines_next(lr, &line, &len, &line_no, err);
        if (rc == 0) {
            break;
        }
        if (rc < 0) {
            goto fail;
        }
        if (cw_interrupted()) {
            rc = cw_err_set(err, CW_EINTR, "%s:%ld: index build interrupted", corpus_path, line_no);
            goto fail;
        }
        size_t k = 0;
        while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) {
            k++;
        }
        if (k == len) {
            continue; /* blank lines separate nothing in JSONL: ignore them */
        }
        rc = add_document(&B, line, len, line_no, err);
        if (rc != CW_OK) {
            goto fail;
        }
        if ((line_no & 4095) == 0) {
            cw_progress_report(&opts.progress, "index", cw_lines_offset(lr), total);
        }
    }
    B.st.input_bytes = cw_lines_offset(lr);
    cw_progress_report(&opts.progress, "index", B.st.input_bytes, total ? total : B.st.input_bytes);
    cw_lines_close(lr);
    lr = NULL;
    rc = finish_docs(&B, err);
    if (rc == CW_OK) {
        rc = merge_and_write(&B, err);
    }
    if (rc == CW_OK) {
        rc = install(B.tmp_dir, out_dir, err);
    }
    if (rc != CW_OK) {
        goto fail;
    }
    B.st.seconds = (double)(cw_now_ns() - t0) / 1e9;
    if (stats) {
        *stats = B.st;
    }
    builder_free(&B);
    return CW_OK;
fail:
    cw_lines_close(lr);
    builder_free(&B);
    B.docs_w = NULL;
    if (made_tmp) {
        cw_err e2;
        if (cw_rmtree(B.tmp_dir, &e2) != CW_OK && rc == CW_OK) {
            rc = e2.code;
        }
    }
    return rc;
}
