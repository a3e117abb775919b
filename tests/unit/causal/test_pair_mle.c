/* Review tests of the per-pair PBM MLE (causal/propensity.c pair_mle_run, pbm_coord) on
 * hand-built sessions whose MLE is known in closed form: saturated cells, a pair clicked on
 * every impression, a pair never clicked, ranks that no pair links to rank 1 (refused), and
 * a supplied relevance on a single deterministic ranker (identified, so not refused). */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <string.h>

#include "causal/causal.h"

/* One page of query "q": docs[j] (a single letter) at rank j + 1, clicked where clicks[j]
 * is '1', logged by ranker "r<ranker>". Appended reps times. */
static void page(causal_sessions *s, const char *docs, const char *clicks, unsigned ranker,
                 unsigned reps)
{
    cw_err err;
    uint32_t q, r, pairs[8];
    uint16_t pos[8];
    uint8_t clk[8];
    char rname[8] = {'r', (char)('0' + ranker), 0};
    size_t n = strlen(docs);
    cr_assert(eq(int, causal_sessions_query(s, "q", &q, &err), CW_OK));
    cr_assert(eq(int, causal_sessions_ranker(s, rname, &r, &err), CW_OK));
    for (size_t j = 0; j < n; j++) {
        char dn[2] = {docs[j], 0};
        uint32_t d;
        cr_assert(eq(int, causal_sessions_doc(s, dn, &d, &err), CW_OK));
        cr_assert(eq(int, causal_sessions_pair(s, q, d, -1, &pairs[j], &err), CW_OK));
        pos[j] = (uint16_t)(j + 1);
        clk[j] = clicks[j] == '1';
    }
    causal_session_in in = {.query = q,
                            .ranker = r,
                            .policy = CAUSAL_POLICY_DETERMINISTIC,
                            .n_items = n,
                            .pairs = pairs,
                            .positions = pos,
                            .clicks = clk};
    for (unsigned i = 0; i < reps; i++) {
        cr_assert(eq(int, causal_sessions_append(s, &in, &err), CW_OK), "%s", err.msg);
    }
}

/* The per-pair PBM fit over ranks 1..max_rank, no bootstrap. */
static causal_prop_opts pair_opts(uint32_t max_rank)
{
    causal_prop_opts o = causal_prop_opts_default(CAUSAL_PROP_REM);
    o.rel_model = CAUSAL_REL_PAIR;
    o.max_rank = max_rank;
    o.n_boot = 0;
    return o;
}

Test(causal_pair_mle, exact_on_a_saturated_two_rank_log)
{
    /* max_rank 2, pairs a and b swapped by two rankers: P(click) = theta_k gamma_p is
     * saturated, so the MLE reproduces every cell's click rate: a 50/100 at rank 1 and
     * 25/100 at rank 2, b 40/100 and 20/100 -> theta_2/theta_1 = 0.5 exactly. c is clicked
     * on every impression (its gamma goes to the bound theta_1 gamma < 1) but its rank-2
     * rate (5/10) agrees with 0.5; d is never clicked (gamma -> 0): neither moves theta. */
    causal_sessions *s = NULL;
    cw_err err;
    cr_assert(eq(int, causal_sessions_new(&s, &err), CW_OK));
    page(s, "ab", "10", 1, 25); /* a@1 clicked 50 of 100, b@2 20 of 100 */
    page(s, "ab", "11", 1, 20);
    page(s, "ab", "00", 1, 30);
    page(s, "ab", "10", 1, 5);  /* a@1: 25 + 5 = 30 plus 20 = 50 clicks of 100 */
    page(s, "ab", "00", 1, 20); /* 100 pages of ranker 1 */
    page(s, "ba", "11", 2, 10); /* b@1 40 of 100, a@2 25 of 100 */
    page(s, "ba", "10", 2, 30);
    page(s, "ba", "01", 2, 15);
    page(s, "ba", "00", 2, 45);
    page(s, "cd", "10", 3, 5); /* c@1 10 of 10, d@2 0 of 10 */
    page(s, "cd", "10", 3, 5);
    page(s, "dc", "01", 4, 5); /* d@1 0 of 10, c@2 5 of 10 */
    page(s, "dc", "00", 4, 5);
    causal_prop_opts o = pair_opts(2);
    o.max_iter = 5000;
    o.tol = 1e-12;
    causal_propensity p;
    cr_assert(eq(int, causal_propensity_fit(s, &o, &p, &err), CW_OK), "%s", err.msg);
    cr_expect(ieee_ulp_eq(dbl, p.ratio[0], 1.0, 4));
    cr_expect(lt(dbl, fabs(p.ratio[1] - 0.5), 1e-6), "theta_2/theta_1 = %.9g", p.ratio[1]);
    cr_expect(p.converged);
    /* every bootstrap replicate (Poisson weights) is saturated too: its interval holds 0.5 */
    o.n_boot = 20;
    cr_assert(eq(int, causal_propensity_fit(s, &o, &p, &err), CW_OK), "%s", err.msg);
    cr_expect(le(dbl, p.ci_lo[1], 0.5 + 1e-6), "[%g, %g]", p.ci_lo[1], p.ci_hi[1]);
    cr_expect(ge(dbl, p.ci_hi[1], 0.5 - 1e-6), "[%g, %g]", p.ci_lo[1], p.ci_hi[1]);
    causal_sessions_free(s);
}

