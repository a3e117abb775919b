/* causal/pl.c: stochastic ranking policies over one candidate list: Plackett-Luce
 * (Gumbel top-k sampling, exact prefix log-probabilities, exact and Monte-Carlo
 * marginals), RandTop-n and epsilon-greedy. The server samples its logged rankings here;
 * causal/ope.c reads the same probabilities back for off-policy evaluation. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "causal/causal.h"

typedef struct keyed {
    double key;
    uint32_t idx;
} keyed;

/* Descending key, then ascending index: the deterministic order of the header. */
static int keyed_cmp(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->key > y->key) {
        return -1;
    }
    if (x->key < y->key) {
        return 1;
    }
    return (x->idx > y->idx) - (x->idx < y->idx);
}

int causal_rpol_parse(const char *spec, causal_rpol *out, cw_err *err)
{
    causal_rpol p = {CAUSAL_RPOL_DET, 1.0, 1, 0.0};
    if (!spec) {
        return cw_err_set(err, CW_EPARSE, "policy: empty specification");
    }
    const char *colon = strchr(spec, ':');
    size_t name_len = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *arg = colon ? colon + 1 : NULL;
    char *end = NULL;
    if (name_len == 3 && strncmp(spec, "det", 3) == 0 && !arg) {
        p.kind = CAUSAL_RPOL_DET;
    } else if (name_len == 2 && strncmp(spec, "pl", 2) == 0 && arg) {
        p.kind = CAUSAL_RPOL_PL;
        errno = 0;
        p.tau = strtod(arg, &end);
        if (errno || end == arg || *end || !isfinite(p.tau) || p.tau <= 0) {
            return cw_err_set(err, CW_EPARSE, "policy \"%s\": temperature must be a number > 0",
                              spec);
        }
    } else if (name_len == 7 && strncmp(spec, "randtop", 7) == 0 && arg) {
        p.kind = CAUSAL_RPOL_RANDTOPN;
        errno = 0;
        unsigned long v = strtoul(arg, &end, 10);
        if (errno || end == arg || *end || *arg == '-' || v < 1 || v > CAUSAL_PL_MAX_ITEMS) {
            return cw_err_set(err, CW_EPARSE, "policy \"%s\": n must be a whole number in [1, %u]",
                              spec, CAUSAL_PL_MAX_ITEMS);
        }
        p.top_n = (uint32_t)v;
    } else if (name_len == 7 && strncmp(spec, "egreedy", 7) == 0 && arg) {
        p.kind = CAUSAL_RPOL_EPSGREEDY;
        errno = 0;
        p.epsilon = strtod(arg, &end);
        if (errno || end == arg || *end || !(p.epsilon >= 0 && p.epsilon <= 1)) {
            return cw_err_set(err, CW_EPARSE, "policy \"%s\": epsilon must be in [0, 1]", spec);
        }
    } else {
        return cw_err_set(err, CW_EPARSE,
                          "policy \"%s\": expected det, pl:TAU, randtop:N or egreedy:EPS", spec);
    }
    *out = p;
    return CW_OK;
}

void causal_rpol_format(const causal_rpol *pol, char *buf, size_t buf_bytes)
{
    if (!buf || buf_bytes == 0) {
        return;
    }
    switch (pol->kind) {
    case CAUSAL_RPOL_DET: snprintf(buf, buf_bytes, "det"); break;
    case CAUSAL_RPOL_PL: snprintf(buf, buf_bytes, "pl:%g", pol->tau); break;
    case CAUSAL_RPOL_RANDTOPN: snprintf(buf, buf_bytes, "randtop:%u", pol->top_n); break;
    case CAUSAL_RPOL_EPSGREEDY: snprintf(buf, buf_bytes, "egreedy:%g", pol->epsilon); break;
    default: snprintf(buf, buf_bytes, "?"); break;
    }
}

