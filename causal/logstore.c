/* causal/logstore.c: the impression and event log in SQLite (WAL): schema, migrations,
 * batched writes with savepoints, validated event ingestion and an ordered reader.
 * Data flow: server/ writer thread -> this file -> click models, propensities, OPE.
 * The only SQL in the tree; docs/logs.md documents every table and column. */
#include "config.h"

#include <assert.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "causal/causal.h"

/* Feature blobs are native float32; every platform we build on is little-endian and
 * docs/logs.md promises little-endian blobs. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "causal/logstore.c stores float32 blobs little-endian: add byte swapping"
#endif

static const char *const event_type_names[CAUSAL_N_EVENT_TYPES] = {"click", "view", "dwell",
                                                                   "skip"};

/* Migration i takes user_version i to i + 1: SQL, then an optional C step (data that SQL
 * alone cannot convert), then more SQL. Append, never edit a shipped one. */
typedef struct migration {
    const char *sql;
    int (*convert)(causal_log *log, cw_err *err);
    const char *post_sql;
} migration;

static int convert_items_v2(causal_log *log, cw_err *err);

/* Schema 2 keeps the shown items of an impression in two columns of its row (`shown`
 * JSON, `shown_features` float32 blob): one row per served ranking instead of 1 + k rows
 * made the writer ~4x cheaper per impression. The view `items` gives the rows of schema 1
 * back to SQL users; doubles are stored as exact [mantissa, exponent] pairs (formatting
 * them as decimal text cost more than the row), so the view needs SQLite's power(). */
#define ITEMS_VIEW_SQL                                                                             \
    "CREATE VIEW items(impression_id, position, doc_id, score, propensity, features) AS"           \
    " SELECT i.id, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'),"                  \
    " json_extract(j.value, '$[2][0]') * power(2, json_extract(j.value, '$[2][1]')),"              \
    " json_extract(j.value, '$[3][0]') * power(2, json_extract(j.value, '$[3][1]')),"              \
    " CASE WHEN json_extract(j.value, '$[4]') THEN substr(i.shown_features,"                       \
    " j.key * f.n_features * 4 + 1, f.n_features * 4) END"                                         \
    " FROM impressions i JOIN json_each(i.shown) j"                                                \
    " LEFT JOIN feature_sets f ON f.id = i.feature_set_id;"

static const migration migrations[] = {
    /* 0 -> 1: the first schema. */
    {"CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
     "CREATE TABLE policies(id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
     " model_version TEXT NOT NULL DEFAULT '', index_version TEXT NOT NULL DEFAULT '',"
     " UNIQUE(name, model_version, index_version));"
     "CREATE TABLE feature_sets(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
     " n_features INTEGER NOT NULL, names TEXT NOT NULL);"
     "CREATE TABLE impressions(id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL,"
     " query TEXT NOT NULL, qid TEXT, policy_id INTEGER NOT NULL REFERENCES policies(id),"
     " log_prob REAL, mc_samples INTEGER NOT NULL DEFAULT 0, temperature REAL, seed INTEGER,"
     " feature_set_id INTEGER REFERENCES feature_sets(id), n_items INTEGER NOT NULL);"
     "CREATE INDEX impressions_ts ON impressions(ts_ms);"
     "CREATE TABLE items(impression_id INTEGER NOT NULL REFERENCES impressions(id),"
     " position INTEGER NOT NULL, doc_id TEXT NOT NULL, score REAL, propensity REAL,"
     " features BLOB, PRIMARY KEY(impression_id, position)) WITHOUT ROWID;"
     "CREATE TABLE events(id INTEGER PRIMARY KEY,"
     " impression_id INTEGER NOT NULL REFERENCES impressions(id), doc_id TEXT NOT NULL,"
     " position INTEGER NOT NULL,"
     " type TEXT NOT NULL CHECK(type IN ('click','view','dwell','skip')),"
     " ts_ms INTEGER NOT NULL, value_ms INTEGER, client_id TEXT UNIQUE);"
     "CREATE INDEX events_impression ON events(impression_id, position, type);"
     "INSERT INTO meta(key, value) VALUES('schema_version', '1'), ('boot', '0'),"
     " ('created_ms', CAST(strftime('%s','now') AS INTEGER) * 1000);",
     NULL, NULL},
    /* 1 -> 2: items rows move into their impression's row; `items` becomes a view. */
    {"ALTER TABLE impressions ADD COLUMN shown TEXT NOT NULL DEFAULT '[]';"
     "ALTER TABLE impressions ADD COLUMN shown_features BLOB;",
     convert_items_v2, "DROP TABLE items;" ITEMS_VIEW_SQL},
};

enum { N_MIGRATIONS = (int)CW_ARRAY_LEN(migrations) };
_Static_assert(N_MIGRATIONS == CAUSAL_LOG_SCHEMA_VERSION, "one migration per schema version");

/* Prepared statements, indexed by these names. */
enum {
    ST_INS_IMP,
    ST_INS_EVENT,
    ST_FIND_POLICY,
    ST_INS_POLICY,
    ST_FIND_FSET,
    ST_INS_FSET,
    ST_SHOWN,
    N_STMTS
};

static const char *const stmt_sql[N_STMTS] = {
    [ST_INS_IMP] = "INSERT INTO impressions(id, ts_ms, query, qid, policy_id, log_prob,"
                   " mc_samples, temperature, seed, feature_set_id, n_items, shown,"
                   " shown_features) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
    /* A stored client_id is an idempotent retry: skipped (no change). Any other
     * constraint failing is an error, never a silently dropped event. */
    [ST_INS_EVENT] = "INSERT INTO events(impression_id, doc_id, position, type, ts_ms,"
                     " value_ms, client_id) VALUES(?,?,?,?,?,?,?)"
                     " ON CONFLICT(client_id) DO NOTHING",
    [ST_FIND_POLICY] = "SELECT id FROM policies WHERE name=? AND model_version=?"
                       " AND index_version=?",
    [ST_INS_POLICY] = "INSERT INTO policies(name, model_version, index_version) VALUES(?,?,?)",
    [ST_FIND_FSET] = "SELECT id, n_features, names FROM feature_sets WHERE name=?",
    [ST_INS_FSET] = "INSERT INTO feature_sets(name, n_features, names) VALUES(?,?,?)",
    [ST_SHOWN] = "SELECT shown FROM impressions WHERE id=?",
};

#define POLICY_CACHE 8

struct causal_log {
    sqlite3 *db;
    char *path;
    bool read_only;
    bool in_txn;
    int schema; /* the file's schema version: CAUSAL_LOG_SCHEMA_VERSION, or 1 read-only */
    sqlite3_stmt *st[N_STMTS];
    _Atomic uint64_t next_id; /* (boot << 32) | seq of the next id handed out */
    struct {
        char *key; /* name \x1f model \x1f index */
        int64_t id;
    } policy_cache[POLICY_CACHE];
    unsigned policy_cache_next;
    struct {
        char *name;
        char *names; /* '\n'-joined feature names as stored */
        int64_t id;
        uint32_t n_features;
    } fset_cache[POLICY_CACHE];
    unsigned fset_cache_next;
    /* The shown list of the impression validated last: clicks come in batches for one
     * impression, so one items query serves the whole batch. Cleared on rollback. */
    struct {
        bool valid;
        bool exists;
        uint64_t id;
        uint32_t n;
        uint32_t pos[CAUSAL_MAX_ITEMS];
        size_t doc_off[CAUSAL_MAX_ITEMS]; /* offsets into docs */
        cw_buf docs;
    } shown;
    /* Encoding scratch of the shown list of the impression being written (writer only). */
    char *enc;
    size_t enc_cap;
    float *enc_feat;
    size_t enc_feat_cap; /* floats */
    uint16_t enc_order[CAUSAL_MAX_ITEMS];
    causal_item dec[CAUSAL_MAX_ITEMS]; /* decoding scratch of load_shown */
};
_Static_assert(CAUSAL_MAX_ITEMS <= UINT16_MAX, "enc_order holds item indices in 16 bits");

causal_log_opts causal_log_opts_default(void)
{
    return (causal_log_opts){.sync = CAUSAL_SYNC_FULL, .read_only = false, .busy_timeout_ms = 5000};
}

causal_log_filter causal_log_filter_all(void)
{
    return (causal_log_filter){.policy = NULL, .ts_from_ms = INT64_MIN, .ts_to_ms = INT64_MAX};
}

const char *causal_event_type_name(causal_event_type t)
{
    return (unsigned)t < CAUSAL_N_EVENT_TYPES ? event_type_names[t] : "?";
}

int causal_event_type_parse(const char *name, causal_event_type *out, cw_err *err)
{
    for (int i = 0; i < CAUSAL_N_EVENT_TYPES; i++) {
        if (name && strcmp(name, event_type_names[i]) == 0) {
            *out = (causal_event_type)i;
            return CW_OK;
        }
    }
    return cw_err_set(err, CW_EINVAL,
                      "unknown event type \"%s\" (expected click, view, dwell or skip)",
                      name ? name : "");
}

/* ---- SQLite helpers ------------------------------------------------------ */

static int sql_fail(causal_log *log, cw_err *err, const char *what)
{
    int rc = sqlite3_extended_errcode(log->db);
    int code = CW_EIO;
    if ((rc & 0xff) == SQLITE_NOMEM) {
        code = CW_ENOMEM;
    } else if ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB) {
        code = CW_ECORRUPT;
    }
    return cw_err_set(err, code, "%s: %s: %s", log->path, what, sqlite3_errmsg(log->db));
}

