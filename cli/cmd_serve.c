/* cli/cmd_serve.c: `causeway serve`, the HTTP search server (server/server.h) with
 * signal handling: SIGHUP reloads index and model, SIGTERM/SIGINT stop gracefully. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "server/server.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: causeway serve --index DIR --db FILE [--bind 127.0.0.1] [--port 8080]\n"
            "                      [--threads N] [--model FILE] [--config FILE]\n"
            "                      [--sync full|normal] [--max-body BYTES] [--queue N]\n"
            "                      [--timeout S] [--cache-mb N] [--port-file FILE]\n"
            "                      [--logging-policy SPEC] [--retrieval auto|bm25|hybrid]\n"
            "                      [--fusion rrf|weighted] [--dense-weight W] [--rrf-k K]\n\n"
            "Serves the index over HTTP (docs/api.md) and logs every served ranking and\n"
            "every reported event to the SQLite log FILE (docs/logs.md).\n\n"
            "  --index DIR       index built by 'causeway index' (memory-mapped)\n"
            "  --db FILE         impression/event log, created if absent\n"
            "  --bind ADDR       IPv4 or IPv6 address to listen on (default 127.0.0.1; ::1, ::)\n"
            "  --port N          TCP port, 0 = any free port (default 8080)\n"
            "  --threads N       libmicrohttpd pool threads (default 2)\n"
            "  --model FILE      ranker model reranking the BM25 candidates\n"
            "  --config FILE     JSON config (keys: index db model bind port threads\n"
            "                    max_body_bytes queue_capacity timeout_s cache_mb admin_token\n"
            "                    sync logging_policy mc_samples retrieval fusion\n"
            "                    dense_weight rrf_k);\n"
            "                    options given on the command line win\n"
            "  --sync MODE       full (default: acked events survive power loss) or normal\n"
            "                    (acked events survive a crash of the process only)\n"
            "  --max-body BYTES  request body limit (default 1048576)\n"
            "  --queue N         log writer queue capacity in jobs (default 32768)\n"
            "  --timeout S       idle/slow client timeout in seconds (default 15)\n"
            "  --cache-mb N      /search result cache, emptied on reload (default 64, 0 = off);\n"
            "                    a cached answer is still logged as its own impression\n"
            "  --port-file FILE  write the bound port to FILE once listening\n"
            "  --logging-policy SPEC  how each page is drawn and logged for off-policy\n"
            "                    evaluation: det (default, the ranked order), pl:TAU\n"
            "                    (Plackett-Luce over the page's scores), randtop:N or\n"
            "                    egreedy:EPS; logs per-item propensities, the list's\n"
            "                    log-probability, tau and the seed (config key logging_policy)\n"
            "  --retrieval MODE  candidates: bm25, hybrid (BM25 + dense top-100 fused by\n"
            "                    reciprocal rank fusion; needs dense.enc + dense.hnsw from\n"
            "                    'causeway embed train/build') or auto (default: hybrid when\n"
            "                    the index holds dense files); config key retrieval; a request\n"
            "                    may ask \"retrieval\": \"bm25\"|\"hybrid\" (GET retrieval=);\n"
            "                    logged as the impression's policy (bm25, hybrid, model,\n"
            "                    model+hybrid)\n"
            "  --fusion METHOD   hybrid fusion: rrf (default, sum of w_run / (K + rank)) or\n"
            "                    weighted ((1 - W) minmax(bm25) + W minmax(dense)); a request\n"
            "                    may ask \"fusion\" and \"dense_weight\" (GET fusion=,\n"
            "                    dense_weight=); any but the default (rrf, W 0.5, K 60) is\n"
            "                    logged in the policy, e.g. hybrid(weighted,w=0.3)\n"
            "  --dense-weight W  weight of the dense run in [0, 1] (default 0.5)\n"
            "  --rrf-k K         RRF constant (default 60)\n\n"
            "Prints \"listening on http://ADDR:PORT\" on stdout when ready. SIGHUP or\n"
            "POST /admin/reload reloads index, dense files and model; SIGTERM/SIGINT\n"
            "drain the log queue, close the database and exit 0.\n");
}

static volatile sig_atomic_t g_sighup;

static void on_sighup(int sig)
{
    (void)sig;
    g_sighup = 1;
}

int cli_cmd_serve(int argc, char **argv)
{
    const char *cmd = "serve";
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    srv_config cfg = srv_config_default();
    srv_config cli = cfg; /* what the command line set, applied over the config file */
    bool set_bind = false, set_port = false, set_threads = false, set_sync = false;
    bool set_body = false, set_queue = false, set_timeout = false, set_cache = false;
    idx_hybrid_opts hy = idx_hybrid_opts_default();
    unsigned hy_given = 0; /* CLI_HY_* bits set on the command line */
    const char *config_path = NULL, *port_file = NULL;
    cli.index_dir = cli.db_path = cli.model_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n = 0;
        /* the server fuses a fixed top-100 of each run: --depth and --ef are not its */
        int hr = cli_hybrid_opt(cmd, CLI_HY_FUSION | CLI_HY_WEIGHT | CLI_HY_RRF_K, argc, argv, &i,
                                &hy, &hy_given);
        if (hr != 0) {
            if (hr < 0) {
                return CLI_EXIT_USAGE;
            }
            continue;
        }
        if (!v) {
            return cli_usage_error(cmd, "unknown option or missing value: '%s'", a);
        }
        i++;
        if (strcmp(a, "--index") == 0) {
            cli.index_dir = v;
        } else if (strcmp(a, "--db") == 0) {
            cli.db_path = v;
        } else if (strcmp(a, "--model") == 0) {
            cli.model_path = v;
        } else if (strcmp(a, "--logging-policy") == 0) {
            cli.logging_policy = v;
        } else if (strcmp(a, "--retrieval") == 0) {
            cli.retrieval = v; /* checked by srv_new */
        } else if (strcmp(a, "--config") == 0) {
            config_path = v;
        } else if (strcmp(a, "--port-file") == 0) {
            port_file = v;
        } else if (strcmp(a, "--bind") == 0) {
            cli.bind = v;
            set_bind = true;
        } else if (strcmp(a, "--port") == 0) {
            if (!cli_parse_u64(cmd, a, v, 0, 65535, &n)) {
                return CLI_EXIT_USAGE;
            }
            cli.port = (uint16_t)n;
            set_port = true;
        } else if (strcmp(a, "--threads") == 0) {
            if (!cli_parse_u64(cmd, a, v, 1, 256, &n)) {
                return CLI_EXIT_USAGE;
            }
            cli.threads = (unsigned)n;
            set_threads = true;
        } else if (strcmp(a, "--max-body") == 0) {
            if (!cli_parse_u64(cmd, a, v, 1024, SRV_MAX_BODY_BYTES_CAP, &n)) {
                return CLI_EXIT_USAGE;
            }
            cli.max_body_bytes = (size_t)n;
            set_body = true;
        } else if (strcmp(a, "--queue") == 0) {
            if (!cli_parse_u64(cmd, a, v, 1, 1u << 24, &n)) {
                return CLI_EXIT_USAGE;
            }
            cli.queue_capacity = (unsigned)n;
            set_queue = true;
        } else if (strcmp(a, "--timeout") == 0) {
            if (!cli_parse_u64(cmd, a, v, 1, 3600, &n)) {
                return CLI_EXIT_USAGE;
            }
            cli.timeout_s = (unsigned)n;
            set_timeout = true;
        } else if (strcmp(a, "--cache-mb") == 0) {
            if (!cli_parse_u64(cmd, a, v, 0, 1u << 20, &n)) {
                return CLI_EXIT_USAGE;
            }
            cli.cache_bytes = (size_t)n << 20;
            set_cache = true;
        } else if (strcmp(a, "--sync") == 0) {
            if (strcmp(v, "full") == 0) {
                cli.sync = CAUSAL_SYNC_FULL;
            } else if (strcmp(v, "normal") == 0) {
                cli.sync = CAUSAL_SYNC_NORMAL;
            } else {
                return cli_usage_error(cmd, "--sync expects full or normal, got '%s'", v);
            }
            set_sync = true;
        } else {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        }
    }
    cw_err err;
    srv_config_store *store = NULL;
    if (config_path && srv_config_load(config_path, &cfg, &store, &err) != CW_OK) {
        return cli_fail(cmd, &err);
    }
    if (cli.index_dir) {
        cfg.index_dir = cli.index_dir;
    }
    if (cli.db_path) {
        cfg.db_path = cli.db_path;
    }
    if (cli.logging_policy) {
        cfg.logging_policy = cli.logging_policy;
    }
    if (cli.retrieval) {
        cfg.retrieval = cli.retrieval;
    }
    if (hy_given & CLI_HY_FUSION) {
        cfg.fusion = hy.fusion == IDX_FUSION_WEIGHTED ? "weighted" : "rrf";
    }
    cfg.dense_weight = hy_given & CLI_HY_WEIGHT ? hy.w_dense : cfg.dense_weight;
    cfg.rrf_k = hy_given & CLI_HY_RRF_K ? hy.rrf_k : cfg.rrf_k;
    if (cli.model_path) {
        cfg.model_path = cli.model_path;
    }
    cfg.bind = set_bind ? cli.bind : cfg.bind;
    cfg.port = set_port ? cli.port : cfg.port;
    cfg.threads = set_threads ? cli.threads : cfg.threads;
    cfg.max_body_bytes = set_body ? cli.max_body_bytes : cfg.max_body_bytes;
    cfg.queue_capacity = set_queue ? cli.queue_capacity : cfg.queue_capacity;
    cfg.timeout_s = set_timeout ? cli.timeout_s : cfg.timeout_s;
    cfg.sync = set_sync ? cli.sync : cfg.sync;
    cfg.cache_bytes = set_cache ? cli.cache_bytes : cfg.cache_bytes;
    if (!cfg.index_dir || !cfg.db_path) {
        srv_config_store_free(store);
        return cli_usage_error(cmd, "--index and --db are required (or in --config)");
    }

    /* Signals are taken synchronously by this thread only: block them before MHD and
     * the writer start so every thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    /* Threads started before main() (OpenBLAS creates its pool when the library loads)
     * do not block these signals, so the kernel may deliver one there: a handler must
     * exist for each (SIGHUP's default would kill the server) and record it where the
     * loop below looks. SIGINT/SIGTERM already set cw_interrupted(). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sighup;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv_server *s = NULL;
    int rc = srv_new(&cfg, &s, &err);
    if (rc != CW_OK) {
        srv_config_store_free(store);
        return cli_fail(cmd, &err);
    }
    if (port_file) {
        char buf[16];
        int len = snprintf(buf, sizeof buf, "%u\n", (unsigned)srv_port(s));
        if (cw_file_write_atomic(port_file, buf, (size_t)len, &err) != CW_OK) {
            srv_free(s);
            srv_config_store_free(store);
            return cli_fail(cmd, &err);
        }
    }
    /* cfg's strings may point into the --config store: it is released only after this. An
     * IPv6 literal goes in brackets, so the printed URL works as it is. */
    bool is_v6 = strchr(cfg.bind, ':') != NULL;
    printf("listening on http://%s%s%s:%u\n", is_v6 ? "[" : "", cfg.bind, is_v6 ? "]" : "",
           (unsigned)srv_port(s));
    srv_config_store_free(store);
    store = NULL;
    fflush(stdout);
    for (;;) {
        /* Poll: a signal taken by another thread's handler never reaches sigtimedwait. */
        const struct timespec tick = {0, 100 * 1000 * 1000};
        int sig = sigtimedwait(&set, NULL, &tick);
        if (sig < 0) {
            if (cw_interrupted()) {
                break;
            }
            if (!g_sighup) {
                continue;
            }
            sig = SIGHUP;
        }
        if (sig == SIGHUP) {
            g_sighup = 0;
            if (srv_reload(s, &err) != CW_OK) {
                fprintf(stderr, "causeway serve: %s\n", err.msg);
            } else {
                fprintf(stderr, "causeway serve: reloaded index and model\n");
            }
            continue;
        }
        break;
    }
    fprintf(stderr, "causeway serve: shutting down (draining the log queue)\n");
    srv_free(s);
    return CLI_EXIT_OK;
}
