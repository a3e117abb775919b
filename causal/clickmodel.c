/* causal/clickmodel.c: click models (PBM, cascade, DBN, UBM) fitted by EM on a session
 * set, and their held-out log-likelihood and per-rank perplexity (Chuklin, Markov &
 * de Rijke, "Click Models for Web Search", 2015, chapters 3-4).
 * Data flow: log store -> causal_sessions -> click model -> evaluation / propensities. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "causal/causal.h"

struct causal_clickmodel {
    causal_cm_opts o;
    size_t n_pairs;
    double *attr;  /* per pair: alpha (PBM, UBM, cascade) or a (DBN) */
    double *sat;   /* per pair: DBN satisfaction s */
    uint8_t *seen; /* per pair: shown in training */
    double attr_mean, sat_mean;
    double gamma[CAUSAL_MAX_RANK];                /* PBM: examination per rank */
    double ubm[CAUSAL_MAX_RANK][CAUSAL_MAX_RANK]; /* UBM: [k-1][d-1] */
    double dbn_gamma;                             /* DBN continuation */
    uint32_t n_iter;
    double train_ll; /* mean per session */
    size_t n_train;
};

static const char *cm_names[CAUSAL_CM_N] = {"pbm", "cascade", "dbn", "ubm"};

const char *causal_cm_name(causal_cm_kind k)
{
    return k < CAUSAL_CM_N ? cm_names[k] : "unknown";
}

int causal_cm_parse(const char *name, causal_cm_kind *out, cw_err *err)
{
    for (int k = 0; k < CAUSAL_CM_N; k++) {
        if (strcmp(name, cm_names[k]) == 0) {
            *out = (causal_cm_kind)k;
            return CW_OK;
        }
    }
    return cw_err_set(err, CW_EINVAL, "unknown click model '%s' (pbm, cascade, dbn, ubm)", name);
}

causal_cm_opts causal_cm_opts_default(causal_cm_kind kind)
{
    causal_cm_opts o = {kind, 10, 50, 1e-7, 1.0};
    return o;
}

void causal_clickmodel_free(causal_clickmodel *m)
{
    if (!m) {
        return;
    }
    free(m->attr);
    free(m->sat);
    free(m->seen);
    free(m);
}

static double clampp(double p)
{
    return p < 1e-6 ? 1e-6 : (p > 1 - 1e-6 ? 1 - 1e-6 : p);
}

/* Items of session i at positions <= R: [b, e). */
static size_t sess_end(const causal_sessions *s, size_t i, uint32_t R)
{
    size_t e = s->s_begin[i];
    while (e < s->s_begin[i + 1] && s->i_pos[e] <= R) {
        e++;
    }
    return e;
}

static double attr_of(const causal_clickmodel *m, uint32_t p)
{
    return m->seen[p] ? m->attr[p] : m->attr_mean;
}

static double sat_of(const causal_clickmodel *m, uint32_t p)
{
    return m->seen[p] ? m->sat[p] : m->sat_mean;
}

/* Conditional click probabilities P(C_j = 1 | C_<j) (cond) and unconditional P(C_j = 1)
 * (full) for items [b, e) of session i. */
static void click_probs(const causal_clickmodel *m, const causal_sessions *s, size_t b, size_t e,
                        double *cond, double *full)
{
    size_t n = e - b;
    switch (m->o.kind) {
    case CAUSAL_CM_PBM:
        for (size_t j = 0; j < n; j++) {
            cond[j] = full[j] = m->gamma[s->i_pos[b + j] - 1] * attr_of(m, s->i_pair[b + j]);
        }
        break;
    case CAUSAL_CM_CASCADE: {
        double ex = 1, exf = 1;
        for (size_t j = 0; j < n; j++) {
            double a = attr_of(m, s->i_pair[b + j]);
            cond[j] = ex * a;
            full[j] = exf * a;
            exf *= 1 - a;
            if (s->i_click[b + j]) {
                ex = 0; /* the cascade user stops after the first click */
            }
        }
        break;
    }
    case CAUSAL_CM_DBN: {
        double e_c = 1, e_f = 1, g = m->dbn_gamma;
        for (size_t j = 0; j < n; j++) {
            uint32_t p = s->i_pair[b + j];
            double a = attr_of(m, p), sa = sat_of(m, p);
            cond[j] = e_c * a;
            full[j] = e_f * a;
            e_f *= g * (a * (1 - sa) + (1 - a));
            if (s->i_click[b + j]) {
                e_c = g * (1 - sa);
            } else {
                double post = e_c * (1 - a) / (1 - e_c * a);
                e_c = g * post;
            }
        }
        break;
    }
    case CAUSAL_CM_UBM: {
        /* Conditional: known last click. Full: distribution over the last click rank. */
        double dist[CAUSAL_MAX_RANK + 1] = {1}; /* dist[r]: last click at rank r (0 = none) */
        uint32_t last = 0;
        for (size_t j = 0; j < n; j++) {
            uint32_t k = s->i_pos[b + j];
            double a = attr_of(m, s->i_pair[b + j]);
            cond[j] = m->ubm[k - 1][k - last - 1] * a;
            double pc = 0;
            double newc = 0;
            for (uint32_t r = 0; r < k; r++) {
                if (dist[r] == 0) {
                    continue;
                }
                double q = m->ubm[k - 1][k - r - 1] * a;
                pc += dist[r] * q;
                newc += dist[r] * q;
                dist[r] *= 1 - q;
            }
            dist[k] = newc;
            full[j] = pc;
            if (s->i_click[b + j]) {
                last = k;
            }
        }
        break;
    }
    default: break;
    }
}

