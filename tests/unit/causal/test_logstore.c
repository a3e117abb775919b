/* Tests of causal/logstore.c: round trips through the reader, id uniqueness across
 * reopen, schema versions, all-or-nothing event batches, idempotent retries, filters. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
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
    sqlite3 *db;
    cr_assert(eq(int, sqlite3_open(dbpath, &db), SQLITE_OK));
    cr_assert(eq(int, sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK));
    sqlite3_close(db);
    causal_log *log = NULL;
    cw_err err;
    cr_assert(eq(int, causal_log_open(dbpath, NULL, &log, &err), CW_EINVAL));
    cr_expect(strstr(err.msg, "schema version 99 is newer than this causeway supports (1)") != NULL,
              "%s", err.msg);
    cr_expect(log == NULL);
}

Test(causal_logstore, refuses_foreign_databases_and_non_sqlite_files)
{
    sqlite3 *db;
    cr_assert(eq(int, sqlite3_open(dbpath, &db), SQLITE_OK));
    cr_assert(eq(int, sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK));
    sqlite3_close(db);
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
