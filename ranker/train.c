/* ranker/train.c: (unbiased) learning to rank from click lists: naive, IPS (pointwise,
 * pairwise, listwise), DLA, doubly robust and supervised objectives, optimised with Adam
 * on minibatches of lists, early stopping on labelled validation data.
 * Data flow: click lists (ranker/clicks.c) + propensities (causal/) -> rank_model. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ranker/ranker_int.h"

static const char *const objective_names[] = {"naive", "ips", "dla", "dr", "supervised"};
static const char *const loss_names[] = {"listwise", "pairwise", "pointwise"};

const char *rank_objective_name(rank_objective o)
{
    return (size_t)o < CW_ARRAY_LEN(objective_names) ? objective_names[o] : "?";
}

const char *rank_loss_name(rank_loss l)
{
    return (size_t)l < CW_ARRAY_LEN(loss_names) ? loss_names[l] : "?";
}

int rank_objective_parse(const char *s, rank_objective *out, cw_err *err)
{
    for (size_t i = 0; i < CW_ARRAY_LEN(objective_names); i++) {
        if (strcmp(s, objective_names[i]) == 0) {
            *out = (rank_objective)i;
            return CW_OK;
        }
    }
    return cw_err_set(err, CW_EINVAL, "unknown objective \"%s\" (naive, ips, dla, dr, supervised)",
                      s);
}

int rank_loss_parse(const char *s, rank_loss *out, cw_err *err)
{
    for (size_t i = 0; i < CW_ARRAY_LEN(loss_names); i++) {
        if (strcmp(s, loss_names[i]) == 0) {
            *out = (rank_loss)i;
            return CW_OK;
        }
    }
    return cw_err_set(err, CW_EINVAL, "unknown loss \"%s\" (listwise, pairwise, pointwise)", s);
}

rank_train_opts rank_train_opts_default(void)
{
    rank_train_opts o;
    memset(&o, 0, sizeof o);
    o.objective = RANK_OBJ_IPS;
    o.loss = RANK_LOSS_LISTWISE;
    o.kind = RANK_MODEL_LINEAR;
    o.n_hidden = 32;
    o.lr = 0.003;
    o.dla_lr = 0.03;
    o.l2 = 1e-4;
    o.max_epochs = 200;
    o.patience = 40;
    o.batch_lists = 16;
    o.valid_k = 10;
    o.seed = 1;
    return o;
}

/* ---- nDCG for early stopping -------------------------------------------- */

typedef struct scored {
    double s;
    double y;
    size_t row;
} scored;

static int by_score_desc(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->s != y->s) {
        return x->s > y->s ? -1 : 1;
    }
    return x->row < y->row ? -1 : x->row > y->row;
}

double rank_letor_ndcg(const rank_letor *d, const double *scores, size_t k, size_t *n_used)
{
    size_t n_max = 0, used = 0;
    for (size_t q = 0; q < d->n_queries; q++) {
        n_max = CW_MAX(n_max, d->q_begin[q + 1] - d->q_begin[q]);
    }
    scored *v = malloc((n_max ? n_max : 1) * sizeof *v);
    double *ranked = malloc((n_max ? n_max : 1) * sizeof *ranked);
    double sum = 0;
    for (size_t q = 0; v && ranked && q < d->n_queries; q++) {
        size_t b = d->q_begin[q], n = d->q_begin[q + 1] - b;
        for (size_t i = 0; i < n; i++) {
            v[i] = (scored){scores[b + i], d->y[b + i], i};
        }
        /* LETOR rows have no docno to break ties like trec_eval: ties keep row order. */
        qsort(v, n, sizeof *v, by_score_desc);
        for (size_t i = 0; i < n; i++) {
            ranked[i] = v[i].y;
        }
        double nd = 0;
        /* IDCG over the candidate list (METHODS.md section 1, LETOR data). */
        if (rank_ndcg(ranked, n, d->y + b, n, (uint32_t)k, RANK_GAIN_EXP, RANK_IDCG0_DROP, &nd,
                      NULL) == CW_OK) {
            sum += nd;
            used++;
        }
    }
    free(v);
    free(ranked);
    if (n_used) {
        *n_used = used;
    }
    return used ? sum / (double)used : NAN;
}

