/* causal/propensity.c: examination propensities theta_k from click logs
 * (METHODS.md section 4): randomization (RandTop-n, swap), regression-EM, intervention
 * harvesting (AllPairs) and the affine trust-bias model, with bootstrap intervals.
 * Data flow: log store -> causal_sessions -> here -> propensity.json -> ranker/ training. */
#include "config.h"

#include <assert.h>
#include <cblas.h>
#include <jansson.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "causal/causal.h"

const char *causal_prop_method_name(causal_prop_method m)
{
    switch (m) {
    case CAUSAL_PROP_RANDOMIZATION: return "randomization";
    case CAUSAL_PROP_REM: return "regression-em";
    case CAUSAL_PROP_HARVEST: return "harvest-allpairs";
    case CAUSAL_PROP_TRUST: return "trust-bias";
    }
    return "unknown";
}

int causal_prop_method_parse(const char *name, causal_prop_method *out, cw_err *err)
{
    static const struct {
        const char *name;
        causal_prop_method m;
    } tab[] = {
        {"randomization", CAUSAL_PROP_RANDOMIZATION},
        {"rem", CAUSAL_PROP_REM},
        {"regression-em", CAUSAL_PROP_REM},
        {"harvest", CAUSAL_PROP_HARVEST},
        {"allpairs", CAUSAL_PROP_HARVEST},
        {"intervention-harvesting", CAUSAL_PROP_HARVEST},
        {"harvest-allpairs", CAUSAL_PROP_HARVEST},
        {"trust", CAUSAL_PROP_TRUST},
        {"trust-bias", CAUSAL_PROP_TRUST},
    };
    for (size_t i = 0; i < CW_ARRAY_LEN(tab); i++) {
        if (strcmp(name, tab[i].name) == 0) {
            *out = tab[i].m;
            return CW_OK;
        }
    }
    return cw_err_set(err, CW_EINVAL, "unknown method '%s' (randomization, rem, harvest, trust)",
                      name);
}

int causal_rel_model_parse(const char *name, causal_rel_model *out, cw_err *err)
{
    if (strcmp(name, "linear") == 0) {
        *out = CAUSAL_REL_LINEAR;
    } else if (strcmp(name, "mlp") == 0) {
        *out = CAUSAL_REL_MLP;
    } else if (strcmp(name, "pair") == 0) {
        *out = CAUSAL_REL_PAIR;
    } else if (strcmp(name, "quad") == 0) {
        *out = CAUSAL_REL_QUAD;
    } else {
        return cw_err_set(err, CW_EINVAL, "unknown relevance model '%s' (linear, quad, mlp, pair)",
                          name);
    }
    return CW_OK;
}

int causal_rel_context_parse(const char *name, uint32_t *out, cw_err *err)
{
    static const char *names[] = {"none", "score", "query"};
    for (uint32_t i = 0; i < CW_ARRAY_LEN(names); i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = i;
            return CW_OK;
        }
    }
    return cw_err_set(err, CW_EINVAL, "unknown relevance context '%s' (none, score, query)", name);
}

causal_prop_opts causal_prop_opts_default(causal_prop_method m)
{
    causal_prop_opts o;
    memset(&o, 0, sizeof o);
    o.method = m;
    o.max_rank = 10;
    o.n_boot = m == CAUSAL_PROP_RANDOMIZATION ? 200 : 20;
    o.n_buckets = 1000;
    o.ci_level = 0.95;
    o.seed = 1;
    o.rel_model = CAUSAL_REL_LINEAR;
    o.max_iter = m == CAUSAL_PROP_REM ? 1000 : 5000; /* REM crawls along the theta-gamma ridge */
    o.tol = 1e-6;
    o.mlp_hidden = 16;
    return o;
}

double causal_prop_max_rel_error(const double *est, const double *truth, uint32_t n)
{
    double mx = 0;
    for (uint32_t k = 1; k < n; k++) {
        double e = fabs(est[k] - truth[k]) / truth[k];
        mx = e > mx || isnan(e) ? e : mx;
    }
    return mx;
}

