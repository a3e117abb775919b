/* Tests of causal/sim.c and causal/sessions.c: reproducibility, user click rates against
 * METHODS.md section 3, logged propensities of every policy, Plackett-Luce list
 * probabilities against their empirical frequency, session-set validation, log round trip. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "causal/causal.h"

/* A session set with one random collection (labels 0..4, 20 docs per query). */
static causal_sessions *make(uint32_t nq, uint32_t nd, uint32_t rankers, causal_simcoll **c)
{
    causal_sessions *s = NULL;
    cw_err err;
    cr_assert(eq(int, causal_sessions_new(&s, &err), CW_OK));
    cr_assert(eq(int, causal_simcoll_random(s, nq, nd, 4, rankers, 1.0, 11, c, &err), CW_OK), "%s",
              err.msg);
    return s;
}

static void run(causal_simcoll *c, const causal_sim_opts *o)
{
    cw_err err;
    cr_assert(eq(int, causal_simulate(c, o, &err), CW_OK), "%s", err.msg);
}

Test(causal_sim, relevance_and_trust_match_methods_tables)
{
    causal_user u = causal_user_default(CAUSAL_USER_PBM, 4);
    const double want[5] = {.10, .16, .28, .52, 1.0};
    for (int y = 0; y <= 4; y++) {
        /* METHODS.md rounds to two decimals: 0.1 + 0.9 * 1/15 = 0.16 exactly. */
        cr_expect(epsilon_eq(dbl, causal_user_relevance(&u, y), want[y], 1e-12), "y=%d", y);
    }
    causal_user u2 = causal_user_default(CAUSAL_USER_PBM, 2);
    cr_expect(epsilon_eq(dbl, causal_user_relevance(&u2, 1), 0.4, 1e-12));
    double a, b;
    causal_user_trust(&u, 1, &a, &b);
    /* k = 1: eps+ = 1 - 2/100 = .98, eps- = .65: alpha = .68 * .33, beta = .68 * .65 */
    cr_expect(epsilon_eq(dbl, a, 0.68 * 0.33, 1e-12));
    cr_expect(epsilon_eq(dbl, b, 0.68 * 0.65, 1e-12));
    causal_user_trust(&u, 12, &a, &b);
    /* k = 12 uses theta_10 = .06, eps+ = .87, eps- = .065 */
    cr_expect(epsilon_eq(dbl, a, 0.06 * (0.87 - 0.065), 1e-12));
    /* UBM: the curve restarts below a click */
    cr_expect(epsilon_eq(dbl, causal_user_ubm_exam(&u, 5, 0), 0.28, 1e-12));
    cr_expect(epsilon_eq(dbl, causal_user_ubm_exam(&u, 5, 4), 0.68, 1e-12));
    causal_user_theta_power(&u, 2.0, 10);
    cr_expect(epsilon_eq(dbl, u.theta[3], 1.0 / 16, 1e-12));
}

Test(causal_sim, same_seed_same_sessions_other_seed_differs)
{
    causal_simcoll *c1, *c2;
    causal_sessions *s1 = make(50, 20, 1, &c1), *s2 = make(50, 20, 1, &c2);
    causal_sim_opts o = causal_sim_opts_default();
    o.policy.kind = CAUSAL_POLICY_PL;
    o.n_sessions = 2000;
    o.seed = 5;
    run(c1, &o);
    run(c2, &o);
    cr_assert(eq(sz, s1->n_items, s2->n_items));
    cr_expect(eq(int, memcmp(s1->i_pair, s2->i_pair, s1->n_items * 4), 0));
    cr_expect(eq(int, memcmp(s1->i_click, s2->i_click, s1->n_items), 0));
    o.seed = 6;
    run(c2, &o); /* appends 2000 more with another seed */
    size_t differ = 0;
    for (size_t j = 0; j < s1->n_items; j++) {
        differ += s1->i_pair[j] != s2->i_pair[s1->n_items + j];
    }
    cr_expect(gt(sz, differ, s1->n_items / 2));
    causal_simcoll_free(c1);
    causal_simcoll_free(c2);
    causal_sessions_free(s1);
    causal_sessions_free(s2);
}

