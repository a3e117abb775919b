/* cli/cmd_synth.c: `causeway synth`, the seeded synthetic test collection
 * (corpus.jsonl, queries.tsv, qrels.txt) for the demo, benchmarks and simulations. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "index/index.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: causeway synth --out DIR [--seed N] [--docs N] [--queries N]\n"
            "                      [--doc-len N] [--topics K] [--vocab V]\n"
            "                      [--words-per-topic N] [--zipf S] [--quiet]\n\n"
            "Generates a deterministic synthetic test collection in DIR: corpus.jsonl\n"
            "({\"id\",\"title\",\"text\"} per line), queries.tsv (qid<TAB>text) and qrels.txt\n"
            "(TREC \"qid 0 docid grade\", grades 1-3). Made-up pronounceable words with a\n"
            "Zipfian background distribution, K topics with their own words, documents as\n"
            "topic mixtures, relevance from the document's share of the query's topic\n"
            "(the model is documented in index/index.h). Streams with bounded memory.\n\n"
            "  --out DIR              output directory (created)\n"
            "  --seed N               random seed (default 1); same seed, same files\n"
            "  --docs N               documents (default 10000; 1e6 style accepted)\n"
            "  --queries N            queries (default 200)\n"
            "  --doc-len N            mean body length in tokens (default 200)\n"
            "  --topics K             topics (default clamp(docs/50, 8, 20000))\n"
            "  --vocab V              vocabulary size (default clamp(20*sqrt(tokens), 5000, 1e6))\n"
            "  --words-per-topic N    distinct words per topic (default 100)\n"
            "  --zipf S               background Zipf exponent (default 1.0)\n"
            "  --quiet                no progress on stderr\n");
    fprintf(f, "\nExit codes: 0 success, 1 failure (the message names the file and line or\n"
               "byte offset at fault), 2 usage error.\n");
}

int cli_cmd_synth(int argc, char **argv)
{
    const char *cmd = "synth";
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    idx_synth_opts o = idx_synth_opts_default();
    o.progress = cli_progress;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n = 0;
        if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            o.progress.fn = NULL;
            continue;
        }
        if (!v) {
            return cli_usage_error(cmd, "unknown option or missing value: '%s'", a);
        }
        i++;
        if (strcmp(a, "--out") == 0) {
            out = v;
        } else if (strcmp(a, "--seed") == 0) {
            if (!cli_parse_u64(cmd, a, v, 0, UINT64_MAX, &o.seed)) {
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--docs") == 0) {
            if (!cli_parse_u64(cmd, a, v, 1, IDX_SYNTH_MAX_DOCS, &o.n_docs)) {
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--queries") == 0) {
            if (!cli_parse_u64(cmd, a, v, 1, IDX_SYNTH_MAX_QUERIES, &n)) {
                return CLI_EXIT_USAGE;
            }
            o.n_queries = (uint32_t)n;
        } else if (strcmp(a, "--doc-len") == 0) {
            if (!cli_parse_u64(cmd, a, v, 1, IDX_SYNTH_MAX_DOC_LEN, &n)) {
                return CLI_EXIT_USAGE;
            }
            o.doc_len_mean = (uint32_t)n;
        } else if (strcmp(a, "--topics") == 0) {
            if (!cli_parse_u64(cmd, a, v, 2, 1000000, &n)) {
                return CLI_EXIT_USAGE;
            }
            o.n_topics = (uint32_t)n;
        } else if (strcmp(a, "--vocab") == 0) {
            if (!cli_parse_u64(cmd, a, v, 1000, IDX_SYNTH_MAX_VOCAB, &n)) {
                return CLI_EXIT_USAGE;
            }
            o.vocab_size = (uint32_t)n;
        } else if (strcmp(a, "--words-per-topic") == 0) {
            if (!cli_parse_u64(cmd, a, v, 4, 100000, &n)) {
                return CLI_EXIT_USAGE;
            }
            o.words_per_topic = (uint32_t)n;
        } else if (strcmp(a, "--zipf") == 0) {
            if (!cli_parse_double(cmd, a, v, 0.01, 4.0, &o.zipf_s)) {
                return CLI_EXIT_USAGE;
            }
        } else {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        }
    }
    if (!out) {
        return cli_usage_error(cmd, "--out DIR is required");
    }
    cw_err err = {0};
    idx_synth_stats st;
    if (idx_synth_write(&o, out, &st, &err) != CW_OK) {
        return cli_fail(cmd, &err);
    }
    if (o.progress.fn) {
        fprintf(stderr,
                "synth: %llu docs (%llu tokens, %.1f MB), %u queries (%u judged, %llu qrels), "
                "%u topics, vocabulary %u, %.1f s\n",
                (unsigned long long)st.n_docs, (unsigned long long)st.n_tokens,
                st.corpus_bytes / 1e6, st.n_queries, st.n_judged_queries,
                (unsigned long long)st.n_qrels, st.n_topics, st.vocab_size, st.seconds);
    }
    return CLI_EXIT_OK;
}
