/* common/err.c: the error record every fallible call fills (see cw.h). */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/cw.h"

int cw_err_set(cw_err *err, int code, const char *fmt, ...)
{
    int saved = errno;
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
        err->sys_errno = saved;
    }
    errno = saved;
    return code;
}

int cw_err_prefix(cw_err *err, const char *fmt, ...)
{
    if (!err) {
        return CW_OK;
    }
    char head[CW_ERR_MSG_BYTES];
    char old[CW_ERR_MSG_BYTES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s%s", head, old);
    return err->code;
}

void cw_err_clear(cw_err *err)
{
    if (err) {
        err->code = CW_OK;
        err->sys_errno = 0;
        err->msg[0] = '\0';
    }
}

const char *cw_strerror(int code)
{
    switch (code) {
    case CW_OK: return "OK";
    case CW_ENOMEM: return "ENOMEM";
    case CW_EINVAL: return "EINVAL";
    case CW_EPARSE: return "EPARSE";
    case CW_ECORRUPT: return "ECORRUPT";
    case CW_ENOTFOUND: return "ENOTFOUND";
    case CW_ELIMIT: return "ELIMIT";
    case CW_EIO: return "EIO";
    case CW_ENUMERIC: return "ENUMERIC";
    case CW_EINTR: return "EINTR";
    case CW_EBUSY: return "EBUSY";
    default: return "EUNKNOWN";
    }
}
