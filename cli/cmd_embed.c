/* cli/cmd_embed.c: `causeway embed train|build|search|run`: contrastive pre-training of
 * the dense encoder on an index's documents, the HNSW vector index next to it, and
 * dense or hybrid (BM25 + dense) retrieval from the command line (issue 6). */
#include "config.h"

#include <limits.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "causal/causal.h"
#include "cli/cli.h"
#include "index/index.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: causeway embed train --index DIR [--dim 128] [--buckets 262144]\n"
            "           [--epochs 10] [--batch 64] [--tau 0.05] [--mode moco|simclr]\n"
            "           [--queue min(4096,n/4)] [--momentum 0.995] [--lr 0.05] [--lr-proj 0.001]\n"
            "           [--crop-min 0.05] [--crop-max 0.5] [--p-delete 0.1] [--seed 1]\n"
            "           [--checkpoint-every STEPS] [--checkpoint-secs 300] [--resume] [--lsa]\n"
            "       causeway embed finetune --index DIR --db LOG --propensity FIT.json\n"
            "           [--clip 10] [--epochs 10] [--batch 64] [--tau 0.05] [--lr 0.05]\n"
            "       causeway embed build --index DIR [--m 32] [--ef-construction 100] [--seed 1]\n"
            "       causeway embed search --index DIR [--k 10] [--ef 128] [--exact]\n"
            "           [--hybrid [--fusion rrf|weighted] [--dense-weight 0.5] [--rrf-k 60]\n"
            "            [--depth 100]] QUERY...\n"
            "       causeway embed run --index DIR --queries FILE.tsv [--k 1000]\n"
            "           [--mode dense|hybrid] [--ef 128] [--exact] [--fusion rrf|weighted]\n"
            "           [--dense-weight 0.5] [--rrf-k 60] [--depth 1000] [--tag NAME]\n"
            "           [--no-word-cache]\n"
            "           > run.trec\n\n"
            "train: unsupervised contrastive pre-training (two Contriever-style views per\n"
            "  document: random crop of 5-50%% of its words + word deletion; InfoNCE at\n"
            "  temperature tau; MoCo key encoder + queue, or SimCLR in-batch negatives) on\n"
            "  title + text of every indexed document. Writes DIR/dense.enc, checkpoints (every\n"
            "  5 minutes by default, --checkpoint-secs; or every --checkpoint-every steps) to\n"
            "  DIR/dense.ckpt; --resume continues from it (also after Ctrl-C). Progress\n"
            "  (loss, docs/s) on stderr. --lsa starts from LSA (randomized SVD through\n"
            "  LAPACKE); --epochs 0 with --lsa gives plain LSA.\n"
            "finetune: contrastive fine-tuning of DIR/dense.enc on the (query, clicked\n"
            "  document) pairs of the click log LOG, each weighted by the inverse of the\n"
            "  examination propensity of its position, min(1/theta_k, --clip), theta from\n"
            "  FIT.json ('causeway propensity' output or an array of theta_k/theta_1);\n"
            "  rewrites dense.enc (run embed build afterwards).\n"
            "build: encodes every document and writes the HNSW graph DIR/dense.hnsw.\n"
            "search/run: dense (ANN, or --exact brute force) or hybrid retrieval: BM25 and\n"
            "  dense top-depth fused by reciprocal rank fusion (default) or a weighted sum\n"
            "  of min-max normalised scores (--dense-weight, alias --w-dense: the dense run's\n"
            "  weight; --rrf-k: the RRF constant). run prints a TREC run and the median query\n"
            "  encoding time on stderr; --no-word-cache encodes every word's features\n"
            "  from the table (the baseline of the per-word cache; dense mode).\n\n"
            "Exit codes: 0 success, 1 failure, 2 usage error.\n");
}

typedef struct embed_args {
    const char *dir, *queries, *tag;
    const char *db, *propensity; /* finetune */
    double clip;                 /* finetune: largest inverse-propensity weight */
    idx_encoder_opts enc;
    idx_train_opts train;
    idx_hnsw_opts hnsw;
    idx_hybrid_opts hy;
    uint32_t k;
    bool hybrid;
    bool queue_given;   /* --queue on the command line; else sized from the corpus */
    bool no_word_cache; /* run: encode queries without the encoder's word cache */
    cw_buf qtext;
} embed_args;

