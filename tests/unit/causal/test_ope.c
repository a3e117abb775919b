/* Tests of causal/ope.c: every estimator against the true value of a target policy on
 * simulated PBM clicks with known examination and relevance (mean over repetitions within
 * its standard error, interval coverage), hand-computed values on a two-impression log,
 * and the documented errors for missing or impossible propensities. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "causal/causal.h"
#include "ranker/ranker.h"

#define NQ 4
#define NC 5
#define K 3

/* METHODS.md section 3: theta for ranks 1..3, P(R=1|y) for ymax = 4. */
static const double theta[K] = {0.68, 0.61, 0.48};
static const double p_rel[5] = {0.10, 0.16, 0.28, 0.52, 1.0};
static const double lambda[K] = {1, 1, 1};

typedef struct world {
    double sb[NQ][NC], se[NQ][NC]; /* logging and target scores */
    int label[NQ][NC];
    causal_rpol logging, target;
    double pb[NQ][NC * K], pe[NQ][NC * K];
    double q_model[NQ][NC * K]; /* the click model DM/DR use (possibly wrong) */
    double truth;
} world;

static void world_init(world *w, causal_rpol target, bool is_model_right, uint64_t seed)
{
    cw_rng rng;
    cw_rng_seed(&rng, seed);
    w->logging = (causal_rpol){CAUSAL_RPOL_PL, 1.0, 1, 0};
    w->target = target;
    w->truth = 0;
    for (int q = 0; q < NQ; q++) {
        for (int d = 0; d < NC; d++) {
            w->label[q][d] = (int)cw_rng_below(&rng, 5);
            w->sb[q][d] = cw_rng_normal(&rng);
            /* The target leans towards relevance: a better ranker than the logger. */
            w->se[q][d] = w->label[q][d] + 0.5 * cw_rng_normal(&rng);
        }
        cr_assert(
            eq(int, causal_rpol_marginals(&w->logging, w->sb[q], NC, K, w->pb[q], NULL), CW_OK));
        cr_assert(
            eq(int, causal_rpol_marginals(&w->target, w->se[q], NC, K, w->pe[q], NULL), CW_OK));
        for (int d = 0; d < NC; d++) {
            for (int j = 0; j < K; j++) {
                double p = theta[j] * p_rel[w->label[q][d]];
                w->q_model[q][d * K + j] = is_model_right ? p : 0.3;
                w->truth += w->pe[q][d * K + j] * lambda[j] * p / NQ;
            }
        }
    }
}

typedef struct logbuf {
    causal_ope_data d;
    causal_ope_arrays a;
    uint32_t *group;
    uint8_t *click;
} logbuf;

static void logbuf_fill(logbuf *b, const world *w, size_t n, cw_rng *rng)
{
    memset(b, 0, sizeof *b);
    b->group = malloc(n * sizeof *b->group);
    b->click = malloc(n * K);
    double **arrs[] = {&b->a.lpb_prefix, &b->a.lpe_prefix, &b->a.pb_marg,
                       &b->a.pe_marg,    &b->a.rho_b,      &b->a.omega_e,
                       &b->a.q_hat,      &b->a.cdr_q,      &b->a.cdr_v};
    for (size_t t = 0; t < CW_ARRAY_LEN(arrs); t++) {
        *arrs[t] = malloc(n * K * sizeof(double));
    }
    b->a.dm_e = malloc(n * sizeof(double));
    b->a.unsupported = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) {
        uint32_t q = (uint32_t)cw_rng_below(rng, NQ), shown[K];
        double lpb[K];
        cr_assert(
            eq(int, causal_rpol_sample(&w->logging, w->sb[q], NC, K, rng, shown, NULL), CW_OK));
        cr_assert(
            eq(int, causal_rpol_log_prob(&w->logging, w->sb[q], NC, shown, K, lpb, NULL), CW_OK));
        for (int j = 0; j < K; j++) {
            b->click[i * K + j] =
                cw_rng_bernoulli(rng, theta[j] * p_rel[w->label[q][shown[j]]]) ? 1 : 0;
        }
        causal_ope_row row = {
            .n_cand = NC,
            .shown = shown,
            .lpb_prefix = lpb,
            .pb_marg = w->pb[q],
            .target = &w->target,
            .target_scores = w->se[q],
            .pe_marg = w->pe[q],
            .theta = theta,
            .q_click = w->q_model[q],
            .support_floor = 1e-9,
        };
        cr_assert(eq(int, causal_ope_fill_row(&row, K, lambda, i, &b->a, NULL), CW_OK));
        b->group[i] = q;
    }
    b->d = (causal_ope_data){
        .n = n,
        .k = K,
        .group = NULL,
        .lambda = lambda,
        .click = b->click,
        .lpb_prefix = b->a.lpb_prefix,
        .lpe_prefix = b->a.lpe_prefix,
        .pb_marg = b->a.pb_marg,
        .pe_marg = b->a.pe_marg,
        .rho_b = b->a.rho_b,
        .omega_e = b->a.omega_e,
        .q_hat = b->a.q_hat,
        .dm_e = b->a.dm_e,
        .cdr_q = b->a.cdr_q,
        .cdr_v = b->a.cdr_v,
        .unsupported = b->a.unsupported,
    };
}

