/* Tests of causal/logstore.c: round trips through the reader, id uniqueness across
 * reopen, schema versions, all-or-nothing event batches, idempotent retries, filters. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "causal/causal.h"

static char tmpdir[64];
static char dbpath[128];

static void setup(void)
{
    strcpy(tmpdir, "/tmp/cw_logstore_XXXXXX");
    cr_assert(mkdtemp(tmpdir) != NULL);
    snprintf(dbpath, sizeof dbpath, "%s/log.db", tmpdir);
}

static void teardown(void)
{
    cw_err err;
    cr_expect(eq(int, cw_rmtree(tmpdir, &err), CW_OK));
}

static causal_log *open_log(void)
{
    causal_log *log = NULL;
    cw_err err;
    int rc = causal_log_open(dbpath, NULL, &log, &err);
    cr_assert(eq(int, rc, CW_OK), "%s", err.msg);
    return log;
}

/* Runs sql on the log file behind the store's back (an old binary, a foreign program, a
 * corrupting hand). */
static void exec_on_file(const char *sql)
{
    sqlite3 *db;
    cr_assert(eq(int, sqlite3_open(dbpath, &db), SQLITE_OK));
    cr_assert(eq(int, sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK), "%s: %s", sql,
              sqlite3_errmsg(db));
    sqlite3_close(db);
}

static const char *const fnames[] = {"bm25_title", "bm25_text", "len"};

/* Impression `id` of policy `policy` showing docs d<base+j> at positions 1..n. */
static causal_impression make_imp(uint64_t id, const char *policy, int64_t ts, causal_item *items,
                                  float (*feat)[3], size_t n, int base)
{
    static char names[64][16];
    for (size_t j = 0; j < n; j++) {
        snprintf(names[(base + j) % 64], 16, "d%d", (int)(base + j));
        feat[j][0] = (float)j;
        feat[j][1] = 0.5f * (float)j;
        feat[j][2] = (float)id;
        items[j] = (causal_item){.doc_id = names[(base + j) % 64],
                                 .position = (uint32_t)(j + 1),
                                 .score = 10.0 - (double)j,
                                 .propensity = 1.0 / (double)(j + 1),
                                 .features = feat[j]};
    }
    return (causal_impression){.id = id,
                               .ts_ms = ts,
                               .query = "white rabbit",
                               .qid = "q7",
                               .policy = policy,
                               .model_version = "m1",
                               .index_version = "ix1",
                               .log_prob = -1.5,
                               .mc_samples = 100,
                               .temperature = 0.5,
                               .has_seed = true,
                               .seed = UINT64_MAX - 3,
                               .feature_set = "fs1",
                               .feature_names = fnames,
                               .n_features = 3,
                               .n_items = n,
                               .items = items};
}

TestSuite(causal_logstore, .init = setup, .fini = teardown);

