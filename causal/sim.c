/* causal/sim.c: the user simulator. Users with known examination and click behaviour
 * (METHODS.md section 3) click on lists produced by a logging policy (deterministic,
 * RandTop-n, swap, Plackett-Luce) over a collection of queries with labelled candidates.
 * Data flow: collection (text+qrels, LETOR, synthetic) -> simulate -> causal_sessions -> log. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "causal/causal.h"

struct causal_simcoll {
    causal_sessions *s;
    uint32_t n_rankers;
    uint32_t ranker_ids[CAUSAL_SIM_MAX_RANKERS];
    size_t n_queries, cap_queries;
    uint32_t *q_id; /* query id in s */
    size_t *q_off;  /* candidates of query i: [q_off[i], q_off[i] + q_n[i]) */
    uint32_t *q_n;
    size_t n_cand, cap_cand;
    uint32_t *c_pair;
    int8_t *c_label;
    double *c_score[CAUSAL_SIM_MAX_RANKERS];
    uint32_t *c_order[CAUSAL_SIM_MAX_RANKERS]; /* per query: local indices by score desc */
    int ymax;
};

/* ---- users ------------------------------------------------------------------ */

/* Eye-tracking examination table (METHODS.md section 3; Wang et al. WSDM 2018). */
static const double theta_table[10] = {.68, .61, .48, .34, .28, .20, .11, .10, .08, .06};

void causal_user_theta_table(causal_user *u, double eta, uint32_t n_ranks)
{
    if (n_ranks > CAUSAL_MAX_RANK) {
        n_ranks = CAUSAL_MAX_RANK;
    }
    for (uint32_t k = 0; k < n_ranks; k++) {
        u->theta[k] = pow(theta_table[k < 10 ? k : 9], eta);
    }
    u->n_theta = n_ranks;
}

void causal_user_theta_power(causal_user *u, double eta, uint32_t n_ranks)
{
    if (n_ranks > CAUSAL_MAX_RANK) {
        n_ranks = CAUSAL_MAX_RANK;
    }
    for (uint32_t k = 0; k < n_ranks; k++) {
        u->theta[k] = pow(1.0 / (k + 1), eta);
    }
    u->n_theta = n_ranks;
}

causal_user causal_user_default(causal_user_kind kind, int ymax)
{
    causal_user u;
    memset(&u, 0, sizeof u);
    u.kind = kind;
    causal_user_theta_table(&u, 1.0, 10);
    u.epsilon = 0.1;
    u.ymax = ymax < 1 ? 1 : (ymax > CAUSAL_MAX_LABEL ? CAUSAL_MAX_LABEL : ymax);
    /* "navigational" user of HarrieO's OLTR tables (METHODS.md section 3). */
    static const double click3[3] = {.05, .5, .95}, stop3[3] = {.2, .5, .9};
    static const double click5[5] = {.05, .3, .5, .7, .95}, stop5[5] = {.2, .3, .5, .7, .9};
    for (int y = 0; y <= u.ymax; y++) {
        double t = (double)y / u.ymax;
        if (u.ymax == 2) {
            u.p_click[y] = click3[y];
            u.p_stop[y] = stop3[y];
        } else if (u.ymax == 4) {
            u.p_click[y] = click5[y];
            u.p_stop[y] = stop5[y];
        } else {
            u.p_click[y] = .05 + .9 * t;
            u.p_stop[y] = .2 + .7 * t;
        }
    }
    u.dbn_gamma = kind == CAUSAL_USER_CASCADE ? 1.0 : 0.9;
    return u;
}

double causal_user_relevance(const causal_user *u, int y)
{
    if (y <= 0) {
        return u->epsilon;
    }
    if (y >= u->ymax) {
        return 1.0;
    }
    return u->epsilon + (1 - u->epsilon) * (ldexp(1.0, y) - 1) / (ldexp(1.0, u->ymax) - 1);
}

static double theta_at(const causal_user *u, uint32_t k)
{
    if (u->n_theta == 0) {
        return 1.0;
    }
    return u->theta[(k <= u->n_theta ? k : u->n_theta) - 1];
}

void causal_user_trust(const causal_user *u, uint32_t k, double *alpha, double *beta)
{
    /* Vardasbi, Oosterhuis & de Rijke (CIKM 2020), as in METHODS.md section 3. */
    double th = theta_at(u, k);
    double ep = 1 - ((k < 20 ? k : 20) + 1) / 100.0;
    double em = 0.65 / (k < 10 ? k : 10);
    *alpha = th * (ep - em);
    *beta = th * em;
}

double causal_user_ubm_exam(const causal_user *u, uint32_t k, uint32_t kprev)
{
    return theta_at(u, k - kprev);
}

/* ---- collections ------------------------------------------------------------ */

int causal_simcoll_new(causal_sessions *s, uint32_t n_rankers, const char *const *ranker_names,
                       causal_simcoll **out, cw_err *err)
{
    if (n_rankers < 1 || n_rankers > CAUSAL_SIM_MAX_RANKERS) {
        return cw_err_set(err, CW_EINVAL, "%u rankers (must be 1..%u)", n_rankers,
                          CAUSAL_SIM_MAX_RANKERS);
    }
    causal_simcoll *c = calloc(1, sizeof *c);
    if (!c) {
        return cw_err_set(err, CW_ENOMEM, "out of memory creating a collection");
    }
    c->s = s;
    c->n_rankers = n_rankers;
    for (uint32_t r = 0; r < n_rankers; r++) {
        char name[32];
        snprintf(name, sizeof name, "ranker-%u", r);
        int rc = causal_sessions_ranker(s, ranker_names ? ranker_names[r] : name, &c->ranker_ids[r],
                                        err);
        if (rc != CW_OK) {
            free(c);
            return rc;
        }
    }
    *out = c;
    return CW_OK;
}