static void logbuf_free(logbuf *b)
{
    double *arrs[] = {b->a.lpb_prefix, b->a.lpe_prefix, b->a.pb_marg,    b->a.pe_marg,
                      b->a.rho_b,      b->a.omega_e,    b->a.q_hat,      b->a.cdr_q,
                      b->a.cdr_v,      b->a.dm_e,       b->a.unsupported};
    for (size_t t = 0; t < CW_ARRAY_LEN(arrs); t++) {
        free(arrs[t]);
    }
    free(b->group);
    free(b->click);
}

/* R repetitions of n impressions: the mean estimate must be within 4 standard errors of
 * the truth (unbiasedness), and the analytic 95% interval must cover it in 88-100% of
 * repetitions (binomial sd at R = 300 is 1.3 points) for the slot-level estimators. */
static void check_unbiased(causal_rpol target, bool is_model_right, const causal_est *ests,
                           size_t n_est, uint64_t seed)
{
    world w;
    world_init(&w, target, is_model_right, seed);
    const int R = 300;
    const size_t n = 1500;
    double sum[CAUSAL_N_EST] = {0}, sum2[CAUSAL_N_EST] = {0};
    int cover[CAUSAL_N_EST] = {0};
    cw_rng rng;
    cw_rng_seed(&rng, seed * 7 + 1);
    causal_ope_opts o = causal_ope_opts_default();
    o.n_boot = 0;
    for (int r = 0; r < R; r++) {
        logbuf b;
        logbuf_fill(&b, &w, n, &rng);
        for (size_t e = 0; e < n_est; e++) {
            causal_ope_result res;
            cw_err err;
            cr_assert(eq(int, causal_ope_estimate(&b.d, ests[e], &o, &res, &err), CW_OK), "%s",
                      err.msg);
            sum[e] += res.value;
            sum2[e] += res.value * res.value;
            cover[e] += res.ci_lo <= w.truth && w.truth <= res.ci_hi;
        }
        logbuf_free(&b);
    }
    for (size_t e = 0; e < n_est; e++) {
        double mean = sum[e] / R, sd = sqrt(fmax(sum2[e] / R - mean * mean, 0));
        cr_expect(fabs(mean - w.truth) <= 4 * sd / sqrt(R) + 1e-12,
                  "%s: mean %.5f truth %.5f sd %.5f (seed %llu)", causal_est_name(ests[e]), mean,
                  w.truth, sd, (unsigned long long)seed);
        /* SIPS and RIPS weight whole rankings (up to 1/pi_b(ranking), ~100 here): at this
         * n their Gaussian intervals under-cover, a documented property, not a bug. */
        if (ests[e] != CAUSAL_EST_SIPS && ests[e] != CAUSAL_EST_RIPS) {
            cr_expect(cover[e] >= 0.88 * R, "%s: coverage %d/%d (seed %llu)",
                      causal_est_name(ests[e]), cover[e], R, (unsigned long long)seed);
        }
    }
}

Test(causal_ope, estimators_unbiased_for_a_stochastic_target_under_pbm_clicks)
{
    const causal_est ests[] = {CAUSAL_EST_IIPS, CAUSAL_EST_SNIPS, CAUSAL_EST_SIPS, CAUSAL_EST_RIPS,
                               CAUSAL_EST_PBM,  CAUSAL_EST_DR,    CAUSAL_EST_CDR,  CAUSAL_EST_DM};
    /* DM only with the right model; DR and Cascade-DR with a wrong one (0.3 everywhere). */
    check_unbiased((causal_rpol){CAUSAL_RPOL_PL, 0.5, 1, 0}, false, ests, 7, 11);
    check_unbiased((causal_rpol){CAUSAL_RPOL_PL, 0.5, 1, 0}, true, ests, 8, 12);
}

