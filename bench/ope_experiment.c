/* bench/ope_experiment.c: issue 7 item 4. Six target rankers are evaluated from the logs of
 * a Plackett-Luce logging policy with every estimator of causal/ope.c, at several log
 * sizes and many repetitions, against each target's true online value. Simulated in
 * memory with the PBM click model of METHODS.md section 3 (theta table, ymax = 4,
 * epsilon = 0.1) on synthetic queries: bias, RMSE, relative error, 95% interval
 * coverage, Kendall's tau of the estimated policy order, and estimator throughput. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "causal/causal.h"

#define NC 8 /* candidates per query */
#define K 5  /* shown slots */
#define NT 6 /* target policies */
#define NE 9 /* estimators */
#define MAX_SIZES 8

static const double theta[K] = {0.68, 0.61, 0.48, 0.34, 0.28};
static const double p_rel[5] = {0.10, 0.16, 0.28, 0.52, 1.0};
static const double lambda[K] = {1, 1, 1, 1, 1}; /* clicks@5 */
static const char *const target_names[NT] = {"bm25",       "dense", "hybrid",
                                             "ips-ranker", "bad",   "pl-hybrid"};

typedef struct query {
    int label[NC];
    double s_log[NC];        /* logging ranker scores */
    double w_log[NC];        /* exp(s_log / tau_log - max) */
    double pb[NC * K];       /* exact logging marginals */
    double pb_full[NC * NC]; /* the same over all NC ranks (for --write-db) */
    double rho[NC];          /* sum_m pb(d@m) theta_m */
    double s_t[NT][NC];      /* target scores */
    double w_t[NT][NC];      /* PL weights of stochastic targets */
    double pe[NT][NC * K];
    uint32_t order[NT][NC]; /* deterministic order of each target */
} query;

typedef struct world {
    uint32_t n_q;
    query *q;
    causal_rpol logging;
    causal_rpol target[NT];
    double truth[NT];
} world;

static double truth_of(const world *w, int t)
{
    double v = 0;
    for (uint32_t q = 0; q < w->n_q; q++) {
        for (int d = 0; d < NC; d++) {
            for (int j = 0; j < K; j++) {
                v += w->q[q].pe[t][d * K + j] * lambda[j] * theta[j] * p_rel[w->q[q].label[d]];
            }
        }
    }
    return v / w->n_q;
}