void causal_simcoll_free(causal_simcoll *c)
{
    if (!c) {
        return;
    }
    free(c->q_id);
    free(c->q_off);
    free(c->q_n);
    free(c->c_pair);
    free(c->c_label);
    for (uint32_t r = 0; r < CAUSAL_SIM_MAX_RANKERS; r++) {
        free(c->c_score[r]);
        free(c->c_order[r]);
    }
    free(c);
}

size_t causal_simcoll_n_queries(const causal_simcoll *c)
{
    return c->n_queries;
}

int causal_simcoll_max_label(const causal_simcoll *c)
{
    return c->ymax;
}

void causal_simcoll_binarize(causal_simcoll *c)
{
    for (size_t i = 0; i < c->n_cand; i++) {
        c->c_label[i] = c->c_label[i] > 0;
    }
    for (size_t p = 0; p < c->s->n_pairs; p++) {
        if (c->s->pair_label[p] > 0) {
            c->s->pair_label[p] = 1; /* -1 (unknown) stays */
        }
    }
    c->ymax = c->ymax > 0 ? 1 : 0;
}

int causal_simcoll_interventions(const causal_simcoll *c, uint32_t n_rankers, uint32_t k,
                                 double *n_hat, cw_err *err)
{
    if (n_rankers == 0 || n_rankers > c->n_rankers || k == 0 || k > CAUSAL_MAX_RANK) {
        return cw_err_set(err, CW_EINVAL, "%u rankers of %u, k = %u (must be 1..%u)", n_rankers,
                          c->n_rankers, k, CAUSAL_MAX_RANK);
    }
    memset(n_hat, 0, (size_t)k * k * sizeof *n_hat);
    uint8_t *at = NULL; /* at[i * k + j]: candidate i shown at rank j+1 by some ranker */
    size_t cap = 0;
    for (size_t q = 0; q < c->n_queries; q++) {
        size_t off = c->q_off[q];
        uint32_t n = c->q_n[q];
        if ((size_t)n * k > cap) {
            cap = (size_t)n * k;
            uint8_t *t = realloc(at, cap);
            if (!t) {
                free(at);
                return cw_err_set(err, CW_ENOMEM, "out of memory counting interventions");
            }
            at = t;
        }
        memset(at, 0, (size_t)n * k);
        for (uint32_t r = 0; r < n_rankers; r++) {
            for (uint32_t j = 0; j < k && j < n; j++) {
                at[(size_t)c->c_order[r][off + j] * k + j] = 1;
            }
        }
        /* the intervention sets S_{k,k'} of harvest_run (Agarwal et al. WSDM 2019) */
        for (uint32_t i = 0; i < n; i++) {
            for (uint32_t a = 0; a < k; a++) {
                for (uint32_t b = 0; b < k && at[(size_t)i * k + a]; b++) {
                    if (a != b && at[(size_t)i * k + b]) {
                        n_hat[(size_t)a * k + b] += 1;
                    }
                }
            }
        }
    }
    free(at);
    return CW_OK;
}

static int resize(void **p, size_t n, size_t elem)
{
    void *q = realloc(*p, n * elem);
    if (!q) {
        return CW_ENOMEM;
    }
    *p = q;
    return CW_OK;
}

/* Sorting context for the deterministic order: score descending, ties by position in
 * the input (stable), so equal scores keep the collection's order. */
static const double *sort_scores;
static int cmp_desc(const void *a, const void *b)
{
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    double x = sort_scores[i], y = sort_scores[j];
    if (x != y) {
        return x > y ? -1 : 1;
    }
    return (i > j) - (i < j);
}

static void order_query(causal_simcoll *c, size_t q, uint32_t r)
{
    size_t off = c->q_off[q];
    uint32_t n = c->q_n[q];
    uint32_t *o = c->c_order[r] + off;
    for (uint32_t i = 0; i < n; i++) {
        o[i] = i;
    }
    sort_scores = c->c_score[r] + off;
    qsort(o, n, sizeof *o, cmp_desc);
}