Test(causal_ope, estimators_unbiased_for_a_deterministic_target)
{
    const causal_est ests[] = {CAUSAL_EST_IIPS, CAUSAL_EST_SNIPS, CAUSAL_EST_SIPS, CAUSAL_EST_RIPS,
                               CAUSAL_EST_PBM,  CAUSAL_EST_DR,    CAUSAL_EST_CDR};
    check_unbiased((causal_rpol){CAUSAL_RPOL_DET, 1, 1, 0}, false, ests, 7, 21);
}

Test(causal_ope, dm_with_a_wrong_model_is_biased_and_dr_repairs_it)
{
    world w;
    world_init(&w, (causal_rpol){CAUSAL_RPOL_PL, 0.5, 1, 0}, false, 5);
    cw_rng rng;
    cw_rng_seed(&rng, 3);
    logbuf b;
    logbuf_fill(&b, &w, 20000, &rng);
    causal_ope_result dm, dr;
    cr_assert(eq(int, causal_ope_estimate(&b.d, CAUSAL_EST_DM, NULL, &dm, NULL), CW_OK));
    cr_assert(eq(int, causal_ope_estimate(&b.d, CAUSAL_EST_DR, NULL, &dr, NULL), CW_OK));
    /* The constant model predicts 0.3 per slot: DM = 0.9 whatever the target does. */
    cr_expect(epsilon_eq(dbl, dm.value, 0.9, 1e-9));
    cr_expect(fabs(dr.value - w.truth) <= 4 * dr.se, "dr %.4f truth %.4f se %.4f", dr.value,
              w.truth, dr.se);
    cr_expect(fabs(dm.value - w.truth) > 0.1);
    /* Bootstrap over queries and the analytic interval agree in width within a factor 2
     * (impressions as units: each impression its own group here). */
    cr_expect(dr.boot_lo < dr.value && dr.value < dr.boot_hi);
    double wb = dr.boot_hi - dr.boot_lo, wa = dr.ci_hi - dr.ci_lo;
    cr_expect(wb > 0.5 * wa && wb < 2 * wa, "bootstrap %.4f analytic %.4f", wb, wa);
    logbuf_free(&b);
}

