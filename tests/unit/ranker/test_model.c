/* Tests of ranker/model.c: hand-computed linear scores with normalization, MLP
 * backward pass against finite differences, explanations summing to the score, exact
 * JSON round trips, and every rejection of a bad model file. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ranker/ranker_int.h"

static const char *names3[] = {"bm25_title", "bm25_text", "doc_len"};

Test(rank_model, linear_score_applies_the_stored_normalization)
{
    rank_model *m = NULL;
    cr_assert(eq(int, rank_model_new(RANK_MODEL_LINEAR, 3, names3, 0, NULL, &m, NULL), CW_OK));
    double w[] = {1, -2, 0.5, 0.25};
    memcpy(m->theta, w, sizeof w);
    m->mean[1] = 1.0;
    m->scale[2] = 4.0;
    rank_model_refresh(m);
    double x[] = {2, 3, 8, 0, 1, 0};
    double s[2];
    cr_assert(eq(int, rank_model_score(m, x, 2, s, NULL), CW_OK));
    /* 0.25 + 1*2 - 2*(3-1) + 0.5*(8/4) = -0.75; 0.25 + 0 - 0 + 0 = 0.25 */
    cr_expect(epsilon_eq(dbl, s[0], -0.75, 1e-12));
    cr_expect(epsilon_eq(dbl, s[1], 0.25, 1e-12));
    double c[3], bias;
    cr_assert(eq(int, rank_model_explain(m, x, c, &bias, NULL), CW_OK));
    cr_expect(epsilon_eq(dbl, c[0], 2.0, 1e-12));
    cr_expect(epsilon_eq(dbl, c[1], -4.0, 1e-12));
    cr_expect(epsilon_eq(dbl, c[2], 1.0, 1e-12));
    cr_expect(epsilon_eq(dbl, bias, 0.25, 1e-12));
    rank_model_free(m);
}

static rank_model *random_mlp(uint64_t seed, size_t nh)
{
    cw_rng rng;
    cw_rng_seed(&rng, seed);
    rank_model *m = NULL;
    cr_assert(eq(int, rank_model_new(RANK_MODEL_MLP, 3, names3, nh, &rng, &m, NULL), CW_OK));
    for (size_t i = 0; i < m->n_params; i++) {
        m->theta[i] += 0.1 * cw_rng_normal(&rng);
    }
    for (size_t i = 0; i < 3; i++) {
        m->mean[i] = cw_rng_normal(&rng);
        m->scale[i] = 0.5 + cw_rng_uniform(&rng);
    }
    rank_model_refresh(m);
    return m;
}

Test(rank_model, mlp_backward_matches_finite_differences)
{
    rank_model *m = random_mlp(11, 5);
    cw_rng rng;
    cw_rng_seed(&rng, 12);
    enum { N = 4 };
    double z[N * 3], ds[N], h[N * 5], dh[N * 5], s[N];
    for (size_t i = 0; i < N * 3; i++) {
        z[i] = cw_rng_normal(&rng);
    }
    for (size_t j = 0; j < N; j++) {
        ds[j] = cw_rng_normal(&rng);
    }
    double *grad = calloc(m->n_params, sizeof *grad);
    rank_model_score_z(m, m->theta, z, N, h, s);
    rank_model_backward(m, m->theta, z, N, h, ds, dh, grad);
    const double eps = 1e-6;
    for (size_t p = 0; p < m->n_params; p++) {
        double keep = m->theta[p], fp = 0, fm = 0;
        m->theta[p] = keep + eps;
        rank_model_score_z(m, m->theta, z, N, h, s);
        for (size_t j = 0; j < N; j++) {
            fp += ds[j] * s[j];
        }
        m->theta[p] = keep - eps;
        rank_model_score_z(m, m->theta, z, N, h, s);
        for (size_t j = 0; j < N; j++) {
            fm += ds[j] * s[j];
        }
        m->theta[p] = keep;
        /* central differences: O(eps^2) truncation, ~1e-10 rounding; ReLU kinks are
         * measure zero for random inputs. */
        cr_expect(epsilon_eq(dbl, grad[p], (fp - fm) / (2 * eps), 1e-6), "param %zu", p);
    }
    free(grad);
    rank_model_free(m);
}