static int exec_sql(causal_log *log, const char *sql, cw_err *err)
{
    if (sqlite3_exec(log->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        return sql_fail(log, err, sql);
    }
    return CW_OK;
}

/* Runs a statement returning one integer (or def when no row). */
static int query_int(causal_log *log, const char *sql, int64_t def, int64_t *out, cw_err *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(log->db, sql, -1, &st, NULL) != SQLITE_OK) {
        return sql_fail(log, err, sql);
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_type(st, 0) == SQLITE_NULL ? def : sqlite3_column_int64(st, 0);
    } else if (rc == SQLITE_DONE) {
        *out = def;
    } else {
        sql_fail(log, err, sql);
        sqlite3_finalize(st);
        return err ? err->code : CW_EIO;
    }
    sqlite3_finalize(st);
    return CW_OK;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s) {
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, i);
    }
}

static void bind_real_or_null(sqlite3_stmt *st, int i, double v)
{
    if (isfinite(v)) {
        sqlite3_bind_double(st, i, v);
    } else {
        sqlite3_bind_null(st, i);
    }
}

/* Steps a write statement to completion and resets it. */
static int step_done(causal_log *log, sqlite3_stmt *st, const char *what, cw_err *err)
{
    int rc = sqlite3_step(st);
    int ret = CW_OK;
    if (rc != SQLITE_DONE) {
        ret = sql_fail(log, err, what);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}

/* ---- open, migrate, close ------------------------------------------------ */

static int migrate(causal_log *log, cw_err *err)
{
    int64_t version = 0;
    int rc = query_int(log, "PRAGMA user_version", 0, &version, err);
    if (rc != CW_OK) {
        return rc;
    }
    if (version > CAUSAL_LOG_SCHEMA_VERSION) {
        return cw_err_set(err, CW_EINVAL,
                          "%s: log schema version %" PRId64
                          " is newer than this causeway supports (%d): upgrade causeway",
                          log->path, version, CAUSAL_LOG_SCHEMA_VERSION);
    }
    if (version == 0) {
        /* Version 0 is either a new file or someone else's database. */
        int64_t n_tables = 0;
        rc = query_int(log, "SELECT count(*) FROM sqlite_master", 0, &n_tables, err);
        if (rc != CW_OK) {
            return rc;
        }
        if (n_tables > 0) {
            return cw_err_set(err, CW_EINVAL,
                              "%s: not a causeway log (user_version 0 but %" PRId64 " tables)",
                              log->path, n_tables);
        }
    }
    log->schema = (int)version;
    if (version == CAUSAL_LOG_SCHEMA_VERSION) {
        return CW_OK;
    }
    if (log->read_only && version == 1) {
        return CW_OK; /* readable as it is: the reader knows schema 1's items table */
    }
    if (log->read_only && version == 0) { /* e.g. an empty file: nothing to migrate */
        return cw_err_set(err, CW_EINVAL, "%s: not a causeway log (an empty database)", log->path);
    }
    if (log->read_only) {
        return cw_err_set(err, CW_EINVAL,
                          "%s: log schema version %" PRId64 " needs migrating to %d: open it "
                          "once read-write",
                          log->path, version, CAUSAL_LOG_SCHEMA_VERSION);
    }
    rc = exec_sql(log, "BEGIN IMMEDIATE", err);
    if (rc != CW_OK) {
        return rc;
    }
    /* Re-read under the write lock: another process may have migrated meanwhile. */
    rc = query_int(log, "PRAGMA user_version", 0, &version, err);
    for (int64_t v = version; rc == CW_OK && v < CAUSAL_LOG_SCHEMA_VERSION; v++) {
        rc = exec_sql(log, migrations[v].sql, err);
        if (rc == CW_OK && migrations[v].convert) {
            rc = migrations[v].convert(log, err);
        }
        if (rc == CW_OK && migrations[v].post_sql) {
            rc = exec_sql(log, migrations[v].post_sql, err);
        }
        if (rc == CW_OK) {
            char sql[96];
            snprintf(sql, sizeof sql,
                     "PRAGMA user_version=%" PRId64 ";"
                     "UPDATE meta SET value='%" PRId64 "' WHERE key='schema_version'",
                     v + 1, v + 1);
            rc = exec_sql(log, sql, err);
        }
    }
    if (rc != CW_OK) {
        sqlite3_exec(log->db, "ROLLBACK", NULL, NULL, NULL);
        return cw_err_prefix(err, "migrating: ");
    }
    log->schema = CAUSAL_LOG_SCHEMA_VERSION;
    return exec_sql(log, "COMMIT", err);
}

/* Bumps the boot counter so ids of this open never collide with earlier ones, also
 * past any imported id. One synchronous write. */
static int start_boot(causal_log *log, cw_err *err)
{
    int rc = exec_sql(log, "BEGIN IMMEDIATE", err);
    if (rc != CW_OK) {
        return rc;
    }
    int64_t boot = 0, max_id = 0;
    rc = query_int(log, "SELECT CAST(value AS INTEGER) FROM meta WHERE key='boot'", 0, &boot, err);
    if (rc == CW_OK) {
        rc = query_int(log, "SELECT max(id) FROM impressions", 0, &max_id, err);
    }
    if (rc == CW_OK) {
        int64_t from_ids = (int64_t)((uint64_t)max_id >> 32);
        boot = CW_MAX(boot, from_ids) + 1;
        char sql[96];
        snprintf(sql, sizeof sql, "UPDATE meta SET value='%" PRId64 "' WHERE key='boot'", boot);
        rc = exec_sql(log, sql, err);
    }
    if (rc != CW_OK) {
        sqlite3_exec(log->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    rc = exec_sql(log, "COMMIT", err);
    if (rc == CW_OK) {
        atomic_store(&log->next_id, ((uint64_t)boot << 32) | 1u);
    }
    return rc;
}

int causal_log_open(const char *path, const causal_log_opts *opts, causal_log **out, cw_err *err)
{
    causal_log_opts o = opts ? *opts : causal_log_opts_default();
    if (!path || !*path) {
        return cw_err_set(err, CW_EINVAL, "log path is empty");
    }
    if (o.read_only && access(path, F_OK) != 0) {
        return cw_err_set(err, CW_ENOTFOUND, "%s: no such log", path);
    }
    causal_log *log = calloc(1, sizeof *log);
    if (!log || !(log->path = strdup(path))) {
        free(log);
        return cw_err_set(err, CW_ENOMEM, "%s: out of memory", path);
    }
    log->read_only = o.read_only;
    int flags = o.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = CW_OK;
    if (sqlite3_open_v2(path, &log->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        rc = log->db ? sql_fail(log, err, "open")
                     : cw_err_set(err, CW_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    sqlite3_busy_timeout(log->db, (int)(o.busy_timeout_ms ? o.busy_timeout_ms : 5000));
    sqlite3_extended_result_codes(log->db, 1);
    /* Reading the header first turns "file is not a database" into ECORRUPT here. */
    int64_t dummy;
    rc = query_int(log, "SELECT count(*) FROM sqlite_master", 0, &dummy, err);
    if (rc != CW_OK) {
        goto fail;
    }
    if (!o.read_only) {
        /* A 64 MiB page cache and checkpoints every ~40 MiB of WAL instead of 4 MiB: the
         * writer thread pays for checkpoints inline, and fewer, larger ones cost less. */
        rc = exec_sql(log,
                      "PRAGMA journal_mode=WAL; PRAGMA cache_size=-65536;"
                      " PRAGMA wal_autocheckpoint=10000",
                      err);
        if (rc == CW_OK) {
            rc = exec_sql(log,
                          o.sync == CAUSAL_SYNC_NORMAL ? "PRAGMA synchronous=NORMAL"
                                                       : "PRAGMA synchronous=FULL",
                          err);
        }
        if (rc != CW_OK) {
            goto fail;
        }
    }
    rc = migrate(log, err);
    if (rc != CW_OK) {
        goto fail;
    }
    if (!o.read_only) {
        rc = start_boot(log, err);
        if (rc != CW_OK) {
            goto fail;
        }
        for (int i = 0; i < N_STMTS; i++) {
            if (sqlite3_prepare_v3(log->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &log->st[i],
                                   NULL) != SQLITE_OK) {
                rc = sql_fail(log, err, stmt_sql[i]);
                goto fail;
            }
        }
    }
    *out = log;
    return CW_OK;
fail:
    causal_log_close(log);
    return rc;
}

void causal_log_close(causal_log *log)
{
    if (!log) {
        return;
    }
    if (log->in_txn) {
        causal_log_rollback(log);
    }
    for (int i = 0; i < N_STMTS; i++) {
        sqlite3_finalize(log->st[i]);
    }
    for (int i = 0; i < POLICY_CACHE; i++) {
        free(log->policy_cache[i].key);
        free(log->fset_cache[i].name);
        free(log->fset_cache[i].names);
    }
    cw_buf_fini(&log->shown.docs);
    free(log->enc);
    free(log->enc_feat);
    sqlite3_close(log->db);
    free(log->path);
    free(log);
}

uint64_t causal_log_next_id(causal_log *log)
{
    uint64_t id = atomic_fetch_add(&log->next_id, 1);
    /* 2^32 ids in one open would wrap into the next boot's range; the server would need
     * 4 billion searches without restart, and an assert documents the assumption. */
    assert((id & 0xffffffffu) != 0);
    return id;
}

/* ---- transactions -------------------------------------------------------- */

/* Cached policy and feature-set ids may name rows a rollback just removed. */
static void forget_caches(causal_log *log)
{
    log->shown.valid = false;
    for (int i = 0; i < POLICY_CACHE; i++) {
        free(log->policy_cache[i].key);
        log->policy_cache[i].key = NULL;
        free(log->fset_cache[i].name);
        log->fset_cache[i].name = NULL;
        free(log->fset_cache[i].names);
        log->fset_cache[i].names = NULL;
    }
}

int causal_log_set_sync(causal_log *log, causal_sync sync, cw_err *err)
{
    if (log->in_txn) {
        return cw_err_set(err, CW_EINVAL, "%s: cannot change sync mode inside a transaction",
                          log->path);
    }
    return exec_sql(
        log, sync == CAUSAL_SYNC_NORMAL ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL",
        err);
}

int causal_log_begin(causal_log *log, cw_err *err)
{
    if (log->read_only) {
        return cw_err_set(err, CW_EINVAL, "%s: log opened read-only", log->path);
    }
    if (log->in_txn) {
        return cw_err_set(err, CW_EINVAL, "%s: transaction already open", log->path);
    }
    int rc = exec_sql(log, "BEGIN IMMEDIATE", err);
    if (rc == CW_OK) {
        log->in_txn = true;
    }
    return rc;
}

int causal_log_commit(causal_log *log, cw_err *err)
{
    if (!log->in_txn) {
        return cw_err_set(err, CW_EINVAL, "%s: commit without begin", log->path);
    }
    int rc = exec_sql(log, "COMMIT", err);
    if (rc != CW_OK) {
        sqlite3_exec(log->db, "ROLLBACK", NULL, NULL, NULL);
        forget_caches(log);
    }
    log->in_txn = false;
    return rc;
}

void causal_log_rollback(causal_log *log)
{
    if (log->in_txn) {
        sqlite3_exec(log->db, "ROLLBACK", NULL, NULL, NULL);
        log->in_txn = false;
        forget_caches(log);
    }
}

/* Each append runs in a savepoint: nested in the caller's transaction, or its own. */
static int append_begin(causal_log *log, cw_err *err)
{
    if (log->read_only) {
        return cw_err_set(err, CW_EINVAL, "%s: log opened read-only", log->path);
    }
    return exec_sql(log, log->in_txn ? "SAVEPOINT append" : "BEGIN IMMEDIATE", err);
}

static int append_end(causal_log *log, int rc, cw_err *err)
{
    if (rc == CW_OK) {
        rc = exec_sql(log, log->in_txn ? "RELEASE append" : "COMMIT", err);
        if (rc == CW_OK) {
            return CW_OK;
        }
    }
    if (log->in_txn) {
        sqlite3_exec(log->db, "ROLLBACK TO append; RELEASE append", NULL, NULL, NULL);
    } else {
        sqlite3_exec(log->db, "ROLLBACK", NULL, NULL, NULL);
    }
    forget_caches(log);
    return rc;
}

/* ---- impressions --------------------------------------------------------- */

static int check_name(const char *what, const char *s, size_t i, bool required, cw_err *err)
{
    if (!s) {
        return required ? cw_err_set(err, CW_EINVAL, "impression %zu: %s is missing", i, what)
                        : CW_OK;
    }
    size_t n = strlen(s);
    if (n > CAUSAL_MAX_NAME_BYTES) {
        return cw_err_set(err, CW_EINVAL, "impression %zu: %s is %zu bytes (limit %u)", i, what, n,
                          CAUSAL_MAX_NAME_BYTES);
    }
    if (required && n == 0) {
        return cw_err_set(err, CW_EINVAL, "impression %zu: %s is empty", i, what);
    }
    return CW_OK;
}

static int policy_id(causal_log *log, const causal_impression *imp, int64_t *out, cw_err *err)
{
    const char *model = imp->model_version ? imp->model_version : "";
    const char *index = imp->index_version ? imp->index_version : "";
    char key[3 * CAUSAL_MAX_NAME_BYTES + 3];
    snprintf(key, sizeof key, "%s\x1f%s\x1f%s", imp->policy, model, index);
    for (int i = 0; i < POLICY_CACHE; i++) {
        if (log->policy_cache[i].key && strcmp(log->policy_cache[i].key, key) == 0) {
            *out = log->policy_cache[i].id;
            return CW_OK;
        }
    }
    sqlite3_stmt *st = log->st[ST_FIND_POLICY];
    sqlite3_bind_text(st, 1, imp->policy, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, index, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return sql_fail(log, err, "looking up policy");
    }
    if (rc == SQLITE_DONE) {
        st = log->st[ST_INS_POLICY];
        sqlite3_bind_text(st, 1, imp->policy, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, model, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, index, -1, SQLITE_STATIC);
        int r = step_done(log, st, "inserting policy", err);
        if (r != CW_OK) {
            return r;
        }
        id = sqlite3_last_insert_rowid(log->db);
    }
    /* Every rollback path calls forget_caches, so caching uncommitted ids is safe. */
    {
        unsigned slot = log->policy_cache_next++ % POLICY_CACHE;
        char *k = strdup(key);
        if (k) {
            free(log->policy_cache[slot].key);
            log->policy_cache[slot].key = k;
            log->policy_cache[slot].id = id;
        }
    }
    *out = id;
    return CW_OK;
}

/* Feature names are stored once per set as a '\n'-joined list. */
static int join_names(const causal_impression *imp, size_t i, cw_buf *b, cw_err *err)
{
    for (uint32_t f = 0; f < imp->n_features; f++) {
        const char *nm = imp->feature_names[f];
        if (!nm || !*nm || strchr(nm, '\n') || strlen(nm) > CAUSAL_MAX_NAME_BYTES) {
            return cw_err_set(err, CW_EINVAL,
                              "impression %zu: feature name %u is empty, too long or has a "
                              "newline",
                              i, f);
        }
        if ((f && cw_buf_append(b, "\n", 1) != CW_OK) ||
            cw_buf_append(b, nm, strlen(nm)) != CW_OK) {
            return cw_err_set(err, CW_ENOMEM, "out of memory");
        }
    }
    if (!b->data && cw_buf_append(b, "", 0) != CW_OK) {
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    return CW_OK;
}

/* True if names[0..n) joined by '\n' equal `joined`, without building the string. */
static bool names_equal(const char *const *names, uint32_t n, const char *joined)
{
    const char *p = joined;
    for (uint32_t f = 0; f < n; f++) {
        if (!names[f]) {
            return false;
        }
        size_t len = strlen(names[f]);
        if (strncmp(p, names[f], len) != 0) {
            return false;
        }
        p += len;
        if (f + 1 < n) {
            if (*p != '\n') {
                return false;
            }
            p++;
        }
    }
    return *p == '\0';
}

static int feature_set_id(causal_log *log, const causal_impression *imp, size_t i, int64_t *out,
                          cw_err *err)
{
    for (int c = 0; c < POLICY_CACHE; c++) {
        if (log->fset_cache[c].name && strcmp(log->fset_cache[c].name, imp->feature_set) == 0) {
            if (log->fset_cache[c].n_features != imp->n_features) {
                return cw_err_set(err, CW_EINVAL,
                                  "impression %zu: feature set \"%s\" has %u features, not %u", i,
                                  imp->feature_set, log->fset_cache[c].n_features, imp->n_features);
            }
            if (imp->feature_names &&
                !names_equal(imp->feature_names, imp->n_features, log->fset_cache[c].names)) {
                return cw_err_set(err, CW_EINVAL,
                                  "impression %zu: feature set \"%s\" is stored with other "
                                  "feature names: give the set a new name",
                                  i, imp->feature_set);
            }
            *out = log->fset_cache[c].id;
            return CW_OK;
        }
    }
    cw_buf names = {0};
    char *cached_names = NULL;
    int rc = CW_OK;
    if (imp->feature_names) {
        rc = join_names(imp, i, &names, err);
        if (rc != CW_OK) {
            goto done;
        }
    }
    sqlite3_stmt *st = log->st[ST_FIND_FSET];
    sqlite3_bind_text(st, 1, imp->feature_set, -1, SQLITE_STATIC);
    int s = sqlite3_step(st);
    int64_t id = 0;
    if (s == SQLITE_ROW) {
        id = sqlite3_column_int64(st, 0);
        uint32_t stored_n = (uint32_t)sqlite3_column_int64(st, 1);
        const char *stored = (const char *)sqlite3_column_text(st, 2);
        cached_names = strdup(stored ? stored : "");
        if (stored_n != imp->n_features) {
            rc = cw_err_set(err, CW_EINVAL,
                            "impression %zu: feature set \"%s\" has %u features, not %u", i,
                            imp->feature_set, stored_n, imp->n_features);
        } else if (names.data && strcmp(stored ? stored : "", names.data) != 0) {
            rc = cw_err_set(err, CW_EINVAL,
                            "impression %zu: feature set \"%s\" is stored with other feature "
                            "names: give the set a new name",
                            i, imp->feature_set);
        }
    } else if (s != SQLITE_DONE) {
        rc = sql_fail(log, err, "looking up feature set");
    }
    sqlite3_reset(st);
    if (rc != CW_OK) {
        goto done;
    }
    if (s == SQLITE_DONE) {
        if (!names.data) {
            rc = cw_err_set(err, CW_EINVAL,
                            "impression %zu: new feature set \"%s\" needs its feature names", i,
                            imp->feature_set);
            goto done;
        }
        st = log->st[ST_INS_FSET];
        sqlite3_bind_text(st, 1, imp->feature_set, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, imp->n_features);
        sqlite3_bind_text(st, 3, names.data, -1, SQLITE_STATIC);
        rc = step_done(log, st, "inserting feature set", err);
        if (rc != CW_OK) {
            goto done;
        }
        id = sqlite3_last_insert_rowid(log->db);
        cached_names = strdup(names.data);
    }
    {
        unsigned slot = log->fset_cache_next++ % POLICY_CACHE;
        char *nm = strdup(imp->feature_set);
        if (nm && cached_names) {
            free(log->fset_cache[slot].name);
            free(log->fset_cache[slot].names);
            log->fset_cache[slot].name = nm;
            log->fset_cache[slot].names = cached_names;
            log->fset_cache[slot].id = id;
            log->fset_cache[slot].n_features = imp->n_features;
            nm = cached_names = NULL;
        }
        free(nm);
    }
    *out = id;
done:
    free(cached_names);
    cw_buf_fini(&names);
    return rc;
}

static int check_impression(const causal_impression *imp, size_t i, cw_err *err)
{
    int rc = check_name("policy", imp->policy, i, true, err);
    if (rc == CW_OK) {
        rc = check_name("model_version", imp->model_version, i, false, err);
    }
    if (rc == CW_OK) {
        rc = check_name("index_version", imp->index_version, i, false, err);
    }
    if (rc == CW_OK) {
        rc = check_name("qid", imp->qid, i, false, err);
    }
    if (rc == CW_OK && imp->feature_set) {
        rc = check_name("feature_set", imp->feature_set, i, true, err);
    }
    if (rc != CW_OK) {
        return rc;
    }
    if (!imp->query) {
        return cw_err_set(err, CW_EINVAL, "impression %zu: query is missing", i);
    }
    if (imp->id == 0) {
        return cw_err_set(err, CW_EINVAL, "impression %zu: id 0 (use causal_log_next_id)", i);
    }
    if (imp->id > (uint64_t)INT64_MAX) {
        return cw_err_set(err, CW_EINVAL, "impression %zu: id %" PRIu64 " over 2^63 - 1", i,
                          imp->id);
    }
    if (imp->n_items > CAUSAL_MAX_ITEMS) {
        return cw_err_set(err, CW_EINVAL, "impression %zu: %zu items (limit %u)", i, imp->n_items,
                          CAUSAL_MAX_ITEMS);
    }
    if (imp->n_items && !imp->items) {
        return cw_err_set(err, CW_EINVAL, "impression %zu: items is NULL", i);
    }
    if (imp->feature_set && (imp->n_features == 0 || imp->n_features > CAUSAL_MAX_FEATURES)) {
        return cw_err_set(err, CW_EINVAL, "impression %zu: %u features (allowed 1..%u)", i,
                          imp->n_features, CAUSAL_MAX_FEATURES);
    }
    for (size_t j = 0; j < imp->n_items; j++) {
        const causal_item *it = &imp->items[j];
        if (!it->doc_id || !*it->doc_id || strlen(it->doc_id) > CAUSAL_MAX_NAME_BYTES) {
            return cw_err_set(err, CW_EINVAL,
                              "impression %zu item %zu: doc_id missing or over %u "
                              "bytes",
                              i, j, CAUSAL_MAX_NAME_BYTES);
        }
        size_t bad = 0;
        if (!cw_utf8_valid(it->doc_id, strlen(it->doc_id), &bad)) {
            return cw_err_set(err, CW_EINVAL,
                              "impression %zu item %zu: doc_id is not UTF-8 (byte %zu)", i, j, bad);
        }
        if (it->position == 0) {
            return cw_err_set(err, CW_EINVAL, "impression %zu item %zu: position 0 (1-based)", i,
                              j);
        }
        if (isfinite(it->propensity) && !(it->propensity >= 0.0 && it->propensity <= 1.0)) {
            return cw_err_set(err, CW_EINVAL,
                              "impression %zu item %zu: propensity %g outside "
                              "[0, 1]",
                              i, j, it->propensity);
        }
        if (it->features && !imp->feature_set) {
            return cw_err_set(err, CW_EINVAL,
                              "impression %zu item %zu: features without a "
                              "feature_set",
                              i, j);
        }
    }
    return CW_OK;
}

/* ---- the shown list (schema 2) ------------------------------------------- */

/* Writes the decimal digits of v at p; returns the end. */
static char *put_i64(char *p, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) {
        *p++ = '-';
    }
    while (n) {
        *p++ = tmp[--n];
    }
    return p;
}

/* A finite double as the exact pair [m,e], value m * 2^e with m odd (or 0, e 0); NaN and
 * infinities as null. frexp gives v = f * 2^e with 0.5 <= |f| < 1 and f carrying at most
 * 53 significant bits, so f * 2^53 is an integer and ldexp(m, e) gives v back bit for bit
 * (-0.0 reads back as 0.0). "%.17g" cost ~0.5 us a number: more than the row insert. */
static char *put_double(char *p, double v)
{
    if (!isfinite(v)) {
        memcpy(p, "null", 4);
        return p + 4;
    }
    int e = 0;
    int64_t m = (int64_t)ldexp(frexp(v, &e), 53);
    e -= 53;
    if (m == 0) {
        e = 0;
    } else {
        int tz = __builtin_ctzll((unsigned long long)m); /* m even: exact halving */
        m /= (int64_t)1 << tz;
        e += tz;
    }
    *p++ = '[';
    p = put_i64(p, m);
    *p++ = ',';
    p = put_i64(p, e);
    *p++ = ']';
    return p;
}

/* JSON string: escapes '"', '\\' and control bytes; UTF-8 (checked by the caller) as is. */
static char *put_str(char *p, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    *p++ = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c < 0x20) {
            memcpy(p, "\\u00", 4);
            p[4] = hex[c >> 4];
            p[5] = hex[c & 15];
            p += 6;
        } else {
            *p++ = (char)c;
        }
    }
    *p++ = '"';
    return p;
}

/* Encodes the items of imp (already checked) into log->enc (`shown`, *json_len bytes) and,
 * if it has a feature set, log->enc_feat (`shown_features`, n_items * n_features floats,
 * zeros for an item without a vector), both in position order.
 * Errors: CW_EINVAL (a position shown twice), CW_ENOMEM. */
static int encode_shown(causal_log *log, const causal_impression *imp, size_t i, size_t *json_len,
                        cw_err *err)
{
    size_t n = imp->n_items;
    uint16_t *ord = log->enc_order;
    /* Insertion sort by position: the server's lists arrive sorted (linear time). */
    for (size_t j = 0; j < n; j++) {
        size_t k = j;
        while (k > 0 && imp->items[ord[k - 1]].position > imp->items[j].position) {
            ord[k] = ord[k - 1];
            k--;
        }
        ord[k] = (uint16_t)j;
    }
    size_t need = 3;
    for (size_t k = 0; k < n; k++) {
        const causal_item *it = &imp->items[ord[k]];
        if (k > 0 && imp->items[ord[k - 1]].position == it->position) {
            return cw_err_set(err, CW_EINVAL, "impression %zu item %zu: position %u shown twice", i,
                              (size_t)CW_MAX(ord[k], ord[k - 1]), it->position);
        }
        /* "[pos," + string (6 bytes per escaped byte) + 2 x "[m,e]," + "1]," */
        need += 12 + 2 + 6 * strlen(it->doc_id) + 2 * 48 + 4;
    }
    if (need > log->enc_cap) {
        char *b = realloc(log->enc, need);
        if (!b) {
            return cw_err_set(err, CW_ENOMEM, "out of memory encoding impression %zu", i);
        }
        log->enc = b;
        log->enc_cap = need;
    }
    size_t nf = imp->feature_set ? imp->n_features : 0;
    if (n * nf > log->enc_feat_cap) {
        float *f = realloc(log->enc_feat, n * nf * sizeof *f);
        if (!f) {
            return cw_err_set(err, CW_ENOMEM, "out of memory encoding impression %zu", i);
        }
        log->enc_feat = f;
        log->enc_feat_cap = n * nf;
    }
    char *p = log->enc;
    *p++ = '[';
    for (size_t k = 0; k < n; k++) {
        const causal_item *it = &imp->items[ord[k]];
        if (k) {
            *p++ = ',';
        }
        *p++ = '[';
        p = put_i64(p, it->position);
        *p++ = ',';
        p = put_str(p, it->doc_id);
        *p++ = ',';
        p = put_double(p, it->score);
        *p++ = ',';
        p = put_double(p, it->propensity);
        *p++ = ',';
        *p++ = it->features ? '1' : '0';
        *p++ = ']';
        if (nf) {
            if (it->features) {
                memcpy(log->enc_feat + k * nf, it->features, nf * sizeof(float));
            } else {
                memset(log->enc_feat + k * nf, 0, nf * sizeof(float));
            }
        }
    }
    *p++ = ']';
    assert((size_t)(p - log->enc) <= need);
    *json_len = (size_t)(p - log->enc);
    return CW_OK;
}

/* Reads one [m,e] pair (or null as NaN) of the shown list. */
static bool get_double(const json_t *v, double *out)
{
    if (json_is_null(v)) {
        *out = NAN;
        return true;
    }
    const json_t *m = json_array_get(v, 0), *e = json_array_get(v, 1);
    if (json_array_size(v) != 2 || !json_is_integer(m) || !json_is_integer(e)) {
        return false;
    }
    json_int_t ev = json_integer_value(e);
    if (ev < -1100 || ev > 1100) {
        return false;
    }
    *out = ldexp((double)json_integer_value(m), (int)ev);
    return true;
}

/* Decodes the `shown` text of impression id into out[0..*n) (cap entries) in stored order.
 * doc_id points into *root (json_decref it when done); features into an aligned copy of
 * the blob feat (n_features floats per item, or NULL) allocated from feat_arena;
 * with_features false leaves features NULL unchecked (event validation needs only
 * positions and ids; feat_arena may then be NULL).
 * Errors: CW_ECORRUPT (naming the impression), CW_ENOMEM. */
static int decode_shown(causal_log *log, int64_t id, const char *text, size_t len,
                        bool with_features, const void *feat, size_t feat_bytes,
                        uint32_t n_features, cw_arena *feat_arena, causal_item *out, size_t cap,
                        size_t *n, json_t **root, cw_err *err)
{
    json_error_t jerr;
    json_t *a = json_loadb(text ? text : "", len, 0, &jerr);
    if (!a || !json_is_array(a)) {
        json_decref(a);
        return cw_err_set(err, CW_ECORRUPT,
                          "%s: impression %" PRId64 ": shown list is not a JSON "
                          "array (%s)",
                          log->path, id, a ? "other type" : jerr.text);
    }
    size_t k = json_array_size(a);
    if (k > cap) {
        json_decref(a);
        return cw_err_set(err, CW_ECORRUPT,
                          "%s: impression %" PRId64 " has more items (%zu) than its n_items %zu",
                          log->path, id, k, cap);
    }
    if (with_features && feat && feat_bytes != k * n_features * sizeof(float)) {
        json_decref(a);
        return cw_err_set(err, CW_ECORRUPT,
                          "%s: impression %" PRId64 ": feature blob of %zu bytes, expected %zu",
                          log->path, id, feat_bytes, k * n_features * sizeof(float));
    }
    /* SQLite's blob pointer has no alignment guarantee, and converting a misaligned
     * pointer to const float * is already undefined (C11 6.3.2.3p7): the blob is copied
     * once, by one memcpy, into 16-byte-aligned arena memory that the items point into. */
    float *fv = NULL;
    for (size_t j = 0; j < k; j++) {
        const json_t *e = json_array_get(a, j);
        const json_t *pos = json_array_get(e, 0), *doc = json_array_get(e, 1),
                     *hasf = json_array_get(e, 4);
        causal_item *o = &out[j];
        memset(o, 0, sizeof *o);
        if (json_array_size(e) != 5 || !json_is_integer(pos) || json_integer_value(pos) < 1 ||
            json_integer_value(pos) > UINT32_MAX || !json_is_string(doc) ||
            !json_is_integer(hasf) || !get_double(json_array_get(e, 2), &o->score) ||
            !get_double(json_array_get(e, 3), &o->propensity)) {
            json_decref(a);
            return cw_err_set(err, CW_ECORRUPT,
                              "%s: impression %" PRId64 ": shown item %zu is "
                              "not [position, doc_id, score, propensity, has_features]",
                              log->path, id, j);
        }
        o->position = (uint32_t)json_integer_value(pos);
        o->doc_id = json_string_value(doc);
        if (with_features && json_integer_value(hasf)) {
            if (!feat || n_features == 0) {
                json_decref(a);
                return cw_err_set(err, CW_ECORRUPT,
                                  "%s: impression %" PRId64 " position %u: features flagged "
                                  "but no feature blob",
                                  log->path, id, o->position);
            }
            if (!fv) {
                fv = cw_arena_alloc(feat_arena, feat_bytes);
                if (!fv) {
                    json_decref(a);
                    return cw_err_set(err, CW_ENOMEM, "out of memory");
                }
                memcpy(fv, feat, feat_bytes);
            }
            o->features = fv + j * n_features;
        }
    }
    *n = k;
    *root = a;
    return CW_OK;
}

static int insert_impression(causal_log *log, const causal_impression *imp, size_t i, cw_err *err)
{
    if (log->shown.valid && log->shown.id == imp->id) {
        log->shown.valid = false; /* it may have been cached as unknown */
    }
    int rc = check_impression(imp, i, err);
    if (rc != CW_OK) {
        return rc;
    }
    size_t json_len = 0;
    rc = encode_shown(log, imp, i, &json_len, err);
    if (rc != CW_OK) {
        return rc;
    }
    int64_t pid = 0, fsid = 0;
    rc = policy_id(log, imp, &pid, err);
    if (rc == CW_OK && imp->feature_set) {
        rc = feature_set_id(log, imp, i, &fsid, err);
    }
    if (rc != CW_OK) {
        return rc;
    }
    sqlite3_stmt *st = log->st[ST_INS_IMP];
    sqlite3_bind_int64(st, 1, (int64_t)imp->id);
    sqlite3_bind_int64(st, 2, imp->ts_ms);
    sqlite3_bind_text(st, 3, imp->query, -1, SQLITE_STATIC);
    bind_text_or_null(st, 4, imp->qid);
    sqlite3_bind_int64(st, 5, pid);
    bind_real_or_null(st, 6, imp->log_prob);
    sqlite3_bind_int64(st, 7, imp->mc_samples);
    bind_real_or_null(st, 8, imp->temperature);
    if (imp->has_seed) {
        /* Stored as the signed 64-bit pattern; the reader casts back. */
        sqlite3_bind_int64(st, 9, (int64_t)imp->seed);
    }
    if (imp->feature_set) {
        sqlite3_bind_int64(st, 10, fsid);
        sqlite3_bind_blob(st, 13, log->enc_feat, (int)(imp->n_items * imp->n_features * 4),
                          SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 11, (int64_t)imp->n_items);
    sqlite3_bind_text(st, 12, log->enc, (int)json_len, SQLITE_STATIC);
    int s = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (s != SQLITE_DONE) {
        if ((sqlite3_extended_errcode(log->db) & 0xff) == SQLITE_CONSTRAINT) {
            return cw_err_set(err, CW_EINVAL, "impression %zu: id %" PRIu64 " already logged", i,
                              imp->id);
        }
        return sql_fail(log, err, "inserting impression");
    }
    return CW_OK;
}

static char *arena_col(cw_arena *a, sqlite3_stmt *st, int c)
{
    const unsigned char *t = sqlite3_column_text(st, c);
    return t ? cw_arena_strndup(a, (const char *)t, (size_t)sqlite3_column_bytes(st, c)) : NULL;
}

/* One row of schema 1's items table (impression_id, position, doc_id, score, propensity,
 * features: the columns of both of its readers) into *o, doc_id and features copied into
 * arena; a features blob must hold nf floats of the impression's feature set (has_fs).
 * Used by the 1 -> 2 migration and by the reader of a read-only schema 1 log.
 * Errors: CW_ECORRUPT (a blob of another width or without a feature set), CW_ENOMEM. */
static int v1_item_row(causal_log *log, sqlite3_stmt *st, int64_t id, bool has_fs, uint32_t nf,
                       cw_arena *arena, causal_item *o, cw_err *err)
{
    memset(o, 0, sizeof *o);
    o->position = (uint32_t)sqlite3_column_int64(st, 1);
    o->doc_id = arena_col(arena, st, 2);
    o->score = sqlite3_column_type(st, 3) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 3);
    o->propensity = sqlite3_column_type(st, 4) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 4);
    if (sqlite3_column_type(st, 5) == SQLITE_BLOB) {
        int nb = sqlite3_column_bytes(st, 5);
        if (!has_fs || (size_t)nb != nf * sizeof(float)) {
            return cw_err_set(err, CW_ECORRUPT,
                              "%s: impression %" PRId64 " position %u: "
                              "feature blob of %d bytes, expected %zu",
                              log->path, id, o->position, nb, has_fs ? nf * sizeof(float) : 0);
        }
        float *v = cw_arena_alloc(arena, (size_t)nb);
        if (!v) {
            return cw_err_set(err, CW_ENOMEM, "out of memory");
        }
        memcpy(v, sqlite3_column_blob(st, 5), (size_t)nb);
        o->features = v;
    }
    if (!o->doc_id) {
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    return CW_OK;
}

/* Migration 1 -> 2: one pass over the items rows in (impression, position) order writes
 * each impression's `shown` and `shown_features` with the encoder of insert_impression.
 * Runs inside the migration transaction, before causal_log_open prepares its statements. */
static int convert_flush(causal_log *log, sqlite3_stmt *upd, int64_t id, bool has_fs, uint32_t nf,
                         const causal_item *items, size_t n, cw_err *err)
{
    causal_impression imp = {
        .feature_set = has_fs ? "" : NULL, .n_features = nf, .n_items = n, .items = items};
    size_t json_len = 0;
    int rc = encode_shown(log, &imp, 0, &json_len, err);
    if (rc != CW_OK) {
        return cw_err_prefix(err, "impression %" PRId64 ": ", id);
    }
    sqlite3_bind_int64(upd, 1, id);
    sqlite3_bind_text(upd, 2, log->enc, (int)json_len, SQLITE_STATIC);
    if (has_fs) {
        sqlite3_bind_blob(upd, 3, log->enc_feat, (int)(n * nf * sizeof(float)), SQLITE_STATIC);
    } else {
        sqlite3_bind_null(upd, 3);
    }
    return step_done(log, upd, "migrating items", err);
}

static int convert_items_v2(causal_log *log, cw_err *err)
{
    const char *sel_sql =
        "SELECT it.impression_id, it.position, it.doc_id, it.score, it.propensity, it.features,"
        " coalesce(f.n_features, 0), i.feature_set_id IS NOT NULL FROM items it"
        " JOIN impressions i ON i.id = it.impression_id"
        " LEFT JOIN feature_sets f ON f.id = i.feature_set_id"
        " ORDER BY it.impression_id, it.position";
    const char *upd_sql = "UPDATE impressions SET shown = ?2, shown_features = ?3 WHERE id = ?1";
    sqlite3_stmt *sel = NULL, *upd = NULL;
    cw_arena *arena = cw_arena_new(64 << 10);
    causal_item *items = malloc(CAUSAL_MAX_ITEMS * sizeof *items);
    int rc = CW_OK;
    if (!arena || !items) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory");
        goto done;
    }
    if (sqlite3_prepare_v2(log->db, sel_sql, -1, &sel, NULL) != SQLITE_OK) {
        rc = sql_fail(log, err, sel_sql);
        goto done;
    }
    if (sqlite3_prepare_v2(log->db, upd_sql, -1, &upd, NULL) != SQLITE_OK) {
        rc = sql_fail(log, err, upd_sql);
        goto done;
    }
    int64_t cur = 0;
    bool has_fs = false;
    uint32_t nf = 0;
    size_t n = 0;
    int s = SQLITE_DONE;
    while (rc == CW_OK && (s = sqlite3_step(sel)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(sel, 0);
        if (n > 0 && id != cur) {
            rc = convert_flush(log, upd, cur, has_fs, nf, items, n, err);
            n = 0;
            cw_arena_reset(arena);
            if (rc != CW_OK) {
                break;
            }
        }
        cur = id;
        nf = (uint32_t)sqlite3_column_int64(sel, 6);
        has_fs = sqlite3_column_int(sel, 7) != 0;
        if (n == CAUSAL_MAX_ITEMS) {
            rc = cw_err_set(err, CW_ECORRUPT, "%s: impression %" PRId64 " has over %u items",
                            log->path, id, CAUSAL_MAX_ITEMS);
            break;
        }
        /* The encoder writes doc_id into JSON as is: it must be UTF-8 without NULs. */
        const char *doc = (const char *)sqlite3_column_text(sel, 2);
        size_t doc_len = (size_t)sqlite3_column_bytes(sel, 2);
        size_t bad = 0;
        if (!doc || !cw_utf8_valid(doc, doc_len, &bad) || memchr(doc, 0, doc_len)) {
            rc = cw_err_set(err, CW_ECORRUPT,
                            "%s: impression %" PRId64 " position %u: doc_id is not UTF-8 text",
                            log->path, id, (uint32_t)sqlite3_column_int64(sel, 1));
            break;
        }
        rc = v1_item_row(log, sel, id, has_fs, nf, arena, &items[n++], err);
    }
    if (rc == CW_OK && s != SQLITE_DONE) {
        rc = sql_fail(log, err, "migrating items");
    }
    if (rc == CW_OK && n > 0) {
        rc = convert_flush(log, upd, cur, has_fs, nf, items, n, err);
    }
done:
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    cw_arena_free(arena);
    free(items);
    return rc;
}

int causal_log_append_impressions(causal_log *log, const causal_impression *imps, size_t n,
                                  cw_err *err)
{
    int rc = append_begin(log, err);
    if (rc != CW_OK) {
        return rc;
    }
    for (size_t i = 0; i < n && rc == CW_OK; i++) {
        rc = insert_impression(log, &imps[i], i, err);
    }
    return append_end(log, rc, err);
}

/* ---- events -------------------------------------------------------------- */

static void reject(causal_event_reject *rj, size_t *n_rj, size_t index, int code, const char *fmt,
                   ...) CW_PRINTF(5, 6);

static void reject(causal_event_reject *rj, size_t *n_rj, size_t index, int code, const char *fmt,
                   ...)
{
    causal_event_reject *r = &rj[(*n_rj)++];
    r->index = index;
    r->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
}

/* Loads the shown list of impression id into log->shown. */
static int load_shown(causal_log *log, uint64_t id, cw_err *err)
{
    log->shown.valid = false;
    log->shown.n = 0;
    log->shown.docs.len = 0;
    sqlite3_stmt *st = log->st[ST_SHOWN];
    sqlite3_bind_int64(st, 1, (int64_t)id);
    int s = sqlite3_step(st);
    int rc = CW_OK;
    bool exists = s == SQLITE_ROW;
    if (exists) {
        size_t n = 0;
        json_t *root = NULL;
        rc = decode_shown(log, (int64_t)id, (const char *)sqlite3_column_text(st, 0),
                          (size_t)sqlite3_column_bytes(st, 0), false, NULL, 0, 0, NULL, log->dec,
                          CAUSAL_MAX_ITEMS, &n, &root, err);
        for (size_t k = 0; k < n && rc == CW_OK; k++) {
            const char *doc = log->dec[k].doc_id;
            log->shown.pos[k] = log->dec[k].position;
            log->shown.doc_off[k] = log->shown.docs.len;
            if (cw_buf_append(&log->shown.docs, doc, strlen(doc) + 1) != CW_OK) {
                rc = cw_err_set(err, CW_ENOMEM, "out of memory");
            }
        }
        json_decref(root);
        log->shown.n = (uint32_t)n;
    } else if (s != SQLITE_DONE) {
        rc = sql_fail(log, err, "validating event");
    }
    sqlite3_reset(st);
    if (rc != CW_OK) {
        log->shown.n = 0;
        return rc;
    }
    log->shown.exists = exists;
    log->shown.id = id;
    log->shown.valid = true;
    return CW_OK;
}

/* Checks one event against the log; returns CW_OK, adds a reject, or fails on I/O. */
static int validate_event(causal_log *log, const causal_event *e, size_t i, causal_event_reject *rj,
                          size_t *n_rj, cw_err *err)
{
    if ((unsigned)e->type >= CAUSAL_N_EVENT_TYPES) {
        reject(rj, n_rj, i, CW_EINVAL, "unknown event type %d", (int)e->type);
        return CW_OK;
    }
    if (!e->doc_id || !*e->doc_id || strlen(e->doc_id) > CAUSAL_MAX_NAME_BYTES) {
        reject(rj, n_rj, i, CW_EINVAL, "doc_id missing or over %u bytes", CAUSAL_MAX_NAME_BYTES);
        return CW_OK;
    }
    if (e->client_id && (!*e->client_id || strlen(e->client_id) > CAUSAL_MAX_CLIENT_ID_BYTES)) {
        reject(rj, n_rj, i, CW_EINVAL, "client event id empty or over %u bytes",
               CAUSAL_MAX_CLIENT_ID_BYTES);
        return CW_OK;
    }
    if (e->type == CAUSAL_EVENT_DWELL && e->value_ms < 0) {
        reject(rj, n_rj, i, CW_EINVAL, "dwell event without a non-negative value_ms");
        return CW_OK;
    }
    if (e->impression_id == 0 || e->impression_id > (uint64_t)INT64_MAX) {
        reject(rj, n_rj, i, CW_ENOTFOUND, "unknown impression %" PRIu64, e->impression_id);
        return CW_OK;
    }
    if (!log->shown.valid || log->shown.id != e->impression_id) {
        int rc = load_shown(log, e->impression_id, err);
        if (rc != CW_OK) {
            return rc;
        }
    }
    if (!log->shown.exists) {
        reject(rj, n_rj, i, CW_ENOTFOUND, "unknown impression %" PRIu64, e->impression_id);
        return CW_OK;
    }
    bool shown = false;
    for (uint32_t k = 0; k < log->shown.n; k++) {
        if (strcmp(log->shown.docs.data + log->shown.doc_off[k], e->doc_id) == 0) {
            if (log->shown.pos[k] == e->position) {
                return CW_OK;
            }
            shown = true;
        }
    }
    if (shown) {
        reject(rj, n_rj, i, CW_EINVAL,
               "impression %" PRIu64 " showed doc \"%.64s\" at another position than %u",
               e->impression_id, e->doc_id, e->position);
    } else {
        reject(rj, n_rj, i, CW_ENOTFOUND, "impression %" PRIu64 " did not show doc \"%.64s\"",
               e->impression_id, e->doc_id);
    }
    return CW_OK;
}

int causal_log_append_events(causal_log *log, const causal_event *ev, size_t n,
                             causal_event_reject *rejects, size_t *n_rejects, size_t *n_duplicates,
                             cw_err *err)
{
    *n_rejects = 0;
    if (n_duplicates) {
        *n_duplicates = 0;
    }
    int rc = append_begin(log, err);
    if (rc != CW_OK) {
        return rc;
    }
    for (size_t i = 0; i < n && rc == CW_OK; i++) {
        rc = validate_event(log, &ev[i], i, rejects, n_rejects, err);
    }
    if (rc == CW_OK && *n_rejects > 0) {
        rc = cw_err_set(err, CW_EINVAL, "%zu of %zu events rejected; first: event %zu: %s",
                        *n_rejects, n, rejects[0].index, rejects[0].reason);
    }
    size_t dups = 0;
    sqlite3_stmt *st = log->st[ST_INS_EVENT];
    for (size_t i = 0; i < n && rc == CW_OK; i++) {
        const causal_event *e = &ev[i];
        sqlite3_bind_int64(st, 1, (int64_t)e->impression_id);
        sqlite3_bind_text(st, 2, e->doc_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, e->position);
        sqlite3_bind_text(st, 4, event_type_names[e->type], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, e->ts_ms);
        if (e->value_ms >= 0) {
            sqlite3_bind_int64(st, 6, e->value_ms);
        }
        bind_text_or_null(st, 7, e->client_id);
        rc = step_done(log, st, "inserting event", err);
        if (rc == CW_OK && sqlite3_changes(log->db) == 0) {
            dups++; /* a stored client_id: an idempotent retry */
        }
    }
    rc = append_end(log, rc, err);
    if (rc == CW_OK && n_duplicates) {
        *n_duplicates = dups;
    }
    return rc;
}

int causal_log_count(causal_log *log, causal_log_counts *out, cw_err *err)
{
    int64_t a = 0, b = 0, c = 0;
    int rc = query_int(log, "SELECT count(*) FROM impressions", 0, &a, err);
    if (rc == CW_OK) {
        rc = query_int(log,
                       log->schema == 1
                           ? "SELECT count(*) FROM items"
                           : "SELECT coalesce(sum(json_array_length(shown)), 0) FROM impressions",
                       0, &b, err);
    }
    if (rc == CW_OK) {
        rc = query_int(log, "SELECT count(*) FROM events", 0, &c, err);
    }
    if (rc == CW_OK) {
        *out = (causal_log_counts){(uint64_t)a, (uint64_t)b, (uint64_t)c};
    }
    return rc;
}

/* ---- reader -------------------------------------------------------------- */

typedef struct policy_row {
    int64_t id;
    char *name, *model, *index;
} policy_row;

typedef struct fset_row {
    int64_t id;
    char *name;
    uint32_t n;
    char *names_buf;    /* '\n' replaced by NUL */
    const char **names; /* n pointers into names_buf */
} fset_row;

struct causal_log_reader {
    causal_log *log;
    sqlite3_stmt *imp, *clicks;
    bool clicks_row; /* the click statement holds an unconsumed row */
    bool clicks_done;
    sqlite3_stmt *items; /* schema 1 (read-only) only: its items table in impression order */
    bool items_row, items_done;
    policy_row *policies;
    size_t n_policies;
    fset_row *fsets;
    size_t n_fsets;
    cw_arena *arena;
    causal_item *item_buf;
    size_t item_cap;
    causal_impression cur;
};

static void free_catalog(causal_log_reader *r)
{
    for (size_t i = 0; i < r->n_policies; i++) {
        free(r->policies[i].name);
        free(r->policies[i].model);
        free(r->policies[i].index);
    }
    free(r->policies);
    for (size_t i = 0; i < r->n_fsets; i++) {
        free(r->fsets[i].name);
        free(r->fsets[i].names_buf);
        free(r->fsets[i].names);
    }
    free(r->fsets);
}

static char *dup_col(sqlite3_stmt *st, int c)
{
    const unsigned char *t = sqlite3_column_text(st, c);
    return strdup(t ? (const char *)t : "");
}

/* The policies and feature-set tables are small: load them once. */
static int load_catalog(causal_log_reader *r, cw_err *err)
{
    causal_log *log = r->log;
    sqlite3_stmt *st = NULL;
    const char *sql = "SELECT id, name, model_version, index_version FROM policies ORDER BY id";
    if (sqlite3_prepare_v2(log->db, sql, -1, &st, NULL) != SQLITE_OK) {
        return sql_fail(log, err, sql);
    }
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        policy_row *p = realloc(r->policies, (r->n_policies + 1) * sizeof *p);
        if (!p) {
            sqlite3_finalize(st);
            return cw_err_set(err, CW_ENOMEM, "out of memory");
        }
        r->policies = p;
        p = &r->policies[r->n_policies++];
        *p = (policy_row){sqlite3_column_int64(st, 0), dup_col(st, 1), dup_col(st, 2),
                          dup_col(st, 3)};
        if (!p->name || !p->model || !p->index) {
            sqlite3_finalize(st);
            return cw_err_set(err, CW_ENOMEM, "out of memory");
        }
    }
    sqlite3_finalize(st);
    if (s != SQLITE_DONE) {
        return sql_fail(log, err, sql);
    }
    sql = "SELECT id, n_features, names, name FROM feature_sets ORDER BY id";
    if (sqlite3_prepare_v2(log->db, sql, -1, &st, NULL) != SQLITE_OK) {
        return sql_fail(log, err, sql);
    }
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        fset_row *f = realloc(r->fsets, (r->n_fsets + 1) * sizeof *f);
        if (!f) {
            sqlite3_finalize(st);
            return cw_err_set(err, CW_ENOMEM, "out of memory");
        }
        r->fsets = f;
        f = &r->fsets[r->n_fsets++];
        *f = (fset_row){.id = sqlite3_column_int64(st, 0),
                        .n = (uint32_t)sqlite3_column_int64(st, 1)};
        f->name = dup_col(st, 3);
        f->names_buf = dup_col(st, 2);
        f->names = calloc(f->n ? f->n : 1, sizeof *f->names);
        if (!f->name || !f->names_buf || !f->names) {
            sqlite3_finalize(st);
            return cw_err_set(err, CW_ENOMEM, "out of memory");
        }
        char *p = f->names_buf;
        uint32_t k = 0;
        while (k < f->n) {
            f->names[k++] = p;
            char *nl = strchr(p, '\n');
            if (!nl) {
                break;
            }
            *nl = '\0';
            p = nl + 1;
        }
        if (k != f->n) {
            sqlite3_finalize(st);
            return cw_err_set(err, CW_ECORRUPT, "%s: feature set %" PRId64 " lists %u of %u names",
                              log->path, f->id, k, f->n);
        }
    }
    sqlite3_finalize(st);
    if (s != SQLITE_DONE) {
        return sql_fail(log, err, sql);
    }
    return CW_OK;
}

int causal_log_reader_new(causal_log *log, const causal_log_filter *filter, causal_log_reader **out,
                          cw_err *err)
{
    causal_log_filter f = filter ? *filter : causal_log_filter_all();
    causal_log_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->arena = cw_arena_new(64 << 10))) {
        free(r);
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    r->log = log;
    int rc = load_catalog(r, err);
    if (rc != CW_OK) {
        goto fail;
    }
    bool v1 = log->schema == 1;
/* Schema 1 has no shown columns: its items come from the items table (r->items). */
#define IMP_SQL(SHOWN_COLS)                                                                        \
    "SELECT i.id, i.ts_ms, i.query, i.qid, i.policy_id, i.log_prob, i.mc_samples,"                 \
    " i.temperature, i.seed, i.feature_set_id, i.n_items, " SHOWN_COLS " FROM impressions i"       \
    " WHERE i.ts_ms >= ?1 AND i.ts_ms < ?2 AND (?3 IS NULL OR i.policy_id IN"                      \
    " (SELECT id FROM policies WHERE name = ?3)) ORDER BY i.id"
    const char *imp_sql = v1 ? IMP_SQL("'[]', NULL") : IMP_SQL("i.shown, i.shown_features");
#undef IMP_SQL
    const char *item_sql = "SELECT impression_id, position, doc_id, score, propensity, features"
                           " FROM items ORDER BY impression_id, position";
    if (v1 && sqlite3_prepare_v2(log->db, item_sql, -1, &r->items, NULL) != SQLITE_OK) {
        rc = sql_fail(log, err, item_sql);
        goto fail;
    }
    const char *click_sql = "SELECT impression_id, position, count(*) FROM events"
                            " WHERE type = 'click' GROUP BY impression_id, position"
                            " ORDER BY impression_id, position";
    if (sqlite3_prepare_v2(log->db, imp_sql, -1, &r->imp, NULL) != SQLITE_OK) {
        rc = sql_fail(log, err, imp_sql);
        goto fail;
    }
    if (sqlite3_prepare_v2(log->db, click_sql, -1, &r->clicks, NULL) != SQLITE_OK) {
        rc = sql_fail(log, err, click_sql);
        goto fail;
    }
    sqlite3_bind_int64(r->imp, 1, f.ts_from_ms);
    sqlite3_bind_int64(r->imp, 2, f.ts_to_ms);
    if (f.policy) {
        sqlite3_bind_text(r->imp, 3, f.policy, -1, SQLITE_TRANSIENT);
    }
    *out = r;
    return CW_OK;
fail:
    causal_log_reader_free(r);
    return rc;
}

void causal_log_reader_free(causal_log_reader *r)
{
    if (!r) {
        return;
    }
    sqlite3_finalize(r->imp);
    sqlite3_finalize(r->items);
    sqlite3_finalize(r->clicks);
    free_catalog(r);
    cw_arena_free(r->arena);
    free(r->item_buf);
    free(r);
}

/* Advances a merge cursor until its impression id is >= id; returns the step status. */
static int seek_to(causal_log *log, sqlite3_stmt *st, bool *has_row, bool *done, int64_t id,
                   cw_err *err)
{
    while (!*done) {
        if (!*has_row) {
            int s = sqlite3_step(st);
            if (s == SQLITE_DONE) {
                *done = true;
                break;
            }
            if (s != SQLITE_ROW) {
                return sql_fail(log, err, "reading the log");
            }
            *has_row = true;
        }
        if (sqlite3_column_int64(st, 0) >= id) {
            break;
        }
        *has_row = false;
    }
    return CW_OK;
}

/* Schema 1 (a log opened read-only before its first read-write open migrates it): the
 * items of impression id from the items table, merged in impression order. */
static int read_v1_items(causal_log_reader *r, int64_t id, const fset_row *fs, size_t n_items,
                         size_t *n_out, cw_err *err)
{
    causal_log *log = r->log;
    size_t k = 0;
    int rc = seek_to(log, r->items, &r->items_row, &r->items_done, id, err);
    while (rc == CW_OK && !r->items_done && r->items_row &&
           sqlite3_column_int64(r->items, 0) == id) {
        if (k == n_items) {
            return cw_err_set(err, CW_ECORRUPT,
                              "%s: impression %" PRId64 " has more items than its n_items %zu",
                              log->path, id, n_items);
        }
        rc = v1_item_row(log, r->items, id, fs != NULL, fs ? fs->n : 0, r->arena, &r->item_buf[k++],
                         err);
        if (rc != CW_OK) {
            return rc;
        }
        r->items_row = false;
        rc = seek_to(log, r->items, &r->items_row, &r->items_done, id, err);
    }
    *n_out = k;
    return rc;
}

int causal_log_reader_next(causal_log_reader *r, const causal_impression **imp, cw_err *err)
{
    causal_log *log = r->log;
    int s = sqlite3_step(r->imp);
    if (s == SQLITE_DONE) {
        return 0;
    }
    if (s != SQLITE_ROW) {
        return sql_fail(log, err, "reading impressions");
    }
    cw_arena_reset(r->arena);
    sqlite3_stmt *st = r->imp;
    causal_impression *c = &r->cur;
    memset(c, 0, sizeof *c);
    int64_t id = sqlite3_column_int64(st, 0);
    c->id = (uint64_t)id;
    c->ts_ms = sqlite3_column_int64(st, 1);
    c->query = arena_col(r->arena, st, 2);
    c->qid = arena_col(r->arena, st, 3);
    int64_t pid = sqlite3_column_int64(st, 4);
    for (size_t i = 0; i < r->n_policies; i++) {
        if (r->policies[i].id == pid) {
            c->policy = r->policies[i].name;
            c->model_version = *r->policies[i].model ? r->policies[i].model : NULL;
            c->index_version = *r->policies[i].index ? r->policies[i].index : NULL;
        }
    }
    c->log_prob = sqlite3_column_type(st, 5) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 5);
    c->mc_samples = (uint32_t)sqlite3_column_int64(st, 6);
    c->temperature = sqlite3_column_type(st, 7) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 7);
    c->has_seed = sqlite3_column_type(st, 8) != SQLITE_NULL;
    c->seed = (uint64_t)sqlite3_column_int64(st, 8);
    const fset_row *fs = NULL;
    if (sqlite3_column_type(st, 9) != SQLITE_NULL) {
        int64_t fid = sqlite3_column_int64(st, 9);
        for (size_t i = 0; i < r->n_fsets; i++) {
            if (r->fsets[i].id == fid) {
                fs = &r->fsets[i];
            }
        }
        if (!fs) {
            return cw_err_set(err, CW_ECORRUPT,
                              "%s: impression %" PRId64 " names unknown feature set %" PRId64,
                              log->path, id, fid);
        }
        c->feature_set = fs->name;
        c->feature_names = fs->names;
        c->n_features = fs->n;
    }
    if (!c->policy || !c->query) {
        return cw_err_set(err, CW_ECORRUPT, "%s: impression %" PRId64 " has no policy or query",
                          log->path, id);
    }
    int64_t n_items = sqlite3_column_int64(st, 10);
    if (n_items < 0 || n_items > CAUSAL_MAX_ITEMS) {
        return cw_err_set(err, CW_ECORRUPT, "%s: impression %" PRId64 " claims %" PRId64 " items",
                          log->path, id, n_items);
    }
    if ((size_t)n_items > r->item_cap) {
        causal_item *b = realloc(r->item_buf, (size_t)n_items * sizeof *b);
        if (!b) {
            return cw_err_set(err, CW_ENOMEM, "out of memory");
        }
        r->item_buf = b;
        r->item_cap = (size_t)n_items;
    }
    size_t k = 0;
    json_t *root = NULL;
    const void *feat =
        sqlite3_column_type(st, 12) == SQLITE_BLOB ? sqlite3_column_blob(st, 12) : NULL;
    int rc = decode_shown(log, id, (const char *)sqlite3_column_text(st, 11),
                          (size_t)sqlite3_column_bytes(st, 11), true, feat,
                          (size_t)sqlite3_column_bytes(st, 12), fs ? fs->n : 0, r->arena,
                          r->item_buf, (size_t)n_items, &k, &root, err);
    if (rc != CW_OK) {
        return rc;
    }
    /* Copy out of the JSON tree, which dies before the caller reads (the features are
     * already in the arena). */
    for (size_t j = 0; j < k && rc == CW_OK; j++) {
        causal_item *o = &r->item_buf[j];
        o->doc_id = cw_arena_strdup(r->arena, o->doc_id);
        if (!o->doc_id) {
            rc = cw_err_set(err, CW_ENOMEM, "out of memory");
        }
    }
    json_decref(root);
    if (rc == CW_OK && r->items) {
        rc = read_v1_items(r, id, fs, (size_t)n_items, &k, err);
    }
    if (rc != CW_OK) {
        return rc;
    }
    rc = seek_to(log, r->clicks, &r->clicks_row, &r->clicks_done, id, err);
    while (rc == CW_OK && !r->clicks_done && r->clicks_row &&
           sqlite3_column_int64(r->clicks, 0) == id) {
        uint32_t pos = (uint32_t)sqlite3_column_int64(r->clicks, 1);
        for (size_t j = 0; j < k; j++) {
            if (r->item_buf[j].position == pos) {
                r->item_buf[j].n_clicks = (uint32_t)sqlite3_column_int64(r->clicks, 2);
            }
        }
        r->clicks_row = false;
        rc = seek_to(log, r->clicks, &r->clicks_row, &r->clicks_done, id, err);
    }
    if (rc != CW_OK) {
        return rc;
    }
    c->n_items = k;
    c->items = r->item_buf;
    *imp = c;
    return 1;
}