Test(causal_sim, pbm_click_rate_is_theta_times_relevance)
{
    causal_simcoll *c;
    causal_sessions *s = make(200, 10, 1, &c);
    causal_sim_opts o = causal_sim_opts_default();
    o.n_sessions = 100000;
    run(c, &o);
    /* Per (rank, label): clicks / shown vs theta_k * P(R|y). */
    double n[10][5] = {{0}}, k_[10][5] = {{0}};
    for (size_t j = 0; j < s->n_items; j++) {
        int y = s->pair_label[s->i_pair[j]];
        n[s->i_pos[j] - 1][y]++;
        k_[s->i_pos[j] - 1][y] += s->i_click[j];
    }
    for (int k = 0; k < 10; k++) {
        for (int y = 0; y <= 4; y++) {
            if (n[k][y] < 2000) {
                continue;
            }
            double p = o.user.theta[k] * causal_user_relevance(&o.user, y);
            double sd = sqrt(p * (1 - p) / n[k][y]);
            cr_expect(epsilon_eq(dbl, k_[k][y] / n[k][y], p, 5 * sd), "rank %d label %d", k + 1, y);
        }
    }
    causal_simcoll_free(c);
    causal_sessions_free(s);
}

Test(causal_sim, binarized_collection_clicks_relevant_always_when_examined)
{
    /* METHODS.md section 3's (1/k)^eta variant: binary relevance, P(c | examined) = 1 for a
     * relevant document (any label > 0 before) and epsilon = 0.1 for another. At rank 1
     * (theta_1 = 1) a relevant document is then clicked in every session. */
    causal_simcoll *c;
    causal_sessions *s = make(200, 10, 1, &c);
    int8_t before[4000];
    cr_assert(le(sz, s->n_pairs, sizeof before));
    memcpy(before, s->pair_label, s->n_pairs);
    causal_simcoll_binarize(c);
    cr_expect(eq(int, causal_simcoll_max_label(c), 1));
    for (size_t p = 0; p < s->n_pairs; p++) {
        cr_expect(eq(i8, s->pair_label[p], before[p] > 0 ? 1 : before[p]), "pair %zu", p);
    }
    causal_sim_opts o = causal_sim_opts_default();
    o.user = causal_user_default(CAUSAL_USER_PBM, 1);
    causal_user_theta_power(&o.user, 2.0, 10);
    o.policy.kind = CAUSAL_POLICY_RANDTOP; /* every label reaches rank 1 */
    o.n_sessions = 50000;
    run(c, &o);
    double n[2] = {0}, k_[2] = {0};
    for (size_t j = 0; j < s->n_items; j++) {
        if (s->i_pos[j] == 1) {
            int y = s->pair_label[s->i_pair[j]];
            n[y]++;
            k_[y] += s->i_click[j];
        }
    }
    cr_assert(gt(dbl, n[0], 1000));
    cr_assert(gt(dbl, n[1], 1000));
    cr_expect(eq(dbl, k_[1], n[1]), "relevant at rank 1: %g clicks of %g", k_[1], n[1]);
    double sd = sqrt(0.1 * 0.9 / n[0]);
    cr_expect(epsilon_eq(dbl, k_[0] / n[0], 0.1, 5 * sd), "non-relevant: %g", k_[0] / n[0]);
    causal_simcoll_free(c);
    causal_sessions_free(s);
}

