/* ranker/trees.c: additive regression-tree ensembles imported from XGBoost and LightGBM
 * JSON dumps (the model format users of other engines bring), scored and explained
 * like any rank_model and saved in causeway's own "trees" format. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ranker/ranker_int.h"

#define MAX_DEPTH 512 /* nesting of one imported tree (recursion bound) */

/* Growable node arrays and the feature names met while parsing. */
typedef struct builder {
    size_t n, cap;
    int32_t *feat;
    double *thr;
    uint32_t *left, *right;
    uint8_t *flags;
    double *value;
    double *cover; /* XGBoost "cover" or NAN, for the expected value of internal nodes */
    size_t n_trees, cap_trees;
    size_t *root;
    char **names;
    size_t n_names;
    const char *origin;
} builder;

static void builder_fini(builder *b)
{
    free(b->feat);
    free(b->thr);
    free(b->left);
    free(b->right);
    free(b->flags);
    free(b->value);
    free(b->cover);
    free(b->root);
    for (size_t i = 0; i < b->n_names; i++) {
        free(b->names[i]);
    }
    free(b->names);
}

static int grow(void **p, size_t cap, size_t elem)
{
    void *q = realloc(*p, cap * elem);
    if (!q) {
        return CW_ENOMEM;
    }
    *p = q;
    return CW_OK;
}

/* A new node (index in *out); fields zeroed, a leaf until set. */
static int new_node(builder *b, uint32_t *out, cw_err *err)
{
    if (b->n >= RANK_MAX_TREE_NODES) {
        return cw_err_set(err, CW_ELIMIT, "%s: over %u tree nodes", b->origin, RANK_MAX_TREE_NODES);
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 1024;
        if (grow((void **)&b->feat, cap, sizeof *b->feat) ||
            grow((void **)&b->thr, cap, sizeof *b->thr) ||
            grow((void **)&b->left, cap, sizeof *b->left) ||
            grow((void **)&b->right, cap, sizeof *b->right) ||
            grow((void **)&b->flags, cap, sizeof *b->flags) ||
            grow((void **)&b->value, cap, sizeof *b->value) ||
            grow((void **)&b->cover, cap, sizeof *b->cover)) {
            return cw_err_set(err, CW_ENOMEM, "out of memory reading trees");
        }
        b->cap = cap;
    }
    size_t i = b->n++;
    b->feat[i] = -1;
    b->thr[i] = 0;
    b->left[i] = b->right[i] = 0;
    b->flags[i] = 0;
    b->value[i] = 0;
    b->cover[i] = NAN;
    *out = (uint32_t)i;
    return CW_OK;
}

static int add_root(builder *b, size_t root, cw_err *err)
{
    if (b->n_trees == b->cap_trees) {
        size_t cap = b->cap_trees ? 2 * b->cap_trees : 64;
        if (grow((void **)&b->root, cap, sizeof *b->root)) {
            return cw_err_set(err, CW_ENOMEM, "out of memory reading trees");
        }
        b->cap_trees = cap;
    }
    b->root[b->n_trees++] = root;
    return CW_OK;
}

/* Index of a feature name, added if new. */
static int name_index(builder *b, const char *name, int32_t *out, cw_err *err)
{
    for (size_t i = 0; i < b->n_names; i++) {
        if (strcmp(b->names[i], name) == 0) {
            *out = (int32_t)i;
            return CW_OK;
        }
    }
    size_t len = strlen(name);
    if (len == 0 || len >= RANK_MAX_FEATURE_NAME || b->n_names >= RANK_MAX_FEATURES) {
        return cw_err_set(err, CW_EPARSE,
                          "%s: feature \"%.80s\": empty, over %u bytes or over %u "
                          "features",
                          b->origin, name, RANK_MAX_FEATURE_NAME - 1, RANK_MAX_FEATURES);
    }
    if (b->n_names % 64 == 0 && grow((void **)&b->names, b->n_names + 64, sizeof *b->names)) {
        return cw_err_set(err, CW_ENOMEM, "out of memory reading trees");
    }
    b->names[b->n_names] = strdup(name);
    if (!b->names[b->n_names]) {
        return cw_err_set(err, CW_ENOMEM, "out of memory reading trees");
    }
    *out = (int32_t)b->n_names++;
    return CW_OK;
}