/* Parses the options shared by the four actions; returns CLI_EXIT_OK or USAGE. */
static int parse(int argc, char **argv, embed_args *a)
{
    const char *cmd = "embed";
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t u;
        double d;
        int hr = cli_hybrid_opt(cmd, CLI_HY_ALL, argc, argv, &i, &a->hy, NULL);
        if (hr != 0) {
            if (hr < 0) {
                return CLI_EXIT_USAGE;
            }
            continue;
        }
#define U64(name, lo, hi, dst)                                                                     \
    if (strcmp(o, name) == 0 && v) {                                                               \
        if (!cli_parse_u64(cmd, o, v, lo, hi, &u)) {                                               \
            return CLI_EXIT_USAGE;                                                                 \
        }                                                                                          \
        dst = (uint32_t)u;                                                                         \
        i++;                                                                                       \
        continue;                                                                                  \
    }
#define DBL(name, lo, hi, dst)                                                                     \
    if (strcmp(o, name) == 0 && v) {                                                               \
        if (!cli_parse_double(cmd, o, v, lo, hi, &d)) {                                            \
            return CLI_EXIT_USAGE;                                                                 \
        }                                                                                          \
        dst = d;                                                                                   \
        i++;                                                                                       \
        continue;                                                                                  \
    }
        U64("--dim", 2, IDX_DENSE_MAX_DIM, a->enc.dim);
        U64("--buckets", 16, IDX_DENSE_MAX_BUCKETS, a->enc.n_buckets);
        U64("--epochs", 0, 100000, a->train.epochs);
        U64("--batch", 2, 65536, a->train.batch);
        if (strcmp(o, "--queue") == 0) {
            a->queue_given = true;
        }
        U64("--queue", 0, 1u << 22, a->train.queue);
        U64("--checkpoint-every", 0, UINT32_MAX, a->train.ckpt_every);
        U64("--checkpoint-secs", 0, 86400 * 365, a->train.ckpt_secs);
        U64("--m", 2, IDX_DENSE_MAX_M, a->hnsw.m);
        U64("--ef-construction", 1, IDX_DENSE_MAX_EF, a->hnsw.ef_construction);
        U64("--k", 1, IDX_MAX_K, a->k);
        DBL("--tau", 1e-4, 100, a->train.tau);
        DBL("--momentum", 0, 0.999999, a->train.momentum);
        DBL("--lr", 1e-9, 100, a->train.lr);
        DBL("--lr-proj", 0, 100, a->train.lr_proj);
        DBL("--crop-min", 1e-6, 1, a->train.crop_min);
        DBL("--crop-max", 1e-6, 1, a->train.crop_max);
        DBL("--p-delete", 0, 0.99, a->train.p_delete);
        DBL("--clip", 1, 1e6, a->clip);
#undef U64
#undef DBL
        if (strcmp(o, "--seed") == 0 && v) {
            if (!cli_parse_u64(cmd, o, v, 0, UINT64_MAX, &u)) {
                return CLI_EXIT_USAGE;
            }
            a->enc.seed = a->train.seed = a->hnsw.seed = u;
            i++;
        } else if (strcmp(o, "--index") == 0 && v) {
            a->dir = v;
            i++;
        } else if (strcmp(o, "--db") == 0 && v) {
            a->db = v;
            i++;
        } else if (strcmp(o, "--propensity") == 0 && v) {
            a->propensity = v;
            i++;
        } else if (strcmp(o, "--queries") == 0 && v) {
            a->queries = v;
            i++;
        } else if (strcmp(o, "--tag") == 0 && v) {
            a->tag = v;
            i++;
        } else if (strcmp(o, "--mode") == 0 && v) {
            if (strcmp(v, "moco") == 0) {
                a->train.mode = IDX_CONTRASTIVE_MOCO;
            } else if (strcmp(v, "simclr") == 0) {
                a->train.mode = IDX_CONTRASTIVE_SIMCLR;
            } else if (strcmp(v, "dense") == 0) {
                a->hybrid = false;
            } else if (strcmp(v, "hybrid") == 0) {
                a->hybrid = true;
            } else {
                return cli_usage_error(cmd,
                                       "--mode expects moco|simclr (train) or "
                                       "dense|hybrid (run), got '%s'",
                                       v);
            }
            i++;
        } else if (strcmp(o, "--lsa") == 0) {
            a->train.lsa_init = true;
        } else if (strcmp(o, "--resume") == 0) {
            a->train.resume = true;
        } else if (strcmp(o, "--no-word-cache") == 0) {
            a->no_word_cache = true;
        } else if (strcmp(o, "--exact") == 0) {
            a->hy.exact = true;
        } else if (strcmp(o, "--hybrid") == 0) {
            a->hybrid = true;
        } else if (strcmp(o, "--quiet") == 0) {
            cli_progress.fn = NULL;
        } else if (o[0] == '-' && o[1] == '-') {
            return cli_usage_error(cmd, "unknown option or missing value: '%s'", o);
        } else {
            if ((a->qtext.len > 0 && cw_buf_append(&a->qtext, " ", 1) != CW_OK) ||
                cw_buf_append(&a->qtext, o, strlen(o)) != CW_OK) {
                return cli_usage_error(cmd, "out of memory");
            }
        }
    }
    if (!a->dir) {
        return cli_usage_error(cmd, "--index DIR is required");
    }
    return CLI_EXIT_OK;
}

