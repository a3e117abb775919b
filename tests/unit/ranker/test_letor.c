/* Tests of ranker/letor.c: the tiny fixture parsed value by value, folds concatenated,
 * and every malformed-line error with its path:line. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ranker/ranker.h"

static char *fixture(const char *name)
{
    const char *src = getenv("CW_SRCDIR");
    static char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/ranker/%s", src ? src : ".", name);
    return path;
}

static char *write_temp(const char *content)
{
    char *path = strdup("/tmp/cw_letor_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert(eq(sz, (size_t)write(fd, content, strlen(content)), strlen(content)));
    close(fd);
    return path;
}

Test(rank_letor, reads_labels_features_groups_and_doc_ids)
{
    const char *paths[] = {fixture("tiny.letor")};
    rank_letor *d = NULL;
    cw_err err;
    cr_assert(eq(int, rank_letor_read(paths, 1, &d, &err), CW_OK), "%s", err.msg);
    cr_assert(eq(sz, d->n_rows, 3));
    cr_assert(eq(sz, d->n_features, 3));
    cr_assert(eq(sz, d->n_queries, 2));
    cr_expect(eq(str, d->qid[0], "1"));
    cr_expect(eq(str, d->qid[1], "7"));
    cr_expect(eq(sz, d->q_begin[1], 2));
    cr_expect(eq(sz, d->q_begin[2], 3));
    double want_x[] = {0.5, 1, 0, 0, 0.25, 0, 1, 0, 2};
    for (size_t i = 0; i < 9; i++) {
        cr_expect(eq(dbl, d->x[i], want_x[i]), "x[%zu]", i);
    }
    cr_expect(eq(dbl, d->y[0], 2.0));
    cr_expect(eq(dbl, d->y[2], 1.0));
    cr_expect(eq(str, d->doc_id[0], "d1"));
    cr_expect(eq(str, d->doc_id[1], "d2"));
    cr_expect(eq(ptr, d->doc_id[2], NULL));
    rank_letor_free(d);
}

Test(rank_letor, subset_copies_the_chosen_queries_in_order)
{
    const char *paths[] = {fixture("tiny.letor")};
    rank_letor *d = NULL, *s = NULL;
    cr_assert(eq(int, rank_letor_read(paths, 1, &d, NULL), CW_OK));
    size_t pick[] = {1, 0};
    cr_assert(eq(int, rank_letor_subset(d, pick, 2, &s, NULL), CW_OK));
    cr_expect(eq(str, s->qid[0], "7"));
    cr_expect(eq(sz, s->q_begin[1], 1));
    cr_expect(eq(dbl, s->x[2], 2.0));
    cr_expect(eq(dbl, s->y[1], 2.0));
    size_t bad[] = {2};
    cw_err err;
    rank_letor_free(s);
    s = NULL;
    cr_expect(eq(int, rank_letor_subset(d, bad, 1, &s, &err), CW_EINVAL));
    rank_letor_free(d);
}

Test(rank_letor, a_query_split_across_files_is_rejected)
{
    char *a = write_temp("1 qid:5 1:1\n0 qid:6 1:1\n");
    char *b = write_temp("1 qid:5 1:0\n");
    const char *paths[] = {a, b};
    rank_letor *d = NULL;
    cw_err err;
    cr_assert(eq(int, rank_letor_read(paths, 2, &d, &err), CW_EPARSE));
    char want[256];
    snprintf(want, sizeof want, "%s:1: rows of qid 5 are not contiguous", b);
    cr_expect(eq(str, err.msg, want));
    unlink(a);
    unlink(b);
    free(a);
    free(b);
}

typedef struct bad_case {
    char text[64];
    int code;
    char msg_tail[80];
} bad_case;

ParameterizedTestParameters(rank_letor, malformed_lines)
{
    static bad_case cases[] = {
        {"x qid:1 1:1\n", CW_EPARSE, ":1: expected a numeric label"},
        {"1 1:1\n", CW_EPARSE, ":1: expected \"qid:\" after the label"},
        {"1 qid: 1:1\n", CW_EPARSE, ":1: empty qid"},
        {"1 qid:1 1:1\n0 qid:1 2=3\n", CW_EPARSE, ":2: column 9: expected INDEX:VALUE"},
        {"1 qid:1 2:1 2:3\n", CW_EPARSE, ":1: column 13: feature index 2 not above the previous 2"},
        {"1 qid:1 0:1\n", CW_EPARSE, ":1: column 9: feature index 0 not above the previous 0"},
        {"1 qid:1 1:abc\n", CW_EPARSE, ":1: column 11: bad value of feature 1"},
        {"1 qid:1 1:nan\n", CW_EPARSE, ":1: column 11: bad value of feature 1"},
        {"1 qid:1 5000:1\n", CW_ELIMIT, ":1: feature index 5000 over the limit 1024"},
        {"# only a comment\n", CW_EPARSE, ": no LETOR rows"},
    };
    return cr_make_param_array(bad_case, cases, CW_ARRAY_LEN(cases));
}

ParameterizedTest(bad_case *c, rank_letor, malformed_lines)
{
    char *path = write_temp(c->text);
    const char *paths[] = {path};
    rank_letor *d = NULL;
    cw_err err;
    cr_assert(eq(int, rank_letor_read(paths, 1, &d, &err), c->code), "%s", err.msg);
    char want[512];
    snprintf(want, sizeof want, "%s%s", path, c->msg_tail);
    cr_expect(eq(str, err.msg, want));
    unlink(path);
    free(path);
}

Test(rank_letor, missing_file_is_enotfound)
{
    const char *paths[] = {"/nonexistent/x.letor"};
    rank_letor *d = NULL;
    cw_err err;
    cr_expect(eq(int, rank_letor_read(paths, 1, &d, &err), CW_ENOTFOUND));
}

Test(rank_letor, reads_mq2008_fold1_training_set)
{
    const char *root = getenv("CW_SHARED_DATA");
    char p[3][4096];
    for (int i = 0; i < 3; i++) {
        snprintf(p[i], sizeof p[i], "%s/mq2008/S%d.txt", root ? root : "", i + 1);
    }
    if (!root || access(p[0], R_OK) != 0) {
        cr_skip_test("missing mq2008/S1.txt (CW_SHARED_DATA)");
    }
    const char *paths[] = {p[0], p[1], p[2]};
    rank_letor *d = NULL;
    cw_err err;
    cr_assert(eq(int, rank_letor_read(paths, 3, &d, &err), CW_OK), "%s", err.msg);
    /* Counts from data/README.md: S1 2,933 + S2 3,635 + S3 3,062 rows, 157 queries each. */
    cr_expect(eq(sz, d->n_rows, 2933 + 3635 + 3062));
    cr_expect(eq(sz, d->n_queries, 3 * 157));
    cr_expect(eq(sz, d->n_features, 46));
    cr_expect(eq(str, d->qid[0], "10002"));
    cr_expect(eq(str, d->doc_id[0], "GX008-86-4444840"));
    cr_expect(eq(dbl, d->x[0], 0.007477));
    rank_letor_free(d);
}