Test(causal_logstore, round_trips_impressions_items_features_and_click_counts)
{
    causal_log *log = open_log();
    cw_err err;
    causal_item items[2][3];
    float feat[2][3][3];
    causal_impression imps[2];
    uint64_t id0 = causal_log_next_id(log), id1 = causal_log_next_id(log);
    cr_assert(gt(u64, id1, id0));
    imps[0] = make_imp(id0, "bm25", 1000, items[0], feat[0], 3, 0);
    imps[1] = make_imp(id1, "pl", 2000, items[1], feat[1], 2, 10);
    imps[1].log_prob = NAN;
    imps[1].qid = NULL;
    imps[1].feature_names = NULL; /* the set is known after the first impression */
    cr_assert(eq(int, causal_log_append_impressions(log, imps, 2, &err), CW_OK), "%s", err.msg);

    causal_event ev[3] = {
        {id0, "d1", 2, CAUSAL_EVENT_CLICK, 1500, -1, NULL},
        {id0, "d1", 2, CAUSAL_EVENT_CLICK, 1600, -1, "c2"},
        {id1, "d10", 1, CAUSAL_EVENT_DWELL, 2500, 30000, NULL},
    };
    causal_event_reject rj[3];
    size_t n_rj = 9, n_dup = 9;
    cr_assert(eq(int, causal_log_append_events(log, ev, 3, rj, &n_rj, &n_dup, &err), CW_OK), "%s",
              err.msg);
    cr_expect(eq(sz, n_rj, 0));
    cr_expect(eq(sz, n_dup, 0));

    causal_log_reader *r = NULL;
    cr_assert(eq(int, causal_log_reader_new(log, NULL, &r, &err), CW_OK), "%s", err.msg);
    const causal_impression *got;
    cr_assert(eq(int, causal_log_reader_next(r, &got, &err), 1), "%s", err.msg);
    cr_expect(eq(u64, got->id, id0));
    cr_expect(eq(i64, got->ts_ms, 1000));
    cr_expect(eq(str, (char *)got->query, "white rabbit"));
    cr_expect(eq(str, (char *)got->qid, "q7"));
    cr_expect(eq(str, (char *)got->policy, "bm25"));
    cr_expect(eq(str, (char *)got->model_version, "m1"));
    cr_expect(eq(str, (char *)got->index_version, "ix1"));
    cr_expect(eq(str, (char *)got->feature_set, "fs1"));
    cr_expect(eq(str, (char *)got->feature_names[2], "len"));
    cr_expect(eq(dbl, got->log_prob, -1.5));
    cr_expect(eq(u32, got->mc_samples, 100));
    cr_expect(eq(dbl, got->temperature, 0.5));
    cr_expect(got->has_seed);
    cr_expect(eq(u64, got->seed, UINT64_MAX - 3));
    cr_assert(eq(sz, got->n_items, 3));
    for (size_t j = 0; j < 3; j++) {
        cr_expect(eq(u32, got->items[j].position, (uint32_t)(j + 1)));
        cr_expect(eq(dbl, got->items[j].propensity, 1.0 / (double)(j + 1)));
        cr_expect(eq(flt, got->items[j].features[1], 0.5f * (float)j));
        cr_expect(eq(u32, got->items[j].n_clicks, j == 1 ? 2u : 0u));
    }
    cr_expect(eq(str, (char *)got->items[2].doc_id, "d2"));
    cr_assert(eq(int, causal_log_reader_next(r, &got, &err), 1), "%s", err.msg);
    cr_expect(eq(u64, got->id, id1));
    cr_expect(isnan(got->log_prob));
    cr_expect(got->qid == NULL);
    cr_assert(eq(sz, got->n_items, 2));
    cr_expect(eq(u32, got->items[0].n_clicks, 0)); /* dwell is not a click */
    cr_expect(eq(int, causal_log_reader_next(r, &got, &err), 0));
    causal_log_reader_free(r);

    causal_event_reader *er = NULL;
    cr_assert(eq(int, causal_event_reader_new(log, &er, &err), CW_OK));
    const causal_event *e;
    cr_assert(eq(int, causal_event_reader_next(er, &e, &err), 1));
    cr_expect(e->client_id == NULL);
    cr_assert(eq(int, causal_event_reader_next(er, &e, &err), 1));
    cr_expect(eq(str, (char *)e->client_id, "c2"));
    cr_assert(eq(int, causal_event_reader_next(er, &e, &err), 1));
    cr_expect(eq(int, e->type, CAUSAL_EVENT_DWELL));
    cr_expect(eq(i64, e->value_ms, 30000));
    cr_expect(eq(int, causal_event_reader_next(er, &e, &err), 0));
    causal_event_reader_free(er);
    causal_log_close(log);
}

Test(causal_logstore, ids_never_repeat_across_reopen)
{
    uint64_t last = 0;
    for (int round = 0; round < 3; round++) {
        causal_log *log = open_log();
        for (int i = 0; i < 5; i++) {
            uint64_t id = causal_log_next_id(log);
            cr_assert(gt(u64, id, last));
            last = id;
        }
        /* Nothing written: the boot counter alone guarantees uniqueness. */
        causal_log_close(log);
    }
    cr_expect(lt(u64, last, (uint64_t)1 << 53));
}

Test(causal_logstore, refuses_a_schema_newer_than_the_binary)
{
    causal_log_close(open_log());
    exec_on_file("PRAGMA user_version=99");
    causal_log *log = NULL;
    cw_err err;
    cr_assert(eq(int, causal_log_open(dbpath, NULL, &log, &err), CW_EINVAL));
    cr_expect(strstr(err.msg, "schema version 99 is newer than this causeway supports (2)") != NULL,
              "%s", err.msg);
    cr_expect(log == NULL);
}

