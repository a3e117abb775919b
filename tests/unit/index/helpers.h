/* tests/unit/index/helpers.h: temp directories, fixtures and small index builds
 * shared by the index tests (each test runs in its own process). */
#ifndef CAUSEWAY_TESTS_UNIT_INDEX_HELPERS_H
#define CAUSEWAY_TESTS_UNIT_INDEX_HELPERS_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/index.h"

/* A fresh directory under /tmp; th_cleanup removes it and frees the name. */
static inline char *th_tmpdir(void)
{
    char *d = strdup("/tmp/cw_idx_test_XXXXXX");
    cr_assert(mkdtemp(d) != NULL);
    return d;
}

static inline void th_cleanup(char *dir)
{
    cw_err e;
    cr_expect(cw_rmtree(dir, &e) == CW_OK);
    free(dir);
}

static inline char *th_write(const char *dir, const char *name, const char *content, size_t n)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *path = malloc(len);
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert(f != NULL);
    cr_assert(fwrite(content, 1, n, f) == n);
    fclose(f);
    return path;
}

/* Path of a file in tests/data (CW_SRCDIR is set by make check). */
static inline char *th_fixture(const char *rel)
{
    const char *src = getenv("CW_SRCDIR");
    if (!src) {
        src = ".";
    }
    size_t len = strlen(src) + strlen(rel) + 16;
    char *path = malloc(len);
    snprintf(path, len, "%s/tests/data/%s", src, rel);
    if (access(path, R_OK) != 0) {
        cr_skip_test("missing fixture %s (set CW_SRCDIR to the source tree)", path);
    }
    return path;
}

/* Builds corpus text into dir/ix and opens it. */
static inline idx_index *th_build_open(const char *dir, const char *corpus, const char *ix_name)
{
    char *cp = th_write(dir, "corpus.jsonl", corpus, strlen(corpus));
    size_t len = strlen(dir) + strlen(ix_name) + 2;
    char *out = malloc(len);
    snprintf(out, len, "%s/%s", dir, ix_name);
    idx_build_opts o = idx_build_opts_default();
    cw_err err;
    int rc = idx_build(cp, out, &o, NULL, &err);
    cr_assert(rc == CW_OK, "build failed: %s", err.msg);
    idx_index *ix = NULL;
    rc = idx_index_open(out, &ix, &err);
    cr_assert(rc == CW_OK, "open failed: %s", err.msg);
    free(cp);
    free(out);
    return ix;
}

/* A pronounceable word for id i, written to out (distinct ids give distinct words; 2
 * bytes per base-16 digit of i, at most 17 with the NUL). */
static inline void th_word_of(uint32_t i, char *out)
{
    static const char *syl[16] = {"ka", "lo", "mi", "ne", "ru", "sa", "te", "vo",
                                  "pi", "da", "fu", "ge", "ho", "ji", "wa", "ze"};
    out[0] = '\0';
    do {
        strcat(out, syl[i % 16]);
        i /= 16;
    } while (i > 0);
}

#endif /* CAUSEWAY_TESTS_UNIT_INDEX_HELPERS_H */