static void init_result(causal_propensity *p, causal_prop_method m, uint32_t R)
{
    memset(p, 0, sizeof *p);
    p->method = m;
    p->n_ranks = R;
    for (uint32_t k = 0; k < CAUSAL_MAX_RANK; k++) {
        p->ratio[k] = p->ci_lo[k] = p->ci_hi[k] = p->theta[k] = p->alpha[k] = p->beta[k] = NAN;
    }
    p->loglik = NAN;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile interval of replicates reps[b * R + k] (B replicates); NANs are dropped. */
static void percentile_ci(causal_propensity *p, double *reps, uint32_t B, uint32_t R, double level)
{
    double *col = malloc(B * sizeof *col);
    if (!col) {
        return;
    }
    for (uint32_t k = 0; k < R; k++) {
        uint32_t m = 0;
        for (uint32_t b = 0; b < B; b++) {
            double v = reps[(size_t)b * R + k];
            if (!isnan(v)) {
                col[m++] = v;
            }
        }
        if (m == 0) {
            continue;
        }
        qsort(col, m, sizeof *col, cmp_dbl);
        double a = (1 - level) / 2;
        p->ci_lo[k] = cw_quantile(col, m, a);
        p->ci_hi[k] = cw_quantile(col, m, 1 - a);
    }
    free(col);
    p->n_boot = B;
}

/* ---- randomization ---------------------------------------------------------- */

struct causal_rand_counts {
    uint32_t R, n_buckets;
    uint64_t n_seen;       /* sessions offered so far (bucket = n_seen mod n_buckets) */
    uint64_t n_used;       /* RandTop/swap sessions counted */
    uint64_t *rt_c, *rt_n; /* [bucket][rank]: RandTop clicks / impressions */
    uint64_t *sw_c, *sw_n; /* [bucket][rank]: swap: clicks / impressions of the top doc */
    /* [bucket][rank k]: clicks / impressions at rank 1 (RandTop: any document; swap: the
     * unswapped top document) in sessions whose randomized list reaches rank k, so rank k
     * is compared with rank 1 on the same kind of list (short lists of queries with few
     * candidates would otherwise bias c_k/c_1) */
    uint64_t *rt_c1, *rt_n1, *sw_c1, *sw_n1;
};

int causal_rand_counts_new(uint32_t max_rank, uint32_t n_buckets, causal_rand_counts **out,
                           cw_err *err)
{
    if (max_rank < 2 || max_rank > CAUSAL_MAX_RANK || n_buckets == 0) {
        return cw_err_set(err, CW_EINVAL, "max rank %u (must be 2..%u), %u buckets", max_rank,
                          CAUSAL_MAX_RANK, n_buckets);
    }
    causal_rand_counts *c = calloc(1, sizeof *c);
    size_t n = (size_t)n_buckets * max_rank;
    if (!c || !(c->rt_c = calloc(n, 8)) || !(c->rt_n = calloc(n, 8)) || !(c->sw_c = calloc(n, 8)) ||
        !(c->sw_n = calloc(n, 8)) || !(c->rt_c1 = calloc(n, 8)) || !(c->rt_n1 = calloc(n, 8)) ||
        !(c->sw_c1 = calloc(n, 8)) || !(c->sw_n1 = calloc(n, 8))) {
        causal_rand_counts_free(c);
        return cw_err_set(err, CW_ENOMEM, "out of memory for randomization counts");
    }
    c->R = max_rank;
    c->n_buckets = n_buckets;
    *out = c;
    return CW_OK;
}

void causal_rand_counts_free(causal_rand_counts *c)
{
    if (!c) {
        return;
    }
    free(c->rt_c);
    free(c->rt_n);
    free(c->sw_c);
    free(c->sw_n);
    free(c->rt_c1);
    free(c->rt_n1);
    free(c->sw_c1);
    free(c->sw_n1);
    free(c);
}

/* causal_rand_counts_add over the sessions i with ctx[i] == want (ctx NULL: all). */
static void rand_counts_add(causal_rand_counts *c, const causal_sessions *s, const uint32_t *ctx,
                            uint32_t want)
{
    const uint32_t R = c->R;
    for (size_t i = 0; i < s->n_sessions; i++) {
        if (ctx && ctx[i] != want) {
            continue;
        }
        size_t b = (size_t)(c->n_seen++ % c->n_buckets) * R;
        uint8_t pol = s->s_policy[i];
        if (pol == CAUSAL_POLICY_RANDTOP) {
            /* Only the shuffled top n is exchangeable (Joachims et al. WSDM 2017). */
            uint32_t n = s->s_param[i], reach = 0;
            uint8_t click1 = 0;
            c->n_used++;
            for (size_t j = s->s_begin[i]; j < s->s_begin[i + 1]; j++) {
                uint32_t k = s->i_pos[j];
                if (k > n || k > R || k != reach + 1) {
                    break;
                }
                reach = k;
                click1 = k == 1 ? s->i_click[j] : click1;
                c->rt_n[b + k - 1]++;
                c->rt_c[b + k - 1] += s->i_click[j];
            }
            for (uint32_t k = 1; k <= reach; k++) {
                c->rt_n1[b + k - 1]++;
                c->rt_c1[b + k - 1] += click1;
            }
        } else if (pol == CAUSAL_POLICY_SWAP) {
            uint32_t k = s->s_param[i];
            if (k == 0 || k > R) {
                continue;
            }
            c->n_used++;
            size_t len = s->s_begin[i + 1] - s->s_begin[i];
            for (size_t j = s->s_begin[i]; j < s->s_begin[i + 1]; j++) {
                if (s->i_pos[j] == k) {
                    c->sw_n[b + k - 1]++;
                    c->sw_c[b + k - 1] += s->i_click[j];
                    if (k == 1) {
                        /* unswapped: the reference for every rank the list reaches */
                        for (uint32_t r = 1; r <= len && r <= R; r++) {
                            c->sw_n1[b + r - 1]++;
                            c->sw_c1[b + r - 1] += s->i_click[j];
                        }
                    }
                    break;
                }
            }
        }
    }
}

void causal_rand_counts_add(causal_rand_counts *c, const causal_sessions *s)
{
    rand_counts_add(c, s, NULL, 0);
}

/* ratio_k = CTR_k / CTR_1 from summed counts (clicks c, impressions n at rank k; c1, n1
 * at rank 1 in the comparable sessions). */
static void rand_ratio(const double *cc, const double *nn, const double *c1, const double *n1,
                       uint32_t R, double *ratio)
{
    for (uint32_t k = 0; k < R; k++) {
        double ctr1 = n1[k] > 0 ? c1[k] / n1[k] : NAN;
        ratio[k] = nn[k] > 0 && ctr1 > 0 ? (cc[k] / nn[k]) / ctr1 : NAN;
    }
}

int causal_rand_counts_finish(const causal_rand_counts *c, const causal_prop_opts *o,
                              causal_propensity *out, cw_err *err)
{
    const uint32_t R = c->R, NB = c->n_buckets;
    uint64_t rt_total = 0, sw_total = 0;
    for (size_t i = 0; i < (size_t)NB * R; i++) {
        rt_total += c->rt_n[i];
        sw_total += c->sw_n[i];
    }
    if (rt_total == 0 && sw_total == 0) {
        return cw_err_set(err, CW_EINVAL,
                          "randomization needs RandTop-n or swap sessions; none of the %llu "
                          "sessions were randomized (policy 'randtop-N' or 'swap')",
                          (unsigned long long)c->n_seen);
    }
    bool use_rt = rt_total > 0;
    const uint64_t *C = use_rt ? c->rt_c : c->sw_c, *N = use_rt ? c->rt_n : c->sw_n;
    const uint64_t *C1 = use_rt ? c->rt_c1 : c->sw_c1, *N1 = use_rt ? c->rt_n1 : c->sw_n1;
    causal_propensity p;
    init_result(&p, CAUSAL_PROP_RANDOMIZATION, R);
    double cc[CAUSAL_MAX_RANK] = {0}, nn[CAUSAL_MAX_RANK] = {0}, c1[CAUSAL_MAX_RANK] = {0},
           n1[CAUSAL_MAX_RANK] = {0};
    for (uint32_t b = 0; b < NB; b++) {
        for (uint32_t k = 0; k < R; k++) {
            cc[k] += (double)C[(size_t)b * R + k];
            nn[k] += (double)N[(size_t)b * R + k];
            c1[k] += (double)C1[(size_t)b * R + k];
            n1[k] += (double)N1[(size_t)b * R + k];
        }
    }
    uint32_t R_ok = R;
    for (uint32_t k = 0; k < R; k++) {
        p.clicks_at[k] = (uint64_t)cc[k];
        p.shown_at[k] = (uint64_t)nn[k];
        if (nn[k] == 0 && R_ok == R) {
            R_ok = k;
        }
    }
    if (cc[0] == 0) {
        return cw_err_set(err, CW_EINVAL,
                          "randomization: no clicks at rank 1 among %.0f randomized impressions: "
                          "theta_k/theta_1 is undefined",
                          nn[0]);
    }
    rand_ratio(cc, nn, c1, n1, R, p.ratio);
    p.n_sessions = c->n_used;
    for (uint32_t k = 0; k < R; k++) {
        p.n_items += (uint64_t)nn[k];
    }
    p.converged = true;
    snprintf(
        p.note, sizeof p.note,
        "%s: %llu of %llu sessions randomized; ratio = CTR_k/CTR_1 %s; ranks with no "
        "randomized impressions: %u",
        use_rt ? "RandTop-n" : "swap", (unsigned long long)c->n_used, (unsigned long long)c->n_seen,
        use_rt ? "over the shuffled top n" : "of the ranker's top document at rank k", R - R_ok);
    if (o->n_boot > 0) {
        /* Sessions are i.i.d., so buckets of sessions are too: resample buckets
         * (a block bootstrap that costs O(B * buckets * R), not O(B * sessions)). */
        double *reps = malloc((size_t)o->n_boot * R * sizeof *reps);
        if (!reps) {
            return cw_err_set(err, CW_ENOMEM, "out of memory for bootstrap");
        }
        cw_rng rng;
        cw_rng_seed(&rng, o->seed);
        for (uint32_t bt = 0; bt < o->n_boot; bt++) {
            double bc[CAUSAL_MAX_RANK] = {0}, bn[CAUSAL_MAX_RANK] = {0}, bc1[CAUSAL_MAX_RANK] = {0},
                   bn1[CAUSAL_MAX_RANK] = {0};
            for (uint32_t t = 0; t < NB; t++) {
                size_t b = (size_t)cw_rng_below(&rng, NB) * R;
                for (uint32_t k = 0; k < R; k++) {
                    bc[k] += (double)C[b + k];
                    bn[k] += (double)N[b + k];
                    bc1[k] += (double)C1[b + k];
                    bn1[k] += (double)N1[b + k];
                }
            }
            rand_ratio(bc, bn, bc1, bn1, R, reps + (size_t)bt * R);
        }
        percentile_ci(&p, reps, o->n_boot, R, o->ci_level);
        free(reps);
    }
    *out = p;
    return CW_OK;
}

static int fit_randomization(const causal_sessions *s, const causal_prop_opts *o,
                             causal_propensity *out, cw_err *err)
{
    causal_rand_counts *c = NULL;
    int rc = causal_rand_counts_new(o->max_rank, o->n_buckets, &c, err);
    if (rc != CW_OK) {
        return rc;
    }
    uint64_t t0 = cw_now_ns();
    causal_rand_counts_add(c, s);
    rc = causal_rand_counts_finish(c, o, out, err);
    if (rc == CW_OK) {
        out->seconds = (double)(cw_now_ns() - t0) / 1e9;
    }
    causal_rand_counts_free(c);
    return rc;
}

/* ---- grouped impressions: (pair, rank) -> impressions, clicks ---------------- */

typedef struct groups {
    size_t n;
    uint32_t *pair;
    uint8_t *rank; /* 1-based */
    double *imp;   /* (weighted) impressions */
    double *clk;   /* (weighted) clicks */
    uint64_t n_items;
    uint64_t n_sessions; /* sessions with an item at rank <= R and weight > 0 */
    uint32_t n_rankers;  /* distinct rankers among them */
} groups;

static void groups_fini(groups *g)
{
    free(g->pair);
    free(g->rank);
    free(g->imp);
    free(g->clk);
    memset(g, 0, sizeof *g);
}

/* Aggregates items at ranks <= R. sw = per-session weight (NULL = 1): the Poisson
 * bootstrap reweights sessions instead of copying them. */
static int groups_build(const causal_sessions *s, uint32_t R, const float *sw, groups *g,
                        cw_err *err)
{
    memset(g, 0, sizeof *g);
    size_t cells = s->n_pairs * R;
    double *imp = calloc(cells, sizeof *imp), *clk = calloc(cells, sizeof *clk);
    if (!imp || !clk) {
        free(imp);
        free(clk);
        return cw_err_set(err, CW_ENOMEM, "out of memory grouping %zu pairs x %u ranks", s->n_pairs,
                          R);
    }
    uint8_t *seen = calloc(s->n_rankers ? s->n_rankers : 1, 1); /* for the messages only */
    for (size_t i = 0; i < s->n_sessions; i++) {
        double w = sw ? sw[i] : 1.0;
        if (w == 0) {
            continue;
        }
        uint64_t n0 = g->n_items;
        for (size_t j = s->s_begin[i]; j < s->s_begin[i + 1]; j++) {
            uint32_t k = s->i_pos[j];
            if (k > R) {
                break;
            }
            size_t cell = (size_t)s->i_pair[j] * R + k - 1;
            imp[cell] += w;
            clk[cell] += w * s->i_click[j];
            g->n_items++;
        }
        if (g->n_items > n0) {
            g->n_sessions++;
            if (seen && s->s_ranker[i] < s->n_rankers && !seen[s->s_ranker[i]]) {
                seen[s->s_ranker[i]] = 1;
                g->n_rankers++;
            }
        }
    }
    free(seen);
    size_t n = 0;
    for (size_t c = 0; c < cells; c++) {
        n += imp[c] > 0;
    }
    g->pair = malloc((n ? n : 1) * sizeof *g->pair);
    g->rank = malloc(n ? n : 1);
    g->imp = malloc((n ? n : 1) * sizeof *g->imp);
    g->clk = malloc((n ? n : 1) * sizeof *g->clk);
    if (!g->pair || !g->rank || !g->imp || !g->clk) {
        free(imp);
        free(clk);
        groups_fini(g);
        return cw_err_set(err, CW_ENOMEM, "out of memory grouping impressions");
    }
    for (size_t c = 0; c < cells; c++) {
        if (imp[c] > 0) {
            g->pair[g->n] = (uint32_t)(c / R);
            g->rank[g->n] = (uint8_t)(c % R + 1);
            g->imp[g->n] = imp[c];
            g->clk[g->n] = clk[c];
            g->n++;
        }
    }
    free(imp);
    free(clk);
    return CW_OK;
}

static double sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/* ---- relevance models for regression-EM ---------------------------------------- */

typedef struct relmodel {
    causal_rel_model kind;
    size_t d;                 /* features (standardised) */
    double *mu, *sd;          /* standardisation */
    double *beta;             /* LINEAR: d + 1 weights (bias last) */
    uint32_t H;               /* MLP hidden units */
    double *w1, *b1, *w2, b2; /* MLP: H x d, H, H, 1 */
    double *m, *v;            /* Adam moments over all MLP parameters */
    uint64_t t;               /* Adam step */
    double *X;                /* n_pairs x (d + 1): standardised features and a constant 1 */
    double *Xw;               /* LINEAR: scratch of X's shape for the weighted Gram matrix */
} relmodel;

static void relmodel_fini(relmodel *m)
{
    free(m->X);
    free(m->Xw);
    free(m->mu);
    free(m->sd);
    free(m->beta);
    free(m->w1);
    free(m->b1);
    free(m->w2);
    free(m->m);
    free(m->v);
}

static double feat(const causal_sessions *s, const relmodel *m, uint32_t p, size_t f)
{
    (void)s;
    return m->X[(size_t)p * (m->d + 1) + f];
}

/* Mean mu[f] and standard deviation sd[f] of each pair feature over all pairs, the
 * standardisation of every feature-based relevance model (sd 1 for a constant feature). */
static void feature_moments(const causal_sessions *s, double *mu, double *sd)
{
    size_t d = s->n_features, np_ = s->n_pairs;
    for (size_t f = 0; f < d; f++) {
        double sum = 0, sq = 0;
        for (size_t p = 0; p < np_; p++) {
            double x = s->pair_features[p * d + f];
            sum += x;
            sq += x * x;
        }
        double mean = sum / (double)np_, var = sq / (double)np_ - mean * mean;
        mu[f] = mean;
        sd[f] = var > 1e-12 ? sqrt(var) : 1.0;
    }
}

/* QUAD: the LINEAR model on the standardised features z_f and all their products z_f z_g
 * (f <= g), so P(R|x) may bend (e.g. the convex gain (2^y - 1) of METHODS.md section 3
 * seen through a noisy score). Fitted by the same IRLS; afterwards it is a LINEAR model. */
static int relmodel_init_quad(relmodel *m, const causal_sessions *s, cw_err *err)
{
    size_t d = s->n_features, np_ = s->n_pairs;
    size_t D = d + d * (d + 1) / 2;
    m->d = D;
    m->kind = CAUSAL_REL_LINEAR;
    m->mu = calloc(d ? d : 1, sizeof *m->mu);
    m->sd = calloc(d ? d : 1, sizeof *m->sd);
    m->X = malloc(np_ * (D + 1) * sizeof *m->X);
    m->Xw = malloc(np_ * (D + 1) * sizeof *m->Xw);
    m->beta = calloc(D + 1, sizeof *m->beta);
    if (!m->mu || !m->sd || !m->X || !m->Xw || !m->beta) {
        return cw_err_set(err, CW_ENOMEM, "out of memory for the quadratic relevance model");
    }
    feature_moments(s, m->mu, m->sd);
    for (size_t p = 0; p < np_; p++) {
        double *row = m->X + p * (D + 1);
        for (size_t f = 0; f < d; f++) {
            row[f] = ((double)s->pair_features[p * d + f] - m->mu[f]) / m->sd[f];
        }
        size_t j = d;
        for (size_t f = 0; f < d; f++) {
            for (size_t g2 = f; g2 < d; g2++) {
                row[j++] = row[f] * row[g2];
            }
        }
        row[D] = 1.0;
    }
    return CW_OK;
}

static int relmodel_init(relmodel *m, const causal_sessions *s, causal_rel_model kind, uint32_t H,
                         uint64_t seed, cw_err *err)
{
    memset(m, 0, sizeof *m);
    m->kind = kind;
    if (kind == CAUSAL_REL_PAIR) {
        return CW_OK;
    }
    size_t d = s->n_features;
    if (kind == CAUSAL_REL_QUAD) {
        return relmodel_init_quad(m, s, err);
    }
    m->d = d;
    m->mu = calloc(d ? d : 1, sizeof *m->mu);
    m->sd = calloc(d ? d : 1, sizeof *m->sd);
    if (!m->mu || !m->sd) {
        return cw_err_set(err, CW_ENOMEM, "out of memory for the relevance model");
    }
    feature_moments(s, m->mu, m->sd);
    m->X = malloc(s->n_pairs * (d + 1) * sizeof *m->X);
    /* only IRLS (LINEAR) forms the weighted Gram matrix; the MLP never touches Xw */
    if (kind == CAUSAL_REL_LINEAR) {
        m->Xw = malloc(s->n_pairs * (d + 1) * sizeof *m->Xw);
    }
    if (!m->X || (kind == CAUSAL_REL_LINEAR && !m->Xw)) {
        return cw_err_set(err, CW_ENOMEM, "out of memory for the design matrix");
    }
    for (size_t p = 0; p < s->n_pairs; p++) {
        for (size_t f = 0; f < d; f++) {
            m->X[p * (d + 1) + f] = ((double)s->pair_features[p * d + f] - m->mu[f]) / m->sd[f];
        }
        m->X[p * (d + 1) + d] = 1.0;
    }
    if (kind == CAUSAL_REL_LINEAR) {
        m->beta = calloc(d + 1, sizeof *m->beta);
        return m->beta ? CW_OK : cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    m->H = H;
    size_t np = H * d + H + H + 1;
    m->w1 = malloc(H * d * sizeof *m->w1);
    m->b1 = calloc(H, sizeof *m->b1);
    m->w2 = malloc(H * sizeof *m->w2);
    m->m = calloc(np, sizeof *m->m);
    m->v = calloc(np, sizeof *m->v);
    if (!m->w1 || !m->b1 || !m->w2 || !m->m || !m->v) {
        return cw_err_set(err, CW_ENOMEM, "out of memory for the MLP");
    }
    cw_rng rng;
    cw_rng_seed(&rng, seed);
    /* Glorot-style initialisation. */
    for (size_t i = 0; i < H * d; i++) {
        m->w1[i] = cw_rng_normal(&rng) / sqrt((double)(d ? d : 1));
    }
    for (uint32_t h = 0; h < H; h++) {
        m->w2[h] = cw_rng_normal(&rng) / sqrt((double)H);
    }
    m->b2 = 0;
    return CW_OK;
}

/* Logit of relevance for pair p (LINEAR/MLP). hid (H entries) gets the hidden layer. */
static double relmodel_logit(const relmodel *m, const causal_sessions *s, uint32_t p, double *hid)
{
    if (m->kind == CAUSAL_REL_LINEAR) {
        double z = m->beta[m->d];
        for (size_t f = 0; f < m->d; f++) {
            z += m->beta[f] * feat(s, m, p, f);
        }
        return z;
    }
    double z = m->b2;
    for (uint32_t h = 0; h < m->H; h++) {
        double a = m->b1[h];
        for (size_t f = 0; f < m->d; f++) {
            a += m->w1[h * m->d + f] * feat(s, m, p, f);
        }
        hid[h] = tanh(a);
        z += m->w2[h] * hid[h];
    }
    return z;
}

/* One M-step for the relevance model: maximise sum_p w_p [t_p log g + (1-t_p) log(1-g)],
 * g = sigmoid(f(x_p)), over pairs with w_p > 0. LINEAR: two Newton (IRLS) steps with a
 * weak ridge prior, the normal equations solved by LAPACKE_dposv. MLP: Adam steps. Soft
 * targets t_p = E[R | clicks] instead of Wang et al.'s sampled r ~ Bernoulli: the exact
 * expected complete-data log-likelihood, so each M-step is a proper GEM step. */
static int relmodel_mstep(relmodel *m, const causal_sessions *s, const double *w, const double *t,
                          cw_err *err)
{
    size_t d = m->d, np_ = s->n_pairs;
    if (m->kind == CAUSAL_REL_LINEAR) {
        size_t D = d + 1;
        double *A = malloc(D * D * sizeof *A), *bvec = malloc(D * sizeof *bvec);
        if (!A || !bvec) {
            free(A);
            free(bvec);
            return cw_err_set(err, CW_ENOMEM, "out of memory in IRLS");
        }
        /* Ridge lambda = 1 on the (standardised) weights, none on the intercept: a N(0, 1)
         * prior whose pull vanishes as impressions grow. It used to be 1e-3 per impression
         * (scaled by the total weight), a shrinkage that never vanished and biased theta
         * by several percent at any log size (issue 4). A 1e-10-per-impression jitter on
         * every diagonal entry keeps the system positive definite. */
        const double lambda = 1.0;
        double wsum = 0;
        for (size_t p = 0; p < np_; p++) {
            wsum += w[p];
        }
        for (int it = 0; it < 2; it++) {
            /* A = X' H X + diag(lambda) via one BLAS rank-k update over sqrt(h)-scaled rows;
             * b = X' (w (t - g)) - lambda beta. */
            memset(A, 0, D * D * sizeof *A);
            for (size_t j = 0; j < D; j++) {
                double lj = j + 1 < D ? lambda : 0.0;
                bvec[j] = -lj * m->beta[j];
                A[j * D + j] = lj + 1e-10 * wsum;
            }
            for (size_t p = 0; p < np_; p++) {
                const double *xp = m->X + p * D;
                double *xw = m->Xw + p * D;
                if (w[p] <= 0) {
                    memset(xw, 0, D * sizeof *xw);
                    continue;
                }
                double z = 0;
                for (size_t j = 0; j < D; j++) {
                    z += m->beta[j] * xp[j];
                }
                double g = sigmoid(z);
                double sh = sqrt(w[p] * g * (1 - g) + 1e-12);
                double r = w[p] * (t[p] - g);
                for (size_t j = 0; j < D; j++) {
                    bvec[j] += r * xp[j];
                    xw[j] = sh * xp[j];
                }
            }
            cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, (int)D, (int)np_, 1.0, m->Xw, (int)D,
                        1.0, A, (int)D);
            lapack_int info =
                LAPACKE_dposv(LAPACK_ROW_MAJOR, 'L', (lapack_int)D, 1, A, (lapack_int)D, bvec, 1);
            assert(info >= 0);
            if (info > 0) {
                free(A);
                free(bvec);
                return cw_err_set(err, CW_ENUMERIC,
                                  "regression-EM: IRLS normal equations not positive definite "
                                  "(LAPACKE_dposv leading minor %d)",
                                  (int)info);
            }
            for (size_t j = 0; j < D; j++) {
                m->beta[j] += bvec[j];
            }
        }
        free(A);
        free(bvec);
        return CW_OK;
    }
    /* MLP: full-batch Adam (Kingma & Ba 2015), lr 0.01, 10 steps per M-step. */
    uint32_t H = m->H;
    size_t n_par = H * d + H + H + 1;
    double *grad = malloc(n_par * sizeof *grad), *hid = malloc(H * sizeof *hid);
    if (!grad || !hid) {
        free(grad);
        free(hid);
        return cw_err_set(err, CW_ENOMEM, "out of memory in MLP step");
    }
    double wsum = 0;
    for (size_t p = 0; p < np_; p++) {
        wsum += w[p];
    }
    for (int step = 0; step < 10; step++) {
        memset(grad, 0, n_par * sizeof *grad);
        double *gw1 = grad, *gb1 = grad + H * d, *gw2 = gb1 + H, *gb2 = gw2 + H;
        for (size_t p = 0; p < np_; p++) {
            if (w[p] <= 0) {
                continue;
            }
            double z = relmodel_logit(m, s, (uint32_t)p, hid);
            double dz = w[p] * (sigmoid(z) - t[p]) / wsum; /* d(-loglik)/dz */
            *gb2 += dz;
            for (uint32_t h = 0; h < H; h++) {
                gw2[h] += dz * hid[h];
                double da = dz * m->w2[h] * (1 - hid[h] * hid[h]);
                gb1[h] += da;
                for (size_t f = 0; f < d; f++) {
                    gw1[h * d + f] += da * feat(s, m, (uint32_t)p, f);
                }
            }
        }
        m->t++;
        const double lr = 0.01, b1 = 0.9, b2 = 0.999;
        double c1 = 1 - pow(b1, (double)m->t), c2 = 1 - pow(b2, (double)m->t);
        for (size_t i = 0; i < n_par; i++) {
            m->m[i] = b1 * m->m[i] + (1 - b1) * grad[i];
            m->v[i] = b2 * m->v[i] + (1 - b2) * grad[i] * grad[i];
            double upd = lr * (m->m[i] / c1) / (sqrt(m->v[i] / c2) + 1e-8);
            if (i < H * d) {
                m->w1[i] -= upd;
            } else if (i < H * d + H) {
                m->b1[i - H * d] -= upd;
            } else if (i < H * d + 2 * H) {
                m->w2[i - H * d - H] -= upd;
            } else {
                m->b2 -= upd;
            }
        }
    }
    free(grad);
    free(hid);
    return CW_OK;
}

static double clamp_prob(double v)
{
    return v < 1e-6 ? 1e-6 : (v > 1 - 1e-6 ? 1 - 1e-6 : v);
}

/* The number of features rel_context ctx appends to the pair features (context_features). */
static size_t context_width(uint32_t ctx)
{
    return ctx == CAUSAL_REL_CONTEXT_SCORE ? 1 : ctx == CAUSAL_REL_CONTEXT_QUERY ? 4 : 0;
}

/* The pair features plus context features from the logged ranker scores (see
 * causal_prop_opts.rel_context) as a new n_pairs x (d + extra) matrix in *out (caller
 * frees); *out_d gets its width. A pair's score is the mean of its logged scores; query
 * max / mean run over the query's shown pairs (a deterministic ranker's max is the score
 * of its rank-1 document, so these are the query-level quantities the ranking used).
 * CW_EINVAL when no item has a logged score. */
static int context_features(const causal_sessions *s, uint32_t ctx, float **out, size_t *out_d,
                            cw_err *err)
{
    size_t d = s->n_features, extra = context_width(ctx), D = d + extra;
    size_t np_ = s->n_pairs, nq = s->n_queries;
    double *sum = calloc(np_ ? np_ : 1, sizeof *sum), *cnt = calloc(np_ ? np_ : 1, sizeof *cnt);
    double *qmax = malloc((nq ? nq : 1) * sizeof *qmax), *qsum = calloc(nq ? nq : 1, sizeof *qsum),
           *qn = calloc(nq ? nq : 1, sizeof *qn);
    float *x = malloc((np_ ? np_ : 1) * D * sizeof *x);
    int rc = CW_OK;
    if (!sum || !cnt || !qmax || !qsum || !qn || !x) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory for context features");
        goto done;
    }
    uint64_t n_scored = 0;
    for (size_t j = 0; j < s->n_items; j++) {
        float v = s->i_score[j];
        if (!isnan(v)) {
            sum[s->i_pair[j]] += v;
            cnt[s->i_pair[j]] += 1;
            n_scored++;
        }
    }
    if (n_scored == 0) {
        rc = cw_err_set(err, CW_EINVAL,
                        "regression-EM relevance context needs the logged ranker scores; none "
                        "of the %zu items has one (use --rel-context none)",
                        s->n_items);
        goto done;
    }
    for (size_t q = 0; q < nq; q++) {
        qmax[q] = -INFINITY;
    }
    for (size_t p = 0; p < np_; p++) {
        if (cnt[p] > 0) {
            double v = sum[p] / cnt[p];
            uint32_t q = s->pair_query[p];
            qmax[q] = v > qmax[q] ? v : qmax[q];
            qsum[q] += v;
            qn[q] += 1;
        }
    }
    for (size_t p = 0; p < np_; p++) {
        uint32_t q = s->pair_query[p];
        float *row = x + p * D;
        for (size_t f = 0; f < d; f++) {
            row[f] = s->pair_features[p * d + f];
        }
        /* pairs never shown with a score carry no clicks: their features do not matter */
        double v = cnt[p] > 0 ? sum[p] / cnt[p] : 0, mx = qn[q] > 0 ? qmax[q] : v;
        row[d] = (float)v;
        if (extra == 4) {
            row[d + 1] = (float)mx;
            row[d + 2] = (float)(qn[q] > 0 ? qsum[q] / qn[q] : v);
            row[d + 3] = (float)(mx - v);
        }
    }
    *out = x;
    *out_d = D;
    x = NULL;
done:
    free(sum);
    free(cnt);
    free(qmax);
    free(qsum);
    free(qn);
    free(x);
    return rc;
}

