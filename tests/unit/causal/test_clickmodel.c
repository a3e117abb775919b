/* Tests of causal/clickmodel.c: on clicks simulated from model X, X has the best held-out
 * log-likelihood; PBM recovers the examination curve; perplexity definitions. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "causal/causal.h"

/* Sessions from `user` on randomized lists (RandTop-10 of 10 candidates, so every pair is
 * seen at many ranks), 100 queries. */
static causal_sessions *simulate(causal_user user, uint64_t n, uint64_t seed)
{
    causal_sessions *s = NULL;
    causal_simcoll *c = NULL;
    cw_err err;
    cr_assert(eq(int, causal_sessions_new(&s, &err), CW_OK));
    cr_assert(eq(int, causal_simcoll_random(s, 100, 10, 4, 1, 1.0, seed, &c, &err), CW_OK));
    causal_sim_opts o = causal_sim_opts_default();
    o.user = user;
    o.policy.kind = CAUSAL_POLICY_RANDTOP;
    o.n_sessions = n;
    o.seed = seed;
    cr_assert(eq(int, causal_simulate(c, &o, &err), CW_OK), "%s", err.msg);
    causal_simcoll_free(c);
    return s;
}

/* Every model fitted on the first 80%, evaluated on the rest; ll[k] gets the per-session
 * held-out log-likelihoods of model k (caller frees). */
static void held_out(const causal_sessions *s, causal_cm_eval ev[CAUSAL_CM_N],
                     double *ll[CAUSAL_CM_N])
{
    size_t n = s->n_sessions, tr = n * 4 / 5;
    cw_err err;
    for (int k = 0; k < CAUSAL_CM_N; k++) {
        causal_cm_opts o = causal_cm_opts_default((causal_cm_kind)k);
        causal_clickmodel *m = NULL;
        cr_assert(eq(int, causal_clickmodel_fit(s, 0, tr, &o, &m, &err), CW_OK), "%s", err.msg);
        cr_assert(eq(int, causal_clickmodel_eval(m, s, tr, n, &ev[k], &err), CW_OK));
        ll[k] = malloc((n - tr) * sizeof *ll[k]);
        cr_assert(ne(ptr, ll[k], NULL));
        cr_assert(eq(int, causal_clickmodel_session_ll(m, s, tr, n, ll[k], &err), CW_OK));
        causal_clickmodel_free(m);
    }
}

/* `nests` lists models that contain `want` as a special case (UBM with gamma_{k,k} = 1
 * and gamma_{k,d<k} = 0, or DBN with gamma = s = 1, is exactly the cascade model): on
 * want's data they fit the same distribution, so they may tie: their paired per-session
 * log-likelihood difference must stay within 3 standard errors of 0 (not be clearly
 * better); every other model must be strictly worse. */
static void expect_best(causal_user user, causal_cm_kind want, uint64_t seed, unsigned nests)
{
    causal_sessions *s = simulate(user, 60000, seed);
    size_t nh = s->n_sessions - s->n_sessions * 4 / 5;
    causal_cm_eval ev[CAUSAL_CM_N];
    double *ll[CAUSAL_CM_N];
    held_out(s, ev, ll);
    for (int k = 0; k < CAUSAL_CM_N; k++) {
        double sum = 0, sq = 0;
        for (size_t i = 0; i < nh; i++) {
            double d = ll[k][i] - ll[want][i];
            sum += d;
            sq += d * d;
        }
        double mean = sum / (double)nh, se = sqrt((sq / (double)nh - mean * mean) / (double)nh);
        cr_expect(epsilon_eq(dbl, sum / (double)nh + ev[want].ll, ev[k].ll, 1e-9),
                  "per-session terms average to the held-out LL");
        if (k != (int)want) {
            if ((nests >> k) & 1) {
                cr_expect(lt(dbl, mean, 3 * se), "%s beats %s by %.6f +- %.6f",
                          causal_cm_name((causal_cm_kind)k), causal_cm_name(want), mean, se);
            } else {
                cr_expect(gt(dbl, ev[want].ll, ev[k].ll), "%s %.6f should beat %s %.6f",
                          causal_cm_name(want), ev[want].ll, causal_cm_name((causal_cm_kind)k),
                          ev[k].ll);
            }
        }
        cr_expect(ge(dbl, ev[k].perplexity, 1.0));
    }
    for (int k = 0; k < CAUSAL_CM_N; k++) {
        free(ll[k]);
    }
    causal_sessions_free(s);
}

Test(causal_clickmodel, pbm_data_pbm_best)
{
    expect_best(causal_user_default(CAUSAL_USER_PBM, 4), CAUSAL_CM_PBM, 21, 1u << CAUSAL_CM_UBM);
}

Test(causal_clickmodel, cascade_data_cascade_best)
{
    causal_user u = causal_user_default(CAUSAL_USER_CASCADE, 4);
    for (int y = 0; y <= 4; y++) {
        u.p_stop[y] = 1.0; /* Craswell's cascade: the first click ends the session */
    }
    expect_best(u, CAUSAL_CM_CASCADE, 22, 1u << CAUSAL_CM_UBM | 1u << CAUSAL_CM_DBN);
}