int causal_simcoll_add(causal_simcoll *c, const char *qid, size_t n, const char *const *doc_ids,
                       const int *labels, const double *const *scores, const float *features,
                       cw_err *err)
{
    if (n == 0) {
        return cw_err_set(err, CW_EINVAL, "query %s has no candidates", qid);
    }
    if (n > CAUSAL_SIM_MAX_CANDIDATES) {
        return cw_err_set(err, CW_ELIMIT, "query %s has %zu candidates (limit %u)", qid, n,
                          CAUSAL_SIM_MAX_CANDIDATES);
    }
    for (size_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] > CAUSAL_MAX_LABEL) {
            return cw_err_set(err, CW_EINVAL, "query %s doc %s: label %d outside 0..%d", qid,
                              doc_ids[i], labels[i], CAUSAL_MAX_LABEL);
        }
    }
    causal_sessions *s = c->s;
    size_t before = s->n_queries;
    uint32_t q;
    int rc = causal_sessions_query(s, qid, &q, err);
    if (rc != CW_OK) {
        return rc;
    }
    if (s->n_queries == before) {
        for (size_t i = 0; i < c->n_queries; i++) {
            if (c->q_id[i] == q) {
                return cw_err_set(err, CW_EINVAL, "query %s added twice", qid);
            }
        }
    }
    if (c->n_queries == c->cap_queries) {
        size_t cap = c->cap_queries ? 2 * c->cap_queries : 64;
        if (resize((void **)&c->q_id, cap, sizeof *c->q_id) ||
            resize((void **)&c->q_off, cap, sizeof *c->q_off) ||
            resize((void **)&c->q_n, cap, sizeof *c->q_n)) {
            return cw_err_set(err, CW_ENOMEM, "out of memory adding query %s", qid);
        }
        c->cap_queries = cap;
    }
    if (c->n_cand + n > c->cap_cand) {
        size_t cap = c->cap_cand ? 2 * c->cap_cand : 1024;
        while (cap < c->n_cand + n) {
            cap *= 2;
        }
        if (resize((void **)&c->c_pair, cap, sizeof *c->c_pair) ||
            resize((void **)&c->c_label, cap, sizeof *c->c_label)) {
            return cw_err_set(err, CW_ENOMEM, "out of memory adding query %s", qid);
        }
        for (uint32_t r = 0; r < c->n_rankers; r++) {
            if (resize((void **)&c->c_score[r], cap, sizeof *c->c_score[r]) ||
                resize((void **)&c->c_order[r], cap, sizeof *c->c_order[r])) {
                return cw_err_set(err, CW_ENOMEM, "out of memory adding query %s", qid);
            }
        }
        c->cap_cand = cap;
    }
    size_t off = c->n_cand;
    for (size_t i = 0; i < n; i++) {
        uint32_t d, p;
        if ((rc = causal_sessions_doc(s, doc_ids[i], &d, err)) != CW_OK ||
            (rc = causal_sessions_pair(s, q, d, labels[i], &p, err)) != CW_OK) {
            return rc;
        }
        c->c_pair[off + i] = p;
        c->c_label[off + i] = (int8_t)labels[i];
        if (labels[i] > c->ymax) {
            c->ymax = labels[i];
        }
        for (uint32_t r = 0; r < c->n_rankers; r++) {
            c->c_score[r][off + i] = scores[r][i];
        }
        if (features && s->n_features > 0) {
            memcpy(s->pair_features + (size_t)p * s->n_features, features + i * s->n_features,
                   s->n_features * sizeof *features);
        }
    }
    size_t qi = c->n_queries++;
    c->q_id[qi] = q;
    c->q_off[qi] = off;
    c->q_n[qi] = (uint32_t)n;
    c->n_cand += n;
    for (uint32_t r = 0; r < c->n_rankers; r++) {
        order_query(c, qi, r);
    }
    return CW_OK;
}

int causal_simcoll_perturb(causal_simcoll *c, double noise, uint64_t seed, cw_err *err)
{
    (void)err;
    cw_rng rng;
    for (uint32_t r = 1; r < c->n_rankers; r++) {
        cw_rng_seed_stream(&rng, seed, r);
        for (size_t q = 0; q < c->n_queries; q++) {
            /* noise in units of the query's score standard deviation: scale-free, so the
             * same setting disagrees as much on BM25 scores as on LETOR model scores */
            size_t off = c->q_off[q];
            uint32_t n = c->q_n[q];
            double m = 0, v = 0;
            for (uint32_t i = 0; i < n; i++) {
                m += c->c_score[0][off + i] / n;
            }
            for (uint32_t i = 0; i < n; i++) {
                double d = c->c_score[0][off + i] - m;
                v += d * d / n;
            }
            double sd = v > 0 ? sqrt(v) : 1.0;
            for (uint32_t i = 0; i < n; i++) {
                c->c_score[r][off + i] = c->c_score[0][off + i] + noise * sd * cw_rng_normal(&rng);
            }
        }
        for (size_t q = 0; q < c->n_queries; q++) {
            order_query(c, q, r);
        }
    }
    return CW_OK;
}

int causal_simcoll_random(causal_sessions *s, uint32_t n_queries, uint32_t n_docs, int ymax,
                          uint32_t n_rankers, double noise, uint64_t seed, causal_simcoll **out,
                          cw_err *err)
{
    if (n_queries == 0 || n_docs == 0 || n_docs > CAUSAL_SIM_MAX_CANDIDATES || ymax < 1 ||
        ymax > CAUSAL_MAX_LABEL) {
        return cw_err_set(err, CW_EINVAL,
                          "random collection needs queries >= 1, 1 <= docs <= %u, 1 <= ymax <= %d",
                          CAUSAL_SIM_MAX_CANDIDATES, CAUSAL_MAX_LABEL);
    }
    causal_simcoll *c = NULL;
    int rc = causal_simcoll_new(s, n_rankers, NULL, &c, err);
    if (rc != CW_OK) {
        return rc;
    }
    char **ids = calloc(n_docs, sizeof *ids);
    char *idbuf = malloc((size_t)n_docs * 24);
    int *labels = malloc(n_docs * sizeof *labels);
    double *sc = malloc((size_t)n_rankers * n_docs * sizeof *sc);
    const double *rows[CAUSAL_SIM_MAX_RANKERS];
    if (!ids || !idbuf || !labels || !sc) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory building a random collection");
        goto done;
    }
    cw_rng rng;
    cw_rng_seed(&rng, seed);
    for (uint32_t q = 0; q < n_queries && rc == CW_OK; q++) {
        char qid[32];
        snprintf(qid, sizeof qid, "q%u", q + 1);
        for (uint32_t i = 0; i < n_docs; i++) {
            ids[i] = idbuf + (size_t)i * 24;
            snprintf(ids[i], 24, "d%u", q * n_docs + i + 1);
            labels[i] = (int)cw_rng_below(&rng, (uint64_t)ymax + 1);
            for (uint32_t r = 0; r < n_rankers; r++) {
                sc[(size_t)r * n_docs + i] = labels[i] + noise * cw_rng_normal(&rng);
            }
        }
        for (uint32_t r = 0; r < n_rankers; r++) {
            rows[r] = sc + (size_t)r * n_docs;
        }
        rc = causal_simcoll_add(c, qid, n_docs, (const char *const *)ids, labels, rows, NULL, err);
    }
