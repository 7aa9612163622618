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

#include "format/message.h"
#include "shmq/producer.h"

#define BODY_HDR_MAX 80
#define LOG_BATCH    64
#define LOG_LINE_MAX 96

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

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
    int inflight;
    ack_log_t log;
} producer_state_t;

typedef struct pending {
    producer_state_t *ps;
    int64_t seq;
    struct pending *next_free;
} pending_t;

static pending_t *free_list;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* load_producer's body of message seq into buf (size >= BODY_HDR_MAX bytes); its length. */
static size_t make_body(char *buf, size_t size, int id, int64_t seq)
{
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char rest_hdr[64];
    uint64_t s = ((uint64_t)(uint32_t)id << 40) ^ (uint64_t)seq ^ 0x9E3779B97F4A7C15ULL;
    int hl = snprintf(rest_hdr, sizeof(rest_hdr), "%d %lld ", id, (long long)seq);
    /* "L1 " + 8 hex + " " = 12 bytes; then rest_hdr, payload length digits, "|". */
    size_t fixed = 12 + (size_t)hl + 12;
    size_t plen = size > fixed ? size - fixed : 0;
    char *rest = buf + 12;
    int n = snprintf(rest, BODY_HDR_MAX, "%s%zu|", rest_hdr, plen);
    char *pay = rest + n;

    for (size_t i = 0; i < plen; i++) {
        pay[i] = alpha[xorshift(&s) % (sizeof(alpha) - 1)];
    }
    uint32_t crc = shmq_crc32(rest, (size_t)n + plen);
    char head[16];
    snprintf(head, sizeof(head), "L1 %08x ", crc);
    memcpy(buf, head, 12);
    return 12 + (size_t)n + plen;
}

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
static void log_maybe_sync(producer_state_t *ps)
{
    ack_log_t *lg = &ps->log;
    if (lg->lines >= LOG_BATCH || (lg->lines > 0 && mono_ms() - lg->oldest_ms >= ps->sync_ms)) {
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
        lg->oldest_ms = mono_ms();
    }
    va_start(ap, fmt);
    n = vsnprintf(lg->buf + lg->len, LOG_LINE_MAX, fmt, ap);
    va_end(ap);
    if (n > 0 && n < LOG_LINE_MAX) {
        lg->len += (size_t)n;
        lg->lines++;
    }
}

