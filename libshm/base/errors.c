/*
 * Error texts and the per-thread error detail (see include/shmq/errors.h).
 */
#include "shmq/errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static __thread char detail_buf[512];

static const char *const shmq_texts[] = {
    [0] = "shmq error",
    [1] = "data on disk is corrupt",
    [2] = "unsupported format or layout version",
    [3] = "message body too large",
    [4] = "bad record magic",
    [5] = "bad record size",
    [6] = "body CRC mismatch",
    [7] = "record CRC mismatch",
    [8] = "physical offset does not match record position",
    [9] = "record truncated",
    [10] = "invalid topic name",
    [11] = "invalid or oversized properties",
    [12] = "invalid configuration",
    [13] = "store is locked by another process",
    [14] = "store fenced after a failed flush",
    [15] = "not found",
    [16] = "out of range",
    [17] = "malformed JSON",
    [18] = "bad segment file",
    [19] = "invalid argument",
    [20] = "malformed message id",
    [21] = "end reached",
    [22] = "disk full",
    [23] = "queue held by another member of the group",
    [24] = "not serving as master: no lease from the controller group",
};

const char *shmq_strerror(int err)
{
    if (err <= SHMQ_E_BASE && err > SHMQ_E_LAST) {
        return shmq_texts[SHMQ_E_BASE - err];
    }
    if (err < 0 && err > -4096) {
        return strerror(-err);
    }
    if (err == 0) {
        return "success";
    }
    return "unknown error";
}

int shmq_error_set(int err, const char *fmt, ...)
{
    /* Formatted aside first: an argument may be shmq_error_detail() itself. */
    char buf[sizeof(detail_buf)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    memcpy(detail_buf, buf, sizeof(buf));
    return err;
}

int shmq_error_wrap(int err, const char *fmt, ...)
{
    char old[sizeof(detail_buf)];
    if (detail_buf[0]) {
        memcpy(old, detail_buf, sizeof(old));
    } else {
        snprintf(old, sizeof(old), "%s", shmq_strerror(err));
    }
    char head[sizeof(detail_buf)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    snprintf(detail_buf, sizeof(detail_buf), "%.255s: %.250s", head, old);
    return err;
}

const char *shmq_error_detail(void)
{
    return detail_buf;
}

void shmq_error_clear(void)
{
    detail_buf[0] = '\0';
}