Test(causal_sim, randtop_and_swap_log_exact_propensities)
{
    causal_simcoll *c;
    causal_sessions *s = make(20, 15, 1, &c);
    causal_sim_opts o = causal_sim_opts_default();
    o.policy.kind = CAUSAL_POLICY_RANDTOP;
    o.policy.randtop_n = 4;
    o.n_sessions = 100;
    run(c, &o);
    for (size_t i = 0; i < s->n_sessions; i++) {
        cr_assert(eq(u8, s->s_policy[i], CAUSAL_POLICY_RANDTOP));
        cr_expect(eq(u16, s->s_param[i], 4));
        cr_expect(epsilon_eq(dbl, s->s_logp[i], -log(24.0), 1e-9));
        for (size_t j = s->s_begin[i]; j < s->s_begin[i + 1]; j++) {
            cr_expect(epsilon_eq(flt, s->i_prop[j], s->i_pos[j] <= 4 ? 0.25f : 1.0f, 1e-6));
        }
    }
    causal_sessions_clear(s);
    o.policy.kind = CAUSAL_POLICY_SWAP;
    o.policy.swap_share = 0.5;
    o.n_sessions = 20000;
    run(c, &o);
    /* P(top doc at k > 1) = share / K = 0.05; unswapped = 1 - .5 + .05 = .55 */
    uint64_t at[11] = {0};
    for (size_t i = 0; i < s->n_sessions; i++) {
        uint32_t k = s->s_param[i];
        cr_assert(k >= 1 && k <= 10);
        at[k]++;
        double want = k == 1 ? 0.55 : 0.05;
        cr_expect(epsilon_eq(dbl, s->s_logp[i], log(want), 1e-9));
        /* the item at rank k has the highest score */
        size_t b = s->s_begin[i];
        float best = -INFINITY;
        uint32_t best_pos = 0;
        for (size_t j = b; j < s->s_begin[i + 1]; j++) {
            if (s->i_score[j] > best) {
                best = s->i_score[j];
                best_pos = s->i_pos[j];
            }
        }
        cr_expect(eq(u32, best_pos, k));
    }
    double sd = sqrt(0.55 * 0.45 / 20000.0);
    cr_expect(epsilon_eq(dbl, at[1] / 20000.0, 0.55, 5 * sd));
    causal_simcoll_free(c);
    causal_sessions_free(s);
}

Test(causal_sim, plackett_luce_logp_matches_frequency_and_hand_value)
{
    causal_sessions *s = NULL;
    causal_simcoll *c = NULL;
    cw_err err;
    cr_assert(eq(int, causal_sessions_new(&s, &err), CW_OK));
    cr_assert(eq(int, causal_simcoll_new(s, 1, NULL, &c, &err), CW_OK));
    const char *ids[3] = {"a", "b", "c"};
    int labels[3] = {2, 1, 0};
    double sc[3] = {1.0, 0.0, -1.0};
    const double *rows[1] = {sc};
    cr_assert(eq(int, causal_simcoll_add(c, "q", 3, ids, labels, rows, NULL, &err), CW_OK));
    causal_sim_opts o = causal_sim_opts_default();
    o.user = causal_user_default(CAUSAL_USER_PBM, 2);
    o.policy.kind = CAUSAL_POLICY_PL;
    o.policy.k = 3;
    o.policy.pl_mc_samples = 2000;
    o.n_sessions = 20000;
    run(c, &o);
    /* P(a, b, c) = e^1/(e^1 + 1 + e^-1) * 1/(1 + e^-1) */
    double want = exp(1.0) / (exp(1.0) + 1 + exp(-1.0)) / (1 + exp(-1.0));
    size_t hits = 0;
    for (size_t i = 0; i < s->n_sessions; i++) {
        size_t b = s->s_begin[i];
        bool abc = s->pair_doc[s->i_pair[b]] == 0 && s->pair_doc[s->i_pair[b + 1]] == 1;
        if (abc) {
            hits++;
            cr_expect(epsilon_eq(dbl, s->s_logp[i], log(want), 1e-9));
        }
    }
    double sd = sqrt(want * (1 - want) / 20000.0);
    cr_expect(epsilon_eq(dbl, hits / 20000.0, want, 5 * sd));
    /* Monte-Carlo marginal of "a" at rank 1 ~ e/(e + 1 + 1/e) with M = 2000 samples. */
    double pa = exp(1.0) / (exp(1.0) + 1 + exp(-1.0));
    for (size_t i = 0; i < 50; i++) {
        size_t b = s->s_begin[i];
        if (s->pair_doc[s->i_pair[b]] == 0) {
            cr_expect(epsilon_eq(dbl, s->i_prop[b], pa, 5 * sqrt(pa * (1 - pa) / 2000)));
        }
    }
    causal_simcoll_free(c);
    causal_sessions_free(s);
}