static int world_init(world *w, uint32_t n_q, uint64_t seed, cw_err *err)
{
    cw_rng rng;
    cw_rng_seed(&rng, seed);
    w->n_q = n_q;
    w->q = calloc(n_q, sizeof *w->q);
    if (!w->q) {
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    w->logging = (causal_rpol){CAUSAL_RPOL_PL, 1.0, 1, 0};
    for (int t = 0; t < NT; t++) {
        w->target[t] = (causal_rpol){CAUSAL_RPOL_DET, 1, 1, 0};
    }
    w->target[5] = (causal_rpol){CAUSAL_RPOL_PL, 0.5, 1, 0};
    static const double label_cdf[5] = {0.5, 0.7, 0.85, 0.95, 1.0};
    for (uint32_t qi = 0; qi < n_q; qi++) {
        query *q = &w->q[qi];
        for (int d = 0; d < NC; d++) {
            double u = cw_rng_uniform(&rng);
            int y = 0;
            while (u > label_cdf[y]) {
                y++;
            }
            q->label[d] = y;
            /* A weak logging ranker; targets of different strength (synthetic scores). */
            q->s_log[d] = 0.5 * y + 0.7 * cw_rng_normal(&rng);
            double bm25 = y + 1.0 * cw_rng_normal(&rng);
            double dense = y + 1.3 * cw_rng_normal(&rng);
            q->s_t[0][d] = bm25;
            q->s_t[1][d] = dense;
            q->s_t[2][d] = 0.5 * (bm25 + dense);
            q->s_t[3][d] = y + 0.6 * cw_rng_normal(&rng);
            q->s_t[4][d] = -bm25;
            q->s_t[5][d] = 0.5 * (bm25 + dense);
        }
        int rc = causal_rpol_marginals(&w->logging, q->s_log, NC, K, q->pb, err);
        if (rc || (rc = causal_rpol_marginals(&w->logging, q->s_log, NC, NC, q->pb_full, err))) {
            return rc;
        }
        double mx = -INFINITY;
        for (int d = 0; d < NC; d++) {
            mx = fmax(mx, q->s_log[d] / w->logging.tau);
        }
        for (int d = 0; d < NC; d++) {
            q->w_log[d] = exp(q->s_log[d] / w->logging.tau - mx);
            q->rho[d] = 0;
            for (int m = 0; m < K; m++) {
                q->rho[d] += q->pb[d * K + m] * theta[m];
            }
        }
        for (int t = 0; t < NT; t++) {
            if ((rc = causal_rpol_marginals(&w->target[t], q->s_t[t], NC, K, q->pe[t], err))) {
                return rc;
            }
            uint32_t r[NC];
            causal_rpol det = {CAUSAL_RPOL_DET, 1, 1, 0};
            if ((rc = causal_rpol_sample(&det, q->s_t[t], NC, NC, NULL, r, err))) {
                return rc;
            }
            memcpy(q->order[t], r, sizeof r);
            double m2 = -INFINITY;
            for (int d = 0; d < NC; d++) {
                m2 = fmax(m2, q->s_t[t][d] / w->target[t].tau);
            }
            for (int d = 0; d < NC; d++) {
                q->w_t[t][d] = exp(q->s_t[t][d] / w->target[t].tau - m2);
            }
        }
    }
    for (int t = 0; t < NT; t++) {
        w->truth[t] = truth_of(w, t);
    }
    return CW_OK;
}

/* log prefix probabilities of a PL ranking from cached weights (METHODS.md section 6). */
static void pl_prefix(const double *wt, const uint32_t *shown, double *lp)
{
    double z = 0, acc = 0;
    for (int d = 0; d < NC; d++) {
        z += wt[d];
    }
    for (int j = 0; j < K; j++) {
        acc += log(wt[shown[j]] / z);
        lp[j] = acc;
        z -= wt[shown[j]];
    }
}

/* The simulated log of one repetition. */
typedef struct simlog {
    size_t n;
    uint32_t *q;
    uint32_t *shown; /* n * K */
    uint8_t *click;  /* n * K */
    double *lpb;     /* n * K */
} simlog;

static void simulate(const world *w, simlog *L, size_t n, cw_rng *rng)
{
    L->n = n;
    for (size_t i = 0; i < n; i++) {
        uint32_t qi = (uint32_t)cw_rng_below(rng, w->n_q);
        const query *q = &w->q[qi];
        /* Gumbel top-k of the logging PL, inlined for speed (causal_rpol_sample does the
         * same with a sort; tested equal in distribution in tests/unit/causal). */
        double key[NC];
        for (int d = 0; d < NC; d++) {
            key[d] = q->s_log[d] / w->logging.tau + cw_rng_gumbel(rng);
        }
        uint32_t *sh = L->shown + i * K;
        unsigned used = 0;
        for (int j = 0; j < K; j++) {
            int best = -1;
            for (int d = 0; d < NC; d++) {
                if (!(used >> d & 1) && (best < 0 || key[d] > key[best])) {
                    best = d;
                }
            }
            used |= 1u << best;
            sh[j] = (uint32_t)best;
            L->click[i * K + j] = cw_rng_bernoulli(rng, theta[j] * p_rel[q->label[best]]) ? 1 : 0;
        }
        L->q[i] = qi;
        pl_prefix(q->w_log, sh, L->lpb + i * K);
    }
}

/* A PBM click model fitted on the log (the DM's reward model): gamma(q, d) = clicks /
 * sum of theta over the impressions that showed d for q, with one pseudo-impression at the
 * global click rate so unseen pairs get a prior. theta is the simulator's (known). */
static void fit_gamma(const world *w, const simlog *L, double *gamma)
{
    double *num = calloc((size_t)w->n_q * NC, sizeof *num);
    double *den = calloc((size_t)w->n_q * NC, sizeof *den);
    double cn = 0, cd = 0;
    for (size_t i = 0; i < L->n; i++) {
        for (int j = 0; j < K; j++) {
            size_t x = (size_t)L->q[i] * NC + L->shown[i * K + j];
            num[x] += L->click[i * K + j];
            den[x] += theta[j];
            cn += L->click[i * K + j];
            cd += theta[j];
        }
    }
    double prior = cd > 0 ? cn / cd : 0.2;
    for (size_t x = 0; x < (size_t)w->n_q * NC; x++) {
        gamma[x] = fmin(1.0, (num[x] + prior * 0.5) / (den[x] + 0.5));
    }
    free(num);
    free(den);
}

typedef struct bufs {
    double *lpe, *pb, *pe, *rho, *omega, *qh, *dm, *cq, *cv;
} bufs;

/* The estimator inputs of the first n impressions of log L with target buffers b (filled
 * by fill_target); borrows both. */
static causal_ope_data ope_data(const simlog *L, const bufs *b, size_t n)
{
    return (causal_ope_data){.n = n,
                             .k = K,
                             .lambda = lambda,
                             .click = L->click,
                             .lpb_prefix = L->lpb,
                             .lpe_prefix = b->lpe,
                             .pb_marg = b->pb,
                             .pe_marg = b->pe,
                             .rho_b = b->rho,
                             .omega_e = b->omega,
                             .q_hat = b->qh,
                             .dm_e = b->dm,
                             .cdr_q = b->cq,
                             .cdr_v = b->cv};
}

/* Fills the estimator inputs of target t (see causal_ope_data). */
static void fill_target(const world *w, const simlog *L, const double *gamma, int t, bufs *b)
{
    const bool is_pl = w->target[t].kind == CAUSAL_RPOL_PL;
    /* Per query: DM value, per-slot model value F_j and exposure omega. */
    double *dmq = malloc(w->n_q * sizeof *dmq);
    double *fq = malloc((size_t)w->n_q * K * sizeof *fq);
    double *om = malloc((size_t)w->n_q * NC * sizeof *om);
    for (uint32_t qi = 0; qi < w->n_q; qi++) {
        const query *q = &w->q[qi];
        dmq[qi] = 0;
        for (int j = 0; j < K; j++) {
            double f = 0;
            for (int d = 0; d < NC; d++) {
                f += q->pe[t][d * K + j] * lambda[j] * theta[j] * gamma[qi * NC + d];
            }
            fq[qi * K + j] = f;
            dmq[qi] += f;
        }
        for (int d = 0; d < NC; d++) {
            double o = 0;
            for (int m = 0; m < K; m++) {
                o += q->pe[t][d * K + m] * lambda[m] * theta[m];
            }
            om[qi * NC + d] = o;
        }
    }
    for (size_t i = 0; i < L->n; i++) {
        uint32_t qi = L->q[i];
        const query *q = &w->q[qi];
        const uint32_t *sh = L->shown + i * K;
        double *lpe = b->lpe + i * K;
        if (is_pl) {
            pl_prefix(q->w_t[t], sh, lpe);
        } else {
            double lp = 0;
            for (int j = 0; j < K; j++) {
                if (sh[j] != q->order[t][j]) {
                    lp = -INFINITY;
                }
                lpe[j] = lp;
            }
        }
        b->dm[i] = dmq[qi];
        double tail[K + 1];
        tail[K] = 0;
        for (int j = K - 1; j >= 0; j--) {
            tail[j] = tail[j + 1] + fq[qi * K + j];
        }
        unsigned used = 0;
        for (int j = 0; j < K; j++) {
            size_t ij = i * K + j;
            uint32_t d = sh[j];
            const double *g = gamma + (size_t)qi * NC;
            b->pb[ij] = q->pb[d * K + j];
            b->pe[ij] = q->pe[t][d * K + j];
            b->rho[ij] = q->rho[d];
            b->omega[ij] = om[qi * NC + d];
            b->qh[ij] = lambda[j] * theta[j] * g[d];
            b->cq[ij] = b->qh[ij] + tail[j + 1];
            /* E_{a ~ pi_e(. | logged prefix)} Q_j, needed only where the prefix has
             * target probability > 0. */
            double v = 0;
            if (j == 0 || lpe[j - 1] > -INFINITY) {
                if (is_pl) {
                    double z = 0, s = 0;
                    for (int a = 0; a < NC; a++) {
                        if (!(used >> a & 1)) {
                            z += q->w_t[t][a];
                            s += q->w_t[t][a] * g[a];
                        }
                    }
                    v = lambda[j] * theta[j] * s / z;
                } else {
                    v = lambda[j] * theta[j] * g[q->order[t][j]];
                }
                v += tail[j + 1];
            }
            b->cv[ij] = v;
            used |= 1u << d;
        }
    }
    free(dmq);
    free(fq);
    free(om);
}

/* Writes n impressions of the logging policy to a log store at path, as the server would
 * with stochastic logging: all NC candidates shown, PL over them with the logged
 * temperature and scores, exact per-item propensities, the list's log-probability, the
 * five target scores as features, and PBM click events (theta continues the METHODS.md
 * table below rank 5). `causeway ope` on it should find the truths printed here. */
static int write_db(const world *w, const char *path, size_t n, uint64_t seed, cw_err *err)
{
    static const double theta_all[NC] = {0.68, 0.61, 0.48, 0.34, 0.28, 0.20, 0.11, 0.10};
    static const char *const names[5] = {"bm25", "dense", "hybrid", "ips", "bad"};
    causal_log_opts lo = causal_log_opts_default();
    lo.sync = CAUSAL_SYNC_NORMAL;
    causal_log *log = NULL;
    int rc = causal_log_open(path, &lo, &log, err);
    if (rc) {
        return rc;
    }
    cw_rng rng;
    cw_rng_seed(&rng, seed);
    char qbuf[32], dbuf[NC][32];
    float feat[NC][5];
    causal_item items[NC];
    causal_event ev[NC];
    if ((rc = causal_log_begin(log, err))) {
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t qi = (uint32_t)cw_rng_below(&rng, w->n_q);
        const query *q = &w->q[qi];
        uint32_t shown[NC];
        double lp[NC];
        if ((rc = causal_rpol_sample(&w->logging, q->s_log, NC, NC, &rng, shown, err)) ||
            (rc = causal_rpol_log_prob(&w->logging, q->s_log, NC, shown, NC, lp, err))) {
            goto done;
        }
        snprintf(qbuf, sizeof qbuf, "q%u", qi);
        size_t n_ev = 0;
        causal_impression imp = {.id = causal_log_next_id(log),
                                 .ts_ms = 1700000000000 + (int64_t)i,
                                 .query = qbuf,
                                 .qid = qbuf,
                                 .policy = "pl",
                                 .log_prob = lp[NC - 1],
                                 .mc_samples = 0,
                                 .temperature = w->logging.tau,
                                 .has_seed = true,
                                 .seed = seed,
                                 .feature_set = "ope-sim",
                                 .feature_names = names,
                                 .n_features = 5,
                                 .n_items = NC,
                                 .items = items};
        for (int j = 0; j < NC; j++) {
            uint32_t d = shown[j];
            snprintf(dbuf[j], sizeof dbuf[j], "q%ud%u", qi, d);
            for (int f = 0; f < 5; f++) {
                feat[j][f] = (float)q->s_t[f][d];
            }
            items[j] = (causal_item){.doc_id = dbuf[j],
                                     .position = (uint32_t)j + 1,
                                     .score = q->s_log[d],
                                     .propensity = q->pb_full[d * NC + j],
                                     .features = feat[j]};
            if (cw_rng_bernoulli(&rng, theta_all[j] * p_rel[q->label[d]])) {
                ev[n_ev++] = (causal_event){.impression_id = imp.id,
                                            .doc_id = dbuf[j],
                                            .position = (uint32_t)j + 1,
                                            .type = CAUSAL_EVENT_CLICK,
                                            .ts_ms = imp.ts_ms + 1000,
                                            .value_ms = -1};
            }
        }
        size_t n_rej = 0;
        if ((rc = causal_log_append_impressions(log, &imp, 1, err)) ||
            (n_ev && (rc = causal_log_append_events(log, ev, n_ev, NULL, &n_rej, NULL, err)))) {
            goto done;
        }
        if ((i + 1) % 5000 == 0 &&
            ((rc = causal_log_commit(log, err)) || (rc = causal_log_begin(log, err)))) {
            goto done;
        }
    }
    rc = causal_log_commit(log, err);
done:
    causal_log_close(log);
    return rc;
}

/* Kendall's tau-a between two score vectors of length n (ties count 0). */
static double kendall(const double *a, const double *b, int n)
{
    int s = 0, m = 0;
    for (int x = 0; x < n; x++) {
        for (int y = x + 1; y < n; y++) {
            double p = (a[x] - a[y]) * (b[x] - b[y]);
            s += p > 0 ? 1 : p < 0 ? -1 : 0;
            m++;
        }
    }
    return m ? (double)s / m : 0;
}

typedef struct stats {
    double sum_err, sum_err2, sum_rel, sum_tau, n_cover, n_boot_cover, n_order_ok;
    double n_boot;
} stats;

static void usage(void)
{
    fprintf(stderr, "usage: ope_experiment [--reps R] [--sizes N1,N2,...] [--queries Q] "
                    "[--seed S] [--boot B] [--boot-max-n N] [--tsv FILE]\n"
                    "       ope_experiment --write-db FILE [--db-impressions N] [--seed S]\n"
                    "       ope_experiment --speed [--sizes N]\n");
}

int main(int argc, char **argv)
{
    uint32_t reps = 100, n_q = 100, n_boot = 200;
    size_t boot_max_n = 10000;
    uint64_t seed = 7;
    size_t sizes[MAX_SIZES] = {10000, 100000, 1000000};
    int n_sizes = 3;
    const char *tsv_path = NULL, *db_path = NULL;
    bool is_speed = false;
    size_t db_n = 20000;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--reps") && v) {
            reps = (uint32_t)strtoul(v, NULL, 10);
        } else if (!strcmp(argv[i], "--queries") && v) {
            n_q = (uint32_t)strtoul(v, NULL, 10);
        } else if (!strcmp(argv[i], "--seed") && v) {
            seed = strtoull(v, NULL, 10);
        } else if (!strcmp(argv[i], "--boot") && v) {
            n_boot = (uint32_t)strtoul(v, NULL, 10);
        } else if (!strcmp(argv[i], "--boot-max-n") && v) {
            boot_max_n = (size_t)strtod(v, NULL);
        } else if (!strcmp(argv[i], "--speed")) {
            is_speed = true;
            continue;
        } else if (!strcmp(argv[i], "--write-db") && v) {
            db_path = v;
        } else if (!strcmp(argv[i], "--db-impressions") && v) {
            db_n = (size_t)strtod(v, NULL);
        } else if (!strcmp(argv[i], "--tsv") && v) {
            tsv_path = v;
        } else if (!strcmp(argv[i], "--sizes") && v) {
            n_sizes = 0;
            char *s = strdup(v), *save = NULL;
            for (char *tok = strtok_r(s, ",", &save); tok && n_sizes < MAX_SIZES;
                 tok = strtok_r(NULL, ",", &save)) {
                sizes[n_sizes++] = (size_t)strtod(tok, NULL);
            }
            free(s);
        } else {
            usage();
            return 2;
        }
        i++;
    }
    if (reps < 2 || n_q < 1 || n_sizes < 1) {
        usage();
        return 2;
    }
    cw_err err;
    world w;
    if (world_init(&w, n_q, seed, &err)) {
        fprintf(stderr, "ope_experiment: %s\n", err.msg);
        return 1;
    }
    if (db_path) {
        if (write_db(&w, db_path, db_n, seed + 99, &err)) {
            fprintf(stderr, "ope_experiment: %s: %s\n", db_path, err.msg);
            return 1;
        }
        printf("wrote %zu impressions to %s; true clicks@5 of the deterministic targets:\n", db_n,
               db_path);
        for (int t = 0; t < 5; t++) {
            printf("  %-6s %.4f\n", t == 3 ? "ips" : target_names[t], w.truth[t]);
        }
        printf("  %-6s %.4f (hybrid@pl:0.5)\n", "", w.truth[5]);
        free(w.q);
        return 0;
    }
    printf("# OPE experiment: %u queries x %d candidates, top %d shown, PBM clicks "
           "(METHODS.md 3), logging PL tau=%g, metric clicks@%d, %u repetitions, seed %llu\n\n",
           n_q, NC, K, w.logging.tau, K, reps, (unsigned long long)seed);
    /* Truth: analytic under PBM, checked against a direct on-policy simulation. */
    printf("| target | true value (analytic) | on-policy simulation, 1e6 impressions |\n"
           "|---|---|---|\n");
    cw_rng rng;
    cw_rng_seed(&rng, seed + 1);
    for (int t = 0; t < NT; t++) {
        double clicks = 0;
        const size_t n_on = 1000000;
        uint32_t r[K];
        for (size_t i = 0; i < n_on; i++) {
            const query *q = &w.q[cw_rng_below(&rng, n_q)];
            if (causal_rpol_sample(&w.target[t], q->s_t[t], NC, K, &rng, r, &err)) {
                fprintf(stderr, "ope_experiment: %s\n", err.msg);
                return 1;
            }
            for (int j = 0; j < K; j++) {
                clicks += lambda[j] * cw_rng_bernoulli(&rng, theta[j] * p_rel[q->label[r[j]]]);
            }
        }
        printf("| %s | %.4f | %.4f |\n", target_names[t], w.truth[t], clicks / n_on);
    }
    printf("\n");
    FILE *tsv = tsv_path ? fopen(tsv_path, "w") : NULL;
    if (tsv) {
        fprintf(tsv, "n\testimator\ttarget\ttruth\tbias\trmse\trel_err\tcoverage\tboot_coverage\n");
    }
    size_t max_n = 0;
    for (int s = 0; s < n_sizes; s++) {
        max_n = sizes[s] > max_n ? sizes[s] : max_n;
    }
    simlog L = {0};
    L.q = malloc(max_n * sizeof *L.q);
    L.shown = malloc(max_n * K * sizeof *L.shown);
    L.click = malloc(max_n * K);
    L.lpb = malloc(max_n * K * sizeof *L.lpb);
    bufs b;
    double **arr[] = {&b.lpe, &b.pb, &b.pe, &b.rho, &b.omega, &b.qh, &b.cq, &b.cv};
    for (size_t a = 0; a < CW_ARRAY_LEN(arr); a++) {
        *arr[a] = malloc(max_n * K * sizeof(double));
    }
    b.dm = malloc(max_n * sizeof(double));
    double *gamma = malloc((size_t)n_q * NC * sizeof *gamma);
    if (!L.q || !L.shown || !L.click || !L.lpb || !b.lpe || !b.cv || !b.dm || !gamma) {
        fprintf(stderr, "ope_experiment: out of memory\n");
        return 1;
    }
    const causal_est ests[NE] = {CAUSAL_EST_IIPS, CAUSAL_EST_SNIPS, CAUSAL_EST_SIPS,
                                 CAUSAL_EST_RIPS, CAUSAL_EST_PBM,   CAUSAL_EST_DM,
                                 CAUSAL_EST_DR,   CAUSAL_EST_CDR,   CAUSAL_EST_PI};
    double ips_rate = 0, snips_rate = 0;
    if (is_speed) {
        /* Throughput of point estimate + analytic SE on one log of max_n impressions, 7 timed
         * runs each (median), against a floor measured in the same run: one pass summing
         * the clicks (the naive estimator). */
        cw_rng_seed_stream(&rng, seed, 424242);
        simulate(&w, &L, max_n, &rng);
        fit_gamma(&w, &L, gamma);
        fill_target(&w, &L, gamma, 0, &b);
        causal_ope_data d = ope_data(&L, &b, max_n);
        causal_ope_opts o = causal_ope_opts_default();
        o.n_boot = 0;
        double t_naive[7], sink = 0;
        for (int r = 0; r < 7; r++) {
            uint64_t t0 = cw_now_ns();
            double sum = 0;
            for (size_t x = 0; x < max_n * K; x++) {
                sum += L.click[x];
            }
            sink += sum;
            t_naive[r] = (cw_now_ns() - t0) / 1e9;
        }
        printf("n = %zu impressions, k = %d; median of 7 runs, one core\n\n"
               "| estimator | impressions/s | time vs naive click sum |\n|---|---|---|\n"
               "| naive click sum (floor) | %.3g | 1.0 |\n",
               max_n, K, max_n / cw_median(t_naive, 7));
        if (sink < 0) {
            return 1; /* keeps the floor loop from being optimised away */
        }
        const causal_est sp[] = {CAUSAL_EST_IIPS, CAUSAL_EST_SNIPS, CAUSAL_EST_DR, CAUSAL_EST_SIPS};
        for (size_t e = 0; e < CW_ARRAY_LEN(sp); e++) {
            double t[7];
            for (int r = 0; r < 7; r++) {
                causal_ope_result res;
                uint64_t t0 = cw_now_ns();
                if (causal_ope_estimate(&d, sp[e], &o, &res, &err)) {
                    fprintf(stderr, "ope_experiment: %s\n", err.msg);
                    return 1;
                }
                t[r] = (cw_now_ns() - t0) / 1e9;
            }
            printf("| %s | %.3g | %.1f |\n", causal_est_name(sp[e]), max_n / cw_median(t, 7),
                   cw_median(t, 7) / cw_median(t_naive, 7));
        }
        n_sizes = 0; /* skip the accuracy runs */
    }
    for (int s = 0; s < n_sizes; s++) {
        size_t n = sizes[s];
        static stats st[NE][NT];
        memset(st, 0, sizeof st);
        double tau_sum[NE] = {0}, order_ok[NE] = {0};
        uint64_t t0 = cw_now_ns();
        for (uint32_t r = 0; r < reps; r++) {
            cw_rng_seed_stream(&rng, seed, 1000003ull * s + r);
            simulate(&w, &L, n, &rng);
            fit_gamma(&w, &L, gamma);
            double est_v[NE][NT];
            for (int t = 0; t < NT; t++) {
                fill_target(&w, &L, gamma, t, &b);
                causal_ope_data d = ope_data(&L, &b, n);
                for (int e = 0; e < NE; e++) {
                    causal_ope_opts o = causal_ope_opts_default();
                    bool is_boot = n <= boot_max_n && n_boot > 0 &&
                                   (ests[e] == CAUSAL_EST_IIPS || ests[e] == CAUSAL_EST_SNIPS ||
                                    ests[e] == CAUSAL_EST_DR);
                    o.n_boot = is_boot ? n_boot : 0;
                    o.seed = seed + r;
                    causal_ope_result res;
                    uint64_t e0 = cw_now_ns();
                    if (causal_ope_estimate(&d, ests[e], &o, &res, &err)) {
                        fprintf(stderr, "ope_experiment: %s: %s\n", causal_est_name(ests[e]),
                                err.msg);
                        return 1;
                    }
                    if (n == max_n && r == 0 && t == 0 && !is_boot) {
                        double rate = n / ((cw_now_ns() - e0) / 1e9);
                        if (ests[e] == CAUSAL_EST_IIPS) {
                            ips_rate = rate;
                        } else if (ests[e] == CAUSAL_EST_SNIPS) {
                            snips_rate = rate;
                        }
                    }
                    double err_v = res.value - w.truth[t];
                    stats *x = &st[e][t];
                    x->sum_err += err_v;
                    x->sum_err2 += err_v * err_v;
                    x->sum_rel += fabs(err_v) / w.truth[t];
                    x->n_cover += res.ci_lo <= w.truth[t] && w.truth[t] <= res.ci_hi;
                    if (is_boot) {
                        x->n_boot++;
                        x->n_boot_cover += res.boot_lo <= w.truth[t] && w.truth[t] <= res.boot_hi;
                    }
                    est_v[e][t] = res.value;
                }
            }
            for (int e = 0; e < NE; e++) {
                tau_sum[e] += kendall(est_v[e], w.truth, NT);
                /* Every pair whose true values differ by more than 2% ordered right? */
                bool ok = true;
                for (int x = 0; x < NT; x++) {
                    for (int y = 0; y < NT; y++) {
                        if (w.truth[x] > 1.02 * w.truth[y] && !(est_v[e][x] > est_v[e][y])) {
                            ok = false;
                        }
                    }
                }
                order_ok[e] += ok;
            }
        }
        double secs = (cw_now_ns() - t0) / 1e9;
        printf("## n = %zu impressions, %u repetitions (%.0f s)\n\n", n, reps, secs);
        printf("| estimator | mean rel. error | max rel. error (target) | coverage (analytic) | "
               "coverage (bootstrap) | Kendall tau | all >2%% pairs right |\n"
               "|---|---|---|---|---|---|---|\n");
        for (int e = 0; e < NE; e++) {
            double rel_mean = 0, rel_max = 0, cov = 0, bcov = 0, nb = 0;
            int worst = 0;
            for (int t = 0; t < NT; t++) {
                const stats *x = &st[e][t];
                double rel = x->sum_rel / reps;
                rel_mean += rel / NT;
                if (rel > rel_max) {
                    rel_max = rel;
                    worst = t;
                }
                cov += x->n_cover / reps / NT;
                bcov += x->n_boot_cover;
                nb += x->n_boot;
                if (tsv) {
                    double bias = x->sum_err / reps, rmse = sqrt(x->sum_err2 / reps);
                    fprintf(tsv, "%zu\t%s\t%s\t%.6f\t%.6f\t%.6f\t%.6f\t%.4f\t%.4f\n", n,
                            causal_est_name(ests[e]), target_names[t], w.truth[t], bias, rmse, rel,
                            x->n_cover / reps, x->n_boot ? x->n_boot_cover / x->n_boot : NAN);
                }
            }
            char bbuf[32] = "-";
            if (nb > 0) {
                snprintf(bbuf, sizeof bbuf, "%.1f%%", 100 * bcov / nb);
            }
            printf("| %s | %.2f%% | %.2f%% (%s) | %.1f%% | %s | %.3f | %.0f%% |\n",
                   causal_est_name(ests[e]), 100 * rel_mean, 100 * rel_max, target_names[worst],
                   100 * cov, bbuf, tau_sum[e] / reps, 100 * order_ok[e] / reps);
        }
        printf("\nPer target (bias / RMSE / coverage) for snips and dr:\n\n"
               "| target | truth | snips bias | snips RMSE | snips cov. | dr bias | dr RMSE | dr "
               "cov. |\n|---|---|---|---|---|---|---|---|\n");
        for (int t = 0; t < NT; t++) {
            const stats *a = &st[1][t], *c = &st[6][t];
            printf("| %s | %.4f | %+.5f | %.5f | %.1f%% | %+.5f | %.5f | %.1f%% |\n",
                   target_names[t], w.truth[t], a->sum_err / reps, sqrt(a->sum_err2 / reps),
                   100 * a->n_cover / reps, c->sum_err / reps, sqrt(c->sum_err2 / reps),
                   100 * c->n_cover / reps);
        }
        printf("\n");
        fflush(stdout);
    }
    if (!is_speed) {
        printf("Throughput of causal_ope_estimate (point estimate + analytic SE, no bootstrap), "
               "n = %zu: iips %.2e impressions/s, snips %.2e impressions/s (one core)\n",
               max_n, ips_rate, snips_rate);
    }
    if (tsv) {
        fclose(tsv);
    }
    for (size_t a = 0; a < CW_ARRAY_LEN(arr); a++) {
        free(*arr[a]);
    }
    free(b.dm);
    free(gamma);
    free(L.q);
    free(L.shown);
    free(L.click);
    free(L.lpb);
    free(w.q);
    return 0;
}
