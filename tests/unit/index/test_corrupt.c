/* Tests of corruption handling (index/filefmt.c, index/open.c): truncated and
 * bit-flipped index files give CW_ECORRUPT naming the file and offset, never a crash. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/index.h"
#include "index/index_int.h"
#include "tests/unit/index/helpers.h"

static const char *corpus =
    "{\"id\":\"a\",\"title\":\"river flows\",\"text\":\"the river flows to the "
    "sea\",\"src\":\"x\"}\n"
    "{\"id\":\"b\",\"title\":\"sea\",\"text\":\"salt water and waves\"}\n"
    "{\"id\":\"c\",\"title\":\"waves\",\"text\":\"river waves meet the sea water\"}\n";

static char *read_all(const char *path, size_t *n)
{
    char *buf = NULL;
    cr_assert(eq(int, cw_file_read(path, 1u << 26, &buf, n, NULL), CW_OK));
    return buf;
}

static void write_all(const char *path, const char *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f != NULL);
    cr_assert(fwrite(buf, 1, n, f) == n);
    fclose(f);
}

/* Opens and, if that works, exercises the index: must never crash. */
static int try_open(const char *dir, cw_err *err)
{
    idx_index *ix = NULL;
    int rc = idx_index_open(dir, &ix, err);
    if (rc == CW_OK) {
        idx_analyzer *a = NULL;
        cr_assert(eq(int, idx_index_analyzer(ix, &a, NULL), CW_OK));
        idx_query *q = NULL;
        if (idx_query_parse(ix, a, "river sea waves", 15, &q, NULL) == CW_OK) {
            idx_hit h[10];
            size_t n;
            idx_search_opts so = idx_search_opts_default();
            (void)!idx_search(ix, q, &so, h, &n, NULL, NULL);
            idx_query_free(q);
        }
        idx_analyzer_free(a);
        idx_index_close(ix);
    }
    return rc;
}

static bool in_checked_range(const char *buf, size_t off)
{
    if (off < IDX_HEADER_BYTES) {
        return true;
    }
    idx_file_header h;
    memcpy(&h, buf, sizeof h);
    for (uint32_t i = 0; i < h.n_sections && i < IDX_MAX_SECTIONS; i++) {
        if (off >= h.sections[i].offset && off < h.sections[i].offset + h.sections[i].length) {
            return true;
        }
    }
    return false;
}

static void flip_and_truncate(const char *file)
{
    char *dir = th_tmpdir();
    idx_index *ix = th_build_open(dir, corpus, "ix");
    idx_index_close(ix);
    char path[512], ixdir[512];
    snprintf(ixdir, sizeof ixdir, "%s/ix", dir);
    snprintf(path, sizeof path, "%s/%s", ixdir, file);
    size_t n;
    char *orig = read_all(path, &n);
    cw_err err;
    /* Truncation anywhere. */
    for (size_t cut = 0; cut < n; cut += (cut < 8192 ? 97 : 1)) {
        write_all(path, orig, cut);
        cr_assert(eq(int, try_open(ixdir, &err), CW_ECORRUPT), "cut at %zu", cut);
        cr_assert(strstr(err.msg, file) != NULL && strstr(err.msg, "offset") != NULL, "%s",
                  err.msg);
    }
    /* One flipped bit in every byte: checked bytes must be caught; padding may pass. */
    char *buf = malloc(n);
    for (size_t off = 0; off < n; off++) {
        memcpy(buf, orig, n);
        buf[off] ^= (char)(1u << (off % 8));
        write_all(path, buf, n);
        int rc = try_open(ixdir, &err);
        if (in_checked_range(orig, off)) {
            cr_assert(eq(int, rc, CW_ECORRUPT), "flip at %zu not detected", off);
        } else {
            cr_assert(rc == CW_OK || rc == CW_ECORRUPT);
        }
    }
    write_all(path, orig, n);
    cr_expect(eq(int, try_open(ixdir, &err), CW_OK));
    free(buf);
    free(orig);
    th_cleanup(dir);
}

Test(idx_corrupt, main_file_truncated_or_flipped_is_ecorrupt)
{
    flip_and_truncate("index.cw");
}

Test(idx_corrupt, docs_file_truncated_or_flipped_is_ecorrupt)
{
    flip_and_truncate("docs.cw");
}

Test(idx_corrupt, missing_files_are_enotfound)
{
    char *dir = th_tmpdir();
    cw_err err;
    idx_index *ix = NULL;
    cr_expect(eq(int, idx_index_open(dir, &ix, &err), CW_ENOTFOUND));
    cr_expect(strstr(err.msg, "index.cw") != NULL, "%s", err.msg);
    th_cleanup(dir);
}

Test(idx_corrupt, verify_checks_sections_skipped_at_open)
{
    char *dir = th_tmpdir();
    idx_index *ix = th_build_open(dir, corpus, "ix");
    cw_err err;
    cr_expect(eq(int, idx_index_verify(ix, &err), CW_OK), "%s", err.msg);
    idx_index_close(ix);
    th_cleanup(dir);
}