Test(causal_logstore, refuses_foreign_databases_and_non_sqlite_files)
{
    exec_on_file("CREATE TABLE t(x)");
    causal_log *log = NULL;
    cw_err err;
    cr_expect(eq(int, causal_log_open(dbpath, NULL, &log, &err), CW_EINVAL));
    cr_expect(strstr(err.msg, "not a causeway log") != NULL, "%s", err.msg);

    char junk[128];
    snprintf(junk, sizeof junk, "%s/junk.db", tmpdir);
    FILE *f = fopen(junk, "w");
    cr_assert(f != NULL);
    for (int i = 0; i < 200; i++) {
        fputs("this is not a database file at all. ", f);
    }
    fclose(f);
    cr_expect(eq(int, causal_log_open(junk, NULL, &log, &err), CW_ECORRUPT), "%s", err.msg);

    causal_log_opts ro = causal_log_opts_default();
    ro.read_only = true;
    snprintf(junk, sizeof junk, "%s/missing.db", tmpdir);
    cr_expect(eq(int, causal_log_open(junk, &ro, &log, &err), CW_ENOTFOUND));

    /* QA regression: an empty file read-only was "log schema version 0 needs migrating
     * to 2: open it once read-write", advice that would turn any file into a log. */
    snprintf(junk, sizeof junk, "%s/empty.db", tmpdir);
    f = fopen(junk, "w");
    cr_assert(f != NULL);
    fclose(f);
    cr_expect(eq(int, causal_log_open(junk, &ro, &log, &err), CW_EINVAL));
    char want[256];
    snprintf(want, sizeof want, "%s: not a causeway log (an empty database)", junk);
    cr_expect(eq(str, err.msg, want));
}

Test(causal_logstore, event_batch_is_all_or_nothing_and_lists_every_offender)
{
    causal_log *log = open_log();
    cw_err err;
    causal_item items[3];
    float feat[3][3];
    uint64_t id = causal_log_next_id(log);
    causal_impression imp = make_imp(id, "bm25", 1, items, feat, 3, 0);
    cr_assert(eq(int, causal_log_append_impressions(log, &imp, 1, &err), CW_OK));
    causal_event ev[5] = {
        {id, "d0", 1, CAUSAL_EVENT_CLICK, 5, -1, NULL},        /* fine */
        {id + 1000, "d0", 1, CAUSAL_EVENT_CLICK, 5, -1, NULL}, /* unknown impression */
        {id, "d9", 1, CAUSAL_EVENT_CLICK, 5, -1, NULL},        /* not shown */
        {id, "d2", 1, CAUSAL_EVENT_CLICK, 5, -1, NULL},        /* shown at 3, not 1 */
        {id, "d2", 3, CAUSAL_EVENT_DWELL, 5, -1, NULL},        /* dwell without value */
    };
    causal_event_reject rj[5];
    size_t n_rj = 0;
    cr_assert(eq(int, causal_log_append_events(log, ev, 5, rj, &n_rj, NULL, &err), CW_EINVAL));
    cr_assert(eq(sz, n_rj, 4));
    cr_expect(eq(sz, rj[0].index, 1));
    cr_expect(eq(int, rj[0].code, CW_ENOTFOUND));
    cr_expect(strstr(rj[0].reason, "unknown impression") != NULL, "%s", rj[0].reason);
    cr_expect(eq(sz, rj[1].index, 2));
    cr_expect(strstr(rj[1].reason, "did not show doc \"d9\"") != NULL, "%s", rj[1].reason);
    cr_expect(eq(sz, rj[2].index, 3));
    cr_expect(strstr(rj[2].reason, "another position") != NULL, "%s", rj[2].reason);
    cr_expect(eq(sz, rj[3].index, 4));
    cr_expect(strstr(err.msg, "4 of 5 events rejected") != NULL, "%s", err.msg);
    causal_log_counts c;
    cr_assert(eq(int, causal_log_count(log, &c, &err), CW_OK));
    cr_expect(eq(u64, c.n_events, 0)); /* the valid first event was not written either */
    causal_log_close(log);
}

