/*
 * load_consumer: a test consumer that checks every message it is given.
 *
 *   load_consumer --store DIR --topic T --group G [--member I/N] [--idle-ms MS]
 *                 [--max-ms MS] [--stop-file PATH]
 *
 * Pulls the queues q of topic T with q % N == I (default: all) as group G,
 * from the group's committed offsets (or the queue's min offset), commits
 * after each batch, and checks each message:
 *   - topic and queue id are the ones pulled;
 *   - queue offsets of a queue are contiguous: the first is the start
 *     offset, each next one is the previous + 1 (no gap, no duplicate);
 *   - the body is a load_producer body ("L1 <crc> <id> <seq> <len>|<payload>")
 *     whose CRC-32 and length match (no torn record);
 *   - the message has a UNIQ_KEY.
 *
 * stdout (line-buffered): "MSG <queue> <queue offset> <uniq key> <id> <seq>"
 * per message, "BAD <queue> <queue offset> <reason>" per failed check, and
 * "DONE <messages> <bad>" at the end.  Stops when nothing arrived for
 * --idle-ms (default 3000; with --stop-file, counted only once PATH exists:
 * the test creates it when its producers are done), after --max-ms in all,
 * or at SIGTERM/SIGINT.
 * Exit 0 when every check passed, 1 otherwise, 2 on bad arguments.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "shmq/consumer.h"

#include "common/helper_util.h"

#define BATCH    64
#define SLICE_MS 100

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},     {"topic", required_argument, NULL, 't'},
        {"group", required_argument, NULL, 'g'},     {"member", required_argument, NULL, 'm'},
        {"idle-ms", required_argument, NULL, 'i'},   {"max-ms", required_argument, NULL, 'x'},
        {"stop-file", required_argument, NULL, 'f'}, {NULL, 0, NULL, 0},
    };
    const char *store = NULL, *topic = NULL, *group = NULL, *stop_file = NULL;
    int member = 0, members = 1, opt, rc, nq = 0;
    int64_t idle_ms = 3000, max_ms = 600000, t_end, deadline, got = 0, bad = 0;
    int64_t *next = NULL;
    shmq_consumer_t *c = NULL;
    shmq_pull_result_t *pr;
    int empty = 0, q = 0;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            store = optarg;
            break;
        case 't':
            topic = optarg;
            break;
        case 'g':
            group = optarg;
            break;
        case 'm':
            if (sscanf(optarg, "%d/%d", &member, &members) != 2 || members < 1 || member < 0 ||
                member >= members) {
                fprintf(stderr, "load_consumer: --member I/N with 0 <= I < N\n");
                return 2;
            }
            break;
        case 'i':
            idle_ms = atoll(optarg);
            break;
        case 'x':
            max_ms = atoll(optarg);
            break;
        case 'f':
            stop_file = optarg;
            break;
        default:
            fprintf(stderr, "usage: load_consumer --store DIR --topic T --group G [--member I/N] "
                            "[--idle-ms MS] [--max-ms MS] [--stop-file PATH]\n");
            return 2;
        }
    }
    if (!store || !topic || !group || optind != argc) {
        fprintf(stderr, "load_consumer: --store, --topic and --group are required\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    helper_stop_on_signals();
    pr = malloc(sizeof(*pr));
    if (!pr) {
        return 1;
    }
    rc = shmq_consumer_open(store, group, &c);
    if (rc < 0) {
        fprintf(stderr, "load_consumer: cannot open consumer: %s: %s\n", shmq_strerror(rc),
                shmq_error_detail());
        return 1;
    }
    t_end = shmq_mono_ms() + max_ms;
    deadline = shmq_mono_ms() + idle_ms;
    while (!helper_stop) {
        int64_t now = shmq_mono_ms();
        if (stop_file && access(stop_file, F_OK) != 0) {
            deadline = now + idle_ms; /* the producers still run: idle time does not count */
        }
        if (now >= deadline || now >= t_end) {
            break;
        }
        if (q == 0) {
            int n = shmq_topic_queue_count(c, topic);
            if (n == SHMQ_E_NOT_FOUND) {
                helper_sleep_ms(50);
                continue;
            }
            if (n < 0) {
                fprintf(stderr, "load_consumer: queue count: %s\n", shmq_strerror(n));
                bad++;
                break;
            }
            if (n > nq) {
                int64_t *nn = realloc(next, (size_t)n * sizeof(*nn));
                if (!nn) {
                    return 1;
                }
                next = nn;
                for (int i = nq; i < n; i++) {
                    int64_t min, max;
                    if (shmq_fetch_offset(c, topic, i, &next[i]) < 0) {
                        next[i] = shmq_queue_offsets(c, topic, i, &min, &max) == 0 ? min : 0;
                    }
                }
                nq = n;
            }
        }
        int mine = (nq - member + members - 1) / members; /* queues this member pulls */
        if (mine <= 0) {
            helper_sleep_ms(50); /* no queue for this member (yet) */
            q = 0;
            continue;
        }
        if (q % members != member) {
            q = (q + 1) % nq;
            continue;
        }
        int wait = empty >= mine ? (int)(deadline - now < SLICE_MS ? deadline - now : SLICE_MS) : 0;
        rc = shmq_pull(c, topic, q, next[q], BATCH, NULL, wait, pr);
        if (rc < 0) {
            fprintf(stderr, "load_consumer: pull %s/%d at %lld: %s: %s\n", topic, q,
                    (long long)next[q], shmq_strerror(rc), shmq_error_detail());
            bad++;
            break;
        }
        if (pr->status == SHMQ_PULL_FOUND && pr->count > 0) {
            for (size_t i = 0; i < pr->count; i++) {
                const shmq_msg_view_t *v = &pr->msgs[i];
                const char *why = NULL;
                size_t ulen = 0;
                const char *uk = shmq_msg_property(v, "UNIQ_KEY", &ulen);
                int id = -1;
                long long seq = -1;
                if (v->queue_offset != next[q]) {
                    printf("BAD %d %lld offset %lld expected (gap or duplicate)\n", q,
                           (long long)v->queue_offset, (long long)next[q]);
                    bad++;
                }
                if (v->topic_len != strlen(topic) || memcmp(v->topic, topic, v->topic_len) ||
                    v->queue_id != q) {
                    why = "wrong topic or queue";
                } else if (!uk || ulen == 0 || ulen >= 64) {
                    why = "no UNIQ_KEY";
                } else {
                    why = helper_load_body_check(v->body, v->body_len, &id, &seq);
                }
                if (why) {
                    printf("BAD %d %lld %s\n", q, (long long)v->queue_offset, why);
                    bad++;
                } else {
                    printf("MSG %d %lld %.*s %d %lld\n", q, (long long)v->queue_offset, (int)ulen,
                           uk, id, seq);
                }
                next[q] = v->queue_offset + 1;
                got++;
            }
            if (pr->next_offset > next[q]) {
                printf("BAD %d %lld next offset %lld skips units\n", q, (long long)next[q],
                       (long long)pr->next_offset);
                bad++;
                next[q] = pr->next_offset;
            }
            rc = shmq_commit_offset(c, topic, q, next[q]);
            if (rc < 0) {
                fprintf(stderr, "load_consumer: commit: %s\n", shmq_strerror(rc));
                bad++;
            }
            empty = 0;
            deadline = shmq_mono_ms() + idle_ms;
        } else {
            if (pr->status == SHMQ_PULL_OFFSET_TOO_SMALL ||
                pr->status == SHMQ_PULL_OFFSET_OVERFLOW_BADLY ||
                pr->status == SHMQ_PULL_NO_MATCHED_MSG) {
                printf("BAD %d %lld pull status %s\n", q, (long long)next[q],
                       shmq_pull_status_name(pr->status));
                bad++;
                next[q] = pr->next_offset;
            }
            empty++;
        }
        q = (q + 1) % nq;
    }
    printf("DONE %lld %lld\n", (long long)got, (long long)bad);
    shmq_consumer_close(c);
    free(next);
    free(pr);
    return bad == 0 ? 0 : 1;
}