/* Regression-EM (Wang et al. WSDM 2018, METHODS.md section 4) on grouped impressions with
 * a feature model of relevance (linear, quadratic, MLP); theta[0..R) out. Per-pair and
 * supplied relevances go to pair_mle_run. */
static int rem_run(const causal_sessions *s0, const groups *g, const causal_prop_opts *o,
                   double *theta, uint32_t *n_iter, bool *converged, double *loglik, cw_err *err)
{
    const uint32_t R = o->max_rank;
    /* The relevance model reads only n_pairs, n_features and pair_features: a shallow copy
     * with the context-augmented matrix gives it the extra features. */
    causal_sessions sc = *s0;
    const causal_sessions *s = &sc;
    float *ctx_x = NULL;
    if (o->rel_context != CAUSAL_REL_CONTEXT_NONE) {
        int rc0 = context_features(s0, o->rel_context, &ctx_x, &sc.n_features, err);
        if (rc0 != CW_OK) {
            return rc0;
        }
        sc.pair_features = ctx_x;
    }
    size_t np_ = s->n_pairs;
    double *gam = malloc(np_ * sizeof *gam), *w = calloc(np_, sizeof *w),
           *t = calloc(np_, sizeof *t), *hid = malloc((o->mlp_hidden + 1) * sizeof *hid);
    relmodel m;
    int rc = relmodel_init(&m, s, o->rel_model, o->mlp_hidden, o->seed, err);
    if (rc != CW_OK || !gam || !w || !t || !hid) {
        if (rc == CW_OK) {
            rc = cw_err_set(err, CW_ENOMEM, "out of memory in regression-EM");
        }
        goto done;
    }
    for (uint32_t k = 0; k < R; k++) {
        theta[k] = 0.9; /* ULTRA's initialisation */
    }
    for (size_t p = 0; p < np_; p++) {
        gam[p] = 0.5;
    }
    *converged = false;
    uint32_t it;
    for (it = 0; it < o->max_iter; it++) {
        double num[CAUSAL_MAX_RANK] = {0}, den[CAUSAL_MAX_RANK] = {0};
        memset(w, 0, np_ * sizeof *w);
        memset(t, 0, np_ * sizeof *t);
        double ll = 0;
        for (size_t i = 0; i < g->n; i++) {
            uint32_t p = g->pair[i], k = g->rank[i] - 1u;
            double th = theta[k], ga = gam[p];
            double pc = th * ga;
            double nc = g->imp[i] - g->clk[i];
            /* E-step, METHODS.md section 4 (Wang et al. WSDM 2018). */
            double e1r0 = th * (1 - ga) / (1 - pc);
            double e0r1 = (1 - th) * ga / (1 - pc);
            num[k] += g->clk[i] + nc * e1r0;
            den[k] += g->imp[i];
            t[p] += g->clk[i] + nc * e0r1;
            w[p] += g->imp[i];
            ll += g->clk[i] * log(pc + 1e-300) + nc * log(1 - pc + 1e-300);
        }
        *loglik = ll;
        double delta = 0, nth[CAUSAL_MAX_RANK];
        for (uint32_t k = 0; k < R; k++) {
            double nt = den[k] > 0 ? num[k] / den[k] : theta[k];
            nth[k] = nt < 1e-6 ? 1e-6 : (nt > 1 - 1e-6 ? 1 - 1e-6 : nt);
        }
        for (uint32_t k = 0; k < R; k++) {
            double d = fabs(nth[k] / nth[0] - theta[k] / theta[0]);
            delta = d > delta ? d : delta;
        }
        memcpy(theta, nth, R * sizeof *theta);
        for (size_t p = 0; p < np_; p++) {
            t[p] = w[p] > 0 ? t[p] / w[p] : 0;
        }
        if ((rc = relmodel_mstep(&m, s, w, t, err)) != CW_OK) {
            goto done;
        }
        for (size_t p = 0; p < np_; p++) {
            double v = sigmoid(relmodel_logit(&m, s, (uint32_t)p, hid));
            gam[p] = v < 1e-6 ? 1e-6 : (v > 1 - 1e-6 ? 1 - 1e-6 : v);
        }
        if (it > 2 && delta < o->tol) {
            *converged = true;
            it++;
            break;
        }
        cw_progress_report(&o->progress, "regression-EM", it + 1, o->max_iter);
        if (cw_interrupted()) {
            rc = cw_err_set(err, CW_EINTR, "regression-EM interrupted at iteration %u", it);
            goto done;
        }
    }
    *n_iter = it;
done:
    relmodel_fini(&m);
    free(ctx_x);
    free(gam);
    free(w);
    free(t);
    free(hid);
    return rc;
}

