/*
 * ack_producer: a test producer that logs every acknowledgement durably to a
 * file of its own, for the power-loss test (tests/crash/power_loss.t).
 *
 *   ack_producer --store DIR --topic T --id P --log FILE [--count N] [--size B]
 *                [--size-max B2] [--async W] [--rate R] [--timeout MS] [--sync-ms MS]
 *
 * Sends up to N messages (default: until stopped) through the producer API,
 * synchronously or with up to W requests in flight, paced at R per second
 * (0: as fast as possible).  Bodies are load_producer's, so the same checks
 * read them:
 *
 *   "L1 <crc32 as 8 hex> <id> <seq> <payload length>|<payload>"
 *
 * The log (FILE, created or appended to; it belongs on a disk the test does
 * not cut) gets one line per finished send:
 *
 *   A <id> <seq> <queue> <queue offset> <phys offset>   SEND_OK: acknowledged
 *   F <id> <seq> <status>                               stored, not SEND_OK
 *   E <id> <seq> <error code>                           error (outcome unknown
 *                                                       for a timeout)
 *
 * Lines are buffered and written with write() then fdatasync() once 64 are
 * pending or the oldest waited --sync-ms (default 20) ms, before a pacing
 * sleep longer than that, and at the end.  So a line in the log means the
 * store answered; an answer not yet in the log is simply not counted.  A
 * SIGSTOP at any point leaves only whole lines.
 *
 * stderr: "DONE <acked> <not ok> <errors>".  SIGTERM/SIGINT stop after the
 * current message (requests in flight are awaited).  Exit 0 unless the log
 * cannot be written (1) or the arguments are bad (2); send errors are logged,
 * not fatal: the store may be restarted under the producer.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "shmq/producer.h"

#include "common/helper_util.h"

#define LOG_BATCH    64
#define LOG_LINE_MAX 96

typedef struct ack_log {
    int fd;
    char buf[LOG_BATCH * LOG_LINE_MAX];
    size_t len;
    int lines;
    int64_t oldest_ms; /* when the oldest pending line was added */
    bool failed;
} ack_log_t;

typedef struct producer_state {
    int id;
    int sync_ms;
    int64_t acked, not_ok, errors;
    ack_log_t log;
} producer_state_t;

/* Write the pending lines and fdatasync the log.  Any failure is final. */
static void log_sync(ack_log_t *lg)
{
    size_t off = 0;
    if (lg->len == 0 || lg->failed) {
        return;
    }
    while (off < lg->len) {
        ssize_t w = write(lg->fd, lg->buf + off, lg->len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            perror("ack_producer: write log");
            lg->failed = true;
            return;
        }
        off += (size_t)w;
    }
    if (fdatasync(lg->fd) != 0) {
        perror("ack_producer: fdatasync log");
        lg->failed = true;
        return;
    }
    lg->len = 0;
    lg->lines = 0;
}

/* Sync when the batch is full or its oldest line waited sync_ms. */
static void log_maybe_sync(void *owner)
{
    producer_state_t *ps = owner;
    ack_log_t *lg = &ps->log;
    if (lg->lines >= LOG_BATCH ||
        (lg->lines > 0 && shmq_mono_ms() - lg->oldest_ms >= ps->sync_ms)) {
        log_sync(lg);
    }
}

