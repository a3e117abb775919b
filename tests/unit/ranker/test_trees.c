/* Tests of ranker/trees.c: XGBoost and LightGBM JSON dumps scored against hand-traced
 * paths, missing values, Saabas explanations that sum to the score, exact round trips
 * through causeway's "trees" format, and rejected dumps. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ranker/ranker_int.h"

static const char *xgb_dump =
    "[{\"nodeid\":0,\"depth\":0,\"split\":\"f1\",\"split_condition\":0.5,\"yes\":1,\"no\":2,"
    "\"missing\":2,\"children\":[{\"nodeid\":1,\"leaf\":1.0,\"cover\":3},"
    "{\"nodeid\":2,\"leaf\":-1.0,\"cover\":1}]},"
    "{\"nodeid\":0,\"split\":\"f0\",\"split_condition\":2,\"yes\":1,\"no\":2,\"missing\":1,"
    "\"children\":[{\"nodeid\":2,\"leaf\":0.5},{\"nodeid\":1,\"leaf\":0.25}]}]";

static const char *lgb_dump =
    "{\"feature_names\":[\"bm25_title\",\"bm25_text\"],\"tree_info\":[{\"tree_structure\":"
    "{\"split_feature\":1,\"threshold\":0.5,\"decision_type\":\"<=\",\"default_left\":true,"
    "\"missing_type\":\"NaN\",\"internal_value\":0.1,\"left_child\":{\"leaf_value\":2},"
    "\"right_child\":{\"leaf_value\":-2}}}]}";

static rank_model *load(const char *json)
{
    rank_model *m = NULL;
    cw_err err;
    cr_assert(eq(int, rank_model_from_json(json, strlen(json), "dump", &m, &err), CW_OK), "%s",
              err.msg);
    return m;
}

Test(rank_trees, xgboost_dump_follows_x_less_than_condition_and_missing)
{
    rank_model *m = load(xgb_dump);
    cr_assert(eq(int, (int)rank_model_get_kind(m), (int)RANK_MODEL_TREES));
    cr_assert(eq(sz, rank_model_n_features(m), 2));
    cr_expect(eq(str, (char *)rank_model_feature_name(m, 0), "f0"));
    /* (1, .2): .2 < .5 -> 1.0; 1 < 2 -> .25. (2, .5): -1 and .5. NaN: missing branches. */
    double x[] = {1, 0.2, 2, 0.5, NAN, NAN}, s[3];
    cr_assert(eq(int, rank_model_score(m, x, 3, s, NULL), CW_OK));
    cr_expect(eq(dbl, s[0], 1.25));
    cr_expect(eq(dbl, s[1], -0.5));
    cr_expect(eq(dbl, s[2], -0.75));
    /* Saabas: tree 0 root = (3*1 + 1*(-1))/4 = .5, tree 1 root = (.25+.5)/2 = .375. */
    double c[2], bias;
    cr_assert(eq(int, rank_model_explain(m, x, c, &bias, NULL), CW_OK));
    cr_expect(epsilon_eq(dbl, bias, 0.875, 1e-12));
    cr_expect(epsilon_eq(dbl, c[1], 0.5, 1e-12));
    cr_expect(epsilon_eq(dbl, c[0], -0.125, 1e-12));
    rank_model_free(m);
}

Test(rank_trees, lightgbm_dump_uses_less_or_equal_and_default_left)
{
    rank_model *m = load(lgb_dump);
    cr_expect(eq(str, (char *)rank_model_feature_name(m, 1), "bm25_text"));
    double x[] = {0, 0.5, 0, 0.6, 0, NAN}, s[3];
    cr_assert(eq(int, rank_model_score(m, x, 3, s, NULL), CW_OK));
    cr_expect(eq(dbl, s[0], 2.0));
    cr_expect(eq(dbl, s[1], -2.0));
    cr_expect(eq(dbl, s[2], 2.0));
    double c[2], bias;
    cr_assert(eq(int, rank_model_explain(m, x + 2, c, &bias, NULL), CW_OK));
    cr_expect(epsilon_eq(dbl, bias, 0.1, 1e-12));
    cr_expect(epsilon_eq(dbl, c[1], -2.1, 1e-12));
    cr_expect(eq(dbl, c[0], 0.0));
    rank_model_free(m);
}