done:
    free(ids);
    free(idbuf);
    free(labels);
    free(sc);
    if (rc != CW_OK) {
        causal_simcoll_free(c);
        return rc;
    }
    *out = c;
    return CW_OK;
}

/* ---- simulation ------------------------------------------------------------- */

causal_sim_opts causal_sim_opts_default(void)
{
    causal_sim_opts o;
    memset(&o, 0, sizeof o);
    o.user = causal_user_default(CAUSAL_USER_PBM, 4);
    o.policy.kind = CAUSAL_POLICY_DETERMINISTIC;
    o.policy.k = 10;
    o.policy.randtop_n = 0;
    o.policy.swap_share = 1.0;
    o.policy.pl_temperature = 1.0;
    o.n_sessions = 1000;
    o.seed = 1;
    o.n_rankers = 1;
    return o;
}

/* Gumbel top-K sampling of a Plackett-Luce ranking (Kool, van Hoof & Welling, ICML
 * 2019): the K largest of s_d/tau + G_d in order. out gets local indices; returns K. */
static uint32_t pl_sample(cw_rng *rng, const double *sc, uint32_t n, double tau, uint32_t k,
                          uint32_t *out, double *keys)
{
    uint32_t m = 0;
    for (uint32_t d = 0; d < n; d++) {
        double key = sc[d] / tau + cw_rng_gumbel(rng);
        if (m == k && key <= keys[m - 1]) {
            continue;
        }
        uint32_t j = m < k ? m++ : m - 1;
        while (j > 0 && keys[j - 1] < key) {
            keys[j] = keys[j - 1];
            out[j] = out[j - 1];
            j--;
        }
        keys[j] = key;
        out[j] = d;
    }
    return m;
}

/* log pi(y | q) of a top-K prefix under Plackett-Luce (METHODS.md section 6): the
 * normaliser over the documents not yet placed is the full sum minus the placed ones,
 * computed once with the maximum subtracted (log-sum-exp), so O(n + K). */
static double pl_logp(const double *sc, uint32_t n, double tau, const uint32_t *y, uint32_t k,
                      double *ex)
{
    double mx = -INFINITY;
    for (uint32_t d = 0; d < n; d++) {
        mx = sc[d] / tau > mx ? sc[d] / tau : mx;
    }
    double z = 0;
    for (uint32_t d = 0; d < n; d++) {
        ex[d] = exp(sc[d] / tau - mx);
        z += ex[d];
    }
    double lp = 0;
    for (uint32_t j = 0; j < k; j++) {
        lp += sc[y[j]] / tau - mx - log(z);
        z -= ex[y[j]];
        if (z < 0) {
            z = 0; /* rounding; only reached after the last document */
        }
    }
    return lp;
}

/* Clicks of one user on a list of labels shown at ranks 1..k (METHODS.md section 3), with
 * the per-label relevance and per-rank examination/trust tables precomputed. */
static void user_clicks(const causal_user *u, const double *rel, const double *exam,
                        const double *alpha, const double *beta, const int *labels, uint32_t k,
                        cw_rng *rng, uint8_t *clicks)
{
    uint32_t last = 0;
    bool stopped = false;
    for (uint32_t j = 0; j < k; j++) {
        uint32_t kk = j + 1;
        int y = labels[j];
        uint8_t ck = 0;
        switch (u->kind) {
        case CAUSAL_USER_PBM: ck = cw_rng_uniform(rng) < exam[kk] * rel[y]; break;
        case CAUSAL_USER_TRUST: ck = cw_rng_uniform(rng) < alpha[kk] * rel[y] + beta[kk]; break;
        case CAUSAL_USER_UBM:
            ck = cw_rng_uniform(rng) < causal_user_ubm_exam(u, kk, last) * rel[y];
            if (ck) {
                last = kk;
            }
            break;
        case CAUSAL_USER_CASCADE:
        case CAUSAL_USER_DBN:
            /* Chapelle & Zhang (WWW 2009): E_1 = 1; C = E and A; S = C and sat;
             * E_{k+1} = E_k and not S_k and (continue w.p. gamma). The cascade user is
             * gamma = 1 with the stop probabilities of METHODS.md. */
            if (!stopped) {
                ck = cw_rng_uniform(rng) < u->p_click[y];
                if (ck && cw_rng_uniform(rng) < u->p_stop[y]) {
                    stopped = true;
                } else if (u->dbn_gamma < 1 && cw_rng_uniform(rng) >= u->dbn_gamma) {
                    stopped = true;
                }
            }
            break;
        }
        clicks[j] = ck;
    }
}