/* Title + " " + text of every document, in docid order. */
static int load_texts(const idx_index *ix, char ***texts_out, size_t **lens_out, cw_err *err)
{
    uint32_t n = idx_index_n_docs(ix);
    char **texts = calloc(n ? n : 1, sizeof *texts);
    size_t *lens = calloc(n ? n : 1, sizeof *lens);
    if (!texts || !lens) {
        free(texts);
        free(lens);
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < n; i++) {
        idx_doc d;
        int rc = idx_doc_get(ix, i, &d, err);
        if (rc == CW_OK) {
            texts[i] = malloc(d.title_len + d.text_len + 2);
            if (!texts[i]) {
                rc = cw_err_set(err, CW_ENOMEM, "out of memory");
            }
        }
        if (rc != CW_OK) {
            for (uint32_t j = 0; j < i; j++) {
                free(texts[j]);
            }
            free(texts);
            free(lens);
            return rc;
        }
        memcpy(texts[i], d.title, d.title_len);
        texts[i][d.title_len] = ' ';
        memcpy(texts[i] + d.title_len + 1, d.text, d.text_len);
        lens[i] = d.title_len + 1 + d.text_len;
        texts[i][lens[i]] = '\0';
    }
    *texts_out = texts;
    *lens_out = lens;
    return CW_OK;
}

static void free_texts(char **texts, size_t *lens, uint32_t n)
{
    if (texts) {
        for (uint32_t i = 0; i < n; i++) {
            free(texts[i]);
        }
    }
    free(texts);
    free(lens);
}

