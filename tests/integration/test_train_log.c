/* tests/integration/test_train_log.c: `causeway train --db` reads the log in one pass
 * (cli/cmd_train.c read_log) where it used to read it three or four times: its model is
 * deterministic, trains on the feature vector a pair was LAST served with (earlier vectors
 * change nothing), and the sessions it builds are the log loader's (its propensity fit
 * equals `causeway propensity fit` on the same log). */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "causal/causal.h"
#include "common/cw.h"
#include "tests/integration/harness.h"

/* `causeway simulate` into dir/name with the given policy (seeded, so equal calls give
 * equal logs). */
static void simulate(const char *dir, const char *name, const char *policy, const char *k,
                     char *path, size_t size)
{
    snprintf(path, size, "%s/%s", dir, name);
    char *a[] = {(char *)th_bin(), "simulate",     "--synthetic", "40,12",
                 "--policy",       (char *)policy, "--k",         (char *)k,
                 "--sessions",     "1500",         "--seed",      "7",
                 "--quiet",        "--out",        path,          NULL};
    cr_assert(eq(int, th_run(a, "/dev/null", "/dev/null"), 0), "causeway simulate failed");
}

/* Trains an IPS linear model on db into out (fixed seeds); stderr to errp. */
static void train(const char *db, const char *prop, const char *out, const char *errp)
{
    char *a[] = {(char *)th_bin(), "train",     "--db", (char *)db, "--propensity",
                 (char *)prop,     "--seed",    "3",    "--epochs", "4",
                 "--out",          (char *)out, NULL};
    cr_assert(eq(int, th_run(a, "/dev/null", errp), 0), "causeway train --db %s failed", db);
}

static bool same_file(const char *a, const char *b)
{
    char *da = NULL, *db = NULL;
    size_t na = 0, nb = 0;
    cr_assert(eq(int, cw_file_read(a, 1 << 20, &da, &na, NULL), CW_OK), "%s", a);
    cr_assert(eq(int, cw_file_read(b, 1 << 20, &db, &nb, NULL), CW_OK), "%s", b);
    bool same = na == nb && memcmp(da, db, na) == 0;
    free(da);
    free(db);
    return same;
}

/* Replaces the feature vectors of impression `which` ("min" or "max" id) by those of the
 * latest impression of another query (same width: every simulated page shows k items). */
static void swap_vectors(const char *db, const char *which)
{
    sqlite3 *s = NULL;
    cr_assert(eq(int, sqlite3_open(db, &s), SQLITE_OK));
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE impressions SET shown_features = (SELECT o.shown_features FROM impressions o"
             " WHERE o.qid != impressions.qid ORDER BY o.id DESC LIMIT 1)"
             " WHERE id = (SELECT %s(id) FROM impressions)",
             which);
    cr_assert(eq(int, sqlite3_exec(s, sql, NULL, NULL, NULL), SQLITE_OK), "%s", sqlite3_errmsg(s));
    cr_assert(eq(int, sqlite3_changes(s), 1));
    sqlite3_close(s);
}

Test(train_log, model_trains_on_the_vector_a_pair_was_last_served_with)
{
    char dir[256], base[300], first[300], last[300], prop[300];
    char m_base[300], m_again[300], m_first[300], m_last[300], errp[300];
    th_tmpdir(dir, sizeof dir, "train_log");
    /* Deterministic pages: every query shows the same top 5 in each of its ~37 sessions,
     * so the pairs of the first impression are served again later. */
    simulate(dir, "base.db", "deterministic", "5", base, sizeof base);
    simulate(dir, "first.db", "deterministic", "5", first, sizeof first);
    simulate(dir, "last.db", "deterministic", "5", last, sizeof last);
    swap_vectors(first, "min");
    swap_vectors(last, "max");
    snprintf(prop, sizeof prop, "%s/prop.json", dir);
    FILE *f = fopen(prop, "w");
    cr_assert(f != NULL);
    fputs("[1, 0.7, 0.5, 0.4, 0.3]\n", f);
    fclose(f);
    snprintf(errp, sizeof errp, "%s/stderr", dir);
    snprintf(m_base, sizeof m_base, "%s/base.json", dir);
    snprintf(m_again, sizeof m_again, "%s/again.json", dir);
    snprintf(m_first, sizeof m_first, "%s/first.json", dir);
    snprintf(m_last, sizeof m_last, "%s/last.json", dir);
    train(base, prop, m_base, errp);
    train(base, prop, m_again, errp);
    train(first, prop, m_first, errp);
    train(last, prop, m_last, errp);
    cr_expect(same_file(m_base, m_again), "two runs with the same seeds differ");
    cr_expect(same_file(m_base, m_first),
              "other vectors on a pair's first impression changed the model: train must use "
              "the vector each pair was last served with");
    cr_expect(not(same_file(m_base, m_last)),
              "other vectors on the last impression changed nothing: were they read?");
    th_rmtree(dir);
}

