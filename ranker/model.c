/* ranker/model.c: linear and one-hidden-layer MLP ranking models: scoring (CBLAS),
 * explanations, and the versioned JSON model file that training writes and the
 * server loads and hot-swaps. */
#include "config.h"

#include <cblas.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ranker/ranker_int.h"

static size_t params_for(rank_model_kind kind, size_t nf, size_t nh)
{
    return kind == RANK_MODEL_LINEAR ? nf + 1 : nh * nf + 2 * nh + 1;
}

static bool name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n < RANK_MAX_FEATURE_NAME;
}

int rank_model_new(rank_model_kind kind, size_t n_features, const char *const *names,
                   size_t n_hidden, cw_rng *rng, rank_model **out, cw_err *err)
{
    if (kind != RANK_MODEL_LINEAR && kind != RANK_MODEL_MLP) {
        return cw_err_set(err, CW_EINVAL, "unknown model kind %d", (int)kind);
    }
    if (n_features == 0 || n_features > RANK_MAX_FEATURES) {
        return cw_err_set(err, CW_EINVAL, "a model needs 1..%u features, got %zu",
                          RANK_MAX_FEATURES, n_features);
    }
    if (kind == RANK_MODEL_MLP && (n_hidden == 0 || n_hidden > RANK_MAX_HIDDEN)) {
        return cw_err_set(err, CW_EINVAL, "an MLP needs 1..%u hidden units, got %zu",
                          RANK_MAX_HIDDEN, n_hidden);
    }
    if (kind == RANK_MODEL_LINEAR) {
        n_hidden = 0;
    }
    for (size_t i = 0; i < n_features; i++) {
        if (!name_ok(names[i])) {
            return cw_err_set(err, CW_EINVAL, "feature %zu: name empty or over %u bytes", i,
                              RANK_MAX_FEATURE_NAME - 1);
        }
    }
    rank_model *m = calloc(1, sizeof *m);
    if (!m) {
        return cw_err_set(err, CW_ENOMEM, "out of memory for a model");
    }
    m->kind = kind;
    m->n_features = n_features;
    m->n_hidden = n_hidden;
    m->n_params = params_for(kind, n_features, n_hidden);
    m->names = calloc(n_features, sizeof *m->names);
    m->mean = calloc(n_features, sizeof *m->mean);
    m->scale = malloc(n_features * sizeof *m->scale);
    m->theta = calloc(m->n_params, sizeof *m->theta);
    size_t n_first = kind == RANK_MODEL_LINEAR ? n_features : n_hidden * n_features;
    m->wf = calloc(n_first, sizeof *m->wf);
    m->bf = calloc(kind == RANK_MODEL_LINEAR ? 1 : n_hidden, sizeof *m->bf);
    bool failed = !m->names || !m->mean || !m->scale || !m->theta || !m->wf || !m->bf;
    for (size_t i = 0; i < n_features && !failed; i++) {
        m->names[i] = strdup(names[i]);
        failed = !m->names[i];
        m->scale[i] = 1.0;
    }
    if (failed) {
        rank_model_free(m);
        return cw_err_set(err, CW_ENOMEM, "out of memory for a model");
    }
    if (kind == RANK_MODEL_MLP && rng) {
        /* He et al. (ICCV 2015) initialisation for ReLU layers: N(0, 2/fan_in). */
        double s1 = sqrt(2.0 / (double)n_features), s2 = sqrt(2.0 / (double)n_hidden);
        for (size_t i = 0; i < n_hidden * n_features; i++) {
            m->theta[i] = s1 * cw_rng_normal(rng);
        }
        double *v = m->theta + n_hidden * n_features + n_hidden;
        for (size_t i = 0; i < n_hidden; i++) {
            v[i] = s2 * cw_rng_normal(rng);
        }
    }
    rank_model_refresh(m);
    *out = m;
    return CW_OK;
}

void rank_model_free(rank_model *m)
{
    if (!m) {
        return;
    }
    for (size_t i = 0; m->names && i < m->n_features; i++) {
        free(m->names[i]);
    }
    free(m->names);
    free(m->mean);
    free(m->scale);
    free(m->theta);
    free(m->wf);
    free(m->bf);
    free(m->training_json);
    free(m->tree_root);
    free(m->node_feat);
    free(m->node_thr);
    free(m->node_left);
    free(m->node_right);
    free(m->node_flags);
    free(m->node_value);
    free(m);
}

