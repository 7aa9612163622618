/*
 * sched_load: producer and consumer of delayed and timed messages for the
 * scheduler's tests.
 *
 *   sched_load send STORE TOPIC --count N (--at-from MS [--at-span MS] |
 *                                          --after MS | --level L --level-ms MS)
 *                                          [--queue Q] [--rate R]
 *     Sends N messages (up to 256 in flight; at most R per second with --rate).  Message i carries
 * in its body "i=<i> due=<ms>": its due time, asked as deliver_at_ms = start + at-from + at-span *
 * i / N, as deliver_after_ms, or as delay level L (due = send time + level-ms).  Prints "sent N
 * first_due F last_due L done_ms T" (T: wall time when every send was acknowledged).  Exit 0 when
 * all were stored.
 *
 *   sched_load recv STORE TOPIC GROUP --count N [--timeout MS] [--fail-until K]
 *                                          [--lines]
 *     Consumes TOPIC and the group's retry topic with shmq_consumer_poll
 *     until N distinct messages arrived (or nothing came for MS, default
 *     10000), noting the wall time each arrives.  --fail-until K sends back
 *     (shmq_consumer_send_back, level by retry count) every message whose
 *     reconsume times are below K.  --lines prints "msg <i> <due> <arrival>
 *     <reconsume times> <topic> <store_ts>" per message.  Ends with
 *     "summary distinct=D total=T dups=X max_late=M min_late=m asan=0|1"
 *     (lateness = arrival - due over first arrivals of messages with
 *     reconsume times 0).  Exit 0 when D == N, 1 otherwise, 3 on an error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "shmq/consumer.h"
#include "shmq/producer.h"

#include "common/helper_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN 1
#endif
#endif
#ifndef ASAN
#define ASAN 0
#endif

static int usage(void)
{
    fprintf(stderr, "usage: sched_load send STORE TOPIC --count N (--at-from MS [--at-span MS] | "
                    "--after MS | --level L --level-ms MS) [--queue Q] [--rate R]\n"
                    "       sched_load recv STORE TOPIC GROUP --count N [--timeout MS] "
                    "[--fail-until K] [--lines]\n");
    return 2;
}

static int fail(const char *what, int rc)
{
    const char *d = shmq_error_detail();
    fprintf(stderr, "sched_load: %s: %s%s%s\n", what, shmq_strerror(rc), d[0] ? ": " : "", d);
    return 3;
}

typedef struct send_state {
    long long inflight, ok, errors;
} send_state_t;

static void sent_cb(void *arg, int err, const shmq_send_result_t *res)
{
    send_state_t *s = arg;
    (void)res;
    s->inflight--;
    if (err < 0) {
        if (s->errors++ < 5) {
            fprintf(stderr, "sched_load: send failed: %s\n", shmq_strerror(err));
        }
    } else {
        s->ok++;
    }
}

static int do_send(const char *store, const char *topic, int argc, char **argv)
{
    long long count = -1, at_from = -1, at_span = 0, after = -1, level = 0, level_ms = 0,
              queue = -1, rate = 0;
    for (int i = 0; i < argc; i++) {
        long long *dst = NULL;
        if (!strcmp(argv[i], "--count")) {
            dst = &count;
        } else if (!strcmp(argv[i], "--at-from")) {
            dst = &at_from;
        } else if (!strcmp(argv[i], "--at-span")) {
            dst = &at_span;
        } else if (!strcmp(argv[i], "--after")) {
            dst = &after;
        } else if (!strcmp(argv[i], "--level")) {
            dst = &level;
        } else if (!strcmp(argv[i], "--level-ms")) {
            dst = &level_ms;
        } else if (!strcmp(argv[i], "--queue")) {
            dst = &queue;
        } else if (!strcmp(argv[i], "--rate")) {
            dst = &rate;
        }
        if (dst == NULL || i + 1 >= argc || !helper_parse_count(argv[++i], dst)) {
            return usage();
        }
    }
    if (count <= 0 || (at_from < 0 && after < 0 && level <= 0)) {
        return usage();
    }
    shmq_producer_options_t po = {.send_timeout_ms = 30000};
    shmq_producer_t *p;
    int rc = shmq_producer_open(store, &po, &p);
    if (rc < 0) {
        return fail("producer", rc);
    }
    send_state_t st = {0};
    int64_t start = shmq_now_ms(), first_due = 0, last_due = 0;
    for (long long i = 0; i < count; i++) {
        while (st.inflight >= 256) {
            shmq_producer_poll(p, 100);
        }
        while (rate > 0 && (shmq_now_ms() - start) * rate < i * 1000) {
            shmq_producer_poll(p, 1);
            helper_sleep_ms(1);
        }
        shmq_message_t m;
        char body[96];
        int64_t due;
        int64_t now = shmq_now_ms();
        if (at_from >= 0) {
            due = start + at_from + at_span * i / count;
        } else if (after >= 0) {
            due = now + after;
        } else {
            due = now + level_ms;
        }
        int n = snprintf(body, sizeof(body), "i=%lld due=%lld", i, (long long)due);
        shmq_message_init(&m, topic, body, (size_t)n);
        m.queue_id = (int32_t)queue;
        if (at_from >= 0) {
            m.deliver_at_ms = due;
        } else if (after >= 0) {
            m.deliver_after_ms = after;
        } else {
            m.delay_level = (int32_t)level;
        }
        first_due = i == 0 ? due : first_due;
        last_due = due;
        rc = shmq_send_async(p, &m, sent_cb, &st);
        if (rc < 0) {
            shmq_producer_close(p);
            return fail("send", rc);
        }
        st.inflight++;
    }
    shmq_producer_flush(p, 60000);
    int64_t done = shmq_now_ms();
    shmq_producer_close(p);
    printf("sent %lld first_due %lld last_due %lld done_ms %lld\n", st.ok, (long long)first_due,
           (long long)last_due, (long long)done);
    return st.ok == count ? 0 : 1;
}

static int do_recv(const char *store, const char *topic, const char *group, int argc, char **argv)
{
    long long count = -1, timeout = 10000, fail_until = 0;
    bool lines = false;
    for (int i = 0; i < argc; i++) {
        long long *dst = NULL;
        if (!strcmp(argv[i], "--lines")) {
            lines = true;
            continue;
        }
        if (!strcmp(argv[i], "--count")) {
            dst = &count;
        } else if (!strcmp(argv[i], "--timeout")) {
            dst = &timeout;
        } else if (!strcmp(argv[i], "--fail-until")) {
            dst = &fail_until;
        }
        if (dst == NULL || i + 1 >= argc || !helper_parse_count(argv[++i], dst)) {
            return usage();
        }
    }
    if (count <= 0) {
        return usage();
    }
    shmq_consumer_t *c;
    int rc = shmq_consumer_open(store, group, &c);
    if (rc < 0) {
        return fail("consumer", rc);
    }
    unsigned char *seen = calloc((size_t)count, 1);
    shmq_pull_result_t *res = malloc(sizeof(*res));
    if (!seen || !res) {
        return 3;
    }
    long long distinct = 0, total = 0, dups = 0;
    int64_t max_late = INT64_MIN, min_late = INT64_MAX, last_arrival = shmq_now_ms();
    while (distinct < count && shmq_now_ms() - last_arrival < timeout) {
        rc = shmq_consumer_poll(c, topic, NULL, SHMQ_PULL_MAX, 100, res);
        if (rc < 0) {
            return fail("poll", rc);
        }
        int64_t arrival = shmq_now_ms();
        for (size_t k = 0; k < res->count; k++) {
            const shmq_msg_view_t *v = &res->msgs[k];
            long long i = -1, due = 0;
            char body[96];
            size_t bl = v->body_len < sizeof(body) - 1 ? v->body_len : sizeof(body) - 1;
            memcpy(body, v->body, bl);
            body[bl] = '\0';
            if (sscanf(body, "i=%lld due=%lld", &i, &due) != 2 || i < 0 || i >= count) {
                fprintf(stderr, "sched_load: unexpected body '%s'\n", body);
                continue;
            }
            total++;
            last_arrival = arrival;
            if (lines) {
                printf("msg %lld %lld %lld %d %.*s %lld\n", i, due, (long long)arrival,
                       (int)v->reconsume_times, (int)v->topic_len, v->topic,
                       (long long)v->store_ts);
            }
            if (v->reconsume_times < fail_until) {
                rc = shmq_consumer_send_back(c, v, 0);
                if (rc < 0) {
                    return fail("send back", rc);
                }
                continue;
            }
            if (seen[i]) {
                dups++;
                continue;
            }
            seen[i] = 1;
            distinct++;
            if (v->reconsume_times == 0) {
                int64_t late = arrival - due;
                max_late = late > max_late ? late : max_late;
                min_late = late < min_late ? late : min_late;
            }
        }
        fflush(stdout);
    }
    /* The last batch is committed by the next poll: one more, without waiting. */
    shmq_consumer_poll(c, topic, NULL, 1, 0, res);
    printf("summary distinct=%lld total=%lld dups=%lld max_late=%lld min_late=%lld asan=%d\n",
           distinct, total, dups, (long long)(distinct ? max_late : 0),
           (long long)(distinct ? min_late : 0), ASAN);
    free(seen);
    free(res);
    shmq_consumer_close(c);
    return distinct == count ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "send")) {
        return do_send(argv[2], argv[3], argc - 4, argv + 4);
    }
    if (argc >= 5 && !strcmp(argv[1], "recv")) {
        return do_recv(argv[2], argv[3], argv[4], argc - 5, argv + 5);
    }
    return usage();
}