Test(causal_logstore, client_event_ids_make_retries_idempotent)
{
    causal_log *log = open_log();
    cw_err err;
    causal_item items[2];
    float feat[2][3];
    uint64_t id = causal_log_next_id(log);
    causal_impression imp = make_imp(id, "bm25", 1, items, feat, 2, 0);
    cr_assert(eq(int, causal_log_append_impressions(log, &imp, 1, &err), CW_OK));
    causal_event ev[2] = {{id, "d0", 1, CAUSAL_EVENT_CLICK, 5, -1, "a"},
                          {id, "d1", 2, CAUSAL_EVENT_VIEW, 5, -1, "b"}};
    causal_event_reject rj[2];
    size_t n_rj, n_dup;
    for (int retry = 0; retry < 3; retry++) {
        cr_assert(eq(int, causal_log_append_events(log, ev, 2, rj, &n_rj, &n_dup, &err), CW_OK));
        cr_expect(eq(sz, n_dup, retry == 0 ? 0u : 2u));
    }
    causal_log_counts c;
    cr_assert(eq(int, causal_log_count(log, &c, &err), CW_OK));
    cr_expect(eq(u64, c.n_events, 2));
    causal_log_close(log);
}

Test(causal_logstore, savepoints_keep_good_appends_when_one_fails_inside_a_transaction)
{
    causal_log *log = open_log();
    cw_err err;
    causal_item items[2][2];
    float feat[2][2][3];
    uint64_t a = causal_log_next_id(log);
    causal_impression ia = make_imp(a, "bm25", 1, items[0], feat[0], 2, 0);
    causal_impression dup = make_imp(a, "bm25", 1, items[1], feat[1], 2, 0);
    cr_assert(eq(int, causal_log_begin(log, &err), CW_OK));
    cr_assert(eq(int, causal_log_append_impressions(log, &ia, 1, &err), CW_OK));
    cr_expect(eq(int, causal_log_append_impressions(log, &dup, 1, &err), CW_EINVAL));
    cr_expect(strstr(err.msg, "already logged") != NULL, "%s", err.msg);
    cr_assert(eq(int, causal_log_commit(log, &err), CW_OK));
    causal_log_counts c;
    cr_assert(eq(int, causal_log_count(log, &c, &err), CW_OK));
    cr_expect(eq(u64, c.n_impressions, 1));
    cr_expect(eq(u64, c.n_items, 2));
    cr_expect(eq(int, causal_log_commit(log, &err), CW_EINVAL));
    causal_log_close(log);
}

Test(causal_logstore, rejects_bad_impressions_with_the_offending_field)
{
    causal_log *log = open_log();
    cw_err err;
    causal_item items[2];
    float feat[2][3];
    causal_impression imp = make_imp(causal_log_next_id(log), "bm25", 1, items, feat, 2, 0);
    imp.policy = NULL;
    cr_expect(eq(int, causal_log_append_impressions(log, &imp, 1, &err), CW_EINVAL));
    cr_expect(strstr(err.msg, "policy is missing") != NULL, "%s", err.msg);
    imp.policy = "bm25";
    items[1].position = 1;
    cr_expect(eq(int, causal_log_append_impressions(log, &imp, 1, &err), CW_EINVAL));
    cr_expect(strstr(err.msg, "position 1 shown twice") != NULL, "%s", err.msg);
    items[1].position = 2;
    items[1].propensity = 1.5;
    cr_expect(eq(int, causal_log_append_impressions(log, &imp, 1, &err), CW_EINVAL));
    cr_expect(strstr(err.msg, "outside [0, 1]") != NULL, "%s", err.msg);
    items[1].propensity = 0.5;
    cr_assert(eq(int, causal_log_append_impressions(log, &imp, 1, &err), CW_OK), "%s", err.msg);
    const char *other[] = {"x", "y", "z"};
    imp.id = causal_log_next_id(log);
    imp.feature_names = other;
    cr_expect(eq(int, causal_log_append_impressions(log, &imp, 1, &err), CW_EINVAL));
    cr_expect(strstr(err.msg, "other feature names") != NULL, "%s", err.msg);
    causal_log_close(log);
}