/* Expected value of an internal node from its children: cover-weighted when both covers
 * are known (what Saabas' attribution uses), else their plain mean. */
static void set_internal_value(builder *b, uint32_t i)
{
    uint32_t l = b->left[i], r = b->right[i];
    double cl = b->cover[l], cr = b->cover[r];
    if (isfinite(cl) && isfinite(cr) && cl + cr > 0) {
        b->value[i] = (cl * b->value[l] + cr * b->value[r]) / (cl + cr);
        b->cover[i] = cl + cr;
    } else {
        b->value[i] = 0.5 * (b->value[l] + b->value[r]);
    }
}

static const json_t *child_with_id(const json_t *children, json_int_t id)
{
    for (size_t i = 0; i < json_array_size(children); i++) {
        const json_t *c = json_array_get(children, i);
        const json_t *nid = json_object_get(c, "nodeid");
        if (json_is_integer(nid) && json_integer_value(nid) == id) {
            return c;
        }
    }
    return NULL;
}

static bool finite_number(const json_t *v)
{
    return json_is_number(v) && isfinite(json_number_value(v));
}

/* Opens one imported node: checks the nesting bound, allocates node *out and, when node
 * has leaf_key, stores that finite value and sets *is_leaf (the shared start of both
 * JSON dump readers). */
static int open_node(builder *b, const json_t *node, const char *leaf_key, size_t t, int depth,
                     uint32_t *out, bool *is_leaf, cw_err *err)
{
    if (depth > MAX_DEPTH || !json_is_object(node)) {
        return cw_err_set(err, CW_EPARSE,
                          "%s: tree %zu: a node is not an object or nests over "
                          "%d levels",
                          b->origin, t, MAX_DEPTH);
    }
    uint32_t i;
    int rc = new_node(b, &i, err);
    if (rc != CW_OK) {
        return rc;
    }
    const json_t *leaf = json_object_get(node, leaf_key);
    if (leaf) {
        if (!finite_number(leaf)) {
            return cw_err_set(err, CW_EPARSE, "%s: tree %zu: \"%s\" must be a finite number",
                              b->origin, t, leaf_key);
        }
        b->value[i] = json_number_value(leaf);
    }
    *is_leaf = leaf != NULL;
    *out = i;
    return CW_OK;
}

/* One XGBoost dump node and its subtree (the dump's own nesting). */
static int xgb_node(builder *b, const json_t *node, size_t t, int depth, uint32_t *out, cw_err *err)
{
    uint32_t i;
    bool is_leaf;
    int rc = open_node(b, node, "leaf", t, depth, &i, &is_leaf, err);
    if (rc != CW_OK) {
        return rc;
    }
    const json_t *cover = json_object_get(node, "cover");
    b->cover[i] = finite_number(cover) ? json_number_value(cover) : NAN;
    if (is_leaf) {
        *out = i;
        return CW_OK;
    }
    const json_t *split = json_object_get(node, "split");
    const json_t *cond = json_object_get(node, "split_condition");
    const json_t *yes = json_object_get(node, "yes"), *no = json_object_get(node, "no");
    const json_t *missing = json_object_get(node, "missing");
    const json_t *children = json_object_get(node, "children");
    if (!(json_is_string(split) || json_is_integer(split)) || !finite_number(cond) ||
        !json_is_integer(yes) || !json_is_integer(no) || !json_is_array(children)) {
        return cw_err_set(err, CW_EPARSE,
                          "%s: tree %zu: a split node needs \"split\", a finite "
                          "\"split_condition\", \"yes\", \"no\" and \"children\"",
                          b->origin, t);
    }
    char idx_name[32];
    const char *name = json_is_string(split) ? json_string_value(split) : idx_name;
    if (json_is_integer(split)) {
        snprintf(idx_name, sizeof idx_name, "f%lld", (long long)json_integer_value(split));
    }
    int32_t f;
    rc = name_index(b, name, &f, err);
    if (rc != CW_OK) {
        return rc;
    }
    const json_t *lc = child_with_id(children, json_integer_value(yes));
    const json_t *rcn = child_with_id(children, json_integer_value(no));
    if (!lc || !rcn || lc == rcn) {
        return cw_err_set(err, CW_EPARSE, "%s: tree %zu: \"yes\"/\"no\" name no distinct child",
                          b->origin, t);
    }
    uint32_t l, r;
    rc = xgb_node(b, lc, t, depth + 1, &l, err);
    rc = rc ? rc : xgb_node(b, rcn, t, depth + 1, &r, err);
    if (rc != CW_OK) {
        return rc;
    }
    b->feat[i] = f;
    b->thr[i] = json_number_value(cond);
    b->left[i] = l;
    b->right[i] = r;
    /* XGBoost: x < split_condition goes to "yes"; NaN goes to "missing" (default yes). */
    b->flags[i] =
        !json_is_integer(missing) || json_integer_value(missing) == json_integer_value(yes)
            ? RANK_NODE_DEFAULT_LEFT
            : 0;
    set_internal_value(b, i);
    *out = i;
    return CW_OK;
}