static int do_train(embed_args *a, cw_err *err)
{
    idx_index *ix = NULL;
    idx_encoder *enc = NULL;
    char **texts = NULL;
    size_t *lens = NULL;
    char enc_path[PATH_MAX], ck_path[PATH_MAX];
    snprintf(enc_path, sizeof enc_path, "%s/dense.enc", a->dir);
    snprintf(ck_path, sizeof ck_path, "%s/dense.ckpt", a->dir);
    int rc = idx_index_open(a->dir, &ix, err);
    if (rc == CW_OK) {
        rc = load_texts(ix, &texts, &lens, err);
    }
    if (rc == CW_OK) {
        rc = idx_encoder_new(&a->enc, &enc, err);
    }
    uint32_t n = ix ? idx_index_n_docs(ix) : 0;
    if (rc == CW_OK && !a->queue_given) {
        /* The queue must be much smaller than the corpus: once it holds older keys of the
         * documents in the batch, their own views become negatives (false negatives).
         * Default: a quarter of the corpus, in whole batches, at most 4096. */
        uint32_t b = CW_MIN(a->train.batch, CW_MAX(n, 2u));
        a->train.queue = CW_MIN(4096u, CW_MAX(1u, n / (4 * b)) * b);
    }
    if (rc == CW_OK) {
        a->train.ckpt_path = ck_path;
        a->train.progress = cli_progress;
        idx_train_stats st;
        rc = idx_encoder_train(enc, (const char *const *)texts, lens, idx_index_n_docs(ix),
                               &a->train, &st, err);
        if (rc == CW_OK) {
            rc = idx_encoder_save(enc, enc_path, err);
        }
        if (rc == CW_OK) {
            fprintf(stderr,
                    "embed train: %u docs, %llu steps, loss %.4f -> %.4f, %.0f docs/s, %.1f s; "
                    "wrote %s\n",
                    idx_index_n_docs(ix), (unsigned long long)st.steps, st.first_loss, st.last_loss,
                    st.docs_per_sec, st.seconds, enc_path);
        }
    }
    free_texts(texts, lens, ix ? idx_index_n_docs(ix) : 0);
    idx_encoder_free(enc);
    idx_index_close(ix);
    return rc;
}

/* Every clicked item of the log as a (query, document) pair weighted min(1/theta_k, clip)
 * for its position k. Query texts are copied into *qbuf (pairs' query pointers are set
 * once it stops growing). Clicks on documents the index lacks or at positions the fit
 * does not cover are counted, not used. */
static int read_click_pairs(const embed_args *a, const idx_index *ix, const double *theta,
                            uint32_t n_theta, cw_buf *qbuf, idx_click_pair **pairs_out,
                            size_t *n_out, size_t skipped[2], cw_err *err)
{
    causal_log_opts lo = causal_log_opts_default();
    lo.read_only = true;
    causal_log *log = NULL;
    causal_log_reader *r = NULL;
    idx_click_pair *pairs = NULL;
    size_t n = 0, cap = 0;
    int rc = causal_log_open(a->db, &lo, &log, err);
    causal_log_filter f = causal_log_filter_all();
    if (rc == CW_OK) {
        rc = causal_log_reader_new(log, &f, &r, err);
    }
    const causal_impression *imp = NULL;
    while (rc == CW_OK) {
        int more = causal_log_reader_next(r, &imp, err);
        if (more <= 0) {
            rc = more;
            break;
        }
        size_t qoff = qbuf->len, qlen = strlen(imp->query);
        bool query_kept = false;
        for (size_t i = 0; rc == CW_OK && i < imp->n_items; i++) {
            const causal_item *it = &imp->items[i];
            if (it->n_clicks == 0) {
                continue;
            }
            uint32_t doc = 0;
            if (it->position < 1 || it->position > n_theta) {
                skipped[1]++;
                continue;
            }
            if (idx_doc_lookup(ix, it->doc_id, strlen(it->doc_id), &doc, NULL) != CW_OK) {
                skipped[0]++;
                continue;
            }
            if (!query_kept && (rc = cw_buf_append(qbuf, imp->query, qlen + 1)) != CW_OK) {
                break;
            }
            query_kept = true;
            if (n == cap) {
                cap = cap ? 2 * cap : 1024;
                idx_click_pair *np = realloc(pairs, cap * sizeof *np);
                if (!np) {
                    rc = cw_err_set(err, CW_ENOMEM, "out of memory");
                    break;
                }
                pairs = np;
            }
            /* IPS (Joachims et al., WSDM 2017, eq. 5) with the weight clipped at --clip
             * (Strehl et al. 2010): bias for variance at the deep positions. */
            double w = CW_MIN(1.0 / theta[it->position - 1], a->clip);
            /* query offset stored in the pointer's place until qbuf stops moving */
            pairs[n++] = (idx_click_pair){
                .query = (const char *)(uintptr_t)qoff, .query_len = qlen, .doc = doc, .weight = w};
        }
    }
    causal_log_reader_free(r);
    causal_log_close(log);
    if (rc != CW_OK) {
        free(pairs);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        pairs[i].query = qbuf->data + (uintptr_t)pairs[i].query;
    }
    *pairs_out = pairs;
    *n_out = n;
    return CW_OK;
}

