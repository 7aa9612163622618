/*
 * clean_reader: a consumer that holds views into a CommitLog segment while
 * the cleaner deletes it (tests/integration/cleaner.t).
 *
 *   clean_reader STORE TOPIC QUEUE READY_FILE GO_FILE
 *
 * 1. Pulls up to 32 messages of TOPIC/QUEUE from offset 0 (waiting up to
 *    5 s), keeps the views (pointers into its read-only mapping of the
 *    CommitLog) and a private copy of each body, prints
 *    "HELD <count> <first phys offset> <last phys offset>".
 * 2. Creates READY_FILE and waits (at most 30 s) until GO_FILE exists: the
 *    test deletes the segment meanwhile.
 * 3. Compares every view's body with its copy, byte by byte, through the
 *    mapping of the deleted file: "STILL <count> ok" or "STILL <count> BAD".
 * 4. Pulls from the offset after the views: "PULL <status> <next offset>
 *    <min offset>"; when that is OFFSET_TOO_SMALL, pulls again from the
 *    offset it names: "PULL <status> <count> <first queue offset>".
 *
 * Exit 0 when the views read intact, 1 otherwise, 2 usage, 3 a library error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shmq/consumer.h"

#define HOLD    32
#define WAIT_MS 30000

static int fail(const char *what, int rc)
{
    const char *d = shmq_error_detail();
    fprintf(stderr, "clean_reader: %s: %s\n", what, d[0] ? d : shmq_strerror(rc));
    return 3;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: clean_reader STORE TOPIC QUEUE READY_FILE GO_FILE\n");
        return 2;
    }
    const char *store = argv[1], *topic = argv[2], *ready = argv[4], *go = argv[5];
    int queue = atoi(argv[3]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    shmq_consumer_t *c;
    int rc = shmq_consumer_open(store, NULL, &c);
    if (rc < 0) {
        return fail("open", rc);
    }
    static shmq_pull_result_t held, res;
    rc = shmq_pull(c, topic, queue, 0, HOLD, NULL, 5000, &held);
    if (rc < 0 || held.status != SHMQ_PULL_FOUND) {
        shmq_consumer_close(c);
        return rc < 0 ? fail("pull", rc) : fail(shmq_pull_status_name(held.status), 0);
    }
    void *copies[HOLD];
    for (size_t i = 0; i < held.count; i++) {
        copies[i] = malloc(held.msgs[i].body_len + 1);
        memcpy(copies[i], held.msgs[i].body, held.msgs[i].body_len);
    }
    printf("HELD %zu %lld %lld\n", held.count, (long long)held.msgs[0].phys_offset,
           (long long)held.msgs[held.count - 1].phys_offset);

    FILE *f = fopen(ready, "w");
    if (f) {
        fclose(f);
    }
    for (int waited = 0; access(go, F_OK) != 0 && waited < WAIT_MS; waited += 10) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }

    /* The segment is gone from the directory: the mapping still reads it. */
    size_t bad = 0;
    for (size_t i = 0; i < held.count; i++) {
        if (memcmp(held.msgs[i].body, copies[i], held.msgs[i].body_len) != 0) {
            bad++;
        }
        free(copies[i]);
    }
    printf("STILL %zu %s\n", held.count, bad ? "BAD" : "ok");

    rc = shmq_pull(c, topic, queue, held.next_offset, HOLD, NULL, 0, &res);
    if (rc < 0) {
        shmq_consumer_close(c);
        return fail("second pull", rc);
    }
    printf("PULL %s %lld %lld\n", shmq_pull_status_name(res.status), (long long)res.next_offset,
           (long long)res.min_offset);
    if (res.status == SHMQ_PULL_OFFSET_TOO_SMALL) {
        int64_t from = res.next_offset;
        rc = shmq_pull(c, topic, queue, from, HOLD, NULL, 0, &res);
        if (rc < 0) {
            shmq_consumer_close(c);
            return fail("third pull", rc);
        }
        printf("PULL %s %zu %lld\n", shmq_pull_status_name(res.status), res.count,
               (long long)(res.count ? res.msgs[0].queue_offset : -1));
    }
    shmq_consumer_close(c);
    return bad ? 1 : 0;
}