Test(rank_letor, a_features_header_names_and_widens_the_columns)
{
    char *a = write_temp("# causeway-features: bm25 cov prox\n1 qid:1 1:2 2:1\n0 qid:1 1:1\n");
    char *b = write_temp("# causeway-features: bm25 cov\n1 qid:2 1:2\n");
    char *c = write_temp("# causeway-features: bm25\n1 qid:2 1:2 2:5\n");
    const char *one[] = {a};
    rank_letor *d = NULL;
    cw_err err;
    cr_assert(eq(int, rank_letor_read(one, 1, &d, &err), CW_OK), "%s", err.msg);
    cr_expect(eq(sz, d->n_features, 3));
    cr_expect(eq(str, d->feature_names[2], "prox"));
    cr_expect(eq(dbl, d->x[1], 1.0));
    cr_expect(eq(dbl, d->x[2], 0.0));
    rank_letor_free(d);
    const char *two[] = {a, b};
    cr_expect(eq(int, rank_letor_read(two, 2, &d, &err), CW_EPARSE));
    char want[256];
    snprintf(want, sizeof want, "%s:1: feature names differ from the first file's", b);
    cr_expect(eq(str, err.msg, want));
    const char *three[] = {c};
    cr_expect(eq(int, rank_letor_read(three, 1, &d, &err), CW_EPARSE));
    snprintf(want, sizeof want, "%s: feature 2 used but only 1 names declared", c);
    cr_expect(eq(str, err.msg, want));
    unlink(a);
    unlink(b);
    unlink(c);
    free(a);
    free(b);
    free(c);
}