/* ---- PBM maximum likelihood with a free relevance per (query, doc) pair --------- */

/* argmax over x in (0, hi] of sum_i c_i log(a_i x) + (n_i - c_i) log(1 - a_i x), the PBM
 * log-likelihood of one coordinate (x = gamma of a pair with a_i = theta of its ranks, or
 * x = theta_k with a_i = gamma of the pairs at rank k). Concave in u = log x; safeguarded
 * Newton in u from the warm start x0. With no click the maximum is at 0 (returns lo). */
#define PBM_NEWTON_STEPS 50  /* safeguarded steps; a warm start needs 2-5 */
#define PBM_U_TOL 1e-12      /* stop when log x moves less (or its bracket is this narrow) */
#define PBM_P_MAX (1 - 1e-9) /* largest click probability a x a coordinate may reach */
#define PBM_X_MIN 1e-9       /* lower bound of gamma and theta */

static double pbm_coord(const double *c, const double *n, const double *a, size_t m, double x0,
                        double lo, double hi)
{
    double C = 0, amax = 0;
    for (size_t i = 0; i < m; i++) {
        C += c[i];
        amax = a[i] > amax ? a[i] : amax;
    }
    if (C <= 0 || amax <= 0) {
        return lo;
    }
    double cap = PBM_P_MAX / amax;
    hi = hi < cap ? hi : cap;
    if (lo >= hi) {
        return hi;
    }
    double ul = log(lo), uh = log(hi);
    double u = log(x0 < lo ? lo : (x0 > hi ? hi : x0));
    for (int it = 0; it < PBM_NEWTON_STEPS; it++) {
        double x = exp(u), d1 = C, d2 = 0;
        for (size_t i = 0; i < m; i++) {
            double nc = n[i] - c[i];
            if (nc > 0) {
                double ax = a[i] * x, q = ax / (1 - ax);
                d1 -= nc * q;
                d2 -= nc * q / (1 - ax);
            }
        }
        if (d1 > 0) {
            ul = u;
        } else {
            uh = u;
        }
        double un = d2 < 0 ? u - d1 / d2 : 0.5 * (ul + uh);
        if (!(un > ul && un < uh)) {
            un = 0.5 * (ul + uh); /* Newton left the bracket: bisect */
        }
        if (fabs(un - u) < PBM_U_TOL || uh - ul < PBM_U_TOL) {
            u = un;
            break;
        }
        u = un;
    }
    return exp(u);
}

/* The gamma block of the per-pair fit: each pair's relevance is its exact PBM MLE given
 * theta (pbm_coord over the ranks it was shown at, groups first[p] .. first[p + 1]).
 * bc, bn, ba: scratch of g->n doubles. */
static void gamma_step(const groups *g, const size_t *first, size_t n_pairs, const double *theta,
                       double *gam, double *bc, double *bn, double *ba)
{
    for (size_t p = 0; p < n_pairs; p++) {
        size_t m = 0;
        for (size_t i = first[p]; i < first[p + 1]; i++, m++) {
            bc[m] = g->clk[i];
            bn[m] = g->imp[i];
            ba[m] = theta[g->rank[i] - 1];
        }
        if (m > 0) {
            gam[p] = pbm_coord(bc, bn, ba, m, gam[p], PBM_X_MIN, INFINITY);
        }
    }
}