rank_model_kind rank_model_get_kind(const rank_model *m)
{
    return m->kind;
}

size_t rank_model_n_features(const rank_model *m)
{
    return m->n_features;
}

const char *rank_model_feature_name(const rank_model *m, size_t i)
{
    return i < m->n_features ? m->names[i] : NULL;
}

void rank_model_refresh(rank_model *m)
{
    if (m->kind == RANK_MODEL_TREES) {
        return; /* trees read raw features */
    }
    size_t nf = m->n_features;
    size_t rows = m->kind == RANK_MODEL_LINEAR ? 1 : m->n_hidden;
    const double *w = m->theta;
    const double *b = m->kind == RANK_MODEL_LINEAR ? m->theta + nf : m->theta + rows * nf;
    /* w . (x - mean)/scale + b = (w/scale) . x + (b - sum w mean/scale). */
    for (size_t r = 0; r < rows; r++) {
        double bias = b[r];
        for (size_t i = 0; i < nf; i++) {
            double wi = w[r * nf + i] / m->scale[i];
            m->wf[r * nf + i] = wi;
            bias -= wi * m->mean[i];
        }
        m->bf[r] = bias;
    }
}

void rank_model_score_z(const rank_model *m, const double *theta, const double *z, size_t n,
                        double *hidden, double *scores)
{
    size_t nf = m->n_features, nh = m->n_hidden;
    if (n == 0) {
        return;
    }
    if (m->kind == RANK_MODEL_LINEAR) {
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)nf, 1.0, z, (int)nf, theta, 1, 0.0,
                    scores, 1);
        for (size_t j = 0; j < n; j++) {
            scores[j] += theta[nf];
        }
        return;
    }
    const double *W = theta, *b1 = theta + nh * nf, *v = b1 + nh, *b2 = v + nh;
    for (size_t j = 0; j < n; j++) {
        memcpy(hidden + j * nh, b1, nh * sizeof *hidden);
    }
    /* H = Z W^T + 1 b1^T, then ReLU. */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)nh, (int)nf, 1.0, z, (int)nf,
                W, (int)nf, 1.0, hidden, (int)nh);
    for (size_t i = 0; i < n * nh; i++) {
        hidden[i] = hidden[i] > 0 ? hidden[i] : 0;
    }
    cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)nh, 1.0, hidden, (int)nh, v, 1, 0.0,
                scores, 1);
    for (size_t j = 0; j < n; j++) {
        scores[j] += *b2;
    }
}

void rank_model_backward(const rank_model *m, const double *theta, const double *z, size_t n,
                         const double *hidden, const double *dscore, double *dh, double *grad)
{
    size_t nf = m->n_features, nh = m->n_hidden;
    if (n == 0) {
        return;
    }
    if (m->kind == RANK_MODEL_LINEAR) {
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)n, (int)nf, 1.0, z, (int)nf, dscore, 1, 1.0,
                    grad, 1);
        for (size_t j = 0; j < n; j++) {
            grad[nf] += dscore[j];
        }
        return;
    }
    const double *v = theta + nh * nf + nh;
    double *gW = grad, *gb1 = grad + nh * nf, *gv = gb1 + nh, *gb2 = gv + nh;
    /* dv = H^T ds; dH = ds v^T masked by ReLU'; dW = dH^T Z; db1 = column sums of dH. */
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)n, (int)nh, 1.0, hidden, (int)nh, dscore, 1, 1.0,
                gv, 1);
    for (size_t j = 0; j < n; j++) {
        *gb2 += dscore[j];
        for (size_t k = 0; k < nh; k++) {
            double d = hidden[j * nh + k] > 0 ? dscore[j] * v[k] : 0.0;
            dh[j * nh + k] = d;
            gb1[k] += d;
        }
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nh, (int)nf, (int)n, 1.0, dh, (int)nh,
                z, (int)nf, 1.0, gW, (int)nf);
}

