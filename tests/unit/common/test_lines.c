/* Tests of common/lines.c: line numbers, CRLF, a missing final newline, missing files. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cw.h"

static char *write_temp(const char *content, size_t n)
{
    char *path = strdup("/tmp/cw_lines_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert(eq(sz, (size_t)write(fd, content, n), n));
    close(fd);
    return path;
}

Test(cw_lines, numbers_lines_and_strips_crlf_and_reads_last_line_without_newline)
{
    const char *text = "one\r\ntwo\n\nfour";
    char *path = write_temp(text, strlen(text));
    cw_lines *lr = NULL;
    cw_err err;
    cr_assert(eq(int, cw_lines_open(path, &lr, &err), CW_OK));
    const char *line;
    size_t len;
    long no;
    const char *want[] = {"one", "two", "", "four"};
    for (int i = 0; i < 4; i++) {
        cr_assert(eq(int, cw_lines_next(lr, &line, &len, &no, &err), 1));
        cr_expect(eq(str, (char *)line, (char *)want[i]));
        cr_expect(eq(sz, len, strlen(want[i])));
        cr_expect(eq(long, no, i + 1));
    }
    cr_expect(eq(int, cw_lines_next(lr, &line, &len, &no, &err), 0));
    cw_lines_close(lr);
    unlink(path);
    free(path);
}

Test(cw_lines, long_lines_across_chunks_survive)
{
    size_t n = 3u << 20;
    char *content = malloc(n + 3);
    memset(content, 'a', n);
    content[n] = '\n';
    content[n + 1] = 'b';
    content[n + 2] = '\n';
    char *path = write_temp(content, n + 3);
    cw_lines *lr = NULL;
    cr_assert(eq(int, cw_lines_open(path, &lr, NULL), CW_OK));
    const char *line;
    size_t len;
    long no;
    cr_assert(eq(int, cw_lines_next(lr, &line, &len, &no, NULL), 1));
    cr_expect(eq(sz, len, n));
    cr_assert(eq(int, cw_lines_next(lr, &line, &len, &no, NULL), 1));
    cr_expect(eq(str, (char *)line, "b"));
    cr_expect(eq(long, no, 2));
    cw_lines_close(lr);
    unlink(path);
    free(path);
    free(content);
}

Test(cw_lines, missing_file_is_enotfound_naming_the_path)
{
    cw_lines *lr = NULL;
    cw_err err;
    cr_assert(eq(int, cw_lines_open("/nonexistent/x.jsonl", &lr, &err), CW_ENOTFOUND));
    cr_expect(strstr(err.msg, "/nonexistent/x.jsonl") != NULL);
}

/* QA regression: cw_file_read of a directory (fopen succeeds, reading fails) said only
 * "read error"; the message now carries the reason. */
Test(cw_file, reading_a_directory_names_the_reason)
{
    char *data = NULL;
    size_t n = 0;
    cw_err err;
    cr_assert(eq(int, cw_file_read("/tmp", 1 << 20, &data, &n, &err), CW_EIO));
    cr_expect(eq(str, err.msg, "/tmp: read: Is a directory"));
    cr_expect(data == NULL);
}
