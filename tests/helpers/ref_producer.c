/*
 * ref_producer: sends the messages of the corruption campaign's reference
 * store (tests/torture/corruption.pl), each one different and each one
 * recognisable, so that a damaged store can be compared with it message by
 * message.
 *
 *   ref_producer --store DIR --topic T --first S --count N [--size B]
 *                [--delay-level L] [--deliver-after MS]
 *
 * Message <seq> (S <= seq < S + N) has the body "<T>/<seq>/" followed by
 * letters and digits from a generator seeded by seq, B + (seq * 37) % 512
 * bytes in all (default B 300), so that records differ in content and size;
 * tags "t<seq % 3>"; keys "k-<T>-<seq> tenth-<T>-<seq / 10>" (a key of its
 * own, and one shared by ten messages).  Queues are chosen round-robin by
 * the producer.  --delay-level and --deliver-after make delayed and timed
 * messages.  Sends are synchronous, one at a time: the same arguments on
 * the same store give the same layout.
 *
 * stdout, line-buffered: "ACK <topic> <queue> <queue offset> <phys offset>
 * <uniq key> <status>" per acknowledged message (the topic where it is held:
 * SCHEDULE_TOPIC_XXXX or rmq_sys_wheel_timer for a delayed or timed one), "ERR <seq> <error>" per
 * failed one, then "DONE <acked> <errors>".  Exit 0 when every send was
 * acknowledged with SEND_OK, 1 otherwise, 2 on bad arguments.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmq/producer.h"

#define BODY_MAX (64 * 1024)

static size_t make_body(char *b, const char *topic, long seq, long base)
{
    static const char abc[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    size_t len = (size_t)(base + (seq * 37) % 512);
    size_t n = (size_t)snprintf(b, BODY_MAX, "%s/%ld/", topic, seq);
    uint64_t x = 0x9E3779B97F4A7C15ULL * (uint64_t)(seq + 1);

    if (len > BODY_MAX) {
        len = BODY_MAX;
    }
    for (; n < len; n++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        b[n] = abc[(x >> 33) % (sizeof(abc) - 1)];
    }
    return n;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},
        {"topic", required_argument, NULL, 't'},
        {"first", required_argument, NULL, 'f'},
        {"count", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 'b'},
        {"delay-level", required_argument, NULL, 'l'},
        {"deliver-after", required_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    const char *store = NULL, *topic = NULL;
    long first = 0, count = 0, size = 300, level = 0, after = 0;
    int opt;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            store = optarg;
            break;
        case 't':
            topic = optarg;
            break;
        case 'f':
            first = strtol(optarg, NULL, 10);
            break;
        case 'n':
            count = strtol(optarg, NULL, 10);
            break;
        case 'b':
            size = strtol(optarg, NULL, 10);
            break;
        case 'l':
            level = strtol(optarg, NULL, 10);
            break;
        case 'a':
            after = strtol(optarg, NULL, 10);
            break;
        default:
            return 2;
        }
    }
    if (!store || !topic || first < 0 || count <= 0 || size < 32 || size > BODY_MAX || level < 0 ||
        after < 0) {
        fprintf(stderr, "usage: ref_producer --store DIR --topic T --first S --count N [--size B] "
                        "[--delay-level L] [--deliver-after MS]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    shmq_producer_options_t po;
    memset(&po, 0, sizeof(po));
    po.send_timeout_ms = 10000;
    shmq_producer_t *p;
    int rc = shmq_producer_open(store, &po, &p);
    if (rc < 0) {
        fprintf(stderr, "ref_producer: open %s: %s %s\n", store, shmq_strerror(rc),
                shmq_error_detail());
        return 1;
    }
    char *body = malloc(BODY_MAX);
    if (!body) {
        shmq_producer_close(p);
        return 1;
    }
    long acked = 0, errors = 0;
    for (long seq = first; seq < first + count; seq++) {
        char keys[600], tags[16];
        size_t blen = make_body(body, topic, seq, size);
        snprintf(keys, sizeof(keys), "k-%s-%ld tenth-%s-%ld", topic, seq, topic, seq / 10);
        snprintf(tags, sizeof(tags), "t%ld", seq % 3);
        shmq_message_t m;
        shmq_message_init(&m, topic, body, blen);
        m.keys = keys;
        m.tags = tags;
        m.delay_level = (int32_t)level;
        m.deliver_after_ms = after;
        shmq_send_result_t res;
        rc = shmq_send(p, &m, &res);
        if (rc == 0 && res.status == SHMQ_SEND_OK) {
            /* A delayed or timed message is held in a topic of the scheduler's. */
            const char *held = level > 0   ? "SCHEDULE_TOPIC_XXXX"
                               : after > 0 ? "rmq_sys_wheel_timer"
                                           : topic;
            printf("ACK %s %d %lld %lld %s %d\n", held, (int)res.queue_id,
                   (long long)res.queue_offset, (long long)res.phys_offset, res.uniq_key,
                   res.status);
            acked++;
        } else {
            printf("ERR %ld %s\n", seq, rc < 0 ? shmq_strerror(rc) : "not SEND_OK");
            errors++;
        }
    }
    printf("DONE %ld %ld\n", acked, errors);
    free(body);
    shmq_producer_close(p);
    return errors ? 1 : 0;
}