Test(causal_logstore, reader_filters_by_policy_and_time_range)
{
    causal_log *log = open_log();
    cw_err err;
    causal_item items[10][2];
    float feat[10][2][3];
    causal_impression imps[10];
    for (int i = 0; i < 10; i++) {
        imps[i] = make_imp(causal_log_next_id(log), i % 2 ? "pl" : "bm25", 100 * i, items[i],
                           feat[i], 2, i);
    }
    cr_assert(eq(int, causal_log_append_impressions(log, imps, 10, &err), CW_OK), "%s", err.msg);
    causal_log_filter f = causal_log_filter_all();
    f.policy = "pl";
    f.ts_from_ms = 200;
    f.ts_to_ms = 700;
    causal_log_reader *r = NULL;
    cr_assert(eq(int, causal_log_reader_new(log, &f, &r, &err), CW_OK));
    const causal_impression *got;
    int want[] = {3, 5}, n = 0;
    while (causal_log_reader_next(r, &got, &err) == 1) {
        cr_assert(lt(int, n, 2));
        cr_expect(eq(u64, got->id, imps[want[n]].id));
        cr_expect(eq(sz, got->n_items, 2));
        char d[8];
        snprintf(d, sizeof d, "d%d", want[n]);
        cr_expect(eq(str, (char *)got->items[0].doc_id, d));
        n++;
    }
    cr_expect(eq(int, n, 2));
    causal_log_reader_free(r);
    causal_log_close(log);
}

Test(causal_logstore, event_type_names_parse_back)
{
    for (int t = 0; t < CAUSAL_N_EVENT_TYPES; t++) {
        causal_event_type back;
        cr_assert(eq(int, causal_event_type_parse(causal_event_type_name(t), &back, NULL), CW_OK));
        cr_expect(eq(int, (int)back, t));
    }
    cw_err err;
    causal_event_type x;
    cr_expect(eq(int, causal_event_type_parse("purchase", &x, &err), CW_EINVAL));
    cr_expect(strstr(err.msg, "unknown event type \"purchase\"") != NULL, "%s", err.msg);
}

Test(causal_logstore, an_impression_logged_after_a_rejected_event_accepts_its_events)
{
    causal_log *log = open_log();
    cw_err err;
    causal_item items[2];
    float feat[2][3];
    uint64_t id = causal_log_next_id(log);
    causal_event ev = {id, "d0", 1, CAUSAL_EVENT_CLICK, 5, -1, NULL};
    causal_event_reject rj[1];
    size_t n_rj = 0;
    /* The event arrives before its impression: rejected as unknown ... */
    cr_assert(eq(int, causal_log_append_events(log, &ev, 1, rj, &n_rj, NULL, &err), CW_EINVAL));
    cr_expect(strstr(rj[0].reason, "unknown impression") != NULL, "%s", rj[0].reason);
    /* ... and accepted once the impression is logged (no stale validation cache). */
    causal_impression imp = make_imp(id, "bm25", 1, items, feat, 2, 0);
    cr_assert(eq(int, causal_log_append_impressions(log, &imp, 1, &err), CW_OK), "%s", err.msg);
    cr_expect(eq(int, causal_log_append_events(log, &ev, 1, rj, &n_rj, NULL, &err), CW_OK), "%s",
              err.msg);
    causal_log_close(log);
}

/* Schema 1 as shipped (causal/logstore.c migration 0 -> 1), to build old logs. Copied on
 * purpose rather than taken from logstore.c: a change to the shipped migration must make
 * this test fail, not silently change the old log it migrates. */