static double session_ll(const causal_clickmodel *m, const causal_sessions *s, size_t i,
                         double *cond, double *full)
{
    size_t b = s->s_begin[i], e = sess_end(s, i, m->o.max_rank);
    click_probs(m, s, b, e, cond, full);
    double ll = 0;
    for (size_t j = 0; j < e - b; j++) {
        double p = clampp(cond[j]);
        ll += s->i_click[b + j] ? log(p) : log(1 - p);
    }
    return ll;
}

/* One EM iteration; returns CW_OK. num/den are per-pair scratch (2 x n_pairs each). */
static void em_step(causal_clickmodel *m, const causal_sessions *s, size_t begin, size_t end,
                    double *an, double *ad, double *sn, double *sd)
{
    const uint32_t R = m->o.max_rank;
    size_t np_ = m->n_pairs;
    memset(an, 0, np_ * sizeof *an);
    memset(ad, 0, np_ * sizeof *ad);
    memset(sn, 0, np_ * sizeof *sn);
    memset(sd, 0, np_ * sizeof *sd);
    double gn[CAUSAL_MAX_RANK] = {0}, gd[CAUSAL_MAX_RANK] = {0};
    static double un[CAUSAL_MAX_RANK][CAUSAL_MAX_RANK], ud[CAUSAL_MAX_RANK][CAUSAL_MAX_RANK];
    memset(un, 0, sizeof un);
    memset(ud, 0, sizeof ud);
    double dg_num = 0, dg_den = 0;
    for (size_t i = begin; i < end; i++) {
        size_t b = s->s_begin[i], e = sess_end(s, i, R), n = e - b;
        if (n == 0) {
            continue;
        }
        switch (m->o.kind) {
        case CAUSAL_CM_PBM:
        case CAUSAL_CM_UBM: {
            /* Chuklin et al. section 4.2: posterior of A and E given C = 0:
             * P(A=1|C=0) = a(1-g)/(1-ga), P(E=1|C=0) = g(1-a)/(1-ga). */
            uint32_t last = 0;
            for (size_t j = b; j < e; j++) {
                uint32_t p = s->i_pair[j], k = s->i_pos[j];
                double a = m->attr[p];
                double g =
                    m->o.kind == CAUSAL_CM_PBM ? m->gamma[k - 1] : m->ubm[k - 1][k - last - 1];
                double pa, pe;
                if (s->i_click[j]) {
                    pa = pe = 1;
                } else {
                    pa = a * (1 - g) / (1 - g * a);
                    pe = g * (1 - a) / (1 - g * a);
                }
                an[p] += pa;
                ad[p] += 1;
                if (m->o.kind == CAUSAL_CM_PBM) {
                    gn[k - 1] += pe;
                    gd[k - 1] += 1;
                } else {
                    un[k - 1][k - last - 1] += pe;
                    ud[k - 1][k - last - 1] += 1;
                    if (s->i_click[j]) {
                        last = k;
                    }
                }
            }
            break;
        }
        case CAUSAL_CM_CASCADE:
            /* Closed-form MLE (Craswell et al. WSDM 2008): items up to and including the
             * first click were examined; alpha = clicks / examinations. */
            for (size_t j = b; j < e; j++) {
                uint32_t p = s->i_pair[j];
                an[p] += s->i_click[j];
                ad[p] += 1;
                if (s->i_click[j]) {
                    break;
                }
            }
            break;
        case CAUSAL_CM_DBN: {
            /* EM for the DBN (Chapelle & Zhang WWW 2009; Chuklin et al. section 4.4):
             * E_j = 1 up to the last click l; beyond it, the posterior of E_j follows from
             * eps_j = P(no click at j..n | E_j = 1) = (1-a_j)(1 - g + g eps_{j+1}). */
            double g = m->dbn_gamma;
            double eps[CAUSAL_MAX_RANK + 2];
            eps[n] = 1;
            for (size_t j = n; j-- > 0;) {
                double a = m->attr[s->i_pair[b + j]];
                eps[j] = (1 - a) * (1 - g + g * eps[j + 1]);
            }
            size_t l = 0; /* 1-based index of the last click, 0 = none */
            for (size_t j = 0; j < n; j++) {
                if (s->i_click[b + j]) {
                    l = j + 1;
                }
            }
            for (size_t j = 0; j < n; j++) {
                uint32_t p = s->i_pair[b + j];
                ad[p] += 1;
                if (j + 1 <= l) {
                    an[p] += s->i_click[b + j];
                    if (s->i_click[b + j]) {
                        sd[p] += 1;
                    }
                    if (j + 1 < l) {
                        /* not the last click: the user went on, so S = 0 and E_{j+1} = 1 */
                        if (j + 1 < n) {
                            dg_num += 1;
                            dg_den += 1;
                        }
                    }
                }
            }
            double u, z; /* entering the tail after l */
            if (l == 0) {
                u = 1;
                z = eps[0];
            } else {
                double sa = m->sat[s->i_pair[b + l - 1]];
                u = g * (1 - sa);
                double cont_tail = l < n ? eps[l] : 1;
                z = sa + (1 - sa) * (1 - g + g * cont_tail);
                double post_s = sa / z;
                sn[s->i_pair[b + l - 1]] += post_s;
                if (l < n) {
                    dg_den += 1 - post_s;
                    dg_num += u * eps[l] / z;
                }
            }
            /* tail positions j = l..n-1 (0-based): P(E_j = 1 | obs) */
            double prefix = u;
            for (size_t j = l; j < n; j++) {
                double pe = l == 0 && j == 0 ? 1.0 : prefix * eps[j] / z;
                uint32_t p = s->i_pair[b + j];
                double a = m->attr[p];
                an[p] += (1 - pe) * a; /* A independent of C when not examined */
                if (j + 1 < n) {
                    double pe_next = prefix * (1 - a) * g * eps[j + 1] / z;
                    dg_den += pe;
                    dg_num += pe_next;
                }
                prefix *= (1 - a) * g;
            }
            break;
        }
        default: break;
        }
    }
    double pr = m->o.prior;
    double asum = 0, ssum = 0;
    size_t nseen = 0, nsat = 0;
    for (size_t p = 0; p < np_; p++) {
        if (ad[p] > 0) {
            m->attr[p] = clampp((an[p] + pr) / (ad[p] + 2 * pr));
            asum += m->attr[p];
            nseen++;
        }
        if (m->o.kind == CAUSAL_CM_DBN && ad[p] > 0) {
            m->sat[p] = clampp((sn[p] + pr) / (sd[p] + 2 * pr));
            ssum += m->sat[p];
            nsat++;
        }
    }
    m->attr_mean = nseen ? asum / (double)nseen : 0.5;
    m->sat_mean = nsat ? ssum / (double)nsat : 0.5;
    if (m->o.kind == CAUSAL_CM_PBM) {
        for (uint32_t k = 0; k < R; k++) {
            if (gd[k] > 0) {
                m->gamma[k] = clampp(gn[k] / gd[k]);
            }
        }
    } else if (m->o.kind == CAUSAL_CM_UBM) {
        for (uint32_t k = 0; k < R; k++) {
            for (uint32_t d = 0; d <= k; d++) {
                if (ud[k][d] > 0) {
                    m->ubm[k][d] = clampp(un[k][d] / ud[k][d]);
                }
            }
        }
    } else if (m->o.kind == CAUSAL_CM_DBN && dg_den > 0) {
        m->dbn_gamma = clampp(dg_num / dg_den);
    }
}

