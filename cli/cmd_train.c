/* cli/cmd_train.c: `causeway train`, learning a ranking model from LETOR labels, from
 * clicks simulated on LETOR data by causal/'s simulator, or from the server's own
 * impression log with fitted propensities; writes the versioned model JSON that
 * `causeway serve` loads. */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "causal/causal.h"
#include "cli/cli.h"
#include "cli/clicklists.h"
#include "ranker/ranker.h"

#define CMD "train"
#define MAX_FILES 8

static void usage(FILE *f)
{
    fprintf(f,
            "usage: causeway train (--letor FILE[,FILE...] | --db LOG.sqlite) --out MODEL.json\n"
            "                      [--objective naive|ips|dla|dr|supervised]\n"
            "                      [--loss listwise|pairwise|pointwise] [--model linear|mlp]\n"
            "                      [--hidden N] [--propensity FIT.json|true] [--clip TAU]\n"
            "                      [--valid FILE] [--simulate SESSIONS --logger MODEL.json]\n"
            "                      [--eta ETA] [--lr X] [--l2 X] [--epochs N] [--patience N]\n"
            "                      [--batch LISTS] [--seed N] [--avg-epochs E] [--quiet]\n\n"
            "Trains a ranker and writes it as versioned JSON (features, normalization, weights,\n"
            "training settings). Deterministic for a seed; progress on stderr.\n\n"
            "Data, one of:\n"
            "  --letor FILES     LETOR/SVMlight files (concatenated). Without --simulate the\n"
            "                    graded labels train the supervised model (the skyline).\n"
            "  --simulate N      with --letor: N sessions of PBM clicks (METHODS.md section 3:\n"
            "                    eye-tracking theta^ETA, epsilon 0.1) on the top 10 of the\n"
            "                    --logger model's ranking, by causal/'s simulator\n"
            "  --db FILE         the server's impression log: the logged feature vectors of the\n"
            "                    shown items and their clicks (what was served is what trains)\n"
            "  --max-rank N      with --db: keep the items shown at ranks 1..N of each\n"
            "                    impression (default 64), e.g. the 10 users examine of a\n"
            "                    deeper page drawn by a stochastic logging policy\n"
            "  --policy-aware P  with --db and ips: weight a click by 1/rho(d), rho(d) =\n"
            "                    sum_{k<=max-rank} pi_b(d@k|q) theta_k/theta_1 of the logging\n"
            "                    policy P (\"pl:TAU\", ...) over the logged scores of each\n"
            "                    query's candidates, instead of theta of the shown rank\n"
            "  --mc M            Monte-Carlo draws per query for --policy-aware (20000)\n"
            "Options:\n"
            "  --objective O     naive (clicks as labels), ips (default with clicks), dla, dr,\n"
            "                    supervised (default with labels)\n"
            "  --loss L          listwise softmax (default), pairwise (propensity SVM-Rank),\n"
            "                    pointwise (logistic); dla and dr are listwise only\n"
            "  --propensity P    theta_k/theta_1 for ips/dr: a fit written by the causal\n"
            "                    propensity estimators ({\"ranks\":[{\"rank\":1,\"ratio\":..}]})\n"
            "                    or a JSON array; \"true\" = the simulator's truth (--simulate)\n"
            "  --clip TAU        use max(theta_k, TAU) (weights <= 1/TAU); default 0 = none\n"
            "  --valid FILE      LETOR file with labels: early stopping on nDCG@10 (exp gain)\n"
            "  --model M         linear (default) or mlp (--hidden units, default 32)\n"
            "  --eta ETA         position-bias severity of --simulate (default 1)\n"
            "  --lr --l2 --epochs --patience --batch --seed   optimiser (Adam) settings\n"
            "  --dla-lr X        Adam step of DLA's position logits (default 0.03)\n"
            "  --avg-epochs E    validate and return a moving average of the parameters over\n"
            "                    the last ~E epochs of steps (Polyak averaging; default 0 =\n"
            "                    the last iterate)\n");
}

/* Reads theta_k/theta_1 from a propensity fit or a plain array. */
static int read_propensity(const char *path, rank_train_opts *o, cw_err *err)
{
    uint32_t n = 0;
    int rc = causal_propensity_read_ratios(path, o->theta, RANK_MAX_RANK, &n, err);
    if (rc == CW_OK) { /* outputs only on success (STYLE.md) */
        o->n_theta = n;
    }
    return rc;
}