/* MLP forward on raw features with the folded first layer. */
static void mlp_score_raw(const rank_model *m, const double *x, size_t n, double *hidden,
                          double *scores)
{
    size_t nf = m->n_features, nh = m->n_hidden;
    const double *v = m->theta + nh * nf + nh, *b2 = v + nh;
    for (size_t j = 0; j < n; j++) {
        memcpy(hidden + j * nh, m->bf, nh * sizeof *hidden);
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)nh, (int)nf, 1.0, x, (int)nf,
                m->wf, (int)nf, 1.0, hidden, (int)nh);
    for (size_t j = 0; j < n; j++) {
        double s = *b2;
        for (size_t k = 0; k < nh; k++) {
            double h = hidden[j * nh + k];
            s += h > 0 ? h * v[k] : 0.0;
        }
        scores[j] = s;
    }
}

int rank_model_score(const rank_model *m, const double *x, size_t n, double *scores, cw_err *err)
{
    size_t nf = m->n_features;
    if (n == 0) {
        return CW_OK;
    }
    if (m->kind == RANK_MODEL_TREES) {
        rank_trees_score(m, x, n, scores);
        return CW_OK;
    }
    if (m->kind == RANK_MODEL_LINEAR) {
        /* A plain loop beats dgemv call overhead for the ~100 candidates of a rerank. */
        for (size_t j = 0; j < n; j++) {
            const double *row = x + j * nf;
            double s = m->bf[0];
            for (size_t i = 0; i < nf; i++) {
                s += m->wf[i] * row[i];
            }
            scores[j] = s;
        }
        return CW_OK;
    }
    double stack[4096];
    size_t need = n * m->n_hidden;
    double *hidden = need <= CW_ARRAY_LEN(stack) ? stack : malloc(need * sizeof *hidden);
    if (!hidden) {
        return cw_err_set(err, CW_ENOMEM, "out of memory scoring %zu documents", n);
    }
    mlp_score_raw(m, x, n, hidden, scores);
    if (hidden != stack) {
        free(hidden);
    }
    return CW_OK;
}

#define IG_STEPS 32

int rank_model_explain(const rank_model *m, const double *x, double *contrib, double *bias,
                       cw_err *err)
{
    size_t nf = m->n_features, nh = m->n_hidden;
    if (m->kind == RANK_MODEL_TREES) {
        rank_trees_explain(m, x, contrib, bias);
        return CW_OK;
    }
    if (m->kind == RANK_MODEL_LINEAR) {
        for (size_t i = 0; i < nf; i++) {
            contrib[i] = m->theta[i] * (x[i] - m->mean[i]) / m->scale[i];
        }
        *bias = m->theta[nf];
        return CW_OK;
    }
    /* Integrated Gradients (Sundararajan, Taly & Yan, ICML 2017, eq. 1) along the straight
     * path from z = 0 (every feature at its mean) to z(x), midpoint Riemann sum. */
    double *z = malloc((2 * nf + nh) * sizeof *z);
    if (!z) {
        return cw_err_set(err, CW_ENOMEM, "out of memory explaining a score");
    }
    double *zt = z + nf, *pre = zt + nf;
    const double *W = m->theta, *b1 = W + nh * nf, *v = b1 + nh, *b2 = v + nh;
    for (size_t i = 0; i < nf; i++) {
        z[i] = (x[i] - m->mean[i]) / m->scale[i];
        contrib[i] = 0.0;
    }
    for (int s = 0; s < IG_STEPS; s++) {
        double a = (s + 0.5) / IG_STEPS;
        for (size_t i = 0; i < nf; i++) {
            zt[i] = a * z[i];
        }
        memcpy(pre, b1, nh * sizeof *pre);
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)nh, (int)nf, 1.0, W, (int)nf, zt, 1, 1.0, pre,
                    1);
        /* d score / d z_i = sum_k v_k 1[pre_k > 0] W_ki */
        for (size_t k = 0; k < nh; k++) {
            if (pre[k] > 0) {
                cblas_daxpy((int)nf, v[k] / IG_STEPS, W + k * nf, 1, contrib, 1);
            }
        }
    }
    for (size_t i = 0; i < nf; i++) {
        contrib[i] *= z[i];
    }
    double base = *b2;
    for (size_t k = 0; k < nh; k++) {
        base += b1[k] > 0 ? b1[k] * v[k] : 0.0;
    }
    *bias = base;
    free(z);
    return CW_OK;
}

