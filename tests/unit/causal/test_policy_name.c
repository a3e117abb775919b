/* Tests of the logged policy names (causal/sessions.c): "RANKER@DRAW" for pages drawn by a
 * stochastic logging policy, the older "pl" / "randtop-N" names, and what the session
 * loader makes of both in a hand-written log (srvlog review item 1). */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "causal/causal.h"

typedef struct name_case {
    char name[64];
    int rc;
    causal_policy kind;
    uint32_t param;
    bool has_draw;
    causal_rpol_kind draw_kind;
    double draw_value; /* tau (PL), n (RandTop-n) or epsilon (e-greedy) */
    size_t ranker_len;
} name_case;

ParameterizedTestParameters(causal_policy_name, parses_new_old_and_foreign_names)
{
    static name_case cases[] = {
        /* RANKER@DRAW, as the server logs randomised pages */
        {"bm25@pl:0.5", CW_OK, CAUSAL_POLICY_PL, 0, true, CAUSAL_RPOL_PL, 0.5, 4},
        {"hybrid(weighted,w=0.3)@pl:0.30000000000000004", CW_OK, CAUSAL_POLICY_PL, 0, true,
         CAUSAL_RPOL_PL, 0.1 + 0.2, 22},
        {"model+hybrid@randtop:10", CW_OK, CAUSAL_POLICY_RANDTOP, 10, true, CAUSAL_RPOL_RANDTOPN,
         10, 12},
        {"bm25@egreedy:0.1", CW_OK, CAUSAL_POLICY_UNKNOWN, 0, true, CAUSAL_RPOL_EPSGREEDY, 0.1, 4},
        {"bm25@det", CW_OK, CAUSAL_POLICY_DETERMINISTIC, 0, true, CAUSAL_RPOL_DET, 0, 4},
        {"a@b@pl:2", CW_OK, CAUSAL_POLICY_PL, 0, true, CAUSAL_RPOL_PL, 2, 3}, /* last '@' */
        /* older logs and the simulator */
        {"pl", CW_OK, CAUSAL_POLICY_PL, 0, false, CAUSAL_RPOL_DET, 0, 0},
        {"randtop-10", CW_OK, CAUSAL_POLICY_RANDTOP, 10, true, CAUSAL_RPOL_RANDTOPN, 10, 0},
        {"swap", CW_OK, CAUSAL_POLICY_SWAP, 0, false, CAUSAL_RPOL_DET, 0, 0},
        {"deterministic", CW_OK, CAUSAL_POLICY_DETERMINISTIC, 0, false, CAUSAL_RPOL_DET, 0, 0},
        /* deterministic server pages and foreign names */
        {"bm25", CW_OK, CAUSAL_POLICY_UNKNOWN, 0, false, CAUSAL_RPOL_DET, 0, 0},
        {"hybrid(rrf,k=20,w=0.5)", CW_OK, CAUSAL_POLICY_UNKNOWN, 0, false, CAUSAL_RPOL_DET, 0, 0},
        {"egreedy:0.1", CW_OK, CAUSAL_POLICY_UNKNOWN, 0, false, CAUSAL_RPOL_DET, 0, 0},
        {"ranker@v2", CW_OK, CAUSAL_POLICY_UNKNOWN, 0, false, CAUSAL_RPOL_DET, 0, 0},
        {"bm25@", CW_OK, CAUSAL_POLICY_UNKNOWN, 0, false, CAUSAL_RPOL_DET, 0, 0},
        {"randtop-0", CW_OK, CAUSAL_POLICY_UNKNOWN, 0, false, CAUSAL_RPOL_DET, 0, 0},
        {"randtop-+5", CW_OK, CAUSAL_POLICY_UNKNOWN, 0, false, CAUSAL_RPOL_DET, 0, 0},
        {"randtop-5x", CW_OK, CAUSAL_POLICY_UNKNOWN, 0, false, CAUSAL_RPOL_DET, 0, 0},
        {"plx", CW_OK, CAUSAL_POLICY_UNKNOWN, 0, false, CAUSAL_RPOL_DET, 0, 0},
        /* malformed draws: errors, not silently deterministic */
        {"bm25@pl:0", CW_EPARSE, 0, 0, false, 0, 0, 0},
        {"bm25@pl", CW_EPARSE, 0, 0, false, 0, 0, 0},
        {"bm25@pl:abc", CW_EPARSE, 0, 0, false, 0, 0, 0},
        {"bm25@randtop:0", CW_EPARSE, 0, 0, false, 0, 0, 0},
        {"bm25@egreedy:2", CW_EPARSE, 0, 0, false, 0, 0, 0},
        {"@pl:1", CW_EPARSE, 0, 0, false, 0, 0, 0},
        {"", CW_EINVAL, 0, 0, false, 0, 0, 0},
    };
    return cr_make_param_array(name_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(name_case *c, causal_policy_name, parses_new_old_and_foreign_names)
{
    causal_policy_name_info info;
    memset(&info, 0xab, sizeof info);
    cw_err err = {0};
    int rc = causal_policy_name_parse(c->name, &info, &err);
    cr_assert(eq(int, rc, c->rc), "\"%s\": %s", c->name, err.msg);
    if (rc != CW_OK) {
        cr_expect(strstr(err.msg, c->name) != NULL, "message names the input: %s", err.msg);
        return;
    }
    cr_expect(eq(int, (int)info.kind, (int)c->kind), "%s", c->name);
    cr_expect(eq(u32, info.param, c->param), "%s", c->name);
    cr_expect(eq(int, info.has_draw, c->has_draw), "%s", c->name);
    cr_expect(eq(sz, info.ranker_len, c->ranker_len), "%s", c->name);
    if (c->has_draw) {
        cr_expect(eq(int, (int)info.draw.kind, (int)c->draw_kind), "%s", c->name);
        double v = c->draw_kind == CAUSAL_RPOL_PL          ? info.draw.tau
                   : c->draw_kind == CAUSAL_RPOL_RANDTOPN  ? (double)info.draw.top_n
                   : c->draw_kind == CAUSAL_RPOL_EPSGREEDY ? info.draw.epsilon
                                                           : 0;
        cr_expect(eq(dbl, v, c->draw_value), "%s", c->name); /* exact: read back bit for bit */
    }
}

Test(causal_policy_name, error_messages_say_what_is_wrong)
{
    causal_policy_name_info info;
    cw_err err = {0};
    cr_assert(eq(int, causal_policy_name_parse("bm25@pl:0", &info, &err), CW_EPARSE));
    cr_expect(eq(str, err.msg,
                 "policy name \"bm25@pl:0\": policy \"pl:0\": temperature must be a number > 0"));
    cr_assert(eq(int, causal_policy_name_parse("@pl:1", &info, &err), CW_EPARSE));
    cr_expect(eq(str, err.msg, "policy name \"@pl:1\": no ranker before '@'"));
    cr_assert(eq(int, causal_policy_name_parse(NULL, &info, &err), CW_EINVAL));
    cr_expect(eq(str, err.msg, "policy name: empty"));
}

Test(causal_policy_name, format_writes_exact_numbers_that_parse_back)
{
    char buf[128];
    cw_err err = {0};
    causal_rpol pl = {CAUSAL_RPOL_PL, 0.5, 1, 0};
    cr_assert(eq(int, causal_policy_name_format("bm25", &pl, buf, sizeof buf, &err), CW_OK));
    cr_expect(eq(str, buf, "bm25@pl:0.5"));
    causal_rpol rt = {CAUSAL_RPOL_RANDTOPN, 1, 10, 0};
    cr_assert(
        eq(int, causal_policy_name_format("model+hybrid", &rt, buf, sizeof buf, &err), CW_OK));
    cr_expect(eq(str, buf, "model+hybrid@randtop:10"));
    causal_rpol eg = {CAUSAL_RPOL_EPSGREEDY, 1, 1, 0.25};
    cr_assert(eq(int, causal_policy_name_format("hybrid", &eg, buf, sizeof buf, &err), CW_OK));
    cr_expect(eq(str, buf, "hybrid@egreedy:0.25"));
    /* %g would print 0.3 for both: two temperatures, two names */
    pl.tau = 0.1 + 0.2;
    cr_assert(eq(int,
                 causal_policy_name_format("hybrid(weighted,w=0.3)", &pl, buf, sizeof buf, &err),
                 CW_OK));
    cr_expect(eq(str, buf, "hybrid(weighted,w=0.3)@pl:0.30000000000000004"));

    /* Seeded random temperatures and epsilons round-trip bit for bit. */
    cw_rng rng;
    cw_rng_seed(&rng, 20261128);
    for (int i = 0; i < 2000; i++) {
        causal_rpol p = i % 2
                            ? (causal_rpol){CAUSAL_RPOL_PL, exp(8 * cw_rng_uniform(&rng) - 4), 1, 0}
                            : (causal_rpol){CAUSAL_RPOL_EPSGREEDY, 1, 1, cw_rng_uniform(&rng)};
        cr_assert(eq(int, causal_policy_name_format("bm25", &p, buf, sizeof buf, &err), CW_OK));
        causal_policy_name_info info;
        cr_assert(eq(int, causal_policy_name_parse(buf, &info, &err), CW_OK), "%s", err.msg);
        cr_assert(eq(int, (int)info.draw.kind, (int)p.kind), "seed 20261128 draw %d: %s", i, buf);
        cr_assert(eq(dbl, i % 2 ? info.draw.tau : info.draw.epsilon, i % 2 ? p.tau : p.epsilon),
                  "seed 20261128 draw %d: %s", i, buf);
        cr_assert(eq(sz, info.ranker_len, 4));
    }
}

Test(causal_policy_name, format_refuses_bad_rankers_det_and_small_buffers)
{
    char buf[16] = "untouched";
    cw_err err = {0};
    causal_rpol pl = {CAUSAL_RPOL_PL, 0.5, 1, 0};
    cr_expect(eq(int, causal_policy_name_format("", &pl, buf, sizeof buf, &err), CW_EINVAL));
    cr_expect(eq(int, causal_policy_name_format("a@b", &pl, buf, sizeof buf, &err), CW_EINVAL));
    cr_expect(eq(str, err.msg, "policy name: ranker name \"a@b\" empty or with '@'"));
    causal_rpol det = {CAUSAL_RPOL_DET, 1, 1, 0};
    cr_expect(eq(int, causal_policy_name_format("bm25", &det, buf, sizeof buf, &err), CW_EINVAL));
    cr_expect(eq(int,
                 causal_policy_name_format("hybrid(weighted,w=0.3)", &pl, buf, sizeof buf, &err),
                 CW_ELIMIT));
    cr_expect(
        eq(str, err.msg, "policy name \"hybrid(weighted,w=0.3)@pl:0.5\": 29 bytes (limit 15)"));
    cr_expect(eq(str, buf, "untouched"));
    /* one byte too long, then exactly full: 15 bytes and the NUL */
    cr_expect(
        eq(int, causal_policy_name_format("hybrid123", &pl, buf, sizeof buf, &err), CW_ELIMIT));
    cr_expect(eq(str, buf, "untouched"));
    cr_expect(eq(int, causal_policy_name_format("hybrid12", &pl, buf, sizeof buf, &err), CW_OK));
    cr_expect(eq(str, buf, "hybrid12@pl:0.5"));
    /* the contract: a name it writes parses back, so no draw the parser would refuse */
    causal_rpol bad[3] = {
        {CAUSAL_RPOL_PL, NAN, 1, 0}, {CAUSAL_RPOL_PL, -1, 1, 0}, {CAUSAL_RPOL_EPSGREEDY, 1, 1, 0}};
    bad[2].epsilon = 1.5;
    for (int i = 0; i < 3; i++) {
        cr_expect(
            eq(int, causal_policy_name_format("bm25", &bad[i], buf, sizeof buf, &err), CW_EINVAL),
            "draw %d", i);
        cr_expect(eq(str, buf, "hybrid12@pl:0.5"), "draw %d wrote %s", i, buf);
    }
}

Test(causal_policy_name, ranker_keys_separate_drawn_pages_from_their_models)
{
    char key[CAUSAL_RANKER_KEY_BYTES];
    causal_policy_name_info info;
    cw_err err = {0};
    static const struct {
        const char *policy, *model, *key;
    } cases[] = {
        {"bm25", NULL, "bm25"},
        {"model", "0123abcd", "0123abcd"},
        {"pl", "0123abcd", "0123abcd"}, /* an old row: as before */
        {"pl", NULL, "pl"},
        {"bm25@pl:0.5", NULL, "bm25@pl:0.5"},
        {"model@pl:0.5", "0123abcd", "model@pl:0.5 (model 0123abcd)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert(eq(int,
                     causal_policy_name_ranker(cases[i].policy, cases[i].model, &info, key,
                                               sizeof key, &err),
                     CW_OK),
                  "%s", err.msg);
        cr_expect(eq(str, key, (char *)cases[i].key));
    }
    char small[12];
    cr_expect(
        eq(int,
           causal_policy_name_ranker("model@pl:0.5", "0123abcd", &info, small, sizeof small, &err),
           CW_ELIMIT));
    cr_expect(eq(str, err.msg,
                 "policy \"model@pl:0.5\", model version \"0123abcd\": ranker key over 11 bytes"));
    cr_expect(eq(int, causal_policy_name_ranker("bm25@pl:x", NULL, &info, key, sizeof key, &err),
                 CW_EPARSE));
}

/* ---- the session loader on a hand-written log ------------------------------ */

static char tmpdir[64], dbpath[128];

static void setup(void)
{
    strcpy(tmpdir, "/tmp/cw_policy_name_XXXXXX");
    cr_assert(mkdtemp(tmpdir) != NULL);
    snprintf(dbpath, sizeof dbpath, "%s/log.db", tmpdir);
}

static void teardown(void)
{
    cw_err err;
    cr_expect(eq(int, cw_rmtree(tmpdir, &err), CW_OK));
}

/* One impression of query q1 showing d1..d3 with propensities p[0..3). */
static void write_imp(causal_log *lg, const char *policy, const char *model_version,
                      const double p[3])
{
    causal_item items[3];
    static const char *const docs[3] = {"d1", "d2", "d3"};
    for (int j = 0; j < 3; j++) {
        items[j] = (causal_item){
            .doc_id = docs[j], .position = (uint32_t)j + 1, .score = 3.0 - j, .propensity = p[j]};
    }
    causal_impression imp = {.id = causal_log_next_id(lg),
                             .ts_ms = 1000,
                             .query = "white rabbit",
                             .qid = "q1",
                             .policy = policy,
                             .model_version = model_version,
                             .log_prob = log(p[0] * p[1]),
                             .temperature = 0.5,
                             .n_items = 3,
                             .items = items};
    cw_err err;
    cr_assert(eq(int, causal_log_begin(lg, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(int, causal_log_append_impressions(lg, &imp, 1, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(int, causal_log_commit(lg, &err), CW_OK), "%s", err.msg);
}

TestSuite(causal_policy_name_load, .init = setup, .fini = teardown);

Test(causal_policy_name_load, old_and_new_names_load_as_their_policies)
{
    causal_log *log = NULL;
    cw_err err;
    cr_assert(eq(int, causal_log_open(dbpath, NULL, &log, &err), CW_OK), "%s", err.msg);
    static const double p_pl[3] = {0.5, 0.3, 0.2}, p_rt[3] = {0.5, 0.5, 1.0};
    write_imp(log, "pl", NULL, p_pl);                                /* 0: an old server row */
    write_imp(log, "randtop-2", NULL, p_rt);                         /* 1: an old RandTop-2 row */
    write_imp(log, "bm25@pl:0.5", NULL, p_pl);                       /* 2 */
    write_imp(log, "hybrid@pl:0.5", NULL, p_pl);                     /* 3 */
    write_imp(log, "model@pl:0.5", "0123abcd", p_pl);                /* 4 */
    write_imp(log, "model@pl:0.5", "4567ef01", p_pl);                /* 5 */
    write_imp(log, "model+hybrid@randtop:2", "0123abcd", p_rt);      /* 6 */
    write_imp(log, "model", "0123abcd", (const double[3]){1, 1, 1}); /* 7: deterministic */
    write_imp(log, "bm25@pl:0.5", NULL, p_pl);                       /* 8: the ranker of 2 again */
    causal_log_close(log);

    causal_sessions *s = NULL;
    causal_load_stats st;
    cr_assert(eq(int, causal_sessions_load_log(dbpath, 10, &s, &st, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(sz, s->n_sessions, 9));
    static const causal_policy want[9] = {
        CAUSAL_POLICY_PL,      CAUSAL_POLICY_RANDTOP, CAUSAL_POLICY_PL,
        CAUSAL_POLICY_PL,      CAUSAL_POLICY_PL,      CAUSAL_POLICY_PL,
        CAUSAL_POLICY_RANDTOP, CAUSAL_POLICY_UNKNOWN, CAUSAL_POLICY_PL};
    static const uint16_t want_param[9] = {0, 2, 0, 0, 0, 0, 2, 0, 0};
    static const char *const want_ranker[9] = {"pl",
                                               "randtop-2",
                                               "bm25@pl:0.5",
                                               "hybrid@pl:0.5",
                                               "model@pl:0.5 (model 0123abcd)",
                                               "model@pl:0.5 (model 4567ef01)",
                                               "model+hybrid@randtop:2 (model 0123abcd)",
                                               "0123abcd",
                                               "bm25@pl:0.5"};
    for (size_t i = 0; i < 9; i++) {
        cr_expect(eq(u8, s->s_policy[i], (uint8_t)want[i]), "session %zu", i);
        cr_expect(eq(u16, s->s_param[i], want_param[i]), "session %zu", i);
        cr_expect(eq(str, s->ranker_names[s->s_ranker[i]], (char *)want_ranker[i]), "session %zu",
                  i);
        const double *p = want[i] == CAUSAL_POLICY_RANDTOP ? p_rt
                          : want[i] == CAUSAL_POLICY_PL    ? p_pl
                                                           : NULL;
        for (size_t j = 0; p && j < 3; j++) {
            cr_expect(eq(flt, s->i_prop[s->s_begin[i] + j], (float)p[j]), "session %zu item %zu", i,
                      j);
        }
    }
    /* Eight distinct logging policies: 2 and 8 are one. */
    cr_expect(eq(sz, s->n_rankers, 8));
    causal_sessions_free(s);
}

Test(causal_policy_name_load, a_malformed_draw_fails_the_load_naming_the_impression)
{
    causal_log *log = NULL;
    cw_err err;
    cr_assert(eq(int, causal_log_open(dbpath, NULL, &log, &err), CW_OK), "%s", err.msg);
    static const double p[3] = {0.5, 0.3, 0.2};
    write_imp(log, "bm25@pl:0.5", NULL, p);
    write_imp(log, "bm25@pl:-1", NULL, p);
    causal_log_close(log);
    causal_sessions *s = NULL;
    causal_load_stats st;
    cr_assert(eq(int, causal_sessions_load_log(dbpath, 10, &s, &st, &err), CW_EPARSE));
    cr_expect(strstr(err.msg, dbpath) != NULL, "%s", err.msg);
    cr_expect(strstr(err.msg, ": impression 4294967298: policy name \"bm25@pl:-1\": policy "
                              "\"pl:-1\": temperature must be a number > 0") != NULL,
              "%s", err.msg);
    cr_expect(s == NULL);
}
