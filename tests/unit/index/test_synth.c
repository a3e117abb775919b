/* Tests of index/synth.c: determinism, per-document RNG streams, file formats, qrels that
 * agree with the generative model (relevant documents use the query's words far more
 * often), and the documented errors. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/index.h"

static char *temp_dir(void)
{
    char *dir = strdup("/tmp/cw_synth_XXXXXX");
    cr_assert(mkdtemp(dir) != NULL);
    return dir;
}

static char *read_file(const char *dir, const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *s = NULL;
    size_t n = 0;
    cw_err err;
    cr_assert(eq(int, cw_file_read(path, 1 << 28, &s, &n, &err), CW_OK), "%s", err.msg);
    if (len) {
        *len = n;
    }
    return s;
}

static idx_synth_opts small_opts(uint64_t seed, uint64_t n_docs)
{
    idx_synth_opts o = idx_synth_opts_default();
    o.seed = seed;
    o.n_docs = n_docs;
    o.n_queries = 20;
    o.n_topics = 10;
    o.vocab_size = 3000;
    o.doc_len_mean = 40;
    return o;
}

static void cleanup(char *dir)
{
    cw_err err;
    cr_expect(eq(int, cw_rmtree(dir, &err), CW_OK));
    free(dir);
}

Test(idx_synth, same_seed_same_bytes_other_seed_other_bytes)
{
    char *a = temp_dir(), *b = temp_dir(), *c = temp_dir();
    idx_synth_opts o = small_opts(5, 300);
    idx_synth_stats st;
    cr_assert(eq(int, idx_synth_write(&o, a, &st, NULL), CW_OK));
    cr_assert(eq(int, idx_synth_write(&o, b, NULL, NULL), CW_OK));
    o.seed = 6;
    cr_assert(eq(int, idx_synth_write(&o, c, NULL, NULL), CW_OK));
    const char *files[] = {"corpus.jsonl", "queries.tsv", "qrels.txt"};
    for (size_t i = 0; i < 3; i++) {
        size_t na, nb, nc;
        char *x = read_file(a, files[i], &na), *y = read_file(b, files[i], &nb);
        char *z = read_file(c, files[i], &nc);
        cr_expect(eq(sz, na, nb), "%s", files[i]);
        cr_expect(memcmp(x, y, na < nb ? na : nb) == 0, "%s differs for one seed", files[i]);
        cr_expect(na != nc || memcmp(x, z, na) != 0, "%s equal for two seeds", files[i]);
        free(x);
        free(y);
        free(z);
    }
    cr_expect(eq(u64, st.n_docs, 300));
    cr_expect(eq(u32, st.n_topics, 10));
    cr_expect(eq(u32, st.vocab_size, 3000));
    cleanup(a);
    cleanup(b);
    cleanup(c);
}

Test(idx_synth, document_i_does_not_depend_on_the_corpus_size)
{
    char *a = temp_dir(), *b = temp_dir();
    idx_synth_opts o = small_opts(9, 50);
    cr_assert(eq(int, idx_synth_write(&o, a, NULL, NULL), CW_OK));
    o.n_docs = 120;
    cr_assert(eq(int, idx_synth_write(&o, b, NULL, NULL), CW_OK));
    size_t na, nb;
    char *x = read_file(a, "corpus.jsonl", &na), *y = read_file(b, "corpus.jsonl", &nb);
    cr_assert(lt(sz, na, nb));
    cr_expect(memcmp(x, y, na) == 0, "the first 50 documents must be identical");
    free(x);
    free(y);
    x = read_file(a, "queries.tsv", &na);
    y = read_file(b, "queries.tsv", &nb);
    cr_expect(eq(sz, na, nb));
    cr_expect(memcmp(x, y, na) == 0, "queries must not depend on the corpus size");
    free(x);
    free(y);
    cleanup(a);
    cleanup(b);
}

/* Word set of a document (title + text), lower-cased, as a newline-joined string. */
static bool doc_has_word(const char *title, const char *text, const char *word)
{
    size_t n = strlen(word);
    const char *srcs[2] = {title, text};
    for (int s = 0; s < 2; s++) {
        for (const char *p = srcs[s]; (p = strcasestr(p, word)) != NULL; p += n) {
            bool start = p == srcs[s] || p[-1] == ' ';
            bool end = p[n] == '\0' || p[n] == ' ' || p[n] == '.';
            if (start && end) {
                return true;
            }
        }
    }
    return false;
}