/* ---- the training context ------------------------------------------------ */

typedef struct trainer {
    const rank_clicks *c;
    const rank_train_opts *o;
    rank_model *m;
    double *z;                        /* standardized x */
    double w_rank[RANK_MAX_RANK + 1]; /* IPS weight of rank k (index k), 1 for naive */
    double *target;                   /* DR: per slot N * max(R_DR, 0); NULL otherwise */
    double phi[RANK_MAX_RANK + 1];    /* DLA position logits (index k) */
    double gphi[RANK_MAX_RANK + 1];
    double mphi[RANK_MAX_RANK + 1], vphi[RANK_MAX_RANK + 1];
    /* scratch for one list */
    size_t max_n;
    double *zl, *s, *ds, *hidden, *dh, *a;
} trainer;

static double sigmoid(double x)
{
    return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
}

/* log(1 + e^x) without overflow */
static double softplus(double x)
{
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

/* Listwise softmax cross-entropy: L = -sum_j a_j log softmax(s)_j (METHODS.md section 5,
 * ULTRA's softmax loss without its batch normalisation); dL/ds_j = A p_j - a_j. */
double rank_loss_listwise(const double *s, const double *a, size_t n, double *ds)
{
    double mx = -INFINITY, A = 0;
    for (size_t j = 0; j < n; j++) {
        mx = CW_MAX(mx, s[j]);
        A += a[j];
    }
    double z = 0;
    for (size_t j = 0; j < n; j++) {
        z += exp(s[j] - mx);
    }
    double lse = mx + log(z), loss = 0;
    for (size_t j = 0; j < n; j++) {
        double p = exp(s[j] - lse);
        ds[j] = A * p - a[j];
        loss -= a[j] ? a[j] * (s[j] - lse) : 0;
    }
    return loss;
}

/* Propensity SVM-Rank (Joachims et al. WSDM 2017, METHODS.md section 5):
 * L = sum_j a_j sum_{i != j} max(0, 1 - (s_j - s_i)); subgradient at the hinge = 0. */
double rank_loss_pairwise(const double *s, const double *a, size_t n, double *ds)
{
    double loss = 0;
    memset(ds, 0, n * sizeof *ds);
    for (size_t j = 0; j < n; j++) {
        if (a[j] == 0) {
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            double h = 1 - (s[j] - s[i]);
            if (i != j && h > 0) {
                loss += a[j] * h;
                ds[j] -= a[j];
                ds[i] += a[j];
            }
        }
    }
    return loss;
}

/* Pointwise IPS (Saito et al. WSDM 2020, METHODS.md section 5) summed over the N
 * sessions of a list: L = -[a log sigma(s) + (N - a) log(1 - sigma(s))], a = c / theta;
 * dL/ds = N sigma(s) - a. N - a < 0 makes it unbounded below: clip theta and use l2. */
double rank_loss_pointwise(const double *s, const double *a, size_t n, double N, double *ds)
{
    double loss = 0;
    for (size_t j = 0; j < n; j++) {
        loss += a[j] * softplus(-s[j]) + (N - a[j]) * softplus(s[j]);
        ds[j] = N * sigmoid(s[j]) - a[j];
    }
    return loss;
}

static double theta_at(const rank_train_opts *o, uint32_t k)
{
    if (o->n_theta == 0 || k == 0) {
        return 1.0;
    }
    double t = o->theta[CW_MIN((size_t)k, o->n_theta) - 1];
    return o->clip > 0 ? CW_MAX(t, o->clip) : t;
}

/* Loss of list l at parameters theta; adds its parameter gradient into grad (and the DLA
 * position gradient into t->gphi). Returns the loss. */
static double list_step(trainer *t, size_t l, double *grad)
{
    const rank_clicks *c = t->c;
    const rank_train_opts *o = t->o;
    size_t b = c->list_begin[l], n_all = c->list_begin[l + 1] - b, nf = c->n_features;
    /* Policy-aware IPS scores every candidate of the query: its unbiased risk sums
     * c(d)/rho(d) over all candidates (Oosterhuis & de Rijke SIGIR 2020, eq. 10), so the
     * softmax runs over them all; within the shown list only, rarely shown documents
     * would also rarely be negatives and their 1/rho clicks would dominate. */
    bool aware = o->objective == RANK_OBJ_IPS && c->row_rho;
    bool all_slots = o->objective == RANK_OBJ_SUPERVISED || o->objective == RANK_OBJ_DR || aware;
    size_t n = 0;
    for (size_t j = 0; j < n_all; j++) {
        if (!all_slots && c->slot_rank[b + j] == 0) {
            break; /* unshown candidates sort last */
        }
        memcpy(t->zl + n * nf, t->z + c->slot_row[b + j] * nf, nf * sizeof *t->zl);
        n++;
    }
    if (n == 0) {
        return 0;
    }
    rank_model_score_z(t->m, t->m->theta, t->zl, n, t->hidden, t->s);
    double N = c->list_n[l];
    double cap = o->clip > 0 ? 1 / o->clip : INFINITY;
    for (size_t j = 0; j < n; j++) {
        double clicks = c->slot_clicks[b + j];
        uint32_t k = c->slot_rank[b + j];
        switch (o->objective) {
        case RANK_OBJ_DR: t->a[j] = t->target[b + j]; break;
        case RANK_OBJ_DLA:
            /* Ai et al. (SIGIR 2018) eq. 9: IPW_k = g_1 / g_k with g = softmax(phi). */
            t->a[j] = clicks ? clicks * CW_MIN(exp(t->phi[1] - t->phi[k]), cap) : 0;
            break;
        default: {
            const double *rho = c->row_rho;
            double r = rho && o->objective == RANK_OBJ_IPS ? rho[c->slot_row[b + j]] : NAN;
            /* policy-aware IPS (METHODS.md section 5): 1/rho(d), rho in theta_1 units, so
             * listwise theta_1/rho; clipped like theta */
            double w = isnan(r) ? t->w_rank[k]
                                : (o->loss == RANK_LOSS_LISTWISE ? theta_at(o, 1) : 1.0) /
                                      CW_MAX(r * (o->n_theta ? o->theta[0] : 1.0), o->clip);
            t->a[j] = clicks ? clicks * w : 0;
            break;
        }
        }
    }
    double loss;
    switch (o->loss) {
    case RANK_LOSS_PAIRWISE: loss = rank_loss_pairwise(t->s, t->a, n, t->ds); break;
    case RANK_LOSS_POINTWISE: loss = rank_loss_pointwise(t->s, t->a, n, N, t->ds); break;
    default: loss = rank_loss_listwise(t->s, t->a, n, t->ds); break;
    }
    rank_model_backward(t->m, t->m->theta, t->zl, n, t->hidden, t->ds, t->dh, grad);
    if (o->objective == RANK_OBJ_DLA) {
        /* The propensity model's listwise loss with inverse relevance weights
         * r(first)/r(d), r = softmax of the ranker's scores (Ai et al. eq. 10, ULTRA's
         * dla.py), capped like the ranker's weights. */
        double mx = -INFINITY, mp = -INFINITY;
        for (size_t j = 0; j < n; j++) {
            mx = CW_MAX(mx, t->s[j]);
            mp = CW_MAX(mp, t->phi[c->slot_rank[b + j]]);
        }
        double zp = 0, W = 0;
        for (size_t j = 0; j < n; j++) {
            zp += exp(t->phi[c->slot_rank[b + j]] - mp);
            double clicks = c->slot_clicks[b + j];
            t->a[j] = clicks ? clicks * CW_MIN(exp(t->s[0] - t->s[j]), cap) : 0;
            W += t->a[j];
        }
        for (size_t j = 0; j < n; j++) {
            uint32_t k = c->slot_rank[b + j];
            double q = exp(t->phi[k] - mp) / zp;
            t->gphi[k] += W * q - t->a[j];
        }
    }
    return loss;
}

static int standardize(trainer *t, cw_err *err)
{
    const rank_clicks *c = t->c;
    size_t nf = c->n_features, nr = c->n_rows;
    rank_model *m = t->m;
    for (size_t i = 0; i < nf; i++) {
        double mean = 0, var = 0;
        for (size_t r = 0; r < nr; r++) {
            mean += c->x[r * nf + i];
        }
        mean /= (double)nr;
        for (size_t r = 0; r < nr; r++) {
            double d = c->x[r * nf + i] - mean;
            var += d * d;
        }
        double sd = sqrt(var / (double)nr);
        m->mean[i] = mean;
        m->scale[i] = sd > 1e-12 ? sd : 1.0;
    }
    t->z = malloc(nr * nf * sizeof *t->z);
    if (!t->z) {
        return cw_err_set(err, CW_ENOMEM, "out of memory standardizing %zu rows", nr);
    }
    for (size_t r = 0; r < nr; r++) {
        for (size_t i = 0; i < nf; i++) {
            t->z[r * nf + i] = (c->x[r * nf + i] - m->mean[i]) / m->scale[i];
        }
    }
    return CW_OK;
}

static double valid_score(rank_model *m, const rank_letor *valid, double *vs, size_t k)
{
    rank_model_refresh(m);
    if (rank_model_score(m, valid->x, valid->n_rows, vs, NULL) != CW_OK) {
        return NAN;
    }
    return rank_letor_ndcg(valid, vs, k, NULL);
}

static bool all_finite(const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) {
            return false;
        }
    }
    return true;
}

