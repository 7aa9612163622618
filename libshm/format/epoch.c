/*
 * The epoch file (epoch.h): RocketMQ 5's epochFileCheckpoint, parsed
 * strictly, written atomically, and the arithmetic a failover needs.
 */
#include "format/epoch.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/message.h"
#include "format/store_files.h"
#include "shmq/errors.h"

/* One line of text: [p, p + len), its end (\n, or \r\n) not included. */
typedef struct line {
    const char *p;
    size_t len;
} line_t;

/* The next line from *pos; false at the end of the text.  A last line without \n counts. */
static bool next_line(const char *text, size_t len, size_t *pos, line_t *l)
{
    if (*pos >= len) {
        return false;
    }
    const char *s = text + *pos;
    const char *nl = memchr(s, '\n', len - *pos);
    size_t n = nl ? (size_t)(nl - s) : len - *pos;
    *pos += n + (nl ? 1 : 0);
    if (n > 0 && s[n - 1] == '\r') {
        n--;
    }
    l->p = s;
    l->len = n;
    return true;
}

/* A decimal number of at most 19 digits without sign, within [0, max]. */
static bool parse_dec(const char *p, size_t len, int64_t max, int64_t *out)
{
    if (len == 0 || len > 19) {
        return false;
    }
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        int d = p[i] - '0';
        if (v > (max - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* A CRC line: Java's Integer.toString of a masked CRC (0 .. INT32_MAX). */
static bool parse_crc(const line_t *l, int64_t *crc)
{
    return parse_dec(l->p, l->len, INT32_MAX, crc);
}

int shmq_epoch_parse(const char *text, size_t len, shmq_epoch_table_t *t)
{
    t->n = 0;
    size_t pos = 0;
    line_t l;
    int64_t count, crc;
    if (!next_line(text, len, &pos, &l) || !parse_dec(l.p, l.len, SHMQ_EPOCH_MAX, &count)) {
        return shmq_error_set(SHMQ_E_CORRUPT,
                              "line 1: not a number of entries (a decimal from 0 to %d)",
                              SHMQ_EPOCH_MAX);
    }
    if (!next_line(text, len, &pos, &l) || !parse_crc(&l, &crc)) {
        return shmq_error_set(SHMQ_E_CORRUPT, "line 2: not a CRC (a decimal from 0 to %d)",
                              INT32_MAX);
    }
    /* The CRC is Java's: over each line as read, with "\n" after it. */
    char *canon = malloc(len + 1);
    if (canon == NULL) {
        return -ENOMEM;
    }
    size_t clen = 0;
    int lineno = 2, rc = 0;
    while (rc == 0 && next_line(text, len, &pos, &l)) {
        lineno++;
        const char *dash = memchr(l.p, '-', l.len);
        int64_t epoch, start;
        if ((int64_t)t->n == count) {
            rc = shmq_error_set(SHMQ_E_CORRUPT, "line %d: more entries than the %lld announced",
                                lineno, (long long)count);
        } else if (dash == NULL || !parse_dec(l.p, (size_t)(dash - l.p), INT32_MAX, &epoch) ||
                   epoch < 1 ||
                   !parse_dec(dash + 1, l.len - (size_t)(dash + 1 - l.p), INT64_MAX, &start)) {
            rc = shmq_error_set(SHMQ_E_CORRUPT,
                                "line %d: not <epoch>-<start offset> (decimals, epoch >= 1)",
                                lineno);
        } else if (t->n > 0 && (epoch <= t->e[t->n - 1].epoch || start < t->e[t->n - 1].start)) {
            rc = shmq_error_set(SHMQ_E_CORRUPT,
                                "line %d: epoch %lld from %lld does not follow epoch %d from "
                                "%lld (epochs rise, offsets never fall)",
                                lineno, (long long)epoch, (long long)start, t->e[t->n - 1].epoch,
                                (long long)t->e[t->n - 1].start);
        } else {
            t->e[t->n].epoch = (int32_t)epoch;
            t->e[t->n].start = start;
            t->n++;
            memcpy(canon + clen, l.p, l.len);
            clen += l.len;
            canon[clen++] = '\n';
        }
    }
    int32_t got = clen ? shmq_crc32_masked(canon, clen) : 0;
    free(canon);
    if (rc < 0) {
        t->n = 0;
        return rc;
    }
    if ((int64_t)t->n != count || (crc != 0 && got != crc)) {
        size_t n = t->n;
        t->n = 0;
        if (n != (size_t)count) {
            return shmq_error_set(SHMQ_E_CORRUPT, "%zu entries where line 1 announces %lld", n,
                                  (long long)count);
        }
        return shmq_error_set(SHMQ_E_CORRUPT, "the entries' CRC is %d, line 2 says %lld", got,
                              (long long)crc);
    }
    return 0;
}

int shmq_epoch_format(const shmq_epoch_table_t *t, char *buf, size_t cap)
{
    char body[SHMQ_EPOCH_FILE_MAX];
    size_t blen = 0;
    for (size_t i = 0; i < t->n && i < SHMQ_EPOCH_MAX; i++) {
        blen += (size_t)snprintf(body + blen, sizeof(body) - blen, "%d-%lld\n", t->e[i].epoch,
                                 (long long)t->e[i].start);
    }
    int32_t crc = blen ? shmq_crc32_masked(body, blen) : 0;
    int n = snprintf(buf, cap, "%zu\n%d\n%.*s", t->n, crc, (int)blen, body);
    if (n < 0 || (size_t)n >= cap) {
        return shmq_error_set(SHMQ_E_RANGE, "epoch file of %zu entries: no room", t->n);
    }
    return n;
}

/* Read and parse one file; -ENOENT when missing. */
static int load_one(const char *path, shmq_epoch_table_t *t)
{
    char *data = NULL;
    size_t len = 0;
    int rc = shmq_file_read_all(path, SHMQ_EPOCH_FILE_MAX, &data, &len);
    if (rc < 0) {
        return rc;
    }
    rc = len == 0 ? shmq_error_set(SHMQ_E_CORRUPT, "empty") : shmq_epoch_parse(data, len, t);
    free(data);
    return rc;
}

int shmq_epoch_load(const char *root, shmq_epoch_table_t *t)
{
    char path[PATH_MAX], bak[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/%s", root, SHMQ_EPOCH_FILE);
    snprintf(bak, sizeof(bak), "%s.bak", path);
    int rc = load_one(path, t);
    if (rc == 0) {
        return 0;
    }
    char why[256];
    snprintf(why, sizeof(why), "%s", rc == -ENOENT ? "missing" : shmq_error_detail());
    int brc = load_one(bak, t);
    if (brc == 0) {
        return 0;
    }
    t->n = 0;
    if (rc == -ENOENT && brc == -ENOENT) {
        return 0;
    }
    char bwhy[256]; /* the detail buffer is about to be rewritten */
    snprintf(bwhy, sizeof(bwhy), "%s", brc == -ENOENT ? "missing" : shmq_error_detail());
    return shmq_error_set(SHMQ_E_CORRUPT, "%s: %s; %s.bak: %s", path, why, SHMQ_EPOCH_FILE, bwhy);
}

int shmq_epoch_save(const char *root, const shmq_epoch_table_t *t)
{
    if (t->n == 0) {
        return 0;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", root, SHMQ_EPOCH_FILE);
    static char buf[SHMQ_EPOCH_FILE_MAX];
    int n = shmq_epoch_format(t, buf, sizeof(buf));
    if (n < 0) {
        return n;
    }
    return shmq_file_write_atomic(path, buf, (size_t)n);
}

int shmq_epoch_append(shmq_epoch_table_t *t, int32_t epoch, int64_t start)
{
    if (epoch < 1 || start < 0) {
        return shmq_error_set(SHMQ_E_RANGE, "epoch %d from %lld: epoch >= 1, offset >= 0", epoch,
                              (long long)start);
    }
    if (t->n > 0 && (epoch <= t->e[t->n - 1].epoch || start < t->e[t->n - 1].start)) {
        return shmq_error_set(SHMQ_E_RANGE, "epoch %d from %lld does not follow epoch %d from %lld",
                              epoch, (long long)start, t->e[t->n - 1].epoch,
                              (long long)t->e[t->n - 1].start);
    }
    if (t->n == SHMQ_EPOCH_MAX) {
        return shmq_error_set(SHMQ_E_TOO_BIG, "epoch table full (%d entries)", SHMQ_EPOCH_MAX);
    }
    t->e[t->n++] = (shmq_epoch_entry_t){.epoch = epoch, .start = start};
    return 0;
}

int32_t shmq_epoch_last(const shmq_epoch_table_t *t)
{
    return t->n ? t->e[t->n - 1].epoch : 0;
}

int64_t shmq_epoch_end(const shmq_epoch_table_t *t, size_t i, int64_t log_end)
{
    return i + 1 < t->n ? t->e[i + 1].start : log_end;
}

int64_t shmq_epoch_consistent_point(const shmq_epoch_table_t *local, int64_t local_end,
                                    const shmq_epoch_table_t *remote, int64_t remote_end)
{
    for (size_t i = local->n; i-- > 0;) {
        for (size_t j = remote->n; j-- > 0;) {
            if (remote->e[j].epoch != local->e[i].epoch) {
                continue;
            }
            if (remote->e[j].start != local->e[i].start) {
                break;
            }
            int64_t a = shmq_epoch_end(local, i, local_end);
            int64_t b = shmq_epoch_end(remote, j, remote_end);
            return a < b ? a : b;
        }
    }
    return -1;
}

size_t shmq_epoch_truncate(shmq_epoch_table_t *t, int64_t offset)
{
    size_t keep = t->n;
    while (keep > 0 && t->e[keep - 1].start >= offset) {
        keep--;
    }
    size_t gone = t->n - keep;
    t->n = keep;
    return gone;
}

size_t shmq_epoch_drop_before(shmq_epoch_table_t *t, int64_t offset)
{
    size_t drop = 0;
    while (drop + 1 < t->n && t->e[drop + 1].start <= offset) {
        drop++;
    }
    if (drop > 0) {
        memmove(t->e, t->e + drop, (t->n - drop) * sizeof(t->e[0]));
        t->n -= drop;
    }
    return drop;
}