/* Every query's candidates for --policy-aware, indexed by the session set's query id:
 * each document logged for the query with a finite score (at any position, deep ones
 * included), in the order first logged, with that first score. */
typedef struct cand_list {
    uint32_t *doc; /* doc[0..n): document ids of the session set */
    double *score; /* score[i]: the logged score of doc[i] */
    uint32_t n, cap;
} cand_list;

typedef struct cand_lists {
    size_t n_q;   /* queries with a slot (<= the session set's n_queries) */
    cand_list *q; /* q[query id] */
} cand_lists;

static void cand_lists_fini(cand_lists *c)
{
    for (size_t q = 0; q < c->n_q; q++) {
        free(c->q[q].doc);
        free(c->q[q].score);
    }
    free(c->q);
    memset(c, 0, sizeof *c);
}

/* Adds (d, score) to query q's candidates unless d is there already. */
static int cand_add(cand_lists *c, uint32_t q, uint32_t d, double score, const char *db,
                    const char *qname, cw_err *err)
{
    if (q >= c->n_q) {
        size_t nq = CW_MAX((size_t)q + 1, 2 * c->n_q);
        cand_list *b = realloc(c->q, nq * sizeof *b);
        if (!b) {
            return cw_err_set(err, CW_ENOMEM, "out of memory");
        }
        memset(b + c->n_q, 0, (nq - c->n_q) * sizeof *b);
        c->q = b;
        c->n_q = nq;
    }
    cand_list *l = &c->q[q];
    for (uint32_t i = 0; i < l->n; i++) {
        if (l->doc[i] == d) {
            return CW_OK;
        }
    }
    if (l->n == CAUSAL_PL_MAX_ITEMS) {
        return cw_err_set(err, CW_ELIMIT, "%s: query %s has over %u candidates", db, qname,
                          CAUSAL_PL_MAX_ITEMS);
    }
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? 2 * l->cap : 128;
        uint32_t *nd = realloc(l->doc, cap * sizeof *nd);
        l->doc = nd ? nd : l->doc;
        double *ns = realloc(l->score, cap * sizeof *ns);
        l->score = ns ? ns : l->score;
        if (!nd || !ns) {
            return cw_err_set(err, CW_ENOMEM, "out of memory");
        }
        l->cap = cap;
    }
    l->doc[l->n] = d;
    l->score[l->n++] = score;
    return CW_OK;
}

/* What `train --db` takes from the log, gathered in ONE reader pass (it used to read the
 * log three or four times: feature names, causal_sessions_load_log, the feature vectors
 * and, for --policy-aware, the candidates). */
typedef struct train_log {
    causal_sessions *sess; /* the sessions as causal_sessions_load_log(db, max_rank) builds
                              them, but each pair's features are the vector it was LAST
                              served with (what serves now is what trains) */
    causal_load_stats st;  /* as causal_sessions_load_log counts them */
    char **names;          /* n_names feature names of the first impression carrying vectors */
    size_t n_names;
    cand_lists cand; /* --policy-aware only */
} train_log;

static void train_log_fini(train_log *t)
{
    causal_sessions_free(t->sess);
    for (size_t i = 0; t->names && i < t->n_names; i++) {
        free(t->names[i]);
    }
    free(t->names);
    cand_lists_fini(&t->cand);
    memset(t, 0, sizeof *t);
}

/* Reads the log at db once into *t (zeroed by the caller; train_log_fini frees it, also
 * after a failure). Items deeper than max_rank are counted and dropped from the sessions;
 * with policy_aware (its spec, for messages; NULL = no candidates) every finitely scored
 * item, deep ones included, is a candidate of its query. Impressions whose vectors have
 * another width than the named set's keep their items but give no features.
 * Errors: those of the log store, CW_EINVAL (no feature vectors, no usable impression),
 * CW_ELIMIT (a query over CAUSAL_PL_MAX_ITEMS candidates), CW_EINTR, CW_ENOMEM. */