int causal_rpol_check(const causal_rpol *pol, const double *scores, uint32_t n, uint32_t k,
                      cw_err *err)
{
    if (n > CAUSAL_PL_MAX_ITEMS) {
        return cw_err_set(err, CW_ELIMIT, "policy: %u candidates, limit %u", n,
                          CAUSAL_PL_MAX_ITEMS);
    }
    if (n == 0 || k == 0 || k > n) {
        return cw_err_set(err, CW_EINVAL, "policy: need 1 <= k <= n, got k = %u, n = %u", k, n);
    }
    switch (pol->kind) {
    case CAUSAL_RPOL_DET: break;
    case CAUSAL_RPOL_PL:
        if (!isfinite(pol->tau) || pol->tau <= 0) {
            return cw_err_set(err, CW_EINVAL, "policy: PL temperature must be > 0, got %g",
                              pol->tau);
        }
        break;
    case CAUSAL_RPOL_RANDTOPN:
        if (pol->top_n < 1) {
            return cw_err_set(err, CW_EINVAL, "policy: RandTop-n needs n >= 1");
        }
        break;
    case CAUSAL_RPOL_EPSGREEDY:
        if (!(pol->epsilon >= 0 && pol->epsilon <= 1)) {
            return cw_err_set(err, CW_EINVAL, "policy: epsilon must be in [0, 1], got %g",
                              pol->epsilon);
        }
        break;
    default: return cw_err_set(err, CW_EINVAL, "policy: unknown kind %d", (int)pol->kind);
    }
    for (uint32_t d = 0; d < n; d++) {
        if (!isfinite(scores[d])) {
            return cw_err_set(err, CW_EINVAL, "policy: score of candidate %u is not finite", d);
        }
    }
    return CW_OK;
}

/* The deterministic order: order[r] = candidate at rank r+1; rank_of[d] = its rank (0-based).
 * keys must hold n entries. */
static void det_order(const double *scores, uint32_t n, keyed *keys, uint32_t *order,
                      uint32_t *rank_of)
{
    for (uint32_t d = 0; d < n; d++) {
        keys[d].key = scores[d];
        keys[d].idx = d;
    }
    qsort(keys, n, sizeof *keys, keyed_cmp);
    for (uint32_t r = 0; r < n; r++) {
        if (order) {
            order[r] = keys[r].idx;
        }
        if (rank_of) {
            rank_of[keys[r].idx] = r;
        }
    }
}

/* Scratch for one list: keys plus two index arrays, one allocation. */
typedef struct scratch {
    keyed *keys;
    uint32_t *order;
    uint32_t *rank_of;
} scratch;

static int scratch_init(scratch *s, uint32_t n, cw_err *err)
{
    size_t bytes = (size_t)n * (sizeof(keyed) + 2 * sizeof(uint32_t));
    void *mem = malloc(bytes);
    if (!mem) {
        return cw_err_set(err, CW_ENOMEM, "policy: out of memory for %u candidates", n);
    }
    s->keys = mem;
    s->order = (uint32_t *)(s->keys + n);
    s->rank_of = s->order + n;
    return CW_OK;
}

static void scratch_fini(scratch *s)
{
    free(s->keys);
    s->keys = NULL;
}

/* One sample with scratch already allocated (the MC loop reuses it). */
static void sample_into(const causal_rpol *pol, const double *scores, uint32_t n, uint32_t k,
                        cw_rng *rng, scratch *s, uint32_t *ranking)
{
    switch (pol->kind) {
    case CAUSAL_RPOL_PL:
        /* Gumbel top-k (Kool et al. 2019, eq. 2): the k largest perturbed log-weights are
         * a PL sample without replacement, in order. */
        for (uint32_t d = 0; d < n; d++) {
            s->keys[d].key = scores[d] / pol->tau + cw_rng_gumbel(rng);
            s->keys[d].idx = d;
        }
        qsort(s->keys, n, sizeof *s->keys, keyed_cmp);
        for (uint32_t j = 0; j < k; j++) {
            ranking[j] = s->keys[j].idx;
        }
        return;
    case CAUSAL_RPOL_RANDTOPN: {
        det_order(scores, n, s->keys, s->order, NULL);
        uint32_t m = CW_MIN(pol->top_n, n);
        cw_rng_shuffle(rng, s->order, m, sizeof *s->order);
        memcpy(ranking, s->order, (size_t)k * sizeof *ranking);
        return;
    }
    case CAUSAL_RPOL_EPSGREEDY:
        det_order(scores, n, s->keys, s->order, NULL);
        if (cw_rng_bernoulli(rng, pol->epsilon)) {
            cw_rng_shuffle(rng, s->order, n, sizeof *s->order);
        }
        memcpy(ranking, s->order, (size_t)k * sizeof *ranking);
        return;
    case CAUSAL_RPOL_DET:
    default:
        det_order(scores, n, s->keys, s->order, NULL);
        memcpy(ranking, s->order, (size_t)k * sizeof *ranking);
        return;
    }
}

