/* causal/ope.c: off-policy evaluation of ranking policies from click logs
 * (METHODS.md section 6): IIPS, SNIPS, SIPS, RIPS, PBM, DM, DR, Cascade-DR and the
 * pseudoinverse, each with an analytic and a bootstrap interval and weight diagnostics.
 * Reads flat per-impression arrays filled from the log store (cli/cmd_ope.c) or from a
 * simulation (bench/ope_experiment.c); writes nothing. */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "causal/causal.h"

static const char *const est_names[CAUSAL_N_EST] = {
    "iips", "snips", "sips", "rips", "pbm", "dm", "dr", "cdr", "pi",
};

const char *causal_est_name(causal_est e)
{
    return (unsigned)e < CAUSAL_N_EST ? est_names[e] : "?";
}

int causal_est_parse(const char *name, causal_est *out, cw_err *err)
{
    for (int e = 0; e < CAUSAL_N_EST; e++) {
        if (name && strcmp(name, est_names[e]) == 0) {
            *out = (causal_est)e;
            return CW_OK;
        }
    }
    return cw_err_set(err, CW_EPARSE,
                      "unknown estimator \"%s\" (expected iips, snips, sips, rips, pbm, dm, dr, "
                      "cdr or pi)",
                      name ? name : "");
}

causal_ope_opts causal_ope_opts_default(void)
{
    /* B = 10,000 percentile bootstrap, alpha = 0.05 (METHODS.md section 6). */
    return (causal_ope_opts){.n_boot = 10000, .seed = 1, .alpha = 0.05, .max_unsupported = 0.01};
}

/* Two-sided standard-normal quantile z_{1 - alpha/2} by bisection on erfc: exact enough
 * (1e-12) and free of tables. */