/* Two impressions, k = 2, values chosen so every estimator can be checked by hand. */
Test(causal_ope, hand_computed_values_on_two_impressions)
{
    const double lam[2] = {1, 0.5};
    const uint8_t click[4] = {1, 0, 0, 1};
    const double pb[4] = {0.5, 0.25, 0.2, 0.4}, pe[4] = {1.0, 0.5, 0.1, 0.2};
    const double lpb[4] = {log(0.5), log(0.1), log(0.2), log(0.08)};
    const double lpe[4] = {log(1.0), log(0.5), log(0.1), -INFINITY};
    const double qh[4] = {0.5, 0.25, 0.2, 0.1}, dm[2] = {0.6, 0.4};
    causal_ope_data d = {.n = 2,
                         .k = 2,
                         .lambda = lam,
                         .click = click,
                         .lpb_prefix = lpb,
                         .lpe_prefix = lpe,
                         .pb_marg = pb,
                         .pe_marg = pe,
                         .q_hat = qh,
                         .dm_e = dm};
    causal_ope_opts o = causal_ope_opts_default();
    o.n_boot = 0;
    causal_ope_result r;
    /* IIPS terms: i0 = 2 * 1 = 2; i1 = 0.5 * 0.5 (slot 2 reward 0.5, weight 0.5) = 0.25. */
    cr_assert(eq(int, causal_ope_estimate(&d, CAUSAL_EST_IIPS, &o, &r, NULL), CW_OK));
    cr_expect(epsilon_eq(dbl, r.value, 1.125, 1e-12));
    /* s^2 = ((2 - 1.125)^2 + (0.25 - 1.125)^2) / 1 = 1.53125; se = sqrt(s^2 / 2). */
    cr_expect(epsilon_eq(dbl, r.se, sqrt(1.53125 / 2), 1e-12));
    /* SNIPS per slot: slot 1 (2*1 + 0.5*0) / (2 + 0.5) = 0.8; slot 2 (0 + 0.5*0.5)/(2+0.5). */
    cr_assert(eq(int, causal_ope_estimate(&d, CAUSAL_EST_SNIPS, &o, &r, NULL), CW_OK));
    cr_expect(epsilon_eq(dbl, r.value, 0.8 + 0.1, 1e-12));
    cr_expect(epsilon_eq(dbl, r.n_eff, (2.5 * 2.5) / (4 + 0.25), 1e-12));
    /* SIPS: w0 = 0.5/0.1 = 5, R0 = 1; w1 = 0. */
    cr_assert(eq(int, causal_ope_estimate(&d, CAUSAL_EST_SIPS, &o, &r, NULL), CW_OK));
    cr_expect(epsilon_eq(dbl, r.value, 2.5, 1e-12));
    /* RIPS: i0 = 2 * 1 + 5 * 0 = 2; i1 = 0.5 * 0 + 0 * 0.5 = 0. */
    cr_assert(eq(int, causal_ope_estimate(&d, CAUSAL_EST_RIPS, &o, &r, NULL), CW_OK));
    cr_expect(epsilon_eq(dbl, r.value, 1.0, 1e-12));
    /* DR: i0 = 0.6 + 2 (1 - 0.5) + 2 (0 - 0.25) = 1.1; i1 = 0.4 + 0.5 (0 - 0.2)
     * + 0.5 (0.5 - 0.1) = 0.5. */
    cr_assert(eq(int, causal_ope_estimate(&d, CAUSAL_EST_DR, &o, &r, NULL), CW_OK));
    cr_expect(epsilon_eq(dbl, r.value, 0.8, 1e-12));
    /* PI: i0 = R (w1 + w2 - 1) = 1 * (2 + 2 - 1) = 3; i1 = 0.5 * (0.5 + 0.5 - 1) = 0. */
    cr_assert(eq(int, causal_ope_estimate(&d, CAUSAL_EST_PI, &o, &r, NULL), CW_OK));
    cr_expect(epsilon_eq(dbl, r.value, 1.5, 1e-12));
    cr_assert(eq(int, causal_ope_estimate(&d, CAUSAL_EST_DM, &o, &r, NULL), CW_OK));
    cr_expect(epsilon_eq(dbl, r.value, 0.5, 1e-12));
    /* Cascade-DR, prefix weights i0: 2, 5; i1: 0.5, 0.
     * i0 = 2 (1 - 0.4) + 1 * 0.5 + 5 (0 - 0.2) + 2 * 0.25 = 1.2;
     * i1 = 0.5 (0 - 0.3) + 1 * 0.35 + 0 (0.5 - 0.1) + 0.5 * 0.15 = 0.275. */
    const double cq[4] = {0.4, 0.2, 0.3, 0.1}, cv[4] = {0.5, 0.25, 0.35, 0.15};
    d.cdr_q = cq;
    d.cdr_v = cv;
    cr_assert(eq(int, causal_ope_estimate(&d, CAUSAL_EST_CDR, &o, &r, NULL), CW_OK));
    cr_expect(epsilon_eq(dbl, r.value, (1.2 + 0.275) / 2, 1e-12));
    /* PBM: clicked i0 slot 1 (0.6 / 0.5) and i1 slot 2 (0.2 / 0.2). */
    const double rho[4] = {0.5, 0.4, 0.25, 0.2}, om[4] = {0.6, 0.3, 0.1, 0.2};
    d.rho_b = rho;
    d.omega_e = om;
    cr_assert(eq(int, causal_ope_estimate(&d, CAUSAL_EST_PBM, &o, &r, NULL), CW_OK));
    cr_expect(epsilon_eq(dbl, r.value, 1.1, 1e-12));
}

