/* Tests of causal/pl.c: ranking-policy probabilities against enumeration of every top-k
 * ranking, hand-computed Plackett-Luce values, sampling frequencies against exact
 * probabilities, and the documented errors. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "causal/causal.h"

/* Enumerates every ordered top-k selection of n candidates (n <= 8) and calls back with
 * the ranking and its probability from causal_rpol_log_prob. */
typedef void (*visit_fn)(void *ctx, const uint32_t *ranking, uint32_t k, double p);

static void enumerate(const causal_rpol *pol, const double *scores, uint32_t n, uint32_t k,
                      uint32_t *ranking, uint32_t depth, unsigned used, visit_fn fn, void *ctx)
{
    if (depth == k) {
        double lp[8];
        cw_err err;
        cr_assert(eq(int, causal_rpol_log_prob(pol, scores, n, ranking, k, lp, &err), CW_OK), "%s",
                  err.msg);
        fn(ctx, ranking, k, exp(lp[k - 1]));
        return;
    }
    for (uint32_t d = 0; d < n; d++) {
        if (used >> d & 1) {
            continue;
        }
        ranking[depth] = d;
        enumerate(pol, scores, n, k, ranking, depth + 1, used | 1u << d, fn, ctx);
    }
}

typedef struct acc {
    double total;
    double marg[8 * 8]; /* marg[d * k + j] */
    uint32_t k;
} acc;

static void add_up(void *ctx, const uint32_t *ranking, uint32_t k, double p)
{
    acc *a = ctx;
    a->total += p;
    for (uint32_t j = 0; j < k; j++) {
        a->marg[ranking[j] * k + j] += p;
    }
}

static const double scores6[6] = {1.3, -0.4, 0.9, 2.1, 0.0, 0.9};

static causal_rpol policies[] = {
    {CAUSAL_RPOL_PL, 1.0, 1, 0},        {CAUSAL_RPOL_PL, 0.3, 1, 0},
    {CAUSAL_RPOL_DET, 1.0, 1, 0},       {CAUSAL_RPOL_RANDTOPN, 1.0, 3, 0},
    {CAUSAL_RPOL_RANDTOPN, 1.0, 6, 0},  {CAUSAL_RPOL_EPSGREEDY, 1.0, 1, 0.2},
    {CAUSAL_RPOL_EPSGREEDY, 1.0, 1, 1}, {CAUSAL_RPOL_EPSGREEDY, 1.0, 1, 0},
};

Test(causal_pl, probabilities_sum_to_one_and_exact_marginals_match_enumeration)
{
    uint32_t ranking[8];
    for (size_t pi = 0; pi < CW_ARRAY_LEN(policies); pi++) {
        for (uint32_t k = 1; k <= 6; k++) {
            acc a = {0};
            a.k = k;
            enumerate(&policies[pi], scores6, 6, k, ranking, 0, 0, add_up, &a);
            cr_expect(epsilon_eq(dbl, a.total, 1.0, 1e-12), "policy %zu k %u total %.15f", pi, k,
                      a.total);
            double marg[6 * 8];
            cw_err err;
            cr_assert(
                eq(int, causal_rpol_marginals(&policies[pi], scores6, 6, k, marg, &err), CW_OK));
            for (uint32_t i = 0; i < 6 * k; i++) {
                cr_expect(epsilon_eq(dbl, marg[i], a.marg[i], 1e-12), "policy %zu k %u cell %u", pi,
                          k, i);
            }
        }
    }
}

Test(causal_pl, hand_computed_pl_prefix_probabilities)
{
    /* Weights 1, 2, 3 (scores log w, tau 1): P([2,1,0]) = 3/6 * 2/3 * 1 = 1/3. */
    double s[3] = {0, log(2), log(3)};
    causal_rpol pl = {CAUSAL_RPOL_PL, 1.0, 1, 0};
    uint32_t r[3] = {2, 1, 0};
    double lp[3];
    cr_assert(eq(int, causal_rpol_log_prob(&pl, s, 3, r, 3, lp, NULL), CW_OK));
    cr_expect(epsilon_eq(dbl, exp(lp[0]), 0.5, 1e-14));
    cr_expect(epsilon_eq(dbl, exp(lp[1]), 1.0 / 3, 1e-14));
    cr_expect(epsilon_eq(dbl, exp(lp[2]), 1.0 / 3, 1e-14));
    /* Temperature 0.5 squares the weights: 1, 4, 9; P([0]) = 1/14, then 4/13. */
    pl.tau = 0.5;
    uint32_t r2[2] = {0, 1};
    cr_assert(eq(int, causal_rpol_log_prob(&pl, s, 3, r2, 2, lp, NULL), CW_OK));
    cr_expect(epsilon_eq(dbl, exp(lp[0]), 1.0 / 14, 1e-14));
    cr_expect(epsilon_eq(dbl, exp(lp[1]), 1.0 / 14 * 4.0 / 13, 1e-14));
}

