/*
 * send_errors: one producer sends, in this order, messages the store must
 * refuse for different reasons, and good ones between them, with every
 * sending mode, and prints the error each send got: the test checks that
 * each error text describes that send's own error, never an earlier one.
 *
 *   send_errors STORE
 *
 * The store runs with autoCreateTopicEnable=false, topic TopicE exists with
 * 4 queues and TopicRO exists read-only (perm 4).  stdout, one line per case:
 *   <case> <return code> <error text, or "-" when the send succeeded>
 * Cases: nosuch (a topic that does not exist), timer (TIMER_DELIVER_MS=abc),
 * good, queue-2 (queue id -2), timer-far (TIMER_DELAY_MS beyond
 * timerMaxDelaySec), async-timer (shmq_send_async, TIMER_DELAY_SEC=zz),
 * batch-readonly (shmq_send_batch to TopicRO), queue-any (SHMQ_QUEUE_ANY),
 * good-async.  Exit 0 when every case ran, 2 on bad usage or no producer.
 */
#include <stdio.h>
#include <string.h>

#include "shmq/errors.h"
#include "shmq/producer.h"

typedef struct async_result {
    int done;
    int err;
    char text[512];
} async_result_t;

static void print_case(const char *name, int rc)
{
    printf("%s %d %s\n", name, rc, rc < 0 ? shmq_error_detail() : "-");
    fflush(stdout);
}

static void on_done(void *arg, int err, const shmq_send_result_t *res)
{
    async_result_t *a = arg;
    (void)res;
    a->done = 1;
    a->err = err;
    snprintf(a->text, sizeof(a->text), "%s", err < 0 ? shmq_error_detail() : "-");
}

/* A message to topic with one user property (name NULL: none) and queue id qid. */
static void one(shmq_producer_t *p, const char *name, const char *topic, const char *prop,
                const char *value, int32_t qid)
{
    shmq_message_t m;
    shmq_property_t pr = {prop, value};
    shmq_send_result_t res;
    shmq_message_init(&m, topic, "body", 4);
    if (prop) {
        m.properties = &pr;
        m.property_count = 1;
    }
    m.queue_id = qid;
    print_case(name, shmq_send(p, &m, &res));
}

static void one_async(shmq_producer_t *p, const char *name, const char *prop, const char *value)
{
    shmq_message_t m;
    shmq_property_t pr = {prop, value};
    async_result_t a = {0};
    shmq_message_init(&m, "TopicE", "body", 4);
    if (prop) {
        m.properties = &pr;
        m.property_count = 1;
    }
    int rc = shmq_send_async(p, &m, on_done, &a);
    if (rc < 0) {
        print_case(name, rc);
        return;
    }
    shmq_producer_flush(p, 10000);
    printf("%s %d %s\n", name, a.done ? a.err : -1, a.done ? a.text : "no callback");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: send_errors STORE\n");
        return 2;
    }
    shmq_producer_t *p;
    int rc = shmq_producer_open(argv[1], NULL, &p);
    if (rc < 0) {
        fprintf(stderr, "send_errors: %s: %s\n", shmq_strerror(rc), shmq_error_detail());
        return 2;
    }
    one(p, "nosuch", "NoSuchTopic", NULL, NULL, SHMQ_QUEUE_ANY);
    one(p, "timer", "TopicE", "TIMER_DELIVER_MS", "abc", SHMQ_QUEUE_ANY);
    one(p, "good", "TopicE", NULL, NULL, SHMQ_QUEUE_ANY);
    one(p, "queue-2", "TopicE", NULL, NULL, -2);
    one(p, "timer-far", "TopicE", "TIMER_DELAY_MS", "999999999999", SHMQ_QUEUE_ANY);
    one_async(p, "async-timer", "TIMER_DELAY_SEC", "zz");
    shmq_message_t b[2];
    shmq_send_result_t br[2];
    shmq_message_init(&b[0], "TopicRO", "b0", 2);
    shmq_message_init(&b[1], "TopicRO", "b1", 2);
    print_case("batch-readonly", shmq_send_batch(p, b, 2, br));
    one(p, "queue-any", "TopicE", NULL, NULL, SHMQ_QUEUE_ANY);
    one_async(p, "good-async", NULL, NULL);
    shmq_producer_close(p);
    return 0;
}