static int do_finetune(embed_args *a, cw_err *err)
{
    idx_index *ix = NULL;
    idx_encoder *enc = NULL;
    char **texts = NULL;
    size_t *lens = NULL;
    idx_click_pair *pairs = NULL;
    size_t n_pairs = 0, skipped[2] = {0, 0};
    cw_buf qbuf = {0};
    double theta[CAUSAL_MAX_RANK];
    uint32_t n_theta = 0;
    char enc_path[PATH_MAX];
    snprintf(enc_path, sizeof enc_path, "%s/dense.enc", a->dir);
    int rc = causal_propensity_read_ratios(a->propensity, theta, CAUSAL_MAX_RANK, &n_theta, err);
    if (rc == CW_OK) {
        rc = idx_index_open(a->dir, &ix, err);
    }
    if (rc == CW_OK) {
        /* no word cache: fine-tuning changes the table and would drop it unused */
        rc = idx_encoder_load_uncached(enc_path, &enc, err);
        if (rc == CW_ENOTFOUND) {
            cw_err_prefix(err, "run 'causeway embed train --index %s' first: ", a->dir);
        }
    }
    if (rc == CW_OK) {
        rc = read_click_pairs(a, ix, theta, n_theta, &qbuf, &pairs, &n_pairs, skipped, err);
    }
    if (rc == CW_OK) {
        rc = load_texts(ix, &texts, &lens, err);
    }
    if (rc == CW_OK) {
        double sw = 0, wmax = 0;
        for (size_t i = 0; i < n_pairs; i++) {
            sw += pairs[i].weight;
            wmax = CW_MAX(wmax, pairs[i].weight);
        }
        fprintf(stderr,
                "embed finetune: %zu click pairs (skipped: %zu on unknown documents, %zu below "
                "rank %u), weights mean %.3f max %.3f\n",
                n_pairs, skipped[0], skipped[1], n_theta, n_pairs ? sw / (double)n_pairs : 0.0,
                wmax);
        a->train.progress = cli_progress;
        idx_train_stats st;
        rc = idx_encoder_finetune(enc, (const char *const *)texts, lens, idx_index_n_docs(ix),
                                  pairs, n_pairs, &a->train, &st, err);
        if (rc == CW_OK) {
            rc = idx_encoder_save(enc, enc_path, err);
        }
        if (rc == CW_OK) {
            fprintf(stderr,
                    "embed finetune: %llu steps, loss %.4f -> %.4f, %.1f s; wrote %s (run "
                    "'causeway embed build --index %s' next)\n",
                    (unsigned long long)st.steps, st.first_loss, st.last_loss, st.seconds, enc_path,
                    a->dir);
        }
    }
    free_texts(texts, lens, ix ? idx_index_n_docs(ix) : 0);
    free(pairs);
    cw_buf_fini(&qbuf);
    idx_encoder_free(enc);
    idx_index_close(ix);
    return rc;
}

