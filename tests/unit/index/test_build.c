/* Tests of index/build.c: malformed JSONL with file:line errors, --skip-bad,
 * spilled runs, interruption and replacement of an existing index. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "index/index.h"
#include "tests/unit/index/helpers.h"

typedef struct bad_case {
    char line[96];
    int code;
    char msg[64]; /* expected substring after "corpus.jsonl:" */
} bad_case;

ParameterizedTestParameters(idx_build, malformed_lines)
{
    static bad_case cases[] = {
        {"{\"id\":\"a\",\"text\":\"x\"", CW_EPARSE, ":2:20: bad JSON"},
        {"{\"title\":\"no id\"}", CW_EPARSE, ":2: missing \"id\""},
        {"{\"id\":7}", CW_EPARSE, ":2: \"id\" must be a string, got a number"},
        {"{\"id\":\"\"}", CW_EPARSE, ":2: empty \"id\""},
        {"{\"id\":\"ok\",\"text\":\"dup\"}", CW_EPARSE, ":2: duplicate id \"ok\""},
        {"{\"id\":\"b\",\"text\":[1]}", CW_EPARSE, ":2: field \"text\" must be a string"},
        {"{\"id\":\"b\",\"lang\":null}", CW_EPARSE,
         ":2: field \"lang\" must be a string, got null"},
        {"[1,2]", CW_EPARSE, ":2: expected a JSON object, got an array"},
        {"{\"id\":\"b\",\"text\":\"\xff\"}", CW_EPARSE, ":2: invalid UTF-8 at byte 18"},
        {"{\"id\":\"b\",\"id\":\"c\"}", CW_EPARSE, ":2:"},
    };
    return cr_make_param_array(bad_case, cases, CW_ARRAY_LEN(cases));
}

ParameterizedTest(bad_case *c, idx_build, malformed_lines)
{
    char *dir = th_tmpdir();
    char corpus[256];
    snprintf(corpus, sizeof corpus, "{\"id\":\"ok\",\"text\":\"fine\"}\n%s\n{\"id\":\"z\"}\n",
             c->line);
    char *path = th_write(dir, "corpus.jsonl", corpus, strlen(corpus));
    char out[512];
    snprintf(out, sizeof out, "%s/ix", dir);
    idx_build_opts o = idx_build_opts_default();
    cw_err err;
    cr_expect(eq(int, idx_build(path, out, &o, NULL, &err), c->code));
    cr_expect(strstr(err.msg, "corpus.jsonl") != NULL, "%s", err.msg);
    cr_expect(strstr(err.msg, c->msg) != NULL, "message \"%s\" lacks \"%s\"", err.msg, c->msg);
    struct stat st;
    cr_expect(stat(out, &st) != 0, "a failed build left %s", out);
    /* --skip-bad: the other two documents are indexed and the line counted. */
    o.skip_bad = true;
    idx_build_stats bs;
    cr_assert(eq(int, idx_build(path, out, &o, &bs, &err), CW_OK), "%s", err.msg);
    cr_expect(eq(u64, bs.n_docs, 2));
    cr_expect(eq(u64, bs.n_skipped, 1));
    free(path);
    th_cleanup(dir);
}

Test(idx_build, fixture_with_every_kind_of_bad_line_fails_at_line_2)
{
    char *src = th_fixture("index/bad.jsonl");
    char *dir = th_tmpdir();
    char out[512];
    snprintf(out, sizeof out, "%s/ix", dir);
    idx_build_opts o = idx_build_opts_default();
    cw_err err;
    cr_expect(eq(int, idx_build(src, out, &o, NULL, &err), CW_EPARSE));
    cr_expect(strstr(err.msg, "bad.jsonl:2:") != NULL, "%s", err.msg);
    o.skip_bad = true;
    idx_build_stats bs;
    cr_assert(eq(int, idx_build(src, out, &o, &bs, &err), CW_OK), "%s", err.msg);
    cr_expect(eq(u64, bs.n_docs, 1));
    cr_expect(eq(u64, bs.n_skipped, 7));
    free(src);
    th_cleanup(dir);
}

Test(idx_build, missing_corpus_is_enotfound)
{
    char *dir = th_tmpdir();
    char out[512];
    snprintf(out, sizeof out, "%s/ix", dir);
    cw_err err;
    cr_expect(eq(int, idx_build("/nonexistent/c.jsonl", out, NULL, NULL, &err), CW_ENOTFOUND));
    cr_expect(strstr(err.msg, "/nonexistent/c.jsonl") != NULL);
    th_cleanup(dir);
}