int causal_clickmodel_fit(const causal_sessions *s, size_t begin, size_t end,
                          const causal_cm_opts *o, causal_clickmodel **out, cw_err *err)
{
    if (begin >= end || end > s->n_sessions) {
        return cw_err_set(err, CW_EINVAL, "click model: empty or bad session range [%zu, %zu)",
                          begin, end);
    }
    if (o->kind >= CAUSAL_CM_N || o->max_rank < 1 || o->max_rank > CAUSAL_MAX_RANK ||
        o->max_iter == 0 || !(o->prior >= 0)) {
        return cw_err_set(err, CW_EINVAL, "click model: bad options (max rank 1..%u)",
                          CAUSAL_MAX_RANK);
    }
    causal_clickmodel *m = calloc(1, sizeof *m);
    size_t np_ = s->n_pairs ? s->n_pairs : 1;
    double *scratch = malloc(4 * np_ * sizeof *scratch);
    double *cond = malloc(CAUSAL_MAX_ITEMS * sizeof *cond), *full = malloc(CAUSAL_MAX_ITEMS * 8);
    if (!m || !scratch || !cond || !full || !(m->attr = malloc(np_ * sizeof *m->attr)) ||
        !(m->sat = malloc(np_ * sizeof *m->sat)) || !(m->seen = calloc(np_, 1))) {
        causal_clickmodel_free(m);
        free(scratch);
        free(cond);
        free(full);
        return cw_err_set(err, CW_ENOMEM, "out of memory fitting a click model");
    }
    m->o = *o;
    m->n_pairs = s->n_pairs;
    for (size_t p = 0; p < np_; p++) {
        m->attr[p] = 0.5;
        m->sat[p] = 0.5;
    }
    for (size_t i = begin; i < end; i++) {
        for (size_t j = s->s_begin[i]; j < sess_end(s, i, o->max_rank); j++) {
            m->seen[s->i_pair[j]] = 1;
        }
    }
    for (uint32_t k = 0; k < CAUSAL_MAX_RANK; k++) {
        m->gamma[k] = 0.5;
        for (uint32_t d = 0; d < CAUSAL_MAX_RANK; d++) {
            m->ubm[k][d] = 0.5;
        }
    }
    m->dbn_gamma = 0.9;
    m->attr_mean = m->sat_mean = 0.5;
    m->n_train = end - begin;
    double prev = -INFINITY;
    uint32_t iters = o->kind == CAUSAL_CM_CASCADE ? 1 : o->max_iter;
    for (uint32_t it = 0; it < iters; it++) {
        em_step(m, s, begin, end, scratch, scratch + np_, scratch + 2 * np_, scratch + 3 * np_);
        double ll = 0;
        for (size_t i = begin; i < end; i++) {
            ll += session_ll(m, s, i, cond, full);
        }
        ll /= (double)(end - begin);
        m->train_ll = ll;
        m->n_iter = it + 1;
        if (fabs(ll - prev) < o->tol) {
            break;
        }
        prev = ll;
        if (cw_interrupted()) {
            causal_clickmodel_free(m);
            free(scratch);
            free(cond);
            free(full);
            return cw_err_set(err, CW_EINTR, "click-model fit interrupted");
        }
    }
    free(scratch);
    free(cond);
    free(full);
    *out = m;
    return CW_OK;
}