/* A model of kind TREES taking the builder's arrays. */
static int finish(builder *b, double base, rank_model **out, cw_err *err)
{
    if (b->n_trees == 0 || b->n_names == 0) {
        return cw_err_set(err, CW_EPARSE, "%s: no trees or no split features", b->origin);
    }
    rank_model *m = calloc(1, sizeof *m);
    if (!m) {
        return cw_err_set(err, CW_ENOMEM, "out of memory reading trees");
    }
    m->kind = RANK_MODEL_TREES;
    m->n_features = b->n_names;
    m->names = b->names;
    m->mean = calloc(b->n_names, sizeof *m->mean);
    m->scale = malloc(b->n_names * sizeof *m->scale);
    m->n_trees = b->n_trees;
    m->tree_root = b->root;
    m->n_nodes = b->n;
    m->node_feat = b->feat;
    m->node_thr = b->thr;
    m->node_left = b->left;
    m->node_right = b->right;
    m->node_flags = b->flags;
    m->node_value = b->value;
    m->base_score = base;
    free(b->cover);
    memset(b, 0, sizeof *b);
    if (!m->mean || !m->scale) {
        rank_model_free(m);
        return cw_err_set(err, CW_ENOMEM, "out of memory reading trees");
    }
    for (size_t i = 0; i < m->n_features; i++) {
        m->scale[i] = 1.0;
    }
    *out = m;
    return CW_OK;
}

/* Splits all named f<digits>: columns by index, names f0..f(max). */
static int names_by_index(builder *b, cw_err *err)
{
    long map[RANK_MAX_FEATURES];
    long max = -1;
    for (size_t i = 0; i < b->n_names; i++) {
        const char *s = b->names[i];
        char *end = NULL;
        if (s[0] != 'f' || s[1] < '0' || s[1] > '9') {
            return CW_OK; /* named features: keep first-use order */
        }
        long v = strtol(s + 1, &end, 10);
        if (*end || v < 0 || v >= (long)RANK_MAX_FEATURES) {
            return CW_OK;
        }
        map[i] = v;
        max = CW_MAX(max, v);
    }
    char **names = calloc((size_t)max + 1, sizeof *names);
    if (!names) {
        return cw_err_set(err, CW_ENOMEM, "out of memory reading trees");
    }
    for (long i = 0; i <= max; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "f%ld", i);
        names[i] = strdup(buf);
        if (!names[i]) {
            for (long j = 0; j < i; j++) {
                free(names[j]);
            }
            free(names);
            return cw_err_set(err, CW_ENOMEM, "out of memory reading trees");
        }
    }
    for (size_t i = 0; i < b->n; i++) {
        if (b->feat[i] >= 0) {
            b->feat[i] = (int32_t)map[b->feat[i]];
        }
    }
    for (size_t i = 0; i < b->n_names; i++) {
        free(b->names[i]);
    }
    free(b->names);
    b->names = names;
    b->n_names = (size_t)max + 1;
    return CW_OK;
}

