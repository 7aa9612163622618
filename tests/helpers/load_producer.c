/*
 * load_producer: a test producer whose messages can be checked end to end.
 *
 *   load_producer --store DIR --topic T --id P --count N [--size B] [--size-max B2]
 *                 [--async W] [--rate R] [--tags TAG] [--timeout MS] [--stamp]
 *                 [--open-retry MS]
 *
 * Sends N messages (sizes B..B2 bytes, pseudo-random per message) through
 * the producer API, synchronously or with up to W requests in flight, with
 * --rate at most R a second (one that fell behind, refused or stalled, goes on
 * at R from where it is, never in a burst to catch up).  Each
 * body is printable text that encodes the producer id and the sequence
 * number and carries a CRC-32 of everything after it:
 *
 *   "L1 <crc32 as 8 hex> <id> <seq> <payload length>|<payload>"
 *
 * crc32 (zlib's) covers "<id> <seq> <payload length>|<payload>", so a
 * consumer (load_consumer, or a script over `shmqctl dump --json`) finds a
 * torn or mixed-up body.
 *
 * stdout, line-buffered, one line per finished send:
 *   ACK <uniq key> <id> <seq> <queue> <queue offset> <phys offset>
 *   ERR <id> <seq> <error code> <error text: the library's detail>
 * and, before the first ACK line, "FIRST_ACK <wall clock ms>" (the failover
 * tests time a new master's first acknowledged send from it); then
 * "DONE <acked> <errors>".  With --stamp each ACK and ERR line starts
 * with the wall clock (ms since the epoch) when the answer was taken, an
 * upper bound of when the store answered: "<ms> ACK ...".  SIGTERM/SIGINT
 * stop after the current message (in-flight requests are still awaited).
 * --open-retry MS: while the store refuses the producer (a slave about to be
 * promoted, a store not running), try again every 5 ms for up to MS before
 * giving up.  Exit 0 when every send
 * made was acknowledged (all N, or up to the stop signal), 1 otherwise, 2 on
 * bad arguments.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "shmq/producer.h"

#include "common/helper_util.h"

typedef struct load {
    int id;
    bool stamp; /* --stamp */
    int64_t acked;
    bool first_shown;
    int64_t errors;
} load_t;