Test(causal_pl, log_space_survives_scores_that_overflow_exp)
{
    /* exp(1000) overflows a double; the log-sum-exp form does not. Weights e^0 : e^-1. */
    double s[2] = {1000, 999};
    causal_rpol pl = {CAUSAL_RPOL_PL, 1.0, 1, 0};
    uint32_t r[2] = {1, 0};
    double lp[2];
    cr_assert(eq(int, causal_rpol_log_prob(&pl, s, 2, r, 2, lp, NULL), CW_OK));
    cr_expect(epsilon_eq(dbl, lp[0], -1 - log1p(exp(-1)), 1e-12));
    cr_expect(epsilon_eq(dbl, lp[1], lp[0], 1e-12));
    /* A tiny temperature makes the lower item almost impossible, never NaN. */
    pl.tau = 1e-3;
    cr_assert(eq(int, causal_rpol_log_prob(&pl, s, 2, r, 2, lp, NULL), CW_OK));
    cr_expect(epsilon_eq(dbl, lp[0], -1000.0, 1e-9));
}

Test(causal_pl, next_probs_equal_ratio_of_prefix_probabilities)
{
    uint32_t prefix[2] = {3, 0};
    for (size_t pi = 0; pi < CW_ARRAY_LEN(policies); pi++) {
        double lp[3];
        uint32_t r[3] = {prefix[0], prefix[1], 0};
        cr_assert(eq(int, causal_rpol_log_prob(&policies[pi], scores6, 6, r, 2, lp, NULL), CW_OK));
        if (isinf(lp[1])) {
            cw_err err;
            double probs[6];
            cr_expect(eq(int,
                         causal_rpol_next_probs(&policies[pi], scores6, 6, prefix, 2, probs, &err),
                         CW_EINVAL));
            continue;
        }
        double probs[6], sum = 0;
        cr_assert(eq(int, causal_rpol_next_probs(&policies[pi], scores6, 6, prefix, 2, probs, NULL),
                     CW_OK));
        for (uint32_t d = 0; d < 6; d++) {
            sum += probs[d];
            if (d == 3 || d == 0) {
                cr_expect(eq(dbl, probs[d], 0.0));
                continue;
            }
            r[2] = d;
            cr_assert(
                eq(int, causal_rpol_log_prob(&policies[pi], scores6, 6, r, 3, lp, NULL), CW_OK));
            cr_expect(epsilon_eq(dbl, probs[d], exp(lp[2] - lp[1]), 1e-12), "policy %zu d %u", pi,
                      d);
        }
        cr_expect(epsilon_eq(dbl, sum, 1.0, 1e-12), "policy %zu", pi);
    }
}

/* Frequencies of all 6*5*4 = 120 top-3 rankings from sampling against the exact
 * probabilities: each count ~ Binomial(m, p), allow 5 standard deviations plus one. */
Test(causal_pl, sampled_ranking_frequencies_match_exact_probabilities)
{
    const uint32_t m = 200000;
    for (size_t pi = 0; pi < CW_ARRAY_LEN(policies); pi++) {
        cw_rng rng;
        cw_rng_seed(&rng, 1234 + pi);
        static uint32_t counts[6 * 6 * 6];
        memset(counts, 0, sizeof counts);
        uint32_t r[3];
        for (uint32_t t = 0; t < m; t++) {
            cr_assert(
                eq(int, causal_rpol_sample(&policies[pi], scores6, 6, 3, &rng, r, NULL), CW_OK));
            counts[(r[0] * 6 + r[1]) * 6 + r[2]]++;
        }
        for (uint32_t a = 0; a < 6; a++) {
            for (uint32_t b = 0; b < 6; b++) {
                for (uint32_t c = 0; c < 6; c++) {
                    if (a == b || a == c || b == c) {
                        continue;
                    }
                    uint32_t rr[3] = {a, b, c};
                    double lp[3];
                    cr_assert(eq(int,
                                 causal_rpol_log_prob(&policies[pi], scores6, 6, rr, 3, lp, NULL),
                                 CW_OK));
                    double p = exp(lp[2]), want = m * p;
                    double sd = sqrt(m * p * (1 - p));
                    cr_expect(fabs(counts[(a * 6 + b) * 6 + c] - want) <= 5 * sd + 1,
                              "policy %zu ranking %u%u%u: %u vs %.1f (seed %zu)", pi, a, b, c,
                              counts[(a * 6 + b) * 6 + c], want, 1234 + pi);
                }
            }
        }
    }
}