/* ---- JSON ---------------------------------------------------------------- */

static const char *kind_name(rank_model_kind k)
{
    return k == RANK_MODEL_LINEAR ? "linear" : k == RANK_MODEL_MLP ? "mlp" : "trees";
}

static json_t *array_of(const double *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        if (json_array_append_new(a, json_real(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

int rank_model_to_json(const rank_model *m, char **out, cw_err *err)
{
    size_t nf = m->n_features, nh = m->n_hidden;
    json_t *root = json_object();
    json_t *names = json_array();
    json_t *norm = json_object();
    json_t *params = json_object();
    int rc = CW_ENOMEM;
    if (!root || !names || !norm || !params) {
        goto fail;
    }
    for (size_t i = 0; i < nf; i++) {
        if (json_array_append_new(names, json_string(m->names[i])) != 0) {
            goto fail;
        }
    }
    bool bad = json_object_set_new(root, "format", json_string(RANK_MODEL_FORMAT)) ||
               json_object_set_new(root, "version", json_integer(RANK_MODEL_VERSION)) ||
               json_object_set_new(root, "kind", json_string(kind_name(m->kind))) ||
               json_object_set_new(norm, "mean", array_of(m->mean, nf)) ||
               json_object_set_new(norm, "scale", array_of(m->scale, nf));
    if (m->kind == RANK_MODEL_TREES) {
        json_decref(params);
        params = rank_trees_params_json(m);
        bad = bad || !params;
    } else if (m->kind == RANK_MODEL_LINEAR) {
        bad = bad || json_object_set_new(params, "weights", array_of(m->theta, nf)) ||
              json_object_set_new(params, "bias", json_real(m->theta[nf]));
    } else {
        const double *b1 = m->theta + nh * nf, *v = b1 + nh;
        json_t *rows = json_array();
        bad = bad || !rows || json_object_set_new(params, "hidden", json_integer((json_int_t)nh)) ||
              json_object_set_new(params, "W1", rows);
        for (size_t k = 0; !bad && k < nh; k++) {
            bad = json_array_append_new(rows, array_of(m->theta + k * nf, nf)) != 0;
        }
        bad = bad || json_object_set_new(params, "b1", array_of(b1, nh)) ||
              json_object_set_new(params, "w2", array_of(v, nh)) ||
              json_object_set_new(params, "b2", json_real(v[nh]));
    }
    bad = bad || json_object_set(root, "features", names) ||
          json_object_set(root, "normalization", norm) || json_object_set(root, "params", params);
    if (!bad && m->training_json) {
        json_t *t = json_loads(m->training_json, 0, NULL);
        bad = !t || json_object_set_new(root, "training", t);
    }
    if (bad) {
        goto fail;
    }
    char *s = json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(17) | JSON_PRESERVE_ORDER);
    if (!s) {
        goto fail;
    }
    *out = s;
    rc = CW_OK;
fail:
    json_decref(names);
    json_decref(norm);
    json_decref(params);
    json_decref(root);
    if (rc != CW_OK) {
        return cw_err_set(err, rc, "out of memory writing a model as JSON");
    }
    return CW_OK;
}

int rank_model_save(const rank_model *m, const char *path, cw_err *err)
{
    char *s = NULL;
    int rc = rank_model_to_json(m, &s, err);
    if (rc != CW_OK) {
        return rc;
    }
    size_t n = strlen(s);
    s[n] = '\0';
    rc = cw_file_write_atomic(path, s, n, err);
    free(s);
    return rc;
}

/* Reads an array of exactly n finite numbers into out. */
static int read_numbers(const json_t *a, size_t n, double *out, const char *origin,
                        const char *what, cw_err *err)
{
    if (!json_is_array(a)) {
        return cw_err_set(err, CW_EPARSE, "%s: \"%s\" must be an array of numbers", origin, what);
    }
    if (json_array_size(a) != n) {
        return cw_err_set(err, CW_EPARSE, "%s: \"%s\" has %zu numbers, expected %zu", origin, what,
                          json_array_size(a), n);
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_number(v) || !isfinite(json_number_value(v))) {
            return cw_err_set(err, CW_EPARSE, "%s: \"%s\"[%zu] is not a finite number", origin,
                              what, i);
        }
        out[i] = json_number_value(v);
    }
    return CW_OK;
}

static int read_number(const json_t *v, double *out, const char *origin, const char *what,
                       cw_err *err)
{
    if (!json_is_number(v) || !isfinite(json_number_value(v))) {
        return cw_err_set(err, CW_EPARSE, "%s: \"%s\" must be a finite number", origin, what);
    }
    *out = json_number_value(v);
    return CW_OK;
}

static int model_from_root(const json_t *root, const char *origin, rank_model **out, cw_err *err)
{
    /* Tree dumps of other engines, recognised by their shape. */
    if (json_is_array(root) && json_array_size(root) > 0 &&
        json_is_object(json_array_get(root, 0)) &&
        json_object_get(json_array_get(root, 0), "nodeid")) {
        return rank_trees_from_xgboost(root, origin, out, err);
    }
    if (json_is_object(root) && json_object_get(root, "tree_info")) {
        return rank_trees_from_lightgbm(root, origin, out, err);
    }
    if (!json_is_object(root)) {
        return cw_err_set(err, CW_EPARSE, "%s: a model file is a JSON object", origin);
    }
    const json_t *fmt = json_object_get(root, "format");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), RANK_MODEL_FORMAT) != 0) {
        return cw_err_set(err, CW_EPARSE, "%s: \"format\" must be \"%s\"", origin,
                          RANK_MODEL_FORMAT);
    }
    const json_t *ver = json_object_get(root, "version");
    if (!json_is_integer(ver) || json_integer_value(ver) != RANK_MODEL_VERSION) {
        return cw_err_set(err, CW_EPARSE, "%s: unsupported model \"version\" (this build reads %d)",
                          origin, RANK_MODEL_VERSION);
    }
    const json_t *kind = json_object_get(root, "kind");
    rank_model_kind k;
    if (json_is_string(kind) && strcmp(json_string_value(kind), "linear") == 0) {
        k = RANK_MODEL_LINEAR;
    } else if (json_is_string(kind) && strcmp(json_string_value(kind), "mlp") == 0) {
        k = RANK_MODEL_MLP;
    } else if (json_is_string(kind) && strcmp(json_string_value(kind), "trees") == 0) {
        k = RANK_MODEL_TREES;
    } else {
        return cw_err_set(err, CW_EPARSE, "%s: \"kind\" must be \"linear\", \"mlp\" or \"trees\"",
                          origin);
    }
    const json_t *feats = json_object_get(root, "features");
    if (!json_is_array(feats) || json_array_size(feats) == 0 ||
        json_array_size(feats) > RANK_MAX_FEATURES) {
        return cw_err_set(err, CW_EPARSE, "%s: \"features\" must list 1..%u names", origin,
                          RANK_MAX_FEATURES);
    }
    size_t nf = json_array_size(feats);
    const char *names[RANK_MAX_FEATURES];
    for (size_t i = 0; i < nf; i++) {
        const json_t *s = json_array_get(feats, i);
        if (!json_is_string(s) || !name_ok(json_string_value(s))) {
            return cw_err_set(err, CW_EPARSE, "%s: \"features\"[%zu] must be a name of 1..%u bytes",
                              origin, i, RANK_MAX_FEATURE_NAME - 1);
        }
        names[i] = json_string_value(s);
    }
    const json_t *params = json_object_get(root, "params");
    if (!json_is_object(params)) {
        return cw_err_set(err, CW_EPARSE, "%s: missing object \"params\"", origin);
    }
    if (k == RANK_MODEL_TREES) {
        return rank_trees_from_params(params, names, nf, origin, out, err);
    }
    size_t nh = 0;
    if (k == RANK_MODEL_MLP) {
        const json_t *h = json_object_get(params, "hidden");
        if (!json_is_integer(h) || json_integer_value(h) < 1 ||
            json_integer_value(h) > (json_int_t)RANK_MAX_HIDDEN) {
            return cw_err_set(err, CW_EPARSE, "%s: \"params.hidden\" must be 1..%u", origin,
                              RANK_MAX_HIDDEN);
        }
        nh = (size_t)json_integer_value(h);
    }
    const json_t *norm = json_object_get(root, "normalization");
    if (!json_is_object(norm)) {
        return cw_err_set(err, CW_EPARSE, "%s: missing object \"normalization\"", origin);
    }
    rank_model *m = NULL;
    int rc = rank_model_new(k, nf, names, nh, NULL, &m, err);
    if (rc != CW_OK) {
        return rc == CW_ENOMEM ? rc : cw_err_prefix(err, "%s: ", origin);
    }
    rc =
        read_numbers(json_object_get(norm, "mean"), nf, m->mean, origin, "normalization.mean", err);
    if (rc == CW_OK) {
        rc = read_numbers(json_object_get(norm, "scale"), nf, m->scale, origin,
                          "normalization.scale", err);
    }
    for (size_t i = 0; rc == CW_OK && i < nf; i++) {
        if (!(m->scale[i] > 0)) {
            rc = cw_err_set(err, CW_EPARSE, "%s: \"normalization.scale\"[%zu] must be > 0", origin,
                            i);
        }
    }
    if (rc == CW_OK && k == RANK_MODEL_LINEAR) {
        rc = read_numbers(json_object_get(params, "weights"), nf, m->theta, origin,
                          "params.weights", err);
        if (rc == CW_OK) {
            rc = read_number(json_object_get(params, "bias"), m->theta + nf, origin, "params.bias",
                             err);
        }
    } else if (rc == CW_OK) {
        const json_t *rows = json_object_get(params, "W1");
        if (!json_is_array(rows) || json_array_size(rows) != nh) {
            rc = cw_err_set(err, CW_EPARSE, "%s: \"params.W1\" must hold %zu rows", origin, nh);
        }
        for (size_t r = 0; rc == CW_OK && r < nh; r++) {
            rc = read_numbers(json_array_get(rows, r), nf, m->theta + r * nf, origin,
                              "params.W1[row]", err);
        }
        double *b1 = m->theta + nh * nf;
        if (rc == CW_OK) {
            rc = read_numbers(json_object_get(params, "b1"), nh, b1, origin, "params.b1", err);
        }
        if (rc == CW_OK) {
            rc = read_numbers(json_object_get(params, "w2"), nh, b1 + nh, origin, "params.w2", err);
        }
        if (rc == CW_OK) {
            rc = read_number(json_object_get(params, "b2"), b1 + 2 * nh, origin, "params.b2", err);
        }
    }
    const json_t *tr = json_object_get(root, "training");
    if (rc == CW_OK && json_is_object(tr)) {
        m->training_json = json_dumps(tr, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!m->training_json) {
            rc = cw_err_set(err, CW_ENOMEM, "out of memory reading a model");
        }
    }
    if (rc != CW_OK) {
        rank_model_free(m);
        return rc;
    }
    rank_model_refresh(m);
    *out = m;
    return CW_OK;
}

int rank_model_from_json(const char *text, size_t len, const char *origin, rank_model **out,
                         cw_err *err)
{
    if (len > RANK_MAX_MODEL_BYTES) {
        return cw_err_set(err, CW_ELIMIT, "%s: model over %u bytes", origin, RANK_MAX_MODEL_BYTES);
    }
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root) {
        return cw_err_set(err, CW_EPARSE, "%s:%d:%d: %s", origin, je.line, je.column, je.text);
    }
    int rc = model_from_root(root, origin, out, err);
    json_decref(root);
    return rc;
}

int rank_model_load(const char *path, rank_model **out, cw_err *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = cw_file_read(path, RANK_MAX_MODEL_BYTES, &text, &len, err);
    if (rc != CW_OK) {
        return rc;
    }
    rc = rank_model_from_json(text, len, path, out, err);
    free(text);
    return rc;
}