/* The representative of rank k's linked set in up[] (path halving). */
static uint32_t rank_root(uint32_t *up, uint32_t k)
{
    while (up[k] != k) {
        up[k] = up[up[k]];
        k = up[k];
    }
    return k;
}

/* The PBM maximum-likelihood estimate with one free relevance gamma_p per (query, doc)
 * pair (Joachims et al. WSDM 2017's model; the identification argument of Agarwal et al.
 * WSDM 2019: a pair shown at several ranks links their theta). P(click) = theta_k gamma_p
 * with theta_1 = 1: only ratios are identified, and pinning theta_1 removes the scale
 * ridge along which EM crawls. gamma is bounded by theta_k gamma < 1 only, not gamma <= 1:
 * a cap at 1 is met by every relevant document whose few deep-rank impressions drew a lucky
 * click, and each such pair pushes theta_k up (an upward bias at deep ranks, measured on
 * MQ2008 at eta 2 before this change). Pairs seen at a single rank carry no information
 * about theta and are left out of the theta step. Block coordinate ascent, each block
 * solved exactly (pbm_coord). With o->rel_fixed (an oracle that knows every gamma) only
 * the theta step runs, over every pair, theta_1 free: each theta_k is then its exact MLE
 * given the relevances (the theta-only EM needed thousands of slow linear steps). */
static int pair_mle_run(const groups *g, const causal_prop_opts *o, size_t n_pairs, double *theta,
                        uint32_t *n_iter, bool *converged, double *loglik, cw_err *err)
{
    const uint32_t R = o->max_rank;
    const double *fixed = o->rel_fixed;
    size_t n = g->n ? g->n : 1;
    double *gam = malloc((n_pairs ? n_pairs : 1) * sizeof *gam);
    double *bc = malloc(n * sizeof *bc), *bn = malloc(n * sizeof *bn), *ba = malloc(n * sizeof *ba);
    size_t *first = malloc(((n_pairs ? n_pairs : 1) + 1) * sizeof *first);
    size_t *by_rank = malloc(n * sizeof *by_rank), rank_begin[CAUSAL_MAX_RANK + 1] = {0};
    int rc = CW_OK;
    if (!gam || !bc || !bn || !ba || !first || !by_rank) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory in the per-pair PBM fit");
        goto done;
    }
    /* groups are sorted by pair: first[p] .. first[p + 1] are pair p's ranks */
    for (size_t p = 0, i = 0; p <= n_pairs; p++) {
        while (i < g->n && g->pair[i] < p) {
            i++;
        }
        first[p] = i;
    }
    /* groups at each rank, of pairs shown at two or more ranks unless the relevances are
     * given (counting sort) */
    for (size_t i = 0; i < g->n; i++) {
        uint32_t p = g->pair[i];
        if (fixed || first[p + 1] - first[p] > 1) {
            rank_begin[g->rank[i]]++;
        }
    }
    for (uint32_t k = 1; k <= R; k++) {
        rank_begin[k] += rank_begin[k - 1];
    }
    {
        size_t fill[CAUSAL_MAX_RANK];
        memcpy(fill, rank_begin, sizeof fill);
        for (size_t i = 0; i < g->n; i++) {
            uint32_t p = g->pair[i];
            if (fixed || first[p + 1] - first[p] > 1) {
                by_rank[fill[g->rank[i] - 1]++] = i;
            }
        }
    }
    /* Every rank must be linked to rank 1 by pairs shown at two or more ranks (Agarwal et
     * al. WSDM 2019): elsewhere theta_k and the relevance of the pairs shown at k trade
     * off freely, and the theta step would leave theta_k at its raw click-rate start
     * (union-find over ranks). A supplied relevance identifies every rank by itself. */
    if (!fixed) {
        uint32_t up[CAUSAL_MAX_RANK];
        for (uint32_t k = 0; k < R; k++) {
            up[k] = k;
        }
        for (size_t p = 0; p < n_pairs; p++) {
            for (size_t i = first[p] + 1; i < first[p + 1]; i++) {
                up[rank_root(up, g->rank[i] - 1u)] = rank_root(up, g->rank[first[p]] - 1u);
            }
        }
        for (uint32_t k = 1; k < R; k++) {
            if (rank_root(up, k) != rank_root(up, 0)) {
                rc = cw_err_set(err, CW_EINVAL,
                                "per-pair PBM fit: no (query, doc) pair links rank %u to rank 1 "
                                "(none shown there was also shown at a rank linked to rank 1), "
                                "so theta_%u/theta_1 is not identified; lower --max-rank",
                                k + 1, k + 1);
                goto done;
            }
        }
    } else {
        /* given the relevances, a rank is identified by its own impressions, if any */
        for (uint32_t k = 0; k < R; k++) {
            if (rank_begin[k + 1] == rank_begin[k]) {
                rc = cw_err_set(err, CW_EINVAL,
                                "theta fit with supplied relevance: nothing was shown at rank "
                                "%u; lower --max-rank",
                                k + 1);
                goto done;
            }
        }
    }
    /* start: theta from raw click-through rates (the estimate a uniform relevance mix would
     * give), gamma from each pair's clicks over its expected examinations */
    {
        double ck[CAUSAL_MAX_RANK] = {0}, nk[CAUSAL_MAX_RANK] = {0};
        for (size_t i = 0; i < g->n; i++) {
            ck[g->rank[i] - 1] += g->clk[i];
            nk[g->rank[i] - 1] += g->imp[i];
        }
        double r1 = nk[0] > 0 && ck[0] > 0 ? ck[0] / nk[0] : 1;
        for (uint32_t k = 0; k < R; k++) {
            double v = nk[k] > 0 && ck[k] > 0 ? ck[k] / nk[k] / r1 : 0.5;
            theta[k] = k == 0 ? 1 : (v < 1e-6 ? 1e-6 : (v > 1 ? 1 : v));
        }
    }
    for (size_t p = 0; p < n_pairs; p++) {
        double c = 0, e = 0;
        for (size_t i = first[p]; i < first[p + 1]; i++) {
            c += g->clk[i];
            e += g->imp[i] * theta[g->rank[i] - 1];
        }
        gam[p] = fixed ? clamp_prob(fixed[p]) : (e > 0 && c > 0 ? c / e : 1e-6);
    }
    *converged = false;
    uint32_t it;
    for (it = 0; it < o->max_iter; it++) {
        if (!fixed) {
            gamma_step(g, first, n_pairs, theta, gam, bc, bn, ba);
        }
        double delta = 0;
        for (uint32_t k = fixed ? 0 : 1; k < R; k++) {
            size_t m = 0;
            for (size_t j = rank_begin[k]; j < rank_begin[k + 1]; j++, m++) {
                size_t i = by_rank[j];
                bc[m] = g->clk[i];
                bn[m] = g->imp[i];
                ba[m] = gam[g->pair[i]];
            }
            if (m == 0) {
                continue; /* rank k never linked to another: theta_k stays at its start */
            }
            double v = pbm_coord(bc, bn, ba, m, theta[k], PBM_X_MIN, INFINITY);
            double d = fabs(v - theta[k]);
            delta = d > delta ? d : delta;
            theta[k] = v;
        }
        if (it > 2 && delta < o->tol) {
            *converged = true;
            it++;
            break;
        }
        cw_progress_report(&o->progress, "per-pair PBM fit", it + 1, o->max_iter);
        if (cw_interrupted()) {
            rc = cw_err_set(err, CW_EINTR, "per-pair PBM fit interrupted at iteration %u", it);
            goto done;
        }
    }
    *n_iter = it;
    /* The theta step leaves pairs seen at one rank out, so it may raise theta_k past
     * 1 / gamma of such a pair (one clicked on every impression sits at that bound):
     * the likelihood is reported at the gammas of the final theta, where every
     * theta_k gamma_p < 1 again. */
    if (!fixed) {
        gamma_step(g, first, n_pairs, theta, gam, bc, bn, ba);
    }
    double ll = 0;
    for (size_t i = 0; i < g->n; i++) {
        double pc = theta[g->rank[i] - 1] * gam[g->pair[i]];
        ll += g->clk[i] * log(pc + 1e-300) + (g->imp[i] - g->clk[i]) * log(1 - pc + 1e-300);
    }
    *loglik = ll;
done:
    free(gam);
    free(bc);
    free(bn);
    free(ba);
    free(first);
    free(by_rank);
    return rc;
}

/* The largest change of v[k] / v[0] since the ratios in prev (updated to the new ones):
 * the stopping rule of the coordinate-ascent fits, which creep along flat directions of
 * their objectives long after its relative change looks converged. */
static double ratio_change(const double *v, uint32_t R, double *prev)
{
    double dmax = 0;
    for (uint32_t k = 0; k < R; k++) {
        double d = fabs(v[k] / v[0] - prev[k]);
        dmax = d > dmax ? d : dmax;
        prev[k] = v[k] / v[0];
    }
    return dmax;
}

/* Poisson(1) draw by inversion (bootstrap weights; Hanley & MacGibbon 2006). */
static float poisson1(cw_rng *rng)
{
    static const double cdf[] = {0.36787944, 0.73575888, 0.91969860, 0.98101184, 0.99634015,
                                 0.99940582, 0.99991676, 0.99998975, 1.0};
    double u = cw_rng_uniform(rng);
    int k = 0;
    while (u > cdf[k] && k < 8) {
        k++;
    }
    return (float)k;
}

/* ---- intervention harvesting, AllPairs ------------------------------------------ */

