/*
 * sendback_race: a message and a consumer's send-back of it (same UNIQ_KEY)
 * both waiting in producer rings when a restarted writer repairs, for the
 * test that the repair matches each ring entry to the record it stored.
 *
 *   sendback_race --store DIR --topic T --queue Q --group G --go FILE
 *                 [--timeout MS]
 *
 * Opens two producers: "copy" first, "original" second, so that the copy's
 * ring comes first in the writer's ring order.  The original (topic T,
 * queue Q, a fresh UNIQ_KEY) is sent at once, asynchronously.  When FILE
 * exists (the test creates it once the writer that took the original was
 * killed and its successor waits before its repair), the copy is sent: the
 * record a consumer of group G sends back for a first failure
 * (shmq_retry_plan / shmq_retry_build, as shmq_consumer_send_back does: topic
 * %RETRY%G with delay level 3, the original's UNIQ_KEY and properties).
 * Then both answers are awaited.  Lines on stdout:
 *   rings <copy ring> <original ring>
 *   key <uniq key>
 *   published original | published copy
 *   ok <original|copy> <queue id> <queue offset> <phys offset> <status>
 *   err <original|copy> <error code> <error text>
 * Exit 0 when both were answered OK, 1 otherwise, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "format/message.h"
#include "client/producer_entry.h"
#include "client/producer_int.h"
#include "shm/schedule.h"
#include "shmq/producer.h"

#include "common/helper_util.h"

#define GO_WAIT_MS 60000

static int print_answer(const char *name, const helper_answer_t *a)
{
    if (!a->done) {
        printf("err %s %d no answer\n", name, -ETIMEDOUT);
        return 1;
    }
    if (a->err < 0) {
        printf("err %s %d %s\n", name, a->err, shmq_strerror(a->err));
        return 1;
    }
    printf("ok %s %d %lld %lld %d\n", name, a->res.queue_id, (long long)a->res.queue_offset,
           (long long)a->res.phys_offset, a->res.status);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},
        {"topic", required_argument, NULL, 't'},
        {"queue", required_argument, NULL, 'q'},
        {"group", required_argument, NULL, 'g'},
        {"go", required_argument, NULL, 'G'},
        {"timeout", required_argument, NULL, 'T'},
        {NULL, 0, NULL, 0},
    };
    const char *store = NULL, *topic = NULL, *group = NULL, *go = NULL;
    int queue = 0, timeout = 30000, c;
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
        case 'g':
            group = optarg;
            break;
        case 'G':
            go = optarg;
            break;
        case 'T':
            timeout = atoi(optarg);
            break;
        default:
            return 2;
        }
    }
    if (!store || !topic || !group || !go) {
        fprintf(stderr, "usage: sendback_race --store DIR --topic T --queue Q --group G --go FILE "
                        "[--timeout MS]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    shmq_producer_options_t po = {.send_timeout_ms = timeout};
    shmq_producer_t *copy_p, *orig_p;
    int rc = shmq_producer_open(store, &po, &copy_p);
    if (rc == 0) {
        rc = shmq_producer_open(store, &po, &orig_p);
    }
    if (rc < 0) {
        fprintf(stderr, "sendback_race: cannot open producers: %s: %s\n", shmq_strerror(rc),
                shmq_error_detail());
        return 1;
    }
    printf("rings %u %u\n", copy_p->ring_idx, orig_p->ring_idx);

    /* The original: a message as a producer sends it. */
    char key[SHMQ_UNIQ_KEY_MAX];
    shmq_uniq_key_generate(key);
    printf("key %s\n", key);
    char props[256];
    size_t plen = 0;
    rc = shmq_props_append(props, sizeof(props), &plen, SHMQ_PROP_UNIQ_KEY, key, strlen(key));
    if (rc < 0) {
        return 1;
    }
    static const char body[] = "original body";
    shmq_ring_msg_t orig;
    memset(&orig, 0, sizeof(orig));
    orig.kind = SHMQ_RING_KIND_MSG;
    orig.batch_count = 1;
    orig.topic = topic;
    orig.topic_len = (uint32_t)strlen(topic);
    orig.queue_id = queue;
    orig.born_ts = shmq_now_ms();
    orig.props = props;
    orig.props_len = (uint32_t)plen;
    orig.body = (const uint8_t *)body;
    orig.body_len = (uint32_t)strlen(body);
    helper_answer_t a_orig = {0}, a_copy = {0};
    rc = shmq_producer_send_entry_async(orig_p, &orig, helper_answer_cb, &a_orig);
    if (rc < 0) {
        printf("err original %d %s\n", rc, shmq_strerror(rc));
        return 1;
    }
    printf("published original\n");

    for (int waited = 0; access(go, F_OK) != 0; waited += 10) {
        if (waited >= GO_WAIT_MS) {
            fprintf(stderr, "sendback_race: %s did not appear\n", go);
            return 1;
        }
        helper_sleep_ms(10);
    }

    /* The copy: what a consumer of group sends back after the first failure. */
    shmq_retry_plan_t plan;
    rc = shmq_retry_plan(group, 0, 16, 1, 0, 7, &plan);
    shmq_ctl_t *ctl;
    if (rc == 0) {
        rc = shmq_producer_ctl(copy_p, &ctl);
    }
    if (rc == 0) {
        rc = shmq_schedule_topic_ensure(ctl, plan.topic, 1);
    }
    static char cprops[SHMQ_PROPS_MAX];
    shmq_ring_msg_t copy;
    if (rc == 0) {
        rc = shmq_retry_build(&plan, orig.topic, orig.topic_len, orig.body, orig.body_len, 0, 0,
                              orig.born_ts, &orig.born_host, 0, props, plen,
                              "00000000000000000000000000000000", cprops, sizeof(cprops), &copy);
    }
    if (rc == 0) {
        rc = shmq_producer_send_entry_async(copy_p, &copy, helper_answer_cb, &a_copy);
    }
    if (rc < 0) {
        printf("err copy %d %s: %s\n", rc, shmq_strerror(rc), shmq_error_detail());
        return 1;
    }
    printf("published copy\n");

    int64_t deadline = shmq_mono_ms() + 2 * (int64_t)timeout;
    while ((!a_orig.done || !a_copy.done) && shmq_mono_ms() < deadline) {
        shmq_producer_poll(orig_p, 10);
        shmq_producer_poll(copy_p, 10);
    }
    int bad = print_answer("original", &a_orig) + print_answer("copy", &a_copy);
    shmq_producer_close(copy_p);
    shmq_producer_close(orig_p);
    return bad ? 1 : 0;
}
