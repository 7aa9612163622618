/*
 * load_producer: a test producer whose messages can be checked end to end.
 *
 *   load_producer --store DIR --topic T --id P --count N [--size B] [--size-max B2]
 *                 [--async W] [--rate R] [--tags TAG] [--timeout MS]
 *
 * Sends N messages (sizes B..B2 bytes, pseudo-random per message) through
 * the producer API, synchronously or with up to W requests in flight.  Each
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
 * then "DONE <acked> <errors>".  SIGTERM/SIGINT stop after the current
 * message (in-flight requests are still awaited).  Exit 0 when every send
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

#include "format/message.h"
#include "shmq/producer.h"

#define LOAD_HDR_MAX 80

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

typedef struct load {
    int id;
    int64_t acked;
    int64_t errors;
    int inflight;
} load_t;

typedef struct pending {
    load_t *ld;
    int64_t seq;
    struct pending *next_free;
} pending_t;

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Build the body of message seq into buf (size bytes at least LOAD_HDR_MAX); returns its length. */
static size_t load_body(char *buf, size_t size, int id, int64_t seq)
{
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char rest_hdr[64];
    uint64_t s = ((uint64_t)(uint32_t)id << 40) ^ (uint64_t)seq ^ 0x9E3779B97F4A7C15ULL;
    int hl = snprintf(rest_hdr, sizeof(rest_hdr), "%d %lld ", id, (long long)seq);
    /* "L1 " + 8 hex + " " = 12 bytes; then rest_hdr, payload length digits, "|". */
    size_t fixed = 12 + (size_t)hl + 12;
    size_t plen = size > fixed ? size - fixed : 0;
    char *rest = buf + 12;
    int n = snprintf(rest, LOAD_HDR_MAX, "%s%zu|", rest_hdr, plen);
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

static void report(load_t *ld, int64_t seq, int err, const shmq_send_result_t *res)
{
    if (err == 0 && res->status == SHMQ_SEND_OK) {
        ld->acked++;
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

static pending_t *free_list;

static void async_cb(void *arg, int err, const shmq_send_result_t *res)
{
    pending_t *pd = arg;
    pd->ld->inflight--;
    report(pd->ld, pd->seq, err, res);
    pd->next_free = free_list;
    free_list = pd;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: load_producer --store DIR --topic T --id P --count N [--size B]\n"
            "         [--size-max B2] [--async W] [--rate R] [--tags TAG] [--timeout MS]\n");
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
        {NULL, 0, NULL, 0},
    };
    const char *store = NULL, *topic = NULL, *tags = NULL;
    long long count = -1, size = 100, size_max = -1, rate = 0;
    int window = 0, timeout = 3000, opt, rc;
    load_t ld = {0};
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
            ld.id = atoi(optarg);
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
        case 'g':
            tags = optarg;
            break;
        case 'T':
            timeout = atoi(optarg);
            break;
        default:
            usage();
            return 2;
        }
    }
    if (!store || !topic || count < 0 || size < 0 || window < 0 || window > 256 || optind != argc) {
        usage();
        return 2;
    }
    if (size_max < size) {
        size_max = size;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    buf = malloc((size_t)size_max + LOAD_HDR_MAX);
    if (window > 0) {
        pend = calloc((size_t)window, sizeof(*pend));
        for (int i = 0; pend && i < window; i++) {
            pend[i].ld = &ld;
            pend[i].next_free = free_list;
            free_list = &pend[i];
        }
    }
    if (!buf || (window > 0 && !pend)) {
        fprintf(stderr, "load_producer: out of memory\n");
        return 1;
    }
    po.send_timeout_ms = timeout;
    po.group = "load_producer";
    rc = shmq_producer_open(store, &po, &p);
    if (rc < 0) {
        fprintf(stderr, "load_producer %d: cannot open producer: %s: %s\n", ld.id,
                shmq_strerror(rc), shmq_error_detail());
        return 1;
    }
    rnd = 0x2545F4914F6CDD1DULL ^ (uint64_t)(ld.id + 1);
    t0 = mono_ms();
    for (seq = 0; seq < count && !stop_flag; seq++) {
        size_t want = (size_t)size;
        shmq_message_t m;
        if (size_max > size) {
            want += (size_t)(xorshift(&rnd) % (uint64_t)(size_max - size + 1));
        }
        size_t len = load_body(buf, want < LOAD_HDR_MAX ? LOAD_HDR_MAX : want, ld.id, seq);
        shmq_message_init(&m, topic, buf, len);
        m.tags = tags;
        if (rate > 0) { /* pace: message seq is due at t0 + seq * 1000 / rate */
            int64_t due = t0 + seq * 1000 / rate, now = mono_ms();
            if (due > now) {
                struct timespec ts = {(due - now) / 1000, (long)((due - now) % 1000) * 1000000L};
                nanosleep(&ts, NULL);
            }
        }
        if (window == 0) {
            shmq_send_result_t res;
            rc = shmq_send(p, &m, &res);
            report(&ld, seq, rc, &res);
        } else {
            int64_t w0 = mono_ms();
            while (!free_list && mono_ms() - w0 < (int64_t)timeout * 4) {
                shmq_producer_poll(p, 100);
            }
            if (!free_list) {
                fprintf(stderr, "load_producer %d: no completion for %d ms\n", ld.id, timeout * 4);
                break;
            }
            pending_t *pd = free_list;
            free_list = pd->next_free;
            pd->seq = seq;
            rc = shmq_send_async(p, &m, async_cb, pd);
            if (rc < 0) {
                pd->next_free = free_list;
                free_list = pd;
                report(&ld, seq, rc, NULL);
            } else {
                ld.inflight++;
            }
        }
        if (rc < 0 && rc != -ETIMEDOUT) {
            struct timespec ts = {0, 20 * 1000000L}; /* store down: do not spin */
            nanosleep(&ts, NULL);
        }
    }
    if (window > 0) {
        shmq_producer_flush(p, timeout * 4);
        if (ld.inflight > 0) {
            fprintf(stderr, "load_producer %d: %d requests unanswered\n", ld.id, ld.inflight);
            ld.errors += ld.inflight;
        }
    }
    shmq_producer_close(p);
    printf("DONE %lld %lld\n", (long long)ld.acked, (long long)ld.errors);
    free(buf);
    free(pend);
    return ld.errors == 0 ? 0 : 1; /* stopped by a signal is fine: every send was answered */
}