Test(idx_synth, formats_are_valid_and_qrels_follow_the_topics)
{
    char *dir = temp_dir();
    idx_synth_opts o = small_opts(11, 400);
    o.doc_len_mean = 80;
    idx_synth_stats st;
    cr_assert(eq(int, idx_synth_write(&o, dir, &st, NULL), CW_OK));
    /* corpus: ids d1..dN in order, non-empty title and text, JSON per line */
    char *corpus = read_file(dir, "corpus.jsonl", NULL);
    char **titles = calloc(401, sizeof(char *)), **texts = calloc(401, sizeof(char *));
    size_t n = 0;
    for (char *line = strtok(corpus, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t jerr;
        json_t *obj = json_loads(line, 0, &jerr);
        cr_assert(obj != NULL, "line %zu: %s", n + 1, jerr.text);
        char want[32];
        snprintf(want, sizeof want, "d%zu", n + 1);
        cr_expect(eq(str, (char *)json_string_value(json_object_get(obj, "id")), want));
        const char *t = json_string_value(json_object_get(obj, "title"));
        const char *x = json_string_value(json_object_get(obj, "text"));
        cr_assert(t && x && *t && *x);
        n++;
        titles[n] = strdup(t);
        texts[n] = strdup(x);
        json_decref(obj);
    }
    cr_assert(eq(sz, n, 400));
    /* queries: "qid<TAB>2-4 words" */
    char *qtext = read_file(dir, "queries.tsv", NULL);
    char *queries[21] = {0};
    size_t nq = 0;
    for (char *line = strtok(qtext, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned qid = 0;
        int off = 0;
        cr_assert(eq(int, sscanf(line, "%u\t%n", &qid, &off), 1));
        cr_expect(eq(u32, qid, (uint32_t)(nq + 1)));
        queries[++nq] = line + off;
        size_t words = 1;
        for (const char *p = line + off; *p; p++) {
            words += *p == ' ';
        }
        cr_expect(words >= 2 && words <= 4, "query %u has %zu words", qid, words);
    }
    cr_assert(eq(sz, nq, 20));
    /* qrels: sorted, grades 1..3, existing documents; relevant documents contain the
     * query's first (always on-topic) word far more often than non-relevant ones. */
    char *qrels = read_file(dir, "qrels.txt", NULL);
    uint8_t grade[21][401];
    memset(grade, 0, sizeof grade);
    size_t n_lines = 0;
    unsigned prev_q = 0, prev_d = 0;
    for (char *line = strtok(qrels, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned q, d, g;
        cr_assert(eq(int, sscanf(line, "%u 0 d%u %u", &q, &d, &g), 3), "%s", line);
        cr_assert(q >= 1 && q <= 20 && d >= 1 && d <= 400 && g >= 1 && g <= 3, "%s", line);
        cr_expect(q > prev_q || (q == prev_q && d > prev_d), "qrels not sorted at %s", line);
        prev_q = q;
        prev_d = d;
        grade[q][d] = (uint8_t)g;
        n_lines++;
    }
    cr_expect(eq(u64, st.n_qrels, n_lines));
    double hit_rel = 0, n_rel = 0, hit_non = 0, n_non = 0;
    for (size_t q = 1; q <= nq; q++) {
        char first[64];
        cr_assert(eq(int, sscanf(queries[q], "%63s", first), 1));
        for (size_t d = 1; d <= 400; d++) {
            bool has = doc_has_word(titles[d], texts[d], first);
            if (grade[q][d]) {
                hit_rel += has;
                n_rel++;
            } else {
                hit_non += has;
                n_non++;
            }
        }
    }
    cr_assert(gt(dbl, n_rel, 0.0));
    double p_rel = hit_rel / n_rel, p_non = hit_non / n_non;
    cr_expect(gt(dbl, p_rel, 0.3),
              "relevant documents with the query word: %.3f (non-relevant %.3f)", p_rel, p_non);
    cr_expect(gt(dbl, p_rel, 4 * p_non), "relevant %.3f vs non-relevant %.3f", p_rel, p_non);
    cr_expect(gt(dbl, p_non, 0.0), "query words must also occur off topic");
    for (size_t d = 1; d <= 400; d++) {
        free(titles[d]);
        free(texts[d]);
    }
    free(titles);
    free(texts);
    free(corpus);
    free(qtext);
    free(qrels);
    cleanup(dir);
}

typedef struct bad_opts_case {
    int field; /* 0 docs, 1 queries, 2 doc_len, 3 topics, 4 words/topic, 5 zipf, 6 vocab */
    double value;
    char msg[64];
} bad_opts_case;

ParameterizedTestParameters(idx_synth, bad_options_are_einval)
{
    static bad_opts_case cases[] = {
        {0, 0, "synth: documents must be in [1, 1000000000]"},
        {1, 0, "synth: queries must be in [1, 1000000]"},
        {2, 0, "synth: mean document length must be in [1, 100000]"},
        {3, 1, "synth: at least 2 topics (one relevant, one distractor)"},
        {4, 3, "synth: words per topic must be in [4, 100000]"},
        {5, 0, "synth: Zipf exponent must be in (0, 4]"},
        {6, 100, "synth: vocabulary 100 too small for 100 words per topic"},
    };
    return cr_make_param_array(bad_opts_case, cases, CW_ARRAY_LEN(cases));
}

ParameterizedTest(bad_opts_case *c, idx_synth, bad_options_are_einval)
{
    idx_synth_opts o = small_opts(1, 10);
    o.words_per_topic = 100;
    switch (c->field) {
    case 0: o.n_docs = (uint64_t)c->value; break;
    case 1: o.n_queries = (uint32_t)c->value; break;
    case 2: o.doc_len_mean = (uint32_t)c->value; break;
    case 3: o.n_topics = (uint32_t)c->value; break;
    case 4: o.words_per_topic = (uint32_t)c->value; break;
    case 5: o.zipf_s = c->value; break;
    case 6: o.vocab_size = (uint32_t)c->value; break;
    }
    char *dir = temp_dir();
    cw_err err = {0};
    cr_expect(eq(int, idx_synth_write(&o, dir, NULL, &err), CW_EINVAL));
    cr_expect(eq(str, err.msg, c->msg));
    cleanup(dir);
}

Test(idx_synth, unwritable_directory_is_eio)
{
    idx_synth_opts o = small_opts(1, 10);
    cw_err err = {0};
    cr_expect(eq(int, idx_synth_write(&o, "/proc/cw_synth_no", NULL, &err), CW_EIO));
    cr_expect(ne(sz, strlen(err.msg), 0));
}