static void report(void *owner, int64_t seq, int err, const shmq_send_result_t *res)
{
    load_t *ld = owner;
    if (ld->stamp) {
        printf("%lld ", (long long)shmq_now_ms());
    }
    if (err == 0 && res->status == SHMQ_SEND_OK) {
        ld->acked++;
        if (!ld->first_shown) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            printf("FIRST_ACK %lld\n", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
            ld->first_shown = true;
        }
        printf("ACK %s %d %lld %d %lld %lld\n", res->uniq_key, ld->id, (long long)seq,
               (int)res->queue_id, (long long)res->queue_offset, (long long)res->phys_offset);
    } else {
        ld->errors++;
        int code = err < 0 ? err : res->status;
        printf("ERR %d %lld %d %s\n", ld->id, (long long)seq, code,
               err < 0 ? (shmq_error_detail()[0] ? shmq_error_detail() : shmq_strerror(err))
                       : "status not SEND_OK");
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: load_producer --store DIR --topic T --id P --count N [--size B]\n"
                    "         [--size-max B2] [--async W] [--rate R] [--tags TAG] [--timeout MS]\n"
                    "         [--open-retry MS] [--stamp]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},
        {"topic", required_argument, NULL, 't'},
        {"id", required_argument, NULL, 'i'},
        {"count", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 'b'},
        {"size-max", required_argument, NULL, 'B'},
        {"async", required_argument, NULL, 'a'},
        {"rate", required_argument, NULL, 'r'},
        {"tags", required_argument, NULL, 'g'},
        {"timeout", required_argument, NULL, 'T'},
        {"open-retry", required_argument, NULL, 'R'},
        {"stamp", no_argument, NULL, 'S'},
        {NULL, 0, NULL, 0},
    };
    helper_load_args_t a = {.count = -1, .size = 100, .size_max = -1, .timeout = 3000};
    const char *tags = NULL;
    long long open_retry = 0;
    int opt, rc;
    load_t ld = {0};
    shmq_producer_t *p = NULL;
    shmq_producer_options_t po = {0};
    helper_sender_t snd;
    helper_load_gen_t gen;
    char *buf;
    int64_t t0, seq;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'g') {
            tags = optarg;
        } else if (opt == 'R') {
            open_retry = atoll(optarg);
        } else if (opt == 'S') {
            ld.stamp = true;
        } else if (!helper_load_option(&a, opt, optarg)) {
            usage();
            return 2;
        }
    }
    if (!a.store || !a.topic || a.count < 0 || a.size < 0 || a.window < 0 || a.window > 256 ||
        optind != argc) {
        usage();
        return 2;
    }
    ld.id = (int)a.id;
    setvbuf(stdout, NULL, _IOLBF, 0);
    helper_stop_on_signals();

    helper_load_gen_init(&gen, ld.id, a.size, a.size_max);
    buf = malloc(helper_load_gen_buf_size(&gen));
    rc = helper_sender_init(&snd, (int)a.window, a.timeout * 4, report, &ld);
    if (!buf || rc < 0) {
        fprintf(stderr, "load_producer: out of memory\n");
        return 1;
    }
    po.send_timeout_ms = (int)a.timeout;
    po.group = "load_producer";
    rc = shmq_producer_open(a.store, &po, &p);
    /* A slave refuses producers (-EROFS) until it is promoted; a store killed and not yet
     * started again is not found: with --open-retry both are waited out. */
    for (int64_t until = shmq_mono_ms() + open_retry;
         rc < 0 && !helper_stop && shmq_mono_ms() < until;) {
        helper_sleep_ms(5);
        rc = shmq_producer_open(a.store, &po, &p);
    }
    if (rc < 0) {
        fprintf(stderr, "load_producer %d: cannot open producer: %s: %s\n", ld.id,
                shmq_strerror(rc), shmq_error_detail());
        return 1;
    }
    t0 = shmq_mono_ms();
    for (seq = 0; seq < a.count && !helper_stop; seq++) {
        shmq_message_t m;
        size_t len = helper_load_gen_next(&gen, buf, seq);
        shmq_message_init(&m, a.topic, buf, len);
        m.tags = tags;
        if (a.rate > 0) { /* pace: message seq is due at t0 + seq * 1000 / rate */
            int64_t due = t0 + seq * 1000 / a.rate, now = shmq_mono_ms();
            if (due > now) {
                helper_sleep_ms(due - now);
            } else if (now - due > 100) {
                /* Behind (refusals, a stall): on at the rate from here, not a burst to
                 * catch up, which would write faster than the test asked. */
                t0 = now - seq * 1000 / a.rate;
            }
        }
        rc = helper_sender_send(&snd, p, &m, seq);
        if (rc == HELPER_SEND_STUCK) {
            fprintf(stderr, "load_producer %d: no completion for %d ms\n", ld.id,
                    (int)a.timeout * 4);
            break;
        }
        if (rc < 0 && rc != -ETIMEDOUT) {
            helper_sleep_ms(20); /* store down: do not spin */
        }
    }
    if (helper_sender_flush(&snd, p) > 0) {
        fprintf(stderr, "load_producer %d: %d requests unanswered\n", ld.id, snd.inflight);
        ld.errors += snd.inflight;
    }
    shmq_producer_close(p);
    printf("DONE %lld %lld\n", (long long)ld.acked, (long long)ld.errors);
    free(buf);
    helper_sender_free(&snd);
    return ld.errors == 0 ? 0 : 1; /* stopped by a signal is fine: every send was answered */
}