Test(causal_ope, missing_and_impossible_propensities_are_errors_that_say_what_remains_valid)
{
    const double lam[1] = {1};
    const uint8_t click[2] = {1, 0};
    double pb[2] = {0.5, NAN}, pe[2] = {0.5, 0.5}, dm[2] = {0.3, 0.3};
    causal_ope_data d = {.n = 2, .k = 1, .lambda = lam, .click = click, .pe_marg = pe, .dm_e = dm};
    causal_ope_result r;
    cw_err err;
    cr_expect(eq(int, causal_ope_estimate(&d, CAUSAL_EST_IIPS, NULL, &r, &err), CW_EINVAL));
    cr_expect(eq(str, err.msg,
                 "iips needs logged item-position propensities (item-position weights "
                 "pi_e(d@j)/pi_b(d@j)), which the input lacks; estimators that stay valid without "
                 "it: dm (click model only) and pbm (propensity model, when the logging policy is "
                 "deterministic or reconstructible)"));
    cr_expect(eq(int, causal_ope_estimate(&d, CAUSAL_EST_DM, NULL, &r, &err), CW_OK));
    d.pb_marg = pb;
    cr_expect(eq(int, causal_ope_estimate(&d, CAUSAL_EST_SNIPS, NULL, &r, &err), CW_EINVAL));
    cr_expect(eq(str, err.msg,
                 "impression 1 slot 1: logging propensity not logged; item-position estimators "
                 "(iips, snips, dr, pi) need it for every shown item; dm and pbm stay valid"));
    pb[1] = 0;
    cr_expect(eq(int, causal_ope_estimate(&d, CAUSAL_EST_IIPS, NULL, &r, &err), CW_EINVAL));
    cr_expect(eq(str, err.msg,
                 "impression 1 slot 1: logged propensity 0 for a shown item is impossible (must "
                 "be in (0, 1]): the log is inconsistent"));
    double lpb[2] = {log(0.5), -INFINITY}, lpe[2] = {0, 0};
    d.lpb_prefix = lpb;
    d.lpe_prefix = lpe;
    cr_expect(eq(int, causal_ope_estimate(&d, CAUSAL_EST_SIPS, NULL, &r, &err), CW_EINVAL));
    cr_expect(eq(str, err.msg,
                 "impression 1: logged log-probability -inf of the shown prefix 1 is impossible "
                 "for a logged ranking"));
    causal_est e;
    cr_expect(eq(int, causal_est_parse("snipz", &e, &err), CW_EPARSE));
    cr_expect(eq(str, err.msg,
                 "unknown estimator \"snipz\" (expected iips, snips, sips, rips, pbm, dm, dr, cdr "
                 "or pi)"));
    causal_ope_opts o = causal_ope_opts_default();
    o.n_boot = CAUSAL_OPE_MAX_BOOTSTRAP + 1;
    cr_expect(eq(int, causal_ope_estimate(&d, CAUSAL_EST_DM, &o, &r, &err), CW_ELIMIT));
}

Test(causal_ope, deterministic_logging_flags_support_deficiency_and_weight_drift)
{
    /* Logging shows the deterministic top 3 of 5; a target that ranks by other scores
     * puts mass on documents never shown. */
    world w;
    world_init(&w, (causal_rpol){CAUSAL_RPOL_PL, 0.5, 1, 0}, false, 9);
    w.logging = (causal_rpol){CAUSAL_RPOL_DET, 1, 1, 0};
    for (int q = 0; q < NQ; q++) {
        cr_assert(eq(int, causal_rpol_marginals(&w.logging, w.sb[q], NC, K, w.pb[q], NULL), CW_OK));
    }
    cw_rng rng;
    cw_rng_seed(&rng, 4);
    logbuf b;
    logbuf_fill(&b, &w, 3000, &rng);
    causal_ope_result r;
    cr_assert(eq(int, causal_ope_estimate(&b.d, CAUSAL_EST_IIPS, NULL, &r, NULL), CW_OK));
    cr_expect(r.unsupported > 0.2, "unsupported %.3f", r.unsupported);
    cr_expect(strstr(r.warning, "support deficiency") != NULL, "warning: %s", r.warning);
    cr_expect(strstr(r.warning, "mean weight") != NULL, "warning: %s", r.warning);
    logbuf_free(&b);
}

