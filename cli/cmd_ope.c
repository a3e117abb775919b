/* cli/cmd_ope.c: `causeway ope`, off-policy evaluation of candidate ranking policies from
 * the impression log (causal/ope.c, METHODS.md section 6): each target policy re-ranks the
 * logged items of every impression; estimates with intervals, diagnostics, and a ranked
 * comparison of several policies with bootstrap probabilities. */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "causal/causal.h"
#include "cli/cli.h"
#include "ranker/ranker.h"

#define OPE_MAX_POLICIES 16
#define OPE_DEFAULT_ESTIMATORS "iips,snips,sips,rips,pbm,dm,dr,cdr,pi"

/* METHODS.md section 3: the eye-tracking examination table (ULTRA, Wang et al. 2018). */
static const double default_theta[10] = {.68, .61, .48, .34, .28, .20, .11, .10, .08, .06};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: causeway ope --db FILE --policy SPEC [--policy SPEC ...]\n"
            "                    [--metric clicks@K|ctr|dcg@K] [--estimators LIST]\n"
            "                    [--theta T1,T2,...] [--bootstrap B] [--seed S]\n"
            "                    [--mc-samples M] [--json]\n\n"
            "Estimates from the impression log how each target policy would have done had it\n"
            "ranked the logged items of every impression (METHODS.md section 6). Each estimate\n"
            "comes with an analytic 95%% interval, a bootstrap interval over queries, the\n"
            "effective sample size, max/mean importance weight and support warnings. With\n"
            "several policies: a ranking and the bootstrap probability that each pairwise\n"
            "order is right (same resampled queries for every policy).\n\n"
            "  --db FILE         the log written by `causeway serve` (opened read-only)\n"
            "  --policy SPEC     TARGET[@RAND]; TARGET = MODEL.json (a ranker model scoring the\n"
            "                    logged feature vectors), logged (the logging ranker's scores)\n"
            "                    or a logged feature name (e.g. bm25); RAND = det (default),\n"
            "                    pl:TAU, randtop:N, egreedy:EPS. Repeat for a comparison.\n"
            "  --metric M        clicks@K (default clicks@10), ctr (= clicks over all K shown,\n"
            "                    K = 10), dcg@K (clicks weighted 1/log2(rank+1))\n"
            "  --estimators L    comma list of " OPE_DEFAULT_ESTIMATORS "\n"
            "                    (default all; the first one ranks the comparison)\n"
            "  --theta LIST      examination probabilities per rank for pbm (default the\n"
            "                    METHODS.md table; pass a fitted propensity model's values)\n"
            "  --bootstrap B     bootstrap replicates over queries (default 10000, 0 = none)\n"
            "  --seed S          bootstrap and Monte-Carlo seed (default 1)\n"
            "  --mc-samples M    Monte-Carlo samples for marginals of PL lists over 20 items\n"
            "                    (default 10000)\n"
            "  --json            one JSON document instead of tables\n\n"
            "What each estimator needs (an estimator whose input the log lacks is reported as\n"
            "not valid, with the reason, and the others still run):\n"
            "  iips, snips, dr, pi  logged per-item propensities (server-side stochastic\n"
            "                       logging); pi is exact only for product logging policies\n"
            "  sips, rips, cdr      the logged ranking probability (rips/cdr: of its prefixes,\n"
            "                       available when the logging list is reconstructible: PL\n"
            "                       with logged temperature and scores, or deterministic)\n"
            "  pbm                  theta plus full logging marginals (reconstructible or\n"
            "                       deterministic logging); valid for deterministic logs when\n"
            "                       the target only reorders logged items\n"
            "  dm, dr, cdr          a PBM click model fitted on the same log with theta\n"
            "Deterministic logs (all propensities 1) support only targets that keep the\n"
            "logged order; ope warns about the target mass outside the logged support.\n");
    fprintf(f, "\nExit codes: 0 success, 1 failure (the message names the file and line or\n"
               "byte offset at fault), 2 usage error.\n");
}

/* One logged impression, compacted for repeated passes. */
typedef struct rec {
    uint32_t group;   /* interned query */
    uint32_t n_items; /* logged list length (>= k) */
    size_t item0;     /* first item in the item arrays */
    double log_prob;  /* logged log pi_b(list), NaN = unknown */
    double tau;       /* logged PL temperature, NaN = none */
} rec;

typedef struct logdata {
    size_t n_recs, cap_recs;
    rec *recs;
    size_t n_items, cap_items;
    double *score, *prop;
    uint8_t *click;
    uint64_t *doc_hash;
    float *feat; /* n_items * n_features */
    uint32_t n_features;
    char **feature_names;
    char *feature_set;
    uint32_t n_groups;
    uint64_t *group_hash; /* open addressing: hash -> group id */
    uint32_t *group_id;
    size_t group_cap;
    size_t n_skipped_short, n_skipped_offset, n_skipped_features;
} logdata;

static void logdata_free(logdata *L)
{
    free(L->recs);
    free(L->score);
    free(L->prop);
    free(L->click);
    free(L->doc_hash);
    free(L->feat);
    for (uint32_t f = 0; f < L->n_features; f++) {
        free(L->feature_names[f]);
    }
    free(L->feature_names);
    free(L->feature_set);
    free(L->group_hash);
    free(L->group_id);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem, cw_err *err)
{
    if (need <= *cap) {
        return CW_OK;
    }
    size_t nc = *cap ? *cap : 1024;
    while (nc < need) {
        nc *= 2;
    }
    void *q = realloc(*p, nc * elem);
    if (!q) {
        return cw_err_set(err, CW_ENOMEM, "ope: out of memory reading the log");
    }
    *p = q;
    *cap = nc;
    return CW_OK;
}

