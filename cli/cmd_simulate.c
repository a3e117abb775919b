/* cli/cmd_simulate.c: `causeway simulate`, the user simulator (causal/sim.c): users with
 * known examination and click behaviour click on lists from a logging policy over a
 * synthetic, LETOR or text collection; the sessions go into the SQLite log schema. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CW_WITH_CURL
#include <curl/curl.h>
#include <jansson.h>
#endif

#include "causal/causal.h"
#include "cli/cli.h"
#include "index/index.h"
#include "ranker/ranker.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: causeway simulate --out LOG.db [collection] [user] [policy]\n"
        "                         [--sessions N] [--seed S] [--no-write]\n\n"
        "Simulates users with known behaviour (METHODS.md section 3) and writes each session\n"
        "as an impression (policy, ranker, shown list, per-item logging propensity, list\n"
        "log-probability) plus click events into the log schema `causeway serve` writes.\n\n"
        "collection (one of):\n"
        "  --synthetic Q,D       Q random queries of D candidates, labels uniform 0..ymax,\n"
        "                        ranker score = label + N(0, noise^2), features [label +\n"
        "                        N(0, 0.25), N(0, 1)] (default 1000,20)\n"
        "      --ymax Y            highest label (default 4)      --noise S  (default 1)\n"
        "  --letor FILE[,FILE]   (b) LETOR/SVMlight rows with labels; the production ranker\n"
        "      --model M.json      a ranker model (causeway train), or\n"
        "      --score-feature J   feature J (1-based) as the score (default 25: BM25 in\n"
        "                          LETOR 4.0)\n"
        "  --index DIR --queries Q.tsv --qrels QRELS   (a) text collection ranked in-process\n"
        "      --depth N           candidates per query from BM25 (default 20)\n"
        "  --server URL --queries Q.tsv --qrels QRELS   the whole loop over HTTP: each session\n"
        "                        is a POST URL/search {query, k, qid} to a running `causeway\n"
        "                        serve` (which logs the impression in its own log) and the\n"
        "                        simulated clicks go back as POST URL/events; no --out\n"
        "  --rankers R --ranker-noise S   R production rankers: ranker 0 plus noise of S\n"
        "                        times the query's score sd per (query, doc) (default 1,\n"
        "                        0.5); sessions pick one\n"
        "                        uniformly (intervention harvesting needs R >= 2)\n\n"
        "user:\n"
        "  --user pbm|trust|cascade|dbn|ubm   (default pbm)\n"
        "  --theta table|power|T1,T2,...      examination: the METHODS.md eye-tracking\n"
        "                        table, (1/k)^eta, or a list (default table)\n"
        "  --eta E               exponent on theta (default 1)\n"
        "  --epsilon E           click noise: P(click|exam) = e + (1-e)(2^y-1)/(2^ymax-1)\n"
        "                        (default 0.1)\n"
        "  --dbn-gamma G         DBN continuation (default 0.9)\n\n"
        "policy:\n"
        "  --policy deterministic|randtop|swap|pl   (default deterministic)\n"
        "  --k K                 items shown (default 10)\n"
        "  --randtop-n N         shuffle the top N (default K)\n"
        "  --swap-share P        share of swapped sessions (default 1)\n"
        "  --temperature T       Plackett-Luce temperature (default 1)\n"
        "  --mc-samples M        Monte-Carlo samples for PL marginals (default 0: not logged)\n\n"
        "  --sessions N          sessions to simulate (default 10000; 1e6 style accepted)\n"
        "  --seed S              RNG seed (default 1): same seed, same log\n"
        "  --no-write            simulate only, report the throughput (no --out needed)\n"
        "  --quiet               no progress on stderr\n");
    fprintf(f, "\nExit codes: 0 success, 1 failure (the message names the file and line or\n"
               "byte offset at fault), 2 usage error.\n");
}

typedef struct sim_args {
    const char *out, *letor, *model, *index, *queries, *qrels, *theta, *user, *policy, *server;
    uint64_t synth_q, synth_d, ymax, score_feature, depth, rankers, sessions, seed, k, randtop_n,
        mc;
    double noise, ranker_noise, eta, epsilon, dbn_gamma, swap_share, temperature;
    bool no_write, quiet;
} sim_args;

static int parse_theta(const char *spec, double eta, causal_user *u)
{
    if (strcmp(spec, "table") == 0) {
        causal_user_theta_table(u, eta, CAUSAL_MAX_RANK);
        return 0;
    }
    if (strcmp(spec, "power") == 0) {
        causal_user_theta_power(u, eta, CAUSAL_MAX_RANK);
        return 0;
    }
    uint32_t n = 0;
    const char *p = spec;
    while (*p && n < CAUSAL_MAX_RANK) {
        char *end = NULL;
        double v = strtod(p, &end);
        if (end == p || !(v > 0 && v <= 1)) {
            return -1;
        }
        u->theta[n++] = pow(v, eta);
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') {
            return -1;
        }
    }
    u->n_theta = n;
    return n ? 0 : -1;
}

static int parse_args(int argc, char **argv, sim_args *a)
{
    const char *cmd = "simulate";
    memset(a, 0, sizeof *a);
    a->synth_q = 1000;
    a->synth_d = 20;
    a->ymax = 4;
    a->noise = 1.0;
    a->score_feature = 25;
    a->depth = 20;
    a->rankers = 1;
    a->ranker_noise = 0.5;
    a->sessions = 10000;
    a->seed = 1;
    a->k = 10;
    a->eta = 1;
    a->epsilon = 0.1;
    a->dbn_gamma = 0.9;
    a->swap_share = 1;
    a->temperature = 1;
    a->theta = "table";
    a->user = "pbm";
    a->policy = "deterministic";
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--no-write") == 0) {
            a->no_write = true;
            continue;
        }
        if (strcmp(o, "--quiet") == 0) {
            a->quiet = true;
            continue;
        }
        if (i + 1 >= argc) {
            return cli_usage_error(cmd, "unknown option or missing value: %s", o);
        }
        const char *v = argv[++i];
        bool ok = true;
        if (strcmp(o, "--out") == 0) {
            a->out = v;
        } else if (strcmp(o, "--synthetic") == 0) {
            unsigned long long q, d;
            char c;
            if (sscanf(v, "%llu,%llu%c", &q, &d, &c) != 2 || q == 0 || d == 0 ||
                d > CAUSAL_SIM_MAX_CANDIDATES) {
                return cli_usage_error(cmd, "--synthetic expects Q,D with 1 <= D <= %u, got '%s'",
                                       CAUSAL_SIM_MAX_CANDIDATES, v);
            }
            a->synth_q = q;
            a->synth_d = d;
        } else if (strcmp(o, "--ymax") == 0) {
            ok = cli_parse_u64(cmd, o, v, 1, CAUSAL_MAX_LABEL, &a->ymax);
        } else if (strcmp(o, "--noise") == 0) {
            ok = cli_parse_double(cmd, o, v, 0, 1e6, &a->noise);
        } else if (strcmp(o, "--letor") == 0) {
            a->letor = v;
        } else if (strcmp(o, "--model") == 0) {
            a->model = v;
        } else if (strcmp(o, "--score-feature") == 0) {
            ok = cli_parse_u64(cmd, o, v, 1, RANK_MAX_FEATURES, &a->score_feature);
        } else if (strcmp(o, "--index") == 0) {
            a->index = v;
        } else if (strcmp(o, "--server") == 0) {
            a->server = v;
        } else if (strcmp(o, "--queries") == 0) {
            a->queries = v;
        } else if (strcmp(o, "--qrels") == 0) {
            a->qrels = v;
        } else if (strcmp(o, "--depth") == 0) {
            ok = cli_parse_u64(cmd, o, v, 1, CAUSAL_SIM_MAX_CANDIDATES, &a->depth);
        } else if (strcmp(o, "--rankers") == 0) {
            ok = cli_parse_u64(cmd, o, v, 1, CAUSAL_SIM_MAX_RANKERS, &a->rankers);
        } else if (strcmp(o, "--ranker-noise") == 0) {
            ok = cli_parse_double(cmd, o, v, 0, 1e6, &a->ranker_noise);
        } else if (strcmp(o, "--user") == 0) {
            a->user = v;
        } else if (strcmp(o, "--theta") == 0) {
            a->theta = v;
        } else if (strcmp(o, "--eta") == 0) {
            ok = cli_parse_double(cmd, o, v, 0, 100, &a->eta);
        } else if (strcmp(o, "--epsilon") == 0) {
            ok = cli_parse_double(cmd, o, v, 0, 1, &a->epsilon);
        } else if (strcmp(o, "--dbn-gamma") == 0) {
            ok = cli_parse_double(cmd, o, v, 0, 1, &a->dbn_gamma);
        } else if (strcmp(o, "--policy") == 0) {
            a->policy = v;
        } else if (strcmp(o, "--k") == 0) {
            ok = cli_parse_u64(cmd, o, v, 1, CAUSAL_MAX_RANK, &a->k);
        } else if (strcmp(o, "--randtop-n") == 0) {
            ok = cli_parse_u64(cmd, o, v, 1, CAUSAL_MAX_RANK, &a->randtop_n);
        } else if (strcmp(o, "--swap-share") == 0) {
            ok = cli_parse_double(cmd, o, v, 0, 1, &a->swap_share);
        } else if (strcmp(o, "--temperature") == 0) {
            ok = cli_parse_double(cmd, o, v, 1e-6, 1e6, &a->temperature);
        } else if (strcmp(o, "--mc-samples") == 0) {
            ok = cli_parse_u64(cmd, o, v, 0, 1000000, &a->mc);
        } else if (strcmp(o, "--sessions") == 0) {
            ok = cli_parse_u64(cmd, o, v, 1, (uint64_t)1 << 40, &a->sessions);
        } else if (strcmp(o, "--seed") == 0) {
            ok = cli_parse_u64(cmd, o, v, 0, UINT64_MAX, &a->seed);
        } else {
            return cli_usage_error(cmd, "unknown option %s", o);
        }
        if (!ok) {
            return CLI_EXIT_USAGE;
        }
    }
    if (a->server) {
        if (!a->queries || !a->qrels) {
            return cli_usage_error(cmd, "--server needs --queries and --qrels");
        }
        if (a->out || a->index || a->letor) {
            return cli_usage_error(cmd,
                                   "--server logs through the server: no --out/--index/--letor");
        }
        return CLI_EXIT_OK;
    }
    if (!a->out && !a->no_write) {
        return cli_usage_error(cmd, "--out LOG.db is required (or --no-write)");
    }
    if (a->index && (!a->queries || !a->qrels)) {
        return cli_usage_error(cmd, "--index needs --queries and --qrels");
    }
    if (a->index && a->letor) {
        return cli_usage_error(cmd, "give one collection: --letor or --index");
    }
    return CLI_EXIT_OK;
}

static int parse_user(const sim_args *a, int ymax, causal_user *u)
{
    static const struct {
        const char *name;
        causal_user_kind k;
    } tab[] = {{"pbm", CAUSAL_USER_PBM},
               {"trust", CAUSAL_USER_TRUST},
               {"cascade", CAUSAL_USER_CASCADE},
               {"dbn", CAUSAL_USER_DBN},
               {"ubm", CAUSAL_USER_UBM}};
    for (size_t i = 0; i < CW_ARRAY_LEN(tab); i++) {
        if (strcmp(a->user, tab[i].name) == 0) {
            *u = causal_user_default(tab[i].k, ymax);
            u->epsilon = a->epsilon;
            if (tab[i].k == CAUSAL_USER_DBN) {
                u->dbn_gamma = a->dbn_gamma;
            }
            if (parse_theta(a->theta, a->eta, u) != 0) {
                return cli_usage_error("simulate",
                                       "--theta expects table, power or a list of numbers in "
                                       "(0, 1], got '%s'",
                                       a->theta);
            }
            return CLI_EXIT_OK;
        }
    }
    return cli_usage_error("simulate", "unknown --user '%s' (pbm, trust, cascade, dbn, ubm)",
                           a->user);
}

static int parse_policy(const sim_args *a, causal_sim_policy *p)
{
    static const struct {
        const char *name;
        causal_policy k;
    } tab[] = {{"deterministic", CAUSAL_POLICY_DETERMINISTIC},
               {"randtop", CAUSAL_POLICY_RANDTOP},
               {"swap", CAUSAL_POLICY_SWAP},
               {"pl", CAUSAL_POLICY_PL}};
    for (size_t i = 0; i < CW_ARRAY_LEN(tab); i++) {
        if (strcmp(a->policy, tab[i].name) == 0) {
            p->kind = tab[i].k;
            p->k = (uint32_t)a->k;
            p->randtop_n = (uint32_t)a->randtop_n;
            p->swap_share = a->swap_share;
            p->pl_temperature = a->temperature;
            p->pl_mc_samples = (uint32_t)a->mc;
            return CLI_EXIT_OK;
        }
    }
    return cli_usage_error("simulate", "unknown --policy '%s' (deterministic, randtop, swap, pl)",
                           a->policy);
}

/* Builds the LETOR collection: scores of the production ranker(s). */
static int load_letor(const sim_args *a, causal_sessions *s, causal_simcoll **out, cw_err *err)
{
    char *list = strdup(a->letor);
    const char *paths[16];
    size_t n_paths = 0;
    if (!list) {
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    for (char *tok = strtok(list, ","); tok && n_paths < 16; tok = strtok(NULL, ",")) {
        paths[n_paths++] = tok;
    }
    rank_letor *d = NULL;
    rank_model *m = NULL;
    double *sc = NULL;
    int rc = rank_letor_read(paths, n_paths, &d, err);
    if (rc != CW_OK) {
        goto done;
    }
    sc = malloc(d->n_rows * sizeof *sc);
    if (!sc) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory for scores");
        goto done;
    }
    if (a->model) {
        if ((rc = rank_model_load(a->model, &m, err)) != CW_OK) {
            goto done;
        }
        if (rank_model_n_features(m) != d->n_features) {
            rc = cw_err_set(err, CW_EINVAL, "%s has %zu features, %s has %zu", a->model,
                            rank_model_n_features(m), a->letor, d->n_features);
            goto done;
        }
        if ((rc = rank_model_score(m, d->x, d->n_rows, sc, err)) != CW_OK) {
            goto done;
        }
    } else {
        if (a->score_feature > d->n_features) {
            rc = cw_err_set(err, CW_EINVAL, "--score-feature %llu but %s has %zu features",
                            (unsigned long long)a->score_feature, a->letor, d->n_features);
            goto done;
        }
        for (size_t r = 0; r < d->n_rows; r++) {
            sc[r] = d->x[r * d->n_features + a->score_feature - 1];
        }
    }
    const double *rows[CAUSAL_SIM_MAX_RANKERS];
    for (uint32_t r = 0; r < a->rankers; r++) {
        rows[r] = sc; /* perturbed below */
    }
    rc = causal_simcoll_letor(s, d, rows, (uint32_t)a->rankers, out, err);
done:
    rank_model_free(m);
    rank_letor_free(d);
    free(sc);
    free(list);
    return rc;
}