int rank_trees_from_xgboost(const json_t *dump, const char *origin, rank_model **out, cw_err *err)
{
    builder b;
    memset(&b, 0, sizeof b);
    b.origin = origin;
    int rc = CW_OK;
    for (size_t t = 0; rc == CW_OK && t < json_array_size(dump); t++) {
        uint32_t root;
        rc = xgb_node(&b, json_array_get(dump, t), t, 0, &root, err);
        rc = rc ? rc : add_root(&b, root, err);
    }
    rc = rc ? rc : names_by_index(&b, err);
    rc = rc ? rc : finish(&b, 0.0, out, err);
    builder_fini(&b);
    return rc;
}

/* One LightGBM node and its subtree; features are indices into names. */
static int lgb_node(builder *b, const json_t *node, size_t t, int depth, uint32_t *out, cw_err *err)
{
    uint32_t i;
    bool is_leaf;
    int rc = open_node(b, node, "leaf_value", t, depth, &i, &is_leaf, err);
    if (rc != CW_OK) {
        return rc;
    }
    if (is_leaf) {
        *out = i;
        return CW_OK;
    }
    const json_t *feat = json_object_get(node, "split_feature");
    const json_t *thr = json_object_get(node, "threshold");
    const json_t *dt = json_object_get(node, "decision_type");
    const json_t *mt = json_object_get(node, "missing_type");
    const json_t *iv = json_object_get(node, "internal_value");
    if (!json_is_integer(feat) || json_integer_value(feat) < 0 ||
        (size_t)json_integer_value(feat) >= b->n_names || !finite_number(thr)) {
        return cw_err_set(err, CW_EPARSE,
                          "%s: tree %zu: a split needs \"split_feature\" in 0..%zu and a finite "
                          "numeric \"threshold\"",
                          b->origin, t, b->n_names ? b->n_names - 1 : 0);
    }
    if (json_is_string(dt) && strcmp(json_string_value(dt), "<=") != 0) {
        return cw_err_set(err, CW_EPARSE,
                          "%s: tree %zu: decision_type \"%s\" (categorical) is "
                          "not supported",
                          b->origin, t, json_string_value(dt));
    }
    if (json_is_string(mt) && strcmp(json_string_value(mt), "Zero") == 0) {
        return cw_err_set(err, CW_EPARSE,
                          "%s: tree %zu: missing_type \"Zero\" (zero as missing) "
                          "is not supported",
                          b->origin, t);
    }
    uint32_t l, r;
    rc = lgb_node(b, json_object_get(node, "left_child"), t, depth + 1, &l, err);
    rc = rc ? rc : lgb_node(b, json_object_get(node, "right_child"), t, depth + 1, &r, err);
    if (rc != CW_OK) {
        return rc;
    }
    b->feat[i] = (int32_t)json_integer_value(feat);
    b->thr[i] = json_number_value(thr);
    b->left[i] = l;
    b->right[i] = r;
    b->flags[i] =
        RANK_NODE_LE |
        (json_is_true(json_object_get(node, "default_left")) ? RANK_NODE_DEFAULT_LEFT : 0);
    if (finite_number(iv)) {
        b->value[i] = json_number_value(iv);
    } else {
        set_internal_value(b, i);
    }
    *out = i;
    return CW_OK;
}

int rank_trees_from_lightgbm(const json_t *dump, const char *origin, rank_model **out, cw_err *err)
{
    builder b;
    memset(&b, 0, sizeof b);
    b.origin = origin;
    const json_t *names = json_object_get(dump, "feature_names");
    const json_t *info = json_object_get(dump, "tree_info");
    int rc = CW_OK;
    if (!json_is_array(names) || json_array_size(names) == 0 || !json_is_array(info)) {
        return cw_err_set(err, CW_EPARSE,
                          "%s: a LightGBM dump needs \"feature_names\" and "
                          "\"tree_info\" arrays",
                          origin);
    }
    for (size_t i = 0; rc == CW_OK && i < json_array_size(names); i++) {
        const json_t *n = json_array_get(names, i);
        int32_t idx;
        if (!json_is_string(n)) {
            rc = cw_err_set(err, CW_EPARSE, "%s: feature_names[%zu] is not a string", origin, i);
            break;
        }
        rc = name_index(&b, json_string_value(n), &idx, err);
        if (rc == CW_OK && (size_t)idx != i) {
            rc = cw_err_set(err, CW_EPARSE, "%s: feature name \"%s\" repeated", origin,
                            json_string_value(n));
        }
    }
    for (size_t t = 0; rc == CW_OK && t < json_array_size(info); t++) {
        uint32_t root;
        rc = lgb_node(&b, json_object_get(json_array_get(info, t), "tree_structure"), t, 0, &root,
                      err);
        rc = rc ? rc : add_root(&b, root, err);
    }
    rc = rc ? rc : finish(&b, 0.0, out, err);
    builder_fini(&b);
    return rc;
}

