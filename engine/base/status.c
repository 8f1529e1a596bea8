/*
 * status.c — status codes and the per-thread detailed error message.
 *
 * Every library function that fails records a message here (err_set, err_errno)
 * and returns the status; kv_errmsg() hands the calling thread its last message.
 * kv_strerror() is a static table with a generic text for unknown codes, like
 * SQLite's sqlite3ErrStr and LMDB's mdb_strerror.
 */
#include "base/kv_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char kv_errbuf[512];

const char *kv_strerror(int status)
{
    switch (status) {
    case KV_OK: return "ok";
    case KV_NOTFOUND: return "key not found";
    case KV_EINVAL: return "invalid argument";
    case KV_ENOMEM: return "out of memory";
    case KV_EIO: return "I/O error";
    case KV_ECORRUPT: return "data corrupted";
    case KV_ELOCKED: return "store locked by another writer";
    case KV_EREADONLY: return "store opened read-only";
    case KV_ENOSPC: return "no space left on device";
    case KV_EVERSION: return "unsupported format version";
    default: return "unknown kv status";
    }
}

const char *kv_errmsg(void) { return kv_errbuf; }

const char *kv_version(void) { return KV_VERSION_STRING; }

void err_clear(void) { kv_errbuf[0] = '\0'; }

static void kv_verr(const char *fmt, va_list ap) KV_PRINTF(1, 0);
static void kv_verr(const char *fmt, va_list ap)
{
    vsnprintf(kv_errbuf, sizeof kv_errbuf, fmt, ap);
}

int err_set(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kv_verr(fmt, ap);
    va_end(ap);
    return status;
}

int err_const(int status, const char *msg)
{
    size_t n = strlen(msg);
    if (n >= sizeof kv_errbuf)
        n = sizeof kv_errbuf - 1;
    memcpy(kv_errbuf, msg, n);
    kv_errbuf[n] = '\0';
    return status;
}

int status_from_errno(int err)
{
    if (err == ENOSPC || err == EDQUOT)
        return KV_ENOSPC;
    if (err == ENOMEM)
        return KV_ENOMEM;
    return KV_EIO;
}

int err_errno(int err, const char *fmt, ...)
{
    va_list ap;
    size_t n;
    va_start(ap, fmt);
    kv_verr(fmt, ap);
    va_end(ap);
    n = strlen(kv_errbuf);
    snprintf(kv_errbuf + n, sizeof kv_errbuf - n, ": %s", strerror(err));
    return status_from_errno(err);
}
