/* bench/ultr_experiment.c: Experiment 1 of issue 5, the standard ULTR protocol on LETOR
 * MQ2008 (METHODS.md section 3): a production ranker trained on the labels of a few
 * training queries, PBM clicks simulated on its top 10 by causal/'s simulator, then naive,
 * IPS (true, randomization and regression-EM propensities), DLA and DR rankers evaluated
 * on the test fold's labels beside the production ranker and the supervised skyline.
 * Writes one TSV row per (fold, eta, sessions, method) and a markdown summary.
 * Usage: see --help; bench/ultr_experiment.sh runs the documented configuration. */
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "causal/causal.h"
#include "cli/clicklists.h"
#include "ranker/ranker.h"

#define MAX_LIST 8
#define N_CUTS 4
static const size_t cuts[N_CUTS] = {1, 3, 5, 10};

typedef struct config {
    const char *data_dir;
    int folds[5];
    size_t n_folds;
    double sessions[MAX_LIST];
    size_t n_sessions;
    double etas[MAX_LIST];
    size_t n_etas;
    double prod_share;
    double clip;
    double lr;
    double avg_epochs; /* Polyak averaging of every trainer's parameters (default 5) */
    uint32_t batch;
    uint32_t patience;
    uint32_t epochs;
    double throughput; /* > 0: only the training-throughput benchmark with this many sessions */
    uint64_t seed;
    const char *tsv;
    FILE *tsv_f;
    FILE *curve_f;       /* --curve: per-epoch validation and test nDCG@10, diagnostics only */
    const char *methods; /* --methods: comma-separated subset to train (NULL = all) */
} config;

/* One result row kept for the summary. */
typedef struct result {
    int fold;
    double eta;
    double sessions;
    char method[32];
    double ndcg[N_CUTS];
} result;

static result *results;
static size_t n_results, cap_results;

