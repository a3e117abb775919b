/* common/lines.c: bounded line reader for JSONL and TSV inputs, keeping line
 * numbers so every parse error can name file:line. Reads in 1 MiB chunks and
 * finds newlines with memchr: per-byte getc is several times slower on the
 * multi-gigabyte corpora the index builder streams. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cw.h"

#define CHUNK_BYTES ((size_t)1 << 20)

struct cw_lines {
    int fd;
    bool is_stdin;
    bool eof;
    char *path;
    char *buf;  /* holds [start, end) of unread bytes, plus room for a NUL */
    size_t cap; /* allocated bytes of buf */
    size_t start;
    size_t end;
    long line_no;
    uint64_t offset; /* file offset of buf[start] */
};

int cw_lines_open(const char *path, cw_lines **out, cw_err *err)
{
    cw_lines *lr = calloc(1, sizeof *lr);
    if (!lr) {
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    if (strcmp(path, "-") == 0) {
        lr->fd = 0;
        lr->is_stdin = true;
    } else {
        lr->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (lr->fd < 0) {
            int code = errno == ENOENT ? CW_ENOTFOUND : CW_EIO;
            free(lr);
            return cw_err_set(err, code, "%s: %s", path, strerror(errno));
        }
    }
    lr->path = strdup(path);
    lr->cap = CHUNK_BYTES + 1;
    lr->buf = malloc(lr->cap);
    if (!lr->path || !lr->buf) {
        cw_lines_close(lr);
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    *out = lr;
    return CW_OK;
}

/* Reads more bytes after buf[end], compacting or growing first.
 * Returns bytes read (0 at EOF) or -1 with errno. */
static ssize_t fill(cw_lines *lr)
{
    if (lr->start > 0) {
        memmove(lr->buf, lr->buf + lr->start, lr->end - lr->start);
        lr->end -= lr->start;
        lr->start = 0;
    }
    if (lr->cap - 1 - lr->end < CHUNK_BYTES / 2) {
        size_t ncap = (lr->cap - 1) * 2 + 1;
        char *nb = realloc(lr->buf, ncap);
        if (!nb) {
            errno = ENOMEM;
            return -1;
        }
        lr->buf = nb;
        lr->cap = ncap;
    }
    for (;;) {
        ssize_t n = read(lr->fd, lr->buf + lr->end, lr->cap - 1 - lr->end);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n > 0) {
            lr->end += (size_t)n;
        }
        return n;
    }
}

int cw_lines_next(cw_lines *lr, const char **line, size_t *len, long *line_no, cw_err *err)
{
    size_t scanned = 0;
    for (;;) {
        char *nl = memchr(lr->buf + lr->start + scanned, '\n', lr->end - lr->start - scanned);
        size_t n;
        bool have = false;
        if (nl) {
            n = (size_t)(nl - (lr->buf + lr->start));
            have = true;
        } else if (lr->eof) {
            n = lr->end - lr->start;
            if (n == 0) {
                return 0;
            }
            have = true;
        } else {
            n = lr->end - lr->start;
        }
        if (n > CW_MAX_LINE_BYTES) {
            /* Skip the rest of the line so a caller with --skip-bad can go on. */
            long ln = ++lr->line_no;
            for (;;) {
                char *p = memchr(lr->buf + lr->start, '\n', lr->end - lr->start);
                if (p) {
                    lr->offset += (uint64_t)(p + 1 - (lr->buf + lr->start));
                    lr->start = (size_t)(p + 1 - lr->buf);
                    break;
                }
                lr->offset += lr->end - lr->start;
                lr->start = lr->end = 0;
                ssize_t r = fill(lr);
                if (r <= 0) {
                    lr->eof = true;
                    break;
                }
            }
            return cw_err_set(err, CW_ELIMIT, "%s:%ld: line longer than %zu bytes", lr->path, ln,
                              CW_MAX_LINE_BYTES);
        }
        if (have) {
            char *s = lr->buf + lr->start;
            size_t consumed = n + (nl ? 1 : 0);
            lr->start += consumed;
            lr->offset += consumed;
            if (n > 0 && s[n - 1] == '\r') {
                n--;
            }
            s[n] = '\0'; /* overwrites the '\n' (or the spare byte at EOF) */
            lr->line_no++;
            *line = s;
            *len = n;
            if (line_no) {
                *line_no = lr->line_no;
            }
            return 1;
        }
        scanned = n;
        ssize_t r = fill(lr);
        if (r < 0) {
            if (errno == ENOMEM) {
                return cw_err_set(err, CW_ENOMEM, "%s:%ld: out of memory", lr->path,
                                  lr->line_no + 1);
            }
            return cw_err_set(err, CW_EIO, "%s: read: %s", lr->path, strerror(errno));
        }
        if (r == 0) {
            lr->eof = true;
        }
    }
}

uint64_t cw_lines_offset(const cw_lines *lr)
{
    return lr->offset;
}

void cw_lines_close(cw_lines *lr)
{
    if (!lr) {
        return;
    }
    if (!lr->is_stdin && lr->fd >= 0) {
        close(lr->fd);
    }
    free(lr->path);
    free(lr->buf);
    free(lr);
}