json_t *rank_trees_params_json(const rank_model *m)
{
    json_t *params = json_object(), *trees = json_array();
    bool bad = !params || !trees ||
               json_object_set_new(params, "base_score", json_real(m->base_score)) ||
               json_object_set(params, "trees", trees);
    for (size_t t = 0; !bad && t < m->n_trees; t++) {
        size_t b = m->tree_root[t], e = t + 1 < m->n_trees ? m->tree_root[t + 1] : m->n_nodes;
        json_t *tree = json_object(), *f = json_array(), *thr = json_array(), *l = json_array(),
               *r = json_array(), *fl = json_array(), *v = json_array();
        bad = !tree || !f || !thr || !l || !r || !fl || !v;
        for (size_t i = b; !bad && i < e; i++) {
            bool leaf = m->node_feat[i] < 0;
            /* child indices are written relative to the tree's first node */
            bad = json_array_append_new(f, json_integer(m->node_feat[i])) ||
                  json_array_append_new(thr, json_real(m->node_thr[i])) ||
                  json_array_append_new(
                      l, json_integer(leaf ? -1 : (json_int_t)(m->node_left[i] - b))) ||
                  json_array_append_new(
                      r, json_integer(leaf ? -1 : (json_int_t)(m->node_right[i] - b))) ||
                  json_array_append_new(fl, json_integer(m->node_flags[i])) ||
                  json_array_append_new(v, json_real(m->node_value[i]));
        }
        bad = bad || json_object_set_new(tree, "feature", f) ||
              json_object_set_new(tree, "threshold", thr) || json_object_set_new(tree, "left", l) ||
              json_object_set_new(tree, "right", r) || json_object_set_new(tree, "flags", fl) ||
              json_object_set_new(tree, "value", v) || json_array_append_new(trees, tree);
    }
    json_decref(trees);
    if (bad) {
        json_decref(params);
        return NULL;
    }
    return params;
}

static bool get_int(const json_t *a, size_t i, json_int_t *out)
{
    const json_t *v = json_array_get(a, i);
    if (!json_is_integer(v)) {
        return false;
    }
    *out = json_integer_value(v);
    return true;
}