static int do_build(embed_args *a, cw_err *err)
{
    idx_index *ix = NULL;
    idx_encoder *enc = NULL;
    float *vecs = NULL;
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/dense.enc", a->dir);
    int rc = idx_index_open(a->dir, &ix, err);
    if (rc == CW_OK) {
        rc = idx_encoder_load(p, &enc, err);
        if (rc == CW_ENOTFOUND) {
            cw_err_prefix(err, "run 'causeway embed train --index %s' first: ", a->dir);
        }
    }
    uint32_t n = ix ? idx_index_n_docs(ix) : 0, d = enc ? idx_encoder_dim(enc) : 0;
    if (rc == CW_OK && n == 0) {
        rc = cw_err_set(err, CW_EINVAL, "%s: the index has no documents", a->dir);
    }
    if (rc == CW_OK) {
        vecs = malloc((size_t)n * d * sizeof *vecs);
        if (!vecs) {
            rc = cw_err_set(err, CW_ENOMEM, "out of memory for %u vectors", n);
        }
    }
    uint64_t t0 = cw_now_ns();
    for (uint32_t i = 0; rc == CW_OK && i < n; i++) {
        idx_doc doc;
        rc = idx_doc_get(ix, i, &doc, err);
        if (rc != CW_OK) {
            break;
        }
        /* Same text as training: title + " " + text, encoded in pieces would differ, so
         * join them (bigrams across the join are one feature among hundreds). */
        cw_buf b = {0};
        if (cw_buf_append(&b, doc.title, doc.title_len) != CW_OK ||
            cw_buf_append(&b, " ", 1) != CW_OK ||
            cw_buf_append(&b, doc.text, doc.text_len) != CW_OK) {
            cw_buf_fini(&b);
            rc = cw_err_set(err, CW_ENOMEM, "out of memory");
            break;
        }
        rc = idx_encoder_encode(enc, b.data, b.len, vecs + (size_t)i * d, err);
        cw_buf_fini(&b);
        if (i % 4096 == 0) {
            cw_progress_report(&cli_progress, "embed-encode", i, n);
        }
    }
    double enc_s = (cw_now_ns() - t0) * 1e-9;
    if (rc == CW_OK) {
        snprintf(p, sizeof p, "%s/dense.hnsw", a->dir);
        a->hnsw.progress = cli_progress;
        t0 = cw_now_ns();
        rc = idx_hnsw_build(vecs, n, d, &a->hnsw, p, err);
        if (rc == CW_OK) {
            fprintf(stderr,
                    "embed build: encoded %u docs in %.2f s, HNSW (M %u, "
                    "efConstruction %u) in %.2f s; wrote %s\n",
                    n, enc_s, a->hnsw.m, a->hnsw.ef_construction, (cw_now_ns() - t0) * 1e-9, p);
        }
    }
    free(vecs);
    idx_encoder_free(enc);
    idx_index_close(ix);
    return rc;
}

#define ENCODE_REPEATS 20

/* Retrieval for one query text; hits holds k entries. encode_ms[0] gets the wall time of
 * encoding the query once, encode_ms[1] the minimum over ENCODE_REPEATS encodings: on a
 * shared machine the minimum is the encoder's own cost, free of preemption. */
static int retrieve(const embed_args *a, const idx_index *ix, idx_analyzer *an, const idx_dense *dn,
                    const idx_encoder *enc, idx_hnsw_searcher *s, const char *text, size_t len,
                    idx_hit *hits, size_t *n, double encode_ms[2], cw_err *err)
{
    if (len > IDX_MAX_QUERY_BYTES) {
        return cw_err_set(err, CW_ELIMIT, "query of %zu bytes over the limit of %u", len,
                          IDX_MAX_QUERY_BYTES);
    }
    size_t bad = 0;
    if (!cw_utf8_valid(text, len, &bad)) { /* the hybrid path's query parser says so too */
        return cw_err_set(err, CW_EINVAL, "query is not valid UTF-8 (byte %zu)", bad);
    }
    if (!a->hybrid) {
        float q[IDX_DENSE_MAX_DIM];
        int rc = CW_OK;
        encode_ms[1] = INFINITY;
        for (int r = 0; r < ENCODE_REPEATS && rc == CW_OK; r++) {
            uint64_t t0 = cw_now_ns();
            rc = idx_encoder_encode(enc, text, len, q, err);
            double ms = (double)(cw_now_ns() - t0) * 1e-6;
            encode_ms[0] = r == 0 ? ms : encode_ms[0];
            encode_ms[1] = CW_MIN(encode_ms[1], ms);
        }
        if (rc != CW_OK) {
            return rc;
        }
        return idx_hnsw_search(idx_dense_hnsw(dn), s, q, a->k, CW_MAX(a->hy.ef, a->k), a->hy.exact,
                               hits, n, err);
    }
    idx_query *q = NULL;
    int rc = idx_query_parse(ix, an, text, len, &q, err);
    if (rc != CW_OK) {
        return rc;
    }
    idx_search_opts so = idx_search_opts_default();
    so.k = a->k;
    encode_ms[0] = encode_ms[1] = 0;
    rc = idx_hybrid_search(ix, dn, s, q, text, len, &so, &a->hy, hits, n, err);
    idx_query_free(q);
    return rc;
}