Test(rank_model, mlp_raw_scores_equal_standardized_scores)
{
    rank_model *m = random_mlp(3, 7);
    double x[] = {0.3, -1, 2, 1, 1, 1};
    double z[6], h[14], s1[2], s2[2];
    for (size_t j = 0; j < 2; j++) {
        for (size_t i = 0; i < 3; i++) {
            z[j * 3 + i] = (x[j * 3 + i] - m->mean[i]) / m->scale[i];
        }
    }
    rank_model_score_z(m, m->theta, z, 2, h, s1);
    cr_assert(eq(int, rank_model_score(m, x, 2, s2, NULL), CW_OK));
    cr_expect(epsilon_eq(dbl, s1[0], s2[0], 1e-12));
    cr_expect(epsilon_eq(dbl, s1[1], s2[1], 1e-12));
    /* Integrated gradients: contributions + baseline ~ score (quadrature error only). */
    double c[3], bias;
    cr_assert(eq(int, rank_model_explain(m, x, c, &bias, NULL), CW_OK));
    cr_expect(epsilon_eq(dbl, bias + c[0] + c[1] + c[2], s2[0], 0.05 * (1 + fabs(s2[0]))));
    rank_model_free(m);
}

static void round_trip(rank_model *m)
{
    char *json = NULL;
    cw_err err;
    cr_assert(eq(int, rank_model_to_json(m, &json, &err), CW_OK));
    rank_model *r = NULL;
    cr_assert(eq(int, rank_model_from_json(json, strlen(json), "mem", &r, &err), CW_OK), "%s",
              err.msg);
    cr_expect(eq(int, (int)rank_model_get_kind(r), (int)rank_model_get_kind(m)));
    cr_assert(eq(sz, r->n_params, m->n_params));
    for (size_t i = 0; i < m->n_params; i++) {
        cr_expect(eq(dbl, r->theta[i], m->theta[i]), "theta[%zu]", i);
    }
    for (size_t i = 0; i < 3; i++) {
        cr_expect(eq(dbl, r->mean[i], m->mean[i]));
        cr_expect(eq(dbl, r->scale[i], m->scale[i]));
        cr_expect(eq(str, (char *)rank_model_feature_name(r, i), (char *)names3[i]));
    }
    rank_model_free(r);
    free(json);
}

Test(rank_model, json_round_trip_is_exact_for_linear_and_mlp)
{
    rank_model *m = random_mlp(5, 4);
    round_trip(m);
    rank_model_free(m);
    cr_assert(eq(int, rank_model_new(RANK_MODEL_LINEAR, 3, names3, 0, NULL, &m, NULL), CW_OK));
    m->theta[0] = 0.1;
    m->theta[3] = 1.0 / 3.0;
    m->mean[2] = 1e-300;
    m->scale[1] = 7e10;
    round_trip(m);
    rank_model_free(m);
}

Test(rank_model, save_and_load_through_a_file)
{
    rank_model *m = random_mlp(9, 3);
    char path[] = "/tmp/cw_model_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert(eq(int, rank_model_save(m, path, NULL), CW_OK));
    rank_model *r = NULL;
    cw_err err;
    cr_assert(eq(int, rank_model_load(path, &r, &err), CW_OK), "%s", err.msg);
    double x[] = {1, 2, 3}, a, b;
    cr_assert(eq(int, rank_model_score(m, x, 1, &a, NULL), CW_OK));
    cr_assert(eq(int, rank_model_score(r, x, 1, &b, NULL), CW_OK));
    cr_expect(eq(dbl, a, b));
    rank_model_free(r);
    rank_model_free(m);
    unlink(path);
    cr_expect(eq(int, rank_model_load(path, &r, &err), CW_ENOTFOUND));
}

typedef struct bad_model {
    char json[400];
    int code;
    char msg[120];
} bad_model;