static int intern_group(logdata *L, const char *key, uint32_t *out, cw_err *err)
{
    if ((L->n_groups + 1) * 2 > L->group_cap) {
        size_t nc = L->group_cap ? L->group_cap * 2 : 1024;
        uint64_t *h = calloc(nc, sizeof *h);
        uint32_t *id = malloc(nc * sizeof *id);
        if (!h || !id) {
            free(h);
            free(id);
            return cw_err_set(err, CW_ENOMEM, "ope: out of memory");
        }
        for (size_t i = 0; i < L->group_cap; i++) {
            if (L->group_hash[i]) {
                size_t s = L->group_hash[i] & (nc - 1);
                while (h[s]) {
                    s = (s + 1) & (nc - 1);
                }
                h[s] = L->group_hash[i];
                id[s] = L->group_id[i];
            }
        }
        free(L->group_hash);
        free(L->group_id);
        L->group_hash = h;
        L->group_id = id;
        L->group_cap = nc;
    }
    uint64_t hv = cw_hash64(key, strlen(key), 0x0e5eed) | 1;
    size_t s = hv & (L->group_cap - 1);
    while (L->group_hash[s] && L->group_hash[s] != hv) {
        s = (s + 1) & (L->group_cap - 1);
    }
    if (!L->group_hash[s]) {
        L->group_hash[s] = hv;
        L->group_id[s] = L->n_groups++;
    }
    *out = L->group_id[s];
    return CW_OK;
}

static int read_log(const char *path, uint32_t k, logdata *L, cw_err *err)
{
    causal_log_opts lo = causal_log_opts_default();
    lo.read_only = true;
    causal_log *log = NULL;
    causal_log_reader *rd = NULL;
    int rc = causal_log_open(path, &lo, &log, err);
    if (rc) {
        return rc;
    }
    causal_log_filter filter = causal_log_filter_all();
    if ((rc = causal_log_reader_new(log, &filter, &rd, err))) {
        goto done;
    }
    const causal_impression *imp;
    while ((rc = causal_log_reader_next(rd, &imp, err)) == 1) {
        if (cw_interrupted()) {
            rc = cw_err_set(err, CW_EINTR, "interrupted reading %s", path);
            goto done;
        }
        if (imp->n_items < k) {
            L->n_skipped_short++;
            continue;
        }
        if (imp->items[0].position != 1) {
            L->n_skipped_offset++; /* a later result page: not a ranking from rank 1 */
            continue;
        }
        if (L->n_recs == 0 && imp->feature_set && imp->n_features) {
            L->n_features = imp->n_features;
            L->feature_set = strdup(imp->feature_set);
            L->feature_names = calloc(imp->n_features, sizeof *L->feature_names);
            if (!L->feature_set || !L->feature_names) {
                rc = cw_err_set(err, CW_ENOMEM, "ope: out of memory");
                goto done;
            }
            for (uint32_t f = 0; f < imp->n_features; f++) {
                if (!(L->feature_names[f] = strdup(imp->feature_names[f]))) {
                    rc = cw_err_set(err, CW_ENOMEM, "ope: out of memory");
                    goto done;
                }
            }
        }
        bool same_features =
            L->n_features == 0 || (imp->feature_set && imp->n_features == L->n_features &&
                                   strcmp(imp->feature_set, L->feature_set) == 0);
        if (!same_features) {
            L->n_skipped_features++;
            continue;
        }
        if ((rc = grow((void **)&L->recs, &L->cap_recs, L->n_recs + 1, sizeof *L->recs, err))) {
            goto done;
        }
        size_t need = L->n_items + imp->n_items;
        if (need > L->cap_items) {
            size_t nc = L->cap_items ? L->cap_items : 4096;
            while (nc < need) {
                nc *= 2;
            }
            void *p1 = realloc(L->score, nc * sizeof(double));
            L->score = p1 ? p1 : L->score;
            void *p2 = realloc(L->prop, nc * sizeof(double));
            L->prop = p2 ? p2 : L->prop;
            void *p3 = realloc(L->click, nc);
            L->click = p3 ? p3 : L->click;
            void *p4 = realloc(L->doc_hash, nc * sizeof(uint64_t));
            L->doc_hash = p4 ? p4 : L->doc_hash;
            void *p5 = L->n_features ? realloc(L->feat, nc * L->n_features * sizeof(float)) : NULL;
            L->feat = p5 ? p5 : L->feat;
            if (!p1 || !p2 || !p3 || !p4 || (L->n_features && !p5)) {
                rc = cw_err_set(err, CW_ENOMEM, "ope: out of memory reading the log");
                goto done;
            }
            L->cap_items = nc;
        }
        rec *r = &L->recs[L->n_recs];
        if ((rc = intern_group(L, imp->qid ? imp->qid : imp->query, &r->group, err))) {
            goto done;
        }
        r->n_items = (uint32_t)imp->n_items;
        r->item0 = L->n_items;
        r->log_prob = imp->log_prob;
        r->tau = imp->temperature;
        for (size_t i = 0; i < imp->n_items; i++) {
            const causal_item *it = &imp->items[i];
            size_t x = L->n_items + i;
            L->score[x] = it->score;
            L->prop[x] = it->propensity;
            L->click[x] = it->n_clicks > 0;
            L->doc_hash[x] = cw_hash64(it->doc_id, strlen(it->doc_id), 0xd0c) ^
                             cw_hash64(imp->qid ? imp->qid : imp->query,
                                       strlen(imp->qid ? imp->qid : imp->query), 0x9e1);
            for (uint32_t f = 0; f < L->n_features; f++) {
                L->feat[x * L->n_features + f] = it->features ? it->features[f] : NAN;
            }
        }
        L->n_items += imp->n_items;
        L->n_recs++;
    }
    if (rc == 0 && L->n_recs == 0) {
        rc = cw_err_set(err, CW_EINVAL,
                        "%s: no impression with at least %u items starting at rank 1 (%zu too "
                        "short, %zu later pages)",
                        path, k, L->n_skipped_short, L->n_skipped_offset);
    }
done:
    causal_log_reader_free(rd);
    causal_log_close(log);
    return rc < 0 ? rc : CW_OK;
}