static int do_query(embed_args *a, bool run, cw_err *err)
{
    idx_index *ix = NULL;
    idx_analyzer *an = NULL;
    idx_dense *dn = NULL;
    idx_encoder *uncached = NULL;
    idx_hnsw_searcher *s = NULL;
    cw_lines *lr = NULL;
    double *lat = NULL, *lat_cpu = NULL;
    size_t n_lat = 0, cap_lat = 0;
    idx_hit *hits = calloc(a->k, sizeof *hits);
    int rc = hits ? CW_OK : cw_err_set(err, CW_ENOMEM, "out of memory");
    if (rc == CW_OK) {
        rc = idx_index_open(a->dir, &ix, err);
    }
    if (rc == CW_OK) {
        rc = idx_index_analyzer(ix, &an, err);
    }
    if (rc == CW_OK) {
        rc = idx_dense_open(a->dir, &dn, err);
    }
    if (rc == CW_OK && idx_hnsw_n(idx_dense_hnsw(dn)) != idx_index_n_docs(ix)) {
        rc = cw_err_set(err, CW_ECORRUPT,
                        "%s: dense.hnsw has %u vectors for %u documents: rerun embed build", a->dir,
                        idx_hnsw_n(idx_dense_hnsw(dn)), idx_index_n_docs(ix));
    }
    if (rc == CW_OK && a->no_word_cache) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/dense.enc", a->dir);
        rc = idx_encoder_load_uncached(p, &uncached, err);
    }
    const idx_encoder *enc = uncached ? uncached : (dn ? idx_dense_encoder(dn) : NULL);
    if (rc == CW_OK && !(s = idx_hnsw_searcher_new(idx_dense_hnsw(dn)))) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    if (rc != CW_OK) {
        goto done;
    }
    if (!run) {
        if (a->qtext.len == 0) {
            rc = cw_err_set(err, CW_EINVAL, "embed search: no QUERY given");
            goto done;
        }
        size_t n = 0;
        double ms[2];
        rc = retrieve(a, ix, an, dn, enc, s, a->qtext.data, a->qtext.len, hits, &n, ms, err);
        for (size_t i = 0; rc == CW_OK && i < n; i++) {
            idx_doc d;
            rc = idx_doc_get(ix, hits[i].doc, &d, err);
            if (rc == CW_OK) {
                printf("%zu\t%.*s\t%.6f\t%.*s\n", i + 1, (int)d.id_len, d.id, hits[i].score,
                       (int)CW_MIN(d.title_len, (size_t)100), d.title);
            }
        }
        goto done;
    }
    rc = cw_lines_open(a->queries, &lr, err);
    const char *line;
    size_t len;
    long no;
    int r = 0;
    while (rc == CW_OK && (r = cw_lines_next(lr, &line, &len, &no, err)) == 1) {
        if (len == 0) {
            continue;
        }
        const char *tab = memchr(line, '\t', len);
        if (!tab || tab == line) {
            rc = cw_err_set(err, CW_EPARSE, "%s:%ld: expected qid<TAB>query text", a->queries, no);
            break;
        }
        size_t qid_len = (size_t)(tab - line);
        size_t n = 0;
        double ms[2] = {0, 0};
        rc = retrieve(a, ix, an, dn, enc, s, tab + 1, len - qid_len - 1, hits, &n, ms, err);
        if (rc != CW_OK) {
            cw_err_prefix(err, "%s:%ld: ", a->queries, no);
            break;
        }
        if (n_lat == cap_lat) {
            cap_lat = cap_lat ? 2 * cap_lat : 256;
            double *nl = realloc(lat, cap_lat * sizeof *nl);
            if (nl) {
                lat = nl;
            }
            double *nc = nl ? realloc(lat_cpu, cap_lat * sizeof *nc) : NULL;
            if (!nc) {
                rc = cw_err_set(err, CW_ENOMEM, "out of memory");
                break;
            }
            lat_cpu = nc;
        }
        lat[n_lat] = ms[0];
        lat_cpu[n_lat] = ms[1];
        n_lat++;
        for (size_t i = 0; rc == CW_OK && i < n; i++) {
            idx_doc d;
            rc = idx_doc_get(ix, hits[i].doc, &d, err);
            if (rc == CW_OK) {
                printf("%.*s Q0 %.*s %zu %.6f %s\n", (int)qid_len, line, (int)d.id_len, d.id, i + 1,
                       hits[i].score, a->tag);
            }
        }
    }
    if (rc == CW_OK && r < 0) {
        rc = r;
    }
    if (rc == CW_OK && fflush(stdout) != 0) {
        rc = cw_err_set(err, CW_EIO, "writing the run: stdout");
    }
    if (rc == CW_OK && !a->hybrid && n_lat > 0) {
        fprintf(stderr,
                "embed run: %zu queries, query encoding median %.4f ms (p90 %.4f) first call, "
                "%.4f ms (p90 %.4f) best of %d calls; word cache %u words\n",
                n_lat, cw_median(lat, n_lat), cw_quantile(lat, n_lat, 0.9),
                cw_median(lat_cpu, n_lat), cw_quantile(lat_cpu, n_lat, 0.9), ENCODE_REPEATS,
                idx_encoder_cached_words(enc));
    }