Test(causal_ope, comparison_orders_a_good_and_a_bad_policy_with_high_probability)
{
    world good, bad;
    world_init(&good, (causal_rpol){CAUSAL_RPOL_DET, 1, 1, 0}, false, 31);
    bad = good;
    for (int q = 0; q < NQ; q++) {
        for (int d = 0; d < NC; d++) {
            bad.se[q][d] = -good.se[q][d];
        }
        cr_assert(
            eq(int, causal_rpol_marginals(&bad.target, bad.se[q], NC, K, bad.pe[q], NULL), CW_OK));
    }
    cw_rng r1, r2;
    cw_rng_seed(&r1, 8);
    cw_rng_seed(&r2, 8); /* same log for both: same seed, same logging policy */
    logbuf bg, bb;
    logbuf_fill(&bg, &good, 5000, &r1);
    logbuf_fill(&bb, &bad, 5000, &r2);
    cr_assert(eq(sz, (size_t)memcmp(bg.click, bb.click, 5000 * K), 0));
    bg.d.group = bg.group;
    bb.d.group = bb.group;
    bg.d.n_groups = bb.d.n_groups = NQ;
    causal_ope_data both[2] = {bg.d, bb.d};
    double values[2], prob[4];
    causal_ope_opts o = causal_ope_opts_default();
    o.n_boot = 500;
    cr_assert(
        eq(int, causal_ope_compare(both, 2, CAUSAL_EST_SNIPS, &o, values, prob, NULL), CW_OK));
    cr_expect(values[0] > values[1]);
    cr_expect(prob[0 * 2 + 1] > 0.95, "P(good > bad) = %.3f", prob[1]);
    cr_expect(epsilon_eq(dbl, prob[0 * 2 + 1] + prob[1 * 2 + 0], 1.0, 1e-12));
    cr_expect(epsilon_eq(dbl, prob[0], 0.5, 1e-12));
    logbuf_free(&bg);
    logbuf_free(&bb);
}

/* ---- causeway ope end to end: a log written through the log store, read by the binary */

typedef enum log_kind { LOG_PL, LOG_NO_PROPENSITY, LOG_ZERO_PROPENSITY } log_kind;

/* Writes n impressions of PL(tau 1) over the NC candidates of NQ queries, all shown, with
 * features "f_target" (the world's target scores) and "f_log"; PBM clicks on the top K
 * (theta beyond K: none). Returns the path (free()). */
static char *write_log(const world *w, size_t n, log_kind kind)
{
    char *path = strdup("/tmp/cw_ope_log_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    unlink(path);
    causal_log_opts lo = causal_log_opts_default();
    lo.sync = CAUSAL_SYNC_NORMAL;
    causal_log *log = NULL;
    cw_err err;
    cr_assert(eq(int, causal_log_open(path, &lo, &log, &err), CW_OK), "%s", err.msg);
    static const char *const names[2] = {"f_target", "f_log"};
    cw_rng rng;
    cw_rng_seed(&rng, 77);
    cr_assert(eq(int, causal_log_begin(log, &err), CW_OK));
    double pb_full[NQ][NC * NC];
    for (int q = 0; q < NQ; q++) {
        cr_assert(
            eq(int, causal_rpol_marginals(&w->logging, w->sb[q], NC, NC, pb_full[q], NULL), CW_OK));
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t q = (uint32_t)cw_rng_below(&rng, NQ), shown[NC];
        double lp[NC];
        cr_assert(
            eq(int, causal_rpol_sample(&w->logging, w->sb[q], NC, NC, &rng, shown, NULL), CW_OK));
        cr_assert(
            eq(int, causal_rpol_log_prob(&w->logging, w->sb[q], NC, shown, NC, lp, NULL), CW_OK));
        char qb[16], db[NC][16];
        float feat[NC][2];
        causal_item items[NC];
        causal_event ev[NC];
        size_t n_ev = 0;
        snprintf(qb, sizeof qb, "q%u", q);
        causal_impression imp = {.id = causal_log_next_id(log),
                                 .ts_ms = 1700000000000,
                                 .query = qb,
                                 .policy = "pl",
                                 .log_prob = kind == LOG_NO_PROPENSITY ? NAN : lp[NC - 1],
                                 .temperature = kind == LOG_NO_PROPENSITY ? NAN : 1.0,
                                 .feature_set = "test",
                                 .feature_names = names,
                                 .n_features = 2,
                                 .n_items = NC,
                                 .items = items};
        for (int j = 0; j < NC; j++) {
            uint32_t d = shown[j];
            snprintf(db[j], sizeof db[j], "d%u", d);
            feat[j][0] = (float)w->se[q][d];
            feat[j][1] = (float)w->sb[q][d];
            double prop = pb_full[q][d * NC + j];
            if (kind == LOG_NO_PROPENSITY) {
                prop = NAN;
            } else if (kind == LOG_ZERO_PROPENSITY && i == 5 && j == 1) {
                prop = 0;
            }
            items[j] = (causal_item){.doc_id = db[j],
                                     .position = (uint32_t)j + 1,
                                     .score = kind == LOG_NO_PROPENSITY ? NAN : w->sb[q][d],
                                     .propensity = prop,
                                     .features = feat[j]};
            if (j < K && cw_rng_bernoulli(&rng, theta[j] * p_rel[w->label[q][d]])) {
                ev[n_ev++] = (causal_event){.impression_id = imp.id,
                                            .doc_id = db[j],
                                            .position = (uint32_t)j + 1,
                                            .type = CAUSAL_EVENT_CLICK,
                                            .ts_ms = 1700000001000,
                                            .value_ms = -1};
            }
        }
        size_t n_rej = 0;
        cr_assert(eq(int, causal_log_append_impressions(log, &imp, 1, &err), CW_OK), "%s", err.msg);
        if (n_ev) {
            cr_assert(
                eq(int, causal_log_append_events(log, ev, n_ev, NULL, &n_rej, NULL, &err), CW_OK),
                "%s", err.msg);
        }
    }
    cr_assert(eq(int, causal_log_commit(log, &err), CW_OK));
    causal_log_close(log);
    return path;
}

/* Runs the binary; returns its exit status and its stdout (+ stderr) in *out (free()). */
static int run_cli(const char *args, char **out)
{
    const char *bin = getenv("CW_BIN");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s ope %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL);
    cw_buf b = {0};
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, p)) > 0) {
        cr_assert(eq(int, cw_buf_append(&b, chunk, got), CW_OK));
    }
    int st = pclose(p);
    *out = b.data ? b.data : strdup("");
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static json_t *estimate_of(json_t *root, size_t policy, const char *est)
{
    json_t *ests =
        json_object_get(json_array_get(json_object_get(root, "policies"), policy), "estimates");
    size_t i;
    json_t *x;
    json_array_foreach(ests, i, x)
    {
        if (strcmp(json_string_value(json_object_get(x, "estimator")), est) == 0) {
            return x;
        }
    }
    return NULL;
}