static int read_log(const char *db, uint32_t max_rank, const char *policy_aware, train_log *t,
                    cw_err *err)
{
    causal_log_opts lo = causal_log_opts_default();
    lo.read_only = true;
    causal_log *log = NULL;
    causal_log_reader *rd = NULL;
    causal_load_stats *st = &t->st;
    int rc = causal_log_open(db, &lo, &log, err);
    causal_log_filter f = causal_log_filter_all();
    rc = rc ? rc : causal_log_reader_new(log, &f, &rd, err);
    rc = rc ? rc : causal_sessions_new(&t->sess, err);
    causal_sessions *s = t->sess;
    const causal_impression *imp = NULL;
    while (rc == CW_OK && (rc = causal_log_reader_next(rd, &imp, err)) == 1) {
        rc = CW_OK;
        st->n_impressions++;
        if (cw_interrupted()) {
            rc = cw_err_set(err, CW_EINTR, "interrupted reading %s", db);
            break;
        }
        if (!t->names && imp->n_features > 0 && imp->feature_names) {
            t->names = calloc(imp->n_features, sizeof *t->names);
            for (size_t i = 0; t->names && i < imp->n_features; i++) {
                t->names[i] = strdup(imp->feature_names[i]);
                rc = t->names[i] ? rc : cw_err_set(err, CW_ENOMEM, "out of memory");
            }
            t->n_names = t->names ? imp->n_features : 0;
            rc = t->names ? rc : cw_err_set(err, CW_ENOMEM, "out of memory");
            rc = rc ? rc : causal_sessions_set_n_features(s, t->n_names, err);
        }
        /* the loader's own conversion (causal/sessions.c), so that both build one session
         * set; the vector a pair was last served with becomes its features */
        if (rc == CW_OK && policy_aware) {
            const char *qname = imp->qid ? imp->qid : imp->query;
            uint32_t q, d;
            rc = causal_sessions_query(s, qname, &q, err);
            for (size_t j = 0; rc == CW_OK && j < imp->n_items; j++) {
                const causal_item *it = &imp->items[j];
                if (isfinite(it->score)) { /* deep items too: every scored candidate */
                    rc = causal_sessions_doc(s, it->doc_id, &d, err);
                    rc = rc ? rc : cand_add(&t->cand, q, d, it->score, db, qname, err);
                }
            }
        }
        if (rc == CW_OK && (rc = causal_sessions_add_impression(s, imp, max_rank, CAUSAL_FEAT_LAST,
                                                                st, err)) != CW_OK) {
            cw_err_prefix(err, "%s: ", db);
        }
    }
    causal_log_reader_free(rd);
    causal_log_close(log);
    if (rc == CW_ELIMIT && policy_aware) {
        cw_err_prefix(err, "--policy-aware %s: ", policy_aware);
    }
    if (rc < 0) {
        return rc;
    }
    if (!t->names) {
        return cw_err_set(err, CW_EINVAL, "%s: no impression carries feature vectors", db);
    }
    if (s->n_sessions == 0) {
        return cw_err_set(err, CW_EINVAL,
                          "%s: empty log: no usable impressions (%llu read, %llu empty, %llu "
                          "items beyond rank %u)",
                          db, (unsigned long long)st->n_impressions,
                          (unsigned long long)st->n_empty, (unsigned long long)st->n_deep,
                          max_rank);
    }
    return CW_OK;
}

/* Policy-aware exposure of every pair of sess (Oosterhuis & de Rijke, SIGIR 2020;
 * METHODS.md section 5): rho(d) = sum_{k <= max_rank} pi_b(d@k | q) theta_k / theta_1,
 * theta_k = 0 deeper (users examine max_rank results). pi_b is the logging policy pol
 * applied to the candidates of q, known from the log: every document ever logged for q
 * with its logged score (all positions, not only <= max_rank; a candidate never drawn in
 * any session is missing, which biases rho up by its tiny mass). Marginals by Monte-Carlo
 * with m draws (causal_rpol_marginals_mc; exact PL is limited to 20 items). rho[p] = NAN
 * for a pair whose query has no scored candidates. */