static double z_quantile(double alpha)
{
    double lo = 0, hi = 40;
    for (int it = 0; it < 200; it++) {
        double mid = 0.5 * (lo + hi);
        if (erfc(mid / sqrt(2.0)) > alpha) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return 0.5 * (lo + hi);
}

/* Which inputs each estimator reads, and the words for a missing one. */
static int need(const void *p, causal_est est, const char *what, const char *why, cw_err *err)
{
    if (p) {
        return CW_OK;
    }
    return cw_err_set(err, CW_EINVAL,
                      "%s needs %s (%s), which the input lacks; estimators that stay valid "
                      "without it: %s",
                      causal_est_name(est), what, why,
                      strstr(what, "propensit")
                          ? "dm (click model only) and pbm (propensity model, when the "
                            "logging policy is deterministic or reconstructible)"
                          : "those whose inputs are present (see `causeway ope --help`)");
}

static int check_inputs(const causal_ope_data *d, causal_est est, cw_err *err)
{
    if (d->k < 1 || d->k > CAUSAL_OPE_MAX_SLOTS) {
        return cw_err_set(err, CW_ELIMIT, "ope: %u slots per impression, limit %u", d->k,
                          CAUSAL_OPE_MAX_SLOTS);
    }
    if (d->n == 0) {
        return cw_err_set(err, CW_EINVAL, "ope: no impressions to evaluate");
    }
    if (d->group && d->n_groups == 0) {
        return cw_err_set(err, CW_EINVAL, "ope: group ids given but n_groups = 0");
    }
    int rc = CW_OK;
    (void)((rc = need(d->lambda, est, "metric rank weights", "the metric", err)) ||
           (rc = need(d->click, est, "clicks", "the reward", err)));
    if (rc) {
        return rc;
    }
    const char *marg_why = "item-position weights pi_e(d@j)/pi_b(d@j)";
    const char *pre_why = "ranking or prefix weights pi_e(a_1..j)/pi_b(a_1..j)";
    switch (est) {
    case CAUSAL_EST_IIPS:
    case CAUSAL_EST_SNIPS:
    case CAUSAL_EST_PI:
        (void)((rc = need(d->pb_marg, est, "logged item-position propensities", marg_why, err)) ||
               (rc = need(d->pe_marg, est, "target marginals", marg_why, err)));
        break;
    case CAUSAL_EST_SIPS:
    case CAUSAL_EST_RIPS:
        (void)((rc = need(d->lpb_prefix, est, "logged ranking propensities", pre_why, err)) ||
               (rc = need(d->lpe_prefix, est, "target ranking probabilities", pre_why, err)));
        break;
    case CAUSAL_EST_PBM:
        (void)((rc = need(d->rho_b, est, "expected examination under logging (rho_b)",
                          "a propensity model and the logging marginals", err)) ||
               (rc = need(d->omega_e, est, "target exposure (omega_e)", "the target marginals",
                          err)));
        break;
    case CAUSAL_EST_DM:
        rc = need(d->dm_e, est, "a click model's value (dm_e)", "the DM", err);
        break;
    case CAUSAL_EST_DR:
        (void)((rc = need(d->pb_marg, est, "logged item-position propensities", marg_why, err)) ||
               (rc = need(d->pe_marg, est, "target marginals", marg_why, err)) ||
               (rc = need(d->q_hat, est, "click-model predictions (q_hat)", "the baseline", err)) ||
               (rc = need(d->dm_e, est, "a click model's value (dm_e)", "the baseline", err)));
        break;
    case CAUSAL_EST_CDR:
        (void)((rc = need(d->lpb_prefix, est, "logged ranking propensities", pre_why, err)) ||
               (rc = need(d->lpe_prefix, est, "target ranking probabilities", pre_why, err)) ||
               (rc = need(d->cdr_q, est, "Q-function values (cdr_q)", "the baseline", err)) ||
               (rc = need(d->cdr_v, est, "Q-function values (cdr_v)", "the baseline", err)));
        break;
    default: return cw_err_set(err, CW_EINVAL, "ope: unknown estimator %d", (int)est);
    }
    return rc;
}

/* Item-position weight of impression i, slot j; checks the logged propensity. */
static int slot_weight(const causal_ope_data *d, size_t i, uint32_t j, double *w, cw_err *err)
{
    size_t ij = i * d->k + j;
    double pb = d->pb_marg[ij], pe = d->pe_marg[ij];
    if (isnan(pb)) {
        return cw_err_set(err, CW_EINVAL,
                          "impression %zu slot %u: logging propensity not logged; item-position "
                          "estimators (iips, snips, dr, pi) need it for every shown item; dm "
                          "and pbm stay valid",
                          i, j + 1);
    }
    if (!(pb > 0 && pb <= 1)) {
        return cw_err_set(err, CW_EINVAL,
                          "impression %zu slot %u: logged propensity %g for a shown item is "
                          "impossible (must be in (0, 1]): the log is inconsistent",
                          i, j + 1, pb);
    }
    if (!(pe >= 0 && pe <= 1 + 1e-9)) {
        return cw_err_set(err, CW_EINVAL,
                          "impression %zu slot %u: target marginal %g not in [0, 1]", i, j + 1, pe);
    }
    *w = pe / pb;
    return CW_OK;
}

/* Prefix weight w_{i,1:j+1} = exp(lpe - lpb); the logged prefix must be possible. */
static int prefix_weight(const causal_ope_data *d, size_t i, uint32_t j, double *w, cw_err *err)
{
    size_t ij = i * d->k + j;
    double lb = d->lpb_prefix[ij], le = d->lpe_prefix[ij];
    if (isnan(lb)) {
        return cw_err_set(err, CW_EINVAL,
                          "impression %zu: ranking probability not logged (prefix %u); sips, "
                          "rips and cdr need it; item-position estimators may still work",
                          i, j + 1);
    }
    if (lb == -INFINITY || lb > 1e-9) {
        return cw_err_set(err, CW_EINVAL,
                          "impression %zu: logged log-probability %g of the shown prefix %u is "
                          "impossible for a logged ranking",
                          i, lb, j + 1);
    }
    *w = le == -INFINITY ? 0 : exp(le - lb);
    if (!isfinite(*w)) {
        return cw_err_set(err, CW_EINVAL, "impression %zu prefix %u: weight overflows (%g - %g)", i,
                          j + 1, le, lb);
    }
    return CW_OK;
}

/* The terms of impression i: estimate = sum_s A_s / B_s over D parts with
 * A_s = sum_i a[s], B_s = sum_i b[s]; wdiag[0..n_w) are the importance weights reported
 * in the diagnostics. Mean-type estimators have D = 1 and b = 1. */
static int terms(const causal_ope_data *d, causal_est est, size_t i, double *a, double *b,
                 double *wdiag, uint32_t *n_w, cw_err *err)
{
    const uint32_t k = d->k;
    const uint8_t *c = d->click + i * k;
    const double *lam = d->lambda;
    int rc;
    double t = 0;
    b[0] = 1;
    *n_w = 0;
    switch (est) {
    case CAUSAL_EST_IIPS:
    case CAUSAL_EST_SNIPS:
    case CAUSAL_EST_DR:
    case CAUSAL_EST_PI: {
        /* IIPS (Li et al. 2018): sum_j w_ij r_ij with w_ij = pi_e(a_ij@j)/pi_b(a_ij@j).
         * DR at the slot level (Dudik et al. 2011, eq. 3 per slot): DM plus the weighted
         * residuals of the model. PI, marginal form (Swaminathan et al. 2017, for
         * product logging): R_i (sum_j w_ij - (k - 1)). */
        double sum_w = 0, big_r = 0;
        for (uint32_t j = 0; j < k; j++) {
            double w = 0;
            if ((rc = slot_weight(d, i, j, &w, err))) {
                return rc;
            }
            double r = lam[j] * c[j];
            wdiag[j] = w;
            sum_w += w;
            big_r += r;
            if (est == CAUSAL_EST_SNIPS) {
                a[j] = w * r;
                b[j] = w;
            } else if (est == CAUSAL_EST_DR) {
                t += w * (r - d->q_hat[i * k + j]);
            } else {
                t += w * r;
            }
        }
        *n_w = k;
        if (est == CAUSAL_EST_SNIPS) {
            return CW_OK;
        }
        if (est == CAUSAL_EST_DR) {
            t += d->dm_e[i];
        } else if (est == CAUSAL_EST_PI) {
            t = big_r * (sum_w - (k - 1));
        }
        break;
    }
    case CAUSAL_EST_SIPS: {
        double w = 0, big_r = 0;
        if ((rc = prefix_weight(d, i, k - 1, &w, err))) {
            return rc;
        }
        for (uint32_t j = 0; j < k; j++) {
            big_r += lam[j] * c[j];
        }
        wdiag[0] = w;
        *n_w = 1;
        t = w * big_r;
        break;
    }
    case CAUSAL_EST_RIPS:
    case CAUSAL_EST_CDR: {
        /* RIPS (McInerney et al. 2020): sum_j w_{1:j} r_j. Cascade-DR (Kiyohara et al.
         * 2022, eq. 6): sum_j [ w_{1:j} (r_j - Q_j) + w_{1:j-1} E_{a~pi_e}[Q_j] ]. */
        double w_prev = 1;
        for (uint32_t j = 0; j < k; j++) {
            double w = 0;
            if ((rc = prefix_weight(d, i, j, &w, err))) {
                return rc;
            }
            double r = lam[j] * c[j];
            wdiag[j] = w;
            if (est == CAUSAL_EST_RIPS) {
                t += w * r;
            } else {
                size_t ij = i * k + j;
                t += w * (r - d->cdr_q[ij]) + (w_prev > 0 ? w_prev * d->cdr_v[ij] : 0);
            }
            w_prev = w;
        }
        *n_w = k;
        break;
    }
    case CAUSAL_EST_PBM:
        /* PBM / policy-aware IPS (Li et al. 2018; Oosterhuis & de Rijke 2020):
         * sum over clicked d of omega_e(d) / rho_b(d). */
        for (uint32_t j = 0; j < k; j++) {
            size_t ij = i * k + j;
            double rho = d->rho_b[ij];
            if (!(rho > 0) || !isfinite(rho)) {
                if (c[j]) {
                    return cw_err_set(err, CW_EINVAL,
                                      "impression %zu slot %u: clicked item has expected "
                                      "examination %g under logging; pbm needs it > 0",
                                      i, j + 1, rho);
                }
                wdiag[j] = 0;
                continue;
            }
            double w = d->omega_e[ij] / rho;
            wdiag[j] = w;
            t += c[j] ? w : 0;
        }
        *n_w = k;
        break;
    case CAUSAL_EST_DM: t = d->dm_e[i]; break;
    default: return cw_err_set(err, CW_EINVAL, "ope: unknown estimator %d", (int)est);
    }
    a[0] = t;
    return CW_OK;
}

static void warn(causal_ope_result *r, const char *fmt, ...) CW_PRINTF(2, 3);
static void warn(causal_ope_result *r, const char *fmt, ...)
{
    size_t len = strlen(r->warning);
    if (len + 3 >= sizeof r->warning) {
        return;
    }
    if (len) {
        strcpy(r->warning + len, "; ");
        len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->warning + len, sizeof r->warning - len, fmt, ap);
    va_end(ap);
}

/* Per-estimator aggregates, kept so causal_ope_compare can reuse the bootstrap. */
typedef struct agg {
    uint32_t n_parts;  /* D */
    uint32_t n_groups; /* G */
    double *ga, *gb;   /* [G * D] group sums */
    double *A, *B;     /* [D] totals */
} agg;

static void agg_free(agg *g)
{
    free(g->ga);
    free(g->gb);
    free(g->A);
    free(g->B);
}

static double agg_value(const agg *g, const double *A, const double *B)
{
    double v = 0;
    for (uint32_t s = 0; s < g->n_parts; s++) {
        v += B[s] != 0 ? A[s] / B[s] : 0;
    }
    return v;
}

/* Passes over the data: aggregates, diagnostics, analytic standard error. */
static int run(const causal_ope_data *d, causal_est est, const causal_ope_opts *o, agg *g,
               causal_ope_result *res, cw_err *err)
{
    int rc = check_inputs(d, est, err);
    if (rc) {
        return rc;
    }
    const uint32_t k = d->k;
    const uint32_t D = est == CAUSAL_EST_SNIPS ? k : 1;
    const size_t G = d->group ? d->n_groups : d->n;
    memset(g, 0, sizeof *g);
    g->n_parts = D;
    g->n_groups = (uint32_t)CW_MIN(G, (size_t)UINT32_MAX);
    g->ga = calloc(G * D, sizeof(double));
    g->gb = calloc(G * D, sizeof(double));
    g->A = calloc(D, sizeof(double));
    g->B = calloc(D, sizeof(double));
    double sw[CAUSAL_OPE_MAX_SLOTS] = {0}, sw2[CAUSAL_OPE_MAX_SLOTS] = {0};
    double wmax = 0, wsum = 0, unsup = 0;
    size_t wcount = 0;
    uint32_t n_w_parts = 0;
    if (!g->ga || !g->gb || !g->A || !g->B) {
        agg_free(g);
        return cw_err_set(err, CW_ENOMEM, "ope: out of memory for %zu groups", G);
    }
    double a[CAUSAL_OPE_MAX_SLOTS], b[CAUSAL_OPE_MAX_SLOTS], w[CAUSAL_OPE_MAX_SLOTS];
    for (size_t i = 0; i < d->n; i++) {
        uint32_t n_w;
        if ((rc = terms(d, est, i, a, b, w, &n_w, err))) {
            agg_free(g);
            return rc;
        }
        size_t gi = d->group ? d->group[i] : i;
        if (gi >= G) {
            agg_free(g);
            return cw_err_set(err, CW_EINVAL, "impression %zu: group %zu >= n_groups %zu", i, gi,
                              G);
        }
        for (uint32_t s = 0; s < D; s++) {
            if (!isfinite(a[s]) || !isfinite(b[s])) {
                agg_free(g);
                return cw_err_set(err, CW_EINVAL, "impression %zu: %s term is not finite", i,
                                  causal_est_name(est));
            }
            g->ga[gi * D + s] += a[s];
            g->gb[gi * D + s] += b[s];
            g->A[s] += a[s];
            g->B[s] += b[s];
        }
        n_w_parts = n_w;
        for (uint32_t s = 0; s < n_w; s++) {
            sw[s] += w[s];
            sw2[s] += w[s] * w[s];
            wmax = CW_MAX(wmax, w[s]);
            wsum += w[s];
        }
        wcount += n_w;
        if (d->unsupported) {
            unsup += d->unsupported[i];
        }
    }
    const double n = (double)d->n;
    res->est = est;
    res->n = d->n;
    res->value = agg_value(g, g->A, g->B);
    /* Analytic variance from the influence function of sum_s A_s / B_s (delta method;
     * for mean-type estimators it reduces to s^2 / n, METHODS.md section 6):
     * psi_i = sum_s (a_is - V_s b_is) / (B_s / n). */
    double vs[CAUSAL_OPE_MAX_SLOTS];
    for (uint32_t s = 0; s < D; s++) {
        vs[s] = g->B[s] != 0 ? g->A[s] / g->B[s] : 0;
    }
    double psi2 = 0;
    for (size_t i = 0; i < d->n; i++) {
        uint32_t n_w;
        if ((rc = terms(d, est, i, a, b, w, &n_w, err))) {
            agg_free(g);
            return rc;
        }
        double psi = 0;
        for (uint32_t s = 0; s < D; s++) {
            if (g->B[s] != 0) {
                psi += (a[s] - vs[s] * b[s]) / (g->B[s] / n);
            }
        }
        psi2 += psi * psi;
    }
    res->se = d->n > 1 ? sqrt(psi2 / (n - 1) / n) : NAN;
    double z = z_quantile(o->alpha);
    res->ci_lo = res->value - z * res->se;
    res->ci_hi = res->value + z * res->se;
    res->boot_lo = res->boot_hi = NAN;
    /* Diagnostics: n_eff per weight slot, the smallest reported. */
    res->n_eff = n;
    for (uint32_t s = 0; s < n_w_parts; s++) {
        double ne = sw2[s] > 0 ? sw[s] * sw[s] / sw2[s] : 0;
        res->n_eff = CW_MIN(res->n_eff, ne);
    }
    res->w_max = n_w_parts ? wmax : 1;
    res->w_mean = n_w_parts && wcount ? wsum / (double)wcount : 1;
    res->unsupported = d->unsupported ? unsup / n : NAN;
    res->warning[0] = '\0';
    if (est == CAUSAL_EST_DM) {
        warn(res, "dm's interval reflects query sampling only, not the click model's error");
    } else if (est == CAUSAL_EST_PI) {
        warn(res, "pi in marginal form is exact for product logging policies only; biased for "
                  "rankings drawn without replacement");
    }
    /* The (document, slot) support that `unsupported` measures matters to the estimators
     * weighting by slot or ranking probabilities; pbm needs only document-level support
     * (rho_b > 0 for what the target shows) and dm none (its bias is the model's). */
    bool needs_pair_support = est != CAUSAL_EST_PBM && est != CAUSAL_EST_DM;
    if (needs_pair_support && d->unsupported && res->unsupported > o->max_unsupported) {
        warn(res,
             "support deficiency: the target puts %.1f%% of its metric mass where the logging "
             "policy never did; %s is biased there",
             100 * res->unsupported, causal_est_name(est));
    }
    if (n_w_parts && res->n_eff < 0.01 * n) {
        warn(res, "effective sample size %.0f is under 1%% of %zu impressions", res->n_eff, d->n);
    }
    bool is_marg = est == CAUSAL_EST_IIPS || est == CAUSAL_EST_SNIPS || est == CAUSAL_EST_DR ||
                   est == CAUSAL_EST_PI;
    bool is_rank = est == CAUSAL_EST_SIPS;
    if ((is_marg || is_rank) && d->n >= 1000 && res->n_eff >= 100) {
        /* With full support E_b[w] = 1 per slot; a drift of many standard errors means the
         * logged propensities are wrong or the target leaves the logged support. Skipped
         * when n_eff is tiny: heavy-tailed weights make the sample mean itself unreliable
         * (the n_eff warning covers that case). */
        for (uint32_t s = 0; s < n_w_parts; s++) {
            double m = sw[s] / n, v = sw2[s] / n - m * m;
            double se_m = sqrt(CW_MAX(v, 0) / n);
            if (fabs(m - 1) > 5 * se_m + 0.02) {
                warn(res,
                     "mean weight %.3f at slot %u (expected 1): logged propensities or support "
                     "are off",
                     m, s + 1);
                break;
            }
        }
    }
    return CW_OK;
}

/* One bootstrap replicate: resample G groups with replacement into A, B. */
static void boot_draw(const agg *g, cw_rng *rng, uint32_t *pick, double *A, double *B)
{
    memset(A, 0, g->n_parts * sizeof *A);
    memset(B, 0, g->n_parts * sizeof *B);
    for (uint32_t t = 0; t < g->n_groups; t++) {
        uint32_t gi = pick ? pick[t] : (uint32_t)cw_rng_below(rng, g->n_groups);
        const double *ga = g->ga + (size_t)gi * g->n_parts, *gb = g->gb + (size_t)gi * g->n_parts;
        for (uint32_t s = 0; s < g->n_parts; s++) {
            A[s] += ga[s];
            B[s] += gb[s];
        }
    }
}

int causal_ope_estimate(const causal_ope_data *d, causal_est est, const causal_ope_opts *opts,
                        causal_ope_result *out, cw_err *err)
{
    causal_ope_opts o = opts ? *opts : causal_ope_opts_default();
    if (o.n_boot > CAUSAL_OPE_MAX_BOOTSTRAP) {
        return cw_err_set(err, CW_ELIMIT, "ope: %u bootstrap replicates, limit %u", o.n_boot,
                          CAUSAL_OPE_MAX_BOOTSTRAP);
    }
    if (!(o.alpha > 0 && o.alpha < 1)) {
        return cw_err_set(err, CW_EINVAL, "ope: alpha must be in (0, 1), got %g", o.alpha);
    }
    causal_ope_result res;
    memset(&res, 0, sizeof res);
    agg g;
    int rc = run(d, est, &o, &g, &res, err);
    if (rc) {
        return rc;
    }
    if (o.n_boot > 0) {
        /* Percentile bootstrap over groups (queries): whole groups are resampled, so
         * impressions of one query stay together (METHODS.md section 6). */
        double *reps = malloc(o.n_boot * sizeof *reps);
        double A[CAUSAL_OPE_MAX_SLOTS], B[CAUSAL_OPE_MAX_SLOTS];
        if (!reps) {
            agg_free(&g);
            return cw_err_set(err, CW_ENOMEM, "ope: out of memory for the bootstrap");
        }
        cw_rng rng;
        cw_rng_seed(&rng, o.seed);
        for (uint32_t b = 0; b < o.n_boot; b++) {
            if (b % 64 == 0 && cw_interrupted()) { /* 10^4 replicates of a big log take minutes */
                free(reps);
                agg_free(&g);
                return cw_err_set(err, CW_EINTR, "ope: interrupted");
            }
            boot_draw(&g, &rng, NULL, A, B);
            reps[b] = agg_value(&g, A, B);
        }
        res.boot_lo = cw_quantile(reps, o.n_boot, o.alpha / 2);
        res.boot_hi = cw_quantile(reps, o.n_boot, 1 - o.alpha / 2);
        free(reps);
    }
    agg_free(&g);
    *out = res;
    return CW_OK;
}

int causal_ope_compare(const causal_ope_data *data, size_t n_pol, causal_est est,
                       const causal_ope_opts *opts, double *values, double *prob, cw_err *err)
{
    causal_ope_opts o = opts ? *opts : causal_ope_opts_default();
    if (o.n_boot > CAUSAL_OPE_MAX_BOOTSTRAP) {
        return cw_err_set(err, CW_ELIMIT, "ope: %u bootstrap replicates, limit %u", o.n_boot,
                          CAUSAL_OPE_MAX_BOOTSTRAP);
    }
    if (n_pol == 0) {
        return cw_err_set(err, CW_EINVAL, "ope: no policies to compare");
    }
    agg *g = calloc(n_pol, sizeof *g);
    double *reps = calloc(n_pol, sizeof *reps);
    uint32_t *pick = NULL;
    int rc = CW_OK;
    if (!g || !reps) {
        rc = cw_err_set(err, CW_ENOMEM, "ope: out of memory");
        goto done;
    }
    for (size_t p = 0; p < n_pol; p++) {
        causal_ope_result r;
        if ((rc = run(&data[p], est, &o, &g[p], &r, err))) {
            cw_err_prefix(err, "policy %zu: ", p + 1);
            goto done;
        }
        values[p] = r.value;
        if (g[p].n_groups != g[0].n_groups) {
            rc = cw_err_set(err, CW_EINVAL, "ope: policies see different logs");
            goto done;
        }
    }
    for (size_t a = 0; a < n_pol * n_pol; a++) {
        prob[a] = 0;
    }
    pick = malloc((size_t)g[0].n_groups * sizeof *pick);
    if (!pick) {
        rc = cw_err_set(err, CW_ENOMEM, "ope: out of memory");
        goto done;
    }
    cw_rng rng;
    cw_rng_seed(&rng, o.seed);
    double A[CAUSAL_OPE_MAX_SLOTS], B[CAUSAL_OPE_MAX_SLOTS];
    uint32_t n_boot = o.n_boot ? o.n_boot : 1000;
    for (uint32_t b = 0; b < n_boot; b++) {
        if (b % 64 == 0 && cw_interrupted()) {
            rc = cw_err_set(err, CW_EINTR, "ope: interrupted");
            goto done;
        }
        /* The same resampled queries for every policy: the comparison is paired. */
        for (uint32_t t = 0; t < g[0].n_groups; t++) {
            pick[t] = (uint32_t)cw_rng_below(&rng, g[0].n_groups);
        }
        for (size_t p = 0; p < n_pol; p++) {
            boot_draw(&g[p], &rng, pick, A, B);
            reps[p] = agg_value(&g[p], A, B);
        }
        for (size_t x = 0; x < n_pol; x++) {
            for (size_t y = 0; y < n_pol; y++) {
                prob[x * n_pol + y] += reps[x] > reps[y] ? 1 : reps[x] == reps[y] ? 0.5 : 0;
            }
        }
    }
    for (size_t a = 0; a < n_pol * n_pol; a++) {
        prob[a] /= n_boot;
    }
done:
    if (g) {
        for (size_t p = 0; p < n_pol; p++) {
            agg_free(&g[p]);
        }
    }
    free(g);
    free(reps);
    free(pick);
    return rc;
}

int causal_ope_fill_row(const causal_ope_row *row, uint32_t k, const double *lambda, size_t i,
                        causal_ope_arrays *out, cw_err *err)
{
    const uint32_t n = row->n_cand;
    int rc = causal_rpol_check(row->target, row->target_scores, n, k, err);
    if (rc) {
        return rc;
    }
    double *pe_own = NULL, *lpe = malloc((size_t)k * sizeof *lpe);
    double *next = malloc((size_t)n * sizeof *next);
    if (!lpe || !next) {
        rc = cw_err_set(err, CW_ENOMEM, "ope: out of memory");
        goto done;
    }
    const double *pe = row->pe_marg;
    if (!pe) {
        pe_own = malloc((size_t)n * k * sizeof *pe_own);
        if (!pe_own) {
            rc = cw_err_set(err, CW_ENOMEM, "ope: out of memory");
            goto done;
        }
        if ((rc = causal_rpol_marginals(row->target, row->target_scores, n, k, pe_own, err))) {
            goto done;
        }
        pe = pe_own;
    }
    if ((rc = causal_rpol_log_prob(row->target, row->target_scores, n, row->shown, k, lpe, err))) {
        goto done;
    }
    size_t base = i * k;
    for (uint32_t j = 0; j < k; j++) {
        uint32_t dj = row->shown[j];
        if (out->lpe_prefix) {
            out->lpe_prefix[base + j] = lpe[j];
        }
        if (out->lpb_prefix) {
            out->lpb_prefix[base + j] = row->lpb_prefix ? row->lpb_prefix[j] : NAN;
        }
        if (out->pe_marg) {
            out->pe_marg[base + j] = pe[(size_t)dj * k + j];
        }
        if (out->pb_marg) {
            out->pb_marg[base + j] = row->pb_shown  ? row->pb_shown[j]
                                     : row->pb_marg ? row->pb_marg[(size_t)dj * k + j]
                                                    : NAN;
        }
        if (out->rho_b) {
            double rho = NAN;
            if (row->pb_marg && row->theta) {
                rho = 0;
                for (uint32_t m = 0; m < k; m++) {
                    rho += row->pb_marg[(size_t)dj * k + m] * row->theta[m];
                }
            }
            out->rho_b[base + j] = rho;
        }
        if (out->omega_e) {
            double om = NAN;
            if (row->theta) {
                om = 0;
                for (uint32_t m = 0; m < k; m++) {
                    om += pe[(size_t)dj * k + m] * lambda[m] * row->theta[m];
                }
            }
            out->omega_e[base + j] = om;
        }
        if (out->q_hat) {
            out->q_hat[base + j] =
                row->q_click ? lambda[j] * row->q_click[(size_t)dj * k + j] : NAN;
        }
    }
    /* DM value and the per-slot target value of the model, F_j = sum_d pi_e(d@j) lambda_j q. */
    double fj[CAUSAL_OPE_MAX_SLOTS], dm = 0;
    if (row->q_click) {
        for (uint32_t j = 0; j < k; j++) {
            fj[j] = 0;
            for (uint32_t dd = 0; dd < n; dd++) {
                fj[j] += pe[(size_t)dd * k + j] * lambda[j] * row->q_click[(size_t)dd * k + j];
            }
            dm += fj[j];
        }
    }
    if (out->dm_e) {
        out->dm_e[i] = row->q_click ? dm : NAN;
    }
    if (out->cdr_q || out->cdr_v) {
        /* Q_j(a_1..j) = lambda_j q(a_j, j) + sum_{m>j} F_m: the model's reward at j plus the
         * target's expected model reward below j, ignoring the prefix (any Q keeps
         * Cascade-DR unbiased; a better one only lowers its variance). */
        double tail = 0;
        for (uint32_t j = k; j-- > 0;) {
            uint32_t dj = row->shown[j];
            double qq = NAN, vv = NAN;
            if (row->q_click) {
                qq = lambda[j] * row->q_click[(size_t)dj * k + j] + tail;
                vv = 0;
                /* E_{a ~ pi_e(. | a_1..j-1)} Q_j: needed only where the prefix is possible
                 * under the target, otherwise its weight is 0. */
                if (j == 0 || lpe[j - 1] > -INFINITY) {
                    if ((rc = causal_rpol_next_probs(row->target, row->target_scores, n, row->shown,
                                                     j, next, err))) {
                        goto done;
                    }
                    for (uint32_t dd = 0; dd < n; dd++) {
                        vv += next[dd] * lambda[j] * row->q_click[(size_t)dd * k + j];
                    }
                    vv += tail;
                }
                tail += fj[j];
            }
            if (out->cdr_q) {
                out->cdr_q[base + j] = qq;
            }
            if (out->cdr_v) {
                out->cdr_v[base + j] = vv;
            }
        }
    }
    if (out->unsupported) {
        double un = NAN;
        if (row->pb_marg) {
            double tot = 0, bad = 0;
            for (uint32_t dd = 0; dd < n; dd++) {
                for (uint32_t j = 0; j < k; j++) {
                    double m = pe[(size_t)dd * k + j] * lambda[j];
                    tot += m;
                    if (row->pb_marg[(size_t)dd * k + j] < row->support_floor) {
                        bad += m;
                    }
                }
            }
            un = tot > 0 ? bad / tot : 0;
        }
        out->unsupported[i] = un;
    }
done:
    free(pe_own);
    free(lpe);
    free(next);
    return rc;
}
