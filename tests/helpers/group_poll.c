/*
 * group_poll: a consumer group member that consumes with shmq_consumer_poll,
 * for the tests of consumer groups.
 *
 *   group_poll STORE TOPIC GROUP [--count N] [--timeout MS] [--slow MS]
 *                                [--orderly | --broadcast] [--stamp] [--queues-each]
 *     Polls TOPIC (and the group's retry topic) as a member of GROUP, 16
 *     messages at most per poll, and prints "<queue> <queue offset>" per
 *     message (--stamp: then the CLOCK_MONOTONIC ns it was printed at, one
 *     clock for every process of the host), a line at a time (what it
 *     printed survives a SIGKILL).  The next poll commits the batch, as
 *     shmq_consumer_poll does.  --slow sleeps MS after each batch.  Stops
 *     after N messages, when nothing came for MS (default 3000) or at
 *     SIGTERM, then polls once more with no wait, to commit the last batch
 *     (a message that poll returns is not printed: the group's next owner of
 *     its queue gets it); ends with "summary got=N queues=Q" (Q: the queues
 *     it held last, shmq_consumer_queues).  --queues-each calls
 *     shmq_consumer_queues before every poll too (a member that watches its
 *     queues).  Exit 0, or 3 on an error.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "shmq/consumer.h"

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static int fail(const char *what, int rc)
{
    const char *d = shmq_error_detail();
    fprintf(stderr, "group_poll: %s: %s%s%s\n", what, shmq_strerror(rc), d[0] ? ": " : "", d);
    return 3;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: group_poll STORE TOPIC GROUP [--count N] [--timeout MS] "
                        "[--slow MS] [--orderly | --broadcast] [--queues-each]\n");
        return 2;
    }
    const char *store = argv[1], *topic = argv[2], *group = argv[3];
    long long count = -1, timeout = 3000, slow = 0;
    bool orderly = false, broadcast = false, stamp = false, queues_each = false;
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--count") && i + 1 < argc) {
            count = atoll(argv[++i]);
        } else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            timeout = atoll(argv[++i]);
        } else if (!strcmp(argv[i], "--slow") && i + 1 < argc) {
            slow = atoll(argv[++i]);
        } else if (!strcmp(argv[i], "--orderly")) {
            orderly = true;
        } else if (!strcmp(argv[i], "--broadcast")) {
            broadcast = true;
        } else if (!strcmp(argv[i], "--stamp")) {
            stamp = true;
        } else if (!strcmp(argv[i], "--queues-each")) {
            queues_each = true;
        } else {
            fprintf(stderr, "group_poll: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    shmq_consumer_t *c;
    int rc = shmq_consumer_open(store, group, &c);
    if (rc < 0) {
        return fail("open", rc);
    }
    if ((orderly && (rc = shmq_consumer_set_orderly(c, true)) < 0) ||
        (broadcast && (rc = shmq_consumer_set_model(c, SHMQ_BROADCASTING)) < 0)) {
        return fail("model", rc);
    }
    shmq_pull_result_t *res = malloc(sizeof(*res));
    if (res == NULL) {
        return 3;
    }
    long long got = 0;
    int64_t idle_until = shmq_mono_ms() + timeout;
    while (!stop && (count < 0 || got < count)) {
        if (queues_each && (rc = shmq_consumer_queues(c, topic, NULL, NULL, 0, NULL)) < 0) {
            return fail("queues", rc);
        }
        rc = shmq_consumer_poll(c, topic, NULL, 16, 100, res);
        if (rc < 0) {
            return fail("poll", rc);
        }
        if (res->status != SHMQ_PULL_FOUND) {
            if (shmq_mono_ms() >= idle_until) {
                break;
            }
            continue;
        }
        for (size_t i = 0; i < res->count; i++) {
            if (stamp) {
                struct timespec now;
                clock_gettime(CLOCK_MONOTONIC, &now);
                printf("%d %lld %lld\n", (int)res->msgs[i].queue_id,
                       (long long)res->msgs[i].queue_offset,
                       (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
            } else {
                printf("%d %lld\n", (int)res->msgs[i].queue_id,
                       (long long)res->msgs[i].queue_offset);
            }
        }
        got += (long long)res->count;
        idle_until = shmq_mono_ms() + timeout;
        if (slow > 0 && !stop) {
            struct timespec ts = {slow / 1000, (slow % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    /* The last batch is committed by the next poll. */
    rc = shmq_consumer_poll(c, topic, NULL, 1, 0, res);
    if (rc < 0) {
        return fail("last poll", rc);
    }
    int held = shmq_consumer_queues(c, topic, NULL, NULL, 0, NULL);
    printf("summary got=%lld queues=%d\n", got, held);
    free(res);
    shmq_consumer_close(c);
    return 0;
}