Test(causal_ope_cli, estimates_from_a_pl_log_cover_the_truth)
{
    if (!getenv("CW_BIN")) {
        cr_skip_test("CW_BIN not set (run through make check)");
    }
    world w;
    world_init(&w, (causal_rpol){CAUSAL_RPOL_DET, 1, 1, 0}, false, 41);
    /* The log shows all NC items; the metric looks at the top K, so the truth is the
     * world's (clicks@K of the deterministic target over the same lists). */
    char *path = write_log(&w, 4000, LOG_PL), *out = NULL, args[512];
    snprintf(args, sizeof args,
             "--db %s --metric clicks@%d --policy f_target --policy f_log --bootstrap 200 --json",
             path, K);
    int rc = run_cli(args, &out);
    cr_assert(eq(int, rc, 0), "%s", out);
    json_error_t je;
    json_t *root = json_loads(out, 0, &je);
    cr_assert(root != NULL, "not JSON: %s", out);
    json_int_t n_imp =
        json_integer_value(json_object_get(json_object_get(root, "log"), "impressions"));
    cr_expect(eq(i64, (int64_t)n_imp, 4000));
    const char *ests[] = {"iips", "snips", "dr", "pbm"};
    for (size_t e = 0; e < CW_ARRAY_LEN(ests); e++) {
        json_t *x = estimate_of(root, 0, ests[e]);
        cr_assert(x != NULL);
        bool is_valid = json_is_true(json_object_get(x, "valid"));
        cr_assert(is_valid, "%s: %s", ests[e], json_string_value(json_object_get(x, "error")));
        double v = json_real_value(json_object_get(x, "value"));
        double se = json_real_value(json_object_get(x, "se"));
        cr_expect(fabs(v - w.truth) <= 4 * se, "%s: %.4f vs truth %.4f (se %.4f)", ests[e], v,
                  w.truth, se);
    }
    json_t *cmp = json_object_get(root, "comparison");
    cr_assert(cmp != NULL);
    cr_expect(eq(str, (char *)json_string_value(json_array_get(json_object_get(cmp, "order"), 0)),
                 "f_target"));
    json_decref(root);
    free(out);
    unlink(path);
    free(path);
}