int rank_trees_from_params(const json_t *params, const char *const *names, size_t nf,
                           const char *origin, rank_model **out, cw_err *err)
{
    builder b;
    memset(&b, 0, sizeof b);
    b.origin = origin;
    const json_t *base = json_object_get(params, "base_score");
    const json_t *trees = json_object_get(params, "trees");
    int rc = CW_OK;
    if (!finite_number(base) || !json_is_array(trees) || json_array_size(trees) == 0) {
        return cw_err_set(err, CW_EPARSE,
                          "%s: \"params\" of trees needs a finite \"base_score\" "
                          "and a non-empty \"trees\" array",
                          origin);
    }
    for (size_t i = 0; rc == CW_OK && i < nf; i++) {
        int32_t idx;
        rc = name_index(&b, names[i], &idx, err);
        /* a repeated name leaves fewer columns than nf: node features up to nf - 1 would
         * read past the scored row */
        if (rc == CW_OK && (size_t)idx != i) {
            rc = cw_err_set(err, CW_EPARSE, "%s: feature name \"%s\" repeated", origin, names[i]);
        }
    }
    for (size_t t = 0; rc == CW_OK && t < json_array_size(trees); t++) {
        const json_t *tr = json_array_get(trees, t);
        const json_t *f = json_object_get(tr, "feature"), *thr = json_object_get(tr, "threshold"),
                     *l = json_object_get(tr, "left"), *r = json_object_get(tr, "right"),
                     *fl = json_object_get(tr, "flags"), *v = json_object_get(tr, "value");
        size_t n = json_array_size(f);
        if (n == 0 || json_array_size(thr) != n || json_array_size(l) != n ||
            json_array_size(r) != n || json_array_size(fl) != n || json_array_size(v) != n) {
            rc = cw_err_set(err, CW_EPARSE,
                            "%s: tree %zu: feature/threshold/left/right/flags/"
                            "value must be arrays of one equal, non-zero length",
                            origin, t);
            break;
        }
        size_t first = b.n;
        rc = add_root(&b, first, err);
        for (size_t i = 0; rc == CW_OK && i < n; i++) {
            uint32_t k;
            json_int_t fi, li, ri, flags;
            rc = new_node(&b, &k, err);
            if (rc != CW_OK) {
                break;
            }
            if (!get_int(f, i, &fi) || !get_int(l, i, &li) || !get_int(r, i, &ri) ||
                !get_int(fl, i, &flags) || !finite_number(json_array_get(thr, i)) ||
                !finite_number(json_array_get(v, i)) || flags < 0 || flags > 3) {
                rc = cw_err_set(err, CW_EPARSE, "%s: tree %zu node %zu: bad number", origin, t, i);
                break;
            }
            /* children after their parent (preorder): indices in range, no cycles */
            bool leaf = fi < 0;
            if (fi >= (json_int_t)nf || (!leaf && (li <= (json_int_t)i || ri <= (json_int_t)i ||
                                                   li >= (json_int_t)n || ri >= (json_int_t)n))) {
                rc = cw_err_set(err, CW_EPARSE,
                                "%s: tree %zu node %zu: feature or child index out of range",
                                origin, t, i);
                break;
            }
            b.feat[k] = leaf ? -1 : (int32_t)fi;
            b.thr[k] = json_number_value(json_array_get(thr, i));
            b.left[k] = leaf ? 0 : (uint32_t)(first + (size_t)li);
            b.right[k] = leaf ? 0 : (uint32_t)(first + (size_t)ri);
            b.flags[k] = (uint8_t)flags;
            b.value[k] = json_number_value(json_array_get(v, i));
        }
    }
    rc = rc ? rc : finish(&b, json_number_value(base), out, err);
    builder_fini(&b);
    return rc;
}

/* The child of split node i that x goes to. */
static size_t child_of(const rank_model *m, size_t i, const double *x)
{
    double v = x[m->node_feat[i]];
    uint8_t fl = m->node_flags[i];
    bool go_left = isnan(v) ? (fl & RANK_NODE_DEFAULT_LEFT) != 0
                            : ((fl & RANK_NODE_LE) ? v <= m->node_thr[i] : v < m->node_thr[i]);
    return go_left ? m->node_left[i] : m->node_right[i];
}

static size_t leaf_of(const rank_model *m, size_t i, const double *x)
{
    while (m->node_feat[i] >= 0) {
        i = child_of(m, i, x);
    }
    return i;
}

void rank_trees_score(const rank_model *m, const double *x, size_t n, double *scores)
{
    for (size_t j = 0; j < n; j++) {
        const double *row = x + j * m->n_features;
        double s = m->base_score;
        for (size_t t = 0; t < m->n_trees; t++) {
            s += m->node_value[leaf_of(m, m->tree_root[t], row)];
        }
        scores[j] = s;
    }
}

/* Saabas (2014, "Interpreting random forests"): along each decision path the change of the
 * node's expected value is credited to the split feature; the sum telescopes to
 * leaf - root, so bias + sum(contrib) equals the score exactly. */
void rank_trees_explain(const rank_model *m, const double *x, double *contrib, double *bias)
{
    memset(contrib, 0, m->n_features * sizeof *contrib);
    double b = m->base_score;
    for (size_t t = 0; t < m->n_trees; t++) {
        size_t i = m->tree_root[t];
        b += m->node_value[i];
        while (m->node_feat[i] >= 0) {
            size_t c = child_of(m, i, x);
            contrib[m->node_feat[i]] += m->node_value[c] - m->node_value[i];
            i = c;
        }
    }
    *bias = b;
}