Test(causal_sim, cascade_user_clicks_at_most_once_when_always_satisfied)
{
    causal_simcoll *c;
    causal_sessions *s = make(50, 10, 1, &c);
    causal_sim_opts o = causal_sim_opts_default();
    o.user = causal_user_default(CAUSAL_USER_CASCADE, 4);
    for (int y = 0; y <= 4; y++) {
        o.user.p_stop[y] = 1.0;
    }
    o.n_sessions = 5000;
    run(c, &o);
    for (size_t i = 0; i < s->n_sessions; i++) {
        int n = 0;
        for (size_t j = s->s_begin[i]; j < s->s_begin[i + 1]; j++) {
            n += s->i_click[j];
        }
        cr_assert(le(int, n, 1));
    }
    causal_simcoll_free(c);
    causal_sessions_free(s);
}

Test(causal_sim, bad_options_and_bad_sessions_are_refused)
{
    causal_simcoll *c;
    causal_sessions *s = make(5, 5, 1, &c);
    cw_err err;
    causal_sim_opts o = causal_sim_opts_default();
    o.policy.k = 0;
    cr_expect(eq(int, causal_simulate(c, &o, &err), CW_EINVAL));
    o = causal_sim_opts_default();
    o.user.ymax = 2; /* the collection has labels up to 4 */
    cr_expect(eq(int, causal_simulate(c, &o, &err), CW_EINVAL));
    cr_expect(ne(ptr, strstr(err.msg, "ymax"), NULL), "%s", err.msg);
    o = causal_sim_opts_default();
    o.n_rankers = 3;
    cr_expect(eq(int, causal_simulate(c, &o, &err), CW_EINVAL));
    int bad_label[1] = {99};
    const char *ids[1] = {"x"};
    double sc[1] = {0};
    const double *rows[1] = {sc};
    cr_expect(
        eq(int, causal_simcoll_add(c, "qbad", 1, ids, bad_label, rows, NULL, &err), CW_EINVAL));
    cr_expect(ne(ptr, strstr(err.msg, "label 99"), NULL), "%s", err.msg);
    /* session-set validation */
    uint32_t pair[2] = {0, 1};
    uint16_t pos[2] = {2, 2};
    uint8_t clk[2] = {0, 2};
    causal_session_in in = {0, 0, CAUSAL_POLICY_DETERMINISTIC, 0, 0, 2, pair, pos, clk, NULL, NULL};
    cr_expect(eq(int, causal_sessions_append(s, &in, &err), CW_EINVAL));
    cr_expect(ne(ptr, strstr(err.msg, "not increasing"), NULL), "%s", err.msg);
    pos[1] = 3;
    cr_expect(eq(int, causal_sessions_append(s, &in, &err), CW_EINVAL));
    cr_expect(ne(ptr, strstr(err.msg, "not 0/1"), NULL), "%s", err.msg);
    clk[1] = 1;
    cr_expect(eq(int, causal_sessions_append(s, &in, &err), CW_OK));
    causal_simcoll_free(c);
    causal_sessions_free(s);
}