static int policy_rho(const causal_sessions *sess, const cand_lists *cand, const causal_rpol *pol,
                      uint32_t max_rank, const rank_train_opts *o, uint32_t m, double *rho,
                      cw_err *err)
{
    size_t nq = sess->n_queries;
    int rc = CW_OK;
    for (size_t p = 0; p < sess->n_pairs; p++) {
        rho[p] = NAN;
    }
    double th1 = o->n_theta ? o->theta[0] : 1.0;
    cw_rng rng;
    cw_rng_seed(&rng, o->seed ^ 0x9e3779b97f4a7c15ull);
    double *marg = NULL, *qrho = NULL;
    /* The pairs of each query as linked lists (head[q], next[p]; UINT32_MAX ends), so that
     * assigning rho costs O(pairs) in all rather than a scan of every pair per query. */
    uint32_t *head = malloc((nq ? nq : 1) * sizeof *head);
    uint32_t *next = malloc((sess->n_pairs ? sess->n_pairs : 1) * sizeof *next);
    if (rc == CW_OK && (!head || !next)) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    for (size_t q = 0; rc == CW_OK && q < nq; q++) {
        head[q] = UINT32_MAX;
    }
    for (size_t p = sess->n_pairs; rc == CW_OK && p-- > 0;) {
        uint32_t q = sess->pair_query[p];
        if (q < nq) {
            next[p] = head[q];
            head[q] = (uint32_t)p;
        }
    }
    for (size_t q = 0; rc == CW_OK && q < nq; q++) {
        const cand_list *cl = q < cand->n_q ? &cand->q[q] : NULL;
        uint32_t n = cl ? cl->n : 0, k = n < max_rank ? n : max_rank;
        if (n == 0) {
            continue;
        }
        free(marg);
        free(qrho);
        marg = malloc((size_t)n * k * sizeof *marg);
        qrho = malloc(n * sizeof *qrho);
        if (!marg || !qrho) {
            rc = cw_err_set(err, CW_ENOMEM, "out of memory");
            break;
        }
        rc = causal_rpol_marginals_mc(pol, cl->score, n, k, m, &rng, marg, NULL, err);
        for (uint32_t i = 0; rc == CW_OK && i < n; i++) {
            double e = 0;
            for (uint32_t j = 0; j < k; j++) {
                double th = o->n_theta ? o->theta[CW_MIN((size_t)j + 1, o->n_theta) - 1] : 1.0;
                e += marg[(size_t)i * k + j] * th / th1;
            }
            qrho[i] = e;
        }
        for (uint32_t p = head[q]; rc == CW_OK && p != UINT32_MAX; p = next[p]) {
            for (uint32_t i = 0; i < n; i++) {
                if (cl->doc[i] == sess->pair_doc[p]) {
                    /* a shown pair always has rho > 0; a Monte-Carlo zero means fewer
                     * than 1/m: floor it at half a draw */
                    rho[p] = CW_MAX(qrho[i], 0.5 / m);
                    break;
                }
            }
        }
        if (rc != CW_OK) {
            cw_err_prefix(err, "query %s: ", sess->query_names[q]);
        }
    }
    free(marg);
    free(qrho);
    free(head);
    free(next);
    return rc;
}

static bool split_files(const char *arg, char *buf, size_t buf_len, const char **files, size_t *n)
{
    snprintf(buf, buf_len, "%s", arg);
    *n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n == MAX_FILES) {
            return false;
        }
        files[(*n)++] = t;
    }
    return *n > 0;
}

