/* bench/propensity_experiment.c: the issue 4 experiment (bench/propensity_experiment.sh runs
 * it; figures in docs/benchmarks.md, "Propensity (issue 4)"). Simulates logs in memory with
 * known theta_k = (1/k)^eta on a collection and reports each estimator's maximum relative
 * error of theta_k/theta_1 over ranks 2..10; reproduces the METHODS.md randomization table
 * at 10^7 sessions; times regression-EM over 10^7 impressions and the simulation core. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "causal/causal.h"
#include "index/index.h"
#include "ranker/ranker.h"

typedef struct args {
    const char *name, *index, *queries, *qrels, *letor;
    const char *only; /* run only the estimator rows whose name contains this (NULL = all) */
    uint32_t synth_q, synth_d, depth, score_feature;
    double etas[8];
    size_t n_etas;
    uint64_t sessions[8];
    size_t n_sessions;
    uint64_t seed, table, rem_timing, sim_speed, clickmodels;
    bool mlp;
    bool logged_score; /* random collection: also give REM the ranker's own score as a feature */
    bool qnorm;        /* min-max normalise every feature within its query (LETOR QueryLevelNorm) */
    uint32_t
        harvest_rankers;  /* production rankers of the harvesting logs (sessions split evenly) */
    double harvest_noise; /* rankers 2.. = ranker 1 + N(0, (noise * query score sd)^2) */
    uint64_t seeds[16];   /* simulation seeds (the collection and rankers use `seed`) */
    size_t n_seeds;
    const char *interventions; /* "R:NOISE,...": print intervention counts of these designs */
    const char *power;         /* "R,...": harvesting count bound of these designs (no fits) */
    bool skip_unjudged;        /* sessions only on queries with a relevant candidate */
    bool binary; /* METHODS.md section 3's (1/k)^eta variant (Joachims et al. WSDM 2017):
                    binary relevance (label > 0), P(c | examined) = 1 if relevant, 0.1 if not */
} args;