Test(causal_sim, log_round_trip_keeps_policy_clicks_and_counts_deep_items)
{
    char dir[] = "/tmp/cw_sim_XXXXXX", path[128];
    cr_assert(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/log.db", dir);
    causal_simcoll *c;
    causal_sessions *s = make(30, 12, 1, &c);
    causal_sim_opts o = causal_sim_opts_default();
    o.policy.kind = CAUSAL_POLICY_SWAP;
    o.n_sessions = 300;
    run(c, &o);
    cw_err err;
    cr_assert(
        eq(int, causal_sessions_save_log(s, 0, s->n_sessions, path, 1000, 64, NULL, &err), CW_OK),
        "%s", err.msg);
    causal_sessions *r = NULL;
    causal_load_stats st;
    cr_assert(eq(int, causal_sessions_load_log(path, 6, &r, &st, &err), CW_OK), "%s", err.msg);
    cr_expect(eq(u64, st.n_impressions, 300));
    cr_expect(eq(u64, st.n_deep, 300 * 4)); /* ranks 7..10 beyond max rank 6 */
    size_t clicks_in = 0, clicks_out = 0;
    for (size_t i = 0; i < s->n_sessions; i++) {
        for (size_t j = s->s_begin[i]; j < s->s_begin[i + 1]; j++) {
            clicks_in += s->i_pos[j] <= 6 && s->i_click[j];
        }
    }
    for (size_t j = 0; j < r->n_items; j++) {
        clicks_out += r->i_click[j];
    }
    cr_expect(eq(sz, clicks_in, clicks_out));
    for (size_t i = 0; i < r->n_sessions; i++) {
        cr_expect(eq(u8, r->s_policy[i], CAUSAL_POLICY_SWAP));
        /* swap rank recovered from the logged scores (if within rank 6) */
        if (s->s_param[i] <= 6) {
            cr_expect(eq(u16, r->s_param[i], s->s_param[i]));
        }
    }
    causal_sessions_free(r);
    /* an empty log is refused with a reason */
    char empty[160];
    snprintf(empty, sizeof empty, "%s/empty.db", dir);
    causal_log *lg = NULL;
    cr_assert(eq(int, causal_log_open(empty, NULL, &lg, &err), CW_OK));
    causal_log_close(lg);
    cr_expect(eq(int, causal_sessions_load_log(empty, 10, &r, &st, &err), CW_EINVAL));
    cr_expect(ne(ptr, strstr(err.msg, "empty log"), NULL), "%s", err.msg);
    causal_simcoll_free(c);
    causal_sessions_free(s);
    cr_expect(eq(int, cw_rmtree(dir, &err), CW_OK));
}

Test(causal_sim, items_without_propensities_are_counted_on_load)
{
    char dir[] = "/tmp/cw_simp_XXXXXX", path[128];
    cr_assert(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/log.db", dir);
    causal_simcoll *c;
    causal_sessions *s = make(10, 12, 1, &c);
    causal_sim_opts o = causal_sim_opts_default();
    o.policy.kind = CAUSAL_POLICY_PL; /* no Monte-Carlo marginals: propensities unknown */
    o.n_sessions = 50;
    run(c, &o);
    cw_err err;
    cr_assert(
        eq(int, causal_sessions_save_log(s, 0, s->n_sessions, path, 1, 50, NULL, &err), CW_OK),
        "%s", err.msg);
    causal_sessions *r = NULL;
    causal_load_stats st;
    cr_assert(eq(int, causal_sessions_load_log(path, 10, &r, &st, &err), CW_OK), "%s", err.msg);
    cr_expect(eq(u64, st.n_no_prop, 500));
    cr_expect(eq(u8, r->s_policy[0], CAUSAL_POLICY_PL));
    cr_expect(epsilon_eq(dbl, r->s_logp[0], s->s_logp[0], 1e-9));
    causal_sessions_free(r);
    causal_simcoll_free(c);
    causal_sessions_free(s);
    cr_expect(eq(int, cw_rmtree(dir, &err), CW_OK));
}

Test(causal_sim, interventions_counted_by_hand_issue4)
{
    /* One query, docs a b c d; ranker 0 orders a b c d, ranker 1 orders b a d c. Within the
     * top 3: a at ranks 1 and 2, b at 2 and 1, c at 3 only (ranker 1 shows it at 4), d at 3
     * only: S_{1,2} = S_{2,1} = {a, b}, nothing else. */
    causal_sessions *s = NULL;
    causal_simcoll *c = NULL;
    cw_err err;
    cr_assert(eq(int, causal_sessions_new(&s, &err), CW_OK));
    cr_assert(eq(int, causal_simcoll_new(s, 2, NULL, &c, &err), CW_OK));
    const char *ids[4] = {"a", "b", "c", "d"};
    int labels[4] = {1, 0, 0, 0};
    double s0[4] = {4, 3, 2, 1}, s1[4] = {3, 4, 1, 2};
    const double *rows[2] = {s0, s1};
    cr_assert(eq(int, causal_simcoll_add(c, "q", 4, ids, labels, rows, NULL, &err), CW_OK));
    double n[9];
    cr_assert(eq(int, causal_simcoll_interventions(c, 2, 3, n, &err), CW_OK), "%s", err.msg);
    double want[9] = {0, 2, 0, 2, 0, 0, 0, 0, 0};
    for (int i = 0; i < 9; i++) {
        cr_expect(eq(dbl, n[i], want[i]), "n_hat[%d][%d] = %g, want %g", i / 3 + 1, i % 3 + 1, n[i],
                  want[i]);
    }
    /* the top 4: c at 3 and 4, d at 4 and 3 as well */
    double n4[16];
    cr_assert(eq(int, causal_simcoll_interventions(c, 2, 4, n4, &err), CW_OK));
    cr_expect(eq(dbl, n4[2 * 4 + 3], 2));
    cr_expect(eq(dbl, n4[3 * 4 + 2], 2));
    /* one ranker: every pair at one rank, no interventions */
    cr_assert(eq(int, causal_simcoll_interventions(c, 1, 3, n, &err), CW_OK));
    for (int i = 0; i < 9; i++) {
        cr_expect(eq(dbl, n[i], 0));
    }
    cr_expect(eq(int, causal_simcoll_interventions(c, 3, 3, n, &err), CW_EINVAL));
    causal_simcoll_free(c);
    causal_sessions_free(s);
}

Test(causal_sim, skip_unjudged_draws_only_queries_with_a_relevant_candidate_issue4)
{
    causal_sessions *s = NULL;
    causal_simcoll *c = NULL;
    cw_err err;
    cr_assert(eq(int, causal_sessions_new(&s, &err), CW_OK));
    cr_assert(eq(int, causal_simcoll_new(s, 1, NULL, &c, &err), CW_OK));
    const char *ids[2] = {"x", "y"};
    int none[2] = {0, 0}, some[2] = {0, 2};
    double sc[2] = {2, 1};
    const double *rows[1] = {sc};
    cr_assert(eq(int, causal_simcoll_add(c, "unjudged", 2, ids, none, rows, NULL, &err), CW_OK));
    cr_assert(eq(int, causal_simcoll_add(c, "judged", 2, ids, some, rows, NULL, &err), CW_OK));
    causal_sim_opts o = causal_sim_opts_default();
    o.policy.k = 2;
    o.n_sessions = 2000;
    run(c, &o);
    size_t n_unjudged = 0;
    for (size_t i = 0; i < s->n_sessions; i++) {
        n_unjudged += strcmp(s->query_names[s->s_query[i]], "unjudged") == 0;
    }
    cr_expect(gt(sz, n_unjudged, 900), "default: both queries (%zu of 2000)", n_unjudged);
    causal_sessions_clear(s);
    o.skip_unjudged = true;
    run(c, &o);
    cr_assert(eq(sz, s->n_sessions, 2000));
    for (size_t i = 0; i < s->n_sessions; i++) {
        cr_assert(eq(str, s->query_names[s->s_query[i]], "judged"), "session %zu", i);
    }
    causal_simcoll_free(c);
    /* a collection without any relevant candidate cannot serve such sessions */
    causal_sessions *s2 = NULL;
    cr_assert(eq(int, causal_sessions_new(&s2, &err), CW_OK));
    cr_assert(eq(int, causal_simcoll_new(s2, 1, NULL, &c, &err), CW_OK));
    cr_assert(eq(int, causal_simcoll_add(c, "unjudged", 2, ids, none, rows, NULL, &err), CW_OK));
    cr_expect(eq(int, causal_simulate(c, &o, &err), CW_EINVAL));
    cr_expect(ne(ptr, strstr(err.msg, "no query of the collection has a relevant candidate"), NULL),
              "%s", err.msg);
    causal_simcoll_free(c);
    causal_sessions_free(s2);
    causal_sessions_free(s);
}

/* Review regression: a pair's features were copied only from the impression that created
 * the pair, so a pair first shown without a vector kept zeros forever (regression-EM fitted
 * on them, silently). Impression 1 shows d1 and d2 without features; impression 2 shows
 * d1 with a vector; d2 never gets one and is counted. */
Test(causal_sim, a_pair_takes_the_first_logged_vector_and_pairs_without_one_are_counted)
{
    char dir[] = "/tmp/cw_simf_XXXXXX", path[128];
    cr_assert(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/log.db", dir);
    cw_err err;
    causal_log *lg = NULL;
    cr_assert(eq(int, causal_log_open(path, NULL, &lg, &err), CW_OK), "%s", err.msg);
    static const char *const names[] = {"f0", "f1"};
    const float v[2] = {3.5f, -1.25f};
    causal_item bare[2] = {{"d1", 1, 2.0, 0.5, NULL, 0}, {"d2", 2, 1.0, 0.5, NULL, 0}};
    causal_item with[1] = {{"d1", 1, 2.0, 0.5, v, 0}};
    causal_impression imps[2] = {
        {.id = 1,
         .ts_ms = 1,
         .query = "q",
         .policy = "bm25",
         .log_prob = NAN,
         .temperature = NAN,
         .n_items = 2,
         .items = bare},
        {.id = 2,
         .ts_ms = 2,
         .query = "q",
         .policy = "bm25",
         .log_prob = NAN,
         .temperature = NAN,
         .feature_set = "fs",
         .feature_names = names,
         .n_features = 2,
         .n_items = 1,
         .items = with},
    };
    cr_assert(eq(int, causal_log_append_impressions(lg, imps, 2, &err), CW_OK), "%s", err.msg);
    causal_log_close(lg);
    causal_sessions *r = NULL;
    causal_load_stats st;
    cr_assert(eq(int, causal_sessions_load_log(path, 10, &r, &st, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(u32, r->n_features, 2));
    cr_assert(eq(sz, r->n_pairs, 2));
    uint32_t q = 0, d1 = 0;
    cr_assert(eq(int, causal_sessions_query(r, "q", &q, &err), CW_OK));
    cr_assert(eq(int, causal_sessions_doc(r, "d1", &d1, &err), CW_OK));
    uint32_t p1 = 0;
    cr_assert(eq(int, causal_sessions_pair(r, q, d1, -1, &p1, &err), CW_OK));
    cr_expect(eq(flt, r->pair_features[(size_t)p1 * 2], 3.5f));
    cr_expect(eq(flt, r->pair_features[(size_t)p1 * 2 + 1], -1.25f));
    cr_expect(eq(u64, st.n_pairs_no_features, 1));
    causal_sessions_free(r);
    cr_expect(eq(int, cw_rmtree(dir, &err), CW_OK));
}
