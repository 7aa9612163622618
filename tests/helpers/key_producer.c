/*
 * key_producer: a test producer of messages with several KEYS, for the
 * index tests.
 *
 *   key_producer --store DIR --topic T --id P --count N [--rate R] [--timeout MS]
 *
 * Message <seq> gets KEYS "k<P>-<seq> multi-<P> Aa" (even seq) or
 * "k<P>-<seq> multi-<P> BB" (odd seq: "Aa" and "BB" have equal Java
 * hashCodes), so it is indexed four times with its UNIQ_KEY.  Sends are
 * synchronous, at most R a second (0: as fast as acknowledged).
 *
 * stdout, line-buffered: "ACK <uniq key> k<P>-<seq> <phys offset>" per
 * acknowledged message, "ERR <seq> <error>" per failed one, then
 * "DONE <acked> <errors>".  SIGTERM/SIGINT stop after the current message.
 * Exit 0 when every send made was acknowledged, 1 otherwise, 2 on bad
 * arguments.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shmq/producer.h"

#include "common/helper_util.h"

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},
        {"topic", required_argument, NULL, 't'},
        {"id", required_argument, NULL, 'i'},
        {"count", required_argument, NULL, 'n'},
        {"rate", required_argument, NULL, 'r'},
        {"timeout", required_argument, NULL, 'T'},
        {NULL, 0, NULL, 0},
    };
    helper_load_args_t a = {.timeout = 5000};
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (!helper_load_option(&a, opt, optarg)) {
            return 2;
        }
    }
    if (!a.store || !a.topic || a.count <= 0 || a.rate < 0 || a.timeout <= 0) {
        fprintf(stderr, "usage: key_producer --store DIR --topic T --id P --count N [--rate R] "
                        "[--timeout MS]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    helper_stop_on_signals();
    shmq_producer_options_t po;
    memset(&po, 0, sizeof(po));
    po.send_timeout_ms = (int)a.timeout;
    shmq_producer_t *p;
    int rc = shmq_producer_open(a.store, &po, &p);
    if (rc < 0) {
        fprintf(stderr, "key_producer: open %s: %s %s\n", a.store, shmq_strerror(rc),
                shmq_error_detail());
        return 1;
    }
    long acked = 0, errors = 0;
    int64_t start = helper_mono_ns();
    for (long long seq = 0; seq < a.count && !helper_stop; seq++) {
        if (a.rate > 0) {
            int64_t due = start + seq * 1000000000LL / a.rate;
            int64_t wait = due - helper_mono_ns();
            if (wait > 0) {
                struct timespec ts = {wait / 1000000000, wait % 1000000000};
                nanosleep(&ts, NULL);
            }
        }
        char keys[128], body[64];
        snprintf(keys, sizeof(keys), "k%lld-%lld multi-%lld %s", a.id, seq, a.id,
                 seq % 2 ? "BB" : "Aa");
        int blen = snprintf(body, sizeof(body), "key message %lld-%lld", a.id, seq);
        shmq_message_t m;
        shmq_message_init(&m, a.topic, body, (size_t)blen);
        m.keys = keys;
        shmq_send_result_t res;
        rc = shmq_send(p, &m, &res);
        if (rc == 0) {
            printf("ACK %s k%lld-%lld %lld\n", res.uniq_key, a.id, seq, (long long)res.phys_offset);
            acked++;
        } else {
            printf("ERR %lld %s\n", seq, shmq_strerror(rc));
            errors++;
        }
    }
    printf("DONE %ld %ld\n", acked, errors);
    shmq_producer_close(p);
    return errors ? 1 : 0;
}