/* The contract shared by session_ll and eval: a non-empty range of s, and a model fitted
 * on a session set holding at least s's (query, doc) pairs. */
static int check_eval_range(const causal_clickmodel *m, const causal_sessions *s, size_t begin,
                            size_t end, cw_err *err)
{
    if (begin >= end || end > s->n_sessions) {
        return cw_err_set(err, CW_EINVAL, "click model: empty or bad session range [%zu, %zu)",
                          begin, end);
    }
    if (s->n_pairs > m->n_pairs) {
        return cw_err_set(err, CW_EINVAL,
                          "click model was fitted on a session set with fewer pairs");
    }
    return CW_OK;
}

int causal_clickmodel_session_ll(const causal_clickmodel *m, const causal_sessions *s, size_t begin,
                                 size_t end, double *ll, cw_err *err)
{
    int rc = check_eval_range(m, s, begin, end, err);
    if (rc != CW_OK) {
        return rc;
    }
    double cond[CAUSAL_MAX_RANK], full[CAUSAL_MAX_RANK];
    for (size_t i = begin; i < end; i++) {
        ll[i - begin] = session_ll(m, s, i, cond, full);
    }
    return CW_OK;
}

int causal_clickmodel_eval(const causal_clickmodel *m, const causal_sessions *s, size_t begin,
                           size_t end, causal_cm_eval *out, cw_err *err)
{
    int rc = check_eval_range(m, s, begin, end, err);
    if (rc != CW_OK) {
        return rc;
    }
    const uint32_t R = m->o.max_rank;
    double cond[CAUSAL_MAX_RANK], full[CAUSAL_MAX_RANK];
    double lp2[CAUSAL_MAX_RANK] = {0};
    uint64_t cnt[CAUSAL_MAX_RANK] = {0};
    double ll = 0;
    for (size_t i = begin; i < end; i++) {
        size_t b = s->s_begin[i], e = sess_end(s, i, R);
        ll += session_ll(m, s, i, cond, full);
        for (size_t j = b; j < e; j++) {
            uint32_t k = s->i_pos[j] - 1;
            double p = clampp(full[j - b]);
            lp2[k] += s->i_click[j] ? log2(p) : log2(1 - p);
            cnt[k]++;
        }
    }
    causal_cm_eval ev;
    memset(&ev, 0, sizeof ev);
    ev.n_sessions = end - begin;
    ev.ll = ll / (double)(end - begin);
    uint32_t nr = 0;
    double psum = 0;
    for (uint32_t k = 0; k < R; k++) {
        if (cnt[k] == 0) {
            ev.perplexity_at[k] = NAN;
            continue;
        }
        ev.perplexity_at[k] = exp2(-lp2[k] / (double)cnt[k]);
        psum += ev.perplexity_at[k];
        nr = k + 1;
    }
    ev.n_ranks = nr;
    ev.perplexity = psum / (nr ? nr : 1);
    *out = ev;
    return CW_OK;
}