Test(causal_ope_cli, log_without_propensities_reports_which_estimators_remain_valid)
{
    if (!getenv("CW_BIN")) {
        cr_skip_test("CW_BIN not set (run through make check)");
    }
    world w;
    world_init(&w, (causal_rpol){CAUSAL_RPOL_DET, 1, 1, 0}, false, 42);
    char *path = write_log(&w, 300, LOG_NO_PROPENSITY), *out = NULL, args[512];
    snprintf(args, sizeof args, "--db %s --metric clicks@%d --policy f_target --bootstrap 0", path,
             K);
    int rc = run_cli(args, &out);
    cr_expect(eq(int, rc, 0), "%s", out);
    cr_expect(strstr(out, "iips   not valid: impression 0 slot 1: logging propensity not logged; "
                          "item-position estimators (iips, snips, dr, pi) need it for every "
                          "shown item; dm and pbm stay valid") != NULL,
              "%s", out);
    cr_expect(strstr(out, "sips   not valid: impression 0: ranking probability not logged") != NULL,
              "%s", out);
    cr_expect(strstr(out, "  dm    ") != NULL, "dm should be estimated: %s", out);
    free(out);
    unlink(path);
    free(path);
}

Test(causal_ope_cli, zero_propensity_and_foreign_model_are_clear_errors)
{
    if (!getenv("CW_BIN")) {
        cr_skip_test("CW_BIN not set (run through make check)");
    }
    world w;
    world_init(&w, (causal_rpol){CAUSAL_RPOL_DET, 1, 1, 0}, false, 43);
    char *path = write_log(&w, 300, LOG_ZERO_PROPENSITY), *out = NULL, args[512];
    snprintf(args, sizeof args,
             "--db %s --metric clicks@%d --policy f_target --estimators iips --bootstrap 0", path,
             K);
    int rc = run_cli(args, &out);
    cr_expect(eq(int, rc, 1), "%s", out);
    cr_expect(strstr(out, "not valid: impression 5 slot 2: logged propensity 0 for a shown item "
                          "is impossible") != NULL,
              "%s", out);
    free(out);
    /* A model trained on other features. */
    const char *names[1] = {"clicks_last_week"};
    rank_model *m = NULL;
    cr_assert(eq(int, rank_model_new(RANK_MODEL_LINEAR, 1, names, 0, NULL, &m, NULL), CW_OK));
    char model_path[] = "/tmp/cw_ope_model_XXXXXX.json";
    int fd = mkstemps(model_path, 5);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert(eq(int, rank_model_save(m, model_path, NULL), CW_OK));
    rank_model_free(m);
    snprintf(args, sizeof args, "--db %s --metric clicks@%d --policy %s", path, K, model_path);
    rc = run_cli(args, &out);
    cr_expect(eq(int, rc, 1), "%s", out);
    cr_expect(strstr(out, "the model uses feature \"clicks_last_week\", which the log's feature "
                          "set \"test\" (2 features) does not have") != NULL,
              "%s", out);
    free(out);
    unlink(model_path);
    unlink(path);
    free(path);
}

/* QA regression: `causeway ope` ignored Ctrl-C until its 10^4 bootstrap replicates were
 * done; an interrupt now ends the bootstrap (and the comparison) with CW_EINTR. */
Test(causal_ope, bootstrap_stops_with_eintr_after_sigint)
{
    const double lam[2] = {1, 0.5};
    const uint8_t click[4] = {1, 0, 0, 1};
    const double pb[4] = {0.5, 0.25, 0.2, 0.4}, pe[4] = {1.0, 0.5, 0.1, 0.2};
    causal_ope_data d = {
        .n = 2, .k = 2, .lambda = lam, .click = click, .pb_marg = pb, .pe_marg = pe};
    causal_ope_opts o = causal_ope_opts_default();
    causal_ope_result r;
    cw_err err;
    cr_assert(eq(int, causal_ope_estimate(&d, CAUSAL_EST_IIPS, &o, &r, &err), CW_OK), "%s",
              err.msg);
    cw_interrupt_install();
    cr_assert(eq(int, raise(SIGINT), 0));
    cr_expect(eq(int, causal_ope_estimate(&d, CAUSAL_EST_IIPS, &o, &r, &err), CW_EINTR));
    cr_expect(eq(str, err.msg, "ope: interrupted"));
    causal_ope_data two[2] = {d, d};
    double values[2], prob[4];
    cr_expect(
        eq(int, causal_ope_compare(two, 2, CAUSAL_EST_IIPS, &o, values, prob, &err), CW_EINTR));
    o.n_boot = 0; /* without a bootstrap there is nothing long to interrupt */
    cr_expect(eq(int, causal_ope_estimate(&d, CAUSAL_EST_IIPS, &o, &r, &err), CW_OK));
}