#ifdef CW_WITH_CURL
static size_t curl_sink(char *p, size_t size, size_t n, void *ctx)
{
    cw_buf *b = ctx;
    return cw_buf_append(b, p, size * n) == CW_OK ? size * n : 0;
}

/* POSTs a JSON body to base + path; the reply goes to *reply. Errors: CW_EIO. */
static int http_post(CURL *h, const char *base, const char *path, const char *body, cw_buf *reply,
                     long *status, cw_err *err)
{
    char url[2048];
    snprintf(url, sizeof url, "%s%s", base, path);
    reply->len = 0;
    if (reply->data) {
        reply->data[0] = '\0';
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, reply);
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        return cw_err_set(err, CW_EIO, "%s: %s", url, curl_easy_strerror(cc));
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    return CW_OK;
}

/* The closed loop over HTTP: search, simulate clicks on what the server showed (labels
 * from qrels), send the clicks as events. */
static int run_server(const sim_args *a, const causal_user *u, cw_err *err)
{
    causal_qrels *qr = NULL;
    cw_lines *lr = NULL;
    char **qids = NULL, **texts = NULL;
    size_t n_q = 0, cap = 0;
    CURL *h = NULL;
    cw_buf reply = {0}, body = {0};
    int rc = causal_qrels_read(a->qrels, &qr, err);
    rc = rc ? rc : cw_lines_open(a->queries, &lr, err);
    const char *line;
    size_t len;
    long ln;
    while (rc >= 0 && (rc = cw_lines_next(lr, &line, &len, &ln, err)) == 1) {
        const char *tab = memchr(line, '\t', len);
        if (!tab) {
            rc = cw_err_set(err, CW_EPARSE, "%s:%ld: expected 'qid<TAB>query'", a->queries, ln);
            break;
        }
        if (n_q == cap) {
            cap = cap ? 2 * cap : 256;
            char **q2 = realloc(qids, cap * sizeof *q2),
                 **t2 = q2 ? realloc(texts, cap * sizeof *t2) : NULL;
            if (q2) {
                qids = q2;
            }
            if (!q2 || !t2) {
                rc = cw_err_set(err, CW_ENOMEM, "out of memory reading queries");
                break;
            }
            texts = t2;
        }
        qids[n_q] = strndup(line, (size_t)(tab - line));
        texts[n_q] = strdup(tab + 1);
        n_q++; /* counted before the check: the cleanup frees both slots */
        if (!qids[n_q - 1] || !texts[n_q - 1]) {
            rc = cw_err_set(err, CW_ENOMEM, "out of memory reading queries");
            break;
        }
    }
    if (rc == 0 && n_q == 0) {
        rc = cw_err_set(err, CW_EINVAL, "%s has no queries", a->queries);
    }
    if (rc < 0) {
        goto done;
    }
    rc = CW_OK;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(h = curl_easy_init())) {
        rc = cw_err_set(err, CW_EIO, "libcurl initialisation failed");
        goto done;
    }
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    cw_rng rng;
    cw_rng_seed(&rng, a->seed);
    uint64_t clicks_total = 0, t0 = cw_now_ns();
    for (uint64_t i = 0; i < a->sessions && rc == CW_OK; i++) {
        size_t q = (size_t)cw_rng_below(&rng, n_q);
        json_t *req =
            json_pack("{s:s, s:I, s:s}", "query", texts[q], "k", (json_int_t)a->k, "qid", qids[q]);
        char *js = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        long status = 0;
        if (!js) {
            rc = cw_err_set(err, CW_ENOMEM, "out of memory building a request");
            break;
        }
        rc = http_post(h, a->server, "/search", js, &reply, &status, err);
        free(js);
        if (rc != CW_OK) {
            break;
        }
        json_error_t je;
        json_t *doc = json_loadb(reply.data ? reply.data : "", reply.len, 0, &je);
        json_t *res = doc ? json_object_get(doc, "results") : NULL;
        json_t *imp = doc ? json_object_get(doc, "impression_id") : NULL;
        if (status != 200 || !json_is_array(res) || !json_is_integer(imp)) {
            rc = cw_err_set(err, CW_EPARSE, "session %llu: /search answered %ld: %.200s",
                            (unsigned long long)i, status, reply.data ? reply.data : "");
            json_decref(doc);
            break;
        }
        size_t n = json_array_size(res);
        n = n < CAUSAL_MAX_RANK ? n : CAUSAL_MAX_RANK;
        int labels[CAUSAL_MAX_RANK];
        uint8_t clicks[CAUSAL_MAX_RANK];
        for (size_t j = 0; j < n; j++) {
            const char *id = json_string_value(json_object_get(json_array_get(res, j), "id"));
            labels[j] = id ? causal_qrels_label(qr, qids[q], id) : 0;
        }
        causal_user_clicks(u, labels, (uint32_t)n, &rng, clicks);
        json_t *evs = json_array();
        for (size_t j = 0; j < n && evs; j++) {
            if (!clicks[j]) {
                continue;
            }
            json_t *it = json_array_get(res, j);
            char eid[64];
            snprintf(eid, sizeof eid, "sim-%llu-%llu-%zu", (unsigned long long)a->seed,
                     (unsigned long long)i, j);
            json_array_append_new(evs, json_pack("{s:O, s:O, s:O, s:s, s:s}", "impression_id", imp,
                                                 "doc_id", json_object_get(it, "id"), "position",
                                                 json_object_get(it, "position"), "type", "click",
                                                 "event_id", eid));
            clicks_total++;
        }
        if (evs && json_array_size(evs) > 0) {
            char *eb = json_dumps(evs, JSON_COMPACT);
            rc = eb ? http_post(h, a->server, "/events", eb, &reply, &status, err)
                    : cw_err_set(err, CW_ENOMEM, "out of memory");
            free(eb);
            if (rc == CW_OK && status != 200) {
                rc = cw_err_set(err, CW_EIO, "session %llu: /events answered %ld: %.200s",
                                (unsigned long long)i, status, reply.data ? reply.data : "");
            }
        }
        json_decref(evs);
        json_decref(doc);
        if (!a->quiet) {
            cw_progress_report(&cli_progress, "simulate via server", i + 1, a->sessions);
        }
        if (cw_interrupted()) {
            rc =
                cw_err_set(err, CW_EINTR, "interrupted after %llu sessions", (unsigned long long)i);
        }
    }
    if (rc == CW_OK) {
        double secs = (double)(cw_now_ns() - t0) / 1e9;
        fprintf(stderr, "simulated %llu sessions through %s (%llu clicks) in %.2f s: %.0f/s\n",
                (unsigned long long)a->sessions, a->server, (unsigned long long)clicks_total, secs,
                (double)a->sessions / (secs > 0 ? secs : 1e-9));
    }
    curl_slist_free_all(hdr);