void causal_user_clicks(const causal_user *u, const int *labels, uint32_t k, cw_rng *rng,
                        uint8_t *clicks)
{
    double rel[CAUSAL_MAX_LABEL + 1], exam[CAUSAL_MAX_RANK + 1], alpha[CAUSAL_MAX_RANK + 1],
        beta[CAUSAL_MAX_RANK + 1];
    k = k < CAUSAL_MAX_RANK ? k : CAUSAL_MAX_RANK;
    for (int y = 0; y <= CAUSAL_MAX_LABEL; y++) {
        rel[y] = causal_user_relevance(u, y);
    }
    for (uint32_t r = 1; r <= k; r++) {
        exam[r] = theta_at(u, r);
        causal_user_trust(u, r, &alpha[r], &beta[r]);
    }
    int lab[CAUSAL_MAX_RANK];
    for (uint32_t j = 0; j < k; j++) {
        lab[j] = labels[j] < 0 ? 0 : (labels[j] > CAUSAL_MAX_LABEL ? CAUSAL_MAX_LABEL : labels[j]);
    }
    user_clicks(u, rel, exam, alpha, beta, lab, k, rng, clicks);
}

/* The queries of c with a candidate of label > 0, as a new array of *n_out indices in
 * *out (caller frees): the ULTR protocol (METHODS.md section 5) drops the others, so every
 * session can carry a relevance-driven click. CW_EINVAL when there is none. */
static int judged_queries(const causal_simcoll *c, size_t **out, size_t *n_out, cw_err *err)
{
    size_t *list = malloc(c->n_queries * sizeof *list), n = 0;
    if (!list) {
        return cw_err_set(err, CW_ENOMEM, "out of memory for the query list");
    }
    for (size_t q = 0; q < c->n_queries; q++) {
        bool has = false;
        for (uint32_t i = 0; i < c->q_n[q] && !has; i++) {
            has = c->c_label[c->q_off[q] + i] > 0;
        }
        if (has) {
            list[n++] = q;
        }
    }
    if (n == 0) {
        free(list);
        return cw_err_set(err, CW_EINVAL, "no query of the collection has a relevant candidate");
    }
    *out = list;
    *n_out = n;
    return CW_OK;
}

