/*
 * Fuzz target: the epoch file (libshm/format/epoch.c) and the frames of
 * the classic HA link (libshm/format/ha_frame.c).  The input's first byte
 * chooses: even, the rest is an epochFileCheckpoint's text (parsed; what
 * parses is written back and must parse to the same table, and the
 * offset it agrees on with a copy cut at an epoch must be where that copy
 * ends); odd, the rest is what a peer sent (reports, then a transfer
 * header, checked as the HA sender and receiver check them).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/epoch.h"
#include "format/ha_frame.h"

static shmq_epoch_table_t t, u;
static char text[SHMQ_EPOCH_FILE_MAX];

static void epoch_case(const uint8_t *data, size_t size)
{
    if (shmq_epoch_parse((const char *)data, size, &t) != 0) {
        if (t.n != 0) {
            abort(); /* a refused file leaves no entries */
        }
        return;
    }
    int n = shmq_epoch_format(&t, text, sizeof(text));
    if (n < 0 || shmq_epoch_parse(text, (size_t)n, &u) != 0 || u.n != t.n ||
        memcmp(u.e, t.e, t.n * sizeof(t.e[0])) != 0) {
        abort();
    }
    if (t.n == 0) {
        return;
    }
    /* A follower that has the first half of the epochs and ends where its last one ends here. */
    int64_t end = t.e[t.n - 1].start + 1000;
    size_t half = (t.n + 1) / 2;
    int64_t cut = shmq_epoch_end(&t, half - 1, end);
    u.n = half;
    int64_t point = shmq_epoch_consistent_point(&t, end, &u, cut);
    if (point != cut) {
        abort();
    }
    shmq_epoch_truncate(&u, cut);
    shmq_epoch_drop_before(&t, cut);
    if (t.n == 0 || u.n > half) {
        abort();
    }
}

static void frame_case(const uint8_t *data, size_t size)
{
    int64_t latest = -1;
    size_t reports = size / 2;
    int rc = shmq_ha_report_scan(data, reports, &latest);
    if (rc > 0 && latest < 0) {
        abort();
    }
    if (rc >= 0 && (size_t)rc != reports / SHMQ_HA_REPORT_SIZE) {
        abort();
    }
    if (size - reports >= SHMQ_HA_HEADER_SIZE) {
        shmq_ha_header_t h;
        if (shmq_ha_header_decode(data + reports, 32768, &h) == 0 &&
            (h.offset < 0 || h.size < 0 || h.size > 32768 || h.offset > INT64_MAX - h.size)) {
            abort();
        }
    }
    if (rc > 0) {
        int64_t start;
        int64_t log_end = latest / 2 + 4096;
        if (shmq_ha_start_offset(latest, 0, log_end, 1 << 20, &start) == 0 &&
            (start < 0 || start > log_end)) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    if ((data[0] & 1) == 0) {
        epoch_case(data + 1, size - 1);
    } else {
        frame_case(data + 1, size - 1);
    }
    return 0;
}