static char *synth_corpus(size_t n_docs, uint64_t seed)
{
    cw_rng rng;
    cw_rng_seed(&rng, seed);
    cw_buf b = {0};
    for (size_t d = 0; d < n_docs; d++) {
        cr_assert(cw_buf_printf(&b, "{\"id\":\"doc%zu\",\"title\":\"w%llu\",\"text\":\"", d,
                                (unsigned long long)cw_rng_below(&rng, 50)) == CW_OK);
        size_t len = 1 + cw_rng_below(&rng, 60);
        for (size_t i = 0; i < len; i++) {
            /* Roughly Zipfian: small ids far more often. */
            uint64_t w = (uint64_t)(1.0 / cw_rng_uniform(&rng)) % 400;
            cr_assert(cw_buf_printf(&b, "%sw%llu", i ? " " : "", (unsigned long long)w) == CW_OK);
        }
        cr_assert(cw_buf_printf(&b, "\"}\n") == CW_OK);
    }
    return b.data;
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert(d != NULL);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

Test(idx_build, spilled_runs_give_the_same_results_as_one_buffer)
{
    char *dir = th_tmpdir();
    char *corpus = synth_corpus(6000, 11);
    char *path = th_write(dir, "c.jsonl", corpus, strlen(corpus));
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/one", dir);
    snprintf(b, sizeof b, "%s/many", dir);
    idx_build_opts o = idx_build_opts_default();
    cw_err err;
    cr_assert(eq(int, idx_build(path, a, &o, NULL, &err), CW_OK), "%s", err.msg);
    o.mem_budget_bytes = 1; /* clamped to the 1 MiB minimum: several runs */
    idx_build_stats st;
    cr_assert(eq(int, idx_build(path, b, &o, &st, &err), CW_OK), "%s", err.msg);
    idx_index *x = NULL, *y = NULL;
    cr_assert(eq(int, idx_index_open(a, &x, NULL), CW_OK));
    cr_assert(eq(int, idx_index_open(b, &y, NULL), CW_OK));
    idx_analyzer *an = NULL;
    cr_assert(eq(int, idx_index_analyzer(x, &an, NULL), CW_OK));
    const char *queries[] = {"w1 w2", "w3", "w0 w7 w99", "w150 w1"};
    for (size_t i = 0; i < CW_ARRAY_LEN(queries); i++) {
        idx_query *qx = NULL, *qy = NULL;
        cr_assert(
            eq(int, idx_query_parse(x, an, queries[i], strlen(queries[i]), &qx, NULL), CW_OK));
        cr_assert(
            eq(int, idx_query_parse(y, an, queries[i], strlen(queries[i]), &qy, NULL), CW_OK));
        idx_hit hx[100], hy[100];
        size_t nx, ny;
        idx_search_opts so = idx_search_opts_default();
        so.k = 100;
        cr_assert(eq(int, idx_search(x, qx, &so, hx, &nx, NULL, NULL), CW_OK));
        cr_assert(eq(int, idx_search(y, qy, &so, hy, &ny, NULL, NULL), CW_OK));
        cr_assert(eq(sz, nx, ny));
        for (size_t j = 0; j < nx; j++) {
            cr_expect(eq(u32, hx[j].doc, hy[j].doc));
            cr_expect(eq(dbl, hx[j].score, hy[j].score));
        }
        idx_query_free(qx);
        idx_query_free(qy);
    }
    cw_err verr;
    cr_expect(eq(int, idx_index_verify(y, &verr), CW_OK), "%s", verr.msg);
    idx_analyzer_free(an);
    idx_index_close(x);
    idx_index_close(y);
    /* Rebuilding over an existing index replaces it; nothing else is left behind. */
    cr_assert(eq(int, idx_build(path, b, NULL, NULL, &err), CW_OK), "%s", err.msg);
    cr_expect(eq(sz, count_entries(dir), 3));
    free(corpus);
    free(path);
    th_cleanup(dir);
}

static void interrupt_midway(void *ctx, const char *stage, uint64_t done, uint64_t total)
{
    (void)ctx;
    (void)stage;
    (void)total;
    if (done > 0) {
        cw_interrupt_set(true);
    }
}

Test(idx_build, interrupted_build_leaves_nothing)
{
    char *dir = th_tmpdir();
    char *corpus = synth_corpus(9000, 5);
    char *path = th_write(dir, "c.jsonl", corpus, strlen(corpus));
    char out[512];
    snprintf(out, sizeof out, "%s/ix", dir);
    idx_build_opts o = idx_build_opts_default();
    o.progress.fn = interrupt_midway;
    cw_err err;
    cr_expect(eq(int, idx_build(path, out, &o, NULL, &err), CW_EINTR));
    cr_expect(strstr(err.msg, "interrupted") != NULL, "%s", err.msg);
    cr_expect(eq(sz, count_entries(dir), 1), "only the corpus may remain");
    cw_interrupt_set(false);
    free(corpus);
    free(path);
    th_cleanup(dir);
}

Test(idx_build, refuses_to_replace_a_directory_that_is_not_an_index)
{
    char *dir = th_tmpdir();
    char *path = th_write(dir, "c.jsonl", "{\"id\":\"a\"}\n", 11);
    char *keep = th_write(dir, "precious.txt", "x", 1);
    cw_err err;
    cr_expect(eq(int, idx_build(path, dir, NULL, NULL, &err), CW_EIO));
    cr_expect(strstr(err.msg, "not a causeway index") != NULL, "%s", err.msg);
    struct stat st;
    cr_expect(stat(keep, &st) == 0);
    free(path);
    free(keep);
    th_cleanup(dir);
}

Test(idx_build, empty_corpus_gives_an_empty_searchable_index)
{
    char *dir = th_tmpdir();
    idx_index *ix = th_build_open(dir, "\n\n", "ix");
    cr_expect(eq(u32, idx_index_n_docs(ix), 0));
    idx_analyzer *a = NULL;
    cr_assert(eq(int, idx_index_analyzer(ix, &a, NULL), CW_OK));
    idx_query *q = NULL;
    cr_assert(eq(int, idx_query_parse(ix, a, "hello", 5, &q, NULL), CW_OK));
    idx_hit h[10];
    size_t n = 1;
    idx_search_opts so = idx_search_opts_default();
    cr_expect(eq(int, idx_search(ix, q, &so, h, &n, NULL, NULL), CW_OK));
    cr_expect(eq(sz, n, 0));
    cw_err err;
    cr_expect(eq(int, idx_index_verify(ix, &err), CW_OK), "%s", err.msg);
    idx_query_free(q);
    idx_analyzer_free(a);
    idx_index_close(ix);
    th_cleanup(dir);
}