int causal_rpol_sample(const causal_rpol *pol, const double *scores, uint32_t n, uint32_t k,
                       cw_rng *rng, uint32_t *ranking, cw_err *err)
{
    int rc = causal_rpol_check(pol, scores, n, k, err);
    if (rc) {
        return rc;
    }
    scratch s = {0};
    if ((rc = scratch_init(&s, n, err))) {
        return rc;
    }
    sample_into(pol, scores, n, k, rng, &s, ranking);
    scratch_fini(&s);
    return CW_OK;
}

/* Validates a ranking prefix of length len: indices < n and distinct. used[] (n bytes,
 * zeroed by the caller) marks the members on return. */
static int check_ranking(const uint32_t *ranking, uint32_t len, uint32_t n, unsigned char *used,
                         cw_err *err)
{
    for (uint32_t j = 0; j < len; j++) {
        if (ranking[j] >= n) {
            return cw_err_set(err, CW_EINVAL, "policy: slot %u holds candidate %u, only %u exist",
                              j + 1, ranking[j], n);
        }
        if (used[ranking[j]]) {
            return cw_err_set(err, CW_EINVAL, "policy: candidate %u repeated at slot %u",
                              ranking[j], j + 1);
        }
        used[ranking[j]] = 1;
    }
    return CW_OK;
}

/* log of the number of ordered selections: log(m (m-1) ... (m-j+1)), the inverse of the
 * probability of one ordered prefix of length j under a uniform permutation of m items. */
static double log_falling(uint32_t m, uint32_t j)
{
    double s = 0;
    for (uint32_t i = 0; i < j; i++) {
        s += log((double)(m - i));
    }
    return s;
}

/* PL prefix log-probabilities (METHODS.md section 6, first K factors of pi(y|q)):
 * log pi(y_1..j) = sum_{i<=j} [ s_{y_i}/tau - logsumexp_{d not in y_1..i-1} s_d/tau ].
 * The normaliser shrinks as items are placed; it is kept as a sum of exp(s/tau - max) and
 * recomputed from scratch when cancellation could have eaten more than 1e-6 of it. */
static void pl_log_prefix(const double *scores, uint32_t n, double tau, const uint32_t *ranking,
                          uint32_t k, const unsigned char *placed_init, unsigned char *placed,
                          double *log_prefix)
{
    double mx = -INFINITY;
    for (uint32_t d = 0; d < n; d++) {
        if (!placed_init[d] && scores[d] / tau > mx) {
            mx = scores[d] / tau;
        }
    }
    memcpy(placed, placed_init, n);
    double z0 = 0;
    for (uint32_t d = 0; d < n; d++) {
        if (!placed[d]) {
            z0 += exp(scores[d] / tau - mx);
        }
    }
    double z = z0, acc = 0;
    for (uint32_t j = 0; j < k; j++) {
        uint32_t y = ranking[j];
        double e = exp(scores[y] / tau - mx);
        acc += (scores[y] / tau - mx) - log(z);
        log_prefix[j] = acc;
        placed[y] = 1;
        z -= e;
        if (z < 1e-6 * z0) {
            z = 0;
            for (uint32_t d = 0; d < n; d++) {
                if (!placed[d]) {
                    z += exp(scores[d] / tau - mx);
                }
            }
            z0 = z;
        }
    }
}