/* Maximises a 1-D concave function on [lo, hi] given its derivative, by bisection. */
static double argmax_concave(double (*dfn)(double, const void *), const void *ctx, double lo,
                             double hi)
{
    if (dfn(lo, ctx) <= 0) {
        return lo;
    }
    if (dfn(hi, ctx) >= 0) {
        return hi;
    }
    for (int i = 0; i < 60; i++) {
        double mid = 0.5 * (lo + hi);
        if (dfn(mid, ctx) > 0) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return 0.5 * (lo + hi);
}

typedef struct harvest_ctx {
    uint32_t R;
    const double *c, *n; /* R x R: c_hat, n_hat */
    double *p;           /* R */
    double *r;           /* R x R symmetric */
    uint32_t k, k2;      /* coordinate being optimised */
} harvest_ctx;

#define HV_LO 1e-4
#define HV_HI (1 - 1e-4)

/* d/dp_k of sum_{k'} c log(p r) + (n - c) log(1 - p r). */
static double dp_fn(double pk, const void *vctx)
{
    const harvest_ctx *h = vctx;
    double g = 0;
    for (uint32_t j = 0; j < h->R; j++) {
        size_t a = (size_t)h->k * h->R + j;
        if (h->n[a] <= 0) {
            continue;
        }
        double r = h->r[a];
        g += h->c[a] / pk - (h->n[a] - h->c[a]) * r / (1 - pk * r);
    }
    return g;
}

/* d/dr_{k,k'} over both directions (k,k') and (k',k). */
static double dr_fn(double r, const void *vctx)
{
    const harvest_ctx *h = vctx;
    double g = 0;
    size_t a = (size_t)h->k * h->R + h->k2, b = (size_t)h->k2 * h->R + h->k;
    double pa = h->p[h->k], pb = h->p[h->k2];
    g += h->c[a] / r - (h->n[a] - h->c[a]) * pa / (1 - pa * r);
    g += h->c[b] / r - (h->n[b] - h->c[b]) * pb / (1 - pb * r);
    return g;
}

static double harvest_ll(const harvest_ctx *h)
{
    double ll = 0;
    for (uint32_t k = 0; k < h->R; k++) {
        for (uint32_t j = 0; j < h->R; j++) {
            size_t a = (size_t)k * h->R + j;
            if (h->n[a] <= 0) {
                continue;
            }
            double q = h->p[k] * h->r[a];
            ll += h->c[a] * log(q) + (h->n[a] - h->c[a]) * log(1 - q);
        }
    }
    return ll;
}

/* Agarwal et al. WSDM 2019 / METHODS.md section 4. With w(q,d,k) = impressions of the
 * pair at rank k summed over rankers (= sum_i n_i 1[rank_i = k] for deterministic
 * rankers), c_hat_{k,k'} = sum over pairs in S_{k,k'} of CTR_pair(k), n_hat = |S_{k,k'}|.
 * Maximised by block coordinate ascent (each coordinate is a 1-D concave problem, solved
 * by bisection on its derivative) instead of PropEst's L-BFGS-B. */
static int harvest_run(const causal_sessions *s, const groups *g, const causal_prop_opts *o,
                       double *ratio, uint32_t *n_iter, bool *converged, double *loglik,
                       uint64_t *n_pairs_used, cw_err *err)
{
    const uint32_t R = o->max_rank;
    size_t RR = (size_t)R * R;
    double *c = calloc(RR, sizeof *c), *n = calloc(RR, sizeof *n), *r = malloc(RR * sizeof *r);
    size_t *start = calloc(s->n_pairs + 1, sizeof *start);
    if (!c || !n || !r || !start) {
        free(c);
        free(n);
        free(r);
        free(start);
        return cw_err_set(err, CW_ENOMEM, "out of memory in harvesting");
    }
    /* groups are sorted by pair then rank (groups_build scans cells in order). */
    uint64_t used = 0;
    size_t i = 0;
    while (i < g->n) {
        size_t j = i;
        while (j < g->n && g->pair[j] == g->pair[i]) {
            j++;
        }
        if (j - i >= 2) {
            used++;
            for (size_t a = i; a < j; a++) {
                for (size_t b = i; b < j; b++) {
                    if (a == b) {
                        continue;
                    }
                    size_t cell = (size_t)(g->rank[a] - 1) * R + (g->rank[b] - 1);
                    c[cell] += g->clk[a] / g->imp[a];
                    n[cell] += 1.0;
                }
            }
        }
        i = j;
    }
    free(start);
    *n_pairs_used = used;
    int rc = CW_OK;
    if (used == 0) {
        rc = cw_err_set(err, CW_EINVAL,
                        "intervention harvesting needs the same (query, doc) shown at two or "
                        "more ranks, i.e. logs of two or more rankers that disagree (or a "
                        "randomized policy); in these %llu sessions every pair was shown at one "
                        "rank only (%u ranker(s)), so propensities are not identified",
                        (unsigned long long)g->n_sessions, g->n_rankers);
        goto done;
    }
    /* Every rank must be connected to rank 1 through intervention sets. */
    {
        bool reach[CAUSAL_MAX_RANK] = {true};
        for (uint32_t pass = 0; pass < R; pass++) {
            for (uint32_t a = 0; a < R; a++) {
                for (uint32_t b = 0; b < R; b++) {
                    if (reach[a] && n[(size_t)a * R + b] > 0) {
                        reach[b] = true;
                    }
                }
            }
        }
        for (uint32_t k = 1; k < R; k++) {
            if (!reach[k]) {
                rc = cw_err_set(err, CW_EINVAL,
                                "intervention harvesting: rank %u is never swapped with a rank "
                                "connected to rank 1 (%llu pairs shown at several ranks): "
                                "theta_%u/theta_1 is not identified; lower --max-rank",
                                k + 1, (unsigned long long)used, k + 1);
                goto done;
            }
        }
    }
    double p[CAUSAL_MAX_RANK];
    for (uint32_t k = 0; k < R; k++) {
        p[k] = 0.5;
    }
    for (size_t a = 0; a < RR; a++) {
        r[a] = 0.5;
    }
    harvest_ctx h = {R, c, n, p, r, 0, 0};
    *converged = false;
    uint32_t it;
    double prev_ratio[CAUSAL_MAX_RANK] = {0};
    for (it = 0; it < o->max_iter; it++) {
        for (uint32_t k = 0; k < R; k++) {
            h.k = k;
            double hi = HV_HI;
            for (uint32_t j = 0; j < R; j++) {
                if (n[(size_t)k * R + j] > 0 && HV_HI / r[(size_t)k * R + j] < hi) {
                    hi = HV_HI / r[(size_t)k * R + j];
                }
            }
            p[k] = argmax_concave(dp_fn, &h, HV_LO, hi < 1 ? hi : HV_HI);
        }
        for (uint32_t k = 0; k < R; k++) {
            for (uint32_t j = k + 1; j < R; j++) {
                size_t a = (size_t)k * R + j, b = (size_t)j * R + k;
                if (n[a] <= 0 && n[b] <= 0) {
                    continue;
                }
                h.k = k;
                h.k2 = j;
                double mp = p[k] > p[j] ? p[k] : p[j];
                double hi = HV_HI / mp < HV_HI ? HV_HI / mp : HV_HI;
                r[a] = r[b] = argmax_concave(dr_fn, &h, HV_LO, hi);
            }
        }
        *loglik = harvest_ll(&h);
        /* Coordinate ascent creeps along flat directions: stop on the ratios, not on the
         * objective, whose relative change is tiny long before the ratios settle. */
        double dmax = ratio_change(p, R, prev_ratio); /* updates prev_ratio every time */
        if (it > 2 && dmax < o->tol) {
            *converged = true;
            it++;
            break;
        }
    }
    *n_iter = it;
    for (uint32_t k = 0; k < R; k++) {
        ratio[k] = p[k] / p[0];
    }
done:
    free(c);
    free(n);
    free(r);
    return rc;
}

/* ---- trust bias (affine) ------------------------------------------------------- */

/* P(c | k, pair) = alpha_k gamma_p + beta_k (Vardasbi et al. CIKM 2020, METHODS.md
 * section 3), fitted by maximum likelihood with alternating updates: per pair a 1-D
 * concave problem in gamma_p (bisection), per rank a 2-D concave problem in
 * (alpha_k, beta_k) (damped Newton). Only alpha_k/alpha_1 and
 * delta_k = beta_k - (alpha_k/alpha_1) beta_1 are identified (gamma -> a gamma + b leaves
 * the likelihood unchanged), so those are reported. */
static int trust_run(const causal_sessions *s, const groups *g, const causal_prop_opts *o,
                     double *ratio, double *delta, uint32_t *n_iter, bool *converged,
                     double *loglik, cw_err *err)
{
    const uint32_t R = o->max_rank;
    size_t np_ = s->n_pairs;
    size_t *start = calloc(np_ + 1, sizeof *start);
    double *gam = malloc(np_ * sizeof *gam);
    if (!start || !gam) {
        free(start);
        free(gam);
        return cw_err_set(err, CW_ENOMEM, "out of memory in trust-bias fit");
    }
    for (size_t i = 0; i < g->n; i++) {
        start[g->pair[i] + 1]++;
    }
    for (size_t p = 0; p < np_; p++) {
        start[p + 1] += start[p];
    }
    /* Pairs shown at one rank only carry no information about the rank parameters. */
    uint64_t multi = 0;
    for (size_t p = 0; p < np_; p++) {
        multi += start[p + 1] - start[p] >= 2;
        double ci = 0, ni = 0;
        for (size_t i = start[p]; i < start[p + 1]; i++) {
            ci += g->clk[i];
            ni += g->imp[i];
        }
        gam[p] = ni > 0 ? 0.1 + 0.8 * ci / ni : 0.5;
    }
    if (multi == 0) {
        free(start);
        free(gam);
        return cw_err_set(err, CW_EINVAL,
                          "trust-bias estimation needs (query, doc) pairs shown at several ranks "
                          "(RandTop-n, swap or several rankers); none in these %llu sessions",
                          (unsigned long long)g->n_sessions);
    }
    double al[CAUSAL_MAX_RANK], be[CAUSAL_MAX_RANK], prev_ratio[CAUSAL_MAX_RANK] = {0};
    for (uint32_t k = 0; k < R; k++) {
        al[k] = 0.5 / (k + 1);
        be[k] = 0.05;
    }
    *converged = false;
    uint32_t it;
    for (it = 0; it < o->max_iter; it++) {
        for (size_t p = 0; p < np_; p++) {
            if (start[p + 1] == start[p]) {
                continue;
            }
            /* Newton steps on the 1-D concave problem, warm-started, clamped to [0, 1]
             * (bisection would cost 60 derivative evaluations per pair per sweep). */
            double x = gam[p];
            for (int nt = 0; nt < 3; nt++) {
                double d1 = 0, d2 = 0;
                for (size_t i = start[p]; i < start[p + 1]; i++) {
                    uint32_t k = g->rank[i] - 1u;
                    double q = al[k] * x + be[k];
                    q = q < 1e-9 ? 1e-9 : (q > 1 - 1e-9 ? 1 - 1e-9 : q);
                    double c = g->clk[i], nc = g->imp[i] - c;
                    d1 += c * al[k] / q - nc * al[k] / (1 - q);
                    d2 -= c * al[k] * al[k] / (q * q) + nc * al[k] * al[k] / ((1 - q) * (1 - q));
                }
                double nx = d2 < 0 ? x - d1 / d2 : (d1 > 0 ? 1.0 : 0.0);
                x = nx < 0 ? 0 : (nx > 1 ? 1 : nx);
            }
            gam[p] = x;
        }
        /* per rank: Newton on (alpha, beta) with the gradient/Hessian of the Bernoulli
         * log-likelihood of q = alpha gamma + beta, backtracking to keep q in (0,1). */
        double G[CAUSAL_MAX_RANK][2] = {{0}}, Hs[CAUSAL_MAX_RANK][3] = {{0}};
        for (size_t i = 0; i < g->n; i++) {
            uint32_t k = g->rank[i] - 1u;
            double x = gam[g->pair[i]];
            double q = al[k] * x + be[k];
            q = q < 1e-9 ? 1e-9 : (q > 1 - 1e-9 ? 1 - 1e-9 : q);
            double c = g->clk[i], nc = g->imp[i] - c;
            double d1 = c / q - nc / (1 - q);
            double d2 = -c / (q * q) - nc / ((1 - q) * (1 - q));
            G[k][0] += d1 * x;
            G[k][1] += d1;
            Hs[k][0] += d2 * x * x;
            Hs[k][1] += d2 * x;
            Hs[k][2] += d2;
        }
        for (uint32_t k = 0; k < R; k++) {
            double a = Hs[k][0], b = Hs[k][1], d = Hs[k][2];
            double det = a * d - b * b;
            if (!(det > 0)) {
                continue;
            }
            double sa = -(d * G[k][0] - b * G[k][1]) / det;
            double sb = -(-b * G[k][0] + a * G[k][1]) / det;
            double step = 1.0;
            for (int bt = 0; bt < 30; bt++) {
                double na = al[k] + step * sa, nb = be[k] + step * sb;
                if (na >= 0 && nb >= 0 && na + nb <= 1 - 1e-9) {
                    al[k] = na;
                    be[k] = nb;
                    break;
                }
                step *= 0.5;
            }
        }
        /* Move to the canonical member of the equivalence class gamma -> a gamma + b:
         * gamma spanning [0, 1] exactly. Without this the alternating updates creep
         * along the flat valley into the bounds and stall there. */
        double gmin = 1, gmax = 0;
        for (size_t p = 0; p < np_; p++) {
            if (start[p + 1] > start[p]) {
                gmin = gam[p] < gmin ? gam[p] : gmin;
                gmax = gam[p] > gmax ? gam[p] : gmax;
            }
        }
        if (gmax - gmin > 1e-6) {
            for (size_t p = 0; p < np_; p++) {
                gam[p] = (gam[p] - gmin) / (gmax - gmin);
            }
            for (uint32_t k = 0; k < R; k++) {
                be[k] += al[k] * gmin;
                al[k] *= gmax - gmin;
            }
        }
        double ll = 0;
        for (size_t i = 0; i < g->n; i++) {
            uint32_t k = g->rank[i] - 1u;
            double q = al[k] * gam[g->pair[i]] + be[k];
            q = q < 1e-12 ? 1e-12 : (q > 1 - 1e-12 ? 1 - 1e-12 : q);
            ll += g->clk[i] * log(q) + (g->imp[i] - g->clk[i]) * log(1 - q);
        }
        *loglik = ll;
        double dmax = ratio_change(al, R, prev_ratio); /* updates prev_ratio every time */
        if (it > 2 && dmax < o->tol) {
            *converged = true;
            it++;
            break;
        }
    }
    *n_iter = it;
    for (uint32_t k = 0; k < R; k++) {
        ratio[k] = al[k] / al[0];
        delta[k] = be[k] - ratio[k] * be[0];
    }
    free(start);
    free(gam);
    return CW_OK;
}

/* ---- driver ---------------------------------------------------------------------- */

/* One fit of a grouped method; ratio (and delta for trust) out. */
static int fit_grouped(const causal_sessions *s, const groups *g, const causal_prop_opts *o,
                       causal_propensity *p, double *ratio, double *delta, cw_err *err)
{
    double theta[CAUSAL_MAX_RANK];
    uint64_t used = 0;
    int rc;
    switch (o->method) {
    case CAUSAL_PROP_REM:
        rc = o->rel_model == CAUSAL_REL_PAIR || o->rel_fixed
                 ? pair_mle_run(g, o, s->n_pairs, theta, &p->n_iter, &p->converged, &p->loglik, err)
                 : rem_run(s, g, o, theta, &p->n_iter, &p->converged, &p->loglik, err);
        if (rc == CW_OK) {
            for (uint32_t k = 0; k < o->max_rank; k++) {
                ratio[k] = theta[k] / theta[0];
                /* free per-pair relevance pins theta_1 = 1: only ratios are identified */
                p->theta[k] = o->rel_model == CAUSAL_REL_PAIR && !o->rel_fixed ? NAN : theta[k];
            }
        }
        return rc;
    case CAUSAL_PROP_HARVEST:
        rc = harvest_run(s, g, o, ratio, &p->n_iter, &p->converged, &p->loglik, &used, err);
        if (rc == CW_OK) {
            snprintf(p->note, sizeof p->note,
                     "AllPairs over %llu (query, doc) pairs shown at two or more ranks by %u "
                     "ranker(s)",
                     (unsigned long long)used, g->n_rankers);
        }
        return rc;
    case CAUSAL_PROP_TRUST:
        return trust_run(s, g, o, ratio, delta, &p->n_iter, &p->converged, &p->loglik, err);
    default: break;
    }
    return cw_err_set(err, CW_EINVAL, "not a grouped method");
}

/* The options of a grouped method that s cannot serve, whichever sessions are used. */
static int check_grouped_opts(const causal_sessions *s, const causal_prop_opts *o, cw_err *err)
{
    if (o->method == CAUSAL_PROP_REM && o->rel_context > CAUSAL_REL_CONTEXT_QUERY) {
        return cw_err_set(err, CW_EINVAL, "relevance context %u (must be 0..%u)", o->rel_context,
                          CAUSAL_REL_CONTEXT_QUERY);
    }
    /* the relevance model's input width: pair features + the context's */
    size_t n_feat = s->n_features + context_width(o->rel_context);
    if (o->method == CAUSAL_PROP_REM && o->rel_model != CAUSAL_REL_PAIR && !o->rel_fixed &&
        n_feat == 0) {
        return cw_err_set(err, CW_EINVAL,
                          "regression-EM with a %s relevance model needs (query, doc) features; "
                          "these sessions have none (use the pair model on logs where pairs are "
                          "shown at several ranks)",
                          o->rel_model == CAUSAL_REL_MLP ? "MLP" : "linear");
    }
    if (o->method == CAUSAL_PROP_REM && o->rel_model == CAUSAL_REL_QUAD && !o->rel_fixed &&
        n_feat > 32) {
        return cw_err_set(err, CW_EINVAL,
                          "regression-EM quad relevance model: %zu features would give %zu "
                          "products; use it with at most 32 features (or linear/mlp)",
                          n_feat, n_feat * (n_feat + 1) / 2);
    }
    if (o->method == CAUSAL_PROP_REM && o->rel_model == CAUSAL_REL_MLP && o->mlp_hidden == 0) {
        return cw_err_set(err, CW_EINVAL, "MLP needs at least one hidden unit");
    }
    return CW_OK;
}

/* A grouped method (regression-EM, the per-pair MLE, harvesting, trust) on the sessions i
 * with mask[i] != 0 (mask NULL: all), bootstrap included. The options are checked. */
static int fit_grouped_masked(const causal_sessions *s, const causal_prop_opts *o,
                              const float *mask, causal_propensity *out, cw_err *err)
{
    const uint32_t R = o->max_rank;
    causal_propensity p;
    init_result(&p, o->method, R);
    groups g;
    uint64_t t0 = cw_now_ns();
    int rc = groups_build(s, R, mask, &g, err);
    if (rc != CW_OK) {
        return rc;
    }
    for (size_t i = 0; i < g.n; i++) {
        p.clicks_at[g.rank[i] - 1] += (uint64_t)g.clk[i];
        p.shown_at[g.rank[i] - 1] += (uint64_t)g.imp[i];
    }
    p.n_items = g.n_items;
    p.n_sessions = s->n_sessions;
    if (mask) {
        p.n_sessions = 0;
        for (size_t i = 0; i < s->n_sessions; i++) {
            p.n_sessions += mask[i] != 0;
        }
    }
    if (o->method == CAUSAL_PROP_REM && o->rel_model == CAUSAL_REL_PAIR && !o->rel_fixed) {
        /* Per-pair relevance and theta_k are confounded unless pairs move between ranks
         * (a supplied relevance separates them on any log). */
        uint64_t multi = 0;
        for (size_t i = 1; i < g.n; i++) {
            multi += g.pair[i] == g.pair[i - 1] && (i < 2 || g.pair[i - 2] != g.pair[i]);
        }
        if (multi == 0) {
            groups_fini(&g);
            return cw_err_set(err, CW_EINVAL,
                              "the per-pair PBM fit is not identified here: "
                              "every (query, doc) pair was shown at a single rank, so theta_k "
                              "and the pair's relevance cannot be separated; use --rel-model "
                              "linear or mlp (features) or a randomized/multi-ranker log");
        }
    }
    double delta[CAUSAL_MAX_RANK];
    rc = fit_grouped(s, &g, o, &p, p.ratio, delta, err);
    groups_fini(&g);
    if (rc != CW_OK) {
        return rc;
    }
    p.seconds = (double)(cw_now_ns() - t0) / 1e9;
    if (o->method == CAUSAL_PROP_TRUST) {
        for (uint32_t k = 0; k < R; k++) {
            p.alpha[k] = p.ratio[k];
            p.beta[k] = delta[k];
        }
        snprintf(p.note, sizeof p.note,
                 "affine click model P(c|k,d) = alpha_k gamma_d + beta_k; identified: "
                 "alpha_k/alpha_1 (ratio) and beta_k - (alpha_k/alpha_1) beta_1 (beta)");
    } else if (o->method == CAUSAL_PROP_REM && o->rel_model == CAUSAL_REL_PAIR && !o->rel_fixed) {
        snprintf(p.note, sizeof p.note,
                 "PBM maximum likelihood with one free relevance per (query, doc) pair (pairs "
                 "at 2+ ranks; theta_1 = 1, absolute theta not identified)%s, %u iterations",
                 p.converged ? "" : " (not converged)", p.n_iter);
    } else if (o->method == CAUSAL_PROP_REM) {
        snprintf(p.note, sizeof p.note, "regression-EM, %s relevance model%s%s, %u iterations",
                 o->rel_fixed                        ? "fixed (supplied)"
                 : o->rel_model == CAUSAL_REL_LINEAR ? "linear logistic"
                 : o->rel_model == CAUSAL_REL_QUAD   ? "quadratic logistic"
                 : o->rel_model == CAUSAL_REL_MLP    ? "MLP"
                                                     : "per-pair",
                 o->rel_fixed || o->rel_model == CAUSAL_REL_PAIR ? ""
                 : o->rel_context == CAUSAL_REL_CONTEXT_SCORE
                     ? " on the features + the logged score"
                 : o->rel_context == CAUSAL_REL_CONTEXT_QUERY
                     ? " on the features + logged score, query max/mean, gap to max"
                     : "",
                 p.converged ? "" : " (not converged)", p.n_iter);
    }
    if (o->n_boot > 0) {
        /* Poisson bootstrap over sessions (each session weighted by Poisson(1)),
         * refitting on the reweighted groups. */
        float *sw = malloc(s->n_sessions * sizeof *sw);
        double *reps = malloc((size_t)o->n_boot * R * sizeof *reps);
        if (!sw || !reps) {
            free(sw);
            free(reps);
            return cw_err_set(err, CW_ENOMEM, "out of memory for bootstrap");
        }
        cw_rng rng;
        cw_rng_seed_stream(&rng, o->seed, 0xb00757);
        causal_prop_opts ob = *o;
        ob.progress.fn = NULL;
        for (uint32_t b = 0; b < o->n_boot && rc == CW_OK; b++) {
            for (size_t i = 0; i < s->n_sessions; i++) {
                float w = poisson1(&rng); /* drawn for every session: same replicates */
                sw[i] = mask ? w * mask[i] : w;
            }
            groups gb;
            causal_propensity pb;
            init_result(&pb, o->method, R);
            if ((rc = groups_build(s, R, sw, &gb, err)) != CW_OK) {
                break;
            }
            cw_err e2;
            if (fit_grouped(s, &gb, &ob, &pb, reps + (size_t)b * R, delta, &e2) != CW_OK) {
                for (uint32_t k = 0; k < R; k++) {
                    reps[(size_t)b * R + k] = NAN;
                }
            }
            groups_fini(&gb);
            cw_progress_report(&o->progress, "bootstrap", b + 1, o->n_boot);
            if (cw_interrupted()) {
                rc = cw_err_set(err, CW_EINTR, "bootstrap interrupted");
            }
        }
        if (rc == CW_OK) {
            percentile_ci(&p, reps, o->n_boot, R, o->ci_level);
        }
        free(sw);
        free(reps);
        if (rc != CW_OK) {
            return rc;
        }
    }
    *out = p;
    return CW_OK;
}

int causal_propensity_fit(const causal_sessions *s, const causal_prop_opts *o,
                          causal_propensity *out, cw_err *err)
{
    if (o->max_rank < 2 || o->max_rank > CAUSAL_MAX_RANK) {
        return cw_err_set(err, CW_EINVAL, "max rank %u (must be 2..%u)", o->max_rank,
                          CAUSAL_MAX_RANK);
    }
    if (s->n_sessions == 0) {
        return cw_err_set(err, CW_EINVAL, "no sessions to fit");
    }
    if (o->method == CAUSAL_PROP_RANDOMIZATION) {
        return fit_randomization(s, o, out, err);
    }
    int rc = check_grouped_opts(s, o, err);
    return rc != CW_OK ? rc : fit_grouped_masked(s, o, NULL, out, err);
}

int causal_propensity_fit_contexts(const causal_sessions *s, const causal_prop_opts *o,
                                   const uint32_t *ctx, uint32_t n_ctx, causal_propensity *out,
                                   cw_err *err)
{
    if (n_ctx == 0 || n_ctx > CAUSAL_MAX_CONTEXTS) {
        return cw_err_set(err, CW_EINVAL, "%u contexts (must be 1..%u)", n_ctx,
                          CAUSAL_MAX_CONTEXTS);
    }
    for (size_t i = 0; i < s->n_sessions; i++) {
        if (ctx[i] >= n_ctx && ctx[i] != CAUSAL_CONTEXT_NONE) {
            return cw_err_set(err, CW_EINVAL, "session %zu: context %u out of range (%u contexts)",
                              i, ctx[i], n_ctx);
        }
    }
    if (o->max_rank < 2 || o->max_rank > CAUSAL_MAX_RANK) {
        return cw_err_set(err, CW_EINVAL, "max rank %u (must be 2..%u)", o->max_rank,
                          CAUSAL_MAX_RANK);
    }
    bool rand = o->method == CAUSAL_PROP_RANDOMIZATION;
    int rc = rand ? CW_OK : check_grouped_opts(s, o, err);
    if (rc != CW_OK) {
        return rc;
    }
    float *mask = rand ? NULL : malloc((s->n_sessions ? s->n_sessions : 1) * sizeof *mask);
    if (!rand && !mask) {
        return cw_err_set(err, CW_ENOMEM, "out of memory for contexts");
    }
    for (uint32_t k = 0; k < n_ctx && rc == CW_OK; k++) {
        uint64_t t0 = cw_now_ns();
        cw_err e2 = {0};
        if (rand) {
            causal_rand_counts *c = NULL;
            if ((rc = causal_rand_counts_new(o->max_rank, o->n_buckets, &c, err)) != CW_OK) {
                break;
            }
            rand_counts_add(c, s, ctx, k);
            rc = causal_rand_counts_finish(c, o, &out[k], &e2);
            causal_rand_counts_free(c);
        } else {
            uint64_t n = 0;
            for (size_t i = 0; i < s->n_sessions; i++) {
                mask[i] = ctx[i] == k;
                n += ctx[i] == k;
            }
            rc = n == 0 ? cw_err_set(&e2, CW_EINVAL, "no sessions in this context")
                        : fit_grouped_masked(s, o, mask, &out[k], &e2);
        }
        if (rc == CW_EINVAL) {
            /* a context the method cannot identify: no numbers, the reason instead */
            init_result(&out[k], o->method, o->max_rank);
            snprintf(out[k].note, sizeof out[k].note, "not identified: %s", e2.msg);
            rc = CW_OK;
        } else if (rc != CW_OK) {
            rc = cw_err_set(err, rc, "%s", e2.msg);
        } else {
            out[k].seconds = (double)(cw_now_ns() - t0) / 1e9;
        }
    }
    free(mask);
    return rc;
}

/* ---- JSON ------------------------------------------------------------------------ */

static int jnum(cw_buf *b, double v)
{
    if (isnan(v) || isinf(v)) {
        return cw_buf_printf(b, "null");
    }
    return cw_buf_printf(b, "%.6g", v);
}

int causal_propensity_to_json(const causal_propensity *p, cw_buf *out, cw_err *err)
{
    int rc = cw_buf_printf(out, "{\"method\":\"%s\",\"n_ranks\":%u,\"ranks\":[",
                           causal_prop_method_name(p->method), p->n_ranks);
    for (uint32_t k = 0; k < p->n_ranks && rc == CW_OK; k++) {
        rc = cw_buf_printf(out, "%s{\"rank\":%u,\"ratio\":", k ? "," : "", k + 1);
        rc = rc ? rc : jnum(out, p->ratio[k]);
        rc = rc ? rc : cw_buf_printf(out, ",\"ci_lo\":");
        rc = rc ? rc : jnum(out, p->ci_lo[k]);
        rc = rc ? rc : cw_buf_printf(out, ",\"ci_hi\":");
        rc = rc ? rc : jnum(out, p->ci_hi[k]);
        rc = rc ? rc : cw_buf_printf(out, ",\"inverse_weight\":");
        rc = rc ? rc : jnum(out, p->ratio[k] > 0 ? 1.0 / p->ratio[k] : NAN);
        if (!isnan(p->theta[k])) {
            rc = rc ? rc : cw_buf_printf(out, ",\"theta\":");
            rc = rc ? rc : jnum(out, p->theta[k]);
        }
        if (p->method == CAUSAL_PROP_TRUST) {
            rc = rc ? rc : cw_buf_printf(out, ",\"alpha\":");
            rc = rc ? rc : jnum(out, p->alpha[k]);
            rc = rc ? rc : cw_buf_printf(out, ",\"beta\":");
            rc = rc ? rc : jnum(out, p->beta[k]);
        }
        rc = rc ? rc
                : cw_buf_printf(out, ",\"clicks\":%llu,\"impressions\":%llu}",
                                (unsigned long long)p->clicks_at[k],
                                (unsigned long long)p->shown_at[k]);
    }
    rc = rc ? rc
            : cw_buf_printf(out,
                            "],\"diagnostics\":{\"sessions\":%llu,\"items\":%llu,"
                            "\"iterations\":%u,\"converged\":%s,\"objective\":",
                            (unsigned long long)p->n_sessions, (unsigned long long)p->n_items,
                            p->n_iter, p->converged ? "true" : "false");
    rc = rc ? rc : jnum(out, p->loglik);
    rc = rc ? rc
            : cw_buf_printf(out, ",\"fit_seconds\":%.3f,\"bootstrap_replicates\":%u,", p->seconds,
                            p->n_boot);
    rc = rc ? rc : cw_buf_printf(out, "\"note\":\"");
    for (const char *c = p->note; *c && rc == CW_OK; c++) {
        if (*c == '"' || *c == '\\') {
            rc = cw_buf_printf(out, "\\%c", *c);
        } else {
            rc = cw_buf_append(out, c, 1);
        }
    }
    rc = rc ? rc : cw_buf_printf(out, "\"}}\n");
    if (rc != CW_OK) {
        return cw_err_set(err, CW_ENOMEM, "out of memory writing JSON");
    }
    return CW_OK;
}

/* ---- reading a fit back ---------------------------------------------------- */

int causal_propensity_read_ratios(const char *path, double *ratio, uint32_t max, uint32_t *n,
                                  cw_err *err)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root && je.line < 0) { /* not read at all: je.text names the file and the reason */
        return cw_err_set(err, CW_EIO, "%s", je.text);
    }
    if (!root) {
        return cw_err_set(err, CW_EPARSE, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    }
    json_t *arr = json_is_array(root) ? root : json_object_get(root, "ranks");
    int rc = CW_OK;
    size_t len = json_is_array(arr) ? json_array_size(arr) : 0;
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > max) {
        rc = cw_err_set(err, CW_EPARSE, "%s: expected \"ranks\" or an array of 1..%u ratios", path,
                        max);
    }
    /* every ratio is checked before any is written: ratio and n only change on success */
    for (size_t k = 0; rc == CW_OK && k < len; k++) {
        json_t *v = json_array_get(arr, k);
        if (json_is_object(v)) {
            json_t *r = json_object_get(v, "rank");
            if (json_is_integer(r) && json_integer_value(r) != (json_int_t)k + 1) {
                rc = cw_err_set(err, CW_EPARSE, "%s: ranks[%zu] is rank %lld, expected %zu", path,
                                k, (long long)json_integer_value(r), k + 1);
                break;
            }
            v = json_object_get(v, "ratio");
        }
        if (!json_is_number(v) || !(json_number_value(v) > 0) || !isfinite(json_number_value(v))) {
            rc = cw_err_set(err, CW_EPARSE, "%s: ratio of rank %zu must be a number > 0", path,
                            k + 1);
            break;
        }
    }
    for (size_t k = 0; rc == CW_OK && k < len; k++) {
        json_t *v = json_array_get(arr, k);
        ratio[k] = json_number_value(json_is_object(v) ? json_object_get(v, "ratio") : v);
    }
    if (rc == CW_OK) {
        *n = (uint32_t)len;
    }
    json_decref(root);
    return rc;
}