static void report(producer_state_t *ps, int64_t seq, int err, const shmq_send_result_t *res)
{
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

static void async_cb(void *arg, int err, const shmq_send_result_t *res)
{
    pending_t *pd = arg;
    pd->ps->inflight--;
    report(pd->ps, pd->seq, err, res);
    pd->next_free = free_list;
    free_list = pd;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
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
    const char *store = NULL, *topic = NULL, *log_path = NULL;
    long long count = INT64_MAX, size = 100, size_max = -1, rate = 0;
    int window = 0, timeout = 10000, opt, rc;
    producer_state_t ps = {.id = -1, .sync_ms = 20, .log = {.fd = -1}};
    shmq_producer_t *p = NULL;
    shmq_producer_options_t po = {0};
    pending_t *pend = NULL;
    char *buf;
    uint64_t rnd;
    int64_t t0, seq;
    struct sigaction sa;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            store = optarg;
            break;
        case 't':
            topic = optarg;
            break;
        case 'i':
            ps.id = atoi(optarg);
            break;
        case 'l':
            log_path = optarg;
            break;
        case 'n':
            count = atoll(optarg);
            break;
        case 'b':
            size = atoll(optarg);
            break;
        case 'B':
            size_max = atoll(optarg);
            break;
        case 'a':
            window = atoi(optarg);
            break;
        case 'r':
            rate = atoll(optarg);
            break;
        case 'T':
            timeout = atoi(optarg);
            break;
        case 'S':
            ps.sync_ms = atoi(optarg);
            break;
        default:
            usage();
            return 2;
        }
    }
    if (!store || !topic || !log_path || ps.id < 0 || count < 0 || size < 0 || window < 0 ||
        window > 256 || rate < 0 || timeout <= 0 || ps.sync_ms < 0 || optind != argc) {
        usage();
        return 2;
    }
    if (size_max < size) {
        size_max = size;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    ps.log.fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (ps.log.fd < 0) {
        fprintf(stderr, "ack_producer %d: %s: %s\n", ps.id, log_path, strerror(errno));
        return 1;
    }
    buf = malloc((size_t)size_max + BODY_HDR_MAX);
    if (window > 0) {
        pend = calloc((size_t)window, sizeof(*pend));
        for (int i = 0; pend && i < window; i++) {
            pend[i].ps = &ps;
            pend[i].next_free = free_list;
            free_list = &pend[i];
        }
    }
    if (!buf || (window > 0 && !pend)) {
        fprintf(stderr, "ack_producer: out of memory\n");
        return 1;
    }
    po.send_timeout_ms = timeout;
    po.group = "ack_producer";
    rc = shmq_producer_open(store, &po, &p);
    if (rc < 0) {
        fprintf(stderr, "ack_producer %d: cannot open producer: %s: %s\n", ps.id, shmq_strerror(rc),
                shmq_error_detail());
        return 1;
    }
    rnd = 0x2545F4914F6CDD1DULL ^ (uint64_t)(ps.id + 1);
    t0 = mono_ms();
    for (seq = 0; seq < count && !stop_flag && !ps.log.failed; seq++) {
        size_t want = (size_t)size;
        shmq_message_t m;
        if (size_max > size) {
            want += (size_t)(xorshift(&rnd) % (uint64_t)(size_max - size + 1));
        }
        size_t len = make_body(buf, want < BODY_HDR_MAX ? BODY_HDR_MAX : want, ps.id, seq);
        shmq_message_init(&m, topic, buf, len);
        if (rate > 0) { /* pace: message seq is due at t0 + seq * 1000 / rate */
            int64_t due = t0 + seq * 1000 / rate, now = mono_ms();
            if (due - now > ps.sync_ms) {
                log_sync(&ps.log); /* do not hold answers over a long sleep */
            }
            if (due > now) {
                sleep_ms(due - now);
            }
        }
        if (window == 0) {
            shmq_send_result_t res;
            rc = shmq_send(p, &m, &res);
            report(&ps, seq, rc, &res);
        } else {
            int64_t w0 = mono_ms();
            while (!free_list && mono_ms() - w0 < (int64_t)timeout * 4) {
                shmq_producer_poll(p, 100);
                log_maybe_sync(&ps);
            }
            if (!free_list) {
                fprintf(stderr, "ack_producer %d: no completion for %d ms\n", ps.id, timeout * 4);
                break;
            }
            pending_t *pd = free_list;
            free_list = pd->next_free;
            pd->seq = seq;
            rc = shmq_send_async(p, &m, async_cb, pd);
            if (rc < 0) {
                pd->next_free = free_list;
                free_list = pd;
                report(&ps, seq, rc, NULL);
            } else {
                ps.inflight++;
            }
            shmq_producer_poll(p, 0);
        }
        log_maybe_sync(&ps);
        if (rc < 0 && rc != -ETIMEDOUT) {
            sleep_ms(20); /* store down: do not spin */
        }
    }
    if (window > 0) {
        shmq_producer_flush(p, timeout * 4);
        if (ps.inflight > 0) {
            fprintf(stderr, "ack_producer %d: %d requests unanswered\n", ps.id, ps.inflight);
        }
    }
    log_sync(&ps.log);
    shmq_producer_close(p);
    fprintf(stderr, "DONE %lld %lld %lld\n", (long long)ps.acked, (long long)ps.not_ok,
            (long long)ps.errors);
    close(ps.log.fd);
    free(buf);
    free(pend);
    return ps.log.failed ? 1 : 0;
}