Test(causal_clickmodel, dbn_data_dbn_best)
{
    causal_user u = causal_user_default(CAUSAL_USER_DBN, 4);
    u.dbn_gamma = 0.7;
    expect_best(u, CAUSAL_CM_DBN, 23, 0);
}

Test(causal_clickmodel, ubm_data_ubm_best)
{
    expect_best(causal_user_default(CAUSAL_USER_UBM, 4), CAUSAL_CM_UBM, 24, 0);
}

Test(causal_clickmodel, pbm_recovers_examination_ratios)
{
    causal_sessions *s = simulate(causal_user_default(CAUSAL_USER_PBM, 4), 100000, 25);
    causal_cm_opts o = causal_cm_opts_default(CAUSAL_CM_PBM);
    o.max_iter = 200;
    causal_clickmodel *m = NULL;
    cw_err err;
    cr_assert(eq(int, causal_clickmodel_fit(s, 0, s->n_sessions, &o, &m, &err), CW_OK));
    const double theta[10] = {.68, .61, .48, .34, .28, .20, .11, .10, .08, .06};
    double g1 = causal_clickmodel_exam(m, 1);
    for (uint32_t k = 2; k <= 10; k++) {
        double r = causal_clickmodel_exam(m, k) / g1, truth = theta[k - 1] / theta[0];
        cr_expect(epsilon_eq(dbl, r, truth, 0.05 * truth), "rank %u: %g vs %g", k, r, truth);
    }
    cw_buf b = {0};
    cr_assert(eq(int, causal_clickmodel_to_json(m, &b, &err), CW_OK));
    cr_expect(ne(ptr, strstr(b.data, "\"examination\""), NULL));
    cw_buf_fini(&b);
    causal_clickmodel_free(m);
    causal_sessions_free(s);
}

Test(causal_clickmodel, perplexity_of_a_known_model_by_hand)
{
    /* One pair shown at rank 1 in 4 sessions, clicked in 1: the cascade model's closed
     * form (prior 0) gives alpha = 1/4 for every session; perplexity
     * = 2^-(1/4 log2 .25 + 3/4 log2 .75) and LL = 1/4 log .25 + 3/4 log .75. */
    causal_sessions *s = NULL;
    cw_err err;
    cr_assert(eq(int, causal_sessions_new(&s, &err), CW_OK));
    uint32_t q, d, r, p;
    cr_assert(eq(int, causal_sessions_query(s, "q", &q, &err), CW_OK));
    cr_assert(eq(int, causal_sessions_doc(s, "d", &d, &err), CW_OK));
    cr_assert(eq(int, causal_sessions_ranker(s, "r", &r, &err), CW_OK));
    cr_assert(eq(int, causal_sessions_pair(s, q, d, -1, &p, &err), CW_OK));
    for (int i = 0; i < 4; i++) {
        uint16_t pos = 1;
        uint8_t c = i == 0;
        causal_session_in in = {q,    r,   CAUSAL_POLICY_DETERMINISTIC, 0, 0, 1, &p, &pos, &c,
                                NULL, NULL};
        cr_assert(eq(int, causal_sessions_append(s, &in, &err), CW_OK));
    }
    causal_cm_opts o = causal_cm_opts_default(CAUSAL_CM_CASCADE);
    o.prior = 0;
    o.max_rank = 1;
    causal_clickmodel *m = NULL;
    cr_assert(eq(int, causal_clickmodel_fit(s, 0, 4, &o, &m, &err), CW_OK));
    causal_cm_eval ev;
    cr_assert(eq(int, causal_clickmodel_eval(m, s, 0, 4, &ev, &err), CW_OK));
    double ppl = exp2(-(0.25 * log2(0.25) + 0.75 * log2(0.75)));
    cr_expect(epsilon_eq(dbl, ev.perplexity_at[0], ppl, 1e-9));
    cr_expect(epsilon_eq(dbl, ev.ll, 0.25 * log(0.25) + 0.75 * log(0.75), 1e-9));
    cr_expect(eq(int, causal_clickmodel_eval(m, s, 3, 3, &ev, &err), CW_EINVAL));
    double ll4[4];
    cr_assert(eq(int, causal_clickmodel_session_ll(m, s, 0, 4, ll4, &err), CW_OK));
    /* sessions are one item each: the clicked one log 0.25, the others log 0.75 */
    double sum = 0;
    for (int i = 0; i < 4; i++) {
        cr_expect(epsilon_eq(dbl, ll4[i], log(s->i_click[s->s_begin[i]] ? 0.25 : 0.75), 1e-9));
        sum += ll4[i];
    }
    cr_expect(epsilon_eq(dbl, sum / 4, ev.ll, 1e-12));
    cr_expect(eq(int, causal_clickmodel_session_ll(m, s, 2, 9, ll4, &err), CW_EINVAL));
    cr_expect(ne(ptr, strstr(err.msg, "bad session range [2, 9)"), NULL), "%s", err.msg);
    causal_clickmodel_free(m);
    causal_sessions_free(s);
}
