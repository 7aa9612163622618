/*
 * topic_change_send: one producer handle sends to a queue of a topic, waits
 * while the test changes the topic's write queues, and sends to the same
 * queue again, so the test can check that a producer sees a topic's new
 * queue count (its cached copy of the topic entry is not used after the
 * entry changed).
 *
 *   topic_change_send STORE TOPIC QUEUE
 *
 * stdout: "before <rc>", then "ready"; it then reads one line from stdin
 * (the test has changed the topic) and prints "after <rc> <queue id>".
 * Exit 0 when both sends ran, 2 on bad usage or no producer.
 */
#include <stdio.h>
#include <stdlib.h>

#include "shmq/errors.h"
#include "shmq/producer.h"

static int send_to(shmq_producer_t *p, const char *topic, int32_t qid, shmq_send_result_t *res)
{
    shmq_message_t m;
    shmq_message_init(&m, topic, "body", 4);
    m.queue_id = qid;
    return shmq_send(p, &m, res);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: topic_change_send STORE TOPIC QUEUE\n");
        return 2;
    }
    shmq_producer_t *p;
    int rc = shmq_producer_open(argv[1], NULL, &p);
    if (rc < 0) {
        fprintf(stderr, "producer: %s\n", shmq_error_detail());
        return 2;
    }
    int32_t qid = (int32_t)atoi(argv[3]);
    shmq_send_result_t res;
    /* A send to queue 0 first: the topic entry is copied and kept. */
    rc = send_to(p, argv[2], 0, &res);
    printf("first %d\n", rc);
    rc = send_to(p, argv[2], qid, &res);
    printf("before %d\nready\n", rc);
    fflush(stdout);
    char line[64];
    if (fgets(line, sizeof(line), stdin) == NULL) {
        shmq_producer_close(p);
        return 2;
    }
    rc = send_to(p, argv[2], qid, &res);
    printf("after %d %d\n", rc, rc == 0 ? (int)res.queue_id : -1);
    fflush(stdout);
    shmq_producer_close(p);
    return 0;
}