static void die(const char *what, const cw_err *err)
{
    fprintf(stderr, "ultr_experiment: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

static void record(config *cfg, int fold, double eta, double sessions, const char *method,
                   const rank_letor *test, const rank_model *m, const char *note)
{
    double *s = malloc(test->n_rows * sizeof *s);
    cw_err err;
    if (!s || rank_model_score(m, test->x, test->n_rows, s, &err) != CW_OK) {
        die("scoring the test fold", &err);
    }
    if (n_results == cap_results) {
        cap_results = cap_results ? 2 * cap_results : 256;
        results = realloc(results, cap_results * sizeof *results);
        if (!results) {
            die("out of memory", NULL);
        }
    }
    result *r = &results[n_results++];
    r->fold = fold;
    r->eta = eta;
    r->sessions = sessions;
    snprintf(r->method, sizeof r->method, "%s", method);
    for (size_t c = 0; c < N_CUTS; c++) {
        r->ndcg[c] = rank_letor_ndcg(test, s, cuts[c], NULL);
    }
    fprintf(cfg->tsv_f, "%d\t%g\t%.0f\t%s\t%.4f\t%.4f\t%.4f\t%.4f\t%s\n", fold, eta, sessions,
            method, r->ndcg[0], r->ndcg[1], r->ndcg[2], r->ndcg[3], note ? note : "");
    fflush(cfg->tsv_f);
    fprintf(stderr, "fold %d eta %g sessions %.0f %-10s nDCG@10 %.4f %s\n", fold, eta, sessions,
            method, r->ndcg[3], note ? note : "");
    free(s);
}

static rank_letor *read_parts(const char *dir, const int *parts, size_t n)
{
    char paths[5][4096];
    const char *p[5];
    for (size_t i = 0; i < n; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/S%d.txt", dir, parts[i]);
        p[i] = paths[i];
    }
    rank_letor *d = NULL;
    cw_err err;
    if (rank_letor_read(p, n, &d, &err) != CW_OK) {
        die("reading LETOR data", &err);
    }
    return d;
}

static const config *g_cfg;

/* Learning-curve observer: the test fold is scored at every epoch for the --curve file
 * only; model selection never sees it. */
typedef struct curve_ctx {
    const rank_letor *test;
    int fold;
    double eta, sessions;
    const char *method;
} curve_ctx;

static void curve_epoch(void *ctx, uint32_t epoch, const rank_model *m, double valid)
{
    const curve_ctx *cc = ctx;
    double *s = malloc(cc->test->n_rows * sizeof *s);
    if (!s || rank_model_score(m, cc->test->x, cc->test->n_rows, s, NULL) != CW_OK) {
        die("scoring the test fold for --curve", NULL);
    }
    fprintf(g_cfg->curve_f, "%d\t%g\t%.0f\t%s\t%u\t%.5f\t%.5f\n", cc->fold, cc->eta, cc->sessions,
            cc->method, epoch, valid, rank_letor_ndcg(cc->test, s, 10, NULL));
    free(s);
}

static bool method_wanted(const char *name)
{
    if (!g_cfg->methods) {
        return true;
    }
    size_t n = strlen(name);
    for (const char *p = g_cfg->methods; (p = strstr(p, name)) != NULL; p += n) {
        if ((p == g_cfg->methods || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) {
            return true;
        }
    }
    return false;
}

static rank_model *train(const rank_clicks *c, const rank_letor *valid, const char *const *names,
                         rank_train_opts *o, char *note, size_t note_len, curve_ctx *cc)
{
    if (g_cfg->curve_f && cc) {
        o->on_epoch = curve_epoch;
        o->on_epoch_ctx = cc;
    }
    if (g_cfg->lr > 0) {
        o->lr = g_cfg->lr;
    }
    o->avg_epochs = g_cfg->avg_epochs;
    if (g_cfg->batch > 0) {
        o->batch_lists = g_cfg->batch;
    }
    if (g_cfg->patience > 0) {
        o->patience = g_cfg->patience;
    }
    if (g_cfg->epochs > 0) {
        o->max_epochs = g_cfg->epochs;
    }
    rank_model *m = NULL;
    rank_train_report rep;
    cw_err err;
    int rc = rank_train(c, valid, names, o, &m, &rep, &err);
    if (rc == CW_ENUMERIC) {
        snprintf(note, note_len, "diverged: %s", err.msg);
        return NULL;
    }
    if (rc != CW_OK) {
        die("training", &err);
    }
    snprintf(note, note_len, "epochs=%u best=%u valid=%.4f", rep.epochs, rep.best_epoch,
             rep.best_valid);
    return m;
}

/* Training throughput of linear listwise IPS: one list per session (no merging), so the
 * gradient is computed for every (session, document) pair; the merged lists of the same
 * sessions are timed alongside as the baseline. Median of 5 repetitions of 2 epochs. */
static void throughput(const causal_sessions *s, const rank_letor *tr, const size_t *pair_row,
                       const char *const *names, const double *truth)
{
    cw_err err;
    for (int merge = 0; merge < 2; merge++) {
        rank_clicks *c = NULL;
        if (cli_sessions_to_clicks(s, 0, s->n_sessions, tr->x, tr->n_rows, tr->n_features, pair_row,
                                   NULL, NULL, merge, &c, &err) != CW_OK) {
            die("click lists", &err);
        }
        double rate[5];
        rank_train_report rep;
        for (int r = 0; r < 5; r++) {
            rank_train_opts o = rank_train_opts_default();
            o.objective = RANK_OBJ_IPS;
            o.n_theta = 10;
            memcpy(o.theta, truth, 10 * sizeof(double));
            o.max_epochs = 2;
            rank_model *m = NULL;
            if (rank_train(c, NULL, names, &o, &m, &rep, &err) != CW_OK) {
                die("training", &err);
            }
            rate[r] = rep.pairs / rep.seconds;
            rank_model_free(m);
        }
        printf("linear listwise IPS, %s: %zu lists, %.0f session-doc pairs per epoch, "
               "median %.3g pairs/s (1 thread)\n",
               merge ? "merged lists (baseline)" : "one list per session", rank_clicks_n_lists(c),
               rank_clicks_n_pairs(c), cw_median(rate, 5));
        rank_clicks_free(c);
    }
}

static void parse_list(const char *s, double *out, size_t *n)
{
    *n = 0;
    char *copy = strdup(s), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t && *n < MAX_LIST; t = strtok_r(NULL, ",", &save)) {
        char *end;
        out[(*n)++] = strtod(t, &end);
        if (*end) {
            fprintf(stderr, "ultr_experiment: bad number '%s'\n", t);
            exit(2);
        }
    }
    free(copy);
}

static void usage(void)
{
    puts("usage: ultr_experiment [--data DIR] [--folds 1,2,3,4,5] [--sessions 1e4,1e5,1e6]\n"
         "                       [--eta 1,2] [--prod-share 0.05] [--clip 0] [--seed N]\n"
         "                       [--lr X] [--batch LISTS] [--patience N] [--epochs N]\n"
         "                       [--tsv FILE] [--throughput SESSIONS]\n"
         "                       [--methods naive,ips-true,...] [--curve FILE]\n"
         "                       [--avg-epochs 5]\n"
         "MQ2008 ULTR protocol (METHODS.md section 3); nDCG with 2^y-1 gain, queries without\n"
         "relevant documents dropped. Summary on stdout, per-run rows in --tsv.\n"
         "--throughput: time linear listwise IPS epochs over SESSIONS per-session lists\n"
         "(fold 1, eta 1) against the same sessions merged, and exit.\n"
         "--curve: per-epoch validation and test nDCG@10 of every click-trained run\n"
         "(diagnostics; selection uses validation only). --methods: train only these.\n"
         "--avg-epochs: every trainer (production, skyline, click methods) validates and\n"
         "returns a moving average of its parameters over ~E epochs (0 = last iterate,\n"
         "the protocol before issue 5's rerun).");
}

static void summary(const config *cfg)
{
    const char *methods[] = {"production", "naive",   "ips-true", "ips-rand", "ips-rem",
                             "dla",        "dr-true", "dr-rem",   "skyline"};
    printf("\nnDCG (gain 2^y-1, IDCG=0 queries dropped), mean +- std over folds;"
           " IPS-est > naive: folds where it beats naive at @10\n");
    for (size_t e = 0; e < cfg->n_etas; e++) {
        for (size_t si = 0; si < cfg->n_sessions; si++) {
            printf("\n#### eta = %g, %.0e sessions\n\n", cfg->etas[e], cfg->sessions[si]);
            printf("| method | nDCG@1 | nDCG@3 | nDCG@5 | nDCG@10 | > naive @10 |\n");
            printf("|---|---|---|---|---|---|\n");
            for (size_t mi = 0; mi < CW_ARRAY_LEN(methods); mi++) {
                double sum[N_CUTS] = {0}, sq[N_CUTS] = {0};
                size_t n = 0, beats = 0, n_pair = 0;
                for (size_t i = 0; i < n_results; i++) {
                    const result *r = &results[i];
                    bool fixed =
                        strcmp(r->method, "production") == 0 || strcmp(r->method, "skyline") == 0;
                    if (strcmp(r->method, methods[mi]) != 0 ||
                        (!fixed && (r->eta != cfg->etas[e] || r->sessions != cfg->sessions[si]))) {
                        continue;
                    }
                    n++;
                    for (size_t c = 0; c < N_CUTS; c++) {
                        sum[c] += r->ndcg[c];
                        sq[c] += r->ndcg[c] * r->ndcg[c];
                    }
                    for (size_t j = 0; !fixed && j < n_results; j++) {
                        const result *b = &results[j];
                        if (b->fold == r->fold && b->eta == r->eta && b->sessions == r->sessions &&
                            strcmp(b->method, "naive") == 0) {
                            n_pair++;
                            beats += r->ndcg[3] > b->ndcg[3];
                        }
                    }
                }
                if (n == 0) {
                    printf("| %s | diverged or not run | | | | |\n", methods[mi]);
                    continue;
                }
                printf("| %s |", methods[mi]);
                for (size_t c = 0; c < N_CUTS; c++) {
                    double mean = sum[c] / (double)n;
                    double var = n > 1 ? (sq[c] - (double)n * mean * mean) / (double)(n - 1) : 0;
                    printf(" %.4f +- %.4f |", mean, sqrt(var > 0 ? var : 0));
                }
                if (n_pair && strcmp(methods[mi], "naive") != 0) {
                    printf(" %zu/%zu |\n", beats, n_pair);
                } else {
                    printf(" |\n");
                }
            }
        }
    }
}

int main(int argc, char **argv)
{
    config cfg;
    memset(&cfg, 0, sizeof cfg);
    static char default_dir[4096];
    const char *root = getenv("CW_SHARED_DATA");
    snprintf(default_dir, sizeof default_dir, "%s/mq2008", root ? root : "../shared/data");
    cfg.data_dir = default_dir;
    for (int f = 0; f < 5; f++) {
        cfg.folds[f] = f + 1;
    }
    cfg.n_folds = 5;
    parse_list("1e4,1e5,1e6", cfg.sessions, &cfg.n_sessions);
    parse_list("1,2", cfg.etas, &cfg.n_etas);
    cfg.prod_share = 0.05;
    cfg.avg_epochs = 5;
    cfg.seed = 2026;
    g_cfg = &cfg;
    static const struct option longopts[] = {{"data", required_argument, 0, 'd'},
                                             {"folds", required_argument, 0, 'f'},
                                             {"sessions", required_argument, 0, 's'},
                                             {"eta", required_argument, 0, 'e'},
                                             {"prod-share", required_argument, 0, 'p'},
                                             {"clip", required_argument, 0, 'c'},
                                             {"seed", required_argument, 0, 'S'},
                                             {"tsv", required_argument, 0, 't'},
                                             {"lr", required_argument, 0, 'l'},
                                             {"batch", required_argument, 0, 'b'},
                                             {"patience", required_argument, 0, 'P'},
                                             {"epochs", required_argument, 0, 'E'},
                                             {"throughput", required_argument, 0, 'T'},
                                             {"curve", required_argument, 0, 'C'},
                                             {"avg-epochs", required_argument, 0, 'A'},
                                             {"methods", required_argument, 0, 'M'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        double tmp[MAX_LIST];
        size_t n;
        switch (opt) {
        case 'd': cfg.data_dir = optarg; break;
        case 'f':
            parse_list(optarg, tmp, &n);
            cfg.n_folds = 0;
            for (size_t i = 0; i < n && i < 5; i++) {
                if (tmp[i] < 1 || tmp[i] > 5) {
                    fprintf(stderr, "ultr_experiment: folds are 1..5\n");
                    return 2;
                }
                cfg.folds[cfg.n_folds++] = (int)tmp[i];
            }
            break;
        case 's': parse_list(optarg, cfg.sessions, &cfg.n_sessions); break;
        case 'e': parse_list(optarg, cfg.etas, &cfg.n_etas); break;
        case 'p': cfg.prod_share = strtod(optarg, NULL); break;
        case 'c': cfg.clip = strtod(optarg, NULL); break;
        case 'l': cfg.lr = strtod(optarg, NULL); break;
        case 'b': cfg.batch = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'P': cfg.patience = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'E': cfg.epochs = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'T': cfg.throughput = strtod(optarg, NULL); break;
        case 'S': cfg.seed = strtoull(optarg, NULL, 10); break;
        case 't': cfg.tsv = optarg; break;
        case 'C':
            cfg.curve_f = fopen(optarg, "w");
            if (!cfg.curve_f) {
                perror(optarg);
                return 1;
            }
            fprintf(cfg.curve_f, "fold\teta\tsessions\tmethod\tepoch\tvalid\ttest@10\n");
            break;
        case 'M': cfg.methods = optarg; break;
        case 'A': cfg.avg_epochs = strtod(optarg, NULL); break;
        case 'h': usage(); return 0;
        default: usage(); return 2;
        }
    }
    cfg.tsv_f = cfg.tsv ? fopen(cfg.tsv, "w") : fopen("/dev/null", "w");
    if (!cfg.tsv_f) {
        perror(cfg.tsv);
        return 1;
    }
    fprintf(cfg.tsv_f, "fold\teta\tsessions\tmethod\tndcg@1\tndcg@3\tndcg@5\tndcg@10\tnote\n");
    cw_err err;
    for (size_t fi = 0; fi < cfg.n_folds; fi++) {
        int K = cfg.folds[fi];
        /* FoldK = train S(K),S(K+1),S(K+2) / vali S(K+3) / test S(K+4), indices mod 5. */
        int tr_parts[3] = {(K - 1) % 5 + 1, K % 5 + 1, (K + 1) % 5 + 1};
        int va_part[1] = {(K + 2) % 5 + 1}, te_part[1] = {(K + 3) % 5 + 1};
        rank_letor *tr = read_parts(cfg.data_dir, tr_parts, 3);
        rank_letor *va = read_parts(cfg.data_dir, va_part, 1);
        rank_letor *te = read_parts(cfg.data_dir, te_part, 1);
        size_t nf = tr->n_features;
        char name_buf[RANK_MAX_FEATURES][16];
        const char *names[RANK_MAX_FEATURES];
        for (size_t i = 0; i < nf; i++) {
            snprintf(name_buf[i], sizeof name_buf[i], "letor_%zu", i + 1);
            names[i] = name_buf[i];
        }
        char note[600];
        /* production ranker: supervised linear on prod_share of the training queries */
        cw_rng rng;
        cw_rng_seed_stream(&rng, cfg.seed, (uint64_t)K);
        size_t *qs = malloc(tr->n_queries * sizeof *qs);
        for (size_t q = 0; q < tr->n_queries; q++) {
            qs[q] = q;
        }
        cw_rng_shuffle(&rng, qs, tr->n_queries, sizeof *qs);
        size_t n_prod = (size_t)ceil(cfg.prod_share * (double)tr->n_queries);
        rank_letor *prod_data = NULL;
        rank_clicks *c = NULL;
        if (rank_letor_subset(tr, qs, n_prod, &prod_data, &err) != CW_OK ||
            rank_clicks_from_labels(prod_data, &c, &err) != CW_OK) {
            die("production data", &err);
        }
        rank_train_opts o = rank_train_opts_default();
        o.objective = RANK_OBJ_SUPERVISED;
        o.seed = cfg.seed + (uint64_t)K;
        rank_model *prod = train(c, va, names, &o, note, sizeof note, NULL);
        rank_clicks_free(c);
        record(&cfg, K, 0, 0, "production", te, prod, note);
        if (rank_clicks_from_labels(tr, &c, &err) != CW_OK) {
            die("skyline data", &err);
        }
        rank_model *sky = train(c, va, names, &o, note, sizeof note, NULL);
        record(&cfg, K, 0, 0, "skyline", te, sky, note);
        rank_model_free(sky);
        rank_clicks_free(c);
        double *prod_s = malloc(tr->n_rows * sizeof *prod_s);
        if (rank_model_score(prod, tr->x, tr->n_rows, prod_s, &err) != CW_OK) {
            die("scoring with the production ranker", &err);
        }
        /* Two simulators over the same training queries: the logged (deterministic)
         * traffic and a RandTop-10 experiment of the same size for the randomization
         * estimate. */
        cli_letor_sim sim[2];
        for (int k = 0; k < 2; k++) {
            if (cli_letor_sim_init(&sim[k], tr, prod_s, &err) != CW_OK) {
                die("simulator", &err);
            }
        }
        causal_sessions *sets[2] = {sim[0].s, sim[1].s};
        causal_simcoll *coll[2] = {sim[0].coll, sim[1].coll};
        causal_sessions *s = sets[0];
        size_t *pair_row = sim[0].pair_row, *cb = sim[0].cand_begin, *ce = sim[0].cand_end;
        if (cfg.throughput > 0) {
            causal_sim_opts so = causal_sim_opts_default();
            so.user = causal_user_default(CAUSAL_USER_PBM, 2);
            so.n_sessions = (uint64_t)cfg.throughput;
            so.seed = cfg.seed;
            double truth[10];
            for (int k = 0; k < 10; k++) {
                truth[k] = so.user.theta[k] / so.user.theta[0];
            }
            if (causal_simulate(coll[0], &so, &err) != CW_OK) {
                die("simulating clicks", &err);
            }
            throughput(s, tr, pair_row, names, truth);
            cfg.n_etas = 0;
            cfg.n_folds = fi + 1;
        }
        for (size_t ei = 0; ei < cfg.n_etas; ei++) {
            double eta = cfg.etas[ei];
            for (size_t si = 0; si < cfg.n_sessions; si++) {
                double n_sess = cfg.sessions[si];
                causal_sim_opts so = causal_sim_opts_default();
                so.user = causal_user_default(CAUSAL_USER_PBM, 2);
                causal_user_theta_table(&so.user, eta, 10);
                so.policy.kind = CAUSAL_POLICY_DETERMINISTIC;
                so.policy.k = 10;
                so.n_sessions = (uint64_t)n_sess;
                so.seed =
                    cfg.seed * 1000003u + (uint64_t)K * 101u + (uint64_t)(eta * 7) + (uint64_t)si;
                causal_sessions_clear(sets[0]);
                causal_sessions_clear(sets[1]);
                if (causal_simulate(coll[0], &so, &err) != CW_OK) {
                    die("simulating clicks", &err);
                }
                causal_sim_opts ro = so;
                ro.policy.kind = CAUSAL_POLICY_RANDTOP;
                ro.policy.randtop_n = 10;
                ro.seed = so.seed + 55555;
                if (causal_simulate(coll[1], &ro, &err) != CW_OK) {
                    die("simulating the randomized experiment", &err);
                }
                /* propensities: truth, randomization, regression-EM */
                double truth[10];
                for (int k = 0; k < 10; k++) {
                    truth[k] = so.user.theta[k] / so.user.theta[0];
                }
                causal_propensity p_rand, p_rem;
                causal_prop_opts po = causal_prop_opts_default(CAUSAL_PROP_RANDOMIZATION);
                po.n_boot = 0;
                if (causal_propensity_fit(sets[1], &po, &p_rand, &err) != CW_OK) {
                    die("randomization propensities", &err);
                }
                po = causal_prop_opts_default(CAUSAL_PROP_REM);
                po.n_boot = 0;
                po.seed = so.seed;
                bool rem_ok = causal_propensity_fit(sets[0], &po, &p_rem, &err) == CW_OK;
                char rem_note[700];
                if (!rem_ok) {
                    snprintf(rem_note, sizeof rem_note, "REM failed: %s", err.msg);
                }
                rank_clicks *clicks = NULL;
                if (cli_sessions_to_clicks(s, 0, s->n_sessions, tr->x, tr->n_rows, nf, pair_row, cb,
                                           ce, true, &clicks, &err) != CW_OK) {
                    die("click lists", &err);
                }
                struct {
                    const char *name;
                    rank_objective obj;
                    const double *theta; /* ratios theta_k/theta_1, 10 ranks */
                } runs[] = {
                    {"naive", RANK_OBJ_NAIVE, NULL},
                    {"ips-true", RANK_OBJ_IPS, truth},
                    {"ips-rand", RANK_OBJ_IPS, p_rand.ratio},
                    {"ips-rem", RANK_OBJ_IPS, rem_ok ? p_rem.ratio : NULL},
                    {"dla", RANK_OBJ_DLA, NULL},
                    {"dr-true", RANK_OBJ_DR, truth},
                    {"dr-rem", RANK_OBJ_DR, rem_ok ? p_rem.ratio : NULL},
                };
                for (size_t ri = 0; ri < CW_ARRAY_LEN(runs); ri++) {
                    if (!method_wanted(runs[ri].name)) {
                        continue;
                    }
                    if ((runs[ri].obj == RANK_OBJ_IPS || runs[ri].obj == RANK_OBJ_DR) &&
                        !runs[ri].theta) {
                        fprintf(cfg.tsv_f, "%d\t%g\t%.0f\t%s\tNA\tNA\tNA\tNA\t%s\n", K, eta, n_sess,
                                runs[ri].name, rem_note);
                        continue;
                    }
                    rank_train_opts to = rank_train_opts_default();
                    to.objective = runs[ri].obj;
                    to.seed = cfg.seed + (uint64_t)K;
                    to.clip = cfg.clip;
                    if (runs[ri].theta) {
                        to.n_theta = 10;
                        /* the DR regression needs absolute theta: scale ratios by the true
                         * theta_1 is not known to an estimator, so use ratios (theta_1 = 1)
                         * for every estimate alike; IPS listwise needs ratios only. */
                        memcpy(to.theta, runs[ri].theta, 10 * sizeof(double));
                    }
                    curve_ctx cc = {te, K, eta, n_sess, runs[ri].name};
                    rank_model *m = train(clicks, va, names, &to, note, sizeof note, &cc);
                    char full[1400];
                    if (runs[ri].theta && runs[ri].theta != truth) {
                        int len =
                            snprintf(full, sizeof full, "%s prop_max_rel_err=%.3f ratio=", note,
                                     causal_prop_max_rel_error(runs[ri].theta, truth, 10));
                        for (int k = 0; k < 10 && len > 0 && (size_t)len < sizeof full; k++) {
                            len += snprintf(full + len, sizeof full - (size_t)len, "%s%.3f",
                                            k ? "," : "", runs[ri].theta[k]);
                        }
                    } else {
                        snprintf(full, sizeof full, "%s", note);
                    }
                    if (!m) {
                        fprintf(cfg.tsv_f, "%d\t%g\t%.0f\t%s\tNA\tNA\tNA\tNA\t%s\n", K, eta, n_sess,
                                runs[ri].name, full);
                        fprintf(stderr, "fold %d eta %g sessions %.0f %s: %s\n", K, eta, n_sess,
                                runs[ri].name, full);
                        continue;
                    }
                    record(&cfg, K, eta, n_sess, runs[ri].name, te, m, full);
                    rank_model_free(m);
                }
                rank_clicks_free(clicks);
            }
        }
        for (int k = 0; k < 2; k++) {
            cli_letor_sim_fini(&sim[k]);
        }
        free(prod_s);
        free(qs);
        rank_model_free(prod);
        rank_letor_free(prod_data);
        rank_letor_free(tr);
        rank_letor_free(va);
        rank_letor_free(te);
    }
    if (cfg.throughput == 0) {
        summary(&cfg);
    }
    fclose(cfg.tsv_f);
    if (cfg.curve_f) {
        fclose(cfg.curve_f);
    }
    free(results);
    return 0;
}
