/*
 * consume: a small consumer for the integration tests.
 *
 *   consume STORE TOPIC GROUP --count N [--timeout MS] [--tags EXPR]
 *
 * Pulls every queue of TOPIC (its read queue count) of the running store at
 * STORE, each from GROUP's committed offset (0 if none), prints one line per
 * message on stdout
 *
 *   msg <queue> <queue offset> <phys offset> <UNIQ_KEY or -> <body CRC-32, 8 hex digits>
 *
 * and commits the next offset after each pull.  Stops after N messages
 * (N = 0: no limit, read until the timeout), or when --timeout MS (default
 * 10000) passes.  A summary goes to stderr.
 *
 * Exit status: 0 N messages read (or N = 0), 1 the timeout came first,
 * 2 usage, 3 a library error (store not running: SHMQ_E_NOT_FOUND).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "format/message.h"
#include "shmq/consumer.h"

#include "common/helper_util.h"

#define MAX_QUEUES 1024
#define POLL_MS    100 /* long-poll slice when a whole pass found nothing */

static int usage(void)
{
    fprintf(stderr, "usage: consume STORE TOPIC GROUP --count N [--timeout MS] [--tags EXPR]\n");
    return 2;
}

static int fail(const char *what, int rc)
{
    const char *d = shmq_error_detail();
    fprintf(stderr, "consume: %s: %s\n", what, d[0] ? d : shmq_strerror(rc));
    return 3;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        return usage();
    }
    const char *store = argv[1], *topic = argv[2], *group = argv[3];
    long long count = -1, timeout = 10000;
    const char *tags = NULL;
    for (int i = 4; i < argc; i++) {
        if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            if (!helper_parse_count(argv[++i], &count)) {
                return usage();
            }
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            if (!helper_parse_count(argv[++i], &timeout)) {
                return usage();
            }
        } else if (strcmp(argv[i], "--tags") == 0 && i + 1 < argc) {
            tags = argv[++i];
        } else {
            return usage();
        }
    }
    if (count < 0) {
        return usage();
    }

    shmq_consumer_t *c;
    int rc = shmq_consumer_open(store, group, &c);
    if (rc < 0) {
        return fail("open", rc);
    }
    int64_t deadline = shmq_mono_ms() + timeout;
    int nq = 0;
    /* The topic may not exist yet: wait for it until the deadline. */
    while ((nq = shmq_topic_queue_count(c, topic)) <= 0 && shmq_mono_ms() < deadline) {
        if (nq < 0 && nq != SHMQ_E_NOT_FOUND) {
            shmq_consumer_close(c);
            return fail("topic", nq);
        }
        helper_sleep_ms(POLL_MS);
    }
    if (nq > MAX_QUEUES) {
        nq = MAX_QUEUES;
    }
    static int64_t offsets[MAX_QUEUES];
    for (int q = 0; q < nq; q++) {
        if (shmq_fetch_offset(c, topic, q, &offsets[q]) < 0) {
            offsets[q] = 0;
        }
    }
    shmq_pull_result_t *res = malloc(sizeof(*res));
    if (!res) {
        shmq_consumer_close(c);
        return 3;
    }
    long long got = 0;
    int code = 1;
    int poll_q = 0;
    bool idle_pass = false;
    while (nq > 0) {
        if (count > 0 && got >= count) {
            code = 0;
            break;
        }
        int64_t left = deadline - shmq_mono_ms();
        if (left <= 0) {
            code = count == 0 ? 0 : 1;
            break;
        }
        bool found = false;
        for (int q = 0; q < nq && !(count > 0 && got >= count); q++) {
            /* After a pass that found nothing, one queue per pass long-polls briefly. */
            int wait = idle_pass && q == poll_q ? (int)(left < POLL_MS ? left : POLL_MS) : 0;
            int max = SHMQ_PULL_MAX;
            if (count > 0 && count - got < max) {
                max = (int)(count - got);
            }
            rc = shmq_pull(c, topic, q, offsets[q], max, tags, wait, res);
            if (rc < 0) {
                free(res);
                shmq_consumer_close(c);
                return fail("pull", rc);
            }
            for (size_t i = 0; i < res->count; i++) {
                const shmq_msg_view_t *m = &res->msgs[i];
                size_t klen = 0;
                const char *key = shmq_msg_property(m, SHMQ_PROP_UNIQ_KEY, &klen);
                printf("msg %d %lld %lld %.*s %08x\n", q, (long long)m->queue_offset,
                       (long long)m->phys_offset, key ? (int)klen : 1, key ? key : "-",
                       shmq_crc32(m->body, m->body_len));
            }
            got += (long long)res->count;
            found |= res->count > 0;
            if (res->next_offset != offsets[q]) {
                offsets[q] = res->next_offset;
                rc = shmq_commit_offset(c, topic, q, offsets[q]);
                if (rc < 0) {
                    free(res);
                    shmq_consumer_close(c);
                    return fail("commit", rc);
                }
            }
        }
        fflush(stdout);
        if (idle_pass) {
            poll_q = (poll_q + 1) % nq;
        }
        idle_pass = !found;
    }
    if (nq <= 0) {
        code = count == 0 ? 0 : 1;
    }
    fprintf(stderr, "consume: %lld message(s) from %d queue(s) of %s\n", got, nq, topic);
    free(res);
    shmq_consumer_close(c);
    return code;
}