Test(causal_pl, monte_carlo_marginals_within_their_standard_errors_of_exact)
{
    /* n = 12 exercises the subset DP beyond what the enumeration test covers. */
    double s[12];
    cw_rng rng;
    cw_rng_seed(&rng, 99);
    for (int d = 0; d < 12; d++) {
        s[d] = cw_rng_normal(&rng);
    }
    causal_rpol pl = {CAUSAL_RPOL_PL, 0.7, 1, 0};
    const uint32_t k = 5, m = 100000;
    double exact[12 * 5], mc[12 * 5], se[12 * 5];
    cr_assert(eq(int, causal_rpol_marginals(&pl, s, 12, k, exact, NULL), CW_OK));
    cr_assert(eq(int, causal_rpol_marginals_mc(&pl, s, 12, k, m, &rng, mc, se, NULL), CW_OK));
    for (uint32_t j = 0; j < k; j++) {
        double col = 0;
        for (uint32_t d = 0; d < 12; d++) {
            col += exact[d * k + j];
            double tol = 5 * sqrt(exact[d * k + j] * (1 - exact[d * k + j]) / m) + 1e-9;
            cr_expect(fabs(mc[d * k + j] - exact[d * k + j]) <= tol, "d %u slot %u", d, j);
            cr_expect(epsilon_eq(dbl, se[d * k + j], sqrt(mc[d * k + j] * (1 - mc[d * k + j]) / m),
                                 1e-15));
        }
        cr_expect(epsilon_eq(dbl, col, 1.0, 1e-12), "slot %u", j);
    }
}

Test(causal_pl, errors_name_the_problem)
{
    causal_rpol pl = {CAUSAL_RPOL_PL, 1.0, 1, 0};
    double lp[3];
    cw_err err;
    uint32_t rep[3] = {0, 2, 0};
    cr_expect(eq(int, causal_rpol_log_prob(&pl, scores6, 6, rep, 3, lp, &err), CW_EINVAL));
    cr_expect(eq(str, err.msg, "policy: candidate 0 repeated at slot 3"));
    uint32_t out[2] = {0, 6};
    cr_expect(eq(int, causal_rpol_log_prob(&pl, scores6, 6, out, 2, lp, &err), CW_EINVAL));
    cr_expect(eq(str, err.msg, "policy: slot 2 holds candidate 6, only 6 exist"));
    double bad[3] = {0, NAN, 1};
    cr_expect(eq(int, causal_rpol_log_prob(&pl, bad, 3, rep, 1, lp, &err), CW_EINVAL));
    cr_expect(eq(str, err.msg, "policy: score of candidate 1 is not finite"));
    cr_expect(eq(int, causal_rpol_log_prob(&pl, scores6, 2, rep, 3, lp, &err), CW_EINVAL));
    cr_expect(eq(str, err.msg, "policy: need 1 <= k <= n, got k = 3, n = 2"));
    causal_rpol cold = {CAUSAL_RPOL_PL, 0.0, 1, 0};
    cr_expect(eq(int, causal_rpol_log_prob(&cold, scores6, 6, rep, 1, lp, &err), CW_EINVAL));
    cr_expect(eq(str, err.msg, "policy: PL temperature must be > 0, got 0"));
    static double big[CAUSAL_PL_MAX_ITEMS + 1];
    cr_expect(eq(int, causal_rpol_check(&pl, big, CAUSAL_PL_MAX_ITEMS + 1, 1, &err), CW_ELIMIT));
    static double many[21], marg[21 * 2];
    cr_expect(eq(int, causal_rpol_marginals(&pl, many, 21, 2, marg, &err), CW_ELIMIT));
    cr_expect(eq(str, err.msg,
                 "policy: exact PL marginals need n <= 20 candidates, got 21; use Monte-Carlo "
                 "marginals"));
    cw_rng rng;
    cw_rng_seed(&rng, 1);
    cr_expect(eq(int, causal_rpol_marginals_mc(&pl, scores6, 6, 2, 0, &rng, marg, NULL, &err),
                 CW_EINVAL));
}

typedef struct parse_case {
    char spec[24];
    int rc;
    causal_rpol_kind kind;
    double param;
} parse_case;