static void die(const char *what, const cw_err *err)
{
    fprintf(stderr, "propensity_experiment: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

/* A fresh session set + collection (the collection lives in the set's names). */
static causal_simcoll *load(const args *a, uint32_t rankers, causal_sessions **sp)
{
    cw_err err = {0};
    causal_sessions *s = NULL;
    causal_simcoll *c = NULL;
    if (causal_sessions_new(&s, &err) != CW_OK) {
        die("sessions", &err);
    }
    if (a->letor) {
        char *list = strdup(a->letor);
        const char *paths[8];
        size_t n = 0;
        for (char *t = strtok(list, ","); t && n < 8; t = strtok(NULL, ",")) {
            paths[n++] = t;
        }
        rank_letor *d = NULL;
        if (rank_letor_read(paths, n, &d, &err) != CW_OK) {
            die(a->letor, &err);
        }
        double *sc = malloc(d->n_rows * sizeof *sc);
        for (size_t r = 0; r < d->n_rows; r++) {
            sc[r] = d->x[r * d->n_features + a->score_feature - 1];
        }
        const double *rows[CAUSAL_SIM_MAX_RANKERS];
        for (uint32_t r = 0; r < rankers; r++) {
            rows[r] = sc;
        }
        if (causal_simcoll_letor(s, d, rows, rankers, &c, &err) != CW_OK) {
            die("letor collection", &err);
        }
        free(sc);
        free(list);
        rank_letor_free(d);
    } else if (a->index) {
        idx_index *ix = NULL;
        size_t skipped = 0;
        if (idx_index_open(a->index, &ix, &err) != CW_OK ||
            causal_simcoll_text(s, ix, a->queries, a->qrels, a->depth, rankers, true, &c, &skipped,
                                &err) != CW_OK) {
            die(a->index, &err);
        }
        idx_index_close(ix);
    } else if (a->logged_score) {
        /* The random collection built here so that the production ranker's score
         * (label + N(0, 1), as causal_simcoll_random) is known and logged as a third feature:
         * REM's relevance model must see what the ranker saw, else rank carries relevance
         * information the model lacks and theta absorbs it (confounding). */
        uint32_t n = a->synth_d;
        if (n > 64 || causal_sessions_set_n_features(s, 3, &err) != CW_OK ||
            causal_simcoll_new(s, rankers, NULL, &c, &err) != CW_OK) {
            die("random collection", &err);
        }
        char idbuf[64][24];
        const char *ids[64];
        int labels[64];
        double sc[2][64];
        float fx[64 * 3];
        const double *rows[2] = {sc[0], sc[1]};
        cw_rng rng;
        cw_rng_seed(&rng, a->seed);
        for (uint32_t q = 0; q < a->synth_q; q++) {
            char qid[32];
            snprintf(qid, sizeof qid, "q%u", q + 1);
            for (uint32_t i = 0; i < n; i++) {
                snprintf(idbuf[i], sizeof idbuf[i], "d%u", q * n + i + 1);
                ids[i] = idbuf[i];
                labels[i] = (int)cw_rng_below(&rng, 5);
                for (uint32_t r = 0; r < rankers && r < 2; r++) {
                    sc[r][i] = labels[i] + cw_rng_normal(&rng);
                }
                fx[3 * i] = (float)(labels[i] + 0.5 * cw_rng_normal(&rng));
                fx[3 * i + 1] = (float)cw_rng_normal(&rng);
                fx[3 * i + 2] = (float)sc[0][i];
            }
            if (causal_simcoll_add(c, qid, n, ids, labels, rows, fx, &err) != CW_OK) {
                die("random collection", &err);
            }
        }
    } else {
        if (causal_sessions_set_n_features(s, 2, &err) != CW_OK ||
            causal_simcoll_random(s, a->synth_q, a->synth_d, 4, rankers, 1.0, a->seed, &c, &err) !=
                CW_OK) {
            die("random collection", &err);
        }
        cw_rng rng;
        for (size_t p = 0; p < s->n_pairs; p++) {
            cw_rng_seed_stream(&rng, a->seed + 99, p);
            s->pair_features[2 * p] = (float)(s->pair_label[p] + 0.5 * cw_rng_normal(&rng));
            s->pair_features[2 * p + 1] = (float)cw_rng_normal(&rng);
        }
    }
    if (a->qnorm && s->n_features > 0) {
        /* Rank depends on the other candidates of the query; a pooled P(R|x) cannot see that
         * (a score of 10 is top for one query, bottom for another), so relevance given x
         * differs by rank and theta absorbs it. Query-relative features remove that channel. */
        size_t d = s->n_features;
        double *lo = malloc(s->n_queries * d * sizeof *lo),
               *hi = malloc(s->n_queries * d * sizeof *hi);
        if (!lo || !hi) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        for (size_t i = 0; i < s->n_queries * d; i++) {
            lo[i] = INFINITY;
            hi[i] = -INFINITY;
        }
        for (size_t p = 0; p < s->n_pairs; p++) {
            for (size_t f = 0; f < d; f++) {
                double x = s->pair_features[p * d + f];
                size_t k = (size_t)s->pair_query[p] * d + f;
                lo[k] = x < lo[k] ? x : lo[k];
                hi[k] = x > hi[k] ? x : hi[k];
            }
        }
        for (size_t p = 0; p < s->n_pairs; p++) {
            for (size_t f = 0; f < d; f++) {
                size_t k = (size_t)s->pair_query[p] * d + f;
                double r = hi[k] - lo[k];
                s->pair_features[p * d + f] =
                    (float)(r > 0 ? (s->pair_features[p * d + f] - lo[k]) / r : 0.0);
            }
        }
        free(lo);
        free(hi);
    }
    if (a->binary) {
        causal_simcoll_binarize(c);
    }
    *sp = s;
    return c;
}

typedef struct cell {
    const char *method;
    causal_policy policy;
    uint32_t rankers; /* 0 = a->harvest_rankers */
    causal_prop_method m;
    causal_rel_model rel;
    uint32_t context; /* causal_prop_opts.rel_context */
    bool extra;       /* only with --extra-rem 1 */
    bool oracle;      /* theta-only M-step with the simulator's true P(R=1|y) */
} cell;

/* Expected max over ranks 2..R of |N(0, 1/c_k + 1/c_1)|: the max relative error that the
 * Bernoulli noise of the click counts alone gives (METHODS.md section 4's count bound
 * sqrt(1/c_1 + 1/c_k) per rank; for the PBM with known relevance it is also the
 * Cramer-Rao bound, since the Fisher information of theta_k is ~ c_k / theta_k^2). */
static double count_bound(const uint64_t *clicks, uint32_t R)
{
    cw_rng rng;
    cw_rng_seed(&rng, 12345);
    double sum = 0;
    const int draws = 20000;
    for (int t = 0; t < draws; t++) {
        double mx = 0;
        for (uint32_t k = 1; k < R; k++) {
            if (clicks[k] == 0 || clicks[0] == 0) {
                return NAN;
            }
            double sd = sqrt(1.0 / (double)clicks[k] + 1.0 / (double)clicks[0]);
            double e = fabs(sd * cw_rng_normal(&rng));
            mx = e > mx ? e : mx;
        }
        sum += mx;
    }
    return sum / draws;
}

/* count_bound over the clicks that intervention harvesting can use: those of (query, doc)
 * pairs shown at two or more of ranks 1..10. A floor only: harvesting also estimates each
 * pair's relevance from the same clicks. */
static double harvest_bound_counts(const causal_sessions *s, uint64_t clicks[10])
{
    uint16_t *mask = calloc(s->n_pairs ? s->n_pairs : 1, sizeof *mask);
    memset(clicks, 0, 10 * sizeof *clicks);
    if (!mask) {
        return NAN;
    }
    for (size_t j = 0; j < s->n_items; j++) {
        if (s->i_pos[j] <= 10) {
            mask[s->i_pair[j]] |= (uint16_t)(1u << (s->i_pos[j] - 1));
        }
    }
    for (size_t j = 0; j < s->n_items; j++) {
        uint16_t m = mask[s->i_pair[j]];
        if (s->i_pos[j] <= 10 && (m & (m - 1)) != 0) {
            clicks[s->i_pos[j] - 1] += s->i_click[j];
        }
    }
    free(mask);
    return count_bound(clicks, 10);
}

static double harvest_bound(const causal_sessions *s)
{
    uint64_t clicks[10];
    return harvest_bound_counts(s, clicks);
}

static void run_grid(const args *a)
{
    char hv_name[64];
    snprintf(hv_name, sizeof hv_name, "harvest AllPairs (%u rankers)", a->harvest_rankers);
    char hv_oracle[80];
    snprintf(hv_oracle, sizeof hv_oracle, "%u-ranker harvest log, true relevance (oracle)",
             a->harvest_rankers);
    char rp_name[80];
    snprintf(rp_name, sizeof rp_name, "PBM MLE, per-pair relevance (%u rankers)",
             a->harvest_rankers);
    const cell cells[] = {
        {"randomization (RandTop-10)", CAUSAL_POLICY_RANDTOP, 1, CAUSAL_PROP_RANDOMIZATION,
         CAUSAL_REL_LINEAR, 0, false, false},
        /* the PBM MLE with one relevance per (query, doc) on the same RandTop log: conditions
         * on which document was shown where, so between-document variance drops out */
        {"randomization, PBM MLE per pair (RandTop-10)", CAUSAL_POLICY_RANDTOP, 1, CAUSAL_PROP_REM,
         CAUSAL_REL_PAIR, 0, false, false},
        /* theta-only fit on the same RandTop log with the simulator's true relevance of
         * every pair: no estimator can beat an oracle that knows the relevances, so its
         * error is the floor the click noise sets at these session counts */
        {"RandTop-10 log, true relevance (oracle)", CAUSAL_POLICY_RANDTOP, 1, CAUSAL_PROP_REM,
         CAUSAL_REL_LINEAR, 0, false, true},
        {"randomization (swap 1<->k)", CAUSAL_POLICY_SWAP, 1, CAUSAL_PROP_RANDOMIZATION,
         CAUSAL_REL_LINEAR, 0, false, false},
        {hv_name, CAUSAL_POLICY_DETERMINISTIC, 0, CAUSAL_PROP_HARVEST, CAUSAL_REL_LINEAR, 0, false,
         false},
        /* the same R-ranker log as harvesting: pairs move between ranks, so one relevance
         * per (query, doc) is identified (the PBM MLE; no feature model to confound theta) */
        {rp_name, CAUSAL_POLICY_DETERMINISTIC, 0, CAUSAL_PROP_REM, CAUSAL_REL_PAIR, 0, false,
         false},
        /* the oracle on the harvesting log: the floor for any estimator on those logs */
        {hv_oracle, CAUSAL_POLICY_DETERMINISTIC, 0, CAUSAL_PROP_REM, CAUSAL_REL_LINEAR, 0, false,
         true},
        {"regression-EM, linear", CAUSAL_POLICY_DETERMINISTIC, 1, CAUSAL_PROP_REM,
         CAUSAL_REL_LINEAR, 0, false, false},
        {"regression-EM, linear + score", CAUSAL_POLICY_DETERMINISTIC, 1, CAUSAL_PROP_REM,
         CAUSAL_REL_LINEAR, CAUSAL_REL_CONTEXT_SCORE, true, false},
        {"regression-EM, linear + query context", CAUSAL_POLICY_DETERMINISTIC, 1, CAUSAL_PROP_REM,
         CAUSAL_REL_LINEAR, CAUSAL_REL_CONTEXT_QUERY, false, false},
        {"regression-EM, quadratic", CAUSAL_POLICY_DETERMINISTIC, 1, CAUSAL_PROP_REM,
         CAUSAL_REL_QUAD, 0, false, false},
        {"regression-EM, quadratic + score", CAUSAL_POLICY_DETERMINISTIC, 1, CAUSAL_PROP_REM,
         CAUSAL_REL_QUAD, CAUSAL_REL_CONTEXT_SCORE, true, false},
        {"regression-EM, quadratic + query context", CAUSAL_POLICY_DETERMINISTIC, 1,
         CAUSAL_PROP_REM, CAUSAL_REL_QUAD, CAUSAL_REL_CONTEXT_QUERY, true, false},
        {"regression-EM, MLP + query context", CAUSAL_POLICY_DETERMINISTIC, 1, CAUSAL_PROP_REM,
         CAUSAL_REL_MLP, CAUSAL_REL_CONTEXT_QUERY, true, false},
        {"PBM MLE, per-pair relevance (2 rankers)", CAUSAL_POLICY_DETERMINISTIC, 2, CAUSAL_PROP_REM,
         CAUSAL_REL_PAIR, 0, true, false},
        /* theta-only M-step with the simulator's true P(R=1|y): what REM would give with a
         * perfect relevance model, i.e. the part of the error the relevance model does not cause */
        {"regression-EM, true relevance (oracle)", CAUSAL_POLICY_DETERMINISTIC, 1, CAUSAL_PROP_REM,
         CAUSAL_REL_LINEAR, 0, false, true},
    };
    for (size_t ci = 0; ci < CW_ARRAY_LEN(cells); ci++) {
        if ((cells[ci].extra && !a->mlp) || (a->only && !strstr(cells[ci].method, a->only))) {
            continue;
        }
        uint32_t n_rankers = cells[ci].rankers ? cells[ci].rankers : a->harvest_rankers;
        if (cells[ci].context == CAUSAL_REL_CONTEXT_QUERY && cells[ci].rel == CAUSAL_REL_QUAD &&
            a->letor) {
            continue; /* 46 LETOR features + 4: over the quadratic model's 32 */
        }
        causal_sessions *s = NULL;
        causal_simcoll *c = load(a, n_rankers, &s);
        cw_err err = {0};
        /* further production rankers: ranker 0 + noise per (query, doc), fixed across seeds */
        if (n_rankers > 1 &&
            causal_simcoll_perturb(c, cells[ci].rankers == 0 ? a->harvest_noise : 0.5, a->seed + 7,
                                   &err) != CW_OK) {
            die("perturb", &err);
        }
        for (size_t si = 0; si < a->n_seeds; si++) {
            for (size_t ei = 0; ei < a->n_etas; ei++) {
                for (size_t ni = 0; ni < a->n_sessions; ni++) {
                    causal_sessions_clear(s);
                    causal_sim_opts o = causal_sim_opts_default();
                    int ymax = causal_simcoll_max_label(c);
                    o.user = causal_user_default(CAUSAL_USER_PBM, ymax < 1 ? 1 : ymax);
                    causal_user_theta_power(&o.user, a->etas[ei], 10);
                    o.policy.kind = cells[ci].policy;
                    o.n_sessions = a->sessions[ni];
                    o.seed = a->seeds[si] + 1000 * ei + ni;
                    o.n_rankers = n_rankers;
                    o.skip_unjudged = a->skip_unjudged;
                    if (causal_simulate(c, &o, &err) != CW_OK) {
                        die("simulate", &err);
                    }
                    causal_prop_opts po = causal_prop_opts_default(cells[ci].m);
                    po.n_boot = 0;
                    po.rel_model = cells[ci].rel;
                    po.rel_context = cells[ci].context;
                    po.max_iter = cells[ci].m == CAUSAL_PROP_REM ? 1000 : 5000;
                    if (cells[ci].rel == CAUSAL_REL_PAIR && n_rankers > 1) {
                        /* the per-pair fit stops by its 1e-6 rule in ~30 iterations since
                         * it pins theta_1 (the EM it replaced crawled along the theta-gamma
                         * ridge for thousands); the cap only guards against a regression */
                        po.max_iter = 50000;
                        /* CW_PROP_TOL overrides the stop rule: checks that the errors
                         * are not an artefact of stopping early (docs/benchmarks.md) */
                        if (getenv("CW_PROP_TOL")) {
                            po.tol = strtod(getenv("CW_PROP_TOL"), NULL);
                        }
                    }
                    double *oracle = NULL;
                    if (cells[ci].oracle) {
                        oracle = malloc((s->n_pairs ? s->n_pairs : 1) * sizeof *oracle);
                        if (!oracle) {
                            fprintf(stderr, "out of memory\n");
                            exit(1);
                        }
                        for (size_t p = 0; p < s->n_pairs; p++) {
                            int y = s->pair_label[p] < 0 ? 0 : s->pair_label[p];
                            oracle[p] = causal_user_relevance(&o.user, y);
                        }
                        po.rel_fixed = oracle;
                    }
                    causal_propensity p;
                    double truth[10];
                    for (int k = 0; k < 10; k++) {
                        truth[k] = o.user.theta[k] / o.user.theta[0];
                    }
                    int rc = causal_propensity_fit(s, &po, &p, &err);
                    free(oracle);
                    if (rc != CW_OK) {
                        printf("%s\t%g\t%llu\t%s\trefused: %.60s\t\t\t%llu\t\n", a->name,
                               a->etas[ei], (unsigned long long)a->sessions[ni], cells[ci].method,
                               err.msg, (unsigned long long)a->seeds[si]);
                    } else {
                        if (getenv("CW_PROP_VERBOSE")) {
                            for (int k = 0; k < 10; k++) {
                                fprintf(stderr, " %d:%.4f/%.4f", k + 1, p.ratio[k], truth[k]);
                            }
                            fprintf(stderr, "\n");
                        }
                        double bound = NAN;
                        if (cells[ci].policy == CAUSAL_POLICY_RANDTOP) {
                            /* counts of the RandTop log itself, whichever estimator ran */
                            causal_prop_opts pr =
                                causal_prop_opts_default(CAUSAL_PROP_RANDOMIZATION);
                            pr.n_boot = 0;
                            causal_propensity pc;
                            if (causal_propensity_fit(s, &pr, &pc, &err) == CW_OK) {
                                bound = count_bound(pc.clicks_at, 10);
                            }
                        }
                        if (cells[ci].m == CAUSAL_PROP_HARVEST ||
                            (cells[ci].rel == CAUSAL_REL_PAIR && n_rankers > 1)) {
                            bound = harvest_bound(s);
                        }
                        printf("%s\t%g\t%llu\t%s\t%.4f\t%.3f\t%u\t%llu\t%.4f\n", a->name,
                               a->etas[ei], (unsigned long long)a->sessions[ni], cells[ci].method,
                               causal_prop_max_rel_error(p.ratio, truth, 10), p.seconds, p.n_iter,
                               (unsigned long long)a->seeds[si], bound);
                    }
                    fflush(stdout);
                }
            }
        }
        causal_simcoll_free(c);
        causal_sessions_free(s);
    }
}

static size_t parse_list_d(const char *s, double *out, size_t cap);

/* Power analysis of harvesting designs without estimating anything: for R rankers (noise
 * a->harvest_noise), simulate the eta/sessions log once and report the expected max error
 * that the click counts usable by harvesting imply (harvest_bound), with those counts at
 * ranks 1 and 10. Used to pick R before a design is run through the estimator. */
static void run_power(const args *a)
{
    double rs[16];
    size_t n_r = parse_list_d(a->power, rs, 16);
    printf("| %s: rankers (noise %.2g sd), eta %g, %.0e sessions | usable clicks at rank 1 | "
           "at rank 10 | count bound |\n|---|---|---|---|\n",
           a->name, a->harvest_noise, a->etas[0], (double)a->sessions[a->n_sessions - 1]);
    for (size_t i = 0; i < n_r; i++) {
        uint32_t R = (uint32_t)rs[i];
        causal_sessions *s = NULL;
        causal_simcoll *c = load(a, R, &s);
        cw_err err = {0};
        if (causal_simcoll_perturb(c, a->harvest_noise, a->seed + 7, &err) != CW_OK) {
            die("perturb", &err);
        }
        causal_sim_opts o = causal_sim_opts_default();
        int ymax = causal_simcoll_max_label(c);
        o.user = causal_user_default(CAUSAL_USER_PBM, ymax < 1 ? 1 : ymax);
        causal_user_theta_power(&o.user, a->etas[0], 10);
        o.n_sessions = a->sessions[a->n_sessions - 1];
        o.seed = a->seeds[0];
        o.n_rankers = R;
        if (causal_simulate(c, &o, &err) != CW_OK) {
            die("simulate", &err);
        }
        uint64_t clicks[10];
        double b = harvest_bound_counts(s, clicks);
        printf("| %u | %llu | %llu | %.2f%% |\n", R, (unsigned long long)clicks[0],
               (unsigned long long)clicks[9], 100 * b);
        fflush(stdout);
        causal_simcoll_free(c);
        causal_sessions_free(s);
    }
}

/* Intervention counts of harvesting designs "R:NOISE,..." (R rankers, the others = ranker 1
 * + NOISE query-score sd of Gaussian noise): a property of the rankers, computed before any
 * click is simulated, so the design is chosen without looking at estimation errors. */
static void run_interventions(const args *a)
{
    char *list = strdup(a->interventions);
    printf("| %s design | n(1,k) for k = 2..10 | N_k = sum_k' n(k,k') for k = 1..10 | min N_k |\n"
           "|---|---|---|---|\n",
           a->name);
    char *save = NULL; /* load() uses strtok on the LETOR list */
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        uint32_t R = (uint32_t)strtoul(t, NULL, 10);
        const char *colon = strchr(t, ':');
        double noise = colon ? strtod(colon + 1, NULL) : 0.5;
        causal_sessions *s = NULL;
        causal_simcoll *c = load(a, R, &s);
        cw_err err = {0};
        double n[100];
        if ((R > 1 && causal_simcoll_perturb(c, noise, a->seed + 7, &err) != CW_OK) ||
            causal_simcoll_interventions(c, R, 10, n, &err) != CW_OK) {
            die("interventions", &err);
        }
        printf("| %u rankers, noise %.2g sd |", R, noise);
        for (int k = 1; k < 10; k++) {
            printf(" %.0f", n[k]);
        }
        printf(" |");
        double mn = INFINITY;
        for (int k = 0; k < 10; k++) {
            double sum = 0;
            for (int j = 0; j < 10; j++) {
                sum += n[k * 10 + j];
            }
            mn = sum < mn ? sum : mn;
            printf(" %.0f", sum);
        }
        printf(" | %.0f |\n", mn);
        causal_simcoll_free(c);
        causal_sessions_free(s);
    }
    free(list);
}

/* METHODS.md section 4 table: theta table, eta = 1, eps = 0.1, ymax = 4, uniformly
 * shuffled 10-item lists, simulated and counted in chunks of 10^6 sessions. */
static void run_table(const args *a)
{
    cw_err err = {0};
    causal_sessions *s = NULL;
    causal_simcoll *c = NULL;
    causal_rand_counts *rc = NULL;
    if (causal_sessions_new(&s, &err) != CW_OK ||
        causal_simcoll_random(s, 1000, 10, 4, 1, 1.0, a->seed, &c, &err) != CW_OK ||
        causal_rand_counts_new(10, 1000, &rc, &err) != CW_OK) {
        die("table setup", &err);
    }
    uint64_t chunk = 1000000, done = 0, t0 = cw_now_ns();
    while (done < a->table) {
        causal_sessions_clear(s);
        causal_sim_opts o = causal_sim_opts_default();
        o.policy.kind = CAUSAL_POLICY_RANDTOP;
        o.n_sessions = a->table - done < chunk ? a->table - done : chunk;
        o.seed = a->seed + done;
        if (causal_simulate(c, &o, &err) != CW_OK) {
            die("simulate", &err);
        }
        causal_rand_counts_add(rc, s);
        done += o.n_sessions;
    }
    double sim_s = (double)(cw_now_ns() - t0) / 1e9;
    causal_prop_opts po = causal_prop_opts_default(CAUSAL_PROP_RANDOMIZATION);
    po.n_boot = 1000;
    causal_propensity p;
    if (causal_rand_counts_finish(rc, &po, &p, &err) != CW_OK) {
        die("finish", &err);
    }
    static const double th[10] = {.68, .61, .48, .34, .28, .20, .11, .10, .08, .06};
    static const double ultra[10] = {1.000, 1.117, 1.415, 2.003, 2.435,
                                     3.401, 6.192, 6.808, 8.546, 11.333};
    printf("| rank k | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 |\n|---|");
    for (int k = 0; k < 10; k++) {
        printf("---|");
    }
    printf("\n| truth θ_1/θ_k |");
    for (int k = 0; k < 10; k++) {
        printf(" %.3f |", th[0] / th[k]);
    }
    printf("\n| ULTRA's estimate |");
    for (int k = 0; k < 10; k++) {
        printf(" %.3f |", ultra[k]);
    }
    printf("\n| causeway, %.0e sessions |", (double)a->table);
    for (int k = 0; k < 10; k++) {
        printf(" %.3f |", 1 / p.ratio[k]);
    }
    printf("\n| 95%% bootstrap interval |");
    for (int k = 0; k < 10; k++) {
        printf(" %.3f–%.3f |", 1 / p.ci_hi[k], 1 / p.ci_lo[k]);
    }
    printf("\n| relative error |");
    double mx = 0;
    for (int k = 0; k < 10; k++) {
        double t = th[0] / th[k], e = fabs(1 / p.ratio[k] - t) / t;
        mx = e > mx ? e : mx;
        printf(" %.2f%% |", 100 * e);
    }
    printf("\n\nmax relative error %.2f%%; simulated %.0e sessions in %.1f s (incl. counting)\n",
           100 * mx, (double)a->table, sim_s);
    causal_rand_counts_free(rc);
    causal_simcoll_free(c);
    causal_sessions_free(s);
}

/* Regression-EM fit time over N impressions (items) on the collection. */
static void run_rem_timing(const args *a)
{
    causal_sessions *s = NULL;
    causal_simcoll *c = load(a, 1, &s);
    cw_err err = {0};
    causal_sim_opts o = causal_sim_opts_default();
    int ymax = causal_simcoll_max_label(c);
    o.user = causal_user_default(CAUSAL_USER_PBM, ymax < 1 ? 1 : ymax);
    causal_user_theta_power(&o.user, 1.0, 10);
    o.n_sessions = a->rem_timing / 10;
    o.seed = a->seed;
    uint64_t t0 = cw_now_ns();
    /* queries with fewer than 10 candidates show shorter lists: top up to N impressions */
    while (s->n_items < a->rem_timing) {
        if (causal_simulate(c, &o, &err) != CW_OK) {
            die("simulate", &err);
        }
        uint64_t per = s->n_items / s->n_sessions;
        o.n_sessions = (a->rem_timing - s->n_items) / (per ? per : 1) + 1;
        o.seed++;
    }
    double sim_s = (double)(cw_now_ns() - t0) / 1e9;
    causal_prop_opts po = causal_prop_opts_default(CAUSAL_PROP_REM);
    po.n_boot = 0;
    po.max_iter = 300;
    po.max_iter = 1000;
    causal_propensity p;
    t0 = cw_now_ns();
    clock_t c0 = clock();
    if (causal_propensity_fit(s, &po, &p, &err) != CW_OK) {
        die("rem", &err);
    }
    double fit_s = (double)(cw_now_ns() - t0) / 1e9;
    double cpu_s = (double)(clock() - c0) / CLOCKS_PER_SEC;
    double truth[10];
    for (int k = 0; k < 10; k++) {
        truth[k] = o.user.theta[k] / o.user.theta[0];
    }
    printf("%s: regression-EM (linear, single thread) over %zu impressions (%zu sessions): "
           "%.2f s CPU, %.2f s wall, %u iterations (%s), max rel. error %.1f%%; simulation "
           "%.2f s wall\n",
           a->name, s->n_items, s->n_sessions, cpu_s, fit_s, p.n_iter,
           p.converged ? "converged" : "iteration cap",
           100 * causal_prop_max_rel_error(p.ratio, truth, 10), sim_s);
    causal_simcoll_free(c);
    causal_sessions_free(s);
}

/* Simulation core throughput: sessions/s of causal_simulate (no I/O). */
static void run_sim_speed(const args *a)
{
    causal_policy pols[3] = {CAUSAL_POLICY_DETERMINISTIC, CAUSAL_POLICY_RANDTOP, CAUSAL_POLICY_PL};
    const char *names[3] = {"deterministic", "randtop-10", "plackett-luce (20 candidates)"};
    for (int i = 0; i < 3; i++) {
        causal_sessions *s = NULL;
        causal_simcoll *c = load(a, 1, &s);
        double rates[3], cpu[3];
        for (int rep = 0; rep < 3; rep++) {
            causal_sessions_clear(s);
            cw_err err = {0};
            causal_sim_opts o = causal_sim_opts_default();
            int ymax = causal_simcoll_max_label(c);
            o.user = causal_user_default(CAUSAL_USER_PBM, ymax < 1 ? 1 : ymax);
            o.policy.kind = pols[i];
            o.n_sessions = a->sim_speed;
            o.seed = a->seed + rep;
            clock_t c0 = clock();
            uint64_t t0 = cw_now_ns();
            if (causal_simulate(c, &o, &err) != CW_OK) {
                die("simulate", &err);
            }
            rates[rep] = (double)a->sim_speed / ((double)(cw_now_ns() - t0) / 1e9);
            cpu[rep] = (double)a->sim_speed / ((double)(clock() - c0) / CLOCKS_PER_SEC);
        }
        /* The machine is shared: CPU-time rates are the stable figure, wall-clock rates
         * show what the contention left. */
        printf("%s: simulate %s: median %.2e sessions per CPU-second (%.2e per wall second) "
               "over 3 runs of %.0e\n",
               a->name, names[i], cw_median(cpu, 3), cw_median(rates, 3), (double)a->sim_speed);
        causal_simcoll_free(c);
        causal_sessions_free(s);
    }
}

/* Click models: data simulated from each user model, every click model fitted on 80% of
 * the sessions and evaluated on the other 20%, for 3 seeds. Models are compared by paired
 * per-session log-likelihood differences against the generating model (mean +- standard
 * error over the held-out sessions): a nesting model (UBM nests cascade and PBM) can fit the
 * generating distribution exactly and then ties it within noise. */
static void run_clickmodels(const args *a)
{
    static const char *users[4] = {"PBM", "cascade (stop after 1st click)", "DBN (gamma 0.7)",
                                   "UBM"};
    causal_user_kind kinds[4] = {CAUSAL_USER_PBM, CAUSAL_USER_CASCADE, CAUSAL_USER_DBN,
                                 CAUSAL_USER_UBM};
    causal_cm_kind gen[4] = {CAUSAL_CM_PBM, CAUSAL_CM_CASCADE, CAUSAL_CM_DBN, CAUSAL_CM_UBM};
    enum { N_SEEDS = 3 };
    printf(
        "| simulated user | fitted | held-out LL/session (seed 1) | perplexity | @1 | @5 | @10 | "
        "LL - generating model's, per seed (± s.e.) | verdict |\n"
        "|---|---|---|---|---|---|---|---|---|\n");
    for (int u = 0; u < 4; u++) {
        causal_cm_eval ev[N_SEEDS][CAUSAL_CM_N];
        double dmean[N_SEEDS][CAUSAL_CM_N], dse[N_SEEDS][CAUSAL_CM_N];
        for (int sd = 0; sd < N_SEEDS; sd++) {
            cw_err err = {0};
            causal_sessions *s = NULL;
            causal_simcoll *c = NULL;
            uint64_t seed = a->seed + 100 * (uint64_t)sd;
            if (causal_sessions_new(&s, &err) != CW_OK ||
                causal_simcoll_random(s, 100, 10, 4, 1, 1.0, seed + (uint64_t)u, &c, &err) !=
                    CW_OK) {
                die("clickmodel setup", &err);
            }
            causal_sim_opts o = causal_sim_opts_default();
            o.user = causal_user_default(kinds[u], 4);
            if (kinds[u] == CAUSAL_USER_CASCADE) {
                for (int y = 0; y <= 4; y++) {
                    o.user.p_stop[y] = 1.0;
                }
            }
            if (kinds[u] == CAUSAL_USER_DBN) {
                o.user.dbn_gamma = 0.7;
            }
            o.policy.kind = CAUSAL_POLICY_RANDTOP;
            o.n_sessions = a->clickmodels;
            o.seed = seed + 50 + (uint64_t)u;
            if (causal_simulate(c, &o, &err) != CW_OK) {
                die("simulate", &err);
            }
            size_t tr = s->n_sessions * 4 / 5, nh = s->n_sessions - tr;
            double *ll[CAUSAL_CM_N];
            for (int k = 0; k < CAUSAL_CM_N; k++) {
                causal_cm_opts co = causal_cm_opts_default((causal_cm_kind)k);
                causal_clickmodel *m = NULL;
                ll[k] = malloc(nh * sizeof *ll[k]);
                if (!ll[k] || causal_clickmodel_fit(s, 0, tr, &co, &m, &err) != CW_OK ||
                    causal_clickmodel_eval(m, s, tr, s->n_sessions, &ev[sd][k], &err) != CW_OK ||
                    causal_clickmodel_session_ll(m, s, tr, s->n_sessions, ll[k], &err) != CW_OK) {
                    die("click model", &err);
                }
                causal_clickmodel_free(m);
            }
            for (int k = 0; k < CAUSAL_CM_N; k++) {
                double sum = 0, sq = 0;
                for (size_t i = 0; i < nh; i++) {
                    double d = ll[k][i] - ll[gen[u]][i];
                    sum += d;
                    sq += d * d;
                }
                double mean = sum / (double)nh, var = sq / (double)nh - mean * mean;
                dmean[sd][k] = mean;
                dse[sd][k] = sqrt(var > 0 ? var : 0) / sqrt((double)nh);
            }
            for (int k = 0; k < CAUSAL_CM_N; k++) {
                free(ll[k]);
            }
            causal_simcoll_free(c);
            causal_sessions_free(s);
        }
        for (int k = 0; k < CAUSAL_CM_N; k++) {
            printf("| %s | %s%s | %.5f | %.4f | %.4f | %.4f | %.4f |", k ? "" : users[u],
                   causal_cm_name((causal_cm_kind)k), k == (int)gen[u] ? " (generating)" : "",
                   ev[0][k].ll, ev[0][k].perplexity, ev[0][k].perplexity_at[0],
                   ev[0][k].perplexity_at[4], ev[0][k].perplexity_at[9]);
            int worse = 0, tie = 0, better = 0, tie1 = 0;
            for (int sd = 0; sd < N_SEEDS; sd++) {
                if (k == (int)gen[u]) {
                    continue;
                }
                printf(" %+.5f ± %.5f%s", dmean[sd][k], dse[sd][k], sd + 1 < N_SEEDS ? ";" : "");
                if (dmean[sd][k] < -2 * dse[sd][k]) {
                    worse++;
                } else if (dmean[sd][k] > 2 * dse[sd][k]) {
                    better++;
                } else {
                    tie++;
                    tie1 += fabs(dmean[sd][k]) < dse[sd][k];
                }
            }
            printf(" | %s |\n", k == (int)gen[u] ? "-"
                                : better         ? "BETTER than the generating model"
                                : tie            ? (worse ? "worse on some seeds, tied on others"
                                                    : tie1 == N_SEEDS - 0 ? "ties (difference < 1 s.e.)"
                                                                          : "ties (difference < 2 s.e.)")
                                                 : "worse on every seed");
        }
    }
}

static size_t parse_list_d(const char *s, double *out, size_t cap)
{
    size_t n = 0;
    while (*s && n < cap) {
        char *end;
        out[n++] = strtod(s, &end);
        s = *end == ',' ? end + 1 : end;
        if (end == s && *s) {
            break;
        }
    }
    return n;
}

/* parse_list_d into counts (so "1e6" is a million, as everywhere else here). */
static size_t parse_list_u64(const char *s, uint64_t *out, size_t cap)
{
    double d[16];
    size_t n = parse_list_d(s, d, cap < CW_ARRAY_LEN(d) ? cap : CW_ARRAY_LEN(d));
    for (size_t j = 0; j < n; j++) {
        out[j] = (uint64_t)d[j];
    }
    return n;
}

int main(int argc, char **argv)
{
    args a;
    memset(&a, 0, sizeof a);
    a.name = "synthetic";
    a.synth_q = 1000;
    a.synth_d = 20;
    a.depth = 20;
    a.score_feature = 25;
    a.seed = 1;
    a.n_etas = 3;
    a.etas[0] = 0.5;
    a.etas[1] = 1;
    a.etas[2] = 2;
    a.n_sessions = 3;
    a.sessions[0] = 10000;
    a.sessions[1] = 100000;
    a.sessions[2] = 1000000;
    a.harvest_rankers = 5;
    a.harvest_noise = 1.0;
    bool grid = true;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *o = argv[i], *v = argv[i + 1];
        if (strcmp(o, "--name") == 0) {
            a.name = v;
        } else if (strcmp(o, "--index") == 0) {
            a.index = v;
        } else if (strcmp(o, "--queries") == 0) {
            a.queries = v;
        } else if (strcmp(o, "--qrels") == 0) {
            a.qrels = v;
        } else if (strcmp(o, "--letor") == 0) {
            a.letor = v;
        } else if (strcmp(o, "--qnorm") == 0) {
            a.qnorm = strcmp(v, "1") == 0;
        } else if (strcmp(o, "--logged-score") == 0) {
            a.logged_score = strcmp(v, "1") == 0;
        } else if (strcmp(o, "--only") == 0) {
            a.only = v;
        } else if (strcmp(o, "--etas") == 0) {
            a.n_etas = parse_list_d(v, a.etas, 8);
        } else if (strcmp(o, "--sessions") == 0) {
            a.n_sessions = parse_list_u64(v, a.sessions, CW_ARRAY_LEN(a.sessions));
            if (a.n_sessions == 0) {
                fprintf(stderr, "propensity_experiment: --sessions needs a list of counts\n");
                return 2;
            }
        } else if (strcmp(o, "--seed") == 0) {
            a.seed = strtoull(v, NULL, 10);
        } else if (strcmp(o, "--seeds") == 0) {
            a.n_seeds = parse_list_u64(v, a.seeds, CW_ARRAY_LEN(a.seeds));
        } else if (strcmp(o, "--harvest") == 0) {
            a.harvest_rankers = (uint32_t)strtoul(v, NULL, 10);
            const char *colon = strchr(v, ':');
            a.harvest_noise = colon ? strtod(colon + 1, NULL) : 1.0;
            if (a.harvest_rankers < 2 || a.harvest_rankers > CAUSAL_SIM_MAX_RANKERS) {
                fprintf(stderr, "--harvest R:NOISE needs 2..%u rankers\n", CAUSAL_SIM_MAX_RANKERS);
                return 2;
            }
        } else if (strcmp(o, "--interventions") == 0) {
            a.interventions = v;
            grid = false;
        } else if (strcmp(o, "--power") == 0) {
            a.power = v;
            grid = false;
        } else if (strcmp(o, "--skip-unjudged") == 0) {
            a.skip_unjudged = strcmp(v, "1") == 0;
        } else if (strcmp(o, "--binary") == 0) {
            a.binary = strcmp(v, "1") == 0;
        } else if (strcmp(o, "--extra-rem") == 0 || strcmp(o, "--mlp") == 0) {
            a.mlp = strcmp(v, "1") == 0;
        } else if (strcmp(o, "--table") == 0) {
            a.table = (uint64_t)strtod(v, NULL);
            grid = false;
        } else if (strcmp(o, "--rem-timing") == 0) {
            a.rem_timing = (uint64_t)strtod(v, NULL);
            grid = false;
        } else if (strcmp(o, "--clickmodels") == 0) {
            a.clickmodels = (uint64_t)strtod(v, NULL);
            grid = false;
        } else if (strcmp(o, "--sim-speed") == 0) {
            a.sim_speed = (uint64_t)strtod(v, NULL);
            grid = false;
        } else {
            fprintf(stderr, "unknown option %s\n", o);
            return 2;
        }
    }
    if (a.n_seeds == 0) {
        a.n_seeds = 1;
        a.seeds[0] = a.seed;
    }
    if (a.interventions) {
        run_interventions(&a);
    }
    if (a.power) {
        run_power(&a);
    }
    if (a.table) {
        run_table(&a);
    }
    if (a.rem_timing) {
        run_rem_timing(&a);
    }
    if (a.sim_speed) {
        run_sim_speed(&a);
    }
    if (a.clickmodels) {
        run_clickmodels(&a);
    }
    if (grid) {
        run_grid(&a);
    }
    return 0;
}