/* A target: how to score the logged items, and how to randomise. */
typedef struct target {
    char spec[256];
    causal_rpol rpol;
    int kind; /* 0 = logged score, 1 = feature column, 2 = model */
    uint32_t feature;
    rank_model *model;
    uint32_t *model_cols; /* model feature i -> logged column */
} target;

static int target_parse(const char *spec, const logdata *L, target *t, cw_err *err)
{
    memset(t, 0, sizeof *t);
    snprintf(t->spec, sizeof t->spec, "%s", spec);
    t->rpol = (causal_rpol){CAUSAL_RPOL_DET, 1, 1, 0};
    char name[256];
    snprintf(name, sizeof name, "%s", spec);
    char *at = strrchr(name, '@');
    if (at) {
        *at = '\0';
        int rc = causal_rpol_parse(at + 1, &t->rpol, err);
        if (rc) {
            return cw_err_prefix(err, "--policy %s: ", spec);
        }
    }
    size_t len = strlen(name);
    if (strcmp(name, "logged") == 0) {
        t->kind = 0;
        return CW_OK;
    }
    if (len > 5 && strcmp(name + len - 5, ".json") == 0) {
        t->kind = 2;
        int rc = rank_model_load(name, &t->model, err);
        if (rc) {
            return rc;
        }
        size_t nf = rank_model_n_features(t->model);
        t->model_cols = malloc(nf * sizeof *t->model_cols);
        if (!t->model_cols) {
            return cw_err_set(err, CW_ENOMEM, "ope: out of memory");
        }
        for (size_t i = 0; i < nf; i++) {
            const char *fn = rank_model_feature_name(t->model, i);
            uint32_t f = 0;
            while (f < L->n_features && strcmp(L->feature_names[f], fn) != 0) {
                f++;
            }
            if (f == L->n_features) {
                return cw_err_set(err, CW_EINVAL,
                                  "--policy %s: the model uses feature \"%s\", which the log's "
                                  "feature set \"%s\" (%u features) does not have: a model for "
                                  "other features cannot be evaluated on this log",
                                  spec, fn, L->feature_set ? L->feature_set : "(none)",
                                  L->n_features);
            }
            t->model_cols[i] = f;
        }
        return CW_OK;
    }
    for (uint32_t f = 0; f < L->n_features; f++) {
        if (strcmp(L->feature_names[f], name) == 0) {
            t->kind = 1;
            t->feature = f;
            return CW_OK;
        }
    }
    return cw_err_set(err, CW_EINVAL,
                      "--policy %s: \"%s\" is neither a model file (*.json), \"logged\", nor a "
                      "feature of the log's feature set \"%s\"",
                      spec, name, L->feature_set ? L->feature_set : "(none: no features logged)");
}

static void target_fini(target *t)
{
    rank_model_free(t->model);
    free(t->model_cols);
}

/* Target scores of the logged items of record r into s[0..n_items). */
static int target_scores(const target *t, const logdata *L, const rec *r, double *s, double *x,
                         cw_err *err)
{
    for (uint32_t i = 0; i < r->n_items; i++) {
        size_t it = r->item0 + i;
        if (t->kind == 0) {
            s[i] = L->score[it];
        } else if (t->kind == 1) {
            s[i] = L->feat[it * L->n_features + t->feature];
        } else {
            size_t nf = rank_model_n_features(t->model);
            for (size_t f = 0; f < nf; f++) {
                x[i * nf + f] = L->feat[it * L->n_features + t->model_cols[f]];
            }
        }
    }
    if (t->kind == 2) {
        int rc = rank_model_score(t->model, x, r->n_items, s, err);
        if (rc) {
            return rc;
        }
    }
    for (uint32_t i = 0; i < r->n_items; i++) {
        if (!isfinite(s[i])) {
            return cw_err_set(err, CW_EINVAL,
                              "--policy %s: impression item %u has no score (missing score or "
                              "feature in the log)",
                              t->spec, i + 1);
        }
    }
    return CW_OK;
}