/* The first line of path starting with prefix, copied into line[size]. */
static void grep_line(const char *path, const char *prefix, char *line, size_t size)
{
    FILE *f = fopen(path, "r");
    cr_assert(f != NULL, "cannot read %s", path);
    bool found = false;
    while (!found && fgets(line, (int)size, f)) {
        found = strncmp(line, prefix, strlen(prefix)) == 0;
    }
    fclose(f);
    cr_assert(found, "%s has no line starting \"%s\"", path, prefix);
}

/* train --propensity randomization fits theta on the sessions its own reader built;
 * `causeway propensity fit` fits on causal_sessions_load_log's. The same ratios (to the
 * 3 decimals train prints) mean both classified the RandTop / swap pages alike. */
static void fits_agree(const char *policy, const char *rename_sql)
{
    char dir[256], db[300], fit[300], model[300], errp[300], line[1024];
    th_tmpdir(dir, sizeof dir, "train_log_fit");
    simulate(dir, "log.db", policy, "10", db, sizeof db);
    if (rename_sql) {
        sqlite3 *s = NULL;
        cr_assert(eq(int, sqlite3_open(db, &s), SQLITE_OK));
        cr_assert(eq(int, sqlite3_exec(s, rename_sql, NULL, NULL, NULL), SQLITE_OK), "%s",
                  sqlite3_errmsg(s));
        cr_assert(eq(int, sqlite3_changes(s), 1));
        sqlite3_close(s);
    }
    snprintf(fit, sizeof fit, "%s/fit.json", dir);
    snprintf(model, sizeof model, "%s/m.json", dir);
    snprintf(errp, sizeof errp, "%s/stderr", dir);
    char *pa[] = {(char *)th_bin(), "propensity",  "fit", "--db",  db,  "--method",
                  "randomization",  "--bootstrap", "0",   "--out", fit, NULL};
    cr_assert(eq(int, th_run(pa, "/dev/null", "/dev/null"), 0), "causeway propensity failed");
    char *ta[] = {(char *)th_bin(), "train",      "--db", db,         "--propensity",
                  "randomization",  "--max-rank", "10",   "--epochs", "1",
                  "--out",          model,        NULL};
    cr_assert(eq(int, th_run(ta, "/dev/null", errp), 0), "causeway train failed");
    double want[CAUSAL_MAX_RANK];
    uint32_t n_want = 0;
    cw_err err;
    cr_assert(
        eq(int, causal_propensity_read_ratios(fit, want, CAUSAL_MAX_RANK, &n_want, &err), CW_OK),
        "%s", err.msg);
    cr_assert(eq(u32, n_want, 10));
    const char *prefix = "causeway train: randomization propensities theta_k/theta_1:";
    grep_line(errp, prefix, line, sizeof line);
    char *p = line + strlen(prefix);
    for (uint32_t k = 0; k < n_want; k++) {
        char *end = NULL;
        double got = strtod(p, &end);
        cr_assert(end != p, "%s: rank %u missing in \"%s\"", policy, k + 1, line);
        p = end;
        cr_expect(le(dbl, fabs(got - want[k]), 0.0005 + 1e-9), "%s: rank %u: train %.3f, fit %.6f",
                  policy, k + 1, got, want[k]);
    }
    th_rmtree(dir);
}

Test(train_log, randtop_sessions_fit_as_the_log_loader_fits_them)
{
    fits_agree("randtop", NULL);
}

Test(train_log, swap_sessions_fit_as_the_log_loader_fits_them)
{
    fits_agree("swap", NULL);
}

/* The server logs a RandTop page as RANKER@DRAW ("bm25@randtop:10"): read as RandTop-10
 * by both (causal_policy_name_ranker). */
Test(train_log, drawn_page_names_fit_as_the_log_loader_fits_them)
{
    fits_agree("randtop", "UPDATE policies SET name = 'bm25@randtop:10' WHERE name = 'randtop-10'");
}