Test(causal_pair_mle, refuses_a_rank_no_pair_links)
{
    /* a and b swap between ranks 1 and 2, but c is only ever shown at rank 3: nothing
     * separates theta_3 from c's relevance, so theta_3/theta_1 is not identified and must
     * not be reported (harvesting refuses the same log). */
    causal_sessions *s = NULL;
    cw_err err;
    cr_assert(eq(int, causal_sessions_new(&s, &err), CW_OK));
    page(s, "abc", "100", 1, 50);
    page(s, "abc", "011", 1, 50);
    page(s, "bac", "101", 2, 50);
    page(s, "bac", "000", 2, 50);
    causal_prop_opts o = pair_opts(3);
    causal_propensity p;
    cr_expect(eq(int, causal_propensity_fit(s, &o, &p, &err), CW_EINVAL), "ratio %g %g %g",
              p.ratio[0], p.ratio[1], p.ratio[2]);
    cr_expect(ne(ptr, strstr(err.msg, "rank 3"), NULL), "%s", err.msg);
    /* ranks 3 and 4 linked to each other by d, e but not to rank 1: still not identified */
    causal_sessions_free(s);
    cr_assert(eq(int, causal_sessions_new(&s, &err), CW_OK));
    page(s, "abde", "1010", 1, 50);
    page(s, "abde", "0101", 1, 50);
    page(s, "baed", "1001", 2, 50);
    page(s, "baed", "0010", 2, 50);
    o.max_rank = 4;
    cr_expect(eq(int, causal_propensity_fit(s, &o, &p, &err), CW_EINVAL));
    cr_expect(ne(ptr, strstr(err.msg, "rank 3"), NULL), "%s", err.msg);
    o.max_rank = 2; /* the linked ranks alone are fine */
    cr_expect(eq(int, causal_propensity_fit(s, &o, &p, &err), CW_OK), "%s", err.msg);
    causal_sessions_free(s);
}

Test(causal_pair_mle, supplied_relevance_needs_no_pair_at_two_ranks)
{
    /* With rel_fixed every theta_k is identified from a single deterministic ranker (the
     * relevance is known): the per-pair model's "not identified" refusal must not fire. */
    causal_sessions *s = NULL;
    cw_err err;
    cr_assert(eq(int, causal_sessions_new(&s, &err), CW_OK));
    page(s, "ab", "10", 1, 40); /* a@1 40+10 of 100, b@2 10+10 of 100 */
    page(s, "ab", "11", 1, 10);
    page(s, "ab", "01", 1, 10);
    page(s, "ab", "00", 1, 40);
    double rel[2] = {0.5, 0.4}; /* theta_1 = 1, theta_2 = 0.2 / 0.4 = 0.5 */
    causal_prop_opts o = pair_opts(2);
    o.rel_fixed = rel;
    causal_propensity p;
    cr_assert(eq(int, causal_propensity_fit(s, &o, &p, &err), CW_OK), "%s", err.msg);
    cr_expect(lt(dbl, fabs(p.theta[0] - 1.0), 1e-6), "theta_1 %g", p.theta[0]);
    cr_expect(lt(dbl, fabs(p.ratio[1] - 0.5), 1e-6), "theta_2/theta_1 %g", p.ratio[1]);
    causal_sessions_free(s);
}

Test(causal_pair_mle, supplied_relevance_refuses_a_rank_never_shown)
{
    /* Two-item pages but --max-rank 3: with the relevances given, rank 3 has no impression,
     * so its theta is not estimated at all; it was reported as its 0.5 starting value. */
    causal_sessions *s = NULL;
    cw_err err;
    cr_assert(eq(int, causal_sessions_new(&s, &err), CW_OK));
    page(s, "ab", "10", 1, 40);
    page(s, "ab", "01", 1, 10);
    double rel[2] = {0.5, 0.4};
    causal_prop_opts o = pair_opts(3);
    o.rel_fixed = rel;
    causal_propensity p;
    cr_expect(eq(int, causal_propensity_fit(s, &o, &p, &err), CW_EINVAL));
    cr_expect(ne(ptr, strstr(err.msg, "nothing was shown at rank 3"), NULL), "%s", err.msg);
    causal_sessions_free(s);
}

Test(causal_pair_mle, loglik_is_finite_with_a_pair_clicked_on_every_impression)
{
    /* a and b are clicked as often at rank 2 as at rank 1 (theta_2/theta_1 = 1), but
     * pairs seen at one rank make rank 1's raw click rate twice rank 2's, so the fit
     * starts at 0.5 and raises theta_2. h is shown at rank 2 only and clicked every time:
     * each gamma step puts it at the bound theta_2 gamma < 1, and each theta step (which
     * leaves single-rank pairs out) raises theta_2 past it. The reported log-likelihood
     * must still be a number (0 * log of a negative one is NaN). */
    causal_sessions *s = NULL;
    cw_err err;
    cr_assert(eq(int, causal_sessions_new(&s, &err), CW_OK));
    page(s, "ab", "10", 1, 50); /* a@1 50 of 100, b@2 20 of 100 */
    page(s, "ab", "01", 1, 20);
    page(s, "ab", "00", 1, 30);
    page(s, "ba", "10", 2, 20); /* b@1 20 of 100, a@2 50 of 100 */
    page(s, "ba", "01", 2, 50);
    page(s, "ba", "00", 2, 30);
    page(s, "fe", "10", 3, 100); /* f@1 100 of 100, e@2 0 of 100 */
    page(s, "gh", "11", 4, 30);  /* g@1 and h@2 30 of 30 */
    causal_prop_opts o = pair_opts(2);
    causal_propensity p;
    cr_assert(eq(int, causal_propensity_fit(s, &o, &p, &err), CW_OK), "%s", err.msg);
    cr_expect(isfinite(p.loglik), "loglik %g (theta_2/theta_1 %g)", p.loglik, p.ratio[1]);
    causal_sessions_free(s);
}