Test(rank_trees, round_trip_through_causeway_format_is_exact)
{
    const char *dumps[] = {xgb_dump, lgb_dump};
    cw_rng rng;
    cw_rng_seed(&rng, 3);
    for (size_t d = 0; d < 2; d++) {
        rank_model *m = load(dumps[d]);
        char *json = NULL;
        cr_assert(eq(int, rank_model_to_json(m, &json, NULL), CW_OK));
        rank_model *r = load(json);
        cr_assert(eq(sz, r->n_nodes, m->n_nodes));
        for (int k = 0; k < 50; k++) {
            double x[2] = {3 * cw_rng_uniform(&rng), cw_rng_uniform(&rng)}, a, b;
            if (k % 10 == 0) {
                x[1] = NAN;
            }
            cr_assert(eq(int, rank_model_score(m, x, 1, &a, NULL), CW_OK));
            cr_assert(eq(int, rank_model_score(r, x, 1, &b, NULL), CW_OK));
            cr_expect(eq(dbl, a, b), "dump %zu draw %d", d, k);
        }
        free(json);
        rank_model_free(r);
        rank_model_free(m);
    }
}

typedef struct bad_dump {
    char json[360];
    char msg[200];
} bad_dump;

ParameterizedTestParameters(rank_trees, bad_dumps)
{
    static bad_dump cases[] = {
        {"[{\"nodeid\":0,\"leaf\":\"x\"}]", "d: tree 0: \"leaf\" must be a finite number"},
        {"[{\"nodeid\":0,\"split\":\"f0\",\"yes\":1,\"no\":2,\"children\":[]}]",
         "d: tree 0: a split node needs \"split\", a finite \"split_condition\", \"yes\", \"no\" "
         "and \"children\""},
        {"[{\"nodeid\":0,\"split\":\"f0\",\"split_condition\":1,\"yes\":1,\"no\":1,"
         "\"children\":[{\"nodeid\":1,\"leaf\":1}]}]",
         "d: tree 0: \"yes\"/\"no\" name no distinct child"},
        {"{\"feature_names\":[\"a\"],\"tree_info\":[{\"tree_structure\":{\"split_feature\":0,"
         "\"threshold\":1,\"decision_type\":\"==\",\"left_child\":{\"leaf_value\":1},"
         "\"right_child\":{\"leaf_value\":2}}}]}",
         "d: tree 0: decision_type \"==\" (categorical) is not supported"},
        {"{\"feature_names\":[\"a\"],\"tree_info\":[{\"tree_structure\":{\"split_feature\":3,"
         "\"threshold\":1,\"left_child\":{\"leaf_value\":1},\"right_child\":{\"leaf_value\":2}}}"
         "]}",
         "d: tree 0: a split needs \"split_feature\" in 0..0 and a finite numeric \"threshold\""},
        {"{\"format\":\"causeway-model\",\"version\":1,\"kind\":\"trees\",\"features\":[\"a\"],"
         "\"params\":{\"base_score\":0,\"trees\":[{\"feature\":[0,-1],\"threshold\":[1,0],"
         "\"left\":[1,-1],\"right\":[0,-1],\"flags\":[0,0],\"value\":[0,1]}]}}",
         "d: tree 0 node 0: feature or child index out of range"},
        /* a repeated name would leave fewer columns than "features": feature 1 read past
         * the row */
        {"{\"format\":\"causeway-model\",\"version\":1,\"kind\":\"trees\",\"features\":[\"a\","
         "\"a\"],\"params\":{\"base_score\":0,\"trees\":[{\"feature\":[1,-1,-1],\"threshold\":"
         "[1,0,0],\"left\":[1,-1,-1],\"right\":[2,-1,-1],\"flags\":[0,0,0],\"value\":[0,1,2]}]}}",
         "d: feature name \"a\" repeated"},
    };
    return cr_make_param_array(bad_dump, cases, CW_ARRAY_LEN(cases));
}

ParameterizedTest(bad_dump *c, rank_trees, bad_dumps)
{
    rank_model *m = NULL;
    cw_err err;
    cr_assert(eq(int, rank_model_from_json(c->json, strlen(c->json), "d", &m, &err), CW_EPARSE),
              "%s", err.msg);
    cr_expect(eq(str, err.msg, c->msg));
    cr_expect(eq(ptr, m, NULL));
}