/* Logging-side facts of one impression: prefix log-probs, shown-slot propensities and, when
 * the logging list can be reconstructed, its full marginals. */
typedef struct logside {
    bool has_prefix, has_full_marg, is_det;
    double lpb[CAUSAL_OPE_MAX_SLOTS];
    double pb_shown[CAUSAL_OPE_MAX_SLOTS];
} logside;

static int logging_side(const logdata *L, const rec *r, uint32_t k, uint32_t mc, cw_rng *rng,
                        double *pb_full, double *tmp, uint32_t *ident, logside *ls, cw_err *err)
{
    const double *sc = L->score + r->item0;
    const double *pr = L->prop + r->item0;
    uint32_t n = r->n_items;
    bool all_one = true;
    for (uint32_t j = 0; j < k; j++) {
        ls->pb_shown[j] = pr[j];
        all_one = all_one && pr[j] == 1.0;
    }
    for (uint32_t i = 0; i < n; i++) {
        ident[i] = i;
    }
    ls->is_det = all_one && (isnan(r->log_prob) || r->log_prob == 0.0);
    ls->has_prefix = ls->has_full_marg = false;
    if (ls->is_det) {
        /* Deterministic logging: the logged list has probability 1, so has each prefix. */
        for (uint32_t j = 0; j < k; j++) {
            ls->lpb[j] = 0;
        }
        memset(pb_full, 0, (size_t)n * k * sizeof *pb_full);
        for (uint32_t j = 0; j < k; j++) {
            pb_full[(size_t)j * k + j] = 1;
        }
        ls->has_prefix = ls->has_full_marg = true;
        return CW_OK;
    }
    bool scores_ok = isfinite(r->tau) && r->tau > 0;
    for (uint32_t i = 0; scores_ok && i < n; i++) {
        scores_ok = isfinite(sc[i]);
    }
    if (scores_ok) {
        /* PL over the logged list with the logged temperature: reconstructible only if it
         * reproduces the logged probability (else the list was drawn from more candidates). */
        causal_rpol pl = {CAUSAL_RPOL_PL, r->tau, 1, 0};
        int rc = causal_rpol_log_prob(&pl, sc, n, ident, n, tmp, err);
        if (rc) {
            return rc;
        }
        if (isfinite(r->log_prob) &&
            fabs(tmp[n - 1] - r->log_prob) <= 1e-6 * (1 + fabs(r->log_prob))) {
            memcpy(ls->lpb, tmp, k * sizeof *tmp);
            ls->has_prefix = true;
            rc = n <= CAUSAL_PL_EXACT_MAX_ITEMS
                     ? causal_rpol_marginals(&pl, sc, n, k, pb_full, err)
                     : causal_rpol_marginals_mc(&pl, sc, n, k, mc, rng, pb_full, NULL, err);
            if (rc) {
                return rc;
            }
            ls->has_full_marg = true;
            return CW_OK;
        }
    }
    if (n == k && isfinite(r->log_prob)) {
        for (uint32_t j = 0; j + 1 < k; j++) {
            ls->lpb[j] = NAN;
        }
        ls->lpb[k - 1] = r->log_prob;
        ls->has_prefix = true; /* whole-ranking only: sips works, rips/cdr report NaN */
    }
    return CW_OK;
}

/* PBM click model for DM/DR/CDR: gamma(query, doc) = clicks / sum theta at the shown ranks,
 * with half a pseudo-impression at the global rate (Chuklin et al. 2015, PBM MLE with a
 * prior). Open addressing on the (query, doc) hash. */
typedef struct gamma_map {
    size_t cap;
    uint64_t *key;
    double *num, *den;
    double prior;
} gamma_map;

static size_t gm_slot(const gamma_map *g, uint64_t h)
{
    h |= 1;
    size_t s = h & (g->cap - 1);
    while (g->key[s] && g->key[s] != h) {
        s = (s + 1) & (g->cap - 1);
    }
    return s;
}

static int gamma_fit(const logdata *L, uint32_t k, const double *theta, gamma_map *g, cw_err *err)
{
    g->cap = 1024;
    while (g->cap < 2 * L->n_items + 2) {
        g->cap *= 2;
    }
    g->key = calloc(g->cap, sizeof *g->key);
    g->num = calloc(g->cap, sizeof *g->num);
    g->den = calloc(g->cap, sizeof *g->den);
    if (!g->key || !g->num || !g->den) {
        return cw_err_set(err, CW_ENOMEM, "ope: out of memory for the click model");
    }
    double cn = 0, cd = 0;
    for (size_t r = 0; r < L->n_recs; r++) {
        const rec *rc = &L->recs[r];
        for (uint32_t j = 0; j < k; j++) {
            size_t it = rc->item0 + j;
            size_t s = gm_slot(g, L->doc_hash[it]);
            g->key[s] = L->doc_hash[it] | 1;
            g->num[s] += L->click[it];
            g->den[s] += theta[j];
            cn += L->click[it];
            cd += theta[j];
        }
    }
    g->prior = cd > 0 ? cn / cd : 0;
    return CW_OK;
}

static double gamma_get(const gamma_map *g, uint64_t h)
{
    size_t s = gm_slot(g, h);
    double num = g->key[s] ? g->num[s] : 0, den = g->key[s] ? g->den[s] : 0;
    return fmin(1.0, (num + 0.5 * g->prior) / (den + 0.5));
}

