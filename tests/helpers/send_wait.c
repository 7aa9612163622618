/*
 * send_wait: send one message and report exactly what the producer API
 * answered, for tests that stop the store's workers at known points and
 * check each answer against what the store holds.
 *
 *   send_wait --store DIR --topic T [--queue Q] [--deliver-after MS]
 *             [--deliver-at MS] [--timeout MS] [--size N] [--async] [--go-file PATH]
 *             [--second-go-file PATH]
 *
 * --deliver-at: ms since the epoch, or +MS for that long from now.
 * --go-file: once attached, wait (up to 30 s) until PATH exists, then send:
 * a test can change the store between registration and the send.
 * --second-go-file (with --async): once the first message is in the ring,
 * wait (up to 30 s) until PATH exists, send a second one the same way
 * ("published 2"), then poll until both callbacks ran: a test can have the
 * store answer the first (which then waits for the flush or a slave) and
 * stop before it answers the second.  One answer line each, in order.
 *
 * Synchronous (shmq_send) by default; --async sends with shmq_send_async
 * and prints "published" once the call returned (the message is in the
 * ring), then polls until the callback ran.  Lines on stdout:
 *   attached                                   the producer has its ring
 *   published                                  (--async) in the ring
 *   ok <uniq key> <queue id> <queue offset> <phys offset> <status>
 *   err <error code> <uniq key, or - when unknown> <error text>
 * Exit 0 when every answer was an "ok" line, 1 after an "err" line, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shmq/producer.h"

#include "common/helper_util.h"

static int print_answer(int err, const shmq_send_result_t *r)
{
    if (err < 0) {
        printf("err %d %s %s: %s\n", err, r->uniq_key[0] ? r->uniq_key : "-", shmq_strerror(err),
               shmq_error_detail());
        return 1;
    }
    printf("ok %s %d %lld %lld %d\n", r->uniq_key, r->queue_id, (long long)r->queue_offset,
           (long long)r->phys_offset, r->status);
    return 0;
}

/* Wait (up to 30 s) until path exists; NULL: at once. */
static void wait_for_file(const char *path)
{
    for (int waited = 0; path != NULL && access(path, F_OK) != 0 && waited < 30000; waited += 10) {
        helper_sleep_ms(10);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: send_wait --store DIR --topic T [--queue Q] [--deliver-after MS]\n"
                    "                 [--deliver-at MS|+MS] [--timeout MS] [--size N] [--async]\n"
                    "                 [--go-file PATH] [--second-go-file PATH]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},
        {"topic", required_argument, NULL, 't'},
        {"queue", required_argument, NULL, 'q'},
        {"deliver-after", required_argument, NULL, 'd'},
        {"timeout", required_argument, NULL, 'T'},
        {"size", required_argument, NULL, 'z'},
        {"async", no_argument, NULL, 'a'},
        {"deliver-at", required_argument, NULL, 'A'},
        {"go-file", required_argument, NULL, 'g'},
        {"second-go-file", required_argument, NULL, 'G'},
        {NULL, 0, NULL, 0},
    };
    const char *store = NULL, *topic = NULL, *go_file = NULL, *second_go = NULL;
    int queue = -1, timeout = 3000, size = 100, async = 0;
    long long after = 0, at = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            store = optarg;
            break;
        case 't':
            topic = optarg;
            break;
        case 'q':
            queue = atoi(optarg);
            break;
        case 'd':
            after = atoll(optarg);
            break;
        case 'A':
            at = atoll(optarg);
            if (optarg[0] == '+') {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                at += (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
            }
            break;
        case 'T':
            timeout = atoi(optarg);
            break;
        case 'z':
            size = atoi(optarg);
            break;
        case 'a':
            async = 1;
            break;
        case 'g':
            go_file = optarg;
            break;
        case 'G':
            second_go = optarg;
            break;
        default:
            usage();
            return 2;
        }
    }
    if (store == NULL || topic == NULL || size < 0 || size > 1 << 20 ||
        (second_go != NULL && !async)) {
        usage();
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    shmq_producer_options_t po = {.send_timeout_ms = timeout};
    shmq_producer_t *p;
    int rc = shmq_producer_open(store, &po, &p);
    if (rc < 0) {
        fprintf(stderr, "send_wait: cannot open a producer: %s: %s\n", shmq_strerror(rc),
                shmq_error_detail());
        return 1;
    }
    printf("attached\n");
    wait_for_file(go_file);
    char *body = malloc((size_t)size + 1);
    if (body == NULL) {
        return 1;
    }
    memset(body, 'w', (size_t)size);
    shmq_message_t m;
    shmq_message_init(&m, topic, body, (size_t)size);
    m.queue_id = queue;
    m.deliver_after_ms = after;
    m.deliver_at_ms = at;
    shmq_send_result_t res;
    memset(&res, 0, sizeof(res));
    int code;
    if (async) {
        helper_answer_t a[2] = {{0}, {0}};
        int sent = 0;
        rc = shmq_send_async(p, &m, helper_answer_cb, &a[0]);
        if (rc == 0) {
            sent = 1;
            printf("published\n");
            if (second_go != NULL) {
                wait_for_file(second_go);
                rc = shmq_send_async(p, &m, helper_answer_cb, &a[1]);
                if (rc == 0) {
                    sent = 2;
                    printf("published 2\n");
                }
            }
        }
        while (sent > 0 && !(a[0].done && (sent < 2 || a[1].done)) &&
               shmq_producer_poll(p, 100) >= 0) {
        }
        code = sent > 0 ? print_answer(a[0].err, &a[0].res) : print_answer(rc, &a[0].res);
        if (second_go != NULL) {
            int c2 = sent > 1 ? print_answer(a[1].err, &a[1].res) : print_answer(rc, &a[1].res);
            code = code > c2 ? code : c2;
        }
    } else {
        rc = shmq_send(p, &m, &res);
        code = print_answer(rc, &res);
    }
    shmq_producer_close(p);
    free(body);
    return code;
}