done:
    if (h) {
        curl_easy_cleanup(h);
    }
    for (size_t i = 0; i < n_q; i++) {
        free(qids[i]);
        free(texts[i]);
    }
    free(qids);
    free(texts);
    cw_buf_fini(&reply);
    cw_buf_fini(&body);
    cw_lines_close(lr);
    causal_qrels_free(qr);
    return rc;
}
#endif

int cli_cmd_simulate(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    sim_args a;
    int ex = parse_args(argc, argv, &a);
    if (ex != CLI_EXIT_OK) {
        return ex;
    }
    cw_err err = {0};
    if (a.server) {
#ifdef CW_WITH_CURL
        causal_user u;
        /* qrels grades are unknown until read: ymax 4 covers TREC 0..4 grades */
        if ((ex = parse_user(&a, 4, &u)) != CLI_EXIT_OK) {
            return ex;
        }
        if (run_server(&a, &u, &err) != CW_OK) {
            return cli_fail("simulate", &err);
        }
        return CLI_EXIT_OK;
#else
        return cli_usage_error("simulate", "this causeway was built without libcurl: no --server");
#endif
    }
    causal_sessions *s = NULL;
    causal_simcoll *c = NULL;
    idx_index *ix = NULL;
    int rc = causal_sessions_new(&s, &err);
    if (rc == CW_OK && a.letor) {
        rc = load_letor(&a, s, &c, &err);
    } else if (rc == CW_OK && a.index) {
        size_t skipped = 0;
        rc = idx_index_open(a.index, &ix, &err);
        rc = rc ? rc
                : causal_simcoll_text(s, ix, a.queries, a.qrels, (uint32_t)a.depth,
                                      (uint32_t)a.rankers, true, &c, &skipped, &err);
        if (rc == CW_OK && skipped) {
            fprintf(stderr, "causeway simulate: warning: %zu queries retrieved nothing (skipped)\n",
                    skipped);
        }
    } else if (rc == CW_OK) {
        /* Two features per pair so regression-EM has something to regress on: the label
         * plus N(0, 0.5^2) noise (independent of the rankers' noise) and pure noise. */
        rc = causal_sessions_set_n_features(s, 2, &err);
        rc = rc ? rc
                : causal_simcoll_random(s, (uint32_t)a.synth_q, (uint32_t)a.synth_d, (int)a.ymax,
                                        (uint32_t)a.rankers, a.noise, a.seed ^ 0x5eedc011ull, &c,
                                        &err);
        cw_rng fr;
        for (size_t p = 0; rc == CW_OK && p < s->n_pairs; p++) {
            cw_rng_seed_stream(&fr, a.seed ^ 0xfea7ull, p);
            s->pair_features[2 * p] = (float)(s->pair_label[p] + 0.5 * cw_rng_normal(&fr));
            s->pair_features[2 * p + 1] = (float)cw_rng_normal(&fr);
        }
    }
    if (rc == CW_OK && a.rankers > 1) {
        rc = causal_simcoll_perturb(c, a.ranker_noise, a.seed ^ 0xfeedull, &err);
    }
    causal_sim_opts so = causal_sim_opts_default();
    if (rc == CW_OK) {
        int ymax = causal_simcoll_max_label(c);
        if ((ex = parse_user(&a, ymax < 1 ? 1 : ymax, &so.user)) != CLI_EXIT_OK ||
            (ex = parse_policy(&a, &so.policy)) != CLI_EXIT_OK) {
            causal_simcoll_free(c);
            causal_sessions_free(s);
            idx_index_close(ix);
            return ex;
        }
        so.n_sessions = a.sessions;
        so.seed = a.seed;
        so.n_rankers = (uint32_t)a.rankers;
        if (!a.quiet) {
            so.progress = cli_progress;
        }
        uint64_t t0 = cw_now_ns();
        rc = causal_simulate(c, &so, &err);
        double secs = (double)(cw_now_ns() - t0) / 1e9;
        if (rc == CW_OK) {
            uint64_t clicks = 0;
            for (size_t j = 0; j < s->n_items; j++) {
                clicks += s->i_click[j];
            }
            fprintf(stderr,
                    "simulated %zu sessions (%zu queries, %zu items, %llu clicks) in %.3f s: "
                    "%.0f sessions/s\n",
                    s->n_sessions, causal_simcoll_n_queries(c), s->n_items,
                    (unsigned long long)clicks, secs,
                    (double)s->n_sessions / (secs > 0 ? secs : 1e-9));
        }
    }
    if (rc == CW_OK && !a.no_write) {
        uint64_t t0 = cw_now_ns();
        cw_progress pr = a.quiet ? (cw_progress){0} : cli_progress;
        rc = causal_sessions_save_log(s, 0, s->n_sessions, a.out, cw_wall_ms(), 5000, &pr, &err);
        if (rc == CW_OK) {
            double secs = (double)(cw_now_ns() - t0) / 1e9;
            fprintf(stderr, "wrote %zu impressions to %s in %.2f s (%.0f/s)\n", s->n_sessions,
                    a.out, secs, (double)s->n_sessions / (secs > 0 ? secs : 1e-9));
        }
    }
    causal_simcoll_free(c);
    causal_sessions_free(s);
    idx_index_close(ix);
    if (rc != CW_OK) {
        return cli_fail("simulate", &err);
    }
    return CLI_EXIT_OK;
}