static void gamma_free(gamma_map *g)
{
    free(g->key);
    free(g->num);
    free(g->den);
}

typedef struct policy_out {
    causal_ope_result res[CAUSAL_N_EST];
    int rc[CAUSAL_N_EST];
    char why[CAUSAL_N_EST][CW_ERR_MSG_BYTES];
    causal_ope_data data;
    causal_ope_arrays arr;
    uint32_t *group;
} policy_out;

static void policy_out_free(policy_out *p)
{
    double *a[] = {p->arr.lpb_prefix, p->arr.lpe_prefix, p->arr.pb_marg,    p->arr.pe_marg,
                   p->arr.rho_b,      p->arr.omega_e,    p->arr.q_hat,      p->arr.dm_e,
                   p->arr.cdr_q,      p->arr.cdr_v,      p->arr.unsupported};
    for (size_t i = 0; i < CW_ARRAY_LEN(a); i++) {
        free(a[i]);
    }
}

/* Fills the estimator inputs of one target over the whole log. */
static int build_policy(const logdata *L, const target *t, uint32_t k, const double *lambda,
                        const double *theta, const gamma_map *gm, const uint8_t *clicks,
                        const uint32_t *groups, uint32_t mc, uint64_t seed, policy_out *po,
                        cw_err *err)
{
    size_t n = L->n_recs;
    double **a[] = {&po->arr.lpb_prefix, &po->arr.lpe_prefix, &po->arr.pb_marg,
                    &po->arr.pe_marg,    &po->arr.rho_b,      &po->arr.omega_e,
                    &po->arr.q_hat,      &po->arr.cdr_q,      &po->arr.cdr_v};
    for (size_t i = 0; i < CW_ARRAY_LEN(a); i++) {
        if (!(*a[i] = malloc(n * k * sizeof(double)))) {
            return cw_err_set(err, CW_ENOMEM, "ope: out of memory");
        }
    }
    po->arr.dm_e = malloc(n * sizeof(double));
    po->arr.unsupported = malloc(n * sizeof(double));
    uint32_t max_items = 0;
    for (size_t r = 0; r < n; r++) {
        max_items = CW_MAX(max_items, L->recs[r].n_items);
    }
    size_t nf = t->model ? rank_model_n_features(t->model) : 0;
    double *s = malloc(max_items * sizeof *s);
    double *x = malloc((size_t)max_items * (nf ? nf : 1) * sizeof *x);
    double *pb_full = malloc((size_t)max_items * k * sizeof *pb_full);
    double *pe_full = malloc((size_t)max_items * k * sizeof *pe_full);
    double *q = malloc((size_t)max_items * k * sizeof *q);
    double *tmp = malloc(max_items * sizeof *tmp);
    uint32_t *ident = malloc(max_items * sizeof *ident);
    int rc = CW_OK;
    bool any_unsup_unknown = false;
    if (!po->arr.dm_e || !po->arr.unsupported || !s || !x || !pb_full || !pe_full || !q || !tmp ||
        !ident) {
        rc = cw_err_set(err, CW_ENOMEM, "ope: out of memory");
        goto done;
    }
    cw_rng rng;
    cw_rng_seed(&rng, seed);
    for (size_t r = 0; r < n && rc == CW_OK; r++) {
        const rec *rr = &L->recs[r];
        logside ls;
        if ((rc = target_scores(t, L, rr, s, x, err)) ||
            (rc = logging_side(L, rr, k, mc, &rng, pb_full, tmp, ident, &ls, err))) {
            break;
        }
        const double *pe = NULL;
        if (t->rpol.kind == CAUSAL_RPOL_PL && rr->n_items > CAUSAL_PL_EXACT_MAX_ITEMS) {
            if ((rc = causal_rpol_marginals_mc(&t->rpol, s, rr->n_items, k, mc, &rng, pe_full, NULL,
                                               err))) {
                break;
            }
            pe = pe_full;
        }
        for (uint32_t d = 0; d < rr->n_items; d++) {
            double gmv = gamma_get(gm, L->doc_hash[rr->item0 + d]);
            for (uint32_t j = 0; j < k; j++) {
                q[(size_t)d * k + j] = theta[j] * gmv;
            }
        }
        causal_ope_row row = {
            .n_cand = rr->n_items,
            .shown = ident,
            .lpb_prefix = ls.has_prefix ? ls.lpb : NULL,
            .pb_shown = ls.pb_shown,
            .pb_marg = ls.has_full_marg ? pb_full : NULL,
            .target = &t->rpol,
            .target_scores = s,
            .pe_marg = pe,
            .theta = theta,
            .q_click = q,
            .support_floor = 1e-9,
        };
        if ((rc = causal_ope_fill_row(&row, k, lambda, r, &po->arr, err))) {
            cw_err_prefix(err, "--policy %s: ", t->spec);
            break;
        }
        any_unsup_unknown = any_unsup_unknown || !ls.has_full_marg;
    }
    po->data = (causal_ope_data){.n = n,
                                 .k = k,
                                 .group = groups,
                                 .n_groups = L->n_groups,
                                 .lambda = lambda,
                                 .click = clicks,
                                 .lpb_prefix = po->arr.lpb_prefix,
                                 .lpe_prefix = po->arr.lpe_prefix,
                                 .pb_marg = po->arr.pb_marg,
                                 .pe_marg = po->arr.pe_marg,
                                 .rho_b = po->arr.rho_b,
                                 .omega_e = po->arr.omega_e,
                                 .q_hat = po->arr.q_hat,
                                 .dm_e = po->arr.dm_e,
                                 .cdr_q = po->arr.cdr_q,
                                 .cdr_v = po->arr.cdr_v,
                                 .unsupported = any_unsup_unknown ? NULL : po->arr.unsupported};
    /* Without full logging marginals for some impression, pbm cannot run: drop rho_b so
     * it reports the missing input (missing ranking probabilities are reported per
     * impression by sips, rips and cdr themselves). */
    for (size_t i = 0; i < n * k; i++) {
        if (isnan(po->arr.rho_b[i])) {
            po->data.rho_b = NULL;
            break;
        }
    }
done:
    free(s);
    free(x);
    free(pb_full);
    free(pe_full);
    free(q);
    free(tmp);
    free(ident);
    return rc;
}