ParameterizedTestParameters(causal_pl, policy_specs_parse)
{
    static parse_case cases[] = {
        {"det", CW_OK, CAUSAL_RPOL_DET, 0},
        {"pl:0.5", CW_OK, CAUSAL_RPOL_PL, 0.5},
        {"randtop:4", CW_OK, CAUSAL_RPOL_RANDTOPN, 4},
        {"egreedy:0.1", CW_OK, CAUSAL_RPOL_EPSGREEDY, 0.1},
        {"pl:0", CW_EPARSE, CAUSAL_RPOL_DET, 0},
        {"pl:-1", CW_EPARSE, CAUSAL_RPOL_DET, 0},
        {"pl", CW_EPARSE, CAUSAL_RPOL_DET, 0},
        {"pl:abc", CW_EPARSE, CAUSAL_RPOL_DET, 0},
        {"randtop:0", CW_EPARSE, CAUSAL_RPOL_DET, 0},
        {"randtop:-3", CW_EPARSE, CAUSAL_RPOL_DET, 0},
        {"egreedy:1.5", CW_EPARSE, CAUSAL_RPOL_DET, 0},
        {"det:1", CW_EPARSE, CAUSAL_RPOL_DET, 0},
        {"softmax:1", CW_EPARSE, CAUSAL_RPOL_DET, 0},
    };
    return cr_make_param_array(parse_case, cases, CW_ARRAY_LEN(cases));
}

ParameterizedTest(parse_case *c, causal_pl, policy_specs_parse)
{
    causal_rpol p = {CAUSAL_RPOL_DET, 1, 1, 0};
    cw_err err;
    int rc = causal_rpol_parse(c->spec, &p, &err);
    cr_assert(eq(int, rc, c->rc), "spec %s: %s", c->spec, err.msg);
    if (rc != CW_OK) {
        cr_expect(strstr(err.msg, c->spec) != NULL, "message should quote the spec: %s", err.msg);
        return;
    }
    cr_expect(eq(int, (int)p.kind, (int)c->kind));
    double param = p.kind == CAUSAL_RPOL_PL          ? p.tau
                   : p.kind == CAUSAL_RPOL_RANDTOPN  ? p.top_n
                   : p.kind == CAUSAL_RPOL_EPSGREEDY ? p.epsilon
                                                     : 0;
    cr_expect(epsilon_eq(dbl, param, c->param, 1e-15));
    char buf[32];
    causal_rpol_format(&p, buf, sizeof buf);
    cr_expect(eq(str, buf, c->spec));
}

Test(causal_pl, draw_logs_exact_propensities_and_the_list_probability)
{
    causal_rpol pl = {CAUSAL_RPOL_PL, 0.8, 1, 0};
    cw_rng rng;
    cw_rng_seed(&rng, 5);
    uint32_t order[4], mc_used = 99;
    double prop[4], lp, want_lp[4], marg[6 * 4];
    cr_assert(eq(int,
                 causal_rpol_draw(&pl, scores6, 6, 4, 1000, &rng, order, prop, &lp, &mc_used, NULL),
                 CW_OK));
    cr_expect(eq(u32, mc_used, 0));
    cr_assert(eq(int, causal_rpol_log_prob(&pl, scores6, 6, order, 4, want_lp, NULL), CW_OK));
    cr_expect(epsilon_eq(dbl, lp, want_lp[3], 1e-12));
    cr_assert(eq(int, causal_rpol_marginals(&pl, scores6, 6, 4, marg, NULL), CW_OK));
    for (uint32_t j = 0; j < 4; j++) {
        cr_expect(epsilon_eq(dbl, prop[j], marg[order[j] * 4 + j], 1e-15));
    }
    /* Over the exact limit (n = 24): Monte-Carlo propensities within 5 standard errors of
     * a 20 times larger Monte-Carlo run. */
    double s24[24];
    for (int d = 0; d < 24; d++) {
        s24[d] = 0.1 * d;
    }
    uint32_t o24[3];
    double p24[3], big[24 * 3];
    cr_assert(eq(int, causal_rpol_draw(&pl, s24, 24, 3, 20000, &rng, o24, p24, &lp, &mc_used, NULL),
                 CW_OK));
    cr_expect(eq(u32, mc_used, 20000));
    cr_assert(
        eq(int, causal_rpol_marginals_mc(&pl, s24, 24, 3, 400000, &rng, big, NULL, NULL), CW_OK));
    for (uint32_t j = 0; j < 3; j++) {
        double p = big[o24[j] * 3 + j];
        cr_expect(fabs(p24[j] - p) <= 5 * sqrt(p * (1 - p) / 20000) + 1e-4, "slot %u", j);
        cr_expect(gt(dbl, p24[j], 0.0));
    }
    cw_err err;
    cr_expect(eq(int, causal_rpol_draw(&pl, s24, 24, 3, 0, &rng, o24, p24, &lp, &mc_used, &err),
                 CW_EINVAL));
    cr_expect(
        eq(str, err.msg, "policy: 24 candidates need Monte-Carlo marginals; mc_samples is 0"));
}