static void log_line(producer_state_t *ps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void log_line(producer_state_t *ps, const char *fmt, ...)
{
    ack_log_t *lg = &ps->log;
    va_list ap;
    int n;
    if (lg->lines >= LOG_BATCH) {
        log_sync(lg);
    }
    if (lg->lines == 0) {
        lg->oldest_ms = shmq_mono_ms();
    }
    va_start(ap, fmt);
    n = vsnprintf(lg->buf + lg->len, LOG_LINE_MAX, fmt, ap);
    va_end(ap);
    if (n > 0 && n < LOG_LINE_MAX) {
        lg->len += (size_t)n;
        lg->lines++;
    }
}

static void report(void *owner, int64_t seq, int err, const shmq_send_result_t *res)
{
    producer_state_t *ps = owner;
    if (err == 0 && res->status == SHMQ_SEND_OK) {
        ps->acked++;
        log_line(ps, "A %d %lld %d %lld %lld\n", ps->id, (long long)seq, (int)res->queue_id,
                 (long long)res->queue_offset, (long long)res->phys_offset);
    } else if (err == 0) {
        ps->not_ok++;
        log_line(ps, "F %d %lld %d\n", ps->id, (long long)seq, res->status);
    } else {
        ps->errors++;
        log_line(ps, "E %d %lld %d\n", ps->id, (long long)seq, err);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: ack_producer --store DIR --topic T --id P --log FILE [--count N]\n"
                    "         [--size B] [--size-max B2] [--async W] [--rate R] [--timeout MS]\n"
                    "         [--sync-ms MS]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},    {"topic", required_argument, NULL, 't'},
        {"id", required_argument, NULL, 'i'},       {"log", required_argument, NULL, 'l'},
        {"count", required_argument, NULL, 'n'},    {"size", required_argument, NULL, 'b'},
        {"size-max", required_argument, NULL, 'B'}, {"async", required_argument, NULL, 'a'},
        {"rate", required_argument, NULL, 'r'},     {"timeout", required_argument, NULL, 'T'},
        {"sync-ms", required_argument, NULL, 'S'},  {NULL, 0, NULL, 0},
    };
    helper_load_args_t a = {
        .id = -1, .count = INT64_MAX, .size = 100, .size_max = -1, .timeout = 10000};
    const char *log_path = NULL;
    int opt, rc;
    producer_state_t ps = {.sync_ms = 20, .log = {.fd = -1}};
    shmq_producer_t *p = NULL;
    shmq_producer_options_t po = {0};
    helper_sender_t snd;
    helper_load_gen_t gen;
    char *buf;
    int64_t t0, seq;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'l') {
            log_path = optarg;
        } else if (opt == 'S') {
            ps.sync_ms = atoi(optarg);
        } else if (!helper_load_option(&a, opt, optarg)) {
            usage();
            return 2;
        }
    }
    if (!a.store || !a.topic || !log_path || a.id < 0 || a.count < 0 || a.size < 0 ||
        a.window < 0 || a.window > 256 || a.rate < 0 || a.timeout <= 0 || ps.sync_ms < 0 ||
        optind != argc) {
        usage();
        return 2;
    }
    ps.id = (int)a.id;
    helper_stop_on_signals();

    ps.log.fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (ps.log.fd < 0) {
        fprintf(stderr, "ack_producer %d: %s: %s\n", ps.id, log_path, strerror(errno));
        return 1;
    }
    helper_load_gen_init(&gen, ps.id, a.size, a.size_max);
    buf = malloc(helper_load_gen_buf_size(&gen));
    rc = helper_sender_init(&snd, (int)a.window, a.timeout * 4, report, &ps);
    if (!buf || rc < 0) {
        fprintf(stderr, "ack_producer: out of memory\n");
        return 1;
    }
    snd.waiting = log_maybe_sync;
    po.send_timeout_ms = (int)a.timeout;
    po.group = "ack_producer";
    rc = shmq_producer_open(a.store, &po, &p);
    if (rc < 0) {
        fprintf(stderr, "ack_producer %d: cannot open producer: %s: %s\n", ps.id, shmq_strerror(rc),
                shmq_error_detail());
        return 1;
    }
    t0 = shmq_mono_ms();
    for (seq = 0; seq < a.count && !helper_stop && !ps.log.failed; seq++) {
        shmq_message_t m;
        size_t len = helper_load_gen_next(&gen, buf, seq);
        shmq_message_init(&m, a.topic, buf, len);
        if (a.rate > 0) { /* pace: message seq is due at t0 + seq * 1000 / rate */
            int64_t due = t0 + seq * 1000 / a.rate, now = shmq_mono_ms();
            if (due - now > ps.sync_ms) {
                log_sync(&ps.log); /* do not hold answers over a long sleep */
            }
            if (due > now) {
                helper_sleep_ms(due - now);
            }
        }
        rc = helper_sender_send(&snd, p, &m, seq);
        if (rc == HELPER_SEND_STUCK) {
            fprintf(stderr, "ack_producer %d: no completion for %d ms\n", ps.id,
                    (int)a.timeout * 4);
            break;
        }
        if (a.window > 0) {
            shmq_producer_poll(p, 0);
        }
        log_maybe_sync(&ps);
        if (rc < 0 && rc != -ETIMEDOUT) {
            helper_sleep_ms(20); /* store down: do not spin */
        }
    }
    if (helper_sender_flush(&snd, p) > 0) {
        fprintf(stderr, "ack_producer %d: %d requests unanswered\n", ps.id, snd.inflight);
    }
    log_sync(&ps.log);
    shmq_producer_close(p);
    fprintf(stderr, "DONE %lld %lld %lld\n", (long long)ps.acked, (long long)ps.not_ok,
            (long long)ps.errors);
    close(ps.log.fd);
    free(buf);
    helper_sender_free(&snd);
    return ps.log.failed ? 1 : 0;
}
