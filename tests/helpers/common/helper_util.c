/* helper_util: the code several test helpers share (see helper_util.h). */
#include "helper_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "format/message.h"

/* ---- stopping and waiting ------------------------------------------------------------ */

volatile sig_atomic_t helper_stop;

static void on_stop_signal(int sig)
{
    (void)sig;
    helper_stop = 1;
}

void helper_stop_on_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

void helper_sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int64_t helper_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- command-line values ------------------------------------------------------------- */

bool helper_parse_count(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0) {
        return false;
    }
    *out = v;
    return true;
}

int helper_config_set_arg(shmq_config_t *cfg, const char *arg)
{
    const char *eq = strchr(arg, '=');
    char key[256];
    if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(key)) {
        return -EINVAL;
    }
    snprintf(key, sizeof(key), "%.*s", (int)(eq - arg), arg);
    int rc = shmq_config_set(cfg, key, eq + 1, NULL, NULL);
    return rc < 0 ? rc : 0;
}

/* ---- one asynchronous answer --------------------------------------------------------- */

void helper_answer_cb(void *arg, int err, const shmq_send_result_t *res)
{
    helper_answer_t *a = arg;
    a->done = true;
    a->err = err;
    a->res = *res;
}

/* ---- the load body ------------------------------------------------------------------- */

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

size_t helper_load_body(char *buf, size_t size, int id, int64_t seq)
{
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char rest_hdr[64];
    uint64_t s = ((uint64_t)(uint32_t)id << 40) ^ (uint64_t)seq ^ 0x9E3779B97F4A7C15ULL;
    int hl = snprintf(rest_hdr, sizeof(rest_hdr), "%d %lld ", id, (long long)seq);
    /* "L1 " + 8 hex + " " = 12 bytes; then rest_hdr, payload length digits, "|". */
    size_t fixed = 12 + (size_t)hl + 12;
    size_t plen = size > fixed ? size - fixed : 0;
    char *rest = buf + 12;
    int n = snprintf(rest, HELPER_LOAD_HDR_MAX, "%s%zu|", rest_hdr, plen);
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

const char *helper_load_body_check(const char *b, size_t len, int *id, long long *seq)
{
    char tmp[80];
    unsigned crc_want;
    size_t plen, hdr;
    const char *bar;
    int n;

    if (len < 12 || memcmp(b, "L1 ", 3) != 0 || b[11] != ' ') {
        return "not a load body";
    }
    memcpy(tmp, b + 3, 8);
    tmp[8] = '\0';
    if (sscanf(tmp, "%8x%n", &crc_want, &n) != 1 || n != 8) {
        return "bad crc field";
    }
    bar = memchr(b + 12, '|', len - 12 < 60 ? len - 12 : 60);
    if (!bar) {
        return "no header end";
    }
    hdr = (size_t)(bar - (b + 12));
    memcpy(tmp, b + 12, hdr);
    tmp[hdr] = '\0';
    if (sscanf(tmp, "%d %lld %zu%n", id, seq, &plen, &n) != 3 || (size_t)n != hdr) {
        return "bad header";
    }
    if (12 + hdr + 1 + plen != len) {
        return "length mismatch";
    }
    if (shmq_crc32(b + 12, len - 12) != crc_want) {
        return "crc mismatch";
    }
    return NULL;
}

void helper_load_gen_init(helper_load_gen_t *g, int id, long long size, long long size_max)
{
    g->id = id;
    g->size = size;
    g->size_max = size_max < size ? size : size_max;
    g->rnd = 0x2545F4914F6CDD1DULL ^ (uint64_t)(id + 1);
}

size_t helper_load_gen_buf_size(const helper_load_gen_t *g)
{
    return (size_t)g->size_max + HELPER_LOAD_HDR_MAX;
}

size_t helper_load_gen_next(helper_load_gen_t *g, char *buf, int64_t seq)
{
    size_t want = (size_t)g->size;
    if (g->size_max > g->size) {
        want += (size_t)(xorshift(&g->rnd) % (uint64_t)(g->size_max - g->size + 1));
    }
    return helper_load_body(buf, want < HELPER_LOAD_HDR_MAX ? HELPER_LOAD_HDR_MAX : want, g->id,
                            seq);
}

/* ---- the producers' command line ----------------------------------------------------- */

bool helper_load_option(helper_load_args_t *a, int opt, const char *arg)
{
    switch (opt) {
    case 's':
        a->store = arg;
        return true;
    case 't':
        a->topic = arg;
        return true;
    case 'i':
        a->id = strtoll(arg, NULL, 10);
        return true;
    case 'n':
        a->count = strtoll(arg, NULL, 10);
        return true;
    case 'b':
        a->size = strtoll(arg, NULL, 10);
        return true;
    case 'B':
        a->size_max = strtoll(arg, NULL, 10);
        return true;
    case 'a':
        a->window = strtoll(arg, NULL, 10);
        return true;
    case 'r':
        a->rate = strtoll(arg, NULL, 10);
        return true;
    case 'T':
        a->timeout = strtoll(arg, NULL, 10);
        return true;
    default:
        return false;
    }
}

/* ---- sending numbered messages ------------------------------------------------------- */

struct helper_slot {
    helper_sender_t *s;
    int64_t seq;
    helper_slot_t *next_free;
};

static void slot_answered(void *arg, int err, const shmq_send_result_t *res)
{
    helper_slot_t *sl = arg;
    helper_sender_t *s = sl->s;
    s->inflight--;
    s->report(s->owner, sl->seq, err, res);
    sl->next_free = s->free_slots;
    s->free_slots = sl;
}

int helper_sender_init(helper_sender_t *s, int window, int64_t wait_ms, helper_report_fn *report,
                       void *owner)
{
    memset(s, 0, sizeof(*s));
    s->window = window;
    s->wait_ms = wait_ms;
    s->report = report;
    s->owner = owner;
    if (window > 0) {
        s->slots = calloc((size_t)window, sizeof(*s->slots));
        if (s->slots == NULL) {
            return -ENOMEM;
        }
        for (int i = 0; i < window; i++) {
            s->slots[i].s = s;
            s->slots[i].next_free = s->free_slots;
            s->free_slots = &s->slots[i];
        }
    }
    return 0;
}

int helper_sender_send(helper_sender_t *s, shmq_producer_t *p, const shmq_message_t *m, int64_t seq)
{
    if (s->window == 0) {
        shmq_send_result_t res;
        int rc = shmq_send(p, m, &res);
        s->report(s->owner, seq, rc, &res);
        return rc;
    }
    int64_t w0 = shmq_mono_ms();
    while (!s->free_slots && shmq_mono_ms() - w0 < s->wait_ms) {
        shmq_producer_poll(p, 100);
        if (s->waiting) {
            s->waiting(s->owner);
        }
    }
    if (!s->free_slots) {
        return HELPER_SEND_STUCK;
    }
    helper_slot_t *sl = s->free_slots;
    s->free_slots = sl->next_free;
    sl->seq = seq;
    int rc = shmq_send_async(p, m, slot_answered, sl);
    if (rc < 0) {
        sl->next_free = s->free_slots;
        s->free_slots = sl;
        s->report(s->owner, seq, rc, NULL);
    } else {
        s->inflight++;
    }
    return rc;
}

int helper_sender_flush(helper_sender_t *s, shmq_producer_t *p)
{
    if (s->window > 0) {
        shmq_producer_flush(p, (int)s->wait_ms);
    }
    return s->inflight;
}

void helper_sender_free(helper_sender_t *s)
{
    free(s->slots);
    s->slots = NULL;
    s->free_slots = NULL;
}