double causal_clickmodel_exam(const causal_clickmodel *m, uint32_t k)
{
    if (k < 1 || k > CAUSAL_MAX_RANK) {
        return NAN;
    }
    switch (m->o.kind) {
    case CAUSAL_CM_PBM: return m->gamma[k - 1];
    case CAUSAL_CM_UBM: return m->ubm[k - 1][k - 1];
    case CAUSAL_CM_DBN: return m->dbn_gamma;
    default: return 1.0;
    }
}

int causal_clickmodel_to_json(const causal_clickmodel *m, cw_buf *out, cw_err *err)
{
    int rc = cw_buf_printf(out,
                           "{\"model\":\"%s\",\"max_rank\":%u,\"iterations\":%u,"
                           "\"train_sessions\":%zu,\"train_ll_per_session\":%.6f,"
                           "\"attractiveness_mean\":%.6f",
                           causal_cm_name(m->o.kind), m->o.max_rank, m->n_iter, m->n_train,
                           m->train_ll, m->attr_mean);
    if (rc == CW_OK && m->o.kind == CAUSAL_CM_PBM) {
        rc = cw_buf_printf(out, ",\"examination\":[");
        for (uint32_t k = 0; k < m->o.max_rank && rc == CW_OK; k++) {
            rc = cw_buf_printf(out, "%s%.6f", k ? "," : "", m->gamma[k]);
        }
        rc = rc ? rc : cw_buf_printf(out, "]");
    } else if (rc == CW_OK && m->o.kind == CAUSAL_CM_UBM) {
        rc = cw_buf_printf(out, ",\"gamma_rank_distance\":[");
        for (uint32_t k = 0; k < m->o.max_rank && rc == CW_OK; k++) {
            rc = cw_buf_printf(out, "%s[", k ? "," : "");
            for (uint32_t d = 0; d <= k && rc == CW_OK; d++) {
                rc = cw_buf_printf(out, "%s%.6f", d ? "," : "", m->ubm[k][d]);
            }
            rc = rc ? rc : cw_buf_printf(out, "]");
        }
        rc = rc ? rc : cw_buf_printf(out, "]");
    } else if (rc == CW_OK && m->o.kind == CAUSAL_CM_DBN) {
        rc = cw_buf_printf(out, ",\"gamma\":%.6f,\"satisfaction_mean\":%.6f", m->dbn_gamma,
                           m->sat_mean);
    }
    rc = rc ? rc : cw_buf_printf(out, "}\n");
    if (rc != CW_OK) {
        return cw_err_set(err, CW_ENOMEM, "out of memory writing JSON");
    }
    return CW_OK;
}