int causal_rpol_log_prob(const causal_rpol *pol, const double *scores, uint32_t n,
                         const uint32_t *ranking, uint32_t k, double *log_prefix, cw_err *err)
{
    int rc = causal_rpol_check(pol, scores, n, k, err);
    if (rc) {
        return rc;
    }
    unsigned char *used = calloc(2 * (size_t)n, 1);
    scratch s = {0};
    if (!used || (rc = scratch_init(&s, n, err))) {
        free(used);
        return rc ? rc : cw_err_set(err, CW_ENOMEM, "policy: out of memory");
    }
    if ((rc = check_ranking(ranking, k, n, used, err))) {
        goto done;
    }
    memset(used, 0, n);
    switch (pol->kind) {
    case CAUSAL_RPOL_PL:
        pl_log_prefix(scores, n, pol->tau, ranking, k, used, used + n, log_prefix);
        break;
    case CAUSAL_RPOL_DET: {
        det_order(scores, n, s.keys, s.order, NULL);
        double lp = 0;
        for (uint32_t j = 0; j < k; j++) {
            if (ranking[j] != s.order[j]) {
                lp = -INFINITY;
            }
            log_prefix[j] = lp;
        }
        break;
    }
    case CAUSAL_RPOL_RANDTOPN: {
        /* Slots 1..m hold a uniform permutation of the top-m set, m = min(n, top_n);
         * slots after m follow the deterministic order. */
        det_order(scores, n, s.keys, s.order, s.rank_of);
        uint32_t m = CW_MIN(pol->top_n, n);
        double lp = 0;
        for (uint32_t j = 0; j < k; j++) {
            uint32_t y = ranking[j];
            if (j < m) {
                lp = s.rank_of[y] < m ? lp - log((double)(m - j)) : -INFINITY;
            } else if (y != s.order[j]) {
                lp = -INFINITY;
            }
            log_prefix[j] = lp;
        }
        break;
    }
    case CAUSAL_RPOL_EPSGREEDY: {
        /* Mixture: (1 - eps) 1[prefix = det prefix] + eps / (n (n-1) ... (n-j)). */
        det_order(scores, n, s.keys, s.order, NULL);
        bool is_det = true;
        for (uint32_t j = 0; j < k; j++) {
            is_det = is_det && ranking[j] == s.order[j];
            double p_unif = pol->epsilon * exp(-log_falling(n, j + 1));
            double p = p_unif + (is_det ? 1 - pol->epsilon : 0);
            log_prefix[j] = p > 0 ? log(p) : -INFINITY;
        }
        break;
    }
    }
done:
    scratch_fini(&s);
    free(used);
    return rc;
}

int causal_rpol_next_probs(const causal_rpol *pol, const double *scores, uint32_t n,
                           const uint32_t *prefix, uint32_t j, double *probs, cw_err *err)
{
    int rc = causal_rpol_check(pol, scores, n, j + 1 <= n ? j + 1 : n + 1, err);
    if (rc) {
        return rc;
    }
    unsigned char *used = calloc(n, 1);
    uint32_t *rk = malloc(((size_t)j + 1) * sizeof *rk);
    double *lp = malloc(((size_t)j + 1) * sizeof *lp);
    if (!used || !rk || !lp) {
        rc = cw_err_set(err, CW_ENOMEM, "policy: out of memory");
        goto done;
    }
    if ((rc = check_ranking(prefix, j, n, used, err))) {
        goto done;
    }
    if (pol->kind == CAUSAL_RPOL_PL) {
        /* PL's conditional is the softmax over the remaining candidates. */
        double mx = -INFINITY, z = 0;
        for (uint32_t d = 0; d < n; d++) {
            if (!used[d] && scores[d] / pol->tau > mx) {
                mx = scores[d] / pol->tau;
            }
        }
        for (uint32_t d = 0; d < n; d++) {
            probs[d] = used[d] ? 0 : exp(scores[d] / pol->tau - mx);
            z += probs[d];
        }
        for (uint32_t d = 0; d < n; d++) {
            probs[d] /= z;
        }
        goto done;
    }
    /* Other policies: pi(d | prefix) = pi(prefix, d) / pi(prefix) from exact prefixes. */
    memcpy(rk, prefix, (size_t)j * sizeof *rk);
    double log_base = 0;
    if (j > 0) {
        if ((rc = causal_rpol_log_prob(pol, scores, n, rk, j, lp, err))) {
            goto done;
        }
        log_base = lp[j - 1];
        if (log_base == -INFINITY) {
            rc = cw_err_set(err, CW_EINVAL,
                            "policy: the prefix has probability 0, its continuation is undefined");
            goto done;
        }
    }
    for (uint32_t d = 0; d < n; d++) {
        if (used[d]) {
            probs[d] = 0;
            continue;
        }
        rk[j] = d;
        if ((rc = causal_rpol_log_prob(pol, scores, n, rk, j + 1, lp, err))) {
            goto done;
        }
        probs[d] = exp(lp[j] - log_base);
    }
done:
    free(used);
    free(rk);
    free(lp);
    return rc;
}