/* ---- event reader -------------------------------------------------------- */

struct causal_event_reader {
    causal_log *log;
    sqlite3_stmt *st;
    cw_arena *arena;
    causal_event cur;
};

int causal_event_reader_new(causal_log *log, causal_event_reader **out, cw_err *err)
{
    causal_event_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->arena = cw_arena_new(4096))) {
        free(r);
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    r->log = log;
    const char *sql = "SELECT impression_id, doc_id, position, type, ts_ms, value_ms, client_id"
                      " FROM events ORDER BY id";
    if (sqlite3_prepare_v2(log->db, sql, -1, &r->st, NULL) != SQLITE_OK) {
        int rc = sql_fail(log, err, sql);
        causal_event_reader_free(r);
        return rc;
    }
    *out = r;
    return CW_OK;
}

int causal_event_reader_next(causal_event_reader *r, const causal_event **ev, cw_err *err)
{
    int s = sqlite3_step(r->st);
    if (s == SQLITE_DONE) {
        return 0;
    }
    if (s != SQLITE_ROW) {
        return sql_fail(r->log, err, "reading events");
    }
    cw_arena_reset(r->arena);
    causal_event *e = &r->cur;
    e->impression_id = (uint64_t)sqlite3_column_int64(r->st, 0);
    e->doc_id = arena_col(r->arena, r->st, 1);
    e->position = (uint32_t)sqlite3_column_int64(r->st, 2);
    const char *type = (const char *)sqlite3_column_text(r->st, 3);
    cw_err ignored;
    if (causal_event_type_parse(type, &e->type, &ignored) != CW_OK) {
        return cw_err_set(err, CW_ECORRUPT, "%s: event of unknown type \"%s\"", r->log->path,
                          type ? type : "");
    }
    e->ts_ms = sqlite3_column_int64(r->st, 4);
    e->value_ms =
        sqlite3_column_type(r->st, 5) == SQLITE_NULL ? -1 : sqlite3_column_int64(r->st, 5);
    e->client_id = arena_col(r->arena, r->st, 6);
    if (!e->doc_id) {
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    *ev = e;
    return 1;
}

void causal_event_reader_free(causal_event_reader *r)
{
    if (!r) {
        return;
    }
    sqlite3_finalize(r->st);
    cw_arena_free(r->arena);
    free(r);
}