static int parse_list_double(const char *s, double *out, uint32_t max, uint32_t *n)
{
    char *buf = strdup(s), *save = NULL;
    *n = 0;
    if (!buf) {
        return -1;
    }
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end = NULL;
        double v = strtod(tok, &end);
        if (*end || !(v > 0 && v <= 1) || *n >= max) {
            free(buf);
            return -1;
        }
        out[(*n)++] = v;
    }
    free(buf);
    return *n ? 0 : -1;
}

int cli_cmd_ope(int argc, char **argv)
{
    const char *cmd = "ope";
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    const char *db = NULL, *metric = "clicks@10", *est_list = OPE_DEFAULT_ESTIMATORS;
    const char *specs[OPE_MAX_POLICIES];
    size_t n_pol = 0;
    uint64_t n_boot = 10000, seed = 1, mc = 10000;
    bool is_json = false;
    double theta_in[CAUSAL_OPE_MAX_SLOTS];
    uint32_t n_theta = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) {
            is_json = true;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            continue;
        }
        if (!v) {
            return cli_usage_error(cmd, "unknown option or missing value: '%s'", a);
        }
        i++;
        if (strcmp(a, "--db") == 0) {
            db = v;
        } else if (strcmp(a, "--policy") == 0) {
            if (n_pol == OPE_MAX_POLICIES) {
                return cli_usage_error(cmd, "at most %d policies", OPE_MAX_POLICIES);
            }
            specs[n_pol++] = v;
        } else if (strcmp(a, "--metric") == 0) {
            metric = v;
        } else if (strcmp(a, "--estimators") == 0) {
            est_list = v;
        } else if (strcmp(a, "--theta") == 0) {
            if (parse_list_double(v, theta_in, CAUSAL_OPE_MAX_SLOTS, &n_theta)) {
                return cli_usage_error(cmd, "--theta expects numbers in (0, 1], got '%s'", v);
            }
        } else if (strcmp(a, "--bootstrap") == 0) {
            if (!cli_parse_u64(cmd, a, v, 0, CAUSAL_OPE_MAX_BOOTSTRAP, &n_boot)) {
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--seed") == 0) {
            if (!cli_parse_u64(cmd, a, v, 0, UINT64_MAX, &seed)) {
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--mc-samples") == 0) {
            if (!cli_parse_u64(cmd, a, v, 1, CAUSAL_PL_MAX_MC_SAMPLES, &mc)) {
                return CLI_EXIT_USAGE;
            }
        } else {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        }
    }
    if (!db) {
        return cli_usage_error(cmd, "--db FILE is required");
    }
    if (n_pol == 0) {
        return cli_usage_error(cmd, "at least one --policy is required");
    }
    /* Metric: rank weights lambda over k slots. */
    uint32_t k = 10;
    bool is_dcg = false;
    if (strcmp(metric, "ctr") == 0) {
        k = 10;
    } else if (strncmp(metric, "clicks@", 7) == 0 || strncmp(metric, "dcg@", 4) == 0) {
        is_dcg = metric[0] == 'd';
        uint64_t kk;
        if (!cli_parse_u64(cmd, "--metric", metric + (is_dcg ? 4 : 7), 1, CAUSAL_OPE_MAX_SLOTS,
                           &kk)) {
            return CLI_EXIT_USAGE;
        }
        k = (uint32_t)kk;
    } else {
        return cli_usage_error(cmd, "--metric expects clicks@K, ctr or dcg@K, got '%s'", metric);
    }
    double lambda[CAUSAL_OPE_MAX_SLOTS], theta[CAUSAL_OPE_MAX_SLOTS];
    for (uint32_t j = 0; j < k; j++) {
        lambda[j] = is_dcg ? 1.0 / log2(j + 2.0) : 1.0;
        theta[j] = n_theta ? theta_in[CW_MIN(j, n_theta - 1)] : default_theta[CW_MIN(j, 9u)];
    }
    causal_est ests[CAUSAL_N_EST];
    size_t n_est = 0;
    {
        char *buf = strdup(est_list), *save = NULL;
        cw_err e;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (n_est == CAUSAL_N_EST || causal_est_parse(tok, &ests[n_est], &e)) {
                free(buf);
                return cli_usage_error(cmd, "--estimators: %s",
                                       n_est == CAUSAL_N_EST ? "too many" : e.msg);
            }
            n_est++;
        }
        free(buf);
        if (n_est == 0) {
            return cli_usage_error(cmd, "--estimators is empty");
        }
    }
    cw_err err;
    cw_err_clear(&err);
    logdata L = {0};
    target tg[OPE_MAX_POLICIES];
    policy_out *po = calloc(n_pol, sizeof *po);
    gamma_map gm = {0};
    uint8_t *clicks = NULL;
    uint32_t *groups = NULL;
    size_t n_tg = 0;
    int exit_code = CLI_EXIT_FAIL;
    if (!po) {
        cw_err_set(&err, CW_ENOMEM, "out of memory");
        goto fail;
    }
    if (read_log(db, k, &L, &err)) {
        goto fail;
    }
    for (; n_tg < n_pol; n_tg++) {
        if (target_parse(specs[n_tg], &L, &tg[n_tg], &err)) {
            target_fini(&tg[n_tg]);
            goto fail;
        }
    }
    clicks = malloc(L.n_recs * k);
    groups = malloc(L.n_recs * sizeof *groups);
    if (!clicks || !groups) {
        cw_err_set(&err, CW_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t r = 0; r < L.n_recs; r++) {
        groups[r] = L.recs[r].group;
        for (uint32_t j = 0; j < k; j++) {
            clicks[r * k + j] = L.click[L.recs[r].item0 + j];
        }
    }
    if (gamma_fit(&L, k, theta, &gm, &err)) {
        goto fail;
    }
    causal_ope_opts o = causal_ope_opts_default();
    o.n_boot = (uint32_t)n_boot;
    o.seed = seed;
    size_t n_ok_total = 0;
    for (size_t p = 0; p < n_pol; p++) {
        if (build_policy(&L, &tg[p], k, lambda, theta, &gm, clicks, groups, (uint32_t)mc, seed,
                         &po[p], &err)) {
            goto fail;
        }
        for (size_t e = 0; e < n_est; e++) {
            cw_err ee;
            cw_err_clear(&ee);
            po[p].rc[e] = causal_ope_estimate(&po[p].data, ests[e], &o, &po[p].res[e], &ee);
            if (cw_interrupted()) { /* not an invalid estimator: stop the whole run */
                cw_err_set(&err, CW_EINTR, "interrupted");
                goto fail;
            }
            snprintf(po[p].why[e], sizeof po[p].why[e], "%s", ee.msg);
            n_ok_total += po[p].rc[e] == CW_OK;
        }
    }
    /* Comparison with the first estimator that is valid for every policy. */
    double *values = calloc(n_pol, sizeof *values), *prob = calloc(n_pol * n_pol, sizeof *prob);
    size_t *order = calloc(n_pol, sizeof *order);
    int cmp_est = -1;
    if (!values || !prob || !order) {
        free(values);
        free(prob);
        free(order);
        cw_err_set(&err, CW_ENOMEM, "out of memory");
        goto fail;
    }
    if (n_pol > 1) {
        for (size_t e = 0; e < n_est && cmp_est < 0; e++) {
            bool ok = true;
            for (size_t p = 0; p < n_pol; p++) {
                ok = ok && po[p].rc[e] == CW_OK;
            }
            if (ok) {
                causal_ope_data *dd = malloc(n_pol * sizeof *dd);
                for (size_t p = 0; dd && p < n_pol; p++) {
                    dd[p] = po[p].data;
                }
                if (dd && causal_ope_compare(dd, n_pol, ests[e], &o, values, prob, &err) == 0) {
                    cmp_est = (int)e;
                }
                free(dd);
                if (cw_interrupted()) {
                    free(values);
                    free(prob);
                    free(order);
                    cw_err_set(&err, CW_EINTR, "interrupted");
                    goto fail;
                }
            }
        }
        for (size_t p = 0; p < n_pol; p++) {
            order[p] = p;
        }
        for (size_t x = 1; x < n_pol; x++) {
            for (size_t y = x; y > 0 && values[order[y]] > values[order[y - 1]]; y--) {
                size_t t = order[y];
                order[y] = order[y - 1];
                order[y - 1] = t;
            }
        }
    }
    if (is_json) {
        json_t *root = json_object();
        json_t *jl = json_object();
        json_object_set_new(jl, "db", json_string(db));
        json_object_set_new(jl, "impressions", json_integer((json_int_t)L.n_recs));
        json_object_set_new(jl, "queries", json_integer((json_int_t)L.n_groups));
        json_object_set_new(jl, "skipped_short", json_integer((json_int_t)L.n_skipped_short));
        json_object_set_new(jl, "skipped_later_pages",
                            json_integer((json_int_t)L.n_skipped_offset));
        json_object_set_new(jl, "skipped_other_features",
                            json_integer((json_int_t)L.n_skipped_features));
        json_object_set_new(root, "log", jl);
        json_object_set_new(root, "metric", json_string(metric));
        json_object_set_new(root, "k", json_integer(k));
        json_object_set_new(root, "bootstrap", json_integer((json_int_t)n_boot));
        json_object_set_new(root, "seed", json_integer((json_int_t)seed));
        json_t *jp = json_array();
        for (size_t p = 0; p < n_pol; p++) {
            json_t *one = json_object(), *je = json_array();
            json_object_set_new(one, "policy", json_string(specs[p]));
            for (size_t e = 0; e < n_est; e++) {
                json_t *x = json_object();
                const causal_ope_result *r = &po[p].res[e];
                json_object_set_new(x, "estimator", json_string(causal_est_name(ests[e])));
                if (po[p].rc[e]) {
                    json_object_set_new(x, "valid", json_false());
                    json_object_set_new(x, "error", json_string(po[p].why[e]));
                } else {
                    json_object_set_new(x, "valid", json_true());
                    json_object_set_new(x, "value", json_real(r->value));
                    json_object_set_new(x, "se", json_real(r->se));
                    json_object_set_new(x, "ci95", json_pack("[f,f]", r->ci_lo, r->ci_hi));
                    if (n_boot) {
                        json_object_set_new(x, "bootstrap_ci95",
                                            json_pack("[f,f]", r->boot_lo, r->boot_hi));
                    }
                    json_object_set_new(x, "n_eff", json_real(r->n_eff));
                    json_object_set_new(x, "w_max", json_real(r->w_max));
                    json_object_set_new(x, "w_mean", json_real(r->w_mean));
                    json_object_set_new(x, "unsupported",
                                        isnan(r->unsupported) ? json_null()
                                                              : json_real(r->unsupported));
                    json_object_set_new(x, "warning", json_string(r->warning));
                }
                json_array_append_new(je, x);
            }
            json_object_set_new(one, "estimates", je);
            json_array_append_new(jp, one);
        }
        json_object_set_new(root, "policies", jp);
        if (cmp_est >= 0) {
            json_t *jc = json_object(), *jo = json_array(), *jm = json_array();
            json_object_set_new(jc, "estimator", json_string(causal_est_name(ests[cmp_est])));
            for (size_t p = 0; p < n_pol; p++) {
                json_array_append_new(jo, json_string(specs[order[p]]));
                json_t *row = json_array();
                for (size_t q2 = 0; q2 < n_pol; q2++) {
                    json_array_append_new(row, json_real(prob[order[p] * n_pol + order[q2]]));
                }
                json_array_append_new(jm, row);
            }
            json_object_set_new(jc, "order", jo);
            /* prob_greater[a][b]: bootstrap share in which order[a] beats order[b]. */
            json_object_set_new(jc, "prob_greater", jm);
            json_object_set_new(root, "comparison", jc);
        }
        json_dumpf(root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        printf("\n");
        json_decref(root);
    } else {
        printf("log %s: %zu impressions, %u queries (skipped: %zu shorter than %u, %zu later "
               "pages, %zu other feature sets); metric %s%s\n",
               db, L.n_recs, L.n_groups, L.n_skipped_short, k, L.n_skipped_offset,
               L.n_skipped_features, metric, strcmp(metric, "ctr") == 0 ? " (clicks@10)" : "");
        for (size_t p = 0; p < n_pol; p++) {
            printf("\npolicy %s\n", specs[p]);
            printf("  %-6s %9s  %-21s  %-21s  %9s %9s %7s\n", "est", "value", "95% CI (analytic)",
                   "95% CI (bootstrap)", "n_eff", "w_max", "w_mean");
            for (size_t e = 0; e < n_est; e++) {
                const causal_ope_result *r = &po[p].res[e];
                if (po[p].rc[e]) {
                    printf("  %-6s not valid: %s\n", causal_est_name(ests[e]), po[p].why[e]);
                    continue;
                }
                char ci[64], bci[64] = "-";
                snprintf(ci, sizeof ci, "[%.4f, %.4f]", r->ci_lo, r->ci_hi);
                if (n_boot) {
                    snprintf(bci, sizeof bci, "[%.4f, %.4f]", r->boot_lo, r->boot_hi);
                }
                printf("  %-6s %9.4f  %-21s  %-21s  %9.0f %9.3g %7.3f\n", causal_est_name(ests[e]),
                       r->value, ci, bci, r->n_eff, r->w_max, r->w_mean);
                if (r->warning[0]) {
                    printf("         warning: %s\n", r->warning);
                }
            }
        }
        if (cmp_est >= 0) {
            printf("\nranking by %s (P = bootstrap probability that the row beats the column)\n",
                   causal_est_name(ests[cmp_est]));
            for (size_t x = 0; x < n_pol; x++) {
                size_t p = order[x];
                printf("  %zu. %-28s %.4f", x + 1, specs[p], values[p]);
                if (x + 1 < n_pol) {
                    printf("   P(> #%zu) = %.3f", x + 2, prob[p * n_pol + order[x + 1]]);
                }
                printf("\n");
            }
        } else if (n_pol > 1) {
            printf("\nno estimator is valid for every policy: no comparison\n");
        }
    }
    free(values);
    free(prob);
    free(order);
    exit_code = n_ok_total > 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    if (n_ok_total == 0) {
        fprintf(stderr,
                "causeway ope: no estimator is valid on this log (see the reasons above)\n");
    }
    goto out;
fail:
    cli_fail(cmd, &err);
out:
    for (size_t p = 0; po && p < n_pol; p++) {
        policy_out_free(&po[p]);
    }
    for (size_t t = 0; t < n_tg; t++) {
        target_fini(&tg[t]);
    }
    free(po);
    free(clicks);
    free(groups);
    gamma_free(&gm);
    logdata_free(&L);
    return exit_code;
}