int causal_simulate(const causal_simcoll *c, const causal_sim_opts *o, cw_err *err)
{
    const causal_sim_policy *pol = &o->policy;
    const causal_user *u = &o->user;
    if (c->n_queries == 0) {
        return cw_err_set(err, CW_EINVAL, "the collection has no queries");
    }
    if (pol->k == 0 || pol->k > CAUSAL_MAX_RANK) {
        return cw_err_set(err, CW_EINVAL, "k = %u (must be 1..%u)", pol->k, CAUSAL_MAX_RANK);
    }
    if (o->n_rankers == 0 || o->n_rankers > c->n_rankers) {
        return cw_err_set(err, CW_EINVAL, "%u rankers requested, the collection has %u",
                          o->n_rankers, c->n_rankers);
    }
    if (pol->kind == CAUSAL_POLICY_PL && !(pol->pl_temperature > 0)) {
        return cw_err_set(err, CW_EINVAL, "Plackett-Luce temperature must be > 0");
    }
    if (pol->kind == CAUSAL_POLICY_SWAP && !(pol->swap_share >= 0 && pol->swap_share <= 1)) {
        return cw_err_set(err, CW_EINVAL, "swap share must be in [0, 1]");
    }
    if (u->ymax < c->ymax) {
        return cw_err_set(err, CW_EINVAL,
                          "the user's ymax %d is below the collection's highest label %d", u->ymax,
                          c->ymax);
    }
    causal_sessions *s = c->s;
    uint32_t K = pol->k;
    double rel[CAUSAL_MAX_LABEL + 1], exam[CAUSAL_MAX_RANK + 1], alpha[CAUSAL_MAX_RANK + 1],
        beta[CAUSAL_MAX_RANK + 1];
    for (int y = 0; y <= CAUSAL_MAX_LABEL; y++) {
        rel[y] = causal_user_relevance(u, y);
    }
    for (uint32_t k = 1; k <= K; k++) {
        exam[k] = theta_at(u, k);
        causal_user_trust(u, k, &alpha[k], &beta[k]);
    }
    size_t *qlist = NULL, n_qlist = 0;
    if (o->skip_unjudged) {
        int rc0 = judged_queries(c, &qlist, &n_qlist, err);
        if (rc0 != CW_OK) {
            return rc0;
        }
    }
    size_t max_n = 0;
    for (size_t q = 0; q < c->n_queries; q++) {
        max_n = c->q_n[q] > max_n ? c->q_n[q] : max_n;
    }
    uint32_t *loc = malloc(max_n * sizeof *loc);
    double *keys = malloc((max_n + 1) * sizeof *keys);
    double *ex = malloc((max_n + 1) * sizeof *ex);
    uint32_t *cnt = malloc((size_t)max_n * K * sizeof *cnt);
    if (!loc || !keys || !ex || !cnt ||
        causal_sessions_reserve(s, o->n_sessions, o->n_sessions * K, err) != CW_OK) {
        free(qlist);
        free(loc);
        free(keys);
        free(ex);
        free(cnt);
        return cw_err_set(err, CW_ENOMEM, "out of memory for %llu sessions",
                          (unsigned long long)o->n_sessions);
    }
    uint32_t pairs[CAUSAL_MAX_RANK];
    uint16_t pos[CAUSAL_MAX_RANK];
    uint8_t clicks[CAUSAL_MAX_RANK];
    float props[CAUSAL_MAX_RANK], scores[CAUSAL_MAX_RANK];
    cw_rng rng;
    cw_rng_seed(&rng, o->seed);
    int rc = CW_OK;
    for (uint64_t i = 0; i < o->n_sessions; i++) {
        if ((i & 0xffff) == 0 && i > 0) {
            cw_progress_report(&o->progress, "simulate", i, o->n_sessions);
            if (cw_interrupted()) {
                rc = cw_err_set(err, CW_EINTR, "interrupted after %llu sessions",
                                (unsigned long long)i);
                break;
            }
        }
        size_t qi =
            qlist ? qlist[cw_rng_below(&rng, n_qlist)] : (size_t)cw_rng_below(&rng, c->n_queries);
        uint32_t r = o->n_rankers > 1 ? (uint32_t)cw_rng_below(&rng, o->n_rankers) : 0;
        size_t off = c->q_off[qi];
        uint32_t n = c->q_n[qi];
        uint32_t k = K < n ? K : n;
        const double *sc = c->c_score[r] + off;
        const uint32_t *ord = c->c_order[r] + off;
        double logp = 0;
        uint32_t param = 0;
        for (uint32_t j = 0; j < k; j++) {
            loc[j] = ord[j];
            props[j] = 1.0f;
        }
        switch (pol->kind) {
        case CAUSAL_POLICY_RANDTOP: {
            uint32_t m = pol->randtop_n && pol->randtop_n < k ? pol->randtop_n : k;
            for (uint32_t j = m - 1; j > 0; j--) {
                uint32_t t = (uint32_t)cw_rng_below(&rng, (uint64_t)j + 1), tmp = loc[j];
                loc[j] = loc[t];
                loc[t] = tmp;
            }
            for (uint32_t j = 0; j < m; j++) {
                props[j] = 1.0f / (float)m;
            }
            logp = -lgamma((double)m + 1);
            param = m;
            break;
        }
        case CAUSAL_POLICY_SWAP: {
            /* With probability share swap rank 1 with a uniform rank in 1..k (1 = none):
             * P(top doc at j>1) = share/k; P(unswapped) = 1 - share + share/k. */
            double sh = pol->swap_share;
            uint32_t j = 1;
            if (cw_rng_uniform(&rng) < sh) {
                j = 1 + (uint32_t)cw_rng_below(&rng, k);
            }
            double p_moved = sh / k, p_none = 1 - sh + sh / k;
            if (j > 1) {
                uint32_t tmp = loc[0];
                loc[0] = loc[j - 1];
                loc[j - 1] = tmp;
            }
            for (uint32_t t = 0; t < k; t++) {
                /* a document at rank t+1 other than the swapped pair stays put unless it
                 * was the swap partner: P = 1 - share/k */
                props[t] = (float)(t == 0 || t == j - 1 ? (j > 1 ? p_moved : p_none) : 1 - sh / k);
            }
            logp = log(j > 1 ? p_moved : p_none);
            param = j;
            break;
        }
        case CAUSAL_POLICY_PL: {
            k = pl_sample(&rng, sc, n, pol->pl_temperature, k, loc, keys);
            logp = pl_logp(sc, n, pol->pl_temperature, loc, k, ex);
            if (pol->pl_mc_samples > 0) {
                /* Monte-Carlo marginals pi(d@j) (METHODS.md section 6): M fresh samples. */
                memset(cnt, 0, (size_t)n * k * sizeof *cnt);
                uint32_t tmp[CAUSAL_MAX_RANK];
                for (uint32_t m = 0; m < pol->pl_mc_samples; m++) {
                    uint32_t kk = pl_sample(&rng, sc, n, pol->pl_temperature, k, tmp, keys);
                    for (uint32_t t = 0; t < kk; t++) {
                        cnt[(size_t)tmp[t] * k + t]++;
                    }
                }
                for (uint32_t t = 0; t < k; t++) {
                    props[t] = (float)cnt[(size_t)loc[t] * k + t] / (float)pol->pl_mc_samples;
                }
            } else {
                for (uint32_t t = 0; t < k; t++) {
                    props[t] = NAN;
                }
            }
            break;
        }
        default: break;
        }
        int labels[CAUSAL_MAX_RANK];
        for (uint32_t j = 0; j < k; j++) {
            labels[j] = c->c_label[off + loc[j]];
            pairs[j] = c->c_pair[off + loc[j]];
            pos[j] = (uint16_t)(j + 1);
            scores[j] = (float)sc[loc[j]];
        }
        user_clicks(u, rel, exam, alpha, beta, labels, k, &rng, clicks);
        causal_session_in in = {c->q_id[qi], c->ranker_ids[r], pol->kind, param, logp, k, pairs,
                                pos,         clicks,           props,     scores};
        if ((rc = causal_sessions_append(s, &in, err)) != CW_OK) {
            break;
        }
    }
    if (rc == CW_OK) {
        cw_progress_report(&o->progress, "simulate", o->n_sessions, o->n_sessions);
    }
    free(qlist);
    free(loc);
    free(keys);
    free(ex);
    free(cnt);
    return rc;
}

/* ---- builders from real collections -------------------------------------------- */

