/* common/text.c: UTF-8 validation (every byte from outside is checked before
 * it reaches the analyzer, the index or the log), a growable buffer, exact numbers. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cw.h"

bool cw_utf8_valid(const char *str, size_t n, size_t *bad_offset)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        /* Fast path over ASCII, 8 bytes at a time. */
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ULL) == 0) {
                i += 8;
                continue;
            }
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
        } else {
            goto bad;
        }
        if (need > n - i - 1) {
            goto bad;
        }
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                goto bad;
            }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF)) {
            goto bad;
        }
        i += need + 1;
    }
    return true;
bad:
    if (bad_offset) {
        *bad_offset = i;
    }
    return false;
}

int cw_buf_append(cw_buf *b, const void *p, size_t n)
{
    if (b->cap - b->len <= n) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap - b->len <= n) {
            ncap *= 2;
        }
        char *nd = realloc(b->data, ncap);
        if (!nd) {
            return CW_ENOMEM;
        }
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return CW_OK;
}

int cw_buf_printf(cw_buf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return CW_EINVAL;
    }
    if ((size_t)n < sizeof small) {
        return cw_buf_append(b, small, (size_t)n);
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        return CW_ENOMEM;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = cw_buf_append(b, big, (size_t)n);
    free(big);
    return rc;
}

void cw_buf_fini(cw_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

const char *cw_fmt_double_exact(double v, char buf[CW_DOUBLE_BUF])
{
    snprintf(buf, CW_DOUBLE_BUF, "%g", v);
    if (strtod(buf, NULL) != v) {
        snprintf(buf, CW_DOUBLE_BUF, "%.17g", v);
    }
    return buf;
}