static int train_impl(const rank_clicks *c, const rank_letor *valid, const char *const *names,
                      const rank_train_opts *o, const double *dr_target, rank_model **out,
                      rank_train_report *rep, cw_err *err);

/* DR targets (Oosterhuis, arXiv 2203.17118, eq. 14 for PBM: alpha_k = theta_k, beta = 0):
 * R(d) = yhat(d) + (c(d)/N - theta_k yhat(d)) / max(theta_k, tau) for a slot shown at k,
 * yhat(d) for a candidate not shown (rho = 0: only the regression part). The regression
 * yhat = sigma(score) of a pointwise IPS model trained first on the same lists. The
 * exposure rho(d) is the theta of the list's rank: every list stands for sessions that saw
 * one ranking. Negative estimates are clipped to 0 for the softmax loss (a deviation:
 * it keeps the listwise loss bounded below; with PBM and an unclipped theta a shown
 * document's estimate c/(N theta) is never negative anyway). */
static int dr_targets(const rank_clicks *c, const rank_letor *valid, const char *const *names,
                      const rank_train_opts *o, double **out, cw_err *err)
{
    rank_train_opts po = *o;
    po.objective = RANK_OBJ_IPS;
    po.loss = RANK_LOSS_POINTWISE;
    po.on_epoch = NULL; /* the observer follows the model returned, not this regression */
    rank_model *reg = NULL;
    int rc = train_impl(c, valid, names, &po, NULL, &reg, NULL, err);
    if (rc != CW_OK) {
        return cw_err_prefix(err, "doubly robust regression model: ");
    }
    double *target = malloc((c->n_slots ? c->n_slots : 1) * sizeof *target);
    if (!target) {
        rank_model_free(reg);
        return cw_err_set(err, CW_ENOMEM, "out of memory for DR targets");
    }
    size_t nf = c->n_features;
    for (size_t l = 0; l < c->n_lists; l++) {
        double N = c->list_n[l];
        for (size_t j = c->list_begin[l]; j < c->list_begin[l + 1]; j++) {
            double s = 0;
            rc = rank_model_score(reg, c->x + c->slot_row[j] * nf, 1, &s, err);
            if (rc != CW_OK) {
                break;
            }
            double yhat = sigmoid(s), r = yhat;
            uint32_t k = c->slot_rank[j];
            if (k > 0) {
                double th = o->n_theta ? o->theta[CW_MIN((size_t)k, o->n_theta) - 1] : 1.0;
                r = yhat + (c->slot_clicks[j] / N - th * yhat) / theta_at(o, k);
            }
            target[j] = N * CW_MAX(r, 0.0);
        }
    }
    rank_model_free(reg);
    if (rc != CW_OK) {
        free(target);
        return rc;
    }
    *out = target;
    return CW_OK;
}