int causal_simcoll_letor(causal_sessions *s, const rank_letor *d, const double *const *scores,
                         uint32_t n_rankers, causal_simcoll **out, cw_err *err)
{
    size_t nf = d->n_features, n_max = 0;
    for (size_t q = 0; q < d->n_queries; q++) {
        size_t n = d->q_begin[q + 1] - d->q_begin[q];
        n_max = n > n_max ? n : n_max;
    }
    if (n_max > CAUSAL_SIM_MAX_CANDIDATES) {
        return cw_err_set(err, CW_ELIMIT, "a LETOR query has %zu rows (limit %u)", n_max,
                          CAUSAL_SIM_MAX_CANDIDATES);
    }
    causal_simcoll *c = NULL;
    float *feat = malloc((n_max ? n_max : 1) * (nf ? nf : 1) * sizeof *feat);
    int *labels = malloc((n_max ? n_max : 1) * sizeof *labels);
    char(*id_buf)[40] = malloc((n_max ? n_max : 1) * sizeof *id_buf);
    const char **ids = malloc((n_max ? n_max : 1) * sizeof *ids);
    int rc = CW_OK;
    if (!feat || !labels || !id_buf || !ids) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory reading LETOR into the simulator");
        goto done;
    }
    rc = causal_sessions_set_n_features(s, nf, err);
    rc = rc ? rc : causal_simcoll_new(s, n_rankers, NULL, &c, err);
    for (size_t q = 0; rc == CW_OK && q < d->n_queries; q++) {
        size_t b = d->q_begin[q], n = d->q_begin[q + 1] - b;
        for (size_t i = 0; i < n; i++) {
            double y = d->y[b + i];
            if (!(y >= 0 && y <= CAUSAL_MAX_LABEL)) {
                rc = cw_err_set(err, CW_EINVAL, "qid %s row %zu: label %g outside 0..%d", d->qid[q],
                                b + i + 1, y, CAUSAL_MAX_LABEL);
                goto done;
            }
            /* LETOR doc ids may repeat across queries; the row number is unique. */
            snprintf(id_buf[i], sizeof id_buf[i], "%s#%zu", d->doc_id[b + i] ? "" : "row", b + i);
            if (d->doc_id[b + i]) {
                snprintf(id_buf[i], sizeof id_buf[i], "%.30s", d->doc_id[b + i]);
            }
            ids[i] = id_buf[i];
            labels[i] = (int)(y + 0.5);
            for (size_t j = 0; j < nf; j++) {
                feat[i * nf + j] = (float)d->x[(b + i) * nf + j];
            }
        }
        const double *sc[CAUSAL_SIM_MAX_RANKERS];
        for (uint32_t r = 0; r < n_rankers; r++) {
            sc[r] = scores[r] + b;
        }
        rc = causal_simcoll_add(c, d->qid[q], n, ids, labels, sc, feat, err);
    }
done:
    free(feat);
    free(labels);
    free(id_buf);
    free(ids);
    if (rc != CW_OK) {
        causal_simcoll_free(c);
        return rc;
    }
    *out = c;
    return CW_OK;
}

/* qrels "qid 0 docid rel" in memory, sorted for binary search. */
typedef struct qrel {
    char *qid, *doc;
    int rel;
} qrel;

static int cmp_qrel(const void *a, const void *b)
{
    const qrel *x = a, *y = b;
    int c = strcmp(x->qid, y->qid);
    return c ? c : strcmp(x->doc, y->doc);
}

static void free_qrels(qrel *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(q[i].qid);
        free(q[i].doc);
    }
    free(q);
}

static int read_qrels(const char *path, qrel **out, size_t *n_out, cw_err *err)
{
    cw_lines *lr = NULL;
    int rc = cw_lines_open(path, &lr, err);
    if (rc != CW_OK) {
        return rc;
    }
    qrel *q = NULL;
    size_t n = 0, cap = 0;
    const char *line;
    size_t len;
    long ln;
    while ((rc = cw_lines_next(lr, &line, &len, &ln, err)) == 1) {
        char qid[256], it[64], doc[256];
        int rel;
        if (len == 0) {
            continue;
        }
        if (sscanf(line, "%255s %63s %255s %d", qid, it, doc, &rel) != 4) {
            rc = cw_err_set(err, CW_EPARSE, "%s:%ld: expected 'qid 0 docid rel'", path, ln);
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            qrel *nq = realloc(q, cap * sizeof *q);
            if (!nq) {
                rc = cw_err_set(err, CW_ENOMEM, "out of memory reading %s", path);
                break;
            }
            q = nq;
        }
        q[n].qid = strdup(qid);
        q[n].doc = strdup(doc);
        q[n].rel = rel < 0 ? 0 : (rel > CAUSAL_MAX_LABEL ? CAUSAL_MAX_LABEL : rel);
        if (!q[n].qid || !q[n].doc) {
            free(q[n].qid);
            free(q[n].doc);
            rc = cw_err_set(err, CW_ENOMEM, "out of memory reading %s", path);
            break;
        }
        n++;
    }
    cw_lines_close(lr);
    if (rc < 0) {
        free_qrels(q, n);
        return rc;
    }
    qsort(q, n, sizeof *q, cmp_qrel);
    *out = q;
    *n_out = n;
    return CW_OK;
}

struct causal_qrels {
    qrel *q;
    size_t n;
};

int causal_qrels_read(const char *path, causal_qrels **out, cw_err *err)
{
    causal_qrels *r = calloc(1, sizeof *r);
    if (!r) {
        return cw_err_set(err, CW_ENOMEM, "out of memory reading %s", path);
    }
    int rc = read_qrels(path, &r->q, &r->n, err);
    if (rc != CW_OK) {
        free(r);
        return rc;
    }
    *out = r;
    return CW_OK;
}

int causal_qrels_label(const causal_qrels *r, const char *qid, const char *doc)
{
    qrel key = {(char *)qid, (char *)doc, 0};
    qrel *f = r->n ? bsearch(&key, r->q, r->n, sizeof *r->q, cmp_qrel) : NULL;
    return f ? f->rel : 0;
}

void causal_qrels_free(causal_qrels *r)
{
    if (r) {
        free_qrels(r->q, r->n);
        free(r);
    }
}