/* Exact PL marginals by dynamic programming over placed sets (n <= 20):
 * P(S) = probability that the first |S| slots hold exactly the set S, in any order;
 * P(S + d) += P(S) w_d / W(complement of S), and pi(d @ |S|+1) += the same term.
 * Marginalising the order of the prefix is exact because PL's next choice depends on the
 * set of placed items only (Luce's choice axiom). */
static int pl_marginals_exact(const double *scores, uint32_t n, uint32_t k, double tau,
                              double *marg, cw_err *err)
{
    size_t n_sets = (size_t)1 << n;
    double *p = calloc(n_sets, sizeof *p);
    double *w = malloc((size_t)n * sizeof *w);
    if (!p || !w) {
        free(p);
        free(w);
        return cw_err_set(err, CW_ENOMEM, "policy: out of memory for 2^%u PL states", n);
    }
    double mx = -INFINITY, wsum = 0;
    for (uint32_t d = 0; d < n; d++) {
        mx = CW_MAX(mx, scores[d] / tau);
    }
    for (uint32_t d = 0; d < n; d++) {
        w[d] = exp(scores[d] / tau - mx);
        wsum += w[d];
    }
    memset(marg, 0, (size_t)n * k * sizeof *marg);
    p[0] = 1;
    /* Sets in increasing numeric order visit every subset after all its subsets. */
    for (size_t set = 0; set < n_sets; set++) {
        if (p[set] == 0) {
            continue;
        }
        uint32_t size = (uint32_t)__builtin_popcountll((unsigned long long)set);
        if (size >= k) {
            continue;
        }
        double rest = wsum;
        for (uint32_t d = 0; d < n; d++) {
            if (set >> d & 1) {
                rest -= w[d];
            }
        }
        if (rest < 1e-9 * wsum) {
            /* Recompute rather than trust a cancelled difference. */
            rest = 0;
            for (uint32_t d = 0; d < n; d++) {
                if (!(set >> d & 1)) {
                    rest += w[d];
                }
            }
        }
        for (uint32_t d = 0; d < n; d++) {
            if (set >> d & 1) {
                continue;
            }
            double t = p[set] * w[d] / rest;
            marg[(size_t)d * k + size] += t;
            p[set | (size_t)1 << d] += t;
        }
    }
    free(p);
    free(w);
    return CW_OK;
}

int causal_rpol_marginals(const causal_rpol *pol, const double *scores, uint32_t n, uint32_t k,
                          double *marg, cw_err *err)
{
    int rc = causal_rpol_check(pol, scores, n, k, err);
    if (rc) {
        return rc;
    }
    if (pol->kind == CAUSAL_RPOL_PL) {
        if (n > CAUSAL_PL_EXACT_MAX_ITEMS) {
            return cw_err_set(err, CW_ELIMIT,
                              "policy: exact PL marginals need n <= %u candidates, got %u; "
                              "use Monte-Carlo marginals",
                              CAUSAL_PL_EXACT_MAX_ITEMS, n);
        }
        return pl_marginals_exact(scores, n, k, pol->tau, marg, err);
    }
    scratch s = {0};
    if ((rc = scratch_init(&s, n, err))) {
        return rc;
    }
    det_order(scores, n, s.keys, s.order, s.rank_of);
    memset(marg, 0, (size_t)n * k * sizeof *marg);
    for (uint32_t d = 0; d < n; d++) {
        uint32_t r = s.rank_of[d];
        double *row = marg + (size_t)d * k;
        switch (pol->kind) {
        case CAUSAL_RPOL_RANDTOPN: {
            uint32_t m = CW_MIN(pol->top_n, n);
            if (r < m) {
                for (uint32_t j = 0; j < CW_MIN(m, k); j++) {
                    row[j] = 1.0 / m;
                }
            } else if (r < k) {
                row[r] = 1;
            }
            break;
        }
        case CAUSAL_RPOL_EPSGREEDY:
            for (uint32_t j = 0; j < k; j++) {
                row[j] = pol->epsilon / n;
            }
            if (r < k) {
                row[r] += 1 - pol->epsilon;
            }
            break;
        default:
            if (r < k) {
                row[r] = 1;
            }
            break;
        }
    }
    scratch_fini(&s);
    return CW_OK;
}