#define HEAD "{\"format\":\"causeway-model\",\"version\":1,"
#define NORM1 "\"normalization\":{\"mean\":[0],\"scale\":[1]},"

ParameterizedTestParameters(rank_model, bad_files)
{
    static bad_model cases[] = {
        {"{\"format\":", CW_EPARSE, "m:1:10: unexpected token near end of file"},
        {"[1]", CW_EPARSE, "m: a model file is a JSON object"},
        {"{\"format\":\"xgboost\"}", CW_EPARSE, "m: \"format\" must be \"causeway-model\""},
        {"{\"format\":\"causeway-model\",\"version\":2}", CW_EPARSE,
         "m: unsupported model \"version\" (this build reads 1)"},
        {HEAD "\"kind\":\"forest\"}", CW_EPARSE,
         "m: \"kind\" must be \"linear\", \"mlp\" or \"trees\""},
        {HEAD "\"kind\":\"linear\",\"features\":[]}", CW_EPARSE,
         "m: \"features\" must list 1..1024 names"},
        {HEAD "\"kind\":\"linear\",\"features\":[\"\"]}", CW_EPARSE,
         "m: \"features\"[0] must be a name of 1..63 bytes"},
        {HEAD "\"kind\":\"linear\",\"features\":[\"a\"]}", CW_EPARSE,
         "m: missing object \"params\""},
        {HEAD "\"kind\":\"linear\",\"features\":[\"a\"],\"params\":{}}", CW_EPARSE,
         "m: missing object \"normalization\""},
        {HEAD "\"kind\":\"linear\",\"features\":[\"a\"]," NORM1 "\"params\":{\"weights\":[1,2]}}",
         CW_EPARSE, "m: \"params.weights\" has 2 numbers, expected 1"},
        {HEAD "\"kind\":\"linear\",\"features\":[\"a\"]," NORM1 "\"params\":{\"weights\":[\"x\"]}}",
         CW_EPARSE, "m: \"params.weights\"[0] is not a finite number"},
        {HEAD "\"kind\":\"linear\",\"features\":[\"a\"]," NORM1 "\"params\":{\"weights\":[1]}}",
         CW_EPARSE, "m: \"params.bias\" must be a finite number"},
        {HEAD "\"kind\":\"linear\",\"features\":[\"a\"],"
              "\"normalization\":{\"mean\":[0],\"scale\":[0]},\"params\":{}}",
         CW_EPARSE, "m: \"normalization.scale\"[0] must be > 0"},
        {HEAD "\"kind\":\"mlp\",\"features\":[\"a\"]," NORM1 "\"params\":{\"hidden\":0}}",
         CW_EPARSE, "m: \"params.hidden\" must be 1..4096"},
        {HEAD "\"kind\":\"mlp\",\"features\":[\"a\"]," NORM1
              "\"params\":{\"hidden\":2,\"W1\":[[1]]}}",
         CW_EPARSE, "m: \"params.W1\" must hold 2 rows"},
    };
    return cr_make_param_array(bad_model, cases, CW_ARRAY_LEN(cases));
}

ParameterizedTest(bad_model *c, rank_model, bad_files)
{
    rank_model *m = NULL;
    cw_err err;
    cr_assert(eq(int, rank_model_from_json(c->json, strlen(c->json), "m", &m, &err), c->code), "%s",
              err.msg);
    cr_expect(eq(str, err.msg, c->msg));
    cr_expect(eq(ptr, m, NULL));
}

Test(rank_model, constructor_rejects_bad_shapes)
{
    rank_model *m = NULL;
    cw_err err;
    cr_expect(eq(int, rank_model_new(RANK_MODEL_LINEAR, 0, names3, 0, NULL, &m, &err), CW_EINVAL));
    cr_expect(eq(str, err.msg, "a model needs 1..1024 features, got 0"));
    cr_expect(eq(int, rank_model_new(RANK_MODEL_MLP, 3, names3, 0, NULL, &m, &err), CW_EINVAL));
    cr_expect(eq(str, err.msg, "an MLP needs 1..4096 hidden units, got 0"));
}