int causal_simcoll_text(causal_sessions *s, const idx_index *ix, const char *queries_tsv,
                        const char *qrels_path, uint32_t depth, uint32_t n_rankers,
                        bool with_features, causal_simcoll **out, size_t *n_skipped, cw_err *err)
{
    if (depth == 0 || depth > CAUSAL_SIM_MAX_CANDIDATES || depth > IDX_MAX_K) {
        return cw_err_set(err, CW_EINVAL, "depth %u (must be 1..%u)", depth, IDX_MAX_K);
    }
    qrel *qr = NULL;
    size_t n_qr = 0, skipped = 0;
    cw_lines *lr = NULL;
    idx_analyzer *a = NULL;
    rank_features *fx = NULL;
    causal_simcoll *c = NULL;
    idx_hit *hits = malloc(depth * sizeof *hits);
    uint32_t *docids = malloc(depth * sizeof *docids);
    int *labels = malloc(depth * sizeof *labels);
    double *sc = malloc(depth * sizeof *sc), *fd = NULL;
    float *ff = NULL;
    char(*idb)[IDX_MAX_ID_BYTES + 1] = malloc(depth * sizeof *idb);
    const char **ids = malloc(depth * sizeof *ids);
    int rc = CW_OK;
    if (!hits || !docids || !labels || !sc || !idb || !ids) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory building a text collection");
        goto done;
    }
    if ((rc = read_qrels(qrels_path, &qr, &n_qr, err)) != CW_OK ||
        (rc = idx_index_analyzer(ix, &a, err)) != CW_OK ||
        (rc = cw_lines_open(queries_tsv, &lr, err)) != CW_OK) {
        goto done;
    }
    size_t nf = 0;
    if (with_features) {
        if ((rc = rank_features_new(ix, NULL, 0, NULL, 0, &fx, err)) != CW_OK) {
            goto done;
        }
        nf = rank_features_n(fx);
        fd = malloc(depth * nf * sizeof *fd);
        ff = malloc(depth * nf * sizeof *ff);
        if (!fd || !ff) {
            rc = cw_err_set(err, CW_ENOMEM, "out of memory for features");
            goto done;
        }
        if ((rc = causal_sessions_set_n_features(s, nf, err)) != CW_OK) {
            goto done;
        }
    }
    if ((rc = causal_simcoll_new(s, n_rankers,
                                 n_rankers == 1 ? (const char *const[]){"bm25"} : NULL, &c, err)) !=
        CW_OK) {
        goto done;
    }
    const char *line;
    size_t len;
    long ln;
    idx_search_opts so = idx_search_opts_default();
    so.k = depth;
    while ((rc = cw_lines_next(lr, &line, &len, &ln, err)) == 1) {
        const char *tab = memchr(line, '\t', len);
        if (!tab) {
            rc = cw_err_set(err, CW_EPARSE, "%s:%ld: expected 'qid<TAB>query'", queries_tsv, ln);
            goto done;
        }
        char qid[256];
        snprintf(qid, sizeof qid, "%.*s", (int)(tab - line), line);
        idx_query *q = NULL;
        size_t nh = 0;
        if ((rc = idx_query_parse(ix, a, tab + 1, len - (size_t)(tab + 1 - line), &q, err)) !=
            CW_OK) {
            cw_err_prefix(err, "%s:%ld: ", queries_tsv, ln);
            goto done;
        }
        rc = idx_search(ix, q, &so, hits, &nh, NULL, err);
        for (size_t i = 0; rc == CW_OK && i < nh; i++) {
            idx_doc dd;
            docids[i] = hits[i].doc;
            sc[i] = hits[i].score;
            rc = idx_doc_get(ix, hits[i].doc, &dd, err);
            if (rc == CW_OK) {
                snprintf(idb[i], sizeof idb[i], "%.*s", (int)dd.id_len, dd.id);
                ids[i] = idb[i];
                qrel key = {qid, idb[i], 0};
                qrel *f = n_qr ? bsearch(&key, qr, n_qr, sizeof *qr, cmp_qrel) : NULL;
                labels[i] = f ? f->rel : 0;
            }
        }
        if (rc == CW_OK && nh > 0 && fx) {
            rc = rank_features_extract(fx, a, q, docids, nh, fd, err);
            for (size_t i = 0; rc == CW_OK && i < nh * nf; i++) {
                ff[i] = (float)fd[i];
            }
        }
        idx_query_free(q);
        if (rc != CW_OK) {
            goto done;
        }
        if (nh == 0) {
            skipped++;
            continue;
        }
        const double *rows[CAUSAL_SIM_MAX_RANKERS];
        for (uint32_t r = 0; r < n_rankers; r++) {
            rows[r] = sc; /* every column starts as BM25; causal_simcoll_perturb differs them */
        }
        if ((rc = causal_simcoll_add(c, qid, nh, ids, labels, rows, fx ? ff : NULL, err)) !=
            CW_OK) {
            goto done;
        }
    }
    if (rc == 0 && c->n_queries == 0) {
        rc = cw_err_set(err, CW_EINVAL, "%s: no query retrieved any document", queries_tsv);
    }
done:
    cw_lines_close(lr);
    idx_analyzer_free(a);
    rank_features_free(fx);
    free_qrels(qr, n_qr);
    free(hits);
    free(docids);
    free(labels);
    free(sc);
    free(fd);
    free(ff);
    free(idb);
    free(ids);
    if (rc < 0) {
        causal_simcoll_free(c);
        return rc;
    }
    if (n_skipped) {
        *n_skipped = skipped;
    }
    *out = c;
    return CW_OK;
}