int causal_rpol_marginals_mc(const causal_rpol *pol, const double *scores, uint32_t n, uint32_t k,
                             uint32_t m, cw_rng *rng, double *marg, double *se, cw_err *err)
{
    int rc = causal_rpol_check(pol, scores, n, k, err);
    if (rc) {
        return rc;
    }
    if (m < 1 || m > CAUSAL_PL_MAX_MC_SAMPLES) {
        return cw_err_set(err, CW_EINVAL, "policy: Monte-Carlo sample count must be in [1, %u]",
                          CAUSAL_PL_MAX_MC_SAMPLES);
    }
    scratch s = {0};
    uint32_t *ranking = malloc((size_t)k * sizeof *ranking);
    if (!ranking || (rc = scratch_init(&s, n, err))) {
        free(ranking);
        return rc ? rc : cw_err_set(err, CW_ENOMEM, "policy: out of memory");
    }
    memset(marg, 0, (size_t)n * k * sizeof *marg);
    for (uint32_t t = 0; t < m; t++) {
        sample_into(pol, scores, n, k, rng, &s, ranking);
        for (uint32_t j = 0; j < k; j++) {
            marg[(size_t)ranking[j] * k + j] += 1;
        }
    }
    for (size_t i = 0; i < (size_t)n * k; i++) {
        marg[i] /= m;
        if (se) {
            se[i] = sqrt(marg[i] * (1 - marg[i]) / m);
        }
    }
    free(ranking);
    scratch_fini(&s);
    return CW_OK;
}

int causal_rpol_draw(const causal_rpol *pol, const double *scores, uint32_t n, uint32_t k,
                     uint32_t mc_samples, cw_rng *rng, uint32_t *order, double *propensity,
                     double *log_prob, uint32_t *mc_used, cw_err *err)
{
    int rc = causal_rpol_check(pol, scores, n, k, err);
    if (rc) {
        return rc;
    }
    bool is_exact = pol->kind != CAUSAL_RPOL_PL || n <= CAUSAL_PL_EXACT_MAX_ITEMS;
    if (!is_exact && mc_samples == 0) {
        return cw_err_set(err, CW_EINVAL,
                          "policy: %u candidates need Monte-Carlo marginals; mc_samples is 0", n);
    }
    double *marg = malloc((size_t)n * k * sizeof *marg);
    double *lp = malloc((size_t)k * sizeof *lp);
    if (!marg || !lp) {
        rc = cw_err_set(err, CW_ENOMEM, "policy: out of memory");
        goto done;
    }
    if ((rc = causal_rpol_sample(pol, scores, n, k, rng, order, err)) ||
        (rc = causal_rpol_log_prob(pol, scores, n, order, k, lp, err))) {
        goto done;
    }
    rc = is_exact ? causal_rpol_marginals(pol, scores, n, k, marg, err)
                  : causal_rpol_marginals_mc(pol, scores, n, k, mc_samples, rng, marg, NULL, err);
    if (rc) {
        goto done;
    }
    for (uint32_t j = 0; j < k; j++) {
        propensity[j] = marg[(size_t)order[j] * k + j];
        /* A Monte-Carlo estimate can miss a drawn item (p < 1/M): the item was shown, so
         * its probability is at least what one draw in M + 1 says; never log 0. */
        if (propensity[j] <= 0) {
            propensity[j] = 1.0 / ((double)mc_samples + 1);
        }
    }
    *log_prob = lp[k - 1];
    *mc_used = is_exact ? 0 : mc_samples;
done:
    free(marg);
    free(lp);
    return rc;
}