static const char v1_schema[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
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
    " ('created_ms', 0);"
    "PRAGMA user_version=1;";

/* Scores that stress the exact [mantissa, exponent] encoding of schema 2. */
static const double hard_scores[] = {
    0.1, -3.5, 1e-310 /* subnormal */, 5e-324, 1.7976931348623157e308, 12.345678901234567,
    1.0, 0.0};

/* Reads every row of the `items` view (schema 2) or table (schema 1) of dbpath. */
static void expect_items_rows(sqlite3 *db, int64_t id, size_t n, const double *scores)
{
    sqlite3_stmt *st = NULL;
    cr_assert(
        eq(int,
           sqlite3_prepare_v2(db,
                              "SELECT position, doc_id, score, propensity, features FROM items"
                              " WHERE impression_id = ? ORDER BY position",
                              -1, &st, NULL),
           SQLITE_OK),
        "%s", sqlite3_errmsg(db));
    sqlite3_bind_int64(st, 1, id);
    for (size_t j = 0; j < n; j++) {
        cr_assert(eq(int, sqlite3_step(st), SQLITE_ROW), "%s", sqlite3_errmsg(db));
        char doc[16];
        snprintf(doc, sizeof doc, "d%zu", j);
        cr_expect(eq(i64, sqlite3_column_int64(st, 0), (int64_t)(j + 1)));
        cr_expect(eq(str, (char *)sqlite3_column_text(st, 1), doc));
        cr_expect(eq(dbl, sqlite3_column_double(st, 2), scores[j]), "item %zu", j);
        if (j == 1) {
            cr_expect(eq(int, sqlite3_column_type(st, 3), SQLITE_NULL));
            cr_expect(eq(int, sqlite3_column_type(st, 4), SQLITE_NULL));
        } else {
            cr_expect(eq(dbl, sqlite3_column_double(st, 3), 1.0 / (double)(j + 1)));
            cr_assert(eq(int, sqlite3_column_bytes(st, 4), 8));
            const float *f = sqlite3_column_blob(st, 4);
            cr_expect(eq(flt, f[0], (float)j));
            cr_expect(eq(flt, f[1], -0.25f));
        }
    }
    cr_expect(eq(int, sqlite3_step(st), SQLITE_DONE));
    sqlite3_finalize(st);
}

/* The reader's view of impression `got` written with hard_scores. */
static void expect_read_back(const causal_impression *got, size_t n)
{
    cr_assert(eq(sz, got->n_items, n));
    for (size_t j = 0; j < n; j++) {
        char doc[16];
        snprintf(doc, sizeof doc, "d%zu", j);
        cr_expect(eq(str, (char *)got->items[j].doc_id, doc));
        cr_expect(eq(u32, got->items[j].position, (uint32_t)(j + 1)));
        cr_expect(eq(dbl, got->items[j].score, hard_scores[j]), "item %zu", j);
        if (j == 1) {
            cr_expect(isnan(got->items[j].propensity));
            cr_expect(got->items[j].features == NULL);
        } else {
            cr_expect(eq(dbl, got->items[j].propensity, 1.0 / (double)(j + 1)));
            cr_assert(got->items[j].features != NULL);
            cr_expect(eq(flt, got->items[j].features[0], (float)j));
            cr_expect(eq(flt, got->items[j].features[1], -0.25f));
        }
    }
}

Test(causal_logstore, migrates_schema_1_items_rows_into_the_impression_row_exactly)
{
    size_t n = CW_ARRAY_LEN(hard_scores);
    sqlite3 *db;
    cr_assert(eq(int, sqlite3_open(dbpath, &db), SQLITE_OK));
    cr_assert(eq(int, sqlite3_exec(db, v1_schema, NULL, NULL, NULL), SQLITE_OK), "%s",
              sqlite3_errmsg(db));
    cr_assert(
        eq(int,
           sqlite3_exec(db,
                        "INSERT INTO policies VALUES(1, 'bm25', '', 'ix');"
                        "INSERT INTO feature_sets VALUES(1, 'fs2', 2, 'a\nb');"
                        "INSERT INTO impressions VALUES(7, 100, 'q \"quoted\"', NULL, 1, NULL,"
                        " 0, NULL, NULL, 1, 8);"
                        "INSERT INTO impressions VALUES(9, 200, 'empty', 'q9', 1, -0.5, 0,"
                        " NULL, NULL, NULL, 0);"
                        "INSERT INTO events VALUES(1, 7, 'd2', 3, 'click', 150, NULL, 'c1');",
                        NULL, NULL, NULL),
           SQLITE_OK),
        "%s", sqlite3_errmsg(db));
    sqlite3_stmt *st = NULL;
    cr_assert(
        eq(int, sqlite3_prepare_v2(db, "INSERT INTO items VALUES(7, ?, ?, ?, ?, ?)", -1, &st, NULL),
           SQLITE_OK));
    /* Inserted in reverse position order: the migration must sort by position. */
    for (size_t jj = n; jj-- > 0;) {
        char doc[16];
        snprintf(doc, sizeof doc, "d%zu", jj);
        float f[2] = {(float)jj, -0.25f};
        sqlite3_bind_int64(st, 1, (int64_t)(jj + 1));
        sqlite3_bind_text(st, 2, doc, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(st, 3, hard_scores[jj]);
        if (jj != 1) {
            sqlite3_bind_double(st, 4, 1.0 / (double)(jj + 1));
            sqlite3_bind_blob(st, 5, f, sizeof f, SQLITE_TRANSIENT);
        }
        cr_assert(eq(int, sqlite3_step(st), SQLITE_DONE));
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    sqlite3_finalize(st);
    expect_items_rows(db, 7, n, hard_scores); /* the schema-1 table itself */
    sqlite3_close(db);

    /* Read-only, schema 1 is read as it is (no migration without write access). */
    causal_log_opts ro = causal_log_opts_default();
    ro.read_only = true;
    causal_log *log = NULL;
    cw_err err;
    cr_assert(eq(int, causal_log_open(dbpath, &ro, &log, &err), CW_OK), "%s", err.msg);
    causal_log_reader *r = NULL;
    cr_assert(eq(int, causal_log_reader_new(log, NULL, &r, &err), CW_OK), "%s", err.msg);
    const causal_impression *got;
    cr_assert(eq(int, causal_log_reader_next(r, &got, &err), 1), "%s", err.msg);
    cr_expect(eq(u64, got->id, 7));
    expect_read_back(got, n);
    cr_expect(eq(u32, got->items[2].n_clicks, 1));
    cr_assert(eq(int, causal_log_reader_next(r, &got, &err), 1), "%s", err.msg);
    cr_expect(eq(sz, got->n_items, 0));
    cr_expect(eq(int, causal_log_reader_next(r, &got, &err), 0));
    causal_log_reader_free(r);
    causal_log_counts c;
    cr_assert(eq(int, causal_log_count(log, &c, &err), CW_OK), "%s", err.msg);
    cr_expect(eq(u64, c.n_items, n));
    causal_log_close(log);

    log = open_log(); /* migrates */
    r = NULL;
    cr_assert(eq(int, causal_log_reader_new(log, NULL, &r, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(int, causal_log_reader_next(r, &got, &err), 1), "%s", err.msg);
    cr_expect(eq(u64, got->id, 7));
    cr_expect(eq(str, (char *)got->query, "q \"quoted\""));
    cr_expect(eq(str, (char *)got->feature_set, "fs2"));
    expect_read_back(got, n);
    cr_expect(eq(u32, got->items[2].n_clicks, 1));
    cr_assert(eq(int, causal_log_reader_next(r, &got, &err), 1), "%s", err.msg);
    cr_expect(eq(u64, got->id, 9));
    cr_expect(eq(sz, got->n_items, 0));
    cr_expect(eq(int, causal_log_reader_next(r, &got, &err), 0));
    causal_log_reader_free(r);
    cr_assert(eq(int, causal_log_count(log, &c, &err), CW_OK), "%s", err.msg);
    cr_expect(eq(u64, c.n_items, n));
    /* Events still validate against the migrated shown list. */
    causal_event ev[2] = {{7, "d2", 3, CAUSAL_EVENT_CLICK, 160, -1, NULL},
                          {7, "d2", 4, CAUSAL_EVENT_CLICK, 160, -1, NULL}};
    causal_event_reject rj[2];
    size_t n_rj = 0;
    cr_expect(eq(int, causal_log_append_events(log, ev, 1, rj, &n_rj, NULL, &err), CW_OK), "%s",
              err.msg);
    cr_expect(eq(int, causal_log_append_events(log, ev + 1, 1, rj, &n_rj, NULL, &err), CW_EINVAL));
    causal_log_close(log);

    cr_assert(eq(int, sqlite3_open(dbpath, &db), SQLITE_OK));
    expect_items_rows(db, 7, n, hard_scores); /* the view gives the old rows back */
    sqlite3_stmt *v = NULL;
    cr_assert(eq(int, sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &v, NULL), SQLITE_OK));
    cr_assert(eq(int, sqlite3_step(v), SQLITE_ROW));
    cr_expect(eq(int, sqlite3_column_int(v, 0), CAUSAL_LOG_SCHEMA_VERSION));
    sqlite3_finalize(v);
    sqlite3_close(db);
}

Test(causal_logstore, shown_list_stores_doubles_and_odd_doc_ids_exactly)
{
    size_t n = CW_ARRAY_LEN(hard_scores);
    causal_log *log = open_log();
    cw_err err;
    causal_item items[CW_ARRAY_LEN(hard_scores)];
    float feat[CW_ARRAY_LEN(hard_scores)][2];
    char docs[CW_ARRAY_LEN(hard_scores)][16];
    static const char *const names2[] = {"a", "b"};
    for (size_t j = 0; j < n; j++) {
        snprintf(docs[j], sizeof docs[j], "d%zu", j);
        feat[j][0] = (float)j;
        feat[j][1] = -0.25f;
        /* Out of position order on purpose: the reader returns position order. */
        items[n - 1 - j] = (causal_item){.doc_id = docs[j],
                                         .position = (uint32_t)(j + 1),
                                         .score = hard_scores[j],
                                         .propensity = j == 1 ? NAN : 1.0 / (double)(j + 1),
                                         .features = j == 1 ? NULL : feat[j]};
    }
    causal_impression imp = {.id = causal_log_next_id(log),
                             .ts_ms = 5,
                             .query = "q",
                             .policy = "bm25",
                             .log_prob = NAN,
                             .temperature = NAN,
                             .feature_set = "fs2",
                             .feature_names = names2,
                             .n_features = 2,
                             .n_items = n,
                             .items = items};
    cr_assert(eq(int, causal_log_append_impressions(log, &imp, 1, &err), CW_OK), "%s", err.msg);
    /* A doc id needing JSON escapes, and one that is not UTF-8. */
    causal_item odd[2] = {
        {.doc_id = "a\"b\\c\n\x01\xc3\xa9", .position = 1, .score = NAN, .propensity = NAN},
        {.doc_id = "bad\xff", .position = 2, .score = 1, .propensity = 1}};
    causal_impression imp2 = {.id = causal_log_next_id(log),
                              .ts_ms = 6,
                              .query = "q2",
                              .policy = "bm25",
                              .log_prob = NAN,
                              .temperature = NAN,
                              .n_items = 2,
                              .items = odd};
    cr_expect(eq(int, causal_log_append_impressions(log, &imp2, 1, &err), CW_EINVAL));
    cr_expect(strstr(err.msg, "item 1: doc_id is not UTF-8 (byte 3)") != NULL, "%s", err.msg);
    imp2.n_items = 1;
    cr_assert(eq(int, causal_log_append_impressions(log, &imp2, 1, &err), CW_OK), "%s", err.msg);

    causal_log_reader *r = NULL;
    cr_assert(eq(int, causal_log_reader_new(log, NULL, &r, &err), CW_OK), "%s", err.msg);
    const causal_impression *got;
    cr_assert(eq(int, causal_log_reader_next(r, &got, &err), 1), "%s", err.msg);
    expect_read_back(got, n);
    cr_assert(eq(int, causal_log_reader_next(r, &got, &err), 1), "%s", err.msg);
    cr_assert(eq(sz, got->n_items, 1));
    cr_expect(eq(str, (char *)got->items[0].doc_id, "a\"b\\c\n\x01\xc3\xa9"));
    cr_expect(isnan(got->items[0].score));
    causal_log_reader_free(r);
    causal_event ev = {imp2.id, "a\"b\\c\n\x01\xc3\xa9", 1, CAUSAL_EVENT_CLICK, 7, -1, NULL};
    causal_event_reject rj[1];
    size_t n_rj = 0;
    cr_expect(eq(int, causal_log_append_events(log, &ev, 1, rj, &n_rj, NULL, &err), CW_OK), "%s",
              err.msg);
    causal_log_close(log);

    sqlite3 *db;
    cr_assert(eq(int, sqlite3_open(dbpath, &db), SQLITE_OK));
    expect_items_rows(db, (int64_t)imp.id, n, hard_scores);
    sqlite3_close(db);
}

Test(causal_logstore, a_corrupt_shown_list_is_reported_with_its_impression)
{
    causal_log *log = open_log();
    cw_err err;
    causal_item items[2];
    float feat[2][3];
    causal_impression imp = make_imp(causal_log_next_id(log), "bm25", 1, items, feat, 2, 0);
    cr_assert(eq(int, causal_log_append_impressions(log, &imp, 1, &err), CW_OK), "%s", err.msg);
    causal_log_close(log);
    exec_on_file("UPDATE impressions SET shown = '[[1,\"d0\",null]]', shown_features = NULL");
    log = open_log();
    causal_log_reader *r = NULL;
    cr_assert(eq(int, causal_log_reader_new(log, NULL, &r, &err), CW_OK), "%s", err.msg);
    const causal_impression *got;
    cr_expect(eq(int, causal_log_reader_next(r, &got, &err), CW_ECORRUPT));
    char want[96];
    snprintf(want, sizeof want, "impression %" PRIu64 ": shown item 0 is not", imp.id);
    cr_expect(strstr(err.msg, want) != NULL, "%s", err.msg);
    causal_log_reader_free(r);
    causal_log_close(log);
}
