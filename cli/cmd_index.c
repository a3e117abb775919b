/* cli/cmd_index.c: `causeway index build|info|verify`: corpus.jsonl -> index
 * directory, and inspection / full checksum verification of a built index. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "index/index.h"

static void usage(FILE *f)
{
    fprintf(
        f, "usage: causeway index build --corpus FILE.jsonl --out DIR [options]\n"
           "       causeway index info --index DIR\n"
           "       causeway index verify --index DIR\n\n"
           "build   index a JSONL corpus ({\"id\",\"title\",\"text\", other string fields\n"
           "        kept as stored fields}); '-' reads stdin. The index is written to\n"
           "        DIR.tmp.PID and renamed to DIR when complete.\n"
           "  --mem-mb N         postings buffered before spilling a sorted run (default 256)\n"
           "  --skip-bad         skip malformed lines (counted) instead of failing\n"
           "  --no-fsync         do not fsync the files before the final rename (faster;\n"
           "                     still all-or-nothing, but not durable across power loss)\n"
           "  --stemmer NAME     porter (default), english, or none\n"
           "  --no-stopwords     keep the 33 English stopwords\n"
           "  --quiet            no progress on stderr\n"
           "info    print document, term and field statistics and the analyzer settings\n"
           "verify  check every checksum and decode every posting list\n\n"
           "Exit codes: 0 success, 1 failure (message names file:line or byte offset), 2 usage.\n");
}

static int cmd_build(int argc, char **argv)
{
    const char *corpus = NULL, *out = NULL;
    idx_build_opts o = idx_build_opts_default();
    o.progress = cli_progress;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--corpus") == 0 && i + 1 < argc) {
            corpus = argv[++i];
        } else if (strcmp(a, "--out") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(a, "--mem-mb") == 0 && i + 1 < argc) {
            uint64_t mb;
            if (!cli_parse_u64("index build", a, argv[++i], 1, 1u << 20, &mb)) {
                return CLI_EXIT_USAGE;
            }
            o.mem_budget_bytes = (size_t)mb << 20;
        } else if (strcmp(a, "--no-fsync") == 0) {
            o.no_fsync = true;
        } else if (strcmp(a, "--skip-bad") == 0) {
            o.skip_bad = true;
        } else if (strcmp(a, "--no-stopwords") == 0) {
            o.analyzer.stopwords = false;
        } else if (strcmp(a, "--quiet") == 0) {
            o.progress.fn = NULL;
        } else if (strcmp(a, "--stemmer") == 0 && i + 1 < argc) {
            const char *s = argv[++i];
            if (strcmp(s, "none") == 0) {
                o.analyzer.stem = false;
            } else if (strcmp(s, "porter") == 0 || strcmp(s, "english") == 0) {
                o.analyzer.stem = true;
                snprintf(o.analyzer.stemmer, sizeof o.analyzer.stemmer, "%s", s);
            } else {
                return cli_usage_error("index build",
                                       "--stemmer: porter, english or none, not '%s'", s);
            }
        } else {
            return cli_usage_error("index build", "unexpected argument '%s'", a);
        }
    }
    if (!corpus || !out) {
        return cli_usage_error("index build", "--corpus and --out are required");
    }
    idx_build_stats st;
    cw_err err;
    cw_err_clear(&err);
    if (idx_build(corpus, out, &o, &st, &err) != CW_OK) {
        return cli_fail("index build", &err);
    }
    fprintf(stderr,
            "indexed %llu documents (%llu skipped), %llu terms, %llu postings, %llu tokens in "
            "%.2f s (%.0f docs/s, %.1f MB/s); index %.1f MB\n",
            (unsigned long long)st.n_docs, (unsigned long long)st.n_skipped,
            (unsigned long long)st.n_terms, (unsigned long long)st.n_postings,
            (unsigned long long)st.n_tokens, st.seconds,
            st.seconds > 0 ? (double)st.n_docs / st.seconds : 0.0,
            st.seconds > 0 ? (double)st.input_bytes / 1e6 / st.seconds : 0.0,
            (double)st.index_bytes / 1e6);
    return CLI_EXIT_OK;
}

static int open_index(const char *sub, int argc, char **argv, idx_index **ix)
{
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--index") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else {
            return cli_usage_error(sub, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!dir) {
        return cli_usage_error(sub, "--index DIR is required");
    }
    cw_err err;
    cw_err_clear(&err);
    if (idx_index_open(dir, ix, &err) != CW_OK) {
        return cli_fail(sub, &err);
    }
    return CLI_EXIT_OK;
}

static int cmd_info(int argc, char **argv)
{
    idx_index *ix = NULL;
    int rc = open_index("index info", argc, argv, &ix);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    const char *names[IDX_N_FIELDS] = {"title", "text", "flat"};
    idx_index_info in;
    idx_index_info_get(ix, &in);
    printf("version    %s\n", idx_index_version(ix));
    printf("documents  %u\n", in.n_docs);
    printf("terms      %u\n", in.n_terms);
    printf("postings   %llu\n", (unsigned long long)in.n_postings);
    printf("bytes      %llu\n", (unsigned long long)in.bytes);
    printf("analyzer   stemmer=%s stopwords=%s\n", in.analyzer.stem ? in.analyzer.stemmer : "none",
           in.analyzer.stopwords ? "english-33" : "none");
    for (int f = 0; f < IDX_N_FIELDS; f++) {
        idx_field_stats fs;
        idx_index_field_stats(ix, (idx_field)f, &fs);
        printf("field %-5s docs=%llu terms=%llu avgdl=%.4f\n", names[f],
               (unsigned long long)fs.doc_count, (unsigned long long)fs.total_terms, fs.avg_len);
    }
    idx_index_close(ix);
    return CLI_EXIT_OK;
}

static int cmd_verify(int argc, char **argv)
{
    idx_index *ix = NULL;
    int rc = open_index("index verify", argc, argv, &ix);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    cw_err err;
    cw_err_clear(&err);
    int st = idx_index_verify(ix, &err);
    idx_index_close(ix);
    if (st != CW_OK) {
        return cli_fail("index verify", &err);
    }
    printf("ok\n");
    return CLI_EXIT_OK;
}

int cli_cmd_index(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "build") == 0) {
        return cmd_build(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "info") == 0) {
        return cmd_info(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "verify") == 0) {
        return cmd_verify(argc - 1, argv + 1);
    }
    return cli_usage_error("index", "unknown subcommand '%s' (build, info, verify)", argv[1]);
}