done:
    free(lat);
    free(lat_cpu);
    cw_lines_close(lr);
    idx_hnsw_searcher_free(s);
    idx_encoder_free(uncached);
    idx_dense_close(dn);
    idx_analyzer_free(an);
    idx_index_close(ix);
    free(hits);
    return rc;
}

int cli_cmd_embed(int argc, char **argv)
{
    if (cli_wants_help(argc, argv) || argc < 2) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    const char *action = argv[1];
    embed_args a = {.tag = "dense", .k = 10, .clip = 10};
    a.enc = idx_encoder_opts_default();
    a.train = idx_train_opts_default();
    a.hnsw = idx_hnsw_opts_default();
    a.hy = idx_hybrid_opts_default();
    bool is_run = strcmp(action, "run") == 0;
    if (is_run) {
        a.k = 1000;
        a.hy.depth = 1000;
    }
    int code = parse(argc, argv, &a);
    if (code != CLI_EXIT_OK) {
        cw_buf_fini(&a.qtext);
        return code;
    }
    /* Only search takes words; elsewhere a stray word is a mistyped option, not a query. */
    if (a.qtext.len > 0 && strcmp(action, "search") != 0) {
        code = cli_usage_error("embed", "%s takes no query words (got '%.*s')", action,
                               (int)CW_MIN(a.qtext.len, (size_t)60), a.qtext.data);
        cw_buf_fini(&a.qtext);
        return code;
    }
    cw_err err;
    cw_err_clear(&err);
    int rc;
    if (strcmp(action, "train") == 0) {
        rc = do_train(&a, &err);
    } else if (strcmp(action, "build") == 0) {
        rc = do_build(&a, &err);
    } else if (strcmp(action, "finetune") == 0) {
        if (!a.db || !a.propensity) {
            cw_buf_fini(&a.qtext);
            return cli_usage_error("embed", "finetune needs --db LOG and --propensity FIT.json");
        }
        rc = do_finetune(&a, &err);
    } else if (strcmp(action, "search") == 0) {
        rc = do_query(&a, false, &err);
    } else if (is_run) {
        if (!a.queries) {
            cw_buf_fini(&a.qtext);
            return cli_usage_error("embed", "run needs --queries FILE.tsv");
        }
        rc = do_query(&a, true, &err);
    } else {
        cw_buf_fini(&a.qtext);
        return cli_usage_error("embed", "unknown action '%s' (train, finetune, build, search, run)",
                               action);
    }
    cw_buf_fini(&a.qtext);
    return rc == CW_OK ? CLI_EXIT_OK : cli_fail("embed", &err);
}