int rank_train(const rank_clicks *c, const rank_letor *valid, const char *const *names,
               const rank_train_opts *o, rank_model **out, rank_train_report *rep, cw_err *err)
{
    if ((o->objective == RANK_OBJ_DLA || o->objective == RANK_OBJ_DR) &&
        o->loss != RANK_LOSS_LISTWISE) {
        return cw_err_set(err, CW_EINVAL, "objective %s is listwise only (got loss %s)",
                          rank_objective_name(o->objective), rank_loss_name(o->loss));
    }
    if (o->objective == RANK_OBJ_DR) {
        double *target = NULL;
        int rc = dr_targets(c, valid, names, o, &target, err);
        if (rc != CW_OK) {
            return rc;
        }
        rc = train_impl(c, valid, names, o, target, out, rep, err);
        free(target);
        return rc;
    }
    return train_impl(c, valid, names, o, NULL, out, rep, err);
}

static int train_impl(const rank_clicks *c, const rank_letor *valid, const char *const *names,
                      const rank_train_opts *o, const double *dr_target, rank_model **out,
                      rank_train_report *rep, cw_err *err)
{
    if (c->n_lists == 0) {
        return cw_err_set(err, CW_EINVAL, "no click lists to train on");
    }
    if (valid && valid->n_features != c->n_features) {
        return cw_err_set(err, CW_EINVAL, "validation data has %zu features, training %zu",
                          valid->n_features, c->n_features);
    }
    if (!(o->lr > 0) || !(o->dla_lr > 0) || !(o->l2 >= 0) || o->batch_lists == 0 ||
        o->n_theta > RANK_MAX_RANK || !(o->clip >= 0 && o->clip < 1) ||
        !(o->avg_epochs >= 0 && o->avg_epochs <= 1e6)) {
        return cw_err_set(err, CW_EINVAL,
                          "bad training options (lr > 0, dla_lr > 0, l2 >= 0, batch >= 1, "
                          "clip in [0,1), avg_epochs in [0,1e6])");
    }
    for (size_t k = 0; k < o->n_theta; k++) {
        if (!(o->theta[k] > 0 && o->theta[k] <= 1e6)) {
            return cw_err_set(err, CW_EINVAL, "propensity theta_%zu = %g must be > 0", k + 1,
                              o->theta[k]);
        }
    }
    cw_rng rng;
    cw_rng_seed(&rng, o->seed);
    trainer t;
    memset(&t, 0, sizeof t);
    t.c = c;
    t.o = o;
    t.target = (double *)dr_target;
    int rc = rank_model_new(o->kind, c->n_features, names, o->n_hidden, &rng, &t.m, err);
    if (rc != CW_OK) {
        return rc;
    }
    size_t np = t.m->n_params, nf = c->n_features, nh = CW_MAX(t.m->n_hidden, (size_t)1);
    for (size_t l = 0; l < c->n_lists; l++) {
        t.max_n = CW_MAX(t.max_n, c->list_begin[l + 1] - c->list_begin[l]);
    }
    /* IPS weights (METHODS.md section 5): listwise theta_1/theta_k (relative to rank 1,
     * ULTRA's default), pairwise and pointwise 1/theta_k; theta clipped at tau. */
    for (uint32_t k = 0; k <= RANK_MAX_RANK; k++) {
        double w = 1.0;
        if (o->objective == RANK_OBJ_IPS && k > 0) {
            w = o->loss == RANK_LOSS_LISTWISE ? theta_at(o, 1) / theta_at(o, k)
                                              : 1.0 / theta_at(o, k);
        }
        t.w_rank[k] = w;
    }
    double *grad = calloc(np, sizeof *grad), *m1 = calloc(np, sizeof *m1),
           *m2 = calloc(np, sizeof *m2), *best = malloc(np * sizeof *best);
    bool avg_on = o->avg_epochs > 0;
    double *avg = avg_on ? calloc(np, sizeof *avg) : NULL;
    double *raw = avg_on ? malloc(np * sizeof *raw) : NULL;
    size_t *order = malloc(c->n_lists * sizeof *order);
    double *vs = valid ? malloc((valid->n_rows ? valid->n_rows : 1) * sizeof *vs) : NULL;
    t.zl = malloc(t.max_n * nf * sizeof *t.zl);
    t.s = malloc(t.max_n * sizeof *t.s);
    t.ds = malloc(t.max_n * sizeof *t.ds);
    t.a = malloc(t.max_n * sizeof *t.a);
    t.hidden = malloc(t.max_n * nh * sizeof *t.hidden);
    t.dh = malloc(t.max_n * nh * sizeof *t.dh);
    if (!grad || !m1 || !m2 || !best || !order || (valid && !vs) || !t.zl || !t.s || !t.ds ||
        !t.a || !t.hidden || !t.dh || (avg_on && (!avg || !raw))) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory for training");
        goto fail;
    }
    rc = standardize(&t, err);
    if (rc != CW_OK) {
        goto fail;
    }
    for (size_t l = 0; l < c->n_lists; l++) {
        order[l] = l;
    }
    rank_train_report r;
    memset(&r, 0, sizeof r);
    for (size_t k = 0; k < RANK_MAX_RANK; k++) {
        r.dla_theta[k] = NAN;
    }
    r.best_valid = valid ? valid_score(t.m, valid, vs, o->valid_k) : NAN;
    memcpy(best, t.m->theta, np * sizeof *best);
    double phi_best[RANK_MAX_RANK + 1];
    memcpy(phi_best, t.phi, sizeof phi_best);
    uint64_t t0 = cw_now_ns(), step = 0;
    /* Adam (Kingma & Ba, ICLR 2015, Algorithm 1), default betas and epsilon. */
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    /* Iterate averaging (Polyak & Juditsky, SIAM J. Control Optim. 1992) in its exponential
     * form: avg <- beta avg + (1 - beta) theta after every step, read bias-corrected as
     * avg / (1 - beta^step) (zero start, as Adam's moments), time constant avg_epochs epochs
     * of steps. Minibatch steps with large inverse-propensity weights make the iterates
     * jitter from epoch to epoch by more than the differences early stopping must tell
     * apart; the average keeps the trend and drops most of the jitter. */
    double steps_per_epoch = ceil((double)c->n_lists / (double)o->batch_lists);
    double avg_beta = avg_on ? CW_MAX(0.0, 1 - 1 / (o->avg_epochs * steps_per_epoch)) : 0;
    double avg_pow = 1; /* beta^step */
    uint32_t since_best = 0;
    for (uint32_t epoch = 1; epoch <= o->max_epochs; epoch++) {
        if (cw_interrupted()) {
            rc = cw_err_set(err, CW_EINTR, "training interrupted at epoch %u", epoch);
            goto fail;
        }
        cw_rng_shuffle(&rng, order, c->n_lists, sizeof *order);
        double epoch_loss = 0, epoch_n = 0;
        for (size_t i0 = 0; i0 < c->n_lists; i0 += o->batch_lists) {
            size_t i1 = CW_MIN(i0 + o->batch_lists, c->n_lists);
            memset(grad, 0, np * sizeof *grad);
            memset(t.gphi, 0, sizeof t.gphi);
            double batch_n = 0;
            for (size_t i = i0; i < i1; i++) {
                size_t l = order[i];
                epoch_loss += list_step(&t, l, grad);
                batch_n += c->list_n[l];
                r.pairs += c->list_n[l] * (double)(c->list_begin[l + 1] - c->list_begin[l]);
            }
            epoch_n += batch_n;
            step++;
            double bc1 = 1 - pow(b1, (double)step), bc2 = 1 - pow(b2, (double)step);
            for (size_t p = 0; p < np; p++) {
                double g = grad[p] / batch_n + o->l2 * t.m->theta[p];
                m1[p] = b1 * m1[p] + (1 - b1) * g;
                m2[p] = b2 * m2[p] + (1 - b2) * g * g;
                t.m->theta[p] -= o->lr * (m1[p] / bc1) / (sqrt(m2[p] / bc2) + eps);
            }
            if (o->objective == RANK_OBJ_DLA) {
                for (size_t k = 1; k <= RANK_MAX_RANK; k++) {
                    double g = t.gphi[k] / batch_n;
                    t.mphi[k] = b1 * t.mphi[k] + (1 - b1) * g;
                    t.vphi[k] = b2 * t.vphi[k] + (1 - b2) * g * g;
                    t.phi[k] -= o->dla_lr * (t.mphi[k] / bc1) / (sqrt(t.vphi[k] / bc2) + eps);
                }
            }
            if (avg_on) {
                for (size_t p = 0; p < np; p++) {
                    avg[p] = avg_beta * avg[p] + (1 - avg_beta) * t.m->theta[p];
                }
                avg_pow *= avg_beta;
            }
        }
        r.epochs = epoch;
        r.final_loss = epoch_loss / epoch_n;
        if (!isfinite(r.final_loss) || !all_finite(t.m->theta, np)) {
            rc = cw_err_set(err, CW_ENUMERIC,
                            "objective %s/%s diverged at epoch %u (loss %g, lr %g): lower --lr "
                            "or clip propensities",
                            rank_objective_name(o->objective), rank_loss_name(o->loss), epoch,
                            r.final_loss, o->lr);
            goto fail;
        }
        if (avg_on) {
            /* validate, observe and keep the average; training resumes from raw */
            memcpy(raw, t.m->theta, np * sizeof *raw);
            for (size_t p = 0; p < np; p++) {
                t.m->theta[p] = avg[p] / (1 - avg_pow);
            }
        }
        double v = NAN;
        if (valid) {
            v = valid_score(t.m, valid, vs, o->valid_k);
        }
        if (o->on_epoch) {
            rank_model_refresh(t.m);
            o->on_epoch(o->on_epoch_ctx, epoch, t.m, v);
        }
        if (valid) {
            if (v > r.best_valid) {
                r.best_valid = v;
                r.best_epoch = epoch;
                memcpy(best, t.m->theta, np * sizeof *best);
                memcpy(phi_best, t.phi, sizeof phi_best);
                since_best = 0;
            } else if (++since_best >= o->patience) {
                break; /* best is restored below */
            }
        }
        if (avg_on && epoch < o->max_epochs) {
            memcpy(t.m->theta, raw, np * sizeof *raw); /* after the last epoch keep the average */
        }
        cw_progress_report(&o->progress, "train", epoch, o->max_epochs);
    }
    if (valid) {
        memcpy(t.m->theta, best, np * sizeof *best);
        memcpy(t.phi, phi_best, sizeof phi_best);
    } else {
        r.best_epoch = r.epochs;
    }
    if (o->objective == RANK_OBJ_DLA) {
        for (size_t k = 1; k <= RANK_MAX_RANK; k++) {
            r.dla_theta[k - 1] = exp(t.phi[k] - t.phi[1]);
        }
    }
    r.seconds = (double)(cw_now_ns() - t0) * 1e-9;
    rank_model_refresh(t.m);
    {
        cw_buf b = {0};
        int wrc = cw_buf_printf(&b,
                                "{\"objective\":\"%s\",\"loss\":\"%s\",\"clip\":%.17g,"
                                "\"lr\":%.17g,\"l2\":%.17g,\"avg_epochs\":%.17g,\"seed\":%llu,"
                                "\"epochs\":%u,\"best_epoch\":%u,\"n_theta\":%zu,\"theta\":[",
                                rank_objective_name(o->objective), rank_loss_name(o->loss), o->clip,
                                o->lr, o->l2, o->avg_epochs, (unsigned long long)o->seed, r.epochs,
                                r.best_epoch, o->n_theta);
        for (size_t k = 0; wrc == CW_OK && k < o->n_theta; k++) {
            wrc = cw_buf_printf(&b, "%s%.17g", k ? "," : "", o->theta[k]);
        }
        if (wrc == CW_OK) {
            wrc = cw_buf_printf(&b, "]}");
        }
        if (wrc != CW_OK) {
            cw_buf_fini(&b);
            rc = cw_err_set(err, CW_ENOMEM, "out of memory describing the model");
            goto fail;
        }
        t.m->training_json = b.data;
    }
    if (rep) {
        *rep = r;
    }
    *out = t.m;
    t.m = NULL;
    rc = CW_OK;
fail:
    rank_model_free(t.m);
    free(grad);
    free(m1);
    free(m2);
    free(best);
    free(avg);
    free(raw);
    free(order);
    free(vs);
    free(t.z);
    free(t.zl);
    free(t.s);
    free(t.ds);
    free(t.a);
    free(t.hidden);
    free(t.dh);
    return rc;
}