int cli_cmd_train(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    const char *letor = NULL, *db = NULL, *out = NULL, *valid_path = NULL, *prop = NULL,
               *logger = NULL, *objective = NULL;
    rank_train_opts o = rank_train_opts_default();
    o.progress = cli_progress;
    uint64_t simulate = 0, u = 0;
    uint32_t max_rank = RANK_MAX_RANK; /* --max-rank */
    const char *policy_aware = NULL;   /* --policy-aware */
    causal_rpol pol;
    uint32_t mc = 20000;
    double *rho = NULL, *pair_rho = NULL;
    size_t *row_of_pair = NULL, *cand_begin = NULL, *cand_end = NULL; /* --db */
    double eta = 1.0;
    bool quiet = false;
    cw_err err;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            quiet = true;
            continue;
        }
        if (i + 1 >= argc) {
            return cli_usage_error(CMD, "unknown option or missing value: %s", a);
        }
        const char *v = argv[++i];
        if (strcmp(a, "--letor") == 0) {
            letor = v;
        } else if (strcmp(a, "--db") == 0) {
            db = v;
        } else if (strcmp(a, "--out") == 0) {
            out = v;
        } else if (strcmp(a, "--valid") == 0) {
            valid_path = v;
        } else if (strcmp(a, "--propensity") == 0) {
            prop = v;
        } else if (strcmp(a, "--logger") == 0) {
            logger = v;
        } else if (strcmp(a, "--objective") == 0) {
            objective = v;
            if (rank_objective_parse(v, &o.objective, &err) != CW_OK) {
                return cli_usage_error(CMD, "%s", err.msg);
            }
        } else if (strcmp(a, "--loss") == 0) {
            if (rank_loss_parse(v, &o.loss, &err) != CW_OK) {
                return cli_usage_error(CMD, "%s", err.msg);
            }
        } else if (strcmp(a, "--model") == 0) {
            if (strcmp(v, "linear") == 0) {
                o.kind = RANK_MODEL_LINEAR;
            } else if (strcmp(v, "mlp") == 0) {
                o.kind = RANK_MODEL_MLP;
            } else {
                return cli_usage_error(CMD, "--model must be linear or mlp, got '%s'", v);
            }
        } else if (strcmp(a, "--max-rank") == 0) {
            if (!cli_parse_u64(CMD, a, v, 1, RANK_MAX_RANK, &u)) {
                return CLI_EXIT_USAGE;
            }
            max_rank = (uint32_t)u;
        } else if (strcmp(a, "--policy-aware") == 0) {
            if (causal_rpol_parse(v, &pol, &err) != CW_OK) {
                return cli_usage_error(CMD, "--policy-aware: %s", err.msg);
            }
            policy_aware = v;
        } else if (strcmp(a, "--mc") == 0) {
            if (!cli_parse_u64(CMD, a, v, 100, 10000000, &u)) {
                return CLI_EXIT_USAGE;
            }
            mc = (uint32_t)u;
        } else if (strcmp(a, "--hidden") == 0) {
            if (!cli_parse_u64(CMD, a, v, 1, RANK_MAX_HIDDEN, &u)) {
                return CLI_EXIT_USAGE;
            }
            o.n_hidden = (size_t)u;
        } else if (strcmp(a, "--simulate") == 0) {
            if (!cli_parse_u64(CMD, a, v, 1, 1000000000ull, &simulate)) {
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--eta") == 0) {
            if (!cli_parse_double(CMD, a, v, 0, 10, &eta)) {
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--clip") == 0) {
            if (!cli_parse_double(CMD, a, v, 0, 0.999999, &o.clip)) {
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--lr") == 0) {
            if (!cli_parse_double(CMD, a, v, 1e-9, 10, &o.lr)) {
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--dla-lr") == 0) {
            if (!cli_parse_double(CMD, a, v, 1e-9, 10, &o.dla_lr)) {
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--avg-epochs") == 0) {
            if (!cli_parse_double(CMD, a, v, 0, 1e6, &o.avg_epochs)) {
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--l2") == 0) {
            if (!cli_parse_double(CMD, a, v, 0, 1e6, &o.l2)) {
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--epochs") == 0) {
            if (!cli_parse_u64(CMD, a, v, 1, 1000000, &u)) {
                return CLI_EXIT_USAGE;
            }
            o.max_epochs = (uint32_t)u;
        } else if (strcmp(a, "--patience") == 0) {
            if (!cli_parse_u64(CMD, a, v, 1, 1000000, &u)) {
                return CLI_EXIT_USAGE;
            }
            o.patience = (uint32_t)u;
        } else if (strcmp(a, "--batch") == 0) {
            if (!cli_parse_u64(CMD, a, v, 1, 1000000, &u)) {
                return CLI_EXIT_USAGE;
            }
            o.batch_lists = (uint32_t)u;
        } else if (strcmp(a, "--seed") == 0) {
            if (!cli_parse_u64(CMD, a, v, 0, UINT64_MAX, &o.seed)) {
                return CLI_EXIT_USAGE;
            }
        } else {
            return cli_usage_error(CMD, "unknown option %s", a);
        }
    }
    if (quiet) {
        o.progress.fn = NULL;
    }
    if (!out) {
        return cli_usage_error(CMD, "--out MODEL.json is required");
    }
    if (!letor == !db) {
        return cli_usage_error(CMD, "give exactly one of --letor and --db");
    }
    if (simulate && (!letor || !logger)) {
        return cli_usage_error(CMD, "--simulate needs --letor and --logger MODEL.json");
    }
    bool clicks_data = db || simulate;
    if (!objective) {
        o.objective = clicks_data ? RANK_OBJ_IPS : RANK_OBJ_SUPERVISED;
    }
    if (!clicks_data && o.objective != RANK_OBJ_SUPERVISED) {
        return cli_usage_error(CMD, "objective %s needs clicks: add --simulate or use --db",
                               rank_objective_name(o.objective));
    }
    if (clicks_data && o.objective == RANK_OBJ_SUPERVISED) {
        return cli_usage_error(CMD, "objective supervised needs labels: --letor without "
                                    "--simulate");
    }
    bool needs_theta = o.objective == RANK_OBJ_IPS || o.objective == RANK_OBJ_DR;
    if (needs_theta && !prop) {
        return cli_usage_error(CMD, "objective %s needs --propensity",
                               rank_objective_name(o.objective));
    }
    if (policy_aware && (!db || o.objective != RANK_OBJ_IPS)) {
        return cli_usage_error(CMD, "--policy-aware needs --db and objective ips");
    }
    if (prop && strcmp(prop, "true") == 0 && !simulate) {
        return cli_usage_error(CMD, "--propensity true is only known with --simulate");
    }

    int rc = CW_OK;
    rank_letor *data = NULL, *valid = NULL;
    rank_clicks *clicks = NULL;
    rank_model *m = NULL, *log_model = NULL;
    cli_letor_sim sim;
    memset(&sim, 0, sizeof sim);
    train_log tl; /* --db */
    memset(&tl, 0, sizeof tl);
    causal_sessions *sess = NULL; /* tl.sess with --db */
    double *x = NULL, *scores = NULL;
    const char *names[RANK_MAX_FEATURES];
    char name_buf[RANK_MAX_FEATURES][16];
    bool fit_prop = prop && (strcmp(prop, "rem") == 0 || strcmp(prop, "randomization") == 0);
    if (prop && strcmp(prop, "true") != 0 && !fit_prop) {
        rc = read_propensity(prop, &o, &err);
        if (rc != CW_OK) {
            goto fail;
        }
    }
    if (valid_path) {
        const char *vp[] = {valid_path};
        rc = rank_letor_read(vp, 1, &valid, &err);
        if (rc != CW_OK) {
            goto fail;
        }
    }
    if (letor) {
        char buf[8192];
        const char *files[MAX_FILES];
        size_t n_files;
        if (!split_files(letor, buf, sizeof buf, files, &n_files)) {
            rc = cli_usage_error(CMD, "--letor takes 1..%d comma-separated files", MAX_FILES);
            goto done;
        }
        rc = rank_letor_read(files, n_files, &data, &err);
        if (rc != CW_OK) {
            goto fail;
        }
        /* Named columns (causeway rank --letor-out) keep their names: the server checks
         * them against its extractor. */
        for (size_t i = 0; i < data->n_features; i++) {
            snprintf(name_buf[i], sizeof name_buf[i], "letor_%zu", i + 1);
            names[i] = data->feature_names ? data->feature_names[i] : name_buf[i];
        }
        for (size_t i = 0; valid && data->feature_names && valid->feature_names &&
                           i < CW_MIN(data->n_features, valid->n_features);
             i++) {
            if (strcmp(data->feature_names[i], valid->feature_names[i]) != 0) {
                rc = cw_err_set(&err, CW_EINVAL, "%s and %s name column %zu differently", letor,
                                valid_path, i + 1);
                goto fail;
            }
        }
        if (!simulate) {
            rc = rank_clicks_from_labels(data, &clicks, &err);
        } else {
            rc = rank_model_load(logger, &log_model, &err);
            if (rc == CW_OK && rank_model_n_features(log_model) != data->n_features) {
                rc = cw_err_set(&err, CW_EINVAL, "%s has %zu features, %s has %zu", logger,
                                rank_model_n_features(log_model), letor, data->n_features);
            }
            scores = rc == CW_OK ? malloc(data->n_rows * sizeof *scores) : NULL;
            if (rc == CW_OK && !scores) {
                rc = cw_err_set(&err, CW_ENOMEM, "out of memory");
            }
            rc = rc ? rc : rank_model_score(log_model, data->x, data->n_rows, scores, &err);
            rc = rc ? rc : cli_letor_sim_init(&sim, data, scores, &err);
            causal_sim_opts so = causal_sim_opts_default();
            so.user = causal_user_default(CAUSAL_USER_PBM,
                                          (int)(sim.coll ? causal_simcoll_max_label(sim.coll) : 1));
            causal_user_theta_table(&so.user, eta, 10);
            so.n_sessions = simulate;
            so.seed = o.seed;
            so.progress = o.progress;
            rc = rc ? rc : causal_simulate(sim.coll, &so, &err);
            if (rc == CW_OK && prop && strcmp(prop, "true") == 0) {
                o.n_theta = 10;
                for (int k = 0; k < 10; k++) {
                    o.theta[k] = so.user.theta[k] / so.user.theta[0];
                }
            }
            rc = rc ? rc
                    : cli_sessions_to_clicks(sim.s, 0, sim.s->n_sessions, data->x, data->n_rows,
                                             data->n_features, sim.pair_row, sim.cand_begin,
                                             sim.cand_end, true, &clicks, &err);
        }
        if (rc != CW_OK) {
            goto fail;
        }
    } else {
        rc = read_log(db, max_rank, policy_aware, &tl, &err);
        sess = tl.sess;
        size_t n_names = tl.n_names;
        if (rc == CW_OK && (n_names == 0 || n_names > RANK_MAX_FEATURES)) {
            rc = cw_err_set(&err, CW_EINVAL, "%s: %zu features (need 1..%u)", db, n_names,
                            RANK_MAX_FEATURES);
        }
        if (rc != CW_OK) {
            goto fail;
        }
        const causal_load_stats st = tl.st;
        if (!quiet) {
            fprintf(stderr,
                    "causeway train: %llu impressions, %llu items, %llu clicks from %s "
                    "(%llu items deeper than %u dropped)\n",
                    (unsigned long long)st.n_impressions, (unsigned long long)st.n_items,
                    (unsigned long long)st.n_clicks, db, (unsigned long long)st.n_deep, max_rank);
        }
        for (size_t i = 0; i < n_names; i++) {
            names[i] = tl.names[i];
        }
        size_t np = sess->n_pairs, nf = n_names;
        x = malloc((np ? np : 1) * nf * sizeof *x);
        size_t *pair_row = malloc((np ? np : 1) * sizeof *pair_row);
        if (!x || !pair_row) {
            free(pair_row);
            rc = cw_err_set(&err, CW_ENOMEM, "out of memory");
            goto fail;
        }
        /* The logged vectors, as served: one row per (query, document) pair. Policy-aware
         * IPS scores every candidate of the query (ranker.h rank_clicks_set_rho), so its
         * rows are grouped by query and each list gets the query's other logged pairs as
         * unshown candidates (those shown at ranks <= --max-rank in some session). */
        size_t nq = sess->n_queries;
        cand_begin = calloc(nq + 1, sizeof *cand_begin);
        cand_end = calloc(nq + 1, sizeof *cand_end);
        if (!cand_begin || !cand_end) {
            free(pair_row);
            rc = cw_err_set(&err, CW_ENOMEM, "out of memory");
            goto fail;
        }
        for (size_t p = 0; p < np; p++) {
            cand_begin[sess->pair_query[p] + 1]++;
        }
        for (size_t q = 0; q < nq; q++) {
            cand_begin[q + 1] += cand_begin[q];
            cand_end[q] = cand_begin[q];
        }
        for (size_t p = 0; p < np; p++) {
            size_t r = policy_aware ? cand_end[sess->pair_query[p]]++ : p;
            pair_row[p] = r;
            for (size_t i = 0; i < nf; i++) {
                x[r * nf + i] = sess->pair_features[p * nf + i];
            }
        }
        rc = cli_sessions_to_clicks(sess, 0, sess->n_sessions, x, np, nf, pair_row,
                                    policy_aware ? cand_begin : NULL,
                                    policy_aware ? cand_end : NULL, true, &clicks, &err);
        row_of_pair = pair_row;
        if (rc != CW_OK) {
            goto fail;
        }
    }
    if (fit_prop) {
        const causal_sessions *src = sess ? sess : sim.s;
        causal_prop_opts po = causal_prop_opts_default(
            strcmp(prop, "rem") == 0 ? CAUSAL_PROP_REM : CAUSAL_PROP_RANDOMIZATION);
        po.n_boot = 0;
        po.seed = o.seed;
        causal_propensity fit;
        rc = src ? causal_propensity_fit(src, &po, &fit, &err)
                 : cw_err_set(&err, CW_EINVAL, "--propensity %s needs sessions", prop);
        if (rc != CW_OK) {
            cw_err_prefix(&err, "fitting propensities (%s): ", prop);
            goto fail;
        }
        o.n_theta = CW_MIN((size_t)fit.n_ranks, (size_t)RANK_MAX_RANK);
        for (size_t k = 0; k < o.n_theta; k++) {
            o.theta[k] = fit.ratio[k];
            if (!(fit.ratio[k] > 0)) {
                /* a rank without data: keep the last estimate (weights stay finite) */
                o.theta[k] = k ? o.theta[k - 1] : 1.0;
            }
        }
        if (!quiet) {
            fprintf(stderr, "causeway train: %s propensities theta_k/theta_1:", prop);
            for (size_t k = 0; k < o.n_theta; k++) {
                fprintf(stderr, " %.3f", o.theta[k]);
            }
            fprintf(stderr, "\n");
        }
    }
    if (!quiet) {
        fprintf(stderr, "causeway train: %s/%s, %s model, %zu lists, %.0f sessions\n",
                rank_objective_name(o.objective), rank_loss_name(o.loss),
                o.kind == RANK_MODEL_LINEAR ? "linear" : "mlp", rank_clicks_n_lists(clicks),
                rank_clicks_n_sessions(clicks));
    }
    if (policy_aware) {
        size_t np = sess->n_pairs ? sess->n_pairs : 1;
        rho = malloc(np * sizeof *rho);
        pair_rho = malloc(np * sizeof *pair_rho);
        rc = rho && pair_rho ? policy_rho(sess, &tl.cand, &pol, max_rank, &o, mc, pair_rho, &err)
                             : cw_err_set(&err, CW_ENOMEM, "out of memory");
        for (size_t p = 0; rc == CW_OK && p < sess->n_pairs; p++) {
            rho[row_of_pair[p]] = pair_rho[p];
        }
        rc = rc ? rc : rank_clicks_set_rho(clicks, rho, &err);
        if (rc != CW_OK) {
            cw_err_prefix(&err, "--policy-aware %s: ", policy_aware);
            goto fail;
        }
        if (!quiet) {
            double lo = INFINITY, hi = 0;
            for (size_t p = 0; p < sess->n_pairs; p++) {
                lo = isnan(rho[p]) ? lo : CW_MIN(lo, rho[p]);
                hi = isnan(rho[p]) ? hi : CW_MAX(hi, rho[p]);
            }
            /* effective sample size (sum w)^2 / sum w^2 of the clicks' weights, 1/rho
             * against theta_1/theta_k of the shown rank (METHODS.md section 6) */
            double sa = 0, sa2 = 0, so = 0, so2 = 0, th1 = o.n_theta ? o.theta[0] : 1.0;
            for (size_t j = 0; j < sess->n_items; j++) {
                double r = rho[row_of_pair[sess->i_pair[j]]];
                if (sess->i_click[j] && !isnan(r)) {
                    uint32_t k = sess->i_pos[j];
                    double th = o.n_theta ? o.theta[CW_MIN((size_t)k, o.n_theta) - 1] : 1.0;
                    sa += 1 / r, sa2 += 1 / (r * r), so += th1 / th, so2 += th1 * th1 / (th * th);
                }
            }
            fprintf(stderr,
                    "causeway train: policy-aware rho (%s, %u draws) in [%.4g, %.4g]; clicks' "
                    "effective sample size %.0f with 1/rho, %.0f with theta_1/theta_k\n",
                    policy_aware, mc, lo, hi, sa2 > 0 ? sa * sa / sa2 : 0,
                    so2 > 0 ? so * so / so2 : 0);
        }
    }
    rank_train_report rep;
    rc = rank_train(clicks, valid, names, &o, &m, &rep, &err);
    rc = rc ? rc : rank_model_save(m, out, &err);
    if (rc != CW_OK) {
        goto fail;
    }
    if (!quiet) {
        if (isnan(rep.best_valid)) { /* no validation set: nothing was selected */
            fprintf(stderr, "causeway train: %u epochs (no validation set), %.2f s; wrote %s\n",
                    rep.epochs, rep.seconds, out);
        } else {
            fprintf(stderr,
                    "causeway train: %u epochs (best %u, validation nDCG@10 %.4f), %.2f s; "
                    "wrote %s\n",
                    rep.epochs, rep.best_epoch, rep.best_valid, rep.seconds, out);
        }
        if (o.objective == RANK_OBJ_DLA) {
            fprintf(stderr, "causeway train: DLA theta_k/theta_1:");
            for (int k = 0; k < 10; k++) {
                fprintf(stderr, " %.3f", rep.dla_theta[k]);
            }
            fprintf(stderr, "\n");
        }
    }
    rc = CLI_EXIT_OK;
    goto done;
fail:
    rc = cli_fail(CMD, &err);
done:
    free(x);
    free(scores);
    cli_letor_sim_fini(&sim);
    train_log_fini(&tl);
    rank_clicks_free(clicks);
    free(rho);
    free(pair_rho);
    free(row_of_pair);
    free(cand_begin);
    free(cand_end);
    rank_model_free(m);
    rank_model_free(log_model);
    rank_letor_free(data);
    rank_letor_free(valid);
    return rc;
}
